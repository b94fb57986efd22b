//! C-MOVE and C-GET SCP (PS3.4 Annex C.4.2, C.4.3): find the instances under the identifier,
//! send each as a C-STORE sub-operation — over a new association to a known peer (MOVE) or
//! back on the requesting association (GET) — with pending counts after each, honouring
//! C-CANCEL.
//!
//! Transfer syntax on the way out: the bytes as stored when the receiver accepts the stored
//! syntax; otherwise a native syntax the receiver accepts — re-encoded with dicom-object from a
//! native stored syntax, or decompressed by pacsbox-imaging when it says it can
//! ([`pacsbox_imaging::can_decompress`]: JPEG incl. 12-bit Extended, RLE, JPEG 2000, deflate,
//! and JPEG-LS in a build with the native codecs; the same decoders as the web viewer). A
//! stored object that cannot be decompressed fails its sub-operation with a reason naming the
//! syntax.

use std::collections::HashMap;
use std::io::Read;

use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValueType};
use pacsbox_archive::peers::{AccessMode, CertRule};
use pacsbox_archive::transfer_syntax::{self, DatasetEncoding};
use pacsbox_archive::{Archive, InstanceRecord};
use tokio::sync::mpsc;

use crate::association::{AcceptedContext, AssocError, Association, TlsTarget};
use crate::context::ServiceContext;
use crate::dimse::{Command, CommandField, Status, is_cancel, respond};
use crate::identifier::{self, encode_elements};
use crate::sop_classes::model_of;

const NATIVE: [&str; 3] = [
    transfer_syntax::EXPLICIT_VR_LE,
    transfer_syntax::IMPLICIT_VR_LE,
    transfer_syntax::EXPLICIT_VR_BE,
];
/// Data set bytes per P-DATA fragment read from disk at a time.
const CHUNK: usize = 64 * 1024;

