//! `airlock secret set|list`. No command prints a secret value.

use crate::context::Ctx;
use crate::exit::{fail, INVALID};
use crate::output::{when, Output};
use airlock_audit::Actor;
use airlock_authority::KeyChange;
use airlock_core::{EnvName, Secret};
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Secret subcommands.
#[derive(Subcommand, Debug)]
pub enum SecretCmd {
    /// Seal an upstream credential read from stdin.
    Set {
        /// Name the gateway will refer to it by.
        name: String,
        /// The environment it belongs to.
        #[arg(long)]
        env: EnvName,
        /// The master key that sealed the store's other secrets is lost: seal under this one
        /// anyway. What the old key sealed stays unusable until it is set again.
        #[arg(long)]
        new_master_key: bool,
    },
    /// List sealed secrets: names, environments, dates. Never values.
    List,
}

/// Runs a secret subcommand.
pub fn run(config: &Path, cmd: SecretCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let auth = &ctx.authority;
    match cmd {
        SecretCmd::Set {
            name,
            env,
            new_master_key,
        } => {
            if std::io::stdin().is_terminal() {
                return Err(fail(
                    INVALID,
                    "refused: the secret must come on stdin, not typed at a terminal where it would echo; e.g. `airlock secret set NAME --env ENV < secret.txt`",
                ));
            }
            let key = ctx.master_key()?;
            // Upstream credentials are short; a cap keeps a mistaken pipe from filling memory and the store.
            let mut buf = crate::output::read_stdin_limited(64 * 1024, "the secret value")?;
            // Drop one trailing newline (from `echo` or a file); keep any other bytes as given.
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            let value = Secret::new(buf);
            let keys = match new_master_key {
                true => KeyChange::Allow,
                false => KeyChange::Refuse,
            };
            let info =
                auth.set_secret(&Actor::local_operator(), &key, &name, &env, &value, keys)?;
            if out.json() {
                out.value(&info)?;
            } else {
                outln!(
                    "sealed `{}` for {} (key {})",
                    info.name,
                    info.environment,
                    info.key_id
                )?;
                if new_master_key {
                    let stale: Vec<String> = auth
                        .store()
                        .secrets()?
                        .into_iter()
                        .filter(|s| s.key_id != info.key_id)
                        .map(|s| format!("`{}` ({})", s.name, s.environment))
                        .collect();
                    if !stale.is_empty() {
                        outln!(
                            "still sealed under the old key, unusable until set again with this one: {}",
                            stale.join(", ")
                        )?;
                    }
                }
            }
        }
        SecretCmd::List => {
            let all = auth.store().secrets()?;
            if out.json() {
                out.lines(&all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.environment.to_string(),
                            when(s.created_at),
                            when(s.updated_at),
                            s.updated_by.clone(),
                            s.key_id.clone(),
                        ]
                    })
                    .collect();
                out.table(&["NAME", "ENV", "CREATED", "UPDATED", "BY", "KEY"], &rows)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
