//! SQL classification on the PostgreSQL door's hot path: a cold classification (parse on the
//! parser thread, fingerprint, tree walk) of a typical SELECT with a join and of an INSERT, a
//! cache hit, and a simple-protocol pgbench stream (every text new) through the exact-text
//! cache alone and through the normalised cache.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use airlock_sql::{classify, normalize, Classifier, SqlConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const SELECT_JOIN: &str = "SELECT b.id, b.starts_at, c.name, count(*) AS n \
     FROM public.bookings b JOIN customers c ON c.id = b.customer_id \
     WHERE b.starts_at > now() - interval '7 days' AND c.region = $1 \
     GROUP BY b.id, b.starts_at, c.name ORDER BY b.starts_at DESC LIMIT 50";

const INSERT: &str = "INSERT INTO bookings (customer_id, starts_at, seats, note) \
     VALUES ($1, $2, 4, 'window table') RETURNING id";

fn bench(c: &mut Criterion) {
    let cfg = SqlConfig::default();
    let mut g = c.benchmark_group("sql");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cold_select_join", |b| {
        b.iter(|| classify(black_box(SELECT_JOIN), &cfg))
    });
    g.bench_function("cold_insert", |b| {
        b.iter(|| classify(black_box(INSERT), &cfg))
    });
    let cache = Classifier::new(cfg.clone(), 1024);
    cache.classify(SELECT_JOIN);
    g.bench_function("cache_hit_select_join", |b| {
        b.iter(|| cache.classify(black_box(SELECT_JOIN)))
    });
    g.bench_function("normalize_pgbench_select", |b| {
        b.iter(|| normalize(black_box(PGBENCH_SELECT)))
    });
    g.finish();
}

const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";

/// `pgbench -M simple`'s SELECT with 10 000 distinct account ids, cycled through one classifier
/// configured as the door configures it (no fingerprints, 4096 entries).
fn pgbench_stream(c: &mut Criterion) {
    let cfg = SqlConfig {
        fingerprints: false,
        ..SqlConfig::default()
    };
    let texts: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
                1 + i * 7
            )
        })
        .collect();
    let mut g = c.benchmark_group("sql_pgbench_simple");
    g.throughput(Throughput::Elements(1));
    for (name, cache) in [
        (
            "exact_cache",
            Classifier::new(cfg.clone(), 4096).exact_only(),
        ),
        ("normalized_cache", Classifier::new(cfg.clone(), 4096)),
    ] {
        let mut next = texts.iter().cycle();
        g.bench_function(name, |b| {
            b.iter(|| cache.classify(next.next().map_or("", String::as_str)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, pgbench_stream);
criterion_main!(benches);
