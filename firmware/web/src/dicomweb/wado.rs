//! WADO-RS (PS3.18 10.4) and WADO-URI (PS3.18 9): stored instances as
//! `multipart/related; type="application/dicom"` — as stored (`transfer-syntax=*` or the
//! stored syntax asked for) or decompressed to Explicit VR Little Endian (the default when
//! the client names no syntax, as PS3.18 8.7.3.5 says, and what C-MOVE transcodes to), 406
//! when no syntax asked for can be delivered —, written part by part from a thread into a
//! pipe; `/metadata` as DICOM JSON (or DICOM XML parts) with bulk data (Pixel Data and binary
//! values over 1 KiB) as `BulkDataURI`s served under `/bulk/{tag}`, compressed (zstd, gzip)
//! when the client takes it, as native frames are; `/frames/{n,…}` (stored bytes, or
//! decompressed to native on request); `/rendered` and `/thumbnail` (JPEG or PNG from our
//! own rendering). Every retrieve is audited per study, as the ZIP download is.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dicom_core::header::{HasLength, Header};
use dicom_core::value::{PrimitiveValue, Value as DicomValue};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemDicomObject;
use pacsbox_archive::InstanceRecord;
use pacsbox_archive::part10::{MetaInfo, encode_header};
use pacsbox_audit::Event;
use pacsbox_imaging::{ImagingError, Instance, can_decompress, decompress_to_native};
use serde_json::{Map, Value, json};

use super::accept::{self, Coding, media_ranges};
use super::{Caller, clipped, error, json as dj, patient_of_study, xml};
use crate::Web;
use crate::auth::random_token;
use crate::reply::{ChunkReader, ChunkWriter, PIPE_CHUNK, Reply, Req, check_uid, chunk_pipe};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
/// Binary values longer than this go out as a `BulkDataURI`, not inline.
const INLINE_BINARY_MAX: usize = 1024;

type Answer = Result<Reply, Reply>;

fn not_found() -> Reply {
    error(404, "no such study, series or instance")
}

fn internal(e: impl std::fmt::Display) -> Reply {
    tracing::error!(error = %e, "DICOMweb retrieve failed");
    error(500, e.to_string())
}

fn uid(s: &str) -> Result<&str, Reply> {
    check_uid(s).map_err(|e| error(400, e.to_string()))
}

