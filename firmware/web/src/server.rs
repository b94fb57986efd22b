//! The worker pool around tiny_http, and the limits it lacks.
//!
//! Requests arrive complete (the guard in front has read head and body), but nothing here
//! relies on it: request bodies (only small forms exist) are capped and read on a bounded set
//! of short-lived threads, and responses larger than a socket buffer are written by a bounded
//! set of sender threads, so a client that stops reading holds one of those, not a worker.
//! When a bound is reached the request gets 503 at once.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::Web;
use crate::reply::{Body, Reply, Req, is_cross_site, parse_cookies, parse_pairs};

/// Forms are a few fields; nothing legitimate comes near this.
pub const MAX_BODY: usize = 16 << 10;
/// The one request whose body is not a form: a media ZIP (`pages/import.rs`), streamed by the
/// guard and written to disk here, never held in memory.
pub const UPLOAD_PATH: &str = "/admin/import/upload";
/// A DVD's worth.
pub const MAX_UPLOAD: usize = 5 << 30;
const MAX_BODY_READERS: usize = 16;
const MAX_SENDERS: usize = 16;
/// Bigger replies go to a sender thread (about a loopback socket buffer).
const INLINE_REPLY: usize = 128 << 10;

struct Limits {
    body_readers: Arc<AtomicUsize>,
    senders: Arc<AtomicUsize>,
}

/// A place in a bounded set of threads, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        let mut n = counter.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return None;
            }
            match counter.compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Slot(counter.clone())),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Starts the workers; they run until `server.unblock()` has been called once per worker.
pub fn serve(
    server: Arc<tiny_http::Server>,
    web: Arc<Web>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let limits = Arc::new(Limits {
        body_readers: Arc::new(AtomicUsize::new(0)),
        senders: Arc::new(AtomicUsize::new(0)),
    });
    start_warming(web.clone())?;
    (0..web.config.workers.max(1))
        .map(|i| {
            let server = server.clone();
            let web = web.clone();
            let limits = limits.clone();
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    while let Ok(req) = server.recv() {
                        dispatch(req, &web, &limits);
                    }
                })
        })
        .collect()
}

/// One low-key thread that decodes newly received compressed or large images ahead of the viewer
/// (`pixels::warm`); every two seconds it looks at what arrived.
fn start_warming(web: Arc<Web>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("pixels-warm".into())
        .spawn(move || {
            let mut seen = std::collections::HashMap::new();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(2));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                crate::pixels::warm(&web, &mut seen, now);
            }
        })
        .map(|_| ())
}

