//! The announcement as a client on the LAN sees it: mdns-sd's own browser (a separate daemon,
//! its own sockets) resolves `_dicom._tcp`, reads the AE title and port, and sees the goodbye.
//! Both sides use 127.0.0.1 only: a test must not multicast onto a real LAN.

use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent};
use pacsbox_lan::{Announcement, Announcer, DICOM_SERVICE, HTTP_SERVICE};

#[test]
fn browser_finds_ae_title_and_port_then_the_goodbye() {
    // Unique per run: other announcers (a second test run, a real box) may share the LAN.
    let tag = format!("{:04x}", std::process::id() & 0xffff);
    let ae = format!("PBXTEST{tag}");
    let a = Announcement {
        ae_title: ae.clone(),
        dicom_port: 11112,
        http_port: 8080,
        hostname: format!("pacsbox-test-{tag}"),
        loopback_only: true,
    };
    let browser = ServiceDaemon::new().expect("browser daemon");
    pacsbox_lan::mdns::restrict_to_loopback(&browser).expect("browser on loopback");
    let events = browser.browse(DICOM_SERVICE).expect("browse _dicom._tcp");
    let http_events = browser.browse(HTTP_SERVICE).expect("browse _http._tcp");
    let announcer = Announcer::start(&a).expect("announce");
    let fullname = format!("{ae}.{DICOM_SERVICE}");
    assert_eq!(announcer.fullnames()[0], fullname);

    let deadline = Instant::now() + Duration::from_secs(30);
    let resolved = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(s)) if s.get_fullname() == fullname => break s,
            Ok(_) => continue,
            Err(e) => panic!("{fullname} not resolved within 30 s: {e}"),
        }
    };
    assert_eq!(resolved.get_port(), 11112);
    assert_eq!(resolved.get_property_val_str("AET"), Some(ae.as_str()));
    assert_eq!(
        resolved.get_property_val_str("PrimaryDeviceType"),
        Some("ARCHIVE")
    );
    assert_eq!(
        resolved.get_hostname(),
        format!("pacsbox-test-{tag}.local.")
    );
    assert!(
        !resolved.get_addresses().is_empty(),
        "an address record came with the service"
    );

    let http_name = format!("{ae} on pacsbox-test-{tag}.{HTTP_SERVICE}");
    let http = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match http_events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(s)) if s.get_fullname() == http_name => break s,
            Ok(_) => continue,
            Err(e) => panic!("{http_name} not resolved: {e}"),
        }
    };
    assert_eq!(http.get_port(), 8080);
    assert_eq!(http.get_property_val_str("path"), Some("/"));

    announcer
        .goodbye(Duration::from_secs(5))
        .expect("goodbye confirmed");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceRemoved(_, name)) if name == fullname => break,
            Ok(_) => continue,
            Err(e) => panic!("no goodbye for {fullname} seen within 15 s: {e}"),
        }
    }
    let _ = browser.shutdown();
}
