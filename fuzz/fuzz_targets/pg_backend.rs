//! Any bytes from a server: decoding the messages the door reads (authentication requests,
//! parameter status, errors, ReadyForQuery) never panics, and an authentication exchange fed
//! hostile challenges fails with an error rather than a crash.
#![no_main]
use airlock_pgwire::auth::Login;
use airlock_pgwire::backend::{self, Backend};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut login = Login::new("app", b"secret");
    let mut rest = data;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize + 1;
        if len < 5 || len > rest.len() {
            break;
        }
        if let Ok(Backend::Auth(req)) = backend::decode(&rest[..len]) {
            if login.step(req).is_err() {
                break;
            }
        }
        rest = &rest[len..];
    }
});
