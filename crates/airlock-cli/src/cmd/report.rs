//! `airlock report compliance`: evidence for auditors, computed from the live store and audit.

use crate::context::Ctx;
use crate::output::Output;
use airlock_inventory::compliance::{self, Inputs};
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

/// Report forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown.
    Md,
    /// A self-contained HTML page.
    Html,
    /// JSON for scripts (same as `--json`).
    Json,
}

/// Report subcommands.
#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Map what Airlock enforces to SOC 2 CC6.1/CC6.6, PCI DSS v4.0.1 7.2.2, the OWASP NHI Top 10
    /// and NIST CSF 2.0 PR.AA, with live evidence and exceptions.
    Compliance {
        /// Output form.
        #[arg(long, value_enum, default_value_t = Format::Md)]
        format: Format,
        /// How many days of audit log to count.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
}

/// Runs a report subcommand.
pub fn run(config: &Path, cmd: ReportCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let ReportCmd::Compliance { format, days } = cmd;
    let ctx = Ctx::load(config)?;
    let (rt, items, a) = crate::cmd::inventory::load_items(config, &ctx, 30)?;
    let auth = &ctx.authority;
    let report = compliance::build(&Inputs {
        store: auth.store(),
        now: auth.now(),
        period_days: days.max(1),
        items: &items,
        radii: &a.radii,
        conflicts: &a.conflicts,
        agent_max_ttl: rt.config.tokens.agent_max_ttl,
        policies: rt.policy.policy_count(),
    })?;
    match if out.json() { Format::Json } else { format } {
        Format::Json => out.value(&report)?,
        Format::Md => out!("{}", compliance::markdown(&report))?,
        Format::Html => out!("{}", compliance::html(&report))?,
    }
    Ok(ExitCode::SUCCESS)
}
