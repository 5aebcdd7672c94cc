//! Classification: what a request would do, as operations with a danger class.
//!
//! Pure functions, no I/O. Anything that cannot be classified is `destructive` (fail closed).
//! (Interface stub; the implementation lands with the classifier work.)

use airlock_core::OpClass;
use std::path::Path;

/// One thing a request would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    /// The rule's action name, e.g. `volumeDelete`, `listVolumes`; `unclassified` when no rule matched.
    pub action: String,
    /// How dangerous it is.
    pub class: OpClass,
    /// The kind of resource it touches, e.g. `volume`; empty when unknown.
    pub resource_kind: String,
    /// The resource id, when the request names one.
    pub resource_id: Option<String>,
}

/// The classification of a whole request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    /// Every operation in the request (a GraphQL document or batch can hold several).
    pub operations: Vec<Operation>,
    /// The method the upstream will act on (after method-override headers).
    pub effective_method: String,
    /// The normalised path that was matched; the gateway forwards this path.
    pub normalized_path: String,
    /// Why things were classified as they were, for humans (e.g. "no rule matched: destructive").
    pub notes: Vec<String>,
}

impl Classification {
    /// The most dangerous class of any part; destructive when there are no parts.
    pub fn class(&self) -> OpClass {
        self.operations
            .iter()
            .map(|o| o.class)
            .max()
            .unwrap_or(OpClass::Destructive)
    }
}

/// A request as the HTTP door sees it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The method from the request line.
    pub method: &'a str,
    /// The raw path and query from the request line (still percent-encoded).
    pub path_and_query: &'a str,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The body, when the gateway buffered it (only when [`RuleSet::needs_body`] said so).
    pub body: Option<&'a [u8]>,
}

/// Why a rule file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Unreadable file.
    #[error("cannot read rule file `{path}`: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Invalid at a place.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A compiled set of classification rules for one upstream.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {}

impl RuleSet {
    /// Loads a rule file.
    pub fn load(path: &Path) -> Result<RuleSet, RuleError> {
        let text = std::fs::read_to_string(path).map_err(|e| RuleError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        RuleSet::from_toml(&text, path)
    }

    /// Parses rule-file text; `origin` is used in error messages.
    pub fn from_toml(_text: &str, _origin: &Path) -> Result<RuleSet, RuleError> {
        Ok(RuleSet {})
    }

    /// Whether classifying this request needs its body (a GraphQL endpoint does; REST rules don't).
    pub fn needs_body(
        &self,
        _method: &str,
        _path_and_query: &str,
        _headers: &http::HeaderMap,
    ) -> bool {
        false
    }

    /// The largest body the gateway may buffer for classification; a larger one is refused.
    pub fn max_body(&self) -> usize {
        1 << 20
    }

    /// Every action name the rules can produce, with its class (for the policy schema).
    pub fn actions(&self) -> Vec<(String, OpClass)> {
        Vec::new()
    }

    /// Classifies a request. Never fails: what cannot be classified is destructive.
    pub fn classify(&self, req: &HttpRequest<'_>) -> Classification {
        Classification {
            operations: vec![Operation {
                action: "unclassified".into(),
                class: OpClass::Destructive,
                resource_kind: String::new(),
                resource_id: None,
            }],
            effective_method: req.method.to_string(),
            normalized_path: req.path_and_query.to_string(),
            notes: vec!["no rule matched: treated as destructive".into()],
        }
    }
}
