//! The web's study list: one page of study matches, newest first, with the cost estimate that
//! chooses between sorting the candidates and walking the date index backwards.

use redb::{ReadTransaction, ReadableMultimapTable, ReadableTableMetadata};

use super::matching::{filter, uids_of};
use super::model::{Attr, Matcher, Query, QueryError, Row};
use crate::index::{Index, PATIENTS, STUDIES, STUDY_BY_DATE, dec};
use crate::record::StudyRecord;

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
            let patient = self.patient_rec(&txn, &rec.patient_key)?;
            let row = Row::study(uid.to_owned(), rec, patient);
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
            && let Some(m) = filter(q, Attr::PatientName)
            && let Some(patients) = self.patients_named(m)?
        {
            // A common surname: estimate its studies from its patients instead of listing
            // thousands of them only to walk anyway.
            let patients = patients.len();
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
    use std::ops::ControlFlow;

    use super::*;
    use crate::query::Level;
    use crate::query::testing::entry;

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
