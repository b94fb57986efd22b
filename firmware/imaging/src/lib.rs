//! Pixel decoding and rendering of one stored DICOM instance: what the web viewer and the
//! C-MOVE/C-GET transcoding path need, and nothing about where the file came from (the caller
//! hands over a reader of the whole Part-10 file; no archive, no network here).
//!
//! - [`Instance::info`]: the image attributes a viewer needs (size, bit depth, signedness,
//!   photometric interpretation, rescale, the file's window presets).
//! - [`Instance::preview`]: an 8-bit PNG of one frame, downscaled, with the file's first window
//!   or VOI LUT (else min–max), MONOCHROME1 inverted, colour converted to RGB.
//! - [`Instance::pixels`]: full-fidelity stored values (16-bit gray, or 8-bit RGB) for a
//!   browser that does window/level itself.
//! - [`decompress_to_native`]: the data set re-encoded in a native (uncompressed) syntax;
//!   [`can_decompress`] says beforehand which stored syntaxes this build can do that for.
//!
//! Decoders: dicom-pixeldata for JPEG baseline/lossless, RLE, JPEG 2000 (openjp2), deflate and
//! big endian; with the default `native-codecs` feature also JPEG-LS (CharLS, through
//! dicom-pixeldata) and 12-bit JPEG Extended (libjpeg-turbo 3, `jpeg12.rs`), which
//! dicom-pixeldata's pure-Rust JPEG decoder refuses. Without the feature those two answer
//! [`ImagingError::Unsupported`].

mod decode;
mod geometry;
mod guard;
#[cfg(feature = "native-codecs")]
mod jpeg12;
mod native;
mod render;

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_object::file::ReadPreamble;
use serde::Serialize;

pub use geometry::{Geometry, SpacingSource};
pub use native::{can_decompress, decompress_to_native};
pub use render::{PixelKind, Pixels};

/// Why an image could not be decoded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// Well-formed, but this build cannot decode it (the web layer answers 415 naming the syntax).
    #[error("cannot decode this image here ({reason}; transfer syntax {transfer_syntax})")]
    Unsupported {
        transfer_syntax: String,
        reason: String,
    },
    /// The file or its pixel data is inconsistent or does not decode (422).
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The instance has no Pixel Data (a structured report, a presentation state…) (422).
    #[error("the instance has no pixel data")]
    NoPixelData,
    /// The caller asked for a frame the instance does not have (404).
    #[error("frame {frame} does not exist (the instance has {frames})")]
    NoSuchFrame { frame: u32, frames: u32 },
    /// Reading the file failed.
    #[error("reading the instance: {0}")]
    Io(#[from] std::io::Error),
}

/// One window preset stored in the file (Window Center/Width with its explanation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowPreset {
    pub center: f64,
    pub width: f64,
    pub explanation: Option<String>,
}

/// What a viewer needs to know about an instance's image, read from its attributes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageInfo {
    pub rows: u32,
    pub columns: u32,
    pub number_of_frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    /// Pixel Representation 1: stored values are two's complement.
    pub signed: bool,
    pub photometric_interpretation: String,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub windows: Vec<WindowPreset>,
    /// VOI LUT Function (LINEAR, LINEAR_EXACT, SIGMOID) when present.
    pub voi_lut_function: Option<String>,
    pub transfer_syntax: String,
    pub has_pixel_data: bool,
    /// For the viewer's overlay: Slice Location and Slice Thickness (mm), kVp, and the
    /// exposure in mAs (Exposure, or Exposure in µAs / 1000).
    pub slice_location: Option<f64>,
    pub slice_thickness: Option<f64>,
    pub kvp: Option<f64>,
    pub exposure_mas: Option<f64>,
    /// Image Position (Patient), mm: with the orientation, where the slice lies, so that the
    /// viewer can scroll two series together by position.
    pub image_position: Option<[f64; 3]>,
    /// Pixel size, orientation and value unit, for measurements and orientation markers.
    pub geometry: Geometry,
}

