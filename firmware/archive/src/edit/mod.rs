//! Correcting what was sent wrong: edit patient or study attributes, move a study to another
//! patient, merge two patients, delete (to a trash), undo — each operation atomic across every
//! instance it touches, and recorded in an operations history.
//!
//! An operation runs in four steps, so that `kill -9` at any point leaves it wholly done or
//! wholly not done:
//! 1. **plan and stage**: the instances concerned are read from the index; each one that
//!    changes gets a new Part-10 file written to `DATA/ops/<id>/` ([`rewrite::rewrite_part10`]:
//!    only the changed attributes, every other byte verbatim, same transfer syntax and
//!    compression), and these files are made durable;
//! 2. **commit point**: one record of the whole operation (every instance's index entry before
//!    and after, file hashes) is written to `DATA/ops/<id>.op` and synced;
//! 3. **apply**: each replaced file is hard-linked into `DATA/trash/<id>/` (its exact bytes,
//!    kept for undo), then the new file is renamed over it — a reader has the old file or the
//!    new one, never neither —, and one durable redb transaction updates the index and the
//!    history;
//! 4. the record and the staging folder are removed.
//!
//! Start-up recovery ([`recover`]) finishes an operation whose record is intact and whose new
//! files are all there (or already moved in); it drops one whose staging never completed. Every
//! step of apply is idempotent, so it is simply run again.
//!
//! UIDs are kept: a demographic correction, a study edit, a move and a merge change patient or
//! study attributes but not SOP, Series or Study Instance UIDs, as IHE IOCM's "patient
//! information reconciliation" does, so that reports and prior links stay valid.
//!
//! Concurrency: one operation at a time (a mutex); a committer checkpoint first, so no ingest
//! journal record names a file an operation replaces; the set of instances and their file
//! hashes is checked again under the archive's swap lock (which the committer and the
//! compactor hold while they rename) just before the commit point, and the operation is
//! refused as "changed meanwhile" when a store, an overwrite or another edit came between.
//! Apply holds that lock, so a C-STORE into the study lands wholly before or after.

pub mod rewrite;
pub mod vr;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::index::{self, Index, IndexEntry};
use crate::part10::HashingWriter;
use crate::record::InstanceAttrs;
use crate::scan::{Tag, tags};
use crate::{Shared, SyncMode, commit, ingest, layout};
use rewrite::{Change, Replacement};
use vr::Vr;

/// The operations history: id -> [`Operation`] (postcard), with every instance's entries.
pub(crate) const OPERATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("operations");
/// The same without the instance changes: what lists read (a 2 000-instance operation is
/// megabytes with them, a few hundred bytes without).
pub(crate) const OPERATION_LIST: TableDefinition<u64, &[u8]> =
    TableDefinition::new("operation_list");

/// Writes an operation to both history tables.
fn put_op(txn: &redb::WriteTransaction, op: &Operation) -> Result<(), EditError> {
    txn.open_table(OPERATIONS)?
        .insert(op.id, enc_op(op)?.as_slice())?;
    let light = Operation {
        changes: Vec::new(),
        ..op.clone()
    };
    txn.open_table(OPERATION_LIST)?
        .insert(op.id, enc_op(&light)?.as_slice())?;
    Ok(())
}

/// Reads one operation, with its changes, inside a write transaction.
fn get_in(txn: &redb::WriteTransaction, id: u64) -> Result<Option<Operation>, EditError> {
    let t = txn.open_table(OPERATIONS)?;
    let v = t.get(id)?.map(|v| v.value().to_vec());
    Ok(match v {
        Some(v) => Some(index::dec(&v)?),
        None => None,
    })
}

pub const ISSUER_OF_PATIENT_ID: Tag = (0x0010, 0x0021);

pub fn ops_dir(root: &Path) -> PathBuf {
    root.join("ops")
}
pub fn trash_dir(root: &Path) -> PathBuf {
    root.join("trash")
}
fn op_record_path(root: &Path, id: u64) -> PathBuf {
    ops_dir(root).join(format!("{id}.op"))
}
fn staging_dir(root: &Path, id: u64) -> PathBuf {
    ops_dir(root).join(id.to_string())
}
/// Where the previous version of `rel` goes when operation `id` replaces or deletes it.
pub fn trash_path(root: &Path, id: u64, rel: &str) -> PathBuf {
    trash_dir(root).join(id.to_string()).join(rel)
}

/// Patient attributes to set (None: leave as is; empty: clear).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientFields {
    pub name: Option<String>,
    pub id: Option<String>,
    pub issuer: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// Study attributes to set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyFields {
    pub accession: Option<String>,
    pub description: Option<String>,
    pub referring_physician: Option<String>,
    pub date: Option<String>,
    pub time: Option<String>,
    pub study_id: Option<String>,
}

/// What a delete takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Instance(String),
    Series(String),
    Study(String),
    Patient(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Instance(u) => write!(f, "instance {u}"),
            Target::Series(u) => write!(f, "series {u}"),
            Target::Study(u) => write!(f, "study {u}"),
            Target::Patient(k) => write!(f, "patient {k}"),
        }
    }
}

/// One operation asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Every instance of the patient (by patient ID, the index's patient key).
    EditPatient {
        patient: String,
        fields: PatientFields,
    },
    EditStudy {
        study: String,
        fields: StudyFields,
    },
    /// The study's instances take the other patient's ID, name, birth date, sex and issuer.
    MoveStudy {
        study: String,
        to_patient: String,
    },
    /// Every study of `from` moves to `into`.
    Merge {
        from: String,
        into: String,
    },
    /// The series leaves its study for a new study (a new Study Instance UID, the other study
    /// attributes as they were), under `to_patient` when given: a series sent with the wrong
    /// study, or the wrong patient.
    SplitSeries {
        series: String,
        to_patient: Option<String>,
    },
    Delete(Target),
    /// Puts back what operation `id` changed (the exact previous bytes); a delete's undo is a
    /// restore.
    Undo(u64),
}

