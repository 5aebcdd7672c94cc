//! Authorization with Cedar: the schema, the built-in policy pack, and `decide`.
//!
//! Every operation of a request is one Cedar request: the principal is the token's identity
//! (`Airlock::Human`, `Airlock::Agent` or `Airlock::Service`, with its owner), the action is the
//! classified operation (grouped under its class), the resource carries its environment, kind and
//! whether that environment is protected, and the context carries the token's environments and
//! allowlist, the operation's class, the approval state and the time. An answer is a value:
//! [`Decision`] with an outcome, a stable code, reasons and the deciding policies. Any evaluation
//! error is a deny.

use airlock_core::{EnvName, IdentityKind, OpClass, OpClassSet, Outcome};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The built-in pack, always loaded first.
pub const BUILTIN: &str = include_str!("builtin.cedar");

/// A `.cedar` file an operator added.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    /// Where it came from, for ids and error messages (e.g. `policies/extra.cedar`).
    pub origin: String,
    /// Its text.
    pub text: String,
}

/// Why a policy set could not be loaded. The gateway keeps serving its last good set.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Cedar could not parse a file.
    #[error("{origin}: cannot parse policies: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// Cedar's message.
        message: String,
    },
    /// A policy does not type-check against the schema.
    #[error("{origin}: policy `{id}` does not match the Airlock schema: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// The policy's id.
        id: String,
        /// The validator's message.
        message: String,
    },
    /// Two policies share an `@id`.
    #[error("{origin}: policy id `{id}` is used twice; give each policy a unique `@id(\"…\")`")]
    Duplicate {
        /// The file.
        origin: String,
        /// The id.
        id: String,
    },
    /// The generated schema failed to load (a bug, or an action name Cedar cannot hold).
    #[error("cannot build the policy schema: {0}")]
    Schema(String),
}

/// Whether a human has approved this exact operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// No approval exists.
    None,
    /// A human approved this operation and the approval is unused and unexpired.
    Granted,
}

/// Who is asking, from the verified token.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// Identity name.
    pub id: &'a str,
    /// Human, agent or service.
    pub kind: IdentityKind,
    /// The human who answers for an agent or service.
    pub owner: Option<&'a str>,
    /// The token's public id.
    pub token_id: &'a str,
    /// The token's environments.
    pub environments: &'a [EnvName],
    /// The token's allowed operation classes.
    pub allowed: OpClassSet,
}

/// What is being acted on, with its environment resolved by the door (never from the request).
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    /// Resource kind, e.g. `volume`.
    pub kind: &'a str,
    /// Resource id; the upstream's name when the operation names no resource.
    pub id: &'a str,
    /// Its environment; `None` when nobody declared it (treated as the most protected).
    pub environment: Option<&'a EnvName>,
    /// Whether that environment is protected (true when unknown).
    pub protected: bool,
}

/// One operation to decide.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Who.
    pub principal: Principal<'a>,
    /// The classified action name, e.g. `volumeDelete`.
    pub action: &'a str,
    /// Its class.
    pub class: OpClass,
    /// On what.
    pub resource: Resource<'a>,
    /// Approval state.
    pub approval: Approval,
    /// Unix time of the decision.
    pub now: i64,
}

/// The answer for one operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// Allow, deny, or wait for a human.
    pub outcome: Outcome,
    /// A stable code for scripts and error bodies: `allowed`, `environment_mismatch`,
    /// `unknown_resource_environment`, `class_not_allowed`, `approval_required`,
    /// `agents_never_administer_airlock`, `denied_by_policy`, `no_permit`, `policy_error`.
    pub code: &'static str,
    /// What happened, in words a human can act on.
    pub reason: String,
    /// What to do next.
    pub hint: String,
    /// The policies that decided it (`@id`s, or `file:index`).
    pub policies: Vec<String>,
}

/// The action the admin API decides for every administrative call (issue of tokens, approvals).
pub const ADMINISTER: &str = "administer";

/// Most cached decisions; past it the cache starts over rather than grow without bound.
const DECISION_CACHE_CAPACITY: usize = 65_536;