fn dispatch(req: Request, web: &Arc<Web>, limits: &Arc<Limits>) {
    let mut parsed = head(&req);
    let has_body = matches!(req.method(), Method::Post | Method::Put | Method::Patch);
    if !has_body {
        let reply = crate::routes::route(web, &parsed);
        send(req, reply, limits);
        return;
    }
    if parsed.path == UPLOAD_PATH && req.method() == &Method::Post {
        upload(req, parsed, web, limits);
        return;
    }
    let stow = crate::dicomweb::is_upload(&parsed);
    if !stow && req.body_length().is_some_and(|n| n > MAX_BODY) {
        send(req, Reply::text(413, "request body too large"), limits);
        return;
    }
    let Some(slot) = Slot::take(&limits.body_readers, MAX_BODY_READERS) else {
        send(req, Reply::text(503, "busy, try again"), limits);
        return;
    };
    if stow {
        // STOW-RS: the body streams into the archive part by part, never held whole.
        let (web, limits) = (web.clone(), limits.clone());
        let spawned = std::thread::Builder::new()
            .name("http-stow".into())
            .spawn(move || {
                let _slot = slot;
                let mut req = req;
                let reply = crate::dicomweb::stow(&web, &parsed, req.as_reader());
                send(req, reply, &limits);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread for an upload");
        }
        return;
    }
    let (web, limits) = (web.clone(), limits.clone());
    let spawned = std::thread::Builder::new()
        .name("http-form".into())
        .spawn(move || {
            let _slot = slot;
            let mut req = req;
            let mut body = Vec::new();
            let read = req
                .as_reader()
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut body);
            let reply = match read {
                Err(e) => Reply::text(400, format!("reading request body: {e}")),
                Ok(_) if body.len() > MAX_BODY => Reply::text(413, "request body too large"),
                Ok(_) => {
                    parsed.form = parse_pairs(&String::from_utf8_lossy(&body));
                    crate::routes::route(&web, &parsed)
                }
            };
            send(req, reply, &limits);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread for a form");
    }
}

/// A media upload on a body reader's thread: `import_upload` checks the session before it
/// reads the body.
fn upload(req: Request, mut parsed: Req, web: &Arc<Web>, limits: &Arc<Limits>) {
    let Some(slot) = Slot::take(&limits.body_readers, MAX_BODY_READERS) else {
        send(req, Reply::text(503, "busy, try again"), limits);
        return;
    };
    if let Some(h) = req.headers().iter().find(|h| h.field.equiv("X-CSRF-Token")) {
        parsed
            .form
            .insert("csrf".into(), h.value.as_str().to_owned());
    }
    let (web, limits) = (web.clone(), limits.clone());
    let spawned = std::thread::Builder::new()
        .name("http-upload".into())
        .spawn(move || {
            let _slot = slot;
            let mut req = req;
            let reply = crate::pages::import_upload(&web, &parsed, req.as_reader());
            send(req, reply, &limits);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread for an upload");
    }
}

/// Method, path, query and cookies of a request.
fn head(req: &Request) -> Req {
    let url = req.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let header = |name: &'static str| {
        req.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_owned())
            .unwrap_or_default()
    };
    Req {
        method: req.method().as_str().to_ascii_uppercase(),
        path: path.to_owned(),
        query: parse_pairs(query),
        cookies: parse_cookies(&header("Cookie")),
        form: Default::default(),
        accepts_gzip: header("Accept-Encoding").contains("gzip"),
        client: header(crate::guard::CLIENT_HEADER),
        https: header(crate::guard::HTTPS_HEADER) == "1",
        cross_site: is_cross_site(
            &header("Host"),
            &header("Origin"),
            &header("Sec-Fetch-Site"),
        ),
        raw_query: query.to_owned(),
        authorization: header("Authorization"),
        accept: header("Accept"),
        accept_encoding: header("Accept-Encoding"),
        origin: header("Origin"),
        content_type: header("Content-Type"),
        csrf_header: header("X-CSRF-Token"),
        accept_language: header("Accept-Language"),
    }
}

