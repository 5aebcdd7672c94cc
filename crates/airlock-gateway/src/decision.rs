//! The one decision path every door shares: authenticate -> (door classified) -> decide -> audit.
//!
//! A door turns its wire format into a [`Classification`] and calls [`Decider::decide`]; it gets
//! back a [`Verdict`] and renders it in its own idiom (HTTP 403 + JSON, a PostgreSQL
//! ErrorResponse). Nothing here knows about HTTP or SQL, so every door enforces the same rules.

use crate::audit_writer::AuditWriter;
use crate::runtime::{Runtime, UpstreamRt};
use airlock_audit::{Actor, AuditEvent};
use airlock_authority::{Authority, Claims, VerifyError};
use airlock_classify::Classification;
use airlock_core::{Clock, EnvName, OpClass, Outcome};
use airlock_policy::{Approval, Input, Principal, Resource};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// What a door asks.
#[derive(Debug)]
pub struct DoorRequest<'a> {
    /// Which door: `http`, `postgres`.
    pub door: &'static str,
    /// The upstream the request is for.
    pub upstream: &'a UpstreamRt,
    /// The Airlock token the caller presented, if any.
    pub token: Option<&'a str>,
    /// What the request would do.
    pub classification: &'a Classification,
    /// Door-specific facts for the audit record (method, path, statement fingerprint).
    pub details: BTreeMap<String, String>,
}

/// The decision for one operation of a request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpVerdict {
    /// Action name.
    pub action: String,
    /// Class.
    pub class: OpClass,
    /// Resource id (the upstream's name when the operation names none).
    pub resource: String,
    /// The resource's environment, if known.
    pub environment: Option<EnvName>,
    /// The policy's answer.
    pub decision: airlock_policy::Decision,
}

/// The answer for a whole request.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The worst outcome over all operations.
    pub outcome: Outcome,
    /// Stable code: `allowed`, or the deciding refusal's code (`unauthenticated`,
    /// `token_expired`, `environment_mismatch`, `approval_required`, `audit_unavailable`, …).
    pub code: String,
    /// What happened.
    pub reason: String,
    /// What to do next.
    pub hint: String,
    /// The request's class (the most dangerous of its parts).
    pub class: OpClass,
    /// Per-operation answers.
    pub operations: Vec<OpVerdict>,
    /// The audit record's sequence number, when it was committed before answering.
    pub audit_seq: Option<u64>,
    /// Whether the caller was not authenticated at all (HTTP 401 rather than 403).
    pub unauthenticated: bool,
}

/// The shared decision service.
#[derive(Clone)]
pub struct Decider {
    authority: Arc<Authority>,
    audit: AuditWriter,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decider")
    }
}

fn verify_code(e: &VerifyError) -> String {
    match e {
        VerifyError::Expired { .. } => "token_expired".into(),
        VerifyError::Revoked { .. } => "token_revoked".into(),
        VerifyError::Malformed | VerifyError::BadChecksum => "token_malformed".into(),
        VerifyError::Unknown => "token_unknown".into(),
        other => format!("token_{}", other.code()),
    }
}

impl Decider {
    /// A decider over an authority (token checks) and an audit writer.
    pub fn new(authority: Arc<Authority>, audit: AuditWriter, clock: Arc<dyn Clock>) -> Decider {
        Decider {
            authority,
            audit,
            clock,
        }
    }

    /// The authority, for doors that need it.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }

