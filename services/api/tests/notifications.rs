//! Notification channels and the delivery log through the API: validation answered with the
//! field and the rule, the signing secret shown once, changes, the test event, the log's pages
//! and filters, and one user never reaching another's channels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use serde_json::json;

use common::{Auth, TestApi};

const HOOKS: &str = "/api/v1/notification-channels";
const LOG: &str = "/api/v1/notification-deliveries";

#[tokio::test]
async fn a_webhook_channel_is_created_with_its_secret_shown_once() {
    let api = TestApi::new().await;
    let s = api.login("owner@example.com").await;
    let r = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "webhook", "label": " Ops ", "target": "https://hooks.example.com/jt?token=abc",
                        "events": ["max_loss", "kill_switch"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["label"], "Ops");
    assert_eq!(r.body["kind"], "webhook");
    assert_eq!(r.body["events"], json!(["max_loss", "kill_switch"]));
    let secret = r.body["signing_secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    let id = r.body["id"].as_str().unwrap();
    // The store keeps it sealed and opens it for the notifier.
    let opened = api
        .store
        .notifications()
        .open(s.user, serde_json::from_value(json!(id)).unwrap())
        .await
        .unwrap();
    assert_eq!(opened.signing_secret.unwrap().expose(), secret);
    // Lists never show the secret or the target.
    let l = api.call(Method::GET, HOOKS, Auth::Cookie(&s), None).await;
    assert_eq!(l.status, StatusCode::OK);
    let text = l.body.to_string();
    assert!(
        !text.contains(secret) && !text.contains("token=abc"),
        "{text}"
    );
    assert_eq!(l.body.as_array().unwrap().len(), 1);
    // Discord and e-mail channels have no secret.
    let d = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "discord", "label": "Discord", "target": "https://discord.com/api/webhooks/1/x",
                        "events": ["max_loss"]})),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
    assert!(d.body["signing_secret"].is_null());
}

