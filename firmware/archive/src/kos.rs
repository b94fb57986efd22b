//! Key images: a study's Key Object Selection documents (PS3.3 A.35.4, content template TID
//! 2010). The viewer's marked set is written as a new KOS instance, "Of Interest", filed in
//! the study through [`Archive::begin_store`] like the physician's report, so it travels with
//! the study (C-MOVE, media, forwarding). Each save is one new instance in this box's one KO
//! series of the study; the one with the highest Instance Number is the current set, the
//! older ones stay as history. KOS sent by a modality or another PACS count too: the study's
//! key images are this box's current set plus every other KOS's references, rejection notes
//! (IHE IOCM titles) left out.

use std::collections::BTreeMap;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_object::InMemDicomObject;
use serde::Serialize;

use crate::index::IndexError;
use crate::report::{SrHeader, StudyFacts, code, items, put, put_seq, put_sr_header, tag, text_of};
use crate::{Archive, StoreError, StoreRequest, transfer_syntax};

/// Key Object Selection Document Storage.
pub const KOS_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.59";
/// Source AE recorded for the KOS this box writes: how its own documents are told apart.
pub const KOS_AE: &str = "PACSBOX-KOS";
/// Series Number of this box's KO series (the report's are 9001…).
const KOS_SERIES_NUMBER: i32 = 9900;
/// Images one document may reference.
pub const MAX_IMAGES: usize = 10_000;

const TITLE_OF_INTEREST: (&str, &str, &str) = ("113000", "DCM", "Of Interest");
/// Document titles of KOS that reject instances (IHE IOCM, CID 7011): not key images.
const REJECTION_TITLES: [&str; 4] = ["113001", "113037", "113038", "113039"];
const OBSERVER_TYPE: (&str, &str, &str) = ("121005", "DCM", "Observer Type");
const PERSON: (&str, &str, &str) = ("121006", "DCM", "Person");
const PERSON_OBSERVER_NAME: (&str, &str, &str) = ("121008", "DCM", "Person Observer Name");

mod more_tag {
    use dicom_core::Tag;
    pub const MAPPING_RESOURCE: Tag = Tag(0x0008, 0x0105);
    pub const REFERENCED_FRAME_NUMBER: Tag = Tag(0x0008, 0x1160);
    pub const CONCEPT_CODE_SEQUENCE: Tag = Tag(0x0040, 0xA168);
    pub const PERSON_NAME: Tag = Tag(0x0040, 0xA123);
    pub const CURRENT_REQUESTED_PROCEDURE_EVIDENCE: Tag = Tag(0x0040, 0xA375);
    pub const CONTENT_TEMPLATE_SEQUENCE: Tag = Tag(0x0040, 0xA504);
    pub const TEMPLATE_IDENTIFIER: Tag = Tag(0x0040, 0xDB00);
}

/// One key image: an instance, or one frame of a multi-frame instance.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct KeyImage {
    pub sop_uid: String,
    /// A frame number (from 1) when one frame of a multi-frame instance is marked.
    pub frame: Option<u32>,
}

/// A study's key images as the viewer shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyImages {
    /// This box's current set (its newest KOS), what the viewer's star toggles.
    pub ours: Vec<KeyImage>,
    /// Every key image of the study: `ours` and those of KOS from elsewhere, each once,
    /// only instances that are in this study.
    pub all: Vec<KeyImage>,
    /// KOS documents read (ours and others', rejection notes not counted).
    pub documents: usize,
}

/// A KOS just stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedKos {
    pub sop_uid: String,
    pub series_uid: String,
    pub images: usize,
    /// The KOS of this box it supersedes, if any.
    pub supersedes: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KosError {
    #[error("no such study")]
    NoStudy,
    #[error("mark at least one image: a Key Object Selection references one or more")]
    Empty,
    #[error("more than {MAX_IMAGES} key images")]
    TooMany,
    #[error("{0} is not an instance of this study")]
    NotInStudy(String),
    #[error("frame numbers count from 1")]
    BadFrame,
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("storing the key object selection: {0}")]
    Store(#[from] StoreError),
    #[error("encoding the key object selection: {0}")]
    Encode(String),
}

