//! Queries over the index for C-FIND, C-MOVE/C-GET and the web page: the matching rules of
//! PS3.4 C.2.2.2 applied to patient, study, series and image records, hierarchically.
//!
//! - `model.rs` — the vocabulary: [`Level`], [`Attr`], [`Matcher`], [`Query`], result [`Row`]s.
//! - `matching.rs` — one value against one key ([`value_matches`]), a row against a query.
//! - `levels.rs` — [`Index::query`]: C-FIND per level, candidates from the secondary indexes.
//! - `retrieve.rs` — [`Index::retrieve_set`]: the instances under the matches (C-MOVE/C-GET).
//! - `page.rs` — [`Index::study_page`]: the web's newest-first study list with its cost estimate.
//! - `listing.rs` — [`Index::series_of`] / [`Index::instances_of`]: a study's series, a
//!   series' instances, for the web page.
//!
//! [`Index::query`]: crate::Index::query
//! [`Index::retrieve_set`]: crate::Index::retrieve_set
//! [`Index::study_page`]: crate::Index::study_page
//! [`Index::series_of`]: crate::Index::series_of
//! [`Index::instances_of`]: crate::Index::instances_of

mod levels;
mod listing;
mod matching;
mod model;
mod page;
mod retrieve;

pub use matching::value_matches;
pub use model::{ATTRIBUTE_TAGS, Attr, Level, Matcher, Query, QueryError, Row};
pub use page::StudyPage;

#[cfg(test)]
pub(crate) mod testing {
    pub(crate) fn entry(i: u32, surname: &str, date: &str) -> crate::index::IndexEntry {
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
}
