//! C-FIND SCP (PS3.4 Annex C): Patient Root and Study Root, hierarchical.
//!
//! The query runs on a blocking thread against a redb read snapshot and hands matches over a
//! small bounded channel, so a query matching 100 000 records streams pending responses without
//! holding them all; meanwhile the association is watched for C-CANCEL, which stops the query.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use dicom_ul::Pdu;
use pacsbox_archive::query::{QueryError, Row};
use tokio::sync::mpsc;

use crate::association::{AssocError, Association, encode_message};
use crate::context::ServiceContext;
use crate::dimse::{Command, Status, is_cancel, respond};
use crate::identifier;
use crate::sop_classes::model_of;

/// A batch of pending responses is written when it reaches this size or age.
const BATCH_BYTES: usize = 64 * 1024;
const BATCH_AGE: Duration = Duration::from_millis(20);

pub async fn serve(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    identifier_bytes: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let accepted = assoc.context(ctx)?;
    let Some(model) = model_of(&accepted.abstract_syntax) else {
        return respond(
            assoc,
            ctx,
            req,
            Status::SOP_CLASS_NOT_SUPPORTED,
            "not a FIND context",
        )
        .await;
    };
    let find = match identifier::parse(identifier_bytes, &accepted.transfer_syntax, model) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(calling_ae = assoc.calling_ae, error = %e, "C-FIND refused");
            crate::audit::find(
                service.audit,
                &assoc.calling_ae,
                &assoc.peer_address,
                String::new(),
                0,
                &format!("failed: {e}"),
            );
            return respond(assoc, ctx, req, Status::DATASET_MISMATCH, &e.to_string()).await;
        }
    };
    // The worker encodes each match straight into P-DATA PDUs and hands over batches: one
    // channel hop and one socket write per batch instead of two writes and two thread
    // switches per match (those were most of the time of a 2 500-match query).
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let archive = service.archive.clone();
    let worker = {
        let find = find.clone();
        let ts = accepted.transfer_syntax.clone();
        // Retrieve AE Title (0008,0054) in each match: the AE the peer reached.
        let ae_title = assoc.local_ae.clone();
        let peer_max = assoc.peer_max_pdu();
        let mut pending = Command::response_to(req, Status::PENDING);
        pending.data_set_type = 0x0000;
        let pending = pending.encode();
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(BATCH_BYTES + 4096);
            let mut last_sent = Instant::now();
            let mut matches = 0u64;
            let outcome = archive.index().query(&find.query, |row: Row| {
                let data = find.encode(&row, &ts, &ae_title);
                encode_message(ctx, peer_max, &pending, &data, &mut batch);
                matches += 1;
                // The first match goes out at once, so the SCU sees the query working.
                if matches == 1 || batch.len() >= BATCH_BYTES || last_sent.elapsed() >= BATCH_AGE {
                    last_sent = Instant::now();
                    if tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            });
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            (outcome, matches)
        })
    };
    let mut cancelled = false;
    loop {
        // A C-CANCEL already received wins over the next batch.
        tokio::select! {
            biased;
            pdu = assoc.receive_while_busy() => {
                match pdu? {
                    Pdu::PData { data } if is_cancel(&data, req) => {
                        cancelled = true;
                        break;
                    }
                    other => {
                        return Err(AssocError::Malformed(format!(
                            "unexpected {} during C-FIND",
                            other.short_description()
                        )));
                    }
                }
            }
            pdus = rx.recv() => {
                let Some(pdus) = pdus else { break };
                assoc.send_encoded(&pdus).await?;
            }
        }
    }
    drop(rx);
    let (outcome, matches) = worker
        .await
        .map_err(|e| AssocError::Malformed(format!("query task failed: {e}")))?;
    tracing::info!(calling_ae = assoc.calling_ae, level = ?find.query.level, matches, cancelled, "C-FIND");
    let outcome_text = match (&outcome, cancelled) {
        (_, true) => "cancelled".to_owned(),
        (Ok(()), false) => "ok".to_owned(),
        (Err(e), false) => format!("failed: {e}"),
    };
    crate::audit::find(
        service.audit,
        &assoc.calling_ae,
        &assoc.peer_address,
        format!("{:?} {:?}", find.query.level, find.query.filters),
        matches,
        &outcome_text,
    );
    if cancelled {
        return respond(assoc, ctx, req, Status::CANCEL, "").await;
    }
    match outcome {
        Ok(()) => respond(assoc, ctx, req, Status::SUCCESS, "").await,
        Err(e @ QueryError::MissingUniqueKey { .. }) => {
            respond(assoc, ctx, req, Status::DATASET_MISMATCH, &e.to_string()).await
        }
        Err(e) => {
            tracing::error!(error = %e, "C-FIND failed");
            respond(assoc, ctx, req, Status::UNABLE_TO_PROCESS, "index error").await
        }
    }
}
