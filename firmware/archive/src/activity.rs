//! What arrived today: counts and the last study received, for the status page and the front
//! panel. Kept in memory by the committer (a restart starts the day's counts afresh; the index
//! remains the record of what is stored).

use std::collections::{HashSet, VecDeque};

/// How many recent studies the status page lists.
const RECENT: usize = 10;

#[derive(Clone, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct LastReceived {
    /// Unix seconds.
    pub received_unix: i64,
    pub modality: String,
    pub calling_ae: String,
    pub study_uid: String,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Activity {
    /// Days since the Unix epoch (UTC) the counts are for.
    pub day: i64,
    pub instances_today: u64,
    pub studies_today: u64,
    pub last: Option<LastReceived>,
    /// The last studies received (each once, at its latest instance), newest first.
    pub recent: Vec<LastReceived>,
}

#[derive(Default)]
pub(crate) struct ActivityLog {
    current: Activity,
    studies: HashSet<String>,
    recent: VecDeque<LastReceived>,
}

impl ActivityLog {
    pub fn record(&mut self, unix: i64, modality: &str, calling_ae: &str, study_uid: &str) {
        let day = unix.div_euclid(86_400);
        if day != self.current.day {
            self.current = Activity {
                day,
                last: self.current.last.take(),
                ..Activity::default()
            };
            self.studies.clear();
        }
        self.current.instances_today += 1;
        if self.studies.insert(study_uid.to_owned()) {
            self.current.studies_today += 1;
        }
        let last = LastReceived {
            received_unix: unix,
            modality: modality.to_owned(),
            calling_ae: calling_ae.to_owned(),
            study_uid: study_uid.to_owned(),
        };
        self.recent.retain(|r| r.study_uid != study_uid);
        self.recent.push_front(last.clone());
        self.recent.truncate(RECENT);
        self.current.last = Some(last);
    }

    /// Today's view as of `now` (a day with nothing received reads as zero).
    pub fn snapshot(&self, now_unix: i64) -> Activity {
        let mut a = self.current.clone();
        a.recent = self.recent.iter().cloned().collect();
        if a.day != now_unix.div_euclid(86_400) {
            a.day = now_unix.div_euclid(86_400);
            a.instances_today = 0;
            a.studies_today = 0;
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reset_at_midnight_but_the_last_study_stays() {
        let mut log = ActivityLog::default();
        let day1 = 20_000 * 86_400;
        log.record(day1 + 10, "CT", "CT1", "1.1");
        log.record(day1 + 20, "CT", "CT1", "1.1");
        log.record(day1 + 30, "MR", "MR1", "1.2");
        let a = log.snapshot(day1 + 40);
        assert_eq!((a.instances_today, a.studies_today), (3, 2));
        assert_eq!(a.last.as_ref().map(|l| l.modality.as_str()), Some("MR"));
        let recent: Vec<&str> = a.recent.iter().map(|r| r.study_uid.as_str()).collect();
        assert_eq!(recent, ["1.2", "1.1"]);
        let next = log.snapshot(day1 + 86_400 + 5);
        assert_eq!((next.instances_today, next.studies_today), (0, 0));
        assert!(next.last.is_some());
        log.record(day1 + 86_400 + 6, "CR", "CR1", "1.1");
        let a = log.snapshot(day1 + 86_400 + 7);
        assert_eq!((a.instances_today, a.studies_today), (1, 1));
    }
}
