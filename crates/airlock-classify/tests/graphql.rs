//! GraphQL classification against `rules/cloud-graphql.toml`, including bypass attempts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use airlock_classify::{RuleSet, UNCLASSIFIABLE};
use airlock_core::OpClass::*;
use common::*;
use std::path::Path;

fn json(query: &str) -> String {
    serde_json::json!({ "query": query }).to_string()
}

#[test]
fn queries_read_mutations_by_rule() {
    let rs = cloud();
    let c = gql(
        &rs,
        &json("query { volumes { id } project(id: \"p1\") { name } }"),
    );
    assert_eq!(c.class(), Read);
    assert_eq!(actions(&c), ["volumes", "project"]);
    assert_eq!(c.operations[1].resource_kind, "project");
    assert_eq!(c.operations[1].resource_id.as_deref(), Some("p1"));
    assert_eq!(c.effective_method, "POST");
    assert_eq!(c.normalized_path, "/graphql");

    let c = gql(
        &rs,
        &json("mutation { volumeDelete(volumeId: \"vol-1\") { id } }"),
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("vol-1"));
    let c = gql(
        &rs,
        &json("mutation { apiTokenCreate(input: {projectId: \"p1\", name: \"ci\"}) { token } }"),
    );
    assert_eq!(c.class(), Privilege);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("p1"));
    let c = gql(
        &rs,
        &json("mutation { volumeCreate(input: {projectId: \"p1\", size: 10}) { id } }"),
    );
    assert_eq!(c.class(), Write);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("p1"));
}

#[test]
fn unknown_fields_use_the_operation_default() {
    let rs = cloud();
    assert_eq!(gql(&rs, &json("{ billing { total } }")).class(), Read);
    assert_eq!(
        gql(&rs, &json("subscription { volumeEvents { id } }")).class(),
        Read
    );
    let c = gql(&rs, &json("mutation { somethingNew { id } }"));
    assert_eq!(c.class(), Destructive);
    assert_eq!(actions(&c), ["somethingNew"]);
}

#[test]
fn introspection_uses_its_class() {
    let rs = cloud();
    let c = gql(&rs, &json("{ __schema { types { name } } __typename }"));
    assert_eq!(c.class(), Read);
    assert_eq!(actions(&c), ["__schema", "__typename"]);
    let strict = RuleSet::from_toml(
        "[graphql]\npath = \"/graphql\"\nquery_default = \"read\"\n",
        Path::new("t"),
    )
    .unwrap();
    assert_eq!(
        gql(&strict, &json("{ __schema { types { name } } }")).class(),
        Destructive
    );
}

#[test]
fn variables_carry_the_resource() {
    let rs = cloud();
    let body = serde_json::json!({
        "query": "mutation Del($id: ID!) { volumeDelete(volumeId: $id) { id } }",
        "variables": { "id": "vol-42" },
    });
    let c = gql(&rs, &body.to_string());
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("vol-42"));

    let body = serde_json::json!({
        "query": "mutation M($in: VolumeCreateInput!) { volumeCreate(input: $in) { id } }",
        "variables": { "in": { "projectId": "p-9", "size": 5 } },
    });
    assert_eq!(
        gql(&rs, &body.to_string()).operations[0]
            .resource_id
            .as_deref(),
        Some("p-9")
    );

    let body = serde_json::json!({
        "query": "mutation M($p: ID!) { apiTokenCreate(input: {projectId: $p}) { token } }",
        "variables": { "p": 7 },
    });
    assert_eq!(
        gql(&rs, &body.to_string()).operations[0]
            .resource_id
            .as_deref(),
        Some("7")
    );

    let body = json("mutation M($id: ID = \"vol-d\") { volumeDelete(volumeId: $id) { id } }");
    assert_eq!(
        gql(&rs, &body).operations[0].resource_id.as_deref(),
        Some("vol-d")
    );

    // Variables sent as a JSON string, as some clients do.
    let body = serde_json::json!({
        "query": "mutation($id: ID!) { volumeDelete(volumeId: $id) { id } }",
        "variables": "{\"id\": \"vol-s\"}",
    });
    assert_eq!(
        gql(&rs, &body.to_string()).operations[0]
            .resource_id
            .as_deref(),
        Some("vol-s")
    );
}

