//! DNS-SD over multicast DNS (mdns-sd): `_dicom._tcp` and `_http._tcp`.
//!
//! DICOM PS3.15 Annex H.2 fixes the service name `dicom` for unsecured DICOM and the TXT keys
//! `AET` (the Called AE Title to use) and `PrimaryDeviceType`; the instance name is the AE title
//! too, because a client that ignores TXT must fall back to it. `_http._tcp` carries the
//! DNS-SD convention `path=/`. The host name (`pacsbox-xxxx.local`) is announced with the
//! services' address records. Addresses are left to mdns-sd (`enable_addr_auto`) so a new DHCP
//! lease or a link-local fallback is re-announced without us watching interfaces.

use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo, UnregisterStatus};

use crate::LanError;

/// DNS-SD service type of an unsecured DICOM association acceptor (PS3.15 H.2.3).
pub const DICOM_SERVICE: &str = "_dicom._tcp.local.";
/// DNS-SD service type of the web page.
pub const HTTP_SERVICE: &str = "_http._tcp.local.";
/// PS3.15 H.2.3 `PrimaryDeviceType` (Table H.1-2, a code value); an archive is what we are.
pub const PRIMARY_DEVICE_TYPE: &str = "ARCHIVE";

/// What the box announces.
#[derive(Clone, Debug)]
pub struct Announcement {
    pub ae_title: String,
    pub dicom_port: u16,
    pub http_port: u16,
    /// Host name with or without `.local`, e.g. `pacsbox-1a2b`.
    pub hostname: String,
    /// Announce on 127.0.0.1 only. For tests: they must not multicast onto a real LAN.
    pub loopback_only: bool,
}

impl Announcement {
    /// `pacsbox-1a2b.local.` — the form DNS-SD host records need.
    pub fn host_fqdn(&self) -> String {
        let h = self.hostname.trim_end_matches('.');
        let h = h.strip_suffix(".local").unwrap_or(h);
        format!("{h}.local.")
    }

    fn services(&self) -> Result<Vec<ServiceInfo>, LanError> {
        let ae = self.ae_title.trim();
        if ae.is_empty() {
            return Err(LanError::Invalid("empty AE title".into()));
        }
        let host = self.host_fqdn();
        let label = host.trim_end_matches(".local.");
        let dicom = ServiceInfo::new(
            DICOM_SERVICE,
            ae,
            &host,
            "",
            self.dicom_port,
            &[("AET", ae), ("PrimaryDeviceType", PRIMARY_DEVICE_TYPE)][..],
        )?
        .enable_addr_auto();
        let http = ServiceInfo::new(
            HTTP_SERVICE,
            &format!("{ae} on {label}"),
            &host,
            "",
            self.http_port,
            &[("path", "/")][..],
        )?
        .enable_addr_auto();
        Ok(vec![dicom, http])
    }
}

/// Makes `daemon` use 127.0.0.1 only (mdns-sd applies selections in order, so all off, then
/// loopback on).
pub fn restrict_to_loopback(daemon: &ServiceDaemon) -> Result<(), LanError> {
    daemon.disable_interface(IfKind::All)?;
    daemon.enable_interface(IfKind::LoopbackV4)?;
    Ok(())
}

/// The running announcement. Call [`Announcer::goodbye`] on shutdown; dropping it without
/// does the same, best effort.
pub struct Announcer {
    daemon: Option<ServiceDaemon>,
    fullnames: Vec<String>,
}

impl Announcer {
    /// Starts an mDNS responder and registers both services.
    pub fn start(a: &Announcement) -> Result<Announcer, LanError> {
        let services = a.services()?;
        let daemon = ServiceDaemon::new()?;
        if a.loopback_only {
            restrict_to_loopback(&daemon)?;
        }
        let mut fullnames = Vec::new();
        for s in services {
            fullnames.push(s.get_fullname().to_owned());
            daemon.register(s)?;
        }
        tracing::info!(
            host = a.host_fqdn(),
            ae_title = a.ae_title,
            dicom_port = a.dicom_port,
            http_port = a.http_port,
            "announcing on mDNS"
        );
        Ok(Announcer {
            daemon: Some(daemon),
            fullnames,
        })
    }

    /// The DNS-SD full names announced (`PACSBOX._dicom._tcp.local.`, …).
    pub fn fullnames(&self) -> &[String] {
        &self.fullnames
    }

    /// Withdraws every service (goodbye packets, TTL 0) and stops the responder. Waits at most
    /// `timeout` per service: shutdown must not hang on a dead network.
    pub fn goodbye(mut self, timeout: Duration) -> Result<(), LanError> {
        self.withdraw(timeout)
    }

    fn withdraw(&mut self, timeout: Duration) -> Result<(), LanError> {
        let Some(daemon) = self.daemon.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        for name in &self.fullnames {
            match daemon.unregister(name) {
                Ok(rx) => match rx.recv_timeout(timeout) {
                    Ok(UnregisterStatus::OK) => {}
                    Ok(UnregisterStatus::NotFound) => {
                        tracing::debug!(service = name, "was not registered")
                    }
                    Err(_) => result = Err(LanError::GoodbyeTimeout(name.clone())),
                },
                Err(e) => result = Err(e.into()),
            }
        }
        if let Ok(rx) = daemon.shutdown() {
            // The daemon thread exits after this; its status only matters for logging.
            let _ = rx.recv_timeout(timeout);
        }
        tracing::info!("mDNS goodbye sent");
        result
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Err(e) = self.withdraw(Duration::from_secs(1)) {
            tracing::warn!(error = %e, "mDNS goodbye");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_local_fqdns_and_bad_ae_is_refused() {
        let mut a = Announcement {
            ae_title: "PACSBOX".into(),
            dicom_port: 104,
            http_port: 80,
            hostname: "pacsbox-1a2b.local".into(),
            loopback_only: true,
        };
        assert_eq!(a.host_fqdn(), "pacsbox-1a2b.local.");
        a.hostname = "pacsbox-1a2b".into();
        assert_eq!(a.host_fqdn(), "pacsbox-1a2b.local.");
        let services = a.services().expect("valid announcement");
        assert_eq!(services[0].get_fullname(), "PACSBOX._dicom._tcp.local.");
        assert_eq!(services[0].get_property_val_str("AET"), Some("PACSBOX"));
        assert_eq!(
            services[0].get_property_val_str("PrimaryDeviceType"),
            Some("ARCHIVE")
        );
        assert_eq!(services[1].get_property_val_str("path"), Some("/"));
        a.ae_title = "  ".into();
        assert!(a.services().is_err());
    }
}
