//! Token verification and its revocation-aware cache.

use crate::{Authority, VerifyError};
use airlock_audit::{Actor, AuditEvent};
use airlock_core::{EnvName, IdentityKind, Name, OpClassSet, Outcome};
use airlock_token::{FormatError, Token, TokenHash};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// What a valid token proves: who, for what, where, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The token's public id.
    pub token_id: String,
    /// The identity it authenticates.
    pub identity: Name,
    /// Human, agent or service.
    pub kind: IdentityKind,
    /// The human who answers for an agent or service.
    pub owner: Option<Name>,
    /// The environments it is valid for.
    pub environments: Vec<EnvName>,
    /// The operation classes it may perform.
    pub allow: OpClassSet,
    /// Optional resource pattern narrowing what it may touch.
    pub resource_scope: Option<String>,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Claims {
    /// Refuses unless the token is valid for `env`.
    pub fn check_environment(&self, env: &EnvName) -> Result<(), VerifyError> {
        if self.environments.contains(env) {
            Ok(())
        } else {
            Err(VerifyError::WrongEnvironment {
                token_id: self.token_id.clone(),
                requested: env.clone(),
                allowed: self
                    .environments
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    /// The audit actor these claims describe.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.identity.to_string(),
            kind: self.kind,
            owner: self.owner.as_ref().map(Name::to_string),
            token_id: Some(self.token_id.clone()),
        }
    }
}

/// Bound on cached entries; past it the cache starts over rather than grow without limit.
const CACHE_CAPACITY: usize = 100_000;

#[derive(Default)]
struct CacheState {
    /// The store's change marker the entries were read under.
    marker: u64,
    /// Bumped by every in-process change, so a lookup that raced with one is not cached.
    generation: u64,
    entries: HashMap<TokenHash, Arc<Claims>>,
}

/// Valid tokens' claims, keyed by token hash. Entries are trusted only while the store reports
/// no change since they were read and no change was made through this authority; expiry is
/// checked against the clock on every hit.
#[derive(Default)]
pub(crate) struct Cache {
    // A std Mutex: held for a hash-map lookup, never across an await.
    state: Mutex<CacheState>,
}

impl Cache {
    pub(crate) fn invalidate(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.entries.clear();
        s.generation = s.generation.wrapping_add(1);
    }
}

impl Authority {
    /// Verifies a presented token at `now`. Pure check: the caller (a gateway door, the CLI)
    /// audits the decision it makes with the answer.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Arc<Claims>, VerifyError> {
        let token = Token::parse(token).map_err(|e| match e {
            FormatError::Malformed => VerifyError::Malformed,
            FormatError::BadChecksum => VerifyError::BadChecksum,
        })?;
        let hash = token.hash();
        let marker = self
            .store
            .change_marker()
            .map_err(|e| VerifyError::StoreUnavailable(e.to_string()))?;

        let generation = {
            let mut s = self.cache.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.marker != marker {
                s.entries.clear();
                s.marker = marker;
            }
            if let Some(c) = s.entries.get(&hash) {
                let c = Arc::clone(c);
                drop(s);
                return check_expiry(c, now);
            }
            s.generation
        };

        let claims = Arc::new(self.load(&hash)?);
        {
            let mut s = self.cache.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.generation == generation && s.marker == marker {
                if s.entries.len() >= CACHE_CAPACITY {
                    s.entries.clear();
                }
                s.entries.insert(hash, Arc::clone(&claims));
            }
        }
        check_expiry(claims, now)
    }

    fn load(&self, hash: &TokenHash) -> Result<Claims, VerifyError> {
        let unavailable =
            |e: airlock_store::StoreError| VerifyError::StoreUnavailable(e.to_string());
        let rec = self
            .store
            .token_by_hash(&hash.to_hex())
            .map_err(unavailable)?
            .ok_or(VerifyError::Unknown)?;
        let identity = self
            .store
            .identity(&rec.identity)
            .map_err(unavailable)?
            // A token whose identity row is gone cannot be tied to anyone: refuse it.
            .ok_or(VerifyError::Unknown)?;
        if !identity.enabled {
            return Err(VerifyError::IdentityDisabled {
                token_id: rec.id,
                identity: identity.name,
            });
        }
        if let Some(owner) = &identity.owner {
            let owner_enabled = self
                .store
                .identity(owner)
                .map_err(unavailable)?
                .is_some_and(|o| o.enabled && o.kind == IdentityKind::Human);
            if !owner_enabled {
                return Err(VerifyError::OwnerDisabled {
                    token_id: rec.id,
                    identity: identity.name.clone(),
                    owner: owner.clone(),
                });
            }
        }
        if rec.revoked_at.is_some() {
            return Err(VerifyError::Revoked {
                token_id: rec.id,
                reason: rec.revoke_reason.unwrap_or_else(|| "revoked".into()),
            });
        }
        Ok(Claims {
            token_id: rec.id,
            identity: identity.name,
            kind: identity.kind,
            owner: identity.owner,
            environments: rec.environments,
            allow: rec.allow,
            resource_scope: rec.resource_scope,
            issued_at: rec.issued_at,
            expires_at: rec.expires_at,
        })
    }

    /// Verifies a token for one environment and audits a refusal: what the CLI's
    /// `token verify` does, and what a door does before it has an operation to decide.
    pub fn authenticate(
        &self,
        token: &str,
        env: Option<&EnvName>,
        now: OffsetDateTime,
    ) -> Result<Arc<Claims>, VerifyError> {
        let result = self.verify(token, now).and_then(|c| match env {
            Some(e) => c.check_environment(e).map(|_| c),
            None => Ok(c),
        });
        if let Err(e) = &result {
            let actor = self.actor_of_refused(e);
            let wall = self.clock.now();
            let as_of = if (wall - now).abs() > time::Duration::seconds(1) {
                format!(" (checked as of {})", airlock_core::fmt_time(now))
            } else {
                String::new()
            };
            self.audit_refusal(
                AuditEvent {
                    time: wall,
                    actor,
                    action: "token.verify".into(),
                    resource: e.token_id().map(str::to_string),
                    environment: env.map(EnvName::to_string),
                    decision: Outcome::Deny,
                    reason: String::new(),
                    details: Default::default(),
                },
                &format!("{}: {e}{as_of}", e.code()),
            );
        }
        result
    }

    /// Who presented a refused token: its identity when the token is known, else unauthenticated.
    fn actor_of_refused(&self, e: &VerifyError) -> Actor {
        let mut actor = Actor::unauthenticated();
        let Some(id) = e.token_id() else {
            return actor;
        };
        actor.token_id = Some(id.to_string());
        if let Ok(Some(t)) = self.store.token(id) {
            if let Ok(Some(i)) = self.store.identity(&t.identity) {
                actor.id = i.name.to_string();
                actor.kind = i.kind;
                actor.owner = i.owner.map(|o| o.to_string());
            }
        }
        actor
    }
}

fn check_expiry(c: Arc<Claims>, now: OffsetDateTime) -> Result<Arc<Claims>, VerifyError> {
    if now < c.issued_at {
        return Err(VerifyError::NotYetValid {
            token_id: c.token_id.clone(),
            issued_at: c.issued_at,
        });
    }
    if c.expires_at <= now {
        Err(VerifyError::Expired {
            token_id: c.token_id.clone(),
            expired_at: c.expires_at,
        })
    } else {
        Ok(c)
    }
}

/// What the authority knows of a token found somewhere it should not be (`airlock scan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInspection {
    /// `live`, `expired`, `revoked`, `identity_disabled`, `owner_disabled`, `not_yet_valid`,
    /// `unknown` (not issued by this Airlock) or `malformed`.
    pub status: &'static str,
    /// The token's public id, when known.
    pub token_id: Option<String>,
    /// Whose token it is.
    pub identity: Option<String>,
    /// The human who answers for that identity.
    pub owner: Option<String>,
}