impl Request {
    pub fn kind(&self) -> &'static str {
        match self {
            Request::EditPatient { .. } => "edit-patient",
            Request::EditStudy { .. } => "edit-study",
            Request::MoveStudy { .. } => "move-study",
            Request::Merge { .. } => "merge",
            Request::SplitSeries { .. } => "split-series",
            Request::Delete(_) => "delete",
            Request::Undo(_) => "undo",
        }
    }
}

/// Who asks, from where (recorded in the history; the caller audits).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub address: String,
}

/// Where an instance's new file comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// Written by this operation into `ops/<id>/<name>`.
    Staged(String),
    /// The previous version kept by operation `op` (an undo).
    Trash { op: u64, rel: String },
}

/// One instance's change: its index entry before (None: it did not exist) and after (None:
/// deleted), and where the after file comes from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceChange {
    pub sop: String,
    pub before: Option<IndexEntry>,
    pub after: Option<(IndexEntry, Source)>,
}

/// One operation, as recorded (commit record and history).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Operation {
    pub id: u64,
    pub unix: i64,
    pub actor: Actor,
    pub request: Request,
    /// What it was done to, for people ("patient P1", "study 1.2.3").
    pub target: String,
    /// The attributes changed: (name, before, after); a delete lists what it took.
    pub values: Vec<(String, String, String)>,
    pub patients: Vec<String>,
    pub studies: Vec<String>,
    pub instances: u64,
    pub undone_by: Option<u64>,
    pub purged: bool,
    pub changes: Vec<InstanceChange>,
}

/// The history row without the per-instance changes.
#[derive(Clone, Debug, Serialize)]
pub struct OperationSummary {
    pub id: u64,
    pub unix: i64,
    pub user: String,
    pub address: String,
    pub kind: &'static str,
    pub target: String,
    pub values: Vec<(String, String, String)>,
    pub patients: Vec<String>,
    pub studies: Vec<String>,
    pub instances: u64,
    pub undone_by: Option<u64>,
    pub undoes: Option<u64>,
    pub purged: bool,
}

