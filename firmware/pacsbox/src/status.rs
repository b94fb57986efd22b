//! The status of the whole appliance, collected from the archive, the DICOM service, the
//! health sources and the log: the web page's status document and the front panel's health
//! model are both built here, so the two can never disagree.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pacsbox_archive::Archive;
use pacsbox_archive::forward::PeerQueue;
use pacsbox_archive::peers::AccessMode;
use pacsbox_dicom::ScpStatus;
use pacsbox_health::{AlarmReport, DataVolume, Health, HealthSources};
use pacsbox_web::{RaidReport, StatusDoc};

use crate::config::Config;

pub struct Status {
    pub archive: Archive,
    pub scp: Arc<ScpStatus>,
    pub config: Config,
    pub started: Instant,
    pub health: HealthSources,
    /// Set while the DICOM listener is accepting associations.
    pub dicom_accepting: Arc<AtomicBool>,
    pub errors: crate::errlog::ErrorLog,
    /// The certificate of HTTPS and DICOM TLS, when either is on (an admin may replace it).
    pub certificate: Option<Arc<crate::tls::BoxCertificate>>,
    /// The audit forwarder's state, when `[audit] syslog` is set.
    pub audit_forwarding: Option<Arc<Mutex<pacsbox_audit::ForwardStatus>>>,
    /// The forwarding queue's summary and when it was read: a pass over the queue is cheap
    /// but not free with 10 000 jobs, and the panel asks every second.
    pub forward_queue: Mutex<Option<(Instant, Vec<PeerQueue>)>>,
    /// The `[backup]` schedule, when set.
    pub backup: Option<Arc<crate::backup_schedule::Schedule>>,
    /// `[media] watch`, when set.
    pub media: Option<Arc<crate::media_watch::Watcher>>,
}

/// How long a forwarding queue summary is reused.
const QUEUE_SUMMARY_TTL: std::time::Duration = std::time::Duration::from_secs(3);

/// An hour behind and more raises the alarm: collectors restart and networks blink, and the
/// records wait safely in the trail meanwhile.
fn unsent_hours(f: &pacsbox_audit::ForwardStatus, now_unix: i64) -> u64 {
    f.behind_since_unix.map_or(0, |since| {
        u64::try_from((now_unix - since) / 3600).unwrap_or(0)
    })
}

/// How the box is reached, for the panel's identity page.
fn identity(config: &Config, tls_fingerprint: Option<String>) -> pacsbox_health::Identity {
    pacsbox_health::Identity {
        hostname: pacsbox_health::host::mdns_name(),
        addresses: pacsbox_health::host::addresses(),
        ae_title: config.ae_title.clone(),
        dicom_port: config.dicom_port,
        http_port: config.http_port,
        https_port: config.https_port,
        dicom_tls_port: config.dicom_tls_port,
        tls_fingerprint,
        initial_password: std::fs::read_to_string(config.initial_password_file())
            .ok()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty()),
    }
}

fn clock() -> pacsbox_health::Clock {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    pacsbox_health::Clock {
        now_unix,
        utc_offset_s: pacsbox_health::host::utc_offset_s(now_unix),
    }
}

/// The health model while the daemon waits for its data volume (no archive is open): the
/// RAID and disks as they are, the volume marked missing, DICOM closed.
pub fn waiting_for_volume(config: &Config, sources: &HealthSources) -> Health {
    let arrays = sources.arrays();
    let disks = sources.disks(&arrays);
    Health {
        identity: identity(config, None),
        volume: DataVolume {
            reserve_bytes: config.reserve_mb << 20,
            missing: true,
            ..DataVolume::default()
        },
        arrays,
        disks,
        traffic: pacsbox_health::Traffic::default(),
        clock: clock(),
        conflicts: pacsbox_health::Conflicts::default(),
    }
}

impl Status {
    fn tls_fingerprint(&self) -> Option<String> {
        self.certificate.as_ref().map(|c| c.fingerprint())
    }

    /// Per peer: jobs waiting and failing (see `QUEUE_SUMMARY_TTL`).
    fn forward_queue(&self) -> Vec<PeerQueue> {
        let Ok(mut cached) = self.forward_queue.lock() else {
            return Vec::new();
        };
        if let Some((at, q)) = cached.as_ref()
            && at.elapsed() < QUEUE_SUMMARY_TTL
        {
            return q.clone();
        }
        let q = self
            .archive
            .index()
            .forward_summary(self.config.forwarding.alarm_after)
            .inspect_err(|e| tracing::warn!(error = %e, "reading the forwarding queue"))
            .unwrap_or_default();
        *cached = Some((Instant::now(), q.clone()));
        q
    }

    fn forwarding(&self) -> Option<pacsbox_audit::ForwardStatus> {
        let f = self.audit_forwarding.as_ref()?;
        f.lock().ok().map(|s| s.clone())
    }

