//! The PostgreSQL door: agents, `psql` and drivers connect here instead of to the database.
//!
//! ```text
//! client --(startup, token as password)--> door --verify--> decide "connect" --> log in upstream
//! client --Query/Parse/Bind--> classify (pg_query) --> decide --> forward | refuse in place
//! server --everything--> relayed untouched, except a refusal's error, swapped for Airlock's
//! ```
//!
//! Decisions happen where SQL runs: a simple `Query`, and a `Bind` (which makes a prepared
//! statement executable; the statement keeps the class it was parsed with). A refused message is
//! replaced by a statement that fails on the server with a marker, and the server's error for
//! it is swapped for Airlock's ErrorResponse (SQLSTATE 42501). The server itself therefore keeps
//! the protocol state exactly as for any failed statement: a transaction block is aborted, the
//! rest of an extended-protocol batch is skipped until Sync, ReadyForQuery carries the right
//! status, and answers stay in order however deeply the client pipelines.

mod track;

use crate::audit_writer::Pending;
use crate::decision::{DoorRequest, Verdict};
use crate::listeners::Socket;
use crate::runtime::DatabaseRt;
use crate::Shared;
use airlock_audit::AuditEvent;
use airlock_authority::Claims;
use airlock_classify::{Classification, Operation};
use airlock_core::{OpClass, Outcome};
use airlock_pgwire::auth::{Login, Step};
use airlock_pgwire::backend::{self, Backend, Report};
use airlock_pgwire::frame::{startup_len, Chunk, Splitter};
use airlock_pgwire::frontend::{self, Frontend, Startup};
use airlock_sql::SqlClassification;
use parking_lot::Mutex;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use track::{Prepared, Tracker};

/// Largest message the door holds to read (a query, a Parse, a Bind with its parameters);
/// anything bigger of those types is refused. Relayed messages (COPY data, rows) have no limit.
const MAX_INSPECTED: usize = 8 << 20;
/// Most prepared statements remembered per session.
const MAX_STATEMENTS: usize = 10_000;
/// How long a client has to finish its startup and login.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Startup parameters passed on to the database; anything else is refused, because settings
/// such as `options`, `role` or `search_path` change how later statements are interpreted.
const PASSED_PARAMS: &[&str] = &[
    "application_name",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
    "IntervalStyle",
];

/// State the door shares across sessions: the cancel keys it handed out.
#[derive(Default)]
pub struct PgShared {
    cancels: Mutex<HashMap<(i32, i32), CancelTarget>>,
    sessions: AtomicU64,
    /// Every session task, so that shutdown can end those still running at its deadline
    /// (stuck logging in, or behind a database that stopped answering).
    live: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
}

/// Counts a session task while it exists, however it ends (aborted included).
struct Live {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.pg.live.lock().remove(&self.id);
        self.shared.pg.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PgShared {
    /// Sessions open now (logging in included).
    pub fn open_sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Ends every session task still running (shutdown, past its grace).
    pub fn abort_all(&self) {
        // Outside the lock: an ending task takes it to unregister itself.
        let handles: Vec<_> = self.live.lock().values().cloned().collect();
        for h in handles {
            h.abort();
        }
    }
}

impl std::fmt::Debug for PgShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgShared")
    }
}

/// Where a cancel request for one client-visible key goes.
#[derive(Clone)]
struct CancelTarget {
    db: Arc<DatabaseRt>,
    pid: i32,
    key: i32,
}

/// Who is on the other end of a session.
#[derive(Debug, Clone, Copy)]
enum Peer {
    Tcp(SocketAddr),
    /// A unix socket: another process on this machine, allowed in by the socket's file mode.
    Unix,
}

impl Peer {
    /// Whether the peer is on this machine, where a token can travel without TLS.
    fn local(&self) -> bool {
        match self {
            Peer::Tcp(a) => loopback(a),
            Peer::Unix => true,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => write!(f, "{a}"),
            Peer::Unix => f.write_str("unix socket"),
        }
    }
}

/// Accepts sessions for database `name` until `stop`, then hands its socket back through
/// `closed` (a reload may reuse it). Sessions end with the gateway (`gateway_stop`) or when a
/// reload removes or reconfigures their database, not with their listener.
pub(crate) async fn accept_loop(
    listener: Socket,
    shared: Arc<Shared>,
    name: String,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    gateway_stop: watch::Receiver<bool>,
    closed: tokio::sync::oneshot::Sender<Socket>,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = Arc::clone(&sem).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = accept(&listener) => a,
        };
        let (stream, peer) = match accepted.and_then(|(s, p)| Ok((s.detach()?, p))) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let name = name.clone();
        let stop = gateway_stop.clone();
        // Counted from the accept, so that shutdown also waits for sessions still logging in.
        shared.pg.sessions.fetch_add(1, Ordering::Relaxed);
        let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            shared: Arc::clone(&shared),
            id,
        };
        // Registered under the lock the task's end also takes, so it cannot end unregistered.
        let registry = Arc::clone(&shared);
        let mut tasks = registry.pg.live.lock();
        let task = registry.cores.spawn(async move {
            let _live = live;
            // Registered with the runtime the session runs on, so its sockets are polled there.
            let result = match stream {
                Detached::Tcp(s) => match TcpStream::from_std(s) {
                    Ok(s) => session(shared, &name, s, peer, stop).await,
                    Err(e) => Err(End::Io(e)),
                },
                Detached::Unix(s) => match tokio::net::UnixStream::from_std(s) {
                    Ok(s) => session(shared, &name, s, peer, stop).await,
                    Err(e) => Err(End::Io(e)),
                },
            };
            if let Err(e) = result {
                tracing::debug!(database = %name, %peer, error = %e, "session ended");
            }
            drop(permit);
        });
        tasks.insert(id, task.abort_handle());
        drop(tasks);
    }
    // Back to the listener set, which reuses it (a reload that keeps the address) or closes it.
    if let Err(socket) = closed.send(listener) {
        crate::listeners::release(socket);
    }
}