/// A referenced instance with what the document says of it.
struct Referenced {
    class: String,
    series: String,
    frames: Vec<u32>,
}

/// Who the new document is.
struct NewKos<'a> {
    sop_uid: &'a str,
    series_uid: &'a str,
    instance_number: i32,
    author: &'a str,
}

fn needs_utf8(values: &[&str]) -> bool {
    values.iter().any(|v| !v.is_ascii())
}

/// The KOS data set: `refs` by SOP Instance UID, in the order they are listed.
fn build_kos(
    study: &StudyFacts,
    refs: &BTreeMap<String, Referenced>,
    order: &[String],
    now: time::OffsetDateTime,
    new: &NewKos<'_>,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    // The default repertoire unless a name or description needs more (PS3.3 C.12.1.1.2).
    if needs_utf8(&[
        &study.patient_name,
        &study.patient_id,
        &study.referring,
        &study.description,
        &study.accession,
        &study.study_id,
        new.author,
    ]) {
        put(&mut o, tag::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    put_sr_header(
        &mut o,
        study,
        now,
        &SrHeader {
            class: KOS_CLASS,
            sop_uid: new.sop_uid,
            series_uid: new.series_uid,
            modality: "KO",
            series_description: "Key images",
            series_number: KOS_SERIES_NUMBER,
            instance_number: new.instance_number,
        },
    );
    // The SR document content's root: the document title, TID 2010.
    put(&mut o, tag::VALUE_TYPE, VR::CS, "CONTAINER");
    put_seq(
        &mut o,
        tag::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code(TITLE_OF_INTEREST)],
    );
    put(&mut o, tag::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    let mut template = InMemDicomObject::new_empty();
    put(&mut template, more_tag::MAPPING_RESOURCE, VR::CS, "DCMR");
    put(&mut template, more_tag::TEMPLATE_IDENTIFIER, VR::CS, "2010");
    put_seq(&mut o, more_tag::CONTENT_TEMPLATE_SEQUENCE, vec![template]);
    // Current Requested Procedure Evidence: study → series → every referenced instance.
    let mut by_series: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for sop in order {
        if let Some(r) = refs.get(sop) {
            by_series
                .entry(r.series.as_str())
                .or_default()
                .push((r.class.as_str(), sop.as_str()));
        }
    }
    let series_items = by_series
        .into_iter()
        .map(|(series, sops)| {
            let mut s = InMemDicomObject::new_empty();
            put(&mut s, tag::SERIES_INSTANCE_UID, VR::UI, series);
            put_seq(
                &mut s,
                tag::REFERENCED_SOP_SEQUENCE,
                sops.into_iter()
                    .map(|(class, sop)| sop_item(class, sop, &[]))
                    .collect(),
            );
            s
        })
        .collect();
    let mut evidence = InMemDicomObject::new_empty();
    put(
        &mut evidence,
        tag::STUDY_INSTANCE_UID,
        VR::UI,
        &study.study_uid,
    );
    put_seq(&mut evidence, tag::REFERENCED_SERIES_SEQUENCE, series_items);
    put_seq(
        &mut o,
        more_tag::CURRENT_REQUESTED_PROCEDURE_EVIDENCE,
        vec![evidence],
    );
    // TID 2010: the observer context (TID 1002) first, then one IMAGE item per instance.
    let mut content = Vec::new();
    let mut observer_type = InMemDicomObject::new_empty();
    put(
        &mut observer_type,
        tag::RELATIONSHIP_TYPE,
        VR::CS,
        "HAS OBS CONTEXT",
    );
    put(&mut observer_type, tag::VALUE_TYPE, VR::CS, "CODE");
    put_seq(
        &mut observer_type,
        tag::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code(OBSERVER_TYPE)],
    );
    put_seq(
        &mut observer_type,
        more_tag::CONCEPT_CODE_SEQUENCE,
        vec![code(PERSON)],
    );
    content.push(observer_type);
    let mut observer = InMemDicomObject::new_empty();
    put(
        &mut observer,
        tag::RELATIONSHIP_TYPE,
        VR::CS,
        "HAS OBS CONTEXT",
    );
    put(&mut observer, tag::VALUE_TYPE, VR::CS, "PNAME");
    put_seq(
        &mut observer,
        tag::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code(PERSON_OBSERVER_NAME)],
    );
    put(&mut observer, more_tag::PERSON_NAME, VR::PN, new.author);
    content.push(observer);
    for sop in order {
        let Some(r) = refs.get(sop) else { continue };
        let mut item = InMemDicomObject::new_empty();
        put(&mut item, tag::RELATIONSHIP_TYPE, VR::CS, "CONTAINS");
        put(&mut item, tag::VALUE_TYPE, VR::CS, "IMAGE");
        put_seq(
            &mut item,
            tag::REFERENCED_SOP_SEQUENCE,
            vec![sop_item(&r.class, sop, &r.frames)],
        );
        content.push(item);
    }
    put_seq(&mut o, tag::CONTENT_SEQUENCE, content);
    o
}

