//! Any bytes as an HTTP request to the cloud GraphQL rule set: classification answers with at
//! least one operation, never a panic, and a request it cannot read is at least destructive.
#![no_main]
use airlock_classify::{HttpRequest, RuleSet, UNCLASSIFIABLE};
use airlock_core::OpClass;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        RuleSet::from_toml(
            include_str!("../../rules/cloud-graphql.toml"),
            Path::new("cloud-graphql.toml"),
        )
        .unwrap_or_default()
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"];
const TYPES: [&str; 4] = [
    "application/json",
    "application/graphql",
    "application/x-www-form-urlencoded",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // First line: the request target; the rest: the body. Paths mostly hit the endpoint so
    // the GraphQL parser gets exercised, sometimes come from the input.
    let (line, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let line = String::from_utf8_lossy(line);
    let target = if sel & 0x80 != 0 {
        line.into_owned()
    } else {
        format!("/graphql{line}")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(TYPES[usize::from(sel >> 3) % TYPES.len()]),
    );
    if sel & 0x40 != 0 {
        headers.insert(
            "x-http-method-override",
            http::HeaderValue::from_static("DELETE"),
        );
    }
    let method = METHODS[usize::from(sel) % METHODS.len()];
    let rs = rules();
    let _ = rs.needs_body(method, &target, &headers);
    let c = rs.classify(&HttpRequest {
        method,
        path_and_query: &target,
        headers: &headers,
        body: Some(body),
    });
    assert!(!c.operations.is_empty());
    if c.operations.iter().any(|o| o.action == UNCLASSIFIABLE) {
        assert!(c.class() >= OpClass::Destructive);
    }
});
