//! Queries over the index for C-FIND and the web search: the matching rules of
//! PS3.4 C.2.2.2 applied to patient, study, series and image records, hierarchically.
//!
//! Candidates come from the most selective secondary index the query allows (Study UIDs,
//! Patient ID, Accession Number, Study Date, Patient's Name, Modality), so those queries never
//! walk every record; matches are handed to a callback one at a time, so a query matching
//! 100 000 records streams without building them all in memory.

use std::ops::ControlFlow;

use redb::{ReadTransaction, ReadableMultimapTable, ReadableTable, ReadableTableMetadata};

use crate::index::{
    INSTANCES, Index, IndexError, PATIENT_STUDIES, PATIENTS, SERIES, SERIES_INSTANCES, STUDIES,
    STUDY_BY_ACCESSION, STUDY_BY_DATE, STUDY_BY_MODALITY, STUDY_SERIES, dec, wildcard_match,
};
use crate::record::{InstanceRecord, PatientRecord, SeriesRecord, StudyRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Patient,
    Study,
    Series,
    Image,
}

/// The attributes the index can match and return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    PatientName,
    PatientId,
    PatientBirthDate,
    PatientSex,
    NumberOfPatientRelatedStudies,
    NumberOfPatientRelatedSeries,
    NumberOfPatientRelatedInstances,
    StudyInstanceUid,
    StudyDate,
    StudyTime,
    AccessionNumber,
    ReferringPhysicianName,
    StudyDescription,
    StudyId,
    ModalitiesInStudy,
    SopClassesInStudy,
    NumberOfStudyRelatedSeries,
    NumberOfStudyRelatedInstances,
    SeriesInstanceUid,
    Modality,
    SeriesNumber,
    SeriesDescription,
    BodyPartExamined,
    NumberOfSeriesRelatedInstances,
    SopInstanceUid,
    SopClassUid,
    InstanceNumber,
}

impl Attr {
    /// The level whose record holds the attribute.
    pub fn level(self) -> Level {
        use Attr::*;
        match self {
            PatientName
            | PatientId
            | PatientBirthDate
            | PatientSex
            | NumberOfPatientRelatedStudies
            | NumberOfPatientRelatedSeries
            | NumberOfPatientRelatedInstances => Level::Patient,
            StudyInstanceUid
            | StudyDate
            | StudyTime
            | AccessionNumber
            | ReferringPhysicianName
            | StudyDescription
            | StudyId
            | ModalitiesInStudy
            | SopClassesInStudy
            | NumberOfStudyRelatedSeries
            | NumberOfStudyRelatedInstances => Level::Study,
            SeriesInstanceUid
            | Modality
            | SeriesNumber
            | SeriesDescription
            | BodyPartExamined
            | NumberOfSeriesRelatedInstances => Level::Series,
            SopInstanceUid | SopClassUid | InstanceNumber => Level::Image,
        }
    }

    fn is_person_name(self) -> bool {
        matches!(self, Attr::PatientName | Attr::ReferringPhysicianName)
    }

    fn is_multi_valued(self) -> bool {
        matches!(self, Attr::ModalitiesInStudy | Attr::SopClassesInStudy)
    }
}

/// A matching key's value, classified as PS3.4 C.2.2.2 does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    Universal,
    Single(String),
    Wildcard(String),
    /// Inclusive; an empty bound is open.
    Range(String, String),
    List(Vec<String>),
}

impl Matcher {
    /// Classifies a decoded request value for an attribute.
    pub fn parse(attr: Attr, value: &str) -> Matcher {
        let v = value.trim();
        if v.is_empty() || v == "*" {
            return Matcher::Universal;
        }
        let is_date_or_time = matches!(
            attr,
            Attr::StudyDate | Attr::StudyTime | Attr::PatientBirthDate
        );
        if is_date_or_time && v.contains('-') {
            let (lo, hi) = v.split_once('-').unwrap_or((v, ""));
            return Matcher::Range(lo.trim().to_owned(), hi.trim().to_owned());
        }
        if matches!(
            attr,
            Attr::StudyInstanceUid
                | Attr::SeriesInstanceUid
                | Attr::SopInstanceUid
                | Attr::SopClassUid
        ) && v.contains('\\')
        {
            return Matcher::List(v.split('\\').map(|u| u.trim().to_owned()).collect());
        }
        if v.contains('*') || v.contains('?') {
            Matcher::Wildcard(v.to_owned())
        } else {
            Matcher::Single(v.to_owned())
        }
    }

