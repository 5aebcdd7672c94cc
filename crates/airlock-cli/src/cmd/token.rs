//! `airlock token issue|list|show|verify|revoke`.

use crate::context::Ctx;
use crate::exit::{fail, INVALID, NOT_FOUND};
use crate::output::{parse_time, when, Output};
use airlock_audit::Actor;
use airlock_authority::IssueRequest;
use airlock_core::{EnvName, Name, OpClassSet};
use airlock_store::TokenRecord;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use time::OffsetDateTime;

/// Token subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issue a token. Prints the token once on stdout and nothing else there.
    Issue {
        /// Whose token.
        #[arg(long)]
        identity: Name,
        /// The environment it is valid for (repeat or comma-separate for several).
        #[arg(long = "env", value_delimiter = ',', required = true)]
        environments: Vec<EnvName>,
        /// Allowed operation classes: read, write, destructive, privilege (comma-separated).
        #[arg(long, value_parser = parse_allow)]
        allow: OpClassSet,
        /// Lifetime, e.g. 30m, 1h (agents and services: default 1h, at most 24h).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Narrow the token to resources matching this pattern.
        #[arg(long)]
        resource: Option<String>,
    },
    /// List tokens (never the token strings: only ids and claims).
    List {
        /// Only this identity's tokens.
        #[arg(long)]
        identity: Option<Name>,
        /// Include expired and revoked tokens.
        #[arg(long)]
        all: bool,
    },
    /// Show one token's claims and status.
    Show {
        /// The token id (`tok_…`), or the token itself (looked up, never echoed).
        id: String,
    },
    /// Verify a token read from stdin (never from the command line, where `ps` would show it).
    Verify {
        /// Also require the token to be valid for this environment.
        #[arg(long)]
        env: Option<EnvName>,
        /// Check at another time: RFC 3339, or `+2h` for two hours from now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Revoke a token; the next check anywhere refuses it.
    Revoke {
        /// The token id (`tok_…`), or the token itself (looked up, never echoed).
        id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// The token id an argument names. Operators paste whole tokens too (one a scan found, say): such
/// an argument is looked up by its hash and never echoed, since it is a live credential.
pub(crate) fn token_id_arg(
    store: airlock_authority::StoreReader<'_>,
    arg: &str,
) -> anyhow::Result<String> {
    if !arg.starts_with(airlock_token::PREFIX) {
        return Ok(arg.to_string());
    }
    let hash = airlock_token::TokenHash::of(arg).to_hex();
    match store.token_by_hash(&hash)? {
        Some(t) => Ok(t.id),
        None => Err(fail(
            NOT_FOUND,
            format!(
                "the token given ({}…, not shown in full) is not one this Airlock issued; give a token id (`tok_…`) from `airlock token list --all`",
                airlock_token::PREFIX
            ),
        )),
    }
}

fn parse_allow(s: &str) -> Result<OpClassSet, String> {
    OpClassSet::parse_list(s).map_err(|e| e.to_string())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    airlock_config::parse_ttl(s)
}

fn status(t: &TokenRecord, now: OffsetDateTime) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at <= now {
        "expired"
    } else {
        "active"
    }
}

#[derive(serde::Serialize)]
struct TokenView<'a> {
    #[serde(flatten)]
    token: &'a TokenRecord,
    status: &'static str,
}

