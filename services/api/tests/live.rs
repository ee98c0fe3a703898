//! The dashboard's data on the API's own harness (SQLite, embedded bus): live updates
//! (`GET /api/v1/events`) — a user's stream carries their signals, positions and P&L changes
//! and nothing of another user's, a stream limit per user, a dropped stream frees its feed —
//! the risk monitor's figures in `GET /status` with `as_of` and staleness, and the chart data
//! (`/charts/pnl`, `/charts/latency`). The same on PostgreSQL and JetStream with the real
//! services: `tests/e2e/live.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt as _;
use jt_api::ApiConfig;
use jt_domain::{Settings, SignalAction};
use jt_messages::risk_status::{self, RiskSnapshot};
use jt_store::repo::accounts::BrokerSubAccount;
use jt_store::repo::broker::BrokerPosition;
use jt_store::repo::intents::{NewExecution, NewIntent};
use jt_store::repo::paper::PaperTrade;
use jt_store::repo::signals::NewSignal;
use jt_store::{
    ExecutionId, ExecutionOutcome, IntentId, IntentKind, IntentSource, PaperStatus, RecorderId,
    SignalId, SignalOutcome, SubAccountId, UserId,
};
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use common::{Auth, Session, TestApi};

/// A live stream read event by event.
struct Events {
    body: Body,
    buf: String,
}

impl Events {
    async fn open(api: &TestApi, s: &Session) -> Result<Events, common::Answer> {
        let req = Request::builder()
            .uri("/api/v1/events")
            .header(header::COOKIE, &s.cookie)
            .body(Body::empty())
            .unwrap();
        let r = api.app.clone().oneshot(req).await.unwrap();
        if r.status() != StatusCode::OK {
            let status = r.status();
            let bytes = r.into_body().collect().await.unwrap().to_bytes();
            return Err(common::Answer {
                status,
                headers: axum::http::HeaderMap::new(),
                body: serde_json::from_slice(&bytes).unwrap(),
            });
        }
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/event-stream",
            "an SSE stream"
        );
        let mut e = Events {
            body: r.into_body(),
            buf: String::new(),
        };
        let first = e.next(Duration::from_secs(10)).await;
        assert_eq!(first.map(|(k, _)| k), Some("ready".to_string()));
        Ok(e)
    }

    /// The next event (name, JSON data) within `wait`; heartbeat comments are skipped.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((name, data)) = jt_api::events::take_event(&mut self.buf) {
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Events within `wait` of the kind `kind`.
    async fn collect(&mut self, kind: &str, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while let Some((k, v)) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if k == kind {
                out.push(v);
            }
        }
        out
    }

    /// Waits for an event of `kind` whose data satisfies `pred`.
    async fn wait_for(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((k, v)) if k == kind && pred(&v) => return v,
                Some(_) => {}
                None => panic!("no `{kind}` event as expected within 10 s"),
            }
        }
    }
}

async fn recorder(api: &TestApi, s: &Session, name: &str) -> RecorderId {
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(s),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    serde_json::from_value(r.body["id"].clone()).unwrap()
}

async fn signal(api: &TestApi, owner: UserId, recorder: RecorderId, at: DateTime<Utc>) -> SignalId {
    let id = SignalId::new();
    api.store
        .signals()
        .record(NewSignal {
            id,
            owner,
            recorder,
            received_at: at,
            alert_time: None,
            action: SignalAction::Long,
            ticker: Some("MNQ1!".into()),
            quantity: None,
            price: None,
            market_position: None,
            prev_market_position: None,
            payload: json!({}),
            outcome: SignalOutcome::Accepted,
            outcome_reason: None,
            age_ms: None,
            body_digest: None,
        })
        .await
        .unwrap();
    id
}