/// Every input field but the time, length-prefixed so no two inputs share a key. The whole
/// input, not a hash of it: a hash collision an agent could search for offline must never turn
/// a refused operation into a cached allow.
fn cache_key(i: &Input<'_>) -> String {
    // Built by hand rather than with `write!`: this runs for every operation the gateway decides,
    // and the formatting machinery cost more than the cached evaluation saves.
    let mut k = String::with_capacity(192);
    let f = |k: &mut String, s: &str| {
        push_decimal(k, s.len());
        k.push(':');
        k.push_str(s);
        k.push('|');
    };
    let p = &i.principal;
    f(&mut k, p.id);
    f(&mut k, p.kind.as_str());
    f(&mut k, p.owner.unwrap_or("\u{0}"));
    f(&mut k, p.token_id);
    for c in OpClass::ALL {
        f(
            &mut k,
            if p.allowed.contains(c) {
                c.as_str()
            } else {
                "-"
            },
        );
    }
    // The count as a field of its own: no run of environments can pass for the fields after it.
    push_decimal(&mut k, p.environments.len());
    k.push('|');
    for e in p.environments {
        f(&mut k, e.as_str());
    }
    f(&mut k, i.action);
    f(&mut k, i.class.as_str());
    f(
        &mut k,
        if i.approval == Approval::Granted {
            "granted"
        } else {
            "none"
        },
    );
    let r = &i.resource;
    f(&mut k, r.kind);
    f(&mut k, r.id);
    f(
        &mut k,
        r.environment.map(EnvName::as_str).unwrap_or("\u{0}"),
    );
    f(&mut k, if r.protected { "p" } else { "u" });
    k
}

/// Appends `n` in decimal.
fn push_decimal(k: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    k.extend(digits[at..].iter().map(|&d| char::from(d)));
}

const GROUPS: [&str; 5] = ["read", "write", "destructive", "privilege", "admin"];

/// A loaded, validated policy set with its schema.
pub struct Engine {
    policies: PolicySet,
    labels: HashMap<PolicyId, String>,
    actions: BTreeMap<String, OpClass>,
    schema_text: String,
    authorizer: Authorizer,
    /// Decisions already made, by their complete input. Sound because a decision is a pure
    /// function of its input and the (immutable) policy set, except for `context.now`: when any
    /// policy reads the time, nothing is cached. A reload builds a new engine, so a new cache.
    cache: std::sync::Mutex<HashMap<String, Decision>>,
    cacheable: bool,
    /// Cache hits and misses, so operators can see whether their workload repeats decisions.
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// How the decision cache has fared since the engine was built (a reload starts over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Decisions answered from the cache.
    pub hits: u64,
    /// Decisions evaluated and then cached.
    pub misses: u64,
    /// Whether decisions are cached at all (not when a policy reads `context.now`).
    pub enabled: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.labels.len())
            .field("actions", &self.actions.len())
            .finish()
    }
}

fn cedar_ident_ok(name: &str) -> bool {
    // Action names become quoted Cedar strings; keep them printable and quote-free so the
    // generated schema cannot be broken by a rule file.
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        && !GROUPS.contains(&name)
        && !name.starts_with("other.")
        && name != ADMINISTER
}

fn other_action(class: OpClass) -> String {
    format!("other.{}", class.as_str())
}

fn type_name(s: &str) -> EntityTypeName {
    // The names are compile-time constants below; parsing them cannot fail.
    EntityTypeName::from_str(s).unwrap_or_else(|_| unreachable_type())
}

#[expect(
    clippy::panic,
    reason = "only reachable if a constant type name stops parsing"
)]
fn unreachable_type() -> EntityTypeName {
    panic!("constant Cedar type name failed to parse")
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(ty), EntityId::new(id))
}

fn principal_type(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Human => "Airlock::Human",
        IdentityKind::Agent => "Airlock::Agent",
        IdentityKind::Service => "Airlock::Service",
    }
}

