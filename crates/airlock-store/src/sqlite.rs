//! The embedded default backend: one SQLite file in WAL mode.

use crate::model::{
    ApprovalRecord, ApprovalState, AuditFilter, Identity, ResourceRecord, SecretInfo, SecretRecord,
    TokenRecord, TotpRecord, UnmanagedCredential,
};
use crate::signal::Signal;
use crate::{Store, StoreError};
use airlock_audit::{verify_chain, Actor, AuditEvent, AuditRecord, ChainError, GENESIS};
use airlock_core::{EnvName, IdentityKind, Name, OpClassSet, Outcome};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::{Date, OffsetDateTime};

/// Versioned migrations; index + 1 is the schema version (`PRAGMA user_version`). Append only:
/// a released migration is never edited, so every store upgrades along the same path.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE identities (
    name             TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('human', 'agent', 'service')),
    owner            TEXT REFERENCES identities(name),
    purpose          TEXT,
    review_by        TEXT,
    agent_accessible INTEGER NOT NULL,
    environments     TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    disabled_at      INTEGER
);
CREATE TABLE tokens (
    id             TEXT PRIMARY KEY,
    hash           TEXT NOT NULL UNIQUE,
    identity       TEXT NOT NULL REFERENCES identities(name),
    environments   TEXT NOT NULL,
    allow          TEXT NOT NULL,
    resource_scope TEXT,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    issuer         TEXT NOT NULL,
    revoked_at     INTEGER,
    revoke_reason  TEXT
);
CREATE INDEX tokens_by_identity ON tokens(identity);
CREATE TABLE secrets (
    name        TEXT NOT NULL,
    environment TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (name, environment)
);
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    ts_ns       INTEGER NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    owner       TEXT,
    token_id    TEXT,
    action      TEXT NOT NULL,
    resource    TEXT,
    environment TEXT,
    decision    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit(ts_ns);
-- The head is kept apart from the rows so that cutting records off the end is detectable.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
-- Append-only against mistakes; tampering on purpose is what the hash chain is for.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"#,
    r#"
-- Gateway decisions carry protocol details (class, policies, latency) as a JSON object.
ALTER TABLE audit ADD COLUMN details TEXT;
-- The resource catalog: which environment a resource id or `*` pattern belongs to.
CREATE TABLE resources (
    pattern     TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    kind        TEXT,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
"#,
    r#"
-- Bumped by any change to identities or tokens, by Airlock or by hand, so verification caches in
-- every process know to drop what they hold. Audit appends do not touch it, so a busy gateway's
-- own audit writes never empty its token cache.
CREATE TABLE auth_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);
CREATE TRIGGER identities_epoch_i AFTER INSERT ON identities BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER identities_epoch_u AFTER UPDATE ON identities BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER identities_epoch_d AFTER DELETE ON identities BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER tokens_epoch_i AFTER INSERT ON tokens BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER tokens_epoch_u AFTER UPDATE ON tokens BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER tokens_epoch_d AFTER DELETE ON tokens BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
"#,
    r#"
-- Catalog changes bump the epoch too, so a running gateway picks up `airlock resource add`.
CREATE TRIGGER resources_epoch_i AFTER INSERT ON resources BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER resources_epoch_u AFTER UPDATE ON resources BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER resources_epoch_d AFTER DELETE ON resources BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
"#,
    r#"
-- Out-of-band approvals: one row per operation waiting for (or granted by) humans.
CREATE TABLE approvals (
    id               TEXT PRIMARY KEY,
    digest           TEXT NOT NULL,
    requester        TEXT NOT NULL,
    requester_kind   TEXT NOT NULL,
    owner            TEXT,
    token_id         TEXT NOT NULL,
    action           TEXT NOT NULL,
    operation        TEXT NOT NULL,
    resource         TEXT NOT NULL,
    environment      TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'consumed', 'expired')),
    approvals_needed INTEGER NOT NULL,
    decided_at       INTEGER,
    decision_reason  TEXT,
    consumed_at      INTEGER
);
CREATE INDEX approvals_by_digest ON approvals(digest, requester, state);
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals(id),
    approver    TEXT NOT NULL,
    factor      TEXT NOT NULL,
    approve     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (approval_id, approver)
);
-- Humans' TOTP secrets, sealed with the master key; last_step makes a used code unusable.
CREATE TABLE totp (
    identity   TEXT PRIMARY KEY REFERENCES identities(name),
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    last_step  INTEGER,
    created_at INTEGER NOT NULL
);
"#,
    r#"
-- Credentials found outside Airlock by `airlock scan` and imported into the inventory: where
-- they were found and their redacted form, never the value. Keyed by the scanner's fingerprint
-- so a re-import of the same finding updates it instead of adding a twin.
CREATE TABLE unmanaged_credentials (
    fingerprint    TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    description    TEXT NOT NULL,
    file           TEXT NOT NULL,
    line           INTEGER NOT NULL,
    col            INTEGER NOT NULL,
    location       TEXT,
    redacted       TEXT NOT NULL,
    agent_readable INTEGER NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    imported_by    TEXT NOT NULL
);
"#,
    r#"
-- The time index was never used (the audit query's optional time bounds are written so that
-- SQLite scans by sequence number) and cost a second B-tree insert for every record the gateway
-- appends.
DROP INDEX IF EXISTS audit_by_time;
"#,
];

