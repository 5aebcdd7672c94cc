//! Blast radius: everything a credential could do, decided by the same Cedar policy set, catalog
//! and classification rules the gateway uses.
//!
//! For every upstream, every action its rules can produce ([`airlock_classify::RuleSet::targets`])
//! is paired with every resource it could touch: each catalog entry for a catalog upstream
//! (matching kinds when both sides name one), or the upstream itself for one with a fixed
//! environment. Each pair is decided as the gateway would decide it with no approval; a pair
//! that needs approval is decided again as if a human had approved, which tells "after
//! approval" apart from "denied even then".
//!
//! Every PostgreSQL database contributes the login (`connect`, the door's own operation) and the
//! operations the SQL classifier produces for [`REPRESENTATIVE_SQL`], each on the database itself
//! in its fixed environment: a sample of each class, not every statement SQL allows.

use crate::InventoryError;
use airlock_authority::StoreReader;
use airlock_classify::ActionTarget;
use airlock_core::{EnvName, IdentityKind, OpClass, Outcome};
use airlock_gateway::Runtime;
use airlock_policy::{Approval, Input, Principal, Resource};
use airlock_store::{Identity, SecretInfo, TokenRecord};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How far a credential reaches one (action, resource) pair, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// The policy refuses it even with a human's approval.
    Denied,
    /// Allowed once a human other than the requester approves this one operation.
    AfterApproval,
    /// Allowed with no human involved.
    Outright,
    /// No policy is consulted at all: a sealed secret is everything the upstream (or database
    /// user) allows.
    Unchecked,
}

impl Reach {
    /// The stable name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Reach::Denied => "denied",
            Reach::AfterApproval => "after_approval",
            Reach::Outright => "outright",
            Reach::Unchecked => "unchecked",
        }
    }

    /// Whether anything happens without a human (outright, or no policy at all).
    pub fn without_human(self) -> bool {
        self >= Reach::Outright
    }
}

/// What was asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// `token`, `identity` or `sealed_secret`.
    pub kind: &'static str,
    /// The token id, identity name or `secret@environment`.
    pub id: String,
    /// The identity behind it (tokens and identities).
    pub identity: Option<String>,
    /// Its kind.
    pub identity_kind: Option<IdentityKind>,
    /// The human who answers for it.
    pub owner: Option<String>,
    /// The live tokens evaluated.
    pub tokens: Vec<String>,
}

/// One (action, resource) pair and how far the credential reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The upstream or database the action goes through.
    pub upstream: String,
    /// Which door: `http` (upstreams) or `postgres` (databases).
    pub door: &'static str,
    /// The classified action.
    pub action: String,
    /// Its class.
    pub class: OpClass,
    /// The catalog entry (an id or `*` pattern), or the upstream's name when the action names
    /// no resource or the upstream has a fixed environment.
    pub resource: String,
    /// The kind of resource, when known.
    pub resource_kind: String,
    /// The resource's environment; `None` when nobody declared it.
    pub environment: Option<EnvName>,
    /// Whether that environment is protected (unknown ones are).
    pub protected: bool,
    /// The answer.
    pub reach: Reach,
    /// The policy's stable code for it (`allowed`, `approval_required`, `environment_mismatch`…).
    pub code: String,
    /// The tokens that reach it this far.
    pub tokens: Vec<String>,
    /// For a database: the sample statement the action and class were classified from (an
    /// `UPDATE` with a restricting `WHERE` is a write, one without is destructive).
    pub statement: Option<String>,
}

/// Counts of one (class, environment) group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Allowed with no human.
    pub outright: usize,
    /// Allowed after a human approves.
    pub after_approval: usize,
    /// Refused.
    pub denied: usize,
    /// No policy consulted (sealed secrets).
    pub unchecked: usize,
}

/// What a credential can destroy in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destroy {
    /// The environment.
    pub environment: String,
    /// Whether it is protected.
    pub protected: bool,
    /// Distinct resources some destructive action reaches (with or without a human).
    pub resources: usize,
    /// Of those, how many it can destroy without a human.
    pub without_human: usize,
}

/// The worst case, ordered so that a larger score is a worse credential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Score {
    /// Destructive or privilege pairs in protected environments reached without a human.
    pub protected_dangerous_without_human: usize,
    /// Destructive or privilege pairs in protected environments reached after approval.
    pub protected_dangerous_after_approval: usize,
    /// Write pairs in protected environments reached without a human.
    pub protected_write_without_human: usize,
    /// Destructive or privilege pairs elsewhere reached without a human.
    pub dangerous_without_human: usize,
    /// Every pair reached in any way.
    pub reached: usize,
}

