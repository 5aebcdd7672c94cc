//! Operation classes, ordered by how much damage an operation of that class can do.

use std::fmt;
use std::str::FromStr;

/// How dangerous an operation is. The derive order is the danger order, so `max()` over the
/// parts of a request gives the class of the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    /// Observes state without changing it.
    Read,
    /// Changes state in a way that can be undone.
    Write,
    /// Deletes or irreversibly changes state; also what anything unclassifiable counts as.
    Destructive,
    /// Changes who may do what (roles, grants, credentials, session authority).
    Privilege,
}

impl OpClass {
    /// Every class, least dangerous first.
    pub const ALL: [OpClass; 4] = [
        OpClass::Read,
        OpClass::Write,
        OpClass::Destructive,
        OpClass::Privilege,
    ];

    /// The stable lowercase name used in config, storage and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            OpClass::Read => "read",
            OpClass::Write => "write",
            OpClass::Destructive => "destructive",
            OpClass::Privilege => "privilege",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for OpClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no operation class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation class `{0}`, expected one of read, write, destructive, privilege")]
pub struct ParseOpClassError(pub String);

impl FromStr for OpClass {
    type Err = ParseOpClassError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(OpClass::Read),
            "write" => Ok(OpClass::Write),
            "destructive" => Ok(OpClass::Destructive),
            "privilege" => Ok(OpClass::Privilege),
            _ => Err(ParseOpClassError(s.to_string())),
        }
    }
}

/// A set of operation classes: a token's allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpClassSet(u8);

impl OpClassSet {
    /// The empty set: allows nothing.
    pub const fn empty() -> Self {
        OpClassSet(0)
    }

    /// Adds a class to the set.
    pub fn insert(&mut self, class: OpClass) {
        self.0 |= class.bit();
    }

    /// Whether the set allows `class`.
    pub fn contains(self, class: OpClass) -> bool {
        self.0 & class.bit() != 0
    }

    /// Whether no class is allowed.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The classes in the set, least dangerous first.
    pub fn iter(self) -> impl Iterator<Item = OpClass> {
        OpClass::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// Parses a comma-separated list such as `read,write`.
    pub fn parse_list(s: &str) -> Result<Self, ParseOpClassError> {
        let mut set = OpClassSet::empty();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            set.insert(part.parse()?);
        }
        Ok(set)
    }
}

impl FromIterator<OpClass> for OpClassSet {
    fn from_iter<I: IntoIterator<Item = OpClass>>(iter: I) -> Self {
        let mut set = OpClassSet::empty();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Display for OpClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for c in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(c.as_str())?;
        }
        Ok(())
    }
}

impl serde::Serialize for OpClassSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for OpClassSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<OpClass> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_most_dangerous_part_decides_the_class_of_the_whole() {
        let parts = [OpClass::Read, OpClass::Destructive, OpClass::Write];
        assert_eq!(parts.iter().max(), Some(&OpClass::Destructive));
    }

    #[test]
    fn an_unknown_class_word_is_refused_with_the_choices() {
        let err = OpClassSet::parse_list("read,delete").unwrap_err();
        assert!(err.to_string().contains("`delete`"));
        assert!(err.to_string().contains("read, write, destructive, privilege"));
    }

    proptest! {
        #[test]
        fn class_sets_round_trip_through_their_text(bits in 0u8..16) {
            let set: OpClassSet = OpClass::ALL.into_iter().filter(|c| bits & c.bit() != 0).collect();
            let back = OpClassSet::parse_list(&set.to_string()).unwrap();
            prop_assert_eq!(set, back);
        }
    }
}
