//! Handler tests: the router with `oneshot` over a SQLite store and the embedded bus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode, header};
use jt_store::repo::accounts::BrokerSubAccount;
use serde_json::json;

use common::{Auth, TestApi};

// ---- errors -------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_gets_the_error_body_naming_the_field_never_a_500() {
    let api = TestApi::new().await;
    let s = api.login("errors@example.com").await;

    // Malformed JSON.
    let r = api
        .send(
            axum::http::Request::post("/api/v1/recorders")
                .header(header::COOKIE, &s.cookie)
                .header("x-csrf-token", &s.csrf)
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from("{\"name\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), Some("malformed"));

    // No content type.
    let r = api
        .send(
            axum::http::Request::post("/api/v1/recorders")
                .header(header::COOKIE, &s.cookie)
                .header("x-csrf-token", &s.csrf)
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A missing field, an unknown field, a wrong type, a setting out of range.
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "x", "colour": "red"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("colour"))
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "x", "settings": {"initial_position_size": "two"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.field(),
        Some("settings.initial_position_size"),
        "{}",
        r.body
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "x", "settings": {"sl_enabled": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field(), Some("settings.sl_amount"), "{}", r.body);
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "x", "settings": {"take_profit": 3}})),
        )
        .await;
    assert_eq!(r.field(), Some("settings.take_profit"), "{}", r.body);

    // Ids that are not ids, unknown routes, wrong methods.
    let r = api
        .call(
            Method::GET,
            "/api/v1/recorders/not-a-uuid",
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(Method::GET, "/api/v1/nothing", Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(Method::PUT, "/api/v1/recorders", Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), Some("method_not_allowed"));

    // A bad query.
    let r = api
        .call(
            Method::GET,
            "/api/v1/signals?limit=abc",
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), Some("limit"), "{}", r.body);
    let r = api
        .call(
            Method::GET,
            "/api/v1/signals?cursor=zzz",
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, Some("cursor"))
    );
    let r = api
        .call(
            Method::GET,
            "/api/v1/signals?outcome=great",
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, Some("outcome"))
    );
}

// ---- auth ---------------------------------------------------------------------------------

