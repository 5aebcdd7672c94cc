//! Rules: the built-in set, written from providers' published token formats, and user rules
//! loaded from TOML.

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

/// An extra confirmation a candidate must pass after its regex matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// No format-level check beyond the regex and the look-alike filters.
    None,
    /// Airlock token CRC32, via `airlock_token::check`.
    AirlockChecksum,
    /// CRC32 of the random part in the last 6 base62 characters (GitHub, npm).
    Crc32Base62,
    /// The header and payload decode to JSON objects.
    Jwt,
    /// `password=`-style assignments: entropy and random-looking gates, no digests or UUIDs.
    Generic,
}

/// A cheap test, on the lowercased window, that a rule's regex can match there at all. It must
/// hold for every text the regex matches (a necessary condition), so that skipping the regex
/// when it fails loses nothing; the rule's examples exercise both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// No test: the regex always runs.
    Nothing,
    /// This byte occurs in the window.
    Byte(u8),
    /// One of these lowercase words, then regex whitespace (`\s`), then `=`.
    WordThenEquals(&'static [&'static str]),
    /// Every match contains one of the rule's keywords, so no match starts after the last
    /// keyword hit of a window has ended: the search stops there.
    KeywordInMatch,
}

impl Needs {
    /// False when the regex cannot match in `lower`, the window ASCII-lowercased.
    pub(crate) fn may_match(self, lower: &[u8]) -> bool {
        match self {
            Needs::Nothing | Needs::KeywordInMatch => true,
            Needs::Byte(b) => memchr::memchr(b, lower).is_some(),
            Needs::WordThenEquals(words) => memchr::memchr_iter(b'=', lower).any(|eq| {
                // `\s` without Unicode: space, \t, \n, \x0B, \x0C, \r.
                let key_end = lower[..eq]
                    .iter()
                    .rposition(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
                    .map_or(0, |p| p + 1);
                words
                    .iter()
                    .any(|w| lower[..key_end].ends_with(w.as_bytes()))
            }),
        }
    }
}

/// A built-in rule as written in the table below.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRule {
    /// Stable identifier, used in reports, fingerprints and baselines.
    pub id: &'static str,
    /// What the rule finds, for humans.
    pub description: &'static str,
    /// Regex (bytes, Unicode off); the secret is the first participating capture group.
    pub regex: &'static str,
    /// Literals (matched case-insensitively) of which at least one must be near a match.
    pub keywords: &'static [&'static str],
    /// Minimum Shannon entropy (bits per byte) of the secret.
    pub min_entropy: f64,
    /// Confirmation after the regex.
    pub check: Check,
    /// Wins over lower priorities when two findings cover the same bytes.
    pub priority: u8,
    /// Bytes before a keyword to include in the regex window (beyond its own line).
    pub before: usize,
    /// Bytes after a keyword to include in the regex window (beyond its own line).
    pub after: usize,
    /// Tested before the regex runs in a window.
    pub needs: Needs,
    /// Texts that must produce exactly one finding; `{fake}` is replaced by
    /// [`crate::fakes::fake`] for this rule, so that no live-looking secret sits in the source.
    pub positives: &'static [&'static str],
    /// Texts that must produce no finding of this rule.
    pub negatives: &'static [&'static str],
}

const fn rule(
    id: &'static str,
    description: &'static str,
    regex: &'static str,
    keywords: &'static [&'static str],
) -> BuiltinRule {
    BuiltinRule {
        id,
        description,
        regex,
        keywords,
        min_entropy: 3.0,
        check: Check::None,
        priority: 10,
        before: 0,
        after: 0,
        needs: Needs::Nothing,
        positives: &[],
        negatives: &[],
    }
}

/// Characters that may follow a token without being part of it (a `\b` that also works after
/// `-`, `/` and `+`).
macro_rules! end {
    ($class:literal) => {
        concat!("(?:[^", $class, "]|$)")
    };
}

