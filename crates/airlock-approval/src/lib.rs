//! Out-of-band human approval: the pieces the gateway and the store put together.
//!
//! - [`totp`]: RFC 6238 time-based one-time passwords, the second factor an approver types in,
//!   with enrolment helpers (base32 secret, `otpauth://` URI, a QR code for the terminal).
//! - [`notify`]: the notice sent when an approval is pending, as a Slack Block Kit message or a
//!   signed generic webhook, delivered with bounded retries and an audit trail of every attempt.
//! - [`digest`]: the digest an approval is bound to, so an approval for one operation cannot be
//!   spent on another.
//! - [`id`]: approval identifiers.
//!
//! Nothing here keeps state: which TOTP step was used last, which approvals exist and who
//! granted them is the store's business.

pub mod digest;
pub mod id;
pub mod notify;
pub mod totp;

pub use digest::operation_digest;
pub use id::{new_approval_id, RandomError};