/// The instances a path names, in series and instance order; 404 when there are none.
fn select(
    web: &Web,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Vec<(String, InstanceRecord)>, Reply> {
    let index = web.archive.index();
    let found: Vec<(String, InstanceRecord)> = match (series, sop) {
        (_, Some(sop)) => index
            .instance(sop)
            .map_err(internal)?
            .filter(|r| r.study_uid == study && series.is_none_or(|s| r.series_uid == s))
            .map(|r| vec![(sop.to_owned(), r)])
            .unwrap_or_default(),
        (Some(series), None) => index
            .instances_of(series)
            .map_err(internal)?
            .into_iter()
            .filter(|(_, r)| r.study_uid == study)
            .collect(),
        (None, None) => web.archive.study_instances(study).map_err(internal)?,
    };
    if found.is_empty() {
        return Err(not_found());
    }
    Ok(found)
}

/// A viewer reading a study over DICOMweb asks for its metadata, then frame after frame:
/// those are recorded once per user, address, study and kind in this window (as the page's
/// previews and pixels are covered by its one view record); whole-instance retrievals, the
/// DICOM files leaving the box, are recorded every time.
const VIEWING_WINDOW: Duration = Duration::from_secs(10 * 60);

static RECENT_VIEWS: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// Whether a viewing request should be recorded (the first in its window).
fn first_in_window(key: String) -> bool {
    let Ok(mut guard) = RECENT_VIEWS.lock() else {
        return true;
    };
    let seen = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    if seen.len() > 10_000 {
        seen.retain(|_, t| now.duration_since(*t) < VIEWING_WINDOW);
    }
    match seen.get(&key) {
        Some(t) if now.duration_since(*t) < VIEWING_WINDOW => false,
        _ => {
            seen.insert(key, now);
            true
        }
    }
}

fn audit(web: &Web, req: &Req, caller: &Caller, study: &str, what: &str, n: usize) {
    let viewing = what != "WADO-RS" && what != "WADO-URI";
    if viewing && !first_in_window(format!("{}\0{}\0{study}\0{what}", caller.user, req.client)) {
        return;
    }
    web.audit.record(
        Event::new("study.download", &caller.user, &req.client)
            .study(study)
            .patient(patient_of_study(web, study))
            .detail(format!("{what}: {n} instance(s)"))
            .outcome("ok"),
    );
}

pub fn retrieve(web: &Web, req: &Req, caller: &Caller, rest: &[&str]) -> Answer {
    let (study, rest) = match rest {
        ["studies", st, rest @ ..] => (uid(st)?, rest),
        _ => return Err(error(404, "not a DICOMweb resource")),
    };
    let (series, rest) = match rest {
        ["series", se, rest @ ..] => (Some(uid(se)?), rest),
        _ => (None, rest),
    };
    let (sop, rest) = match (series, rest) {
        (Some(_), ["instances", i, rest @ ..]) => (Some(uid(i)?), rest),
        _ => (None, rest),
    };
    // Audited once the answer is made: a request refused (406, 404…) sent nothing to record.
    let (what, n, answer) = match (sop, rest) {
        (_, []) => {
            let set = select(web, study, series, sop)?;
            let n = set.len();
            ("WADO-RS", n, dicom_multipart(web, req, set))
        }
        (_, ["metadata"]) => {
            let set = select(web, study, series, sop)?;
            let n = set.len();
            ("WADO-RS metadata", n, metadata(web, req, set))
        }
        (Some(sop), ["frames", list]) => {
            let set = select(web, study, series, Some(sop))?;
            ("WADO-RS frames", 1, frames(web, req, &set[0], list))
        }
        (Some(sop), ["bulk", tag]) => {
            let set = select(web, study, series, Some(sop))?;
            ("WADO-RS bulk data", 1, bulk(web, req, &set[0], tag))
        }
        (Some(sop), ["rendered"]) | (Some(sop), ["frames", _, "rendered"]) => {
            let frame = match rest {
                ["frames", n, _] => frame_number(n)?,
                _ => 0,
            };
            let set = select(web, study, series, Some(sop))?;
            let max = req.param("viewport").split(',').next().unwrap_or("");
            let max = max.parse().unwrap_or(0u32).min(4096);
            let answer = rendered(web, &req.accept, &set[0].1, frame, max);
            ("WADO-RS rendered", 1, answer)
        }
        (_, ["thumbnail"]) => {
            let set = select(web, study, series, sop)?;
            // The middle image, as the study page's series thumbnails are.
            let pick = &set[set.len() / 2].1;
            (
                "WADO-RS thumbnail",
                1,
                rendered(web, &req.accept, pick, 0, 128),
            )
        }
        _ => return Err(error(404, "not a DICOMweb resource")),
    };
    let reply = answer?;
    audit(web, req, caller, study, what, n);
    Ok(reply)
}

/// The transfer syntaxes a client accepts for parts of type `part`, in its order: `None` for
/// "as stored" (`*`).
fn wanted_syntaxes(accept: &str, part: &str) -> Vec<Option<String>> {
    let ranges = media_ranges(accept);
    if ranges.is_empty() {
        return vec![Some(EXPLICIT_LE.to_owned())];
    }
    let mut out = Vec::new();
    for r in ranges {
        let fits = match r.media.as_str() {
            "*/*" | "multipart/*" => true,
            "multipart/related" => r.param("type").is_none_or(|t| {
                t == "*/*"
                    || t.eq_ignore_ascii_case(part)
                    || t.strip_suffix("/*").is_some_and(|top| {
                        part.split('/')
                            .next()
                            .is_some_and(|p| p.eq_ignore_ascii_case(top))
                    })
            }),
            _ => false,
        };
        if !fits {
            continue;
        }
        out.push(match r.param("transfer-syntax") {
            Some("*") => None,
            Some(ts) => Some(ts.to_owned()),
            None if part == "application/dicom" => Some(EXPLICIT_LE.to_owned()),
            // Frames default to the stored syntax when it is native, else explicit LE.
            None => None,
        });
    }
    out
}

fn is_native(ts: &str) -> bool {
    matches!(ts, IMPLICIT_LE | EXPLICIT_LE | EXPLICIT_BE)
}

/// Whether an instance stored in `stored` can be sent in `want`.
fn deliverable(stored: &str, want: &Option<String>) -> bool {
    match want {
        None => true,
        Some(w) if w == stored => true,
        Some(w) => is_native(w) && (is_native(stored) || can_decompress(stored)),
    }
}

fn not_acceptable(accept: &str) -> Reply {
    error(
        406,
        format!(
            "cannot answer {:?}: this box sends multipart/related with the stored \
             transfer syntax (transfer-syntax=*) or Explicit VR Little Endian",
            clipped(accept)
        ),
    )
}

fn boundary() -> Result<String, Reply> {
    Ok(format!("pacsbox-{}", random_token(16).map_err(internal)?))
}

/// Runs `write` on a thread into a [`chunk_pipe`] the reply reads.
fn spawn_stream(
    name: &str,
    write: impl FnOnce(&mut ChunkWriter) -> anyhow::Result<()> + Send + 'static,
) -> Result<ChunkReader, Reply> {
    let (mut writer, reader) = chunk_pipe();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = write(&mut writer).and_then(|_| Ok(writer.flush()?));
            if let Err(e) = r {
                // Without the closing boundary the client knows the answer is cut short.
                tracing::warn!(error = %e, "DICOMweb answer ended early");
            }
        })
        .map_err(internal)?;
    Ok(reader)
}

