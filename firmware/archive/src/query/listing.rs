//! What the web page lists of one study: its series and their instances, read straight from
//! the study→series and series→instances links (no query to build, nothing to match).

use redb::{MultimapTableDefinition, TableDefinition};

use crate::index::{
    INSTANCES, Index, IndexError, PATIENT_STUDIES, SERIES, SERIES_INSTANCES, STUDIES, STUDY_SERIES,
    dec,
};
use crate::record::{InstanceRecord, SeriesRecord, StudyRecord};

impl Index {
    /// The series of a study, by series number (then UID); empty for an unknown study.
    pub fn series_of(&self, study_uid: &str) -> Result<Vec<(String, SeriesRecord)>, IndexError> {
        let mut out: Vec<(String, SeriesRecord)> = self.linked(STUDY_SERIES, SERIES, study_uid)?;
        out.sort_by(|a, b| (a.1.series_number, &a.0).cmp(&(b.1.series_number, &b.0)));
        Ok(out)
    }

    /// The instances of a series, by instance number (then SOP Instance UID); empty for an
    /// unknown series.
    pub fn instances_of(
        &self,
        series_uid: &str,
    ) -> Result<Vec<(String, InstanceRecord)>, IndexError> {
        let mut out: Vec<(String, InstanceRecord)> =
            self.linked(SERIES_INSTANCES, INSTANCES, series_uid)?;
        out.sort_by(|a, b| (a.1.instance_number, &a.0).cmp(&(b.1.instance_number, &b.0)));
        Ok(out)
    }

    /// The studies of a patient (key: Patient ID and issuer, as the index files them), newest
    /// first (study date and time, then UID); empty for an unknown patient.
    pub fn studies_of_patient(
        &self,
        patient_key: &str,
    ) -> Result<Vec<(String, StudyRecord)>, IndexError> {
        let mut out: Vec<(String, StudyRecord)> =
            self.linked(PATIENT_STUDIES, STUDIES, patient_key)?;
        out.sort_by(|a, b| {
            (&b.1.study_date, &b.1.study_time, &b.0).cmp(&(&a.1.study_date, &a.1.study_time, &a.0))
        });
        Ok(out)
    }

    /// The records `links` lists under `key`, each with its key in `records`.
    fn linked<T: serde::de::DeserializeOwned>(
        &self,
        links: MultimapTableDefinition<&str, &str>,
        records: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Vec<(String, T)>, IndexError> {
        let txn = self.read()?;
        let links = txn.open_multimap_table(links)?;
        let records = txn.open_table(records)?;
        let mut out = Vec::new();
        for uid in links.get(key)? {
            let uid = uid?;
            if let Some(v) = records.get(uid.value())? {
                out.push((uid.value().to_owned(), dec(v.value())?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::index::Index;
    use crate::query::testing::entry;
    use crate::uid::Uid;

    #[test]
    fn a_study_lists_its_series_and_their_instances_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        // One study, series .2 numbered 1 and series .1 numbered 2, instances numbered 3 and 1.
        let entries: Vec<_> = [(1, 2, 10, Some(3)), (1, 2, 11, Some(1)), (2, 1, 12, None)]
            .into_iter()
            .map(|(series, number, sop, instance)| {
                let mut e = entry(7, "KIM", "20240101");
                e.attrs.series_uid = Uid::parse(&format!("1.2.3.7.{series}")).unwrap();
                e.attrs.series_number = Some(number);
                e.attrs.sop_instance_uid = Uid::parse(&format!("1.2.3.7.{series}.{sop}")).unwrap();
                e.attrs.instance_number = instance;
                e.record.series_uid = e.attrs.series_uid.as_str().to_owned();
                e.record.instance_number = instance;
                e
            })
            .collect();
        index.insert_batch(&entries).unwrap();
        let series: Vec<_> = index.series_of("1.2.3.7").unwrap();
        let uids: Vec<&str> = series.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(uids, ["1.2.3.7.2", "1.2.3.7.1"]);
        let sops: Vec<String> = index
            .instances_of("1.2.3.7.1")
            .unwrap()
            .into_iter()
            .map(|(sop, _)| sop)
            .collect();
        assert_eq!(sops, ["1.2.3.7.1.11", "1.2.3.7.1.10"]);
        assert!(index.series_of("9.9").unwrap().is_empty());
        assert!(index.instances_of("9.9").unwrap().is_empty());
    }

    #[test]
    fn a_patients_studies_are_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let entries: Vec<_> = [
            (1, "20240101"),
            (2, "20250301"),
            (3, "20230615"),
            (4, "20260101"),
        ]
        .into_iter()
        .map(|(i, date)| {
            let mut e = entry(i, "KIM", date);
            // study 4 is another patient's
            e.attrs.patient_id = if i == 4 { "OTHER" } else { "KIM1" }.to_owned();
            e
        })
        .collect();
        index.insert_batch(&entries).unwrap();
        let uids: Vec<String> = index
            .studies_of_patient("KIM1")
            .unwrap()
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        assert_eq!(uids, ["1.2.3.2", "1.2.3.1", "1.2.3.3"]);
        assert!(index.studies_of_patient("NOBODY").unwrap().is_empty());
    }
}
