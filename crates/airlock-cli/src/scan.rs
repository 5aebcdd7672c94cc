//! `airlock scan`: find credentials in files, directories, archives, exports and stdin.
//!
//! Exit codes: 0 no findings, 1 findings remain (after baseline and allowlists), 2 usage or
//! I/O error.

use airlock_scan::baseline::Baseline;
use airlock_scan::config::Config;
use airlock_scan::inputs::{self, Limits, NoProgress, Progress, ScanOptions};
use airlock_scan::report;
use anyhow::Context;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable text, coloured on a terminal.
    Human,
    /// One JSON object per finding, one per line.
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
}

/// Arguments of `airlock scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files, directories or archives to scan; `-` reads standard input. Default: `.`.
    pub paths: Vec<PathBuf>,
    /// Revoke every live Airlock token found (audited); needs this Airlock's airlock.toml.
    #[arg(long)]
    pub revoke_found: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Shorthand for `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Shorthand for `--format sarif`.
    #[arg(long, conflicts_with_all = ["format", "json"])]
    pub sarif: bool,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Skip files excluded by .gitignore/.ignore (by default they are scanned: `.env` lives there).
    #[arg(long)]
    pub respect_gitignore: bool,
    /// Scanner configuration (TOML): user rules, allowlisted paths and regexes.
    // `--rules`, not `--config`: `--config` is the global airlock.toml option.
    #[arg(
        long = "rules",
        id = "scan_rules",
        value_name = "FILE",
        env = "AIRLOCK_SCAN_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Report only findings whose fingerprint is not in this baseline file.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Write all current findings to this baseline file (and exit 0).
    #[arg(long)]
    pub baseline_write: Option<PathBuf>,
    /// How many archives deep to open.
    #[arg(long, default_value_t = Limits::default().max_depth)]
    pub archive_depth: u32,
    /// Bytes one archive may expand to before it is refused as a possible archive bomb.
    #[arg(long, default_value_t = Limits::default().max_archive_bytes)]
    pub archive_max_bytes: u64,
    /// Worker threads (default: all cores, at least 4 so that disk reads overlap scanning).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Colour: auto (on a terminal), always, never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// Runs `airlock scan`; errors are printed here (as JSON with `--json`), with scan's exit code 2.
pub fn run(
    args: ScanArgs,
    airlock_config: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // `airlock --json scan` and `airlock scan --json` both ask for JSON, errors included.
    let json = json || args.json;
    match run_inner(args, airlock_config) {
        Ok(code) => Ok(code),
        Err(e) if crate::output::is_stdout_closed(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let kind = if e.chain().any(|c| c.is::<io::Error>()) {
                "io"
            } else {
                "invalid"
            };
            crate::exit::print(
                "airlock scan: error",
                kind,
                &crate::exit::message(&e),
                2,
                json,
            );
            Ok(ExitCode::from(2))
        }
    }
}

/// Closes the loop with the authority: every Airlock token found is looked up by hash and
/// reported as live, expired, revoked or unknown with its identity and owner; with
/// `--revoke-found` the live ones are revoked (each revocation audited).
fn check_airlock_tokens(
    findings: &mut [airlock_scan::Finding],
    config: &std::path::Path,
    revoke: bool,
) -> anyhow::Result<()> {
    if !findings.iter().any(|f| f.airlock_token().is_some()) {
        return Ok(());
    }
    if !config.exists() {
        if revoke {
            anyhow::bail!(
                "`--revoke-found` needs this Airlock's configuration, and `{}` does not exist; pass --config",
                config.display()
            );
        }
        eprintln!(
            "airlock scan: note: Airlock tokens found; run where airlock.toml is (or pass --config) to learn whether they are live"
        );
        return Ok(());
    }
    let ctx = crate::context::Ctx::load(config)?;
    let auth = &ctx.authority;
    for f in findings.iter_mut() {
        let Some(token) = f.airlock_token().map(str::to_string) else {
            continue;
        };
        let info = auth.inspect_token(&token, auth.now())?;
        let mut v = serde_json::to_value(&info)?;
        if revoke && info.status == "live" {
            if let Some(id) = &info.token_id {
                let reason = format!("found by airlock scan in {} line {}", f.file, f.line);
                auth.revoke(&airlock_audit::Actor::local_operator(), id, &reason)?;
                v["revoked_now"] = serde_json::Value::Bool(true);
            }
        }
        let where_ = match &f.location {
            Some(l) => format!("{} ({l})", f.file),
            None => format!("{}:{}", f.file, f.line),
        };
        let who = match (&info.identity, &info.owner) {
            (Some(i), Some(o)) => format!(" of `{i}` (owner {o})"),
            (Some(i), None) => format!(" of `{i}`"),
            _ => String::new(),
        };
        let id = info.token_id.clone().unwrap_or_default();
        match (info.status, v.get("revoked_now").is_some()) {
            ("live", true) => eprintln!("airlock scan: {where_}: live Airlock token {id}{who}: revoked now"),
            ("live", false) => eprintln!(
                "airlock scan: {where_}: LIVE Airlock token {id}{who}: revoke it with `airlock token revoke {id}` or rerun with --revoke-found"
            ),
            (status, _) => eprintln!("airlock scan: {where_}: Airlock token {id}{who} is {status}"),
        }
        f.authority = Some(v);
    }
    Ok(())
}

fn run_inner(args: ScanArgs, airlock_config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let format = if args.json {
        Format::Json
    } else if args.sarif {
        Format::Sarif
    } else {
        args.format
    };
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| {
                format!(
                    "cannot read config `{}`; check the path given to --rules",
                    p.display()
                )
            })?;
            Config::parse(&text).with_context(|| format!("in `{}`", p.display()))?
        }
        None => Config::default(),
    };
    let scanner = config
        .scanner()
        .context("fix the rule in the configuration file")?;
    let opts = ScanOptions {
        respect_gitignore: args.respect_gitignore,
        limits: Limits {
            max_depth: args.archive_depth,
            max_archive_bytes: args.archive_max_bytes,
            ..Limits::default()
        },
        threads: args.threads,
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let (stdin, files): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.into_iter().partition(|p| p.as_os_str() == "-");

    let show_bar = !args.no_progress && io::stderr().is_terminal() && !files.is_empty();
    let bar = show_bar.then(|| {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Bar(pb)
    });
    let progress: &dyn Progress = match &bar {
        Some(b) => b,
        None => &NoProgress,
    };

    let mut result = if files.is_empty() {
        inputs::Report::default()
    } else {
        inputs::scan_paths(&scanner, &files, &opts, progress).map_err(|e| match e {
            // The hint after the cause: what was wrong first, then what to check.
            inputs::InputError::Unreadable { .. } => {
                io::Error::other(format!("{e}; check that the path exists and is readable"))
            }
            other => io::Error::other(other.to_string()),
        })?
    };
    if !stdin.is_empty() {
        let r = inputs::scan_reader(&scanner, io::stdin().lock(), "<stdin>", &opts);
        result.findings.extend(r.findings);
        result.notices.extend(r.notices);
        result.files += r.files;
        result.bytes += r.bytes;
    }
    if let Some(b) = bar {
        b.0.finish_and_clear();
    }
    for n in &result.notices {
        eprintln!("airlock scan: warning: {}: {}", n.file, n.message);
    }

    if let Some(path) = &args.baseline_write {
        let f = File::create(path)
            .with_context(|| format!("cannot write baseline `{}`", path.display()))?;
        Baseline::of(&result.findings).write(BufWriter::new(f))?;
        eprintln!(
            "airlock scan: wrote {} finding(s) to baseline `{}`",
            result.findings.len(),
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.baseline {
        let f = File::open(path).with_context(|| {
            format!(
                "cannot read baseline `{}`; create one with --baseline-write",
                path.display()
            )
        })?;
        let b = Baseline::read(io::BufReader::new(f))
            .with_context(|| format!("in `{}`", path.display()))?;
        b.filter(&mut result.findings);
    }

    check_airlock_tokens(&mut result.findings, airlock_config, args.revoke_found)?;

    let to_terminal = args.output.is_none() && io::stdout().is_terminal();
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => to_terminal,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(BufWriter::new(File::create(p).with_context(|| {
                format!("cannot write report `{}`", p.display())
            })?))
        }
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let written = (|| -> io::Result<()> {
        match format {
            Format::Human => {
                report::write_human(&mut out, &result.findings, color)?;
                eprintln!(
                    "airlock scan: {} finding(s) in {} file(s), {:.1} MB scanned{}",
                    result.findings.len(),
                    result.files,
                    result.bytes as f64 / 1e6,
                    if result.binary_skipped > 0 {
                        format!(", {} binary file(s) skipped", result.binary_skipped)
                    } else {
                        String::new()
                    }
                );
            }
            Format::Json => report::write_json(&mut out, &result.findings)?,
            Format::Sarif => {
                report::write_sarif(&mut out, &result.findings, scanner.rules(), &result.notices)?
            }
        }
        out.flush()
    })();
    written.map_err(|e| match &args.output {
        Some(p) => anyhow::Error::new(e).context(format!("cannot write report `{}`", p.display())),
        None => crate::output::stdout_error(e),
    })?;
    Ok(if result.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
