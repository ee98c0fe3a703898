//! Delete behaviour: deleting a user or a broker account removes or detaches every dependent
//! row, on both engines, and leaves other users' rows alone. Every table of the schema is
//! classified here, so a new table cannot be added without deciding its delete behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::fixture::{Fixture, populate};
use common::{Engine, TestStore};
use uuid::Uuid;

fn lit(t: &TestStore, id: Uuid) -> String {
    match t.engine {
        Engine::Sqlite => format!("x'{}'", id.simple()),
        Engine::Postgres => format!("'{id}'"),
    }
}

/// Rows per table that belong to `user` (directly or through the fixture's recorder/account).
async fn owned_rows(t: &TestStore, user: Uuid, f: &Fixture) -> BTreeMap<&'static str, i64> {
    let u = lit(t, user);
    let mut out = BTreeMap::new();
    for table in jt_migrations::TABLES {
        let filter = match *table {
            "users" => format!("id = {u}"),
            "plans" | "news_events" => continue, // platform-wide, not owned
            "webhook_log" => format!("recorder_id = {}", lit(t, f.recorder.0)),
            "kill_switches" => format!("user_id = {u} OR sub_account_id = {}", lit(t, f.sub.0)),
            "audit_log" => format!("target_user_id = {u}"),
            _ => format!("user_id = {u}"),
        };
        out.insert(*table, t.count(table, &filter).await);
    }
    out
}

async fn deleting_a_user_removes_or_detaches_everything(t: &TestStore) {
    let admin = t.admin_user("admin@example.com").await;
    let scope = t.admin_scope(admin.id).await.unwrap();
    let victim = t.user("victim@example.com").await;
    let bystander = t.user("bystander@example.com").await;
    let fv = populate(t, &victim, &scope, "vic").await;
    let fb = populate(t, &bystander, &scope, "bys").await;

    let before = owned_rows(t, victim.id.0, &fv).await;
    for (table, n) in &before {
        assert!(*n > 0, "the fixture must cover table {table}");
    }
    let bystander_before = owned_rows(t, bystander.id.0, &fb).await;

    t.admin(&scope).delete_user(victim.id).await.unwrap();

    let after = owned_rows(t, victim.id.0, &fv).await;
    for (table, n) in &after {
        assert_eq!(*n, 0, "{table} still holds rows of the deleted user");
    }
    assert_eq!(owned_rows(t, bystander.id.0, &fb).await, bystander_before);
    // The audit trail survives, detached, and says who was deleted.
    assert!(
        t.count(
            "audit_log",
            "action = 'user.delete' AND target_user_id IS NULL"
        )
        .await
            == 1
    );
    assert!(
        t.count(
            "audit_log",
            "target_user_id IS NULL AND action = 'user.approve'"
        )
        .await
            >= 1
    );
    assert!(t.users().get(victim.id).await.is_err());
}

async fn deleting_a_broker_account_removes_its_trading_records(t: &TestStore) {
    let admin = t.admin_user("admin2@example.com").await;
    let scope = t.admin_scope(admin.id).await.unwrap();
    let owner = t.user("owner@example.com").await;
    let f = populate(t, &owner, &scope, "own").await;
    let u = lit(t, owner.id.0);

    t.accounts().delete(owner.id, f.account).await.unwrap();

    // Removed with the account.
    for table in [
        "broker_accounts",
        "sub_accounts",
        "traders",
        "order_intents",
        "executions",
        "broker_orders",
        "fills",
        "broker_positions",
        "trade_records",
        "leaders",
        "followers",
        "follower_peaks",
        "contract_mappings",
        "risk_breaches",
        "account_rules",
    ] {
        assert_eq!(
            t.count(table, &format!("user_id = {u}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        t.count(
            "kill_switches",
            &format!("sub_account_id = {}", lit(t, f.sub.0))
        )
        .await,
        0
    );
    // Kept: the user's own records that do not depend on the account.
    assert_eq!(t.count("users", &format!("id = {u}")).await, 1);
    for table in [
        "recorders",
        "signals",
        "paper_positions",
        "paper_trades",
        "paper_breaches",
        "login_sessions",
        "api_tokens",
        "subscriptions",
        "notification_channels",
        "notification_deliveries",
    ] {
        assert!(
            t.count(table, &format!("user_id = {u}")).await > 0,
            "{table} should remain"
        );
    }
    assert_eq!(t.count("kill_switches", &format!("user_id = {u}")).await, 1);
    assert_eq!(
        t.count(
            "webhook_log",
            &format!("recorder_id = {}", lit(t, f.recorder.0))
        )
        .await,
        1
    );
    // Detached: the copy log keeps its history without the leader and follower.
    assert_eq!(
        t.count(
            "copy_log",
            &format!("user_id = {u} AND leader_id IS NULL AND follower_id IS NULL")
        )
        .await,
        1
    );
    // The recorder still works and has no traders.
    assert!(
        t.traders()
            .execution_targets(owner.id, f.recorder)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deleting_a_recorder_or_trader_keeps_account_history(t: &TestStore) {
    let admin = t.admin_user("admin3@example.com").await;
    let scope = t.admin_scope(admin.id).await.unwrap();
    let owner = t.user("hist@example.com").await;
    let f = populate(t, &owner, &scope, "his").await;
    let u = lit(t, owner.id.0);

    t.traders().delete(owner.id, f.trader).await.unwrap();
    let intent = t.intents().get(owner.id, f.intent).await.unwrap();
    assert_eq!(
        intent.trader, None,
        "intent detached from the deleted trader"
    );

    t.recorders().delete(owner.id, f.recorder).await.unwrap();
    for table in [
        "signals",
        "paper_positions",
        "paper_trades",
        "paper_breaches",
        "traders",
    ] {
        assert_eq!(
            t.count(table, &format!("user_id = {u}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        t.count(
            "webhook_log",
            &format!("recorder_id = {}", lit(t, f.recorder.0))
        )
        .await,
        0
    );
    let intent = t.intents().get(owner.id, f.intent).await.unwrap();
    assert_eq!(
        intent.signal, None,
        "intent detached from the deleted signal"
    );
    assert_eq!(t.count("broker_orders", &format!("user_id = {u}")).await, 1);
}

on_both_engines!(
    deleting_a_user_removes_or_detaches_everything,
    deleting_a_broker_account_removes_its_trading_records,
    deleting_a_recorder_or_trader_keeps_account_history,
);
