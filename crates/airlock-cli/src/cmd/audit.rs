//! `airlock audit list|verify`.

use crate::context::Ctx;
use crate::exit::{fail, CHECK_FAILED, INVALID};
use crate::output::{parse_time, when, Output};
use airlock_core::{IdentityKind, Outcome};
use airlock_store::AuditFilter;
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

/// Audit subcommands.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// List audit records, oldest first (`--json`: one JSON object per line).
    List {
        /// Only this actor kind: human, agent or service.
        #[arg(long)]
        actor_kind: Option<IdentityKind>,
        /// Only this actor (identity name, or `local:USER` for the CLI operator).
        #[arg(long)]
        identity: Option<String>,
        /// Only this decision: allow, deny, needs_approval.
        #[arg(long)]
        decision: Option<Outcome>,
        /// From this time: RFC 3339 or a duration ago (`1h`).
        #[arg(long)]
        since: Option<String>,
        /// Before this time: RFC 3339 or a duration ago.
        #[arg(long)]
        until: Option<String>,
        /// Only the newest N.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Check the hash chain; names the first edited, deleted, inserted or reordered record.
    Verify,
}

/// Runs an audit subcommand.
pub fn run(config: &Path, cmd: AuditCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let store = ctx.authority.store();
    match cmd {
        AuditCmd::List {
            actor_kind,
            identity,
            decision,
            since,
            until,
            limit,
        } => {
            let now = ctx.authority.now();
            let t = |s: Option<String>| {
                s.map(|s| parse_time(&s, now))
                    .transpose()
                    .map_err(|e| fail(INVALID, e))
            };
            let records = store.audit(&AuditFilter {
                actor_kind,
                actor_id: identity,
                decision,
                since: t(since)?,
                until: t(until)?,
                limit,
            })?;
            if out.json() {
                out.lines(&records)?;
            } else {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        let e = &r.event;
                        vec![
                            r.seq.to_string(),
                            when(e.time),
                            format!("{} ({})", e.actor.id, e.actor.kind),
                            e.action.clone(),
                            e.resource.clone().unwrap_or_else(|| "-".into()),
                            e.environment.clone().unwrap_or_else(|| "-".into()),
                            e.decision.to_string(),
                            e.reason.clone(),
                        ]
                    })
                    .collect();
                out.table(
                    &[
                        "SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "ENV", "DECISION", "REASON",
                    ],
                    &rows,
                )?;
            }
        }
        AuditCmd::Verify => match store.verify_audit()? {
            Ok(n) => {
                if out.json() {
                    out.value(&serde_json::json!({ "ok": true, "records": n }))?;
                } else {
                    outln!("audit chain intact: {n} records verified")?;
                }
            }
            Err(e) => {
                if out.json() {
                    out.value(&serde_json::json!({ "ok": false, "error": e.to_string() }))?;
                }
                return Err(fail(
                    CHECK_FAILED,
                    format!("audit chain broken: {e}; treat records from there on as untrusted and compare with your SIEM's copy"),
                ));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
