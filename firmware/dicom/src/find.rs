//! C-FIND SCP (PS3.4 Annex C): Patient Root and Study Root, hierarchical.
//!
//! The query runs on a blocking thread against a redb read snapshot and hands matches over a
//! small bounded channel, so a query matching 100 000 records streams pending responses without
//! holding them all; meanwhile the association is watched for C-CANCEL, which stops the query.

use std::ops::ControlFlow;

use dicom_ul::Pdu;
use dicom_ul::pdu::PDataValueType;
use pacsbox_archive::Archive;
use pacsbox_archive::query::{QueryError, Row};
use tokio::sync::mpsc;

use crate::association::{AssocError, Association};
use crate::dimse::{Command, CommandField, Status};
use crate::identifier::{self, Model};
use crate::server::respond;

/// C-FIND: Identifier does not match SOP Class.
const IDENTIFIER_MISMATCH: Status = Status(0xA900);
/// C-FIND: Unable to process.
const UNABLE_TO_PROCESS: Status = Status(0xC000);

pub fn model_of(abstract_syntax: &str) -> Option<Model> {
    match abstract_syntax {
        "1.2.840.10008.5.1.4.1.2.1.1"
        | "1.2.840.10008.5.1.4.1.2.1.2"
        | "1.2.840.10008.5.1.4.1.2.1.3" => Some(Model::PatientRoot),
        "1.2.840.10008.5.1.4.1.2.2.1"
        | "1.2.840.10008.5.1.4.1.2.2.2"
        | "1.2.840.10008.5.1.4.1.2.2.3" => Some(Model::StudyRoot),
        _ => None,
    }
}

pub async fn serve(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    identifier_bytes: &[u8],
    archive: &Archive,
    ae_title: &str,
) -> Result<(), AssocError> {
    let Some(accepted) = assoc.contexts.get(&ctx).cloned() else {
        return Err(AssocError::Malformed(format!(
            "unknown presentation context {ctx}"
        )));
    };
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
            return respond(assoc, ctx, req, IDENTIFIER_MISMATCH, &e.to_string()).await;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Row>(16);
    let archive = archive.clone();
    let query = find.query.clone();
    let worker = tokio::task::spawn_blocking(move || {
        archive.index().query(&query, |row| {
            if tx.blocking_send(row).is_err() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    });
    let mut matches = 0u64;
    let mut cancelled = false;
    loop {
        tokio::select! {
            row = rx.recv() => {
                let Some(row) = row else { break };
                matches += 1;
                let mut pending = Command::response_to(req, Status::PENDING);
                pending.data_set_type = 0x0000;
                assoc.send_command(ctx, pending.encode()).await?;
                let data = find.encode(&row, &accepted.transfer_syntax, ae_title);
                assoc.send_data(ctx, data).await?;
            }
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
        }
    }
    drop(rx);
    let outcome = worker
        .await
        .map_err(|e| AssocError::Malformed(format!("query task failed: {e}")))?;
    tracing::info!(calling_ae = assoc.calling_ae, level = ?find.query.level, matches, cancelled, "C-FIND");
    if cancelled {
        return respond(assoc, ctx, req, Status::CANCEL, "").await;
    }
    match outcome {
        Ok(()) => respond(assoc, ctx, req, Status::SUCCESS, "").await,
        Err(e @ QueryError::MissingUniqueKey { .. }) => {
            respond(assoc, ctx, req, IDENTIFIER_MISMATCH, &e.to_string()).await
        }
        Err(e) => {
            tracing::error!(error = %e, "C-FIND failed");
            respond(assoc, ctx, req, UNABLE_TO_PROCESS, "index error").await
        }
    }
}

/// A C-CANCEL-RQ for `req` (a single command fragment: it is a few dozen bytes).
pub fn is_cancel(data: &[dicom_ul::pdu::PDataValue], req: &Command) -> bool {
    data.iter().any(|pdv| {
        pdv.value_type == PDataValueType::Command
            && Command::decode(&pdv.data).is_ok_and(|c| {
                c.field == CommandField::CCancelRq && c.message_id_responded_to == req.message_id
            })
    })
}
