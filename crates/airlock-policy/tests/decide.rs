//! The built-in pack's promises, and operator policies on top of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_core::{EnvName, IdentityKind, OpClass, OpClassSet, Outcome};
use airlock_policy::{Approval, Engine, Input, PolicyFile, Principal, Resource};
use proptest::prelude::*;

fn env(s: &str) -> EnvName {
    EnvName::new(s).unwrap()
}

fn engine(extra: &[(&str, &str)]) -> Engine {
    let files: Vec<PolicyFile> = extra
        .iter()
        .map(|(o, t)| PolicyFile {
            origin: o.to_string(),
            text: t.to_string(),
        })
        .collect();
    Engine::new(
        &[
            ("volumeDelete".into(), OpClass::Destructive),
            ("volume".into(), OpClass::Read),
            ("volumeCreate".into(), OpClass::Write),
            ("apiTokenCreate".into(), OpClass::Privilege),
        ],
        &files,
    )
    .unwrap()
}

struct Case {
    kind: IdentityKind,
    token_envs: Vec<EnvName>,
    allowed: OpClassSet,
    action: &'static str,
    class: OpClass,
    resource_env: Option<EnvName>,
    protected: bool,
    approval: Approval,
}

impl Case {
    fn agent(
        token_env: &str,
        allow: &str,
        action: &'static str,
        class: OpClass,
        resource_env: &str,
        protected: bool,
    ) -> Case {
        Case {
            kind: IdentityKind::Agent,
            token_envs: vec![env(token_env)],
            allowed: OpClassSet::parse_list(allow).unwrap(),
            action,
            class,
            resource_env: Some(env(resource_env)),
            protected,
            approval: Approval::None,
        }
    }

    fn decide(&self, e: &Engine) -> airlock_policy::Decision {
        e.decide(&Input {
            principal: Principal {
                id: "bot",
                kind: self.kind,
                owner: if self.kind == IdentityKind::Human {
                    None
                } else {
                    Some("alice")
                },
                token_id: "tok_0000000000000001",
                environments: &self.token_envs,
                allowed: self.allowed,
            },
            action: self.action,
            class: self.class,
            resource: Resource {
                kind: "volume",
                id: "vol-1",
                environment: self.resource_env.as_ref(),
                protected: self.protected,
            },
            approval: self.approval,
            now: 1_800_000_000,
        })
    }
}

#[test]
fn a_staging_token_cannot_touch_a_production_resource() {
    let d = Case::agent(
        "staging",
        "read,write,destructive",
        "volumeDelete",
        OpClass::Destructive,
        "production",
        true,
    )
    .decide(&engine(&[]));
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.code, "environment_mismatch");
    assert!(
        d.reason
            .contains("the token is for staging but `vol-1` is in production"),
        "{}",
        d.reason
    );
    assert!(d.policies.contains(&"environment-match".to_string()));
    assert!(d.hint.contains("production token"));
}

#[test]
fn a_staging_token_may_delete_a_staging_resource_when_its_allowlist_says_so() {
    let e = engine(&[]);
    let d = Case::agent(
        "staging",
        "read,write,destructive",
        "volumeDelete",
        OpClass::Destructive,
        "staging",
        false,
    )
    .decide(&e);
    assert_eq!(d.outcome, Outcome::Allow, "{d:?}");
    assert_eq!(d.policies, vec!["base-permit".to_string()]);
    let d = Case::agent(
        "staging",
        "read,write",
        "volumeDelete",
        OpClass::Destructive,
        "staging",
        false,
    )
    .decide(&e);
    assert_eq!(d.code, "class_not_allowed");
    assert!(d.reason.contains("allows only read,write"), "{}", d.reason);
}

#[test]
fn destructive_and_privilege_operations_in_a_protected_environment_wait_for_a_human() {
    let e = engine(&[]);
    for (action, class) in [
        ("volumeDelete", OpClass::Destructive),
        ("apiTokenCreate", OpClass::Privilege),
    ] {
        let mut c = Case::agent(
            "production",
            "read,write,destructive,privilege",
            action,
            class,
            "production",
            true,
        );
        let d = c.decide(&e);
        assert_eq!(d.outcome, Outcome::NeedsApproval, "{d:?}");
        assert_eq!(d.code, "approval_required");
        c.approval = Approval::Granted;
        assert_eq!(c.decide(&e).outcome, Outcome::Allow);
    }
    let read = Case::agent(
        "production",
        "read",
        "volume",
        OpClass::Read,
        "production",
        true,
    )
    .decide(&e);
    assert_eq!(read.outcome, Outcome::Allow);
}

