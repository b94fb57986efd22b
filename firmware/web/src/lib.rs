//! The built-in web page (tiny_http): login, status, search, study view, DICOM header,
//! study download and the viewer's pixel endpoints.
//!
//! Start at [`serve`] (the worker pool) and [`routes::route`] (every URL). The page calls the
//! archive's API ([`pacsbox_archive::Archive`]) and never opens redb tables or the file tree
//! itself; pixels come from `pacsbox-imaging`.
//!
//! tiny_http has no timeouts, size limits or connection cap. Around it: clients reach it only
//! through `guard.rs` (request heads read under a deadline and a cap, stalled clients dropped
//! first), a fixed pool of workers answers requests, and large responses are written by a
//! bounded set of sender threads so a client that never reads cannot hold a worker
//! (`server.rs`).

pub mod audit;
pub mod auth;
pub mod certificate;
mod conflicts;
mod dicomweb;
mod edit;
pub mod guard;
mod header;
pub mod i18n;
pub mod ohif;
mod pages;
mod pixels;
mod reply;
pub mod routes;
mod search;
mod server;
pub mod status;
pub mod study_zip;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pacsbox_archive::Archive;

pub use certificate::{CertificateView, Certificates};
pub use reply::Reply;
pub use server::serve;
pub use status::{LogLine, MediaFound, RaidReport, StatusDoc, StatusSource};

#[derive(Clone, Debug)]
pub struct WebConfig {
    /// A session unused this long is logged out.
    pub session_idle_timeout: Duration,
    /// A session ends this long after login however busy it is.
    pub session_max_age: Duration,
    /// Worker threads answering requests.
    pub workers: usize,
    /// Where the generated first admin password is written (and removed once changed).
    pub initial_password_file: Option<PathBuf>,
    /// Failed attempts after which a forwarding job counts as failing (`[forwarding]`).
    pub forward_alarm_after: u32,
    /// Origins allowed to call DICOMweb from their pages (CORS), exactly as browsers send them.
    pub dicomweb_cors_origins: Vec<String>,
    /// Largest STOW-RS request body (the guard refuses larger ones with 413).
    pub max_upload: u64,
    /// The prebuilt OHIF viewer's folder, served at `/ohif/` (`ohif.rs`); `None`: no OHIF.
    pub ohif_dir: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_max_age: Duration::from_secs(12 * 60 * 60),
            workers: 4,
            initial_password_file: None,
            forward_alarm_after: pacsbox_archive::forward::DEFAULT_ALARM_AFTER,
            dicomweb_cors_origins: Vec::new(),
            max_upload: guard::DEFAULT_MAX_UPLOAD,
            ohif_dir: None,
        }
    }
}

/// The web page's sockets: the public listeners behind their guards, and tiny_http on loopback.
pub struct Listener {
    pub server: Arc<tiny_http::Server>,
    /// Plain HTTP (which sends browsers to HTTPS when there is an HTTPS listener).
    pub local_addr: std::net::SocketAddr,
    pub https_addr: Option<std::net::SocketAddr>,
}

/// Where HTTPS listens, and with which certificate.
pub struct Https {
    pub addr: String,
    pub tls: Arc<rustls::ServerConfig>,
}

/// Binds `addr` (e.g. `0.0.0.0:8080`) and, when given, the HTTPS address, each with its guard;
/// tiny_http listens on an ephemeral loopback port only the guards talk to. With HTTPS, plain
/// HTTP only redirects (and answers the status documents).
pub fn listen(
    addr: &str,
    guard: guard::GuardConfig,
    https: Option<Https>,
) -> anyhow::Result<Listener> {
    use anyhow::Context;
    let public = std::net::TcpListener::bind(addr)
        .with_context(|| format!("listening for HTTP on {addr}"))?;
    let local_addr = public.local_addr()?;
    let secure = match https {
        Some(h) => {
            let l = std::net::TcpListener::bind(&h.addr)
                .with_context(|| format!("listening for HTTPS on {}", h.addr))?;
            Some((l.local_addr()?, l, h.tls))
        }
        None => None,
    };
    let server = tiny_http::Server::http("127.0.0.1:0")
        .map_err(|e| anyhow::anyhow!("starting the HTTP server on loopback: {e}"))?;
    let upstream = server
        .server_addr()
        .to_ip()
        .context("tiny_http is not on TCP")?;
    let plain = match &secure {
        Some((a, _, _)) => guard::Transport::RedirectToHttps { port: a.port() },
        None => guard::Transport::Plain,
    };
    guard::start(public, upstream, guard.clone(), plain)
        .context("starting the HTTP connection guard")?;
    let https_addr = match secure {
        Some((a, l, tls)) => {
            guard::start(l, upstream, guard, guard::Transport::Tls(tls))
                .context("starting the HTTPS connection guard")?;
            Some(a)
        }
        None => None,
    };
    Ok(Listener {
        server: Arc::new(server),
        local_addr,
        https_addr,
    })
}

/// Everything a request handler can reach.
/// A C-ECHO to a peer of the table: the round trip, or why it failed (said to the admin).
pub trait PeerEcho: Send + Sync {
    fn echo(&self, ae_title: &str) -> Result<Duration, String>;
}

/// The clinic's other PACS (`[fetch] from`), for the remote search page: C-FIND and C-MOVE
/// there (the binary's, over pacsbox-dicom). Errors are said to the user.
pub trait RemotePacs: Send + Sync {
    /// The peers staff may search and fetch from.
    fn peers(&self) -> Vec<String>;
    fn find(
        &self,
        peer: &str,
        q: &pacsbox_archive::remote::RemoteQuery,
    ) -> Result<Vec<pacsbox_archive::remote::RemoteStudy>, String>;
    /// Starts pulling the study to this box; the job's id.
    fn fetch(&self, peer: &str, study_uid: &str, requested_by: &str) -> Result<u64, String>;
    /// Fetches since start, newest first.
    fn fetches(&self) -> Vec<pacsbox_archive::remote::FetchJob>;
}

pub struct Web {
    pub archive: Archive,
    pub status: Arc<dyn StatusSource>,
    pub config: WebConfig,
    pub sessions: auth::Sessions,
    /// Where every login, view of patient data and change is recorded.
    pub audit: pacsbox_audit::Audit,
    pub started: Instant,
    /// The TLS certificate, when HTTPS or DICOM TLS is on (`/admin/certificate`).
    pub certificates: Option<Arc<dyn Certificates>>,
    /// C-ECHO to a peer for the peers page's "Test" (the binary's, over pacsbox-dicom).
    pub echo: Option<Arc<dyn PeerEcho>>,
    /// Search and fetch on the clinic's other PACS; `None` without `[fetch] from`.
    pub remote: Option<Arc<dyn RemotePacs>>,
    pub(crate) pixel_caches: pixels::PixelCaches,
}

impl Web {
    /// Sets up the web layer; on first start (no users) creates `admin` with a generated
    /// password that must be changed at first login, and returns that password.
    pub fn new(
        archive: Archive,
        status: Arc<dyn StatusSource>,
        config: WebConfig,
        audit: pacsbox_audit::Audit,
    ) -> anyhow::Result<(Web, Option<String>)> {
        let initial = auth::ensure_first_admin(&archive, config.initial_password_file.as_deref())?;
        let sessions = auth::Sessions::new(config.session_idle_timeout, config.session_max_age)?;
        Ok((
            Web {
                archive,
                status,
                config,
                sessions,
                audit,
                started: Instant::now(),
                certificates: None,
                echo: None,
                remote: None,
                pixel_caches: Default::default(),
            },
            initial,
        ))
    }
}