impl Operation {
    pub fn summary(&self) -> OperationSummary {
        OperationSummary {
            id: self.id,
            unix: self.unix,
            user: self.actor.user.clone(),
            address: self.actor.address.clone(),
            kind: self.request.kind(),
            target: self.target.clone(),
            values: self.values.clone(),
            patients: self.patients.clone(),
            studies: self.studies.clone(),
            instances: self.instances,
            undone_by: self.undone_by,
            undoes: match self.request {
                Request::Undo(id) => Some(id),
                _ => None,
            },
            purged: self.purged,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Invalid(#[from] vr::InvalidValue),
    #[error("nothing to change: {0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("changed meanwhile: {0}; reload and try again")]
    ChangedMeanwhile(String),
    #[error("rewriting {sop}: {source}")]
    Rewrite {
        sop: String,
        source: rewrite::RewriteError,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("index: {0}")]
    Index(#[from] crate::IndexError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> EditError {
    let what = what.into();
    move |source| EditError::Io { what, source }
}

impl From<redb::Error> for EditError {
    fn from(e: redb::Error) -> Self {
        EditError::Index(e.into())
    }
}

macro_rules! redb_into_edit {
    ($($t:ty),*) => {$(
        impl From<$t> for EditError {
            fn from(e: $t) -> Self { EditError::Index(redb::Error::from(e).into()) }
        }
    )*};
}
redb_into_edit!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A new UID under the `2.25` root (PS3.5 B.2: a UUID as one integer), from 128 random bits.
pub fn new_uid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_err() {
        // No urandom (a broken chroot): time, process and a counter, hashed, are unique enough
        // for one box.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = format!(
            "{:?}{}{}",
            std::time::SystemTime::now(),
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        b = xxhash_rust::xxh3::xxh3_128(seed.as_bytes()).to_le_bytes();
    }
    // RFC 4122 version 4, variant 1, as a UUID derived UID is.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// A patient's or study's instances and their files, hashed: what a web form saw, so that an
/// operation planned on it is refused when anything changed since ("changed meanwhile").
pub fn version_of(entries: &[(String, u64)]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (sop, hash) in entries {
        h.update(sop.as_bytes());
        h.update(&hash.to_le_bytes());
    }
    h.digest()
}

/// The (SOP, data set hash) of every instance of a patient or a study, sorted: unchanged by
/// compression, changed by any edit or overwrite.
fn instance_hashes(idx: &Index, scope: &Scope) -> Result<Vec<(String, u64)>, EditError> {
    let mut out: Vec<(String, u64)> = instances_in(idx, scope)?
        .into_iter()
        .map(|(sop, r)| (sop, r.dataset_hash))
        .collect();
    out.sort();
    Ok(out)
}

/// What an operation reads from the index.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    Patient(String),
    Study(String),
    Series(String),
    Instance(String),
    Sops(Vec<String>),
}

fn instances_in(
    idx: &Index,
    scope: &Scope,
) -> Result<Vec<(String, crate::InstanceRecord)>, EditError> {
    let txn = idx.db().begin_read()?;
    let inst = txn.open_table(index::INSTANCES)?;
    let ss = txn.open_multimap_table(index::STUDY_SERIES)?;
    let si = txn.open_multimap_table(index::SERIES_INSTANCES)?;
    let ps = txn.open_multimap_table(index::PATIENT_STUDIES)?;
    let mut sops = Vec::new();
    let series_of = |series: &str, sops: &mut Vec<String>| -> Result<(), EditError> {
        for s in si.get(series)? {
            sops.push(s?.value().to_owned());
        }
        Ok(())
    };
    let mut studies = Vec::new();
    match scope {
        Scope::Patient(p) => {
            for s in ps.get(p.as_str())? {
                studies.push(s?.value().to_owned());
            }
        }
        Scope::Study(s) => studies.push(s.clone()),
        Scope::Series(s) => series_of(s, &mut sops)?,
        Scope::Instance(s) => sops.push(s.clone()),
        Scope::Sops(v) => sops.extend(v.iter().cloned()),
    }
    for st in studies {
        for series in ss.get(st.as_str())? {
            series_of(series?.value(), &mut sops)?;
        }
    }
    let mut out = Vec::with_capacity(sops.len());
    for sop in sops {
        if let Some(v) = inst.get(sop.as_str())? {
            out.push((sop, index::dec(v.value())?));
        }
    }
    Ok(out)
}

/// The version a form should carry for a patient (by ID) or a study.
pub(crate) fn version(idx: &Index, target: &Target) -> Result<u64, EditError> {
    let scope = match target {
        Target::Patient(p) => Scope::Patient(p.clone()),
        Target::Study(s) => Scope::Study(s.clone()),
        Target::Series(s) => Scope::Series(s.clone()),
        Target::Instance(s) => Scope::Instance(s.clone()),
    };
    Ok(version_of(&instance_hashes(idx, &scope)?))
}

/// The attributes a request sets, checked against their VRs, as replacements.
fn replacements(req: &Request) -> Result<Vec<(&'static str, Replacement)>, EditError> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, tag: Tag, vr: Vr, v: &Option<String>| {
        if let Some(v) = v {
            let v = v.trim();
            vr::check(name, vr, v)?;
            out.push((
                name,
                Replacement {
                    tag,
                    vr: vr.code(),
                    change: Change::Text(v.to_owned()),
                },
            ));
        }
        Ok::<(), vr::InvalidValue>(())
    };
    match req {
        Request::EditPatient { fields: f, .. } => {
            add("PatientName", tags::PATIENT_NAME, Vr::Pn, &f.name)?;
            add("PatientID", tags::PATIENT_ID, Vr::Lo, &f.id)?;
            add("IssuerOfPatientID", ISSUER_OF_PATIENT_ID, Vr::Lo, &f.issuer)?;
            add(
                "PatientBirthDate",
                tags::PATIENT_BIRTH_DATE,
                Vr::Da,
                &f.birth_date,
            )?;
            add("PatientSex", tags::PATIENT_SEX, Vr::Cs, &f.sex)?;
            if f.id.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(vr::InvalidValue {
                    attribute: "PatientID".into(),
                    problem: "a patient needs an ID (the archive files patients by it)".into(),
                }
                .into());
            }
            if let Some(sex) = &f.sex
                && !matches!(sex.trim(), "" | "M" | "F" | "O")
            {
                return Err(vr::InvalidValue {
                    attribute: "PatientSex".into(),
                    problem: "M, F, O or empty".into(),
                }
                .into());
            }
        }
        Request::EditStudy { fields: f, .. } => {
            add("StudyDate", tags::STUDY_DATE, Vr::Da, &f.date)?;
            add("StudyTime", tags::STUDY_TIME, Vr::Tm, &f.time)?;
            add(
                "AccessionNumber",
                tags::ACCESSION_NUMBER,
                Vr::Sh,
                &f.accession,
            )?;
            add(
                "ReferringPhysicianName",
                tags::REFERRING_PHYSICIAN_NAME,
                Vr::Pn,
                &f.referring_physician,
            )?;
            add(
                "StudyDescription",
                tags::STUDY_DESCRIPTION,
                Vr::Lo,
                &f.description,
            )?;
            add("StudyID", tags::STUDY_ID, Vr::Sh, &f.study_id)?;
        }
        _ => {}
    }
    Ok(out)
}

/// Runs one operation to its end (see the module comment). The caller audits the result.
pub(crate) fn run(
    shared: &Shared,
    committer: &commit::Committer,
    req: Request,
    actor: Actor,
    expect_version: Option<u64>,
) -> Result<OperationSummary, EditError> {
    let _one_at_a_time = shared.edit_lock.lock().unwrap_or_else(|p| p.into_inner());
    // Compression when idle waits while an operation runs (it would swap the files planned).
    let _busy = shared.quiet.store_begins();
    committer
        .checkpoint_now()
        .map_err(io_err("checkpointing the ingest journal"))?;
    // An earlier operation whose apply failed (a disk error, not a crash) is finished first,
    // as a restart would: nothing is planned on half-applied data.
    recover(&shared.root, &shared.index, shared.config.sync)
        .map_err(io_err("finishing an earlier operation"))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_once(shared, req.clone(), actor.clone(), expect_version) {
            // A compression or a store that finished just before: plan again on what is there.
            Err(EditError::ChangedMeanwhile(_)) if attempt < 3 && expect_version.is_none() => {
                continue;
            }
            other => return other,
        }
    }
}

fn run_once(
    shared: &Shared,
    req: Request,
    actor: Actor,
    expect_version: Option<u64>,
) -> Result<OperationSummary, EditError> {
    let root = shared.root.as_path();
    let idx = &shared.index;
    let id = next_id(root, idx)?;
    let mut op = Operation {
        id,
        unix: ingest::unix_now(),
        actor,
        request: req,
        target: String::new(),
        values: Vec::new(),
        patients: Vec::new(),
        studies: Vec::new(),
        instances: 0,
        undone_by: None,
        purged: false,
        changes: Vec::new(),
    };
    let staged = staging_dir(root, id);
    let result = (|| {
        let (scope, planned) = plan(shared, &mut op, expect_version)?;
        // Make the staged files durable: they are the operation's new versions.
        if op
            .changes
            .iter()
            .any(|c| matches!(c.after, Some((_, Source::Staged(_)))))
        {
            sync_staged(shared, &staged)?;
        }
        let _swap = shared.swap_lock();
        if file_identities(idx, &scope)? != planned {
            return Err(EditError::ChangedMeanwhile(format!(
                "{} changed while the operation was prepared",
                op.target
            )));
        }
        write_record(root, &op)?;
        apply(root, idx, shared.config.sync, &op)
    })();
    if let Err(e) = result {
        // Before the commit point nothing in archive/ or the index changed: drop the staging.
        if !op_record_path(root, id).exists() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        return Err(e);
    }
    finish(root, id)?;
    if shared.compresses_when_idle() {
        for c in &op.changes {
            if let Some((e, _)) = &c.after
                && crate::compact::is_plain_native(&e.record.rel_path, &e.record.transfer_syntax)
            {
                shared.compact_queue.filed_plain(
                    shared.config.compress_after,
                    c.sop.clone(),
                    &e.record,
                );
            }
        }
    }
    Ok(op.summary())
}

