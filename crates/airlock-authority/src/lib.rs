//! The credential authority.
//!
//! It replaces the incident's never-expiring, valid-everywhere admin token with credentials that
//! say who they are for, what they may do, where, and until when:
//! - identities (human, agent, service) where every agent and service has a human owner and a purpose;
//! - short-lived tokens bound to environments and an operation-class allowlist, stored only as hashes,
//!   verified in microseconds through a cache that revocation empties at once;
//! - sealed upstream secrets that agents never see.
//!
//! Every change and every refusal is written to the audit chain in the same transaction.

mod approvals;
mod error;
mod verify;

pub use approvals::ApprovalError;

pub use error::{IdentityError, IssueError, RevokeError, SecretError, VerifyError};
pub use verify::{Claims, TokenInspection};

/// Whether sealing may use a master key other than the one the store's secrets are sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// Refuse: with two keys in the store, `serve` could not open all of it.
    Refuse,
    /// The old key is lost: seal under the new one; what the old one sealed stays unusable until
    /// it is set again.
    Allow,
}

/// A sealed item about to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sealed<'a> {
    /// Nothing is replaced.
    Nothing,
    /// An upstream secret: name and environment.
    Secret(&'a str, &'a str),
    /// A human's TOTP factor.
    Totp(&'a str),
}

use airlock_audit::{Actor, AuditEvent};
use airlock_config::Config;
use airlock_core::{Clock, EnvName, IdentityKind, Name, OpClassSet, Outcome, Secret};
use airlock_seal::MasterKey;
use airlock_store::{Identity, SecretInfo, SecretRecord, Store, StoreError, TokenRecord};
use airlock_token::Token;
use std::sync::Arc;
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// How long an agent or service may go without review when no date is given.
pub const DEFAULT_REVIEW_PERIOD: time::Duration = time::Duration::days(90);

/// What is needed to add an identity.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    /// Unique name.
    pub name: Name,
    /// Human, agent or service.
    pub kind: IdentityKind,
    /// Required for agents and services: an existing, enabled human.
    pub owner: Option<Name>,
    /// Required for agents and services.
    pub purpose: Option<String>,
    /// Defaults to 90 days from now for agents and services.
    pub review_by: Option<Date>,
    /// Whether AI agents can read this identity's credentials.
    pub agent_accessible: bool,
    /// Environments it may hold tokens for; empty means any.
    pub environments: Vec<EnvName>,
}

/// What is needed to issue a token.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Whose token.
    pub identity: Name,
    /// The environments it is valid for (at least one).
    pub environments: Vec<EnvName>,
    /// The operation classes it may perform (at least one).
    pub allow: OpClassSet,
    /// Lifetime; defaults from configuration by identity kind.
    pub ttl: Option<Duration>,
    /// Optional resource pattern narrowing what it may touch.
    pub resource_scope: Option<String>,
}

/// A freshly issued token: the string (shown once) and its stored record.
#[derive(Debug)]
pub struct Issued {
    /// The token; print it once and drop it.
    pub token: Token,
    /// What the store keeps.
    pub record: TokenRecord,
}

/// Read-only access to the store behind an authority.
#[derive(Clone, Copy)]
pub struct StoreReader<'a>(&'a dyn Store);