    /// The health model now: what the front panel draws and `/status.json` reports.
    pub fn health(&self) -> anyhow::Result<Health> {
        let disk = self.archive.disk_space()?;
        let today = self.archive.activity();
        let scp = self.scp.snapshot();
        let arrays = self.health.arrays();
        let disks = self.health.disks(&arrays);
        let conflicts = self.archive.conflict_stats();
        Ok(Health {
            identity: identity(&self.config, self.tls_fingerprint()),
            volume: DataVolume {
                total_bytes: disk.total_bytes,
                free_bytes: disk.free_bytes,
                reserve_bytes: self.config.reserve_mb << 20,
                missing: false,
            },
            arrays,
            disks,
            traffic: pacsbox_health::Traffic {
                studies_today: today.studies_today,
                instances_today: today.instances_today,
                last_study: today.last.map(|l| pacsbox_health::LastStudy {
                    received_unix: l.received_unix,
                    modality: l.modality,
                    calling_ae: l.calling_ae,
                }),
                active_associations: scp.active_associations,
                dicom_accepting: self.dicom_accepting.load(Ordering::Relaxed),
                dicom_open: self
                    .archive
                    .access_state()
                    .is_ok_and(|s| s.effective == AccessMode::Open),
                audit_unsent_hours: self
                    .forwarding()
                    .map_or(0, |f| unsent_hours(&f, clock().now_unix)),
                forward_failing: self.forward_queue().iter().map(|q| q.failing).sum(),
                backup: self
                    .backup
                    .as_ref()
                    .map(|b| {
                        let s = b.status(clock().now_unix);
                        pacsbox_health::BackupAge {
                            configured: true,
                            last_complete_unix: s.last_complete_unix,
                            overdue_hours: s.overdue_hours,
                        }
                    })
                    .unwrap_or_default(),
                media_studies: self.media.as_ref().and_then(|m| {
                    let found = m.found();
                    (!found.is_empty()).then(|| found.iter().map(|f| f.studies).sum())
                }),
            },
            clock: clock(),
            conflicts: pacsbox_health::Conflicts {
                count: conflicts.count,
                bytes: conflicts.bytes,
                max_bytes: conflicts.max_bytes,
            },
        })
    }

    fn collect_doc(&self) -> anyhow::Result<StatusDoc> {
        let counts = self.archive.counts()?;
        let scp = self.scp.snapshot();
        // The last study keeps its study UID here (the panel's model leaves it out).
        let activity = self.archive.activity();
        let last_received = activity.last;
        let health = self.health()?;
        let alarms = health.alarms().iter().map(AlarmReport::from).collect();
        let Health {
            identity,
            volume,
            arrays,
            disks,
            traffic,
            conflicts,
            ..
        } = health;
        Ok(StatusDoc {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            ae_title: identity.ae_title,
            dicom_port: identity.dicom_port,
            http_port: identity.http_port,
            https_port: self.config.https_port,
            dicom_tls_port: self.config.dicom_tls_port,
            tls_fingerprint: self.tls_fingerprint().unwrap_or_default(),
            data_dir: self.archive.root().display().to_string(),
            patients: counts.patients,
            studies: counts.studies,
            series: counts.series,
            instances: counts.instances,
            instances_today: traffic.instances_today,
            studies_today: traffic.studies_today,
            last_received,
            recent_studies: activity.recent,
            active_associations: traffic.active_associations,
            associations_total: scp.associations_total,
            associations_rejected: scp.associations_rejected,
            instances_stored: scp.instances_stored,
            stores_failed: scp.stores_failed,
            disk_total_bytes: volume.total_bytes,
            disk_free_bytes: volume.free_bytes,
            reserve_bytes: volume.reserve_bytes,
            // Live, not only the flag of the last store: the page must show it before a store fails.
            refusing_stores: volume.refusing_stores(),
            hostname: identity.hostname,
            addresses: identity.addresses,
            dicom_accepting: traffic.dicom_accepting,
            raid: arrays
                .into_iter()
                .map(|array| RaidReport {
                    state: array.state(),
                    array,
                })
                .collect(),
            disks,
            alarms,
            conflicts: conflicts.count,
            conflicts_bytes: conflicts.bytes,
            conflicts_max_bytes: conflicts.max_bytes,
            compression_pending: self.archive.compression_pending(),
            plain_waiting_instances: self.archive.plain_waiting().0,
            plain_waiting_bytes: self.archive.plain_waiting().1,
            recent_errors: self.errors.recent(),
            audit_forwarding: self.forwarding(),
            forwarding: self.forward_queue(),
            backup: self.backup.as_ref().map(|b| b.status(clock().now_unix)),
            media_found: self.media.as_ref().map(|m| m.found()).unwrap_or_default(),
        })
    }
}

impl pacsbox_web::StatusSource for Status {
    fn collect(&self) -> anyhow::Result<StatusDoc> {
        self.collect_doc()
    }
}
