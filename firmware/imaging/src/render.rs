//! Decoded frames to what a browser shows: an 8-bit PNG preview (modality rescale, then the
//! file's first window or VOI LUT, else the frame's min–max; box-filtered down), or stored
//! values for a viewer that windows itself.
//!
//! Gray values go through one lookup table over the frame's stored-value range, so the
//! per-pixel work is an index and an add whatever the VOI function: a 2K×2K 12-bit CR is a
//! 4096-entry table and 4 M lookups.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use serde::Serialize;

use crate::ImagingError;
use crate::decode::{Attrs, Frame, unsupported};

/// Stored pixel values of one frame, for a viewer that does window/level itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pixels {
    pub rows: u32,
    pub columns: u32,
    pub kind: PixelKind,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum PixelKind {
    /// One little-endian 16-bit stored value per pixel, rescale not applied; two's complement
    /// when `signed`. MONOCHROME1 stays as stored (the info tells the viewer to invert); 1- and
    /// 8-bit data are widened.
    Gray16 { signed: bool, data: Vec<u8> },
    /// Interleaved 8-bit R, G, B (palette colour and YBR already converted; 16-bit colour
    /// scaled down).
    Rgb8 { data: Vec<u8> },
}

pub(crate) fn pixels(obj: &DefaultDicomObject, f: &Frame) -> Result<Pixels, ImagingError> {
    let kind = if f.photometric == "PALETTE COLOR" {
        PixelKind::Rgb8 {
            data: palette_rgb(obj, f)?,
        }
    } else if f.samples == 3 {
        PixelKind::Rgb8 { data: rgb8(f) }
    } else {
        if f.bits_allocated > 16 {
            return Err(unsupported(
                obj,
                format!(
                    "{}-bit gray samples do not fit the 16-bit viewer format (preview only)",
                    f.bits_allocated
                ),
            ));
        }
        let mut data = Vec::with_capacity(f.pixel_count() * 2);
        for v in gray_values(f) {
            data.extend_from_slice(&(v as u16).to_le_bytes());
        }
        PixelKind::Gray16 {
            signed: f.signed,
            data,
        }
    };
    Ok(Pixels {
        rows: f.rows,
        columns: f.cols,
        kind,
    })
}

/// 8-bit gray or RGB samples of the frame windowed and scaled down: (samples, width, height,
/// channels).
fn raster(
    obj: &DefaultDicomObject,
    f: &Frame,
    max_dim: u32,
) -> Result<(Vec<u8>, usize, usize, usize), ImagingError> {
    let (w, h) = (f.cols as usize, f.rows as usize);
    let scale = if max_dim == 0 {
        1.0
    } else {
        (max_dim as f64 / w.max(h) as f64).min(1.0)
    };
    let ow = ((w as f64 * scale).round() as usize).max(1);
    let oh = ((h as f64 * scale).round() as usize).max(1);
    let (channels, out) = if f.photometric == "PALETTE COLOR" {
        (3, downscale(&palette_rgb(obj, f)?, w, h, 3, ow, oh))
    } else if f.samples == 3 {
        (3, downscale(&rgb8(f), w, h, 3, ow, oh))
    } else {
        let values = gray_values(f);
        let lut = GrayLut::new(obj, &values)?;
        let mut mapped: Vec<u8> = values.iter().map(|v| lut.map(*v)).collect();
        if f.photometric == "MONOCHROME1" {
            mapped.iter_mut().for_each(|v| *v = 255 - *v);
        }
        (1, downscale(&mapped, w, h, 1, ow, oh))
    };
    Ok((out, ow, oh, channels))
}

pub(crate) fn preview(
    obj: &DefaultDicomObject,
    f: &Frame,
    max_dim: u32,
) -> Result<Vec<u8>, ImagingError> {
    let (out, w, h, channels) = raster(obj, f, max_dim)?;
    encode_png(&out, w as u32, h as u32, channels)
}

