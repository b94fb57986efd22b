//! C-MOVE and C-GET SCP (PS3.4 Annex C.4.2, C.4.3): find the instances under the identifier,
//! send each as a C-STORE sub-operation — over a new association to a known peer (MOVE) or
//! back on the requesting association (GET) — with pending counts after each, honouring
//! C-CANCEL.
//!
//! Transfer syntax on the way out: the bytes as stored when the receiver accepts the stored
//! syntax; otherwise a native syntax the receiver accepts — re-encoded with dicom-object from a
//! native stored syntax, or decompressed by pacsbox-imaging (JPEG incl. 12-bit Extended,
//! JPEG-LS, RLE, JPEG 2000, deflate; the same decoders as the web viewer). A stored object that
//! cannot be decompressed fails its sub-operation with a reason naming the syntax.

use std::collections::HashMap;
use std::io::Read;

use dicom_ul::Pdu;
use dicom_ul::pdu::PDataValueType;
use pacsbox_archive::transfer_syntax::{self, DatasetEncoding};
use pacsbox_archive::{Archive, InstanceRecord};
use tokio::sync::mpsc;

use crate::association::{AcceptedContext, AssocError, Association};
use crate::context::ServiceContext;
use crate::dimse::{Command, CommandField, Status, is_cancel, respond};
use crate::identifier::{self, encode_elements};
use crate::sop_classes::model_of;

const NATIVE: [&str; 3] = [
    transfer_syntax::EXPLICIT_VR_LE,
    transfer_syntax::IMPLICIT_VR_LE,
    transfer_syntax::EXPLICIT_VR_BE,
];
/// Encapsulated syntaxes pacsbox-imaging decodes (JPEG-LS only with its native-codecs).
const DECOMPRESSIBLE: [&str; 10] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
    transfer_syntax::DEFLATED_EXPLICIT_VR_LE,
];
/// Data set bytes per P-DATA fragment read from disk at a time.
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Tally {
    remaining: u16,
    completed: u16,
    failed: u16,
    warning: u16,
    failed_uids: Vec<String>,
}

fn counts(mut c: Command, t: &Tally, with_remaining: bool) -> Command {
    c.remaining = with_remaining.then_some(t.remaining);
    c.completed = Some(t.completed);
    c.failed = Some(t.failed);
    c.warning = Some(t.warning);
    c
}

async fn final_response(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    status: Status,
    comment: &str,
    tally: Option<&Tally>,
) -> Result<(), AssocError> {
    let mut rsp = Command::response_to(req, status);
    if !comment.is_empty() {
        rsp = rsp.with_error_comment(comment);
    }
    let mut data = None;
    if let Some(t) = tally {
        rsp = counts(rsp, t, false);
        if !t.failed_uids.is_empty() {
            // Failed SOP Instance UID List (0008,0058)
            rsp.data_set_type = 0x0000;
            let ts = assoc
                .contexts
                .get(&ctx)
                .map(|c| c.transfer_syntax.clone())
                .unwrap_or_default();
            data = Some(encode_elements(
                &[((0x0008, 0x0058), *b"UI", t.failed_uids.join("\\"))],
                DatasetEncoding::of(&ts),
            ));
        }
    }
    assoc.send_command(ctx, rsp.encode()).await?;
    if let Some(d) = data {
        assoc.send_data(ctx, d).await?;
    }
    Ok(())
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
    let decodable = NATIVE.contains(&stored) || DECOMPRESSIBLE.contains(&stored);
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
/// `Err`: why the receiver cannot take this instance (the sub-operation fails with it).
type Prepared = Result<(u8, mpsc::Receiver<std::io::Result<Vec<u8>>>), String>;

fn prepare(target: &Association, archive: &Archive, rec: &InstanceRecord) -> Prepared {
    let (ctx, ts) = choose_context(&target.contexts, &rec.sop_class_uid, &rec.transfer_syntax)?;
    Ok((ctx, spawn_reader(archive, rec.clone(), ts)))
}

/// One C-STORE sub-operation on `target`. Returns the receiver's status or the reason it could
/// not be attempted. `cancel_of`: on C-GET, the request whose C-CANCEL may arrive meanwhile.
async fn store_one(
    target: &mut Association,
    prepared: Prepared,
    sop: &str,
    rec: &InstanceRecord,
    message_id: u16,
    originator: Option<(&str, u16)>,
    mut cancel: Option<(&Command, &mut bool)>,
) -> Result<Result<Status, String>, AssocError> {
    let (ctx, mut chunks) = match prepared {
        Ok(p) => p,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut rq = Command::request(CommandField::CStoreRq, message_id);
    rq.affected_sop_class_uid = Some(rec.sop_class_uid.clone());
    rq.affected_sop_instance_uid = Some(sop.to_owned());
    rq.priority = Some(0);
    rq.data_set_type = 0x0000;
    if let Some((ae, id)) = originator {
        rq.move_originator_ae = Some(ae.to_owned());
        rq.move_originator_message_id = Some(id);
    }
    // Read ahead one chunk so the last fragment can be flagged; a read error before anything
    // was sent fails only this sub-operation.
    let mut next = match chunks.recv().await {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Ok(Err(format!("reading {}: {e}", rec.rel_path))),
        None => Some(Vec::new()),
    };
    target.send_command(ctx, rq.encode()).await?;
    while let Some(chunk) = next.take() {
        next = match chunks.recv().await {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                // Mid-data-set failure: the receiver would take a truncated object; abort.
                return Err(AssocError::Malformed(format!(
                    "reading {} while sending: {e}",
                    rec.rel_path
                )));
            }
            None => None,
        };
        target
            .send_pdata_fragment(ctx, chunk, next.is_none())
            .await?;
    }
    // Wait for the C-STORE-RSP (on C-GET a C-CANCEL of the C-GET may come first).
    loop {
        match target.receive().await? {
            Pdu::PData { data } => {
                if let Some((get, cancelled)) = cancel.as_mut()
                    && is_cancel(&data, get)
                {
                    **cancelled = true;
                    continue;
                }
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command
                        && let Ok(c) = Command::decode(&pdv.data)
                        && c.field == CommandField::CStoreRsp
                        && c.message_id_responded_to == Some(message_id)
                    {
                        return Ok(Ok(c.status.unwrap_or(Status::PROCESSING_FAILURE)));
                    }
                }
            }
            Pdu::AbortRQ { source } => return Err(AssocError::Aborted(format!("{source:?}"))),
            other => {
                return Err(AssocError::Malformed(format!(
                    "unexpected {} while waiting for C-STORE-RSP",
                    other.short_description()
                )));
            }
        }
    }
}

