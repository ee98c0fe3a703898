//! ProjectX protocol tests: a raw HTTP client (reqwest) and a raw SignalR client over
//! tokio-tungstenite, written from ProjectX's documentation (BROKERS.md §2), against the
//! simulator on loopback. No adapter code.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jt_sim::admin::NewUser;
use jt_sim::core::SessionMode;
use jt_sim::core::model::Protocol;
use jt_sim::faults::{AmbiguousMode, FaultKind, FaultSpec};
use jt_sim::projectx::ProjectXConfig;
use jt_sim::projectx::limits::ProjectXLimits;
use jt_sim::{Sim, SimConfig};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const RS: char = '\u{1e}';

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn sim_with(projectx: ProjectXConfig) -> Sim {
    Sim::start(SimConfig {
        projectx,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts on loopback")
}

async fn sim() -> Sim {
    sim_with(ProjectXConfig::default()).await
}

fn fixture(name: &str, vars: &[(&str, String)]) -> Value {
    let path = format!("{}/test_data/projectx/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Creates a ProjectX login through the admin HTTP API; returns (api key, account ids).
async fn px_user(sim: &Sim, name: &str, accounts: &[&str]) -> (String, Vec<i64>) {
    let r: Value = http()
        .post(format!("{}/sim/users", sim.base_url()))
        .json(
            &json!({"name": name, "password": "pw", "accounts": accounts, "protocol": "projectx"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = r["apiKey"]
        .as_str()
        .expect("a ProjectX login gets an API key");
    let ids = r["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    (key.to_string(), ids)
}

/// A logged-in raw REST client.
struct Px {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Px {
    async fn login(sim: &Sim, name: &str, key: &str) -> Px {
        let http = http();
        let base = sim.projectx_api_url();
        let r: Value = http
            .post(format!("{base}/Auth/loginKey"))
            .json(&fixture(
                "login_key.json",
                &[("NAME", name.into()), ("API_KEY", key.into())],
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["success"], true, "login: {r}");
        Px {
            http,
            base,
            token: r["token"].as_str().unwrap().to_string(),
        }
    }

    async fn raw(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.raw(path, &body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let v = self.post(path, body).await;
        assert_eq!(v["success"], true, "{path}: {v}");
        assert_eq!(v["errorCode"], 0);
        assert!(v["errorMessage"].is_null());
        v
    }

    async fn contract(&self, root: &str) -> Value {
        let v = self
            .ok(
                "Contract/search",
                json!({"searchText": root, "live": false}),
            )
            .await;
        v["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["activeContract"] == true && c["name"].as_str().unwrap().starts_with(root))
            .cloned()
            .unwrap_or_else(|| panic!("no active {root} contract in {v}"))
    }

    async fn place(&self, body: Value) -> i64 {
        let v = self.ok("Order/place", body).await;
        v["orderId"].as_i64().unwrap()
    }

    async fn open_orders(&self, account: i64) -> Vec<Value> {
        self.ok("Order/searchOpen", json!({"accountId": account}))
            .await["orders"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn positions(&self, account: i64) -> Vec<Value> {
        self.ok("Position/searchOpen", json!({"accountId": account}))
            .await["positions"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn price(sim: &Sim, contract: &Value, p: Decimal) {
    sim.admin()
        .set_price(contract["name"].as_str().unwrap(), p)
        .unwrap();
}

fn d(v: &Value) -> Decimal {
    v.to_string().parse().unwrap()
}

// ------------------------------------------------------------------------------ SignalR client

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw SignalR JSON-protocol client.
struct Hub {
    stream: WsStream,
    inbox: VecDeque<Value>,
    next: u64,
}

impl Hub {
    async fn connect(url: &str, token: &str) -> Hub {
        Hub::open(&format!("{url}?access_token={token}")).await
    }

    /// Connects to `url` as given (query included) and completes the handshake.
    async fn open(url: &str) -> Hub {
        let (mut stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        stream
            .send(Message::Text(
                format!("{{\"protocol\":\"json\",\"version\":1}}{RS}").into(),
            ))
            .await
            .unwrap();
        let mut hub = Hub {
            stream,
            inbox: VecDeque::new(),
            next: 1,
        };
        let first = hub
            .message(Duration::from_secs(5))
            .await
            .expect("handshake answer");
        assert_eq!(first, json!({}), "handshake answer");
        hub
    }

    async fn send(&mut self, v: &Value) {
        self.stream
            .send(Message::Text(format!("{v}{RS}").into()))
            .await
            .unwrap();
    }

    /// Invokes a hub method and waits for its completion.
    async fn invoke(&mut self, target: &str, args: Vec<Value>) -> Value {
        let id = self.next.to_string();
        self.next += 1;
        self.send(&json!({"type": 1, "invocationId": id, "target": target, "arguments": args}))
            .await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut kept = VecDeque::new();
        let completion = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.message(left).await.expect("a completion");
            if m["type"] == 3 && m["invocationId"] == id.as_str() {
                break m;
            }
            kept.push_back(m);
        };
        kept.extend(self.inbox.drain(..));
        self.inbox = kept;
        completion
    }

    /// The next message (None on timeout or close).
    async fn message(&mut self, within: Duration) -> Option<Value> {
        if let Some(m) = self.inbox.pop_front() {
            return Some(m);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.stream.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(t)) => {
                    for r in t.as_str().split(RS).filter(|r| !r.trim().is_empty()) {
                        self.inbox.push_back(serde_json::from_str(r).unwrap());
                    }
                    if let Some(m) = self.inbox.pop_front() {
                        return Some(m);
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Invocations (type 1) received within `within`, pings skipped.
    async fn events(&mut self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while let Some(m) = self
            .message(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            if m["type"] == 1 {
                out.push(m);
            }
        }
        out
    }

    /// Invocations until `pred` holds for one (inclusive), within 5 s.
    async fn events_until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        loop {
            let m = self
                .message(deadline.saturating_duration_since(Instant::now()))
                .await
                .unwrap_or_else(|| panic!("no matching event; got {out:#?}"));
            if m["type"] == 1 {
                let done = pred(&m);
                out.push(m);
                if done {
                    return out;
                }
            }
        }
    }
}

/// `(target, data)` of a user-hub event with its single `{action, data}` argument.
fn ev(m: &Value) -> (&str, &Value) {
    let args = m["arguments"].as_array().unwrap();
    assert_eq!(args.len(), 1, "one argument: {m}");
    assert!(args[0]["action"].is_i64(), "{{action, data}}: {m}");
    (m["target"].as_str().unwrap(), &args[0]["data"])
}

fn summary(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|m| {
            let (t, data) = ev(m);
            match t {
                "GatewayUserOrder" => format!(
                    "order {} type {} status {}",
                    data["id"], data["type"], data["status"]
                ),
                "GatewayUserTrade" => format!("trade {}", data["orderId"]),
                "GatewayUserPosition" => format!("position {}", data["size"]),
                "GatewayUserAccount" => "account".to_string(),
                other => other.to_string(),
            }
        })
        .collect()
}

// ------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn login_validate_logout_and_401s() {
    let sim = sim().await;
    let (key, accounts) = px_user(&sim, "pxa", &["PXA1"]).await;
    sim.admin()
        .create_user(&NewUser {
            name: "tvuser".into(),
            password: "pw".into(),
            ..NewUser::default()
        })
        .unwrap();
    let h = http();
    let base = sim.projectx_api_url();
    let login = |name: &str, key: &str| {
        let h = h.clone();
        let url = format!("{base}/auth/LOGINKEY");
        let body = json!({"userName": name, "apiKey": key});
        async move {
            h.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let wrong = login("pxa", "nope").await;
    assert_eq!(
        (wrong["success"].clone(), wrong["errorCode"].clone()),
        (json!(false), json!(3)),
        "{wrong}"
    );
    assert!(wrong["token"].is_null());
    assert_eq!(login("ghost", &key).await["errorCode"], 1);
    assert_eq!(
        login("tvuser", "x").await["errorCode"],
        9,
        "a Tradovate login has no ProjectX access"
    );
    // A ProjectX login is not reachable through Tradovate.
    let tv: Value = h
        .post(format!("{}/v1/auth/accesstokenrequest", sim.base_url()))
        .json(&json!({"name": "pxa", "password": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tv["errorText"].is_string(), "{tv}");
    // loginApp with the password.
    let app: Value = h
        .post(format!("{base}/Auth/loginApp"))
        .json(&json!({"userName": "pxa", "password": "pw", "deviceId": "d", "appId": "a", "verifyKey": "v"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["success"], true, "{app}");
    let px = Px::login(&sim, "pxa", &key).await;
    assert_eq!(px.token.split('.').count(), 3, "tokens are JWT-shaped");

    // No token, or a ProjectX token on the Tradovate surface: 401.
    let r = h
        .post(format!("{base}/Account/search"))
        .json(&json!({"onlyActiveAccounts": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().is_empty());
    let r = h
        .get(format!("{}/v1/account/list", sim.base_url()))
        .bearer_auth(&px.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Case-insensitive paths; GET on a POST endpoint is 405; ping answers GET.
    let accts = px
        .ok("account/SEARCH", json!({"onlyActiveAccounts": true}))
        .await;
    assert_eq!(accts["accounts"][0]["id"], accounts[0]);
    assert_eq!(accts["accounts"][0]["name"], "PXA1");
    assert_eq!(d(&accts["accounts"][0]["balance"]), dec!(50000));
    assert_eq!(accts["accounts"][0]["canTrade"], true);
    assert_eq!(accts["accounts"][0]["simulated"], true);
    let r = h
        .get(format!("{base}/Account/search"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let ping = h.get(format!("{base}/Status/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);

    // validate hands out a new token in the same session; logout ends both.
    let v = px.ok("Auth/validate", json!({})).await;
    let fresh = v["newToken"].as_str().unwrap().to_string();
    assert_ne!(fresh, px.token);
    let second = Px {
        token: fresh,
        ..Px {
            http: px.http.clone(),
            base: px.base.clone(),
            token: String::new(),
        }
    };
    second
        .ok("Account/search", json!({"onlyActiveAccounts": false}))
        .await;
    px.ok("Account/search", json!({"onlyActiveAccounts": false}))
        .await;
    second.ok("Auth/logout", json!({})).await;
    assert_eq!(
        px.raw("Account/search", &json!({"onlyActiveAccounts": false}))
            .await
            .status(),
        401
    );
    assert_eq!(
        px.post("Auth/validate", json!({})).await["errorCode"],
        2,
        "session not found"
    );

    // Expired tokens: 401 everywhere, validate says ExpiredToken.
    let px = Px::login(&sim, "pxa", &key).await;
    sim.admin().expire_tokens("pxa").unwrap();
    assert_eq!(
        px.raw("Position/searchOpen", &json!({"accountId": accounts[0]}))
            .await
            .status(),
        401
    );
    let v = px.post("Auth/validate", json!({})).await;
    assert_eq!(
        (v["success"].clone(), v["errorCode"].clone()),
        (json!(false), json!(3)),
        "{v}"
    );
}

#[tokio::test]
async fn contracts_and_bars() {
    let sim = sim().await;
    let (key, _) = px_user(&sim, "pxc", &["PXC1"]).await;
    let px = Px::login(&sim, "pxc", &key).await;
    let mnq = px.contract("MNQ").await;
    let front = sim.admin().front_month("MNQ").unwrap();
    assert_eq!(mnq["name"], front.as_str());
    assert!(
        mnq["id"].as_str().unwrap().starts_with("CON.F.US.MNQ."),
        "{mnq}"
    );
    assert_eq!(mnq["symbolId"], "F.US.MNQ");
    assert_eq!(
        (d(&mnq["tickSize"]), d(&mnq["tickValue"])),
        (dec!(0.25), dec!(0.5))
    );
    let nq = px.contract("NQ").await;
    assert!(
        nq["id"].as_str().unwrap().starts_with("CON.F.US.ENQ."),
        "{nq}"
    );
    let all = px
        .ok("Contract/search", json!({"searchText": "", "live": false}))
        .await;
    assert_eq!(
        all["contracts"].as_array().unwrap().len(),
        20,
        "at most 20 results"
    );
    let by_id = px
        .ok("Contract/searchById", json!({"contractId": mnq["id"]}))
        .await;
    assert_eq!(by_id["contract"], mnq);
    let missing = px
        .post(
            "Contract/searchById",
            json!({"contractId": "CON.F.US.NOPE.Z99"}),
        )
        .await;
    assert_eq!(
        (missing["success"].clone(), missing["errorCode"].clone()),
        (json!(false), json!(1))
    );
    assert!(missing["contract"].is_null());
    let available = px.ok("Contract/available", json!({"live": false})).await;
    assert!(available["contracts"].as_array().unwrap().len() > 20);

    // Bars from the simulator's own price changes, newest first.
    for p in [dec!(21000), dec!(21010), dec!(20990), dec!(21005)] {
        price(&sim, &mnq, p);
    }
    let now = chrono::Utc::now();
    let body = fixture(
        "retrieve_bars.json",
        &[
            ("CONTRACT_ID", mnq["id"].as_str().unwrap().into()),
            ("START", (now - chrono::Duration::hours(1)).to_rfc3339()),
            ("END", (now + chrono::Duration::minutes(1)).to_rfc3339()),
        ],
    );
    let bars = px.ok("History/retrieveBars", body.clone()).await;
    let bars = bars["bars"].as_array().unwrap();
    assert!(!bars.is_empty(), "the current partial bar is included");
    let last = &bars[0];
    assert_eq!(d(&last["c"]), dec!(21005));
    assert_eq!(d(&last["h"]), dec!(21010));
    assert_eq!(d(&last["l"]), dec!(20990));
    assert!(last["t"].as_str().unwrap().ends_with("+00:00"));
    let mut seconds = body.clone();
    seconds["unit"] = json!(1);
    assert_eq!(
        px.post("History/retrieveBars", seconds).await["errorCode"],
        2
    );
    let mut no_limit = body.clone();
    no_limit["limit"] = json!(0);
    assert_eq!(
        px.post("History/retrieveBars", no_limit).await["errorCode"],
        4
    );
    let mut no_n = body;
    no_n["unitNumber"] = json!(0);
    assert_eq!(px.post("History/retrieveBars", no_n).await["errorCode"], 3);
}

/// `Contract/search` lists the active contract of each product only, as the Gateway's
/// documented search answers; another month is reached by its id.
#[tokio::test]
async fn contract_search_lists_active_contracts_only_other_months_by_id() {
    // 2026-11-21: December is the front, March 2027 the next (across a year boundary, where a
    // client taking the first result alphabetically would pick MNQH7).
    let at = |y, m, d| async move {
        Sim::start(SimConfig {
            catalog_date: chrono::NaiveDate::from_ymd_opt(y, m, d),
            ..SimConfig::default()
        })
        .await
        .unwrap()
    };
    let sim = at(2026, 11, 21).await;
    let (key, _) = px_user(&sim, "pxs", &["PXS1"]).await;
    let px = Px::login(&sim, "pxs", &key).await;
    let search = |text: &'static str| {
        let px = &px;
        async move {
            px.ok(
                "Contract/search",
                json!({"searchText": text, "live": false}),
            )
            .await["contracts"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let mnq = search("MNQ").await;
    assert_eq!(mnq.len(), 1, "{mnq:#?}");
    assert_eq!(
        (
            mnq[0]["name"].clone(),
            mnq[0]["id"].clone(),
            mnq[0]["activeContract"].clone()
        ),
        (json!("MNQZ6"), json!("CON.F.US.MNQ.Z26"), json!(true))
    );
    // "NQ" finds the front of every product it names (NQ, MNQ), never a back month.
    let nq = search("NQ").await;
    let names: Vec<&str> = nq.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"NQZ6") && names.contains(&"MNQZ6"),
        "{names:?}"
    );
    assert!(nq.iter().all(|c| c["activeContract"] == true), "{nq:#?}");
    let all = search("").await;
    assert_eq!(all.len(), 20, "at most 20 results");
    assert!(all.iter().all(|c| c["activeContract"] == true));
    assert!(
        search("MNQH7").await.is_empty(),
        "a back month is not searched"
    );
    // The next month by id: there, not active.
    let next = px
        .ok(
            "Contract/searchById",
            json!({"contractId": "CON.F.US.MNQ.H27"}),
        )
        .await;
    assert_eq!(
        (
            next["contract"]["name"].clone(),
            next["contract"]["activeContract"].clone()
        ),
        (json!("MNQH7"), json!(false))
    );
    // After the roll (eight days before the third Friday), March is the one listed.
    let rolled = at(2026, 12, 11).await;
    let (key, _) = px_user(&rolled, "pxs", &["PXS1"]).await;
    let px = Px::login(&rolled, "pxs", &key).await;
    let mnq = px
        .ok(
            "Contract/search",
            json!({"searchText": "MNQ", "live": false}),
        )
        .await;
    assert_eq!(mnq["contracts"].as_array().unwrap().len(), 1);
    assert_eq!(mnq["contracts"][0]["id"], "CON.F.US.MNQ.H27");
}

#[tokio::test]
async fn orders_positions_trades_and_their_errors() {
    let sim = sim().await;
    let (key, accounts) = px_user(&sim, "pxo", &["PXO1", "PXO2"]).await;
    let (other_key, other_accounts) = px_user(&sim, "pxother", &["PXX1"]).await;
    let a = accounts[0];
    let px = Px::login(&sim, "pxo", &key).await;
    let mnq = px.contract("MNQ").await;
    let cid = mnq["id"].as_str().unwrap().to_string();
    price(&sim, &mnq, dec!(21000));

    // Request validation: ASP.NET-style 400s for missing or mistyped fields.
    let r = px
        .raw(
            "Order/place",
            &json!({"accountId": a, "contractId": cid, "type": 2, "side": 0}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["errors"]["size"].is_array(), "{problem}");
    let r = px
        .raw(
            "Order/place",
            &json!({"accountId": a, "contractId": cid, "type": "Market", "side": 0, "size": 1}),
        )
        .await;
    assert_eq!(r.status(), 400);

    // Business errors in the envelope with explicit nulls.
    let foreign = px.post("Order/place", json!({"accountId": other_accounts[0], "contractId": cid, "type": 2, "side": 0, "size": 1})).await;
    assert_eq!(
        (foreign["success"].clone(), foreign["errorCode"].clone()),
        (json!(false), json!(1))
    );
    assert!(
        foreign["orderId"].is_null() && foreign["errorMessage"].is_string(),
        "{foreign}"
    );
    let unknown = px.post("Order/place", json!({"accountId": a, "contractId": "CON.F.US.X.Z99", "type": 2, "side": 0, "size": 1})).await;
    assert_eq!(unknown["errorCode"], 8);
    let off_tick = px.post("Order/place", json!({"accountId": a, "contractId": cid, "type": 1, "side": 0, "size": 1, "limitPrice": 20990.1})).await;
    assert_eq!(off_tick["errorCode"], 2, "{off_tick}");
    let bad_side = px
        .post(
            "Order/place",
            json!({"accountId": a, "contractId": cid, "type": 2, "side": 2, "size": 1}),
        )
        .await;
    assert_eq!(bad_side["errorCode"], 2);

    // A resting limit with a custom tag: unique per account.
    let limit = px
        .place(json!({"accountId": a, "contractId": cid, "type": 1, "side": 0, "size": 2, "limitPrice": 20990, "customTag": "jt-1"}))
        .await;
    let dup = px.post("Order/place", json!({"accountId": a, "contractId": cid, "type": 2, "side": 0, "size": 1, "customTag": "jt-1"})).await;
    assert_eq!(
        dup["errorCode"], 2,
        "a repeated customTag is refused: {dup}"
    );
    // …on that account only.
    px.place(json!({"accountId": accounts[1], "contractId": cid, "type": 1, "side": 0, "size": 1, "limitPrice": 20000, "customTag": "jt-1"}))
        .await;
    let open = px.open_orders(a).await;
    assert_eq!(open.len(), 1);
    let o = &open[0];
    assert_eq!(
        (
            o["id"].as_i64(),
            o["type"].clone(),
            o["side"].clone(),
            o["status"].clone(),
            o["size"].clone()
        ),
        (Some(limit), json!(1), json!(0), json!(1), json!(2))
    );
    assert_eq!(o["customTag"], "jt-1");
    assert_eq!(d(&o["limitPrice"]), dec!(20990));
    assert!(
        o["stopPrice"].is_null() && o["filledPrice"].is_null(),
        "REST writes explicit nulls: {o}"
    );
    assert!(o["creationTimestamp"].as_str().unwrap().ends_with("+00:00"));

    // Modify the price, then fill it.
    px.ok(
        "Order/modify",
        json!({"accountId": a, "orderId": limit, "limitPrice": 20995}),
    )
    .await;
    assert_eq!(d(&px.open_orders(a).await[0]["limitPrice"]), dec!(20995));
    price(&sim, &mnq, dec!(20995));
    assert!(px.open_orders(a).await.is_empty());
    let positions = px.positions(a).await;
    assert_eq!(positions.len(), 1);
    assert_eq!(
        (positions[0]["type"].clone(), positions[0]["size"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(d(&positions[0]["averagePrice"]), dec!(20995));
    // Cancel of a filled order: rejected.
    let late = px
        .post("Order/cancel", json!({"accountId": a, "orderId": limit}))
        .await;
    assert_eq!(late["errorCode"], 3, "{late}");
    let nf = px
        .post("Order/cancel", json!({"accountId": a, "orderId": 1}))
        .await;
    assert_eq!(nf["errorCode"], 2);

    // Short a stop below the market; modify then cancel it.
    let stop = px
        .place(json!({"accountId": a, "contractId": cid, "type": 4, "side": 1, "size": 1, "stopPrice": 20900}))
        .await;
    px.ok(
        "Order/modify",
        json!({"accountId": a, "orderId": stop, "stopPrice": 20950, "size": 2}),
    )
    .await;
    let o = px.open_orders(a).await;
    assert_eq!(
        (d(&o[0]["stopPrice"]), o[0]["size"].clone()),
        (dec!(20950), json!(2))
    );
    let through = px
        .post(
            "Order/modify",
            json!({"accountId": a, "orderId": stop, "stopPrice": 21000}),
        )
        .await;
    assert_eq!(
        through["errorCode"], 3,
        "a sell stop above the market is refused: {through}"
    );
    px.ok("Order/cancel", json!({"accountId": a, "orderId": stop}))
        .await;
    assert!(px.open_orders(a).await.is_empty());

    // Partial close, then close; the position goes flat and shows in the trades' P&L.
    price(&sim, &mnq, dec!(21005));
    let bad = px
        .post(
            "Position/partialCloseContract",
            json!({"accountId": a, "contractId": cid, "size": 3}),
        )
        .await;
    assert_eq!(bad["errorCode"], 5, "{bad}");
    px.ok(
        "Position/partialCloseContract",
        json!({"accountId": a, "contractId": cid, "size": 1}),
    )
    .await;
    assert_eq!(px.positions(a).await[0]["size"], 1);
    px.ok(
        "Position/closeContract",
        json!({"accountId": a, "contractId": cid}),
    )
    .await;
    assert!(px.positions(a).await.is_empty());
    let flat = px
        .post(
            "Position/closeContract",
            json!({"accountId": a, "contractId": cid}),
        )
        .await;
    assert_eq!(flat["errorCode"], 2);
    let now = chrono::Utc::now();
    let trades = px
        .ok(
            "Trade/search",
            fixture(
                "trade_search.json",
                &[
                    ("ACCOUNT_ID", a.to_string()),
                    ("START", (now - chrono::Duration::hours(1)).to_rfc3339()),
                    ("END", (now + chrono::Duration::hours(1)).to_rfc3339()),
                ],
            ),
        )
        .await;
    let trades = trades["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 3);
    assert!(
        trades[0]["profitAndLoss"].is_null(),
        "an opening half-turn has no P&L"
    );
    // (21005 − 20995) × 1 × $2 per point, twice.
    assert_eq!(d(&trades[1]["profitAndLoss"]), dec!(20));
    assert_eq!(d(&trades[2]["profitAndLoss"]), dec!(20));
    assert_eq!(
        (trades[1]["side"].clone(), trades[1]["voided"].clone()),
        (json!(1), json!(false))
    );
    let orders = px
        .ok("Order/search", json!({"accountId": a, "startTimestamp": (now - chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 4);
    let r = px.raw("Order/search", &json!({"accountId": a})).await;
    assert_eq!(r.status(), 400, "startTimestamp is required");

    // The session closes: orders are refused with OutsideTradingHours.
    sim.admin().set_session_mode(SessionMode::Closed);
    let closed = px
        .post(
            "Order/place",
            json!({"accountId": a, "contractId": cid, "type": 2, "side": 0, "size": 1}),
        )
        .await;
    assert_eq!(closed["errorCode"], 5);
    let _ = other_key;
}

#[tokio::test]
async fn brackets_follow_the_fill_in_both_tick_conventions_and_are_one_cancels_other() {
    let sim = sim().await;
    let (key, accounts) = px_user(&sim, "pxb", &["PXB1"]).await;
    let a = accounts[0];
    let px = Px::login(&sim, "pxb", &key).await;
    let mnq = px.contract("MNQ").await;
    let cid = mnq["id"].as_str().unwrap().to_string();
    price(&sim, &mnq, dec!(21000));
    // The documented shape with signed ticks (a long's stop negative).
    let entry = px
        .place(fixture(
            "order_place_bracket.json",
            &[
                ("ACCOUNT_ID", a.to_string()),
                ("CONTRACT_ID", cid.clone()),
                ("TAG", "jt-b1".into()),
            ],
        ))
        .await;
    let open = px.open_orders(a).await;
    assert_eq!(open.len(), 2, "{open:#?}");
    let stop = open.iter().find(|o| o["type"] == 4).unwrap();
    let target = open.iter().find(|o| o["type"] == 1).unwrap();
    assert_eq!(
        (
            d(&stop["stopPrice"]),
            stop["size"].clone(),
            stop["side"].clone()
        ),
        (dec!(20997.5), json!(3), json!(1))
    );
    assert_eq!(
        (d(&target["limitPrice"]), target["size"].clone()),
        (dec!(21005), json!(3))
    );
    assert!(stop["customTag"].is_null());
    let orders = px
        .ok(
            "Order/search",
            json!({"accountId": a, "startTimestamp": "2000-01-01T00:00:00Z"}),
        )
        .await;
    let e = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == entry)
        .unwrap()
        .clone();
    assert_eq!(
        (
            e["status"].clone(),
            e["fillVolume"].clone(),
            e["customTag"].clone()
        ),
        (json!(2), json!(3), json!("jt-b1"))
    );
    // The target fills: the stop is cancelled with it.
    price(&sim, &mnq, dec!(21005));
    assert!(px.open_orders(a).await.is_empty());
    assert!(px.positions(a).await.is_empty());

    // A short with unsigned ticks: the stop above, the target below.
    px.place(
        json!({"accountId": a, "contractId": cid, "type": 2, "side": 1, "size": 1,
        "stopLossBracket": {"ticks": 8, "type": 5}, "takeProfitBracket": {"ticks": 12, "type": 1}}),
    )
    .await;
    let open = px.open_orders(a).await;
    let stop = open
        .iter()
        .find(|o| o["type"] == 5)
        .expect("a trailing stop child");
    let target = open.iter().find(|o| o["type"] == 1).unwrap();
    assert_eq!(d(&stop["stopPrice"]), dec!(21007));
    assert_eq!(d(&target["limitPrice"]), dec!(21002));
    // Wrong signs and types are refused before anything is placed.
    for bad in [
        json!({"stopLossBracket": {"ticks": -8, "type": 4}}),
        json!({"takeProfitBracket": {"ticks": 10, "type": 4}}),
        json!({"stopLossBracket": {"ticks": 8, "type": 1}}),
        json!({"stopLossBracket": {"ticks": 0, "type": 4}}),
    ] {
        let mut body = json!({"accountId": a, "contractId": cid, "type": 2, "side": 1, "size": 1});
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = px.post("Order/place", body).await;
        assert_eq!(r["errorCode"], 2, "{bad}: {r}");
    }
    assert_eq!(px.positions(a).await[0]["size"], 1);
}

/// `Position/closeContract` (or any opposite fill) that makes the account flat ends the
/// bracket: its children are cancelled, so the old stop can never open a short.
#[tokio::test]
async fn a_bracket_ends_when_close_contract_makes_the_account_flat() {
    let sim = sim().await;
    let (key, accounts) = px_user(&sim, "pxf", &["PXF1"]).await;
    let a = accounts[0];
    let px = Px::login(&sim, "pxf", &key).await;
    let mnq = px.contract("MNQ").await;
    let cid = mnq["id"].as_str().unwrap().to_string();
    price(&sim, &mnq, dec!(21000));
    let mut hub = Hub::connect(&sim.projectx_user_hub_url(), &px.token).await;
    for (m, args) in [
        ("SubscribeOrders", vec![json!(a)]),
        ("SubscribePositions", vec![json!(a)]),
    ] {
        assert!(hub.invoke(m, args).await.get("error").is_none());
    }
    // Long 3 with a stop 10 ticks below (20997.5) and a target 20 ticks above.
    px.place(fixture(
        "order_place_bracket.json",
        &[
            ("ACCOUNT_ID", a.to_string()),
            ("CONTRACT_ID", cid.clone()),
            ("TAG", "jt-f1".into()),
        ],
    ))
    .await;
    let children: Vec<i64> = px
        .open_orders(a)
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(children.len(), 2);
    let _ = hub.events(Duration::from_millis(300)).await;
    px.ok(
        "Position/closeContract",
        json!({"accountId": a, "contractId": cid}),
    )
    .await;
    assert!(px.positions(a).await.is_empty());
    assert!(
        px.open_orders(a).await.is_empty(),
        "{:#?}",
        px.open_orders(a).await
    );
    // On the hub: the flat position, then both children cancelled (status 3).
    let mut events = hub
        .events_until(|m| m["target"] == "GatewayUserPosition")
        .await;
    events.extend(hub.events(Duration::from_millis(300)).await);
    let s = summary(&events);
    let flat = s
        .iter()
        .position(|e| e == "position 0")
        .expect("a flat position");
    let cancelled: Vec<&String> = s[flat..]
        .iter()
        .filter(|e| e.ends_with("status 3"))
        .collect();
    assert_eq!(cancelled.len(), 2, "{s:#?}");
    for id in &children {
        assert!(
            cancelled
                .iter()
                .any(|e| e.starts_with(&format!("order {id} "))),
            "{s:#?}"
        );
    }
    // The price goes through the old stop: no fill, still flat, nothing working.
    price(&sim, &mnq, dec!(20990));
    price(&sim, &mnq, dec!(20980));
    assert!(px.positions(a).await.is_empty());
    assert!(px.open_orders(a).await.is_empty());
    let orders = px
        .ok(
            "Order/search",
            json!({"accountId": a, "startTimestamp": "2000-01-01T00:00:00Z"}),
        )
        .await;
    let filled = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == 2)
        .count();
    assert_eq!(filled, 2, "the entry and the close only: {orders}");
}

#[tokio::test]
async fn user_hub_sends_the_captured_event_order() {
    let sim = sim().await;
    let (key, accounts) = px_user(&sim, "pxh", &["PXH1"]).await;
    let a = accounts[0];
    let px = Px::login(&sim, "pxh", &key).await;
    let mnq = px.contract("MNQ").await;
    let cid = mnq["id"].as_str().unwrap().to_string();
    price(&sim, &mnq, dec!(21000));
    let mut hub = Hub::connect(&sim.projectx_user_hub_url(), &px.token).await;
    for (m, args) in [
        ("SubscribeAccounts", vec![]),
        ("SubscribeOrders", vec![json!(a)]),
        ("SubscribePositions", vec![json!(a)]),
        ("SubscribeTrades", vec![json!(a)]),
    ] {
        let c = hub.invoke(m, args).await;
        assert!(c.get("error").is_none(), "{m}: {c}");
    }
    let bad = hub.invoke("SubscribeOrders", vec![json!(999)]).await;
    assert!(bad["error"].is_string(), "a foreign account: {bad}");
    let unknown = hub.invoke("Nope", vec![]).await;
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    let entry = px
        .place(json!({"accountId": a, "contractId": cid, "type": 2, "side": 0, "size": 15, "customTag": "jt-h1",
            "stopLossBracket": {"ticks": -40, "type": 4}, "takeProfitBracket": {"ticks": 40, "type": 1}}))
        .await;
    let events = hub
        .events_until(|m| {
            m["target"] == "GatewayUserOrder" && m["arguments"][0]["data"]["type"] == 1
        })
        .await;
    let s = summary(&events);
    let stop_id = ev(&events[events.len() - 2]).1["id"].clone();
    let limit_id = ev(&events[events.len() - 1]).1["id"].clone();
    assert_eq!(
        s,
        vec![
            format!("order {entry} type 2 status 6"),
            format!("trade {entry}"),
            format!("order {entry} type 2 status 2"),
            "position 15".into(),
            "account".into(),
            "account".into(),
            format!("order {stop_id} type 4 status 1"),
            format!("order {limit_id} type 1 status 1"),
        ],
        "{events:#?}"
    );
    // As real servers send them: nulls omitted, 7 fractional digits, extra fields.
    let (_, pending) = ev(&events[0]);
    assert!(
        pending.get("limitPrice").is_none() && pending.get("filledPrice").is_none(),
        "{pending}"
    );
    assert_eq!(pending["customTag"], "jt-h1");
    let stamp = pending["creationTimestamp"].as_str().unwrap();
    assert!(
        stamp.ends_with("+00:00") && stamp.split('.').nth(1).unwrap().len() == 13,
        "{stamp}"
    );
    let (_, trade) = ev(&events[1]);
    assert!(
        trade.get("profitAndLoss").is_none(),
        "an opening trade: {trade}"
    );
    assert!(trade.get("commissions").is_some());
    let (_, filled) = ev(&events[2]);
    assert_eq!(
        (filled["fillVolume"].clone(), d(&filled["filledPrice"])),
        (json!(15), dec!(21000))
    );
    let (_, pos) = ev(&events[3]);
    assert_eq!(
        (pos["type"].clone(), pos["contractDisplayName"].clone()),
        (json!(1), mnq["name"].clone())
    );
    assert_eq!(d(&ev(&events[4]).1["balance"]), dec!(50000));

    // The exit: limit filled → trade (with P&L) → position 0 → account → stop cancelled.
    price(&sim, &mnq, dec!(21010));
    let exit = hub
        .events_until(|m| {
            m["target"] == "GatewayUserOrder" && m["arguments"][0]["data"]["status"] == 3
        })
        .await;
    assert_eq!(
        summary(&exit),
        vec![
            format!("order {limit_id} type 1 status 2"),
            format!("trade {limit_id}"),
            "position 0".into(),
            "account".into(),
            format!("order {stop_id} type 4 status 3"),
        ],
        "{exit:#?}"
    );
    // 10 points × 15 × $2.
    assert_eq!(d(&ev(&exit[1]).1["profitAndLoss"]), dec!(300));
    assert_eq!(
        d(&ev(&exit[2]).1["averagePrice"]),
        dec!(21000),
        "a flat position keeps its average"
    );
    assert_eq!(d(&ev(&exit[3]).1["balance"]), dec!(50300));

    // Unsubscribed topics stop; a replay sends nothing new.
    hub.invoke("UnsubscribeTrades", vec![json!(a)]).await;
    px.place(json!({"accountId": a, "contractId": cid, "type": 2, "side": 1, "size": 1}))
        .await;
    let more = hub.events(Duration::from_millis(300)).await;
    assert!(
        more.iter().all(|m| m["target"] != "GatewayUserTrade"),
        "{more:#?}"
    );
    assert!(more.iter().any(|m| m["target"] == "GatewayUserPosition"));
    sim.admin().replay(Some("PXH1")).unwrap();
    assert!(hub.events(Duration::from_millis(300)).await.is_empty());
}

#[tokio::test]
async fn hub_handshake_auth_keep_alive_and_timeouts() {
    let sim = sim_with(ProjectXConfig {
        keep_alive: Duration::from_millis(200),
        client_timeout: Duration::from_millis(900),
        ..ProjectXConfig::default()
    })
    .await;
    let (key, _) = px_user(&sim, "pxk", &["PXK1"]).await;
    let px = Px::login(&sim, "pxk", &key).await;
    // No token or a bad one: 401 before the upgrade.
    let err = tokio_tungstenite::connect_async(sim.projectx_user_hub_url())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let err = tokio_tungstenite::connect_async(format!(
        "{}?access_token=x",
        sim.projectx_market_hub_url()
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // A wrong protocol in the handshake: an error answer and a close.
    let (mut raw, _) = tokio_tungstenite::connect_async(format!(
        "{}?access_token={}",
        sim.projectx_user_hub_url(),
        px.token
    ))
    .await
    .unwrap();
    raw.send(Message::Text(
        format!("{{\"protocol\":\"messagepack\",\"version\":1}}{RS}").into(),
    ))
    .await
    .unwrap();
    let answer = raw.next().await.unwrap().unwrap();
    assert!(
        answer.to_text().unwrap().contains("\"error\""),
        "{answer:?}"
    );
    // Pings while the client keeps talking; a silent client gets a close message.
    let mut hub = Hub::connect(&sim.projectx_user_hub_url(), &px.token).await;
    let mut pings = 0;
    for _ in 0..3 {
        hub.send(&json!({"type": 6})).await;
        if let Some(m) = hub.message(Duration::from_millis(400)).await {
            pings += usize::from(m["type"] == 6);
        }
    }
    assert!(pings >= 2, "the server pings every keep-alive interval");
    let deadline = Instant::now() + Duration::from_secs(3);
    let close = loop {
        let m = hub
            .message(deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("a close message");
        if m["type"] == 7 {
            break m;
        }
    };
    assert!(
        close["error"].as_str().unwrap().contains("timeout"),
        "{close}"
    );
}

/// `POST {hub}/negotiate` as ASP.NET Core answers it (dotnet/aspnetcore
/// `TransportProtocols.md`), then the upgrade with `id=`; the token is checked as for the
/// upgrade; connecting without negotiation keeps working.
#[tokio::test]
async fn hubs_negotiate_then_upgrade_with_the_connection_token() {
    let sim = sim_with(ProjectXConfig {
        negotiate_timeout: Duration::from_secs(1),
        ..ProjectXConfig::default()
    })
    .await;
    let (key, accounts) = px_user(&sim, "pxn", &["PXN1"]).await;
    let px = Px::login(&sim, "pxn", &key).await;
    let http = http();
    let base = sim.base_url();
    let negotiate = |hub: &'static str, query: &'static str, token: Option<&str>| {
        let mut r = http.post(format!("{base}/hubs/{hub}/negotiate{query}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for (hub, ws_url) in [
        ("user", sim.projectx_user_hub_url()),
        ("market", sim.projectx_market_hub_url()),
    ] {
        // Version 1: a connection id and a separate, secret connection token.
        let r = negotiate(hub, "?negotiateVersion=1", Some(&px.token))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let text = r.text().await.unwrap();
        assert!(
            text.starts_with(r#"{"negotiateVersion":1,"connectionId":""#),
            "ASP.NET's field order: {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let (id, token) = (
            v["connectionId"].as_str().unwrap(),
            v["connectionToken"].as_str().unwrap(),
        );
        assert_eq!((id.len(), token.len()), (22, 22), "{v}");
        assert_ne!(id, token);
        assert_eq!(
            v["availableTransports"],
            json!([{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}])
        );
        // The upgrade names the connection by its token; the hub then works as usual.
        let url = format!("{ws_url}?id={token}&access_token={}", px.token);
        let mut h = Hub::open(&url).await;
        let (method, arg) = if hub == "user" {
            ("SubscribeOrders", json!(accounts[0]))
        } else {
            (
                "SubscribeContractQuotes",
                px.contract("MNQ").await["id"].clone(),
            )
        };
        let c = h.invoke(method, vec![arg]).await;
        assert!(c.get("error").is_none(), "{c}");
        // A second socket on the same connection: 409; after it closed, the id is gone.
        let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
        assert!(err.to_string().contains("409"), "{err}");
        drop(h);
        let deadline = Instant::now() + Duration::from_secs(3);
        let err = loop {
            let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
            if !err.to_string().contains("409") || Instant::now() > deadline {
                break err;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(err.to_string().contains("404"), "{err}");
        // The public connection id does not connect (version 1 uses the token).
        let err =
            tokio_tungstenite::connect_async(format!("{ws_url}?id={id}&access_token={}", px.token))
                .await
                .unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");

        // Version 0 (no version asked): no token, the connection id is the `id`.
        let v: Value = negotiate(hub, "", Some(&px.token))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["negotiateVersion"], 0);
        assert!(v.get("connectionToken").is_none(), "{v}");
        Hub::open(&format!(
            "{ws_url}?id={}&access_token={}",
            v["connectionId"].as_str().unwrap(),
            px.token
        ))
        .await;
        // A later version is answered with 1; the token may ride in the query, as in
        // ProjectX's hub URL.
        let v: Value = http
            .post(format!(
                "{base}/hubs/{hub}/negotiate?access_token={}&negotiateVersion=5",
                px.token
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["negotiateVersion"], 1);
    }
    // The token is checked exactly as the upgrade checks it: none or a bad one → 401.
    for token in [None, Some("not-a-token")] {
        let r = negotiate("user", "?negotiateVersion=1", token)
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = http
        .post(format!("{base}/hubs/market/negotiate?access_token=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A good id with a bad token is refused at the upgrade too.
    let v: Value = negotiate("user", "?negotiateVersion=1", Some(&px.token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let err = tokio_tungstenite::connect_async(format!(
        "{}?id={}&access_token=x",
        sim.projectx_user_hub_url(),
        v["connectionToken"].as_str().unwrap()
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // Not POST: 405. A version that is not an integer, or negative: an `error` answer.
    let r = http
        .get(format!("{base}/hubs/user/negotiate?negotiateVersion=1"))
        .bearer_auth(&px.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    for (q, error) in [
        (
            "?negotiateVersion=one",
            "The client requested a non-integer protocol version.",
        ),
        (
            "?negotiateVersion=-1",
            "The client requested version '-1', but the server does not support this version.",
        ),
    ] {
        let r = negotiate("user", q, Some(&px.token)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({ "error": error }));
    }
    // An unknown id, or one negotiated too long ago: 404.
    let err = tokio_tungstenite::connect_async(format!(
        "{}?id=nope&access_token={}",
        sim.projectx_user_hub_url(),
        px.token
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let v: Value = negotiate("user", "?negotiateVersion=1", Some(&px.token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let err = tokio_tungstenite::connect_async(format!(
        "{}?id={}&access_token={}",
        sim.projectx_user_hub_url(),
        v["connectionToken"].as_str().unwrap(),
        px.token
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    // Without negotiation (ProjectX's example: skipNegotiation) the hub still connects.
    Hub::connect(&sim.projectx_user_hub_url(), &px.token).await;
    let calls = sim.admin().request_counts();
    assert!(
        calls.get("projectx:hubs/user/negotiate") >= Some(&7)
            && calls.get("projectx:hubs/market/negotiate") >= Some(&3),
        "{calls:?}"
    );
}

#[tokio::test]
async fn market_hub_quotes_trades_and_depth() {
    let sim = sim().await;
    let (key, _) = px_user(&sim, "pxm", &["PXM1"]).await;
    let px = Px::login(&sim, "pxm", &key).await;
    let mnq = px.contract("MNQ").await;
    let cid = mnq["id"].as_str().unwrap().to_string();
    price(&sim, &mnq, dec!(21000));
    let mut hub = Hub::connect(&sim.projectx_market_hub_url(), &px.token).await;
    let c = hub
        .invoke("SubscribeContractQuotes", vec![json!(cid)])
        .await;
    assert!(c.get("error").is_none(), "{c}");
    let first = hub.events(Duration::from_millis(200)).await;
    let args = first[0]["arguments"].as_array().unwrap();
    assert_eq!(
        (first[0]["target"].clone(), args[0].clone()),
        (json!("GatewayQuote"), json!(cid))
    );
    for k in [
        "symbol",
        "symbolName",
        "lastPrice",
        "bestBid",
        "bestAsk",
        "change",
        "changePercent",
        "open",
        "high",
        "low",
        "volume",
        "lastUpdated",
        "timestamp",
    ] {
        assert!(
            args[1].get(k).is_some(),
            "a first quote is complete: missing {k} in {}",
            args[1]
        );
    }
    hub.invoke("SubscribeContractTrades", vec![json!(cid)])
        .await;
    hub.invoke("SubscribeContractMarketDepth", vec![json!(cid)])
        .await;
    let depth = hub.events(Duration::from_millis(200)).await;
    let book = depth
        .iter()
        .find(|m| m["target"] == "GatewayDepth")
        .unwrap()["arguments"][1]
        .clone();
    assert_eq!(book[0]["type"], 6, "a reset first");
    assert!(book.as_array().unwrap().len() > 10);
    price(&sim, &mnq, dec!(21001));
    let events = hub.events(Duration::from_millis(300)).await;
    let quote = events
        .iter()
        .find(|m| m["target"] == "GatewayQuote")
        .unwrap()["arguments"][1]
        .clone();
    assert_eq!(d(&quote["lastPrice"]), dec!(21001));
    assert!(
        quote.get("symbol").is_none() && quote.get("open").is_none(),
        "partial quotes carry what changed: {quote}"
    );
    let trade = events
        .iter()
        .find(|m| m["target"] == "GatewayTrade")
        .unwrap()["arguments"][1]
        .clone();
    assert_eq!(
        (
            d(&trade[0]["price"]),
            trade[0]["type"].clone(),
            trade[0]["volume"].clone()
        ),
        (dec!(21001), json!(0), json!(1))
    );
    assert!(
        hub.invoke("SubscribeContractQuotes", vec![json!("CON.F.US.X.Z99")])
            .await["error"]
            .is_string()
    );
}

#[tokio::test]
async fn rate_limits_and_faults() {
    let sim = sim_with(ProjectXConfig {
        limits: ProjectXLimits {
            requests: Some(5),
            bars_requests: Some(1),
            ..ProjectXLimits::default()
        },
        ..ProjectXConfig::default()
    })
    .await;
    let (key, accounts) = px_user(&sim, "pxf", &["PXF1"]).await;
    let a = accounts[0];
    let px = Px::login(&sim, "pxf", &key).await;
    let body = json!({"accountId": a});
    for _ in 0..5 {
        assert_eq!(px.raw("Position/searchOpen", &body).await.status(), 200);
    }
    let r = px.raw("Position/searchOpen", &body).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().is_empty());
    // Another token of the same user has its own budget (the limits are per token).
    let other = Px::login(&sim, "pxf", &key).await;
    assert_eq!(other.raw("Position/searchOpen", &body).await.status(), 200);
    // Bars have their own bucket.
    let bars = json!({"contractId": "CON.F.US.MNQ.Z99", "live": false, "startTime": "2025-01-01T00:00:00Z",
        "endTime": "2025-01-02T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 10, "includePartialBar": false});
    assert_eq!(other.raw("History/retrieveBars", &bars).await.status(), 200);
    assert_eq!(other.raw("History/retrieveBars", &bars).await.status(), 429);
    sim.admin().set_projectx_limits(ProjectXLimits::default());

    let fault = |kind: FaultKind, endpoint: &str| FaultSpec {
        kind,
        user: Some("pxf".into()),
        account: None,
        endpoint: Some(endpoint.into()),
        count: Some(1),
    };
    // 401 with an empty body on the position list: never "no positions".
    sim.admin()
        .add_fault(fault(FaultKind::Positions401, "Position/searchOpen"))
        .unwrap();
    assert_eq!(px.raw("Position/searchOpen", &body).await.status(), 401);
    sim.admin()
        .add_fault(fault(FaultKind::TooManyRequests, "api/order/*"))
        .unwrap();
    assert_eq!(px.raw("Order/searchOpen", &body).await.status(), 429);
    sim.admin()
        .add_fault(fault(
            FaultKind::Error {
                status: 503,
                rate: 1.0,
            },
            "order/searchopen",
        ))
        .unwrap();
    assert_eq!(px.raw("Order/searchOpen", &body).await.status(), 503);
    // An ambiguous placement: the answer is lost but the order exists (found by its tag).
    let mnq = px.contract("MNQ").await;
    sim.admin()
        .add_fault(fault(
            FaultKind::Ambiguous {
                mode: AmbiguousMode::Drop,
            },
            "order/place",
        ))
        .unwrap();
    let lost = px
        .http
        .post(format!("{}/Order/place", px.base))
        .bearer_auth(&px.token)
        .json(&json!({"accountId": a, "contractId": mnq["id"], "type": 1, "side": 0, "size": 1, "limitPrice": 1000, "customTag": "jt-lost"}))
        .send()
        .await;
    assert!(lost.is_err(), "the connection drops before the answer");
    let open = px.open_orders(a).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["customTag"], "jt-lost");

    // Hub faults: a dropped hub, and suppressed events.
    let mut hub = Hub::connect(&sim.projectx_user_hub_url(), &px.token).await;
    hub.invoke("SubscribeOrders", vec![json!(a)]).await;
    let sockets = sim.admin().sockets();
    assert!(
        sockets.iter().any(|s| s.accounts.contains(&a)),
        "the hub is registered: {sockets:?}"
    );
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::SuppressEvents,
            user: None,
            account: Some("PXF1".into()),
            endpoint: None,
            count: None,
        })
        .unwrap();
    px.place(json!({"accountId": a, "contractId": mnq["id"], "type": 1, "side": 0, "size": 1, "limitPrice": 1000})).await;
    assert!(
        hub.events(Duration::from_millis(300)).await.is_empty(),
        "events suppressed"
    );
    sim.admin().clear_faults();
    px.place(json!({"accountId": a, "contractId": mnq["id"], "type": 1, "side": 0, "size": 1, "limitPrice": 1000})).await;
    assert!(!hub.events(Duration::from_millis(300)).await.is_empty());
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::DropSocket,
            user: Some("pxf".into()),
            account: None,
            endpoint: None,
            count: None,
        })
        .unwrap();
    assert!(
        hub.message(Duration::from_secs(2)).await.is_none(),
        "the hub was dropped"
    );
    // A hub that cannot be reached (the upgrade answers 503) until the fault is removed.
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::Error {
                status: 503,
                rate: 1.0,
            },
            user: Some("pxf".into()),
            account: None,
            endpoint: Some("hubs/user".into()),
            count: None,
        })
        .unwrap();
    let err = tokio_tungstenite::connect_async(format!(
        "{}?access_token={}",
        sim.projectx_user_hub_url(),
        px.token
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    // Its negotiation fails the same way.
    let r = http()
        .post(format!("{}/hubs/user/negotiate", sim.base_url()))
        .bearer_auth(&px.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // A shutdown sends a close message that allows reconnecting.
    sim.admin().clear_faults();
    let mut hub = Hub::connect(&sim.projectx_user_hub_url(), &px.token).await;
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::Shutdown {
                reason_code: "Maintenance".into(),
            },
            user: Some("pxf".into()),
            account: None,
            endpoint: None,
            count: None,
        })
        .unwrap();
    let close = hub
        .message(Duration::from_secs(2))
        .await
        .expect("a close message");
    assert_eq!(
        (close["type"].clone(), close["allowReconnect"].clone()),
        (json!(7), json!(true)),
        "{close}"
    );
}

#[tokio::test]
async fn the_admin_api_creates_projectx_logins_with_their_key() {
    let sim = sim().await;
    let created = sim
        .admin()
        .create_user(&NewUser {
            name: "pxk2".into(),
            password: "pw".into(),
            protocol: Protocol::ProjectX,
            api_key: Some("fixed-key".into()),
            ..NewUser::default()
        })
        .unwrap();
    assert_eq!(created.api_key.as_deref(), Some("fixed-key"));
    let tv = sim
        .admin()
        .create_user(&NewUser {
            name: "tv2".into(),
            password: "pw".into(),
            ..NewUser::default()
        })
        .unwrap();
    assert!(tv.api_key.is_none());
    let users: Value = http()
        .get(format!("{}/sim/users", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let protocols: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, vec!["projectx", "tradovate"]);
    let px = Px::login(&sim, "pxk2", "fixed-key").await;
    assert_eq!(
        px.ok("Account/search", json!({"onlyActiveAccounts": true}))
            .await["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let limits: Value = http()
        .post(format!("{}/sim/projectx/limits", sim.base_url()))
        .json(&json!({"requests": 50, "windowSecs": 60, "barsRequests": 50, "barsWindowSecs": 30}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        limits["barsRequests"], 50,
        "the older docs' bars limit can be set"
    );
    // An account with "Auto OCO Brackets" off: bracket fields are ignored.
    let r = http()
        .post(format!("{}/sim/projectx/brackets", sim.base_url()))
        .json(&json!({"account": created.accounts[0].name, "auto": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mnq = px.contract("MNQ").await;
    price(&sim, &mnq, dec!(21000));
    let a = created.accounts[0].id;
    px.place(
        json!({"accountId": a, "contractId": mnq["id"], "type": 2, "side": 0, "size": 1,
        "stopLossBracket": {"ticks": -8, "type": 4}, "takeProfitBracket": {"ticks": 8, "type": 1}}),
    )
    .await;
    assert!(px.open_orders(a).await.is_empty(), "no children");
    assert_eq!(px.positions(a).await.len(), 1);
}
