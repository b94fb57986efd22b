//! The audit trail: who looked at or changed what, when, from where.
//!
//! Records are JSON lines in `DATA/audit/YYYY-MM-DD.jsonl` (one file per UTC day). Each carries
//! a sequence number and the hash of the record before it, and its own hash covers both
//! ([`chain`]), so `pacsbox audit verify` finds a record that was edited, removed or inserted.
//! Files older than the retention are removed whole; a `audit.pruned` record then names the
//! first record kept, so removing more than that also shows.
//!
//! Writing never waits on the disk for the caller: [`Audit::record`] queues the event for one
//! writer thread, which appends a batch and fdatasyncs it. A C-STORE acknowledgement or a web
//! page therefore costs a channel send, and a crash loses at most the batch being written (a
//! torn last line is cut off at the next start and the cut recorded).
//!
//! This crate knows nothing of sockets, HTTP or DICOM: callers describe events as strings.

mod chain;
mod read;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::Duration;

pub use chain::{Problem, Record, VerifyReport, files, printable, verify};
pub use read::{Filter, read, to_csv};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail in {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, AuditError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One access or change, as the caller saw it.
#[derive(Clone, Debug, Default)]
pub struct Event {
    /// The web user, or the calling AE title of a DICOM peer.
    pub actor: String,
    /// The peer's IP address.
    pub client: String,
    /// What was done: `web.login`, `study.view`, `dicom.find`, … (docs/audit.md lists them).
    pub action: String,
    /// `ok`, or why not (`refused: …`, `failed: …`).
    pub outcome: String,
    /// The patient concerned (ID and name), if any.
    pub patient: String,
    /// The study concerned, if any.
    pub study: String,
    /// Anything else: search terms, a destination AE, a user name that was created.
    pub detail: String,
}

impl Event {
    pub fn new(action: &str, actor: &str, client: &str) -> Event {
        Event {
            action: action.to_owned(),
            actor: actor.to_owned(),
            client: client.to_owned(),
            outcome: "ok".to_owned(),
            ..Event::default()
        }
    }
    pub fn outcome(mut self, outcome: impl Into<String>) -> Event {
        self.outcome = outcome.into();
        self
    }
    pub fn patient(mut self, patient: impl Into<String>) -> Event {
        self.patient = patient.into();
        self
    }
    pub fn study(mut self, study: impl Into<String>) -> Event {
        self.study = study.into();
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = detail.into();
        self
    }
}

/// How the copy of the trail for the clinic's syslog collector is doing (`pacsbox-atna` keeps
/// it; the status page shows it): here so the web page can show it without knowing sockets.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct ForwardStatus {
    /// `host:port` of the collector.
    pub target: String,
    pub connected: bool,
    /// Records in the trail the collector has not yet confirmedly had.
    pub backlog: u64,
    /// Records sent since start (resends included).
    pub sent: u64,
    pub last_sent_unix: Option<i64>,
    /// Since when the backlog has not been empty.
    pub behind_since_unix: Option<i64>,
    /// The last connection or TLS error; empty once a connection works again.
    pub last_error: String,
}

enum Msg {
    Event(i64, Event),
    Flush(SyncSender<()>),
}

/// Events queued beyond this are dropped (and counted in the trail) rather than slowing the
/// caller: a disk that stalls must not stall DICOM. Counted, not a bounded channel: a bounded
/// std channel allocates and touches every slot up front (12 MB of resident memory for this
/// many events), a list-based one only what is queued.
const QUEUE: usize = 1 << 16;
/// Events written per fdatasync at most.
const BATCH: usize = 512;

/// The handle every service holds; clones share one writer.
#[derive(Clone)]
pub struct Audit {
    tx: Option<Sender<Msg>>,
    /// Events sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    dir: PathBuf,
    dropped: Arc<AtomicU64>,
    /// The sequence number the next record will get (what a reader of the files is behind).
    next_seq: Arc<AtomicU64>,
}

