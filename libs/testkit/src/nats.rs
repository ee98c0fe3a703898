//! NATS for tests: the harness's server at `NATS_URL`, or a private `nats-server` a test
//! starts, stops, kills and restarts itself (failure tests).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The nats-server version the tests pin (Debian's 2.9 lacks KV and `filter_subjects`).
pub const NATS_VERSION: &str = "2.15.1";

/// The URL of the harness's NATS server.
///
/// # Panics
/// When `NATS_URL` is unset: run the tests through `make test` or
/// `scripts/test-services -- cargo test …`, which start NATS 2.15 and set it.
#[must_use]
pub fn nats_url() -> String {
    match std::env::var("NATS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "NATS_URL is not set: this test needs NATS {NATS_VERSION} with JetStream. Run it with \
             `make test` or `scripts/test-services -- cargo test -p <crate>`, or set NATS_URL"
        ),
    }
}

/// The pinned `nats-server` binary: `JT_NATS_SERVER`, or the one the harness installed under
/// `.tools/`.
///
/// # Panics
/// When neither exists.
#[must_use]
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("JT_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binary = root.join(format!(".tools/nats-server-{NATS_VERSION}/bin/nats-server"));
    assert!(
        binary.exists(),
        "nats-server {NATS_VERSION} not found at {}: run `scripts/test-services -- true` once to \
         install it, or set JT_NATS_SERVER to a nats-server 2.10+ binary",
        binary.display()
    );
    binary
}

/// A private nats-server with JetStream and its own store directory, on a loopback port the
/// server chose itself (so two tests never end up on one server: a port picked by the test and
/// released before the server binds it can be handed out twice, and the loser's "is it
/// listening?" check would pass against the other test's server). The port and the store
/// survive [`NatsServer::restart`]; dropping it kills the server and deletes the store.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up within 20 s.
    #[must_use]
    pub fn start() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let store = std::env::temp_dir().join(format!(
            "jt-nats-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&store)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", store.display()));
        let mut server = Self {
            binary: nats_server_binary(),
            port: 0,
            store,
            child: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.store.join("server.log"))
            .unwrap_or_else(|e| panic!("cannot create the server log: {e}"));
        // First start: the server picks a free port (-1) and reports it in a ports file.
        // Restarts: the same port again, so clients reconnect to the URL they know.
        let port = if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
            .arg(self.store.join("jetstream"))
            .arg("--ports_file_dir")
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let ports_file = self.store.join(format!("nats-server_{}.ports", child.id()));
        self.child = Some(child);
        if self.port == 0 {
            self.port = self.wait_for_port(&ports_file);
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            self.assert_still_running();
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics, pointing at the log, when the server has exited while starting.
    fn assert_still_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "nats-server exited with {status} at start; see {}",
                self.log_path().display()
            );
        }
    }

    /// Reads the port the server chose from its ports file
    /// (`{"nats":["nats://127.0.0.1:<port>"],…}`). The file is not written atomically, so a
    /// port counts only once its closing quote has been read.
    fn wait_for_port(&mut self, ports_file: &Path) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let port = std::fs::read_to_string(ports_file).ok().and_then(|text| {
                let at = text.find("nats://127.0.0.1:")? + "nats://127.0.0.1:".len();
                let (digits, _) = text[at..].split_once('"')?;
                digits.parse::<u16>().ok()
            });
            if let Some(port) = port {
                return port;
            }
            self.assert_still_running();
            assert!(
                Instant::now() < deadline,
                "nats-server wrote no ports file ({}) within 20 s",
                ports_file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory (kept across restarts).
    #[must_use]
    pub fn store_dir(&self) -> PathBuf {
        self.store.join("jetstream")
    }

    /// The server's log file.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.store.join("server.log")
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the server gracefully (SIGTERM: it flushes its store) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (SIGKILL: no shutdown at all) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered — a stalled
    /// disk or a long pause, as seen by clients.
    ///
    /// Returns once every thread of the server is stopped: a thread inside a system call (an
    /// `fsync` on a busy disk) only stops when the call returns, and until then it may still
    /// answer a request sent "after" the pause.
    ///
    /// # Panics
    /// When the server is not stopped within 10 s.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "nats-server {pid} did not stop within 10 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Thaws a paused server (SIGCONT): it then processes everything sent meanwhile.
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, which: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([which, &child.id().to_string()])
                .status();
        }
    }

    /// Starts the server again on the same port with the same store (after
    /// [`NatsServer::stop`] or [`NatsServer::kill`]).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.launch();
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in `/proc/…/stat`).
/// Where `/proc` cannot be read (not Linux) the signal is trusted.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // `pid (comm) S …`: the state follows the last `)`.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_server_restarts_on_its_port() {
        let mut server = NatsServer::start();
        let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
        assert!(server.is_running());
        assert!(TcpStream::connect(addr).is_ok());
        server.pause();
        assert!(server.is_running(), "paused, not gone");
        server.resume();
        server.kill();
        assert!(!server.is_running());
        assert!(TcpStream::connect(addr).is_err());
        server.restart();
        assert!(TcpStream::connect(addr).is_ok());
        server.stop();
        assert!(!server.is_running());
    }
}