/// `std::io::copy` with a buffer as large as a pipe block (it would read 8 KiB at a time).
fn copy_big(from: &mut impl Read, to: &mut dyn Write, buf: &mut [u8]) -> std::io::Result<()> {
    loop {
        match from.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The largest zstd window passed through to a client: RFC 8878 lets an HTTP decoder refuse
/// more (chromium does), and the archive's levels stay within it.
const HTTP_ZSTD_WINDOW: u64 = 8 << 20;
/// Instances whose decoded bytes exceed this are streamed by the writer itself rather than
/// decoded ahead into memory: with up to three held per reading thread and four threads, an
/// answer holds at most 96 MiB, whatever its instances' sizes (the index records the size on
/// disk, which after compaction says little about the decoded size).
const AHEAD_MAX: usize = 8 << 20;
/// Only files this small on disk are transcoded ahead (a decompressed JPEG is many times its
/// file); larger ones are transcoded by the writer, one at a time.
const AHEAD_TRANSCODE_MAX: u64 = 1 << 20;

/// Room for a part read ahead: its size on disk (exact for a plain file, where growing the
/// vector by doubling cost a tenth of the reading threads' time in copies and page faults),
/// one byte more to see the end without growing, at most the cap.
fn ahead_capacity(rec: &InstanceRecord) -> usize {
    usize::try_from(rec.file_size)
        .unwrap_or(AHEAD_MAX)
        .min(AHEAD_MAX)
        + 1
}

/// The client takes `Content-Encoding: zstd` (RFC 8878): named in Accept-Encoding with a
/// non-zero q-value.
fn accepts_zstd(accept_encoding: &str) -> bool {
    accept::coding_q(accept_encoding, "zstd") > 0
}

/// A part's head: the boundary line (after the previous part's CRLF) and its headers.
fn part_head(b: &str, ts: &str) -> String {
    format!("--{b}\r\nContent-Type: application/dicom; transfer-syntax={ts}\r\n\r\n")
}

fn dicom_multipart(web: &Web, req: &Req, set: Vec<(String, InstanceRecord)>) -> Answer {
    let accept = req.accept.as_str();
    let want = wanted_syntaxes(accept, "application/dicom")
        .into_iter()
        .find(|w| set.iter().all(|(_, r)| deliverable(&r.transfer_syntax, w)))
        .ok_or_else(|| not_acceptable(accept))?;
    let b = boundary()?;
    let as_stored = set
        .iter()
        .all(|(_, r)| want.as_ref().is_none_or(|w| *w == r.transfer_syntax));
    let zstd = as_stored && accepts_zstd(&req.accept_encoding);
    let archive = web.archive.clone();
    let b2 = b.clone();
    let body = if zstd {
        spawn_stream("wado-rs", move |out| zstd_parts(&archive, &b2, &set, out))?
    } else {
        spawn_stream("wado-rs", move |out| {
            plain_parts(&archive, &b2, want.as_deref(), &set, out)
        })?
    };
    let reply = Reply::blocks("multipart/related", body)
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={b}"),
        )
        .header("Vary", "Accept-Encoding");
    Ok(if zstd {
        reply.header("Content-Encoding", "zstd")
    } else {
        reply
    })
}

/// How many threads prepare parts ahead of the writer: the cores, at most four, at most one
/// per part.
fn ahead_workers(parts: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(parts.max(1))
}

/// Runs `ahead(i)` for every part on `workers` threads while `write(i, result)` takes the
/// results in order on this one. Worker k prepares parts k, k + workers, …; each hands over
/// through its own one-deep channel, so reading them round-robin gives the parts in order
/// and at most two per worker sit in memory.
fn in_order_ahead<T: Send>(
    parts: usize,
    workers: usize,
    ahead: impl Fn(usize) -> T + Sync,
    mut write: impl FnMut(usize, T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut lanes = Vec::with_capacity(workers);
        for k in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            lanes.push(rx);
            let ahead = &ahead;
            std::thread::Builder::new()
                .name("wado-rs-read".into())
                .spawn_scoped(scope, move || {
                    for i in (k..parts).step_by(workers) {
                        if tx.send(ahead(i)).is_err() {
                            return; // the writer stopped: the client went away
                        }
                    }
                })?;
        }
        for i in 0..parts {
            let got = lanes[i % workers]
                .recv()
                .map_err(|_| anyhow::anyhow!("part {i}: a reading thread stopped"))?;
            write(i, got)?;
        }
        Ok(())
    })
}

/// The zstd level for parts stored plain and compressed on the way out: the fastest.
const ZSTD_ON_THE_WAY: i32 = 1;

