//! RFC 6238 time-based one-time passwords: HMAC-SHA1, 6 digits, 30-second steps.
//!
//! These are the parameters every authenticator app defaults to, so enrolment is a QR code and
//! nothing else. HOTP (RFC 4226) is computed over the step number `floor(unix_time / 30)`, and
//! the 20-byte HMAC is cut down to 6 digits by the RFC's dynamic truncation.
//!
//! [`TotpSecret::verify`] accepts the current step and one on either side (clock skew of up to
//! 30 seconds each way), and refuses any step at or before the last one used, so a code that
//! was seen once (over a shoulder, in a log) cannot be replayed. The caller keeps the matched
//! step per approver and passes it back as `last_used_step` next time.
//!
//! Base32 (RFC 4648, no padding, as authenticator apps expect) comes from the `data-encoding`
//! crate; everything else is written here against the RFCs.

use airlock_core::Secret;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Seconds in one time step.
pub const PERIOD: u64 = 30;
/// Steps accepted on either side of the current one (clock skew between phone and server).
pub const SKEW_STEPS: u64 = 1;
/// Bytes in a generated secret: 160 bits, the length RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;
/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "Airlock";

/// The shortest secret accepted when importing: RFC 4226 requires at least 128 bits.
const MIN_SECRET_LEN: usize = 16;
/// The longest secret accepted when importing; HMAC-SHA1 hashes anything longer than its block.
const MAX_SECRET_LEN: usize = 64;

/// Why a TOTP secret could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The text is not RFC 4648 base32 (the text itself is a secret, so it is not repeated here).
    #[error("totp secret is not valid base32")]
    Base32,
    /// The secret is too short to be safe or too long to be plausible.
    #[error("totp secret is {0} bytes; expected {MIN_SECRET_LEN} to {MAX_SECRET_LEN}")]
    Length(usize),
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The code is not exactly 6 ASCII digits.
    #[error("a totp code is exactly {DIGITS} digits")]
    Malformed,
    /// The code matches no step in the accepted window.
    #[error("totp code does not match")]
    Mismatch,
    /// The code matches a step that was already used: a replay.
    #[error("totp code was already used; wait for the next code")]
    Replayed,
    /// The time given is before 1970, where no step exists.
    #[error("time `{0}` is before the unix epoch")]
    Time(i64),
}

/// Why a QR code could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a qr code for this uri: {0}")]
pub struct QrError(String);

/// A TOTP shared secret; it never prints and is wiped on drop.
#[derive(Clone)]
pub struct TotpSecret(Secret<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// The time step that contains `unix_time`, or `None` before 1970.
pub fn step_at(unix_time: i64) -> Option<u64> {
    u64::try_from(unix_time).ok().map(|t| t / PERIOD)
}

impl TotpSecret {
    /// Makes a new secret of [`SECRET_LEN`] random bytes from the operating system.
    pub fn generate() -> Result<Self, SecretError> {
        let mut raw = vec![0u8; SECRET_LEN];
        getrandom::getrandom(&mut raw).map_err(|_| SecretError::Random)?;
        Ok(TotpSecret(Secret::new(raw)))
    }

    /// Takes a secret from raw bytes (16 to 64 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(TotpSecret(Secret::new(bytes.to_vec())))
    }

    /// Reads a base32 secret; case, spaces, dashes and `=` padding are forgiven, as people copy
    /// secrets by hand.
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let clean: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !matches!(c, ' ' | '-' | '=' | '\t' | '\n' | '\r'))
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let raw = Zeroizing::new(
            data_encoding::BASE32_NOPAD
                .decode(clean.as_bytes())
                .map_err(|_| SecretError::Base32)?,
        );
        Self::from_bytes(&raw)
    }

    /// The raw secret bytes, e.g. to seal them for the store.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose()
    }

    /// The secret as RFC 4648 base32 without padding, for typing into an authenticator app.
    pub fn to_base32(&self) -> Secret<String> {
        Secret::new(data_encoding::BASE32_NOPAD.encode(self.0.expose()))
    }

    /// The `otpauth://totp/...` enrolment URI (Google Authenticator key URI format), with the
    /// label, issuer and account percent-encoded; it holds the secret, hence the wrapper.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Secret<String> {
        let secret = self.to_base32();
        Secret::new(format!(
            "otpauth://totp/{issuer_label}:{account}?secret={secret}&issuer={issuer_param}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
            issuer_label = percent_encode(issuer),
            account = percent_encode(account),
            secret = secret.expose(),
            issuer_param = percent_encode(issuer),
        ))
    }

    /// The code for the step containing `unix_time`; times before 1970 count as step 0.
    pub fn code_at(&self, unix_time: i64) -> String {
        self.code_at_step(step_at(unix_time).unwrap_or(0))
    }

    /// The code for one time step.
    pub fn code_at_step(&self, step: u64) -> String {
        let v = hotp(self.0.expose(), step) % 10u32.pow(DIGITS);
        format!("{v:0width$}", width = DIGITS as usize)
    }

    /// Checks `code` at `unix_time` and returns the step it matched, to be stored as the new
    /// `last_used_step`.
    ///
    /// Accepts the current step and [`SKEW_STEPS`] on either side. A step at or before
    /// `last_used_step` is refused as [`TotpError::Replayed`]. Every candidate is computed and
    /// compared in constant time, so timing says nothing about which digits were right.
    pub fn verify(
        &self,
        code: &str,
        unix_time: i64,
        last_used_step: Option<u64>,
    ) -> Result<u64, TotpError> {
        let given = code.as_bytes();
        if given.len() != DIGITS as usize || !given.iter().all(u8::is_ascii_digit) {
            return Err(TotpError::Malformed);
        }
        let now = step_at(unix_time).ok_or(TotpError::Time(unix_time))?;
        let mut matched = None;
        let mut replayed = false;
        for step in now.saturating_sub(SKEW_STEPS)..=now.saturating_add(SKEW_STEPS) {
            let expected = self.code_at_step(step);
            if bool::from(expected.as_bytes().ct_eq(given)) {
                if last_used_step.is_some_and(|last| step <= last) {
                    replayed = true;
                } else {
                    // the latest match wins: it moves last_used_step furthest
                    matched = Some(step);
                }
            }
        }
        match (matched, replayed) {
            (Some(step), _) => Ok(step),
            (None, true) => Err(TotpError::Replayed),
            (None, false) => Err(TotpError::Mismatch),
        }
    }
}

