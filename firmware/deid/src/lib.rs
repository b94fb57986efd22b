//! De-identification of one Part-10 file by DICOM PS3.15 Annex E, the Basic Application Level
//! Confidentiality Profile, with the options pacsbox offers: Retain Longitudinal Temporal
//! Information with Full Dates, Retain Device Identity, Clean Descriptors. No Retain Safe
//! Private option: every private attribute is removed.
//!
//! Bytes in, bytes out, no I/O: [`anonymize`] reads the file's bytes into a tree that borrows
//! them (`dataset.rs`), applies Table E.1-1 (`table.rs`, generated from the standard by
//! `annex_e/generate.py`; `actions.rs` resolves its columns) to every element at every depth of
//! sequences, and writes the result in the file's own transfer syntax. What is kept is copied
//! byte for byte, pixel data included. UIDs are replaced through a [`UidMap`] that the caller
//! keeps for a whole study, so references between its instances still resolve.
//!
//! Choices where the standard leaves them to the implementation (docs/anonymize.md):
//! - the patient's name and ID become the pseudonym the user chose (ASCII, so the data set's
//!   Specific Character Set stays valid for what is kept);
//! - every other person name goes, listed in the table or not;
//! - C ("clean") keeps a text with the patient's name components, IDs, birth date and
//!   accession number cut out; a person name is never "cleaned", it is emptied;
//! - new UIDs are `2.25.` and 128 bits of SHA-256 over a per-run random key and the original
//!   UID: the same within a run, unlinkable across runs.

mod actions;
pub mod dataset;
mod table;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};

pub use actions::{Action, Basic, Opt, Row, action_of, row_of};
pub use dataset::long_vr;
use dataset::{Elem, Enc, Value};

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";

const SOP_CLASS_UID: u32 = 0x0008_0016;
const SOP_INSTANCE_UID: u32 = 0x0008_0018;
const MODALITY: u32 = 0x0008_0060;
const ACCESSION_NUMBER: u32 = 0x0008_0050;
const PATIENT_NAME: u32 = 0x0010_0010;
const PATIENT_ID: u32 = 0x0010_0020;
const PATIENT_BIRTH_DATE: u32 = 0x0010_0030;
const OTHER_PATIENT_IDS: u32 = 0x0010_1000;
const OTHER_PATIENT_NAMES: u32 = 0x0010_1001;
const PATIENT_IDENTITY_REMOVED: u32 = 0x0012_0062;
const DEIDENTIFICATION_METHOD: u32 = 0x0012_0063;
const DEIDENTIFICATION_METHOD_CODES: u32 = 0x0012_0064;
const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
const SERIES_INSTANCE_UID: u32 = 0x0020_000E;
const BURNED_IN_ANNOTATION: u32 = 0x0028_0301;
const LONGITUDINAL_TEMPORAL_MODIFIED: u32 = 0x0028_0303;

/// A deflated data set larger than this inflated is refused (a deflate bomb, not an image).
const MAX_INFLATED: u64 = 1 << 30;

/// Modalities whose images commonly carry burned-in text when the attribute does not say.
pub const BURN_IN_MODALITIES: &[&str] = &["US", "SC", "XA", "RF", "ES", "XC", "OT", "DOC"];

#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    #[error("not a Part-10 file (no DICM after the preamble)")]
    NotPart10,
    #[error("file ends early at byte {0}")]
    Truncated(usize),
    #[error("malformed data set at byte {0}: {1}")]
    Malformed(usize, &'static str),
    #[error("value of ({:04X},{:04X}) too long for its encoding", .0 >> 16, .0 & 0xFFFF)]
    TooLong(u32),
    #[error("deflated data set: {0}")]
    Deflate(std::io::Error),
    #[error("no SOP Class or SOP Instance UID")]
    NoSopUids,
    #[error("pseudonym {0}")]
    Pseudonym(&'static str),
    #[error("no random source for the UID key")]
    Random,
}

/// The options of the profile the user chose, and the pseudonym.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Retain Longitudinal Temporal Information with Full Dates Option.
    pub retain_dates: bool,
    /// Retain Device Identity Option.
    pub retain_device: bool,
    /// Clean Descriptors Option (descriptions kept, cleaned, instead of removed).
    pub clean_descriptors: bool,
    /// Patient's Name written instead (PN, `^`-separated components).
    pub patient_name: String,
    /// Patient ID written instead.
    pub patient_id: String,
}

