//! Splitting a protocol stream into messages without holding the ones that are only relayed.
//!
//! After startup every message is a type byte, a big-endian length that counts itself, and a
//! body. The proxy inspects a few message types and relays the rest; a relayed message's body
//! (a 1 GB `CopyData`, a wide `DataRow`) streams through in whatever pieces the socket delivers,
//! so memory stays flat whatever the client or server sends.

use crate::WireError;

/// The largest startup packet accepted (PostgreSQL itself allows 10 000 bytes).
pub const MAX_STARTUP: usize = 10_000;

/// What the front of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Not enough bytes to say; read more.
    NeedMore,
    /// A whole message of `len` bytes (type byte and length included) of a type the caller
    /// inspects.
    Message {
        /// The type byte.
        tag: u8,
        /// The message's size on the wire.
        len: usize,
    },
    /// `n` bytes to pass on unchanged: a relayed message's header and the part of its body that
    /// has arrived, or a continuation of its body.
    Relay(usize),
    /// `n` bytes to drop: the rest of a message that was refused for its size.
    Discard(usize),
    /// An inspected message too large to hold: the caller refuses it; its body is then
    /// discarded as it arrives.
    Oversize {
        /// The type byte.
        tag: u8,
        /// The message's declared size.
        len: usize,
    },
}

/// The splitter's memory of a message that is partly through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Rest {
    #[default]
    None,
    Relay(usize),
    Discard(usize),
}

/// Splits one direction of a connection.
#[derive(Debug, Clone)]
pub struct Splitter {
    rest: Rest,
    max: usize,
}

impl Splitter {
    /// A splitter that hands over inspected messages of up to `max` bytes whole.
    pub fn new(max: usize) -> Splitter {
        Splitter {
            rest: Rest::None,
            max,
        }
    }

    /// Classifies the front of `buf`; the caller consumes exactly the bytes the answer names
    /// (`len` for [`Chunk::Message`], `n` for relay/discard, 5 for [`Chunk::Oversize`]).
    pub fn next(&mut self, buf: &[u8], inspect: impl Fn(u8) -> bool) -> Result<Chunk, WireError> {
        match self.rest {
            Rest::Relay(_) | Rest::Discard(_) if buf.is_empty() => return Ok(Chunk::NeedMore),
            Rest::Relay(r) => {
                let n = r.min(buf.len());
                self.rest = if n == r {
                    Rest::None
                } else {
                    Rest::Relay(r - n)
                };
                return Ok(Chunk::Relay(n));
            }
            Rest::Discard(r) => {
                let n = r.min(buf.len());
                self.rest = if n == r {
                    Rest::None
                } else {
                    Rest::Discard(r - n)
                };
                return Ok(Chunk::Discard(n));
            }
            Rest::None => {}
        }
        if buf.len() < 5 {
            return Ok(Chunk::NeedMore);
        }
        let tag = buf[0];
        let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if declared < 4 || declared > i32::MAX as u32 {
            return Err(WireError::BadLength(declared.into()));
        }
        let len = declared as usize + 1;
        if inspect(tag) {
            if len > self.max {
                self.rest = Rest::Discard(len - 5);
                return Ok(Chunk::Oversize { tag, len });
            }
            if buf.len() < len {
                return Ok(Chunk::NeedMore);
            }
            return Ok(Chunk::Message { tag, len });
        }
        let n = len.min(buf.len());
        if n < len {
            self.rest = Rest::Relay(len - n);
        }
        Ok(Chunk::Relay(n))
    }

    /// Whether a message is partly through (its body still to come).
    pub fn mid_message(&self) -> bool {
        self.rest != Rest::None
    }
}

