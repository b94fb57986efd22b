//! Storage Commitment Push Model SCP (PS3.4 Annex J): N-ACTION in, N-ACTION-RSP at once,
//! then the check (`pacsbox_archive::commitment`: indexed, right class, file re-hashed now) and
//! the N-EVENT-REPORT — on the same association when the requestor is still there, else on a
//! new one to its AE from the peer table, sent by the [`Reporter`] task, which also delivers
//! what a restart left pending (the requests are in redb from before the N-ACTION-RSP until
//! the N-EVENT-REPORT-RSP).
//!
//! On a new association we stay the SCP of the SOP class and say so with SCP/SCU role
//! selection (SCU role 0, SCP role 1: PS3.4 J.3.3 / PS3.7 D.3.3.4), as DCMTK and pynetdicom
//! acceptors expect of the N-EVENT-REPORT's sender.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::uids;
use dicom_object::InMemDicomObject;
use dicom_ul::Pdu;
use dicom_ul::pdu::{PDataValueType, RequestorRoles};
use pacsbox_archive::Archive;
use pacsbox_archive::commitment::{Commitment, Outcome, Reference};
use pacsbox_archive::transfer_syntax;
use pacsbox_audit::{Audit, Event};
use tokio::sync::{Notify, watch};

use crate::association::{AssocError, Association};
use crate::context::{ScpConfig, ServiceContext};
use crate::dimse::{Command, CommandField, Status, respond};
use crate::scu::Destination;
use crate::trust::PeerTrust;

/// The Storage Commitment Push Model SOP Class and its well-known instance.
pub const PUSH_MODEL: &str = uids::STORAGE_COMMITMENT_PUSH_MODEL;
pub const PUSH_MODEL_INSTANCE: &str = "1.2.840.10008.1.20.1.1";

const TRANSACTION_UID: Tag = Tag(0x0008, 0x1195);
const REFERENCED_SOP_SEQUENCE: Tag = Tag(0x0008, 0x1199);
const FAILED_SOP_SEQUENCE: Tag = Tag(0x0008, 0x1198);
const REFERENCED_SOP_CLASS_UID: Tag = Tag(0x0008, 0x1150);
const REFERENCED_SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x1155);
const FAILURE_REASON: Tag = Tag(0x0008, 0x1197);
/// Requests beyond this many instances are refused: the report is one data set in memory.
const MAX_REFERENCES: usize = 100_000;

/// Requests whose report an association is delivering itself (the task leaves them alone),
/// and the bell that wakes the task when one is left to it.
#[derive(Default)]
pub struct Reporter {
    claimed: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Reporter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.claimed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn claim(&self, transaction: &str) -> Claim<'_> {
        self.lock().insert(transaction.to_owned());
        Claim {
            reporter: self,
            transaction: transaction.to_owned(),
        }
    }
}

/// Gives a request back to the task however the association's attempt ends.
struct Claim<'a> {
    reporter: &'a Reporter,
    transaction: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.reporter.lock().remove(&self.transaction);
        self.reporter.wake.notify_one();
    }
}

/// An N-ACTION-RQ's data set, checked; the error is the N-ACTION-RSP's status and comment.
fn parse_request(
    req: &Command,
    bytes: &[u8],
    ts: &str,
) -> Result<(String, Vec<Reference>), (Status, String)> {
    if req.requested_sop_class_uid.as_deref() != Some(PUSH_MODEL) {
        return Err((
            Status::NO_SUCH_SOP_CLASS,
            "not the Storage Commitment Push Model".into(),
        ));
    }
    if req.requested_sop_instance_uid.as_deref() != Some(PUSH_MODEL_INSTANCE) {
        return Err((
            Status::INVALID_OBJECT_INSTANCE,
            format!("requested SOP instance is not {PUSH_MODEL_INSTANCE}"),
        ));
    }
    if req.action_type_id != Some(1) {
        return Err((
            Status::NO_SUCH_ACTION,
            format!(
                "action type {:?}: only 1 (request commitment)",
                req.action_type_id
            ),
        ));
    }
    let obj = read_dataset(bytes, ts).map_err(|e| (Status::PROCESSING_FAILURE, e))?;
    let missing = |what: &str| (Status::MISSING_ATTRIBUTE, format!("no {what}"));
    let transaction = text(&obj, TRANSACTION_UID).ok_or_else(|| missing("Transaction UID"))?;
    let items = obj
        .get(REFERENCED_SOP_SEQUENCE)
        .and_then(|e| e.items())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| missing("Referenced SOP Sequence"))?;
    if items.len() > MAX_REFERENCES {
        return Err((
            Status::PROCESSING_FAILURE,
            format!("more than {MAX_REFERENCES} instances in one request"),
        ));
    }
    let mut refs = Vec::with_capacity(items.len());
    for item in items {
        let (Some(class), Some(instance)) = (
            text(item, REFERENCED_SOP_CLASS_UID),
            text(item, REFERENCED_SOP_INSTANCE_UID),
        ) else {
            return Err(missing("Referenced SOP Class/Instance UID in an item"));
        };
        refs.push(Reference {
            sop_class_uid: class,
            sop_instance_uid: instance,
        });
    }
    Ok((transaction, refs))
}