async fn sub_account(api: &TestApi, s: &Session) -> SubAccountId {
    let r = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(s),
            Some(
                json!({"label": "Sim", "broker": "sim", "environment": "demo", "username": "demo",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    *api.probe.listed.lock() = vec![BrokerSubAccount {
        broker_sub_account_id: "1".into(),
        name: "ACC1".into(),
    }];
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{id}/test"),
            Auth::Cookie(s),
            None,
        )
        .await;
    serde_json::from_value(r.body["sub_accounts"][0]["id"].clone()).unwrap()
}

fn snapshot(sub: SubAccountId, owner: UserId, as_of: DateTime<Utc>) -> RiskSnapshot {
    RiskSnapshot {
        sub_account_id: sub,
        owner,
        trading_day: jt_domain::session::trading_day(as_of),
        realized_pnl: Some(dec!(-120.50)),
        open_pnl: Some(dec!(-30)),
        open_source: Some("quotes".into()),
        max_daily_loss: Some(dec!(500)),
        max_daily_loss_distance: Some(dec!(349.50)),
        balance: Some(dec!(49849.50)),
        high_water_mark: None,
        rules_preset: None,
        rules: Vec::new(),
        breached: false,
        changed_at: as_of,
        as_of,
    }
}

#[tokio::test]
async fn a_stream_carries_its_users_changes_and_nothing_of_another_users() {
    let api = TestApi::new().await;
    let a = api.login("a@example.com").await;
    let b = api.login("b@example.com").await;
    let rec_a = recorder(&api, &a, "A's").await;
    let rec_b = recorder(&api, &b, "B's").await;
    let sub_a = sub_account(&api, &a).await;
    // A signal from before the stream opened is in the page already: not sent.
    let old = signal(&api, a.user, rec_a, Utc::now()).await;
    let mut ea = Events::open(&api, &a).await.unwrap();
    let mut eb = Events::open(&api, &b).await.unwrap();

    let sig = signal(&api, a.user, rec_a, Utc::now()).await;
    let v = ea
        .wait_for("signal", |v| v["id"] == json!(sig.to_string()))
        .await;
    assert!(v["at"].is_string(), "{v}");
    // A decision on it (an intent of the signal) is a change of the signal too.
    let intent = IntentId::new();
    api.store
        .intents()
        .create(NewIntent {
            id: intent,
            owner: a.user,
            sub_account: sub_a,
            trader: None,
            signal: Some(sig),
            source: IntentSource::Signal,
            idempotency_key: format!("live:{intent}"),
            kind: IntentKind::Entry,
            symbol: "MNQ1!".into(),
            contract: None,
            side: None,
            quantity: 1,
            settings: Settings::default(),
            plan: json!({}),
            skip_reason: Some("outside the trading window".into()),
        })
        .await
        .unwrap();
    ea.wait_for("signal", |v| v["id"] == json!(sig.to_string()))
        .await;
    // A position of A's sub-account.
    api.store
        .broker()
        .upsert_position(
            a.user,
            BrokerPosition {
                sub_account: sub_a,
                contract: "MNQZ6".into(),
                net_quantity: 2,
                average_price: Some(dec!(21000.25)),
                realized_pnl: None,
                broker_updated_at: Utc::now(),
            },
        )
        .await
        .unwrap();
    ea.wait_for("positions", |v| {
        v["sub_account_ids"] == json!([sub_a.to_string()])
    })
    .await;
    // The risk monitor's new figures of A's sub-account.
    risk_status::write(&api.bus, &snapshot(sub_a, a.user, Utc::now()))
        .await
        .unwrap();
    ea.wait_for("pnl", |v| {
        v["sub_account_ids"] == json!([sub_a.to_string()])
    })
    .await;

    // B saw none of it, and the old signal was never sent to anyone.
    let seen_by_b: Vec<(String, Value)> = {
        let mut out = Vec::new();
        while let Some(e) = eb.next(Duration::from_millis(1500)).await {
            out.push(e);
        }
        out
    };
    assert!(seen_by_b.is_empty(), "B saw A's changes: {seen_by_b:?}");
    assert!(
        ea.collect("signal", Duration::from_millis(1500))
            .await
            .iter()
            .all(|v| v["id"] != json!(old.to_string())),
    );
    // B's stream works: B's own signal arrives, and A does not see it.
    let sig_b = signal(&api, b.user, rec_b, Utc::now()).await;
    eb.wait_for("signal", |v| v["id"] == json!(sig_b.to_string()))
        .await;
    let a_after = ea.collect("signal", Duration::from_millis(2500)).await;
    assert!(
        a_after.iter().all(|v| v["id"] != json!(sig_b.to_string())),
        "A saw B's signal: {a_after:?}"
    );
}

#[tokio::test]
async fn streams_are_limited_per_user_and_a_dropped_one_frees_its_feed() {
    let api = TestApi::with_config(ApiConfig {
        event_streams_per_user: 2,
        ..ApiConfig::default()
    })
    .await;
    let a = api.login("limit@example.com").await;
    let b = api.login("other@example.com").await;
    let one = Events::open(&api, &a).await.unwrap();
    let two = Events::open(&api, &a).await.unwrap();
    let refused = Events::open(&api, &a).await.err().expect("a third stream");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2"),
        "{}",
        refused.body
    );
    // Another user is not limited by A's streams.
    let other = Events::open(&api, &b).await.unwrap();
    let hub = api.state.events.clone();
    assert_eq!(hub.streams(a.user), 2);
    assert_eq!(hub.users(), 2);
    drop(one);
    assert_eq!(
        hub.streams(a.user),
        1,
        "a dropped client's receiver is gone"
    );
    let _again = Events::open(&api, &a).await.unwrap();
    drop(two);
    drop(_again);
    drop(other);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.users() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "feeds without streams must stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A stream opened afterwards starts a new feed and works.
    let mut again = Events::open(&api, &a).await.unwrap();
    let rec = recorder(&api, &a, "after").await;
    let sig = signal(&api, a.user, rec, Utc::now()).await;
    again
        .wait_for("signal", |v| v["id"] == json!(sig.to_string()))
        .await;
    // Without a login there is no stream.
    let r = api
        .call(Method::GET, "/api/v1/events", Auth::None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Shutdown ends every stream.
    hub.close();
    let mut ended = false;
    for _ in 0..50 {
        if let Ok(None) = tokio::time::timeout(Duration::from_millis(200), again.body.frame()).await
        {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream ends at shutdown");
}

#[tokio::test]
async fn status_shows_the_risk_monitors_figures_with_their_age() {
    let api = TestApi::new().await;
    let a = api.login("risk@example.com").await;
    let b = api.login("risk-b@example.com").await;
    let sub = sub_account(&api, &a).await;
    let status = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&a), None)
        .await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.body[0]["sub_accounts"][0]["risk"],
        Value::Null,
        "no figures shared yet"
    );
    let mut snap = snapshot(sub, a.user, Utc::now());
    snap.rules = vec![jt_domain::propfirm::Distance {
        rule: jt_domain::propfirm::Rule::TrailingDrawdown,
        acts_at: dec!(48200),
        firm_limit: dec!(48000),
        current: dec!(49849.50),
        remaining: dec!(1649.50),
    }];
    risk_status::write(&api.bus, &snap).await.unwrap();
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&a), None)
        .await;
    let risk = &r.body[0]["sub_accounts"][0]["risk"];
    assert_eq!(risk["realized_pnl"], "-120.5", "{risk}");
    assert_eq!(risk["open_pnl"], "-30");
    assert_eq!(risk["max_daily_loss"], "500");
    assert_eq!(risk["max_daily_loss_distance"], "349.5");
    assert_eq!(risk["rules"][0]["rule"], "trailing_drawdown");
    assert_eq!(risk["rules"][0]["remaining"], "1649.5");
    assert_eq!(risk["stale"], false);
    assert_eq!(risk["breached"], false);
    // Figures the monitor stopped confirming are shown as stale.
    let old = Utc::now() - chrono::Duration::seconds(risk_status::STALE_AFTER_SECS + 5);
    risk_status::write(&api.bus, &snapshot(sub, a.user, old))
        .await
        .unwrap();
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&a), None)
        .await;
    assert_eq!(r.body[0]["sub_accounts"][0]["risk"]["stale"], true);
    // A value naming another owner is never shown (defence in depth beside the key).
    risk_status::write(&api.bus, &snapshot(sub, b.user, Utc::now()))
        .await
        .unwrap();
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&a), None)
        .await;
    assert_eq!(r.body[0]["sub_accounts"][0]["risk"], Value::Null);
    // And B has no login, so B's status lists nothing.
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&b), None)
        .await;
    assert_eq!(r.body, json!([]));
}

