//! Generates a mixed benchmark corpus: source code, docs, JSON, configs and logs with sparse
//! planted fake secrets (format-valid, never real).
//!
//! `cargo run --release -p airlock-scan --example gen_corpus -- OUT_DIR SIZE_MB`
//! Writes `OUT_DIR/planted.tsv` (file, line, rule) for the planted secrets.

use airlock_scan::fakes::{fake, fake_hex, fake_uuid, Rng};
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

const WORDS: &[&str] = &[
    "the", "request", "handler", "returns", "value", "user", "account", "config", "service",
    "token", "session", "cache", "client", "server", "payload", "response", "error", "retry",
    "timeout", "buffer", "stream", "secret", "key", "policy", "update", "delete", "create", "list",
    "index", "query", "result", "password", "field", "schema", "version", "build", "deploy",
    "release", "cluster", "node", "metric", "event", "queue", "worker", "job", "state",
];

const SECRET_RULES: &[&str] = &[
    "github-token",
    "aws-access-key-id",
    "stripe-key",
    "slack-webhook",
    "openai-api-key",
    "anthropic-api-key",
    "gitlab-token",
    "npm-token",
    "airlock-token",
    "sendgrid-api-key",
    "digitalocean-token",
    "private-key",
];

fn words(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len())]);
    }
    s
}

fn ident(rng: &mut Rng) -> String {
    format!(
        "{}_{}",
        WORDS[rng.below(WORDS.len())],
        WORDS[rng.below(WORDS.len())]
    )
}

fn source_line(rng: &mut Rng, out: &mut String) {
    match rng.below(10) {
        0 => {
            let _ = writeln!(out, "    // {}", words(rng, 8));
        }
        1 => {
            let _ = writeln!(
                out,
                "    let {} = {}.get(\"{}\")?;",
                ident(rng),
                ident(rng),
                ident(rng)
            );
        }
        2 => {
            let _ = writeln!(
                out,
                "fn {}(&self, {}: &str) -> Result<(), Error> {{",
                ident(rng),
                ident(rng)
            );
        }
        3 => {
            let _ = writeln!(
                out,
                "    if {}.len() > {} {{ return Err(Error::new(\"{}\")); }}",
                ident(rng),
                rng.below(4096),
                words(rng, 4)
            );
        }
        4 => {
            let _ = writeln!(
                out,
                "    const {}: &str = \"{}\";",
                ident(rng).to_uppercase(),
                fake_hex(rng.next_u64(), 40)
            );
        }
        5 => {
            let _ = writeln!(
                out,
                "    self.token = request.headers.get(\"authorization\").map(|h| h.to_string());"
            );
        }
        6 => {
            let _ = writeln!(
                out,
                "    let password = env::var(\"DB_PASSWORD\").unwrap_or_default();"
            );
        }
        7 => {
            let _ = writeln!(
                out,
                "    tracing::info!(request_id = %\"{}\", \"{}\");",
                fake_uuid(rng.next_u64()),
                words(rng, 5)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "    {}.{}({}, {});",
                ident(rng),
                ident(rng),
                rng.below(1000),
                ident(rng)
            );
        }
    }
}

fn doc_line(rng: &mut Rng, out: &mut String) {
    match rng.below(8) {
        0 => {
            let _ = writeln!(out, "## {}", words(rng, 3));
        }
        1 => {
            let _ = writeln!(
                out,
                "- Set `API_KEY=<your-api-key>` and `{}` in the {}.",
                ident(rng).to_uppercase(),
                words(rng, 2)
            );
        }
        _ => {
            let _ = writeln!(out, "{}.", words(rng, 14));
        }
    }
}

fn json_record(rng: &mut Rng, out: &mut String) {
    let _ = writeln!(
        out,
        "{{\"id\":\"{}\",\"type\":\"{}\",\"sha\":\"{}\",\"count\":{},\"message\":\"{}\",\"url\":\"https://api.internal/v1/{}\",\"token_id\":\"tok_{}\"}},",
        fake_uuid(rng.next_u64()),
        WORDS[rng.below(WORDS.len())],
        fake_hex(rng.next_u64(), 40),
        rng.below(100000),
        words(rng, 6),
        ident(rng),
        fake_hex(rng.next_u64(), 16)
    );
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(out), Some(size)) = (args.next(), args.next()) else {
        eprintln!("usage: gen_corpus OUT_DIR SIZE_MB");
        std::process::exit(2);
    };
    let out = PathBuf::from(out);
    let target: u64 = size.parse::<u64>().map_err(std::io::Error::other)? << 20;
    let mut rng = Rng::new(2026);
    let mut written = 0u64;
    let mut planted = String::new();
    let mut n = 0u64;
    while written < target {
        let kind = rng.below(10);
        let (dir, ext) = match kind {
            0..=3 => ("src", ["rs", "py", "ts", "go"][rng.below(4)]),
            4..=5 => ("docs", "md"),
            6..=7 => ("data", "json"),
            8 => ("config", ["yaml", "toml", "env"][rng.below(3)]),
            _ => ("logs", "log"),
        };
        // Mostly small files, some large ones, as in real trees.
        let size = match rng.below(100) {
            0 => 8 << 20,
            1..=10 => 256 << 10,
            _ => 2048 + rng.below(30 << 10),
        };
        let mut text = String::with_capacity(size + 256);
        let mut lines = 0u64;
        let plant_at = if rng.below(40) == 0 {
            Some(rng.below(size))
        } else {
            None
        };
        let mut planted_here = false;
        while text.len() < size {
            if let Some(at) = plant_at {
                if !planted_here && text.len() >= at {
                    planted_here = true;
                    let rule = SECRET_RULES[rng.below(SECRET_RULES.len())];
                    let s = fake(rule, rng.next_u64()).unwrap_or_default();
                    let _ = writeln!(
                        planted,
                        "{dir}/{:03}/{n:06}.{ext}\t{}\t{rule}",
                        n / 1000,
                        lines + 1
                    );
                    let line = format!("SECRET_VALUE={s}\n");
                    lines += line.matches('\n').count() as u64;
                    text.push_str(&line);
                    continue;
                }
            }
            match kind {
                0..=3 => source_line(&mut rng, &mut text),
                4..=5 => doc_line(&mut rng, &mut text),
                6..=7 => json_record(&mut rng, &mut text),
                8 => {
                    let _ = writeln!(text, "{} = \"{}\"", ident(&mut rng), words(&mut rng, 2));
                }
                _ => {
                    let _ = writeln!(
                        text,
                        "2026-04-25T10:{:02}:{:02}Z INFO {} request_id={} {}",
                        rng.below(60),
                        rng.below(60),
                        ident(&mut rng),
                        fake_uuid(rng.next_u64()),
                        words(&mut rng, 7)
                    );
                }
            }
            lines += 1;
        }
        let path = out
            .join(dir)
            .join(format!("{:03}", n / 1000))
            .join(format!("{n:06}.{ext}"));
        std::fs::create_dir_all(path.parent().unwrap_or(&out))?;
        std::fs::File::create(&path)?.write_all(text.as_bytes())?;
        written += text.len() as u64;
        n += 1;
    }
    std::fs::write(out.join("planted.tsv"), planted)?;
    eprintln!("{n} files, {written} bytes");
    Ok(())
}
