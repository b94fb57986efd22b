//! The C-STORE SCU that every outgoing instance goes through: C-MOVE and C-GET
//! sub-operations (`retrieve.rs`) and forwarding to another PACS (`forward.rs`).
//!
//! Transfer syntax on the way out: the bytes as stored when the receiver accepts the stored
//! syntax; otherwise a native syntax the receiver accepts — re-encoded with dicom-object from a
//! native stored syntax, or decompressed by pacsbox-imaging when it says it can
//! ([`pacsbox_imaging::can_decompress`]). The data set goes out in P-DATA fragments cut to the
//! receiver's maximum PDU (`association/pdata.rs`).

use std::collections::HashMap;
use std::io::Read;

use dicom_ul::Pdu;
use dicom_ul::pdu::PDataValueType;
use pacsbox_archive::transfer_syntax;
use pacsbox_archive::{Archive, InstanceRecord};
use tokio::sync::mpsc;

use pacsbox_archive::peers::{CertRule, PeerEntry};

use crate::association::{AcceptedContext, AssocError, Association, TlsTarget};
use crate::dimse::{Command, CommandField, Status, is_cancel};

pub(crate) const NATIVE: [&str; 3] = [
    transfer_syntax::EXPLICIT_VR_LE,
    transfer_syntax::IMPLICIT_VR_LE,
    transfer_syntax::EXPLICIT_VR_BE,
];
/// Data set bytes per P-DATA fragment read from disk at a time.
const CHUNK: usize = 64 * 1024;

/// Why one C-STORE sub-operation failed without a status from the receiver.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubOperationError {
    /// The receiver cannot take this instance (no context for its SOP class, or only syntaxes
    /// we cannot produce from the stored one). The next sub-operations go on.
    #[error("{0}")]
    Unsendable(String),
    /// C-GET: the requestor did not take the SCP role for the instance's SOP class.
    #[error("requestor did not take the SCP role for {0}")]
    NoScpRole(String),
    /// The stored file failed before anything of it was sent. The next ones go on.
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The association the C-STOREs go on failed, possibly mid data set: no further
    /// sub-operation can be attempted on it.
    #[error(transparent)]
    Association(#[from] AssocError),
}

/// A peer C-STOREs go to: where it listens, and whether over TLS.
pub(crate) struct Destination {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// Reached over TLS, trusting this certificate rule (none: the clinic CA).
    pub tls: Option<Option<CertRule>>,
}

