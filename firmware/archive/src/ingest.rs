//! Receiving one instance: stream the dataset to a temp file as Part-10 (plain; zstd-wrapped
//! here only with `compress = "ingest"`, else `compact.rs` does it when idle) while walking its structure and picking the indexed attributes out of the same
//! pass, then hand it to the committer and wait until it is durable. Only after
//! [`IncomingInstance::receive`] returns `Ok` may the network layer answer success.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::commit::{CommitJob, Committer};
use crate::index::IndexEntry;
use crate::part10::{self, HashingWriter, MetaInfo};
use crate::record::{InstanceAttrs, InstanceRecord};
use crate::scan::{self, ScanError};
use crate::transfer_syntax::{self, DatasetEncoding};
use crate::{CompressAt, Shared, SyncMode, layout};

/// What the C-STORE request says about the instance that follows.
#[derive(Clone, Debug)]
pub struct StoreRequest {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    /// Calling AE title of the association; recorded as Source AE (0002,0016).
    pub source_ae: String,
}

/// How a successful store ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// The same dataset bytes were already stored: nothing written.
    DuplicateIdentical,
    /// Same SOP Instance UID, different content: the original is kept, the newcomer is at
    /// this path (relative to the data directory) for an admin to resolve.
    DuplicateKeptAside(String),
    /// Same SOP Instance UID, different content, and the policy is to overwrite.
    Overwritten,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("free space on the data volume is under the reserve ({free} bytes free)")]
    OutOfSpace { free: u64 },
    #[error("dataset cannot be understood: {0}")]
    CannotUnderstand(String),
    #[error("dataset does not match the request: {0}")]
    Mismatch(String),
    #[error("storage failure: {0}")]
    Io(#[from] io::Error),
    #[error("index failure: {0}")]
    Index(#[from] crate::IndexError),
    #[error(
        "conflicting duplicate refused: conflicts/ holds {bytes} bytes, the cap is {max_bytes}; \
         an admin must resolve conflicts"
    )]
    ConflictsFull { bytes: u64, max_bytes: u64 },
    #[error("archive is shutting down")]
    ShuttingDown,
}

impl StoreError {
    fn from_write(e: io::Error) -> StoreError {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            StoreError::OutOfSpace { free: 0 }
        } else {
            StoreError::Io(e)
        }
    }
}

/// The file's write buffer: the header and the small elements are gathered here, larger
/// writes bypass it (`BufWriter` writes them straight from the caller's buffer).
const WRITE_BUFFER: usize = 32 << 10;

/// Written bytes after which the disk is told to start writing them back.
const WRITEBACK_CHUNK: u64 = 128 << 10;

/// The temp file, asking the kernel to start writing back each chunk as soon as it is written
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait): the disk writes while the
/// rest of the data set arrives, and the commit's sync finds little left to write. Measured on
/// a 0.53 MB file in 128 KiB writes: its fdatasync 0.49 ms -> 0.12 ms. A hint only; the
/// commit's fdatasync or syncfs is what makes the data durable.
struct Writeback {
    file: File,
    written: u64,
    started: u64,
}