/// A credential's blast radius.
#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    /// What was asked about.
    pub subject: Subject,
    /// One line a human reads first.
    pub headline: String,
    /// Per environment: what it can destroy, and how much of that without a human.
    pub destroy: Vec<Destroy>,
    /// Counts by class, then environment (`unknown` for undeclared resources).
    pub groups: BTreeMap<OpClass, BTreeMap<String, Tally>>,
    /// The worst case as a comparable score (for `--all`).
    pub score: Score,
    /// Every pair evaluated, worst first.
    pub entries: Vec<Entry>,
    /// What the answer does not cover, and why.
    pub notes: Vec<String>,
}

/// One resource slot an action can aim at.
struct Slot {
    id: String,
    kind: Option<String>,
    environment: Option<EnvName>,
}

/// One (action, resource) question the gateway could be asked.
struct Pair {
    /// The upstream or database name.
    upstream: String,
    door: &'static str,
    target: ActionTarget,
    slot: Slot,
    /// The sample statement a database action was classified from.
    statement: Option<String>,
}

/// Sample statements standing for what a database session can do, at least one per class and
/// both forms of `UPDATE`/`DELETE`. Only the text is fixed here: actions and classes come from
/// the classifier the door uses, so they cannot drift from what the door decides. `t` and `r`
/// are placeholders; the pairs aim at the database itself.
pub const REPRESENTATIVE_SQL: &[&str] = &[
    "SELECT * FROM t",
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1 WHERE id = 1",
    "DELETE FROM t WHERE id = 1",
    "CREATE TABLE t (id int)",
    "UPDATE t SET a = 1",
    "DELETE FROM t",
    "TRUNCATE t",
    "DROP TABLE t",
    "DO $$ BEGIN END $$",
    "GRANT SELECT ON t TO r",
    "CREATE ROLE r",
    "SET search_path = public",
];

/// The actions a database session can be decided on: the login, then each distinct (action,
/// class, resource kind) of [`REPRESENTATIVE_SQL`] with the first statement that produced it.
pub fn database_targets(cfg: &airlock_sql::SqlConfig) -> Vec<(ActionTarget, Option<String>)> {
    let login = airlock_gateway::pg_door::connect_operation();
    let mut out = vec![(target(&login), None)];
    for sql in REPRESENTATIVE_SQL {
        let c = airlock_sql::classify(sql, cfg);
        for op in c.operations() {
            let t = target(op);
            let seen = out.iter().any(|(o, _)| {
                o.action == t.action && o.class == t.class && o.resource_kind == t.resource_kind
            });
            if !seen {
                out.push((t, Some((*sql).to_string())));
            }
        }
    }
    out
}

fn target(op: &airlock_classify::Operation) -> ActionTarget {
    ActionTarget {
        action: op.action.clone(),
        class: op.class,
        resource_kind: op.resource_kind.clone(),
        names_resource: op.resource_id.is_some(),
    }
}

/// Every pair the gateway could be asked to decide, computed once and evaluated for any number
/// of credentials.
pub struct Space<'rt> {
    rt: &'rt Runtime,
    pairs: Vec<Pair>,
    now: i64,
}

