//! Validated names for identities and environments, and the kinds of identity.

use std::fmt;
use std::str::FromStr;

/// A name that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: use 1-64 characters of a-z, 0-9, `-`, `_` or `.`, starting with a letter or digit")]
pub struct InvalidName {
    /// What was being named (identity, environment).
    pub what: &'static str,
    /// The offending text.
    pub value: String,
}

fn valid(s: &str) -> bool {
    // INVARIANT: names are safe to print, to use as map keys and in Cedar entity ids unquoted.
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

macro_rules! name_type {
    ($ty:ident, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn new(s: &str) -> Result<Self, InvalidName> {
                if valid(s) {
                    Ok($ty(s.to_string()))
                } else {
                    Err(InvalidName {
                        what: $what,
                        value: s.to_string(),
                    })
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::new(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(Name, "identity name", "The name of an identity: `alice`, `deploy-bot`.");
name_type!(EnvName, "environment name", "The name of an environment: `staging`, `production`.");

/// Who an identity is: the audit's actor kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A person; the only kind that may own other identities or approve.
    Human,
    /// An AI agent acting for an owner.
    Agent,
    /// A non-AI program acting for an owner.
    Service,
}

impl IdentityKind {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Human => "human",
            IdentityKind::Agent => "agent",
            IdentityKind::Service => "service",
        }
    }

    /// Whether identities of this kind need an owner, a purpose and a review date.
    pub fn needs_owner(self) -> bool {
        !matches!(self, IdentityKind::Human)
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no identity kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identity kind `{0}`, expected one of human, agent, service")]
pub struct ParseKindError(pub String);

impl FromStr for IdentityKind {
    type Err = ParseKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(IdentityKind::Human),
            "agent" => Ok(IdentityKind::Agent),
            "service" => Ok(IdentityKind::Service),
            other => Err(ParseKindError(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_refuse_what_would_be_ambiguous_in_logs_and_policies() {
        for bad in ["", "Alice", "a b", "-x", "x\"y", "prod\n", &"a".repeat(65)] {
            assert!(Name::new(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["alice", "deploy-bot", "svc.billing_2", "0day"] {
            assert!(Name::new(good).is_ok(), "{good:?} should be accepted");
        }
    }

    proptest! {
        #[test]
        fn name_validation_never_panics_and_accepted_names_round_trip(s in "\\PC{0,80}") {
            if let Ok(n) = Name::new(&s) {
                prop_assert_eq!(n.as_str(), s.as_str());
                let json = serde_json::to_string(&n).unwrap();
                let back: Name = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(back, n);
            }
        }
    }
}
