//! Live trade records (DOMAIN.md §9 "fill events close trade records hit by TP or SL") on
//! JetStream, PostgreSQL and the simulator, with the harness's ingest and executor, the
//! connection manager (the simulator's own events) and the positions service:
//!
//! - an entry with a bracket through an alert, the simulator's price moved through the
//!   take-profit: the record closes `take_profit` at the limit with the exact P&L; the closing
//!   fill delivered once more changes nothing; the API lists the record (owner-scoped);
//! - the same through the stop: `stop`, at the price the stop filled;
//! - an opposite signal (a flip: close, then enter): the long closes `market` and the short it
//!   opened is the open record;
//! - a position closed at the broker while no connection manager listened: the next
//!   reconciliation pass closes the record `reconciled`, without P&L.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.
//! Without them the harness fails loudly; nothing here is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jt_bus::{Definitions, Envelope, MessageId};
use jt_domain::settings::TpTarget;
use jt_domain::{Direction, Settings, SettingsOverrides};
use jt_e2e::api::{Client, serve_api};
use jt_e2e::{
    ConnectionManager, Options, Platform, PositionsService, USER_PASSWORD, alert, eventually,
};
use jt_positions::PositionsConfig;
use jt_store::repo::trades::TradeRecord;
use jt_store::{TradeExitReason, TradeStatus};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const WAIT: Duration = Duration::from_secs(20);

/// No reconciliation during the test: only the events write.
const NEVER: Duration = Duration::from_secs(3600);

fn reconciling_every(reconcile_every: Duration) -> PositionsConfig {
    PositionsConfig {
        reconcile_every,
        repair_quiet: Duration::ZERO,
        ..PositionsConfig::default()
    }
}

fn one() -> Vec<(usize, SettingsOverrides)> {
    vec![(0, SettingsOverrides::default())]
}

/// A take-profit 40 ticks (10 points) and a stop 40 ticks from the entry.
fn bracket() -> Settings {
    Settings {
        tp_targets: vec![TpTarget {
            value: Decimal::from(40),
            trim: Decimal::ZERO,
        }],
        sl_enabled: true,
        sl_amount: Decimal::from(40),
        ..Settings::default()
    }
}

async fn records(p: &Platform) -> Vec<TradeRecord> {
    p.store
        .trades()
        .for_sub_account(p.user, p.subs[0].id, 50)
        .await
        .unwrap()
}

/// Waits until the sub-account's records (newest first) satisfy `ready`.
async fn records_when(
    p: &Platform,
    what: &str,
    ready: impl Fn(&[TradeRecord]) -> bool,
) -> Vec<TradeRecord> {
    eventually(what, WAIT, async || {
        let rs = records(p).await;
        ready(&rs).then_some(rs)
    })
    .await
}

/// A long of one MNQ entered at 21000 with the bracket, its record open; and the recorder's
/// webhook token.
async fn long_with_bracket(p: &Platform) -> (TradeRecord, String) {
    p.price("MNQ", "21000.00");
    let (_, token) = p.recorder(bracket(), &one()).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;
    let rs = records_when(p, "the long's record", |rs| {
        rs.len() == 1 && rs[0].status == TradeStatus::Open
    })
    .await;
    let r = rs[0].clone();
    assert_eq!(r.direction, Direction::Long);
    assert_eq!((r.quantity, r.entered_quantity), (1, 1));
    assert_eq!(r.average_entry, dec!(21000));
    assert_eq!(r.contract, "MNQZ6", "named by the broker's contract name");
    (r, token)
}

