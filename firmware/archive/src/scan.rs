//! A single-pass structural walk of a dataset: it proves the dataset is complete (every
//! element, item and sequence ends where it says, the stream ends on an element boundary) and
//! keeps the raw bytes of the attributes the index needs.
//!
//! Why not dicom-object: it decodes text with its own character-set support, which garbles
//! ISO 2022 code extensions (Korean `\ISO 2022 IR 149` above all), and it would hold values we
//! only need to skip. The walker keeps at most the wanted attributes in memory; large values
//! (pixel data) are skipped in place in the reader's own buffer (`BufRead::consume`, no copy),
//! so ingest can run the walk over the network fragments themselves while teeing them to disk.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use crate::transfer_syntax::DatasetEncoding;

/// (group, element)
pub type Tag = (u16, u16);

pub mod tags {
    use super::Tag;
    pub const SPECIFIC_CHARACTER_SET: Tag = (0x0008, 0x0005);
    pub const SOP_CLASS_UID: Tag = (0x0008, 0x0016);
    pub const SOP_INSTANCE_UID: Tag = (0x0008, 0x0018);
    pub const STUDY_DATE: Tag = (0x0008, 0x0020);
    pub const STUDY_TIME: Tag = (0x0008, 0x0030);
    pub const ACCESSION_NUMBER: Tag = (0x0008, 0x0050);
    pub const MODALITY: Tag = (0x0008, 0x0060);
    pub const REFERRING_PHYSICIAN_NAME: Tag = (0x0008, 0x0090);
    pub const STUDY_DESCRIPTION: Tag = (0x0008, 0x1030);
    pub const SERIES_DESCRIPTION: Tag = (0x0008, 0x103E);
    pub const PATIENT_NAME: Tag = (0x0010, 0x0010);
    pub const PATIENT_ID: Tag = (0x0010, 0x0020);
    pub const PATIENT_BIRTH_DATE: Tag = (0x0010, 0x0030);
    pub const PATIENT_SEX: Tag = (0x0010, 0x0040);
    pub const BODY_PART_EXAMINED: Tag = (0x0018, 0x0015);
    pub const STUDY_INSTANCE_UID: Tag = (0x0020, 0x000D);
    pub const SERIES_INSTANCE_UID: Tag = (0x0020, 0x000E);
    pub const STUDY_ID: Tag = (0x0020, 0x0010);
    pub const SERIES_NUMBER: Tag = (0x0020, 0x0011);
    pub const INSTANCE_NUMBER: Tag = (0x0020, 0x0013);

    pub const WANTED: &[Tag] = &[
        SPECIFIC_CHARACTER_SET,
        SOP_CLASS_UID,
        SOP_INSTANCE_UID,
        STUDY_DATE,
        STUDY_TIME,
        ACCESSION_NUMBER,
        MODALITY,
        REFERRING_PHYSICIAN_NAME,
        STUDY_DESCRIPTION,
        SERIES_DESCRIPTION,
        PATIENT_NAME,
        PATIENT_ID,
        PATIENT_BIRTH_DATE,
        PATIENT_SEX,
        BODY_PART_EXAMINED,
        STUDY_INSTANCE_UID,
        SERIES_INSTANCE_UID,
        STUDY_ID,
        SERIES_NUMBER,
        INSTANCE_NUMBER,
    ];
}

const ITEM: Tag = (0xFFFE, 0xE000);
const ITEM_END: Tag = (0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = (0xFFFE, 0xE0DD);
pub(crate) const UNDEFINED: u32 = 0xFFFF_FFFF;
/// Text attributes in the index are short; anything bigger than this is not a header we trust.
const MAX_WANTED_VALUE: u32 = 1 << 16;
/// Sequences nested deeper than this are hostile, not clinical.
const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("dataset ends inside an element (truncated or not {0:?})")]
    Truncated(DatasetEncoding),
    #[error("element ({0:04X},{1:04X}) has an implausible length {2}")]
    BadLength(u16, u16, u32),
    #[error("sequences nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("unexpected delimiter ({0:04X},{1:04X}) at top level")]
    StrayDelimiter(u16, u16),
    #[error("reading dataset: {0}")]
    Io(#[from] io::Error),
}

/// Whether an explicit-VR element of this VR has the 4-byte length form (PS3.5 7.1.2).
pub use pacsbox_deid::long_vr as has_long_length;

/// The wanted top-level attributes, raw value bytes (padding included).
pub type RawHeader = BTreeMap<Tag, Vec<u8>>;

/// Walks the whole dataset to its end; returns the wanted top-level attributes.
pub fn scan_dataset<R: BufRead>(
    reader: R,
    encoding: DatasetEncoding,
) -> Result<RawHeader, ScanError> {
    walker(reader, encoding).top_level()
}

