//! The readiness protocol against a real datagram socket standing in for systemd's
//! `NOTIFY_SOCKET`: what the daemon sends is what systemd would read.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn ready_status_and_watchdog_reach_the_socket_and_nothing_breaks_without_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // SAFETY: this test binary runs this one test only, so no other thread reads the
    // environment while it changes.
    unsafe {
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "3000000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    }
    assert_eq!(
        pacsbox_lan::notify::watchdog_interval(),
        Some(Duration::from_millis(1500))
    );

    let mut buf = [0u8; 512];
    pacsbox_lan::notify::ready("serving PACSBOX on 11112");
    let n = sock.recv(&mut buf).expect("READY datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    assert!(
        msg.lines().any(|l| l == "STATUS=serving PACSBOX on 11112"),
        "{msg:?}"
    );

    pacsbox_lan::notify::watchdog();
    let n = sock.recv(&mut buf).expect("WATCHDOG datagram");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "WATCHDOG=1");

    pacsbox_lan::notify::stopping();
    let n = sock.recv(&mut buf).expect("STOPPING datagram");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));

    // Outside systemd: no socket, no watchdog, and the calls are harmless no-ops.
    // SAFETY: as above.
    unsafe {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::set_var("WATCHDOG_PID", "1");
    }
    assert_eq!(pacsbox_lan::notify::watchdog_interval(), None);
    pacsbox_lan::notify::ready("no systemd");
    sock.set_nonblocking(true).expect("nonblocking");
    assert!(
        sock.recv(&mut buf).is_err(),
        "nothing sent without NOTIFY_SOCKET"
    );
}
