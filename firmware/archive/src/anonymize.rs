//! Anonymizing a whole study (PS3.15 Annex E, `pacsbox-deid` does each file): every stored
//! instance read, de-identified with one UID map for the study (references between its
//! instances still resolve), and either handed to the caller (a ZIP) or stored as a new study.
//! Stored, each file goes through the ingest path's checks ([`IncomingInstance::stage`]), and
//! the whole copy is filed all or nothing: a marker in `ops/` while the run lasts, chunks
//! committed together ([`Archive::commit_staged`]), a crash's leftovers removed at start-up
//! ([`recover`]). The original study is only read.
//!
//! [`IncomingInstance::stage`]: crate::IncomingInstance::stage

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use pacsbox_deid::{Anonymized, BurnedIn, DeidError, Implementation, Options, UidMap};

use crate::query::{Attr, Level, Matcher, Query, QueryError};
use crate::{
    Archive, Index, InstanceRecord, StagedInstance, StoreError, StoreOutcome, StoreRequest, index,
    part10,
};

/// Source AE (0002,0016) of the instances an anonymization stores.
pub const ANONYMIZE_AE: &str = "PACSBOX-ANON";

#[derive(Debug, thiserror::Error)]
pub enum AnonymizeError {
    #[error("no such study")]
    NoStudy,
    #[error("{0}")]
    Options(DeidError),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{0}")]
    Deid(DeidError),
    #[error("{0}")]
    Output(String),
}

/// What one run did.
#[derive(Clone, Debug, Default)]
pub struct AnonymizeReport {
    pub source_study: String,
    /// The new Study Instance UID.
    pub new_study: String,
    /// Instances of the source study.
    pub instances: u64,
    /// Instances written (stored, or added to the ZIP).
    pub written: u64,
    /// Stored as new (the rest of `written` were already there: a duplicate).
    pub stored: u64,
    /// Burned In Annotation YES: pixel data NOT de-identified (original SOP Instance UIDs).
    pub burned_in: Vec<String>,
    /// Burned In Annotation absent, modality known to burn in: may not be de-identified.
    pub possibly_burned_in: u64,
    /// Instances that could not be read or anonymized (original SOP UID, why); not written.
    pub failed: Vec<(String, String)>,
}

impl AnonymizeReport {
    /// One line for the audit trail and logs.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} instances, {} stored, {} failed, burned-in {} (possibly {})",
            self.written,
            self.instances,
            self.stored,
            self.failed.len(),
            self.burned_in.len(),
            self.possibly_burned_in
        )
    }
}

/// How far a run into the archive is: instances of the study, and those read, de-identified
/// and staged (or failed) so far; the last chunk's commit follows `done == total`.
#[derive(Debug, Default)]
pub struct AnonymizeProgress {
    pub total: AtomicU64,
    pub done: AtomicU64,
}

/// A run's instances, UID map and report so far.
type Run = (Vec<(String, InstanceRecord)>, UidMap, AnonymizeReport);

/// Instances committed together by `anonymize_into_archive`: one sync pass and one journal
/// sync each. Their files stay open until then, so this also bounds the descriptors a run
/// holds.
const COMMIT_CHUNK: usize = 256;

/// Threads staging instances: reading and de-identifying is CPU work, writing to `tmp/`
/// does not wait for the disk, so one per core and one more to cover a read from disk.
fn stage_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// Bytes of stored files being anonymized at once (each is held twice: read and rewritten),
/// so that eight 200 MB cine loops do not take a small board's memory; one larger file still
/// goes through, alone.
const IN_FLIGHT_BYTES: u64 = 256 << 20;

/// A budget of bytes in flight shared by the storing threads.
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    fn take(&self, n: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && *used + n > IN_FLIGHT_BYTES {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += n;
    }

    fn give(&self, n: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(n);
        self.freed.notify_all();
    }
}

const IMPLEMENTATION: Implementation<'static> = Implementation {
    class_uid: part10::IMPLEMENTATION_CLASS_UID,
    version_name: part10::IMPLEMENTATION_VERSION_NAME,
};