enum Accepted {
    Tcp(TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Accepted {
    /// The socket, out of the accepting runtime, to be registered with a session core.
    fn detach(self) -> std::io::Result<Detached> {
        Ok(match self {
            Accepted::Tcp(s) => Detached::Tcp(s.into_std()?),
            Accepted::Unix(s) => Detached::Unix(s.into_std()?),
        })
    }
}

/// An accepted socket between runtimes (non-blocking, registered with none).
enum Detached {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

async fn accept(listener: &Socket) -> std::io::Result<(Accepted, Peer)> {
    match listener {
        Socket::Tcp(l) => {
            let (s, a) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Accepted::Tcp(s), Peer::Tcp(a)))
        }
        Socket::Unix(l, _, _) => {
            let (s, _) = l.accept().await?;
            Ok((Accepted::Unix(s), Peer::Unix))
        }
    }
}

/// Binds a database door's unix socket at `path`; returns it with the file's identity (device,
/// inode). A socket file nothing answers on (left by a gateway that is gone) is replaced; a live
/// one, one that cannot be probed, or any other kind of file is not.
pub(crate) async fn bind_unix(
    path: &std::path::Path,
) -> std::io::Result<(tokio::net::UnixListener, (u64, u64))> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let taken = |why: &str| std::io::Error::new(std::io::ErrorKind::AddrInUse, why.to_string());
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(taken("a file that is not a socket is in the way"));
        }
        match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::UnixStream::connect(path),
        )
        .await
        {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)?;
            }
            Ok(Ok(_)) | Err(_) => return Err(taken("another process is listening on it")),
            Ok(Err(e)) => return Err(e),
        }
    }
    let l = tokio::net::UnixListener::bind(path)?;
    let m = std::fs::symlink_metadata(path)?;
    Ok((l, (m.dev(), m.ino())))
}

/// Why a session ended early (for the log; the client was already told).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Wire(#[from] airlock_pgwire::WireError),
    #[error("{0}")]
    Refused(String),
    /// A deferred audit record could not be committed: the session ends, so the server rolls
    /// back the open transaction the record was for.
    #[error("{0}")]
    AuditLost(String),
    /// A reload removed or reconfigured the database: its sessions end.
    #[error("{0}")]
    Gone(String),
    /// The gateway is stopping and the session is idle, or out of grace.
    #[error("the gateway is stopping")]
    Stopping,
}

/// A client or server byte stream, plain or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

async fn read_startup(c: &mut (impl AsyncRead + Unpin)) -> Result<Startup, End> {
    let mut head = [0u8; 4];
    c.read_exact(&mut head).await?;
    let len = startup_len(head)?;
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).await?;
    Ok(frontend::decode_startup(&body)?)
}

/// Reads one whole typed message of at most `max` bytes.
async fn read_message(c: &mut (impl AsyncRead + Unpin), max: usize) -> Result<Vec<u8>, End> {
    let mut head = [0u8; 5];
    c.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if !(4..=max).contains(&len) {
        return Err(airlock_pgwire::WireError::BadLength(len as u64).into());
    }
    let mut msg = Vec::with_capacity(len + 1);
    msg.extend_from_slice(&head);
    msg.resize(len + 1, 0);
    c.read_exact(&mut msg[5..]).await?;
    Ok(msg)
}

async fn fatal(c: &mut (impl AsyncWrite + Unpin), code: &str, message: &str, hint: &str) -> End {
    let bytes = backend::encode_error(&Report {
        severity: "FATAL",
        code,
        message,
        detail: None,
        hint: Some(hint),
    });
    let _ = c.write_all(&bytes).await;
    let _ = c.flush().await;
    End::Refused(message.to_string())
}

async fn session<S: Conn + 'static>(
    shared: Arc<Shared>,
    name: &str,
    mut stream: S,
    peer: Peer,
    stop: watch::Receiver<bool>,
) -> Result<(), End> {
    let db = {
        let rt = shared.runtime.load();
        match rt.databases.get(name) {
            Some(d) => Arc::clone(d),
            None => {
                return Err(fatal(
                    &mut stream,
                    "08004",
                    &format!("database `{name}` is no longer served by this Airlock"),
                    "ask the Airlock operator which listener serves it now",
                )
                .await)
            }
        }
    };
    // Negotiation: a client may ask for GSSAPI encryption, then TLS, then start; each at most once.
    let (mut asked_gss, mut asked_ssl) = (false, false);
    loop {
        let packet = tokio::time::timeout(LOGIN_TIMEOUT, read_startup(&mut stream))
            .await
            .map_err(|_| End::Refused("startup timed out".into()))??;
        match packet {
            Startup::Cancel { pid, key } => {
                cancel(&shared, pid, key).await;
                return Ok(());
            }
            Startup::GssEncRequest if !asked_gss && !asked_ssl => {
                asked_gss = true;
                stream.write_all(b"N").await?;
            }
            Startup::SslRequest if !asked_ssl => {
                asked_ssl = true;
                if let Some(acceptor) = &db.client_tls {
                    stream.write_all(b"S").await?;
                    let mut tls = tokio::time::timeout(LOGIN_TIMEOUT, acceptor.accept(stream))
                        .await
                        .map_err(|_| End::Refused("TLS handshake timed out".into()))??;
                    let next = tokio::time::timeout(LOGIN_TIMEOUT, read_startup(&mut tls))
                        .await
                        .map_err(|_| End::Refused("startup timed out".into()))??;
                    return after_tls(shared, db, tls, peer, true, next, stop).await;
                }
                stream.write_all(b"N").await?;
            }
            other => return after_tls(shared, db, stream, peer, false, other, stop).await,
        }
    }
}

