//! Notifications for a pending approval: a Slack message or a signed generic webhook.
//!
//! A notice carries what an approver needs to decide (who asks, for what, where, why, until
//! when) and a link to the console where the decision is made; it never carries a decision
//! itself, so a forged or replayed notice can at worst send someone to the console.
//!
//! # Webhook signatures
//!
//! A generic webhook is signed so its receiver can tell it came from this gateway:
//!
//! ```text
//! Airlock-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//! ```
//!
//! The receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes (before any
//! JSON parsing), compares in constant time, and refuses timestamps more than five minutes away
//! from its clock, which bounds replays. [`verify_signature`] does exactly that. Several `v1`
//! entries may appear (one per secret during a rotation); one matching is enough.
//!
//! # Delivery
//!
//! [`Notifier::deliver`] POSTs the JSON, retrying with exponential backoff on connection
//! errors, timeouts, 5xx and 429, never on other 4xx (the request itself is wrong, so sending it
//! again cannot help), and returns every [`Attempt`] so the caller can audit each one. Slack
//! webhook URLs carry their credential in the path, so they are redacted in `Debug`, errors and
//! logs; the webhook secret never leaves this module.

use airlock_core::Secret;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;
use time::OffsetDateTime;

/// The `type` of the generic webhook event.
pub const EVENT_TYPE: &str = "airlock.approval.requested";
/// The header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "Airlock-Signature";
/// How far a signature's timestamp may be from the receiver's clock, in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Slack's limit on a header block's text, in characters.
const SLACK_HEADER_MAX: usize = 150;
/// Slack's limit on a section field's text is 2000; leave room for the label.
const SLACK_FIELD_MAX: usize = 1900;
/// Slack's limit on a button URL.
const SLACK_URL_MAX: usize = 3000;
/// How much of a receiver's answer is read to explain a refusal.
const ANSWER_READ_MAX: usize = 4096;
/// How much of that answer goes into an attempt's error.
const ANSWER_SNIPPET_MAX: usize = 200;

/// What an approver is told about a pending approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNotice {
    /// The approval's id (`apr_...`), also what receivers deduplicate retries by.
    pub approval_id: String,
    /// Who asks: the principal behind the token.
    pub requester: String,
    /// What kind of identity asks (agent, human, service), since approvers weigh them differently.
    pub requester_kind: String,
    /// The human accountable for the requester.
    pub owner: String,
    /// The token the request came with (its id, never the token itself).
    pub token_id: String,
    /// The operation: an action list or `METHOD /path`.
    pub operation: String,
    /// The resource the operation touches.
    pub resource: String,
    /// The environment of that resource.
    pub environment: String,
    /// Why approval is needed, or the requester's stated reason.
    pub reason: String,
    /// When the approval request lapses, RFC 3339.
    pub expires_at: String,
    /// Where the approver decides.
    pub console_url: String,
}

/// The Slack incoming-webhook message (Block Kit) for a notice, with a `text` fallback for
/// notifications and clients that do not draw blocks.
///
/// Every value is escaped for Slack mrkdwn (`&`, `<`, `>`), so a requester cannot smuggle a
/// `<!channel>` mention or a disguised link into the message, and clipped to Slack's limits.
pub fn slack_payload(n: &ApprovalNotice) -> Value {
    let field = |label: &str, value: &str| {
        let value = if value.trim().is_empty() {
            "_none given_".to_string()
        } else {
            slack_text(value, SLACK_FIELD_MAX)
        };
        json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") })
    };
    let requester = if n.requester_kind.is_empty() {
        n.requester.clone()
    } else {
        format!("{} ({})", n.requester, n.requester_kind)
    };
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(&format!("Approval needed: {} in {}", n.operation, n.environment), SLACK_HEADER_MAX),
                "emoji": false,
            },
        }),
        json!({
            "type": "section",
            "fields": [
                field("Requester", &requester),
                field("Owner", &n.owner),
                field("Operation", &n.operation),
                field("Resource", &n.resource),
                field("Environment", &n.environment),
                field("Reason", &n.reason),
                field("Expires", &n.expires_at),
            ],
        }),
    ];
    // Slack refuses the whole message for a bad button URL, so a missing or odd one drops the
    // button rather than the notice.
    if is_http_url(&n.console_url) && n.console_url.len() <= SLACK_URL_MAX {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": { "type": "plain_text", "text": "Review in Airlock", "emoji": false },
                "url": n.console_url,
                "style": "primary",
                "action_id": "airlock_open_approval",
            }],
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": slack_text(&format!("Approval {} · token {}", n.approval_id, n.token_id), SLACK_FIELD_MAX),
        }],
    }));
    let text = format!(
        "Airlock approval needed: {} by {} on {} ({}), expires {}. {}",
        n.operation, requester, n.resource, n.environment, n.expires_at, n.console_url
    );
    json!({ "text": slack_text(&text, SLACK_FIELD_MAX), "blocks": blocks })
}

