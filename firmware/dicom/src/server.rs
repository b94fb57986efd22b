//! The DICOM listener: accepts TCP connections, caps concurrent associations, and runs one
//! task per association that reads DIMSE messages and dispatches them to the services.
//!
//! Shape borrowed from mini-redis: a semaphore bounds associations (over the cap a peer gets
//! A-ASSOCIATE-RJ "local limit exceeded", not a hang), and shutdown is a watch channel every
//! handler sees. A connection takes an association slot only once its A-ASSOCIATE-RQ has
//! arrived; until then (and while it is being rejected) it is one of a bounded set of pending
//! connections, each given ARTIM to speak, the oldest dropped when the set is full, so silent
//! or hostile connections cannot lock modalities out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValueType};
use pacsbox_archive::Archive;
use pacsbox_archive::peers::{AccessMode, PeerSource};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

use crate::access::{self, Decision, Transport};
use crate::association::{AcceptorPolicy, AssocError, Association, Connection};
use crate::context::{ScpConfig, ScpStatus, ServiceContext};
use crate::dimse::{Command, CommandField, Status, respond};
use crate::trust::PeerTrust;
use crate::{commitment, echo, find, mpps, mwl, retrieve, store};

/// Identifiers are a few hundred bytes; anything near this is not a query.
const MAX_IDENTIFIER: usize = 1 << 20;

pub struct DicomServer {
    archive: Archive,
    config: Arc<ScpConfig>,
    status: Arc<ScpStatus>,
    audit: pacsbox_audit::Audit,
    /// The DICOM TLS port (PS3.15 B.1).
    tls: Option<TcpListener>,
    /// Certificates for the TLS port and for our TLS associations to peers.
    trust: Option<Arc<PeerTrust>>,
}

impl DicomServer {
    pub fn new(archive: Archive, config: ScpConfig) -> DicomServer {
        DicomServer {
            archive,
            config: Arc::new(config),
            status: Arc::new(ScpStatus::default()),
            audit: pacsbox_audit::Audit::disabled(),
            tls: None,
            trust: None,
        }
    }

    /// The certificates DICOM TLS uses, both ways (see `trust.rs`): needed by the TLS port
    /// and by C-MOVE to peers whose entry says `tls`.
    pub fn with_trust(mut self, trust: Arc<PeerTrust>) -> DicomServer {
        self.trust = Some(trust);
        self
    }

    /// Also serves DICOM over TLS on `listener` (the same peers, rights and services), with
    /// the certificates given to [`DicomServer::with_trust`] (without them, no TLS port).
    pub fn with_tls(mut self, listener: TcpListener) -> DicomServer {
        self.tls = Some(listener);
        self
    }

    /// Records associations, stores, queries and retrievals in `audit`.
    pub fn with_audit(mut self, audit: pacsbox_audit::Audit) -> DicomServer {
        self.audit = audit;
        self
    }

    pub fn status(&self) -> Arc<ScpStatus> {
        self.status.clone()
    }

