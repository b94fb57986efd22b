//! Pixel endpoints for the viewer and the study page: image info, previews, full-fidelity
//! pixels and series thumbnails. Decoding is pacsbox-imaging's; here are the URL shapes
//! (frames count from 1 in URLs, as DICOM's frame numbers do), the error statuses, and three
//! small caches: parsed instances (a multi-frame cine asks for frame after frame of one file),
//! rendered previews (the study page asks for the same thumbnails again and again), and the
//! full-pixel replies of compressed and of large images (a 2K JPEG 2000 CR takes 1–2 s to
//! decode: a second open sends the reply at once). [`warm`] fills the last two for newly
//! received such images while the box is idle, so that even the first open does not wait.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// A full-pixel reply as sent: body (gzip'd or not) and the headers that describe it.
pub struct PixelBody {
    body: Vec<u8>,
    gzip: bool,
    rows: u32,
    columns: u32,
    kind: &'static str,
    layout: &'static str,
}

/// Locks taken while an instance is read into the cache (by its UID's hash).
const LOAD_LOCKS: usize = 8;

pub struct PixelCaches {
    loads: [Mutex<()>; LOAD_LOCKS],
    instances: Lru<Instance>,
    previews: Lru<Vec<u8>>,
    bodies: Lru<PixelBody>,
}