    fn single(&self) -> Option<&str> {
        match self {
            Matcher::Single(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Query {
    pub level: Level,
    pub filters: Vec<(Attr, Matcher)>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Index(#[from] IndexError),
    #[error("a {level:?} level query must give {missing} (hierarchical model)")]
    MissingUniqueKey { level: Level, missing: &'static str },
}

impl From<redb::TableError> for QueryError {
    fn from(e: redb::TableError) -> Self {
        QueryError::Index(e.into())
    }
}
impl From<redb::StorageError> for QueryError {
    fn from(e: redb::StorageError) -> Self {
        QueryError::Index(e.into())
    }
}

/// One match, with the records of the levels above it (for returning their attributes).
#[derive(Clone, Debug)]
pub struct Row {
    pub patient_key: String,
    pub patient: Option<PatientRecord>,
    pub study_uid: String,
    pub study: Option<StudyRecord>,
    pub series_uid: String,
    pub series: Option<SeriesRecord>,
    pub sop_instance_uid: String,
    pub instance: Option<InstanceRecord>,
}

impl Row {
    /// The attribute's value as DICOM text (multi-valued joined by `\`), or None when the
    /// row's records do not hold it.
    pub fn value(&self, attr: Attr) -> Option<String> {
        use Attr::*;
        let p = self.patient.as_ref();
        let st = self.study.as_ref();
        let se = self.series.as_ref();
        let i = self.instance.as_ref();
        let num = |n: Option<u64>| n.map(|n| n.to_string());
        Some(match attr {
            PatientName => i
                .map(|i| i.patient_name.clone())
                .or_else(|| st.map(|s| s.patient_name.clone()))
                .or_else(|| p.map(|p| p.name.clone()))?,
            PatientId => p
                .map(|p| p.patient_id.clone())
                .or_else(|| st.map(|s| s.patient_id.clone()))?,
            PatientBirthDate => p?.birth_date.clone(),
            PatientSex => p?.sex.clone(),
            NumberOfPatientRelatedStudies => num(p.map(|p| p.studies))?,
            NumberOfPatientRelatedSeries => num(p.map(|p| p.series))?,
            NumberOfPatientRelatedInstances => num(p.map(|p| p.instances))?,
            StudyInstanceUid => {
                st?;
                self.study_uid.clone()
            }
            StudyDate => st?.study_date.clone(),
            StudyTime => st?.study_time.clone(),
            AccessionNumber => st?.accession_number.clone(),
            ReferringPhysicianName => st?.referring_physician.clone(),
            StudyDescription => st?.description.clone(),
            StudyId => st?.study_id.clone(),
            ModalitiesInStudy => st?.modalities.join("\\"),
            SopClassesInStudy => st?.sop_classes.join("\\"),
            NumberOfStudyRelatedSeries => num(st.map(|s| s.series))?,
            NumberOfStudyRelatedInstances => num(st.map(|s| s.instances))?,
            SeriesInstanceUid => {
                se?;
                self.series_uid.clone()
            }
            Modality => se?.modality.clone(),
            SeriesNumber => se?.series_number.map(|n| n.to_string()).unwrap_or_default(),
            SeriesDescription => se?.description.clone(),
            BodyPartExamined => se?.body_part.clone(),
            NumberOfSeriesRelatedInstances => num(se.map(|s| s.instances))?,
            SopInstanceUid => {
                i?;
                self.sop_instance_uid.clone()
            }
            SopClassUid => i?.sop_class_uid.clone(),
            InstanceNumber => i?
                .instance_number
                .map(|n| n.to_string())
                .unwrap_or_default(),
        })
    }

    fn matches(&self, filters: &[(Attr, Matcher)]) -> bool {
        filters.iter().all(|(attr, m)| {
            if *m == Matcher::Universal {
                return true;
            }
            match self.value(*attr) {
                // a key of a level below the row cannot be matched here: the caller checks
                None => true,
                Some(v) => {
                    if attr.is_multi_valued() {
                        v.split('\\').any(|one| value_matches(*attr, m, one))
                    } else {
                        value_matches(*attr, m, &v)
                    }
                }
            }
        })
    }
}

/// One value against one matcher.
pub fn value_matches(attr: Attr, m: &Matcher, value: &str) -> bool {
    if attr.is_person_name() {
        let pattern = match m {
            Matcher::Universal => return true,
            Matcher::Single(s) | Matcher::Wildcard(s) => s,
            Matcher::Range(..) | Matcher::List(_) => return false,
        };
        // Any component group of the pattern against any of the value's.
        let keys = pacsbox_charset::person_name_search_keys(value);
        return pattern
            .split('=')
            .filter(|g| !g.trim().is_empty())
            .map(pacsbox_charset::normalize_search_text)
            .any(|pat| keys.iter().any(|k| wildcard_match(&pat, k)));
    }
    match m {
        Matcher::Universal => true,
        Matcher::Single(s) => value == s,
        Matcher::Wildcard(p) => wildcard_match(p, value),
        Matcher::Range(lo, hi) => {
            !value.is_empty()
                && (lo.is_empty() || value >= lo.as_str())
                && (hi.is_empty() || value <= hi.as_str())
        }
        Matcher::List(list) => list.iter().any(|u| u == value),
    }
}

fn filter(q: &Query, attr: Attr) -> Option<&Matcher> {
    q.filters
        .iter()
        .find(|(a, m)| *a == attr && *m != Matcher::Universal)
        .map(|(_, m)| m)
}

fn uids_of(m: Option<&Matcher>) -> Option<Vec<String>> {
    match m? {
        Matcher::Single(s) => Some(vec![s.clone()]),
        Matcher::List(l) => Some(l.clone()),
        _ => None,
    }
}

impl Index {
    /// Runs `q`, calling `emit` for each match until it returns `Break`.
    pub fn query(
        &self,
        q: &Query,
        mut emit: impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<(), QueryError> {
        let txn = self.read()?;
        match q.level {
            Level::Patient => self.query_patients(&txn, q, &mut emit),
            Level::Study => self.query_studies(&txn, q, &mut emit).map(|_| ()),
            Level::Series => {
                let studies = uids_of(filter(q, Attr::StudyInstanceUid)).ok_or(
                    QueryError::MissingUniqueKey {
                        level: Level::Series,
                        missing: "Study Instance UID",
                    },
                )?;
                self.query_series(&txn, q, &studies, &mut emit).map(|_| ())
            }
            Level::Image => {
                let series = uids_of(filter(q, Attr::SeriesInstanceUid)).ok_or(
                    QueryError::MissingUniqueKey {
                        level: Level::Image,
                        missing: "Series Instance UID",
                    },
                )?;
                self.query_images(&txn, q, &series, &mut emit).map(|_| ())
            }
        }
    }

    fn patient_rec(
        &self,
        txn: &ReadTransaction,
        key: &str,
    ) -> Result<Option<PatientRecord>, QueryError> {
        let t = txn.open_table(PATIENTS)?;
        Ok(match t.get(key)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    fn query_patients(
        &self,
        txn: &ReadTransaction,
        q: &Query,
        emit: &mut impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<(), QueryError> {
        let keys: Option<Vec<String>> = if let Some(id) =
            filter(q, Attr::PatientId).and_then(Matcher::single)
        {
            Some(vec![id.to_owned()])
        } else if let Some(Matcher::Single(n) | Matcher::Wildcard(n)) = filter(q, Attr::PatientName)
        {
            Some(self.patients_by_name(n)?)
        } else {
            None
        };
        let mut visit = |key: String, rec: PatientRecord| {
            let row = Row {
                patient_key: key,
                patient: Some(rec),
                study_uid: String::new(),
                study: None,
                series_uid: String::new(),
                series: None,
                sop_instance_uid: String::new(),
                instance: None,
            };
            if row.matches(&q.filters) {
                emit(row)
            } else {
                ControlFlow::Continue(())
            }
        };
        match keys {
            Some(keys) => {
                for k in keys {
                    if let Some(rec) = self.patient_rec(txn, &k)?
                        && visit(k, rec).is_break()
                    {
                        break;
                    }
                }
            }
            None => {
                let t = txn.open_table(PATIENTS)?;
                for r in t.iter()? {
                    let (k, v) = r?;
                    if visit(k.value().to_owned(), dec(v.value())?).is_break() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Candidate study UIDs from the most selective index; None means "all studies".
    fn candidate_studies(
        &self,
        txn: &ReadTransaction,
        q: &Query,
    ) -> Result<Option<Vec<String>>, QueryError> {
        let multimap = |def: redb::MultimapTableDefinition<&str, &str>,
                        key: &str|
         -> Result<Vec<String>, QueryError> {
            let t = txn.open_multimap_table(def)?;
            let mut out = Vec::new();
            for v in t.get(key)? {
                out.push(v?.value().to_owned());
            }
            Ok(out)
        };
        if let Some(uids) = uids_of(filter(q, Attr::StudyInstanceUid)) {
            return Ok(Some(uids));
        }
        if let Some(id) = filter(q, Attr::PatientId).and_then(Matcher::single) {
            return Ok(Some(multimap(PATIENT_STUDIES, id)?));
        }
        if let Some(acc) = filter(q, Attr::AccessionNumber).and_then(Matcher::single) {
            return Ok(Some(multimap(STUDY_BY_ACCESSION, acc)?));
        }
        if let Some(m @ (Matcher::Single(_) | Matcher::Range(..))) = filter(q, Attr::StudyDate) {
            let (lo, hi) = match m {
                Matcher::Single(d) => (d.clone(), d.clone()),
                Matcher::Range(lo, hi) => (lo.clone(), hi.clone()),
                _ => (String::new(), String::new()),
            };
            let t = txn.open_multimap_table(STUDY_BY_DATE)?;
            let mut out = Vec::new();
            // Studies without a date are stored under "": never in a range.
            let lo = if lo.is_empty() { "0".to_owned() } else { lo };
            for r in t.range(lo.as_str()..)? {
                let (k, vals) = r?;
                if !hi.is_empty() && k.value() > hi.as_str() {
                    break;
                }
                for v in vals {
                    out.push(v?.value().to_owned());
                }
            }
            return Ok(Some(out));
        }
        if let Some(Matcher::Single(n) | Matcher::Wildcard(n)) = filter(q, Attr::PatientName) {
            let mut out = Vec::new();
            for key in self.patients_by_name(n)? {
                out.extend(multimap(PATIENT_STUDIES, &key)?);
            }
            return Ok(Some(out));
        }
        if let Some(m) = filter(q, Attr::ModalitiesInStudy).and_then(Matcher::single) {
            return Ok(Some(multimap(STUDY_BY_MODALITY, m)?));
        }
        Ok(None)
    }

    fn query_studies(
        &self,
        txn: &ReadTransaction,
        q: &Query,
        emit: &mut impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, QueryError> {
        let studies = txn.open_table(STUDIES)?;
        let mut visit = |uid: String, rec: StudyRecord| -> Result<ControlFlow<()>, QueryError> {
            let patient = self.patient_rec(txn, &rec.patient_key)?;
            let row = Row {
                patient_key: rec.patient_key.clone(),
                patient,
                study_uid: uid,
                study: Some(rec),
                series_uid: String::new(),
                series: None,
                sop_instance_uid: String::new(),
                instance: None,
            };
            Ok(if row.matches(&q.filters) {
                emit(row)
            } else {
                ControlFlow::Continue(())
            })
        };
        match self.candidate_studies(txn, q)? {
            Some(mut uids) => {
                uids.sort();
                uids.dedup();
                for uid in uids {
                    let rec = match studies.get(uid.as_str())? {
                        Some(v) => dec::<StudyRecord>(v.value())?,
                        None => continue,
                    };
                    if visit(uid, rec)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
            None => {
                for r in studies.iter()? {
                    let (k, v) = r?;
                    if visit(k.value().to_owned(), dec(v.value())?)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    fn query_series(
        &self,
        txn: &ReadTransaction,
        q: &Query,
        study_uids: &[String],
        emit: &mut impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, QueryError> {
        let studies = txn.open_table(STUDIES)?;
        let series_t = txn.open_table(SERIES)?;
        let links = txn.open_multimap_table(STUDY_SERIES)?;
        let wanted_series = uids_of(filter(q, Attr::SeriesInstanceUid));
        for study_uid in study_uids {
            let Some(v) = studies.get(study_uid.as_str())? else {
                continue;
            };
            let study: StudyRecord = dec(v.value())?;
            let patient = self.patient_rec(txn, &study.patient_key)?;
            for s in links.get(study_uid.as_str())? {
                let s = s?;
                let series_uid = s.value();
                if wanted_series
                    .as_ref()
                    .is_some_and(|w| !w.iter().any(|x| x == series_uid))
                {
                    continue;
                }
                let Some(sv) = series_t.get(series_uid)? else {
                    continue;
                };
                let row = Row {
                    patient_key: study.patient_key.clone(),
                    patient: patient.clone(),
                    study_uid: study_uid.clone(),
                    study: Some(study.clone()),
                    series_uid: series_uid.to_owned(),
                    series: Some(dec(sv.value())?),
                    sop_instance_uid: String::new(),
                    instance: None,
                };
                if row.matches(&q.filters) && emit(row).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    fn query_images(
        &self,
        txn: &ReadTransaction,
        q: &Query,
        series_uids: &[String],
        emit: &mut impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, QueryError> {
        let studies = txn.open_table(STUDIES)?;
        let series_t = txn.open_table(SERIES)?;
        let links = txn.open_multimap_table(SERIES_INSTANCES)?;
        let instances = txn.open_table(INSTANCES)?;
        let wanted = uids_of(filter(q, Attr::SopInstanceUid));
        for series_uid in series_uids {
            let Some(sv) = series_t.get(series_uid.as_str())? else {
                continue;
            };
            let series: SeriesRecord = dec(sv.value())?;
            let Some(stv) = studies.get(series.study_uid.as_str())? else {
                continue;
            };
            let study: StudyRecord = dec(stv.value())?;
            let patient = self.patient_rec(txn, &study.patient_key)?;
            for sop in links.get(series_uid.as_str())? {
                let sop = sop?;
                let sop = sop.value();
                if wanted.as_ref().is_some_and(|w| !w.iter().any(|x| x == sop)) {
                    continue;
                }
                let Some(iv) = instances.get(sop)? else {
                    continue;
                };
                let row = Row {
                    patient_key: study.patient_key.clone(),
                    patient: patient.clone(),
                    study_uid: series.study_uid.clone(),
                    study: Some(study.clone()),
                    series_uid: series_uid.clone(),
                    series: Some(series.clone()),
                    sop_instance_uid: sop.to_owned(),
                    instance: Some(dec(iv.value())?),
                };
                if row.matches(&q.filters) && emit(row).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

impl Index {
    /// Every instance under the matches of `q` (C-MOVE / C-GET): a STUDY match brings its
    /// series' instances, a SERIES match its instances.
    pub fn retrieve_set(&self, q: &Query) -> Result<Vec<(String, InstanceRecord)>, QueryError> {
        let mut rows = Vec::new();
        self.query(q, |row| {
            rows.push(row);
            ControlFlow::Continue(())
        })?;
        let txn = self.read()?;
        let study_series = txn.open_multimap_table(STUDY_SERIES)?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let instances = txn.open_table(INSTANCES)?;
        let patient_studies = txn.open_multimap_table(PATIENT_STUDIES)?;
        let mut sops: Vec<String> = Vec::new();
        let add_series = |series_uid: &str, sops: &mut Vec<String>| -> Result<(), QueryError> {
            for s in series_instances.get(series_uid)? {
                sops.push(s?.value().to_owned());
            }
            Ok(())
        };
        for row in rows {
            match q.level {
                Level::Image => sops.push(row.sop_instance_uid),
                Level::Series => add_series(&row.series_uid, &mut sops)?,
                Level::Study | Level::Patient => {
                    let studies: Vec<String> = if q.level == Level::Patient {
                        let mut v = Vec::new();
                        for s in patient_studies.get(row.patient_key.as_str())? {
                            v.push(s?.value().to_owned());
                        }
                        v
                    } else {
                        vec![row.study_uid]
                    };
                    for study in studies {
                        for series in study_series.get(study.as_str())? {
                            add_series(series?.value(), &mut sops)?;
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(sops.len());
        for sop in sops {
            if let Some(v) = instances.get(sop.as_str())? {
                out.push((sop, dec(v.value())?));
            }
        }
        Ok(out)
    }
}

/// One page of a study search, newest first.
#[derive(Clone, Debug, Default)]
pub struct StudyPage {
    pub rows: Vec<Row>,
    /// More matches follow this page.
    pub more: bool,
}

impl Index {
    /// Study-level matches of `q`, newest first (study date, then time), `limit` of them
    /// after skipping `offset`. A query with a selective key (patient ID, accession, date,
    /// name, modality) sorts its candidates; one without walks the date index backwards and
    /// stops after the page, so "everything, newest first" costs one page, not the archive.
    pub fn study_page(
        &self,
        q: &Query,
        offset: usize,
        limit: usize,
    ) -> Result<StudyPage, QueryError> {
        let txn = self.read()?;
        let studies = txn.open_table(STUDIES)?;
        let load = |uid: &str| -> Result<Option<Row>, QueryError> {
            let Some(v) = studies.get(uid)? else {
                return Ok(None);
            };
            let rec: StudyRecord = dec(v.value())?;
            let row = Row {
                patient_key: rec.patient_key.clone(),
                patient: self.patient_rec(&txn, &rec.patient_key)?,
                study_uid: uid.to_owned(),
                study: Some(rec),
                series_uid: String::new(),
                series: None,
                sop_instance_uid: String::new(),
                instance: None,
            };
            Ok(row.matches(&q.filters).then_some(row))
        };
        fn key(r: &Row) -> Option<(&str, &str)> {
            r.study
                .as_ref()
                .map(|s| (s.study_date.as_str(), s.study_time.as_str()))
        }
        let newest_first = |a: &Row, b: &Row| {
            key(b)
                .cmp(&key(a))
                .then_with(|| a.study_uid.cmp(&b.study_uid))
        };
        let want = offset.saturating_add(limit);
        let total = usize::try_from(studies.len()?).unwrap_or(usize::MAX);
        // Walking the date index backwards finds the newest page after about
        // want × total / matches studies; sorting costs every match. Choose the cheaper.
        let walk_is_cheaper =
            |matches: usize| want.saturating_mul(total) / matches.max(1) < matches;
        if self.name_is_the_best_key(q)
            && let Some(Matcher::Single(n) | Matcher::Wildcard(n)) = filter(q, Attr::PatientName)
        {
            // A common surname: estimate its studies from its patients instead of listing
            // thousands of them only to walk anyway.
            let patients = self.patients_by_name(n)?.len();
            let all_patients = usize::try_from(txn.open_table(PATIENTS)?.len()?).unwrap_or(1);
            let estimate = patients.saturating_mul(total) / all_patients.max(1);
            if walk_is_cheaper(estimate) {
                return self.walk_dates(&txn, q, offset, want, &load, newest_first);
            }
        }
        if let Some(mut uids) = self.candidate_studies(&txn, q)? {
            uids.sort();
            uids.dedup();
            if !walk_is_cheaper(uids.len()) {
                let mut rows = Vec::new();
                for uid in &uids {
                    if let Some(row) = load(uid)? {
                        rows.push(row);
                    }
                }
                rows.sort_by(newest_first);
                let more = rows.len() > want;
                let rows = rows.into_iter().skip(offset).take(limit).collect();
                return Ok(StudyPage { rows, more });
            }
        }
        self.walk_dates(&txn, q, offset, want, &load, newest_first)
    }

    /// Whether the patient name is the key `candidate_studies` would use (no more selective
    /// one is given).
    fn name_is_the_best_key(&self, q: &Query) -> bool {
        uids_of(filter(q, Attr::StudyInstanceUid)).is_none()
            && filter(q, Attr::PatientId)
                .and_then(Matcher::single)
                .is_none()
            && filter(q, Attr::AccessionNumber)
                .and_then(Matcher::single)
                .is_none()
            && !matches!(
                filter(q, Attr::StudyDate),
                Some(Matcher::Single(_) | Matcher::Range(..))
            )
    }

    /// The page found by walking the date index from the newest day down.
    fn walk_dates(
        &self,
        txn: &ReadTransaction,
        q: &Query,
        offset: usize,
        want: usize,
        load: &dyn Fn(&str) -> Result<Option<Row>, QueryError>,
        newest_first: impl Fn(&Row, &Row) -> std::cmp::Ordering,
    ) -> Result<StudyPage, QueryError> {
        let by_date = txn.open_multimap_table(STUDY_BY_DATE)?;
        let mut page = StudyPage::default();
        let mut seen = 0usize;
        // A date range bounds the walk: start at its newest day, stop at its oldest.
        let days = match filter(q, Attr::StudyDate) {
            Some(Matcher::Single(d)) => by_date.range(d.as_str()..=d.as_str())?,
            Some(Matcher::Range(lo, hi)) => {
                // Studies without a date are stored under "": never in a range.
                let lo = if lo.is_empty() { "0" } else { lo.as_str() };
                if hi.is_empty() {
                    by_date.range(lo..)?
                } else if lo > hi.as_str() {
                    return Ok(page);
                } else {
                    by_date.range(lo..=hi.as_str())?
                }
            }
            _ => by_date.iter()?,
        };
        for r in days.rev() {
            let (_, uids) = r?;
            let mut day = Vec::new();
            for uid in uids {
                if let Some(row) = load(uid?.value())? {
                    day.push(row);
                }
            }
            day.sort_by(&newest_first);
            for row in day {
                if seen >= want {
                    page.more = true;
                    return Ok(page);
                }
                if seen >= offset {
                    page.rows.push(row);
                }
                seen += 1;
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_classification() {
        assert_eq!(
            Matcher::parse(Attr::StudyDate, "20240101-"),
            Matcher::Range("20240101".into(), String::new())
        );
        assert_eq!(
            Matcher::parse(Attr::StudyDate, "-20240131"),
            Matcher::Range(String::new(), "20240131".into())
        );
        assert_eq!(Matcher::parse(Attr::PatientName, ""), Matcher::Universal);
        assert_eq!(
            Matcher::parse(Attr::PatientName, "kim*"),
            Matcher::Wildcard("kim*".into())
        );
        assert_eq!(
            Matcher::parse(Attr::StudyInstanceUid, "1.2\\1.3"),
            Matcher::List(vec!["1.2".into(), "1.3".into()])
        );
    }

    #[test]
    fn person_names_match_case_insensitively_by_any_group() {
        let m = Matcher::parse(Attr::PatientName, "kim*");
        assert!(value_matches(Attr::PatientName, &m, "KIM^MINSU"));
        assert!(!value_matches(Attr::PatientName, &m, "LEE^KIM"));
        let m = Matcher::parse(Attr::PatientName, "홍길동");
        assert!(value_matches(
            Attr::PatientName,
            &m,
            "Hong^Gildong=洪^吉洞=홍^길동"
        ));
        let m = Matcher::parse(Attr::PatientName, "DOE^J*");
        assert!(value_matches(Attr::PatientName, &m, "DOE^JOHN"));
        let r = Matcher::parse(Attr::StudyDate, "20240101-20240131");
        assert!(value_matches(Attr::StudyDate, &r, "20240115"));
        assert!(!value_matches(Attr::StudyDate, &r, "20240201"));
        assert!(!value_matches(Attr::StudyDate, &r, ""));
    }

    #[test]
    fn person_names_match_by_unicode_case_folding() {
        for (pattern, value) in [
            ("äneas*", "Äneas^Rüdiger"),
            ("ÄNEAS^RÜDIGER", "Äneas^Rüdiger"),
            ("ΔΙΟΝΥΣΙΟΣ", "Διονυσιος"),
            ("διον*", "Διονυσιος"),
            ("люк*", "Люкceмбypг"),
            ("ЛЮК*", "Люкceмбypг"),
            ("strauss^j*", "Strauß^Johann"),
        ] {
            let m = Matcher::parse(Attr::PatientName, pattern);
            assert!(
                value_matches(Attr::PatientName, &m, value),
                "{pattern} {value}"
            );
        }
        let m = Matcher::parse(Attr::PatientName, "äneas*");
        assert!(!value_matches(Attr::PatientName, &m, "Aneas^Rudiger"));
    }

    fn names_found(index: &Index, pattern: &str) -> Vec<String> {
        let q = Query {
            level: Level::Study,
            filters: vec![(
                Attr::PatientName,
                Matcher::parse(Attr::PatientName, pattern),
            )],
        };
        let mut found = Vec::new();
        index
            .query(&q, |r| {
                found.push(r.study.unwrap().patient_name);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(
            found.len(),
            index.patients_by_name(pattern).unwrap().len(),
            "{pattern}: the name index and the query disagree"
        );
        found
    }

    /// An index whose name keys were made by the ASCII-only upper-casing of earlier versions
    /// is rebuilt when opened, so upgraded appliances find names by any case at once.
    #[test]
    fn name_keys_of_an_older_index_are_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let names = ["Äneas^Rüdiger", "Διονυσιος", "Люкceмбypг", "DOE^JOHN"];
        {
            let index = Index::open(&path).unwrap();
            let entries: Vec<_> = (0..4u32)
                .map(|i| entry(i, names[i as usize], "20240101"))
                .collect();
            index.insert_batch(&entries).unwrap();
            // Turn it into what the old code wrote: keys NFC with ASCII upper-cased, no version.
            let txn = index.begin_write().unwrap();
            txn.delete_multimap_table(crate::index::PATIENT_BY_NAME)
                .unwrap();
            txn.delete_table(crate::index::META).unwrap();
            {
                let mut t = txn
                    .open_multimap_table(crate::index::PATIENT_BY_NAME)
                    .unwrap();
                for (i, e) in entries.iter().enumerate() {
                    let old: String = e
                        .attrs
                        .patient_name
                        .chars()
                        .filter(|&c| c != '^' && c != ' ')
                        .map(|c| c.to_ascii_uppercase())
                        .collect();
                    t.insert(old.as_str(), format!("P{i}").as_str()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let index = Index::open(&path).unwrap();
        for (pattern, name) in [
            ("äneas*", names[0]),
            ("ÄNEAS^RÜDIGER^P0", names[0]),
            ("ΔΙΟΝΥΣΙΟΣ*", names[1]),
            ("люк*", names[2]),
            ("doe^john*", names[3]),
        ] {
            assert_eq!(
                names_found(&index, pattern),
                [format!(
                    "{name}^P{}",
                    names.iter().position(|n| *n == name).unwrap()
                )],
                "{pattern}"
            );
        }
    }

    fn entry(i: u32, surname: &str, date: &str) -> crate::index::IndexEntry {
        use crate::record::{InstanceAttrs, InstanceRecord};
        use crate::uid::Uid;
        let u = |s: String| Uid::parse(&s).unwrap();
        let attrs = InstanceAttrs {
            sop_class_uid: u("1.2.840.10008.5.1.4.1.1.2".into()),
            sop_instance_uid: u(format!("1.2.3.{i}.1.1")),
            study_uid: u(format!("1.2.3.{i}")),
            series_uid: u(format!("1.2.3.{i}.1")),
            specific_character_set: String::new(),
            patient_name: format!("{surname}^P{i}"),
            patient_id: format!("P{i}"),
            patient_birth_date: String::new(),
            patient_sex: String::new(),
            study_date: date.into(),
            study_time: format!("{:06}", i % 240000),
            accession_number: String::new(),
            referring_physician: String::new(),
            study_description: String::new(),
            study_id: String::new(),
            modality: if i.is_multiple_of(3) { "MR" } else { "CT" }.into(),
            series_description: String::new(),
            series_number: None,
            body_part: String::new(),
            instance_number: None,
        };
        let record = InstanceRecord {
            study_uid: format!("1.2.3.{i}"),
            series_uid: format!("1.2.3.{i}.1"),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            instance_number: None,
            patient_name: attrs.patient_name.clone(),
            rel_path: format!("x/{i}.dcm"),
            file_size: 4,
            file_hash: 0,
            dataset_hash: 0,
            received_unix: 0,
            source_ae: "CT".into(),
        };
        crate::index::IndexEntry { attrs, record }
    }

    /// Both strategies of `study_page` (sorting candidates, walking dates backwards) give what
    /// a brute-force filter and sort gives, page by page.
    #[test]
    fn study_pages_equal_a_full_sort() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let surnames = ["KIM", "LEE", "PARK", "KANG"];
        let entries: Vec<_> = (0..400u32)
            .map(|i| {
                let date = if i.is_multiple_of(7) {
                    String::new()
                } else {
                    format!("2024{:02}{:02}", 1 + i % 12, 1 + (i * 7) % 28)
                };
                entry(i, surnames[(i % 4) as usize], &date)
            })
            .collect();
        index.insert_batch(&entries).unwrap();
        let queries = [
            vec![],
            vec![(Attr::PatientName, Matcher::Wildcard("KIM*".into()))],
            vec![(Attr::PatientName, Matcher::Wildcard("K*".into()))],
            vec![(Attr::ModalitiesInStudy, Matcher::Single("MR".into()))],
            vec![(Attr::PatientId, Matcher::Single("P17".into()))],
            vec![(
                Attr::StudyDate,
                Matcher::Range("20240301".into(), "20240630".into()),
            )],
        ];
        for filters in queries {
            let q = Query {
                level: Level::Study,
                filters: filters.clone(),
            };
            let mut all = Vec::new();
            index
                .query(&q, |r| {
                    all.push(r);
                    ControlFlow::Continue(())
                })
                .unwrap();
            let key = |r: &Row| {
                let s = r.study.as_ref().unwrap();
                (s.study_date.clone(), s.study_time.clone())
            };
            all.sort_by(|a, b| {
                key(b)
                    .cmp(&key(a))
                    .then_with(|| a.study_uid.cmp(&b.study_uid))
            });
            let expected: Vec<String> = all.iter().map(|r| r.study_uid.clone()).collect();
            for (offset, limit) in [(0, 10), (10, 25), (90, 50), (0, 1000)] {
                let page = index.study_page(&q, offset, limit).unwrap();
                let got: Vec<String> = page.rows.iter().map(|r| r.study_uid.clone()).collect();
                let want: Vec<String> = expected.iter().skip(offset).take(limit).cloned().collect();
                assert_eq!(got, want, "{filters:?} at {offset}+{limit}");
                assert_eq!(page.more, expected.len() > offset + limit, "{filters:?}");
            }
        }
    }
}
