//! Pending responses streamed from a blocking worker while the association is watched for
//! C-CANCEL: C-FIND and the Modality Worklist share it.
//!
//! The worker encodes each match straight into P-DATA PDUs and hands over batches on a small
//! bounded channel: one channel hop and one socket write per batch instead of two writes and
//! two thread switches per match (those were most of the time of a 2 500-match query), and a
//! query matching 100 000 records never holds them all. A C-CANCEL drops the receiver, so the
//! worker's next batch finds the channel closed and stops.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use dicom_ul::Pdu;
use tokio::sync::mpsc;

use crate::association::{AssocError, Association, encode_message};
use crate::dimse::{Command, Status, is_cancel};

/// A batch of pending responses is written when it reaches this size or age.
const BATCH_BYTES: usize = 64 * 1024;
const BATCH_AGE: Duration = Duration::from_millis(20);

/// The worker's side: matches in, batches of encoded pendings out.
pub(crate) struct Pendings {
    ctx: u8,
    peer_max: u32,
    pending: Vec<u8>,
    batch: Vec<u8>,
    last_sent: Instant,
    matches: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

impl Pendings {
    /// Queues one match's identifier; `Break` once the query is cancelled (or the association
    /// is gone), so the worker stops reading.
    pub(crate) fn push(&mut self, identifier: &[u8]) -> ControlFlow<()> {
        encode_message(
            self.ctx,
            self.peer_max,
            &self.pending,
            identifier,
            &mut self.batch,
        );
        self.matches += 1;
        // The first match goes out at once, so the SCU sees the query working.
        if self.matches == 1
            || self.batch.len() >= BATCH_BYTES
            || self.last_sent.elapsed() >= BATCH_AGE
        {
            self.last_sent = Instant::now();
            if self
                .tx
                .blocking_send(std::mem::take(&mut self.batch))
                .is_err()
            {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// What a streamed query ended with.
pub(crate) struct Streamed<T> {
    /// The worker's own result.
    pub outcome: T,
    /// Pendings made (some may not have been sent when cancelled).
    pub matches: u64,
    pub cancelled: bool,
}

/// Runs `work` on a blocking thread and sends what it pushes as pending responses to `req`,
/// until it returns or a C-CANCEL for `req` arrives (checked before each batch is written).
/// Anything else the peer sends meanwhile is a protocol error. The caller sends the final
/// response (Cancel when `cancelled`).
pub(crate) async fn stream<T: Send + 'static>(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    service: &'static str,
    work: impl FnOnce(&mut Pendings) -> T + Send + 'static,
) -> Result<Streamed<T>, AssocError> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let mut pending = Command::response_to(req, Status::PENDING);
    pending.data_set_type = 0x0000;
    let mut pendings = Pendings {
        ctx,
        peer_max: assoc.peer_max_pdu(),
        pending: pending.encode(),
        batch: Vec::with_capacity(BATCH_BYTES + 4096),
        last_sent: Instant::now(),
        matches: 0,
        tx,
    };
    let worker = tokio::task::spawn_blocking(move || {
        let outcome = work(&mut pendings);
        if !pendings.batch.is_empty() {
            let _ = pendings
                .tx
                .blocking_send(std::mem::take(&mut pendings.batch));
        }
        (outcome, pendings.matches)
    });
    let mut cancelled = false;
    loop {
        // A C-CANCEL already received wins over the next batch.
        tokio::select! {
            biased;
            pdu = assoc.receive_while_busy() => {
                match pdu? {
                    Pdu::PData { data } if is_cancel(&data, req) => {
                        cancelled = true;
                        break;
                    }
                    other => {
                        return Err(AssocError::Malformed(format!(
                            "unexpected {} during {service}",
                            other.short_description()
                        )));
                    }
                }
            }
            pdus = rx.recv() => {
                let Some(pdus) = pdus else { break };
                assoc.send_encoded(&pdus).await?;
            }
        }
    }
    drop(rx);
    let (outcome, matches) = worker
        .await
        .map_err(|e| AssocError::Malformed(format!("{service} task failed: {e}")))?;
    Ok(Streamed {
        outcome,
        matches,
        cancelled,
    })
}
