//! `airlock inventory`: every identity and credential, who answers for it, and what is wrong
//! with it; `airlock inventory import-scan` brings in what `airlock scan` found.

use crate::context::Ctx;
use crate::exit::{fail, CHECK_FAILED, INVALID};
use crate::output::Output;
use airlock_audit::Actor;
use airlock_gateway::Runtime;
use airlock_inventory::findings::{self, Item};
use airlock_inventory::{assess, import, reach::Evaluator, Severity};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A severity threshold on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Threshold {
    /// Worth a look.
    Low,
    /// Fix soon.
    Medium,
    /// Fix now.
    High,
}

impl From<Threshold> for Severity {
    fn from(t: Threshold) -> Severity {
        match t {
            Threshold::Low => Severity::Low,
            Threshold::Medium => Severity::Medium,
            Threshold::High => Severity::High,
        }
    }
}

/// Arguments of `airlock inventory`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InventoryArgs {
    #[command(subcommand)]
    cmd: Option<InventoryCmd>,
    /// A live token unused for this many days is reported.
    #[arg(long, default_value_t = 30)]
    stale_days: i64,
    /// Exit 1 when a finding of this severity or worse exists (for CI).
    #[arg(long, value_enum)]
    fail_on: Option<Threshold>,
}

/// Inventory subcommands.
#[derive(Subcommand, Debug)]
pub enum InventoryCmd {
    /// Import the findings of `airlock scan --json` as unmanaged credentials (Airlock tokens in
    /// the report are skipped: they are managed already).
    ImportScan {
        /// The report (JSON Lines from `airlock scan --json`); `-` for stdin.
        file: PathBuf,
        /// Where the credentials were found is NOT readable by AI agents (default: assume it is).
        #[arg(long)]
        not_agent_readable: bool,
    },
}

/// The inventory with reach-based findings: what `inventory` and `report compliance` print.
pub fn load_items(
    config: &Path,
    ctx: &Ctx,
    stale_days: i64,
) -> anyhow::Result<(Runtime, Vec<Item>, airlock_inventory::Assessment)> {
    let auth = &ctx.authority;
    let rt = Runtime::load_for_checks(config, auth)?;
    let ev = Evaluator::new(&rt, auth.store(), auth.now())?;
    let assessment = assess(&ev, auth.store())?;
    drop(ev);
    let items = findings::collect(auth.store(), auth.now(), stale_days, &assessment.conflicts)?;
    Ok((rt, items, assessment))
}

/// Runs `airlock inventory`.
pub fn run(config: &Path, args: InventoryArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    if let Some(InventoryCmd::ImportScan {
        file,
        not_agent_readable,
    }) = args.cmd
    {
        return import_scan(&ctx, &file, !not_agent_readable, out);
    }
    let (_rt, items, _) = load_items(config, &ctx, args.stale_days)?;

    if out.json() {
        out.lines(&items)?;
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                vec![
                    i.kind.to_string(),
                    i.id.clone(),
                    i.owner.clone().unwrap_or_else(|| "-".into()),
                    if i.kind == "unmanaged" {
                        i.found_at.clone().unwrap_or_default()
                    } else {
                        i.environments.join(",")
                    },
                    i.status.clone(),
                    i.expires.clone().unwrap_or_else(|| "-".into()),
                    i.last_used.clone().unwrap_or_else(|| "-".into()),
                    i.findings
                        .iter()
                        .map(|f| format!("{}:{}", f.severity.as_str(), f.code))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect();
        out.table(
            &[
                "KIND",
                "ID",
                "OWNER",
                "ENV / FOUND AT",
                "STATUS",
                "EXPIRES",
                "LAST USED",
                "FINDINGS",
            ],
            &rows,
        )?;
    }
    let worst = items.iter().filter_map(Item::worst).max();
    if let (Some(threshold), Some(w)) = (args.fail_on, worst) {
        let threshold = Severity::from(threshold);
        if w >= threshold {
            eprintln!(
                "airlock inventory: findings at or above `{}` severity exist; fix them or lower `--fail-on`",
                threshold.as_str()
            );
            return Ok(ExitCode::from(CHECK_FAILED));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn import_scan(
    ctx: &Ctx,
    file: &Path,
    agent_readable: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let bytes = if file == Path::new("-") {
        crate::output::read_stdin_limited(import::MAX_REPORT, "the scan report")?
    } else {
        let len = std::fs::metadata(file)
            .map_err(|e| {
                fail(
                    crate::exit::NOT_FOUND,
                    format!("cannot read scan report `{}`: {e}; write one with `airlock scan --json PATH > report.json`", file.display()),
                )
            })?
            .len();
        if len > import::MAX_REPORT as u64 {
            return Err(fail(INVALID, format!("refused: `{}` is larger than {} bytes; is it really an `airlock scan --json` report?", file.display(), import::MAX_REPORT)));
        }
        std::fs::read(file)?
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(
            INVALID,
            format!(
                "`{}` is not UTF-8 text; expected the JSON Lines of `airlock scan --json`",
                file.display()
            ),
        )
    })?;
    let auth = &ctx.authority;
    let actor = Actor::local_operator();
    let parsed = import::parse(&text, agent_readable, auth.now(), &actor.id).map_err(|e| {
        fail(
            INVALID,
            format!("{}: {e}; nothing was imported", file.display()),
        )
    })?;
    let new = auth.import_unmanaged(&actor, &file.display().to_string(), &parsed.found)?;
    if out.json() {
        out.value(&serde_json::json!({
            "imported": parsed.found.len(),
            "new": new,
            "agent_readable": agent_readable,
            "airlock_tokens_skipped": parsed.airlock_tokens,
            "credentials": parsed.found,
        }))?;
    } else {
        outln!(
            "imported {} unmanaged credential(s) ({new} new){}",
            parsed.found.len(),
            if agent_readable {
                ", assumed readable by agents"
            } else {
                ""
            }
        )?;
        for f in &parsed.found {
            let loc = f
                .location
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default();
            outln!(
                "  {} {} at {}:{}:{}{loc}",
                f.kind,
                f.redacted,
                f.file,
                f.line,
                f.column
            )?;
        }
        if parsed.airlock_tokens > 0 {
            outln!(
                "skipped {} Airlock token(s): they are managed; `airlock scan --revoke-found` revokes leaked ones",
                parsed.airlock_tokens
            )?;
        }
        outln!("see them with `airlock inventory`")?;
    }
    Ok(ExitCode::SUCCESS)
}