#[test]
fn bypass_alias_hiding_a_delete() {
    let rs = cloud();
    let c = gql(
        &rs,
        &json("mutation { listVolumes: volumeDelete(volumeId: \"v\") { id } }"),
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(actions(&c), ["volumeDelete"]);
    let c = gql(
        &rs,
        &json("mutation { volumes: volumeBackupDelete(backupId: \"b\") { id } }"),
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_kind, "volumeBackup");
}

#[test]
fn bypass_delete_inside_fragments() {
    let rs = cloud();
    let c = gql(
        &rs,
        &json("mutation { ...F } fragment F on Mutation { volumeUpdate(volumeId: \"a\") { id } ...G } fragment G on Mutation { volumeDelete(volumeId: \"b\") { id } }"),
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(actions(&c), ["volumeUpdate", "volumeDelete"]);
    let c = gql(
        &rs,
        &json("mutation { ... on Mutation { volumeDelete(volumeId: \"b\") { id } } }"),
    );
    assert_eq!(c.class(), Destructive);
    // Cycles and undefined fragments are unclassifiable.
    let c = gql(
        &rs,
        &json("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
    );
    assert_eq!(actions(&c), [UNCLASSIFIABLE]);
    assert!(c.notes[0].contains("spreads itself"), "{:?}", c.notes);
    assert_eq!(
        actions(&gql(&rs, &json("query { ...Nope }"))),
        [UNCLASSIFIABLE]
    );
}

#[test]
fn bypass_delete_in_the_second_request_of_a_batch() {
    let rs = cloud();
    let body = serde_json::json!([
        { "query": "{ volumes { id } }" },
        { "query": "mutation($v: ID!) { volumeDelete(volumeId: $v) { id } }", "variables": { "v": "vol-9" } },
    ]);
    let c = gql(&rs, &body.to_string());
    assert_eq!(c.class(), Destructive);
    assert_eq!(actions(&c), ["volumes", "volumeDelete"]);
    assert_eq!(c.operations[1].resource_id.as_deref(), Some("vol-9"));
    assert_eq!(actions(&gql(&rs, "[]")), [UNCLASSIFIABLE]);
}

#[test]
fn operation_name_selects() {
    let rs = cloud();
    let doc = "query Q { volumes { id } } mutation M { volumeDelete(volumeId: \"v\") { id } }";
    let pick = |name: Option<&str>| {
        let body = serde_json::json!({ "query": doc, "operationName": name });
        gql(&rs, &body.to_string())
    };
    assert_eq!(pick(Some("Q")).class(), Read);
    assert_eq!(pick(Some("M")).class(), Destructive);
    let all = pick(None);
    assert_eq!(
        all.class(),
        Destructive,
        "no operationName: all operations count"
    );
    assert_eq!(actions(&all), ["volumes", "volumeDelete"]);
    let c = pick(Some("Nope"));
    assert_eq!(actions(&c), [UNCLASSIFIABLE]);
    assert!(c.notes[0].contains("`Nope`"), "{:?}", c.notes);
}

#[test]
fn raw_graphql_bodies_and_get_requests() {
    let rs = cloud();
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[("content-type", "application/graphql; charset=utf-8")],
        Some(b"mutation { volumeDelete(volumeId: \"v\") { id } }"),
    );
    assert_eq!(c.class(), Destructive);
    let h = headers(&[]);
    assert!(!rs.needs_body("GET", "/graphql?query=%7Bvolumes%7Bid%7D%7D", &h));
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=%7Bvolumes%7Bid%7D%7D",
        &[],
        None,
    );
    assert_eq!(c.class(), Read);
    assert_eq!(c.effective_method, "GET");
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=mutation+D($v:ID!)+%7BvolumeDelete(volumeId:$v)%7Bid%7D%7D&variables=%7B%22v%22:%22x%22%7D&operationName=D",
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("x"));
    assert_eq!(
        actions(&classify(&rs, "GET", "/graphql", &[], None)),
        [UNCLASSIFIABLE]
    );
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=%7Bvolumes%7Bid%7D%7D&query=mutation%7BvolumeDelete%7Bid%7D%7D",
        &[],
        None,
    );
    assert_eq!(
        actions(&c),
        ["volumes", "volumeDelete"],
        "a repeated parameter is read both ways"
    );
    assert_eq!(c.class(), Destructive);
    // A second endpoint path, reached through normalisation.
    let c = classify(
        &rs,
        "GET",
        "/graphql//v2/?query=%7Bvolumes%7Bid%7D%7D",
        &[],
        None,
    );
    assert_eq!(c.class(), Read);
}

#[test]
fn needs_body_for_graphql_endpoints() {
    let rs = cloud();
    let h = headers(&[("content-type", "application/json")]);
    assert!(rs.needs_body("POST", "/graphql", &h));
    assert!(rs.needs_body("POST", "//graphql/", &h));
    assert!(!rs.needs_body("GET", "/health", &h));
    assert!(rs.needs_body(
        "GET",
        "/graphql",
        &headers(&[("x-http-method-override", "POST")])
    ));
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[("content-type", "application/json")],
        None,
    );
    assert_eq!(actions(&c), [UNCLASSIFIABLE]);
    assert!(c.notes[0].contains("without its body"), "{:?}", c.notes);
}

