//! The gateway: protocol doors in front of upstreams, all sharing one decision path.
//!
//! ```text
//! agent --(Airlock token)--> door --> authenticate --> classify --> decide --> audit --> forward --> upstream
//! ```
//! - [`http_door`]: HTTP/1.1 and HTTP/2 reverse proxy for REST and GraphQL APIs.
//! - [`decision`]: the protocol-neutral decision service every door calls.
//! - [`audit_writer`]: group commit of decision records.
//! - [`runtime`]: what a reload swaps (upstreams, rules, secrets, policies, catalog).
//! - `listeners`: the doors' sockets, opened and closed as reloads change the configuration.
//! - `cores`: one single-threaded runtime per CPU that connections (HTTP, PostgreSQL) run on.
//! - [`admin`]: `/healthz` and `/metrics` on a separate listener.

pub mod admin;
pub mod audit_writer;
pub mod console;
mod cores;
pub mod decision;
pub mod http_door;
mod listeners;
pub mod metrics;
pub mod pg_door;
pub mod runtime;
pub mod upstream_pool;

use airlock_authority::Authority;
use airlock_core::{Clock, SystemClock};
use airlock_store::SqliteStore;
use arc_swap::ArcSwap;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use decision::{Decider, DoorRequest, Verdict};
pub use runtime::{LoadError, Runtime};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration, rules, policies or secrets are invalid.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] airlock_store::StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on `{addr}`: {message}; {hint}")]
    Bind {
        /// The address.
        addr: String,
        /// Why, as the OS or the gateway said it.
        message: String,
        /// What to do about it, fitting the cause.
        hint: String,
    },
    /// Nothing to serve.
    #[error("no upstreams are configured; add an `[upstreams.NAME]` table to airlock.toml (see docs/gateway.md)")]
    NoUpstreams,
}

/// The client type used towards upstreams.
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, http_door::Body>;

/// State shared by every connection.
pub struct Shared {
    /// The current runtime; a reload swaps it atomically.
    pub runtime: ArcSwap<Runtime>,
    /// The decision service.
    pub decider: Decider,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// How long an upstream may take to answer.
    pub upstream_timeout: Duration,
    /// How long shutdown waits for requests in flight and open transactions.
    pub shutdown_grace: Duration,
    /// The master key, for opening humans' TOTP secrets when they approve (None: approvals
    /// cannot be decided on this gateway).
    pub master_key: Option<Arc<airlock_seal::MasterKey>>,
    /// Web console sessions.
    pub sessions: console::Sessions,
    /// The PostgreSQL door's cancel keys.
    pub pg: pg_door::PgShared,
    /// The single-threaded runtimes connections run on.
    pub(crate) cores: cores::Cores,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// Where the gateway listened when it started (a reload may open, move or close listeners
/// since; it logs each change).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bound {
    /// The shared proxy listener (path-prefix upstreams), if any upstream uses it.
    pub proxy: Option<SocketAddr>,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Dedicated listeners, by upstream name.
    pub upstreams: Vec<(String, SocketAddr)>,
    /// PostgreSQL listeners, by database name.
    pub databases: Vec<(String, SocketAddr)>,
    /// PostgreSQL listeners on unix sockets, by database name.
    pub sockets: Vec<(String, PathBuf)>,
}

/// A started gateway.
pub struct Running {
    bound: Bound,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    audit_thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("bound", &self.bound)
            .finish()
    }
}

async fn bind(addr: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| listeners::tcp_bind_error(addr, &e))
}