/// Each instance's file as the index names it (SOP, path, hash), sorted: what the commit point
/// checks is still what was planned.
type Identities = Vec<(String, String, u64)>;

fn file_identities(idx: &Index, scope: &Scope) -> Result<Identities, EditError> {
    let mut out: Identities = instances_in(idx, scope)?
        .into_iter()
        .map(|(sop, r)| (sop, r.rel_path, r.file_hash))
        .collect();
    out.sort();
    Ok(out)
}

/// After the history's last and after any record left in `ops/` (an operation whose apply
/// failed without a crash is finished by the next start, under its own number).
fn next_id(root: &Path, idx: &Index) -> Result<u64, EditError> {
    let txn = idx.db().begin_read()?;
    let t = txn.open_table(OPERATIONS)?;
    let mut last = t.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    if let Ok(rd) = std::fs::read_dir(ops_dir(root)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(id) = name.trim_end_matches(".op").parse::<u64>() {
                last = last.max(id);
            }
        }
    }
    Ok(last + 1)
}

/// Fills `op` (changes, target, values) and stages new files; returns the scope whose
/// instance hashes must still be these at the commit point.
fn plan(
    shared: &Shared,
    op: &mut Operation,
    expect_version: Option<u64>,
) -> Result<(Scope, Identities), EditError> {
    let idx = &shared.index;
    let req = op.request.clone();
    let mut reps = replacements(&req)?;
    let read_only = matches!(req, Request::Delete(_));
    if !read_only
        && reps.is_empty()
        && !matches!(
            req,
            Request::MoveStudy { .. }
                | Request::Merge { .. }
                | Request::Undo(_)
                | Request::SplitSeries { .. }
        )
    {
        return Err(EditError::Refused(
            "no attribute to change was given".into(),
        ));
    }
    let scope = match &req {
        Request::EditPatient { patient, .. } => Scope::Patient(patient.clone()),
        Request::EditStudy { study, .. } | Request::MoveStudy { study, .. } => {
            Scope::Study(study.clone())
        }
        Request::Merge { from, .. } => Scope::Patient(from.clone()),
        Request::SplitSeries { series, .. } => Scope::Series(series.clone()),
        Request::Delete(t) => match t {
            Target::Instance(s) => Scope::Instance(s.clone()),
            Target::Series(s) => Scope::Series(s.clone()),
            Target::Study(s) => Scope::Study(s.clone()),
            Target::Patient(p) => Scope::Patient(p.clone()),
        },
        Request::Undo(of) => return plan_undo(shared, op, *of),
    };
    op.target = match &req {
        Request::EditPatient { patient, .. } => format!("patient {patient}"),
        Request::EditStudy { study, .. } => format!("study {study}"),
        Request::MoveStudy { study, to_patient } => {
            format!("study {study} to patient {to_patient}")
        }
        Request::Merge { from, into } => format!("patient {from} into patient {into}"),
        Request::SplitSeries { series, to_patient } => match to_patient {
            Some(p) => format!("series {series} to a new study of patient {p}"),
            None => format!("series {series} to a new study"),
        },
        Request::Delete(t) => t.to_string(),
        Request::Undo(_) => String::new(),
    };
    let hashes = instance_hashes(idx, &scope)?;
    let identities = file_identities(idx, &scope)?;
    if hashes.is_empty() {
        return Err(EditError::NotFound(op.target.clone()));
    }
    if let Some(v) = expect_version
        && v != version_of(&hashes)
    {
        return Err(EditError::ChangedMeanwhile(format!(
            "{} is not what the form showed",
            op.target
        )));
    }
    // A move or merge takes the other patient's demographics from one of its files.
    if let Request::MoveStudy { to_patient, .. }
    | Request::Merge {
        into: to_patient, ..
    } = &req
    {
        if let Request::Merge { from, .. } = &req
            && from == to_patient
        {
            return Err(EditError::Refused(
                "a patient cannot be merged into itself".into(),
            ));
        }
        let current = match &scope {
            Scope::Study(s) => idx.study(s)?.map(|st| st.patient_key),
            _ => None,
        };
        if current.as_deref() == Some(to_patient.as_str()) {
            return Err(EditError::Refused(format!(
                "the study is already under patient {to_patient}"
            )));
        }
        reps = demographics_of(shared, to_patient)?;
    }
    if let Request::SplitSeries { series, to_patient } = &req {
        let study = instances_in(idx, &scope)?
            .first()
            .map(|(_, r)| r.study_uid.clone())
            .unwrap_or_default();
        let st = idx
            .study(&study)?
            .ok_or_else(|| EditError::NotFound(format!("the study of series {series}")))?;
        if to_patient.is_none() && st.series <= 1 {
            return Err(EditError::Refused(format!(
                "series {series} is the only series of its study: nothing to split"
            )));
        }
        if let Some(p) = to_patient {
            reps = demographics_of(shared, p)?;
        }
        // Consistent within the operation: every instance of the series gets this one.
        reps.push((
            "StudyInstanceUID",
            Replacement {
                tag: tags::STUDY_INSTANCE_UID,
                vr: *b"UI",
                change: Change::Text(new_uid()),
            },
        ));
    }
    let entries = instances_in(idx, &scope)?;
    op.instances = entries.len() as u64;
    let staged = staging_dir(&shared.root, op.id);
    if !read_only {
        std::fs::create_dir_all(&staged)
            .map_err(io_err(format!("creating {}", staged.display())))?;
    }
    let only: Vec<Replacement> = reps.iter().map(|(_, r)| r.clone()).collect();
    let mut olds: std::collections::BTreeMap<&'static str, String> = Default::default();
    let staged_all = stage_all(shared, &staged, &entries, &only, read_only)?;
    for ((sop, rec), rw) in entries.into_iter().zip(staged_all) {
        if !op.studies.contains(&rec.study_uid) {
            op.studies.push(rec.study_uid.clone());
        }
        let before_attrs = InstanceAttrs::from_header(&rw.0.old_header)
            .map_err(|e| EditError::Refused(format!("instance {sop} cannot be read back: {e}")))?;
        if !op.patients.contains(&before_attrs.patient_id) {
            op.patients.push(before_attrs.patient_id.clone());
        }
        for (name, r) in &reps {
            let old =
                rw.0.old
                    .get(&r.tag)
                    .map(|v| decode(&rw.0.old_header, r.tag, v))
                    .unwrap_or_default();
            olds.entry(name).or_insert(old);
        }
        let before = IndexEntry {
            attrs: before_attrs,
            record: rec.clone(),
        };
        let after = match rw.1 {
            None => None,
            Some((name, size, file_hash)) => {
                let attrs = InstanceAttrs::from_header(&rw.0.header).map_err(|e| {
                    EditError::Refused(format!("the new version of {sop} would not index: {e}"))
                })?;
                let mut record = rec.clone();
                if attrs.study_uid.as_str() != rec.study_uid {
                    // A split: the file moves to the new study's folder.
                    record.study_uid = attrs.study_uid.to_string();
                    record.rel_path = layout::instance_rel_path(
                        &attrs.study_uid,
                        &attrs.series_uid,
                        &attrs.sop_instance_uid,
                        rec.rel_path.ends_with(".zst"),
                    );
                }
                record.patient_name = attrs.patient_name.clone();
                record.file_size = size;
                record.file_hash = file_hash;
                record.dataset_hash = rw.0.dataset_hash;
                Some((IndexEntry { attrs, record }, Source::Staged(name)))
            }
        };
        if let Some((a, _)) = &after
            && !op.patients.contains(&a.attrs.patient_id)
        {
            op.patients.push(a.attrs.patient_id.clone());
        }
        op.changes.push(InstanceChange {
            sop,
            before: Some(before),
            after,
        });
    }
    for (name, r) in &reps {
        let new = match &r.change {
            Change::Text(t) => t.clone(),
            _ => String::new(),
        };
        let old = olds.remove(name).unwrap_or_default();
        if old != new {
            op.values.push((name.to_string(), old, new));
        }
    }
    if let Request::Delete(_) = req {
        let first = op.changes.first().and_then(|c| c.before.as_ref());
        if let Some(b) = first {
            op.values.push((
                "PatientName".into(),
                b.attrs.patient_name.clone(),
                String::new(),
            ));
            op.values.push((
                "PatientID".into(),
                b.attrs.patient_id.clone(),
                String::new(),
            ));
        }
    }
    // Planned on these files: the commit point checks they are still the ones indexed.
    let planned: Identities = op
        .changes
        .iter()
        .filter_map(|c| c.before.as_ref())
        .map(|b| {
            (
                b.attrs.sop_instance_uid.to_string(),
                b.record.rel_path.clone(),
                b.record.file_hash,
            )
        })
        .collect();
    let mut planned = planned;
    planned.sort();
    if planned != identities {
        return Err(EditError::ChangedMeanwhile(format!(
            "{} changed while it was read",
            op.target
        )));
    }
    Ok((scope, planned))
}

