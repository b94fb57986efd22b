//! DIMSE messages as P-DATA-TF PDUs: command and data set fragments cut to the peer's
//! Maximum Length, encoded into one buffer so that many messages go out in one write.

use dicom_ul::pdu::PDataValueType;
use tokio::io::AsyncWriteExt;

use super::{AssocError, Association};

impl Association {
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

#[cfg(test)]
mod tests {
    use dicom_ul::{Pdu, read_pdu};

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
