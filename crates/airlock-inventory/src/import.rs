//! Reading `airlock scan --json` reports into unmanaged credentials.
//!
//! The report is input like any other: a hand-edited one may carry a whole secret where the
//! scanner would have put its redacted form. Such a record is refused, never stored.

use airlock_store::UnmanagedCredential;
use serde::Deserialize;
use time::OffsetDateTime;

/// Largest report accepted, so a wrong file cannot exhaust memory.
pub const MAX_REPORT: usize = 64 << 20;

/// Why a scan report could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not a scan finding.
    #[error("line {line}: not an `airlock scan --json` finding: {message}")]
    Parse {
        /// 1-based line of the report.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A finding's `redacted` field does not look redacted: importing it could store a secret.
    #[error("line {line}: field `redacted` does not look like the scanner's redacted form (prefix, `…`, last 4 characters); refusing to store what may be a whole secret")]
    NotRedacted {
        /// 1-based line of the report.
        line: usize,
    },
    /// The report is larger than [`MAX_REPORT`].
    #[error("the report is larger than {MAX_REPORT} bytes")]
    TooLarge,
}

#[derive(Deserialize)]
struct Raw {
    rule_id: String,
    #[serde(default)]
    description: String,
    file: String,
    line: u64,
    column: u64,
    #[serde(default)]
    location: Option<String>,
    redacted: String,
    fingerprint: String,
}

/// What an import found.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The credentials to store.
    pub found: Vec<UnmanagedCredential>,
    /// Airlock tokens in the report: already managed, so not imported (`airlock scan
    /// --revoke-found` deals with them).
    pub airlock_tokens: usize,
}

/// Whether `s` has the shape the scanner's redaction produces: a short known prefix, then `…`
/// and at most four characters, or `****`.
pub fn looks_redacted(s: &str) -> bool {
    if s.chars().count() > 48 || s.chars().any(char::is_control) {
        return false;
    }
    if let Some(prefix) = s.strip_suffix("****") {
        return prefix.chars().count() <= 40 && !prefix.contains('…');
    }
    match s.split_once('…') {
        Some((prefix, tail)) => {
            prefix.chars().count() <= 40 && tail.chars().count() <= 4 && !tail.contains('…')
        }
        None => false,
    }
}

fn clean(s: &str, max: usize) -> String {
    // Paths and descriptions are shown in tables and reports: no control characters, bounded.
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Parses a report: JSON Lines as `airlock scan --json` writes them (a JSON array is accepted
/// too). Every record is checked before any is returned, so a bad report imports nothing.
pub fn parse(
    text: &str,
    agent_readable: bool,
    now: OffsetDateTime,
    actor: &str,
) -> Result<Parsed, ImportError> {
    if text.len() > MAX_REPORT {
        return Err(ImportError::TooLarge);
    }
    let records: Vec<(usize, Raw)> = if text.trim_start().starts_with('[') {
        let all: Vec<Raw> = serde_json::from_str(text).map_err(|e| ImportError::Parse {
            line: e.line(),
            message: e.to_string(),
        })?;
        all.into_iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r))
            .collect()
    } else {
        let mut out = Vec::new();
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let r: Raw = serde_json::from_str(l).map_err(|e| ImportError::Parse {
                line: i + 1,
                message: e.to_string(),
            })?;
            out.push((i + 1, r));
        }
        out
    };
    let mut parsed = Parsed::default();
    for (line, r) in records {
        if r.rule_id == "airlock-token" {
            parsed.airlock_tokens += 1;
            continue;
        }
        if !looks_redacted(&r.redacted) {
            return Err(ImportError::NotRedacted { line });
        }
        let fp_ok = !r.fingerprint.is_empty()
            && r.fingerprint.len() <= 128
            && r.fingerprint
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':');
        if !fp_ok || r.rule_id.is_empty() || r.file.is_empty() {
            return Err(ImportError::Parse {
                line,
                message: "`rule_id`, `file` and a `fingerprint` of letters and digits are required"
                    .into(),
            });
        }
        parsed.found.push(UnmanagedCredential {
            fingerprint: r.fingerprint,
            kind: clean(&r.rule_id, 64),
            description: clean(&r.description, 200),
            file: clean(&r.file, 1024),
            line: r.line,
            column: r.column,
            location: r.location.map(|l| clean(&l, 512)),
            redacted: r.redacted,
            agent_readable,
            first_seen: now,
            last_seen: now,
            imported_by: actor.to_string(),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_scanner_line_imports_with_its_location_and_airlock_tokens_are_left_to_scan() {
        let report = r#"{"rule_id":"aws-access-key-id","description":"AWS access key id","file":"deploy/.env","line":3,"column":19,"location":null,"redacted":"AKIA…WXYZ","fingerprint":"ab12"}
{"rule_id":"airlock-token","description":"Airlock token","file":"notes","line":1,"column":1,"location":null,"redacted":"alk_…abcd","fingerprint":"cd34"}
"#;
        let p = parse(report, true, now(), "tester").unwrap();
        assert_eq!(p.airlock_tokens, 1);
        assert_eq!(p.found.len(), 1);
        let f = &p.found[0];
        assert_eq!((f.file.as_str(), f.line, f.column), ("deploy/.env", 3, 19));
        assert_eq!(f.kind, "aws-access-key-id");
        assert!(f.agent_readable);
    }

    #[test]
    fn a_whole_secret_in_the_redacted_field_is_refused() {
        let report = r#"{"rule_id":"aws-secret-access-key","file":"x","line":1,"column":1,"redacted":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz","fingerprint":"ab"}"#;
        assert!(matches!(
            parse(report, true, now(), "t"),
            Err(ImportError::NotRedacted { line: 1 })
        ));
        assert!(looks_redacted("ghp_…6789"));
        assert!(looks_redacted("****"));
        assert!(looks_redacted("-----BEGIN…"));
        assert!(!looks_redacted("hunter2hunter2"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_reports_never_panic_and_only_redacted_values_are_kept(s in "\\PC{0,400}") {
            if let Ok(p) = parse(&s, true, now(), "t") {
                for f in p.found {
                    proptest::prop_assert!(looks_redacted(&f.redacted));
                }
            }
        }
    }
}
