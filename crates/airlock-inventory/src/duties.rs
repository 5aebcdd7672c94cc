//! Separation of duties, judged from blast radius rather than from names or roles.
//!
//! Three conflicts, each about one identity holding both sides of a control:
//! - `create_and_destroy`: it can write and also destroy in the same protected environment.
//!   High when the destruction needs no human, medium when each one waits for an approval
//!   (the approval is then the only thing separating the two duties).
//! - `secrets_and_destroy`: it can obtain credentials and also destroy something protected.
//!   It obtains credentials when it can run a privilege operation (minting tokens, changing
//!   members) without a human, or, for an agent or service, when an unmanaged credential that
//!   agents can read has been imported: it can read a key Airlock does not control. Sealed
//!   secrets themselves are never readable through Airlock.
//! - `request_and_approve`: a human who can approve in a protected environment (a TOTP factor
//!   enrolled and a live token covering it) and who can also cause approval requests there,
//!   with its own tokens or through an agent or service it owns. Airlock already refuses an
//!   approval by the requester itself; what is left is one person answering for both sides.

use crate::findings::Severity;
use crate::reach::{BlastRadius, Reach};
use airlock_core::{IdentityKind, OpClass};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One separation-of-duties conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The identity.
    pub identity: String,
    /// `create_and_destroy`, `secrets_and_destroy` or `request_and_approve`.
    pub code: &'static str,
    /// How bad.
    pub severity: Severity,
    /// The environment it concerns.
    pub environment: String,
    /// What it means, in words.
    pub message: String,
}

/// What the duty checks need to know besides blast radius.
#[derive(Debug, Default)]
pub struct Facts {
    /// Humans with a TOTP factor enrolled.
    pub totp: BTreeSet<String>,
    /// How many unmanaged credentials agents can read.
    pub agent_readable_unmanaged: usize,
}

fn envs_where(b: &BlastRadius, class: OpClass, min: Reach) -> BTreeMap<String, Reach> {
    let mut out: BTreeMap<String, Reach> = BTreeMap::new();
    for e in b.reached() {
        if e.class == class && e.reach >= min && e.protected {
            let env = e
                .environment
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "unknown".into());
            let r = out.entry(env).or_insert(e.reach);
            *r = (*r).max(e.reach);
        }
    }
    out
}

/// The conflicts of every identity in `all` (one blast radius per identity).
pub fn conflicts(all: &[BlastRadius], facts: &Facts) -> Vec<Conflict> {
    let mut out = Vec::new();
    for b in all {
        let id = b.subject.id.clone();
        let kind = b.subject.identity_kind;
        let writes = envs_where(b, OpClass::Write, Reach::AfterApproval);
        let destroys = envs_where(b, OpClass::Destructive, Reach::AfterApproval);
        for (env, d) in &destroys {
            if writes.contains_key(env) {
                let alone = d.without_human();
                out.push(Conflict {
                    identity: id.clone(),
                    code: "create_and_destroy",
                    severity: if alone { Severity::High } else { Severity::Medium },
                    environment: env.clone(),
                    message: format!(
                        "can both create and destroy in protected {env}{}; split it into a writer and a separately approved destroyer",
                        if alone { " with no human in between" } else { " (each destruction waits for an approval)" }
                    ),
                });
            }
        }
        let mints: BTreeMap<String, Reach> = envs_where(b, OpClass::Privilege, Reach::Outright);
        let reads_unmanaged =
            kind.is_some_and(|k| k != IdentityKind::Human) && facts.agent_readable_unmanaged > 0;
        for env in destroys.keys() {
            let how = if mints.contains_key(env) {
                Some("can mint or change credentials (privilege operations) without a human")
            } else if reads_unmanaged {
                Some("can read unmanaged credentials that agents can read")
            } else {
                None
            };
            if let Some(how) = how {
                out.push(Conflict {
                    identity: id.clone(),
                    code: "secrets_and_destroy",
                    severity: Severity::High,
                    environment: env.clone(),
                    message: format!("{how} and can also destroy in protected {env}"),
                });
            }
        }
    }
    // Approvers: humans with TOTP and a live token covering the environment.
    for b in all {
        if b.subject.identity_kind != Some(IdentityKind::Human)
            || !facts.totp.contains(&b.subject.id)
        {
            continue;
        }
        // An approver answers for the environments its own live tokens cover; reaching anything
        // in a protected environment means a token covers it.
        let covers: BTreeSet<String> = b
            .reached()
            .filter(|e| e.protected)
            .filter_map(|e| e.environment.as_ref().map(|e| e.to_string()))
            .collect();
        let mut requesters: Vec<&BlastRadius> = vec![b];
        requesters.extend(
            all.iter()
                .filter(|o| o.subject.owner.as_deref() == Some(b.subject.id.as_str())),
        );
        for env in &covers {
            let via: Vec<&str> = requesters
                .iter()
                .filter(|r| {
                    r.reached().any(|e| {
                        e.reach == Reach::AfterApproval
                            && e.environment.as_ref().is_some_and(|x| x.as_str() == env)
                    })
                })
                .map(|r| r.subject.id.as_str())
                .collect();
            if via.is_empty() {
                continue;
            }
            out.push(Conflict {
                identity: b.subject.id.clone(),
                code: "request_and_approve",
                severity: Severity::Medium,
                environment: env.clone(),
                message: format!(
                    "can approve in protected {env} and can also cause the requests it approves there (through {}); let someone else approve for them",
                    via.join(", ")
                ),
            });
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.identity.cmp(&b.identity))
            .then(a.code.cmp(b.code))
            .then(a.environment.cmp(&b.environment))
    });
    out
}
