//! One association, from either side: PDU framing on the socket (every read bounded in size
//! and time), the negotiated presentation contexts, the reader task that makes receiving
//! cancel-safe, and A-ABORT.
//!
//! dicom-ul provides the PDU codec (`read_pdu`, `write_pdu`) but for reading P-DATA-TF, which
//! is ours so that fragments are not copied on the ingest path; the rest is ours, split as
//! dicom-rs's `ul/src/association/` is: `accept.rs` (the acceptor: A-ASSOCIATE-RQ within
//! ARTIM, context negotiation against the UID registry, A-ASSOCIATE-RJ), `request.rs` (the
//! requestor, for C-MOVE sub-operations), `pdata.rs` (DIMSE messages as P-DATA-TF PDUs cut to
//! the peer's maximum).

mod accept;
mod connection;
mod pdata;
mod request;

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, PDataValue, PDataValueType, UserVariableItem,
};
use dicom_ul::{Pdu, read_pdu, write_pdu};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub use accept::{AcceptorPolicy, read_request, reject_over_limit};
pub use connection::Connection;
pub use pdata::encode_message;
pub use request::TlsTarget;

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
/// PDU type of P-DATA-TF.
const PDATA_TF: u8 = 0x04;
/// Presentation data value item header: item length (4), context ID (1), control header (1).
const PDV_HEADER: usize = 6;

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
    #[error("TLS: {0}")]
    Tls(String),
}

#[derive(Clone, Debug)]
pub struct AcceptedContext {
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

pub struct Association {
    writer: connection::WriteHalf,
    /// PDUs read by the reader task: receiving is cancel-safe, so a service can wait for the
    /// next result of its own work and for a C-CANCEL at the same time.
    incoming: mpsc::Receiver<Result<Pdu, AssocError>>,
    /// A PDU read ahead and handed back (`put_back`), returned before `incoming`'s next.
    put_back: Option<Result<Pdu, AssocError>>,
    reader: tokio::task::JoinHandle<()>,
    pub calling_ae: String,
    /// Our own AE title (returned as Retrieve AE Title).
    pub local_ae: String,
    pub contexts: HashMap<u8, AcceptedContext>,
    /// What the calling AE may do here (acceptor side; everything on our own requests).
    pub grant: crate::access::Grant,
    /// The peer's IP address, as text, for the peer table.
    pub peer_address: String,
    /// Storage classes for which the requestor took the SCP role (role selection).
    scp_role_classes: std::collections::HashSet<String>,
    peer_max_pdu: u32,
    idle: Duration,
}

/// Reads one whole PDU, refusing to buffer more than `max` bytes of body. `idle` bounds the
/// wait for the first byte (`None`: wait as long as it takes) and, always, a stall inside a PDU.
/// The body buffer grows with the bytes received, never to the announced length in advance:
/// a peer announcing a large PDU and sending nothing costs a few bytes, not `max`.
/// P-DATA-TF, the bulk of every association, is read item by item straight into each
/// value's own buffer (see [`read_pdata`]).
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
    // A peer that stalls inside a PDU is as dead as an idle one: one deadline for the rest.
    tokio::time::timeout(stall, read_rest(socket, header, max))
        .await
        .map_err(|_| AssocError::Idle(stall))?
}

