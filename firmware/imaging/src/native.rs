//! An encapsulated (compressed) instance re-encoded as a native data set, for C-MOVE/C-GET
//! receivers that accept only uncompressed syntaxes. Frames go through the same decoders as
//! the viewer (`decode.rs`), so every syntax the viewer shows can be sent uncompressed too.

use std::io::Read;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::decode::{self, Attrs};
use crate::{ImagingError, Instance, chain};

const NATIVE: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// Encapsulated syntaxes whose pixel data the decoders in this build handle without the C/C++
/// codecs (JPEG baseline and extended — 12-bit extended needs them, 8-bit does not — JPEG
/// lossless, JPEG 2000, RLE), and deflate, whose data set is native once inflated.
const DECOMPRESSIBLE: [&str; 8] = [
    decode::JPEG_BASELINE,
    decode::JPEG_EXTENDED,
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    decode::RLE,
    "1.2.840.10008.1.2.1.99",
];

/// Whether [`decompress_to_native`] can turn an instance stored in `ts_uid` (an encapsulated
/// or deflated syntax) into a native one in this build: JPEG-LS only with the `native-codecs`
/// feature (CharLS). C-MOVE/C-GET ask this before offering a receiver a native syntax, so a
/// build without the codecs does not promise what it cannot deliver.
pub fn can_decompress(ts_uid: &str) -> bool {
    DECOMPRESSIBLE.contains(&ts_uid)
        || (cfg!(feature = "native-codecs")
            && (ts_uid == decode::JPEG_LS_LOSSLESS || ts_uid == decode::JPEG_LS_NEAR_LOSSLESS))
}

/// Reads a whole Part-10 file and returns its data set (no File Meta) encoded in `target_ts`,
/// which must be a native syntax (implicit or explicit VR little endian, explicit big endian).
/// Pixel data is decompressed; colour becomes interleaved RGB (Planar Configuration 0), as the
/// decoders deliver it. Lossy Image Compression and its ratio stay as they were.
pub fn decompress_to_native(r: impl Read, target_ts: &str) -> Result<Vec<u8>, ImagingError> {
    let mut inst = Instance::read(r)?;
    let to = TransferSyntaxRegistry
        .get(target_ts)
        .filter(|t| NATIVE.contains(&t.uid()))
        .ok_or_else(|| ImagingError::Unsupported {
            transfer_syntax: target_ts.to_string(),
            reason: "not a native transfer syntax to decompress to".into(),
        })?;
    let obj = &mut inst.obj;
    let encapsulated = matches!(
        obj.get(tags::PIXEL_DATA).map(|e| e.value()),
        Some(dicom_core::value::Value::PixelSequence(_))
    );
    if encapsulated {
        let a = Attrs::of(obj);
        let mut bytes: Vec<u8> = Vec::new();
        let mut bits_allocated = a.bits_allocated;
        let mut photometric = a.photometric.clone();
        for n in 0..a.frames {
            let f = decode::frame(obj, n)?;
            bits_allocated = f.bits_allocated;
            photometric = f.photometric;
            bytes.extend_from_slice(&f.data);
        }
        let value = if bits_allocated == 8 {
            // An odd total keeps its padding byte so the element length stays even.
            if !bytes.len().is_multiple_of(2) {
                bytes.push(0);
            }
            DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bytes))
        } else {
            let words: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()))
        };
        obj.put(value);
        obj.put(DataElement::new(
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(bits_allocated),
        ));
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(photometric.as_str()),
        ));
        if a.samples == 3 {
            obj.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(0u16),
            ));
        }
        // These describe the encapsulated stream only.
        obj.remove_element(tags::ENCAPSULATED_PIXEL_DATA_VALUE_TOTAL_LENGTH);
        obj.remove_element(tags::EXTENDED_OFFSET_TABLE);
        obj.remove_element(tags::EXTENDED_OFFSET_TABLE_LENGTHS);
    }
    obj.update_meta(|m| m.set_transfer_syntax(to));
    let mut out = Vec::new();
    obj.write_dataset(&mut out)
        .map_err(|e| ImagingError::Corrupt(format!("encoding as {target_ts}: {}", chain(&e))))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_ls_is_decompressible_only_with_the_native_codecs() {
        assert!(can_decompress(decode::JPEG_BASELINE));
        assert!(can_decompress("1.2.840.10008.1.2.4.90"));
        assert!(can_decompress("1.2.840.10008.1.2.1.99"));
        let with_codecs = cfg!(feature = "native-codecs");
        assert_eq!(can_decompress(decode::JPEG_LS_LOSSLESS), with_codecs);
        assert_eq!(can_decompress(decode::JPEG_LS_NEAR_LOSSLESS), with_codecs);
        // MPEG-2: no decoder at all.
        assert!(!can_decompress("1.2.840.10008.1.2.4.100"));
    }
}
