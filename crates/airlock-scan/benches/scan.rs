//! Scanner hot paths: a mixed text buffer through the whole engine, and the generic rule's
//! worst case (dense `password =` / `token =` lines).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use airlock_scan::fakes::{fake, fake_hex, fake_uuid};
use airlock_scan::{Origin, Scanner};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fmt::Write;

fn mixed(size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 1024);
    let mut i = 0u64;
    while s.len() < size {
        i += 1;
        match i % 6 {
            0 => writeln!(s, "    let request_id = \"{}\"; // trace the request through the service", fake_uuid(i)).unwrap(),
            1 => writeln!(s, "    const COMMIT: &str = \"{}\";", fake_hex(i, 40)).unwrap(),
            2 => writeln!(s, "The handler returns the value of the session token to the caller after validation.").unwrap(),
            3 => writeln!(s, "{{\"id\":{i},\"name\":\"item {i}\",\"url\":\"https://api.internal/v1/items/{i}\"}},").unwrap(),
            4 => writeln!(s, "    let password = env::var(\"DB_PASSWORD\").unwrap_or_default();").unwrap(),
            _ => writeln!(s, "    fn update_state(&mut self, value: u64) -> Result<(), Error> {{ Ok(()) }}").unwrap(),
        }
        if i.is_multiple_of(5000) {
            writeln!(s, "GITHUB_TOKEN={}", fake("github-token", i).unwrap()).unwrap();
        }
    }
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::with_builtins().unwrap();
    let data = mixed(8 << 20);
    let origin = Origin::file("bench");
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("mixed_8mb_bytes", |b| {
        b.iter(|| scanner.scan_bytes(&data, &origin))
    });
    g.bench_function("mixed_8mb_stream", |b| {
        b.iter(|| {
            scanner
                .scan_reader(std::io::Cursor::new(&data), &origin, true)
                .unwrap()
        })
    });
    let dense: Vec<u8> = "token = compute_token(secret, password_len)\n"
        .repeat(100_000)
        .into_bytes();
    g.throughput(Throughput::Bytes(dense.len() as u64));
    g.bench_function("dense_generic_keywords", |b| {
        b.iter(|| scanner.scan_bytes(&dense, &origin))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
