//! Any bytes as a query string: classification answers with at least one statement, never a
//! panic or an abort (the C parser runs on its own thread behind a nesting bound), every
//! statement's class is the highest of its operations, and text that is not UTF-8 or not SQL is
//! destructive.
#![no_main]
use airlock_core::OpClass;
use airlock_sql::{classify, SqlConfig, UNCLASSIFIABLE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let c = classify(sql, &SqlConfig::default());
    assert!(!c.statements.is_empty());
    for s in &c.statements {
        assert_eq!(s.operations.iter().map(|o| o.class).max(), Some(s.class));
        if s.tag == UNCLASSIFIABLE {
            assert_eq!(s.class, OpClass::Destructive);
        }
    }
});
