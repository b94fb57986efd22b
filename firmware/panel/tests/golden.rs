//! Golden images: each screen, drawn for fixed health inputs in English and in Korean, must
//! match the PNG checked in under `tests/golden/` (Korean: `tests/golden/ko/`) pixel for
//! pixel, and nothing on it may be cut. After a deliberate change of the drawing code run
//! `PANEL_REGENERATE=1 cargo test -p pacsbox-panel --test golden`, look at the new images
//! (also written 4× enlarged to `docs/panel/` and `docs/panel/ko/` for people), and commit them.

use std::path::PathBuf;

use embedded_graphics::prelude::*;
use pacsbox_health::{Alarm, Clock, DataVolume, DiskReport, Health, Identity, LastStudy, Traffic};
use pacsbox_health::{Severity, mdstat};
use pacsbox_panel::output::{blank_frame, frame_from_png, png_bytes, render};
use pacsbox_panel::{Language, Page, Screen, pages};

const GIB: u64 = 1 << 30;
/// 2027-01-15 08:00 UTC; the panel shows times in the clinic's zone, UTC+1.
const NOW: i64 = 1_800_000_000;

const MIRROR_CLEAN: &str = "Personalities : [raid1]\n\
md0 : active raid1 sdb1[1] sda1[0]\n      3906886464 blocks super 1.2 [2/2] [UU]\n\n\
unused devices: <none>\n";
// The kernel's own layout, indentation included (a Rust string continuation would strip it
// and the progress line would no longer read as belonging to md0).
const MIRROR_REBUILDING: &str = include_str!("../../health/tests/mdstat/raid1_rebuilding.txt");
const RAID5_DEGRADED: &str = include_str!("../../health/tests/mdstat/raid5_degraded.txt");

fn healthy() -> Health {
    Health {
        identity: Identity {
            hostname: "pacsbox.local".into(),
            addresses: vec!["192.168.1.20".into()],
            ae_title: "PACSBOX".into(),
            dicom_port: 11112,
            http_port: 8080,
            https_port: 8443,
            dicom_tls_port: 2762,
            tls_fingerprint: Some(
                "3F:A9:0C:71:5E:D2:8B:46:C0:19:7A:E3:52:BD:08:F4:6E:91:2C:A7:D5:38:40:1B:9F:E6:73:0A:C4:5D:82:17"
                    .into(),
            ),
            initial_password: None,
        },
        volume: DataVolume {
            total_bytes: 3726 * GIB,
            free_bytes: 2310 * GIB,
            reserve_bytes: GIB / 2,
            missing: false,
        },
        arrays: mdstat::parse(MIRROR_CLEAN),
        disks: vec![
            DiskReport {
                device: "sda".into(),
                smart_passed: Some(true),
            },
            DiskReport {
                device: "sdb".into(),
                smart_passed: Some(true),
            },
        ],
        traffic: Traffic {
            studies_today: 14,
            instances_today: 2318,
            last_study: Some(LastStudy {
                received_unix: NOW - 25 * 60,
                modality: "CT".into(),
                calling_ae: "CT_SOMATOM".into(),
            }),
            active_associations: 1,
            dicom_accepting: true,
            dicom_open: false,
            audit_unsent_hours: 0,
            forward_failing: 0,
            backup: Default::default(),
            media_studies: None,
        },
        clock: Clock {
            now_unix: NOW,
            utc_offset_s: 3600,
        },
        conflicts: Default::default(),
    }
}

fn degraded() -> Health {
    let mut h = healthy();
    h.identity.addresses = vec!["192.168.1.20".into(), "10.0.0.7".into(), "fd00::20".into()];
    h.arrays = mdstat::parse(RAID5_DEGRADED);
    h.volume.free_bytes = 300 * GIB;
    h.disks = ["sdb", "sdc", "sdd"]
        .iter()
        .map(|d| DiskReport {
            device: (*d).into(),
            smart_passed: Some(*d != "sdd"),
        })
        .collect();
    h.traffic.last_study = None;
    h.traffic.studies_today = 0;
    h.traffic.instances_today = 0;
    h
}

/// A USB disk takes the scheduled backup; the last complete one is 3 h old.
fn backed_up() -> Health {
    let mut h = healthy();
    h.traffic.backup = pacsbox_health::BackupAge {
        configured: true,
        last_complete_unix: Some(NOW - 3 * 3600 - 600),
        overdue_hours: None,
    };
    h
}