impl StoreReader<'_> {
    /// The identity called `name`.
    pub fn identity(&self, name: &Name) -> Result<Option<Identity>, StoreError> {
        self.0.identity(name)
    }
    /// Every identity, by name.
    pub fn identities(&self) -> Result<Vec<Identity>, StoreError> {
        self.0.identities()
    }
    /// The token with public id `id`.
    pub fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.0.token(id)
    }

    /// The token whose SHA-256 is `hash` (hex), whatever its state.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.0.token_by_hash(hash)
    }
    /// Tokens, newest first, optionally of one identity.
    pub fn tokens(&self, identity: Option<&Name>) -> Result<Vec<TokenRecord>, StoreError> {
        self.0.tokens(identity)
    }
    /// Every sealed secret's metadata.
    pub fn secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        self.0.secrets()
    }
    /// Every resource catalog entry in the store.
    pub fn resources(&self) -> Result<Vec<airlock_store::ResourceRecord>, StoreError> {
        self.0.resources()
    }
    /// Every imported unmanaged credential.
    pub fn unmanaged(&self) -> Result<Vec<airlock_store::UnmanagedCredential>, StoreError> {
        self.0.unmanaged()
    }
    /// Whether a human has a TOTP second factor enrolled (and so can approve).
    pub fn has_totp(&self, name: &Name) -> Result<bool, StoreError> {
        Ok(self.0.totp(name.as_str())?.is_some())
    }
    /// Audit records matching `filter`.
    pub fn audit(
        &self,
        filter: &airlock_store::AuditFilter,
    ) -> Result<Vec<airlock_audit::AuditRecord>, StoreError> {
        self.0.audit(filter)
    }
    /// The store's change counter (identities, tokens, catalog), for reloaders that poll.
    pub fn change_marker(&self) -> Result<u64, StoreError> {
        self.0.change_marker()
    }
    /// When each token was last allowed to do something (from the audit log).
    pub fn token_last_used(
        &self,
    ) -> Result<std::collections::HashMap<String, OffsetDateTime>, StoreError> {
        self.0.token_last_used()
    }
    /// Walks the audit chain.
    pub fn verify_audit(&self) -> Result<Result<u64, airlock_audit::ChainError>, StoreError> {
        self.0.verify_audit()
    }
}

/// The credential authority over one store.
pub struct Authority {
    store: Arc<dyn Store>,
    config: Config,
    clock: Arc<dyn Clock>,
    cache: verify::Cache,
    /// Wrong TOTP codes per identity: (count, first failure in the window). In memory: a restart
    /// forgets them, which costs an attacker a restart they cannot cause.
    totp_failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

pub(crate) fn event(actor: &Actor, now: OffsetDateTime, action: &str) -> AuditEvent {
    AuditEvent {
        time: now,
        actor: actor.clone(),
        action: action.to_string(),
        resource: None,
        environment: None,
        decision: Outcome::Allow,
        reason: String::new(),
        details: Default::default(),
    }
}

fn new_token_id() -> Result<String, IssueError> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|_| IssueError::Random)?;
    Ok(format!("tok_{}", hex::encode(b)))
}

impl Authority {
    /// An authority over `store`, with limits and environments from `config`.
    pub fn new(store: Arc<dyn Store>, config: Config, clock: Arc<dyn Clock>) -> Authority {
        Authority {
            store,
            config,
            clock,
            cache: verify::Cache::default(),
            totp_failures: Default::default(),
        }
    }