impl Default for PixelCaches {
    fn default() -> Self {
        PixelCaches {
            loads: Default::default(),
            // A Pi has 2-8 GB; a few multi-frame files and a few hundred thumbnails.
            instances: Lru::new(192 << 20),
            previews: Lru::new(32 << 20),
            // About fifteen 2K CRs' full pixels (4.3 MB each as sent), only of compressed
            // images: the others are read and sent in a few hundred ms anyway.
            bodies: Lru::new(64 << 20),
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
    // Two requests for one instance (the viewer's preview and the decoding ahead) read it once,
    // so that they share its decoded frame; others rarely wait (one lock of several by UID).
    let stripe = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sop.hash(&mut h);
        h.finish() as usize % LOAD_LOCKS
    };
    let _loading = web.pixel_caches.loads[stripe]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(i) = web.pixel_caches.instances.get(sop) {
        return Ok(i);
    }
    let inst = Arc::new(Instance::read(web.archive.open_part10(&rec)?)?);
    // The decoded object is about as big as the file with its pixels unpacked; a compressed
    // one also keeps its last decoded frame.
    let size = usize::try_from(rec.file_size).unwrap_or(usize::MAX);
    let kept = if inst.is_encapsulated() {
        let i = inst.info();
        i.rows as usize * i.columns as usize * usize::from(i.samples_per_pixel) * 2
    } else {
        0
    };
    web.pixel_caches.instances.put(
        sop.to_owned(),
        inst.clone(),
        size.saturating_mul(2).saturating_add(kept),
    );
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
    // The decoder's log lines name no instance: the span does.
    let _span = tracing::info_span!("instance", sop).entered();
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

/// `?layout=med`: each 16-bit sample minus its prediction by the median edge detector of
/// LOCO-I / JPEG-LS (from the left, upper and upper-left neighbours; the first row from the
/// left, the first column from above), modulo 2¹⁶, zigzagged so that small residuals of
/// either sign are small numbers, then split into byte planes (see [`byte_planes`]). A CR's
/// residuals are mostly noise of a few bits: deflate's Huffman codes alone then take pydicom's
/// RG1_UNCR to 4.29 MB, where the planes of the raw samples take 5.09 MB (searching for
/// repeats only finds chance ones in noise; `bench/README.md`). Signed samples are offset by
/// 2¹⁵ first so that values either side of zero are neighbours. `viewer-cache.js` undoes it.
fn med_residual_planes(le16: &[u8], cols: usize, signed: bool) -> Vec<u8> {
    let n = le16.len() / 2;
    let flip = if signed { 0x8000 } else { 0 };
    let x = |i: usize| i32::from(u16::from_le_bytes([le16[2 * i], le16[2 * i + 1]]) ^ flip);
    let mut out = vec![0u8; n * 2];
    let (lo, hi) = out.split_at_mut(n);
    let cols = cols.max(1);
    for i in 0..n {
        let pred = med_predict(i, cols, x);
        // modulo 2^16, read as a signed residual, then zigzag: 0, -1, 1, -2… → 0, 1, 2, 3…
        let d = (x(i) - pred) as u16 as i16;
        let zz = (d.wrapping_shl(1) ^ (d >> 15)) as u16;
        let [l, h] = zz.to_le_bytes();
        lo[i] = l;
        hi[i] = h;
    }
    out
}

/// The median edge detector's prediction of sample `i` (row-major, `cols` wide) from the
/// samples before it, read through `x`: shared by the encoder and its test's decoder so the
/// two cannot drift apart.
fn med_predict(i: usize, cols: usize, x: impl Fn(usize) -> i32) -> i32 {
    if i == 0 {
        0
    } else if i < cols {
        x(i - 1)
    } else if i.is_multiple_of(cols) {
        x(i - cols)
    } else {
        let (a, b, c) = (x(i - 1), x(i - cols), x(i - cols - 1));
        if c >= a.max(b) {
            a.min(b)
        } else if c <= a.min(b) {
            a.max(b)
        } else {
            a + b - c
        }
    }
}

/// gzip with Huffman codes only (no search for repeats): what the residuals of
/// [`med_residual_planes`] need, smaller than any level's search on them and quick.
fn gzip_huffman_only(data: &[u8]) -> Vec<u8> {
    use miniz_oxide::deflate::core::{
        CompressionStrategy, CompressorOxide, TDEFLFlush, compress_to_output,
        create_comp_flags_from_zip_params,
    };
    let flags = create_comp_flags_from_zip_params(1, -15, CompressionStrategy::HuffmanOnly as i32);
    let mut c = CompressorOxide::new(flags);
    // RFC 1952: magic, deflate, no flags, no time, no extra flags, unknown OS
    let mut out = Vec::with_capacity(data.len() * 2 / 3);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    compress_to_output(&mut c, data, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952 2.3.1)
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn pixels(web: &Web, req: &Req, sop: &str, frame: u32) -> Result<Reply, HttpError> {
    let started = Instant::now();
    let layout = match req.param("layout") {
        "planes" => "planes",
        "med" => "med",
        _ => "",
    };
    let (p, cached) = pixel_body(web, sop, frame, layout, req.accepts_gzip)?;
    let mut reply = Reply::bytes(200, "application/octet-stream", p.body.clone());
    if p.gzip {
        reply = reply.header("Content-Encoding", "gzip");
    }
    reply = reply
        .header("X-Rows", p.rows.to_string())
        .header("X-Columns", p.columns.to_string())
        .header("X-Pixel-Kind", p.kind)
        .header("Cache-Control", IMMUTABLE)
        // How long the box took, and whether a compressed image's reply came from the cache:
        // the viewer benchmark reads it from Resource Timing (`bench/viewer_peers.mjs`).
        .header(
            "Server-Timing",
            format!(
                "pixels;dur={};desc=\"{}\"",
                started.elapsed().as_millis(),
                if cached { "cached" } else { "made" }
            ),
        );
    if !p.layout.is_empty() {
        reply = reply.header("X-Pixel-Layout", p.layout);
    }
    Ok(reply)
}

/// The full-pixel reply of one frame: from the cache for a costly image seen before, else
/// made (and then kept, if costly: see [`costly`]). `true` with it when it was cached.
fn pixel_body(
    web: &Web,
    sop: &str,
    frame: u32,
    layout: &'static str,
    gzip: bool,
) -> Result<(Arc<PixelBody>, bool), HttpError> {
    let inst = instance(web, sop)?;
    let key = format!("{sop}/{frame}/{layout}/{gzip}");
    if let Some(b) = web.pixel_caches.bodies.get(&key) {
        return Ok((b, true));
    }
    let body = Arc::new(make_pixel_body(&inst, frame, layout, gzip)?);
    if costly(&inst, &body) {
        let size = body.body.len();
        web.pixel_caches.bodies.put(key, body.clone(), size);
    }
    Ok((body, false))
}

/// Frames of at least this many pixels are kept even when stored uncompressed.
const KEEP_PIXELS: u64 = 1 << 20;

/// Whether a reply is worth keeping: a compressed image's (1–2 s of decoding for a 2K JPEG
/// 2000 CR), or a large one's (a 2K CR's residuals and gzip take 0.2–0.4 s of a core; a CT
/// slice's take a few ms, and a scrolled series would only push the CRs out).
fn costly(inst: &Instance, body: &PixelBody) -> bool {
    inst.is_encapsulated() || u64::from(body.rows) * u64::from(body.columns) >= KEEP_PIXELS
}

fn make_pixel_body(
    inst: &Instance,
    frame: u32,
    layout: &'static str,
    gzip: bool,
) -> Result<PixelBody, HttpError> {
    let p = inst.pixels(frame)?;
    let (kind, data) = match p.kind {
        PixelKind::Gray16 { signed: true, data } => ("gray16s", data),
        PixelKind::Gray16 {
            signed: false,
            data,
        } => ("gray16u", data),
        PixelKind::Rgb8 { data } => ("rgb8", data),
    };
    let layout = if kind == "rgb8" { "" } else { layout };
    let data = match layout {
        "planes" => byte_planes(&data),
        "med" => med_residual_planes(&data, p.columns as usize, kind == "gray16s"),
        _ => data,
    };
    let body = if gzip && layout == "med" {
        gzip_huffman_only(&data)
    } else if gzip {
        // Fast level: 16-bit medical images shrink 2-3x even so, and the Pi's CPU is the limit.
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::fast(),
        );
        gz.write_all(&data)?;
        gz.finish()?
    } else {
        data
    };
    Ok(PixelBody {
        body,
        gzip,
        rows: p.rows,
        columns: p.columns,
        kind,
        layout,
    })
}

/// Images bigger than this are not decoded ahead (a multi-frame cine's first frame would not
/// be worth holding the disk and a core for).
const WARM_MAX_FILE: u64 = 64 << 20;
/// Uncompressed images are made ahead from this size on (a 1024² 16-bit image is 2 MB; a
/// 512² CT slice, 0.5 MB, takes a few ms on request).
const WARM_MIN_NATIVE_FILE: u64 = 1 << 20;
/// At most this many images of one study are decoded ahead (a 300-slice JPEG 2000 CT would
/// otherwise keep a Pi's core busy for minutes and push everything else out of the cache).
const WARM_PER_STUDY: usize = 16;
/// Studies are decoded ahead once nothing arrived for this long (the senders are done).
const WARM_QUIET_SECS: i64 = 2;

/// Decodes ahead, one image after another on the caller's thread and only once nothing has
/// arrived for [`WARM_QUIET_SECS`], what the viewer will ask first of the compressed and the
/// large images of studies received lately: frame 1's preview and its full pixels as the
/// viewer fetches them (`?layout=med`, gzip). `seen` remembers per study
/// the arrival time already warmed, so a study is warmed again only when more of it arrives.
/// Bounded by [`WARM_PER_STUDY`] and the caches' own budgets; memory only (a restart forgets
/// it, and the first open after a restart decodes as before).
pub fn warm(web: &Web, seen: &mut HashMap<String, i64>, now_unix: i64) {
    let activity = web.archive.activity();
    // Only while nothing arrives at all: a bulk import of many studies keeps the cores for
    // itself, and what it brought is decoded when it is over.
    if activity
        .last
        .as_ref()
        .is_some_and(|l| now_unix - l.received_unix < WARM_QUIET_SECS)
    {
        return;
    }
    let recent = activity.recent;
    for study in recent.iter().rev() {
        if seen.get(&study.study_uid) == Some(&study.received_unix) {
            continue;
        }
        seen.insert(study.study_uid.clone(), study.received_unix);
        let mut warmed = 0;
        let series = match web.archive.index().series_of(&study.study_uid) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(study = %study.study_uid, error = %e, "decoding ahead: no series list");
                continue;
            }
        };
        for (series_uid, _) in series {
            let Ok(instances) = web.archive.index().instances_of(&series_uid) else {
                continue;
            };
            for (sop, rec) in instances {
                if warmed >= WARM_PER_STUDY {
                    break;
                }
                // Small images in native syntaxes (deflated included: its pixels are native
                // inside) are quick on request.
                use pacsbox_archive::transfer_syntax as ts;
                let native = ts::store_zstd(&rec.transfer_syntax)
                    || rec.transfer_syntax == ts::DEFLATED_EXPLICIT_VR_LE;
                if (native && rec.file_size < WARM_MIN_NATIVE_FILE) || rec.file_size > WARM_MAX_FILE
                {
                    continue;
                }
                warmed += 1;
                let _span = tracing::info_span!("instance", sop).entered();
                let started = Instant::now();
                let made = preview(web, &sop, 0, PREVIEW_MAX)
                    .and_then(|_| pixel_body(web, &sop, 0, "med", true));
                match made {
                    Ok((_, cached)) => tracing::info!(
                        cached,
                        ms = started.elapsed().as_millis() as u64,
                        "decoded ahead for the viewer"
                    ),
                    // 415/422 images say so again when opened; nothing to keep.
                    Err(e) => tracing::debug!(sop, error = ?e, "not decoded ahead"),
                }
            }
        }
    }
    // Studies no longer among the recent ones need not be remembered.
    seen.retain(|uid, _| recent.iter().any(|r| r.study_uid == *uid));
}