/// Forwards a client's cancel request to the backend its key stands for.
async fn cancel(shared: &Shared, pid: i32, key: i32) {
    let target = shared.pg.cancels.lock().get(&(pid, key)).cloned();
    let Some(t) = target else {
        tracing::info!("cancel request with an unknown key ignored");
        return;
    };
    let packet = frontend::encode_cancel(t.pid, t.key);
    match connect_upstream(&t.db).await {
        Ok(mut up) => {
            let _ = up.write_all(&packet).await;
            let _ = up.flush().await;
            // The server closes the connection when it has read the request.
            let mut sink = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_secs(5), up.read(&mut sink)).await;
        }
        Err(e) => tracing::warn!(error = %e, "could not forward a cancel request"),
    }
}

/// A TCP (and, when configured, TLS) connection to the database, before startup.
async fn connect_upstream(db: &DatabaseRt) -> Result<Box<dyn Conn>, End> {
    let addr = format!("{}:{}", db.url.host, db.url.port);
    let mut tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addr))
        .await
        .map_err(|_| End::Refused(format!("connecting to {addr} timed out")))??;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &db.tls else {
        return Ok(Box::new(tcp));
    };
    tcp.write_all(&frontend::encode_ssl_request()).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        return Err(End::Refused(format!(
            "{addr} does not offer TLS, and `tls = \"require\"` is set"
        )));
    }
    let server = rustls::pki_types::ServerName::try_from(db.url.host.clone())
        .map_err(|e| End::Refused(format!("host `{}`: {e}", db.url.host)))?;
    Ok(Box::new(tls.connect(server, tcp).await?))
}

fn loopback(peer: &SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Why a startup was refused: SQLSTATE, message, hint.
type StartupRefusal = (&'static str, String, String);

/// Checks the client's startup parameters; returns those passed to the database.
fn check_params(
    db: &DatabaseRt,
    params: &[(String, String)],
) -> Result<Vec<(String, String)>, StartupRefusal> {
    let mut passed = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "user" => {}
            "database" => {
                if v != &db.url.database && v != &db.upstream.name {
                    return Err((
                        "3D000",
                        format!("this Airlock listener serves database `{}`, not `{v}`", db.upstream.name),
                        format!("connect with dbname={}", db.upstream.name),
                    ));
                }
            }
            "client_encoding" => {
                if !matches!(
                    v.to_ascii_uppercase().replace(['-', '_'], "").as_str(),
                    "UTF8" | "UNICODE"
                ) {
                    return Err((
                        "22023",
                        format!("client_encoding `{v}` is refused: Airlock reads statements as UTF-8"),
                        "set client_encoding=UTF8 (PGCLIENTENCODING=UTF8)".into(),
                    ));
                }
            }
            k if PASSED_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(k)) => {
                passed.push((k.to_string(), v.clone()))
            }
            other => {
                return Err((
                    "42501",
                    format!("startup parameter `{other}` is refused: it could change how the database interprets statements or who runs them"),
                    "remove it from the connection string (options, role, search_path and replication are not passed through Airlock)".into(),
                ))
            }
        }
    }
    Ok(passed)
}

/// The operation a login is decided as: `connect` on the database (public so that blast radius
/// evaluates exactly what the door decides).
pub fn connect_operation() -> Operation {
    Operation {
        action: "connect".into(),
        class: OpClass::Read,
        resource_kind: "database".into(),
        resource_id: None,
    }
}

