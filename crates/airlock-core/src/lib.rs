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

/// Formats an instant for people and audit text: RFC 3339 to the second, UTC.
pub fn fmt_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(f)
        .unwrap_or_else(|_| t.to_string())
}

/// Formats a lifetime compactly: `45m`, `1h`, `25h`, `1h30m`, `7d`.
pub fn fmt_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s >= 86_400 * 2 {
        return format!("{}d", s / 86_400);
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

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
