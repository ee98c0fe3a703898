//! What the NATS access tests (`nats_tls`, `nats_creds`) share: a throwaway directory, a private
//! nats-server (the harness's binary) started with the test's own settings and waited for, and
//! `jt dead-letters list` — which connects and provisions like every service — run against it
//! with only the NATS variables the test gives.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// A new, empty directory under the system's temporary one.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A nats-server, killed when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Starts nats-server with `args` (which must make it listen on 127.0.0.1:`port`), its
/// standard error in `log`, and waits until it listens; a server that does not within 20 s
/// fails the test with what it wrote.
pub fn start_server(args: &[&std::ffi::OsStr], port: u16, log: PathBuf) -> Server {
    let server = Server(
        Command::new(jt_testkit::nats::nats_server_binary())
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the server's log file"))
            .spawn()
            .expect("nats-server starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// `jt dead-letters list` against `url` under namespace `tag`, with no NATS variable of the
/// environment but those in `env`.
pub fn jt(url: &str, tag: &str, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jt"));
    cmd.args(["dead-letters", "list"])
        .env("NATS_URL", url)
        .env("JT_BUS_NAMESPACE", tag)
        .env_remove("NATS_TLS")
        .env_remove("NATS_TLS_CA")
        .env_remove("NATS_TLS_CERT")
        .env_remove("NATS_TLS_KEY")
        .env_remove("NATS_CREDS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running jt")
}