/// Why one C-STORE sub-operation failed without a status from the receiver.
#[derive(Debug, thiserror::Error)]
enum SubOperationError {
    /// The receiver cannot take this instance (no context for its SOP class, or only syntaxes
    /// we cannot produce from the stored one). The next sub-operations go on.
    #[error("{0}")]
    Unsendable(String),
    /// C-GET: the requestor did not take the SCP role for the instance's SOP class.
    #[error("requestor did not take the SCP role for {0}")]
    NoScpRole(String),
    /// The stored file failed before anything of it was sent. The next ones go on.
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The association the C-STOREs go on failed, possibly mid data set: no further
    /// sub-operation can be attempted on it.
    #[error(transparent)]
    Association(#[from] AssocError),
}

/// Sub-operation counts. Counted in `usize`: a retrieve may match more instances than the
/// 65 535 the DIMSE count fields (US) hold; those saturate when encoded.
#[derive(Default)]
struct Tally {
    remaining: usize,
    completed: usize,
    failed: usize,
    warning: usize,
    failed_uids: Vec<String>,
}

/// A count as a DIMSE Number of … Sub-operations field.
fn count_field(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl Tally {
    fn of(set: &[(String, InstanceRecord)]) -> Tally {
        Tally {
            remaining: set.len(),
            ..Tally::default()
        }
    }

    fn put_counts(&self, mut c: Command, with_remaining: bool) -> Command {
        c.remaining = with_remaining.then_some(count_field(self.remaining));
        c.completed = Some(count_field(self.completed));
        c.failed = Some(count_field(self.failed));
        c.warning = Some(count_field(self.warning));
        c
    }

    /// One sub-operation done: the receiver's status, or why it was not attempted.
    fn record(&mut self, sop: &str, outcome: Result<Status, SubOperationError>, peer: &str) {
        self.remaining = self.remaining.saturating_sub(1);
        match outcome {
            Ok(s) if s == Status::SUCCESS => self.completed += 1,
            Ok(s) if !s.is_failure() => self.warning += 1,
            Ok(s) => {
                tracing::warn!(sop_instance_uid = sop, peer, status = ?s, "C-STORE sub-operation failed");
                self.failed += 1;
                self.failed_uids.push(sop.to_owned());
            }
            Err(reason) => {
                tracing::warn!(
                    sop_instance_uid = sop,
                    peer,
                    %reason,
                    "C-STORE sub-operation not attempted"
                );
                self.failed += 1;
                self.failed_uids.push(sop.to_owned());
            }
        }
    }

    /// The sub-association is gone: `unsent` (everything remaining) fails.
    fn fail_remaining(&mut self, unsent: &[(String, InstanceRecord)]) {
        self.failed_uids
            .extend(unsent.iter().map(|(sop, _)| sop.clone()));
        self.failed += self.remaining;
        self.remaining = 0;
    }

    /// After a C-CANCEL, the instances never attempted go into the Failed SOP Instance UID
    /// List.
    fn list_unsent(&mut self, set: &[(String, InstanceRecord)]) {
        let attempted = self.completed + self.failed + self.warning;
        self.failed_uids
            .extend(set.iter().skip(attempted).map(|(sop, _)| sop.clone()));
    }

    /// The audit trail's outcome: `ok`, or how many failed / that it was cancelled.
    fn outcome(&self, cancelled: bool) -> String {
        match (cancelled, self.failed) {
            (true, _) => format!("cancelled after {} sent", self.completed),
            (false, 0) => "ok".to_owned(),
            (false, n) => format!("failed: {n} of {} not sent", n + self.completed),
        }
    }

    fn final_status(&self, cancelled: bool) -> Status {
        if cancelled {
            Status::CANCEL
        } else if self.failed > 0 || self.warning > 0 {
            Status::SUBOPERATIONS_FAILED
        } else {
            Status::SUCCESS
        }
    }
}

/// The last response of a C-MOVE or C-GET: its counts, and the Failed SOP Instance UID List
/// (0008,0058) when there are failures.
async fn final_response(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    status: Status,
    comment: &str,
    tally: &Tally,
) -> Result<(), AssocError> {
    let mut rsp = Command::response_to(req, status);
    if !comment.is_empty() {
        rsp = rsp.with_error_comment(comment);
    }
    rsp = tally.put_counts(rsp, false);
    let mut data = None;
    if !tally.failed_uids.is_empty() {
        rsp.data_set_type = 0x0000;
        let ts = assoc
            .contexts
            .get(&ctx)
            .map(|c| c.transfer_syntax.clone())
            .unwrap_or_default();
        data = Some(encode_elements(
            &[((0x0008, 0x0058), *b"UI", tally.failed_uids.join("\\"))],
            DatasetEncoding::of(&ts),
        ));
    }
    assoc.send_command(ctx, rsp.encode()).await?;
    if let Some(d) = data {
        assoc.send_data(ctx, d).await?;
    }
    Ok(())
}

async fn send_pending(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    t: &Tally,
) -> Result<(), AssocError> {
    let rsp = t.put_counts(Command::response_to(req, Status::PENDING), true);
    assoc.send_command(ctx, rsp.encode()).await
}

/// Instances to send, or a refusal already answered.
async fn resolve(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    identifier_bytes: &[u8],
    archive: &Archive,
) -> Result<Option<Vec<(String, InstanceRecord)>>, AssocError> {
    let accepted = assoc.context(ctx)?;
    let Some(model) = model_of(&accepted.abstract_syntax) else {
        respond(
            assoc,
            ctx,
            req,
            Status::SOP_CLASS_NOT_SUPPORTED,
            "not a retrieve context",
        )
        .await?;
        return Ok(None);
    };
    let find = match identifier::parse(identifier_bytes, &accepted.transfer_syntax, model) {
        Ok(f) => f,
        Err(e) => {
            respond(assoc, ctx, req, Status::DATASET_MISMATCH, &e.to_string()).await?;
            return Ok(None);
        }
    };
    let archive = archive.clone();
    let set = tokio::task::spawn_blocking(move || archive.index().retrieve_set(&find.query))
        .await
        .map_err(|e| AssocError::Malformed(format!("query task failed: {e}")))?;
    match set {
        Ok(set) => Ok(Some(set)),
        Err(e) => {
            respond(assoc, ctx, req, Status::DATASET_MISMATCH, &e.to_string()).await?;
            Ok(None)
        }
    }
}

/// Chooses the receiver's context for an instance of `sop_class` stored in `stored`: its
/// stored syntax if accepted, else a native one when the stored data set is native or
/// decompressible. `Err`: why the receiver cannot take it.
fn choose_context(
    contexts: &HashMap<u8, AcceptedContext>,
    sop_class: &str,
    stored: &str,
) -> Result<(u8, String), String> {
    let mut candidates: Vec<(u8, &AcceptedContext)> = contexts
        .iter()
        .filter(|(_, c)| c.abstract_syntax == sop_class)
        .map(|(id, c)| (*id, c))
        .collect();
    candidates.sort_by_key(|(id, _)| *id);
    if let Some((id, c)) = candidates.iter().find(|(_, c)| c.transfer_syntax == stored) {
        return Ok((*id, c.transfer_syntax.clone()));
    }
    let decodable = NATIVE.contains(&stored) || pacsbox_imaging::can_decompress(stored);
    if decodable
        && let Some((id, c)) = candidates
            .iter()
            .find(|(_, c)| NATIVE.contains(&c.transfer_syntax.as_str()))
    {
        return Ok((*id, c.transfer_syntax.clone()));
    }
    if candidates.is_empty() {
        return Err(format!("receiver has no context for SOP class {sop_class}"));
    }
    let mut offered: Vec<String> = candidates
        .iter()
        .map(|(_, c)| ts_label(&c.transfer_syntax))
        .collect();
    offered.sort();
    offered.dedup();
    let offered = offered.join(", ");
    if decodable {
        // We could decode what is stored, but only ever send it as stored or native.
        Err(format!(
            "receiver accepts SOP class {sop_class} only in {offered}: no encoder for that \
             (pacsbox sends the stored syntax {} or a native one)",
            ts_label(stored)
        ))
    } else {
        Err(format!(
            "cannot send {} to a receiver accepting only {offered}: no decoder for the stored \
             syntax",
            ts_label(stored)
        ))
    }
}

/// A transfer syntax UID with its name, for messages.
fn ts_label(uid: &str) -> String {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{uid} ({})", ts.name()),
        None => uid.to_owned(),
    }
}

/// Reads the stored data set, re-encoded to `target_ts` when that differs, in chunks.
fn spawn_reader(
    archive: &Archive,
    rec: InstanceRecord,
    target_ts: String,
) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(4);
    let archive = archive.clone();
    tokio::task::spawn_blocking(move || {
        let result = (|| -> std::io::Result<()> {
            let (meta, mut reader) = archive.open_dataset(&rec)?;
            if meta.transfer_syntax == target_ts {
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let n = read_full(&mut reader, &mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return Ok(());
                    }
                }
            }
            let out = if NATIVE.contains(&meta.transfer_syntax.as_str()) {
                transcode_native(&mut reader, &meta.transfer_syntax, &target_ts)?
            } else {
                drop(reader);
                decompress(archive.open_part10(&rec)?, &target_ts)?
            };
            for chunk in out.chunks(CHUNK) {
                if tx.blocking_send(Ok(chunk.to_vec())).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn transcode_native(reader: &mut dyn Read, from: &str, to: &str) -> std::io::Result<Vec<u8>> {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let err = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let from_ts = TransferSyntaxRegistry
        .get(from)
        .ok_or_else(|| err(format!("unknown transfer syntax {from}")))?;
    let to_ts = TransferSyntaxRegistry
        .get(to)
        .ok_or_else(|| err(format!("unknown transfer syntax {to}")))?;
    let obj = dicom_object::InMemDicomObject::read_dataset_with_ts(reader, from_ts)
        .map_err(|e| err(format!("reading stored data set: {e}")))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts_cs(&mut out, to_ts, Default::default())
        .map_err(|e| err(format!("re-encoding to {to}: {e}")))?;
    Ok(out)
}

/// Decodes an encapsulated object's pixel data into a native syntax (pacsbox-imaging).
fn decompress(part10: Box<dyn Read + Send>, to: &str) -> std::io::Result<Vec<u8>> {
    pacsbox_imaging::decompress_to_native(part10, to).map_err(|e| match e {
        pacsbox_imaging::ImagingError::Io(e) => e,
        other => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("decompressing to {to}: {other}"),
        ),
    })
}

/// A sub-operation made ready before its turn: the receiver's context chosen and the stored
/// file already being read (and decompressed) on a blocking thread, so opening and zstd work
/// overlap the previous instance's transfer and C-STORE-RSP round trip.
struct Ready {
    context: u8,
    chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

/// The C-STORE sub-operations of one C-MOVE or C-GET: where they go, how they went so far, and
/// whether the requestor cancelled.
struct SubOperations<'a> {
    /// Where the C-STOREs go: a new association to the move destination, or the requestor's
    /// own (C-GET).
    target: &'a mut Association,
    tally: Tally,
    cancel: Cancel<'a>,
    /// C-MOVE: Move Originator AE Title and Message ID, on every C-STORE-RQ.
    originator: Option<(String, u16)>,
}

/// The requestor's C-CANCEL of the C-MOVE or C-GET.
struct Cancel<'a> {
    /// C-GET: the request whose C-CANCEL may arrive on the target while a sub-operation waits
    /// for its C-STORE-RSP. (A C-MOVE's comes on the requesting association, which its loop
    /// watches between sub-operations.)
    watch_for: Option<&'a Command>,
    cancelled: bool,
}

impl SubOperations<'_> {
    fn prepare(&self, archive: &Archive, rec: &InstanceRecord) -> Result<Ready, SubOperationError> {
        let (context, ts) = choose_context(
            &self.target.contexts,
            &rec.sop_class_uid,
            &rec.transfer_syntax,
        )
        .map_err(SubOperationError::Unsendable)?;
        Ok(Ready {
            context,
            chunks: spawn_reader(archive, rec.clone(), ts),
        })
    }

    /// One C-STORE sub-operation on the target: the receiver's status, or why there is none.
    async fn store(
        &mut self,
        ready: Result<Ready, SubOperationError>,
        sop: &str,
        rec: &InstanceRecord,
        message_id: u16,
    ) -> Result<Status, SubOperationError> {
        let Ready {
            context: ctx,
            mut chunks,
        } = ready?;
        let mut rq = Command::request(CommandField::CStoreRq, message_id);
        rq.affected_sop_class_uid = Some(rec.sop_class_uid.clone());
        rq.affected_sop_instance_uid = Some(sop.to_owned());
        rq.priority = Some(0);
        rq.data_set_type = 0x0000;
        if let Some((ae, id)) = &self.originator {
            rq.move_originator_ae = Some(ae.clone());
            rq.move_originator_message_id = Some(*id);
        }
        // Read ahead one chunk so the last fragment can be flagged; a read error before
        // anything was sent fails only this sub-operation.
        let mut next = match chunks.recv().await {
            Some(Ok(c)) => Some(c),
            Some(Err(error)) => {
                return Err(SubOperationError::Read {
                    path: rec.rel_path.clone(),
                    error,
                });
            }
            None => Some(Vec::new()),
        };
        self.target.send_command(ctx, rq.encode()).await?;
        while let Some(chunk) = next.take() {
            next = match chunks.recv().await {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    // Mid-data-set failure: the receiver would take a truncated object; abort.
                    return Err(AssocError::Malformed(format!(
                        "reading {} while sending: {e}",
                        rec.rel_path
                    ))
                    .into());
                }
                None => None,
            };
            self.target
                .send_pdata_fragment(ctx, chunk, next.is_none())
                .await?;
        }
        // Wait for the C-STORE-RSP (on C-GET a C-CANCEL of the C-GET may come first).
        loop {
            match self.target.receive().await? {
                Pdu::PData { data } => {
                    if let Some(get) = self.cancel.watch_for
                        && is_cancel(&data, get)
                    {
                        self.cancel.cancelled = true;
                        continue;
                    }
                    for pdv in data {
                        if pdv.value_type == PDataValueType::Command
                            && let Ok(c) = Command::decode(&pdv.data)
                            && c.field == CommandField::CStoreRsp
                            && c.message_id_responded_to == Some(message_id)
                        {
                            return Ok(c.status.unwrap_or(Status::PROCESSING_FAILURE));
                        }
                    }
                }
                Pdu::AbortRQ { source } => {
                    return Err(AssocError::Aborted(format!("{source:?}")).into());
                }
                other => {
                    return Err(AssocError::Malformed(format!(
                        "unexpected {} while waiting for C-STORE-RSP",
                        other.short_description()
                    ))
                    .into());
                }
            }
        }
    }
}

/// Where a C-MOVE to `dest` goes: a peer with host and port and the `move` right (any peer
/// with host and port in `open` mode). The error is the comment the requestor gets.
fn move_destination(archive: &Archive, dest: &str) -> Result<MoveDestination, &'static str> {
    let peer = match archive.peer(dest) {
        Ok(Some(p)) => p,
        Ok(None) => return Err("move destination unknown"),
        Err(e) => {
            tracing::error!(error = %e, "reading the peer table");
            return Err("move destination unknown (peer table unreadable)");
        }
    };
    let open = archive
        .access_state()
        .is_ok_and(|s| s.effective == AccessMode::Open);
    if !peer.rights.move_dest && !open {
        return Err("move destination not permitted (peer lacks the move right)");
    }
    let tls = peer.needs_tls().then(|| peer.cert.clone());
    match (peer.host, peer.port) {
        (Some(host), Some(port)) if !host.trim().is_empty() && port > 0 => Ok(MoveDestination {
            ae_title: peer.ae_title,
            host,
            port,
            tls,
        }),
        _ => Err("move destination has no host and port"),
    }
}