/// A patient's USB stick with two studies is in the box, not yet imported.
fn media_in() -> Health {
    let mut h = healthy();
    h.traffic.media_studies = Some(2);
    h
}

/// Nobody has logged in yet: the generated admin password is on the identity page.
fn first_start() -> Health {
    let mut h = healthy();
    h.identity.initial_password = Some("Kq7mPz3xWb9c".into());
    h
}

fn cases() -> Vec<(&'static str, Screen, Health)> {
    let mut rebuilding = healthy();
    rebuilding.arrays = mdstat::parse(MIRROR_REBUILDING);
    rebuilding.disks[1].device = "sdc".into();
    let alarms = degraded().alarms();
    assert_eq!(alarms[0].severity(), Severity::Critical);
    vec![
        ("identity", Screen::Page(Page::Identity), healthy()),
        (
            "identity_first_start",
            Screen::Page(Page::Identity),
            first_start(),
        ),
        ("certificate", Screen::Page(Page::Certificate), healthy()),
        ("storage", Screen::Page(Page::Storage), healthy()),
        ("activity", Screen::Page(Page::Activity), healthy()),
        ("alarms", Screen::Page(Page::Alarms), healthy()),
        ("activity_media", Screen::Page(Page::Activity), media_in()),
        (
            "identity_many_addresses",
            Screen::Page(Page::Identity),
            degraded(),
        ),
        (
            "storage_rebuilding",
            Screen::Page(Page::Storage),
            rebuilding,
        ),
        ("storage_degraded", Screen::Page(Page::Storage), degraded()),
        ("storage_backup", Screen::Page(Page::Storage), backed_up()),
        ("activity_quiet", Screen::Page(Page::Activity), degraded()),
        ("alarms_list", Screen::Page(Page::Alarms), degraded()),
        (
            "alarm_disk_failed",
            Screen::Alarm {
                alarm: alarms[0].clone(),
                others: alarms.len() - 1,
            },
            degraded(),
        ),
        (
            "alarm_raid_failed",
            Screen::Alarm {
                alarm: Alarm::RaidFailed {
                    array: "md0".into(),
                },
                others: 0,
            },
            degraded(),
        ),
        (
            "alarm_conflicts",
            Screen::Alarm {
                alarm: Alarm::Conflicts { count: 3 },
                others: 0,
            },
            healthy(),
        ),
        (
            "shutdown_countdown",
            Screen::ShutdownCountdown { seconds_left: 7 },
            healthy(),
        ),
    ]
}

/// Korean has the English cases and a few more: its lines are taller, so the crowded pages
/// (six alarms, two arrays with a backup, no network at first start) are worth a picture.
fn cases_ko() -> Vec<(&'static str, Screen, Health)> {
    let mut all = cases();
    let mut crowded = degraded();
    crowded.traffic.backup = backed_up().traffic.backup;
    crowded.arrays = mdstat::parse(
        "Personalities : [raid1]\n\
         md0 : active raid1 sdb1[1] sda1[0]\n      3906886464 blocks super 1.2 [2/2] [UU]\n\n\
         md1 : active raid1 sdd1[1] sdc1[0]\n      3906886464 blocks super 1.2 [2/2] [UU]\n\n\
         unused devices: <none>\n",
    );
    assert_eq!(crowded.arrays.len(), 2);
    let mut offline = first_start();
    offline.identity.addresses.clear();
    let mut many = degraded();
    many.traffic.dicom_accepting = false;
    many.traffic.backup = pacsbox_health::BackupAge {
        configured: true,
        last_complete_unix: None,
        overdue_hours: Some(24),
    };
    many.clock.now_unix = 0;
    all.extend([
        ("storage_two_arrays", Screen::Page(Page::Storage), crowded),
        ("identity_no_network", Screen::Page(Page::Identity), offline),
        ("alarms_many", Screen::Page(Page::Alarms), many.clone()),
        ("activity_not_accepting", Screen::Page(Page::Activity), many),
        ("shutting_down", Screen::ShuttingDown, healthy()),
    ]);
    all
}

fn all_cases() -> Vec<(Language, &'static str, Screen, Health)> {
    let en = cases().into_iter().map(|(n, s, h)| (Language::En, n, s, h));
    let ko = cases_ko()
        .into_iter()
        .map(|(n, s, h)| (Language::Ko, n, s, h));
    en.chain(ko).collect()
}

