//! DICOM XML (PS3.19 A.1, the Native DICOM Model) written from the DICOM JSON objects the
//! metadata and search answers already build, so both representations carry the same values
//! by construction: `DicomAttribute` (tag, VR, keyword from the standard dictionary) with
//! `Value number=`, `PersonName` split into its groups and components, `Item` for sequence
//! items, `BulkData URI=` and `InlineBinary`. Text is escaped for XML 1.0 (the ATNA messages'
//! escaping), which cannot carry most control characters even as references: those become
//! U+FFFD.

use dicom_core::Tag;
use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;
use serde_json::{Map, Value};
use std::io::Write;

use super::accept::Format;

pub const MEDIA_TYPE: &str = "application/dicom+xml";
const NAMESPACE: &str = "http://dicom.nema.org/PS3.19/models/NativeDICOM";
const NAME_COMPONENTS: [&str; 5] = [
    "FamilyName",
    "GivenName",
    "MiddleName",
    "NamePrefix",
    "NameSuffix",
];

/// One data set (a DICOM JSON object) as a Native DICOM Model document.
pub fn document(obj: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<NativeDicomModel xmlns=\"{NAMESPACE}\" xml:space=\"preserve\">\n"
    ));
    attributes(obj, &mut out);
    out.push_str("</NativeDicomModel>\n");
    out
}

/// A list of data sets (metadata of instances, search matches) written as the client asked:
/// a DICOM JSON array, or `multipart/related; type="application/dicom+xml"` with one Native
/// DICOM Model document per part (no matches: no parts, only the closing boundary).
pub struct ListWriter {
    format: Format,
    boundary: String,
    written: usize,
}

impl ListWriter {
    pub fn new(format: Format, boundary: String) -> ListWriter {
        ListWriter {
            format,
            boundary,
            written: 0,
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(&self) -> String {
        match self.format {
            Format::Json => "application/dicom+json".to_owned(),
            Format::Xml => format!(
                "multipart/related; type=\"{MEDIA_TYPE}\"; boundary={}",
                self.boundary
            ),
        }
    }

    pub fn begin(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            Format::Json => out.write_all(b"["),
            Format::Xml => Ok(()),
        }
    }

    pub fn item(&mut self, obj: &Map<String, Value>, out: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                if self.written > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, obj)?;
            }
            Format::Xml => {
                write!(
                    out,
                    "--{}\r\nContent-Type: {MEDIA_TYPE}\r\n\r\n",
                    self.boundary
                )?;
                out.write_all(document(obj).as_bytes())?;
                out.write_all(b"\r\n")?;
            }
        }
        self.written += 1;
        Ok(())
    }

    pub fn end(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            Format::Json => out.write_all(b"]"),
            Format::Xml => write!(out, "--{}--\r\n", self.boundary),
        }
    }
}

fn keyword(key: &str) -> Option<&'static str> {
    let n = u32::from_str_radix(key, 16)
        .ok()
        .filter(|_| key.len() == 8)?;
    // Private attributes have no standard keyword (and their group is odd).
    if (n >> 16) % 2 == 1 {
        return None;
    }
    StandardDataDictionary
        .by_tag(Tag((n >> 16) as u16, (n & 0xFFFF) as u16))
        .map(|e| e.alias)
}

fn attributes(obj: &Map<String, Value>, out: &mut String) {
    // Ascending tag order (PS3.19 A.1.1), whatever order the map keeps.
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort();
    for key in keys {
        let Some(attr) = obj.get(key).and_then(Value::as_object) else {
            continue;
        };
        let vr = attr.get("vr").and_then(Value::as_str).unwrap_or("UN");
        out.push_str("<DicomAttribute tag=\"");
        escape_into(key, out);
        out.push_str("\" vr=\"");
        escape_into(vr, out);
        out.push('"');
        if let Some(kw) = keyword(key) {
            out.push_str(" keyword=\"");
            out.push_str(kw);
            out.push('"');
        }
        out.push('>');
        if let Some(uri) = attr.get("BulkDataURI").and_then(Value::as_str) {
            out.push_str("<BulkData URI=\"");
            escape_into(uri, out);
            out.push_str("\"/>");
        } else if let Some(b64) = attr.get("InlineBinary").and_then(Value::as_str) {
            out.push_str("<InlineBinary>");
            escape_into(b64, out);
            out.push_str("</InlineBinary>");
        }
        for (i, v) in attr
            .get("Value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let n = i + 1;
            match (vr, v) {
                ("SQ", Value::Object(item)) => {
                    out.push_str(&format!("<Item number=\"{n}\">"));
                    attributes(item, out);
                    out.push_str("</Item>");
                }
                ("PN", Value::Object(groups)) => person_name(n, groups, out),
                (_, Value::Null) => out.push_str(&format!("<Value number=\"{n}\"/>")),
                (_, Value::String(s)) => {
                    out.push_str(&format!("<Value number=\"{n}\">"));
                    escape_into(s, out);
                    out.push_str("</Value>");
                }
                (_, other) => {
                    out.push_str(&format!("<Value number=\"{n}\">"));
                    escape_into(&other.to_string(), out);
                    out.push_str("</Value>");
                }
            }
        }
        out.push_str("</DicomAttribute>\n");
    }
}

