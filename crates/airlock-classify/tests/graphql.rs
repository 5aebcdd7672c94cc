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

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn bypass_repeated_variable_keys_name_no_resource() {
    // serde_json keeps the last copy, streaming parsers (simdjson, gjson) the first: the
    // staging id must not be reported while the upstream may delete the production one.
    let rs = cloud();
    let delete = "mutation($id: ID!) { volumeDelete(volumeId: $id) { id } }";
    let body = format!(
        "{{\"query\": {}, \"variables\": {{\"id\": \"vol-prod\", \"id\": \"vol-stg\"}}}}",
        serde_json::json!(delete)
    );
    let c = gql(&rs, &body);
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_id, None, "{c:?}");
    let restore = "mutation($in: In!) { volumeBackupRestore(input: $in) { id } }";
    let body = format!(
        "{{\"query\": {}, \"variables\": {{\"in\": {{\"volumeId\": \"vol-prod\", \"volumeId\": \"vol-stg\"}}}}}}",
        serde_json::json!(restore)
    );
    assert_eq!(gql(&rs, &body).operations[0].resource_id, None);
    // The same inside `variables` sent as a JSON string, and in the URL.
    let body = serde_json::json!({
        "query": delete,
        "variables": "{\"id\": \"vol-prod\", \"id\": \"vol-stg\"}",
    });
    assert_eq!(gql(&rs, &body.to_string()).operations[0].resource_id, None);
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=mutation(%24id:ID!)%7BvolumeDelete(volumeId:%24id)%7Bid%7D%7D&variables=%7B%22id%22:%22vol-prod%22,%22id%22:%22vol-stg%22%7D",
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_id, None, "{c:?}");
    // A variable declared twice: its default is ambiguous too.
    let c = gql(
        &rs,
        &json("mutation($id: ID = \"vol-stg\", $id: ID = \"vol-prod\") { volumeDelete(volumeId: $id) { id } }"),
    );
    assert_eq!(c.operations[0].resource_id, None, "{c:?}");
}

#[test]
fn bypass_numbers_parsers_read_differently_name_no_resource() {
    // JavaScript reads 9007199254740993 as ...992 and 1e2 as the ID "100".
    let rs = cloud();
    for n in ["9007199254740993", "1e2", "100.0", "-9007199254740993"] {
        let body = format!(
            "{{\"query\": \"mutation($id: ID!) {{ volumeDelete(volumeId: $id) {{ id }} }}\", \"variables\": {{\"id\": {n}}}}}"
        );
        let c = gql(&rs, &body);
        assert_eq!(c.class(), Destructive, "{n}");
        assert_eq!(c.operations[0].resource_id, None, "{n}: {c:?}");
    }
    let body = "{\"query\": \"mutation($id: ID!) { volumeDelete(volumeId: $id) { id } }\", \"variables\": {\"id\": 9007199254740991}}";
    assert_eq!(
        gql(&rs, body).operations[0].resource_id.as_deref(),
        Some("9007199254740991")
    );
}

#[test]
fn bypass_namespaced_mutation_under_a_read_rule() {
    // `volume` has a `read` rule for the Query field; in a mutation it is another field, whose
    // selection (`{ delete }`) Airlock does not read: the mutation default applies.
    let rs = cloud();
    let c = gql(&rs, &json("mutation { volume(id: \"v1\") { delete } }"));
    assert_eq!(c.class(), Destructive, "{c:?}");
    assert_eq!(actions(&c), ["volume"]);
    assert_eq!(c.operations[0].resource_id, None);
    let c = gql(
        &rs,
        &json("mutation { ...F } fragment F on Mutation { projects { delete } }"),
    );
    assert_eq!(c.class(), Destructive);
    // Queries, and mutation fields with their own rule, are unchanged.
    let c = gql(&rs, &json("{ volume(id: \"v1\") { id } }"));
    assert_eq!(c.class(), Read);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("v1"));
    let c = gql(
        &rs,
        &json("mutation { volumeCreate(input: {projectId: \"p1\"}) { id } __typename }"),
    );
    assert_eq!(c.class(), Write);
}

