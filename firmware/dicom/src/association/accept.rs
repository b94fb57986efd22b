//! The acceptor side: the A-ASSOCIATE-RQ a connection must open with (within ARTIM), our
//! answer to it — presentation contexts decided per proposal with the UID registry (every
//! Storage SOP class), SCP/SCU role selection for C-GET — and the A-ASSOCIATE-RJs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dicom_core::dictionary::UidDictionary;
use dicom_dictionary_std::StandardSopClassDictionary;
use dicom_ul::Pdu;
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, PresentationContextResult,
    PresentationContextResultReason, UserVariableItem,
};
use pacsbox_archive::transfer_syntax;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    APPLICATION_CONTEXT, AcceptedContext, AssocError, Association, Connection, MAX_ASSOCIATE_PDU,
    abort_pdu, our_user_variables, peer_max_pdu, read_one, trim_uid, write_one,
};
use crate::access::{Grant, ServiceKind, kind_of};
use crate::sop_classes;

/// Reads the A-ASSOCIATE-RQ that must open a connection, waiting at most `artim` for all of
/// it (PS3.8 9.1.2, ARTIM in state Sta2; on expiry the transport is closed). Anything else
/// gets A-ABORT.
pub async fn read_request(
    socket: &mut Connection,
    artim: Duration,
) -> Result<AssociationRQ, AssocError> {
    let read = read_one(socket, MAX_ASSOCIATE_PDU, Some(artim), artim);
    let first = tokio::time::timeout(artim, read)
        .await
        .map_err(|_| AssocError::Idle(artim))?;
    // PS3.8 Sta2, an invalid or unexpected PDU: A-ABORT (AA-1), then wait (ARTIM) for the
    // peer to close, so that our close cannot reset the connection before the peer has read
    // the A-ABORT.
    let (reason, err) = match first {
        Ok(Pdu::AssociationRQ(rq)) => return Ok(rq),
        Err(e @ (AssocError::Malformed(_) | AssocError::TooLarge(_))) => {
            (AbortRQServiceProviderReason::InvalidPduParameter, e)
        }
        Err(e) => return Err(e),
        Ok(other) => {
            let reason = match other {
                Pdu::Unknown { .. } => AbortRQServiceProviderReason::UnrecognizedPdu,
                _ => AbortRQServiceProviderReason::UnexpectedPdu,
            };
            let err = AssocError::Malformed(format!(
                "expected A-ASSOCIATE-RQ, got {}",
                other.short_description()
            ));
            (reason, err)
        }
    };
    let _ = write_one(socket, &abort_pdu(reason)).await;
    await_peer_close(socket).await;
    Err(err)
}

/// Answers an association request we cannot serve now (association cap reached) with
/// A-ASSOCIATE-RJ: transient, service provider (presentation), local limit exceeded.
pub async fn reject_over_limit(mut socket: Connection, rq: &AssociationRQ) {
    tracing::warn!(
        calling_ae = rq.calling_ae_title,
        "association rejected: association limit reached"
    );
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            dicom_ul::pdu::AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    if write_one(&mut socket, &rj).await.is_ok() {
        await_peer_close(&mut socket).await;
    }
}

