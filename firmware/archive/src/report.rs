//! The physician's report of a study: drafts in redb (table `report_drafts`, one per study,
//! never in the study itself), and each signed version as a DICOM Basic Text SR instance
//! (PS3.3 A.35.1) filed in the study through [`Archive::begin_store`] — so it is indexed,
//! found, retrieved, exported and forwarded like any image. An amendment is a new SR whose
//! Predecessor Documents Sequence names the version before; every version stays.
//!
//! Text is written as ISO_IR 192 (UTF-8), so Korean findings and names need no code
//! extensions. "Reported" ([`Archive::report_state`]) means the study holds a Basic Text SR
//! that is COMPLETE and VERIFIED, whoever made it.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::index::{IndexError, dec, enc};
use crate::{Archive, InstanceRecord, StoreError, StoreRequest, transfer_syntax};

pub(crate) const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("report_drafts");

/// Basic Text SR Storage.
pub const BASIC_TEXT_SR: &str = "1.2.840.10008.5.1.4.1.1.88.11";
/// Source AE recorded for the reports this box writes.
pub const REPORT_AE: &str = "PACSBOX-REPORT";
/// Characters a report may hold (findings and impression together).
pub const MAX_TEXT: usize = 100_000;

/// The report's two free-text sections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportText {
    pub findings: String,
    pub impression: String,
}

impl ReportText {
    /// Control characters other than line breaks and tabs removed (UT allows those only),
    /// surrounding blank space trimmed.
    pub fn cleaned(findings: &str, impression: &str) -> ReportText {
        let clean = |s: &str| {
            s.chars()
                .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                .collect::<String>()
                .trim()
                .to_owned()
        };
        ReportText {
            findings: clean(findings),
            impression: clean(impression),
        }
    }

    fn check(&self) -> Result<(), ReportError> {
        if self.findings.is_empty() && self.impression.is_empty() {
            return Err(ReportError::Empty);
        }
        if self.findings.chars().count() + self.impression.chars().count() > MAX_TEXT {
            return Err(ReportError::TooLong);
        }
        Ok(())
    }
}

/// A saved, unsigned report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub text: ReportText,
    /// The web user who saved it last.
    pub author: String,
    pub saved_unix: i64,
}

/// One signed version, as read back from its SR instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportVersion {
    pub sop_uid: String,
    pub series_uid: String,
    /// Content Date and Time, `YYYY-MM-DD HH:MM`.
    pub when: String,
    pub observer: String,
    pub verified: bool,
    pub text: ReportText,
    /// The SOP Instance UID of the version it amends.
    pub predecessor: Option<String>,
}

/// Where a study's report stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportState {
    None,
    /// A draft is saved, nothing signed yet.
    Draft,
    /// A signed (verified, complete) report is in the study.
    Reported,
}

impl ReportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::None => "",
            ReportState::Draft => "draft",
            ReportState::Reported => "reported",
        }
    }
}

/// A signed version just stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub sop_uid: String,
    pub series_uid: String,
    /// The version it amends (None: the first report).
    pub amends: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no such study")]
    NoStudy,
    #[error("the report is empty: write findings or an impression")]
    Empty,
    #[error("the report is longer than {MAX_TEXT} characters")]
    TooLong,
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("storing the report: {0}")]
    Store(#[from] StoreError),
    #[error("encoding the report: {0}")]
    Encode(String),
}

const TITLE: (&str, &str, &str) = ("18748-4", "LN", "Diagnostic Imaging Report");
const FINDINGS: (&str, &str, &str) = ("121071", "DCM", "Finding");
const IMPRESSION: (&str, &str, &str) = ("121073", "DCM", "Impression");