fn read_dataset(bytes: &[u8], ts: &str) -> Result<InMemDicomObject, String> {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let ts = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| format!("unknown transfer syntax {ts}"))?;
    InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| format!("undecodable data set: {e}"))
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn reference_item(r: &Reference, failure: Option<u16>) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    item.put(DataElement::new(
        REFERENCED_SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(r.sop_class_uid.as_str()),
    ));
    item.put(DataElement::new(
        REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(r.sop_instance_uid.as_str()),
    ));
    if let Some(reason) = failure {
        item.put(DataElement::new(
            FAILURE_REASON,
            VR::US,
            PrimitiveValue::from(reason),
        ));
    }
    item
}

/// The N-EVENT-REPORT-RQ (command, data set in `ts`): Event Type 1 when every instance is
/// committed, 2 with the Failed SOP Sequence otherwise (PS3.4 J.3.3).
fn event_report(
    c: &Commitment,
    outcome: &Outcome,
    ts: &str,
    message_id: u16,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        TRANSACTION_UID,
        VR::UI,
        PrimitiveValue::from(c.transaction_uid.as_str()),
    ));
    if !outcome.committed.is_empty() {
        let items: Vec<_> = outcome
            .committed
            .iter()
            .map(|r| reference_item(r, None))
            .collect();
        obj.put(DataElement::new(
            REFERENCED_SOP_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(items),
        ));
    }
    if !outcome.failed.is_empty() {
        let items: Vec<_> = outcome
            .failed
            .iter()
            .map(|(r, f)| reference_item(r, Some(f.reason())))
            .collect();
        obj.put(DataElement::new(
            FAILED_SOP_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(items),
        ));
    }
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let syntax = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| format!("unknown transfer syntax {ts}"))?;
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, syntax)
        .map_err(|e| format!("encoding the event report: {e}"))?;
    let mut cmd = Command::request(CommandField::NEventReportRq, message_id);
    cmd.affected_sop_class_uid = Some(PUSH_MODEL.into());
    cmd.affected_sop_instance_uid = Some(PUSH_MODEL_INSTANCE.into());
    cmd.event_type_id = Some(if outcome.failed.is_empty() { 1 } else { 2 });
    cmd.data_set_type = 0x0000;
    Ok((cmd.encode(), data))
}

/// Sends the report on `assoc`'s context `ctx` and waits for its N-EVENT-REPORT-RSP. `Ok(false)`:
/// the peer released or left instead of answering (the report goes on a new association).
async fn send_report(
    assoc: &mut Association,
    ctx: u8,
    c: &Commitment,
    outcome: &Outcome,
) -> Result<bool, AssocError> {
    let ts = assoc.context(ctx)?.transfer_syntax;
    let (cmd, data) = event_report(c, outcome, &ts, 1).map_err(AssocError::Malformed)?;
    assoc.send_command(ctx, cmd).await?;
    assoc.send_data(ctx, data).await?;
    match assoc.receive().await {
        Ok(Pdu::PData { data }) => {
            let rsp = data
                .iter()
                .filter(|v| v.value_type == PDataValueType::Command)
                .find_map(|v| Command::decode(&v.data).ok())
                .filter(|c| c.field == CommandField::NEventReportRsp);
            match rsp {
                Some(rsp) => {
                    let status = rsp.status.unwrap_or(Status::SUCCESS);
                    if status.is_failure() {
                        tracing::warn!(
                            transaction = c.transaction_uid,
                            ?status,
                            "requestor answered the storage commitment report with a failure"
                        );
                    }
                }
                // Something else first (a new request): the report was sent; the
                // association's loop serves that request.
                None => assoc.put_back(Ok(Pdu::PData { data })),
            }
            Ok(true)
        }
        other => {
            assoc.put_back(other);
            Ok(false)
        }
    }
}

