//! `airlock.toml`: the operator's configuration.
//!
//! Parsing is strict on purpose: a typo in a security tool's configuration must not silently turn
//! into a default. Unknown keys and bad values are refused with the file, the line and what was
//! expected.

use airlock_core::EnvName;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hard ceiling on any agent or service token's lifetime; configuration may lower it only.
pub const AGENT_TTL_CEILING: Duration = Duration::from_secs(24 * 3600);
/// The ceiling on a human token's lifetime: long enough for a working week, never unlimited.
pub const HUMAN_TTL_CEILING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error, said in the message and not chained as a source, so that error
        /// printers that walk the chain say it once.
        error: std::io::Error,
    },
    /// The file was read but is invalid at a known place.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A duration written as `90m`, `1h`, `24h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Duration);

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_ttl(&s).map(Ttl).map_err(serde::de::Error::custom)
    }
}

/// Parses a human duration (`30m`, `1h`, `1h30m`, `2d`), refusing zero.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration `{s}` ({e}); expected e.g. `30m`, `1h`, `24h`"))?;
    if d.is_zero() {
        return Err(format!("invalid duration `{s}`: must be longer than zero"));
    }
    Ok(d)
}

/// One environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Whether destructive and privilege operations here wait for a human.
    pub protected: bool,
    /// How many distinct humans must approve an operation here (1 or 2).
    #[serde(default = "one")]
    pub approvals_required: u32,
    /// Who hears about approval requests here.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: Option<String>,
}

/// Where approval requests in an environment are announced. URLs and keys that are credentials
/// are sealed secrets (in that environment), named here, never written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Sealed secret holding a Slack incoming-webhook URL.
    #[serde(default)]
    pub slack_secret: Option<String>,
    /// A generic JSON webhook receiving signed notices.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Sealed secret holding the webhook's HMAC-SHA256 key.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// The console link put in notices.
    #[serde(default)]
    pub console_url: Option<String>,
}

/// Where the store lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file, relative to the configuration file's directory.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

fn one() -> u32 {
    1
}

fn default_store_path() -> PathBuf {
    PathBuf::from("airlock.db")
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
        }
    }
}

/// Where the key that seals upstream secrets comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key file (32 random bytes, hex), relative to the configuration file's directory.
    /// The environment variable `AIRLOCK_MASTER_KEY` (64 hex characters) takes precedence.
    #[serde(default = "default_key_file")]
    pub file: PathBuf,
}

fn default_key_file() -> PathBuf {
    PathBuf::from("airlock.key")
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            file: default_key_file(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    #[serde(default)]
    agent_default_ttl: Option<toml::Spanned<Ttl>>,
    #[serde(default)]
    agent_max_ttl: Option<toml::Spanned<Ttl>>,
    #[serde(default)]
    human_default_ttl: Option<toml::Spanned<Ttl>>,
    #[serde(default)]
    human_max_ttl: Option<toml::Spanned<Ttl>>,
}

/// Token lifetime limits, validated against the ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    /// Lifetime of an agent or service token when `--ttl` is not given.
    pub agent_default_ttl: Duration,
    /// Longest lifetime an agent or service token may have (at most 24 h).
    pub agent_max_ttl: Duration,
    /// Lifetime of a human token when `--ttl` is not given.
    pub human_default_ttl: Duration,
    /// Longest lifetime a human token may have (at most 30 days).
    pub human_max_ttl: Duration,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            agent_default_ttl: Duration::from_secs(3600),
            agent_max_ttl: AGENT_TTL_CEILING,
            human_default_ttl: Duration::from_secs(8 * 3600),
            human_max_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    keys: KeyConfig,
    #[serde(default)]
    tokens: Option<RawTokens>,
    #[serde(default)]
    environments: BTreeMap<String, toml::Spanned<Environment>>,
    #[serde(default)]
    gateway: GatewayConfig,
    #[serde(default)]
    upstreams: BTreeMap<String, toml::Spanned<Upstream>>,
    #[serde(default)]
    databases: BTreeMap<String, toml::Spanned<Database>>,
    #[serde(default)]
    policies: PolicyConfig,
    #[serde(default)]
    resources: Vec<toml::Spanned<ResourceEntry>>,
    #[serde(default)]
    approvals: ApprovalConfig,
}