#[test]
fn an_approval_never_lifts_an_environment_mismatch() {
    let mut c = Case::agent(
        "staging",
        "read,write,destructive",
        "volumeDelete",
        OpClass::Destructive,
        "production",
        true,
    );
    c.approval = Approval::Granted;
    assert_eq!(c.decide(&engine(&[])).code, "environment_mismatch");
}

#[test]
fn a_resource_with_no_known_environment_is_refused() {
    let mut c = Case::agent(
        "production",
        "read",
        "volume",
        OpClass::Read,
        "production",
        true,
    );
    c.resource_env = None;
    let d = c.decide(&engine(&[]));
    assert_eq!(d.code, "unknown_resource_environment");
    assert!(d.hint.contains("airlock resource add vol-1"), "{}", d.hint);
}

#[test]
fn unknown_actions_are_decided_by_their_class() {
    let e = engine(&[]);
    let d = Case::agent(
        "staging",
        "read",
        "somethingNew",
        OpClass::Destructive,
        "staging",
        false,
    )
    .decide(&e);
    assert_eq!(d.code, "class_not_allowed");
    let d = Case::agent(
        "staging",
        "read",
        "listThings",
        OpClass::Read,
        "staging",
        false,
    )
    .decide(&e);
    assert_eq!(d.outcome, Outcome::Allow);
}

#[test]
fn operator_policies_can_narrow_but_not_widen() {
    let e = engine(&[(
        "policies/no-deletes.cedar",
        r#"@id("no-volume-deletes-by-agents")
           forbid (principal is Airlock::Agent, action == Airlock::Action::"volumeDelete", resource);
           permit (principal, action, resource) when { resource.environment == "production" };"#,
    )]);
    let d = Case::agent(
        "staging",
        "read,write,destructive",
        "volumeDelete",
        OpClass::Destructive,
        "staging",
        false,
    )
    .decide(&e);
    assert_eq!(d.code, "denied_by_policy");
    assert!(
        d.reason.contains("no-volume-deletes-by-agents"),
        "{}",
        d.reason
    );
    // The extra permit does not lift the built-in environment check.
    let d = Case::agent(
        "staging",
        "read",
        "volume",
        OpClass::Read,
        "production",
        true,
    )
    .decide(&e);
    assert_eq!(d.code, "environment_mismatch");
}

#[test]
fn a_policy_that_does_not_match_the_schema_is_rejected_with_its_file() {
    let err = Engine::new(
        &[],
        &[PolicyFile {
            origin: "policies/typo.cedar".into(),
            text: "forbid (principal, action, resource) when { resource.enviroment == \"x\" };"
                .into(),
        }],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("policies/typo.cedar:"), "{err}");
    let err = Engine::new(
        &[],
        &[PolicyFile {
            origin: "policies/broken.cedar".into(),
            text: "forbid (principal, action resource);".into(),
        }],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("policies/broken.cedar: cannot parse"),
        "{err}"
    );
}

#[test]
fn agents_never_administer_airlock_but_humans_may() {
    let e = engine(&[]);
    let mut c = Case::agent(
        "production",
        "read,write,destructive,privilege",
        "administer",
        OpClass::Privilege,
        "production",
        false,
    );
    assert_eq!(c.decide(&e).code, "agents_never_administer_airlock");
    c.kind = IdentityKind::Human;
    assert_eq!(c.decide(&e).outcome, Outcome::Allow);
}

