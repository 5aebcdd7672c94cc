#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Streaming must find exactly what a whole-buffer scan finds, at the same lines, whatever
//! the chunk boundaries; readers must never panic on arbitrary bytes.

use airlock_scan::engine::CHUNK;
use airlock_scan::fakes::fake;
use airlock_scan::inputs::ScanOptions;
use airlock_scan::{scan_reader, Origin, Scanner};
use proptest::prelude::*;
use std::io::{Cursor, Read};
use std::sync::OnceLock;

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::with_builtins().unwrap())
}

/// A reader that hands out at most `n` bytes per call, to shake chunk boundaries.
struct Trickle<R>(R, usize);
impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

const RULES: &[&str] = &[
    "github-token",
    "private-key",
    "stripe-key",
    "generic-secret",
    "slack-webhook",
    "airlock-token",
];

fn planted_text(fillers: &[usize], picks: &[usize]) -> (Vec<u8>, usize) {
    let mut text = Vec::new();
    let mut planted = 0;
    for (i, &f) in fillers.iter().enumerate() {
        // Filler lines with words that trigger keywords but are not secrets.
        for k in 0..f {
            text.extend_from_slice(
                format!("let token_count_{k} = compute(secret_len); // password policy\n")
                    .as_bytes(),
            );
        }
        let rule = RULES[picks[i % picks.len()] % RULES.len()];
        let s = fake(rule, i as u64 + 1).unwrap();
        let line = match rule {
            "generic-secret" => format!("password = \"{s}\"\n"),
            "private-key" => format!("{s}\n"),
            _ => format!("value: {s}\n"),
        };
        text.extend_from_slice(line.as_bytes());
        planted += 1;
    }
    (text, planted)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn chunked_scan_equals_whole_scan(fillers in proptest::collection::vec(0usize..9000, 2..6), picks in proptest::collection::vec(0usize..100, 1..6), trickle in 1000usize..70000) {
        let (text, planted) = planted_text(&fillers, &picks);
        let whole = scanner().scan_bytes(&text, &Origin::file("f"));
        prop_assert_eq!(whole.len(), planted);
        let streamed = scanner().scan_reader(Trickle(Cursor::new(&text), trickle), &Origin::file("f"), true).unwrap();
        let a: Vec<_> = whole.iter().map(|f| (&f.rule_id, f.line, f.column, &f.fingerprint)).collect();
        let b: Vec<_> = streamed.findings.iter().map(|f| (&f.rule_id, f.line, f.column, &f.fingerprint)).collect();
        prop_assert_eq!(a, b);
        prop_assert_eq!(streamed.bytes, text.len() as u64);
    }

    #[test]
    fn readers_never_panic_on_arbitrary_bytes(prefix in proptest::sample::select(vec![&b"PK\x03\x04"[..], &b"\x1f\x8b"[..], &b""[..]]), body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut data = prefix.to_vec();
        data.extend_from_slice(&body);
        let _ = scan_reader(scanner(), Cursor::new(data), "fuzz", &ScanOptions::default());
    }
}

#[test]
fn a_secret_straddling_the_first_chunk_boundary_is_found_once() {
    let token = fake("github-token", 42).unwrap();
    for shift in [0usize, 10, 30, 70, 5000, 40000] {
        let mut text = Vec::new();
        while text.len() + 80 < CHUNK - shift {
            text.extend_from_slice(
                b"lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\n",
            );
        }
        text.extend_from_slice(format!("GITHUB_TOKEN={token}\n").as_bytes());
        text.extend_from_slice(&b"tail line\n".repeat(20000));
        let lines = text[..text.len() - 200000]
            .iter()
            .filter(|&&c| c == b'\n')
            .count() as u64;
        let r = scanner()
            .scan_reader(Cursor::new(&text), &Origin::file("big"), true)
            .unwrap();
        assert_eq!(r.findings.len(), 1, "shift {shift}");
        assert_eq!(r.findings[0].line, lines, "shift {shift}");
    }
}
