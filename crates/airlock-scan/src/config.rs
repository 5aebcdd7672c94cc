//! The scanner's configuration file (TOML): user rules and allowlists.
//!
//! ```toml
//! [allowlist]
//! paths = ["tests/fixtures/**", "**/*.lock"]
//! regexes = ["^AKIA0000"]
//!
//! [[rules]]
//! id = "acme-api-key"
//! regex = '''acme_(?P<secret>[a-z0-9]{32})'''
//! keywords = ["acme_"]
//! min_entropy = 3.0
//! ```

use crate::engine::{Allowlist, Scanner};
use crate::rules::{build_globs, Rule, RuleError, UserRule};
use serde::Deserialize;

/// The configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Global allowlist.
    #[serde(default)]
    pub allowlist: AllowlistConfig,
    /// User rules, added to the built-in ones.
    #[serde(default)]
    pub rules: Vec<UserRule>,
    /// Built-in rule ids to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
}

/// `[allowlist]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistConfig {
    /// Glob patterns of paths never scanned (archive members as `outer.zip!inner`).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Secrets matching any of these regexes are not reported.
    #[serde(default)]
    pub regexes: Vec<String>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML for this schema.
    #[error("invalid scanner configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A rule or allowlist entry does not compile.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// A rule's own examples disagree with it.
    #[error("rule `{id}`: example {example} does not behave as declared ({what})")]
    Example {
        /// The rule.
        id: String,
        /// 1-based index among its positives or negatives.
        example: usize,
        /// `positive` or `negative`.
        what: &'static str,
    },
}

impl Config {
    /// Parses TOML.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Builds a scanner: built-in rules (minus disabled ones) plus user rules, then checks each
    /// user rule against its own examples so that a broken rule fails loudly, not silently.
    pub fn scanner(&self) -> Result<Scanner, ConfigError> {
        let mut rules: Vec<Rule> = Rule::builtins()?
            .into_iter()
            .filter(|r| !self.disable.contains(&r.id))
            .collect();
        for u in &self.rules {
            rules.push(Rule::from_user(u)?);
        }
        let regexes = self
            .allowlist
            .regexes
            .iter()
            .map(|r| {
                regex::bytes::Regex::new(r).map_err(|source| RuleError::Regex {
                    id: "allowlist".into(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allow = Allowlist {
            paths: build_globs("allowlist", &self.allowlist.paths)?,
            regexes,
        };
        let scanner = Scanner::new(rules, allow)?;
        for u in &self.rules {
            let origin = crate::Origin::file("<example>");
            for (i, p) in u.positives.iter().enumerate() {
                if !scanner
                    .scan_bytes(p.as_bytes(), &origin)
                    .iter()
                    .any(|f| f.rule_id == u.id)
                {
                    return Err(ConfigError::Example {
                        id: u.id.clone(),
                        example: i + 1,
                        what: "positive",
                    });
                }
            }
            for (i, n) in u.negatives.iter().enumerate() {
                if scanner
                    .scan_bytes(n.as_bytes(), &origin)
                    .iter()
                    .any(|f| f.rule_id == u.id)
                {
                    return Err(ConfigError::Example {
                        id: u.id.clone(),
                        example: i + 1,
                        what: "negative",
                    });
                }
            }
        }
        Ok(scanner)
    }
}