/// Reads a startup packet's length prefix: the body's size, bounded by [`MAX_STARTUP`].
pub fn startup_len(head: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(head) as usize;
    if !(8..=MAX_STARTUP).contains(&len) {
        return Err(WireError::BadLength(len as u64));
    }
    Ok(len - 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        crate::put_message(&mut v, tag, body);
        v
    }

    /// Feeds `stream` in pieces of `piece` bytes; returns what was inspected, relayed and
    /// dropped, as the proxy would see it.
    /// What the proxy saw: inspected messages, relayed bytes, dropped byte count.
    type Seen = (Vec<(u8, Vec<u8>)>, Vec<u8>, usize);

    fn run(stream: &[u8], piece: usize, max: usize) -> Seen {
        let mut s = Splitter::new(max);
        let mut buf = Vec::new();
        let (mut inspected, mut relayed, mut dropped) = (Vec::new(), Vec::new(), 0);
        for part in stream.chunks(piece.max(1)) {
            buf.extend_from_slice(part);
            loop {
                match s.next(&buf, |t| t == b'Q').expect("valid stream") {
                    Chunk::NeedMore => break,
                    Chunk::Message { tag, len } => {
                        inspected.push((tag, buf[5..len].to_vec()));
                        buf.drain(..len);
                    }
                    Chunk::Relay(n) => {
                        relayed.extend(buf.drain(..n));
                    }
                    Chunk::Discard(n) => {
                        dropped += n;
                        buf.drain(..n);
                    }
                    Chunk::Oversize { len, .. } => {
                        dropped += 5;
                        let _ = len;
                        buf.drain(..5);
                    }
                }
            }
        }
        (inspected, relayed, dropped)
    }

    #[test]
    fn inspected_messages_arrive_whole_and_the_rest_is_relayed_byte_for_byte() {
        let mut stream = msg(b'Q', b"select 1\0");
        let copy = msg(b'd', &vec![7u8; 100_000]);
        stream.extend_from_slice(&copy);
        stream.extend(msg(b'Q', b"select 2\0"));
        for piece in [1, 3, 7, 4096, 1 << 20] {
            let (inspected, relayed, dropped) = run(&stream, piece, 1024);
            assert_eq!(
                inspected,
                vec![
                    (b'Q', b"select 1\0".to_vec()),
                    (b'Q', b"select 2\0".to_vec())
                ]
            );
            assert_eq!(relayed, copy);
            assert_eq!(dropped, 0);
        }
    }

    #[test]
    fn an_oversized_inspected_message_is_dropped_not_held() {
        let mut stream = msg(b'Q', &vec![b'x'; 5000]);
        stream.extend(msg(b'Q', b"ok\0"));
        let (inspected, relayed, dropped) = run(&stream, 100, 1024);
        assert_eq!(inspected, vec![(b'Q', b"ok\0".to_vec())]);
        assert!(relayed.is_empty());
        assert_eq!(dropped, 5005);
    }

    #[test]
    fn a_length_below_four_is_an_error() {
        let mut s = Splitter::new(1024);
        assert_eq!(
            s.next(&[b'Q', 0, 0, 0, 3], |_| true),
            Err(WireError::BadLength(3))
        );
    }

    proptest! {
        #[test]
        fn any_split_of_a_stream_gives_the_same_messages(
            bodies in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
            piece in 1usize..64,
        ) {
            let mut stream = Vec::new();
            let mut want_inspected = Vec::new();
            let mut want_relayed = Vec::new();
            for (inspect, body) in &bodies {
                let m = msg(if *inspect { b'Q' } else { b'D' }, body);
                if *inspect { want_inspected.push((b'Q', body.clone())); } else { want_relayed.extend_from_slice(&m); }
                stream.extend(m);
            }
            let (inspected, relayed, dropped) = run(&stream, piece, 1 << 20);
            prop_assert_eq!(inspected, want_inspected);
            prop_assert_eq!(relayed, want_relayed);
            prop_assert_eq!(dropped, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut s = Splitter::new(64);
            let mut buf = bytes.as_slice();
            for _ in 0..100 {
                match s.next(buf, |t| t % 2 == 0) {
                    Ok(Chunk::Message { len, .. }) => buf = &buf[len..],
                    Ok(Chunk::Relay(n)) | Ok(Chunk::Discard(n)) => buf = &buf[n..],
                    Ok(Chunk::Oversize { .. }) => buf = &buf[5..],
                    Ok(Chunk::NeedMore) | Err(_) => break,
                }
            }
        }
    }
}