/// How approval requests behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// How long a request waits for humans, and how long a grant stays usable.
    #[serde(default = "default_approval_ttl")]
    pub ttl: Ttl,
    /// Hold the agent's request open this long waiting for the decision (0: answer at once).
    #[serde(default = "zero_ttl")]
    pub hold: HoldTime,
}

/// A hold time, which may be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTime(pub Duration);

impl<'de> Deserialize<'de> for HoldTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{s}` ({e}); expected e.g. `0s`, `30s`"
            ))
        })?;
        if d > Duration::from_secs(300) {
            return Err(serde::de::Error::custom(
                "`hold` may be at most `5m`; agents should retry instead",
            ));
        }
        Ok(HoldTime(d))
    }
}

fn default_approval_ttl() -> Ttl {
    Ttl(Duration::from_secs(15 * 60))
}

fn zero_ttl() -> HoldTime {
    HoldTime(Duration::ZERO)
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            ttl: default_approval_ttl(),
            hold: zero_ttl(),
        }
    }
}

/// The gateway's listeners and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The shared listener for upstreams that use a path prefix.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The admin listener: `/healthz` and `/metrics`; never the proxy.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Most concurrent client connections; more wait for a free slot.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    #[serde(default = "default_drain")]
    pub shutdown_grace: Ttl,
    /// How long an upstream may take to answer before the request fails.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout: Ttl,
    /// How long the audit writer lets records nobody waits for (allowed reads, writes inside a
    /// PostgreSQL transaction) gather before committing them: longer means fewer fsyncs, and
    /// more reads' records lost if the machine dies. At most 1 s.
    #[serde(default = "default_audit_linger")]
    pub audit_linger: Ttl,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_max_connections() -> usize {
    4096
}
fn default_drain() -> Ttl {
    Ttl(Duration::from_secs(10))
}
fn default_upstream_timeout() -> Ttl {
    Ttl(Duration::from_secs(60))
}
fn default_audit_linger() -> Ttl {
    Ttl(Duration::from_millis(2))
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            max_connections: default_max_connections(),
            shutdown_grace: default_drain(),
            upstream_timeout: default_upstream_timeout(),
            audit_linger: default_audit_linger(),
        }
    }
}

/// How the gateway hands the sealed secret to the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Injection {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic <secret>` (the sealed value is `user:password`).
    Basic,
    /// A named header carrying the secret as is.
    Header(String),
}

/// One upstream API behind the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Where requests go: `http://host:port` or `https://host`.
    pub url: String,
    /// Serve on the shared listener under this path prefix (stripped before forwarding).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Serve on a listener of its own.
    #[serde(default)]
    pub listen: Option<String>,
    /// The environment everything behind this upstream belongs to.
    #[serde(default)]
    pub environment: Option<EnvName>,
    /// For an API shared by several environments: resolve each resource in the catalog.
    #[serde(default)]
    pub catalog: bool,
    /// The classification rule file (relative to airlock.toml).
    pub rules: PathBuf,
    /// The sealed secret injected into forwarded requests.
    #[serde(default)]
    pub secret: Option<String>,
    /// The environment the secret was sealed for (defaults to `environment`).
    #[serde(default)]
    pub secret_env: Option<EnvName>,
    /// How the secret is injected.
    #[serde(default = "default_injection")]
    pub inject: Injection,
    /// A PEM file of CA certificates to trust for this upstream's TLS, besides the public roots
    /// (for internal APIs with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Upstream {
    /// The environment its secret is sealed for: `secret_env`, else the upstream's own.
    pub fn secret_environment(&self) -> Option<&EnvName> {
        self.secret_env.as_ref().or(self.environment.as_ref())
    }
}

fn default_injection() -> Injection {
    Injection::Bearer
}