    /// Serves until `shutdown` turns true, then waits for running associations to end.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let (tls_listener, tls) = match (self.tls.take(), &self.trust) {
            (Some(l), Some(t)) => (
                Some(l),
                Some(tokio_rustls::TlsAcceptor::from(t.server_config())),
            ),
            (Some(_), None) => {
                tracing::error!("DICOM TLS port without certificates: not served");
                (None, None)
            }
            _ => (None, None),
        };
        let conn = Arc::new(Connections {
            slots: Arc::new(Semaphore::new(self.config.max_associations)),
            pending: Mutex::new(Pending::default()),
            policy: AcceptorPolicy {
                ae_title: self.config.ae_title.clone(),
                check_called_ae: self.config.check_called_ae,
                max_pdu: self.config.max_pdu,
                idle: self.config.idle_timeout,
            },
            archive: self.archive.clone(),
            status: self.status.clone(),
            config: self.config.clone(),
            audit: self.audit.clone(),
            trust: self.trust.clone(),
            commitments: Arc::new(commitment::Reporter::default()),
        });
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(commitment::run_reporter(
            self.archive.clone(),
            self.config.clone(),
            self.trust.clone(),
            self.audit.clone(),
            conn.commitments.clone(),
            shutdown.clone(),
        ));
        let mut dropped = 0u64;
        loop {
            let (accepted, secure) = tokio::select! {
                r = listener.accept() => (r, false),
                r = accept_on(tls_listener.as_ref()) => (r, true),
                _ = shutdown.changed() => break,
            };
            let (socket, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accepting DICOM connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let tls = if secure { tls.clone() } else { None };
            if let Err(e) = socket.set_nodelay(true) {
                tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            while tasks.try_join_next().is_some() {}
            let mut pending = conn.lock_pending();
            if pending.tasks.len() >= self.config.max_pending.max(1)
                && let Some((_, oldest)) = pending.tasks.pop_first()
            {
                oldest.abort();
                dropped += 1;
                // A flood would otherwise write a warning per connection.
                if dropped % 100 == 1 {
                    tracing::warn!(%peer, dropped, "pending DICOM connections at their limit: closing the oldest");
                }
            }
            pending.next_id += 1;
            let id = pending.next_id;
            // Registered under the lock the task takes to leave the set: it cannot leave
            // before it is in.
            let handle = tasks.spawn(connection(
                socket,
                tls,
                peer,
                id,
                conn.clone(),
                shutdown.clone(),
            ));
            pending.tasks.insert(id, handle);
        }
        // Connections that never associated are not worth waiting ARTIM for.
        for (_, t) in std::mem::take(&mut conn.lock_pending().tasks) {
            t.abort();
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// What every connection task shares.
struct Connections {
    /// One permit per association being negotiated or established.
    slots: Arc<Semaphore>,
    pending: Mutex<Pending>,
    policy: AcceptorPolicy,
    archive: Archive,
    status: Arc<ScpStatus>,
    config: Arc<ScpConfig>,
    audit: pacsbox_audit::Audit,
    trust: Option<Arc<PeerTrust>>,
    /// Storage commitment reports in delivery (`commitment.rs`).
    commitments: Arc<commitment::Reporter>,
}

/// Connections without an association, oldest first (ids grow with time).
#[derive(Default)]
struct Pending {
    next_id: u64,
    tasks: BTreeMap<u64, AbortHandle>,
}

impl Connections {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // The set stays consistent at every step, so a panic elsewhere cannot spoil it.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes connection `id` out of the pending set; false if it was dropped from it (it is
    /// being aborted and must not go on).
    fn leave_pending(&self, id: u64) -> bool {
        self.lock_pending().tasks.remove(&id).is_some()
    }
}

/// Leaves the pending set however the connection task ends.
struct PendingGuard<'a> {
    conn: &'a Connections,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn.leave_pending(self.id);
    }
}

/// Counts an association in progress for the status page while it lives.
struct ActiveGuard<'a>(&'a ScpStatus);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active_associations.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The next connection on the TLS listener, or never when there is none.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// One connection: on the TLS port its handshake, then its A-ASSOCIATE-RQ, both within ARTIM;
/// then a slot (or A-ASSOCIATE-RJ), then the association.
async fn connection(
    socket: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: SocketAddr,
    id: u64,
    conn: Arc<Connections>,
    shutdown: watch::Receiver<bool>,
) {
    let pending = PendingGuard { conn: &conn, id };
    let (mut socket, transport) = match tls {
        None => (Connection::Tcp(socket), Transport::Plain),
        Some(acceptor) => {
            match tokio::time::timeout(conn.config.artim_timeout, acceptor.accept(socket)).await {
                Ok(Ok(s)) => {
                    let transport = match &conn.trust {
                        Some(t) => t.identify(s.get_ref().1.peer_certificates()),
                        None => Transport::Tls {
                            fingerprint: None,
                            ca_issued: false,
                        },
                    };
                    (Connection::Tls(Box::new(s)), transport)
                }
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "DICOM TLS handshake failed");
                    crate::audit::association(
                        &conn.audit,
                        "",
                        &peer.ip().to_string(),
                        &format!("refused: TLS handshake failed: {e}"),
                        String::new(),
                    );
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "no TLS handshake within ARTIM: closed");
                    return;
                }
            }
        }
    };
    let rq = match crate::association::read_request(&mut socket, conn.config.artim_timeout).await {
        Ok(rq) => rq,
        Err(AssocError::Closed) => return,
        Err(e @ AssocError::Idle(_)) => {
            tracing::info!(%peer, error = %e, "no A-ASSOCIATE-RQ within ARTIM: closed");
            return;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "association not established");
            return;
        }
    };
    let Ok(permit) = conn.slots.clone().try_acquire_owned() else {
        conn.status
            .associations_rejected
            .fetch_add(1, Ordering::Relaxed);
        crate::audit::association(
            &conn.audit,
            rq.calling_ae_title.trim(),
            &peer.ip().to_string(),
            "refused: too many associations",
            String::new(),
        );
        // Still pending meanwhile: rejections are bounded with the silent connections.
        crate::association::reject_over_limit(socket, &rq).await;
        return;
    };
    if !conn.leave_pending(id) {
        return;
    }
    drop(pending);
    conn.status
        .active_associations
        .fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(&conn.status);
    conn.status
        .associations_total
        .fetch_add(1, Ordering::Relaxed);
    handle(socket, transport, rq, peer, &conn, shutdown).await;
    drop(permit);
}

