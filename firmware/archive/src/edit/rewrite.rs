//! A new version of a Part-10 file with some top-level attributes replaced, inserted or
//! removed, and every other byte — pixel data, sequences, private tags — copied as it was.
//!
//! This is the one place that writes a changed data set: corrections (`edit/`) call it, and an
//! anonymizer can too. It streams: the walk of `scan.rs` runs over a reader that copies each
//! element it passes straight to the output unless the element is being replaced, so a
//! multi-frame file is never held in memory. The transfer syntax is kept; the File Meta group
//! is written again (same SOP class, instance and syntax, this implementation's class UID).
//!
//! Text values arrive as Unicode and are encoded for the file's Specific Character Set: ASCII
//! anywhere; UTF-8 into `ISO_IR 192`; Latin-1 into `ISO_IR 100`. A file with the default
//! repertoire that gets a non-ASCII value is switched to `ISO_IR 192` (its other text is ASCII,
//! which UTF-8 reads the same). Anything else (a Korean ISO 2022 file given a Hangul value) is
//! refused rather than written wrongly.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};

use crate::part10::{self, HashingWriter, MetaInfo};
use crate::scan::{self, RawHeader, Tag, UNDEFINED, tags};
use crate::transfer_syntax::DatasetEncoding;

/// What happens to one top-level attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Set (replace or insert) a text value, encoded for the file's character set.
    Text(String),
    /// Set raw value bytes (already encoded and padded by the caller).
    Raw(Vec<u8>),
    /// Drop the attribute if present.
    Remove,
}

/// One attribute to change: its tag, its VR (used when the file is implicit VR or the
/// attribute is inserted) and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    pub tag: Tag,
    pub vr: [u8; 2],
    pub change: Change,
}

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("reading or writing: {0}")]
    Io(#[from] io::Error),
    #[error("walking the data set: {0}")]
    Scan(#[from] scan::ScanError),
    #[error("deflated data sets are not rewritten")]
    Deflated,
    #[error(
        "{tag} cannot be written in the file's character set {charset:?}: it holds characters \
         outside that repertoire"
    )]
    Charset { tag: String, charset: String },
    #[error("{0} is changed through the File Meta or the character set logic, not directly")]
    Reserved(String),
    #[error("value of {0} is longer than 65 534 bytes")]
    TooLong(String),
}

/// What a rewrite found and made.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// The previous raw values (padding included) of the attributes replaced or removed.
    pub old: BTreeMap<Tag, Vec<u8>>,
    /// xxh3 of the new data set bytes (after the File Meta group), as ingest hashes them.
    pub dataset_hash: u64,
    /// Specific Character Set written (changed only for a non-ASCII value in a default file).
    pub charset: String,
    /// The indexed attributes (`scan::tags::WANTED`) as read, and as written.
    pub old_header: RawHeader,
    pub header: RawHeader,
}

