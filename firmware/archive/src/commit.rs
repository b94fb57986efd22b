//! The group commit: the one place that makes received instances durable.
//!
//! Jobs from every association queue up here; a single thread takes all that are waiting and,
//! for the whole batch:
//! 1. decides each job: new, identical duplicate (dropped), conflicting duplicate (kept aside
//!    under `conflicts/` once per distinct content, refused past the folder's cap) or
//!    overwrite;
//! 2. appends one checksummed record per job to `DATA/journal` (temp file name, target path,
//!    index entry, file hash) — written, not yet synced;
//! 3. `syncfs` of the data volume, once: the temp files' contents and names and the journal
//!    records are now on stable storage. This is the commit point, and the only sync a batch
//!    costs, however many instances and associations it holds. (In `Fsync` mode, used when the
//!    data directory shares its file system with other writers, each receiving thread
//!    fdatasyncs its own file and the batch syncs the journal instead, and `tmp/` only when
//!    a file in it is not a spare whose name was made durable ahead, `spare.rs`.);
//! 4. renames the temp files into `archive/` and indexes the batch in redb without waiting for
//!    the disk (`Durability::None`);
//! 5. answers every waiting association.
//!
//! Every second of quiet, or every few thousand instances, a checkpoint makes renames and index
//! durable (`syncfs` + one durable redb commit with quick-repair) and empties the journal.
//! After a crash, recovery (`maintenance.rs`) replays the journal: it redoes renames whose
//! temp file is intact (checked against the recorded hash) and re-indexes the entries. A file
//! reaches `archive/` only after its journal record is durable, so nothing unindexed is ever
//! left there.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::index::IndexEntry;
use crate::ingest::{StoreError, StoreOutcome};
use crate::{DuplicatePolicy, Shared, SyncMode, layout};

pub(crate) struct CommitJob {
    pub tmp_path: PathBuf,
    /// `tmp_path`'s name is already durable (a spare, `spare.rs`): in `Fsync` mode a batch of
    /// only such files needs no fsync of `tmp/`.
    pub name_durable: bool,
    pub entry: IndexEntry,
    pub reply: Sender<Result<StoreOutcome, StoreError>>,
    /// An admin's "replace" of a conflict: overwrite whatever the policy says.
    pub replace: bool,
    /// `Fsync` mode: the receiving thread's fdatasync of the temp file, still running when
    /// the job was submitted. The batch writes and syncs its journal meanwhile, so the two
    /// syncs share the file system's journal commit and the disk's flush, and waits for this
    /// before the commit point. (A record durable before its file is harmless: recovery files
    /// only a temp file whose hash matches.)
    pub data_synced: Option<Receiver<io::Result<()>>>,
}

/// What the committer thread is asked to do.
pub(crate) enum Msg {
    Job(Box<CommitJob>),
    /// Jobs committed as one batch (a bulk writer's staged instances): one journal sync.
    Batch(Vec<CommitJob>),
    /// Checkpoint now (the journal emptied) and say how it went: an edit must not leave
    /// journal records that a restart would replay over the files it replaced.
    Checkpoint(Sender<io::Result<()>>),
}

/// One line of the journal: enough to finish the job after a crash.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct JournalRecord {
    /// File name inside `tmp/`.
    pub tmp_name: String,
    /// Target relative to the data directory (`archive/…` or `conflicts/…`).
    pub target: String,
    /// xxh3 of the file, to tell a complete temp file from one whose data never hit the disk.
    pub file_hash: u64,
    /// `None` for a conflicting copy kept aside (not indexed).
    pub entry: Option<IndexEntry>,
}