/// Starts the gateway described by `config_path`: binds every listener, then serves until
/// [`Running::shutdown`].
pub async fn start(config_path: &Path) -> Result<Running, GatewayError> {
    let config = airlock_config::Config::load(config_path).map_err(LoadError::from)?;
    // Two connections: token checks never wait behind the audit writer's fsyncs.
    let auth_store = Arc::new(SqliteStore::open_existing(&config.store_path())?);
    let approval_store: Arc<dyn airlock_store::Store> =
        Arc::new(SqliteStore::open_existing(&config.store_path())?);
    let audit_store = Arc::new(SqliteStore::open_existing(&config.store_path())?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let authority = Arc::new(Authority::new(
        auth_store,
        config.clone(),
        Arc::clone(&clock),
    ));
    let runtime = Runtime::load(config_path, &authority)?;
    if runtime.upstreams.is_empty() && runtime.databases.is_empty() {
        return Err(GatewayError::NoUpstreams);
    }
    let (audit, audit_thread) =
        audit_writer::AuditWriter::start(audit_store, config.gateway.audit_linger.0);
    let gw = &runtime.config.gateway;
    let max_conn = gw.max_connections.max(1);
    let grace = gw.shutdown_grace.0;
    let upstream_timeout = gw.upstream_timeout.0;

    // Every door's socket is bound before anything is served: a busy address fails the start.
    let mut bound_doors = Vec::new();
    let (mut proxy, mut bound_upstreams, mut bound_databases) = (None, Vec::new(), Vec::new());
    let mut bound_sockets = Vec::new();
    for (door, spec) in listeners::wanted(&runtime) {
        let socket = listeners::open(&door, &spec).await?;
        match (&door, &socket) {
            (listeners::Door::Database(n), listeners::Socket::Unix(_, path, _)) => {
                bound_sockets.push((n.clone(), path.clone()));
            }
            (door, listeners::Socket::Tcp(l)) => {
                if let Ok(a) = l.local_addr() {
                    match door {
                        listeners::Door::Proxy => proxy = Some(a),
                        listeners::Door::Upstream(n) => bound_upstreams.push((n.clone(), a)),
                        listeners::Door::Database(n) => bound_databases.push((n.clone(), a)),
                    }
                }
            }
            _ => {}
        }
        bound_doors.push((door, spec, socket));
    }
    let admin_listener = bind(&gw.admin_listen).await?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| listeners::tcp_bind_error(&gw.admin_listen, &e))?;

    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        decider: Decider::new(Arc::clone(&authority), audit, clock, approval_store),
        metrics: metrics::Metrics::default(),
        upstream_timeout,
        shutdown_grace: grace,
        master_key: airlock_seal::MasterKey::load(&config.key_path())
            .ok()
            .map(Arc::new),
        sessions: console::Sessions::default(),
        pg: pg_door::PgShared::default(),
        cores: cores::Cores::start_default(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let mut doors = listeners::Listeners::new(
        Arc::clone(&shared),
        Arc::new(Semaphore::new(max_conn)),
        grace,
        stop_rx.clone(),
    );
    for (door, spec, l) in bound_doors {
        doors.start(door, spec, l);
    }
    // Caught from now on: SIGHUP's default action ends the process, and a reload may be asked
    // for as soon as the listeners are reported.
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let tasks = vec![
        tokio::spawn(admin::serve(
            admin_listener,
            Arc::clone(&shared),
            stop_rx.clone(),
        )),
        tokio::spawn(sweep_loop(Arc::clone(&shared), stop_rx.clone())),
        // The reload loop owns the listeners: it opens and closes them as the configuration
        // changes, and closes them all when the gateway stops.
        tokio::spawn(reload_loop(
            config_path.to_path_buf(),
            Arc::clone(&shared),
            authority,
            doors,
            stop_rx,
            #[cfg(unix)]
            hup,
        )),
    ];
    Ok(Running {
        bound: Bound {
            proxy,
            admin: admin_addr,
            upstreams: bound_upstreams,
            databases: bound_databases,
            sockets: bound_sockets,
        },
        stop,
        tasks,
        shared,
        audit_thread,
    })
}

impl Running {
    /// Where it listens.
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// The shared state (for tests and the demo).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, drains in-flight requests and lets open PostgreSQL transactions finish
    /// (up to the configured grace), flushes the audit queue and returns.
    pub async fn shutdown(self) {
        // PostgreSQL sessions drain alongside HTTP connections, within the same grace.
        let deadline =
            std::time::Instant::now() + self.shared.shutdown_grace + Duration::from_secs(1);
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // PostgreSQL sessions end once idle (an open transaction may finish) or at the grace.
        while self.shared.pg.open_sessions() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // What is still running then (a login that stalls, a database that stopped answering)
        // is cut off, so that shutdown never waits past its deadline.
        self.shared.pg.abort_all();
        // And connections still on the cores past the grace are dropped with them, so that none
        // keeps the audit writer (which ends with its last handle) waiting.
        self.shared.cores.stop();
        // Dropping the last handle of the audit writer lets its thread write what is queued and end.
        drop(self.shared);
        let _ = tokio::task::spawn_blocking(move || self.audit_thread.join()).await;
    }
}

/// The connection settings every listener uses: a client that opens a connection and never
/// finishes its request headers is cut off, so idle sockets cannot exhaust the connection limit.
pub(crate) fn server_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    b.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    b
}