impl Audit {
    /// Opens the trail in `dir` (created if need be), cuts a torn last line, removes files
    /// older than `keep_days`, and starts the writer thread.
    pub fn open(dir: &Path, keep_days: u32) -> Result<Audit> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut writer = Writer::open(dir, keep_days)?;
        let next_seq = writer.next_seq_shared.clone();
        let (tx, rx) = channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let (dropped2, queued2) = (dropped.clone(), queued.clone());
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer.run(rx, &dropped2, &queued2))
            .map_err(io_err(dir))?;
        Ok(Audit {
            tx: Some(tx),
            queued,
            dir: dir.to_owned(),
            dropped,
            next_seq,
        })
    }

    /// A trail that records nothing (offline tools that change nothing).
    pub fn disabled() -> Audit {
        Audit {
            tx: None,
            queued: Arc::default(),
            dir: PathBuf::new(),
            dropped: Arc::default(),
            next_seq: Arc::default(),
        }
    }

    /// The sequence number the next record written will get, updated as records reach the
    /// file (the audit forwarder's backlog is measured against it).
    pub fn next_seq(&self) -> Arc<AtomicU64> {
        self.next_seq.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues an event; never blocks.
    pub fn record(&self, event: Event) {
        let Some(tx) = &self.tx else {
            return;
        };
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if tx.send(Msg::Event(now_unix(), event)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("audit writer is gone; event not recorded");
        }
    }

    /// Waits (up to 10 s) until everything recorded before this call is on disk.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// Seconds since 1970 (negative before it): a clock set wrong must not panic anything.
pub fn now_unix() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `YYYY-MM-DD` (UTC) of a time; out-of-range clocks clamp to what `time` represents.
pub(crate) fn day_of(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

struct Writer {
    dir: PathBuf,
    keep_days: u32,
    day: String,
    file: Option<File>,
    next_seq: u64,
    /// `next_seq` for readers on other threads.
    next_seq_shared: Arc<AtomicU64>,
    head: String,
}

impl Writer {
    fn open(dir: &Path, keep_days: u32) -> Result<Writer> {
        let mut w = Writer {
            dir: dir.to_owned(),
            keep_days,
            day: String::new(),
            file: None,
            next_seq: 0,
            next_seq_shared: Arc::default(),
            head: chain::GENESIS.to_owned(),
        };
        let mut notes = Vec::new();
        if let Some(last) = chain::files(dir)?.last() {
            let (cut, tail) = chain::cut_torn_tail(last)?;
            if cut > 0 {
                notes.push((
                    "audit.recovered",
                    format!("a torn last record ({cut} bytes) was cut after a crash"),
                ));
            }
            match tail {
                Some(Ok(r)) => {
                    w.next_seq = r.seq + 1;
                    w.head = r.hash;
                }
                Some(Err(line)) => {
                    // Chain on from the damaged line as it stands; verify reports it.
                    w.head = chain::hash_bytes(&[line.as_bytes()]);
                    notes.push((
                        "audit.recovered",
                        "the last record could not be read; verify names it".into(),
                    ));
                }
                None => {}
            }
        }
        w.prune(&mut notes)?;
        let now = now_unix();
        for (action, n) in notes {
            let e = Event::new(action, "pacsbox", "").detail(n);
            w.append(&mut Vec::new(), now, e)?;
        }
        w.sync()?;
        Ok(w)
    }

    /// Removes whole files older than the retention and records the first record kept.
    fn prune(&mut self, notes: &mut Vec<(&'static str, String)>) -> Result<()> {
        if self.keep_days == 0 {
            return Ok(());
        }
        let cutoff = day_of(now_unix() - i64::from(self.keep_days) * 86_400);
        let files = chain::files(&self.dir)?;
        let mut removed = 0;
        for f in &files {
            let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            // Never the newest file: it holds the chain's head.
            if name < cutoff.as_str() && Some(f) != files.last() {
                std::fs::remove_file(f).map_err(io_err(f))?;
                removed += 1;
            }
        }
        if removed > 0 {
            let first = chain::files(&self.dir)?
                .first()
                .and_then(|f| chain::first_seq(f).ok().flatten())
                .unwrap_or(self.next_seq);
            notes.push((
                "audit.pruned",
                format!(
                    "{removed} file(s) older than {cutoff} removed (retention {} days); kept from seq {first}",
                    self.keep_days
                ),
            ));
        }
        Ok(())
    }

    fn run(&mut self, rx: Receiver<Msg>, dropped: &AtomicU64, queued: &AtomicUsize) {
        let mut buf = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut waiting = Vec::new();
            let mut msg = Some(first);
            let mut n = 0;
            while let Some(m) = msg.take() {
                match m {
                    Msg::Event(unix, e) => {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        if let Err(err) = self.append(&mut buf, unix, e) {
                            tracing::error!(error = %err, "audit record not written");
                        }
                        n += 1;
                    }
                    Msg::Flush(done) => waiting.push(done),
                }
                if n < BATCH {
                    msg = rx.try_recv().ok();
                }
            }
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let e = Event::new("audit.dropped", "pacsbox", "")
                    .outcome("failed: queue full")
                    .detail(format!("{lost} event(s) not recorded"));
                if let Err(err) = self.append(&mut buf, now_unix(), e) {
                    tracing::error!(error = %err, "audit record not written");
                }
            }
            if let Err(err) = self.sync() {
                tracing::error!(error = %err, "audit trail not synced");
            }
            for d in waiting {
                let _ = d.send(());
            }
        }
    }

    /// Appends one record (opening the day's file when the day changes).
    fn append(&mut self, buf: &mut Vec<u8>, unix: i64, e: Event) -> Result<()> {
        let day = day_of(unix);
        if self.file.is_none() || day != self.day {
            self.sync()?;
            let path = self.dir.join(format!("{day}.jsonl"));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            // The new name must survive a crash along with what is written into it.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.dir))?;
            self.file = Some(f);
            self.day = day;
        }
        let rec = Record::chained(self.next_seq, unix, &e, &self.head);
        buf.clear();
        serde_json::to_writer(&mut *buf, &rec).map_err(|e| AuditError::Io {
            path: self.dir.clone(),
            source: e.into(),
        })?;
        buf.push(b'\n');
        if let Some(f) = &mut self.file {
            let path = &self.dir;
            f.write_all(buf).map_err(io_err(path))?;
        }
        self.next_seq += 1;
        self.head = rec.hash;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Some(f) = &self.file {
            f.sync_data().map_err(io_err(&self.dir))?;
        }
        self.next_seq_shared.store(self.next_seq, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
