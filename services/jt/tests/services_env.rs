//! `jt ingest`, `jt executor` and `jt positions` as the built binary: without `NATS_URL` or
//! `DATABASE_URL` they refuse to start, naming what is missing (only `jt dev` runs on embedded
//! defaults);
//! with them they log which bus and store they use. The second test needs the harness's
//! servers (`make test` sets both variables).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn services_refuse_to_start_without_their_bus_and_database() {
    for service in ["ingest", "executor", "positions"] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_jt"))
            .arg(service)
            .env_remove("NATS_URL")
            .env_remove("DATABASE_URL")
            .env("JT_SECRET_KEY", "00".repeat(32))
            .env("JT_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .output()
            .expect("running jt");
        assert!(!out.status.success(), "jt {service} started");
        assert!(started.elapsed() < Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("DATABASE_URL is not set") && stderr.contains("NATS_URL is not set"),
            "jt {service}: {stderr}"
        );
        assert!(stderr.contains("jt dev"), "{stderr}");
    }
}

#[tokio::test]
async fn a_service_logs_the_bus_and_store_it_uses() {
    let db = jt_testkit::TestDatabase::create().await;
    let store = jt_store::Store::connect(&jt_store::StoreConfig::new(db.url()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt"))
        .arg("ingest")
        .env("NATS_URL", jt_testkit::nats::nats_url())
        .env("DATABASE_URL", db.url())
        .env(
            "JT_BUS_NAMESPACE",
            format!("env{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        )
        .env("JT_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("jt ingest starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut store_line, mut bus_line) = (None, None);
    while (store_line.is_none() || bus_line.is_none()) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.contains("store in use") {
            store_line = Some(line);
        } else if line.contains("bus in use") {
            bus_line = Some(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let store_line = store_line.expect("a `store in use` line");
    let bus_line = bus_line.expect("a `bus in use` line");
    assert!(store_line.contains("Postgres"), "{store_line}");
    assert!(bus_line.contains("NATS JetStream 2."), "{bus_line}");
}
