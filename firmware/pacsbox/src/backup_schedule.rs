//! `[backup]`: `pacsbox backup` on a schedule while the box serves, so a clinic that plugged in
//! a USB disk (or mounted a share) gets a fresh second copy every day without anyone running a
//! command. One thread; the copying itself is `pacsbox_archive::backup` (files only, no index),
//! so stores go on meanwhile. Its state feeds the status page and the BACKUP OLD alarm.
//!
//! When: the first run a few seconds after start when the folder holds no complete backup
//! (a new box, or a disk swapped for an empty one); after that `every_minutes` after the last
//! complete one (read from the folder's `COMPLETE` marker, so a restart keeps the rhythm),
//! moved to the next `hour` (local time) when one is set — a Pi's disks are shared with
//! modalities by day. A failed run is retried after an hour (or `every_minutes`, if shorter).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pacsbox_archive::backup::{self, BackupStatus};
use serde::{Deserialize, Serialize};

/// Seconds after start before a first backup: let the services settle and the clock be read.
const START_DELAY_S: i64 = 5;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// The backup folder (a mounted USB disk or share); absent: no scheduled backup.
    pub to: Option<PathBuf>,
    /// Minutes between two complete backups (default a day).
    pub every_minutes: u64,
    /// Local hour (0–23) at which a due backup starts; absent: as soon as it is due.
    pub hour: Option<u8>,
    /// Minutes without a complete backup after which BACKUP OLD is raised (default twice
    /// `every_minutes`: one missed run is an accident, two need a person).
    pub alarm_after_minutes: Option<u64>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            to: None,
            every_minutes: 24 * 60,
            hour: None,
            alarm_after_minutes: None,
        }
    }
}

impl BackupSettings {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.every_minutes >= 1,
            "[backup] every_minutes must be 1 or more"
        );
        anyhow::ensure!(
            self.hour.is_none_or(|h| h < 24),
            "[backup] hour must be 0 to 23"
        );
        Ok(())
    }

    fn alarm_after_s(&self) -> i64 {
        let m = self.alarm_after_minutes.unwrap_or(2 * self.every_minutes);
        i64::try_from(m.saturating_mul(60)).unwrap_or(i64::MAX)
    }
}