/// Writes to `out` the Part-10 file read from `input` (decompressed) with `changes` applied to
/// its top-level data set. `changes` need not be sorted; tags must be above (0008,0005).
pub fn rewrite_part10<R: Read, W: Write>(
    input: R,
    out: W,
    changes: &[Replacement],
) -> Result<Rewritten, RewriteError> {
    let mut input = io::BufReader::with_capacity(256 << 10, input);
    let meta = part10::read_header(&mut input)?;
    let encoding = DatasetEncoding::of(&meta.transfer_syntax);
    if encoding == DatasetEncoding::Deflated {
        return Err(RewriteError::Deflated);
    }
    let mut sorted: Vec<&Replacement> = changes.iter().collect();
    sorted.sort_by_key(|r| r.tag);
    if let Some(r) = sorted
        .iter()
        .find(|r| r.tag <= tags::SPECIFIC_CHARACTER_SET)
    {
        return Err(RewriteError::Reserved(tag_name(r.tag)));
    }
    let mut out = out;
    out.write_all(&part10::encode_header(&MetaInfo {
        sop_class_uid: meta.sop_class_uid.clone(),
        sop_instance_uid: meta.sop_instance_uid.clone(),
        transfer_syntax: meta.transfer_syntax.clone(),
        source_ae: meta.source_ae.clone(),
    })?)?;
    let sink = HashingWriter::new(out);
    let tee = Tee {
        inner: input,
        sink,
        mode: Mode::Hold,
        held: Vec::new(),
        err: None,
    };
    let mut w = scan::Walker::new(
        tee,
        encoding == DatasetEncoding::ExplicitBig,
        encoding != DatasetEncoding::ImplicitLittle,
    );
    let mut state = State {
        pending: sorted.into_iter().peekable(),
        charset: None,
        result: Rewritten::default(),
    };
    loop {
        w.r.held.clear();
        w.r.mode = Mode::Hold;
        let Some(h) = w.header()? else { break };
        if h.tag.0 == 0xFFFE {
            return Err(scan::ScanError::StrayDelimiter(h.tag.0, h.tag.1).into());
        }
        let enc = Enc {
            big: w.big_endian,
            explicit: w.explicit,
        };
        // The character set is settled at (0008,0005) or at the first tag past it.
        if h.tag == tags::SPECIFIC_CHARACTER_SET && h.len != UNDEFINED {
            w.r.mode = Mode::Drop;
            let mut v = vec![0u8; h.len as usize];
            w.need(&mut v)?;
            let raw = String::from_utf8_lossy(&v)
                .trim_matches(|c: char| c == '\0' || c == ' ')
                .to_owned();
            state.result.old_header.insert(h.tag, v);
            state.declare_charset(&mut w.r.sink, enc, raw, true)?;
            continue;
        }
        if h.tag > tags::SPECIFIC_CHARACTER_SET && state.charset.is_none() {
            state.declare_charset(&mut w.r.sink, enc, String::new(), false)?;
        }
        state.insert_before(&mut w.r.sink, enc, h.tag)?;
        let replaced = state.pending.next_if(|r| r.tag == h.tag);
        match replaced {
            Some(r) => {
                w.r.mode = Mode::Drop;
                if h.len == UNDEFINED {
                    w.skip_undefined(&h, 0)?;
                    state.result.old.insert(h.tag, Vec::new());
                } else if h.len <= 1 << 16 {
                    let mut v = vec![0u8; h.len as usize];
                    w.need(&mut v)?;
                    if tags::WANTED.contains(&h.tag) {
                        state.result.old_header.insert(h.tag, v.clone());
                    }
                    state.result.old.insert(h.tag, v);
                } else {
                    w.skip(h.len)?;
                    state.result.old.insert(h.tag, Vec::new());
                }
                state.write(&mut w.r.sink, enc, r)?;
            }
            None => {
                let held = std::mem::take(&mut w.r.held);
                w.r.sink.write_all(&held)?;
                w.r.mode = Mode::Pass;
                if h.len == UNDEFINED {
                    w.skip_undefined(&h, 0)?;
                } else if tags::WANTED.contains(&h.tag) && h.len <= 1 << 16 {
                    let mut v = vec![0u8; h.len as usize];
                    w.need(&mut v)?;
                    state.result.old_header.insert(h.tag, v.clone());
                    state.result.header.insert(h.tag, v);
                } else {
                    w.skip(h.len)?;
                }
            }
        }
        if let Some(e) = w.r.err.take() {
            return Err(e.into());
        }
    }
    let enc = Enc {
        big: w.big_endian,
        explicit: w.explicit,
    };
    if state.charset.is_none() {
        state.declare_charset(&mut w.r.sink, enc, String::new(), false)?;
    }
    state.insert_before(&mut w.r.sink, enc, (0xFFFF, 0xFFFF))?;
    if let Some(e) = w.r.err.take() {
        return Err(e.into());
    }
    w.r.sink.flush()?;
    state.result.dataset_hash = w.r.sink.hasher.digest();
    state.result.charset = state.charset.unwrap_or_default();
    Ok(state.result)
}

struct State<'a, I: Iterator<Item = &'a Replacement> + Clone> {
    pending: std::iter::Peekable<I>,
    /// The character set the output declares, once known.
    charset: Option<String>,
    result: Rewritten,
}