/// The SQLite backend.
pub struct SqliteStore {
    // A std Mutex: rusqlite calls are synchronous and no await happens while it is held.
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The cross-process change signal (None in memory, or when its file cannot be opened).
    signal: Option<Signal>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn ns(t: OffsetDateTime) -> i64 {
    // i64 nanoseconds reach the year 2262; clamp rather than wrap if a caller passes a later date.
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn from_ns(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {v}: {e}")))
}

fn corrupt<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn envs_to_json(envs: &[EnvName]) -> String {
    serde_json::to_string(envs).unwrap_or_else(|_| "[]".into())
}

fn envs_from_json(s: &str) -> Result<Vec<EnvName>, StoreError> {
    serde_json::from_str(s).map_err(corrupt("environments"))
}

impl SqliteStore {
    /// Opens an existing store, refusing to create a new one: an empty store silently standing in
    /// for a deleted one would hide the loss of every identity, token and audit record.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Self::open(path)
    }

    /// Opens the store at `path`, creating it (mode 0600) and migrating it as needed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        let existed = path.exists();
        #[cfg(unix)]
        if !existed {
            // Create the file private before SQLite opens it, so it never exists with umask bits.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| open_err(e.to_string()))?;
        }
        #[cfg(unix)]
        if existed {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "the store is readable by other users; run `chmod 600` on it");
                }
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        Self::configure(conn, path.to_path_buf())
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::configure(conn, PathBuf::from(":memory:"))
    }

    fn configure(mut conn: Connection, path: PathBuf) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        // FULL: a record the caller was told is written survives power loss, not just a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = MIGRATIONS.len() as u32;
        if version > supported {
            return Err(StoreError::NewerSchema {
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as u32 + 1)?;
            tx.commit()?;
        }
        let signal = if path.as_os_str() == ":memory:" {
            None
        } else {
            Signal::open(&path)
        };
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            signal,
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-written: every write
        // is a transaction that rolls back on drop. So a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock up front, so two processes appending audit records
        // serialise on the chain head instead of failing on upgrade.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = auth_epoch(&tx)?;
        let out = f(&tx)?;
        let after = auth_epoch(&tx)?;
        tx.commit()?;
        // Publishing waits a moment (signal::SETTLE); other users of this connection need not.
        drop(conn);
        // After the commit, never before: a reader that sees the signal must find the change.
        if after != before {
            let published = match &self.signal {
                Some(s) => s.publish(after),
                // Nobody else can read an in-memory store.
                None => self.path.as_os_str() == ":memory:",
            };
            if !published {
                // Readers will find the change through the backstop: do not report it done
                // before then.
                std::thread::sleep(crate::signal::BACKSTOP);
            }
        }
        Ok(out)
    }

    fn epoch_from_sqlite(&self) -> Result<u64, StoreError> {
        auth_epoch(&self.lock())
    }
}

fn auth_epoch(conn: &Connection) -> Result<u64, StoreError> {
    // Cached: this runs for every write transaction and every token check the signal cannot answer.
    let mut stmt = conn.prepare_cached("SELECT epoch FROM auth_epoch WHERE id = 1")?;
    let epoch: i64 = stmt.query_row([], |r| r.get(0))?;
    Ok(epoch as u64)
}

impl SqliteStore {
    #[cfg(test)]
    fn signal_path(&self) -> PathBuf {
        crate::signal::path_for(&self.path)
    }
}

/// Fails with [`StoreError::OtherKeys`] if a secret or TOTP factor other than the one being
/// replaced (`secret`: name and environment; `totp`: identity) is sealed under a key other than
/// `key_id`.
fn other_keys_in(
    conn: &Connection,
    key_id: &str,
    secret: Option<(&str, &str)>,
    totp: Option<&str>,
) -> Result<(), StoreError> {
    let (name, env) = secret.unwrap_or(("", ""));
    let mut stmt = conn.prepare(
        "SELECT key_id FROM secrets WHERE key_id <> ?1 AND NOT (name = ?2 AND environment = ?3)
         UNION SELECT key_id FROM totp WHERE key_id <> ?1 AND identity <> ?4
         ORDER BY key_id",
    )?;
    let others = stmt
        .query_map(params![key_id, name, env, totp.unwrap_or("")], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    match others.is_empty() {
        true => Ok(()),
        false => Err(StoreError::OtherKeys(others.join(", "))),
    }
}

fn append_in(tx: &Transaction<'_>, event: AuditEvent) -> Result<AuditRecord, StoreError> {
    let mut out = append_batch_in(tx, vec![event])?;
    out.pop()
        .ok_or_else(|| StoreError::Corrupt("empty audit batch".into()))
}

/// Appends records in order inside the caller's transaction: the head is read once and written
/// once per batch, and the statements are prepared once per connection (this runs for every
/// gateway decision).
fn append_batch_in(
    tx: &Transaction<'_>,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let head: Option<(u64, String)> = tx
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_string()));
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit (seq, ts_ns, actor_id, actor_kind, owner, token_id, action, resource, environment, decision, reason, prev_hash, hash, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let rec = AuditRecord::seal(seq + 1, &prev, event);
        let e = &rec.event;
        insert.execute(params![
            rec.seq,
            ns(e.time),
            e.actor.id,
            e.actor.kind.as_str(),
            e.actor.owner,
            e.actor.token_id,
            e.action,
            e.resource,
            e.environment,
            e.decision.as_str(),
            e.reason,
            rec.prev_hash,
            rec.hash,
            if e.details.is_empty() {
                None
            } else {
                serde_json::to_string(&e.details).ok()
            }
        ])?;
        seq = rec.seq;
        prev = rec.hash.clone();
        out.push(rec);
    }
    if !out.is_empty() {
        tx.prepare_cached(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )?
        .execute(params![seq, prev])?;
    }
    Ok(out)
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<Result<AuditRecord, String>> {
    // Only the position is needed to name a bad record; every other column is decoded inside
    // `build`, so a row edited to the wrong type is reported as edited, not as a store failure.
    let seq: i64 = r.get::<_, rusqlite::types::Value>(0).map(|v| match v {
        rusqlite::types::Value::Integer(i) => i,
        _ => -1,
    })?;
    let build = || -> Result<AuditRecord, String> {
        let seq = u64::try_from(seq)
            .map_err(|_| "sequence number is not a positive integer".to_string())?;
        let ts: i64 = r.get(1).map_err(|e| e.to_string())?;
        let kind: String = r.get(3).map_err(|e| e.to_string())?;
        let decision: String = r.get(9).map_err(|e| e.to_string())?;
        let details: Option<String> = r.get(13).map_err(|e| e.to_string())?;
        Ok(AuditRecord {
            seq,
            event: AuditEvent {
                time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts))
                    .map_err(|e| e.to_string())?,
                actor: Actor {
                    id: r.get(2).map_err(|e| e.to_string())?,
                    kind: kind
                        .parse()
                        .map_err(|e: airlock_core::ParseKindError| e.to_string())?,
                    owner: r.get(4).map_err(|e| e.to_string())?,
                    token_id: r.get(5).map_err(|e| e.to_string())?,
                },
                action: r.get(6).map_err(|e| e.to_string())?,
                resource: r.get(7).map_err(|e| e.to_string())?,
                environment: r.get(8).map_err(|e| e.to_string())?,
                decision: decision.parse::<Outcome>()?,
                reason: r.get(10).map_err(|e| e.to_string())?,
                details: match &details {
                    None => Default::default(),
                    Some(d) => serde_json::from_str(d).map_err(|e| format!("details: {e}"))?,
                },
            },
            prev_hash: r.get(11).map_err(|e| e.to_string())?,
            hash: r.get(12).map_err(|e| e.to_string())?,
        })
    };
    Ok(build().map_err(|e| format!("record {seq}: {e}")))
}