fn class() -> impl Strategy<Value = OpClass> {
    prop::sample::select(OpClass::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]
    /// Nothing is allowed outside the token's environments or allowlist, and nothing destructive
    /// or privileged is allowed in a protected environment without an approval.
    #[test]
    fn the_builtin_pack_holds_its_invariants(
        token_env in prop::sample::select(vec!["staging", "production"]),
        res_env in prop::sample::select(vec!["staging", "production"]),
        allowed in 0u8..16,
        op_class in class(),
        protected in any::<bool>(),
        approved in any::<bool>(),
        kind in prop::sample::select(vec![IdentityKind::Agent, IdentityKind::Human, IdentityKind::Service]),
        action in prop::sample::select(vec!["volumeDelete", "volume", "volumeCreate", "apiTokenCreate", "x"]),
    ) {
        let e = engine(&[]);
        let allowed_set: OpClassSet = OpClass::ALL.into_iter().filter(|c| allowed & (1 << (*c as u8)) != 0).collect();
        let c = Case {
            kind,
            token_envs: vec![env(token_env)],
            allowed: allowed_set,
            action,
            class: op_class,
            resource_env: Some(env(res_env)),
            protected,
            approval: if approved { Approval::Granted } else { Approval::None },
        };
        let d = c.decide(&e);
        if d.outcome == Outcome::Allow {
            prop_assert_eq!(token_env, res_env);
            prop_assert!(allowed_set.contains(op_class));
            if protected && op_class >= OpClass::Destructive {
                prop_assert!(approved);
            }
        }
    }
}

#[test]
fn operator_policies_can_forbid_a_whole_class_group() {
    let e = engine(&[(
        "policies/no-destruction-for-agents.cedar",
        r#"@id("agents-destroy-nothing")
           forbid (principal is Airlock::Agent, action in Airlock::Action::"destructive", resource);"#,
    )]);
    // A named destructive action and an unknown one classified destructive are both caught.
    for action in ["volumeDelete", "somethingNew"] {
        let d = Case::agent(
            "staging",
            "read,write,destructive",
            action,
            OpClass::Destructive,
            "staging",
            false,
        )
        .decide(&e);
        assert_eq!(d.code, "denied_by_policy", "{action}: {d:?}");
    }
    let d = Case::agent(
        "staging",
        "read,write,destructive",
        "volumeCreate",
        OpClass::Write,
        "staging",
        false,
    )
    .decide(&e);
    assert_eq!(d.outcome, Outcome::Allow);
}

#[test]
fn cached_decisions_never_outlive_a_policy_that_reads_the_clock() {
    let e = engine(&[(
        "policies/office-hours.cedar",
        r#"@id("freeze-after") forbid (principal, action, resource) when { context.now > 1800000100 };"#,
    )]);
    let c = Case::agent("staging", "read", "volume", OpClass::Read, "staging", false);
    let at = |now: i64| {
        e.decide(&Input {
            principal: Principal {
                id: "bot",
                kind: IdentityKind::Agent,
                owner: Some("alice"),
                token_id: "tok_0000000000000001",
                environments: &c.token_envs,
                allowed: c.allowed,
            },
            action: c.action,
            class: c.class,
            resource: Resource {
                kind: "volume",
                id: "vol-1",
                environment: c.resource_env.as_ref(),
                protected: false,
            },
            approval: Approval::None,
            now,
        })
    };
    assert_eq!(at(1_800_000_000).outcome, Outcome::Allow);
    assert_eq!(
        at(1_800_000_000).outcome,
        Outcome::Allow,
        "same answer twice"
    );
    assert_eq!(
        at(1_800_000_200).code,
        "denied_by_policy",
        "the clock moved: no stale cached allow"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, .. ProptestConfig::default() })]
    /// One engine answering a sequence of inputs (so its decision cache is warm) gives exactly
    /// the answers a fresh engine gives.
    #[test]
    fn the_decision_cache_never_changes_an_answer(
        seq in prop::collection::vec((prop::sample::select(vec!["staging", "production"]), prop::sample::select(vec!["staging", "production"]), 0u8..16, any::<bool>()), 1..12)
    ) {
        let warm = engine(&[]);
        for (token_env, res_env, allowed, protected) in seq {
            let allowed_set: OpClassSet = OpClass::ALL.into_iter().filter(|c| allowed & (1 << (*c as u8)) != 0).collect();
            let c = Case { kind: IdentityKind::Agent, token_envs: vec![env(token_env)], allowed: allowed_set, action: "volumeDelete", class: OpClass::Destructive, resource_env: Some(env(res_env)), protected, approval: Approval::None };
            prop_assert_eq!(c.decide(&warm), c.decide(&engine(&[])));
        }
    }
}