/// The generic webhook body: `{"type": "airlock.approval.requested", "approval": {...}}`.
pub fn webhook_payload(n: &ApprovalNotice) -> Value {
    json!({ "type": EVENT_TYPE, "approval": n })
}

/// Hex HMAC-SHA256 under `secret` over `"{timestamp}.{body}"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(signing_mac(secret, timestamp, body).finalize().into_bytes())
}

/// The [`SIGNATURE_HEADER`] value: `t={timestamp},v1={sign(secret, timestamp, body)}`.
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

fn signing_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    #[expect(clippy::expect_used, reason = "HMAC takes keys of any length")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<seconds>,v1=<64 hex>[,v1=...]`.
    #[error("malformed `Airlock-Signature` header")]
    Malformed,
    /// No signature matches the body under this secret.
    #[error("webhook signature does not match")]
    Mismatch,
    /// The signature is genuine but its timestamp is too far from now: a replay or a bad clock.
    #[error(
        "webhook signature timestamp is {age}s away from now (limit {SIGNATURE_TOLERANCE_SECS}s)"
    )]
    Stale {
        /// Seconds between now and the timestamp (positive: in the past).
        age: i64,
    },
}

/// Checks an [`SIGNATURE_HEADER`] value against the raw body, for receivers; returns the signed
/// timestamp.
///
/// Every `v1` entry is compared in constant time; a timestamp more than
/// [`SIGNATURE_TOLERANCE_SECS`] from `now` (either way) is refused even with a valid signature.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match key {
            "t" => {
                let t: i64 = value.parse().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => {
                let sig = hex::decode(value).map_err(|_| SignatureError::Malformed)?;
                if sig.len() != 32 {
                    return Err(SignatureError::Malformed);
                }
                candidates.push(sig);
            }
            // later schemes (v2, ...) are skipped, so senders can add them without breaking us
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, candidates.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let mac = signing_mac(secret, t, body);
    let mut ok = false;
    for sig in &candidates {
        // no early exit: every candidate costs the same
        ok |= mac.clone().verify_slice(sig).is_ok();
    }
    if !ok {
        return Err(SignatureError::Mismatch);
    }
    let age = now.saturating_sub(t);
    // unsigned_abs: `abs` would overflow on i64::MIN
    if age.unsigned_abs() > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale { age });
    }
    Ok(t)
}

/// Where a notice goes.
#[derive(Clone)]
pub enum Target {
    /// A Slack incoming webhook; the URL's path is its credential.
    Slack {
        /// The `https://hooks.slack.com/services/...` URL.
        url: Secret<String>,
    },
    /// A generic JSON webhook, signed with `secret`.
    Webhook {
        /// The receiver's URL.
        url: String,
        /// The HMAC-SHA256 key shared with the receiver.
        secret: Secret<Vec<u8>>,
    },
}

impl Target {
    /// The URL as it may be shown: a Slack URL keeps only its origin, a webhook URL loses its
    /// query and any user info (either may hold a credential).
    pub fn display_url(&self) -> String {
        match self {
            Target::Slack { url } => format!("{}/[redacted]", origin(url.expose())),
            Target::Webhook { url, .. } => match url.parse::<http::Uri>() {
                Ok(u) => format!("{}{}", origin(url), u.path()),
                Err(_) => "[invalid url]".to_string(),
            },
        }
    }

