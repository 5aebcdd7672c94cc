//! Verification semantics of the authority over a real SQLite store: expiry under a controlled
//! clock, revocation seen by another process's cache, fail-closed on store failure, and malformed
//! tokens refused before any lookup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_audit::{Actor, AuditEvent, AuditRecord, ChainError};
use airlock_authority::{Authority, IssueRequest, NewIdentity, VerifyError};
use airlock_config::Config;
use airlock_core::{Clock, EnvName, IdentityKind, ManualClock, Name, OpClass, OpClassSet};
use airlock_store::{
    ApprovalRecord, ApprovalState, AuditFilter, Identity, ResourceRecord, SecretInfo, SecretRecord,
    SqliteStore, Store, StoreError, TokenRecord, TotpRecord,
};
use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;

/// The real store, with a switch that makes it fail and a count of lookups: fault injection
/// around the real component, not a stand-in for it.
struct Faulty {
    inner: SqliteStore,
    down: AtomicBool,
    lookups: AtomicU64,
}

impl Faulty {
    fn check(&self) -> Result<(), StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Open {
                path: "test".into(),
                message: "disk unplugged".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl Store for Faulty {
    fn insert_identity(&self, i: &Identity, a: AuditEvent) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_identity(i, a)
    }
    fn identity(&self, n: &Name) -> Result<Option<Identity>, StoreError> {
        self.check()?;
        self.inner.identity(n)
    }
    fn identities(&self) -> Result<Vec<Identity>, StoreError> {
        self.check()?;
        self.inner.identities()
    }
    fn disable_identity(
        &self,
        n: &Name,
        at: OffsetDateTime,
        a: AuditEvent,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.disable_identity(n, at, a)
    }
    fn review_identity(
        &self,
        n: &Name,
        d: time::Date,
        p: Option<&str>,
        a: AuditEvent,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.review_identity(n, d, p, a)
    }
    fn reassign_identity(&self, n: &Name, o: &Name, a: AuditEvent) -> Result<(), StoreError> {
        self.check()?;
        self.inner.reassign_identity(n, o, a)
    }
    fn put_unmanaged(
        &self,
        u: &[airlock_store::UnmanagedCredential],
        a: AuditEvent,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.put_unmanaged(u, a)
    }
    fn unmanaged(&self) -> Result<Vec<airlock_store::UnmanagedCredential>, StoreError> {
        self.check()?;
        self.inner.unmanaged()
    }
    fn insert_token(&self, t: &TokenRecord, a: AuditEvent) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_token(t, a)
    }
    fn token_by_hash(&self, h: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.check()?;
        self.inner.token_by_hash(h)
    }
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.check()?;
        self.inner.token(id)
    }
    fn tokens(&self, i: Option<&Name>) -> Result<Vec<TokenRecord>, StoreError> {
        self.check()?;
        self.inner.tokens(i)
    }
    fn revoke_token(
        &self,
        id: &str,
        at: OffsetDateTime,
        r: &str,
        a: AuditEvent,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.revoke_token(id, at, r, a)
    }
    fn check_one_key(
        &self,
        k: &str,
        s: Option<(&str, &str)>,
        t: Option<&str>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.check_one_key(k, s, t)
    }
    fn put_secret(&self, s: &SecretRecord, one: bool, a: AuditEvent) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_secret(s, one, a)
    }
    fn secret(&self, n: &str, e: &str) -> Result<Option<SecretRecord>, StoreError> {
        self.check()?;
        self.inner.secret(n, e)
    }
    fn secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        self.check()?;
        self.inner.secrets()
    }
    fn append_audit(&self, e: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.check()?;
        self.inner.append_audit(e)
    }
    fn append_audit_batch(&self, e: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError> {
        self.check()?;
        self.inner.append_audit_batch(e)
    }
    fn put_resource(&self, r: &ResourceRecord, a: AuditEvent) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_resource(r, a)
    }
    fn resources(&self) -> Result<Vec<ResourceRecord>, StoreError> {
        self.check()?;
        self.inner.resources()
    }
    fn request_approval(
        &self,
        a: &ApprovalRecord,
        e: AuditEvent,
    ) -> Result<(ApprovalRecord, bool), StoreError> {
        self.check()?;
        self.inner.request_approval(a, e)
    }
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        self.check()?;
        self.inner.approval(id)
    }
    fn approvals(&self, s: Option<ApprovalState>) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.check()?;
        self.inner.approvals(s)
    }
    fn granted_approval(
        &self,
        d: &str,
        r: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        self.check()?;
        self.inner.granted_approval(d, r, now)
    }
    fn consume_approval(
        &self,
        id: &str,
        now: OffsetDateTime,
        e: AuditEvent,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.consume_approval(id, now, e)
    }
    fn vote_approval(
        &self,
        id: &str,
        approver: &str,
        factor: &str,
        approve: bool,
        reason: &str,
        now: OffsetDateTime,
        e: AuditEvent,
    ) -> Result<ApprovalRecord, StoreError> {
        self.check()?;
        self.inner
            .vote_approval(id, approver, factor, approve, reason, now, e)
    }
    fn expire_approvals(&self, now: OffsetDateTime) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.check()?;
        self.inner.expire_approvals(now)
    }
    fn put_totp(&self, t: &TotpRecord, one: bool, e: AuditEvent) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_totp(t, one, e)
    }
    fn totp(&self, i: &str) -> Result<Option<TotpRecord>, StoreError> {
        self.check()?;
        self.inner.totp(i)
    }
    fn use_totp_step(&self, i: &str, step: u64) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.use_totp_step(i, step)
    }
    fn token_last_used(
        &self,
    ) -> Result<std::collections::HashMap<String, OffsetDateTime>, StoreError> {
        self.check()?;
        self.inner.token_last_used()
    }
    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.check()?;
        self.inner.audit(f)
    }
    fn verify_audit(&self) -> Result<Result<u64, ChainError>, StoreError> {
        self.check()?;
        self.inner.verify_audit()
    }
    fn change_marker(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.change_marker()
    }
}

