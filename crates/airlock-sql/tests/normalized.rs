//! The normalised cache: texts differing only in literals share an entry, and sharing never
//! answers less dangerously than classifying the text itself would.
//!
//! Properties: the normaliser agrees with PostgreSQL's own lexer (every replaced region is one
//! literal token, everything else lexes the same); the classifier is monotone in constants (a
//! classifiable normal form is at least as dangerous as every text of that form); and a cache
//! answers a stream of texts like direct classification, or more dangerously, never less.

use airlock_core::OpClass;
use airlock_sql::{classify, normalize, Classifier, SqlClassification, SqlConfig, UNCLASSIFIABLE};
use pg_query::protobuf::Token;
use proptest::prelude::*;

/// Statements with literal holes `{}`, covering every place the walker reads a constant's value
/// and the places where a parameter is not allowed at all.
const TEMPLATES: &[&str] = &[
    "DELETE FROM t WHERE {} = {}",
    "DELETE FROM t WHERE x = {}",
    "DELETE FROM t WHERE name LIKE {}",
    "DELETE FROM t WHERE name ILIKE {} OR id = {}",
    "DELETE FROM t WHERE x = x AND y = {}",
    "DELETE FROM t WHERE x = x OR y = {}",
    "UPDATE t SET a = {} WHERE id = {} OR {} = {}",
    "UPDATE t SET a = a + -{} WHERE name NOT LIKE {}",
    "UPDATE t SET a = {} WHERE name LIKE {} AND b > {}",
    "DELETE FROM t WHERE name ~~ {}",
    "DELETE FROM t WHERE name LIKE {}::text",
    "DELETE FROM t WHERE name SIMILAR TO {}",
    "DELETE FROM t WHERE name LIKE {} ESCAPE {}",
    "DELETE FROM t WHERE id IN ({}, {}, {})",
    "SELECT lower({}), abs({}), now() - {}::interval FROM t WHERE id = {}",
    "SELECT pg_sleep({})",
    "SELECT set_config({}, {}, false)",
    "SELECT {}::int + {}, {}",
    "SELECT * FROM t WHERE a = {} FOR UPDATE",
    "SELECT * FROM t ORDER BY a LIMIT {} OFFSET {}",
    "SELECT * FROM t WHERE d > now() - INTERVAL {}",
    "INSERT INTO t (a, b) SELECT {}, b FROM u WHERE c = {}",
    "INSERT INTO t VALUES ({}, {}, -{})",
    "EXPLAIN (ANALYZE {}) DELETE FROM t WHERE id = {}",
    "EXPLAIN (ANALYZE) DELETE FROM t WHERE name LIKE {}",
    "EXPLAIN DELETE FROM t WHERE name LIKE {}",
    "SET statement_timeout = {}",
    "SET search_path TO {}",
    "ALTER ROLE bob SET work_mem = {}",
    "CREATE ROLE bob CONNECTION LIMIT {}",
    "COPY t TO {}",
    "COPY (SELECT * FROM t WHERE id = {}) TO STDOUT",
    "WITH d AS (DELETE FROM t WHERE id = {} RETURNING *) SELECT * FROM d",
    "MERGE INTO t USING s ON t.id = {} WHEN MATCHED THEN DELETE",
    "MERGE INTO t USING s ON {} = {} WHEN MATCHED THEN UPDATE SET a = {}",
    "PREPARE p AS DELETE FROM t WHERE name LIKE {}",
    "EXECUTE p({}, {})",
    "SELECT * FROM t WHERE id = {}; DELETE FROM t WHERE x = {}",
    "SELECT 1 FROM t WHERE a = {} AND b LIKE {}",
    "NOTIFY ch, {}",
    "DO {}",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
    // Complements compare constants as equal whatever their values; ALL over a constant array
    // may be vacuous; a LIKE pattern restricts only as a literal.
    "DELETE FROM t WHERE (a = {}) OR NOT (a = {})",
    "DELETE FROM t WHERE a < {} OR a >= -{}",
    "DELETE FROM t WHERE a IS DISTINCT FROM {} OR a IS NOT DISTINCT FROM {}",
    "DELETE FROM t WHERE id <> ALL({}) AND b = {}",
    "DELETE FROM t WHERE NOT (id = ANY({}::int[]))",
    "DELETE FROM t WHERE name LIKE {} || {}",
    "DELETE FROM t WHERE NOT EXISTS (SELECT 1 WHERE {} = {} AND t.id = {})",
    "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE AND t.a = {} THEN DELETE",
    // Complements in another order or cast; a subquery's LIMIT under NOT EXISTS / NOT IN; a
    // strict function's literal argument; a subquery of the target alone.
    "DELETE FROM t WHERE a = {} OR {} <> a",
    "DELETE FROM t WHERE a < {} OR {}::int <= a",
    "DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id LIMIT {})",
    "DELETE FROM t WHERE id NOT IN (SELECT u.tid FROM u WHERE u.a = {} LIMIT {})",
    "DELETE FROM t WHERE lower({}) IS NULL AND date_trunc({}, d) IS NULL",
    "UPDATE t SET s = {} WHERE id = (SELECT id FROM t WHERE s = {} LIMIT {} FOR UPDATE SKIP LOCKED)",
];

