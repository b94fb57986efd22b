//! Alarms: the conditions that need a person, ranked so the panel shows the most urgent one
//! first. The rank is the order of the variants below (derived `Ord`): data lost or about to
//! be lost, then images being turned away, then lost redundancy, then early warnings. Each
//! alarm says what happened and what to do, in a few words that fit the 128×64 panel.

use serde::Serialize;

/// Used share of the data volume above which a person should plan for more space.
pub const NEARLY_FULL_PERCENT: u8 = 90;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alarm {
    /// An array cannot serve data: more members lost than it tolerates, or not assembled.
    RaidFailed { array: String },
    /// The data volume is not mounted: nothing can be stored (the DICOM port stays closed).
    VolumeMissing,
    /// Free space under the reserve: modalities' images are being refused.
    StoresRefused,
    /// The DICOM listener is not running: modalities cannot send.
    DicomNotAccepting,
    /// `conflicts/` is (nearly) at its cap: further conflicting copies are refused (A700).
    ConflictsFull { count: u64 },
    /// md kicked a member out after errors: the array runs without redundancy.
    DiskFailed { array: String, disk: String },
    /// A slot has no member at all (disk pulled or dead before detection).
    DiskMissing { array: String, count: u32 },
    /// The drive itself predicts its failure (SMART), though the array is still whole.
    DiskFailing { disk: String },
    /// Over [`NEARLY_FULL_PERCENT`] used.
    DiskNearlyFull { used_percent: u8 },
    /// DICOM access is `open`: any device on the LAN may query and retrieve every image.
    DicomOpen,
    /// Instances queued for another PACS (`[[forward]]`, "Send to…") failed past the alarm
    /// threshold; they stay queued and are retried.
    ForwardFailing { count: u64 },
    /// `[backup]` is set and its folder holds no complete backup younger than the alarm
    /// threshold (disk unplugged, full, or failing): one more disk loss loses images.
    BackupOld { hours: u64 },
    /// Audit records have waited over an hour for the syslog collector (down, or its
    /// certificate not trusted); they are kept and sent when it answers.
    AuditNotForwarded { hours: u64 },
    /// The clock reads before this firmware was written: study dates would be wrong.
    ClockUnset,
    /// Instances arrived with an archived SOP Instance UID but other content; an admin
    /// decides which copy to keep (web page, Conflicts).
    Conflicts { count: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Images are lost or refused, or one more failure loses them.
    Critical,
    /// Needs attention this week.
    Warning,
}

impl Alarm {
    pub fn severity(&self) -> Severity {
        match self {
            Alarm::RaidFailed { .. }
            | Alarm::VolumeMissing
            | Alarm::StoresRefused
            | Alarm::DicomNotAccepting
            | Alarm::ConflictsFull { .. }
            | Alarm::DiskFailed { .. }
            | Alarm::DiskMissing { .. } => Severity::Critical,
            Alarm::DiskFailing { .. }
            | Alarm::DiskNearlyFull { .. }
            | Alarm::DicomOpen
            | Alarm::ForwardFailing { .. }
            | Alarm::BackupOld { .. }
            | Alarm::AuditNotForwarded { .. }
            | Alarm::ClockUnset
            | Alarm::Conflicts { .. } => Severity::Warning,
        }
    }

    /// Short headline, at most 14 characters (the panel's large font).
    pub fn title(&self) -> &'static str {
        match self {
            Alarm::RaidFailed { .. } => "RAID FAILED",
            Alarm::VolumeMissing => "NO DATA DISK",
            Alarm::StoresRefused => "DISK FULL",
            Alarm::DicomNotAccepting => "DICOM DOWN",
            Alarm::ConflictsFull { .. } => "CONFLICTS FULL",
            Alarm::DiskFailed { .. } => "DISK FAILED",
            Alarm::DiskMissing { .. } => "DISK MISSING",
            Alarm::DiskFailing { .. } => "DISK FAILING",
            Alarm::DiskNearlyFull { .. } => "DISK 90% FULL",
            Alarm::DicomOpen => "DICOM OPEN",
            Alarm::ForwardFailing { .. } => "NOT FORWARDED",
            Alarm::BackupOld { .. } => "BACKUP OLD",
            Alarm::AuditNotForwarded { .. } => "AUDIT NOT SENT",
            Alarm::ClockUnset => "CLOCK NOT SET",
            Alarm::Conflicts { .. } => "CONFLICTS",
        }
    }

    /// What to do, in a few words.
    pub fn action(&self) -> String {
        match self {
            Alarm::RaidFailed { array } => {
                format!("{array} offline. Do not pull disks. Call service.")
            }
            Alarm::VolumeMissing => "Archive disk not found. Check power, cable.".into(),
            Alarm::StoresRefused => "Images refused. Free space or add disks.".into(),
            Alarm::DicomNotAccepting => "Modalities cannot send. Restart the box.".into(),
            Alarm::ConflictsFull { count } => {
                format!("{count} conflicts, more refused. Resolve on web.")
            }
            Alarm::DiskFailed { disk, .. } => format!("Replace disk {disk}. Data still safe."),
            Alarm::DiskMissing { count, .. } if *count > 1 => {
                format!("{count} disks missing. Check cables.")
            }
            Alarm::DiskMissing { .. } => "A disk is missing. Check cables.".into(),
            Alarm::DiskFailing { disk } => format!("SMART: {disk} may fail. Order a spare."),
            Alarm::DiskNearlyFull { used_percent } => {
                format!("{used_percent}% used. Plan more storage.")
            }
            Alarm::DicomOpen => "Any device may read images. Close access.".into(),
            Alarm::ForwardFailing { count } => {
                format!("{count} images not sent to PACS. See web.")
            }
            Alarm::BackupOld { hours } => {
                format!("No backup for {hours} h. Check backup disk.")
            }
            Alarm::AuditNotForwarded { hours } => {
                format!("Syslog collector unreachable {hours} h. Check it.")
            }
            Alarm::ClockUnset => "Dates wrong. Check network time.".into(),
            Alarm::Conflicts { count } => {
                format!("{count} differing copies. Resolve on web page.")
            }
        }
    }

    /// Identity for acknowledgement: what and where, not the changing figures, so a disk
    /// filling from 91 % to 92 % does not raise a new alarm.
    pub fn key(&self) -> String {
        match self {
            Alarm::RaidFailed { array } => format!("raid_failed:{array}"),
            Alarm::VolumeMissing => "volume_missing".into(),
            Alarm::StoresRefused => "stores_refused".into(),
            Alarm::DicomNotAccepting => "dicom_not_accepting".into(),
            Alarm::ConflictsFull { .. } => "conflicts_full".into(),
            Alarm::DiskFailed { array, disk } => format!("disk_failed:{array}:{disk}"),
            Alarm::DiskMissing { array, .. } => format!("disk_missing:{array}"),
            Alarm::DiskFailing { disk } => format!("disk_failing:{disk}"),
            Alarm::DiskNearlyFull { .. } => "disk_nearly_full".into(),
            Alarm::DicomOpen => "dicom_open".into(),
            Alarm::ForwardFailing { .. } => "forward_failing".into(),
            Alarm::BackupOld { .. } => "backup_old".into(),
            Alarm::AuditNotForwarded { .. } => "audit_not_forwarded".into(),
            Alarm::ClockUnset => "clock_unset".into(),
            Alarm::Conflicts { .. } => "conflicts".into(),
        }
    }
}

/// An alarm as the status JSON and the web page show it.
#[derive(Clone, Debug, Serialize)]
pub struct AlarmReport {
    #[serde(flatten)]
    pub alarm: Alarm,
    pub severity: Severity,
    pub title: &'static str,
    pub action: String,
}

impl From<&Alarm> for AlarmReport {
    fn from(a: &Alarm) -> Self {
        AlarmReport {
            alarm: a.clone(),
            severity: a.severity(),
            title: a.title(),
            action: a.action(),
        }
    }
}
