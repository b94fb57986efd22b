//! The forwarding thread. The trail on disk stays the truth: this thread reads it after what
//! the collector has had, sends each record as a syslog message over TLS, and keeps its place
//! in `DATA/audit/forwarded` (file, offset, sequence number and hash of the last record
//! confirmed), so a collector that is down, or a restart of the box, loses nothing: sending
//! resumes from there. The writer never waits for this thread; it only reads the files.
//!
//! Syslog over TLS has no acknowledgement. A record counts as delivered once the connection
//! was still open [`CONFIRM_AFTER`] after it was written (a collector that stops or refuses
//! closes it, and the check sees the close); after a broken connection everything not yet
//! confirmed is sent again. So every record arrives at least once; the ones written just
//! before a connection broke may arrive twice.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pacsbox_audit::{ForwardStatus, Record, now_unix};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};

use crate::message::Source;
use crate::syslog;

/// How long a connection must stay open after a write before what was written counts as
/// delivered.
pub const CONFIRM_AFTER: Duration = Duration::from_millis(300);
/// How often the trail is looked at for new records.
const POLL: Duration = Duration::from_millis(200);
/// Reconnect backoff: doubled after each failure, up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Records per write.
const BATCH: usize = 256;
/// A collector that takes longer than this to accept bytes is treated as gone.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("audit forwarding: {what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit forwarding: {0}")]
    Settings(String),
}

/// Where to send and whom to trust.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `host:port` (an IPv6 address in brackets) of the collector; the host is the name its
    /// certificate must carry (an IP address: as an IP SAN).
    pub target: String,
    /// PEM: the CA (or CAs) that signed the collector's certificate. Required: patient data
    /// never goes to a collector that is not verified.
    pub ca_file: PathBuf,
    /// PEM certificate and key to present for mutual TLS (the box's own), if the collector
    /// asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The trail (`DATA/audit`); the cursor file is kept there too.
    pub audit_dir: PathBuf,
    pub source: Source,
}

/// The place in the trail after the last record the collector has had.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub file: String,
    pub offset: u64,
    /// The last record's sequence number; `None` before the first.
    pub seq: Option<u64>,
    pub hash: String,
}

pub const CURSOR_FILE: &str = "forwarded";

impl Cursor {
    pub fn load(dir: &Path) -> Cursor {
        let path = dir.join(CURSOR_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, path = %path.display(), "audit forwarding: unreadable cursor; sending the trail from its start");
                Cursor::default()
            }),
            Err(_) => Cursor::default(),
        }
    }

    /// Written to a temporary name, synced, renamed: a crash leaves the old or the new one.
    pub fn store(&self, dir: &Path) -> Result<(), ForwardError> {
        let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
        let err = |source| ForwardError::File {
            what: "writing",
            path: tmp.clone(),
            source,
        };
        let json = serde_json::to_vec(self).map_err(|e| err(e.into()))?;
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&json)
            .and_then(|()| f.sync_data())
            .map_err(err)?;
        std::fs::rename(&tmp, dir.join(CURSOR_FILE)).map_err(err)?;
        Ok(())
    }
}

/// Reads records from the trail's files after a cursor.
pub struct Tail {
    dir: PathBuf,
}

impl Tail {
    pub fn new(dir: &Path) -> Tail {
        Tail {
            dir: dir.to_owned(),
        }
    }

