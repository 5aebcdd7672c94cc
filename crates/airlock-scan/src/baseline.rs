//! Baselines: remember today's findings by fingerprint, report only new ones tomorrow.

use crate::finding::Finding;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{Read, Write};

/// One remembered finding. The fingerprint is what matters; the rest helps a reviewer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Line-independent fingerprint.
    pub fingerprint: String,
    /// Rule that found it.
    pub rule_id: String,
    /// Where it was.
    pub file: String,
    /// Redacted secret.
    pub redacted: String,
}

/// A baseline file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version, 1.
    pub version: u32,
    /// Known findings.
    pub findings: Vec<Entry>,
}

/// Why a baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// I/O failure.
    #[error("baseline i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Not a baseline this version understands.
    #[error("not a valid baseline file: {0}")]
    Format(#[from] serde_json::Error),
    /// A future format.
    #[error("baseline version {0} is not supported (expected 1)")]
    Version(u32),
}

impl Baseline {
    /// A baseline of `findings`.
    pub fn of(findings: &[Finding]) -> Baseline {
        let mut seen = HashSet::new();
        let findings = findings
            .iter()
            .filter(|f| seen.insert(f.fingerprint.clone()))
            .map(|f| Entry {
                fingerprint: f.fingerprint.clone(),
                rule_id: f.rule_id.clone(),
                file: f.file.clone(),
                redacted: f.redacted.clone(),
            })
            .collect();
        Baseline {
            version: 1,
            findings,
        }
    }

    /// Reads a baseline.
    pub fn read<R: Read>(r: R) -> Result<Baseline, BaselineError> {
        let b: Baseline = serde_json::from_reader(r)?;
        if b.version != 1 {
            return Err(BaselineError::Version(b.version));
        }
        Ok(b)
    }

    /// Writes it as pretty JSON.
    pub fn write<W: Write>(&self, mut w: W) -> Result<(), BaselineError> {
        serde_json::to_writer_pretty(&mut w, self)?;
        writeln!(w)?;
        Ok(())
    }

    /// Removes from `findings` those the baseline knows.
    pub fn filter(&self, findings: &mut Vec<Finding>) {
        let known: HashSet<&str> = self
            .findings
            .iter()
            .map(|e| e.fingerprint.as_str())
            .collect();
        findings.retain(|f| !known.contains(f.fingerprint.as_str()));
    }
}