impl Destination {
    /// The peer's address from its table entry; the error says what is missing.
    pub fn of(peer: PeerEntry) -> Result<Destination, &'static str> {
        let tls = peer.needs_tls().then(|| peer.cert.clone());
        match (peer.host, peer.port) {
            (Some(host), Some(port)) if !host.trim().is_empty() && port > 0 => Ok(Destination {
                ae_title: peer.ae_title,
                host,
                port,
                tls,
            }),
            _ => Err("has no host and port"),
        }
    }

    /// How to reach it over TLS, if its entry says so; the error says why it cannot be.
    fn tls_target(
        &self,
        trust: Option<&crate::trust::PeerTrust>,
    ) -> Result<Option<TlsTarget>, String> {
        let Some(rule) = &self.tls else {
            return Ok(None);
        };
        let trust = trust.ok_or("its entry says tls, but this box has no DICOM TLS certificate")?;
        Ok(Some(TlsTarget {
            config: trust.client_config(rule.as_ref())?,
            server_name: crate::trust::server_name(&self.host)?,
        }))
    }

    /// Opens an association to it as `local_ae` proposing `proposals`; the error is for
    /// people (logs, the requestor's comment, the forwarding page).
    pub async fn connect(
        &self,
        trust: Option<&crate::trust::PeerTrust>,
        local_ae: &str,
        proposals: &[(String, Vec<String>)],
        config: &crate::ScpConfig,
    ) -> Result<Association, String> {
        self.connect_with_roles(trust, local_ae, proposals, &[], config)
            .await
    }

    /// [`Destination::connect`] with SCP/SCU role selection (see
    /// [`Association::request`]).
    pub async fn connect_with_roles(
        &self,
        trust: Option<&crate::trust::PeerTrust>,
        local_ae: &str,
        proposals: &[(String, Vec<String>)],
        roles: &[(String, dicom_ul::pdu::RequestorRoles)],
        config: &crate::ScpConfig,
    ) -> Result<Association, String> {
        let tls = self.tls_target(trust)?;
        Association::request(
            &self.host,
            self.port,
            tls,
            local_ae,
            &self.ae_title,
            proposals,
            roles,
            config.max_pdu,
            config.idle_timeout,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

/// Presentation contexts to propose for `records`: one per (SOP class, stored syntax), plus
/// a native fallback per SOP class.
pub(crate) fn proposals<'a>(
    records: impl IntoIterator<Item = &'a InstanceRecord>,
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for rec in records {
        let exact = (rec.sop_class_uid.clone(), vec![rec.transfer_syntax.clone()]);
        if !out.contains(&exact) {
            out.push(exact);
        }
        let native = (
            rec.sop_class_uid.clone(),
            NATIVE.iter().map(|s| s.to_string()).collect(),
        );
        if !out.contains(&native) {
            out.push(native);
        }
    }
    out
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
    let decodable = NATIVE.contains(&stored) || pacsbox_imaging::can_decompress(stored);
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
pub(crate) struct Ready {
    context: u8,
    chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

/// The requestor's C-CANCEL of the C-MOVE or C-GET (forwarding: none).
pub(crate) struct Cancel<'a> {
    /// C-GET: the request whose C-CANCEL may arrive on the target while a sub-operation waits
    /// for its C-STORE-RSP. (A C-MOVE's comes on the requesting association, which its loop
    /// watches between sub-operations.)
    pub watch_for: Option<&'a Command>,
    pub cancelled: bool,
}

/// Chooses the receiver's context for `rec` and starts reading (and, if need be,
/// decompressing) its file on a blocking thread.
pub(crate) fn prepare(
    contexts: &HashMap<u8, AcceptedContext>,
    archive: &Archive,
    rec: &InstanceRecord,
) -> Result<Ready, SubOperationError> {
    let (context, ts) = choose_context(contexts, &rec.sop_class_uid, &rec.transfer_syntax)
        .map_err(SubOperationError::Unsendable)?;
    Ok(Ready {
        context,
        chunks: spawn_reader(archive, rec.clone(), ts),
    })
}

/// One C-STORE on `target`: the receiver's status, or why there is none. `originator`: a
/// C-MOVE's Move Originator AE Title and Message ID.
pub(crate) async fn store(
    target: &mut Association,
    ready: Result<Ready, SubOperationError>,
    sop: &str,
    rec: &InstanceRecord,
    message_id: u16,
    originator: Option<&(String, u16)>,
    cancel: &mut Cancel<'_>,
) -> Result<Status, SubOperationError> {
    let Ready {
        context: ctx,
        mut chunks,
    } = ready?;
    let mut rq = Command::request(CommandField::CStoreRq, message_id);
    rq.affected_sop_class_uid = Some(rec.sop_class_uid.clone());
    rq.affected_sop_instance_uid = Some(sop.to_owned());
    rq.priority = Some(0);
    rq.data_set_type = 0x0000;
    if let Some((ae, id)) = originator {
        rq.move_originator_ae = Some(ae.clone());
        rq.move_originator_message_id = Some(*id);
    }
    // Read ahead one chunk so the last fragment can be flagged; a read error before
    // anything was sent fails only this sub-operation.
    let mut next = match chunks.recv().await {
        Some(Ok(c)) => Some(c),
        Some(Err(error)) => {
            return Err(SubOperationError::Read {
                path: rec.rel_path.clone(),
                error,
            });
        }
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
                ))
                .into());
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
                if let Some(get) = cancel.watch_for
                    && is_cancel(&data, get)
                {
                    cancel.cancelled = true;
                    continue;
                }
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command
                        && let Ok(c) = Command::decode(&pdv.data)
                        && c.field == CommandField::CStoreRsp
                        && c.message_id_responded_to == Some(message_id)
                    {
                        return Ok(c.status.unwrap_or(Status::PROCESSING_FAILURE));
                    }
                }
            }
            Pdu::AbortRQ { source } => {
                return Err(AssocError::Aborted(format!("{source:?}")).into());
            }
            other => {
                return Err(AssocError::Malformed(format!(
                    "unexpected {} while waiting for C-STORE-RSP",
                    other.short_description()
                ))
                .into());
            }
        }
    }
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

    /// A JPEG-LS instance goes to a native-only receiver exactly when pacsbox-imaging can
    /// decompress it, i.e. only in a build with the native codecs.
    #[test]
    fn jpeg_ls_is_offered_native_only_where_it_can_be_decompressed() {
        const JPEG_LS: &str = "1.2.840.10008.1.2.4.80";
        let r = receiver(&[(1, CT, transfer_syntax::EXPLICIT_VR_LE)]);
        let chosen = choose_context(&r, CT, JPEG_LS);
        if pacsbox_imaging::can_decompress(JPEG_LS) {
            assert_eq!(chosen, Ok((1, transfer_syntax::EXPLICIT_VR_LE.to_owned())));
        } else {
            let why = chosen.unwrap_err();
            assert!(why.contains("no decoder"), "{why}");
        }
    }

    #[test]
    fn a_receiver_without_the_class_is_told_so() {
        let r = receiver(&[(1, CT, transfer_syntax::EXPLICIT_VR_LE)]);
        let why = choose_context(&r, "1.2.840.10008.5.1.4.1.1.4", JPEG_BASELINE).unwrap_err();
        assert!(why.contains("no context for SOP class"), "{why}");
    }
}