/// The preview size the viewer asks for first (`web-ui/static/viewer-net.js`, PREVIEW_MAX).
const PREVIEW_MAX: u32 = 512;

pub fn thumbnail(web: &Web, series: &str) -> Result<Reply, HttpError> {
    let sops = web.archive.index().instances_of(series)?;
    let (sop, _) = sops.get(sops.len() / 2).ok_or(HttpError::NotFound)?;
    preview(web, sop, 0, 128)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    /// What `viewer-cache.js` does, in Rust: the samples back from the residual planes.
    fn undo_med(planes: &[u8], cols: usize, signed: bool) -> Vec<u8> {
        let n = planes.len() / 2;
        let flip = if signed { 0x8000 } else { 0 };
        let mut x = vec![0i32; n];
        for i in 0..n {
            let zz = u16::from_le_bytes([planes[i], planes[n + i]]);
            let d = i32::from((zz >> 1) as i16 ^ -((zz & 1) as i16));
            let pred = super::med_predict(i, cols, |j| x[j]);
            x[i] = (pred + d) & 0xffff;
        }
        x.iter()
            .flat_map(|v| ((*v as u16) ^ flip).to_le_bytes())
            .collect()
    }

    #[test]
    fn med_residuals_are_small_and_undo_exactly() {
        let (cols, rows) = (7usize, 5usize);
        // a ramp with noise, the extremes, and a jump across zero for the signed case
        let mut samples: Vec<u16> = (0..cols * rows)
            .map(|i| (1000 + 3 * i + (i * 7919) % 5) as u16)
            .collect();
        samples[9] = 0;
        samples[10] = u16::MAX;
        samples[20] = 0x8000;
        let le: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        for signed in [false, true] {
            let planes = super::med_residual_planes(&le, cols, signed);
            assert_eq!(planes.len(), le.len());
            assert_eq!(undo_med(&planes, cols, signed), le, "signed {signed}");
        }
        // a smooth ramp leaves high bytes of zero
        let ramp: Vec<u8> = (0..cols * rows)
            .flat_map(|i| (4000 + i as u16).to_le_bytes())
            .collect();
        let planes = super::med_residual_planes(&ramp, cols, false);
        assert!(planes[cols * rows + 1..].iter().all(|b| *b == 0));
        // the known case web-ui/tests/viewer-cache.test.mjs decodes: 10 12 / 11 40
        let known: Vec<u8> = [10u16, 12, 11, 40]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            super::med_residual_planes(&known, 2, false),
            vec![20, 4, 2, 56, 0, 0, 0, 0]
        );
    }

    #[test]
    fn huffman_only_gzip_is_gzip() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 7) as u8).collect();
        let gz = super::gzip_huffman_only(&data);
        assert!(gz.len() < data.len() / 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .expect("a valid gzip stream");
        assert_eq!(back, data);
    }

    #[test]
    fn byte_planes_put_low_bytes_first() {
        // samples 0x0201, 0x0403, 0x0605 little endian
        assert_eq!(
            super::byte_planes(&[1, 2, 3, 4, 5, 6]),
            vec![1, 3, 5, 2, 4, 6]
        );
    }
}