#[tokio::test]
async fn login_sets_an_httponly_cookie_and_cookie_writes_need_the_csrf_header() {
    let api = TestApi::new().await;
    let s = api.login("cookie@example.com").await;
    let me = api
        .call(Method::GET, "/api/v1/me", Auth::CookieNoCsrf(&s), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["email"], "cookie@example.com");
    assert_eq!(me.body["csrf_token"], s.csrf.as_str());
    assert!(me.body["user"].get("password_hash").is_none());

    let body = json!({"name": "script"});
    let r = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Auth::CookieNoCsrf(&s),
            Some(body.clone()),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, Some("csrf")));
    let r = api
        .call_with(
            Method::POST,
            "/api/v1/tokens",
            Auth::CookieNoCsrf(&s),
            Some(body.clone()),
            &[("x-csrf-token", "forged")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(Method::POST, "/api/v1/tokens", Auth::Cookie(&s), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("jt_"));

    // A bearer token writes without CSRF; the listing never shows the secret.
    let r = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Auth::Bearer(&token),
            Some(json!({"name": "second"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let list = api
        .call(Method::GET, "/api/v1/tokens", Auth::Bearer(&token), None)
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    assert!(!list.body.to_string().contains(&token[3..]));

    // Delete the first token: it stops working.
    let id = list.body[1]["id"].as_str().unwrap().to_string();
    assert_eq!(list.body[1]["name"], "script");
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/api/v1/me", Auth::Bearer(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Logout ends the session.
    let r = api
        .call(Method::POST, "/api/v1/auth/logout", Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.to_str().unwrap().contains("Max-Age=0"))
    );
    let r = api
        .call(Method::GET, "/api/v1/me", Auth::CookieNoCsrf(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api.call(Method::GET, "/api/v1/me", Auth::None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api
        .call(Method::GET, "/api/v1/me", Auth::Bearer("jt_nothing"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_and_secure_behind_https() {
    let api = TestApi::with_config(jt_api::ApiConfig {
        secure_cookies: true,
        ..jt_api::ApiConfig::default()
    })
    .await;
    api.user("flags@example.com", "correct horse battery").await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": "Flags@Example.com ", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let cookies: Vec<&str> = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("jt_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    let csrf = cookies.iter().find(|c| c.starts_with("jt_csrf=")).unwrap();
    assert!(!csrf.contains("HttpOnly"), "the page reads it: {csrf}");
}

#[tokio::test]
async fn logins_are_refused_alike_and_rate_limited_per_address() {
    let api = TestApi::new().await;
    api.user("limit@example.com", "correct horse battery").await;
    let wrong = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": "limit@example.com", "password": "wrong password"})),
        )
        .await;
    let unknown = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": "nobody@example.com", "password": "wrong password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body, unknown.body,
        "nothing tells an unknown address apart"
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = api
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some(json!({"email": "limit@example.com", "password": "wrong password"})),
            )
            .await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.get(header::RETRY_AFTER).is_some());
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Even the right password waits now; another address is not affected.
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": "limit@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    api.login("other-limit@example.com").await;
}

#[tokio::test]
async fn logins_are_rate_limited_per_source_address() {
    let mut config = jt_api::ApiConfig::default();
    config.login_per_source.burst = 3.try_into().unwrap();
    let api = TestApi::with_config(config).await;
    let mut last = StatusCode::OK;
    for i in 0..4 {
        let r = api
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some(json!({"email": format!("spray{i}@example.com"), "password": "guess guess"})),
            )
            .await;
        last = r.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn password_reset_answers_alike_mails_a_single_use_token_and_ends_sessions() {
    let api = TestApi::new().await;
    let s = api.login("reset@example.com").await;
    for email in ["reset@example.com", "nobody@example.com"] {
        let r = api
            .call(
                Method::POST,
                "/api/v1/auth/password-reset",
                Auth::None,
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    let mails = api.mails();
    assert_eq!(mails.len(), 1, "only the existing address gets mail");
    assert!(mails[0].contains("To: reset@example.com"));
    assert!(mails[0].contains("https://jt.example.com/reset-password?token="));
    let token = mails[0]
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Auth::None,
            Some(json!({"token": token, "password": "short"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password"))
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Auth::None,
            Some(json!({"token": token, "password": "a brand new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Auth::None,
            Some(json!({"token": token, "password": "another new password"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("token"))
    );
    let r = api
        .call(Method::GET, "/api/v1/me", Auth::CookieNoCsrf(&s), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "sessions end with a reset"
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": "reset@example.com", "password": "a brand new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

// ---- broker accounts ----------------------------------------------------------------------

#[tokio::test]
async fn broker_accounts_keep_credentials_sealed_and_the_test_stores_sub_accounts() {
    let api = TestApi::new().await;
    let s = api.login("accounts@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "Sim", "broker": "sim", "environment": "demo", "username": "demo",
                        "credentials": {}}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("credentials.password")
        )
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "Sim", "broker": "mt5", "environment": "demo",
                        "credentials": {}}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("broker"))
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "Sim", "broker": "sim", "environment": "demo", "username": "demo",
                        "credentials": {"password": "s3cret-sim-password"}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(!r.body.to_string().contains("s3cret"));
    assert_eq!(r.body["auth"]["status"], "ok");
    assert_eq!(r.body["has_credentials"], true);
    let id = r.body["id"].as_str().unwrap().to_string();

    *api.probe.listed.lock() = vec![
        BrokerSubAccount {
            broker_sub_account_id: "1".into(),
            name: "DEMO1".into(),
        },
        BrokerSubAccount {
            broker_sub_account_id: "2".into(),
            name: "DEMO2".into(),
        },
    ];
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{id}/test"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sub_accounts"].as_array().unwrap().len(), 2);
    let listed = api
        .call(
            Method::GET,
            &format!("/api/v1/broker-accounts/{id}/sub-accounts"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    let all = api
        .call(Method::GET, "/api/v1/sub-accounts", Auth::Cookie(&s), None)
        .await;
    assert_eq!(all.body, listed.body);
    let first = listed.body[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed.body[0]["enabled"], true);
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/sub-accounts/{first}"),
            Auth::Cookie(&s),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["enabled"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/sub-accounts/{first}"),
            Auth::Cookie(&s),
            Some(json!({"enabled": "no"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("enabled"))
    );

    // A refused login: 422 with the broker's reason, recorded on the account.
    *api.probe.refuse.lock() = Some("Incorrect username or password".into());
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{id}/test"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("broker"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Incorrect username")
    );
    let a = api
        .call(
            Method::GET,
            &format!("/api/v1/broker-accounts/{id}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(
        a.body["auth"]["last_error"],
        "Incorrect username or password"
    );

    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/broker-accounts/{id}"),
            Auth::Cookie(&s),
            Some(json!({"label": "Renamed", "require_brackets": true})),
        )
        .await;
    assert_eq!(
        (
            r.body["label"].as_str(),
            r.body["require_brackets"].as_bool()
        ),
        (Some("Renamed"), Some(true))
    );
    let r = api
        .call(
            Method::PUT,
            &format!("/api/v1/broker-accounts/{id}/credentials"),
            Auth::Cookie(&s),
            Some(json!({"password": "another-one"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/broker-accounts/{id}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/api/v1/sub-accounts", Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.body, json!([]));
}

// ---- recorders and traders ----------------------------------------------------------------

async fn account_with_subs(api: &TestApi, s: &common::Session, n: usize) -> Vec<String> {
    let r = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(s),
            Some(
                json!({"label": "Sim", "broker": "sim", "environment": "demo", "username": "demo",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    *api.probe.listed.lock() = (1..=n)
        .map(|i| BrokerSubAccount {
            broker_sub_account_id: i.to_string(),
            name: format!("ACC{i}"),
        })
        .collect();
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{id}/test"),
            Auth::Cookie(s),
            None,
        )
        .await;
    r.body["sub_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn recorders_carry_every_setting_a_webhook_url_and_the_alert_message() {
    let api = TestApi::new().await;
    let s = api.login("recorders@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "MNQ", "symbol": "MNQ1!", "commission_per_contract": "0.62",
                        "settings": {"tp_targets": [{"value": "20", "trim": "1"}, {"value": "40", "trim": "1"}],
                                     "sl_enabled": true, "sl_amount": "30"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for name in jt_domain::Settings::NAMES {
        assert!(
            r.body["settings"].get(*name).is_some(),
            "setting {name} shown"
        );
    }
    assert_eq!(r.body["settings"]["tp_targets"][1]["value"], "40");
    assert_eq!(r.body["commission_per_contract"], "0.62");
    let url = r.body["webhook_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://jt.example.com/webhook/"), "{url}");
    let token = url.rsplit('/').next().unwrap().to_string();
    assert!(jt_store::auth::is_token_shaped(&token));
    let alert = r.body["alert_message"].as_str().unwrap();
    assert!(alert.contains("{{strategy.order.action}}") && alert.contains("{{ticker}}"));
    let id = r.body["id"].as_str().unwrap().to_string();

    // PATCH one setting; the others stay; null is the default again.
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/recorders/{id}"),
            Auth::Cookie(&s),
            Some(json!({"settings": {"dca_enabled": true, "sl_enabled": null}, "symbol": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["settings"]["dca_enabled"], true);
    assert_eq!(r.body["settings"]["sl_enabled"], false);
    assert_eq!(r.body["settings"]["sl_amount"], "30");
    assert_eq!(r.body["symbol"], serde_json::Value::Null);

    let rotated = api
        .call(
            Method::POST,
            &format!("/api/v1/recorders/{id}/rotate-token"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    let new_url = rotated.body["webhook_url"].as_str().unwrap();
    assert_ne!(new_url, url);
    let hook = api
        .call(
            Method::GET,
            &format!("/api/v1/recorders/{id}/webhook"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(hook.body["webhook_url"], new_url);
    assert!(
        api.store
            .webhooks()
            .resolve(&token)
            .await
            .unwrap()
            .is_none(),
        "old token dead"
    );

    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/recorders/{id}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/recorders/{id}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn traders_show_effective_values_and_a_null_patch_inherits_again() {
    let api = TestApi::new().await;
    let s = api.login("traders@example.com").await;
    let subs = account_with_subs(&api, &s, 2).await;
    let rec = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "R", "settings": {"initial_position_size": 2, "sl_enabled": true, "sl_amount": "30"}})),
        )
        .await;
    let rid = rec.body["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            Method::POST,
            "/api/v1/traders",
            Auth::Cookie(&s),
            Some(json!({"recorder_id": rid, "sub_account_id": subs[0], "settings": {"multiplier": "2", "sl_amount": "12"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tid = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["settings"]["multiplier"],
        json!({"value": "2", "inherited": false})
    );
    assert_eq!(
        r.body["settings"]["sl_amount"],
        json!({"value": "12", "inherited": false})
    );
    assert_eq!(
        r.body["settings"]["initial_position_size"],
        json!({"value": 2, "inherited": true})
    );
    assert_eq!(
        r.body["settings"].as_object().unwrap().len(),
        jt_domain::Settings::NAMES.len()
    );

    // Linking the same pair again is a conflict; an invalid override names the setting.
    let r = api
        .call(
            Method::POST,
            "/api/v1/traders",
            Auth::Cookie(&s),
            Some(json!({"recorder_id": rid, "sub_account_id": subs[0]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/traders/{tid}"),
            Auth::Cookie(&s),
            Some(json!({"settings": {"multiplier": "0"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("settings.multiplier")
        )
    );

    // null clears back to inherited; the recorder's later change shows through.
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/traders/{tid}"),
            Auth::Cookie(&s),
            Some(json!({"settings": {"sl_amount": null, "max_contracts": 4}, "enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["settings"]["sl_amount"],
        json!({"value": "30", "inherited": true})
    );
    assert_eq!(
        r.body["settings"]["max_contracts"],
        json!({"value": 4, "inherited": false})
    );
    assert_eq!(r.body["settings"]["multiplier"]["inherited"], false);
    assert_eq!(r.body["enabled"], false);
    api.call(
        Method::PATCH,
        &format!("/api/v1/recorders/{rid}"),
        Auth::Cookie(&s),
        Some(json!({"settings": {"sl_amount": "40"}})),
    )
    .await;
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/traders/{tid}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(
        r.body["settings"]["sl_amount"],
        json!({"value": "40", "inherited": true})
    );
    let list = api
        .call(Method::GET, "/api/v1/traders", Auth::Cookie(&s), None)
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/traders/{tid}"),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

// ---- controls -----------------------------------------------------------------------------

// ---- administration -----------------------------------------------------------------------

#[tokio::test]
async fn admins_manage_users_and_every_action_is_audited() {
    let api = TestApi::new().await;
    let admin = api.login_admin("root@example.com").await;
    let user = api.login("plain@example.com").await;

    // A non-admin is refused every admin route.
    let r = api
        .call(
            Method::GET,
            "/api/v1/admin/users",
            Auth::Cookie(&user),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Create: a generated password is shown once and works.
    let c = api
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Auth::Cookie(&admin),
            Some(json!({"email": "New@Example.com", "display_name": "New"})),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    assert_eq!(c.body["user"]["email"], "new@example.com");
    assert_eq!(c.body["user"]["approved"], true);
    let password = c.body["password"].as_str().unwrap().to_string();
    let new_id = c.body["user"]["id"].as_str().unwrap().to_string();
    let login = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": "new@example.com", "password": password})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    for (body, status, field) in [
        (
            json!({"email": "new@example.com"}),
            StatusCode::CONFLICT,
            "email",
        ),
        (
            json!({"email": "x@example.com", "role": "god"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "role",
        ),
        (
            json!({"email": "not an address"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            json!({"email": "y@example.com", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password",
        ),
    ] {
        let r = api
            .call(
                Method::POST,
                "/api/v1/admin/users",
                Auth::Cookie(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.field(), Some(field), "{body}: {}", r.body);
    }

    // Disable: the user's token is refused from the next request on; re-enable restores it.
    let token = api.token(user.user).await;
    let off = api
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/users/{}", user.user),
            Auth::Cookie(&admin),
            Some(json!({"approved": false})),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.body["approved"], false);
    let me = api
        .call(Method::GET, "/api/v1/me", Auth::Bearer(&token), None)
        .await;
    assert_eq!(me.status, StatusCode::FORBIDDEN, "{}", me.body);
    api.call(
        Method::PATCH,
        &format!("/api/v1/admin/users/{}", user.user),
        Auth::Cookie(&admin),
        Some(json!({"approved": true, "role": "admin"})),
    )
    .await;
    let me = api
        .call(Method::GET, "/api/v1/me", Auth::Bearer(&token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"]["role"], "admin");
    // An admin cannot lock themselves out.
    for body in [json!({"approved": false}), json!({"role": "user"})] {
        let r = api
            .call(
                Method::PATCH,
                &format!("/api/v1/admin/users/{}", admin.user),
                Auth::Cookie(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
    }
    let own = api
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/users/{}", admin.user),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);

    // Delete with everything the user owns.
    let subs = account_with_subs(&api, &admin, 0).await;
    assert!(subs.is_empty());
    let gone = api
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/users/{new_id}"),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let missing = api
        .call(
            Method::GET,
            &format!("/api/v1/admin/users/{new_id}"),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The audit log names each action, newest first.
    let log = api
        .call(
            Method::GET,
            "/api/v1/admin/audit?limit=50",
            Auth::Cookie(&admin),
            None,
        )
        .await;
    let actions: Vec<&str> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"user.delete"), "{actions:?}");
    for a in [
        "user.create",
        "user.approve",
        "user.set_role",
        "user.delete",
    ] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
    assert!(
        log.body
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["actor_email"] == "root@example.com")
    );
}

#[tokio::test]
async fn an_admin_views_as_a_user_read_only_and_audited() {
    let api = TestApi::new().await;
    let admin = api.login_admin("viewer@example.com").await;
    let user = api.login("viewed@example.com").await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&user),
            Some(json!({"name": "The user's"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let view = user.user.to_string();
    let as_user = [("x-view-as", view.as_str())];
    let seen = api
        .call_with(
            Method::GET,
            "/api/v1/recorders",
            Auth::Cookie(&admin),
            None,
            &as_user,
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.body[0]["name"], "The user's");
    let me = api
        .call_with(
            Method::GET,
            "/api/v1/me",
            Auth::Cookie(&admin),
            None,
            &as_user,
        )
        .await;
    assert_eq!(me.body["viewing_as"], json!(view), "{}", me.body);
    assert_eq!(me.body["user"]["email"], "viewer@example.com");
    let own = api
        .call(Method::GET, "/api/v1/recorders", Auth::Cookie(&admin), None)
        .await;
    assert_eq!(own.body, json!([]));
    // Writes are refused while viewing as.
    let w = api
        .call_with(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&admin),
            Some(json!({"name": "sneaky"})),
            &as_user,
        )
        .await;
    assert_eq!(w.status, StatusCode::FORBIDDEN, "{}", w.body);
    assert_eq!(w.field(), Some("x-view-as"));
    // A non-admin cannot view as anyone; a missing user is 404; a malformed id 400.
    let admin_id = admin.user.to_string();
    let n = api
        .call_with(
            Method::GET,
            "/api/v1/recorders",
            Auth::Cookie(&user),
            None,
            &[("x-view-as", admin_id.as_str())],
        )
        .await;
    assert_eq!(n.status, StatusCode::FORBIDDEN, "{}", n.body);
    let missing = uuid::Uuid::now_v7().to_string();
    let m = api
        .call_with(
            Method::GET,
            "/api/v1/recorders",
            Auth::Cookie(&admin),
            None,
            &[("x-view-as", missing.as_str())],
        )
        .await;
    assert_eq!(m.status, StatusCode::NOT_FOUND, "{}", m.body);
    let bad = api
        .call_with(
            Method::GET,
            "/api/v1/recorders",
            Auth::Cookie(&admin),
            None,
            &[("x-view-as", "nobody")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let log = api
        .call(
            Method::GET,
            "/api/v1/admin/audit",
            Auth::Cookie(&admin),
            None,
        )
        .await;
    let views: Vec<_> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "user.view_as")
        .collect();
    assert_eq!(views.len(), 2, "each read audited: {}", log.body);
    assert_eq!(views[0]["target_user_id"], json!(view));
}

#[tokio::test]
async fn the_global_kill_switch_flattens_every_users_accounts_and_is_audited() {
    let api = TestApi::new().await;
    let admin = api.login_admin("ops@example.com").await;
    let a = api.login("a@example.com").await;
    let b = api.login("b@example.com").await;
    let sa = account_with_subs(&api, &a, 2).await;
    let sb = account_with_subs(&api, &b, 1).await;
    let user_try = api
        .call(
            Method::PUT,
            "/api/v1/admin/kill",
            Auth::Cookie(&a),
            Some(json!({"engaged": true})),
        )
        .await;
    assert_eq!(user_try.status, StatusCode::FORBIDDEN);
    let k = api
        .call(
            Method::PUT,
            "/api/v1/admin/kill",
            Auth::Cookie(&admin),
            Some(json!({"engaged": true, "reason": "exchange halt"})),
        )
        .await;
    assert_eq!(k.status, StatusCode::OK, "{}", k.body);
    assert_eq!(k.body["engaged"], true);
    let queued = k.body["flatten"]["intent_ids"].as_array().unwrap();
    assert_eq!(queued.len(), sa.len() + sb.len(), "{}", k.body);
    // The switch is what the executor reads: every sub-account sees it engaged.
    for sub in sa.iter().chain(&sb) {
        let id: jt_store::SubAccountId = serde_json::from_value(json!(sub)).unwrap();
        let owner = if sa.contains(sub) { a.user } else { b.user };
        let (s, _) = api
            .store
            .accounts()
            .sub_account_with_account(owner, id)
            .await
            .unwrap();
        assert!(api.store.risk().kill_state_of(&s).await.unwrap().engaged());
    }
    let r = api
        .call(
            Method::PUT,
            "/api/v1/admin/kill",
            Auth::Cookie(&admin),
            Some(json!({"engaged": false})),
        )
        .await;
    assert_eq!(r.body["flatten"]["intent_ids"], json!([]));
    let log = api
        .call(
            Method::GET,
            "/api/v1/admin/audit",
            Auth::Cookie(&admin),
            None,
        )
        .await;
    let actions: Vec<&str> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..2],
        &["kill.global.release", "kill.global.engage"]
    );
}

#[tokio::test]
async fn dead_letters_are_listed_and_retried_by_admins() {
    use jt_bus::{ConsumeOptions, DeadLetterQuery, Definitions, Incoming, Outcome};
    use jt_messages::IntentMessage;
    let api = TestApi::new().await;
    let admin = api.login_admin("dl@example.com").await;
    let user = api.login("trader@example.com").await;
    let empty = api
        .call(
            Method::GET,
            "/api/v1/admin/dead-letters",
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body, json!([]));

    // A manual trade whose intent the (stand-in) executor refuses: a real dead letter.
    let subs = account_with_subs(&api, &user, 1).await;
    let t = api
        .call_with(
            Method::POST,
            &format!("/api/v1/sub-accounts/{}/orders", subs[0]),
            Auth::Cookie(&user),
            Some(json!({"symbol": "MNQ", "action": "entry", "direction": "long", "qty": 1})),
            &[("idempotency-key", "dl-test")],
        )
        .await;
    assert_eq!(t.status, StatusCode::ACCEPTED, "{}", t.body);
    let defs = Definitions::new(api.bus.namespace());
    let stop = tokio_util::sync::CancellationToken::new();
    let consumer = {
        let (bus, def, stop) = (api.bus.clone(), defs.execute.clone(), stop.clone());
        let options = ConsumeOptions {
            max_in_flight: 1,
            pull_expiry: std::time::Duration::from_millis(200),
            ..ConsumeOptions::default()
        };
        tokio::spawn(async move {
            bus.consume(&def, options, stop, |_m: Incoming<IntentMessage>| async {
                Outcome::reject("test: the executor refused it")
            })
            .await
        })
    };
    let mut listed = json!([]);
    for _ in 0..100 {
        listed = api
            .call(
                Method::GET,
                "/api/v1/admin/dead-letters",
                Auth::Cookie(&admin),
                None,
            )
            .await
            .body;
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.cancel();
    consumer.await.unwrap().unwrap();
    let letters = listed.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    assert!(
        letters[0]["stream"].as_str().unwrap().ends_with("ORDERS"),
        "{listed}"
    );
    assert_eq!(letters[0]["reason"], "test: the executor refused it");
    assert_eq!(letters[0]["body"]["intent_id"], t.body["intent_ids"][0]);
    // Non-admins cannot see or retry them.
    let seq = letters[0]["sequence"].as_u64().unwrap();
    let u = api
        .call(
            Method::POST,
            &format!("/api/v1/admin/dead-letters/{seq}/retry"),
            Auth::Cookie(&user),
            None,
        )
        .await;
    assert_eq!(u.status, StatusCode::FORBIDDEN);
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/admin/dead-letters/{seq}/retry"),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body["message_id"].as_str().unwrap().ends_with(":retry:1"),
        "{}",
        r.body
    );
    let after = api
        .bus
        .dead_letters(&defs.dead_letters, &DeadLetterQuery::default())
        .await
        .unwrap();
    assert!(after.is_empty(), "retried letters are removed");
    let again = api
        .call(
            Method::POST,
            &format!("/api/v1/admin/dead-letters/{seq}/retry"),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    let log = api
        .call(
            Method::GET,
            "/api/v1/admin/audit",
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(log.body[0]["action"], "dead_letter.retry");

    for (q, field) in [("stream=a.b", "stream"), ("limit=0", "limit")] {
        let r = api
            .call(
                Method::GET,
                &format!("/api/v1/admin/dead-letters?{q}"),
                Auth::Cookie(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
        assert_eq!(r.field(), Some(field));
    }
}

// ---- status -------------------------------------------------------------------------------

#[tokio::test]
async fn status_shows_each_login_its_connection_and_unprotected_positions() {
    use jt_bus::Definitions;
    use jt_domain::Side;
    use jt_messages::login_status::{LinkState, LoginStatus, status_key};
    use jt_store::repo::broker::{BrokerOrder, BrokerPosition};
    use jt_store::{BrokerOrderStatus, BrokerOrderType, OrderRole, SubAccountId};
    use rust_decimal_macros::dec;

    let api = TestApi::new().await;
    let s = api.login("status@example.com").await;
    let subs = account_with_subs(&api, &s, 2).await;
    let sub = |i: usize| -> SubAccountId { serde_json::from_value(json!(subs[i])).unwrap() };
    let now = chrono::Utc::now();
    let broker = api.store.broker();
    // Sub-account 1: long 3 MNQ with a stop for 3 (ours) and a take-profit for 2 → protected.
    // Sub-account 2: short 2 ES with only a hand-placed limit buy → unprotected. A flat NQ
    // position is not shown.
    for (sub, contract, qty) in [
        (sub(0), "MNQZ6", 3),
        (sub(1), "ESZ6", -2),
        (sub(1), "NQZ6", 0),
    ] {
        broker
            .upsert_position(
                s.user,
                BrokerPosition {
                    sub_account: sub,
                    contract: contract.into(),
                    net_quantity: qty,
                    average_price: Some(dec!(21000.25)),
                    realized_pnl: None,
                    broker_updated_at: now,
                },
            )
            .await
            .unwrap();
    }
    let order = |sub, id: &str, contract: &str, side, order_type, role, quantity| BrokerOrder {
        sub_account: sub,
        broker_order_id: id.into(),
        client_order_id: None,
        intent: None,
        contract: contract.into(),
        side,
        order_type,
        role,
        quantity,
        filled_quantity: 0,
        limit_price: None,
        stop_price: None,
        average_fill_price: None,
        status: BrokerOrderStatus::Working,
        status_reason: None,
        broker_updated_at: now,
    };
    for o in [
        order(
            sub(0),
            "1",
            "MNQZ6",
            Side::Sell,
            BrokerOrderType::Stop,
            Some(OrderRole::Stop),
            3,
        ),
        order(
            sub(0),
            "2",
            "MNQZ6",
            Side::Sell,
            BrokerOrderType::Limit,
            Some(OrderRole::TakeProfit),
            2,
        ),
        order(
            sub(1),
            "3",
            "ESZ6",
            Side::Buy,
            BrokerOrderType::Limit,
            None,
            2,
        ),
    ] {
        broker.upsert_order(s.user, o).await.unwrap();
    }

    // No connection manager yet: the login is not held.
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let login = &r.body[0];
    assert_eq!(login["auth"]["status"], "ok");
    assert_eq!(login["connection"]["state"], "not_held");
    let a = &login["sub_accounts"][0];
    assert_eq!(a["positions"].as_array().unwrap().len(), 1, "{a}");
    let p = &a["positions"][0];
    assert_eq!(
        (
            p["net_quantity"].clone(),
            p["stop_quantity"].clone(),
            p["take_profit_quantity"].clone()
        ),
        (json!(3), json!(3), json!(2))
    );
    assert_eq!(p["unprotected"], false);
    assert_eq!(p["average_price"], "21000.25");
    let b = &login["sub_accounts"][1];
    assert_eq!(
        b["positions"].as_array().unwrap().len(),
        1,
        "flat positions are left out: {b}"
    );
    assert_eq!(b["positions"][0]["unprotected"], true);
    assert_eq!(b["positions"][0]["take_profit_quantity"], 2);

    // The connection manager's record, as it writes it.
    let account: jt_store::BrokerAccountId =
        serde_json::from_value(login["account_id"].clone()).unwrap();
    let defs = Definitions::new(api.bus.namespace());
    let kv = api.bus.kv(&defs.leases).await.unwrap();
    let status = LoginStatus {
        broker_account_id: account,
        owner: "connmgr-0".into(),
        state: LinkState::Disconnected,
        since: now,
        last_event_at: Some(now),
        reconnects: 2,
        reason: Some("server silent for 10 s".into()),
        accounts: 2,
        published: 7,
    };
    kv.put(
        &status_key(account),
        serde_json::to_vec(&status).unwrap().into(),
    )
    .await
    .unwrap();
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&s), None)
        .await;
    let c = &r.body[0]["connection"];
    assert_eq!(c["state"], "disconnected");
    assert_eq!(c["reconnects"], 2);
    assert_eq!(c["reason"], "server silent for 10 s");
    assert_eq!(c["holder"], "connmgr-0");

    // Another user sees none of it.
    let other = api.login("other@example.com").await;
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&other), None)
        .await;
    assert_eq!(r.body, json!([]));
}

// ---- plans and Whop -------------------------------------------------------------------------

async fn define_plans(api: &TestApi) {
    let admin = api.login_admin("plans-admin@example.com").await;
    for (code, body) in [
        (
            "free",
            json!({"name": "Free", "max_broker_accounts": 1, "max_recorders": 1, "max_followers": 0}),
        ),
        (
            "pro",
            json!({"name": "Pro", "max_broker_accounts": 3, "max_recorders": 10, "max_followers": 5,
                       "features": ["copy_trading"]}),
        ),
    ] {
        let r = api
            .call(
                Method::PUT,
                &format!("/api/v1/admin/plans/{code}"),
                Auth::Cookie(&admin),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

fn signed_whop(
    id: &str,
    at: i64,
    body: &serde_json::Value,
) -> axum::http::Request<axum::body::Body> {
    let raw = serde_json::to_vec(body).unwrap();
    let key = jt_api::whop::WhopConfig::key_of(WHOP_SECRET).unwrap();
    axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/webhooks/whop")
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", jt_api::whop::sign(&key, id, at, &raw))
        .body(axum::body::Body::from(raw))
        .unwrap()
}

const WHOP_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn membership(kind: &str, id: &str, email: &str, product: &str) -> serde_json::Value {
    json!({"type": kind, "api_version": "v1",
           "data": {"id": id, "status": "active", "product": {"id": product},
                    "user": {"email": email}, "renewal_period_end": "2031-01-01T00:00:00Z"}})
}

#[tokio::test]
async fn plan_limits_refuse_creates_past_the_limit_naming_it() {
    let api = TestApi::with_config(jt_api::ApiConfig {
        default_plan: Some("free".into()),
        ..jt_api::ApiConfig::default()
    })
    .await;
    define_plans(&api).await;
    let s = api.login("limited@example.com").await;
    let subs = account_with_subs(&api, &s, 2).await; // the one broker account allowed
    let second = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "Two", "broker": "sim", "environment": "demo", "username": "b",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    assert_eq!(second.status, StatusCode::FORBIDDEN, "{}", second.body);
    assert_eq!(second.code(), Some("plan_limit"));
    assert_eq!(second.field(), Some("max_broker_accounts"));
    assert!(
        second.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Free"),
        "{}",
        second.body
    );
    let r1 = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "one"})),
        )
        .await;
    assert_eq!(r1.status, StatusCode::CREATED);
    let r2 = api
        .call(
            Method::POST,
            "/api/v1/recorders",
            Auth::Cookie(&s),
            Some(json!({"name": "two"})),
        )
        .await;
    assert_eq!(r2.field(), Some("max_recorders"), "{}", r2.body);
    let l = api
        .call(
            Method::POST,
            "/api/v1/leaders",
            Auth::Cookie(&s),
            Some(json!({"sub_account_id": subs[0]})),
        )
        .await;
    let leader = l.body["id"].as_str().unwrap();
    let f = api
        .call(
            Method::POST,
            &format!("/api/v1/leaders/{leader}/followers"),
            Auth::Cookie(&s),
            Some(json!({"sub_account_id": subs[1]})),
        )
        .await;
    assert_eq!(f.status, StatusCode::FORBIDDEN, "{}", f.body);
    assert_eq!(f.field(), Some("max_followers"));
    let mine = api
        .call(Method::GET, "/api/v1/subscription", Auth::Cookie(&s), None)
        .await;
    assert_eq!(mine.body["source"], "default");
    assert_eq!(mine.body["plan"]["code"], "free");
    assert_eq!(
        (
            mine.body["broker_accounts"].clone(),
            mine.body["recorders"].clone()
        ),
        (json!(1), json!(1))
    );
    let plans = api
        .call(Method::GET, "/api/v1/plans", Auth::Cookie(&s), None)
        .await;
    assert_eq!(plans.body.as_array().unwrap().len(), 2);
    // A non-admin cannot define plans.
    let p = api
        .call(
            Method::PUT,
            "/api/v1/admin/plans/pro",
            Auth::Cookie(&s),
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn whop_webhooks_are_verified_and_make_the_membership_the_users_plan() {
    let mut config = jt_api::ApiConfig {
        default_plan: Some("free".into()),
        ..jt_api::ApiConfig::default()
    };
    config.whop = Some(jt_api::whop::WhopConfig::webhooks(
        jt_api::whop::WhopConfig::key_of(WHOP_SECRET).unwrap(),
        [("prod_pro".to_string(), "pro".to_string())].into(),
    ));
    let api = TestApi::with_config(config).await;
    define_plans(&api).await;
    let now = chrono::Utc::now().timestamp();

    // A buyer without an account: one is made, with a mail to choose a password.
    let bought = membership(
        "membership.activated",
        "mem_1",
        "Buyer@Example.com",
        "prod_pro",
    );
    let r = api.send(signed_whop("msg_1", now - 10, &bought)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["result"], "applied");
    let mails = api.mails();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("buyer@example.com") && m.contains("reset-password?token=")),
        "{mails:?}"
    );
    let user = api
        .store
        .system()
        .user_by_email("buyer@example.com")
        .await
        .unwrap()
        .unwrap();
    let sub = api
        .store
        .plans()
        .current_subscription(user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.provider_subscription_id, "mem_1");
    // The same delivery again (Whop retries): applied again, same state.
    let again = api.send(signed_whop("msg_1", now - 10, &bought)).await;
    assert_eq!(again.status, StatusCode::OK);
    // A deactivation, then an older activation arriving late: the later state stands.
    let gone = membership(
        "membership.deactivated",
        "mem_1",
        "buyer@example.com",
        "prod_pro",
    );
    let r = api.send(signed_whop("msg_2", now - 5, &gone)).await;
    assert_eq!(r.body["result"], "applied", "{}", r.body);
    let late = api.send(signed_whop("msg_3", now - 60, &bought)).await;
    assert_eq!(late.body["result"], "stale", "{}", late.body);
    assert!(
        api.store
            .plans()
            .current_subscription(user.id)
            .await
            .unwrap()
            .is_none()
    );

    // Refused: wrong signature, stale timestamp, missing headers — nothing applied.
    let mut forged = signed_whop("msg_4", now, &bought);
    forged
        .headers_mut()
        .insert("webhook-signature", "v1,AAAA".parse().unwrap());
    assert_eq!(api.send(forged).await.status, StatusCode::UNAUTHORIZED);
    let old = api.send(signed_whop("msg_5", now - 600, &bought)).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.body);
    let mut bare = signed_whop("msg_6", now, &bought);
    bare.headers_mut().remove("webhook-id");
    assert_eq!(api.send(bare).await.status, StatusCode::UNAUTHORIZED);
    assert!(
        api.store
            .plans()
            .current_subscription(user.id)
            .await
            .unwrap()
            .is_none()
    );

    // Ignored, acknowledged: another product, another event type.
    let other = membership(
        "membership.activated",
        "mem_9",
        "x@example.com",
        "prod_other",
    );
    let r = api.send(signed_whop("msg_7", now, &other)).await;
    assert_eq!(r.body["result"], "ignored");
    let pay = json!({"type": "payment.succeeded", "data": {"id": "pay_1"}});
    assert_eq!(
        api.send(signed_whop("msg_8", now, &pay)).await.body["result"],
        "ignored"
    );

    // An existing user buys Pro: their limits follow.
    let s = api.login("upgrader@example.com").await;
    account_with_subs(&api, &s, 1).await;
    let denied = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "Two", "broker": "sim", "environment": "demo", "username": "b",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    assert_eq!(denied.code(), Some("plan_limit"));
    let up = membership(
        "membership.activated",
        "mem_2",
        "upgrader@example.com",
        "prod_pro",
    );
    assert_eq!(
        api.send(signed_whop("msg_9", now, &up)).await.body["result"],
        "applied"
    );
    let allowed = api
        .call(
            Method::POST,
            "/api/v1/broker-accounts",
            Auth::Cookie(&s),
            Some(
                json!({"label": "Two", "broker": "sim", "environment": "demo", "username": "b",
                        "credentials": {"password": "pw"}}),
            ),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.body);
    let mine = api
        .call(Method::GET, "/api/v1/subscription", Auth::Cookie(&s), None)
        .await;
    assert_eq!(mine.body["source"], "subscription");
    assert_eq!(mine.body["plan"]["code"], "pro");
    assert_eq!(mine.body["status"], "active");
}

/// A local stand-in for Whop's memberships API: two pages, bearer key checked.
async fn fake_whop() -> String {
    use axum::extract::Query;
    use axum::routing::get;
    async fn memberships(
        headers: axum::http::HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Result<axum::Json<serde_json::Value>, StatusCode> {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer whop-key") {
            return Err(StatusCode::UNAUTHORIZED);
        }
        let m = |id: &str, email: &str, product: &str, valid: bool| {
            json!({"id": id, "valid": valid, "status": if valid { "active" } else { "canceled" },
                   "product": {"id": product}, "email": email, "renewal_period_end": 1_924_992_000})
        };
        Ok(axum::Json(match q.get("page").map(String::as_str) {
            Some("1") => json!({"data": [m("mem_a", "missed@example.com", "prod_pro", true),
                                          m("mem_b", "other@example.com", "prod_x", true)],
                                 "pagination": {"current_page": 1, "total_page": 2}}),
            _ => json!({"data": [m("mem_c", "lapsed@example.com", "prod_pro", false)],
                        "pagination": {"current_page": 2, "total_page": 2}}),
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/api/v2/memberships", get(memberships)),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_whop_sync_applies_memberships_a_webhook_missed() {
    jt_runtime::tls::install_crypto_provider();
    let api = TestApi::new().await;
    define_plans(&api).await;
    // A user whose webhook never came, and one whose membership lapsed.
    let lapsed = api.login("lapsed@example.com").await;
    let base = fake_whop().await;
    let config = jt_api::whop::WhopConfig {
        api_key: Some(jt_store::Secret::new("whop-key")),
        api_url: base.clone(),
        ..jt_api::whop::WhopConfig::webhooks(
            Vec::new(),
            [("prod_pro".to_string(), "pro".to_string())].into(),
        )
    };
    let source = jt_api::whop::WhopHttp::new(&base, jt_store::Secret::new("whop-key")).unwrap();
    let r = jt_api::whop::sync_once(&api.state, &config, &source)
        .await
        .unwrap();
    assert_eq!((r.applied, r.ignored, r.failed), (2, 1, 0), "{r:?}");
    let missed = api
        .store
        .system()
        .user_by_email("missed@example.com")
        .await
        .unwrap()
        .unwrap();
    let sub = api
        .store
        .plans()
        .current_subscription(missed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.provider_subscription_id, "mem_a");
    assert!(api.mails().iter().any(|m| m.contains("missed@example.com")));
    assert!(
        api.store
            .plans()
            .current_subscription(lapsed.user)
            .await
            .unwrap()
            .is_none()
    );
    // A second pass changes nothing new and mails nobody again.
    let mails = api.mails().len();
    let again = jt_api::whop::sync_once(&api.state, &config, &source)
        .await
        .unwrap();
    assert_eq!(again.failed, 0);
    assert_eq!(api.mails().len(), mails);
    // A wrong key: the pass fails and says so.
    let bad = jt_api::whop::WhopHttp::new(&base, jt_store::Secret::new("nope")).unwrap();
    let e = jt_api::whop::sync_once(&api.state, &config, &bad)
        .await
        .unwrap_err();
    assert!(e.contains("401"), "{e}");
}

#[tokio::test]
async fn the_whop_webhook_is_404_when_whop_is_not_configured() {
    let api = TestApi::new().await;
    let r = api
        .send(signed_whop(
            "msg_1",
            chrono::Utc::now().timestamp(),
            &json!({}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

// ---- copy trading -------------------------------------------------------------------------

#[tokio::test]
async fn leaders_followers_and_mappings_are_kept_with_their_rules() {
    let api = TestApi::new().await;
    let s = api.login("copy@example.com").await;
    let subs = account_with_subs(&api, &s, 4).await;
    let (lead, f1, f2, f3) = (&subs[0], &subs[1], &subs[2], &subs[3]);
    let call = |m: Method, path: String, body: Option<serde_json::Value>| {
        let api = &api;
        let s = &s;
        async move { api.call(m, &path, Auth::Cookie(s), body).await }
    };

    let l = call(
        Method::POST,
        "/api/v1/leaders".into(),
        Some(json!({"sub_account_id": lead, "label": "Main"})),
    )
    .await;
    assert_eq!(l.status, StatusCode::CREATED, "{}", l.body);
    assert_eq!(
        (l.body["enabled"].clone(), l.body["auto_copy"].clone()),
        (json!(true), json!(true))
    );
    let leader = l.body["id"].as_str().unwrap().to_string();
    let again = call(
        Method::POST,
        "/api/v1/leaders".into(),
        Some(json!({"sub_account_id": lead})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.field(), Some("sub_account_id"));

    let followers = format!("/api/v1/leaders/{leader}/followers");
    // The leader's own account cannot follow it.
    let own = call(
        Method::POST,
        followers.clone(),
        Some(json!({"sub_account_id": lead})),
    )
    .await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);
    for (body, field) in [
        (
            json!({"sub_account_id": f1, "multiplier": "0"}),
            "multiplier",
        ),
        (
            json!({"sub_account_id": f1, "multiplier": "-1"}),
            "multiplier",
        ),
        (
            json!({"sub_account_id": f1, "max_position_size": 0}),
            "max_position_size",
        ),
        (
            json!({"sub_account_id": f1, "daily_loss_limit": "0"}),
            "daily_loss_limit",
        ),
        (json!({"multiplier": "2"}), "sub_account_id"),
        (
            json!({"sub_account_id": f1, "mappings": [{"source_root": "NQ", "target_root": "MNQ", "quantity_ratio": "0"}]}),
            "mappings[0].quantity_ratio",
        ),
        (
            json!({"sub_account_id": f1, "mappings": [
                {"source_root": "NQ", "target_root": "MNQ", "quantity_ratio": "10"},
                {"source_root": "nq", "target_root": "NQ", "quantity_ratio": "1"}]}),
            "mappings[1].source_root",
        ),
        (
            json!({"sub_account_id": f1, "mappings": [{"source_root": "", "target_root": "MNQ", "quantity_ratio": "1"}]}),
            "mappings[0].source_root",
        ),
    ] {
        let r = call(Method::POST, followers.clone(), Some(body.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.field(), Some(field), "{body}: {}", r.body);
    }
    // Nothing of the refused requests was kept.
    let none = call(Method::GET, followers.clone(), None).await;
    assert_eq!(none.body, json!([]));

    let a = call(
        Method::POST,
        followers.clone(),
        Some(json!({"sub_account_id": f1, "multiplier": "2", "max_position_size": 6,
                    "mappings": [{"source_root": "nq", "target_root": "mnq", "quantity_ratio": "10"}]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["multiplier"], "2");
    assert_eq!(a.body["max_position_size"], 6);
    assert_eq!(
        a.body["mappings"],
        json!([{"source_root": "NQ", "target_root": "MNQ", "quantity_ratio": "10"}])
    );
    let b = call(
        Method::POST,
        followers.clone(),
        Some(json!({"sub_account_id": f2, "multiplier": "0.5", "copy_sl": false})),
    )
    .await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    assert_eq!(
        (b.body["copy_tp"].clone(), b.body["copy_sl"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        b.body["closed_by_hand_stays_flat"],
        json!(false),
        "re-synced by default"
    );
    let dup = call(
        Method::POST,
        followers.clone(),
        Some(json!({"sub_account_id": f2})),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);
    let c = call(
        Method::POST,
        followers.clone(),
        Some(json!({"sub_account_id": f3})),
    )
    .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    assert_eq!(c.body["multiplier"], "1");
    assert_eq!(c.body["max_position_size"], json!(null));

    // PATCH: absent fields keep their value, null clears, mappings replace the list.
    let fa = a.body["id"].as_str().unwrap().to_string();
    let p = call(
        Method::PATCH,
        format!("/api/v1/followers/{fa}"),
        Some(json!({"max_position_size": null, "daily_loss_limit": "500", "mappings": []})),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["multiplier"], "2");
    assert_eq!(p.body["max_position_size"], json!(null));
    assert_eq!(p.body["daily_loss_limit"], "500");
    assert_eq!(p.body["mappings"], json!([]));
    // The follower's choice for a position closed by hand: kept flat, then re-synced again.
    for on in [true, false] {
        let s = call(
            Method::PATCH,
            format!("/api/v1/followers/{fa}"),
            Some(json!({"closed_by_hand_stays_flat": on})),
        )
        .await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        assert_eq!(s.body["closed_by_hand_stays_flat"], json!(on));
        assert_eq!(s.body["daily_loss_limit"], "500", "other fields kept");
        let read = call(Method::GET, format!("/api/v1/followers/{fa}"), None).await;
        assert_eq!(read.body["closed_by_hand_stays_flat"], json!(on));
    }
    let bad = call(
        Method::PATCH,
        format!("/api/v1/followers/{fa}"),
        Some(json!({"closed_by_hand_stays_flat": "yes"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let moved = call(
        Method::PATCH,
        format!("/api/v1/followers/{fa}"),
        Some(json!({"sub_account_id": f3})),
    )
    .await;
    assert_eq!(
        moved.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        moved.body
    );
    assert_eq!(moved.field(), Some("sub_account_id"));
    let listed = call(Method::GET, followers.clone(), None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 3);

    // The leader: automatic mode off, then removed with its followers.
    let off = call(
        Method::PATCH,
        format!("/api/v1/leaders/{leader}"),
        Some(json!({"auto_copy": false})),
    )
    .await;
    assert_eq!(
        (off.body["enabled"].clone(), off.body["auto_copy"].clone()),
        (json!(true), json!(false))
    );
    let gone = call(Method::DELETE, format!("/api/v1/leaders/{leader}"), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let f = call(Method::GET, format!("/api/v1/followers/{fa}"), None).await;
    assert_eq!(f.status, StatusCode::NOT_FOUND, "{}", f.body);
    let l = call(Method::GET, "/api/v1/leaders".into(), None).await;
    assert_eq!(l.body, json!([]));
}

#[tokio::test]
async fn the_copy_log_pages_newest_first_and_filters() {
    use jt_store::repo::copy::{FollowerSettings, NewCopy};
    use jt_store::{CopyLogId, CopyStatus, CopyTrigger, SubAccountId};
    let api = TestApi::new().await;
    let s = api.login("copylog@example.com").await;
    let subs = account_with_subs(&api, &s, 3).await;
    let sub = |i: usize| -> SubAccountId { serde_json::from_value(json!(subs[i])).unwrap() };
    let copying = api.store.copying();
    let leader = copying
        .create_leader(s.user, sub(0), None, true)
        .await
        .unwrap();
    let f1 = copying
        .add_follower(s.user, leader.id, sub(1), FollowerSettings::default())
        .await
        .unwrap();
    let f2 = copying
        .add_follower(s.user, leader.id, sub(2), FollowerSettings::default())
        .await
        .unwrap();
    for i in 0..5u32 {
        for (f, status) in [(&f1, CopyStatus::Filled), (&f2, CopyStatus::Skipped)] {
            copying
                .record_copy(
                    s.user,
                    NewCopy {
                        id: CopyLogId(uuid::Uuid::now_v7()),
                        leader: leader.id,
                        follower: f.id,
                        trigger: CopyTrigger::Auto,
                        leader_fill_id: Some(format!("fill-{i}")),
                        leader_order_id: None,
                        leader_symbol: "NQZ6".into(),
                        follower_symbol: "MNQZ6".into(),
                        leader_side: None,
                        follower_side: None,
                        leader_quantity: 1,
                        follower_quantity: 10,
                        leader_price: None,
                        status,
                        error: None,
                    },
                )
                .await
                .unwrap();
        }
    }
    // Pages of 3 over 10 rows: every row once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/copy-log?limit=3&cursor={c}"),
            None => "/api/v1/copy-log?limit=3".into(),
        };
        let r = api.call(Method::GET, &q, Auth::Cookie(&s), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for item in r.body["items"].as_array().unwrap() {
            seen.push(
                item["created_at"].as_str().unwrap().to_string() + item["id"].as_str().unwrap(),
            );
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    sorted.dedup();
    assert_eq!(sorted.len(), 10, "no row twice");

    let only = api
        .call(
            Method::GET,
            &format!("/api/v1/copy-log?follower_id={}&status=filled", f1.id.0),
            Auth::Cookie(&s),
            None,
        )
        .await;
    let items = only.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(
        items
            .iter()
            .all(|i| i["status"] == "filled" && i["follower_quantity"] == 10)
    );
    let skipped = api
        .call(
            Method::GET,
            "/api/v1/copy-log?status=skipped",
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(skipped.body["items"].as_array().unwrap().len(), 5);
    for (q, field) in [
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
    ] {
        let r = api
            .call(
                Method::GET,
                &format!("/api/v1/copy-log?{q}"),
                Auth::Cookie(&s),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
        assert_eq!(r.field(), Some(field), "{q}");
    }
    let missing = api
        .call(
            Method::GET,
            &format!("/api/v1/copy-log?leader_id={}", uuid::Uuid::now_v7()),
            Auth::Cookie(&s),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_manual_trade_needs_an_idempotency_key_and_a_repeat_is_one_intent() {
    let api = TestApi::new().await;
    let s = api.login("manual@example.com").await;
    let subs = account_with_subs(&api, &s, 1).await;
    let uri = format!("/api/v1/sub-accounts/{}/orders", subs[0]);
    let body = json!({"symbol": "MNQ1!", "action": "entry", "direction": "long", "qty": 2,
                      "take_profit_ticks": "20", "stop_loss_ticks": "30"});
    let r = api
        .call(Method::POST, &uri, Auth::Cookie(&s), Some(body.clone()))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, Some("idempotency-key"))
    );
    let first = api
        .call_with(
            Method::POST,
            &uri,
            Auth::Cookie(&s),
            Some(body.clone()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["duplicate"], false);
    let again = api
        .call_with(
            Method::POST,
            &uri,
            Auth::Cookie(&s),
            Some(body.clone()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(again.body["intent_ids"], first.body["intent_ids"]);
    assert_eq!(again.body["duplicate"], true, "the bus drops the repeat");
    let other = api
        .call_with(
            Method::POST,
            &uri,
            Auth::Cookie(&s),
            Some(body),
            &[("idempotency-key", "k-2")],
        )
        .await;
    assert_ne!(other.body["intent_ids"], first.body["intent_ids"]);

    let r = api
        .call_with(
            Method::POST,
            &uri,
            Auth::Cookie(&s),
            Some(json!({"symbol": "MNQ1!", "action": "entry", "qty": 1})),
            &[("idempotency-key", "k-3")],
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("direction"))
    );
    let r = api
        .call_with(
            Method::POST,
            &uri,
            Auth::Cookie(&s),
            Some(json!({"symbol": "MNQ1!", "action": "exit", "take_profit_ticks": "4"})),
            &[("idempotency-key", "k-4")],
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("take_profit_ticks"))
    );
    let r = api
        .call_with(
            Method::POST,
            &uri,
            Auth::Cookie(&s),
            Some(
                json!({"symbol": "MNQ1!", "action": "entry", "direction": "short", "qty": 1,
                        "stop_loss_price": "21010"}),
            ),
            &[("idempotency-key", "k-5")],
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reference_price"))
    );
}

#[tokio::test]
async fn kill_switches_are_stored_and_flatten_every_sub_account() {
    let api = TestApi::new().await;
    let s = api.login("kill@example.com").await;
    let subs = account_with_subs(&api, &s, 2).await;
    let r = api
        .call(
            Method::PUT,
            "/api/v1/kill",
            Auth::Cookie(&s),
            Some(json!({"engaged": true, "reason": "news"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["flatten"]["intent_ids"].as_array().unwrap().len(), 2);
    let sub: jt_store::SubAccountId = serde_json::from_value(json!(subs[0])).unwrap();
    let state = api.store.risk().kill_state(s.user, sub).await.unwrap();
    assert!(state.engaged());
    // The status page shows the switch on every account it covers.
    let switches = |body: &serde_json::Value| -> Vec<serde_json::Value> {
        body[0]["sub_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kill_switch"].clone())
            .collect()
    };
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&s), None)
        .await;
    let shown = switches(&r.body);
    assert_eq!(shown.len(), 2, "{}", r.body);
    for k in &shown {
        assert_eq!(
            (k["scope"].clone(), k["reason"].clone()),
            (json!("user"), json!("news"))
        );
        assert!(k["since"].is_string(), "{k}");
    }
    let r = api
        .call(
            Method::PUT,
            "/api/v1/kill",
            Auth::Cookie(&s),
            Some(json!({"engaged": false})),
        )
        .await;
    assert_eq!(r.body["flatten"]["intent_ids"], json!([]));
    assert!(
        !api.store
            .risk()
            .kill_state(s.user, sub)
            .await
            .unwrap()
            .engaged()
    );

    let r = api
        .call(
            Method::PUT,
            &format!("/api/v1/sub-accounts/{}/kill", subs[1]),
            Auth::Cookie(&s),
            Some(json!({"engaged": true})),
        )
        .await;
    assert_eq!(r.body["flatten"]["intent_ids"].as_array().unwrap().len(), 1);
    let sub1: jt_store::SubAccountId = serde_json::from_value(json!(subs[1])).unwrap();
    assert!(
        api.store
            .risk()
            .kill_state(s.user, sub1)
            .await
            .unwrap()
            .engaged()
    );
    assert!(
        !api.store
            .risk()
            .kill_state(s.user, sub)
            .await
            .unwrap()
            .engaged()
    );
    // Only the account whose own switch is engaged shows it now.
    let r = api
        .call(Method::GET, "/api/v1/status", Auth::Cookie(&s), None)
        .await;
    let by_id: std::collections::HashMap<String, serde_json::Value> = r.body[0]["sub_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["kill_switch"].clone(),
            )
        })
        .collect();
    assert_eq!(by_id[&subs[0].to_string()], serde_json::Value::Null);
    assert_eq!(by_id[&subs[1].to_string()]["scope"], "account");

    let r = api
        .call(
            Method::POST,
            "/api/v1/flatten",
            Auth::Cookie(&s),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["flatten"], serde_json::Value::Null);
    assert_eq!(r.body["intent_ids"].as_array().unwrap().len(), 2);
}

// ---- openapi ------------------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_is_served_and_is_3_1() {
    let api = TestApi::new().await;
    let r = api
        .call(Method::GET, "/api/openapi.json", Auth::None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/tokens/{token_id}",
        "/api/v1/broker-accounts/{account_id}/test",
        "/api/v1/recorders/{recorder_id}/rotate-token",
        "/api/v1/traders/{trader_id}",
        "/api/v1/signals",
        "/api/v1/sub-accounts/{sub_account_id}/orders",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_logins_are_limited_per_forwarded_client() {
    let mut config = jt_api::ApiConfig::default();
    config.login_per_source.burst = 2.try_into().unwrap();
    config.trusted_proxies = "10.0.0.0/8".parse().unwrap();
    let api = TestApi::with_config(config).await;
    let attempt = |client: &'static str, i: u32| {
        let mut req = axum::http::Request::post("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", client)
            .body(axum::body::Body::from(
                json!({"email": format!("p{i}@example.com"), "password": "guess guess"})
                    .to_string(),
            ))
            .unwrap();
        let peer: std::net::SocketAddr = "10.0.0.1:40000".parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    };
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(api.send(attempt("203.0.113.7", i)).await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Another client behind the same proxy has its own budget.
    let r = api.send(attempt("198.51.100.9", 9)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
