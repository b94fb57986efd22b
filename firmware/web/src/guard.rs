//! The connection guard in front of tiny_http.
//!
//! Measured with tiny_http 0.12 alone: once five connections sit on an unfinished request
//! head, every second new connection waits forever (its connection-thread pool hands the new
//! connection to a thread that is not free), and its accept thread exits for good on the first
//! accept error, such as "too many open files". So clients never talk to tiny_http directly:
//! this guard accepts them, reads each request head under a deadline and a size cap, and only
//! then hands a complete request (forced to `Connection: close`) to tiny_http over loopback.
//! Idle and byte-at-a-time clients therefore cost one guard thread each for at most the
//! request deadline (head and form body together: a client trickling a body one byte at a time
//! is as stalled as one trickling its head), and when the connection cap is reached the
//! longest-stalled of them is dropped to make room, so a crowd of them cannot lock staff out.
//!
//! Two requests may carry a large body: a STOW-RS upload (`POST /dicom-web/studies…`), with a
//! length up to `max_upload` or chunked (followed chunk by chunk and stopped at the cap), and
//! a media ZIP (`POST /admin/import/upload`, a length up to 5 GiB). Their bodies are passed
//! through as they arrive, each read under the I/O timeout, never held whole.
//!
//! Answers go back as they come; to a plain-HTTP client, past the head, by splice(2), the
//! kernel moving the pages (a 265 MB WADO-RS study was a sixth of the box's CPU in this copy).
//!
//! The guard is also the only part that sees the client's address: it passes it on in
//! [`CLIENT_HEADER`] (dropping any such header the client sent) for lockouts, session lists and
//! the audit trail.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::server::{MAX_BODY, MAX_UPLOAD, UPLOAD_PATH};

#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// Connections held at once (each is one thread).
    pub max_connections: usize,
    /// A client has this long to send its whole request: head and (form) body.
    pub request_timeout: Duration,
    /// Longest silence while a body or a response is moving.
    pub io_timeout: Duration,
    /// Largest STOW-RS upload (`POST /dicom-web/studies…`), streamed through rather than held;
    /// larger ones get 413 before a byte of the body is read.
    pub max_upload: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_connections: 512,
            request_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(60),
            max_upload: DEFAULT_MAX_UPLOAD,
        }
    }
}

const MAX_HEAD: usize = 16 << 10;
/// 2 GiB: a large CT or MR study in one request.
pub const DEFAULT_MAX_UPLOAD: u64 = 2 << 30;

/// The request header that carries the client's IP address to the handlers.
pub const CLIENT_HEADER: &str = "X-Pacsbox-Client";
/// Set (to `1`) on requests that came over HTTPS.
pub const HTTPS_HEADER: &str = "X-Pacsbox-Https";

/// How a listener's clients talk to the page.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP, every page (HTTPS switched off).
    Plain,
    /// Plain HTTP that sends browsers to HTTPS on `port`; only the status documents scripts
    /// poll (`/status.json`, `/status.txt`) are answered here.
    RedirectToHttps { port: u16 },
    /// HTTPS with this certificate.
    Tls(Arc<rustls::ServerConfig>),
}

