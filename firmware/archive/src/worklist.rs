//! The clinic's schedule: exams registered at the front desk (the web page's Register), served
//! to modalities as the Modality Worklist, and the Modality Performed Procedure Steps those
//! modalities report back (PS3.4 Annex F), all in redb beside the image index.
//!
//! An exam is keyed by its accession number (generated when none is typed) and carries a Study
//! Instance UID assigned at registration, so the images a modality makes from the worklist
//! entry arrive in the exam's study. Whether an exam has images is looked up when it is read
//! (the study UID, then the accession number, in the image index): nothing is added to the
//! ingest path's index transaction, and an edit or delete of the study is reflected at once.
//!
//! Exam state: scheduled → in progress (MPPS N-CREATE) → completed | discontinued (MPPS N-SET,
//! or a person in the web page) → reported (the physician's report). A scheduled exam can also
//! be cancelled before it starts. Only scheduled exams are on the worklist. Every change of an
//! MPPS and of its exam happens in one transaction, checked first, so a refused request changes
//! nothing.

use std::ops::ControlFlow;

use redb::{MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::index::{Index, IndexError, Result, dec, enc};

/// Accession number → [`Exam`].
pub(crate) const EXAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("exams");
/// Scheduled date `YYYYMMDD` → accession number.
pub(crate) const EXAM_BY_DATE: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("exam_by_date");
/// Study Instance UID → accession number.
pub(crate) const EXAM_BY_STUDY: TableDefinition<&str, &str> = TableDefinition::new("exam_by_study");
/// Patient ID → accession numbers.
pub(crate) const EXAM_BY_PATIENT: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("exam_by_patient");
/// Person-name search key of each component group (`pacsbox_charset::person_name_search_keys`,
/// as `PATIENT_BY_NAME` keys images) → accession numbers.
pub(crate) const EXAM_BY_NAME: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("exam_by_name");
/// Modality → accession numbers.
pub(crate) const EXAM_BY_MODALITY: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("exam_by_modality");
/// Scheduled Station AE ("" for any station) → accession numbers.
pub(crate) const EXAM_BY_STATION: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("exam_by_station");
/// `META` key: the `SEARCH_KEY_VERSION` the exam indexes above were built with.
const EXAM_KEY_VERSION: &str = "exam_key_version";
/// Counters: the day and sequence of the last generated accession number.
pub(crate) const EXAM_META: TableDefinition<&str, u64> = TableDefinition::new("exam_meta");
/// MPPS SOP Instance UID → [`Mpps`].
pub(crate) const MPPS: TableDefinition<&str, &[u8]> = TableDefinition::new("mpps");
/// Study Instance UID → MPPS SOP Instance UIDs (the study page's "performed").
pub(crate) const MPPS_BY_STUDY: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("mpps_by_study");

/// Stored by variant index (postcard): new states go at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExamState {
    Scheduled,
    InProgress,
    Completed,
    Discontinued,
    /// Taken off the schedule before it started.
    Cancelled,
    /// The physician's report is signed.
    Reported,
}

impl ExamState {
    pub fn name(self) -> &'static str {
        match self {
            ExamState::Scheduled => "scheduled",
            ExamState::InProgress => "in progress",
            ExamState::Completed => "completed",
            ExamState::Discontinued => "discontinued",
            ExamState::Cancelled => "cancelled",
            ExamState::Reported => "reported",
        }
    }
}

/// What the front desk types to schedule an exam.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewExam {
    pub patient_id: String,
    pub issuer: String,
    /// A PN with all its groups, e.g. `Hong^Gildong=洪^吉洞=홍^길동`.
    pub patient_name: String,
    pub birth_date: String,
    pub sex: String,
    /// Empty: one is generated.
    pub accession: String,
    pub requested_procedure_id: String,
    pub procedure_description: String,
    pub step_id: String,
    pub modality: String,
    /// Empty: any station.
    pub station_ae: String,
    /// `YYYYMMDD`.
    pub date: String,
    /// `HHMMSS` or `HHMM`.
    pub time: String,
    pub referring_physician: String,
    pub performing_physician: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exam {
    pub accession: String,
    pub patient_id: String,
    pub issuer: String,
    pub patient_name: String,
    pub birth_date: String,
    pub sex: String,
    pub requested_procedure_id: String,
    pub procedure_description: String,
    pub step_id: String,
    pub modality: String,
    pub station_ae: String,
    pub date: String,
    pub time: String,
    pub referring_physician: String,
    pub performing_physician: String,
    pub study_uid: String,
    pub state: ExamState,
    pub created_unix: i64,
    pub updated_unix: i64,
    /// The MPPS that moved it on, if any.
    pub mpps_uid: String,
}