const APPROVAL_COLS: &str = "id, digest, requester, requester_kind, owner, token_id, action, operation, resource, environment, reason, created_at, expires_at, state, approvals_needed, decided_at, decision_reason, consumed_at";

fn approval_from(r: &Row<'_>) -> rusqlite::Result<Result<ApprovalRecord, String>> {
    let get = || -> Result<ApprovalRecord, String> {
        let e = |x: rusqlite::Error| x.to_string();
        let ts = |v: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(v)).map_err(|x| x.to_string())
        };
        let kind: String = r.get(3).map_err(e)?;
        let state: String = r.get(13).map_err(e)?;
        Ok(ApprovalRecord {
            id: r.get(0).map_err(e)?,
            digest: r.get(1).map_err(e)?,
            requester: r.get(2).map_err(e)?,
            requester_kind: kind
                .parse()
                .map_err(|x: airlock_core::ParseKindError| x.to_string())?,
            owner: r.get(4).map_err(e)?,
            token_id: r.get(5).map_err(e)?,
            action: r.get(6).map_err(e)?,
            operation: r.get(7).map_err(e)?,
            resource: r.get(8).map_err(e)?,
            environment: r.get(9).map_err(e)?,
            reason: r.get(10).map_err(e)?,
            created_at: ts(r.get(11).map_err(e)?)?,
            expires_at: ts(r.get(12).map_err(e)?)?,
            state: state.parse()?,
            approvals_needed: r.get(14).map_err(e)?,
            decided_at: r
                .get::<_, Option<i64>>(15)
                .map_err(e)?
                .map(ts)
                .transpose()?,
            decision_reason: r.get(16).map_err(e)?,
            consumed_at: r
                .get::<_, Option<i64>>(17)
                .map_err(e)?
                .map(ts)
                .transpose()?,
            approvers: Vec::new(),
        })
    };
    Ok(get())
}

fn load_approval(conn: &Connection, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
    let rec = conn
        .query_row(
            &format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = ?1"),
            [id],
            approval_from,
        )
        .optional()?;
    let Some(rec) = rec else { return Ok(None) };
    let mut rec = rec.map_err(StoreError::Corrupt)?;
    let mut stmt = conn.prepare(
        "SELECT approver FROM approval_votes WHERE approval_id = ?1 AND approve = 1 ORDER BY at",
    )?;
    rec.approvers = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(rec))
}

const AUDIT_COLS: &str =
    "seq, ts_ns, actor_id, actor_kind, owner, token_id, action, resource, environment, decision, reason, prev_hash, hash, details";

const IDENTITY_COLS: &str =
    "name, kind, owner, purpose, review_by, agent_accessible, environments, enabled, created_at, created_by, disabled_at";

/// Text columns, created_at, disabled_at, agent_accessible, enabled.
type RawIdentity = (Vec<String>, i64, Option<i64>, bool, bool);

fn identity_row(r: &Row<'_>) -> rusqlite::Result<RawIdentity> {
    Ok((
        vec![
            r.get(0)?,
            r.get(1)?,
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            r.get(6)?,
            r.get(9)?,
        ],
        r.get(8)?,
        r.get(10)?,
        r.get(5)?,
        r.get(7)?,
    ))
}

fn identity_from(raw: RawIdentity) -> Result<Identity, StoreError> {
    let (s, created, disabled, agent_accessible, enabled) = raw;
    let opt = |v: &String| if v.is_empty() { None } else { Some(v.clone()) };
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    Ok(Identity {
        name: Name::new(&s[0]).map_err(corrupt("identity name"))?,
        kind: s[1]
            .parse::<IdentityKind>()
            .map_err(corrupt("identity kind"))?,
        owner: opt(&s[2])
            .map(|o| Name::new(&o))
            .transpose()
            .map_err(corrupt("owner"))?,
        purpose: opt(&s[3]),
        review_by: opt(&s[4])
            .map(|d| Date::parse(&d, date_fmt))
            .transpose()
            .map_err(corrupt("review date"))?,
        agent_accessible,
        environments: envs_from_json(&s[5])?,
        enabled,
        created_at: from_ns(created)?,
        created_by: s[6].clone(),
        disabled_at: disabled.map(from_ns).transpose()?,
    })
}

const TOKEN_COLS: &str =
    "id, hash, identity, environments, allow, resource_scope, issued_at, expires_at, issuer, revoked_at, revoke_reason";

type RawToken = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
);

