//! Any byte string presented as a token: the format check never panics, and anything it accepts
//! re-parses to the same hash.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if airlock_token::check(s).is_ok() {
            let t = airlock_token::Token::parse(s).expect("check and parse agree");
            assert_eq!(t.hash(), airlock_token::TokenHash::of(s));
        }
    }
});
