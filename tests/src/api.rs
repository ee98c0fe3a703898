//! The REST API over a test platform: served on a free port over the platform's store and
//! bus, and a client logged in with a session cookie (the API's own e2e test, and tests that
//! act through the API such as a manual trade on a copy leader). The API serves the dashboard
//! at `/` too, so the browser tests (`e2e/dashboard.rs`) use the same server.

use std::net::SocketAddr;
use std::sync::Arc;

use jt_api::{AccessProbe, ApiConfig, ApiState, FileMailer};
use serde_json::{Value, json};

use crate::Platform;

/// An HTTP client logged in to the API with a session cookie.
pub struct Client {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Client {
    /// Logs in with e-mail and password.
    ///
    /// # Panics
    /// When the login is refused.
    pub async fn login(base: &str, email: &str, password: &str) -> Client {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let body: Value = r.json().await.unwrap();
        Client {
            http,
            base: base.to_string(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    /// Calls `path` under `/api/v1` with an optional JSON body and headers: the status and
    /// the JSON answer (`null` when empty).
    ///
    /// # Panics
    /// On a transport error or a 5xx answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        assert!(status < 500, "{path}: {status} {v}");
        (status, v)
    }

    /// GET, expecting 200.
    ///
    /// # Panics
    /// On another status.
    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None, &[]).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Opens the live update stream (`GET /api/v1/events`) and waits for its `ready` event.
    ///
    /// # Panics
    /// When the stream is refused or `ready` does not come within 10 s.
    pub async fn events(&self) -> crate::live::EventStream {
        let r = self
            .http
            .get(format!("{}/api/v1/events", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the live stream");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        crate::live::EventStream::ready(r).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), &[])
            .await
    }
}

/// The API on a free port over the platform's store and bus; the webhook URLs it prints point
/// at the platform's ingest.
pub async fn serve_api(p: &Platform) -> String {
    serve_api_with_mail(p).await.0
}

/// [`serve_api`], and the folder its file mailer writes mail to (password resets).
pub async fn serve_api_with_mail(p: &Platform) -> (String, std::path::PathBuf) {
    let mail = std::env::temp_dir().join(format!("jt-e2e-mail-{}", uuid::Uuid::new_v4()));
    let config = ApiConfig {
        public_url: p.ingest_url.clone(),
        mail_dir: Some(mail.clone()),
        ..ApiConfig::default()
    };
    let access = jt_connect::AccessConfig::default()
        .with_sim_url(p.sim.base_url())
        .with_webull_url(p.sim.webull_url());
    let brokers = Arc::new(jt_connect::BrokerAccess::new(p.store.clone(), access));
    let probe = AccessProbe::new(brokers).shared();
    let state = ApiState::new(
        config,
        p.store.clone(),
        p.bus.clone(),
        probe,
        Arc::new(FileMailer::new(mail.clone(), "jt <no-reply@jt.test>")),
    );
    let app = jt_api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (format!("http://{addr}"), mail)
}
