//! The redb index: patients, studies, series, instances and the secondary indexes that the
//! clinic's searches use.
//!
//! The files under `archive/` are the truth; this index can always be rebuilt from them
//! (`pacsbox reindex`). Every write transaction records redb's allocator state
//! (`set_quick_repair`), so reopening after `kill -9` or a power cut does not walk the whole
//! database. Insert cost is a handful of B-tree updates: it does not grow with archive size
//! beyond log n.

use std::path::Path;

use redb::{
    Database, Durability, MultimapTableDefinition, ReadTransaction, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::record::{InstanceAttrs, InstanceRecord, PatientRecord, SeriesRecord, StudyRecord};

pub(crate) const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
pub(crate) const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series");
pub(crate) const STUDIES: TableDefinition<&str, &[u8]> = TableDefinition::new("studies");
pub(crate) const PATIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("patients");
pub(crate) const SERIES_INSTANCES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("series_instances");
pub(crate) const STUDY_SERIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_series");
pub(crate) const PATIENT_STUDIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("patient_studies");
pub(crate) const STUDY_BY_DATE: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_by_date");
pub(crate) const STUDY_BY_ACCESSION: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_by_accession");
pub(crate) const STUDY_BY_MODALITY: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_by_modality");
/// Normalised person-name search key (one per component group) -> patient key.
pub(crate) const PATIENT_BY_NAME: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("patient_by_name");
/// Latin spelling of a Hangul name (`pacsbox_charset::romanised_name_keys`) -> patient key,
/// for the web page's search only.
pub(crate) const PATIENT_BY_ROMANISED: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("patient_by_romanised");
/// Facts about the index itself, e.g. which search key version `PATIENT_BY_NAME` holds.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const NAME_KEY_VERSION: &str = "name_key_version";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index database: {0}")]
    Db(#[from] redb::Error),
    #[error("index record does not decode: {0}")]
    Record(#[from] postcard::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self { IndexError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

pub type Result<T> = std::result::Result<T, IndexError>;

/// One instance pointed at another file of the same data set: `from` (path, file hash) must
/// still be what its record names; `to` is (path, size, hash).
pub(crate) struct FileSwap<'a> {
    pub sop_uid: &'a str,
    pub from: (&'a str, u64),
    pub to: (&'a str, u64, u64),
}

/// A new or replaced instance, ready to be indexed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    pub attrs: InstanceAttrs,
    pub record: InstanceRecord,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct Counts {
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
}

pub struct Index {
    db: Database,
}

fn patient_key(a: &InstanceAttrs) -> String {
    a.patient_id.clone()
}

pub(crate) fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(postcard::to_allocvec(v)?)
}

pub(crate) fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    Ok(postcard::from_bytes(b)?)
}

impl Index {
    /// Opens (or creates) the index. After a crash redb repairs from the allocator state
    /// saved by the last quick-repair commit; the callback only reports progress.
    pub fn open(path: &Path) -> Result<Index> {
        let mut builder = Database::builder();
        // The Pi has 2-8 GB; redb's default 1 GiB cache would be most of it.
        builder.set_cache_size(64 << 20);
        builder.set_repair_callback(|s| {
            tracing::warn!(
                progress = s.progress(),
                "repairing index after unclean shutdown"
            );
        });
        let db = builder.create(path)?;
        let index = Index { db };
        let txn = index.begin_write()?;
        {
            txn.open_table(INSTANCES)?;
            txn.open_table(SERIES)?;
            txn.open_table(STUDIES)?;
            txn.open_table(PATIENTS)?;
            txn.open_table(crate::accounts::USERS)?;
            txn.open_table(crate::accounts::RETIRED_PASSWORDS)?;
            txn.open_table(crate::accounts::LAST_LOGINS)?;
            txn.open_table(crate::accounts::LANGUAGES)?;
            txn.open_table(crate::peers::LEARNED_PEERS)?;
            txn.open_table(crate::peers::PEER_ADDRESSES)?;
            txn.open_table(crate::peers::ACCESS)?;
            txn.open_table(crate::peers::REFUSED)?;
            txn.open_table(crate::edit::OPERATIONS)?;
            txn.open_table(crate::edit::OPERATION_LIST)?;
            txn.open_table(crate::forward::ARRIVALS)?;
            txn.open_table(crate::forward::JOBS)?;
            txn.open_table(crate::forward::HOLDS)?;
            txn.open_table(crate::worklist::EXAMS)?;
            txn.open_table(crate::worklist::EXAM_BY_STUDY)?;
            txn.open_table(crate::worklist::EXAM_META)?;
            txn.open_table(crate::worklist::MPPS)?;
            txn.open_multimap_table(crate::worklist::EXAM_BY_DATE)?;
            txn.open_multimap_table(crate::worklist::MPPS_BY_STUDY)?;
            txn.open_table(crate::commitment::COMMITMENTS)?;
            txn.open_table(crate::report::DRAFTS)?;
            txn.open_table(crate::api_tokens::API_TOKENS)?;
            for t in [
                SERIES_INSTANCES,
                STUDY_SERIES,
                PATIENT_STUDIES,
                STUDY_BY_DATE,
                STUDY_BY_ACCESSION,
                STUDY_BY_MODALITY,
                PATIENT_BY_NAME,
                PATIENT_BY_ROMANISED,
            ] {
                txn.open_multimap_table(t)?;
            }
        }
        txn.commit()?;
        index.upgrade_name_keys()?;
        index.upgrade_exam_keys()?;
        Ok(index)
    }

    /// Rebuilds the name search keys when they were made by another key normalisation (an
    /// index written by an older pacsbox): otherwise a query's key would silently miss every
    /// name whose stored key was spelled differently. Runs once; an index without the version
    /// predates it (version 1).
    fn upgrade_name_keys(&self) -> Result<()> {
        let want = pacsbox_charset::SEARCH_KEY_VERSION;
        let stored = {
            let txn = self.read()?;
            match txn.open_table(META) {
                Ok(t) => t.get(NAME_KEY_VERSION)?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if stored == Some(want) {
            return Ok(());
        }
        let txn = self.begin_write()?;
        let mut keys = 0u64;
        txn.delete_multimap_table(PATIENT_BY_NAME)?;
        txn.delete_multimap_table(PATIENT_BY_ROMANISED)?;
        {
            let instances = txn.open_table(INSTANCES)?;
            let studies = txn.open_table(STUDIES)?;
            let mut by_name = txn.open_multimap_table(PATIENT_BY_NAME)?;
            let mut by_latin = txn.open_multimap_table(PATIENT_BY_ROMANISED)?;
            // As `insert_one` files them: each instance's own name, under its study's patient.
            let mut owner: Option<(String, String)> = None;
            for row in instances.iter()? {
                let (_, v) = row?;
                let rec: InstanceRecord = dec(v.value())?;
                if owner
                    .as_ref()
                    .is_none_or(|(study, _)| *study != rec.study_uid)
                {
                    let Some(st) = studies.get(rec.study_uid.as_str())? else {
                        continue;
                    };
                    let patient = dec::<StudyRecord>(st.value())?.patient_key;
                    owner = Some((rec.study_uid.clone(), patient));
                }
                if let Some((_, patient)) = &owner {
                    for key in pacsbox_charset::person_name_search_keys(&rec.patient_name) {
                        by_name.insert(key.as_str(), patient.as_str())?;
                        keys += 1;
                    }
                    for key in pacsbox_charset::romanised_name_keys(&rec.patient_name) {
                        by_latin.insert(key.as_str(), patient.as_str())?;
                    }
                }
            }
            txn.open_table(META)?.insert(NAME_KEY_VERSION, want)?;
        }
        txn.commit()?;
        if stored.is_some() || keys > 0 {
            tracing::info!(
                from = stored.unwrap_or(1),
                to = want,
                keys,
                "person-name search keys rebuilt for the new key version"
            );
        }
        Ok(())
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// A durable write: on disk when `commit` returns, with the allocator state recorded so
    /// that reopening after a crash is quick.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
        Ok(txn)
    }

    /// Indexes a batch without waiting for the disk: the ingest path's durability comes from
    /// the commit journal, and a later [`Index::checkpoint`] makes these writes durable. With
    /// `arrivals`, each instance is also queued for the forwarding router in the same
    /// transaction (journal replay queues it again: see `forward.rs`).
    pub(crate) fn insert_batch_deferred(
        &self,
        entries: &[IndexEntry],
        arrivals: bool,
    ) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        for e in entries {
            insert_one(&txn, e)?;
        }
        if arrivals {
            Index::record_arrivals(&txn, sops(entries))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Journal replay's re-indexing: like [`Index::insert_batch`], and with `arrivals` the
    /// instances queued for forwarding again (their first queueing may not have been durable).
    pub(crate) fn insert_batch_replayed(
        &self,
        entries: &[IndexEntry],
        arrivals: bool,
    ) -> Result<()> {
        let txn = self.begin_write()?;
        for e in entries {
            insert_one(&txn, e)?;
        }
        if arrivals {
            Index::record_arrivals(&txn, sops(entries))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Makes every deferred write durable (one durable commit).
    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.begin_write()?.commit()?;
        Ok(())
    }

    pub(crate) fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    pub fn instance(&self, sop_uid: &str) -> Result<Option<InstanceRecord>> {
        let txn = self.read()?;
        let t = txn.open_table(INSTANCES)?;
        match t.get(sop_uid)? {
            Some(v) => Ok(Some(dec(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn counts(&self) -> Result<Counts> {
        let txn = self.read()?;
        Ok(Counts {
            patients: txn.open_table(PATIENTS)?.len()?,
            studies: txn.open_table(STUDIES)?.len()?,
            series: txn.open_table(SERIES)?.len()?,
            instances: txn.open_table(INSTANCES)?.len()?,
        })
    }

    /// Indexes a batch in one durable transaction: a bulk load outside the ingest path
    /// (reindex, recovery, and the index benchmark in `examples/`, hence public).
    pub fn insert_batch(&self, entries: &[IndexEntry]) -> Result<()> {
        let txn = self.begin_write()?;
        for e in entries {
            insert_one(&txn, e)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Points instances at other files with the same data sets (compression when idle), in
    /// one durable commit; each only if its record still names `from` (path, file hash), so
    /// that an overwrite in between wins. Returns, per swap, whether it was made.
    pub(crate) fn swap_files(&self, swaps: &[FileSwap<'_>]) -> Result<Vec<bool>> {
        if swaps.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.begin_write()?;
        let mut made = Vec::with_capacity(swaps.len());
        {
            let mut t = txn.open_table(INSTANCES)?;
            for s in swaps {
                let current: Option<InstanceRecord> = match t.get(s.sop_uid)? {
                    Some(v) => Some(dec(v.value())?),
                    None => None,
                };
                let ok = match current {
                    Some(mut r) if r.rel_path == s.from.0 && r.file_hash == s.from.1 => {
                        (r.rel_path, r.file_size, r.file_hash) =
                            (s.to.0.to_owned(), s.to.1, s.to.2);
                        t.insert(s.sop_uid, enc(&r)?.as_slice())?;
                        true
                    }
                    _ => false,
                };
                made.push(ok);
            }
        }
        txn.commit()?;
        Ok(made)
    }

    /// Every indexed instance, in SOP Instance UID order.
    pub fn for_each_instance(&self, f: impl FnMut(&str, InstanceRecord)) -> Result<()> {
        self.for_each_instance_of_snapshot(|| {}, f)
    }

    /// [`Index::for_each_instance`], calling `taken` once the snapshot it reads is taken
    /// (the compactor releases a lock there that keeps commits out of the moment).
    pub(crate) fn for_each_instance_of_snapshot(
        &self,
        taken: impl FnOnce(),
        mut f: impl FnMut(&str, InstanceRecord),
    ) -> Result<()> {
        let txn = self.read()?;
        taken();
        let t = txn.open_table(INSTANCES)?;
        for row in t.iter()? {
            let (k, v) = row?;
            f(k.value(), dec(v.value())?);
        }
        Ok(())
    }

    pub fn patient(&self, key: &str) -> Result<Option<PatientRecord>> {
        let txn = self.read()?;
        let t = txn.open_table(PATIENTS)?;
        match t.get(key)? {
            Some(v) => Ok(Some(dec(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn series(&self, uid: &str) -> Result<Option<SeriesRecord>> {
        let txn = self.read()?;
        let t = txn.open_table(SERIES)?;
        match t.get(uid)? {
            Some(v) => Ok(Some(dec(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn study(&self, uid: &str) -> Result<Option<StudyRecord>> {
        let txn = self.read()?;
        let t = txn.open_table(STUDIES)?;
        match t.get(uid)? {
            Some(v) => Ok(Some(dec(v.value())?)),
            None => Ok(None),
        }
    }

    /// Patient keys whose name matches `pattern` (DICOM wildcards `*` and `?`), compared on
    /// the normalised search keys of each component group: alphabetic, ideographic, phonetic.
    /// A pattern with a literal prefix is a range scan; only a leading wildcard walks all names.
    pub fn patients_by_name(&self, pattern: &str) -> Result<Vec<String>> {
        self.patients_by_key(PATIENT_BY_NAME, pattern)
    }

    /// Patients with a Hangul name one of whose Latin spellings matches `pattern` (web search).
    pub fn patients_by_romanised_name(&self, pattern: &str) -> Result<Vec<String>> {
        self.patients_by_key(PATIENT_BY_ROMANISED, pattern)
    }

    /// The values of `table` (search key → value) under the keys `pattern` matches.
    pub(crate) fn patients_by_key(
        &self,
        table: MultimapTableDefinition<&str, &str>,
        pattern: &str,
    ) -> Result<Vec<String>> {
        let pat = pacsbox_charset::normalize_search_text(pattern);
        let txn = self.read()?;
        let t = txn.open_multimap_table(table)?;
        let prefix: String = pat.chars().take_while(|c| *c != '*' && *c != '?').collect();
        let mut out = Vec::new();
        // A common surname has thousands of patients: dedup by set, not by scanning `out`.
        let mut seen = std::collections::HashSet::new();
        let mut visit = |k: &str, vals: redb::MultimapValue<&str>| -> Result<()> {
            if wildcard_match(&pat, k) {
                for v in vals {
                    let v = v?.value().to_owned();
                    if seen.insert(v.clone()) {
                        out.push(v);
                    }
                }
            }
            Ok(())
        };
        if prefix.is_empty() {
            for row in t.iter()? {
                let (k, vals) = row?;
                visit(k.value(), vals)?;
            }
        } else {
            for row in t.range(prefix.as_str()..)? {
                let (k, vals) = row?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                visit(k.value(), vals)?;
            }
        }
        Ok(out)
    }

    /// Instances whose own Patient's Name matches `pattern` (see `patients_by_name`).
    pub fn instances_by_name(&self, pattern: &str) -> Result<Vec<(String, InstanceRecord)>> {
        let pat = pacsbox_charset::normalize_search_text(pattern);
        let mut out = Vec::new();
        for key in self.patients_by_name(pattern)? {
            out.extend(
                self.patient_instances(&key)?
                    .into_iter()
                    .filter(|(_, rec)| {
                        pacsbox_charset::person_name_search_keys(&rec.patient_name)
                            .iter()
                            .any(|k| wildcard_match(&pat, k))
                    }),
            );
        }
        Ok(out)
    }

    /// The instances of a patient, for listings.
    pub fn patient_instances(&self, patient_key: &str) -> Result<Vec<(String, InstanceRecord)>> {
        let txn = self.read()?;
        let ps = txn.open_multimap_table(PATIENT_STUDIES)?;
        let ss = txn.open_multimap_table(STUDY_SERIES)?;
        let si = txn.open_multimap_table(SERIES_INSTANCES)?;
        let inst = txn.open_table(INSTANCES)?;
        let mut out = Vec::new();
        for study in ps.get(patient_key)? {
            let study = study?;
            for series in ss.get(study.value())? {
                let series = series?;
                for sop in si.get(series.value())? {
                    let sop = sop?;
                    if let Some(v) = inst.get(sop.value())? {
                        out.push((sop.value().to_owned(), dec(v.value())?));
                    }
                }
            }
        }
        Ok(out)
    }
}

fn sops(entries: &[IndexEntry]) -> impl Iterator<Item = String> + '_ {
    entries.iter().map(|e| e.attrs.sop_instance_uid.to_string())
}

pub(crate) fn insert_one(txn: &WriteTransaction, e: &IndexEntry) -> Result<()> {
    let a = &e.attrs;
    let sop = a.sop_instance_uid.as_str();
    let mut instances = txn.open_table(INSTANCES)?;
    let replaced = instances.get(sop)?.is_some();
    instances.insert(sop, enc(&e.record)?.as_slice())?;
    // Every name a patient was sent under finds them (inserting an existing pair is a no-op).
    let mut by_name = txn.open_multimap_table(PATIENT_BY_NAME)?;
    let name_owner = match txn.open_table(STUDIES)?.get(a.study_uid.as_str())? {
        Some(v) => dec::<StudyRecord>(v.value())?.patient_key,
        None => patient_key(a),
    };
    for key in pacsbox_charset::person_name_search_keys(&a.patient_name) {
        by_name.insert(key.as_str(), name_owner.as_str())?;
    }
    drop(by_name);
    let latin = pacsbox_charset::romanised_name_keys(&a.patient_name);
    if !latin.is_empty() {
        let mut by_latin = txn.open_multimap_table(PATIENT_BY_ROMANISED)?;
        for key in latin {
            by_latin.insert(key.as_str(), name_owner.as_str())?;
        }
    }
    if replaced {
        // An overwrite keeps the hierarchy it was first filed under; counts are unchanged.
        return Ok(());
    }
    let now = e.record.received_unix;
    let series_uid = a.series_uid.as_str();
    let study_uid = a.study_uid.as_str();
    let pkey = patient_key(a);

    let mut series_t = txn.open_table(SERIES)?;
    let existing_series: Option<SeriesRecord> = match series_t.get(series_uid)? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    let new_series = existing_series.is_none();
    let mut series = existing_series.unwrap_or_else(|| SeriesRecord {
        study_uid: study_uid.to_owned(),
        modality: a.modality.clone(),
        series_number: a.series_number,
        description: a.series_description.clone(),
        body_part: a.body_part.clone(),
        instances: 0,
    });
    series.instances += 1;
    series_t.insert(series_uid, enc(&series)?.as_slice())?;
    txn.open_multimap_table(SERIES_INSTANCES)?
        .insert(series_uid, sop)?;

    let mut studies = txn.open_table(STUDIES)?;
    let existing_study: Option<StudyRecord> = match studies.get(study_uid)? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    let new_study = existing_study.is_none();
    let mut study = existing_study.unwrap_or_else(|| StudyRecord {
        patient_key: pkey.clone(),
        patient_id: a.patient_id.clone(),
        patient_name: a.patient_name.clone(),
        study_date: a.study_date.clone(),
        study_time: a.study_time.clone(),
        accession_number: a.accession_number.clone(),
        referring_physician: a.referring_physician.clone(),
        description: a.study_description.clone(),
        study_id: a.study_id.clone(),
        modalities: Vec::new(),
        sop_classes: Vec::new(),
        specific_character_set: a.specific_character_set.clone(),
        series: 0,
        instances: 0,
        first_received_unix: now,
        last_received_unix: now,
    });
    study.instances += 1;
    study.last_received_unix = now;
    if new_series {
        study.series += 1;
        txn.open_multimap_table(STUDY_SERIES)?
            .insert(study_uid, series_uid)?;
    }
    if !a.modality.is_empty() && !study.modalities.contains(&a.modality) {
        study.modalities.push(a.modality.clone());
        txn.open_multimap_table(STUDY_BY_MODALITY)?
            .insert(a.modality.as_str(), study_uid)?;
    }
    let sop_class = a.sop_class_uid.as_str();
    if !study.sop_classes.iter().any(|c| c == sop_class) {
        study.sop_classes.push(sop_class.to_owned());
    }
    studies.insert(study_uid, enc(&study)?.as_slice())?;
    if new_study {
        txn.open_multimap_table(STUDY_BY_DATE)?
            .insert(a.study_date.as_str(), study_uid)?;
        if !a.accession_number.is_empty() {
            txn.open_multimap_table(STUDY_BY_ACCESSION)?
                .insert(a.accession_number.as_str(), study_uid)?;
        }
    }

    // Instances of a study filed under another patient key stay with the study's patient.
    let pkey = study.patient_key.clone();
    let mut patients = txn.open_table(PATIENTS)?;
    let existing_patient: Option<PatientRecord> = match patients.get(pkey.as_str())? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    let mut patient = existing_patient.unwrap_or_else(|| PatientRecord {
        patient_id: a.patient_id.clone(),
        name: a.patient_name.clone(),
        birth_date: a.patient_birth_date.clone(),
        sex: a.patient_sex.clone(),
        ..Default::default()
    });
    patient.instances += 1;
    if new_series {
        patient.series += 1;
    }
    if new_study {
        patient.studies += 1;
        txn.open_multimap_table(PATIENT_STUDIES)?
            .insert(pkey.as_str(), study_uid)?;
    }
    patients.insert(pkey.as_str(), enc(&patient)?.as_slice())?;
    Ok(())
}

/// Takes one instance out of the index, undoing what [`insert_one`] counted: series, study and
/// patient lose it, and whatever it leaves empty goes too (with its secondary index rows).
/// Returns the record removed (None when it was not indexed).
pub(crate) fn remove_one(txn: &WriteTransaction, sop: &str) -> Result<Option<InstanceRecord>> {
    let rec: InstanceRecord = match txn.open_table(INSTANCES)?.remove(sop)? {
        Some(v) => dec(v.value())?,
        None => return Ok(None),
    };
    let series_uid = rec.series_uid.as_str();
    let study_uid = rec.study_uid.as_str();
    txn.open_multimap_table(SERIES_INSTANCES)?
        .remove(series_uid, sop)?;
    let mut series_t = txn.open_table(SERIES)?;
    let series: Option<SeriesRecord> = match series_t.get(series_uid)? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    let mut series_gone = false;
    if let Some(mut s) = series {
        s.instances = s.instances.saturating_sub(1);
        if s.instances == 0 {
            series_t.remove(series_uid)?;
            txn.open_multimap_table(STUDY_SERIES)?
                .remove(study_uid, series_uid)?;
            series_gone = true;
        } else {
            series_t.insert(series_uid, enc(&s)?.as_slice())?;
        }
    }
    let mut studies = txn.open_table(STUDIES)?;
    let study: Option<StudyRecord> = match studies.get(study_uid)? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    let Some(mut study) = study else {
        return Ok(Some(rec));
    };
    study.instances = study.instances.saturating_sub(1);
    if series_gone {
        study.series = study.series.saturating_sub(1);
    }
    let study_gone = study.instances == 0;
    if study_gone {
        studies.remove(study_uid)?;
        txn.open_multimap_table(STUDY_BY_DATE)?
            .remove(study.study_date.as_str(), study_uid)?;
        txn.open_multimap_table(STUDY_BY_ACCESSION)?
            .remove(study.accession_number.as_str(), study_uid)?;
        let mut by_modality = txn.open_multimap_table(STUDY_BY_MODALITY)?;
        for m in &study.modalities {
            by_modality.remove(m.as_str(), study_uid)?;
        }
        txn.open_multimap_table(PATIENT_STUDIES)?
            .remove(study.patient_key.as_str(), study_uid)?;
    } else {
        if series_gone {
            // The modality list follows the series left.
            let ss = txn.open_multimap_table(STUDY_SERIES)?;
            let mut left = Vec::new();
            for s in ss.get(study_uid)? {
                if let Some(v) = series_t.get(s?.value())? {
                    let m = dec::<SeriesRecord>(v.value())?.modality;
                    if !m.is_empty() && !left.contains(&m) {
                        left.push(m);
                    }
                }
            }
            let mut by_modality = txn.open_multimap_table(STUDY_BY_MODALITY)?;
            for m in study.modalities.iter().filter(|m| !left.contains(m)) {
                by_modality.remove(m.as_str(), study_uid)?;
            }
            study.modalities = left;
        }
        studies.insert(study_uid, enc(&study)?.as_slice())?;
    }
    let pkey = study.patient_key.as_str();
    let mut patients = txn.open_table(PATIENTS)?;
    let patient: Option<PatientRecord> = match patients.get(pkey)? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    if let Some(mut p) = patient {
        p.instances = p.instances.saturating_sub(1);
        if series_gone {
            p.series = p.series.saturating_sub(1);
        }
        if study_gone {
            p.studies = p.studies.saturating_sub(1);
        }
        if p.instances == 0 {
            patients.remove(pkey)?;
        } else {
            patients.insert(pkey, enc(&p)?.as_slice())?;
        }
    }
    Ok(Some(rec))
}

/// Name search keys of `name` filed under `patient_key` go, unless that patient still exists
/// under a name with the same key (the patient record keeps the first name it was sent with).
pub(crate) fn forget_name(txn: &WriteTransaction, name: &str, patient_key: &str) -> Result<()> {
    let current: Option<PatientRecord> = match txn.open_table(PATIENTS)?.get(patient_key)? {
        Some(v) => Some(dec(v.value())?),
        None => None,
    };
    let keep_name = current.map(|p| p.name).unwrap_or_default();
    let keep = pacsbox_charset::person_name_search_keys(&keep_name);
    let keep_latin = pacsbox_charset::romanised_name_keys(&keep_name);
    let mut by_name = txn.open_multimap_table(PATIENT_BY_NAME)?;
    for key in pacsbox_charset::person_name_search_keys(name) {
        if !keep.contains(&key) {
            by_name.remove(key.as_str(), patient_key)?;
        }
    }
    let mut by_latin = txn.open_multimap_table(PATIENT_BY_ROMANISED)?;
    for key in pacsbox_charset::romanised_name_keys(name) {
        if !keep_latin.contains(&key) {
            by_latin.remove(key.as_str(), patient_key)?;
        }
    }
    Ok(())
}

/// DICOM wildcard matching (PS3.4 C.2.2.2.4): `*` any run, `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("KIM*", "KIMMINSU"));
        assert!(wildcard_match("*MIN*", "KIMMINSU"));
        assert!(wildcard_match("K?M*", "KIMMINSU"));
        assert!(!wildcard_match("LEE*", "KIMMINSU"));
        assert!(wildcard_match("홍길동", "홍길동"));
        assert!(!wildcard_match("홍길", "홍길동"));
    }
}
