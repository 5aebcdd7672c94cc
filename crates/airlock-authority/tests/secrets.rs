//! Sealing over a real SQLite store: everything the store holds stays under one master key, so
//! `serve` can open all of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_audit::Actor;
use airlock_authority::{ApprovalError, Authority, KeyChange, NewIdentity, SecretError};
use airlock_config::Config;
use airlock_core::{EnvName, IdentityKind, Name, Outcome, Secret, SystemClock};
use airlock_seal::MasterKey;
use airlock_store::{AuditFilter, SecretRecord, SqliteStore, Store, StoreError};
use std::sync::Arc;

fn authority(dir: &std::path::Path) -> Authority {
    let config = Config::parse(airlock_config::EXAMPLE, &dir.join("airlock.toml"), dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("a.db")).unwrap());
    Authority::new(store, config, Arc::new(SystemClock))
}

fn staging() -> EnvName {
    EnvName::new("staging").unwrap()
}

fn set(auth: &Authority, key: &MasterKey, name: &str, value: &str) -> Result<(), SecretError> {
    set_with(auth, key, name, value, KeyChange::Refuse)
}

fn set_with(
    auth: &Authority,
    key: &MasterKey,
    name: &str,
    value: &str,
    keys: KeyChange,
) -> Result<(), SecretError> {
    let value = Secret::new(value.as_bytes().to_vec());
    auth.set_secret(
        &Actor::local_operator(),
        key,
        name,
        &staging(),
        &value,
        keys,
    )
    .map(|_| ())
}

fn add_human(auth: &Authority, name: &str) -> Name {
    let name = Name::new(name).unwrap();
    auth.add_identity(
        &Actor::local_operator(),
        NewIdentity {
            name: name.clone(),
            kind: IdentityKind::Human,
            owner: None,
            purpose: None,
            review_by: None,
            agent_accessible: false,
            environments: vec![],
        },
    )
    .unwrap();
    name
}

fn denials(auth: &Authority, action: &str) -> Vec<String> {
    let filter = AuditFilter {
        decision: Some(Outcome::Deny),
        ..Default::default()
    };
    auth.store()
        .audit(&filter)
        .unwrap()
        .into_iter()
        .filter(|r| r.event.action == action)
        .map(|r| r.event.reason)
        .collect()
}

#[test]
fn a_secret_is_never_sealed_under_a_second_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authority(dir.path());
    let (a, b) = (
        MasterKey::generate().unwrap(),
        MasterKey::generate().unwrap(),
    );

    // An empty store takes any key; the same key may replace what it sealed.
    set(&auth, &a, "first", "value-1").unwrap();
    set(&auth, &a, "first", "value-2").unwrap();

    let e = set(&auth, &b, "second", "value-3").unwrap_err();
    match &e {
        SecretError::KeyMismatch {
            store_key,
            given_key,
        } => {
            assert_eq!(store_key, &a.id());
            assert_eq!(given_key, &b.id());
        }
        other => panic!("expected a key mismatch, got {other:?}"),
    }
    // Nothing was written, and the refusal is in the audit log.
    let names: Vec<String> = auth
        .store()
        .secrets()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["first"]);
    let opened = auth.open_secret(&a, "first", &staging()).unwrap();
    assert_eq!(opened.expose(), b"value-2");
    let refused = denials(&auth, "secret.set");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains(&a.id()) && refused[0].contains(&b.id()));
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert!(e.to_string().contains("--new-master-key"), "{e}");

    set(&auth, &a, "second", "value-3").unwrap();
    // Replacing one with the other key is refused too: the store would hold one under each.
    assert!(matches!(
        set(&auth, &b, "first", "value-4"),
        Err(SecretError::KeyMismatch { .. })
    ));
}

