//! One frame from Pixel Data to interleaved little-endian samples: native data is cropped here
//! (dicom-pixeldata assumes three full samples per pixel, which YBR_FULL_422 native data does
//! not have), encapsulated data goes to dicom-pixeldata, or to libjpeg-turbo for 12-bit JPEG.
//! Colour leaves here as RGB or PALETTE COLOR, never YBR, so the renderers have two cases.

use std::borrow::Cow;

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::{ImagingError, chain};

pub(crate) const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
pub(crate) const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
pub(crate) const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
pub(crate) const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";
pub(crate) const RLE: &str = "1.2.840.10008.1.2.5";

/// Image attributes, with the defaults a lenient reader assumes when one is missing.
#[derive(Clone, Debug)]
pub(crate) struct Attrs {
    pub rows: u32,
    pub cols: u32,
    pub frames: u32,
    pub samples: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    pub planar: u16,
    pub slope: f64,
    pub intercept: f64,
}

impl Attrs {
    pub fn of(obj: &DefaultDicomObject) -> Attrs {
        let int = |tag| {
            obj.get(tag)
                .and_then(|e| e.to_int::<i64>().ok())
                .filter(|v| *v >= 0)
        };
        let float = |tag| obj.get(tag).and_then(|e| e.to_float64().ok());
        let bits_allocated = int(tags::BITS_ALLOCATED).unwrap_or(8) as u16;
        Attrs {
            rows: int(tags::ROWS).unwrap_or(0) as u32,
            cols: int(tags::COLUMNS).unwrap_or(0) as u32,
            frames: int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32,
            samples: int(tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
            bits_allocated,
            bits_stored: int(tags::BITS_STORED)
                .map(|b| b as u16)
                .filter(|b| *b > 0 && *b <= bits_allocated)
                .unwrap_or(bits_allocated),
            signed: int(tags::PIXEL_REPRESENTATION) == Some(1),
            photometric: obj
                .get(tags::PHOTOMETRIC_INTERPRETATION)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim().to_ascii_uppercase())
                .unwrap_or_else(|| "MONOCHROME2".into()),
            planar: int(tags::PLANAR_CONFIGURATION).unwrap_or(0) as u16,
            slope: float(tags::RESCALE_SLOPE)
                .filter(|s| *s != 0.0 && s.is_finite())
                .unwrap_or(1.0),
            intercept: float(tags::RESCALE_INTERCEPT)
                .filter(|s| s.is_finite())
                .unwrap_or(0.0),
        }
    }
}

/// One decoded frame: `rows × cols × samples` interleaved samples of `bits_allocated` (8, 16 or
/// 32) bits, little endian. `photometric` is MONOCHROME1/2, RGB or PALETTE COLOR.
pub(crate) struct Frame {
    pub rows: u32,
    pub cols: u32,
    pub samples: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame our own decoders (32-bit RLE, 12-bit JPEG) produced: colour comes out as RGB.
    pub fn decoded(a: &Attrs, bits_allocated: u16, data: Vec<u8>) -> Frame {
        Frame {
            rows: a.rows,
            cols: a.cols,
            samples: a.samples,
            bits_allocated,
            bits_stored: a.bits_stored,
            signed: a.signed,
            photometric: if a.samples == 3 {
                "RGB".into()
            } else {
                a.photometric.clone()
            },
            data,
        }
    }

    pub fn pixel_count(&self) -> usize {
        self.rows as usize * self.cols as usize
    }
}

