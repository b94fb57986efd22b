//! The built-in web page (tiny_http): login, status, search, study view, DICOM header,
//! study download and the viewer's pixel endpoints.
//!
//! Start at [`serve`] (the worker pool) and [`routes::route`] (every URL). The page calls the
//! archive's API ([`pacsbox_archive::Archive`]) and never opens redb tables or the file tree
//! itself; pixels come from `pacsbox-imaging`.
//!
//! tiny_http reads each connection's request head on its own thread and has no limits;
//! around it: a fixed pool of workers answers requests, bodies are size-capped and read with a
//! deadline on a bounded set of threads, and large responses are written by a bounded set of
//! sender threads so a client that never reads cannot hold a worker (see `server.rs`).

pub mod auth;
mod header;
mod pages;
mod pixels;
mod reply;
pub mod routes;
mod search;
mod server;
pub mod status;
mod study_zip;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pacsbox_archive::Archive;

pub use reply::Reply;
pub use server::serve;
pub use status::{LogLine, RaidReport, StatusDoc, StatusSource};

#[derive(Clone, Debug)]
pub struct WebConfig {
    /// A session unused this long is logged out.
    pub session_idle_timeout: Duration,
    /// Worker threads answering requests.
    pub workers: usize,
    /// Where the generated first admin password is written (and removed once changed).
    pub initial_password_file: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle_timeout: Duration::from_secs(30 * 60),
            workers: 4,
            initial_password_file: None,
        }
    }
}

/// Everything a request handler can reach.
pub struct Web {
    pub archive: Archive,
    pub status: Arc<dyn StatusSource>,
    pub config: WebConfig,
    pub sessions: auth::Sessions,
    pub started: Instant,
}

impl Web {
    /// Sets up the web layer; on first start (no users) creates `admin` with a generated
    /// password that must be changed at first login, and returns that password.
    pub fn new(
        archive: Archive,
        status: Arc<dyn StatusSource>,
        config: WebConfig,
    ) -> anyhow::Result<(Web, Option<String>)> {
        let initial = auth::ensure_first_admin(&archive, config.initial_password_file.as_deref())?;
        let sessions = auth::Sessions::new(config.session_idle_timeout);
        Ok((
            Web {
                archive,
                status,
                config,
                sessions,
                started: Instant::now(),
            },
            initial,
        ))
    }
}
