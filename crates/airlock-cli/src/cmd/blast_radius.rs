//! `airlock blast-radius TOKEN-ID | IDENTITY | SECRET` and `--all`: the worst a credential can
//! do, decided by the real policy set.

use crate::context::Ctx;
use crate::exit::{fail, INVALID, NOT_FOUND};
use crate::output::Output;
use airlock_gateway::Runtime;
use airlock_inventory::reach::{BlastRadius, Evaluator, Reach};
use airlock_inventory::{assess, render, InventoryError};
use std::path::Path;
use std::process::ExitCode;

/// Output forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For humans.
    Text,
    /// For scripts (same as `--json`).
    Json,
    /// Graphviz DOT (`| dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// Arguments of `airlock blast-radius`.
#[derive(clap::Args, Debug)]
pub struct BlastArgs {
    /// A token id (`tok_…`), an identity name, or a sealed secret (`NAME` or `NAME@ENV`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    what: Option<String>,
    /// Rank every identity by its worst case, with separation-of-duties conflicts.
    #[arg(long)]
    all: bool,
    /// Output form; `--json` is the same as `--format json`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also list denied pairs in text output (JSON always has them).
    #[arg(long)]
    denied: bool,
}

/// Runs `airlock blast-radius`.
pub fn run(config: &Path, args: BlastArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(config)?;
    let auth = &ctx.authority;
    let rt = Runtime::load_for_checks(config, auth)?;
    let ev = Evaluator::new(&rt, auth.store(), auth.now())?;
    let format = if out.json() {
        Format::Json
    } else {
        args.format
    };
    if args.all {
        let a = assess(&ev, auth.store())?;
        match format {
            Format::Json => {
                let ranked: Vec<serde_json::Value> = a
                    .radii
                    .iter()
                    .enumerate()
                    .map(|(n, b)| {
                        serde_json::json!({
                            "rank": n + 1,
                            "identity": b.subject.id,
                            "identity_kind": b.subject.identity_kind,
                            "owner": b.subject.owner,
                            "tokens": b.subject.tokens,
                            "headline": b.headline,
                            "score": b.score,
                            "destroy": b.destroy,
                            "conflicts": a.conflicts.iter().filter(|c| c.identity == b.subject.id).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                out.lines(&ranked)?;
            }
            Format::Text => {
                let rows: Vec<Vec<String>> = a
                    .radii
                    .iter()
                    .enumerate()
                    .map(|(n, b)| {
                        let s = &b.score;
                        vec![
                            (n + 1).to_string(),
                            b.subject.id.clone(),
                            b.subject
                                .identity_kind
                                .map(|k| k.to_string())
                                .unwrap_or_default(),
                            s.protected_dangerous_without_human.to_string(),
                            s.protected_dangerous_after_approval.to_string(),
                            s.reached.to_string(),
                            a.conflicts
                                .iter()
                                .filter(|c| c.identity == b.subject.id)
                                .map(|c| {
                                    format!("{}:{}@{}", c.severity.as_str(), c.code, c.environment)
                                })
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect();
                out.table(
                    &[
                        "RANK",
                        "IDENTITY",
                        "KIND",
                        "PROTECTED ALONE",
                        "AFTER APPROVAL",
                        "REACHED",
                        "SEPARATION OF DUTIES",
                    ],
                    &rows,
                )?;
                for b in a.radii.iter().filter(|b| b.score.reached > 0) {
                    outln!("{}", b.headline)?;
                }
            }
            Format::Dot | Format::Mermaid => {
                return Err(fail(INVALID, "refused: `--all` prints a ranking; draw one credential at a time with `airlock blast-radius NAME --format dot`"));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let what = crate::cmd::token::token_id_arg(auth.store(), &args.what.unwrap_or_default())?;
    let b = ev.subject(&what).map_err(|e| match e {
        InventoryError::NotFound(_) => fail(NOT_FOUND, e.to_string()),
        other => anyhow::Error::new(other),
    })?;
    match format {
        Format::Json => out.value(&b)?,
        Format::Dot => out!("{}", render::dot(&b))?,
        Format::Mermaid => out!("{}", render::mermaid(&b))?,
        Format::Text => text(&b, args.denied)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn text(b: &BlastRadius, show_denied: bool) -> anyhow::Result<()> {
    let s = &b.subject;
    let mut who = format!("{} {}", s.kind.replace('_', " "), s.id);
    if let (Some(i), Some(k)) = (&s.identity, s.identity_kind) {
        if s.kind == "token" {
            who.push_str(&format!(" of {k} `{i}`"));
        } else {
            who = format!("{k} {}", s.id);
        }
    }
    if let Some(o) = &s.owner {
        who.push_str(&format!(", owned by `{o}`"));
    }
    outln!("{who}")?;
    outln!("{}", b.headline)?;
    for n in &b.notes {
        outln!("note: {n}")?;
    }
    let mut hidden = 0;
    for (class, envs) in &b.groups {
        for (env, t) in envs {
            if !show_denied && t.outright + t.after_approval + t.unchecked == 0 {
                hidden += t.denied;
                continue;
            }
            let mut parts = Vec::new();
            if t.unchecked > 0 {
                parts.push(format!("{} with no policy at all", t.unchecked));
            }
            parts.push(format!("{} outright", t.outright));
            parts.push(format!("{} after approval", t.after_approval));
            parts.push(format!("{} denied", t.denied));
            outln!("\n{class} in {env}: {}", parts.join(", "))?;
            for e in b.entries.iter().filter(|e| {
                e.class == *class
                    && e.environment
                        .as_ref()
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "unknown".into())
                        == *env
                    && (show_denied || e.reach > Reach::Denied)
            }) {
                let how = match e.reach {
                    Reach::Unchecked => "UNCHECKED",
                    Reach::Outright => "outright",
                    Reach::AfterApproval => "after approval",
                    Reach::Denied => "denied",
                };
                let sample = e
                    .statement
                    .as_ref()
                    .map(|s| format!(", e.g. `{s}`"))
                    .unwrap_or_default();
                outln!(
                    "  {how:<15} {} on {}/{} ({}{sample})",
                    e.action,
                    e.upstream,
                    e.resource,
                    e.code
                )?;
            }
        }
    }
    if hidden > 0 {
        outln!("\n{hidden} more pair(s) denied in every other class and environment (`--denied` lists them)")?;
    }
    Ok(())
}
