//! What the real `airlock` binary says when something is wrong: each cause once, a hint that
//! leads somewhere, the documented exit code, JSON with `--json`, and quiet on a closed pipe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_testkit::Home;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// A command in `h`, as `Home::run` would start it.
fn command(h: &Home, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(h.path())
        .env("AIRLOCK_CONFIG", h.path().join("airlock.toml"))
        .env("AIRLOCK_ACTOR", "tester")
        .env_remove("AIRLOCK_MASTER_KEY")
        .env_remove("AIRLOCK_LOG");
    cmd
}

/// Runs `airlock serve` where it must fail; kills it (and fails the test) if it serves instead.
fn serve_fails(h: &Home, args: &[&str]) -> (i32, String) {
    let mut all = args.to_vec();
    all.push("serve");
    let mut child = command(h, &all)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`airlock serve` kept running; it was expected to fail");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

fn append(h: &Home, text: &str) {
    let cfg = h.path().join("airlock.toml");
    let mut all = std::fs::read_to_string(&cfg).unwrap();
    all.push_str(text);
    std::fs::write(cfg, all).unwrap();
}

/// A home whose gateway fronts the incident's cloud API (never reached: these gateways fail to
/// start) with its admin secret sealed.
fn home_with_upstream() -> Home {
    let h = Home::init(BIN);
    append(
        &h,
        &airlock_testkit::incident_config("127.0.0.1:9".parse().unwrap()),
    );
    h.run_with_stdin(
        &["secret", "set", "cloud-admin", "--env", "production"],
        Some("the-real-admin-token"),
    )
    .ok();
    h
}

fn write_other_key(path: &Path) {
    std::fs::write(path, format!("{}\n", "ab".repeat(32))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_missing_key_file_says_to_restore_it_from_backup_rather_than_run_init() {
    let h = home_with_upstream();
    std::fs::rename(h.path().join("airlock.key"), h.path().join("key.bak")).unwrap();
    let key = h.path().join("airlock.key").display().to_string();

    let set = h
        .run_with_stdin(&["secret", "set", "db", "--env", "staging"], Some("v"))
        .code(4);
    let (code, serve) = serve_fails(&h, &[]);
    assert_eq!(code, 4, "{serve}");
    for stderr in [&set.stderr, &serve] {
        assert!(stderr.contains(&format!("`{key}` is missing")), "{stderr}");
        assert!(
            stderr.contains("open only with the key that sealed them"),
            "{stderr}"
        );
        assert!(
            stderr.contains("restore that file from your backup"),
            "{stderr}"
        );
        assert!(
            stderr.contains("Only a brand-new installation with no sealed secrets"),
            "{stderr}"
        );
        assert!(!stderr.contains("to create one"), "{stderr}");
        assert_eq!(stderr.matches("is missing").count(), 1, "{stderr}");
    }
}

#[test]
fn each_cause_is_said_once() {
    // Wrong master key: the sealed secret does not open.
    let h = home_with_upstream();
    write_other_key(&h.path().join("airlock.key"));
    let (code, stderr) = serve_fails(&h, &[]);
    // A wrong key is the environment's fault (exit 4), as a missing one is, not bad input.
    assert_eq!(code, 4, "{stderr}");
    assert_eq!(
        stderr.matches("was sealed with master key").count(),
        1,
        "{stderr}"
    );

    // Master key missing.
    std::fs::remove_file(h.path().join("airlock.key")).unwrap();
    let (_, stderr) = serve_fails(&h, &[]);
    assert_eq!(stderr.matches("is missing").count(), 1, "{stderr}");

    // The upstream's secret was never sealed.
    let h = Home::init(BIN);
    append(
        &h,
        &airlock_testkit::incident_config("127.0.0.1:9".parse().unwrap()),
    );
    let (_, stderr) = serve_fails(&h, &[]);
    assert!(stderr.contains("`cloud-admin`"), "{stderr}");
    assert_eq!(stderr.matches("not found").count(), 1, "{stderr}");

    // A path to scan that does not exist.
    let r = h.run(&["scan", "/nonexistent-airlock-path"]).code(2);
    assert_eq!(r.stderr.matches("(os error 2)").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "cannot read `/nonexistent-airlock-path`: No such file or directory (os error 2); check that the path exists"
        ),
        "{}",
        r.stderr
    );

    // A configuration that cannot be read (a directory where the file should be).
    let d = Home::new(BIN);
    std::fs::create_dir(d.path().join("airlock.toml")).unwrap();
    let r = d.run(&["secret", "list"]);
    assert_eq!(r.stderr.matches("(os error").count(), 1, "{}", r.stderr);
}

fn with_database(listen: &str) -> Home {
    let h = Home::init(BIN);
    h.run_with_stdin(
        &["secret", "set", "bookings-db", "--env", "production"],
        Some("pw"),
    )
    .ok();
    append(
        &h,
        &format!(
            r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[databases.bookings]
listen = "{listen}"
url = "postgres://app@127.0.0.1:5432/bookings"
environment = "production"
secret = "bookings-db"
"#
        ),
    );
    h
}

fn bind_error(listen: &str) -> String {
    let h = with_database(listen);
    let (code, stderr) = serve_fails(&h, &[]);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on `{listen}`")),
        "{stderr}"
    );
    stderr
}

#[test]
fn a_listener_that_cannot_bind_gets_the_hint_that_fits_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let busy = "is another process using it?";

    // Only a busy TCP port is blamed on another process.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = bind_error(&addr);
    assert!(e.contains(busy), "{e}");

    let missing = dir.path().join("no-such-dir/.s.PGSQL.6432");
    let e = bind_error(&format!("unix:{}", missing.display()));
    assert!(e.contains("does not exist; create it"), "{e}");
    assert!(!e.contains(busy), "{e}");

    let file = dir.path().join("regular-file");
    std::fs::write(&file, "").unwrap();
    let e = bind_error(&format!("unix:{}", file.display()));
    assert!(e.contains("not a socket is in the way"), "{e}");
    assert!(e.contains("move that file away"), "{e}");
    assert!(!e.contains(busy), "{e}");

    #[cfg(unix)]
    {
        let sock = dir.path().join("live.sock");
        let _live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = bind_error(&format!("unix:{}", sock.display()));
        assert!(e.contains("another process is listening on it"), "{e}");
        assert!(!e.contains(busy), "{e}");
        assert_eq!(e.matches("another process").count(), 1, "{e}");
    }

    let e = bind_error("not-an-address");
    assert!(e.contains("write it as HOST:PORT"), "{e}");
    assert!(!e.contains(busy), "{e}");
}

