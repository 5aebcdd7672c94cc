//! The web console on the admin listener: a human signs in with their own Airlock token and a
//! TOTP code, sees the approval queue update live, approves or denies with a reason, and reads
//! the audit log. Server-rendered HTML with a few lines of JS; the session cookie is HttpOnly and
//! SameSite=Strict, and every form carries a per-session CSRF token.

use crate::http_door::Body;
use crate::Shared;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a console session lasts after its TOTP sign-in.
const SESSION_TTL: Duration = Duration::from_secs(15 * 60);
const COOKIE: &str = "airlock_session";

/// A signed-in human. The token is kept to re-verify it on every request, so revoking it (or
/// disabling the human) ends the session at once.
pub struct Session {
    token: zeroize::Zeroizing<String>,
    csrf: String,
    expires: Instant,
}

/// Console sessions by id.
#[derive(Default)]
pub struct Sessions {
    // A std Mutex: held for a map operation, never across an await.
    map: std::sync::Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

fn random_hex(n: usize) -> Option<String> {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).ok()?;
    Some(hex::encode(b))
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(crate::http_door::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn redirect(to: &str, cookie: Option<String>) -> Response<Body> {
    let mut r = html(StatusCode::SEE_OTHER, String::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Airlock</title>\
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
.deny{{color:#a00}}.allow{{color:#070}}form.inline{{display:inline}}nav a{{margin-right:1em}}</style></head>\
<body><nav><a href=\"/console\">Approvals</a><a href=\"/console/audit\">Audit</a></nav><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    )
}

fn cookie_session(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name && !v.is_empty()).then(|| decode(v))
    })
}

/// The signed-in human for this request, re-verified now; None sends them to the login page.
fn current(
    shared: &Shared,
    req: &Request<Incoming>,
) -> Option<(Arc<airlock_authority::Claims>, String)> {
    let id = cookie_session(req)?;
    let (token, csrf) = {
        let mut map = shared
            .sessions
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let s = map.get(&id)?;
        if s.expires < Instant::now() {
            map.remove(&id);
            return None;
        }
        (s.token.clone(), s.csrf.clone())
    };
    let auth = shared.decider.authority();
    match auth.verify(&token, auth.now()) {
        Ok(c) if c.kind == airlock_core::IdentityKind::Human => Some((c, csrf)),
        _ => {
            shared
                .sessions
                .map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            None
        }
    }
}

fn login_page(message: &str) -> Response<Body> {
    let msg = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"deny\" id=\"error\">{}</p>", esc(message))
    };
    html(
        StatusCode::OK,
        page(
            "Sign in",
            &format!(
                "{msg}<p>Sign in with your own (human) Airlock token and the current code from your authenticator app.</p>\
<form method=\"post\" action=\"/console/login\"><p><label>Airlock token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required></label></p>\
<p><label>TOTP code <input name=\"totp\" id=\"totp\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" required></label></p>\
<p><button type=\"submit\" id=\"login\">Sign in</button></p></form>"
            ),
        ),
    )
}

fn queue_html(shared: &Shared, csrf: &str) -> String {
    let list = shared
        .decider
        .store()
        .approvals(Some(airlock_store::ApprovalState::Pending))
        .unwrap_or_default();
    if list.is_empty() {
        return "<p id=\"empty\">No operation is waiting for approval.</p>".into();
    }
    let mut s = String::from("<table id=\"queue\"><tr><th>Approval</th><th>Requester</th><th>Operation</th><th>Resource</th><th>Environment</th><th>Why</th><th>Expires</th><th>Decide</th></tr>");
    for a in list {
        let id = esc(&a.id);
        s.push_str(&format!(
            "<tr id=\"{id}\"><td>{id}</td><td>{} ({}, owner {})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td><form class=\"inline\" method=\"post\" action=\"/console/approvals/{id}/approve\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input name=\"reason\" placeholder=\"reason\" aria-label=\"reason\"><button type=\"submit\" name=\"approve\">Approve</button></form> \
<form class=\"inline\" method=\"post\" action=\"/console/approvals/{id}/deny\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input name=\"reason\" placeholder=\"reason\" aria-label=\"reason\"><button type=\"submit\" name=\"deny\">Deny</button></form></td></tr>",
            esc(&a.requester),
            a.requester_kind,
            esc(a.owner.as_deref().unwrap_or("-")),
            esc(&a.operation),
            esc(&a.resource),
            esc(&a.environment),
            esc(&a.reason),
            esc(&airlock_core::fmt_time(a.expires_at)),
            csrf = esc(csrf),
        ));
    }
    s.push_str("</table>");
    s
}

