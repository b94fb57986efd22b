//! A data set as a tree of elements borrowed from the input bytes, read and written in any of
//! the uncompressed encodings (implicit/explicit VR, little/big endian). Values are not
//! decoded: what the profile keeps is written back byte for byte, encapsulated pixel data
//! included (its fragments are one opaque slice).

use std::borrow::Cow;

use dicom_core::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;

use crate::DeidError;

/// How a data set's elements are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enc {
    pub explicit: bool,
    pub big: bool,
}

impl Enc {
    pub const IMPLICIT_LE: Enc = Enc {
        explicit: false,
        big: false,
    };
    pub const EXPLICIT_LE: Enc = Enc {
        explicit: true,
        big: false,
    };
}

pub const ITEM: u32 = 0xFFFE_E000;
pub const ITEM_END: u32 = 0xFFFE_E00D;
pub const SEQ_END: u32 = 0xFFFE_E0DD;
const UNDEFINED: u32 = 0xFFFF_FFFF;

#[derive(Clone, Debug)]
pub struct Elem<'a> {
    pub tag: u32,
    pub vr: [u8; 2],
    pub value: Value<'a>,
}

#[derive(Clone, Debug)]
pub enum Value<'a> {
    Bytes(Cow<'a, [u8]>),
    /// A sequence; `enc` is its items' encoding (implicit LE inside an undefined-length UN).
    Seq {
        items: Vec<Vec<Elem<'a>>>,
        enc: Enc,
    },
    /// Encapsulated pixel data after its header, through the sequence delimiter, verbatim.
    Fragments(&'a [u8]),
}

impl Elem<'_> {
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// VRs whose explicit header has two reserved bytes and a 32-bit length (PS3.5 7.1.2).
pub fn long_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"UC"
            | b"UR"
            | b"UT"
            | b"UN"
            | b"SV"
            | b"UV"
    )
}

pub fn dictionary_vr(tag: u32) -> [u8; 2] {
    if tag & 0xFFFF == 0 {
        return *b"UL";
    }
    StandardDataDictionary
        .by_tag(dicom_core::Tag((tag >> 16) as u16, tag as u16))
        .and_then(|e| {
            let s = e.vr.relaxed().to_string();
            let b = s.as_bytes();
            (b.len() == 2).then(|| [b[0], b[1]])
        })
        .unwrap_or(*b"UN")
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DeidError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DeidError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self, big: bool) -> Result<u16, DeidError> {
        let b = self.take(2)?;
        let b = [b[0], b[1]];
        Ok(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&mut self, big: bool) -> Result<u32, DeidError> {
        let b = self.take(4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn tag(&mut self, big: bool) -> Result<u32, DeidError> {
        let g = self.u16(big)?;
        let e = self.u16(big)?;
        Ok((u32::from(g) << 16) | u32::from(e))
    }
}

/// Nesting deeper than this is refused rather than recursed into (a hostile file).
const MAX_DEPTH: usize = 64;

/// Reads a whole data set.
pub fn read(buf: &[u8], enc: Enc) -> Result<Vec<Elem<'_>>, DeidError> {
    let mut r = Reader { buf, pos: 0 };
    read_elems(&mut r, enc, buf.len(), false, 0)
}

/// Elements up to `end`, or (in an undefined-length item, `until_delim`) its delimiter.
fn read_elems<'a>(
    r: &mut Reader<'a>,
    enc: Enc,
    end: usize,
    until_delim: bool,
    depth: usize,
) -> Result<Vec<Elem<'a>>, DeidError> {
    if depth > MAX_DEPTH {
        return Err(DeidError::Malformed(r.pos, "sequences nested too deep"));
    }
    let mut out = Vec::new();
    while r.pos < end {
        // Trailing padding some writers leave after the last element.
        if !until_delim && depth == 0 && r.buf[r.pos..end].iter().all(|b| *b == 0) {
            break;
        }
        let start = r.pos;
        let tag = r.tag(enc.big)?;
        if tag == ITEM_END {
            r.u32(enc.big)?;
            if until_delim {
                return Ok(out);
            }
            return Err(DeidError::Malformed(
                start,
                "item delimiter outside an item",
            ));
        }
        if tag >> 16 == 0xFFFE {
            return Err(DeidError::Malformed(
                start,
                "item tag where an element was expected",
            ));
        }
        let (vr, len) = if enc.explicit {
            let v = r.take(2)?;
            let vr = [v[0], v[1]];
            if !vr.iter().all(u8::is_ascii_uppercase) {
                return Err(DeidError::Malformed(start, "not a value representation"));
            }
            if long_vr(vr) {
                r.take(2)?;
                (vr, r.u32(enc.big)?)
            } else {
                (vr, u32::from(r.u16(enc.big)?))
            }
        } else {
            let len = r.u32(enc.big)?;
            let vr = dictionary_vr(tag);
            (
                if len == UNDEFINED && vr == *b"UN" {
                    *b"SQ"
                } else {
                    vr
                },
                len,
            )
        };
        let value = if vr == *b"SQ" || (vr == *b"UN" && len == UNDEFINED) {
            // An undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2).
            let inner = if vr == *b"UN" { Enc::IMPLICIT_LE } else { enc };
            Value::Seq {
                items: read_items(r, enc, inner, len, depth)?,
                enc: inner,
            }
        } else if len == UNDEFINED {
            let from = r.pos;
            skip_fragments(r, enc)?;
            Value::Fragments(&r.buf[from..r.pos])
        } else {
            Value::Bytes(Cow::Borrowed(r.take(len as usize)?))
        };
        out.push(Elem { tag, vr, value });
    }
    if until_delim {
        return Err(DeidError::Truncated(r.pos));
    }
    if r.pos > end {
        return Err(DeidError::Malformed(end, "element runs past its item"));
    }
    Ok(out)
}