pub(crate) fn unsupported(obj: &DefaultDicomObject, reason: impl Into<String>) -> ImagingError {
    ImagingError::Unsupported {
        transfer_syntax: obj.meta().transfer_syntax().to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn frame(obj: &DefaultDicomObject, n: u32) -> Result<Frame, ImagingError> {
    let a = Attrs::of(obj);
    let pd = obj.get(tags::PIXEL_DATA).ok_or(ImagingError::NoPixelData)?;
    if a.rows == 0 || a.cols == 0 {
        return Err(ImagingError::Corrupt(
            "Rows or Columns missing or zero".into(),
        ));
    }
    if n >= a.frames {
        return Err(ImagingError::NoSuchFrame {
            frame: n,
            frames: a.frames,
        });
    }
    if a.samples != 1 && a.samples != 3 {
        return Err(ImagingError::Corrupt(format!(
            "Samples per Pixel {} (must be 1 or 3)",
            a.samples
        )));
    }
    match pd.value() {
        Value::Primitive(p) => native_frame(obj, &a, &p.to_bytes(), n),
        Value::PixelSequence(seq) => encapsulated_frame(obj, &a, seq, n),
        Value::Sequence(_) => Err(ImagingError::Corrupt(
            "Pixel Data is a sequence of items".into(),
        )),
    }
}

fn native_frame(
    obj: &DefaultDicomObject,
    a: &Attrs,
    bytes: &[u8],
    n: u32,
) -> Result<Frame, ImagingError> {
    let pixels = a.rows as usize * a.cols as usize;
    let samples = a.samples as usize;
    let mut f = Frame {
        rows: a.rows,
        cols: a.cols,
        samples: a.samples,
        bits_allocated: a.bits_allocated,
        bits_stored: a.bits_stored,
        signed: a.signed,
        photometric: a.photometric.clone(),
        data: Vec::new(),
    };
    let short = |need: usize| {
        ImagingError::Corrupt(format!(
            "Pixel Data has {} bytes, frame {n} needs {need}",
            bytes.len()
        ))
    };
    match a.bits_allocated {
        1 => {
            // Frames follow each other bit by bit, not byte-aligned.
            let count = pixels * samples;
            let first = n as usize * count;
            if (first + count).div_ceil(8) > bytes.len() {
                return Err(short((first + count).div_ceil(8)));
            }
            f.data = (first..first + count)
                .map(|i| (bytes[i / 8] >> (i % 8)) & 1)
                .collect();
            f.bits_allocated = 8;
            f.bits_stored = 1;
        }
        8 | 16 | 32 => {
            let bps = a.bits_allocated as usize / 8;
            let sub422 = a.photometric == "YBR_FULL_422" && a.samples == 3;
            // YBR_FULL_422 native data carries two luma samples per shared chroma pair.
            let per_frame = if sub422 {
                pixels * 2 * bps
            } else {
                pixels * samples * bps
            };
            let start = n as usize * per_frame;
            let raw = bytes
                .get(start..start + per_frame)
                .ok_or_else(|| short(start + per_frame))?;
            f.data = if sub422 {
                if bps != 1 || !a.cols.is_multiple_of(2) {
                    return Err(unsupported(obj, "YBR_FULL_422 with 16-bit or odd width"));
                }
                expand_422(raw)
            } else if samples == 3 && a.planar == 1 {
                interleave(raw, pixels, bps)
            } else {
                raw.to_vec()
            };
        }
        other => {
            return Err(unsupported(
                obj,
                format!("Bits Allocated {other} (only 1, 8, 16 and 32 are decoded)"),
            ));
        }
    }
    if a.samples == 3 && a.photometric.starts_with("YBR") {
        if f.bits_allocated != 8 {
            return Err(unsupported(
                obj,
                format!("{} with 16-bit samples", a.photometric),
            ));
        }
        ybr_to_rgb(&mut f.data);
        f.photometric = "RGB".into();
    }
    Ok(f)
}

fn encapsulated_frame(
    obj: &DefaultDicomObject,
    a: &Attrs,
    seq: &PixelFragmentSequence<Vec<u8>>,
    n: u32,
) -> Result<Frame, ImagingError> {
    let uid = obj.meta().transfer_syntax();
    let Some(ts) = TransferSyntaxRegistry.get(uid) else {
        return Err(unsupported(obj, "unknown transfer syntax"));
    };
    if uid == JPEG_EXTENDED || uid == JPEG_BASELINE {
        let bytes = frame_bytes(seq, a.frames, n)?;
        if jpeg_precision(&bytes).is_some_and(|p| p > 8) {
            #[cfg(feature = "native-codecs")]
            return crate::jpeg12::decode(&bytes, a);
            #[cfg(not(feature = "native-codecs"))]
            return Err(unsupported(
                obj,
                "12-bit JPEG needs libjpeg-turbo (this build has no native-codecs)",
            ));
        }
        if a.samples == 3 && a.photometric == "RGB" && !jpeg_names_colour_space(&bytes) {
            return rgb_jpeg(&bytes, a);
        }
    }
    if uid == RLE && a.bits_allocated == 32 {
        // dicom-pixeldata's RLE decoder stops at 16 bits; RT dose grids are 32.
        let bytes = frame_bytes(seq, a.frames, n)?;
        let data = rle_frame(
            &bytes,
            a.rows as usize * a.cols as usize,
            a.samples as usize,
            4,
        )?;
        return Ok(Frame::decoded(a, 32, data));
    }
    if !ts.can_decode_all() {
        let reason = if uid == JPEG_LS_LOSSLESS || uid == JPEG_LS_NEAR_LOSSLESS {
            "JPEG-LS needs CharLS (this build has no native-codecs)"
        } else {
            "no decoder for this transfer syntax in this build"
        };
        return Err(unsupported(obj, reason));
    }
    let d = obj
        .decode_pixel_data_frame(n)
        .map_err(|e| ImagingError::Corrupt(format!("decoding frame {n}: {}", chain(&e))))?;
    let want = a.rows as usize
        * a.cols as usize
        * a.samples as usize
        * (d.bits_allocated() as usize).div_ceil(8);
    let data: Cow<[u8]> = Cow::Borrowed(d.data());
    if data.len() < want {
        return Err(ImagingError::Corrupt(format!(
            "frame {n} decoded to {} bytes, expected {want}",
            data.len()
        )));
    }
    let mut data = data[..want].to_vec();
    let mut photometric = if a.samples == 3 {
        "RGB".to_string()
    } else {
        a.photometric.clone()
    };
    // RLE keeps YBR samples as they were encoded while dicom-pixeldata relabels them RGB.
    if uid == RLE && a.samples == 3 && a.photometric == "YBR_FULL" {
        if d.bits_allocated() != 8 {
            return Err(unsupported(obj, "RLE YBR_FULL with 16-bit samples"));
        }
        ybr_to_rgb(&mut data);
        photometric = "RGB".into();
    }
    Ok(Frame {
        rows: a.rows,
        cols: a.cols,
        samples: a.samples,
        bits_allocated: d.bits_allocated(),
        bits_stored: a.bits_stored,
        signed: a.signed,
        photometric,
        data,
    })
}

/// The compressed bytes of frame `n`: one fragment per frame, all fragments of a single
/// frame, or the ranges the Basic Offset Table gives.
pub(crate) fn frame_bytes(
    seq: &PixelFragmentSequence<Vec<u8>>,
    frames: u32,
    n: u32,
) -> Result<Vec<u8>, ImagingError> {
    let frags = seq.fragments();
    if frags.is_empty() {
        return Err(ImagingError::Corrupt("Pixel Data has no fragments".into()));
    }
    if frames == 1 {
        return Ok(frags.concat());
    }
    if frags.len() == frames as usize {
        return Ok(frags[n as usize].clone());
    }
    let table = seq.offset_table();
    if table.len() == frames as usize {
        // Offsets count from the first fragment's item tag; each item adds an 8-byte header.
        let start = table[n as usize] as usize;
        let end = table.get(n as usize + 1).map(|e| *e as usize);
        let mut pos = 0usize;
        let mut out = Vec::new();
        for f in frags {
            if pos >= start && end.is_none_or(|e| pos < e) {
                out.extend_from_slice(f);
            }
            pos += f.len() + 8;
        }
        if !out.is_empty() {
            return Ok(out);
        }
    }
    Err(ImagingError::Corrupt(format!(
        "cannot tell which of {} fragments hold frame {n} of {frames}",
        frags.len()
    )))
}

/// The marker segments of a JPEG stream's header, up to its first scan, as (marker, body);
/// stops early at anything that is not a well-formed segment.
fn jpeg_segments(b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = if b.get(..2) == Some(&[0xFF, 0xD8]) {
        2
    } else {
        b.len()
    };
    std::iter::from_fn(move || {
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if b.get(i) != Some(&0xFF) {
            return None;
        }
        let m = *b.get(i + 1)?;
        let len = u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]) as usize;
        let body = b.get(i + 4..(i + 2 + len).max(i + 4))?;
        i = if m == 0xDA { b.len() } else { i + 2 + len };
        Some((m, body))
    })
}

