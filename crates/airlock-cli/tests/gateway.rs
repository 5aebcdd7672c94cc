//! The incident, replayed against the real binary: a shared cloud GraphQL API on loopback, the
//! `airlock serve` gateway in front of it, and agents holding only Airlock tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_testkit::client::{graphql, send};
use airlock_testkit::cloud::FakeCloud;
use airlock_testkit::serve::Serving;
use airlock_testkit::{incident_config, Home};
use std::net::SocketAddr;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const ADMIN_SECRET: &str = "cloud-admin-SECRET-9f8e7d6c5b4a";

fn incident_home(cloud: SocketAddr) -> Home {
    let h = Home::init(BIN);
    let cfg = h.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&incident_config(cloud));
    std::fs::write(&cfg, text).unwrap();
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    h.run(&[
        "identity",
        "add",
        "stage-bot",
        "--kind",
        "agent",
        "--owner",
        "alice",
        "--purpose",
        "staging volume cleanup",
    ])
    .ok();
    h.run(&[
        "identity",
        "add",
        "prod-bot",
        "--kind",
        "agent",
        "--owner",
        "alice",
        "--purpose",
        "production reporting",
    ])
    .ok();
    h.run_with_stdin(
        &["secret", "set", "cloud-admin", "--env", "production"],
        Some(ADMIN_SECRET),
    )
    .ok();
    h
}

