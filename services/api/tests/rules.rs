//! Handler tests of the prop-firm rules routes and the news calendar: the router with
//! `oneshot` over a SQLite store and the embedded bus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use jt_store::repo::accounts::BrokerSubAccount;
use serde_json::{Value, json};

use common::{Auth, Session, TestApi};

/// A sim broker account of `s` with one sub-account; its id.
async fn sub_account(api: &TestApi, s: &Session) -> String {
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
    *api.probe.listed.lock() = vec![BrokerSubAccount {
        broker_sub_account_id: "1".into(),
        name: "EVAL1".into(),
    }];
    let r = api
        .call(
            Method::POST,
            &format!("/api/v1/broker-accounts/{id}/test"),
            Auth::Cookie(s),
            None,
        )
        .await;
    r.body["sub_accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn rules_uri(sub: &str) -> String {
    format!("/api/v1/sub-accounts/{sub}/rules")
}

#[tokio::test]
async fn presets_are_listed_for_a_user_to_start_from() {
    let api = TestApi::new().await;
    let s = api.login("presets@example.com").await;
    let r = api
        .call(Method::GET, "/api/v1/rule-presets", Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["topstep-50k", "apex-50k", "tradeify-50k"]);
    let apex = &r.body[1]["rules"];
    assert_eq!(apex["trailing_drawdown"]["amount"], "2500");
    assert_eq!(apex["trailing_drawdown"]["mode"], "intraday");
    assert_eq!(
        apex["daily_loss"],
        Value::Null,
        "shown as off, not left out"
    );
    assert_eq!(apex["flat_by"]["time"], "16:59");
    assert_eq!(apex["flat_by"]["time_zone"], "America/New_York");
    // Not without signing in.
    let r = api
        .call(Method::GET, "/api/v1/rule-presets", Auth::None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rules_are_set_from_a_preset_edited_whole_read_back_and_removed() {
    let api = TestApi::new().await;
    let s = api.login("rules@example.com").await;
    let sub = sub_account(&api, &s).await;

    let r = api
        .call(Method::GET, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no prop-firm rules"),
        "{}",
        r.body
    );

    // From a preset.
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&s),
            Some(json!({"preset": "topstep-50k"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let g = api
        .call(Method::GET, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    assert_eq!(g.body["sub_account_id"], json!(sub));
    let rules = &g.body["rules"];
    assert_eq!(rules["preset"], "topstep-50k");
    assert_eq!(rules["starting_balance"], "50000");
    assert_eq!(rules["trailing_drawdown"]["mode"], "end_of_day");
    assert_eq!(
        rules["daily_loss"],
        json!({"amount": "1000", "buffer": "100"})
    );
    assert_eq!(rules["max_contracts"]["micros_per_contract"], 10);
    assert_eq!(rules["automation_allowed"], true);
    let presets = api
        .call(Method::GET, "/api/v1/rule-presets", Auth::Cookie(&s), None)
        .await;
    assert_eq!(
        rules, &presets.body[0]["rules"],
        "the stored rules are the preset's"
    );

    // A preset with one rule replaced and one turned off.
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&s),
            Some(
                json!({"preset": "topstep-50k", "daily_loss": {"amount": "800", "buffer": "50"},
                        "flat_by": null}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["rules"]["daily_loss"]["amount"], "800");
    assert_eq!(r.body["rules"]["flat_by"], Value::Null);
    assert_eq!(
        r.body["rules"]["max_contracts"]["per_position"], 5,
        "the rest stays the preset's"
    );

    // The rule set as GET shows it, edited, stored exactly as sent.
    let mut edited = g.body["rules"].clone();
    edited["daily_loss"] = json!({"amount": "1100", "buffer": "150"});
    edited["news_blackout"] = json!({"minutes_before": 2, "minutes_after": 3, "flatten": true});
    edited["max_contracts"] = json!({"per_position": 3, "per_order": 2, "micros_per_contract": 1});
    edited["automation_allowed"] = json!(false);
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&s),
            Some(edited.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let g = api
        .call(Method::GET, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(g.body["rules"], edited);

    // Without a preset, the body is the whole rule set: absent rules are off.
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&s),
            Some(json!({"daily_loss": {"amount": "500"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rules = &r.body["rules"];
    assert_eq!(rules["preset"], Value::Null);
    assert_eq!(rules["daily_loss"], json!({"amount": "500", "buffer": "0"}));
    assert_eq!(rules["trailing_drawdown"], Value::Null);
    assert_eq!(rules["max_contracts"], Value::Null);
    assert_eq!(
        rules["automation_allowed"], true,
        "allowed unless said otherwise"
    );

    // The store's mark survives a change of rules and is shown.
    let id: jt_store::SubAccountId = serde_json::from_value(json!(sub)).unwrap();
    api.store
        .rules()
        .raise_mark(id, rust_decimal_macros::dec!(50750), None)
        .await
        .unwrap();
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&s),
            Some(json!({"preset": "apex-50k"})),
        )
        .await;
    assert_eq!(r.body["high_water_mark"], "50750", "{}", r.body);

    let d = api
        .call(Method::DELETE, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
    let g = api
        .call(Method::GET, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);
    let d = api
        .call(Method::DELETE, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(d.status, StatusCode::NOT_FOUND, "nothing left to remove");
}

#[tokio::test]
async fn each_invalid_rule_is_refused_naming_its_field() {
    let api = TestApi::new().await;
    let s = api.login("invalid@example.com").await;
    let sub = sub_account(&api, &s).await;
    let cases = [
        (json!({"preset": "ftmo-100k"}), "preset"),
        (json!({"starting_balance": "-1"}), "starting_balance"),
        (
            json!({"trailing_drawdown": {"amount": "2000", "mode": "intraday"}}),
            "starting_balance",
        ),
        (
            json!({"starting_balance": "50000",
                   "trailing_drawdown": {"amount": "0", "mode": "intraday"}}),
            "trailing_drawdown.amount",
        ),
        (
            json!({"starting_balance": "50000",
                   "trailing_drawdown": {"amount": "2000", "mode": "intraday", "buffer": "-5"}}),
            "trailing_drawdown.buffer",
        ),
        (
            json!({"starting_balance": "50000",
                   "trailing_drawdown": {"amount": "2000", "mode": "intraday", "buffer": "2000"}}),
            "trailing_drawdown.buffer",
        ),
        (
            json!({"starting_balance": "50000",
                   "trailing_drawdown": {"amount": "2000", "mode": "intraday",
                                         "stops_at_offset": "-100"}}),
            "trailing_drawdown.stops_at_offset",
        ),
        (
            json!({"starting_balance": "50000",
                   "trailing_drawdown": {"amount": "2000", "mode": "weekly"}}),
            "trailing_drawdown.mode",
        ),
        (json!({"daily_loss": {"amount": "-1"}}), "daily_loss.amount"),
        (
            json!({"daily_loss": {"amount": "1000", "buffer": "1500"}}),
            "daily_loss.buffer",
        ),
        (
            json!({"max_contracts": {"per_position": 0, "micros_per_contract": 10}}),
            "max_contracts.per_position",
        ),
        (
            json!({"max_contracts": {"per_position": 5, "per_order": 0, "micros_per_contract": 10}}),
            "max_contracts.per_order",
        ),
        (
            json!({"max_contracts": {"per_position": 5, "micros_per_contract": 0}}),
            "max_contracts.micros_per_contract",
        ),
        (
            json!({"max_contracts": {"per_position": 5, "micros_per_contract": 1000}}),
            "max_contracts.micros_per_contract",
        ),
        (
            json!({"max_contracts": {"per_position": -1, "micros_per_contract": 10}}),
            "max_contracts.per_position",
        ),
        (
            json!({"flat_by": {"time": "25:00", "time_zone": "America/Chicago"}}),
            "flat_by.time",
        ),
        (
            json!({"flat_by": {"time": "15:10", "time_zone": "Mars/Olympus"}}),
            "flat_by.time_zone",
        ),
        (
            json!({"flat_by": {"time": "15:10", "time_zone": "America/Chicago",
                               "minutes_before": 721}}),
            "flat_by.minutes_before",
        ),
        (
            json!({"news_blackout": {"minutes_before": 241, "minutes_after": 1}}),
            "news_blackout.minutes_before",
        ),
        (
            json!({"news_blackout": {"minutes_before": 1, "minutes_after": 241}}),
            "news_blackout.minutes_after",
        ),
        (
            json!({"daily_profit_cap": {"amount": "0"}}),
            "daily_profit_cap.amount",
        ),
        (
            json!({"daily_loss": {"amount": "one"}}),
            "daily_loss.amount",
        ),
        (json!({"dayly_loss": {"amount": "1000"}}), "dayly_loss"),
        (
            json!({"daily_loss": {"amount": "1000", "bufer": "100"}}),
            "daily_loss.bufer",
        ),
    ];
    for (body, field) in cases {
        let r = api
            .call(
                Method::PUT,
                &rules_uri(&sub),
                Auth::Cookie(&s),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}: {}",
            r.body
        );
    }
    // The unknown preset's answer names the known ones.
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&s),
            Some(json!({"preset": "nope"})),
        )
        .await;
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("topstep-50k") && message.contains("apex-50k"),
        "{message}"
    );
    // Nothing was stored by any refusal.
    let g = api
        .call(Method::GET, &rules_uri(&sub), Auth::Cookie(&s), None)
        .await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_sub_account_is_not_found_on_every_rules_route() {
    let api = TestApi::new().await;
    let owner = api.login("owner@example.com").await;
    let other = api.login("other@example.com").await;
    let sub = sub_account(&api, &owner).await;
    let r = api
        .call(
            Method::PUT,
            &rules_uri(&sub),
            Auth::Cookie(&owner),
            Some(json!({"preset": "apex-50k"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"preset": "tradeify-50k"}))),
        (Method::DELETE, None),
    ] {
        let r = api
            .call(method.clone(), &rules_uri(&sub), Auth::Cookie(&other), body)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.body);
        assert_eq!(
            r.body["error"]["message"], "sub-account not found",
            "{method}: the same answer as for a missing sub-account"
        );
    }
    let missing = uuid::Uuid::now_v7().to_string();
    let r = api
        .call(
            Method::GET,
            &rules_uri(&missing),
            Auth::Cookie(&other),
            None,
        )
        .await;
    assert_eq!(r.body["error"]["message"], "sub-account not found");
    // The owner's rules are untouched.
    let g = api
        .call(Method::GET, &rules_uri(&sub), Auth::Cookie(&owner), None)
        .await;
    assert_eq!(g.body["rules"]["preset"], "apex-50k");
}

#[tokio::test]
async fn admins_keep_the_news_calendar_users_read_it() {
    let api = TestApi::new().await;
    let admin = api.login_admin("desk@example.com").await;
    let user = api.login("reader@example.com").await;
    let soon = chrono::Utc::now() + chrono::Duration::hours(2);
    let later = chrono::Utc::now() + chrono::Duration::days(20);

    let r = api
        .call(
            Method::POST,
            "/api/v1/admin/news",
            Auth::Cookie(&user),
            Some(json!({"at": soon, "title": "CPI"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    let mut ids = Vec::new();
    for (at, title) in [(later, "NFP"), (soon, "  CPI  ")] {
        let r = api
            .call(
                Method::POST,
                "/api/v1/admin/news",
                Auth::Cookie(&admin),
                Some(json!({"at": at, "title": title})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    for (body, field) in [
        (json!({"at": soon, "title": " "}), "title"),
        (json!({"at": soon, "title": "x".repeat(201)}), "title"),
        (
            json!({"at": chrono::Utc::now() - chrono::Duration::days(2), "title": "old"}),
            "at",
        ),
        (json!({"at": "tomorrow", "title": "x"}), "at"),
    ] {
        let r = api
            .call(
                Method::POST,
                "/api/v1/admin/news",
                Auth::Cookie(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}: {}",
            r.body
        );
    }

    // Upcoming, in time order; `days` bounds how far ahead.
    let r = api
        .call(Method::GET, "/api/v1/news", Auth::Cookie(&user), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let titles: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["CPI"],
        "the 20-day one is past the default 14 days"
    );
    let r = api
        .call(
            Method::GET,
            "/api/v1/news?days=30",
            Auth::Cookie(&user),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 2, "{}", r.body);
    assert_eq!(r.body[0]["title"], "CPI");
    let r = api
        .call(
            Method::GET,
            "/api/v1/news?days=91",
            Auth::Cookie(&user),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, Some("days"))
    );

    let cpi = &ids[1];
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/news/{cpi}"),
            Auth::Cookie(&user),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/news/{cpi}"),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/news/{cpi}"),
            Auth::Cookie(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(
            Method::GET,
            "/api/v1/news?days=30",
            Auth::Cookie(&user),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["title"], "NFP");

    // Both changes are in the audit log, newest first.
    let log = api
        .call(
            Method::GET,
            "/api/v1/admin/audit",
            Auth::Cookie(&admin),
            None,
        )
        .await;
    let rows: Vec<(&str, &str)> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["target_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        &rows[..3],
        &[
            ("news.remove", cpi.as_str()),
            ("news.add", cpi.as_str()),
            ("news.add", ids[0].as_str())
        ]
    );
    assert_eq!(log.body[1]["details"]["title"], "CPI", "stored trimmed");
}