/// Sample precision of the first SOF marker of a JPEG stream, if there is one.
pub(crate) fn jpeg_precision(b: &[u8]) -> Option<u8> {
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    jpeg_segments(b)
        .find(|(m, _)| (0xC0..=0xCF).contains(m) && ![0xC4, 0xC8, 0xCC].contains(m))
        .and_then(|(_, body)| body.first().copied())
}

/// Whether the stream says which colour space it holds: a JFIF APP0 (YCbCr by definition) or
/// an Adobe APP14 marker (its transform flag).
fn jpeg_names_colour_space(b: &[u8]) -> bool {
    jpeg_segments(b).any(|(m, body)| {
        (m == 0xE0 && body.starts_with(b"JFIF\0")) || (m == 0xEE && body.starts_with(b"Adobe"))
    })
}

/// An 8-bit JPEG the data set calls RGB and whose stream names no colour space: its samples
/// are R, G and B as they are. jpeg-decoder (through dicom-pixeldata) would take three
/// components without a marker for YCbCr and convert them; DCMTK and pydicom go by the
/// Photometric Interpretation, and so does this (pydicom's SC_jpeg_no_color_transform.dcm,
/// a near-white image, otherwise shows magenta).
fn rgb_jpeg(bytes: &[u8], a: &Attrs) -> Result<Frame, ImagingError> {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    d.set_color_transform(jpeg_decoder::ColorTransform::RGB);
    let data = d
        .decode()
        .map_err(|e| ImagingError::Corrupt(format!("JPEG decoding: {e}")))?;
    let want = a.rows as usize * a.cols as usize * 3;
    if data.len() != want {
        return Err(ImagingError::Corrupt(format!(
            "JPEG frame decoded to {} bytes, Rows × Columns × 3 is {want}",
            data.len()
        )));
    }
    Ok(Frame::decoded(a, 8, data))
}

