//! Classification on the gateway's hot path: a typical GraphQL mutation with variables (JSON
//! parse, GraphQL parse, variable resolution) and a typical REST request (normalisation and
//! rule matching over the generic REST rule set).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use airlock_classify::{HttpRequest, RuleSet};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use std::hint::black_box;
use std::path::Path;

fn rules(name: &str) -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../rules")
        .join(name);
    RuleSet::load(&path).unwrap()
}

const MUTATION: &str = r#"{
  "operationName": "DeleteVolume",
  "query": "mutation DeleteVolume($volumeId: ID!, $reason: String) {\n  volumeDelete(volumeId: $volumeId, reason: $reason) {\n    id\n    name\n    project { id name }\n    deletedAt\n  }\n}",
  "variables": { "volumeId": "3f1c2a9e-7b7d-4c55-9d7e-0a3b5c6d7e8f", "reason": "cleanup" }
}"#;

fn bench(c: &mut Criterion) {
    let cloud = rules("cloud-graphql.toml");
    let rest = rules("generic-rest.toml");
    let mut json = HeaderMap::new();
    json.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let empty = HeaderMap::new();

    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("graphql_mutation_with_variables", |b| {
        b.iter(|| {
            let req = HttpRequest {
                method: "POST",
                path_and_query: "/graphql",
                headers: &json,
                body: Some(MUTATION.as_bytes()),
            };
            black_box(cloud.classify(black_box(&req)))
        })
    });
    g.bench_function("rest_get_with_query", |b| {
        b.iter(|| {
            let req = HttpRequest {
                method: "GET",
                path_and_query: "/v1/projects/p-42/volumes/3f1c2a9e?limit=50&cursor=abc",
                headers: &empty,
                body: None,
            };
            black_box(rest.classify(black_box(&req)))
        })
    });
    g.bench_function("rest_delete", |b| {
        b.iter(|| {
            let req = HttpRequest {
                method: "DELETE",
                path_and_query: "/v1/volumes/3f1c2a9e-7b7d-4c55-9d7e-0a3b5c6d7e8f",
                headers: &empty,
                body: None,
            };
            black_box(rest.classify(black_box(&req)))
        })
    });
    g.finish();

    // Sanity: the benchmarked requests classify as intended, so the figures measure real work.
    let req = HttpRequest {
        method: "POST",
        path_and_query: "/graphql",
        headers: &json,
        body: Some(MUTATION.as_bytes()),
    };
    let out = cloud.classify(&req);
    assert_eq!(out.operations[0].action, "volumeDelete");
    assert_eq!(
        out.operations[0].resource_id.as_deref(),
        Some("3f1c2a9e-7b7d-4c55-9d7e-0a3b5c6d7e8f")
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
