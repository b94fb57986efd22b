//! The requestor side: opening an association to a known peer for C-MOVE sub-operations,
//! and releasing it.

use std::collections::HashMap;
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::{AssociationRQ, PresentationContextResultReason};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::{
    APPLICATION_CONTEXT, AcceptedContext, AssocError, Association, MAX_ASSOCIATE_PDU,
    our_user_variables, peer_max_pdu, read_one, trim_uid, write_one,
};

/// How to reach a peer over TLS: the settings (whom to trust, our certificate) and the name
/// sent (and, trusting the clinic CA, checked).
pub struct TlsTarget {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl Association {
    /// Opens an association to a peer as requestor (C-MOVE sub-operations, forwarding,
    /// storage commitment reports), over TLS when `tls` says how. `proposals` are (abstract
    /// syntax, transfer syntaxes), one presentation context each; `roles` SCP/SCU role
    /// selection sub-items (abstract syntax, our roles as requestor): storage commitment's
    /// report on a new association keeps us SCP.
    #[allow(clippy::too_many_arguments)] // each is one setting of the association
    pub async fn request(
        host: &str,
        port: u16,
        tls: Option<TlsTarget>,
        calling_ae: &str,
        called_ae: &str,
        proposals: &[(String, Vec<String>)],
        roles: &[(String, dicom_ul::pdu::RequestorRoles)],
        max_pdu: u32,
        idle: Duration,
    ) -> Result<Association, AssocError> {
        let socket = tokio::time::timeout(idle, TcpStream::connect((host, port)))
            .await
            .map_err(|_| AssocError::Idle(idle))??;
        socket.set_nodelay(true)?;
        let mut socket = match tls {
            None => super::Connection::Tcp(socket),
            Some(t) => {
                let connector = tokio_rustls::TlsConnector::from(t.config);
                let stream = tokio::time::timeout(idle, connector.connect(t.server_name, socket))
                    .await
                    .map_err(|_| AssocError::Idle(idle))?
                    .map_err(|e| AssocError::Tls(e.to_string()))?;
                super::Connection::TlsClient(Box::new(stream))
            }
        };
        let rq = Pdu::AssociationRQ(AssociationRQ {
            protocol_version: 1,
            calling_ae_title: calling_ae.to_owned(),
            called_ae_title: called_ae.to_owned(),
            application_context_name: APPLICATION_CONTEXT.to_owned(),
            presentation_contexts: proposals
                .iter()
                .take(128)
                .enumerate()
                .map(
                    |(i, (abs, ts))| dicom_ul::pdu::PresentationContextProposed {
                        id: (2 * i + 1) as u8,
                        abstract_syntax: abs.clone(),
                        transfer_syntaxes: ts.clone(),
                    },
                )
                .collect(),
            user_variables: our_user_variables(max_pdu)
                .into_iter()
                .chain(roles.iter().map(|(class, r)| {
                    dicom_ul::pdu::UserVariableItem::ScuScpRoleSelectionSubItem(class.clone(), *r)
                }))
                .collect(),
        });
        write_one(&mut socket, &rq).await?;
        let ac = match read_one(&mut socket, MAX_ASSOCIATE_PDU, Some(idle), idle).await? {
            Pdu::AssociationAC(ac) => ac,
            Pdu::AssociationRJ(rj) => {
                return Err(AssocError::Malformed(format!(
                    "{called_ae} rejected the association: {}",
                    rj.source
                )));
            }
            other => {
                return Err(AssocError::Malformed(format!(
                    "{called_ae} answered {}",
                    other.short_description()
                )));
            }
        };
        let peer_max_pdu = peer_max_pdu(&ac.user_variables);
        let mut contexts = HashMap::new();
        for r in ac.presentation_contexts {
            if r.reason == PresentationContextResultReason::Acceptance {
                let idx = usize::from(r.id / 2);
                if let Some((abs, _)) = proposals.get(idx) {
                    contexts.insert(
                        r.id,
                        AcceptedContext {
                            abstract_syntax: abs.clone(),
                            transfer_syntax: trim_uid(&r.transfer_syntax).to_owned(),
                        },
                    );
                }
            }
        }
        let mut assoc = Association::running(socket, max_pdu, idle, contexts, peer_max_pdu);
        assoc.calling_ae = called_ae.to_owned();
        assoc.local_ae = calling_ae.to_owned();
        Ok(assoc)
    }

    /// A-RELEASE as requestor: ask, wait for the answer (briefly), close.
    pub async fn release(&mut self) {
        if self.send(&Pdu::ReleaseRQ).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(Ok(pdu)) = self.incoming.recv().await {
                    if pdu == Pdu::ReleaseRP {
                        break;
                    }
                }
            })
            .await;
        }
        self.close().await;
    }
}