fn interleave(raw: &[u8], pixels: usize, bps: usize) -> Vec<u8> {
    let mut out = vec![0u8; raw.len()];
    let plane = pixels * bps;
    for p in 0..pixels {
        for s in 0..3 {
            let src = s * plane + p * bps;
            let dst = (p * 3 + s) * bps;
            out[dst..dst + bps].copy_from_slice(&raw[src..src + bps]);
        }
    }
    out
}

fn expand_422(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() / 2 * 3);
    for q in raw.chunks_exact(4) {
        let (y1, y2, cb, cr) = (q[0], q[1], q[2], q[3]);
        out.extend_from_slice(&[y1, cb, cr, y2, cb, cr]);
    }
    out
}

/// YBR_FULL to RGB in place (PS3.3 C.7.6.3.1.2, the JFIF equations).
pub(crate) fn ybr_to_rgb(data: &mut [u8]) {
    for px in data.chunks_exact_mut(3) {
        let y = px[0] as f32;
        let cb = px[1] as f32 - 128.0;
        let cr = px[2] as f32 - 128.0;
        let r = y + 1.402 * cr;
        let g = y - 0.344_136 * cb - 0.714_136 * cr;
        let b = y + 1.772 * cb;
        px[0] = r.round().clamp(0.0, 255.0) as u8;
        px[1] = g.round().clamp(0.0, 255.0) as u8;
        px[2] = b.round().clamp(0.0, 255.0) as u8;
    }
}

/// One RLE Lossless frame (PS3.5 Annex G): a 64-byte header of segment offsets, one PackBits
/// segment per byte of each sample, most significant byte first; out: interleaved little endian.
fn rle_frame(b: &[u8], pixels: usize, samples: usize, bps: usize) -> Result<Vec<u8>, ImagingError> {
    let corrupt = |m: &str| ImagingError::Corrupt(format!("RLE frame: {m}"));
    let word = |i: usize| -> Option<usize> {
        b.get(i * 4..i * 4 + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    };
    let count = word(0).ok_or_else(|| corrupt("no header"))?;
    if count != samples * bps {
        return Err(corrupt(&format!(
            "{count} segments, expected {}",
            samples * bps
        )));
    }
    let mut out = vec![0u8; pixels * samples * bps];
    for seg in 0..count {
        let start = word(1 + seg).ok_or_else(|| corrupt("short header"))?;
        let end = if seg + 1 < count {
            word(2 + seg).ok_or_else(|| corrupt("short header"))?
        } else {
            b.len()
        };
        let data = b
            .get(start..end)
            .ok_or_else(|| corrupt("segment outside the frame"))?;
        let (sample, byte) = (seg / bps, bps - 1 - seg % bps);
        let mut p = 0;
        let mut i = 0;
        let mut put = |v: u8, p: &mut usize| {
            if *p < pixels {
                out[(*p * samples + sample) * bps + byte] = v;
            }
            *p += 1;
        };
        while i < data.len() && p < pixels {
            let n = data[i] as i8;
            i += 1;
            if n >= 0 {
                let run = data
                    .get(i..i + n as usize + 1)
                    .ok_or_else(|| corrupt("literal run overruns"))?;
                run.iter().for_each(|v| put(*v, &mut p));
                i += n as usize + 1;
            } else if n != -128 {
                let v = *data.get(i).ok_or_else(|| corrupt("repeat run overruns"))?;
                (0..(1 - n as isize) as usize).for_each(|_| put(v, &mut p));
                i += 1;
            }
        }
        if p < pixels {
            return Err(corrupt(&format!(
                "segment {seg} decodes to {p} of {pixels} bytes"
            )));
        }
    }
    Ok(out)
}
