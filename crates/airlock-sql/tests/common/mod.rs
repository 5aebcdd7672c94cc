//! Shared by the table-driven tests.
#![allow(dead_code)]

use airlock_core::OpClass;
use airlock_sql::{classify, SqlConfig};

/// Classifies every case with the default configuration; one line for each statement whose
/// class is not the one given. Asserts on the way that every statement's operations are never
/// empty and that their highest class is the statement's class.
pub fn mismatches(cases: &[(&str, OpClass)]) -> Vec<String> {
    let cfg = SqlConfig::default();
    let mut failures = Vec::new();
    for (sql, want) in cases {
        let got = classify(sql, &cfg);
        for st in &got.statements {
            assert_eq!(
                st.operations.iter().map(|o| o.class).max(),
                Some(st.class),
                "{sql}"
            );
        }
        if got.class() != *want {
            failures.push(format!(
                "{sql:?}: want {want:?}, got {:?} ({:?}; notes {:?})",
                got.class(),
                got.statements.iter().map(|s| &s.tag).collect::<Vec<_>>(),
                got.statements
                    .iter()
                    .flat_map(|s| &s.notes)
                    .collect::<Vec<_>>()
            ));
        }
    }
    failures
}
