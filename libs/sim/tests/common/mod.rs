//! A raw Tradovate client for the protocol tests: reqwest for REST, tokio-tungstenite for the
//! sockets, following the documented sequences (no adapter code).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jt_sim::admin::NewUser;
use jt_sim::{Sim, SimConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn sim() -> Sim {
    sim_with(SimConfig::default()).await
}

pub async fn sim_with(config: SimConfig) -> Sim {
    Sim::start(config).await.expect("simulator starts")
}

pub fn user(name: &str, accounts: &[&str]) -> NewUser {
    NewUser {
        name: name.into(),
        password: "pw".into(),
        accounts: accounts.iter().map(|a| (*a).to_string()).collect(),
        ..NewUser::default()
    }
}

/// A logged-in REST client.
pub struct Rest {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub md_token: String,
    pub user_id: i64,
    pub login: Value,
}

impl Rest {
    pub async fn login(sim: &Sim, name: &str) -> Rest {
        let http = http();
        let base = format!("{}/v1", sim.base_url());
        let login: Value = http
            .post(format!("{base}/auth/accesstokenrequest"))
            .json(&json!({"name": name, "password": "pw", "appId": "tests", "appVersion": "1", "cid": 8, "sec": "s", "deviceId": "dev-1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(login.get("errorText").is_none(), "login failed: {login}");
        Rest {
            http,
            base,
            token: login["accessToken"].as_str().unwrap().to_string(),
            md_token: login["mdAccessToken"].as_str().unwrap().to_string(),
            user_id: login["userId"].as_i64().unwrap(),
            login,
        }
    }

    pub async fn post_raw(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.post_raw(path, &body).await;
        assert_eq!(r.status(), 200, "POST {path} {body}");
        r.json().await.unwrap()
    }

    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.get_raw(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn account_id(&self, name: &str) -> i64 {
        let list = self.get("account/list").await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no account {name} in {list}"))["id"]
            .as_i64()
            .unwrap()
    }

    pub async fn contract(&self, root: &str) -> (i64, String) {
        let list = self.get(&format!("contract/suggest?t={root}&l=10")).await;
        let c = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                let n = c["name"].as_str().unwrap();
                n.len() == root.len() + 2 && n.starts_with(root)
            })
            .unwrap()
            .clone();
        (
            c["id"].as_i64().unwrap(),
            c["name"].as_str().unwrap().to_string(),
        )
    }
}

/// Admin calls over HTTP.
pub struct AdminHttp {
    pub http: reqwest::Client,
    pub base: String,
}

impl AdminHttp {
    pub fn new(sim: &Sim) -> Self {
        AdminHttp {
            http: http(),
            base: format!("{}/sim", sim.base_url()),
        }
    }
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "admin POST {path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin GET {path}: {}", r.status());
        r.json().await.unwrap()
    }
    pub async fn delete(&self, path: &str) {
        let r = self
            .http
            .delete(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "admin DELETE {path}: {}",
            r.status()
        );
    }
}

/// A raw Tradovate socket.
pub struct Ws {
    pub stream: WsStream,
    pub events: VecDeque<Value>,
    pub responses: VecDeque<Value>,
    pub frames: Vec<String>,
    next_id: i64,
}

pub enum Frame {
    Open,
    Heartbeat,
    Array(Vec<Value>),
    Close(Value),
}

pub fn parse_frame(t: &str) -> Frame {
    match t.chars().next() {
        Some('o') => Frame::Open,
        Some('h') => Frame::Heartbeat,
        Some('a') => Frame::Array(serde_json::from_str(&t[1..]).unwrap()),
        Some('c') => Frame::Close(serde_json::from_str(&t[1..]).unwrap()),
        _ => panic!("unknown frame {t}"),
    }
}

impl Ws {
    /// Connects and waits for the `o` frame.
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ws = Ws {
            stream,
            events: VecDeque::new(),
            responses: VecDeque::new(),
            frames: Vec::new(),
            next_id: 1,
        };
        let first = ws
            .raw_text(Duration::from_secs(5))
            .await
            .expect("open frame");
        assert_eq!(first, "o");
        ws
    }

    /// Connects, authorizes with `token` (raw) and checks the 200.
    pub async fn authorized(url: &str, token: &str) -> Ws {
        let mut ws = Ws::connect(url).await;
        ws.send(&format!("authorize\n0\n\n{token}")).await;
        let r = ws
            .response(0, Duration::from_secs(5))
            .await
            .expect("authorize response");
        assert_eq!(r["s"], 200, "authorize: {r}");
        ws
    }

    pub async fn send(&mut self, text: &str) {
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn heartbeat(&mut self) {
        self.send("[]").await;
    }

    /// The next text frame (None on timeout or close).
    pub async fn raw_text(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let t = t.to_string();
                    self.frames.push(t.clone());
                    return Some(t);
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// Reads one frame and files its messages; returns false when nothing came.
    pub async fn pump(&mut self, within: Duration) -> bool {
        let Some(t) = self.raw_text(within).await else {
            return false;
        };
        if let Frame::Array(items) = parse_frame(&t) {
            for m in items {
                if m.get("e").is_some() {
                    self.events.push_back(m);
                } else {
                    self.responses.push_back(m);
                }
            }
        }
        true
    }

    /// Waits for the response with id `i`.
    pub async fn response(&mut self, i: i64, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pos) = self.responses.iter().position(|r| r["i"] == i) {
                return self.responses.remove(pos);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if !self.pump(left).await && Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Sends `endpoint\nid\nquery\nbody` and waits for its response.
    pub async fn request(&mut self, endpoint: &str, query: &str, body: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&format!("{endpoint}\n{id}\n{query}\n{body}"))
            .await;
        self.response(id, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no response to {endpoint}"))
    }

    /// Waits until an event matching `pred` arrives; returns every event up to and including
    /// it (in order) and keeps the rest queued.
    pub async fn events_until(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            while let Some(e) = self.events.pop_front() {
                let hit = pred(&e);
                seen.push(e);
                if hit {
                    return seen;
                }
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("event not seen; got {}", Value::Array(seen.clone())));
            self.pump(left).await;
        }
    }

    /// Collects events for `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !self.pump(left).await {
                break;
            }
        }
        self.events.drain(..).collect()
    }
}

/// `(entityType, eventType)` of a props event.
pub fn kind(e: &Value) -> (String, String) {
    (
        e["d"]["entityType"].as_str().unwrap_or("").to_string(),
        e["d"]["eventType"].as_str().unwrap_or("").to_string(),
    )
}

/// A request fixture from `test_data/` with its placeholders replaced.
pub fn fixture(name: &str, vars: &[(&str, String)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(
        !text.contains("{{"),
        "unreplaced placeholder in {name}: {text}"
    );
    text
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str, vars: &[(&str, String)]) -> Value {
    serde_json::from_str(&fixture(name, vars)).unwrap()
}