impl Archive {
    /// A study's instances, by series, instance number and SOP Instance UID.
    pub fn study_instances(
        &self,
        study_uid: &str,
    ) -> Result<Vec<(String, InstanceRecord)>, QueryError> {
        let q = Query {
            level: Level::Study,
            filters: vec![(
                Attr::StudyInstanceUid,
                Matcher::Single(study_uid.to_owned()),
            )],
        };
        let mut set = self.index().retrieve_set(&q)?;
        set.sort_by(|a, b| {
            (&a.1.series_uid, a.1.instance_number, &a.0).cmp(&(
                &b.1.series_uid,
                b.1.instance_number,
                &b.0,
            ))
        });
        Ok(set)
    }

    /// Anonymizes every instance of `study_uid` and hands each result to `each`, in
    /// [`study_instances`](Self::study_instances) order. An instance that cannot be read or
    /// anonymized is listed in the report's `failed` and skipped; an error of `each` ends the run.
    pub fn anonymize_study<E: std::fmt::Display>(
        &self,
        study_uid: &str,
        opts: &Options,
        mut each: impl FnMut(&InstanceRecord, &Anonymized) -> Result<(), E>,
    ) -> Result<AnonymizeReport, AnonymizeError> {
        let (instances, uids, mut report) = self.start_run(study_uid, opts)?;
        let mut buf = Vec::new();
        for (sop, rec) in &instances {
            let Some(a) = self.anonymize_one(sop, rec, opts, &uids, &mut buf, &mut report) else {
                continue;
            };
            each(rec, &a).map_err(|e| AnonymizeError::Output(format!("{sop}: {e}")))?;
            report.written += 1;
        }
        Ok(report)
    }

    /// Anonymizes `study_uid` into a new study of this archive, each instance checked and
    /// filed as a C-STORE's is, all or nothing: a record in `ops/` names the new study while
    /// the run lasts, and start-up recovery removes whatever a crash left of it
    /// ([`recover`]); a run that fails removes it at once. The instances are staged by
    /// several threads (read, de-identified, written to `tmp/` without a sync) and committed
    /// [`COMMIT_CHUNK`] at a time: one sync pass and one journal sync per chunk, where
    /// storing each as a C-STORE cost a sync per instance.
    pub fn anonymize_into_archive(
        &self,
        study_uid: &str,
        opts: &Options,
    ) -> Result<AnonymizeReport, AnonymizeError> {
        self.anonymize_into_archive_with(study_uid, opts, &AnonymizeProgress::default())
    }

    /// [`anonymize_into_archive`](Self::anonymize_into_archive), counting in `progress`
    /// (a web page polls it).
    pub fn anonymize_into_archive_with(
        &self,
        study_uid: &str,
        opts: &Options,
        progress: &AnonymizeProgress,
    ) -> Result<AnonymizeReport, AnonymizeError> {
        let (instances, uids, report) = self.start_run(study_uid, opts)?;
        progress
            .total
            .store(instances.len() as u64, Ordering::Relaxed);
        let root = &self.shared.root;
        let marker = marker_path(root, &report.new_study);
        write_marker(&marker)
            .map_err(|e| AnonymizeError::Output(format!("writing {}: {e}", marker.display())))?;
        let result = self.stage_and_commit(&instances, opts, &uids, report, progress);
        if result.is_err() {
            // Nothing of a failed run stays: committed chunks go again.
            let new_study = uids.map(study_uid);
            if let Err(e) = self.committer.checkpoint_now().and_then(|()| {
                let _swap = self.shared.swap_lock();
                remove_study(&self.shared.root, &self.shared.index, &new_study)
            }) {
                tracing::error!(study = new_study, error = %e, "anonymize: removing the partial copy failed; the next start removes it");
                return result;
            }
        }
        remove_marker(&marker)
            .map_err(|e| AnonymizeError::Output(format!("removing {}: {e}", marker.display())))?;
        result
    }

