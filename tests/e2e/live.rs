//! The dashboard's data end to end (issue #24) on JetStream, PostgreSQL and the simulator:
//! an alert posted to the ingest shows on its owner's live stream as a `signal` event with its
//! id while a second user's stream shows nothing; the risk service's figures for a watched
//! account (its max daily loss and the distance to it) reach `GET /status` with a fresh
//! `as_of`, and its position with its protection; the charts show the alert's latency and
//! the recorder's closed paper trade.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.
//! Without them the harness fails loudly; nothing here is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::api::{Client, serve_api};
use jt_e2e::{ConnectionManager, Options, Platform, USER_PASSWORD, alert, eventually};
use jt_risk::RiskConfig;
use jt_store::Role;
use jt_store::repo::auth::NewUser;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn second_user(p: &Platform, base: &str) -> Client {
    p.store
        .users()
        .register(NewUser {
            email: "second@e2e.test".into(),
            display_name: None,
            password: jt_store::Secret::new("second user password"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    Client::login(base, "second@e2e.test", "second user password").await
}

#[tokio::test]
async fn an_alert_shows_live_on_its_owners_stream_and_on_no_one_elses() {
    let p = Platform::start(Options::default()).await;
    let base = serve_api(&p).await;
    let owner = Client::login(&base, &p.email(), USER_PASSWORD).await;
    let other = second_user(&p, &base).await;
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let mut mine = owner.events().await;
    let mut theirs = other.events().await;

    let signal = p
        .queued(&token, &alert("buy", "long", r#","price":21000.25"#))
        .await;
    let v = mine
        .wait_for("signal", WAIT, |v| v["id"] == json!(signal.to_string()))
        .await;
    assert!(v["at"].is_string(), "{v}");
    // Its decision lands as a later change of the same signal.
    p.settled_intents(signal, 1, WAIT).await;
    let decided = owner.get(&format!("/signals/{signal}")).await;
    assert_eq!(decided["decisions"].as_array().unwrap().len(), 1);
    let seen = theirs.drain(Duration::from_secs(3)).await;
    assert!(
        seen.is_empty(),
        "another user's stream saw the owner's alert: {seen:?}"
    );
    p.stop().await;
}

#[tokio::test]
async fn the_risk_figures_positions_and_charts_reach_the_api() {
    let p = Platform::start(Options::default()).await;
    let base = serve_api(&p).await;
    let c = Client::login(&base, &p.email(), USER_PASSWORD).await;
    // The services that keep the store in step with the simulator and the risk monitor.
    let connmgr = ConnectionManager::start(&p).await;
    let positions = jt_positions::start(
        jt_positions::PositionsConfig {
            reconcile_every: Duration::from_secs(3600),
            ..jt_positions::PositionsConfig::default()
        },
        &connmgr.ctx,
    )
    .await
    .unwrap();
    let risk = jt_risk::start(
        RiskConfig {
            poll_every: Duration::from_secs(1),
            resync_every: Duration::from_secs(1),
            survey_every: Duration::from_secs(1),
            ..RiskConfig::default()
        },
        &connmgr.ctx,
    )
    .await
    .unwrap();
    let settings = Settings {
        max_daily_loss: Decimal::from(1000),
        sl_enabled: true,
        sl_amount: Decimal::from(40),
        ..Settings::default()
    };
    let (recorder, token) = p
        .recorder(settings, &[(0, SettingsOverrides::default())])
        .await;
    let mut live = c.events().await;
    let sub = p.subs[0].id.to_string();

    let entry = p
        .queued(&token, &alert("buy", "long", r#","price":21000.25"#))
        .await;
    p.settled_intents(entry, 1, WAIT).await;
    // The position and its stop reach the store, and the stream says so.
    live.wait_for("positions", WAIT, |v| {
        v["sub_account_ids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(sub)))
    })
    .await;
    let account = eventually("the position with its stop in /status", WAIT, async || {
        let status = c.get("/status").await;
        let s = status[0]["sub_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == json!(sub))
            .cloned()?;
        let pos = s["positions"].as_array()?.first()?.clone();
        (pos["stop_quantity"] == 1 && s["risk"]["open_source"] != Value::Null).then_some(s)
    })
    .await;
    assert_eq!(account["positions"][0]["unprotected"], false);
    let risk_view = &account["risk"];
    assert_eq!(risk_view["max_daily_loss"], "1000", "{risk_view}");
    assert_eq!(risk_view["stale"], false);
    assert_eq!(risk_view["breached"], false);
    let distance: Decimal = risk_view["max_daily_loss_distance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        distance > Decimal::ZERO && distance <= Decimal::from(1000) + Decimal::from(100),
        "a small day's P&L leaves most of the limit: {risk_view}"
    );
    let as_of: chrono::DateTime<Utc> = risk_view["as_of"].as_str().unwrap().parse().unwrap();
    assert!(
        Utc::now() - as_of < chrono::Duration::seconds(15),
        "the monitor keeps the figures fresh: {as_of}"
    );
    // The P&L figures arriving show on the stream too.
    live.wait_for("pnl", WAIT, |v| {
        v["sub_account_ids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(sub)))
    })
    .await;

    // Close with a gain: the paper record closes a trade, the charts show it.
    let close = p
        .queued(&token, &alert("sell", "flat", r#","price":21010.25"#))
        .await;
    p.settled_intents(close, 1, WAIT).await;
    let chart = eventually(
        "the closed paper trade on the P&L chart",
        WAIT,
        async || {
            let chart = c.get(&format!("/charts/pnl?recorder_id={recorder}")).await;
            let points = chart["recorders"][0]["paper"].as_array()?.clone();
            (!points.is_empty()).then_some(chart)
        },
    )
    .await;
    let total: Decimal = chart["recorders"][0]["paper_total"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, Decimal::from(20), "10 points of MNQ at $2: {chart}");
    let latency = c.get("/charts/latency").await;
    assert!(
        latency["count"].as_u64().unwrap() >= 2,
        "the entry and the close were answered by the broker: {latency}"
    );
    let in_buckets: u64 = latency["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(Some(in_buckets), latency["count"].as_u64());
    assert!(latency["p50_ms"].as_i64().unwrap() >= 0);

    connmgr.stop.cancel();
    risk.wait().await.unwrap();
    positions.wait().await.unwrap();
    connmgr.stop().await;
    p.stop().await;
}