/// The live-update script: refreshes the queue fragment every two seconds.
const SCRIPT: &str = "setInterval(async()=>{try{const r=await fetch('/console/queue',{credentials:'same-origin'});if(r.ok){document.getElementById('live').innerHTML=await r.text();}}catch(e){}},2000);";

fn audit_html(shared: &Shared, req: &Request<Incoming>) -> String {
    let filter = airlock_store::AuditFilter {
        actor_kind: query_param(req, "actor_kind").and_then(|k| k.parse().ok()),
        actor_id: query_param(req, "identity"),
        decision: query_param(req, "decision").and_then(|d| d.parse().ok()),
        limit: Some(200),
        ..Default::default()
    };
    let records = shared
        .decider
        .authority()
        .store()
        .audit(&filter)
        .unwrap_or_default();
    let sel = |name: &str, opts: &[&str]| {
        let cur = query_param(req, name).unwrap_or_default();
        let mut s =
            format!("<select name=\"{name}\" id=\"{name}\"><option value=\"\">any</option>");
        for o in opts {
            s.push_str(&format!(
                "<option{}>{o}</option>",
                if cur == *o { " selected" } else { "" }
            ));
        }
        s.push_str("</select>");
        s
    };
    let mut s = format!(
        "<form method=\"get\" action=\"/console/audit\">Actor kind {} Identity <input name=\"identity\" value=\"{}\"> Decision {} <button type=\"submit\">Filter</button></form>\
<table id=\"audit\"><tr><th>#</th><th>Time</th><th>Actor</th><th>Action</th><th>Resource</th><th>Env</th><th>Decision</th><th>Reason</th></tr>",
        sel("actor_kind", &["human", "agent", "service"]),
        esc(&query_param(req, "identity").unwrap_or_default()),
        sel("decision", &["allow", "deny", "needs_approval"]),
    );
    for r in records.iter().rev() {
        let e = &r.event;
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            r.seq,
            esc(&airlock_core::fmt_time(e.time)),
            esc(&e.actor.id),
            e.actor.kind,
            esc(&e.action),
            esc(e.resource.as_deref().unwrap_or("-")),
            esc(e.environment.as_deref().unwrap_or("-")),
            e.decision,
            e.decision,
            esc(&e.reason),
        ));
    }
    s.push_str("</table>");
    s
}

