//! Policy decision latency with the built-in pack plus 100 operator policies.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use airlock_core::{EnvName, IdentityKind, OpClass, OpClassSet};
use airlock_policy::{Approval, Engine, Input, PolicyFile, Principal, Resource};
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Instant;

fn bench(c: &mut Criterion) {
    let extra: String = (0..100)
        .map(|i| {
            format!(
                "@id(\"extra-{i}\")\nforbid (principal is Airlock::Agent, action == Airlock::Action::\"op{i}\", resource) when {{ resource.kind == \"kind{i}\" && context.now > {i} }};\n"
            )
        })
        .collect();
    let mut actions: Vec<(String, OpClass)> = (0..100)
        .map(|i| (format!("op{i}"), OpClass::Write))
        .collect();
    actions.push(("volumeDelete".into(), OpClass::Destructive));
    actions.push(("volume".into(), OpClass::Read));
    let engine = Engine::new(
        &actions,
        &[PolicyFile {
            origin: "extra.cedar".into(),
            text: extra,
        }],
    )
    .unwrap();
    assert_eq!(engine.policy_count(), 106);
    let envs = vec![EnvName::new("staging").unwrap()];
    let staging = EnvName::new("staging").unwrap();
    let input = Input {
        principal: Principal {
            id: "bot",
            kind: IdentityKind::Agent,
            owner: Some("alice"),
            token_id: "tok_0000000000000001",
            environments: &envs,
            allowed: OpClassSet::parse_list("read,write").unwrap(),
        },
        action: "volume",
        class: OpClass::Read,
        resource: Resource {
            kind: "volume",
            id: "vol-stg-1",
            environment: Some(&staging),
            protected: false,
        },
        approval: Approval::None,
        now: 1_800_000_000,
    };
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds = if measuring { 50_000 } else { 10 };
    let mut samples: Vec<u64> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let d = engine.decide(std::hint::black_box(&input));
        samples.push(t.elapsed().as_nanos() as u64);
        assert_eq!(d.code, "allowed");
    }
    samples.sort_unstable();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    eprintln!(
        "policy decision (builtin + 100 policies), {rounds} calls: p50 {} ns, p99 {} ns",
        p(0.5),
        p(0.99)
    );
    c.bench_function("policy_decide_builtin_plus_100", |b| {
        b.iter(|| engine.decide(std::hint::black_box(&input)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
