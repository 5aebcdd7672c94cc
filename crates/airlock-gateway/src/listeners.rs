//! The doors' listening sockets, kept in step with the configuration across reloads.
//!
//! A reload that adds a database or an upstream with its own `listen` opens that listener; one
//! that removes it, or moves it to another address, closes the old one. Sessions and requests
//! already accepted are not cut: an HTTP listener that closes drains its connections (up to the
//! shutdown grace), and PostgreSQL sessions run on until their client leaves or the gateway
//! stops. New sockets are bound before the new configuration is put in force, so a reload whose
//! address cannot be bound is rejected as a whole and the last good configuration (and its
//! listeners) keeps serving.

use crate::pg_door::DoorSocket;
use crate::runtime::Runtime;
use crate::{bind, GatewayError, Shared};
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// A database door's unix socket.
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Socket {
    /// Where it listens, as the CLI reports it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Socket::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Socket::Unix(_, p) => format!("{UNIX}{}", p.display()),
        }
    }
}

/// Binds what `spec` asks for `door`: TCP, or (database doors only) `unix:/path`.
pub(crate) async fn open(door: &Door, spec: &Spec) -> Result<Socket, GatewayError> {
    match spec.addr.strip_prefix(UNIX) {
        None => Ok(Socket::Tcp(bind(&spec.addr).await?)),
        Some(path) => {
            let refuse = |message: String| GatewayError::Bind {
                addr: spec.addr.clone(),
                message,
            };
            if !matches!(door, Door::Database(_)) {
                return Err(refuse(
                    "unix sockets are offered for database doors only".into(),
                ));
            }
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(refuse("give the socket's absolute path".into()));
            }
            let l = crate::pg_door::bind_unix(&path).map_err(|e| refuse(e.to_string()))?;
            Ok(Socket::Unix(l, path))
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
    /// Resolves once the accept loop has let go of its socket (an HTTP loop then drains).
    closed: oneshot::Receiver<()>,
    task: JoinHandle<()>,
}

/// Sockets bound for a configuration that is not in force yet.
pub(crate) struct Plan {
    /// Bound already: doors that are new or moved to an address nobody here holds.
    bound: Vec<(Door, Spec, Socket)>,
    /// To bind once the listeners they replace have closed (same address, or a session limit
    /// change).
    after_close: Vec<(Door, Spec)>,
    /// Open listeners to close.
    close: Vec<Door>,
}

impl Plan {
    /// True when the new configuration leaves every listener as it is.
    pub(crate) fn is_empty(&self) -> bool {
        self.bound.is_empty() && self.after_close.is_empty() && self.close.is_empty()
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
                match socket {
                    Socket::Tcp(l) => DoorSocket::Tcp(l),
                    Socket::Unix(l, path) => DoorSocket::Unix(l, path),
                },
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
            // `open` binds unix sockets for database doors only.
            (_, Socket::Unix(..)) => {
                tracing::error!(door = %door, "an HTTP door cannot serve a unix socket");
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
            if held {
                plan.after_close.push((door, spec));
            } else {
                let l = open(&door, &spec).await?;
                plan.bound.push((door, spec, l));
            }
        }
        Ok(plan)
    }

    /// Puts a prepared plan in force (after the new runtime is): closes what it replaces, then
    /// starts the new accept loops. A listener that still cannot be bound is reported, not fatal.
    pub(crate) async fn apply(&mut self, plan: Plan) {
        for door in plan.close {
            if let Some(open) = self.open.remove(&door) {
                let _ = open.stop.send(true);
                // The accept loop owns the socket: wait until it has let go of the address (an
                // error means the loop already ended, socket and all). An HTTP loop then drains
                // its connections in the background.
                let _ = open.closed.await;
                self.draining.push(open.task);
                tracing::info!(door = %door, addr = %open.spec.addr, "listener closed by a reload");
            }
        }
        for (door, spec, l) in plan.bound {
            announce(&door, &l);
            self.start(door, spec, l);
        }
        for (door, spec) in plan.after_close {
            match open(&door, &spec).await {
                Ok(l) => {
                    announce(&door, &l);
                    self.start(door, spec, l);
                }
                Err(e) => {
                    tracing::error!(door = %door, error = %e, "listener could not be reopened after a reload; restart the gateway to serve it");
                }
            }
        }
    }

    /// Stops every accept loop and waits for them (HTTP loops drain within the grace period).
    pub(crate) async fn stop_all(&mut self) {
        for open in self.open.values() {
            let _ = open.stop.send(true);
        }
        for (_, open) in std::mem::take(&mut self.open) {
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