impl<'rt> Space<'rt> {
    /// Enumerates the pairs from the runtime's upstreams and rules and the catalog (config
    /// entries and the store's).
    pub fn new(
        rt: &'rt Runtime,
        store: StoreReader<'_>,
        now: i64,
    ) -> Result<Space<'rt>, InventoryError> {
        let mut catalog: BTreeMap<String, Option<String>> = BTreeMap::new();
        for r in &rt.config.resources {
            catalog.insert(r.id.clone(), r.kind.clone());
        }
        for r in store.resources()? {
            catalog.insert(r.pattern, r.kind);
        }
        let mut pairs = Vec::new();
        let mut names: Vec<&String> = rt.upstreams.keys().collect();
        names.sort();
        for name in names {
            let Some(up) = rt.upstreams.get(name) else {
                continue;
            };
            for t in up.rules.targets() {
                let mut slots = Vec::new();
                match &up.environment {
                    // The door resolves everything behind a fixed upstream to its environment.
                    Some(env) => slots.push(Slot {
                        id: name.clone(),
                        kind: None,
                        environment: Some(env.clone()),
                    }),
                    // An operation naming no resource on a catalog upstream has no environment
                    // (the door looks the id up, and there is none): mirror that.
                    None if !t.names_resource => slots.push(Slot {
                        id: name.clone(),
                        kind: None,
                        environment: None,
                    }),
                    None => {
                        for (pattern, kind) in &catalog {
                            let kinds_differ = matches!(kind, Some(k) if !t.resource_kind.is_empty() && *k != t.resource_kind);
                            if kinds_differ {
                                continue;
                            }
                            slots.push(Slot {
                                id: pattern.clone(),
                                kind: kind.clone(),
                                // Through the runtime's catalog, so that an entry whose
                                // environment is no longer configured resolves as the gateway
                                // resolves it.
                                environment: rt.catalog.lookup(pattern).cloned(),
                            });
                        }
                    }
                }
                for slot in slots {
                    pairs.push(Pair {
                        upstream: name.clone(),
                        door: "http",
                        target: t.clone(),
                        slot,
                        statement: None,
                    });
                }
            }
        }
        // The door resolves every statement on a database to the database's environment; an
        // operation naming a table is decided on the table's name, here on the database's, which
        // only a policy matching table names would tell apart.
        let mut names: Vec<&String> = rt.databases.keys().collect();
        names.sort();
        for name in names {
            let Some(db) = rt.databases.get(name) else {
                continue;
            };
            for (target, statement) in database_targets(db.classifier.config()) {
                pairs.push(Pair {
                    upstream: name.clone(),
                    door: "postgres",
                    target,
                    slot: Slot {
                        id: name.clone(),
                        kind: Some("database".into()),
                        environment: db.upstream.environment.clone(),
                    },
                    statement,
                });
            }
        }
        Ok(Space { rt, pairs, now })
    }

    /// How many pairs one credential is evaluated against.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is nothing to reach (no upstreams, no databases).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn entry(&self, p: &Pair, reach: Reach, code: &str, token: Option<&str>) -> Entry {
        let (t, s) = (&p.target, &p.slot);
        Entry {
            upstream: p.upstream.clone(),
            door: p.door,
            action: t.action.clone(),
            class: t.class,
            resource: s.id.clone(),
            resource_kind: if t.resource_kind.is_empty() {
                s.kind.clone().unwrap_or_default()
            } else {
                t.resource_kind.clone()
            },
            environment: s.environment.clone(),
            protected: self.rt.protected(s.environment.as_ref()),
            reach,
            code: code.to_string(),
            tokens: token.map(|t| vec![t.to_string()]).unwrap_or_default(),
            statement: p.statement.clone(),
        }
    }

    /// Every pair as one token of `identity` would be decided.
    pub fn token(&self, identity: &Identity, token: &TokenRecord) -> Vec<Entry> {
        let principal = Principal {
            id: identity.name.as_str(),
            kind: identity.kind,
            owner: identity.owner.as_ref().map(|o| o.as_str()),
            token_id: &token.id,
            environments: &token.environments,
            allowed: token.allow,
        };
        self.pairs
            .iter()
            .map(|p| {
                let (t, s) = (&p.target, &p.slot);
                let decide = |approval| {
                    self.rt.policy.decide(&Input {
                        principal,
                        action: &t.action,
                        class: t.class,
                        resource: Resource {
                            kind: &t.resource_kind,
                            id: &s.id,
                            environment: s.environment.as_ref(),
                            protected: self.rt.protected(s.environment.as_ref()),
                        },
                        approval,
                        now: self.now,
                    })
                };
                let first = decide(Approval::None);
                let (reach, code) = match first.outcome {
                    Outcome::Allow => (Reach::Outright, first.code),
                    Outcome::Deny => (Reach::Denied, first.code),
                    Outcome::NeedsApproval => {
                        let approved = decide(Approval::Granted);
                        if approved.outcome == Outcome::Allow {
                            (Reach::AfterApproval, first.code)
                        } else {
                            (Reach::Denied, approved.code)
                        }
                    }
                };
                self.entry(p, reach, code, Some(&token.id))
            })
            .collect()
    }

    /// Every pair behind the upstreams and databases that use `secret`: no policy in the way.
    pub fn secret(&self, secret: &SecretInfo) -> SecretUse {
        let cfg = &self.rt.config;
        let upstreams: BTreeSet<&String> = cfg
            .upstreams
            .iter()
            .filter(|(_, u)| {
                u.secret.as_deref() == Some(secret.name.as_str())
                    && u.secret_environment() == Some(&secret.environment)
            })
            .map(|(n, _)| n)
            .collect();
        let databases: BTreeSet<&String> = cfg
            .databases
            .iter()
            .filter(|(_, d)| {
                d.secret.as_deref() == Some(secret.name.as_str())
                    && d.environment == secret.environment
            })
            .map(|(n, _)| n)
            .collect();
        let unchecked =
            |p: &Pair| self.entry(p, Reach::Unchecked, "sealed_secret_bypasses_policy", None);
        let mut entries: Vec<Entry> = self
            .pairs
            .iter()
            .filter(|p| match p.door {
                "postgres" => databases.contains(&p.upstream),
                _ => upstreams.contains(&p.upstream),
            })
            .map(unchecked)
            .collect();
        // Whoever holds the secret talks to the upstream directly: resources nobody catalogued
        // are as reachable as the rest.
        for up in &upstreams {
            if self
                .rt
                .upstreams
                .get(*up)
                .is_some_and(|u| u.environment.is_none())
            {
                entries.push(unchecked(&Pair {
                    upstream: (*up).clone(),
                    door: "http",
                    target: anything("(anything the upstream accepts)"),
                    slot: Slot {
                        id: "(any resource, catalogued or not)".into(),
                        kind: None,
                        environment: None,
                    },
                    statement: None,
                }));
            }
        }
        // The database user can run any statement its role permits, not only the samples.
        for name in &databases {
            entries.push(unchecked(&Pair {
                upstream: (*name).clone(),
                door: "postgres",
                target: anything("(any statement the database user may run)"),
                slot: Slot {
                    id: (*name).clone(),
                    kind: Some("database".into()),
                    environment: Some(secret.environment.clone()),
                },
                statement: None,
            }));
        }
        SecretUse {
            entries,
            upstreams: upstreams.into_iter().cloned().collect(),
            databases: databases.into_iter().cloned().collect(),
        }
    }
}