impl Engine {
    /// Builds the schema for `actions` (from the classification rules) and loads the built-in
    /// pack plus `files`, validating every policy against the schema.
    pub fn new(actions: &[(String, OpClass)], files: &[PolicyFile]) -> Result<Engine, PolicyError> {
        let mut map: BTreeMap<String, OpClass> = BTreeMap::new();
        for (name, class) in actions {
            if cedar_ident_ok(name) {
                // The same name classified differently by two upstreams joins the more
                // dangerous group, so a policy that forbids a group never misses it.
                let e = map.entry(name.clone()).or_insert(*class);
                *e = (*e).max(*class);
            }
        }
        let schema_text = schema_text(&map);
        let (schema, _warnings) = Schema::from_cedarschema_str(&schema_text)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;

        let mut policies = PolicySet::new();
        let mut labels = HashMap::new();
        let mut seen = HashSet::new();
        let builtin = PolicyFile {
            origin: "builtin".into(),
            text: BUILTIN.into(),
        };
        for file in std::iter::once(&builtin).chain(files) {
            let set = PolicySet::from_str(&file.text).map_err(|e| PolicyError::Parse {
                origin: file.origin.clone(),
                message: e.to_string(),
            })?;
            let mut list: Vec<&Policy> = set.policies().collect();
            // PolicySet iteration order is unspecified; order by source position for stable ids.
            list.sort_by_key(|p| {
                p.id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<usize>()
                    .unwrap_or(0)
            });
            for (i, p) in list.into_iter().enumerate() {
                let label = match p.annotation("id") {
                    Some(id) => id.to_string(),
                    None => format!("{}:{}", file.origin, i + 1),
                };
                if !seen.insert(label.clone()) {
                    return Err(PolicyError::Duplicate {
                        origin: file.origin.clone(),
                        id: label,
                    });
                }
                let pid = PolicyId::new(format!("p{}", labels.len()));
                let renamed = p.new_id(pid.clone());
                policies.add(renamed).map_err(|e| PolicyError::Parse {
                    origin: file.origin.clone(),
                    message: e.to_string(),
                })?;
                labels.insert(pid, label);
            }
            let validator = Validator::new(schema.clone());
            let result = validator.validate(&policies, ValidationMode::Strict);
            let first = result
                .validation_errors()
                .next()
                .map(|err| (err.policy_id().clone(), err.to_string()));
            if let Some((pid, message)) = first {
                let id = labels.get(&pid).cloned().unwrap_or_else(|| pid.to_string());
                return Err(PolicyError::Invalid {
                    origin: file.origin.clone(),
                    id,
                    message,
                });
            }
        }
        // A policy that reads the clock makes decisions time-dependent: never cache then.
        let cacheable = !policies
            .policies()
            .any(|p| p.to_string().contains("context.now"));
        Ok(Engine {
            policies,
            labels,
            actions: map,
            schema_text,
            authorizer: Authorizer::new(),
            cache: std::sync::Mutex::new(HashMap::new()),
            cacheable,
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        })
    }

    /// The generated Cedar schema, for operators writing policies (`airlock policy schema`).
    pub fn schema_text(&self) -> &str {
        &self.schema_text
    }

    /// How many policies are loaded, built-in ones included.
    pub fn policy_count(&self) -> usize {
        self.labels.len()
    }

