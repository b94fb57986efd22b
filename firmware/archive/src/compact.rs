//! Compression off the acknowledgement path: native-syntax instances are acknowledged once
//! their plain `.dcm` is durable, and this thread turns them into `.dcm.zst` when the archive
//! has been quiet for a while.
//!
//! On a 2-core board zstd on the receiving thread halved large-image ingest (bench/README.md,
//! "Compression when idle"); a clinic's modalities send in bursts with long quiet spells
//! between them, which is when the CPU is free.
//!
//! A batch of instances at a time (up to 64, or 64 MB), crash-safe at every step:
//! 1. compress each `<sop>.dcm` into `tmp/`, checking the plain file against the hash recorded
//!    at ingest; make the batch durable (one `syncfs`, or an fdatasync per file);
//! 2. write the marker `DATA/compacting` (the batch's swaps, fsynced);
//! 3. under the archive's swap lock: rename each `.zst` next to its `.dcm`, point the index at
//!    them in one durable commit (each only if its record still names that `.dcm` with that
//!    hash: an overwrite in between wins), unlink the `.dcm`s, fsync their folders;
//! 4. remove the marker.
//!
//! At any moment one complete copy exists and readers fall back from a vanished `.dcm` to its
//! `.dcm.zst` (`Archive::open_part10`). After a crash [`recover`] reads the marker and finishes
//! or undoes the swaps in flight. Instances left plain by a stop are found again by a scan
//! of the index when the thread starts.
//!
//! With `compress_after` (default 30 days) an instance stays plain until it was received that
//! long ago: recent studies are the ones exported and read, and a plain file is served at the
//! disk's speed. The committer then only notes when the earliest of them comes of age; the
//! thread sweeps the index (the records' received time; no directory walk) at start, when
//! that moment comes (at most one sweep per `min(compress_after, 1 h)`) and hourly, and
//! queues those old enough. A zero `compress_after` queues each instance as it is filed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::index::Index;
use crate::maintenance::hash_file;
use crate::part10::HashingWriter;
use crate::record::InstanceRecord;
use crate::{Shared, SyncMode, layout, transfer_syntax};

/// Quiet time (no store in flight, none ended) before compression starts.
pub(crate) const IDLE_BEFORE: Duration = Duration::from_secs(2);
/// Instances per batch, and plain bytes after which a batch stops taking more: one marker,
/// one sync and one index commit per batch instead of per instance.
const BATCH: usize = 64;
const BATCH_BYTES: u64 = 64 << 20;
/// Instances queued in memory; past it the queue is dropped and the index scanned again once
/// it has drained (a UID is ~64 bytes: this caps the queue near 4 MB).
const QUEUE_CAP: usize = 65_536;
/// With `compress_after`, the index is swept at least this often: a safety net for an
/// instance whose due time was missed (a clock set back, a queue overflow).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Whether stores are going on: the compactor waits for quiet.
pub(crate) struct Quiet {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the last store ended.
    last_end_ms: AtomicU64,
    epoch: Instant,
}

impl Quiet {
    pub(crate) fn new() -> Quiet {
        Quiet {
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Counts a store in flight until the guard drops.
    pub(crate) fn store_begins(self: &Arc<Self>) -> StoreInFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        StoreInFlight(self.clone())
    }

    /// A store is in flight: a batch stops taking more instances.
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    /// How much longer to wait for `IDLE_BEFORE` of quiet; zero when quiet.
    fn wait_left(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return IDLE_BEFORE;
        }
        let since_last = self.epoch.elapsed().saturating_sub(Duration::from_millis(
            self.last_end_ms.load(Ordering::SeqCst),
        ));
        IDLE_BEFORE.saturating_sub(since_last)
    }
}

pub(crate) struct StoreInFlight(Arc<Quiet>);

impl Drop for StoreInFlight {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(now, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct QueueState {
    pending: VecDeque<String>,
    /// What `pending` holds: an instance stored and then overwritten is queued once.
    queued: std::collections::HashSet<String>,
    /// The index may hold plain instances the queue does not (at start, after an overflow):
    /// scan it as soon as the queue is empty.
    rescan: bool,
    /// Instances taken for the batch being compressed.
    busy: usize,
    stop: bool,
    /// Plain instances too young to compress, as the last sweep of the index found them...
    swept: Aging,
    /// ...and as filed since that sweep began (one filed during a sweep may be in both).
    filed: Aging,
    /// When the last sweep began; `None` before the first.
    last_sweep: Option<Instant>,
}

/// Plain instances waiting to reach `compress_after`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Aging {
    instances: u64,
    bytes: u64,
    /// Unix second from which the earliest of them is old enough.
    earliest_due: Option<i64>,
}

impl Aging {
    fn add(&mut self, due: i64, bytes: u64) {
        self.instances += 1;
        self.bytes += bytes;
        self.earliest_due = Some(self.earliest_due.map_or(due, |d| d.min(due)));
    }