async fn handle(
    socket: Connection,
    transport: Transport,
    rq: dicom_ul::pdu::AssociationRQ,
    peer: SocketAddr,
    conn: &Connections,
    shutdown: watch::Receiver<bool>,
) {
    let log = crate::audit::AssociationLog::default();
    let service = ServiceContext {
        archive: &conn.archive,
        status: &conn.status,
        config: &conn.config,
        audit: &conn.audit,
        log: &log,
        trust: conn.trust.as_deref(),
        commitments: &conn.commitments,
    };
    let calling = rq.calling_ae_title.trim().to_owned();
    let called = rq.called_ae_title.trim().to_owned();
    let client = peer.ip().to_string();
    let (decision, learned) = access_decision(&conn.archive, &calling, peer.ip(), &transport).await;
    if learned {
        let (archive, ae, address) = (conn.archive.clone(), calling.clone(), peer.ip().to_string());
        // An index write at most hourly per peer; off the async workers all the same.
        tokio::task::spawn_blocking(move || {
            if let Err(e) = archive.peer_seen(&ae, &address) {
                tracing::warn!(calling_ae = ae, error = %e, "noting a learned peer's association");
            }
        });
    }
    let grant = match decision {
        Decision::Accept(g) => Some(g),
        Decision::Reject(why) => {
            tracing::warn!(%peer, calling_ae = calling, why, "association rejected");
            crate::audit::association(
                &conn.audit,
                &calling,
                &client,
                &format!("refused: {why}"),
                format!("called {called}"),
            );
            if why == access::UNKNOWN_AE {
                // Listed for the admin's one-click allow; the list is kept in the index.
                let (archive, ae, address) =
                    (conn.archive.clone(), calling.clone(), client.clone());
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = archive.record_refused(&ae, &address) {
                        tracing::warn!(calling_ae = ae, error = %e, "recording a refused AE");
                    }
                });
            }
            conn.status
                .associations_rejected
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    let accepting = grant.is_some();
    let assoc = match Association::accept(socket, rq, &conn.policy, grant).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            if accepting {
                crate::audit::association(
                    &conn.audit,
                    &calling,
                    &client,
                    "refused: A-ASSOCIATE-RJ (called AE title or no acceptable context)",
                    format!("called {called}"),
                );
            }
            return;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "association not established");
            crate::audit::association(
                &conn.audit,
                &calling,
                &client,
                &format!("failed: {e}"),
                format!("called {called}"),
            );
            return;
        }
    };
    let mut assoc = assoc;
    assoc.peer_address = peer.ip().to_string();
    tracing::info!(%peer, calling_ae = assoc.calling_ae, contexts = assoc.contexts.len(), rights = %assoc.grant.rights, "association accepted");
    crate::audit::association(
        &conn.audit,
        &calling,
        &client,
        "ok",
        format!(
            "called {called}; {} context(s); rights {}",
            assoc.contexts.len(),
            assoc.grant.rights
        ),
    );
    let calling_ae = assoc.calling_ae.clone();
    match run(assoc, service, shutdown).await {
        Ok(()) => tracing::info!(%peer, calling_ae, "association released"),
        Err(e) => tracing::warn!(%peer, calling_ae, error = %e, "association ended"),
    }
    crate::audit::stores(&conn.audit, &conn.archive, &calling, &client, log).await;
}