    /// Up to `max` records after `at`, each with the cursor just after it. A cursor whose
    /// file was pruned starts at the oldest file; one whose offset no longer lands after its
    /// record (a torn tail was cut) rescans the file by sequence number.
    pub fn after(&self, at: &Cursor, max: usize) -> Result<Vec<(Record, Cursor)>, ForwardError> {
        let files: Vec<String> = pacsbox_audit::files(&self.dir)
            .map_err(|e| ForwardError::Settings(e.to_string()))?
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        let mut out = Vec::new();
        let (mut file, mut offset) = match files.iter().position(|f| *f == at.file) {
            Some(i) => (i, at.offset),
            // Pruned (or never started): from the oldest file still there that is newer.
            None => match files.iter().position(|f| *f > at.file) {
                Some(i) => (i, 0),
                None => return Ok(out),
            },
        };
        let mut rescanned = false;
        while file < files.len() && out.len() < max {
            let name = &files[file];
            let path = self.dir.join(name);
            let lines = read_lines(&path, offset)?;
            let mut pos = offset;
            let mut mismatch = false;
            for line in lines {
                pos += line.len() as u64 + 1;
                let Ok(r) = serde_json::from_slice::<Record>(&line) else {
                    // A damaged line: `pacsbox audit verify` names it; nothing to send.
                    continue;
                };
                if let Some(last) = at.seq
                    && r.seq <= last
                {
                    continue;
                }
                if out.is_empty()
                    && !rescanned
                    && offset > 0
                    && at.seq.is_some_and(|last| r.seq != last + 1)
                {
                    mismatch = true;
                    break;
                }
                let c = Cursor {
                    file: name.clone(),
                    offset: pos,
                    seq: Some(r.seq),
                    hash: r.hash.clone(),
                };
                out.push((r, c));
                if out.len() == max {
                    return Ok(out);
                }
            }
            if mismatch {
                // The record after the cursor is not the next one: read the file again.
                rescanned = true;
                offset = 0;
                continue;
            }
            if file + 1 < files.len() {
                file += 1;
                offset = 0;
            } else {
                break;
            }
        }
        Ok(out)
    }
}