fn sop_item(class: &str, sop: &str, frames: &[u32]) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tag::REFERENCED_SOP_CLASS_UID, VR::UI, class);
    put(&mut item, tag::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop);
    if !frames.is_empty() {
        let numbers: Vec<String> = frames.iter().map(u32::to_string).collect();
        item.put(DataElement::new(
            more_tag::REFERENCED_FRAME_NUMBER,
            VR::IS,
            PrimitiveValue::Strs(numbers.into()),
        ));
    }
    item
}

/// The key images a KOS data set names (IMAGE items at any depth of its content tree), or
/// None for a rejection note.
fn references_of(obj: &InMemDicomObject) -> Option<Vec<KeyImage>> {
    let title = items(obj, tag::CONCEPT_NAME_CODE_SEQUENCE)
        .first()
        .map(|c| text_of(c, tag::CODE_VALUE))
        .unwrap_or_default();
    if REJECTION_TITLES.contains(&title.as_str()) {
        return None;
    }
    let mut out = Vec::new();
    let mut stack: Vec<&InMemDicomObject> =
        items(obj, tag::CONTENT_SEQUENCE).iter().rev().collect();
    while let Some(item) = stack.pop() {
        if text_of(item, tag::VALUE_TYPE) == "IMAGE" {
            for r in items(item, tag::REFERENCED_SOP_SEQUENCE) {
                let sop_uid = text_of(r, tag::REFERENCED_SOP_INSTANCE_UID);
                if sop_uid.is_empty() {
                    continue;
                }
                let frames: Vec<u32> = r
                    .get(more_tag::REFERENCED_FRAME_NUMBER)
                    .and_then(|e| e.to_multi_int::<u32>().ok())
                    .unwrap_or_default();
                if frames.is_empty() {
                    out.push(KeyImage {
                        sop_uid,
                        frame: None,
                    });
                } else {
                    out.extend(frames.into_iter().map(|f| KeyImage {
                        sop_uid: sop_uid.clone(),
                        frame: Some(f),
                    }));
                }
            }
        }
        stack.extend(items(item, tag::CONTENT_SEQUENCE).iter().rev());
    }
    // Children are pushed reversed: the walk is in document order.
    Some(out)
}

