//! Properties: no panic on any input, a multi-statement string is as dangerous as its most
//! dangerous statement, and the cache answers like the function.

use airlock_sql::{classify, Classifier, SqlConfig};
use proptest::prelude::*;

/// Statements of every class, with and without trailing semicolons and comments.
const POOL: &[&str] = &[
    "SELECT 1",
    "select * from bookings where id = 1",
    "SELECT count(*) FROM t JOIN u ON u.id = t.uid",
    "SHOW search_path",
    "BEGIN",
    "COMMIT",
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1 WHERE id = 2",
    "DELETE FROM t WHERE id = 3",
    "CREATE TABLE x (id int)",
    "DELETE FROM t",
    "DELETE FROM t WHERE 1=1",
    "DROP TABLE bookings",
    "TRUNCATE t",
    "SELECT pg_terminate_backend(1)",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "COPY t TO PROGRAM 'x'",
    "SET ROLE postgres",
    "GRANT ALL ON t TO bob",
    "RESET ALL",
    "SELECT set_config('a', 'b', false)",
    "/* c */ SELECT 2",
];

fn pool() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(POOL)
}

/// SQL-ish noise: keywords, punctuation, quotes, comments and dollar quotes glued together.
fn sqlish() -> impl Strategy<Value = String> {
    let pieces = proptest::sample::select(vec![
        "SELECT", "DROP", "TABLE", "t", "(", ")", ";", ",", "'", "\"", "$$", "--", "/*", "*/",
        "WITH", "AS", "DELETE", "FROM", "WHERE", "1", "=", "OR", "true", "E'\\x'", "U&\"a\"", " ",
        "\n", "\0", "é", "::", "[", "]", "$1", "PREPARE", "EXECUTE", "DO", "COPY",
    ]);
    proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        let c = classify(&s, &SqlConfig::default());
        prop_assert!(!c.statements.is_empty());
    }

    #[test]
    fn never_panics_on_sqlish_text(s in sqlish()) {
        let c = classify(&s, &SqlConfig::default());
        prop_assert!(!c.statements.is_empty());
        for st in &c.statements {
            // INVARIANT of Statement: operations never empty, their max is the class.
            prop_assert_eq!(st.operations.iter().map(|o| o.class).max(), Some(st.class));
        }
    }

    #[test]
    fn a_then_b_is_the_max_of_a_and_b(a in pool(), b in pool()) {
        let cfg = SqlConfig::default();
        let ca = classify(a, &cfg).class();
        let cb = classify(b, &cfg).class();
        let both = classify(&format!("{a}; {b}"), &cfg);
        prop_assert_eq!(both.class(), ca.max(cb));
        prop_assert_eq!(both.statements.len(), 2);
    }

    #[test]
    fn cache_answers_like_the_function(picks in proptest::collection::vec(pool(), 1..30)) {
        let cfg = SqlConfig::default();
        // A small capacity so evictions happen too.
        let cache = Classifier::new(cfg.clone(), 4);
        for sql in &picks {
            prop_assert_eq!(&*cache.classify(sql), &classify(sql, &cfg));
        }
        let stats = cache.stats();
        prop_assert_eq!(stats.hits + stats.misses, picks.len() as u64);
        prop_assert!(stats.len <= 4);
    }
}

#[test]
fn cache_counts_hits_and_misses_and_is_shared_across_threads() {
    let cache = std::sync::Arc::new(Classifier::new(SqlConfig::default(), 10));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let cache = std::sync::Arc::clone(&cache);
            std::thread::spawn(move || cache.classify("DROP TABLE t").class())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().ok(), Some(airlock_core::OpClass::Destructive));
    }
    let s = cache.stats();
    assert_eq!(s.hits + s.misses, 4);
    assert!(s.misses >= 1);
    assert_eq!(s.len, 1);
    let again = cache.stats();
    cache.classify("DROP TABLE t");
    assert_eq!(cache.stats().hits, again.hits + 1);
}

#[test]
fn cache_evicts_the_least_recently_used() {
    let cache = Classifier::new(SqlConfig::default(), 2);
    cache.classify("SELECT a");
    cache.classify("SELECT b");
    cache.classify("SELECT a"); // a is now the most recent
    cache.classify("SELECT c"); // evicts b
    let before = cache.stats();
    cache.classify("SELECT a");
    assert_eq!(cache.stats().hits, before.hits + 1, "SELECT a was kept");
    let before = cache.stats();
    cache.classify("SELECT b");
    assert_eq!(
        cache.stats().misses,
        before.misses + 1,
        "SELECT b was evicted"
    );
}

#[test]
fn classifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Classifier>();
    assert_send_sync::<airlock_sql::SqlClassification>();
}
