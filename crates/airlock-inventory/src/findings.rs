//! The inventory: every identity and credential, who answers for it, and what is wrong with it.

use crate::duties::Conflict;
use crate::InventoryError;
use airlock_authority::StoreReader;
use airlock_core::IdentityKind;
use serde::Serialize;
use std::collections::HashMap;
use time::OffsetDateTime;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Fix soon.
    Medium,
    /// Fix now.
    High,
}

impl Severity {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One thing wrong with an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Stable code (documented in docs/inventory.md).
    pub code: &'static str,
    /// What it means and what to do.
    pub message: String,
}

fn finding(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
    }
}

/// One identity or credential.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `identity`, `token`, `sealed_secret` or `unmanaged`.
    pub kind: &'static str,
    /// Name, token id, `secret@env`, or the scanner's fingerprint.
    pub id: String,
    /// For identities and tokens: human, agent or service.
    pub identity_kind: Option<IdentityKind>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// What it is for.
    pub purpose: Option<String>,
    /// Where it is valid.
    pub environments: Vec<String>,
    /// What it may do.
    pub allow: Option<String>,
    /// When it was created (or first imported).
    pub created: String,
    /// When it stops working.
    pub expires: Option<String>,
    /// When the audit last saw it allowed.
    pub last_used: Option<String>,
    /// Whether AI agents can read it.
    pub agent_accessible: bool,
    /// `enabled`, `disabled`, `live`, `revoked`, `expired`, `sealed` or `unmanaged`.
    pub status: String,
    /// Where an unmanaged credential was found: `file:line:column` and any location inside it.
    pub found_at: Option<String>,
    /// For unmanaged credentials: the scanner rule, i.e. what kind of credential.
    pub credential_kind: Option<String>,
    /// What is wrong.
    pub findings: Vec<Finding>,
}

impl Item {
    /// The worst finding's severity.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

fn when(t: OffsetDateTime) -> String {
    airlock_core::fmt_time(t)
}

/// Builds every inventory item with its findings. `stale_days`: a live token unused this long
/// is reported. `conflicts` are added to their identities.
pub fn collect(
    store: StoreReader<'_>,
    now: OffsetDateTime,
    stale_days: i64,
    conflicts: &[Conflict],
) -> Result<Vec<Item>, InventoryError> {
    let identities = store.identities()?;
    let by_name: HashMap<String, &airlock_store::Identity> =
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
                    format!(
                        "its owner `{}` is disabled; nobody answers for it. Reassign it with `airlock identity reassign {} --owner HUMAN` or offboard it",
                        o.name, i.name
                    ),
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
            if i.review_by.is_none() && i.enabled {
                f.push(finding(
                    Severity::Low,
                    "no_review_date",
                    "no review date; set one with `airlock identity review`".into(),
                ));
            }
        }
        if let Some(r) = i.review_by {
            if i.enabled && r < now.date() {
                f.push(finding(
                    Severity::Medium,
                    "review_overdue",
                    format!(
                        "review was due on {r}; the owner confirms it with `airlock identity review {}`",
                        i.name
                    ),
                ));
            }
        }
        for c in conflicts.iter().filter(|c| c.identity == i.name.as_str()) {
            f.push(finding(c.severity, c.code, c.message.clone()));
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
            status: if i.enabled { "enabled" } else { "disabled" }.into(),
            found_at: None,
            credential_kind: None,
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
        if live && now - used.unwrap_or(t.issued_at) > time::Duration::days(stale_days) {
            f.push(finding(
                Severity::Low,
                "unused",
                format!("not used for {stale_days}+ days; revoke it if nobody needs it"),
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
                "revoked"
            } else if live {
                "live"
            } else {
                "expired"
            }
            .into(),
            found_at: None,
            credential_kind: None,
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
            allow: Some("everything the upstream or database user allows".into()),
            created: when(s.created_at),
            expires: None,
            last_used: None,
            agent_accessible: false,
            status: "sealed".into(),
            found_at: None,
            credential_kind: None,
            findings: vec![finding(
                Severity::Low,
                "no_expiry",
                format!(
                    "an upstream credential with no expiry, last set {}; rotate it at the upstream and `airlock secret set` it again",
                    when(s.updated_at)
                ),
            )],
        });
    }

    for u in store.unmanaged()? {
        let at = format!("{}:{}:{}", u.file, u.line, u.column);
        let found_at = match &u.location {
            Some(l) => format!("{at} [{l}]"),
            None => at,
        };
        let f = if u.agent_readable {
            finding(
                Severity::High,
                "unmanaged_agent_readable",
                format!(
                    "unmanaged credential readable by agents ({}); rotate it, seal the new one with `airlock secret set` and delete it from {}",
                    u.description, u.file
                ),
            )
        } else {
            finding(
                Severity::Medium,
                "unmanaged",
                format!(
                    "unmanaged credential ({}) nobody answers for; move it into Airlock",
                    u.description
                ),
            )
        };
        items.push(Item {
            kind: "unmanaged",
            id: u.fingerprint.clone(),
            identity_kind: None,
            owner: None,
            purpose: None,
            environments: Vec::new(),
            allow: Some("unknown: whatever the credential allows".into()),
            created: when(u.first_seen),
            expires: None,
            last_used: None,
            agent_accessible: u.agent_readable,
            status: format!("unmanaged ({})", u.redacted),
            found_at: Some(found_at),
            credential_kind: Some(u.kind.clone()),
            findings: vec![f],
        });
    }
    Ok(items)
}
