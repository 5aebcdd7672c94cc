//! The PostgreSQL door against a real PostgreSQL and real clients (psql, tokio-postgres,
//! pgbench): what an agent can and cannot do to a database through Airlock.
//!
//! Needs a PostgreSQL server (`AIRLOCK_TEST_PG`, default `postgres://postgres@127.0.0.1:5432`,
//! trust auth) and the psql/pgbench clients; `.ci/run` installs and starts them when missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_testkit::pg::{Cluster, Server};
use airlock_testkit::serve::Serving;
use airlock_testkit::Home;
use std::net::SocketAddr;
use std::process::Command;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// A home with one database in `env`, an owner, and an agent.
fn home_with(db_name: &str, server: &Server, database: &str, env: &str, extra: &str) -> Home {
    let h = Home::init(BIN);
    let cfg = h.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[gateway]\nadmin_listen = \"127.0.0.1:0\"\n\n[databases.{db_name}]\nlisten = \"127.0.0.1:0\"\nurl = \"postgres://{}@{}:{}/{database}\"\nenvironment = \"{env}\"\n{extra}\n",
        server.user, server.host, server.port
    ));
    std::fs::write(&cfg, text).unwrap();
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    h.run(&[
        "identity",
        "add",
        "db-bot",
        "--kind",
        "agent",
        "--owner",
        "alice",
        "--purpose",
        "booking reports",
    ])
    .ok();
    h
}

fn token(h: &Home, env: &str, allow: &str) -> String {
    h.issue_token("db-bot", env, allow)
}