fn person_name(n: usize, groups: &Map<String, Value>, out: &mut String) {
    out.push_str(&format!("<PersonName number=\"{n}\">"));
    for group in ["Alphabetic", "Ideographic", "Phonetic"] {
        let Some(text) = groups.get(group).and_then(Value::as_str) else {
            continue;
        };
        out.push_str(&format!("<{group}>"));
        for (component, name) in text.split('^').zip(NAME_COMPONENTS) {
            if component.is_empty() {
                continue;
            }
            out.push_str(&format!("<{name}>"));
            escape_into(component, out);
            out.push_str(&format!("</{name}>"));
        }
        out.push_str(&format!("</{group}>"));
    }
    out.push_str("</PersonName>");
}

/// Text or attribute value escaped for XML 1.0, as the ATNA messages are: markup characters
/// and tab, LF, CR as references (a parser would otherwise normalise a literal CR to LF), and
/// the characters XML 1.0 cannot hold at all as U+FFFD.
fn escape_into(s: &str, out: &mut String) {
    out.push_str(&pacsbox_atna::message::escape(s));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_names_items_and_bulk_data() {
        let obj = json!({
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Kim^Minsu", "Ideographic": "김^민수"}]},
            "00081030": {"vr": "LO", "Value": ["a<&>\"b\r\u{1}"]},
            "00280010": {"vr": "US", "Value": [512]},
            "00200032": {"vr": "DS", "Value": [-1.5, null]},
            "00081115": {"vr": "SQ", "Value": [{"0020000E": {"vr": "UI", "Value": ["1.2"]}}]},
            "7FE00010": {"vr": "OW", "BulkDataURI": "/x?a=1&b=2"},
            "00091001": {"vr": "LO", "Value": ["private"]},
        });
        let Value::Object(map) = obj else {
            unreachable!()
        };
        let xml = document(&map);
        assert!(xml.contains(
            "<DicomAttribute tag=\"00100010\" vr=\"PN\" keyword=\"PatientName\"><PersonName number=\"1\"><Alphabetic><FamilyName>Kim</FamilyName><GivenName>Minsu</GivenName></Alphabetic><Ideographic><FamilyName>김</FamilyName><GivenName>민수</GivenName></Ideographic></PersonName></DicomAttribute>"
        ), "{xml}");
        assert!(xml.contains("<Value number=\"1\">a&lt;&amp;&gt;&quot;b&#13;\u{FFFD}</Value>"));
        assert!(xml.contains("<Value number=\"1\">512</Value>"));
        assert!(xml.contains("<Value number=\"1\">-1.5</Value><Value number=\"2\"/>"));
        assert!(xml.contains("<Item number=\"1\"><DicomAttribute tag=\"0020000E\" vr=\"UI\" keyword=\"SeriesInstanceUID\"><Value number=\"1\">1.2</Value>"));
        assert!(xml.contains("<BulkData URI=\"/x?a=1&amp;b=2\"/>"));
        assert!(xml.contains("<DicomAttribute tag=\"00091001\" vr=\"LO\">"));
        // Tag order.
        let pos = |k: &str| xml.find(k).unwrap_or(usize::MAX);
        assert!(pos("00081030") < pos("00081115") && pos("00100010") < pos("7FE00010"));
    }
}