impl Options {
    /// Refuses a pseudonym that is not a valid value in every character set (printable ASCII,
    /// no backslash) or too long for its VR.
    pub fn validate(&self) -> Result<(), DeidError> {
        let ok = |s: &str| s.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b'\\');
        if self.patient_name.trim().is_empty() || self.patient_id.trim().is_empty() {
            return Err(DeidError::Pseudonym("name and ID are both needed"));
        }
        if !ok(&self.patient_name) || !ok(&self.patient_id) {
            return Err(DeidError::Pseudonym(
                "must be printable ASCII without a backslash",
            ));
        }
        if self.patient_name.len() > 64 || self.patient_id.len() > 64 {
            return Err(DeidError::Pseudonym("is longer than 64 characters"));
        }
        if self.patient_name.matches('^').count() > 4 || self.patient_id.contains('^') {
            return Err(DeidError::Pseudonym(
                "name has at most five ^-separated parts; an ID has none",
            ));
        }
        Ok(())
    }

    /// The options as PS3.16 CID 7050 codes, Basic Profile first.
    fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        let mut codes = vec![("113100", "Basic Application Confidentiality Profile")];
        if self.clean_descriptors {
            codes.push(("113105", "Clean Descriptors Option"));
        }
        if self.retain_dates {
            codes.push((
                "113106",
                "Retain Longitudinal Temporal Information Full Dates Option",
            ));
        }
        if self.retain_device {
            codes.push(("113109", "Retain Device Identity Option"));
        }
        codes
    }
}

/// Original UID → new UID for one anonymization run (one study). Shared by the threads that
/// anonymize a study's instances: the new UID depends only on the key and the original.
pub struct UidMap {
    key: [u8; 32],
    seen: std::sync::Mutex<HashMap<String, String>>,
}

impl UidMap {
    /// A map with a fresh random key.
    pub fn random() -> Result<UidMap, DeidError> {
        use ring::rand::SecureRandom;
        let mut key = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| DeidError::Random)?;
        Ok(UidMap::with_key(key))
    }

    pub fn with_key(key: [u8; 32]) -> UidMap {
        UidMap {
            key,
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The new UID for `uid` (trailing padding ignored; empty stays empty).
    pub fn map(&self, uid: &str) -> String {
        let uid = uid.trim_end_matches(['\0', ' ']).trim();
        if uid.is_empty() {
            return String::new();
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.key);
        ctx.update(uid.as_bytes());
        let d = ctx.finish();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d.as_ref()[..16]);
        let new = format!("2.25.{}", u128::from_be_bytes(b));
        // Kept only to count them; a poisoned lock loses nothing that matters.
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_owned(), new.clone());
        new
    }

    /// How many distinct UIDs were replaced.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Who wrote the file: File Meta's Implementation Class UID and Version Name.
#[derive(Clone, Copy, Debug)]
pub struct Implementation<'a> {
    pub class_uid: &'a str,
    pub version_name: &'a str,
}

/// Whether pixel data may still show who the patient is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BurnedIn {
    No,
    /// Burned In Annotation is YES.
    Yes,
    /// Not said, and the modality often burns text in (`BURN_IN_MODALITIES`).
    Possible,
}

/// One anonymized instance.
pub struct Anonymized {
    /// The whole Part-10 file.
    pub part10: Vec<u8>,
    /// Where the data set starts in `part10` (after File Meta).
    pub dataset_offset: usize,
    pub transfer_syntax: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub burned_in: BurnedIn,
}

