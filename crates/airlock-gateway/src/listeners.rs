//! The doors' listening sockets, kept in step with the configuration across reloads.
//!
//! A reload that adds a database or an upstream with its own `listen` opens that listener; one
//! that removes it, or moves it to another address, closes the old one. An HTTP listener that
//! closes drains its connections (up to the shutdown grace); the sessions of a removed database
//! end at their next message (the door checks its database against every new runtime). New
//! addresses are bound before the new configuration is put in force, so a reload whose address
//! cannot be bound is rejected as a whole and the last good configuration (and its listeners)
//! keeps serving. A socket whose address stays (another door takes it, or only the session
//! limit changed) is handed from the old accept loop to the new one, never closed and rebound.
//! Addresses are compared as written: `localhost:6432` and `127.0.0.1:6432` are different.

use crate::runtime::Runtime;
use crate::{bind, GatewayError, Shared};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

/// What a listener serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Door {
    /// The shared HTTP listener (path-prefix upstreams).
    Proxy,
    /// An upstream's dedicated HTTP listener.
    Upstream(String),
    /// A PostgreSQL database.
    Database(String),
}

impl std::fmt::Display for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Door::Proxy => f.write_str("the shared proxy listener"),
            Door::Upstream(n) => write!(f, "upstream `{n}`"),
            Door::Database(n) => write!(f, "database `{n}`"),
        }
    }
}

/// How a door listens: the configured address, and for a database its session limit (a change
/// of either reopens the listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    addr: String,
    max_sessions: usize,
}

/// The prefix of a database door's `listen` that names a unix socket.
const UNIX: &str = "unix:";

/// A bound listener, not serving yet.
pub(crate) enum Socket {
    /// An HTTP door's, or a database door's on TCP.
    Tcp(TcpListener),
    /// A database door's unix socket: the listener, its path, and the file it made there
    /// (device, inode), so that only that file is ever removed.
    Unix(tokio::net::UnixListener, PathBuf, (u64, u64)),
}

impl Socket {
    /// Where it listens, as the CLI reports it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Socket::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Socket::Unix(_, p, _) => format!("{UNIX}{}", p.display()),
        }
    }
}

fn bind_error(addr: &str, message: impl Into<String>, hint: impl Into<String>) -> GatewayError {
    GatewayError::Bind {
        addr: addr.to_string(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// Why a TCP address could not be bound, with the hint that fits the cause: only a busy
/// address is blamed on another process.
pub(crate) fn tcp_bind_error(addr: &str, e: &std::io::Error) -> GatewayError {
    use std::io::ErrorKind as K;
    let hint = match e.kind() {
        K::AddrInUse => "is another process using it? Stop it, or choose another port",
        K::PermissionDenied => {
            "ports below 1024 need privileges (CAP_NET_BIND_SERVICE); choose a port above 1023"
        }
        K::AddrNotAvailable => {
            "no network interface of this machine has that address; use 127.0.0.1, 0.0.0.0 or one of its own addresses"
        }
        // Unparsable addresses and host names that do not resolve.
        _ => "write it as HOST:PORT with an IP address or a host name this machine resolves, e.g. 127.0.0.1:6432",
    };
    bind_error(addr, e.to_string(), hint)
}

/// Why a unix socket could not be made at `path`, with the hint that fits the cause.
fn unix_bind_error(addr: &str, path: &Path, e: &std::io::Error) -> GatewayError {
    use std::io::ErrorKind as K;
    use std::os::unix::fs::FileTypeExt;
    let dir = path
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let hint = match e.kind() {
        K::NotFound => format!(
            "directory `{dir}` does not exist; create it (writable by the gateway's user), or choose a path in an existing directory"
        ),
        K::PermissionDenied => format!(
            "the gateway's user may not create files in `{dir}`; give it write access there, or choose another directory"
        ),
        K::NotADirectory => {
            "a component of that path is a file, not a directory; choose another path".to_string()
        }
        K::ReadOnlyFilesystem => {
            "that file system is read-only; choose a directory on a writable one".to_string()
        }
        K::InvalidInput => {
            "unix socket paths are limited to about 100 bytes; choose a shorter path".to_string()
        }
        // The door's own checks say what they found in the message; the hint says what to do.
        K::AddrInUse
            if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_socket()) =>
        {
            "move that file away or choose another path; Airlock only replaces a socket file nobody listens on".to_string()
        }
        K::AddrInUse if e.raw_os_error().is_some() => {
            "is another process using it? Stop it, or choose another path".to_string()
        }
        K::AddrInUse => "stop that process, or choose another path".to_string(),
        _ => format!(
            "check that `{dir}` exists and that the gateway's user may create files in it"
        ),
    };
    bind_error(addr, e.to_string(), hint)
}

/// The unix socket path `spec` asks for `door`, if any; refuses what no door can serve.
fn unix_path(door: &Door, spec: &Spec) -> Result<Option<PathBuf>, GatewayError> {
    let Some(path) = spec.addr.strip_prefix(UNIX) else {
        return Ok(None);
    };
    if !matches!(door, Door::Database(_)) {
        return Err(bind_error(
            &spec.addr,
            "unix sockets are offered for database doors only",
            "give this door a HOST:PORT address, e.g. 127.0.0.1:8080",
        ));
    }
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(bind_error(
            &spec.addr,
            "the socket path is relative",
            "give its absolute path, e.g. `unix:/run/airlock/.s.PGSQL.6432`",
        ));
    }
    Ok(Some(path))
}

/// Binds what `spec` asks for `door`: TCP, or (database doors only) `unix:/path`.
pub(crate) async fn open(door: &Door, spec: &Spec) -> Result<Socket, GatewayError> {
    match unix_path(door, spec)? {
        None => Ok(Socket::Tcp(bind(&spec.addr).await?)),
        Some(path) => {
            let (l, id) = crate::pg_door::bind_unix(&path)
                .await
                .map_err(|e| unix_bind_error(&spec.addr, &path, &e))?;
            Ok(Socket::Unix(l, path, id))
        }
    }
}

/// Closes a socket no door serves any more, and removes a unix socket's file if it is still the
/// one this gateway made (a file put there since is left alone).
pub(crate) fn release(socket: Socket) {
    if let Socket::Unix(l, path, id) = socket {
        drop(l);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino()) == id
        }) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The listeners a runtime's configuration asks for.
