//! Cores: one single-threaded tokio runtime per CPU, each on its own thread, that run the doors'
//! connections from accept to end (PostgreSQL sessions, HTTP connections).
//!
//! A PostgreSQL session is one client socket and one database socket relayed back and forth,
//! message by message; an HTTP connection is one client socket and pooled upstream connections.
//! On the shared work-stealing runtime, a message that arrived on one worker's I/O driver was
//! often run on another, which the first had to wake (a futex and an inter-processor interrupt,
//! several microseconds on a virtual machine): 0.9 wake-ups per statement under `pgbench -S`. On
//! a core, the connection and its upstream sockets are polled by the thread that runs it, as in
//! PgBouncer or nginx, and nothing is handed between threads. Each core has its own pool of
//! upstream HTTP connections for that reason ([`current`] says which core code runs on).
//! Connections are dealt to the cores in turn.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::runtime::Handle;

thread_local! {
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the core this thread is, or None on any other thread.
pub(crate) fn current() -> Option<usize> {
    CURRENT.with(|c| c.get())
}

/// How many cores a gateway runs: one per CPU, or as many as `TOKIO_WORKER_THREADS` says (the
/// setting that sizes the shared runtime, so that one knob sizes both).
pub(crate) fn count() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// The cores of one gateway.
pub(crate) struct Cores {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping these ends the cores' threads (their runtimes drop what still runs on them).
    stops: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cores({})", self.handles.len())
    }
}

impl Cores {
    /// Starts `n` cores (at least one). A core that cannot be started is left out; with none,
    /// connections run on the runtime that accepted them.
    pub fn start(n: usize) -> Cores {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..n.max(1) {
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name(format!("airlock-core-{i}"))
                .spawn(move || {
                    CURRENT.with(|c| c.set(Some(i)));
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a core");
                            return;
                        }
                    };
                    if handle_tx.send(rt.handle().clone()).is_err() {
                        return;
                    }
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                });
            match spawned {
                Ok(_) => {
                    if let Ok(h) = handle_rx.recv() {
                        handles.push(h);
                        stops.push(stop_tx);
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot start a core thread"),
            }
        }
        Cores {
            handles,
            next: AtomicUsize::new(0),
            stops: Mutex::new(stops),
        }
    }

    /// As many cores as [`count`] says.
    pub fn start_default() -> Cores {
        Cores::start(count())
    }

    /// The core the next connection runs on (in turn), or None when no core could be started.
    pub fn pick(&self) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles.get(i)
    }

    /// Runs a connection on the next core, or on the current runtime when there is none.
    pub fn spawn<F>(&self, connection: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.pick() {
            Some(core) => core.spawn(connection),
            None => tokio::spawn(connection),
        }
    }

    /// Ends the cores' threads; what still runs on them is dropped.
    pub fn stop(&self) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_dealt_to_every_core_in_turn_and_run_there() {
        let cores = Cores::start(2);
        let seen: Vec<(String, Option<usize>)> = (0..4)
            .map(|_| {
                let h = cores.pick().unwrap();
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move {
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    let _ = tx.send((name, current()));
                });
                rx.recv().unwrap()
            })
            .collect();
        let expect = |i: usize| (format!("airlock-core-{i}"), Some(i));
        assert_eq!(seen, [expect(0), expect(1), expect(0), expect(1)]);
        assert_eq!(current(), None);
    }

    #[test]
    fn a_stopped_core_drops_what_still_runs_on_it() {
        let cores = Cores::start(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        cores.pick().unwrap().spawn(async move {
            let _held = tx;
            std::future::pending::<()>().await;
        });
        cores.stop();
        // The sender is dropped with the task, so the receiver sees the channel close.
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
