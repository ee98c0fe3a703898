//! Users, passwords, sessions, API tokens and password resets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Duration;
use common::TestStore;
use jt_store::repo::auth::NewUser;
use jt_store::{Role, Secret, StoreError};

async fn passwords_are_hashed_and_checked(t: &TestStore) {
    let u = t.user("Trader@Example.com").await;
    assert_eq!(u.email, "trader@example.com");
    let stored = t.raw_strings("SELECT password_hash FROM users").await;
    assert!(stored[0].starts_with("$argon2id$"), "{}", stored[0]);
    assert!(!stored[0].contains("correct horse"));

    let ok = t
        .users()
        .authenticate("TRADER@example.com ", &Secret::new("correct horse battery"))
        .await
        .unwrap();
    assert_eq!(ok.as_ref().map(|u| u.id), Some(u.id));
    assert!(ok.unwrap().last_login_at.is_some());
    assert!(
        t.users()
            .authenticate("trader@example.com", &Secret::new("wrong password"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.users()
            .authenticate("nobody@example.com", &Secret::new("correct horse battery"))
            .await
            .unwrap()
            .is_none()
    );

    let dup = t
        .users()
        .register(NewUser {
            email: "trader@example.com".into(),
            display_name: None,
            password: Secret::new("another password"),
            role: Role::User,
            approved: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup:?}");
    for (email, pw) in [
        ("not-an-email", "long enough pw"),
        ("x@example.com", "short"),
    ] {
        let err = t
            .users()
            .register(NewUser {
                email: email.into(),
                display_name: None,
                password: Secret::new(pw),
                role: Role::User,
                approved: false,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    }

    t.users()
        .change_password(
            u.id,
            &Secret::new("correct horse battery"),
            &Secret::new("new password 123"),
            None,
        )
        .await
        .unwrap();
    assert!(
        t.users()
            .authenticate("trader@example.com", &Secret::new("new password 123"))
            .await
            .unwrap()
            .is_some()
    );
    let wrong = t
        .users()
        .change_password(
            u.id,
            &Secret::new("nope nope"),
            &Secret::new("x123456789"),
            None,
        )
        .await;
    assert!(matches!(wrong, Err(StoreError::Invalid { .. })));
}

async fn sessions_are_stored_hashed_and_expire(t: &TestStore) {
    let u = t.user("sess@example.com").await;
    let (id, token) = t
        .sessions()
        .create(
            u.id,
            Duration::hours(12),
            Some("firefox"),
            Some("203.0.113.7"),
        )
        .await
        .unwrap();
    let raw = t
        .raw_strings(match t.engine {
            common::Engine::Postgres => "SELECT encode(token_hash, 'hex') FROM login_sessions",
            common::Engine::Sqlite => "SELECT hex(token_hash) FROM login_sessions",
        })
        .await;
    assert_eq!(
        raw[0].to_lowercase(),
        hex::encode(jt_store::auth::token_hash(token.expose()))
    );
    let auth = t.sessions().resolve(token.expose()).await.unwrap().unwrap();
    assert_eq!((auth.user.id, auth.session), (u.id, Some(id)));
    assert!(t.sessions().resolve("not-a-token").await.unwrap().is_none());

    let (_, expired) = t
        .sessions()
        .create(u.id, Duration::seconds(-1), None, None)
        .await
        .unwrap();
    assert!(
        t.sessions()
            .resolve(expired.expose())
            .await
            .unwrap()
            .is_none()
    );

    let other = t.user("sess2@example.com").await;
    assert!(matches!(
        t.sessions().revoke(other.id, id).await,
        Err(StoreError::NotFound { .. })
    ));
    t.sessions().revoke(u.id, id).await.unwrap();
    assert!(
        t.sessions()
            .resolve(token.expose())
            .await
            .unwrap()
            .is_none()
    );
}

async fn api_tokens_are_stored_hashed_and_revocable(t: &TestStore) {
    let u = t.user("api@example.com").await;
    let (tok, secret) = t.api_tokens().create(u.id, "ci", None).await.unwrap();
    assert!(secret.expose().starts_with("jt_"));
    assert!(secret.expose().starts_with(&tok.prefix));
    let all = t.count("api_tokens", "1 = 1").await;
    assert_eq!(all, 1);
    let auth = t
        .api_tokens()
        .resolve(secret.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((auth.user.id, auth.api_token), (u.id, Some(tok.id)));
    assert_eq!(t.api_tokens().list(u.id).await.unwrap()[0].name, "ci");
    t.api_tokens().revoke(u.id, tok.id).await.unwrap();
    assert!(
        t.api_tokens()
            .resolve(secret.expose())
            .await
            .unwrap()
            .is_none()
    );

    let past = chrono::Utc::now() - Duration::minutes(1);
    let (_, expired) = t
        .api_tokens()
        .create(u.id, "old", Some(past))
        .await
        .unwrap();
    assert!(
        t.api_tokens()
            .resolve(expired.expose())
            .await
            .unwrap()
            .is_none()
    );
}

async fn password_reset_is_single_use(t: &TestStore) {
    let u = t.user("reset@example.com").await;
    let (_, session) = t
        .sessions()
        .create(u.id, Duration::hours(1), None, None)
        .await
        .unwrap();
    assert!(
        t.users()
            .start_password_reset("unknown@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let token = t
        .users()
        .start_password_reset("reset@example.com")
        .await
        .unwrap()
        .unwrap();
    let who = t
        .users()
        .finish_password_reset(&token, &Secret::new("brand new password"))
        .await
        .unwrap();
    assert_eq!(who, u.id);
    assert!(
        t.users()
            .authenticate("reset@example.com", &Secret::new("brand new password"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        t.sessions()
            .resolve(session.expose())
            .await
            .unwrap()
            .is_none(),
        "sessions revoked"
    );
    let again = t
        .users()
        .finish_password_reset(&token, &Secret::new("another password"))
        .await;
    assert!(
        matches!(again, Err(StoreError::Invalid { .. })),
        "{again:?}"
    );
}

on_both_engines!(
    passwords_are_hashed_and_checked,
    sessions_are_stored_hashed_and_expire,
    api_tokens_are_stored_hashed_and_revocable,
    password_reset_is_single_use,
);
