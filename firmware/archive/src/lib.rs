//! pacsbox's archive: DICOM Part-10 files in a folder tree anyone can read, a redb index over
//! them, and the ingest path that makes a received instance durable before anybody is told it
//! was stored.
//!
//! This crate knows nothing of sockets or DIMSE: the DICOM services (`pacsbox-dicom`) and the
//! web page call [`Archive`]. Start reading at [`Archive::begin_store`] (ingest) and
//! `commit.rs` (the group commit that orders file, journal and index writes).

pub mod accounts;
pub mod activity;
pub mod anonymize;
pub mod api_tokens;
pub mod backup;
mod commit;
pub mod commitment;
mod compact;
pub mod conflicts;
pub mod edit;
pub mod forward;
pub mod index;
mod ingest;
pub mod kos;
pub mod layout;
mod maintenance;
pub mod part10;
pub mod peers;
pub mod query;
pub mod record;
pub mod remote;
pub mod report;
pub mod scan;
mod spare;
pub mod transfer_syntax;
pub mod uid;
pub mod worklist;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use anonymize::{ANONYMIZE_AE, AnonymizeError, AnonymizeProgress, AnonymizeReport};
pub use commit::Committer;
pub use conflicts::{Conflict, ConflictStats, Resolution, ResolveError};
pub use index::{Counts, Index, IndexError};
pub use ingest::{IncomingInstance, StagedInstance, StoreError, StoreOutcome, StoreRequest};
pub use maintenance::{RecoveryReport, VerifyReport};
pub use pacsbox_deid as deid;
pub use record::InstanceRecord;

/// What to do when an instance arrives whose SOP Instance UID is already stored with
/// different content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// Keep the first copy; put the newcomer aside under `conflicts/` for an admin.
    #[default]
    Keep,
    /// Replace the stored copy with the newcomer.
    Overwrite,
}

/// When native-syntax instances are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CompressAt {
    /// Acknowledge once the plain `.dcm` is durable; compress to `.dcm.zst` after a quiet
    /// spell (`compact.rs`). Ingest runs at the disk's speed, not zstd's.
    #[default]
    Idle,
    /// Compress while receiving, on the association's thread: no plain copies ever, at the
    /// cost of ingest speed on a slow CPU.
    Ingest,
}

/// How a commit batch is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// `syncfs` when the data directory is its own file system (the appliance's RAID), else
    /// `fsync`.
    #[default]
    Auto,
    /// One `syncfs` of the data volume per batch: cheapest, but it also waits for every other
    /// writer on that file system.
    Syncfs,
    /// `fdatasync` of each file (in parallel, by the receiving threads) plus the journal and
    /// the temp directory per batch: immune to other writers on a shared file system.
    Fsync,
}

#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// Free space the archive never eats into: below it, stores are refused (A700).
    pub reserve_bytes: u64,
    pub duplicates: DuplicatePolicy,
    /// zstd level for native (uncompressed) syntaxes. Measured on real CT/MR/US: level 1
    /// 2.39x at 295 MB/s, 2 2.64x at 215 MB/s, 3 2.80x at 119 MB/s; compression runs on each
    /// association's critical path on a Pi-class CPU, so 2. 0 stores native syntaxes as plain
    /// `.dcm` (for sites that would rather spend disk than CPU).
    pub zstd_level: i32,
    /// When that compression happens.
    pub compress: CompressAt,
    /// With `CompressAt::Idle`: how long after it was received an instance stays a plain
    /// `.dcm` before the compactor may compress it. Recent studies are what is exported to
    /// CDs and read by viewers, and a plain file is served at the disk's speed instead of
    /// zstd's (bench/README.md, "Recent studies plain"); zero compresses at the first quiet
    /// spell.
    pub compress_after: Duration,
    pub sync: SyncMode,
    /// Bytes `conflicts/` may hold; a conflicting newcomer that would exceed it is refused
    /// (A700).
    pub conflicts_max_bytes: u64,
    /// Days the previous versions of edited or deleted instances stay in `trash/` (undo is
    /// possible that long), then they are purged.
    pub trash_days: f64,
    /// Forwarding rules exist: every instance filed is also queued for the forwarding router
    /// (`forward.rs`), in the same index transaction.
    pub forwarding: bool,
}

