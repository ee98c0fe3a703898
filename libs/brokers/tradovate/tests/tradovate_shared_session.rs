//! One Tradovate login used by several processes at once, against the real simulator: each
//! "process" is a `TradovateBroker` in its own `LoginRegistry`, and they share a
//! `SessionStore`. Every request passes a counting proxy, so the tests see exactly how many
//! token requests and renewals reached the broker.

#![allow(clippy::expect_used)] // helpers outside #[test] functions

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use common::*;
use jt_broker::{
    Broker, BrokerError, ClaimAttempt, ClaimConfig, ClaimHolder, MemorySessionStore,
    SessionOutcome, SessionStore, SessionStoreError, StoredSession,
};
use jt_domain::order::{OrderKind, OrderRequest};
use jt_domain::types::Side;
use jt_sim::faults::FaultKind;
use jt_sim::{Sim, SimConfig};
use jt_tradovate::{TradovateBroker, TradovateConfig};
use parking_lot::Mutex;
use rust_decimal_macros::dec;

const LOGIN: &str = "auth/accesstokenrequest";
const RENEW: &str = "auth/renewaccesstoken";

/// Forwards every request to the simulator and counts them by endpoint.
struct CountingProxy {
    url: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    target: String,
    client: reqwest::Client,
    hits: Mutex<HashMap<String, u32>>,
}

async fn forward(State(p): State<Arc<ProxyState>>, req: Request) -> Response {
    let path = req.uri().path().to_ascii_lowercase();
    let endpoint = path.trim_start_matches("/v1/").to_string();
    *p.hits.lock().entry(endpoint).or_default() += 1;
    let url = format!(
        "{}{}",
        p.target,
        req.uri().path_and_query().map_or("/", |x| x.as_str())
    );
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .expect("the proxy reads the request body");
    let mut out = p.client.request(method, url).body(body.to_vec());
    for (k, v) in &headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let Ok(resp) = out.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .expect("a static response builds");
    };
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut r = Response::builder().status(status);
    if let Some(ct) = content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    r.body(Body::from(bytes))
        .expect("a proxied response builds")
}

