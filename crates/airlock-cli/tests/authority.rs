//! The credential authority, driven through the real `airlock` binary in temporary homes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_testkit::{Home, Run};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// A home with a human owner `alice` and an agent `bot` she owns.
fn home_with_agent() -> Home {
    let h = Home::init(BIN);
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    h.run(&[
        "identity",
        "add",
        "bot",
        "--kind",
        "agent",
        "--owner",
        "alice",
        "--purpose",
        "staging deploys",
    ])
    .ok();
    h
}

fn issue(h: &Home, args: &[&str]) -> String {
    let mut all = vec!["token", "issue", "--identity", "bot"];
    all.extend_from_slice(args);
    let r = h.run(&all).ok();
    let token = r.stdout.trim().to_string();
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "stdout must hold the token and nothing else: {:?}",
        r.stdout
    );
    token
}

fn verify(h: &Home, token: &str, extra: &[&str]) -> Run {
    let mut args = vec!["token", "verify"];
    args.extend_from_slice(extra);
    h.run_with_stdin(&args, Some(&format!("{token}\n")))
}

fn token_id(h: &Home, token: &str) -> String {
    let r = verify(h, token, &["--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["token_id"].as_str().unwrap().to_string()
}

fn sqlite(h: &Home, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(h.path().join("airlock.db"))
        .arg(sql)
        .output()
        .expect("the `sqlite3` command is needed by this test: apt-get install sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn issue_prints_only_a_well_formed_token_on_stdout() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read,write"]);
    assert!(t.starts_with("alk_") && t.len() == 53, "{t}");
    verify(&h, &t, &[]).ok();
}

#[test]
fn an_agent_token_used_after_its_expiry_is_refused() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read", "--ttl", "1h"]);
    verify(&h, &t, &["--at", "+59m"]).ok();
    let r = verify(&h, &t, &["--at", "+61m"]).code(1);
    assert!(r.stderr.contains("expired at"), "{}", r.stderr);
    // The default agent lifetime is one hour.
    let d = issue(&h, &["--env", "staging", "--allow", "read"]);
    verify(&h, &d, &["--at", "+59m"]).ok();
    verify(&h, &d, &["--at", "+1h1m"]).code(1);
}

#[test]
fn a_token_issued_for_staging_verifies_for_staging_only() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read,write"]);
    verify(&h, &t, &["--env", "staging"]).ok();
    let r = verify(&h, &t, &["--env", "production"]).code(1);
    assert!(
        r.stderr.contains("is for `staging`, not `production`"),
        "{}",
        r.stderr
    );
    verify(&h, &t, &["--env", "development"]).code(1);
}

#[test]
fn a_revoked_token_is_refused_on_the_very_next_check() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    let id = token_id(&h, &t);
    h.run(&["token", "revoke", &id, "--reason", "leaked in a ticket"])
        .ok();
    let r = verify(&h, &t, &[]).code(1);
    assert!(
        r.stderr.contains("was revoked (leaked in a ticket)"),
        "{}",
        r.stderr
    );
    let again = h.run(&["token", "revoke", &id]).code(2);
    assert!(again.stderr.contains("already revoked"), "{}", again.stderr);
}

#[test]
fn a_leaked_token_can_be_shown_and_revoked_by_itself_and_is_never_echoed() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    let id = token_id(&h, &t);
    let shown = h.run(&["--json", "token", "show", &t]).ok();
    assert!(shown.stdout.contains(&id), "{}", shown.stdout);
    assert!(!shown.stdout.contains(&t));
    let revoked = h
        .run(&["token", "revoke", &t, "--reason", "found by scan"])
        .ok();
    assert!(revoked.stdout.contains(&id), "{}", revoked.stdout);
    assert!(!revoked.stdout.contains(&t) && !revoked.stderr.contains(&t));
    verify(&h, &t, &[]).code(1);
    // One this Airlock never issued: not found, and not printed back either.
    let other = home_with_agent();
    let foreign = issue(&other, &["--env", "staging", "--allow", "read"]);
    for args in [
        vec!["token", "revoke", foreign.as_str()],
        vec!["token", "show", foreign.as_str()],
        vec!["blast-radius", foreign.as_str()],
    ] {
        let r = h.run(&args).code(3);
        assert!(
            r.stderr.contains("not one this Airlock issued"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains(&foreign) && !r.stdout.contains(&foreign));
    }
}