pub(crate) fn wanted(rt: &Runtime) -> BTreeMap<Door, Spec> {
    let mut out = BTreeMap::new();
    if !rt.prefixes.is_empty() {
        out.insert(
            Door::Proxy,
            Spec {
                addr: rt.config.gateway.listen.clone(),
                max_sessions: 0,
            },
        );
    }
    for (name, up) in &rt.config.upstreams {
        if let Some(addr) = &up.listen {
            out.insert(
                Door::Upstream(name.clone()),
                Spec {
                    addr: addr.clone(),
                    max_sessions: 0,
                },
            );
        }
    }
    for (name, db) in &rt.config.databases {
        out.insert(
            Door::Database(name.clone()),
            Spec {
                addr: db.listen.clone(),
                max_sessions: db.max_sessions,
            },
        );
    }
    out
}

struct Open {
    spec: Spec,
    /// Tells this listener's accept loop to stop accepting.
    stop: watch::Sender<bool>,
    /// The socket, handed back once the accept loop stops accepting (an HTTP loop then drains).
    closed: oneshot::Receiver<Socket>,
    task: JoinHandle<()>,
}

/// Sockets bound for a configuration that is not in force yet.
pub(crate) struct Plan {
    /// Bound already: doors that are new or moved to an address nobody here holds.
    bound: Vec<(Door, Spec, Socket)>,
    /// To serve on the socket of a listener that closes (same address: another door takes
    /// it, or only the session limit changed).
    after_close: Vec<(Door, Spec)>,
    /// Open listeners to close.
    close: Vec<Door>,
}

impl Plan {
    /// True when the new configuration leaves every listener as it is.
    pub(crate) fn is_empty(&self) -> bool {
        self.bound.is_empty() && self.after_close.is_empty() && self.close.is_empty()
    }

    /// Gives up the plan: closes what it bound.
    pub(crate) fn discard(self) {
        for (_, _, socket) in self.bound {
            release(socket);
        }
    }
}

/// Every door's listener, and what each accept loop needs.
pub(crate) struct Listeners {
    shared: Arc<Shared>,
    /// The HTTP doors' connection limit (`gateway.max_connections`), shared by all of them.
    http_sem: Arc<Semaphore>,
    grace: Duration,
    /// The gateway's own stop: PostgreSQL sessions end on it, not when their listener closes.
    gateway_stop: watch::Receiver<bool>,
    open: BTreeMap<Door, Open>,
    /// HTTP accept loops closed by a reload, still draining their connections.
    draining: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// An empty set; [`Listeners::start`] opens the first listeners.
    pub(crate) fn new(
        shared: Arc<Shared>,
        http_sem: Arc<Semaphore>,
        grace: Duration,
        gateway_stop: watch::Receiver<bool>,
    ) -> Listeners {
        Listeners {
            shared,
            http_sem,
            grace,
            gateway_stop,
            open: BTreeMap::new(),
            draining: Vec::new(),
        }
    }

