//! What `serve` does only because it runs on the appliance: waiting for the data volume,
//! telling systemd it is ready and alive, announcing itself on the LAN, logging whether the
//! clock can be trusted. Kept apart from `main.rs` and `status.rs` so those stay about wiring and
//! pages.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use pacsbox_health::{AlarmReport, Health};
use pacsbox_lan::{Announcement, Announcer, notify};

use crate::config::Config;

/// How often a missing data volume is looked for again.
const MOUNT_POLL: Duration = Duration::from_secs(2);

/// With `require_mount`, blocks until `data_dir` is a mount point, writing nothing meanwhile:
/// no archive, no index, not even the folder, so a RAID that failed to assemble can never
/// make the SD card the archive. Until then `/status.json` answers on the HTTP port with
/// `data_volume_mounted: false` and an alarm, the DICOM port stays closed (modalities see
/// "connection refused" and keep their images), and systemd's status line says why. `health`
/// is what the front panel shows meanwhile (the caller runs the panel).
pub fn wait_for_data_volume(c: &Config, health: &dyn Fn() -> Health) -> anyhow::Result<()> {
    if !data_volume_missing(c) {
        return Ok(());
    }
    let dir = c.data_dir.display().to_string();
    tracing::error!(
        data = dir,
        "data volume is not mounted: storing nothing until it is (check the RAID / USB disk)"
    );
    let status_line = format!("waiting for the data volume at {dir}");
    // Ready in systemd's sense (it must not time out and restart us in a loop); the status
    // line and /status.json say what is wrong.
    notify::ready(&status_line);
    let http_addr = format!("{}:{}", c.bind, c.http_port);
    let listener = TcpListener::bind(&http_addr)
        .with_context(|| format!("listening for HTTP on {http_addr}"))?;
    listener
        .set_nonblocking(true)
        .context("non-blocking HTTP listener")?;
    let watchdog = notify::watchdog_interval();
    let mut last_check = Instant::now();
    let mut last_log = Instant::now();
    loop {
        if last_check.elapsed() >= MOUNT_POLL {
            last_check = Instant::now();
            if pacsbox_archive::layout::is_mount_point(&c.data_dir) {
                tracing::info!(data = dir, "data volume mounted; starting");
                notify::status("data volume mounted; starting");
                return Ok(());
            }
            if watchdog.is_some() {
                notify::watchdog();
            }
            if last_log.elapsed() >= Duration::from_secs(60) {
                last_log = Instant::now();
                tracing::error!(data = dir, "data volume still not mounted");
            }
        }
        match listener.accept() {
            Ok((stream, _)) => answer_missing_volume(stream, &missing_volume_status(c, &health())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => {
                tracing::debug!(error = %e, "HTTP accept while waiting for the data volume");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `require_mount` is set and the data folder is not a mount point (yet).
pub fn data_volume_missing(c: &Config) -> bool {
    c.require_mount && !pacsbox_archive::layout::is_mount_point(&c.data_dir)
}

fn missing_volume_status(c: &Config, health: &Health) -> String {
    let alarms: Vec<AlarmReport> = health.alarms().iter().map(AlarmReport::from).collect();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ae_title": c.ae_title,
        "dicom_port": c.dicom_port,
        "http_port": c.http_port,
        "data_dir": c.data_dir.display().to_string(),
        "data_volume_mounted": false,
        "dicom_accepting": false,
        "hostname": health.identity.hostname,
        "addresses": health.identity.addresses,
        "alarms": alarms,
    })
    .to_string()
}

/// One request, one answer, connection closed: a stop-gap page, so no keep-alive, no routing
/// beyond "status.json or not".
fn answer_missing_volume(mut stream: std::net::TcpStream, json: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 2048];
    let n = stream.read(&mut buf).unwrap_or(0);
    let request = String::from_utf8_lossy(&buf[..n]);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (ctype, body) = if path.starts_with("/status.json") {
        ("application/json", json.to_owned())
    } else {
        (
            "text/plain; charset=utf-8",
            "pacsbox: the data volume is not mounted; nothing is stored until it is.\n".into(),
        )
    };
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = stream.write_all(response.as_bytes()) {
        tracing::debug!(error = %e, "HTTP client went away");
    }
}

/// The daemon's presence while it serves: mDNS announcement (if configured) and systemd
/// readiness. Dropped or stopped, it says goodbye.
pub struct Presence {
    announcer: Option<Announcer>,
}

impl Presence {
    /// Call once the listeners are bound: that is when a modality can really connect.
    pub fn start(c: &Config) -> Presence {
        log_clock();
        let announcer = c
            .mdns
            .then(|| {
                Announcer::start(&Announcement {
                    ae_title: c.ae_title.clone(),
                    dicom_port: c.dicom_port,
                    http_port: c.http_port,
                    hostname: pacsbox_health::host::mdns_name(),
                    loopback_only: false,
                })
                .inspect_err(|e| tracing::warn!(error = %e, "mDNS announcement failed"))
                .ok()
            })
            .flatten();
        notify::ready(&format!(
            "serving {} on DICOM port {}, HTTP port {}",
            c.ae_title, c.dicom_port, c.http_port
        ));
        Presence { announcer }
    }

    /// Shutdown has begun: systemd is told, the LAN gets its goodbye.
    pub fn stop(mut self) {
        notify::stopping();
        if let Some(a) = self.announcer.take()
            && let Err(e) = a.goodbye(Duration::from_secs(2))
        {
            tracing::warn!(error = %e, "mDNS goodbye");
        }
    }
}

/// Pings systemd's watchdog from the async runtime, so a wedged runtime stops the pings and
/// systemd restarts the service. Returns at once when no watchdog is configured.
pub async fn watchdog() {
    let Some(every) = notify::watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        notify::watchdog();
    }
}

/// The Pi has no real-time clock: until NTP synchronises, "today" and received times are
/// wrong. Logged so that a support person reading the journal knows which times to trust.
fn log_clock() {
    // systemd-timesyncd creates this file once it has synchronised the clock.
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        tracing::info!("clock synchronised (systemd-timesyncd)");
    } else {
        tracing::warn!("clock not (yet) synchronised by NTP: received times may be wrong");
    }
}
