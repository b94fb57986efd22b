//! Pixel endpoints for the viewer and the study page: image info, previews, full-fidelity
//! pixels and series thumbnails. Decoding is pacsbox-imaging's; here are the URL shapes
//! (frames count from 1 in URLs, as DICOM's frame numbers do), the error statuses, and two
//! small caches: parsed instances (a multi-frame cine asks for frame after frame of one file)
//! and rendered previews (the study page asks for the same thumbnails again and again).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use pacsbox_imaging::{ImagingError, Instance, PixelKind};
use serde::Serialize;

use crate::Web;
use crate::reply::{HttpError, Reply, Req};

/// A few recently used items, bounded by their total size.
pub struct Lru<V> {
    budget: usize,
    items: Mutex<VecDeque<(String, Arc<V>, usize)>>,
}

impl<V> Lru<V> {
    pub fn new(budget: usize) -> Lru<V> {
        Lru {
            budget,
            items: Mutex::new(VecDeque::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Arc<V>> {
        let mut items = self.items.lock().ok()?;
        let i = items.iter().position(|(k, _, _)| k == key)?;
        let item = items.remove(i)?;
        let v = item.1.clone();
        items.push_front(item);
        Some(v)
    }

    fn put(&self, key: String, v: Arc<V>, size: usize) {
        if size > self.budget {
            return;
        }
        if let Ok(mut items) = self.items.lock() {
            items.retain(|(k, _, _)| *k != key);
            items.push_front((key, v, size));
            let mut total: usize = items.iter().map(|i| i.2).sum();
            while total > self.budget {
                match items.pop_back() {
                    Some(old) => total -= old.2,
                    None => break,
                }
            }
        }
    }
}

pub struct PixelCaches {
    instances: Lru<Instance>,
    previews: Lru<Vec<u8>>,
}

impl Default for PixelCaches {
    fn default() -> Self {
        PixelCaches {
            // A Pi has 2-8 GB; a few multi-frame files and a few hundred thumbnails.
            instances: Lru::new(192 << 20),
            previews: Lru::new(32 << 20),
        }
    }
}

impl From<ImagingError> for HttpError {
    fn from(e: ImagingError) -> HttpError {
        match e {
            ImagingError::Unsupported { .. } => HttpError::Unsupported(e.to_string()),
            ImagingError::Corrupt(_) | ImagingError::NoPixelData => {
                HttpError::Unprocessable(e.to_string())
            }
            ImagingError::NoSuchFrame { .. } => HttpError::NotFound,
            ImagingError::Io(_) => HttpError::Internal(e.to_string()),
        }
    }
}

fn instance(web: &Web, sop: &str) -> Result<Arc<Instance>, HttpError> {
    // The index first, always: a deleted instance is gone at once, cached or not.
    let rec = web
        .archive
        .index()
        .instance(sop)?
        .ok_or(HttpError::NotFound)?;
    if let Some(i) = web.pixel_caches.instances.get(sop) {
        return Ok(i);
    }
    let inst = Arc::new(Instance::read(web.archive.open_part10(&rec)?)?);
    // The decoded object is about as big as the file with its pixels unpacked.
    let size = usize::try_from(rec.file_size).unwrap_or(usize::MAX);
    web.pixel_caches
        .instances
        .put(sop.to_owned(), inst.clone(), size.saturating_mul(2));
    Ok(inst)
}

#[derive(Serialize)]
struct InfoJson {
    rows: u32,
    columns: u32,
    frames: u32,
    samples_per_pixel: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    photometric: String,
    rescale_slope: f64,
    rescale_intercept: f64,
    windows: Vec<pacsbox_imaging::WindowPreset>,
    voi_lut_function: Option<String>,
    transfer_syntax: String,
    has_pixel_data: bool,
    slice_location: Option<f64>,
    slice_thickness: Option<f64>,
    kvp: Option<f64>,
    exposure_mas: Option<f64>,
    image_position: Option<[f64; 3]>,
    #[serde(flatten)]
    geometry: pacsbox_imaging::Geometry,
}

/// `frames/{n}` in a URL: 1-based.
fn frame_index(s: &str) -> Result<u32, HttpError> {
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n - 1),
        _ => Err(HttpError::BadRequest(format!("not a frame number: {s:?}"))),
    }
}

/// Patient images must not outlive the session in a shared PC's browser cache: nothing is
/// stored (the viewer keeps what it needs in memory while the page is open).
const IMMUTABLE: &str = "no-store";

pub fn instance_api(web: &Web, req: &Req, sop: &str, rest: &[&str]) -> Result<Reply, HttpError> {
    match rest {
        ["info"] => {
            let i = instance(web, sop)?.info();
            Ok(Reply::json(&InfoJson {
                rows: i.rows,
                columns: i.columns,
                frames: i.number_of_frames,
                samples_per_pixel: i.samples_per_pixel,
                bits_allocated: i.bits_allocated,
                bits_stored: i.bits_stored,
                signed: i.signed,
                photometric: i.photometric_interpretation,
                rescale_slope: i.rescale_slope,
                rescale_intercept: i.rescale_intercept,
                windows: i.windows,
                voi_lut_function: i.voi_lut_function,
                transfer_syntax: i.transfer_syntax,
                has_pixel_data: i.has_pixel_data,
                slice_location: i.slice_location,
                slice_thickness: i.slice_thickness,
                kvp: i.kvp,
                exposure_mas: i.exposure_mas,
                image_position: i.image_position,
                geometry: i.geometry,
            })
            .header("Cache-Control", IMMUTABLE))
        }
        ["frames", n, "preview.png"] => {
            let max = req.param("max").parse().unwrap_or(512u32).clamp(32, 4096);
            preview(web, sop, frame_index(n)?, max)
        }
        ["frames", n, "pixels"] => pixels(web, req, sop, frame_index(n)?),
        _ => Err(HttpError::NotFound),
    }
}

fn preview(web: &Web, sop: &str, frame: u32, max: u32) -> Result<Reply, HttpError> {
    // A deleted instance's cached previews are not served.
    if web.archive.index().instance(sop)?.is_none() {
        return Err(HttpError::NotFound);
    }
    let key = format!("{sop}/{frame}/{max}");
    let png = match web.pixel_caches.previews.get(&key) {
        Some(p) => p,
        None => {
            let png = Arc::new(instance(web, sop)?.preview(frame, max)?);
            web.pixel_caches.previews.put(key, png.clone(), png.len());
            png
        }
    };
    Ok(Reply::bytes(200, "image/png", png.as_ref().clone()).header("Cache-Control", IMMUTABLE))
}

/// 16-bit samples as two planes, every low byte and then every high byte: neighbouring high
/// bytes are nearly all alike, so deflate takes a 2K CR's 7.2 MB to 5.1 MB instead of 6.3 MB.
fn byte_planes(le16: &[u8]) -> Vec<u8> {
    let n = le16.len() / 2;
    let mut out = vec![0u8; n * 2];
    let (lo, hi) = out.split_at_mut(n);
    for (i, pair) in le16.chunks_exact(2).enumerate() {
        lo[i] = pair[0];
        hi[i] = pair[1];
    }
    out
}

fn pixels(web: &Web, req: &Req, sop: &str, frame: u32) -> Result<Reply, HttpError> {
    let p = instance(web, sop)?.pixels(frame)?;
    let (kind, data) = match p.kind {
        PixelKind::Gray16 { signed: true, data } => ("gray16s", data),
        PixelKind::Gray16 {
            signed: false,
            data,
        } => ("gray16u", data),
        PixelKind::Rgb8 { data } => ("rgb8", data),
    };
    let planes = kind != "rgb8" && req.param("layout") == "planes";
    let data = if planes { byte_planes(&data) } else { data };
    let mut reply = if req.accepts_gzip {
        // Fast level: 16-bit medical images shrink 2-3x even so, and the Pi's CPU is the limit.
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::fast(),
        );
        gz.write_all(&data)?;
        Reply::bytes(200, "application/octet-stream", gz.finish()?)
            .header("Content-Encoding", "gzip")
    } else {
        Reply::bytes(200, "application/octet-stream", data)
    };
    reply = reply
        .header("X-Rows", p.rows.to_string())
        .header("X-Columns", p.columns.to_string())
        .header("X-Pixel-Kind", kind)
        .header("Cache-Control", IMMUTABLE);
    if planes {
        reply = reply.header("X-Pixel-Layout", "planes");
    }
    Ok(reply)
}

pub fn thumbnail(web: &Web, series: &str) -> Result<Reply, HttpError> {
    let sops = web.archive.index().instances_of(series)?;
    let (sop, _) = sops.get(sops.len() / 2).ok_or(HttpError::NotFound)?;
    preview(web, sop, 0, 128)
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_planes_put_low_bytes_first() {
        // samples 0x0201, 0x0403, 0x0605 little endian
        assert_eq!(
            super::byte_planes(&[1, 2, 3, 4, 5, 6]),
            vec![1, 3, 5, 2, 4, 6]
        );
    }
}
