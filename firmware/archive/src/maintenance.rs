//! Start-up recovery, `verify` and `reindex`.
//!
//! Recovery reads only `tmp/` and the journal of the last commit batch, never the whole
//! archive: a file the journal names that is not in the index was never acknowledged, so it is
//! removed; everything in `tmp/` was never acknowledged either.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::index::{Index, IndexEntry};
use crate::part10;
use crate::record::{InstanceAttrs, InstanceRecord};
use crate::scan;
use crate::transfer_syntax::DatasetEncoding;
use crate::{ingest, layout};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RecoveryReport {
    /// Partial receptions removed from tmp/.
    pub temp_files_removed: u64,
    /// Files of an unfinished commit batch removed from archive/ (never acknowledged).
    pub unindexed_files_removed: u64,
}

pub(crate) fn recover(root: &Path, index: &Index) -> io::Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    for entry in std::fs::read_dir(layout::tmp_dir(root))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            report.temp_files_removed += 1;
        }
    }
    let journal = layout::journal_path(root);
    match std::fs::read_to_string(&journal) {
        Ok(text) => {
            for line in text.lines().filter(|l| l.starts_with("archive/")) {
                let path = root.join(line);
                let Some(sop) = layout::sop_uid_of_file(&path) else {
                    continue;
                };
                let indexed = index
                    .instance(sop)
                    .map_err(io::Error::other)?
                    .is_some_and(|r| r.rel_path == line);
                if !indexed && path.exists() {
                    tracing::warn!(file = line, "removing a file whose commit never finished");
                    std::fs::remove_file(&path)?;
                    report.unindexed_files_removed += 1;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // An empty journal whose directory entry is durable, so later fdatasyncs suffice.
    File::create(&journal)?.sync_all()?;
    File::open(root)?.sync_all()?;
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

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
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

fn hash_file(path: &Path) -> io::Result<u64> {
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

pub(crate) fn verify(root: &Path, index: &Index, checksums: bool) -> io::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut indexed_paths = std::collections::HashSet::new();
    let mut io_err = None;
    index
        .for_each_instance(|sop, rec| {
            report.indexed += 1;
            let path = root.join(&rec.rel_path);
            if !path.is_file() {
                report.missing_files.push(format!("{sop} {}", rec.rel_path));
            } else if checksums {
                match hash_file(&path) {
                    Ok(h) if h == rec.file_hash => {}
                    Ok(_) => report.checksum_mismatches.push(rec.rel_path.clone()),
                    Err(e) => io_err = Some(e),
                }
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
fn entry_from_file(root: &Path, path: &Path) -> io::Result<IndexEntry> {
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
    let header = scan::scan_dataset(&mut tee, DatasetEncoding::of(&meta.transfer_syntax))
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
    drop(index);
    std::fs::rename(&fresh, &index_path)?;
    File::open(root)?.sync_all()?;
    Ok(n)
}
