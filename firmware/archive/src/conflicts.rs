//! Conflicting duplicates: instances whose SOP Instance UID is already archived with other
//! content, kept aside under `conflicts/` (policy `keep`) until an admin resolves them.
//!
//! Each distinct content is kept once: the file is named after the SOP Instance UID and the
//! hash of the received data set, so a modality resending the same conflicting instance all
//! afternoon leaves one file, and two different conflicting copies never share a name. The
//! folder is capped ([`crate::ArchiveConfig::conflicts_max_bytes`]); past the cap the committer
//! refuses the newcomer (the C-STORE fails, the modality keeps its copy) rather than
//! acknowledging something it would not keep.
//!
//! Resolving: `keep` or `discard` removes the newcomer; `replace` files it as the archived
//! instance through the group commit, like any ingest (journal, sync, rename, index), and only
//! then removes it from `conflicts/`.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::commit::{CommitJob, Committer};
use crate::index::Index;
use crate::ingest::{StoreError, StoreOutcome};
use crate::record::InstanceRecord;
use crate::uid::Uid;
use crate::{Shared, layout, maintenance, part10};

/// Files and bytes under `conflicts/`, and the cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConflictStats {
    pub count: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

impl ConflictStats {
    /// True when a newcomer of `size` bytes would not fit.
    pub fn would_overflow(&self, pending: u64, size: u64) -> bool {
        self.bytes
            .saturating_add(pending)
            .saturating_add(size)
            .gt(&self.max_bytes)
    }
}

/// One conflicting copy, as the admin page and the CLI list it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Conflict {
    /// File name inside `conflicts/`: the handle to resolve it by.
    pub name: String,
    pub sop_instance_uid: String,
    pub size: u64,
    /// When it arrived (the file's modification time).
    pub received_unix: i64,
    /// Calling AE of the sender, from its File Meta (empty when unreadable).
    pub source_ae: String,
    /// The archived instance it conflicts with (None if that was since removed).
    pub archived: Option<InstanceRecord>,
    /// Its content is what is archived now (e.g. a replace interrupted by a power cut).
    pub same_as_archived: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The archived instance stays; the newcomer is deleted.
    Keep,
    /// The newcomer becomes the archived instance.
    Replace,
    /// The newcomer is deleted without a verdict on the archived one (e.g. an unreadable
    /// copy, or one whose archived instance is gone).
    Discard,
}

impl std::str::FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Resolution::Keep),
            "replace" => Ok(Resolution::Replace),
            "discard" => Ok(Resolution::Discard),
            other => Err(format!("unknown resolution {other:?}")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no conflict named {0:?}")]
    NotFound(String),
    #[error("conflict {name}: {source}")]
    Io { name: String, source: io::Error },
    #[error("replacing with conflict {name}: {source}")]
    Store { name: String, source: StoreError },
}

/// `conflicts/` name of a newcomer: `<sop>.<data set hash>.dcm[.zst]`.
pub(crate) fn rel_path(sop: &str, dataset_hash: u64, zstd: bool) -> String {
    format!(
        "conflicts/{sop}.{dataset_hash:016x}.{}",
        layout::extension(zstd)
    )
}

/// SOP Instance UID and tag (data set hash, or the arrival time of older versions) of a
/// conflict file name; None for anything else (so a name from a URL never escapes the folder).
fn parse_name(name: &str) -> Option<(Uid, &str)> {
    let stem = name
        .strip_suffix(".dcm.zst")
        .or_else(|| name.strip_suffix(".dcm"))?;
    let (sop, tag) = stem.rsplit_once('.')?;
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((Uid::parse(sop).ok()?, tag))
}

/// Counts what is in `conflicts/` now.
pub(crate) fn scan_stats(root: &Path, max_bytes: u64) -> io::Result<ConflictStats> {
    let mut stats = ConflictStats {
        max_bytes,
        ..ConflictStats::default()
    };
    let rd = match std::fs::read_dir(layout::conflicts_dir(root)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(stats),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            stats.count += 1;
            stats.bytes += meta.len();
        }
    }
    Ok(stats)
}