/// The multipart body as a series of zstd frames, which a decoder reads as one stream: the
/// archive's compressed files go out as they lie on disk (no decoding here, a quarter to a half
/// of the bytes on the wire); the part heads go in raw zstd blocks (a copy); a file still
/// stored plain (recent studies, `compress_after`) is compressed at the fastest level on the
/// other cores, ahead of this writer. Always: sending plain parts raw when the link looked
/// fast was tried (per part, per 32-part epoch, by the pipe backing up) and measured against
/// this on a 1 GbE link and on loopback, in one session: every variant lost on 1 GbE (125–214
/// MB/s against 412), the appliance's link, while winning only on loopback (bench/README.md
/// "WADO-RS copies").
fn zstd_parts(
    archive: &pacsbox_archive::Archive,
    b: &str,
    set: &[(String, InstanceRecord)],
    out: &mut ChunkWriter,
) -> anyhow::Result<()> {
    /// A part's body as it goes out.
    enum Body {
        /// The stored frame, opened: the writer copies it.
        Stored(std::fs::File),
        /// The plain file compressed here.
        Compressed(Vec<u8>),
        /// Too large to hold: the writer compresses it as it streams.
        Large,
    }
    let ahead = |i: usize| -> anyhow::Result<Body> {
        let (sop, rec) = &set[i];
        let raw = archive
            .open_raw(rec)
            .map_err(|e| anyhow::anyhow!("{sop}: {e}"))?;
        if raw.zstd && raw.zstd_window.is_some_and(|w| w <= HTTP_ZSTD_WINDOW) {
            return Ok(Body::Stored(raw.file));
        }
        let mut v = Vec::with_capacity(ahead_capacity(rec));
        let n = archive
            .open_part10(rec)?
            .take(AHEAD_MAX as u64 + 1)
            .read_to_end(&mut v)?;
        if n > AHEAD_MAX {
            return Ok(Body::Large);
        }
        Ok(Body::Compressed(zstd::bulk::compress(&v, ZSTD_ON_THE_WAY)?))
    };
    let mut buf = vec![0u8; PIPE_CHUNK];
    let mut sep = "";
    in_order_ahead(set.len(), ahead_workers(set.len()), ahead, |i, got| {
        let (sop, rec) = &set[i];
        let head = format!("{sep}{}", part_head(b, &rec.transfer_syntax));
        out.write_all(&zstd_raw_frame(head.as_bytes()))?;
        match got.map_err(|e| anyhow::anyhow!("{sop}: {e}"))? {
            Body::Stored(file) => copy_big(&mut std::io::BufReader::new(file), out, &mut buf)?,
            Body::Compressed(frame) => out.write_owned(frame)?,
            Body::Large => {
                let mut enc = zstd::stream::write::Encoder::new(&mut *out, ZSTD_ON_THE_WAY)?;
                copy_big(&mut archive.open_part10(rec)?, &mut enc, &mut buf)?;
                enc.finish()?;
            }
        }
        sep = "\r\n";
        Ok(())
    })?;
    out.write_all(&zstd_raw_frame(format!("{sep}--{b}--\r\n").as_bytes()))?;
    Ok(())
}

/// Largest block of a zstd frame (RFC 8878 3.1.1.2.3: at most the window, at most 128 KiB).
const ZSTD_BLOCK_MAX: usize = 128 << 10;

/// `data` as one zstd frame of raw (stored) blocks: what a decoder reads as `data`, made by a
/// copy. Its window is 128 KiB, within what every HTTP decoder takes.
fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(ZSTD_BLOCK_MAX).max(1);
    let mut f = Vec::with_capacity(data.len() + 6 + 3 * blocks);
    f.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // Frame header: no content size, not single-segment, no checksum, no dictionary; then
    // the window descriptor 2^(10 + 7) = 128 KiB.
    f.push(0x00);
    f.push(7 << 3);
    let mut chunks = data.chunks(ZSTD_BLOCK_MAX).peekable();
    if chunks.peek().is_none() {
        f.extend_from_slice(&[1, 0, 0]); // one empty last raw block
    }
    while let Some(c) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        // Block header, 3 bytes little-endian: size << 3 | type (0: raw) << 1 | last.
        let header = ((c.len() as u32) << 3) | last;
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.extend_from_slice(c);
    }
    f
}

/// One part's body without content coding: the stored file (zstd undone) or, when `want`
/// names another syntax, the data set decompressed to it under a new File Meta.
fn part_body(
    archive: &pacsbox_archive::Archive,
    want: Option<&str>,
    sop: &str,
    rec: &InstanceRecord,
) -> anyhow::Result<Vec<u8>> {
    let ts = want.unwrap_or(&rec.transfer_syntax);
    let mut v = Vec::with_capacity(usize::try_from(rec.file_size).unwrap_or(0));
    if ts == rec.transfer_syntax {
        archive.open_part10(rec)?.read_to_end(&mut v)?;
    } else {
        let data = decompress_to_native(archive.open_part10(rec)?, ts)
            .map_err(|e| anyhow::anyhow!("{sop}: {e}"))?;
        v = encode_header(&MetaInfo {
            sop_class_uid: rec.sop_class_uid.clone(),
            sop_instance_uid: sop.to_owned(),
            transfer_syntax: ts.to_owned(),
            source_ae: rec.source_ae.clone(),
        })?;
        v.extend_from_slice(&data);
    }
    Ok(v)
}

/// The multipart body without content coding. Undoing zstd (and any decompression asked for)
/// is the costly part on the box's CPU, so it runs ahead on the other cores while this
/// thread writes the parts in order; a very large instance is streamed by this thread alone.
fn plain_parts(
    archive: &pacsbox_archive::Archive,
    b: &str,
    want: Option<&str>,
    set: &[(String, InstanceRecord)],
    out: &mut ChunkWriter,
) -> anyhow::Result<()> {
    let ahead = |i: usize| -> Option<anyhow::Result<Vec<u8>>> {
        let (sop, rec) = &set[i];
        if want.is_some_and(|w| w != rec.transfer_syntax) {
            return (rec.file_size <= AHEAD_TRANSCODE_MAX)
                .then(|| part_body(archive, want, sop, rec));
        }
        // Read at most one byte past the cap: a larger instance is left to the writer.
        let mut v = Vec::with_capacity(ahead_capacity(rec));
        let read = archive
            .open_part10(rec)
            .and_then(|r| r.take(AHEAD_MAX as u64 + 1).read_to_end(&mut v));
        match read {
            Ok(n) if n > AHEAD_MAX => None,
            Ok(_) => Some(Ok(v)),
            Err(e) => Some(Err(anyhow::anyhow!("{sop}: {e}"))),
        }
    };
    let mut buf = vec![0u8; PIPE_CHUNK];
    in_order_ahead(set.len(), ahead_workers(set.len()), ahead, |i, got| {
        let (sop, rec) = &set[i];
        let ts = want.unwrap_or(&rec.transfer_syntax);
        out.write_all(part_head(b, ts).as_bytes())?;
        match got {
            Some(body) => out.write_owned(body?)?,
            None if ts == rec.transfer_syntax => {
                copy_big(&mut archive.open_part10(rec)?, out, &mut buf)?
            }
            None => out.write_owned(part_body(archive, want, sop, rec)?)?,
        }
        out.write_all(b"\r\n")?;
        Ok(())
    })?;
    write!(out, "--{b}--\r\n")?;
    Ok(())
}