/// HOTP (RFC 4226 section 5.3): HMAC-SHA1 over the big-endian counter, then dynamic truncation
/// to a 31-bit number; the caller reduces it modulo 10^digits.
fn hotp(key: &[u8], counter: u64) -> u32 {
    #[expect(clippy::expect_used, reason = "HMAC takes keys of any length")]
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("hmac key of any length");
    mac.update(&counter.to_be_bytes());
    let hs = mac.finalize().into_bytes();
    // the low 4 bits of the last byte pick where the 4 bytes are read; 15 + 4 <= 20
    let offset = usize::from(hs[hs.len() - 1] & 0x0f);
    let bin = [hs[offset], hs[offset + 1], hs[offset + 2], hs[offset + 3]];
    // the top bit is masked so signed and unsigned implementations agree
    u32::from_be_bytes(bin) & 0x7fff_ffff
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Draws a QR code for `uri` with Unicode half blocks (two modules per character cell), light
/// modules drawn as blocks so it scans on a dark terminal, with the quiet zone included.
pub fn qr_terminal(uri: &str) -> Result<String, QrError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| QrError(e.to_string()))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The RFC 6238 Appendix B SHA1 secret: ASCII "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    const RFC6238_SHA1: [(i64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let key = b"12345678901234567890";
        for (t, want8) in RFC6238_SHA1 {
            let step = step_at(t).unwrap();
            let got8 = format!("{:08}", hotp(key, step) % 100_000_000);
            assert_eq!(got8, want8, "8 digits at t={t}");
            // 6 digits are the same truncation reduced modulo 10^6: the last six digits
            assert_eq!(rfc_secret().code_at(t), want8[2..], "6 digits at t={t}");
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (count, w) in want.iter().enumerate() {
            assert_eq!(rfc_secret().code_at_step(count as u64), *w);
        }
    }

    #[test]
    fn current_code_verifies_and_returns_its_step() {
        let s = rfc_secret();
        let t = 1_111_111_111;
        assert_eq!(s.verify(&s.code_at(t), t, None), Ok(t as u64 / 30));
    }

    #[test]
    fn a_used_step_is_refused_as_a_replay() {
        let s = rfc_secret();
        let t = 1_234_567_890;
        let code = s.code_at(t);
        let step = s.verify(&code, t, None).unwrap();
        assert_eq!(s.verify(&code, t, Some(step)), Err(TotpError::Replayed));
        // an earlier code, still in the skew window, is refused too
        let older = s.code_at(t - 30);
        assert_eq!(s.verify(&older, t, Some(step)), Err(TotpError::Replayed));
        // the next step's code is fine
        let next = s.code_at(t + 30);
        assert_eq!(s.verify(&next, t + 30, Some(step)), Ok(step + 1));
    }

    #[test]
    fn one_step_of_skew_either_way_is_accepted_two_are_not() {
        let s = rfc_secret();
        let t = 2_000_000_010;
        for (delta, ok) in [
            (-60, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let code = s.code_at(t + delta);
            let r = s.verify(&code, t, None);
            if ok {
                assert_eq!(r, Ok(step_at(t + delta).unwrap()), "delta {delta}");
            } else {
                assert_eq!(r, Err(TotpError::Mismatch), "delta {delta}");
            }
        }
    }

    #[test]
    fn malformed_codes_are_refused_before_any_hmac() {
        let s = rfc_secret();
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            " 12345",
            "１２３４５６",
            "123 456",
            "-12345",
        ] {
            assert_eq!(
                s.verify(bad, 59, None),
                Err(TotpError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn times_before_the_epoch_are_refused() {
        assert_eq!(
            rfc_secret().verify("123456", -1, None),
            Err(TotpError::Time(-1))
        );
    }

    #[test]
    fn base32_round_trips_and_forgives_copying() {
        let s = TotpSecret::generate().unwrap();
        let b32 = s.to_base32();
        assert_eq!(b32.expose().len(), 32);
        let back = TotpSecret::from_base32(b32.expose()).unwrap();
        assert_eq!(back.expose_bytes(), s.expose_bytes());
        let sloppy = b32.expose().to_lowercase();
        let spaced: String = sloppy
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let back = TotpSecret::from_base32(&spaced).unwrap();
        assert_eq!(back.expose_bytes(), s.expose_bytes());
        // RFC 4648 test vector
        assert_eq!(
            TotpSecret::from_bytes(b"12345678901234567890")
                .unwrap()
                .to_base32()
                .expose(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn bad_base32_and_short_secrets_are_refused_without_echoing_them() {
        let e = TotpSecret::from_base32("NOT*BASE32!!SECRETISH").unwrap_err();
        assert!(matches!(e, SecretError::Base32));
        assert!(!e.to_string().contains("SECRETISH"));
        assert!(matches!(
            TotpSecret::from_base32("GEZDGNBV"),
            Err(SecretError::Length(5))
        ));
    }

    #[test]
    fn the_secret_never_prints() {
        let s = rfc_secret();
        let dbg = format!(
            "{s:?} {:?} {}",
            s.to_base32(),
            s.otpauth_uri("Airlock", "a")
        );
        assert!(!dbg.contains("GEZDGNBV"));
        assert!(!dbg.contains("1234567890"));
    }

    #[test]
    fn otpauth_uri_has_the_expected_shape_and_encodes_names() {
        let s = rfc_secret();
        assert_eq!(
            s.otpauth_uri(ISSUER, "alice").expose(),
            "otpauth://totp/Airlock:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Airlock&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            s.otpauth_uri("Air lock&Co", "bob@example.com:x?y").expose(),
            "otpauth://totp/Air%20lock%26Co:bob%40example.com%3Ax%3Fy?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Air%20lock%26Co&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn qr_renders_a_square_block() {
        let uri = rfc_secret().otpauth_uri(ISSUER, "alice");
        let qr = qr_terminal(uri.expose()).unwrap();
        let lines: Vec<&str> = qr.lines().collect();
        assert!(!lines.is_empty());
        let width = lines[0].chars().count();
        assert!(width >= 21 + 8, "a version 1 code plus quiet zone at least");
        assert!(
            lines.iter().all(|l| l.chars().count() == width),
            "every row as wide"
        );
        // each character cell holds two modules vertically
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(qr
            .chars()
            .all(|c| matches!(c, ' ' | '█' | '▀' | '▄' | '\n')));
        assert!(qr.contains('█'));
    }

    #[test]
    fn qr_refuses_data_that_does_not_fit() {
        assert!(qr_terminal(&"x".repeat(8000)).is_err());
    }

    proptest! {
        #[test]
        fn verify_never_panics(code in ".{0,12}", t in any::<i64>(), last in proptest::option::of(any::<u64>())) {
            let _ = rfc_secret().verify(&code, t, last);
        }

        #[test]
        fn from_base32_never_panics(text in ".{0,80}") {
            let _ = TotpSecret::from_base32(&text);
        }

        #[test]
        fn verify_never_panics_on_digit_strings(code in "[0-9]{6}", t in any::<i64>(), last in proptest::option::of(any::<u64>())) {
            let _ = rfc_secret().verify(&code, t, last);
        }

        #[test]
        fn code_at_round_trips_through_verify(key in proptest::collection::vec(any::<u8>(), 16..64), t in 0i64..=i64::MAX) {
            let s = TotpSecret::from_bytes(&key).unwrap();
            let code = s.code_at(t);
            prop_assert_eq!(code.len(), 6);
            let step = step_at(t).unwrap();
            prop_assert_eq!(s.verify(&code, t, None), Ok(step));
            if step > 0 {
                // still fine with the previous step used; refused once its own step is used
                prop_assert_eq!(s.verify(&code, t, Some(step - 1)), Ok(step));
            }
            // refused once its own step is used, unless by chance the next step has the same code
            if s.code_at_step(step + 1) != code {
                prop_assert_eq!(s.verify(&code, t, Some(step)), Err(TotpError::Replayed));
            }
        }
    }
}