fn dir(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn every_screen_matches_its_golden_image() {
    let regenerate = std::env::var_os("PANEL_REGENERATE").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (lang, name, screen, health) in all_cases() {
        let frame = render(&screen, &health, lang);
        let sub = match lang {
            Language::En => "",
            Language::Ko => "ko",
        };
        let golden_dir = dir("tests/golden").join(sub);
        let golden = golden_dir.join(format!("{name}.png"));
        if regenerate {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&golden, png_bytes(&frame, 1).unwrap()).unwrap();
            let docs = dir("../../docs/panel").join(sub);
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(
                docs.join(format!("{name}.png")),
                png_bytes(&frame, 4).unwrap(),
            )
            .unwrap();
            continue;
        }
        let bytes = std::fs::read(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (PANEL_REGENERATE=1 makes it)", golden.display()));
        let expected = frame_from_png(&bytes).unwrap();
        if expected != frame {
            let differing = expected.diff(&frame).map_or(0, |d| {
                d.bounding_box()
                    .points()
                    .filter(|p| d.get_pixel(*p) == embedded_graphics::pixelcolor::BinaryColor::On)
                    .count()
            });
            let actual = std::env::temp_dir().join(format!("pacsbox-panel-actual-{sub}{name}.png"));
            std::fs::write(&actual, png_bytes(&frame, 1).unwrap()).unwrap();
            failures.push(format!(
                "{sub}/{name}: {differing} pixels differ (actual in {})",
                actual.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn nothing_is_cut_in_either_language() {
    let mut cut = Vec::new();
    for (lang, name, screen, health) in all_cases() {
        let mut frame = blank_frame();
        let Ok(lost) = pages::draw(&screen, &health, lang, &mut frame);
        if !lost.is_empty() {
            cut.push(format!("{lang:?} {name}: {lost:?}"));
        }
    }
    // Every alarm's advice too, with long device names and figures.
    let alarms = [
        Alarm::RaidFailed {
            array: "md127".into(),
        },
        Alarm::VolumeMissing,
        Alarm::StoresRefused,
        Alarm::DicomNotAccepting,
        Alarm::ConflictsFull { count: 10_000 },
        Alarm::DiskFailed {
            array: "md127".into(),
            disk: "nvme0n1".into(),
        },
        Alarm::DiskMissing {
            array: "md127".into(),
            count: 2,
        },
        Alarm::DiskMissing {
            array: "md127".into(),
            count: 1,
        },
        Alarm::DiskFailing {
            disk: "nvme0n1".into(),
        },
        Alarm::DiskNearlyFull { used_percent: 97 },
        Alarm::DicomOpen,
        Alarm::ForwardFailing { count: 123_456 },
        Alarm::BackupOld { hours: 1234 },
        Alarm::AuditNotForwarded { hours: 1234 },
        Alarm::ClockUnset,
        Alarm::Conflicts { count: 10_000 },
    ];
    for lang in [Language::En, Language::Ko] {
        for alarm in &alarms {
            let mut frame = blank_frame();
            let screen = Screen::Alarm {
                alarm: alarm.clone(),
                others: 14,
            };
            let Ok(lost) = pages::draw(&screen, &healthy(), lang, &mut frame);
            if !lost.is_empty() {
                cut.push(format!("{lang:?} {}: {lost:?}", alarm.key()));
            }
        }
    }
    assert!(cut.is_empty(), "{cut:#?}");
}

#[test]
fn the_korean_panel_draws_korean() {
    // Same screen, two languages: different pixels, and the Korean one is not a blank page.
    for (name, screen, health) in cases() {
        let en = render(&screen, &health, Language::En);
        let ko = render(&screen, &health, Language::Ko);
        assert!(en != ko, "{name} is the same in Korean");
    }
}

#[test]
fn a_blank_panel_would_not_pass_for_a_page() {
    // Guards the comparison itself: different screens must give different frames.
    let h = healthy();
    let identity = render(&Screen::Page(Page::Identity), &h, Language::En);
    let storage = render(&Screen::Page(Page::Storage), &h, Language::En);
    assert!(identity != storage);
    let lit = identity
        .bounding_box()
        .points()
        .filter(|p| identity.get_pixel(*p) == embedded_graphics::pixelcolor::BinaryColor::On)
        .count();
    assert!(lit > 300, "only {lit} pixels lit");
    let round_trip = frame_from_png(&png_bytes(&identity, 1).unwrap()).unwrap();
    assert!(round_trip == identity);
}
