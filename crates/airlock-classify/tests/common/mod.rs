//! Helpers shared by the classifier tests.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use airlock_classify::{Classification, HttpRequest, RuleSet};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::path::PathBuf;

pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

pub fn rest() -> RuleSet {
    RuleSet::load(&rules_dir().join("generic-rest.toml")).unwrap()
}

pub fn cloud() -> RuleSet {
    RuleSet::load(&rules_dir().join("cloud-graphql.toml")).unwrap()
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

pub fn classify(
    rs: &RuleSet,
    method: &str,
    pq: &str,
    hdrs: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Classification {
    let h = headers(hdrs);
    rs.classify(&HttpRequest {
        method,
        path_and_query: pq,
        headers: &h,
        body,
    })
}

/// POSTs a JSON GraphQL body to `/graphql`.
pub fn gql(rs: &RuleSet, body: &str) -> Classification {
    classify(
        rs,
        "POST",
        "/graphql",
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )
}

pub fn actions(c: &Classification) -> Vec<&str> {
    c.operations.iter().map(|o| o.action.as_str()).collect()
}
