//! Start-up recovery, `verify` and `reindex`.
//!
//! Recovery reads only `tmp/` and the journal written since the last checkpoint, never the
//! whole archive. It finishes what those journal records committed: a rename into `archive/`
//! that did not happen is redone when the temp file still has the recorded hash, and every
//! record's index entry is inserted again (idempotent). A record whose temp file is missing or
//! differs belongs to a batch whose sync never completed, so it was never acknowledged and is
//! skipped. What is left in `tmp/` was never acknowledged either and is deleted.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::index::{Index, IndexEntry};
use crate::part10;
use crate::record::{InstanceAttrs, InstanceRecord};
use crate::scan;
use crate::transfer_syntax::DatasetEncoding;
use crate::{commit, ingest, layout};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RecoveryReport {
    /// Journal records replayed (instances committed since the last checkpoint).
    pub journal_records_replayed: u64,
    /// Committed instances whose rename into the archive had to be redone.
    pub renames_redone: u64,
    /// Partial or never-committed receptions removed from tmp/.
    pub temp_files_removed: u64,
}

/// Finishes what the last run committed but had not checkpointed: redo renames, re-index,
/// checkpoint, empty the journal, clear tmp/. Reads only the journal and tmp/.
pub(crate) fn recover(root: &Path, index: &Index, arrivals: bool) -> io::Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let journal = layout::journal_path(root);
    let bytes = match std::fs::read(&journal) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let records = commit::decode_records(&bytes);
    let mut entries = Vec::new();
    for r in records {
        report.journal_records_replayed += 1;
        let target = root.join(&r.target);
        let tmp = layout::tmp_dir(root).join(&r.tmp_name);
        // The rename happens only after the record's batch was synced, but the record may be
        // durable while the batch's sync never completed: trust the temp file only if its
        // content is what was recorded. A temp file still there means its rename was not done,
        // even when the target exists: an overwrite or an admin's replace of that instance.
        if !r.tmp_name.is_empty() && tmp.is_file() && hash_file(&tmp)? == r.file_hash {
            commit::rename_into_place(&tmp, &target)?;
            report.renames_redone += 1;
        } else if !target.exists() {
            continue;
        }
        if let Some(e) = r.entry {
            entries.push(e);
        }
    }
    if !entries.is_empty() {
        // insert is idempotent for instances the last checkpoint already holds
        index
            .insert_batch_replayed(&entries, arrivals)
            .map_err(io::Error::other)?;
    }
    for entry in std::fs::read_dir(layout::tmp_dir(root))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            report.temp_files_removed += 1;
        }
    }
    let volume = File::open(root)?;
    commit::sync_volume(&volume)?;
    // Only now is everything the journal held durable elsewhere.
    File::create(&journal)?;
    commit::sync_volume(&volume)?;
    Ok(report)
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub indexed: u64,
    pub files: u64,
    pub missing_files: Vec<String>,
    pub unindexed_files: Vec<String>,
    pub checksum_mismatches: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.missing_files.is_empty()
            && self.unindexed_files.is_empty()
            && self.checksum_mismatches.is_empty()
    }
}

pub(crate) fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk_files(&entry.path(), out)?;
        } else if ft.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

pub(crate) fn hash_file(path: &Path) -> io::Result<u64> {
    let mut f = BufReader::with_capacity(256 << 10, File::open(path)?);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.digest());
        }
        h.update(&buf[..n]);
    }
}

/// What an indexed instance's file is like now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileState {
    /// There, and (when hashed) with the hash recorded at ingest.
    Intact,
    Missing,
    /// Its bytes are not what was stored.
    Mismatch,
}