/// An attribute's previous value as text, decoded with the file's character set.
fn decode(header: &crate::scan::RawHeader, _tag: Tag, raw: &[u8]) -> String {
    let cs = header
        .get(&tags::SPECIFIC_CHARACTER_SET)
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .unwrap_or_default();
    pacsbox_charset::SpecificCharacterSet::from_value(&cs)
        .decode(raw, pacsbox_charset::TextVr::PersonName)
        .trim_end_matches(['\0', ' '])
        .to_owned()
}

/// Patient `key`'s Issuer of Patient ID (not indexed: read from one of its files).
pub(crate) fn issuer_of(shared: &Shared, key: &str) -> Result<String, EditError> {
    Ok(demographics_of(shared, key)?
        .into_iter()
        .find(|(name, _)| *name == "IssuerOfPatientID")
        .and_then(|(_, r)| match r.change {
            Change::Text(t) => Some(t),
            _ => None,
        })
        .unwrap_or_default())
}

/// The demographics of patient `key`, read from one of its files, as replacements.
fn demographics_of(
    shared: &Shared,
    key: &str,
) -> Result<Vec<(&'static str, Replacement)>, EditError> {
    let entries = instances_in(&shared.index, &Scope::Patient(key.to_owned()))?;
    let Some((sop, rec)) = entries.into_iter().next() else {
        return Err(EditError::NotFound(format!("patient {key}")));
    };
    let wanted = [
        ("PatientName", tags::PATIENT_NAME, *b"PN"),
        ("PatientID", tags::PATIENT_ID, *b"LO"),
        ("IssuerOfPatientID", ISSUER_OF_PATIENT_ID, *b"LO"),
        ("PatientBirthDate", tags::PATIENT_BIRTH_DATE, *b"DA"),
        ("PatientSex", tags::PATIENT_SEX, *b"CS"),
    ];
    // A rewrite that removes nothing and writes nowhere reads the old values.
    let probe: Vec<Replacement> = wanted
        .iter()
        .map(|(_, tag, vr)| Replacement {
            tag: *tag,
            vr: *vr,
            change: Change::Remove,
        })
        .collect();
    let reader = crate::open_file(&shared.root, &rec)
        .map_err(io_err(format!("reading {}", rec.rel_path)))?
        .1;
    let rw = rewrite::rewrite_part10(reader, io::sink(), &probe)
        .map_err(|source| EditError::Rewrite { sop, source })?;
    Ok(wanted
        .iter()
        .map(|(name, tag, vr)| {
            let text = rw
                .old
                .get(tag)
                .map(|v| decode(&rw.old_header, *tag, v))
                .unwrap_or_default();
            (
                *name,
                Replacement {
                    tag: *tag,
                    vr: *vr,
                    change: Change::Text(text),
                },
            )
        })
        .collect())
}

type Staged = (rewrite::Rewritten, Option<(String, u64, u64)>);

