//! The HTTP status endpoint (tiny_http): `/status.json` for scripts and the front panel, `/`
//! as plain text. The web UI proper is its own part (web-ui/).
//!
//! tiny_http spawns a thread per connection and has no limits of its own; here a fixed pool
//! of workers answers requests, and only GETs of two small documents exist.

use std::sync::Arc;
use std::time::Instant;

use pacsbox_archive::Archive;
use pacsbox_dicom::ScpStatus;
use serde::Serialize;

use crate::config::Config;

#[derive(Serialize)]
pub struct StatusDoc {
    pub version: &'static str,
    pub uptime_s: u64,
    pub ae_title: String,
    pub dicom_port: u16,
    pub http_port: u16,
    pub data_dir: String,
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
    pub instances_today: u64,
    pub studies_today: u64,
    pub last_received: Option<pacsbox_archive::activity::LastReceived>,
    pub active_associations: usize,
    pub associations_total: u64,
    pub associations_rejected: u64,
    pub instances_stored: u64,
    pub stores_failed: u64,
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub reserve_bytes: u64,
    pub refusing_stores: bool,
}

pub struct StatusSource {
    pub archive: Archive,
    pub scp: Arc<ScpStatus>,
    pub config: Config,
    pub started: Instant,
}

impl StatusSource {
    pub fn collect(&self) -> anyhow::Result<StatusDoc> {
        let counts = self.archive.counts()?;
        let disk = self.archive.disk_space()?;
        let scp = self.scp.snapshot();
        let today = self.archive.activity();
        let reserve = self.config.reserve_mb << 20;
        Ok(StatusDoc {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            ae_title: self.config.ae_title.clone(),
            dicom_port: self.config.dicom_port,
            http_port: self.config.http_port,
            data_dir: self.archive.root().display().to_string(),
            patients: counts.patients,
            studies: counts.studies,
            series: counts.series,
            instances: counts.instances,
            instances_today: today.instances_today,
            studies_today: today.studies_today,
            last_received: today.last,
            active_associations: scp.active_associations,
            associations_total: scp.associations_total,
            associations_rejected: scp.associations_rejected,
            instances_stored: scp.instances_stored,
            stores_failed: scp.stores_failed,
            disk_total_bytes: disk.total_bytes,
            disk_free_bytes: disk.free_bytes,
            reserve_bytes: reserve,
            // Live, not only the flag of the last store: the page must show it before a store fails.
            refusing_stores: disk.free_bytes < reserve,
        })
    }
}

fn as_text(s: &StatusDoc) -> String {
    format!(
        "pacsbox {}\nAE title {}  DICOM port {}  HTTP port {}\nuptime {} s\n\
         patients {}  studies {}  series {}  instances {}\n\
         active associations {}\ndisk free {} MiB of {} MiB{}\n",
        s.version,
        s.ae_title,
        s.dicom_port,
        s.http_port,
        s.uptime_s,
        s.patients,
        s.studies,
        s.series,
        s.instances,
        s.active_associations,
        s.disk_free_bytes >> 20,
        s.disk_total_bytes >> 20,
        if s.refusing_stores {
            "\nALARM: free space under the reserve, stores are refused"
        } else {
            ""
        }
    )
}

const WORKERS: usize = 2;

/// Serves until `server.unblock()` is called from elsewhere.
pub fn serve(
    server: Arc<tiny_http::Server>,
    source: Arc<StatusSource>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..WORKERS)
        .map(|i| {
            let server = server.clone();
            let source = source.clone();
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    while let Ok(req) = server.recv() {
                        answer(req, &source);
                    }
                })
        })
        .collect()
}

fn answer(req: tiny_http::Request, source: &StatusSource) {
    use tiny_http::{Header, Method, Response};
    let header = |v: &str| Header::from_bytes("Content-Type", v).ok();
    let path = req.url().split('?').next().unwrap_or("").to_owned();
    let result = if *req.method() != Method::Get && *req.method() != Method::Head {
        req.respond(Response::from_string("method not allowed\n").with_status_code(405))
    } else {
        match (path.as_str(), source.collect()) {
            ("/status.json", Ok(doc)) => {
                let body = serde_json::to_string_pretty(&doc).unwrap_or_default();
                let mut r = Response::from_string(body);
                if let Some(h) = header("application/json") {
                    r = r.with_header(h);
                }
                req.respond(r)
            }
            ("/", Ok(doc)) => {
                let mut r = Response::from_string(as_text(&doc));
                if let Some(h) = header("text/plain; charset=utf-8") {
                    r = r.with_header(h);
                }
                req.respond(r)
            }
            ("/" | "/status.json", Err(e)) => {
                tracing::error!(error = %e, "collecting status");
                req.respond(Response::from_string("status unavailable\n").with_status_code(503))
            }
            _ => req.respond(Response::from_string("not found\n").with_status_code(404)),
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP client went away");
    }
}