/// A PostgreSQL database agents reach through Airlock's wire-protocol door.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Where agents connect, e.g. `127.0.0.1:6432`.
    pub listen: String,
    /// The real database: `postgres://USER@HOST:PORT/DATABASE` (no password: that is sealed).
    pub url: String,
    /// The environment the database belongs to.
    pub environment: EnvName,
    /// The sealed secret holding the database user's password (absent for trust auth).
    #[serde(default)]
    pub secret: Option<String>,
    /// TLS towards the database: `disable` (default) or `require` (verified).
    #[serde(default)]
    pub tls: DbTls,
    /// A PEM file of CA certificates for the database's TLS certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Certificate chain (PEM) agents see when they connect with TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Functions (besides the built-in list) known to have no side effects.
    #[serde(default)]
    pub safe_functions: Vec<String>,
    /// Operators (besides the built-in ones) known to have no side effects, e.g. pgvector's
    /// `<=>`, `<#>`, `<+>`.
    #[serde(default)]
    pub safe_operators: Vec<String>,
    /// Most concurrent agent sessions.
    #[serde(default = "default_db_sessions")]
    pub max_sessions: usize,
    /// Let row-changing writes inside a transaction block have their audit record committed
    /// before the COMMIT instead of before the write. The operator vouches that writes here have
    /// no effect outside their transaction beyond sequences: no triggers or rules calling out
    /// (dblink, http, files), no writable foreign tables. Off by default.
    #[serde(default)]
    pub audit_writes_at_commit: bool,
}

fn default_db_sessions() -> usize {
    256
}

/// Whether the connection to the database is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbTls {
    /// Plain TCP (a database on the same host or a private network).
    #[default]
    Disable,
    /// TLS with the server certificate verified; refuse to connect otherwise.
    Require,
}

/// The parts of a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// The database user.
    pub user: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
}

impl DbUrl {
    /// Parses `postgres://USER@HOST[:PORT]/DATABASE`; a password in the URL is refused.
    pub fn parse(url: &str) -> Result<DbUrl, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            // The URL is never repeated in errors: a mistyped one may hold a password.
            .ok_or_else(|| "url must start with postgres://".to_string())?;
        let (userinfo, rest) = rest.split_once('@').ok_or_else(|| {
            "url must name the database user: postgres://USER@HOST:PORT/DATABASE".to_string()
        })?;
        if userinfo.contains(':') {
            return Err("url must not hold a password; seal it with `airlock secret set` and name it in `secret`".into());
        }
        let (hostport, database) = rest.split_once('/').ok_or_else(|| {
            "url must name the database: postgres://USER@HOST:PORT/DATABASE".to_string()
        })?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("port `{p}` is not a number"))?,
            ),
            _ => (hostport, 5432),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if userinfo.is_empty()
            || host.is_empty()
            || database.is_empty()
            || database.contains(['/', '?'])
        {
            return Err("url is not of the form postgres://USER@HOST:PORT/DATABASE".to_string());
        }
        Ok(DbUrl {
            user: userinfo.to_string(),
            host: host.to_string(),
            port,
            database: database.to_string(),
        })
    }
}

