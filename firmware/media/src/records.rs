//! The directory record of an instance that is not an image (PS3.3 F.5): a structured report
//! (the physician's report among them) is an SR DOCUMENT record, a key object selection a KEY
//! OBJECT DOC, an encapsulated PDF or CDA an ENCAP DOC, a presentation state a PRESENTATION;
//! every other instance an IMAGE. These records have keys of their own (content date and time,
//! completion and verification flags, the document's concept name, its MIME type…), read here
//! with dicom-object: such instances are a handful per study, unlike the images whose keys the
//! export's scan already has.

use dicom_dictionary_std::tags as t;
use dicom_object::InMemDicomObject;
use pacsbox_archive::scan::Tag;

/// A key: tag, VR, value (unpadded).
pub type Key = (Tag, [u8; 2], Vec<u8>);

/// The record type of a SOP class.
pub fn kind_of(sop_class: &str) -> &'static str {
    match sop_class {
        // Key Object Selection Document.
        "1.2.840.10008.5.1.4.1.1.88.59" => "KEY OBJECT DOC",
        c if c.starts_with("1.2.840.10008.5.1.4.1.1.88.") => "SR DOCUMENT",
        // Encapsulated PDF, CDA, STL, OBJ, MTL.
        c if c.starts_with("1.2.840.10008.5.1.4.1.1.104.") => "ENCAP DOC",
        // Grayscale, color, pseudo-color, blending, XA/XRF, … softcopy presentation states.
        c if c.starts_with("1.2.840.10008.5.1.4.1.1.11.") => "PRESENTATION",
        _ => "IMAGE",
    }
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<u8> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim_end().to_owned()))
        .unwrap_or_default()
        .into_bytes()
}

fn pad(mut v: Vec<u8>, with: u8) -> Vec<u8> {
    if v.len() % 2 == 1 {
        v.push(with);
    }
    v
}

/// One short explicit VR LE element (2-byte length VRs only).
fn element(out: &mut Vec<u8>, tag: Tag, vr: &[u8; 2], value: &[u8]) {
    let v = pad(value.to_vec(), b' ');
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    out.extend_from_slice(&v);
}

/// Concept Name Code Sequence's first item as the value of an SQ key (one item of defined
/// length, explicit VR LE like the DICOMDIR): code value, scheme, meaning. Empty when the
/// instance has none.
fn concept_name(obj: &InMemDicomObject) -> Vec<u8> {
    let Some(item) = obj
        .element_opt(t::CONCEPT_NAME_CODE_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items().and_then(|i| i.first().cloned()))
    else {
        return Vec::new();
    };
    let mut body = Vec::new();
    element(
        &mut body,
        (0x0008, 0x0100),
        b"SH",
        &text(&item, t::CODE_VALUE),
    );
    element(
        &mut body,
        (0x0008, 0x0102),
        b"SH",
        &text(&item, t::CODING_SCHEME_DESIGNATOR),
    );
    element(
        &mut body,
        (0x0008, 0x0104),
        b"LO",
        &text(&item, t::CODE_MEANING),
    );
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&0xFFFEu16.to_le_bytes());
    out.extend_from_slice(&0xE000u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The keys of a non-image record (besides the referenced file's and the character set,
/// which every record has), from the Part-10 file `file`; `None` for IMAGE.
pub fn keys(kind: &str, file: &[u8]) -> Result<Option<Vec<Key>>, String> {
    if kind == "IMAGE" {
        return Ok(None);
    }
    use dicom_object::OpenFileOptions;
    use dicom_object::file::ReadPreamble;
    use std::io::Read;
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(file.take(u64::MAX))
        .map_err(|e| format!("reading its {kind} keys: {e}"))?;
    let obj = obj.into_inner();
    let content = [
        ((0x0008, 0x0023), *b"DA", text(&obj, t::CONTENT_DATE)),
        ((0x0008, 0x0033), *b"TM", text(&obj, t::CONTENT_TIME)),
    ];
    let instance = ((0x0020, 0x0013), *b"IS", text(&obj, t::INSTANCE_NUMBER));
    let concept = ((0x0040, 0xA043), *b"SQ", concept_name(&obj));
    let mut k: Vec<Key> = match kind {
        "SR DOCUMENT" => {
            let mut k = content.to_vec();
            k.push(instance);
            let verified = text(&obj, t::VERIFICATION_FLAG);
            // Verification DateTime: required when the document is verified.
            if verified == b"VERIFIED" {
                let when = obj
                    .element_opt(t::VERIFYING_OBSERVER_SEQUENCE)
                    .ok()
                    .flatten()
                    .and_then(|e| e.items().and_then(|i| i.first().cloned()))
                    .map(|i| text(&i, t::VERIFICATION_DATE_TIME))
                    .unwrap_or_default();
                k.push(((0x0040, 0xA030), *b"DT", when));
            }
            k.push(concept);
            k.push(((0x0040, 0xA491), *b"CS", text(&obj, t::COMPLETION_FLAG)));
            k.push(((0x0040, 0xA493), *b"CS", verified));
            k
        }
        "KEY OBJECT DOC" => {
            let mut k = content.to_vec();
            k.extend([instance, concept]);
            k
        }
        "ENCAP DOC" => {
            let mut k = content.to_vec();
            k.extend([
                instance,
                concept,
                ((0x0042, 0x0010), *b"ST", text(&obj, t::DOCUMENT_TITLE)),
                (
                    (0x0042, 0x0012),
                    *b"LO",
                    text(&obj, t::MIME_TYPE_OF_ENCAPSULATED_DOCUMENT),
                ),
            ]);
            k
        }
        _ => vec![
            instance,
            ((0x0070, 0x0080), *b"CS", text(&obj, t::CONTENT_LABEL)),
            ((0x0070, 0x0081), *b"LO", text(&obj, t::CONTENT_DESCRIPTION)),
            (
                (0x0070, 0x0082),
                *b"DA",
                text(&obj, t::PRESENTATION_CREATION_DATE),
            ),
            (
                (0x0070, 0x0083),
                *b"TM",
                text(&obj, t::PRESENTATION_CREATION_TIME),
            ),
            (
                (0x0070, 0x0084),
                *b"PN",
                text(&obj, t::CONTENT_CREATOR_NAME),
            ),
        ],
    };
    k.sort_by_key(|(tag, _, _)| *tag);
    Ok(Some(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_follow_the_sop_class() {
        assert_eq!(kind_of("1.2.840.10008.5.1.4.1.1.88.11"), "SR DOCUMENT");
        assert_eq!(kind_of("1.2.840.10008.5.1.4.1.1.88.59"), "KEY OBJECT DOC");
        assert_eq!(kind_of("1.2.840.10008.5.1.4.1.1.104.1"), "ENCAP DOC");
        assert_eq!(kind_of("1.2.840.10008.5.1.4.1.1.11.1"), "PRESENTATION");
        assert_eq!(kind_of("1.2.840.10008.5.1.4.1.1.2"), "IMAGE");
    }
}