/// How long a native-syntax instance stays plain by default (`ArchiveConfig::compress_after`).
pub const DEFAULT_COMPRESS_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// The archive's defaults are the appliance's: `pacsbox`'s settings file starts from these.
impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            reserve_bytes: 512 << 20,
            duplicates: DuplicatePolicy::default(),
            zstd_level: 2,
            compress: CompressAt::default(),
            // A clinic's RAID holds weeks of plain images (40 CT studies of 500 slices are ~10 GB);
            // a month covers the follow-up visits, the CDs and the second readings.
            compress_after: DEFAULT_COMPRESS_AFTER,
            sync: SyncMode::default(),
            conflicts_max_bytes: 1024 << 20,
            trash_days: 30.0,
            forwarding: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("creating data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening index {path}: {source}")]
    Index { path: PathBuf, source: IndexError },
    #[error("recovering after an unclean shutdown in {path}: {source}")]
    Recovery {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Disk space of the data volume.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

pub(crate) struct Shared {
    pub root: PathBuf,
    pub index: Index,
    pub config: ArchiveConfig,
    pub refusing: AtomicBool,
    pub nonce: AtomicU64,
    pub activity: std::sync::Mutex<activity::ActivityLog>,
    /// What `conflicts/` holds; the committer adds under this lock, resolving recounts.
    pub conflicts: std::sync::Mutex<ConflictStats>,
    /// Stores in flight and when the last ended: compression waits for quiet.
    pub quiet: Arc<compact::Quiet>,
    /// Instances filed plain, waiting to be compressed.
    pub compact_queue: compact::Queue,
    /// Held while a file of an indexed instance is replaced and the index pointed at it (the
    /// committer's renames, the compactor's swap), so that neither removes the other's file.
    swap: std::sync::Mutex<()>,
    /// One edit, move, delete, undo or purge at a time (`edit/`).
    pub edit_lock: std::sync::Mutex<()>,
    /// The DICOM peer table and access mode (`Archive::configure_access`).
    peers: std::sync::RwLock<Arc<peers::PeerRegistry>>,
    /// Empty files in `tmp/` with durable names, made ahead for incoming instances from the
    /// first store on (commands that only read never start the thread).
    pub spares: std::sync::OnceLock<Arc<spare::Spares>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(s) = self.spares.get() {
            s.close();
        }
    }
}

impl Shared {
    pub(crate) fn swap_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.swap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the committer should queue what it filed plain for the compactor.
    pub(crate) fn compresses_when_idle(&self) -> bool {
        self.config.zstd_level > 0 && self.config.compress == CompressAt::Idle
    }
}

/// The archive. Cheap to clone; all clones share one index and one committer.
#[derive(Clone)]
pub struct Archive {
    shared: Arc<Shared>,
    committer: Arc<Committer>,
    _compactor: Option<Arc<compact::Compactor>>,
}

