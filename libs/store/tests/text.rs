//! Outside text with NUL characters (a webhook body, an alert's comment, a broker's error text)
//! is stored on both engines: PostgreSQL refuses NUL in `text` and `jsonb`, and one such row
//! used to fail its whole statement (issue 16). Each test writes the poison and reads back what
//! was kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Utc;
use common::TestStore;
use jt_domain::{Settings, SignalAction};
use jt_store::repo::intents::{IntentUpdate, NewExecution, NewIntent};
use jt_store::repo::signals::NewSignal;
use jt_store::repo::webhooks::NewWebhookLog;
use jt_store::{
    ExecutionId, ExecutionOutcome, IntentId, IntentKind, IntentSource, IntentStatus, SignalId,
    SignalOutcome, WebhookLogId,
};

async fn a_webhook_log_row_with_nul_is_written_with_the_nul_escaped(t: &TestStore) {
    let rows = vec![
        NewWebhookLog {
            id: WebhookLogId::new(),
            received_at: Utc::now(),
            recorder: None,
            source_ip: Some("203.0.113.9".into()),
            body: "{\"action\":\"buy\0\"}".into(),
            status_code: 400,
            result: "invalid_json".into(),
            reason: Some("control character \0 at line 1".into()),
            signal: None,
        },
        NewWebhookLog {
            id: WebhookLogId::new(),
            received_at: Utc::now(),
            recorder: None,
            source_ip: None,
            body: "next".into(),
            status_code: 404,
            result: "unknown_token".into(),
            reason: None,
            signal: None,
        },
    ];
    assert_eq!(t.webhooks().log_batch(&rows).await.unwrap(), 2);
    let logged = t.system().recent_webhook_log(10).await.unwrap();
    let poison = logged.iter().find(|r| r.status_code == 400).unwrap();
    assert_eq!(poison.body, "{\"action\":\"buy\\u0000\"}");
    assert_eq!(
        poison.reason.as_deref(),
        Some("control character  at line 1")
    );
    assert!(
        logged.iter().any(|r| r.body == "next"),
        "the batch is whole"
    );
}

async fn a_signal_and_its_intent_with_nul_in_their_texts_are_recorded(t: &TestStore) {
    let owner = t.user("nul@example.com").await;
    let (recorder, _) = t.recorder(&owner, "nul").await;
    let (_, sub) = t.account(&owner, "nul").await;
    let signal = SignalId::new();
    t.signals()
        .record(NewSignal {
            id: signal,
            owner: owner.id,
            recorder: recorder.id,
            received_at: Utc::now(),
            alert_time: None,
            action: SignalAction::Short,
            ticker: Some("MNQ1!\0".into()),
            quantity: None,
            price: None,
            market_position: Some("short\0".into()),
            prev_market_position: None,
            payload: serde_json::json!({"comment": "a\u{0}b", "k\u{0}": ["\u{0}"]}),
            outcome: SignalOutcome::Accepted,
            outcome_reason: Some("why\0".into()),
            age_ms: None,
            body_digest: None,
        })
        .await
        .unwrap();
    t.signals()
        .set_outcome(
            owner.id,
            signal,
            SignalOutcome::Stale,
            Some("late\0"),
            Some(1),
        )
        .await
        .unwrap();
    let stored = t.signals().get(owner.id, signal).await.unwrap();
    assert_eq!(stored.ticker.as_deref(), Some("MNQ1!"));
    assert_eq!(stored.market_position.as_deref(), Some("short"));
    assert_eq!(
        stored.payload,
        serde_json::json!({"comment": "ab", "k": [""]})
    );
    assert_eq!(stored.outcome_reason.as_deref(), Some("late"));

    let id = IntentId::new();
    t.intents()
        .create(NewIntent {
            id,
            owner: owner.id,
            sub_account: sub.id,
            trader: None,
            signal: Some(signal),
            source: IntentSource::Signal,
            idempotency_key: format!("nul:{signal}"),
            kind: IntentKind::Entry,
            symbol: "MNQ\0".into(),
            contract: None,
            side: None,
            quantity: 0,
            settings: Settings::default(),
            plan: serde_json::json!({"note": "\u{0}"}),
            skip_reason: None,
        })
        .await
        .unwrap();
    t.intents()
        .settle(
            owner.id,
            id,
            Some((
                IntentStatus::Failed,
                IntentUpdate {
                    reason: Some("broker said \0 no".into()),
                    ..IntentUpdate::default()
                },
            )),
            Some(NewExecution {
                id: ExecutionId::new(),
                owner: owner.id,
                intent: id,
                attempt: 1,
                started_at: Utc::now(),
                finished_at: Some(Utc::now()),
                outcome: ExecutionOutcome::Failed,
                broker_order_ids: vec!["1\0".into()],
                fill_price: None,
                filled_quantity: None,
                error_kind: Some("failed\0".into()),
                failure_reason: Some("HTTP 400: \0".into()),
            }),
        )
        .await
        .unwrap();
    let intent = t.intents().get(owner.id, id).await.unwrap();
    assert_eq!(intent.symbol, "MNQ");
    assert_eq!(intent.status, IntentStatus::Failed);
    assert_eq!(intent.status_reason.as_deref(), Some("broker said  no"));
    assert_eq!(intent.plan, serde_json::json!({"note": ""}));
    let executions = t.intents().executions(owner.id, id).await.unwrap();
    assert_eq!(executions[0].failure_reason.as_deref(), Some("HTTP 400: "));
    assert_eq!(executions[0].broker_order_ids, vec!["1".to_string()]);
}

on_both_engines!(
    a_webhook_log_row_with_nul_is_written_with_the_nul_escaped,
    a_signal_and_its_intent_with_nul_in_their_texts_are_recorded,
);
