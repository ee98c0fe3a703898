//! `WebullBroker` against the simulator's Webull surface (`jt-sim` on loopback): brackets
//! emulated by the platform (entry, then a stop and take-profits sized to the fill), the
//! polled event side (orders, fills and positions once each, a fresh poller starting from a
//! baseline) and the one-cancels-other guard on it cancelling or shrinking the siblings — run
//! by another login of the same key pair, as the connection manager is another process than
//! the one placing — a partial fill protected for what filled, a DCA add replacing the
//! protection, close and flatten, an ambiguous entry resolved by client order id, rate
//! limiting, expired credentials, and what is refused before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::time::Duration;

use jt_broker::{
    AccountId, Broker, BrokerError, BrokerEvent, BrokerEvents, ConnectionState, Contract,
    EventOrigin, EventSubscription, Feature, OrderStatus, OrderType, SessionOutcome,
};
use jt_domain::bracket::StopOrder;
use jt_domain::instrument::by_root;
use jt_domain::order::{
    BracketOrder, OrderKind, OrderRequest, StopKind, StopSpec, TakeProfitLeg, TimeInForce,
};
use jt_domain::types::{Direction, Price, Side};
use jt_sim::admin::{MatchingJson, NewUser};
use jt_sim::core::model::Protocol;
use jt_sim::faults::{AmbiguousMode, FaultKind, FaultSpec};
use jt_sim::{Sim, SimConfig};
use jt_webull::{LoginRegistry, WebullBroker, WebullConfig};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const SECRET: &str = "app-secret";

async fn sim() -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = SimConfig::default();
    // The tests poll much faster than a trader would: room above Webull's 600 per minute.
    config.webull.limit = 100_000;
    Sim::start(config)
        .await
        .expect("the simulator (jt-sim) must start on loopback for these tests")
}

fn config(sim: &Sim, app_key: &str) -> WebullConfig {
    let mut c = WebullConfig::new(sim.webull_url().parse().unwrap(), app_key, SECRET);
    c.http.http.lookup_interval = Duration::from_millis(50);
    c.http.http.read_retry_backoff = Duration::from_millis(10);
    c.http.http.write_timeout = Duration::from_secs(1);
    c.brackets.fill_wait = Duration::from_millis(300);
    c.brackets.poll_interval = Duration::from_millis(25);
    c.events.poll_interval = Duration::from_millis(100);
    c.oco.grace = Duration::from_millis(150);
    c.http.requests = 100_000;
    c
}

/// A Webull login with one account on the simulator, its broker, the account and MNQ's front
/// month at 21000.
async fn setup(name: &str) -> (Sim, WebullBroker, AccountId, Contract, WebullConfig) {
    let sim = sim().await;
    let (b, a, cfg) = login(&sim, name, |c| c);
    let contract = b.resolve_contract("MNQ1!").await.expect("MNQ resolves");
    sim.admin().set_price(&contract.name, dec!(21000)).unwrap();
    (sim, b, a, contract, cfg)
}

/// The login's event side as the connection manager holds it: the same key pair in a
/// registry of its own (another process than the one placing), subscribed to the account; the
/// one-cancels-other guard runs on its polls.
async fn event_side(cfg: &WebullConfig, a: &AccountId) -> (WebullBroker, EventSubscription) {
    let e = WebullBroker::with(cfg.clone(), &LoginRegistry::isolated()).unwrap();
    let sub = e.subscribe(std::slice::from_ref(a)).await.unwrap();
    (e, sub)
}

fn login(
    sim: &Sim,
    name: &str,
    tune: impl FnOnce(WebullConfig) -> WebullConfig,
) -> (WebullBroker, AccountId, WebullConfig) {
    let created = sim
        .admin()
        .create_user(&NewUser {
            name: name.into(),
            password: "pw".into(),
            accounts: vec![format!("{name}-1")],
            sec: Some(SECRET.into()),
            protocol: Protocol::Webull,
            ..NewUser::default()
        })
        .unwrap();
    let config = tune(config(sim, created.api_key.as_deref().unwrap()));
    let b = WebullBroker::with(config.clone(), &LoginRegistry::isolated()).unwrap();
    (b, AccountId(created.accounts[0].id.to_string()), config)
}

