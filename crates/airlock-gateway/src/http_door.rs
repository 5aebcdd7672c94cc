//! The HTTP/GraphQL door: a reverse proxy that decides every request before forwarding it.

use crate::decision::{DoorRequest, Verdict};
use crate::runtime::{Runtime, UpstreamRt};
use crate::Shared;
use airlock_classify::HttpRequest;
use airlock_core::Outcome;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// The body type the gateway sends both ways.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A complete body, for answers the gateway writes itself.
pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A JSON error answer. Never carries a secret, a stack trace, or the upstream's internals.
fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    hint: &str,
    extra: serde_json::Value,
) -> Response<Body> {
    let mut body = serde_json::json!({ "error": code, "message": message, "hint": hint });
    if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Headers some frameworks (Symfony, IIS, some Java stacks) route on instead of the request line.
/// Header names rather than strings: removing by a string parses it first, on every request.
const REWRITE_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-path"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-envoy-original-path"),
];

/// Whether `name` is a routing header spelt with `_` (`X_Original_URL`), which the upstream's
/// framework reads as the real one.
fn rewrite_alias(name: &HeaderName) -> bool {
    airlock_classify::cgi_alias(name, &REWRITE_HEADERS)
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn bearer(headers: &HeaderMap) -> Option<String> {
    bearer_in(
        headers,
        &[header::AUTHORIZATION, header::PROXY_AUTHORIZATION],
    )
}

/// The bearer token in the first of `names` that carries one (scheme matched case-insensitively).
pub(crate) fn bearer_in(headers: &HeaderMap, names: &[header::HeaderName]) -> Option<String> {
    for name in names {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
                return Some(v[7..].trim().to_string());
            }
        }
    }
    None
}

fn refusal(v: &Verdict) -> Response<Body> {
    let status = if v.unauthenticated {
        StatusCode::UNAUTHORIZED
    } else if v.code == "audit_unavailable" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::FORBIDDEN
    };
    let ops: Vec<serde_json::Value> = v
        .operations
        .iter()
        .map(|o| {
            serde_json::json!({
                "action": o.action, "class": o.class, "resource": o.resource,
                "environment": o.environment, "decision": o.decision.outcome, "code": o.decision.code,
            })
        })
        .collect();
    let mut resp = json_error(
        status,
        &v.code,
        &v.reason,
        &v.hint,
        serde_json::json!({
            "class": v.class, "operations": ops, "audit": v.audit_seq,
            "approval": v.approval.as_ref().map(|(id, _)| id),
            "expires_at": v.approval.as_ref().map(|(_, t)| airlock_core::fmt_time(*t)),
        }),
    );
    if let Some((id, _)) = &v.approval {
        if let Ok(h) = HeaderValue::from_str(id) {
            resp.headers_mut().insert("airlock-approval", h);
        }
    }
    if v.outcome == Outcome::NeedsApproval {
        resp.headers_mut().insert(
            "airlock-decision",
            HeaderValue::from_static("approval_required"),
        );
    }
    if v.unauthenticated {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"airlock\""),
        );
    }
    resp
}

/// Routes a request on the shared listener by prefix; strips the prefix.
fn route<'a>(rt: &'a Runtime, path_and_query: &str) -> Option<(&'a Arc<UpstreamRt>, String)> {
    rt.prefixes.iter().find_map(|(prefix, up)| {
        let rest = path_and_query.strip_prefix(prefix.as_str())?;
        if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
            let rest = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            Some((up, rest))
        } else {
            None
        }
    })
}

