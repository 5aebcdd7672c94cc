//! Answering a PostgreSQL server's authentication with the sealed credential.
//!
//! SCRAM-SHA-256 and md5 come from `postgres-protocol` (the tokio-postgres project's
//! implementation of what libpq does), so the proxy authenticates exactly as a driver would.

use crate::backend::AuthRequest;
use crate::frontend::{encode_password, encode_sasl_initial};
use crate::WireError;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};

/// The client side of one authentication exchange.
pub struct Login {
    user: String,
    password: Vec<u8>,
    scram: Option<ScramSha256>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).finish()
    }
}

/// What to do after a server's authentication message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes and wait for the next request.
    Send(Vec<u8>),
    /// Nothing to send; wait for the next message.
    Wait,
    /// Authentication succeeded.
    Done,
}

impl Login {
    /// A login as `user` with `password` (empty for trust authentication).
    pub fn new(user: &str, password: &[u8]) -> Login {
        Login {
            user: user.to_string(),
            password: password.to_vec(),
            scram: None,
        }
    }

    /// Answers one authentication request.
    pub fn step(&mut self, req: AuthRequest) -> Result<Step, WireError> {
        match req {
            AuthRequest::Ok => Ok(Step::Done),
            AuthRequest::Cleartext => {
                let mut p = self.password.clone();
                p.push(0);
                Ok(Step::Send(encode_password(&p)))
            }
            AuthRequest::Md5 { salt } => {
                let hash = postgres_protocol::authentication::md5_hash(
                    self.user.as_bytes(),
                    &self.password,
                    salt,
                );
                let mut p = hash.into_bytes();
                p.push(0);
                Ok(Step::Send(encode_password(&p)))
            }
            AuthRequest::Sasl(mechanisms) => {
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(WireError::Auth(format!(
                        "the database offers SASL mechanisms {mechanisms:?}; Airlock speaks SCRAM-SHA-256"
                    )));
                }
                // Channel binding would need the TLS server certificate's hash; the upstream
                // connection's integrity comes from TLS verification instead.
                let scram = ScramSha256::new(&self.password, ChannelBinding::unsupported());
                let first = encode_sasl_initial(SCRAM_SHA_256, scram.message());
                self.scram = Some(scram);
                Ok(Step::Send(first))
            }
            AuthRequest::SaslContinue(data) => {
                let scram = self
                    .scram
                    .as_mut()
                    .ok_or_else(|| WireError::Auth("SASL challenge before SASL start".into()))?;
                scram
                    .update(&data)
                    .map_err(|e| WireError::Auth(format!("SCRAM exchange failed: {e}")))?;
                Ok(Step::Send(encode_password(scram.message())))
            }
            AuthRequest::SaslFinal(data) => {
                let mut scram = self
                    .scram
                    .take()
                    .ok_or_else(|| WireError::Auth("SASL final before SASL start".into()))?;
                scram.finish(&data).map_err(|e| {
                    WireError::Auth(format!("the database's SCRAM signature is wrong: {e}"))
                })?;
                Ok(Step::Wait)
            }
            AuthRequest::Unsupported(code) => Err(WireError::Auth(format!(
                "the database asks for authentication method {code}; Airlock speaks trust, password, md5 and SCRAM-SHA-256"
            ))),
        }
    }
}
