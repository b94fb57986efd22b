//! The DICOMDIR (PS3.10 §8, PS3.3 F.3/F.5): written here byte by byte in explicit VR little
//! endian, because its record offsets (0004,1400)/(0004,1420) and the root's
//! (0004,1200)/(0004,1202) are positions in the file being written, which a generic object
//! writer does not know. Items and the Directory Record Sequence have defined lengths, so each
//! record's size is known before anything is written and every offset is computed up front.
//!
//! Reading one back (import) goes through dicom-object: it is only walked for Referenced File
//! IDs and the patient/study keys shown before import.

use std::io::Read;

use pacsbox_archive::part10::{self, MetaInfo};
use pacsbox_archive::scan::{Tag, has_long_length};

/// Media Storage Directory Storage.
pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One directory record: its type (PATIENT, STUDY, SERIES, IMAGE…), its keys in ascending
/// tag order (tag, VR, raw value unpadded or padded) and the records one level below.
#[derive(Debug, Default)]
pub struct Record {
    pub kind: &'static str,
    pub keys: Vec<(Tag, [u8; 2], Vec<u8>)>,
    pub children: Vec<Record>,
}

/// A record flattened in file order, with the indexes of its next sibling and first child.
struct Flat<'a> {
    rec: &'a Record,
    next: Option<usize>,
    child: Option<usize>,
}

fn flatten<'a>(level: &'a [Record], out: &mut Vec<Flat<'a>>) -> Option<usize> {
    let mut first = None;
    let mut prev: Option<usize> = None;
    for rec in level {
        let me = out.len();
        out.push(Flat {
            rec,
            next: None,
            child: None,
        });
        if let Some(p) = prev {
            out[p].next = Some(me);
        }
        first.get_or_insert(me);
        prev = Some(me);
        let child = flatten(&rec.children, out);
        out[me].child = child;
    }
    first
}

/// The value padded to even length as its VR wants (UI with NUL, text with a space).
fn padded(vr: [u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if &vr == b"UI" || &vr == b"OB" {
            0
        } else {
            b' '
        });
    }
    v
}

fn element_len(vr: [u8; 2], value: &[u8]) -> usize {
    let n = value.len() + value.len() % 2;
    if has_long_length(vr) { 12 + n } else { 8 + n }
}

fn put_element(out: &mut Vec<u8>, tag: Tag, vr: [u8; 2], value: &[u8]) {
    let v = padded(vr, value);
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(&vr);
    if has_long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&v);
}

/// Bytes of one item's content: the four record attributes, then the keys.
fn item_content_len(rec: &Record) -> usize {
    12 + 10
        + 12
        + element_len(*b"CS", rec.kind.as_bytes())
        + rec
            .keys
            .iter()
            .map(|(_, vr, v)| element_len(*vr, v))
            .sum::<usize>()
}

#[derive(Debug, thiserror::Error)]
pub enum DicomdirError {
    #[error("a directory record key is longer than its VR allows: ({0:04X},{1:04X})")]
    TooLong(u16, u16),
    #[error("the DICOMDIR would pass 4 GiB")]
    TooBig,
    #[error("File Meta: {0}")]
    Meta(std::io::Error),
}

