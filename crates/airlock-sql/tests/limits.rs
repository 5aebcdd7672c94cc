//! Hostile inputs: deep nesting, huge text, NUL bytes. All must come back destructive, never
//! crash the process.

use airlock_core::OpClass;
use airlock_sql::{classify, classify_execute, SqlConfig};

fn class(sql: &str) -> OpClass {
    classify(sql, &SqlConfig::default()).class()
}

#[test]
fn hundred_thousand_parentheses_are_destructive_not_a_crash() {
    let sql = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(class(&sql), OpClass::Destructive);
}

#[test]
fn deeply_nested_subqueries_are_destructive() {
    let mut sql = "SELECT 1".to_string();
    for _ in 0..5_000 {
        sql = format!("SELECT * FROM ({sql}) s");
    }
    assert_eq!(class(&sql), OpClass::Destructive);
}

#[test]
fn long_operator_chains_are_destructive_or_read_never_a_crash() {
    let sql = format!("SELECT {}", vec!["1"; 50_000].join(" + "));
    assert_eq!(class(&sql), OpClass::Destructive);
}

#[test]
fn moderately_nested_queries_still_classify() {
    let mut sql = "SELECT id FROM t WHERE id = 1".to_string();
    for _ in 0..5 {
        sql = format!("SELECT * FROM ({sql}) s");
    }
    assert_eq!(class(&sql), OpClass::Read);
    let expr = format!("SELECT {} FROM t", vec!["a"; 20].join(" + "));
    assert_eq!(class(&expr), OpClass::Read);
}

#[test]
fn text_over_the_size_limit_is_destructive() {
    let cfg = SqlConfig {
        max_bytes: 100,
        ..SqlConfig::default()
    };
    let sql = format!("SELECT 1 -- {}", "x".repeat(200));
    let c = classify(&sql, &cfg);
    assert_eq!(c.class(), OpClass::Destructive);
    assert!(c.statements[0].notes[0].contains("limit"), "{c:?}");
}

#[test]
fn walk_depth_limit_is_destructive() {
    let cfg = SqlConfig {
        max_depth: 5,
        ..SqlConfig::default()
    };
    assert_eq!(
        classify("SELECT a FROM t WHERE b = (SELECT 1)", &cfg).class(),
        OpClass::Destructive
    );
}

#[test]
fn nul_byte_is_destructive() {
    assert_eq!(class("SELECT 1\0"), OpClass::Destructive);
}

#[test]
fn execute_of_an_unknown_prepared_statement_is_destructive_with_a_note() {
    let s = classify_execute("p1");
    assert_eq!(s.class, OpClass::Destructive);
    assert_eq!(s.executes.as_deref(), Some("p1"));
    assert!(s.notes[0].contains("p1"));
    let c = classify("EXECUTE p1(1)", &SqlConfig::default());
    assert_eq!(c.statements[0].executes.as_deref(), Some("p1"));
}

#[test]
fn prepare_reports_name_and_class() {
    let c = classify(
        "PREPARE wipe AS DELETE FROM bookings",
        &SqlConfig::default(),
    );
    assert_eq!(
        c.statements[0].prepared,
        Some(("wipe".to_string(), OpClass::Destructive))
    );
    let c = classify(
        "PREPARE q AS SELECT * FROM t WHERE id = $1",
        &SqlConfig::default(),
    );
    assert_eq!(
        c.statements[0].prepared,
        Some(("q".to_string(), OpClass::Read))
    );
}

#[test]
fn configured_safe_operators_are_read() {
    // A vector search: pgvector's operators are an extension's code, so unknown by default.
    let search = "SELECT id FROM items ORDER BY embedding <=> $1 LIMIT 5";
    assert_eq!(class(search), OpClass::Destructive);
    let cfg: SqlConfig =
        toml::from_str("safe_operators = [\"<=>\", \"<#>\", \"app.===\"]").unwrap_or_default();
    assert_eq!(cfg.safe_operators.len(), 3);
    assert_eq!(classify(search, &cfg).class(), OpClass::Read);
    assert_eq!(
        classify(
            "SELECT a FROM t WHERE a OPERATOR(app.===) 1 AND b <#> $1 < 0.5",
            &cfg
        )
        .class(),
        OpClass::Read
    );
    // Only what is named: another operator, or the same symbol in another schema, is not.
    assert_eq!(
        classify("SELECT id FROM items ORDER BY embedding <~> $1", &cfg).class(),
        OpClass::Destructive
    );
    assert_eq!(
        classify("SELECT a FROM t WHERE a OPERATOR(evil.<=>) 1", &cfg).class(),
        OpClass::Destructive
    );
}

#[test]
fn configured_safe_functions_are_read() {
    let cfg: SqlConfig =
        toml::from_str("safe_functions = [\"my_fn\", \"app.slugify\"]").unwrap_or_default();
    assert_eq!(cfg.safe_functions.len(), 2);
    assert_eq!(
        classify("SELECT my_fn(1), app.slugify('x')", &cfg).class(),
        OpClass::Read
    );
    assert_eq!(class("SELECT my_fn(1)"), OpClass::Destructive);
    assert!(toml::from_str::<SqlConfig>("unknown_key = 1").is_err());
}

