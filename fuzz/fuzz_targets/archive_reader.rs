//! Archive and stream readers (zip, gzip, tar, nesting) on arbitrary bytes, with small limits.
#![no_main]

use airlock_scan::inputs::{Limits, ScanOptions};
use airlock_scan::{scan_reader, Scanner};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::with_builtins().unwrap_or_else(|e| panic!("built-in rules: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let opts = ScanOptions {
        limits: Limits { max_depth: 3, max_archive_bytes: 4 << 20, max_entries: 1000, max_in_memory: 1 << 20 },
        ..ScanOptions::default()
    };
    let report = scan_reader(scanner(), data, "fuzz", &opts);
    assert!(report.bytes <= 4 << 20);
});
