//! Anonymizing a whole study (PS3.15 Annex E, `pacsbox-deid` does each file): every stored
//! instance read, de-identified with one UID map for the study (references between its
//! instances still resolve), and either handed to the caller (a ZIP) or stored as a new study
//! through [`Archive::begin_store`] — the same validation, durable commit and duplicate handling
//! as a C-STORE. The original study is only read.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use pacsbox_deid::{Anonymized, BurnedIn, DeidError, Implementation, Options, UidMap};

use crate::query::{Attr, Level, Matcher, Query, QueryError};
use crate::{Archive, InstanceRecord, StoreError, StoreOutcome, StoreRequest, part10};

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

/// A run's instances, UID map and report so far.
type Run = (Vec<(String, InstanceRecord)>, UidMap, AnonymizeReport);

/// Instances stored at once by `anonymize_into_archive` (C-STORE's commit batches them): 8
/// took a 500-instance CT from 1.6× to 1.7–2.9× Orthanc's rate where 4 did (bench/README.md).
const STORE_THREADS: usize = 8;

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

    /// Anonymizes `study_uid` into a new study of this archive, each instance stored as a
    /// C-STORE's is. Several instances are in flight at once, so that one commit batch (one
    /// sync) covers several of them, as it does for parallel associations.
    pub fn anonymize_into_archive(
        &self,
        study_uid: &str,
        opts: &Options,
    ) -> Result<AnonymizeReport, AnonymizeError> {
        let (instances, uids, report) = self.start_run(study_uid, opts)?;
        let next = AtomicUsize::new(0);
        let budget = Budget {
            used: Mutex::new(0),
            freed: Condvar::new(),
        };
        let shared = Mutex::new((report, None::<AnonymizeError>));
        let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
        std::thread::scope(|scope| {
            for _ in 0..STORE_THREADS.min(instances.len()) {
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
                        let stored = self
                            .anonymize_one(sop, rec, opts, &uids, &mut buf, &mut mine)
                            .map(|a| self.store_anonymized(&a));
                        if buf.capacity() > 64 << 20 {
                            // A large one's buffer is not kept for the small ones after it.
                            buf = Vec::new();
                        }
                        budget.give(cost);
                        let Some(stored) = stored else { continue };
                        match stored {
                            Ok(stored) => {
                                mine.written += 1;
                                mine.stored += u64::from(stored);
                            }
                            // This data set refused (as a C-STORE of it would be): left out.
                            Err(
                                e @ (StoreError::CannotUnderstand(_) | StoreError::Mismatch(_)),
                            ) => {
                                tracing::warn!(sop, error = %e, "anonymize: copy not stored");
                                mine.failed.push((sop.clone(), e.to_string()));
                            }
                            // The archive cannot store (disk full, shutting down, …): stop.
                            Err(e) => {
                                lock().1 = Some(AnonymizeError::Output(format!("{sop}: {e}")));
                                break;
                            }
                        }
                    }
                    let mut all = lock();
                    all.0.merge(mine);
                });
            }
        });
        let (mut report, error) = shared.into_inner().unwrap_or_else(|p| p.into_inner());
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

    /// Stores one anonymized instance through the ingest path; true when it was new.
    fn store_anonymized(&self, a: &Anonymized) -> Result<bool, StoreError> {
        let req = StoreRequest {
            sop_class_uid: a.sop_class_uid.clone(),
            sop_instance_uid: a.sop_instance_uid.clone(),
            transfer_syntax: a.transfer_syntax.clone(),
            source_ae: ANONYMIZE_AE.to_owned(),
        };
        let outcome = self
            .begin_store(req)?
            .receive(&a.part10[a.dataset_offset..])?;
        Ok(outcome == StoreOutcome::Stored)
    }
}

impl AnonymizeReport {
    fn merge(&mut self, other: AnonymizeReport) {
        self.written += other.written;
        self.stored += other.stored;
        self.burned_in.extend(other.burned_in);
        self.possibly_burned_in += other.possibly_burned_in;
        self.failed.extend(other.failed);
    }
}
