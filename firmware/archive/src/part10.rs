//! Part-10 framing: the 128-byte preamble, `DICM`, and the File Meta Information group.
//!
//! Writing goes through dicom-object's `FileMetaTableBuilder`. Reading back only needs the
//! transfer syntax and the source AE, and where the dataset starts, which the mandatory group
//! length (0002,0000) gives without parsing the rest.

use std::io::{self, Read, Write};

use dicom_object::meta::FileMetaTableBuilder;

/// Our implementation class UID (under the pydicom example root is not ours to use; this is a
/// UUID-derived root, 2.25.<uuid as integer>, which anybody may mint).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.207434126960331846101617399437431632154";
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("PACSBOX_", env!("CARGO_PKG_VERSION"));

pub struct MetaInfo {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    pub source_ae: String,
}

/// Encodes preamble + magic + meta group.
pub fn encode_header(meta: &MetaInfo) -> io::Result<Vec<u8>> {
    let table = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(meta.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(meta.sop_instance_uid.as_str())
        .transfer_syntax(meta.transfer_syntax.as_str())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .source_application_entity_title(meta.source_ae.as_str())
        .build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    table
        .write(&mut out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(out)
}

/// What `read_header` found; the reader is left at the first byte of the dataset.
pub struct ReadMeta {
    /// Media Storage SOP Class UID (0002,0002).
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub source_ae: String,
    pub sop_instance_uid: String,
}

pub fn read_header<R: Read>(r: &mut R) -> io::Result<ReadMeta> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut pre = [0u8; 132];
    r.read_exact(&mut pre)?;
    if &pre[128..] != b"DICM" {
        return Err(bad("no DICM magic after the preamble"));
    }
    let mut first = [0u8; 12];
    r.read_exact(&mut first)?;
    if first[..6] != [0x02, 0x00, 0x00, 0x00, b'U', b'L'] {
        return Err(bad(
            "File Meta does not start with its group length (0002,0000)",
        ));
    }
    let group_len = u32::from_le_bytes([first[8], first[9], first[10], first[11]]);
    if group_len > 1 << 20 {
        return Err(bad("implausible File Meta group length"));
    }
    let mut group = vec![0u8; group_len as usize];
    r.read_exact(&mut group)?;
    let mut out = ReadMeta {
        sop_class_uid: String::new(),
        transfer_syntax: String::new(),
        source_ae: String::new(),
        sop_instance_uid: String::new(),
    };
    let mut p = 0usize;
    while p + 8 <= group.len() {
        let elem = u16::from_le_bytes([group[p + 2], group[p + 3]]);
        let vr = &group[p + 4..p + 6];
        let (len, hdr) = if matches!(vr, b"OB" | b"UN" | b"UT" | b"SQ" | b"OW") {
            if p + 12 > group.len() {
                break;
            }
            let l = u32::from_le_bytes([group[p + 8], group[p + 9], group[p + 10], group[p + 11]]);
            (l as usize, 12)
        } else {
            (
                usize::from(u16::from_le_bytes([group[p + 6], group[p + 7]])),
                8,
            )
        };
        let start = p + hdr;
        let end = start.checked_add(len).filter(|&e| e <= group.len());
        let Some(end) = end else {
            return Err(bad("File Meta element overruns its group"));
        };
        let text = || {
            String::from_utf8_lossy(&group[start..end])
                .trim_end_matches(['\0', ' '])
                .to_owned()
        };
        match elem {
            0x0002 => out.sop_class_uid = text(),
            0x0003 => out.sop_instance_uid = text(),
            0x0010 => out.transfer_syntax = text(),
            0x0016 => out.source_ae = text(),
            _ => {}
        }
        p = end;
    }
    if out.transfer_syntax.is_empty() {
        return Err(bad("File Meta has no Transfer Syntax UID"));
    }
    Ok(out)
}

/// Hashes everything written through it; the archive records the hash of each file's on-disk
/// bytes so `pacsbox verify --checksums` can detect bit rot.
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: xxhash_rust::xxh3::Xxh3,
    pub written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            written: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let meta = MetaInfo {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3.4".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            source_ae: "CT1".into(),
        };
        let mut bytes = encode_header(&meta).unwrap();
        bytes.extend_from_slice(b"rest");
        let mut r = &bytes[..];
        let back = read_header(&mut r).unwrap();
        assert_eq!(back.transfer_syntax, meta.transfer_syntax);
        assert_eq!(back.source_ae, "CT1");
        assert_eq!(back.sop_instance_uid, "1.2.3.4");
        assert_eq!(r, b"rest");
    }
}
