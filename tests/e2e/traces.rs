//! Traces end to end (issue 25): the services run as `jt` processes exporting spans over
//! OTLP/HTTP to a receiver this test runs, and one alert to a recorder with three traders must
//! arrive as one trace — the ingest's HTTP server span → the fan-out → three executions → each
//! with its broker HTTP client spans. A leader's fill at the broker must likewise arrive as one
//! trace: connmgr's broker event → the copier → the followers' executions → their broker calls.
//!
//! The receiver decodes the protobuf the exporter sends (`opentelemetry-proto`'s generated
//! types, a dev-dependency only); `OTEL_BSP_SCHEDULE_DELAY` makes the exporters send every
//! 100 ms so the test takes seconds. No span at all fails the test with what did arrive.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use jt_domain::Side;
use jt_domain::order::{OrderKind, OrderRequest};
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{ExecutorMode, Options, Platform, alert};
use jt_store::repo::copy::FollowerSettings;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use parking_lot::Mutex;
use prost::Message as _;

/// How long the whole trace may take to arrive after the orders did.
const WAIT: Duration = Duration::from_secs(30);

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: SpanKind,
    attrs: HashMap<String, String>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

type Received = Arc<Mutex<Vec<Got>>>;

/// A local OTLP/HTTP receiver: `POST /v1/traces` with an `ExportTraceServiceRequest`.
struct Receiver {
    spans: Received,
    endpoint: String,
}

impl Receiver {
    async fn start() -> Self {
        let spans = Received::default();
        let app = Router::new()
            .route("/v1/traces", post(accept))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { spans, endpoint }
    }

    /// What every `jt` process of the test gets: export here, every 100 ms.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), self.endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ]
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().clone()
    }

    /// Waits until `complete(spans)` finds what it looks for; panics after [`WAIT`] showing
    /// what arrived (or that nothing did).
    async fn wait_for<T>(&self, what: &str, complete: impl Fn(&[Got]) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans = self.spans();
            if let Some(found) = complete(&spans) {
                return found;
            }
            if Instant::now() > deadline {
                assert!(
                    !spans.is_empty(),
                    "no span arrived at the OTLP receiver within {WAIT:?}: is span export \
                     (OTEL_EXPORTER_OTLP_ENDPOINT) broken?"
                );
                let shown: Vec<String> = spans.iter().map(show).collect();
                panic!(
                    "{what}: not found within {WAIT:?} among {} spans:\n{}",
                    spans.len(),
                    shown.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn show(s: &Got) -> String {
    format!(
        "{} {} {:?} trace={} id={} parent={} {:?}",
        s.service, s.name, s.kind, s.trace, s.id, s.parent, s.attrs
    )
}

async fn accept(State(spans): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut got = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                got.push(Got {
                    service: service.clone(),
                    trace: hex(&span.trace_id),
                    id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attrs: span
                        .attributes
                        .iter()
                        .filter_map(|kv| {
                            let v = kv.value.as_ref()?.value.as_ref()?;
                            Some((kv.key.clone(), text(v)))
                        })
                        .collect(),
                    name: span.name,
                });
            }
        }
    }
    spans.lock().extend(got);
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one trace, by id, with their children.
struct Tree<'a> {
    spans: Vec<&'a Got>,
}

impl<'a> Tree<'a> {
    fn of(all: &'a [Got], trace: &str) -> Self {
        Self {
            spans: all.iter().filter(|s| s.trace == trace).collect(),
        }
    }

    fn children(&self, parent: &Got) -> Vec<&'a Got> {
        self.spans
            .iter()
            .copied()
            .filter(|s| s.parent == parent.id)
            .collect()
    }

    fn descendants(&self, root: &Got) -> Vec<&'a Got> {
        let mut out = Vec::new();
        let mut todo = vec![root.id.clone()];
        while let Some(id) = todo.pop() {
            for s in self.spans.iter().copied().filter(|s| s.parent == id) {
                todo.push(s.id.clone());
                out.push(s);
            }
        }
        out
    }
}

/// The broker calls under `execution`: client spans with the semantic conventions' attributes,
/// answered.
fn broker_calls<'a>(tree: &Tree<'a>, execution: &Got) -> Vec<&'a Got> {
    tree.descendants(execution)
        .into_iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect()
}