    fn earliest_due(&self, other: &Aging) -> Option<i64> {
        match (self.earliest_due, other.earliest_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The Unix second from which an instance received at `received_unix` is `after` old.
/// Both seconds are truncated, so one more makes it never early (at most 2 s late).
fn due_unix(after: Duration, received_unix: i64) -> i64 {
    let secs = after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0));
    received_unix
        .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
        .saturating_add(1)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Instances waiting for compression; the committer adds what it filed plain.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, sop_uid: String) {
        self.lock().push(sop_uid);
        self.wake.notify_one();
    }

    /// Instances waiting or being compressed; at least 1 while a scan of the index is due.
    pub(crate) fn len(&self) -> usize {
        let s = self.lock();
        s.pending.len() + s.busy + usize::from(s.rescan)
    }

    /// The committer filed `rec` plain: queued now, or left to age until `after` (a sweep of
    /// the index finds it then; the thread is woken to wait for the right moment).
    pub(crate) fn filed_plain(&self, after: Duration, sop_uid: String, rec: &InstanceRecord) {
        if after.is_zero() {
            return self.push(sop_uid);
        }
        self.lock()
            .filed
            .add(due_unix(after, rec.received_unix), rec.file_size);
        self.wake.notify_one();
    }

    /// Plain instances waiting to age, and their bytes.
    pub(crate) fn waiting(&self) -> (u64, u64) {
        let s = self.lock();
        (
            s.swept.instances + s.filed.instances,
            s.swept.bytes + s.filed.bytes,
        )
    }
}

impl QueueState {
    fn push(&mut self, sop_uid: String) {
        if self.queued.contains(&sop_uid) {
            return;
        }
        if self.pending.len() >= QUEUE_CAP {
            self.rescan = true;
        } else {
            self.queued.insert(sop_uid.clone());
            self.pending.push_back(sop_uid);
        }
    }

    /// How long until the index should be swept for instances that came of age; `None`
    /// when nothing ages (`compress_after` zero) or the first scan is still due.
    fn sweep_in(&self, after: Duration) -> Option<Duration> {
        if after.is_zero() {
            return None;
        }
        let last = self.last_sweep?;
        let now = Instant::now();
        let mut at = last + SWEEP_EVERY;
        if let Some(due) = self.swept.earliest_due(&self.filed) {
            let wait = u64::try_from(due.saturating_sub(unix_now())).unwrap_or(0);
            let due_at = now + Duration::from_secs(wait);
            at = at.min(due_at.max(last + after.min(SWEEP_EVERY)));
        }
        Some(at.saturating_duration_since(now))
    }

    fn take(&mut self, n: usize) -> Vec<String> {
        let taken: Vec<String> = self.pending.drain(..n.min(self.pending.len())).collect();
        for sop in &taken {
            self.queued.remove(sop);
        }
        self.busy = taken.len();
        taken
    }
}

/// The compactor thread; stops (between two instances) when dropped.
pub(crate) struct Compactor {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compactor {
    pub(crate) fn start(shared: Arc<Shared>) -> io::Result<Compactor> {
        shared.compact_queue.lock().rescan = true;
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("compact".into())
            .spawn(move || run(&s))?;
        Ok(Compactor {
            shared,
            thread: Some(thread),
        })
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.shared.compact_queue.lock().stop = true;
        self.shared.compact_queue.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared) {
    // Ingest and the web page come first: the kernel gives this thread what they leave.
    // SAFETY: setpriority on our own thread id; no pointers involved.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS as _, libc::gettid() as libc::id_t, 10);
    }
    let queue = &shared.compact_queue;
    let after = shared.config.compress_after;
    loop {
        let mut s = queue.lock();
        while !s.stop && s.pending.is_empty() && !s.rescan {
            s = match s.sweep_in(after) {
                Some(d) if d.is_zero() => {
                    s.rescan = true;
                    break;
                }
                Some(d) => queue
                    .wake
                    .wait_timeout(s, d)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0),
                None => queue.wake.wait(s).unwrap_or_else(|p| p.into_inner()),
            };
        }
        if s.stop {
            return;
        }
        // Reading the index costs ingest nothing: no need to wait for quiet.
        if s.rescan && s.pending.is_empty() {
            drop(s);
            scan(shared);
            continue;
        }
        let left = shared.quiet.wait_left();
        if !left.is_zero() {
            // Woken early by a push or a stop; either way the loop checks again.
            drop(
                queue
                    .wake
                    .wait_timeout(s, left.max(Duration::from_millis(50)))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0),
            );
            continue;
        }
        let batch = s.take(BATCH);
        drop(s);
        let left = compact_batch(shared, batch);
        let mut s = queue.lock();
        for sop in left {
            s.push(sop);
        }
        s.busy = 0;
    }
}

