//! Format-valid fake credentials, generated from a seed, for tests, examples and benchmarks.
//!
//! Nothing here is a real secret: every value comes from a deterministic PRNG. Generating them
//! at run time (instead of committing literals) keeps provider push-protection from tripping on
//! the repository while still exercising the real formats, checksums included.

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
const PASSWORD: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+-_";

/// A small deterministic generator (SplitMix64); quality is ample for fake tokens.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `n` characters drawn from `alphabet`, rejecting draws that would read as a placeholder
    /// (runs and sequences), so that a fake never trips the look-alike filters by chance.
    pub fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        loop {
            let s: Vec<u8> = (0..n)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect();
            if !crate::filters::is_placeholder(&s) {
                return String::from_utf8_lossy(&s).into_owned();
            }
        }
    }
}

fn base62_fixed(mut v: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = B62[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn crc_token(rng: &mut Rng, prefix: &str) -> String {
    let random = rng.string(B62, 30);
    let crc = crc32fast::hash(random.as_bytes());
    format!("{prefix}{random}{}", base62_fixed(u64::from(crc), 6))
}

fn uuid(rng: &mut Rng) -> String {
    let h = rng.string(HEX, 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn pem_body(rng: &mut Rng, lines: usize) -> Vec<String> {
    let mut v = vec![format!("MIIEow{}", rng.string(B64, 58))];
    v.extend((1..lines).map(|_| rng.string(B64, 64)));
    v
}

/// A password-like value: mixed classes, high entropy.
pub fn password(rng: &mut Rng) -> String {
    loop {
        let s = rng.string(PASSWORD, 18);
        if crate::filters::looks_random(s.as_bytes(), 3.5) {
            return s;
        }
    }
}

/// A fake credential in the format of built-in rule `rule_id`; `None` for an unknown rule.
///
/// The value is exactly what the rule's secret capture should report.
pub fn fake(rule_id: &str, seed: u64) -> Option<String> {
    let mut r = Rng::new(
        seed.wrapping_mul(31)
            .wrapping_add(rule_id.len() as u64 * 7919),
    );
    let rng = &mut r;
    Some(match rule_id {
        "airlock-token" => {
            let mut s = format!("alk_{}", rng.string(B62, 43));
            let crc = crc32fast::hash(s.as_bytes());
            s.push_str(&base62_fixed(u64::from(crc), 6));
            s
        }
        "airlock-master-key" => rng.string(HEX, 64),
        "aws-access-key-id" => format!("AKIA{}", rng.string(UPPER32, 16)),
        "aws-secret-access-key" => rng.string(B64, 40),
        "gcp-service-account" => {
            let body = pem_body(rng, 8).join("\\n");
            format!("-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----\\n")
        }
        "gcp-api-key" => format!("AIza{}", rng.string(B64URL, 35)),
        "azure-storage-key" => format!("{}==", rng.string(B64, 86)),
        "azure-ad-client-secret" => {
            format!("{}8Q~{}", rng.string(B62, 3), rng.string(B62, 34))
        }
        "github-token" => {
            let p = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"][rng.below(5)];
            crc_token(rng, p)
        }
        "github-fine-grained-pat" => {
            format!(
                "github_pat_11{}_{}",
                rng.string(B62, 20),
                rng.string(B62, 59)
            )
        }
        "gitlab-token" => format!("glpat-{}", rng.string(B64URL, 20)),
        "slack-token" => format!(
            "xoxb-{}-{}-{}",
            rng.string(DIGITS, 12),
            rng.string(DIGITS, 13),
            rng.string(B62, 24)
        ),
        "slack-webhook" => format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            rng.string(UPPER_NUM, 8),
            rng.string(UPPER_NUM, 10),
            rng.string(B62, 24)
        ),
        "stripe-key" => {
            let n = 24 + rng.below(75);
            format!("sk_live_{}", rng.string(B62, n))
        }
        "twilio-api-key" => format!("SK{}", rng.string(HEX, 32)),
        "twilio-auth-token" => rng.string(HEX, 32),
        "sendgrid-api-key" => format!("SG.{}.{}", rng.string(B64URL, 22), rng.string(B64URL, 43)),
        "openai-api-key" => {
            format!(
                "sk-proj-{}T3BlbkFJ{}",
                rng.string(B64URL, 74),
                rng.string(B64URL, 74)
            )
        }
        "anthropic-api-key" => format!("sk-ant-api03-{}AA", rng.string(B64URL, 93)),
        "railway-token" => uuid(rng),
        "heroku-api-key" => format!("HRKU-AA{}", rng.string(B64URL, 58)),
        "digitalocean-token" => format!("dop_v1_{}", rng.string(HEX, 64)),
        "npm-token" => crc_token(rng, "npm_"),
        "pypi-token" => format!("pypi-AgEIcHlwaS5vcmc{}", rng.string(B64URL, 120)),
        "dockerhub-pat" => format!("dckr_pat_{}", rng.string(B64URL, 27)),
        "huggingface-token" => format!("hf_{}", rng.string(LETTERS, 34)),
        "private-key" => {
            let body = pem_body(rng, 12).join("\n");
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----")
        }
        "putty-private-key" => {
            let public = pem_body(rng, 2).join("\n");
            let private = pem_body(rng, 4).join("\n");
            format!(
                "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: rsa-key-2024\n\
                 Public-Lines: 2\n{public}\nPrivate-Lines: 4\n{private}\n"
            )
        }
        "jwt" => {
            let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
            let payload = base64url(
                format!(
                    r#"{{"sub":"{}","iat":{}}}"#,
                    rng.string(DIGITS, 10),
                    1_700_000_000 + rng.below(9_999_999)
                )
                .as_bytes(),
            );
            format!("{header}.{payload}.{}", rng.string(B64URL, 43))
        }
        "url-password" | "connection-string-password" | "generic-secret" => password(rng),
        _ => return None,
    })
}

/// A random v4-shaped UUID, for look-alikes.
pub fn fake_uuid(seed: u64) -> String {
    uuid(&mut Rng::new(seed))
}

/// Random lowercase hex of `n` characters, for hash and git SHA look-alikes.
pub fn fake_hex(seed: u64, n: usize) -> String {
    Rng::new(seed).string(HEX, n)
}

/// Random base64 of `n` characters.
pub fn fake_base64(seed: u64, n: usize) -> String {
    Rng::new(seed).string(B64, n)
}

/// A true secret planted in a materialized corpus file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// 1-based line where the secret starts.
    pub line: u64,
    /// 1-based line where it ends (multi-line keys).
    pub end_line: u64,
    /// The rule that should report it.
    pub rule: String,
}

/// Expands `{{rule-id:seed}}` markers in a corpus template with [`fake`] values; returns the
/// text and a label for each marker.
pub fn materialize(template: &str) -> (String, Vec<Label>) {
    let mut out = String::with_capacity(template.len() + 256);
    let mut labels = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        let marker = &rest[open + 2..open + close];
        let Some((id, seed)) = marker.split_once(':') else {
            out.push_str(&rest[..open + 2]);
            rest = &rest[open + 2..];
            continue;
        };
        let value = seed.parse::<u64>().ok().and_then(|s| fake(id, s));
        out.push_str(&rest[..open]);
        match value {
            Some(v) => {
                let line = 1 + out.matches('\n').count() as u64;
                let end_line = line + v.matches('\n').count() as u64;
                labels.push(Label {
                    line,
                    end_line,
                    rule: id.to_string(),
                });
                out.push_str(&v);
            }
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    (out, labels)
}
