//! `airlock serve` started as a user would, with the listeners it reports.

use crate::Home;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running `airlock serve --json`.
pub struct Serving {
    child: Child,
    /// What it printed about its listeners.
    pub listeners: serde_json::Value,
    log: PathBuf,
}

impl Serving {
    /// Starts the gateway of `home` and waits for its listener report.
    pub fn start(home: &Home) -> Serving {
        let log = home.path().join("serve.log");
        let mut child = Command::new(&home.bin)
            .args(["serve", "--json"])
            .current_dir(home.path())
            .env("AIRLOCK_CONFIG", home.path().join("airlock.toml"))
            .env("AIRLOCK_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create serve.log"))
            .spawn()
            .expect("start airlock serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the listener report");
        let listeners = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "serve did not report its listeners ({e}): {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Serving {
            child,
            listeners,
            log,
        }
    }

    /// The process id (to read its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The listener of database `name`.
    pub fn database(&self, name: &str) -> SocketAddr {
        self.listeners["databases"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d[0] == name))
            .and_then(|d| d[1].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no listener for database {name}: {}", self.listeners))
    }

    /// The shared proxy listener.
    pub fn proxy(&self) -> SocketAddr {
        self.listeners["proxy"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("proxy listener")
    }

    /// The admin listener.
    pub fn admin(&self) -> SocketAddr {
        self.listeners["admin"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("admin listener")
    }

    /// SIGTERM, then wait for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait for serve");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "serve exited with {status}\n{log}");
        log
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
