//! Facts about the box itself: its name and addresses (how a technician reaches it), the
//! clock, and the free space of the data volume. Thin wrappers over the OS, each failing soft:
//! a panel that cannot learn the hostname shows "?" rather than stopping.

/// The host name as mDNS (avahi) announces it: `<hostname>.local`.
pub fn mdns_name() -> String {
    match nix::unistd::gethostname() {
        Ok(name) => format!("{}.local", name.to_string_lossy()),
        Err(e) => {
            tracing::debug!(error = %e, "no hostname");
            "?".into()
        }
    }
}

/// IPv4 addresses of the interfaces that are up, loopback left out (nobody can reach the box
/// there); IPv6 link-local addresses are left out too, they are unusable in a browser.
pub fn addresses() -> Vec<String> {
    let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for ifa in ifaddrs {
        if ifa.interface_name == "lo" {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(sin) = addr.as_sockaddr_in() {
            v4.push(sin.ip().to_string());
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip = sin6.ip();
            if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 {
                v6.push(ip.to_string());
            }
        }
    }
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    v4.extend(v6);
    v4
}

/// Seconds east of UTC of the local time zone now (for showing local clock times).
pub fn utc_offset_s(unix: i64) -> i32 {
    let t = unix as libc::time_t;
    // SAFETY: localtime_r only writes into the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { tm.tm_gmtoff as i32 } else { 0 }
}
