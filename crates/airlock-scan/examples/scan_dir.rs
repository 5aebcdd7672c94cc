//! Scans directories with the built-in rules and prints the findings' count and bytes read:
//! the engine without the CLI, for profiling (`valgrind --tool=callgrind`, `perf`).
//!
//! `cargo run --release -p airlock-scan --example scan_dir -- [-jN] DIR...`

use airlock_scan::inputs::{scan_paths, NoProgress, ScanOptions};
use airlock_scan::Scanner;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = ScanOptions::default();
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        match a.strip_prefix("-j") {
            Some(n) => opts.threads = Some(n.parse()?),
            None => paths.push(PathBuf::from(a)),
        }
    }
    let scanner = Scanner::with_builtins()?;
    let report = scan_paths(&scanner, &paths, &opts, &NoProgress)?;
    for f in &report.findings {
        println!("{}\t{}\t{}\t{}", f.rule_id, f.file, f.line, f.column);
    }
    eprintln!(
        "{} findings, {} files, {} bytes",
        report.findings.len(),
        report.files,
        report.bytes
    );
    Ok(())
}