/// A literal as a client would inline it, of the lexer's kind `kind`: 0 an integer, 1 another
/// number (decimal, exponent, or an integer too large for int4), 2 a string (with `%`, doubled
/// quotes, double quotes and non-ASCII).
fn literal_of(kind: u8) -> BoxedStrategy<String> {
    match kind {
        0 => prop_oneof![
            (0u64..100_000).prop_map(|n| n.to_string()),
            Just("2147483647".to_string()),
        ]
        .boxed(),
        1 => prop_oneof![
            Just("99999999999999999999".to_string()),
            (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
            (0u32..100).prop_map(|a| format!(".{a}")),
            (1u32..9, 0u32..40).prop_map(|(a, e)| format!("{a}e{e}")),
        ]
        .boxed(),
        _ => {
            let chars = proptest::sample::select(vec![
                "%", "%", "a", "_", "x", " ", "''", "é", "\"", ";", "0", "-", "off", "on", "1 day",
                "/tmp/x",
            ]);
            prop_oneof![
                Just("'%'".to_string()),
                Just("'%%'".to_string()),
                proptest::collection::vec(chars, 0..6).prop_map(|v| format!("'{}'", v.concat())),
            ]
            .boxed()
        }
    }
}

/// Literals of the given kinds.
fn literals(kinds: Vec<u8>) -> impl Strategy<Value = Vec<String>> {
    kinds.into_iter().map(literal_of).collect::<Vec<_>>()
}

/// A template with the kinds of its literals.
fn shape() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    (
        proptest::sample::select(TEMPLATES),
        proptest::collection::vec(0u8..3, 4),
    )
}

/// A template filled with literals.
fn instance() -> impl Strategy<Value = String> {
    shape().prop_flat_map(|(t, kinds)| literals(kinds).prop_map(move |lits| fill(t, &lits)))
}

fn fill(template: &str, lits: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in template.split("{}").enumerate() {
        if i > 0 {
            out.push_str(lits.get(i - 1).map_or("0", String::as_str));
        }
        out.push_str(part);
    }
    out
}

fn classifiable(c: &SqlClassification) -> bool {
    c.statements.iter().all(|s| s.tag != UNCLASSIFIABLE)
}

/// The door's configuration (no fingerprints); monotonicity does not depend on it.
fn cfg() -> SqlConfig {
    SqlConfig {
        fingerprints: false,
        ..SqlConfig::default()
    }
}

/// Token kinds from PostgreSQL's lexer, with literal tokens mapped to the parameter kind.
fn token_shape(sql: &str) -> Option<Vec<i32>> {
    let scanned = pg_query::scan(sql).ok()?;
    Some(
        scanned
            .tokens
            .iter()
            .map(|t| {
                let literal = [Token::Sconst, Token::Iconst, Token::Fconst]
                    .iter()
                    .any(|k| *k as i32 == t.token);
                if literal {
                    Token::Param as i32
                } else {
                    t.token
                }
            })
            .collect(),
    )
}

/// SQL-ish noise that stresses the lexer's corners.
fn sqlish() -> impl Strategy<Value = String> {
    let pieces = proptest::sample::select(vec![
        "SELECT", "t", "(", ")", ";", ",", "'", "''", "\"", "\"\"", "1", "0", "5", ".", "..", "e",
        "E", "+", "-", "_", "x", "=", " ", "\n", "é", "::", "[", "]", "&", "U&", "%", "*", "<",
        ">", "@", "'a'", "1.5", "1e5", "1e", ".5", "b", "true", "$", "\\", "--", "/*",
    ]);
    proptest::collection::vec(pieces, 0..30).prop_map(|v| v.concat())
}

