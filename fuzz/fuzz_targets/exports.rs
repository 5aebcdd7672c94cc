//! Slack day files, Notion paths and office XML text extraction on arbitrary input.
#![no_main]

use airlock_scan::exports;
use airlock_scan::Scanner;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::with_builtins().unwrap_or_else(|e| panic!("built-in rules: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let _ = exports::scan_slack_day(scanner(), data, "f", "c", "2026-01-01", &HashMap::new());
    let _ = exports::xml_text(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = exports::notion_location(s);
        let _ = exports::is_slack_day_file(s);
    }
});
