//! `airlock`: the credential authority's command line.
//!
//! Exit codes (documented in the README):
//! 0 success; 1 a check failed (token refused, audit chain broken); 2 bad input or a refused
//! request; 3 not found; 4 environment failure (store, key file, I/O).

// First, so that its `outln!` and `out!` are in scope in every module after it.
#[macro_use]
mod output;
mod cmd;
mod context;
mod exit;
mod scan;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

// The gateway makes a few dozen small allocations per request on its workers and frees many of
// them on the audit thread; glibc malloc spent ~15% of the gateway's CPU on that
// (docs/benchmarks.md), mimalloc a fraction of it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Airlock: scoped, short-lived credentials for AI agents, decided and audited at every call.
#[derive(Parser, Debug)]
#[command(name = "airlock", version, about, long_about = None)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "AIRLOCK_CONFIG",
        default_value = "airlock.toml"
    )]
    config: PathBuf,

    /// Print results (and errors, on stderr) as JSON for scripts.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented airlock.toml, a 0600 master key file, and create the store.
    Init(cmd::init::InitArgs),
    /// Add, list, show, review, offboard and reassign identities.
    #[command(subcommand)]
    Identity(cmd::identity::IdentityCmd),
    /// Issue, list, show, verify and revoke tokens.
    #[command(subcommand)]
    Token(cmd::token::TokenCmd),
    /// Seal upstream secrets; list them (values are never shown).
    #[command(subcommand)]
    Secret(cmd::secret::SecretCmd),
    /// List and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCmd),
    /// Run the gateway: every request decided, audited, and forwarded with the sealed secret.
    Serve(cmd::serve::ServeArgs),
    /// Declare which environment resources of a shared API belong to.
    #[command(subcommand)]
    Resource(cmd::resource::ResourceCmd),
    /// List, show, approve and deny operations waiting for a human (through the gateway's admin API).
    #[command(subcommand)]
    Approvals(cmd::approvals::ApprovalsCmd),
    /// Every identity and credential: owner, purpose, environments, expiry, last use, and findings;
    /// `inventory import-scan` adds what `airlock scan` found.
    Inventory(cmd::inventory::InventoryArgs),
    /// The worst a token, identity or sealed secret can do under the real policy (`--all` ranks everyone).
    BlastRadius(cmd::blast_radius::BlastArgs),
    /// Compliance evidence from the live inventory and audit log.
    #[command(subcommand)]
    Report(cmd::report::ReportCmd),
    /// Find credentials in files, directories, archives, chat and wiki exports, or stdin.
    Scan(scan::ScanArgs),
    /// Replay the incident against a fake cloud API on loopback, narrated step by step.
    Demo(cmd::demo::DemoArgs),
    /// Check policy files, show the schema, explain a decision.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        Command::Init(a) => cmd::init::run(&cli.config, a, &out),
        Command::Identity(c) => cmd::identity::run(&cli.config, c, &out),
        Command::Token(c) => cmd::token::run(&cli.config, c, &out),
        Command::Secret(c) => cmd::secret::run(&cli.config, c, &out),
        Command::Audit(c) => cmd::audit::run(&cli.config, c, &out),
        Command::Serve(a) => cmd::serve::run(&cli.config, a, &out),
        Command::Resource(c) => cmd::resource::run(&cli.config, c, &out),
        Command::Policy(c) => cmd::policy::run(&cli.config, c, &out),
        Command::Demo(a) => cmd::demo::run(a, &out),
        Command::Scan(a) => scan::run(a, &cli.config, cli.json),
        Command::Inventory(a) => cmd::inventory::run(&cli.config, a, &out),
        Command::BlastRadius(a) => cmd::blast_radius::run(&cli.config, a, &out),
        Command::Report(c) => cmd::report::run(&cli.config, c, &out),
        Command::Approvals(c) => cmd::approvals::run(&cli.config, c, &out),
    };
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e, cli.json),
    }
}
