//! The HTTP status endpoint (tiny_http): `/status.json` for scripts, `/` as plain text. The
//! web UI proper is its own part (web-ui/). [`StatusSource::health`] is also where the front
//! panel's health model is built, from the archive, the DICOM service and the health sources,
//! so the panel and `/status.json` can never disagree.
//!
//! tiny_http spawns a thread per connection and has no limits of its own; here a fixed pool
//! of workers answers requests, and only GETs of two small documents exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use pacsbox_archive::Archive;
use pacsbox_dicom::ScpStatus;
use pacsbox_health::{AlarmReport, DataVolume, DiskReport, Health, HealthSources, MdArray};
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
    /// `<hostname>.local`
    pub hostname: String,
    pub addresses: Vec<String>,
    pub dicom_accepting: bool,
    /// md arrays from /proc/mdstat, each with its `state`.
    pub raid: Vec<RaidReport>,
    pub disks: Vec<DiskReport>,
    /// What needs a person, most urgent first (the panel shows the first).
    pub alarms: Vec<AlarmReport>,
}

#[derive(Serialize)]
pub struct RaidReport {
    #[serde(flatten)]
    pub array: MdArray,
    #[serde(flatten)]
    pub state: pacsbox_health::RaidState,
}

pub struct StatusSource {
    pub archive: Archive,
    pub scp: Arc<ScpStatus>,
    pub config: Config,
    pub started: Instant,
    pub health: HealthSources,
    /// Set while the DICOM listener is accepting associations.
    pub dicom_accepting: Arc<AtomicBool>,
}

impl StatusSource {
    /// The health model now: what the front panel draws and `/status.json` reports.
    pub fn health(&self) -> anyhow::Result<Health> {
        let disk = self.archive.disk_space()?;
        let today = self.archive.activity();
        let scp = self.scp.snapshot();
        let arrays = self.health.arrays();
        let disks = self.health.disks(&arrays);
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(Health {
            identity: pacsbox_health::Identity {
                hostname: pacsbox_health::host::mdns_name(),
                addresses: pacsbox_health::host::addresses(),
                ae_title: self.config.ae_title.clone(),
                dicom_port: self.config.dicom_port,
                http_port: self.config.http_port,
            },
            volume: DataVolume {
                total_bytes: disk.total_bytes,
                free_bytes: disk.free_bytes,
                reserve_bytes: self.config.reserve_mb << 20,
            },
            arrays,
            disks,
            traffic: pacsbox_health::Traffic {
                studies_today: today.studies_today,
                instances_today: today.instances_today,
                last_study: today.last.map(|l| pacsbox_health::LastStudy {
                    received_unix: l.received_unix,
                    modality: l.modality,
                    calling_ae: l.calling_ae,
                }),
                active_associations: scp.active_associations,
                dicom_accepting: self.dicom_accepting.load(Ordering::Relaxed),
            },
            clock: pacsbox_health::Clock {
                now_unix,
                utc_offset_s: pacsbox_health::host::utc_offset_s(now_unix),
            },
        })
    }

    pub fn collect(&self) -> anyhow::Result<StatusDoc> {
        let counts = self.archive.counts()?;
        let scp = self.scp.snapshot();
        // The last study keeps its study UID here (the panel's model leaves it out).
        let last_received = self.archive.activity().last;
        let health = self.health()?;
        let alarms = health.alarms().iter().map(AlarmReport::from).collect();
        let Health {
            identity,
            volume,
            arrays,
            disks,
            traffic,
            ..
        } = health;
        Ok(StatusDoc {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            ae_title: identity.ae_title,
            dicom_port: identity.dicom_port,
            http_port: identity.http_port,
            data_dir: self.archive.root().display().to_string(),
            patients: counts.patients,
            studies: counts.studies,
            series: counts.series,
            instances: counts.instances,
            instances_today: traffic.instances_today,
            studies_today: traffic.studies_today,
            last_received,
            active_associations: traffic.active_associations,
            associations_total: scp.associations_total,
            associations_rejected: scp.associations_rejected,
            instances_stored: scp.instances_stored,
            stores_failed: scp.stores_failed,
            disk_total_bytes: volume.total_bytes,
            disk_free_bytes: volume.free_bytes,
            reserve_bytes: volume.reserve_bytes,
            // Live, not only the flag of the last store: the page must show it before a store fails.
            refusing_stores: volume.refusing_stores(),
            hostname: identity.hostname,
            addresses: identity.addresses,
            dicom_accepting: traffic.dicom_accepting,
            raid: arrays
                .into_iter()
                .map(|array| RaidReport {
                    state: array.state(),
                    array,
                })
                .collect(),
            disks,
            alarms,
        })
    }
}

fn as_text(s: &StatusDoc) -> String {
    format!(
        "pacsbox {}\nAE title {}  DICOM port {}  HTTP port {}\nuptime {} s\n\
         patients {}  studies {}  series {}  instances {}\n\
         active associations {}\ndisk free {} MiB of {} MiB\n{}",
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
        s.alarms
            .iter()
            .map(|a| format!("ALARM: {} - {}\n", a.title, a.action))
            .collect::<String>()
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