#[test]
fn get_with_override_to_post_reads_the_body() {
    let rs = cloud();
    let body = json("mutation { volumeDelete(volumeId: \"v\") { id } }");
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=%7Bvolumes%7Bid%7D%7D",
        &[
            ("x-http-method-override", "POST"),
            ("content-type", "application/json"),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(c.class(), Destructive);
}

#[test]
fn failures_are_one_destructive_operation_with_a_note() {
    let rs = cloud();
    let cases: &[(&str, &str)] = &[
        ("{not json", "not valid JSON"),
        ("{\"query\": 5}", "not a string"),
        ("{\"variables\": {}}", "without a `query`"),
        (
            "{\"query\": \"mutation { volumeDelete(\"}",
            "cannot parse GraphQL",
        ),
        ("{\"query\": \"type Q { a: Int }\"}", "not executable"),
        (
            "{\"query\": \"{ a }\", \"operationName\": 3}",
            "not a string",
        ),
        ("\"{ a }\"", "neither"),
        (
            "{\"extensions\": {\"persistedQuery\": {\"sha256Hash\": \"abc\"}}}",
            "without a `query`",
        ),
    ];
    for (body, note) in cases {
        let c = gql(&rs, body);
        assert_eq!(actions(&c), [UNCLASSIFIABLE], "{body}");
        assert_eq!(c.class(), Destructive);
        assert!(
            c.notes.iter().any(|n| n.contains(note)),
            "{body}: {:?}",
            c.notes
        );
    }
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[("content-type", "text/plain")],
        Some(b"{ volumes { id } }"),
    );
    assert_eq!(actions(&c), [UNCLASSIFIABLE]);
}