    /// The decision cache's hits and misses since this engine was built.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.cache_hits.load(Ordering::Relaxed),
            misses: self.cache_misses.load(Ordering::Relaxed),
            enabled: self.cacheable,
        }
    }

    /// Decides one operation. Never fails: an error inside evaluation is a deny.
    pub fn decide(&self, input: &Input<'_>) -> Decision {
        let key = self.cacheable.then(|| cache_key(input));
        if let Some(k) = &key {
            if let Some(d) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(k) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return d.clone();
            }
            self.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        match self.evaluate(input) {
            Ok(d) => {
                if let Some(k) = key {
                    let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    if c.len() >= DECISION_CACHE_CAPACITY {
                        c.clear();
                    }
                    c.insert(k, d.clone());
                }
                d
            }
            Err(message) => deny(
                "policy_error",
                format!(
                    "the policy could not be evaluated ({message}), so the operation is refused"
                ),
                "tell the Airlock operator; run `airlock policy check`".into(),
                vec![],
            ),
        }
    }

    fn evaluate(&self, input: &Input<'_>) -> Result<Decision, String> {
        let p = &input.principal;
        let action_name = match self.actions.get(input.action) {
            _ if input.action == ADMINISTER => ADMINISTER.to_string(),
            Some(c) if *c >= input.class => input.action.to_string(),
            _ => other_action(input.class),
        };
        let principal = uid(principal_type(p.kind), p.id);
        let mut entities = Vec::with_capacity(3);
        let mut attrs = HashMap::new();
        if p.kind != IdentityKind::Human {
            let owner = uid("Airlock::Human", p.owner.unwrap_or(""));
            attrs.insert(
                "owner".to_string(),
                RestrictedExpression::new_entity_uid(owner.clone()),
            );
            entities.push(Entity::new_no_attrs(owner, HashSet::new()));
        }
        entities.push(
            Entity::new(principal.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?,
        );
        let resource = uid("Airlock::Resource", input.resource.id);
        let env = input
            .resource
            .environment
            .map(EnvName::as_str)
            .unwrap_or("");
        entities.push(
            Entity::new(
                resource.clone(),
                HashMap::from([
                    (
                        "environment".to_string(),
                        RestrictedExpression::new_string(env.to_string()),
                    ),
                    (
                        "environment_known".to_string(),
                        RestrictedExpression::new_bool(input.resource.environment.is_some()),
                    ),
                    (
                        "kind".to_string(),
                        RestrictedExpression::new_string(input.resource.kind.to_string()),
                    ),
                    (
                        "protected".to_string(),
                        RestrictedExpression::new_bool(input.resource.protected),
                    ),
                ]),
                HashSet::new(),
            )
            .map_err(|e| e.to_string())?,
        );
        // The action and its class group, so `action in Airlock::Action::"destructive"` works
        // without handing Cedar the whole schema per request: the policies were validated
        // against the schema at load, and these entities are well-typed by construction, so the
        // per-request conformance check (most of a decision's cost) buys nothing.
        let group = if action_name == ADMINISTER {
            "admin"
        } else if let Some(class) = action_name.strip_prefix("other.") {
            class
        } else {
            self.actions
                .get(&action_name)
                .map(|c| c.as_str())
                .unwrap_or("destructive")
        };
        let group_uid = uid("Airlock::Action", group);
        entities.push(Entity::new_no_attrs(
            uid("Airlock::Action", &action_name),
            HashSet::from([group_uid.clone()]),
        ));
        entities.push(Entity::new_no_attrs(group_uid, HashSet::new()));
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;
        let context = Context::from_pairs([
            (
                "operation".to_string(),
                RestrictedExpression::new_string(input.action.to_string()),
            ),
            (
                "class".to_string(),
                RestrictedExpression::new_string(input.class.as_str().to_string()),
            ),
            (
                "token_id".to_string(),
                RestrictedExpression::new_string(p.token_id.to_string()),
            ),
            (
                "token_environments".to_string(),
                RestrictedExpression::new_set(
                    p.environments
                        .iter()
                        .map(|e| RestrictedExpression::new_string(e.to_string())),
                ),
            ),
            (
                "allowed_classes".to_string(),
                RestrictedExpression::new_set(
                    p.allowed
                        .iter()
                        .map(|c| RestrictedExpression::new_string(c.as_str().to_string())),
                ),
            ),
            (
                "approval".to_string(),
                RestrictedExpression::new_string(
                    match input.approval {
                        Approval::None => "none",
                        Approval::Granted => "granted",
                    }
                    .to_string(),
                ),
            ),
            ("now".to_string(), RestrictedExpression::new_long(input.now)),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(
            principal,
            uid("Airlock::Action", &action_name),
            resource,
            context,
            None,
        )
        .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        if let Some(err) = response.diagnostics().errors().next() {
            return Err(err.to_string());
        }
        // Sorted: Cedar reports deciding policies in no particular order, and audit records
        // and error bodies should not change from one identical request to the next.
        let mut ids: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| {
                self.labels
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string())
            })
            .collect();
        ids.sort();
        Ok(match response.decision() {
            cedar_policy::Decision::Allow => Decision {
                outcome: Outcome::Allow,
                code: "allowed",
                reason: format!("{} `{}` is allowed", input.class, input.action),
                hint: String::new(),
                policies: ids,
            },
            cedar_policy::Decision::Deny => explain_deny(input, ids),
        })
    }
}