pub(crate) mod tag {
    use dicom_core::Tag;
    pub const SPECIFIC_CHARACTER_SET: Tag = Tag(0x0008, 0x0005);
    pub const INSTANCE_CREATION_DATE: Tag = Tag(0x0008, 0x0012);
    pub const INSTANCE_CREATION_TIME: Tag = Tag(0x0008, 0x0013);
    pub const SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
    pub const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
    pub const STUDY_DATE: Tag = Tag(0x0008, 0x0020);
    pub const CONTENT_DATE: Tag = Tag(0x0008, 0x0023);
    pub const STUDY_TIME: Tag = Tag(0x0008, 0x0030);
    pub const CONTENT_TIME: Tag = Tag(0x0008, 0x0033);
    pub const ACCESSION_NUMBER: Tag = Tag(0x0008, 0x0050);
    pub const MODALITY: Tag = Tag(0x0008, 0x0060);
    pub const MANUFACTURER: Tag = Tag(0x0008, 0x0070);
    pub const REFERRING_PHYSICIAN: Tag = Tag(0x0008, 0x0090);
    pub const CODE_VALUE: Tag = Tag(0x0008, 0x0100);
    pub const CODING_SCHEME: Tag = Tag(0x0008, 0x0102);
    pub const CODE_MEANING: Tag = Tag(0x0008, 0x0104);
    pub const TIMEZONE_OFFSET: Tag = Tag(0x0008, 0x0201);
    pub const STUDY_DESCRIPTION: Tag = Tag(0x0008, 0x1030);
    pub const SERIES_DESCRIPTION: Tag = Tag(0x0008, 0x103E);
    pub const REFERENCED_PPS_SEQUENCE: Tag = Tag(0x0008, 0x1111);
    pub const REFERENCED_SERIES_SEQUENCE: Tag = Tag(0x0008, 0x1115);
    pub const REFERENCED_SOP_CLASS_UID: Tag = Tag(0x0008, 0x1150);
    pub const REFERENCED_SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x1155);
    pub const REFERENCED_SOP_SEQUENCE: Tag = Tag(0x0008, 0x1199);
    pub const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
    pub const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
    pub const PATIENT_BIRTH_DATE: Tag = Tag(0x0010, 0x0030);
    pub const PATIENT_SEX: Tag = Tag(0x0010, 0x0040);
    pub const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000D);
    pub const SERIES_INSTANCE_UID: Tag = Tag(0x0020, 0x000E);
    pub const STUDY_ID: Tag = Tag(0x0020, 0x0010);
    pub const SERIES_NUMBER: Tag = Tag(0x0020, 0x0011);
    pub const INSTANCE_NUMBER: Tag = Tag(0x0020, 0x0013);
    pub const RELATIONSHIP_TYPE: Tag = Tag(0x0040, 0xA010);
    pub const VERIFYING_ORGANIZATION: Tag = Tag(0x0040, 0xA027);
    pub const VERIFICATION_DATETIME: Tag = Tag(0x0040, 0xA030);
    pub const VALUE_TYPE: Tag = Tag(0x0040, 0xA040);
    pub const CONCEPT_NAME_CODE_SEQUENCE: Tag = Tag(0x0040, 0xA043);
    pub const CONTINUITY_OF_CONTENT: Tag = Tag(0x0040, 0xA050);
    pub const VERIFYING_OBSERVER_SEQUENCE: Tag = Tag(0x0040, 0xA073);
    pub const VERIFYING_OBSERVER_NAME: Tag = Tag(0x0040, 0xA075);
    pub const VERIFYING_OBSERVER_ID_CODE_SEQUENCE: Tag = Tag(0x0040, 0xA088);
    pub const TEXT_VALUE: Tag = Tag(0x0040, 0xA160);
    pub const PREDECESSOR_DOCUMENTS_SEQUENCE: Tag = Tag(0x0040, 0xA360);
    pub const PERFORMED_PROCEDURE_CODE_SEQUENCE: Tag = Tag(0x0040, 0xA372);
    pub const COMPLETION_FLAG: Tag = Tag(0x0040, 0xA491);
    pub const VERIFICATION_FLAG: Tag = Tag(0x0040, 0xA493);
    pub const CONTENT_SEQUENCE: Tag = Tag(0x0040, 0xA730);
}

pub(crate) fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

pub(crate) fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

pub(crate) fn code(c: (&str, &str, &str)) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tag::CODE_VALUE, VR::SH, c.0);
    put(&mut item, tag::CODING_SCHEME, VR::SH, c.1);
    put(&mut item, tag::CODE_MEANING, VR::LO, c.2);
    item
}

