//! The DICOM listener: accepts TCP connections, caps concurrent associations, and runs one
//! task per association that reads DIMSE messages and dispatches them to the services.
//!
//! Shape borrowed from mini-redis: a semaphore bounds connections (over the cap a peer gets
//! A-ASSOCIATE-RJ "local limit exceeded", not a hang), and shutdown is a watch channel every
//! handler sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValueType};
use pacsbox_archive::Archive;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::association::{AcceptorPolicy, AssocError, Association};
use crate::dimse::{Command, CommandField, Status};
use crate::{echo, find, retrieve, store};

/// Identifiers are a few hundred bytes; anything near this is not a query.
const MAX_IDENTIFIER: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct ScpConfig {
    pub ae_title: String,
    pub max_associations: usize,
    /// Largest PDU we accept (announced in A-ASSOCIATE-AC).
    pub max_pdu: u32,
    /// An association silent this long is closed.
    pub idle_timeout: Duration,
    /// Reject associations whose Called AE Title is not ours (off by default: modalities are
    /// often configured with a wrong called AE, and the clinic would rather have the images).
    pub check_called_ae: bool,
    /// Where C-MOVE may send.
    pub peers: Vec<crate::KnownPeer>,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            ae_title: "PACSBOX".into(),
            max_associations: 16,
            max_pdu: 128 * 1024,
            idle_timeout: Duration::from_secs(120),
            check_called_ae: false,
            peers: Vec::new(),
        }
    }
}

/// Live counters for the status page and the front panel.
#[derive(Debug, Default)]
pub struct ScpStatus {
    pub active_associations: AtomicUsize,
    pub associations_total: AtomicU64,
    pub associations_rejected: AtomicU64,
    pub instances_stored: AtomicU64,
    pub stores_failed: AtomicU64,
}

#[derive(Debug, serde::Serialize)]
pub struct ScpStatusSnapshot {
    pub active_associations: usize,
    pub associations_total: u64,
    pub associations_rejected: u64,
    pub instances_stored: u64,
    pub stores_failed: u64,
}

impl ScpStatus {
    pub fn snapshot(&self) -> ScpStatusSnapshot {
        ScpStatusSnapshot {
            active_associations: self.active_associations.load(Ordering::Relaxed),
            associations_total: self.associations_total.load(Ordering::Relaxed),
            associations_rejected: self.associations_rejected.load(Ordering::Relaxed),
            instances_stored: self.instances_stored.load(Ordering::Relaxed),
            stores_failed: self.stores_failed.load(Ordering::Relaxed),
        }
    }
}

pub struct DicomServer {
    archive: Archive,
    config: Arc<ScpConfig>,
    status: Arc<ScpStatus>,
}

impl DicomServer {
    pub fn new(archive: Archive, config: ScpConfig) -> DicomServer {
        DicomServer {
            archive,
            config: Arc::new(config),
            status: Arc::new(ScpStatus::default()),
        }
    }

    pub fn status(&self) -> Arc<ScpStatus> {
        self.status.clone()
    }

