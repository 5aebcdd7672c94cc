//! Airlock's core vocabulary, shared by every other crate.
//!
//! Nothing here performs I/O: these are the values that flow along the one decision path
//! (authenticate -> classify -> decide -> forward -> audit), so every door and every store
//! speaks the same words.

mod class;
mod clock;
mod name;
mod secret;

pub use class::{OpClass, OpClassSet, ParseOpClassError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use name::{EnvName, IdentityKind, InvalidName, Name, ParseKindError};
pub use secret::Secret;

/// The outcome of one decision, recorded in every audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was permitted and carried out.
    Allow,
    /// The action was refused.
    Deny,
    /// The action waits for an out-of-band human approval.
    NeedsApproval,
}

impl Outcome {
    /// The stable lowercase name used in storage, audit JSON and CLI filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::NeedsApproval => "needs_approval",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Outcome::Allow),
            "deny" => Ok(Outcome::Deny),
            "needs_approval" => Ok(Outcome::NeedsApproval),
            other => Err(format!(
                "unknown decision `{other}`, expected one of allow, deny, needs_approval"
            )),
        }
    }
}