impl CountingProxy {
    async fn start(sim: &Sim) -> Self {
        let state = Arc::new(ProxyState {
            target: sim.base_url().trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            hits: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the counting proxy binds on loopback");
        let addr = listener.local_addr().expect("a bound address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn count(&self, endpoint: &str) -> u32 {
        self.state.hits.lock().get(endpoint).copied().unwrap_or(0)
    }
}

/// The simulator's open sessions of `user` (its own truth, not the proxy's count).
async fn sessions_of(sim: &Sim, user: &str) -> usize {
    let users: serde_json::Value = reqwest::get(format!("{}/sim/users", sim.base_url()))
        .await
        .expect("the simulator answers /sim/users")
        .json()
        .await
        .expect("/sim/users is JSON");
    users
        .as_array()
        .expect("a list of users")
        .iter()
        .find(|u| u["name"] == user)
        .and_then(|u| u["sessions"].as_array())
        .map_or(0, Vec::len)
}

fn shared_config(sim: &Sim, proxy: &CountingProxy, name: &str) -> TradovateConfig {
    let mut c = config(sim, name)
        .with_base_url(&proxy.url)
        .expect("the proxy's URL is http");
    c.session.claim = ClaimConfig {
        ttl: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        max_wait: Duration::from_secs(6),
    };
    c
}

/// `n` processes of one login (each its own registry) sharing `store`.
fn processes(
    config: &TradovateConfig,
    store: &Arc<MemorySessionStore>,
    n: usize,
) -> Vec<TradovateBroker> {
    (0..n)
        .map(|_| {
            let store: Arc<dyn SessionStore> = store.clone();
            TradovateBroker::with(config.clone().with_session_store(store), &registry())
                .expect("the adapter builds")
        })
        .collect()
}

fn token_of(b: &TradovateBroker) -> String {
    b.http()
        .session()
        .current()
        .expect("the process holds a live token")
        .access
}

fn market(cid: &str) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        side: Side::Buy,
        qty: 1,
        kind: OrderKind::Market,
    }
}

#[tokio::test]
async fn without_a_store_each_process_logs_in_and_they_evict_each_other() {
    // The problem the store solves, measured the same way: a control for the tests below.
    let sim = sim().await;
    user(&sim, "zed", &["ZED1"]);
    let proxy = CountingProxy::start(&sim).await;
    let config = shared_config(&sim, &proxy, "zed");
    for _ in 0..3 {
        broker(config.clone()).login().await.unwrap();
    }
    assert_eq!(proxy.count(LOGIN), 3);
    assert_eq!(
        sessions_of(&sim, "zed").await,
        2,
        "the third login evicted the first"
    );
}

#[tokio::test]
async fn three_processes_share_one_login_and_one_token() {
    let sim = sim().await;
    let u = user(&sim, "ann", &["ANN1"]);
    price(&sim, "MNQ", dec!(21000));
    let proxy = CountingProxy::start(&sim).await;
    let store = Arc::new(MemorySessionStore::new());
    let brokers = processes(&shared_config(&sim, &proxy, "ann"), &store, 3);
    let acct = account(&u);
    for (i, b) in brokers.iter().enumerate() {
        let contract = b.resolve_contract("MNQ").await.unwrap();
        b.place_order(&acct, &contract, &market(&format!("jt-share-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        proxy.count(LOGIN),
        1,
        "one token request for three processes"
    );
    assert_eq!(proxy.count(RENEW), 0);
    assert_eq!(sessions_of(&sim, "ann").await, 1);
    let tokens: HashSet<String> = brokers.iter().map(token_of).collect();
    assert_eq!(tokens.len(), 1, "all three use the same token");
    assert_eq!(
        tokens.into_iter().next(),
        store.stored().map(|s| s.access_token)
    );
    assert_eq!(sim.admin().orders(Some("ANN1")).unwrap().len(), 3);
    // The stored session carries what a socket needs too.
    let stored = store.stored().unwrap();
    assert!(stored.md_access_token.is_some());
    assert!(stored.user_id.is_some());
    assert!(store.claim().is_none(), "the claim was given back");
}

#[tokio::test]
async fn a_concurrent_cold_start_logs_in_once() {
    let sim = sim().await;
    user(&sim, "bea", &["BEA1"]);
    let proxy = CountingProxy::start(&sim).await;
    // A slow token request keeps the winner's claim held while the others arrive.
    fault(
        &sim,
        FaultKind::Latency { ms: 300 },
        Some("bea"),
        Some(LOGIN),
        None,
    );
    let store = Arc::new(MemorySessionStore::new());
    let brokers = processes(&shared_config(&sim, &proxy, "bea"), &store, 3);
    let (a, b, c) = tokio::join!(brokers[0].login(), brokers[1].login(), brokers[2].login());
    let mut outcomes: Vec<SessionOutcome> =
        [a, b, c].into_iter().map(|r| r.unwrap().outcome).collect();
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![
            SessionOutcome::LoggedIn,
            SessionOutcome::Reused,
            SessionOutcome::Reused
        ]
    );
    assert_eq!(proxy.count(LOGIN), 1);
    assert_eq!(sessions_of(&sim, "bea").await, 1);
    let tokens: HashSet<String> = brokers.iter().map(token_of).collect();
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_others_adopt_the_replacement() {
    let sim = sim().await;
    let u = user(&sim, "cat", &["CAT1"]);
    price(&sim, "MNQ", dec!(21000));
    let proxy = CountingProxy::start(&sim).await;
    let store = Arc::new(MemorySessionStore::new());
    let brokers = processes(&shared_config(&sim, &proxy, "cat"), &store, 3);
    let acct = account(&u);
    let contract = brokers[0].resolve_contract("MNQ").await.unwrap();
    for b in &brokers {
        b.login().await.unwrap();
    }
    let before = store.stored().unwrap().access_token;
    fault(&sim, FaultKind::ExpireToken, Some("cat"), None, None);
    // All three are refused at once and recover concurrently.
    let orders = [market("jt-exp-0"), market("jt-exp-1"), market("jt-exp-2")];
    let (a, b, c) = tokio::join!(
        brokers[0].place_order(&acct, &contract, &orders[0]),
        brokers[1].place_order(&acct, &contract, &orders[1]),
        brokers[2].place_order(&acct, &contract, &orders[2]),
    );
    for r in [a, b, c] {
        r.unwrap();
    }
    assert_eq!(
        proxy.count(LOGIN),
        2,
        "one login at start, one after the expiry"
    );
    let after = store.stored().unwrap().access_token;
    assert_ne!(after, before);
    let tokens: HashSet<String> = brokers.iter().map(token_of).collect();
    assert_eq!(tokens, HashSet::from([after]));
    assert_eq!(sim.admin().orders(Some("CAT1")).unwrap().len(), 3);
}

/// A simulator issuing 10-second tokens and processes that renew 8 s before expiry, so a
/// token is due 2 s after it was obtained.
async fn short_lived(name: &str) -> (Sim, CountingProxy, TradovateConfig) {
    let sim = start_sim(SimConfig {
        token_lifetime: Duration::from_secs(10),
        ..SimConfig::default()
    })
    .await;
    user(&sim, name, &[&format!("{}1", name.to_uppercase())]);
    let proxy = CountingProxy::start(&sim).await;
    let mut config = shared_config(&sim, &proxy, name);
    config.session.renew_before_expiry = Duration::from_secs(8);
    (sim, proxy, config)
}

const UNTIL_DUE: Duration = Duration::from_millis(2_300);

#[tokio::test]
async fn a_due_token_is_renewed_once_and_the_others_adopt_the_renewal() {
    let (sim, proxy, config) = short_lived("dan").await;
    let store = Arc::new(MemorySessionStore::new());
    let brokers = processes(&config, &store, 3);
    let acct = jt_broker::AccountId::from(sim.admin().accounts_of_user("dan")[0].id);
    for b in &brokers {
        b.login().await.unwrap();
    }
    assert_eq!(proxy.count(LOGIN), 1);
    let first = store.stored().unwrap();
    tokio::time::sleep(UNTIL_DUE).await;
    let (a, b, c) = tokio::join!(
        brokers[0].positions(&acct),
        brokers[1].positions(&acct),
        brokers[2].positions(&acct),
    );
    for r in [a, b, c] {
        assert!(r.unwrap().is_empty());
    }
    assert_eq!(proxy.count(RENEW), 1, "one renewal for three processes");
    assert_eq!(proxy.count(LOGIN), 1, "renewal keeps the session");
    let renewed = store.stored().unwrap();
    assert_ne!(renewed.access_token, first.access_token);
    assert!(renewed.expires_at > first.expires_at);
    // A process that met the renewer's claim serves its live token a moment longer, then
    // adopts the renewed one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for b in &brokers {
        assert!(b.positions(&acct).await.unwrap().is_empty());
    }
    let tokens: HashSet<String> = brokers.iter().map(token_of).collect();
    assert_eq!(tokens, HashSet::from([renewed.access_token]));
    assert_eq!(proxy.count(RENEW), 1);
    assert_eq!(sessions_of(&sim, "dan").await, 1);
}

#[tokio::test]
async fn a_failed_renewal_never_replaces_the_stored_token_and_a_daemon_renews_the_stored_one() {
    let (sim, proxy, config) = short_lived("eve").await;
    let store = Arc::new(MemorySessionStore::new());
    let procs = processes(&config, &store, 2);
    let (executor, daemon) = (&procs[0], &procs[1]);
    let acct = jt_broker::AccountId::from(sim.admin().accounts_of_user("eve")[0].id);
    executor.login().await.unwrap();
    let valid = store.stored().unwrap();
    assert_eq!(store.saves(), 1);
    tokio::time::sleep(UNTIL_DUE).await;
    fault(
        &sim,
        FaultKind::Error {
            status: 500,
            rate: 1.0,
        },
        Some("eve"),
        Some(RENEW),
        None,
    );
    // The executor's due renewal fails: the call still runs on the live token.
    assert!(executor.positions(&acct).await.unwrap().is_empty());
    // The daemon (no token of its own yet) is asked to renew: it renews the stored token,
    // which fails, and says so.
    let err = daemon.renew().await.unwrap_err();
    assert!(matches!(err, BrokerError::Transport { .. }), "{err:?}");
    assert!(proxy.count(RENEW) >= 2);
    assert_eq!(
        store.stored().unwrap(),
        valid,
        "the valid token stays stored"
    );
    assert_eq!(store.saves(), 1, "nothing was saved after a failure");
    assert_eq!(
        proxy.count(LOGIN),
        1,
        "a failed renewal of a live session is no reason to log in"
    );
    // Once the broker renews again, the daemon's renewal is stored and the executor adopts it.
    sim.admin().clear_faults();
    let renewed = daemon.renew().await.unwrap();
    assert_eq!(renewed.outcome, SessionOutcome::Renewed);
    let stored = store.stored().unwrap();
    assert_ne!(stored.access_token, valid.access_token);
    assert_eq!(stored.expires_at, renewed.expires_at);
    assert!(executor.positions(&acct).await.unwrap().is_empty());
    assert_eq!(token_of(executor), stored.access_token);
    assert_eq!(proxy.count(LOGIN), 1);
}

#[tokio::test]
async fn refused_credentials_are_reported_as_needing_reauthentication() {
    let sim = sim().await;
    user(&sim, "fay", &["FAY1"]);
    let proxy = CountingProxy::start(&sim).await;
    let store = Arc::new(MemorySessionStore::new());
    let mut wrong = shared_config(&sim, &proxy, "fay");
    wrong.credentials.password = "not-it".into();
    let w = &processes(&wrong, &store, 1)[0];
    let err = w.login().await.unwrap_err();
    assert!(matches!(err, BrokerError::NeedsReauth { .. }), "{err:?}");
    let reason = store.needs_reauth().expect("the failure is reported");
    assert!(
        reason.contains("Incorrect username or password"),
        "{reason}"
    );
    assert!(store.stored().is_none(), "nothing was saved");
    // New credentials that work: the login is stored and the mark cleared.
    let right = &processes(&shared_config(&sim, &proxy, "fay"), &store, 1)[0];
    assert_eq!(
        right.login().await.unwrap().outcome,
        SessionOutcome::LoggedIn
    );
    assert!(store.needs_reauth().is_none());
    assert!(store.stored().is_some());
}

#[tokio::test]
async fn a_captcha_met_by_one_process_stops_the_others_before_they_send() {
    let sim = sim().await;
    user(&sim, "gus", &["GUS1"]);
    let proxy = CountingProxy::start(&sim).await;
    fault(&sim, FaultKind::Captcha, Some("gus"), Some(LOGIN), None);
    let store = Arc::new(MemorySessionStore::new());
    let brokers = processes(&shared_config(&sim, &proxy, "gus"), &store, 2);
    let err = brokers[0].login().await.unwrap_err();
    let BrokerError::LockedOut { until } = err else {
        panic!("expected a lock-out, got {err:?}");
    };
    assert_eq!(store.locked_until(), Some(until));
    let err = brokers[1].login().await.unwrap_err();
    assert!(
        matches!(err, BrokerError::LockedOut { until: u } if u == until),
        "{err:?}"
    );
    assert_eq!(
        proxy.count(LOGIN),
        1,
        "the second process never asked the broker"
    );
    // And it refuses its other calls too, as the first one does.
    let err = brokers[1].accounts().await.unwrap_err();
    assert!(matches!(err, BrokerError::LockedOut { .. }), "{err:?}");
}

/// A store whose database is down.
#[derive(Debug)]
struct Unreachable;

fn down() -> SessionStoreError {
    SessionStoreError::Unavailable {
        detail: "connection refused".into(),
    }
}

#[async_trait]
impl SessionStore for Unreachable {
    async fn load(&self) -> Result<Option<StoredSession>, SessionStoreError> {
        Err(down())
    }
    async fn save(&self, _: &StoredSession) -> Result<(), SessionStoreError> {
        Err(down())
    }
    async fn try_claim(
        &self,
        _: &ClaimHolder,
        _: Duration,
    ) -> Result<ClaimAttempt, SessionStoreError> {
        Err(down())
    }
    async fn release(&self, _: &ClaimHolder) -> Result<(), SessionStoreError> {
        Err(down())
    }
    async fn report_auth_failure(&self, _: &str) -> Result<(), SessionStoreError> {
        Err(down())
    }
    async fn report_locked_out(&self, _: DateTime<Utc>, _: &str) -> Result<(), SessionStoreError> {
        Err(down())
    }
}

#[tokio::test]
async fn without_its_store_a_process_never_logs_in_blind() {
    let sim = sim().await;
    user(&sim, "hal", &["HAL1"]);
    let proxy = CountingProxy::start(&sim).await;
    let b = TradovateBroker::with(
        shared_config(&sim, &proxy, "hal").with_session_store(Arc::new(Unreachable)),
        &registry(),
    )
    .unwrap();
    let err = b.login().await.unwrap_err();
    assert!(matches!(err, BrokerError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("session store"), "{err}");
    assert_eq!(proxy.count(LOGIN), 0);
}