/// [`stage_one`] for every instance, on a few threads: each file's read, rewrite and sync are
/// independent, and a disk serves several syncs in flight faster than one after another.
fn stage_all(
    shared: &Shared,
    staged: &Path,
    entries: &[(String, crate::InstanceRecord)],
    reps: &[Replacement],
    read_only: bool,
) -> Result<Vec<Staged>, EditError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(entries.len().max(1));
    let chunk = entries.len().div_ceil(workers).max(1);
    let results: Vec<Result<Vec<Staged>, EditError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(sop, rec)| stage_one(shared, staged, sop, rec, reps, read_only))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EditError::Refused("a staging thread panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(entries.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Writes the new version of one instance into the staging folder (or, with `read_only`, only
/// reads it for its index attributes: a delete). Returns the rewrite's findings and the staged
/// file's name, size and hash.
fn stage_one(
    shared: &Shared,
    staged: &Path,
    sop: &str,
    rec: &crate::InstanceRecord,
    reps: &[Replacement],
    read_only: bool,
) -> Result<Staged, EditError> {
    let (path, reader) =
        crate::open_file(&shared.root, rec).map_err(io_err(format!("reading {}", rec.rel_path)))?;
    let rw_err = |source| EditError::Rewrite {
        sop: sop.to_owned(),
        source,
    };
    if read_only {
        let rw = rewrite::rewrite_part10(reader, io::sink(), &[]).map_err(rw_err)?;
        return Ok((rw, None));
    }
    let zst = path.extension().is_some_and(|e| e == "zst");
    if zst != rec.rel_path.ends_with(".zst") {
        return Err(EditError::ChangedMeanwhile(format!(
            "{sop} was being compressed"
        )));
    }
    let name = format!("{sop}.{}", layout::extension(zst));
    let out_path = staged.join(&name);
    let file =
        File::create(&out_path).map_err(io_err(format!("creating {}", out_path.display())))?;
    let mut hw = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, file));
    let rw = if zst {
        let level = shared.config.zstd_level.max(1);
        let mut enc =
            zstd::stream::write::Encoder::new(&mut hw, level).map_err(io_err("starting zstd"))?;
        enc.include_checksum(true)
            .map_err(io_err("setting zstd checksum"))?;
        let rw = rewrite::rewrite_part10(reader, &mut enc, reps).map_err(rw_err)?;
        enc.finish().map_err(io_err("finishing zstd"))?;
        rw
    } else {
        rewrite::rewrite_part10(reader, &mut hw, reps).map_err(rw_err)?
    };
    hw.flush()
        .map_err(io_err(format!("writing {}", out_path.display())))?;
    let (size, hash) = (hw.written, hw.hasher.digest());
    let file = hw
        .inner
        .into_inner()
        .map_err(|e| io_err(format!("writing {}", out_path.display()))(e.into_error()))?;
    if shared.config.sync != SyncMode::Syncfs {
        file.sync_data()
            .map_err(io_err(format!("syncing {}", out_path.display())))?;
    }
    Ok((rw, Some((name, size, hash))))
}

fn sync_staged(shared: &Shared, staged: &Path) -> Result<(), EditError> {
    let r = if shared.config.sync == SyncMode::Syncfs {
        File::open(&shared.root).and_then(|v| commit::sync_volume(&v))
    } else {
        File::open(staged).and_then(|d| d.sync_all())
    };
    r.map_err(io_err(format!("syncing {}", staged.display())))
}

/// An undo: the changes of operation `of` reversed, the previous versions from its trash.
fn plan_undo(
    shared: &Shared,
    op: &mut Operation,
    of: u64,
) -> Result<(Scope, Identities), EditError> {
    let idx = &shared.index;
    let orig = get(idx, of)?.ok_or_else(|| EditError::NotFound(format!("operation {of}")))?;
    if let Some(by) = orig.undone_by {
        return Err(EditError::Refused(format!(
            "operation {of} was already undone by operation {by}"
        )));
    }
    if orig.purged {
        return Err(EditError::Refused(format!(
            "operation {of}'s previous versions were purged from the trash"
        )));
    }
    let sops: std::collections::HashSet<&str> =
        orig.changes.iter().map(|c| c.sop.as_str()).collect();
    for later in list(idx, usize::MAX)?
        .into_iter()
        // An undo of an operation after `of` cancels that one: together they changed nothing.
        .filter(|l| l.id > of && l.undone_by.is_none() && l.undoes.is_none_or(|u| u < of))
    {
        if let Some(full) = get(idx, later.id)?
            && full.changes.iter().any(|c| sops.contains(c.sop.as_str()))
        {
            return Err(EditError::Refused(format!(
                "operation {} changed the same instances later; undo it first",
                later.id
            )));
        }
    }
    op.target = format!("operation {of} ({} {})", orig.request.kind(), orig.target);
    op.values = orig
        .values
        .iter()
        .map(|(n, b, a)| (n.clone(), a.clone(), b.clone()))
        .collect();
    op.patients = orig.patients.clone();
    op.studies = orig.studies.clone();
    op.instances = orig.instances;
    let mut expected = Vec::new();
    for c in &orig.changes {
        let after = c.before.as_ref().map(|b| {
            (
                b.clone(),
                Source::Trash {
                    op: of,
                    rel: b.record.rel_path.clone(),
                },
            )
        });
        if let Some((b, Source::Trash { op: t, rel })) = &after
            && !trash_path(&shared.root, *t, rel).is_file()
        {
            return Err(EditError::Refused(format!(
                "the previous version of {} is no longer in the trash",
                b.record.rel_path
            )));
        }
        let before = c.after.as_ref().map(|(a, _)| a.clone());
        if let Some(b) = &before {
            expected.push((c.sop.clone(), b.record.rel_path.clone(), b.record.file_hash));
        }
        op.changes.push(InstanceChange {
            sop: c.sop.clone(),
            before,
            after,
        });
    }
    expected.sort();
    // What the original left must still be there, file for file.
    let sops: Vec<String> = orig.changes.iter().map(|c| c.sop.clone()).collect();
    let scope = Scope::Sops(sops);
    let now = file_identities(idx, &scope)?;
    if now != expected {
        return Err(EditError::ChangedMeanwhile(format!(
            "instances of operation {of} were changed since"
        )));
    }
    Ok((scope, expected))
}

