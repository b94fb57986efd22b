//! `pacsbox-health`: the appliance's health in one model, [`Health`], and the sources that
//! fill it — `/proc/mdstat` for the RAID, the data volume's free space, SMART via smartctl,
//! host name and addresses. It knows nothing of the archive, DICOM or the panel: the binary
//! copies the archive's and the DICOM service's figures in, and both the front panel and
//! `/status.json` read the same [`Health`] (one source of truth). [`Health::alarms`] decides,
//! in one place, what needs a person and in which order.

pub mod alarm;
pub mod host;
pub mod mdstat;
pub mod smart;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use alarm::{Alarm, AlarmReport, Severity};
pub use mdstat::{MdArray, RaidState};
pub use smart::DiskReport;

/// Unix time before which the clock is taken as never set (2025-01-01T00:00:00Z). A Pi has no
/// battery clock: without network time it boots in 1970 or at the last saved time.
pub const CLOCK_SANE_AFTER_UNIX: i64 = 1_735_689_600;

/// How the box is reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Identity {
    /// `pacsbox.local`
    pub hostname: String,
    pub addresses: Vec<String>,
    pub ae_title: String,
    pub dicom_port: u16,
    pub http_port: u16,
    /// 0 when HTTPS is off.
    pub https_port: u16,
    /// 0 when DICOM TLS is off.
    pub dicom_tls_port: u16,
    /// SHA-256 of the web page's certificate (`AB:CD:…`), which staff compare with their
    /// browser's before accepting a self-signed one.
    pub tls_fingerprint: Option<String>,
    /// The generated first admin password while nobody has changed it: the installer reads it
    /// off the panel (never in the JSON: anyone on the LAN can read that).
    #[serde(skip)]
    pub initial_password: Option<String>,
}

/// Space on the file system holding the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DataVolume {
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Kept free; under it stores are refused.
    pub reserve_bytes: u64,
    /// The data volume is not mounted (the daemon waits for it and stores nothing): the
    /// figures above are then meaningless.
    pub missing: bool,
}

impl DataVolume {
    /// Used share, 0–100, rounded down (so "90 %" really means at least 90).
    pub fn used_percent(&self) -> u8 {
        if self.total_bytes == 0 {
            return 0;
        }
        let used = self.total_bytes.saturating_sub(self.free_bytes) as u128;
        (used * 100 / self.total_bytes as u128).min(100) as u8
    }

    pub fn refusing_stores(&self) -> bool {
        self.free_bytes < self.reserve_bytes
    }
}

/// The last study received, without anything identifying the patient (the panel is in a
/// corridor).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LastStudy {
    pub received_unix: i64,
    pub modality: String,
    pub calling_ae: String,
}

/// What the DICOM service did today.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Traffic {
    pub studies_today: u64,
    pub instances_today: u64,
    pub last_study: Option<LastStudy>,
    pub active_associations: usize,
    /// The listener is up and accepting associations.
    pub dicom_accepting: bool,
    /// DICOM access is `open`: any device may query and retrieve (an admin's explicit choice,
    /// still worth a standing warning).
    pub dicom_open: bool,
    /// Whole hours the audit trail's forwarding to the syslog collector has been behind (0:
    /// caught up, or no forwarding).
    pub audit_unsent_hours: u64,
    /// Instances whose forwarding to another PACS failed past the alarm threshold.
    pub forward_failing: u64,
    /// The scheduled backup (`[backup]`), for the storage page and BACKUP OLD.
    pub backup: BackupAge,
    /// Studies on media inserted into the box and not yet imported (`[media] watch`);
    /// `None`: no media in.
    pub media_studies: Option<usize>,
}

/// How old the last complete scheduled backup is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct BackupAge {
    /// `[backup] to` is set.
    pub configured: bool,
    /// When the last complete backup was taken; `None`: never.
    pub last_complete_unix: Option<i64>,
    /// Whole hours without a complete backup, once past the alarm threshold.
    pub overdue_hours: Option<u64>,
}

/// Conflicting duplicates kept aside for an admin (`conflicts/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Conflicts {
    pub count: u64,
    pub bytes: u64,
    /// The folder's cap: a newcomer that would exceed it is refused.
    pub max_bytes: u64,
}

impl Conflicts {
    /// Within a tenth of the cap: the next conflicting copy may well be refused.
    pub fn nearly_full(&self) -> bool {
        self.count > 0 && self.bytes as u128 * 10 >= self.max_bytes as u128 * 9
    }
}

/// The clock as the box sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Clock {
    pub now_unix: i64,
    /// Local time zone, seconds east of UTC (for showing times).
    pub utc_offset_s: i32,
}

impl Clock {
    pub fn is_set(&self) -> bool {
        self.now_unix >= CLOCK_SANE_AFTER_UNIX
    }
}

/// Everything the panel and the status page show about the box's health.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Health {
    pub identity: Identity,
    pub volume: DataVolume,
    pub arrays: Vec<MdArray>,
    pub disks: Vec<DiskReport>,
    pub traffic: Traffic,
    pub clock: Clock,
    pub conflicts: Conflicts,
}