/// The catch-all for a sealed secret's holder: privilege, the highest class.
fn anything(action: &str) -> ActionTarget {
    ActionTarget {
        action: action.into(),
        class: OpClass::Privilege,
        resource_kind: String::new(),
        names_resource: true,
    }
}

/// What a sealed secret opens.
pub struct SecretUse {
    /// Every pair behind it, unchecked.
    pub entries: Vec<Entry>,
    /// The upstreams that inject it.
    pub upstreams: Vec<String>,
    /// The databases that log in with it.
    pub databases: Vec<String>,
}

/// Merges the entries of several tokens: per pair the farthest reach, with the tokens that
/// reach it that far.
pub fn merge(lists: Vec<Vec<Entry>>) -> Vec<Entry> {
    type Key = (String, String, OpClass, String, String);
    let mut by: BTreeMap<Key, Entry> = BTreeMap::new();
    for e in lists.into_iter().flatten() {
        // A database action can have two classes (`UPDATE` with and without a restricting
        // `WHERE`) and two kinds (`GRANT` on a table and to a role): each is its own pair.
        let key = (
            e.upstream.clone(),
            e.action.clone(),
            e.class,
            e.resource_kind.clone(),
            e.resource.clone(),
        );
        match by.get_mut(&key) {
            None => {
                by.insert(key, e);
            }
            Some(have) if e.reach > have.reach => *have = e,
            Some(have) if e.reach == have.reach => {
                for t in e.tokens {
                    if !have.tokens.contains(&t) {
                        have.tokens.push(t);
                    }
                }
            }
            Some(_) => {}
        }
    }
    by.into_values().collect()
}

