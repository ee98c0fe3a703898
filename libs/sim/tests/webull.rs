//! The Webull surface over HTTP: the signature refused as documented (wrong signature, stale
//! timestamp, reused nonce, unknown and expired app keys), accounts, place/replace/cancel,
//! open orders, order detail, positions, and the faults (rate limit, lost answer).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use jt_sim::faults::{AmbiguousMode, FaultKind, FaultSpec};
use jt_sim::webull::WebullConfig;
use jt_sim::webull::sign::{Signed, expected};
use jt_sim::{Sim, SimConfig};
use rust_decimal_macros::dec;
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

async fn sim_with(webull: WebullConfig) -> Sim {
    Sim::start(SimConfig {
        webull,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts on loopback")
}

/// Creates a Webull login through the admin HTTP API; returns (app key, account ids).
async fn wb_user(sim: &Sim, name: &str, accounts: &[&str]) -> (String, Vec<String>) {
    let r: Value = http()
        .post(format!("{}/sim/users", sim.base_url()))
        .json(&json!({"name": name, "password": "pw", "sec": "app-secret", "accounts": accounts, "protocol": "webull"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = r["apiKey"]
        .as_str()
        .expect("a Webull login gets an app key");
    let ids = r["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap().to_string())
        .collect();
    (key.to_string(), ids)
}

struct Wb {
    http: reqwest::Client,
    base: String,
    host: String,
    key: String,
    secret: String,
}

struct Sent {
    nonce: String,
    timestamp: String,
    signature: Option<String>,
}

impl Wb {
    fn new(sim: &Sim, key: &str) -> Self {
        Wb {
            http: http(),
            base: sim.webull_url(),
            host: sim.addr().to_string(),
            key: key.into(),
            secret: "app-secret".into(),
        }
    }

    fn fresh() -> Sent {
        Sent {
            nonce: uuid(),
            timestamp: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            signature: None,
        }
    }

    async fn send_with(
        &self,
        post: bool,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        s: &Sent,
    ) -> (u16, Value) {
        self.try_send(post, path, query, body, s).await.unwrap()
    }

    async fn try_send(
        &self,
        post: bool,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        s: &Sent,
    ) -> Result<(u16, Value), reqwest::Error> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let h = Signed {
            app_key: self.key.clone(),
            timestamp: s.timestamp.clone(),
            algorithm: "HMAC-SHA1".into(),
            version: "1.0".into(),
            nonce: s.nonce.clone(),
            host: self.host.clone(),
        };
        let q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let sig = s
            .signature
            .clone()
            .unwrap_or_else(|| expected(&self.secret, path, &q, &h, body.as_bytes()));
        let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{}{path}?{}", self.base, qs.join("&"));
        let rb = if post {
            self.http.post(url).body(body.clone())
        } else {
            self.http.get(url)
        };
        let r = rb
            .header("content-type", "application/json")
            .header("x-app-key", &self.key)
            .header("x-timestamp", &s.timestamp)
            .header("x-signature-algorithm", "HMAC-SHA1")
            .header("x-signature-version", "1.0")
            .header("x-signature-nonce", &s.nonce)
            .header("x-signature", sig)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        self.send_with(false, path, query, None, &Self::fresh())
            .await
    }

    async fn post(&self, path: &str, account: &str, body: Value) -> (u16, Value) {
        self.send_with(
            true,
            path,
            &[("account_id", account)],
            Some(&body),
            &Self::fresh(),
        )
        .await
    }

    async fn place(&self, account: &str, order: Value) -> (u16, Value) {
        self.post(
            "/openapi/account/orders/place",
            account,
            json!({ "new_orders": [order] }),
        )
        .await
    }
}

fn uuid() -> String {
    use rand::Rng;
    format!("{:032x}", rand::rng().random::<u128>())
}

fn front(sim: &Sim) -> String {
    sim.exchange().catalog.front("MNQ").unwrap().name.clone()
}

#[tokio::test]
async fn the_signature_is_checked_as_documented() {
    let sim = sim_with(WebullConfig::default()).await;
    let (key, _) = wb_user(&sim, "wb-sig", &["WB1"]).await;
    let wb = Wb::new(&sim, &key);

    let (status, accounts) = wb.get("/openapi/account/list", &[]).await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts[0]["account_number"], "WB1");
    assert_eq!(accounts[0]["account_type"], "FUTURES");

    let mut wrong = Wb::fresh();
    wrong.signature = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
    let (status, body) = wb
        .send_with(false, "/openapi/account/list", &[], None, &wrong)
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("INVALID_SIGNATURE"))
    );

    let mut other_secret = Wb::new(&sim, &key);
    other_secret.secret = "not-the-secret".into();
    let (status, body) = other_secret.get("/openapi/account/list", &[]).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("INVALID_SIGNATURE"))
    );

    let mut stale = Wb::fresh();
    stale.timestamp = (chrono::Utc::now() - chrono::Duration::minutes(6))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (status, body) = wb
        .send_with(false, "/openapi/account/list", &[], None, &stale)
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("TIMESTAMP_EXPIRED"))
    );

    let once = Wb::fresh();
    let (status, _) = wb
        .send_with(false, "/openapi/account/list", &[], None, &once)
        .await;
    assert_eq!(status, 200);
    let (status, body) = wb
        .send_with(false, "/openapi/account/list", &[], None, &once)
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("DUPLICATE_NONCE"))
    );

    let stranger = Wb::new(&sim, "no-such-key");
    let (status, body) = stranger.get("/openapi/account/list", &[]).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("INVALID_APP_KEY"))
    );

    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::ExpireToken,
            user: Some("wb-sig".into()),
            account: None,
            endpoint: None,
            count: None,
        })
        .unwrap();
    let (status, body) = wb.get("/openapi/account/list", &[]).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("APP_KEY_EXPIRED"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn orders_are_placed_replaced_cancelled_and_read_back_by_client_order_id() {
    let sim = sim_with(WebullConfig::default()).await;
    let (key, ids) = wb_user(&sim, "wb-orders", &["WB2"]).await;
    let acct = ids[0].as_str();
    let wb = Wb::new(&sim, &key);
    let sym = front(&sim);
    sim.admin().set_price(&sym, dec!(20000)).unwrap();

    // A resting limit: open, then replaced, then cancelled.
    let (status, placed) = wb
        .place(
            acct,
            json!({"client_order_id": "lim-1", "instrument_type": "FUTURES", "symbol": sym, "market": "US",
                   "side": "BUY", "order_type": "LIMIT", "quantity": "2", "limit_price": "19990",
                   "time_in_force": "GTC", "entrust_type": "QTY"}),
        )
        .await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["client_order_id"], "lim-1");
    let (status, open) = wb
        .get("/openapi/account/orders/list-open", &[("account_id", acct)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["status"], "SUBMITTED");
    assert_eq!(open[0]["limit_price"], "19990");
    assert_eq!(open[0]["time_in_force"], "GTC");

    let (status, again) = wb
        .place(
            acct,
            json!({"client_order_id": "lim-1", "symbol": sym, "side": "BUY", "order_type": "MARKET", "quantity": "1"}),
        )
        .await;
    assert_eq!(
        (status, again["error_code"].as_str()),
        (400, Some("DUPLICATE_CLIENT_ORDER_ID"))
    );

    let (status, _) = wb
        .post(
            "/openapi/account/orders/replace",
            acct,
            json!({"modify_orders": [{"client_order_id": "lim-1", "quantity": "3", "limit_price": "19985"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, detail) = wb
        .get(
            "/openapi/account/orders/detail",
            &[("account_id", acct), ("client_order_id", "lim-1")],
        )
        .await;
    assert_eq!(
        (detail["quantity"].as_str(), detail["limit_price"].as_str()),
        (Some("3"), Some("19985"))
    );

    let (status, _) = wb
        .post(
            "/openapi/account/orders/cancel",
            acct,
            json!({"client_order_id": "lim-1"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, detail) = wb
        .get(
            "/openapi/account/orders/detail",
            &[("account_id", acct), ("client_order_id", "lim-1")],
        )
        .await;
    assert_eq!(detail["status"], "CANCELLED");
    let (status, body) = wb
        .post(
            "/openapi/account/orders/cancel",
            acct,
            json!({"client_order_id": "lim-1"}),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("ORDER_NOT_WORKING"))
    );
    let (status, body) = wb
        .get(
            "/openapi/account/orders/detail",
            &[("account_id", acct), ("client_order_id", "nope")],
        )
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("ORDER_NOT_FOUND"))
    );

    // A market buy fills: a long position, and a protective stop rests.
    let (status, _) = wb
        .place(
            acct,
            json!({"client_order_id": "mkt-1", "symbol": sym, "side": "BUY", "order_type": "MARKET", "quantity": "2"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, detail) = wb
        .get(
            "/openapi/account/orders/detail",
            &[("account_id", acct), ("client_order_id", "mkt-1")],
        )
        .await;
    assert_eq!(
        (
            detail["status"].as_str(),
            detail["filled_quantity"].as_str()
        ),
        (Some("FILLED"), Some("2"))
    );
    let (_, positions) = wb
        .get("/openapi/account/positions", &[("account_id", acct)])
        .await;
    assert_eq!(positions[0]["symbol"], sym.as_str());
    assert_eq!(positions[0]["position_side"], "LONG");
    assert_eq!(positions[0]["quantity"], "2");
    assert_eq!(positions[0]["cost_price"], "20000");
    let (status, stop) = wb
        .place(
            acct,
            json!({"client_order_id": "stp-1", "symbol": sym, "side": "SELL", "order_type": "STOP_LOSS", "quantity": "2", "stop_price": "19950"}),
        )
        .await;
    assert_eq!(status, 200, "{stop}");
    sim.admin().set_price(&sym, dec!(19940)).unwrap();
    let (_, positions) = wb
        .get("/openapi/account/positions", &[("account_id", acct)])
        .await;
    assert_eq!(positions, json!([]));

    // The order history lists every order, working or finished, by client order id, a page
    // at a time after the last client order id of the previous page.
    let history = async |page: &str, after: Option<&str>| -> Vec<(String, String)> {
        let mut q = vec![("account_id", acct), ("page_size", page)];
        if let Some(a) = after {
            q.push(("last_client_order_id", a));
        }
        let (status, body) = wb.get("/openapi/account/orders/history", &q).await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["client_order_id"].as_str().unwrap().to_string(),
                    o["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let all = history("100", None).await;
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["lim-1", "mkt-1", "stp-1"], "{all:?}");
    assert_eq!(all[1].1, "FILLED");
    assert_eq!(all[2].1, "FILLED");
    assert_eq!(history("2", None).await.len(), 2);
    assert_eq!(
        history("2", Some("mkt-1")).await,
        vec![("stp-1".to_string(), "FILLED".to_string())]
    );

    // Another login's account is not reachable.
    let (other_key, _) = wb_user(&sim, "wb-other", &["WB3"]).await;
    let other = Wb::new(&sim, &other_key);
    let (status, body) = other
        .get("/openapi/account/positions", &[("account_id", acct)])
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("ACCOUNT_NOT_FOUND"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limits_and_lost_answers_are_injected_on_the_webull_surface() {
    let sim = sim_with(WebullConfig {
        limit: 3,
        ..WebullConfig::default()
    })
    .await;
    let (key, _) = wb_user(&sim, "wb-faults", &["WB4"]).await;
    let wb = Wb::new(&sim, &key);
    for _ in 0..3 {
        assert_eq!(wb.get("/openapi/account/list", &[]).await.0, 200);
    }
    let (status, body) = wb.get("/openapi/account/list", &[]).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (429, Some("TOO_MANY_REQUESTS"))
    );

    let sim = sim_with(WebullConfig::default()).await;
    let (key, ids) = wb_user(&sim, "wb-faults", &["WB4"]).await;
    let acct2 = ids[0].as_str();
    let wb = Wb::new(&sim, &key);
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::TooManyRequests,
            user: None,
            account: None,
            endpoint: Some("account/positions".into()),
            count: Some(1),
        })
        .unwrap();
    let (status, body) = wb
        .get("/openapi/account/positions", &[("account_id", acct2)])
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (429, Some("TOO_MANY_REQUESTS"))
    );
    assert_eq!(
        wb.get("/openapi/account/positions", &[("account_id", acct2)])
            .await
            .0,
        200
    );

    // The order is placed, the answer is lost: the detail by client order id finds it.
    let sym = front(&sim);
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::Ambiguous {
                mode: AmbiguousMode::Drop,
            },
            user: None,
            account: None,
            endpoint: Some("account/orders/place".into()),
            count: Some(1),
        })
        .unwrap();
    let sent = wb
        .http
        .post(format!("{}/openapi/account/orders/place", wb.base))
        .send()
        .await;
    // Unsigned: refused before any fault.
    assert_eq!(sent.unwrap().status().as_u16(), 401);
    let order = json!({"new_orders": [{"client_order_id": "amb-1", "symbol": sym, "side": "BUY", "order_type": "LIMIT", "quantity": "1", "limit_price": "100"}]});
    let lost = wb
        .try_send(
            true,
            "/openapi/account/orders/place",
            &[("account_id", acct2)],
            Some(&order),
            &Wb::fresh(),
        )
        .await;
    assert!(lost.is_err(), "the answer is lost: {lost:?}");
    let (status, detail) = wb
        .get(
            "/openapi/account/orders/detail",
            &[("account_id", acct2), ("client_order_id", "amb-1")],
        )
        .await;
    assert_eq!(
        (status, detail["status"].as_str()),
        (200, Some("SUBMITTED"))
    );
    sim.shutdown().await;
}
