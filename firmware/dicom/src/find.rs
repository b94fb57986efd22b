//! C-FIND SCP (PS3.4 Annex C): Patient Root and Study Root, hierarchical.
//!
//! The query runs on a blocking thread against a redb read snapshot and its matches stream as
//! pending responses (`pendings.rs`), so a query matching 100 000 records never holds them all;
//! meanwhile the association is watched for C-CANCEL, which stops the query.

use pacsbox_archive::query::{QueryError, Row};

use crate::association::{AssocError, Association};
use crate::context::ServiceContext;
use crate::dimse::{Command, Status, respond};
use crate::identifier;
use crate::pendings::{self, Streamed};
use crate::sop_classes::model_of;

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
    let archive = service.archive.clone();
    let streamed = {
        let find = find.clone();
        let ts = accepted.transfer_syntax.clone();
        // Retrieve AE Title (0008,0054) in each match: the AE the peer reached.
        let ae_title = assoc.local_ae.clone();
        pendings::stream(assoc, ctx, req, "C-FIND", move |p| {
            archive.index().query(&find.query, |row: Row| {
                p.push(&find.encode(&row, &ts, &ae_title))
            })
        })
        .await?
    };
    let Streamed {
        outcome,
        matches,
        cancelled,
    } = streamed;
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
