//! End to end, the daemon as systemd and a technician meet it: a real notify socket stands in
//! for systemd's, and the data volume guard is checked by what exists on disk afterwards.

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
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

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n")?.1.to_owned())
}

fn start(config: &Path, notify: &Path, dicom_port: u16, http_port: u16) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_pacsbox"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--bind", "127.0.0.1", "--dicom-port"])
            .arg(dicom_port.to_string())
            .arg("--http-port")
            .arg(http_port.to_string())
            // Tests run at once: none may take the default HTTPS port.
            .args(["--https-port", "0", "--dicom-tls-port", "0"])
            .env("NOTIFY_SOCKET", notify)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn recv_text(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = sock
        .recv(&mut buf)
        .expect("a notify datagram within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn missing_data_volume_writes_nothing_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("srv-pacsbox");
    let config = tmp.path().join("pacsbox.toml");
    let panel_dir = tmp.path().join("panel");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nrequire_mount = true\n[panel]\ndisplay = {:?}\nrefresh_ms = 200\n\
             language = \"ko\"\n\
             [health]\nsmartctl = \"\"\n",
            data.display().to_string(),
            format!("png:{}", panel_dir.display())
        ),
    )
    .unwrap();
    let notify_path = tmp.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (dicom_port, http_port) = (free_port(), free_port());
    let _server = start(&config, &notify_path, dicom_port, http_port);

    let msg = recv_text(&notify);
    assert!(msg.contains("READY=1"), "{msg:?}");
    assert!(
        msg.contains("STATUS=waiting for the data volume"),
        "{msg:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(body) = get(http_port, "/status.json") {
            break body;
        }
        assert!(Instant::now() < deadline, "no /status.json within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(doc["data_volume_mounted"], false, "{doc}");
    assert_eq!(doc["dicom_accepting"], false);
    assert_eq!(doc["alarms"][0]["kind"], "volume_missing", "{doc}");
    assert_eq!(doc["alarms"][0]["severity"], "critical");
    assert_eq!(doc["alarms"].as_array().map(Vec::len), Some(1), "{doc}");
    // The front panel says the same, full screen, while the daemon waits — in the language
    // of the settings file (Korean here; panel_png.rs sees the English pages).
    let expected = pacsbox_panel::output::render(
        &pacsbox_panel::pages::Screen::Alarm {
            alarm: pacsbox_health::Alarm::VolumeMissing,
            others: 0,
        },
        &pacsbox_health::Health::default(),
        pacsbox_panel::Language::Ko,
    );
    let screen = panel_dir.join("screen.png");
    loop {
        if let Ok(bytes) = std::fs::read(&screen)
            && pacsbox_panel::output::frame_from_png(&bytes).ok() == Some(expected.clone())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the panel does not show the missing-volume alarm ({} exists: {})",
            screen.display(),
            screen.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        TcpStream::connect(("127.0.0.1", dicom_port)).is_err(),
        "DICOM must stay closed: a modality keeps its images rather than filling the SD card"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !data.exists(),
        "nothing may be created on the root file system"
    );
}

#[test]
fn ready_is_sent_once_serving_and_stopping_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("pacsbox.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let notify_path = tmp.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (dicom_port, http_port) = (free_port(), free_port());
    let server = start(&config, &notify_path, dicom_port, http_port);

    let msg = recv_text(&notify);
    assert!(msg.contains("READY=1"), "{msg:?}");
    assert!(msg.contains("STATUS=serving PACSBOX"), "{msg:?}");
    // READY means a modality can connect now, not some time later.
    TcpStream::connect(("127.0.0.1", dicom_port)).expect("DICOM port open at READY");

    let pid = server.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let msg = recv_text(&notify);
    assert!(msg.contains("STOPPING=1"), "{msg:?}");
}
