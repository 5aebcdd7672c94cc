//! The Airlock token format.
//!
//! ```text
//! alk_ <43 base62 chars: 256 random bits> <6 base62 chars: CRC32 of everything before>
//! ```
//!
//! The fixed prefix and the checksum let any scanner recognise an Airlock token offline with no
//! false positives, and let the verifier refuse a truncated or mistyped token without a store
//! lookup. The store only ever sees [`TokenHash`]: SHA-256 of the whole token string. A fast hash
//! is right here because the input carries 256 bits of entropy; there is nothing to brute-force.
//! See `docs/token-format.md`.

use airlock_core::Secret;
use sha2::{Digest, Sha256};
use std::fmt;

/// Every Airlock token starts with this.
pub const PREFIX: &str = "alk_";
/// Base62 characters of randomness (32 bytes = 256 bits, fixed width).
pub const RANDOM_LEN: usize = 43;
/// Base62 characters of checksum (a CRC32, fixed width).
pub const CHECKSUM_LEN: usize = 6;
/// Total length of a token string.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed Airlock token. Neither variant carries the string itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Wrong prefix, wrong length or a character outside base62.
    #[error("malformed token: expected `{PREFIX}` followed by {} base62 characters", RANDOM_LEN + CHECKSUM_LEN)]
    Malformed,
    /// The shape is right but the checksum does not match: a typo or a truncated copy.
    #[error("malformed token: checksum mismatch (mistyped or damaged token)")]
    BadChecksum,
}

/// Failure to obtain randomness from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// A token string that has passed the format and checksum checks. It is a secret: it only
/// formats as `[redacted]`.
pub struct Token(Secret<String>);

impl Token {
    /// Generates a fresh token from 256 bits of operating-system randomness.
    pub fn generate() -> Result<Token, RandomError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
        let mut s = String::with_capacity(TOKEN_LEN);
        s.push_str(PREFIX);
        s.push_str(&base62_fixed(&bytes, RANDOM_LEN));
        zeroize::Zeroize::zeroize(&mut bytes);
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&base62_fixed(&crc.to_be_bytes(), CHECKSUM_LEN));
        Ok(Token(Secret::new(s)))
    }

    /// Checks shape and checksum. Never touches a store, so a malformed token costs nothing.
    pub fn parse(s: &str) -> Result<Token, FormatError> {
        check(s)?;
        Ok(Token(Secret::new(s.to_string())))
    }

    /// The token string, for printing once to the caller who asked for it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The hash under which the store knows this token.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// Checks that `s` is a well-formed Airlock token; what a scanner calls to confirm a candidate.
pub fn check(s: &str) -> Result<(), FormatError> {
    let b = s.as_bytes();
    if b.len() != TOKEN_LEN || !s.starts_with(PREFIX) {
        return Err(FormatError::Malformed);
    }
    if !b[PREFIX.len()..].iter().all(|c| c.is_ascii_alphanumeric()) {
        return Err(FormatError::Malformed);
    }
    let body = &b[..TOKEN_LEN - CHECKSUM_LEN];
    let expected = base62_fixed(&crc32fast::hash(body).to_be_bytes(), CHECKSUM_LEN);
    // Constant-time compare is unnecessary: the checksum is public information derived from the
    // token body, not a secret.
    if expected.as_bytes() != &b[TOKEN_LEN - CHECKSUM_LEN..] {
        return Err(FormatError::BadChecksum);
    }
    Ok(())
}

/// SHA-256 of a token string: the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token string.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Rebuilds a hash from its stored hex form.
    pub fn from_hex(s: &str) -> Option<TokenHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(TokenHash(out))
    }

    /// Lowercase hex, for storage.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..12])
    }
}

/// Encodes `bytes` as a big-endian base62 number, left-padded with `0` to exactly `width`.
fn base62_fixed(bytes: &[u8], width: usize) -> String {
    // Long division on a copy of the big-endian number; 32 bytes is small enough that this is
    // cheaper than pulling in a bignum crate.
    let mut num: Vec<u8> = bytes.to_vec();
    let mut out = vec![b'0'; width];
    let mut pos = width;
    while num.iter().any(|&d| d != 0) && pos > 0 {
        let mut rem: u32 = 0;
        for d in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*d);
            *d = (acc / 62) as u8;
            rem = acc % 62;
        }
        pos -= 1;
        out[pos] = ALPHABET[rem as usize];
    }
    zeroize::Zeroize::zeroize(&mut num);
    // Safe: every byte written comes from ALPHABET, which is ASCII.
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_have_the_documented_shape_and_pass_their_own_check() {
        let t = Token::generate().unwrap();
        let s = t.expose();
        assert_eq!(s.len(), TOKEN_LEN);
        assert!(s.starts_with("alk_"));
        assert!(check(s).is_ok());
        assert_eq!(format!("{t:?}"), "Token([redacted])");
    }

    #[test]
    fn two_tokens_are_never_the_same() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn base62_fills_the_width_for_the_largest_values() {
        // 2^256 - 1 needs exactly 43 base62 digits; 2^32 - 1 needs 6.
        assert_eq!(base62_fixed(&[0xff; 32], 43).len(), 43);
        assert!(!base62_fixed(&[0xff; 32], 43).starts_with('0'));
        assert_eq!(base62_fixed(&[0xff; 4], 6), "4gfFC3");
        assert_eq!(base62_fixed(&[0; 4], 6), "000000");
    }

    #[test]
    fn truncated_and_mistyped_tokens_are_refused_before_any_lookup() {
        let t = Token::generate().unwrap();
        let s = t.expose();
        assert_eq!(check(&s[..s.len() - 1]), Err(FormatError::Malformed));
        assert_eq!(check(&format!("{s}x")), Err(FormatError::Malformed));
        assert_eq!(check(&s.replacen("alk_", "alx_", 1)), Err(FormatError::Malformed));
        let mut typo = s.as_bytes().to_vec();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(check(&typo), Err(FormatError::BadChecksum));
    }

    proptest! {
        #[test]
        fn check_never_panics_on_arbitrary_text(s in "\\PC{0,80}") {
            let _ = check(&s);
        }

        #[test]
        fn any_single_character_substitution_is_caught(pos in 4usize..TOKEN_LEN, c in proptest::sample::select(ALPHABET.to_vec())) {
            let t = Token::generate().unwrap();
            let mut b = t.expose().as_bytes().to_vec();
            prop_assume!(b[pos] != c);
            b[pos] = c;
            let s = String::from_utf8(b).unwrap();
            // CRC32 detects every single-symbol error in messages this short.
            prop_assert_eq!(check(&s), Err(FormatError::BadChecksum));
        }

        #[test]
        fn hashes_round_trip_through_hex(bytes in proptest::array::uniform32(any::<u8>())) {
            let h = TokenHash(bytes);
            prop_assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        }
    }
}
