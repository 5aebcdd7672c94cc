//! One error type per fallible operation. Messages say what was refused and what to do next,
//! and never carry a token or secret value.

use airlock_core::{EnvName, IdentityKind, Name};
use airlock_store::StoreError;
use time::{Date, OffsetDateTime};

/// Why an identity could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Agents and services need a human who answers for them.
    #[error("refused: {} needs an owner; pass `--owner HUMAN` naming an enabled human identity", .0.with_article())]
    MissingOwner(IdentityKind),
    /// Agents and services need a stated purpose.
    #[error("refused: {} needs a purpose; pass `--purpose \"what it is for\"`", .0.with_article())]
    MissingPurpose(IdentityKind),
    /// Humans are their own owners.
    #[error("refused: human identities have no owner; drop `--owner`")]
    HumanWithOwner,
    /// The named owner does not exist.
    #[error("refused: owner `{0}` does not exist; add it first with `airlock identity add {0} --kind human`")]
    OwnerNotFound(Name),
    /// Only humans may own identities.
    #[error("refused: owner `{0}` is a {1}; only a human can own an agent or service")]
    OwnerNotHuman(Name, IdentityKind),
    /// The named owner has been offboarded.
    #[error("refused: owner `{0}` is disabled; choose an enabled human as owner")]
    OwnerDisabled(Name),
    /// A review date must be in the future.
    #[error("refused: review date {0} is in the past; pass a future `--review-by YYYY-MM-DD`")]
    ReviewDateInPast(Date),
    /// An environment tag names no configured environment.
    #[error("refused: environment `{env}` is not configured; configured environments: {known}")]
    UnknownEnvironment {
        /// The unknown name.
        env: EnvName,
        /// The configured names.
        known: String,
    },
    /// The name is taken.
    #[error("refused: identity `{0}` already exists; see it with `airlock identity show {0}`")]
    Exists(Name),
    /// No such identity.
    #[error("identity `{0}` not found; list identities with `airlock identity list`")]
    NotFound(Name),
    /// Already offboarded.
    #[error(
        "identity `{0}` is already disabled; nothing changed (see `airlock identity show {0}`)"
    )]
    AlreadyDisabled(Name),
    /// The owner changed while the identity was being added.
    #[error("refused: {0}; choose an enabled human as owner")]
    Changed(String),
    /// A lifecycle change the store refused (disabled identity, owner not an enabled human).
    #[error("refused: {0}")]
    Refused(String),
    /// Text fields must be printable.
    #[error("refused: `--purpose` must be printable text without control characters")]
    BadPurpose,
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No such identity.
    #[error("refused: identity `{0}` not found; add it with `airlock identity add`")]
    UnknownIdentity(Name),
    /// The identity has been offboarded.
    #[error("refused: identity `{0}` is disabled; disabled identities cannot receive tokens")]
    IdentityDisabled(Name),
    /// The identity's owner has been offboarded: nobody answers for it.
    #[error("refused: `{identity}` is orphaned: its owner `{owner}` is disabled; disable it with `airlock identity disable {identity}` and add a replacement owned by an enabled human")]
    OwnerDisabled {
        /// The identity.
        identity: Name,
        /// Its disabled owner.
        owner: Name,
    },
    /// No environment given.
    #[error("refused: a token must name its environment; pass `--env NAME` (configured: {known})")]
    NoEnvironment {
        /// The configured names.
        known: String,
    },
    /// The environment is not configured.
    #[error("refused: environment `{env}` is not configured; configured environments: {known}")]
    UnknownEnvironment {
        /// The unknown name.
        env: EnvName,
        /// The configured names.
        known: String,
    },
    /// The identity is restricted to other environments.
    #[error("refused: identity `{identity}` may not hold tokens for `{env}` (see `airlock identity show {identity}`)")]
    EnvironmentNotAllowed {
        /// The identity.
        identity: Name,
        /// The environment asked for.
        env: EnvName,
    },
    /// An empty allowlist would be a token that can do nothing.
    #[error("refused: the token would allow nothing; pass `--allow` with read, write, destructive or privilege")]
    EmptyAllowlist,
    /// The lifetime exceeds the cap for this kind of identity.
    #[error("refused: {} token may live at most {max}, but {requested} was asked; pass a shorter `--ttl` (at most `{max}`)", kind.with_article())]
    TtlTooLong {
        /// The identity kind.
        kind: IdentityKind,
        /// The lifetime asked for.
        requested: String,
        /// The cap in force.
        max: String,
    },
    /// A zero lifetime.
    #[error("refused: `--ttl` must be longer than zero")]
    ZeroTtl,
    /// The random number generator failed.
    #[error("the operating system's random number generator failed; no token was issued")]
    Random,
    /// The identity changed while the token was being issued (disabled, owner disabled).
    #[error("refused: {0}; no token was issued")]
    Changed(String),
    /// Below the shortest lifetime worth issuing.
    #[error("refused: `--ttl` must be at least 1m")]
    TtlTooShort,
    /// The store failed; nothing was issued.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a presented token is refused. Every variant is a deny.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    /// Not the shape of an Airlock token.
    #[error("token refused: malformed (not an Airlock `alk_` token of the right length); check you copied the whole token")]
    Malformed,
    /// The checksum does not match.
    #[error("token refused: malformed (checksum mismatch: the token is mistyped or damaged); copy it again")]
    BadChecksum,
    /// Well-formed, but no such token was ever issued here.
    #[error("token refused: unknown to this Airlock; ask the identity's owner to issue one with `airlock token issue`")]
    Unknown,
    /// Past its expiry.
    #[error("token refused: {token_id} expired at {}; ask the identity's owner for a new token", airlock_core::fmt_time(*expired_at))]
    Expired {
        /// The token's public id.
        token_id: String,
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// Revoked.
    #[error("token refused: {token_id} was revoked ({reason}); ask the identity's owner for a new token")]
    Revoked {
        /// The token's public id.
        token_id: String,
        /// Why.
        reason: String,
    },
    /// Presented before its issue time (a clock set back, or a check `--at` an earlier time).
    #[error("token refused: {token_id} is not valid before {}", airlock_core::fmt_time(*issued_at))]
    NotYetValid {
        /// The token's public id.
        token_id: String,
        /// When it was issued.
        issued_at: OffsetDateTime,
    },
    /// The human who owns the token's agent or service is disabled: nobody answers for it.
    #[error("token refused: {token_id} belongs to `{identity}`, whose owner `{owner}` is disabled; the identity needs an enabled owner")]
    OwnerDisabled {
        /// The token's public id.
        token_id: String,
        /// The identity.
        identity: Name,
        /// Its disabled owner.
        owner: Name,
    },
    /// The identity it belongs to is disabled.
    #[error("token refused: {token_id} belongs to `{identity}`, which is disabled")]
    IdentityDisabled {
        /// The token's public id.
        token_id: String,
        /// The identity.
        identity: Name,
    },
    /// Valid, but for other environments.
    #[error("token refused: {token_id} is for {allowed}, not `{requested}`; use a token issued for `{requested}`")]
    WrongEnvironment {
        /// The token's public id.
        token_id: String,
        /// The environment the caller needs.
        requested: EnvName,
        /// The token's environments.
        allowed: String,
    },
    /// The store could not be asked; fail closed.
    #[error("token refused: the credential store is unavailable ({0}); retry, and tell the operator if it persists")]
    StoreUnavailable(String),
}