/// The login decision: a `connect` operation on the database, decided and audited like any other.
fn connect_classification() -> Classification {
    Classification {
        operations: vec![connect_operation()],
        effective_method: "CONNECT".into(),
        normalized_path: String::new(),
        notes: Vec::new(),
        persisted_query_miss: false,
        path_refused: false,
    }
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// The door's lines of the Prometheus exposition: open sessions and, per database, how often
/// the statement cache spared a parse.
pub fn render_metrics(shared: &Shared) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP airlock_pg_sessions Open PostgreSQL door sessions."
    );
    let _ = writeln!(s, "# TYPE airlock_pg_sessions gauge");
    let _ = writeln!(
        s,
        "airlock_pg_sessions {}",
        shared.pg.sessions.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        s,
        "# HELP airlock_sql_classifications_total Statement texts classified, by cache result."
    );
    let _ = writeln!(s, "# TYPE airlock_sql_classifications_total counter");
    let rt = shared.runtime.load();
    let mut names: Vec<&String> = rt.databases.keys().collect();
    names.sort();
    for name in &names {
        let stats = rt.databases[*name].classifier.stats();
        for (result, n) in [("hit", stats.hits), ("miss", stats.misses)] {
            let _ = writeln!(
                s,
                "airlock_sql_classifications_total{{database=\"{name}\",cache=\"{result}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP airlock_sql_normalized_hits_total Cache hits answered by a text differing only in literals (part of cache=\"hit\")."
    );
    let _ = writeln!(s, "# TYPE airlock_sql_normalized_hits_total counter");
    for name in &names {
        let n = rt.databases[*name].classifier.stats().normalized_hits;
        let _ = writeln!(
            s,
            "airlock_sql_normalized_hits_total{{database=\"{name}\"}} {n}"
        );
    }
    s
}

async fn after_tls<C: Conn>(
    shared: Arc<Shared>,
    db: Arc<DatabaseRt>,
    mut client: C,
    peer: Peer,
    tls: bool,
    startup: Startup,
    stop: watch::Receiver<bool>,
) -> Result<(), End> {
    let Startup::Params(params) = startup else {
        return Err(fatal(
            &mut client,
            "08P01",
            "expected a startup message",
            "connect with a PostgreSQL client (protocol 3.0)",
        )
        .await);
    };
    if !tls && !peer.local() {
        return Err(fatal(
            &mut client,
            "28000",
            "Airlock requires TLS for connections that are not from this machine: the password is an Airlock token",
            "connect with sslmode=require (and tell the operator to set tls_cert/tls_key if TLS is not offered)",
        )
        .await);
    }
    let passed = match check_params(&db, &params) {
        Ok(p) => p,
        Err((code, message, hint)) => return Err(fatal(&mut client, code, &message, &hint).await),
    };

    // Login: the password is the Airlock token.
    client.write_all(&backend::encode_auth(3)).await?;
    client.flush().await?;
    let msg = tokio::time::timeout(LOGIN_TIMEOUT, read_message(&mut client, 8192))
        .await
        .map_err(|_| End::Refused("login timed out".into()))??;
    let token = match frontend::decode(&msg)? {
        Frontend::Password(p) => {
            let p = p.strip_suffix(&[0]).unwrap_or(p);
            String::from_utf8_lossy(p).into_owned()
        }
        _ => {
            return Err(fatal(
                &mut client,
                "08P01",
                "expected a password message",
                "use your Airlock token as the password",
            )
            .await)
        }
    };
    let session_id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    // One runtime from here on: the login is decided, and the database logged in to, under the
    // version in force now, which may be newer than the one the connection was accepted under.
    let rt = shared.runtime.load_full();
    let Some(db) = rt.databases.get(&db.upstream.name).cloned() else {
        return Err(fatal(
            &mut client,
            "08004",
            &format!(
                "database `{}` is no longer served by this Airlock",
                db.upstream.name
            ),
            "ask the Airlock operator which listener serves it now",
        )
        .await);
    };
    let cls = connect_classification();
    let verdict = shared
        .decider
        .decide(
            &rt,
            DoorRequest {
                door: "postgres",
                upstream: &db.upstream,
                token: Some(&token),
                classification: &cls,
                details: BTreeMap::from([
                    ("peer".to_string(), peer.to_string()),
                    ("session".to_string(), session_id.to_string()),
                ]),
                fingerprint: &|| format!("connect:{}", db.upstream.name),
                summary: &|| format!("connect to {}", db.upstream.name),
            },
        )
        .await;
    if verdict.outcome != Outcome::Allow {
        let (code, hint) = if verdict.code.starts_with("token_") || verdict.unauthenticated {
            (
                "28P01",
                "use a valid Airlock token as the password; ask your owner for a new one"
                    .to_string(),
            )
        } else {
            ("42501", verdict.hint.clone())
        };
        let message = format!(
            "Airlock refused the connection: {} ({})",
            verdict.reason, verdict.code
        );
        return Err(fatal(&mut client, code, &message, &hint).await);
    }
    let Ok(claims) = shared
        .decider
        .authority()
        .verify(&token, shared.decider.now())
    else {
        return Err(fatal(
            &mut client,
            "28P01",
            "the token stopped being valid during login",
            "ask your owner for a new Airlock token",
        )
        .await);
    };

    // Log in to the database with the sealed credential.
    let mut upstream = match login_upstream(&db, &passed).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(database = %db.upstream.name, error = %e, "database login failed");
            return Err(fatal(
                &mut client,
                "08006",
                &format!("Airlock could not open a session on database `{}`", db.upstream.name),
                "retry shortly; if it persists, tell the Airlock operator (the gateway log says why)",
            )
            .await);
        }
    };

    // Hand the client its own cancel key; the real one never leaves the gateway.
    let mut greeting = backend::encode_auth(0);
    for (k, v) in &upstream.params {
        greeting.extend(backend::encode_parameter(k, v));
    }
    let (fake_pid, fake_key) = loop {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(|e| End::Refused(e.to_string()))?;
        let pid = i32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]);
        let key = i32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let mut map = shared.pg.cancels.lock();
        if let std::collections::hash_map::Entry::Vacant(e) = map.entry((pid, key)) {
            e.insert(CancelTarget {
                db: Arc::clone(&db),
                pid: upstream.pid,
                key: upstream.key,
            });
            break (pid, key);
        }
    };
    greeting.extend(backend::encode_key(fake_pid, fake_key));
    greeting.extend(backend::encode_ready(b'I'));
    let result = async {
        client.write_all(&greeting).await?;
        client.flush().await?;
        relay(
            &shared,
            (&db, &rt),
            client,
            &mut upstream,
            claims,
            token,
            session_id,
            stop,
        )
        .await
    }
    .await;
    shared.pg.cancels.lock().remove(&(fake_pid, fake_key));
    result
}

/// A logged-in database session.
struct Upstream {
    conn: Box<dyn Conn>,
    params: Vec<(String, String)>,
    pid: i32,
    key: i32,
}

/// Settings the classifier depends on; the session ends if the server reports them changed.
fn pinned_ok(name: &str, value: &str) -> bool {
    match name {
        "client_encoding" => value.eq_ignore_ascii_case("UTF8"),
        "standard_conforming_strings" => value == "on",
        _ => true,
    }
}

