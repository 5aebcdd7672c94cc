//! `airlock resource add|list`: the catalog that says which environment a resource of a shared
//! API belongs to. A resource nobody declared counts as the most protected.

use crate::context::Ctx;
use crate::output::{when, Output};
use airlock_audit::Actor;
use airlock_core::EnvName;
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

/// Resource subcommands.
#[derive(Subcommand, Debug)]
pub enum ResourceCmd {
    /// Declare that a resource id (or a `*` pattern) belongs to an environment.
    Add {
        /// An exact id (`vol-42`) or a pattern (`vol-prod-*`).
        pattern: String,
        /// The environment it belongs to.
        #[arg(long)]
        env: EnvName,
        /// The kind of resource, e.g. `volume`.
        #[arg(long)]
        kind: Option<String>,
    },
    /// List catalog entries from airlock.toml and from the store.
    List,
}

/// Runs a resource subcommand.
pub fn run(config: &Path, cmd: ResourceCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let auth = &ctx.authority;
    match cmd {
        ResourceCmd::Add { pattern, env, kind } => {
            let r = auth.add_resource(&Actor::local_operator(), &pattern, &env, kind)?;
            if out.json() {
                out.value(&r)?;
            } else {
                outln!("resource `{}` is in {}", r.pattern, r.environment)?;
            }
        }
        ResourceCmd::List => {
            let mut rows: Vec<serde_json::Value> = auth
                .config()
                .resources
                .iter()
                .map(|r| serde_json::json!({ "pattern": r.id, "environment": r.environment, "kind": r.kind, "source": "airlock.toml" }))
                .collect();
            for r in auth.store().resources()? {
                rows.push(serde_json::json!({
                    "pattern": r.pattern, "environment": r.environment, "kind": r.kind,
                    "source": "store", "created_at": when(r.created_at), "created_by": r.created_by,
                }));
            }
            if out.json() {
                out.lines(&rows)?;
            } else {
                let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            s(&r["pattern"]),
                            s(&r["environment"]),
                            s(&r["kind"]),
                            s(&r["source"]),
                        ]
                    })
                    .collect();
                out.table(&["PATTERN", "ENV", "KIND", "SOURCE"], &table)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
