//! Compliance evidence: what Airlock enforces, mapped to SOC 2 CC6.1 and CC6.6, PCI DSS v4.0.1
//! requirement 7.2.2, the OWASP Non-Human Identities Top 10 (2025) and the NIST CSF 2.0
//! identity and access outcomes (PR.AA), each backed by numbers and lists taken from the store
//! and the audit log at the moment the report is made.
//!
//! A control is `met` when the evidence shows no exception, `exceptions` when it lists some,
//! and `not_covered` when Airlock does not address it (said plainly rather than padded).

use crate::duties::Conflict;
use crate::findings::{Item, Severity};
use crate::reach::BlastRadius;
use crate::InventoryError;
use airlock_authority::StoreReader;
use airlock_core::{IdentityKind, Outcome};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use time::OffsetDateTime;

/// Where a control stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Enforced, and the evidence shows no exception.
    Met,
    /// Enforced, with exceptions listed.
    Exceptions,
    /// Not something Airlock addresses.
    NotCovered,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Exceptions => "exceptions",
            Status::NotCovered => "not covered",
        }
    }
}

/// One control with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Control {
    /// `SOC 2`, `PCI DSS v4.0.1`, `OWASP NHI Top 10 (2025)`, `NIST CSF 2.0`.
    pub framework: &'static str,
    /// `CC6.1`, `7.2.2`, `NHI1`, `PR.AA-05`…
    pub id: &'static str,
    /// The control's name.
    pub title: &'static str,
    /// What Airlock does about it.
    pub enforced: &'static str,
    /// Where it stands.
    pub status: Status,
    /// Measured facts: (what, value).
    pub evidence: Vec<(String, String)>,
    /// What does not meet it, one line each.
    pub exceptions: Vec<String>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it was made.
    pub generated_at: String,
    /// The audit window, in days.
    pub period_days: i64,
    /// Every control.
    pub controls: Vec<Control>,
}

/// Everything the report is computed from.
pub struct Inputs<'a> {
    /// The store.
    pub store: StoreReader<'a>,
    /// Now.
    pub now: OffsetDateTime,
    /// The audit window.
    pub period_days: i64,
    /// Inventory items with findings.
    pub items: &'a [Item],
    /// Every identity's blast radius.
    pub radii: &'a [BlastRadius],
    /// Separation-of-duties conflicts.
    pub conflicts: &'a [Conflict],
    /// The configured cap on agent token lifetimes.
    pub agent_max_ttl: std::time::Duration,
    /// How many policies are loaded.
    pub policies: usize,
}

