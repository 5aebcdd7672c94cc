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

/// How long a batch of reads' records may wait for company before it is committed.
pub const LINGER: Duration = Duration::from_millis(2);

/// A batch at least this large is committed without lingering: its commit is already shared.
const LINGER_BELOW: usize = 128;

struct Job {
    event: AuditEvent,
    ack: Option<oneshot::Sender<Result<u64, String>>>,
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
    pub fn start(store: Arc<dyn Store>) -> (AuditWriter, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(8192);
        let handle = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    drain(&mut rx, &mut jobs);
                    if jobs.len() < LINGER_BELOW && jobs.iter().all(|j| j.ack.is_none()) {
                        // Only reads, already forwarded: let more records join this commit. A
                        // durable append unparks at once (also when it raced with this check).
                        std::thread::park_timeout(LINGER);
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
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Job {
                event,
                ack: Some(ack),
            })
            .await
            .map_err(|_| AuditError("audit writer stopped".into()))?;
        self.writer.unpark();
        rx.await
            .map_err(|_| AuditError("audit writer stopped".into()))?
            .map_err(AuditError)
    }

    /// Queues a record without waiting for the commit (waits only if the queue is full, so a
    /// flood slows callers instead of dropping records).
    pub async fn append(&self, event: AuditEvent) {
        if self.tx.send(Job { event, ack: None }).await.is_err() {
            tracing::error!("audit writer stopped; a record was lost");
        }
    }
}
