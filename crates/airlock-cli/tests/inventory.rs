//! Inventory, blast radius and lifecycle (issue 6), against the real binary: the incident's
//! shared cloud API, its catalog and the built-in policy pack.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_testkit::client::graphql;
use airlock_testkit::cloud::FakeCloud;
use airlock_testkit::serve::Serving;
use airlock_testkit::{incident_config, Home};
use serde_json::Value;
use std::net::SocketAddr;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const ADMIN_SECRET: &str = "cloud-admin-SECRET-9f8e7d6c5b4a";

fn home(cloud: SocketAddr) -> Home {
    let h = Home::init(BIN);
    let cfg = h.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&incident_config(cloud));
    std::fs::write(&cfg, text).unwrap();
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    h.run(&["identity", "add", "bob", "--kind", "human"]).ok();
    for (name, purpose) in [
        ("stage-bot", "staging volume cleanup"),
        ("prod-bot", "production volume maintenance"),
    ] {
        h.run(&[
            "identity",
            "add",
            name,
            "--kind",
            "agent",
            "--owner",
            "alice",
            "--purpose",
            purpose,
        ])
        .ok();
    }
    h.run_with_stdin(
        &["secret", "set", "cloud-admin", "--env", "production"],
        Some(ADMIN_SECRET),
    )
    .ok();
    h
}

