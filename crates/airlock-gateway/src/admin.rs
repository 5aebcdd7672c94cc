//! The admin listener: `/healthz` and `/metrics`. Separate from the proxy so that monitoring
//! never shares a port (or a firewall rule) with agents' traffic.

use crate::http_door::Body;
use crate::Shared;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(crate::http_door::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    text(status, "application/json", v.to_string())
}

fn api_error(status: StatusCode, code: &str, message: &str, hint: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({ "error": code, "message": message, "hint": hint }),
    )
}

/// Authenticates an admin API caller: a valid token of a human. Agents and services are refused
/// and the refusal audited: agents never administer Airlock.
async fn human(
    shared: &Shared,
    req: &Request<Incoming>,
    what: &str,
) -> Result<Arc<airlock_authority::Claims>, Response<Body>> {
    let token = crate::http_door::bearer_in(req.headers(), &[header::AUTHORIZATION]);
    let Some(token) = token else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the admin API needs a human's Airlock token",
            "send `Authorization: Bearer alk_…` with your own (human) token",
        ));
    };
    let auth = shared.decider.authority();
    let claims = match auth.authenticate(&token, None, auth.now()) {
        Ok(c) => c,
        Err(e) => {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                e.code(),
                &e.to_string(),
                "use a valid human token",
            ))
        }
    };
    if claims.kind != airlock_core::IdentityKind::Human {
        shared
            .decider
            .audit_admin_refusal(
                &claims,
                what,
                "agents and services never administer Airlock",
            )
            .await;
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "agents_never_administer_airlock",
            &format!(
                "{} `{}` may not use the admin API",
                claims.kind, claims.identity
            ),
            "a human must do this with their own token and second factor",
        ));
    }
    Ok(claims)
}

async fn approvals_api(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let rest = path.strip_prefix("/api/approvals").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let what = format!("admin {} {}", req.method(), path);
    let claims = match human(&shared, &req, &what).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let store = shared.decider.store();
    match (req.method().as_str(), parts.as_slice()) {
        ("GET", []) => {
            let state = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("state=")))
                .and_then(|s| s.parse::<airlock_store::ApprovalState>().ok());
            match store.approvals(state) {
                Ok(list) => json(StatusCode::OK, serde_json::json!({ "approvals": list })),
                Err(e) => api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store",
                    &e.to_string(),
                    "retry shortly",
                ),
            }
        }
        ("GET", [id]) => match store.approval(id) {
            Ok(Some(a)) => json(StatusCode::OK, serde_json::json!({ "approval": a })),
            Ok(None) => api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("approval `{id}` not found"),
                "list approvals with GET /api/approvals",
            ),
            Err(e) => api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store",
                &e.to_string(),
                "retry shortly",
            ),
        },
        ("POST", [id, verb]) if *verb == "approve" || *verb == "deny" => {
            let id = id.to_string();
            let approve = *verb == "approve";
            let body = match http_body_util::Limited::new(req.into_body(), 16 * 1024)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "bad_body",
                        "the body could not be read (at most 16 KiB)",
                        "send {\"totp\":\"123456\",\"reason\":\"…\"}",
                    )
                }
            };
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = v["totp"].as_str().unwrap_or("").to_string();
            let reason = v["reason"]
                .as_str()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(500)
                .collect::<String>();
            let Some(key) = shared.master_key.clone() else {
                return api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "master_key",
                    "the gateway has no master key, so second factors cannot be checked",
                    "start the gateway with its key file or AIRLOCK_MASTER_KEY",
                );
            };
            let auth = Arc::clone(shared.decider.authority());
            let result = tokio::task::spawn_blocking(move || {
                auth.vote(&claims, &key, &id, &code, approve, &reason)
            })
            .await;
            match result {
                Ok(Ok(a)) => json(StatusCode::OK, serde_json::json!({ "approval": a })),
                Ok(Err(e)) => {
                    use airlock_authority::ApprovalError as E;
                    let (status, code) = match &e {
                        E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                        E::Totp(_) | E::Replayed | E::NoTotp(_) => {
                            (StatusCode::FORBIDDEN, "second_factor_refused")
                        }
                        E::NotHuman { .. } | E::Requester(_) | E::OutOfScope { .. } => {
                            (StatusCode::FORBIDDEN, "not_an_approver")
                        }
                        E::Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "second_factor_locked"),
                        E::State(_) => (StatusCode::CONFLICT, "not_pending"),
                        _ => (StatusCode::SERVICE_UNAVAILABLE, "internal"),
                    };
                    api_error(
                        status,
                        code,
                        &e.to_string(),
                        "check the approval id, your code and the request's state",
                    )
                }
                Err(_) => api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the vote could not be processed",
                    "retry",
                ),
            }
        }
        _ => api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such admin endpoint",
            "GET /api/approvals, GET /api/approvals/ID, POST /api/approvals/ID/approve|deny",
        ),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/console" || req.uri().path().starts_with("/console/") {
        return Ok(crate::console::handle(shared, req).await);
    }
    if req.uri().path().starts_with("/api/approvals") {
        return Ok(approvals_api(shared, req).await);
    }
    Ok(match req.uri().path() {
        "/healthz" => {
            let rt = shared.runtime.load();
            text(
                StatusCode::OK,
                "application/json",
                serde_json::json!({ "status": "ok", "upstreams": rt.upstreams.len(), "policies": rt.policy.policy_count() })
                    .to_string(),
            )
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            shared
                .metrics
                .render_with(shared.runtime.load().policy.cache_stats())
                + &crate::pg_door::render_metrics(&shared),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /healthz or /metrics\n".into(),
        ),
    })
}

/// Serves the admin endpoints until `stop`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let builder = crate::server_builder();
    // Monitoring and a few humans: a small cap keeps a flood here from starving the proxy.
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = Arc::clone(&shared);
        let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
}
