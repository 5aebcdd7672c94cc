//! A small "cloud volumes" GraphQL API, the kind the incident's agent called: one endpoint that
//! serves staging and production volumes alike, guarded by nothing but one admin secret.
//! Test-support code (and `airlock demo`'s stage): it answers `volumes`, `volume(id:)`,
//! `volumeCreate(input: {projectId:, size:})` and `volumeDelete(volumeId:)`.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Id, e.g. `vol-prod-bookings`.
    pub id: String,
    /// Which environment it serves (the API itself does not care).
    pub environment: String,
    /// Size in GiB.
    pub size: u64,
}

/// The running fake API.
#[derive(Debug, Clone)]
pub struct FakeCloud {
    /// Where it listens.
    pub addr: SocketAddr,
    volumes: Arc<Mutex<BTreeMap<String, Volume>>>,
    seen_auth: Arc<Mutex<Vec<String>>>,
}

impl FakeCloud {
    /// Starts on 127.0.0.1 (an ephemeral port) with two volumes per environment, accepting only
    /// `Authorization: Bearer {secret}`.
    pub async fn start(secret: &str) -> std::io::Result<FakeCloud> {
        Self::start_with(secret, None).await
    }

    /// Like [`FakeCloud::start`], but serving HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with a fresh
    /// self-signed certificate for `localhost`; returns the certificate's PEM for the client's
    /// trust store.
    pub async fn start_tls(secret: &str) -> std::io::Result<(FakeCloud, String)> {
        let io = |e: String| std::io::Error::other(e);
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .map_err(|e| io(e.to_string()))?;
        let pem = ck.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| io(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(|e| io(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cloud =
            Self::start_with(secret, Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await?;
        Ok((cloud, pem))
    }

    async fn start_with(
        secret: &str,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<FakeCloud> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut vols = BTreeMap::new();
        for (id, env, size) in [
            ("vol-stg-1", "staging", 10),
            ("vol-stg-2", "staging", 10),
            ("vol-prod-bookings", "production", 500),
            ("vol-prod-backups", "production", 2000),
        ] {
            vols.insert(
                id.to_string(),
                Volume {
                    id: id.to_string(),
                    environment: env.to_string(),
                    size,
                },
            );
        }
        let cloud = FakeCloud {
            addr,
            volumes: Arc::new(Mutex::new(vols)),
            seen_auth: Arc::new(Mutex::new(Vec::new())),
        };
        let expected = format!("Bearer {secret}");
        let c = cloud.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let c = c.clone();
                let expected = expected.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let c = c.clone();
                    let expected = expected.clone();
                    async move { Ok::<_, Infallible>(c.handle(req, &expected).await) }
                });
                let tls = tls.clone();
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(cloud)
    }

    /// Whether a volume still exists.
    pub fn has(&self, id: &str) -> bool {
        self.volumes
            .lock()
            .map(|v| v.contains_key(id))
            .unwrap_or(false)
    }

    /// How many requests arrived with the right admin secret (proof the gateway injected it).
    pub fn authorized_requests(&self) -> usize {
        self.seen_auth
            .lock()
            .map(|v| v.iter().filter(|a| *a == "ok").count())
            .unwrap_or(0)
    }

    async fn handle(&self, req: Request<Incoming>, expected: &str) -> Response<Full<Bytes>> {
        // A slow upstream on request, to test that shutdown drains requests in flight.
        if let Some(ms) = req
            .headers()
            .get("x-test-delay-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms.min(10_000))).await;
        }
        let auth_ok = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(expected);
        if let Ok(mut s) = self.seen_auth.lock() {
            s.push(if auth_ok { "ok".into() } else { "bad".into() });
        }
        if req.uri().path() == "/health" {
            return json(StatusCode::OK, serde_json::json!({"status": "ok"}));
        }
        if !auth_ok {
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"errors": [{"message": "invalid or missing API token"}]}),
            );
        }
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"errors": [{"message": "bad body"}]}),
                )
            }
        };
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let query = doc["query"].as_str().unwrap_or("").to_string();
        let vars = doc["variables"].clone();
        let mut data = serde_json::Map::new();
        let Ok(mut vols) = self.volumes.lock() else {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"errors": [{"message": "poisoned"}]}),
            );
        };
        let view = |v: &Volume| serde_json::json!({"id": v.id, "environment": v.environment, "size": v.size});
        if let Some(id) = arg(&query, "volumeDelete", "volumeId", &vars) {
            data.insert(
                "volumeDelete".into(),
                serde_json::Value::Bool(vols.remove(&id).is_some()),
            );
        } else if let Some(project) = arg(&query, "volumeCreate", "projectId", &vars) {
            let id = format!("vol-{project}-{}", vols.len() + 1);
            let v = Volume {
                id: id.clone(),
                environment: project,
                size: 1,
            };
            data.insert("volumeCreate".into(), view(&v));
            vols.insert(id, v);
        } else if let Some(id) = arg(&query, "volume", "id", &vars) {
            data.insert(
                "volume".into(),
                vols.get(&id).map(view).unwrap_or(serde_json::Value::Null),
            );
        } else if query.contains("volumes") {
            data.insert("volumes".into(), vols.values().map(view).collect());
        }
        json(StatusCode::OK, serde_json::json!({ "data": data }))
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Finds `field( ... name: "literal" | $var ...)` in a query. A fake API's parser: the gateway's
/// classifier is the real one.
fn arg(query: &str, field: &str, name: &str, vars: &serde_json::Value) -> Option<String> {
    let mut search = query;
    while let Some(pos) = search.find(field) {
        let after = &search[pos + field.len()..];
        let before_ok = pos == 0 || !search.as_bytes()[pos - 1].is_ascii_alphanumeric();
        let trimmed = after.trim_start();
        if before_ok && trimmed.starts_with('(') {
            let args = &trimmed[1..trimmed.find(')').unwrap_or(trimmed.len())];
            let key = format!("{name}:");
            let at = args.find(&key)?;
            let value = args[at + key.len()..].trim_start();
            if let Some(rest) = value.strip_prefix('"') {
                return rest.split('"').next().map(str::to_string);
            }
            if let Some(var) = value.strip_prefix('$') {
                let var: String = var
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                return vars[var].as_str().map(str::to_string);
            }
            return None;
        }
        search = after;
    }
    None
}