fn text_item(concept: (&str, &str, &str), text: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tag::RELATIONSHIP_TYPE, VR::CS, "CONTAINS");
    put(&mut item, tag::VALUE_TYPE, VR::CS, "TEXT");
    put_seq(
        &mut item,
        tag::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code(concept)],
    );
    put(&mut item, tag::TEXT_VALUE, VR::UT, text);
    item
}

pub(crate) fn text_of(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
        .unwrap_or_default()
}

pub(crate) fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

/// What the SR copies from the study.
pub(crate) struct StudyFacts {
    pub(crate) study_uid: String,
    pub(crate) patient_name: String,
    pub(crate) patient_id: String,
    pub(crate) birth_date: String,
    pub(crate) sex: String,
    pub(crate) study_date: String,
    pub(crate) study_time: String,
    pub(crate) accession: String,
    pub(crate) referring: String,
    pub(crate) description: String,
    pub(crate) study_id: String,
}

/// Who the new version is: its UIDs, series number and the version it amends (series, SOP).
struct NewVersion<'a> {
    sop_uid: &'a str,
    series_uid: &'a str,
    series_number: i32,
    predecessor: Option<(&'a str, &'a str)>,
}

/// What differs between the SR documents we write (reports, key-image notes) in the modules
/// they share: SOP Common, patient, general study, series and equipment (PS3.3 A.35).
pub(crate) struct SrHeader<'a> {
    pub class: &'a str,
    pub sop_uid: &'a str,
    pub series_uid: &'a str,
    pub modality: &'a str,
    pub series_description: &'a str,
    pub series_number: i32,
    pub instance_number: i32,
}

/// Puts the shared modules of an SR document written at `now` into `o`, and gives back the
/// content date and time it used (DA, TM) for the caller's own date-times.
pub(crate) fn put_sr_header(
    o: &mut InMemDicomObject,
    study: &StudyFacts,
    now: time::OffsetDateTime,
    h: &SrHeader<'_>,
) -> (String, String) {
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let time_of_day = format!("{:02}{:02}{:02}", now.hour(), now.minute(), now.second());
    put(o, tag::INSTANCE_CREATION_DATE, VR::DA, &date);
    put(o, tag::INSTANCE_CREATION_TIME, VR::TM, &time_of_day);
    put(o, tag::SOP_CLASS_UID, VR::UI, h.class);
    put(o, tag::SOP_INSTANCE_UID, VR::UI, h.sop_uid);
    put(o, tag::STUDY_DATE, VR::DA, &study.study_date);
    put(o, tag::CONTENT_DATE, VR::DA, &date);
    put(o, tag::STUDY_TIME, VR::TM, &study.study_time);
    put(o, tag::CONTENT_TIME, VR::TM, &time_of_day);
    put(o, tag::ACCESSION_NUMBER, VR::SH, &study.accession);
    put(o, tag::MODALITY, VR::CS, h.modality);
    put(o, tag::MANUFACTURER, VR::LO, "pacsbox");
    put(o, tag::REFERRING_PHYSICIAN, VR::PN, &study.referring);
    put(o, tag::TIMEZONE_OFFSET, VR::SH, "+0000");
    put(o, tag::STUDY_DESCRIPTION, VR::LO, &study.description);
    put(o, tag::SERIES_DESCRIPTION, VR::LO, h.series_description);
    put_seq(o, tag::REFERENCED_PPS_SEQUENCE, Vec::new());
    put(o, tag::PATIENT_NAME, VR::PN, &study.patient_name);
    put(o, tag::PATIENT_ID, VR::LO, &study.patient_id);
    put(o, tag::PATIENT_BIRTH_DATE, VR::DA, &study.birth_date);
    put(o, tag::PATIENT_SEX, VR::CS, &study.sex);
    put(o, tag::STUDY_INSTANCE_UID, VR::UI, &study.study_uid);
    put(o, tag::SERIES_INSTANCE_UID, VR::UI, h.series_uid);
    put(o, tag::STUDY_ID, VR::SH, &study.study_id);
    put(o, tag::SERIES_NUMBER, VR::IS, &h.series_number.to_string());
    put(
        o,
        tag::INSTANCE_NUMBER,
        VR::IS,
        &h.instance_number.to_string(),
    );
    (date, time_of_day)
}

