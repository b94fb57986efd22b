//! One accepted association: PDU framing on the socket, the negotiated presentation contexts,
//! and sending DIMSE messages back.
//!
//! dicom-ul provides the PDU codec (`read_pdu`, `write_pdu`); the acceptor policy is ours,
//! because it must decide per proposed context with the UID registry (every Storage SOP class),
//! bound each PDU's size before buffering it, and reject over-limit peers with a proper
//! A-ASSOCIATE-RJ.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use dicom_core::dictionary::UidDictionary;
use dicom_dictionary_std::StandardSopClassDictionary;
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, PDataValueType,
    PresentationContextResult, PresentationContextResultReason, UserVariableItem,
};
use dicom_ul::{Pdu, read_pdu, write_pdu};
use pacsbox_archive::transfer_syntax;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::sop_classes;

pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
/// PDU header: type (1), reserved (1), length (4).
const PDU_HEADER: usize = 6;
/// An A-ASSOCIATE-RQ of 128 contexts with 20 transfer syntaxes each and role selection for
/// all of them is about 75 KB; an honest request stays well under this.
const MAX_ASSOCIATE_PDU: u32 = 256 << 10;
/// A PDU body buffer starts at most this large and grows as bytes arrive, so an announced
/// length costs nothing until the peer sends that much. 16 KiB holds the PDUs of most peers
/// (DCMTK's and pynetdicom's default maximum) without a reallocation.
const INITIAL_BODY: usize = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum AssocError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("peer sent a PDU of {0} bytes, over the negotiated maximum")]
    TooLarge(u32),
    #[error("malformed PDU: {0}")]
    Malformed(String),
    /// Well-formed PDUs the protocol does not allow here; the association ends with an
    /// A-ABORT for `reason`.
    #[error("protocol error: {what} (A-ABORT reason: {reason})")]
    Protocol {
        reason: AbortRQServiceProviderReason,
        what: String,
    },
    #[error("peer idle for longer than {0:?}")]
    Idle(Duration),
    #[error("peer closed the connection")]
    Closed,
    #[error("peer aborted the association ({0})")]
    Aborted(String),
}