    fn url(&self) -> &str {
        match self {
            Target::Slack { url } => url.expose(),
            Target::Webhook { url, .. } => url,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Target::Slack { .. } => "slack",
            Target::Webhook { .. } => "webhook",
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Slack { .. } => f
                .debug_struct("Slack")
                .field("url", &self.display_url())
                .finish(),
            Target::Webhook { .. } => f
                .debug_struct("Webhook")
                .field("url", &self.display_url())
                .field("secret", &"[redacted]")
                .finish(),
        }
    }
}

/// `scheme://host[:port]` of a URL, without user info; `[invalid url]` if it does not parse.
fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) => match (u.scheme_str(), u.host()) {
            (Some(scheme), Some(host)) => match u.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            },
            _ => "[invalid url]".to_string(),
        },
        Err(_) => "[invalid url]".to_string(),
    }
}

/// How hard to try delivering one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Attempts in total, at least 1.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each later one.
    pub base_delay: Duration,
    /// The longest wait between attempts, also the cap on a 429's `Retry-After`.
    pub max_delay: Duration,
    /// How long one attempt (connect, send, read the answer) may take.
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

impl DeliveryPolicy {
    /// The wait before attempt `n` (1-based): none before the first, then `base_delay`
    /// doubling, capped at `max_delay`.
    pub fn delay_before(&self, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n - 2).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// One delivery attempt, kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The attempt number, from 1.
    pub n: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// What went wrong, if anything (secrets redacted).
    pub error: Option<String>,
    /// When the attempt started.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Attempt {
    /// Whether the receiver accepted the notice (a 2xx answer).
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Whether any of the attempts delivered the notice.
pub fn delivered(attempts: &[Attempt]) -> bool {
    attempts.iter().any(Attempt::succeeded)
}

/// Why a [`Notifier`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The TLS configuration could not be set up.
    #[error("cannot set up tls for notifications: {0}")]
    Tls(String),
}

