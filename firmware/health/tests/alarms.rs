//! Which alarm the panel shows first when several things are wrong at once.

use pacsbox_health::mdstat;
use pacsbox_health::{Alarm, Clock, DataVolume, DiskReport, Health, Severity, Traffic};

const GIB: u64 = 1 << 30;

fn healthy() -> Health {
    Health {
        volume: DataVolume {
            total_bytes: 1000 * GIB,
            free_bytes: 600 * GIB,
            reserve_bytes: GIB / 2,
            missing: false,
        },
        traffic: Traffic {
            dicom_accepting: true,
            ..Traffic::default()
        },
        clock: Clock {
            now_unix: 1_800_000_000,
            utc_offset_s: 3600,
        },
        arrays: mdstat::parse(include_str!("mdstat/raid1_clean.txt")),
        ..Health::default()
    }
}

#[test]
fn a_healthy_box_has_no_alarm() {
    assert!(healthy().alarms().is_empty());
}

#[test]
fn a_failed_array_outranks_everything_else() {
    let mut h = healthy();
    h.clock.now_unix = 0;
    h.volume.free_bytes = 0;
    h.traffic.dicom_accepting = false;
    h.disks = vec![DiskReport {
        device: "sda".into(),
        smart_passed: Some(false),
    }];
    h.arrays = mdstat::parse(include_str!("mdstat/raid5_failed.txt"));
    let alarms = h.alarms();
    assert_eq!(
        alarms,
        [
            Alarm::RaidFailed {
                array: "md0".into()
            },
            Alarm::StoresRefused,
            Alarm::DicomNotAccepting,
            Alarm::DiskFailing { disk: "sda".into() },
            Alarm::ClockUnset,
        ]
    );
    assert_eq!(alarms[0].severity(), Severity::Critical);
}

#[test]
fn images_refused_outrank_a_degraded_array_which_outranks_warnings() {
    let mut h = healthy();
    h.arrays = mdstat::parse(include_str!("mdstat/raid5_degraded.txt"));
    h.volume.free_bytes = 80 * GIB; // 92 % used, above the reserve
    h.clock.now_unix = 1_000;
    let alarms = h.alarms();
    assert_eq!(
        alarms,
        [
            Alarm::DiskFailed {
                array: "md0".into(),
                disk: "sdd".into()
            },
            Alarm::DiskNearlyFull { used_percent: 92 },
            Alarm::ClockUnset,
        ]
    );
    h.volume.free_bytes = 0;
    assert_eq!(h.alarms()[0], Alarm::StoresRefused);
    // Under the reserve, "nearly full" would only repeat "disk full".
    assert!(
        !h.alarms()
            .iter()
            .any(|a| matches!(a, Alarm::DiskNearlyFull { .. }))
    );
}

#[test]
fn eighty_nine_percent_is_not_yet_an_alarm_ninety_is() {
    let mut h = healthy();
    h.volume.free_bytes = 110 * GIB;
    assert!(h.alarms().is_empty());
    h.volume.free_bytes = 100 * GIB;
    assert_eq!(h.alarms(), [Alarm::DiskNearlyFull { used_percent: 90 }]);
    assert_eq!(h.alarms()[0].severity(), Severity::Warning);
}

#[test]
fn every_alarm_fits_the_panel_and_keeps_its_key_as_figures_change() {
    let all = [
        Alarm::RaidFailed {
            array: "md0".into(),
        },
        Alarm::StoresRefused,
        Alarm::DicomNotAccepting,
        Alarm::DiskFailed {
            array: "md0".into(),
            disk: "sdd".into(),
        },
        Alarm::DiskMissing {
            array: "md0".into(),
            count: 2,
        },
        Alarm::DiskFailing { disk: "sda".into() },
        Alarm::DiskNearlyFull { used_percent: 97 },
        Alarm::ClockUnset,
    ];
    for a in &all {
        assert!(a.title().len() <= 14, "{a:?}");
        assert!(a.action().len() <= 3 * 21, "{a:?}: {}", a.action());
    }
    assert_eq!(
        Alarm::DiskNearlyFull { used_percent: 91 }.key(),
        Alarm::DiskNearlyFull { used_percent: 92 }.key()
    );
    let mut sorted = all.clone();
    sorted.reverse();
    sorted.sort();
    assert_eq!(sorted, all);
}