/// The built-in rules.
pub const BUILTIN: &[BuiltinRule] = &[
    BuiltinRule {
        check: Check::AirlockChecksum,
        priority: 30,
        min_entropy: 0.0,
        positives: &["AIRLOCK_TOKEN={fake}", "curl -H 'Authorization: Bearer {fake}' http://127.0.0.1"],
        negatives: &[
            "alk_0000000000000000000000000000000000000000000000000",
            "alk_8xKq2LmP9vRt5WnZ3bYc7DfGh1JkLsA4eQoUiTyRwEq0ab0ab1",
            "alk_short",
        ],
        ..rule("airlock-token", "Airlock token (checksum verified)", r"\b(alk_[0-9A-Za-z]{49})\b", &["alk_"])
    },
    BuiltinRule {
        priority: 30,
        positives: &["AIRLOCK_MASTER_KEY={fake}", "export AIRLOCK_MASTER_KEY=\"{fake}\"", "airlock_master_key: {fake}"],
        negatives: &[
            "AIRLOCK_MASTER_KEY=${AIRLOCK_MASTER_KEY}",
            "AIRLOCK_MASTER_KEY=0000000000000000000000000000000000000000000000000000000000000000",
        ],
        ..rule(
            "airlock-master-key",
            "Airlock master key (opens every sealed upstream secret)",
            concat!(
                r#"(?i)airlock[_\-.]?master[_\-.]?key["']?\s*(?:=|:|=>)\s*["']?([0-9a-f]{64})"#,
                end!("0-9A-Fa-f")
            ),
            &["airlock_master_key", "airlock-master-key", "airlock.master.key"],
        )
    },
    BuiltinRule {
        positives: &["aws_access_key_id = {fake}", "\"AccessKeyId\": \"{fake}\""],
        negatives: &["aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIA1234", "BACKIAXYZ"],
        ..rule(
            "aws-access-key-id",
            "AWS access key ID",
            r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
            &["akia", "asia", "abia", "acca"],
        )
    },
    BuiltinRule {
        min_entropy: 3.5,
        positives: &["aws_secret_access_key = {fake}", "AWS_SECRET_ACCESS_KEY: \"{fake}\""],
        negatives: &[
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}",
        ],
        ..rule(
            "aws-secret-access-key",
            "AWS secret access key",
            concat!(
                r#"(?i)aws[_\-.]?(?:secret[_\-.]?(?:access[_\-.]?)?key|secret)["']?\s*(?:=|:|=>)\s*["']?([A-Za-z0-9/+]{40})"#,
                end!("A-Za-z0-9/+=")
            ),
            &["aws"],
        )
    },
    BuiltinRule {
        priority: 20,
        min_entropy: 0.0,
        positives: &["{\"type\": \"service_account\", \"project_id\": \"demo\", \"private_key\": \"{fake}\", \"client_email\": \"a@b.iam.gserviceaccount.com\"}"],
        negatives: &["\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n\""],
        ..rule(
            "gcp-service-account",
            "Google Cloud service-account private key (JSON key file)",
            r#""private_key"\s*:\s*"(-----BEGIN (?:RSA )?PRIVATE KEY-----(?:\\n)?[A-Za-z0-9+/=\\]{64,}-----END (?:RSA )?PRIVATE KEY-----(?:\\n)?)""#,
            &["\"private_key\""],
        )
    },
    BuiltinRule {
        positives: &["GOOGLE_API_KEY={fake}", "https://maps.googleapis.com/maps/api/js?key={fake}&callback=x"],
        negatives: &["AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "AIzaShort"],
        ..rule(
            "gcp-api-key",
            "Google API key",
            concat!(r"\b(AIza[0-9A-Za-z_\-]{35})", end!("0-9A-Za-z_\\-")),
            &["aiza"],
        )
    },
    BuiltinRule {
        positives: &["DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey={fake};EndpointSuffix=core.windows.net"],
        negatives: &["AccountKey=<your-account-key>;", "AccountKey=${AZURE_KEY}"],
        ..rule(
            "azure-storage-key",
            "Azure storage account key",
            r"(?i)AccountKey\s*=\s*([A-Za-z0-9+/]{86}==)",
            &["accountkey"],
        )
    },
    BuiltinRule {
        positives: &["AZURE_CLIENT_SECRET={fake}", "client_secret: \"{fake}\""],
        negatives: &["marker abc8Q~tooShort", "AZURE_CLIENT_SECRET=<client-secret-value>"],
        ..rule(
            "azure-ad-client-secret",
            "Azure AD (Entra ID) application client secret",
            concat!(
                r"(?:^|[^0-9A-Za-z_~.\-])([0-9A-Za-z_~.\-]{3}[78]Q~[0-9A-Za-z_~.\-]{31,34})",
                end!("0-9A-Za-z_~.\\-")
            ),
            &["8q~", "7q~"],
        )
    },
    BuiltinRule {
        check: Check::Crc32Base62,
        priority: 30,
        min_entropy: 0.0,
        positives: &["GITHUB_TOKEN={fake}", "git clone https://x-access-token:{fake}@github.com/o/r"],
        negatives: &[
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghp_abcdefghijklmnopqrstuvwxyzABCD012345",
        ],
        ..rule(
            "github-token",
            "GitHub token (classic PAT, OAuth, app; checksum verified)",
            r"\b((?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36})\b",
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        )
    },
    BuiltinRule {
        positives: &["token: {fake}"],
        negatives: &["github_pat_11AAAAAAA0xxxxxxxxxxxx_yyyy"],
        ..rule(
            "github-fine-grained-pat",
            "GitHub fine-grained personal access token",
            r"\b(github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59})\b",
            &["github_pat_"],
        )
    },
    BuiltinRule {
        positives: &["GITLAB_TOKEN={fake}", "private-token: {fake}"],
        negatives: &["glpat-xxxxxxxxxxxxxxxxxxxx", "glpat-<your_access_token>", "glpat-12345"],
        ..rule(
            "gitlab-token",
            "GitLab token (personal, deploy, runner, CI job, ...)",
            concat!(
                r"\b((?:glpat|gldt|glrt|glptt|glcbt|glft|glimt|glagent|gloas|glsoat)-[0-9A-Za-z_\-]{20,64})",
                end!("0-9A-Za-z_\\-")
            ),
            &["glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "glimt-", "glagent-", "gloas-", "glsoat-"],
        )
    },
    BuiltinRule {
        positives: &["SLACK_BOT_TOKEN={fake}", "token = \"{fake}\""],
        negatives: &["xoxb-xxxxxxxxxxxx-xxxxxxxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx", "xoxb-your-token", "xoxp-123"],
        ..rule(
            "slack-token",
            "Slack token (bot, user, app, refresh)",
            concat!(
                r"\b(xox[abeoprs]-[0-9]{6,}-[0-9A-Za-z\-]{8,}|xapp-[0-9]-[A-Z0-9]{6,}-[0-9]{6,}-[a-f0-9]{32,})",
                end!("0-9A-Za-z\\-")
            ),
            &["xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxo-", "xoxr-", "xoxs-", "xapp-"],
        )
    },
    BuiltinRule {
        positives: &["SLACK_WEBHOOK_URL={fake}", "{\"url\":\"{fake}\"}"],
        negatives: &["https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "https://hooks.slack.com/services/"],
        ..rule(
            "slack-webhook",
            "Slack incoming webhook URL",
            r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/T[0-9A-Z]{6,12}/[0-9A-Za-z]{6,14}/[0-9A-Za-z]{16,40})\b",
            &["hooks.slack.com"],
        )
    },
    BuiltinRule {
        positives: &["STRIPE_SECRET_KEY={fake}", "Stripe.api_key = '{fake}'"],
        negatives: &["sk_live_111111111111111111111111", "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"],
        ..rule(
            "stripe-key",
            "Stripe live secret or restricted key",
            r"\b((?:sk|rk)_live_[0-9A-Za-z]{24,})\b",
            &["sk_live_", "rk_live_"],
        )
    },
    BuiltinRule {
        before: 256,
        after: 256,
        positives: &["TWILIO_API_KEY={fake}", "# twilio\napi_key_sid = \"{fake}\""],
        negatives: &["TWILIO_ACCOUNT_SID=AC8f3a9c2b1d4e5f60718293a4b5c6d7e8", "twilio SKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"],
        ..rule("twilio-api-key", "Twilio API key SID", r"\b(SK[0-9a-fA-F]{32})\b", &["twilio"])
    },
    BuiltinRule {
        positives: &["TWILIO_AUTH_TOKEN={fake}", "twilio_auth_token: \"{fake}\""],
        negatives: &["TWILIO_AUTH_TOKEN=your_auth_token", "twilio_token_url = https://api.twilio.com"],
        ..rule(
            "twilio-auth-token",
            "Twilio auth token",
            r#"(?i)twilio[\w.\-]{0,20}(?:auth|token|secret)[\w.\-]{0,20}["']?\s*(?:=|:|=>)\s*["']?([0-9a-f]{32})\b"#,
            &["twilio"],
        )
    },
    BuiltinRule {
        positives: &["SENDGRID_API_KEY={fake}"],
        negatives: &["SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "msg.send(payload)"],
        ..rule(
            "sendgrid-api-key",
            "SendGrid API key",
            concat!(r"\b(SG\.[0-9A-Za-z_\-]{22}\.[0-9A-Za-z_\-]{43})", end!("0-9A-Za-z_\\-")),
            &["sg."],
        )
    },
    BuiltinRule {
        positives: &["OPENAI_API_KEY={fake}"],
        negatives: &["OPENAI_API_KEY=sk-...T3BlbkFJ...", "sk-proj-xxxxxxxxxxxxxxxxxxxxT3BlbkFJxxxxxxxxxxxxxxxxxxxx"],
        ..rule(
            "openai-api-key",
            "OpenAI API key",
            concat!(
                r"\b(sk-(?:proj-|svcacct-|admin-)?[0-9A-Za-z_\-]{20,}T3BlbkFJ[0-9A-Za-z_\-]{20,})",
                end!("0-9A-Za-z_\\-")
            ),
            &["t3blbkfj"],
        )
    },
    BuiltinRule {
        positives: &["ANTHROPIC_API_KEY={fake}"],
        negatives: &["ANTHROPIC_API_KEY=sk-ant-api03-...", "sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxAA"],
        ..rule(
            "anthropic-api-key",
            "Anthropic API key",
            concat!(r"\b(sk-ant-(?:api|admin)[0-9]{2}-[0-9A-Za-z_\-]{80,})", end!("0-9A-Za-z_\\-")),
            &["sk-ant-"],
        )
    },
    BuiltinRule {
        positives: &["RAILWAY_TOKEN={fake}", "railway_api_token: \"{fake}\""],
        negatives: &["RAILWAY_PROJECT_ID=6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b", "RAILWAY_TOKEN=<project-token>"],
        ..rule(
            "railway-token",
            "Railway API or project token",
            r#"(?i)railway[\w.\-]{0,20}(?:token|key|secret)[\w.\-]{0,10}["']?\s*(?:=|:|=>)\s*["']?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"#,
            &["railway"],
        )
    },
    BuiltinRule {
        positives: &["HEROKU_API_KEY={fake}", "heroku_api_key = \"0a3f5b2c-9d8e-4f1a-b2c3-d4e5f6a7b8c9\""],
        negatives: &["HEROKU_APP_ID=0a3f5b2c-9d8e-4f1a-b2c3-d4e5f6a7b8c9", "HRKU-AAxxxxxxxx"],
        ..rule(
            "heroku-api-key",
            "Heroku API key",
            concat!(
                r#"(?i)(?:\b(HRKU-AA[0-9A-Za-z_\-]{58})"#,
                end!("0-9A-Za-z_\\-"),
                r#"|heroku[\w.\-]{0,20}(?:token|key|secret)[\w.\-]{0,10}["']?\s*(?:=|:|=>)\s*["']?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b)"#
            ),
            &["heroku", "hrku-"],
        )
    },
    BuiltinRule {
        positives: &["DIGITALOCEAN_TOKEN={fake}"],
        negatives: &["dop_v1_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "dop_v1_1234"],
        ..rule(
            "digitalocean-token",
            "DigitalOcean personal access, OAuth or refresh token",
            r"\b((?:dop|doo|dor)_v1_[0-9a-f]{64})\b",
            &["dop_v1_", "doo_v1_", "dor_v1_"],
        )
    },
    BuiltinRule {
        check: Check::Crc32Base62,
        priority: 30,
        min_entropy: 0.0,
        positives: &["//registry.npmjs.org/:_authToken={fake}"],
        negatives: &["//registry.npmjs.org/:_authToken=npm_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "npm_config_cache=/tmp/npm_cache_directory_for_builds_01"],
        ..rule("npm-token", "npm access token (checksum verified)", r"\b(npm_[0-9A-Za-z]{36})\b", &["npm_"])
    },
    BuiltinRule {
        positives: &["[pypi]\nusername = __token__\npassword = {fake}"],
        negatives: &["password = pypi-AgEIcHlwaS5vcmc...", "pypi-AgEIcHlwaS5vcmc"],
        ..rule(
            "pypi-token",
            "PyPI upload token",
            concat!(r"\b(pypi-AgEIcHlwaS5vcmc[0-9A-Za-z_\-]{50,})", end!("0-9A-Za-z_\\-")),
            &["pypi-ageichlwas5vcmc"],
        )
    },
    BuiltinRule {
        positives: &["echo {fake} | docker login -u me --password-stdin"],
        negatives: &["dckr_pat_xxxxxxxxxxxxxxxxxxxxxxxxxxx", "dckr_pat_<token>"],
        ..rule(
            "dockerhub-pat",
            "Docker Hub personal or organisation access token",
            concat!(r"\b(dckr_(?:pat|oat)_[0-9A-Za-z_\-]{27})", end!("0-9A-Za-z_\\-")),
            &["dckr_pat_", "dckr_oat_"],
        )
    },
    BuiltinRule {
        min_entropy: 3.5,
        positives: &["HF_TOKEN={fake}", "huggingface-cli login --token {fake}"],
        negatives: &["hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "hf_hub_download(repo_id, filename)", "hf_abcdefghijklmnopqrstuvwxyzabcdefgh"],
        ..rule("huggingface-token", "Hugging Face access token", r"\b(hf_[A-Za-z]{34})\b", &["hf_"])
    },
    BuiltinRule {
        after: 16384,
        positives: &["{fake}\n", "key: |\n{fake}\n"],
        negatives: &[
            "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\n<your key here>\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----",
        ],
        ..rule(
            "private-key",
            "Private key (PEM, OpenSSH, PGP)",
            r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----\r?\n(?:[A-Za-z0-9\-]+: [^\r\n]*\r?\n)*\s*[A-Za-z0-9+/=\r\n\t ]{64,}?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----)",
            &["private key-----", "private key block-----"],
        )
    },
    BuiltinRule {
        after: 16384,
        positives: &["{fake}Private-MAC: 6f1c2a9e3b4d4e5f8a7b9c0d1e2f3a4b5c6d7e8f\n"],
        negatives: &["PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 14\n...\n"],
        ..rule(
            "putty-private-key",
            "PuTTY private key file",
            r"(PuTTY-User-Key-File-[23]: [^\r\n]+\r?\n(?:[A-Za-z\-]+: [^\r\n]*\r?\n(?:[A-Za-z0-9+/=]+\r?\n)*)*?Private-Lines: [0-9]+\r?\n(?:[A-Za-z0-9+/=]{16,}\r?\n)+)",
            &["putty-user-key-file-"],
        )
    },
    BuiltinRule {
        check: Check::Jwt,
        positives: &["Authorization: Bearer {fake}", "{\"id_token\":\"{fake}\"}"],
        negatives: &["eyJhbGciOiJIUzI1NiJ9.notbase64json.sig", "eyJxxxxxxxxx.eyJxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxx"],
        ..rule(
            "jwt",
            "JSON Web Token",
            concat!(r"\b(eyJ[0-9A-Za-z_\-]{8,}\.eyJ[0-9A-Za-z_\-]{8,}\.[0-9A-Za-z_\-]{16,})", end!("0-9A-Za-z_\\-.")),
            &["eyj"],
        )
    },
    BuiltinRule {
        priority: 5,
        min_entropy: 2.5,
        // `://` is in every URL; the `@` of a user-info part is not.
        needs: Needs::Byte(b'@'),
        positives: &["DATABASE_URL=postgres://app:{fake}@db.prod.internal:5432/app", "amqp://svc:{fake}@mq.internal/vhost"],
        negatives: &[
            "postgres://user:password@localhost/db",
            "mysql://root:${DB_PASSWORD}@db/app",
            "https://user:<password>@host/",
            "redis://:changeme@localhost:6379",
            "see https://example.org/a:b@c for details",
        ],
        ..rule(
            "url-password",
            "URL with an embedded password",
            r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:@/\x22'<>]*:([^\s:@/\x22'<>]{6,})@[a-zA-Z0-9.\-]+",
            &["://"],
        )
    },
    BuiltinRule {
        priority: 6,
        min_entropy: 2.5,
        // `password` is common in code; the `server=`/`host=` this regex starts with is not.
        needs: Needs::WordThenEquals(&["server", "data source", "host", "uid", "user id", "username"]),
        positives: &["Server=tcp:sql01.internal,1433;Database=app;User ID=svc;Password={fake};Encrypt=true"],
        negatives: &["Server=db;User Id=sa;Password=<password>;", "Server=db;User Id=sa;Password=;"],
        ..rule(
            "connection-string-password",
            "Connection string with a password",
            r"(?i)(?:server|data source|host|uid|user id|username)\s*=[^;\r\n]*;[^\r\n]*?\b(?:password|pwd)\s*=\s*([^;\x22'\s<>]{6,})\s*(?:;|$)",
            &["password", "pwd"],
        )
    },
    BuiltinRule {
        check: Check::Generic,
        priority: 1,
        // The keywords are the key alternatives of the regex, every spelling of them.
        needs: Needs::KeywordInMatch,
        min_entropy: 3.0,
        positives: &["password = \"{fake}\"", "DB_PASSWORD={fake}", "\"api_key\": \"{fake}\"", "client_secret: {fake}"],
        negatives: &[
            "password = \"password\"",
            "password = os.environ[\"PASSWORD\"]",
            "api_key: ${API_KEY}",
            "token = get_token()",
            "password_hash = \"$2b$12$Kc9vzs0m1h7s2q8r5t3u4e6w7x8y9z0a1b2c3d4e5f6g7h8i9j0k1\"",
            "token_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            "session_token_uuid = \"123e4567-e89b-12d3-a456-426614174000\"",
            "password: xxxxxxxxxxxx",
            "api_key = \"<your-api-key>\"",
            "secret = config.secrets.api_secret",
        ],
        ..rule(
            "generic-secret",
            "Password, API key or token assigned in configuration or code",
            r#"(?i)(?P<key>[a-z0-9_.\-]*(?:pass|pwd|secret|api[_\-]?key|apikey|access[_\-]?key|auth[_\-]?key|token|credentials?)[a-z0-9_.\-]*)["'\]]?\s*(?:=|:=|:|=>|\s+value\s*=)\s*(?:"([^"\r\n]{8,})"|'([^'\r\n]{8,})'|`([^`\r\n]{8,})`|([^\s"'`,;)\]}<>]{8,}))"#,
            &["pass", "pwd", "secret", "api_key", "apikey", "api-key", "access_key", "accesskey", "access-key", "auth_key", "authkey", "auth-key", "token", "credential"],
        )
    },
];

/// The most bytes a window may extend beyond its keyword in either direction.
pub const MAX_WINDOW: usize = 16384 + 4096;

/// A user rule as written in TOML (`[[rules]]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    /// Stable identifier.
    pub id: String,
    /// What it finds.
    #[serde(default)]
    pub description: Option<String>,
    /// Regex with a capture group for the secret (the whole match if it has none).
    pub regex: String,
    /// Literals of which one must occur near a match; empty means the rule runs everywhere.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Minimum Shannon entropy of the secret, bits per byte.
    #[serde(default)]
    pub min_entropy: Option<f64>,
    /// Matches whose secret matches one of these are dropped.
    #[serde(default)]
    pub allowlist_regexes: Vec<String>,
    /// Files matching one of these globs are not checked with this rule.
    #[serde(default)]
    pub allowlist_paths: Vec<String>,
    /// Texts that must match; checked by `airlock scan --test-rules` and the test suite.
    #[serde(default)]
    pub positives: Vec<String>,
    /// Texts that must not match.
    #[serde(default)]
    pub negatives: Vec<String>,
}

/// A rule compiled and ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable identifier.
    pub id: String,
    /// What it finds.
    pub description: String,
    pub(crate) regex: Regex,
    pub(crate) keywords: Vec<String>,
    pub(crate) min_entropy: f64,
    pub(crate) check: Check,
    pub(crate) priority: u8,
    pub(crate) before: usize,
    pub(crate) after: usize,
    pub(crate) needs: Needs,
    pub(crate) allow_regexes: Vec<Regex>,
    pub(crate) allow_paths: Option<GlobSet>,
    /// Index of the `key` capture group, for the generic rule's context checks.
    pub(crate) key_group: Option<usize>,
    /// The same regex for anchored searches that report only the end (no reverse scan for
    /// the start), for the generic rule whose windows start where its key does; `None` for
    /// the others, or if it does not build (the unanchored search is then used alone).
    pub(crate) anchored: Option<regex_automata::meta::Regex>,
    pub(crate) builtin: bool,
}

