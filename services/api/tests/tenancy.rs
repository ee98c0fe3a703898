//! The tenancy test: every operation of the generated OpenAPI document is called by a second
//! user against the first user's records, and must answer 404 — exactly as for a missing id.
//!
//! The walk is driven by the document, not by a hand list: a new route appears in it by
//! construction (routes are registered with `utoipa_axum::routes!`), so a new route that does
//! not scope by owner fails here. A path parameter without a fixture below fails too, naming
//! the parameter, and so does a request body without an example to send.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use jt_domain::{Settings, SignalAction};
use jt_store::repo::accounts::BrokerSubAccount;
use jt_store::repo::intents::NewIntent;
use jt_store::repo::signals::NewSignal;
use jt_store::{IntentId, IntentKind, IntentSource, SignalId, SignalOutcome};
use serde_json::{Value, json};

use common::{Auth, TestApi};

/// The first user's records, by the path parameter (or body field) that names them.
async fn fixtures(api: &TestApi, s: &common::Session) -> BTreeMap<&'static str, String> {
    let mut f = BTreeMap::new();
    let a = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(s),
            Some(
                json!({"label": "A", "broker": "sim", "environment": "demo", "username": "a",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    let account = a.body["id"].as_str().unwrap().to_string();
    *api.probe.listed.lock() = vec![
        BrokerSubAccount {
            broker_sub_account_id: "1".into(),
            name: "A1".into(),
        },
        BrokerSubAccount {
            broker_sub_account_id: "2".into(),
            name: "A2".into(),
        },
    ];
    let t = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{account}/test"),
            Auth::Cookie(s),
            None,
        )
        .await;
    let sub = t.body["sub_accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sub2 = t.body["sub_accounts"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let l = api
        .call(
            Method::POST,
            "/api/v1/leaders",
            Auth::Cookie(s),
            Some(json!({"sub_account_id": sub})),
        )
        .await;
    let leader = l.body["id"].as_str().unwrap().to_string();
    let fo = api
        .call(
            Method::POST,
            &format!("/api/v1/leaders/{leader}/followers"),
            Auth::Cookie(s),
            Some(json!({"sub_account_id": sub2})),
        )
        .await;
    let follower = fo.body["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(s),
            Some(json!({"name": "A's"})),
        )
        .await;
    let recorder = r.body["id"].as_str().unwrap().to_string();
    let tr = api
        .call(
            Method::POST,
            "/api/v1/traders",
            Auth::Cookie(s),
            Some(json!({"recorder_id": recorder, "sub_account_id": sub})),
        )
        .await;
    let trader = tr.body["id"].as_str().unwrap().to_string();
    let tok = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Auth::Cookie(s),
            Some(json!({"name": "A's"})),
        )
        .await;
    let token = tok.body["id"].as_str().unwrap().to_string();
    let ch = api
        .call(
            Method::POST,
            "/api/v1/notification-channels",
            Auth::Cookie(s),
            Some(json!({"kind": "webhook", "label": "A's hook",
                        "target": "https://hooks.example.com/a", "events": ["max_loss"]})),
        )
        .await;
    let channel = ch.body["id"].as_str().unwrap().to_string();
    let signal = SignalId::new();
    api.store
        .signals()
        .record(NewSignal {
            id: signal,
            owner: s.user,
            recorder: serde_json::from_value(json!(recorder)).unwrap(),
            received_at: chrono::Utc::now(),
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
    let intent = IntentId::new();
    api.store
        .intents()
        .create(NewIntent {
            id: intent,
            owner: s.user,
            sub_account: serde_json::from_value(json!(sub)).unwrap(),
            trader: Some(serde_json::from_value(json!(trader)).unwrap()),
            signal: Some(signal),
            source: IntentSource::Signal,
            idempotency_key: format!("tenancy:{intent}"),
            kind: IntentKind::Entry,
            symbol: "MNQ1!".into(),
            contract: None,
            side: None,
            quantity: 1,
            settings: Settings::default(),
            plan: json!({}),
            skip_reason: Some("tenancy fixture".into()),
        })
        .await
        .unwrap();
    // Prop-firm rules on the sub-account and an event in the news calendar.
    let rules = api
        .call(
            Method::PUT,
            &format!("/api/v1/sub-accounts/{sub}/rules"),
            Auth::Cookie(s),
            Some(json!({"preset": "apex-50k"})),
        )
        .await;
    assert_eq!(rules.status, StatusCode::OK, "{}", rules.body);
    let news = api
        .store
        .rules()
        .add_news(jt_domain::propfirm::NewsEvent {
            at: chrono::Utc::now() + chrono::Duration::hours(1),
            title: "CPI".into(),
        })
        .await
        .unwrap();
    f.insert("news_id", news.id.to_string());
    f.insert("account_id", account);
    f.insert("sub_account_id", sub);
    f.insert("recorder_id", recorder);
    f.insert("trader_id", trader);
    f.insert("token_id", token);
    f.insert("signal_id", signal.to_string());
    f.insert("intent_id", intent.to_string());
    f.insert("leader_id", leader);
    f.insert("user_id", s.user.to_string());
    f.insert("sequence", "1".to_string());
    f.insert("code", "pro".to_string());
    f.insert("follower_id", follower);
    f.insert("channel_id", channel);
    f
}

/// A request body to send: the operation's example (inline, or on its schema).
fn example(doc: &Value, op: &Value) -> Option<Value> {
    let content = op
        .get("requestBody")?
        .get("content")?
        .get("application/json")?;
    if let Some(e) = content.get("example") {
        return Some(e.clone());
    }
    let schema = content.get("schema")?;
    if let Some(e) = schema.get("example") {
        return Some(e.clone());
    }
    let name = schema.get("$ref")?.as_str()?.rsplit('/').next()?;
    doc["components"]["schemas"][name].get("example").cloned()
}

fn fill(path: &str, ids: &BTreeMap<&'static str, String>) -> (String, bool) {
    let mut out = path.to_string();
    let mut any = false;
    while let Some(start) = out.find('{') {
        let end = out[start..].find('}').unwrap() + start;
        let name = &out[start + 1..end];
        let id = ids.get(name).unwrap_or_else(|| {
            panic!("path parameter `{name}` of {path} has no fixture: add one in fixtures()")
        });
        out = format!("{}{}{}", &out[..start], id, &out[end + 1..]);
        any = true;
    }
    (out, any)
}

/// Body fields naming records (`recorder_id`, `sub_account_id`, …) get the first user's ids.
fn with_foreign_ids(body: &mut Value, ids: &BTreeMap<&'static str, String>) -> bool {
    let mut any = false;
    if let Value::Object(m) = body {
        for (k, v) in m.iter_mut() {
            if let Some(id) = ids.get(k.as_str()) {
                *v = json!(id);
                any = true;
            }
        }
    }
    any
}

#[tokio::test]
async fn every_route_of_the_openapi_document_hides_another_users_records() {
    let api = TestApi::new().await;
    let a = api.login("owner@example.com").await;
    let ids = fixtures(&api, &a).await;
    let b = api.login("intruder@example.com").await;
    let b_token = api.token(b.user).await;
    // The intruder has records of their own, so "nothing at all" is not what hides A's.
    api.call(
        Method::POST,
        "/api/v1/recorders",
        Auth::Cookie(&b),
        Some(json!({"name": "B's"})),
    )
    .await;

    let doc = serde_json::to_value(jt_api::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    let mut scoped = 0;
    let mut admin_only = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue; // `parameters`, `summary`…
            };
            let public = op.get("security").is_none();
            if public {
                continue; // login, password reset: no records of anyone
            }
            let (uri, has_ids) = fill(path, &ids);
            let mut body = if op.get("requestBody").is_some() {
                Some(example(&doc, op).unwrap_or_else(|| {
                    panic!("{method} {path} takes a body but has no example: add one")
                }))
            } else {
                None
            };
            let body_ids = body.as_mut().is_some_and(|b| with_foreign_ids(b, &ids));
            let headers: Vec<(String, String)> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "header")
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap().to_lowercase(),
                                "tenancy-test".to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let extra: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = api
                .call_with(method.clone(), &uri, Auth::Bearer(&b_token), body, &extra)
                .await;
            checked += 1;
            if path.contains("/admin/") {
                // Administration is not tenant-scoped: it is refused to every non-admin.
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {uri} must refuse a non-admin, got {}",
                    r.body
                );
                assert_eq!(r.code(), Some("forbidden"));
                admin_only += 1;
                continue;
            }
            if has_ids || body_ids {
                scoped += 1;
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "{method} {uri} with another user's ids must answer 404 like a missing \
                     record, got {}",
                    r.body
                );
                assert_eq!(r.code(), Some("not_found"));
            } else if method == Method::GET {
                assert_eq!(r.status, StatusCode::OK, "{method} {uri}: {}", r.body);
                let text = r.body.to_string();
                // A dead letter's sequence (`1`) is no user's record and too short to look for;
                // a news event is the operator's calendar, shown to everyone.
                for (name, id) in ids
                    .iter()
                    .filter(|(n, _)| !matches!(**n, "sequence" | "code" | "news_id"))
                {
                    assert!(
                        !text.contains(id.as_str()),
                        "{method} {uri} shows the other user's {name}"
                    );
                }
            }
        }
    }
    assert!(admin_only >= 8, "only {admin_only} admin operations");
    assert!(
        scoped >= 20,
        "only {scoped} of {checked} operations carried ids"
    );

    // The same ids work for their owner (the fixtures are real, nothing was deleted).
    let a_token = api.token(a.user).await;
    for (path, item) in paths {
        if item
            .get("get")
            .is_none_or(|op| op.get("security").is_none())
        {
            continue;
        }
        let (uri, has_ids) = fill(path, &ids);
        if !has_ids || path.contains("/admin/") {
            continue; // admin routes are checked by the admin tests
        }
        let r = api
            .call(Method::GET, &uri, Auth::Bearer(&a_token), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "GET {uri} for its owner: {}",
            r.body
        );
    }
}