    /// Serves until `shutdown` turns true, then waits for running associations to end.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let limit = Arc::new(Semaphore::new(self.config.max_associations));
        let policy = Arc::new(AcceptorPolicy {
            ae_title: self.config.ae_title.clone(),
            check_called_ae: self.config.check_called_ae,
            max_pdu: self.config.max_pdu,
            idle: self.config.idle_timeout,
        });
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let (socket, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::error!(error = %e, "accepting DICOM connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            if let Err(e) = socket.set_nodelay(true) {
                tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            while tasks.try_join_next().is_some() {}
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                self.status
                    .associations_rejected
                    .fetch_add(1, Ordering::Relaxed);
                tasks.spawn(crate::association::reject_over_limit(socket));
                continue;
            };
            let archive = self.archive.clone();
            let status = self.status.clone();
            let policy = policy.clone();
            let shutdown = shutdown.clone();
            let config = self.config.clone();
            tasks.spawn(async move {
                status.active_associations.fetch_add(1, Ordering::Relaxed);
                status.associations_total.fetch_add(1, Ordering::Relaxed);
                handle(socket, peer, &policy, &archive, &status, &config, shutdown).await;
                status.active_associations.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn handle(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    policy: &AcceptorPolicy,
    archive: &Archive,
    status: &ScpStatus,
    config: &ScpConfig,
    shutdown: watch::Receiver<bool>,
) {
    let assoc = match Association::accept(socket, policy).await {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "association not established");
            return;
        }
    };
    tracing::info!(%peer, calling_ae = assoc.calling_ae, contexts = assoc.contexts.len(), "association accepted");
    let calling_ae = assoc.calling_ae.clone();
    match run(assoc, archive, status, config, shutdown).await {
        Ok(()) => tracing::info!(%peer, calling_ae, "association released"),
        Err(e) => tracing::warn!(%peer, calling_ae, error = %e, "association ended"),
    }
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
    /// Collecting the identifier of a C-FIND / C-MOVE / C-GET.
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
        AssocError::Io(_) | AssocError::Closed | AssocError::Aborted(_) => None,
    }
}

async fn run(
    mut assoc: Association,
    archive: &Archive,
    status: &ScpStatus,
    config: &ScpConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AssocError> {
    // The message in progress (a C-STORE's data set included) is dropped with `exchange`'s
    // state before the A-ABORT goes out.
    let result = exchange(&mut assoc, archive, status, config, shutdown).await;
    if let Err(e) = &result
        && let Some(reason) = abort_reason(e)
    {
        assoc.abort(reason).await;
    }
    result
}

async fn exchange(
    assoc: &mut Association,
    archive: &Archive,
    status: &ScpStatus,
    config: &ScpConfig,
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
                    state = step(assoc, state, pdv, archive, status, config).await?;
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
    archive: &Archive,
    status: &ScpStatus,
    config: &ScpConfig,
) -> Result<State, AssocError> {
    let ctx = pdv.presentation_context_id;
    match (state, pdv.value_type) {
        (State::Idle, PDataValueType::Command) => {
            collect_command(assoc, ctx, pdv.data, pdv.is_last, archive).await
        }
        (State::Command { context, mut bytes }, PDataValueType::Command) if context == ctx => {
            bytes.extend_from_slice(&pdv.data);
            collect_command(assoc, ctx, bytes, pdv.is_last, archive).await
        }
        (State::Storing(mut rx), PDataValueType::Data) if rx.context == ctx => {
            rx.push(pdv.data).await;
            if !pdv.is_last {
                return Ok(State::Storing(rx));
            }
            let (req, st, comment) = rx.finish(status).await;
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
                CommandField::CFindRq => {
                    let ae = assoc.local_ae.clone();
                    find::serve(assoc, ctx, &req, &bytes, archive, &ae).await?
                }
                CommandField::CMoveRq => {
                    retrieve::serve_move(
                        assoc,
                        ctx,
                        &req,
                        &bytes,
                        archive,
                        &config.peers,
                        config.max_pdu,
                        config.idle_timeout,
                    )
                    .await?
                }
                _ => retrieve::serve_get(assoc, ctx, &req, &bytes, archive).await?,
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

pub(crate) async fn respond(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    st: Status,
    comment: &str,
) -> Result<(), AssocError> {
    let mut rsp = Command::response_to(req, st);
    if !comment.is_empty() {
        rsp = rsp.with_error_comment(comment);
    }
    assoc.send_command(ctx, rsp.encode()).await
}

async fn collect_command(
    assoc: &mut Association,
    ctx: u8,
    bytes: Vec<u8>,
    is_last: bool,
    archive: &Archive,
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
            if req.has_dataset() =>
        {
            Ok(State::Identifier {
                context: ctx,
                req,
                bytes: Vec::new(),
            })
        }
        CommandField::CStoreRq if req.has_dataset() => {
            match store::Reception::begin(archive, &req, ctx, &accepted, &assoc.calling_ae).await {
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