/// Where operator policies live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `.cedar` files (relative to airlock.toml) added to the built-in pack.
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// A resource catalog entry: which environment a resource id (or `*` pattern) belongs to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    /// An exact id, or a pattern with `*` wildcards.
    pub id: String,
    /// The environment it belongs to.
    pub environment: EnvName,
    /// The kind of resource, e.g. `volume`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// Store settings.
    pub store: StoreConfig,
    /// Key settings.
    pub keys: KeyConfig,
    /// Token lifetime limits.
    pub tokens: TokenLimits,
    /// The environments, by name.
    pub environments: BTreeMap<EnvName, Environment>,
    /// The gateway's listeners and limits.
    pub gateway: GatewayConfig,
    /// The upstreams, by name.
    pub upstreams: BTreeMap<String, Upstream>,
    /// The PostgreSQL databases behind the wire-protocol door, by name.
    pub databases: BTreeMap<String, Database>,
    /// Operator policy files.
    pub policies: PolicyConfig,
    /// Resource catalog entries from the file (the store holds more).
    pub resources: Vec<ResourceEntry>,
    /// Approval behaviour.
    pub approvals: ApprovalConfig,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse(&text, path, &base)
    }

    /// Validates configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let err_at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| err_at(e.span(), e.message().to_string()))?;

        if raw.gateway.audit_linger.0 > Duration::from_secs(1) {
            return Err(err_at(
                None,
                "`gateway.audit_linger` must be at most 1s: longer would put more reads' audit records at risk than any throughput gain is worth".into(),
            ));
        }
        let mut environments = BTreeMap::new();
        for (name, env) in raw.environments {
            let span = env.span();
            if !(1..=2).contains(&env.get_ref().approvals_required) {
                return Err(err_at(
                    Some(span.clone()),
                    format!("environment `{name}`: `approvals_required` must be 1 or 2"),
                ));
            }
            let env_name =
                EnvName::new(&name).map_err(|e| err_at(Some(span.clone()), e.to_string()))?;
            environments.insert(env_name, env.into_inner());
        }
        if environments.is_empty() {
            return Err(err_at(
                None,
                "no environments defined; expected at least one `[environments.NAME]` table with `protected = true|false`".into(),
            ));
        }

        let mut tokens = TokenLimits::default();
        if let Some(t) = raw.tokens {
            let take = |v: Option<toml::Spanned<Ttl>>, default: Duration| {
                v.map(|s| (s.get_ref().0, Some(s.span())))
                    .unwrap_or((default, None))
            };
            let (agent_max, agent_max_span) = take(t.agent_max_ttl, tokens.agent_max_ttl);
            let (agent_default, agent_default_span) =
                take(t.agent_default_ttl, tokens.agent_default_ttl);
            let (human_max, human_max_span) = take(t.human_max_ttl, tokens.human_max_ttl);
            let (human_default, human_default_span) =
                take(t.human_default_ttl, tokens.human_default_ttl);
            if agent_max > AGENT_TTL_CEILING {
                return Err(err_at(
                    agent_max_span,
                    format!(
                        "`agent_max_ttl` is {}, above the 24h ceiling for agent and service tokens; expected at most `24h`",
                        airlock_core::fmt_duration(agent_max)
                    ),
                ));
            }
            if human_max > HUMAN_TTL_CEILING {
                return Err(err_at(
                    human_max_span,
                    format!(
                        "`human_max_ttl` is {}, above the 30-day ceiling for human tokens; expected at most `30d`",
                        airlock_core::fmt_duration(human_max)
                    ),
                ));
            }
            if agent_default > agent_max {
                return Err(err_at(
                    agent_default_span,
                    "`agent_default_ttl` is longer than `agent_max_ttl`; expected a default within the maximum".into(),
                ));
            }
            if human_default > human_max {
                return Err(err_at(
                    human_default_span,
                    "`human_default_ttl` is longer than `human_max_ttl`; expected a default within the maximum".into(),
                ));
            }
            tokens = TokenLimits {
                agent_default_ttl: agent_default,
                agent_max_ttl: agent_max,
                human_default_ttl: human_default,
                human_max_ttl: human_max,
            };
        }

        let mut upstreams = BTreeMap::new();
        for (name, up) in raw.upstreams {
            let span = up.span();
            let up = up.into_inner();
            let bad = |m: String| err_at(Some(span.clone()), format!("upstream `{name}`: {m}"));
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("upstream names use a-z, 0-9, `-` and `_`".into()));
            }
            if !(up.url.starts_with("http://") || up.url.starts_with("https://")) {
                return Err(bad(format!(
                    "url `{}` must start with http:// or https://",
                    up.url
                )));
            }
            match (&up.prefix, &up.listen) {
                (None, None) => {
                    return Err(bad(
                        "set `prefix` (on the shared listener) or `listen` (its own)".into(),
                    ))
                }
                (Some(p), _) if !p.starts_with('/') || p.len() < 2 => {
                    return Err(bad(format!(
                        "prefix `{p}` must start with `/` and name a path, e.g. `/cloud`"
                    )))
                }
                _ => {}
            }
            match (&up.environment, up.catalog) {
                (None, false) => {
                    return Err(bad(
                        "set `environment = \"NAME\"`, or `catalog = true` for an API shared by several environments".into(),
                    ))
                }
                (Some(_), true) => return Err(bad("`environment` and `catalog = true` exclude each other".into())),
                _ => {}
            }
            for env in up.environment.iter().chain(up.secret_env.iter()) {
                if !environments.contains_key(env) {
                    return Err(bad(format!("environment `{env}` is not configured")));
                }
            }
            if up.secret.is_some() && up.environment.is_none() && up.secret_env.is_none() {
                return Err(bad("a catalog upstream's secret needs `secret_env`: the environment it was sealed for".into()));
            }
            upstreams.insert(name, up);
        }
        let mut databases = BTreeMap::new();
        for (name, db) in raw.databases {
            let span = db.span();
            let db = db.into_inner();
            let bad = |m: String| err_at(Some(span.clone()), format!("database `{name}`: {m}"));
            if upstreams.contains_key(&name)
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "database names use a-z, 0-9, `-` and `_`, and differ from upstream names"
                        .into(),
                ));
            }
            DbUrl::parse(&db.url).map_err(&bad)?;
            if !environments.contains_key(&db.environment) {
                return Err(bad(format!(
                    "environment `{}` is not configured",
                    db.environment
                )));
            }
            if db.tls_cert.is_some() != db.tls_key.is_some() {
                return Err(bad("set both `tls_cert` and `tls_key`, or neither".into()));
            }
            if db.max_sessions == 0 {
                return Err(bad("`max_sessions` must be at least 1".into()));
            }
            // A relative socket path would depend on the directory `serve` starts in.
            if let Some(path) = db.listen.strip_prefix("unix:") {
                if !Path::new(path).is_absolute() {
                    return Err(bad(format!(
                        "`listen = \"unix:{path}\"` needs an absolute socket path, e.g. `unix:/run/airlock/.s.PGSQL.6432`"
                    )));
                }
            }
            databases.insert(name, db);
        }
        let mut resources = Vec::new();
        for r in raw.resources {
            let span = r.span();
            let r = r.into_inner();
            if !environments.contains_key(&r.environment) {
                return Err(err_at(
                    Some(span),
                    format!(
                        "resource `{}`: environment `{}` is not configured",
                        r.id, r.environment
                    ),
                ));
            }
            resources.push(r);
        }

        Ok(Config {
            base_dir: base_dir.to_path_buf(),
            store: raw.store,
            keys: raw.keys,
            tokens,
            environments,
            gateway: raw.gateway,
            upstreams,
            databases,
            policies: raw.policies,
            resources,
            approvals: raw.approvals,
        })
    }

    /// The store file, resolved against the configuration's directory.
    pub fn store_path(&self) -> PathBuf {
        self.base_dir.join(&self.store.path)
    }

    /// The key file, resolved against the configuration's directory.
    pub fn key_path(&self) -> PathBuf {
        self.base_dir.join(&self.keys.file)
    }

    /// A path from the configuration, resolved against its directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.base_dir.join(p)
    }

    /// The environment called `name`, if configured.
    pub fn environment(&self, name: &EnvName) -> Option<&Environment> {
        self.environments.get(name)
    }

    /// The configured environment names, comma-separated, for error messages.
    pub fn environment_names(&self) -> String {
        self.environments
            .keys()
            .map(EnvName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(0)
        + 1;
    (line, column)
}

/// The commented example `airlock init` writes.
pub const EXAMPLE: &str = r#"# airlock.toml — Airlock's configuration.
# Unknown keys are refused, so a typo never silently becomes a default.

# Where Airlock keeps identities, token hashes, sealed secrets and the audit log.
# A relative path is resolved against this file's directory. SQLite, created on first use.
[store]
path = "airlock.db"

# The key that seals upstream secrets. It is NOT kept in the store: a store copied
# without this file reveals nothing. AIRLOCK_MASTER_KEY (64 hex characters) overrides it.
[keys]
file = "airlock.key"

# Token lifetimes. Agent and service tokens can never live longer than 24h; this may only
# lower that. Human tokens have a cap too (at most 30d): nothing is unlimited.
[tokens]
agent_default_ttl = "1h"
agent_max_ttl = "24h"
human_default_ttl = "8h"
human_max_ttl = "7d"

# Environments. A token is issued for environments by name, and the gateway refuses any
# operation on a resource in another environment. In a protected environment, destructive
# and privilege operations wait for a human's out-of-band approval.
[environments.development]
protected = false

[environments.staging]
protected = false

[environments.production]
protected = true
description = "customer data; destructive operations need a human"

# APIs and databases go behind the gateway (`airlock serve`); see docs/gateway.md and
# docs/postgres.md. A PostgreSQL database, for example, with its password sealed by
# `airlock secret set bookings-db --env production < password.txt`:
#
# [databases.bookings]
# listen = "127.0.0.1:6432"
# url = "postgres://app@127.0.0.1:5432/bookings"
# environment = "production"
# secret = "bookings-db"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("airlock.toml"), Path::new("/etc/airlock"))
    }

    #[test]
    fn the_example_written_by_init_is_valid() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.environments.len(), 3);
        assert!(c.environments[&EnvName::new("production").unwrap()].protected);
        assert_eq!(c.tokens, TokenLimits::default());
        assert_eq!(c.store_path(), PathBuf::from("/etc/airlock/airlock.db"));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line_and_the_expected_keys() {
        let text = "[environments.prod]\nprotected = true\nprotectd = false\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("airlock.toml:3:"), "{e}");
        assert!(e.contains("unknown field `protectd`"), "{e}");
        assert!(e.contains("protected"), "{e}");
    }

    #[test]
    fn a_database_entry_is_checked_where_it_is_written() {
        let base = "[environments.production]\nprotected = true\n[databases.bookings]\nlisten = \"127.0.0.1:6432\"\nenvironment = \"production\"\n";
        let ok = parse(&format!(
            "{base}url = \"postgres://app@db:5433/bookings\"\n"
        ))
        .unwrap();
        let url = DbUrl::parse(&ok.databases["bookings"].url).unwrap();
        assert_eq!(
            (
                url.user.as_str(),
                url.host.as_str(),
                url.port,
                url.database.as_str()
            ),
            ("app", "db", 5433, "bookings")
        );
        for (url, expect) in [
            (
                "postgres://app:hunter2@db/bookings",
                "must not hold a password",
            ),
            (
                "mysql://app:hunter2@db/bookings",
                "must start with postgres://",
            ),
            ("postgres://db/bookings", "must name the database user"),
            ("postgres://app@db", "must name the database"),
        ] {
            let e = parse(&format!("{base}url = \"{url}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("airlock.toml:3:"), "{e}");
            assert!(e.contains(expect), "{url}: {e}");
            assert!(
                !e.contains("hunter2"),
                "the error repeats the password: {e}"
            );
        }
        let e = parse(&format!(
            "{base}url = \"postgres://app@db/b\"\ntls_cert = \"c.pem\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`tls_cert` and `tls_key`"), "{e}");
    }

    #[test]
    fn a_bad_value_is_refused_with_its_line() {
        let text = "[environments.prod]\nprotected = \"yes\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("airlock.toml:2:"), "{e}");
        assert!(e.contains("boolean"), "{e}");
    }

    #[test]
    fn config_may_lower_the_agent_ttl_cap_but_never_raise_it() {
        let ok = "[tokens]\nagent_max_ttl = \"2h\"\n[environments.x]\nprotected = false\n";
        assert_eq!(
            parse(ok).unwrap().tokens.agent_max_ttl,
            Duration::from_secs(7200)
        );
        let bad = "[tokens]\nagent_max_ttl = \"48h\"\n[environments.x]\nprotected = false\n";
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.starts_with("airlock.toml:2:"), "{e}");
        assert!(e.contains("24h ceiling"), "{e}");
    }

    #[test]
    fn a_bad_duration_says_what_a_good_one_looks_like() {
        let bad =
            "[tokens]\nagent_default_ttl = \"forever\"\n[environments.x]\nprotected = false\n";
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("`forever`") && e.contains("`1h`"), "{e}");
    }

    #[test]
    fn an_environment_name_that_is_not_a_name_is_refused() {
        let e = parse("[environments.Prod]\nprotected = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid environment name `Prod`"), "{e}");
    }

    #[test]
    fn a_config_without_environments_is_refused() {
        let e = parse("[store]\npath = \"x.db\"\n").unwrap_err().to_string();
        assert!(e.contains("environments"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }
    }
}