#[derive(Clone, Debug)]
pub struct AcceptedContext {
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

pub struct Association {
    writer: OwnedWriteHalf,
    /// PDUs read by the reader task: receiving is cancel-safe, so a service can wait for the
    /// next result of its own work and for a C-CANCEL at the same time.
    incoming: mpsc::Receiver<Result<Pdu, AssocError>>,
    reader: tokio::task::JoinHandle<()>,
    pub calling_ae: String,
    /// Our own AE title (returned as Retrieve AE Title).
    pub local_ae: String,
    pub contexts: HashMap<u8, AcceptedContext>,
    /// Storage classes for which the requestor took the SCP role (role selection).
    scp_role_classes: std::collections::HashSet<String>,
    peer_max_pdu: u32,
    idle: Duration,
}

/// Reads one whole PDU, refusing to buffer more than `max` bytes of body. `idle` bounds the
/// wait for the first byte (`None`: wait as long as it takes) and, always, a stall inside a PDU.
/// The body buffer grows with the bytes received, never to the announced length in advance:
/// a peer announcing a large PDU and sending nothing costs a few bytes, not `max`.
pub(crate) async fn read_one<R: AsyncRead + Unpin>(
    socket: &mut R,
    max: u32,
    idle: Option<Duration>,
    stall: Duration,
) -> Result<Pdu, AssocError> {
    let mut header = [0u8; PDU_HEADER];
    let first = match idle {
        Some(idle) => tokio::time::timeout(idle, socket.read_exact(&mut header[..1]))
            .await
            .map_err(|_| AssocError::Idle(idle))?,
        None => socket.read_exact(&mut header[..1]).await,
    };
    match first {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(AssocError::Closed),
        r => r?,
    };
    tokio::time::timeout(stall, socket.read_exact(&mut header[1..]))
        .await
        .map_err(|_| AssocError::Idle(stall))??;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    if len > max {
        return Err(AssocError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(PDU_HEADER + (len as usize).min(INITIAL_BODY));
    buf.extend_from_slice(&header);
    // A peer that stalls inside a PDU is as dead as an idle one.
    let got = tokio::time::timeout(
        stall,
        (&mut *socket).take(u64::from(len)).read_to_end(&mut buf),
    )
    .await
    .map_err(|_| AssocError::Idle(stall))??;
    if got < len as usize {
        return Err(AssocError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    match read_pdu(&buf[..], MAX_ASSOCIATE_PDU.max(max), false) {
        Ok(Some(pdu)) => Ok(pdu),
        Ok(None) => Err(AssocError::Malformed("incomplete PDU".into())),
        Err(e) => Err(AssocError::Malformed(e.to_string())),
    }
}

async fn write_one<W: AsyncWrite + Unpin>(socket: &mut W, pdu: &Pdu) -> Result<(), AssocError> {
    let mut buf = Vec::new();
    write_pdu(&mut buf, pdu).map_err(|e| AssocError::Malformed(e.to_string()))?;
    socket.write_all(&buf).await?;
    Ok(())
}

/// The peer's Maximum Length sub-item: 0 means unlimited, absent means the 16 KiB default.
fn peer_max_pdu(items: &[UserVariableItem]) -> u32 {
    items
        .iter()
        .find_map(|v| match v {
            UserVariableItem::MaxLength(0) => Some(u32::MAX),
            UserVariableItem::MaxLength(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(16384)
}

fn our_user_variables(max_pdu: u32) -> Vec<UserVariableItem> {
    vec![
        UserVariableItem::MaxLength(max_pdu),
        UserVariableItem::ImplementationClassUID(
            pacsbox_archive::part10::IMPLEMENTATION_CLASS_UID.to_owned(),
        ),
        UserVariableItem::ImplementationVersionName(
            pacsbox_archive::part10::IMPLEMENTATION_VERSION_NAME.to_owned(),
        ),
    ]
}

/// Reads the A-ASSOCIATE-RQ that must open a connection, waiting at most `artim` for all of
/// it (PS3.8 9.1.2, ARTIM in state Sta2; on expiry the transport is closed). Anything else
/// gets A-ABORT.
pub async fn read_request(
    socket: &mut TcpStream,
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
pub async fn reject_over_limit(mut socket: TcpStream, rq: &AssociationRQ) {
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
async fn await_peer_close(socket: &mut TcpStream) {
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

fn trim_uid(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

/// A Storage SOP class known to the dicom-rs registry.
fn is_storage_class(uid: &str) -> bool {
    StandardSopClassDictionary
        .by_uid(uid)
        .is_some_and(|e| sop_classes::is_storage(e.name))
}

/// Verification, Q/R (Patient and Study Root FIND, MOVE, GET) or a Storage SOP class.
fn abstract_syntax_supported(uid: &str) -> bool {
    uid == dicom_dictionary_std::uids::VERIFICATION
        || crate::find::model_of(uid).is_some()
        || is_storage_class(uid)
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
    pub async fn accept(
        mut socket: TcpStream,
        rq: AssociationRQ,
        policy: &AcceptorPolicy,
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
        let mut scp_role_classes = std::collections::HashSet::new();
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
            let (reason, ts) = if !abstract_syntax_supported(&abstract_syntax) {
                (
                    PresentationContextResultReason::AbstractSyntaxNotSupported,
                    None,
                )
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
        Ok(Some(assoc))
    }

    /// An established association: splits the socket and starts the reader task.
    fn running(
        socket: TcpStream,
        max_pdu: u32,
        idle: Duration,
        contexts: HashMap<u8, AcceptedContext>,
        peer_max_pdu: u32,
    ) -> Association {
        let (mut read_half, writer) = socket.into_split();
        let (tx, incoming) = mpsc::channel(2);
        let reader = tokio::spawn(async move {
            loop {
                let r = read_one(&mut read_half, max_pdu, None, idle).await;
                let done = r.is_err();
                if tx.send(r).await.is_err() || done {
                    return;
                }
            }
        });
        Association {
            writer,
            incoming,
            reader,
            calling_ae: String::new(),
            local_ae: String::new(),
            contexts,
            scp_role_classes: Default::default(),
            peer_max_pdu,
            idle,
        }
    }

    /// Opens an association to a peer as requestor (C-MOVE sub-operations). `proposals` are
    /// (abstract syntax, transfer syntaxes), one presentation context each.
    pub async fn request(
        host: &str,
        port: u16,
        calling_ae: &str,
        called_ae: &str,
        proposals: &[(String, Vec<String>)],
        max_pdu: u32,
        idle: Duration,
    ) -> Result<Association, AssocError> {
        let mut socket = tokio::time::timeout(idle, TcpStream::connect((host, port)))
            .await
            .map_err(|_| AssocError::Idle(idle))??;
        socket.set_nodelay(true)?;
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
            user_variables: our_user_variables(max_pdu),
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

    /// Whether the peer agreed to be the SCP of `sop_class` here (C-GET sub-operations).
    pub fn peer_is_scp_for(&self, sop_class: &str) -> bool {
        self.scp_role_classes.contains(sop_class)
    }

    /// The next PDU; an association silent for the idle timeout is an error. Cancel-safe.
    pub async fn receive(&mut self) -> Result<Pdu, AssocError> {
        match tokio::time::timeout(self.idle, self.incoming.recv()).await {
            Err(_) => Err(AssocError::Idle(self.idle)),
            Ok(None) => Err(AssocError::Closed),
            Ok(Some(r)) => r,
        }
    }

    /// The next PDU, however long the peer takes (while the SCP itself is busy). Cancel-safe.
    pub async fn receive_while_busy(&mut self) -> Result<Pdu, AssocError> {
        self.incoming
            .recv()
            .await
            .unwrap_or(Err(AssocError::Closed))
    }

    pub async fn send(&mut self, pdu: &Pdu) -> Result<(), AssocError> {
        write_one(&mut self.writer, pdu).await
    }

    /// The largest P-DATA-TF variable field the peer accepts (its Maximum Length sub-item).
    pub fn peer_max_pdu(&self) -> u32 {
        self.peer_max_pdu
    }

    /// Writes P-DATA-TF PDUs already encoded by [`encode_message`].
    pub async fn send_encoded(&mut self, pdus: &[u8]) -> Result<(), AssocError> {
        self.writer.write_all(pdus).await?;
        Ok(())
    }

    /// Sends a DIMSE command set on a presentation context, fragmented to the peer's maximum.
    pub async fn send_command(&mut self, context: u8, bytes: Vec<u8>) -> Result<(), AssocError> {
        self.send_fragments(context, PDataValueType::Command, bytes)
            .await
    }

    /// Sends one data set fragment as its own P-DATA PDU (callers keep it under the peer's
    /// maximum).
    pub async fn send_pdata_fragment(
        &mut self,
        context: u8,
        bytes: Vec<u8>,
        is_last: bool,
    ) -> Result<(), AssocError> {
        self.write_fragments(context, false, &bytes, is_last).await
    }

    /// Sends a data set (or identifier) on a presentation context, fragmented likewise.
    pub async fn send_data(&mut self, context: u8, bytes: Vec<u8>) -> Result<(), AssocError> {
        self.send_fragments(context, PDataValueType::Data, bytes)
            .await
    }

    async fn send_fragments(
        &mut self,
        context: u8,
        kind: PDataValueType,
        bytes: Vec<u8>,
    ) -> Result<(), AssocError> {
        let command = kind == PDataValueType::Command;
        self.write_fragments(context, command, &bytes, true).await
    }

    /// `bytes` as P-DATA-TF PDUs of one PDV each, cut to the peer's maximum, in one write:
    /// one copy of the payload and a syscall per 64 KiB chunk instead of per 16 KiB PDU.
    async fn write_fragments(
        &mut self,
        context: u8,
        command: bool,
        bytes: &[u8],
        last: bool,
    ) -> Result<(), AssocError> {
        let room = pdv_room(self.peer_max_pdu);
        let mut out = Vec::with_capacity(bytes.len() + 12 * (bytes.len() / room + 1));
        push_fragments(&mut out, context, command, bytes, room, last);
        self.writer.write_all(&out).await?;
        Ok(())
    }

    /// A-ABORT from the service provider, then close.
    pub async fn abort(&mut self, reason: AbortRQServiceProviderReason) {
        abort(&mut self.writer, reason).await;
        self.reader.abort();
    }

    pub async fn close(&mut self) {
        let _ = self.writer.shutdown().await;
        self.reader.abort();
    }
}

impl Drop for Association {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Appends one DIMSE message (command, then its data set if any) to `out` as P-DATA-TF PDUs,
/// command and data set never in the same PDU: the standard allows both PDVs in one PDU, but
/// GDCM (gdcmscu 3.0) takes the PDU after a pending C-FIND response's command for its
/// identifier, so with both in one PDU it swallows the next response as data, shows half the
/// matches and, after an odd count, waits forever. Callers still write many messages at once
/// (a C-FIND pending response is a few hundred bytes, so thousands of them go out in a handful
/// of writes).
pub fn encode_message(
    context: u8,
    peer_max_pdu: u32,
    command: &[u8],
    data: &[u8],
    out: &mut Vec<u8>,
) {
    let room = pdv_room(peer_max_pdu);
    push_fragments(out, context, true, command, room, true);
    if !data.is_empty() {
        push_fragments(out, context, false, data, room, true);
    }
}

/// PDV message control header bits (PS3.8 E.2).
const PDV_COMMAND: u8 = 0x01;
const PDV_LAST: u8 = 0x02;

/// Bytes of one PDV that fit the peer's maximum. The Maximum Length Received bounds the
/// P-DATA-TF variable field (PS3.8 D.1), which holds the PDV item: its length (4), context
/// ID (1) and control header (1), then the fragment. The standard sets no floor; a maximum
/// under 7 leaves no room for a byte, and then one byte per PDV is the least we can send.
fn pdv_room(peer_max_pdu: u32) -> usize {
    (peer_max_pdu.saturating_sub(PDV_ITEM_HEADER) as usize).max(1)
}

/// PDV item length (4), presentation context ID (1), message control header (1).
const PDV_ITEM_HEADER: u32 = 6;

fn push_pdu_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&[0x04, 0x00]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn push_pdv(out: &mut Vec<u8>, context: u8, flags: u8, bytes: &[u8]) {
    out.extend_from_slice(&((bytes.len() + 2) as u32).to_be_bytes());
    out.push(context);
    out.push(flags);
    out.extend_from_slice(bytes);
}

/// One PDU per `room` bytes (an empty fragment is still one PDU); the final one is flagged
/// last when `last`.
fn push_fragments(
    out: &mut Vec<u8>,
    context: u8,
    command: bool,
    bytes: &[u8],
    room: usize,
    last: bool,
) {
    let kind = if command { PDV_COMMAND } else { 0 };
    let n = bytes.len().div_ceil(room).max(1);
    let pieces = bytes
        .chunks(room)
        .chain(bytes.is_empty().then_some(&bytes[..0]));
    for (i, piece) in pieces.enumerate() {
        push_pdu_header(out, piece.len() + 6);
        let flags = kind | if last && i + 1 == n { PDV_LAST } else { 0 };
        push_pdv(out, context, flags, piece);
    }
}

fn abort_pdu(reason: AbortRQServiceProviderReason) -> Pdu {
    Pdu::AbortRQ {
        source: AbortRQSource::ServiceProvider(reason),
    }
}

async fn abort<W: AsyncWrite + Unpin>(socket: &mut W, reason: AbortRQServiceProviderReason) {
    let _ = write_one(socket, &abort_pdu(reason)).await;
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what `encode_message` wrote: (PDVs per PDU, (kind, is_last, bytes) per PDV).
    fn decode(mut wire: &[u8]) -> Vec<Vec<(PDataValueType, bool, Vec<u8>)>> {
        let mut pdus = Vec::new();
        while !wire.is_empty() {
            let len = u32::from_be_bytes([wire[2], wire[3], wire[4], wire[5]]) as usize;
            match read_pdu(&wire[..6 + len], 1 << 20, true) {
                Ok(Some(Pdu::PData { data })) => pdus.push(
                    data.into_iter()
                        .map(|v| (v.value_type, v.is_last, v.data))
                        .collect(),
                ),
                other => panic!("not a P-DATA-TF: {other:?}"),
            }
            wire = &wire[6 + len..];
        }
        pdus
    }

    #[test]
    fn command_and_data_set_travel_in_separate_pdus() {
        let mut out = Vec::new();
        encode_message(3, 16384, b"cmd!", b"data", &mut out);
        encode_message(3, 16384, b"cmd2", b"", &mut out);
        let pdus = decode(&out);
        assert_eq!(
            pdus,
            vec![
                vec![(PDataValueType::Command, true, b"cmd!".to_vec())],
                vec![(PDataValueType::Data, true, b"data".to_vec())],
                vec![(PDataValueType::Command, true, b"cmd2".to_vec())],
            ]
        );
    }

    /// Every PDU's variable field within the peer's maximum, down to the smallest that holds
    /// a byte of fragment.
    #[test]
    fn a_message_is_fragmented_to_the_peer_maximum() {
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        for max in [7u32, 8, 100, 1035, 2048] {
            let mut out = Vec::new();
            encode_message(1, max, b"command", &data, &mut out);
            let mut wire = &out[..];
            while !wire.is_empty() {
                let len = u32::from_be_bytes([wire[2], wire[3], wire[4], wire[5]]);
                assert!(len <= max, "PDU of {len} bytes for a maximum of {max}");
                wire = &wire[6 + len as usize..];
            }
            let pdus = decode(&out);
            let room = max as usize - 6;
            assert_eq!(pdus.len(), 7usize.div_ceil(room) + 5000usize.div_ceil(room));
            let mut command = Vec::new();
            let mut joined = Vec::new();
            for (i, pdu) in pdus.iter().enumerate() {
                assert_eq!(pdu.len(), 1);
                let (kind, last, bytes) = &pdu[0];
                let target = if *kind == PDataValueType::Command {
                    &mut command
                } else {
                    assert_eq!(*last, i + 1 == pdus.len());
                    &mut joined
                };
                target.extend_from_slice(bytes);
            }
            assert_eq!(command, b"command");
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn fragments_flag_only_the_final_piece_and_keep_empty_ones() {
        let mut out = Vec::new();
        push_fragments(&mut out, 5, false, &[7u8; 3000], 1024, false);
        push_fragments(&mut out, 5, false, &[], 1024, true);
        let pdus = decode(&out);
        let flags: Vec<(usize, bool)> = pdus.iter().map(|p| (p[0].2.len(), p[0].1)).collect();
        // 3000 bytes in 1024-byte pieces, none last (more follows), then an empty last one
        assert_eq!(
            flags,
            vec![(1024, false), (1024, false), (952, false), (0, true)]
        );
    }
}