/// Why a rule could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The regex does not compile.
    #[error("rule `{id}`: invalid regex: {source}")]
    Regex {
        /// The rule.
        id: String,
        /// The regex error.
        source: regex::Error,
    },
    /// An allowlist glob does not compile.
    #[error("rule `{id}`: invalid path glob `{glob}`: {source}")]
    Glob {
        /// The rule.
        id: String,
        /// The glob as written.
        glob: String,
        /// The glob error.
        source: globset::Error,
    },
    /// Two rules share an id.
    #[error("duplicate rule id `{0}`")]
    Duplicate(String),
    /// The keyword automaton could not be built.
    #[error("cannot build the keyword prefilter: {0}")]
    Prefilter(String),
    /// A user rule has an empty keyword, which would match everywhere by accident.
    #[error("rule `{0}`: keywords must not be empty strings")]
    EmptyKeyword(String),
}

pub(crate) fn build_globs(id: &str, globs: &[String]) -> Result<Option<GlobSet>, RuleError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|source| RuleError::Glob {
            id: id.to_string(),
            glob: g.clone(),
            source,
        })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|source| RuleError::Glob {
        id: id.to_string(),
        glob: globs.join(","),
        source,
    })
}

impl Rule {
    /// Compiles a built-in rule.
    pub fn from_builtin(b: &BuiltinRule) -> Result<Rule, RuleError> {
        let regex = RegexBuilder::new(b.regex)
            .unicode(false)
            .size_limit(32 << 20)
            .build()
            .map_err(|source| RuleError::Regex {
                id: b.id.to_string(),
                source,
            })?;
        let key_group = regex.capture_names().position(|n| n == Some("key"));
        let anchored = (b.check == Check::Generic)
            .then(|| {
                regex_automata::meta::Regex::builder()
                    .syntax(
                        regex_automata::util::syntax::Config::new()
                            .unicode(false)
                            .utf8(false),
                    )
                    .configure(regex_automata::meta::Regex::config().nfa_size_limit(Some(32 << 20)))
                    .build(b.regex)
                    .ok()
            })
            .flatten();
        Ok(Rule {
            id: b.id.to_string(),
            description: b.description.to_string(),
            regex,
            keywords: b.keywords.iter().map(|k| k.to_ascii_lowercase()).collect(),
            min_entropy: b.min_entropy,
            check: b.check,
            priority: b.priority,
            before: b.before,
            after: b.after,
            needs: b.needs,
            allow_regexes: Vec::new(),
            allow_paths: None,
            key_group,
            anchored,
            builtin: true,
        })
    }