/// The sub-accounts among `executions` (an intent handed back to wait has one span per
/// delivery) whose broker calls were answered.
fn called(tree: &Tree<'_>, executions: &[&Got]) -> std::collections::BTreeSet<String> {
    executions
        .iter()
        .filter(|e| e.name == "execute")
        .filter(|e| {
            broker_calls(tree, e)
                .iter()
                .any(|c| c.attr("http.response.status_code").is_some())
        })
        .filter_map(|e| e.attr("sub_account").map(str::to_owned))
        .collect()
}

fn assert_broker_call(call: &Got, sim_port: &str) {
    assert_eq!(call.service, "jt-executor", "{}", show(call));
    let method = call
        .attr("http.request.method")
        .expect("http.request.method");
    assert_eq!(call.name, method, "a client span is named after its method");
    assert_eq!(
        call.attr("server.address"),
        Some("127.0.0.1"),
        "{}",
        show(call)
    );
    assert_eq!(call.attr("server.port"), Some(sim_port), "{}", show(call));
    let url = call.attr("url.full").expect("url.full");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.contains('?'), "no query string in url.full: {url}");
    let status = call
        .attr("http.response.status_code")
        .expect("http.response.status_code");
    assert!(status.starts_with('2'), "{}", show(call));
}

fn sim_port(p: &Platform) -> String {
    let url = reqwest::Url::parse(&p.sim.base_url()).unwrap();
    url.port_or_known_default().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_to_three_traders_is_one_trace_from_the_webhook_to_every_broker_call() {
    let otlp = Receiver::start().await;
    let p = Platform::start(Options {
        accounts: 3,
        executor: ExecutorMode::Process,
        child_env: otlp.env(),
        ..Options::default()
    })
    .await;
    let ingest = p.spawn_ingest(&[]).await;
    let traders: Vec<(usize, SettingsOverrides)> =
        (0..3).map(|i| (i, SettingsOverrides::default())).collect();
    let (_, token) = p.recorder(Settings::default(), &traders).await;

    let answer = reqwest::Client::new()
        .post(format!("{}/webhook/{token}", ingest.url))
        .header("content-type", "text/plain")
        .body(alert("buy", "long", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["status"], "queued", "{answer}");
    let signal = answer["signal_id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        p.wait_orders(i, WAIT, |o| !o.is_empty()).await;
    }

    // The webhook's server span, then the whole tree under it.
    let sim_port = sim_port(&p);
    let (all, root) = otlp
        .wait_for("the alert's complete trace", |spans| {
            let root = spans
                .iter()
                .find(|s| s.service == "jt-ingest" && s.name == "POST /webhook/{token}")?;
            let tree = Tree::of(spans, &root.trace);
            let fanout = tree
                .children(root)
                .into_iter()
                .find(|s| s.name == "fanout")?;
            (called(&tree, &tree.children(fanout)).len() == 3)
                .then(|| (spans.to_vec(), root.clone()))
        })
        .await;

    // The server span: its route (never the path, which holds the token) and status.
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.parent, "", "the webhook's span is the trace's root");
    assert_eq!(root.attr("http.request.method"), Some("POST"));
    assert_eq!(root.attr("http.route"), Some("/webhook/{token}"));
    assert_eq!(root.attr("http.response.status_code"), Some("200"));
    assert_eq!(root.attr("server.address"), Some("127.0.0.1"));
    assert!(
        all.iter()
            .all(|s| s.attrs.values().all(|v| !v.contains(&token))),
        "the webhook token must not appear in any span"
    );

    let tree = Tree::of(&all, &root.trace);
    let fanout = tree
        .children(&root)
        .into_iter()
        .find(|s| s.name == "fanout")
        .unwrap();
    assert_eq!(fanout.service, "jt-executor");
    assert_eq!(fanout.attr("signal"), Some(signal.as_str()));

    let executions = tree.children(fanout);
    let mut posted = std::collections::BTreeSet::new();
    for execution in &executions {
        assert_eq!(execution.name, "execute", "{}", show(execution));
        assert_eq!(execution.service, "jt-executor");
        assert_eq!(execution.kind, SpanKind::Consumer);
        assert_eq!(execution.attr("signal"), Some(signal.as_str()));
        assert_eq!(execution.attr("source"), Some("signal"));
        for call in broker_calls(&tree, execution) {
            assert_broker_call(call, &sim_port);
            if call.attr("http.request.method") == Some("POST") {
                posted.insert(execution.attr("sub_account").unwrap().to_owned());
            }
        }
    }
    let expected: std::collections::BTreeSet<String> =
        p.subs.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(
        called(&tree, &executions),
        expected,
        "an execution per trader"
    );
    assert_eq!(
        posted, expected,
        "each execution's order is a broker call of its own"
    );

    // Nothing of this alert landed in another trace.
    let strays: Vec<String> = all
        .iter()
        .filter(|s| s.attr("signal") == Some(signal.as_str()) && s.trace != root.trace)
        .map(show)
        .collect();
    assert!(
        strays.is_empty(),
        "spans of the alert outside its trace: {strays:#?}"
    );

    drop(ingest);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaders_fill_is_one_trace_from_the_broker_event_to_every_followers_broker_call() {
    let otlp = Receiver::start().await;
    let p = Platform::start(Options {
        accounts: 3,
        executor: ExecutorMode::Process,
        child_env: otlp.env(),
        ..Options::default()
    })
    .await;
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("leader"), true)
        .await
        .unwrap();
    for i in 1..3 {
        copying
            .add_follower(
                p.user,
                leader.id,
                p.subs[i].id,
                FollowerSettings {
                    label: None,
                    multiplier: rust_decimal::Decimal::ONE,
                    max_position_size: None,
                    enabled: true,
                    copy_tp: false,
                    copy_sl: false,
                    daily_loss_limit: None,
                    max_drawdown: None,
                    closed_by_hand_stays_flat: false,
                },
            )
            .await
            .unwrap();
    }
    let key = p.secret_key_hex();
    let sim_url = p.sim.base_url();
    let env = [
        ("JT_SECRET_KEY", key.as_str()),
        ("JT_SIM_URL", sim_url.as_str()),
        ("JT_BROKER_START_STAGGER_SECS", "0"),
        ("JT_CONNMGR_SCAN_MS", "200"),
    ];
    let _connmgr = p.spawn_jt("connmgr", &env).await;
    let _copier = p.spawn_jt("copier", &env).await;
    // The leader's login is connected (its events flow) before the trade.
    let login = p.subs[0].broker_account;
    jt_e2e::eventually("the leader's login connected", WAIT, async || {
        jt_connmgr::read_status(&p.bus, login)
            .await
            .unwrap()
            .filter(|s| s.state == jt_connmgr::LinkState::Connected)
    })
    .await;

    // A person trades the leader's account at the broker.
    let account = p.store.accounts().get(p.user, login).await.unwrap();
    let broker = jt_connect::BrokerAccess::new(
        p.store.clone(),
        jt_connect::AccessConfig::default().with_sim_url(p.sim.base_url()),
    )
    .for_account(&account)
    .await
    .unwrap();
    let contract = broker.resolve_contract("MNQ").await.unwrap();
    broker
        .place_order(
            &jt_broker::AccountId::from(p.subs[0].broker_sub_account_id.as_str()),
            &contract,
            &OrderRequest {
                client_order_id: "by-hand-1".into(),
                side: Side::Buy,
                qty: 1,
                kind: OrderKind::Market,
            },
        )
        .await
        .unwrap();
    for i in 1..3 {
        p.wait_orders(i, WAIT, |o| !o.is_empty()).await;
    }

    let sim_port = sim_port(&p);
    let leader_sub = p.subs[0].id.to_string();
    let (all, root, copy) = otlp
        .wait_for("the leader fill's complete trace", |spans| {
            // Every fill the copier reads gets its span (the followers' own fills too): the
            // leader's is the one.
            let copy = spans.iter().find(|s| {
                s.service == "jt-copier"
                    && s.name == "copy"
                    && s.attr("leader_sub_account") == Some(leader_sub.as_str())
            })?;
            let tree = Tree::of(spans, &copy.trace);
            let root = tree.spans.iter().find(|s| s.id == copy.parent)?;
            (called(&tree, &tree.children(copy)).len() == 2)
                .then(|| (spans.to_vec(), (*root).clone(), copy.clone()))
        })
        .await;

    assert_eq!(root.service, "jt-connmgr");
    assert_eq!(root.name, "broker_event");
    assert_eq!(root.kind, SpanKind::Producer);
    assert_eq!(root.parent, "", "a broker event starts its trace");
    assert_eq!(root.attr("entity"), Some("fill"), "{}", show(&root));
    let tree = Tree::of(&all, &root.trace);
    let executions: Vec<&Got> = tree
        .children(&copy)
        .into_iter()
        .filter(|s| s.name == "execute")
        .collect();
    for execution in &executions {
        assert_eq!(execution.service, "jt-executor");
        assert_eq!(execution.attr("source"), Some("copy"));
        for call in broker_calls(&tree, execution) {
            assert_broker_call(call, &sim_port);
        }
    }
    let expected: std::collections::BTreeSet<String> =
        p.subs[1..].iter().map(|s| s.id.to_string()).collect();
    assert_eq!(
        called(&tree, &executions),
        expected,
        "an execution per follower"
    );

    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_breachs_flatten_is_one_trace_from_the_monitor_to_its_broker_calls() {
    use jt_store::entity::BreachKind;
    use jt_store::repo::risk::NewBreach;

    let otlp = Receiver::start().await;
    let p = Platform::start(Options {
        executor: ExecutorMode::Process,
        child_env: otlp.env(),
        ..Options::default()
    })
    .await;
    let (_, token) = p
        .recorder(
            Settings {
                max_daily_loss: rust_decimal::Decimal::from(100),
                ..Settings::default()
            },
            &[(0, SettingsOverrides::default())],
        )
        .await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;
    // A breach recorded but not yet flattened (what a monitor that died in between leaves):
    // the risk process finishes it when it starts.
    let breach = p
        .store
        .risk()
        .record_breach(
            p.user,
            NewBreach {
                sub_account: p.subs[0].id,
                trading_day: jt_domain::session::trading_day(chrono::Utc::now()),
                kind: BreachKind::MaxDailyLoss,
                loss_limit: rust_decimal::Decimal::from(100),
                realized_pnl: rust_decimal::Decimal::from(-150),
                unrealized_pnl: rust_decimal::Decimal::ZERO,
                breached_at: chrono::Utc::now(),
                details: None,
            },
        )
        .await
        .unwrap();
    let breach_id = match breach {
        jt_store::repo::risk::BreachRecorded::New(b)
        | jt_store::repo::risk::BreachRecorded::AlreadyBreached(b) => b.id.to_string(),
    };
    let key = p.secret_key_hex();
    let sim_url = p.sim.base_url();
    let _risk = p
        .spawn_jt(
            "risk",
            &[
                ("JT_SECRET_KEY", key.as_str()),
                ("JT_SIM_URL", sim_url.as_str()),
                ("JT_RISK_SURVEY_SECS", "1"),
            ],
        )
        .await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;

    let sim_port = sim_port(&p);
    let (all, root) = otlp
        .wait_for("the flatten's complete trace", |spans| {
            let root = spans
                .iter()
                .find(|s| s.service == "jt-risk" && s.name == "risk_flatten")?;
            let tree = Tree::of(spans, &root.trace);
            (called(&tree, &tree.children(root)).len() == 1).then(|| (spans.to_vec(), root.clone()))
        })
        .await;
    assert_eq!(root.parent, "", "a breach starts its trace");
    assert_eq!(root.attr("breach"), Some(breach_id.as_str()));
    assert_eq!(
        root.attr("sub_account"),
        Some(p.subs[0].id.to_string().as_str())
    );
    let tree = Tree::of(&all, &root.trace);
    for execution in tree.children(&root) {
        assert_eq!(execution.name, "execute", "{}", show(execution));
        assert_eq!(execution.service, "jt-executor");
        assert_eq!(execution.attr("source"), Some("control"));
        for call in broker_calls(&tree, execution) {
            assert_broker_call(call, &sim_port);
        }
    }
    p.stop().await;
}
