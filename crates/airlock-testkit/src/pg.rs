//! A real PostgreSQL for the door's tests: a fresh database per test on the server named by
//! `AIRLOCK_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`, trust auth, as `.ci/run` sets
//! up), and a private cluster with password authentication for the login tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server tests use: user, host, port.
#[derive(Debug, Clone)]
pub struct Server {
    /// The superuser tests connect as.
    pub user: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Server {
    /// From `AIRLOCK_TEST_PG` (`postgres://USER@HOST:PORT`), or the local default.
    pub fn from_env() -> Server {
        let url = std::env::var("AIRLOCK_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let rest = url
            .trim_start_matches("postgresql://")
            .trim_start_matches("postgres://");
        let (user, hostport) = rest.split_once('@').unwrap_or(("postgres", rest));
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        Server {
            user: user.to_string(),
            host: host.to_string(),
            port: port.parse().expect("AIRLOCK_TEST_PG port"),
        }
    }

    /// A tokio-postgres connection string for `database`.
    pub fn conn_str(&self, database: &str) -> String {
        format!(
            "host={} port={} user={} dbname={database}",
            self.host, self.port, self.user
        )
    }

    /// Connects directly (bypassing Airlock) to `database`.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.conn_str(database), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at {}:{} as {} ({e}); set AIRLOCK_TEST_PG=postgres://USER@HOST:PORT",
                    self.host, self.port, self.user
                )
            });
        tokio::spawn(conn);
        client
    }

    /// Creates a fresh database and returns its name.
    pub async fn create_database(&self, label: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "airlock_t_{label}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.connect("postgres").await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .expect("create test database");
        }
        name
    }

    /// Drops a test database (best effort: sessions may still be closing).
    pub async fn drop_database(&self, name: &str) {
        let admin = self.connect("postgres").await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// A PostgreSQL cluster of the test's own, with password authentication (SCRAM and md5), so the
/// door's upstream login is tested against the real server's checks.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

impl Cluster {
    /// Starts a cluster where `scram_user` logs in with SCRAM-SHA-256 and `md5_user` with md5,
    /// both with `password`. Needs PostgreSQL's server binaries (`initdb`, `pg_ctl`).
    pub fn start(scram_user: &str, md5_user: &str, password: &str) -> Cluster {
        let bin = pg_bin().expect(
            "PostgreSQL server binaries not found under /usr/lib/postgresql (install postgresql)",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("airlock-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        // initdb refuses to run as root; the postgres account runs it then.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let c = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&c.dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown of the cluster directory failed");
        }
        let data = c.dir.join("data");
        c.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 md5\n",
        )
        .expect("write pg_hba.conf");
        c.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &c.dir.join("log").to_string_lossy(),
                "-w",
                "-o",
                &format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    c.dir.to_string_lossy()
                ),
                "start",
            ],
        );
        let sql = format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {scram_user} LOGIN PASSWORD '{password}';\
             SET password_encryption = 'md5'; CREATE ROLE {md5_user} LOGIN PASSWORD '{password}';"
        );
        c.run(
            "psql",
            &[
                "-h",
                &c.dir.to_string_lossy(),
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &sql,
            ],
        );
        c
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = if tool == "psql" {
            PathBuf::from("psql")
        } else {
            self.bin.join(tool)
        };
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(Path::new("/"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