/// Sends approval notices over HTTP(S), with retries.
pub struct Notifier {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    policy: DeliveryPolicy,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended, before it becomes an [`Attempt`].
enum Outcome {
    /// The receiver answered.
    Answered {
        status: http::StatusCode,
        snippet: String,
        retry_after: Option<Duration>,
    },
    /// No answer: connection failure or timeout; worth retrying.
    Failed(String),
    /// The request could not even be built; retrying cannot help.
    Fatal(String),
}

impl Notifier {
    /// A notifier with Mozilla's root certificates for HTTPS (plain HTTP is allowed too).
    pub fn new(policy: DeliveryPolicy) -> Result<Self, NotifierError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| NotifierError::Tls(e.to_string()))?;
        Ok(Self::from_connector(connector, policy))
    }

    /// A notifier trusting only `roots` for HTTPS, for receivers behind a private CA.
    pub fn with_roots(
        policy: DeliveryPolicy,
        roots: rustls::RootCertStore,
    ) -> Result<Self, NotifierError> {
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| NotifierError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        Ok(Self::from_connector(connector, policy))
    }

    fn from_connector(
        connector: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
        policy: DeliveryPolicy,
    ) -> Self {
        let connector = connector
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Notifier { client, policy }
    }

    /// The delivery policy in use.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Delivers `notice` to `target` and returns every attempt; see [`delivered`].
    ///
    /// The body is the same on every attempt; a webhook's signature is recomputed per attempt
    /// so its timestamp stays fresh. Receivers may see a notice twice (an answer lost after it
    /// was processed) and should deduplicate by `approval_id`.
    pub async fn deliver(&self, target: &Target, notice: &ApprovalNotice) -> Vec<Attempt> {
        let payload = match target {
            Target::Slack { .. } => slack_payload(notice),
            Target::Webhook { .. } => webhook_payload(notice),
        };
        let body = Bytes::from(payload.to_string());
        let uri = match target.url().parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => u,
            _ => {
                return vec![Attempt {
                    n: 1,
                    status: None,
                    error: Some(format!(
                        "{} target url is not an absolute http(s) url",
                        target.kind()
                    )),
                    at: OffsetDateTime::now_utc(),
                }]
            }
        };
        let total = self.policy.attempts.max(1);
        let mut attempts = Vec::new();
        let mut wait = Duration::ZERO;
        for n in 1..=total {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let at = OffsetDateTime::now_utc();
            let outcome =
                match tokio::time::timeout(self.policy.timeout, self.send(target, &uri, &body))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::Failed(format!(
                        "no answer within {}ms",
                        self.policy.timeout.as_millis()
                    )),
                };
            let (status, error, retry, retry_after) = match outcome {
                Outcome::Answered {
                    status,
                    snippet,
                    retry_after,
                } => {
                    let retry =
                        status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS;
                    let error = (!status.is_success()).then(|| {
                        let mut e = format!("receiver answered {status}");
                        if !snippet.is_empty() {
                            e.push_str(": ");
                            e.push_str(&snippet);
                        }
                        redact(&e, target, &uri)
                    });
                    (Some(status.as_u16()), error, retry, retry_after)
                }
                Outcome::Failed(e) => (None, Some(redact(&e, target, &uri)), true, None),
                Outcome::Fatal(e) => (None, Some(redact(&e, target, &uri)), false, None),
            };
            let attempt = Attempt {
                n,
                status,
                error,
                at,
            };
            let done = attempt.succeeded() || !retry;
            if attempt.succeeded() {
                tracing::debug!(target_url = %target.display_url(), attempt = n, "approval notice delivered");
            } else {
                tracing::warn!(
                    target_url = %target.display_url(),
                    attempt = n,
                    status = ?attempt.status,
                    error = attempt.error.as_deref().unwrap_or(""),
                    "approval notice delivery failed"
                );
            }
            attempts.push(attempt);
            if done {
                break;
            }
            wait = self.policy.delay_before(n + 1);
            if let Some(ra) = retry_after {
                wait = wait.max(ra.min(self.policy.max_delay));
            }
        }
        attempts
    }

    /// One POST and the start of its answer.
    async fn send(&self, target: &Target, uri: &http::Uri, body: &Bytes) -> Outcome {
        let mut req = http::Request::post(uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("airlock/", env!("CARGO_PKG_VERSION")),
            );
        if let Target::Webhook { secret, .. } = target {
            let ts = OffsetDateTime::now_utc().unix_timestamp();
            req = req
                .header(
                    SIGNATURE_HEADER,
                    signature_header(secret.expose(), ts, body),
                )
                .header("Airlock-Event", EVENT_TYPE);
        }
        let req = match req.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => return Outcome::Fatal(format!("cannot build the request: {e}")),
        };
        match self.client.request(req).await {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                // the answer's start explains a refusal (Slack says `invalid_payload`, ...)
                let snippet = match Limited::new(resp.into_body(), ANSWER_READ_MAX)
                    .collect()
                    .await
                {
                    Ok(b) => printable(&b.to_bytes()),
                    Err(_) => String::new(),
                };
                Outcome::Answered {
                    status,
                    snippet,
                    retry_after,
                }
            }
            Err(e) => Outcome::Failed(error_chain(&e)),
        }
    }
}

/// An error and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

/// Removes the target URL and its path and query from a message, in case a lower layer quoted
/// them: for Slack the path is the credential.
fn redact(message: &str, target: &Target, uri: &http::Uri) -> String {
    let mut out = message.replace(target.url(), &target.display_url());
    if let Some(pq) = uri.path_and_query() {
        let pq = pq.as_str();
        if pq.len() > 1 {
            out = out.replace(pq, "/[redacted]");
        }
    }
    out
}