/// One series as the modality reported it performed (Performed Series Sequence).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformedSeries {
    pub series_uid: String,
    pub description: String,
    pub protocol: String,
    pub images: Vec<String>,
}

/// The attributes of an MPPS we keep (what the study and worklist pages show).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MppsAttributes {
    pub status: String,
    pub modality: String,
    pub station_ae: String,
    pub description: String,
    pub start: String,
    pub end: String,
    /// From the Scheduled Step Attributes Sequence: how it is linked to an exam.
    pub accession: String,
    pub study_uid: String,
    pub step_id: String,
    pub series: Vec<PerformedSeries>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mpps {
    pub uid: String,
    pub calling_ae: String,
    pub created_unix: i64,
    pub updated_unix: i64,
    /// Accession number of the exam it was linked to; empty: unscheduled.
    pub exam: String,
    pub attrs: MppsAttributes,
}

#[derive(Debug, thiserror::Error)]
pub enum WorklistError {
    #[error("{0}")]
    Invalid(String),
    #[error("accession number {0} is already used")]
    DuplicateAccession(String),
    #[error("no exam with accession number {0}")]
    NoSuchExam(String),
    #[error("exam {0} is {1} and cannot be {2}")]
    WrongState(String, &'static str, &'static str),
    /// PS3.4 F.7: 0111H.
    #[error("MPPS {0} already exists")]
    DuplicateMpps(String),
    /// PS3.4 F.7: 0112H.
    #[error("no MPPS {0}")]
    NoSuchMpps(String),
    /// PS3.4 F.7.2.2: C310H, the MPPS is no longer IN PROGRESS.
    #[error("MPPS {0} is {1}, no longer IN PROGRESS")]
    MppsFinal(String, String),
    /// N-CREATE status other than IN PROGRESS, N-SET status other than the three (0106H/C000H).
    #[error("bad Performed Procedure Step Status {0:?}")]
    BadStatus(String),
    #[error(transparent)]
    Index(#[from] IndexError),
}

type WResult<T> = std::result::Result<T, WorklistError>;

fn index_err(e: impl Into<IndexError>) -> WorklistError {
    WorklistError::Index(e.into())
}

fn digits(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a new exam's fields against their VRs before anything is written.
fn validate(n: &NewExam) -> WResult<()> {
    let bad = |what: &str| Err(WorklistError::Invalid(what.to_owned()));
    let text_ok = |s: &str, max: usize| {
        s.chars().count() <= max && !s.contains('\\') && !s.chars().any(char::is_control)
    };
    if n.patient_id.trim().is_empty() || !text_ok(&n.patient_id, 64) {
        return bad("patient ID: 1 to 64 characters, no backslash");
    }
    if n.patient_name.trim().is_empty()
        || n.patient_name.split('=').count() > 3
        || !text_ok(&n.patient_name, 3 * 64 + 2)
    {
        return bad("patient name: up to three groups (Latin=ideographic=phonetic)");
    }
    if !n.birth_date.is_empty() && !digits(&n.birth_date, &[8]) {
        return bad("birth date: YYYYMMDD");
    }
    if !["", "M", "F", "O"].contains(&n.sex.as_str()) {
        return bad("sex: M, F or O");
    }
    if !digits(&n.date, &[8]) {
        return bad("scheduled date: YYYYMMDD");
    }
    if !n.time.is_empty() && !digits(&n.time, &[4, 6]) {
        return bad("scheduled time: HHMM or HHMMSS");
    }
    if n.modality.trim().is_empty()
        || n.modality.len() > 16
        || !n
            .modality
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return bad("modality: a code such as CR, DX, US, CT, MR");
    }
    if !n.station_ae.is_empty() && !crate::peers::valid_ae_title(&n.station_ae) {
        return bad("station AE title: up to 16 characters");
    }
    for (what, v, max) in [
        ("accession number", &n.accession, 16),
        ("requested procedure ID", &n.requested_procedure_id, 16),
        ("scheduled procedure step ID", &n.step_id, 16),
        ("procedure description", &n.procedure_description, 64),
        ("referring physician", &n.referring_physician, 64),
        ("performing physician", &n.performing_physician, 64),
        ("issuer of patient ID", &n.issuer, 64),
    ] {
        if !text_ok(v, max) {
            return Err(WorklistError::Invalid(format!(
                "{what}: at most {max} characters, no backslash"
            )));
        }
    }
    Ok(())
}

/// What a worklist query can take its candidates from; `None`: not given (or not a value the
/// indexes answer, such as a wildcard ID).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExamKeys {
    pub accession: Option<String>,
    pub patient_id: Option<String>,
    /// A person-name pattern (`*`, `?`) of one component group.
    pub name: Option<String>,
    /// Scheduled dates `YYYYMMDD`, inclusive; an empty bound is open.
    pub dates: Option<(String, String)>,
    pub modality: Option<String>,
    /// An exam for any station is every station's.
    pub station: Option<String>,
}