#[test]
fn bypass_url_members_of_a_post_are_read_with_the_body() {
    // express-graphql takes `operationName` and `variables` from the URL before the body.
    let rs = cloud();
    let doc =
        "query Q { volumes { id } } mutation M($id: ID!) { volumeDelete(volumeId: $id) { id } }";
    let body =
        serde_json::json!({ "query": doc, "operationName": "Q", "variables": { "id": "vol-stg" } });
    let ct = [("content-type", "application/json")];
    let c = classify(
        &rs,
        "POST",
        "/graphql?operationName=M",
        &ct,
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(c.class(), Destructive, "{c:?}");
    let body = serde_json::json!({
        "query": "mutation($id: ID!) { volumeDelete(volumeId: $id) { id } }",
        "variables": { "id": "vol-stg" },
    });
    let c = classify(
        &rs,
        "POST",
        "/graphql?variables=%7B%22id%22%3A%22vol-prod%22%7D",
        &ct,
        Some(body.to_string().as_bytes()),
    );
    let ids: Vec<_> = c
        .operations
        .iter()
        .map(|o| o.resource_id.as_deref())
        .collect();
    assert!(ids.contains(&Some("vol-prod")), "{c:?}");
    let c = classify(
        &rs,
        "POST",
        "/graphql?variables=%7B%22id%22%3A%22vol-prod%22%7D",
        &[("content-type", "application/graphql")],
        Some(b"mutation($id: ID = \"vol-stg\") { volumeDelete(volumeId: $id) { id } }"),
    );
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("vol-prod"));
    // An ordinary POST is one reading, as before.
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &ct,
        Some(json("{ volumes { id } }").as_bytes()),
    );
    assert_eq!(actions(&c), ["volumes"]);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn bypass_stored_document_beside_a_harmless_query() {
    // graphql-java runs the cached document a persisted-query hash names without comparing
    // it with `query`; only a hash of the very text sent proves they are the same document.
    let rs = cloud();
    let q = "{ volumes { id } }";
    let apq = |hash: &str| {
        serde_json::json!({
            "query": q,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        })
        .to_string()
    };
    let c = gql(&rs, &apq(&"ab".repeat(32)));
    assert_eq!(c.class(), Destructive, "{c:?}");
    assert_eq!(actions(&c), [UNCLASSIFIABLE, "volumes"]);
    assert!(
        c.notes.iter().any(|n| n.contains("stored document")),
        "{:?}",
        c.notes
    );
    let c = gql(&rs, &apq(&sha256_hex(q)));
    assert_eq!(c.class(), Read, "{c:?}");
    assert_eq!(
        c.class(),
        gql(&rs, &apq(&sha256_hex(q).to_uppercase())).class()
    );
    for (k, v) in [
        ("documentId", serde_json::json!("abc")),
        ("id", serde_json::json!("abc")),
        ("doc_id", serde_json::json!(7)),
        ("queryId", serde_json::json!("abc")),
        ("persisted", serde_json::json!(true)),
    ] {
        let body = serde_json::json!({ "query": q, k: v });
        assert_eq!(gql(&rs, &body.to_string()).class(), Destructive, "{k}");
    }
    let body = serde_json::json!({ "query": q, "documentId": format!("sha256:{}", sha256_hex(q)) });
    assert_eq!(gql(&rs, &body.to_string()).class(), Read);
    // In the URL too (Apollo sends hashed queries as GET).
    let c = classify(
        &rs,
        "GET",
        &format!(
            "/graphql?query=%7Bvolumes%7Bid%7D%7D&extensions=%7B%22persistedQuery%22%3A%7B%22sha256Hash%22%3A%22{}%22%7D%7D",
            "ab".repeat(32)
        ),
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive);
    // Ordinary extensions (Apollo Client's `clientLibrary`) are no stored document.
    let body =
        serde_json::json!({ "query": q, "extensions": { "clientLibrary": { "name": "x" } } });
    assert_eq!(gql(&rs, &body.to_string()).class(), Read);
}