/// Whether the requestor already asked to end the association (or left) while we checked.
fn requestor_gone(assoc: &mut Association) -> bool {
    match assoc.try_receive() {
        None => false,
        Some(r) => {
            let gone = !matches!(r, Ok(Pdu::PData { .. }));
            assoc.put_back(r);
            gone
        }
    }
}

/// Serves one N-ACTION-RQ whose data set is `bytes`.
pub(crate) async fn serve(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    bytes: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let context = assoc.context(ctx)?;
    let client = assoc.peer_address.clone();
    let calling = assoc.calling_ae.clone();
    // Only on a Storage Commitment context, which was accepted only with the store right.
    let parsed = if context.abstract_syntax == PUSH_MODEL {
        parse_request(req, bytes, &context.transfer_syntax)
    } else {
        Err((
            Status::NO_SUCH_SOP_CLASS,
            "N-ACTION outside a Storage Commitment context".into(),
        ))
    };
    let (transaction, references) = match parsed {
        Ok(r) => r,
        Err((status, comment)) => {
            tracing::warn!(
                calling_ae = calling,
                ?status,
                comment,
                "storage commitment request refused"
            );
            service.audit.record(
                Event::new("commitment.request", &calling, &client)
                    .outcome(format!("refused: {comment}"))
                    .detail(format!("status {status:?}")),
            );
            return respond(assoc, ctx, req, status, &comment).await;
        }
    };
    let now = pacsbox_audit::now_unix();
    let c = Commitment {
        transaction_uid: transaction,
        requestor_ae: calling.clone(),
        requested_unix: now,
        references,
        attempts: 0,
        next_attempt_unix: now,
    };
    let _claim = service.commitments.claim(&c.transaction_uid);
    let (archive, stored) = (service.archive.clone(), c.clone());
    let added = tokio::task::spawn_blocking(move || archive.add_commitment(&stored))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = added {
        tracing::error!(calling_ae = calling, error = %e, "recording a storage commitment request");
        service.audit.record(
            Event::new("commitment.request", &calling, &client)
                .outcome(format!("failed: {e}"))
                .detail(format!("transaction {}", c.transaction_uid)),
        );
        return respond(
            assoc,
            ctx,
            req,
            Status::PROCESSING_FAILURE,
            "cannot record the request",
        )
        .await;
    }
    service.audit.record(
        Event::new("commitment.request", &calling, &client).detail(format!(
            "transaction {}: {} instance(s)",
            c.transaction_uid,
            c.references.len()
        )),
    );
    respond(assoc, ctx, req, Status::SUCCESS, "").await?;
    let outcome = check(service.archive, &c).await;
    if requestor_gone(assoc) {
        tracing::info!(
            calling_ae = calling,
            transaction = c.transaction_uid,
            "storage commitment requestor left: report on a new association"
        );
        return Ok(());
    }
    if send_report(assoc, ctx, &c, &outcome).await? {
        finished(
            service.archive,
            service.audit,
            &c,
            &outcome,
            &client,
            "same association",
        )
        .await;
    }
    Ok(())
}

async fn check(archive: &Archive, c: &Commitment) -> Outcome {
    let (archive, refs) = (archive.clone(), c.references.clone());
    match tokio::task::spawn_blocking(move || archive.check_commitment(&refs)).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "storage commitment check did not finish");
            Outcome {
                committed: Vec::new(),
                failed: c
                    .references
                    .iter()
                    .map(|r| {
                        (
                            r.clone(),
                            pacsbox_archive::commitment::Failure::ProcessingFailure,
                        )
                    })
                    .collect(),
            }
        }
    }
}

