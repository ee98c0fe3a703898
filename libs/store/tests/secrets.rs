//! Secrets at rest: the raw columns never contain the plaintext, values round-trip, and a
//! wrong or missing key fails clearly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestStore;
use jt_store::repo::accounts::BrokerCredentials;
use jt_store::repo::notifications::NewChannel;
use jt_store::{ChannelKind, Secret, SecretError, SecretKey, Store, StoreConfig, StoreError};

async fn raw_bytes(t: &TestStore, sql: &str) -> Vec<Vec<u8>> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = t.connection();
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_string(),
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.try_get_by_index::<Vec<u8>>(0).unwrap())
    .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn secrets_are_stored_encrypted_and_round_trip(t: &TestStore) {
    let owner = t.user("sec@example.com").await;
    let (account, _) = t.account(&owner, "vault").await;
    let creds = BrokerCredentials {
        password: Some(Secret::new("vault-password-plaintext")),
        api_key: Some(Secret::new("API-KEY-0123456789")),
        client_secret: Some(Secret::new("client-secret-xyz")),
        client_id: Some("8123".into()),
        app_id: Some("jt".into()),
        ..BrokerCredentials::default()
    };
    t.accounts()
        .set_credentials(owner.id, account, &creds)
        .await
        .unwrap();
    let token = Secret::new("eyJhbGciOi-access-token-plaintext");
    let expiry = chrono::Utc::now() + chrono::Duration::minutes(90);
    t.accounts()
        .store_access_token(owner.id, account, &token, Some(expiry))
        .await
        .unwrap();
    let (recorder, webhook) = t.recorder(&owner, "sealed").await;
    let channel = t
        .notifications()
        .create_channel(
            owner.id,
            NewChannel {
                kind: ChannelKind::Discord,
                label: "alerts".into(),
                target: Secret::new("https://discord.com/api/webhooks/1/SECRET-PART"),
                events: vec!["max_loss".into()],
            },
        )
        .await
        .unwrap();

    // Raw columns: ciphertext only.
    let creds_raw = raw_bytes(t, "SELECT credentials_enc FROM broker_accounts").await;
    let token_raw = raw_bytes(t, "SELECT access_token_enc FROM broker_accounts").await;
    let hook_raw = raw_bytes(t, "SELECT webhook_token_enc FROM recorders").await;
    let hash_raw = raw_bytes(t, "SELECT webhook_token_hash FROM recorders").await;
    let target_raw = raw_bytes(t, "SELECT target_enc FROM notification_channels").await;
    for plain in [
        "vault-password-plaintext",
        "API-KEY-0123456789",
        "client-secret-xyz",
        "8123",
    ] {
        assert!(!contains(&creds_raw[0], plain), "{plain} stored in clear");
    }
    assert!(!contains(&token_raw[0], token.expose()));
    assert!(!contains(&hook_raw[0], webhook.expose()));
    assert!(!contains(&hash_raw[0], webhook.expose()));
    assert!(!contains(&target_raw[0], "SECRET-PART"));

    // Round trip.
    assert_eq!(
        t.accounts().credentials(owner.id, account).await.unwrap(),
        creds
    );
    let back = t
        .accounts()
        .access_token(owner.id, account)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.token, token);
    assert!(back.expires_at.is_some());
    assert_eq!(
        t.recorders()
            .webhook_token(owner.id, recorder.id)
            .await
            .unwrap(),
        webhook
    );
    assert_eq!(
        t.notifications()
            .target(owner.id, channel.id)
            .await
            .unwrap()
            .expose(),
        "https://discord.com/api/webhooks/1/SECRET-PART"
    );

    // The API-facing types never show secrets.
    let shown = format!("{:?} {}", creds, serde_json::to_string(&creds).unwrap());
    assert!(
        !shown.contains("vault-password-plaintext") && !shown.contains("API-KEY"),
        "{shown}"
    );
    let acc = t.accounts().get(owner.id, account).await.unwrap();
    let shown = serde_json::to_string(&acc).unwrap();
    assert!(acc.has_credentials && acc.has_access_token);
    assert!(!shown.contains("plaintext"), "{shown}");

    // Another key opens nothing, and says why.
    let other = t.with_key(SecretKey::generate()).await;
    let err = other
        .accounts()
        .credentials(owner.id, account)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Undecryptable { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("JT_SECRET_KEY"), "{err}");
    assert!(
        other
            .accounts()
            .access_token(owner.id, account)
            .await
            .is_err()
    );
    assert!(
        other
            .recorders()
            .webhook_token(owner.id, recorder.id)
            .await
            .is_err()
    );

    // No key at all: a clear error, never plaintext.
    let mut cfg = StoreConfig::new(t.url.clone());
    cfg.max_connections = 1;
    let keyless = Store::connect(&cfg).await.unwrap();
    let err = keyless
        .accounts()
        .credentials(owner.id, account)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::NoKey)),
        "{err:?}"
    );
    assert!(err.to_string().contains("JT_SECRET_KEY"));
}

/// A ciphertext moved onto another row (another user's account) does not decrypt.
async fn ciphertexts_are_bound_to_their_row(t: &TestStore) {
    use sea_orm::ConnectionTrait;
    let a = t.user("bind-a@example.com").await;
    let b = t.user("bind-b@example.com").await;
    let (acc_a, _) = t.account(&a, "alpha").await;
    let (acc_b, _) = t.account(&b, "beta").await;
    let copy = "UPDATE broker_accounts SET credentials_enc = \
                (SELECT credentials_enc FROM broker_accounts WHERE user_id = {A}) WHERE user_id = {B}";
    let lit = |id: uuid::Uuid| match t.engine {
        common::Engine::Sqlite => format!("x'{}'", id.simple()),
        common::Engine::Postgres => format!("'{id}'"),
    };
    let sql = copy
        .replace("{A}", &lit(a.id.0))
        .replace("{B}", &lit(b.id.0));
    t.connection().execute_unprepared(&sql).await.unwrap();
    assert!(t.accounts().credentials(a.id, acc_a).await.is_ok());
    let err = t.accounts().credentials(b.id, acc_b).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Undecryptable { .. })),
        "{err:?}"
    );
}

on_both_engines!(
    secrets_are_stored_encrypted_and_round_trip,
    ciphertexts_are_bound_to_their_row
);
