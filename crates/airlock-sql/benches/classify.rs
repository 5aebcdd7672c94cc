//! SQL classification on the PostgreSQL door's hot path: a cold classification (parse on the
//! parser thread, fingerprint, tree walk) of a typical SELECT with a join and of an INSERT, and
//! a cache hit.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use airlock_sql::{classify, Classifier, SqlConfig};
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