fn config(dir: &Path) -> Config {
    Config::parse(airlock_config::EXAMPLE, &dir.join("airlock.toml"), dir).unwrap()
}

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn seed(auth: &Authority) -> String {
    let op = Actor::local_operator();
    auth.add_identity(
        &op,
        NewIdentity {
            name: name("alice"),
            kind: IdentityKind::Human,
            owner: None,
            purpose: None,
            review_by: None,
            agent_accessible: false,
            environments: vec![],
        },
    )
    .unwrap();
    auth.add_identity(
        &op,
        NewIdentity {
            name: name("bot"),
            kind: IdentityKind::Agent,
            owner: Some(name("alice")),
            purpose: Some("tests".into()),
            review_by: None,
            agent_accessible: false,
            environments: vec![],
        },
    )
    .unwrap();
    issue(auth)
}

fn issue(auth: &Authority) -> String {
    auth.issue(
        &Actor::local_operator(),
        IssueRequest {
            identity: name("bot"),
            environments: vec![EnvName::new("staging").unwrap()],
            allow: [OpClass::Read].into_iter().collect::<OpClassSet>(),
            ttl: None,
            resource_scope: None,
        },
    )
    .unwrap()
    .token
    .expose()
    .to_string()
}

#[test]
fn expiry_is_checked_on_every_call_even_for_a_cached_token() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let store = Arc::new(SqliteStore::open(&dir.path().join("a.db")).unwrap());
    let auth = Authority::new(store, config(dir.path()), clock.clone());
    let t = seed(&auth);
    assert!(auth.verify(&t, clock.now()).is_ok());
    clock.advance(time::Duration::minutes(59));
    assert!(auth.verify(&t, clock.now()).is_ok());
    clock.advance(time::Duration::minutes(1));
    assert!(matches!(
        auth.verify(&t, clock.now()),
        Err(VerifyError::Expired { .. })
    ));
}