/// Anonymizes one Part-10 file.
pub fn anonymize(
    input: &[u8],
    opts: &Options,
    uids: &UidMap,
    imp: Implementation<'_>,
) -> Result<Anonymized, DeidError> {
    opts.validate()?;
    if input.len() < 132 || &input[128..132] != b"DICM" {
        return Err(DeidError::NotPart10);
    }
    let (meta, ds_start) = read_meta(input)?;
    let ts = text(meta.get(&0x0002_0010).copied().unwrap_or(b""));
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DeidError::Malformed(
            132,
            "File Meta has no valid Transfer Syntax UID",
        ));
    }
    let inflated;
    let (ds, enc) = match ts.as_str() {
        IMPLICIT_VR_LE => (&input[ds_start..], Enc::IMPLICIT_LE),
        EXPLICIT_VR_BE => (
            &input[ds_start..],
            Enc {
                explicit: true,
                big: true,
            },
        ),
        DEFLATED_EXPLICIT_VR_LE => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(&input[ds_start..])
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(DeidError::Deflate)?;
            if out.len() as u64 > MAX_INFLATED {
                return Err(DeidError::Malformed(
                    ds_start,
                    "deflated data set over 1 GiB",
                ));
            }
            inflated = out;
            (&inflated[..], Enc::EXPLICIT_LE)
        }
        _ => (&input[ds_start..], Enc::EXPLICIT_LE),
    };
    let elems = dataset::read(ds, enc)?;

    let top = |tag: u32| {
        elems
            .iter()
            .find(|e| e.tag == tag)
            .and_then(Elem::bytes)
            .map(text)
            .unwrap_or_default()
    };
    let modality = top(MODALITY);
    let burned_in = match top(BURNED_IN_ANNOTATION).to_ascii_uppercase().as_str() {
        "YES" => BurnedIn::Yes,
        "NO" => BurnedIn::No,
        _ if BURN_IN_MODALITIES.contains(&modality.as_str()) => BurnedIn::Possible,
        _ => BurnedIn::No,
    };
    let cleaner = Cleaner::of(&elems);
    let mut ctx = Ctx {
        opts,
        uids,
        cleaner,
    };
    let mut out = ctx.transform(elems, 0);
    add_markers(&mut out, opts, enc);

    let found = |tag: u32| {
        out.iter()
            .find(|e| e.tag == tag)
            .and_then(Elem::bytes)
            .map(text)
            .unwrap_or_default()
    };
    let sop_instance_uid = found(SOP_INSTANCE_UID);
    let mut sop_class_uid = found(SOP_CLASS_UID);
    if sop_class_uid.is_empty() {
        sop_class_uid = text(meta.get(&0x0002_0002).copied().unwrap_or(b""));
    }
    if sop_instance_uid.is_empty() || sop_class_uid.is_empty() {
        return Err(DeidError::NoSopUids);
    }
    let study_uid = found(STUDY_INSTANCE_UID);
    let series_uid = found(SERIES_INSTANCE_UID);

    let mut body = Vec::with_capacity(ds.len());
    dataset::write(&mut body, &out, enc)?;
    if ts == DEFLATED_EXPLICIT_VR_LE {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&body).map_err(DeidError::Deflate)?;
        body = z.finish().map_err(DeidError::Deflate)?;
    }
    let mut part10 = Vec::with_capacity(body.len() + 512);
    part10.extend_from_slice(&[0u8; 128]);
    part10.extend_from_slice(b"DICM");
    write_meta(&mut part10, &sop_class_uid, &sop_instance_uid, &ts, imp)?;
    let dataset_offset = part10.len();
    part10.extend_from_slice(&body);
    Ok(Anonymized {
        part10,
        dataset_offset,
        transfer_syntax: ts,
        sop_class_uid,
        sop_instance_uid,
        study_uid,
        series_uid,
        burned_in,
    })
}

/// File Meta's values by tag, and where the data set starts.
fn read_meta(input: &[u8]) -> Result<(HashMap<u32, &[u8]>, usize), DeidError> {
    let mut pos = 132;
    let mut meta = HashMap::new();
    while pos + 8 <= input.len() && input[pos..pos + 2] == [2, 0] {
        let tag = (0x0002 << 16) | u32::from(u16::from_le_bytes([input[pos + 2], input[pos + 3]]));
        let vr = [input[pos + 4], input[pos + 5]];
        let (len, head) = if matches!(&vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR") {
            let b = input
                .get(pos + 8..pos + 12)
                .ok_or(DeidError::Truncated(pos))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        } else {
            (
                usize::from(u16::from_le_bytes([input[pos + 6], input[pos + 7]])),
                8,
            )
        };
        let start = pos + head;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= input.len())
            .ok_or(DeidError::Truncated(pos))?;
        meta.insert(tag, &input[start..end]);
        pos = end;
    }
    Ok((meta, pos))
}

fn write_meta(
    out: &mut Vec<u8>,
    class: &str,
    instance: &str,
    ts: &str,
    imp: Implementation<'_>,
) -> Result<(), DeidError> {
    let elems = vec![
        bytes_elem(0x0002_0001, *b"OB", vec![0, 1]),
        text_elem(0x0002_0002, *b"UI", class),
        text_elem(0x0002_0003, *b"UI", instance),
        text_elem(0x0002_0010, *b"UI", ts),
        text_elem(0x0002_0012, *b"UI", imp.class_uid),
        text_elem(0x0002_0013, *b"SH", imp.version_name),
    ];
    let mut group = Vec::new();
    dataset::write(&mut group, &elems, Enc::EXPLICIT_LE)?;
    let len = u32::try_from(group.len()).map_err(|_| DeidError::TooLong(0x0002_0000))?;
    let head = [bytes_elem(0x0002_0000, *b"UL", len.to_le_bytes().to_vec())];
    dataset::write(out, &head, Enc::EXPLICIT_LE)?;
    out.extend_from_slice(&group);
    Ok(())
}

