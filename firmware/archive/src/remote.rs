//! What the clinic's other PACS holds, as its C-FIND answers it, and the fetches from it that
//! are running: plain data shared by the DICOM side that asks (`pacsbox_dicom::fetch`) and the
//! web page that shows it. Nothing here opens a socket.

use serde::Serialize;

/// What to look for on the remote; empty fields match everything. Values are C-FIND
/// matching strings (`KIM*`, `20240101-20241231`).
#[derive(Clone, Debug, Default)]
pub struct RemoteQuery {
    pub patient_name: String,
    pub patient_id: String,
    pub study_date: String,
    pub accession: String,
    pub modality: String,
    pub study_uid: String,
}

/// One study as the remote described it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RemoteStudy {
    pub study_uid: String,
    /// PN with its groups (`family^given=ideographic=phonetic`).
    pub patient_name: String,
    pub patient_id: String,
    pub birth_date: String,
    pub study_date: String,
    pub study_time: String,
    pub accession: String,
    pub modalities: String,
    pub description: String,
    pub instances: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchState {
    Running,
    Done,
    Failed,
}

/// One study being (or having been) pulled from a remote with C-MOVE.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FetchJob {
    pub id: u64,
    pub peer: String,
    pub study_uid: String,
    /// Who asked (`web:<user>`, `cli:<user>`).
    pub requested_by: String,
    pub started_unix: i64,
    pub state: FetchState,
    /// Sub-operations as the remote last reported them.
    pub completed: u32,
    pub failed: u32,
    pub remaining: Option<u32>,
    /// Why it failed; empty otherwise.
    pub error: String,
}
