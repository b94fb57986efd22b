//! What the DICOM services write to the audit trail: every association (accepted, or refused
//! and why), the stores of an association (one record per study, written when it ends, so the
//! acknowledgement path only appends a SOP UID to a list), every C-FIND with its keys, and
//! every C-MOVE / C-GET per study with its destination and counts.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pacsbox_archive::{Archive, InstanceRecord};
use pacsbox_audit::{Audit, Event};

/// What one association stored, for its audit records at the end.
#[derive(Default)]
pub struct AssociationLog {
    stored: Mutex<Vec<String>>,
    failed: AtomicU64,
}

impl AssociationLog {
    pub fn stored(&self, sop: &str) {
        if let Ok(mut v) = self.stored.lock() {
            v.push(sop.to_owned());
        }
    }
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn association(audit: &Audit, calling: &str, client: &str, outcome: &str, detail: String) {
    audit.record(
        Event::new("dicom.association", calling, client)
            .outcome(outcome)
            .detail(detail),
    );
}

/// One `dicom.store` record per study the association stored into (the patient read back from
/// the index), and one for the stores that failed. Runs after the association, off the
/// acknowledgement path.
pub async fn stores(
    audit: &Audit,
    archive: &Archive,
    calling: &str,
    client: &str,
    log: AssociationLog,
) {
    let sops = log.stored.into_inner().unwrap_or_default();
    let failed = log.failed.into_inner();
    if sops.is_empty() && failed == 0 {
        return;
    }
    let (audit, archive) = (audit.clone(), archive.clone());
    let (calling, client) = (calling.to_owned(), client.to_owned());
    let grouped = tokio::task::spawn_blocking(move || {
        let mut studies: BTreeMap<String, (String, u64)> = BTreeMap::new();
        for sop in &sops {
            if let Ok(Some(rec)) = archive.index().instance(sop) {
                let e = studies
                    .entry(rec.study_uid.clone())
                    .or_insert_with(|| (patient_of(&archive, &rec), 0));
                e.1 += 1;
            }
        }
        for (study, (patient, n)) in studies {
            audit.record(
                Event::new("dicom.store", &calling, &client)
                    .study(study)
                    .patient(patient)
                    .detail(format!("{n} instance(s)")),
            );
        }
        if failed > 0 {
            audit.record(
                Event::new("dicom.store", &calling, &client)
                    .outcome("failed")
                    .detail(format!("{failed} instance(s) refused")),
            );
        }
    })
    .await;
    if let Err(e) = grouped {
        tracing::error!(error = %e, "auditing an association's stores");
    }
}

fn patient_of(archive: &Archive, rec: &InstanceRecord) -> String {
    match archive.index().study(&rec.study_uid) {
        Ok(Some(s)) => format!("{} ({})", s.patient_id, s.patient_name),
        _ => rec.patient_name.clone(),
    }
}

pub fn find(audit: &Audit, calling: &str, client: &str, keys: String, matches: u64, outcome: &str) {
    audit.record(
        Event::new("dicom.find", calling, client)
            .outcome(outcome)
            .detail(format!("{keys} -> {matches} match(es)")),
    );
}

/// One record per study of a C-MOVE / C-GET's instances.
pub fn retrieve(
    audit: &Audit,
    action: &str,
    calling: &str,
    client: &str,
    set: &[(String, InstanceRecord)],
    detail: &str,
    outcome: &str,
) {
    let mut studies: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    for (_, rec) in set {
        studies
            .entry(rec.study_uid.as_str())
            .or_insert((rec.patient_name.as_str(), 0))
            .1 += 1;
    }
    for (study, (patient, n)) in studies {
        audit.record(
            Event::new(action, calling, client)
                .study(study)
                .patient(patient)
                .outcome(outcome)
                .detail(format!("{n} instance(s) {detail}")),
        );
    }
}