    fn stage_and_commit(
        &self,
        instances: &[(String, InstanceRecord)],
        opts: &Options,
        uids: &UidMap,
        report: AnonymizeReport,
        progress: &AnonymizeProgress,
    ) -> Result<AnonymizeReport, AnonymizeError> {
        let next = AtomicUsize::new(0);
        let budget = Budget {
            used: Mutex::new(0),
            freed: Condvar::new(),
        };
        // The report, the first error, and the staged instances not yet committed.
        let shared = Mutex::new((report, None::<AnonymizeError>, Vec::new()));
        let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
        // A thread that fills a chunk commits it while the others go on staging.
        let commit = |chunk: Vec<StagedInstance>| {
            let sops: Vec<String> = chunk
                .iter()
                .map(|s| s.sop_instance_uid().to_owned())
                .collect();
            let outcomes = self.commit_staged(chunk);
            let mut guard = lock();
            let all = &mut *guard;
            match outcomes {
                Ok(outcomes) => {
                    for (sop, outcome) in sops.into_iter().zip(outcomes) {
                        all.0.account(sop, outcome, &mut all.1);
                    }
                }
                Err(e) => {
                    all.1.get_or_insert(AnonymizeError::Output(e.to_string()));
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 0..stage_threads().min(instances.len()) {
                scope.spawn(|| {
                    let mut buf = Vec::new();
                    let mut mine = AnonymizeReport::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((sop, rec)) = instances.get(i) else {
                            break;
                        };
                        if lock().1.is_some() {
                            break;
                        }
                        let cost = rec.file_size.saturating_mul(2);
                        budget.take(cost);
                        let staged = self
                            .anonymize_one(sop, rec, opts, uids, &mut buf, &mut mine)
                            .map(|a| self.stage_anonymized(&a));
                        if buf.capacity() > 64 << 20 {
                            // A large one's buffer is not kept for the small ones after it.
                            buf = Vec::new();
                        }
                        budget.give(cost);
                        progress.done.fetch_add(1, Ordering::Relaxed);
                        let Some(staged) = staged else { continue };
                        let full = {
                            let mut guard = lock();
                            let all = &mut *guard;
                            match staged {
                                Ok(s) => all.2.push(s),
                                Err(e) => all.0.account(sop.clone(), Err(e), &mut all.1),
                            }
                            (all.2.len() >= COMMIT_CHUNK).then(|| std::mem::take(&mut all.2))
                        };
                        if let Some(chunk) = full {
                            commit(chunk);
                        }
                    }
                    lock().0.merge(mine);
                });
            }
        });
        let rest = std::mem::take(&mut lock().2);
        if lock().1.is_none() {
            commit(rest);
        }
        let (mut report, error, _) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = error {
            return Err(e);
        }
        report.burned_in.sort();
        report.failed.sort();
        Ok(report)
    }

    /// The study's instances, a fresh UID map and a report naming the study and its new UID.
    fn start_run(&self, study_uid: &str, opts: &Options) -> Result<Run, AnonymizeError> {
        opts.validate().map_err(AnonymizeError::Options)?;
        let instances = self.study_instances(study_uid)?;
        if instances.is_empty() {
            return Err(AnonymizeError::NoStudy);
        }
        let uids = UidMap::random().map_err(AnonymizeError::Deid)?;
        let report = AnonymizeReport {
            source_study: study_uid.to_owned(),
            new_study: uids.map(study_uid),
            instances: instances.len() as u64,
            ..AnonymizeReport::default()
        };
        Ok((instances, uids, report))
    }

    /// One instance read and anonymized, its burned-in state counted; `None` (and listed in
    /// `failed`) when it cannot be.
    fn anonymize_one(
        &self,
        sop: &str,
        rec: &InstanceRecord,
        opts: &Options,
        uids: &UidMap,
        buf: &mut Vec<u8>,
        report: &mut AnonymizeReport,
    ) -> Option<Anonymized> {
        buf.clear();
        let result = self
            .open_part10(rec)
            .and_then(|mut r| r.read_to_end(buf))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                pacsbox_deid::anonymize(buf, opts, uids, IMPLEMENTATION).map_err(|e| e.to_string())
            });
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(sop, error = %e, "anonymize: instance left out");
                report.failed.push((sop.to_owned(), e));
                return None;
            }
        };
        match a.burned_in {
            BurnedIn::Yes => report.burned_in.push(sop.to_owned()),
            BurnedIn::Possible => report.possibly_burned_in += 1,
            BurnedIn::No => {}
        }
        Some(a)
    }

    /// Writes one anonymized instance to `tmp/` through the ingest path (checked as a
    /// C-STORE's data set is), to be committed with its chunk.
    fn stage_anonymized(&self, a: &Anonymized) -> Result<StagedInstance, StoreError> {
        let req = StoreRequest {
            sop_class_uid: a.sop_class_uid.clone(),
            sop_instance_uid: a.sop_instance_uid.clone(),
            transfer_syntax: a.transfer_syntax.clone(),
            source_ae: ANONYMIZE_AE.to_owned(),
        };
        self.begin_store(req)?.stage(&a.part10[a.dataset_offset..])
    }
}