#[test]
fn disabling_an_identity_revokes_all_its_tokens_in_one_step() {
    let h = home_with_agent();
    let a = issue(&h, &["--env", "staging", "--allow", "read"]);
    let b = issue(&h, &["--env", "production", "--allow", "read"]);
    let r = h
        .run(&["identity", "disable", "bot", "--reason", "offboarded"])
        .ok();
    assert!(r.stdout.contains("revoked 2 token(s)"), "{}", r.stdout);
    for t in [&a, &b] {
        let r = verify(&h, t, &[]).code(1);
        assert!(r.stderr.contains("disabled"), "{}", r.stderr);
    }
    let listed = h
        .run(&["token", "list", "--identity", "bot", "--all", "--json"])
        .ok();
    assert_eq!(
        listed.stdout.matches("\"status\":\"revoked\"").count(),
        2,
        "{}",
        listed.stdout
    );
    let r = h
        .run(&[
            "token",
            "issue",
            "--identity",
            "bot",
            "--env",
            "staging",
            "--allow",
            "read",
        ])
        .code(2);
    assert!(r.stderr.contains("disabled"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn disabling_an_owner_warns_about_the_agents_it_leaves_orphaned() {
    let h = home_with_agent();
    let r = h.run(&["identity", "disable", "alice"]).ok();
    assert!(
        r.stderr.contains("`bot` is owned by `alice`"),
        "{}",
        r.stderr
    );
    let r = h
        .run(&[
            "token",
            "issue",
            "--identity",
            "bot",
            "--env",
            "staging",
            "--allow",
            "read",
        ])
        .code(2);
    assert!(r.stderr.contains("orphaned"), "{}", r.stderr);
}

#[test]
fn an_agent_ttl_over_24h_is_refused_with_a_clear_message() {
    let h = home_with_agent();
    let r = h
        .run(&[
            "token",
            "issue",
            "--identity",
            "bot",
            "--env",
            "staging",
            "--allow",
            "read",
            "--ttl",
            "25h",
        ])
        .code(2);
    assert!(r.stdout.is_empty(), "no token may be printed: {}", r.stdout);
    assert!(
        r.stderr
            .contains("an agent token may live at most 24h, but 25h was asked"),
        "{}",
        r.stderr
    );
    issue(&h, &["--env", "staging", "--allow", "read", "--ttl", "24h"]);
}

#[test]
fn an_agent_without_owner_or_purpose_is_refused() {
    let h = Home::init(BIN);
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    let r = h
        .run(&[
            "identity",
            "add",
            "bot",
            "--kind",
            "agent",
            "--purpose",
            "x",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains("an agent needs an owner; pass `--owner HUMAN`"),
        "{}",
        r.stderr
    );
    let r = h
        .run(&[
            "identity", "add", "bot", "--kind", "agent", "--owner", "alice",
        ])
        .code(2);
    assert!(
        r.stderr.contains("an agent needs a purpose"),
        "{}",
        r.stderr
    );
    let r = h
        .run(&[
            "identity",
            "add",
            "svc",
            "--kind",
            "service",
            "--owner",
            "nobody",
            "--purpose",
            "x",
        ])
        .code(2);
    assert!(
        r.stderr.contains("owner `nobody` does not exist"),
        "{}",
        r.stderr
    );
    h.run(&[
        "identity",
        "add",
        "bot",
        "--kind",
        "agent",
        "--owner",
        "alice",
        "--purpose",
        "p",
    ])
    .ok();
    let r = h
        .run(&[
            "identity",
            "add",
            "sub",
            "--kind",
            "agent",
            "--owner",
            "bot",
            "--purpose",
            "p",
        ])
        .code(2);
    assert!(r.stderr.contains("only a human can own"), "{}", r.stderr);
    // The refusals are audited too.
    let denies = h
        .run(&["audit", "list", "--decision", "deny", "--json"])
        .ok();
    assert_eq!(denies.stdout.lines().count(), 4, "{}", denies.stdout);
}

#[test]
fn truncated_mistyped_or_checksum_broken_tokens_are_refused_as_malformed() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    let mut typo: Vec<char> = t.chars().collect();
    typo[20] = if typo[20] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    let cases = [
        (t[..t.len() - 3].to_string(), "malformed"),
        (format!("{t}0"), "malformed"),
        (t.replacen("alk_", "alq_", 1), "malformed"),
        (typo, "checksum mismatch"),
        ("ghp_notours".to_string(), "malformed"),
        (String::new(), "malformed"),
    ];
    for (bad, want) in cases {
        let r = verify(&h, &bad, &[]).code(1);
        assert!(r.stderr.contains(want), "{bad:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains("unknown"),
            "a malformed token must not be looked up: {}",
            r.stderr
        );
    }
    let audit = h
        .run(&["audit", "list", "--decision", "deny", "--json"])
        .ok();
    assert_eq!(
        audit.stdout.matches("\"action\":\"token.verify\"").count(),
        6
    );
    assert_eq!(audit.stdout.matches("bad_checksum").count(), 1);
}

#[test]
fn a_well_formed_token_this_airlock_never_issued_is_unknown() {
    let h = home_with_agent();
    let other = home_with_agent();
    let foreign = issue(&other, &["--env", "staging", "--allow", "read"]);
    let r = verify(&h, &foreign, &[]).code(1);
    assert!(r.stderr.contains("unknown to this Airlock"), "{}", r.stderr);
}

#[test]
fn the_token_string_and_secret_value_appear_nowhere_on_disk_or_in_logs() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read,write"]);
    let secret = "pg-Sup3r-S3cret-value-4f9a2c";
    let set = h
        .run_with_stdin(
            &["secret", "set", "bookings-db", "--env", "production"],
            Some(secret),
        )
        .ok();
    let mut logs = set.stderr + &set.stdout;
    for args in [
        vec!["token", "list", "--all", "--json"],
        vec!["secret", "list", "--json"],
        vec!["audit", "list", "--json"],
        vec!["identity", "show", "bot", "--json"],
    ] {
        let r = h.run(&args).ok();
        logs.push_str(&r.stdout);
        logs.push_str(&r.stderr);
    }
    let v = verify(&h, &t, &[]).ok();
    logs.push_str(&v.stdout);
    logs.push_str(&v.stderr);
    let wrong = verify(&h, &t, &["--env", "production"]).code(1);
    logs.push_str(&wrong.stderr);
    // Logs ran at debug level (the testkit sets AIRLOCK_LOG=debug).
    for needle in [t.as_str(), secret, &t[4..30]] {
        assert!(
            !logs.contains(needle),
            "a secret leaked into command output or logs"
        );
    }
    // Every file Airlock wrote: the store and its WAL, the config.
    let mut files = 0;
    for entry in std::fs::read_dir(h.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap() == "airlock.key" {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        files += 1;
        for needle in [t.as_bytes(), secret.as_bytes(), &t.as_bytes()[4..30]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "a secret was written to {}",
                p.display()
            );
        }
    }
    assert!(files >= 2);
    let audit = h.run(&["audit", "list", "--json"]).ok();
    assert!(audit.stdout.contains("secret.set") && !audit.stdout.contains(secret));
}

#[test]
fn a_secret_is_read_from_stdin_and_never_printed_back() {
    let h = Home::init(BIN);
    let r = h
        .run_with_stdin(&["secret", "set", "api", "--env", "nowhere"], Some("v"))
        .code(2);
    assert!(
        r.stderr.contains("environment `nowhere` is not configured"),
        "{}",
        r.stderr
    );
    let r = h
        .run_with_stdin(&["secret", "set", "api", "--env", "staging"], Some(""))
        .code(2);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
    h.run_with_stdin(
        &["secret", "set", "api", "--env", "staging"],
        Some("value-1\n"),
    )
    .ok();
    let list = h.run(&["secret", "list"]).ok();
    assert!(list.stdout.contains("api") && list.stdout.contains("staging"));
    assert!(!list.stdout.contains("value-1"));
}

#[test]
fn secrets_cannot_be_set_without_the_master_key() {
    let h = Home::init(BIN);
    std::fs::remove_file(h.path().join("airlock.key")).unwrap();
    let r = h
        .run_with_stdin(&["secret", "set", "api", "--env", "staging"], Some("v"))
        .code(4);
    assert!(
        r.stderr.contains("master key file") && r.stderr.contains("airlock init"),
        "{}",
        r.stderr
    );
}

fn audit_home() -> Home {
    let h = home_with_agent();
    for _ in 0..3 {
        issue(&h, &["--env", "staging", "--allow", "read"]);
    }
    h.run(&["audit", "verify"]).ok();
    // An attacker with file access removes the guard triggers first.
    sqlite(
        &h,
        "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;",
    );
    h
}

#[test]
fn editing_one_audit_row_is_detected_and_named() {
    let h = audit_home();
    sqlite(&h, "UPDATE audit SET decision = 'deny' WHERE seq = 3;");
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(
        r.stderr
            .contains("record 3: contents do not match its hash"),
        "{}",
        r.stderr
    );
}

#[test]
fn deleting_one_audit_row_is_detected_and_named() {
    let h = audit_home();
    sqlite(&h, "DELETE FROM audit WHERE seq = 2;");
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(r.stderr.contains("record 2 is missing"), "{}", r.stderr);
}

#[test]
fn deleting_the_last_audit_row_is_detected() {
    let h = audit_home();
    sqlite(
        &h,
        "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit);",
    );
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(
        r.stderr.contains("records were deleted from the end"),
        "{}",
        r.stderr
    );
}

#[test]
fn reordering_audit_rows_is_detected_and_named() {
    let h = audit_home();
    // Swap records 2 and 3 wholesale (hashes included) by renumbering them.
    sqlite(&h, "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -1;");
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(r.stderr.contains("record 2:"), "{}", r.stderr);
}

#[test]
fn inserting_an_audit_row_is_detected_and_named() {
    let h = audit_home();
    // Shift records 3.. up by one and forge a record 3 copied from 2.
    sqlite(
        &h,
        "UPDATE audit SET seq = seq + 1000 WHERE seq >= 3; UPDATE audit SET seq = seq - 999 WHERE seq >= 1000;
         INSERT INTO audit SELECT 3, ts_ns, actor_id, actor_kind, owner, token_id, 'token.revoke', resource, environment, decision, reason, prev_hash, hash, details FROM audit WHERE seq = 2;",
    );
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(r.stderr.contains("record 3:"), "{}", r.stderr);
}

#[test]
fn the_audit_log_records_who_did_what_and_filters_by_actor_kind() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    verify(&h, &t, &["--env", "production"]).code(1);
    let agents = h
        .run(&["audit", "list", "--actor-kind", "agent", "--json"])
        .ok();
    let rows: Vec<serde_json::Value> = agents
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", agents.stdout);
    let r = &rows[0];
    assert_eq!(r["actor"]["id"], "bot");
    assert_eq!(r["actor"]["kind"], "agent");
    assert_eq!(r["actor"]["owner"], "alice");
    assert!(r["actor"]["token_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(r["decision"], "deny");
    assert_eq!(r["environment"], "production");
    let humans = h
        .run(&[
            "audit",
            "list",
            "--actor-kind",
            "human",
            "--identity",
            "local:tester",
        ])
        .ok();
    assert!(humans.stdout.contains("identity.add") && humans.stdout.contains("token.issue"));
    assert!(!humans.stdout.contains("token.verify"));
}

#[test]
fn a_config_with_a_typo_is_refused_with_file_line_and_expectation() {
    let h = Home::init(BIN);
    let p = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("protected = true", "protectd = true");
    std::fs::write(&p, text).unwrap();
    let r = h.run(&["identity", "list"]).code(2);
    assert!(r.stderr.contains("airlock.toml:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("unknown field `protectd`, expected"),
        "{}",
        r.stderr
    );
}

#[test]
fn commands_without_a_configuration_say_to_run_init() {
    let h = Home::new(BIN);
    let r = h.run(&["identity", "list"]).code(4);
    assert!(r.stderr.contains("run `airlock init`"), "{}", r.stderr);
    let j = h.run(&["identity", "list", "--json"]).code(4);
    let v: serde_json::Value = serde_json::from_str(j.stderr.trim()).unwrap();
    assert_eq!(v["error"]["exit_code"], 4);
}

#[test]
fn init_refuses_to_overwrite_and_keeps_the_key_private() {
    let h = Home::init(BIN);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.path().join("airlock.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let r = h.run(&["init"]).code(2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}

#[test]
fn listings_have_json_forms() {
    let h = home_with_agent();
    issue(&h, &["--env", "staging", "--allow", "read"]);
    for args in [
        vec!["identity", "list", "--json"],
        vec!["token", "list", "--json"],
        vec!["secret", "list", "--json"],
        vec!["audit", "list", "--json"],
    ] {
        let r = h.run(&args).ok();
        for line in r.stdout.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{args:?}: {e}: {line}"));
        }
    }
}

#[test]
fn disabling_a_human_owner_stops_the_tokens_of_the_agents_they_own() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    verify(&h, &t, &[]).ok();
    h.run(&["identity", "disable", "alice"]).ok();
    let r = verify(&h, &t, &[]).code(1);
    assert!(
        r.stderr.contains("whose owner `alice` is disabled"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_token_outlives_a_disable_that_races_with_issuing() {
    let h = home_with_agent();
    let bin = BIN.to_string();
    let dir = h.path().to_path_buf();
    let issuers: Vec<_> = (0..12)
        .map(|_| {
            let (bin, dir) = (bin.clone(), dir.clone());
            std::thread::spawn(move || {
                Command::new(&bin)
                    .args([
                        "token",
                        "issue",
                        "--identity",
                        "bot",
                        "--env",
                        "staging",
                        "--allow",
                        "read",
                    ])
                    .current_dir(&dir)
                    .env("AIRLOCK_CONFIG", dir.join("airlock.toml"))
                    .output()
                    .unwrap()
            })
        })
        .collect();
    h.run(&["identity", "disable", "bot"]).ok();
    let issued: Vec<String> = issuers
        .into_iter()
        .map(|j| j.join().unwrap())
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
        .collect();
    for t in &issued {
        verify(&h, t, &[]).code(1);
    }
    let active = h
        .run(&["token", "list", "--identity", "bot", "--json"])
        .ok();
    assert!(
        active.stdout.trim().is_empty(),
        "a token is active after the disable: {}",
        active.stdout
    );
    h.run(&["audit", "verify"]).ok();
}

#[test]
fn removing_the_audit_head_or_wiping_the_log_is_detected() {
    let h = audit_home();
    sqlite(
        &h,
        "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit); DELETE FROM audit_head;",
    );
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(
        r.stderr.contains("head of the log is missing"),
        "{}",
        r.stderr
    );
    let h = audit_home();
    sqlite(&h, "DELETE FROM audit; DELETE FROM audit_head;");
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(r.stderr.contains("the log was wiped"), "{}", r.stderr);
}

#[test]
fn an_audit_row_edited_to_the_wrong_type_is_named_as_edited() {
    let h = audit_home();
    sqlite(&h, "UPDATE audit SET ts_ns = 'yesterday' WHERE seq = 4;");
    let r = h.run(&["audit", "verify"]).code(1);
    assert!(
        r.stderr.contains("record 4: contents do not match"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_deleted_store_is_not_silently_replaced_by_an_empty_one() {
    let h = home_with_agent();
    std::fs::remove_file(h.path().join("airlock.db")).unwrap();
    let r = h.run(&["audit", "verify"]).code(4);
    assert!(
        r.stderr.contains("does not exist; run `airlock init`"),
        "{}",
        r.stderr
    );
    assert!(!h.path().join("airlock.db").exists());
}

#[test]
fn out_of_range_times_and_oversized_stdin_are_refused_not_crashed_on() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    let r = verify(&h, &t, &["--at=+999999999d"]).code(2);
    assert!(r.stderr.contains("out of range"), "{}", r.stderr);
    h.run(&["audit", "list", "--since", "999999999d"]).code(2);
    let r = verify(&h, &t, &["--at", "2020-01-01T00:00:00Z"]).code(1);
    assert!(r.stderr.contains("not valid before"), "{}", r.stderr);
    let huge = "x".repeat(100_000);
    let r = h
        .run_with_stdin(&["secret", "set", "big", "--env", "staging"], Some(&huge))
        .code(2);
    assert!(r.stderr.contains("longer than 65536 bytes"), "{}", r.stderr);
    let r = h.run_with_stdin(&["token", "verify"], Some(&huge)).code(2);
    assert!(r.stderr.contains("longer than 4096 bytes"), "{}", r.stderr);
}

#[test]
fn review_dates_are_iso_dates_and_purposes_cannot_forge_table_rows() {
    let h = home_with_agent();
    let r = h.run(&["identity", "show", "bot", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let date = v["identity"]["review_by"].as_str().unwrap();
    assert_eq!(date.len(), 10, "{date}");
    let r = h
        .run(&[
            "identity",
            "add",
            "x",
            "--kind",
            "agent",
            "--owner",
            "alice",
            "--purpose",
            "a\nfake  agent  alice",
        ])
        .code(2);
    assert!(r.stderr.contains("control characters"), "{}", r.stderr);
}

#[test]
fn disabling_an_identity_records_every_token_it_revoked() {
    let h = home_with_agent();
    let a = issue(&h, &["--env", "staging", "--allow", "read"]);
    let id = token_id(&h, &a);
    h.run(&["identity", "disable", "bot"]).ok();
    let r = h.run(&["audit", "list", "--json"]).ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("identity.disable"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["details"]["revoked_tokens"], id.as_str());
}

#[test]
fn scan_reports_found_airlock_tokens_as_live_or_revoked_and_can_revoke_them() {
    let h = home_with_agent();
    let live = issue(&h, &["--env", "staging", "--allow", "read"]);
    let gone = issue(&h, &["--env", "staging", "--allow", "read"]);
    h.run(&["token", "revoke", &token_id(&h, &gone)]).ok();
    let notes = h.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(
        notes.join("handover.md"),
        format!("staging token: {live}\nold one: {gone}\n"),
    )
    .unwrap();

    let r = h.run(&["scan", "--json", "notes"]);
    assert_eq!(r.code, 1, "findings remain: {}", r.stderr);
    let findings: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = |line: u64| {
        findings
            .iter()
            .find(|f| f["rule_id"] == "airlock-token" && f["line"] == line)
            .unwrap_or_else(|| panic!("no finding on line {line}: {}", r.stdout))["authority"]
            .clone()
    };
    assert_eq!(status(1)["status"], "live");
    assert_eq!(status(1)["identity"], "bot");
    assert_eq!(status(1)["owner"], "alice");
    assert_eq!(status(2)["status"], "revoked");
    assert!(r.stderr.contains("LIVE Airlock token"), "{}", r.stderr);
    assert!(
        !r.stdout.contains(&live) && !r.stderr.contains(&live),
        "the found token is never printed"
    );

    let r = h.run(&["scan", "--json", "--revoke-found", "notes"]);
    assert!(r.stdout.contains("\"revoked_now\":true"), "{}", r.stdout);
    verify(&h, &live, &[]).code(1);
    let audit = h.run(&["audit", "list", "--json"]).ok();
    assert!(
        audit.stdout.contains("found by airlock scan in"),
        "{}",
        audit.stdout
    );
}

#[test]
fn inventory_names_every_credential_its_owner_and_what_is_wrong_with_it() {
    let h = home_with_agent();
    let t = issue(&h, &["--env", "staging", "--allow", "read"]);
    verify(&h, &t, &[]).ok();
    h.run_with_stdin(&["secret", "set", "db", "--env", "production"], Some("pw"))
        .ok();
    let r = h.run(&["inventory", "--json"]).ok();
    let items: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let token = items.iter().find(|i| i["kind"] == "token").unwrap();
    assert_eq!(token["owner"], "alice");
    assert_eq!(token["status"], "live");
    assert!(items
        .iter()
        .any(|i| i["kind"] == "sealed_secret" && i["id"] == "db@production"));
    h.run(&["inventory", "--fail-on", "high"]).ok();

    // Offboarding the owner orphans the agent: a high finding that fails CI.
    h.run(&["identity", "disable", "alice"]).ok();
    let r = h.run(&["inventory", "--json", "--fail-on", "high"]).code(1);
    let bot: serde_json::Value = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|i| i["kind"] == "identity" && i["id"] == "bot")
        .unwrap();
    assert_eq!(bot["findings"][0]["code"], "orphaned", "{bot}");
    assert_eq!(bot["findings"][0]["severity"], "high");
}

#[test]
fn a_second_factor_is_replaced_only_when_asked_and_the_audit_says_so() {
    let h = home_with_agent();
    let first = h.run(&["identity", "totp", "alice", "--json"]).ok();
    // Retyping the command must not silently swap the factor an approver relies on.
    let again = h.run(&["identity", "totp", "alice", "--json"]).code(2);
    assert!(
        again.stdout.is_empty(),
        "no new secret is shown: {}",
        again.stdout
    );
    assert!(
        again.stderr.contains("already has a TOTP second factor")
            && again.stderr.contains("--replace"),
        "{}",
        again.stderr
    );
    let replaced = h
        .run(&["identity", "totp", "alice", "--replace", "--json"])
        .ok();
    let uri = |r: &Run| -> String {
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["otpauth_uri"].as_str().unwrap().to_string()
    };
    assert_ne!(
        uri(&first),
        uri(&replaced),
        "a new secret replaces the old one"
    );
    let audit = h.run(&["audit", "list", "--json"]).ok().stdout;
    let reasons: Vec<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["action"] == "identity.totp_enrol")
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reasons.len(), 2, "{audit}");
    assert!(reasons[0].contains("enrolled"), "{reasons:?}");
    assert!(reasons[1].contains("replaced"), "{reasons:?}");
    // Agents have no second factor to enrol.
    let agent = h.run(&["identity", "totp", "bot"]).code(2);
    assert!(agent.stderr.contains("not a human"), "{}", agent.stderr);
}