#[test]
fn bypass_bodies_airlock_cannot_read_still_count_privileged_fields() {
    let rs = cloud();
    let doc = r#"{"query":"mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } }"}"#;
    let post = |ct: &str, body: &[u8]| {
        classify(&rs, "POST", "/graphql", &[("content-type", ct)], Some(body))
    };
    // A UTF-8 byte order mark, which Express drops: read exactly, as the upstream does.
    let bom = [b"\xEF\xBB\xBF".as_slice(), doc.as_bytes()].concat();
    let c = post("application/json", &bom);
    assert_eq!(actions(&c), ["apiTokenCreate"]);
    assert_eq!(c.class(), Privilege);
    // UTF-16 (Jackson detects it; body-parser decodes a `charset=utf-16le`).
    let utf16: Vec<u8> = doc.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let c = post("application/json; charset=utf-16le", &utf16);
    assert!(c.operations.iter().any(|o| o.action == UNCLASSIFIABLE));
    assert_eq!(c.class(), Privilege);
    // JSON escapes in names, in JSON a lenient parser accepts (trailing comma).
    let c = post(
        "application/json",
        br#"{"query":"mutation { \u0061piTokenCreate { token } }",}"#,
    );
    assert_eq!(c.class(), Privilege);
    // A GraphQL multipart upload (`operations`), and JSON sent as text/plain.
    let multipart = format!(
        "--x\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{doc}\r\n--x--\r\n"
    );
    assert_eq!(
        post("multipart/form-data; boundary=x", multipart.as_bytes()).class(),
        Privilege
    );
    assert_eq!(post("text/plain", doc.as_bytes()).class(), Privilege);
    // A form body, which express-graphql reads like a query string: read exactly.
    let c = post(
        "application/x-www-form-urlencoded",
        b"query=mutation%7B%61piTokenCreate%7Btoken%7D%7D",
    );
    assert_eq!(actions(&c), ["apiTokenCreate"]);
    let c = post(
        "application/x-www-form-urlencoded",
        b"query=mutation+D(%24v%3AID!)%7BvolumeDelete(volumeId%3A%24v)%7Bid%7D%7D&variables=%7B%22v%22%3A%22vol-9%22%7D",
    );
    assert_eq!(c.class(), Destructive);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("vol-9"));
    let c = post(
        "application/x-www-form-urlencoded",
        b"query=%7Bvolumes%7Bid%7D%7D",
    );
    assert_eq!(c.class(), Read);
    // A body that fails does not hide the URL's own request.
    let c = classify(
        &rs,
        "POST",
        "/graphql?query=mutation%7BapiTokenCreate%7Btoken%7D%7D",
        &[("content-type", "text/plain")],
        Some(b"nothing"),
    );
    assert_eq!(c.class(), Privilege);
}

#[test]
fn bypass_semicolon_separated_url_parameters() {
    // Rack before 3.0 splits a query string on `;` as well as `&`: there the second `query`
    // is a parameter of its own, and the last one wins.
    let rs = cloud();
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=%7Bvolumes%7Bid%7D%7D&x=1;query=mutation%7BvolumeDelete(volumeId:%22p%22)%7Bid%7D%7D",
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive, "{c:?}");
    assert!(actions(&c).contains(&"volumeDelete"));
}

#[test]
fn bypass_paths_an_upstream_routes_to_the_endpoint() {
    let rs = cloud();
    let ct = [("content-type", "application/json")];
    let h = headers(&ct);
    let body = json("mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } }");
    // Rails `post "/graphql"` serves `/graphql.json`; Express `app.use("/graphql", ...)`
    // serves `/graphql/anything`.
    for p in ["/graphql.json", "/graphql/x", "/graphql/v2.json"] {
        assert!(rs.needs_body("POST", p, &h), "{p}");
        let c = classify(&rs, "POST", p, &ct, Some(body.as_bytes()));
        assert_eq!(c.class(), Privilege, "{p}: {c:?}");
        assert!(actions(&c).contains(&"apiTokenCreate"), "{p}");
    }
    // A read through such a path stays what the path itself is (no rule: destructive).
    let c = classify(
        &rs,
        "GET",
        "/graphql/x?query=%7Bvolumes%7Bid%7D%7D",
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive);
    assert!(!rs.needs_body("GET", "/health", &h));
}