    /// Compiles a user rule.
    pub fn from_user(u: &UserRule) -> Result<Rule, RuleError> {
        let regex = RegexBuilder::new(&u.regex)
            .size_limit(32 << 20)
            .build()
            .map_err(|source| RuleError::Regex {
                id: u.id.clone(),
                source,
            })?;
        if u.keywords.iter().any(|k| k.is_empty()) {
            return Err(RuleError::EmptyKeyword(u.id.clone()));
        }
        let allow_regexes = u
            .allowlist_regexes
            .iter()
            .map(|r| {
                Regex::new(r).map_err(|source| RuleError::Regex {
                    id: u.id.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rule {
            id: u.id.clone(),
            description: u
                .description
                .clone()
                .unwrap_or_else(|| format!("user rule {}", u.id)),
            regex,
            keywords: u.keywords.iter().map(|k| k.to_ascii_lowercase()).collect(),
            min_entropy: u.min_entropy.unwrap_or(0.0),
            check: Check::None,
            priority: 15,
            before: 0,
            after: 0,
            needs: Needs::Nothing,
            allow_regexes,
            allow_paths: build_globs(&u.id, &u.allowlist_paths)?,
            key_group: None,
            anchored: None,
            builtin: false,
        })
    }

    /// All built-in rules, compiled.
    pub fn builtins() -> Result<Vec<Rule>, RuleError> {
        BUILTIN.iter().map(Rule::from_builtin).collect()
    }
}