async fn connect(addr: SocketAddr, db: &str, token: &str) -> Result<Client, tokio_postgres::Error> {
    let conn = format!(
        "host={} port={} user=db-bot dbname={db} password={token}",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn psql(addr: SocketAddr, db: &str, token: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &addr.ip().to_string(),
            "-p",
            &addr.port().to_string(),
            "-U",
            "db-bot",
            "-d",
            db,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh database with a seeded `bookings` table behind a door named `bookings` in `env`:
/// the server, the database's name, a direct connection to it and the home.
async fn seeded(label: &str, env: &str, extra: &str) -> (Server, String, Client, Home) {
    let server = Server::from_env();
    let database = server.create_database(label).await;
    let direct = server.connect(&database).await;
    seed(&direct).await;
    let h = home_with("bookings", &server, &database, env, extra);
    (server, database, direct, h)
}

async fn count(direct: &Client) -> i64 {
    direct
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap()
        .get(0)
}

async fn seed(direct: &Client) {
    direct
        .batch_execute(
            "CREATE TABLE bookings (id int PRIMARY KEY, guest text NOT NULL, nights int NOT NULL);
             INSERT INTO bookings SELECT g, 'guest ' || g, g % 7 FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
}

fn audit(h: &Home) -> Vec<serde_json::Value> {
    let out = h
        .run(&["audit", "list", "--json", "--limit", "1000"])
        .ok()
        .stdout;
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_token_cannot_open_the_production_database() {
    let server = Server::from_env();
    let database = server.create_database("envcheck").await;
    let h = home_with("bookings", &server, &database, "production", "");
    let staging = token(&h, "staging", "read,write,destructive");
    let gw = Serving::start(&h);
    let addr = gw.database("bookings");

    let Err(err) = connect(addr, "bookings", &staging).await else {
        panic!("a staging token opened the production database");
    };
    let db_err = err
        .as_db_error()
        .expect("a PostgreSQL error, not a dropped socket");
    assert_eq!(db_err.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
    assert!(
        db_err.message().contains("environment_mismatch"),
        "{db_err:?}"
    );
    assert!(
        db_err.hint().unwrap_or("").contains("production"),
        "{db_err:?}"
    );

    let (ok, _, stderr) = psql(addr, "bookings", "alk_not-a-token", "SELECT 1");
    assert!(!ok);
    assert!(
        stderr.contains("Airlock refused the connection"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("alk_not-a-token"),
        "the error echoes the secret: {stderr}"
    );

    gw.stop();
    let records = audit(&h);
    let refused = records
        .iter()
        .find(|r| {
            r["action"] == "connect" && r["decision"] == "deny" && r["actor"]["id"] == "db-bot"
        })
        .expect("the refused connection is audited");
    assert_eq!(refused["actor"]["kind"], "agent");
    assert_eq!(refused["actor"]["owner"], "alice");
    assert_eq!(refused["environment"], "production");
    assert_eq!(refused["details"]["door"], "postgres");
    assert_eq!(refused["details"]["code"], "environment_mismatch");
    server.drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_statements_never_reach_the_database_and_the_session_stays_usable() {
    let (server, database, direct, h) = seeded("destructive", "production", "").await;
    let prod = token(&h, "production", "read,write,destructive");
    let gw = Serving::start(&h);
    let addr = gw.database("bookings");

    // Each is refused whole with SQLSTATE 42501 through psql; the table is intact after each.
    for sql in [
        "DROP TABLE bookings",
        "TRUNCATE bookings",
        "DELETE FROM bookings",
        "UPDATE bookings SET nights = 0",
        "DELETE FROM bookings WHERE true",
        "WITH gone AS (DELETE FROM bookings RETURNING *) SELECT count(*) FROM gone",
        "SELECT * FROM bookings; DROP TABLE bookings",
        "SELECT 1; DELETE FROM bookings WHERE id = 1; DROP TABLE bookings",
        "DO $$ BEGIN EXECUTE 'DROP TABLE bookings'; END $$",
        "COPY bookings TO '/tmp/airlock-exfil.csv'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM bookings RETURNING 1'",
        "SELECT pg_terminate_backend(1)",
        "drop table bookings -- a comment",
        "SELECT 'unterminated",
    ] {
        let (ok, stdout, stderr) = psql(addr, "bookings", &prod, sql);
        assert!(!ok, "{sql} was not refused: {stdout}");
        assert!(
            stderr.contains("Airlock refused") || sql.contains("unterminated"),
            "{sql}: {stderr}"
        );
        assert!(stdout.is_empty(), "{sql} returned rows: {stdout}");
        assert_eq!(count(&direct).await, 100, "{sql} changed the table");
    }
    let one: i32 = direct
        .query_one("SELECT nights FROM bookings WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 3);

    // The refusal is a proper error: code, hint, approval id; the same session carries on.
    let agent = connect(addr, "bookings", &prod).await.unwrap();
    let err = agent.simple_query("DROP TABLE bookings").await.unwrap_err();
    let e = err.as_db_error().unwrap();
    assert_eq!(e.code(), &SqlState::INSUFFICIENT_PRIVILEGE);
    assert!(e.message().contains("approval_required"), "{e:?}");
    assert!(e.message().contains("apr_"), "no approval id: {e:?}");
    assert!(e.hint().unwrap().contains("approv"), "{e:?}");
    let rows = agent
        .query(
            "SELECT id FROM bookings WHERE id <= $1 ORDER BY id",
            &[&3i32],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);

    // Inside a transaction block the refusal aborts the block, as PostgreSQL itself would.
    agent.batch_execute("BEGIN").await.unwrap();
    agent
        .batch_execute("UPDATE bookings SET nights = 9 WHERE id = 1")
        .await
        .unwrap();
    let err = agent
        .batch_execute("DELETE FROM bookings")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let err = agent.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    agent.batch_execute("ROLLBACK").await.unwrap();
    let nights: i32 = agent
        .query_one("SELECT nights FROM bookings WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nights, 1, "the aborted block's update was rolled back");

    // Extended protocol: a prepared unrestricted DELETE is refused when it would run.
    let stmt = agent
        .prepare("DELETE FROM bookings WHERE $1::int IS NOT NULL")
        .await
        .unwrap();
    let err = agent.execute(&stmt, &[&1i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    assert_eq!(count(&direct).await, 100);

    // Pipelined: refused and allowed queries interleaved each get their own answer, in order.
    let scoped = agent
        .prepare("UPDATE bookings SET nights = nights + 1 WHERE id = $1")
        .await
        .unwrap();
    let read = agent
        .prepare("SELECT guest FROM bookings WHERE id = $1")
        .await
        .unwrap();
    let (a, b, c, d) = tokio::join!(
        agent.query_one(&read, &[&7i32]),
        agent.execute(&stmt, &[&2i32]),
        agent.execute(&scoped, &[&8i32]),
        agent.query_one(&read, &[&9i32]),
    );
    assert_eq!(a.unwrap().get::<_, String>(0), "guest 7");
    assert_eq!(
        b.unwrap_err().code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE)
    );
    assert_eq!(c.unwrap(), 1);
    assert_eq!(d.unwrap().get::<_, String>(0), "guest 9");
    assert_eq!(count(&direct).await, 100);

    // A statement prepared in SQL keeps its class: preparing a wipe is already refused, and a
    // name Airlock did not see prepared counts as destructive.
    let err = agent
        .batch_execute("PREPARE wipe AS DELETE FROM bookings")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let err = agent.batch_execute("EXECUTE wipe").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    agent
        .batch_execute("PREPARE one(int) AS SELECT guest FROM bookings WHERE id = $1")
        .await
        .unwrap();
    let rows = agent.simple_query("EXECUTE one(5)").await.unwrap();
    assert_eq!(rows_text(rows), vec![vec![Some("guest 5".to_string())]]);
    assert_eq!(count(&direct).await, 100);

    // Startup parameters that change interpretation are refused.
    let conn = format!(
        "host={} port={} user=db-bot dbname=bookings password={prod} options='-c search_path=evil'",
        addr.ip(),
        addr.port()
    );
    let Err(err) = tokio_postgres::connect(&conn, NoTls).await else {
        panic!("options were accepted");
    };
    let e = err.as_db_error().unwrap();
    assert!(e.message().contains("`options` is refused"), "{e:?}");

    drop(agent);
    let log = gw.stop();
    assert!(!log.contains(&prod), "the gateway log holds a token");
    let records = audit(&h);
    let drops: Vec<_> = records
        .iter()
        .filter(|r| {
            r["details"]["door"] == "postgres"
                && r["decision"] != "allow"
                && r["action"].as_str().unwrap_or("").contains("DROP")
        })
        .collect();
    assert!(!drops.is_empty());
    for r in &drops {
        assert_eq!(r["actor"]["kind"], "agent");
        assert_eq!(r["environment"], "production");
        assert!(r["details"]["statement"].is_string());
    }
    assert!(
        !records.iter().any(|r| r.to_string().contains("guest ")),
        "audit records hold query data"
    );
    h.run(&["audit", "verify"]).ok();
    server.drop_database(&database).await;
}

/// Every (query, params) returns exactly what a direct connection returns, in both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_scoped_writes_return_what_the_database_returns() {
    let (server, database, direct, h) = seeded("differential", "staging", "").await;
    let t = token(&h, "staging", "read,write");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();

    let queries = [
        "SELECT * FROM bookings ORDER BY id",
        "SELECT guest, nights FROM bookings WHERE nights > 3 ORDER BY id DESC LIMIT 10",
        "SELECT nights, count(*), sum(id) FROM bookings GROUP BY nights ORDER BY nights",
        "SELECT b.id, x.n FROM bookings b JOIN (SELECT generate_series(1, 5) AS n) x ON x.n = b.id ORDER BY 1",
        "SELECT upper(guest), length(guest), coalesce(NULL, nights) FROM bookings WHERE id IN (1, 2, 3) ORDER BY 1",
        "WITH t AS (SELECT id FROM bookings WHERE id < 4) SELECT * FROM t ORDER BY id",
        "SELECT 1 AS one, 'two' AS two, NULL AS three, now() IS NOT NULL AS ts",
        "SELECT id FROM bookings WHERE guest LIKE 'guest 1%' ORDER BY id",
        "UPDATE bookings SET nights = nights + 1 WHERE id = 10 RETURNING id, nights",
        "INSERT INTO bookings VALUES (1000, 'new', 2) RETURNING *",
        "DELETE FROM bookings WHERE id = 1000 RETURNING id",
        "SELECT count(*) FROM bookings",
    ];
    for q in queries {
        // Writes run once per side; restore in between so both see the same table.
        let via = rows_text(agent.simple_query(q).await.unwrap());
        if q.starts_with("UPDATE") {
            direct
                .batch_execute("UPDATE bookings SET nights = nights - 1 WHERE id = 10")
                .await
                .unwrap();
        }
        if q.starts_with("INSERT") {
            direct
                .batch_execute("DELETE FROM bookings WHERE id = 1000")
                .await
                .unwrap();
        }
        if q.starts_with("DELETE") {
            direct
                .batch_execute("INSERT INTO bookings VALUES (1000, 'new', 2)")
                .await
                .unwrap();
        }
        let want = rows_text(direct.simple_query(q).await.unwrap());
        assert_eq!(via, want, "simple protocol: {q}");
    }
    for (q, p) in [
        ("SELECT guest FROM bookings WHERE id = $1", 5i32),
        (
            "SELECT id::text, nights::text FROM bookings WHERE nights = $1 ORDER BY id",
            3,
        ),
        (
            "SELECT count(*)::text, NULL::text FROM bookings WHERE id > $1",
            50,
        ),
        (
            "UPDATE bookings SET nights = nights WHERE id = $1 RETURNING guest",
            4,
        ),
    ] {
        let text = |rows: Vec<tokio_postgres::Row>| -> Vec<Vec<Option<String>>> {
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect()
                })
                .collect()
        };
        let via = text(agent.query(q, &[&p]).await.unwrap());
        let want = text(direct.query(q, &[&p]).await.unwrap());
        assert!(!want.is_empty(), "{q} returns rows");
        assert_eq!(via, want, "extended protocol: {q}");
    }
    drop(agent);
    gw.stop();
    server.drop_database(&database).await;
}

fn rows_text(msgs: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_cancels_copy_streams_both_ways_and_notifications_pass() {
    let (server, database, direct, h) =
        seeded("protocol", "staging", "safe_functions = [\"pg_sleep\"]").await;
    let t = token(&h, "staging", "read,write");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();

    // Cancel: the client's key is Airlock's, mapped to the backend's real one.
    let cancel = agent.cancel_token();
    let sleeper = tokio::spawn(async move {
        let r = agent.simple_query("SELECT pg_sleep(30)").await;
        (agent, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    cancel.cancel_query(NoTls).await.unwrap();
    let (agent, r) = sleeper.await.unwrap();
    assert_eq!(r.unwrap_err().code(), Some(&SqlState::QUERY_CANCELED));
    assert!(started.elapsed() < std::time::Duration::from_secs(25));

    // COPY in and out, through the proxy, row for row.
    use futures_util::{SinkExt, StreamExt};
    let sink = agent
        .copy_in("COPY bookings (id, guest, nights) FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    let mut data = String::new();
    for i in 1000..3000 {
        data.push_str(&format!("{i}\tcopied {i}\t{}\n", i % 5));
    }
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2000);
    assert_eq!(count(&direct).await, 2100);
    let stream = agent
        .copy_out("COPY (SELECT id FROM bookings ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2100);
    drop(agent);

    // NOTIFY and notices pass through to the client.
    let (ok, stdout, stderr) = psql(
        gw.database("bookings"),
        "bookings",
        &t,
        "LISTEN airlock_test; NOTIFY airlock_test, 'through the door'; SELECT 1",
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("through the door") || stderr.contains("through the door"),
        "no notification: {stdout} {stderr}"
    );
    let (ok, _, stderr) = psql(
        gw.database("bookings"),
        "bookings",
        &t,
        "CREATE TABLE IF NOT EXISTS bookings (id int)",
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("NOTICE") && stderr.contains("already exists"),
        "{stderr}"
    );
    gw.stop();
    server.drop_database(&database).await;
}

/// A large COPY streams through with flat memory: the gateway's peak RSS stays far below the
/// data size. (The 1 GB run is `AIRLOCK_COPY_MB=1024`; the default keeps CI quick.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_copy_streams_with_flat_memory() {
    let mb: usize = std::env::var("AIRLOCK_COPY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let server = Server::from_env();
    let database = server.create_database("bigcopy").await;
    let h = home_with("bookings", &server, &database, "staging", "");
    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();
    use futures_util::StreamExt;
    let rows = mb * 1024; // 1 KiB per row
    let stream = agent
        .copy_out(&format!(
            "COPY (SELECT repeat('x', 1023) FROM generate_series(1, {rows})) TO STDOUT"
        ))
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, rows * 1024);
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
    let peak_kb: usize = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!("streamed {mb} MiB; gateway peak RSS {peak_kb} KiB");
    assert!(
        peak_kb < 96 * 1024,
        "gateway peak memory {peak_kb} KiB while streaming {mb} MiB"
    );
    drop(agent);
    gw.stop();
    server.drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_through_the_door_in_both_protocols() {
    let server = Server::from_env();
    let database = server.create_database("pgbench").await;
    let h = home_with("bench", &server, &database, "staging", "");
    let t = token(&h, "staging", "read,write,destructive,privilege");
    let gw = Serving::start(&h);
    let addr = gw.database("bench");
    let pgbench = |args: &[&str]| {
        let out = Command::new("pgbench")
            .args([
                "-h",
                &addr.ip().to_string(),
                "-p",
                &addr.port().to_string(),
                "-U",
                "db-bot",
            ])
            .args(args)
            .arg("bench")
            .env("PGPASSWORD", &t)
            .output()
            .expect("pgbench is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
        text
    };
    pgbench(&["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let text = pgbench(&["-M", mode, "-c", "4", "-j", "2", "-t", "50"]);
        assert!(
            text.contains("number of failed transactions: 0"),
            "{mode}:\n{text}"
        );
    }
    let direct = server.connect(&database).await;
    let n: i64 = direct
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await
        .unwrap()
        .get(0);
    // Each run starts by truncating the history (pgbench's own vacuum step, through the door).
    assert_eq!(n, 4 * 50);
    gw.stop();
    server.drop_database(&database).await;
}

/// The sealed credential logs in with SCRAM-SHA-256 and with md5; the agent never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_logs_in_with_the_sealed_password_by_scram_and_md5() {
    const PASSWORD: &str = "db-Password-7c1e9a";
    let cluster = Cluster::start("app_scram", "app_md5", PASSWORD);
    // A home whose database `main` logs in as `user` with `password` sealed.
    let home = |user: &str, password: &str| {
        let as_user = Server {
            user: user.into(),
            host: "127.0.0.1".into(),
            port: cluster.port,
        };
        let h = home_with(
            "main",
            &as_user,
            "postgres",
            "staging",
            "secret = \"main-db\"",
        );
        h.run_with_stdin(
            &["secret", "set", "main-db", "--env", "staging"],
            Some(password),
        )
        .ok();
        h
    };
    for user in ["app_scram", "app_md5"] {
        let h = home(user, PASSWORD);
        let t = token(&h, "staging", "read");
        let gw = Serving::start(&h);
        let agent = connect(gw.database("main"), "main", &t).await.unwrap();
        let who: String = agent
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);
        let (ok, stdout, stderr) = psql(gw.database("main"), "main", &t, "SELECT current_user");
        assert!(ok, "{stderr}");
        assert_eq!(stdout.trim(), user);
        drop(agent);
        let log = gw.stop();
        assert!(
            !log.contains(PASSWORD),
            "the gateway log holds the database password"
        );
    }

    // A wrong sealed password: the agent is told Airlock could not open the session, not why.
    let h = home("app_scram", "wrong");
    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    let Err(err) = connect(gw.database("main"), "main", &t).await else {
        panic!("a wrong sealed password logged in");
    };
    let e = err.as_db_error().unwrap();
    assert!(e.message().contains("could not open a session"), "{e:?}");
    assert!(!e.message().contains("app_scram"), "{e:?}");
    let log = gw.stop();
    assert!(log.contains("database login failed"), "{log}");
}

/// Clients that send the token over the network use TLS; the door offers it with the configured
/// certificate, and psql verifies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_can_connect_with_verified_tls() {
    let server = Server::from_env();
    let database = server.create_database("tls").await;
    let h = home_with(
        "bookings",
        &server,
        &database,
        "staging",
        "tls_cert = \"door.crt\"\ntls_key = \"door.key\"",
    );
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(h.path().join("door.crt"), ck.cert.pem()).unwrap();
    std::fs::write(h.path().join("door.key"), ck.key_pair.serialize_pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(h.path().join("other.crt"), other.cert.pem()).unwrap();
    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    let addr = gw.database("bookings");
    // psql over TLS, verifying the door's certificate against `root`.
    let psql_tls = |root: &str, sql: &str| {
        Command::new("psql")
            .args(["-X", "-A", "-t", "-c", sql])
            .arg(format!(
                "host=localhost hostaddr={} port={} user=db-bot dbname=bookings sslmode=verify-full sslrootcert={}",
                addr.ip(),
                addr.port(),
                h.path().join(root).display()
            ))
            .env("PGPASSWORD", &t)
            .output()
            .unwrap()
    };
    let out = psql_tls(
        "door.crt",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The door terminates the client's TLS; its own hop to this loopback database is plain.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "f");
    let out = psql_tls("other.crt", "SELECT 1");
    assert!(
        !out.status.success(),
        "psql accepted a certificate it does not trust"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));
    gw.stop();
    server.drop_database(&database).await;
}

/// Raw protocol, as a hostile client would write it: a Parse the server skips (it follows an
/// error in its batch) must not make the door believe the unnamed statement is harmless while
/// the server still holds a DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_parse_cannot_smuggle_a_prepared_delete_past_the_door() {
    use airlock_pgwire::frontend::{encode_parse, encode_password, encode_startup};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (server, database, direct, h) = seeded("smuggle", "production", "").await;
    let t = token(&h, "production", "read,write,destructive");
    let gw = Serving::start(&h);
    let mut s = tokio::net::TcpStream::connect(gw.database("bookings"))
        .await
        .unwrap();

    use wire::{msg, until_ready};
    let bind_unnamed = msg(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
    let execute_unnamed = msg(b'E', &[0, 0, 0, 0, 0]);
    let execute_missing = msg(b'E', b"no_such_portal\0\0\0\0\0");
    let sync = msg(b'S', b"");

    // Negotiation as libpq may do it: GSSAPI encryption, then TLS (neither offered here), then start.
    let mut gss = 8u32.to_be_bytes().to_vec();
    gss.extend(80_877_104i32.to_be_bytes());
    s.write_all(&gss).await.unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    s.write_all(&airlock_pgwire::frontend::encode_ssl_request())
        .await
        .unwrap();
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    s.write_all(&encode_startup(&[
        ("user", "db-bot"),
        ("database", "bookings"),
    ]))
    .await
    .unwrap();
    let mut auth = [0u8; 9];
    s.read_exact(&mut auth).await.unwrap();
    assert_eq!(auth[0], b'R');
    let mut pw = t.clone().into_bytes();
    pw.push(0);
    s.write_all(&encode_password(&pw)).await.unwrap();
    until_ready(&mut s).await;

    // Batch 1: the server's unnamed statement becomes an unrestricted DELETE (parsing runs nothing).
    let mut batch = encode_parse("", "DELETE FROM bookings");
    batch.extend(&sync);
    // Batch 2: an error first, so the server skips the harmless re-Parse that follows.
    batch.extend(&execute_missing);
    batch.extend(encode_parse("", "SELECT 1"));
    batch.extend(&sync);
    // Batch 3, pipelined before any answer: bind and run the unnamed statement.
    batch.extend(&bind_unnamed);
    batch.extend(&execute_unnamed);
    batch.extend(&sync);
    s.write_all(&batch).await.unwrap();
    let (tags1, _) = until_ready(&mut s).await;
    assert_eq!(tags1, vec![b'1', b'Z']);
    let (_, codes2) = until_ready(&mut s).await;
    assert_eq!(
        codes2,
        vec!["34000".to_string()],
        "the missing portal's error"
    );
    let (_, codes3) = until_ready(&mut s).await;
    assert_eq!(
        codes3,
        vec!["42501".to_string()],
        "the DELETE the server still held was not refused"
    );
    assert_eq!(count(&direct).await, 100, "the smuggled DELETE ran");
    drop(s);
    gw.stop();
    server.drop_database(&database).await;
}

/// Approvals through the PostgreSQL door: a destructive statement in production waits for a
/// human, the agent's identical retry runs once after she approves with her second factor, and
/// a different statement is not covered by that approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_approval_lets_exactly_that_statement_run_once() {
    let (server, database, direct, h) = seeded("approval", "production", "").await;
    direct
        .batch_execute("CREATE TABLE scratch (id int)")
        .await
        .unwrap();
    let totp = h.enrol_totp("alice");
    let agent_token = token(&h, "production", "read,write,destructive");
    let alice = h.issue_token("alice", "production", "read");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &agent_token)
        .await
        .unwrap();

    let err = agent.batch_execute("DROP TABLE scratch").await.unwrap_err();
    let message = err.as_db_error().unwrap().message().to_string();
    let apr = message
        .split_whitespace()
        .find(|w| w.starts_with("apr_"))
        .expect("the error names the approval")
        .to_string();
    // The agent cannot approve its own request.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let code = totp.code_at(now);
    let r = h.approvals(
        gw.admin(),
        &agent_token,
        &["approve", &apr, "--totp", &code],
    );
    assert_ne!(r.code, 0, "an agent approved: {}", r.stdout);
    // The human approves with her second factor.
    h.approvals(
        gw.admin(),
        &alice,
        &[
            "approve",
            &apr,
            "--totp",
            &code,
            "--reason",
            "scratch table",
        ],
    )
    .ok();

    // Another statement is not covered; the identical one runs, once.
    let err = agent
        .batch_execute("DROP TABLE bookings")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    agent.batch_execute("DROP TABLE scratch").await.unwrap();
    let gone: i64 = direct
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'scratch'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, 0);
    let err = agent.batch_execute("DROP TABLE scratch").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    assert_eq!(count(&direct).await, 100);
    drop(agent);
    gw.stop();
    server.drop_database(&database).await;
}

/// Inside a transaction block a write's record may be committed with the session's next flush
/// instead of before the write is forwarded, but never after the COMMIT: a gateway killed the
/// moment COMMIT returns still has the record of every write that transaction made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_s_writes_are_all_audited_even_if_the_gateway_dies_at_once() {
    let (server, database, direct, h) =
        seeded("txaudit", "staging", "audit_writes_at_commit = true").await;
    direct
        .batch_execute("CREATE SEQUENCE invoice_no")
        .await
        .unwrap();
    // Records nobody waits for sit in the writer for up to a second: only the door's wait
    // before COMMIT can put the writes' records on disk before the kill.
    slow_linger(&h);
    let t = token(&h, "staging", "read,write");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();

    agent.batch_execute("BEGIN").await.unwrap();
    for id in 1..=3 {
        agent
            .simple_query(&format!(
                "UPDATE bookings SET nights = nights + 100 WHERE id = {id}"
            ))
            .await
            .unwrap();
    }
    for id in 4..=6i32 {
        agent
            .execute(
                "UPDATE bookings SET nights = nights + 100 WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
    }
    assert_eq!(
        int(&agent, "SELECT count(*) FROM bookings WHERE nights >= 100").await,
        6,
        "the transaction sees its own writes"
    );
    agent.batch_execute("COMMIT").await.unwrap();
    // SIGKILL, no drain: whatever is not on disk now is lost.
    drop(gw);

    assert_eq!(
        int(&direct, "SELECT count(*) FROM bookings WHERE nights >= 100").await,
        6,
        "the transaction committed"
    );
    let updates = audit(&h)
        .into_iter()
        .filter(|r| {
            r["details"]["door"] == "postgres"
                && r["decision"] == "allow"
                && r["details"]["statement"] == "UPDATE"
        })
        .count();
    assert_eq!(updates, 6, "every committed write has its audit record");
    h.run(&["audit", "verify"]).ok();

    // A transaction the client abandons never commits, whatever its records' fate; but a
    // sequence moves at once, so `nextval` inside the block is audited before it runs.
    let (gw, agent) = in_a_block(&h, &t, "SELECT nextval('invoice_no')").await;
    drop(gw);
    let nextvals = audit(&h)
        .into_iter()
        .filter(|r| {
            r["details"]["door"] == "postgres"
                && r["details"]["class"] == "write"
                && r["details"]["statement"] == "SELECT"
        })
        .count();
    assert_eq!(
        nextvals, 1,
        "a sequence change is audited before it happens"
    );
    drop(agent);

    let (gw, agent) = in_a_block(&h, &t, "UPDATE bookings SET nights = 50 WHERE id = 8").await;
    drop(gw);
    drop(agent);
    // Taking the row lock waits until the server has ended the abandoned transaction.
    direct
        .batch_execute("SET lock_timeout = '20s'; UPDATE bookings SET nights = nights WHERE id = 8")
        .await
        .unwrap();
    assert_eq!(
        int(&direct, "SELECT nights::int8 FROM bookings WHERE id = 8").await,
        1,
        "the abandoned update was rolled back"
    );
    server.drop_database(&database).await;
}

/// The one integer a query returns.
async fn int(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// A gateway for `h` and an agent session that ran `sql` inside a transaction block it left open.
async fn in_a_block(h: &Home, token: &str, sql: &str) -> (Serving, Client) {
    let gw = Serving::start(h);
    let agent = connect(gw.database("bookings"), "bookings", token)
        .await
        .unwrap();
    agent.batch_execute("BEGIN").await.unwrap();
    agent.batch_execute(sql).await.unwrap();
    (gw, agent)
}

/// Lets records nobody waits for sit in the audit writer for a second before they are committed.
fn slow_linger(h: &Home) {
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[gateway]\n", "[gateway]\naudit_linger = \"1s\"\n");
    std::fs::write(&cfg, text).unwrap();
}

/// Without `audit_writes_at_commit` a write inside a block is audited before it is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_write_in_a_transaction_is_audited_before_it_runs() {
    let (server, database, _direct, h) = seeded("txaudit_off", "staging", "").await;
    slow_linger(&h);
    let t = token(&h, "staging", "read,write");
    let (gw, agent) = in_a_block(&h, &t, "UPDATE bookings SET nights = 5 WHERE id = 9").await;
    drop(gw);
    drop(agent);
    let updates = audit(&h)
        .into_iter()
        .filter(|r| r["details"]["door"] == "postgres" && r["details"]["statement"] == "UPDATE")
        .count();
    assert_eq!(updates, 1);
    server.drop_database(&database).await;
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hup(gw: &Serving) {
    Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
}

/// The first error a count of the bookings gets within ten seconds (a reload taking effect).
async fn first_error(c: &Client) -> Option<tokio_postgres::Error> {
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if let Err(e) = c.query_one("SELECT count(*) FROM bookings", &[]).await {
            return Some(e);
        }
    }
    None
}

/// Connects as soon as the door at `addr` answers (a reload takes up to a few seconds).
async fn connect_when_open(addr: SocketAddr, db: &str, token: &str) -> Client {
    let mut last = None;
    for _ in 0..50 {
        match connect(addr, db, token).await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the door at {addr} never opened: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_opens_a_new_database_door_refuses_a_busy_address_and_closes_a_removed_door() {
    let (server, database, direct, h) = seeded("reload_doors", "staging", "").await;
    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    let first = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();

    // A second database door, added while the gateway runs: served without a restart.
    let cfg = h.path().join("airlock.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let with_reports = |port: u16| {
        format!(
            "{original}\n[databases.reports]\nlisten = \"127.0.0.1:{port}\"\nurl = \"postgres://{}@{}:{}/{database}\"\nenvironment = \"staging\"\n",
            server.user, server.host, server.port
        )
    };
    let port = free_port();
    let reports: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::write(&cfg, with_reports(port)).unwrap();
    hup(&gw);
    let second = connect_when_open(reports, "reports", &t).await;
    assert_eq!(int(&second, "SELECT count(*) FROM bookings").await, 100);

    // Moving it to an address another process holds: the whole reload is refused, and the
    // door keeps serving where it was.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(&cfg, with_reports(busy.local_addr().unwrap().port())).unwrap();
    hup(&gw);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let again = connect(reports, "reports", &t).await.unwrap();
    assert_eq!(int(&again, "SELECT count(*) FROM bookings").await, 100);
    drop(busy);

    // Removed from the configuration: its listener closes and its sessions end, saying why;
    // the other door carries on.
    std::fs::write(&cfg, &original).unwrap();
    hup(&gw);
    let closed = airlock_testkit::until_closed(reports).await;
    assert!(closed, "the removed door still accepts connections");
    let e = second
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(
        db.code(),
        &SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
        "{e}"
    );
    assert!(db.message().contains("no longer served"), "{e}");
    assert_eq!(int(&first, "SELECT count(*) FROM bookings").await, 100);

    // The database is reclassified as production: the staging session already open is refused
    // from its next statement on, as a new one would be.
    std::fs::write(
        &cfg,
        original.replace("environment = \"staging\"", "environment = \"production\""),
    )
    .unwrap();
    hup(&gw);
    let refused = first_error(&first).await;
    let e = refused.expect("the reclassified database still answered a staging token");
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
    assert_eq!(count(&direct).await, 100);

    // A change the session cannot follow (safe functions, which its prepared statements were
    // classified with) ends it, saying so; a new session works under the new settings.
    let prod = token(&h, "production", "read");
    let third = connect(gw.database("bookings"), "bookings", &prod)
        .await
        .unwrap();
    third
        .prepare("SELECT count(*) FROM bookings")
        .await
        .unwrap();
    std::fs::write(
        &cfg,
        original.replace("environment = \"staging\"", "environment = \"production\"")
            + "safe_functions = [\"pg_backend_pid\"]\n",
    )
    .unwrap();
    hup(&gw);
    let ended = first_error(&third).await;
    let e = ended.expect("a session outlived a change of its database's safe functions");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(
        db.code(),
        &SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
        "{e}"
    );
    assert!(db.message().contains("reconfigured"), "{e}");
    let fourth = connect(gw.database("bookings"), "bookings", &prod)
        .await
        .unwrap();
    assert_eq!(int(&fourth, "SELECT count(*) FROM bookings").await, 100);

    let logs = gw.stop();
    assert!(logs.contains("new configuration rejected"), "{logs}");
    assert!(logs.contains("cannot listen on"), "{logs}");
    server.drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_an_open_transaction_may_commit_while_idle_sessions_end_at_once() {
    let (server, database, direct, h) = seeded("drain", "staging", "").await;
    let t = token(&h, "staging", "read,write");
    let gw = Serving::start(&h);
    let door = gw.database("bookings");
    let busy = connect(door, "bookings", &t).await.unwrap();
    let idle = connect(door, "bookings", &t).await.unwrap();
    busy.batch_execute("BEGIN; UPDATE bookings SET nights = 99 WHERE id = 1")
        .await
        .unwrap();

    Command::new("kill")
        .arg(gw.pid().to_string())
        .status()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;

    // Idle: ended at once. New sessions: refused.
    let e = idle
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap_err();
    if let Some(db) = e.as_db_error() {
        assert_eq!(db.code(), &SqlState::ADMIN_SHUTDOWN, "{e}");
    }
    assert!(connect(door, "bookings", &t).await.is_err());

    // In a transaction: it may finish, and what it committed is there.
    busy.batch_execute("UPDATE bookings SET nights = 98 WHERE id = 2; COMMIT")
        .await
        .unwrap();
    let nights = |id: i32| {
        let direct = &direct;
        async move {
            direct
                .query_one("SELECT nights FROM bookings WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, i32>(0)
        }
    };
    assert_eq!(nights(1).await, 99);
    assert_eq!(nights(2).await, 98);
    // Then it ends too, and the gateway exits cleanly.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(busy.query_one("SELECT 1", &[]).await.is_err());
    gw.stop();
    server.drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_door_on_a_unix_socket_serves_local_clients_without_tls() {
    let (server, database, direct, h) = seeded("unix_door", "staging", "").await;
    let dir = h.path().join("sockets");
    std::fs::create_dir(&dir).unwrap();
    // The name PostgreSQL clients look for: <dir>/.s.PGSQL.<port>.
    let sock = dir.join(".s.PGSQL.6543");
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "\nlisten = \"127.0.0.1:0\"",
        &format!("\nlisten = \"unix:{}\"", sock.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    let t = token(&h, "staging", "read");

    let gw = Serving::start(&h);
    let conn = format!(
        "host={} port=6543 user=db-bot dbname=bookings password={t}",
        dir.display()
    );
    let (c, connection) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(int(&c, "SELECT count(*) FROM bookings").await, 100);
    let e = c.batch_execute("DROP TABLE bookings").await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
    assert_eq!(count(&direct).await, 100);
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-h"])
        .arg(&dir)
        .args(["-p", "6543", "-U", "db-bot", "-d", "bookings", "-c"])
        .arg("SELECT count(*) FROM bookings")
        .env("PGPASSWORD", &t)
        .output()
        .expect("psql is installed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "100",
        "{out:?}"
    );
    drop(c);
    gw.stop();
    assert!(!sock.exists(), "the socket file outlived the gateway");

    // A socket file left behind by a gateway that was killed does not block the next start.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let gw = Serving::start(&h);
    let (c, connection) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(int(&c, "SELECT count(*) FROM bookings").await, 100);
    drop(c);
    gw.stop();
    server.drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_while_logging_in_does_not_hold_shutdown_past_its_grace() {
    let (server, database, _direct, h) = seeded("stalled_login", "staging", "").await;
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "admin_listen = \"127.0.0.1:0\"",
        "admin_listen = \"127.0.0.1:0\"\nshutdown_grace = \"1s\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let gw = Serving::start(&h);
    // Connected, never sends its startup message (the login timeout alone is 15 s).
    let stalled = tokio::net::TcpStream::connect(gw.database("bookings"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    gw.stop();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(8),
        "shutdown waited {took:?} for a stalled login with a 1 s grace"
    );
    drop(stalled);
    server.drop_database(&database).await;
}

/// psql's describe commands read the catalogue through functions such as
/// `pg_get_statisticsobjdef_columns` and `pg_function_is_visible`: a read-only agent can use
/// them, and none of them is refused (in production, none would wait for a human's approval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_commands_are_reads() {
    let (server, database, direct, h) = seeded("describe", "staging", "").await;
    direct
        .batch_execute(
            "CREATE INDEX bookings_guest ON bookings (guest);
             CREATE STATISTICS bookings_stats ON guest, nights FROM bookings;
             CREATE VIEW long_stays AS SELECT * FROM bookings WHERE nights > 5;
             CREATE FUNCTION nights_of(int) RETURNS int LANGUAGE sql AS 'SELECT $1';",
        )
        .await
        .unwrap();
    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    for cmd in [
        "\\d bookings",
        "\\d+ bookings",
        "\\d long_stays",
        "\\dt",
        "\\di",
        "\\dv",
        "\\df",
        "\\df+ nights_of",
        "\\dn",
        "\\du",
        "\\l",
        "\\dT",
        "\\dX",
        "\\dx",
        "\\db",
        "\\dp",
        "\\dD",
        "\\sf nights_of",
        "\\sv long_stays",
    ] {
        let (ok, out, err) = psql(gw.database("bookings"), "bookings", &t, cmd);
        assert!(ok, "{cmd}: {err}");
        assert!(!err.contains("42501"), "{cmd}: {err}");
        if cmd == "\\d bookings" {
            assert!(out.contains("nights|integer"), "{out}");
        }
    }
    let refused: Vec<_> = audit(&h)
        .into_iter()
        .filter(|r| r["decision"] != "allow" && r["action"] != "token.issue")
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    drop(gw);
    server.drop_database(&database).await;
}

/// An operator an extension installed (pgvector's `<=>` here stands in as a SQL function) is
/// code the door cannot see: refused by default, a read once the operator vouches for it in
/// `safe_operators`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_operator_is_a_read_only_once_configured_safe() {
    let (server, database, direct, h) = seeded("operators", "staging", "").await;
    direct
        .batch_execute(
            "CREATE FUNCTION nights_apart(int, int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT abs($1 - $2)';
             CREATE OPERATOR <=> (LEFTARG = int, RIGHTARG = int, FUNCTION = nights_apart);",
        )
        .await
        .unwrap();
    let search = "SELECT id FROM bookings ORDER BY nights <=> 3, id LIMIT 3";

    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();
    let e = agent.simple_query(search).await.unwrap_err();
    let e = e.as_db_error().unwrap();
    assert_eq!(e.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{e:?}");
    assert!(e.message().contains("destructive"), "{e:?}");
    drop(agent);
    drop(gw);

    let h = home_with(
        "bookings",
        &server,
        &database,
        "staging",
        "safe_operators = [\"<=>\"]",
    );
    let t = token(&h, "staging", "read");
    let gw = Serving::start(&h);
    let agent = connect(gw.database("bookings"), "bookings", &t)
        .await
        .unwrap();
    let through = rows_text(agent.simple_query(search).await.unwrap());
    let direct_rows = rows_text(direct.simple_query(search).await.unwrap());
    assert_eq!(through, direct_rows);
    assert_eq!(through.len(), 3);
}

/// Raw protocol access for the tests below: login with `token`, then messages by hand.
mod wire {
    use airlock_pgwire::frontend::{encode_password, encode_startup};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub async fn login(addr: std::net::SocketAddr, token: &str) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&encode_startup(&[
            ("user", "db-bot"),
            ("database", "bookings"),
        ]))
        .await
        .unwrap();
        let mut auth = [0u8; 9];
        s.read_exact(&mut auth).await.unwrap();
        let mut pw = token.as_bytes().to_vec();
        pw.push(0);
        s.write_all(&encode_password(&pw)).await.unwrap();
        until_ready(&mut s).await;
        s
    }

    /// Sends `bytes`, then reads until ReadyForQuery; the SQLSTATEs of the errors on the way.
    pub async fn round(s: &mut TcpStream, bytes: &[u8]) -> Vec<String> {
        s.write_all(bytes).await.unwrap();
        until_ready(s).await.1
    }

    /// Reads messages until ReadyForQuery; returns their type bytes and the error codes.
    pub async fn until_ready(s: &mut TcpStream) -> (Vec<u8>, Vec<String>) {
        let (mut tags, mut codes) = (Vec::new(), Vec::new());
        loop {
            let mut head = [0u8; 5];
            s.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.unwrap();
            tags.push(head[0]);
            if head[0] == b'E' {
                let text = String::from_utf8_lossy(&body).into_owned();
                codes.extend(
                    text.split('\0')
                        .find_map(|f| f.strip_prefix('C'))
                        .map(str::to_string),
                );
            }
            if head[0] == b'Z' {
                return (tags, codes);
            }
        }
    }

    pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        airlock_pgwire::put_message(&mut v, tag, body);
        v
    }

    pub fn sync() -> Vec<u8> {
        msg(b'S', b"")
    }

    /// Bind of statement `name` into the unnamed portal, then Execute and Sync.
    pub fn run(name: &str) -> Vec<u8> {
        let mut bind = vec![0u8];
        bind.extend(name.as_bytes());
        bind.extend([0, 0, 0, 0, 0, 0, 0]);
        let mut b = msg(b'B', &bind);
        b.extend(msg(b'E', &[0, 0, 0, 0, 0]));
        b.extend(sync());
        b
    }

    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        airlock_pgwire::frontend::encode_parse(name, sql)
    }

    /// Parses the server skips (after an error), then `s1` as a DELETE: a door whose batches
    /// drifted from the server's takes the skipped `SELECT 1` for what `s1` holds.
    pub async fn skipped_parses_then_a_delete(s: &mut TcpStream) {
        let mut b = parse("", "SELEC");
        b.extend(parse("s1", "SELECT 1"));
        b.extend(sync());
        round(s, &b).await;
        let mut b = parse("s1", "DELETE FROM bookings");
        b.extend(parse("z", "SELECT 1"));
        b.extend(sync());
        round(s, &b).await;
        round(s, &sync()).await;
    }
}

/// The server skips a simple Query that follows an error in an unfinished extended batch, and
/// ignores Sync during COPY FROM STDIN; either used to put the door's count of batches one ahead
/// of the server's, so that a later ParseComplete confirmed a Parse the server had skipped and a
/// name holding a DELETE passed as a SELECT. Found by review; each sequence ran `DELETE` with a
/// read-only token before the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_the_server_skips_cannot_make_a_prepared_delete_look_harmless() {
    use wire::{parse, round, run, sync};
    let (_server, _database, direct, h) = seeded("desync", "production", "").await;
    let read = token(&h, "production", "read");
    let gw = Serving::start(&h);

    // A Query inside a failing extended batch.
    let mut s = wire::login(gw.database("bookings"), &read).await;
    let mut b = parse("", "SELEC");
    b.extend(airlock_pgwire::frontend::encode_query("SELECT 1"));
    b.extend(sync());
    round(&mut s, &b).await;
    wire::skipped_parses_then_a_delete(&mut s).await;
    let codes = round(&mut s, &run("s1")).await;
    assert_eq!(codes, ["42501"], "the DELETE is refused");
    assert_eq!(count(&direct).await, 100);
    // The session goes on: an ordinary read still works.
    let mut b = parse("r", "SELECT count(*) FROM bookings");
    b.extend(sync());
    assert!(round(&mut s, &b).await.is_empty());
    assert!(round(&mut s, &run("r")).await.is_empty());

    // An `EXECUTE name` held by a protocol Parse, with `name` swapped before the Bind.
    let mut s = wire::login(gw.database("bookings"), &read).await;
    let mut b = parse("s1", "SELECT 1");
    b.extend(sync());
    round(&mut s, &b).await;
    let mut b = parse("e", "EXECUTE s1");
    b.extend(sync());
    round(&mut s, &b).await;
    let mut b = wire::msg(b'C', b"Ss1\0");
    b.extend(parse("s1", "DELETE FROM bookings"));
    b.extend(sync());
    round(&mut s, &b).await;
    assert_eq!(round(&mut s, &run("e")).await, ["42501"]);
    assert_eq!(count(&direct).await, 100);

    // Sync during COPY FROM STDIN, for a token that may write.
    let write = token(&h, "production", "read,write");
    let mut s = wire::login(gw.database("bookings"), &write).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(&airlock_pgwire::frontend::encode_query(
        "COPY bookings (id, guest, nights) FROM STDIN",
    ))
    .await
    .unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'G', "CopyInResponse");
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    let mut b = sync();
    b.extend(wire::msg(b'd', b"500\tcopied\t1\n"));
    b.extend(wire::msg(b'c', b""));
    assert!(round(&mut s, &b).await.is_empty());
    wire::skipped_parses_then_a_delete(&mut s).await;
    assert_eq!(round(&mut s, &run("s1")).await, ["42501"]);
    assert_eq!(count(&direct).await, 101);
}