/// A value as text: trailing padding and surrounding spaces gone.
fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_matches(|c: char| c == '\0' || c == ' ')
        .to_owned()
}

fn bytes_elem(tag: u32, vr: [u8; 2], v: Vec<u8>) -> Elem<'static> {
    Elem {
        tag,
        vr,
        value: Value::Bytes(Cow::Owned(v)),
    }
}

/// A text value padded to even length (UIDs with NUL, others with a space).
fn text_elem(tag: u32, vr: [u8; 2], s: &str) -> Elem<'static> {
    bytes_elem(tag, vr, padded(s.as_bytes().to_vec(), vr))
}

fn padded(mut v: Vec<u8>, vr: [u8; 2]) -> Vec<u8> {
    if v.len() % 2 == 1 {
        v.push(if vr == *b"UI" || vr == *b"OB" {
            0
        } else {
            b' '
        });
    }
    v
}

fn is_text_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"ST"
            | b"TM"
            | b"UC"
            | b"UR"
            | b"UT"
    )
}

/// A dummy value for `vr` (PS3.15 E.3 "D": non-zero length, consistent with the VR).
fn dummy(vr: [u8; 2]) -> Vec<u8> {
    let v: &[u8] = match &vr {
        b"AE" => b"ANONYMOUS ",
        b"AS" => b"000Y",
        b"CS" => b"ANONYMIZED",
        b"DA" => b"19000101",
        b"DT" => b"19000101000000",
        b"TM" => b"000000",
        b"DS" | b"IS" => b"0 ",
        b"PN" => b"ANONYMOUS ",
        b"UR" => b"urn:anonymized",
        b"LO" | b"LT" | b"SH" | b"ST" | b"UC" | b"UT" => b"ANONYMIZED",
        b"US" | b"SS" => &[0; 2],
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => &[0; 4],
        b"FD" | b"OD" | b"OV" | b"SV" | b"UV" => &[0; 8],
        _ => &[0; 2],
    };
    v.to_vec()
}

/// The patient's identifying strings, cut out of the texts the profile "cleans".
struct Cleaner {
    tokens: Vec<Vec<u8>>,
}

