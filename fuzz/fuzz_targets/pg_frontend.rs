//! Any bytes from a client: the splitter and the frontend decoders answer with a value or an
//! error, never a panic; every byte is accounted for exactly once (relayed, held whole, or
//! dropped), so nothing a client sends can slip past the door unread or be read twice.
#![no_main]
use airlock_pgwire::frame::{Chunk, Splitter};
use airlock_pgwire::frontend;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frontend::decode_startup(data);
    let mut s = Splitter::new(256);
    let mut at = 0usize;
    // Feed in growing windows, as sockets do.
    for end in (0..=data.len()).step_by(7).chain(std::iter::once(data.len())) {
        loop {
            let buf = &data[at..end];
            match s.next(buf, |t| matches!(t, b'Q' | b'P' | b'B' | b'C' | b'F' | b'X' | b'p')) {
                Ok(Chunk::NeedMore) | Err(_) => break,
                Ok(Chunk::Message { len, .. }) => {
                    assert!(len <= buf.len() && len <= 256);
                    let _ = frontend::decode(&buf[..len]);
                    at += len;
                }
                Ok(Chunk::Relay(n)) | Ok(Chunk::Discard(n)) => {
                    assert!(n <= buf.len());
                    if n == 0 {
                        break;
                    }
                    at += n;
                }
                Ok(Chunk::Oversize { .. }) => at += 5,
            }
        }
    }
    assert!(at <= data.len());
});
