//! The one decision path every door shares: authenticate -> (door classified) -> decide -> audit.
//!
//! A door turns its wire format into a [`Classification`] and calls [`Decider::decide`]; it gets
//! back a [`Verdict`] and renders it in its own idiom (HTTP 403 + JSON, a PostgreSQL
//! ErrorResponse). Nothing here knows about HTTP or SQL, so every door enforces the same rules.

use crate::audit_writer::{AuditError, AuditWriter, Pending};
use crate::runtime::{Runtime, UpstreamRt};
use airlock_audit::{Actor, AuditEvent};
use airlock_authority::{Authority, Claims, VerifyError};
use airlock_classify::Classification;
use airlock_core::{Clock, EnvName, OpClass, Outcome};
use airlock_policy::{Approval, Input, Principal, Resource};
use airlock_store::{ApprovalRecord, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// What a door asks.
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
    /// What exactly would run, for binding an approval: method, normalised path and body
    /// digest for HTTP; the statement's digest for SQL. Another body, another approval. Made
    /// only when the decision involves an approval (hashing a body costs more than a read's
    /// whole policy decision), once.
    pub fingerprint: &'a (dyn Fn() -> String + Sync),
    /// The operation as a human reads it in an approval queue (`POST /graphql volumeDelete`);
    /// made only when an approval request is recorded.
    pub summary: &'a (dyn Fn() -> String + Sync),
}

impl std::fmt::Debug for DoorRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoorRequest")
            .field("door", &self.door)
            .field("upstream", &self.upstream.name)
            .field("classification", &self.classification)
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
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
    /// The approval request this decision waits for, or the grant it used: id and expiry.
    pub approval: Option<(String, time::OffsetDateTime)>,
}

/// Fail closed: an operation whose record cannot be written does not happen.
pub fn audit_unavailable(mut v: Verdict, e: &AuditError) -> Verdict {
    v.outcome = Outcome::Deny;
    v.code = "audit_unavailable".into();
    v.reason = format!("refused because {e}");
    v.hint = "retry shortly; tell the Airlock operator if it persists".into();
    v
}

/// The shared decision service.
#[derive(Clone)]
pub struct Decider {
    authority: Arc<Authority>,
    audit: AuditWriter,
    clock: Arc<dyn Clock>,
    /// Approvals are written through this connection (the authority's store view is read-only).
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decider")
    }
}