fn env_label(e: &Entry) -> String {
    e.environment
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn dangerous(c: OpClass) -> bool {
    matches!(c, OpClass::Destructive | OpClass::Privilege)
}

impl BlastRadius {
    /// Summarises `entries` for `subject`.
    pub fn new(
        rt: &Runtime,
        subject: Subject,
        mut entries: Vec<Entry>,
        mut notes: Vec<String>,
    ) -> BlastRadius {
        entries.sort_by(|a, b| {
            b.reach
                .cmp(&a.reach)
                .then(b.class.cmp(&a.class))
                .then(b.protected.cmp(&a.protected))
                .then(env_label(a).cmp(&env_label(b)))
                .then(a.resource.cmp(&b.resource))
                .then(a.action.cmp(&b.action))
                .then(a.resource_kind.cmp(&b.resource_kind))
        });
        let mut groups: BTreeMap<OpClass, BTreeMap<String, Tally>> = BTreeMap::new();
        let mut score = Score::default();
        let mut destroy: BTreeMap<String, (bool, BTreeSet<String>, BTreeSet<String>)> =
            BTreeMap::new();
        for (name, env) in &rt.config.environments {
            destroy.insert(
                name.to_string(),
                (env.protected, BTreeSet::new(), BTreeSet::new()),
            );
        }
        for e in &entries {
            let t = groups
                .entry(e.class)
                .or_default()
                .entry(env_label(e))
                .or_default();
            match e.reach {
                Reach::Denied => t.denied += 1,
                Reach::AfterApproval => t.after_approval += 1,
                Reach::Outright => t.outright += 1,
                Reach::Unchecked => t.unchecked += 1,
            }
            if e.reach > Reach::Denied {
                score.reached += 1;
                let d = dangerous(e.class);
                match (e.protected, d, e.reach.without_human()) {
                    (true, true, true) => score.protected_dangerous_without_human += 1,
                    (true, true, false) => score.protected_dangerous_after_approval += 1,
                    (true, false, true) if e.class == OpClass::Write => {
                        score.protected_write_without_human += 1
                    }
                    (false, true, true) => score.dangerous_without_human += 1,
                    _ => {}
                }
                if e.class == OpClass::Destructive {
                    let slot = destroy
                        .entry(env_label(e))
                        .or_insert_with(|| (e.protected, BTreeSet::new(), BTreeSet::new()));
                    slot.1.insert(e.resource.clone());
                    if e.reach.without_human() {
                        slot.2.insert(e.resource.clone());
                    }
                }
            }
        }
        let destroy: Vec<Destroy> = destroy
            .into_iter()
            .map(|(environment, (protected, all, alone))| Destroy {
                environment,
                protected,
                resources: all.len(),
                without_human: alone.len(),
            })
            .collect();
        let parts: Vec<String> = destroy
            .iter()
            .filter(|d| d.protected || d.resources > 0)
            .map(|d| {
                format!(
                    "can destroy {} {} resource{}; without a human: {}",
                    d.resources,
                    d.environment,
                    if d.resources == 1 { "" } else { "s" },
                    d.without_human
                )
            })
            .collect();
        let who = match subject.kind {
            "token" => format!("token `{}`", subject.id),
            "identity" => format!("`{}`", subject.id),
            _ => format!("sealed secret `{}`", subject.id),
        };
        let headline = if score.reached == 0 {
            format!("{who} reaches nothing: every operation is denied")
        } else {
            format!("{who} {}", parts.join("; "))
        };
        if subject.kind == "sealed_secret" && score.reached > 0 {
            notes.push("a sealed secret is everything the upstream or database user allows: no Airlock policy stands between its holder and the upstream, which is why only the gateway opens it and it is never handed out".into());
        }
        BlastRadius {
            subject,
            headline,
            destroy,
            groups,
            score,
            entries,
            notes,
        }
    }

    /// The entries reached in any way (not denied).
    pub fn reached(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.reach > Reach::Denied)
    }
}

/// What `airlock blast-radius` needs: the runtime, the store, the time.
pub struct Evaluator<'a> {
    /// The compiled pairs.
    pub space: Space<'a>,
    store: StoreReader<'a>,
    now: time::OffsetDateTime,
    identities: Vec<Identity>,
    tokens: Vec<TokenRecord>,
}

