//! Sessions, tokens, penalties and rate limits, as a documented client meets them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{AdminHttp, Frame, Rest, Ws, parse_frame};
use jt_sim::SimConfig;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

async fn login_raw(sim: &jt_sim::Sim, body: Value) -> reqwest::Response {
    common::http()
        .post(format!("{}/v1/auth/accesstokenrequest", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_third_session_closes_the_oldest_and_revokes_its_token() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("sam", &["S1"]))
        .unwrap();
    let first = Rest::login(&sim, "sam").await;
    let mut ws = Ws::authorized(&sim.ws_url(), &first.token).await;
    let second = Rest::login(&sim, "sam").await;
    assert_eq!(first.get_raw("account/list").await.status(), 200);
    let third = Rest::login(&sim, "sam").await;
    // The oldest session's token is revoked…
    assert_eq!(first.get_raw("account/list").await.status(), 401);
    assert_eq!(second.get_raw("account/list").await.status(), 200);
    assert_eq!(third.get_raw("account/list").await.status(), 200);
    // …and its socket is closed with a shutdown event.
    let mut reason = None;
    let mut closed = false;
    while let Some(t) = ws.raw_text(T).await {
        match parse_frame(&t) {
            Frame::Array(items) => {
                for m in items {
                    if m["e"] == "shutdown" {
                        reason = m["d"]["reasonCode"].as_str().map(str::to_string);
                    }
                }
            }
            Frame::Close(_) => closed = true,
            _ => {}
        }
    }
    assert_eq!(reason.as_deref(), Some("ConnectionQuotaReached"));
    assert!(closed);
    // A socket may not authorize with the revoked token.
    let mut late = Ws::connect(&sim.ws_url()).await;
    late.send(&format!("authorize\n1\n\n{}", first.token)).await;
    assert_eq!(late.response(1, T).await.unwrap()["s"], 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_tokens_get_401_renewal_extends_and_authorized_sockets_stay_open() {
    let sim = common::sim_with(SimConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    sim.admin()
        .create_user(&common::user("tess", &["T1"]))
        .unwrap();
    let mut rest = Rest::login(&sim, "tess").await;
    let mut ws = Ws::authorized(&sim.ws_url(), &rest.token).await;
    ws.request("user/syncrequest", "", "{}").await;

    // Renew: a new token in the same session, a later expiry.
    let renewed = rest.get("auth/renewAccessToken").await;
    assert!(
        renewed["expirationTime"].as_str().unwrap()
            >= rest.login["expirationTime"].as_str().unwrap()
    );
    assert_ne!(renewed["accessToken"], rest.login["accessToken"]);
    let sessions = AdminHttp::new(&sim).get("users").await;
    assert_eq!(
        sessions[0]["sessions"].as_array().unwrap().len(),
        1,
        "renewal opens no session"
    );

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let r = rest.get_raw("account/list").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "\"Expired Access Token\"");
    // The socket authorized earlier still works (heartbeats kept it alive).
    ws.heartbeat().await;
    let list = ws.request("account/list", "", "").await;
    assert_eq!(list["s"], 200);
    // The renewed token has its own expiry, long gone too; log in again.
    rest.token = renewed["accessToken"].as_str().unwrap().to_string();
    assert_eq!(rest.get_raw("account/list").await.status(), 401);
    let fresh = Rest::login(&sim, "tess").await;
    assert_eq!(fresh.get_raw("account/list").await.status(), 200);

    // The fault: expire now.
    AdminHttp::new(&sim)
        .post("faults", json!({"kind": "expireToken", "user": "tess"}))
        .await;
    assert_eq!(fresh.get_raw("account/list").await.status(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn penalty_tickets_work_after_the_wait_over_rest_and_socket() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("pat", &["P1"]))
        .unwrap();
    let rest = Rest::login(&sim, "pat").await;
    let admin = AdminHttp::new(&sim);
    admin
        .post(
            "limits",
            json!({"userBudget": 2, "penaltySecs": 1, "windowSecs": 60}),
        )
        .await;
    let (_, symbol) = rest.contract("MES").await;
    let order = json!({"accountSpec": "P1", "action": "Buy", "symbol": symbol, "orderQty": 1, "orderType": "Market", "isAutomated": true});
    // The budget covers the contract lookup and this order…
    let first = rest.post("order/placeorder", order.clone()).await;
    assert!(first["orderId"].is_i64(), "{first}");
    // …the next request gets a ticket instead (HTTP 200, not handled).
    let r = rest.post("order/placeorder", order.clone()).await;
    let ticket = r["p-ticket"].as_str().expect("p-ticket").to_string();
    assert_eq!(r["p-time"], 1);
    assert!(r.get("orderId").is_none());
    // Too early: the same ticket comes back.
    let mut with_ticket = order.clone();
    with_ticket["p-ticket"] = json!(ticket);
    let early = rest.post("order/placeorder", with_ticket.clone()).await;
    assert_eq!(early["p-ticket"], json!(ticket));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ok = rest.post("order/placeorder", with_ticket).await;
    assert!(ok["orderId"].is_i64(), "{ok}");
    let orders = admin.get("orders?account=P1").await;
    assert_eq!(
        orders.as_array().unwrap().len(),
        2,
        "only the first and the resent order exist"
    );

    // Over the socket the ticket is in `d` of a 200 response.
    let mut ws = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let r = ws.request("account/list", "", "").await;
    assert_eq!(r["s"], 200);
    assert!(r["d"]["p-ticket"].is_string(), "{r}");
    sim.shutdown().await;
}

#[tokio::test]
async fn warned_with_423_then_locked_out_with_an_empty_429() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("lou", &["L1"]))
        .unwrap();
    let rest = Rest::login(&sim, "lou").await;
    AdminHttp::new(&sim)
        .post(
            "limits",
            json!({"warnLimit": 2, "hardLimit": 3, "lockoutSecs": 60}),
        )
        .await;
    assert_eq!(rest.get_raw("account/list").await.status(), 200);
    assert_eq!(rest.get_raw("account/list").await.status(), 200);
    assert_eq!(rest.get_raw("account/list").await.status(), 423);
    let r = rest.get_raw("account/list").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-length"], "0");
    assert!(r.text().await.unwrap().is_empty());
    assert_eq!(rest.get_raw("account/list").await.status(), 429);
    // Over the socket: s = 429, no d.
    let mut ws = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let r = ws.request("account/list", "", "").await;
    assert_eq!(r, json!({"s": 429, "i": r["i"]}));
    sim.shutdown().await;
}

#[tokio::test]
async fn repeated_bad_logins_switch_to_captcha() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("cap", &["X1"]))
        .unwrap();
    AdminHttp::new(&sim)
        .post(
            "limits",
            json!({"failedLoginsBeforeCaptcha": 2, "captchaSecs": 3600}),
        )
        .await;
    for _ in 0..2 {
        let v: Value = login_raw(&sim, json!({"name": "cap", "password": "nope"}))
            .await
            .json()
            .await
            .unwrap();
        assert!(v["errorText"].is_string());
    }
    // Even the right password now gets the captcha penalty.
    let v: Value = login_raw(&sim, json!({"name": "cap", "password": "pw"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["p-captcha"], true, "{v}");
    assert!(v["p-time"].as_u64().unwrap() > 3000);
    assert!(v.get("accessToken").is_none());
    // Resetting faults and limits clears it.
    AdminHttp::new(&sim).delete("faults").await;
    let v: Value = login_raw(&sim, json!({"name": "cap", "password": "pw"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["accessToken"].is_string(), "{v}");
    sim.shutdown().await;
}

#[tokio::test]
async fn token_requests_beyond_their_budget_get_a_captcha_ticket() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("burst", &["B1"]))
        .unwrap();
    AdminHttp::new(&sim)
        .post("limits", json!({"authBudget": 1}))
        .await;
    let v: Value = login_raw(&sim, json!({"name": "burst", "password": "pw"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["accessToken"].is_string());
    let v: Value = login_raw(&sim, json!({"name": "burst", "password": "pw"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["p-ticket"].is_string());
    assert_eq!(v["p-captcha"], true);
    sim.shutdown().await;
}

#[tokio::test]
async fn sockets_opening_too_many_at_once_are_answered_429_and_counted() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("rush", &["R1"]))
        .unwrap();
    let rest = Rest::login(&sim, "rush").await;
    let admin = AdminHttp::new(&sim);
    admin
        .post(
            "limits",
            json!({"connectsInFlight": 2, "connectsPerWindow": 3, "connectWindowMs": 60000}),
        )
        .await;
    // Two sockets opened and not yet authorized hold both slots: the third upgrade is refused
    // with an empty 429, as Tradovate answers a reconnect storm.
    let mut first = Ws::connect(&sim.ws_url()).await;
    let _second = Ws::connect(&sim.ws_url()).await;
    let refused = tokio_tungstenite::connect_async(sim.ws_url())
        .await
        .unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 429);
            assert!(r.body().as_ref().is_none_or(Vec::is_empty));
        }
        other => panic!("expected an HTTP 429, got {other:?}"),
    }
    // Once the first is authorized its slot is free again; the window (3 attempts, the refused
    // one included) is spent, so the next is refused all the same.
    first.send(&format!("authorize\n0\n\n{}", rest.token)).await;
    assert_eq!(first.response(0, T).await.unwrap()["s"], 200);
    assert!(
        tokio_tungstenite::connect_async(sim.ws_url())
            .await
            .is_err()
    );
    let stats = admin.get("limits/connects").await;
    assert_eq!(stats["refused"], 2, "{stats}");
    assert_eq!(stats["maxInFlight"], 2, "{stats}");
    // Without a window only the attempts in flight count.
    admin.post("limits", json!({"connectsInFlight": 2})).await;
    let _third = Ws::authorized(&sim.ws_url(), &rest.token).await;
    assert_eq!(sim.admin().connect_stats().refused, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn oauth_codes_exchange_for_tokens() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("oa", &["O1"]))
        .unwrap();
    let code = sim.admin().oauth_code("oa").unwrap();
    let http = common::http();
    let url = format!("{}/v1/auth/oauthtoken", sim.base_url());
    let body = json!({"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost/cb"});
    let v: Value = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_i64().unwrap() > 5000);
    let r = http
        .get(format!("{}/v1/account/list", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A code is good once.
    let v: Value = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"], "invalid_grant");
    sim.shutdown().await;
}
