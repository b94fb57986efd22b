//! Every recorded `/proc/mdstat` text under `tests/mdstat/` parses into the state a technician
//! should be told, and into the alarm the panel should raise.

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use pacsbox_health::mdstat::{self, SyncAction};
use pacsbox_health::{Alarm, Health, HealthSources, RaidState};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mdstat")
        .join(name)
}

fn arrays(name: &str) -> Vec<mdstat::MdArray> {
    mdstat::read(&fixture(name)).unwrap()
}

fn raid_alarms(name: &str) -> Vec<Alarm> {
    let health = Health {
        arrays: arrays(name),
        traffic: pacsbox_health::Traffic {
            dicom_accepting: true,
            ..Default::default()
        },
        clock: pacsbox_health::Clock {
            now_unix: 1_800_000_000,
            utc_offset_s: 0,
        },
        ..Health::default()
    };
    health.alarms()
}

#[test]
fn a_clean_mirror_is_clean_with_both_disks() {
    let a = arrays("raid1_clean.txt");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].name, "md0");
    assert_eq!(a[0].level, "raid1");
    assert_eq!((a[0].slots, a[0].working), (Some(2), Some(2)));
    let devices: Vec<_> = a[0].members.iter().map(|m| m.device.as_str()).collect();
    assert_eq!(devices, ["sdb1", "sda1"]);
    assert_eq!(a[0].state(), RaidState::Clean);
    assert!(raid_alarms("raid1_clean.txt").is_empty());
}

#[test]
fn a_clean_raid5_is_clean() {
    let a = arrays("raid5_clean.txt");
    assert_eq!(a[0].level, "raid5");
    assert_eq!(a[0].members.len(), 3);
    assert_eq!(a[0].state(), RaidState::Clean);
    assert!(raid_alarms("raid5_clean.txt").is_empty());
}

#[test]
fn a_raid5_with_a_kicked_out_disk_is_degraded_and_names_the_disk() {
    let a = arrays("raid5_degraded.txt");
    assert_eq!(a[0].state(), RaidState::Degraded { missing: 1 });
    assert_eq!(a[0].faulty_members(), ["sdd1"]);
    assert_eq!(a[0].absent_members(), 0);
    assert_eq!(
        raid_alarms("raid5_degraded.txt"),
        [Alarm::DiskFailed {
            array: "md0".into(),
            disk: "sdd".into()
        }]
    );
}

#[test]
fn a_raid5_with_a_pulled_disk_reports_it_missing() {
    let a = arrays("raid5_disk_missing.txt");
    assert_eq!(a[0].state(), RaidState::Degraded { missing: 1 });
    assert_eq!(
        raid_alarms("raid5_disk_missing.txt"),
        [Alarm::DiskMissing {
            array: "md0".into(),
            count: 1
        }]
    );
}

#[test]
fn a_rebuilding_mirror_shows_its_progress_and_raises_no_alarm() {
    let a = arrays("raid1_rebuilding.txt");
    assert_eq!(a[0].sync, Some((SyncAction::Recovery, 27.5)));
    assert_eq!(a[0].state(), RaidState::Rebuilding { percent: 27.5 });
    assert!(raid_alarms("raid1_rebuilding.txt").is_empty());
}

#[test]
fn a_resyncing_mirror_is_whole() {
    let a = arrays("raid1_resync.txt");
    assert_eq!(
        a[0].state(),
        RaidState::Resyncing {
            action: SyncAction::Resync,
            percent: 3.1
        }
    );
}

#[test]
fn a_raid5_missing_two_of_three_has_failed() {
    let a = arrays("raid5_failed.txt");
    assert_eq!(a[0].state(), RaidState::Failed);
    let alarms = raid_alarms("raid5_failed.txt");
    assert_eq!(
        alarms,
        [Alarm::RaidFailed {
            array: "md0".into()
        }]
    );
}

#[test]
fn an_array_left_inactive_at_boot_has_failed() {
    let a = arrays("inactive.txt");
    assert_eq!(a[0].name, "md127");
    assert!(!a[0].active);
    assert!(a[0].members[0].spare);
    assert_eq!(a[0].state(), RaidState::Failed);
}

#[test]
fn two_arrays_with_a_spare_and_read_only_qualifier() {
    let a = arrays("two_arrays_spare.txt");
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].name, "md1");
    assert!(a[0].members.iter().any(|m| m.device == "sde1" && m.spare));
    assert_eq!(a[0].state(), RaidState::Clean);
    assert_eq!(a[1].name, "md0");
    assert_eq!(a[1].level, "raid1");
    assert_eq!(a[1].state(), RaidState::Clean);
    let disks =
        HealthSources::new(fixture("two_arrays_spare.txt"), None, Default::default()).disks(&a);
    let names: Vec<_> = disks.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(names, ["mmcblk0", "sda", "sdb", "sdc", "sdd", "sde"]);
    assert!(disks.iter().all(|d| d.smart_passed.is_none()));
}

#[test]
fn no_md_driver_means_no_arrays() {
    assert!(arrays("none.txt").is_empty());
    assert!(mdstat::read(&fixture("does-not-exist")).unwrap().is_empty());
}
