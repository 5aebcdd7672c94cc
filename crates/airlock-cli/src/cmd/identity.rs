//! `airlock identity add|list|show|disable|review|offboard|reassign`.

use crate::context::Ctx;
use crate::exit::fail;
use crate::output::{when, Output};
use airlock_audit::Actor;
use airlock_authority::{IdentityError, NewIdentity};
use airlock_core::{EnvName, IdentityKind, Name};
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;
use time::Date;

/// Identity subcommands.
#[derive(Subcommand, Debug)]
pub enum IdentityCmd {
    /// Add a human, agent or service. Agents and services need --owner and --purpose.
    Add {
        /// Unique name (a-z, 0-9, `-`, `_`, `.`).
        name: Name,
        /// human, agent or service.
        #[arg(long)]
        kind: IdentityKind,
        /// The enabled human who answers for an agent or service.
        #[arg(long)]
        owner: Option<Name>,
        /// What the agent or service is for.
        #[arg(long)]
        purpose: Option<String>,
        /// When it must be reviewed (YYYY-MM-DD); agents and services default to 90 days.
        #[arg(long, value_parser = parse_date)]
        review_by: Option<Date>,
        /// Mark that AI agents can read this identity's credentials.
        #[arg(long)]
        agent_accessible: bool,
        /// Restrict to an environment (repeat for several); default: any configured.
        #[arg(long = "env")]
        environments: Vec<EnvName>,
        /// Enrol a TOTP second factor (humans): prints the otpauth:// URI and a QR code once.
        #[arg(long)]
        totp: bool,
    },
    /// Enrol a human's TOTP second factor; prints the otpauth:// URI and a QR code.
    Totp {
        /// The human.
        name: Name,
        /// Replace the second factor the human already has (the old one stops working).
        #[arg(long)]
        replace: bool,
        /// The master key that sealed the store's secrets and factors is lost: seal under this
        /// one anyway. What the old key sealed stays unusable until it is set again.
        #[arg(long)]
        new_master_key: bool,
    },
    /// List identities.
    List,
    /// Show one identity and its tokens.
    Show {
        /// The identity.
        name: Name,
    },
    /// The owner confirms an agent or service is still needed: the review date moves (audited).
    Review {
        /// The identity.
        name: Name,
        /// The next review date (YYYY-MM-DD); default 90 days from today.
        #[arg(long, value_parser = parse_date)]
        review_by: Option<Date>,
        /// Restate what it is for.
        #[arg(long)]
        purpose: Option<String>,
    },
    /// Offboard: disable, revoke every token, and report what it could reach until now and
    /// which agents are left orphaned (audited).
    Offboard {
        /// The identity.
        name: Name,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Give an agent or service (e.g. one orphaned by offboarding) a new owner.
    Reassign {
        /// The agent or service.
        name: Name,
        /// The enabled human who answers for it from now on.
        #[arg(long)]
        owner: Name,
    },
    /// Disable (offboard) an identity and revoke all its tokens in one step.
    Disable {
        /// The identity.
        name: Name,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("invalid date `{s}`, expected YYYY-MM-DD"))
}

/// Runs an identity subcommand.
pub fn run(config: &Path, cmd: IdentityCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    if let IdentityCmd::Offboard { name, reason } = &cmd {
        return offboard(config, &ctx, name, reason, out);
    }
    let auth = &ctx.authority;
    let actor = Actor::local_operator();
    match cmd {
        IdentityCmd::Add {
            name,
            kind,
            owner,
            purpose,
            review_by,
            agent_accessible,
            environments,
            totp,
        } => {
            if totp && kind != IdentityKind::Human {
                return Err(fail(
                    crate::exit::INVALID,
                    "refused: `--totp` is for human identities; only humans approve",
                ));
            }
            let key = if totp { Some(ctx.master_key()?) } else { None };
            let i = auth.add_identity(
                &actor,
                NewIdentity {
                    name,
                    kind,
                    owner,
                    purpose,
                    review_by,
                    agent_accessible,
                    environments,
                },
            )?;
            if out.json() {
                out.value(&i)?;
            } else {
                match (&i.owner, i.review_by) {
                    (Some(o), Some(r)) => {
                        outln!("added {} `{}` (owner {o}, review by {r})", i.kind, i.name)?
                    }
                    _ => outln!("added {} `{}`", i.kind, i.name)?,
                }
            }
            if let Some(key) = key {
                enrol(
                    auth,
                    &actor,
                    &key,
                    &i.name,
                    false,
                    airlock_authority::KeyChange::Refuse,
                    out,
                )?;
            }
        }
        IdentityCmd::Totp {
            name,
            replace,
            new_master_key,
        } => {
            let key = ctx.master_key()?;
            let keys = match new_master_key {
                true => airlock_authority::KeyChange::Allow,
                false => airlock_authority::KeyChange::Refuse,
            };
            enrol(auth, &actor, &key, &name, replace, keys, out)?;
        }
        IdentityCmd::List => {
            let all = auth.store().identities()?;
            if out.json() {
                out.lines(&all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.to_string(),
                            i.kind.to_string(),
                            i.owner
                                .as_ref()
                                .map(Name::to_string)
                                .unwrap_or_else(|| "-".into()),
                            if i.enabled { "enabled" } else { "disabled" }.into(),
                            i.review_by
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "-".into()),
                            i.purpose.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                out.table(
                    &["NAME", "KIND", "OWNER", "STATUS", "REVIEW BY", "PURPOSE"],
                    &rows,
                )?;
            }
        }
        IdentityCmd::Show { name } => {
            let i = auth
                .store()
                .identity(&name)?
                .ok_or_else(|| anyhow::Error::new(IdentityError::NotFound(name.clone())))?;
            let tokens = auth.store().tokens(Some(&name))?;
            if out.json() {
                out.value(&serde_json::json!({ "identity": i, "tokens": tokens }))?;
            } else {
                outln!("name:             {}", i.name)?;
                outln!("kind:             {}", i.kind)?;
                outln!(
                    "owner:            {}",
                    i.owner
                        .as_ref()
                        .map(Name::to_string)
                        .unwrap_or_else(|| "-".into())
                )?;
                outln!("purpose:          {}", i.purpose.as_deref().unwrap_or("-"))?;
                outln!(
                    "review by:        {}",
                    i.review_by
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into())
                )?;
                outln!("agent accessible: {}", i.agent_accessible)?;
                let envs = if i.environments.is_empty() {
                    "any".to_string()
                } else {
                    i.environments
                        .iter()
                        .map(EnvName::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                outln!("environments:     {envs}")?;
                outln!(
                    "status:           {}",
                    if i.enabled { "enabled" } else { "disabled" }
                )?;
                outln!(
                    "created:          {} by {}",
                    when(i.created_at),
                    i.created_by
                )?;
                if let Some(d) = i.disabled_at {
                    outln!("disabled:         {}", when(d))?;
                }
                let now = auth.now();
                let live = tokens
                    .iter()
                    .filter(|t| t.revoked_at.is_none() && t.expires_at > now)
                    .count();
                outln!("tokens:           {} ({live} live)", tokens.len())?;
            }
        }
        IdentityCmd::Review {
            name,
            review_by,
            purpose,
        } => {
            let next = auth.review_identity(&actor, &name, review_by, purpose.as_deref())?;
            if out.json() {
                out.value(&serde_json::json!({ "reviewed": name, "review_by": next.to_string() }))?;
            } else {
                outln!("reviewed `{name}`: still needed; next review by {next}")?;
            }
        }
        IdentityCmd::Reassign { name, owner } => {
            auth.reassign(&actor, &name, &owner)?;
            if out.json() {
                out.value(&serde_json::json!({ "reassigned": name, "owner": owner }))?;
            } else {
                outln!("`{name}` is now owned by `{owner}`; it can receive tokens again")?;
            }
        }
        IdentityCmd::Offboard { .. } => {}
        IdentityCmd::Disable { name, reason } => {
            let (revoked, orphaned) = match auth.disable_identity(&actor, &name, &reason) {
                Err(IdentityError::AlreadyDisabled(n)) => {
                    return Err(fail(
                        crate::exit::INVALID,
                        format!("identity `{n}` is already disabled; nothing changed"),
                    ))
                }
                other => other?,
            };
            if out.json() {
                out.value(&serde_json::json!({ "disabled": name, "tokens_revoked": revoked, "orphaned": orphaned }))?;
            } else {
                outln!("disabled `{name}`; revoked {revoked} token(s)")?;
                for o in &orphaned {
                    eprintln!(
                        "warning: `{o}` is owned by `{name}` and now has no enabled owner; it cannot receive new tokens. Reassign or disable it with `airlock identity disable {o}`"
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What it could reach is evaluated before the tokens go, so the report says what was closed.
fn offboard(
    config: &Path,
    ctx: &Ctx,
    name: &Name,
    reason: &str,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let auth = &ctx.authority;
    let rt = airlock_gateway::Runtime::load_for_checks(config, auth)?;
    let ev = airlock_inventory::reach::Evaluator::new(&rt, auth.store(), auth.now())?;
    let before = match auth.store().identity(name)? {
        Some(i) => ev.identity(&i),
        None => return Err(anyhow::Error::new(IdentityError::NotFound(name.clone()))),
    };
    let (revoked, orphaned) = match auth.disable_identity(&Actor::local_operator(), name, reason) {
        Err(IdentityError::AlreadyDisabled(n)) => {
            return Err(fail(
                crate::exit::INVALID,
                format!("identity `{n}` is already disabled; nothing changed"),
            ))
        }
        other => other?,
    };
    let reached: Vec<_> = before.reached().collect();
    if out.json() {
        out.value(&serde_json::json!({
            "offboarded": name,
            "tokens_revoked": revoked,
            "revoked_token_ids": before.subject.tokens,
            "could_reach": { "headline": before.headline, "pairs": reached.len(), "destroy": before.destroy },
            "orphaned": orphaned,
        }))?;
    } else {
        outln!("offboarded `{name}`: disabled, {revoked} token(s) revoked")?;
        outln!(
            "until now it {}",
            before.headline.trim_start_matches(&format!("`{name}` "))
        )?;
        outln!(
            "({} (action, resource) pair(s) reachable, now closed)",
            reached.len()
        )?;
        for o in &orphaned {
            outln!(
                "orphaned: `{o}` was owned by `{name}` and cannot receive tokens until reassigned: `airlock identity reassign {o} --owner HUMAN`"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn enrol(
    auth: &airlock_authority::Authority,
    actor: &Actor,
    key: &airlock_seal::MasterKey,
    name: &Name,
    replace: bool,
    keys: airlock_authority::KeyChange,
    out: &Output,
) -> anyhow::Result<()> {
    let secret = auth.enroll_totp(actor, key, name, replace, keys)?;
    let uri = secret.otpauth_uri("Airlock", name.as_str());
    if out.json() {
        out.value(&serde_json::json!({ "identity": name, "otpauth_uri": uri.expose() }))?;
    } else {
        let qr = airlock_approval::totp::qr_terminal(uri.expose()).unwrap_or_default();
        outln!("TOTP second factor for `{name}` (shown once; scan it into an authenticator app):")?;
        outln!("{}", uri.expose())?;
        outln!("{qr}")?;
    }
    Ok(())
}