/// The access decision for `calling` associating from `from` (see `crate::access`), and
/// whether it is a learned peer (whose sighting the peer list shows). An index that cannot be
/// read fails closed: known peers are then unknown, and the mode is closed.
async fn access_decision(
    archive: &Archive,
    calling: &str,
    from: std::net::IpAddr,
    transport: &Transport,
) -> (Decision, bool) {
    let mode = match archive.access_state() {
        Ok(s) => s.effective,
        Err(e) => {
            tracing::error!(error = %e, "reading the access mode; refusing unknown AEs");
            AccessMode::Closed
        }
    };
    let entry = match archive.peer(calling) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, calling_ae = calling, "reading the peer table");
            None
        }
    };
    if let Some(p) = &entry
        && let Err(why) = access::transport_allows(p, transport)
    {
        // Not "unknown": an AE whose entry asks for TLS or a certificate is never let in
        // without them, whatever the mode or address (learning would grant it storage).
        return (Decision::Reject(why), false);
    }
    let entry = match entry {
        Some(p) if p.host.is_some() => {
            let addrs = access::resolve_host(p.host.as_deref().unwrap_or_default()).await;
            if access::host_matches(&p, from, &addrs) {
                Some(p)
            } else {
                tracing::warn!(calling_ae = calling, %from, host = p.host, "calling AE associates from another address than its peer entry names: treated as unknown");
                None
            }
        }
        other => other,
    };
    let learned = entry
        .as_ref()
        .is_some_and(|p| p.source == PeerSource::Learned);
    (access::decide(mode, entry.as_ref()), learned)
}

/// What the association is doing between PDUs.
enum State {
    Idle,
    /// Collecting the fragments of a command set.
    Command {
        context: u8,
        bytes: Vec<u8>,
    },
    /// Receiving the data set of a C-STORE.
    Storing(store::Reception),
    /// Collecting the identifier of a C-FIND / C-MOVE / C-GET, or an N-ACTION's data set.
    Identifier {
        context: u8,
        req: Command,
        bytes: Vec<u8>,
    },
    /// Discarding the data set of a request we already answered or cannot serve.
    Draining {
        context: u8,
        req: Command,
        status: Status,
        comment: String,
    },
}

/// The A-ABORT (source: service provider) an association ending on `e` gets before its
/// connection is closed; none when the peer already left (closed, aborted, broken socket).
fn abort_reason(e: &AssocError) -> Option<AbortRQServiceProviderReason> {
    match e {
        AssocError::Protocol { reason, .. } => Some(reason.clone()),
        AssocError::Malformed(_) | AssocError::TooLarge(_) => {
            Some(AbortRQServiceProviderReason::InvalidPduParameter)
        }
        AssocError::Idle(_) => Some(AbortRQServiceProviderReason::ReasonNotSpecified),
        AssocError::Io(_) | AssocError::Closed | AssocError::Aborted(_) | AssocError::Tls(_) => {
            None
        }
    }
}

async fn run(
    mut assoc: Association,
    service: ServiceContext<'_>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AssocError> {
    // The message in progress (a C-STORE's data set included) is dropped with `exchange`'s
    // state before the A-ABORT goes out.
    let result = exchange(&mut assoc, service, shutdown).await;
    if let Err(e) = &result
        && let Some(reason) = abort_reason(e)
    {
        assoc.abort(reason).await;
    }
    result
}

async fn exchange(
    assoc: &mut Association,
    service: ServiceContext<'_>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AssocError> {
    let mut state = State::Idle;
    loop {
        // On shutdown, an association between messages is aborted at once; one in the middle
        // of a C-STORE is allowed to finish it.
        let idle = matches!(state, State::Idle);
        if idle && *shutdown.borrow() {
            assoc
                .abort(AbortRQServiceProviderReason::ReasonNotSpecified)
                .await;
            return Ok(());
        }
        let received = tokio::select! {
            r = assoc.receive() => r,
            _ = shutdown.changed(), if idle => {
                assoc
                    .abort(AbortRQServiceProviderReason::ReasonNotSpecified)
                    .await;
                return Ok(());
            }
        };
        match received? {
            Pdu::PData { data } => {
                for pdv in data {
                    state = step(assoc, state, pdv, service).await?;
                }
            }
            // A release in the middle of a message would leave that message (a C-STORE's
            // data set) incomplete: not a release.
            Pdu::ReleaseRQ if !matches!(state, State::Idle) => {
                return Err(AssocError::Protocol {
                    reason: AbortRQServiceProviderReason::UnexpectedPdu,
                    what: "A-RELEASE-RQ in the middle of a DIMSE message".into(),
                });
            }
            Pdu::ReleaseRQ => {
                assoc.send(&Pdu::ReleaseRP).await?;
                assoc.close().await;
                return Ok(());
            }
            Pdu::AbortRQ { source } => {
                return Err(AssocError::Aborted(format!("{source:?}")));
            }
            Pdu::Unknown { pdu_type, .. } => {
                return Err(AssocError::Protocol {
                    reason: AbortRQServiceProviderReason::UnrecognizedPdu,
                    what: format!("unknown PDU type {pdu_type:#04x}"),
                });
            }
            other => {
                return Err(AssocError::Protocol {
                    reason: AbortRQServiceProviderReason::UnexpectedPdu,
                    what: format!("unexpected {}", other.short_description()),
                });
            }
        }
    }
}