impl Cleaner {
    fn of(elems: &[Elem<'_>]) -> Cleaner {
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        for e in elems {
            let Some(v) = e.bytes() else { continue };
            let v = strip_escapes(v);
            match e.tag {
                PATIENT_NAME | OTHER_PATIENT_NAMES => {
                    tokens.extend(v.split(|b| b"^=\\ \0".contains(b)).map(<[u8]>::to_vec));
                }
                PATIENT_ID | OTHER_PATIENT_IDS | PATIENT_BIRTH_DATE | ACCESSION_NUMBER => {
                    tokens.extend(v.split(|b| b"\\ \0".contains(b)).map(<[u8]>::to_vec));
                }
                _ => {}
            }
        }
        // A one-letter initial would cut every such letter out of every description.
        tokens.retain(|t| t.len() >= 2);
        tokens.sort_by_key(|t| std::cmp::Reverse(t.len()));
        tokens.dedup();
        Cleaner { tokens }
    }

    /// One pass over `v`: where a token starts (longest first), it is skipped.
    fn clean(&self, v: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(v.len());
        let mut i = 0;
        while i < v.len() {
            let hit = self.tokens.iter().find(|t| {
                v.get(i..i + t.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(t))
            });
            match hit {
                Some(t) => i += t.len(),
                None => {
                    out.push(v[i]);
                    i += 1;
                }
            }
        }
        out
    }
}

/// `v` without ISO 2022 escape sequences (ESC, intermediates, final byte), so that a name's
/// Hangul bytes are found whichever designations surround them.
fn strip_escapes(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == 0x1B {
            i += 1;
            while i < v.len() && (0x20..0x30).contains(&v[i]) {
                i += 1;
            }
            i += 1;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

struct Ctx<'o> {
    opts: &'o Options,
    uids: &'o UidMap,
    cleaner: Cleaner,
}

impl Ctx<'_> {
    fn transform<'a>(&mut self, elems: Vec<Elem<'a>>, depth: usize) -> Vec<Elem<'a>> {
        let mut out = Vec::with_capacity(elems.len());
        for e in elems {
            match e.tag {
                PATIENT_NAME => {
                    out.push(text_elem(e.tag, e.vr, &self.opts.patient_name));
                    continue;
                }
                PATIENT_ID => {
                    out.push(text_elem(e.tag, e.vr, &self.opts.patient_id));
                    continue;
                }
                // Set afresh at the top level (`add_markers`).
                PATIENT_IDENTITY_REMOVED
                | DEIDENTIFICATION_METHOD
                | DEIDENTIFICATION_METHOD_CODES
                | LONGITUDINAL_TEMPORAL_MODIFIED
                    if depth == 0 =>
                {
                    continue;
                }
                _ => {}
            }
            let mut action = action_of(e.tag, e.vr, self.opts);
            if e.vr == *b"PN" && matches!(action, Action::Keep | Action::Clean) {
                action = Action::Empty;
            }
            let Elem { tag, vr, value } = e;
            let value = match (action, value) {
                (Action::Remove, _) => continue,
                (Action::Empty, Value::Seq { enc, .. }) => Value::Seq {
                    items: Vec::new(),
                    enc,
                },
                (Action::Empty, _) => Value::Bytes(Cow::Borrowed(&[])),
                (Action::Dummy, Value::Seq { enc, .. }) => Value::Seq {
                    items: vec![Vec::new()],
                    enc,
                },
                (Action::Keep | Action::Clean | Action::Uid, Value::Seq { items, enc }) => {
                    Value::Seq {
                        items: items
                            .into_iter()
                            .map(|item| self.transform(item, depth + 1))
                            .collect(),
                        enc,
                    }
                }
                (Action::Uid | Action::Dummy, Value::Bytes(b)) if vr == *b"UI" => {
                    Value::Bytes(Cow::Owned(self.map_uids(&b)))
                }
                (Action::Dummy | Action::Uid, _) => Value::Bytes(Cow::Owned(dummy(vr))),
                (Action::Clean, Value::Bytes(b)) if is_text_vr(vr) => {
                    Value::Bytes(Cow::Owned(padded(self.cleaner.clean(&b), vr)))
                }
                (Action::Keep | Action::Clean, v) => v,
            };
            out.push(Elem { tag, vr, value });
        }
        out
    }

    fn map_uids(&mut self, v: &[u8]) -> Vec<u8> {
        let s = String::from_utf8_lossy(v);
        let mapped: Vec<String> = s.split('\\').map(|u| self.uids.map(u)).collect();
        padded(mapped.join("\\").into_bytes(), *b"UI")
    }
}

/// Patient Identity Removed, the method (text and CID 7050 codes), and whether dates were
/// kept, set at the top level in tag order.
fn add_markers(out: &mut Vec<Elem<'_>>, opts: &Options, enc: Enc) {
    let code_items = opts
        .method_codes()
        .into_iter()
        .map(|(code, meaning)| {
            vec![
                text_elem(0x0008_0100, *b"SH", code),
                text_elem(0x0008_0102, *b"SH", "DCM"),
                text_elem(0x0008_0104, *b"LO", meaning),
            ]
        })
        .collect();
    let add = [
        text_elem(PATIENT_IDENTITY_REMOVED, *b"CS", "YES"),
        text_elem(
            DEIDENTIFICATION_METHOD,
            *b"LO",
            "DICOM PS3.15 Annex E Basic Profile (pacsbox)",
        ),
        Elem {
            tag: DEIDENTIFICATION_METHOD_CODES,
            vr: *b"SQ",
            value: Value::Seq {
                items: code_items,
                enc,
            },
        },
        text_elem(
            LONGITUDINAL_TEMPORAL_MODIFIED,
            *b"CS",
            if opts.retain_dates {
                "UNMODIFIED"
            } else {
                "REMOVED"
            },
        ),
    ];
    for e in [
        text_elem(PATIENT_NAME, *b"PN", &opts.patient_name),
        text_elem(PATIENT_ID, *b"LO", &opts.patient_id),
    ] {
        if !out.iter().any(|o| o.tag == e.tag) {
            out.push(e);
        }
    }
    out.extend(add);
    out.sort_by_key(|e| e.tag);
}

#[cfg(test)]
mod tests;