/// The whole DICOMDIR file for `roots` (PATIENT records), File-set ID `fileset_id`.
pub fn write(
    roots: &[Record],
    fileset_id: &str,
    instance_uid: &str,
) -> Result<Vec<u8>, DicomdirError> {
    let mut flat = Vec::new();
    let first_root = flatten(roots, &mut flat);
    for f in &flat {
        for (tag, vr, v) in &f.rec.keys {
            if !has_long_length(*vr) && v.len() > 0xFFFE {
                return Err(DicomdirError::TooLong(tag.0, tag.1));
            }
        }
    }
    let mut out = part10::encode_header(&MetaInfo {
        sop_class_uid: DICOMDIR_SOP_CLASS.into(),
        sop_instance_uid: instance_uid.into(),
        transfer_syntax: EXPLICIT_VR_LE.into(),
        source_ae: "PACSBOX".into(),
    })
    .map_err(DicomdirError::Meta)?;
    // Where the first item starts: after the header, the File-set ID, the two root offsets,
    // the consistency flag and the sequence's own header.
    let base = out.len() + element_len(*b"CS", fileset_id.as_bytes()) + 12 + 12 + 10 + 12;
    let mut offsets = Vec::with_capacity(flat.len());
    let mut at = base;
    for f in &flat {
        offsets.push(at);
        at += 8 + item_content_len(f.rec);
    }
    let seq_len = at - base;
    let off = |i: Option<usize>| -> Result<u32, DicomdirError> {
        i.map_or(Ok(0), |i| {
            u32::try_from(offsets[i]).map_err(|_| DicomdirError::TooBig)
        })
    };
    // The last record of the root level: follow the chain of next siblings.
    let mut last_root = first_root;
    while let Some(i) = last_root.and_then(|i| flat[i].next) {
        last_root = Some(i);
    }
    put_element(&mut out, (0x0004, 0x1130), *b"CS", fileset_id.as_bytes());
    put_element(
        &mut out,
        (0x0004, 0x1200),
        *b"UL",
        &off(first_root)?.to_le_bytes(),
    );
    put_element(
        &mut out,
        (0x0004, 0x1202),
        *b"UL",
        &off(last_root)?.to_le_bytes(),
    );
    put_element(&mut out, (0x0004, 0x1212), *b"US", &0u16.to_le_bytes());
    out.extend_from_slice(&[0x04, 0x00, 0x20, 0x12]);
    out.extend_from_slice(b"SQ\0\0");
    out.extend_from_slice(
        &u32::try_from(seq_len)
            .map_err(|_| DicomdirError::TooBig)?
            .to_le_bytes(),
    );
    for (i, f) in flat.iter().enumerate() {
        debug_assert_eq!(out.len(), offsets[i]);
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        out.extend_from_slice(&(item_content_len(f.rec) as u32).to_le_bytes());
        put_element(
            &mut out,
            (0x0004, 0x1400),
            *b"UL",
            &off(f.next)?.to_le_bytes(),
        );
        // Record In-use Flag: FFFFH (in use).
        put_element(&mut out, (0x0004, 0x1410), *b"US", &0xFFFFu16.to_le_bytes());
        put_element(
            &mut out,
            (0x0004, 0x1420),
            *b"UL",
            &off(f.child)?.to_le_bytes(),
        );
        put_element(&mut out, (0x0004, 0x1430), *b"CS", f.rec.kind.as_bytes());
        for (tag, vr, v) in &f.rec.keys {
            put_element(&mut out, *tag, *vr, v);
        }
    }
    Ok(out)
}

/// What a DICOMDIR read back lists: each referenced file with the keys of its patient, study
/// and series records.
#[derive(Clone, Debug, Default)]
pub struct Listed {
    /// Referenced File ID components (`DICOM`, `P0000001`, …).
    pub file_id: Vec<String>,
    pub patient_id: String,
    pub patient_name: String,
    pub study_uid: String,
    pub study_date: String,
    pub study_description: String,
    pub sop_instance_uid: String,
}

