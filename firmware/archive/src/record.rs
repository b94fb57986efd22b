//! What the index keeps about each patient, study, series and instance, and how those records
//! are made from the raw header of a received dataset.
//!
//! Text is decoded once, here, with our own character-set decoder (pacsbox-charset), so the
//! index, C-FIND and the web page all see the same Unicode; the stored file is never re-encoded.

use pacsbox_charset::{SpecificCharacterSet, TextVr};
use serde::{Deserialize, Serialize};

use crate::scan::{RawHeader, Tag, tags};
use crate::uid::{InvalidUid, Uid};

/// The attributes of one received instance, decoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceAttrs {
    pub sop_class_uid: Uid,
    pub sop_instance_uid: Uid,
    pub study_uid: Uid,
    pub series_uid: Uid,
    /// Raw (0008,0005), kept so C-FIND can say which character set answers came from.
    pub specific_character_set: String,
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub accession_number: String,
    pub referring_physician: String,
    pub study_description: String,
    pub study_id: String,
    pub modality: String,
    pub series_description: String,
    pub series_number: Option<i32>,
    pub body_part: String,
    pub instance_number: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum AttrError {
    #[error("dataset lacks {0}")]
    Missing(&'static str),
    #[error("{0}: {1}")]
    BadUid(&'static str, InvalidUid),
}

impl InstanceAttrs {
    pub fn from_header(h: &RawHeader) -> Result<InstanceAttrs, AttrError> {
        let charset_raw = ascii(h, tags::SPECIFIC_CHARACTER_SET);
        let cs = SpecificCharacterSet::from_value(&charset_raw);
        let uid = |tag: Tag, name: &'static str| -> Result<Uid, AttrError> {
            let raw = h.get(&tag).ok_or(AttrError::Missing(name))?;
            let s = String::from_utf8_lossy(raw);
            if s.trim_end_matches(['\0', ' ']).is_empty() {
                return Err(AttrError::Missing(name));
            }
            Uid::parse(&s).map_err(|e| AttrError::BadUid(name, e))
        };
        let text = |tag: Tag, vr: TextVr| {
            h.get(&tag)
                .map(|b| cs.decode(b, vr).trim().to_owned())
                .unwrap_or_default()
        };
        Ok(InstanceAttrs {
            sop_class_uid: uid(tags::SOP_CLASS_UID, "SOP Class UID (0008,0016)")?,
            sop_instance_uid: uid(tags::SOP_INSTANCE_UID, "SOP Instance UID (0008,0018)")?,
            study_uid: uid(tags::STUDY_INSTANCE_UID, "Study Instance UID (0020,000D)")?,
            series_uid: uid(tags::SERIES_INSTANCE_UID, "Series Instance UID (0020,000E)")?,
            patient_name: text(tags::PATIENT_NAME, TextVr::PersonName),
            patient_id: text(tags::PATIENT_ID, TextVr::ShortText),
            patient_birth_date: ascii(h, tags::PATIENT_BIRTH_DATE),
            patient_sex: ascii(h, tags::PATIENT_SEX),
            study_date: ascii(h, tags::STUDY_DATE),
            study_time: ascii(h, tags::STUDY_TIME),
            accession_number: text(tags::ACCESSION_NUMBER, TextVr::ShortText),
            referring_physician: text(tags::REFERRING_PHYSICIAN_NAME, TextVr::PersonName),
            study_description: text(tags::STUDY_DESCRIPTION, TextVr::ShortText),
            study_id: text(tags::STUDY_ID, TextVr::ShortText),
            modality: ascii(h, tags::MODALITY),
            series_description: text(tags::SERIES_DESCRIPTION, TextVr::ShortText),
            series_number: integer(h, tags::SERIES_NUMBER),
            body_part: ascii(h, tags::BODY_PART_EXAMINED),
            instance_number: integer(h, tags::INSTANCE_NUMBER),
            specific_character_set: charset_raw,
        })
    }
}

/// Values of DA, TM, CS, IS, UI are ASCII by definition (PS3.5 6.2).
fn ascii(h: &RawHeader, tag: Tag) -> String {
    h.get(&tag)
        .map(|b| {
            String::from_utf8_lossy(b)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned()
        })
        .unwrap_or_default()
}

fn integer(h: &RawHeader, tag: Tag) -> Option<i32> {
    ascii(h, tag).split('\\').next()?.trim().parse().ok()
}

/// One indexed instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceRecord {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub instance_number: Option<i32>,
    /// The instance's own Patient's Name (decoded): names change (marriage, corrections) and
    /// each instance keeps what it was sent with.
    pub patient_name: String,
    /// Relative to the data directory, `/`-separated.
    pub rel_path: String,
    pub file_size: u64,
    /// xxh3 of the file as it is on disk (for `verify --checksums`).
    pub file_hash: u64,
    /// xxh3 of the dataset bytes as received (decides "same instance sent again").
    pub dataset_hash: u64,
    pub received_unix: i64,
    pub source_ae: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct SeriesRecord {
    pub study_uid: String,
    pub modality: String,
    pub series_number: Option<i32>,
    pub description: String,
    pub body_part: String,
    pub instances: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct StudyRecord {
    pub patient_key: String,
    pub patient_id: String,
    pub patient_name: String,
    pub study_date: String,
    pub study_time: String,
    pub accession_number: String,
    pub referring_physician: String,
    pub description: String,
    pub study_id: String,
    pub modalities: Vec<String>,
    /// SOP classes of the study's instances (C-FIND's SOPClassesInStudy).
    pub sop_classes: Vec<String>,
    pub specific_character_set: String,
    pub series: u64,
    pub instances: u64,
    pub first_received_unix: i64,
    pub last_received_unix: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct PatientRecord {
    pub patient_id: String,
    pub name: String,
    pub birth_date: String,
    pub sex: String,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
}