fn mnq(p: Decimal) -> Price {
    Price::on_tick(by_root("MNQ").unwrap(), p)
}

fn market(cid: &str, side: Side, qty: u32) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        side,
        qty,
        kind: OrderKind::Market,
    }
}

fn leg(qty: u32, distance: Decimal) -> TakeProfitLeg {
    TakeProfitLeg { qty, distance }
}

fn fixed(distance: Decimal) -> Option<StopSpec> {
    Some(StopSpec {
        distance,
        kind: StopKind::Fixed,
    })
}

fn bracket(
    cid: &str,
    side: Side,
    qty: u32,
    legs: Vec<TakeProfitLeg>,
    stop: Option<StopSpec>,
) -> BracketOrder {
    BracketOrder {
        client_order_id: cid.into(),
        side,
        qty,
        entry: OrderKind::Market,
        take_profits: legs,
        stop,
        break_even: None,
    }
}

type Row = (OrderType, Side, u32, Decimal, Option<String>);

/// (type, side, qty left, price or stop, client order id) of the working orders, sorted.
async fn working(b: &WebullBroker, a: &AccountId) -> Vec<Row> {
    let mut v: Vec<Row> = b
        .working_orders(a)
        .await
        .expect("working orders")
        .into_iter()
        .map(|o| {
            (
                o.order_type.expect("type"),
                o.side,
                o.qty.expect("qty") - o.filled_qty.unwrap_or(0),
                o.price.or(o.stop_price).expect("a price"),
                o.client_order_id,
            )
        })
        .collect();
    v.sort_by_key(|r| r.3);
    v
}

async fn net(b: &WebullBroker, a: &AccountId, c: &Contract) -> i64 {
    b.position(a, &c.id).await.unwrap().map_or(0, |p| p.net_qty)
}

/// Polls `check` until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fault(sim: &Sim, kind: FaultKind, endpoint: Option<&str>, user: Option<&str>) {
    sim.admin()
        .add_fault(FaultSpec {
            kind,
            user: user.map(str::to_string),
            account: None,
            endpoint: endpoint.map(str::to_string),
            count: Some(1),
        })
        .unwrap();
}