/// Queues every instance still stored plain whose syntax gets zstd and that is
/// `compress_after` old; notes when the others come of age.
fn scan(shared: &Shared) {
    let after = shared.config.compress_after;
    let now = unix_now();
    let mut found = Vec::new();
    let mut more = false;
    let mut young = Aging::default();
    // The committer notes what it filed under the swap lock: holding it while the snapshot is
    // taken puts each instance either in the snapshot or in `filed` from here on.
    let swap = shared.swap_lock();
    let taken = || {
        let mut s = shared.compact_queue.lock();
        s.filed = Aging::default();
        s.last_sweep = Some(Instant::now());
        drop(s);
        drop(swap);
    };
    let r = shared
        .index
        .for_each_instance_of_snapshot(taken, |sop, rec| {
            if !is_plain_native(&rec.rel_path, &rec.transfer_syntax) {
                return;
            }
            let due = due_unix(after, rec.received_unix);
            if !after.is_zero() && due > now {
                young.add(due, rec.file_size);
            } else if found.len() < QUEUE_CAP {
                found.push(sop.to_owned());
            } else {
                more = true;
            }
        });
    if let Err(e) = r {
        // Not retried until the next start (or, with `compress_after`, the hourly sweep): a
        // failing index would fail again at once.
        tracing::error!(error = %e, "scanning the index for uncompressed instances failed");
        let mut s = shared.compact_queue.lock();
        s.rescan = false;
        s.last_sweep.get_or_insert_with(Instant::now);
        return;
    }
    if young.instances > 0 {
        tracing::debug!(
            instances = young.instances,
            bytes = young.bytes,
            "uncompressed instances kept plain until they are compress_after old"
        );
    }
    if !found.is_empty() {
        tracing::info!(
            instances = found.len(),
            "uncompressed instances found; compressing when idle"
        );
    }
    let mut s = shared.compact_queue.lock();
    s.rescan = false;
    s.swept = young;
    for sop in found {
        s.push(sop);
    }
    s.rescan |= more;
}

pub(crate) fn is_plain_native(rel_path: &str, transfer_syntax: &str) -> bool {
    rel_path.starts_with("archive/")
        && rel_path.ends_with(".dcm")
        && transfer_syntax::store_zstd(transfer_syntax)
}

fn marker_path(root: &Path) -> PathBuf {
    root.join("compacting")
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CompactError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("index: {0}")]
    Index(#[from] crate::IndexError),
    #[error("{path} no longer has the content recorded at ingest; left for verify to report")]
    Changed { path: String },
}

/// One instance's swap: its plain file and the `.zst` replacing it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Swap {
    sop_uid: String,
    plain_rel: String,
    plain_hash: u64,
    zst_rel: String,
    zst_hash: u64,
    zst_size: u64,
}

impl Swap {
    fn as_index_swap(&self) -> crate::index::FileSwap<'_> {
        crate::index::FileSwap {
            sop_uid: &self.sop_uid,
            from: (&self.plain_rel, self.plain_hash),
            to: (&self.zst_rel, self.zst_size, self.zst_hash),
        }
    }
}

