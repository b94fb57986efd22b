//! The status document: what `/status.json` returns to scripts, what the status page shows,
//! and (built from the same health model) what the front panel draws. The binary fills it in
//! ([`StatusSource`]); this crate only presents it.

use pacsbox_health::{AlarmReport, DiskReport, MdArray, RaidState};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct StatusDoc {
    pub version: &'static str,
    pub uptime_s: u64,
    pub ae_title: String,
    pub dicom_port: u16,
    pub http_port: u16,
    /// 0 when HTTPS is off.
    pub https_port: u16,
    /// 0 when DICOM TLS is off.
    pub dicom_tls_port: u16,
    /// SHA-256 of the HTTPS certificate (`AB:CD:…`), for staff to compare with what their
    /// browser shows; empty without HTTPS.
    pub tls_fingerprint: String,
    pub data_dir: String,
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
    pub instances_today: u64,
    pub studies_today: u64,
    pub last_received: Option<pacsbox_archive::activity::LastReceived>,
    /// The last studies received, newest first (no patient data: this document is public).
    pub recent_studies: Vec<pacsbox_archive::activity::LastReceived>,
    pub active_associations: usize,
    pub associations_total: u64,
    pub associations_rejected: u64,
    pub instances_stored: u64,
    pub stores_failed: u64,
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub reserve_bytes: u64,
    pub refusing_stores: bool,
    /// `<hostname>.local`
    pub hostname: String,
    pub addresses: Vec<String>,
    pub dicom_accepting: bool,
    /// md arrays from /proc/mdstat, each with its `state`.
    pub raid: Vec<RaidReport>,
    pub disks: Vec<DiskReport>,
    /// What needs a person, most urgent first (the panel shows the first).
    pub alarms: Vec<AlarmReport>,
    /// Conflicting duplicates kept aside under `conflicts/` for an admin, their bytes and the
    /// folder's cap (past it, conflicting copies are refused with A700).
    pub conflicts: u64,
    pub conflicts_bytes: u64,
    pub conflicts_max_bytes: u64,
    /// Instances acknowledged plain and waiting for compression (done after 2 s without
    /// stores).
    pub compression_pending: usize,
    /// Plain instances kept so until they are `compress_after` old, and their bytes: the disk
    /// space compression will give back as they age.
    pub plain_waiting_instances: u64,
    pub plain_waiting_bytes: u64,
    /// The last warnings and errors logged, newest first.
    pub recent_errors: Vec<LogLine>,
    /// Forwarding of the audit trail to the syslog collector; absent when it is off.
    pub audit_forwarding: Option<pacsbox_audit::ForwardStatus>,
    /// The forwarding queue per peer (`[[forward]]` rules and "Send to…"): waiting, failing
    /// (past `[forwarding] alarm_after` attempts), oldest, last error. Empty: nothing queued.
    pub forwarding: Vec<pacsbox_archive::forward::PeerQueue>,
    /// The scheduled backup (`[backup]`); absent when none is set. Private: it names a folder.
    pub backup: Option<pacsbox_archive::backup::BackupStatus>,
    /// Media inserted into the box (`[media] watch`), one per mounted folder. Private: it
    /// names patients.
    pub media_found: Vec<MediaFound>,
}

/// A USB stick or disc mounted in the box, as surveyed (nothing imported yet).
#[derive(Clone, Debug, Default, Serialize)]
pub struct MediaFound {
    /// The folder's name under the watched folder: what `/admin/import?media=` takes.
    pub name: String,
    pub path: String,
    pub studies: usize,
    pub files: usize,
    /// Patients' names as the media spell them.
    pub patients: Vec<String>,
    /// Why it could not be read; empty when it could.
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RaidReport {
    #[serde(flatten)]
    pub array: MdArray,
    #[serde(flatten)]
    pub state: RaidState,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub unix: i64,
    pub level: String,
    pub message: String,
}

/// Where the status comes from (the binary wires the archive, the DICOM service and the
/// health sources together).
pub trait StatusSource: Send + Sync {
    fn collect(&self) -> anyhow::Result<StatusDoc>;
}

/// The fields anyone on the LAN may read: health and counts. Everything else (the last studies
/// and the calling AEs that sent them, logged warnings with failed login names and paths, the
/// data folder, addresses, and whatever is added later) needs a session: an allow-list, so a
/// new field is private until someone decides otherwise.
const PUBLIC_FIELDS: &[&str] = &[
    "version",
    "uptime_s",
    "ae_title",
    "dicom_port",
    "http_port",
    "https_port",
    "dicom_tls_port",
    "tls_fingerprint",
    "hostname",
    "patients",
    "studies",
    "series",
    "instances",
    "instances_today",
    "studies_today",
    "active_associations",
    "associations_total",
    "associations_rejected",
    "instances_stored",
    "stores_failed",
    "disk_total_bytes",
    "disk_free_bytes",
    "reserve_bytes",
    "refusing_stores",
    "dicom_accepting",
    "raid",
    "disks",
    "alarms",
    "conflicts",
    "conflicts_bytes",
    "conflicts_max_bytes",
    "compression_pending",
    "plain_waiting_instances",
    "plain_waiting_bytes",
    "forwarding",
];

impl StatusDoc {
    /// The part anyone on the LAN may read (`/status.json` without a session): health and
    /// counts, the [`PUBLIC_FIELDS`] only.
    pub fn public(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.retain(|k, _| PUBLIC_FIELDS.contains(&k.as_str()));
            // Counts only: an error may name a file, and with it a study.
            if let Some(queues) = m.get_mut("forwarding").and_then(|f| f.as_array_mut()) {
                for q in queues.iter_mut().filter_map(|q| q.as_object_mut()) {
                    q.remove("last_error");
                }
            }
        }
        v
    }

    /// The plain-text form, for `curl http://pacsbox.local:8080/status.txt`.
    pub fn as_text(&self) -> String {
        format!(
            "pacsbox {}\nAE title {}  DICOM port {}  HTTP port {}\nuptime {} s\n\
             patients {}  studies {}  series {}  instances {}\n\
             active associations {}\ndisk free {} MiB of {} MiB\n{}",
            self.version,
            self.ae_title,
            self.dicom_port,
            self.http_port,
            self.uptime_s,
            self.patients,
            self.studies,
            self.series,
            self.instances,
            self.active_associations,
            self.disk_free_bytes >> 20,
            self.disk_total_bytes >> 20,
            self.alarms
                .iter()
                .map(|a| format!("ALARM: {} - {}\n", a.title, a.action))
                .collect::<String>()
        )
    }
}