#[test]
fn bypass_repeated_persisted_query_keeps_the_stored_document() {
    // A repeated key is ambiguous, but an ambiguous stored-document reference still names a
    // stored document that a server may run instead of `query`.
    let rs = cloud();
    let q = "{ volumes { id } }";
    let stored = |h: &str| format!("{{\"version\":1,\"sha256Hash\":\"{h}\"}}");
    let body = |ext: &str| {
        format!(
            "{{\"query\":{},\"extensions\":{ext}}}",
            serde_json::json!(q)
        )
    };
    let good = stored(&sha256_hex(q));
    let bad = stored(&"ab".repeat(32));
    for ext in [
        format!("{{\"persistedQuery\":{bad},\"persistedQuery\":{bad}}}"),
        format!("{{\"persistedQuery\":{good},\"persistedQuery\":{bad}}}"),
        format!("{{\"persistedQuery\":{good},\"PersistedQuery\":{bad}}}"),
        // As a JSON text, the way the URL carries it.
        serde_json::json!(format!(
            "{{\"persistedQuery\":{bad},\"persistedQuery\":{bad}}}"
        ))
        .to_string(),
        serde_json::json!(format!("{{\"persistedQuery\":{bad}}}")).to_string(),
        serde_json::json!("{not json").to_string(),
    ] {
        let c = gql(&rs, &body(&ext));
        assert_eq!(c.class(), Destructive, "{ext}: {c:?}");
        assert!(actions(&c).contains(&UNCLASSIFIABLE), "{ext}");
    }
    // The URL's `extensions`, with the same duplicate-aware reading.
    let ext = format!("{{\"persistedQuery\":{bad},\"persistedQuery\":{bad}}}");
    let enc: String = ext.bytes().map(|b| format!("%{b:02X}")).collect();
    let c = classify(
        &rs,
        "GET",
        &format!("/graphql?query=%7Bvolumes%7Bid%7D%7D&extensions={enc}"),
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive, "{c:?}");
    // A matching hash, once, in either form, stays a read.
    for ext in [
        format!("{{\"persistedQuery\":{good}}}"),
        serde_json::json!(format!("{{\"persistedQuery\":{good}}}")).to_string(),
        "null".to_string(),
        "\"\"".to_string(),
    ] {
        assert_eq!(gql(&rs, &body(&ext)).class(), Read, "{ext}");
    }
}

#[test]
fn bypass_member_names_differing_in_case() {
    // Go's encoding/json matches members without case (Unicode simple folding), keeping the
    // last copy of a string and merging objects.
    let rs = cloud();
    let c = gql(
        &rs,
        r#"{"query":"{ volumes { id } }","QUERY":"mutation { apiTokenCreate(input:{projectId:\"p\"}){token} }"}"#,
    );
    assert_eq!(c.class(), Privilege, "{c:?}");
    let c = gql(
        &rs,
        r#"{"query":"query A { volumes { id } } mutation B { volumeDelete(volumeId: \"v\") { id } }","operationName":"A","OperationName":"B"}"#,
    );
    assert_eq!(c.class(), Destructive, "{c:?}");
    let delete = "mutation($volumeId:ID!){volumeDelete(volumeId:$volumeId){id}}";
    for other in ["Variables", "VARIABLES", "variable\u{17f}", "variables"] {
        let body = format!(
            "{{\"query\":{},\"variables\":{{\"volumeId\":\"vol-stg-1\"}},\"{other}\":{{\"volumeId\":\"vol-prod-1\"}}}}",
            serde_json::json!(delete)
        );
        let c = gql(&rs, &body);
        assert_eq!(c.class(), Destructive, "{other}");
        assert!(
            c.operations.iter().all(|o| o.resource_id.is_none()),
            "{other}: {c:?}"
        );
    }
    // Keys inside `variables` that meet under folding, the Kelvin sign included.
    for (a, b) in [("volumeId", "VOLUMEID"), ("k", "\u{212a}")] {
        let doc = format!("mutation(${a}:ID!){{volumeDelete(volumeId:${a}){{id}}}}");
        let body = format!(
            "{{\"query\":{},\"variables\":{{\"{a}\":\"vol-stg-1\",\"{b}\":\"vol-prod-1\"}}}}",
            serde_json::json!(doc)
        );
        let c = gql(&rs, &body);
        assert_eq!(c.operations[0].resource_id, None, "{a}/{b}: {c:?}");
    }
    // Stored-document keys under another case, and graphql-ruby's `operationId`.
    for k in [
        "DocumentId",
        "per\u{17f}isted",
        "operationId",
        "OPERATIONID",
    ] {
        let body = serde_json::json!({ "query": "{ volumes { id } }", k: "abc" });
        assert_eq!(gql(&rs, &body.to_string()).class(), Destructive, "{k}");
    }
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=%7Bvolumes%7Bid%7D%7D&operationId=abc",
        &[],
        None,
    );
    assert_eq!(c.class(), Destructive);
    // One spelling, with the usual members, is one reading with its resource.
    let body = serde_json::json!({ "query": delete, "variables": { "volumeId": "vol-stg-1" } });
    let c = gql(&rs, &body.to_string());
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("vol-stg-1"));
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn bypass_refused_path_under_the_endpoint_counts_privilege_fields() {
    let rs = cloud();
    let ct = [("content-type", "application/json")];
    let body = json("mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } }");
    for p in ["/graphql/a%2fb", "/graphql/v2/a%2fb", "/graphql%2fx"] {
        assert!(rs.needs_body("POST", p, &headers(&ct)), "{p}");
        let c = classify(&rs, "POST", p, &ct, Some(body.as_bytes()));
        assert_eq!(c.class(), Privilege, "{p}: {c:?}");
        // Several readings reach the endpoint; its body is counted once.
        assert_eq!(actions(&c), [UNCLASSIFIABLE, "apiTokenCreate"], "{p}");
    }
}