#[tokio::test]
async fn a_webhook_channels_signing_secret_is_rotated_and_the_new_one_shown_once() {
    let api = TestApi::new().await;
    let s = api.login("owner@example.com").await;
    let r = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(
                json!({"kind": "webhook", "label": "Ops", "target": "https://hooks.example.com/jt",
                        "events": ["max_loss"]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let old = r.body["signing_secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    let rotate = format!("{HOOKS}/{id}/rotate-secret");

    let n = api
        .call(Method::POST, &rotate, Auth::Cookie(&s), None)
        .await;
    assert_eq!(n.status, StatusCode::OK, "{}", n.body);
    let new = n.body["signing_secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new.len() > 40, "{new}");
    assert_ne!(new, old, "a new secret");
    // The notifier now signs with the new one; the old one is gone.
    let opened = api
        .store
        .notifications()
        .open(s.user, serde_json::from_value(json!(id)).unwrap())
        .await
        .unwrap();
    assert_eq!(opened.signing_secret.unwrap().expose(), new);
    // Shown once: neither the channel nor the list shows it.
    let one = api
        .call(Method::GET, HOOKS, Auth::Cookie(&s), None)
        .await
        .body
        .to_string();
    assert!(!one.contains(&new) && !one.contains(&old), "{one}");
    // A second rotation gives yet another secret.
    let again = api
        .call(Method::POST, &rotate, Auth::Cookie(&s), None)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_ne!(again.body["signing_secret"].as_str().unwrap(), new);

    // An e-mail channel has no secret to rotate: 409, and it stays without one.
    let e = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "email", "label": "Me", "target": "me@example.com", "events": ["max_loss"]})),
        )
        .await;
    let email_id = e.body["id"].as_str().unwrap().to_string();
    let c = api
        .call(
            Method::POST,
            &format!("{HOOKS}/{email_id}/rotate-secret"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::CONFLICT, "{}", c.body);
    assert!(
        c.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only a webhook channel has a signing secret"),
        "{}",
        c.body
    );
    let opened = api
        .store
        .notifications()
        .open(s.user, serde_json::from_value(json!(email_id)).unwrap())
        .await
        .unwrap();
    assert!(opened.signing_secret.is_none());

    // Another user's channel, or none: 404, and the owner's secret is unchanged.
    let intruder = api.login("intruder@example.com").await;
    let x = api
        .call(Method::POST, &rotate, Auth::Cookie(&intruder), None)
        .await;
    assert_eq!(x.status, StatusCode::NOT_FOUND, "{}", x.body);
    // A well-formed id no channel has.
    let none = format!("{HOOKS}/0190f3a0-0000-7000-8000-000000000000/rotate-secret");
    let x = api.call(Method::POST, &none, Auth::Cookie(&s), None).await;
    assert_eq!(x.status, StatusCode::NOT_FOUND, "{}", x.body);
    let opened = api
        .store
        .notifications()
        .open(s.user, serde_json::from_value(json!(id)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        opened.signing_secret.unwrap().expose(),
        again.body["signing_secret"].as_str().unwrap()
    );
}

#[tokio::test]
async fn bad_channels_are_refused_with_the_field_and_the_rule() {
    let api = TestApi::new().await;
    let s = api.login("owner@example.com").await;
    let cases = [
        (
            json!({"kind": "webhook", "label": "x", "target": "http://hooks.example.com/x", "events": ["test"]}),
            "target",
            "https",
        ),
        (
            json!({"kind": "webhook", "label": "x", "target": "not a url", "events": ["test"]}),
            "target",
            "URL",
        ),
        (
            json!({"kind": "discord", "label": "x", "target": "https://example.com/api/webhooks/1/x", "events": ["test"]}),
            "target",
            "Discord",
        ),
        (
            json!({"kind": "email", "label": "x", "target": "nobody", "events": ["test"]}),
            "target",
            "e-mail",
        ),
        (
            json!({"kind": "email", "label": "x", "target": "a@example.com", "events": []}),
            "events",
            "at least one",
        ),
        (
            json!({"kind": "email", "label": "x", "target": "a@example.com", "events": ["test", "lunch"]}),
            "events[1]",
            "must be one of",
        ),
        (
            json!({"kind": "email", "label": " ", "target": "a@example.com", "events": ["test"]}),
            "label",
            "1 to 100",
        ),
    ];
    for (body, field, rule) in cases {
        let r = api
            .call(Method::POST, HOOKS, Auth::Cookie(&s), Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.field(), Some(field), "{body}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(rule),
            "{body}: {}",
            r.body
        );
    }
    let r = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "pager", "label": "x", "target": "x", "events": ["test"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.field(), Some("kind"), "{}", r.body);
    // Private addresses are refused while the operator has not allowed them (the default).
    for private in [
        "http://127.0.0.1:9000/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:10.0.0.1]/hook",
    ] {
        let r = api
            .call(
                Method::POST,
                HOOKS,
                Auth::Cookie(&s),
                Some(json!({"kind": "webhook", "label": "local", "target": private, "events": ["test"]})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{private}: {}",
            r.body
        );
        assert_eq!(r.field(), Some("target"), "{}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("JT_NOTIFY_ALLOW_PRIVATE_TARGETS"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_loopback_receiver_may_use_http_when_private_targets_are_allowed() {
    let api = TestApi::with_config(jt_api::ApiConfig {
        allow_private_notify_targets: true,
        ..jt_api::ApiConfig::default()
    })
    .await;
    let s = api.login("owner@example.com").await;
    let r = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "webhook", "label": "local", "target": "http://127.0.0.1:9000/hook", "events": ["test"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn a_channel_is_changed_tested_listed_in_the_log_and_removed() {
    let api = TestApi::new().await;
    let s = api.login("owner@example.com").await;
    let c = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "email", "label": "Me", "target": "me@example.com", "events": ["max_loss"]})),
        )
        .await;
    let id = c.body["id"].as_str().unwrap().to_string();
    let one = format!("{HOOKS}/{id}");

    let p = api
        .call(
            Method::PATCH,
            &one,
            Auth::Cookie(&s),
            Some(json!({"label": "Mine", "events": ["max_loss", "needs_reauth"]})),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["label"], "Mine");
    assert_eq!(p.body["events"], json!(["max_loss", "needs_reauth"]));
    // A new target is checked against the channel's kind.
    let bad = api
        .call(
            Method::PATCH,
            &one,
            Auth::Cookie(&s),
            Some(json!({"target": "https://hooks.example.com/x"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field(), Some("target"));

    // The test event reaches this channel though it does not subscribe to `test`.
    let t = api
        .call(Method::POST, &format!("{one}/test"), Auth::Cookie(&s), None)
        .await;
    assert_eq!(t.status, StatusCode::ACCEPTED, "{}", t.body);
    let key = t.body["dedup_key"].as_str().unwrap().to_string();
    // Events queued by a producer go to subscribing channels only.
    api.store
        .notifications()
        .enqueue(s.user, "max_loss", "breach-1", &json!({"account": "DEMO1"}))
        .await
        .unwrap();
    api.store
        .notifications()
        .enqueue(s.user, "kill_switch", "kill-1", &json!({}))
        .await
        .unwrap();
    let log = api
        .call(
            Method::GET,
            &format!("{LOG}?channel_id={id}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", log.body);
    assert_eq!(items[0]["event"], "max_loss", "newest first");
    assert_eq!(items[1]["event"], "test");
    assert_eq!(items[1]["dedup_key"], key.as_str());
    assert_eq!(items[1]["status"], "pending");
    assert_eq!(items[1]["attempts"], 0);
    assert!(items[1]["next_attempt_at"].is_string());

    // Pages of one, then the filter by status.
    let p1 = api
        .call(
            Method::GET,
            &format!("{LOG}?limit=1"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 1);
    let cursor = p1.body["next_cursor"].as_str().unwrap();
    let p2 = api
        .call(
            Method::GET,
            &format!("{LOG}?limit=1&cursor={cursor}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(p2.body["items"][0]["event"], "test");
    let sent = api
        .call(
            Method::GET,
            &format!("{LOG}?status=sent"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(sent.body["items"], json!([]));
    let bad = api
        .call(
            Method::GET,
            &format!("{LOG}?status=lost"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.field(), Some("status"));

    // A disabled channel cannot be tested.
    api.call(
        Method::PATCH,
        &one,
        Auth::Cookie(&s),
        Some(json!({"enabled": false})),
    )
    .await;
    let t = api
        .call(Method::POST, &format!("{one}/test"), Auth::Cookie(&s), None)
        .await;
    assert_eq!(t.status, StatusCode::CONFLICT, "{}", t.body);

    let d = api.call(Method::DELETE, &one, Auth::Cookie(&s), None).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let log = api.call(Method::GET, LOG, Auth::Cookie(&s), None).await;
    assert_eq!(
        log.body["items"],
        json!([]),
        "the log goes with its channel"
    );
    let again = api.call(Method::DELETE, &one, Auth::Cookie(&s), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_channel_is_not_found() {
    let api = TestApi::new().await;
    let a = api.login("a@example.com").await;
    let b = api.login("b@example.com").await;
    let c = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&a),
            Some(json!({"kind": "email", "label": "A", "target": "a@example.com", "events": ["test"]})),
        )
        .await;
    let id = c.body["id"].as_str().unwrap();
    for (m, uri) in [
        (Method::PATCH, format!("{HOOKS}/{id}")),
        (Method::DELETE, format!("{HOOKS}/{id}")),
        (Method::POST, format!("{HOOKS}/{id}/test")),
        (Method::GET, format!("{LOG}?channel_id={id}")),
    ] {
        let body = (m == Method::PATCH).then(|| json!({"enabled": false}));
        let r = api.call(m.clone(), &uri, Auth::Cookie(&b), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {uri}: {}", r.body);
    }
    let l = api.call(Method::GET, HOOKS, Auth::Cookie(&b), None).await;
    assert_eq!(l.body, json!([]));
}

#[tokio::test]
async fn kill_switch_changes_are_queued_to_subscribing_channels() {
    let api = TestApi::new().await;
    let s = api.login("owner@example.com").await;
    let c = api
        .call(
            Method::POST,
            HOOKS,
            Auth::Cookie(&s),
            Some(json!({"kind": "email", "label": "Me", "target": "me@example.com", "events": ["kill_switch"]})),
        )
        .await;
    let channel = c.body["id"].as_str().unwrap().to_string();
    let a = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "A", "broker": "sim", "environment": "demo", "username": "a",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    let account = a.body["id"].as_str().unwrap().to_string();
    *api.probe.listed.lock() = vec![jt_store::repo::accounts::BrokerSubAccount {
        broker_sub_account_id: "1".into(),
        name: "DEMO1".into(),
    }];
    let t = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{account}/test"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    let sub = t.body["sub_accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let k = api
        .call(
            Method::PUT,
            &format!("/api/v1/sub-accounts/{sub}/kill"),
            Auth::Cookie(&s),
            Some(json!({"engaged": true, "reason": "news"})),
        )
        .await;
    assert_eq!(k.status, StatusCode::OK, "{}", k.body);
    let k = api
        .call(
            Method::PUT,
            "/api/v1/kill",
            Auth::Cookie(&s),
            Some(json!({"engaged": false})),
        )
        .await;
    assert_eq!(k.status, StatusCode::OK, "{}", k.body);
    let log = api
        .call(
            Method::GET,
            &format!("{LOG}?channel_id={channel}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", log.body);
    assert_eq!(items[1]["event"], "kill_switch");
    assert_eq!(items[1]["payload"]["title"], "Kill switch engaged on DEMO1");
    assert_eq!(items[1]["payload"]["reason"], "news");
    assert_eq!(
        items[0]["payload"]["title"],
        "Kill switch released on every account"
    );
    assert_eq!(items[0]["payload"]["scope"], "user");
}