const DELETE: &str = "mutation Delete($id: ID!) { volumeDelete(volumeId: $id) }";
const READ: &str = "query Read($id: ID!) { volume(id: $id) { id size } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_replayed_is_stopped_and_normal_work_still_flows() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let staging = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let production = h.issue_token("prod-bot", "production", "read,write,destructive");
    let gw = Serving::start(&h);
    let mut seen = String::new();

    // 1. The incident: a staging token deletes the production volume. Refused, volume intact.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        DELETE,
        serde_json::json!({"id": "vol-prod-bookings"}),
    )
    .await
    .unwrap();
    seen.push_str(&format!("{:?}{}", r.headers, r.body));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "environment_mismatch", "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("vol-prod-bookings"),
        "{}",
        r.body
    );
    assert!(
        r.json()["hint"]
            .as_str()
            .unwrap()
            .contains("production token"),
        "{}",
        r.body
    );
    assert!(
        cloud.has("vol-prod-bookings"),
        "the production volume must survive"
    );

    // 2. The same agent deletes a staging volume: its normal work is allowed.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        DELETE,
        serde_json::json!({"id": "vol-stg-1"}),
    )
    .await
    .unwrap();
    seen.push_str(&format!("{:?}{}", r.headers, r.body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["volumeDelete"], true, "{}", r.body);
    assert!(!cloud.has("vol-stg-1"));

    // 3. A production token: the delete waits for a human, reads pass.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&production),
        DELETE,
        serde_json::json!({"id": "vol-prod-bookings"}),
    )
    .await
    .unwrap();
    seen.push_str(&format!("{:?}{}", r.headers, r.body));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "approval_required", "{}", r.body);
    let approval = r.json()["approval"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body))
        .to_string();
    assert!(approval.starts_with("apr_"), "{}", r.body);
    assert_eq!(r.headers["airlock-approval"], approval.as_str());
    assert!(r.json()["expires_at"].is_string(), "{}", r.body);
    assert!(
        !r.body.contains("airlock approvals"),
        "the agent is not told how approval is given: {}",
        r.body
    );
    assert!(cloud.has("vol-prod-bookings"));
    // The identical retry finds the same pending request rather than queueing another.
    let again = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&production),
        DELETE,
        serde_json::json!({"id": "vol-prod-bookings"}),
    )
    .await
    .unwrap();
    assert_eq!(
        again.json()["approval"],
        approval.as_str(),
        "{}",
        again.body
    );
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&production),
        READ,
        serde_json::json!({"id": "vol-prod-bookings"}),
    )
    .await
    .unwrap();
    seen.push_str(&format!("{:?}{}", r.headers, r.body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["volume"]["size"], 500, "{}", r.body);

    // An alias does not hide a delete, and no token means 401 with what to do.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        "mutation { tidy: volumeDelete(volumeId: \"vol-prod-backups\") }",
        serde_json::Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(cloud.has("vol-prod-backups"));
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        None,
        READ,
        serde_json::json!({"id": "vol-stg-2"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.json()["hint"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{}",
        r.body
    );
    seen.push_str(&r.body);

    // The admin endpoints.
    let health = send(gw.admin(), "GET", "/healthz", None, None)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let metrics = send(gw.admin(), "GET", "/metrics", None, None)
        .await
        .unwrap();
    assert!(
        metrics
            .body
            .contains("airlock_decisions_total{decision=\"deny\"}"),
        "{}",
        metrics.body
    );

    let logs = gw.stop();
    seen.push_str(&logs);

    // Every decision is audited with the agent, its owner and the reason.
    let audit = h
        .run(&["audit", "list", "--actor-kind", "agent", "--json"])
        .ok();
    let records: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused = records
        .iter()
        .find(|r| {
            r["actor"]["id"] == "stage-bot"
                && r["decision"] == "deny"
                && r["resource"] == "vol-prod-bookings"
        })
        .unwrap_or_else(|| panic!("no audit record of the refused delete: {}", audit.stdout));
    assert_eq!(refused["actor"]["kind"], "agent");
    assert_eq!(refused["actor"]["owner"], "alice");
    assert_eq!(refused["environment"], "production");
    assert_eq!(refused["details"]["class"], "destructive");
    assert_eq!(refused["details"]["code"], "environment_mismatch");
    assert!(refused["details"]["policies"]
        .as_str()
        .unwrap()
        .contains("environment-match"));
    assert!(refused["reason"]
        .as_str()
        .unwrap()
        .contains("the token is for staging"));
    assert!(records
        .iter()
        .any(|r| r["decision"] == "needs_approval" && r["actor"]["id"] == "prod-bot"));
    assert!(
        records
            .iter()
            .any(|r| r["decision"] == "allow" && r["action"] == "volume"),
        "reads are audited too"
    );
    h.run(&["audit", "verify"]).ok();
    seen.push_str(&audit.stdout);

    // The admin secret was injected (the upstream accepted the allowed calls) and appears
    // nowhere the agent or the logs could show it.
    assert!(cloud.authorized_requests() >= 2);
    assert!(!seen.contains(ADMIN_SECRET), "the upstream secret leaked");
    assert!(
        !seen.contains(&staging) && !seen.contains(&production),
        "a token leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_on_reload_is_rejected_and_the_last_good_one_keeps_serving() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let policy = h.path().join("extra.cedar");
    std::fs::write(&policy, "@id(\"no-deletes\")\nforbid (principal, action == Airlock::Action::\"volumeDelete\", resource);\n").unwrap();
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg).unwrap() + "\n[policies]\nfiles = [\"extra.cedar\"]\n";
    std::fs::write(&cfg, text).unwrap();
    h.run(&["policy", "check"]).ok();
    let staging = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let gw = Serving::start(&h);
    let del = |id: &'static str| {
        graphql(
            gw.proxy(),
            "/cloud/graphql",
            Some(&staging),
            DELETE,
            serde_json::json!({ "id": id }),
        )
    };
    let r = del("vol-stg-1").await.unwrap();
    assert_eq!(r.json()["error"], "denied_by_policy", "{}", r.body);

    // A broken policy file: rejected, the old policy keeps refusing deletes.
    std::fs::write(&policy, "forbid (principal, action resource);").unwrap();
    Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = del("vol-stg-1").await.unwrap();
    assert_eq!(r.json()["error"], "denied_by_policy", "{}", r.body);
    let m = send(gw.admin(), "GET", "/metrics", None, None)
        .await
        .unwrap();
    assert!(
        m.body
            .contains("airlock_reloads_total{result=\"rejected\"} "),
        "{}",
        m.body
    );
    assert!(
        !m.body
            .contains("airlock_reloads_total{result=\"rejected\"} 0"),
        "{}",
        m.body
    );

    // A valid change is picked up without a restart.
    std::fs::write(&policy, "// no extra rules\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    let mut allowed = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let r = del("vol-stg-1").await.unwrap();
        if r.status == 200 {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the fixed policy was never picked up");
    let logs = gw.stop();
    assert!(logs.contains("new configuration rejected"), "{logs}");
    // Written to a file, the log is plain text a collector can parse: no terminal colour codes.
    assert!(!logs.contains('\u{1b}'), "{logs:?}");
}

#[test]
fn serve_without_upstreams_says_what_to_add() {
    let h = Home::init(BIN);
    let r = h.run(&["serve"]).code(2);
    assert!(
        r.stderr.contains("no upstreams are configured"),
        "{}",
        r.stderr
    );
}

/// A request Airlock cannot read (no JSON content type, broken JSON, a path no rule describes) is
/// refused as such, with a hint to fix the request, never one to add the upstream to the catalog
/// (which would open every unreadable request to that environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_request_is_refused_as_unreadable_with_a_hint_that_fixes_the_request() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let staging = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let gw = Serving::start(&h);
    let delete =
        serde_json::json!({ "query": DELETE, "variables": { "id": "vol-stg-2" } }).to_string();
    let cases = [
        (
            "/cloud/graphql",
            "text/plain",
            delete.clone(),
            "Content-Type",
        ),
        (
            "/cloud/graphql",
            "application/json",
            "{\"query\": ".to_string(),
            "JSON",
        ),
        ("/cloud/GRAPHQL", "application/json", delete, "rule"),
    ];
    for (path, ctype, body, hint) in cases {
        let r = airlock_testkit::client::send(
            gw.proxy(),
            "POST",
            path,
            Some(&staging),
            Some((ctype, body)),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403, "{}", r.body);
        let j = r.json();
        assert_eq!(j["error"], "unclassifiable_request", "{}", r.body);
        assert!(
            j["message"]
                .as_str()
                .unwrap()
                .contains("could not classify"),
            "{}",
            r.body
        );
        let h = j["hint"].as_str().unwrap();
        assert!(
            h.contains(hint) && !h.contains("resource add"),
            "{}",
            r.body
        );
    }
    assert!(cloud.has("vol-stg-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_bodies_too_large_to_classify_and_uncatalogued_resources() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let staging = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let gw = Serving::start(&h);

    // HTTP/2 (prior knowledge) is served and decided like HTTP/1.1.
    let body = serde_json::json!({ "query": READ, "variables": { "id": "vol-stg-2" } }).to_string();
    let r = airlock_testkit::client::send_h2(gw.proxy(), "/cloud/graphql", Some(&staging), body)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let body = serde_json::json!({ "query": DELETE, "variables": { "id": "vol-prod-bookings" } })
        .to_string();
    let r = airlock_testkit::client::send_h2(gw.proxy(), "/cloud/graphql", Some(&staging), body)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    // A body larger than the classifier reads is refused, not passed through unread.
    let padding = "#".repeat(2 << 20);
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        &format!("{padding}\n{DELETE}"),
        serde_json::json!({"id": "vol-stg-2"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"], "body_too_large_to_classify");
    assert!(cloud.has("vol-stg-2"));

    // A volume nobody catalogued counts as the most protected: refused, with how to fix it.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        READ,
        serde_json::json!({"id": "scratch-7"}),
    )
    .await
    .unwrap();
    assert_eq!(
        r.json()["error"],
        "unknown_resource_environment",
        "{}",
        r.body
    );
    assert!(
        r.json()["hint"]
            .as_str()
            .unwrap()
            .contains("airlock resource add scratch-7"),
        "{}",
        r.body
    );
    h.run(&[
        "resource",
        "add",
        "scratch-*",
        "--env",
        "staging",
        "--kind",
        "volume",
    ])
    .ok();
    let mut picked_up = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = graphql(
            gw.proxy(),
            "/cloud/graphql",
            Some(&staging),
            READ,
            serde_json::json!({"id": "scratch-7"}),
        )
        .await
        .unwrap();
        if r.status == 200 {
            picked_up = true;
            break;
        }
    }
    assert!(
        picked_up,
        "the running gateway never saw the new catalog entry"
    );
    let listed = h.run(&["resource", "list", "--json"]).ok();
    assert!(
        listed.stdout.contains("scratch-*") && listed.stdout.contains("vol-prod-*"),
        "{}",
        listed.stdout
    );
    gw.stop();
}

#[test]
fn policy_explain_shows_the_decision_and_the_deciding_policies_without_forwarding() {
    let h = incident_home("127.0.0.1:9".parse().unwrap());
    let staging = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let doc = h.path().join("delete.json");
    std::fs::write(
        &doc,
        serde_json::json!({ "query": DELETE, "variables": { "id": "vol-prod-bookings" } })
            .to_string(),
    )
    .unwrap();
    let r = h
        .run_with_stdin(
            &[
                "policy",
                "explain",
                "--upstream",
                "cloud",
                "--method",
                "POST",
                "--path",
                "/graphql",
                "--body-file",
                doc.to_str().unwrap(),
            ],
            Some(&staging),
        )
        .code(1);
    assert!(
        r.stdout.contains("decision: deny (environment_mismatch)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("destructive volumeDelete on `vol-prod-bookings` in production"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("environment-match"), "{}", r.stdout);
    let schema = h.run(&["policy", "schema"]).ok();
    assert!(
        schema
            .stdout
            .contains("action \"volumeDelete\" in [\"destructive\"]"),
        "{}",
        schema.stdout
    );
}

#[test]
fn the_demo_narrates_the_incident_being_stopped() {
    let out = Command::new(BIN)
        .arg("demo")
        .env("AIRLOCK_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("HTTP 403 \"environment_mismatch\""), "{text}");
    assert!(
        text.contains("vol-prod-bookings still exists upstream: true"),
        "{text}"
    );
    assert!(text.contains("\"approval_required\""), "{text}");
    assert!(text.contains("audit chain verified"), "{text}");
    assert!(!text.contains("\x1b["), "no terminal colours when piped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_over_tls_are_verified_against_the_configured_ca() {
    let (cloud, ca_pem) = FakeCloud::start_tls(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let cfg = h.path().join("airlock.toml");
    let ca = h.path().join("cloud-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("url = \"http://{}\"", cloud.addr),
        &format!(
            "url = \"https://localhost:{}\"\nca_file = \"cloud-ca.pem\"",
            cloud.addr.port()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let staging = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let gw = Serving::start(&h);
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        DELETE,
        serde_json::json!({"id": "vol-stg-1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!cloud.has("vol-stg-1"));

    // Without the CA the upstream's certificate is not trusted: the request fails, nothing is done.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("ca_file = \"cloud-ca.pem\"\n", "");
    std::fs::write(&cfg, text).unwrap();
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = graphql(
            gw.proxy(),
            "/cloud/graphql",
            Some(&staging),
            READ,
            serde_json::json!({"id": "vol-stg-2"}),
        )
        .await
        .unwrap();
        if r.status == 502 {
            assert_eq!(r.json()["error"], "upstream_unavailable");
            refused = true;
            break;
        }
    }
    assert!(refused, "an untrusted upstream certificate was accepted");
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        DELETE,
        serde_json::json!({"id": "vol-stg-2"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(cloud.has("vol-stg-2"));
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_request_in_flight() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let staging = h.issue_token("stage-bot", "staging", "read");
    let gw = Serving::start(&h);
    let body = serde_json::json!({ "query": READ, "variables": { "id": "vol-stg-1" } }).to_string();
    let proxy = gw.proxy();
    let in_flight = tokio::spawn(async move {
        airlock_testkit::client::send_with(
            proxy,
            "POST",
            "/cloud/graphql",
            Some(&staging),
            Some(("application/json", body)),
            &[("x-test-delay-ms", "1000")],
        )
        .await
    });
    // Let the request reach the slow upstream, then ask the gateway to stop.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = tokio::task::spawn_blocking(move || gw.stop())
        .await
        .unwrap();
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(
        r.status, 200,
        "the in-flight request was cut off: {}\n{logs}",
        r.body
    );
    assert_eq!(r.json()["data"]["volume"]["id"], "vol-stg-1");
    // Its audit record was flushed before the process ended.
    let audit = h
        .run(&["audit", "list", "--actor-kind", "agent", "--json"])
        .ok();
    assert!(
        audit.stdout.contains("\"action\":\"volume\""),
        "{}",
        audit.stdout
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_with_a_second_factor_approves_exactly_one_execution() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    h.run(&["identity", "add", "bob", "--kind", "human"]).ok();
    h.run(&[
        "identity",
        "add",
        "ci",
        "--kind",
        "service",
        "--owner",
        "bob",
        "--purpose",
        "ci",
    ])
    .ok();
    let alice_totp = h.enrol_totp("alice");
    let bob_totp = h.enrol_totp("bob");
    let bot = h.issue_token("prod-bot", "production", "read,write,destructive");
    let alice = h.issue_token("alice", "production", "read,write,destructive");
    let bob = h.issue_token("bob", "production", "read");
    let ci = h.issue_token("ci", "production", "read");
    let gw = Serving::start(&h);
    let vars = serde_json::json!({"id": "vol-prod-bookings"});

    // The agent asks; the request waits for a human; retrying before approval changes nothing.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&bot),
        DELETE,
        vars.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["error"], "approval_required", "{}", r.body);
    let apr = r.json()["approval"].as_str().unwrap().to_string();
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&bot),
        DELETE,
        vars.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["approval"].as_str()),
        (403, Some(apr.as_str()))
    );
    assert!(cloud.has("vol-prod-bookings"));

    // Nobody but a human with a valid, unused second factor can decide it.
    let code = alice_totp.code_at(now());
    let r = h.approvals(gw.admin(), &bot, &["approve", &apr, "--totp", &code]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("may not use the admin API"),
        "{}",
        r.stderr
    );
    let r = h.approvals(gw.admin(), &ci, &["approve", &apr, "--totp", &code]);
    assert_eq!(r.code, 1, "a service may not approve: {}", r.stderr);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = h.approvals(gw.admin(), &alice, &["approve", &apr, "--totp", wrong]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    let listed = h.approvals(gw.admin(), &bob, &["list", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains(&apr) && listed.stdout.contains("\"pending\""),
        "{}",
        listed.stdout
    );

    // Restart the gateway while the request is pending: it stays pending and approvable.
    let _ = gw.stop();
    let gw = Serving::start(&h);
    let shown = h.approvals(gw.admin(), &bob, &["show", &apr]);
    assert!(
        shown.stdout.contains("pending"),
        "{}{}",
        shown.stdout,
        shown.stderr
    );

    // The owner approves with her code; the same code cannot be used again.
    let r = h.approvals(
        gw.admin(),
        &alice,
        &[
            "approve",
            &apr,
            "--totp",
            &code,
            "--reason",
            "planned migration",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("approved"), "{}", r.stdout);

    // Another body (same operation, written differently) does not ride on that approval.
    let other_body = "mutation Delete($id: ID!) {  volumeDelete(volumeId: $id) }";
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&bot),
        other_body,
        vars.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["error"], "approval_required", "{}", r.body);
    let other = r.json()["approval"].as_str().unwrap().to_string();
    assert_ne!(other, apr);
    let r = h.approvals(gw.admin(), &alice, &["approve", &other, "--totp", &code]);
    assert_eq!(r.code, 1, "a replayed code must be refused: {}", r.stdout);
    assert!(
        r.stderr.contains("already used") || r.stderr.contains("replay"),
        "{}",
        r.stderr
    );
    assert!(cloud.has("vol-prod-bookings"));

    // The identical request now passes, exactly once.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&bot),
        DELETE,
        vars.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!cloud.has("vol-prod-bookings"));
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&bot),
        DELETE,
        vars.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.json()["error"],
        "approval_required",
        "a second execution needs a new approval: {}",
        r.body
    );
    assert_ne!(r.json()["approval"].as_str().unwrap(), apr);

    // A human requester cannot approve their own request; deny is final.
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&alice),
        DELETE,
        serde_json::json!({"id": "vol-prod-backups"}),
    )
    .await
    .unwrap();
    let own = r.json()["approval"].as_str().unwrap().to_string();
    let code2 = alice_totp.code_at(now() + 30);
    let r = h.approvals(gw.admin(), &alice, &["approve", &own, "--totp", &code2]);
    assert!(r.stderr.contains("cannot approve it"), "{}", r.stderr);
    let r = h.approvals(
        gw.admin(),
        &bob,
        &[
            "deny",
            &own,
            "--totp",
            &bob_totp.code_at(now()),
            "--reason",
            "not today",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&alice),
        DELETE,
        serde_json::json!({"id": "vol-prod-backups"}),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["error"], "approval_denied", "{}", r.body);
    assert!(cloud.has("vol-prod-backups"));
    let _ = gw.stop();

    // The whole story is in the audit log, linked by the approval id.
    let audit = h.run(&["audit", "list", "--json"]).ok();
    let linked: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["details"]["approval"] == apr.as_str())
        .collect();
    let actions: Vec<&str> = linked
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for want in [
        "approval.requested",
        "approval.approve",
        "approval.executed",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let approved = linked
        .iter()
        .find(|r| r["action"] == "approval.approve" && r["decision"] == "allow")
        .unwrap();
    assert_eq!(approved["actor"]["id"], "alice");
    assert_eq!(approved["actor"]["kind"], "human");
    assert_eq!(approved["details"]["factor"], "totp");
    assert!(
        audit.stdout.contains("\"action\":\"admin.request\""),
        "the agent's attempt on the admin API is audited"
    );
    let refusals = linked
        .iter()
        .filter(|r| r["action"] == "approval.approve" && r["decision"] == "deny")
        .count();
    assert!(refusals > 0, "the wrong code is audited: {actions:?}");
    assert!(
        audit.stdout.contains("already used"),
        "the replayed code is audited"
    );
    h.run(&["audit", "verify"]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_are_announced_to_slack_and_a_signed_webhook() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let rx = airlock_testkit::receiver::Receiver::start().await.unwrap();
    let h = incident_home(cloud.addr);
    let slack_url = format!("http://{}/services/T000/B000/slacktokenpart", rx.addr);
    h.run_with_stdin(
        &["secret", "set", "slack-hook", "--env", "production"],
        Some(&slack_url),
    )
    .ok();
    h.run_with_stdin(
        &["secret", "set", "hook-hmac", "--env", "production"],
        Some("hmac-key-for-receivers"),
    )
    .ok();
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "\n[environments.production.notify]\nslack_secret = \"slack-hook\"\nwebhook_url = \"http://{}/hook\"\nwebhook_secret = \"hook-hmac\"\nconsole_url = \"https://airlock.example/console\"\n",
            rx.addr
        );
    std::fs::write(&cfg, text).unwrap();
    let bot = h.issue_token("prod-bot", "production", "read,write,destructive");
    let gw = Serving::start(&h);
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&bot),
        DELETE,
        serde_json::json!({"id": "vol-prod-bookings"}),
    )
    .await
    .unwrap();
    let apr = r.json()["approval"].as_str().unwrap().to_string();
    let mut got = Vec::new();
    for _ in 0..50 {
        got = rx.received();
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 2, "{got:?}");
    let slack = got
        .iter()
        .find(|g| g.path.starts_with("/services/"))
        .unwrap();
    for field in [
        apr.as_str(),
        "prod-bot",
        "alice",
        "volumeDelete",
        "vol-prod-bookings",
        "production",
    ] {
        assert!(
            slack.body.contains(field),
            "slack message lacks {field}: {}",
            slack.body
        );
    }
    assert!(slack.body.contains("\"blocks\""), "{}", slack.body);
    let hook = got.iter().find(|g| g.path == "/hook").unwrap();
    let sig = hook.headers["airlock-signature"].to_str().unwrap();
    let v = airlock_approval::notify::verify_signature(
        b"hmac-key-for-receivers",
        sig,
        hook.body.as_bytes(),
        now(),
    );
    assert!(v.is_ok(), "signature did not verify: {v:?}");
    assert!(airlock_approval::notify::verify_signature(
        b"hmac-key-for-receivers",
        sig,
        b"{}",
        now()
    )
    .is_err());
    let payload: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(payload["approval"]["approval_id"], apr.as_str());
    let logs = gw.stop();
    assert!(
        !logs.contains("slacktokenpart"),
        "the Slack URL is a credential and must not be logged"
    );
    let audit = h.run(&["audit", "list", "--json"]).ok();
    assert_eq!(
        audit
            .stdout
            .matches("\"action\":\"approval.notified\"")
            .count(),
        2,
        "{}",
        audit.stdout
    );
    assert!(!audit.stdout.contains("slacktokenpart"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factors_lock_after_repeated_guesses_and_approvers_need_the_environment() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    h.run(&["identity", "add", "bob", "--kind", "human"]).ok();
    h.run(&["identity", "add", "carol", "--kind", "human"]).ok();
    let bob_totp = h.enrol_totp("bob");
    let carol_totp = h.enrol_totp("carol");
    let bot = h.issue_token("prod-bot", "production", "read,write,destructive");
    let bob = h.issue_token("bob", "production", "read");
    let carol = h.issue_token("carol", "staging", "read");
    let gw = Serving::start(&h);
    // A token in the query string never reaches the audit log.
    let path = format!("/cloud/graphql?access_token={bot}");
    let r = graphql(
        gw.proxy(),
        &path,
        Some(&bot),
        DELETE,
        serde_json::json!({"id": "vol-prod-bookings"}),
    )
    .await
    .unwrap();
    let apr = r.json()["approval"].as_str().unwrap().to_string();

    // A staging approver cannot approve a production operation.
    let r = h.approvals(
        gw.admin(),
        &carol,
        &["approve", &apr, "--totp", &carol_totp.code_at(now())],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("this operation is in production"),
        "{}",
        r.stderr
    );

    // Guessing is cut off: after five wrong codes even the right one is refused.
    let right = bob_totp.code_at(now());
    let wrong: Vec<String> = (0..5)
        .map(|i| format!("{:06}", (right.parse::<u32>().unwrap() + 1 + i) % 1_000_000))
        .collect();
    for w in &wrong {
        let r = h.approvals(gw.admin(), &bob, &["approve", &apr, "--totp", w]);
        assert_eq!(r.code, 1, "{}", r.stdout);
    }
    let r = h.approvals(gw.admin(), &bob, &["approve", &apr, "--totp", &right]);
    assert_ne!(
        r.code, 0,
        "a locked second factor must refuse even the right code"
    );
    assert!(
        r.stderr.contains("too many wrong TOTP codes"),
        "{}",
        r.stderr
    );
    let _ = gw.stop();
    let audit = h.run(&["audit", "list", "--json"]).ok();
    assert!(
        !audit.stdout.contains(&bot),
        "a token from a URL reached the audit log"
    );
    assert!(audit.stdout.contains("alk_[redacted]"), "{}", audit.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_goes_through_when_a_human_approves_while_it_waits() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg).unwrap() + "\n[approvals]\nhold = \"20s\"\n";
    std::fs::write(&cfg, text).unwrap();
    let alice_totp = h.enrol_totp("alice");
    let bot = h.issue_token("prod-bot", "production", "read,write,destructive");
    let alice = h.issue_token("alice", "production", "read");
    let gw = Serving::start(&h);
    let proxy = gw.proxy();
    let held = tokio::spawn(async move {
        graphql(
            proxy,
            "/cloud/graphql",
            Some(&bot),
            DELETE,
            serde_json::json!({"id": "vol-prod-bookings"}),
        )
        .await
    });
    // Wait for the request to be recorded, then approve it while the agent's request is held open.
    let mut apr = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let listed = h.approvals(gw.admin(), &alice, &["list", "--json"]);
        if let Some(line) = listed.stdout.lines().next() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            apr = v["id"].as_str().map(str::to_string);
            break;
        }
    }
    let apr = apr.expect("the held request was never recorded");
    let r = h.approvals(
        gw.admin(),
        &alice,
        &["approve", &apr, "--totp", &alice_totp.code_at(now())],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = held.await.unwrap().unwrap();
    assert_eq!(
        r.status, 200,
        "the held request should pass once approved: {}",
        r.body
    );
    assert!(!cloud.has("vol-prod-bookings"));
    let _ = gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_binds_the_body_even_when_http2_streams_it_without_a_length() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let cfg = h.path().join("airlock.toml");
    let rules = airlock_testkit::repo_root().join("rules/generic-rest.toml");
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "\n[upstreams.restprod]\nurl = \"http://{}\"\nprefix = \"/restprod\"\nenvironment = \"production\"\nrules = \"{}\"\nsecret = \"cloud-admin\"\n",
            cloud.addr,
            rules.display()
        );
    std::fs::write(&cfg, text).unwrap();
    let alice_totp = h.enrol_totp("alice");
    let bot = h.issue_token("prod-bot", "production", "read,write,destructive");
    let alice = h.issue_token("alice", "production", "read");
    let gw = Serving::start(&h);
    let send = |body: &'static str| {
        airlock_testkit::client::send_h2_streamed(
            gw.proxy(),
            "DELETE",
            "/restprod/v1/volumes/vol-10",
            Some(&bot),
            vec!["{\"cascade\":", body],
        )
    };
    let r = send("false}").await.unwrap();
    assert_eq!(r.json()["error"], "approval_required", "{}", r.body);
    let apr = r.json()["approval"].as_str().unwrap().to_string();
    let ok = h.approvals(
        gw.admin(),
        &alice,
        &["approve", &apr, "--totp", &alice_totp.code_at(now())],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // The approved operation with another streamed body is another operation.
    let r = send("true,\"purge_backups\":true}").await.unwrap();
    assert_eq!(
        r.json()["error"],
        "approval_required",
        "a different body rode on the approval: {}",
        r.body
    );
    assert_ne!(r.json()["approval"].as_str().unwrap(), apr);
    // The approved body itself goes through, once.
    let r = send("false}").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_the_sealed_secret_and_none_of_the_agents_token_hop_or_rewrite_headers() {
    let upstream = airlock_testkit::receiver::Receiver::start().await.unwrap();
    let h = incident_home(upstream.addr);
    let cfg = h.path().join("airlock.toml");
    let rules = airlock_testkit::repo_root().join("rules/generic-rest.toml");
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "\n[upstreams.api]\nurl = \"http://{}\"\nprefix = \"/api\"\nenvironment = \"staging\"\nrules = \"{}\"\nsecret = \"cloud-admin\"\nsecret_env = \"production\"\n",
            upstream.addr,
            rules.display()
        );
    std::fs::write(&cfg, text).unwrap();
    let t = h.issue_token("stage-bot", "staging", "read");
    let gw = Serving::start(&h);

    let r = airlock_testkit::client::send_with(
        gw.proxy(),
        "GET",
        "/api/v1/projects?limit=5",
        Some(&t),
        None,
        &[
            ("connection", "keep-alive, x-hop-secret"),
            ("x-hop-secret", "named in Connection"),
            ("x-original-url", "/v1/admin/users"),
            ("x-rewrite-url", "/v1/admin/users"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("x-request-id", "r-42"),
            ("accept", "application/json"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    let got = upstream.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let seen = &got[0];
    assert_eq!(seen.path, "/v1/projects?limit=5");
    let header = |n: &str| seen.headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(
        header("authorization"),
        Some(format!("Bearer {ADMIN_SECRET}").as_str()),
        "the sealed secret is injected in place of the agent's token"
    );
    assert!(
        !format!("{:?}", seen.headers).contains(&t),
        "the agent's token never reaches the upstream: {:?}",
        seen.headers
    );
    for gone in [
        "x-hop-secret",
        "x-original-url",
        "x-rewrite-url",
        "proxy-authorization",
    ] {
        assert_eq!(header(gone), None, "`{gone}` must not be forwarded");
    }
    assert_eq!(header("x-request-id"), Some("r-42"));
    assert_eq!(header("accept"), Some("application/json"));

    // The same read again is decided from the policy cache, and /metrics says so.
    for _ in 0..2 {
        let r = send(
            gw.proxy(),
            "GET",
            "/api/v1/projects?limit=5",
            Some(&t),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let m = send(gw.admin(), "GET", "/metrics", None, None)
        .await
        .unwrap();
    for line in [
        "airlock_decision_cache_total{result=\"hit\"} 2",
        "airlock_decision_cache_total{result=\"miss\"} 1",
        "airlock_decision_cache_enabled 1",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "no `{line}` in\n{}",
            m.body
        );
    }
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_listener_added_on_reload_serves_and_one_removed_stops_listening() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let staging = h.issue_token("stage-bot", "staging", "read");
    let gw = Serving::start(&h);
    let cfg = h.path().join("airlock.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let direct: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rules = airlock_testkit::repo_root().join("rules/cloud-graphql.toml");
    std::fs::write(
        &cfg,
        format!(
            "{original}\n[upstreams.cloud_direct]\nurl = \"http://{}\"\nlisten = \"127.0.0.1:{port}\"\ncatalog = true\nrules = \"{}\"\nsecret = \"cloud-admin\"\nsecret_env = \"production\"\n",
            cloud.addr,
            rules.display()
        ),
    )
    .unwrap();
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &gw.pid().to_string()])
            .status()
            .unwrap()
    };
    hup();
    let read = || {
        graphql(
            direct,
            "/graphql",
            Some(&staging),
            READ,
            serde_json::json!({ "id": "vol-stg-1" }),
        )
    };
    let mut served = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if let Ok(r) = read().await {
            served = Some(r);
            break;
        }
    }
    let r = served.expect("the new upstream listener never opened");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("vol-stg-1"), "{}", r.body);

    // Removed again: that listener closes; the shared one keeps serving.
    std::fs::write(&cfg, &original).unwrap();
    hup();
    let closed = airlock_testkit::until_closed(direct).await;
    assert!(
        closed,
        "the removed upstream's listener still accepts connections"
    );
    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&staging),
        READ,
        serde_json::json!({ "id": "vol-stg-1" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let logs = gw.stop();
    assert!(logs.contains("listener closed by a reload"), "{logs}");
}

/// A plain-HTTP upstream written by hand, so the test controls its connections. It answers
/// `GET` with 200 and a small JSON body, keeping each connection open for more requests
/// (`close_after_each = false`) or closing it after one response without saying so, as a server
/// restarting or an idle cut would. It answers `POST` at once with 413, before reading the body,
/// as a server refusing an upload does, and then reads and discards what follows. Returns its
/// address and a count of accepted connections.
async fn counting_upstream(
    close_after_each: bool,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head: Vec<u8> = buf.drain(..end).collect();
                    if head.starts_with(b"POST") {
                        let body = "{\"error\":\"too large\"}";
                        let resp = format!(
                            "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        // The upload keeps coming; nothing more is answered on this connection.
                        while let Ok(n) = sock.read(&mut chunk).await {
                            if n == 0 {
                                return;
                            }
                        }
                        return;
                    }
                    let body = "{\"projects\":[]}";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() || close_after_each {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A home whose gateway fronts the plain-HTTP API at `up` (generic REST rules, staging), with an
/// agent `bot`; returns it with a staging token allowed `allow`.
fn plain_api_home(up: SocketAddr, allow: &str) -> (Home, String) {
    let h = Home::init(BIN);
    let cfg = h.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream_timeout = "10s"

[upstreams.api]
url = "http://{up}"
prefix = "/api"
environment = "staging"
rules = "{rules}"
"#,
        rules = airlock_testkit::repo_root()
            .join("rules/generic-rest.toml")
            .display()
    ));
    std::fs::write(&cfg, text).unwrap();
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
        "api work",
    ])
    .ok();
    let token = h.issue_token("bot", "staging", allow);
    (h, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_a_closed_one_is_replaced_without_an_error() {
    for close_after_each in [false, true] {
        let (up, accepted) = counting_upstream(close_after_each).await;
        let (h, token) = plain_api_home(up, "read");
        let gw = Serving::start(&h);
        for i in 0..20 {
            let r = send(gw.proxy(), "GET", "/api/v1/projects", Some(&token), None)
                .await
                .unwrap();
            assert_eq!(
                r.status, 200,
                "request {i}, closing={close_after_each}: {}",
                r.body
            );
            assert_eq!(r.body, "{\"projects\":[]}");
            // A client's pause between calls: long enough for the gateway to see a close.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        if close_after_each {
            assert_eq!(
                n, 20,
                "one connection per request when the upstream closes each"
            );
        } else {
            // One per core at most: each core keeps its own idle connections.
            assert!(
                n <= 4,
                "{n} upstream connections for 20 sequential requests"
            );
        }
    }
}

/// A request body sent as the test feeds it, chunk by chunk.
struct Fed(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for Fed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_waits_behind_an_upload_the_upstream_answered_early() {
    use http_body_util::BodyExt;
    let (up, _) = counting_upstream(false).await;
    let (h, token) = plain_api_home(up, "read,write");
    let gw = Serving::start(&h);

    // Agent A starts a streamed upload; the upstream refuses it at once, before reading it.
    let tcp = tokio::net::TcpStream::connect(gw.proxy()).await.unwrap();
    let (mut a, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (feed, rx) = tokio::sync::mpsc::channel(4);
    feed.send(bytes::Bytes::from(vec![b'x'; 64 * 1024]))
        .await
        .unwrap();
    let req = http::Request::post("/api/v1/projects")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(Fed(rx))
        .unwrap();
    let refused = a.send_request(req).await.unwrap();
    assert_eq!(refused.status(), 413);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"{\"error\":\"too large\"}");

    // A's upload is still open. Every other request must still be answered: none may be queued
    // on the connection that is carrying it (whichever core it runs on).
    for i in 0..8 {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            send(gw.proxy(), "GET", "/api/v1/projects", Some(&token), None),
        )
        .await
        .unwrap_or_else(|_| panic!("request {i} waited behind the upload"))
        .unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    drop(feed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_plain_http_upstream_is_a_502_that_says_so_and_retries_later() {
    // A port nothing listens on: bound, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let (h, token) = plain_api_home(addr, "read");
    let gw = Serving::start(&h);
    let r = send(gw.proxy(), "GET", "/api/v1/projects", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    let j = r.json();
    assert_eq!(j["error"], "upstream_unavailable", "{}", r.body);
    assert_eq!(j["retry"], true, "{}", r.body);
    assert!(
        j["message"].as_str().unwrap().contains("`api`"),
        "{}",
        r.body
    );
    // The upstream's address is the operator's business, not the agent's.
    assert!(!r.body.contains(&addr.port().to_string()), "{}", r.body);

    // Once the upstream is up, the next request goes through.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
                .await;
        }
    });
    let r = send(gw.proxy(), "GET", "/api/v1/projects", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Apollo-style automatic persisted queries: a hash sent alone is answered as by a server that
/// does not hold it, so the client resends the query, which is then decided as usual. Nothing
/// reaches the upstream for the hash, and no approval is asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_query_hash_alone_is_asked_for_its_query() {
    use sha2::Digest;
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let prod = h.issue_token("prod-bot", "production", "read,write,destructive");
    let gw = Serving::start(&h);
    let hash = hex::encode(sha2::Sha256::digest(DELETE.as_bytes()));
    let ext = serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let vars = serde_json::json!({ "id": "vol-prod-bookings" });
    let only = serde_json::json!({ "extensions": ext, "variables": vars }).to_string();
    let r = send(
        gw.proxy(),
        "POST",
        "/cloud/graphql",
        Some(&prod),
        Some(("application/json", only)),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(
        j["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{}",
        r.body
    );
    assert_eq!(j["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(cloud.authorized_requests(), 0);
    // Nothing was decided: no gateway record, so no approval either.
    let decided = || {
        h.run(&["audit", "list", "--json"])
            .ok()
            .stdout
            .lines()
            .filter(|l| l.contains("\"door\":\"http\""))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(decided().is_empty(), "{:?}", decided());

    // The client's retry carries the query: a production delete, so it waits for a human.
    let full = serde_json::json!({ "query": DELETE, "extensions": ext, "variables": vars });
    let r = send(
        gw.proxy(),
        "POST",
        "/cloud/graphql",
        Some(&prod),
        Some(("application/json", full.to_string())),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "approval_required", "{}", r.body);
    let records = decided();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].contains("volumeDelete"), "{records:?}");
    assert!(cloud.has("vol-prod-bookings"));
}

/// What the upstream reads must be what Airlock classified: a header the client names in
/// `Connection` is dropped before classification (not only before forwarding), a form-typed
/// body that is JSON is read as JSON too, and TRACE, which would echo the injected credential,
/// is never forwarded. Found by review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_reads_the_request_airlock_classified() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let read = h.issue_token("prod-bot", "production", "read");
    let gw = Serving::start(&h);
    let body = r#"{"a":"&query=query{volumes{id}}&","query":"mutation{volumeDelete(volumeId:\"vol-prod-bookings\")}"}"#;
    for extra in [&[("connection", "content-type")][..], &[]] {
        let r = airlock_testkit::client::send_with(
            gw.proxy(),
            "POST",
            "/cloud/graphql",
            Some(&read),
            Some(("application/x-www-form-urlencoded", body.to_string())),
            extra,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403, "{extra:?}: {}", r.body);
    }
    assert!(cloud.has("vol-prod-bookings"));
    assert_eq!(cloud.authorized_requests(), 0);

    let r = send(gw.proxy(), "TRACE", "/cloud/graphql", Some(&read), None)
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(!r.body.contains(ADMIN_SECRET));
    assert_eq!(cloud.authorized_requests(), 0);
}

/// A path Airlock cannot normalise is forwarded as sent, so under an upstream's base path a `..`
/// could climb out of it to a prefix policy never decided for: refused with 400 instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_could_climb_out_of_the_upstream_base_path_is_refused() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = incident_home(cloud.addr);
    let cfg = h.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[upstreams.based]\nurl = \"http://{}/staging\"\nprefix = \"/based\"\nenvironment = \"staging\"\nrules = \"{}\"\nsecret = \"cloud-admin\"\nsecret_env = \"production\"\n",
        cloud.addr,
        airlock_testkit::repo_root()
            .join("rules/generic-rest.toml")
            .display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let all = h.issue_token("stage-bot", "staging", "read,write,destructive");
    let gw = Serving::start(&h);
    let r = send(
        gw.proxy(),
        "DELETE",
        "/based/../../prod/v1/volumes/db",
        Some(&all),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "path_refused", "{}", r.body);
    assert_eq!(cloud.authorized_requests(), 0);
}