/// Checks the file of `rec` (re-reading and hashing it with `hash`): `verify` and storage
/// commitment ask the same question of a file.
pub(crate) fn file_state(root: &Path, rec: &InstanceRecord, hash: bool) -> io::Result<FileState> {
    let path = root.join(&rec.rel_path);
    if !path.is_file() {
        return Ok(FileState::Missing);
    }
    if !hash {
        return Ok(FileState::Intact);
    }
    match hash_file(&path) {
        Ok(h) if h == rec.file_hash => Ok(FileState::Intact),
        Ok(_) => Ok(FileState::Mismatch),
        // Gone between the look and the read (compaction's swap): missing, not an error.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FileState::Missing),
        Err(e) => Err(e),
    }
}

pub(crate) fn verify(root: &Path, index: &Index, checksums: bool) -> io::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut indexed_paths = std::collections::HashSet::new();
    let mut io_err = None;
    index
        .for_each_instance(|sop, rec| {
            report.indexed += 1;
            match file_state(root, &rec, checksums) {
                Ok(FileState::Intact) => {}
                Ok(FileState::Missing) => {
                    report.missing_files.push(format!("{sop} {}", rec.rel_path))
                }
                Ok(FileState::Mismatch) => report.checksum_mismatches.push(rec.rel_path.clone()),
                Err(e) => io_err = Some(e),
            }
            indexed_paths.insert(rec.rel_path);
        })
        .map_err(io::Error::other)?;
    if let Some(e) = io_err {
        return Err(e);
    }
    let mut files = Vec::new();
    walk_files(&layout::archive_dir(root), &mut files)?;
    for f in files {
        report.files += 1;
        let rel = f
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !indexed_paths.contains(&rel) {
            report.unindexed_files.push(rel);
        }
    }
    Ok(report)
}

/// Reads one archived file the way ingest would have indexed it.
pub(crate) fn entry_from_file(root: &Path, path: &Path) -> io::Result<IndexEntry> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let zstd = path.extension().is_some_and(|e| e == "zst");
    let file = BufReader::with_capacity(256 << 10, File::open(path)?);
    let mut reader: Box<dyn Read> = if zstd {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else {
        Box::new(file)
    };
    let meta = part10::read_header(&mut reader)?;
    // Hash the dataset while the walk reads all of it.
    let mut tee = HashingReader {
        inner: reader,
        hasher: xxhash_rust::xxh3::Xxh3::new(),
    };
    let header = scan::scan_dataset(
        io::BufReader::with_capacity(64 << 10, &mut tee),
        DatasetEncoding::of(&meta.transfer_syntax),
    )
    .map_err(|e| bad(e.to_string()))?;
    let attrs = InstanceAttrs::from_header(&header).map_err(|e| bad(e.to_string()))?;
    let rel_path = path
        .strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| bad(e.to_string()))?;
    let record = InstanceRecord {
        study_uid: attrs.study_uid.to_string(),
        series_uid: attrs.series_uid.to_string(),
        sop_class_uid: attrs.sop_class_uid.to_string(),
        transfer_syntax: meta.transfer_syntax,
        instance_number: attrs.instance_number,
        patient_name: attrs.patient_name.clone(),
        rel_path,
        file_size: std::fs::metadata(path)?.len(),
        file_hash: hash_file(path)?,
        dataset_hash: tee.hasher.digest(),
        received_unix: ingest::unix_now(),
        source_ae: meta.source_ae,
    };
    Ok(IndexEntry { attrs, record })
}

struct HashingReader<R> {
    inner: R,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

pub(crate) fn reindex(root: &Path) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let index_path = layout::index_path(root);
    let fresh = index_path.with_extension("redb.new");
    let _ = std::fs::remove_file(&fresh);
    let index = Index::open(&fresh)?;
    let mut files = Vec::new();
    walk_files(&layout::archive_dir(root), &mut files)?;
    files.sort();
    let mut batch = Vec::new();
    let mut n = 0u64;
    for f in files {
        match entry_from_file(root, &f) {
            Ok(e) => batch.push(e),
            Err(e) => {
                tracing::error!(file = %f.display(), error = %e, "cannot index file; left in place")
            }
        }
        if batch.len() >= 1000 {
            index.insert_batch(&batch)?;
            n += batch.len() as u64;
            batch.clear();
        }
    }
    index.insert_batch(&batch)?;
    n += batch.len() as u64;
    // A compression interrupted between its rename and its unlink leaves both copies; files
    // are sorted, so the index names the `.zst` and this removes the plain one.
    if crate::compact::recover(root, &index)? {
        n = index.counts()?.instances;
    }
    drop(index);
    std::fs::rename(&fresh, &index_path)?;
    File::open(root)?.sync_all()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{JournalRecord, encode_record};
    use crate::index::IndexEntry;
    use crate::record::{InstanceAttrs, InstanceRecord};
    use crate::uid::Uid;

