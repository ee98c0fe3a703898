//! TLS to NATS, end to end on the built binary: a nats-server that only speaks TLS (certificate
//! from a throwaway CA made here), and `jt dead-letters list` — which connects and provisions
//! like every service (`serve::bus`) — connecting with `NATS_TLS_CA` and refused without it.
//! Needs the harness's nats-server binary (`scripts/test-services` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

mod nats_access;

use nats_access::{Dir, free_port, jt, start_server};

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

#[test]
fn a_service_reaches_a_tls_only_nats_with_its_ca_and_is_refused_without_it() {
    let dir = Dir::new("jt-nats-tls");
    let (ca, cert, key) = certificates(&dir.0);
    let port = free_port();
    let port_text = port.to_string();
    let store = dir.0.join("store");
    let _server = start_server(
        &[
            "-js".as_ref(),
            "-a".as_ref(),
            "127.0.0.1".as_ref(),
            "-p".as_ref(),
            port_text.as_ref(),
            "-sd".as_ref(),
            store.as_os_str(),
            "--tlscert".as_ref(),
            cert.as_os_str(),
            "--tlskey".as_ref(),
            key.as_os_str(),
        ],
        port,
        dir.0.join("nats.log"),
    );
    let url = format!("tls://127.0.0.1:{port}");
    let tag = format!("tls{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    let ok = jt(&url, &tag, &[("NATS_TLS_CA", ca.as_os_str())]);
    assert!(
        ok.status.success(),
        "with NATS_TLS_CA: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The system's roots do not know the test CA: the server's certificate is refused.
    let refused = jt(&url, &tag, &[("NATS_TLS", "true".as_ref())]);
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
            ("NATS_TLS_CA", ca.as_os_str()),
            ("NATS_TLS_CERT", cert.as_os_str()),
        ],
    );
    assert!(!half.status.success());
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(stderr.contains("NATS_TLS_KEY"), "{stderr}");
}