/// Outside double-quoted identifiers, a normal form holds no single quote: every string
/// literal was replaced, so none of a text's string contents survives normalisation.
fn no_string_left(n: &str) -> bool {
    let mut in_ident = false;
    for c in n.chars() {
        match c {
            '"' => in_ident = !in_ident,
            '\'' if !in_ident => return false,
            _ => {}
        }
    }
    true
}

/// Found by `cache_never_answers_less_dangerously`: a text whose form classifies with the same
/// class but other notes must not answer for that form, or a later text of the form would get
/// the first text's notes ("no restricting condition" missing for `LIKE '%'`).
#[test]
fn a_form_answers_only_for_texts_it_classifies_exactly_like() {
    let cfg = cfg();
    let cache = Classifier::new(cfg.clone(), 1000);
    for sql in [
        "EXPLAIN DELETE FROM t WHERE name LIKE ''",
        "EXPLAIN DELETE FROM t WHERE name LIKE '%'",
        "EXPLAIN DELETE FROM t WHERE name LIKE '%'",
    ] {
        assert_eq!(*cache.classify(sql), classify(sql, &cfg), "{sql}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn normalize_never_panics(s in any::<String>()) {
        if let Some(n) = normalize(&s) {
            prop_assert!(no_string_left(&n));
            // A normal form holds parameters, so it is never normalised again.
            prop_assert_eq!(normalize(&n), None);
        }
    }

    #[test]
    fn normalize_agrees_with_the_postgres_lexer(s in sqlish()) {
        if let Some(n) = normalize(&s) {
            prop_assert!(no_string_left(&n));
            let (r, f) = (token_shape(&s), token_shape(&n));
            prop_assert!(r.is_some(), "the lexer rejects {:?}, normalised to {:?}", s, n);
            prop_assert_eq!(r, f, "{:?} -> {:?}", s, n);
        }
    }

    #[test]
    fn templates_lex_like_their_normal_form(r in instance()) {
        if let Some(n) = normalize(&r) {
            prop_assert!(no_string_left(&n));
            prop_assert_eq!(token_shape(&r), token_shape(&n), "{:?} -> {:?}", r, n);
        }
    }

    /// Monotone in constants: a classifiable normal form is at least as dangerous as every
    /// classifiable text of that form. (An unclassifiable form is never shared, and a text that
    /// does not parse is answered from a form only if a text with literals of the same kinds
    /// parsed: see the next property.)
    #[test]
    fn classification_is_monotone_in_constants(r in instance()) {
        let cfg = cfg();
        if let Some(n) = normalize(&r) {
            let (cr, cn) = (classify(&r, &cfg), classify(&n, &cfg));
            if classifiable(&cn) && classifiable(&cr) {
                prop_assert!(cn.class() >= cr.class(), "{:?}: {:?} < {:?} of {:?}", n, cn.class(), cr.class(), r);
                for (sn, sr) in cn.statements.iter().zip(&cr.statements) {
                    prop_assert!(sn.class >= sr.class, "{:?} vs {:?}", n, r);
                }
            }
        }
    }

    /// Whether a text parses depends on the kinds of its literals, not their values (where a
    /// parameter is allowed at all): the cache keys forms by kinds, so it never answers for a
    /// text that does not parse from one that did.
    #[test]
    fn parsing_depends_on_literal_kinds_only(
        (t, a, b) in shape().prop_flat_map(|(t, kinds)| {
            (Just(t), literals(kinds.clone()), literals(kinds))
        })
    ) {
        let cfg = cfg();
        let (ra, rb) = (fill(t, &a), fill(t, &b));
        let Some(n) = normalize(&ra) else { return Ok(()) };
        if classifiable(&classify(&n, &cfg)) {
            prop_assert_eq!(
                classifiable(&classify(&ra, &cfg)),
                classifiable(&classify(&rb, &cfg)),
                "{:?} vs {:?}", ra, rb
            );
        }
    }

    /// A stream through one cache: every answer is at least as dangerous as classifying the
    /// text directly, and exactly that when the same text went through before.
    #[test]
    fn cache_never_answers_less_dangerously(
        stream in proptest::collection::vec(instance(), 1..40),
        capacity in prop_oneof![Just(2usize), Just(1000)],
    ) {
        let cfg = cfg();
        let cache = Classifier::new(cfg.clone(), capacity);
        let mut seen = std::collections::HashSet::new();
        for r in &stream {
            let cached = cache.classify(r);
            let direct = classify(r, &cfg);
            prop_assert!(cached.class() >= direct.class(), "{:?}: cached {:?} < {:?}", r, cached.class(), direct.class());
            for (c, d) in cached.statements.iter().zip(&direct.statements) {
                prop_assert!(c.class >= d.class, "{:?}", r);
            }
            if capacity == 1000 && !seen.insert(r.clone()) {
                prop_assert_eq!(&*cached, &direct, "{:?}", r);
            }
        }
        let s = cache.stats();
        prop_assert_eq!(s.hits + s.misses, stream.len() as u64);
        prop_assert!(s.normalized_hits <= s.hits);
        prop_assert!(s.len <= capacity && s.normalized_len <= capacity);
    }
}

#[test]
fn like_abc_then_like_percent_is_write_then_destructive() {
    let cache = Classifier::new(cfg(), 100);
    let abc = cache.classify("DELETE FROM t WHERE name LIKE 'abc'");
    assert_eq!(abc.class(), OpClass::Write);
    let all = cache.classify("DELETE FROM t WHERE name LIKE '%'");
    assert_eq!(all.class(), OpClass::Destructive);
    // And the other way round: the shared form is not stored, so 'abc' stays write.
    assert_eq!(
        cache
            .classify("DELETE FROM t WHERE name LIKE 'abd'")
            .class(),
        OpClass::Write
    );
    assert_eq!(cache.stats().normalized_hits, 0);
}

#[test]
fn pgbench_texts_share_one_entry() {
    let cache = Classifier::new(cfg(), 100);
    for aid in 1..=50 {
        let c = cache.classify(&format!(
            "SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"
        ));
        assert_eq!(c.class(), OpClass::Read);
    }
    for (aid, delta) in [(7, -4012), (8, 17), (9, -1)] {
        let c = cache.classify(&format!(
            "UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};"
        ));
        assert_eq!(c.class(), OpClass::Write);
    }
    let s = cache.stats();
    assert_eq!(s.misses, 3, "{s:?}"); // one SELECT, one UPDATE with -delta, one with delta
    assert_eq!(s.normalized_hits, 50);
    assert_eq!(s.hits, 50);
}

#[test]
fn exact_only_does_not_share() {
    let cache = Classifier::new(cfg(), 100).exact_only();
    cache.classify("SELECT 1");
    cache.classify("SELECT 2");
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.normalized_len), (0, 2, 0));
}