/// Serves one HTTP listener until `stop`, hands the socket back through `closed` (a reload may
/// reuse it), then lets in-flight connections drain for up to `grace`.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    own: Option<String>,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    closed: tokio::sync::oneshot::Sender<listeners::Socket>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = crate::server_builder();
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = Arc::clone(&sem).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Out of this runtime, to be registered with the core the connection runs on.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let conn_shared = Arc::clone(&shared);
        let own = own.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let connection = async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register a connection");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| {
                http_door::handle(Arc::clone(&conn_shared), own.clone(), req)
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop(permit);
        };
        drop(shared.cores.spawn(connection));
    }
    let _ = closed.send(listeners::Socket::Tcp(listener));
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ended with requests still in flight");
    }
}

async fn sweep_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => shared.decider.sweep_expired().await,
        }
    }
}

fn mtimes(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Reloads on SIGHUP or when a watched file changes; an invalid new version is rejected and
/// logged, and the last good one keeps serving.
async fn reload_loop(
    config_path: PathBuf,
    shared: Arc<Shared>,
    authority: Arc<Authority>,
    mut doors: listeners::Listeners,
    mut stop: watch::Receiver<bool>,
    #[cfg(unix)] mut hup: Option<tokio::signal::unix::Signal>,
) {
    let mut seen = {
        let rt = shared.runtime.load();
        (rt.watched.clone(), mtimes(&rt.watched))
    };
    // The catalog lives in the store too: a change there (`airlock resource add`) reloads.
    let mut epoch = authority.store().change_marker().ok();
    loop {
        #[cfg(unix)]
        let signal = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let signal = std::future::pending::<()>();
        let why = tokio::select! {
            _ = stop.changed() => {
                doors.stop_all().await;
                return;
            }
            _ = signal => "SIGHUP",
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let now_epoch = authority.store().change_marker().ok();
                if mtimes(&seen.0) != seen.1 {
                    "file change"
                } else if now_epoch != epoch {
                    epoch = now_epoch;
                    "store change"
                } else {
                    continue;
                }
            }
        };
        let path = config_path.clone();
        let auth = Arc::clone(&authority);
        // A stop while the new version loads is not kept waiting for it.
        let loaded = tokio::select! {
            _ = stop.changed() => {
                doors.stop_all().await;
                return;
            }
            loaded = tokio::task::spawn_blocking(move || Runtime::load(&path, &auth)) => loaded,
        };
        // New sockets first: a configuration whose listener cannot be bound is rejected, like
        // an invalid one, before anything of it is in force.
        let ready = match loaded {
            Ok(Ok(rt)) => match doors.prepare(&rt).await {
                Ok(plan) => Ok((rt, plan)),
                Err(e) => Err(e.to_string()),
            },
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "reload task failed");
                continue;
            }
        };
        let (rt, plan) = match ready {
            Ok(ready) => ready,
            Err(e) => {
                tracing::error!(trigger = why, error = %e, "new configuration rejected; still serving the last good one");
                seen.1 = mtimes(&seen.0);
                shared.metrics.reload(false);
                continue;
            }
        };
        tracing::info!(
            trigger = why,
            upstreams = rt.upstreams.len(),
            databases = rt.databases.len(),
            policies = rt.policy.policy_count(),
            "configuration reloaded"
        );
        seen = (rt.watched.clone(), mtimes(&rt.watched));
        if *stop.borrow() {
            // Stopping: open nothing new, and close what `prepare` bound.
            plan.discard();
            doors.stop_all().await;
            return;
        }
        shared.runtime.store(Arc::new(rt));
        if !plan.is_empty() {
            doors.apply(plan).await;
            tracing::info!(listeners = ?doors.doors(), "listeners now open");
        }
        shared.metrics.reload(true);
    }
}
