//! Shared harness of the API's handler tests: the router over a migrated SQLite store in a
//! temporary directory, the embedded bus, a file mailer and a fixed broker probe, driven with
//! `tower::ServiceExt::oneshot`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use jt_api::{AccountProbe, ApiConfig, ApiState, FileMailer, ProbeError};
use jt_bus::{Bus, Definitions, Namespace};
use jt_store::repo::accounts::{BrokerAccount, BrokerSubAccount};
use jt_store::repo::auth::NewUser;
use jt_store::{Role, Secret, SecretKey, Store, StoreConfig, UserId};
use jt_testkit::TempSqlite;
use parking_lot::Mutex;
use serde_json::Value;
use tower::ServiceExt as _;

/// A probe that "sees" a fixed list of sub-accounts, or refuses with a reason.
#[derive(Default)]
pub struct FakeProbe {
    pub listed: Mutex<Vec<BrokerSubAccount>>,
    pub refuse: Mutex<Option<String>>,
}

#[async_trait]
impl AccountProbe for FakeProbe {
    async fn sub_accounts(
        &self,
        _account: &BrokerAccount,
    ) -> Result<Vec<BrokerSubAccount>, ProbeError> {
        if let Some(r) = self.refuse.lock().clone() {
            return Err(ProbeError::Refused(r));
        }
        Ok(self.listed.lock().clone())
    }
}

/// An API over a private store.
pub struct TestApi {
    pub app: Router,
    pub state: ApiState,
    pub store: Store,
    pub bus: Bus,
    pub probe: Arc<FakeProbe>,
    pub mail_dir: std::path::PathBuf,
    _db: TempSqlite,
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserId,
    pub cookie: String,
    pub csrf: String,
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The error body's field.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
    /// The error body's code.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a Session),
    CookieNoCsrf(&'a Session),
}

impl TestApi {
    pub async fn new() -> TestApi {
        Self::with_config(ApiConfig::default()).await
    }

    pub async fn with_config(mut config: ApiConfig) -> TestApi {
        let db = TempSqlite::new();
        let cfg = StoreConfig::new(db.url().to_string()).with_secret_key(SecretKey::generate());
        let store = Store::connect(&cfg).await.unwrap();
        store.migrate().await.unwrap();
        let bus = Bus::embedded(Namespace::unique());
        bus.provision(&Definitions::new(bus.namespace()).topology())
            .await
            .unwrap();
        let mail_dir = db.dir().join("mail");
        config.mail_dir = Some(mail_dir.clone());
        config.public_url = "https://jt.example.com".into();
        let probe = Arc::new(FakeProbe::default());
        let state = ApiState::new(
            config,
            store.clone(),
            bus.clone(),
            probe.clone(),
            Arc::new(FileMailer::new(&mail_dir, "jt <no-reply@jt.test>")),
        );
        TestApi {
            app: jt_api::router(state.clone()),
            state,
            store,
            bus,
            probe,
            mail_dir,
            _db: db,
        }
    }

    /// Registers an approved user with a password.
    pub async fn user(&self, email: &str, password: &str) -> UserId {
        self.user_with_role(email, password, Role::User).await
    }

    /// Registers an approved user with a role.
    pub async fn user_with_role(&self, email: &str, password: &str, role: Role) -> UserId {
        self.store
            .users()
            .register(NewUser {
                email: email.into(),
                display_name: None,
                password: Secret::new(password),
                role,
                approved: true,
            })
            .await
            .unwrap()
            .id
    }

    /// Registers and logs in a user.
    pub async fn login(&self, email: &str) -> Session {
        self.login_with_role(email, Role::User).await
    }

    /// Registers and logs in an administrator.
    pub async fn login_admin(&self, email: &str) -> Session {
        self.login_with_role(email, Role::Admin).await
    }

    async fn login_with_role(&self, email: &str, role: Role) -> Session {
        let user = self
            .user_with_role(email, "correct horse battery", role)
            .await;
        let a = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some(serde_json::json!({"email": email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        let cookie = a
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ");
        Session {
            user,
            cookie,
            csrf: a.body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    /// An API token of a user.
    pub async fn token(&self, user: UserId) -> String {
        let (_, t) = self
            .store
            .api_tokens()
            .create(user, "tests", None)
            .await
            .unwrap();
        t.expose().to_string()
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Answer {
        self.call_with(method, uri, auth, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        auth: Auth<'_>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie(s) => {
                b = b
                    .header(header::COOKIE, &s.cookie)
                    .header("x-csrf-token", &s.csrf);
            }
            Auth::CookieNoCsrf(s) => b = b.header(header::COOKIE, &s.cookie),
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let r = self.app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        if status.is_client_error() || status.is_server_error() {
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "every error has the error body: {status} {body}"
            );
        }
        assert!(
            !status.is_server_error()
                || status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::BAD_GATEWAY,
            "no 500: {status} {body}"
        );
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The mails written so far.
    pub fn mails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.mail_dir) else {
            return Vec::new();
        };
        let mut out: Vec<String> = dir
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        out.sort();
        out
    }
}