fn closed_trade(owner: UserId, recorder: RecorderId, exit: DateTime<Utc>, pnl: &str) -> PaperTrade {
    PaperTrade {
        id: jt_store::PaperTradeId::new(),
        owner,
        recorder,
        position: None,
        signal: None,
        symbol: "MNQ1!".into(),
        direction: jt_domain::Direction::Long,
        quantity: 1,
        entry_price: dec!(21000),
        entry_time: exit - chrono::Duration::minutes(5),
        exit_price: Some(dec!(21010)),
        exit_time: Some(exit),
        exit_reason: None,
        tp_price: None,
        sl_price: None,
        max_favorable_excursion: dec!(0),
        max_adverse_excursion: dec!(0),
        realized_pnl: Some(pnl.parse().unwrap()),
        realized_ticks: None,
        commission: dec!(0),
        status: PaperStatus::Closed,
    }
}

#[tokio::test]
async fn charts_draw_cumulative_paper_pnl_and_a_latency_histogram() {
    let api = TestApi::new().await;
    let a = api.login("charts@example.com").await;
    let b = api.login("charts-b@example.com").await;
    let rec = recorder(&api, &a, "Trend").await;
    let idle = recorder(&api, &a, "Idle").await;
    let rec_b = recorder(&api, &b, "B's").await;
    let sub = sub_account(&api, &a).await;
    let now = Utc::now();
    for (mins, pnl) in [(30, "25.50"), (20, "-10.25"), (10, "40")] {
        api.store
            .paper()
            .save_trade(
                a.user,
                &closed_trade(a.user, rec, now - chrono::Duration::minutes(mins), pnl),
            )
            .await
            .unwrap();
    }
    // Outside the window, and another user's: not on A's chart.
    api.store
        .paper()
        .save_trade(
            a.user,
            &closed_trade(a.user, rec, now - chrono::Duration::days(40), "1000"),
        )
        .await
        .unwrap();
    api.store
        .paper()
        .save_trade(b.user, &closed_trade(b.user, rec_b, now, "7"))
        .await
        .unwrap();
    let r = api
        .call(Method::GET, "/api/v1/charts/pnl", Auth::Cookie(&a), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let recs = r.body["recorders"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "both of A's recorders, none of B's");
    let trend = recs
        .iter()
        .find(|x| x["recorder_id"] == json!(rec.to_string()))
        .unwrap();
    let cumulative: Vec<&str> = trend["paper"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["cumulative"].as_str().unwrap())
        .collect();
    assert_eq!(
        cumulative,
        ["25.5", "15.25", "55.25"],
        "oldest first, exact"
    );
    assert_eq!(trend["paper_total"], "55.25");
    let idle_row = recs
        .iter()
        .find(|x| x["recorder_id"] == json!(idle.to_string()))
        .unwrap();
    assert_eq!(idle_row["paper"], json!([]));
    assert_eq!(r.body["truncated"], false);
    // One recorder; another user's is "not found"; a bad window names the parameter.
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/charts/pnl?recorder_id={rec}"),
            Auth::Cookie(&a),
            None,
        )
        .await;
    assert_eq!(r.body["recorders"].as_array().unwrap().len(), 1);
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/charts/pnl?recorder_id={rec_b}"),
            Auth::Cookie(&a),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(
            Method::GET,
            "/api/v1/charts/pnl?since=2026-12-01T00:00:00Z&until=2026-11-01T00:00:00Z",
            Auth::Cookie(&a),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), Some("since"));
    let r = api
        .call(
            Method::GET,
            "/api/v1/charts/latency?window=1",
            Auth::Cookie(&a),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown parameter");

    // Latency: three signal intents answered after 40, 180 and 3,000 ms; one never sent.
    for (ms, answered) in [(40, true), (180, true), (3_000, true), (0, false)] {
        let received = now - chrono::Duration::minutes(5);
        let sig = signal(&api, a.user, rec, received).await;
        let intent = IntentId::new();
        api.store
            .intents()
            .create(NewIntent {
                id: intent,
                owner: a.user,
                sub_account: sub,
                trader: None,
                signal: Some(sig),
                source: IntentSource::Signal,
                idempotency_key: format!("lat:{intent}"),
                kind: IntentKind::Entry,
                symbol: "MNQ1!".into(),
                contract: None,
                side: None,
                quantity: 1,
                settings: Settings::default(),
                plan: json!({}),
                skip_reason: (!answered).then(|| "filtered".to_string()),
            })
            .await
            .unwrap();
        if answered {
            api.store
                .intents()
                .record_execution(NewExecution {
                    id: ExecutionId::new(),
                    owner: a.user,
                    intent,
                    attempt: 1,
                    started_at: received + chrono::Duration::milliseconds(ms / 2),
                    finished_at: Some(received + chrono::Duration::milliseconds(ms)),
                    outcome: ExecutionOutcome::Accepted,
                    broker_order_ids: vec!["1".into()],
                    fill_price: None,
                    filled_quantity: None,
                    error_kind: None,
                    failure_reason: None,
                })
                .await
                .unwrap();
        }
    }
    let r = api
        .call(
            Method::GET,
            "/api/v1/charts/latency",
            Auth::Cookie(&a),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 3, "{}", r.body);
    let counts: Vec<u64> = r.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]);
    assert_eq!(r.body["p50_ms"], 180);
    assert_eq!(r.body["max_ms"], 3000);
    // B has none of A's latencies.
    let r = api
        .call(
            Method::GET,
            "/api/v1/charts/latency",
            Auth::Cookie(&b),
            None,
        )
        .await;
    assert_eq!(r.body["count"], 0);
    assert_eq!(r.body["p50_ms"], Value::Null);
}