/// Files an exam under the secondary keys of [`ExamKeys`], in the caller's transaction. None
/// of them changes after registration, so nothing is ever removed.
fn index_exam(txn: &redb::WriteTransaction, e: &Exam) -> Result<()> {
    let acc = e.accession.as_str();
    txn.open_multimap_table(EXAM_BY_PATIENT)?
        .insert(e.patient_id.as_str(), acc)?;
    let mut by_name = txn.open_multimap_table(EXAM_BY_NAME)?;
    for key in pacsbox_charset::person_name_search_keys(&e.patient_name) {
        by_name.insert(key.as_str(), acc)?;
    }
    txn.open_multimap_table(EXAM_BY_MODALITY)?
        .insert(e.modality.as_str(), acc)?;
    txn.open_multimap_table(EXAM_BY_STATION)?
        .insert(e.station_ae.as_str(), acc)?;
    Ok(())
}

/// The values of `key` in a multimap, unless there are more than `cap`.
fn capped(
    t: &redb::ReadOnlyMultimapTable<&str, &str>,
    key: &str,
    out: &mut Vec<String>,
    cap: usize,
) -> Result<bool> {
    for v in t.get(key)? {
        if out.len() >= cap {
            return Ok(false);
        }
        out.push(v?.value().to_owned());
    }
    Ok(true)
}