/// After an A-ASSOCIATE-RJ the requestor closes the transport (PS3.8 state Sta13, ARTIM
/// running). Closing first races the peer: a reset can reach it before it has read the RJ,
/// and it then reports an abort instead of the rejection and its reason.
async fn await_peer_close(socket: &mut Connection) {
    const ARTIM: Duration = Duration::from_secs(5);
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(ARTIM, async {
        while let Ok(n) = socket.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let _ = socket.shutdown().await;
}

pub struct AcceptorPolicy {
    pub ae_title: String,
    pub check_called_ae: bool,
    pub max_pdu: u32,
    pub idle: Duration,
}

/// A Storage SOP class known to the dicom-rs registry.
fn is_storage_class(uid: &str) -> bool {
    StandardSopClassDictionary
        .by_uid(uid)
        .is_some_and(|e| sop_classes::is_storage(e.name))
}

/// Verification, Storage Commitment Push Model, Q/R (Patient and Study Root FIND, MOVE, GET)
/// or a Storage SOP class.
fn abstract_syntax_supported(uid: &str) -> bool {
    uid == dicom_dictionary_std::uids::VERIFICATION
        || uid == dicom_dictionary_std::uids::STORAGE_COMMITMENT_PUSH_MODEL
        || sop_classes::model_of(uid).is_some()
        || is_storage_class(uid)
        || uid == sop_classes::MODALITY_WORKLIST_FIND
        || uid == sop_classes::MPPS
}

/// Whether we accept `ts` on a context for `abstract_syntax`. Deflate only on storage
/// contexts: the archive inflates what arrives, but identifiers and responses we send on
/// Verification and Q/R contexts are never deflated, so a peer would read nothing.
fn transfer_syntax_accepted(abstract_syntax: &str, ts: &str) -> bool {
    transfer_syntax::is_accepted(ts)
        && (ts != transfer_syntax::DEFLATED_EXPLICIT_VR_LE || is_storage_class(abstract_syntax))
}

impl Association {
    /// Answers the A-ASSOCIATE-RQ `rq` read by [`read_request`]. `Ok(None)` when we rejected it.
    /// `grant` is the access decision (`crate::access`): `None` rejects the calling AE, else
    /// only the contexts of its rights are accepted.
    pub async fn accept(
        mut socket: Connection,
        rq: AssociationRQ,
        policy: &AcceptorPolicy,
        grant: Option<Grant>,
    ) -> Result<Option<Association>, AssocError> {
        let AssociationRQ {
            protocol_version,
            calling_ae_title,
            called_ae_title,
            application_context_name,
            presentation_contexts,
            user_variables,
        } = rq;
        let reject = |source| {
            Pdu::AssociationRJ(AssociationRJ {
                result: AssociationRJResult::Permanent,
                source,
            })
        };
        let refusal = if trim_uid(&application_context_name) != APPLICATION_CONTEXT {
            Some(AssociationRJServiceUserReason::ApplicationContextNameNotSupported)
        } else if policy.check_called_ae && called_ae_title.trim() != policy.ae_title {
            Some(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        } else if grant.is_none() {
            Some(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        } else {
            None
        };
        if protocol_version & 1 == 0 {
            let rj = reject(AssociationRJSource::ServiceProviderASCE(
                dicom_ul::pdu::AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
            ));
            write_one(&mut socket, &rj).await?;
            await_peer_close(&mut socket).await;
            return Ok(None);
        }
        if let Some(reason) = refusal {
            tracing::warn!(calling_ae = calling_ae_title, called_ae = called_ae_title, %reason, "association rejected");
            write_one(
                &mut socket,
                &reject(AssociationRJSource::ServiceUser(reason)),
            )
            .await?;
            await_peer_close(&mut socket).await;
            return Ok(None);
        }
        let peer_max_pdu = peer_max_pdu(&user_variables);
        // SCP/SCU role selection (C-GET): the requestor may be the SCP of Storage classes on
        // this association; we agree to what it proposes for those classes.
        let mut scp_role_classes = HashSet::new();
        let mut role_replies = Vec::new();
        for v in &user_variables {
            if let UserVariableItem::ScuScpRoleSelectionSubItem(class, roles) = v {
                let class = trim_uid(class).to_owned();
                if abstract_syntax_supported(&class) {
                    if roles.scp {
                        scp_role_classes.insert(class.clone());
                    }
                    role_replies.push(UserVariableItem::ScuScpRoleSelectionSubItem(class, *roles));
                }
            }
        }
        let mut contexts = HashMap::new();
        let mut results = Vec::with_capacity(presentation_contexts.len());
        for pc in presentation_contexts {
            let abstract_syntax = trim_uid(&pc.abstract_syntax).to_owned();
            let kind = kind_of(&abstract_syntax)
                .or_else(|| is_storage_class(&abstract_syntax).then_some(ServiceKind::Storage));
            let permitted = match (kind, grant) {
                (Some(k), Some(g)) => g.allows(k, scp_role_classes.contains(&abstract_syntax)),
                _ => true,
            };
            let (reason, ts) = if !abstract_syntax_supported(&abstract_syntax) {
                (
                    PresentationContextResultReason::AbstractSyntaxNotSupported,
                    None,
                )
            } else if !permitted {
                (PresentationContextResultReason::UserRejection, None)
            } else {
                // The peer lists its preference first; take the first one we accept.
                match pc
                    .transfer_syntaxes
                    .iter()
                    .map(|t| trim_uid(t))
                    .find(|t| transfer_syntax_accepted(&abstract_syntax, t))
                {
                    Some(t) => (
                        PresentationContextResultReason::Acceptance,
                        Some(t.to_owned()),
                    ),
                    None => (
                        PresentationContextResultReason::TransferSyntaxesNotSupported,
                        None,
                    ),
                }
            };
            if let Some(ts) = &ts {
                contexts.insert(
                    pc.id,
                    AcceptedContext {
                        abstract_syntax: abstract_syntax.clone(),
                        transfer_syntax: ts.clone(),
                    },
                );
            }
            results.push(PresentationContextResult {
                id: pc.id,
                reason,
                transfer_syntax: ts.unwrap_or_else(|| transfer_syntax::IMPLICIT_VR_LE.to_owned()),
            });
        }
        let ac = Pdu::AssociationAC(AssociationAC {
            protocol_version: 1,
            calling_ae_title: calling_ae_title.clone(),
            called_ae_title: called_ae_title.clone(),
            application_context_name: APPLICATION_CONTEXT.to_owned(),
            presentation_contexts: results,
            user_variables: our_user_variables(policy.max_pdu)
                .into_iter()
                .chain(role_replies)
                .collect(),
        });
        write_one(&mut socket, &ac).await?;
        let mut assoc =
            Association::running(socket, policy.max_pdu, policy.idle, contexts, peer_max_pdu);
        assoc.calling_ae = calling_ae_title.trim().to_owned();
        assoc.local_ae = policy.ae_title.clone();
        assoc.scp_role_classes = scp_role_classes;
        if let Some(g) = grant {
            assoc.grant = g;
        }
        Ok(Some(assoc))
    }

    /// Whether the peer agreed to be the SCP of `sop_class` here (C-GET sub-operations).
    pub fn peer_is_scp_for(&self, sop_class: &str) -> bool {
        self.scp_role_classes.contains(sop_class)
    }
}