    fn entry(sop: &str, rel: &str, hash: u64) -> IndexEntry {
        let u = |s: &str| Uid::parse(s).unwrap();
        let attrs = InstanceAttrs {
            sop_class_uid: u("1.2.840.10008.5.1.4.1.1.2"),
            sop_instance_uid: u(sop),
            study_uid: u("1.2.3"),
            series_uid: u("1.2.3.4"),
            specific_character_set: String::new(),
            patient_name: "DOE^JANE".into(),
            patient_id: "P1".into(),
            patient_birth_date: String::new(),
            patient_sex: String::new(),
            study_date: "20240101".into(),
            study_time: String::new(),
            accession_number: String::new(),
            referring_physician: String::new(),
            study_description: String::new(),
            study_id: String::new(),
            modality: "CT".into(),
            series_description: String::new(),
            series_number: None,
            body_part: String::new(),
            instance_number: None,
        };
        let record = InstanceRecord {
            study_uid: "1.2.3".into(),
            series_uid: "1.2.3.4".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            instance_number: None,
            patient_name: "DOE^JANE".into(),
            rel_path: rel.into(),
            file_size: 4,
            file_hash: hash,
            dataset_hash: hash,
            received_unix: 0,
            source_ae: "CT".into(),
        };
        IndexEntry { attrs, record }
    }

    /// What `kill -9` between a batch's commit point and the next checkpoint leaves: journal
    /// records, one temp file not yet renamed, one whose data never reached the disk, and a
    /// torn record at the tail.
    #[test]
    fn recovery_finishes_committed_batches_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(layout::tmp_dir(root)).unwrap();
        let index = Index::open(&layout::index_path(root)).unwrap();