#[tokio::test]
async fn a_take_profit_fill_closes_the_record_with_its_exit_and_pnl_once() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, reconciling_every(NEVER));
    let connmgr = ConnectionManager::start(&p).await;
    let (opened, _) = long_with_bracket(&p).await;

    // Through the take-profit (21010) to 21012: the resting limit fills at its own price.
    p.price("MNQ", "21012.00");
    let rs = records_when(&p, "the record closed by the take-profit", |rs| {
        rs.len() == 1 && rs[0].status == TradeStatus::Closed
    })
    .await;
    let r = &rs[0];
    assert_eq!(r.id, opened.id);
    assert_eq!(r.exit_reason, Some(TradeExitReason::TakeProfit));
    assert_eq!(r.average_exit, Some(dec!(21010)));
    // 10 points × $2 (MNQ) × 1 contract.
    assert_eq!(r.realized_pnl, Some(dec!(20)));
    assert_eq!((r.quantity, r.exited_quantity, r.fills), (0, 1, 2));
    let tp = p
        .store
        .broker()
        .order(p.user, p.subs[0].id, r.exit_order_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(tp.order_type, jt_store::BrokerOrderType::Limit);
    assert_eq!(tp.limit_price, Some(dec!(21010)));

    // The closing fill delivered once more (after the stream's duplicate window, or by a
    // reconnect's replay): recognised by its broker id, the record does not change.
    let (_, closing) = p
        .broker_events(0, "fill")
        .await
        .into_iter()
        .find(|(_, m)| fill_id(m) == r.last_fill_id)
        .expect("the closing fill on BROKER_EVENTS");
    p.bus
        .publish(&Envelope::new(
            MessageId::new(format!("again-{}", closing.message_id())).unwrap(),
            closing,
        ))
        .await
        .unwrap();
    let defs = Definitions::new(p.bus.namespace());
    eventually("the consumer to drain BROKER_EVENTS", WAIT, async || {
        let lag = p.bus.consumer_lag(&defs.positions).await.unwrap();
        (lag.total() == 0).then_some(())
    })
    .await;
    assert_eq!(records(&p).await, rs, "the same fill twice changes nothing");

    // The API lists it for its owner.
    let base = serve_api(&p).await;
    let c = Client::login(&base, &p.email(), USER_PASSWORD).await;
    let listed = c
        .get(&format!("/sub-accounts/{}/trades", p.subs[0].id))
        .await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["exit_reason"], "take_profit");
    assert_eq!(listed[0]["status"], "closed");
    assert_eq!(listed[0]["direction"], "long");
    assert_eq!(listed[0]["average_entry"], "21000");
    assert_eq!(listed[0]["average_exit"], "21010");
    assert_eq!(listed[0]["realized_pnl"], "20");

    connmgr.stop().await;
    positions.stop().await;
    p.stop().await;
}

fn fill_id(m: &jt_messages::BrokerEventMessage) -> String {
    match &m.event {
        jt_messages::ReportedEvent::Known(jt_broker::BrokerEvent::Fill(f)) => f.id.to_string(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn a_stop_fill_closes_the_record_as_stop_at_the_price_it_filled() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, reconciling_every(NEVER));
    let connmgr = ConnectionManager::start(&p).await;
    let _ = long_with_bracket(&p).await;

    // The stop is 40 ticks (10 points) below, at 20990; the price jumps past it to 20985: a
    // stop fills at the price seen.
    p.price("MNQ", "20985.00");
    let rs = records_when(&p, "the record closed by the stop", |rs| {
        rs.len() == 1 && rs[0].status == TradeStatus::Closed
    })
    .await;
    let r = &rs[0];
    assert_eq!(r.exit_reason, Some(TradeExitReason::Stop));
    assert_eq!(r.average_exit, Some(dec!(20985)));
    // −15 points × $2.
    assert_eq!(r.realized_pnl, Some(dec!(-30)));

    connmgr.stop().await;
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_flip_closes_the_long_as_market_and_its_short_is_the_open_record() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, reconciling_every(NEVER));
    let connmgr = ConnectionManager::start(&p).await;
    let (long, token) = long_with_bracket(&p).await;

    // 2.5 points up, then the opposite signal: close the long, enter the short (two market
    // sells at 21002.50).
    p.price("MNQ", "21002.50");
    let s = p.queued(&token, &alert("sell", "short", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == -1).await;
    let rs = records_when(&p, "the long closed and the short open", |rs| {
        rs.len() == 2 && rs[0].status == TradeStatus::Open && rs[1].status == TradeStatus::Closed
    })
    .await;
    let (short, closed) = (&rs[0], &rs[1]);
    assert_eq!(closed.id, long.id);
    assert_eq!(closed.exit_reason, Some(TradeExitReason::Market));
    assert_eq!(closed.average_exit, Some(dec!(21002.5)));
    // 2.5 points × $2.
    assert_eq!(closed.realized_pnl, Some(dec!(5)));
    assert_eq!(short.direction, Direction::Short);
    assert_eq!((short.quantity, short.entered_quantity), (1, 1));
    assert_eq!(short.average_entry, dec!(21002.5));
    assert_eq!((short.exit_reason, short.realized_pnl), (None, None));

    connmgr.stop().await;
    positions.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_position_closed_while_no_connection_manager_listened_is_closed_by_reconciliation() {
    let p = Platform::start(Options::default()).await;
    let positions = PositionsService::start(&p, reconciling_every(Duration::from_secs(1)));
    let connmgr = ConnectionManager::start(&p).await;
    let _ = long_with_bracket(&p).await;
    // Nobody listens to the simulator's events any more.
    connmgr.stop().await;

    // A person closes it at the broker, outside the platform.
    let (broker, account) = p.by_hand(0).await;
    broker.flatten_account(&account).await.unwrap();
    assert_eq!(p.net_position(0), 0);
    let rs = records_when(&p, "the record closed by reconciliation", |rs| {
        rs.len() == 1 && rs[0].status == TradeStatus::Closed
    })
    .await;
    let r = &rs[0];
    assert_eq!(r.exit_reason, Some(TradeExitReason::Reconciled));
    assert_eq!((r.realized_pnl, r.average_exit), (None, None));
    assert_eq!(r.quantity, 0);

    positions.stop().await;
    p.stop().await;
}
