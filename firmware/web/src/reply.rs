//! What a handler returns, and the parsed request it gets. Handlers never touch tiny_http's
//! types, so they can be tested without a socket.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// A parsed request: method, path, query, cookies and (for forms) the decoded body.
#[derive(Debug, Default, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub cookies: HashMap<String, String>,
    pub form: HashMap<String, String>,
    pub accepts_gzip: bool,
    /// The client's IP address, as the guard saw it.
    pub client: String,
    /// The request came over HTTPS (cookies are then `Secure`).
    pub https: bool,
    /// The browser says another site made this request (`Origin` names another host, or
    /// `Sec-Fetch-Site: cross-site`): no form may be posted that way.
    pub cross_site: bool,
    /// For DICOMweb: the query string as sent (its keys may repeat), and the headers its
    /// clients speak in.
    pub raw_query: String,
    pub authorization: String,
    pub accept: String,
    pub accept_encoding: String,
    pub origin: String,
    pub content_type: String,
    pub csrf_header: String,
    /// The browser's languages (the pages' language when the user chose none).
    pub accept_language: String,
}

impl Req {
    /// The texts for this browser, for pages shown before a login.
    pub fn t(&self) -> &'static crate::i18n::Strings {
        crate::i18n::Lang::from_accept_language(&self.accept_language).strings()
    }

    pub fn param(&self, k: &str) -> &str {
        self.query.get(k).map(String::as_str).unwrap_or("")
    }
    pub fn field(&self, k: &str) -> &str {
        self.form.get(k).map(String::as_str).unwrap_or("")
    }

    /// The path with its query (keys in a fixed order), to come back to after logging in.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let mut pairs: Vec<_> = self.query.iter().collect();
        pairs.sort();
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        format!("{}?{}", self.path, q.finish())
    }
}

pub fn parse_pairs(s: &str) -> HashMap<String, String> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

/// Whether `Origin`/`Sec-Fetch-Site` show a request made by another site's page. `Host` is what
/// the browser addressed; a same-site form's `Origin` names exactly that host and port.
pub fn is_cross_site(host: &str, origin: &str, fetch_site: &str) -> bool {
    if fetch_site.eq_ignore_ascii_case("cross-site") {
        return true;
    }
    if origin.is_empty() {
        // Older browsers and scripts send no Origin; the CSRF token still guards them.
        return false;
    }
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    !authority.eq_ignore_ascii_case(host)
}

pub fn parse_cookies(header: &str) -> HashMap<String, String> {
    header
        .split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

pub enum Body {
    Bytes(Vec<u8>),
    /// Streamed with chunked encoding (ZIP of a study, a stored file).
    Stream(Box<dyn Read + Send>),
    /// Streamed with chunked encoding, each block of the pipe written to the socket as it
    /// came, without a copy through a read buffer (WADO-RS parts).
    Blocks(ChunkReader),
}

pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }
    pub fn html(body: String) -> Reply {
        Reply::bytes(200, "text/html; charset=utf-8", body.into_bytes())
    }
    pub fn text(status: u16, msg: impl Into<String>) -> Reply {
        let mut m = msg.into();
        if !m.ends_with('\n') {
            m.push('\n');
        }
        Reply::bytes(status, "text/plain; charset=utf-8", m.into_bytes())
    }
    pub fn json<T: serde::Serialize>(v: &T) -> Reply {
        match serde_json::to_vec_pretty(v) {
            Ok(b) => Reply::bytes(200, "application/json", b),
            Err(e) => Reply::text(500, format!("encoding JSON: {e}")),
        }
    }
    pub fn redirect(to: &str) -> Reply {
        Reply::bytes(303, "text/plain; charset=utf-8", Vec::new()).header("Location", to)
    }
    pub fn stream(content_type: &'static str, r: Box<dyn Read + Send>) -> Reply {
        Reply {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: Body::Stream(r),
        }
    }
    /// A streamed answer whose blocks go to the socket as they are (see [`Body::Blocks`]).
    pub fn blocks(content_type: &'static str, r: ChunkReader) -> Reply {
        Reply {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: Body::Blocks(r),
        }
    }
    /// A response header. CR, LF and NUL are dropped from the value: whatever a caller
    /// builds it from, it cannot end this header and add another.
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        let mut v: String = v.into();
        if v.contains(['\r', '\n', '\0']) {
            tracing::warn!(
                header = k,
                "control characters dropped from a response header"
            );
            v.retain(|c| !matches!(c, '\r' | '\n' | '\0'));
        }
        self.headers.push((k.to_owned(), v));
        self
    }
    pub fn len_hint(&self) -> usize {
        match &self.body {
            Body::Bytes(b) => b.len(),
            Body::Stream(_) | Body::Blocks(_) => usize::MAX,
        }
    }
}

/// An error a handler turns into a status page.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::NotFound => 404,
            HttpError::Forbidden => 403,
            HttpError::Unsupported(_) => 415,
            HttpError::Unprocessable(_) => 422,
            HttpError::Internal(_) => 500,
        }
    }
}

