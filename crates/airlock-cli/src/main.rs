//! The `airlock` command. (Minimal in the scanner branch: only `scan`.)

mod scan;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Airlock: stands between AI agents and real infrastructure.
#[derive(Debug, Parser)]
#[command(name = "airlock", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find credentials in files, directories, archives, chat and wiki exports, or stdin.
    Scan(scan::ScanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("airlock: error: {e:#}");
        ExitCode::from(2)
    })
}