async fn login_upstream(db: &DatabaseRt, passed: &[(String, String)]) -> Result<Upstream, End> {
    let mut conn = connect_upstream(db).await?;
    let mut params: Vec<(&str, &str)> = vec![
        ("user", &db.url.user),
        ("database", &db.url.database),
        ("client_encoding", "UTF8"),
    ];
    params.extend(passed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    conn.write_all(&frontend::encode_startup(&params)).await?;
    conn.flush().await?;
    let mut login = Login::new(&db.url.user, db.password.expose());
    let mut server_params = Vec::new();
    let (mut pid, mut key) = (0, 0);
    loop {
        let msg = tokio::time::timeout(LOGIN_TIMEOUT, read_message(&mut conn, 1 << 16))
            .await
            .map_err(|_| End::Refused("the database did not finish the login in time".into()))??;
        match backend::decode(&msg)? {
            Backend::Auth(req) => match login.step(req)? {
                Step::Send(bytes) => {
                    conn.write_all(&bytes).await?;
                    conn.flush().await?;
                }
                Step::Wait | Step::Done => {}
            },
            Backend::ParameterStatus { name, value } => {
                if !pinned_ok(name, value) {
                    return Err(End::Refused(format!(
                        "the database reports {name} = {value}; Airlock's parser needs client_encoding UTF8 and standard_conforming_strings on"
                    )));
                }
                server_params.push((name.to_string(), value.to_string()));
            }
            Backend::BackendKeyData { pid: p, key: k } => (pid, key) = (p, k),
            Backend::ReadyForQuery(_) => break,
            Backend::Error(fields) => {
                return Err(End::Refused(format!(
                    "the database refused the login: {} ({})",
                    backend::field(&fields, b'M').unwrap_or("no message"),
                    backend::field(&fields, b'C').unwrap_or("?")
                )))
            }
            Backend::Other(_) => {}
        }
    }
    if !server_params
        .iter()
        .any(|(k, v)| k == "standard_conforming_strings" && v == "on")
    {
        return Err(End::Refused(
            "the database did not confirm standard_conforming_strings = on".into(),
        ));
    }
    Ok(Upstream {
        conn,
        params: server_params,
        pid,
        key,
    })
}

#[allow(clippy::too_many_arguments)]
async fn relay<C: Conn>(
    shared: &Arc<Shared>,
    (db, rt): (&Arc<DatabaseRt>, &Arc<crate::Runtime>),
    client: C,
    upstream: &mut Upstream,
    claims: Arc<Claims>,
    token: String,
    session_id: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), End> {
    let (mut client_r, client_w) = tokio::io::split(client);
    let (mut server_r, mut server_w) = tokio::io::split(&mut upstream.conn);
    let track = Arc::new(Mutex::new(Tracker::default()));
    // Told after a ReadyForQuery reached the client: the session may have become idle.
    let answered = tokio::sync::Notify::new();
    let client_w = Arc::new(tokio::sync::Mutex::new(client_w));
    let mut session = Session {
        shared: Arc::clone(shared),
        db: Arc::clone(db),
        rt: Arc::clone(rt),
        claims,
        token,
        id: session_id,
        track: Arc::clone(&track),
        refusals: 0,
        pending: Vec::new(),
        nonce: {
            // Markers a client cannot predict, so it cannot make its own errors pass for refusals.
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b).map_err(|e| End::Refused(e.to_string()))?;
            hex::encode(b)
        },
    };
    let to_server = async {
        let mut buf = bytes::BytesMut::with_capacity(16 * 1024);
        let mut splitter = Splitter::new(MAX_INSPECTED);
        let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
        loop {
            let n = client_r.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok::<(), End>(());
            }
            let mut terminate = false;
            loop {
                match splitter.next(&buf, |t| {
                    matches!(
                        t,
                        b'Q' | b'P' | b'B' | b'E' | b'C' | b'D' | b'F' | b'S' | b'X'
                    )
                })? {
                    Chunk::NeedMore => break,
                    Chunk::Relay(n) => {
                        out.extend_from_slice(&buf[..n]);
                        let _ = buf.split_to(n);
                    }
                    Chunk::Discard(n) => {
                        let _ = buf.split_to(n);
                    }
                    Chunk::Oversize { tag, len } => {
                        let _ = buf.split_to(5);
                        session.follow_reload()?;
                        session.oversize(tag, len, &mut out).await;
                    }
                    Chunk::Message { len, .. } => {
                        let msg = buf.split_to(len);
                        terminate |= session.message(&msg, &mut out).await?;
                    }
                }
            }
            if !out.is_empty() {
                server_w.write_all(&out).await?;
                out.clear();
            }
            if terminate {
                return Ok(());
            }
        }
    };
    let to_client = async {
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        let mut splitter = Splitter::new(MAX_INSPECTED);
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            let n = server_r.read_buf(&mut buf).await?;
            if n == 0 {
                return Err::<(), End>(End::Refused("the database closed the session".into()));
            }
            loop {
                match splitter.next(&buf, |t| {
                    matches!(t, b'E' | b'S' | b'1' | b'3' | b'Z' | b'G' | b'W')
                })? {
                    Chunk::NeedMore => break,
                    Chunk::Relay(n) => {
                        out.extend_from_slice(&buf[..n]);
                        let _ = buf.split_to(n);
                    }
                    Chunk::Discard(n) => {
                        let _ = buf.split_to(n);
                    }
                    Chunk::Oversize { .. } => {
                        return Err(End::Refused(
                            "the database sent an oversized error or parameter".into(),
                        ));
                    }
                    Chunk::Message { tag, len } => {
                        let msg = buf.split_to(len);
                        match backend::decode(&msg)? {
                            Backend::ParameterStatus { name, value } if !pinned_ok(name, value) => {
                                let why = format!("the database reports {name} = {value}; Airlock ends the session because its parser depends on that setting");
                                out.extend(backend::encode_error(&Report {
                                    severity: "FATAL",
                                    code: "42501",
                                    message: &why,
                                    detail: None,
                                    hint: Some("reconnect; do not change client_encoding or standard_conforming_strings through Airlock"),
                                }));
                                let mut w = client_w.lock().await;
                                let _ = w.write_all(&out).await;
                                return Err(End::Refused(why));
                            }
                            Backend::Error(fields) if tag == b'E' => {
                                let mut t = track.lock();
                                t.error();
                                let swapped = match backend::field(&fields, b'M') {
                                    Some(m) if t.has_refusals() => t.swap(m),
                                    _ => None,
                                };
                                drop(t);
                                out.extend_from_slice(swapped.as_deref().unwrap_or(&msg));
                            }
                            Backend::ReadyForQuery(status) => {
                                track.lock().ready(status);
                                out.extend_from_slice(&msg);
                            }
                            // CopyInResponse, CopyBothResponse: Sync is ignored from here.
                            Backend::Other(b'G' | b'W') => {
                                track.lock().copy_in();
                                out.extend_from_slice(&msg);
                            }
                            Backend::Other(done @ (b'1' | b'3')) => {
                                let mut t = track.lock();
                                let confirmed = if done == b'1' {
                                    t.parse_complete()
                                } else {
                                    t.close_complete()
                                };
                                confirmed.map_err(|e| End::Refused(e.to_string()))?;
                                drop(t);
                                out.extend_from_slice(&msg);
                            }
                            _ => out.extend_from_slice(&msg),
                        }
                    }
                }
            }
            if !out.is_empty() {
                let mut w = client_w.lock().await;
                w.write_all(&out).await?;
                out.clear();
                // The session may have become idle (a ReadyForQuery, or the answers to a Flush).
                answered.notify_one();
            }
        }
    };
    let result = tokio::select! {
        r = to_server => r,
        r = to_client => r,
        _ = drained(&mut stop, &track, &answered, shared.shutdown_grace) => {
            Err(End::Stopping)
        }
    };
    let mut w = client_w.lock().await;
    let last_word = match &result {
        Err(End::Stopping) => Some(("57P01", "Airlock is shutting down", "reconnect in a moment")),
        Err(End::AuditLost(why)) => Some(("58030", why.as_str(), "your open transaction was rolled back; retry shortly, and tell the Airlock operator if it persists")),
        Err(End::Gone(why)) => Some(("08004", why.as_str(), "your open transaction was rolled back; ask the Airlock operator which listener serves this database now")),
        _ => None,
    };
    // A client that stopped reading must not hold the session (and shutdown) open.
    let goodbye = async {
        if let Some((code, why, hint)) = last_word {
            let _ = w
                .write_all(&backend::encode_error(&Report {
                    severity: "FATAL",
                    code,
                    message: why,
                    detail: None,
                    hint: Some(hint),
                }))
                .await;
        }
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
    match result {
        Err(End::Stopping) => Ok(()),
        other => other,
    }
}

