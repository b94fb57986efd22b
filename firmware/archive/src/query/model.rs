//! The query vocabulary: levels, the attributes the index can match and return, matching keys
//! classified as PS3.4 C.2.2.2 does, and the rows a query yields.

use crate::index::IndexError;
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

    pub(super) fn is_person_name(self) -> bool {
        matches!(self, Attr::PatientName | Attr::ReferringPhysicianName)
    }

    pub(super) fn is_multi_valued(self) -> bool {
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
    /// A person-name pattern from the web page's search: like `Wildcard`, and a Latin pattern
    /// also matches a Hangul name through its romanisations (`kim*` finds `김^민수`). C-FIND
    /// never makes one: PS3.4 matches the value itself.
    Romanised(String),
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

    pub(super) fn single(&self) -> Option<&str> {
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

/// One match, with the records of the levels above it (for returning their attributes); the
/// fields of levels below the match are empty. Made by one constructor per level.
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
    /// A PATIENT level match.
    pub(crate) fn patient(key: String, patient: PatientRecord) -> Row {
        Row {
            patient_key: key,
            patient: Some(patient),
            study_uid: String::new(),
            study: None,
            series_uid: String::new(),
            series: None,
            sop_instance_uid: String::new(),
            instance: None,
        }
    }

    /// A STUDY level match, with its patient's record when the index has it.
    pub(crate) fn study(uid: String, study: StudyRecord, patient: Option<PatientRecord>) -> Row {
        Row {
            patient_key: study.patient_key.clone(),
            patient,
            study_uid: uid,
            study: Some(study),
            series_uid: String::new(),
            series: None,
            sop_instance_uid: String::new(),
            instance: None,
        }
    }

    /// A SERIES level match under the study row `study`.
    pub(crate) fn series(study: &Row, uid: String, series: SeriesRecord) -> Row {
        Row {
            series_uid: uid,
            series: Some(series),
            ..study.clone()
        }
    }

    /// An IMAGE level match under the series row `series`.
    pub(crate) fn image(series: &Row, sop_instance_uid: String, instance: InstanceRecord) -> Row {
        Row {
            sop_instance_uid,
            instance: Some(instance),
            ..series.clone()
        }
    }

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
}

/// The attributes the index answers, with their tags and VRs: C-FIND identifiers and QIDO-RS
/// parameters and answers map to them through this one table.
pub const ATTRIBUTE_TAGS: &[(crate::scan::Tag, &[u8; 2], Attr)] = &[
    ((0x0008, 0x0016), b"UI", Attr::SopClassUid),
    ((0x0008, 0x0018), b"UI", Attr::SopInstanceUid),
    ((0x0008, 0x0020), b"DA", Attr::StudyDate),
    ((0x0008, 0x0030), b"TM", Attr::StudyTime),
    ((0x0008, 0x0050), b"SH", Attr::AccessionNumber),
    ((0x0008, 0x0060), b"CS", Attr::Modality),
    ((0x0008, 0x0061), b"CS", Attr::ModalitiesInStudy),
    ((0x0008, 0x0062), b"UI", Attr::SopClassesInStudy),
    ((0x0008, 0x0090), b"PN", Attr::ReferringPhysicianName),
    ((0x0008, 0x1030), b"LO", Attr::StudyDescription),
    ((0x0008, 0x103E), b"LO", Attr::SeriesDescription),
    ((0x0010, 0x0010), b"PN", Attr::PatientName),
    ((0x0010, 0x0020), b"LO", Attr::PatientId),
    ((0x0010, 0x0030), b"DA", Attr::PatientBirthDate),
    ((0x0010, 0x0040), b"CS", Attr::PatientSex),
    ((0x0018, 0x0015), b"CS", Attr::BodyPartExamined),
    ((0x0020, 0x000D), b"UI", Attr::StudyInstanceUid),
    ((0x0020, 0x000E), b"UI", Attr::SeriesInstanceUid),
    ((0x0020, 0x0010), b"SH", Attr::StudyId),
    ((0x0020, 0x0011), b"IS", Attr::SeriesNumber),
    ((0x0020, 0x0013), b"IS", Attr::InstanceNumber),
    ((0x0020, 0x1200), b"IS", Attr::NumberOfPatientRelatedStudies),
    ((0x0020, 0x1202), b"IS", Attr::NumberOfPatientRelatedSeries),
    (
        (0x0020, 0x1204),
        b"IS",
        Attr::NumberOfPatientRelatedInstances,
    ),
    ((0x0020, 0x1206), b"IS", Attr::NumberOfStudyRelatedSeries),
    ((0x0020, 0x1208), b"IS", Attr::NumberOfStudyRelatedInstances),
    (
        (0x0020, 0x1209),
        b"IS",
        Attr::NumberOfSeriesRelatedInstances,
    ),
];

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
}