/// Handles one request on a listener; `own` names the upstream of a dedicated listener.
pub async fn handle(
    shared: Arc<Shared>,
    own: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let rt = shared.runtime.load_full();
    let raw_pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let routed = match &own {
        Some(name) => rt.upstreams.get(name).map(|u| (u, raw_pq.clone())),
        None => route(&rt, &raw_pq),
    };
    let Some((upstream, pq)) = routed else {
        let known: Vec<&str> = rt.prefixes.iter().map(|(p, _)| p.as_str()).collect();
        return Ok(json_error(
            StatusCode::NOT_FOUND,
            "no_upstream",
            "no upstream is configured for this path",
            &format!("send requests under one of: {}", known.join(", ")),
            serde_json::Value::Null,
        ));
    };
    let upstream = Arc::clone(upstream);
    let token = bearer(req.headers());
    let (mut parts, body) = req.into_parts();
    // TRACE echoes the request, injected secret included, back to the caller.
    if parts.method == http::Method::TRACE {
        return Ok(json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "TRACE is never forwarded: the upstream would echo the injected credential",
            "use another method",
            serde_json::Value::Null,
        ));
    }
    // Headers the client names in `Connection` are hop-by-hop (RFC 9110 7.6.1) and never reach
    // the upstream, so they go before classification: a `Connection: content-type` must not
    // let Airlock read the body as one type and the upstream as another.
    let named: Vec<String> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in named {
        parts.headers.remove(name.as_str());
    }

    // Buffer the body only when classification needs it, and only up to the rules' limit.
    let needs_body = upstream
        .rules
        .needs_body(parts.method.as_str(), &pq, &parts.headers);
    let max = upstream.rules.max_body();
    let (buffered, stream): (Option<Bytes>, Option<Incoming>) = if needs_body {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Ok(too_large(max));
        }
        match Limited::new(body, max).collect().await {
            Ok(c) => (Some(c.to_bytes()), None),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Ok(too_large(max))
            }
            Err(_) => {
                return Ok(json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request_body",
                    "the request body could not be read",
                    "resend the request",
                    serde_json::Value::Null,
                ))
            }
        }
    } else {
        (None, Some(body))
    };

    let mut classification = upstream.rules.classify(&HttpRequest {
        method: parts.method.as_str(),
        path_and_query: &pq,
        headers: &parts.headers,
        body: buffered.as_deref(),
    });
    // A request that may need a human's approval is bound to its exact body, so the body must be
    // read (within the same limit) before deciding; a larger one is refused, never passed unread.
    let (buffered, stream) = match (buffered, stream) {
        // Whether a body follows is asked of the stream itself, not of the headers: an HTTP/2
        // request carries a body with neither Content-Length nor Transfer-Encoding. A GraphQL
        // endpoint's body is read whatever the method, so a GET cannot smuggle a mutation in it.
        (None, Some(body))
            if !hyper::body::Body::is_end_stream(&body)
                && (classification.class() >= airlock_core::OpClass::Destructive
                    || upstream.rules.needs_body("POST", &pq, &parts.headers)) =>
        {
            match Limited::new(body, max).collect().await {
                Ok(c) => {
                    let b = c.to_bytes();
                    classification = upstream.rules.classify(&HttpRequest {
                        method: parts.method.as_str(),
                        path_and_query: &pq,
                        headers: &parts.headers,
                        body: Some(&b),
                    });
                    (Some(b), None)
                }
                Err(_) => return Ok(too_large(max)),
            }
        }
        other => other,
    };
    if classification.persisted_query_miss {
        return Ok(persisted_query_not_found());
    }
    // A path Airlock could not normalise would be forwarded as sent; under an upstream's base
    // path, its `..` could climb out of it (`/staging/../prod/...`), to a prefix policy never
    // decided for.
    if classification.path_refused && !upstream.base_path.is_empty() {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            "path_refused",
            "the path could not be normalised (an encoded slash, a `..` above the root or a bad escape), and this upstream serves under a base path it could climb out of",
            "send the path plainly, without encoded slashes, dot segments or invalid escapes",
            serde_json::Value::Null,
        ));
    }
    let shown_path = redact_tokens(&classification.normalized_path);
    let fingerprint = || {
        approval_fingerprint(
            &classification.effective_method,
            &classification.normalized_path,
            buffered.as_deref().unwrap_or(b""),
        )
    };
    let summary = || {
        approval_summary(
            &classification.effective_method,
            &shown_path,
            &classification.operations,
        )
    };
    let details = BTreeMap::from([
        (
            "method".to_string(),
            classification.effective_method.clone(),
        ),
        ("path".to_string(), shown_path.clone()),
    ]);
    let verdict = shared
        .decider
        .decide(
            &rt,
            DoorRequest {
                door: "http",
                upstream: &upstream,
                token: token.as_deref(),
                classification: &classification,
                details,
                fingerprint: &fingerprint,
                summary: &summary,
            },
        )
        .await;
    shared
        .metrics
        .decision(verdict.outcome, started.elapsed().as_micros() as u64);
    if verdict.outcome != Outcome::Allow {
        return Ok(refusal(&verdict));
    }

    // Forward: the agent's token out, the sealed secret in, the classified path only. A
    // plain-HTTP upstream is reached through this core's own pool, which takes origin-form
    // requests; the shared client wants the absolute URI.
    // Only a path is ever forwarded: a request target such as `*` (an asterisk-form OPTIONS
    // that policy let through unclassified) has no place on an upstream path.
    if !classification.normalized_path.starts_with('/') {
        return Ok(bad_forward());
    }
    let uri = match &upstream.plain_http {
        Some(_) => format!("{}{}", upstream.base_path, classification.normalized_path),
        None => format!(
            "{}://{}{}{}",
            upstream.scheme, upstream.authority, upstream.base_path, classification.normalized_path
        ),
    };
    let Ok(uri) = http::Uri::try_from(uri) else {
        return Ok(bad_forward());
    };
    // The client's header map is reused (no copy of every header per request) after removing what
    // must not reach the upstream: URL-rewrite headers would let an upstream framework route to a
    // path that was never classified.
    let mut headers = parts.headers;
    for name in REWRITE_HEADERS.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    if headers.keys().any(rewrite_alias) {
        let aliases: Vec<HeaderName> = headers
            .keys()
            .filter(|n| rewrite_alias(n))
            .cloned()
            .collect();
        for name in aliases {
            headers.remove(name);
        }
    }
    headers.remove(header::AUTHORIZATION);
    match &upstream.plain_http {
        // The cores' pools send exactly the headers given.
        Some(plain) => headers.insert(header::HOST, plain.host.clone()),
        // The shared client writes Host for HTTP/1 and `:authority` for HTTP/2 itself; a Host
        // beside `:authority` that differs from it is malformed HTTP/2 (RFC 9113 8.3.1).
        None => headers.remove(header::HOST),
    };
    if let Some((name, value)) = &upstream.secret {
        headers.insert(name.clone(), value.clone());
    }
    let body: Body = match (buffered, stream) {
        (Some(b), _) => full(b),
        (None, Some(s)) => s.boxed(),
        (None, None) => full(Bytes::new()),
    };
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    let timeout = shared.upstream_timeout;
    let sent = async {
        match &upstream.plain_http {
            Some(plain) => crate::upstream_pool::send(plain, &rt.connector, out)
                .await
                .map_err(|e| e.to_string()),
            None => match rt.client().request(out).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    Ok(Response::from_parts(parts, body.boxed()))
                }
                Err(e) => Err(e.to_string()),
            },
        }
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            for h in &HOP_BY_HOP {
                parts.headers.remove(h);
            }
            Ok(Response::from_parts(parts, body))
        }
        Ok(Err(e)) => {
            shared.metrics.upstream_error();
            tracing::warn!(upstream = %upstream.name, error = %e, "upstream request failed");
            Ok(json_error(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                &format!("upstream `{}` could not be reached", upstream.name),
                "retry later; the request was allowed but not completed",
                serde_json::json!({ "retry": true }),
            ))
        }
        Err(_) => {
            shared.metrics.upstream_error();
            Ok(json_error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                &format!(
                    "upstream `{}` did not answer within {}s",
                    upstream.name,
                    timeout.as_secs()
                ),
                "retry later; the operation may or may not have happened upstream",
                serde_json::json!({ "retry": true }),
            ))
        }
    }
}