struct MoveDestination {
    ae_title: String,
    host: String,
    port: u16,
    /// Reached over TLS, trusting this certificate rule (none: the clinic CA).
    tls: Option<Option<CertRule>>,
}

/// How to reach `peer` over TLS, if its entry says so; the error says why it cannot be.
fn tls_target(
    peer: &MoveDestination,
    trust: Option<&crate::trust::PeerTrust>,
) -> Result<Option<TlsTarget>, String> {
    let Some(rule) = &peer.tls else {
        return Ok(None);
    };
    let trust = trust.ok_or("its entry says tls, but this box has no DICOM TLS certificate")?;
    Ok(Some(TlsTarget {
        config: trust.client_config(rule.as_ref())?,
        server_name: crate::trust::server_name(&peer.host)?,
    }))
}

/// The C-MOVE's records in the audit trail, one per study of `set`.
fn audit_move(
    service: ServiceContext<'_>,
    assoc: &Association,
    set: &[(String, InstanceRecord)],
    destination: &str,
    outcome: &str,
) {
    crate::audit::retrieve(
        service.audit,
        "dicom.move",
        &assoc.calling_ae,
        &assoc.peer_address,
        set,
        &format!("to {destination}"),
        outcome,
    );
}

pub async fn serve_move(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    identifier_bytes: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let (archive, config) = (service.archive, service.config);
    let dest = req.move_destination.clone().unwrap_or_default();
    let peer = match move_destination(archive, dest.trim()) {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!(
                calling_ae = assoc.calling_ae,
                destination = dest,
                why,
                "C-MOVE destination refused"
            );
            service.audit.record(
                pacsbox_audit::Event::new("dicom.move", &assoc.calling_ae, &assoc.peer_address)
                    .outcome(format!("refused: {why}"))
                    .detail(format!("to {}", dest.trim())),
            );
            return respond(assoc, ctx, req, Status::MOVE_DESTINATION_UNKNOWN, why).await;
        }
    };
    let Some(set) = resolve(assoc, ctx, req, identifier_bytes, archive).await? else {
        return Ok(());
    };
    let mut tally = Tally::of(&set);
    if set.is_empty() {
        return final_response(assoc, ctx, req, Status::SUCCESS, "", &tally).await;
    }
    // One context per (SOP class, stored syntax), plus a native fallback per SOP class.
    let mut proposals: Vec<(String, Vec<String>)> = Vec::new();
    for (_, rec) in &set {
        let exact = (rec.sop_class_uid.clone(), vec![rec.transfer_syntax.clone()]);
        if !proposals.contains(&exact) {
            proposals.push(exact);
        }
        let native = (
            rec.sop_class_uid.clone(),
            NATIVE.iter().map(|s| s.to_string()).collect(),
        );
        if !proposals.contains(&native) {
            proposals.push(native);
        }
    }
    let local_ae = assoc.local_ae.clone();
    let connected = match tls_target(&peer, service.trust) {
        Ok(tls) => Association::request(
            &peer.host,
            peer.port,
            tls,
            &local_ae,
            &peer.ae_title,
            &proposals,
            config.max_pdu,
            config.idle_timeout,
        )
        .await
        .map_err(|e| e.to_string()),
        Err(why) => Err(why),
    };
    let mut sub = match connected {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(destination = peer.ae_title, error = %e, "C-MOVE destination unreachable");
            tally.fail_remaining(&set);
            let comment = format!("cannot associate with {}: {e}", peer.ae_title);
            audit_move(
                service,
                assoc,
                &set,
                &peer.ae_title,
                &format!("failed: {comment}"),
            );
            return final_response(
                assoc,
                ctx,
                req,
                Status::UNABLE_TO_PERFORM_SUBOPERATIONS,
                &comment,
                &tally,
            )
            .await;
        }
    };
    let mut ops = SubOperations {
        target: &mut sub,
        tally,
        cancel: Cancel {
            watch_for: None,
            cancelled: false,
        },
        originator: Some((assoc.calling_ae.clone(), req.message_id.unwrap_or(0))),
    };
    let mut next = set.first().map(|(_, rec)| ops.prepare(archive, rec));
    for (i, (sop, rec)) in set.iter().enumerate() {
        // C-CANCEL arrives on the requesting association; look without waiting.
        tokio::select! {
            biased;
            pdu = assoc.receive_while_busy() => match pdu? {
                Pdu::PData { data } if is_cancel(&data, req) => ops.cancel.cancelled = true,
                other => {
                    ops.target.release().await;
                    return Err(AssocError::Malformed(format!("unexpected {} during C-MOVE", other.short_description())));
                }
            },
            _ = std::future::ready(()) => {}
        }
        let Some(current) = next.take() else { break };
        if ops.cancel.cancelled {
            break;
        }
        next = set.get(i + 1).map(|(_, r)| ops.prepare(archive, r));
        // One C-STORE is outstanding at a time, so the IDs may wrap.
        let message_id = (i as u16).wrapping_add(1);
        match ops.store(current, sop, rec, message_id).await {
            Err(SubOperationError::Association(e)) => {
                tracing::warn!(destination = peer.ae_title, error = %e, "C-MOVE sub-association failed");
                // Possibly mid data set: an A-ABORT tells the destination not to keep the
                // fragments so far (a plain close would let a careless one store them).
                if !matches!(e, AssocError::Closed | AssocError::Aborted(_)) {
                    ops.target
                        .abort(AbortRQServiceProviderReason::ReasonNotSpecified)
                        .await;
                }
                ops.tally.fail_remaining(&set[i..]);
                let comment = format!("{} dropped the association: {e}", peer.ae_title);
                return final_response(
                    assoc,
                    ctx,
                    req,
                    Status::SUBOPERATIONS_FAILED,
                    &comment,
                    &ops.tally,
                )
                .await;
            }
            outcome => ops.tally.record(sop, outcome, &peer.ae_title),
        }
        if ops.tally.remaining > 0 {
            send_pending(assoc, ctx, req, &ops.tally).await?;
        }
    }
    ops.target.release().await;
    let cancelled = ops.cancel.cancelled;
    let mut tally = ops.tally;
    if cancelled {
        tally.list_unsent(&set);
    }
    tracing::info!(
        calling_ae = assoc.calling_ae,
        destination = peer.ae_title,
        completed = tally.completed,
        failed = tally.failed,
        cancelled,
        "C-MOVE"
    );
    audit_move(
        service,
        assoc,
        &set,
        &peer.ae_title,
        &tally.outcome(cancelled),
    );
    final_response(assoc, ctx, req, tally.final_status(cancelled), "", &tally).await
}