#[test]
fn limits_are_destructive() {
    let rs = cloud();
    let big = vec![b' '; rs.max_body() + 1];
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[("content-type", "application/json")],
        Some(&big),
    );
    assert!(c.notes[0].contains("exceeds"), "{:?}", c.notes);
    let deep = format!("{{ volumes {}id{} }}", "{ a ".repeat(200), " }".repeat(200));
    assert_eq!(actions(&gql(&rs, &json(&deep))), [UNCLASSIFIABLE]);
    let many = format!(
        "{{ {} }}",
        (0..300)
            .map(|i| format!("a{i}: volumes {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let c = gql(&rs, &json(&many));
    assert!(c.operations.iter().any(|o| o.action == UNCLASSIFIABLE));
    assert_eq!(c.class(), Destructive);
    let batch =
        serde_json::Value::Array(vec![serde_json::json!({"query": "{ volumes { id } }"}); 33]);
    assert_eq!(actions(&gql(&rs, &batch.to_string())), [UNCLASSIFIABLE]);
    let tokens = format!("{{ volumes(a: [{}]) {{ id }} }}", "1,".repeat(30_000));
    assert_eq!(actions(&gql(&rs, &json(&tokens))), [UNCLASSIFIABLE]);
    let chain: String = (0..100)
        .map(|i| format!("fragment F{i} on Query {{ ...F{} }} ", i + 1))
        .collect();
    let doc = format!("{{ ...F0 }} {chain} fragment F100 on Query {{ volumes {{ id }} }}");
    assert_eq!(actions(&gql(&rs, &json(&doc))), [UNCLASSIFIABLE]);
}

#[test]
fn actions_include_graphql_fields() {
    let acts = cloud().actions();
    for (a, c) in [
        ("volumeDelete", Destructive),
        ("apiTokenCreate", Privilege),
        ("volume", Read),
        ("__schema", Read),
        ("health", Read),
    ] {
        assert!(acts.contains(&(a.to_string(), c)), "{a}: {acts:?}");
    }
}

#[test]
fn repeated_members_classify_every_reading() {
    let rs = cloud();
    let c = gql(&rs, "{\"query\": \"{ volumes { id } }\", \"query\": \"mutation { volumeDelete(volumeId: \\\"v\\\") { id } }\"}");
    assert_eq!(actions(&c), ["volumes", "volumeDelete"]);
    assert_eq!(c.class(), Destructive);
    let doc = "query Q { volumes { id } } mutation M { apiTokenCreate { token } }";
    let body = format!(
        "{{\"query\": {}, \"operationName\": \"Q\", \"operationName\": \"M\"}}",
        serde_json::json!(doc)
    );
    assert_eq!(gql(&rs, &body).class(), Privilege);
}

#[test]
fn failures_still_count_privileged_fields_they_name() {
    // An upstream with higher limits or a laxer parser could execute what Airlock could not
    // classify: a failure must not hide a privilege operation behind `destructive`.
    let rs = cloud();
    let padding: String = (0..300)
        .map(|i| format!("a{i}: volumes {{ id }} "))
        .collect();
    let c = gql(
        &rs,
        &json(&format!(
            "mutation {{ {padding} apiTokenCreate(input: {{projectId: \"p\"}}) {{ token }} }}"
        )),
    );
    assert!(c.operations.iter().any(|o| o.action == UNCLASSIFIABLE));
    assert_eq!(c.class(), Privilege);
    let c = gql(
        &rs,
        &json("mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } "),
    );
    assert_eq!(c.class(), Privilege);
    // A longer name that merely contains a privileged one is not it.
    let c = gql(&rs, &json("mutation { apiTokenCreateX { token } "));
    assert_eq!(c.class(), Destructive);
    let batch = serde_json::Value::Array(
        (0..40).map(|i| serde_json::json!({"query": if i == 39 { "mutation { projectMemberAdd { id } }" } else { "{ volumes { id } }" }})).collect(),
    );
    assert_eq!(gql(&rs, &batch.to_string()).class(), Privilege);
}

#[test]
fn refused_path_that_reads_as_the_endpoint_still_counts_its_body() {
    let rs = cloud();
    let h = headers(&[("content-type", "application/json")]);
    assert!(rs.needs_body("POST", "/x/..%2fgraphql", &h));
    let body = json("mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } }");
    let c = classify(
        &rs,
        "POST",
        "/x/..%2fgraphql",
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(actions(&c), [UNCLASSIFIABLE, "apiTokenCreate"]);
    assert_eq!(c.class(), Privilege);
}

#[test]
fn deeply_nested_values_do_not_overflow() {
    let rs = cloud();
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let n = 19_990 / 2;
        let doc = format!(
            "{{ volume(id: {}1{}) {{ id }} }}",
            open.repeat(n),
            close.repeat(n)
        );
        let c = gql(&rs, &json(&doc));
        assert!(c.class() >= Read);
    }
    let n = 100_000;
    let doc = format!(
        "{{ volume(id: {}1{}) {{ id }} }}",
        "[".repeat(n),
        "]".repeat(n)
    );
    assert_eq!(actions(&gql(&rs, &json(&doc))), [UNCLASSIFIABLE]);
}

#[test]
fn a_repeated_argument_or_input_field_is_never_read_as_its_first_copy() {
    let rules = airlock_classify::RuleSet::from_toml(
        include_str!("../../../rules/cloud-graphql.toml"),
        std::path::Path::new("cloud-graphql.toml"),
    )
    .unwrap();
    let headers = {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        h
    };
    let classify = |q: &str| {
        let body = serde_json::json!({ "query": q }).to_string();
        rules.classify(&airlock_classify::HttpRequest {
            method: "POST",
            path_and_query: "/graphql",
            headers: &headers,
            body: Some(body.as_bytes()),
        })
    };
    let c = classify(r#"mutation { volumeDelete(volumeId: "vol-stg-1", volumeId: "vol-prod-1") }"#);
    assert_eq!(c.class(), airlock_core::OpClass::Destructive);
    assert!(
        c.operations
            .iter()
            .all(|o| o.resource_id.as_deref() != Some("vol-stg-1")),
        "{c:?}"
    );
    let c = classify(
        r#"mutation { volumeBackupRestore(input: {volumeId: "vol-stg-1", volumeId: "vol-prod-1"}) }"#,
    );
    assert!(
        c.operations.iter().all(|o| o.resource_id.is_none()),
        "{c:?}"
    );
}

#[test]
fn targets_list_every_action_with_its_resource_and_the_defaults_for_unruled_fields() {
    let rules = cloud();
    let t = rules.targets();
    let get = |a: &str| t.iter().find(|x| x.action == a).unwrap();
    assert_eq!(get("volumeDelete").class, Destructive);
    assert_eq!(get("volumeDelete").resource_kind, "volume");
    assert!(get("volumeDelete").names_resource);
    assert!(!get("volumes").names_resource);
    assert_eq!(
        get(airlock_classify::OTHER_MUTATION_FIELD).class,
        Destructive
    );
    assert_eq!(get(airlock_classify::OTHER_QUERY_FIELD).class, Read);
    assert_eq!(get(UNCLASSIFIABLE).class, Destructive);
    // Every action the policy schema knows is a target, so blast radius misses none.
    for (a, _) in rules.actions() {
        assert!(t.iter().any(|x| x.action == a), "{a} missing");
    }
}