#[test]
fn tables_are_reported_with_the_statement_tag() {
    let c = classify(
        "DELETE FROM public.bookings b USING customers c WHERE b.cid = c.id; DROP TABLE x, s.y",
        &SqlConfig::default(),
    );
    let ops: Vec<(String, String, Option<String>, OpClass)> = c
        .operations()
        .map(|o| {
            (
                o.action.clone(),
                o.resource_kind.clone(),
                o.resource_id.clone(),
                o.class,
            )
        })
        .collect();
    let want =
        |a: &str, k: &str, id: &str, cl| (a.to_string(), k.to_string(), Some(id.to_string()), cl);
    assert!(
        ops.contains(&want("DELETE", "table", "public.bookings", OpClass::Write)),
        "{ops:?}"
    );
    assert!(
        ops.contains(&want("DELETE", "table", "customers", OpClass::Write)),
        "{ops:?}"
    );
    assert!(
        ops.contains(&want("DROP TABLE", "table", "x", OpClass::Destructive)),
        "{ops:?}"
    );
    assert!(
        ops.contains(&want("DROP TABLE", "table", "s.y", OpClass::Destructive)),
        "{ops:?}"
    );
    assert_eq!(c.statements[1].tag, "DROP TABLE");
    assert!(!c.statements[0].fingerprint.is_empty());
}

#[test]
fn fingerprint_ignores_constants() {
    let a = classify("SELECT * FROM t WHERE id = 1", &SqlConfig::default());
    let b = classify("select * from t where id = 2", &SqlConfig::default());
    assert_eq!(a.statements[0].fingerprint, b.statements[0].fingerprint);
}

#[test]
fn resource_names_are_the_identifiers_postgresql_resolves() {
    let c = classify(
        r#"DROP TABLE U&"b\006Fokings"; SELECT * FROM "Public"."Bookings"; select * from PUBLIC.BOOKINGS"#,
        &SqlConfig::default(),
    );
    let ids: Vec<Option<&str>> = c.operations().map(|o| o.resource_id.as_deref()).collect();
    assert_eq!(
        ids,
        vec![
            Some("bookings"),
            Some("Public.Bookings"),
            Some("public.bookings")
        ]
    );
}

#[test]
fn turning_fingerprints_off_changes_nothing_but_the_fingerprint() {
    let off = SqlConfig {
        fingerprints: false,
        ..SqlConfig::default()
    };
    for sql in [
        "SELECT * FROM bookings WHERE id = 1",
        "WITH gone AS (DELETE FROM bookings RETURNING *) SELECT * FROM gone",
        "SELECT 1; DROP TABLE bookings",
        "not sql at all",
    ] {
        let with = classify(sql, &SqlConfig::default());
        let without = classify(sql, &off);
        assert_eq!(with.statements.len(), without.statements.len(), "{sql}");
        for (a, b) in with.statements.iter().zip(&without.statements) {
            assert_eq!(a.class, b.class, "{sql}");
            assert_eq!(a.operations, b.operations, "{sql}");
            assert!(b.fingerprint.is_empty(), "{sql}");
        }
    }
}

/// Every `EXISTS` is checked against the target; the statement's CTE names are shared with
/// that check, not copied once per `EXISTS` (36 000 CTEs and 4 900 EXISTS took 8 s).
#[test]
fn many_exists_under_many_ctes_classify() {
    let ctes: Vec<String> = (0..10_000).map(|i| format!("c{i} AS (SELECT 1)")).collect();
    let exists = vec!["(EXISTS (SELECT FROM u WHERE u.a = 0))"; 2_000].join(" AND ");
    let sql = format!("WITH {} DELETE FROM t WHERE {exists}", ctes.join(", "));
    // Nested DML aside, no EXISTS refers to the target: nothing restricts it.
    assert_eq!(class(&sql), OpClass::Destructive);
    let sql = format!(
        "WITH {} DELETE FROM t WHERE {exists} AND EXISTS (SELECT 1 FROM u WHERE u.id = t.uid)",
        ctes.join(", ")
    );
    assert_eq!(class(&sql), OpClass::Write);
}

/// Looking for complements in nested AND/OR copies nothing but the one node a negation
/// changes (each level copied its whole subtree: 4.9 s for 44 levels).
#[test]
fn nested_or_levels_with_large_operands_classify() {
    let f = format!("greatest({})", vec!["1"; 3_000].join(","));
    let mut e = "a = 1".to_string();
    for _ in 0..20 {
        e = format!("({f} IS NULL AND (a = {f} OR {e}))");
    }
    // `greatest(...) IS NULL` does not depend on the target, but `a = greatest(...)` does.
    assert_eq!(class(&format!("DELETE FROM t WHERE {e}")), OpClass::Write);
    // With the complement of the innermost operand added, the innermost OR holds for every row,
    // and so does every OR around it.
    let mut e = "a = 1 OR a <> 1".to_string();
    for _ in 0..20 {
        e = format!("({f} IS NULL AND (a = {f} OR {e}))");
    }
    assert_eq!(
        class(&format!("DELETE FROM t WHERE {e}")),
        OpClass::Destructive
    );
}