fn frame_number(s: &str) -> Result<u32, Reply> {
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n - 1),
        _ => Err(error(400, format!("not a frame number: {s:?}"))),
    }
}

fn read_instance(web: &Web, rec: &InstanceRecord) -> Result<Instance, Reply> {
    let file = web.archive.open_part10(rec).map_err(internal)?;
    Instance::read(file).map_err(imaging_error)
}

fn imaging_error(e: ImagingError) -> Reply {
    match e {
        ImagingError::NoSuchFrame { .. } => error(404, e.to_string()),
        ImagingError::NoPixelData => error(404, e.to_string()),
        ImagingError::Unsupported { .. } => error(406, e.to_string()),
        ImagingError::Corrupt(_) => error(422, e.to_string()),
        ImagingError::Io(_) => internal(e),
    }
}

/// `/frames/1,2,3`: each frame one part, as stored (native frames are native; an
/// encapsulated frame is its compressed bytes, typed by its syntax), or decompressed to
/// Explicit VR Little Endian when that is all the client takes.
fn frames(web: &Web, req: &Req, inst: &(String, InstanceRecord), list: &str) -> Answer {
    let accept = req.accept.as_str();
    let numbers = list
        .split(',')
        .map(|n| frame_number(n.trim()))
        .collect::<Result<Vec<u32>, Reply>>()?;
    if numbers.is_empty() || numbers.len() > 4096 {
        return Err(error(400, "name between 1 and 4096 frames"));
    }
    // Each frame at most once: the answer is then never larger than the instance's pixels
    // (`1,1,1,…` would otherwise make a 4096-fold copy of one frame in memory).
    let mut seen = std::collections::HashSet::with_capacity(numbers.len());
    if let Some(n) = numbers.iter().find(|n| !seen.insert(**n)) {
        return Err(error(400, format!("frame {} named twice", n + 1)));
    }
    let stored = inst.1.transfer_syntax.clone();
    let wants = wanted_syntaxes(accept, "application/octet-stream");
    let mut pick = None;
    for w in &wants {
        match w.as_deref() {
            None => pick = Some(stored.clone()),
            Some(t) if t == stored => pick = Some(stored.clone()),
            Some(t) if is_native(t) && is_native(&stored) => pick = Some(stored.clone()),
            Some(t) if is_native(t) && can_decompress(&stored) => pick = Some(EXPLICIT_LE.into()),
            _ => continue,
        }
        break;
    }
    // Image types (`image/jls`, `image/jpeg`…) for an encapsulated frame: as stored too.
    if pick.is_none()
        && media_ranges(accept).iter().any(|r| {
            r.media == "multipart/related"
                && r.param("type").is_some_and(|t| t.starts_with("image/"))
        })
        && !is_native(&stored)
    {
        pick = Some(stored.clone());
    }
    let ts = pick.ok_or_else(|| not_acceptable(accept))?;
    let instance = if ts == stored {
        read_instance(web, &inst.1)?
    } else {
        let file = web.archive.open_part10(&inst.1).map_err(internal)?;
        let data = decompress_to_native(file, EXPLICIT_LE).map_err(imaging_error)?;
        let mut whole = encode_header(&MetaInfo {
            sop_class_uid: inst.1.sop_class_uid.clone(),
            sop_instance_uid: inst.0.clone(),
            transfer_syntax: EXPLICIT_LE.into(),
            source_ae: inst.1.source_ae.clone(),
        })
        .map_err(internal)?;
        whole.extend_from_slice(&data);
        Instance::read(&whole[..]).map_err(imaging_error)?
    };
    let mut parts = Vec::new();
    for n in numbers {
        parts.push(instance.stored_frame(n).map_err(imaging_error)?);
    }
    let part_type = if is_native(&ts) {
        "application/octet-stream".to_owned()
    } else {
        format!("application/octet-stream; transfer-syntax={ts}")
    };
    let b = boundary()?;
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{b}\r\nContent-Type: {part_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(&p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    // Native pixels shrink (CT to about half with zstd); an encapsulated frame is compressed
    // already and goes as it is.
    let coding = is_native(&ts)
        .then(|| accept::coding(&req.accept_encoding))
        .flatten();
    if let Some(c) = coding {
        body = encode_all(c, Payload::Pixels, &body).map_err(internal)?;
    }
    let reply = Reply::bytes(200, "multipart/related", body).header(
        "Content-Type",
        format!("multipart/related; type=\"application/octet-stream\"; boundary={b}"),
    );
    Ok(with_coding(reply, coding))
}

/// JPEG unless the client prefers PNG (`image/png` in Accept, or `?contentType=`).
fn rendered(web: &Web, accept: &str, rec: &InstanceRecord, frame: u32, max: u32) -> Answer {
    let ranges = media_ranges(accept);
    let png = ranges
        .iter()
        .position(|r| r.media == "image/png")
        .is_some_and(|p| {
            ranges
                .iter()
                .position(|r| r.media == "image/jpeg")
                .is_none_or(|j| p < j)
        });
    if !ranges.is_empty()
        && !ranges.iter().any(|r| {
            matches!(
                r.media.as_str(),
                "image/png" | "image/jpeg" | "image/*" | "*/*"
            )
        })
    {
        return Err(error(406, "rendered images are image/jpeg or image/png"));
    }
    let inst = read_instance(web, rec)?;
    let (ctype, bytes) = if png {
        (
            "image/png",
            inst.preview(frame, max).map_err(imaging_error)?,
        )
    } else {
        (
            "image/jpeg",
            inst.preview_jpeg(frame, max, 90).map_err(imaging_error)?,
        )
    };
    Ok(Reply::bytes(200, ctype, bytes))
}

/// WADO-URI: `/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…&contentType=…`.
pub fn wado_uri(web: &Web, req: &Req, caller: &Caller) -> Answer {
    if req.param("requestType") != "WADO" {
        return Err(error(400, "requestType must be WADO"));
    }
    let (study, series, sop) = (
        uid(req.param("studyUID"))?,
        uid(req.param("seriesUID"))?,
        uid(req.param("objectUID"))?,
    );
    let set = select(web, study, Some(series), Some(sop))?;
    let rec = &set[0].1;
    let reply = wado_uri_answer(web, req, sop, rec)?;
    audit(web, req, caller, study, "WADO-URI", 1);
    Ok(reply)
}

fn wado_uri_answer(web: &Web, req: &Req, sop: &str, rec: &InstanceRecord) -> Answer {
    let content_type = match req.param("contentType") {
        "" => "image/jpeg",
        c => c.split(',').next().unwrap_or("").trim(),
    };
    match content_type {
        "application/dicom" => {
            let want = match req.param("transferSyntax") {
                "" => None,
                ts => Some(ts.to_owned()),
            };
            if !deliverable(&rec.transfer_syntax, &want) {
                return Err(not_acceptable(&format!(
                    "transferSyntax={}",
                    req.param("transferSyntax")
                )));
            }
            let body: Box<dyn Read + Send> = match want {
                Some(ts) if ts != rec.transfer_syntax => {
                    let data =
                        decompress_to_native(web.archive.open_part10(rec).map_err(internal)?, &ts)
                            .map_err(imaging_error)?;
                    let mut whole = encode_header(&MetaInfo {
                        sop_class_uid: rec.sop_class_uid.clone(),
                        sop_instance_uid: sop.to_owned(),
                        transfer_syntax: ts,
                        source_ae: rec.source_ae.clone(),
                    })
                    .map_err(internal)?;
                    whole.extend_from_slice(&data);
                    Box::new(std::io::Cursor::new(whole))
                }
                _ => web.archive.open_part10(rec).map_err(internal)?,
            };
            Ok(Reply::stream("application/dicom", body))
        }
        "image/jpeg" | "image/png" => {
            let frame = match req.param("frameNumber") {
                "" => 0,
                n => frame_number(n)?,
            };
            let max = req.param("rows").parse().unwrap_or(0u32).min(4096);
            rendered(web, content_type, rec, frame, max)
        }
        other => Err(error(406, format!("contentType {other:?} is not offered"))),
    }
}

/// `/metadata`: a JSON array, one object per instance, read up to its Pixel Data (which,
/// like long binary values, becomes a `BulkDataURI`); or the same objects as DICOM XML, one
/// part each, when the client asks for that. Compressed with zstd or gzip when the client
/// takes either: a series' metadata is megabytes of repetitive text.
fn metadata(web: &Web, req: &Req, set: Vec<(String, InstanceRecord)>) -> Answer {
    let format = accept::format(&req.accept).ok_or_else(|| {
        error(
            406,
            format!(
                "cannot answer {:?}: metadata is application/dicom+json or \
                 multipart/related; type=\"application/dicom+xml\"",
                clipped(&req.accept)
            ),
        )
    })?;
    let coding = accept::coding(&req.accept_encoding);
    let archive = web.archive.clone();
    let mut list = xml::ListWriter::new(format, boundary()?);
    let content_type = list.content_type();
    let body = spawn_stream("wado-metadata", move |out| {
        encoded(coding, Payload::Text, out, |out| {
            list.begin(out)?;
            for (sop, rec) in &set {
                list.item(&instance_json(&archive, sop, rec)?, out)?;
            }
            list.end(out)?;
            Ok(())
        })
    })?;
    let reply = Reply::blocks("multipart/related", body).header("Content-Type", content_type);
    Ok(with_coding(reply, coding))
}

/// `Content-Encoding` for `coding` and the `Vary` every negotiated answer needs (a cache must
/// not hand a compressed answer to a client that did not ask for one).
pub(super) fn with_coding(reply: Reply, coding: Option<Coding>) -> Reply {
    let reply = reply.header("Vary", "Accept-Encoding");
    match coding {
        Some(c) => reply.header("Content-Encoding", c.name()),
        None => reply,
    }
}

/// What is being compressed: it sets gzip's level.
#[derive(Clone, Copy)]
pub(super) enum Payload {
    /// Metadata: the same attributes instance after instance. Deflate's lazy matching (level
    /// 6) finds them, a fifth of level 1's size for the same time (bench/README.md).
    Text,
    /// Native pixels: past level 3 deflate gains a few percent for three times the CPU.
    Pixels,
}

/// Runs `write` into `out` through the encoder of `coding` (none: straight through), with a
/// 64 KiB buffer in front: serde writes a few bytes at a time, and an encoder called that
/// often spends its time in the calls (gzip took three times as long). zstd at level 3 (its
/// window, 2 MiB at most, within what HTTP decoders take; it finds the repeats gzip's 32 KiB
/// window cannot).
pub(super) fn encoded(
    coding: Option<Coding>,
    payload: Payload,
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    fn buffered<W: Write>(
        enc: W,
        write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
    ) -> anyhow::Result<W> {
        let mut buf = std::io::BufWriter::with_capacity(64 << 10, enc);
        write(&mut buf)?;
        buf.into_inner()
            .map_err(|e| anyhow::anyhow!("compressing: {}", e.error()))
    }
    match coding {
        None => write(out),
        Some(Coding::Zstd) => {
            buffered(zstd::stream::write::Encoder::new(out, 3)?, write)?.finish()?;
            Ok(())
        }
        Some(Coding::Gzip) => {
            let level = match payload {
                Payload::Text => flate2::Compression::default(),
                Payload::Pixels => flate2::Compression::new(3),
            };
            buffered(flate2::write::GzEncoder::new(out, level), write)?.finish()?;
            Ok(())
        }
    }
}

/// One instance's metadata as a DICOM JSON object.
fn instance_json(
    archive: &pacsbox_archive::Archive,
    sop: &str,
    rec: &InstanceRecord,
) -> anyhow::Result<Map<String, Value>> {
    let file = archive.open_part10(rec)?;
    let obj = dicom_object::OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(file)
        .map_err(|e| anyhow::anyhow!("{sop}: {e}"))?;
    let base = format!(
        "/dicom-web/studies/{}/series/{}/instances/{sop}",
        rec.study_uid, rec.series_uid
    );
    let mut json = dataset_json(&obj, &base);
    // Text as this box decoded it (its charset decoder knows ISO 2022 Korean), in the
    // UTF-8 that JSON is.
    json.insert(
        "00080005".into(),
        json!({"vr": "CS", "Value": ["ISO_IR 192"]}),
    );
    if !rec.patient_name.is_empty() {
        json.insert("00100010".into(), dj::attribute(b"PN", &rec.patient_name));
    }
    if obj.get(tags::ROWS).is_some() {
        json.insert(
            "7FE00010".into(),
            json!({"vr": if is_native(&rec.transfer_syntax) { "OW" } else { "OB" },
                   "BulkDataURI": format!("{base}/bulk/7FE00010")}),
        );
    }
    Ok(json)
}

fn dataset_json(obj: &InMemDicomObject, base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for e in obj.iter() {
        let tag = e.tag();
        if tag.group() == 0x0002 || tag == tags::PIXEL_DATA {
            continue;
        }
        let key = dj::key((tag.group(), tag.element()));
        let vr = e.vr();
        let vr_s = vr.to_string();
        let mut o = Map::new();
        o.insert("vr".into(), Value::String(vr_s.to_owned()));
        match e.value() {
            DicomValue::Sequence(seq) => {
                let items: Vec<Value> = seq
                    .items()
                    .iter()
                    .map(|item| Value::Object(dataset_json(item, base)))
                    .collect();
                if !items.is_empty() {
                    o.insert("Value".into(), Value::Array(items));
                }
            }
            DicomValue::PixelSequence(_) => {
                o.insert(
                    "BulkDataURI".into(),
                    Value::String(format!("{base}/bulk/{key}")),
                );
            }
            DicomValue::Primitive(p) => primitive(&mut o, vr, p, &format!("{base}/bulk/{key}")),
        }
        map.insert(key, Value::Object(o));
    }
    map
}

fn primitive(o: &mut Map<String, Value>, vr: VR, p: &PrimitiveValue, bulk: &str) {
    if p.is_empty() {
        return;
    }
    let values: Vec<Value> = match vr {
        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN => {
            let bytes = p.to_bytes();
            if bytes.len() > INLINE_BINARY_MAX {
                o.insert("BulkDataURI".into(), Value::String(bulk.to_owned()));
            } else {
                o.insert("InlineBinary".into(), Value::String(base64(&bytes)));
            }
            return;
        }
        VR::PN => p
            .to_multi_str()
            .iter()
            .map(|s| dj::person_name(s.trim()))
            .collect(),
        VR::IS | VR::SL | VR::SS | VR::UL | VR::US | VR::SV | VR::UV => {
            match p.to_multi_int::<i64>() {
                Ok(v) => v.into_iter().map(|n| json!(n)).collect(),
                Err(_) => strings(p),
            }
        }
        VR::DS | VR::FL | VR::FD => match p.to_multi_float64() {
            Ok(v) => v
                .into_iter()
                .map(|n| if n.is_finite() { json!(n) } else { Value::Null })
                .collect(),
            Err(_) => strings(p),
        },
        VR::AT => match p {
            PrimitiveValue::Tags(t) => t
                .iter()
                .map(|t: &Tag| Value::String(dj::key((t.group(), t.element()))))
                .collect(),
            _ => strings(p),
        },
        _ => strings(p),
    };
    if !values.is_empty() {
        o.insert("Value".into(), Value::Array(values));
    }
}

fn strings(p: &PrimitiveValue) -> Vec<Value> {
    p.to_multi_str()
        .iter()
        .map(|s| {
            let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s.to_owned())
            }
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(char::from(A[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `/bulk/{tag}`: a top-level binary value (Pixel Data: the whole value, native bytes or
/// the fragments one after another) as one `application/octet-stream` part, compressed
/// (zstd, gzip) when the client takes it and the value is not compressed already (native
/// pixels, curves, overlays; encapsulated Pixel Data goes as it is).
fn bulk(web: &Web, req: &Req, inst: &(String, InstanceRecord), tag: &str) -> Answer {
    let parsed = (tag.len() == 8)
        .then(|| {
            Some(Tag(
                u16::from_str_radix(&tag[..4], 16).ok()?,
                u16::from_str_radix(&tag[4..], 16).ok()?,
            ))
        })
        .flatten()
        .ok_or_else(|| error(400, format!("not a tag: {tag:?}")))?;
    let file = web.archive.open_part10(&inst.1).map_err(internal)?;
    let obj: DefaultDicomObject = dicom_object::OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(file)
        .map_err(|e| error(422, format!("{}: {e}", inst.0)))?;
    let e = obj.get(parsed).ok_or_else(not_found)?;
    let (bytes, packed): (Vec<u8>, bool) = match e.value() {
        DicomValue::Primitive(p) => (p.to_bytes().into_owned(), false),
        DicomValue::PixelSequence(s) => (s.fragments().concat(), true),
        DicomValue::Sequence(_) => return Err(error(400, "a sequence is not bulk data")),
    };
    let b = boundary()?;
    let mut body = format!("--{b}\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let coding = (!packed)
        .then(|| accept::coding(&req.accept_encoding))
        .flatten();
    if let Some(c) = coding {
        body = encode_all(c, Payload::Pixels, &body).map_err(internal)?;
    }
    let reply = Reply::bytes(200, "multipart/related", body).header(
        "Content-Type",
        format!("multipart/related; type=\"application/octet-stream\"; boundary={b}"),
    );
    Ok(with_coding(reply, coding))
}

/// `body` compressed whole with `coding`.
pub(super) fn encode_all(coding: Coding, payload: Payload, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut packed = Vec::with_capacity(body.len() / 2);
    encoded(Some(coding), payload, &mut packed, |out| {
        Ok(out.write_all(body)?)
    })?;
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert_eq!(
            wanted_syntaxes(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
                "application/dicom"
            ),
            [None]
        );
        assert_eq!(
            wanted_syntaxes("", "application/dicom"),
            [Some(EXPLICIT_LE.to_owned())]
        );
        assert_eq!(
            wanted_syntaxes(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50, multipart/related; type=\"application/dicom\"",
                "application/dicom"
            ),
            [
                Some("1.2.840.10008.1.2.4.50".to_owned()),
                Some(EXPLICIT_LE.to_owned())
            ]
        );
        assert!(wanted_syntaxes("application/json", "application/dicom").is_empty());
        assert_eq!(
            wanted_syntaxes(
                "multipart/related; type=\"*/*\"",
                "application/octet-stream"
            ),
            [None]
        );
        assert!(deliverable("1.2.840.10008.1.2", &Some(EXPLICIT_LE.into())));
        assert!(!deliverable(
            EXPLICIT_LE,
            &Some("1.2.840.10008.1.2.4.50".into())
        ));
    }

    #[test]
    fn zstd_is_taken_only_when_named_with_a_nonzero_q() {
        assert!(accepts_zstd("gzip, deflate, br, zstd"));
        assert!(accepts_zstd("ZSTD;q=0.5"));
        assert!(!accepts_zstd(""));
        assert!(!accepts_zstd("*"));
        assert!(!accepts_zstd("gzip, zstd;q=0"));
        assert!(!accepts_zstd("zstd;q=0.0, gzip"));
        assert!(!accepts_zstd("x-zstd"));
    }

    #[test]
    fn raw_zstd_frames_decode_to_their_data() {
        for n in [
            0,
            1,
            ZSTD_BLOCK_MAX - 1,
            ZSTD_BLOCK_MAX,
            ZSTD_BLOCK_MAX + 1,
            3 * ZSTD_BLOCK_MAX + 77,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut two = zstd_raw_frame(&data);
            two.extend_from_slice(&zstd_raw_frame(b"next"));
            let got = zstd::stream::decode_all(&two[..]).expect("a valid zstd stream");
            assert_eq!(got.len(), n + 4, "{n}");
            assert_eq!(&got[..n], &data[..], "{n}");
            assert_eq!(&got[n..], b"next");
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
