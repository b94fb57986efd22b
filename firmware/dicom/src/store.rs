//! C-STORE SCP (PS3.4 Annex B): streams the data set fragments into the archive as they
//! arrive, on a blocking thread, and answers only when the archive says the instance is
//! durable.
//!
//! Status choices (conformance notes): a duplicate SOP Instance UID is answered 0000 whether
//! identical or not, because modalities that see a warning (B000/B007) often resend forever;
//! the conflicting copy is kept aside for an admin. Out of space is A700, an unparseable data
//! set or one lacking its UIDs C000, a data set whose SOP Instance UID or SOP Class UID differs
//! from the request A900, a request whose SOP class is not its context's 0122. A data set is
//! complete only with its last-flagged fragment: cut off before it, nothing is stored.

use std::sync::atomic::Ordering;

use pacsbox_archive::{StoreError, StoreOutcome, StoreRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::association::AcceptedContext;
use crate::context::ServiceContext;
use crate::dimse::{Command, Status};

/// Fragments queued between the network and the disk writer; bounds memory per association to
/// a few PDUs.
const QUEUE: usize = 4;

/// What the network side hands the disk writer: a fragment, and whether it is the one
/// flagged last (then the data set is complete once it is consumed). The flag travels with
/// the bytes so that the end costs no message, and no wake-up of the writer, of its own.
struct Piece {
    data: Vec<u8>,
    last: bool,
}

/// The data set fragments of one C-STORE as a blocking `BufRead` for the archive's single
/// pass: each fragment's buffer, as the association's reader read it off the socket, is what
/// the archive walks and writes to the file, without another copy.
/// End of stream is a [`Piece`] flagged `last` only: a sender dropped before it (association
/// closed, aborted or timed out mid data set) is an error, so the archive never takes the bytes
/// so far for an instance, even when they end on an element boundary.
struct ChannelReader<'a> {
    rx: &'a mut mpsc::Receiver<Piece>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl std::io::BufRead for ChannelReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            if self.ended {
                return Ok(&[]);
            }
            match self.rx.blocking_recv() {
                Some(Piece { data, last }) => {
                    self.chunk = data;
                    self.pos = 0;
                    self.ended = last;
                }
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "association ended before the data set's last fragment",
                    ));
                }
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

impl std::io::Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let chunk = std::io::BufRead::fill_buf(self)?;
            let n = buf.len().min(chunk.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            n
        };
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

pub struct Reception {
    pub context: u8,
    req: Command,
    tx: Option<mpsc::Sender<Piece>>,
    writer: JoinHandle<Result<StoreOutcome, StoreError>>,
    /// Set by `finish`; a reception dropped before it was cut off mid data set.
    finished: bool,
}

fn status_of(e: &StoreError) -> Status {
    match e {
        // The modality keeps its copy and may retry once an admin has made room.
        StoreError::OutOfSpace { .. } | StoreError::ConflictsFull { .. } => {
            Status::OUT_OF_RESOURCES
        }
        StoreError::CannotUnderstand(_) => Status::CANNOT_UNDERSTAND,
        StoreError::Mismatch(_) => Status::DATASET_MISMATCH,
        StoreError::Io(_) | StoreError::Index(_) | StoreError::ShuttingDown => {
            Status::OUT_OF_RESOURCES
        }
    }
}

impl Reception {
    /// Starts receiving one C-STORE's data set. Refuses here only what the command alone
    /// shows (a SOP class unlike its presentation context's); the archive's refusals (no
    /// space, a syntax it does not take) come from `finish`, after the data set was drained.
    pub async fn begin(
        service: ServiceContext<'_>,
        req: &Command,
        context: u8,
        accepted: &AcceptedContext,
        calling_ae: &str,
    ) -> Result<Reception, (Status, String)> {
        let sop_class = req.affected_sop_class_uid.clone().unwrap_or_default();
        if sop_class != accepted.abstract_syntax {
            return Err((
                Status::SOP_CLASS_NOT_SUPPORTED,
                "SOP class differs from the presentation context".into(),
            ));
        }
        let request = StoreRequest {
            sop_class_uid: sop_class,
            sop_instance_uid: req.affected_sop_instance_uid.clone().unwrap_or_default(),
            transfer_syntax: accepted.transfer_syntax.clone(),
            source_ae: calling_ae.to_owned(),
        };
        let archive = service.archive.clone();
        let (tx, mut rx) = mpsc::channel::<Piece>(QUEUE);
        // Not waited for: the first fragments queue while the writer starts, which saves a
        // round trip to the blocking thread per instance. A refusal (no space, an unknown
        // syntax) ends the writer early; the rest of the data set is drained and `finish`
        // answers with its status.
        let writer = tokio::task::spawn_blocking(move || {
            archive.begin_store(request)?.receive(ChannelReader {
                rx: &mut rx,
                chunk: Vec::new(),
                pos: 0,
                ended: false,
            })
        });
        Ok(Reception {
            context,
            req: req.clone(),
            tx: Some(tx),
            writer,
            finished: false,
        })
    }

    /// Queues a fragment for the writer; `last`: it is the data set's last.
    pub async fn push(&mut self, chunk: Vec<u8>, last: bool) {
        self.send(Piece { data: chunk, last }).await;
    }

    async fn send(&mut self, piece: Piece) {
        if let Some(tx) = &self.tx
            && tx.send(piece).await.is_err()
        {
            // The writer stopped early (an error it will report at finish); keep draining.
            self.tx = None;
        }
    }

    /// The last fragment was pushed: waits for the archive's verdict.
    pub async fn finish(mut self, service: ServiceContext<'_>) -> (Command, Status, String) {
        let status = service.status;
        self.finished = true;
        self.tx = None;
        let req = self.req.clone();
        let sop = req.affected_sop_instance_uid.clone().unwrap_or_default();
        let result = match (&mut self.writer).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Io(std::io::Error::other(format!(
                "storage writer panicked: {e}"
            )))),
        };
        match result {
            Ok(outcome) => {
                status.instances_stored.fetch_add(1, Ordering::Relaxed);
                service.log.stored(&sop);
                if outcome != StoreOutcome::Stored {
                    tracing::info!(sop_instance_uid = sop, ?outcome, "duplicate instance");
                }
                (req, Status::SUCCESS, String::new())
            }
            Err(e) => {
                status.stores_failed.fetch_add(1, Ordering::Relaxed);
                service.log.failed();
                tracing::warn!(sop_instance_uid = sop, error = %e, "C-STORE failed");
                let st = status_of(&e);
                (req, st, e.to_string())
            }
        }
    }
}

impl Drop for Reception {
    /// The association ended (closed, aborted, timed out, or a protocol error) before the
    /// last fragment: dropping the sender before a `last` piece fails the writer's read, and
    /// the archive removes the temp file without indexing anything.
    fn drop(&mut self) {
        if !self.finished {
            let sop = self.req.affected_sop_instance_uid.as_deref().unwrap_or("");
            tracing::warn!(
                sop_instance_uid = sop,
                "association ended before the data set's last fragment: partial instance discarded"
            );
        }
    }
}