/// A walker over `reader` for the encoding (deflated data sets are inflated on the way).
pub(crate) fn walker<'a, R: BufRead + 'a>(
    reader: R,
    encoding: DatasetEncoding,
) -> Walker<Box<dyn BufRead + 'a>> {
    match encoding {
        DatasetEncoding::Deflated => Walker::new(
            Box::new(io::BufReader::new(flate2::bufread::DeflateDecoder::new(
                reader,
            ))),
            false,
            true,
        ),
        DatasetEncoding::ImplicitLittle => Walker::new(Box::new(reader), false, false),
        DatasetEncoding::ExplicitLittle => Walker::new(Box::new(reader), false, true),
        DatasetEncoding::ExplicitBig => Walker::new(Box::new(reader), true, true),
    }
}

/// One top-level element as encoded: VR as sent (None in implicit VR), value undecoded.
/// Sequences are skipped and reported with an empty value and VR `SQ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawElement {
    pub tag: Tag,
    pub vr: Option<[u8; 2]>,
    pub value: Vec<u8>,
}

/// Every top-level element of a small dataset (a C-FIND identifier), values up to 64 KiB.
pub fn scan_elements<R: BufRead>(
    reader: R,
    encoding: DatasetEncoding,
) -> Result<Vec<RawElement>, ScanError> {
    walker(reader, encoding).all_elements()
}

pub(crate) struct Walker<R> {
    pub(crate) r: R,
    pub(crate) big_endian: bool,
    pub(crate) explicit: bool,
}

pub(crate) struct Header {
    pub(crate) tag: Tag,
    pub(crate) vr: [u8; 2],
    pub(crate) len: u32,
}

impl<R: BufRead> Walker<R> {
    pub(crate) fn new(r: R, big_endian: bool, explicit: bool) -> Self {
        Walker {
            r,
            big_endian,
            explicit,
        }
    }

    fn encoding(&self) -> DatasetEncoding {
        match (self.explicit, self.big_endian) {
            (false, _) => DatasetEncoding::ImplicitLittle,
            (true, true) => DatasetEncoding::ExplicitBig,
            (true, false) => DatasetEncoding::ExplicitLittle,
        }
    }

    fn u16(&self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream before the first byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ScanError> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(ScanError::Truncated(self.encoding())),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    pub(crate) fn need(&mut self, buf: &mut [u8]) -> Result<(), ScanError> {
        if self.fill(buf)? {
            Ok(())
        } else {
            Err(ScanError::Truncated(self.encoding()))
        }
    }

    pub(crate) fn header(&mut self) -> Result<Option<Header>, ScanError> {
        let mut t = [0u8; 4];
        if !self.fill(&mut t)? {
            return Ok(None);
        }
        let tag = (self.u16([t[0], t[1]]), self.u16([t[2], t[3]]));
        // Item and delimiter tags never carry a VR, even in explicit syntaxes.
        if tag.0 == 0xFFFE || !self.explicit {
            let mut l = [0u8; 4];
            self.need(&mut l)?;
            return Ok(Some(Header {
                tag,
                vr: *b"  ",
                len: self.u32(l),
            }));
        }
        let mut vr = [0u8; 2];
        self.need(&mut vr)?;
        let len = if has_long_length(vr) {
            let mut l = [0u8; 6];
            self.need(&mut l)?;
            self.u32([l[2], l[3], l[4], l[5]])
        } else {
            let mut l = [0u8; 2];
            self.need(&mut l)?;
            u32::from(self.u16(l))
        };
        Ok(Some(Header { tag, vr, len }))
    }

    /// Passes over `len` bytes where they lie in the reader's buffer, without copying them.
    pub(crate) fn skip(&mut self, len: u32) -> Result<(), ScanError> {
        let mut left = len as usize;
        while left > 0 {
            let available = match self.r.fill_buf() {
                Ok(b) => b.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if available == 0 {
                return Err(ScanError::Truncated(self.encoding()));
            }
            let n = available.min(left);
            self.r.consume(n);
            left -= n;
        }
        Ok(())
    }

    fn top_level(mut self) -> Result<RawHeader, ScanError> {
        let mut out = RawHeader::new();
        while let Some(h) = self.header()? {
            if h.tag.0 == 0xFFFE {
                return Err(ScanError::StrayDelimiter(h.tag.0, h.tag.1));
            }
            if h.len == UNDEFINED {
                self.skip_undefined(&h, 0)?;
            } else if tags::WANTED.contains(&h.tag) {
                if h.len > MAX_WANTED_VALUE {
                    return Err(ScanError::BadLength(h.tag.0, h.tag.1, h.len));
                }
                let mut v = vec![0u8; h.len as usize];
                self.need(&mut v)?;
                out.insert(h.tag, v);
            } else {
                self.skip(h.len)?;
            }
        }
        Ok(out)
    }

    fn all_elements(mut self) -> Result<Vec<RawElement>, ScanError> {
        let mut out = Vec::new();
        while let Some(h) = self.header()? {
            if h.tag.0 == 0xFFFE {
                return Err(ScanError::StrayDelimiter(h.tag.0, h.tag.1));
            }
            let vr = self.explicit.then_some(h.vr);
            if h.len == UNDEFINED {
                self.skip_undefined(&h, 0)?;
                out.push(RawElement {
                    tag: h.tag,
                    vr: Some(*b"SQ"),
                    value: Vec::new(),
                });
            } else if &h.vr == b"SQ" {
                self.skip(h.len)?;
                out.push(RawElement {
                    tag: h.tag,
                    vr,
                    value: Vec::new(),
                });
            } else {
                if h.len > MAX_WANTED_VALUE {
                    return Err(ScanError::BadLength(h.tag.0, h.tag.1, h.len));
                }
                let mut v = vec![0u8; h.len as usize];
                self.need(&mut v)?;
                out.push(RawElement {
                    tag: h.tag,
                    vr,
                    value: v,
                });
            }
        }
        Ok(out)
    }

    /// Skips an undefined-length value: a sequence of items, ended by a sequence delimiter.
    pub(crate) fn skip_undefined(&mut self, h: &Header, depth: usize) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(ScanError::TooDeep);
        }
        // An undefined-length UN holds implicit VR little endian (PS3.5 6.2.2).
        let switch = &h.vr == b"UN" && self.explicit;
        let saved = (self.explicit, self.big_endian);
        if switch {
            self.explicit = false;
            self.big_endian = false;
        }
        let result = self.skip_items(depth);
        (self.explicit, self.big_endian) = saved;
        result
    }