fn read_items<'a>(
    r: &mut Reader<'a>,
    outer: Enc,
    inner: Enc,
    len: u32,
    depth: usize,
) -> Result<Vec<Vec<Elem<'a>>>, DeidError> {
    let end = if len == UNDEFINED {
        usize::MAX
    } else {
        r.pos
            .checked_add(len as usize)
            .filter(|e| *e <= r.buf.len())
            .ok_or(DeidError::Truncated(r.pos))?
    };
    // Item tags of an undefined-length UN are implicit little endian like its contents; in a
    // big endian data set they are big endian.
    let big = inner.big && outer.big;
    let mut items = Vec::new();
    while r.pos < end {
        let at = r.pos;
        let tag = r.tag(big)?;
        let ilen = r.u32(big)?;
        match tag {
            SEQ_END if len == UNDEFINED => return Ok(items),
            ITEM if ilen == UNDEFINED => {
                items.push(read_elems(r, inner, usize::MAX, true, depth + 1)?);
            }
            ITEM => {
                let iend = r
                    .pos
                    .checked_add(ilen as usize)
                    .filter(|e| *e <= r.buf.len())
                    .ok_or(DeidError::Truncated(r.pos))?;
                items.push(read_elems(r, inner, iend, false, depth + 1)?);
                r.pos = iend;
            }
            _ => return Err(DeidError::Malformed(at, "expected an item in a sequence")),
        }
    }
    if len == UNDEFINED {
        return Err(DeidError::Truncated(r.pos));
    }
    Ok(items)
}

fn skip_fragments(r: &mut Reader<'_>, enc: Enc) -> Result<(), DeidError> {
    loop {
        let at = r.pos;
        let tag = r.tag(enc.big)?;
        let len = r.u32(enc.big)?;
        match tag {
            SEQ_END => return Ok(()),
            ITEM if len != UNDEFINED => {
                r.take(len as usize)?;
            }
            _ => return Err(DeidError::Malformed(at, "expected a fragment")),
        }
    }
}

fn put16(out: &mut Vec<u8>, v: u16, big: bool) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}
fn put32(out: &mut Vec<u8>, v: u32, big: bool) {
    out.extend_from_slice(&if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    });
}
fn put_tag(out: &mut Vec<u8>, tag: u32, big: bool) {
    put16(out, (tag >> 16) as u16, big);
    put16(out, tag as u16, big);
}

fn header(out: &mut Vec<u8>, tag: u32, vr: [u8; 2], len: u32, enc: Enc) -> Result<(), DeidError> {
    put_tag(out, tag, enc.big);
    if !enc.explicit {
        put32(out, len, enc.big);
        return Ok(());
    }
    out.extend_from_slice(&vr);
    if long_vr(vr) {
        out.extend_from_slice(&[0, 0]);
        put32(out, len, enc.big);
    } else {
        let short = u16::try_from(len).map_err(|_| DeidError::TooLong(tag))?;
        put16(out, short, enc.big);
    }
    Ok(())
}

/// Writes elements; sequences and items with undefined lengths (valid in every encoding, and
/// no lengths to recompute).
pub fn write(out: &mut Vec<u8>, elems: &[Elem<'_>], enc: Enc) -> Result<(), DeidError> {
    for e in elems {
        match &e.value {
            Value::Bytes(b) => {
                let len = u32::try_from(b.len()).map_err(|_| DeidError::TooLong(e.tag))?;
                header(out, e.tag, e.vr, len, enc)?;
                out.extend_from_slice(b);
            }
            Value::Fragments(raw) => {
                header(out, e.tag, e.vr, UNDEFINED, enc)?;
                out.extend_from_slice(raw);
            }
            Value::Seq { items, enc: inner } => {
                header(out, e.tag, e.vr, UNDEFINED, enc)?;
                let big = inner.big && enc.big;
                for item in items {
                    put_tag(out, ITEM, big);
                    put32(out, UNDEFINED, big);
                    write(out, item, *inner)?;
                    put_tag(out, ITEM_END, big);
                    put32(out, 0, big);
                }
                put_tag(out, SEQ_END, big);
                put32(out, 0, big);
            }
        }
    }
    Ok(())
}
