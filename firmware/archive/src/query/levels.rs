//! C-FIND per level, hierarchically: candidates from the most selective secondary index the
//! query allows (Study UIDs, Patient ID, Accession Number, Study Date, Patient's Name,
//! Modality), so those queries never walk every record; matches are handed to a callback one
//! at a time, so a query matching 100 000 records streams without building them all in memory.

use std::ops::ControlFlow;

use redb::{ReadTransaction, ReadableTable};

use super::matching::{filter, uids_of};
use super::model::{Attr, Level, Matcher, Query, QueryError, Row};
use crate::index::{
    INSTANCES, Index, PATIENT_STUDIES, PATIENTS, SERIES, SERIES_INSTANCES, STUDIES,
    STUDY_BY_ACCESSION, STUDY_BY_DATE, STUDY_BY_MODALITY, STUDY_SERIES, dec,
};
use crate::record::{PatientRecord, SeriesRecord, StudyRecord};

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

    pub(super) fn patient_rec(
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

    /// The patients a name matcher can match, from the name indexes (None: not a pattern the
    /// indexes answer).
    pub(super) fn patients_named(&self, m: &Matcher) -> Result<Option<Vec<String>>, QueryError> {
        Ok(match m {
            Matcher::Single(n) | Matcher::Wildcard(n) => Some(self.patients_by_name(n)?),
            Matcher::Romanised(n) => {
                let mut keys = self.patients_by_name(n)?;
                let mut seen: std::collections::HashSet<String> = keys.iter().cloned().collect();
                for k in self.patients_by_romanised_name(n)? {
                    if seen.insert(k.clone()) {
                        keys.push(k);
                    }
                }
                Some(keys)
            }
            _ => None,
        })
    }

    fn query_patients(
        &self,
        txn: &ReadTransaction,
        q: &Query,
        emit: &mut impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<(), QueryError> {
        let keys: Option<Vec<String>> =
            if let Some(id) = filter(q, Attr::PatientId).and_then(Matcher::single) {
                Some(vec![id.to_owned()])
            } else if let Some(m) = filter(q, Attr::PatientName)
                && let Some(keys) = self.patients_named(m)?
            {
                Some(keys)
            } else {
                None
            };
        let mut visit = |key: String, rec: PatientRecord| {
            let row = Row::patient(key, rec);
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
    pub(super) fn candidate_studies(
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
        if let Some(m) = filter(q, Attr::PatientName)
            && let Some(patients) = self.patients_named(m)?
        {
            let mut out = Vec::new();
            for key in patients {
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
            let row = Row::study(uid, rec, patient);
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
            let study = Row::study(study_uid.clone(), study, patient);
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
                let row = Row::series(&study, series_uid.to_owned(), dec(sv.value())?);
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
            let study = Row::study(series.study_uid.clone(), study, patient);
            let series = Row::series(&study, series_uid.clone(), series);
            for sop in links.get(series_uid.as_str())? {
                let sop = sop?;
                let sop = sop.value();
                if wanted.as_ref().is_some_and(|w| !w.iter().any(|x| x == sop)) {
                    continue;
                }
                let Some(iv) = instances.get(sop)? else {
                    continue;
                };
                let row = Row::image(&series, sop.to_owned(), dec(iv.value())?);
                if row.matches(&q.filters) && emit(row).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::testing::entry;

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
}