/// Every conflict, oldest first. Reads each file's File Meta (for the sender) and the index.
pub fn list(root: &Path, index: &Index) -> io::Result<Vec<Conflict>> {
    let rd = match std::fs::read_dir(layout::conflicts_dir(root)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry?;
        let meta = entry.metadata()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((sop, tag)) = parse_name(&name).filter(|_| meta.is_file()) else {
            tracing::warn!(file = name, "unexpected entry in conflicts/; left alone");
            continue;
        };
        let archived = index.instance(sop.as_str()).map_err(io::Error::other)?;
        let same_as_archived = archived
            .as_ref()
            .is_some_and(|a| format!("{:016x}", a.dataset_hash) == tag);
        out.push(Conflict {
            source_ae: source_ae(&entry.path()).unwrap_or_default(),
            sop_instance_uid: sop.as_str().to_owned(),
            size: meta.len(),
            received_unix: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64),
            archived,
            same_as_archived,
            name,
        });
    }
    out.sort_by(|a, b| (a.received_unix, &a.name).cmp(&(b.received_unix, &b.name)));
    Ok(out)
}

fn source_ae(path: &Path) -> io::Result<String> {
    let file = io::BufReader::new(std::fs::File::open(path)?);
    let mut reader: Box<dyn io::Read> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else {
        Box::new(file)
    };
    Ok(part10::read_header(&mut reader)?.source_ae)
}

/// Resolves one conflict (see the module comment). Returns the outcome of the replacing
/// commit for `Replace`.
pub(crate) fn resolve(
    shared: &Arc<Shared>,
    committer: &Committer,
    name: &str,
    how: Resolution,
) -> Result<Option<StoreOutcome>, ResolveError> {
    let Some((sop, _)) = parse_name(name) else {
        return Err(ResolveError::NotFound(name.to_owned()));
    };
    let path = layout::conflicts_dir(&shared.root).join(name);
    if !path.is_file() {
        return Err(ResolveError::NotFound(name.to_owned()));
    }
    let io_err = |source| ResolveError::Io {
        name: name.to_owned(),
        source,
    };
    let outcome = match how {
        Resolution::Keep | Resolution::Discard => None,
        Resolution::Replace => Some(replace(shared, committer, &path, &sop).map_err(
            |e| match e {
                StoreError::Io(source) => ResolveError::Io {
                    name: name.to_owned(),
                    source,
                },
                source => ResolveError::Store {
                    name: name.to_owned(),
                    source,
                },
            },
        )?),
    };
    // Only now, with a replacement durable, may the conflicting copy go.
    let mut stats = shared.conflicts.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::remove_file(&path).map_err(io_err)?;
    *stats = scan_stats(&shared.root, shared.config.conflicts_max_bytes).map_err(io_err)?;
    drop(stats);
    tracing::info!(conflict = name, resolution = ?how, "conflict resolved");
    Ok(outcome)
}

/// Files the conflicting copy as the archived instance through the group commit. The copy
/// reaches `tmp/` as a hard link, so a crash before the commit point loses nothing: start-up
/// clears `tmp/` and the copy is still in `conflicts/`.
fn replace(
    shared: &Arc<Shared>,
    committer: &Committer,
    path: &Path,
    sop: &Uid,
) -> Result<StoreOutcome, StoreError> {
    let mut entry = maintenance::entry_from_file(&shared.root, path)?;
    if entry.attrs.sop_instance_uid != *sop {
        return Err(StoreError::Mismatch(format!(
            "file holds SOP Instance UID {}, its name says {sop}",
            entry.attrs.sop_instance_uid
        )));
    }
    let zstd = path.extension().is_some_and(|e| e == "zst");
    entry.record.rel_path = layout::instance_rel_path(
        &entry.attrs.study_uid,
        &entry.attrs.series_uid,
        &entry.attrs.sop_instance_uid,
        zstd,
    );
    if let Ok(t) = std::fs::metadata(path).and_then(|m| m.modified())
        && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
    {
        entry.record.received_unix = d.as_secs() as i64;
    }
    let n = shared
        .nonce
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp_path =
        layout::tmp_dir(&shared.root).join(format!("{}-{n}.replace", std::process::id()));
    std::fs::hard_link(path, &tmp_path)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let submitted = committer.submit(CommitJob {
        tmp_path: tmp_path.clone(),
        name_durable: false,
        entry,
        reply: tx,
        replace: true,
        data_synced: None,
    });
    if let Err(e) = submitted {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    rx.recv().map_err(|_| StoreError::ShuttingDown)?
}