impl Authority {
    /// Looks a found token up by its hash, without auditing a verification: the answer to "is
    /// this leaked token still dangerous, and whose is it?".
    pub fn inspect_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<TokenInspection, VerifyError> {
        let status = match self.verify(token, now) {
            Ok(_) => "live",
            Err(VerifyError::Malformed | VerifyError::BadChecksum) => {
                return Ok(TokenInspection {
                    status: "malformed",
                    token_id: None,
                    identity: None,
                    owner: None,
                })
            }
            Err(VerifyError::StoreUnavailable(e)) => return Err(VerifyError::StoreUnavailable(e)),
            Err(e) => match e.code() {
                "expired" => "expired",
                "revoked" => "revoked",
                "identity_disabled" => "identity_disabled",
                "owner_disabled" => "owner_disabled",
                "not_yet_valid" => "not_yet_valid",
                _ => "unknown",
            },
        };
        let unavailable =
            |e: airlock_store::StoreError| VerifyError::StoreUnavailable(e.to_string());
        let Some(rec) = self
            .store
            .token_by_hash(&TokenHash::of(token).to_hex())
            .map_err(unavailable)?
        else {
            return Ok(TokenInspection {
                status: "unknown",
                token_id: None,
                identity: None,
                owner: None,
            });
        };
        let identity = self.store.identity(&rec.identity).map_err(unavailable)?;
        Ok(TokenInspection {
            status,
            token_id: Some(rec.id),
            identity: Some(rec.identity.to_string()),
            owner: identity.and_then(|i| i.owner).map(|o| o.to_string()),
        })
    }
}