fn record(tally: &mut Tally, sop: &str, outcome: Result<Status, String>, peer: &str) {
    tally.remaining = tally.remaining.saturating_sub(1);
    match outcome {
        Ok(s) if s == Status::SUCCESS => tally.completed += 1,
        Ok(s) if !s.is_failure() => tally.warning += 1,
        Ok(s) => {
            tracing::warn!(sop_instance_uid = sop, peer, status = ?s, "C-STORE sub-operation failed");
            tally.failed += 1;
            tally.failed_uids.push(sop.to_owned());
        }
        Err(reason) => {
            tracing::warn!(
                sop_instance_uid = sop,
                peer,
                reason,
                "C-STORE sub-operation not attempted"
            );
            tally.failed += 1;
            tally.failed_uids.push(sop.to_owned());
        }
    }
}

/// After a C-CANCEL, the instances never attempted go into the Failed SOP Instance UID List.
fn list_unsent(t: &mut Tally, set: &[(String, InstanceRecord)]) {
    let attempted = usize::from(t.completed + t.failed + t.warning);
    t.failed_uids
        .extend(set.iter().skip(attempted).map(|(sop, _)| sop.clone()));
}

fn final_status(t: &Tally, cancelled: bool) -> Status {
    if cancelled {
        Status::CANCEL
    } else if t.failed > 0 || t.warning > 0 {
        Status::SUBOPERATIONS_FAILED
    } else {
        Status::SUCCESS
    }
}

