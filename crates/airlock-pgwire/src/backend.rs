//! Messages a server sends: the ones the proxy reads, and the ones it writes itself.

use crate::{message, put_cstr, Reader, WireError};

/// What an `R` message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// Authentication succeeded.
    Ok,
    /// Send the password in clear text.
    Cleartext,
    /// Send `md5(md5(password + user) + salt)`.
    Md5 {
        /// The salt.
        salt: [u8; 4],
    },
    /// Start SASL with one of these mechanisms.
    Sasl(Vec<String>),
    /// A SASL challenge.
    SaslContinue(Vec<u8>),
    /// The SASL outcome, to verify.
    SaslFinal(Vec<u8>),
    /// A method the proxy does not speak (Kerberos, GSS, SSPI).
    Unsupported(i32),
}

/// A server message the proxy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend<'a> {
    /// `R`.
    Auth(AuthRequest),
    /// `S`: a run-time parameter's current value.
    ParameterStatus {
        /// Its name.
        name: &'a str,
        /// Its value.
        value: &'a str,
    },
    /// `K`: the key a cancel request must present.
    BackendKeyData {
        /// Process id.
        pid: i32,
        /// Secret key.
        key: i32,
    },
    /// `Z`: the server is idle; `I` idle, `T` in a transaction, `E` in a failed one.
    ReadyForQuery(u8),
    /// `E`: an error, as (field code, value) pairs.
    Error(Vec<(u8, &'a str)>),
    /// Any other message type.
    Other(u8),
}

/// Decodes one whole message (`msg` includes the type byte and length).
pub fn decode(msg: &[u8]) -> Result<Backend<'_>, WireError> {
    let (&tag, rest) = msg.split_first().ok_or(WireError::Truncated('?'))?;
    let body = rest.get(4..).ok_or(WireError::Truncated(tag as char))?;
    let mut r = Reader::new(body, tag);
    Ok(match tag {
        b'R' => Backend::Auth(match r.i32()? {
            0 => AuthRequest::Ok,
            3 => AuthRequest::Cleartext,
            5 => {
                let s = r.bytes(4)?;
                AuthRequest::Md5 {
                    salt: [s[0], s[1], s[2], s[3]],
                }
            }
            10 => {
                let mut mechanisms = Vec::new();
                loop {
                    let m = r.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m.to_string());
                }
                AuthRequest::Sasl(mechanisms)
            }
            11 => AuthRequest::SaslContinue(r.rest().to_vec()),
            12 => AuthRequest::SaslFinal(r.rest().to_vec()),
            other => AuthRequest::Unsupported(other),
        }),
        b'S' => Backend::ParameterStatus {
            name: r.cstr()?,
            value: r.cstr()?,
        },
        b'K' => Backend::BackendKeyData {
            pid: r.i32()?,
            key: r.i32()?,
        },
        b'Z' => {
            let s = r.u8()?;
            if !matches!(s, b'I' | b'T' | b'E') {
                return Err(WireError::Truncated('Z'));
            }
            Backend::ReadyForQuery(s)
        }
        b'E' => {
            let mut fields = Vec::new();
            while !r.is_empty() {
                let code = r.u8()?;
                if code == 0 {
                    break;
                }
                fields.push((code, r.cstr()?));
            }
            Backend::Error(fields)
        }
        other => Backend::Other(other),
    })
}

/// An error or notice the proxy writes to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'a> {
    /// `ERROR` or `FATAL`.
    pub severity: &'a str,
    /// The SQLSTATE, e.g. `42501`.
    pub code: &'a str,
    /// What happened.
    pub message: &'a str,
    /// More detail, if any.
    pub detail: Option<&'a str>,
    /// What to do next.
    pub hint: Option<&'a str>,
}

/// Encodes an ErrorResponse.
pub fn encode_error(r: &Report<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    for (code, value) in [
        (b'S', Some(r.severity)),
        (b'V', Some(r.severity)),
        (b'C', Some(r.code)),
        (b'M', Some(r.message)),
        (b'D', r.detail),
        (b'H', r.hint),
    ] {
        if let Some(v) = value {
            body.push(code);
            put_cstr(&mut body, v);
        }
    }
    body.push(0);
    message(b'E', &body)
}

/// Encodes ReadyForQuery with a transaction status byte.
pub fn encode_ready(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

/// Encodes an authentication request (`0` ok, `3` cleartext password).
pub fn encode_auth(code: i32) -> Vec<u8> {
    message(b'R', &code.to_be_bytes())
}

/// Encodes BackendKeyData.
pub fn encode_key(pid: i32, key: i32) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(key.to_be_bytes());
    message(b'K', &body)
}

/// Encodes ParameterStatus.
pub fn encode_parameter(name: &str, value: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_cstr(&mut body, name);
    put_cstr(&mut body, value);
    message(b'S', &body)
}

/// The value of an error's field (`M` message, `C` code, …).
pub fn field<'a>(fields: &[(u8, &'a str)], code: u8) -> Option<&'a str> {
    fields.iter().find(|(c, _)| *c == code).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_error_round_trips_with_hint_and_code() {
        let bytes = encode_error(&Report {
            severity: "ERROR",
            code: "42501",
            message: "refused",
            detail: None,
            hint: Some("ask a human"),
        });
        let Backend::Error(fields) = decode(&bytes).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(field(&fields, b'C'), Some("42501"));
        assert_eq!(field(&fields, b'M'), Some("refused"));
        assert_eq!(field(&fields, b'H'), Some("ask a human"));
        assert_eq!(field(&fields, b'D'), None);
    }

    #[test]
    fn ready_for_query_states_are_checked() {
        assert_eq!(
            decode(&encode_ready(b'T')).unwrap(),
            Backend::ReadyForQuery(b'T')
        );
        assert!(decode(&encode_ready(b'x')).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let msg = message(tag, &body);
            let _ = decode(&msg);
        }
    }
}
