//! C-MOVE and C-GET SCP (PS3.4 Annex C.4.2, C.4.3): find the instances under the identifier,
//! send each as a C-STORE sub-operation — over a new association to a known peer (MOVE) or
//! back on the requesting association (GET) — with pending counts after each, honouring
//! C-CANCEL.
//!
//! Each sub-operation is a C-STORE by `scu.rs` (the syntax chosen per receiver, decompression
//! where pacsbox-imaging can: JPEG incl. 12-bit Extended, RLE, JPEG 2000, deflate, and JPEG-LS
//! in a build with the native codecs). A stored object that cannot be decompressed fails its
//! sub-operation with a reason naming the syntax.

use dicom_ul::Pdu;
use dicom_ul::pdu::AbortRQServiceProviderReason;
use pacsbox_archive::peers::AccessMode;
use pacsbox_archive::transfer_syntax::DatasetEncoding;
use pacsbox_archive::{Archive, InstanceRecord};

use crate::association::{AssocError, Association};
use crate::context::ServiceContext;
use crate::dimse::{Command, Status, is_cancel, respond};
use crate::identifier::{self, encode_elements};
use crate::scu::{self, Cancel, Destination, Ready, SubOperationError};
use crate::sop_classes::model_of;

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

impl SubOperations<'_> {
    fn prepare(&self, archive: &Archive, rec: &InstanceRecord) -> Result<Ready, SubOperationError> {
        scu::prepare(&self.target.contexts, archive, rec)
    }

    /// One C-STORE sub-operation on the target: the receiver's status, or why there is none.
    async fn store(
        &mut self,
        ready: Result<Ready, SubOperationError>,
        sop: &str,
        rec: &InstanceRecord,
        message_id: u16,
    ) -> Result<Status, SubOperationError> {
        let originator = self.originator.as_ref();
        scu::store(
            self.target,
            ready,
            sop,
            rec,
            message_id,
            originator,
            &mut self.cancel,
        )
        .await
    }
}

/// Where a C-MOVE to `dest` goes: a peer with host and port and the `move` right (any peer
/// with host and port in `open` mode). The error is the comment the requestor gets.
fn move_destination(archive: &Archive, dest: &str) -> Result<Destination, &'static str> {
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
    Destination::of(peer).map_err(|_| "move destination has no host and port")
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
    let proposals = scu::proposals(set.iter().map(|(_, rec)| rec));
    let local_ae = assoc.local_ae.clone();
    let connected = peer
        .connect(service.trust, &local_ae, &proposals, config)
        .await;
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
    use crate::dimse::CommandField;

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
}