impl Archive {
    /// Opens the data directory, recovering from an unclean shutdown first (the journal since
    /// the last checkpoint replayed: renames redone, entries re-indexed; tmp/ cleared); this
    /// never scans the whole archive.
    pub fn open(
        root: &Path,
        config: ArchiveConfig,
    ) -> Result<(Archive, RecoveryReport), OpenError> {
        for d in [
            root.to_path_buf(),
            layout::tmp_dir(root),
            layout::archive_dir(root),
        ] {
            std::fs::create_dir_all(&d).map_err(|source| OpenError::Dir { path: d, source })?;
        }
        let index_path = layout::index_path(root);
        let index = Index::open(&index_path).map_err(|source| OpenError::Index {
            path: index_path.clone(),
            source,
        })?;
        let recovery = |source| OpenError::Recovery {
            path: root.to_path_buf(),
            source,
        };
        let report = maintenance::recover(root, &index, config.forwarding).map_err(recovery)?;
        compact::recover(root, &index).map_err(recovery)?;
        let mut config = config;
        if config.sync == SyncMode::Auto {
            config.sync = if layout::is_mount_point(root) {
                SyncMode::Syncfs
            } else {
                SyncMode::Fsync
            };
        }
        let ops = edit::recover(root, &index, config.sync).map_err(recovery)?;
        if ops.finished + ops.dropped > 0 {
            tracing::warn!(
                finished = ops.finished,
                dropped = ops.dropped,
                "operations interrupted by a crash"
            );
        }
        let anonymized = anonymize::recover(root, &index).map_err(recovery)?;
        if anonymized > 0 {
            tracing::warn!(
                instances = anonymized,
                "partial anonymized copies removed after a crash"
            );
        }
        tracing::info!(sync = ?config.sync, "durability mode");
        let conflict_stats =
            conflicts::scan_stats(root, config.conflicts_max_bytes).map_err(|source| {
                OpenError::Dir {
                    path: layout::conflicts_dir(root),
                    source,
                }
            })?;
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            index,
            config,
            refusing: AtomicBool::new(false),
            nonce: AtomicU64::new(0),
            activity: Default::default(),
            conflicts: std::sync::Mutex::new(conflict_stats),
            quiet: Arc::new(compact::Quiet::new()),
            compact_queue: Default::default(),
            swap: Default::default(),
            edit_lock: Default::default(),
            peers: Default::default(),
            spares: Default::default(),
        });
        let dir_error = |source| OpenError::Dir {
            path: root.to_path_buf(),
            source,
        };
        let committer = Arc::new(Committer::start(shared.clone()).map_err(dir_error)?);
        let compactor = if shared.compresses_when_idle() {
            Some(Arc::new(
                compact::Compactor::start(shared.clone()).map_err(dir_error)?,
            ))
        } else {
            None
        };
        let archive = Archive {
            shared,
            committer,
            _compactor: compactor,
        };
        match edit::purge(&archive.shared, archive.trash_seconds()) {
            Ok(p) if p.operations > 0 => {
                tracing::info!(
                    operations = p.operations,
                    files = p.files,
                    bytes = p.bytes,
                    "expired trash purged"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purging the expired trash"),
        }
        Ok((archive, report))
    }

    fn peer_registry(&self) -> Arc<peers::PeerRegistry> {
        self.shared
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the access mode and the fixed peers (settings file, command line); the first call
    /// on a fresh data folder starts its learning period.
    pub fn configure_access(&self, settings: peers::AccessSettings) -> Result<(), IndexError> {
        let reg = peers::PeerRegistry::configure(&self.shared.index, settings, ingest::unix_now())?;
        *self.shared.peers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reg);
        Ok(())
    }

    /// Every peer: fixed ones first (settings, command line), then the learned ones by title.
    pub fn peers(&self) -> Result<Vec<peers::PeerEntry>, IndexError> {
        self.peer_registry().list(&self.shared.index)
    }

    /// The peer called `ae`: a fixed one if there is one, else a learned one.
    pub fn peer(&self, ae: &str) -> Result<Option<peers::PeerEntry>, IndexError> {
        let reg = self.peer_registry();
        if let Some(p) = reg.fixed(ae) {
            return Ok(Some(p.clone()));
        }
        let index = &self.shared.index;
        Ok(match index.learned_peer(ae)? {
            Some(p) => Some(p.entry(ae.to_owned(), index.peer_address(ae)?)),
            None => None,
        })
    }

    /// Gives a learned or added peer the host and port it listens on (`None`: takes it away),
    /// effective at once; peers of the settings are changed there.
    pub fn set_peer_address(
        &self,
        ae: &str,
        address: Option<peers::PeerAddress>,
    ) -> Result<(), peers::PeerError> {
        let ae = ae.trim();
        if self.peer_registry().fixed(ae).is_some() {
            return Err(peers::PeerError::Fixed(ae.to_owned()));
        }
        let index = &self.shared.index;
        if index.learned_peer(ae)?.is_none() {
            return Err(peers::PeerError::Unknown(ae.to_owned()));
        }
        index.put_peer_address(ae, address.as_ref())?;
        Ok(())
    }

    /// Records that `ae` stored from `address` during the learning period: a new AE becomes a
    /// store-only learned peer (true); a learned one has its last sighting updated (see
    /// [`Archive::peer_seen`]). Fixed peers are left alone.
    pub fn learn_peer(&self, ae: &str, address: &str) -> Result<bool, peers::PeerError> {
        self.sighting(ae, address, true)
    }

    /// Notes that the learned peer `ae` associated from `address`, for the peer list; at most
    /// hourly per peer (unless the address changed), so associations do not each cost an index
    /// write. Unknown and fixed titles are left alone.
    pub fn peer_seen(&self, ae: &str, address: &str) -> Result<(), peers::PeerError> {
        self.sighting(ae, address, false).map(|_| ())
    }

    fn sighting(&self, ae: &str, address: &str, create: bool) -> Result<bool, peers::PeerError> {
        if !peers::valid_ae_title(ae) {
            return Err(peers::PeerError::BadTitle(ae.chars().take(32).collect()));
        }
        if self.peer_registry().fixed(ae).is_some() {
            return Ok(false);
        }
        let now = ingest::unix_now();
        let index = &self.shared.index;
        let (rec, new) = match index.learned_peer(ae)? {
            Some(p) if now - p.last_seen_unix < 3600 && p.last_address == address => {
                return Ok(false);
            }
            Some(p) => (
                peers::LearnedPeer {
                    last_seen_unix: now,
                    last_address: address.to_owned(),
                    ..p
                },
                false,
            ),
            None if !create => return Ok(false),
            None => (
                peers::LearnedPeer {
                    rights: peers::PeerRights::STORE,
                    first_seen_unix: now,
                    last_seen_unix: now,
                    last_address: address.to_owned(),
                },
                true,
            ),
        };
        index.put_learned_peer(ae, &rec)?;
        Ok(new)
    }

    /// Adds `ae` as a learned peer with `rights`, or sets the rights of a learned one (the
    /// admin's "allow" on a refused AE, or an edit); it leaves the refused list.
    pub fn allow_peer(&self, ae: &str, rights: peers::PeerRights) -> Result<(), peers::PeerError> {
        let ae = ae.trim();
        if !peers::valid_ae_title(ae) {
            return Err(peers::PeerError::BadTitle(ae.chars().take(32).collect()));
        }
        let reg = self.peer_registry();
        if reg.fixed(ae).is_some() {
            return Err(peers::PeerError::Fixed(ae.to_owned()));
        }
        let now = ingest::unix_now();
        let index = &self.shared.index;
        let rec = match index.learned_peer(ae)? {
            Some(p) => peers::LearnedPeer { rights, ..p },
            None => peers::LearnedPeer {
                rights,
                first_seen_unix: now,
                last_seen_unix: now,
                last_address: String::new(),
            },
        };
        index.put_learned_peer(ae, &rec)?;
        reg.forget_refused(index, ae)?;
        Ok(())
    }

    /// Removes a learned peer; fixed peers are changed in the settings.
    pub fn remove_peer(&self, ae: &str) -> Result<(), peers::PeerError> {
        if self.peer_registry().fixed(ae).is_some() {
            return Err(peers::PeerError::Fixed(ae.to_owned()));
        }
        if self.shared.index.delete_learned_peer(ae)? {
            Ok(())
        } else {
            Err(peers::PeerError::Unknown(ae.to_owned()))
        }
    }

    /// Remembers an association refused for its calling AE (bounded, newest kept), in the
    /// index too so the admin still sees it after a restart. May write the index (at most
    /// once a second): call it off the async workers.
    pub fn record_refused(&self, ae: &str, address: &str) -> Result<(), IndexError> {
        match self
            .peer_registry()
            .record_refused(ae, address, ingest::unix_now())
        {
            Some(rows) => self.shared.index.put_refused(&rows),
            None => Ok(()),
        }
    }

    /// Writes refusals that `record_refused` kept in memory only (an orderly stop).
    pub fn flush_refused(&self) -> Result<(), IndexError> {
        match self.peer_registry().unwritten_refused() {
            Some(rows) => self.shared.index.put_refused(&rows),
            None => Ok(()),
        }
    }

    /// Refused AEs, newest first, at most `peers::MAX_REFUSED`.
    pub fn refused_aes(&self) -> Vec<peers::RefusedAe> {
        self.peer_registry().refused()
    }

    /// The access mode now and the learning period's deadline.
    pub fn access_state(&self) -> Result<peers::AccessState, IndexError> {
        self.peer_registry()
            .state(&self.shared.index, ingest::unix_now())
    }

    /// The access mode, the peer table and the refused AEs in one value, for the
    /// authenticated status page (not for `/status.json`).
    pub fn access_report(&self) -> Result<peers::AccessReport, IndexError> {
        Ok(peers::AccessReport {
            state: self.access_state()?,
            peers: self.peers()?,
            refused: self.refused_aes(),
        })
    }

    /// Ends the learning period now (an admin's decision; [`Archive::reopen_learning`] opens
    /// it again). Returns when it closed (earlier if it already was).
    pub fn close_learning(&self) -> Result<i64, IndexError> {
        self.peer_registry()
            .close_learning(&self.shared.index, ingest::unix_now())
    }

    /// Opens the learning period again for `days` from now (an admin's decision, e.g. for a
    /// new modality); only where the settings say `learning`. Returns when it ends.
    pub fn reopen_learning(&self, days: u32) -> Result<i64, peers::PeerError> {
        self.peer_registry()
            .reopen_learning(&self.shared.index, days, ingest::unix_now())
    }

    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    pub fn index(&self) -> &Index {
        &self.shared.index
    }

    pub fn counts(&self) -> Result<Counts, IndexError> {
        self.shared.index.counts()
    }

    pub fn disk_space(&self) -> std::io::Result<DiskSpace> {
        layout::disk_space(&self.shared.root)
    }

    /// Instances and studies received today, and the last one.
    pub fn activity(&self) -> activity::Activity {
        let now = ingest::unix_now();
        match self.shared.activity.lock() {
            Ok(log) => log.snapshot(now),
            Err(poisoned) => poisoned.into_inner().snapshot(now),
        }
    }

    /// Instances stored plain and queued for compression when idle.
    pub fn compression_pending(&self) -> usize {
        self.shared.compact_queue.len()
    }

    /// Instances stored plain that are not yet `compress_after` old, and their bytes: as of
    /// the compactor's last sweep of the index plus those filed since.
    pub fn plain_waiting(&self) -> (u64, u64) {
        self.shared.compact_queue.waiting()
    }

    /// True while free space is under the reserve (stores are being refused).
    pub fn refusing_stores(&self) -> bool {
        self.shared.refusing.load(Ordering::Relaxed)
    }

    /// Starts receiving one instance. Refuses (A700) before anything is written when free
    /// space is under the reserve, and recovers by itself when space returns.
    pub fn begin_store(&self, req: StoreRequest) -> Result<IncomingInstance, StoreError> {
        ingest::begin(self.shared.clone(), self.committer.clone(), req)
    }

    /// Commits instances staged with [`IncomingInstance::stage`] together: their data made
    /// durable in one pass (in `Fsync` mode an fdatasync of each, from several threads; else
    /// the batch's one `syncfs`), then one commit batch, one journal sync. The outcome of
    /// each, in order; `Err` when nothing was committed.
    pub fn commit_staged(
        &self,
        staged: Vec<StagedInstance>,
    ) -> Result<Vec<Result<StoreOutcome, StoreError>>, StoreError> {
        if staged.is_empty() {
            return Ok(Vec::new());
        }
        if self.shared.config.sync == SyncMode::Fsync {
            ingest::sync_staged(&staged)?;
        }
        let mut jobs = Vec::with_capacity(staged.len());
        let mut replies = Vec::with_capacity(staged.len());
        for s in staged {
            let (tx, rx) = std::sync::mpsc::channel();
            jobs.push(s.into_job(tx));
            replies.push(rx);
        }
        self.committer.submit_batch(jobs)?;
        Ok(replies
            .into_iter()
            .map(|rx| rx.recv().map_err(|_| StoreError::ShuttingDown)?)
            .collect())
    }

    /// Files and bytes in `conflicts/`, and the cap.
    pub fn conflict_stats(&self) -> ConflictStats {
        *self
            .shared
            .conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every conflicting copy kept aside, oldest first.
    pub fn conflicts(&self) -> std::io::Result<Vec<Conflict>> {
        conflicts::list(&self.shared.root, &self.shared.index)
    }

    /// Resolves one conflict by its file name (see [`conflicts`]).
    pub fn resolve_conflict(
        &self,
        name: &str,
        how: Resolution,
    ) -> Result<Option<StoreOutcome>, ResolveError> {
        conflicts::resolve(&self.shared, &self.committer, name, how)
    }

    /// Runs one correction (edit, move, merge, delete, undo) wholly or not at all; see
    /// [`edit`]. `expect_version` (from [`Archive::edit_version`] when a form was shown)
    /// refuses it when the data changed since. The caller records the audit event.
    pub fn operate(
        &self,
        request: edit::Request,
        actor: edit::Actor,
        expect_version: Option<u64>,
    ) -> Result<edit::OperationSummary, edit::EditError> {
        edit::run(
            &self.shared,
            &self.committer,
            request,
            actor,
            expect_version,
        )
    }

    /// The version of a patient's or study's instances that a form carries.
    pub fn edit_version(&self, target: &edit::Target) -> Result<u64, edit::EditError> {
        edit::version(&self.shared.index, target)
    }

    /// A patient's Issuer of Patient ID, as its files say (the edit form shows it).
    pub fn patient_issuer(&self, patient_key: &str) -> Result<String, edit::EditError> {
        edit::issuer_of(&self.shared, patient_key)
    }

    /// The operations history, newest first.
    pub fn operations(&self, limit: usize) -> Result<Vec<edit::OperationSummary>, edit::EditError> {
        edit::list(&self.shared.index, limit)
    }

    /// One operation with its per-instance changes.
    pub fn operation(&self, id: u64) -> Result<Option<edit::Operation>, edit::EditError> {
        edit::get(&self.shared.index, id)
    }

    /// Empties the trash of operations older than `older_than_s` (None: the configured
    /// `trash_days`; Some(0): everything — an admin's "purge now").
    pub fn purge_trash(
        &self,
        older_than_s: Option<i64>,
    ) -> Result<edit::PurgeReport, edit::EditError> {
        let keep = older_than_s.unwrap_or_else(|| self.trash_seconds());
        edit::purge(&self.shared, keep)
    }

    /// How long previous versions stay in the trash (`trash_days`), in seconds.
    pub fn trash_seconds(&self) -> i64 {
        (self.shared.config.trash_days.max(0.0) * 86_400.0).round() as i64
    }

    /// Checks index against files (and, with `checksums`, file contents against the hash
    /// recorded at ingest).
    pub fn verify(&self, checksums: bool) -> std::io::Result<VerifyReport> {
        maintenance::verify(&self.shared.root, &self.shared.index, checksums)
    }
}

impl Archive {
    /// The whole stored Part-10 file of an instance (zstd undone), preamble included.
    pub fn open_part10(
        &self,
        rec: &InstanceRecord,
    ) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.open_file(rec).map(|(_, r)| r)
    }

    /// The stored file of `rec` with zstd undone, and its path. A plain `.dcm` that vanished
    /// was compressed meanwhile (`compact.rs` renames the `.zst` in before it unlinks the
    /// `.dcm`): then its `.dcm.zst` is read.
    fn open_file(
        &self,
        rec: &InstanceRecord,
    ) -> std::io::Result<(PathBuf, Box<dyn std::io::Read + Send>)> {
        open_file(&self.shared.root, rec)
    }

    /// The stored file of `rec` as it lies on disk, for a sender that can pass zstd through
    /// untouched (DICOMweb's `Content-Encoding: zstd`): the open file and, when it is one zstd
    /// frame, that frame's window size from its header (a decoder must hold that much).
    pub fn open_raw(&self, rec: &InstanceRecord) -> std::io::Result<RawStored> {
        let (path, file) = resolve_stored(&self.shared.root, rec)?;
        let zstd_window = if path.extension().is_some_and(|e| e == "zst") {
            let mut head = [0u8; 14];
            let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0)?;
            frame_window(&head[..n])
        } else {
            None
        };
        Ok(RawStored {
            file,
            zstd: path.extension().is_some_and(|e| e == "zst"),
            zstd_window,
        })
    }

    /// Opens a stored instance for sending: its File Meta (transfer syntax as stored) and a
    /// reader positioned at the first byte of the data set (zstd undone).
    pub fn open_dataset(
        &self,
        rec: &InstanceRecord,
    ) -> std::io::Result<(part10::ReadMeta, Box<dyn std::io::Read + Send>)> {
        let (path, mut reader) = self.open_file(rec)?;
        let meta = part10::read_header(&mut reader)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok((meta, reader))
    }
}