/// A DIMSE-level violation (the PDUs themselves were well formed).
fn protocol_error(what: String) -> AssocError {
    AssocError::Protocol {
        reason: AbortRQServiceProviderReason::ReasonNotSpecified,
        what,
    }
}

async fn step(
    assoc: &mut Association,
    state: State,
    pdv: dicom_ul::pdu::PDataValue,
    service: ServiceContext<'_>,
) -> Result<State, AssocError> {
    let ctx = pdv.presentation_context_id;
    match (state, pdv.value_type) {
        (State::Idle, PDataValueType::Command) => {
            collect_command(assoc, ctx, pdv.data, pdv.is_last, service).await
        }
        (State::Command { context, mut bytes }, PDataValueType::Command) if context == ctx => {
            bytes.extend_from_slice(&pdv.data);
            collect_command(assoc, ctx, bytes, pdv.is_last, service).await
        }
        (State::Storing(mut rx), PDataValueType::Data) if rx.context == ctx => {
            rx.push(pdv.data, pdv.is_last).await;
            if !pdv.is_last {
                return Ok(State::Storing(rx));
            }
            let (req, st, comment) = rx.finish(service).await;
            respond(assoc, ctx, &req, st, &comment).await?;
            Ok(State::Idle)
        }
        (
            State::Identifier {
                context,
                req,
                mut bytes,
            },
            PDataValueType::Data,
        ) if context == ctx => {
            bytes.extend_from_slice(&pdv.data);
            if bytes.len() > MAX_IDENTIFIER {
                return Err(protocol_error("identifier larger than 1 MiB".into()));
            }
            if !pdv.is_last {
                return Ok(State::Identifier {
                    context,
                    req,
                    bytes,
                });
            }
            match req.field {
                CommandField::CFindRq
                    if assoc.context(ctx)?.abstract_syntax
                        == crate::sop_classes::MODALITY_WORKLIST_FIND =>
                {
                    mwl::serve(assoc, ctx, &req, &bytes, service).await?
                }
                CommandField::NCreateRq => mpps::create(assoc, ctx, &req, &bytes, service).await?,
                CommandField::NSetRq => mpps::set(assoc, ctx, &req, &bytes, service).await?,
                CommandField::CFindRq => find::serve(assoc, ctx, &req, &bytes, service).await?,
                CommandField::CMoveRq => {
                    retrieve::serve_move(assoc, ctx, &req, &bytes, service).await?
                }
                CommandField::NActionRq => {
                    commitment::serve(assoc, ctx, &req, &bytes, service).await?
                }
                _ => retrieve::serve_get(assoc, ctx, &req, &bytes, service).await?,
            }
            Ok(State::Idle)
        }
        (
            State::Draining {
                context,
                req,
                status: st,
                comment,
            },
            PDataValueType::Data,
        ) if context == ctx => {
            if pdv.is_last {
                respond(assoc, ctx, &req, st, &comment).await?;
                Ok(State::Idle)
            } else {
                Ok(State::Draining {
                    context,
                    req,
                    status: st,
                    comment,
                })
            }
        }
        (_, kind) => Err(AssocError::Protocol {
            reason: AbortRQServiceProviderReason::UnexpectedPdu,
            what: format!("unexpected {kind:?} fragment on presentation context {ctx}"),
        }),
    }
}

/// Whether the association's grant covers a request (its context was accepted for some
/// class; the command must also match the rights, e.g. no C-FIND on a C-MOVE context).
fn permitted(assoc: &Association, field: CommandField) -> bool {
    let r = assoc.grant.rights;
    match field {
        CommandField::CFindRq => r.query,
        CommandField::CMoveRq | CommandField::CGetRq => r.retrieve,
        CommandField::CStoreRq => r.store,
        CommandField::NCreateRq | CommandField::NSetRq => r.store,
        _ => true,
    }
}