/// The same picture as [`preview`] as a baseline JPEG (DICOMweb's default rendered type).
pub(crate) fn preview_jpeg(
    obj: &DefaultDicomObject,
    f: &Frame,
    max_dim: u32,
    quality: u8,
) -> Result<Vec<u8>, ImagingError> {
    let (out, w, h, channels) = raster(obj, f, max_dim)?;
    let (Ok(w), Ok(h)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(ImagingError::Corrupt(format!(
            "{w}x{h} is too large for JPEG"
        )));
    };
    let mut jpeg = Vec::new();
    let colour = if channels == 3 {
        jpeg_encoder::ColorType::Rgb
    } else {
        jpeg_encoder::ColorType::Luma
    };
    jpeg_encoder::Encoder::new(&mut jpeg, quality)
        .encode(&out, w, h, colour)
        .map_err(|e| ImagingError::Corrupt(format!("encoding JPEG: {e}")))?;
    Ok(jpeg)
}

/// Stored values, with bits above Bits Stored dropped and signed values sign-extended
/// (PS3.5 8.1.1: those bits are not part of the value; overlays used to live there).
fn gray_values(f: &Frame) -> Vec<i32> {
    let bits = f.bits_stored.clamp(1, 32) as u32;
    let mask: u32 = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let extend = |raw: u32| -> i32 {
        let v = raw & mask;
        if f.signed && bits < 32 && v & (1 << (bits - 1)) != 0 {
            (v | !mask) as i32
        } else {
            v as i32
        }
    };
    match f.bits_allocated {
        8 => f.data.iter().map(|b| extend(*b as u32)).collect(),
        16 => f
            .data
            .chunks_exact(2)
            .map(|c| extend(u16::from_le_bytes([c[0], c[1]]) as u32))
            .collect(),
        _ => f
            .data
            .chunks_exact(4)
            .map(|c| extend(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    }
}

/// 8-bit RGB from interleaved RGB samples of 8 or 16 bits.
fn rgb8(f: &Frame) -> Vec<u8> {
    match f.bits_allocated {
        8 => f.data.clone(),
        16 => {
            let shift = f.bits_stored.clamp(8, 16) - 8;
            f.data
                .chunks_exact(2)
                .map(|c| (u16::from_le_bytes([c[0], c[1]]) >> shift).min(255) as u8)
                .collect()
        }
        _ => f
            .data
            .chunks_exact(4)
            .map(|c| (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) >> 24) as u8)
            .collect(),
    }
}

/// One palette channel as 8-bit entries (PS3.3 C.7.6.3.1.5).
struct Palette {
    first: i32,
    entries: Vec<u8>,
}

fn palette(obj: &DefaultDicomObject, desc: Tag, data: Tag) -> Result<Palette, ImagingError> {
    let d: Vec<i64> = obj
        .get(desc)
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .unwrap_or_default();
    let [count, first, bits] = d[..] else {
        if obj
            .get(tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)
            .is_some()
        {
            return Err(unsupported(obj, "segmented palette colour lookup tables"));
        }
        return Err(ImagingError::Corrupt(format!(
            "palette descriptor {desc} missing or not three values"
        )));
    };
    // 0 entries means 65536 (the count does not fit 16 bits); negative first values come from SS.
    let count = if count <= 0 { 65536 } else { count as usize };
    let first = if first > 32767 { first - 65536 } else { first } as i32;
    let bytes = obj
        .get(data)
        .and_then(|e| e.value().to_bytes().ok())
        .ok_or_else(|| {
            if obj
                .get(tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)
                .is_some()
            {
                unsupported(obj, "segmented palette colour lookup tables")
            } else {
                ImagingError::Corrupt(format!("palette data {data} missing"))
            }
        })?;
    // 8-bit entries come packed one per byte or one per 16-bit word, depending on the writer.
    let entries: Vec<u8> = if bits <= 8 && bytes.len() < count * 2 {
        bytes.iter().take(count).copied().collect()
    } else if bits <= 8 {
        bytes
            .chunks_exact(2)
            .take(count)
            .map(|c| u16::from_le_bytes([c[0], c[1]]).min(255) as u8)
            .collect()
    } else {
        bytes
            .chunks_exact(2)
            .take(count)
            .map(|c| (u16::from_le_bytes([c[0], c[1]]) >> 8) as u8)
            .collect()
    };
    if entries.is_empty() {
        return Err(ImagingError::Corrupt(format!(
            "palette data {data} is empty"
        )));
    }
    Ok(Palette { first, entries })
}

fn palette_rgb(obj: &DefaultDicomObject, f: &Frame) -> Result<Vec<u8>, ImagingError> {
    let r = palette(
        obj,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    )?;
    let g = palette(
        obj,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    )?;
    let b = palette(
        obj,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    )?;
    let look = |p: &Palette, v: i32| {
        let i = (v - p.first).clamp(0, p.entries.len() as i32 - 1) as usize;
        p.entries[i]
    };
    let mut out = Vec::with_capacity(f.pixel_count() * 3);
    for v in gray_values(f) {
        out.extend_from_slice(&[look(&r, v), look(&g, v), look(&b, v)]);
    }
    Ok(out)
}

/// Stored value → display byte, tabulated over the frame's value range (in steps of
/// 2^shift when the range is too wide for one entry per value, as 32-bit data can be).
struct GrayLut {
    min: i64,
    shift: u32,
    table: Vec<u8>,
}

impl GrayLut {
    fn new(obj: &DefaultDicomObject, values: &[i32]) -> Result<GrayLut, ImagingError> {
        let (min, max) = values
            .iter()
            .fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        if values.is_empty() {
            return Ok(GrayLut {
                min: 0,
                shift: 0,
                table: vec![0],
            });
        }
        let a = Attrs::of(obj);
        let modality = |v: i64| v as f64 * a.slope + a.intercept;
        let voi = Voi::of(obj, modality(min as i64), modality(max as i64));
        let span = max as i64 - min as i64;
        let mut shift = 0;
        while span >> shift > 1 << 16 {
            shift += 1;
        }
        let table = (0..=(span >> shift))
            .map(|i| voi.map(modality(min as i64 + (i << shift))))
            .collect();
        Ok(GrayLut {
            min: min as i64,
            shift,
            table,
        })
    }

    fn map(&self, v: i32) -> u8 {
        let i = ((v as i64 - self.min) >> self.shift).clamp(0, self.table.len() as i64 - 1);
        self.table[i as usize]
    }
}

/// The VOI transform chosen for the preview.
enum Voi {
    Window {
        center: f64,
        width: f64,
        function: VoiFunction,
    },
    Table {
        first: f64,
        bits: u32,
        data: Vec<u16>,
    },
}

#[derive(Clone, Copy)]
enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

impl Voi {
    /// The file's first window, else its first VOI LUT, else the modality values' min–max.
    fn of(obj: &DefaultDicomObject, lo: f64, hi: f64) -> Voi {
        let centers = crate::floats(obj, tags::WINDOW_CENTER);
        let widths = crate::floats(obj, tags::WINDOW_WIDTH);
        let function = match crate::text(obj, tags::VOILUT_FUNCTION).as_deref() {
            Some("LINEAR_EXACT") => VoiFunction::LinearExact,
            Some("SIGMOID") => VoiFunction::Sigmoid,
            _ => VoiFunction::Linear,
        };
        if let (Some(c), Some(w)) = (centers.first(), widths.first())
            && *w >= 1.0
        {
            return Voi::Window {
                center: *c,
                width: *w,
                function,
            };
        }
        if let Some(t) = voi_table(obj) {
            return t;
        }
        // Min–max as an exact linear window, so min shows black and max white.
        Voi::Window {
            center: (lo + hi) / 2.0,
            width: (hi - lo).max(1.0),
            function: VoiFunction::LinearExact,
        }
    }

    fn map(&self, x: f64) -> u8 {
        let y = match self {
            Voi::Window {
                center,
                width,
                function,
            } => match function {
                // PS3.3 C.11.2.1.2.1
                VoiFunction::Linear => {
                    let (c, w) = (center - 0.5, width - 1.0);
                    if x <= c - w / 2.0 {
                        0.0
                    } else if x > c + w / 2.0 {
                        1.0
                    } else {
                        (x - c) / w.max(f64::MIN_POSITIVE) + 0.5
                    }
                }
                VoiFunction::LinearExact => (x - (center - width / 2.0)) / width,
                VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
            },
            Voi::Table { first, bits, data } => {
                let i = (x - first).round().clamp(0.0, data.len() as f64 - 1.0) as usize;
                data[i] as f64 / ((1u64 << bits) - 1) as f64
            }
        };
        (y.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

fn voi_table(obj: &DefaultDicomObject) -> Option<Voi> {
    let seq = obj.get(tags::VOILUT_SEQUENCE)?;
    let item = seq.items()?.first()?;
    let d: Vec<i64> = item.get(tags::LUT_DESCRIPTOR)?.to_multi_int::<i64>().ok()?;
    let [count, first, bits] = d[..] else {
        return None;
    };
    let count = if count <= 0 { 65536 } else { count as usize };
    let first = if first > 32767 { first - 65536 } else { first };
    let bits = bits.clamp(1, 16) as u32;
    let el = item.get(tags::LUT_DATA)?;
    let data: Vec<u16> = match el.to_multi_int::<u16>() {
        Ok(v) if v.len() >= count => v,
        _ => {
            let bytes = el.value().to_bytes().ok()?;
            if bits <= 8 && bytes.len() < count * 2 {
                bytes.iter().map(|b| *b as u16).collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect()
            }
        }
    };
    if data.is_empty() {
        return None;
    }
    Some(Voi::Table {
        first: first as f64,
        bits,
        data,
    })
}

/// Box filter: each output pixel is the mean of the source pixels it covers.
fn downscale(src: &[u8], w: usize, h: usize, ch: usize, ow: usize, oh: usize) -> Vec<u8> {
    if ow == w && oh == h {
        return src.to_vec();
    }
    // Source column → output column, once, so the inner loop is a lookup and an add.
    let col_of: Vec<usize> = (0..w).map(|x| (x * ow / w).min(ow - 1)).collect();
    let mut cols_per = vec![0u32; ow];
    col_of.iter().for_each(|c| cols_per[*c] += 1);
    let mut out = Vec::with_capacity(ow * oh * ch);
    let mut acc = vec![0u32; ow * ch];
    let mut y = 0;
    for oy in 0..oh {
        let y_end = ((oy + 1) * h / oh).max(y + 1).min(h);
        let rows = (y_end - y) as u32;
        acc.iter_mut().for_each(|a| *a = 0);
        for sy in y..y_end {
            let row = &src[sy * w * ch..(sy + 1) * w * ch];
            for (x, px) in row.chunks_exact(ch).enumerate() {
                let o = col_of[x] * ch;
                for c in 0..ch {
                    acc[o + c] += px[c] as u32;
                }
            }
        }
        for ox in 0..ow {
            let n = (cols_per[ox] * rows).max(1);
            for c in 0..ch {
                out.push(((acc[ox * ch + c] + n / 2) / n) as u8);
            }
        }
        y = y_end;
    }
    out
}

fn encode_png(data: &[u8], w: u32, h: u32, channels: usize) -> Result<Vec<u8>, ImagingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(if channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    // Previews are made on demand on a small CPU: fast deflate beats a few percent of size.
    enc.set_compression(png::Compression::Fast);
    let err = |e: png::EncodingError| ImagingError::Corrupt(format!("PNG encoding: {e}"));
    let mut w = enc.write_header().map_err(err)?;
    w.write_image_data(data).map_err(err)?;
    w.finish().map_err(err)?;
    Ok(out)
}
