//! Runs the real `airlock` binary in a temporary directory, the way a user would.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure here is a test failure"
)]

pub mod client;
pub mod cloud;
pub mod pg;
pub mod receiver;
pub mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary Airlock home: its own airlock.toml, key file and store.
pub struct Home {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the run succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics with both streams unless the run exited with `code`.
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Home {
    /// A fresh directory; `bin` is `env!("CARGO_BIN_EXE_airlock")` from the calling test.
    pub fn new(bin: &str) -> Home {
        Home {
            dir: tempfile::tempdir().expect("create temp dir"),
            bin: PathBuf::from(bin),
        }
    }

    /// A fresh directory with `airlock init` already run.
    pub fn init(bin: &str) -> Home {
        let h = Home::new(bin);
        h.run(&["init"]).ok();
        h
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `airlock ARGS` with no stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs `airlock ARGS` feeding `stdin`.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        self.run_with_env(args, stdin, &[])
    }

    /// Issues a token for `identity` in `env` allowing `allow` (e.g. `read,write`); returns the
    /// token, which the command prints alone on stdout.
    pub fn issue_token(&self, identity: &str, env: &str, allow: &str) -> String {
        self.run(&[
            "token",
            "issue",
            "--identity",
            identity,
            "--env",
            env,
            "--allow",
            allow,
        ])
        .ok()
        .stdout
        .trim()
        .to_string()
    }

    /// Enrols `name`'s second factor and returns it, as the human's authenticator app holds it.
    pub fn enrol_totp(&self, name: &str) -> airlock_approval::totp::TotpSecret {
        let r = self.run(&["identity", "totp", name, "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("totp --json");
        let secret = v["otpauth_uri"]
            .as_str()
            .and_then(|uri| uri.split("secret=").nth(1))
            .and_then(|s| s.split('&').next())
            .expect("otpauth URI with a secret");
        airlock_approval::totp::TotpSecret::from_base32(secret).expect("base32 TOTP secret")
    }

    /// Runs `airlock approvals ARGS` as the holder of `token`, against the admin API at `admin`.
    pub fn approvals(&self, admin: std::net::SocketAddr, token: &str, args: &[&str]) -> Run {
        let mut full = vec!["approvals"];
        full.extend_from_slice(args);
        let url = format!("http://{admin}");
        self.run_with_env(
            &full,
            None,
            &[("AIRLOCK_TOKEN", token), ("AIRLOCK_ADMIN_URL", &url)],
        )
    }

    fn run_with_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("AIRLOCK_CONFIG", self.dir.path().join("airlock.toml"))
            .env("AIRLOCK_ACTOR", "tester")
            .env_remove("AIRLOCK_MASTER_KEY")
            .env("AIRLOCK_LOG", "debug")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start airlock");
        if let Some(input) = stdin {
            let written = child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes());
            // The binary may stop reading early (it refuses oversized input): that is its answer,
            // not a test failure.
            if let Err(e) = written {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
            }
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait for airlock");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// The repository's root (for shipped rule files).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Appends the incident's setup to a home's airlock.toml: a shared cloud GraphQL API behind the
/// gateway on `/cloud`, its volumes catalogued by environment, its admin secret sealed.
pub fn incident_config(cloud: std::net::SocketAddr) -> String {
    let rules = repo_root().join("rules/cloud-graphql.toml");
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

# One GraphQL endpoint serving staging and production alike, as in the incident.
[upstreams.cloud]
url = "http://{cloud}"
prefix = "/cloud"
catalog = true
rules = "{rules}"
secret = "cloud-admin"
secret_env = "production"

[[resources]]
id = "vol-stg-*"
environment = "staging"
kind = "volume"

[[resources]]
id = "vol-prod-*"
environment = "production"
kind = "volume"
"#,
        rules = rules.display()
    )
}

/// Waits up to ten seconds for nothing to accept connections at `addr` (a listener a reload
/// closes); true once it refuses them.
pub async fn until_closed(addr: std::net::SocketAddr) -> bool {
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
    }
    false
}