/// The file that holds `rec` under `root`, opened, and its path: a plain `.dcm` the index
/// names may have been compressed since (see [`Archive::open_part10`]).
fn resolve_stored(root: &Path, rec: &InstanceRecord) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = root.join(&rec.rel_path);
    match std::fs::File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rec.rel_path.ends_with(".zst") => {
            let mut zst = path.into_os_string();
            zst.push(".zst");
            let zst = PathBuf::from(zst);
            let f = std::fs::File::open(&zst)?;
            Ok((zst, f))
        }
        other => Ok((path, other?)),
    }
}

/// A stored file as it lies on disk (see [`Archive::open_raw`]).
pub struct RawStored {
    pub file: std::fs::File,
    /// The file is a zstd frame (`.dcm.zst`), not the plain Part-10 bytes.
    pub zstd: bool,
    /// The frame's window size, when its header could be read (RFC 8878 lets an HTTP
    /// decoder refuse windows over 8 MiB).
    pub zstd_window: Option<u64>,
}

/// The window size a zstd frame header announces (RFC 8878 3.1.1.1): from the Window
/// Descriptor, or the Frame Content Size for a single-segment frame. `None` for anything
/// that is not a frame header this code understands.
pub fn frame_window(h: &[u8]) -> Option<u64> {
    if h.get(..4)? != [0x28, 0xB5, 0x2F, 0xFD] {
        return None;
    }
    let fhd = *h.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    if fhd & 0x08 != 0 {
        return None; // reserved bit
    }
    if !single_segment {
        let wd = *h.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the content size; after the descriptor come the
    // dictionary ID (0, 1, 2 or 4 bytes) and the content size (1, 2, 4 or 8 bytes).
    let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = [1usize, 2, 4, 8][usize::from(fhd >> 6)];
    let at = 5 + did;
    let b = h.get(at..at + fcs)?;
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate() {
        v |= u64::from(*byte) << (8 * i);
    }
    Some(if fcs == 2 { v + 256 } else { v })
}

/// The stored file of `rec` under `root` with zstd undone, and its path (see
/// [`Archive::open_part10`]).
pub(crate) fn open_file(
    root: &Path,
    rec: &InstanceRecord,
) -> std::io::Result<(PathBuf, Box<dyn std::io::Read + Send>)> {
    let (path, file) = resolve_stored(root, rec)?;
    let file = std::io::BufReader::with_capacity(256 << 10, file);
    let reader: Box<dyn std::io::Read + Send> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else {
        Box::new(file)
    };
    Ok((path, reader))
}

/// Rebuilds the index of `root` from the files alone; returns the number of instances indexed.
pub fn reindex(root: &Path) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    maintenance::reindex(root)
}