/// The report was answered: the request is done, and the trail says how it ended.
async fn finished(
    archive: &Archive,
    audit: &Audit,
    c: &Commitment,
    outcome: &Outcome,
    client: &str,
    how: &str,
) {
    let (a, t) = (archive.clone(), c.transaction_uid.clone());
    match tokio::task::spawn_blocking(move || a.finish_commitment(&t)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(transaction = c.transaction_uid, error = %e, "removing a reported storage commitment (it will be reported again)")
        }
        Err(e) => tracing::error!(error = %e, "removing a reported storage commitment"),
    }
    let outcome_text = if outcome.failed.is_empty() {
        "ok".to_owned()
    } else {
        format!("partial: {} not committed", outcome.failed.len())
    };
    tracing::info!(
        requestor = c.requestor_ae,
        transaction = c.transaction_uid,
        committed = outcome.committed.len(),
        failed = outcome.failed.len(),
        how,
        "storage commitment reported"
    );
    audit.record(
        Event::new("commitment.report", &c.requestor_ae, client)
            .outcome(outcome_text)
            .detail(format!(
                "transaction {}: {} committed, {} failed; {how}",
                c.transaction_uid,
                outcome.committed.len(),
                outcome.failed.len()
            )),
    );
}

/// Delivers a report on a new association to the requestor's AE (peer table: host, port, TLS).
async fn deliver_new(
    archive: &Archive,
    config: &ScpConfig,
    trust: Option<&PeerTrust>,
    c: &Commitment,
) -> Result<Outcome, String> {
    let peer = archive
        .peer(&c.requestor_ae)
        .map_err(|e| format!("reading the peer table: {e}"))?
        .ok_or("not in the peer table")?;
    let dest = Destination::of(peer).map_err(str::to_owned)?;
    let outcome = check(archive, c).await;
    let proposals = vec![(
        PUSH_MODEL.to_owned(),
        vec![
            transfer_syntax::EXPLICIT_VR_LE.to_owned(),
            transfer_syntax::IMPLICIT_VR_LE.to_owned(),
        ],
    )];
    let roles = [(
        PUSH_MODEL.to_owned(),
        RequestorRoles {
            scu: false,
            scp: true,
        },
    )];
    let mut assoc = dest
        .connect_with_roles(trust, &config.ae_title, &proposals, &roles, config)
        .await?;
    let Some(ctx) = assoc
        .contexts
        .iter()
        .find(|(_, a)| a.abstract_syntax == PUSH_MODEL)
        .map(|(id, _)| *id)
    else {
        assoc.release().await;
        return Err("the requestor did not accept the Storage Commitment context".into());
    };
    let sent = send_report(&mut assoc, ctx, c, &outcome).await;
    assoc.release().await;
    match sent {
        Ok(true) => Ok(outcome),
        Ok(false) => Err("the requestor ended the association without answering".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds before the next attempt after `attempts` failed ones: 10 s doubling, at most an hour.
fn retry_in(attempts: u32) -> i64 {
    (10i64 << attempts.min(9)).min(3600)
}

/// The task that reports on new associations: what associations left to it, and after a
/// start what the last run left pending. Ends with `shutdown`.
pub async fn run_reporter(
    archive: Archive,
    config: Arc<ScpConfig>,
    trust: Option<Arc<PeerTrust>>,
    audit: Audit,
    reporter: Arc<Reporter>,
    mut shutdown: watch::Receiver<bool>,
) {
    // After a start everything pending is tried at once: the requestor has waited long enough.
    let mut first = true;
    loop {
        let a = archive.clone();
        let pending = match tokio::task::spawn_blocking(move || a.pending_commitments()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading pending storage commitments");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let mut next_due: Option<i64> = None;
        for mut c in pending {
            if *shutdown.borrow() {
                return;
            }
            if reporter.lock().contains(&c.transaction_uid) {
                continue;
            }
            let now = pacsbox_audit::now_unix();
            if !first && c.next_attempt_unix > now {
                next_due =
                    Some(next_due.map_or(c.next_attempt_unix, |d| d.min(c.next_attempt_unix)));
                continue;
            }
            // A requestor that never answers must not hold up the box's stop: the request
            // stays recorded and is reported after the next start.
            let delivered = tokio::select! {
                r = deliver_new(&archive, &config, trust.as_deref(), &c) => r,
                _ = shutdown.changed() => return,
            };
            match delivered {
                Ok(outcome) => {
                    finished(&archive, &audit, &c, &outcome, "", "new association").await;
                }
                Err(e) => {
                    c.attempts += 1;
                    c.next_attempt_unix = now + retry_in(c.attempts);
                    tracing::warn!(
                        requestor = c.requestor_ae,
                        transaction = c.transaction_uid,
                        attempts = c.attempts,
                        error = e,
                        "storage commitment report not delivered; will retry"
                    );
                    if c.attempts == 1 {
                        audit.record(
                            Event::new("commitment.report", &c.requestor_ae, "")
                                .outcome(format!("failed: {e}"))
                                .detail(format!(
                                    "transaction {}: retrying until delivered",
                                    c.transaction_uid
                                )),
                        );
                    }
                    next_due =
                        Some(next_due.map_or(c.next_attempt_unix, |d| d.min(c.next_attempt_unix)));
                    let a = archive.clone();
                    let stored = c.clone();
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || a.update_commitment(&stored)).await
                    {
                        tracing::error!(error = %e, "recording a storage commitment's attempt");
                    }
                }
            }
        }
        first = false;
        let wait = next_due
            .map(|d| (d - pacsbox_audit::now_unix()).clamp(1, 60))
            .unwrap_or(60);
        tokio::select! {
            _ = reporter.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(wait as u64)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n_action(class: &str, instance: &str, action: Option<u16>) -> Command {
        let mut rq = Command::request(CommandField::NActionRq, 3);
        rq.requested_sop_class_uid = Some(class.into());
        rq.requested_sop_instance_uid = Some(instance.into());
        rq.action_type_id = action;
        rq.data_set_type = 0;
        rq
    }

    fn dataset(transaction: Option<&str>, refs: &[Reference]) -> Vec<u8> {
        let c = Commitment {
            transaction_uid: transaction.unwrap_or("").into(),
            requestor_ae: "X".into(),
            requested_unix: 0,
            references: vec![],
            attempts: 0,
            next_attempt_unix: 0,
        };
        let o = Outcome {
            committed: refs.to_vec(),
            failed: vec![],
        };
        event_report(&c, &o, transaction::IMPLICIT, 1).unwrap().1
    }

    mod transaction {
        pub const IMPLICIT: &str = "1.2.840.10008.1.2";
    }

    #[test]
    fn requests_are_checked_with_the_statuses_of_ps3_4() {
        let r = Reference {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
            sop_instance_uid: "1.2.3.4".into(),
        };
        let ok = dataset(Some("1.2.3.99"), std::slice::from_ref(&r));
        let ts = transaction::IMPLICIT;
        let good = n_action(PUSH_MODEL, PUSH_MODEL_INSTANCE, Some(1));
        assert_eq!(
            parse_request(&good, &ok, ts).unwrap(),
            ("1.2.3.99".to_owned(), vec![r.clone()])
        );
        let status = |rq: &Command, data: &[u8]| parse_request(rq, data, ts).unwrap_err().0;
        assert_eq!(
            status(&n_action(PUSH_MODEL, PUSH_MODEL_INSTANCE, Some(2)), &ok),
            Status::NO_SUCH_ACTION
        );
        assert_eq!(
            status(&n_action(PUSH_MODEL, "1.2.3", Some(1)), &ok),
            Status::INVALID_OBJECT_INSTANCE
        );
        assert_eq!(
            status(&good, &dataset(None, std::slice::from_ref(&r))),
            Status::MISSING_ATTRIBUTE
        );
        assert_eq!(
            status(&good, &dataset(Some("1.2.3.99"), &[])),
            Status::MISSING_ATTRIBUTE
        );
    }

    #[test]
    fn failures_go_in_the_failed_sop_sequence_with_event_type_2() {
        let r = Reference {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
            sop_instance_uid: "1.2.3.4".into(),
        };
        let c = Commitment {
            transaction_uid: "1.2.3.99".into(),
            requestor_ae: "X".into(),
            requested_unix: 0,
            references: vec![r.clone()],
            attempts: 0,
            next_attempt_unix: 0,
        };
        let o = Outcome {
            committed: vec![],
            failed: vec![(r, pacsbox_archive::commitment::Failure::NoSuchObject)],
        };
        let (cmd, data) = event_report(&c, &o, transaction::IMPLICIT, 5).unwrap();
        let cmd = Command::decode(&cmd).unwrap();
        assert_eq!(cmd.event_type_id, Some(2));
        let obj = read_dataset(&data, transaction::IMPLICIT).unwrap();
        assert!(obj.get(REFERENCED_SOP_SEQUENCE).is_none());
        let failed = obj
            .get(FAILED_SOP_SEQUENCE)
            .and_then(|e| e.items())
            .unwrap();
        assert_eq!(
            failed[0]
                .get(FAILURE_REASON)
                .unwrap()
                .to_int::<u16>()
                .unwrap(),
            0x0112
        );
    }
}