impl VerifyError {
    /// A short stable code for scripts and audit filters.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::BadChecksum => "bad_checksum",
            VerifyError::Unknown => "unknown",
            VerifyError::Expired { .. } => "expired",
            VerifyError::Revoked { .. } => "revoked",
            VerifyError::IdentityDisabled { .. } => "identity_disabled",
            VerifyError::OwnerDisabled { .. } => "owner_disabled",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::WrongEnvironment { .. } => "wrong_environment",
            VerifyError::StoreUnavailable(_) => "store_unavailable",
        }
    }

    /// The public id of the refused token, where it is known.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            VerifyError::Expired { token_id, .. }
            | VerifyError::Revoked { token_id, .. }
            | VerifyError::IdentityDisabled { token_id, .. }
            | VerifyError::OwnerDisabled { token_id, .. }
            | VerifyError::NotYetValid { token_id, .. }
            | VerifyError::WrongEnvironment { token_id, .. } => Some(token_id),
            _ => None,
        }
    }
}

/// Why a token could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// No such token id.
    #[error("token `{0}` not found; list tokens with `airlock token list`")]
    NotFound(String),
    /// Nothing to do.
    #[error("token `{0}` was already revoked")]
    AlreadyRevoked(String),
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secret names follow identity naming rules.
    #[error(
        "refused: invalid secret name `{0}`: use 1-64 characters of a-z, 0-9, `-`, `_` or `.`"
    )]
    InvalidName(String),
    /// The environment is not configured.
    #[error("refused: environment `{env}` is not configured; configured environments: {known}")]
    UnknownEnvironment {
        /// The unknown name.
        env: EnvName,
        /// The configured names.
        known: String,
    },
    /// Nothing was read from stdin.
    #[error("refused: the secret value is empty; pipe it on stdin, e.g. `airlock secret set NAME --env ENV < file`")]
    Empty,
    /// No such secret.
    #[error("secret `{name}` for {env} not found; list secrets with `airlock secret list`")]
    NotFound {
        /// The name.
        name: String,
        /// The environment.
        env: EnvName,
    },
    /// The secret was sealed under another master key.
    // Setting it again under the new key is refused while the store holds anything sealed under
    // the old one (see `KeyMismatch`), so the way out is the key that sealed it.
    #[error("secret was sealed with master key {sealed_with} but the current key is {current}; use the key file or AIRLOCK_MASTER_KEY that sealed it (restore it from your backup); if that key is lost, set the secret again with `airlock secret set --new-master-key`")]
    WrongKey {
        /// The key that sealed it.
        sealed_with: String,
        /// The key in use.
        current: String,
    },
    /// The store already holds secrets sealed under another master key.
    #[error("refused: the store's secrets are sealed under master key {store_key}, but this master key is {given_key}; use the key file or AIRLOCK_MASTER_KEY that sealed them; if that key is lost, pass --new-master-key and set each of them again (nothing was changed)")]
    KeyMismatch {
        /// Fingerprint(s) of the key(s) that sealed what the store holds.
        store_key: String,
        /// Fingerprint of the key given.
        given_key: String,
    },
    /// AEAD failure.
    #[error(transparent)]
    Seal(#[from] airlock_seal::SealError),
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