    /// Decides a request and audits the decision: durably before answering for anything that is
    /// not an allowed read; an allowed read's record is queued and follows in the next batch.
    pub async fn decide(&self, rt: &Runtime, mut req: DoorRequest<'_>) -> Verdict {
        let started = Instant::now();
        let now = self.clock.now();
        let class = req.classification.class();
        let mut details = std::mem::take(&mut req.details);
        details.insert("door".into(), req.door.into());
        details.insert("upstream".into(), req.upstream.name.clone());
        details.insert("class".into(), class.as_str().into());

        // Authenticate.
        let claims: Result<Arc<Claims>, VerifyError> = match req.token {
            None => Err(VerifyError::Malformed),
            Some(t) => self.authority.verify(t, now),
        };
        let mut verdict = match &claims {
            Err(e) => {
                let missing = req.token.is_none();
                Verdict {
                    outcome: Outcome::Deny,
                    code: if missing {
                        "unauthenticated".into()
                    } else {
                        verify_code(e)
                    },
                    reason: if missing {
                        "no Airlock token was presented".into()
                    } else {
                        e.to_string()
                    },
                    hint: if missing {
                        "send your Airlock token as `Authorization: Bearer alk_…`; ask your owner for one".into()
                    } else {
                        "ask your owner for a new Airlock token".into()
                    },
                    class,
                    operations: Vec::new(),
                    audit_seq: None,
                    unauthenticated: missing,
                }
            }
            Ok(c) => self.decide_operations(rt, &req, c, now.unix_timestamp()),
        };

        // Audit: one record per decision.
        let actor = match &claims {
            Ok(c) => c.actor(),
            Err(e) => {
                let mut a = Actor::unauthenticated();
                a.token_id = e.token_id().map(str::to_string);
                a
            }
        };
        if let Ok(c) = &claims {
            details.insert(
                "token_environments".into(),
                c.environments
                    .iter()
                    .map(EnvName::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        let policies: Vec<String> = verdict
            .operations
            .iter()
            .flat_map(|o| o.decision.policies.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !policies.is_empty() {
            details.insert("policies".into(), policies.join(","));
        }
        details.insert("code".into(), verdict.code.clone());
        details.insert(
            "latency_us".into(),
            started.elapsed().as_micros().to_string(),
        );
        let ops = &verdict.operations;
        let join = |f: &dyn Fn(&OpVerdict) -> String| -> Option<String> {
            let v: Vec<String> = ops
                .iter()
                .map(f)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if v.is_empty() {
                None
            } else {
                Some(v.join(","))
            }
        };
        let event = AuditEvent {
            time: now,
            actor,
            action: join(&|o| o.action.clone()).unwrap_or_else(|| format!("{}.request", req.door)),
            resource: join(&|o| o.resource.clone()),
            environment: join(&|o| {
                o.environment
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "unknown".into())
            }),
            decision: verdict.outcome,
            reason: verdict.reason.clone(),
            details,
        };
        if verdict.outcome == Outcome::Allow && class == OpClass::Read {
            self.audit.append(event).await;
        } else {
            match self.audit.append_durable(event).await {
                Ok(seq) => verdict.audit_seq = Some(seq),
                Err(e) => {
                    // Fail closed: an operation whose record cannot be written does not happen.
                    tracing::error!(error = %e, "refusing: audit unavailable");
                    verdict.outcome = Outcome::Deny;
                    verdict.code = "audit_unavailable".into();
                    verdict.reason = format!("refused because {e}");
                    verdict.hint = "retry shortly; tell the Airlock operator if it persists".into();
                }
            }
        }
        verdict
    }

    /// Evaluates policy for every operation without auditing: the dry run behind
    /// `airlock policy explain`, and the core of [`Decider::decide`].
    pub fn decide_operations(
        &self,
        rt: &Runtime,
        req: &DoorRequest<'_>,
        claims: &Claims,
        now: i64,
    ) -> Verdict {
        let class = req.classification.class();
        let mut ops = Vec::with_capacity(req.classification.operations.len());
        for op in &req.classification.operations {
            let resource_id = op
                .resource_id
                .clone()
                .unwrap_or_else(|| req.upstream.name.clone());
            // The environment comes from the upstream or the catalog, never from the request.
            let env: Option<EnvName> = match &req.upstream.environment {
                Some(e) => Some(e.clone()),
                None => op
                    .resource_id
                    .as_deref()
                    .and_then(|id| rt.catalog.lookup(id))
                    .cloned(),
            };
            let decision = rt.policy.decide(&Input {
                principal: Principal {
                    id: claims.identity.as_str(),
                    kind: claims.kind,
                    owner: claims.owner.as_ref().map(|o| o.as_str()),
                    token_id: &claims.token_id,
                    environments: &claims.environments,
                    allowed: claims.allow,
                },
                action: &op.action,
                class: op.class,
                resource: Resource {
                    kind: &op.resource_kind,
                    id: &resource_id,
                    environment: env.as_ref(),
                    protected: rt.protected(env.as_ref()),
                },
                approval: Approval::None,
                now,
            });
            ops.push(OpVerdict {
                action: op.action.clone(),
                class: op.class,
                resource: resource_id,
                environment: env,
                decision,
            });
        }
        // The request's answer is its worst operation's: one refused part refuses the whole.
        let rank = |o: Outcome| match o {
            Outcome::Allow => 0,
            Outcome::NeedsApproval => 1,
            Outcome::Deny => 2,
        };
        let worst = ops.iter().max_by_key(|o| rank(o.decision.outcome));
        match worst {
            None => Verdict {
                outcome: Outcome::Deny,
                code: "unclassified".into(),
                reason: "the request could not be classified".into(),
                hint: "tell the Airlock operator which request this was".into(),
                class,
                operations: ops,
                audit_seq: None,
                unauthenticated: false,
            },
            Some(w) => {
                let d = w.decision.clone();
                let reason = if d.outcome == Outcome::Allow {
                    format!(
                        "{} allowed for `{}` ({})",
                        class,
                        claims.identity,
                        ops.iter()
                            .map(|o| o.action.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    d.reason.clone()
                };
                Verdict {
                    outcome: d.outcome,
                    code: d.code.to_string(),
                    reason,
                    hint: d.hint,
                    class,
                    operations: ops,
                    audit_seq: None,
                    unauthenticated: false,
                }
            }
        }
    }
}