/// A client's connection, plain or TLS. Deadlines are set on the socket underneath.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }

    /// Ends our side: TLS says close_notify first, so the client knows the answer is whole.
    fn finish(&mut self) {
        if let Conn::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.flush();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// Connections still sending their request (head or body), by id: the ones that may be
/// dropped.
#[derive(Default)]
struct Registry {
    next_id: u64,
    live: usize,
    sending: HashMap<u64, (Instant, TcpStream)>,
}

/// Accepts on `public` and forwards complete requests to `upstream` (tiny_http).
pub fn start(
    public: TcpListener,
    upstream: SocketAddr,
    config: GuardConfig,
    transport: Transport,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let registry = Arc::new(Mutex::new(Registry::default()));
    std::thread::Builder::new()
        .name("http-guard".into())
        .spawn(move || {
            for conn in public.incoming() {
                match conn {
                    Ok(client) => admit(client, upstream, &config, &transport, &registry),
                    Err(e) => {
                        // EMFILE and friends pass; never stop accepting.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
}

fn admit(
    client: TcpStream,
    upstream: SocketAddr,
    config: &GuardConfig,
    transport: &Transport,
    registry: &Arc<Mutex<Registry>>,
) {
    let _ = client.set_nodelay(true);
    let id = {
        let Ok(mut reg) = registry.lock() else {
            return;
        };
        if reg.live >= config.max_connections {
            // Make room by dropping whoever has been stalling on a request longest.
            let oldest = reg
                .sending
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(id, _)| *id);
            match oldest.and_then(|id| reg.sending.remove(&id)) {
                Some((_, stalled)) => {
                    let _ = stalled.shutdown(Shutdown::Both);
                }
                None => {
                    drop(reg);
                    let _ = (&client).write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
            }
        }
        reg.next_id += 1;
        let id = reg.next_id;
        reg.live += 1;
        if let Ok(c) = client.try_clone() {
            reg.sending.insert(id, (Instant::now(), c));
        }
        id
    };
    let registry2 = registry.clone();
    let config = config.clone();
    let transport = transport.clone();
    let spawned = std::thread::Builder::new()
        .name("http-conn".into())
        // TLS state and the handshake want more than a plain copy loop.
        .stack_size(512 << 10)
        .spawn(move || {
            let conn = match &transport {
                Transport::Tls(tls) => match rustls::ServerConnection::new(tls.clone()) {
                    Ok(c) => Conn::Tls(Box::new(rustls::StreamOwned::new(c, client))),
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS session not created");
                        return;
                    }
                },
                _ => Conn::Plain(client),
            };
            if let Err(e) = forward(conn, id, upstream, &config, &transport, &registry2) {
                tracing::debug!(error = %e, "HTTP connection closed");
            }
            if let Ok(mut reg) = registry2.lock() {
                reg.sending.remove(&id);
                reg.live -= 1;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for an HTTP connection");
        if let Ok(mut reg) = registry.lock() {
            reg.sending.remove(&id);
            reg.live -= 1;
        }
    }
}

/// Answers and closes without the request going further, saying why in the JSON error body
/// DICOMweb's errors have (`{"errorMessage": …}`), which a script shows and a browser displays
/// as text. Unread request bytes would make the close a reset that can destroy the answer in
/// flight, so a little is read and dropped first.
fn reply(client: &mut Conn, status: &str) -> std::io::Result<()> {
    let why = match status.split(' ').next() {
        Some("431") => format!("{status}: the request head (URL and headers) is over 16 KiB"),
        _ => status.to_owned(),
    };
    let body = serde_json::json!({ "errorMessage": why }).to_string();
    reply_body(
        client,
        status,
        "Content-Type: application/json\r\n",
        body.as_bytes(),
    )
}

/// An empty answer with extra header lines (each ending in CRLF).
fn reply_with(client: &mut Conn, status: &str, headers: &str) -> std::io::Result<()> {
    reply_body(client, status, headers, b"")
}

fn reply_body(client: &mut Conn, status: &str, headers: &str, body: &[u8]) -> std::io::Result<()> {
    let len = body.len();
    client.write_all(
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    client.write_all(body)?;
    client.finish();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 8192];
    let mut left = 1usize << 20;
    while left > 0 && Instant::now() < deadline {
        client
            .tcp()
            .set_read_timeout(Some(Duration::from_millis(200)))?;
        match client.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

fn forward(
    mut client: Conn,
    id: u64,
    upstream: SocketAddr,
    config: &GuardConfig,
    transport: &Transport,
    registry: &Mutex<Registry>,
) -> std::io::Result<()> {
    // 1. The request head, whole, before the deadline.
    let started = Instant::now();
    let left = || config.request_timeout.saturating_sub(started.elapsed());
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return reply(&mut client, "431 Request Header Fields Too Large");
        }
        match read_before(&mut client, &mut chunk, left())? {
            Some(0) => return Ok(()),
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => return reply(&mut client, "408 Request Timeout"),
        }
    };
    let (rewritten, body_len) = match rewrite_head_with(&buf[..head_end], config.max_upload) {
        Ok(head) => head,
        Err(status) => return reply(&mut client, status),
    };
    if let Transport::RedirectToHttps { port } = transport
        && let Some(location) = https_location(&rewritten, client.tcp(), *port)
    {
        return reply_with(
            &mut client,
            "308 Permanent Redirect",
            &format!("Location: {location}\r\n"),
        );
    }

    if body_len > MAX_BODY as u64 {
        // An upload (STOW-RS or a media ZIP, the only bodies allowed past MAX_BODY): streamed
        // through.
        return forward_upload(
            client,
            &buf[head_end..],
            body_len,
            &rewritten,
            upstream,
            config,
            transport,
            id,
            registry,
        );
    }
    let body_len = body_len as usize;
    // 2. The body (small, bounded) under the same deadline, then the complete request to
    // tiny_http. Until then the client stays evictable.
    let mut body = buf[head_end..].to_vec();
    body.truncate(body_len);
    while body.len() < body_len {
        match read_before(&mut client, &mut chunk, left())? {
            Some(0) => return Ok(()),
            Some(n) => {
                let want = (body_len - body.len()).min(n);
                body.extend_from_slice(&chunk[..want]);
            }
            None => return reply(&mut client, "408 Request Timeout"),
        }
    }
    if let Ok(mut reg) = registry.lock() {
        reg.sending.remove(&id);
    }
    let mut up = connect_upstream(&client, &rewritten, upstream, config, transport)?;
    up.write_all(&body)?;
    respond_back(client, up, config)
}

/// Opens the loopback connection to tiny_http and sends the request head with the guard's
/// own headers (the client's address, HTTPS).
fn connect_upstream(
    client: &Conn,
    rewritten: &str,
    upstream: SocketAddr,
    config: &GuardConfig,
    transport: &Transport,
) -> std::io::Result<TcpStream> {
    let ip = client
        .tcp()
        .peer_addr()
        .map(|a| a.ip().to_canonical().to_string())
        .unwrap_or_default();
    let https = if matches!(transport, Transport::Tls(_)) {
        format!("{HTTPS_HEADER}: 1\r\n")
    } else {
        String::new()
    };
    // `rewritten` ends with its blank line; our headers go just before it.
    let head = format!(
        "{}\r\n{CLIENT_HEADER}: {ip}\r\n{https}\r\n",
        rewritten.trim_end_matches("\r\n")
    );
    client.tcp().set_read_timeout(Some(config.io_timeout))?;
    let mut up = TcpStream::connect(upstream)?;
    up.set_nodelay(true)?;
    up.write_all(head.as_bytes())?;
    Ok(up)
}

/// A STOW-RS body: copied to tiny_http as it arrives, each read under the I/O timeout (a
/// 2 GB upload cannot meet the request deadline), never held whole. The client stays
/// evictable at the connection cap until the last byte is through.
#[allow(clippy::too_many_arguments)]
fn forward_upload(
    mut client: Conn,
    already: &[u8],
    body_len: u64,
    rewritten: &str,
    upstream: SocketAddr,
    config: &GuardConfig,
    transport: &Transport,
    id: u64,
    registry: &Mutex<Registry>,
) -> std::io::Result<()> {
    let mut up = connect_upstream(&client, rewritten, upstream, config, transport)?;
    if body_len == CHUNKED {
        return forward_chunked(client, already, up, config, id, registry);
    }
    let first = already
        .len()
        .min(usize::try_from(body_len).unwrap_or(usize::MAX));
    let mut left = body_len - first as u64;
    // When the handler answers before reading the whole body (401, 403, 415) it closes its
    // side: the copy stops there and the client still gets that answer.
    if up.write_all(&already[..first]).is_ok() {
        let mut chunk = vec![0u8; 64 << 10];
        while left > 0 {
            let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = client.read(&mut chunk[..want])?;
            if n == 0 {
                // tiny_http sees the body cut short and the handler a broken multipart.
                return Ok(());
            }
            if up.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
    }
    if let Ok(mut reg) = registry.lock() {
        reg.sending.remove(&id);
    }
    respond_back(client, up, config)
}

/// A chunked STOW-RS body: passed through as sent while its framing is followed, to know where
/// it ends and to stop it at the upload cap (413; what tiny_http got is then a cut-short
/// body, which the handler stores nothing of).
fn forward_chunked(
    mut client: Conn,
    already: &[u8],
    mut up: TcpStream,
    config: &GuardConfig,
    id: u64,
    registry: &Mutex<Registry>,
) -> std::io::Result<()> {
    let mut chunks = Chunks::new(config.max_upload);
    let mut upstream_open = true;
    let mut pending = already.to_vec();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let used = match chunks.feed(&pending) {
            Ok(n) => n,
            Err(status) => {
                drop(up);
                return reply(&mut client, status);
            }
        };
        if upstream_open && up.write_all(&pending[..used]).is_err() {
            // The handler answered early (see forward_upload); its answer is passed on.
            upstream_open = false;
        }
        if chunks.done() || !upstream_open {
            break;
        }
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        pending.clear();
        pending.extend_from_slice(&buf[..n]);
    }
    if let Ok(mut reg) = registry.lock() {
        reg.sending.remove(&id);
    }
    respond_back(client, up, config)
}

/// Follows the framing of a chunked body (RFC 9112 7.1): sizes, data, trailers.
struct Chunks {
    state: ChunkState,
    line: Vec<u8>,
    total: u64,
    max: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd(u8),
    Trailer,
    Done,
}

impl Chunks {
    fn new(max: u64) -> Chunks {
        Chunks {
            state: ChunkState::Size,
            line: Vec::new(),
            total: 0,
            max,
        }
    }

    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Takes in `b`; returns how many of its bytes belong to the body (all, or up to its end),
    /// or the status to answer with.
    fn feed(&mut self, b: &[u8]) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < b.len() && !self.done() {
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    self.line.push(b[i]);
                    i += 1;
                    if self.line.len() > 4096 {
                        return Err("400 Bad Request");
                    }
                    if !self.line.ends_with(b"\r\n") {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let text = &line[..line.len() - 2];
                    if self.state == ChunkState::Trailer {
                        if text.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let hex = text.split(|&c| c == b';').next().unwrap_or(b"");
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                        .ok_or("400 Bad Request")?;
                    self.total = self.total.saturating_add(size);
                    if self.total > self.max {
                        return Err("413 Content Too Large");
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(n) => {
                    let take = n.min((b.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == n {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(n - take)
                    };
                }
                ChunkState::DataEnd(k) => {
                    i += 1;
                    self.state = if k == 1 {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(k - 1)
                    };
                }
                ChunkState::Done => {}
            }
        }
        Ok(i)
    }
}

/// 3. The response back, until tiny_http closes.
fn respond_back(mut client: Conn, mut up: TcpStream, config: &GuardConfig) -> std::io::Result<()> {
    up.set_read_timeout(Some(config.io_timeout))?;
    client.tcp().set_write_timeout(Some(config.io_timeout))?;
    // Large reads for large answers (a WADO-RS study is hundreds of MB); the zeroed buffer's
    // pages are only made resident as far as a read fills them.
    let mut big = vec![0u8; 256 << 10];
    let mut head = Some(Vec::new());
    loop {
        let n = up.read(&mut big)?;
        if n == 0 {
            break;
        }
        match head.as_mut() {
            Some(h) => {
                h.extend_from_slice(&big[..n]);
                if let Some(out) = say_close(h) {
                    client.write_all(&out)?;
                    head = None;
                    if let Conn::Plain(tcp) = &client
                        && splice_rest(&up, tcp)?
                    {
                        break;
                    }
                }
            }
            None => client.write_all(&big[..n])?,
        }
    }
    if let Some(h) = head {
        client.write_all(&h)?; // an answer too short to mark (or none): as it came
    }
    client.finish();
    Ok(())
}

/// The rest of an answer from tiny_http's socket to a plain client's through a pipe with
/// splice(2): the kernel moves the pages, the bytes never come up into this process (a WADO-RS
/// study crossed this thread twice, copied in and out: a sixth of the box's CPU for it).
/// The sockets' timeouts hold as for read and write. `false` (nothing moved) when no pipe
/// can be had: the caller copies as before.
#[cfg(target_os = "linux")]
fn splice_rest(up: &TcpStream, client: &TcpStream) -> std::io::Result<bool> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const STEP: usize = 1 << 20;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given, which has room for them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Ok(false);
    }
    // SAFETY: both descriptors were just opened by pipe2 and are owned by nothing else.
    let (pipe_r, pipe_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A larger pipe moves more per call; the default (64 KiB) works too, so failure is fine.
    // SAFETY: fcntl on a descriptor this function owns.
    unsafe { libc::fcntl(pipe_w.as_raw_fd(), libc::F_SETPIPE_SZ, STEP as libc::c_int) };
    let splice = |from: i32, to: i32, len: usize| -> std::io::Result<usize> {
        loop {
            // SAFETY: plain descriptors, no offsets (sockets and pipes have none).
            let n = unsafe {
                libc::splice(
                    from,
                    std::ptr::null_mut(),
                    to,
                    std::ptr::null_mut(),
                    len,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
    };
    loop {
        let n = splice(up.as_raw_fd(), pipe_w.as_raw_fd(), STEP)?;
        if n == 0 {
            return Ok(true);
        }
        let mut left = n;
        while left > 0 {
            match splice(pipe_r.as_raw_fd(), client.as_raw_fd(), left)? {
                0 => return Err(ErrorKind::WriteZero.into()),
                m => left -= m,
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn splice_rest(_up: &TcpStream, _client: &TcpStream) -> std::io::Result<bool> {
    Ok(false)
}

/// The answer's first bytes with `Connection: close` added to the final (non-1xx) response
/// head, once its status line is in; `None` while more bytes are needed. tiny_http will not
/// write that header itself, and without it a keep-alive client (python-requests, browsers)
/// may send its next request into a connection the guard is closing: RFC 9112 9.6 wants the
/// header on every answer of a connection that will not persist. Past 16 KiB without a status
/// line the bytes go out as they are.
fn say_close(buf: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (buf.len() > 16 << 10).then(|| buf.to_vec());
        };
        let interim = rest.starts_with(b"HTTP/1.") && rest.get(9) == Some(&b'1');
        if interim {
            let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
            at += end + 4;
            continue;
        }
        let mut out = Vec::with_capacity(buf.len() + 19);
        out.extend_from_slice(&buf[..at + eol + 2]);
        out.extend_from_slice(b"Connection: close\r\n");
        out.extend_from_slice(&buf[at + eol + 2..]);
        return Some(out);
    }
}

/// Where a plain-HTTP request should go instead: `https://host:port/path`, or None for the
/// status documents scripts poll (they stay plain and carry no patient data). The host is the
/// one the browser asked for when it is a plain name or address, else this socket's address:
/// nothing a client sends reaches the Location header unchecked.
fn https_location(head: &str, socket: &TcpStream, port: u16) -> Option<String> {
    let target = head
        .split("\r\n")
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/");
    let path = target.split('?').next().unwrap_or("");
    if path == "/status.json" || path == "/status.txt" {
        return None;
    }
    let target = if target.starts_with('/')
        && !target.starts_with("//")
        && target.bytes().all(|b| b.is_ascii_graphic())
    {
        target
    } else {
        "/"
    };
    let asked = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .unwrap_or("");
    // Drop a port (not inside an IPv6 literal's brackets).
    let host = match asked.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => asked,
    };
    let plain_name = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let bracketed_v6 = host.len() > 2
        && host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    let host = if plain_name || bracketed_v6 {
        host.to_owned()
    } else {
        match socket.local_addr().map(|a| a.ip().to_canonical()) {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            Ok(ip) => ip.to_string(),
            Err(_) => "localhost".to_owned(),
        }
    };
    Some(format!("https://{host}:{port}{target}"))
}

/// One read that must finish within `left`: `Some(bytes read)` (0 at EOF), or `None` when
/// the deadline passed first.
fn read_before(
    client: &mut Conn,
    chunk: &mut [u8],
    left: Duration,
) -> std::io::Result<Option<usize>> {
    if left.is_zero() {
        return Ok(None);
    }
    client.tcp().set_read_timeout(Some(left))?;
    match client.read(chunk) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A complete request head (`head` ends with its blank line) checked and rewritten for
/// tiny_http: `Ok((head, body length))`, or `Err(status)` to answer instead. A client's own
/// [`CLIENT_HEADER`] is dropped: only the guard says where a request came from. Public for the
/// fuzz target in tests/fuzz.
#[doc(hidden)]
pub fn rewrite_head(head: &[u8]) -> Result<(String, usize), &'static str> {
    match rewrite_head_with(head, DEFAULT_MAX_UPLOAD)? {
        (_, CHUNKED) => Err("411 Length Required"),
        (h, n) => Ok((h, usize::try_from(n).map_err(|_| "413 Content Too Large")?)),
    }
}

/// The body length [`rewrite_head_with`] gives a chunked STOW-RS upload.
const CHUNKED: u64 = u64::MAX;

/// Whether a request line is a STOW-RS upload, the one request whose body may be large.
fn is_upload(request_line: &str) -> bool {
    let mut words = request_line.split(' ');
    words.next() == Some("POST")
        && words.next().is_some_and(|target| {
            target == "/dicom-web/studies" || target.starts_with("/dicom-web/studies/")
        })
}

/// Whether a request line is the import page's media ZIP upload ([`UPLOAD_PATH`]).
fn is_media_upload(request_line: &str) -> bool {
    let mut words = request_line.split(' ');
    words.next() == Some("POST") && words.next() == Some(UPLOAD_PATH)
}

/// [`rewrite_head`] with the STOW-RS upload cap.
fn rewrite_head_with(head: &[u8], max_upload: u64) -> Result<(String, u64), &'static str> {
    let head = String::from_utf8_lossy(head).into_owned();
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let Some(request_line) = lines.next() else {
        return Err("400 Bad Request");
    };
    let mut rewritten = format!("{request_line}\r\n");
    let mut body_len = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("400 Bad Request");
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // Forms are small and come with a length; a STOW-RS upload may be chunked
            // (dicomweb-client sends bodies over 1 MB so), and the guard counts its chunks.
            if !is_upload(request_line) || !value.trim().eq_ignore_ascii_case("chunked") || chunked
            {
                return Err("411 Length Required");
            }
            chunked = true;
        }
        if name.eq_ignore_ascii_case("content-length") {
            // tiny_http reads the first length, so a second one could make it wait for a body
            // the guard never forwards; RFC 9112 6.3 lets a server refuse such a request.
            body_len = match (body_len, value.trim().parse()) {
                (None, Ok(n)) => Some(n),
                _ => return Err("400 Bad Request"),
            };
        }
        if [
            "connection",
            "keep-alive",
            "proxy-connection",
            CLIENT_HEADER,
            HTTPS_HEADER,
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    if chunked {
        // With both, which one frames the body is what request smuggling plays on.
        if body_len.is_some() {
            return Err("400 Bad Request");
        }
        rewritten.push_str("Connection: close\r\n\r\n");
        return Ok((rewritten, CHUNKED));
    }
    let body_len: u64 = body_len.unwrap_or(0);
    let cap = if is_upload(request_line) {
        max_upload
    } else if is_media_upload(request_line) {
        MAX_UPLOAD as u64
    } else {
        MAX_BODY as u64
    };
    if body_len > cap {
        return Err("413 Content Too Large");
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    Ok((rewritten, body_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_says_the_connection_closes() {
        assert_eq!(say_close(b"HTTP/1.1 20"), None);
        assert_eq!(
            say_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").as_deref(),
            Some(&b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..])
        );
        // An interim 100 Continue passes as it is; the final answer gets the header.
        assert_eq!(say_close(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2"), None);
        assert_eq!(
            say_close(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\r\n").as_deref(),
            Some(
                &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nConnection: close\r\n\r\n"
                    [..]
            )
        );
        let junk = vec![b'x'; 17 << 10];
        assert_eq!(say_close(&junk), Some(junk.clone()));
    }

    /// Found by tests/fuzz (http_head): with two lengths the guard forwarded as many body bytes
    /// as the last one said while tiny_http waited for as many as the first one said, holding a
    /// guard thread and a worker until the I/O timeout.
    #[test]
    fn a_second_content_length_is_refused() {
        let head = b"POST /login HTTP/1.1\r\nContent-Length: 929\r\nCookie: a=b\r\n\
                     Content-Length: 251\r\n\r\n";
        assert_eq!(rewrite_head(head), Err("400 Bad Request"));
        let (rewritten, body) = rewrite_head(b"POST /login HTTP/1.1\r\nContent-Length: 29\r\n\r\n")
            .expect("one length is fine");
        assert_eq!(body, 29);
        assert_eq!(
            rewritten,
            "POST /login HTTP/1.1\r\nContent-Length: 29\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn only_the_uploads_may_be_larger_than_a_form() {
        let head = |line: &str| format!("{line}\r\nContent-Length: 1000000000\r\n\r\n");
        for upload in [
            "POST /admin/import/upload HTTP/1.1",
            "POST /dicom-web/studies HTTP/1.1",
        ] {
            let (_, n) = rewrite_head(head(upload).as_bytes()).unwrap();
            assert_eq!(n, 1_000_000_000);
        }
        for other in [
            "POST /admin/import HTTP/1.1",
            "POST /admin/import/upload/x HTTP/1.1",
            "PUT /admin/import/upload HTTP/1.1",
            "POST /login HTTP/1.1",
        ] {
            assert_eq!(
                rewrite_head(head(other).as_bytes()),
                Err("413 Content Too Large")
            );
        }
        let over = format!(
            "POST /admin/import/upload HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_UPLOAD + 1
        );
        assert_eq!(rewrite_head(over.as_bytes()), Err("413 Content Too Large"));
        // The media upload has a length: it is not chunked.
        let chunked = b"POST /admin/import/upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(rewrite_head_with(chunked, 10), Err("411 Length Required"));
    }

    /// A chunked STOW-RS upload is followed to its end and stopped at the cap; elsewhere
    /// chunked bodies stay refused, and a body framed twice is refused.
    #[test]
    fn chunked_uploads_are_followed_and_capped() {
        let body = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: a\r\n\r\nEXTRA";
        for step in [1, 3, body.len()] {
            let mut c = Chunks::new(100);
            let mut used = 0;
            for piece in body.chunks(step) {
                used += c.feed(piece).unwrap();
            }
            assert!(c.done());
            assert_eq!(used, body.len() - b"EXTRA".len());
        }
        assert_eq!(Chunks::new(4).feed(body), Err("413 Content Too Large"));
        assert_eq!(Chunks::new(100).feed(b"zz\r\n"), Err("400 Bad Request"));
        let up = b"POST /dicom-web/studies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(rewrite_head_with(up, 10).unwrap().1, CHUNKED);
        assert_eq!(rewrite_head(up), Err("411 Length Required"));
        let form = b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(rewrite_head_with(form, 10), Err("411 Length Required"));
        let both = b"POST /dicom-web/studies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\
                     Content-Length: 5\r\n\r\n";
        assert_eq!(rewrite_head_with(both, 10), Err("400 Bad Request"));
    }

    /// Only the guard may say where a request came from: a client's own claim is dropped.
    #[test]
    fn a_client_cannot_name_its_own_address() {
        let (rewritten, _) = rewrite_head(
            b"GET / HTTP/1.1\r\nX-Pacsbox-Client: 10.9.9.9\r\nx-pacsbox-client : 10.1.1.1\r\nHost: a\r\n\r\n",
        )
        .expect("a fine head");
        assert!(
            !rewritten.contains("10.9.9.9") && !rewritten.contains("10.1.1.1"),
            "{rewritten}"
        );
        assert!(rewritten.contains("Host: a\r\n"));
    }
}