#[test]
fn serve_without_a_configuration_says_to_run_init_like_every_other_command() {
    let h = Home::new(BIN);
    let (code, stderr) = serve_fails(&h, &[]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("no configuration at"), "{stderr}");
    assert!(stderr.contains("run `airlock init`"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");

    let (code, stderr) = serve_fails(&h, &["--json"]);
    assert_eq!(code, 4, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(v["error"]["exit_code"], 4);
    assert_eq!(v["error"]["kind"], "environment");
}

#[test]
fn scan_errors_are_json_with_json() {
    let h = Home::new(BIN);
    for args in [
        ["--json", "scan", "/nonexistent-airlock-path"],
        ["scan", "--json", "/nonexistent-airlock-path"],
    ] {
        let r = h.run(&args).code(2);
        let v: serde_json::Value = serde_json::from_str(r.stderr.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stderr));
        assert_eq!(v["error"]["exit_code"], 2, "{}", r.stderr);
        assert_eq!(v["error"]["kind"], "io", "{}", r.stderr);
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("/nonexistent-airlock-path"), "{m}");
        assert_eq!(m.matches("(os error 2)").count(), 1, "{m}");
    }
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_command_quietly() {
    let h = Home::init(BIN);
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    for args in [
        &["report", "compliance", "--format", "html"][..],
        &["identity", "list"][..],
        &["identity", "show", "alice"][..],
        &["--json", "audit", "list"][..],
    ] {
        let mut child = command(&h, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the command has written anything, as `| head -c 0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn token_verify_with_nothing_on_stdin_says_so() {
    let h = Home::init(BIN);
    let r = h.run(&["token", "verify"]).code(2);
    assert!(r.stderr.contains("no token on stdin"), "{}", r.stderr);
    assert!(!r.stderr.contains("malformed"), "{}", r.stderr);
    // An empty line was presented: refused (and audited) as malformed, saying what is missing.
    let r = h.run_with_stdin(&["token", "verify"], Some("\n")).code(1);
    assert!(r.stderr.contains("no token on stdin"), "{}", r.stderr);
    assert!(r.stderr.contains("malformed"), "{}", r.stderr);
}

/// `policy check` passes only what `serve` accepts: a relative unix socket path is refused by
/// both, at its line, and a secret the configuration names but nobody sealed fails the check.
#[test]
fn policy_check_refuses_what_serve_would_refuse() {
    let h = with_database("unix:relative/.s.PGSQL.6432");
    for args in [&["policy", "check"][..], &["serve"][..]] {
        let r = h.run(args).code(2);
        assert!(r.stderr.contains("airlock.toml:"), "{}", r.stderr);
        assert!(
            r.stderr.contains("needs an absolute socket path"),
            "{}",
            r.stderr
        );
    }

    let h = with_database("127.0.0.1:0");
    h.run(&["policy", "check"]).ok();
    append(&h, "\n[databases.reports]\nlisten = \"127.0.0.1:0\"\nurl = \"postgres://app@127.0.0.1:5432/reports\"\nenvironment = \"production\"\nsecret = \"reports-db\"\n");
    // Not found, as `secret show` says of a secret nobody sealed.
    let r = h.run(&["policy", "check"]).code(3);
    assert!(
        r.stderr
            .contains("secret `reports-db` for production not found"),
        "{}",
        r.stderr
    );
}

/// Runs `airlock ARGS` in `h` with the master key from `AIRLOCK_MASTER_KEY`, feeding `stdin`;
/// returns the exit code, stdout and stderr.
fn run_with_key(h: &Home, key_hex: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = command(h, args)
        .env("AIRLOCK_MASTER_KEY", key_hex)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The fingerprint `secret set` printed: `sealed `NAME` for ENV (key ID)`.
fn sealed_key_id(stdout: &str) -> String {
    stdout
        .rsplit("(key ")
        .next()
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_string()
}

/// A store sealed under one master key is never half-sealed under another: `secret set` (and
/// TOTP enrolment) with a different key is refused at once, exit 4, before anything is written.
#[test]
fn a_second_master_key_is_refused_before_it_seals_anything() {
    let h = Home::init(BIN);
    let key_a = std::fs::read_to_string(h.path().join("airlock.key"))
        .unwrap()
        .trim()
        .to_string();
    let key_b = "cd".repeat(32);
    let first = h
        .run_with_stdin(
            &["secret", "set", "first", "--env", "staging"],
            Some("first-value"),
        )
        .ok();
    let id_a = sealed_key_id(&first.stdout);
    // Key B's fingerprint, from a store it sealed alone.
    let other = Home::init(BIN);
    let (code, out, err) = run_with_key(
        &other,
        &key_b,
        &["secret", "set", "x", "--env", "staging"],
        "x",
    );
    assert_eq!(code, 0, "{err}");
    let id_b = sealed_key_id(&out);
    assert_ne!(id_a, id_b);

    let set_b = ["secret", "set", "second", "--env", "staging"];
    let (code, stdout, stderr) = run_with_key(&h, &key_b, &set_b, "second-value");
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the store's secrets are sealed under master key {id_a}, but this master key is {id_b}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("AIRLOCK_MASTER_KEY that sealed them"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    for text in [&stdout, &stderr] {
        for secret in [
            "second-value",
            "first-value",
            key_a.as_str(),
            key_b.as_str(),
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    // With --json the refusal is JSON on stderr, like every other error.
    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&set_b);
    let (code, stdout, stderr) = run_with_key(&h, &key_b, &json_args, "second-value");
    assert_eq!(code, 4, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "master_key", "{v}");
    assert_eq!(v["error"]["exit_code"], 4, "{v}");

    // A second factor is sealed under the master key too.
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    let (code, stdout, stderr) = run_with_key(&h, &key_b, &["identity", "totp", "alice"], "");
    assert_eq!(code, 4, "{stderr}");
    assert!(stdout.is_empty(), "no factor is shown: {stdout}");
    assert!(stderr.contains(&id_b) && stderr.contains(&id_a), "{stderr}");

    let list = h.run(&["secret", "list", "--json"]).ok();
    let names: Vec<String> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .collect();
    assert_eq!(names, ["\"first\""], "{}", list.stdout);
    let denied = h.run(&["audit", "list", "--json"]).ok().stdout;
    let refusals = denied
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["decision"] == "deny" && r["action"] == "secret.set")
        .count();
    assert_eq!(refusals, 2, "{denied}");

    // The key that sealed the store keeps working, for new secrets and replacements alike.
    h.run_with_stdin(&set_b, Some("second-value")).ok();
    h.run_with_stdin(
        &["secret", "set", "first", "--env", "staging"],
        Some("first-value-2"),
    )
    .ok();
    let list = h.run(&["secret", "list"]).ok();
    assert!(list.stdout.contains("second"), "{}", list.stdout);

    // Key A lost: the operator moves the store to key B on purpose, and is told what is left.
    let mut moved = set_b.to_vec();
    moved.push("--new-master-key");
    let (code, stdout, stderr) = run_with_key(&h, &key_b, &moved, "second-value-b");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("still sealed under the old key") && stdout.contains("`first` (staging)"),
        "{stdout}"
    );
    // The rest follows under key B without the flag.
    let first_b = ["secret", "set", "first", "--env", "staging"];
    let (code, _, stderr) = run_with_key(&h, &key_b, &first_b, "first-value-b");
    assert_eq!(code, 0, "{stderr}");
}
