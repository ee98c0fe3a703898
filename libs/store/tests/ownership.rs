//! Ownership: through the repositories, user A can neither read nor change user B's records;
//! admin access is a separate, audited path, and an admin's view-as is read-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestStore;
use jt_domain::{Settings, SettingsOverrides};
use jt_store::repo::accounts::{AccountUpdate, BrokerCredentials};
use jt_store::repo::recorders::RecorderUpdate;
use jt_store::repo::traders::NewTrader;
use jt_store::{Role, Secret, StoreError};
use rust_decimal_macros::dec;

fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn user_a_cannot_touch_user_b_records(t: &TestStore) {
    let a = t.user("a@example.com").await;
    let b = t.user("b@example.com").await;
    let (b_account, b_sub) = t.account(&b, "bee").await;
    let (b_recorder, _) = t.recorder(&b, "b-strategy").await;
    let b_trader = t.trader(b.id, b_recorder.id, b_sub.id).await;

    // Reads.
    not_found(t.recorders().get(a.id, b_recorder.id).await);
    not_found(t.traders().get(a.id, b_trader.id).await);
    not_found(t.accounts().get(a.id, b_account).await);
    not_found(t.accounts().sub_account(a.id, b_sub.id).await);
    not_found(t.accounts().sub_account_with_account(a.id, b_sub.id).await);
    // The owner reads the pair (one joined statement); an id that does not exist is not found.
    let (sub, account) = t
        .accounts()
        .sub_account_with_account(b.id, b_sub.id)
        .await
        .unwrap();
    assert_eq!((sub.id, sub.broker_account), (b_sub.id, b_account));
    assert_eq!((account.id, account.owner), (b_account, b.id));
    not_found(
        t.accounts()
            .sub_account_with_account(b.id, jt_store::SubAccountId(uuid::Uuid::new_v4()))
            .await,
    );
    not_found(t.accounts().credentials(a.id, b_account).await);
    not_found(t.accounts().access_token(a.id, b_account).await);
    not_found(t.recorders().webhook_token(a.id, b_recorder.id).await);
    not_found(t.traders().execution_targets(a.id, b_recorder.id).await);
    not_found(t.webhooks().recent(a.id, b_recorder.id, 10).await);
    assert!(t.recorders().list(a.id).await.unwrap().is_empty());
    assert!(t.traders().list(a.id).await.unwrap().is_empty());
    assert!(t.accounts().list(a.id).await.unwrap().is_empty());
    assert!(
        t.accounts()
            .sub_accounts(a.id, b_account)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t.traders()
            .for_recorder(a.id, b_recorder.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Writes.
    not_found(
        t.recorders()
            .update_settings(a.id, b_recorder.id, &Settings::default())
            .await,
    );
    not_found(
        t.recorders()
            .update(
                a.id,
                b_recorder.id,
                RecorderUpdate {
                    name: Some("mine".into()),
                    ..Default::default()
                },
            )
            .await,
    );
    not_found(
        t.recorders()
            .rotate_webhook_token(a.id, b_recorder.id)
            .await,
    );
    not_found(t.recorders().delete(a.id, b_recorder.id).await);
    not_found(t.traders().set_enabled(a.id, b_trader.id, false).await);
    not_found(
        t.traders()
            .update_overrides(
                a.id,
                b_trader.id,
                &SettingsOverrides {
                    multiplier: Some(dec!(50)),
                    ..Default::default()
                },
            )
            .await,
    );
    not_found(t.traders().delete(a.id, b_trader.id).await);
    not_found(
        t.accounts()
            .update(
                a.id,
                b_account,
                AccountUpdate {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await,
    );
    not_found(
        t.accounts()
            .set_credentials(a.id, b_account, &BrokerCredentials::default())
            .await,
    );
    not_found(
        t.accounts()
            .store_access_token(a.id, b_account, &Secret::new("stolen"), None)
            .await,
    );
    not_found(t.accounts().mark_needs_reauth(a.id, b_account, "x").await);
    not_found(t.accounts().delete(a.id, b_account).await);
    not_found(t.accounts().sync_sub_accounts(a.id, b_account, &[]).await);
    not_found(
        t.accounts()
            .set_sub_account_enabled(a.id, b_sub.id, false)
            .await,
    );

    // A cannot link B's recorder or sub-account into a trader of their own.
    let (a_recorder, _) = t.recorder(&a, "a-strategy").await;
    let (_, a_sub) = t.account(&a, "ay").await;
    not_found(
        t.traders()
            .create(
                a.id,
                NewTrader {
                    recorder: b_recorder.id,
                    sub_account: a_sub.id,
                    enabled: true,
                    overrides: SettingsOverrides::default(),
                },
            )
            .await,
    );
    not_found(
        t.traders()
            .create(
                a.id,
                NewTrader {
                    recorder: a_recorder.id,
                    sub_account: b_sub.id,
                    enabled: true,
                    overrides: SettingsOverrides::default(),
                },
            )
            .await,
    );

    // Nothing of B's changed.
    let still = t.traders().get(b.id, b_trader.id).await.unwrap();
    assert!(still.enabled);
    assert_eq!(still.overrides, SettingsOverrides::default());
    assert_eq!(
        t.recorders().get(b.id, b_recorder.id).await.unwrap().name,
        "b-strategy"
    );
    let acc = t.accounts().get(b.id, b_account).await.unwrap();
    assert!(acc.enabled && !acc.needs_reauth && !acc.has_access_token);
    assert_eq!(
        t.accounts()
            .credentials(b.id, b_account)
            .await
            .unwrap()
            .password
            .unwrap()
            .expose(),
        "bee-password-plaintext"
    );
}

/// The database itself refuses a trader whose recorder and sub-account have different owners
/// (composite foreign keys), even if a repository check were forgotten.
async fn database_refuses_cross_owner_links(t: &TestStore) {
    use jt_store::entity::traders;
    use sea_orm::{EntityTrait, IntoActiveModel};
    let a = t.user("a2@example.com").await;
    let b = t.user("b2@example.com").await;
    let (a_recorder, _) = t.recorder(&a, "a").await;
    let (_, b_sub) = t.account(&b, "b").await;
    let now = chrono::Utc::now();
    let row = traders::Model {
        id: uuid::Uuid::now_v7(),
        user_id: a.id.0,
        recorder_id: a_recorder.id.0,
        sub_account_id: b_sub.id.0,
        enabled: true,
        overrides: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    };
    let err = traders::Entity::insert(row.into_active_model())
        .exec_without_returning(t.connection())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
        ),
        "{err}"
    );
}

async fn admin_path_is_explicit_and_audited(t: &TestStore) {
    let admin = t.admin_user("root@example.com").await;
    let user = t.user("plain@example.com").await;
    let other = t.user("other@example.com").await;
    let (rec, _) = t.recorder(&other, "theirs").await;

    // A plain user is no admin.
    assert!(matches!(
        t.admin_scope(user.id).await,
        Err(StoreError::NotAdmin(_))
    ));

    let scope = t.admin_scope(admin.id).await.unwrap();
    let adm = t.admin(&scope);
    adm.set_approved(user.id, false).await.unwrap();
    adm.set_role(user.id, Role::Admin).await.unwrap();
    assert!(matches!(
        adm.set_role(admin.id, Role::User).await,
        Err(StoreError::Invalid { .. })
    ));

    // View-as is audited and gives read access only.
    let view = adm.view_as(other.id).await.unwrap();
    assert_eq!(
        t.recorders().get(view, rec.id).await.unwrap().name,
        "theirs"
    );
    assert_eq!(t.recorders().list(view).await.unwrap().len(), 1);

    let log = adm.audit_log(10, 0).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"user.approve"), "{actions:?}");
    assert!(actions.contains(&"user.set_role"), "{actions:?}");
    assert!(actions.contains(&"user.view_as"), "{actions:?}");
    assert!(
        log.iter()
            .all(|e| e.actor == Some(admin.id) && e.actor_email == "root@example.com")
    );

    let changed = t.users().get(user.id).await.unwrap();
    assert!(!changed.approved);
    assert_eq!(changed.role, Role::Admin);
}

on_both_engines!(
    user_a_cannot_touch_user_b_records,
    database_refuses_cross_owner_links,
    admin_path_is_explicit_and_audited,
);