fn token_row(r: &Row<'_>) -> rusqlite::Result<RawToken> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn token_from(t: RawToken) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: t.0,
        hash: t.1,
        identity: Name::new(&t.2).map_err(corrupt("token identity"))?,
        environments: envs_from_json(&t.3)?,
        allow: OpClassSet::parse_list(&t.4).map_err(corrupt("token allowlist"))?,
        resource_scope: t.5,
        issued_at: from_ns(t.6)?,
        expires_at: from_ns(t.7)?,
        issuer: t.8,
        revoked_at: t.9.map(from_ns).transpose()?,
        revoke_reason: t.10,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl Store for SqliteStore {
    fn insert_identity(&self, i: &Identity, audit: AuditEvent) -> Result<(), StoreError> {
        self.write(|tx| {
            if let Some(owner) = &i.owner {
                // Re-checked inside the transaction for the same reason as in `insert_token`.
                let ok: Option<(String, bool)> = tx
                    .query_row("SELECT kind, enabled FROM identities WHERE name = ?1", [owner.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                if ok != Some(("human".to_string(), true)) {
                    return Err(StoreError::Refused(format!("owner `{owner}` is not an enabled human")));
                }
            }
            let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
            let review = i.review_by.map(|d| d.format(date_fmt)).transpose().map_err(corrupt("review date"))?;
            tx.execute(
                &format!("INSERT INTO identities ({IDENTITY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    i.name.as_str(),
                    i.kind.as_str(),
                    i.owner.as_ref().map(Name::as_str),
                    i.purpose,
                    review,
                    i.agent_accessible,
                    envs_to_json(&i.environments),
                    i.enabled,
                    ns(i.created_at),
                    i.created_by,
                    i.disabled_at.map(ns),
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("identity `{}`", i.name))
                } else {
                    e.into()
                }
            })?;
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn identity(&self, name: &Name) -> Result<Option<Identity>, StoreError> {
        let conn = self.lock();
        let raw = conn
            .query_row(
                &format!("SELECT {IDENTITY_COLS} FROM identities WHERE name = ?1"),
                [name.as_str()],
                identity_row,
            )
            .optional()?;
        raw.map(identity_from).transpose()
    }

    fn identities(&self) -> Result<Vec<Identity>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {IDENTITY_COLS} FROM identities ORDER BY name"
        ))?;
        let rows = stmt.query_map([], identity_row)?;
        rows.map(|r| identity_from(r?)).collect()
    }

    fn disable_identity(
        &self,
        name: &Name,
        at: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE identities SET enabled = 0, disabled_at = ?2 WHERE name = ?1",
                params![name.as_str(), ns(at)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("identity `{name}`")));
            }
            let ids: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT id FROM tokens WHERE identity = ?1 AND revoked_at IS NULL ORDER BY id",
                )?;
                let rows = stmt.query_map([name.as_str()], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            tx.execute(
                "UPDATE tokens SET revoked_at = ?2, revoke_reason = 'identity disabled'
                 WHERE identity = ?1 AND revoked_at IS NULL",
                params![name.as_str(), ns(at)],
            )?;
            // The one record names every token it revoked, so each revocation is auditable.
            let mut audit = audit;
            audit.details.insert("revoked_tokens".into(), ids.join(","));
            append_in(tx, audit)?;
            Ok(ids.len() as u64)
        })
    }

    fn review_identity(
        &self,
        name: &Name,
        review_by: Date,
        purpose: Option<&str>,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let enabled: Option<bool> = tx
                .query_row(
                    "SELECT enabled FROM identities WHERE name = ?1",
                    [name.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            match enabled {
                None => return Err(StoreError::NotFound(format!("identity `{name}`"))),
                Some(false) => {
                    return Err(StoreError::Refused(format!(
                        "identity `{name}` is disabled; a disabled identity is not reviewed"
                    )))
                }
                Some(true) => {}
            }
            let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
            let review = review_by.format(date_fmt).map_err(corrupt("review date"))?;
            tx.execute(
                "UPDATE identities SET review_by = ?2, purpose = coalesce(?3, purpose) WHERE name = ?1",
                params![name.as_str(), review, purpose],
            )?;
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn reassign_identity(
        &self,
        name: &Name,
        owner: &Name,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            // Both checked inside the transaction: an owner disabled a moment ago must not
            // become the answer to an orphan.
            let ok: Option<(String, bool)> = tx
                .query_row(
                    "SELECT kind, enabled FROM identities WHERE name = ?1",
                    [owner.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if ok != Some(("human".to_string(), true)) {
                return Err(StoreError::Refused(format!(
                    "owner `{owner}` is not an enabled human; choose an enabled human as owner"
                )));
            }
            let n = tx.execute(
                "UPDATE identities SET owner = ?2 WHERE name = ?1 AND kind IN ('agent', 'service')",
                params![name.as_str(), owner.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("agent or service `{name}`")));
            }
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn insert_token(&self, t: &TokenRecord, audit: AuditEvent) -> Result<(), StoreError> {
        self.write(|tx| {
            // Re-checked inside the write transaction: a disable that committed after the
            // caller's check must win, or a token could be born to an offboarded identity.
            let state: Option<(bool, Option<String>, Option<bool>)> = tx
                .query_row(
                    "SELECT i.enabled, i.owner, o.enabled FROM identities i
                     LEFT JOIN identities o ON o.name = i.owner WHERE i.name = ?1",
                    [t.identity.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            match state {
                None => return Err(StoreError::NotFound(format!("identity `{}`", t.identity))),
                Some((false, _, _)) => {
                    return Err(StoreError::Refused(format!("identity `{}` is disabled", t.identity)))
                }
                Some((true, Some(owner), owner_enabled)) if owner_enabled != Some(true) => {
                    return Err(StoreError::Refused(format!(
                        "identity `{}` is orphaned: its owner `{owner}` is disabled",
                        t.identity
                    )))
                }
                _ => {}
            }
            tx.execute(
                &format!("INSERT INTO tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    t.id,
                    t.hash,
                    t.identity.as_str(),
                    envs_to_json(&t.environments),
                    t.allow.to_string(),
                    t.resource_scope,
                    ns(t.issued_at),
                    ns(t.expires_at),
                    t.issuer,
                    t.revoked_at.map(ns),
                    t.revoke_reason,
                ],
            )?;
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"))?;
        let raw = stmt.query_row([hash], token_row).optional()?;
        raw.map(token_from).transpose()
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let conn = self.lock();
        let raw = conn
            .query_row(
                &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"),
                [id],
                token_row,
            )
            .optional()?;
        raw.map(token_from).transpose()
    }

    fn tokens(&self, identity: Option<&Name>) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE ?1 IS NULL OR identity = ?1 ORDER BY issued_at DESC, id"
        ))?;
        let rows = stmt.query_map([identity.map(Name::as_str)], token_row)?;
        rows.map(|r| token_from(r?)).collect()
    }

    fn revoke_token(
        &self,
        id: &str,
        at: OffsetDateTime,
        reason: &str,
        audit: AuditEvent,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let exists: Option<Option<i64>> = tx
                .query_row("SELECT revoked_at FROM tokens WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            match exists {
                None => Err(StoreError::NotFound(format!("token `{id}`"))),
                Some(Some(_)) => Ok(false),
                Some(None) => {
                    tx.execute(
                        "UPDATE tokens SET revoked_at = ?2, revoke_reason = ?3 WHERE id = ?1",
                        params![id, ns(at), reason],
                    )?;
                    append_in(tx, audit)?;
                    Ok(true)
                }
            }
        })
    }

    fn check_one_key(
        &self,
        key_id: &str,
        secret: Option<(&str, &str)>,
        totp: Option<&str>,
    ) -> Result<(), StoreError> {
        other_keys_in(&self.lock(), key_id, secret, totp)
    }

    fn put_secret(
        &self,
        s: &SecretRecord,
        one_key: bool,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            if one_key {
                other_keys_in(tx, &s.key_id, Some((&s.name, s.environment.as_str())), None)?;
            }
            tx.execute(
                "INSERT INTO secrets (name, environment, key_id, nonce, ciphertext, created_at, updated_at, updated_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name, environment) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                   ciphertext = excluded.ciphertext, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![
                    s.name,
                    s.environment.as_str(),
                    s.key_id,
                    s.nonce,
                    s.ciphertext,
                    ns(s.created_at),
                    ns(s.updated_at),
                    s.updated_by
                ],
            )?;
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn secret(&self, name: &str, environment: &str) -> Result<Option<SecretRecord>, StoreError> {
        let conn = self.lock();
        let raw = conn
            .query_row(
                "SELECT name, environment, key_id, nonce, ciphertext, created_at, updated_at, updated_by
                 FROM secrets WHERE name = ?1 AND environment = ?2",
                [name, environment],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()?;
        raw.map(|r| {
            Ok(SecretRecord {
                name: r.0,
                environment: EnvName::new(&r.1).map_err(corrupt("secret environment"))?,
                key_id: r.2,
                nonce: r.3,
                ciphertext: r.4,
                created_at: from_ns(r.5)?,
                updated_at: from_ns(r.6)?,
                updated_by: r.7,
            })
        })
        .transpose()
    }

    fn secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT name, environment, key_id, created_at, updated_at, updated_by FROM secrets ORDER BY name, environment",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|r| {
            let r = r?;
            Ok(SecretInfo {
                name: r.0,
                environment: EnvName::new(&r.1).map_err(corrupt("secret environment"))?,
                key_id: r.2,
                created_at: from_ns(r.3)?,
                updated_at: from_ns(r.4)?,
                updated_by: r.5,
            })
        })
        .collect()
    }

    fn append_audit(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.write(|tx| append_in(tx, event))
    }

    fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError> {
        // One transaction, one fsync, for the whole batch: the gateway's group commit.
        self.write(|tx| append_batch_in(tx, events))
    }

    fn put_resource(&self, r: &ResourceRecord, audit: AuditEvent) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO resources (pattern, environment, kind, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (pattern) DO UPDATE SET environment = excluded.environment, kind = excluded.kind",
                params![r.pattern, r.environment.as_str(), r.kind, ns(r.created_at), r.created_by],
            )?;
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn resources(&self) -> Result<Vec<ResourceRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT pattern, environment, kind, created_at, created_by FROM resources ORDER BY pattern")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|r| {
            let r = r?;
            Ok(ResourceRecord {
                pattern: r.0,
                environment: EnvName::new(&r.1).map_err(corrupt("resource environment"))?,
                kind: r.2,
                created_at: from_ns(r.3)?,
                created_by: r.4,
            })
        })
        .collect()
    }

    fn request_approval(
        &self,
        a: &ApprovalRecord,
        audit: AuditEvent,
    ) -> Result<(ApprovalRecord, bool), StoreError> {
        self.write(|tx| {
            // The same operation by the same principal, still waiting, granted and unused, or
            // denied (deny is final until it would have expired): answer with that request
            // instead of queueing another.
            let existing: Option<String> = tx
                .query_row(
                    "SELECT id FROM approvals WHERE digest = ?1 AND requester = ?2
                     AND state IN ('pending', 'approved', 'denied') AND expires_at > ?3 ORDER BY created_at DESC LIMIT 1",
                    params![a.digest, a.requester, ns(a.created_at)],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                let rec = load_approval(tx, &id)?.ok_or_else(|| StoreError::NotFound(format!("approval `{id}`")))?;
                return Ok((rec, false));
            }
            tx.execute(
                &format!("INSERT INTO approvals ({APPROVAL_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending', ?14, NULL, NULL, NULL)"),
                params![
                    a.id, a.digest, a.requester, a.requester_kind.as_str(), a.owner, a.token_id, a.action, a.operation,
                    a.resource, a.environment, a.reason, ns(a.created_at), ns(a.expires_at), a.approvals_needed
                ],
            )?;
            append_in(tx, audit)?;
            let rec = load_approval(tx, &a.id)?.ok_or_else(|| StoreError::NotFound(format!("approval `{}`", a.id)))?;
            Ok((rec, true))
        })
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let conn = self.lock();
        load_approval(&conn, id)
    }

    fn approvals(&self, state: Option<ApprovalState>) -> Result<Vec<ApprovalRecord>, StoreError> {
        let conn = self.lock();
        let ids: Vec<String> = {
            let mut stmt = conn.prepare(
                "SELECT id FROM approvals WHERE ?1 IS NULL OR state = ?1 ORDER BY created_at DESC",
            )?;
            let rows = stmt.query_map([state.map(|s| s.as_str())], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(a) = load_approval(&conn, &id)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    fn granted_approval(
        &self,
        digest: &str,
        requester: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let conn = self.lock();
        let id: Option<String> = conn
            .query_row(
                "SELECT id FROM approvals WHERE digest = ?1 AND requester = ?2 AND state = 'approved' AND expires_at > ?3
                 ORDER BY created_at LIMIT 1",
                params![digest, requester, ns(now)],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => load_approval(&conn, &id),
            None => Ok(None),
        }
    }

    fn consume_approval(
        &self,
        id: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            // One execution: only the first consumer flips approved -> consumed.
            let n = tx.execute(
                "UPDATE approvals SET state = 'consumed', consumed_at = ?2
                 WHERE id = ?1 AND state = 'approved' AND expires_at > ?2",
                params![id, ns(now)],
            )?;
            if n == 1 {
                append_in(tx, audit)?;
            }
            Ok(n == 1)
        })
    }

    fn vote_approval(
        &self,
        id: &str,
        approver: &str,
        factor: &str,
        approve: bool,
        reason: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<ApprovalRecord, StoreError> {
        self.write(|tx| {
            let rec = load_approval(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("approval `{id}`")))?;
            if rec.state != ApprovalState::Pending {
                return Err(StoreError::Refused(format!("approval `{id}` is {}, not pending", rec.state.as_str())));
            }
            if rec.expires_at <= now {
                return Err(StoreError::Refused(format!("approval `{id}` expired at {}", airlock_core::fmt_time(rec.expires_at))));
            }
            if rec.requester == approver {
                return Err(StoreError::Refused("the requester cannot approve its own request".into()));
            }
            tx.execute(
                "INSERT INTO approval_votes (approval_id, approver, factor, approve, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, approver, factor, approve, ns(now)],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Refused(format!("`{approver}` already decided on approval `{id}`; a second approval must come from another human"))
                } else {
                    e.into()
                }
            })?;
            if !approve {
                tx.execute(
                    "UPDATE approvals SET state = 'denied', decided_at = ?2, decision_reason = ?3 WHERE id = ?1",
                    params![id, ns(now), reason],
                )?;
            } else {
                let votes: u32 = tx.query_row(
                    "SELECT count(*) FROM approval_votes WHERE approval_id = ?1 AND approve = 1",
                    [id],
                    |r| r.get(0),
                )?;
                if votes >= rec.approvals_needed {
                    tx.execute(
                        "UPDATE approvals SET state = 'approved', decided_at = ?2, decision_reason = ?3 WHERE id = ?1",
                        params![id, ns(now), reason],
                    )?;
                }
            }
            append_in(tx, audit)?;
            load_approval(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("approval `{id}`")))
        })
    }

    fn expire_approvals(&self, now: OffsetDateTime) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.write(|tx| {
            let ids: Vec<String> = {
                let mut stmt = tx.prepare("SELECT id FROM approvals WHERE state IN ('pending', 'approved') AND expires_at <= ?1")?;
                let rows = stmt.query_map([ns(now)], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            tx.execute(
                "UPDATE approvals SET state = 'expired' WHERE state IN ('pending', 'approved') AND expires_at <= ?1",
                [ns(now)],
            )?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(a) = load_approval(tx, &id)? {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    fn put_totp(&self, t: &TotpRecord, one_key: bool, audit: AuditEvent) -> Result<(), StoreError> {
        self.write(|tx| {
            if one_key {
                other_keys_in(tx, &t.key_id, None, Some(&t.identity))?;
            }
            tx.execute(
                "INSERT INTO totp (identity, key_id, nonce, ciphertext, last_step, created_at) VALUES (?1, ?2, ?3, ?4, NULL, ?5)
                 ON CONFLICT (identity) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                   ciphertext = excluded.ciphertext, last_step = NULL, created_at = excluded.created_at",
                params![t.identity, t.key_id, t.nonce, t.ciphertext, ns(t.created_at)],
            )?;
            append_in(tx, audit)?;
            Ok(())
        })
    }

    fn totp(&self, identity: &str) -> Result<Option<TotpRecord>, StoreError> {
        let conn = self.lock();
        let r = conn
            .query_row(
                "SELECT identity, key_id, nonce, ciphertext, last_step, created_at FROM totp WHERE identity = ?1",
                [identity],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                },
            )
            .optional()?;
        r.map(|r| {
            Ok(TotpRecord {
                identity: r.0,
                key_id: r.1,
                nonce: r.2,
                ciphertext: r.3,
                last_step: r.4.map(|s| s as u64),
                created_at: from_ns(r.5)?,
            })
        })
        .transpose()
    }

    fn use_totp_step(&self, identity: &str, step: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            // Atomic: a code's time step is accepted once, and never an older one after it.
            let n = tx.execute(
                "UPDATE totp SET last_step = ?2 WHERE identity = ?1 AND (last_step IS NULL OR last_step < ?2)",
                params![identity, step as i64],
            )?;
            Ok(n == 1)
        })
    }

    fn put_unmanaged(
        &self,
        found: &[UnmanagedCredential],
        audit: AuditEvent,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            let mut new = 0;
            for u in found {
                let existed: bool = tx
                    .prepare_cached("SELECT 1 FROM unmanaged_credentials WHERE fingerprint = ?1")?
                    .exists([&u.fingerprint])?;
                tx.prepare_cached(
                    "INSERT INTO unmanaged_credentials (fingerprint, kind, description, file, line, col, location, redacted, agent_readable, first_seen, last_seen, imported_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (fingerprint) DO UPDATE SET kind = excluded.kind, description = excluded.description,
                       file = excluded.file, line = excluded.line, col = excluded.col, location = excluded.location,
                       redacted = excluded.redacted, agent_readable = excluded.agent_readable,
                       last_seen = excluded.last_seen, imported_by = excluded.imported_by",
                )?
                .execute(params![
                    u.fingerprint,
                    u.kind,
                    u.description,
                    u.file,
                    u.line as i64,
                    u.column as i64,
                    u.location,
                    u.redacted,
                    u.agent_readable,
                    ns(u.first_seen),
                    ns(u.last_seen),
                    u.imported_by
                ])?;
                if !existed {
                    new += 1;
                }
            }
            append_in(tx, audit)?;
            Ok(new)
        })
    }

    fn unmanaged(&self) -> Result<Vec<UnmanagedCredential>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT fingerprint, kind, description, file, line, col, location, redacted, agent_readable, first_seen, last_seen, imported_by
             FROM unmanaged_credentials ORDER BY file, line, col, fingerprint",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ),
                (r.get::<_, i64>(4)?, r.get::<_, i64>(5)?),
                (r.get::<_, Option<String>>(6)?, r.get::<_, String>(7)?),
                r.get::<_, bool>(8)?,
                (r.get::<_, i64>(9)?, r.get::<_, i64>(10)?),
                r.get::<_, String>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (fingerprint, kind, description, file),
                (line, col),
                (location, redacted),
                ar,
                (first, last),
                by,
            ) = row?;
            out.push(UnmanagedCredential {
                fingerprint,
                kind,
                description,
                file,
                line: u64::try_from(line).map_err(corrupt("line"))?,
                column: u64::try_from(col).map_err(corrupt("column"))?,
                location,
                redacted,
                agent_readable: ar,
                first_seen: from_ns(first)?,
                last_seen: from_ns(last)?,
                imported_by: by,
            });
        }
        Ok(out)
    }

    fn token_last_used(
        &self,
    ) -> Result<std::collections::HashMap<String, OffsetDateTime>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT token_id, max(ts_ns) FROM audit WHERE token_id IS NOT NULL AND decision = 'allow' GROUP BY token_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (id, ts) = r?;
            out.insert(id, from_ns(ts)?);
        }
        Ok(out)
    }

    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.lock();
        // Newest first with a limit, then reversed, so `--limit 20` shows the last 20 in order.
        let mut stmt = conn.prepare(&format!(
            "SELECT {AUDIT_COLS} FROM audit
             WHERE (?1 IS NULL OR actor_kind = ?1) AND (?2 IS NULL OR actor_id = ?2)
               AND (?3 IS NULL OR decision = ?3) AND (?4 IS NULL OR ts_ns >= ?4) AND (?5 IS NULL OR ts_ns < ?5)
             ORDER BY seq DESC LIMIT ?6"
        ))?;
        let limit = f.limit.map(|l| l as i64).unwrap_or(-1);
        let rows = stmt.query_map(
            params![
                f.actor_kind.map(|k| k.as_str()),
                f.actor_id,
                f.decision.map(|d| d.as_str()),
                f.since.map(ns),
                f.until.map(ns),
                limit
            ],
            audit_row,
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.map_err(StoreError::Corrupt)?);
        }
        out.reverse();
        Ok(out)
    }

    fn verify_audit(&self) -> Result<Result<u64, ChainError>, StoreError> {
        let conn = self.lock();
        let head: Option<(u64, String)> = conn
            .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        // Storage order is rowid order, which is `seq` (an INTEGER PRIMARY KEY is the rowid).
        let mut stmt = conn.prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"))?;
        let mut rows = stmt.query([])?;
        let mut records = Vec::new();
        while let Some(row) = rows.next()? {
            match audit_row(row)? {
                Ok(r) => records.push(r),
                // A row that no longer decodes (a kind or decision edited to nonsense) was edited.
                Err(_) => {
                    let seq = records.last().map(|r: &AuditRecord| r.seq + 1).unwrap_or(1);
                    let checked = verify_chain(records, None);
                    return Ok(checked.and(Err(ChainError::Edited { seq })));
                }
            }
        }
        drop(rows);
        drop(stmt);
        match (&head, records.last()) {
            (None, Some(last)) => return Ok(Err(ChainError::HeadMissing { last: last.seq })),
            (None, None) => {
                // Every identity was added with an audit record; a store with identities and no
                // records had its log wiped.
                let identities: i64 =
                    conn.query_row("SELECT count(*) FROM identities", [], |r| r.get(0))?;
                if identities > 0 {
                    return Ok(Err(ChainError::Wiped));
                }
            }
            _ => {}
        }
        Ok(verify_chain(
            records,
            head.as_ref().map(|(s, h)| (*s, h.as_str())),
        ))
    }

    fn change_marker(&self) -> Result<u64, StoreError> {
        // Runs on every token check: the signal file answers unless something changed.
        match &self.signal {
            Some(s) => s.epoch(|| self.epoch_from_sqlite()),
            None => self.epoch_from_sqlite(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ApprovalRecord {
        fn with_digest(mut self, d: &str) -> Self {
            self.digest = d.into();
            self
        }
    }

    fn ev(action: &str) -> AuditEvent {
        AuditEvent {
            time: OffsetDateTime::now_utc(),
            actor: Actor::local_operator(),
            action: action.into(),
            resource: None,
            environment: None,
            decision: Outcome::Allow,
            reason: "test".into(),
            details: Default::default(),
        }
    }

    fn human(name: &str) -> Identity {
        Identity {
            name: Name::new(name).unwrap(),
            kind: IdentityKind::Human,
            owner: None,
            purpose: None,
            review_by: None,
            agent_accessible: false,
            environments: vec![],
            enabled: true,
            created_at: OffsetDateTime::now_utc(),
            created_by: "test".into(),
            disabled_at: None,
        }
    }

    #[test]
    fn another_handle_sees_a_change_at_once_and_a_hand_edit_within_the_backstop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("airlock.db");
        let gateway = SqliteStore::open(&db).unwrap();
        let cli = SqliteStore::open(&db).unwrap();
        let m0 = gateway.change_marker().unwrap();
        assert_eq!(gateway.change_marker().unwrap(), m0);

        cli.insert_identity(&human("alice"), ev("identity.add"))
            .unwrap();
        let m1 = gateway.change_marker().unwrap();
        assert_ne!(
            m1, m0,
            "a change through the store is seen on the very next check"
        );

        // Audit appends are not auth changes: they neither bump the epoch nor the signal.
        let signal = std::fs::read(gateway.signal_path()).unwrap();
        cli.append_audit(ev("x")).unwrap();
        assert_eq!(std::fs::read(gateway.signal_path()).unwrap(), signal);
        assert_eq!(gateway.change_marker().unwrap(), m1);

        // A hand edit bypasses the signal; the backstop still catches it.
        let raw = Connection::open(&db).unwrap();
        raw.execute("UPDATE identities SET purpose = 'edited'", [])
            .unwrap();
        std::thread::sleep(crate::signal::BACKSTOP + std::time::Duration::from_millis(20));
        assert_ne!(gateway.change_marker().unwrap(), m1);
    }

    #[test]
    fn the_signal_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("airlock.db")).unwrap();
        let mode = std::fs::metadata(s.signal_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn every_mutation_leaves_exactly_one_chained_audit_record() {
        let s = SqliteStore::in_memory().unwrap();
        s.insert_identity(&human("alice"), ev("identity.add"))
            .unwrap();
        assert!(matches!(
            s.insert_identity(&human("alice"), ev("identity.add")),
            Err(StoreError::Conflict(_))
        ));
        s.disable_identity(
            &Name::new("alice").unwrap(),
            OffsetDateTime::now_utc(),
            ev("identity.disable"),
        )
        .unwrap();
        let all = s.audit(&AuditFilter::default()).unwrap();
        assert_eq!(
            all.iter()
                .map(|r| r.event.action.as_str())
                .collect::<Vec<_>>(),
            ["identity.add", "identity.disable"]
        );
        assert_eq!(s.verify_audit().unwrap(), Ok(2));
    }

    fn approval(id: &str, created: OffsetDateTime) -> ApprovalRecord {
        ApprovalRecord {
            id: id.into(),
            digest: "d1".into(),
            requester: "bot".into(),
            requester_kind: IdentityKind::Agent,
            owner: Some("alice".into()),
            token_id: "tok_1".into(),
            action: "volumeDelete".into(),
            operation: "POST /graphql".into(),
            resource: "vol-1".into(),
            environment: "production".into(),
            reason: "r".into(),
            created_at: created,
            expires_at: created + time::Duration::minutes(15),
            state: ApprovalState::Pending,
            approvals_needed: 1,
            approvers: vec![],
            decided_at: None,
            decision_reason: None,
            consumed_at: None,
        }
    }

    #[test]
    fn an_expired_approval_can_neither_be_decided_nor_used() {
        let s = SqliteStore::in_memory().unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let late = t0 + time::Duration::minutes(16);
        s.request_approval(&approval("apr_1", t0), ev("approval.requested"))
            .unwrap();
        let e = s
            .vote_approval(
                "apr_1",
                "alice",
                "totp",
                true,
                "",
                late,
                ev("approval.approve"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        // Approved in time, but used after the deadline: refused too.
        s.request_approval(
            &approval("apr_2", t0).with_digest("d2"),
            ev("approval.requested"),
        )
        .unwrap();
        s.vote_approval(
            "apr_2",
            "alice",
            "totp",
            true,
            "",
            t0,
            ev("approval.approve"),
        )
        .unwrap();
        assert!(s.granted_approval("d2", "bot", late).unwrap().is_none());
        assert!(!s
            .consume_approval("apr_2", late, ev("approval.executed"))
            .unwrap());
        let expired = s.expire_approvals(late).unwrap();
        assert_eq!(
            expired.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["apr_1", "apr_2"]
        );
    }

    #[test]
    fn an_approval_is_used_once_and_needs_distinct_humans_when_two_are_required() {
        let s = SqliteStore::in_memory().unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut a = approval("apr_1", t0);
        a.approvals_needed = 2;
        s.request_approval(&a, ev("approval.requested")).unwrap();
        let r = s
            .vote_approval(
                "apr_1",
                "alice",
                "totp",
                true,
                "",
                t0,
                ev("approval.approve"),
            )
            .unwrap();
        assert_eq!(r.state, ApprovalState::Pending);
        let e = s
            .vote_approval(
                "apr_1",
                "alice",
                "totp",
                true,
                "",
                t0,
                ev("approval.approve"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("another human"), "{e}");
        let r = s
            .vote_approval("apr_1", "bob", "totp", true, "", t0, ev("approval.approve"))
            .unwrap();
        assert_eq!(r.state, ApprovalState::Approved);
        assert_eq!(r.approvers, ["alice", "bob"]);
        assert!(s
            .consume_approval("apr_1", t0, ev("approval.executed"))
            .unwrap());
        assert!(
            !s.consume_approval("apr_1", t0, ev("approval.executed"))
                .unwrap(),
            "a second use"
        );
        let e = s
            .vote_approval("apr_1", "bot", "totp", true, "", t0, ev("approval.approve"))
            .unwrap_err();
        assert!(e.to_string().contains("not pending"), "{e}");
    }

    #[test]
    fn a_totp_step_is_accepted_once_and_never_an_older_one_after_it() {
        let s = SqliteStore::in_memory().unwrap();
        s.insert_identity(&human("alice"), ev("identity.add"))
            .unwrap();
        s.put_totp(
            &TotpRecord {
                identity: "alice".into(),
                key_id: "k".into(),
                nonce: vec![0; 24],
                ciphertext: vec![1],
                last_step: None,
                created_at: OffsetDateTime::now_utc(),
            },
            true,
            ev("identity.totp_enrol"),
        )
        .unwrap();
        assert!(s.use_totp_step("alice", 100).unwrap());
        assert!(!s.use_totp_step("alice", 100).unwrap());
        assert!(!s.use_totp_step("alice", 99).unwrap());
        assert!(s.use_totp_step("alice", 101).unwrap());
    }

    fn found(fp: &str, line: u64) -> UnmanagedCredential {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        UnmanagedCredential {
            fingerprint: fp.into(),
            kind: "aws-access-key-id".into(),
            description: "AWS access key id".into(),
            file: "infra/.env".into(),
            line,
            column: 19,
            location: None,
            redacted: "AKIA…WXYZ".into(),
            agent_readable: true,
            first_seen: t,
            last_seen: t,
            imported_by: "test".into(),
        }
    }

    #[test]
    fn reimporting_a_finding_updates_it_instead_of_adding_a_twin() {
        let s = SqliteStore::in_memory().unwrap();
        assert_eq!(
            s.put_unmanaged(&[found("f1", 3), found("f2", 9)], ev("inventory.import"))
                .unwrap(),
            2
        );
        assert_eq!(
            s.put_unmanaged(&[found("f1", 4)], ev("inventory.import"))
                .unwrap(),
            0
        );
        let all = s.unmanaged().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().find(|u| u.fingerprint == "f1").unwrap().line, 4);
        assert_eq!(s.verify_audit().unwrap(), Ok(2));
    }

    #[test]
    fn an_orphan_is_reassigned_only_to_an_enabled_human_and_only_enabled_identities_are_reviewed() {
        let s = SqliteStore::in_memory().unwrap();
        let n = |x: &str| Name::new(x).unwrap();
        s.insert_identity(&human("alice"), ev("identity.add"))
            .unwrap();
        s.insert_identity(&human("bob"), ev("identity.add"))
            .unwrap();
        let mut bot = human("bot");
        bot.kind = IdentityKind::Agent;
        bot.owner = Some(n("alice"));
        s.insert_identity(&bot, ev("identity.add")).unwrap();
        s.disable_identity(
            &n("alice"),
            OffsetDateTime::now_utc(),
            ev("identity.disable"),
        )
        .unwrap();
        assert!(matches!(
            s.reassign_identity(&n("bot"), &n("alice"), ev("identity.reassign")),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            s.reassign_identity(&n("bob"), &n("bob"), ev("identity.reassign")),
            Err(StoreError::NotFound(_))
        ));
        s.reassign_identity(&n("bot"), &n("bob"), ev("identity.reassign"))
            .unwrap();
        assert_eq!(
            s.identity(&n("bot")).unwrap().unwrap().owner,
            Some(n("bob"))
        );
        let d = time::macros::date!(2030 - 01 - 01);
        assert!(matches!(
            s.review_identity(&n("alice"), d, None, ev("identity.review")),
            Err(StoreError::Refused(_))
        ));
        s.review_identity(&n("bot"), d, Some("nightly backups"), ev("identity.review"))
            .unwrap();
        let bot = s.identity(&n("bot")).unwrap().unwrap();
        assert_eq!(bot.review_by, Some(d));
        assert_eq!(bot.purpose.as_deref(), Some("nightly backups"));
    }

    #[test]
    fn a_store_from_a_newer_airlock_is_refused_not_downgraded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        drop(SqliteStore::open(&p).unwrap());
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            SqliteStore::open(&p),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }

    #[test]
    fn the_store_file_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        drop(SqliteStore::open(&p).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o077,
                0
            );
        }
    }

    #[test]
    fn audit_listing_filters_and_keeps_the_newest_within_a_limit() {
        let s = SqliteStore::in_memory().unwrap();
        for i in 0u32..5 {
            let mut e = ev(&format!("a{i}"));
            e.decision = if i.is_multiple_of(2) {
                Outcome::Allow
            } else {
                Outcome::Deny
            };
            s.append_audit(e).unwrap();
        }
        let denies = s
            .audit(&AuditFilter {
                decision: Some(Outcome::Deny),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(denies.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 4]);
        let last2 = s
            .audit(&AuditFilter {
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(last2.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    }
}