/// Handle to the committer thread; the thread checkpoints and ends when the last handle is
/// dropped.
pub struct Committer {
    tx: Mutex<Option<Sender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

const MAX_BATCH: usize = 512;
/// Quiet time after which deferred work is checkpointed.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);
/// Journal records after which a checkpoint is forced even under load (bounds recovery work).
const CHECKPOINT_RECORDS: usize = 4096;

impl Committer {
    pub(crate) fn start(shared: Arc<Shared>) -> io::Result<Committer> {
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        let volume = File::open(&shared.root)?;
        let journal = OpenOptions::new()
            .append(true)
            .create(true)
            .open(layout::journal_path(&shared.root))?;
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || {
                let journal_len = journal.metadata().map(|m| m.len()).unwrap_or(0);
                let mut c = CommitThread {
                    shared,
                    volume,
                    journal,
                    journal_len,
                    pending_records: 0,
                    touched_dirs: Default::default(),
                };
                c.run(rx);
            })?;
        Ok(Committer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn submit(&self, job: CommitJob) -> Result<(), StoreError> {
        self.send(Msg::Job(Box::new(job)))
    }

    /// Submits jobs to be committed together (with whatever else is waiting).
    pub(crate) fn submit_batch(&self, jobs: Vec<CommitJob>) -> Result<(), StoreError> {
        self.send(Msg::Batch(jobs))
    }

    fn send(&self, msg: Msg) -> Result<(), StoreError> {
        let guard = self.tx.lock().map_err(|_| StoreError::ShuttingDown)?;
        match guard.as_ref() {
            Some(tx) => tx.send(msg).map_err(|_| StoreError::ShuttingDown),
            None => Err(StoreError::ShuttingDown),
        }
    }

    /// Commits what is queued, then checkpoints: every journal record so far is in the
    /// durable index and the journal is empty when this returns `Ok`.
    pub(crate) fn checkpoint_now(&self) -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Msg::Checkpoint(tx))
            .map_err(|e| io::Error::other(e.to_string()))?;
        rx.recv()
            .map_err(|_| io::Error::other("the committer stopped"))?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

/// syncfs(2): flushes every dirty page and inode of the data volume in one call.
pub(crate) fn sync_volume(volume: &File) -> io::Result<()> {
    // SAFETY: syncfs takes a valid open descriptor of any file on the volume.
    if unsafe { libc::syncfs(volume.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Frames a record: length, xxh3 of the payload, payload. A torn tail fails the check.
pub(crate) fn encode_record(r: &JournalRecord) -> io::Result<Vec<u8>> {
    let payload = postcard::to_allocvec(r).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Every intact record from the start of the journal; stops at the first torn or corrupt one.
pub(crate) fn decode_records(bytes: &[u8]) -> Vec<JournalRecord> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while let Some(head) = bytes.get(p..p + 12) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let sum = u64::from_le_bytes([
            head[4], head[5], head[6], head[7], head[8], head[9], head[10], head[11],
        ]);
        let Some(payload) = bytes.get(p + 12..p + 12 + len) else {
            break;
        };
        if xxhash_rust::xxh3::xxh3_64(payload) != sum {
            break;
        }
        match postcard::from_bytes(payload) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        p += 12 + len;
    }
    out
}

enum Plan {
    File {
        target_rel: String,
        index: bool,
        outcome: StoreOutcome,
    },
    Done(StoreOutcome),
    /// Same as a job filed earlier in this batch: succeeds or fails with that batch.
    Follow(StoreOutcome),
}

/// What earlier jobs of the batch being planned will file.
#[derive(Default)]
struct BatchState {
    /// SOP Instance UID and data set hash of instances to be indexed.
    seen: Vec<(String, u64)>,
    /// `conflicts/` paths to be written, and their bytes.
    conflicts: Vec<String>,
    conflict_bytes: u64,
}

struct CommitThread {
    shared: Arc<Shared>,
    volume: File,
    journal: File,
    journal_len: u64,
    pending_records: usize,
    /// Directories renamed into since the last checkpoint (Fsync mode).
    touched_dirs: std::collections::HashSet<PathBuf>,
}

impl CommitThread {
    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            let mut batch = match rx.recv_timeout(CHECKPOINT_IDLE) {
                Ok(Msg::Job(job)) => vec![*job],
                Ok(Msg::Batch(jobs)) => jobs,
                Ok(Msg::Checkpoint(reply)) => {
                    let _ = reply.send(self.checkpoint());
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.checkpoint();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut asked = None;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Job(job)) => batch.push(*job),
                    Ok(Msg::Batch(jobs)) => batch.extend(jobs),
                    Ok(Msg::Checkpoint(reply)) => {
                        asked = Some(reply);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
            if let Some(reply) = asked {
                let _ = reply.send(self.checkpoint());
            } else if self.pending_records >= CHECKPOINT_RECORDS {
                let _ = self.checkpoint();
            }
        }
        let _ = self.checkpoint();
    }

    /// Makes renames and deferred index writes durable, then empties the journal.
    fn checkpoint(&mut self) -> io::Result<()> {
        if self.pending_records == 0 {
            return Ok(());
        }
        let result = self
            .make_renames_durable()
            .and_then(|()| self.shared.index.checkpoint().map_err(io::Error::other))
            .and_then(|()| self.journal.set_len(0));
        match result {
            Ok(()) => {
                self.pending_records = 0;
                self.journal_len = 0;
                self.touched_dirs.clear();
                Ok(())
            }
            // The journal stays; the next checkpoint or start-up recovery finishes the job.
            Err(e) => {
                tracing::error!(error = %e, "index checkpoint failed; will retry");
                Err(e)
            }
        }
    }

    /// Renames since the last checkpoint become durable: one syncfs, or an fsync of every
    /// directory they touched and of the directories above them (some were just created).
    fn make_renames_durable(&self) -> io::Result<()> {
        if self.shared.config.sync == SyncMode::Syncfs {
            return sync_volume(&self.volume);
        }
        let mut dirs: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
        for d in &self.touched_dirs {
            let mut p = d.as_path();
            while p.starts_with(&self.shared.root) {
                dirs.insert(p.to_path_buf());
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
        }
        for d in dirs {
            File::open(&d)?.sync_all()?;
        }
        Ok(())
    }

    fn plan(&self, job: &CommitJob, batch: &BatchState) -> Result<Plan, StoreError> {
        let rec = &job.entry.record;
        let sop = job.entry.attrs.sop_instance_uid.as_str();
        let existing = self.shared.index.instance(sop)?;
        let earlier = batch.seen.iter().find(|(s, _)| s == sop).map(|(_, h)| *h);
        let in_batch = earlier.is_some();
        if earlier == Some(rec.dataset_hash) {
            return Ok(Plan::Follow(StoreOutcome::DuplicateIdentical));
        }
        if existing
            .as_ref()
            .is_some_and(|e| e.dataset_hash == rec.dataset_hash)
        {
            return Ok(Plan::Done(StoreOutcome::DuplicateIdentical));
        }
        if existing.is_none() && !in_batch {
            return Ok(Plan::File {
                target_rel: rec.rel_path.clone(),
                index: true,
                outcome: StoreOutcome::Stored,
            });
        }
        let overwrite = job.replace || self.shared.config.duplicates == DuplicatePolicy::Overwrite;
        match existing {
            Some(_) if overwrite => Ok(Plan::File {
                target_rel: rec.rel_path.clone(),
                index: true,
                outcome: StoreOutcome::Overwritten,
            }),
            _ => {
                // A conflicting copy, or the same UID twice in one batch: the first one wins.
                let rel = crate::conflicts::rel_path(
                    sop,
                    rec.dataset_hash,
                    rec.rel_path.ends_with(".zst"),
                );
                if batch.conflicts.contains(&rel) {
                    return Ok(Plan::Follow(StoreOutcome::DuplicateKeptAside(rel)));
                }
                if self.shared.root.join(&rel).is_file() {
                    tracing::info!(
                        sop_instance_uid = sop,
                        source_ae = rec.source_ae,
                        kept_aside = rel,
                        "conflicting duplicate resent: already kept aside"
                    );
                    return Ok(Plan::Done(StoreOutcome::DuplicateKeptAside(rel)));
                }
                let stats = *self
                    .shared
                    .conflicts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if stats.would_overflow(batch.conflict_bytes, rec.file_size) {
                    tracing::error!(
                        sop_instance_uid = sop,
                        source_ae = rec.source_ae,
                        conflicts_bytes = stats.bytes,
                        cap = stats.max_bytes,
                        "conflicts/ is full: conflicting duplicate refused (A700)"
                    );
                    return Err(StoreError::ConflictsFull {
                        bytes: stats.bytes,
                        max_bytes: stats.max_bytes,
                    });
                }
                tracing::warn!(
                    sop_instance_uid = sop,
                    source_ae = rec.source_ae,
                    kept_aside = rel,
                    "instance with an already stored SOP Instance UID but different content: original kept"
                );
                Ok(Plan::File {
                    target_rel: rel.clone(),
                    index: false,
                    outcome: StoreOutcome::DuplicateKeptAside(rel),
                })
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<CommitJob>) {
        let mut state = BatchState::default();
        let mut planned = Vec::with_capacity(batch.len());
        let mut followers = Vec::new();
        for job in batch {
            let p = self.plan(&job, &state);
            match &p {
                Ok(Plan::File { index: true, .. }) => state.seen.push((
                    job.entry.attrs.sop_instance_uid.to_string(),
                    job.entry.record.dataset_hash,
                )),
                Ok(Plan::File {
                    index: false,
                    target_rel,
                    ..
                }) => {
                    state.conflicts.push(target_rel.clone());
                    state.conflict_bytes += job.entry.record.file_size;
                }
                _ => {}
            }
            match p {
                Ok(Plan::Done(outcome)) => {
                    let _ = std::fs::remove_file(&job.tmp_path);
                    let _ = job.reply.send(Ok(outcome));
                }
                Ok(file @ Plan::File { .. }) => planned.push((job, file)),
                Ok(follow @ Plan::Follow(_)) => followers.push((job, follow)),
                Err(e) => {
                    let _ = std::fs::remove_file(&job.tmp_path);
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if planned.is_empty() {
            // Followers follow a filed job; with none filed there are none.
            debug_assert!(followers.is_empty());
            return;
        }
        if let Err(e) = self.journal_and_sync(&planned) {
            // A torn record would hide every later one from recovery: cut it off. Records that
            // did get written name temp files deleted below, so replay skips them.
            if let Err(e) = self.journal.set_len(self.journal_len) {
                tracing::error!(error = %e, "cannot cut the journal back after a failed batch");
            }
            fail_all(planned, "making the batch durable", &e);
            fail_all(followers, "making the batch durable", &e);
            return;
        }
        self.pending_records += planned.len();
        // Committed. From here a failure is not the peer's problem: recovery finishes the job.
        let swap_lock = self.shared.swap_lock();
        let mut entries = Vec::with_capacity(planned.len());
        let mut replies = Vec::with_capacity(planned.len());
        for (job, plan) in planned {
            let Plan::File {
                target_rel,
                index,
                outcome,
            } = plan
            else {
                continue;
            };
            let target = self.shared.root.join(&target_rel);
            // The replaced instance's file, looked up under the swap lock: the compactor may
            // have swapped its `.dcm` for a `.dcm.zst` since the plan was made.
            let obsolete = (outcome == StoreOutcome::Overwritten)
                .then(|| {
                    self.shared
                        .index
                        .instance(job.entry.attrs.sop_instance_uid.as_str())
                })
                .and_then(|r| r.ok().flatten())
                .filter(|old| old.rel_path != target_rel)
                .map(|old| self.shared.root.join(old.rel_path));
            if let Some(dir) = target.parent() {
                self.touched_dirs.insert(dir.to_path_buf());
            }
            // The conflicts' count moves with the rename, so resolving never counts a file twice.
            let conflict_stats = (!index).then(|| {
                self.shared
                    .conflicts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            });
            if let Err(e) = rename_into_place(&job.tmp_path, &target) {
                tracing::error!(file = %target.display(), error = %e, "moving a committed instance into place; recovery will retry");
            } else if let Some(mut stats) = conflict_stats {
                stats.count += 1;
                stats.bytes += job.entry.record.file_size;
            }
            if let Some(old) = obsolete {
                let _ = std::fs::remove_file(old);
            }
            if index {
                if outcome == StoreOutcome::Stored
                    && let Ok(mut log) = self.shared.activity.lock()
                {
                    let r = &job.entry.record;
                    log.record(
                        r.received_unix,
                        &job.entry.attrs.modality,
                        &r.source_ae,
                        &r.study_uid,
                    );
                }
                entries.push(job.entry);
            }
            replies.push((job.reply, outcome));
        }
        if let Err(e) = self
            .shared
            .index
            .insert_batch_deferred(&entries, self.shared.config.forwarding)
        {
            tracing::error!(error = %e, "indexing a committed batch failed; the journal keeps it for recovery");
        }
        // Still under the swap lock: the compactor's sweep takes its snapshot of the index
        // under it too, so an instance is either in that snapshot or noted here after it,
        // never both (the count of plain instances waiting to age stays exact).
        if self.shared.compresses_when_idle() {
            for e in &entries {
                if crate::compact::is_plain_native(&e.record.rel_path, &e.record.transfer_syntax) {
                    self.shared.compact_queue.filed_plain(
                        self.shared.config.compress_after,
                        e.attrs.sop_instance_uid.to_string(),
                        &e.record,
                    );
                }
            }
        }
        drop(swap_lock);
        for (reply, outcome) in replies {
            let _ = reply.send(Ok(outcome));
        }
        for (job, plan) in followers {
            let _ = std::fs::remove_file(&job.tmp_path);
            if let Plan::Follow(outcome) = plan {
                let _ = job.reply.send(Ok(outcome));
            }
        }
    }

    fn journal_and_sync(&mut self, planned: &[(CommitJob, Plan)]) -> io::Result<()> {
        let mut buf = Vec::new();
        for (job, plan) in planned {
            let Plan::File {
                target_rel, index, ..
            } = plan
            else {
                continue;
            };
            let tmp_name = job
                .tmp_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            buf.extend(encode_record(&JournalRecord {
                tmp_name,
                target: target_rel.clone(),
                file_hash: job.entry.record.file_hash,
                entry: index.then(|| job.entry.clone()),
            })?);
        }
        self.journal.write_all(&buf)?;
        match self.shared.config.sync {
            SyncMode::Fsync => {
                // The files' data was synced by their receiving threads; the journal records
                // remain, and the names in tmp/ of files that were not spares.
                self.journal.sync_data()?;
                if planned.iter().any(|(job, _)| !job.name_durable) {
                    File::open(layout::tmp_dir(&self.shared.root))?.sync_all()?;
                }
                for (job, _) in planned {
                    if let Some(synced) = &job.data_synced {
                        synced.recv().map_err(|_| {
                            io::Error::other(
                                "the receiving thread ended before its file was synced",
                            )
                        })??;
                    }
                }
            }
            _ => sync_volume(&self.volume)?,
        }
        self.journal_len += buf.len() as u64;
        Ok(())
    }
}

fn fail_all(jobs: Vec<(CommitJob, Plan)>, what: &str, e: &io::Error) {
    tracing::error!(error = %e, "{what}; batch of {} refused", jobs.len());
    let enospc = e.raw_os_error() == Some(libc::ENOSPC);
    for (job, _) in jobs {
        let _ = std::fs::remove_file(&job.tmp_path);
        let err = if enospc {
            StoreError::OutOfSpace { free: 0 }
        } else {
            StoreError::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
        };
        let _ = job.reply.send(Err(err));
    }
}

/// Renames first and creates the target's directories only when that fails for want of them:
/// most instances join a series directory an earlier one made, and a `mkdir` that fails with
/// `EEXIST` plus a `stat` per instance is work on the acknowledgement path for nothing.
pub(crate) fn rename_into_place(tmp: &Path, target: &Path) -> io::Result<()> {
    match std::fs::rename(tmp, target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(tmp, target)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_into_place_creates_missing_directories_and_reuses_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("a.part");
        let first = dir.path().join("archive/st/se/1.dcm");
        std::fs::write(&tmp, b"one").unwrap();
        rename_into_place(&tmp, &first).unwrap();
        assert_eq!(std::fs::read(&first).unwrap(), b"one");
        assert!(!tmp.exists());
        // the series directory exists now: the second rename needs no mkdir
        let second = dir.path().join("archive/st/se/2.dcm");
        std::fs::write(&tmp, b"two").unwrap();
        rename_into_place(&tmp, &second).unwrap();
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        // a temp file that is gone is still an error after the retry
        let err = rename_into_place(&tmp, &dir.path().join("archive/x/y/3.dcm")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