/// Resolves once the gateway is stopping and the session is idle, or the grace is over: a
/// batch in flight or an open transaction block gets to finish (its statements are still
/// decided one by one), and the session ends as soon as it is idle.
async fn drained(
    stop: &mut watch::Receiver<bool>,
    track: &Mutex<Tracker>,
    answered: &tokio::sync::Notify,
    grace: Duration,
) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let idle = async {
        loop {
            let next = answered.notified();
            tokio::pin!(next);
            next.as_mut().enable();
            if track.lock().idle() {
                return;
            }
            next.await;
        }
    };
    let _ = tokio::time::timeout(grace, idle).await;
}

struct Session {
    shared: Arc<Shared>,
    db: Arc<DatabaseRt>,
    /// The runtime `db` belongs to; statements are decided under it.
    rt: Arc<crate::Runtime>,
    claims: Arc<Claims>,
    token: String,
    id: u64,
    track: Arc<Mutex<Tracker>>,
    refusals: u64,
    nonce: String,
    /// Records of writes forwarded inside a transaction block that are not committed yet;
    /// waited for before anything that could commit that transaction is forwarded.
    pending: Vec<Pending>,
}

/// Everything a decision needs about some SQL.
type Sql = Prepared;

impl Session {
    /// Follows reloads: every statement is decided under the runtime in force and the
    /// database's current settings (its environment above all). A reload that changed what an
    /// open session cannot follow (the server and login, or how statements are classified, which
    /// its prepared statements were decided by) or removed the database ends the session.
    fn follow_reload(&mut self) -> Result<(), End> {
        let guard = self.shared.runtime.load();
        if Arc::ptr_eq(&self.rt, &guard) {
            return Ok(());
        }
        let rt = arc_swap::Guard::into_inner(guard);
        let name = &self.db.upstream.name;
        match rt.databases.get(name) {
            Some(current) if current.session_basis == self.db.session_basis => {
                self.db = Arc::clone(current);
            }
            Some(_) => {
                return Err(End::Gone(format!(
                    "database `{name}` was reconfigured (its server, login or safe functions changed); this session must start again"
                )))
            }
            None => {
                return Err(End::Gone(format!(
                    "database `{name}` is no longer served by this Airlock"
                )))
            }
        }
        self.rt = rt;
        Ok(())
    }

