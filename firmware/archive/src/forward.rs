//! The forwarding queue (auto-routing to a hospital PACS): what is waiting to be sent where.
//! The archive only stores it; which instance goes where, and the sending, are
//! `pacsbox_dicom::forward`'s.
//!
//! Three redb tables:
//! - `forward_arrivals` (sequence → SOP Instance UID): every instance the group commit filed
//!   while forwarding is on, written in the same index transaction as the instance itself;
//!   journal replay after a crash writes it again with the re-indexed entries, so an instance
//!   answered with success is never missing here. The router drains it into jobs.
//! - `forward_jobs` (`peer \0 study \0 sop` → [`ForwardJob`]): one per instance and peer; the
//!   key groups a peer's jobs by study, so one association carries a study and a scan streams
//!   from redb (10 000 jobs are never held in memory). Keys make enqueueing idempotent: a
//!   replayed arrival or a second "Send to…" does not send twice.
//! - `forward_holds` (`peer \0 study` → unix time): a study is not sent before this (study
//!   mode: "stable for N seconds").

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::index::{Index, Result, SERIES_INSTANCES, STUDY_SERIES, dec, enc};

/// Failed attempts after which a job counts as failing (alarm, audit), unless the settings say
/// otherwise.
pub const DEFAULT_ALARM_AFTER: u32 = 5;

pub(crate) const ARRIVALS: TableDefinition<u64, &str> = TableDefinition::new("forward_arrivals");
pub(crate) const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("forward_jobs");
pub(crate) const HOLDS: TableDefinition<&str, i64> = TableDefinition::new("forward_holds");

/// One instance to send to one peer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForwardJob {
    pub peer: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    /// Why it is queued: `rule NAME`, or `user NAME` for a "Send to…".
    pub origin: String,
    pub enqueued_unix: i64,
    /// Not tried before this (backoff after failures).
    pub next_try_unix: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub last_error: String,
}

impl ForwardJob {
    pub fn key(&self) -> String {
        job_key(&self.peer, &self.study_uid, &self.sop_uid)
    }
}

fn job_key(peer: &str, study: &str, sop: &str) -> String {
    format!("{peer}\0{study}\0{sop}")
}

fn hold_key(peer: &str, study: &str) -> String {
    format!("{peer}\0{study}\0")
}

/// The key range holding `prefix`'s jobs (AE titles and UIDs never contain `\0` or `\x01`).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.trim_end_matches('\0').to_owned();
    end.push('\x01');
    end
}

fn peer_prefix(peer: &str) -> String {
    format!("{peer}\0")
}

/// One peer's queue, for the status page, `/status.json` and the alarm.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PeerQueue {
    pub peer: String,
    /// Jobs waiting (failing ones included).
    pub pending: u64,
    /// Jobs that failed at least `threshold` times.
    pub failing: u64,
    pub oldest_enqueued_unix: Option<i64>,
    /// The most recent failure's reason, if any job has one.
    pub last_error: String,
}

/// One study's jobs for one peer, for the admin page and `pacsbox forward-status`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct StudyQueue {
    pub peer: String,
    pub study_uid: String,
    pub instances: u64,
    /// Most failed attempts among its jobs.
    pub attempts: u32,
    pub last_error: String,
    pub next_try_unix: i64,
    pub origin: String,
}

/// Who a failure or a delivery concerns: a peer and a study.
pub type Target<'a> = (&'a str, &'a str);

impl Index {
    /// Appends an arrival for each entry, inside the transaction that indexes them.
    pub(crate) fn record_arrivals(
        txn: &WriteTransaction,
        sops: impl Iterator<Item = String>,
    ) -> Result<()> {
        let mut t = txn.open_table(ARRIVALS)?;
        let first = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
        for (seq, sop) in (first..).zip(sops) {
            t.insert(seq, sop.as_str())?;
        }
        Ok(())
    }

