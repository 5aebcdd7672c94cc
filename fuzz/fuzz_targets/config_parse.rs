//! Any text as airlock.toml: parsing answers with a config or a located error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = airlock_config::Config::parse(s, Path::new("airlock.toml"), Path::new("."));
    }
});
