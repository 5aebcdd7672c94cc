//! Mapping errors to exit codes and printing them so a human or a script knows what to do next.

use airlock_authority::{IdentityError, IssueError, RevokeError, SecretError, VerifyError};
use airlock_config::ConfigError;
use airlock_seal::KeyError;
use airlock_store::StoreError;
use std::process::ExitCode;

/// A check ran and its answer is no.
pub const CHECK_FAILED: u8 = 1;
/// Bad input or a refused request.
pub const INVALID: u8 = 2;
/// The named thing does not exist.
pub const NOT_FOUND: u8 = 3;
/// The environment failed: store, key file, I/O.
pub const ENVIRONMENT: u8 = 4;

/// An error that already knows its exit code (for failures the CLI itself detects).
#[derive(Debug)]
pub struct Fail {
    /// The exit code.
    pub code: u8,
    /// The message, saying what to do next.
    pub message: String,
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// Shorthand for returning a [`Fail`].
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fail {
        code,
        message: message.into(),
    })
}

fn store_code(e: &StoreError) -> (u8, &'static str) {
    match e {
        StoreError::NotFound(_) => (NOT_FOUND, "not_found"),
        StoreError::Conflict(_) => (INVALID, "conflict"),
        StoreError::Refused(_) => (INVALID, "refused"),
        _ => (ENVIRONMENT, "store"),
    }
}

fn secret_code(e: &SecretError) -> (u8, &'static str) {
    match e {
        SecretError::NotFound { .. } => (NOT_FOUND, "not_found"),
        SecretError::Store(s) => store_code(s),
        SecretError::WrongKey { .. } | SecretError::KeyMismatch { .. } | SecretError::Seal(_) => {
            (ENVIRONMENT, "master_key")
        }
        _ => (INVALID, "refused"),
    }
}

fn load_code(e: &airlock_gateway::LoadError) -> (u8, &'static str) {
    use airlock_gateway::LoadError as L;
    match e {
        L::Store(s) => store_code(s),
        L::Key { .. } => (ENVIRONMENT, "master_key"),
        // The same codes as the secret commands: a wrong master key is the environment's
        // fault whether `serve` or `secret show` meets it.
        L::Secret { source, .. } => secret_code(source),
        L::Policy(_) | L::PolicyRead { .. } => (INVALID, "policy"),
        L::Rules { .. } => (INVALID, "rules"),
        L::Config(ConfigError::Read { .. }) => (ENVIRONMENT, "config"),
        L::Config(_) | L::Url { .. } | L::Ca { .. } | L::Notify { .. } | L::Database { .. } => {
            (INVALID, "config")
        }
    }
}

fn classify(e: &anyhow::Error) -> (u8, &'static str) {
    if let Some(f) = e.downcast_ref::<Fail>() {
        let kind = match f.code {
            CHECK_FAILED => "check_failed",
            NOT_FOUND => "not_found",
            ENVIRONMENT => "environment",
            _ => "invalid",
        };
        return (f.code, kind);
    }
    if let Some(e) = e.downcast_ref::<ConfigError>() {
        return match e {
            ConfigError::Read { .. } => (ENVIRONMENT, "config"),
            ConfigError::Invalid { .. } => (INVALID, "config"),
        };
    }
    if e.downcast_ref::<KeyError>().is_some() {
        return (ENVIRONMENT, "master_key");
    }
    if let Some(e) = e.downcast_ref::<StoreError>() {
        return store_code(e);
    }
    if let Some(e) = e.downcast_ref::<VerifyError>() {
        return match e {
            VerifyError::StoreUnavailable(_) => (ENVIRONMENT, e.code()),
            _ => (CHECK_FAILED, e.code()),
        };
    }
    if let Some(e) = e.downcast_ref::<IdentityError>() {
        return match e {
            IdentityError::NotFound(_) => (NOT_FOUND, "not_found"),
            IdentityError::Store(s) => store_code(s),
            _ => (INVALID, "refused"),
        };
    }
    if let Some(e) = e.downcast_ref::<IssueError>() {
        return match e {
            IssueError::UnknownIdentity(_) => (NOT_FOUND, "not_found"),
            IssueError::Store(s) => store_code(s),
            IssueError::Random => (ENVIRONMENT, "random"),
            _ => (INVALID, "refused"),
        };
    }
    if let Some(e) = e.downcast_ref::<RevokeError>() {
        return match e {
            RevokeError::NotFound(_) => (NOT_FOUND, "not_found"),
            RevokeError::AlreadyRevoked(_) => (INVALID, "already_revoked"),
            RevokeError::Store(s) => store_code(s),
        };
    }
    if let Some(e) = e.downcast_ref::<airlock_authority::ApprovalError>() {
        use airlock_authority::ApprovalError as A;
        return match e {
            A::NotFound(_) | A::UnknownIdentity(_) => (NOT_FOUND, "not_found"),
            A::Store(s) => store_code(s),
            A::Seal(_) | A::Random | A::KeyMismatch { .. } => (ENVIRONMENT, "master_key"),
            _ => (INVALID, "refused"),
        };
    }
    if let Some(e) = e.downcast_ref::<SecretError>() {
        return secret_code(e);
    }
    if let Some(e) = e.downcast_ref::<airlock_gateway::GatewayError>() {
        return match e {
            airlock_gateway::GatewayError::Bind { .. } => (ENVIRONMENT, "bind"),
            airlock_gateway::GatewayError::Store(s) => store_code(s),
            airlock_gateway::GatewayError::Load(l) => load_code(l),
            airlock_gateway::GatewayError::NoUpstreams => (INVALID, "config"),
        };
    }
    if let Some(l) = e.downcast_ref::<airlock_gateway::LoadError>() {
        return load_code(l);
    }
    if let Some(e) = e.downcast_ref::<airlock_inventory::InventoryError>() {
        return match e {
            airlock_inventory::InventoryError::NotFound(_) => (NOT_FOUND, "not_found"),
            airlock_inventory::InventoryError::Store(s) => store_code(s),
        };
    }
    if e.downcast_ref::<std::io::Error>().is_some() {
        return (ENVIRONMENT, "io");
    }
    (ENVIRONMENT, "internal")
}

/// The error and its causes joined by `: `, each said once.
// Some errors print their source in their own message and also chain it as `source()`;
// anyhow's `{:#}` would then say that cause twice, so a cause the text already holds is skipped.
pub fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Prints an error as `PREFIX: MESSAGE`, or as JSON on stderr with `--json`.
pub fn print(prefix: &str, kind: &str, message: &str, code: u8, json: bool) {
    if json {
        let v =
            serde_json::json!({ "error": { "kind": kind, "message": message, "exit_code": code } });
        eprintln!("{v}");
    } else {
        eprintln!("{prefix}: {message}");
    }
}

/// Prints the error (JSON on stderr with `--json`) and returns its exit code; a reader that
/// closed standard output early (`airlock … | head`) is not an error.
pub fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    if crate::output::is_stdout_closed(e) {
        return ExitCode::SUCCESS;
    }
    let (code, kind) = classify(e);
    print("airlock", kind, &message(e), code, json);
    ExitCode::from(code)
}