async fn collect_command(
    assoc: &mut Association,
    ctx: u8,
    bytes: Vec<u8>,
    is_last: bool,
    service: ServiceContext<'_>,
) -> Result<State, AssocError> {
    if !is_last {
        if bytes.len() > 1 << 16 {
            return Err(protocol_error("command set larger than 64 KiB".into()));
        }
        return Ok(State::Command {
            context: ctx,
            bytes,
        });
    }
    let req = match Command::decode(&bytes) {
        Ok(c) => c,
        Err(e) => {
            return Err(protocol_error(format!("undecodable command set: {e}")));
        }
    };
    let Some(accepted) = assoc.contexts.get(&ctx).cloned() else {
        return Err(AssocError::Protocol {
            reason: AbortRQServiceProviderReason::InvalidPduParameter,
            what: format!("message on presentation context {ctx}, which was not accepted"),
        });
    };
    let drain = |status: Status, comment: String| {
        Ok(State::Draining {
            context: ctx,
            req: req.clone(),
            status,
            comment,
        })
    };
    match req.field {
        // A C-CANCEL for an operation that already ended gets no answer (PS3.7 9.3.2.3).
        CommandField::CCancelRq => Ok(State::Idle),
        CommandField::CEchoRq => {
            assoc
                .send_command(ctx, echo::respond(&req).encode())
                .await?;
            Ok(State::Idle)
        }
        CommandField::CFindRq | CommandField::CMoveRq | CommandField::CGetRq
            if req.has_dataset() && !permitted(assoc, req.field) =>
        {
            // The contexts were refused already; this is a request on another class's context.
            tracing::warn!(calling_ae = assoc.calling_ae, command = ?req.field, "request refused: no right for it");
            drain(Status::NOT_AUTHORIZED, "not authorized for this AE".into())
        }
        CommandField::CFindRq | CommandField::CMoveRq | CommandField::CGetRq
            if req.has_dataset() =>
        {
            Ok(State::Identifier {
                context: ctx,
                req,
                bytes: Vec::new(),
            })
        }
        CommandField::NCreateRq | CommandField::NSetRq
            if req.has_dataset() && !permitted(assoc, req.field) =>
        {
            tracing::warn!(calling_ae = assoc.calling_ae, command = ?req.field, "MPPS refused: no store right");
            drain(Status::NOT_AUTHORIZED, "not authorized for MPPS".into())
        }
        // MPPS data sets are gathered like identifiers, then handed to `mpps.rs`.
        CommandField::NCreateRq | CommandField::NSetRq if req.has_dataset() => {
            Ok(State::Identifier {
                context: ctx,
                req,
                bytes: Vec::new(),
            })
        }
        // Storage commitment (`commitment.rs`): its context follows the store right.
        CommandField::NActionRq if req.has_dataset() => Ok(State::Identifier {
            context: ctx,
            req,
            bytes: Vec::new(),
        }),
        CommandField::NActionRq => {
            respond(assoc, ctx, &req, Status::MISSING_ATTRIBUTE, "no data set").await?;
            Ok(State::Idle)
        }
        // A late answer to a storage commitment report that was already taken as delivered.
        CommandField::NEventReportRsp => Ok(State::Idle),
        CommandField::CStoreRq if req.has_dataset() && !permitted(assoc, req.field) => {
            tracing::warn!(
                calling_ae = assoc.calling_ae,
                "C-STORE refused: no store right"
            );
            drain(Status::NOT_AUTHORIZED, "not authorized to store".into())
        }
        CommandField::CStoreRq if req.has_dataset() => {
            if assoc.grant.learn {
                // Once per association: the first store of an unknown AE while learning.
                assoc.grant.learn = false;
                match service
                    .archive
                    .learn_peer(&assoc.calling_ae, &assoc.peer_address)
                {
                    Ok(true) => tracing::info!(
                        calling_ae = assoc.calling_ae,
                        address = assoc.peer_address,
                        "learned a new store-only peer"
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(calling_ae = assoc.calling_ae, error = %e, "recording a learned peer")
                    }
                }
            }
            match store::Reception::begin(service, &req, ctx, &accepted, &assoc.calling_ae).await {
                Ok(rx) => Ok(State::Storing(rx)),
                Err((st, comment)) => drain(st, comment),
            }
        }
        other => {
            tracing::warn!(command = ?other, "unsupported DIMSE command");
            let st = Status::UNRECOGNIZED_OPERATION;
            if req.has_dataset() {
                drain(st, "operation not supported".into())
            } else {
                respond(assoc, ctx, &req, st, "operation not supported").await?;
                Ok(State::Idle)
            }
        }
    }
}