/// Runs a token subcommand.
pub fn run(config: &Path, cmd: TokenCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let auth = &ctx.authority;
    let actor = Actor::local_operator();
    match cmd {
        TokenCmd::Issue {
            identity,
            environments,
            allow,
            ttl,
            resource,
        } => {
            let issued = auth.issue(
                &actor,
                IssueRequest {
                    identity,
                    environments,
                    allow,
                    ttl,
                    resource_scope: resource,
                },
            )?;
            let r = &issued.record;
            if out.json() {
                out.value(&serde_json::json!({
                    "token": issued.token.expose(),
                    "id": r.id,
                    "identity": r.identity,
                    "environments": r.environments,
                    "allow": r.allow,
                    "expires_at": when(r.expires_at),
                }))?;
            } else {
                outln!("{}", issued.token.expose())?;
                if std::io::stdout().is_terminal() {
                    eprintln!("(shown once: it is stored only as a hash)");
                }
                eprintln!(
                    "issued {} for `{}`: {} in {}, expires {}",
                    r.id,
                    r.identity,
                    r.allow,
                    r.environments
                        .iter()
                        .map(EnvName::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    when(r.expires_at)
                );
            }
        }
        TokenCmd::List { identity, all } => {
            let now = auth.now();
            let tokens: Vec<TokenRecord> = auth
                .store()
                .tokens(identity.as_ref())?
                .into_iter()
                .filter(|t| all || status(t, now) == "active")
                .collect();
            if out.json() {
                let views: Vec<TokenView<'_>> = tokens
                    .iter()
                    .map(|t| TokenView {
                        token: t,
                        status: status(t, now),
                    })
                    .collect();
                out.lines(&views)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.identity.to_string(),
                            t.environments
                                .iter()
                                .map(EnvName::to_string)
                                .collect::<Vec<_>>()
                                .join(","),
                            t.allow.to_string(),
                            when(t.expires_at),
                            status(t, now).into(),
                        ]
                    })
                    .collect();
                out.table(
                    &["ID", "IDENTITY", "ENV", "ALLOW", "EXPIRES", "STATUS"],
                    &rows,
                )?;
            }
        }
        TokenCmd::Show { id } => {
            let id = token_id_arg(auth.store(), &id)?;
            let now = auth.now();
            let t = auth.store().token(&id)?.ok_or_else(|| {
                fail(
                    NOT_FOUND,
                    format!("token `{id}` not found; list tokens with `airlock token list --all`"),
                )
            })?;
            if out.json() {
                out.value(&TokenView {
                    token: &t,
                    status: status(&t, now),
                })?;
            } else {
                outln!("id:           {}", t.id)?;
                outln!("identity:     {}", t.identity)?;
                outln!(
                    "environments: {}",
                    t.environments
                        .iter()
                        .map(EnvName::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
                outln!("allow:        {}", t.allow)?;
                outln!(
                    "resource:     {}",
                    t.resource_scope.as_deref().unwrap_or("any")
                )?;
                outln!("issued:       {} by {}", when(t.issued_at), t.issuer)?;
                outln!("expires:      {}", when(t.expires_at))?;
                outln!("status:       {}", status(&t, now))?;
                if let (Some(at), Some(why)) = (t.revoked_at, &t.revoke_reason) {
                    outln!("revoked:      {} ({why})", when(at))?;
                }
            }
        }
        TokenCmd::Verify { env, at } => {
            let now = match &at {
                Some(s) => parse_time(s, auth.now()).map_err(|e| fail(INVALID, e))?,
                None => auth.now(),
            };
            let input =
                zeroize::Zeroizing::new(crate::output::read_stdin_limited(4096, "the token")?);
            let text = String::from_utf8_lossy(&input);
            // Nothing at all arrived (stdin not redirected, or </dev/null): nothing was
            // presented, so there is nothing to refuse or audit.
            if input.is_empty() {
                return Err(fail(
                    INVALID,
                    "no token on stdin; pipe it in, e.g. `echo \"$TOKEN\" | airlock token verify` (it is never taken from the command line)",
                ));
            }
            let first = text.lines().next().unwrap_or("").trim();
            // An empty line is still a presented token, refused and audited like any malformed
            // one; the usual cause is an unset variable in `echo "$TOKEN"`.
            let claims = auth.authenticate(first, env.as_ref(), now).map_err(|e| {
                let e = anyhow::Error::new(e);
                if first.is_empty() {
                    e.context(
                        "no token on stdin, only an empty line (is the variable you echo set?)",
                    )
                } else {
                    e
                }
            })?;
            if out.json() {
                out.value(claims.as_ref())?;
            } else {
                outln!(
                    "valid: {} for `{}` ({}{}), {} in {}, expires {}",
                    claims.token_id,
                    claims.identity,
                    claims.kind,
                    claims
                        .owner
                        .as_ref()
                        .map(|o| format!(", owner {o}"))
                        .unwrap_or_default(),
                    claims.allow,
                    claims
                        .environments
                        .iter()
                        .map(EnvName::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    when(claims.expires_at)
                )?;
            }
        }
        TokenCmd::Revoke { id, reason } => {
            let id = token_id_arg(auth.store(), &id)?;
            auth.revoke(&actor, &id, &reason)?;
            if out.json() {
                out.value(&serde_json::json!({ "revoked": id }))?;
            } else {
                outln!("revoked {id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
