//! Cost of the offline format check every presented token goes through first.
#![allow(missing_docs)]
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let Ok(t) = airlock_token::Token::generate() else {
        return;
    };
    let s = t.expose().to_string();
    c.bench_function("token_check_and_hash", |b| {
        b.iter(|| {
            let t = airlock_token::Token::parse(std::hint::black_box(&s));
            t.map(|t| t.hash())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
