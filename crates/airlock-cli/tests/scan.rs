#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Black-box tests of `airlock scan`: the real binary on temp dirs.

use airlock_scan::fakes::fake;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn airlock(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn gh(seed: u64) -> String {
    fake("github-token", seed).unwrap()
}

#[test]
fn clean_tree_exits_0_and_findings_exit_1_redacted() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("README.md"),
        "nothing to see; password policy is 12 chars\n",
    )
    .unwrap();
    let out = airlock(&["scan", "."], d.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    let token = gh(1);
    std::fs::write(
        d.path().join(".env"),
        format!("X=1\nGITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    let out = airlock(&["scan", "."], d.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(".env:2:14"), "{stdout}");
    assert!(stdout.contains("github-token"));
    assert!(
        stdout.contains(&format!("ghp_…{}", &token[token.len() - 4..])) || stdout.contains("…"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&token) && !text(&out.stderr).contains(&token),
        "secret leaked"
    );
    // Piped: no ANSI colours and no progress bar.
    assert!(!stdout.contains('\x1b'));
    assert!(!text(&out.stderr).contains('\r'));
}

#[test]
fn json_has_one_object_per_finding_with_the_documented_fields() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.yml"),
        format!(
            "token: {}\nstripe: {}\n",
            gh(2),
            fake("stripe-key", 2).unwrap()
        ),
    )
    .unwrap();
    let out = airlock(&["scan", "--json", "a.yml"], d.path());
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for key in [
        "rule_id",
        "file",
        "line",
        "column",
        "location",
        "redacted",
        "fingerprint",
    ] {
        assert!(lines[0].get(key).is_some(), "missing {key}: {}", lines[0]);
    }
    assert_eq!(lines[0]["rule_id"], "github-token");
    assert_eq!(lines[0]["file"], "a.yml");
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[0]["column"], 8);
    assert_eq!(lines[1]["rule_id"], "stripe-key");
}

#[test]
fn sarif_is_2_1_0_with_rules_and_results() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("k.txt"), format!("\n\nkey = {}\n", gh(3))).unwrap();
    let out = airlock(&["scan", "--sarif", "k.txt"], d.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert!(run["tool"]["driver"]["rules"].as_array().unwrap().len() > 25);
    let r = &run["results"][0];
    assert_eq!(r["ruleId"], "github-token");
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "k.txt"
    );
    assert!(r["partialFingerprints"]["airlockFingerprint/v1"].is_string());
}

#[test]
fn baseline_reports_only_new_findings_and_survives_line_moves() {
    let d = tempfile::tempdir().unwrap();
    let old = gh(4);
    std::fs::write(d.path().join("app.env"), format!("TOKEN={old}\n")).unwrap();
    let out = airlock(
        &["scan", "--baseline-write", "baseline.json", "app.env"],
        d.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let b = std::fs::read_to_string(d.path().join("baseline.json")).unwrap();
    assert!(!b.contains(&old), "baseline must not hold the secret");

    // Unrelated edits move the old secret down; a new one appears.
    let new = fake("slack-webhook", 4).unwrap();
    std::fs::write(
        d.path().join("app.env"),
        format!("# header\n\nA=1\nTOKEN={old}\nHOOK={new}\n"),
    )
    .unwrap();
    let out = airlock(
        &["scan", "--json", "--baseline", "baseline.json", "app.env"],
        d.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["rule_id"], "slack-webhook");

    std::fs::write(d.path().join("app.env"), format!("\n\n\nTOKEN={old}\n")).unwrap();
    let out = airlock(
        &["scan", "--baseline", "baseline.json", "app.env"],
        d.path(),
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn inline_allow_and_config_allowlists() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.py"),
        format!("TOKEN = \"{}\"  # airlock:allow test fixture\n", gh(5)),
    )
    .unwrap();
    std::fs::create_dir(d.path().join("fixtures")).unwrap();
    std::fs::write(d.path().join("fixtures/keys.txt"), gh(6)).unwrap();
    std::fs::write(
        d.path().join("acme.txt"),
        "acme_key = acme_q8zr3lxv0pwm5tnk2byc9df8gh1jkls4\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("scan.toml"),
        r#"
[allowlist]
paths = ["**/fixtures/**", "scan.toml"]

[[rules]]
id = "acme-key"
regex = '''\b(acme_[a-z0-9]{32})\b'''
keywords = ["acme_"]
min_entropy = 3.0
positives = ["acme_q8zr3lxv0pwm5tnk2byc9df8gh1jkls4"]
negatives = ["acme_00000000000000000000000000000000"]
"#,
    )
    .unwrap();
    let out = airlock(&["scan", "--json", "--rules", "scan.toml", "."], d.path());
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}\n{}", text(&out.stderr));
    assert_eq!(lines[0]["rule_id"], "acme-key");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_user_rule_failing_its_own_examples_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("bad.toml"),
        "[[rules]]\nid = \"loose\"\nregex = 'k_[a-z]+'\nnegatives = [\"k_abc\"]\n",
    )
    .unwrap();
    let out = airlock(&["scan", "--rules", "bad.toml", "."], d.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("rule `loose`") && err.contains("negative"),
        "{err}"
    );
}

#[test]
fn stdin_and_missing_paths() {
    let out = with_stdin(
        &["scan", "--json", "-"],
        format!("\nauth: Bearer {}\n", fake("jwt", 7).unwrap()).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            v["file"].as_str(),
            v["line"].as_u64(),
            v["rule_id"].as_str()
        ),
        (Some("<stdin>"), Some(2), Some("jwt"))
    );

    let d = tempfile::tempdir().unwrap();
    let out = airlock(&["scan", "does-not-exist"], d.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does-not-exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn slack_export_locations_are_printed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("export");
    std::fs::create_dir_all(root.join("ops")).unwrap();
    std::fs::write(root.join("channels.json"), r#"[{"name":"ops"}]"#).unwrap();
    std::fs::write(root.join("users.json"), r#"[{"id":"U9","name":"carol"}]"#).unwrap();
    let day = serde_json::json!([{"user": "U9", "ts": "1777100000.000900", "text": format!("npm token {}", fake("npm-token", 8).unwrap())}]);
    std::fs::write(root.join("ops/2026-04-25.json"), day.to_string()).unwrap();
    let out = airlock(&["scan", "--json", "export"], d.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        v["location"],
        "#ops 2026-04-25 ts=1777100000.000900 user=U9 (carol)"
    );
}