fn send(req: Request, reply: Reply, limits: &Arc<Limits>) {
    if reply.len_hint() <= INLINE_REPLY {
        respond(req, reply);
        return;
    }
    let Some(slot) = Slot::take(&limits.senders, MAX_SENDERS) else {
        respond(
            req,
            Reply::text(503, "too many downloads at once, try again"),
        );
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("http-send".into())
        .spawn(move || {
            let _slot = slot;
            respond(req, reply);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread for a download");
    }
}

/// Largest chunk of a streamed body (a [`crate::reply::chunk_pipe`] block), and the buffer
/// it is written through.
const STREAM_CHUNK: usize = crate::reply::PIPE_CHUNK;

/// A body of unknown length (WADO-RS studies, QIDO-RS, ZIPs) as HTTP/1.1 chunked transfer
/// coding written here rather than by tiny_http, which frames it in 8 KiB chunks read 8 KiB
/// at a time through a 1 KiB socket buffer: two to three system calls per 8 KiB, a limit of
/// a 265 MB WADO-RS study (bench/README.md, DICOMweb). Here a chunk is what one read of the
/// body gives (up to 256 KiB) and the socket gets writes that large. The guard in front forces
/// `Connection: close` (and adds it to the answer); an HTTP/1.0 client gets the body as is,
/// ended by the close, as tiny_http does.
/// Where a streamed body's chunks come from: a reader (read into a buffer kept here) or a
/// pipe's blocks (each written as it is, the last one kept).
enum Source {
    Read(Box<dyn Read + Send>, Vec<u8>),
    Blocks(crate::reply::ChunkReader, Vec<u8>),
}

impl Source {
    /// The next chunk; empty at the end.
    fn next(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Source::Read(r, buf) => {
                if buf.is_empty() {
                    buf.resize(STREAM_CHUNK, 0);
                }
                loop {
                    match r.read(buf) {
                        Ok(n) => return Ok(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Source::Blocks(r, last) => {
                // An empty block is not the end: only the closed pipe is.
                loop {
                    match r.next_block() {
                        Some(b) if b.is_empty() => {}
                        Some(b) => {
                            *last = b;
                            return Ok(last);
                        }
                        None => return Ok(&[]),
                    }
                }
            }
        }
    }
}

fn respond_stream(
    req: Request,
    status: StatusCode,
    headers: &[Header],
    mut body: Source,
) -> std::io::Result<()> {
    let head_only = *req.method() == Method::Head;
    let v = req.http_version();
    let chunked = (v.0, v.1) >= (1, 1);
    let mut out = std::io::BufWriter::with_capacity(STREAM_CHUNK, req.into_writer());
    write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.0,
        status.default_reason_phrase()
    )?;
    // tiny_http dates the answers it writes itself; this head is ours (the httpdate crate here
    // is our patched one, total over every clock value).
    write!(
        out,
        "Date: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    )?;
    for h in headers {
        write!(out, "{h}\r\n")?;
    }
    if chunked {
        out.write_all(b"Transfer-Encoding: chunked\r\n")?;
    }
    // The guard adds `Connection: close` to every answer on its way out.
    out.write_all(b"\r\n")?;
    if !head_only {
        loop {
            let chunk = body.next()?;
            if chunk.is_empty() {
                break;
            }
            if chunked {
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(chunk)?;
                out.write_all(b"\r\n")?;
            } else {
                out.write_all(chunk)?;
            }
        }
        if chunked {
            out.write_all(b"0\r\n\r\n")?;
        }
    }
    out.flush()
}

fn respond(req: Request, reply: Reply) {
    // A multipart answer names its boundary in its own Content-Type.
    let own_type = reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Content-Type"));
    // OHIF (`ohif.rs`) brings its own policy; every other page gets ours.
    let own_csp = reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Content-Security-Policy"));
    let own_frame = reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("X-Frame-Options"));
    let mut headers = vec![
        (!own_type)
            .then(|| Header::from_bytes("Content-Type", reply.content_type).ok())
            .flatten(),
        Header::from_bytes("X-Content-Type-Options", "nosniff").ok(),
        // A page that may be framed (the viewer's second pane, same origin) says so itself.
        (!own_frame)
            .then(|| Header::from_bytes("X-Frame-Options", "DENY").ok())
            .flatten(),
        Header::from_bytes("Referrer-Policy", "same-origin").ok(),
        (!own_csp)
            .then(|| {
                Header::from_bytes(
                    "Content-Security-Policy",
                    "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; form-action 'self'",
                )
                .ok()
            })
            .flatten(),
    ];
    let mut has_cache_control = false;
    for (k, v) in &reply.headers {
        has_cache_control |= k.eq_ignore_ascii_case("Cache-Control");
        headers.push(Header::from_bytes(k.as_bytes(), v.as_bytes()).ok());
    }
    if !has_cache_control {
        headers.push(Header::from_bytes("Cache-Control", "no-store").ok());
    }
    let headers: Vec<Header> = headers.into_iter().flatten().collect();
    let status = StatusCode(reply.status);
    let result = match reply.body {
        Body::Bytes(b) => {
            let len = b.len();
            req.respond(Response::new(
                status,
                headers,
                std::io::Cursor::new(b),
                Some(len),
                None,
            ))
        }
        Body::Stream(r) => respond_stream(req, status, &headers, Source::Read(r, Vec::new())),
        Body::Blocks(r) => respond_stream(req, status, &headers, Source::Blocks(r, Vec::new())),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP client went away");
    }
}