    /// The oldest `limit` arrivals not yet routed.
    pub fn forward_arrivals(&self, limit: usize) -> Result<Vec<(u64, String)>> {
        let txn = self.read()?;
        let t = match txn.open_table(ARRIVALS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.iter()?.take(limit) {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_owned()));
        }
        Ok(out)
    }

    /// Turns arrivals into jobs, durably, in one transaction: `routed` arrivals removed,
    /// `jobs` added (an existing job for the same peer and instance is kept as it is),
    /// `holds` set (study mode).
    pub fn forward_route(
        &self,
        routed: &[u64],
        jobs: &[ForwardJob],
        holds: &[(String, String, i64)],
    ) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut arrivals = txn.open_table(ARRIVALS)?;
            for seq in routed {
                arrivals.remove(*seq)?;
            }
            put_new_jobs(&txn, jobs)?;
            let mut h = txn.open_table(HOLDS)?;
            for (peer, study, until) in holds {
                h.insert(hold_key(peer, study).as_str(), *until)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Queues a study (or one series of it) for `peer` (a person's "Send to…"); returns the
    /// number of instances queued (already queued ones are left as they are).
    pub fn forward_enqueue(
        &self,
        peer: &str,
        study_uid: &str,
        series_uid: Option<&str>,
        origin: &str,
        now: i64,
    ) -> Result<u64> {
        let series: Vec<String> = match series_uid {
            Some(s) => vec![s.to_owned()],
            None => {
                let txn = self.read()?;
                let ss = txn.open_multimap_table(STUDY_SERIES)?;
                let mut v = Vec::new();
                for s in ss.get(study_uid)? {
                    v.push(s?.value().to_owned());
                }
                v
            }
        };
        let mut jobs = Vec::new();
        {
            let txn = self.read()?;
            let si = txn.open_multimap_table(SERIES_INSTANCES)?;
            for s in &series {
                for sop in si.get(s.as_str())? {
                    jobs.push(ForwardJob {
                        peer: peer.to_owned(),
                        study_uid: study_uid.to_owned(),
                        series_uid: s.clone(),
                        sop_uid: sop?.value().to_owned(),
                        origin: origin.to_owned(),
                        enqueued_unix: now,
                        next_try_unix: now,
                        attempts: 0,
                        last_error: String::new(),
                    });
                }
            }
        }
        let txn = self.begin_write()?;
        let added = put_new_jobs(&txn, &jobs)?;
        txn.commit()?;
        Ok(added)
    }

    /// The next study due for `peer` (not held, not in `busy`, with jobs whose backoff has
    /// passed) and up to `limit` of its due jobs. Streams the peer's jobs from redb.
    pub fn forward_due(
        &self,
        peer: &str,
        now: i64,
        busy: &[String],
        limit: usize,
    ) -> Result<Option<(String, Vec<ForwardJob>)>> {
        let txn = self.read()?;
        let t = match txn.open_table(JOBS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let holds = txn.open_table(HOLDS)?;
        let (start, end) = (peer_prefix(peer), prefix_end(&peer_prefix(peer)));
        let mut chosen: Option<String> = None;
        let mut held: HashMap<String, bool> = HashMap::new();
        let mut out = Vec::new();
        for row in t.range(start.as_str()..end.as_str())? {
            let (_, v) = row?;
            let job: ForwardJob = dec(v.value())?;
            if let Some(study) = &chosen {
                if *study != job.study_uid || out.len() >= limit {
                    break;
                }
                if job.next_try_unix <= now {
                    out.push(job);
                }
                continue;
            }
            if job.next_try_unix > now || busy.contains(&job.study_uid) {
                continue;
            }
            let is_held = match held.get(&job.study_uid) {
                Some(h) => *h,
                None => {
                    let h = holds
                        .get(hold_key(peer, &job.study_uid).as_str())?
                        .is_some_and(|until| until.value() > now);
                    held.insert(job.study_uid.clone(), h);
                    h
                }
            };
            if is_held {
                continue;
            }
            chosen = Some(job.study_uid.clone());
            out.push(job);
        }
        Ok(chosen.map(|s| (s, out)))
    }

    /// Sent: the jobs leave the queue (with their study's hold once none is left).
    pub fn forward_delivered(&self, jobs: &[ForwardJob]) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(JOBS)?;
            let mut studies: Vec<(&str, &str)> = Vec::new();
            for j in jobs {
                t.remove(j.key().as_str())?;
                if !studies.contains(&(&j.peer, &j.study_uid)) {
                    studies.push((&j.peer, &j.study_uid));
                }
            }
            let mut h = txn.open_table(HOLDS)?;
            for (peer, study) in studies {
                let prefix = hold_key(peer, study);
                let left = t
                    .range(prefix.as_str()..prefix_end(&prefix).as_str())?
                    .next()
                    .is_some();
                if !left {
                    h.remove(prefix.as_str())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Failed: each job's attempts go up and its next try is `retry_in(attempts)` seconds
    /// away; the reason is kept. Returns the jobs as now stored.
    pub fn forward_failed(
        &self,
        jobs: &[ForwardJob],
        error: &str,
        now: i64,
        retry_in: impl Fn(u32) -> i64,
    ) -> Result<Vec<ForwardJob>> {
        let txn = self.begin_write()?;
        let mut out = Vec::with_capacity(jobs.len());
        {
            let mut t = txn.open_table(JOBS)?;
            for j in jobs {
                let key = j.key();
                // Cancelled meanwhile: stays cancelled.
                let Some(stored) = t.get(key.as_str())?.map(|v| dec::<ForwardJob>(v.value()))
                else {
                    continue;
                };
                let mut stored = stored?;
                stored.attempts = stored.attempts.saturating_add(1);
                stored.next_try_unix = now + retry_in(stored.attempts);
                stored.last_error = error.chars().take(300).collect();
                t.insert(key.as_str(), enc(&stored)?.as_slice())?;
                out.push(stored);
            }
        }
        txn.commit()?;
        Ok(out)
    }

    /// Per peer: jobs waiting, failing (at least `threshold` failed attempts), oldest, last
    /// error. One streamed pass over the queue.
    pub fn forward_summary(&self, threshold: u32) -> Result<Vec<PeerQueue>> {
        let mut out: Vec<PeerQueue> = Vec::new();
        let mut newest_error = 0i64;
        self.for_each_job(|j| {
            if out.last().is_none_or(|q| q.peer != j.peer) {
                out.push(PeerQueue {
                    peer: j.peer.clone(),
                    ..PeerQueue::default()
                });
                newest_error = 0;
            }
            if let Some(q) = out.last_mut() {
                q.pending += 1;
                if j.attempts >= threshold {
                    q.failing += 1;
                }
                q.oldest_enqueued_unix = Some(
                    q.oldest_enqueued_unix
                        .map_or(j.enqueued_unix, |o| o.min(j.enqueued_unix)),
                );
                // The next try is set at the failure, so the latest one is the newest error.
                if !j.last_error.is_empty() && j.next_try_unix >= newest_error {
                    newest_error = j.next_try_unix;
                    q.last_error = j.last_error.clone();
                }
            }
        })?;
        Ok(out)
    }

    /// The queue by peer and study, at most `limit` rows (for the admin page and the CLI).
    pub fn forward_studies(&self, limit: usize) -> Result<Vec<StudyQueue>> {
        let mut out: Vec<StudyQueue> = Vec::new();
        self.for_each_job(|j| {
            let same = out
                .last()
                .is_some_and(|q| q.peer == j.peer && q.study_uid == j.study_uid);
            if !same {
                if out.len() >= limit {
                    return;
                }
                out.push(StudyQueue {
                    peer: j.peer.clone(),
                    study_uid: j.study_uid.clone(),
                    next_try_unix: j.next_try_unix,
                    origin: j.origin.clone(),
                    ..StudyQueue::default()
                });
            }
            if let Some(q) = out.last_mut() {
                q.instances += 1;
                q.next_try_unix = q.next_try_unix.min(j.next_try_unix);
                if j.attempts >= q.attempts {
                    q.attempts = j.attempts;
                    if !j.last_error.is_empty() {
                        q.last_error = j.last_error.clone();
                    }
                }
            }
        })?;
        Ok(out)
    }

    fn for_each_job(&self, mut f: impl FnMut(ForwardJob)) -> Result<()> {
        let txn = self.read()?;
        let t = match txn.open_table(JOBS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for row in t.iter()? {
            let (_, v) = row?;
            f(dec(v.value())?);
        }
        Ok(())
    }

    /// An admin's retry: the jobs of `peer` (of one study, or all) are due now with their
    /// attempts reset. Returns how many.
    pub fn forward_retry(&self, peer: &str, study: Option<&str>, now: i64) -> Result<u64> {
        self.forward_edit(peer, study, |j| {
            j.attempts = 0;
            j.next_try_unix = now;
            true
        })
    }

    /// An admin's cancel: the jobs of `peer` (of one study, or all) leave the queue unsent.
    /// Returns how many.
    pub fn forward_cancel(&self, peer: &str, study: Option<&str>) -> Result<u64> {
        self.forward_edit(peer, study, |_| false)
    }

    /// Applies `f` to the selected jobs: true keeps (rewritten), false removes.
    fn forward_edit(
        &self,
        peer: &str,
        study: Option<&str>,
        mut f: impl FnMut(&mut ForwardJob) -> bool,
    ) -> Result<u64> {
        let prefix = match study {
            Some(s) => hold_key(peer, s),
            None => peer_prefix(peer),
        };
        let txn = self.begin_write()?;
        let mut n = 0;
        {
            let mut t = txn.open_table(JOBS)?;
            let mut rows: Vec<(String, ForwardJob)> = Vec::new();
            for row in t.range(prefix.as_str()..prefix_end(&prefix).as_str())? {
                let (k, v) = row?;
                rows.push((k.value().to_owned(), dec(v.value())?));
            }
            for (k, mut j) in rows {
                n += 1;
                if f(&mut j) {
                    t.insert(k.as_str(), enc(&j)?.as_slice())?;
                } else {
                    t.remove(k.as_str())?;
                }
            }
        }
        txn.commit()?;
        Ok(n)
    }
}

/// Inserts jobs not already queued; returns how many were new.
fn put_new_jobs(txn: &WriteTransaction, jobs: &[ForwardJob]) -> Result<u64> {
    let mut t = txn.open_table(JOBS)?;
    let mut added = 0;
    for j in jobs {
        let key = j.key();
        if t.get(key.as_str())?.is_none() {
            t.insert(key.as_str(), enc(j)?.as_slice())?;
            added += 1;
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn job(peer: &str, study: &str, sop: &str, next: i64) -> ForwardJob {
        ForwardJob {
            peer: peer.into(),
            study_uid: study.into(),
            series_uid: "1.9".into(),
            sop_uid: sop.into(),
            origin: "rule all".into(),
            enqueued_unix: 100,
            next_try_unix: next,
            attempts: 0,
            last_error: String::new(),
        }
    }

    fn index() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.redb")).unwrap();
        (dir, index)
    }

    #[test]
    fn arrivals_become_jobs_once_and_a_peer_sends_study_by_study() {
        let (_d, ix) = index();
        let txn = ix.begin_write().unwrap();
        Index::record_arrivals(&txn, ["1.1.1".to_owned(), "1.1.2".to_owned()].into_iter()).unwrap();
        txn.commit().unwrap();
        let arrivals = ix.forward_arrivals(10).unwrap();
        assert_eq!(arrivals.len(), 2);
        let jobs = vec![
            job("PACS", "1.2", "1.1.2", 0),
            job("PACS", "1.1", "1.1.1", 0),
            job("OTHER", "1.1", "1.1.1", 0),
        ];
        let seqs: Vec<u64> = arrivals.iter().map(|(s, _)| *s).collect();
        ix.forward_route(&seqs, &jobs, &[]).unwrap();
        // a replayed arrival queues nothing twice
        ix.forward_route(&[], &jobs[..1], &[]).unwrap();
        assert!(ix.forward_arrivals(10).unwrap().is_empty());
        let (study, due) = ix.forward_due("PACS", 10, &[], 100).unwrap().unwrap();
        assert_eq!((study.as_str(), due.len()), ("1.1", 1));
        let (study, _) = ix
            .forward_due("PACS", 10, &["1.1".to_owned()], 100)
            .unwrap()
            .unwrap();
        assert_eq!(study, "1.2", "a study in flight is skipped");
        ix.forward_delivered(&due).unwrap();
        let summary = ix.forward_summary(3).unwrap();
        let counts: Vec<(&str, u64)> = summary
            .iter()
            .map(|q| (q.peer.as_str(), q.pending))
            .collect();
        assert_eq!(counts, [("OTHER", 1), ("PACS", 1)]);
    }

    #[test]
    fn failures_back_off_count_and_can_be_retried_or_cancelled() {
        let (_d, ix) = index();
        ix.forward_route(&[], &[job("PACS", "1.1", "1.1.1", 0)], &[])
            .unwrap();
        let (_, due) = ix.forward_due("PACS", 10, &[], 100).unwrap().unwrap();
        for i in 0..3 {
            ix.forward_failed(&due, "refused", 10 + i, |n| 60 * i64::from(n))
                .unwrap();
        }
        assert!(ix.forward_due("PACS", 11, &[], 100).unwrap().is_none());
        let s = &ix.forward_summary(3).unwrap()[0];
        assert_eq!(
            (s.pending, s.failing, s.last_error.as_str()),
            (1, 1, "refused")
        );
        assert_eq!(ix.forward_retry("PACS", Some("1.1"), 20).unwrap(), 1);
        assert!(ix.forward_due("PACS", 20, &[], 100).unwrap().is_some());
        assert_eq!(ix.forward_summary(3).unwrap()[0].failing, 0);
        assert_eq!(ix.forward_cancel("PACS", None).unwrap(), 1);
        assert!(ix.forward_summary(3).unwrap().is_empty());
    }

    #[test]
    fn a_held_study_waits_until_its_hold_passes() {
        let (_d, ix) = index();
        ix.forward_route(
            &[],
            &[job("PACS", "1.1", "1.1.1", 0)],
            &[("PACS".into(), "1.1".into(), 50)],
        )
        .unwrap();
        assert!(ix.forward_due("PACS", 49, &[], 100).unwrap().is_none());
        let (_, due) = ix.forward_due("PACS", 50, &[], 100).unwrap().unwrap();
        ix.forward_delivered(&due).unwrap();
        let txn = ix.read().unwrap();
        assert!(txn.open_table(HOLDS).unwrap().is_empty().unwrap());
    }
}
