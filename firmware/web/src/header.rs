//! The DICOM header of a stored instance as rows for the page: tag, name, VR, value, with
//! sequence items nested (depth). Pixel data is not read.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::value::Value;
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use serde::Serialize;

use crate::reply::HttpError;

#[derive(Clone, Debug, Serialize)]
pub struct HeaderRow {
    pub depth: usize,
    pub tag: String,
    pub name: String,
    pub vr: String,
    pub value: String,
}

const MAX_VALUE_CHARS: usize = 160;
/// A hostile file could nest sequences deeply; the page does not need more.
const MAX_DEPTH: usize = 16;
const MAX_ROWS: usize = 20_000;

pub fn header_rows(part10: impl Read) -> Result<Vec<HeaderRow>, HttpError> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(part10)
        .map_err(|e| HttpError::Unprocessable(format!("the stored file does not parse: {e}")))?;
    let meta = obj.meta();
    let mut rows = vec![
        meta_row(
            "(0002,0002)",
            "Media Storage SOP Class UID",
            &meta.media_storage_sop_class_uid,
        ),
        meta_row("(0002,0010)", "Transfer Syntax UID", &meta.transfer_syntax),
    ];
    if let Some(ae) = &meta.source_application_entity_title {
        rows.push(meta_row(
            "(0002,0016)",
            "Source Application Entity Title",
            ae,
        ));
    }
    walk(&obj, 0, &mut rows);
    Ok(rows)
}

fn meta_row(tag: &str, name: &str, value: &str) -> HeaderRow {
    HeaderRow {
        depth: 0,
        tag: tag.to_owned(),
        name: name.to_owned(),
        vr: "UI".into(),
        value: value.trim_end_matches(['\0', ' ']).to_owned(),
    }
}

fn walk(obj: &InMemDicomObject, depth: usize, rows: &mut Vec<HeaderRow>) {
    for elem in obj.iter() {
        if rows.len() >= MAX_ROWS {
            return;
        }
        let tag = elem.header().tag;
        let name = StandardDataDictionary
            .by_tag(tag)
            .map(|e| e.alias().to_owned())
            .unwrap_or_else(|| {
                if tag.group() % 2 == 1 {
                    "(private)".into()
                } else {
                    "(unknown)".into()
                }
            });
        let value = match elem.value() {
            Value::Primitive(p) => {
                if tag == tags::PIXEL_DATA {
                    format!("({} bytes)", p.calculate_byte_len())
                } else {
                    let s = p.to_str();
                    let mut v: String = s.chars().take(MAX_VALUE_CHARS).collect();
                    if s.chars().count() > MAX_VALUE_CHARS {
                        v.push('…');
                    }
                    v
                }
            }
            Value::Sequence(seq) => format!("{} item(s)", seq.items().len()),
            Value::PixelSequence(seq) => {
                format!("encapsulated, {} fragment(s)", seq.fragments().len())
            }
        };
        rows.push(HeaderRow {
            depth,
            tag: format!("({:04X},{:04X})", tag.group(), tag.element()),
            name,
            vr: elem.vr().to_string().to_owned(),
            value,
        });
        if let Value::Sequence(seq) = elem.value()
            && depth < MAX_DEPTH
        {
            for (i, item) in seq.items().iter().enumerate() {
                rows.push(HeaderRow {
                    depth: depth + 1,
                    tag: String::new(),
                    name: format!("Item {}", i + 1),
                    vr: String::new(),
                    value: String::new(),
                });
                walk(item, depth + 2, rows);
            }
        }
    }
}