impl Index {
    /// (Re)builds the exam indexes of [`ExamKeys`] from the exams when they were built with
    /// another person-name key version, or not at all (a data folder from before them): a
    /// query taking its candidates from an index would otherwise miss those exams.
    pub(crate) fn upgrade_exam_keys(&self) -> Result<()> {
        let want = pacsbox_charset::SEARCH_KEY_VERSION;
        let stored = {
            let txn = self.read()?;
            match txn.open_table(crate::index::META) {
                Ok(t) => t.get(EXAM_KEY_VERSION)?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if stored == Some(want) {
            return Ok(());
        }
        let txn = self.begin_write()?;
        let mut exams = 0u64;
        for t in [
            EXAM_BY_PATIENT,
            EXAM_BY_NAME,
            EXAM_BY_MODALITY,
            EXAM_BY_STATION,
        ] {
            txn.delete_multimap_table(t)?;
            txn.open_multimap_table(t)?;
        }
        {
            let table = txn.open_table(EXAMS)?;
            for r in table.iter()? {
                let e: Exam = dec(r?.1.value())?;
                index_exam(&txn, &e)?;
                exams += 1;
            }
            txn.open_table(crate::index::META)?
                .insert(EXAM_KEY_VERSION, want)?;
        }
        txn.commit()?;
        if exams > 0 {
            tracing::info!(exams, version = want, "exam search indexes built");
        }
        Ok(())
    }

    /// The exams that can match `keys`, handed to `emit` until it returns `Break`. Candidates
    /// come from the most selective index the keys allow (each tried with the best count so far
    /// as its cap, so a broad key costs no more than the narrow one found first); the caller
    /// still matches every key. No usable key: every exam. In index order (a day's exams by
    /// accession number, which the generator assigns in registration order).
    pub fn exams_matching(
        &self,
        keys: &ExamKeys,
        mut emit: impl FnMut(Exam) -> ControlFlow<()>,
    ) -> Result<()> {
        let candidates = self.exam_candidates(keys)?;
        let txn = self.read()?;
        let exams = txn.open_table(EXAMS)?;
        let mut visit = |v: &[u8]| -> Result<ControlFlow<()>> { Ok(emit(dec(v)?)) };
        match candidates {
            Some(accs) => {
                for a in accs {
                    if let Some(v) = exams.get(a.as_str())?
                        && visit(v.value())?.is_break()
                    {
                        break;
                    }
                }
            }
            None => {
                for r in exams.iter()? {
                    if visit(r?.1.value())?.is_break() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Accession numbers from the narrowest index `keys` name; `None`: no key is indexed.
    fn exam_candidates(&self, keys: &ExamKeys) -> Result<Option<Vec<String>>> {
        if let Some(a) = &keys.accession {
            return Ok(Some(vec![a.clone()]));
        }
        let txn = self.read()?;
        let mut best: Option<Vec<String>> = None;
        let cap = |best: &Option<Vec<String>>| best.as_ref().map_or(usize::MAX, Vec::len);
        let consider = |found: Option<Vec<String>>, best: &mut Option<Vec<String>>| {
            if let Some(f) = found
                && f.len() < cap(best)
            {
                *best = Some(f);
            }
        };
        if let Some(id) = &keys.patient_id {
            let mut v = Vec::new();
            capped(
                &txn.open_multimap_table(EXAM_BY_PATIENT)?,
                id,
                &mut v,
                usize::MAX,
            )?;
            consider(Some(v), &mut best);
        }
        if let Some((lo, hi)) = &keys.dates {
            let c = cap(&best);
            let t = txn.open_multimap_table(EXAM_BY_DATE)?;
            let hi = if hi.is_empty() {
                "99999999"
            } else {
                hi.as_str()
            };
            let mut v = Vec::new();
            let mut whole = true;
            if lo.as_str() <= hi {
                'days: for r in t.range(lo.as_str()..=hi)? {
                    for a in r?.1 {
                        if v.len() >= c {
                            whole = false;
                            break 'days;
                        }
                        v.push(a?.value().to_owned());
                    }
                }
            }
            consider(whole.then_some(v), &mut best);
        }
        if let Some(name) = &keys.name
            && !name.contains('=')
        {
            let v = self.patients_by_key(EXAM_BY_NAME, name)?;
            consider(Some(v), &mut best);
        }
        if let Some(m) = &keys.modality {
            let mut v = Vec::new();
            let whole = capped(
                &txn.open_multimap_table(EXAM_BY_MODALITY)?,
                m,
                &mut v,
                cap(&best),
            )?;
            consider(whole.then_some(v), &mut best);
        }
        if let Some(s) = &keys.station {
            let t = txn.open_multimap_table(EXAM_BY_STATION)?;
            let mut v = Vec::new();
            let c = cap(&best);
            let whole = capped(&t, s, &mut v, c)? && capped(&t, "", &mut v, c)?;
            consider(whole.then_some(v), &mut best);
        }
        Ok(best)
    }

    /// Registers an exam: validated, an accession number generated when none is given (unique:
    /// `A` + date + a sequence), a Study Instance UID assigned, state scheduled.
    pub fn schedule_exam(&self, n: &NewExam, now_unix: i64) -> WResult<Exam> {
        validate(n)?;
        let txn = self.begin_write().map_err(index_err)?;
        let exam = {
            let mut exams = txn.open_table(EXAMS).map_err(index_err)?;
            let mut meta = txn.open_table(EXAM_META).map_err(index_err)?;
            let accession = match n.accession.trim() {
                "" => {
                    // The day of the sequence restarts it; a typed number that collides is
                    // skipped over.
                    let day: u64 = n.date.parse().unwrap_or(0);
                    let stored_day = meta.get("day").map_err(index_err)?.map(|v| v.value());
                    let mut seq = match stored_day {
                        Some(d) if d == day => meta
                            .get("seq")
                            .map_err(index_err)?
                            .map(|v| v.value())
                            .unwrap_or(0),
                        _ => 0,
                    };
                    let acc = loop {
                        seq += 1;
                        let candidate = format!("A{}{seq:04}", n.date);
                        if exams.get(candidate.as_str()).map_err(index_err)?.is_none() {
                            break candidate;
                        }
                    };
                    meta.insert("day", day).map_err(index_err)?;
                    meta.insert("seq", seq).map_err(index_err)?;
                    acc
                }
                typed => {
                    if exams.get(typed).map_err(index_err)?.is_some() {
                        return Err(WorklistError::DuplicateAccession(typed.to_owned()));
                    }
                    typed.to_owned()
                }
            };
            let step_id = match n.step_id.trim() {
                "" => accession.clone(),
                s => s.to_owned(),
            };
            let requested_procedure_id = match n.requested_procedure_id.trim() {
                "" => accession.clone(),
                s => s.to_owned(),
            };
            let time = match n.time.len() {
                4 => format!("{}00", n.time),
                _ => n.time.clone(),
            };
            let exam = Exam {
                accession: accession.clone(),
                patient_id: n.patient_id.trim().to_owned(),
                issuer: n.issuer.trim().to_owned(),
                patient_name: n.patient_name.trim().to_owned(),
                birth_date: n.birth_date.clone(),
                sex: n.sex.clone(),
                requested_procedure_id,
                procedure_description: n.procedure_description.trim().to_owned(),
                step_id,
                modality: n.modality.trim().to_owned(),
                station_ae: n.station_ae.trim().to_owned(),
                date: n.date.clone(),
                time,
                referring_physician: n.referring_physician.trim().to_owned(),
                performing_physician: n.performing_physician.trim().to_owned(),
                study_uid: crate::edit::new_uid(),
                state: ExamState::Scheduled,
                created_unix: now_unix,
                updated_unix: now_unix,
                mpps_uid: String::new(),
            };
            exams
                .insert(accession.as_str(), enc(&exam)?.as_slice())
                .map_err(index_err)?;
            txn.open_multimap_table(EXAM_BY_DATE)
                .map_err(index_err)?
                .insert(exam.date.as_str(), accession.as_str())
                .map_err(index_err)?;
            txn.open_table(EXAM_BY_STUDY)
                .map_err(index_err)?
                .insert(exam.study_uid.as_str(), accession.as_str())
                .map_err(index_err)?;
            index_exam(&txn, &exam)?;
            exam
        };
        txn.commit().map_err(index_err)?;
        Ok(exam)
    }

    /// A postcard record of `table` by key.
    fn record<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(table)?;
        Ok(match t.get(key)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    pub fn exam(&self, accession: &str) -> Result<Option<Exam>> {
        self.record(EXAMS, accession)
    }

    /// The exam whose pre-assigned Study Instance UID is `study_uid`.
    pub fn exam_of_study(&self, study_uid: &str) -> Result<Option<Exam>> {
        let acc = {
            let txn = self.db().begin_read()?;
            let t = txn.open_table(EXAM_BY_STUDY)?;
            t.get(study_uid)?.map(|v| v.value().to_owned())
        };
        match acc {
            Some(a) => self.exam(&a),
            None => Ok(None),
        }
    }

    /// Exams scheduled from `from` to `to` (`YYYYMMDD`, inclusive; empty: open), by date and
    /// time. Both empty: every exam.
    pub fn exams_between(&self, from: &str, to: &str) -> Result<Vec<Exam>> {
        let txn = self.db().begin_read()?;
        let exams = txn.open_table(EXAMS)?;
        let mut out: Vec<Exam> = Vec::new();
        if from.is_empty() && to.is_empty() {
            for r in exams.iter()? {
                out.push(dec(r?.1.value())?);
            }
        } else {
            let by_date = txn.open_multimap_table(EXAM_BY_DATE)?;
            let hi = if to.is_empty() { "99999999" } else { to };
            for r in by_date.range(from..=hi)? {
                let (_, accs) = r?;
                for a in accs {
                    if let Some(v) = exams.get(a?.value())? {
                        out.push(dec(v.value())?);
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.date, &a.time, &a.accession).cmp(&(&b.date, &b.time, &b.accession)));
        Ok(out)
    }

    /// Whether images of the exam are in the archive: its study, or a study with its accession.
    pub fn exam_has_images(&self, exam: &Exam) -> Result<bool> {
        if self.study(&exam.study_uid)?.is_some() {
            return Ok(true);
        }
        let txn = self.db().begin_read()?;
        let t = txn.open_multimap_table(crate::index::STUDY_BY_ACCESSION)?;
        Ok(t.get(exam.accession.as_str())?.next().is_some())
    }

    /// A person's change of an exam's state: cancel (scheduled), discontinue (in progress),
    /// or reported (completed; the physician's report).
    pub fn set_exam_state(&self, accession: &str, to: ExamState, now_unix: i64) -> WResult<Exam> {
        let txn = self.begin_write().map_err(index_err)?;
        let exam = {
            let mut exams = txn.open_table(EXAMS).map_err(index_err)?;
            let mut exam: Exam = match exams.get(accession).map_err(index_err)? {
                Some(v) => dec(v.value())?,
                None => return Err(WorklistError::NoSuchExam(accession.to_owned())),
            };
            let allowed = matches!(
                (exam.state, to),
                (ExamState::Scheduled, ExamState::Cancelled)
                    | (ExamState::InProgress, ExamState::Discontinued)
                    | (ExamState::Completed, ExamState::Reported)
                    | (ExamState::Reported, ExamState::Reported)
            );
            if !allowed {
                return Err(WorklistError::WrongState(
                    accession.to_owned(),
                    exam.state.name(),
                    to.name(),
                ));
            }
            exam.state = to;
            exam.updated_unix = now_unix;
            exams
                .insert(accession, enc(&exam)?.as_slice())
                .map_err(index_err)?;
            exam
        };
        txn.commit().map_err(index_err)?;
        Ok(exam)
    }

    pub fn mpps(&self, uid: &str) -> Result<Option<Mpps>> {
        self.record(MPPS, uid)
    }

    /// The MPPS reported for a study (by the study UID the modality named, or its exam's).
    pub fn mpps_of_study(&self, study_uid: &str) -> Result<Vec<Mpps>> {
        let uids: Vec<String> = {
            let txn = self.db().begin_read()?;
            let t = txn.open_multimap_table(MPPS_BY_STUDY)?;
            let mut v = Vec::new();
            for u in t.get(study_uid)? {
                v.push(u?.value().to_owned());
            }
            v
        };
        let mut out = Vec::new();
        for u in uids {
            if let Some(m) = self.mpps(&u)? {
                out.push(m);
            }
        }
        out.sort_by_key(|m| m.created_unix);
        Ok(out)
    }

    /// N-CREATE: a new MPPS, IN PROGRESS, linked to the exam its Scheduled Step Attributes
    /// name (accession number, else study UID, else step ID among scheduled exams); that exam
    /// goes in progress. Returns the MPPS and the exam's accession (empty: unscheduled).
    pub fn mpps_create(
        &self,
        uid: &str,
        calling_ae: &str,
        attrs: MppsAttributes,
        now_unix: i64,
    ) -> WResult<Mpps> {
        if attrs.status != "IN PROGRESS" {
            return Err(WorklistError::BadStatus(attrs.status));
        }
        let txn = self.begin_write().map_err(index_err)?;
        let mpps = {
            let mut table = txn.open_table(MPPS).map_err(index_err)?;
            if table.get(uid).map_err(index_err)?.is_some() {
                return Err(WorklistError::DuplicateMpps(uid.to_owned()));
            }
            let mut exams = txn.open_table(EXAMS).map_err(index_err)?;
            let by_study = txn.open_table(EXAM_BY_STUDY).map_err(index_err)?;
            let mut found: Option<Exam> = None;
            if !attrs.accession.is_empty()
                && let Some(v) = exams.get(attrs.accession.as_str()).map_err(index_err)?
            {
                found = Some(dec(v.value())?);
            }
            if found.is_none()
                && !attrs.study_uid.is_empty()
                && let Some(acc) = by_study.get(attrs.study_uid.as_str()).map_err(index_err)?
                && let Some(v) = exams.get(acc.value()).map_err(index_err)?
            {
                found = Some(dec(v.value())?);
            }
            if found.is_none() && !attrs.step_id.is_empty() {
                for r in exams.iter().map_err(index_err)? {
                    let e: Exam = dec(r.map_err(index_err)?.1.value())?;
                    if e.step_id == attrs.step_id && e.state == ExamState::Scheduled {
                        found = Some(e);
                        break;
                    }
                }
            }
            let mut exam_acc = String::new();
            let mut study = attrs.study_uid.clone();
            if let Some(mut e) = found {
                // A second MPPS for an exam already under way (another step of it) links to it
                // without moving its state back.
                if e.state == ExamState::Scheduled {
                    e.state = ExamState::InProgress;
                    e.mpps_uid = uid.to_owned();
                    e.updated_unix = now_unix;
                    exams
                        .insert(e.accession.as_str(), enc(&e)?.as_slice())
                        .map_err(index_err)?;
                }
                exam_acc = e.accession.clone();
                if study.is_empty() {
                    study = e.study_uid.clone();
                }
            }
            let mpps = Mpps {
                uid: uid.to_owned(),
                calling_ae: calling_ae.to_owned(),
                created_unix: now_unix,
                updated_unix: now_unix,
                exam: exam_acc,
                attrs,
            };
            table
                .insert(uid, enc(&mpps)?.as_slice())
                .map_err(index_err)?;
            if !study.is_empty() {
                txn.open_multimap_table(MPPS_BY_STUDY)
                    .map_err(index_err)?
                    .insert(study.as_str(), uid)
                    .map_err(index_err)?;
            }
            mpps
        };
        txn.commit().map_err(index_err)?;
        Ok(mpps)
    }

    /// N-SET: `update` applied to the MPPS's attributes, only while it is IN PROGRESS; a final
    /// status (COMPLETED, DISCONTINUED) moves its exam on.
    pub fn mpps_set(
        &self,
        uid: &str,
        update: impl FnOnce(&mut MppsAttributes),
        now_unix: i64,
    ) -> WResult<Mpps> {
        let txn = self.begin_write().map_err(index_err)?;
        let mpps = {
            let mut table = txn.open_table(MPPS).map_err(index_err)?;
            let mut mpps: Mpps = match table.get(uid).map_err(index_err)? {
                Some(v) => dec(v.value())?,
                None => return Err(WorklistError::NoSuchMpps(uid.to_owned())),
            };
            if mpps.attrs.status != "IN PROGRESS" {
                return Err(WorklistError::MppsFinal(uid.to_owned(), mpps.attrs.status));
            }
            update(&mut mpps.attrs);
            let to = match mpps.attrs.status.as_str() {
                "IN PROGRESS" => None,
                "COMPLETED" => Some(ExamState::Completed),
                "DISCONTINUED" => Some(ExamState::Discontinued),
                other => return Err(WorklistError::BadStatus(other.to_owned())),
            };
            mpps.updated_unix = now_unix;
            if let Some(to) = to
                && !mpps.exam.is_empty()
            {
                let mut exams = txn.open_table(EXAMS).map_err(index_err)?;
                let found = match exams.get(mpps.exam.as_str()).map_err(index_err)? {
                    Some(v) => Some(dec::<Exam>(v.value())?),
                    None => None,
                };
                if let Some(mut e) = found
                    && e.state == ExamState::InProgress
                    && e.mpps_uid == uid
                {
                    e.state = to;
                    e.updated_unix = now_unix;
                    exams
                        .insert(e.accession.as_str(), enc(&e)?.as_slice())
                        .map_err(index_err)?;
                }
            }
            table
                .insert(uid, enc(&mpps)?.as_slice())
                .map_err(index_err)?;
            mpps
        };
        txn.commit().map_err(index_err)?;
        Ok(mpps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("index.redb")).unwrap();
        (dir, idx)
    }

    fn new_exam(date: &str) -> NewExam {
        NewExam {
            patient_id: "P1".into(),
            patient_name: "Hong^Gildong=洪^吉洞=홍^길동".into(),
            birth_date: "19800101".into(),
            sex: "M".into(),
            procedure_description: "Chest PA".into(),
            modality: "CR".into(),
            date: date.into(),
            time: "0930".into(),
            ..NewExam::default()
        }
    }

    #[test]
    fn accession_numbers_are_generated_unique_and_typed_ones_checked() {
        let (_d, idx) = index();
        let a = idx.schedule_exam(&new_exam("20261205"), 1).unwrap();
        let b = idx.schedule_exam(&new_exam("20261205"), 2).unwrap();
        assert_eq!(a.accession, "A202612050001");
        assert_eq!(b.accession, "A202612050002");
        assert_ne!(a.study_uid, b.study_uid);
        assert!(a.study_uid.starts_with("2.25."));
        assert_eq!(a.time, "093000");
        let mut typed = new_exam("20261205");
        typed.accession = "A202612050003".into();
        idx.schedule_exam(&typed, 3).unwrap();
        // the generator steps over the typed one
        let c = idx.schedule_exam(&new_exam("20261205"), 4).unwrap();
        assert_eq!(c.accession, "A202612050004");
        assert!(matches!(
            idx.schedule_exam(&typed, 5),
            Err(WorklistError::DuplicateAccession(_))
        ));
        let mut bad = new_exam("2026-12-05");
        assert!(matches!(
            idx.schedule_exam(&bad, 6),
            Err(WorklistError::Invalid(_))
        ));
        bad.date = "20261206".into();
        bad.patient_name = "a=b=c=d".into();
        assert!(idx.schedule_exam(&bad, 6).is_err());
        assert_eq!(idx.exams_between("20261205", "20261205").unwrap().len(), 4);
        assert_eq!(idx.exams_between("20261206", "").unwrap().len(), 0);
        assert_eq!(
            idx.exam_of_study(&a.study_uid).unwrap().unwrap().accession,
            a.accession
        );
    }

    fn matching(idx: &Index, keys: &ExamKeys) -> Vec<String> {
        let mut out = Vec::new();
        idx.exams_matching(keys, |e| {
            out.push(e.accession);
            ControlFlow::Continue(())
        })
        .unwrap();
        out.sort();
        out
    }

    #[test]
    fn candidates_come_from_the_indexes_and_old_folders_get_them_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        {
            let idx = Index::open(&path).unwrap();
            for (i, (name, modality, station, date)) in [
                ("Hong^Gildong=洪^吉洞=홍^길동", "CR", "", "20261205"),
                ("Park^Jisung", "US", "US1", "20261205"),
                ("Park^Minji", "CR", "CR1", "20261206"),
            ]
            .into_iter()
            .enumerate()
            {
                let mut n = new_exam(date);
                n.patient_id = format!("P{i}");
                n.patient_name = name.into();
                n.modality = modality.into();
                n.station_ae = station.into();
                n.accession = format!("ACC{i}");
                idx.schedule_exam(&n, 1).unwrap();
            }
            // As a data folder from before the exam indexes: none of them, no version.
            let txn = idx.begin_write().unwrap();
            for t in [
                EXAM_BY_PATIENT,
                EXAM_BY_NAME,
                EXAM_BY_MODALITY,
                EXAM_BY_STATION,
            ] {
                txn.delete_multimap_table(t).unwrap();
            }
            txn.open_table(crate::index::META)
                .unwrap()
                .remove(EXAM_KEY_VERSION)
                .unwrap();
            txn.commit().unwrap();
        }
        let idx = Index::open(&path).unwrap();
        let keys = |f: fn(&mut ExamKeys)| {
            let mut k = ExamKeys::default();
            f(&mut k);
            k
        };
        assert_eq!(
            matching(&idx, &keys(|k| k.patient_id = Some("P1".into()))),
            ["ACC1"]
        );
        assert_eq!(
            matching(&idx, &keys(|k| k.name = Some("park*".into()))),
            ["ACC1", "ACC2"]
        );
        assert_eq!(
            matching(&idx, &keys(|k| k.name = Some("홍*".into()))),
            ["ACC0"]
        );
        assert_eq!(
            matching(&idx, &keys(|k| k.modality = Some("CR".into()))),
            ["ACC0", "ACC2"]
        );
        // any-station exams are every station's
        assert_eq!(
            matching(&idx, &keys(|k| k.station = Some("CR1".into()))),
            ["ACC0", "ACC2"]
        );
        assert_eq!(
            matching(
                &idx,
                &keys(|k| k.dates = Some(("20261206".into(), String::new())))
            ),
            ["ACC2"]
        );
        assert!(
            matching(
                &idx,
                &keys(|k| k.dates = Some(("20261207".into(), "20261201".into())))
            )
            .is_empty()
        );
        // the narrowest key picks the candidates; the others are the caller's to match
        assert_eq!(
            matching(
                &idx,
                &keys(|k| {
                    k.patient_id = Some("P2".into());
                    k.modality = Some("CR".into());
                })
            ),
            ["ACC2"]
        );
        assert_eq!(matching(&idx, &ExamKeys::default()).len(), 3);
        // a new exam is indexed in its own transaction
        let mut n = new_exam("20261207");
        n.patient_id = "P1".into();
        idx.schedule_exam(&n, 2).unwrap();
        assert_eq!(
            matching(&idx, &keys(|k| k.patient_id = Some("P1".into()))).len(),
            2
        );
    }

    #[test]
    fn mpps_moves_the_exam_and_refusals_change_nothing() {
        let (_d, idx) = index();
        let exam = idx.schedule_exam(&new_exam("20261205"), 1).unwrap();
        let attrs = MppsAttributes {
            status: "IN PROGRESS".into(),
            accession: exam.accession.clone(),
            ..MppsAttributes::default()
        };
        let m = idx.mpps_create("1.2.3", "CR1", attrs.clone(), 2).unwrap();
        assert_eq!(m.exam, exam.accession);
        let e = idx.exam(&exam.accession).unwrap().unwrap();
        assert_eq!(e.state, ExamState::InProgress);
        assert!(matches!(
            idx.mpps_create("1.2.3", "CR1", attrs.clone(), 3),
            Err(WorklistError::DuplicateMpps(_))
        ));
        assert!(matches!(
            idx.mpps_set("9.9", |a| a.status = "COMPLETED".into(), 3),
            Err(WorklistError::NoSuchMpps(_))
        ));
        assert!(matches!(
            idx.mpps_set("1.2.3", |a| a.status = "DONE".into(), 3),
            Err(WorklistError::BadStatus(_))
        ));
        assert_eq!(
            idx.exam(&exam.accession).unwrap().unwrap().state,
            ExamState::InProgress
        );
        idx.mpps_set(
            "1.2.3",
            |a| {
                a.status = "COMPLETED".into();
                a.series.push(PerformedSeries {
                    series_uid: "1.2.3.4".into(),
                    images: vec!["1.2.3.4.5".into()],
                    ..PerformedSeries::default()
                });
            },
            4,
        )
        .unwrap();
        assert_eq!(
            idx.exam(&exam.accession).unwrap().unwrap().state,
            ExamState::Completed
        );
        assert!(matches!(
            idx.mpps_set("1.2.3", |a| a.status = "DISCONTINUED".into(), 5),
            Err(WorklistError::MppsFinal(..))
        ));
        assert_eq!(
            idx.exam(&exam.accession).unwrap().unwrap().state,
            ExamState::Completed
        );
        let performed = idx.mpps_of_study(&exam.study_uid).unwrap();
        assert_eq!(performed.len(), 1);
        assert_eq!(performed[0].attrs.series[0].images.len(), 1);
        idx.set_exam_state(&exam.accession, ExamState::Reported, 6)
            .unwrap();
        assert!(
            idx.set_exam_state(&exam.accession, ExamState::Cancelled, 7)
                .is_err()
        );
    }
}
