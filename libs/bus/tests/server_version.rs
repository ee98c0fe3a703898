//! The bus refuses a NATS server older than what it relies on, at connect time, naming the
//! version found and the version needed (the machine's Debian 2.9 failed 19 bus tests with
//! obscure errors instead). A fake server that introduces itself as 2.9.10 is refused; the
//! harness's real 2.15 is accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jt_bus::{Bus, BusError, JetStreamOptions, Namespace};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A listener that speaks just enough of the NATS protocol to be connected to: its `INFO`
/// says `version`; it answers `PING` with `PONG`.
async fn fake_server(version: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let info = format!(
                    "INFO {{\"server_id\":\"FAKE\",\"server_name\":\"fake\",\"version\":\"{version}\",\"proto\":1,\"go\":\"go1.19\",\"host\":\"127.0.0.1\",\"port\":{port},\"headers\":true,\"max_payload\":1048576,\"jetstream\":true}}\r\n"
                );
                if write.write_all(info.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("PING") && write.write_all(b"PONG\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("nats://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_server_older_than_2_10_is_refused_naming_both_versions() {
    let url = fake_server("2.9.10").await;
    let err = Bus::jetstream(&url, Namespace::unique(), JetStreamOptions::default())
        .await
        .expect_err("2.9 is refused");
    assert!(
        matches!(&err, BusError::UnsupportedServer { found, needed, .. } if found == "2.9.10" && *needed == "2.10.0"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("2.9.10") && text.contains("2.10.0"), "{text}");
}

#[tokio::test]
async fn the_harness_server_is_recent_enough() {
    let bus = Bus::jetstream(
        &jt_testkit::nats::nats_url(),
        Namespace::unique(),
        JetStreamOptions::default(),
    )
    .await
    .expect("NATS 2.10+ at NATS_URL");
    let described = bus.describe();
    let version = described.trim_start_matches("NATS JetStream ");
    assert_eq!(
        jt_bus::jetstream::check_server_version(version),
        Ok(()),
        "{described}"
    );
}