/// The PDU whose first byte is in `header`.
async fn read_rest<R: AsyncRead + Unpin>(
    socket: &mut R,
    mut header: [u8; PDU_HEADER],
    max: u32,
) -> Result<Pdu, AssocError> {
    socket.read_exact(&mut header[1..]).await?;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    if len > max {
        return Err(AssocError::TooLarge(len));
    }
    if header[0] == PDATA_TF {
        return read_pdata(socket, len).await;
    }
    let mut buf = Vec::with_capacity(PDU_HEADER + (len as usize).min(INITIAL_BODY));
    buf.extend_from_slice(&header);
    let got = (&mut *socket)
        .take(u64::from(len))
        .read_to_end(&mut buf)
        .await?;
    if got < len as usize {
        return Err(AssocError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    match read_pdu(&buf[..], MAX_ASSOCIATE_PDU.max(max), false) {
        Ok(Some(pdu)) => Ok(pdu),
        Ok(None) => Err(AssocError::Malformed("incomplete PDU".into())),
        Err(e) => Err(AssocError::Malformed(e.to_string())),
    }
}

/// The body (`len` bytes) of a P-DATA-TF PDU, PS3.8 9.3.5: its presentation data value items,
/// each read from the socket into a buffer of its own that then travels, uncopied, to the
/// service (a C-STORE's fragment ends up written to its file from that buffer). dicom-ul's
/// decoder would copy every value twice more. The checks are dicom-ul's: every item at least
/// a context ID and a message control header, none running past the PDU.
async fn read_pdata<R: AsyncRead + Unpin>(socket: &mut R, len: u32) -> Result<Pdu, AssocError> {
    let mut left = len as usize;
    let mut values = Vec::with_capacity(1);
    while left > 0 {
        if left < PDV_HEADER {
            return Err(AssocError::Malformed(
                "P-DATA-TF item header runs past the PDU".into(),
            ));
        }
        let mut item = [0u8; PDV_HEADER];
        socket.read_exact(&mut item).await?;
        let item_len = u32::from_be_bytes([item[0], item[1], item[2], item[3]]) as usize;
        if item_len < 2 {
            return Err(AssocError::Malformed(format!(
                "P-DATA-TF item length {item_len}, under 2"
            )));
        }
        let data_len = item_len - 2;
        if data_len > left - PDV_HEADER {
            return Err(AssocError::Malformed(
                "P-DATA-TF item runs past the PDU".into(),
            ));
        }
        // Allocated at the item's length: `len` was checked against our maximum, which is
        // what an association may hold per PDU in any case.
        let mut data = Vec::with_capacity(data_len);
        while data.len() < data_len {
            // `data` has exactly `data_len` of capacity, so no read goes past the item.
            if socket.read_buf(&mut data).await? == 0 {
                return Err(AssocError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        let control = item[5];
        values.push(PDataValue {
            presentation_context_id: item[4],
            value_type: if control & 0x01 != 0 {
                PDataValueType::Command
            } else {
                PDataValueType::Data
            },
            is_last: control & 0x02 != 0,
            data,
        });
        left -= PDV_HEADER + data_len;
    }
    Ok(Pdu::PData { data: values })
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

fn trim_uid(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

impl Association {
    /// An established association: splits the socket and starts the reader task.
    fn running(
        socket: Connection,
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
            put_back: None,
            reader,
            calling_ae: String::new(),
            local_ae: String::new(),
            contexts,
            grant: crate::access::Grant {
                rights: pacsbox_archive::peers::PeerRights::ALL,
                learn: false,
            },
            peer_address: String::new(),
            scp_role_classes: Default::default(),
            peer_max_pdu,
            idle,
        }
    }

    /// The next PDU; an association silent for the idle timeout is an error. Cancel-safe.
    pub async fn receive(&mut self) -> Result<Pdu, AssocError> {
        if let Some(r) = self.put_back.take() {
            return r;
        }
        match tokio::time::timeout(self.idle, self.incoming.recv()).await {
            Err(_) => Err(AssocError::Idle(self.idle)),
            Ok(None) => Err(AssocError::Closed),
            Ok(Some(r)) => r,
        }
    }

    /// A PDU that has already arrived, without waiting (None: nothing yet).
    pub fn try_receive(&mut self) -> Option<Result<Pdu, AssocError>> {
        if let Some(r) = self.put_back.take() {
            return Some(r);
        }
        match self.incoming.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(AssocError::Closed)),
        }
    }

    /// Hands a received PDU back: the next receive returns it (a service that looked ahead,
    /// as storage commitment does for a release, leaves it to the association's loop).
    pub fn put_back(&mut self, pdu: Result<Pdu, AssocError>) {
        self.put_back = Some(pdu);
    }

    /// The next PDU, however long the peer takes (while the SCP itself is busy). Cancel-safe.
    pub async fn receive_while_busy(&mut self) -> Result<Pdu, AssocError> {
        if let Some(r) = self.put_back.take() {
            return r;
        }
        self.incoming
            .recv()
            .await
            .unwrap_or(Err(AssocError::Closed))
    }

    pub async fn send(&mut self, pdu: &Pdu) -> Result<(), AssocError> {
        write_one(&mut self.writer, pdu).await
    }

    /// The presentation context `id` as accepted; a service is only ever called for one.
    pub fn context(&self, id: u8) -> Result<AcceptedContext, AssocError> {
        self.contexts
            .get(&id)
            .cloned()
            .ok_or_else(|| AssocError::Malformed(format!("unknown presentation context {id}")))
    }

    /// The largest P-DATA-TF variable field the peer accepts (its Maximum Length sub-item).
    pub fn peer_max_pdu(&self) -> u32 {
        self.peer_max_pdu
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

    fn pdu(items: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (ctx, control, data) in items {
            body.extend((data.len() as u32 + 2).to_be_bytes());
            body.extend([*ctx, *control]);
            body.extend(*data);
        }
        let mut out = vec![PDATA_TF, 0];
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }

    async fn read(bytes: &[u8]) -> Result<Pdu, AssocError> {
        let mut r = bytes;
        read_one(&mut r, 1 << 20, None, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn pdata_items_are_read_each_into_its_own_value() {
        let bytes = pdu(&[(1, 0x03, b"command"), (1, 0x00, b"data"), (3, 0x02, b"")]);
        let Ok(Pdu::PData { data }) = read(&bytes).await else {
            panic!("not a P-DATA-TF");
        };
        let got: Vec<_> = data
            .iter()
            .map(|v| {
                (
                    v.presentation_context_id,
                    v.value_type == PDataValueType::Command,
                    v.is_last,
                    v.data.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, true, true, &b"command"[..]),
                (1, false, false, &b"data"[..]),
                (3, false, true, &b""[..]),
            ]
        );
        // dicom-ul's decoder reads the same PDU the same way
        assert_eq!(
            read_pdu(&bytes[..], 1 << 20, false).ok().flatten(),
            Some(Pdu::PData { data })
        );
    }

    #[tokio::test]
    async fn malformed_pdata_items_are_refused() {
        // item length under 2 (no context ID and control header)
        let mut bytes = pdu(&[(1, 0x02, b"x")]);
        bytes[6..10].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(read(&bytes).await, Err(AssocError::Malformed(_))));
        // an item running past the end of its PDU
        let mut bytes = pdu(&[(1, 0x02, b"abcd")]);
        bytes[6..10].copy_from_slice(&16u32.to_be_bytes());
        assert!(matches!(read(&bytes).await, Err(AssocError::Malformed(_))));
        // a PDU ending inside an item header
        let mut bytes = pdu(&[(1, 0x02, b"abcd")]);
        bytes.extend([0, 0, 0]);
        let len = (bytes.len() - PDU_HEADER) as u32;
        bytes[2..6].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(read(&bytes).await, Err(AssocError::Malformed(_))));
        // the connection closing inside a value
        let bytes = pdu(&[(1, 0x02, b"abcd")]);
        assert!(matches!(
            read(&bytes[..bytes.len() - 1]).await,
            Err(AssocError::Io(_))
        ));
    }
}