impl Writeback {
    fn new(file: File) -> Writeback {
        Writeback {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_CHUNK {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor and a range within the file; the call only
            // queues writeback. Its failure is ignored: the commit's sync reports real errors.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.written - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Sink {
    Plain(HashingWriter<BufWriter<Writeback>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<Writeback>>>),
}

/// An instance being received. Dropping it without `receive` succeeding removes the temp file.
pub struct IncomingInstance {
    committer: Arc<Committer>,
    req: StoreRequest,
    tmp_path: PathBuf,
    /// The temp file is a spare whose name in `tmp/` is already durable.
    name_durable: bool,
    sink: Option<Sink>,
    dataset_hasher: xxhash_rust::xxh3::Xxh3,
    zstd: bool,
    sync: SyncMode,
    /// Keeps the compactor waiting while this store is in flight (and, staged, until it is
    /// committed).
    in_flight: Option<crate::compact::StoreInFlight>,
    /// The Study Instance UID the data set must have (STOW-RS to `/studies/{study}`).
    expected_study: Option<String>,
}

pub(crate) fn begin(
    shared: Arc<Shared>,
    committer: Arc<Committer>,
    req: StoreRequest,
) -> Result<IncomingInstance, StoreError> {
    let space = layout::disk_space(&shared.root)?;
    let refusing = space.free_bytes < shared.config.reserve_bytes;
    if refusing != shared.refusing.swap(refusing, Ordering::Relaxed) {
        if refusing {
            tracing::error!(
                free = space.free_bytes,
                reserve = shared.config.reserve_bytes,
                "data volume under its reserve: refusing stores (A700) until space is freed"
            );
        } else {
            tracing::info!(
                free = space.free_bytes,
                "free space is back: accepting stores"
            );
        }
    }
    if refusing {
        return Err(StoreError::OutOfSpace {
            free: space.free_bytes,
        });
    }
    if !transfer_syntax::is_accepted(&req.transfer_syntax) {
        return Err(StoreError::CannotUnderstand(format!(
            "transfer syntax {} not accepted",
            req.transfer_syntax
        )));
    }
    let spares = shared
        .spares
        .get_or_init(|| crate::spare::Spares::start(layout::tmp_dir(&shared.root)));
    let (file, tmp_path, name_durable) = match spares.take() {
        Some(spare) => (spare.file, spare.path, true),
        None => {
            let n = shared.nonce.fetch_add(1, Ordering::Relaxed);
            let path =
                layout::tmp_dir(&shared.root).join(format!("{}-{n}.part", std::process::id()));
            let file = File::create(&path).map_err(StoreError::from_write)?;
            (file, path, false)
        }
    };
    // Compressed here only when configured so; by default the compactor does it when idle.
    let zstd = shared.config.zstd_level > 0
        && shared.config.compress == CompressAt::Ingest
        && transfer_syntax::store_zstd(&req.transfer_syntax);
    // Small: a fragment at least this large (pixel data from peers with large PDUs) is
    // written from its own buffer, not copied into this one first.
    let out = HashingWriter::new(BufWriter::with_capacity(WRITE_BUFFER, Writeback::new(file)));
    let mut sink = if zstd {
        let mut enc = zstd::stream::write::Encoder::new(out, shared.config.zstd_level)?;
        // The frame header then carries no size; a checksum lets `zstd -t` verify a file alone.
        enc.include_checksum(true)?;
        Sink::Zstd(enc)
    } else {
        Sink::Plain(out)
    };
    let header = part10::encode_header(&MetaInfo {
        sop_class_uid: req.sop_class_uid.clone(),
        sop_instance_uid: req.sop_instance_uid.clone(),
        transfer_syntax: req.transfer_syntax.clone(),
        source_ae: req.source_ae.clone(),
    })
    .map_err(|e| StoreError::Mismatch(e.to_string()))?;
    let mut incoming = IncomingInstance {
        committer,
        req,
        tmp_path,
        name_durable,
        sink: None,
        dataset_hasher: xxhash_rust::xxh3::Xxh3::new(),
        zstd,
        sync: shared.config.sync,
        in_flight: Some(shared.quiet.store_begins()),
        expected_study: None,
    };
    match &mut sink {
        Sink::Plain(w) => w.write_all(&header),
        Sink::Zstd(w) => w.write_all(&header),
    }
    .map_err(StoreError::from_write)?;
    incoming.sink = Some(sink);
    Ok(incoming)
}

/// Hands the network fragments to the structural walk and writes every byte the walk passes
/// over to the file, hashing it: one pass, nothing buffered beyond a fragment. Bytes are
/// written from the fragment's own buffer as the walk consumes them (`BufRead::consume`), so
/// pixel data goes from the buffer the socket was read into straight to the file.
struct Tee<'a, R> {
    input: R,
    incoming: &'a mut IncomingInstance,
    write_error: Option<io::Error>,
}

impl<R: BufRead> BufRead for Tee<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(e) = &self.write_error {
            // Stop the walk; the caller reports the write error, not a parse error.
            return Err(io::Error::new(
                e.kind(),
                "writing the received data set failed",
            ));
        }
        self.input.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if self.write_error.is_none() {
            // The same bytes `fill_buf` returned: the input has not moved since.
            let written = match self.input.fill_buf() {
                Ok(buf) => {
                    let chunk = &buf[..n.min(buf.len())];
                    self.incoming.dataset_hasher.update(chunk);
                    match self.incoming.sink.as_mut() {
                        Some(Sink::Plain(w)) => w.write_all(chunk),
                        Some(Sink::Zstd(w)) => w.write_all(chunk),
                        None => Err(io::Error::other("instance already closed")),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                self.write_error = Some(e);
            }
        }
        self.input.consume(n);
    }
}

impl<R: BufRead> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let chunk = self.fill_buf()?;
            let n = buf.len().min(chunk.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl IncomingInstance {
    /// Refuses the data set (as a mismatch, nothing kept) unless its Study Instance UID is
    /// `study`.
    pub fn expect_study(mut self, study: &str) -> IncomingInstance {
        self.expected_study = Some(study.to_owned());
        self
    }

    /// Receives the whole data set from `data` (the network stream, or a file), proves it is
    /// complete, files and durably indexes it; blocks until its commit batch is on disk.
    pub fn receive<R: BufRead>(self, data: R) -> Result<StoreOutcome, StoreError> {
        let committer = self.committer.clone();
        let fsync = self.sync == SyncMode::Fsync;
        let mut staged = self.write_out(data)?;
        let (tx, rx) = std::sync::mpsc::channel();
        // `Fsync` mode: submit first, then sync the file while the committer writes and syncs
        // the journal record (`CommitJob::data_synced`): one flush of the disk for both
        // instead of two in a row.
        let file = if fsync { staged.file.take() } else { None };
        let mut job = staged.into_job(tx);
        let synced = file.map(|f| {
            let (done, wait) = std::sync::mpsc::channel();
            job.data_synced = Some(wait);
            (f, done)
        });
        committer.submit(job)?;
        if let Some((f, done)) = synced {
            let _ = done.send(f.sync_data());
        }
        rx.recv().map_err(|_| StoreError::ShuttingDown)?
    }

    /// Receives and checks the whole data set as [`receive`](Self::receive) does, but only
    /// writes it to `tmp/`: not synced, not committed. A bulk writer (anonymizing a study)
    /// stages many and commits them together with [`crate::Archive::commit_staged`], one
    /// sync pass and one commit batch for all.
    pub fn stage<R: BufRead>(self, data: R) -> Result<StagedInstance, StoreError> {
        self.write_out(data)
    }

    /// Writes and checks the data set; its file stays open for the caller's sync.
    fn write_out<R: BufRead>(mut self, data: R) -> Result<StagedInstance, StoreError> {
        let enc = DatasetEncoding::of(&self.req.transfer_syntax);
        let mut tee = Tee {
            input: data,
            incoming: &mut self,
            write_error: None,
        };
        let walked = scan::scan_dataset(&mut tee, enc);
        // A walk can end before its source does (a deflate stream's final block, padding
        // after it): the instance is complete only when `data` says so (on the network, the
        // last fragment), and every byte sent is stored.
        let drained = match &walked {
            Ok(_) => drain(&mut tee),
            Err(_) => Ok(()),
        };
        if let Some(e) = tee.write_error.take() {
            return Err(StoreError::from_write(e));
        }
        let header = walked.map_err(|e| match e {
            ScanError::Io(io) if io.kind() != io::ErrorKind::InvalidData => StoreError::Io(io),
            other => StoreError::CannotUnderstand(other.to_string()),
        })?;
        drained?;
        let attrs = InstanceAttrs::from_header(&header)
            .map_err(|e| StoreError::CannotUnderstand(e.to_string()))?;
        let (file_hash, file_size, file) = match self.sink.take() {
            Some(Sink::Plain(w)) => close(w)?,
            Some(Sink::Zstd(w)) => close(w.finish().map_err(StoreError::from_write)?)?,
            None => return Err(StoreError::ShuttingDown),
        };
        if attrs.sop_instance_uid.as_str()
            != self.req.sop_instance_uid.trim_end_matches(['\0', ' '])
        {
            return Err(StoreError::Mismatch(format!(
                "SOP Instance UID in dataset ({}) differs from the C-STORE request ({})",
                attrs.sop_instance_uid, self.req.sop_instance_uid
            )));
        }
        // The class the association negotiated is the one retrieval will offer; a data set
        // of another class would make every later C-MOVE of its study fail.
        if attrs.sop_class_uid.as_str() != self.req.sop_class_uid.trim_end_matches(['\0', ' ']) {
            return Err(StoreError::Mismatch(format!(
                "SOP Class UID in dataset ({}) differs from the C-STORE request and presentation context ({})",
                attrs.sop_class_uid, self.req.sop_class_uid
            )));
        }
        if let Some(want) = &self.expected_study
            && attrs.study_uid.as_str() != want
        {
            return Err(StoreError::Mismatch(format!(
                "Study Instance UID in dataset ({}) is not the study stored to ({want})",
                attrs.study_uid
            )));
        }
        let rel_path = layout::instance_rel_path(
            &attrs.study_uid,
            &attrs.series_uid,
            &attrs.sop_instance_uid,
            self.zstd,
        );
        let record = InstanceRecord {
            study_uid: attrs.study_uid.to_string(),
            series_uid: attrs.series_uid.to_string(),
            sop_class_uid: attrs.sop_class_uid.to_string(),
            transfer_syntax: self.req.transfer_syntax.clone(),
            instance_number: attrs.instance_number,
            patient_name: attrs.patient_name.clone(),
            rel_path,
            file_size,
            file_hash,
            dataset_hash: self.dataset_hasher.digest(),
            received_unix: unix_now(),
            source_ae: self.req.source_ae.clone(),
        };
        Ok(StagedInstance {
            tmp_path: std::mem::take(&mut self.tmp_path),
            name_durable: self.name_durable,
            entry: IndexEntry { attrs, record },
            // Kept open for the sync: an error writing back is reported to this descriptor.
            file: Some(file),
            _in_flight: self.in_flight.take(),
        })
    }
}

/// An instance received and checked, its file in `tmp/` (not yet durable), waiting for its
/// commit ([`crate::Archive::commit_staged`]). Dropped uncommitted, its temp file goes.
pub struct StagedInstance {
    pub(crate) tmp_path: PathBuf,
    name_durable: bool,
    entry: IndexEntry,
    file: Option<File>,
    _in_flight: Option<crate::compact::StoreInFlight>,
}

impl StagedInstance {
    /// The SOP Instance UID.
    pub fn sop_instance_uid(&self) -> &str {
        self.entry.attrs.sop_instance_uid.as_str()
    }

    /// The commit job; the temp file is the committer's from here on.
    pub(crate) fn into_job(
        mut self,
        reply: std::sync::mpsc::Sender<Result<StoreOutcome, StoreError>>,
    ) -> CommitJob {
        self.file = None;
        CommitJob {
            tmp_path: std::mem::take(&mut self.tmp_path),
            name_durable: self.name_durable,
            entry: self.entry.clone(),
            reply,
            replace: false,
            data_synced: None,
        }
    }
}

impl Drop for StagedInstance {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Consumes (and so writes) whatever `r` still holds, to its end.
fn drain<R: BufRead>(r: &mut R) -> io::Result<()> {
    loop {
        let n = match r.fill_buf() {
            Ok(b) => b.len(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        r.consume(n);
    }
}

/// Flushes the file (not synced: the caller decides how it becomes durable).
fn close(mut w: HashingWriter<BufWriter<Writeback>>) -> Result<(u64, u64, File), StoreError> {
    w.flush().map_err(StoreError::from_write)?;
    let hash = w.hasher.digest();
    let size = w.written;
    let file = w
        .inner
        .into_inner()
        .map_err(|e| StoreError::from_write(e.into_error()))?
        .file;
    Ok((hash, size, file))
}

/// Fdatasyncs staged files from several threads at once: the disk and the file system's
/// journal serve concurrent syncs together, as they do concurrent associations'.
pub(crate) fn sync_staged(staged: &[StagedInstance]) -> Result<(), StoreError> {
    const SYNC_THREADS: usize = 8;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<io::Error>);
    let files: Vec<&File> = staged.iter().filter_map(|s| s.file.as_ref()).collect();
    std::thread::scope(|scope| {
        for _ in 0..SYNC_THREADS.min(files.len()) {
            scope.spawn(|| {
                while let Some(f) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = f.sync_data() {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(StoreError::from_write(e)),
        None => Ok(()),
    }
}

impl Drop for IncomingInstance {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            self.sink = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