/// Frames the operation like a journal record (length, xxh3, postcard) and syncs it: the
/// commit point.
fn write_record(root: &Path, op: &Operation) -> Result<(), EditError> {
    let payload = postcard::to_allocvec(op).map_err(|e| EditError::Io {
        what: "encoding the operation record".into(),
        source: io::Error::other(e),
    })?;
    let mut bytes = Vec::with_capacity(payload.len() + 12);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let path = op_record_path(root, op.id);
    let dir = ops_dir(root);
    (|| {
        std::fs::create_dir_all(&dir)?;
        let mut f = File::create(&path)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        File::open(&dir)?.sync_all()
    })()
    .map_err(io_err(format!("writing {}", path.display())))
}

fn read_record(path: &Path) -> io::Result<Option<Operation>> {
    let bytes = std::fs::read(path)?;
    let Some(head) = bytes.get(..16) else {
        return Ok(None);
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[..8]);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&head[8..16]);
    let Some(payload) = usize::try_from(u64::from_le_bytes(len))
        .ok()
        .and_then(|l| bytes.get(16..16usize.saturating_add(l)))
    else {
        return Ok(None);
    };
    if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(sum) {
        return Ok(None);
    }
    Ok(postcard::from_bytes(payload).ok())
}

fn source_path(root: &Path, id: u64, s: &Source) -> PathBuf {
    match s {
        Source::Staged(name) => staging_dir(root, id).join(name),
        Source::Trash { op, rel } => trash_path(root, *op, rel),
    }
}

/// Makes a committed operation's changes in archive/ and the index. Every step is idempotent:
/// recovery runs it again after a crash anywhere in it.
fn apply(root: &Path, idx: &Index, sync: SyncMode, op: &Operation) -> Result<(), EditError> {
    let mut dirs = std::collections::BTreeSet::new();
    // 1. previous versions into the trash, by hard link: the archive's name stays valid.
    for c in &op.changes {
        let Some(b) = &c.before else { continue };
        let kept = trash_path(root, op.id, &b.record.rel_path);
        if kept.exists() {
            continue;
        }
        let current = root.join(&b.record.rel_path);
        let pending = c
            .after
            .as_ref()
            .is_none_or(|(_, s)| source_path(root, op.id, s).exists());
        if !pending || !current.exists() {
            // Already replaced (a redo after the renames) or gone: nothing to keep.
            continue;
        }
        if let Some(d) = kept.parent() {
            std::fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
            dirs.insert(d.to_path_buf());
        }
        std::fs::hard_link(&current, &kept).map_err(io_err(format!(
            "keeping {} in the trash",
            current.display()
        )))?;
    }
    sync_dirs(root, sync, &dirs)?;
    dirs.clear();
    // 2. new versions in, removed ones out.
    for c in &op.changes {
        if let Some((a, s)) = &c.after {
            let from = source_path(root, op.id, s);
            let to = root.join(&a.record.rel_path);
            if from.exists() {
                commit::rename_into_place(&from, &to)
                    .map_err(io_err(format!("moving {} into place", to.display())))?;
            }
            if let Some(d) = to.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        if let Some(b) = &c.before {
            let same = c
                .after
                .as_ref()
                .is_some_and(|(a, _)| a.record.rel_path == b.record.rel_path);
            let path = root.join(&b.record.rel_path);
            if !same && trash_path(root, op.id, &b.record.rel_path).exists() {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(format!("removing {}", path.display()))(e)),
                }
                if let Some(d) = path.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
        }
    }
    sync_dirs(root, sync, &dirs)?;
    // 3. the index and the history, in one durable transaction.
    let txn = idx.begin_write()?;
    let mut names = Vec::new();
    for c in &op.changes {
        if c.before.is_some()
            && let Some(rec) = index::remove_one(&txn, &c.sop)?
        {
            let owner = match txn
                .open_table(index::STUDIES)?
                .get(rec.study_uid.as_str())?
            {
                Some(v) => Some(index::dec::<crate::record::StudyRecord>(v.value())?.patient_key),
                None => None,
            };
            names.push((rec.patient_name, owner, c.before.clone()));
        }
    }
    for c in &op.changes {
        if let Some((a, _)) = &c.after {
            index::insert_one(&txn, a)?;
        }
    }
    for (name, owner, before) in names {
        let owner = owner
            .or_else(|| before.map(|b| b.attrs.patient_id.clone()))
            .unwrap_or_default();
        index::forget_name(&txn, &name, &owner)?;
    }
    put_op(&txn, op)?;
    if let Request::Undo(of) = op.request
        && let Some(mut orig) = get_in(&txn, of)?
    {
        orig.undone_by = Some(op.id);
        // Undoing an undo puts the operation it undid back in force.
        if let Request::Undo(inner) = orig.request
            && let Some(mut first) = get_in(&txn, inner)?
        {
            first.undone_by = None;
            put_op(&txn, &first)?;
        }
        put_op(&txn, &orig)?;
    }
    txn.commit()?;
    Ok(())
}

fn enc_op(op: &Operation) -> Result<Vec<u8>, EditError> {
    Ok(index::enc(op)?)
}

fn sync_dirs(
    root: &Path,
    sync: SyncMode,
    dirs: &std::collections::BTreeSet<PathBuf>,
) -> Result<(), EditError> {
    if dirs.is_empty() {
        return Ok(());
    }
    let r = if sync == SyncMode::Syncfs {
        File::open(root).and_then(|v| commit::sync_volume(&v))
    } else {
        // New directories' own names too.
        let mut all = std::collections::BTreeSet::new();
        for d in dirs {
            let mut p = d.as_path();
            while p.starts_with(root) {
                all.insert(p.to_path_buf());
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
        }
        all.iter()
            .try_for_each(|d| File::open(d).and_then(|f| f.sync_all()))
    };
    r.map_err(io_err("syncing renames"))
}

/// The record and staging folder go once the index holds the operation.
fn finish(root: &Path, id: u64) -> Result<(), EditError> {
    let staged = staging_dir(root, id);
    match std::fs::remove_dir_all(&staged) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("removing {}", staged.display()))(e)),
    }
    let rec = op_record_path(root, id);
    std::fs::remove_file(&rec).map_err(io_err(format!("removing {}", rec.display())))?;
    File::open(ops_dir(root))
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing ops/"))
}

