//! Any bytes as a query string: classification answers with at least one statement, never a
//! panic or an abort (the C parser runs on its own thread behind a nesting bound), every
//! statement's class is the highest of its operations, and text that is not UTF-8 or not SQL is
//! destructive. The cache's normaliser never panics either, and its output (which holds
//! parameters) is never normalised again.
#![no_main]
use airlock_core::OpClass;
use airlock_sql::{classify, normalize, SqlConfig, UNCLASSIFIABLE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(n) = normalize(sql) {
        assert_eq!(normalize(&n), None);
    }
    let c = classify(sql, &SqlConfig::default());
    assert!(!c.statements.is_empty());
    for s in &c.statements {
        assert_eq!(s.operations.iter().map(|o| o.class).max(), Some(s.class));
        if s.tag == UNCLASSIFIABLE {
            assert_eq!(s.class, OpClass::Destructive);
        }
    }
});