pub async fn serve_get(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    identifier_bytes: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let archive = service.archive;
    let Some(set) = resolve(assoc, ctx, req, identifier_bytes, archive).await? else {
        return Ok(());
    };
    let roles: Vec<String> = set
        .iter()
        .map(|(_, r)| r.sop_class_uid.clone())
        .filter(|c| assoc.peer_is_scp_for(c))
        .collect();
    let calling_ae = assoc.calling_ae.clone();
    let mut ops = SubOperations {
        target: assoc,
        tally: Tally::of(&set),
        cancel: Cancel {
            watch_for: Some(req),
            cancelled: false,
        },
        originator: None,
    };
    let prepare_for = |ops: &SubOperations, rec: &InstanceRecord| {
        if !roles.contains(&rec.sop_class_uid) {
            return Err(SubOperationError::NoScpRole(rec.sop_class_uid.clone()));
        }
        ops.prepare(archive, rec)
    };
    let mut next = set.first().map(|(_, rec)| prepare_for(&ops, rec));
    for (i, (sop, rec)) in set.iter().enumerate() {
        let Some(current) = next.take() else { break };
        if ops.cancel.cancelled {
            break;
        }
        next = set.get(i + 1).map(|(_, r)| prepare_for(&ops, r));
        // Our own message IDs on the requestor's association: the upper half, apart from its.
        let message_id = 0x8000 + (i as u16 & 0x7FFF);
        match ops.store(current, sop, rec, message_id).await {
            Err(SubOperationError::Association(e)) => return Err(e),
            outcome => ops.tally.record(sop, outcome, "C-GET requestor"),
        }
        if ops.tally.remaining > 0 && !ops.cancel.cancelled {
            send_pending(ops.target, ctx, req, &ops.tally).await?;
        }
    }
    let cancelled = ops.cancel.cancelled;
    let mut tally = ops.tally;
    if cancelled {
        tally.list_unsent(&set);
    }
    tracing::info!(
        calling_ae,
        completed = tally.completed,
        failed = tally.failed,
        cancelled,
        "C-GET"
    );
    crate::audit::retrieve(
        service.audit,
        "dicom.get",
        &calling_ae,
        &assoc.peer_address,
        &set,
        "to the requestor",
        &tally.outcome(cancelled),
    );
    final_response(assoc, ctx, req, tally.final_status(cancelled), "", &tally).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

    fn receiver(accepted: &[(u8, &str, &str)]) -> HashMap<u8, AcceptedContext> {
        accepted
            .iter()
            .map(|(id, abs, ts)| {
                let c = AcceptedContext {
                    abstract_syntax: (*abs).to_owned(),
                    transfer_syntax: (*ts).to_owned(),
                };
                (*id, c)
            })
            .collect()
    }

    #[test]
    fn the_stored_syntax_wins_then_a_native_one() {
        let r = receiver(&[
            (1, CT, transfer_syntax::IMPLICIT_VR_LE),
            (3, CT, JPEG_BASELINE),
        ]);
        assert_eq!(
            choose_context(&r, CT, JPEG_BASELINE),
            Ok((3, JPEG_BASELINE.into()))
        );
        let native = transfer_syntax::IMPLICIT_VR_LE.to_owned();
        assert_eq!(
            choose_context(&r, CT, transfer_syntax::EXPLICIT_VR_LE),
            Ok((1, native))
        );
    }

    #[test]
    fn a_receiver_accepting_only_what_we_cannot_encode_is_told_so() {
        let r = receiver(&[(1, CT, JPEG_BASELINE)]);
        let why = choose_context(&r, CT, transfer_syntax::EXPLICIT_VR_LE).unwrap_err();
        assert!(why.contains("no encoder"), "{why}");
        assert!(why.contains(JPEG_BASELINE), "{why}");
        assert!(!why.contains("decoder"), "{why}");
    }

    /// A JPEG-LS instance goes to a native-only receiver exactly when pacsbox-imaging can
    /// decompress it, i.e. only in a build with the native codecs.
    #[test]
    fn jpeg_ls_is_offered_native_only_where_it_can_be_decompressed() {
        const JPEG_LS: &str = "1.2.840.10008.1.2.4.80";
        let r = receiver(&[(1, CT, transfer_syntax::EXPLICIT_VR_LE)]);
        let chosen = choose_context(&r, CT, JPEG_LS);
        if pacsbox_imaging::can_decompress(JPEG_LS) {
            assert_eq!(chosen, Ok((1, transfer_syntax::EXPLICIT_VR_LE.to_owned())));
        } else {
            let why = chosen.unwrap_err();
            assert!(why.contains("no decoder"), "{why}");
        }
    }

    /// 140 000 instances, 70 000 of them stored with a warning: more than a DIMSE count field
    /// holds; the counts saturate, the tally does not overflow, and every instance is still
    /// accounted for.
    #[test]
    fn sub_operation_counts_saturate_at_the_dimse_field() {
        let n = 140_000;
        let mut t = Tally {
            remaining: n,
            ..Tally::default()
        };
        let req = Command::request(CommandField::CMoveRq, 1);
        let pending = t.put_counts(Command::response_to(&req, Status::PENDING), true);
        assert_eq!(pending.remaining, Some(u16::MAX));
        assert_eq!(pending.completed, Some(0));
        for i in 0..n {
            let status = if i % 2 == 0 {
                Status::SUCCESS
            } else {
                Status::SUBOPERATIONS_FAILED
            };
            t.record("1.2.3", Ok(status), "test");
        }
        assert_eq!((t.completed, t.warning, t.remaining), (n / 2, n / 2, 0));
        let last = t.put_counts(Command::response_to(&req, Status::SUCCESS), false);
        assert_eq!(last.remaining, None);
        assert_eq!(last.completed, Some(u16::MAX));
        assert_eq!(last.warning, Some(u16::MAX));
        assert_eq!(last.failed, Some(0));
        assert_eq!(t.final_status(false), Status::SUBOPERATIONS_FAILED);
    }

    #[test]
    fn a_receiver_without_the_class_is_told_so() {
        let r = receiver(&[(1, CT, transfer_syntax::EXPLICIT_VR_LE)]);
        let why = choose_context(&r, "1.2.840.10008.5.1.4.1.1.4", JPEG_BASELINE).unwrap_err();
        assert!(why.contains("no context for SOP class"), "{why}");
    }
}
