//! TLS to NATS, end to end on the built binary: a nats-server that only speaks TLS (certificate
//! from a throwaway CA made here), and `jt dead-letters list` — which connects and provisions
//! like every service (`serve::bus`) — connecting with `NATS_TLS_CA` and refused without it.
//! Needs the harness's nats-server binary (`scripts/test-services` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "jt test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, server_cert.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    paths
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn jt(url: &str, tag: &str, env: &[(&str, &str)]) -> Output {
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

#[test]
fn a_service_reaches_a_tls_only_nats_with_its_ca_and_is_refused_without_it() {
    let dir = Dir(std::env::temp_dir().join(format!("jt-nats-tls-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (ca, cert, key) = certificates(&dir.0);
    let port = free_port();
    let _server = Server(
        Command::new(jt_testkit::nats::nats_server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.0.join("store"))
            .arg("--tlscert")
            .arg(&cert)
            .arg("--tlskey")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("tls://127.0.0.1:{port}");
    let tag = format!("tls{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    let ok = jt(&url, &tag, &[("NATS_TLS_CA", ca.to_str().unwrap())]);
    assert!(
        ok.status.success(),
        "with NATS_TLS_CA: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The system's roots do not know the test CA: the server's certificate is refused.
    let refused = jt(&url, &tag, &[("NATS_TLS", "true")]);
    assert!(
        !refused.status.success(),
        "connected without trusting the CA"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("connecting to the bus"), "{stderr}");

    // Half a client certificate is refused before connecting, naming what is missing.
    let half = jt(
        &url,
        &tag,
        &[
            ("NATS_TLS_CA", ca.to_str().unwrap()),
            ("NATS_TLS_CERT", cert.to_str().unwrap()),
        ],
    );
    assert!(!half.status.success());
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(stderr.contains("NATS_TLS_KEY"), "{stderr}");
}