fn ev(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn with_code(items: &[Item], codes: &[&str]) -> Vec<String> {
    items
        .iter()
        .flat_map(|i| {
            i.findings
                .iter()
                .filter(|f| codes.contains(&f.code))
                .map(move |f| format!("{} `{}`: {} ({})", i.kind, i.id, f.message, f.code))
        })
        .take(50)
        .collect()
}

fn control(
    framework: &'static str,
    id: &'static str,
    title: &'static str,
    enforced: &'static str,
    evidence: Vec<(String, String)>,
    exceptions: Vec<String>,
) -> Control {
    Control {
        framework,
        id,
        title,
        enforced,
        status: if exceptions.is_empty() {
            Status::Met
        } else {
            Status::Exceptions
        },
        evidence,
        exceptions,
    }
}

fn not_covered(
    framework: &'static str,
    id: &'static str,
    title: &'static str,
    why: &'static str,
) -> Control {
    Control {
        framework,
        id,
        title,
        enforced: why,
        status: Status::NotCovered,
        evidence: Vec::new(),
        exceptions: Vec::new(),
    }
}

/// Builds the report.
pub fn build(i: &Inputs<'_>) -> Result<Report, InventoryError> {
    let store = i.store;
    let identities = store.identities()?;
    let tokens = store.tokens(None)?;
    let secrets = store.secrets()?;
    let unmanaged = store.unmanaged()?;
    let since = i.now - time::Duration::days(i.period_days);
    let audit = store.audit(&airlock_store::AuditFilter {
        since: Some(since),
        ..Default::default()
    })?;
    let chain = store.verify_audit()?;

    let count_kind = |k: IdentityKind| {
        identities
            .iter()
            .filter(|x| x.kind == k && x.enabled)
            .count()
    };
    let nhi: Vec<_> = identities
        .iter()
        .filter(|x| x.kind.needs_owner() && x.enabled)
        .collect();
    let owned = nhi
        .iter()
        .filter(|x| x.owner.is_some() && x.purpose.as_deref().is_some_and(|p| !p.is_empty()))
        .count();
    let live: Vec<_> = tokens
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.expires_at > i.now)
        .collect();
    let nhi_names: Vec<&str> = nhi.iter().map(|x| x.name.as_str()).collect();
    let longest_agent = live
        .iter()
        .filter(|t| nhi_names.contains(&t.identity.as_str()))
        .map(|t| (t.expires_at - t.issued_at).whole_minutes())
        .max()
        .unwrap_or(0);

    let gateway: Vec<_> = audit
        .iter()
        .filter(|r| r.event.details.contains_key("door"))
        .collect();
    let by_outcome = |o: Outcome| gateway.iter().filter(|r| r.event.decision == o).count();
    let mut deny_codes: BTreeMap<String, usize> = BTreeMap::new();
    for r in gateway.iter().filter(|r| r.event.decision == Outcome::Deny) {
        *deny_codes
            .entry(
                r.event
                    .details
                    .get("code")
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
            )
            .or_default() += 1;
    }
    let codes_text = if deny_codes.is_empty() {
        "none".to_string()
    } else {
        deny_codes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let actions = |prefix: &str| {
        audit
            .iter()
            .filter(|r| r.event.action.starts_with(prefix) && r.event.decision == Outcome::Allow)
            .count()
    };
    let chain_text = match &chain {
        Ok(n) => format!("verified, {n} records"),
        Err(e) => format!("BROKEN: {e}"),
    };
    let mut chain_exc = Vec::new();
    if let Err(e) = &chain {
        chain_exc.push(format!("audit chain does not verify: {e}"));
    }

    let alone: Vec<String> = i
        .radii
        .iter()
        .filter(|b| b.score.protected_dangerous_without_human > 0)
        .map(|b| format!("`{}` {}", b.subject.id, b.headline))
        .collect();
    let after: usize = i
        .radii
        .iter()
        .filter(|b| b.score.protected_dangerous_after_approval > 0)
        .count();
    let conflicts_high: Vec<String> = i
        .conflicts
        .iter()
        .filter(|c| c.severity == Severity::High)
        .map(|c| {
            format!(
                "`{}` {} in {}: {}",
                c.identity, c.code, c.environment, c.message
            )
        })
        .collect();
    let all_conflicts: Vec<String> = i
        .conflicts
        .iter()
        .map(|c| {
            format!(
                "`{}` {} ({}) in {}: {}",
                c.identity,
                c.code,
                c.severity.as_str(),
                c.environment,
                c.message
            )
        })
        .collect();
    let mut allowlists: BTreeMap<String, usize> = BTreeMap::new();
    for t in &live {
        *allowlists.entry(t.allow.to_string()).or_default() += 1;
    }
    let allow_text = if allowlists.is_empty() {
        "no live tokens".to_string()
    } else {
        allowlists
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let agent_readable = unmanaged.iter().filter(|u| u.agent_readable).count();
    let mixed_env = live
        .iter()
        .filter(|t| t.environments.len() > 1)
        .map(|t| {
            format!(
                "token `{}` of `{}` spans {}",
                t.id,
                t.identity,
                t.environments
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>();
    let ttl_cap = airlock_core::fmt_duration(i.agent_max_ttl);

    let mut c = Vec::new();
    let soc = "SOC 2";
    let mut ex = with_code(
        i.items,
        &[
            "no_owner",
            "orphaned",
            "no_purpose",
            "agent_ttl_over_24h",
            "identity_disabled",
        ],
    );
    ex.extend(alone.iter().cloned());
    ex.extend(chain_exc.iter().cloned());
    c.push(control(soc, "CC6.1", "Logical access security over protected information assets",
        "every identity is registered with a kind, and agents and services with a human owner and a purpose; credentials are short-lived tokens stored as hashes; every operation is decided by the Cedar policy set and recorded in a hash-chained audit log",
        vec![
            ev("humans / agents / services (enabled)", format!("{} / {} / {}", count_kind(IdentityKind::Human), count_kind(IdentityKind::Agent), count_kind(IdentityKind::Service))),
            ev("agents and services with an owner and a purpose", format!("{owned} of {}", nhi.len())),
            ev("live tokens", live.len()),
            ev("agent token lifetime cap (configured)", &ttl_cap),
            ev("longest live agent/service token (minutes)", longest_agent),
            ev("policies in force (built-in pack included)", i.policies),
            ev("identities that can destroy or change privileges in a protected environment without a human", alone.len()),
            ev("audit chain", &chain_text),
        ],
        ex));
    let mut ex = with_code(i.items, &["unmanaged_agent_readable"]);
    ex.extend(chain_exc.iter().cloned());
    c.push(control(soc, "CC6.6", "Logical access security measures against threats from outside system boundaries",
        "agents hold only Airlock tokens; the gateway authenticates, classifies and decides every request before forwarding it, and injects the sealed upstream credential itself, so the real credential never crosses to the agent",
        vec![
            ev(&format!("gateway decisions in the last {} days", i.period_days), gateway.len()),
            ev("allowed / waited for approval / denied", format!("{} / {} / {}", by_outcome(Outcome::Allow), by_outcome(Outcome::NeedsApproval), by_outcome(Outcome::Deny))),
            ev("denials by reason", &codes_text),
            ev("sealed upstream secrets (never handed out)", secrets.len()),
            ev("unmanaged credentials imported from scans / readable by agents", format!("{} / {agent_readable}", unmanaged.len())),
        ],
        ex));
    let mut ex = conflicts_high.clone();
    ex.extend(alone.iter().cloned());
    ex.extend(with_code(i.items, &["no_purpose"]));
    c.push(control("PCI DSS v4.0.1", "7.2.2", "Access assigned by job classification and function, with least privileges",
        "each token carries an operation-class allowlist and environments, chosen per purpose; destructive and privilege operations in protected environments wait for a human; blast radius shows each credential's worst case",
        vec![
            ev("live tokens by allowlist", &allow_text),
            ev("identities reaching destructive/privilege operations in protected environments only after approval", after),
            ev("identities reaching them without a human", alone.len()),
            ev("separation-of-duties conflicts (high / all)", format!("{} / {}", conflicts_high.len(), i.conflicts.len())),
        ],
        ex));

    let nhi_fw = "OWASP NHI Top 10 (2025)";
    c.push(control(nhi_fw, "NHI1", "Improper Offboarding",
        "`airlock identity offboard` disables an identity and revokes all its tokens in one transaction; agents of an offboarded owner are flagged orphaned until reassigned",
        vec![
            ev(&format!("offboardings in the last {} days", i.period_days), actions("identity.disable")),
            ev("reassignments", actions("identity.reassign")),
            ev("orphaned agents and services", with_code(i.items, &["orphaned"]).len()),
        ],
        with_code(i.items, &["orphaned", "identity_disabled"])));
    c.push(control(nhi_fw, "NHI2", "Secret Leakage",
        "`airlock scan` finds credentials in code, archives and chat exports; imported findings are tracked as unmanaged credentials until moved into Airlock",
        vec![
            ev("unmanaged credentials", unmanaged.len()),
            ev("of them readable by agents", agent_readable),
        ],
        with_code(i.items, &["unmanaged_agent_readable", "unmanaged"])));
    c.push(not_covered(nhi_fw, "NHI3", "Vulnerable Third-Party NHI", "Airlock does not inventory third-party integrations' own credentials unless a scan finds them"));
    c.push(control(nhi_fw, "NHI4", "Insecure Authentication",
        "tokens are random, checksummed, stored as SHA-256 hashes, bound to environments and classes, and refused once expired, revoked or their identity disabled",
        vec![
            ev("token verification refusals in the window", deny_codes.iter().filter(|(k, _)| k.starts_with("token_") || *k == "unauthenticated").map(|(_, v)| v).sum::<usize>()),
        ],
        Vec::new()));
    c.push(control(nhi_fw, "NHI5", "Overprivileged NHI",
        "blast radius evaluates the real policy for every credential; separation-of-duties conflicts are flagged",
        vec![
            ev("identities reaching destructive/privilege in protected environments without a human", alone.len()),
            ev("separation-of-duties conflicts", i.conflicts.len()),
        ],
        all_conflicts.clone()));
    c.push(not_covered(
        nhi_fw,
        "NHI6",
        "Insecure Cloud Deployment Configurations",
        "Airlock does not assess CI/CD or cloud deployment configuration",
    ));
    c.push(control(nhi_fw, "NHI7", "Long-Lived Secrets",
        "agent and service tokens live at most 24 h (configurable lower); sealed upstream secrets are reported until rotated",
        vec![
            ev("agent token lifetime cap", &ttl_cap),
            ev("sealed secrets without expiry (rotate at the upstream)", secrets.len()),
        ],
        with_code(i.items, &["agent_ttl_over_24h"])));
    c.push(control(nhi_fw, "NHI8", "Environment Isolation",
        "the built-in `environment-match` policy refuses any operation on a resource outside the token's environments; undeclared resources count as the most protected",
        vec![
            ev("environment mismatches refused in the window", deny_codes.get("environment_mismatch").copied().unwrap_or(0)),
            ev("live tokens spanning several environments", mixed_env.len()),
        ],
        mixed_env));
    c.push(control(nhi_fw, "NHI9", "NHI Reuse",
        "every token belongs to one identity with one purpose; the audit names the token id of every decision",
        vec![ev("identities with more than one live token", {
            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
            for t in &live {
                *per.entry(t.identity.as_str()).or_default() += 1;
            }
            per.values().filter(|n| **n > 1).count()
        })],
        Vec::new()));
    c.push(control(nhi_fw, "NHI10", "Human Use of NHI",
        "approvals need a human with a second factor; a human's token readable by agents is flagged",
        vec![ev("humans' live tokens readable by agents", with_code(i.items, &["agent_accessible"]).len())],
        with_code(i.items, &["agent_accessible"])));

    let nist = "NIST CSF 2.0";
    c.push(control(nist, "PR.AA-01", "Identities and credentials for authorized users, services, and hardware are managed by the organization",
        "one inventory of identities, tokens, sealed secrets and unmanaged credentials, each with owner, purpose, review date and findings",
        vec![
            ev("inventory items", i.items.len()),
            ev("items with high findings", i.items.iter().filter(|x| x.worst() == Some(Severity::High)).count()),
            ev(&format!("reviews in the last {} days", i.period_days), actions("identity.review")),
        ],
        with_code(i.items, &["review_overdue", "no_owner", "orphaned"])));
    c.push(control(nist, "PR.AA-02", "Identities are proofed and bound to credentials based on the context of interactions",
        "tokens are issued only to enabled identities whose owner is enabled, for named environments and classes",
        vec![ev(&format!("token issues in the last {} days", i.period_days), actions("token.issue"))],
        Vec::new()));
    c.push(control(nist, "PR.AA-03", "Users, services, and hardware are authenticated",
        "every gateway request is authenticated by token before classification; approvers also present a TOTP code",
        vec![ev("gateway decisions", gateway.len()), ev("unauthenticated or bad-token refusals", deny_codes.iter().filter(|(k, _)| k.starts_with("token_") || *k == "unauthenticated").map(|(_, v)| v).sum::<usize>())],
        Vec::new()));
    c.push(control(nist, "PR.AA-05", "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed, and incorporate least privilege and separation of duties",
        "Cedar policies decide every operation; blast radius and separation-of-duties checks review what they allow",
        vec![
            ev("policies in force", i.policies),
            ev("separation-of-duties conflicts", i.conflicts.len()),
            ev("overdue reviews", with_code(i.items, &["review_overdue"]).len()),
        ],
        {
            let mut x = all_conflicts;
            x.extend(with_code(i.items, &["review_overdue"]));
            x
        }));
    c.push(not_covered(
        nist,
        "PR.AA-06",
        "Physical access to assets is managed, monitored, and enforced",
        "physical access is outside Airlock",
    ));

    Ok(Report {
        generated_at: airlock_core::fmt_time(i.now),
        period_days: i.period_days,
        controls: c,
    })
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "# Airlock compliance evidence\n\nGenerated {} from the live inventory and the last {} days of the audit log.\n\n| Framework | Control | Status | Exceptions |\n|---|---|---|---|\n",
        r.generated_at, r.period_days
    );
    for c in &r.controls {
        let _ = writeln!(
            s,
            "| {} | {} {} | {} | {} |",
            c.framework,
            c.id,
            md_cell(c.title),
            c.status.as_str(),
            c.exceptions.len()
        );
    }
    for c in &r.controls {
        let _ = write!(
            s,
            "\n## {} {}: {}\n\n**Status:** {}\n\n**What Airlock enforces:** {}\n\n",
            c.framework,
            c.id,
            c.title,
            c.status.as_str(),
            md_cell(c.enforced)
        );
        if !c.evidence.is_empty() {
            s.push_str("| Evidence | Value |\n|---|---|\n");
            for (k, v) in &c.evidence {
                let _ = writeln!(s, "| {} | {} |", md_cell(k), md_cell(v));
            }
            s.push('\n');
        }
        if !c.exceptions.is_empty() {
            s.push_str("Exceptions:\n\n");
            for e in &c.exceptions {
                let _ = writeln!(s, "- {}", md_cell(e));
            }
        }
    }
    s
}

/// The console's escaping: element content and attribute values, control characters blanked.
use airlock_gateway::console::esc as html_escape;

/// A self-contained HTML page.
pub fn html(r: &Report) -> String {
    let e = html_escape;
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Airlock compliance evidence</title>\n<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}.met{{color:#070}}.exceptions{{color:#b00}}.not_covered{{color:#777}}</style></head><body>\n<h1>Airlock compliance evidence</h1>\n<p>Generated {} from the live inventory and the last {} days of the audit log.</p>\n<table><tr><th>Framework</th><th>Control</th><th>Status</th><th>Exceptions</th></tr>\n",
        e(&r.generated_at), r.period_days
    );
    for c in &r.controls {
        let class = match c.status {
            Status::Met => "met",
            Status::Exceptions => "exceptions",
            Status::NotCovered => "not_covered",
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{} {}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
            e(c.framework),
            e(c.id),
            e(c.title),
            c.status.as_str(),
            c.exceptions.len()
        );
    }
    s.push_str("</table>\n");
    for c in &r.controls {
        let _ = writeln!(
            s,
            "<h2>{} {}: {}</h2>\n<p><b>What Airlock enforces:</b> {}</p>",
            e(c.framework),
            e(c.id),
            e(c.title),
            e(c.enforced)
        );
        if !c.evidence.is_empty() {
            s.push_str("<table><tr><th>Evidence</th><th>Value</th></tr>\n");
            for (k, v) in &c.evidence {
                let _ = writeln!(s, "<tr><td>{}</td><td>{}</td></tr>", e(k), e(v));
            }
            s.push_str("</table>\n");
        }
        if !c.exceptions.is_empty() {
            s.push_str("<p>Exceptions:</p><ul>\n");
            for x in &c.exceptions {
                let _ = writeln!(s, "<li>{}</li>", e(x));
            }
            s.push_str("</ul>\n");
        }
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_operator_supplied_text() {
        assert_eq!(
            html_escape("<script>&\"'"),
            "&lt;script&gt;&amp;&quot;&#39;"
        );
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
    }
}
