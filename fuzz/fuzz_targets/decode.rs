//! JSON-escape and HTML-entity decoding: never panics, offsets always map inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(d) = airlock_scan::decode::decode(data) {
        for p in 0..d.text.len() {
            assert!(d.to_original(p) <= data.len());
        }
    }
});