    /// Handles one inspected client message; true when the client said goodbye.
    async fn message(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<bool, End> {
        self.follow_reload()?;
        match frontend::decode(msg)? {
            Frontend::Query(sql) => {
                let parsed = self.db.classifier.classify(sql);
                let info = Arc::new(self.describe(sql, &parsed, false));
                let in_block = self.track.lock().settled_in_block();
                let (verdict, deferred) = self.decide_for(&info, "query", in_block).await;
                if verdict.outcome == Outcome::Allow {
                    if !deferred {
                        self.settle().await?;
                    }
                    out.extend_from_slice(msg);
                    let mut t = self.track.lock();
                    for s in &parsed.statements {
                        if let Some((name, _)) = &s.prepared {
                            t.sql_prepared(name, Arc::clone(&info));
                        }
                    }
                } else {
                    self.refuse(&verdict, &info.tags, true, out);
                }
                self.track.lock().simple_sent();
            }
            Frontend::Parse { name, query } => {
                if self.track.lock().len() >= MAX_STATEMENTS {
                    let info = unclassifiable(&format!(
                        "more than {MAX_STATEMENTS} prepared statements in one session"
                    ));
                    let verdict = self.decide(&info, "parse").await;
                    self.refuse(&verdict, &info.tags, false, out);
                    return Ok(false);
                }
                let parsed = self.db.classifier.classify(query);
                let info = Arc::new(self.describe(query, &parsed, true));
                self.track.lock().parse_sent(name, info);
                out.extend_from_slice(msg);
            }
            Frontend::Bind { portal, statement } => {
                let (info, in_block) = {
                    let t = self.track.lock();
                    (t.lookup(statement), t.settled_in_block())
                };
                let info = info.unwrap_or_else(|| {
                    Arc::new(unclassifiable(&format!(
                        "prepared statement `{statement}` was not prepared through Airlock"
                    )))
                });
                // Only the unnamed portal: an Execute of it is known to run this Bind.
                let deferrable = in_block && portal.is_empty();
                let (verdict, deferred) = self.decide_for(&info, "bind", deferrable).await;
                if verdict.outcome == Outcome::Allow {
                    if !deferred {
                        self.settle().await?;
                    }
                    out.extend_from_slice(msg);
                } else {
                    self.refuse(&verdict, &info.tags, false, out);
                }
                self.track.lock().bind_sent(portal);
            }
            Frontend::Execute { portal } => {
                let fresh = self.track.lock().executes_fresh_bind(portal);
                if !fresh {
                    // It may run a COMMIT bound earlier: deferred records first.
                    self.settle().await?;
                }
                self.track.lock().execute_sent();
                out.extend_from_slice(msg);
            }
            Frontend::Close { kind, name } => {
                self.track.lock().close_sent((kind == b'S').then_some(name));
                out.extend_from_slice(msg);
            }
            Frontend::FunctionCall => {
                let info = unclassifiable(
                    "a fast-path function call runs code without SQL Airlock can read",
                );
                let verdict = self.decide(&info, "function_call").await;
                // Whatever the policy says, a call Airlock cannot read never runs.
                let verdict = if verdict.outcome == Outcome::Allow {
                    self.audit_forced_refusal(&info).await
                } else {
                    verdict
                };
                self.refuse(&verdict, &info.tags, true, out);
                self.track.lock().simple_sent();
            }
            Frontend::Terminate => {
                out.extend_from_slice(msg);
                return Ok(true);
            }
            Frontend::Other(b'S') => {
                self.track.lock().batch_sent();
                out.extend_from_slice(msg);
            }
            Frontend::Other(b'D') => {
                self.track.lock().extended_sent();
                out.extend_from_slice(msg);
            }
            Frontend::Password(_) | Frontend::Other(_) => out.extend_from_slice(msg),
        }
        Ok(false)
    }

    /// A Query, Parse or Bind too large to hold is refused whole.
    async fn oversize(&mut self, tag: u8, len: usize, out: &mut Vec<u8>) {
        let info = unclassifiable(&format!(
            "a `{}` message of {len} bytes is over the {MAX_INSPECTED} byte limit Airlock reads",
            tag as char
        ));
        let verdict = self.decide(&info, "oversize").await;
        let verdict = if verdict.outcome == Outcome::Allow {
            self.audit_forced_refusal(&info).await
        } else {
            verdict
        };
        let simple = tag == b'Q' || tag == b'F';
        self.refuse(&verdict, &info.tags, simple, out);
        if simple {
            self.track.lock().simple_sent();
        }
    }

    /// Turns a classification into what the decision path takes, resolving `EXECUTE name` from
    /// what the server may hold under that name.
    ///
    /// `held`: the statement is kept for a later Bind (a protocol Parse). An `EXECUTE name` in it
    /// then runs whatever `name` holds when it is bound, which can change after this lookup, so
    /// it is unclassifiable.
    fn describe(&self, sql: &str, parsed: &SqlClassification, held: bool) -> Sql {
        let mut operations = Vec::new();
        let mut tags = Vec::new();
        let mut notes = Vec::new();
        let mut transactional = !parsed.statements.is_empty();
        for s in &parsed.statements {
            // A function that writes (`nextval`, `setval`) acts outside the transaction: a
            // sequence moves for everyone at once and is never rolled back.
            let calls_writer = s
                .operations
                .iter()
                .any(|o| o.resource_kind == "function" && o.class >= OpClass::Write);
            transactional &= s.executes.is_none()
                && !calls_writer
                && matches!(
                    s.tag.as_str(),
                    "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE"
                );
            tags.push(s.tag.clone());
            notes.extend(s.notes.iter().cloned());
            if held && s.executes.is_some() {
                let why = "EXECUTE in a protocol Parse runs whatever the prepared statement it names holds when it is bound, which may change first: send EXECUTE as a simple query, or Bind the prepared statement itself";
                notes.push(format!("{why}: treated as destructive"));
                operations.push(Operation {
                    action: airlock_sql::UNCLASSIFIABLE.into(),
                    class: OpClass::Destructive,
                    resource_kind: String::new(),
                    resource_id: None,
                });
                continue;
            }
            match s
                .executes
                .as_deref()
                .and_then(|n| self.track.lock().lookup(n))
            {
                Some(p) => operations.extend(p.classification.operations.iter().cloned()),
                None => operations.extend(s.operations.iter().cloned()),
            }
        }
        let tags = tags.join(";");
        let resources: Vec<String> = operations
            .iter()
            .filter_map(|o| o.resource_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let summary = if resources.is_empty() {
            tags.clone()
        } else {
            format!("{tags} {}", resources.join(","))
        };
        Prepared {
            classification: Arc::new(Classification {
                operations,
                effective_method: "SQL".into(),
                normalized_path: String::new(),
                notes,
                persisted_query_miss: false,
                path_refused: false,
            }),
            digest: hex::encode(sha2::Sha256::digest(sql.as_bytes())),
            summary,
            tags,
            transactional,
        }
    }

    async fn decide(&self, info: &Sql, via: &str) -> Verdict {
        self.decide_with(info, via, false).await.0
    }

    /// Decides `info`; when `in_block` and it only changes rows, an allowed write's record is
    /// queued for the session's next [`Session::settle`] instead of committed now (the write
    /// cannot outlive its transaction, and nothing that could commit that transaction is
    /// forwarded before the settle). Returns whether it was deferred.
    async fn decide_for(&mut self, info: &Sql, via: &str, in_block: bool) -> (Verdict, bool) {
        let defer = in_block && info.transactional && self.db.audit_writes_at_commit;
        let (verdict, pending) = self.decide_with(info, via, defer).await;
        let deferred = pending.is_some();
        self.pending.extend(pending);
        (verdict, deferred)
    }

    /// Waits until every deferred record of this session is committed: called before
    /// forwarding anything that could commit the transaction they belong to.
    async fn settle(&mut self) -> Result<(), End> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.shared.decider.flush_audit();
        for p in self.pending.drain(..) {
            p.wait().await.map_err(|e| {
                End::AuditLost(format!(
                    "Airlock ended the session because a statement's audit record could not be written ({e})"
                ))
            })?;
        }
        Ok(())
    }

    async fn decide_with(&self, info: &Sql, via: &str, defer: bool) -> (Verdict, Option<Pending>) {
        let started = std::time::Instant::now();
        // The runtime `db` belongs to: one runtime for the whole decision.
        let rt = Arc::clone(&self.rt);
        let req = DoorRequest {
            door: "postgres",
            upstream: &self.db.upstream,
            token: Some(&self.token),
            classification: &info.classification,
            details: BTreeMap::from([
                ("statement".to_string(), info.tags.clone()),
                ("via".to_string(), via.to_string()),
                ("session".to_string(), self.id.to_string()),
            ]),
            // The exact text: an approval covers this statement, not one like it.
            fingerprint: &|| format!("sql:{}", info.digest),
            summary: &|| format!("SQL {}", info.summary),
        };
        let (verdict, pending) = if defer {
            self.shared.decider.decide_deferring_writes(&rt, req).await
        } else {
            (self.shared.decider.decide(&rt, req).await, None)
        };
        self.shared
            .metrics
            .decision(verdict.outcome, started.elapsed().as_micros() as u64);
        (verdict, pending)
    }

    /// Audits a refusal that no policy can lift, and returns its verdict.
    async fn audit_forced_refusal(&self, info: &Sql) -> Verdict {
        let reason = info
            .classification
            .notes
            .first()
            .cloned()
            .unwrap_or_else(|| "refused".into());
        let event = AuditEvent {
            time: self.shared.decider.now(),
            actor: self.claims.actor(),
            action: info.tags.clone(),
            resource: Some(self.db.upstream.name.clone()),
            environment: self.db.upstream.environment.as_ref().map(|e| e.to_string()),
            decision: Outcome::Deny,
            reason: reason.clone(),
            details: BTreeMap::from([
                ("door".to_string(), "postgres".to_string()),
                ("code".to_string(), "unreadable_operation".to_string()),
                ("session".to_string(), self.id.to_string()),
            ]),
        };
        let seq = self.shared.decider.audit_refusal(event).await;
        Verdict {
            outcome: Outcome::Deny,
            code: "unreadable_operation".into(),
            reason,
            hint: "send the operation as SQL Airlock can classify".into(),
            class: OpClass::Destructive,
            operations: Vec::new(),
            audit_seq: seq,
            unauthenticated: false,
            approval: None,
        }
    }

    /// Replaces a refused message with a stand-in that fails on the server, and queues Airlock's
    /// error to take the place of the server's.
    fn refuse(&mut self, v: &Verdict, what: &str, simple: bool, out: &mut Vec<u8>) {
        self.refusals += 1;
        let marker = format!("airlock-refusal-{}-{}", self.nonce, self.refusals);
        let mut message = format!("Airlock refused {what}: {} ({})", v.reason, v.code);
        if let Some((id, expires)) = &v.approval {
            message.push_str(&format!(
                "; approval {id} requested, valid until {}",
                airlock_core::fmt_time(*expires)
            ));
        }
        let detail = v.audit_seq.map(|s| format!("audit record {s}"));
        let error = backend::encode_error(&Report {
            severity: "ERROR",
            code: "42501",
            message: &message,
            detail: detail.as_deref(),
            hint: Some(&v.hint),
        });
        self.track.lock().refused(marker.clone(), error);
        let stand_in = format!("SELECT '{marker}'::int4");
        if simple {
            out.extend(frontend::encode_query(&stand_in));
        } else {
            out.extend(frontend::encode_parse("", &stand_in));
        }
    }
}

fn unclassifiable(why: &str) -> Sql {
    Prepared {
        classification: Arc::new(Classification {
            operations: vec![Operation {
                action: airlock_sql::UNCLASSIFIABLE.into(),
                class: OpClass::Destructive,
                resource_kind: String::new(),
                resource_id: None,
            }],
            effective_method: "SQL".into(),
            normalized_path: String::new(),
            persisted_query_miss: false,
            path_refused: false,
            notes: vec![format!("{why}: treated as destructive")],
        }),
        digest: hex::encode(sha2::Sha256::digest(why.as_bytes())),
        summary: airlock_sql::UNCLASSIFIABLE.into(),
        tags: airlock_sql::UNCLASSIFIABLE.into(),
        transactional: false,
    }
}
