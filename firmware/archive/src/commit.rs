//! The group commit: the one place that makes received instances durable.
//!
//! Jobs from every association queue up here; a single thread takes all that are waiting
//! and, for the whole batch:
//! 1. decides each job: new, identical duplicate (dropped), conflicting duplicate (kept aside
//!    under `conflicts/`) or overwrite;
//! 2. writes the batch's archive paths to `DATA/journal` and `fdatasync`s it, so a crash
//!    after step 3 can find and undo files that were never indexed;
//! 3. renames each temp file into place;
//! 4. `syncfs` the data volume once: file contents, new directories and renames are durable;
//! 5. commits the index entries in one redb transaction (durable, quick-repair);
//! 6. only then answers every waiting association.
//!
//! So a batch costs three syncs however many instances it holds: with several associations
//! sending at once the per-instance cost falls instead of collapsing to an fsync per file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::index::IndexEntry;
use crate::ingest::{StoreError, StoreOutcome};
use crate::{DuplicatePolicy, Shared, layout};

pub(crate) struct CommitJob {
    pub tmp_path: PathBuf,
    pub entry: IndexEntry,
    pub reply: Sender<Result<StoreOutcome, StoreError>>,
}

/// Handle to the committer thread; the thread ends when the last handle is dropped.
pub struct Committer {
    tx: Mutex<Option<Sender<CommitJob>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

const MAX_BATCH: usize = 512;

impl Committer {
    pub(crate) fn start(shared: Arc<Shared>) -> io::Result<Committer> {
        let (tx, rx) = std::sync::mpsc::channel::<CommitJob>();
        let volume = File::open(&shared.root)?;
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(shared, volume, rx))?;
        Ok(Committer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn submit(&self, job: CommitJob) -> Result<(), StoreError> {
        let guard = self.tx.lock().map_err(|_| StoreError::ShuttingDown)?;
        match guard.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| StoreError::ShuttingDown),
            None => Err(StoreError::ShuttingDown),
        }
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

fn run(shared: Arc<Shared>, volume: File, rx: Receiver<CommitJob>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&shared, &volume, batch);
    }
}

enum Plan {
    /// rename tmp -> target, index the entry
    File {
        target: PathBuf,
        index: bool,
        /// file of the replaced instance to remove after commit (overwrite to a new path)
        obsolete: Option<PathBuf>,
        outcome: StoreOutcome,
    },
    Done(StoreOutcome),
}

fn plan(shared: &Shared, job: &CommitJob, seen: &[String]) -> Result<Plan, StoreError> {
    let rec = &job.entry.record;
    let sop = job.entry.attrs.sop_instance_uid.as_str();
    let existing = shared.index.instance(sop)?;
    let in_batch = seen.iter().any(|s| s == sop);
    let same = existing
        .as_ref()
        .is_some_and(|e| e.dataset_hash == rec.dataset_hash);
    if same {
        return Ok(Plan::Done(StoreOutcome::DuplicateIdentical));
    }
    let target = shared.root.join(&rec.rel_path);
    if existing.is_none() && !in_batch {
        return Ok(Plan::File {
            target,
            index: true,
            obsolete: None,
            outcome: StoreOutcome::Stored,
        });
    }
    match (shared.config.duplicates, existing) {
        (DuplicatePolicy::Overwrite, Some(old)) => Ok(Plan::File {
            obsolete: (old.rel_path != rec.rel_path).then(|| shared.root.join(&old.rel_path)),
            target,
            index: true,
            outcome: StoreOutcome::Overwritten,
        }),
        _ => {
            // Sent twice within one batch, or a conflicting copy: the first one wins.
            let name = format!(
                "{sop}.{}.{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                if rec.rel_path.ends_with(".zst") {
                    "dcm.zst"
                } else {
                    "dcm"
                }
            );
            let rel = format!("conflicts/{name}");
            tracing::warn!(
                sop_instance_uid = sop,
                source_ae = rec.source_ae,
                kept_aside = rel,
                "instance with an already stored SOP Instance UID but different content: original kept"
            );
            Ok(Plan::File {
                target: shared.root.join(&rel),
                index: false,
                obsolete: None,
                outcome: StoreOutcome::DuplicateKeptAside(rel),
            })
        }
    }
}

