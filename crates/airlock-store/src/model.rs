//! The rows the store keeps.

use airlock_audit::Actor;
use airlock_core::{EnvName, IdentityKind, Name, OpClassSet, Outcome};
use serde::Serialize;
use time::{Date, OffsetDateTime};

/// A human, agent or service that can hold tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Unique name.
    pub name: Name,
    /// Human, agent or service.
    pub kind: IdentityKind,
    /// The human who answers for an agent or service; none for humans.
    pub owner: Option<Name>,
    /// Why it exists; required for agents and services, so nobody has to guess later.
    pub purpose: Option<String>,
    /// When someone must confirm it is still needed.
    #[serde(serialize_with = "date_opt")]
    pub review_by: Option<Date>,
    /// Whether AI agents can read this identity's credentials (a human's laptop shared with an agent).
    pub agent_accessible: bool,
    /// The environments it may hold tokens for; empty means any configured environment.
    pub environments: Vec<EnvName>,
    /// False once offboarded; a disabled identity's tokens never verify.
    pub enabled: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who added it.
    pub created_by: String,
    /// When it was disabled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

/// A token's claims and status. The token string itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Public id (`tok_…`), safe to log.
    pub id: String,
    /// SHA-256 of the token string, hex.
    #[serde(skip)]
    pub hash: String,
    /// The identity it authenticates.
    pub identity: Name,
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
    /// Who issued it.
    pub issuer: String,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
}

/// A sealed upstream secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// Name, unique per environment.
    pub name: String,
    /// The environment it is for.
    pub environment: EnvName,
    /// Fingerprint of the master key that sealed it.
    pub key_id: String,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// AEAD ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// When it was first set.
    pub created_at: OffsetDateTime,
    /// Who set it last.
    pub updated_by: String,
    /// When it was last set.
    pub updated_at: OffsetDateTime,
}

/// What listings show of a sealed secret: never the value, not even encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    /// Name.
    pub name: String,
    /// Environment.
    pub environment: EnvName,
    /// Fingerprint of the master key that sealed it.
    pub key_id: String,
    /// When it was first set.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last set.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who set it last.
    pub updated_by: String,
}

/// Which audit records to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this kind of actor.
    pub actor_kind: Option<IdentityKind>,
    /// Only this actor id (identity name or `local:USER`).
    pub actor_id: Option<String>,
    /// Only this decision.
    pub decision: Option<Outcome>,
    /// Only records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only records before this time.
    pub until: Option<OffsetDateTime>,
    /// At most this many (the newest ones).
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Whether an actor would pass the actor filters; used where the filter is applied in memory.
    pub fn matches_actor(&self, a: &Actor) -> bool {
        self.actor_kind.is_none_or(|k| k == a.kind)
            && self.actor_id.as_ref().is_none_or(|i| *i == a.id)
    }
}

/// A resource catalog entry kept in the store (`airlock resource add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceRecord {
    /// An exact resource id or a `*` pattern.
    pub pattern: String,
    /// The environment it belongs to.
    pub environment: EnvName,
    /// The kind of resource, when known.
    pub kind: Option<String>,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who added it.
    pub created_by: String,
}

fn date_opt<S: serde::Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    // ISO 8601 (`2027-02-21`), not time's default (year, ordinal) tuple.
    match d {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for humans.
    Pending,
    /// Granted and not yet used.
    Approved,
    /// Refused by a human; final.
    Denied,
    /// Used by its one execution.
    Consumed,
    /// Nobody decided in time, or the grant was not used in time.
    Expired,
}

impl ApprovalState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Consumed => "consumed",
            ApprovalState::Expired => "expired",
        }
    }
}

impl std::str::FromStr for ApprovalState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "denied" => ApprovalState::Denied,
            "consumed" => ApprovalState::Consumed,
            "expired" => ApprovalState::Expired,
            other => return Err(format!("unknown approval state `{other}`")),
        })
    }
}

/// An operation waiting for, or granted by, human approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRecord {
    /// Public id (`apr_…`).
    pub id: String,
    /// The operation digest the approval is bound to (principal, resource, operation, body).
    pub digest: String,
    /// The identity that asked.
    pub requester: String,
    /// Its kind.
    pub requester_kind: IdentityKind,
    /// Its owner.
    pub owner: Option<String>,
    /// The token it presented.
    pub token_id: String,
    /// The classified action(s).
    pub action: String,
    /// The operation as a human reads it (method and path, or statement).
    pub operation: String,
    /// The resource(s).
    pub resource: String,
    /// The environment.
    pub environment: String,
    /// Why approval is needed.
    pub reason: String,
    /// When it was asked.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the request (or the grant) lapses.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where it stands.
    pub state: ApprovalState,
    /// How many distinct humans must approve.
    pub approvals_needed: u32,
    /// Who approved so far.
    pub approvers: Vec<String>,
    /// When it was approved or denied.
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The decider's reason.
    pub decision_reason: Option<String>,
    /// When its one execution happened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub consumed_at: Option<OffsetDateTime>,
}

/// A human's TOTP secret, sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The human.
    pub identity: String,
    /// Fingerprint of the sealing key.
    pub key_id: String,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// AEAD ciphertext.
    pub ciphertext: Vec<u8>,
    /// The last accepted time step (replay guard).
    pub last_step: Option<u64>,
    /// When it was enrolled.
    pub created_at: OffsetDateTime,
}

/// A credential found outside Airlock (by `airlock scan`) and imported into the inventory, so
/// that somebody answers for it. Only its redacted form is kept, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmanagedCredential {
    /// The scanner's stable fingerprint (rule, file, secret); the key, so a re-import updates.
    pub fingerprint: String,
    /// The scanner rule that found it, e.g. `aws-access-key-id`: what kind of credential it is.
    pub kind: String,
    /// What the rule finds, for humans.
    pub description: String,
    /// The file it was found in (archive members as `outer.zip!inner`).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// Where inside a non-file source (a chat message), if any.
    pub location: Option<String>,
    /// Recognisable prefix and last four characters; never the whole secret.
    pub redacted: String,
    /// Whether AI agents can read where it was found; assumed unless the importer says not.
    pub agent_readable: bool,
    /// When it was first imported.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// When an import last reported it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// Who imported it last.
    pub imported_by: String,
}
