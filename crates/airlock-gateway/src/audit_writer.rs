//! Group commit for gateway audit records.
//!
//! A dedicated thread (SQLite is synchronous) takes every record waiting in the queue and writes
//! them in one transaction, one fsync. Doors wait for the commit before forwarding anything that
//! is not a read, so a crash can never lose the record of a write that reached an upstream;
//! reads are forwarded at once and their records follow in the next batch.
//!
//! When only reads' records are waiting, the writer lingers up to [`LINGER`] for more before
//! committing, so that under load one commit carries dozens of records instead of a handful:
//! the commit (WAL pages and an fsync) costs more than the inserts. A durable append wakes it at
//! once, so a write or a refusal never waits for the linger. What a crash can lose is unchanged
//! in kind: the records of reads already forwarded whose batch was not yet committed (at most
//! [`LINGER`] plus one commit's worth).

use airlock_audit::AuditEvent;
use airlock_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most records written in one transaction.
const MAX_BATCH: usize = 512;

/// How long a batch of reads' records may wait for company before it is committed, unless
/// `gateway.audit_linger` says otherwise.
pub const LINGER: Duration = Duration::from_millis(2);

/// The longest linger the writer accepts: past it, too many reads' records could be lost.
pub const MAX_LINGER: Duration = Duration::from_secs(1);

/// A batch at least this large is committed without lingering: its commit is already shared.
const LINGER_BELOW: usize = 128;

struct Job {
    event: AuditEvent,
    ack: Option<oneshot::Sender<Result<u64, String>>>,
    /// Someone waits for this commit now: do not linger.
    urgent: bool,
}

/// A record queued by [`AuditWriter::append_deferred`]: resolves once it is committed.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<u64, String>>);

impl Pending {
    /// Waits for the commit; the record's sequence number, or why it could not be written.
    pub async fn wait(self) -> Result<u64, AuditError> {
        self.0
            .await
            .map_err(|_| AuditError("audit writer stopped".into()))?
            .map_err(AuditError)
    }
}

/// Why a durable audit append failed; the caller must refuse the operation.
#[derive(Debug, thiserror::Error)]
#[error("the audit log could not be written ({0})")]
pub struct AuditError(pub String);

/// Moves what is queued into `jobs`, up to a batch.
fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

/// A handle to the audit writer thread. Cloning is cheap.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
    /// The writer thread, unparked by a durable append so it never lingers while one waits.
    writer: std::thread::Thread,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl AuditWriter {
    /// Starts the writer thread over `store` (give it a connection of its own, so its fsyncs
    /// never hold up token checks). The thread ends when every handle is dropped, after writing
    /// what is queued.
    pub fn start(
        store: Arc<dyn Store>,
        linger: Duration,
    ) -> (AuditWriter, std::thread::JoinHandle<()>) {
        let linger = linger.min(MAX_LINGER);
        let (tx, mut rx) = mpsc::channel::<Job>(8192);
        let handle = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    drain(&mut rx, &mut jobs);
                    if jobs.len() < LINGER_BELOW && jobs.iter().all(|j| !j.urgent) {
                        // Nobody waits yet (reads already forwarded, deferred writes): let more
                        // records join this commit. A durable append or a flush unparks at once
                        // (also when it raced with this check).
                        std::thread::park_timeout(linger);
                        drain(&mut rx, &mut jobs);
                    }
                    let (events, acks): (Vec<_>, Vec<_>) =
                        jobs.into_iter().map(|j| (j.event, j.ack)).unzip();
                    match store.append_audit_batch(events) {
                        Ok(records) => {
                            for (ack, rec) in acks.into_iter().zip(records) {
                                if let Some(a) = ack {
                                    let _ = a.send(Ok(rec.seq));
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "audit batch could not be written");
                            for a in acks.into_iter().flatten() {
                                let _ = a.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            });
        match handle {
            Ok(h) => {
                let writer = h.thread().clone();
                (AuditWriter { tx, writer }, h)
            }
            // Without a writer thread every durable append fails, which fails closed.
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit writer thread");
                let (tx, _rx) = mpsc::channel(1);
                let h = std::thread::spawn(|| {});
                let writer = h.thread().clone();
                (AuditWriter { tx, writer }, h)
            }
        }
    }

    /// Appends and waits until the record is committed; returns its sequence number.
    pub async fn append_durable(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let pending = self.queue_acked(event, true).await?;
        self.writer.unpark();
        pending.wait().await
    }

    async fn queue_acked(&self, event: AuditEvent, urgent: bool) -> Result<Pending, AuditError> {
        let (ack, rx) = oneshot::channel();
        let job = Job {
            event,
            ack: Some(ack),
            urgent,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| AuditError("audit writer stopped".into()))?;
        Ok(Pending(rx))
    }

    /// Queues a record without waiting for the commit (waits only if the queue is full, so a
    /// flood slows callers instead of dropping records).
    pub async fn append(&self, event: AuditEvent) {
        let job = Job {
            event,
            ack: None,
            urgent: false,
        };
        if self.tx.send(job).await.is_err() {
            tracing::error!("audit writer stopped; a record was lost");
        }
    }

    /// Queues a record that must be committed before the caller lets its effect become
    /// permanent, without waking the writer: the caller later calls [`AuditWriter::flush`] and
    /// waits on the [`Pending`] before that point (the PostgreSQL door, before a COMMIT).
    pub async fn append_deferred(&self, event: AuditEvent) -> Result<Pending, AuditError> {
        self.queue_acked(event, false).await
    }

    /// Makes the writer commit what is queued now instead of lingering.
    pub fn flush(&self) {
        self.writer.unpark();
    }
}
