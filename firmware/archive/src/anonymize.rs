//! Anonymizing a whole study (PS3.15 Annex E, `pacsbox-deid` does each file): every stored
//! instance read, de-identified with one UID map for the study (references between its
//! instances still resolve), and either handed to the caller (a ZIP) or stored as a new study
//! through [`Archive::begin_store`] — the same validation, durable commit and duplicate handling
//! as a C-STORE. The original study is only read.

use std::io::Read;

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
    /// The new Study Instance UID (empty when no instance was written).
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
        opts.validate().map_err(AnonymizeError::Options)?;
        let instances = self.study_instances(study_uid)?;
        if instances.is_empty() {
            return Err(AnonymizeError::NoStudy);
        }
        let mut uids = UidMap::random().map_err(AnonymizeError::Deid)?;
        let mut report = AnonymizeReport {
            source_study: study_uid.to_owned(),
            instances: instances.len() as u64,
            ..AnonymizeReport::default()
        };
        let mut bytes = Vec::new();
        for (sop, rec) in &instances {
            bytes.clear();
            let read = self
                .open_part10(rec)
                .and_then(|mut r| r.read_to_end(&mut bytes));
            if let Err(e) = read {
                tracing::warn!(sop, error = %e, "anonymize: instance not readable");
                report.failed.push((sop.clone(), e.to_string()));
                continue;
            }
            let a = match pacsbox_deid::anonymize(&bytes, opts, &mut uids, IMPLEMENTATION) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(sop, error = %e, "anonymize: instance not anonymized");
                    report.failed.push((sop.clone(), e.to_string()));
                    continue;
                }
            };
            match a.burned_in {
                BurnedIn::Yes => report.burned_in.push(sop.clone()),
                BurnedIn::Possible => report.possibly_burned_in += 1,
                BurnedIn::No => {}
            }
            each(rec, &a).map_err(|e| AnonymizeError::Output(format!("{sop}: {e}")))?;
            if report.new_study.is_empty() {
                report.new_study = a.study_uid.clone();
            }
            report.written += 1;
        }
        Ok(report)
    }

    /// Anonymizes `study_uid` into a new study of this archive, each instance stored as a
    /// C-STORE's is.
    pub fn anonymize_into_archive(
        &self,
        study_uid: &str,
        opts: &Options,
    ) -> Result<AnonymizeReport, AnonymizeError> {
        let mut stored = 0u64;
        let mut report = self.anonymize_study(study_uid, opts, |_, a| {
            let req = StoreRequest {
                sop_class_uid: a.sop_class_uid.clone(),
                sop_instance_uid: a.sop_instance_uid.clone(),
                transfer_syntax: a.transfer_syntax.clone(),
                source_ae: ANONYMIZE_AE.to_owned(),
            };
            let outcome = self
                .begin_store(req)?
                .receive(&a.part10[a.dataset_offset..])?;
            if outcome == StoreOutcome::Stored {
                stored += 1;
            }
            Ok::<(), StoreError>(())
        })?;
        report.stored = stored;
        Ok(report)
    }
}
