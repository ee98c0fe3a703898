//! The market-data socket: quotes, DOM, charts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{AdminHttp, Rest, Ws};
use serde_json::json;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn quotes_dom_and_charts() {
    let sim = common::sim().await;
    sim.admin()
        .create_user(&common::user("md", &["M1"]))
        .unwrap();
    let rest = Rest::login(&sim, "md").await;
    let admin = AdminHttp::new(&sim);
    let (contract_id, symbol) = rest.contract("ES").await;
    admin
        .post("prices", json!({"symbol": symbol, "price": 6000}))
        .await;

    // The md socket accepts the md token (and the access token).
    let mut md = Ws::authorized(&sim.md_ws_url(), &rest.md_token).await;
    let r = md
        .request(
            "md/subscribeQuote",
            "",
            &json!({"symbol": symbol}).to_string(),
        )
        .await;
    assert_eq!(r["s"], 200);
    assert!(
        r["d"].is_object(),
        "d is an object clients can inspect for p-ticket"
    );
    let first = md.events_until(T, |e| e["e"] == "md").await.pop().unwrap();
    let q = &first["d"]["quotes"][0];
    assert_eq!(q["contractId"], contract_id);
    assert_eq!(q["entries"]["Trade"]["price"], json!(6000.0));
    assert!(q["entries"]["Bid"]["price"].is_number() && q["entries"]["Offer"]["size"].is_number());

    admin
        .post("prices", json!({"symbol": symbol, "price": 6001.25}))
        .await;
    let ev = md.events_until(T, |e| e["e"] == "md").await.pop().unwrap();
    assert_eq!(
        ev["d"]["quotes"][0]["entries"]["Trade"]["price"],
        json!(6001.25)
    );

    // By contract id; DOM.
    let r = md
        .request(
            "md/subscribeDOM",
            "",
            &json!({"symbol": contract_id}).to_string(),
        )
        .await;
    assert_eq!(r["s"], 200);
    let dom = md
        .events_until(T, |e| e["d"].get("doms").is_some())
        .await
        .pop()
        .unwrap();
    assert_eq!(dom["d"]["doms"][0]["bids"].as_array().unwrap().len(), 10);
    assert_eq!(dom["d"]["doms"][0]["offers"][1]["price"], json!(6001.5));

    // Chart: ids, bars, end of history, then real-time bars.
    let r = md
        .request(
            "md/getChart",
            "",
            &json!({"symbol": symbol, "chartDescription": {"underlyingType": "MinuteBar", "elementSize": 1, "elementSizeUnit": "UnderlyingUnits", "withHistogram": false}, "timeRange": {"asMuchAsElements": 10}}).to_string(),
        )
        .await;
    let historical = r["d"]["historicalId"].as_i64().unwrap();
    let realtime = r["d"]["realtimeId"].as_i64().unwrap();
    let charts = md
        .events_until(T, |e| {
            e["e"] == "chart" && e["d"]["charts"][0]["eoh"] == true
        })
        .await;
    let bars = charts
        .iter()
        .find(|e| {
            e["e"] == "chart"
                && e["d"]["charts"][0]["id"] == historical
                && e["d"]["charts"][0]["bars"].is_array()
        })
        .unwrap();
    let bar = &bars["d"]["charts"][0]["bars"][0];
    assert_eq!(bar["high"], json!(6001.25));
    assert!(bars["d"]["charts"][0]["td"].as_i64().unwrap() > 20_200_000);
    admin
        .post("prices", json!({"symbol": symbol, "price": 6002}))
        .await;
    let rt = md
        .events_until(T, |e| {
            e["e"] == "chart" && e["d"]["charts"][0]["id"] == realtime
        })
        .await
        .pop()
        .unwrap();
    assert_eq!(
        rt["d"]["charts"][0]["bars"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["close"],
        json!(6002.0)
    );
    // Cancel with the historical id (the parameter comment's reading) works too.
    let r = md
        .request(
            "md/cancelChart",
            "",
            &json!({"subscriptionId": historical}).to_string(),
        )
        .await;
    assert_eq!(r["s"], 200);

    // Unsubscribe: no more quotes.
    md.request(
        "md/unsubscribeQuote",
        "",
        &json!({"symbol": symbol}).to_string(),
    )
    .await;
    md.request(
        "md/unsubscribeDOM",
        "",
        &json!({"symbol": contract_id}).to_string(),
    )
    .await;
    md.events.clear();
    admin
        .post("prices", json!({"symbol": symbol, "price": 6003}))
        .await;
    let after = md.drain(Duration::from_millis(400)).await;
    assert!(after.iter().all(|e| e["e"] != "md"), "{after:?}");

    // Unknown symbol; md endpoints are not on the user socket.
    let r = md
        .request(
            "md/subscribeQuote",
            "",
            &json!({"symbol": "NOPE"}).to_string(),
        )
        .await;
    assert_eq!(r["s"], 404);
    let mut user = Ws::authorized(&sim.ws_url(), &rest.token).await;
    let r = user
        .request(
            "md/subscribeQuote",
            "",
            &json!({"symbol": symbol}).to_string(),
        )
        .await;
    assert_eq!(r["s"], 404);
    sim.shutdown().await;
}