        std::fs::write(layout::tmp_dir(root).join("1-1.part"), b"good").unwrap();
        std::fs::write(layout::tmp_dir(root).join("1-2.part"), b"\0\0\0\0").unwrap();
        let good_hash = xxhash_rust::xxh3::xxh3_64(b"good");
        let rel_good = "archive/00/1.2.3/1.2.3.4/1.2.3.4.1.dcm.zst";
        let rel_bad = "archive/00/1.2.3/1.2.3.4/1.2.3.4.2.dcm.zst";
        let mut journal = Vec::new();
        for (tmp, rel, sop) in [
            ("1-1.part", rel_good, "1.2.3.4.1"),
            ("1-2.part", rel_bad, "1.2.3.4.2"),
        ] {
            journal.extend(
                encode_record(&JournalRecord {
                    tmp_name: tmp.into(),
                    target: rel.into(),
                    file_hash: good_hash,
                    entry: Some(entry(sop, rel, good_hash)),
                })
                .unwrap(),
            );
        }
        journal.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]); // torn tail
        std::fs::write(layout::journal_path(root), &journal).unwrap();

        let report = recover(root, &index, false).unwrap();
        assert_eq!(report.journal_records_replayed, 2);
        assert_eq!(report.renames_redone, 1);
        assert_eq!(report.temp_files_removed, 1);
        assert_eq!(std::fs::read(root.join(rel_good)).unwrap(), b"good");
        assert!(!root.join(rel_bad).exists());
        assert!(index.instance("1.2.3.4.1").unwrap().is_some());
        assert!(index.instance("1.2.3.4.2").unwrap().is_none());
        assert_eq!(
            std::fs::metadata(layout::journal_path(root)).unwrap().len(),
            0
        );
        // replaying twice changes nothing
        std::fs::write(layout::journal_path(root), &journal).unwrap();
        recover(root, &index, false).unwrap();
        assert_eq!(index.counts().unwrap().instances, 1);
    }

    /// `kill -9` with spares in tmp/ (`spare.rs`): unused ones (empty, named in no record),
    /// one taken by a store that never reached its commit (partly written, no record) and one
    /// whose batch committed. Only the committed one is filed and indexed; the rest go.
    #[test]
    fn recovery_clears_unused_spares_and_never_indexes_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let tmp = layout::tmp_dir(root);
        std::fs::create_dir_all(&tmp).unwrap();
        let index = Index::open(&layout::index_path(root)).unwrap();
        for n in 0..4 {
            std::fs::write(tmp.join(format!("spare-7-{n}")), b"").unwrap();
        }
        std::fs::write(tmp.join("spare-7-4"), b"half a data s").unwrap();
        std::fs::write(tmp.join("spare-7-5"), b"committed").unwrap();
        let hash = xxhash_rust::xxh3::xxh3_64(b"committed");
        let rel = "archive/00/1.2.3/1.2.3.4/1.2.3.4.5.dcm";
        let mut journal = encode_record(&JournalRecord {
            tmp_name: "spare-7-5".into(),
            target: rel.into(),
            file_hash: hash,
            entry: Some(entry("1.2.3.4.5", rel, hash)),
        })
        .unwrap();
        // a record naming an empty spare (its data never reached the disk): skipped
        let rel_empty = "archive/00/1.2.3/1.2.3.4/1.2.3.4.6.dcm";
        journal.extend(
            encode_record(&JournalRecord {
                tmp_name: "spare-7-0".into(),
                target: rel_empty.into(),
                file_hash: hash,
                entry: Some(entry("1.2.3.4.6", rel_empty, hash)),
            })
            .unwrap(),
        );
        std::fs::write(layout::journal_path(root), &journal).unwrap();

        let report = recover(root, &index, false).unwrap();
        assert_eq!(report.renames_redone, 1);
        assert_eq!(report.temp_files_removed, 5);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(std::fs::read(root.join(rel)).unwrap(), b"committed");
        assert!(!root.join(rel_empty).exists());
        assert_eq!(index.counts().unwrap().instances, 1);
        assert!(index.instance("1.2.3.4.6").unwrap().is_none());
        assert!(verify(root, &index, true).unwrap().is_clean());
    }

    /// `kill -9` after an overwrite's (or an admin's replace's) commit point but before its
    /// rename: the old file is still at the target, the new one in tmp/. The index must end
    /// up pointing at the new file's hash, and the file must be the new one.
    #[test]
    fn recovery_redoes_a_rename_over_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(layout::tmp_dir(root)).unwrap();
        let index = Index::open(&layout::index_path(root)).unwrap();
        let rel = "archive/00/1.2.3/1.2.3.4/1.2.3.4.1.dcm.zst";
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), b"old").unwrap();
        index
            .insert_batch(&[entry("1.2.3.4.1", rel, xxhash_rust::xxh3::xxh3_64(b"old"))])
            .unwrap();
        std::fs::write(layout::tmp_dir(root).join("1-1.replace"), b"new").unwrap();
        let new_hash = xxhash_rust::xxh3::xxh3_64(b"new");
        let journal = encode_record(&JournalRecord {
            tmp_name: "1-1.replace".into(),
            target: rel.into(),
            file_hash: new_hash,
            entry: Some(entry("1.2.3.4.1", rel, new_hash)),
        })
        .unwrap();
        std::fs::write(layout::journal_path(root), &journal).unwrap();
        let report = recover(root, &index, false).unwrap();
        assert_eq!(report.renames_redone, 1);
        assert_eq!(std::fs::read(root.join(rel)).unwrap(), b"new");
        assert!(verify(root, &index, true).unwrap().is_clean());
    }
}