impl Archive {
    /// The study's KOS instances: (SOP UID, instance number, written by this box).
    fn kos_instances(&self, study_uid: &str) -> Result<Vec<KosInstance>, IndexError> {
        let index = &self.shared.index;
        let mut out = Vec::new();
        for (series, rec) in index.series_of(study_uid)? {
            if rec.modality != "KO" {
                continue;
            }
            for (sop, r) in index.instances_of(&series)? {
                if r.sop_class_uid == KOS_CLASS {
                    out.push(KosInstance {
                        sop,
                        ours: r.source_ae == KOS_AE,
                        rec: r,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The study's key images: this box's newest KOS and every KOS from elsewhere (files that
    /// do not parse are left out with a warning, references outside the study dropped).
    pub fn key_images(&self, study_uid: &str) -> Result<KeyImages, IndexError> {
        let index = &self.shared.index;
        let found = self.kos_instances(study_uid)?;
        let newest_ours = found
            .iter()
            .filter(|k| k.ours)
            .max_by(|a, b| {
                (a.rec.instance_number, a.rec.received_unix, &a.sop).cmp(&(
                    b.rec.instance_number,
                    b.rec.received_unix,
                    &b.sop,
                ))
            })
            .map(|k| k.sop.clone());
        let mut out = KeyImages::default();
        let mut seen = std::collections::HashSet::new();
        let mut in_study = BTreeMap::new();
        for k in &found {
            if k.ours && Some(&k.sop) != newest_ours.as_ref() {
                continue;
            }
            let Some(obj) = self.read_sr(&k.rec) else {
                continue;
            };
            let Some(refs) = references_of(&obj) else {
                continue;
            };
            out.documents += 1;
            for r in refs {
                let here = match in_study.get(&r.sop_uid) {
                    Some(h) => *h,
                    None => {
                        let h = index
                            .instance(&r.sop_uid)?
                            .is_some_and(|i| i.study_uid == study_uid);
                        in_study.insert(r.sop_uid.clone(), h);
                        h
                    }
                };
                if !here {
                    continue;
                }
                if k.ours {
                    out.ours.push(r.clone());
                }
                if seen.insert(r.clone()) {
                    out.all.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Stores `images` as a new KOS of the study by `author` (the user's display name, the
    /// Person Observer Name): this box's current set from now on.
    pub fn save_key_images(
        &self,
        study_uid: &str,
        images: &[KeyImage],
        author: &str,
    ) -> Result<SavedKos, KosError> {
        if images.is_empty() {
            return Err(KosError::Empty);
        }
        if images.len() > MAX_IMAGES {
            return Err(KosError::TooMany);
        }
        let index = &self.shared.index;
        let facts = self.study_facts(study_uid)?.ok_or(KosError::NoStudy)?;
        let mut refs: BTreeMap<String, Referenced> = BTreeMap::new();
        let mut order = Vec::new();
        for img in images {
            if img.frame == Some(0) {
                return Err(KosError::BadFrame);
            }
            if !refs.contains_key(&img.sop_uid) {
                let rec = index
                    .instance(&img.sop_uid)?
                    .filter(|r| r.study_uid == study_uid)
                    .ok_or_else(|| KosError::NotInStudy(img.sop_uid.clone()))?;
                refs.insert(
                    img.sop_uid.clone(),
                    Referenced {
                        class: rec.sop_class_uid,
                        series: rec.series_uid,
                        frames: Vec::new(),
                    },
                );
                order.push(img.sop_uid.clone());
            }
            if let (Some(f), Some(r)) = (img.frame, refs.get_mut(&img.sop_uid))
                && !r.frames.contains(&f)
            {
                r.frames.push(f);
            }
        }
        for r in refs.values_mut() {
            r.frames.sort_unstable();
        }
        let previous: Vec<KosInstance> = self
            .kos_instances(study_uid)?
            .into_iter()
            .filter(|k| k.ours)
            .collect();
        let newest = previous.iter().max_by(|a, b| {
            (a.rec.instance_number, a.rec.received_unix, &a.sop).cmp(&(
                b.rec.instance_number,
                b.rec.received_unix,
                &b.sop,
            ))
        });
        // One KO series per study for this box's documents: a later save joins it.
        let series_uid = newest
            .map(|k| k.rec.series_uid.clone())
            .unwrap_or_else(crate::edit::new_uid);
        let instance_number = newest
            .and_then(|k| k.rec.instance_number)
            .unwrap_or(0)
            .saturating_add(1);
        let sop_uid = crate::edit::new_uid();
        let obj = build_kos(
            &facts,
            &refs,
            &order,
            time::OffsetDateTime::now_utc(),
            &NewKos {
                sop_uid: &sop_uid,
                series_uid: &series_uid,
                instance_number,
                author,
            },
        );
        let mut data = Vec::new();
        obj.write_dataset_with_ts(
            &mut data,
            &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        )
        .map_err(|e| KosError::Encode(e.to_string()))?;
        let req = StoreRequest {
            sop_class_uid: KOS_CLASS.to_owned(),
            sop_instance_uid: sop_uid.clone(),
            transfer_syntax: transfer_syntax::EXPLICIT_VR_LE.to_owned(),
            source_ae: KOS_AE.to_owned(),
        };
        self.begin_store(req)?.receive(&data[..])?;
        Ok(SavedKos {
            sop_uid,
            series_uid,
            images: images.len(),
            supersedes: newest.map(|k| k.sop.clone()),
        })
    }
}

struct KosInstance {
    sop: String,
    ours: bool,
    rec: crate::InstanceRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str) -> StudyFacts {
        StudyFacts {
            study_uid: "1.2.3".into(),
            patient_name: name.into(),
            patient_id: "P1".into(),
            birth_date: String::new(),
            sex: "F".into(),
            study_date: "20260101".into(),
            study_time: "101010".into(),
            accession: "A1".into(),
            referring: String::new(),
            description: "CT".into(),
            study_id: "1".into(),
        }
    }

    fn refs() -> (BTreeMap<String, Referenced>, Vec<String>) {
        let mut m = BTreeMap::new();
        m.insert(
            "1.2.3.4.2".to_owned(),
            Referenced {
                class: "1.2.840.10008.5.1.4.1.1.2".into(),
                series: "1.2.3.4".into(),
                frames: vec![],
            },
        );
        m.insert(
            "1.2.3.5.1".to_owned(),
            Referenced {
                class: "1.2.840.10008.5.1.4.1.1.3.1".into(),
                series: "1.2.3.5".into(),
                frames: vec![2, 5],
            },
        );
        (m, vec!["1.2.3.4.2".into(), "1.2.3.5.1".into()])
    }

    fn new_kos(author: &str) -> NewKos<'_> {
        NewKos {
            sop_uid: "9.9",
            series_uid: "9.8",
            instance_number: 3,
            author,
        }
    }

    #[test]
    fn a_kos_reads_back_as_the_images_it_was_built_from() {
        let (m, order) = refs();
        let obj = build_kos(
            &facts("DOE^JANE"),
            &m,
            &order,
            time::OffsetDateTime::UNIX_EPOCH,
            &new_kos("Dr Kim"),
        );
        let back = references_of(&obj).expect("not a rejection note");
        assert_eq!(
            back,
            vec![
                KeyImage {
                    sop_uid: "1.2.3.4.2".into(),
                    frame: None
                },
                KeyImage {
                    sop_uid: "1.2.3.5.1".into(),
                    frame: Some(2)
                },
                KeyImage {
                    sop_uid: "1.2.3.5.1".into(),
                    frame: Some(5)
                },
            ]
        );
        // ASCII throughout: no Specific Character Set.
        assert!(obj.get(tag::SPECIFIC_CHARACTER_SET).is_none());
        let evidence = items(&obj, more_tag::CURRENT_REQUESTED_PROCEDURE_EVIDENCE);
        assert_eq!(evidence.len(), 1);
        assert_eq!(
            items(&evidence[0], tag::REFERENCED_SERIES_SEQUENCE).len(),
            2
        );
    }

    #[test]
    fn korean_names_make_it_utf8_and_rejection_notes_are_not_key_images() {
        let (m, order) = refs();
        let mut obj = build_kos(
            &facts("김^민수"),
            &m,
            &order,
            time::OffsetDateTime::UNIX_EPOCH,
            &new_kos("박지성"),
        );
        assert_eq!(text_of(&obj, tag::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
        put_seq(
            &mut obj,
            tag::CONCEPT_NAME_CODE_SEQUENCE,
            vec![code(("113001", "DCM", "Rejected for Quality Reasons"))],
        );
        assert_eq!(references_of(&obj), None);
    }
}
