//! Hot paths of the credential authority: verifying a valid (cached) token, and appending an
//! audit record durably. Besides criterion's estimates it prints p50/p99 of single verifications,
//! since a gateway cares about the tail.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use airlock_audit::{Actor, AuditEvent};
use airlock_authority::{Authority, IssueRequest, NewIdentity};
use airlock_config::Config;
use airlock_core::{EnvName, IdentityKind, Name, OpClass, OpClassSet, Outcome, SystemClock};
use airlock_store::{SqliteStore, Store};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn authority(dir: &Path) -> (Authority, Arc<SqliteStore>) {
    let cfg = Config::parse(airlock_config::EXAMPLE, &dir.join("airlock.toml"), dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("airlock.db")).unwrap());
    (
        Authority::new(store.clone(), cfg, Arc::new(SystemClock)),
        store,
    )
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64, u64) {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (p(0.50), p(0.99), p(0.999))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (auth, store) = authority(dir.path());
    let op = Actor::local_operator();
    let name = |s: &str| Name::new(s).unwrap();
    auth.add_identity(
        &op,
        NewIdentity {
            name: name("alice"),
            kind: IdentityKind::Human,
            owner: None,
            purpose: None,
            review_by: None,
            agent_accessible: false,
            environments: vec![],
        },
    )
    .unwrap();
    auth.add_identity(
        &op,
        NewIdentity {
            name: name("bot"),
            kind: IdentityKind::Agent,
            owner: Some(name("alice")),
            purpose: Some("bench".into()),
            review_by: None,
            agent_accessible: false,
            environments: vec![],
        },
    )
    .unwrap();
    let issued = auth
        .issue(
            &op,
            IssueRequest {
                identity: name("bot"),
                environments: vec![EnvName::new("staging").unwrap()],
                allow: [OpClass::Read, OpClass::Write]
                    .into_iter()
                    .collect::<OpClassSet>(),
                ttl: None,
                resource_scope: None,
            },
        )
        .unwrap();
    let token = issued.token.expose().to_string();
    let now = auth.now();
    auth.verify(&token, now).unwrap();

    // `cargo test --all-targets` runs benches once as a smoke test; the long measurements below
    // only run under `cargo bench`.
    let measuring = std::env::args().any(|a| a == "--bench");

    // Tail latency of single cached verifications.
    let rounds = if measuring { 200_000 } else { 100 };
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let r = auth.verify(std::hint::black_box(&token), now);
        samples.push(t.elapsed().as_nanos() as u64);
        assert!(r.is_ok());
    }
    let (p50, p99, p999) = percentiles(samples);
    eprintln!(
        "verify (valid, cached), {rounds} calls: p50 {p50} ns, p99 {p99} ns, p99.9 {p999} ns"
    );

    c.bench_function("verify_valid_cached_token", |b| {
        b.iter(|| auth.verify(std::hint::black_box(&token), now))
    });

    let event = || AuditEvent {
        time: now,
        actor: Actor {
            id: "bot".into(),
            kind: IdentityKind::Agent,
            owner: Some("alice".into()),
            token_id: Some(issued.record.id.clone()),
        },
        action: "http.request".into(),
        resource: Some("volume/v-123".into()),
        environment: Some("staging".into()),
        decision: Outcome::Allow,
        reason: "token environment matches resource environment".into(),
        details: Default::default(),
    };

    // Durable appends: WAL with synchronous=FULL, one transaction (one fsync) per record.
    let n = if measuring { 2_000 } else { 10 };
    let t = Instant::now();
    for _ in 0..n {
        store.append_audit(event()).unwrap();
    }
    let el = t.elapsed();
    eprintln!(
        "audit append (durable, file-backed, one fsync each), {n} records: {:.0} records/s, {:.1} us/record",
        n as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64
    );

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.bench_function("append_durable", |b| {
        b.iter(|| store.append_audit(event()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