/// The distinct values of one field over a request's operations, sorted and comma-joined: how
/// a multi-operation request is named in audit records and approval requests.
fn join_distinct(ops: &[OpVerdict], f: &dyn Fn(&OpVerdict) -> String) -> String {
    // Most requests are one operation: nothing to sort or deduplicate.
    if let [one] = ops {
        return f(one);
    }
    ops.iter()
        .map(f)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(",")
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
    /// A decider over an authority (token checks), an audit writer and the store holding approvals.
    pub fn new(
        authority: Arc<Authority>,
        audit: AuditWriter,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Decider {
        Decider {
            authority,
            audit,
            clock,
            store,
        }
    }

    /// The store holding approvals.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Audits a refused admin API call (an agent or service knocking).
    pub async fn audit_admin_refusal(&self, claims: &Claims, what: &str, reason: &str) {
        let event = AuditEvent {
            time: self.clock.now(),
            actor: claims.actor(),
            action: "admin.request".into(),
            resource: Some(what.to_string()),
            environment: None,
            decision: Outcome::Deny,
            reason: reason.to_string(),
            details: BTreeMap::from([(
                "code".to_string(),
                "agents_never_administer_airlock".to_string(),
            )]),
        };
        if let Err(e) = self.audit.append_durable(event).await {
            tracing::error!(error = %e, "could not audit a refused admin request");
        }
    }

    /// Marks approval requests past their expiry as expired and audits each.
    pub async fn sweep_expired(&self) {
        let store = Arc::clone(&self.store);
        let now = self.clock.now();
        let Ok(Ok(expired)) =
            tokio::task::spawn_blocking(move || store.expire_approvals(now)).await
        else {
            return;
        };
        for a in expired {
            let event = AuditEvent {
                time: now,
                actor: Actor {
                    id: a.requester.clone(),
                    kind: a.requester_kind,
                    owner: a.owner.clone(),
                    token_id: Some(a.token_id.clone()),
                },
                action: "approval.expired".into(),
                resource: Some(a.resource.clone()),
                environment: Some(a.environment.clone()),
                decision: Outcome::Deny,
                reason: format!(
                    "approval {} for {} expired undecided or unused",
                    a.id, a.operation
                ),
                details: BTreeMap::from([("approval".to_string(), a.id.clone())]),
            };
            self.audit.append(event).await;
        }
    }

    /// The time now, by the decision path's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// Durably audits a refusal a door made on its own (an operation no policy can allow);
    /// returns its sequence number, or None when the audit is unavailable (the refusal stands).
    pub async fn audit_refusal(&self, event: AuditEvent) -> Option<u64> {
        match self.audit.append_durable(event).await {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::error!(error = %e, "could not audit a refusal");
                None
            }
        }
    }

    /// The authority, for doors that need it.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }

    /// Decides a request and audits the decision: durably before answering for anything that is
    /// not an allowed read; an allowed read's record is queued and follows in the next batch.
    pub async fn decide(&self, rt: &Runtime, req: DoorRequest<'_>) -> Verdict {
        self.decide_with(rt, req, false).await.0
    }

    /// Like [`Decider::decide`], except that an allowed write's record is only queued: the
    /// returned [`Pending`] resolves when it is committed. For a door that can hold back the
    /// write's effect from becoming permanent until then (the PostgreSQL door inside a
    /// transaction block, which waits before forwarding anything that could commit); its
    /// record still precedes, in the chain, anything the door forwards after that wait.
    pub async fn decide_deferring_writes(
        &self,
        rt: &Runtime,
        req: DoorRequest<'_>,
    ) -> (Verdict, Option<Pending>) {
        self.decide_with(rt, req, true).await
    }

    /// Wakes the audit writer so deferred records are committed now.
    pub fn flush_audit(&self) {
        self.audit.flush();
    }

    async fn decide_with(
        &self,
        rt: &Runtime,
        mut req: DoorRequest<'_>,
        defer_writes: bool,
    ) -> (Verdict, Option<Pending>) {
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
                    approval: None,
                }
            }
            Ok(c) => {
                let v = self.decide_operations(rt, &req, c, now.unix_timestamp(), Approval::None);
                if v.outcome == Outcome::NeedsApproval {
                    self.approval_path(rt, &req, c, v, now, &mut details).await
                } else {
                    v
                }
            }
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
        let policies: std::collections::BTreeSet<&str> = verdict
            .operations
            .iter()
            .flat_map(|o| o.decision.policies.iter().map(String::as_str))
            .collect();
        if !policies.is_empty() {
            details.insert(
                "policies".into(),
                policies.into_iter().collect::<Vec<_>>().join(","),
            );
        }
        details.insert("code".into(), verdict.code.clone());
        details.insert(
            "latency_us".into(),
            started.elapsed().as_micros().to_string(),
        );
        let ops = &verdict.operations;
        let join = |f: &dyn Fn(&OpVerdict) -> String| {
            Some(join_distinct(ops, f)).filter(|s| !s.is_empty())
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
        let mut pending = None;
        if verdict.outcome == Outcome::Allow && class == OpClass::Read {
            self.audit.append(event).await;
        } else if defer_writes && verdict.outcome == Outcome::Allow && class == OpClass::Write {
            match self.audit.append_deferred(event).await {
                Ok(p) => pending = Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "refusing: audit unavailable");
                    verdict = audit_unavailable(verdict, &e);
                }
            }
        } else {
            match self.audit.append_durable(event).await {
                Ok(seq) => verdict.audit_seq = Some(seq),
                Err(e) => {
                    tracing::error!(error = %e, "refusing: audit unavailable");
                    verdict = audit_unavailable(verdict, &e);
                }
            }
        }
        (verdict, pending)
    }

    /// Evaluates policy for every operation without auditing: the dry run behind
    /// `airlock policy explain`, and the core of [`Decider::decide`].
    pub fn decide_operations(
        &self,
        rt: &Runtime,
        req: &DoorRequest<'_>,
        claims: &Claims,
        now: i64,
        approval: Approval,
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
                approval,
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
                approval: None,
            },
            Some(w) => {
                let mut d = w.decision.clone();
                if req.door == "http" && d.outcome == Outcome::Deny {
                    explain_unclassified(&mut d, &w.action, req.classification);
                }
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
                    approval: None,
                }
            }
        }
    }

    /// The digest an approval is bound to: this principal, these operations on these resources,
    /// this exact request.
    fn digest(req: &DoorRequest<'_>, claims: &Claims, v: &Verdict) -> String {
        let join = |f: &dyn Fn(&OpVerdict) -> String| {
            v.operations.iter().map(f).collect::<Vec<_>>().join(",")
        };
        airlock_approval::operation_digest(
            claims.identity.as_str(),
            claims.kind.as_str(),
            &join(&|o| o.resource.clone()),
            &join(&|o| {
                o.environment
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            }),
            &format!("{}:{}", req.upstream.name, join(&|o| o.action.clone())),
            // The door's fingerprint already carries the body's SHA-256.
            &(req.fingerprint)(),
            b"",
        )
    }

    /// A decision that needs a human: use a granted approval for exactly this operation once, or
    /// record (or find) the pending request and say so.
    async fn approval_path(
        &self,
        rt: &Runtime,
        req: &DoorRequest<'_>,
        claims: &Claims,
        mut v: Verdict,
        now: time::OffsetDateTime,
        details: &mut BTreeMap<String, String>,
    ) -> Verdict {
        let digest = Self::digest(req, claims, &v);
        let hold = rt.config.approvals.hold.0;
        let deadline = Instant::now() + hold;
        let mut requested: Option<ApprovalRecord> = None;
        loop {
            match self
                .store
                .granted_approval(&digest, claims.identity.as_str(), self.clock.now())
            {
                Ok(Some(grant)) => {
                    let granted = self.decide_operations(
                        rt,
                        req,
                        claims,
                        now.unix_timestamp(),
                        Approval::Granted,
                    );
                    if granted.outcome != Outcome::Allow {
                        // An approval never lifts any other refusal.
                        return granted;
                    }
                    let event = AuditEvent {
                        time: self.clock.now(),
                        actor: claims.actor(),
                        action: "approval.executed".into(),
                        resource: Some(grant.resource.clone()),
                        environment: Some(grant.environment.clone()),
                        decision: Outcome::Allow,
                        reason: format!("approval {} used for its one execution", grant.id),
                        details: BTreeMap::from([("approval".to_string(), grant.id.clone())]),
                    };
                    match self
                        .store
                        .consume_approval(&grant.id, self.clock.now(), event)
                    {
                        Ok(true) => {
                            details.insert("approval".into(), grant.id.clone());
                            let mut g = granted;
                            g.reason = format!(
                                "{} approved by {} ({})",
                                g.class,
                                grant.approvers.join(" and "),
                                grant.id
                            );
                            g.approval = Some((grant.id, grant.expires_at));
                            return g;
                        }
                        // Another identical request used it first: this one needs its own.
                        Ok(false) => {}
                        Err(e) => return self.approval_store_failed(v, &e.to_string()),
                    }
                }
                Ok(None) => {}
                Err(e) => return self.approval_store_failed(v, &e.to_string()),
            }
            if requested.is_none() {
                match self.request(rt, req, claims, &v, &digest) {
                    Ok(r) => requested = Some(r),
                    Err(e) => return self.approval_store_failed(v, &e),
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Some(r) = &requested {
                // Deny is final: stop holding as soon as a human refuses.
                if let Ok(Some(cur)) = self.store.approval(&r.id) {
                    if cur.state == airlock_store::ApprovalState::Denied {
                        break;
                    }
                }
            }
        }
        if let Some(r) = requested {
            details.insert("approval".into(), r.id.clone());
            if let Ok(Some(cur)) = self.store.approval(&r.id) {
                if cur.state == airlock_store::ApprovalState::Denied {
                    v.outcome = Outcome::Deny;
                    v.code = "approval_denied".into();
                    v.reason = format!(
                        "a human denied approval {}{}",
                        cur.id,
                        cur.decision_reason
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    );
                    v.hint = "do not retry this operation; talk to your owner".into();
                    v.approval = Some((cur.id, cur.expires_at));
                    return v;
                }
            }
            v.hint = format!(
                "this needs human approval; approval {} is waiting for a human. Retry the identical request after it is approved, before {}",
                r.id,
                airlock_core::fmt_time(r.expires_at)
            );
            v.approval = Some((r.id, r.expires_at));
        }
        v
    }

    fn request(
        &self,
        rt: &Runtime,
        req: &DoorRequest<'_>,
        claims: &Claims,
        v: &Verdict,
        digest: &str,
    ) -> Result<ApprovalRecord, String> {
        let now = self.clock.now();
        let ttl = time::Duration::try_from(rt.config.approvals.ttl.0)
            .unwrap_or(time::Duration::minutes(15));
        let envs: Vec<&EnvName> = v
            .operations
            .iter()
            .filter_map(|o| o.environment.as_ref())
            .collect();
        let needed = envs
            .iter()
            .filter_map(|e| rt.config.environment(e))
            .map(|e| e.approvals_required)
            .max()
            .unwrap_or(1);
        let id = airlock_approval::new_approval_id().map_err(|e| e.to_string())?;
        let join = |f: &dyn Fn(&OpVerdict) -> String| join_distinct(&v.operations, f);
        let record = ApprovalRecord {
            id,
            digest: digest.to_string(),
            requester: claims.identity.to_string(),
            requester_kind: claims.kind,
            owner: claims.owner.as_ref().map(|o| o.to_string()),
            token_id: claims.token_id.clone(),
            action: join(&|o| o.action.clone()),
            operation: (req.summary)(),
            resource: join(&|o| o.resource.clone()),
            environment: join(&|o| {
                o.environment
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            }),
            reason: v.reason.clone(),
            created_at: now,
            expires_at: now + ttl,
            state: airlock_store::ApprovalState::Pending,
            approvals_needed: needed,
            approvers: Vec::new(),
            decided_at: None,
            decision_reason: None,
            consumed_at: None,
        };
        let event = AuditEvent {
            time: now,
            actor: claims.actor(),
            action: "approval.requested".into(),
            resource: Some(record.resource.clone()),
            environment: Some(record.environment.clone()),
            decision: Outcome::NeedsApproval,
            reason: format!(
                "{} waits for {} human approval(s): {}",
                record.operation, needed, record.reason
            ),
            details: BTreeMap::from([("approval".to_string(), record.id.clone())]),
        };
        let (rec, created) = self
            .store
            .request_approval(&record, event)
            .map_err(|e| e.to_string())?;
        if created {
            self.announce(rt, &rec);
        }
        Ok(rec)
    }

    /// Sends the notices for a new request in the background; every attempt is audited, and a
    /// failed notification never approves anything.
    fn announce(&self, rt: &Runtime, rec: &ApprovalRecord) {
        let envs: Vec<EnvName> = rec
            .environment
            .split(',')
            .filter_map(|e| EnvName::new(e).ok())
            .collect();
        let targets: Vec<(airlock_approval::notify::Target, String)> = envs
            .iter()
            .filter_map(|e| rt.notify.get(e))
            .flat_map(|n| {
                n.targets
                    .iter()
                    .cloned()
                    .map(move |t| (t, n.console_url.clone()))
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let notice = airlock_approval::notify::ApprovalNotice {
            approval_id: rec.id.clone(),
            requester: rec.requester.clone(),
            requester_kind: rec.requester_kind.to_string(),
            owner: rec.owner.clone().unwrap_or_default(),
            token_id: rec.token_id.clone(),
            operation: rec.operation.clone(),
            resource: rec.resource.clone(),
            environment: rec.environment.clone(),
            reason: rec.reason.clone(),
            expires_at: airlock_core::fmt_time(rec.expires_at),
            console_url: String::new(),
        };
        let audit = self.audit.clone();
        let clock = Arc::clone(&self.clock);
        let rec = rec.clone();
        tokio::spawn(async move {
            let notifier = match airlock_approval::notify::Notifier::new(Default::default()) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the notifier");
                    return;
                }
            };
            for (target, console) in targets {
                let mut n = notice.clone();
                n.console_url = format!("{}#{}", console.trim_end_matches('#'), rec.id);
                let attempts = notifier.deliver(&target, &n).await;
                let ok = airlock_approval::notify::delivered(&attempts);
                let last = attempts.last();
                let event = AuditEvent {
                    time: clock.now(),
                    actor: Actor {
                        id: "airlock-gateway".into(),
                        kind: airlock_core::IdentityKind::Service,
                        owner: None,
                        token_id: None,
                    },
                    action: "approval.notified".into(),
                    resource: Some(rec.resource.clone()),
                    environment: Some(rec.environment.clone()),
                    decision: if ok { Outcome::Allow } else { Outcome::Deny },
                    reason: if ok {
                        format!(
                            "notice for {} delivered to {}",
                            rec.id,
                            target.display_url()
                        )
                    } else {
                        format!(
                            "notice for {} NOT delivered to {} after {} attempt(s): {}",
                            rec.id,
                            target.display_url(),
                            attempts.len(),
                            last.and_then(|a| a.error.clone()).unwrap_or_default()
                        )
                    },
                    details: BTreeMap::from([
                        ("approval".to_string(), rec.id.clone()),
                        ("attempts".to_string(), attempts.len().to_string()),
                        (
                            "status".to_string(),
                            last.and_then(|a| a.status)
                                .map(|s| s.to_string())
                                .unwrap_or_default(),
                        ),
                    ]),
                };
                audit.append(event).await;
            }
        });
    }

    fn approval_store_failed(&self, mut v: Verdict, e: &str) -> Verdict {
        tracing::error!(error = %e, "approval store unavailable");
        v.outcome = Outcome::Deny;
        v.code = "approval_unavailable".into();
        v.reason = format!("the operation needs approval but approvals cannot be recorded ({e})");
        v.hint = "retry shortly; tell the Airlock operator if it persists".into();
        v
    }
}

/// A refusal whose deciding part is a request Airlock could not read says so: the policy's own
/// reason (say, that the upstream as a resource has no environment) would point at the catalog,
/// and adding the upstream there would open every unclassified request to that environment.
fn explain_unclassified(d: &mut airlock_policy::Decision, action: &str, c: &Classification) {
    let hint = match action {
        airlock_classify::UNCLASSIFIABLE => {
            "send it in a form Airlock reads: for GraphQL, a POST with `Content-Type: application/json` and a JSON body such as {\"query\": \"...\"}; if it already is, ask the Airlock operator to look at this request"
        }
        airlock_classify::UNCLASSIFIED => {
            "no rule describes this method and path; check the path, or ask the Airlock operator to add a rule for it (do not add the upstream to the resource catalog)"
        }
        _ => return,
    };
    let why = if c.notes.is_empty() {
        "no reason recorded".to_string()
    } else {
        c.notes.join("; ")
    };
    d.reason = format!(
        "Airlock could not classify this request ({why}), so it counts as destructive and is refused: {}",
        d.reason
    );
    d.code = "unclassifiable_request";
    d.hint = hint.to_string();
}
