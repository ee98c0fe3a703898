//! Prices (issue 20) on JetStream, PostgreSQL and the simulator: the connection manager feeds
//! the quotes of the contracts the platform holds through one market-data connection and
//! publishes them on `jt.quotes.<contract>`; a move of the simulator's price reaches the bus
//! within a bound (measured); a contract no longer held is unsubscribed. The paper record is
//! marked by those quotes: a paper trade whose take-profit the price crosses closes there, with
//! its excursions recorded.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.
//! Without them the harness fails loudly; nothing here is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jt_bus::CoreSubscription;
use jt_domain::settings::TpTarget;
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{ConnectionManager, Options, Platform, PositionsService, alert, eventually};
use jt_messages::QuoteMessage;
use jt_messages::quote::subscribe_quotes;
use jt_positions::PositionsConfig;
use jt_store::entity::{ExitReason, PaperStatus};
use jt_store::repo::paper::PaperPosition;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

/// The positions service writes the store from the connection manager's events and marks the
/// paper record with quotes; no reconciliation pass runs during a test.
fn no_reconciling() -> PositionsConfig {
    PositionsConfig {
        reconcile_every: Duration::from_secs(3600),
        ..PositionsConfig::default()
    }
}

/// The next quote of `contract` matching `wanted`, within `within`.
async fn quote_of(
    sub: &mut CoreSubscription,
    contract: &str,
    within: Duration,
    wanted: impl Fn(&QuoteMessage) -> bool,
) -> Option<QuoteMessage> {
    tokio::time::timeout(within, async {
        while let Some(m) = sub.next().await {
            if let Some(q) = QuoteMessage::decode(&m.payload)
                && q.contract == contract
                && wanted(&q)
            {
                return Some(q);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn a_held_contract_is_quoted_on_the_bus_within_a_bound_and_unsubscribed_once_flat() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, no_reconciling());
    let connmgr = ConnectionManager::start(&p).await;
    let mut quotes = subscribe_quotes(&p.bus).await.unwrap();

    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    let broker = p.store.broker();
    let sub = p.subs[0].id;
    let contract = eventually("the position in the store", WAIT, async || {
        broker
            .positions(p.user, sub)
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.net_quantity == 1)
            .map(|h| h.contract)
    })
    .await;
    // The store's key of the contract: its name, or the broker's id when the name was not
    // known (the quote is published under that key either way).
    println!("held contract (store key): {contract}");

    // Subscribed: the subscription's first quote arrives at the simulator's price.
    quote_of(&mut quotes, &contract, WAIT, |q| q.last.is_some())
        .await
        .expect("a first quote of the held contract");

    // A move at the simulator reaches the bus, exactly, within a generous bound.
    let mut delays = Vec::new();
    for price in [dec!(21010.25), dec!(20995.50), dec!(21003.75)] {
        let sent = Instant::now();
        p.price("MNQ", &price.to_string());
        let q = quote_of(&mut quotes, &contract, Duration::from_secs(5), |q| {
            q.last == Some(price)
        })
        .await
        .unwrap_or_else(|| panic!("no quote at {price} within 5 s"));
        delays.push(sent.elapsed());
        assert_eq!(q.source, "sim");
        assert_eq!(q.mark(), Some(price));
    }
    let worst = delays.iter().max().copied().unwrap();
    println!("simulator price move → QuoteMessage on the bus: {delays:?}");
    assert!(worst < Duration::from_secs(2), "{delays:?}");

    // Flat: the contract is no longer held, so its quotes stop.
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    eventually("the store to be flat", WAIT, async || {
        let held: i64 = broker
            .positions(p.user, sub)
            .await
            .unwrap()
            .iter()
            .map(|h| h.net_quantity)
            .sum();
        let working = broker.open_orders(p.user, sub, None).await.unwrap();
        (held == 0 && working.is_empty()).then_some(())
    })
    .await;
    // Two re-reads of the wanted contracts (500 ms apart) and the unsubscription.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while tokio::time::timeout(Duration::from_millis(50), quotes.next())
        .await
        .is_ok()
    {}
    p.price("MNQ", "21020.00");
    let after = quote_of(&mut quotes, &contract, Duration::from_secs(2), |_| true).await;
    assert!(after.is_none(), "still quoted after going flat: {after:?}");
    assert_eq!(
        md_sockets(&p),
        0,
        "nothing wanted: the feed's connection is closed"
    );

    connmgr.stop().await;
    positions.stop().await;
    p.stop().await;
}

/// The recorder's only paper position, once `ready` says it is where the test wants it.
async fn paper_position(
    p: &Platform,
    recorder: jt_store::RecorderId,
    what: &str,
    ready: impl Fn(&PaperPosition) -> bool,
) -> PaperPosition {
    eventually(what, WAIT, async || {
        p.store
            .paper()
            .positions(p.user, recorder, 10)
            .await
            .unwrap()
            .into_iter()
            .next()
            .filter(|x| ready(x))
    })
    .await
}

#[tokio::test]
async fn a_paper_trade_closes_at_its_take_profit_when_the_price_crosses_it_with_its_excursions() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, no_reconciling());
    let connmgr = ConnectionManager::start(&p).await;
    // Paper only (no trader): the record follows the simulator's quotes through the feed.
    let settings = Settings {
        tp_targets: vec![TpTarget {
            value: Decimal::from(40),
            trim: Decimal::ZERO,
        }],
        sl_enabled: true,
        sl_amount: Decimal::from(40),
        ..Settings::default()
    };
    let (recorder, token) = p.recorder(settings, &[]).await;
    p.queued(&token, &alert("buy", "long", r#","price":21000.00"#))
        .await;
    let opened = paper_position(&p, recorder, "the paper position", |x| {
        x.status == PaperStatus::Open
    })
    .await;
    assert_eq!(opened.average_entry, dec!(21000));

    // Against the position first (5 points: MNQ is $2 a point), then through the take-profit
    // (40 ticks = 10 points above) to 21012: filled at the level, 21010.
    p.price("MNQ", "20995.00");
    let marked = paper_position(&p, recorder, "the adverse price marked", |x| {
        x.current_price == Some(dec!(20995))
    })
    .await;
    assert_eq!(marked.unrealized_pnl, dec!(-10));
    assert_eq!(marked.worst_unrealized_pnl, dec!(-10));
    p.price("MNQ", "21012.00");
    let closed = paper_position(&p, recorder, "the paper position closed", |x| {
        x.status == PaperStatus::Closed
    })
    .await;
    assert_eq!(closed.exit_price, Some(dec!(21010)));
    assert_eq!(closed.realized_pnl, dec!(20));
    assert_eq!(closed.worst_unrealized_pnl, dec!(-10));
    assert_eq!(closed.best_unrealized_pnl, dec!(24));
    let trades = p.store.paper().trades(p.user, recorder, 10).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:#?}");
    let t = &trades[0];
    assert_eq!(t.exit_reason, Some(ExitReason::TakeProfit));
    assert_eq!(t.exit_price, Some(dec!(21010)));
    assert_eq!(t.realized_ticks, Some(dec!(40)));
    assert_eq!(t.realized_pnl, Some(dec!(20)));
    assert_eq!(t.max_favorable_excursion, dec!(12));
    assert_eq!(t.max_adverse_excursion, dec!(5));

    // Nothing more happens to a closed record, however the price moves.
    p.price("MNQ", "20900.00");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let trades = p.store.paper().trades(p.user, recorder, 10).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:#?}");

    connmgr.stop().await;
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_paper_short_is_stopped_out_at_the_observed_price_marked_once_by_two_replicas() {
    let p = Platform::start(Options::default()).await;
    // Two positions replicas mark the same quotes: each price is applied once.
    let first = PositionsService::start(&p, no_reconciling());
    let second = PositionsService::start(&p, no_reconciling());
    let connmgr = ConnectionManager::start(&p).await;
    let settings = Settings {
        tp_targets: vec![TpTarget {
            value: Decimal::from(80),
            trim: Decimal::ZERO,
        }],
        sl_enabled: true,
        sl_amount: Decimal::from(20),
        ..Settings::default()
    };
    let (recorder, token) = p.recorder(settings, &[]).await;
    p.queued(&token, &alert("sell", "short", r#","price":21000.00"#))
        .await;
    paper_position(&p, recorder, "the paper short", |x| {
        x.status == PaperStatus::Open
    })
    .await;
    p.price("MNQ", "20997.00");
    paper_position(&p, recorder, "the favourable price marked", |x| {
        x.current_price == Some(dec!(20997))
    })
    .await;
    // The stop is 20 ticks (5 points) above, at 21005; the price jumps past it to 21006.25:
    // a stop fills at the observed price, never better.
    p.price("MNQ", "21006.25");
    let closed = paper_position(&p, recorder, "the paper short stopped out", |x| {
        x.status == PaperStatus::Closed
    })
    .await;
    assert_eq!(closed.exit_price, Some(dec!(21006.25)));
    let trades = p.store.paper().trades(p.user, recorder, 10).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:#?}");
    let t = &trades[0];
    assert_eq!(t.exit_reason, Some(ExitReason::StopLoss));
    assert_eq!(t.realized_ticks, Some(dec!(-25)));
    assert_eq!(t.realized_pnl, Some(dec!(-12.5)));
    assert_eq!(t.max_favorable_excursion, dec!(3));
    assert_eq!(t.max_adverse_excursion, dec!(6.25));
    assert_eq!(closed.realized_pnl, dec!(-12.5));

    connmgr.stop().await;
    first.stop().await;
    second.stop().await;
    p.stop().await;
}

/// The simulator's market-data sockets open now.
fn md_sockets(p: &Platform) -> usize {
    p.sim
        .admin()
        .sockets()
        .iter()
        .filter(|s| s.kind == jt_sim::sockets::SocketKind::Md)
        .count()
}

/// The holder of the `quotes` lease.
async fn quotes_holder(p: &Platform) -> Option<String> {
    let kv = p
        .bus
        .kv(&jt_bus::Definitions::new(p.bus.namespace()).leases)
        .await
        .unwrap();
    kv.get(jt_connmgr::quotes::QUOTES_LEASE)
        .await
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

#[tokio::test]
async fn one_replica_feeds_the_prices_and_another_takes_over_when_it_stops() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, no_reconciling());
    let first = ConnectionManager::start(&p).await;
    let mut quotes = subscribe_quotes(&p.bus).await.unwrap();
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    let (broker, sub) = (p.store.broker(), p.subs[0].id);
    let contract = eventually("the position in the store", WAIT, async || {
        broker
            .positions(p.user, sub)
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.net_quantity == 1)
            .map(|h| h.contract)
    })
    .await;
    quote_of(&mut quotes, &contract, WAIT, |q| q.last.is_some())
        .await
        .expect("quotes through the first replica");
    let holder = quotes_holder(&p).await.expect("the quotes lease is held");

    // A second replica holds no feed while the first does.
    let second = ConnectionManager::start(&p).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(quotes_holder(&p).await.as_deref(), Some(holder.as_str()));
    assert_eq!(
        md_sockets(&p),
        1,
        "one market-data connection for the fleet"
    );

    // The first stops (releasing its lease): the second feeds the same contract.
    first.stop().await;
    let taken = eventually(
        "the second replica to take the quotes lease",
        WAIT,
        async || quotes_holder(&p).await.filter(|h| *h != holder),
    )
    .await;
    assert_ne!(taken, holder);
    let deadline = Instant::now() + WAIT;
    let mut price = dec!(21030);
    loop {
        // Moved until a quote of the new price arrives: the new feed is up.
        p.price("MNQ", &price.to_string());
        if quote_of(&mut quotes, &contract, Duration::from_secs(1), |q| {
            q.last == Some(price)
        })
        .await
        .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no quote after the take-over");
        price += dec!(0.25);
    }
    assert_eq!(
        md_sockets(&p),
        1,
        "the stopped replica's connection is closed"
    );

    second.stop().await;
    positions.stop().await;
    p.stop().await;
}