fn commit_batch(shared: &Shared, volume: &File, batch: Vec<CommitJob>) {
    let mut seen: Vec<String> = Vec::with_capacity(batch.len());
    let mut planned = Vec::with_capacity(batch.len());
    for job in batch {
        let p = plan(shared, &job, &seen);
        if let Ok(Plan::File { index: true, .. }) = &p {
            seen.push(job.entry.attrs.sop_instance_uid.to_string());
        }
        match p {
            Ok(Plan::Done(outcome)) => {
                let _ = std::fs::remove_file(&job.tmp_path);
                let _ = job.reply.send(Ok(outcome));
            }
            Ok(file @ Plan::File { .. }) => planned.push((job, file)),
            Err(e) => {
                let _ = std::fs::remove_file(&job.tmp_path);
                let _ = job.reply.send(Err(e));
            }
        }
    }
    if planned.is_empty() {
        return;
    }
    let targets: Vec<&Path> = planned
        .iter()
        .filter_map(|(_, p)| match p {
            Plan::File { target, .. } => Some(target.as_path()),
            Plan::Done(_) => None,
        })
        .collect();
    if let Err(e) = write_journal(&shared.root, &targets) {
        fail_all(planned, &format!("writing commit journal: {e}"), e);
        return;
    }
    let mut moved = Vec::with_capacity(planned.len());
    for (job, p) in planned {
        let Plan::File { target, .. } = &p else {
            continue;
        };
        match rename_into_place(&job.tmp_path, target) {
            Ok(()) => moved.push((job, p)),
            Err(e) => {
                tracing::error!(file = %target.display(), error = %e, "moving instance into the archive");
                let _ = std::fs::remove_file(&job.tmp_path);
                let _ = job.reply.send(Err(StoreError::Io(e)));
            }
        }
    }
    if moved.is_empty() {
        return;
    }
    // SAFETY: syncfs takes a valid open descriptor of any file on the volume.
    if unsafe { libc::syncfs(volume.as_raw_fd()) } != 0 {
        let e = io::Error::last_os_error();
        undo(&moved);
        fail_all(moved, "syncfs of the data volume", e);
        return;
    }
    let entries: Vec<IndexEntry> = moved
        .iter()
        .filter(|(_, p)| matches!(p, Plan::File { index: true, .. }))
        .map(|(j, _)| j.entry.clone())
        .collect();
    if let Err(e) = shared.index.insert_batch(&entries) {
        tracing::error!(error = %e, "index commit failed; batch undone");
        undo(&moved);
        for (job, _) in moved {
            let _ = job
                .reply
                .send(Err(StoreError::Io(io::Error::other(e.to_string()))));
        }
        return;
    }
    for (job, p) in moved {
        if let Plan::File {
            outcome, obsolete, ..
        } = p
        {
            if let Some(old) = obsolete {
                let _ = std::fs::remove_file(old);
            }
            let _ = job.reply.send(Ok(outcome));
        }
    }
}

fn fail_all(jobs: Vec<(CommitJob, Plan)>, what: &str, e: io::Error) {
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

/// Removes files a failed batch already renamed into place, so nothing unindexed stays there.
fn undo(moved: &[(CommitJob, Plan)]) {
    for (_, p) in moved {
        if let Plan::File {
            target,
            index: true,
            outcome: StoreOutcome::Stored,
            ..
        } = p
        {
            let _ = std::fs::remove_file(target);
        }
    }
}

fn rename_into_place(tmp: &Path, target: &Path) -> io::Result<()> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(tmp, target)
}

fn write_journal(root: &Path, targets: &[&Path]) -> io::Result<()> {
    let mut text = String::new();
    for t in targets {
        if let Ok(rel) = t.strip_prefix(root) {
            text.push_str(&rel.to_string_lossy());
            text.push('\n');
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(layout::journal_path(root))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}