#[test]
fn bypass_unmatched_below_destructive_keeps_what_the_endpoint_cannot_classify() {
    let text = include_str!("../../../rules/cloud-graphql.toml")
        .replace("unmatched = \"destructive\"", "unmatched = \"read\"");
    let rs = RuleSet::from_toml(&text, Path::new("t.toml")).unwrap();
    let post = |p: &str, ct: &str, body: &[u8]| {
        classify(&rs, "POST", p, &[("content-type", ct)], Some(body))
    };
    let q = "{ volumes { id } }";
    let stored = serde_json::json!({ "query": q, "documentId": "abc" }).to_string();
    let big = json(&format!("{q} # {}", "x".repeat(2 << 20)));
    for (ct, body) in [
        ("application/json", stored.as_bytes()),
        (
            "application/json",
            b"{\"query\": \"mutation {\"}".as_slice(),
        ),
        ("application/json", big.as_bytes()),
        ("multipart/form-data; boundary=x", b"--x--\r\n".as_slice()),
    ] {
        let c = post("/graphql/x", ct, body);
        assert_eq!(c.class(), Destructive, "{ct}: {c:?}");
        assert!(actions(&c).contains(&UNCLASSIFIABLE), "{ct}");
    }
    // An ordinary query there is still a read.
    assert_eq!(
        post("/graphql/x", "application/json", json(q).as_bytes()).class(),
        Read
    );
}

#[test]
fn bypass_compressed_body_counts_every_privilege_field() {
    // Airlock does not decode bodies; the upstream does, and could run anything in it.
    let rs = cloud();
    let body = b"\x1f\x8b\x08\x00not really gzip";
    for enc in ["gzip", "br", "identity, gzip", "GZIP"] {
        let c = classify(
            &rs,
            "POST",
            "/graphql",
            &[
                ("content-type", "application/json"),
                ("content-encoding", enc),
            ],
            Some(body),
        );
        assert_eq!(c.class(), Privilege, "{enc}: {c:?}");
        let a = actions(&c);
        assert_eq!(a[0], UNCLASSIFIABLE);
        for f in ["apiTokenCreate", "apiTokenDelete", "projectMemberAdd"] {
            assert!(a.contains(&f), "{enc}: {f}");
        }
        assert!(
            c.notes.iter().any(|n| n.contains("send it uncompressed")),
            "{:?}",
            c.notes
        );
    }
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ],
        Some(json("{ volumes { id } }").as_bytes()),
    );
    assert_eq!(c.class(), Read);
}

#[test]
fn endpoint_paths_are_classified_once() {
    // `/graphql/v2` is an endpoint and also under `/graphql`; `/graphql/v2.json` reaches both.
    let rs = cloud();
    let ct = [("content-type", "application/json")];
    let body = json("mutation { apiTokenCreate(input: {projectId: \"p\"}) { token } }");
    let c = classify(&rs, "POST", "/graphql/v2", &ct, Some(body.as_bytes()));
    assert_eq!(actions(&c), ["apiTokenCreate"]);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    let c = classify(&rs, "POST", "/graphql/v2.json", &ct, Some(body.as_bytes()));
    assert_eq!(actions(&c), ["unclassified", "apiTokenCreate"], "{c:?}");
}

