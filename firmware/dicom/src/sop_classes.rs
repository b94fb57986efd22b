//! Which SOP classes we serve: Verification, the Patient and Study Root Query/Retrieve
//! information models (FIND, MOVE, GET), and every Storage SOP class — the latter decided by
//! looking the proposed UID up in the dicom-rs UID registry rather than in a hand-typed list,
//! so new Storage SOP classes arrive with a dependency update.

/// The Q/R information model of a presentation context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    PatientRoot,
    StudyRoot,
}

/// The information model of a Patient or Study Root FIND, MOVE or GET SOP class.
pub fn model_of(abstract_syntax: &str) -> Option<Model> {
    match abstract_syntax {
        "1.2.840.10008.5.1.4.1.2.1.1"
        | "1.2.840.10008.5.1.4.1.2.1.2"
        | "1.2.840.10008.5.1.4.1.2.1.3" => Some(Model::PatientRoot),
        "1.2.840.10008.5.1.4.1.2.2.1"
        | "1.2.840.10008.5.1.4.1.2.2.2"
        | "1.2.840.10008.5.1.4.1.2.2.3" => Some(Model::StudyRoot),
        _ => None,
    }
}

/// Modality Worklist Information Model – FIND (PS3.4 K.6) and Modality Performed Procedure
/// Step (PS3.4 F.7): the scheduled workflow (`mwl.rs`, `mpps.rs`).
pub const MODALITY_WORKLIST_FIND: &str = "1.2.840.10008.5.1.4.31";
pub const MPPS: &str = "1.2.840.10008.3.1.2.3.3";

/// True for the name of a Storage SOP class (PS3.4 Annex B), false for the other services
/// whose names contain the word.
pub(crate) fn is_storage(name: &str) -> bool {
    name.contains("Storage")
        && !name.contains("Storage Commitment")
        && !name.contains("Media Storage Directory")
        && !name.contains("Query/Retrieve")
        && !name.contains("Storage Management")
}

#[cfg(test)]
mod tests {
    use super::*;

    use dicom_core::dictionary::UidDictionary;
    use dicom_dictionary_std::{StandardSopClassDictionary, uids};

    fn storage(uid: &str) -> bool {
        StandardSopClassDictionary
            .by_uid(uid)
            .is_some_and(|e| is_storage(e.name))
    }

    #[test]
    fn storage_classes_are_there_and_services_are_not() {
        assert!(storage(uids::CT_IMAGE_STORAGE));
        assert!(storage(uids::ENHANCED_MR_IMAGE_STORAGE));
        assert!(storage(uids::ENCAPSULATED_PDF_STORAGE));
        assert!(storage(uids::NUCLEAR_MEDICINE_IMAGE_STORAGE));
        assert!(!storage(uids::STORAGE_COMMITMENT_PUSH_MODEL));
        assert!(!storage(uids::MEDIA_STORAGE_DIRECTORY_STORAGE));
        assert!(!storage(
            uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND
        ));
        assert!(!storage("1.2.3.4.5.6.7"));
    }
}
