//! The web console in a real browser: headless Chromium (Debian `chromium`) driven by
//! playwright-core (`e2e/`), against the real `airlock serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_testkit::cloud::FakeCloud;
use airlock_testkit::serve::Serving;
use airlock_testkit::{incident_config, repo_root, Home};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_approves_in_the_browser_and_the_agents_retry_succeeds() {
    let e2e = repo_root().join("e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "browser test prerequisites missing: run `scripts/test.sh` (it installs Debian's chromium and `npm --prefix e2e install`)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: apt-get install chromium"
    );

    let secret = "cloud-admin-console-test";
    let cloud = FakeCloud::start(secret).await.unwrap();
    let h = Home::init(BIN);
    let cfg = h.path().join("airlock.toml");
    let text = std::fs::read_to_string(&cfg).unwrap() + &incident_config(cloud.addr);
    std::fs::write(&cfg, text).unwrap();
    h.run(&["identity", "add", "alice", "--kind", "human"]).ok();
    h.run(&[
        "identity",
        "add",
        "prod-bot",
        "--kind",
        "agent",
        "--owner",
        "alice",
        "--purpose",
        "reports",
    ])
    .ok();
    h.run_with_stdin(
        &["secret", "set", "cloud-admin", "--env", "production"],
        Some(secret),
    )
    .ok();
    let totp = h.enrol_totp("alice");
    let human = h.issue_token("alice", "production", "read");
    let agent = h.issue_token("prod-bot", "production", "read,write,destructive");

    let serve = Serving::start(&h);
    let (admin, proxy) = (serve.admin(), serve.proxy());

    // The screenshot goes to the build directory, never into the repository.
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-approval.png");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let out = tokio::task::spawn_blocking({
        let e2e = e2e.clone();
        let shot = shot.clone();
        move || {
            Command::new("node")
                .arg("console.mjs")
                .current_dir(&e2e)
                .env("ADMIN_URL", format!("http://{admin}"))
                .env("PROXY_URL", format!("http://{proxy}"))
                .env("HUMAN_TOKEN", &human)
                .env("TOTP_CODE", totp.code_at(now))
                .env("AGENT_TOKEN", &agent)
                .env("SCREENSHOT", &shot)
                .env("CHROMIUM", &chromium)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    serve.stop();
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !cloud.has("vol-prod-bookings"),
        "the approved delete reached the upstream"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "screenshot missing"
    );
}