/// The SR data set of one signed version.
fn build_sr(
    study: &StudyFacts,
    text: &ReportText,
    signer: &str,
    now: time::OffsetDateTime,
    new: &NewVersion<'_>,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tag::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    let (date, time_of_day) = put_sr_header(
        &mut o,
        study,
        now,
        &SrHeader {
            class: BASIC_TEXT_SR,
            sop_uid: new.sop_uid,
            series_uid: new.series_uid,
            modality: "SR",
            series_description: "Physician's report",
            series_number: new.series_number,
            instance_number: 1,
        },
    );
    put(&mut o, tag::VALUE_TYPE, VR::CS, "CONTAINER");
    put_seq(&mut o, tag::CONCEPT_NAME_CODE_SEQUENCE, vec![code(TITLE)]);
    put(&mut o, tag::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    let mut observer = InMemDicomObject::new_empty();
    put(
        &mut observer,
        tag::VERIFYING_ORGANIZATION,
        VR::LO,
        "pacsbox",
    );
    put(
        &mut observer,
        tag::VERIFICATION_DATETIME,
        VR::DT,
        &format!("{date}{time_of_day}+0000"),
    );
    put(&mut observer, tag::VERIFYING_OBSERVER_NAME, VR::PN, signer);
    put_seq(
        &mut observer,
        tag::VERIFYING_OBSERVER_ID_CODE_SEQUENCE,
        Vec::new(),
    );
    put_seq(&mut o, tag::VERIFYING_OBSERVER_SEQUENCE, vec![observer]);
    if let Some((series, sop)) = new.predecessor {
        let mut sop_item = InMemDicomObject::new_empty();
        put(
            &mut sop_item,
            tag::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            BASIC_TEXT_SR,
        );
        put(&mut sop_item, tag::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop);
        let mut series_item = InMemDicomObject::new_empty();
        put(&mut series_item, tag::SERIES_INSTANCE_UID, VR::UI, series);
        put_seq(
            &mut series_item,
            tag::REFERENCED_SOP_SEQUENCE,
            vec![sop_item],
        );
        let mut study_item = InMemDicomObject::new_empty();
        put(
            &mut study_item,
            tag::STUDY_INSTANCE_UID,
            VR::UI,
            &study.study_uid,
        );
        put_seq(
            &mut study_item,
            tag::REFERENCED_SERIES_SEQUENCE,
            vec![series_item],
        );
        put_seq(
            &mut o,
            tag::PREDECESSOR_DOCUMENTS_SEQUENCE,
            vec![study_item],
        );
    }
    put_seq(&mut o, tag::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new());
    put(&mut o, tag::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put(&mut o, tag::VERIFICATION_FLAG, VR::CS, "VERIFIED");
    let mut content = Vec::new();
    if !text.findings.is_empty() {
        content.push(text_item(FINDINGS, &text.findings));
    }
    if !text.impression.is_empty() {
        content.push(text_item(IMPRESSION, &text.impression));
    }
    put_seq(&mut o, tag::CONTENT_SEQUENCE, content);
    o
}

/// A stored SR read back as a version.
fn read_version(sop: &str, rec: &InstanceRecord, obj: &InMemDicomObject) -> ReportVersion {
    let mut text = ReportText::default();
    for item in items(obj, tag::CONTENT_SEQUENCE) {
        let concept = items(item, tag::CONCEPT_NAME_CODE_SEQUENCE)
            .first()
            .map(|c| text_of(c, tag::CODE_VALUE))
            .unwrap_or_default();
        let value = text_of(item, tag::TEXT_VALUE);
        let slot = if concept == IMPRESSION.0 {
            &mut text.impression
        } else {
            &mut text.findings
        };
        if !slot.is_empty() {
            slot.push_str("\n\n");
        }
        slot.push_str(&value);
    }
    let observer = items(obj, tag::VERIFYING_OBSERVER_SEQUENCE)
        .first()
        .map(|o| text_of(o, tag::VERIFYING_OBSERVER_NAME))
        .unwrap_or_default();
    let predecessor = items(obj, tag::PREDECESSOR_DOCUMENTS_SEQUENCE)
        .iter()
        .flat_map(|s| items(s, tag::REFERENCED_SERIES_SEQUENCE))
        .flat_map(|s| items(s, tag::REFERENCED_SOP_SEQUENCE))
        .map(|s| text_of(s, tag::REFERENCED_SOP_INSTANCE_UID))
        .next();
    let (d, t) = (
        text_of(obj, tag::CONTENT_DATE),
        text_of(obj, tag::CONTENT_TIME),
    );
    let when = match (d.get(0..4), d.get(4..6), d.get(6..8)) {
        (Some(y), Some(m), Some(day)) => format!(
            "{y}-{m}-{day} {}:{}",
            t.get(0..2).unwrap_or("00"),
            t.get(2..4).unwrap_or("00")
        ),
        _ => d,
    };
    ReportVersion {
        sop_uid: sop.to_owned(),
        series_uid: rec.series_uid.clone(),
        when,
        observer,
        verified: text_of(obj, tag::VERIFICATION_FLAG) == "VERIFIED"
            && text_of(obj, tag::COMPLETION_FLAG) == "COMPLETE",
        text,
        predecessor,
    }
}

/// `versions` (by arrival) reordered so that each comes after the version it amends: two
/// signatures within one second arrive in the same second, and only the Predecessor Documents
/// Sequence says which came first.
fn in_amendment_order(mut rest: Vec<ReportVersion>) -> Vec<ReportVersion> {
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let ready = rest
            .iter()
            .position(|v| {
                v.predecessor
                    .as_ref()
                    .is_none_or(|p| !rest.iter().any(|o| &o.sop_uid == p))
            })
            // A cycle (only a forged file makes one): keep arrival order.
            .unwrap_or(0);
        out.push(rest.remove(ready));
    }
    out
}