/// Compresses a batch of instances (those still stored plain) with one sync, one marker and
/// one index commit for all; returns the UIDs it left for later (a store began, or the batch
/// is big enough).
fn compact_batch(shared: &Shared, sops: Vec<String>) -> Vec<String> {
    let mut prepared = Vec::new();
    let mut plain_bytes = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut sops = sops.into_iter();
    for sop in sops.by_ref() {
        // Queued twice (stored, then overwritten): two swaps to one `.zst` path would have
        // the second, refused by the index, delete the first's file.
        if !seen.insert(sop.clone()) {
            continue;
        }
        match prepare(shared, &sop) {
            Ok(Some((swap, tmp, size))) => {
                plain_bytes += size;
                prepared.push((swap, tmp));
            }
            Ok(None) => {}
            // Left plain and readable; the next start's scan tries again.
            Err(e) => {
                tracing::warn!(sop_instance_uid = sop, error = %e, "compressing an archived instance failed; left uncompressed")
            }
        }
        if plain_bytes >= BATCH_BYTES || shared.quiet.busy() {
            break;
        }
    }
    let left = sops.collect();
    if !prepared.is_empty() {
        if let Err(e) = swap_batch(shared, &prepared) {
            tracing::warn!(instances = prepared.len(), error = %e, "swapping compressed instances in failed; left uncompressed");
        }
        for (_, tmp) in &prepared {
            let _ = std::fs::remove_file(tmp);
        }
    }
    left
}

/// Compresses one instance into `tmp/` if it is still stored plain: its swap, the temp file
/// and the plain size.
fn prepare(shared: &Shared, sop: &str) -> Result<Option<(Swap, PathBuf, u64)>, CompactError> {
    let Some(rec) = shared.index.instance(sop)? else {
        return Ok(None);
    };
    if !is_plain_native(&rec.rel_path, &rec.transfer_syntax) {
        return Ok(None);
    }
    let plain = shared.root.join(&rec.rel_path);
    let n = shared.nonce.fetch_add(1, Ordering::Relaxed);
    let tmp = layout::tmp_dir(&shared.root).join(format!("{}-{n}.compact", std::process::id()));
    let compressed = match compress(&plain, &tmp, shared.config.zstd_level) {
        Ok(c) => c,
        // Overwritten or resolved away since it was queued.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !tmp.exists() => return Ok(None),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    if compressed.plain_hash != rec.file_hash {
        let _ = std::fs::remove_file(&tmp);
        return Err(CompactError::Changed { path: rec.rel_path });
    }
    let swap = Swap {
        sop_uid: sop.to_owned(),
        zst_rel: format!("{}.zst", rec.rel_path),
        plain_rel: rec.rel_path,
        plain_hash: rec.file_hash,
        zst_hash: compressed.hash,
        zst_size: compressed.size,
    };
    Ok(Some((swap, tmp, compressed.plain_size)))
}

fn swap_batch(shared: &Shared, prepared: &[(Swap, PathBuf)]) -> Result<(), CompactError> {
    // The compressed files' data first, as the committer makes received files durable.
    if shared.config.sync == SyncMode::Syncfs {
        crate::commit::sync_volume(&File::open(&shared.root)?)?;
    } else {
        for (_, tmp) in prepared {
            File::open(tmp)?.sync_data()?;
        }
    }
    let swaps: Vec<&Swap> = prepared.iter().map(|(s, _)| s).collect();
    write_marker(&shared.root, &swaps)?;
    // The committer renames and indexes under the same lock: an overwrite of one of these
    // instances lands wholly before or wholly after this swap.
    let _swap = shared.swap_lock();
    let done = (|| -> Result<(), CompactError> {
        let mut dirs = std::collections::BTreeSet::new();
        for (s, tmp) in prepared {
            let zst = shared.root.join(&s.zst_rel);
            std::fs::rename(tmp, &zst)?;
            if let Some(dir) = zst.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        // The new names are durable before the index names them.
        for dir in &dirs {
            File::open(dir)?.sync_all()?;
        }
        let index_swaps: Vec<_> = swaps.iter().map(|s| s.as_index_swap()).collect();
        let swapped = shared.index.swap_files(&index_swaps)?;
        for (s, swapped) in swaps.iter().zip(swapped) {
            // The losing copy: the plain one, or ours when an overwrite came first.
            let loser = if swapped { &s.plain_rel } else { &s.zst_rel };
            std::fs::remove_file(shared.root.join(loser))?;
        }
        for dir in dirs {
            File::open(dir)?.sync_all()?;
        }
        std::fs::remove_file(marker_path(&shared.root))?;
        Ok(())
    })();
    if done.is_err() {
        // Leave one copy of each and no marker, as a restart would.
        if let Err(e) = recover(&shared.root, &shared.index) {
            tracing::error!(error = %e, "undoing a failed compression; start-up recovery will");
        }
    }
    done
}

struct Compressed {
    plain_hash: u64,
    plain_size: u64,
    hash: u64,
    size: u64,
}

/// `src` into a zstd frame at `dst` (with a content checksum, so `zstd -t` checks a file
/// alone), not yet synced; hashes and sizes of both sides.
fn compress(src: &Path, dst: &Path, level: i32) -> io::Result<Compressed> {
    let mut input = BufReader::with_capacity(256 << 10, File::open(src)?);
    let out = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, File::create(dst)?));
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    enc.include_checksum(true)?;
    let mut plain = xxhash_rust::xxh3::Xxh3::new();
    let mut plain_size = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        plain.update(&buf[..n]);
        plain_size += n as u64;
        enc.write_all(&buf[..n])?;
    }
    let mut out = enc.finish()?;
    out.flush()?;
    Ok(Compressed {
        plain_hash: plain.digest(),
        plain_size,
        hash: out.hasher.digest(),
        size: out.written,
    })
}

