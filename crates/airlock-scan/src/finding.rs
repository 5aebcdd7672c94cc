//! What a scan reports: findings with redacted secrets and line-independent fingerprints.

use airlock_core::Secret;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where a scanned text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Display path: a file, or `archive.zip!member/path` inside archives, or `<stdin>`.
    pub file: String,
    /// Where inside a non-file source, e.g. `#general 2026-04-25 ts=1714050000.000100 user=alice`.
    pub location: Option<String>,
}

impl Origin {
    /// An origin that is a plain file.
    pub fn file(file: impl Into<String>) -> Origin {
        Origin {
            file: file.into(),
            location: None,
        }
    }
}

/// One credential found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The rule that found it.
    pub rule_id: String,
    /// What the rule finds, for humans.
    pub description: String,
    /// File path (archive members as `outer.zip!inner/file`).
    pub file: String,
    /// 1-based line of the secret's first character in `file` (or in the message for exports).
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// Location inside non-file sources (chat exports); `null` for files.
    pub location: Option<String>,
    /// The secret's recognisable prefix and last 4 characters; never the whole secret.
    pub redacted: String,
    /// Stable identity for baselines: does not depend on line numbers.
    pub fingerprint: String,
    /// The raw token of `airlock-token` findings, kept so that the CLI can hash it and look it
    /// up in the authority. Never serialized or printed.
    #[serde(skip)]
    raw_token: Option<Secret<String>>,
    /// For an Airlock token: what the authority knows of it (`status` live / expired / revoked /
    /// unknown…, `token_id`, `identity`, `owner`, and `revoked_now` after `--revoke-found`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<serde_json::Value>,
}

/// Rules whose raw match is kept on the finding (see [`Finding::airlock_token`]).
pub const AIRLOCK_TOKEN_RULE: &str = "airlock-token";

/// Known prefixes shown in redacted form because they say what kind of secret it is.
const SHOWN_PREFIXES: &[&str] = &[
    "alk_",
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "gldt-",
    "glrt-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxe-",
    "xapp-",
    "https://hooks.slack.com/",
    "sk_live_",
    "rk_live_",
    "SG.",
    "sk-proj-",
    "sk-ant-",
    "sk-",
    "HRKU-",
    "dop_v1_",
    "doo_v1_",
    "dor_v1_",
    "npm_",
    "pypi-",
    "dckr_pat_",
    "dckr_oat_",
    "hf_",
    "AIza",
    "-----BEGIN",
    "PuTTY-User-Key-File",
    "eyJ",
    "SK",
];

/// Redacts a secret to its known prefix (if any) and its last 4 characters.
pub fn redact(secret: &str) -> String {
    let prefix = SHOWN_PREFIXES
        .iter()
        .find(|p| secret.starts_with(*p))
        .map_or("", |p| *p);
    let rest: Vec<char> = secret[prefix.len()..].chars().collect();
    if secret.starts_with("-----BEGIN") || secret.starts_with("PuTTY") {
        // The tail of a key file is its END marker; showing it says nothing.
        return format!("{prefix}…");
    }
    if rest.len() < 12 {
        // Showing 4 of fewer than 12 characters gives away too much of a short password.
        return format!("{prefix}****");
    }
    let tail: String = rest[rest.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// SHA-256 over rule, file and secret: unrelated edits that move the line do not change it,
/// and the secret itself cannot be recovered from it in practice for real credentials.
pub fn fingerprint(rule_id: &str, file: &str, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0]);
    h.update(file.as_bytes());
    h.update([0]);
    h.update(secret);
    hex::encode(&h.finalize()[..16])
}

impl Finding {
    /// Builds a finding; the secret is used for redaction and the fingerprint and then dropped,
    /// except for Airlock tokens.
    pub(crate) fn new(
        rule_id: &str,
        description: &str,
        origin: &Origin,
        line: u64,
        column: u64,
        secret: &[u8],
    ) -> Finding {
        let s = String::from_utf8_lossy(secret);
        let raw_token = (rule_id == AIRLOCK_TOKEN_RULE).then(|| Secret::new(s.to_string()));
        Finding {
            rule_id: rule_id.to_string(),
            description: description.to_string(),
            file: origin.file.clone(),
            line,
            column,
            location: origin.location.clone(),
            redacted: redact(&s),
            fingerprint: fingerprint(rule_id, &origin.file, secret),
            raw_token,
            authority: None,
        }
    }

    /// The raw token of an `airlock-token` finding, so that the caller can hash it
    /// (`airlock_token::TokenHash::of`) and ask the authority about it; `None` for other rules.
    pub fn airlock_token(&self) -> Option<&str> {
        self.raw_token.as_ref().map(|s| s.expose().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_prefix_and_last_four() {
        assert_eq!(
            redact("ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            "ghp_…6789"
        );
        assert_eq!(redact("hunter2!"), "****");
        assert_eq!(
            redact("-----BEGIN RSA PRIVATE KEY-----\nAAA"),
            "-----BEGIN…"
        );
    }

    #[test]
    fn fingerprint_ignores_position() {
        assert_eq!(fingerprint("r", "f", b"s"), fingerprint("r", "f", b"s"));
        assert_ne!(fingerprint("r", "f", b"s"), fingerprint("r", "g", b"s"));
    }
}