/// When the next run starts: `every` after the last complete backup (or soon after `started`
/// without one), then, with an `hour`, the first start of that local hour from a little before
/// (so a run that finished at 02:40 is not pushed to the day after next by one that finishes
/// at 02:10).
pub fn next_run(
    settings: &BackupSettings,
    last_complete: Option<i64>,
    started: i64,
    utc_offset_s: i32,
) -> i64 {
    let every = i64::try_from(settings.every_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
    let Some(last) = last_complete else {
        // Never backed up: now, whatever the hour — an unprotected archive is the risk.
        return started + START_DELAY_S;
    };
    let due = last.saturating_add(every);
    let Some(hour) = settings.hour else {
        return due;
    };
    let from = due - (every / 2).min(3 * 3600);
    let local = from + i64::from(utc_offset_s);
    let day_start = local - local.rem_euclid(86_400);
    let mut at = day_start + i64::from(hour) * 3600;
    if at < local {
        at += 86_400;
    }
    at - i64::from(utc_offset_s)
}

/// The running schedule: stopped (between two files of a run) by [`Schedule::stop`].
pub struct Schedule {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<BackupStatus>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    alarm_after_s: i64,
    started: i64,
}

impl Schedule {
    /// Starts the schedule when `[backup] to` is set.
    pub fn start(
        settings: &BackupSettings,
        data_dir: PathBuf,
        audit: pacsbox_audit::Audit,
    ) -> anyhow::Result<Option<Schedule>> {
        let Some(to) = settings.to.clone() else {
            return Ok(None);
        };
        let started = pacsbox_audit::now_unix();
        let status = Arc::new(Mutex::new(BackupStatus {
            to: to.display().to_string(),
            every_minutes: settings.every_minutes,
            last_complete_unix: backup::completed_unix(&to),
            ..BackupStatus::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let run = Runner {
            settings: settings.clone(),
            to,
            data_dir,
            audit,
            stop: stop.clone(),
            status: status.clone(),
            started,
        };
        let thread = std::thread::Builder::new()
            .name("backup".into())
            .spawn(move || run.run())?;
        Ok(Some(Schedule {
            stop,
            status,
            thread: Mutex::new(Some(thread)),
            alarm_after_s: settings.alarm_after_s(),
            started,
        }))
    }

    /// The state now, with the hours since the last complete backup when that is past the
    /// alarm threshold.
    pub fn status(&self, now_unix: i64) -> BackupStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let age = now_unix - s.last_complete_unix.unwrap_or(self.started);
        s.overdue_hours =
            (age > self.alarm_after_s).then(|| u64::try_from(age / 3600).unwrap_or(0));
        s
    }

    /// Stops the thread (a run in progress stops between two files and resumes next start).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

struct Runner {
    settings: BackupSettings,
    to: PathBuf,
    data_dir: PathBuf,
    audit: pacsbox_audit::Audit,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<BackupStatus>>,
    started: i64,
}

impl Runner {
    fn update(&self, f: impl FnOnce(&mut BackupStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn run(self) {
        let retry_s = i64::try_from(self.settings.every_minutes.min(60) * 60).unwrap_or(3600);
        let mut retry_at: Option<i64> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let now = pacsbox_audit::now_unix();
            let last = self.status.lock().ok().and_then(|s| s.last_complete_unix);
            let next = retry_at.unwrap_or_else(|| {
                next_run(
                    &self.settings,
                    last,
                    self.started,
                    pacsbox_health::host::utc_offset_s(now),
                )
            });
            self.update(|s| s.next_unix = Some(next));
            if now < next {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            self.update(|s| s.running = true);
            tracing::info!(to = %self.to.display(), "scheduled backup starting");
            let result = backup::backup_until(&self.data_dir, &self.to, now, &self.stop);
            self.update(|s| s.running = false);
            let event = pacsbox_audit::Event::new("backup.run", "pacsbox", "");
            match result {
                Ok(r) => {
                    retry_at = None;
                    let what = format!(
                        "{} files, {} copied ({} bytes), {} removed, to {}",
                        r.files,
                        r.copied,
                        r.bytes_copied,
                        r.removed,
                        self.to.display()
                    );
                    tracing::info!(what, "scheduled backup complete");
                    self.audit.record(event.detail(what));
                    self.update(|s| {
                        s.last_complete_unix = Some(now);
                        s.last_files = r.files;
                        s.last_copied = r.copied;
                        s.last_error.clear();
                        s.last_error_unix = None;
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    tracing::info!(
                        "scheduled backup stopped with the box; it resumes at the next start"
                    );
                }
                Err(e) => {
                    let now = pacsbox_audit::now_unix();
                    retry_at = Some(now + retry_s);
                    let why = format!("backing up to {}: {e}", self.to.display());
                    tracing::warn!(error = why, "scheduled backup failed; retrying later");
                    self.audit
                        .record(event.outcome("failed").detail(why.clone()));
                    self.update(|s| {
                        s.last_error = why;
                        s.last_error_unix = Some(now);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily(hour: Option<u8>) -> BackupSettings {
        BackupSettings {
            to: Some("/mnt/usb".into()),
            hour,
            ..BackupSettings::default()
        }
    }

    #[test]
    fn the_first_backup_is_soon_and_the_next_a_day_after_the_last() {
        let s = daily(None);
        assert_eq!(next_run(&s, None, 1_000, 0), 1_000 + START_DELAY_S);
        assert_eq!(next_run(&s, Some(50_000), 1_000, 0), 50_000 + 86_400);
        // An hour does not delay the very first copy.
        assert_eq!(
            next_run(&daily(Some(2)), None, 1_000, 0),
            1_000 + START_DELAY_S
        );
    }

    #[test]
    fn an_hour_moves_the_run_to_that_local_hour() {
        let s = daily(Some(2));
        // Last complete at 02:40 UTC on day 10: next at 02:00 on day 11 (within the slack).
        let day = 10 * 86_400;
        assert_eq!(
            next_run(&s, Some(day + 2 * 3600 + 2400), 0, 0),
            day + 86_400 + 2 * 3600
        );
        // Finished at 03:10 (a long run): still 02:00 the next day, not the day after.
        assert_eq!(
            next_run(&s, Some(day + 3 * 3600 + 600), 0, 0),
            day + 86_400 + 2 * 3600
        );
        // Finished at 14:00: 02:00 tomorrow is more than the slack before the due time, so
        // the day after tomorrow.
        assert_eq!(
            next_run(&s, Some(day + 14 * 3600), 0, 0),
            day + 2 * 86_400 + 2 * 3600
        );
        // Seoul (UTC+9): 02:00 local is 17:00 UTC the day before.
        let kst = 9 * 3600;
        let last = day + 17 * 3600 + 1200; // 02:20 local on day 11
        assert_eq!(next_run(&s, Some(last), 0, kst), day + 86_400 + 17 * 3600);
    }

    #[test]
    fn settings_are_checked() {
        assert!(daily(Some(24)).check().is_err());
        assert!(
            BackupSettings {
                every_minutes: 0,
                ..daily(None)
            }
            .check()
            .is_err()
        );
        assert!(daily(Some(23)).check().is_ok());
        assert_eq!(daily(None).alarm_after_s(), 2 * 86_400);
    }
}