/// The first characters of an answer, with control characters replaced, for error messages.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ANSWER_SNIPPET_MAX)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Escapes the three characters Slack mrkdwn treats as control characters (`&`, `<`, `>`) and
/// clips the result to `max` characters, never inside an escape, with `…` marking a cut.
fn slack_text(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => "",
        };
        let piece_len = if piece.is_empty() { 1 } else { piece.len() };
        // keep one character of room for the ellipsis unless this is the last piece
        let room = if chars.peek().is_some() {
            max.saturating_sub(1)
        } else {
            max
        };
        if len + piece_len > room {
            out.push('…');
            return out;
        }
        if piece.is_empty() {
            out.push(c);
        } else {
            out.push_str(piece);
        }
        len += piece_len;
    }
    out
}

/// At most `max` characters of `s`, with `…` marking a cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn is_http_url(s: &str) -> bool {
    s.parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn notice() -> ApprovalNotice {
        ApprovalNotice {
            approval_id: "apr_0123456789abcdef".into(),
            requester: "deploy-bot".into(),
            requester_kind: "agent".into(),
            owner: "alice@example.com".into(),
            token_id: "tok_42".into(),
            operation: "DELETE /v1/users/7".into(),
            resource: "api:billing".into(),
            environment: "production".into(),
            reason: "destructive operation in production".into(),
            expires_at: "2026-11-23T15:00:00Z".into(),
            console_url: "https://airlock.example.com/approvals/apr_0123456789abcdef".into(),
        }
    }

    #[test]
    fn slack_payload_has_header_fields_button_and_fallback() {
        let v = slack_payload(&notice());
        assert!(v["text"].as_str().unwrap().contains("DELETE /v1/users/7"));
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Requester*\ndeploy-bot (agent)",
                "*Owner*\nalice@example.com",
                "*Operation*\nDELETE /v1/users/7",
                "*Resource*\napi:billing",
                "*Environment*\nproduction",
                "*Reason*\ndestructive operation in production",
                "*Expires*\n2026-11-23T15:00:00Z",
            ]
        );
        assert_eq!(blocks[2]["type"], "actions");
        assert_eq!(blocks[2]["elements"][0]["url"], notice().console_url);
        assert_eq!(blocks[3]["type"], "context");
    }

    #[test]
    fn slack_payload_escapes_mentions_and_links_and_clips() {
        let mut n = notice();
        n.reason = "<!channel> see <https://evil.example|the docs> & more".into();
        n.operation = "x".repeat(5000);
        n.console_url = "javascript:alert(1)".into();
        let v = slack_payload(&n);
        let s = v.to_string();
        assert!(!s.contains("<!channel>"));
        assert!(s.contains("&lt;!channel&gt;"));
        assert!(s.contains("&amp; more"));
        let blocks = v["blocks"].as_array().unwrap();
        assert!(
            blocks.iter().all(|b| b["type"] != "actions"),
            "no button for a bad url"
        );
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
        for f in blocks[1]["fields"].as_array().unwrap() {
            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
        }
    }

    #[test]
    fn webhook_payload_wraps_the_notice() {
        let v = webhook_payload(&notice());
        assert_eq!(v["type"], "airlock.approval.requested");
        assert_eq!(v["approval"]["approval_id"], "apr_0123456789abcdef");
        assert_eq!(v["approval"]["requester_kind"], "agent");
        assert_eq!(v["approval"]["console_url"], notice().console_url);
    }

    #[test]
    fn signatures_verify_and_refuse_tampering_staleness_and_junk() {
        let key = b"whsec_test";
        let body = br#"{"type":"airlock.approval.requested"}"#;
        let h = signature_header(key, 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify_signature(key, &h, body, 1_700_000_100),
            Ok(1_700_000_000)
        );
        assert_eq!(
            verify_signature(key, &h, b"{}", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", &h, body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(key, &h, body, 1_700_000_301),
            Err(SignatureError::Stale { age: 301 })
        );
        assert_eq!(
            verify_signature(key, &h, body, 1_699_999_699),
            Err(SignatureError::Stale { age: -301 })
        );
        // a rotated secret: either v1 may match; unknown schemes are skipped
        let rotated = format!("{h},v1={},v2=zzz", sign(b"old", 1_700_000_000, body));
        assert_eq!(
            verify_signature(key, &rotated, body, 1_700_000_000),
            Ok(1_700_000_000)
        );
        for junk in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,t=1,v1=",
            "nonsense",
        ] {
            assert_eq!(
                verify_signature(key, junk, body, 1),
                Err(SignatureError::Malformed),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn a_known_signature() {
        // HMAC-SHA256("secret", "1.{}"), checked with `printf '1.{}' | openssl dgst -sha256 -hmac secret`
        assert_eq!(sign(b"secret", 1, b"{}"), OPENSSL_SIG);
    }
    const OPENSSL_SIG: &str = "1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908";

    #[test]
    fn targets_never_print_their_credentials() {
        let slack = Target::Slack {
            url: Secret::new("https://hooks.slack.com/services/T000/B000/XXXXSECRET".into()),
        };
        let hook = Target::Webhook {
            url: "https://user:pw@hooks.example.com/airlock?token=QUERYSECRET".into(),
            secret: Secret::new(b"whsec_SECRET".to_vec()),
        };
        let shown = format!(
            "{slack:?} {hook:?} {} {}",
            slack.display_url(),
            hook.display_url()
        );
        for leak in ["XXXXSECRET", "QUERYSECRET", "whsec", "pw@", "B000"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
        assert!(shown.contains("https://hooks.slack.com/[redacted]"));
        assert!(shown.contains("https://hooks.example.com/airlock"));
    }

    proptest::proptest! {
        #[test]
        fn verify_signature_never_panics(header in ".{0,120}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), now in proptest::prelude::any::<i64>()) {
            let _ = verify_signature(b"k", &header, &body, now);
        }

        #[test]
        fn a_signature_verifies_only_its_own_body(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), t in -4_000_000_000i64..4_000_000_000, flip in proptest::prelude::any::<proptest::sample::Index>()) {
            let h = signature_header(b"key", t, &body);
            proptest::prop_assert_eq!(verify_signature(b"key", &h, &body, t), Ok(t));
            if !body.is_empty() {
                let mut other = body.clone();
                let i = flip.index(other.len());
                other[i] ^= 1;
                proptest::prop_assert_eq!(verify_signature(b"key", &h, &other, t), Err(SignatureError::Mismatch));
            }
        }

        #[test]
        fn slack_payload_never_panics_and_stays_within_limits(s in "[<>&a-z ]{0,300}", n in 0usize..30) {
            let mut notice = notice();
            notice.reason = s.repeat(n);
            notice.operation = s.clone();
            notice.resource = s.repeat(n * 2);
            notice.console_url = s;
            let v = slack_payload(&notice);
            proptest::prop_assert!(v["blocks"][0]["text"]["text"].as_str().unwrap_or("").chars().count() <= SLACK_HEADER_MAX);
            proptest::prop_assert!(v["text"].as_str().unwrap_or("").chars().count() <= 2000);
            for f in v["blocks"][1]["fields"].as_array().into_iter().flatten() {
                let text = f["text"].as_str().unwrap_or("");
                proptest::prop_assert!(text.chars().count() <= 2000);
                // never a cut escape: every & starts a whole entity
                for (i, _) in text.match_indices('&') {
                    let rest = &text[i..];
                    proptest::prop_assert!(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"));
                }
            }
        }

        #[test]
        fn slack_text_escapes_and_clips(s in ".{0,40}", max in 1usize..30) {
            let out = slack_text(&s, max);
            proptest::prop_assert!(out.chars().count() <= max);
            proptest::prop_assert!(!out.contains('<') && !out.contains('>'));
            if out.chars().count() < max && !out.ends_with('…') {
                proptest::prop_assert_eq!(out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"), s);
            }
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = DeliveryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=6).map(|n| p.delay_before(n).as_millis()).collect();
        assert_eq!(waits, [0, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay_before(u32::MAX), Duration::from_secs(1));
    }
}
