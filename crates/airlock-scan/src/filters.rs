//! Gates that decide whether a regex match is a credential or a look-alike.
//!
//! Precision matters as much as recall: a scanner that cries wolf on every hash gets switched
//! off. Each check here is cheap and runs only on the few bytes a rule already matched.

/// Shannon entropy of `s` in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    // Which bytes occur, so that the sum visits only those (the values are short, and walking
    // all 256 counts dominated the generic rule's cost), still in ascending byte order, so
    // that the floating-point sum is the same as over the whole table.
    let mut seen = [0u64; 4];
    for &b in s {
        counts[b as usize] += 1;
        seen[(b >> 6) as usize] |= 1 << (b & 63);
    }
    let len = s.len() as f64;
    let mut sum = 0.0;
    for (w, mut bits) in seen.into_iter().enumerate() {
        while bits != 0 {
            let b = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let p = f64::from(counts[b]) / len;
            sum += -p * p.log2();
        }
    }
    sum
}

/// Words that people write where a real value should go, in docs, templates and examples.
const PLACEHOLDER_WORDS: &[&str] = &[
    "xxxx",
    "example",
    "your",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "dummy",
    "sample",
    "redacted",
    "insert",
    "replace",
    "_here",
    "-here",
    "<",
    ">",
    "{{",
    "}}",
    "${",
    "$(",
    "%(",
    "****",
    "...",
    "\u{2026}",
    "todo",
    "notreal",
    "not_real",
    "not-a-real",
    "lorem",
    "foobar",
    // The signature of jwt.io's sample token, reproduced in countless docs.
    "sflkxwrjsmekkf2qt4fwpmejf36pok6yjv_adqssw5c",
];

/// Values people use as stand-ins in docs and local setups.
const PLACEHOLDER_VALUES: &[&str] = &[
    "pass",
    "secret",
    "admin",
    "root",
    "user",
    "guest",
    "default",
    "token",
    "apikey",
    "api_key",
    "secretkey",
    "s3cr3t",
    "letmein",
    "qwerty",
    "hunter2",
    "test",
    "testing",
    "p@ssw0rd",
    "p@ssword",
    "pa55word",
    "passw0rd",
];

/// True when `s` reads like a stand-in for a secret rather than a secret.
pub fn is_placeholder(s: &[u8]) -> bool {
    let lower = s.to_ascii_lowercase();
    let lower = String::from_utf8_lossy(&lower);
    if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
        || PLACEHOLDER_VALUES.contains(&lower.as_ref())
        || lower.contains("password")
        || lower.contains("passwd")
    {
        return true;
    }
    has_long_run(s, 6) || has_sequence(s, 6)
}

/// A run of the same byte, as in `sk_live_111111` or `aaaaaa`.
fn has_long_run(s: &[u8], n: usize) -> bool {
    let mut run = 1;
    for w in s.windows(2) {
        if w[0] == w[1] {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            run = 1;
        }
    }
    false
}

/// An ascending or descending alphanumeric sequence, as in `abcdef` or `123456`.
fn has_sequence(s: &[u8], n: usize) -> bool {
    let mut up = 1;
    let mut down = 1;
    for w in s.windows(2) {
        let alnum = w[0].is_ascii_alphanumeric() && w[1].is_ascii_alphanumeric();
        up = if alnum && w[1] == w[0].wrapping_add(1) {
            up + 1
        } else {
            1
        };
        down = if alnum && w[1].wrapping_add(1) == w[0] {
            down + 1
        } else {
            1
        };
        if up >= n || down >= n {
            return true;
        }
    }
    false
}

/// A value that names itself as test data (`test_key_123`, `mock-secret-1`).
pub fn is_test_value(s: &[u8]) -> bool {
    const WORDS: &[&[u8]] = &[
        b"test", b"tests", b"fake", b"mock", b"dummy", b"demo", b"invalid", b"sample", b"fixture",
    ];
    s.split(|c| !c.is_ascii_alphanumeric())
        .any(|w| WORDS.iter().any(|t| w.eq_ignore_ascii_case(t)))
}

