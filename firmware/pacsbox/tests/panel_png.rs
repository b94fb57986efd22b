//! End to end: `pacsbox serve --panel png:DIR` draws every page as a PNG while the archive
//! serves, from the same health model `/status.json` reports — here with a recorded
//! `/proc/mdstat` of a degraded RAID 5, so both must show the failed disk.

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Only against a hang: how fast the panel appears is measured by `bench/panel_first_paint.py`,
/// not asserted here (a loaded 2-core CI machine is no measure of speed).
const HANG_GUARD: Duration = Duration::from_secs(120);

impl Server {
    /// Fails the test if the server has exited: everything below waits on a live server.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("pacsbox serve exited: {status}");
        }
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n")?.1.to_owned())
}

#[test]
fn serve_with_a_png_panel_draws_every_page_and_agrees_with_status_json() {
    let tmp = tempfile::tempdir().unwrap();
    let panel_dir = tmp.path().join("panel");
    let mdstat = tmp.path().join("mdstat");
    std::fs::write(
        &mdstat,
        "Personalities : [raid5]\n\
         md0 : active raid5 sdd1[3](F) sdc1[1] sdb1[0]\n      \
         7813772288 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]\n\n\
         unused devices: <none>\n",
    )
    .unwrap();
    let config = tmp.path().join("pacsbox.toml");
    std::fs::write(
        &config,
        format!(
            "[panel]\nrefresh_ms = 200\n[health]\nmdstat_path = {:?}\nsmartctl = \"\"\n",
            mdstat.display().to_string()
        ),
    )
    .unwrap();
    let http_port = free_port();
    let started = Instant::now();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_pacsbox"))
            .args(["serve", "--bind", "127.0.0.1", "--reserve-mb", "1"])
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(tmp.path().join("data"))
            .args(["--dicom-port", &free_port().to_string()])
            .args(["--http-port", &http_port.to_string()])
            .args(["--https-port", &free_port().to_string()])
            .args(["--dicom-tls-port", &free_port().to_string()])
            .arg("--panel")
            .arg(format!("png:{}", panel_dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pages = [
        "identity",
        "storage",
        "activity",
        "alarms",
        "certificate",
        "screen",
    ];
    while !pages
        .iter()
        .all(|p| panel_dir.join(format!("{p}.png")).exists())
    {
        server.assert_running();
        assert!(
            started.elapsed() < HANG_GUARD,
            "panel PNGs not written; have {:?}",
            std::fs::read_dir(&panel_dir).map(|d| d.count())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut frames = Vec::new();
    for p in pages {
        let bytes = std::fs::read(panel_dir.join(format!("{p}.png"))).unwrap();
        frames.push(pacsbox_panel::output::frame_from_png(&bytes).unwrap());
    }
    assert!(frames[0] != frames[1], "identity and storage pages differ");
    assert!(
        frames[4] != frames[0],
        "the certificate page is a page of its own"
    );

    let status = loop {
        if let Some(body) = get(http_port, "/status.json")
            && body.contains("\"dicom_accepting\": true")
        {
            break body;
        }
        server.assert_running();
        assert!(started.elapsed() < HANG_GUARD, "no status.json");
        std::thread::sleep(Duration::from_millis(100));
    };
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(doc["raid"][0]["name"], "md0");
    assert_eq!(doc["raid"][0]["state"], "degraded");
    let alarms = doc["alarms"].as_array().unwrap();
    assert_eq!(alarms[0]["kind"], "disk_failed", "{alarms:?}");
    assert_eq!(alarms[0]["disk"], "sdd");
    assert!(doc["hostname"].as_str().unwrap().ends_with(".local"));
    for key in ["instances_today", "refusing_stores", "disk_free_bytes"] {
        assert!(doc.get(key).is_some(), "{key} missing");
    }
    // Without a session the document is health only.
    assert!(doc.get("last_received").is_none());
    assert_eq!(
        doc["tls_fingerprint"].as_str().map(|f| f.len()),
        Some(95),
        "the HTTPS certificate's SHA-256"
    );
    // The panel shows the same alarm full-screen: its screen is none of the pages.
    let screen_bytes = std::fs::read(panel_dir.join("screen.png")).unwrap();
    let screen = pacsbox_panel::output::frame_from_png(&screen_bytes).unwrap();
    assert!(frames[..4].iter().all(|f| *f != screen));
}
