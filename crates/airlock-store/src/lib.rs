//! Storage for identities, token hashes, sealed secrets and the audit chain.
//!
//! [`Store`] is the seam: the embedded [`SqliteStore`] is the default, and a PostgreSQL backend
//! for several gateway nodes is a second implementation of the same trait. Every mutation takes
//! the [`AuditEvent`] that describes it and writes both in one transaction, so a crash can never
//! leave a change without its audit record or a record of a change that did not happen.

mod model;
mod signal;
mod sqlite;

pub use model::{
    ApprovalRecord, ApprovalState, AuditFilter, Identity, ResourceRecord, SecretInfo, SecretRecord,
    TokenRecord, TotpRecord, UnmanagedCredential,
};
pub use sqlite::SqliteStore;

use airlock_audit::{AuditEvent, AuditRecord, ChainError};
use airlock_core::Name;
use time::OffsetDateTime;

/// Why a storage operation failed. Callers on the decision path turn every one into a deny.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or created.
    #[error("cannot open store `{path}`: {message}")]
    Open {
        /// The store's location.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The store was written by a newer Airlock.
    #[error("store schema version {found} is newer than this airlock supports ({supported}); upgrade airlock")]
    NewerSchema {
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A row with the same key exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// A referenced row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value could not be decoded (the store was edited by hand or is corrupt).
    #[error("corrupt store row: {0}")]
    Corrupt(String),
    /// Something else in the store is sealed under these other master keys (their fingerprints,
    /// joined with `, `); nothing was written.
    #[error("the store holds secrets sealed under master key {0}")]
    OtherKeys(String),
    /// A precondition checked inside the write transaction failed (e.g. the identity was
    /// disabled by someone else a moment ago); nothing was written.
    #[error("{0}")]
    Refused(String),
    /// The store file does not exist and this command does not create one.
    #[error("store `{0}` does not exist; run `airlock init` to create it, or point `[store] path` in airlock.toml at the existing store")]
    Missing(String),
    /// The database reported an error.
    #[error("store error: {0}; check that the store file is an Airlock store, readable and writable, and that the disk is not full")]
    Database(rusqlite::Error),
}

// Not `#[from]`: that would make the SQLite error the source too, and `{:#}` would print it twice.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e)
    }
}