/// Where a parameter is a syntax error the normal form is unclassifiable and never shared:
/// every text is classified on its own (and the form is remembered as unshareable).
#[test]
fn forms_that_do_not_parse_are_not_shared() {
    use OpClass::{Destructive as D, Privilege as P, Read as R};
    for (a, b, class) in [
        (
            "EXPLAIN (ANALYZE 'off') DELETE FROM t",
            "EXPLAIN (ANALYZE 'on') DELETE FROM t",
            [R, D],
        ),
        (
            "EXPLAIN (ANALYZE 0) DELETE FROM t",
            "EXPLAIN (ANALYZE 1) DELETE FROM t",
            [R, D],
        ),
        ("COPY t TO '/tmp/a'", "COPY t TO '/tmp/b'", [D, D]),
        (
            "CREATE ROLE b CONNECTION LIMIT 99999999999",
            "CREATE ROLE b CONNECTION LIMIT 5",
            [D, P],
        ),
        (
            "SELECT now() - INTERVAL '1 day'",
            "SELECT now() - INTERVAL 0",
            [R, D],
        ),
    ] {
        let cache = Classifier::new(cfg(), 100);
        assert_eq!(cache.classify(a).class(), class[0], "{a}");
        assert_eq!(cache.classify(b).class(), class[1], "{b}");
        assert_eq!(cache.stats().normalized_hits, 0, "{a} / {b}");
    }
}

#[test]
fn a_classifiable_form_is_shared_only_with_literals_of_the_same_kinds() {
    let cache = Classifier::new(cfg(), 100);
    let a = cache.classify("SELECT pg_sleep(1)");
    let b = cache.classify("SELECT pg_sleep(2)");
    assert_eq!(a.class(), OpClass::Destructive);
    assert_eq!(a, b);
    assert_eq!(cache.stats().normalized_hits, 1);
    cache.classify("SELECT pg_sleep(1.5)");
    cache.classify("SELECT pg_sleep('1')");
    assert_eq!(cache.stats().normalized_hits, 1);
    // A parameter parses where a literal need not: still privilege, and shared.
    assert_eq!(
        cache.classify("SET statement_timeout = 5").class(),
        OpClass::Privilege
    );
    assert_eq!(
        cache.classify("SET statement_timeout = 6").class(),
        OpClass::Privilege
    );
    assert_eq!(cache.stats().normalized_hits, 2);
}
