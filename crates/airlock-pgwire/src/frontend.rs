//! Messages a client sends: the startup packets, and the typed messages the proxy inspects.

use crate::{message, put_cstr, Reader, WireError};

/// The protocol version 3.0 code.
pub const PROTOCOL_3: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A packet of the startup phase (no type byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// The client asks to cancel the query running on another connection.
    Cancel {
        /// The process id from BackendKeyData.
        pid: i32,
        /// The secret key from BackendKeyData.
        key: i32,
    },
    /// A session start with its parameters (`user`, `database`, `options`, …), in order.
    Params(Vec<(String, String)>),
}

/// Decodes a startup packet's body (after the length prefix).
pub fn decode_startup(body: &[u8]) -> Result<Startup, WireError> {
    let mut r = Reader::new(body, b'0');
    let code = r.i32()?;
    match code {
        SSL_REQUEST => Ok(Startup::SslRequest),
        GSSENC_REQUEST => Ok(Startup::GssEncRequest),
        CANCEL_REQUEST => Ok(Startup::Cancel {
            pid: r.i32()?,
            key: r.i32()?,
        }),
        PROTOCOL_3 => {
            let mut params = Vec::new();
            loop {
                let name = r.cstr()?;
                if name.is_empty() {
                    break;
                }
                params.push((name.to_string(), r.cstr()?.to_string()));
            }
            Ok(Startup::Params(params))
        }
        other => Err(WireError::Version {
            major: (other >> 16) as u16,
            minor: (other & 0xffff) as u16,
        }),
    }
}

/// Encodes a startup packet with `params` (protocol 3.0).
pub fn encode_startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for (k, v) in params {
        put_cstr(&mut body, k);
        put_cstr(&mut body, v);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Encodes a CancelRequest for a backend's key.
pub fn encode_cancel(pid: i32, key: i32) -> Vec<u8> {
    let mut out = 16u32.to_be_bytes().to_vec();
    out.extend(CANCEL_REQUEST.to_be_bytes());
    out.extend(pid.to_be_bytes());
    out.extend(key.to_be_bytes());
    out
}

/// An SSLRequest packet.
pub fn encode_ssl_request() -> Vec<u8> {
    let mut out = 8u32.to_be_bytes().to_vec();
    out.extend(SSL_REQUEST.to_be_bytes());
    out
}

/// The frontend messages whose content the proxy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend<'a> {
    /// `Q`: a simple-protocol query string (may hold several statements).
    Query(&'a str),
    /// `P`: prepares `query` as statement `name` (empty: the unnamed statement).
    Parse {
        /// Statement name.
        name: &'a str,
        /// Its text.
        query: &'a str,
    },
    /// `B`: binds statement `statement` into portal `portal`.
    Bind {
        /// Portal name.
        portal: &'a str,
        /// Statement name.
        statement: &'a str,
    },
    /// `C`: closes a statement (`S`) or portal (`P`).
    Close {
        /// `S` or `P`.
        kind: u8,
        /// Its name.
        name: &'a str,
    },
    /// `E`: runs portal `portal` (empty: the unnamed portal).
    Execute {
        /// Portal name.
        portal: &'a str,
    },
    /// `F`: a fast-path function call, which runs code without SQL.
    FunctionCall,
    /// `p`: a password (or SASL response) during authentication.
    Password(&'a [u8]),
    /// `X`: the client is leaving.
    Terminate,
    /// Any other message type: relayed without being read.
    Other(u8),
}

/// Decodes one whole message (`msg` includes the type byte and length).
pub fn decode(msg: &[u8]) -> Result<Frontend<'_>, WireError> {
    let (&tag, rest) = msg.split_first().ok_or(WireError::Truncated('?'))?;
    let body = rest.get(4..).ok_or(WireError::Truncated(tag as char))?;
    let mut r = Reader::new(body, tag);
    Ok(match tag {
        b'Q' => Frontend::Query(r.cstr()?),
        b'P' => {
            let name = r.cstr()?;
            let query = r.cstr()?;
            let n = r.i16()?;
            if n < 0 {
                return Err(WireError::Truncated('P'));
            }
            r.bytes(n as usize * 4)?;
            Frontend::Parse { name, query }
        }
        b'B' => Frontend::Bind {
            portal: r.cstr()?,
            statement: r.cstr()?,
        },
        b'C' => {
            let kind = r.u8()?;
            if kind != b'S' && kind != b'P' {
                return Err(WireError::Truncated('C'));
            }
            Frontend::Close {
                kind,
                name: r.cstr()?,
            }
        }
        b'E' => {
            let portal = r.cstr()?;
            r.bytes(4)?;
            Frontend::Execute { portal }
        }
        b'F' => Frontend::FunctionCall,
        b'p' => Frontend::Password(r.rest()),
        b'X' => Frontend::Terminate,
        other => Frontend::Other(other),
    })
}

/// A simple-protocol Query message.
pub fn encode_query(sql: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(sql.len() + 1);
    put_cstr(&mut body, sql);
    message(b'Q', &body)
}

/// A Parse message for the unnamed statement with no declared parameter types.
pub fn encode_parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_cstr(&mut body, name);
    put_cstr(&mut body, sql);
    body.extend(0i16.to_be_bytes());
    message(b'P', &body)
}

/// A password message (cleartext, md5, or a SASL response payload).
pub fn encode_password(payload: &[u8]) -> Vec<u8> {
    message(b'p', payload)
}

/// A SASLInitialResponse message for `mechanism` with the client-first message.
pub fn encode_sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_cstr(&mut body, mechanism);
    body.extend((data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    message(b'p', &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_startup_packet_round_trips_its_parameters() {
        let pkt = encode_startup(&[("user", "agent"), ("database", "bookings")]);
        let len = crate::frame::startup_len([pkt[0], pkt[1], pkt[2], pkt[3]]).unwrap();
        assert_eq!(len, pkt.len() - 4);
        assert_eq!(
            decode_startup(&pkt[4..]).unwrap(),
            Startup::Params(vec![
                ("user".into(), "agent".into()),
                ("database".into(), "bookings".into())
            ])
        );
    }

    #[test]
    fn ssl_and_cancel_requests_are_recognised() {
        assert_eq!(
            decode_startup(&encode_ssl_request()[4..]).unwrap(),
            Startup::SslRequest
        );
        assert_eq!(
            decode_startup(&encode_cancel(42, -7)[4..]).unwrap(),
            Startup::Cancel { pid: 42, key: -7 }
        );
        assert!(matches!(
            decode_startup(&[0, 2, 0, 0]),
            Err(WireError::Version { major: 2, .. })
        ));
    }

    #[test]
    fn query_and_parse_expose_their_sql() {
        assert_eq!(
            decode(&encode_query("select 1")).unwrap(),
            Frontend::Query("select 1")
        );
        assert_eq!(
            decode(&encode_parse("s1", "drop table t")).unwrap(),
            Frontend::Parse {
                name: "s1",
                query: "drop table t"
            }
        );
    }

    #[test]
    fn a_nul_inside_sql_cannot_split_the_message() {
        // The encoder drops NULs, so what the proxy writes is what it classified.
        assert_eq!(
            decode(&encode_query("select 1\0; drop table t")).unwrap(),
            Frontend::Query("select 1; drop table t")
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let msg = message(tag, &body);
            let _ = decode(&msg);
            let _ = decode_startup(&body);
        }

        #[test]
        fn any_query_text_round_trips(sql in "[^\u{0}]{0,200}") {
            let m = encode_query(&sql);
            prop_assert_eq!(decode(&m).unwrap(), Frontend::Query(&sql));
        }
    }
}
