//! The ingest's store calls: webhook token → recorder, and the batched raw webhook log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::TestStore;
use jt_store::repo::webhooks::{LOGGED_BODY_BYTES, NewWebhookLog, RESOLVE_MANY_MAX};
use jt_store::{RecorderId, StoreError, WebhookLogId};

fn entry(recorder: Option<RecorderId>, body: &str, status: u16) -> NewWebhookLog {
    NewWebhookLog {
        id: WebhookLogId::new(),
        received_at: Utc::now(),
        recorder,
        source_ip: Some("52.89.214.238".into()),
        body: body.into(),
        status_code: status,
        result: if status == 200 {
            "queued".into()
        } else {
            "unknown_token".into()
        },
        reason: None,
        signal: None,
    }
}

async fn webhook_tokens_resolve_to_their_recorder(t: &TestStore) {
    let owner = t.user("hook@example.com").await;
    let (recorder, token) = t.recorder(&owner, "hooked").await;
    assert!(token.expose().len() >= 22, "at least 128 bits");
    let target = t.webhooks().resolve(token.expose()).await.unwrap().unwrap();
    assert_eq!((target.recorder, target.owner), (recorder.id, owner.id));
    assert_eq!(target.symbol.as_deref(), Some("MNQ1!"));
    assert!(t.webhooks().resolve("nope").await.unwrap().is_none());
    assert_eq!(
        t.webhooks().token_hashes().await.unwrap(),
        vec![jt_store::auth::token_hash(token.expose())]
    );
    assert!(t.webhooks().resolve("").await.unwrap().is_none());

    let fresh = t
        .recorders()
        .rotate_webhook_token(owner.id, recorder.id)
        .await
        .unwrap();
    assert!(
        t.webhooks()
            .resolve(token.expose())
            .await
            .unwrap()
            .is_none(),
        "old URL dead"
    );
    assert_eq!(
        t.webhooks()
            .resolve(fresh.expose())
            .await
            .unwrap()
            .unwrap()
            .recorder,
        recorder.id
    );
    assert_eq!(
        t.recorders()
            .webhook_token(owner.id, recorder.id)
            .await
            .unwrap(),
        fresh
    );

    // In bulk (the ingest's revalidation): each token with its answer, in the order asked;
    // the rotated one is unknown.
    let (other, other_token) = t.recorder(&owner, "other").await;
    let asked = vec![
        fresh.expose().to_string(),
        token.expose().to_string(),
        other_token.expose().to_string(),
        "nope".to_string(),
    ];
    let answers = t.webhooks().resolve_many(&asked).await.unwrap();
    assert_eq!(
        answers
            .iter()
            .map(|(token, target)| (token.clone(), target.as_ref().map(|t| t.recorder)))
            .collect::<Vec<_>>(),
        vec![
            (asked[0].clone(), Some(recorder.id)),
            (asked[1].clone(), None),
            (asked[2].clone(), Some(other.id)),
            (asked[3].clone(), None),
        ]
    );
    assert!(t.webhooks().resolve_many(&[]).await.unwrap().is_empty());
    let too_many = vec!["x".to_string(); RESOLVE_MANY_MAX + 1];
    assert!(matches!(
        t.webhooks().resolve_many(&too_many).await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn webhook_log_is_written_in_batches(t: &TestStore) {
    let owner = t.user("log@example.com").await;
    let (recorder, _) = t.recorder(&owner, "logged").await;
    let (doomed, _) = t.recorder(&owner, "doomed").await;
    let mut batch: Vec<NewWebhookLog> = (0..450)
        .map(|i| {
            entry(
                Some(recorder.id),
                &format!(r#"{{"action":"buy","n":{i}}}"#),
                200,
            )
        })
        .collect();
    batch.push(entry(None, "garbage", 404));
    batch.push(entry(
        Some(recorder.id),
        &"x".repeat(LOGGED_BODY_BYTES + 100),
        413,
    ));
    assert_eq!(t.webhooks().log_batch(&batch).await.unwrap(), 452);
    // A retried batch writes nothing twice.
    assert_eq!(t.webhooks().log_batch(&batch).await.unwrap(), 0);
    assert_eq!(t.count("webhook_log", "1 = 1").await, 452);

    let recent = t
        .webhooks()
        .recent(owner.id, recorder.id, 1000)
        .await
        .unwrap();
    assert_eq!(recent.len(), 451);
    let big = recent.iter().find(|e| e.status_code == 413).unwrap();
    assert!(big.body_truncated && big.body.len() == LOGGED_BODY_BYTES);

    // A recorder deleted while its rows wait in the batch: rows are kept, detached.
    let late = vec![
        entry(Some(doomed.id), "late", 200),
        entry(Some(recorder.id), "fine", 200),
    ];
    t.recorders().delete(owner.id, doomed.id).await.unwrap();
    assert_eq!(t.webhooks().log_batch(&late).await.unwrap(), 2);
    assert_eq!(
        t.count("webhook_log", "body = 'late' AND recorder_id IS NULL")
            .await,
        1
    );

    // Retention.
    assert_eq!(
        t.system()
            .prune_webhook_log(Utc::now() + Duration::minutes(1))
            .await
            .unwrap(),
        454
    );
}

on_both_engines!(
    webhook_tokens_resolve_to_their_recorder,
    webhook_log_is_written_in_batches
);
