//! Properties: classification never panics, a whole is as dangerous as its worst part,
//! normalisation is idempotent, adding to a document never lowers its class.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use airlock_classify::{HttpRequest, RuleSet, UNCLASSIFIABLE};
use common::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use std::sync::OnceLock;

fn sets() -> &'static [RuleSet; 2] {
    static SETS: OnceLock<[RuleSet; 2]> = OnceLock::new();
    SETS.get_or_init(|| [rest(), cloud()])
}

/// Paths built from pieces that matter to normalisation, plus arbitrary strings.
fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/",
        "//",
        "..",
        ".",
        "%2e",
        "%2E",
        "%2f",
        "%5c",
        "%00",
        "%25",
        "%252e",
        "%",
        "%4",
        "admin",
        "ADMIN",
        "v1",
        "volumes",
        "users",
        "roles",
        "tokens",
        "graphql",
        "7",
        ";x",
        "\\",
        "?",
        "&",
        "_method=DELETE",
        "query=",
        "%7Bvolumes%7Bid%7D%7D",
        "a b",
        "é",
        "*",
        "{id}",
    ]);
    prop_oneof![
        3 => prop::collection::vec(piece.clone(), 0..12).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => prop::collection::vec(piece, 0..8).prop_map(|v| format!("/{}", v.join("/"))),
    ]
}

fn method_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "TRACE"])
            .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn headers_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(vec![
        "content-type",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-other",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "application/json",
            "application/graphql",
            "application/x-www-form-urlencoded",
            "DELETE",
            "GET",
            "POST",
            "",
            "text/plain",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,20}",
    ];
    prop::collection::vec((name.prop_map(str::to_string), value), 0..4)
}

fn body_strategy() -> impl Strategy<Value = Option<Vec<u8>>> {
    let doc = prop::sample::select(vec![
        "{\"query\":\"{ volumes { id } }\"}",
        "{\"query\":\"mutation { volumeDelete(volumeId: \\\"v\\\") { id } }\"}",
        "[{\"query\":\"{ volumes { id } }\"},{\"query\":\"mutation { a: volumeDelete { id } }\"}]",
        "{\"query\":\"query A { ...F } fragment F on Query { ...F }\"}",
        "_method=DELETE",
        "mutation { volumeDelete(volumeId: $x) { id } }",
    ]);
    prop_oneof![
        1 => Just(None),
        2 => doc.prop_map(|d| Some(d.as_bytes().to_vec())),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        1 => "[ -~]{0,200}".prop_map(|s| Some(s.into_bytes())),
    ]
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

/// A pool of operations with their own names, to build documents and batches from.
const OPS: &[&str] = &[
    "query { volumes { id } }",
    "query { volume(id: \"v\") { id } }",
    "query { __schema { types { name } } }",
    "mutation { volumeCreate(input: {projectId: \"p\", size: 1}) { id } }",
    "mutation { volumeUpdate(volumeId: \"v\") { id } }",
    "mutation { volumeDelete(volumeId: \"v\") { id } }",
    "mutation { x: volumeBackupDelete(backupId: \"b\") { id } }",
    "mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } }",
    "mutation { somethingUnknown { id } }",
    "subscription { volumeEvents { id } }",
    "query { ... on Query { volumes { id } } }",
    "query { not valid",
];

/// Names the `i`th operation of a document `O{i}` so that several can share a document.
fn named(op: &str, i: usize) -> String {
    match op.split_once(' ') {
        Some((kind, rest)) => format!("{kind} O{i} {rest}"),
        None => op.to_string(),
    }
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn classification_never_panics(
        method in method_strategy(),
        path in path_strategy(),
        hdrs in headers_strategy(),
        body in body_strategy(),
    ) {
        let h = header_map(&hdrs);
        for rs in sets() {
            let _ = rs.needs_body(&method, &path, &h);
            let c = rs.classify(&HttpRequest { method: &method, path_and_query: &path, headers: &h, body: body.as_deref() });
            prop_assert!(!c.operations.is_empty());
            if c.operations.iter().any(|o| o.action == UNCLASSIFIABLE) {
                prop_assert!(!c.notes.is_empty(), "an unclassifiable request says why");
            }
        }
    }

    #[test]
    fn normalisation_is_idempotent(path in path_strategy(), ci in any::<bool>()) {
        let text = format!("case_insensitive_paths = {ci}\n");
        let rs = RuleSet::from_toml(&text, std::path::Path::new("t.toml")).unwrap();
        let once = classify(&rs, "GET", &path, &[], None);
        if once.operations[0].action != UNCLASSIFIABLE {
            let twice = classify(&rs, "GET", &once.normalized_path, &[], None);
            prop_assert_eq!(&twice.normalized_path, &once.normalized_path);
            prop_assert_eq!(twice.class(), once.class());
        }
    }

    #[test]
    fn batch_class_is_the_max_of_its_parts(picks in prop::collection::vec(0..OPS.len(), 1..6)) {
        let rs = &sets()[1];
        let parts: Vec<_> = picks.iter().map(|&i| serde_json::json!({ "query": OPS[i] })).collect();
        let whole = gql(rs, &serde_json::Value::Array(parts.clone()).to_string()).class();
        let max = parts.iter().map(|p| gql(rs, &p.to_string()).class()).max().unwrap();
        prop_assert_eq!(whole, max);
    }

    #[test]
    fn document_class_is_the_max_of_its_operations(picks in prop::collection::vec(0..OPS.len(), 1..6)) {
        let rs = &sets()[1];
        let doc = picks.iter().enumerate().map(|(i, &p)| named(OPS[p], i)).collect::<Vec<_>>().join("\n");
        let whole = gql(rs, &serde_json::json!({ "query": doc }).to_string()).class();
        let max = (0..picks.len())
            .map(|i| gql(rs, &serde_json::json!({ "query": doc, "operationName": format!("O{i}") }).to_string()).class())
            .max()
            .unwrap();
        prop_assert_eq!(whole, max);
    }

    #[test]
    fn adding_an_operation_never_lowers_the_class(
        picks in prop::collection::vec(0..OPS.len(), 1..5),
        extra in 0..OPS.len(),
    ) {
        let rs = &sets()[1];
        let ops: Vec<_> = picks.iter().enumerate().map(|(i, &p)| named(OPS[p], i)).collect();
        let before = gql(rs, &serde_json::json!({ "query": ops.join("\n") }).to_string()).class();
        let more = format!("{}\n{}", ops.join("\n"), named(OPS[extra], ops.len()));
        let after = gql(rs, &serde_json::json!({ "query": more }).to_string()).class();
        prop_assert!(after >= before, "{before} then {after}");
    }
}