/// Reads a DICOMDIR's records (their hierarchy through the lower-level offsets is not
/// followed: file order already puts each record after its parent, which every writer we know
/// of does, and a record's keys are only used for the list shown before import).
pub fn read(bytes: &[u8]) -> Result<Vec<Listed>, String> {
    use dicom_dictionary_std::tags;
    use dicom_object::OpenFileOptions;
    use dicom_object::file::ReadPreamble;
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes.take(u64::MAX))
        .map_err(|e| format!("not a readable DICOMDIR: {e}"))?;
    let seq = obj
        .element(tags::DIRECTORY_RECORD_SEQUENCE)
        .map_err(|e| format!("no Directory Record Sequence: {e}"))?;
    let items = seq
        .items()
        .ok_or("the Directory Record Sequence is not a sequence")?;
    let text = |item: &dicom_object::InMemDicomObject, tag| -> String {
        item.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim().to_owned()))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut cur = Listed::default();
    for item in items {
        let kind = text(item, tags::DIRECTORY_RECORD_TYPE);
        match kind.as_str() {
            "PATIENT" => {
                cur = Listed {
                    patient_id: text(item, tags::PATIENT_ID),
                    patient_name: text(item, tags::PATIENT_NAME),
                    ..Listed::default()
                };
            }
            "STUDY" => {
                cur.study_uid = text(item, tags::STUDY_INSTANCE_UID);
                cur.study_date = text(item, tags::STUDY_DATE);
                cur.study_description = text(item, tags::STUDY_DESCRIPTION);
            }
            _ => {}
        }
        let Some(file) = item.element_opt(tags::REFERENCED_FILE_ID).ok().flatten() else {
            continue;
        };
        let file_id: Vec<String> = file
            .to_multi_str()
            .map(|v| v.iter().map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        if file_id.is_empty() {
            continue;
        }
        out.push(Listed {
            file_id,
            sop_instance_uid: text(item, tags::REFERENCED_SOP_INSTANCE_UID_IN_FILE),
            ..cur.clone()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: &'static str, uid: &str, children: Vec<Record>) -> Record {
        Record {
            kind,
            keys: vec![((0x0020, 0x000E), *b"UI", uid.as_bytes().to_vec())],
            children,
        }
    }

    /// Reads the u32 of an (0004,xxxx) UL element at the start of `at`, by tag.
    fn ul_in(item: &[u8], elem: u16) -> u32 {
        let mut p = 8;
        while p + 8 <= item.len() {
            let e = u16::from_le_bytes([item[p + 2], item[p + 3]]);
            let len = usize::from(u16::from_le_bytes([item[p + 6], item[p + 7]]));
            if e == elem {
                return u32::from_le_bytes([item[p + 8], item[p + 9], item[p + 10], item[p + 11]]);
            }
            p += 8 + len;
        }
        panic!("no (0004,{elem:04X})");
    }

    #[test]
    fn offsets_point_at_the_items_they_name() {
        let roots = vec![
            rec(
                "PATIENT",
                "1",
                vec![rec("STUDY", "1.1", vec![rec("SERIES", "1.1.1", vec![])])],
            ),
            rec("PATIENT", "2", vec![]),
        ];
        let b = write(&roots, "TEST", "2.25.1").unwrap();
        let item_at = |off: u32| {
            let o = off as usize;
            assert_eq!(&b[o..o + 4], &[0xFE, 0xFF, 0x00, 0xE0], "no item at {o}");
            let len = u32::from_le_bytes([b[o + 4], b[o + 5], b[o + 6], b[o + 7]]) as usize;
            &b[o..o + 8 + len]
        };
        let uid_of = |item: &[u8]| String::from_utf8_lossy(&item[item.len() - 2..]).into_owned();
        // The root's first and last offsets, from the data set's fixed head.
        let meta_end = 132 + 12 + u32::from_le_bytes([b[140], b[141], b[142], b[143]]) as usize;
        let after_id = meta_end + 8 + 4; // "TEST"
        let first = u32::from_le_bytes(b[after_id + 8..after_id + 12].try_into().unwrap());
        let last = u32::from_le_bytes(b[after_id + 20..after_id + 24].try_into().unwrap());
        let p1 = item_at(first);
        assert_eq!(uid_of(p1), "1\0");
        let p2 = item_at(ul_in(p1, 0x1400));
        assert_eq!(ul_in(p1, 0x1400), last);
        assert_eq!(uid_of(p2), "2\0");
        assert_eq!(ul_in(p2, 0x1400), 0);
        assert_eq!(ul_in(p2, 0x1420), 0);
        let study = item_at(ul_in(p1, 0x1420));
        let series = item_at(ul_in(study, 0x1420));
        assert_eq!(ul_in(series, 0x1420), 0);
        assert!(String::from_utf8_lossy(series).contains("1.1.1"));
        // dicom-object reads it back, and `read` lists nothing (no Referenced File IDs).
        assert!(read(&b).unwrap().is_empty());
    }

    #[test]
    fn values_are_padded_to_even_lengths() {
        let mut out = Vec::new();
        put_element(&mut out, (0x0020, 0x000D), *b"UI", b"1.2.3");
        assert_eq!(&out[6..8], &6u16.to_le_bytes());
        assert_eq!(out[13], 0);
        out.clear();
        put_element(&mut out, (0x0010, 0x0010), *b"PN", b"Doe");
        assert_eq!(out[11], b' ');
    }
}