#[test]
fn a_revocation_by_another_process_empties_this_process_cache_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let clock = Arc::new(ManualClock::new(start()));
    let gateway = Authority::new(
        Arc::new(SqliteStore::open(&db).unwrap()),
        config(dir.path()),
        clock.clone(),
    );
    let cli = Authority::new(
        Arc::new(SqliteStore::open(&db).unwrap()),
        config(dir.path()),
        clock.clone(),
    );
    let t = seed(&cli);
    let claims = gateway.verify(&t, clock.now()).unwrap();
    assert!(
        gateway.verify(&t, clock.now()).is_ok(),
        "second check is served from the cache"
    );
    cli.revoke(&Actor::local_operator(), &claims.token_id, "test")
        .unwrap();
    assert!(matches!(
        gateway.verify(&t, clock.now()),
        Err(VerifyError::Revoked { .. })
    ));
}

#[test]
fn disabling_an_identity_elsewhere_refuses_its_cached_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let clock = Arc::new(ManualClock::new(start()));
    let gateway = Authority::new(
        Arc::new(SqliteStore::open(&db).unwrap()),
        config(dir.path()),
        clock.clone(),
    );
    let cli = Authority::new(
        Arc::new(SqliteStore::open(&db).unwrap()),
        config(dir.path()),
        clock.clone(),
    );
    let t = seed(&cli);
    gateway.verify(&t, clock.now()).unwrap();
    cli.disable_identity(&Actor::local_operator(), &name("bot"), "offboarded")
        .unwrap();
    assert!(matches!(
        gateway.verify(&t, clock.now()),
        Err(VerifyError::IdentityDisabled { .. })
    ));
}

#[test]
fn an_unreachable_store_means_deny_even_for_a_token_verified_a_moment_ago() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Faulty {
        inner: SqliteStore::open(&dir.path().join("a.db")).unwrap(),
        down: AtomicBool::new(false),
        lookups: AtomicU64::new(0),
    });
    let clock = Arc::new(ManualClock::new(start()));
    let auth = Authority::new(store.clone(), config(dir.path()), clock.clone());
    let t = seed(&auth);
    auth.verify(&t, clock.now()).unwrap();
    store.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        auth.verify(&t, clock.now()),
        Err(VerifyError::StoreUnavailable(_))
    ));
}

#[test]
fn malformed_tokens_are_refused_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Faulty {
        inner: SqliteStore::open(&dir.path().join("a.db")).unwrap(),
        down: AtomicBool::new(false),
        lookups: AtomicU64::new(0),
    });
    let clock = Arc::new(ManualClock::new(start()));
    let auth = Authority::new(store.clone(), config(dir.path()), clock.clone());
    let t = seed(&auth);
    let before = store.lookups.load(Ordering::SeqCst);
    let mut typo = t.clone().into_bytes();
    typo[30] = if typo[30] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    assert!(matches!(
        auth.verify(&t[..40], clock.now()),
        Err(VerifyError::Malformed)
    ));
    assert!(matches!(
        auth.verify(&typo, clock.now()),
        Err(VerifyError::BadChecksum)
    ));
    assert!(matches!(
        auth.verify("Bearer abc", clock.now()),
        Err(VerifyError::Malformed)
    ));
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        before,
        "no store call for malformed tokens"
    );
}

#[test]
fn tokens_issued_after_a_revocation_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let auth = Authority::new(
        Arc::new(SqliteStore::open(&dir.path().join("a.db")).unwrap()),
        config(dir.path()),
        clock.clone(),
    );
    let a = seed(&auth);
    let id = auth.verify(&a, clock.now()).unwrap().token_id.clone();
    auth.revoke(&Actor::local_operator(), &id, "").unwrap();
    let b = issue(&auth);
    assert!(auth.verify(&b, clock.now()).is_ok());
    assert!(auth.verify(&a, clock.now()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    /// Whatever text an agent presents, verification answers with a value and never panics;
    /// anything that is not a token this authority issued is refused.
    #[test]
    fn arbitrary_presented_text_is_refused_without_panicking(s in "\\PC{0,80}", prefixed in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start()));
        let auth = Authority::new(Arc::new(SqliteStore::open(&dir.path().join("a.db")).unwrap()), config(dir.path()), clock.clone());
        let text = if prefixed { format!("alk_{s}") } else { s };
        prop_assert!(auth.verify(&text, clock.now()).is_err());
    }
}
