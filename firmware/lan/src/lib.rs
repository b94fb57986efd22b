//! The appliance as the LAN and systemd see it, kept out of the archive and the DICOM code.
//!
//! - [`Announcer`] announces the DICOM service (`_dicom._tcp`) and the web page (`_http._tcp`)
//!   over multicast DNS with mdns-sd, so an installer finds the box by name with nothing to
//!   configure; it says goodbye (records with TTL 0) when the daemon stops, so browsers drop
//!   the box at once instead of after the records' TTL.
//! - [`notify`] tells systemd (`Type=notify`) when the daemon is ready and that it is alive
//!   (watchdog); every call is a no-op outside systemd (`NOTIFY_SOCKET` unset).

pub mod mdns;
pub mod notify;

pub use mdns::{Announcement, Announcer, DICOM_SERVICE, HTTP_SERVICE};

#[derive(Debug, thiserror::Error)]
pub enum LanError {
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error("mDNS: {0}")]
    Invalid(String),
    #[error("mDNS daemon did not confirm the goodbye for {0} in time")]
    GoodbyeTimeout(String),
}