#[cfg(test)]
mod frame_window_tests {
    use super::frame_window;
    use std::io::{Read, Write};

    /// Decodes `frame` with the decoder's window capped at 2^`log`.
    fn decodes_within(frame: &[u8], log: u32) -> bool {
        let Ok(mut d) = zstd::stream::read::Decoder::new(frame) else {
            return false;
        };
        if d.window_log_max(log).is_err() {
            return false;
        }
        let mut out = Vec::new();
        d.read_to_end(&mut out).is_ok()
    }

    #[test]
    fn window_is_what_a_decoder_needs() {
        // Compressible but not trivial data of several sizes, framed both ways: with the size
        // known up front (single segment) and streamed (a window descriptor).
        for size in [10usize, 300, 70_000, 1 << 20, 3 << 20] {
            let data: Vec<u8> = (0..size)
                .map(|i| ((i * 7919) % 251) as u8 ^ (i >> 9) as u8)
                .collect();
            let bulk = zstd::bulk::compress(&data, 3).unwrap();
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(20))
                .unwrap();
            enc.write_all(&data).unwrap();
            let streamed = enc.finish().unwrap();
            for frame in [bulk, streamed] {
                let w = frame_window(&frame).expect("a frame header");
                let log = 64 - (w.max(1024) - 1).leading_zeros();
                assert!(
                    decodes_within(&frame, log.max(10)),
                    "size {size}: window {w}"
                );
                assert!(
                    w <= (size as u64).max(1 << 20) * 2,
                    "size {size}: window {w} too large"
                );
            }
            if size > 1 << 20 {
                // Streamed with a 2^20 window over more data than that: the descriptor says so.
                let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(20))
                    .unwrap();
                enc.write_all(&data).unwrap();
                assert_eq!(frame_window(&enc.finish().unwrap()), Some(1 << 20));
            }
        }
        assert_eq!(frame_window(b"DICM"), None);
        assert_eq!(frame_window(&[0x28, 0xB5, 0x2F, 0xFD]), None);
    }
}