#[test]
fn semicolon_parameters_in_a_large_body_stay_cheap() {
    // Splitting on `;` once more must not compare each value with every earlier one.
    let rs = cloud();
    let mut body = String::new();
    let mut i = 0;
    while body.len() < (1 << 20) - 32 {
        body.push_str(&format!("id={i};"));
        i += 1;
    }
    let c = classify(
        &rs,
        "POST",
        &format!("/graphql?{}", &body[..64 << 10]),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(format!("query=%7Bvolumes%7Bid%7D%7D;{body}").as_bytes()),
    );
    assert_eq!(c.class(), Destructive);
    // Nor each stored-document reference with each `query`.
    let pair = format!(
        "query=%7Bvolumes%7Bid%7D%7D&documentId={}&",
        sha256_hex("{volumes{id}}")
    );
    let body = pair.repeat((1 << 20) / pair.len());
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    assert_eq!(c.class(), Destructive);
}

#[test]
fn ordinary_graphql_requests_stay_reads() {
    let rs = cloud();
    let q = "query Q($id: ID!) { volume(id: $id) { id } }";
    let plain =
        serde_json::json!({ "query": q, "variables": { "id": "v1" }, "operationName": "Q" });
    let apq = serde_json::json!({
        "query": q, "variables": { "id": "v1" }, "operationName": "Q",
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(q) } },
    });
    let first = serde_json::json!({ "query": "query($first: Int) { volumes(first: $first) { id } }", "variables": { "first": 10 } });
    for body in [plain, apq, first] {
        let c = gql(&rs, &body.to_string());
        assert_eq!(c.class(), Read, "{body}");
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }
    let c = classify(
        &rs,
        "GET",
        "/graphql?query=query%20Q(%24id%3AID!)%7Bvolume(id%3A%24id)%7Bid%7D%7D&variables=%7B%22id%22%3A%22v1%22%7D",
        &[],
        None,
    );
    assert_eq!(c.class(), Read);
    assert_eq!(c.operations[0].resource_id.as_deref(), Some("v1"));
}

#[test]
fn a_hash_alone_is_a_persisted_query_miss_the_client_can_answer() {
    // Apollo's automatic persisted queries: the first request carries only the hash; a server
    // without the document says so, and the client resends it with `query`.
    let rs = cloud();
    let hash = "ab".repeat(32);
    let only = serde_json::json!({
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        "variables": { "id": "vol-prod-1" },
    });
    let c = gql(&rs, &only.to_string());
    assert!(c.persisted_query_miss, "{c:?}");
    assert_eq!(
        c.class(),
        Destructive,
        "still refused if anyone forwards it"
    );
    let get = classify(
        &rs,
        "GET",
        &format!("/graphql?extensions=%7B%22persistedQuery%22%3A%7B%22version%22%3A1%2C%22sha256Hash%22%3A%22{hash}%22%7D%7D"),
        &[],
        None,
    );
    assert!(get.persisted_query_miss, "{get:?}");

    // Not a miss: a query sent along (classified as usual), Relay's stored ids (never sent as
    // text), a hash beside something else Airlock cannot read, or beside a readable request.
    let q = "{ volumes { id } }";
    let with_query = serde_json::json!({
        "query": q,
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(q) } },
    });
    let relay = serde_json::json!({ "id": "abc" });
    let batch = serde_json::json!([only, { "query": q }]);
    for body in [with_query, relay, batch] {
        let c = gql(&rs, &body.to_string());
        assert!(!c.persisted_query_miss, "{body}: {c:?}");
    }
    let compressed = classify(
        &rs,
        "POST",
        "/graphql",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        Some(only.to_string().as_bytes()),
    );
    assert!(!compressed.persisted_query_miss, "{compressed:?}");
}

#[test]
fn bypass_a_form_typed_body_that_is_json() {
    // async-graphql parses every body but multipart as JSON, whatever its Content-Type.
    let rs = cloud();
    let body = r#"{"a":"&query=query{volumes{id}}&","query":"mutation{volumeDelete(volumeId:\"vol-prod-1\")}"}"#;
    let c = classify(
        &rs,
        "POST",
        "/graphql",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    assert!(actions(&c).contains(&"volumeDelete"), "{c:?}");
    assert_eq!(c.class(), Destructive);
}
