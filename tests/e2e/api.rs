//! The REST API end to end (issue 19): a new user onboards over HTTP — logs in, adds a
//! simulator broker account, tests it, creates a recorder with a two-leg take-profit, links
//! two traders with different multipliers, posts the printed alert to the printed webhook URL —
//! and both sub-accounts hold the right orders at the simulator, and the signal's history
//! shows both decisions with their timelines. Then manual trades (a repeated Idempotency-Key
//! trades once), flatten and the kill switch, acting at the simulator.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use jt_e2e::admin::{NewUser as SimUser, OrderRecord};
use jt_e2e::api::{Client, serve_api};
use jt_e2e::{Options, Platform, RiskService, is_working};
use jt_store::Role;
use jt_store::repo::auth::NewUser;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn orders(p: &Platform, account: &str) -> Vec<OrderRecord> {
    let mut o = p.sim.admin().orders(Some(account)).unwrap();
    o.sort_by_key(|o| (o.received_us, o.id));
    o
}

fn net(p: &Platform, account: &str) -> i64 {
    p.sim
        .admin()
        .positions(Some(account))
        .unwrap()
        .iter()
        .map(|x| x.net_pos)
        .sum()
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the intent is final (or accepted: working at the broker) and returns it.
async fn settled(c: &Client, intent: &str) -> Value {
    wait_for(&format!("intent {intent}"), async || {
        // 404 until the executor has taken the intent off the queue and recorded it.
        let (status, v) = c
            .call(
                reqwest::Method::GET,
                &format!("/intents/{intent}"),
                None,
                &[],
            )
            .await;
        (status == 200 && v["decision"] != "pending").then_some(v)
    })
    .await
}

#[tokio::test]
async fn a_new_user_onboards_over_http_and_an_alert_reaches_both_traders() {
    let p = Platform::start(Options::default()).await;
    let base = serve_api(&p).await;
    // What carries the kill switch out.
    let risk = RiskService::start(&p).await;

    // A fresh user (what `jt admin create-user` does) with a simulator login of their own.
    p.store
        .users()
        .register(NewUser {
            email: "onboard@e2e.test".into(),
            display_name: None,
            password: jt_store::Secret::new("onboarding password"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    p.sim
        .admin()
        .create_user(&SimUser {
            name: "onboard".into(),
            password: "onboard-sim-password".into(),
            accounts: vec!["ON1".into(), "ON2".into()],
            balance: Some(Decimal::from(100_000)),
            ..SimUser::default()
        })
        .unwrap();
    let c = Client::login(&base, "onboard@e2e.test", "onboarding password").await;

    let (s, account) = c
        .post(
            "/broker-accounts",
            json!({"label": "Simulator", "broker": "sim", "environment": "demo",
                   "username": "onboard", "credentials": {"password": "onboard-sim-password"}}),
        )
        .await;
    assert_eq!(s, 201, "{account}");
    let account_id = account["id"].as_str().unwrap();
    let (s, tested) = c
        .post(&format!("/broker-accounts/{account_id}/test"), json!(null))
        .await;
    assert_eq!(s, 200, "{tested}");
    let subs = tested["sub_accounts"].as_array().unwrap();
    let mut names: Vec<&str> = subs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ON1", "ON2"]);
    let sub_of = |name: &str| {
        subs.iter().find(|s| s["name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (on1, on2) = (sub_of("ON1"), sub_of("ON2"));

    let (s, recorder) = c
        .post(
            "/recorders",
            json!({"name": "MNQ two legs", "symbol": "MNQ1!",
                   "settings": {"initial_position_size": 2,
                                "tp_targets": [{"value": "20", "trim": "1"}, {"value": "40", "trim": "1"}],
                                "sl_enabled": true, "sl_amount": "30"}}),
        )
        .await;
    assert_eq!(s, 201, "{recorder}");
    let recorder_id = recorder["id"].as_str().unwrap();
    for (sub, m) in [(&on1, "1"), (&on2, "2")] {
        let (s, t) = c
            .post(
                "/traders",
                json!({"recorder_id": recorder_id, "sub_account_id": sub,
                       "settings": {"multiplier": m}}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        assert_eq!(t["settings"]["multiplier"]["value"], m);
        assert_eq!(t["settings"]["tp_targets"]["inherited"], true);
    }

    // The printed alert, as TradingView fills it in, posted to the printed URL.
    let message = recorder["alert_message"]
        .as_str()
        .unwrap()
        .replace("{{strategy.order.action}}", "buy")
        .replace("{{ticker}}", "MNQ1!")
        .replace("{{strategy.order.contracts}}", "2")
        .replace("{{strategy.order.price}}", "21000")
        .replace("{{strategy.market_position}}", "long")
        .replace("{{strategy.prev_market_position}}", "flat")
        .replace("{{timenow}}", &chrono::Utc::now().to_rfc3339());
    let url = recorder["webhook_url"].as_str().unwrap();
    assert!(url.starts_with(&p.ingest_url), "{url}");
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "text/plain")
        .body(message)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Both sub-accounts hold the right orders: entry 2 × multiplier, two take-profit legs of
    // 1 × multiplier each, a stop for the whole position.
    for (name, m) in [("ON1", 1u32), ("ON2", 2u32)] {
        let o = wait_for(&format!("orders on {name}"), async || {
            let o = orders(&p, name);
            (o.iter().filter(|o| is_working(o)).count() >= 3).then_some(o)
        })
        .await;
        let entries: Vec<_> = o
            .iter()
            .filter(|o| o.order_type == "Market" && o.action == "Buy")
            .collect();
        assert_eq!(entries.len(), 1, "{name}: {o:#?}");
        assert_eq!(entries[0].qty, 2 * m, "{name}");
        let mut legs: Vec<u32> = o
            .iter()
            .filter(|o| o.order_type == "Limit" && o.action == "Sell")
            .map(|o| o.qty)
            .collect();
        legs.sort_unstable();
        assert_eq!(legs, vec![m, m], "{name}: {o:#?}");
        let stop: u32 = o
            .iter()
            .filter(|o| o.action == "Sell" && o.order_type.contains("Stop"))
            .map(|o| o.qty)
            .sum();
        assert_eq!(stop, 2 * m, "{name}");
        assert_eq!(net(&p, name), i64::from(2 * m));
    }

    // The history shows the signal with both decisions and their timelines.
    let signals = c.get(&format!("/signals?recorder_id={recorder_id}")).await;
    let items = signals["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{signals}");
    let signal_id = items[0]["id"].as_str().unwrap();
    let signal = wait_for("both decisions settled", async || {
        let s = c.get(&format!("/signals/{signal_id}")).await;
        let d = s["decisions"].as_array().unwrap();
        (d.len() == 2 && d.iter().all(|d| d["decision"] != "pending")).then_some(s)
    })
    .await;
    assert_eq!(signal["outcome"], "accepted");
    for d in signal["decisions"].as_array().unwrap() {
        assert_eq!(d["decision"], "executed", "{d}");
        let stages: Vec<&str> = d["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        for stage in ["received", "queued", "attempt_started", "attempt_finished"] {
            assert!(stages.contains(&stage), "{stage} in {stages:?}");
        }
        assert_eq!(stages[0], "received");
        assert!(d["timeline"][0]["ms_since_received"] == 0);
        assert!(!d["executions"].as_array().unwrap().is_empty());
    }
    let quantities: Vec<u64> = {
        let mut q: Vec<u64> = signal["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["quantity"].as_u64().unwrap())
            .collect();
        q.sort_unstable();
        q
    };
    assert_eq!(quantities, vec![2, 4]);
    let execs = c.get(&format!("/sub-accounts/{on2}/executions")).await;
    assert_eq!(execs.as_array().unwrap().len(), 1);

    // A manual trade sent twice with one Idempotency-Key trades once.
    let manual = json!({"symbol": "MNQ1!", "action": "entry", "direction": "long", "qty": 1});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, q) = c
            .call(
                reqwest::Method::POST,
                &format!("/sub-accounts/{on1}/orders"),
                Some(manual.clone()),
                &[("idempotency-key", "manual-once")],
            )
            .await;
        assert_eq!(s, 202, "{q}");
        ids.push(q["intent_ids"][0].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    let intent = settled(&c, &ids[0]).await;
    assert_eq!(intent["decision"], "executed", "{intent}");
    assert_eq!(intent["source"], "manual");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let manual_buys = orders(&p, "ON1")
        .iter()
        .filter(|o| o.order_type == "Market" && o.action == "Buy" && o.qty == 1)
        .count();
    assert_eq!(manual_buys, 1, "one trade for one key");
    assert_eq!(net(&p, "ON1"), 3);

    // Flatten one sub-account: ON2 is flat with nothing working; ON1 untouched.
    let (s, q) = c
        .post(
            &format!("/sub-accounts/{on2}/flatten"),
            json!({"reason": "e2e"}),
        )
        .await;
    assert_eq!(s, 202, "{q}");
    settled(&c, q["intent_ids"][0].as_str().unwrap()).await;
    wait_for("ON2 flat", async || {
        (net(&p, "ON2") == 0 && !orders(&p, "ON2").iter().any(is_working)).then_some(())
    })
    .await;
    assert_eq!(net(&p, "ON1"), 3);

    // The kill switch: everything flat, and a new manual entry is refused until released.
    let (s, k) = c
        .call(
            reqwest::Method::PUT,
            "/kill",
            Some(json!({"engaged": true, "reason": "e2e"})),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{k}");
    for id in k["flatten"]["intent_ids"].as_array().unwrap() {
        settled(&c, id.as_str().unwrap()).await;
    }
    wait_for("ON1 flat", async || {
        (net(&p, "ON1") == 0 && !orders(&p, "ON1").iter().any(is_working)).then_some(())
    })
    .await;
    let (_, q) = c
        .call(
            reqwest::Method::POST,
            &format!("/sub-accounts/{on1}/orders"),
            Some(manual.clone()),
            &[("idempotency-key", "while-killed")],
        )
        .await;
    let refused = settled(&c, q["intent_ids"][0].as_str().unwrap()).await;
    assert!(
        ["skipped", "rejected", "failed"].contains(&refused["decision"].as_str().unwrap()),
        "an entry under the kill switch is refused: {refused}"
    );
    assert!(
        refused["reason"].as_str().unwrap().contains("kill"),
        "{refused}"
    );
    assert_eq!(net(&p, "ON1"), 0);

    // Released, then ON1 switched off: its entries are skipped (the switch, not the kill).
    let (s, _) = c
        .call(
            reqwest::Method::PUT,
            "/kill",
            Some(json!({"engaged": false})),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let (s, off) = c
        .call(
            reqwest::Method::PATCH,
            &format!("/sub-accounts/{on1}"),
            Some(json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!((s, off["enabled"].as_bool()), (200, Some(false)));
    let (_, q) = c
        .call(
            reqwest::Method::POST,
            &format!("/sub-accounts/{on1}/orders"),
            Some(manual.clone()),
            &[("idempotency-key", "while-disabled")],
        )
        .await;
    let skipped = settled(&c, q["intent_ids"][0].as_str().unwrap()).await;
    assert_eq!(skipped["decision"], "skipped", "{skipped}");
    assert!(
        skipped["reason"].as_str().unwrap().contains("disabled"),
        "{skipped}"
    );
    assert_eq!(net(&p, "ON1"), 0);
    risk.stop().await;
}

/// A Webull account added over HTTP (app key and secret) and tested: the API reaches the
/// simulator's signed Webull surface and stores its account; a wrong secret is refused with
/// the broker's reason.
#[tokio::test]
async fn a_webull_account_is_added_and_tested_over_http() {
    let p = Platform::start(Options::default()).await;
    let base = serve_api(&p).await;
    p.store
        .users()
        .register(NewUser {
            email: "webull@e2e.test".into(),
            display_name: None,
            password: jt_store::Secret::new("webull user password"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    let created = p
        .sim
        .admin()
        .create_user(&SimUser {
            name: "wb-http".into(),
            password: "unused".into(),
            accounts: vec!["WBH1".into()],
            sec: Some("wb-http-secret".into()),
            protocol: jt_sim::core::model::Protocol::Webull,
            ..SimUser::default()
        })
        .unwrap();
    let key = created.api_key.clone().unwrap();
    let c = Client::login(&base, "webull@e2e.test", "webull user password").await;
    let add = async |secret: &str| {
        let (s, account) = c
            .post(
                "/broker-accounts",
                json!({"label": "Webull", "broker": "webull", "environment": "demo",
                       "credentials": {"api_key": key, "api_secret": secret}}),
            )
            .await;
        assert_eq!(s, 201, "{account}");
        account["id"].as_str().unwrap().to_string()
    };
    let good = add("wb-http-secret").await;
    let (s, tested) = c
        .post(&format!("/broker-accounts/{good}/test"), json!(null))
        .await;
    assert_eq!(s, 200, "{tested}");
    let subs = tested["sub_accounts"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{tested}");
    assert_eq!(subs[0]["name"], "WBH1");

    let bad = add("not-the-secret").await;
    let (s, refused) = c
        .post(&format!("/broker-accounts/{bad}/test"), json!(null))
        .await;
    assert!((400..500).contains(&s), "{s} {refused}");
    p.stop().await;
}