/// The complete lines of a file from `offset` (at most 1 MiB of them).
fn read_lines(path: &Path, offset: u64) -> Result<Vec<Vec<u8>>, ForwardError> {
    let err = |source| ForwardError::File {
        what: "reading",
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let end = f.metadata().map_err(err)?.len();
    if offset >= end {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(offset)).map_err(err)?;
    let mut bytes = Vec::new();
    f.take(1 << 20).read_to_end(&mut bytes).map_err(err)?;
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(whole);
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines.pop();
    Ok(lines)
}

/// The running forwarder; [`Forwarder::stop`] sends what is left, then ends the thread.
pub struct Forwarder {
    status: Arc<Mutex<ForwardStatus>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    /// Checks the settings (the CA file must hold a certificate) and starts the thread.
    /// `head` is the trail's next sequence number (`Audit::next_seq`), for the backlog.
    pub fn start(settings: Settings, head: Arc<AtomicU64>) -> Result<Forwarder, ForwardError> {
        let tls = client_config(&settings)?;
        let (host, _) = split_target(&settings.target)?;
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| ForwardError::Settings(format!("{}: {e}", settings.target)))?;
        let status = Arc::new(Mutex::new(ForwardStatus {
            target: settings.target.clone(),
            ..ForwardStatus::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = Run {
            tls,
            server_name,
            tail: Tail::new(&settings.audit_dir),
            settings,
            head,
            status: status.clone(),
            stop: stop.clone(),
            procid: std::process::id(),
        };
        let thread = std::thread::Builder::new()
            .name("audit-forward".into())
            .spawn(move || run.run())
            .map_err(|source| ForwardError::File {
                what: "starting the thread for",
                path: PathBuf::from("audit forwarding"),
                source,
            })?;
        Ok(Forwarder {
            status,
            stop,
            thread: Some(thread),
        })
    }

    pub fn status(&self) -> ForwardStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A handle the status page can hold.
    pub fn status_handle(&self) -> Arc<Mutex<ForwardStatus>> {
        self.status.clone()
    }

    /// Sends what the trail holds now (if connected), confirms it, and ends the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn split_target(target: &str) -> Result<(&str, u16), ForwardError> {
    let bad = || {
        ForwardError::Settings(format!(
            "syslog collector {target:?}: expected host:port, e.g. audit.clinic.lan:6514"
        ))
    };
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

fn client_config(s: &Settings) -> Result<Arc<rustls::ClientConfig>, ForwardError> {
    let read_err = |path: &Path, e: rustls::pki_types::pem::Error| {
        ForwardError::Settings(format!("reading {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.ca_file)
        .map_err(|e| read_err(&s.ca_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(&s.ca_file, e))?;
    let (added, _) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err(ForwardError::Settings(format!(
            "no usable CA certificate in {}",
            s.ca_file.display()
        )));
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match &s.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| read_err(cert, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| read_err(cert, e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read_err(key, e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ForwardError::Settings(format!("client certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

type Conn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

struct Run {
    settings: Settings,
    tls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    tail: Tail,
    head: Arc<AtomicU64>,
    status: Arc<Mutex<ForwardStatus>>,
    stop: Arc<AtomicBool>,
    procid: u32,
}

impl Run {
    fn set_status(&self, f: impl FnOnce(&mut ForwardStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn connect(&self) -> Result<Conn, String> {
        let (host, port) = split_target(&self.settings.target).map_err(|e| e.to_string())?;
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {host}: {e}"))?;
        let mut last = format!("{host}: no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(sock) => {
                    sock.set_read_timeout(Some(IO_TIMEOUT))
                        .and_then(|()| sock.set_write_timeout(Some(IO_TIMEOUT)))
                        .map_err(|e| e.to_string())?;
                    let conn =
                        rustls::ClientConnection::new(self.tls.clone(), self.server_name.clone())
                            .map_err(|e| e.to_string())?;
                    let mut s = rustls::StreamOwned::new(conn, sock);
                    // Finish the handshake now, so a certificate the CA did not sign shows as
                    // such in the status instead of as a failed write.
                    while s.conn.is_handshaking() {
                        s.conn
                            .complete_io(&mut s.sock)
                            .map_err(|e| format!("TLS with {addr}: {e}"))?;
                    }
                    return Ok(s);
                }
                Err(e) => last = format!("connecting to {addr}: {e}"),
            }
        }
        Err(last)
    }

    fn run(&mut self) {
        let dir = self.settings.audit_dir.clone();
        let mut confirmed = Cursor::load(&dir);
        let mut stored = confirmed.clone();
        let mut sent = confirmed.clone();
        let mut pending: VecDeque<(Instant, Cursor)> = VecDeque::new();
        let mut conn: Option<Conn> = None;
        let mut backoff = Duration::from_secs(1);
        let mut next_attempt = Instant::now();
        let mut last_store = Instant::now();
        let mut draining = false;
        loop {
            if self.stop.load(Ordering::Relaxed) && !draining {
                draining = true;
            }
            self.update_backlog(&confirmed);
            if conn.is_none() {
                if draining {
                    break;
                }
                if Instant::now() < next_attempt {
                    std::thread::sleep(POLL);
                    continue;
                }
                match self.connect() {
                    Ok(c) => {
                        tracing::info!(
                            collector = self.settings.target,
                            "audit forwarding: connected"
                        );
                        conn = Some(c);
                        backoff = Duration::from_secs(1);
                        self.set_status(|s| {
                            s.connected = true;
                            s.last_error.clear();
                        });
                    }
                    Err(e) => {
                        tracing::warn!(collector = self.settings.target, error = %e, retry_s = backoff.as_secs(), "audit forwarding: cannot connect");
                        self.set_status(|s| {
                            s.connected = false;
                            s.last_error = e;
                        });
                        next_attempt = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            }
            let Some(c) = conn.as_mut() else { continue };
            let check = alive(c);
            if let Err(e) = check {
                self.lost(&mut conn, &mut sent, &confirmed, &mut pending, e);
                next_attempt = Instant::now() + backoff;
                continue;
            }
            // Still open: what was written long enough ago has arrived.
            while pending
                .front()
                .is_some_and(|(at, _)| at.elapsed() >= CONFIRM_AFTER)
            {
                if let Some((_, c)) = pending.pop_front() {
                    confirmed = c;
                }
            }
            if confirmed != stored
                && (last_store.elapsed() >= Duration::from_secs(1) || pending.is_empty())
            {
                match confirmed.store(&dir) {
                    Ok(()) => stored = confirmed.clone(),
                    Err(e) => tracing::error!(error = %e, "audit forwarding: cursor not saved"),
                }
                last_store = Instant::now();
            }
            let batch = match self.tail.after(&sent, BATCH) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "audit forwarding: reading the trail");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                if draining {
                    if pending.is_empty() {
                        break;
                    }
                    std::thread::sleep(CONFIRM_AFTER);
                    continue;
                }
                std::thread::sleep(POLL);
                continue;
            }
            let mut bytes = Vec::new();
            for (r, _) in &batch {
                bytes.extend(syslog::frame(&syslog::message(
                    r,
                    &self.settings.source,
                    self.procid,
                )));
            }
            let n = batch.len() as u64;
            let last_unix = batch.last().map(|(r, _)| r.unix);
            let Some(after) = batch.into_iter().next_back().map(|(_, c)| c) else {
                continue;
            };
            match c.write_all(&bytes).and_then(|()| c.flush()) {
                Ok(()) => {
                    sent = after.clone();
                    pending.push_back((Instant::now(), after));
                    self.set_status(|s| {
                        s.sent += n;
                        s.last_sent_unix = last_unix;
                    });
                }
                Err(e) => {
                    self.lost(
                        &mut conn,
                        &mut sent,
                        &confirmed,
                        &mut pending,
                        format!("sending: {e}"),
                    );
                    next_attempt = Instant::now() + backoff;
                }
            }
        }
        if confirmed != stored
            && let Err(e) = confirmed.store(&dir)
        {
            tracing::error!(error = %e, "audit forwarding: cursor not saved");
        }
        if let Some(mut c) = conn {
            c.conn.send_close_notify();
            let _ = c.conn.complete_io(&mut c.sock);
        }
    }

    /// The connection broke: everything not confirmed goes again on the next one.
    fn lost(
        &self,
        conn: &mut Option<Conn>,
        sent: &mut Cursor,
        confirmed: &Cursor,
        pending: &mut VecDeque<(Instant, Cursor)>,
        why: String,
    ) {
        tracing::warn!(collector = self.settings.target, error = %why, unconfirmed = pending.len(), "audit forwarding: connection lost; resending from the last confirmed record");
        *conn = None;
        *sent = confirmed.clone();
        pending.clear();
        self.set_status(|s| {
            s.connected = false;
            s.last_error = why;
        });
    }

    fn update_backlog(&self, confirmed: &Cursor) {
        let head = self.head.load(Ordering::Relaxed);
        let done = confirmed.seq.map_or(0, |s| s + 1);
        let backlog = head.saturating_sub(done);
        self.set_status(|s| {
            s.backlog = backlog;
            if backlog == 0 {
                s.behind_since_unix = None;
            } else if s.behind_since_unix.is_none() {
                s.behind_since_unix = Some(now_unix());
            }
        });
    }
}

/// Whether the collector still has the connection open: a non-blocking read finds its
/// close_notify, its FIN or a reset, if any came.
fn alive(c: &mut Conn) -> Result<(), String> {
    c.sock
        .set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    let mut buf = [0u8; 1024];
    let result = loop {
        match c.read(&mut buf) {
            Ok(0) => break Err("the collector closed the connection".to_owned()),
            // A collector has nothing to say over syslog; whatever it sends is dropped.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) => break Err(format!("connection: {e}")),
        }
    };
    c.sock
        .set_nonblocking(false)
        .map_err(|e| format!("socket: {e}"))?;
    result
}
