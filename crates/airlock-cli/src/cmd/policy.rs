//! `airlock policy check|schema|explain`.

use crate::context::Ctx;
use crate::exit::{fail, INVALID, NOT_FOUND};
use crate::output::Output;
use airlock_classify::HttpRequest;
use airlock_core::Outcome;
use airlock_gateway::runtime::Runtime;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Policy subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Validate rule files and `.cedar` policy files against the schema.
    Check,
    /// Print the Cedar schema operator policies are written against.
    Schema,
    /// Show the decision for a token (read from stdin) and a request, and the policies behind it.
    /// A dry run: nothing is forwarded or audited.
    Explain {
        /// The upstream the request is for.
        #[arg(long)]
        upstream: String,
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Path and query as the agent would send them to that upstream.
        #[arg(long)]
        path: String,
        /// A file holding the request body (e.g. a GraphQL JSON document).
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// Content-Type of the body.
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
}

/// Runs a policy subcommand.
pub fn run(config: &Path, cmd: PolicyCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let auth = &ctx.authority;
    let rt = match cmd {
        // A check passes only what `serve` would accept, named secrets sealed included.
        PolicyCmd::Check => Runtime::load_for_policy_check(config, auth)?,
        _ => Runtime::load_for_checks(config, auth)?,
    };
    match cmd {
        PolicyCmd::Check => {
            if out.json() {
                out.value(&serde_json::json!({ "ok": true, "policies": rt.policy.policy_count(), "upstreams": rt.upstreams.len() }))?;
            } else {
                outln!(
                    "ok: {} policies (built-in pack included) and {} upstream rule set(s) are valid",
                    rt.policy.policy_count(),
                    rt.upstreams.len()
                )?;
            }
        }
        PolicyCmd::Schema => out!("{}", rt.policy.schema_text())?,
        PolicyCmd::Explain {
            upstream,
            method,
            path,
            body_file,
            content_type,
        } => {
            let up = rt.upstreams.get(&upstream).ok_or_else(|| {
                fail(
                    NOT_FOUND,
                    format!(
                        "upstream `{upstream}` is not configured; configured: {}",
                        rt.upstreams.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let body = body_file.map(std::fs::read).transpose()?;
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&content_type) {
                headers.insert(http::header::CONTENT_TYPE, v);
            }
            let classification = up.rules.classify(&HttpRequest {
                method: &method,
                path_and_query: &path,
                headers: &headers,
                body: body.as_deref(),
            });
            let token = crate::output::read_stdin_limited(4096, "the token")?;
            let token = String::from_utf8_lossy(&token).trim().to_string();
            let claims = auth.verify(&token, auth.now()).map_err(|e| {
                fail(
                    INVALID,
                    format!("{e} (explain needs a valid token on stdin)"),
                )
            })?;
            let (audit, _thread) = airlock_gateway::audit_writer::AuditWriter::start(
                std::sync::Arc::new(airlock_store::SqliteStore::in_memory()?),
                airlock_gateway::audit_writer::LINGER,
            );
            let decider = airlock_gateway::Decider::new(
                std::sync::Arc::new(Ctx::load(config)?.authority),
                audit,
                std::sync::Arc::new(airlock_core::SystemClock),
                std::sync::Arc::new(airlock_store::SqliteStore::in_memory()?),
            );
            let v = decider.decide_operations(
                &rt,
                &airlock_gateway::DoorRequest {
                    door: "explain",
                    upstream: up,
                    token: Some(&token),
                    classification: &classification,
                    details: Default::default(),
                    fingerprint: &String::new,
                    summary: &String::new,
                },
                &claims,
                auth.now().unix_timestamp(),
                airlock_policy::Approval::None,
            );
            if out.json() {
                out.value(&serde_json::json!({
                    "decision": v.outcome, "code": v.code, "reason": v.reason, "hint": v.hint,
                    "class": v.class, "classification": classification, "operations": v.operations,
                }))?;
            } else {
                outln!("decision: {} ({})", v.outcome, v.code)?;
                outln!("reason:   {}", v.reason)?;
                if !v.hint.is_empty() {
                    outln!("next:     {}", v.hint)?;
                }
                outln!(
                    "request:  {} {} -> class {}",
                    classification.effective_method,
                    classification.normalized_path,
                    v.class
                )?;
                for n in &classification.notes {
                    outln!("note:     {n}")?;
                }
                for o in &v.operations {
                    outln!(
                        "  {} {} on `{}` in {}: {} ({}) by {}",
                        o.class,
                        o.action,
                        o.resource,
                        o.environment
                            .as_ref()
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| "unknown".into()),
                        o.decision.outcome,
                        o.decision.code,
                        o.decision.policies.join(", ")
                    )?;
                }
            }
            if v.outcome != Outcome::Allow {
                return Ok(ExitCode::from(crate::exit::CHECK_FAILED));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