impl<'a, I: Iterator<Item = &'a Replacement> + Clone> State<'a, I> {
    /// Decides the output's character set from the stored one and the new text values.
    fn settle_charset(&mut self, stored: String) -> Result<String, RewriteError> {
        let needs_more = self.pending_texts().any(|(_, t)| !t.is_ascii());
        let out = if needs_more && (stored.is_empty() || stored == "ISO_IR 6") {
            "ISO_IR 192".to_owned()
        } else {
            stored
        };
        self.charset = Some(out.clone());
        Ok(out)
    }

    /// Settles the character set and writes (0008,0005): always where the file had it,
    /// otherwise only when a new value needs one.
    fn declare_charset<W: Write>(
        &mut self,
        sink: &mut W,
        enc: Enc,
        stored: String,
        always: bool,
    ) -> Result<(), RewriteError> {
        let cs = self.settle_charset(stored)?;
        if always || !cs.is_empty() {
            let bytes = pad(cs.as_bytes(), b' ');
            write_element(sink, enc, tags::SPECIFIC_CHARACTER_SET, *b"CS", &bytes)?;
            self.result
                .header
                .insert(tags::SPECIFIC_CHARACTER_SET, bytes);
        }
        Ok(())
    }

    fn pending_texts(&self) -> impl Iterator<Item = (Tag, &str)> {
        self.pending.clone().filter_map(|r| match &r.change {
            Change::Text(t) => Some((r.tag, t.as_str())),
            _ => None,
        })
    }

    /// Inserts the replacements for attributes the file lacks whose tags come before `next`.
    fn insert_before<W: Write>(&mut self, sink: &mut W, enc: Enc, next: Tag) -> io::Result<()> {
        while let Some(r) = self.pending.next_if(|r| r.tag < next) {
            self.write(sink, enc, r).map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn write<W: Write>(
        &mut self,
        sink: &mut W,
        enc: Enc,
        r: &Replacement,
    ) -> Result<(), RewriteError> {
        let bytes = match &r.change {
            Change::Remove => return Ok(()),
            Change::Raw(b) => b.clone(),
            Change::Text(t) => {
                let cs = self.charset.as_deref().unwrap_or("");
                let raw = encode_text(t, cs).ok_or_else(|| RewriteError::Charset {
                    tag: tag_name(r.tag),
                    charset: cs.to_owned(),
                })?;
                pad(&raw, if &r.vr == b"UI" { 0 } else { b' ' })
            }
        };
        if bytes.len() > 0xFFFE {
            return Err(RewriteError::TooLong(tag_name(r.tag)));
        }
        write_element(sink, enc, r.tag, r.vr, &bytes)?;
        if tags::WANTED.contains(&r.tag) {
            self.result.header.insert(r.tag, bytes);
        }
        Ok(())
    }
}

/// `value` in the repertoire `charset` names, or None when it cannot be.
pub fn encode_text(value: &str, charset: &str) -> Option<Vec<u8>> {
    if value.is_ascii() {
        return Some(value.as_bytes().to_vec());
    }
    match charset {
        "ISO_IR 192" => Some(value.as_bytes().to_vec()),
        "ISO_IR 100" => value
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect(),
        _ => None,
    }
}

fn pad(v: &[u8], with: u8) -> Vec<u8> {
    let mut out = v.to_vec();
    if out.len() % 2 == 1 {
        out.push(with);
    }
    out
}

pub(crate) fn tag_name(t: Tag) -> String {
    format!("({:04X},{:04X})", t.0, t.1)
}

#[derive(Clone, Copy)]
struct Enc {
    big: bool,
    explicit: bool,
}

fn write_element<W: Write>(
    w: &mut W,
    enc: Enc,
    tag: Tag,
    vr: [u8; 2],
    value: &[u8],
) -> io::Result<()> {
    let u16b = |v: u16| {
        if enc.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if enc.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut head = Vec::with_capacity(12);
    head.extend(u16b(tag.0));
    head.extend(u16b(tag.1));
    let len = u32::try_from(value.len()).map_err(io::Error::other)?;
    if enc.explicit && scan::has_long_length(vr) {
        // A raw sequence (Other Patient IDs on import) or binary value.
        head.extend(vr);
        head.extend([0, 0]);
        head.extend(u32b(len));
    } else if enc.explicit {
        head.extend(vr);
        head.extend(u16b(u16::try_from(len).map_err(io::Error::other)?));
    } else {
        head.extend(u32b(len));
    }
    w.write_all(&head)?;
    w.write_all(value)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Keep what is read (an element's header, until it is decided whether it stays).
    Hold,
    /// Copy what is read to the output.
    Pass,
    /// Discard what is read (a replaced value).
    Drop,
}

/// The walker's reader: every byte the walk consumes is held, copied out or dropped.
struct Tee<R, W> {
    inner: R,
    sink: W,
    mode: Mode,
    held: Vec<u8>,
    /// A write failure inside `consume`, which cannot return it.
    err: Option<io::Error>,
}

impl<R, W: Write> Tee<R, W> {
    fn take(
        mode: Mode,
        held: &mut Vec<u8>,
        sink: &mut W,
        err: &mut Option<io::Error>,
        bytes: &[u8],
    ) {
        match mode {
            Mode::Hold => held.extend_from_slice(bytes),
            Mode::Pass => {
                if err.is_none()
                    && let Err(e) = sink.write_all(bytes)
                {
                    *err = Some(e);
                }
            }
            Mode::Drop => {}
        }
    }
}

impl<R: BufRead, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        Self::take(
            self.mode,
            &mut self.held,
            &mut self.sink,
            &mut self.err,
            &buf[..n],
        );
        Ok(n)
    }
}

impl<R: BufRead, W: Write> BufRead for Tee<R, W> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The buffer `fill_buf` just returned is still there: a buffered reader hands back
        // the same bytes without reading again.
        match self.inner.fill_buf() {
            Ok(b) => {
                let n = amt.min(b.len());
                Self::take(
                    self.mode,
                    &mut self.held,
                    &mut self.sink,
                    &mut self.err,
                    &b[..n],
                );
            }
            Err(e) => self.err = Some(e),
        }
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tests::explicit_le as el;

    fn file(ds: &[u8]) -> Vec<u8> {
        let mut f = part10::encode_header(&MetaInfo {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
            sop_instance_uid: "1.2.3.4".into(),
            transfer_syntax: crate::transfer_syntax::EXPLICIT_VR_LE.into(),
            source_ae: "CT1".into(),
        })
        .unwrap();
        f.extend_from_slice(ds);
        f
    }

    fn sample() -> (Vec<u8>, Vec<u8>) {
        let mut ds = el((0x0008, 0x0018), b"UI", b"1.2.3.4\0");
        // a sequence of undefined length with one item
        ds.extend([
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend(el((0x0008, 0x1150), b"UI", b"9.9\0"));
        ds.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.extend(el(tags::PATIENT_NAME, b"PN", b"DOE^JOHN"));
        ds.extend(el(tags::PATIENT_ID, b"LO", b"OLD1"));
        let pixels: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let mut px = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
        px.extend((pixels.len() as u32).to_le_bytes());
        px.extend(&pixels);
        ds.extend(&px);
        (ds, px)
    }

    #[test]
    fn replaces_inserts_and_keeps_every_other_byte() {
        let (ds, px) = sample();
        let mut out = Vec::new();
        let r = rewrite_part10(
            &file(&ds)[..],
            &mut out,
            &[
                Replacement {
                    tag: tags::PATIENT_ID,
                    vr: *b"LO",
                    change: Change::Text("NEW12".into()),
                },
                Replacement {
                    tag: (0x0010, 0x0021),
                    vr: *b"LO",
                    change: Change::Text("HOSP".into()),
                },
            ],
        )
        .unwrap();
        assert_eq!(r.old[&tags::PATIENT_ID], b"OLD1");
        let mut rd = &out[..];
        let meta = part10::read_header(&mut rd).unwrap();
        assert_eq!(meta.sop_instance_uid, "1.2.3.4");
        assert_eq!(meta.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
        assert_eq!(r.dataset_hash, xxhash_rust::xxh3::xxh3_64(rd));
        let h = scan::scan_dataset(rd, DatasetEncoding::ExplicitLittle).unwrap();
        assert_eq!(h[&tags::PATIENT_ID], b"NEW12 ");
        assert_eq!(h[&tags::PATIENT_NAME], b"DOE^JOHN");
        assert!(rd.ends_with(&px), "pixel data copied verbatim");
        let expected_issuer = el((0x0010, 0x0021), b"LO", b"HOSP");
        let at = rd
            .windows(expected_issuer.len())
            .position(|w| w == expected_issuer)
            .unwrap();
        let sq = rd.windows(2).position(|w| w == [0x15, 0x11]).unwrap();
        assert!(at < rd.len() - px.len() && at > sq, "inserted in tag order");
    }

    #[test]
    fn a_non_ascii_value_switches_a_default_file_to_utf8_and_korean_iso2022_is_refused() {
        let (ds, _) = sample();
        let mut out = Vec::new();
        let r = rewrite_part10(
            &file(&ds)[..],
            &mut out,
            &[Replacement {
                tag: tags::PATIENT_NAME,
                vr: *b"PN",
                change: Change::Text("Müller^Jörg".into()),
            }],
        )
        .unwrap();
        assert_eq!(r.charset, "ISO_IR 192");
        let mut rd = &out[..];
        part10::read_header(&mut rd).unwrap();
        let h = scan::scan_dataset(rd, DatasetEncoding::ExplicitLittle).unwrap();
        assert_eq!(h[&tags::SPECIFIC_CHARACTER_SET], b"ISO_IR 192");
        assert_eq!(h[&tags::PATIENT_NAME], "Müller^Jörg ".as_bytes());

        let mut korean = el(tags::SPECIFIC_CHARACTER_SET, b"CS", b"\\ISO 2022 IR 149 ");
        korean.extend(ds);
        let e = rewrite_part10(
            &file(&korean)[..],
            &mut Vec::new(),
            &[Replacement {
                tag: tags::PATIENT_NAME,
                vr: *b"PN",
                change: Change::Text("홍길동".into()),
            }],
        )
        .unwrap_err();
        assert!(matches!(e, RewriteError::Charset { .. }), "{e}");
    }

    #[test]
    fn removes_and_refuses_truncated_input() {
        let (ds, _) = sample();
        let mut out = Vec::new();
        rewrite_part10(
            &file(&ds)[..],
            &mut out,
            &[Replacement {
                tag: (0x0008, 0x1115),
                vr: *b"SQ",
                change: Change::Remove,
            }],
        )
        .unwrap();
        assert!(!out.windows(4).any(|w| w == [0x08, 0x00, 0x15, 0x11]));
        assert!(out.windows(4).any(|w| w == b"OLD1"));
        let f = file(&ds);
        assert!(rewrite_part10(&f[..f.len() - 10], &mut Vec::new(), &[]).is_err());
    }
}