/// The answer of a GraphQL server that does not hold a persisted query: Apollo and urql clients
/// then resend the request with its query, which Airlock can classify. Nothing was decided or
/// forwarded (like an unknown path, it is not audited): Airlock never looks up stored documents,
/// because it decides on the text it forwards.
fn persisted_query_not_found() -> Response<Body> {
    let body = serde_json::json!({
        "errors": [{
            "message": "PersistedQueryNotFound",
            "extensions": {
                "code": "PERSISTED_QUERY_NOT_FOUND",
                "airlock": "Airlock decides on the query text it forwards; send the query with its hash",
            },
        }],
    });
    let mut resp = Response::new(full(body.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn bad_forward() -> Response<Body> {
    json_error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the request could not be forwarded as given",
        "check the path and headers",
        serde_json::Value::Null,
    )
}

/// The SHA-256 of an empty body, which is what nearly every request that needs no body has: no
/// hashing for it.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What an approval is bound to: method, normalised path and the body's SHA-256. Another body,
/// another approval.
fn approval_fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut f = String::with_capacity(method.len() + path.len() + 73);
    f.push_str(method);
    f.push(' ');
    f.push_str(path);
    f.push_str(" sha256:");
    if body.is_empty() {
        f.push_str(EMPTY_SHA256);
    } else {
        use sha2::Digest;
        f.push_str(&hex::encode(sha2::Sha256::digest(body)));
    }
    f
}

/// The operation as a human reads it in an approval queue: `POST /graphql (volumeDelete)`.
fn approval_summary(method: &str, shown_path: &str, ops: &[airlock_classify::Operation]) -> String {
    let mut s = String::with_capacity(method.len() + shown_path.len() + 32);
    s.push_str(method);
    s.push(' ');
    s.push_str(shown_path);
    s.push_str(" (");
    for (i, o) in ops.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&o.action);
    }
    s.push(')');
    s
}

fn too_large(max: usize) -> Response<Body> {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large_to_classify",
        &format!("the body is larger than the {max} bytes Airlock inspects to classify a request, so it is refused, not passed"),
        "send smaller requests (split a batch)",
        serde_json::Value::Null,
    )
}

/// Replaces anything shaped like an Airlock token (`alk_` + 49 base62 characters) so a token a
/// client put in a URL never reaches the audit log.
pub fn redact_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"alk_") {
            let end = i
                + 4
                + b[i + 4..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
            if end - i >= 20 {
                out.push_str("alk_[redacted]");
                i = end;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('?');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}
