//! The whole engine on arbitrary bytes: whole-buffer and streamed scans never panic and agree.
#![no_main]

use airlock_scan::{Origin, Scanner};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::with_builtins().unwrap_or_else(|e| panic!("built-in rules: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let origin = Origin::file("fuzz");
    let whole = scanner().scan_bytes(data, &origin);
    if let Ok(streamed) = scanner().scan_reader(data, &origin, false) {
        assert_eq!(whole.len(), streamed.findings.len());
    }
});