    /// The store, read-only: every change goes through the authority, which keeps the
    /// verification cache and the audit log in step with it.
    pub fn store(&self) -> StoreReader<'_> {
        StoreReader(self.store.as_ref())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current time by this authority's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn check_envs(&self, envs: &[EnvName]) -> Result<(), EnvName> {
        match envs.iter().find(|e| self.config.environment(e).is_none()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records a refusal; if even that fails the refusal still stands, and the log says so.
    pub(crate) fn audit_refusal(&self, mut e: AuditEvent, reason: &str) {
        e.decision = Outcome::Deny;
        e.reason = reason.to_string();
        if let Err(err) = self.store.append_audit(e) {
            tracing::error!(error = %err, "could not write the audit record of a refusal");
        }
    }

    /// The fingerprints of the master keys, other than `key`, that sealed secrets or TOTP factors
    /// in the store, joined with `, `; `None` if there are none. `replacing` is the item about to
    /// be overwritten: what it was sealed under stops mattering.
    // `serve` opens every sealed secret with one key, so a second key in the store is a failure
    // the operator would otherwise only meet at serve time.
    pub(crate) fn other_sealing_keys(
        &self,
        key: &MasterKey,
        replacing: Sealed<'_>,
    ) -> Result<Option<String>, StoreError> {
        let (secret, totp) = match replacing {
            Sealed::Nothing => (None, None),
            Sealed::Secret(name, env) => (Some((name, env)), None),
            Sealed::Totp(identity) => (None, Some(identity)),
        };
        // The same check the store repeats inside its write, asked ahead of sealing.
        match self.store.check_one_key(&key.id(), secret, totp) {
            Ok(()) => Ok(None),
            Err(StoreError::OtherKeys(others)) => Ok(Some(others)),
            Err(e) => Err(e),
        }
    }

    /// Adds an identity after checking the ownership rules.
    pub fn add_identity(&self, actor: &Actor, new: NewIdentity) -> Result<Identity, IdentityError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "identity.add");
        ev.resource = Some(new.name.to_string());
        match self.validate_identity(&new, now) {
            Ok(review_by) => {
                let identity = Identity {
                    name: new.name,
                    kind: new.kind,
                    owner: new.owner,
                    purpose: new.purpose.map(|p| p.trim().to_string()),
                    review_by,
                    agent_accessible: new.agent_accessible,
                    environments: new.environments,
                    enabled: true,
                    created_at: now,
                    created_by: actor.id.clone(),
                    disabled_at: None,
                };
                ev.reason = match &identity.owner {
                    Some(o) => format!(
                        "{} `{}` added, owned by `{o}`",
                        identity.kind, identity.name
                    ),
                    None => format!("{} `{}` added", identity.kind, identity.name),
                };
                self.store
                    .insert_identity(&identity, ev)
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => IdentityError::Exists(identity.name.clone()),
                        other => IdentityError::Store(other),
                    })?;
                Ok(identity)
            }
            Err(e) => {
                if !matches!(e, IdentityError::Store(_)) {
                    self.audit_refusal(ev, &e.to_string());
                }
                Err(e)
            }
        }
    }

    fn validate_identity(
        &self,
        new: &NewIdentity,
        now: OffsetDateTime,
    ) -> Result<Option<Date>, IdentityError> {
        if new
            .purpose
            .as_deref()
            .is_some_and(|p| p.chars().any(char::is_control))
        {
            return Err(IdentityError::BadPurpose);
        }
        if let Err(env) = self.check_envs(&new.environments) {
            return Err(IdentityError::UnknownEnvironment {
                env,
                known: self.config.environment_names(),
            });
        }
        if !new.kind.needs_owner() {
            if new.owner.is_some() {
                return Err(IdentityError::HumanWithOwner);
            }
            return Ok(new.review_by);
        }
        let Some(owner) = &new.owner else {
            return Err(IdentityError::MissingOwner(new.kind));
        };
        if new.purpose.as_deref().is_none_or(|p| p.trim().is_empty()) {
            return Err(IdentityError::MissingPurpose(new.kind));
        }
        match self.store.identity(owner)? {
            None => return Err(IdentityError::OwnerNotFound(owner.clone())),
            Some(o) if o.kind != IdentityKind::Human => {
                return Err(IdentityError::OwnerNotHuman(owner.clone(), o.kind))
            }
            Some(o) if !o.enabled => return Err(IdentityError::OwnerDisabled(owner.clone())),
            Some(_) => {}
        }
        let review_by = new
            .review_by
            .unwrap_or((now + DEFAULT_REVIEW_PERIOD).date());
        if review_by < now.date() {
            return Err(IdentityError::ReviewDateInPast(review_by));
        }
        Ok(Some(review_by))
    }

    /// Disables (offboards) an identity and revokes every token it holds, in one transaction.
    /// Returns how many tokens were revoked and which enabled identities it owned.
    pub fn disable_identity(
        &self,
        actor: &Actor,
        name: &Name,
        reason: &str,
    ) -> Result<(u64, Vec<Name>), IdentityError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "identity.disable");
        ev.resource = Some(name.to_string());
        let Some(identity) = self.store.identity(name)? else {
            let e = IdentityError::NotFound(name.clone());
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        };
        if !identity.enabled {
            return Err(IdentityError::AlreadyDisabled(name.clone()));
        }
        ev.reason = if reason.is_empty() {
            "identity disabled; all its tokens revoked".to_string()
        } else {
            format!("identity disabled ({reason}); all its tokens revoked")
        };
        let revoked = self.store.disable_identity(name, now, ev)?;
        self.cache.invalidate();
        let orphaned = self
            .store
            .identities()?
            .into_iter()
            .filter(|i| i.enabled && i.owner.as_ref() == Some(name))
            .map(|i| i.name)
            .collect();
        Ok((revoked, orphaned))
    }

    /// Records that an identity's owner confirmed it is still needed: the review date moves to
    /// `review_by` (default: the review period from now) and the purpose may be restated.
    pub fn review_identity(
        &self,
        actor: &Actor,
        name: &Name,
        review_by: Option<Date>,
        purpose: Option<&str>,
    ) -> Result<Date, IdentityError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "identity.review");
        ev.resource = Some(name.to_string());
        let review_by = review_by.unwrap_or((now + DEFAULT_REVIEW_PERIOD).date());
        let checked = (|| {
            if purpose.is_some_and(|p| p.trim().is_empty() || p.chars().any(char::is_control)) {
                return Err(IdentityError::BadPurpose);
            }
            if review_by < now.date() {
                return Err(IdentityError::ReviewDateInPast(review_by));
            }
            Ok(())
        })();
        if let Err(e) = checked {
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        }
        ev.reason = format!("`{name}` reviewed: still needed; next review by {review_by}");
        if let Some(p) = purpose {
            ev.details.insert("purpose".into(), p.trim().to_string());
        }
        let refusal = ev.clone();
        self.store
            .review_identity(name, review_by, purpose.map(str::trim), ev)
            .map_err(|e| self.identity_store_error(refusal, name, e))?;
        Ok(review_by)
    }

    /// Gives an agent or service (typically one orphaned by its owner's offboarding) a new
    /// owner, an enabled human.
    pub fn reassign(&self, actor: &Actor, name: &Name, owner: &Name) -> Result<(), IdentityError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "identity.reassign");
        ev.resource = Some(name.to_string());
        let previous = self.store.identity(name)?.and_then(|i| i.owner);
        ev.reason = match &previous {
            Some(p) => format!("`{name}` reassigned from `{p}` to `{owner}`"),
            None => format!("`{name}` assigned to `{owner}`"),
        };
        let refusal = ev.clone();
        self.store
            .reassign_identity(name, owner, ev)
            .map_err(|e| self.identity_store_error(refusal, name, e))?;
        self.cache.invalidate();
        Ok(())
    }

    /// Maps a lifecycle store refusal to an identity error, auditing the refusal.
    fn identity_store_error(&self, ev: AuditEvent, name: &Name, e: StoreError) -> IdentityError {
        let err = match e {
            StoreError::NotFound(_) => IdentityError::NotFound(name.clone()),
            StoreError::Refused(why) => IdentityError::Refused(why),
            other => return IdentityError::Store(other),
        };
        self.audit_refusal(ev, &err.to_string());
        err
    }

    /// Imports credentials found outside Airlock; returns how many were new.
    pub fn import_unmanaged(
        &self,
        actor: &Actor,
        source: &str,
        found: &[airlock_store::UnmanagedCredential],
    ) -> Result<u64, StoreError> {
        let mut ev = event(actor, self.clock.now(), "inventory.import_scan");
        ev.resource = Some(source.to_string());
        ev.reason = format!(
            "{} unmanaged credential(s) imported from a scan report; {} readable by agents",
            found.len(),
            found.iter().filter(|f| f.agent_readable).count()
        );
        self.store.put_unmanaged(found, ev)
    }

    /// Issues a token, enforcing identity state, environments and lifetime caps.
    pub fn issue(&self, actor: &Actor, req: IssueRequest) -> Result<Issued, IssueError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "token.issue");
        ev.resource = Some(req.identity.to_string());
        ev.environment = Some(
            req.environments
                .iter()
                .map(EnvName::as_str)
                .collect::<Vec<_>>()
                .join(","),
        );
        match self.prepare_issue(&req, now) {
            Ok((mut record, token)) => {
                record.issuer = actor.id.clone();
                ev.reason = format!(
                    "issued {} for `{}`: {} in {}, expires {}",
                    record.id,
                    record.identity,
                    record.allow,
                    ev.environment.as_deref().unwrap_or(""),
                    airlock_core::fmt_time(record.expires_at)
                );
                ev.actor.token_id = actor.token_id.clone();
                ev.resource = Some(format!("{} ({})", record.identity, record.id));
                let refusal = ev.clone();
                match self.store.insert_token(&record, ev) {
                    Ok(()) => Ok(Issued { token, record }),
                    Err(StoreError::Refused(why)) => {
                        let e = IssueError::Changed(why);
                        let mut refusal = refusal;
                        refusal.resource = Some(record.identity.to_string());
                        self.audit_refusal(refusal, &e.to_string());
                        Err(e)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => {
                if !matches!(e, IssueError::Store(_)) {
                    self.audit_refusal(ev, &e.to_string());
                }
                Err(e)
            }
        }
    }

    fn prepare_issue(
        &self,
        req: &IssueRequest,
        now: OffsetDateTime,
    ) -> Result<(TokenRecord, Token), IssueError> {
        let identity = self
            .store
            .identity(&req.identity)?
            .ok_or_else(|| IssueError::UnknownIdentity(req.identity.clone()))?;
        if !identity.enabled {
            return Err(IssueError::IdentityDisabled(identity.name));
        }
        if let Some(owner) = &identity.owner {
            let owner_ok = self.store.identity(owner)?.is_some_and(|o| o.enabled);
            if !owner_ok {
                return Err(IssueError::OwnerDisabled {
                    identity: identity.name,
                    owner: owner.clone(),
                });
            }
        }
        if req.environments.is_empty() {
            return Err(IssueError::NoEnvironment {
                known: self.config.environment_names(),
            });
        }
        if let Err(env) = self.check_envs(&req.environments) {
            return Err(IssueError::UnknownEnvironment {
                env,
                known: self.config.environment_names(),
            });
        }
        if !identity.environments.is_empty() {
            if let Some(env) = req
                .environments
                .iter()
                .find(|e| !identity.environments.contains(e))
            {
                return Err(IssueError::EnvironmentNotAllowed {
                    identity: identity.name,
                    env: env.clone(),
                });
            }
        }
        if req.allow.is_empty() {
            return Err(IssueError::EmptyAllowlist);
        }
        let limits = &self.config.tokens;
        let (default, max) = match identity.kind {
            IdentityKind::Human => (limits.human_default_ttl, limits.human_max_ttl),
            IdentityKind::Agent | IdentityKind::Service => {
                (limits.agent_default_ttl, limits.agent_max_ttl)
            }
        };
        let ttl = req.ttl.unwrap_or(default);
        if ttl > max {
            return Err(IssueError::TtlTooLong {
                kind: identity.kind,
                requested: airlock_core::fmt_duration(ttl),
                max: airlock_core::fmt_duration(max),
            });
        }
        if ttl.is_zero() {
            return Err(IssueError::ZeroTtl);
        }
        if ttl < Duration::from_secs(60) {
            return Err(IssueError::TtlTooShort);
        }
        let ttl = time::Duration::try_from(ttl).map_err(|_| IssueError::ZeroTtl)?;
        let token = Token::generate().map_err(|_| IssueError::Random)?;
        let mut environments = req.environments.clone();
        environments.sort();
        environments.dedup();
        let record = TokenRecord {
            id: new_token_id()?,
            hash: token.hash().to_hex(),
            identity: identity.name,
            environments,
            allow: req.allow,
            resource_scope: req.resource_scope.clone(),
            issued_at: now,
            expires_at: now + ttl,
            issuer: String::new(),
            revoked_at: None,
            revoke_reason: None,
        };
        Ok((record, token))
    }

    /// Revokes one token; the next verification refuses it, in this process and every other.
    pub fn revoke(&self, actor: &Actor, token_id: &str, reason: &str) -> Result<(), RevokeError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "token.revoke");
        ev.resource = Some(token_id.to_string());
        ev.reason = if reason.is_empty() {
            "token revoked".into()
        } else {
            format!("token revoked: {reason}")
        };
        let reason = if reason.is_empty() { "revoked" } else { reason };
        let changed = self
            .store
            .revoke_token(token_id, now, reason, ev)
            .map_err(|e| match e {
                StoreError::NotFound(_) => RevokeError::NotFound(token_id.to_string()),
                other => RevokeError::Store(other),
            })?;
        // Invalidate after the commit: a verification racing with us either read the store before
        // the commit (and its cache insert is discarded by the generation bump) or after it.
        self.cache.invalidate();
        if changed {
            Ok(())
        } else {
            Err(RevokeError::AlreadyRevoked(token_id.to_string()))
        }
    }

    /// Seals and stores an upstream secret. The value is read once and never returned.
    pub fn set_secret(
        &self,
        actor: &Actor,
        key: &MasterKey,
        name: &str,
        env: &EnvName,
        value: &Secret<Vec<u8>>,
        keys: KeyChange,
    ) -> Result<SecretInfo, SecretError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "secret.set");
        ev.resource = Some(name.to_string());
        ev.environment = Some(env.to_string());
        let checked = (|| {
            Name::new(name).map_err(|_| SecretError::InvalidName(name.to_string()))?;
            if self.config.environment(env).is_none() {
                return Err(SecretError::UnknownEnvironment {
                    env: env.clone(),
                    known: self.config.environment_names(),
                });
            }
            if value.expose().is_empty() {
                return Err(SecretError::Empty);
            }
            Ok(())
        })();
        if let Err(e) = checked {
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        }
        let left_behind = self.other_sealing_keys(key, Sealed::Secret(name, env.as_str()))?;
        if let (Some(store_key), KeyChange::Refuse) = (&left_behind, keys) {
            let e = SecretError::KeyMismatch {
                store_key: store_key.clone(),
                given_key: key.id(),
            };
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        }
        let sealed = key
            .seal(&airlock_seal::context(name, env.as_str()), value.expose())
            .map_err(SecretError::Seal)?;
        let created_at = self
            .store
            .secret(name, env.as_str())?
            .map(|s| s.created_at)
            .unwrap_or(now);
        let record = SecretRecord {
            name: name.to_string(),
            environment: env.clone(),
            key_id: key.id(),
            nonce: sealed.nonce.to_vec(),
            ciphertext: sealed.ciphertext,
            created_at,
            updated_by: actor.id.clone(),
            updated_at: now,
        };
        ev.reason = format!(
            "secret `{name}` sealed for {env} with key {}",
            record.key_id
        );
        if let Some(old) = &left_behind {
            ev.reason.push_str(&format!(
                "; a new master key by the operator's choice: what key {old} sealed stays unusable until set again"
            ));
        }
        // The check above names the keys for the common case; this one, inside the write, is
        // what holds when another `secret set` with another key runs at the same moment.
        if let Err(e) = self
            .store
            .put_secret(&record, keys == KeyChange::Refuse, ev.clone())
        {
            return Err(match e {
                StoreError::OtherKeys(store_key) => {
                    let e = SecretError::KeyMismatch {
                        store_key,
                        given_key: key.id(),
                    };
                    self.audit_refusal(ev, &e.to_string());
                    e
                }
                other => other.into(),
            });
        }
        Ok(SecretInfo {
            name: record.name,
            environment: record.environment,
            key_id: record.key_id,
            created_at: record.created_at,
            updated_at: record.updated_at,
            updated_by: record.updated_by,
        })
    }

    /// Adds or replaces a resource catalog entry: which environment a resource id or `*`
    /// pattern belongs to.
    pub fn add_resource(
        &self,
        actor: &Actor,
        pattern: &str,
        env: &EnvName,
        kind: Option<String>,
    ) -> Result<airlock_store::ResourceRecord, SecretError> {
        let now = self.clock.now();
        let mut ev = event(actor, now, "resource.add");
        ev.resource = Some(pattern.to_string());
        ev.environment = Some(env.to_string());
        if self.config.environment(env).is_none() {
            let e = SecretError::UnknownEnvironment {
                env: env.clone(),
                known: self.config.environment_names(),
            };
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        }
        if pattern.is_empty() || pattern.len() > 256 || pattern.chars().any(char::is_control) {
            let e = SecretError::InvalidName(pattern.to_string());
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        }
        let rec = airlock_store::ResourceRecord {
            pattern: pattern.to_string(),
            environment: env.clone(),
            kind,
            created_at: now,
            created_by: actor.id.clone(),
        };
        ev.reason = format!("resource `{pattern}` is in {env}");
        self.store.put_resource(&rec, ev)?;
        Ok(rec)
    }

    /// Opens a sealed secret for injection at the gateway. Never print the result.
    pub fn open_secret(
        &self,
        key: &MasterKey,
        name: &str,
        env: &EnvName,
    ) -> Result<Secret<Vec<u8>>, SecretError> {
        let rec = self
            .store
            .secret(name, env.as_str())?
            .ok_or_else(|| SecretError::NotFound {
                name: name.to_string(),
                env: env.clone(),
            })?;
        if rec.key_id != key.id() {
            return Err(SecretError::WrongKey {
                sealed_with: rec.key_id,
                current: key.id(),
            });
        }
        let nonce: [u8; 24] = rec
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::Seal(airlock_seal::SealError::Open))?;
        let sealed = airlock_seal::Sealed {
            nonce,
            ciphertext: rec.ciphertext,
        };
        key.open(&airlock_seal::context(name, env.as_str()), &sealed)
            .map_err(SecretError::Seal)
    }
}