impl Health {
    /// Every current alarm, most urgent first.
    pub fn alarms(&self) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        for a in &self.arrays {
            match a.state() {
                RaidState::Failed => alarms.push(Alarm::RaidFailed {
                    array: a.name.clone(),
                }),
                RaidState::Degraded { .. } => {
                    for disk in a.faulty_members() {
                        alarms.push(Alarm::DiskFailed {
                            array: a.name.clone(),
                            // The part a technician swaps is the disk, not the partition.
                            disk: smart::whole_disk(disk),
                        });
                    }
                    let count = a.absent_members();
                    if count > 0 {
                        alarms.push(Alarm::DiskMissing {
                            array: a.name.clone(),
                            count,
                        });
                    }
                }
                // A rebuild is the cure under way: shown on the storage page, not an alarm.
                RaidState::Rebuilding { .. } | RaidState::Resyncing { .. } | RaidState::Clean => {}
            }
        }
        if self.volume.missing {
            // The cause of everything else the DICOM side would report: say only this.
            alarms.push(Alarm::VolumeMissing);
        } else {
            if self.volume.refusing_stores() {
                alarms.push(Alarm::StoresRefused);
            }
            if !self.traffic.dicom_accepting {
                alarms.push(Alarm::DicomNotAccepting);
            }
        }
        for d in &self.disks {
            if d.smart_passed == Some(false) {
                alarms.push(Alarm::DiskFailing {
                    disk: d.device.clone(),
                });
            }
        }
        let used = self.volume.used_percent();
        if used >= alarm::NEARLY_FULL_PERCENT
            && !self.volume.refusing_stores()
            && !self.volume.missing
        {
            alarms.push(Alarm::DiskNearlyFull { used_percent: used });
        }
        if !self.clock.is_set() {
            alarms.push(Alarm::ClockUnset);
        }
        if self.traffic.dicom_open && !self.volume.missing {
            alarms.push(Alarm::DicomOpen);
        }
        if self.traffic.forward_failing > 0 {
            alarms.push(Alarm::ForwardFailing {
                count: self.traffic.forward_failing,
            });
        }
        if let Some(hours) = self.traffic.backup.overdue_hours {
            alarms.push(Alarm::BackupOld { hours });
        }
        if self.traffic.audit_unsent_hours > 0 {
            alarms.push(Alarm::AuditNotForwarded {
                hours: self.traffic.audit_unsent_hours,
            });
        }
        let count = self.conflicts.count;
        if self.conflicts.nearly_full() {
            alarms.push(Alarm::ConflictsFull { count });
        } else if count > 0 {
            alarms.push(Alarm::Conflicts { count });
        }
        alarms.sort();
        alarms
    }
}

/// The `[health]` table of the settings file.
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Where the md RAID status is read (a recorded file in tests).
    pub mdstat_path: PathBuf,
    /// smartctl program asked for SMART health; empty never asks.
    pub smartctl: String,
    /// Seconds a SMART verdict is reused (asking wakes sleeping disks).
    pub smart_interval_s: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            mdstat_path: "/proc/mdstat".into(),
            smartctl: "smartctl".into(),
            smart_interval_s: 600,
        }
    }
}

impl From<&HealthSettings> for HealthSources {
    fn from(s: &HealthSettings) -> Self {
        let smartctl = (!s.smartctl.is_empty()).then(|| s.smartctl.clone());
        HealthSources::new(
            s.mdstat_path.clone(),
            smartctl,
            Duration::from_secs(s.smart_interval_s),
        )
    }
}

/// Where health is read from; one per running box, shared by the panel and the web page.
pub struct HealthSources {
    pub mdstat_path: PathBuf,
    /// smartctl program; `None` never asks SMART.
    pub smartctl: Option<String>,
    /// How long a SMART verdict is reused.
    pub smart_interval: Duration,
    smart_cache: Mutex<HashMap<String, (Instant, Option<bool>)>>,
}

impl HealthSources {
    pub fn new(mdstat_path: PathBuf, smartctl: Option<String>, smart_interval: Duration) -> Self {
        HealthSources {
            mdstat_path,
            smartctl,
            smart_interval,
            smart_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The md arrays now; an unreadable mdstat is logged and reads as no arrays.
    pub fn arrays(&self) -> Vec<MdArray> {
        match mdstat::read(&self.mdstat_path) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(path = %self.mdstat_path.display(), error = %e, "cannot read mdstat");
                Vec::new()
            }
        }
    }

    /// The whole disks behind `arrays`, with SMART verdicts (cached) when smartctl is set.
    pub fn disks(&self, arrays: &[MdArray]) -> Vec<DiskReport> {
        let mut names: Vec<String> = arrays
            .iter()
            .flat_map(|a| a.members.iter())
            .map(|m| smart::whole_disk(&m.device))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|device| {
                let smart_passed = self.smart_verdict(&device);
                DiskReport {
                    device,
                    smart_passed,
                }
            })
            .collect()
    }

    fn smart_verdict(&self, device: &str) -> Option<bool> {
        let program = self.smartctl.as_deref()?;
        if let Ok(cache) = self.smart_cache.lock()
            && let Some((at, verdict)) = cache.get(device)
            && at.elapsed() < self.smart_interval
        {
            return *verdict;
        }
        let verdict = smart::ask_smartctl(program, device);
        if let Ok(mut cache) = self.smart_cache.lock() {
            cache.insert(device.to_owned(), (Instant::now(), verdict));
        }
        verdict
    }
}