/// `8-4-4-4-12` hex, the shape of a UUID.
pub fn is_uuid(s: &[u8]) -> bool {
    if s.len() != 36 {
        return false;
    }
    s.iter().enumerate().all(|(i, &c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Hex of a length that digests have (MD5, SHA-1 / git, SHA-256, SHA-512).
pub fn is_digest_like(s: &[u8]) -> bool {
    matches!(s.len(), 32 | 40 | 64 | 128) && s.iter().all(u8::is_ascii_hexdigit)
}

/// A hashed password or content digest written in one of the usual self-describing forms.
pub fn is_hash_encoding(s: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"$2a$", b"$2b$", b"$2y$", b"$argon2", b"$6$", b"$5$", b"$1$", b"$pbkdf2", b"pbkdf2_",
        b"sha1:", b"sha256:", b"sha512:", b"sha256-", b"sha384-", b"sha512-", b"md5:", b"{ssha}",
        b"{sha}",
    ];
    let lower = s.to_ascii_lowercase();
    PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// The opening bytes of base64-encoded PNG, JPEG, GIF, WebP and SVG data, or a data URL.
pub fn is_base64_image(s: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"iVBORw0KGgo",
        b"/9j/",
        b"R0lGOD",
        b"UklGR",
        b"PHN2Zy",
        b"data:image/",
    ];
    PREFIXES.iter().any(|p| s.starts_with(p))
}

/// Counts character classes: lowercase, uppercase, digit, other.
fn classes(s: &[u8]) -> (bool, bool, bool, bool) {
    let mut c = (false, false, false, false);
    for &b in s {
        match b {
            b'a'..=b'z' => c.0 = true,
            b'A'..=b'Z' => c.1 = true,
            b'0'..=b'9' => c.2 = true,
            _ => c.3 = true,
        }
    }
    c
}

/// A dotted or called identifier such as `config.api_key` or `get_token()`: code, not a value.
fn is_code_reference(s: &[u8]) -> bool {
    let t = s.strip_suffix(b"()").unwrap_or(s);
    let ident = |p: &[u8]| {
        !p.is_empty()
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
    };
    let dotted = t.iter().any(|&c| matches!(c, b'.' | b'[' | b']'))
        && t.split(|&c| c == b'.' || c == b'[' || c == b']')
            .filter(|p| !p.is_empty())
            .all(ident);
    dotted
        || s.contains(&b'(')
        || s.starts_with(b"$")
        || s.starts_with(b"@")
        || s.starts_with(b"%")
        || s.starts_with(b"&")
        || s.starts_with(b"os.")
        || s.starts_with(b"env.")
        || s.starts_with(b"process.")
        || s.starts_with(b"ENV[")
        || s.starts_with(b"secrets.")
}

/// Words joined by spaces, dashes or underscores (`correct horse battery staple`,
/// `test-api-key-for-unit-tests-only`): prose or a slug, not a generated value.
fn is_wordy(s: &[u8]) -> bool {
    let mut parts = 0;
    for p in s
        .split(|&c| matches!(c, b' ' | b'-' | b'_' | b'.'))
        .filter(|p| !p.is_empty())
    {
        if !p.iter().all(u8::is_ascii_alphabetic) {
            return false;
        }
        parts += 1;
    }
    parts >= 2
}

/// The random-looking test applied to values of generic `password=` style assignments.
pub fn looks_random(s: &[u8], min_entropy: f64) -> bool {
    if s.len() < 8 {
        return false;
    }
    let (lower, upper, digit, other) = classes(s);
    let kinds = [lower, upper, digit, other].iter().filter(|&&b| b).count();
    if kinds < 2 || !(digit || other) || is_code_reference(s) || is_wordy(s) {
        return false;
    }
    // Short passwords cannot reach a high entropy per byte; scale the bar with the length.
    let bar = min_entropy.min(0.85 * (s.len() as f64).log2());
    shannon_entropy(s) >= bar
}

/// Key names whose values are digests or identifiers rather than secrets.
pub fn key_is_hash_context(key: &[u8]) -> bool {
    const WORDS: &[&str] = &[
        "sha",
        "hash",
        "digest",
        "checksum",
        "commit",
        "integrity",
        "etag",
        "fingerprint",
        "nonce",
        "uuid",
        "guid",
        "_id",
        "-id",
        "csrf",
        "length",
        "len",
        "count",
        "type",
        "name",
        "file",
        "path",
        "url",
        "uri",
        "format",
        "expir",
        "timeout",
        "ttl",
        "header",
        "prefix",
        "field",
        "policy",
        "min",
        "max",
        "endpoint",
        "version",
        "label",
        "hint",
        "regex",
        "pattern",
    ];
    // Built once: the generic rule asks this for most of its candidates, and a search per word
    // over a lowercased copy was a tenth of the scan on keyword-dense text.
    static WORDS_AC: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::OnceLock::new();
    match WORDS_AC.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(WORDS)
            .ok()
    }) {
        Some(ac) => ac.is_match(key),
        None => {
            let lower = key.to_ascii_lowercase();
            WORDS
                .iter()
                .any(|w| lower.windows(w.len()).any(|x| x == w.as_bytes()))
        }
    }
}

/// Decodes base62 (`0-9A-Za-z`) as a number, as GitHub and npm write their checksums.
fn base62_value(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        v = v.checked_mul(62)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// GitHub (`ghp_` and siblings) and npm (`npm_`) tokens end in 6 base62 characters holding the
/// CRC32 of the 30 random characters before them.
pub fn crc32_base62_suffix_ok(token: &[u8]) -> bool {
    let Some(pos) = token.iter().position(|&c| c == b'_') else {
        return false;
    };
    let body = &token[pos + 1..];
    if body.len() <= 6 {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_value(check) == Some(u64::from(crc32fast::hash(random)))
}

/// Decodes unpadded base64url (as JWT segments are written); `None` on any invalid character.
pub fn base64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A JWT whose header decodes to a JSON object naming an algorithm.
pub fn jwt_ok(token: &[u8]) -> bool {
    let mut parts = token.split(|&c| c == b'.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return false;
    };
    let header =
        base64url_decode(h).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let payload =
        base64url_decode(p).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    matches!((header, payload), (Some(h), Some(serde_json::Value::Object(_))) if h.get("alg").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised() {
        for p in [
            "xxxxxxxxxxxxxxxx",
            "<your-key>",
            "sk_live_111111111111",
            "${TOKEN}",
            "abcdef123456",
            "EXAMPLEKEY",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        assert!(!is_placeholder(b"q8Zr3LxV0pWm5TnK2bYc"));
    }

    #[test]
    fn shapes() {
        assert!(is_uuid(b"123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_digest_like(b"da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        assert!(is_base64_image(b"iVBORw0KGgoAAAANSUhEUg"));
        assert!(is_hash_encoding(b"$2b$12$abcdefghijklmnopqrstuv"));
    }

    #[test]
    fn random_test_rejects_code_and_words() {
        assert!(!looks_random(b"config.api_key", 3.0));
        assert!(!looks_random(b"get_password()", 3.0));
        assert!(!looks_random(b"passwordpassword", 3.0));
        assert!(looks_random(b"Tr0ub4dor&3xQ9", 3.0));
    }

    #[test]
    fn entropy_of_uniform_bytes() {
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
    }
}