impl From<HttpError> for Reply {
    fn from(e: HttpError) -> Reply {
        if let HttpError::Internal(m) = &e {
            tracing::error!(error = %m, "web request failed");
        }
        Reply::text(e.status(), e.to_string())
    }
}

macro_rules! internal {
    ($($t:ty),*) => {$(
        impl From<$t> for HttpError {
            fn from(e: $t) -> Self { HttpError::Internal(e.to_string()) }
        }
    )*};
}
internal!(
    pacsbox_archive::IndexError,
    pacsbox_archive::query::QueryError,
    std::io::Error,
    askama::Error,
    anyhow::Error,
    pacsbox_audit::AuditError
);

/// UIDs in URLs: digits and dots only, so they can never name a path outside the archive.
pub fn check_uid(s: &str) -> Result<&str, HttpError> {
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !s.starts_with('.')
    {
        Ok(s)
    } else {
        Err(HttpError::BadRequest(format!("not a UID: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_value_cannot_start_another_header() {
        let r = Reply::redirect("/a\r\nSet-Cookie: x=1\0").header("X-Test", "b\nc");
        assert_eq!(
            r.headers,
            [
                ("Location".to_owned(), "/aSet-Cookie: x=1".to_owned()),
                ("X-Test".to_owned(), "bc".to_owned())
            ]
        );
    }
}

/// Size of the blocks a [`chunk_pipe`] carries.
pub const PIPE_CHUNK: usize = 256 << 10;

/// An in-process pipe for a streamed answer made on another thread: the writer fills
/// 256 KiB blocks and hands each over whole (at most two in flight, so a slow client holds
/// back the producer). An OS pipe moves 64 KiB per read with a thread switch each: a quarter
/// of the time of a 265 MB WADO-RS study went there. Dropping the reader makes the writer's
/// next hand-over fail with `BrokenPipe`, as a closed pipe would; dropping the writer hands
/// over what it holds and ends the reader's stream.
pub fn chunk_pipe() -> (ChunkWriter, ChunkReader) {
    let (tx, rx) = sync_channel(2);
    (
        ChunkWriter {
            buf: Vec::with_capacity(PIPE_CHUNK),
            tx,
        },
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        },
    )
}

pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
}

impl ChunkWriter {
    fn hand_over(&mut self) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_CHUNK));
        self.send(full)
    }

    fn send(&self, block: Vec<u8>) -> std::io::Result<()> {
        self.tx.send(block).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away")
        })
    }

    /// Writes `data`, handing it over as its own block when it is large rather than copying
    /// it into the pipe's blocks: a WADO-RS part read whole from its file then reaches the
    /// socket without another copy (a 265 MB study spent a tenth of its CPU in that copy).
    /// Blocks handed over this way may be larger than [`PIPE_CHUNK`]: the caller bounds them.
    pub fn write_owned(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        if data.len() < PIPE_CHUNK / 4 {
            return self.write_all(&data);
        }
        self.flush()?;
        self.send(data)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIPE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIPE_CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.hand_over()?;
        }
        Ok(())
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

pub struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    /// The next block as the writer handed it over (what a `read` left of the current one
    /// first); `None` at the end of the stream.
    pub fn next_block(&mut self) -> Option<Vec<u8>> {
        if self.pos < self.cur.len() {
            let rest = self.cur.split_off(self.pos);
            self.cur.clear();
            self.pos = 0;
            return Some(rest);
        }
        self.rx.recv().ok()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(block) => {
                    self.cur = block;
                    self.pos = 0;
                }
                // Every writer is gone: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod chunk_pipe_tests {
    use super::*;

    #[test]
    fn carries_every_byte_in_order_and_ends() {
        let (mut w, mut r) = chunk_pipe();
        let data: Vec<u8> = (0..PIPE_CHUNK * 3 + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            for piece in sent.chunks(10_000) {
                w.write_all(piece).unwrap();
            }
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn owned_blocks_come_out_whole_and_in_order() {
        let (mut w, mut r) = chunk_pipe();
        let big: Vec<u8> = (0..PIPE_CHUNK * 2 + 5).map(|i| (i % 253) as u8).collect();
        let sent = big.clone();
        let t = std::thread::spawn(move || {
            w.write_all(b"head").unwrap();
            w.write_owned(sent).unwrap();
            w.write_owned(b"small".to_vec()).unwrap();
        });
        let mut first = [0u8; 2];
        r.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"he");
        assert_eq!(r.next_block().as_deref(), Some(&b"ad"[..]));
        assert_eq!(r.next_block(), Some(big));
        assert_eq!(r.next_block().as_deref(), Some(&b"small"[..]));
        assert_eq!(r.next_block(), None);
        t.join().unwrap();
    }

    #[test]
    fn the_writer_learns_that_the_reader_left() {
        let (mut w, r) = chunk_pipe();
        drop(r);
        let e = w.write_all(&vec![0u8; PIPE_CHUNK]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