fn write_marker(root: &Path, swaps: &[&Swap]) -> io::Result<()> {
    let payload = postcard::to_allocvec(swaps).map_err(io::Error::other)?;
    let mut bytes = xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    let path = marker_path(root);
    let mut f = File::create(&path)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    sync_parent(&path)
}

/// The marker's swaps, or `None` when there is none or it is torn (then its swaps never
/// began: the marker is synced before the renames).
fn read_marker(root: &Path) -> io::Result<Option<Vec<Swap>>> {
    let bytes = match std::fs::read(marker_path(root)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some((sum, payload)) = bytes.split_first_chunk::<8>() else {
        return Ok(None);
    };
    if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(*sum) {
        return Ok(None);
    }
    Ok(postcard::from_bytes(payload).ok())
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Finishes or undoes the swaps a crash interrupted; runs at open, before anything else
/// writes. Returns whether there were any.
pub(crate) fn recover(root: &Path, index: &Index) -> io::Result<bool> {
    let marker_file = marker_path(root);
    if !marker_file.exists() {
        return Ok(false);
    }
    if let Some(swaps) = read_marker(root)? {
        let mut finish = Vec::new();
        let mut revert = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        for s in &swaps {
            let zst = root.join(&s.zst_rel);
            if let Some(dir) = zst.parent() {
                dirs.insert(dir.to_path_buf());
            }
            let rec = index.instance(&s.sop_uid).map_err(io::Error::other)?;
            let names = |rel: &str| rec.as_ref().is_some_and(|r| r.rel_path == rel);
            if names(&s.zst_rel) {
                // Swapped; only the unlink of the plain copy may be missing. The `.zst`'s name
                // was synced before the index named it; should it be missing all the same (a
                // file system that broke that order), the plain copy is all there is.
                let plain = root.join(&s.plain_rel);
                if zst.is_file() {
                    remove_if_there(&plain)?;
                } else if plain.is_file() {
                    tracing::error!(
                        sop_instance_uid = s.sop_uid,
                        "index names a compressed file that is missing; pointed back at the plain copy"
                    );
                    let size = std::fs::metadata(&plain)?.len();
                    revert.push((s, size));
                }
            } else if names(&s.plain_rel) && zst.is_file() && hash_file(&zst)? == s.zst_hash {
                finish.push(s);
            } else {
                // Not begun, or the index moved on: the plain copy (if named) stays.
                remove_if_there(&zst)?;
            }
        }
        let back: Vec<_> = revert
            .iter()
            .map(|(s, size)| crate::index::FileSwap {
                sop_uid: &s.sop_uid,
                from: (&s.zst_rel, s.zst_hash),
                to: (&s.plain_rel, *size, s.plain_hash),
            })
            .collect();
        index.swap_files(&back).map_err(io::Error::other)?;
        let index_swaps: Vec<_> = finish.iter().map(|s| s.as_index_swap()).collect();
        let swapped = index.swap_files(&index_swaps).map_err(io::Error::other)?;
        for (s, swapped) in finish.iter().zip(swapped) {
            remove_if_there(&root.join(if swapped { &s.plain_rel } else { &s.zst_rel }))?;
        }
        for dir in dirs {
            if dir.is_dir() {
                File::open(dir)?.sync_all()?;
            }
        }
        tracing::info!(
            instances = swaps.len(),
            "finished an interrupted compression"
        );
    }
    std::fs::remove_file(&marker_file)?;
    sync_parent(&marker_file)?;
    Ok(true)
}

fn remove_if_there(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    //! The crash windows of a swap, reproduced by doing its steps by hand and reopening.

    use super::*;
    use crate::{Archive, ArchiveConfig, CompressAt, StoreRequest};

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    const SOP: &str = "1.2.3.4.5";

    fn element(out: &mut Vec<u8>, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) {
        out.extend(tag.0.to_le_bytes());
        out.extend(tag.1.to_le_bytes());
        out.extend(vr);
        if vr == b"OW" {
            out.extend([0, 0]);
            out.extend((value.len() as u32).to_le_bytes());
        } else {
            out.extend((value.len() as u16).to_le_bytes());
        }
        out.extend(value);
    }

    /// An archive holding one plain CT (stored with zstd off, so no compactor runs).
    fn plain_archive(root: &Path) -> Vec<u8> {
        let mut d = Vec::new();
        element(
            &mut d,
            (0x0008, 0x0016),
            b"UI",
            b"1.2.840.10008.5.1.4.1.1.2\0",
        );
        element(&mut d, (0x0008, 0x0018), b"UI", b"1.2.3.4.5\0");
        element(&mut d, (0x0020, 0x000D), b"UI", b"1.2.3\0");
        element(&mut d, (0x0020, 0x000E), b"UI", b"1.2.3.1\0");
        element(&mut d, (0x7FE0, 0x0010), b"OW", &[7u8; 8192]);
        let cfg = ArchiveConfig {
            reserve_bytes: 0,
            zstd_level: 0,
            ..ArchiveConfig::default()
        };
        let (archive, _) = Archive::open(root, cfg).unwrap();
        let req = StoreRequest {
            sop_class_uid: CT.into(),
            sop_instance_uid: SOP.into(),
            transfer_syntax: EXPLICIT_LE.into(),
            source_ae: "CT1".into(),
        };
        archive.begin_store(req).unwrap().receive(&d[..]).unwrap();
        read(&archive, &archive.index().instance(SOP).unwrap().unwrap())
    }

    fn read(archive: &Archive, rec: &crate::InstanceRecord) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut r = archive.open_part10(rec).unwrap();
        r.read_to_end(&mut bytes).unwrap();
        bytes
    }

    /// Reopens as the appliance would (compression at ingest, so no compactor interferes).
    fn reopen(root: &Path) -> Archive {
        let cfg = ArchiveConfig {
            reserve_bytes: 0,
            compress: CompressAt::Ingest,
            ..ArchiveConfig::default()
        };
        Archive::open(root, cfg).unwrap().0
    }

    /// Steps 1–2 of a swap, and optionally the rename and the index commit of step 3.
    fn crash_during_swap(root: &Path, renamed: bool, indexed: bool) -> Swap {
        let archive = reopen(root);
        let shared = &archive.shared;
        let (swap, tmp, _) = prepare(shared, SOP).unwrap().unwrap();
        File::open(&tmp).unwrap().sync_all().unwrap();
        write_marker(root, &[&swap]).unwrap();
        if renamed {
            std::fs::rename(&tmp, root.join(&swap.zst_rel)).unwrap();
        }
        if indexed {
            let swapped = shared.index.swap_files(&[swap.as_index_swap()]).unwrap();
            assert_eq!(swapped, [true]);
        }
        swap
    }

    fn assert_after_recovery(root: &Path, expect_rel: &str, gone_rel: &str, original: &[u8]) {
        let archive = reopen(root);
        assert!(!marker_path(root).exists(), "marker left behind");
        let rec = archive.index().instance(SOP).unwrap().unwrap();
        assert_eq!(rec.rel_path, expect_rel);
        assert!(root.join(expect_rel).is_file());
        assert!(!root.join(gone_rel).exists(), "{gone_rel} left behind");
        assert_eq!(read(&archive, &rec), original);
        let v = archive.verify(true).unwrap();
        assert!(v.is_clean(), "{v:?}");
    }

    #[test]
    fn an_instance_comes_of_age_never_early() {
        let day = Duration::from_secs(86_400);
        assert_eq!(due_unix(day, 1_000), 1_000 + 86_400 + 1);
        // A fraction of a second counts as a whole one.
        assert_eq!(due_unix(Duration::from_millis(1500), 10), 13);
        assert_eq!(due_unix(Duration::MAX, 10), i64::MAX);
    }

    #[test]
    fn the_next_sweep_is_when_the_earliest_comes_of_age_at_most_hourly() {
        let mut s = QueueState::default();
        let after = Duration::from_secs(30 * 86_400);
        // Nothing ages with zero; before the first scan the start's rescan is due anyway.
        assert_eq!(s.sweep_in(Duration::ZERO), None);
        assert_eq!(s.sweep_in(after), None);
        s.last_sweep = Some(Instant::now());
        let hourly = s.sweep_in(after).unwrap();
        assert!(
            hourly <= SWEEP_EVERY && hourly > SWEEP_EVERY / 2,
            "{hourly:?}"
        );
        // Due in 10 s, but a month-long setting sweeps at most hourly.
        s.filed.add(unix_now() + 10, 100);
        assert!(s.sweep_in(after).unwrap() > SWEEP_EVERY / 2);
        // A 5 s setting: swept when it is due (10 s away), not before.
        let short = s.sweep_in(Duration::from_secs(5)).unwrap();
        assert!(
            short > Duration::from_secs(5) && short <= Duration::from_secs(10),
            "{short:?}"
        );
        // Overdue: at once once `after` has passed since the last sweep.
        s.swept.add(unix_now() - 5, 1);
        s.last_sweep = Some(Instant::now() - Duration::from_secs(6));
        assert_eq!(s.sweep_in(Duration::from_secs(5)), Some(Duration::ZERO));
    }

    #[test]
    fn a_crash_at_each_step_of_a_swap_leaves_one_complete_copy() {
        // (renamed, index committed, the copy recovery keeps)
        for (renamed, indexed, keeps_zst) in [
            (false, false, false),
            (true, false, true),
            (true, true, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let original = plain_archive(dir.path());
            let m = crash_during_swap(dir.path(), renamed, indexed);
            let (kept, gone) = if keeps_zst {
                (&m.zst_rel, &m.plain_rel)
            } else {
                (&m.plain_rel, &m.zst_rel)
            };
            assert_after_recovery(dir.path(), kept, gone, &original);
        }
    }

    #[test]
    fn an_index_naming_a_lost_zst_is_pointed_back_at_the_plain_copy() {
        let dir = tempfile::tempdir().unwrap();
        let original = plain_archive(dir.path());
        let m = crash_during_swap(dir.path(), true, true);
        // A file system that lost the rename but kept the index commit.
        std::fs::remove_file(dir.path().join(&m.zst_rel)).unwrap();
        assert_after_recovery(dir.path(), &m.plain_rel, &m.zst_rel, &original);
    }

    #[test]
    fn a_damaged_zst_is_dropped_and_a_torn_marker_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let original = plain_archive(dir.path());
        let m = crash_during_swap(dir.path(), true, false);
        // The .zst's data never reached the disk: its hash is not the marker's.
        std::fs::write(dir.path().join(&m.zst_rel), b"\0\0\0\0").unwrap();
        assert_after_recovery(dir.path(), &m.plain_rel, &m.zst_rel, &original);

        let m = crash_during_swap(dir.path(), true, false);
        let marker = marker_path(dir.path());
        let len = std::fs::metadata(&marker).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&marker)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        // A torn marker was never synced, so its rename cannot have happened; here it did
        // (the test forces it), and the unindexed .zst is what verify would then report.
        let archive = reopen(dir.path());
        assert!(!marker.exists());
        let rec = archive.index().instance(SOP).unwrap().unwrap();
        assert_eq!(rec.rel_path, m.plain_rel);
        drop(archive);
        std::fs::remove_file(dir.path().join(&m.zst_rel)).unwrap();
        assert_after_recovery(dir.path(), &m.plain_rel, &m.zst_rel, &original);
    }

    #[test]
    fn a_reader_falls_back_to_the_zst_when_the_plain_file_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let original = plain_archive(dir.path());
        let m = crash_during_swap(dir.path(), true, false);
        let archive = reopen(dir.path());
        // Recovery finished the swap; a record read before it still names the plain file.
        let stale = crate::InstanceRecord {
            rel_path: m.plain_rel.clone(),
            ..archive.index().instance(SOP).unwrap().unwrap()
        };
        assert!(!dir.path().join(&m.plain_rel).exists());
        assert_eq!(read(&archive, &stale), original);
        let (meta, _) = archive.open_dataset(&stale).unwrap();
        assert_eq!(meta.transfer_syntax, EXPLICIT_LE);
    }
}
