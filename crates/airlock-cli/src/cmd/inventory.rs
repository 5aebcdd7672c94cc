//! `airlock inventory`: every identity and credential, who answers for it, and what is wrong with
//! it. (The first part of issue 6: scanned unmanaged credentials and blast radius come next.)

use crate::context::Ctx;
use crate::exit::CHECK_FAILED;
use crate::output::{when, Output};
use airlock_core::IdentityKind;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Fix soon.
    Medium,
    /// Fix now.
    High,
}

/// Arguments of `airlock inventory`.
#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    /// A live token unused for this many days is reported.
    #[arg(long, default_value_t = 30)]
    stale_days: i64,
    /// Exit 1 when a finding of this severity or worse exists (for CI).
    #[arg(long, value_enum)]
    fail_on: Option<Severity>,
}

#[derive(Serialize)]
struct Item {
    kind: &'static str,
    id: String,
    identity_kind: Option<IdentityKind>,
    owner: Option<String>,
    purpose: Option<String>,
    environments: Vec<String>,
    allow: Option<String>,
    created: String,
    expires: Option<String>,
    last_used: Option<String>,
    agent_accessible: bool,
    status: String,
    findings: Vec<Finding>,
}

#[derive(Serialize, Clone)]
struct Finding {
    severity: Severity,
    code: &'static str,
    message: String,
}

fn finding(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
    }
}

/// Runs `airlock inventory`.
pub fn run(config: &Path, args: InventoryArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let auth = &ctx.authority;
    let store = auth.store();
    let now = auth.now();
    let identities = store.identities()?;
    let by_name: std::collections::HashMap<String, &airlock_store::Identity> =
        identities.iter().map(|i| (i.name.to_string(), i)).collect();
    let last_used = store.token_last_used()?;
    let mut items = Vec::new();

    for i in &identities {
        let mut f = Vec::new();
        if i.kind.needs_owner() {
            match i.owner.as_ref().and_then(|o| by_name.get(o.as_str())) {
                None => f.push(finding(
                    Severity::High,
                    "no_owner",
                    format!("{} `{}` has no owner", i.kind, i.name),
                )),
                Some(o) if !o.enabled && i.enabled => f.push(finding(
                    Severity::High,
                    "orphaned",
                    format!("its owner `{}` is disabled; nobody answers for it", o.name),
                )),
                _ => {}
            }
            if i.purpose.as_deref().is_none_or(|p| p.trim().is_empty()) {
                f.push(finding(
                    Severity::Medium,
                    "no_purpose",
                    "no purpose recorded".into(),
                ));
            }
        }
        if let Some(r) = i.review_by {
            if i.enabled && r < now.date() {
                f.push(finding(
                    Severity::Medium,
                    "review_overdue",
                    format!("review was due on {r}"),
                ));
            }
        }
        items.push(Item {
            kind: "identity",
            id: i.name.to_string(),
            identity_kind: Some(i.kind),
            owner: i.owner.as_ref().map(|o| o.to_string()),
            purpose: i.purpose.clone(),
            environments: i.environments.iter().map(|e| e.to_string()).collect(),
            allow: None,
            created: when(i.created_at),
            expires: None,
            last_used: None,
            agent_accessible: i.agent_accessible,
            status: if i.enabled {
                "enabled".into()
            } else {
                "disabled".into()
            },
            findings: f,
        });
    }

    for t in store.tokens(None)? {
        let live = t.revoked_at.is_none() && t.expires_at > now;
        let ident = by_name.get(t.identity.as_str());
        let mut f = Vec::new();
        let ttl = t.expires_at - t.issued_at;
        if ident.is_some_and(|i| i.kind != IdentityKind::Human) && ttl > time::Duration::hours(24) {
            f.push(finding(
                Severity::High,
                "agent_ttl_over_24h",
                format!("an agent or service token valid for {}h", ttl.whole_hours()),
            ));
        }
        if live && ident.is_some_and(|i| !i.enabled) {
            f.push(finding(
                Severity::High,
                "identity_disabled",
                "live token of a disabled identity".into(),
            ));
        }
        let used = last_used.get(&t.id).copied();
        if live && now - used.unwrap_or(t.issued_at) > time::Duration::days(args.stale_days) {
            f.push(finding(
                Severity::Low,
                "unused",
                format!(
                    "not used for {}+ days; revoke it if nobody needs it",
                    args.stale_days
                ),
            ));
        }
        if live && ident.is_some_and(|i| i.agent_accessible && i.kind == IdentityKind::Human) {
            f.push(finding(
                Severity::Medium,
                "agent_accessible",
                "a human's live token where agents can read it".into(),
            ));
        }
        items.push(Item {
            kind: "token",
            id: t.id.clone(),
            identity_kind: ident.map(|i| i.kind),
            owner: ident
                .and_then(|i| i.owner.as_ref().map(|o| o.to_string()))
                .or_else(|| Some(t.identity.to_string())),
            purpose: ident.and_then(|i| i.purpose.clone()),
            environments: t.environments.iter().map(|e| e.to_string()).collect(),
            allow: Some(t.allow.to_string()),
            created: when(t.issued_at),
            expires: Some(when(t.expires_at)),
            last_used: used.map(when),
            agent_accessible: ident.is_some_and(|i| i.agent_accessible),
            status: if t.revoked_at.is_some() {
                "revoked".into()
            } else if live {
                "live".into()
            } else {
                "expired".into()
            },
            findings: f,
        });
    }

    for s in store.secrets()? {
        items.push(Item {
            kind: "sealed_secret",
            id: format!("{}@{}", s.name, s.environment),
            identity_kind: None,
            owner: None,
            purpose: None,
            environments: vec![s.environment.to_string()],
            allow: Some("everything the upstream allows".into()),
            created: when(s.created_at),
            expires: None,
            last_used: None,
            agent_accessible: false,
            status: "sealed".into(),
            findings: Vec::new(),
        });
    }

    if out.json() {
        out.lines(&items)?;
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                vec![
                    i.kind.to_string(),
                    i.id.clone(),
                    i.owner.clone().unwrap_or_else(|| "-".into()),
                    i.environments.join(","),
                    i.status.clone(),
                    i.expires.clone().unwrap_or_else(|| "-".into()),
                    i.last_used.clone().unwrap_or_else(|| "-".into()),
                    i.findings
                        .iter()
                        .map(|f| format!("{:?}:{}", f.severity, f.code).to_lowercase())
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect();
        out.table(
            &[
                "KIND",
                "ID",
                "OWNER",
                "ENV",
                "STATUS",
                "EXPIRES",
                "LAST USED",
                "FINDINGS",
            ],
            &rows,
        )?;
    }
    let worst = items
        .iter()
        .flat_map(|i| i.findings.iter().map(|f| f.severity))
        .max();
    if let (Some(threshold), Some(w)) = (args.fail_on, worst) {
        if w >= threshold {
            eprintln!(
                "airlock inventory: findings at or above `{}` severity exist; fix them or lower `--fail-on`",
                format!("{threshold:?}").to_lowercase()
            );
            return Ok(ExitCode::from(CHECK_FAILED));
        }
    }
    Ok(ExitCode::SUCCESS)
}