fn deny(code: &'static str, reason: String, hint: String, policies: Vec<String>) -> Decision {
    Decision {
        outcome: Outcome::Deny,
        code,
        reason,
        hint,
        policies,
    }
}

fn explain_deny(input: &Input<'_>, ids: Vec<String>) -> Decision {
    let p = &input.principal;
    let r = &input.resource;
    let envs = p
        .environments
        .iter()
        .map(EnvName::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let has = |id: &str| ids.iter().any(|i| i == id);
    if ids.is_empty() {
        return deny(
            "no_permit",
            format!("no policy permits {} `{}`", input.class, input.action),
            "ask the Airlock operator to review the policies".into(),
            ids,
        );
    }
    if has("unknown-resource-environment") {
        return deny(
            "unknown_resource_environment",
            format!(
                "resource `{}` has no known environment, so it counts as the most protected and no token may touch it",
                r.id
            ),
            format!("ask the Airlock operator to add it to the catalog: `airlock resource add {} --env ENV`", r.id),
            ids,
        );
    }
    if has("environment-match") {
        let env = r.environment.map(EnvName::as_str).unwrap_or("");
        return deny(
            "environment_mismatch",
            format!(
                "the token is for {envs} but `{}` is in {env}; {} `{}` refused",
                r.id, input.class, input.action
            ),
            format!("ask your owner for a {env} token if this is really intended"),
            ids,
        );
    }
    if has("class-allowlist") {
        return deny(
            "class_not_allowed",
            format!(
                "`{}` is a {} operation but the token allows only {}",
                input.action, input.class, p.allowed
            ),
            format!("ask your owner for a token that allows {}", input.class),
            ids,
        );
    }
    if has("agents-never-administer-airlock") {
        return deny(
            "agents_never_administer_airlock",
            "agents may not administer Airlock".into(),
            "a human must do this with their own credentials".into(),
            ids,
        );
    }
    if ids.iter().all(|i| i == "approval-required") {
        let env = r.environment.map(EnvName::as_str).unwrap_or("");
        return Decision {
            outcome: Outcome::NeedsApproval,
            code: "approval_required",
            reason: format!(
                "{} `{}` on `{}` in protected environment {env} needs a human's approval",
                input.class, input.action, r.id
            ),
            hint: "this needs human approval; retry the identical request after a human has approved it".into(),
            policies: ids,
        };
    }
    deny(
        "denied_by_policy",
        format!(
            "{} `{}` on `{}` is forbidden by policy {}",
            input.class,
            input.action,
            r.id,
            ids.join(", ")
        ),
        "ask the Airlock operator why this policy applies".into(),
        ids,
    )
}

fn schema_text(actions: &BTreeMap<String, OpClass>) -> String {
    let applies = "appliesTo { principal: [Human, Agent, Service], resource: [Resource], context: OpContext }";
    let mut s = String::from(
        "namespace Airlock {\n\
         \x20 entity Human;\n\
         \x20 entity Agent { owner: Human };\n\
         \x20 entity Service { owner: Human };\n\
         \x20 entity Resource { environment: String, environment_known: Bool, kind: String, protected: Bool };\n\
         \x20 type OpContext = {\n\
         \x20   operation: String, class: String, token_id: String,\n\
         \x20   token_environments: Set<String>, allowed_classes: Set<String>,\n\
         \x20   approval: String, now: Long\n\
         \x20 };\n\
         \x20 action \"read\", \"write\", \"destructive\", \"privilege\", \"admin\";\n",
    );
    for class in OpClass::ALL {
        s.push_str(&format!(
            "  action \"{}\" in [\"{}\"] {applies};\n",
            other_action(class),
            class.as_str()
        ));
    }
    s.push_str(&format!(
        "  action \"administer\" in [\"admin\"] {applies};\n"
    ));
    for (name, class) in actions {
        s.push_str(&format!(
            "  action \"{name}\" in [\"{}\"] {applies};\n",
            class.as_str()
        ));
    }
    s.push_str("}\n");
    s
}