#[test]
fn a_lost_master_key_is_replaced_only_when_the_operator_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authority(dir.path());
    let (a, b) = (
        MasterKey::generate().unwrap(),
        MasterKey::generate().unwrap(),
    );
    // The only secret may be replaced under another key: the store ends under one key.
    set(&auth, &a, "only", "v1").unwrap();
    set(&auth, &b, "only", "v2").unwrap();
    assert_eq!(
        auth.open_secret(&b, "only", &staging()).unwrap().expose(),
        b"v2"
    );

    // Key B is lost with two secrets under it: the operator says so once ...
    set(&auth, &b, "other", "v3").unwrap();
    set_with(&auth, &a, "only", "v4", KeyChange::Allow).unwrap();
    let reasons: Vec<String> = auth
        .store()
        .audit(&AuditFilter::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.event.action == "secret.set" && r.event.decision == Outcome::Allow)
        .map(|r| r.event.reason)
        .collect();
    let last = reasons.last().unwrap();
    assert!(
        last.contains("new master key") && last.contains(&b.id()),
        "{last}"
    );
    // ... and sets the rest again under the new key, which no longer needs the flag.
    set(&auth, &a, "other", "v5").unwrap();
    assert_eq!(
        auth.open_secret(&a, "other", &staging()).unwrap().expose(),
        b"v5"
    );
    assert!(matches!(
        set(&auth, &b, "third", "v6"),
        Err(SecretError::KeyMismatch { .. })
    ));
}

#[test]
fn second_factors_and_secrets_share_one_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authority(dir.path());
    let (a, b) = (
        MasterKey::generate().unwrap(),
        MasterKey::generate().unwrap(),
    );
    let alice = add_human(&auth, "alice");
    let bob = add_human(&auth, "bob");
    let op = Actor::local_operator();

    // A TOTP factor sealed under A holds the store to A for secrets ...
    auth.enroll_totp(&op, &a, &alice, false, KeyChange::Refuse)
        .unwrap();
    assert!(matches!(
        set(&auth, &b, "api", "v"),
        Err(SecretError::KeyMismatch { .. })
    ));
    // ... and for other factors, while the same key may replace a factor.
    let e = auth
        .enroll_totp(&op, &b, &bob, false, KeyChange::Refuse)
        .unwrap_err();
    assert!(matches!(e, ApprovalError::KeyMismatch { .. }), "{e:?}");
    assert!(!auth.has_totp(&bob).unwrap());
    assert_eq!(denials(&auth, "identity.totp_enrol").len(), 1);
    auth.enroll_totp(&op, &a, &alice, true, KeyChange::Refuse)
        .unwrap();
    auth.enroll_totp(&op, &a, &bob, false, KeyChange::Refuse)
        .unwrap();
    set(&auth, &a, "api", "v").unwrap();
}

#[test]
fn the_one_key_check_holds_inside_the_write_against_a_concurrent_writer() {
    // Two `secret set` runs with different keys can both pass the check before either writes;
    // the store checks again inside its write transaction, so the second one is refused.
    let dir = tempfile::tempdir().unwrap();
    let auth = authority(dir.path());
    let a = MasterKey::generate().unwrap();
    set(&auth, &a, "first", "v1").unwrap();
    let other = |name: &str| SecretRecord {
        name: name.into(),
        environment: staging(),
        key_id: "other-key".into(),
        nonce: vec![0; 24],
        ciphertext: vec![1],
        created_at: time::OffsetDateTime::now_utc(),
        updated_by: "test".into(),
        updated_at: time::OffsetDateTime::now_utc(),
    };
    let ev = |action: &str| airlock_audit::AuditEvent {
        time: time::OffsetDateTime::now_utc(),
        actor: Actor::local_operator(),
        action: action.into(),
        resource: None,
        environment: None,
        decision: Outcome::Allow,
        reason: "test".into(),
        details: Default::default(),
    };
    // Another process's store handle on the same file: the second writer.
    let second = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    let e = second
        .put_secret(&other("second"), true, ev("secret.set"))
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::OtherKeys(k) if *k == a.id()),
        "{e:?}"
    );
    assert_eq!(auth.store().secrets().unwrap().len(), 1, "nothing written");
    // Replacing the only item is no conflict; without the check the write goes through.
    second
        .put_secret(&other("first"), true, ev("secret.set"))
        .unwrap();
    second
        .put_secret(&other("third"), false, ev("secret.set"))
        .unwrap();
}
