//! C-FIND / C-MOVE / C-GET identifiers: from the request's encoded dataset to an archive
//! [`Query`] plus the keys to return, and from a matching record back to an encoded response
//! identifier.
//!
//! Text in a request is decoded with pacsbox-charset according to the request's own (0008,0005),
//! so a workstation may ask in ISO 2022 IR 149 or UTF-8; answers with non-ASCII text are sent as
//! ISO_IR 192 (UTF-8) and say so.

use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;
// The attributes the index answers, their tags and VRs (shared with the web's QIDO-RS).
use pacsbox_archive::query::ATTRIBUTE_TAGS as ATTRS;
use pacsbox_archive::query::{Attr, Level, Matcher, Query, Row};
use pacsbox_archive::scan::{self, RawElement, Tag};
use pacsbox_archive::transfer_syntax::DatasetEncoding;
use pacsbox_charset::{SpecificCharacterSet, TextVr};

pub use crate::sop_classes::Model;

const SPECIFIC_CHARACTER_SET: Tag = (0x0008, 0x0005);
const QUERY_RETRIEVE_LEVEL: Tag = (0x0008, 0x0052);
const RETRIEVE_AE_TITLE: Tag = (0x0008, 0x0054);
const INSTANCE_AVAILABILITY: Tag = (0x0008, 0x0056);

/// A key to put in each response: its tag, VR, and where its value comes from.
#[derive(Clone, Debug)]
struct ReturnKey {
    tag: Tag,
    vr: [u8; 2],
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    Attr(Attr),
    Level,
    RetrieveAe,
    Availability,
    /// A key we do not hold: returned empty, as PS3.4 C.2.2.1.3 allows.
    Empty,
}

#[derive(Clone, Debug)]
pub struct FindRequest {
    pub query: Query,
    returns: Vec<ReturnKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentifierError {
    #[error("identifier cannot be parsed: {0}")]
    Parse(String),
    #[error(
        "identifier lacks Query/Retrieve Level (0008,0052) or it is not PATIENT, STUDY, SERIES or IMAGE"
    )]
    Level,
    #[error("{0}")]
    Model(&'static str),
}

fn ascii(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_owned()
}

fn dictionary_vr(tag: Tag) -> [u8; 2] {
    StandardDataDictionary
        .by_tag(dicom_core::Tag(tag.0, tag.1))
        .and_then(|e| {
            let s = e.vr.relaxed().to_string();
            let b = s.as_bytes();
            (b.len() == 2).then(|| [b[0], b[1]])
        })
        .unwrap_or(*b"UN")
}

pub fn parse(bytes: &[u8], ts: &str, model: Model) -> Result<FindRequest, IdentifierError> {
    let elements = scan::scan_elements(bytes, DatasetEncoding::of(ts))
        .map_err(|e| IdentifierError::Parse(e.to_string()))?;
    let charset = elements
        .iter()
        .find(|e| e.tag == SPECIFIC_CHARACTER_SET)
        .map(|e| SpecificCharacterSet::from_value(&ascii(&e.value)))
        .unwrap_or_default();
    let level = match elements
        .iter()
        .find(|e| e.tag == QUERY_RETRIEVE_LEVEL)
        .map(|e| ascii(&e.value))
    {
        Some(l) if l == "PATIENT" => Level::Patient,
        Some(l) if l == "STUDY" => Level::Study,
        Some(l) if l == "SERIES" => Level::Series,
        Some(l) if l == "IMAGE" => Level::Image,
        _ => return Err(IdentifierError::Level),
    };
    if level == Level::Patient && model == Model::StudyRoot {
        return Err(IdentifierError::Model(
            "PATIENT level is not part of the Study Root model",
        ));
    }
    let mut filters = Vec::new();
    let mut returns = Vec::new();
    for RawElement { tag, vr, value } in &elements {
        if tag.0 == 0x0000 || tag.0 == 0x0002 || *tag == SPECIFIC_CHARACTER_SET {
            continue;
        }
        let known = ATTRS.iter().find(|(t, _, _)| t == tag);
        let source = match (known, *tag) {
            (Some((_, _, attr)), _) => Source::Attr(*attr),
            (None, QUERY_RETRIEVE_LEVEL) => Source::Level,
            (None, RETRIEVE_AE_TITLE) => Source::RetrieveAe,
            (None, INSTANCE_AVAILABILITY) => Source::Availability,
            (None, _) => Source::Empty,
        };
        let vr = known
            .map(|(_, vr, _)| **vr)
            .or(*vr)
            .unwrap_or_else(|| dictionary_vr(*tag));
        if let Source::Attr(attr) = source {
            // Keys of levels below the query level are not matched (PS3.4 C.2.2.1.2).
            if attr.level() <= level {
                let text = match &vr {
                    b"PN" => charset.decode(value, TextVr::PersonName),
                    b"LO" | b"SH" | b"LT" | b"ST" => charset.decode(value, TextVr::ShortText),
                    _ => ascii(value),
                };
                filters.push((attr, Matcher::parse(attr, &text)));
            }
        }
        returns.push(ReturnKey {
            tag: *tag,
            vr,
            source,
        });
    }
    let given = |attr: Attr| {
        filters
            .iter()
            .any(|(a, m)| *a == attr && matches!(m, Matcher::Single(_) | Matcher::List(_)))
    };
    if model == Model::PatientRoot && level > Level::Patient && !given(Attr::PatientId) {
        return Err(IdentifierError::Model(
            "Patient Root queries below PATIENT level need a Patient ID",
        ));
    }
    if level >= Level::Series && !given(Attr::StudyInstanceUid) {
        return Err(IdentifierError::Model(
            "SERIES and IMAGE level queries need a Study Instance UID",
        ));
    }
    if level == Level::Image && !given(Attr::SeriesInstanceUid) {
        return Err(IdentifierError::Model(
            "IMAGE level queries need a Series Instance UID",
        ));
    }
    Ok(FindRequest {
        query: Query { level, filters },
        returns,
    })
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Patient => "PATIENT",
        Level::Study => "STUDY",
        Level::Series => "SERIES",
        Level::Image => "IMAGE",
    }
}