/// Serves `/console…`.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/console/app.js" {
        let mut r = html(StatusCode::OK, SCRIPT.to_string());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/javascript"),
        );
        return r;
    }
    if path == "/console/login" && method == http::Method::POST {
        let body = Limited::new(req.into_body(), 16 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let f = form_fields(&body);
        let token = zeroize::Zeroizing::new(
            f.get("token")
                .cloned()
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
        let code = f.get("totp").cloned().unwrap_or_default();
        let auth = shared.decider.authority();
        let claims = match auth.authenticate(&token, None, auth.now()) {
            Ok(c) => c,
            Err(e) => return login_page(&e.to_string()),
        };
        if claims.kind != airlock_core::IdentityKind::Human {
            shared
                .decider
                .audit_admin_refusal(
                    &claims,
                    "console login",
                    "agents and services never administer Airlock",
                )
                .await;
            return login_page(&format!(
                "{} `{}` may not use the console; only humans approve",
                claims.kind, claims.identity
            ));
        }
        let Some(key) = shared.master_key.clone() else {
            return login_page(
                "this gateway has no master key, so second factors cannot be checked",
            );
        };
        let a = Arc::clone(auth);
        let c = Arc::clone(&claims);
        let checked =
            tokio::task::spawn_blocking(move || a.verify_second_factor(&c, &key, &code)).await;
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return login_page(&e.to_string()),
            Err(_) => return login_page("the code could not be checked; try again"),
        }
        let (Some(id), Some(csrf)) = (random_hex(32), random_hex(16)) else {
            return login_page("the random number generator failed; try again");
        };
        shared
            .sessions
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Session {
                    token,
                    csrf,
                    expires: Instant::now() + SESSION_TTL,
                },
            );
        return redirect(
            "/console",
            Some(format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}",
                SESSION_TTL.as_secs()
            )),
        );
    }
    let session_id = cookie_session(&req);
    let Some((claims, csrf)) = current(&shared, &req) else {
        if method == http::Method::GET && (path == "/console" || path == "/console/") {
            return login_page("");
        }
        return redirect("/console", None);
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/console") | ("GET", "/console/") => html(
            StatusCode::OK,
            page(
                "Approvals",
                &format!(
                    "<p>Signed in as <b id=\"who\">{}</b>. <form class=\"inline\" method=\"post\" action=\"/console/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form></p>\
<div id=\"live\">{}</div><script src=\"/console/app.js\"></script>",
                    esc(claims.identity.as_str()),
                    esc(&csrf),
                    queue_html(&shared, &csrf)
                ),
            ),
        ),
        ("GET", "/console/queue") => html(StatusCode::OK, queue_html(&shared, &csrf)),
        ("GET", "/console/audit") => html(StatusCode::OK, page("Audit", &audit_html(&shared, &req))),
        ("POST", p) => {
            let body = Limited::new(req.into_body(), 16 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let f = form_fields(&body);
            let given = f.get("csrf").cloned().unwrap_or_default();
            // Constant-time enough: both are same-length hex; compare every byte.
            let ok = given.len() == csrf.len() && given.bytes().zip(csrf.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if !ok {
                return html(StatusCode::FORBIDDEN, page("Refused", "<p class=\"deny\">The form's CSRF token is missing or wrong; reload the console and try again.</p>"));
            }
            if p == "/console/logout" {
                if let Some(id) = &session_id {
                    shared.sessions.map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                }
                return redirect("/console", Some(format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0")));
            }
            let parts: Vec<&str> = p.trim_start_matches("/console/approvals/").split('/').collect();
            let (id, verb) = match parts.as_slice() {
                [id, v] if p.starts_with("/console/approvals/") && (*v == "approve" || *v == "deny") => (id.to_string(), *v == "approve"),
                _ => return html(StatusCode::NOT_FOUND, page("Not found", "<p>No such action.</p>")),
            };
            let reason: String = f.get("reason").cloned().unwrap_or_default().chars().filter(|c| !c.is_control()).take(500).collect();
            let auth = Arc::clone(shared.decider.authority());
            let c = Arc::clone(&claims);
            let result = tokio::task::spawn_blocking(move || auth.vote_in_session(&c, &id, verb, &reason)).await;
            match result {
                Ok(Ok(a)) => html(
                    StatusCode::OK,
                    page(
                        "Decided",
                        &format!(
                            "<p id=\"result\">{} is now <b>{}</b>.</p><p><a href=\"/console\">Back to the queue</a></p>",
                            esc(&a.id),
                            a.state.as_str()
                        ),
                    ),
                ),
                Ok(Err(e)) => html(StatusCode::FORBIDDEN, page("Refused", &format!("<p class=\"deny\" id=\"result\">{}</p>", esc(&e.to_string())))),
                Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, page("Error", "<p>The vote could not be processed.</p>")),
            }
        }
        _ => html(StatusCode::NOT_FOUND, page("Not found", "<p>No such page.</p>")),
    }
}
