//! Storage commitment (PS3.4 Annex J, Push Model) as the archive sees it: the pending
//! requests, kept in redb until their N-EVENT-REPORT was answered (so a restart between the
//! N-ACTION and the report loses none), and the check that decides whether one instance is
//! committed. The DIMSE side (`pacsbox_dicom::commitment`) asks; the archive answers.
//!
//! Committed means: in the index (which by the durability invariant means its file and journal
//! record were synced before it got there), of the class the requestor names, and its file
//! re-read and hashed now with the hash recorded at ingest (`maintenance::file_state`, the
//! code `verify --checksums` uses).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::Archive;
use crate::index::{IndexError, dec, enc};
use crate::maintenance::{FileState, file_state};

/// Transaction UID → [`Commitment`].
pub(crate) const COMMITMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("commitments");

/// One instance named in a request (an item of the Referenced SOP Sequence).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

/// A storage commitment request not yet reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub transaction_uid: String,
    /// The calling AE of the N-ACTION: where the report goes when it cannot go back on the
    /// same association.
    pub requestor_ae: String,
    pub requested_unix: i64,
    pub references: Vec<Reference>,
    /// Failed attempts to deliver the report on a new association, and when the next is due.
    pub attempts: u32,
    pub next_attempt_unix: i64,
}

/// Why an instance is not committed: the Failure Reason (0008,1197) of its item in the
/// Failed SOP Sequence (PS3.4 J.3.2.1.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 0112H: never received (or since deleted).
    NoSuchObject,
    /// 0110H: there, but its file is missing, unreadable or does not hash as stored.
    ProcessingFailure,
    /// 0119H: stored under another SOP class than the request names.
    ClassInstanceConflict,
}

impl Failure {
    pub fn reason(self) -> u16 {
        match self {
            Failure::NoSuchObject => 0x0112,
            Failure::ProcessingFailure => 0x0110,
            Failure::ClassInstanceConflict => 0x0119,
        }
    }
}

/// The answer to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub committed: Vec<Reference>,
    pub failed: Vec<(Reference, Failure)>,
}

impl Archive {
    /// Records a request durably (before its N-ACTION-RSP goes out); a request reusing a
    /// Transaction UID replaces the earlier one.
    pub fn add_commitment(&self, c: &Commitment) -> Result<(), IndexError> {
        let txn = self.shared.index.begin_write()?;
        txn.open_table(COMMITMENTS)?
            .insert(c.transaction_uid.as_str(), enc(c)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Every request whose report was not delivered yet, oldest first.
    pub fn pending_commitments(&self) -> Result<Vec<Commitment>, IndexError> {
        let txn = self.shared.index.read()?;
        let t = txn.open_table(COMMITMENTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(dec::<Commitment>(v.value())?);
        }
        out.sort_by_key(|c| c.requested_unix);
        Ok(out)
    }

    /// Replaces the stored request (its delivery attempts).
    pub fn update_commitment(&self, c: &Commitment) -> Result<(), IndexError> {
        self.add_commitment(c)
    }

    /// The report was delivered: the request is done.
    pub fn finish_commitment(&self, transaction_uid: &str) -> Result<(), IndexError> {
        let txn = self.shared.index.begin_write()?;
        txn.open_table(COMMITMENTS)?.remove(transaction_uid)?;
        txn.commit()?;
        Ok(())
    }

    /// Checks every instance of a request now (see the module comment). Reads and hashes each
    /// file: call it off the async workers.
    pub fn check_commitment(&self, references: &[Reference]) -> Outcome {
        let mut out = Outcome::default();
        for r in references {
            match self.check_one(r) {
                Ok(()) => out.committed.push(r.clone()),
                Err(f) => out.failed.push((r.clone(), f)),
            }
        }
        out
    }

    fn check_one(&self, r: &Reference) -> Result<(), Failure> {
        let mut last = None;
        // A file can vanish between the index read and the hash when compaction swaps it for
        // its `.dcm.zst` (and points the index at that): read the record again and retry.
        for _ in 0..3 {
            let rec = match self.shared.index.instance(&r.sop_instance_uid) {
                Ok(Some(rec)) => rec,
                Ok(None) => return Err(Failure::NoSuchObject),
                Err(e) => {
                    tracing::warn!(sop = r.sop_instance_uid, error = %e, "storage commitment: reading the index");
                    return Err(Failure::ProcessingFailure);
                }
            };
            if rec.sop_class_uid != r.sop_class_uid {
                return Err(Failure::ClassInstanceConflict);
            }
            match file_state(&self.shared.root, &rec, true) {
                Ok(FileState::Intact) => return Ok(()),
                Ok(state) => {
                    if last.as_ref() == Some(&(rec.rel_path.clone(), rec.file_hash)) {
                        tracing::error!(
                            sop = r.sop_instance_uid,
                            file = rec.rel_path,
                            ?state,
                            "storage commitment refused: the stored file is not what was received"
                        );
                        return Err(Failure::ProcessingFailure);
                    }
                    last = Some((rec.rel_path, rec.file_hash));
                }
                Err(e) => {
                    tracing::error!(sop = r.sop_instance_uid, file = rec.rel_path, error = %e, "storage commitment: reading the stored file");
                    return Err(Failure::ProcessingFailure);
                }
            }
        }
        Err(Failure::ProcessingFailure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_requests_survive_reopening_and_finish_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let c = Commitment {
            transaction_uid: "1.2.3.9".into(),
            requestor_ae: "MODALITY".into(),
            requested_unix: 5,
            references: vec![Reference {
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.7".into(),
                sop_instance_uid: "1.2.3.4".into(),
            }],
            attempts: 0,
            next_attempt_unix: 0,
        };
        {
            let (a, _) = Archive::open(dir.path(), Default::default()).unwrap();
            a.add_commitment(&c).unwrap();
            let out = a.check_commitment(&c.references);
            assert_eq!(
                out.failed,
                vec![(c.references[0].clone(), Failure::NoSuchObject)]
            );
        }
        let (a, _) = Archive::open(dir.path(), Default::default()).unwrap();
        assert_eq!(a.pending_commitments().unwrap(), vec![c.clone()]);
        a.finish_commitment(&c.transaction_uid).unwrap();
        assert!(a.pending_commitments().unwrap().is_empty());
    }
}