/// What start-up recovery did with operations a crash interrupted.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct OpsRecovery {
    pub finished: u64,
    pub dropped: u64,
}

/// Finishes operations past their commit point, drops the others (see the module comment).
pub(crate) fn recover(root: &Path, idx: &Index, sync: SyncMode) -> io::Result<OpsRecovery> {
    let mut report = OpsRecovery::default();
    let dir = ops_dir(root);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    let mut staging = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".op").and_then(|n| n.parse::<u64>().ok()) {
            records.push((id, e.path()));
        } else if let Ok(id) = name.parse::<u64>() {
            staging.push(id);
        }
    }
    records.sort();
    let mut kept = std::collections::HashSet::new();
    for (id, path) in records {
        let committed = match read_record(&path)? {
            Some(op) if op.id == id && committed(root, &op)? => Some(op),
            _ => None,
        };
        match committed {
            Some(op) => {
                apply(root, idx, sync, &op).map_err(io::Error::other)?;
                finish(root, id).map_err(io::Error::other)?;
                tracing::warn!(
                    operation = id,
                    kind = op.request.kind(),
                    "finished an operation interrupted by a crash"
                );
                report.finished += 1;
            }
            None => {
                std::fs::remove_file(&path)?;
                report.dropped += 1;
            }
        }
        kept.insert(id);
    }
    for id in staging {
        let _ = std::fs::remove_dir_all(staging_dir(root, id));
        if !kept.contains(&id) {
            report.dropped += 1;
        }
    }
    Ok(report)
}

/// True when the record's operation passed its commit point: apply began (a staged file was
/// moved in already), or every staged file is there with its recorded hash.
fn committed(root: &Path, op: &Operation) -> io::Result<bool> {
    for c in &op.changes {
        if let Some((a, s @ Source::Staged(_))) = &c.after {
            let p = source_path(root, op.id, s);
            if !p.exists() {
                return Ok(true);
            }
            if crate::maintenance::hash_file(&p)? != a.record.file_hash {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// One operation of the history, with its instance changes.
pub(crate) fn get(idx: &Index, id: u64) -> Result<Option<Operation>, EditError> {
    let txn = idx.db().begin_read()?;
    let t = txn.open_table(OPERATIONS)?;
    match t.get(id)? {
        Some(v) => Ok(Some(index::dec(v.value())?)),
        None => Ok(None),
    }
}

/// The history, newest first, at most `limit`.
pub(crate) fn list(idx: &Index, limit: usize) -> Result<Vec<OperationSummary>, EditError> {
    let txn = idx.db().begin_read()?;
    let t = txn.open_table(OPERATION_LIST)?;
    let mut out = Vec::new();
    for row in t.iter()?.rev() {
        if out.len() >= limit {
            break;
        }
        let (_, v) = row?;
        out.push(index::dec::<Operation>(v.value())?.summary());
    }
    Ok(out)
}

/// What a purge freed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PurgeReport {
    pub operations: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Empties the trash of operations older than `older_than_s` seconds (0: all); those can no
/// longer be undone.
pub(crate) fn purge(shared: &Shared, older_than_s: i64) -> Result<PurgeReport, EditError> {
    let _one_at_a_time = shared.edit_lock.lock().unwrap_or_else(|p| p.into_inner());
    let root = shared.root.as_path();
    let idx = &shared.index;
    let cutoff = ingest::unix_now().saturating_sub(older_than_s);
    let mut report = PurgeReport::default();
    let due: Vec<Operation> = {
        let txn = idx.db().begin_read()?;
        let t = txn.open_table(OPERATION_LIST)?;
        let mut v = Vec::new();
        for row in t.iter()? {
            let (_, r) = row?;
            let op: Operation = index::dec(r.value())?;
            if !op.purged && op.unix <= cutoff {
                v.push(op);
            }
        }
        v
    };
    for op in due {
        let dir = trash_dir(root).join(op.id.to_string());
        let mut files = Vec::new();
        walk(&dir, &mut files);
        for f in &files {
            if let Ok(m) = std::fs::metadata(f) {
                report.bytes += m.len();
            }
            report.files += 1;
        }
        // The history says "purged" first: an undo never looks for files being removed.
        let txn = idx.begin_write()?;
        if let Some(mut full) = get_in(&txn, op.id)? {
            full.purged = true;
            put_op(&txn, &full)?;
        }
        txn.commit()?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("removing {}", dir.display()))(e)),
        }
        report.operations += 1;
    }
    // Trash no history names (an index rebuilt by `pacsbox reindex` starts a new history):
    // nothing can undo into it, so it goes by its age alone.
    let known: std::collections::HashSet<u64> = {
        let txn = idx.db().begin_read()?;
        let t = txn.open_table(OPERATION_LIST)?;
        let mut ids = std::collections::HashSet::new();
        for row in t.iter()? {
            ids.insert(row?.0.value());
        }
        ids
    };
    if let Ok(rd) = std::fs::read_dir(trash_dir(root)) {
        for e in rd.flatten() {
            let Ok(id) = e.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX) <= cutoff);
            if known.contains(&id) || !old {
                continue;
            }
            let mut files = Vec::new();
            walk(&e.path(), &mut files);
            report.files += files.len() as u64;
            report.bytes += files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum::<u64>();
            std::fs::remove_dir_all(e.path())
                .map_err(io_err(format!("removing {}", e.path().display())))?;
        }
    }
    Ok(report)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), out),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
}

/// Writes an operation's commit record as `run` does; for crash tests that build the state a
/// crash leaves.
#[doc(hidden)]
pub fn write_record_for_tests(root: &Path, op: &Operation) -> Result<(), EditError> {
    write_record(root, op)
}