/// One DICOM instance held in memory, ready to be rendered.
pub struct Instance {
    obj: DefaultDicomObject,
    /// The last frame decoded from encapsulated (compressed) Pixel Data. A viewer asks for a
    /// frame's preview and then its full pixels: a 2K JPEG 2000 CR takes 1–2 s to decode here
    /// (openjp2, one core), so the second request must not decode it again. The lock is held
    /// while decoding, so that the two requests arriving together decode once.
    decoded: Mutex<Option<(u32, Arc<decode::Frame>)>>,
}

impl Instance {
    /// Reads a whole Part-10 file (preamble optional) into memory.
    pub fn read(mut r: impl Read) -> Result<Instance, ImagingError> {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        guard::check(&bytes)
            .map_err(|e| ImagingError::Corrupt(format!("not a readable DICOM file: {e}")))?;
        let obj = dicom_object::OpenFileOptions::new()
            .read_preamble(ReadPreamble::Auto)
            .from_reader(&bytes[..])
            // dicom-object reports a truncated or unreadable stream as a parse error too, so
            // every failure here is the file's fault as far as a caller can act on it.
            .map_err(|e| {
                ImagingError::Corrupt(format!("not a readable DICOM file: {}", chain(&e)))
            })?;
        Ok(Instance {
            obj,
            decoded: Mutex::new(None),
        })
    }

    /// Whether the Pixel Data is encapsulated (compressed): decoding it costs time, and a
    /// decoded frame is kept (see [`Instance::decoded_bytes`]).
    pub fn is_encapsulated(&self) -> bool {
        self.obj
            .get(tags::PIXEL_DATA)
            .is_some_and(|e| matches!(e.value(), dicom_core::value::Value::PixelSequence(_)))
    }

    /// Bytes held by the kept decoded frame, for a cache's size bound.
    pub fn decoded_bytes(&self) -> usize {
        self.decoded
            .lock()
            .ok()
            .and_then(|d| d.as_ref().map(|(_, f)| f.data.len()))
            .unwrap_or(0)
    }

