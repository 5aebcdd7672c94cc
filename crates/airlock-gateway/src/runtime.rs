//! Everything a reload replaces at once: upstreams with their rules and secrets, the policy
//! engine, the resource catalog. Built completely before it is swapped in, so a bad new
//! configuration never serves a single request.

use airlock_authority::Authority;
use airlock_classify::RuleSet;
use airlock_config::{Config, Injection};
use airlock_core::{EnvName, OpClass};
use airlock_policy::{Engine, PolicyFile};
use airlock_seal::MasterKey;
use http::HeaderValue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a configuration could not be turned into a runtime.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// airlock.toml is invalid.
    #[error(transparent)]
    Config(#[from] airlock_config::ConfigError),
    /// A rule file is invalid.
    #[error("upstream `{upstream}`: {source}")]
    Rules {
        /// The upstream.
        upstream: String,
        /// What is wrong with its rules.
        source: airlock_classify::RuleError,
    },
    /// A policy file is unreadable or invalid.
    #[error(transparent)]
    Policy(#[from] airlock_policy::PolicyError),
    /// A CA file could not be read or holds no certificate.
    #[error("upstream `{upstream}`: cannot use CA file `{path}`: {message}")]
    Ca {
        /// The upstream.
        upstream: String,
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// An environment's notification settings are unusable.
    #[error("environment `{environment}` notify: {message}")]
    Notify {
        /// The environment.
        environment: String,
        /// What is wrong.
        message: String,
    },
    /// A policy file could not be read.
    #[error("cannot read policy file `{path}`: {message}")]
    PolicyRead {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// An upstream URL does not parse.
    #[error("upstream `{upstream}`: invalid url `{url}`")]
    Url {
        /// The upstream.
        upstream: String,
        /// The URL.
        url: String,
    },
    /// The sealed secret an upstream needs is missing or does not open.
    #[error("upstream `{upstream}`: {source}")]
    Secret {
        /// The upstream.
        upstream: String,
        /// Why.
        source: airlock_authority::SecretError,
    },
    /// Upstreams have secrets but the master key is unavailable.
    #[error(
        "upstream `{upstream}` injects a sealed secret but the master key is unavailable: {source}"
    )]
    Key {
        /// The upstream.
        upstream: String,
        /// Why.
        source: airlock_seal::KeyError,
    },
    /// A database entry cannot be served (URL, TLS files).
    #[error("database `{database}`: {message}")]
    Database {
        /// The database's name.
        database: String,
        /// What is wrong.
        message: String,
    },
    /// The resource catalog could not be read.
    #[error(transparent)]
    Store(#[from] airlock_store::StoreError),
}

/// One upstream, ready to serve.
pub struct UpstreamRt {
    /// Its name in airlock.toml.
    pub name: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host:port`.
    pub authority: String,
    /// Path prefix of the upstream URL, without a trailing slash.
    pub base_path: String,
    /// Path prefix on the shared listener, if any.
    pub prefix: Option<String>,
    /// Fixed environment, or None for a catalog upstream.
    pub environment: Option<EnvName>,
    /// The classification rules.
    pub rules: RuleSet,
    /// The header carrying the injected secret and its value (marked sensitive).
    pub secret: Option<(http::HeaderName, HeaderValue)>,
    /// For a plain-HTTP upstream, how the cores' own connection pools reach it
    /// ([`crate::upstream_pool`]); TLS upstreams use the shared client.
    pub plain_http: Option<PlainHttp>,
}

/// How the cores' own connection pools reach a plain-HTTP upstream.
#[derive(Debug, Clone)]
pub struct PlainHttp {
    /// `host:port` to connect to (never a user-info part of the URL): the pools' key.
    pub connect_to: Arc<str>,
    /// The same as a URI, for the connector that dials it.
    pub target: http::Uri,
    /// The Host header sent: the URL's host, and its port unless it is 80 (as hyper-util's
    /// client writes it).
    pub host: HeaderValue,
}

impl std::fmt::Debug for UpstreamRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRt")
            .field("name", &self.name)
            .field("authority", &self.authority)
            .field("secret", &self.secret.as_ref().map(|(h, _)| h.as_str()))
            .finish()
    }
}

/// One PostgreSQL database behind the wire-protocol door, ready to serve.
pub struct DatabaseRt {
    /// What the decision path sees: the database's name and its environment. Its rule set is
    /// empty; statements are classified by [`airlock_sql`].
    pub upstream: Arc<UpstreamRt>,
    /// Where the real database is and who Airlock logs in as.
    pub url: airlock_config::DbUrl,
    /// The database user's password, opened from the sealed secret (empty: trust auth).
    pub password: airlock_core::Secret<Vec<u8>>,
    /// TLS towards the database, when required.
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// TLS offered to agents, when configured.
    pub client_tls: Option<tokio_rustls::TlsAcceptor>,
    /// The statement classifier and its cache (per database: safe functions differ).
    pub classifier: Arc<airlock_sql::Classifier>,
    /// Whether writes inside a transaction block may be audited durably at COMMIT.
    pub audit_writes_at_commit: bool,
    /// What an open session cannot follow across a reload: the server and login, TLS towards
    /// it, and the safe functions its prepared statements were classified with. A reload that
    /// changes it ends the database's sessions.
    pub session_basis: String,
}

impl std::fmt::Debug for DatabaseRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseRt")
            .field("name", &self.upstream.name)
            .field("url", &self.url)
            .finish()
    }
}

/// One environment's notification targets.
#[derive(Clone)]
pub struct Notify {
    /// Slack and webhook targets (credentials opened from sealed secrets).
    pub targets: Vec<airlock_approval::notify::Target>,
    /// The console link for notices.
    pub console_url: String,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|t| t.display_url())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Which environment a resource id belongs to.
#[derive(Debug, Default)]
pub struct Catalog {
    exact: HashMap<String, EnvName>,
    patterns: Vec<(String, EnvName)>,
}

impl Catalog {
    fn add(&mut self, pattern: &str, env: EnvName) {
        if pattern.contains('*') {
            self.patterns.push((pattern.to_string(), env));
        } else {
            self.exact.insert(pattern.to_string(), env);
        }
    }

    /// The environment of `id`: an exact entry, else the most specific (longest) matching
    /// pattern; None when nobody declared it.
    pub fn lookup(&self, id: &str) -> Option<&EnvName> {
        if let Some(e) = self.exact.get(id) {
            return Some(e);
        }
        self.patterns
            .iter()
            .filter(|(p, _)| glob_match(p, id))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, e)| e)
    }
}

/// `*` matches any run of characters (including none); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The compiled state the doors read on every request.
pub struct Runtime {
    /// The configuration it was built from.
    pub config: Config,
    /// Upstreams by name.
    pub upstreams: HashMap<String, Arc<UpstreamRt>>,
    /// PostgreSQL databases by name.
    pub databases: HashMap<String, Arc<DatabaseRt>>,
    /// Shared-listener prefixes, longest first.
    pub prefixes: Vec<(String, Arc<UpstreamRt>)>,
    /// The policy engine.
    pub policy: Engine,
    /// The resource catalog (config entries and store entries).
    pub catalog: Catalog,
    /// Files whose change triggers a reload.
    pub watched: Vec<PathBuf>,
    /// Where approval requests are announced, by environment.
    pub notify: HashMap<EnvName, Notify>,
    /// The pooled upstream client (keep-alive, HTTP/1.1 and HTTP/2, TLS by rustls with the public
    /// roots plus any configured CA files). Rebuilt on reload, so a new CA file takes effect.
    /// Used off the cores; see [`Runtime::client`].
    pub client: crate::UpstreamClient,
    /// One client, with its own pool, per core: a pooled connection is driven by a task on the
    /// runtime that opened it, so sharing one pool across cores would hand every request to
    /// another thread.
    pub core_clients: Vec<crate::UpstreamClient>,
    /// How the cores' own pools open plain-HTTP connections: hyper-util's connector (resolution
    /// off the runtime, the next address tried after 300 ms, no Nagle delay), as the shared
    /// client uses.
    pub connector: hyper_util::client::legacy::connect::HttpConnector,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("upstreams", &self.upstreams.len())
            .finish()
    }
}

impl Runtime {
    /// Builds a runtime from the configuration file, the store (catalog, sealed secrets) and the key.
    pub fn load(config_path: &Path, authority: &Authority) -> Result<Runtime, LoadError> {
        Runtime::load_with(config_path, authority, true)
    }

    /// Builds a runtime without opening sealed secrets: for `policy check` and `explain`, which
    /// must work without the master key and never need an upstream credential.
    pub fn load_for_checks(
        config_path: &Path,
        authority: &Authority,
    ) -> Result<Runtime, LoadError> {
        Runtime::load_with(config_path, authority, false)
    }

    /// [`Runtime::load_for_checks`], and every secret the configuration names is sealed for its
    /// environment, as `serve` will need it: `policy check` passes only what `serve` accepts.
    pub fn load_for_policy_check(
        config_path: &Path,
        authority: &Authority,
    ) -> Result<Runtime, LoadError> {
        let rt = Runtime::load_for_checks(config_path, authority)?;
        let mut sealed = None;
        let named = rt
            .config
            .upstreams
            .iter()
            .filter_map(|(n, u)| Some((n, u.secret.as_ref()?, u.secret_environment()?)))
            .chain(
                rt.config
                    .databases
                    .iter()
                    .filter_map(|(n, d)| Some((n, d.secret.as_ref()?, &d.environment))),
            );
        for (door, secret, env) in named {
            let fail = |source| LoadError::Secret {
                upstream: door.clone(),
                source,
            };
            let sealed = match &mut sealed {
                Some(list) => list,
                // Read once, when the first named secret needs it.
                None => sealed.insert(authority.store().secrets().map_err(|e| fail(e.into()))?),
            };
            if !sealed
                .iter()
                .any(|s| &s.name == secret && &s.environment == env)
            {
                return Err(fail(airlock_authority::SecretError::NotFound {
                    name: secret.clone(),
                    env: env.clone(),
                }));
            }
        }
        Ok(rt)
    }

    fn load_with(
        config_path: &Path,
        authority: &Authority,
        open_secrets: bool,
    ) -> Result<Runtime, LoadError> {
        let config = Config::load(config_path)?;
        let mut watched = vec![config_path.to_path_buf()];
        let mut key: Option<MasterKey> = None;
        let mut upstreams = HashMap::new();
        let mut actions: Vec<(String, OpClass)> = Vec::new();
        for (name, up) in &config.upstreams {
            let rules_path = config.resolve(&up.rules);
            watched.push(rules_path.clone());
            let rules = RuleSet::load(&rules_path).map_err(|source| LoadError::Rules {
                upstream: name.clone(),
                source,
            })?;
            actions.extend(rules.actions());
            let uri: http::Uri = up.url.parse().map_err(|_| LoadError::Url {
                upstream: name.clone(),
                url: up.url.clone(),
            })?;
            let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
                return Err(LoadError::Url {
                    upstream: name.clone(),
                    url: up.url.clone(),
                });
            };
            let plain_http = match scheme {
                "http" => {
                    let port = auth.port_u16().unwrap_or(80);
                    let host = match port {
                        80 => auth.host().to_string(),
                        _ => format!("{}:{port}", auth.host()),
                    };
                    let connect_to = format!("{}:{port}", auth.host());
                    let (Ok(host), Ok(target)) = (
                        HeaderValue::from_str(&host),
                        http::Uri::try_from(format!("http://{connect_to}")),
                    ) else {
                        return Err(LoadError::Url {
                            upstream: name.clone(),
                            url: up.url.clone(),
                        });
                    };
                    Some(PlainHttp {
                        connect_to: Arc::from(connect_to),
                        target,
                        host,
                    })
                }
                _ => None,
            };
            let secret = match &up.secret {
                None => None,
                Some(_) if !open_secrets => None,
                Some(secret_name) => {
                    if key.is_none() {
                        key = Some(MasterKey::load(&config.key_path()).map_err(|source| {
                            LoadError::Key {
                                upstream: name.clone(),
                                source,
                            }
                        })?);
                    }
                    let Some(k) = key.as_ref() else {
                        continue;
                    };
                    let env = up
                        .secret_environment()
                        .cloned()
                        .ok_or_else(|| LoadError::Url {
                            upstream: name.clone(),
                            url: up.url.clone(),
                        })?;
                    let value = authority
                        .open_secret(k, secret_name, &env)
                        .map_err(|source| LoadError::Secret {
                            upstream: name.clone(),
                            source,
                        })?;
                    let (header, text) = match &up.inject {
                        Injection::Bearer => (
                            http::header::AUTHORIZATION,
                            [b"Bearer ".as_slice(), value.expose()].concat(),
                        ),
                        Injection::Basic => (
                            http::header::AUTHORIZATION,
                            [b"Basic ".as_slice(), value.expose()].concat(),
                        ),
                        Injection::Header(h) => (
                            http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                                LoadError::Url {
                                    upstream: name.clone(),
                                    url: format!("header `{h}`"),
                                }
                            })?,
                            value.expose().clone(),
                        ),
                    };
                    let mut hv = HeaderValue::from_bytes(&text).map_err(|_| LoadError::Secret {
                        upstream: name.clone(),
                        source: airlock_authority::SecretError::Empty,
                    })?;
                    // Sensitive: hyper's HPACK never indexes it and Debug never prints it.
                    hv.set_sensitive(true);
                    Some((header, hv))
                }
            };
            upstreams.insert(
                name.clone(),
                Arc::new(UpstreamRt {
                    name: name.clone(),
                    scheme: scheme.to_string(),
                    authority: auth.to_string(),
                    base_path: uri.path().trim_end_matches('/').to_string(),
                    prefix: up.prefix.clone(),
                    environment: up.environment.clone(),
                    rules,
                    secret,
                    plain_http,
                }),
            );
        }
        let mut prefixes: Vec<(String, Arc<UpstreamRt>)> = upstreams
            .values()
            .filter_map(|u| {
                u.prefix
                    .clone()
                    .map(|p| (p.trim_end_matches('/').to_string(), Arc::clone(u)))
            })
            .collect();
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));

        let mut files = Vec::new();
        for f in &config.policies.files {
            let path = config.resolve(f);
            watched.push(path.clone());
            let text = std::fs::read_to_string(&path).map_err(|e| LoadError::PolicyRead {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            files.push(PolicyFile {
                origin: f.display().to_string(),
                text,
            });
        }
        let policy = Engine::new(&actions, &files)?;

        let mut notify = HashMap::new();
        for (env_name, env) in &config.environments {
            let Some(n) = &env.notify else { continue };
            let bad = |m: String| LoadError::Notify {
                environment: env_name.to_string(),
                message: m,
            };
            let mut targets = Vec::new();
            if open_secrets {
                if key.is_none() && (n.slack_secret.is_some() || n.webhook_secret.is_some()) {
                    key =
                        Some(MasterKey::load(&config.key_path()).map_err(|e| bad(e.to_string()))?);
                }
                if let (Some(name), Some(k)) = (&n.slack_secret, key.as_ref()) {
                    let v = authority
                        .open_secret(k, name, env_name)
                        .map_err(|e| bad(e.to_string()))?;
                    let url = String::from_utf8(v.expose().clone())
                        .map_err(|_| bad(format!("secret `{name}` is not a URL")))?;
                    targets.push(airlock_approval::notify::Target::Slack {
                        url: airlock_core::Secret::new(url),
                    });
                }
                if let Some(url) = &n.webhook_url {
                    let secret = match (&n.webhook_secret, key.as_ref()) {
                        (Some(name), Some(k)) => authority.open_secret(k, name, env_name).map_err(|e| bad(e.to_string()))?,
                        _ => return Err(bad("`webhook_url` needs `webhook_secret`, the sealed HMAC key receivers verify with".into())),
                    };
                    targets.push(airlock_approval::notify::Target::Webhook {
                        url: url.clone(),
                        secret,
                    });
                }
            }
            notify.insert(
                env_name.clone(),
                Notify {
                    targets,
                    console_url: n
                        .console_url
                        .clone()
                        .unwrap_or_else(|| format!("http://{}/", config.gateway.admin_listen)),
                },
            );
        }

        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for (name, up) in &config.upstreams {
            let Some(ca) = &up.ca_file else { continue };
            let path = config.resolve(ca);
            watched.push(path.clone());
            let ca_err = |message: String| LoadError::Ca {
                upstream: name.clone(),
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(&path).map_err(|e| ca_err(e.to_string()))?;
            use rustls::pki_types::pem::PemObject;
            let mut added = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(ca_err("no PEM certificate found".into()));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Ca {
            upstream: String::new(),
            path: String::new(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        // Requests and responses are small and latency-bound: no Nagle delay on upstream sockets,
        // as on the agents' side.
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp.clone());
        let build = || {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(std::time::Duration::from_secs(90))
                .build(connector.clone())
        };
        let client = build();
        let core_clients = (0..crate::cores::count()).map(|_| build()).collect();

        let mut databases = HashMap::new();
        for (name, db) in &config.databases {
            let rt = load_database(&config, name, db, authority, open_secrets, &mut key, &roots)?;
            watched.extend(
                [&db.ca_file, &db.tls_cert, &db.tls_key]
                    .into_iter()
                    .flatten()
                    .map(|p| config.resolve(p)),
            );
            databases.insert(name.clone(), Arc::new(rt));
        }

        let mut catalog = Catalog::default();
        for r in &config.resources {
            catalog.add(&r.id, r.environment.clone());
        }
        for r in authority.store().resources()? {
            // An entry whose environment was removed from the config cannot be trusted: leave it
            // out, so the resource counts as unknown (most protected).
            if config.environment(&r.environment).is_some() {
                catalog.add(&r.pattern, r.environment);
            }
        }
        Ok(Runtime {
            config,
            upstreams,
            databases,
            prefixes,
            policy,
            catalog,
            watched,
            client,
            core_clients,
            connector: tcp,
            notify,
        })
    }

    /// The upstream client for code running on this thread: its core's own, or the shared one.
    pub fn client(&self) -> &crate::UpstreamClient {
        crate::cores::current()
            .and_then(|i| self.core_clients.get(i))
            .unwrap_or(&self.client)
    }

    /// Whether `env` is protected; unknown environments are.
    pub fn protected(&self, env: Option<&EnvName>) -> bool {
        env.and_then(|e| self.config.environment(e))
            .is_none_or(|e| e.protected)
    }
}

/// Reads PEM certificates from `path`.
fn read_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn load_database(
    config: &Config,
    name: &str,
    db: &airlock_config::Database,
    authority: &Authority,
    open_secrets: bool,
    key: &mut Option<MasterKey>,
    public_roots: &rustls::RootCertStore,
) -> Result<DatabaseRt, LoadError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |message: String| LoadError::Database {
        database: name.to_string(),
        message,
    };
    let url = airlock_config::DbUrl::parse(&db.url).map_err(&bad)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let password = match &db.secret {
        Some(secret) if open_secrets => {
            if key.is_none() {
                *key =
                    Some(
                        MasterKey::load(&config.key_path()).map_err(|source| LoadError::Key {
                            upstream: name.to_string(),
                            source,
                        })?,
                    );
            }
            match key.as_ref() {
                Some(k) => authority
                    .open_secret(k, secret, &db.environment)
                    .map_err(|source| LoadError::Secret {
                        upstream: name.to_string(),
                        source,
                    })?,
                None => airlock_core::Secret::new(Vec::new()),
            }
        }
        _ => airlock_core::Secret::new(Vec::new()),
    };
    let tls = match db.tls {
        airlock_config::DbTls::Disable => None,
        airlock_config::DbTls::Require => {
            let mut roots = public_roots.clone();
            if let Some(ca) = &db.ca_file {
                for c in
                    read_certs(&config.resolve(ca)).map_err(|m| bad(format!("ca_file: {m}")))?
                {
                    roots.add(c).map_err(|e| bad(format!("ca_file: {e}")))?;
                }
            }
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        }
    };
    let client_tls = match (&db.tls_cert, &db.tls_key) {
        (Some(cert), Some(keyfile)) => {
            let certs =
                read_certs(&config.resolve(cert)).map_err(|m| bad(format!("tls_cert: {m}")))?;
            let pk = rustls::pki_types::PrivateKeyDer::from_pem_file(config.resolve(keyfile))
                .map_err(|e| bad(format!("tls_key: {e}")))?;
            let cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(certs, pk)
                .map_err(|e| bad(format!("tls_cert/tls_key: {e}")))?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
        }
        _ => None,
    };
    let rules =
        RuleSet::from_toml("", Path::new("(database)")).map_err(|source| LoadError::Rules {
            upstream: name.to_string(),
            source,
        })?;
    let sql = airlock_sql::SqlConfig {
        safe_functions: db.safe_functions.clone(),
        safe_operators: db.safe_operators.clone(),
        // The door binds approvals to the exact text's SHA-256 and audits command tags; it
        // never uses pg_query's fingerprint, so a cold classification skips it.
        fingerprints: false,
        ..airlock_sql::SqlConfig::default()
    };
    Ok(DatabaseRt {
        upstream: Arc::new(UpstreamRt {
            name: name.to_string(),
            scheme: "postgres".into(),
            authority: format!("{}:{}", url.host, url.port),
            base_path: String::new(),
            prefix: None,
            environment: Some(db.environment.clone()),
            rules,
            secret: None,
            plain_http: None,
        }),
        url,
        password,
        tls,
        client_tls,
        classifier: Arc::new(airlock_sql::Classifier::new(sql, 4096)),
        audit_writes_at_commit: db.audit_writes_at_commit,
        session_basis: {
            let mut safe = db.safe_functions.clone();
            safe.sort();
            let mut safe_ops = db.safe_operators.clone();
            safe_ops.sort();
            format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                db.url, db.secret, db.tls, db.ca_file, safe, safe_ops
            )
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_the_way_operators_expect() {
        assert!(glob_match("vol-prod-*", "vol-prod-1"));
        assert!(!glob_match("vol-prod-*", "vol-stg-1"));
        assert!(glob_match("*-prod-*", "vol-prod-1"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("vol", "vol-1"));
    }

    #[test]
    fn the_most_specific_catalog_pattern_wins() {
        let mut c = Catalog::default();
        c.add("vol-*", EnvName::new("staging").unwrap());
        c.add("vol-prod-*", EnvName::new("production").unwrap());
        c.add("vol-prod-legacy", EnvName::new("staging").unwrap());
        assert_eq!(c.lookup("vol-prod-9").unwrap().as_str(), "production");
        assert_eq!(c.lookup("vol-9").unwrap().as_str(), "staging");
        assert_eq!(c.lookup("vol-prod-legacy").unwrap().as_str(), "staging");
        assert!(c.lookup("db-1").is_none());
    }
}
