#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every built-in rule's positive and negative examples.

use airlock_scan::fakes::fake;
use airlock_scan::rules::BUILTIN;
use airlock_scan::{Origin, Scanner};

#[test]
fn every_rule_has_examples_both_ways() {
    for r in BUILTIN {
        assert!(
            !r.positives.is_empty(),
            "rule `{}` has no positive example",
            r.id
        );
        assert!(
            !r.negatives.is_empty(),
            "rule `{}` has no negative example",
            r.id
        );
        assert!(
            fake(r.id, 1).is_some(),
            "rule `{}` has no fake generator",
            r.id
        );
    }
}

#[test]
fn positives_are_found_once_by_their_rule() {
    let scanner = Scanner::with_builtins().unwrap();
    let mut failures = Vec::new();
    for r in BUILTIN {
        for (i, template) in r.positives.iter().enumerate() {
            for seed in 1..=5u64 {
                let secret = fake(r.id, seed).unwrap();
                let text = template.replace("{fake}", &secret);
                let found = scanner.scan_bytes(text.as_bytes(), &Origin::file("example"));
                let mine: Vec<_> = found.iter().filter(|f| f.rule_id == r.id).collect();
                if mine.len() != 1 || found.len() != 1 {
                    failures.push(format!(
                        "{} positive #{} seed {}: {:?}",
                        r.id,
                        i + 1,
                        seed,
                        found
                            .iter()
                            .map(|f| (&f.rule_id, &f.redacted))
                            .collect::<Vec<_>>()
                    ));
                    continue;
                }
                let f = mine[0];
                assert!(
                    secret.len() < 16 || !f.redacted.contains(&secret[..secret.len() - 2]),
                    "{} leaks",
                    r.id
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "positives not found:\n{}",
        failures.join("\n")
    );
}

#[test]
fn negatives_are_not_reported() {
    let scanner = Scanner::with_builtins().unwrap();
    let mut failures = Vec::new();
    for r in BUILTIN {
        for (i, text) in r.negatives.iter().enumerate() {
            let found = scanner.scan_bytes(text.as_bytes(), &Origin::file("example"));
            if !found.is_empty() {
                failures.push(format!(
                    "{} negative #{}: {:?}",
                    r.id,
                    i + 1,
                    found
                        .iter()
                        .map(|f| (&f.rule_id, &f.redacted))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "negatives reported:\n{}",
        failures.join("\n")
    );
}

#[test]
fn airlock_tokens_keep_their_raw_value_for_the_authority_hook_only() {
    let scanner = Scanner::with_builtins().unwrap();
    let t = airlock_token::Token::generate().unwrap();
    let text = format!("token: {}\npassword = \"Zq8#kL2m!pX9vR4t\"\n", t.expose());
    let found = scanner.scan_bytes(text.as_bytes(), &Origin::file("f"));
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].rule_id, "airlock-token");
    assert_eq!(found[0].airlock_token(), Some(t.expose()));
    assert_eq!(found[1].airlock_token(), None);
    let json = serde_json::to_string(&found[0]).unwrap();
    assert!(!json.contains(t.expose()));
    assert!(!format!("{:?}", found[0]).contains(t.expose()));
}