    /// Frame `frame`, decoded; from encapsulated data only once in a row (see `decoded`).
    fn frame(&self, frame: u32) -> Result<Arc<decode::Frame>, ImagingError> {
        if !self.is_encapsulated() {
            return decode::frame(&self.obj, frame).map(Arc::new);
        }
        // A poisoned lock only means another decode panicked; its slot is simply refilled.
        let mut slot = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, f)) = slot.as_ref()
            && *n == frame
        {
            return Ok(f.clone());
        }
        let started = Instant::now();
        let f = Arc::new(decode::frame(&self.obj, frame)?);
        tracing::info!(
            transfer_syntax = self.transfer_syntax(),
            frame = frame + 1,
            ms = started.elapsed().as_millis() as u64,
            "decoded a compressed frame"
        );
        *slot = Some((frame, f.clone()));
        Ok(f)
    }

    pub fn transfer_syntax(&self) -> &str {
        self.obj.meta().transfer_syntax()
    }

    pub fn info(&self) -> ImageInfo {
        let a = decode::Attrs::of(&self.obj);
        let centers = floats(&self.obj, tags::WINDOW_CENTER);
        let widths = floats(&self.obj, tags::WINDOW_WIDTH);
        let explanations: Vec<String> = self
            .obj
            .get(tags::WINDOW_CENTER_WIDTH_EXPLANATION)
            .and_then(|e| e.to_multi_str().ok())
            .map(|v| v.iter().map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        let windows = centers
            .iter()
            .zip(&widths)
            .enumerate()
            .filter(|(_, (_, w))| **w > 0.0)
            .map(|(i, (c, w))| WindowPreset {
                center: *c,
                width: *w,
                explanation: explanations.get(i).filter(|s| !s.is_empty()).cloned(),
            })
            .collect();
        ImageInfo {
            rows: a.rows,
            columns: a.cols,
            number_of_frames: a.frames,
            samples_per_pixel: a.samples,
            bits_allocated: a.bits_allocated,
            bits_stored: a.bits_stored,
            signed: a.signed,
            photometric_interpretation: a.photometric.clone(),
            rescale_slope: a.slope,
            rescale_intercept: a.intercept,
            windows,
            voi_lut_function: text(&self.obj, tags::VOILUT_FUNCTION),
            transfer_syntax: self.transfer_syntax().to_string(),
            has_pixel_data: self.obj.get(tags::PIXEL_DATA).is_some(),
            slice_location: float(&self.obj, tags::SLICE_LOCATION),
            slice_thickness: float(&self.obj, tags::SLICE_THICKNESS),
            kvp: float(&self.obj, tags::KVP),
            exposure_mas: float(&self.obj, tags::EXPOSURE)
                .or_else(|| float(&self.obj, tags::EXPOSURE_INU_AS).map(|ua| ua / 1000.0)),
            image_position: floats(&self.obj, tags::IMAGE_POSITION_PATIENT)
                .get(..3)
                .and_then(|v| <[f64; 3]>::try_from(v).ok())
                .filter(|v| v.iter().all(|c| c.is_finite())),
            geometry: Geometry::of(&self.obj),
        }
    }

    /// A PNG (8-bit gray or RGB) of `frame` (0-based), neither side larger than `max_dim`.
    pub fn preview(&self, frame: u32, max_dim: u32) -> Result<Vec<u8>, ImagingError> {
        let f = self.frame(frame)?;
        render::preview(&self.obj, &f, max_dim)
    }

    /// [`Instance::preview`] as a JPEG of the given quality (1-100).
    pub fn preview_jpeg(
        &self,
        frame: u32,
        max_dim: u32,
        quality: u8,
    ) -> Result<Vec<u8>, ImagingError> {
        let f = self.frame(frame)?;
        render::preview_jpeg(&self.obj, &f, max_dim, quality)
    }

    /// Frame `frame` (0-based) as stored, for DICOMweb's `/frames`: the frame's bytes of a
    /// native Pixel Data (as allocated, planar or not), or an encapsulated frame's compressed
    /// bytes.
    pub fn stored_frame(&self, frame: u32) -> Result<Vec<u8>, ImagingError> {
        let a = decode::Attrs::of(&self.obj);
        let pd = self
            .obj
            .get(tags::PIXEL_DATA)
            .ok_or(ImagingError::NoPixelData)?;
        if frame >= a.frames {
            return Err(ImagingError::NoSuchFrame {
                frame,
                frames: a.frames,
            });
        }
        match pd.value() {
            dicom_core::value::Value::Primitive(p) => {
                if !a.bits_allocated.is_multiple_of(8) {
                    return Err(decode::unsupported(
                        &self.obj,
                        "frames of 1-bit Pixel Data are not byte-aligned",
                    ));
                }
                let per_frame = a.rows as usize
                    * a.cols as usize
                    * a.samples as usize
                    * (a.bits_allocated as usize / 8);
                let bytes = p.to_bytes();
                let start = frame as usize * per_frame;
                bytes
                    .get(start..start + per_frame)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        ImagingError::Corrupt(format!(
                            "Pixel Data has {} bytes, frame {frame} needs {}",
                            bytes.len(),
                            start + per_frame
                        ))
                    })
            }
            dicom_core::value::Value::PixelSequence(seq) => {
                decode::frame_bytes(seq, a.frames, frame)
            }
            dicom_core::value::Value::Sequence(_) => Err(ImagingError::Corrupt(
                "Pixel Data is a sequence of items".into(),
            )),
        }
    }

    /// Stored values of `frame` (0-based) for a viewer that windows itself.
    pub fn pixels(&self, frame: u32) -> Result<Pixels, ImagingError> {
        let f = self.frame(frame)?;
        render::pixels(&self.obj, &f)
    }
}

fn floats(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .unwrap_or_default()
}

/// The first value of a numeric attribute, when it is present and finite.
fn float(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    floats(obj, tag).first().copied().filter(|v| v.is_finite())
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// An error with its sources, because dicom-rs errors put the useful part in the innermost one.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}
