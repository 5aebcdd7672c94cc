//! `airlock serve` as a child process on ephemeral ports, for tests that need the real gateway.

use crate::Home;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running gateway.
pub struct Serve {
    child: Child,
    /// The proxy listener.
    pub proxy: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    stderr: std::path::PathBuf,
}

impl Serve {
    /// Starts `airlock serve --json` in `home` and waits for it to report its listeners.
    pub fn start(bin: &str, home: &Home) -> Serve {
        let stderr = home.path().join("serve.log");
        let mut child = Command::new(bin)
            .args(["serve", "--json"])
            .current_dir(home.path())
            .env("AIRLOCK_CONFIG", home.path().join("airlock.toml"))
            .env("AIRLOCK_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("serve log"))
            .spawn()
            .expect("start airlock serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read listeners");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "serve did not report its listeners ({e}): {line:?}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        });
        let addr = |k: &str| -> SocketAddr {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no `{k}` address in {line}"))
        };
        Serve {
            proxy: addr("proxy"),
            admin: addr("admin"),
            child,
            stderr,
        }
    }

    /// SIGTERM, then wait for a clean exit (in-flight requests drained, audit flushed); returns
    /// the gateway's log.
    pub fn stop(mut self) -> String {
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        let status = self.child.wait().expect("wait for serve");
        assert!(status.success(), "serve exited with {status}");
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}