    fn skip_items(&mut self, depth: usize) -> Result<(), ScanError> {
        loop {
            let Some(item) = self.header()? else {
                return Err(ScanError::Truncated(self.encoding()));
            };
            match item.tag {
                SEQUENCE_END => return Ok(()),
                ITEM if item.len == UNDEFINED => self.skip_item_elements(depth + 1)?,
                ITEM => self.skip(item.len)?,
                (g, e) => return Err(ScanError::StrayDelimiter(g, e)),
            }
        }
    }

    fn skip_item_elements(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(ScanError::TooDeep);
        }
        loop {
            let Some(h) = self.header()? else {
                return Err(ScanError::Truncated(self.encoding()));
            };
            match h.tag {
                ITEM_END => return Ok(()),
                _ if h.len == UNDEFINED => self.skip_undefined(&h, depth)?,
                _ => self.skip(h.len)?,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One explicit VR little endian element with a 16-bit length (the other tests' too).
    pub(crate) fn explicit_le(tag: Tag, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(tag.0.to_le_bytes());
        v.extend(tag.1.to_le_bytes());
        v.extend(vr);
        v.extend((value.len() as u16).to_le_bytes());
        v.extend(value);
        v
    }

    #[test]
    fn skips_sequences_keeps_wanted_attributes_and_refuses_short_pixel_data() {
        let mut ds = explicit_le((0x0008, 0x0018), b"UI", b"1.2.3\0");
        // (0008,1140) SQ, undefined length, one undefined-length item holding one element
        ds.extend([
            0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend(explicit_le((0x0008, 0x1150), b"UI", b"9.9\0"));
        ds.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.extend(explicit_le((0x0010, 0x0010), b"PN", b"DOE^JOHN"));
        let mut complete = ds.clone();
        complete.extend([
            0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4,
        ]);
        let h = scan_dataset(&complete[..], DatasetEncoding::ExplicitLittle).unwrap();
        assert_eq!(h[&tags::SOP_INSTANCE_UID], b"1.2.3\0");
        assert_eq!(h[&tags::PATIENT_NAME], b"DOE^JOHN");
        assert!(!h.contains_key(&(0x0008, 0x1150)));
        // pixel data that announces more bytes than the stream holds: truncated, refused
        ds.extend([
            0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0, 0, 0, 0x10, 1, 2,
        ]);
        assert!(matches!(
            scan_dataset(&ds[..], DatasetEncoding::ExplicitLittle),
            Err(ScanError::Truncated(_))
        ));
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let ds = explicit_le((0x0010, 0x0010), b"PN", b"DOE^JOHN");
        for cut in 1..ds.len() {
            assert!(scan_dataset(&ds[..cut], DatasetEncoding::ExplicitLittle).is_err());
        }
        // random bytes never panic either
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = scan_dataset(&bytes[..], DatasetEncoding::ImplicitLittle);
            let _ = scan_dataset(&bytes[..], DatasetEncoding::ExplicitBig);
        }
    }
}