    /// Starts the accept loop of a bound listener.
    pub(crate) fn start(&mut self, door: Door, spec: Spec, socket: Socket) {
        let (stop, stop_rx) = watch::channel(false);
        let (closed_tx, closed) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let task = match (&door, socket) {
            (Door::Database(name), socket) => tokio::spawn(crate::pg_door::accept_loop(
                socket,
                shared,
                name.clone(),
                Arc::new(Semaphore::new(spec.max_sessions.max(1))),
                stop_rx,
                self.gateway_stop.clone(),
                closed_tx,
            )),
            (http, Socket::Tcp(listener)) => tokio::spawn(crate::accept_loop(
                listener,
                shared,
                match http {
                    Door::Upstream(name) => Some(name.clone()),
                    _ => None,
                },
                Arc::clone(&self.http_sem),
                stop_rx,
                self.grace,
                closed_tx,
            )),
            // `open` and `prepare` give unix sockets to database doors only.
            (_, socket @ Socket::Unix(..)) => {
                tracing::error!(door = %door, "an HTTP door cannot serve a unix socket");
                release(socket);
                return;
            }
        };
        self.open.insert(
            door,
            Open {
                spec,
                stop,
                closed,
                task,
            },
        );
    }

    /// Binds what `rt` needs that is not open yet. Fails, binding nothing, when an address
    /// cannot be bound: the caller then keeps the configuration in force.
    pub(crate) async fn prepare(&self, rt: &Runtime) -> Result<Plan, GatewayError> {
        let want = wanted(rt);
        let mut plan = Plan {
            bound: Vec::new(),
            after_close: Vec::new(),
            close: Vec::new(),
        };
        for (door, open) in &self.open {
            if want.get(door) != Some(&open.spec) {
                plan.close.push(door.clone());
            }
        }
        for (door, spec) in want {
            if self.open.get(&door).is_some_and(|o| o.spec == spec) {
                continue;
            }
            // An address a closing listener holds can only be bound once it has closed.
            let held = plan
                .close
                .iter()
                .any(|d| self.open.get(d).is_some_and(|o| o.spec.addr == spec.addr));
            let step = if held {
                unix_path(&door, &spec).map(|_| plan.after_close.push((door, spec)))
            } else {
                open(&door, &spec)
                    .await
                    .map(|l| plan.bound.push((door, spec, l)))
            };
            if let Err(e) = step {
                plan.discard();
                return Err(e);
            }
        }
        Ok(plan)
    }

    /// Puts a prepared plan in force (after the new runtime is): stops the accept loops it
    /// replaces, hands their sockets to the doors that keep those addresses, closes the rest,
    /// and starts the new accept loops.
    pub(crate) async fn apply(&mut self, plan: Plan) {
        let mut returned: BTreeMap<String, Socket> = BTreeMap::new();
        for door in plan.close {
            if let Some(open) = self.open.remove(&door) {
                let _ = open.stop.send(true);
                // An error means the loop already ended (it panicked), socket and all.
                if let Ok(socket) = open.closed.await {
                    returned.insert(open.spec.addr.clone(), socket);
                }
                // An HTTP loop drains its connections in the background.
                self.draining.push(open.task);
                tracing::info!(door = %door, addr = %open.spec.addr, "listener closed by a reload");
            }
        }
        for (door, spec, l) in plan.bound {
            announce(&door, &l);
            self.start(door, spec, l);
        }
        for (door, spec) in plan.after_close {
            let socket = match returned.remove(&spec.addr) {
                Some(s) => Ok(s),
                None => open(&door, &spec).await,
            };
            match socket {
                Ok(l) => {
                    announce(&door, &l);
                    self.start(door, spec, l);
                }
                Err(e) => {
                    tracing::error!(door = %door, error = %e, "listener could not be reopened after a reload; restart the gateway to serve it");
                }
            }
        }
        for (_, socket) in returned {
            release(socket);
        }
        self.draining.retain(|t| !t.is_finished());
    }

    /// Stops every accept loop and waits for them (HTTP loops drain within the grace period).
    pub(crate) async fn stop_all(&mut self) {
        for open in self.open.values() {
            let _ = open.stop.send(true);
        }
        for (_, open) in std::mem::take(&mut self.open) {
            if let Ok(socket) = open.closed.await {
                release(socket);
            }
            let _ = open.task.await;
        }
        for task in std::mem::take(&mut self.draining) {
            let _ = task.await;
        }
    }

    /// Where each open listener is, by door (for the log and tests).
    pub(crate) fn doors(&self) -> Vec<Door> {
        self.open.keys().cloned().collect()
    }
}

fn announce(door: &Door, l: &Socket) {
    tracing::info!(door = %door, addr = %l.describe(), "listening (opened by a reload)");
}
