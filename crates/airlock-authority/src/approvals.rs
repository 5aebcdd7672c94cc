//! Human approvals: TOTP enrolment and the approve/deny votes only a human with a second factor
//! can cast. An agent that found a human's Airlock token still lacks the factor.

use crate::{event, Authority, Claims, KeyChange, Sealed};
use airlock_approval::totp::{TotpError, TotpSecret};
use airlock_audit::Actor;
use airlock_core::{IdentityKind, Name, Outcome};
use airlock_seal::MasterKey;
use airlock_store::{ApprovalRecord, StoreError, TotpRecord};

/// Why an approval vote or a TOTP enrolment was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Only humans approve.
    #[error("refused: only a human can approve or deny; `{identity}` is {}", kind.with_article())]
    NotHuman {
        /// Who tried.
        identity: Name,
        /// Its kind.
        kind: IdentityKind,
    },
    /// The human has no second factor enrolled.
    #[error("refused: `{0}` has no TOTP second factor; enrol with `airlock identity totp {0}`")]
    NoTotp(Name),
    /// The code was wrong, malformed or already used.
    #[error("refused: {0}")]
    Totp(#[from] TotpError),
    /// Too many wrong codes: the second factor is locked for a while.
    #[error("refused: too many wrong TOTP codes for `{0}`; second-factor checks are locked for 15 minutes (the attempts are in the audit log)")]
    Locked(Name),
    /// The approver's token does not cover the operation's environment.
    #[error("refused: your token is for {token_envs}, but this operation is in {needed}; approve with a token for {needed}")]
    OutOfScope {
        /// The approver token's environments.
        token_envs: String,
        /// The approval's environment(s).
        needed: String,
    },
    /// The code's time step was already used (checked atomically in the store).
    #[error("refused: that TOTP code was already used; wait for the next code")]
    Replayed,
    /// No such approval.
    #[error("approval `{0}` not found; list them with `airlock approvals list`")]
    NotFound(String),
    /// The requester may not approve its own request.
    #[error("refused: `{0}` asked for this operation and cannot approve it; another human must")]
    Requester(Name),
    /// The store refused (not pending, expired, already voted).
    #[error("refused: {0}")]
    State(String),
    /// TOTP enrolment is for humans.
    #[error("refused: `{0}` is not a human; only humans enrol a second factor")]
    EnrolNotHuman(Name),
    /// The human already has a second factor and the caller did not ask to replace it.
    #[error("refused: `{0}` already has a TOTP second factor; replacing it stops the current one from working: run `airlock identity totp {0} --replace` if that is intended")]
    TotpExists(Name),
    /// No such identity.
    #[error("identity `{0}` not found")]
    UnknownIdentity(Name),
    /// The store already holds secrets sealed under another master key.
    #[error("refused: the store's secrets are sealed under master key {store_key}, but this master key is {given_key}; use the key file or AIRLOCK_MASTER_KEY that sealed them; if that key is lost, pass --new-master-key and set each of them again (nothing was changed)")]
    KeyMismatch {
        /// Fingerprint(s) of the key(s) that sealed what the store holds.
        store_key: String,
        /// Fingerprint of the key given.
        given_key: String,
    },
    /// The sealed TOTP secret does not open.
    #[error(transparent)]
    Seal(#[from] airlock_seal::SealError),
    /// Randomness failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Wrong codes tolerated within [`TOTP_WINDOW`] before the second factor locks.
const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, and so how long a lock lasts.
const TOTP_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn totp_context(name: &str) -> Vec<u8> {
    airlock_seal::context(&format!("totp/{name}"), "totp")
}

impl Authority {
    /// Enrols (or replaces) a human's TOTP second factor; the secret is sealed with the master key
    /// and returned once so the caller can show the `otpauth://` URI.
    pub fn enroll_totp(
        &self,
        actor: &Actor,
        key: &MasterKey,
        name: &Name,
        replace: bool,
        keys: KeyChange,
    ) -> Result<TotpSecret, ApprovalError> {
        let identity = self
            .store
            .identity(name)?
            .ok_or_else(|| ApprovalError::UnknownIdentity(name.clone()))?;
        if identity.kind != IdentityKind::Human {
            return Err(ApprovalError::EnrolNotHuman(name.clone()));
        }
        // An approver's factor is what stands between an agent and a destructive operation:
        // swapping it is never a side effect of a retyped command.
        let replacing = self.store.totp(name.as_str())?.is_some();
        if replacing && !replace {
            return Err(ApprovalError::TotpExists(name.clone()));
        }
        let now = self.clock.now();
        let mut ev = event(actor, now, "identity.totp_enrol");
        ev.resource = Some(name.to_string());
        // A factor sealed under a second key would not open at approval time.
        let replaced = match replacing {
            true => Sealed::Totp(name.as_str()),
            false => Sealed::Nothing,
        };
        let left_behind = self.other_sealing_keys(key, replaced)?;
        if let (Some(store_key), KeyChange::Refuse) = (&left_behind, keys) {
            let e = ApprovalError::KeyMismatch {
                store_key: store_key.clone(),
                given_key: key.id(),
            };
            self.audit_refusal(ev, &e.to_string());
            return Err(e);
        }
        let secret = TotpSecret::generate().map_err(|_| ApprovalError::Random)?;
        let sealed = key.seal(&totp_context(name.as_str()), secret.expose_bytes())?;
        ev.reason = match replacing {
            true => {
                format!("TOTP second factor of `{name}` replaced; the previous one no longer works")
            }
            false => format!("TOTP second factor enrolled for `{name}`"),
        };
        if let Some(old) = &left_behind {
            ev.reason.push_str(&format!(
                "; a new master key by the operator's choice: what key {old} sealed stays unusable until set again"
            ));
        }
        let record = TotpRecord {
            identity: name.to_string(),
            key_id: key.id(),
            nonce: sealed.nonce.to_vec(),
            ciphertext: sealed.ciphertext,
            last_step: None,
            created_at: now,
        };
        // As for secrets: the check inside the write holds against a concurrent enrolment.
        if let Err(e) = self
            .store
            .put_totp(&record, keys == KeyChange::Refuse, ev.clone())
        {
            return Err(match e {
                StoreError::OtherKeys(store_key) => {
                    let e = ApprovalError::KeyMismatch {
                        store_key,
                        given_key: key.id(),
                    };
                    self.audit_refusal(ev, &e.to_string());
                    e
                }
                other => other.into(),
            });
        }
        Ok(secret)
    }

    /// Whether a human has a second factor enrolled.
    pub fn has_totp(&self, name: &Name) -> Result<bool, ApprovalError> {
        Ok(self.store.totp(name.as_str())?.is_some())
    }

    fn check_totp(&self, key: &MasterKey, name: &Name, code: &str) -> Result<(), ApprovalError> {
        // Six digits are guessable without a limit: after MAX_FAILURES wrong codes within the
        // window, the identity's second factor is locked. Counted per identity, so spreading
        // guesses over connections does not help.
        let now = std::time::Instant::now();
        {
            let mut f = self.totp_failures.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((count, since)) = f.get(name.as_str()) {
                if now.duration_since(*since) > TOTP_WINDOW {
                    f.remove(name.as_str());
                } else if *count >= MAX_FAILURES {
                    return Err(ApprovalError::Locked(name.clone()));
                }
            }
        }
        let r = self.check_totp_once(key, name, code);
        if matches!(
            r,
            Err(ApprovalError::Totp(_)) | Err(ApprovalError::Replayed)
        ) {
            let mut f = self.totp_failures.lock().unwrap_or_else(|p| p.into_inner());
            let e = f.entry(name.to_string()).or_insert((0, now));
            e.0 += 1;
        } else if r.is_ok() {
            self.totp_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name.as_str());
        }
        r
    }

    fn check_totp_once(
        &self,
        key: &MasterKey,
        name: &Name,
        code: &str,
    ) -> Result<(), ApprovalError> {
        let rec = self
            .store
            .totp(name.as_str())?
            .ok_or_else(|| ApprovalError::NoTotp(name.clone()))?;
        let nonce: [u8; 24] = rec
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| ApprovalError::Seal(airlock_seal::SealError::Open))?;
        let bytes = key.open(
            &totp_context(name.as_str()),
            &airlock_seal::Sealed {
                nonce,
                ciphertext: rec.ciphertext,
            },
        )?;
        let secret = TotpSecret::from_bytes(bytes.expose())
            .map_err(|_| ApprovalError::Seal(airlock_seal::SealError::Open))?;
        let step = secret.verify(
            code.trim(),
            self.clock.now().unix_timestamp(),
            rec.last_step,
        )?;
        // The store accepts each step once, atomically: two racing uses of one code cannot both pass.
        if !self.store.use_totp_step(name.as_str(), step)? {
            return Err(ApprovalError::Replayed);
        }
        Ok(())
    }

    /// Checks a human's TOTP code (consuming its time step) without voting: the console's login.
    /// A refusal is audited.
    pub fn verify_second_factor(
        &self,
        human: &Claims,
        key: &MasterKey,
        code: &str,
    ) -> Result<(), ApprovalError> {
        let now = self.clock.now();
        let mut ev = event(&human.actor(), now, "console.login");
        ev.details.insert("factor".into(), "totp".into());
        let r = if human.kind != IdentityKind::Human {
            Err(ApprovalError::NotHuman {
                identity: human.identity.clone(),
                kind: human.kind,
            })
        } else {
            self.check_totp(key, &human.identity, code)
        };
        match r {
            Ok(()) => {
                ev.reason = format!(
                    "`{}` signed in to the console with token and TOTP",
                    human.identity
                );
                self.store.append_audit(ev)?;
                Ok(())
            }
            Err(e) => {
                self.audit_refusal(ev, &e.to_string());
                Err(e)
            }
        }
    }

    /// A vote cast from a console session that was opened with token and TOTP: the session is
    /// the second factor, recorded as `totp-session`.
    pub fn vote_in_session(
        &self,
        approver: &Claims,
        id: &str,
        approve: bool,
        reason: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        self.vote_with(approver, id, approve, reason, "totp-session", |_| Ok(()))
    }

    /// A human's approve (or deny) vote on a pending request, with their TOTP code. Every
    /// refusal is audited with the caller's identity and kind.
    pub fn vote(
        &self,
        approver: &Claims,
        key: &MasterKey,
        id: &str,
        code: &str,
        approve: bool,
        reason: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        self.vote_with(approver, id, approve, reason, "totp", |a| {
            self.check_totp(key, &a.identity, code)
        })
    }

    fn vote_with(
        &self,
        approver: &Claims,
        id: &str,
        approve: bool,
        reason: &str,
        factor: &str,
        second_factor: impl FnOnce(&Claims) -> Result<(), ApprovalError>,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let now = self.clock.now();
        let verb = if approve { "approve" } else { "deny" };
        let mut ev = event(&approver.actor(), now, &format!("approval.{verb}"));
        ev.resource = Some(id.to_string());
        ev.details.insert("approval".into(), id.to_string());
        ev.details.insert("factor".into(), factor.into());
        let result = (|| {
            if approver.kind != IdentityKind::Human {
                return Err(ApprovalError::NotHuman {
                    identity: approver.identity.clone(),
                    kind: approver.kind,
                });
            }
            let rec = self
                .store
                .approval(id)?
                .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
            if rec.requester == approver.identity.as_str() {
                return Err(ApprovalError::Requester(approver.identity.clone()));
            }
            // An approver answers for the environments their own token covers: a staging
            // token does not approve production deletes.
            let covered = rec
                .environment
                .split(',')
                .filter(|e| !e.is_empty())
                .all(|e| approver.environments.iter().any(|t| t.as_str() == e));
            if !covered {
                return Err(ApprovalError::OutOfScope {
                    token_envs: approver
                        .environments
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    needed: rec.environment.clone(),
                });
            }
            second_factor(approver)?;
            Ok(rec)
        })();
        let rec = match result {
            Ok(r) => r,
            Err(e) => {
                self.audit_refusal(ev, &e.to_string());
                return Err(e);
            }
        };
        ev.environment = Some(rec.environment.clone());
        ev.decision = if approve {
            Outcome::Allow
        } else {
            Outcome::Deny
        };
        ev.reason = format!(
            "{} {verb}d {} ({} by `{}`: {}){}",
            approver.identity,
            rec.id,
            rec.operation,
            rec.requester,
            rec.resource,
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        );
        let refusal = ev.clone();
        match self.store.vote_approval(
            id,
            approver.identity.as_str(),
            factor,
            approve,
            reason,
            now,
            ev,
        ) {
            Ok(r) => Ok(r),
            Err(StoreError::Refused(why)) => {
                let e = ApprovalError::State(why);
                self.audit_refusal(refusal, &e.to_string());
                Err(e)
            }
            Err(e) => Err(e.into()),
        }
    }
}
