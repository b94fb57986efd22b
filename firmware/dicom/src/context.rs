//! What the SCP is configured with, what it counts, and the one value `server.rs` hands every
//! DIMSE service ([`ServiceContext`]), as mini-redis hands each command its `Handler`: the
//! services take what they need from it and never reach back into the listener.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pacsbox_archive::Archive;

#[derive(Clone, Debug)]
pub struct ScpConfig {
    pub ae_title: String,
    pub max_associations: usize,
    /// Largest PDU we accept (announced in A-ASSOCIATE-AC).
    pub max_pdu: u32,
    /// An association silent this long is closed.
    pub idle_timeout: Duration,
    /// ARTIM (PS3.8 9.1.2): a new connection has this long to deliver its A-ASSOCIATE-RQ.
    pub artim_timeout: Duration,
    /// Connections without a negotiated association (awaiting their A-ASSOCIATE-RQ or being
    /// rejected); when full, the oldest is closed to make room.
    pub max_pending: usize,
    /// Reject associations whose Called AE Title is not ours (off by default: modalities are
    /// often configured with a wrong called AE, and the clinic would rather have the images).
    pub check_called_ae: bool,
}

impl Default for ScpConfig {
    fn default() -> Self {
        ScpConfig {
            ae_title: "PACSBOX".into(),
            max_associations: 16,
            max_pdu: 128 * 1024,
            idle_timeout: Duration::from_secs(120),
            artim_timeout: Duration::from_secs(30),
            max_pending: 64,
            check_called_ae: false,
        }
    }
}

/// Live counters for the status page and the front panel.
#[derive(Debug, Default)]
pub struct ScpStatus {
    pub active_associations: AtomicUsize,
    pub associations_total: AtomicU64,
    pub associations_rejected: AtomicU64,
    pub instances_stored: AtomicU64,
    pub stores_failed: AtomicU64,
}

#[derive(Debug, serde::Serialize)]
pub struct ScpStatusSnapshot {
    pub active_associations: usize,
    pub associations_total: u64,
    pub associations_rejected: u64,
    pub instances_stored: u64,
    pub stores_failed: u64,
}

impl ScpStatus {
    pub fn snapshot(&self) -> ScpStatusSnapshot {
        ScpStatusSnapshot {
            active_associations: self.active_associations.load(Ordering::Relaxed),
            associations_total: self.associations_total.load(Ordering::Relaxed),
            associations_rejected: self.associations_rejected.load(Ordering::Relaxed),
            instances_stored: self.instances_stored.load(Ordering::Relaxed),
            stores_failed: self.stores_failed.load(Ordering::Relaxed),
        }
    }
}

/// What a DIMSE service works with besides its association and request: the archive, the
/// counters it updates, and the SCP's settings (C-MOVE's destinations, our PDU size and idle
/// timeout for the sub-associations it opens).
#[derive(Clone, Copy)]
pub struct ServiceContext<'a> {
    pub archive: &'a Archive,
    pub status: &'a ScpStatus,
    pub config: &'a ScpConfig,
    /// Where queries and retrievals are recorded.
    pub audit: &'a pacsbox_audit::Audit,
    /// This association's stores, recorded per study when it ends.
    pub log: &'a crate::audit::AssociationLog,
    /// DICOM TLS (certificates trusted, ours): C-MOVE to a peer whose entry says `tls`.
    pub trust: Option<&'a crate::trust::PeerTrust>,
    /// Storage commitment reports being delivered by associations (`commitment.rs`).
    pub commitments: &'a crate::commitment::Reporter,
}
