//! The PostgreSQL frontend/backend protocol (version 3.0) as the proxy needs it.
//!
//! Pure code, no I/O: [`frame`] splits a byte stream into messages without copying the ones the
//! proxy only relays; [`frontend`] and [`backend`] decode the messages it inspects and encode the
//! ones it writes; [`auth`] answers the server's authentication requests with a sealed password.
//! Decoders never panic on hostile bytes: every length is checked and every error is a value.

pub mod auth;
pub mod backend;
pub mod frame;
pub mod frontend;

/// Why bytes could not be read as a protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length field is outside what the protocol allows.
    #[error("message length {0} is invalid")]
    BadLength(u64),
    /// A message is larger than the proxy inspects.
    #[error("a `{tag}` message of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// The message type byte, as a character.
        tag: char,
        /// Its declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body ended before a field did.
    #[error("`{0}` message is truncated")]
    Truncated(char),
    /// A string field is not NUL-terminated or not UTF-8.
    #[error("`{0}` message has a malformed string")]
    BadString(char),
    /// A startup packet asks for a protocol version the proxy does not speak.
    #[error("unsupported protocol version {major}.{minor}")]
    Version {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// Server authentication failed or asked for something unsupported.
    #[error("{0}")]
    Auth(String),
}

/// A cursor over a message body.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    tag: char,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], tag: u8) -> Reader<'a> {
        Reader {
            buf,
            tag: tag as char,
        }
    }

    pub(crate) fn cstr(&mut self) -> Result<&'a str, WireError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::BadString(self.tag))?;
        let s =
            std::str::from_utf8(&self.buf[..end]).map_err(|_| WireError::BadString(self.tag))?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated(self.tag));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Appends a message: type byte, length, body.
pub fn put_message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    // Bodies written here are small (errors, auth); the cast cannot truncate.
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// A whole message: type byte, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    put_message(&mut out, tag, body);
    out
}

/// Appends a NUL-terminated string; any NUL inside is dropped so it cannot end the field early.
pub fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}
