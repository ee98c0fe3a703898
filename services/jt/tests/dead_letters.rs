//! `jt dead-letters list|retry` as the built binary, on the harness's JetStream (`NATS_URL`):
//! an intent a handler refused is listed with its reason and put back on ORDERS by `retry`
//! (inside the stream's de-duplication window too). Without `NATS_URL` the command explains
//! where the embedded bus keeps its dead letters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use jt_bus::{
    Bus, BusConfig, ConsumeOptions, DeadLetterQuery, Definitions, Envelope, MessageId, Namespace,
    Outcome,
};
use jt_messages::IntentMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn jt(tag: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jt"))
        .arg("dead-letters")
        .args(args)
        .env("NATS_URL", jt_testkit::nats::nats_url())
        .env("JT_BUS_NAMESPACE", tag)
        .output()
        .expect("running jt")
}

fn intent() -> IntentMessage {
    // A flatten an operator asked for through the API (any source goes the same way).
    IntentMessage::control(
        jt_store::UserId(Uuid::now_v7()),
        jt_store::SubAccountId(Uuid::now_v7()),
        jt_store::BrokerAccountId(Uuid::now_v7()),
        chrono::Utc::now(),
        jt_messages::ControlIntent::flatten_account(jt_messages::ControlCause::api(
            Uuid::now_v7(),
            jt_store::UserId(Uuid::now_v7()),
            None,
        )),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_with_its_reason_and_retried_onto_its_stream() {
    jt_runtime::tls::install_crypto_provider();
    let tag = format!("dl{}", &Uuid::new_v4().simple().to_string()[..10]);
    let bus = Bus::connect(BusConfig {
        nats_url: Some(jt_testkit::nats::nats_url()),
        namespace: Namespace::isolated(&tag).unwrap(),
        ..BusConfig::default()
    })
    .await
    .unwrap();
    let defs = Definitions::new(bus.namespace());
    bus.provision(&defs.topology()).await.unwrap();
    let message = intent();
    let id = message.message_id();
    bus.publish(&Envelope::new(
        MessageId::new(id.clone()).unwrap(),
        message.clone(),
    ))
    .await
    .unwrap();
    // A handler that refuses it: one dead letter.
    let stop = CancellationToken::new();
    let consumer = {
        let (bus, def, stop) = (bus.clone(), defs.execute.clone(), stop.clone());
        tokio::spawn(async move {
            bus.consume(
                &def,
                ConsumeOptions::default(),
                stop,
                |_m: jt_bus::Incoming<IntentMessage>| async {
                    Outcome::reject("the broker login was disabled (test)")
                },
            )
            .await
        })
    };
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = bus
            .dead_letters(&defs.dead_letters, &DeadLetterQuery::default())
            .await
            .unwrap();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    consumer.await.unwrap().unwrap();
    assert_eq!(letters.len(), 1);
    let seq = letters[0].sequence;

    let listed = jt(&tag, &["list", "--stream", "orders"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        text.contains("the broker login was disabled (test)"),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
    let json = jt(&tag, &["list", "--json"]);
    let line: serde_json::Value =
        serde_json::from_slice(json.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["sequence"], seq);
    assert_eq!(line["type"], "order-intent");
    let other = jt(&tag, &["list", "--consumer", "fanout"]);
    assert!(String::from_utf8_lossy(&other.stdout).contains("no dead letters"));

    // Retried at once: still inside ORDERS' de-duplication window.
    let retried = jt(&tag, &["retry", &seq.to_string()]);
    let text = String::from_utf8_lossy(&retried.stdout);
    assert!(retried.status.success(), "{text}");
    assert!(text.contains("back on its stream"), "{text}");
    assert!(
        bus.dead_letters(&defs.dead_letters, &DeadLetterQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    let back = bus
        .next_message(&defs.orders.name, ">", 1)
        .await
        .unwrap()
        .expect("the intent is back on ORDERS");
    let decoded = Envelope::<IntentMessage>::decode(&back.message).unwrap();
    assert_eq!(decoded.payload, message);
    let again = jt(&tag, &["retry", &seq.to_string()]);
    assert!(!again.status.success(), "a dead letter is retried once");
    bus.teardown(&defs.topology()).await.unwrap();
}

#[test]
fn without_jetstream_the_command_says_where_the_embedded_bus_keeps_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_jt"))
        .args(["dead-letters", "list"])
        .env_remove("NATS_URL")
        .output()
        .expect("running jt");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NATS_URL is not set"), "{stderr}");
    assert!(stderr.contains("jt dev"), "{stderr}");
}