impl AnonymizeReport {
    /// Counts one instance's store outcome; an error that is not about this data set ends
    /// the run (`error`).
    fn account(
        &mut self,
        sop: String,
        outcome: Result<StoreOutcome, StoreError>,
        error: &mut Option<AnonymizeError>,
    ) {
        match outcome {
            Ok(outcome) => {
                self.written += 1;
                self.stored += u64::from(outcome == StoreOutcome::Stored);
            }
            // This data set refused (as a C-STORE of it would be): left out.
            Err(e @ (StoreError::CannotUnderstand(_) | StoreError::Mismatch(_))) => {
                tracing::warn!(sop, error = %e, "anonymize: copy not stored");
                self.failed.push((sop, e.to_string()));
            }
            // The archive cannot store (disk full, shutting down, …): stop.
            Err(e) => {
                error.get_or_insert(AnonymizeError::Output(format!("{sop}: {e}")));
            }
        }
    }

    fn merge(&mut self, other: AnonymizeReport) {
        self.written += other.written;
        self.stored += other.stored;
        self.burned_in.extend(other.burned_in);
        self.possibly_burned_in += other.possibly_burned_in;
        self.failed.extend(other.failed);
    }
}

/// While a run lasts, `ops/anonymize-<new study UID>.run` says so.
fn marker_path(root: &Path, new_study: &str) -> PathBuf {
    crate::edit::ops_dir(root).join(format!("anonymize-{new_study}{MARKER_SUFFIX}"))
}

const MARKER_SUFFIX: &str = ".run";

/// The marker is durable before the first instance is staged.
fn write_marker(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        File::create(path)?.sync_all()?;
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The marker's removal is durable before the run reports success: a crash afterwards must
/// not remove the study.
fn remove_marker(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Takes every instance of `study` out of the index (one durable transaction) and their
/// files off the disk. While the archive is open, the caller holds the swap lock, so that the
/// compactor does not move one of the files meanwhile.
fn remove_study(root: &Path, idx: &Index, study: &str) -> io::Result<u64> {
    let q = Query {
        level: Level::Study,
        filters: vec![(Attr::StudyInstanceUid, Matcher::Single(study.to_owned()))],
    };
    let set = idx
        .retrieve_set(&q)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let txn = idx.begin_write().map_err(io::Error::other)?;
    for (sop, _) in &set {
        index::remove_one(&txn, sop).map_err(io::Error::other)?;
    }
    txn.commit().map_err(|e| io::Error::other(e.to_string()))?;
    for (_, rec) in &set {
        match std::fs::remove_file(root.join(&rec.rel_path)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(set.len() as u64)
}

/// Start-up recovery, after the journal's replay: removes what a crash left of each
/// anonymization still running (its marker in `ops/`). Returns the instances removed.
pub(crate) fn recover(root: &Path, idx: &Index) -> io::Result<u64> {
    let dir = crate::edit::ops_dir(root);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(study) = name
            .strip_prefix("anonymize-")
            .and_then(|n| n.strip_suffix(MARKER_SUFFIX))
        else {
            continue;
        };
        let n = remove_study(root, idx, study)?;
        tracing::warn!(
            study,
            instances = n,
            "removed the partial copy of an anonymization interrupted by a crash"
        );
        removed += n;
        remove_marker(&e.path())?;
    }
    Ok(removed)
}