impl FindRequest {
    /// Encodes the response identifier for one match in the presentation context's syntax.
    pub fn encode(&self, row: &Row, ts: &str, ae_title: &str) -> Vec<u8> {
        let mut elements: Vec<(Tag, [u8; 2], String)> = self
            .returns
            .iter()
            .map(|k| {
                let v = match &k.source {
                    Source::Attr(a) => row.value(*a).unwrap_or_default(),
                    Source::Level => level_name(self.query.level).to_owned(),
                    Source::RetrieveAe => ae_title.to_owned(),
                    Source::Availability => "ONLINE".to_owned(),
                    Source::Empty => String::new(),
                };
                (k.tag, k.vr, v)
            })
            .collect();
        if elements.iter().any(|(_, _, v)| !v.is_ascii()) {
            elements.push((SPECIFIC_CHARACTER_SET, *b"CS", "ISO_IR 192".to_owned()));
        }
        elements.sort_by_key(|(t, _, _)| *t);
        encode_elements(&elements, DatasetEncoding::of(ts))
    }
}

/// Writes short text elements (and empty sequences) in a native encoding.
pub fn encode_elements(elements: &[(Tag, [u8; 2], String)], enc: DatasetEncoding) -> Vec<u8> {
    let big = enc == DatasetEncoding::ExplicitBig;
    let explicit = enc != DatasetEncoding::ImplicitLittle;
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    for (tag, vr, text) in elements {
        let mut value = text.as_bytes().to_vec();
        if &vr[..] == b"SQ" {
            value.clear();
        }
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" { 0 } else { b' ' });
        }
        out.extend(u16b(tag.0));
        out.extend(u16b(tag.1));
        if explicit {
            out.extend(vr);
            if pacsbox_archive::deid::long_vr(*vr) {
                out.extend([0, 0]);
                out.extend(u32b(value.len() as u32));
            } else {
                out.extend(u16b(value.len().min(u16::MAX as usize) as u16));
            }
        } else {
            out.extend(u32b(value.len() as u32));
        }
        out.extend(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pair<'a> = (Tag, &'a [u8; 2], &'a [u8]);

    fn identifier(pairs: &[Pair]) -> Vec<u8> {
        let els: Vec<(Tag, [u8; 2], String)> = pairs
            .iter()
            .map(|(t, vr, v)| (*t, **vr, String::from_utf8_lossy(v).into_owned()))
            .collect();
        encode_elements(&els, DatasetEncoding::ExplicitLittle)
    }

    #[test]
    fn study_query_keys_and_matchers() {
        let bytes = identifier(&[
            ((0x0008, 0x0020), b"DA", b"20240101-"),
            ((0x0008, 0x0052), b"CS", b"STUDY"),
            ((0x0010, 0x0010), b"PN", b"kim*"),
            ((0x0020, 0x000D), b"UI", b""),
            ((0x0020, 0x0013), b"IS", b""),
        ]);
        let req = parse(&bytes, "1.2.840.10008.1.2.1", Model::StudyRoot).unwrap();
        assert_eq!(req.query.level, Level::Study);
        assert!(req.query.filters.contains(&(
            Attr::StudyDate,
            Matcher::Range("20240101".into(), String::new())
        )));
        assert!(
            req.query
                .filters
                .contains(&(Attr::PatientName, Matcher::Wildcard("kim*".into())))
        );
        // an IMAGE-level key in a STUDY query is returned but not matched
        assert!(
            !req.query
                .filters
                .iter()
                .any(|(a, _)| *a == Attr::InstanceNumber)
        );
        assert_eq!(req.returns.len(), 5);
    }

    #[test]
    fn hierarchical_unique_keys_are_required() {
        let bytes = identifier(&[
            ((0x0008, 0x0052), b"CS", b"SERIES"),
            ((0x0020, 0x000E), b"UI", b""),
        ]);
        assert!(parse(&bytes, "1.2.840.10008.1.2.1", Model::StudyRoot).is_err());
        let bytes = identifier(&[((0x0008, 0x0052), b"CS", b"PATIENT")]);
        assert!(parse(&bytes, "1.2.840.10008.1.2.1", Model::StudyRoot).is_err());
        assert!(parse(&bytes, "1.2.840.10008.1.2.1", Model::PatientRoot).is_ok());
    }

    #[test]
    fn a_korean_request_in_iso_2022_ir_149_is_decoded() {
        // 홍길동 in KS X 1001 with the G1 designation escape
        let mut name = vec![0x1b, b'$', b')', b'C'];
        name.extend([0xC8, 0xAB, 0xB1, 0xE6, 0xB5, 0xBF]);
        let mut bytes = identifier(&[
            ((0x0008, 0x0005), b"CS", b"\\ISO 2022 IR 149"),
            ((0x0008, 0x0052), b"CS", b"STUDY"),
        ]);
        bytes.extend([0x10, 0x00, 0x10, 0x00, b'P', b'N', name.len() as u8, 0]);
        bytes.extend(&name);
        let req = parse(&bytes, "1.2.840.10008.1.2.1", Model::StudyRoot).unwrap();
        assert!(
            req.query
                .filters
                .contains(&(Attr::PatientName, Matcher::Single("홍길동".into())))
        );
    }
}