#[tokio::test]
async fn signed_login_accounts_contracts_and_balance() {
    let (sim, b, a, c, _) = setup("wbb-a").await;
    assert_eq!(
        Some(c.name.clone()),
        sim.admin().front_month("MNQ"),
        "a root is the front month"
    );
    assert_eq!(c.root, "MNQ");
    assert_eq!(b.login().await.unwrap().outcome, SessionOutcome::LoggedIn);
    let before = sim.admin().request_counts();
    assert_eq!(b.login().await.unwrap().outcome, SessionOutcome::Reused);
    assert_eq!(sim.admin().request_counts(), before, "no session to renew");
    let accounts = b.accounts().await.unwrap();
    assert_eq!((accounts.len(), &accounts[0].id), (1, &a));
    assert!(accounts[0].active);
    // A named month: the digit year, the two-digit year and the long form name one contract.
    let long = format!("{}202{}", &c.name[..4], c.name.chars().last().unwrap());
    assert_eq!(b.resolve_contract(&c.name).await.unwrap(), c);
    assert_eq!(b.resolve_contract(&long).await.unwrap().name, c.name);
    assert!(matches!(
        b.resolve_contract("MNQF0").await,
        Err(BrokerError::UnknownContract { .. })
    ));
    assert!(matches!(
        b.resolve_contract("NOPE1!").await,
        Err(BrokerError::UnknownContract { .. })
    ));
    assert!(b.balance(&a).await.unwrap() > Decimal::ZERO);
    assert!(b.capabilities().native_bracket);
    assert!(b.emulated().contains(&Feature::NativeBracket));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_bracket_is_protected_after_its_fill_and_a_filled_target_cancels_the_stop() {
    let (sim, b, a, c, cfg) = setup("wbb-b").await;
    let (_events, _sub) = event_side(&cfg, &a).await;
    let ack = b
        .place_bracket(
            &a,
            &c,
            &bracket(
                "jt-b1",
                Side::Buy,
                2,
                vec![leg(1, dec!(10)), leg(1, dec!(20))],
                fixed(dec!(10)),
            ),
        )
        .await
        .unwrap();
    assert!(!ack.recovered);
    assert_eq!(net(&b, &a, &c).await, 2);
    assert_eq!(
        working(&b, &a).await,
        vec![
            (
                OrderType::Stop,
                Side::Sell,
                2,
                dec!(20990),
                Some("jt-b1-sl".into())
            ),
            (
                OrderType::Limit,
                Side::Sell,
                1,
                dec!(21010),
                Some("jt-b1-tp1".into())
            ),
            (
                OrderType::Limit,
                Side::Sell,
                1,
                dec!(21020),
                Some("jt-b1-tp2".into())
            ),
        ]
    );
    // The placing login polls and guards nothing itself.
    assert!(b.polled_accounts().is_empty());
    let entry = b.find_order(&a, "jt-b1").await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.filled_qty),
        (OrderStatus::Filled, Some(2))
    );

    // The first target fills: the stop shrinks to the one contract left.
    sim.admin().set_price(&c.name, dec!(21010)).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            working(&b, &a).await
                == vec![
                    (
                        OrderType::Stop,
                        Side::Sell,
                        1,
                        dec!(20990),
                        Some("jt-b1-sl".into()),
                    ),
                    (
                        OrderType::Limit,
                        Side::Sell,
                        1,
                        dec!(21020),
                        Some("jt-b1-tp2".into()),
                    ),
                ]
        })
        .await,
        "{:?}",
        working(&b, &a).await
    );
    // The last target fills: the stop is canceled, never left to reverse the position.
    sim.admin().set_price(&c.name, dec!(21020)).unwrap();
    let flat = eventually(Duration::from_secs(5), || async {
        working(&b, &a).await.is_empty()
    })
    .await;
    assert!(
        flat,
        "{:?} {:?}",
        working(&b, &a).await,
        b.positions(&a).await,
    );
    assert_eq!(net(&b, &a, &c).await, 0);
    let stop = b.find_order(&a, "jt-b1-sl").await.unwrap().unwrap();
    assert_eq!(stop.status, OrderStatus::Canceled);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_filled_stop_cancels_the_take_profit() {
    let (sim, b, a, c, cfg) = setup("wbb-c").await;
    let (_events, _sub) = event_side(&cfg, &a).await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-c1",
            Side::Sell,
            1,
            vec![leg(1, dec!(10))],
            fixed(dec!(5)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        working(&b, &a).await,
        vec![
            (
                OrderType::Limit,
                Side::Buy,
                1,
                dec!(20990),
                Some("jt-c1-tp1".into())
            ),
            (
                OrderType::Stop,
                Side::Buy,
                1,
                dec!(21005),
                Some("jt-c1-sl".into())
            ),
        ]
    );
    sim.admin().set_price(&c.name, dec!(21005)).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            working(&b, &a).await.is_empty()
        })
        .await
    );
    assert_eq!(net(&b, &a, &c).await, 0);
    let tp = b.find_order(&a, "jt-c1-tp1").await.unwrap().unwrap();
    assert_eq!(tp.status, OrderStatus::Canceled);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_partial_fill_is_protected_for_what_filled_and_the_rest_is_canceled() {
    let (sim, b, a, c, _) = setup("wbb-d").await;
    sim.admin().set_matching(&MatchingJson {
        partial_fill_qty: Some(1),
        ..Default::default()
    });
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-d1",
            Side::Buy,
            3,
            vec![leg(2, dec!(10)), leg(1, dec!(20))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    let entry = b.find_order(&a, "jt-d1").await.unwrap().unwrap();
    let filled = entry.filled_qty.unwrap();
    assert!((1..3).contains(&filled), "{entry:?}");
    assert_eq!(entry.status, OrderStatus::Canceled, "the rest is canceled");
    assert_eq!(net(&b, &a, &c).await, i64::from(filled));
    // The stop covers what filled; the legs take it in order.
    let rows = working(&b, &a).await;
    assert_eq!(rows[0], {
        (
            OrderType::Stop,
            Side::Sell,
            filled,
            dec!(20990),
            Some("jt-d1-sl".into()),
        )
    });
    let legs: u32 = rows[1..].iter().map(|r| r.2).sum();
    assert_eq!(legs, filled);
    assert_eq!(rows[1].4.as_deref(), Some("jt-d1-tp1"));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_dca_add_replaces_the_protection_and_the_guard_links_the_new_pair() {
    let (sim, b, a, c, cfg) = setup("wbb-e").await;
    let (_events, _sub) = event_side(&cfg, &a).await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-e1",
            Side::Buy,
            2,
            vec![leg(2, dec!(10))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    sim.admin().set_price(&c.name, dec!(20996)).unwrap();
    b.place_order(&a, &c, &market("jt-e2", Side::Buy, 2))
        .await
        .unwrap();
    let pos = b.position(&a, &c.id).await.unwrap().unwrap();
    assert_eq!((pos.net_qty, pos.avg_price), (4, Some(dec!(20998))));
    let tp = b
        .cancel_take_profits(&a, &c, Direction::Long)
        .await
        .unwrap();
    assert_eq!(tp.canceled.len(), 1);
    let sl = b
        .cancel_exit_orders(&a, &c, Direction::Long, jt_broker::ExitOrders::Stops)
        .await
        .unwrap();
    assert_eq!(sl.canceled.len(), 1);
    assert!(working(&b, &a).await.is_empty());
    b.place_order(
        &a,
        &c,
        &OrderRequest {
            client_order_id: "jt-e2-tp".into(),
            side: Side::Sell,
            qty: 4,
            kind: OrderKind::Limit {
                price: mnq(dec!(21008)),
            },
        },
    )
    .await
    .unwrap();
    b.place_stop(
        &a,
        &c,
        &StopOrder {
            client_order_id: "jt-e2-sl".into(),
            side: Side::Sell,
            qty: 4,
            stop: mnq(dec!(20988)),
            distance: dec!(10),
            kind: StopKind::Fixed,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        working(&b, &a).await,
        vec![
            (
                OrderType::Stop,
                Side::Sell,
                4,
                dec!(20988),
                Some("jt-e2-sl".into())
            ),
            (
                OrderType::Limit,
                Side::Sell,
                4,
                dec!(21008),
                Some("jt-e2-tp".into())
            ),
        ]
    );
    // A standalone trailing stop is refused, never guessed; an off-tick price never sent.
    let trailing = StopOrder {
        client_order_id: "jt-e2-tsl".into(),
        side: Side::Sell,
        qty: 4,
        stop: mnq(dec!(20988)),
        distance: dec!(10),
        kind: StopKind::Trailing {
            trigger: dec!(0),
            step: dec!(0),
        },
    };
    assert!(matches!(
        b.place_stop(&a, &c, &trailing).await,
        Err(BrokerError::Unsupported {
            feature: Feature::StandaloneTrailingStop
        })
    ));
    // The replacement pair is linked too: the target fills, the stop goes.
    sim.admin().set_price(&c.name, dec!(21008)).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            working(&b, &a).await.is_empty()
        })
        .await
    );
    assert_eq!(net(&b, &a, &c).await, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_protective_orders_price_moves_in_place() {
    let (_sim, b, a, c, _) = setup("wbb-mv").await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-mv1",
            Side::Buy,
            2,
            vec![leg(2, dec!(10))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    let before = b.working_orders(&a).await.unwrap();
    let of = |t: OrderType| {
        before
            .iter()
            .find(|o| o.order_type == Some(t))
            .expect("the bracket's leg")
            .clone()
    };
    let (tp, sl) = (of(OrderType::Limit), of(OrderType::Stop));
    // `orders/replace` with the new limit / stop price and no quantity: same order, same size.
    b.modify_order_price(&a, &tp, dec!(21012.5)).await.unwrap();
    b.modify_order_price(&a, &sl, dec!(20994)).await.unwrap();
    let after = working(&b, &a).await;
    assert_eq!(
        after,
        vec![
            (
                OrderType::Stop,
                Side::Sell,
                2,
                dec!(20994),
                sl.client_order_id.clone()
            ),
            (
                OrderType::Limit,
                Side::Sell,
                2,
                dec!(21012.5),
                tp.client_order_id.clone()
            ),
        ]
    );
}

#[tokio::test]
async fn close_and_flatten_leave_nothing_working() {
    let (sim, b, a, c, _) = setup("wbb-f").await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-f1",
            Side::Buy,
            2,
            vec![leg(2, dec!(10))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    let closed = b.close_position(&a, &c).await.unwrap();
    assert!(closed.order_id.is_some());
    assert!(working(&b, &a).await.is_empty());
    assert_eq!(net(&b, &a, &c).await, 0);
    assert!(b.polled_accounts().is_empty());
    assert_eq!(b.close_position(&a, &c).await.unwrap().order_id, None);

    // Two contracts and a resting order: flatten closes and cancels everything.
    let mes = b.resolve_contract("MES1!").await.unwrap();
    sim.admin().set_price(&mes.name, dec!(6000)).unwrap();
    b.place_bracket(
        &a,
        &c,
        &bracket("jt-f2", Side::Sell, 1, vec![], fixed(dec!(10))),
    )
    .await
    .unwrap();
    b.place_order(&a, &mes, &market("jt-f3", Side::Buy, 3))
        .await
        .unwrap();
    b.place_resting_entry(
        &a,
        &mes,
        &jt_domain::bracket::EntryOrder::Market(OrderRequest {
            client_order_id: "jt-f4".into(),
            side: Side::Buy,
            qty: 1,
            kind: OrderKind::Limit {
                price: Price::on_tick(by_root("MES").unwrap(), dec!(5990)),
            },
        }),
        TimeInForce::Day,
    )
    .await
    .unwrap();
    assert_eq!(working(&b, &a).await.len(), 2);
    let report = b.flatten_account(&a).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!((report.canceled.len(), report.closed.len()), (2, 2));
    assert!(working(&b, &a).await.is_empty());
    assert!(
        b.positions(&a)
            .await
            .unwrap()
            .iter()
            .all(|p| p.net_qty == 0)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_ambiguous_entry_is_found_by_client_order_id_and_protected_once() {
    let (sim, b, a, c, _) = setup("wbb-g").await;
    fault(
        &sim,
        FaultKind::Ambiguous {
            mode: AmbiguousMode::Timeout,
        },
        Some("account/orders/place"),
        None,
    );
    let ack = b
        .place_bracket(
            &a,
            &c,
            &bracket(
                "jt-g1",
                Side::Buy,
                2,
                vec![leg(2, dec!(10))],
                fixed(dec!(10)),
            ),
        )
        .await
        .unwrap();
    assert!(ack.recovered, "the timed-out entry was found, not re-sent");
    assert_eq!(net(&b, &a, &c).await, 2, "one entry, not two");
    assert_eq!(working(&b, &a).await.len(), 2);

    // A placement lost before the book: UnknownOutcome; the same id is looked up before it is
    // ever sent again.
    fault(
        &sim,
        FaultKind::Error {
            status: 503,
            rate: 1.0,
        },
        Some("account/orders/place"),
        None,
    );
    match b.place_order(&a, &c, &market("jt-g2", Side::Buy, 1)).await {
        Err(BrokerError::UnknownOutcome {
            client_order_id, ..
        }) => assert_eq!(client_order_id.as_deref(), Some("jt-g2")),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.find_order(&a, "jt-g2").await.unwrap(), None);
    let again = b
        .place_order(&a, &c, &market("jt-g2", Side::Buy, 1))
        .await
        .unwrap();
    assert!(!again.recovered);
    assert_eq!(net(&b, &a, &c).await, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limit_and_expired_credentials_are_typed_and_send_nothing_more() {
    let (sim, b, a, c, _) = setup("wbb-h").await;
    fault(
        &sim,
        FaultKind::TooManyRequests,
        Some("account/positions"),
        None,
    );
    assert!(matches!(
        b.positions(&a).await,
        Err(BrokerError::RateLimited { .. })
    ));
    // Cooling down: refused at once, nothing sent.
    let before = sim.admin().request_counts();
    assert!(matches!(
        b.working_orders(&a).await,
        Err(BrokerError::RateLimited { .. })
    ));
    assert_eq!(sim.admin().request_counts(), before);

    let (b, a, _) = login(&sim, "wbb-h2", |c| c);
    b.positions(&a).await.unwrap();
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::ExpireToken,
            user: Some("wbb-h2".into()),
            account: None,
            endpoint: None,
            count: None,
        })
        .unwrap();
    assert!(matches!(
        b.renew().await,
        Err(BrokerError::NeedsReauth { .. })
    ));
    let before = sim.admin().request_counts();
    assert!(matches!(
        b.place_bracket(
            &a,
            &c,
            &bracket(
                "jt-h1",
                Side::Buy,
                1,
                vec![leg(1, dec!(10))],
                fixed(dec!(10))
            )
        )
        .await,
        Err(BrokerError::NeedsReauth { .. })
    ));
    assert_eq!(
        sim.admin().request_counts(),
        before,
        "dead keys send nothing"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn what_cannot_be_protected_is_refused_before_anything_is_sent() {
    let (sim, b, a, c, _) = setup("wbb-i").await;
    let (no_oco, a2, _) = login(&sim, "wbb-i2", |mut c| {
        c.oco.enabled = false;
        c
    });
    let before = sim.admin().request_counts();
    let mut trailing = bracket("jt-i1", Side::Buy, 1, vec![leg(1, dec!(10))], None);
    trailing.stop = Some(StopSpec {
        distance: dec!(10),
        kind: StopKind::Trailing {
            trigger: dec!(0),
            step: dec!(0),
        },
    });
    assert!(matches!(
        b.place_bracket(&a, &c, &trailing).await,
        Err(BrokerError::Unsupported {
            feature: Feature::TrailingStop
        })
    ));
    let mut limit_entry = bracket(
        "jt-i2",
        Side::Buy,
        1,
        vec![leg(1, dec!(10))],
        fixed(dec!(10)),
    );
    limit_entry.entry = OrderKind::Limit {
        price: mnq(dec!(20990)),
    };
    assert!(matches!(
        b.place_bracket(&a, &c, &limit_entry).await,
        Err(BrokerError::Unsupported {
            feature: Feature::NonMarketBracketEntry
        })
    ));
    let off_tick = bracket(
        "jt-i3",
        Side::Buy,
        1,
        vec![leg(1, dec!(10.1))],
        fixed(dec!(10)),
    );
    assert!(matches!(
        b.place_bracket(&a, &c, &off_tick).await,
        Err(BrokerError::InvalidRequest { .. })
    ));
    // Without the guard a stop and a target cannot be linked: refused.
    assert!(matches!(
        no_oco
            .place_bracket(
                &a2,
                &c,
                &bracket(
                    "jt-i4",
                    Side::Buy,
                    1,
                    vec![leg(1, dec!(10))],
                    fixed(dec!(10))
                )
            )
            .await,
        Err(BrokerError::Unsupported {
            feature: Feature::NativeBracket
        })
    ));
    assert_eq!(sim.admin().request_counts(), before, "nothing was sent");
    assert_eq!(net(&b, &a, &c).await, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn one_app_key_with_another_secret_is_another_login() {
    let sim = sim().await;
    let created = sim
        .admin()
        .create_user(&NewUser {
            name: "wbb-j".into(),
            password: "pw".into(),
            accounts: vec!["wbb-j-1".into()],
            sec: Some(SECRET.into()),
            protocol: Protocol::Webull,
            ..NewUser::default()
        })
        .unwrap();
    let key = created.api_key.as_deref().unwrap();
    let registry = LoginRegistry::isolated();
    let good = WebullBroker::with(config(&sim, key), &registry).unwrap();
    let mut wrong = config(&sim, key);
    wrong.http.app_secret = "not-the-secret".into();
    let wrong = WebullBroker::with(wrong, &registry).unwrap();
    good.accounts().await.unwrap();
    assert!(matches!(
        wrong.accounts().await,
        Err(BrokerError::AuthExpired { .. })
    ));
    assert_eq!(registry.budgets().len(), 2);
    assert!(
        registry
            .budgets()
            .iter()
            .all(|(name, _)| !name.contains(SECRET))
    );
    sim.shutdown().await;
}

/// The events received within `within`, until `done` holds for them.
async fn gather(
    sub: &mut EventSubscription,
    within: Duration,
    done: impl Fn(&[(EventOrigin, BrokerEvent)]) -> bool,
) -> Vec<(EventOrigin, BrokerEvent)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while !done(&got) {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Some(e)) => got.push((e.origin, e.event.clone())),
            Ok(None) | Err(_) => break,
        }
    }
    got
}

type FillRow = (String, Option<String>, Side, u32, Decimal);

fn fills_of(events: &[(EventOrigin, BrokerEvent)]) -> Vec<FillRow> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            BrokerEvent::Fill(f) => Some((
                f.id.to_string(),
                f.client_order_id.clone(),
                f.side,
                f.qty,
                f.price,
            )),
            _ => None,
        })
        .collect()
}

fn nets_of(events: &[(EventOrigin, BrokerEvent)]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            BrokerEvent::Position(p) => Some(p.net_qty),
            _ => None,
        })
        .collect()
}

fn canceled(events: &[(EventOrigin, BrokerEvent)], client_order_id: &str) -> bool {
    events.iter().any(|(_, e)| {
        matches!(e, BrokerEvent::Order(o)
            if o.client_order_id.as_deref() == Some(client_order_id)
                && o.status == OrderStatus::Canceled)
    })
}

#[tokio::test]
async fn the_event_side_yields_each_order_fill_and_position_once() {
    let (sim, b, a, c, cfg) = setup("wbb-j").await;
    let (events, mut sub) = event_side(&cfg, &a).await;
    let up = gather(&mut sub, Duration::from_secs(5), |e| {
        e.iter()
            .any(|(_, e)| *e == BrokerEvent::Connection(ConnectionState::Connected))
    })
    .await;
    assert!(!up.is_empty(), "connected after the first pass");
    assert_eq!(events.polled_accounts(), vec![a.clone()]);

    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-j1",
            Side::Buy,
            2,
            vec![leg(2, dec!(10))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    // The poll sees the position (a state between two polls may pass unseen: positions are
    // states, fills are not).
    let mut got = gather(&mut sub, Duration::from_secs(5), |e| nets_of(e) == [2]).await;
    sim.admin().set_price(&c.name, dec!(21010)).unwrap();
    // The target fills; the guard cancels the stop; the poll reports all of it.
    got.extend(
        gather(&mut sub, Duration::from_secs(5), |e| {
            canceled(e, "jt-j1-sl") && nets_of(e).last() == Some(&0)
        })
        .await,
    );
    // Ten more polls add nothing: a re-poll never repeats a fill.
    got.extend(gather(&mut sub, Duration::from_secs(1), |_| false).await);
    let fills = fills_of(&got);
    let entry = b.find_order(&a, "jt-j1").await.unwrap().unwrap();
    let tp = b.find_order(&a, "jt-j1-tp1").await.unwrap().unwrap();
    assert_eq!(
        fills,
        vec![
            (
                format!("{}-2", entry.id),
                Some("jt-j1".into()),
                Side::Buy,
                2,
                dec!(21000)
            ),
            (
                format!("{}-2", tp.id),
                Some("jt-j1-tp1".into()),
                Side::Sell,
                2,
                dec!(21010)
            ),
        ],
        "{got:#?}"
    );
    assert_eq!(nets_of(&got), vec![2, 0], "{got:#?}");
    assert!(got.iter().all(|(o, _)| *o != EventOrigin::Snapshot));
    assert!(canceled(&got, "jt-j1-sl"));

    // A restarted holder starts from a baseline: what filled before is not delivered again.
    drop(sub);
    drop(events);
    let (_again, mut sub) = event_side(&cfg, &a).await;
    let baseline = gather(&mut sub, Duration::from_millis(800), |_| false).await;
    assert!(fills_of(&baseline).is_empty(), "{baseline:#?}");
    assert!(
        baseline
            .iter()
            .any(|(_, e)| *e == BrokerEvent::Connection(ConnectionState::Connected))
    );
    // The next fill is delivered once.
    b.place_order(&a, &c, &market("jt-j2", Side::Buy, 1))
        .await
        .unwrap();
    let mut got = gather(&mut sub, Duration::from_secs(5), |e| {
        !fills_of(e).is_empty()
    })
    .await;
    got.extend(gather(&mut sub, Duration::from_millis(800), |_| false).await);
    let j2 = b.find_order(&a, "jt-j2").await.unwrap().unwrap();
    assert_eq!(
        fills_of(&got),
        vec![(
            format!("{}-1", j2.id),
            Some("jt-j2".into()),
            Side::Buy,
            1,
            dec!(21010)
        )],
        "{got:#?}"
    );
    assert_eq!(nets_of(&got), vec![1]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_fresh_event_side_guards_protection_it_never_saw_placed() {
    let (sim, b, a, c, cfg) = setup("wbb-k").await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-k1",
            Side::Buy,
            1,
            vec![leg(1, dec!(10))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    // Nobody holds the login's event side: the target fills and the stop keeps working — the
    // placing side runs no watcher of its own.
    sim.admin().set_price(&c.name, dec!(21010)).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(net(&b, &a, &c).await, 0);
    assert_eq!(
        working(&b, &a).await,
        vec![(
            OrderType::Stop,
            Side::Sell,
            1,
            dec!(20990),
            Some("jt-k1-sl".into())
        )]
    );
    // A holder starts (a restarted connection manager, or another replica): it finds the flat
    // position and the stop from the broker's own state and cancels it.
    let (_events, _sub) = event_side(&cfg, &a).await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            working(&b, &a).await.is_empty()
        })
        .await,
        "{:?}",
        working(&b, &a).await
    );
    let stop = b.find_order(&a, "jt-k1-sl").await.unwrap().unwrap();
    assert_eq!(stop.status, OrderStatus::Canceled);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_partly_filled_target_shrinks_the_stop_to_what_is_left() {
    let (sim, b, a, c, cfg) = setup("wbb-l").await;
    let (_events, mut sub) = event_side(&cfg, &a).await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-l1",
            Side::Buy,
            3,
            vec![leg(3, dec!(10))],
            fixed(dec!(10)),
        ),
    )
    .await
    .unwrap();
    // The target fills one contract per match (the simulator matches again on every change of
    // the book, so each reduction of the stop lets the next contract fill).
    sim.admin().set_matching(&MatchingJson {
        partial_fill_qty: Some(1),
        ..Default::default()
    });
    sim.admin().set_price(&c.name, dec!(21010)).unwrap();
    let got = gather(&mut sub, Duration::from_secs(10), |e| {
        canceled(e, "jt-l1-sl")
    })
    .await;
    let mut stop: Vec<(Option<u32>, OrderStatus)> = Vec::new();
    for (_, e) in &got {
        if let BrokerEvent::Order(o) = e
            && o.client_order_id.as_deref() == Some("jt-l1-sl")
            && stop.last() != Some(&(o.qty, o.status))
        {
            stop.push((o.qty, o.status));
        }
    }
    // The stop followed the position down as the target filled, then went with it.
    assert_eq!(
        stop,
        vec![
            (Some(3), OrderStatus::Working),
            (Some(2), OrderStatus::Working),
            (Some(1), OrderStatus::Working),
            (Some(1), OrderStatus::Canceled),
        ],
        "{got:#?}"
    );
    assert_eq!(
        fills_of(&got)
            .iter()
            .filter(|f| f.1.as_deref() == Some("jt-l1-tp1"))
            .map(|f| f.3)
            .collect::<Vec<_>>(),
        vec![1, 1, 1],
        "one fill per contract of the target"
    );
    assert_eq!(net(&b, &a, &c).await, 0);
    assert!(working(&b, &a).await.is_empty());
    sim.shutdown().await;
}