impl Archive {
    /// The patient and study attributes a document written into the study copies, as the
    /// index holds them (decoded from the stored instances' own character sets); None: no
    /// such study.
    pub(crate) fn study_facts(&self, study_uid: &str) -> Result<Option<StudyFacts>, IndexError> {
        let index = &self.shared.index;
        let Some(st) = index.study(study_uid)? else {
            return Ok(None);
        };
        let patient = index.patient(&st.patient_key)?.unwrap_or_default();
        Ok(Some(StudyFacts {
            study_uid: study_uid.to_owned(),
            patient_name: st.patient_name,
            patient_id: st.patient_id,
            birth_date: patient.birth_date,
            sex: patient.sex,
            study_date: st.study_date,
            study_time: st.study_time,
            accession: st.accession_number,
            referring: st.referring_physician,
            description: st.description,
            study_id: st.study_id,
        }))
    }

    /// The study's saved draft, if any.
    pub fn report_draft(&self, study_uid: &str) -> Result<Option<Draft>, IndexError> {
        let txn = self.shared.index.read()?;
        let t = txn.open_table(DRAFTS)?;
        Ok(match t.get(study_uid)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    /// Saves (replaces) the study's draft, durably.
    pub fn save_report_draft(&self, study_uid: &str, draft: &Draft) -> Result<(), ReportError> {
        if self.shared.index.study(study_uid)?.is_none() {
            return Err(ReportError::NoStudy);
        }
        if draft.text.findings.chars().count() + draft.text.impression.chars().count() > MAX_TEXT {
            return Err(ReportError::TooLong);
        }
        self.put_draft(study_uid, draft)?;
        Ok(())
    }

    fn put_draft(&self, study_uid: &str, draft: &Draft) -> Result<(), IndexError> {
        let txn = self.shared.index.begin_write()?;
        txn.open_table(DRAFTS)?
            .insert(study_uid, enc(draft)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn discard_report_draft(&self, study_uid: &str) -> Result<(), IndexError> {
        let txn = self.shared.index.begin_write()?;
        txn.open_table(DRAFTS)?.remove(study_uid)?;
        txn.commit()?;
        Ok(())
    }

    /// The Basic Text SR instances of a study (SOP UID, record), oldest first.
    fn report_instances(
        &self,
        study_uid: &str,
    ) -> Result<Vec<(String, InstanceRecord)>, IndexError> {
        let index = &self.shared.index;
        let mut out = Vec::new();
        for (series, rec) in index.series_of(study_uid)? {
            if rec.modality != "SR" {
                continue;
            }
            out.extend(
                index
                    .instances_of(&series)?
                    .into_iter()
                    .filter(|(_, r)| r.sop_class_uid == BASIC_TEXT_SR),
            );
        }
        out.sort_by(|a, b| (a.1.received_unix, &a.0).cmp(&(b.1.received_unix, &b.0)));
        Ok(out)
    }

    pub(crate) fn read_sr(&self, rec: &InstanceRecord) -> Option<InMemDicomObject> {
        let reader = self.open_part10(rec).ok()?;
        dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Always)
            .from_reader(reader)
            .map(|o| o.into_inner())
            .map_err(
                |e| tracing::warn!(file = rec.rel_path, error = %e, "a stored SR document does not parse"),
            )
            .ok()
    }

    /// Every signed version of the study's report, oldest first (SRs that do not parse are
    /// left out, with a warning).
    pub fn reports(&self, study_uid: &str) -> Result<Vec<ReportVersion>, IndexError> {
        let found: Vec<ReportVersion> = self
            .report_instances(study_uid)?
            .into_iter()
            .filter_map(|(sop, rec)| self.read_sr(&rec).map(|o| read_version(&sop, &rec, &o)))
            .collect();
        Ok(in_amendment_order(found))
    }

    /// Where the study's report stands: for the search results and the worklist.
    pub fn report_state(&self, study_uid: &str) -> Result<ReportState, IndexError> {
        if self.reports(study_uid)?.iter().any(|v| v.verified) {
            return Ok(ReportState::Reported);
        }
        Ok(match self.report_draft(study_uid)? {
            Some(_) => ReportState::Draft,
            None => ReportState::None,
        })
    }

    /// Signs `text` as `signer` (the account name, recorded as Verifying Observer Name): a new
    /// SR in a new series of the study, amending the latest version if there is one; the
    /// draft is discarded.
    pub fn sign_report(
        &self,
        study_uid: &str,
        text: &ReportText,
        signer: &str,
    ) -> Result<Signed, ReportError> {
        text.check()?;
        let index = &self.shared.index;
        let facts = self.study_facts(study_uid)?.ok_or(ReportError::NoStudy)?;
        let previous = self.reports(study_uid)?;
        let latest = previous
            .last()
            .map(|v| (v.series_uid.clone(), v.sop_uid.clone()));
        let series_number = 9000 + i32::try_from(previous.len()).unwrap_or(999).min(999) + 1;
        let (sop_uid, series_uid) = (crate::edit::new_uid(), crate::edit::new_uid());
        let obj = build_sr(
            &facts,
            text,
            signer,
            time::OffsetDateTime::now_utc(),
            &NewVersion {
                sop_uid: &sop_uid,
                series_uid: &series_uid,
                series_number,
                predecessor: latest.as_ref().map(|(s, i)| (s.as_str(), i.as_str())),
            },
        );
        let mut data = Vec::new();
        obj.write_dataset_with_ts(
            &mut data,
            &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .map_err(|e| ReportError::Encode(e.to_string()))?;
        let req = StoreRequest {
            sop_class_uid: BASIC_TEXT_SR.to_owned(),
            sop_instance_uid: sop_uid.clone(),
            transfer_syntax: transfer_syntax::EXPLICIT_VR_LE.to_owned(),
            source_ae: REPORT_AE.to_owned(),
        };
        self.begin_store(req)?.receive(&data[..])?;
        // The worklist shows the exam the study was made for as reported once it is signed.
        match index.exam_of_study(study_uid) {
            Ok(Some(exam)) if exam.state == crate::worklist::ExamState::Completed => {
                let now = crate::ingest::unix_now();
                if let Err(e) =
                    index.set_exam_state(&exam.accession, crate::worklist::ExamState::Reported, now)
                {
                    tracing::warn!(study = study_uid, error = %e, "marking the exam reported");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(study = study_uid, error = %e, "finding the study's exam"),
        }
        if let Err(e) = self.discard_report_draft(study_uid) {
            tracing::warn!(study = study_uid, error = %e, "discarding the signed report's draft");
        }
        Ok(Signed {
            sop_uid,
            series_uid,
            amends: latest.map(|(_, sop)| sop),
        })
    }
}