impl<'a> Evaluator<'a> {
    /// Loads identities and tokens once.
    pub fn new(
        rt: &'a Runtime,
        store: StoreReader<'a>,
        now: time::OffsetDateTime,
    ) -> Result<Evaluator<'a>, InventoryError> {
        Ok(Evaluator {
            space: Space::new(rt, store, now.unix_timestamp())?,
            store,
            now,
            identities: store.identities()?,
            tokens: store.tokens(None)?,
        })
    }

    /// Every identity.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    fn live(&self, t: &TokenRecord) -> bool {
        t.revoked_at.is_none() && t.expires_at > self.now
    }

    /// Whether the gateway would accept this identity's tokens at all: enabled, and its owner
    /// (if any) enabled too; verification refuses an orphan's tokens.
    fn verifies(&self, i: &Identity) -> bool {
        i.enabled
            && i.owner
                .as_ref()
                .is_none_or(|o| self.identity_of(o.as_str()).is_some_and(|o| o.enabled))
    }

    fn identity_of(&self, name: &str) -> Option<&Identity> {
        self.identities.iter().find(|i| i.name.as_str() == name)
    }

    /// The blast radius of a token id, an identity name or a sealed secret (`NAME` or
    /// `NAME@ENV`), in that order of lookup.
    pub fn subject(&self, what: &str) -> Result<BlastRadius, InventoryError> {
        if let Some(t) = self.tokens.iter().find(|t| t.id == what) {
            return Ok(self.token(t));
        }
        if let Some(i) = self.identity_of(what) {
            return Ok(self.identity(i));
        }
        let (name, env) = match what.split_once('@') {
            Some((n, e)) => (n, Some(e)),
            None => (what, None),
        };
        let secrets: Vec<SecretInfo> = self
            .store
            .secrets()?
            .into_iter()
            .filter(|s| s.name == name && env.is_none_or(|e| s.environment.as_str() == e))
            .collect();
        match secrets.as_slice() {
            [] => Err(InventoryError::NotFound(what.to_string())),
            [one] => Ok(self.secret(one)),
            many => Err(InventoryError::NotFound(format!(
                "{what}` is sealed for several environments ({}); name one as `{name}@ENV",
                many.iter()
                    .map(|s| s.environment.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// One token's blast radius (a revoked or expired token reaches nothing, and says so).
    pub fn token(&self, t: &TokenRecord) -> BlastRadius {
        let ident = self.identity_of(t.identity.as_str());
        let subject = Subject {
            kind: "token",
            id: t.id.clone(),
            identity: Some(t.identity.to_string()),
            identity_kind: ident.map(|i| i.kind),
            owner: ident.and_then(|i| i.owner.as_ref().map(|o| o.to_string())),
            tokens: vec![t.id.clone()],
        };
        let mut notes = Vec::new();
        let entries = match ident {
            Some(i) if self.verifies(i) && self.live(t) => self.space.token(i, t),
            _ => {
                notes.push("the token is revoked or expired, or its identity or that identity's owner is disabled: the gateway refuses it before any policy".into());
                Vec::new()
            }
        };
        if t.resource_scope.is_some() {
            notes.push("the token's resource scope is recorded but not enforced by the gateway, so it does not narrow this answer".into());
        }
        BlastRadius::new(self.space.rt, subject, entries, notes)
    }

    /// An identity's blast radius: the union of its live tokens.
    pub fn identity(&self, i: &Identity) -> BlastRadius {
        let live: Vec<&TokenRecord> = self
            .tokens
            .iter()
            .filter(|t| t.identity == i.name && self.live(t))
            .collect();
        let subject = Subject {
            kind: "identity",
            id: i.name.to_string(),
            identity: Some(i.name.to_string()),
            identity_kind: Some(i.kind),
            owner: i.owner.as_ref().map(|o| o.to_string()),
            tokens: live.iter().map(|t| t.id.clone()).collect(),
        };
        let mut notes = Vec::new();
        let entries = if !self.verifies(i) {
            notes.push("the identity or its owner is disabled: none of its tokens verify".into());
            Vec::new()
        } else {
            if live.is_empty() {
                notes.push("no live tokens: it reaches nothing until one is issued".into());
            }
            merge(live.iter().map(|t| self.space.token(i, t)).collect())
        };
        BlastRadius::new(self.space.rt, subject, entries, notes)
    }

    /// A sealed secret's blast radius: everything the upstreams injecting it and the database
    /// users logging in with it can do.
    pub fn secret(&self, s: &SecretInfo) -> BlastRadius {
        let used = self.space.secret(s);
        let mut notes = Vec::new();
        if used.upstreams.is_empty() && used.databases.is_empty() {
            notes.push("no configured upstream or database uses this secret".into());
        }
        if !used.upstreams.is_empty() {
            notes.push(format!(
                "injected by upstream(s): {}",
                used.upstreams.join(", ")
            ));
        }
        if !used.databases.is_empty() {
            notes.push(format!(
                "the password of database(s): {}; its blast radius is everything that database user can do, and the statements listed are samples",
                used.databases.join(", ")
            ));
        }
        let entries = used.entries;
        let subject = Subject {
            kind: "sealed_secret",
            id: format!("{}@{}", s.name, s.environment),
            identity: None,
            identity_kind: None,
            owner: None,
            tokens: Vec::new(),
        };
        BlastRadius::new(self.space.rt, subject, entries, notes)
    }

    /// Every identity's blast radius, worst first (ties by name).
    pub fn all(&self) -> Vec<BlastRadius> {
        let mut out: Vec<BlastRadius> = self.identities.iter().map(|i| self.identity(i)).collect();
        out.sort_by(|a, b| b.score.cmp(&a.score).then(a.subject.id.cmp(&b.subject.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn classes_of(targets: &[(ActionTarget, Option<String>)], action: &str) -> BTreeSet<OpClass> {
        targets
            .iter()
            .filter(|(t, _)| t.action == action)
            .map(|(t, _)| t.class)
            .collect()
    }

    #[test]
    fn every_sample_statement_parses_so_none_counts_as_destructive_by_accident() {
        for sql in REPRESENTATIVE_SQL {
            let c = airlock_sql::classify(sql, &airlock_sql::SqlConfig::default());
            for s in &c.statements {
                assert_ne!(s.tag, airlock_sql::UNCLASSIFIABLE, "{sql}: {:?}", s.notes);
            }
        }
    }

    #[test]
    fn database_samples_cover_every_class_as_the_classifier_decides_them() {
        let t = database_targets(&airlock_sql::SqlConfig::default());
        assert_eq!(t[0].0.action, "connect", "the login comes first");
        assert_eq!(t[0].0.class, OpClass::Read);
        let all: BTreeSet<OpClass> = t.iter().map(|(t, _)| t.class).collect();
        assert_eq!(
            all,
            BTreeSet::from([
                OpClass::Read,
                OpClass::Write,
                OpClass::Destructive,
                OpClass::Privilege
            ])
        );
        assert_eq!(classes_of(&t, "SELECT"), BTreeSet::from([OpClass::Read]));
        assert_eq!(classes_of(&t, "INSERT"), BTreeSet::from([OpClass::Write]));
        // Restricted and unrestricted forms are different pairs.
        for both in ["UPDATE", "DELETE"] {
            assert_eq!(
                classes_of(&t, both),
                BTreeSet::from([OpClass::Write, OpClass::Destructive]),
                "{both}"
            );
        }
        // PostgreSQL tags a TRUNCATE `TRUNCATE TABLE`: the classifier says so, not this list.
        for d in ["DROP TABLE", "TRUNCATE TABLE", "DO"] {
            assert_eq!(
                classes_of(&t, d),
                BTreeSet::from([OpClass::Destructive]),
                "{d}"
            );
        }
        for p in ["GRANT", "SET", "CREATE ROLE"] {
            assert_eq!(
                classes_of(&t, p),
                BTreeSet::from([OpClass::Privilege]),
                "{p}"
            );
        }
        let drop = t.iter().find(|(t, _)| t.action == "DROP TABLE").unwrap();
        assert_eq!(drop.1.as_deref(), Some("DROP TABLE t"));
    }

    #[test]
    fn merging_keeps_a_restricted_and_an_unrestricted_update_apart() {
        let e = |class, reach, token: &str| Entry {
            upstream: "bookings".into(),
            door: "postgres",
            action: "UPDATE".into(),
            class,
            resource: "bookings".into(),
            resource_kind: "table".into(),
            environment: None,
            protected: true,
            reach,
            code: String::new(),
            tokens: vec![token.into()],
            statement: None,
        };
        let merged = merge(vec![
            vec![
                e(OpClass::Write, Reach::Outright, "a"),
                e(OpClass::Destructive, Reach::Denied, "a"),
            ],
            vec![e(OpClass::Destructive, Reach::AfterApproval, "b")],
        ]);
        assert_eq!(merged.len(), 2);
        let d = merged
            .iter()
            .find(|e| e.class == OpClass::Destructive)
            .unwrap();
        assert_eq!(
            (d.reach, d.tokens.clone()),
            (Reach::AfterApproval, vec!["b".to_string()])
        );
        let w = merged.iter().find(|e| e.class == OpClass::Write).unwrap();
        assert_eq!(w.reach, Reach::Outright);
    }
}