#[test]
fn a_missing_data_volume_is_one_critical_alarm_not_a_cascade() {
    let mut h = healthy();
    h.volume = DataVolume {
        missing: true,
        reserve_bytes: GIB / 2,
        ..DataVolume::default()
    };
    h.traffic.dicom_accepting = false;
    // Zero free bytes and a closed DICOM port follow from the missing volume: not alarms of
    // their own, or the technician would chase "disk full" on a disk that is not there.
    assert_eq!(h.alarms(), vec![Alarm::VolumeMissing]);
    assert_eq!(Alarm::VolumeMissing.severity(), Severity::Critical);
    assert!(Alarm::VolumeMissing.title().len() <= 14);
    // A failed RAID is the likely cause: it comes first.
    h.arrays = mdstat::parse(include_str!("mdstat/raid5_failed.txt"));
    let alarms = h.alarms();
    assert!(
        matches!(
            alarms.as_slice(),
            [Alarm::RaidFailed { .. }, Alarm::VolumeMissing]
        ),
        "{alarms:?}"
    );
}

#[test]
fn conflicts_are_a_warning_with_a_count_until_the_folder_nears_its_cap() {
    let mut h = healthy();
    h.conflicts = pacsbox_health::Conflicts {
        count: 3,
        bytes: 10 << 20,
        max_bytes: GIB,
    };
    assert_eq!(h.alarms(), [Alarm::Conflicts { count: 3 }]);
    assert_eq!(h.alarms()[0].severity(), Severity::Warning);
    h.conflicts.bytes = GIB - (50 << 20);
    h.volume.free_bytes = 80 * GIB; // 92 % used
    let alarms = h.alarms();
    assert_eq!(
        alarms,
        [
            Alarm::ConflictsFull { count: 3 },
            Alarm::DiskNearlyFull { used_percent: 92 },
        ]
    );
    assert_eq!(alarms[0].severity(), Severity::Critical);
    for a in alarms {
        assert!(a.title().len() <= 14, "{}", a.title());
    }
    h.conflicts = Default::default();
    h.volume.free_bytes = 600 * GIB;
    assert!(h.alarms().is_empty());
}

#[test]
fn open_dicom_access_is_a_standing_warning() {
    let mut h = healthy();
    h.traffic.dicom_open = true;
    assert_eq!(h.alarms(), [Alarm::DicomOpen]);
    assert_eq!(Alarm::DicomOpen.severity(), Severity::Warning);
    assert!(Alarm::DicomOpen.title().len() <= 14);
    h.volume.missing = true;
    assert!(
        !h.alarms().contains(&Alarm::DicomOpen),
        "no data disk says it all"
    );
}

#[test]
fn audit_records_waiting_an_hour_for_the_collector_are_a_warning() {
    let mut h = healthy();
    assert!(h.alarms().is_empty(), "no forwarding, or caught up");
    h.traffic.audit_unsent_hours = 2;
    let a = Alarm::AuditNotForwarded { hours: 2 };
    assert_eq!(h.alarms(), std::slice::from_ref(&a));
    assert_eq!(a.severity(), Severity::Warning);
    assert!(a.title().len() <= 14);
    assert!(a.action().contains("2 h"), "{}", a.action());
}

#[test]
fn instances_failing_to_forward_are_a_warning_with_their_count() {
    let mut h = healthy();
    h.traffic.forward_failing = 12;
    let a = Alarm::ForwardFailing { count: 12 };
    assert_eq!(h.alarms(), std::slice::from_ref(&a));
    assert_eq!(a.severity(), Severity::Warning);
    assert!(a.title().len() <= 14);
    assert!(a.action().starts_with("12 images"), "{}", a.action());
}