async fn send_pending(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    t: &Tally,
) -> Result<(), AssocError> {
    let rsp = counts(Command::response_to(req, Status::PENDING), t, true);
    assoc.send_command(ctx, rsp.encode()).await
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
    let Some(peer) = config
        .peers
        .iter()
        .find(|p| p.ae_title == dest.trim())
        .cloned()
    else {
        tracing::warn!(
            calling_ae = assoc.calling_ae,
            destination = dest,
            "C-MOVE to an unknown AE"
        );
        return respond(
            assoc,
            ctx,
            req,
            Status::MOVE_DESTINATION_UNKNOWN,
            "move destination unknown",
        )
        .await;
    };
    let Some(set) = resolve(assoc, ctx, req, identifier_bytes, archive).await? else {
        return Ok(());
    };
    let mut tally = Tally {
        remaining: u16::try_from(set.len()).unwrap_or(u16::MAX),
        ..Tally::default()
    };
    if set.is_empty() {
        return final_response(assoc, ctx, req, Status::SUCCESS, "", Some(&tally)).await;
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
    let mut sub = match Association::request(
        &peer.host,
        peer.port,
        &local_ae,
        &peer.ae_title,
        &proposals,
        config.max_pdu,
        config.idle_timeout,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(destination = peer.ae_title, error = %e, "C-MOVE destination unreachable");
            for (sop, _) in &set {
                tally.failed_uids.push(sop.clone());
            }
            tally.failed = tally.remaining;
            tally.remaining = 0;
            let comment = format!("cannot associate with {}: {e}", peer.ae_title);
            return final_response(
                assoc,
                ctx,
                req,
                Status::UNABLE_TO_PERFORM_SUBOPERATIONS,
                &comment,
                Some(&tally),
            )
            .await;
        }
    };
    let originator = (assoc.calling_ae.clone(), req.message_id.unwrap_or(0));
    let mut cancelled = false;
    let mut next = set.first().map(|(_, rec)| prepare(&sub, archive, rec));
    for (i, (sop, rec)) in set.iter().enumerate() {
        // C-CANCEL arrives on the requesting association; look without waiting.
        tokio::select! {
            biased;
            pdu = assoc.receive_while_busy() => match pdu? {
                Pdu::PData { data } if is_cancel(&data, req) => cancelled = true,
                other => {
                    sub.release().await;
                    return Err(AssocError::Malformed(format!("unexpected {} during C-MOVE", other.short_description())));
                }
            },
            _ = std::future::ready(()) => {}
        }
        let Some(current) = next.take() else { break };
        if cancelled {
            break;
        }
        next = set.get(i + 1).map(|(_, r)| prepare(&sub, archive, r));
        let outcome = store_one(
            &mut sub,
            current,
            sop,
            rec,
            (i + 1) as u16,
            Some((&originator.0, originator.1)),
            None,
        )
        .await;
        match outcome {
            Ok(o) => record(&mut tally, sop, o, &peer.ae_title),
            Err(e) => {
                tracing::warn!(destination = peer.ae_title, error = %e, "C-MOVE sub-association failed");
                // Possibly mid data set: an A-ABORT tells the destination not to keep the
                // fragments so far (a plain close would let a careless one store them).
                if !matches!(e, AssocError::Closed | AssocError::Aborted(_)) {
                    sub.abort(dicom_ul::pdu::AbortRQServiceProviderReason::ReasonNotSpecified)
                        .await;
                }
                for (sop, _) in &set[i..] {
                    tally.failed_uids.push(sop.clone());
                }
                tally.failed += tally.remaining;
                tally.remaining = 0;
                let comment = format!("{} dropped the association: {e}", peer.ae_title);
                return final_response(
                    assoc,
                    ctx,
                    req,
                    Status::SUBOPERATIONS_FAILED,
                    &comment,
                    Some(&tally),
                )
                .await;
            }
        }
        if tally.remaining > 0 {
            send_pending(assoc, ctx, req, &tally).await?;
        }
    }
    sub.release().await;
    if cancelled {
        list_unsent(&mut tally, &set);
    }
    tracing::info!(
        calling_ae = assoc.calling_ae,
        destination = peer.ae_title,
        completed = tally.completed,
        failed = tally.failed,
        cancelled,
        "C-MOVE"
    );
    final_response(
        assoc,
        ctx,
        req,
        final_status(&tally, cancelled),
        "",
        Some(&tally),
    )
    .await
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
    let mut tally = Tally {
        remaining: u16::try_from(set.len()).unwrap_or(u16::MAX),
        ..Tally::default()
    };
    let mut cancelled = false;
    let roles: Vec<String> = set
        .iter()
        .map(|(_, r)| r.sop_class_uid.clone())
        .filter(|c| assoc.peer_is_scp_for(c))
        .collect();
    let prepare_for = |assoc: &Association, rec: &InstanceRecord| -> Prepared {
        if !roles.contains(&rec.sop_class_uid) {
            return Err(format!(
                "requestor did not take the SCP role for {}",
                rec.sop_class_uid
            ));
        }
        prepare(assoc, archive, rec)
    };
    let mut next = set.first().map(|(_, rec)| prepare_for(assoc, rec));
    for (i, (sop, rec)) in set.iter().enumerate() {
        let Some(current) = next.take() else { break };
        if cancelled {
            break;
        }
        next = set.get(i + 1).map(|(_, r)| prepare_for(assoc, r));
        let outcome = store_one(
            assoc,
            current,
            sop,
            rec,
            0x8000 + (i as u16 & 0x7FFF),
            None,
            Some((req, &mut cancelled)),
        )
        .await?;
        record(&mut tally, sop, outcome, "C-GET requestor");
        if tally.remaining > 0 && !cancelled {
            send_pending(assoc, ctx, req, &tally).await?;
        }
    }
    if cancelled {
        list_unsent(&mut tally, &set);
    }
    tracing::info!(
        calling_ae = assoc.calling_ae,
        completed = tally.completed,
        failed = tally.failed,
        cancelled,
        "C-GET"
    );
    final_response(
        assoc,
        ctx,
        req,
        final_status(&tally, cancelled),
        "",
        Some(&tally),
    )
    .await
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

    #[test]
    fn a_receiver_without_the_class_is_told_so() {
        let r = receiver(&[(1, CT, transfer_syntax::EXPLICIT_VR_LE)]);
        let why = choose_context(&r, "1.2.840.10008.5.1.4.1.1.4", JPEG_BASELINE).unwrap_err();
        assert!(why.contains("no context for SOP class"), "{why}");
    }
}
