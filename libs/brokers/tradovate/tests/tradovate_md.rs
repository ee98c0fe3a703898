//! The Tradovate market-data socket against the simulator (`jt-sim`) over loopback: quotes of
//! the watched contracts, exact prices, contracts added and removed on the live socket, and
//! contracts watched by name and by id, and every watched contract subscribed again after the
//! socket is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use jt_broker::{Broker, BrokerEvents, ConnectionState, Quote, QuoteEvent, QuoteFeed};
use jt_sim::faults::FaultKind;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const T: Duration = Duration::from_secs(5);

/// The next quote of `contract` whose last trade is `last`, skipping anything else.
async fn quote_at(feed: &mut QuoteFeed, contract: &str, last: Decimal) -> Quote {
    tokio::time::timeout(T, async {
        loop {
            match feed.recv().await {
                Some(QuoteEvent::Quote(q)) if q.contract == contract && q.last == Some(last) => {
                    return q;
                }
                Some(_) => {}
                None => panic!("the feed stopped"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no quote of {contract} at {last} within {T:?}"))
}

/// Waits for a state, skipping quotes.
async fn state(feed: &mut QuoteFeed, wanted: fn(&ConnectionState) -> bool) -> ConnectionState {
    tokio::time::timeout(T, async {
        loop {
            match feed.recv().await {
                Some(QuoteEvent::State(s)) if wanted(&s) => return s,
                Some(_) => {}
                None => panic!("the feed stopped"),
            }
        }
    })
    .await
    .expect("state within the timeout")
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn quotes_of_watched_contracts_arrive_exactly_and_follow_the_watched_set() {
    let sim = sim().await;
    user(&sim, "mdq", &["MDQ1"]);
    price(&sim, "MNQ", dec!(21000));
    price(&sim, "ES", dec!(6000));
    let b = broker(config(&sim, "mdq"));
    let mnq = b.resolve_contract("MNQ").await.unwrap().name;
    let es = b.resolve_contract("ES").await.unwrap().name;

    let mut feed = b.quote_feed().await.unwrap();
    feed.watch(set(&[&mnq]));
    state(&mut feed, |s| *s == ConnectionState::Connected).await;
    // The snapshot the subscription answers with, then a move.
    let first = quote_at(&mut feed, &mnq, dec!(21000)).await;
    assert!(first.bid.is_some() && first.ask.is_some(), "{first:?}");
    price(&sim, "MNQ", dec!(21001.25));
    let moved = quote_at(&mut feed, &mnq, dec!(21001.25)).await;
    assert_eq!(moved.last.unwrap().to_string(), "21001.25");
    assert_eq!(feed.subscribed(), set(&[&mnq]));

    // A second contract (and an unknown one, which costs nothing else) on the live socket;
    // then the first is removed and its quotes stop.
    feed.watch(set(&[&mnq, &es, "NOPEZ9"]));
    quote_at(&mut feed, &es, dec!(6000)).await;
    feed.watch(set(&[&es]));
    assert!(
        eventually(T, || async { feed.subscribed() == set(&[&es]) }).await,
        "{:?}",
        feed.subscribed()
    );
    price(&sim, "MNQ", dec!(21002));
    price(&sim, "ES", dec!(6001));
    // Everything up to ES's move (MNQ moved first) and in the 400 ms after it: no MNQ quote.
    let mut later = Vec::new();
    tokio::time::timeout(T, async {
        while let Some(e) = feed.recv().await {
            let done = matches!(&e, QuoteEvent::Quote(q) if q.contract == es && q.last == Some(dec!(6001)));
            later.push(e);
            if done {
                break;
            }
        }
    })
    .await
    .expect("ES's move arrives");
    // Whatever arrives in the next 400 ms (a timeout ends the collection, not the test).
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(400), feed.recv()).await {
        later.push(e);
    }
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, QuoteEvent::Quote(q) if q.contract == mnq)),
        "{later:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_dropped_market_data_socket_reconnects_and_subscribes_again() {
    let sim = sim().await;
    user(&sim, "mdr", &["MDR1"]);
    price(&sim, "MNQ", dec!(21000));
    let b = broker(config(&sim, "mdr"));
    let contract = b.resolve_contract("MNQ").await.unwrap();
    let (mnq, id) = (contract.name, contract.id.0);
    let mut feed = b.quote_feed().await.unwrap();
    // By name and by id (how the store keys a position whose name was not known): one
    // subscription, reported under both keys.
    feed.watch(set(&[&mnq, &id]));
    quote_at(&mut feed, &mnq, dec!(21000)).await;
    price(&sim, "MNQ", dec!(21000.25));
    quote_at(&mut feed, &id, dec!(21000.25)).await;
    // The name no longer watched: the id keeps the contract subscribed.
    feed.watch(set(&[&id]));
    price(&sim, "MNQ", dec!(21000.5));
    quote_at(&mut feed, &id, dec!(21000.5)).await;
    assert_eq!(feed.subscribed(), set(&[&id]));
    feed.watch(set(&[&mnq]));
    quote_at(&mut feed, &mnq, dec!(21000.5)).await;

    fault(&sim, FaultKind::DropSocket, Some("mdr"), None, None);
    state(&mut feed, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    state(&mut feed, |s| *s == ConnectionState::Connected).await;
    price(&sim, "MNQ", dec!(21003.5));
    quote_at(&mut feed, &mnq, dec!(21003.5)).await;
    assert_eq!(feed.subscribed(), set(&[&mnq]));
    sim.shutdown().await;
}

#[test]
fn an_md_event_decodes_exactly_and_tolerates_missing_entries() {
    let raw: Box<serde_json::value::RawValue> = serde_json::from_str(
        r#"{"quotes":[{"timestamp":"2026-12-06T12:00:00.123Z","contractId":7,"entries":{"Bid":{"price":21000.25,"size":3},"Offer":{"size":2},"Trade":{"price":21000.5},"TotalTradeVolume":{"size":9}}}]}"#,
    )
    .unwrap();
    let q = jt_tradovate::websocket::messages::decode_md_quotes(&raw).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].contract_id, 7);
    assert_eq!(
        q[0].entries.bid.as_ref().unwrap().price,
        Some(dec!(21000.25))
    );
    assert_eq!(q[0].entries.offer.as_ref().unwrap().price, None);
    assert_eq!(
        q[0].entries
            .trade
            .as_ref()
            .unwrap()
            .price
            .unwrap()
            .to_string(),
        "21000.5"
    );
    let dom: Box<serde_json::value::RawValue> =
        serde_json::from_str(r#"{"doms":[{"contractId":7}]}"#).unwrap();
    assert!(
        jt_tradovate::websocket::messages::decode_md_quotes(&dom)
            .unwrap()
            .is_empty()
    );
}