/// What every Airlock storage backend provides.
pub trait Store: Send + Sync {
    /// Adds an identity; fails with [`StoreError::Conflict`] if the name is taken.
    fn insert_identity(&self, identity: &Identity, audit: AuditEvent) -> Result<(), StoreError>;
    /// The identity called `name`.
    fn identity(&self, name: &Name) -> Result<Option<Identity>, StoreError>;
    /// Every identity, by name.
    fn identities(&self) -> Result<Vec<Identity>, StoreError>;
    /// Disables an identity and revokes all its live tokens in the same transaction; returns how
    /// many tokens were revoked.
    fn disable_identity(
        &self,
        name: &Name,
        at: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<u64, StoreError>;

    /// Moves an enabled identity's review date (and optionally its purpose) after its owner
    /// confirmed it is still needed; refused for a disabled identity.
    fn review_identity(
        &self,
        name: &Name,
        review_by: time::Date,
        purpose: Option<&str>,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;
    /// Gives an agent or service a new owner, who must be an enabled human.
    fn reassign_identity(
        &self,
        name: &Name,
        owner: &Name,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;

    /// Stores a newly issued token's hash and claims.
    fn insert_token(&self, token: &TokenRecord, audit: AuditEvent) -> Result<(), StoreError>;
    /// The token whose hash (hex) is `hash`.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// The token with public id `id`.
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Tokens, newest first, optionally of one identity.
    fn tokens(&self, identity: Option<&Name>) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; returns false if it was already revoked.
    fn revoke_token(
        &self,
        id: &str,
        at: OffsetDateTime,
        reason: &str,
        audit: AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Fails with [`StoreError::OtherKeys`] (naming them) if anything the store holds, other than
    /// the secret (name, environment) or TOTP factor (identity) about to be replaced, is sealed
    /// under a master key other than `key_id`.
    fn check_one_key(
        &self,
        key_id: &str,
        secret: Option<(&str, &str)>,
        totp: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Creates or replaces a sealed secret. With `one_key`, refuses ([`StoreError::OtherKeys`])
    /// when anything else the store holds is sealed under another master key, checked inside the
    /// write so that two writers with different keys cannot both succeed.
    fn put_secret(
        &self,
        secret: &SecretRecord,
        one_key: bool,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;
    /// The sealed secret `name` in `environment`.
    fn secret(&self, name: &str, environment: &str) -> Result<Option<SecretRecord>, StoreError>;
    /// Every sealed secret's metadata, without ciphertext.
    fn secrets(&self) -> Result<Vec<SecretInfo>, StoreError>;

    /// Adds or refreshes unmanaged credentials (by fingerprint) in one transaction; returns how
    /// many were new.
    fn put_unmanaged(
        &self,
        found: &[UnmanagedCredential],
        audit: AuditEvent,
    ) -> Result<u64, StoreError>;
    /// Every imported unmanaged credential, by file and line.
    fn unmanaged(&self) -> Result<Vec<UnmanagedCredential>, StoreError>;

    /// Appends one audit record and returns it numbered and chained.
    fn append_audit(&self, event: AuditEvent) -> Result<AuditRecord, StoreError>;
    /// Appends several audit records in one transaction (one fsync), in order.
    fn append_audit_batch(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError>;
    /// Adds or replaces a resource catalog entry.
    fn put_resource(&self, resource: &ResourceRecord, audit: AuditEvent) -> Result<(), StoreError>;
    /// Every resource catalog entry.
    fn resources(&self) -> Result<Vec<ResourceRecord>, StoreError>;
    /// Records an approval request, or returns the pending/granted one for the same digest and
    /// requester (`false` then: nothing was written).
    fn request_approval(
        &self,
        a: &ApprovalRecord,
        audit: AuditEvent,
    ) -> Result<(ApprovalRecord, bool), StoreError>;
    /// One approval request with its approvers.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Approval requests, newest first, optionally in one state.
    fn approvals(&self, state: Option<ApprovalState>) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// A granted, unused, unexpired approval for exactly this digest and requester.
    fn granted_approval(
        &self,
        digest: &str,
        requester: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Marks a granted approval used; true only for the one caller that flips it.
    fn consume_approval(
        &self,
        id: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Records a human's approve or deny vote; approves once enough distinct humans agreed, denies at once.
    #[allow(clippy::too_many_arguments)]
    fn vote_approval(
        &self,
        id: &str,
        approver: &str,
        factor: &str,
        approve: bool,
        reason: &str,
        now: OffsetDateTime,
        audit: AuditEvent,
    ) -> Result<ApprovalRecord, StoreError>;
    /// Marks requests past their expiry as expired and returns them.
    fn expire_approvals(&self, now: OffsetDateTime) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// Stores (or replaces) a human's sealed TOTP secret; `one_key` as for
    /// [`Store::put_secret`].
    fn put_totp(&self, t: &TotpRecord, one_key: bool, audit: AuditEvent) -> Result<(), StoreError>;
    /// A human's sealed TOTP secret.
    fn totp(&self, identity: &str) -> Result<Option<TotpRecord>, StoreError>;
    /// Accepts a TOTP time step once: false if it (or a later one) was already used.
    fn use_totp_step(&self, identity: &str, step: u64) -> Result<bool, StoreError>;
    /// When each token was last allowed to do something, from the audit log (token id -> time).
    fn token_last_used(
        &self,
    ) -> Result<std::collections::HashMap<String, OffsetDateTime>, StoreError>;
    /// Audit records matching `filter`, oldest first.
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Walks the whole audit chain; the outer error is a storage failure, the inner one the first
    /// broken record.
    fn verify_audit(&self) -> Result<Result<u64, ChainError>, StoreError>;

    /// A number that changes whenever identities or tokens change (from any process), so
    /// verification caches know when to drop what they hold. Audit appends leave it alone.
    fn change_marker(&self) -> Result<u64, StoreError>;
}