/// Issues a token; returns (token string, token id).
fn issue(h: &Home, identity: &str, envs: &[&str], allow: &str) -> (String, String) {
    let mut args = vec![
        "--json",
        "token",
        "issue",
        "--identity",
        identity,
        "--allow",
        allow,
    ];
    for e in envs {
        args.extend(["--env", e]);
    }
    let v: Value = serde_json::from_str(&h.run(&args).ok().stdout).unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

fn json(h: &Home, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend(args);
    serde_json::from_str(&h.run(&all).ok().stdout).unwrap()
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn unused_addr() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn entries<'a>(b: &'a Value, env: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(move |e| e["environment"] == env)
}

#[test]
fn a_staging_token_reaches_no_production_and_a_production_destroyer_only_after_approval() {
    let h = home(unused_addr());
    let (_, stage) = issue(&h, "stage-bot", &["staging"], "read,write,destructive");
    let (_, prod) = issue(&h, "prod-bot", &["production"], "read,write,destructive");

    let b = json(&h, &["blast-radius", &stage]);
    assert_eq!(b["subject"]["kind"], "token");
    assert!(
        entries(&b, "production").count() > 0,
        "production pairs are evaluated: {b}"
    );
    for e in entries(&b, "production") {
        assert_eq!(
            e["reach"], "denied",
            "staging token reaches production: {e}"
        );
    }
    let headline = b["headline"].as_str().unwrap();
    assert!(
        headline.contains("can destroy 0 production resources; without a human: 0"),
        "{headline}"
    );
    // It does reach its own environment, outright (staging is not protected).
    assert!(
        entries(&b, "staging").any(|e| e["action"] == "volumeDelete" && e["reach"] == "outright")
    );

    let b = json(&h, &["blast-radius", &prod]);
    let destructive: Vec<&Value> = entries(&b, "production")
        .filter(|e| e["class"] == "destructive")
        .collect();
    assert!(
        destructive.iter().any(|e| e["action"] == "volumeDelete"),
        "{b}"
    );
    for e in &destructive {
        assert_eq!(e["reach"], "after_approval", "{e}");
        assert_eq!(e["code"], "approval_required", "{e}");
    }
    assert!(
        !entries(&b, "production").any(|e| e["class"] == "destructive" && e["reach"] == "outright"),
        "a production destroyer never destroys outright"
    );
    let headline = b["headline"].as_str().unwrap();
    assert!(
        headline.contains("can destroy 1 production resource; without a human: 0"),
        "{headline}"
    );

    // The same answer as pictures and as text.
    let text = h.run(&["blast-radius", &prod]).ok().stdout;
    assert!(
        text.contains("after approval  volumeDelete on cloud/vol-prod-*"),
        "{text}"
    );
    let dot = h
        .run(&["blast-radius", &prod, "--format", "dot"])
        .ok()
        .stdout;
    assert!(
        dot.starts_with("digraph blast_radius {") && dot.contains("style=dashed"),
        "{dot}"
    );
    let mm = h
        .run(&["blast-radius", "prod-bot", "--format", "mermaid"])
        .ok()
        .stdout;
    assert!(
        mm.starts_with("flowchart LR") && mm.contains("-.->"),
        "{mm}"
    );

    // A sealed secret is everything the upstream allows, with no policy in the way.
    let s = json(&h, &["blast-radius", "cloud-admin"]);
    assert!(entries(&s, "production").all(|e| e["reach"] == "unchecked"));
    assert!(
        s["headline"]
            .as_str()
            .unwrap()
            .contains("production resource; without a human: 1"),
        "{s}"
    );
    assert!(s["notes"].to_string().contains("never handed out"), "{s}");

    let r = h.run(&["blast-radius", "nobody"]).code(3);
    assert!(r.stderr.contains("`nobody`"), "{}", r.stderr);
}

#[test]
fn an_over_scoped_identity_is_flagged_by_separation_of_duties_and_ranked_first() {
    let h = home(unused_addr());
    h.run(&[
        "identity",
        "add",
        "ops-bot",
        "--kind",
        "agent",
        "--owner",
        "bob",
        "--purpose",
        "does everything",
    ])
    .ok();
    issue(&h, "stage-bot", &["staging"], "read");
    issue(&h, "prod-bot", &["production"], "read,write");
    issue(
        &h,
        "ops-bot",
        &["staging", "production"],
        "read,write,destructive,privilege",
    );

    let r = h.run(&["--json", "blast-radius", "--all"]).ok();
    let ranked = lines(&r.stdout);
    assert_eq!(ranked[0]["identity"], "ops-bot", "{}", r.stdout);
    assert_eq!(ranked[0]["rank"], 1);
    let codes: Vec<&str> = ranked[0]["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"create_and_destroy"), "{}", ranked[0]);
    assert_eq!(ranked[0]["conflicts"][0]["environment"], "production");
    for other in &ranked[1..] {
        assert!(
            other["conflicts"].as_array().unwrap().is_empty(),
            "only the over-scoped identity conflicts: {other}"
        );
    }

    // The inventory carries the conflict as a finding on the identity.
    let items = lines(&h.run(&["--json", "inventory"]).ok().stdout);
    let ops = items
        .iter()
        .find(|i| i["kind"] == "identity" && i["id"] == "ops-bot")
        .unwrap();
    assert!(
        ops["findings"].to_string().contains("create_and_destroy"),
        "{ops}"
    );

    let text = h.run(&["blast-radius", "--all"]).ok().stdout;
    let first = text.lines().nth(1).unwrap();
    assert!(
        first.starts_with("1 ") && first.contains("ops-bot"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_revokes_every_token_so_the_next_gateway_call_is_refused_and_audited() {
    let cloud = FakeCloud::start(ADMIN_SECRET).await.unwrap();
    let h = home(cloud.addr);
    let (token, id) = issue(&h, "prod-bot", &["production"], "read");
    let (_, id2) = issue(&h, "prod-bot", &["production"], "read,write");
    issue(&h, "stage-bot", &["staging"], "read");
    let gw = Serving::start(&h);
    const READ: &str = "query Read($id: ID!) { volume(id: $id) { id size } }";
    let vars = serde_json::json!({"id": "vol-prod-bookings"});

    let r = graphql(
        gw.proxy(),
        "/cloud/graphql",
        Some(&token),
        READ,
        vars.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    let v = json(
        &h,
        &[
            "identity",
            "offboard",
            "prod-bot",
            "--reason",
            "project ended",
        ],
    );
    assert_eq!(v["tokens_revoked"], 2, "{v}");
    let revoked: Vec<&str> = v["revoked_token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        revoked.contains(&id.as_str()) && revoked.contains(&id2.as_str()),
        "{v}"
    );
    assert!(
        v["could_reach"]["headline"]
            .as_str()
            .unwrap()
            .contains("production"),
        "it reports what it could reach: {v}"
    );

    let r = graphql(gw.proxy(), "/cloud/graphql", Some(&token), READ, vars)
        .await
        .unwrap();
    assert_ne!(r.status, 200, "{}", r.body);
    // The identity check comes first; either way the revoked token is refused.
    let code = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        code == "token_identity_disabled" || code == "token_revoked",
        "{}",
        r.body
    );

    // Offboarding the human owner leaves its agents orphaned until reassigned.
    let v = json(&h, &["identity", "offboard", "alice"]);
    assert_eq!(v["orphaned"], serde_json::json!(["stage-bot"]), "{v}");
    let items = lines(&h.run(&["--json", "inventory"]).ok().stdout);
    let stage = |items: &[Value]| {
        items
            .iter()
            .find(|i| i["kind"] == "identity" && i["id"] == "stage-bot")
            .unwrap()
            .clone()
    };
    assert!(stage(&items)["findings"].to_string().contains("orphaned"));
    h.run(&["identity", "reassign", "stage-bot", "--owner", "bob"])
        .ok();
    let items = lines(&h.run(&["--json", "inventory"]).ok().stdout);
    assert_eq!(stage(&items)["owner"], "bob");
    assert!(!stage(&items)["findings"].to_string().contains("orphaned"));
    gw.stop();

    let audit = lines(&h.run(&["--json", "audit", "list"]).ok().stdout);
    let disable = audit
        .iter()
        .find(|r| r["action"] == "identity.disable" && r["resource"] == "prod-bot")
        .unwrap_or_else(|| panic!("no offboarding record: {audit:?}"));
    let listed = disable.to_string();
    assert!(listed.contains(&id) && listed.contains(&id2), "{disable}");
    assert!(listed.contains("project ended"), "{disable}");
    let refused = audit
        .iter()
        .find(|r| r["decision"] == "deny" && r.to_string().contains(&id))
        .unwrap_or_else(|| panic!("the refused call is not audited: {audit:?}"));
    assert!(refused.to_string().contains(&code), "{refused}");
    assert!(audit
        .iter()
        .any(|r| r["action"] == "identity.reassign" && r["resource"] == "stage-bot"));
}

#[test]
fn a_scan_report_with_a_planted_aws_key_imports_as_an_unmanaged_credential_with_its_location() {
    let h = home(unused_addr());
    let key = airlock_scan::fakes::fake("aws-access-key-id", 7).unwrap();
    std::fs::create_dir(h.path().join("app")).unwrap();
    std::fs::write(
        h.path().join("app/config.env"),
        format!("REGION=eu-west-1\n# deploy\naws_access_key_id = {key}\n"),
    )
    .unwrap();
    let scan = h.run(&["scan", "--json", "app"]).code(1);
    std::fs::write(h.path().join("report.json"), &scan.stdout).unwrap();

    let v = json(&h, &["inventory", "import-scan", "report.json"]);
    assert_eq!(v["imported"], 1, "{v}");
    assert_eq!(v["new"], 1, "{v}");
    // Importing again refreshes the same credential, never a twin.
    assert_eq!(
        json(&h, &["inventory", "import-scan", "report.json"])["new"],
        0
    );

    let r = h.run(&["--json", "inventory", "--fail-on", "high"]).code(1);
    let items = lines(&r.stdout);
    let found: Vec<&Value> = items.iter().filter(|i| i["kind"] == "unmanaged").collect();
    assert_eq!(found.len(), 1, "{}", r.stdout);
    let u = found[0];
    assert_eq!(u["credential_kind"], "aws-access-key-id");
    assert_eq!(u["found_at"], "app/config.env:3:21", "{u}");
    assert_eq!(u["agent_accessible"], true);
    assert_eq!(u["findings"][0]["code"], "unmanaged_agent_readable");
    assert_eq!(u["findings"][0]["severity"], "high");
    assert!(
        u["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unmanaged credential readable by agents"),
        "{u}"
    );
    let text = h.run(&["inventory"]).ok().stdout;
    assert!(text.contains("app/config.env:3:21"), "{text}");
    for out in [&r.stdout, &text] {
        assert!(!out.contains(&key), "the key itself is never shown");
    }

    // A hand-edited report carrying a whole secret is refused and imports nothing.
    let bad = scan.stdout.replace(
        &serde_json::from_str::<Value>(scan.stdout.lines().next().unwrap()).unwrap()["redacted"]
            .as_str()
            .unwrap()
            .to_string(),
        &key,
    );
    std::fs::write(h.path().join("bad.json"), bad).unwrap();
    let r = h.run(&["inventory", "import-scan", "bad.json"]).code(2);
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    assert!(!r.stderr.contains(&key));
    let audit = h.run(&["--json", "audit", "list"]).ok().stdout;
    assert!(audit.contains("inventory.import_scan"), "{audit}");
    assert!(!audit.contains(&key));
}

#[test]
fn review_moves_the_date_and_the_compliance_report_cites_live_evidence() {
    let h = home(unused_addr());
    issue(&h, "prod-bot", &["production"], "read,write,destructive");
    let v = json(
        &h,
        &[
            "identity",
            "review",
            "prod-bot",
            "--review-by",
            "2099-01-31",
        ],
    );
    assert_eq!(v["review_by"], "2099-01-31");
    let show = json(&h, &["identity", "show", "prod-bot"]);
    assert_eq!(show["identity"]["review_by"], "2099-01-31");
    let r = h
        .run(&[
            "identity",
            "review",
            "prod-bot",
            "--review-by",
            "2000-01-01",
        ])
        .code(2);
    assert!(r.stderr.contains("in the past"), "{}", r.stderr);

    let report = json(&h, &["report", "compliance", "--format", "json"]);
    let controls = report["controls"].as_array().unwrap();
    let get = |id: &str| controls.iter().find(|c| c["id"] == id).unwrap();
    for id in [
        "CC6.1", "CC6.6", "7.2.2", "NHI1", "NHI5", "NHI8", "PR.AA-05",
    ] {
        assert!(!get(id)["evidence"].as_array().unwrap().is_empty(), "{id}");
    }
    assert!(
        get("CC6.1")["evidence"].to_string().contains("2 of 2"),
        "owners and purposes counted from the store: {}",
        get("CC6.1")
    );
    assert_eq!(
        get("PR.AA-05")["status"],
        "exceptions",
        "prod-bot writes and destroys"
    );
    let md = h.run(&["report", "compliance"]).ok().stdout;
    assert!(md.starts_with("# Airlock compliance evidence"), "{md}");
    let html = h
        .run(&["report", "compliance", "--format", "html"])
        .ok()
        .stdout;
    assert!(html.starts_with("<!doctype html>") && html.contains("PCI DSS v4.0.1"));
}

/// The incident's home plus a production PostgreSQL database behind the wire-protocol door, its
/// password sealed. Blast radius never connects, so nothing listens at the URL.
fn home_with_database() -> Home {
    let h = home(unused_addr());
    let cfg = h.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "\n[databases.bookings]\nlisten = \"127.0.0.1:0\"\nurl = \"postgres://postgres@127.0.0.1:5432/postgres\"\nenvironment = \"production\"\nsecret = \"bookings-db\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    h.run_with_stdin(
        &["secret", "set", "bookings-db", "--env", "production"],
        Some("bookings-db-PASSWORD-1a2b3c"),
    )
    .ok();
    h
}

fn database_entries<'a>(b: &'a Value, db: &'a str) -> Vec<&'a Value> {
    b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["door"] == "postgres" && e["upstream"] == db)
        .collect()
}

#[test]
fn a_production_database_is_in_the_blast_radius_and_destroyable_only_after_approval() {
    let h = home_with_database();
    let (_, stage) = issue(&h, "stage-bot", &["staging"], "read,write,destructive");
    let (_, prod) = issue(&h, "prod-bot", &["production"], "read,write,destructive");

    let b = json(&h, &["blast-radius", &stage]);
    let db = database_entries(&b, "bookings");
    assert!(!db.is_empty(), "the database's pairs are evaluated: {b}");
    for e in &db {
        assert_eq!(e["environment"], "production", "{e}");
        assert_eq!(
            e["reach"], "denied",
            "staging token reaches the database: {e}"
        );
    }

    let b = json(&h, &["blast-radius", &prod]);
    let db = database_entries(&b, "bookings");
    let find = |action: &str, class: &str| {
        db.iter()
            .find(|e| e["action"] == action && e["class"] == class)
            .unwrap_or_else(|| panic!("no {action} ({class}) on bookings: {b}"))
    };
    let drop = find("DROP TABLE", "destructive");
    assert_eq!(drop["resource"], "bookings");
    assert_eq!(drop["reach"], "after_approval", "{drop}");
    assert_eq!(drop["statement"], "DROP TABLE t");
    // An UPDATE without a restricting WHERE is destructive, so it waits for a human too.
    assert_eq!(find("UPDATE", "destructive")["reach"], "after_approval");
    assert_ne!(find("connect", "read")["reach"], "denied", "it can log in");
    assert_eq!(
        find("SET", "privilege")["reach"],
        "denied",
        "no privilege in its allowlist"
    );
    assert!(
        !db.iter()
            .any(|e| e["class"] == "destructive" && e["reach"] == "outright"),
        "a production destroyer never destroys the database outright: {b}"
    );
    // The cloud's production volumes and the database: two production resources.
    let headline = b["headline"].as_str().unwrap();
    assert!(
        headline.contains("can destroy 2 production resources; without a human: 0"),
        "{headline}"
    );
    let text = h.run(&["blast-radius", &prod]).ok().stdout;
    assert!(
        text.contains(
            "after approval  DROP TABLE on bookings/bookings (approval_required, e.g. `DROP TABLE t`)"
        ),
        "{text}"
    );
    let dot = h
        .run(&["blast-radius", &prod, "--format", "dot"])
        .ok()
        .stdout;
    assert!(dot.contains("bookings/bookings"), "{dot}");

    // The database's sealed password is everything the database user can do.
    let s = json(&h, &["blast-radius", "bookings-db"]);
    assert_eq!(s["subject"]["id"], "bookings-db@production");
    let db = database_entries(&s, "bookings");
    assert!(db.iter().any(|e| e["action"] == "DROP TABLE"), "{s}");
    assert!(
        db.iter()
            .any(|e| e["action"] == "(any statement the database user may run)"),
        "{s}"
    );
    assert!(db.iter().all(|e| e["reach"] == "unchecked"), "{s}");
    assert!(
        s["headline"]
            .as_str()
            .unwrap()
            .contains("can destroy 1 production resource; without a human: 1"),
        "{s}"
    );
    assert!(
        s["notes"].to_string().contains("database(s): bookings"),
        "{s}"
    );

    let items = lines(&h.run(&["--json", "inventory"]).ok().stdout);
    let sealed = items
        .iter()
        .find(|i| i["kind"] == "sealed_secret" && i["id"] == "bookings-db@production")
        .unwrap_or_else(|| panic!("the database's secret is not in the inventory: {items:?}"));
    assert!(
        sealed["allow"].as_str().unwrap().starts_with("everything"),
        "{sealed}"
    );
    for out in [s.to_string(), format!("{items:?}"), text] {
        assert!(
            !out.contains("bookings-db-PASSWORD"),
            "the password is never shown"
        );
    }
}
