//! Forwarding of the audit trail to the clinic's syslog collector (IHE ATNA, ITI-20 "Record
//! Audit Event"): each record of `pacsbox-audit`'s trail as a DICOM Audit Message (PS3.15
//! A.5, [`message`]) in an RFC 5424 syslog message, octet-counted over TLS (RFC 5425,
//! [`syslog`]), sent by one thread that reads the trail's files and keeps its place on disk
//! ([`forward`]). The trail stays the source of truth; this crate only reads it.

pub mod forward;
pub mod message;
pub mod syslog;

pub use forward::{Cursor, ForwardError, Forwarder, Settings};
pub use message::Source;
pub use pacsbox_audit::ForwardStatus;

#[cfg(test)]
mod tests;
