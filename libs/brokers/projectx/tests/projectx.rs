//! The ProjectX adapter against the real simulator (`jt-sim`, its ProjectX surface) over
//! loopback: sessions and renewal, brackets with several take-profit legs, stop-only and
//! target-only entries, DCA, flip, flatten, 429 back-off and the shared budget, ambiguous
//! order outcomes, the user hub (event order, drop and re-subscribe, polling fallback), the
//! exit guard and the market hub's quotes.

#![allow(clippy::expect_used)] // helpers outside #[test] functions

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{collect, eventually, fault, next_event, price, start_sim};
use jt_broker::{
    AccountId, Broker, BrokerError, BrokerEvent, BrokerEvents, ConnectionState, Contract,
    EventOrigin, OrderStatus, OrderType, Quote, QuoteEvent, QuoteFeed, SessionOutcome,
};
use jt_domain::bracket::StopOrder;
use jt_domain::instrument::by_root;
use jt_domain::order::{BracketOrder, OrderKind, OrderRequest, StopKind, StopSpec, TakeProfitLeg};
use jt_domain::types::{Direction, Price, Side};
use jt_net::gate::GateConfig;
use jt_net::registry::Plumbing;
use jt_net::socket::Reconnect;
use jt_projectx::config::{BracketConfig, HttpConfig, HubConfig, RateLimitConfig};
use jt_projectx::hub::client::EndReason;
use jt_projectx::{Credentials, Firm, LoginRegistry, ProjectXBroker, ProjectXConfig};
use jt_sim::admin::NewUser;
use jt_sim::core::model::Protocol;
use jt_sim::faults::{AmbiguousMode, FaultKind, FaultSpec};
use jt_sim::projectx::ProjectXConfig as SimProjectX;
use jt_sim::projectx::limits::ProjectXLimits;
use jt_sim::{Sim, SimConfig};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

/// A simulator without request limits (tests poll freely; the limits have their own test).
async fn sim() -> Sim {
    start_sim(SimConfig {
        projectx: SimProjectX {
            limits: ProjectXLimits {
                requests: None,
                bars_requests: None,
                ..ProjectXLimits::default()
            },
            ..SimProjectX::default()
        },
        ..SimConfig::default()
    })
    .await
}

/// A simulator without request limits whose contracts are listed as on `date`.
async fn sim_on(date: chrono::NaiveDate) -> Sim {
    start_sim(SimConfig {
        projectx: SimProjectX {
            limits: ProjectXLimits {
                requests: None,
                bars_requests: None,
                ..ProjectXLimits::default()
            },
            ..SimProjectX::default()
        },
        catalog_date: Some(date),
        ..SimConfig::default()
    })
    .await
}

/// A ProjectX login on the simulator; returns its account ids.
fn px_user(sim: &Sim, name: &str, accounts: &[&str]) -> Vec<AccountId> {
    sim.admin()
        .create_user(&NewUser {
            name: name.into(),
            password: "pw".into(),
            accounts: accounts.iter().map(|a| (*a).to_string()).collect(),
            protocol: Protocol::ProjectX,
            api_key: Some(format!("{name}-key")),
            ..NewUser::default()
        })
        .expect("the simulator creates the ProjectX login")
        .accounts
        .iter()
        .map(|a| AccountId::from(a.id))
        .collect()
}

/// A registry of its own whose hubs connect through a test-sized gate (2 in flight, 5 ms apart).
fn registry() -> Arc<LoginRegistry> {
    LoginRegistry::new(Plumbing::new(&GateConfig {
        max_in_flight: 2,
        spacing: Duration::from_millis(5),
    }))
}

fn config(sim: &Sim, name: &str) -> ProjectXConfig {
    let mut c = ProjectXConfig::new(
        Firm::TopstepX,
        Credentials {
            user_name: name.into(),
            api_key: format!("{name}-key"),
        },
    )
    .with_base_url(&sim.base_url())
    .expect("the simulator's base URL is http");
    c.http = HttpConfig {
        auth_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(2),
        read_retry_backoff: Duration::from_millis(20),
        lookup_interval: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    c.limits = RateLimitConfig {
        requests: 10_000,
        too_many_requests_backoff: Duration::from_millis(300),
        max_wait: Duration::from_secs(2),
        ..RateLimitConfig::default()
    };
    c.hub = HubConfig {
        reconnect: Reconnect {
            initial_stagger_max: Duration::ZERO,
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            ..Reconnect::default()
        },
        poll_interval: Duration::from_millis(200),
        ..HubConfig::default()
    };
    c.brackets = BracketConfig {
        fill_wait: Duration::from_secs(2),
        children_wait: Duration::from_secs(1),
        poll_interval: Duration::from_millis(50),
    };
    c
}

fn broker(c: ProjectXConfig) -> ProjectXBroker {
    ProjectXBroker::with(c, &registry()).expect("the adapter builds")
}

fn mnq(p: Decimal) -> Price {
    Price::on_tick(by_root("MNQ").expect("MNQ is in the table"), p)
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

fn stop(distance: Decimal) -> Option<StopSpec> {
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

async fn setup(name: &str) -> (Sim, ProjectXBroker, AccountId, Contract) {
    let sim = sim().await;
    let account = px_user(&sim, name, &[&format!("{}1", name.to_uppercase())])[0].clone();
    let b = broker(config(&sim, name));
    let contract = b.resolve_contract("MNQ1!").await.expect("MNQ resolves");
    price(&sim, &contract.name, dec!(21000));
    (sim, b, account, contract)
}

/// (type, side, qty, price or stop) of the working orders, sorted.
async fn working(
    b: &ProjectXBroker,
    a: &AccountId,
) -> Vec<(OrderType, Side, u32, Decimal, Option<String>)> {
    let mut v: Vec<_> = b
        .working_orders(a)
        .await
        .expect("working orders")
        .into_iter()
        .map(|o| {
            (
                o.order_type.expect("type"),
                o.side,
                o.qty.expect("qty"),
                o.price.or(o.stop_price).expect("a price"),
                o.client_order_id,
            )
        })
        .collect();
    v.sort_by_key(|o| (format!("{:?}", o.0), o.3));
    v
}

async fn net(b: &ProjectXBroker, a: &AccountId, c: &Contract) -> i64 {
    b.position(a, &c.id)
        .await
        .expect("position")
        .map_or(0, |p| p.net_qty)
}

#[tokio::test]
async fn login_reuse_validate_renewal_expiry_and_refused_keys() {
    let sim = sim().await;
    let a = px_user(&sim, "pxa", &["PXA1"])[0].clone();
    let registry = registry();
    let b = ProjectXBroker::with(config(&sim, "pxa"), &registry).unwrap();
    let first = b.login().await.unwrap();
    assert_eq!(first.outcome, SessionOutcome::LoggedIn);
    let lifetime = first.expires_at - first.obtained_at;
    assert!(
        lifetime > chrono::Duration::hours(23),
        "the expiry is the JWT's: {lifetime}"
    );
    // A second value for the same login shares the session.
    let b2 = ProjectXBroker::with(config(&sim, "pxa"), &registry).unwrap();
    assert_eq!(b2.login().await.unwrap().outcome, SessionOutcome::Reused);
    let renewed = b2.renew().await.unwrap();
    assert_eq!(
        renewed.outcome,
        SessionOutcome::Renewed,
        "Auth/validate → newToken"
    );
    assert_eq!(b.accounts().await.unwrap()[0].name, "PXA1");

    // Renewal when due, by the token's own expiry.
    sim.admin()
        .set_projectx_token_lifetime(Duration::from_secs(3));
    let mut short = config(&sim, "pxa");
    short.session.renew_before_expiry = Duration::from_secs(2);
    let s = broker(short);
    let before = s.login().await.unwrap();
    assert!(before.expires_at - before.obtained_at <= chrono::Duration::seconds(4));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(s.positions(&a).await.unwrap().is_empty());
    let after = s.login().await.unwrap();
    assert!(
        after.obtained_at > before.obtained_at,
        "renewed before expiry: {after:?}"
    );
    sim.admin()
        .set_projectx_token_lifetime(Duration::from_secs(24 * 3600));

    // An expired token: the call logs in again and succeeds.
    fault(&sim, FaultKind::ExpireToken, Some("pxa"), None, None);
    assert!(b.positions(&a).await.unwrap().is_empty());
    // A wrong key: needs re-authentication, for every call.
    let mut wrong = config(&sim, "pxa");
    wrong.credentials.api_key = "nope".into();
    let w = broker(wrong);
    let err = w.login().await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::NeedsReauth { reason } if reason.contains("InvalidCredentials")),
        "{err:?}"
    );
    assert!(matches!(
        w.positions(&a).await.unwrap_err(),
        BrokerError::NeedsReauth { .. }
    ));
    // A Tradovate login has no ProjectX access.
    sim.admin()
        .create_user(&NewUser {
            name: "tv".into(),
            password: "pw".into(),
            ..NewUser::default()
        })
        .unwrap();
    let err = broker(config(&sim, "tv")).login().await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::NeedsReauth { reason } if reason.contains("ApiSubscriptionNotFound")),
        "{err:?}"
    );
}

/// The Gateway's search lists the active month only: a root resolves to it on either side of
/// a roll (and a year boundary), another month is found by its id.
/// Issue 21: N resolutions of a root on one login cost one `Contract/search`, concurrent first
/// look-ups included; once the TTL passes (the Gateway reports no expiration) it is looked up
/// again.
#[tokio::test]
async fn contract_resolutions_are_cached_per_login_in_one_flight_until_the_ttl() {
    let sim = sim().await;
    px_user(&sim, "pxc", &["PXC1"]);
    let mut c = config(&sim, "pxc");
    c.http.contract_ttl = Duration::from_millis(600);
    let b = broker(c);
    b.login().await.unwrap();
    let searches = || {
        sim.admin()
            .request_counts()
            .into_iter()
            .filter(|(e, _)| e.starts_with("projectx:contract/"))
            .collect::<std::collections::BTreeMap<String, u64>>()
    };
    let one_search: std::collections::BTreeMap<String, u64> =
        [("projectx:contract/search".to_string(), 1)]
            .into_iter()
            .collect();
    sim.admin().reset_request_counts();
    let all = futures_util::future::join_all((0..8).map(|_| b.resolve_contract("MNQ1!"))).await;
    let first = all[0].clone().unwrap();
    assert!(all.iter().all(|r| r.as_ref().unwrap() == &first), "{all:?}");
    for symbol in ["MNQ", "MNQ1!", "CME_MINI:MNQ1!"] {
        assert_eq!(b.resolve_contract(symbol).await.unwrap(), first);
    }
    assert_eq!(searches(), one_search);

    tokio::time::sleep(Duration::from_millis(700)).await;
    sim.admin().reset_request_counts();
    for _ in 0..3 {
        assert_eq!(b.resolve_contract("MNQ1!").await.unwrap(), first);
    }
    assert_eq!(searches(), one_search);
}

#[tokio::test]
async fn contracts_resolve_to_the_active_month_and_other_months_by_id_across_a_roll() {
    for (date, front, other, other_id) in [
        ((2026, 11, 21), "MNQZ6", "MNQH7", "CON.F.US.MNQ.H27"),
        ((2026, 12, 11), "MNQH7", "MNQM7", "CON.F.US.MNQ.M27"),
    ] {
        let sim = sim_on(chrono::NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap()).await;
        px_user(&sim, "pxr", &["PXR1"]);
        let b = broker(config(&sim, "pxr"));
        for symbol in ["MNQ1!", "MNQ", "CME_MINI:MNQ1!"] {
            let c = b.resolve_contract(symbol).await.unwrap();
            assert_eq!(c.name, front, "{symbol} on {date:?}");
        }
        sim.admin().reset_request_counts();
        let c = b.resolve_contract(other).await.unwrap();
        assert_eq!((c.name.as_str(), c.id.as_str()), (other, other_id));
        let calls = sim.admin().request_counts();
        assert_eq!(
            calls.get("projectx:contract/searchbyid"),
            Some(&1),
            "{calls:?}"
        );
        // The month is usable: its tick size comes from the model the look-up cached.
        assert_eq!(b.http().tick_size(&c.id).await.unwrap(), dec!(0.25));
        // A month the exchange does not list (expired here) is unknown, not another month.
        assert!(matches!(
            b.resolve_contract("MNQU6").await,
            Err(BrokerError::UnknownContract { .. })
        ));
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_401_on_the_position_list_is_auth_expired_never_no_positions() {
    let (sim, b, a, c) = setup("pxu").await;
    b.place_order(&a, &c, &market("jt-u1", Side::Buy, 1))
        .await
        .unwrap();
    fault(&sim, FaultKind::Positions401, Some("pxu"), None, None);
    let err = b.positions(&a).await.unwrap_err();
    assert!(matches!(err, BrokerError::AuthExpired { .. }), "{err:?}");
    sim.admin().clear_faults();
    assert_eq!(net(&b, &a, &c).await, 1);
}

#[tokio::test]
async fn a_bracket_with_three_take_profit_legs_is_one_native_bracket_plus_legs_kept_within_the_position()
 {
    let (sim, b, a, c) = setup("pxb").await;
    let mut events = b.subscribe(std::slice::from_ref(&a)).await.unwrap();
    assert!(
        next_event(&mut events, Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connection(ConnectionState::Connected)
        ))
        .await
        .is_some()
    );
    let ack = b
        .place_bracket(
            &a,
            &c,
            &bracket(
                "jt-b1",
                Side::Buy,
                15,
                vec![leg(5, dec!(5)), leg(5, dec!(10)), leg(5, dec!(15))],
                stop(dec!(10)),
            ),
        )
        .await
        .unwrap();
    assert!(!ack.recovered && ack.entry_order_id.is_some());
    assert_eq!(net(&b, &a, &c).await, 15);
    assert_eq!(
        working(&b, &a).await,
        vec![
            (OrderType::Limit, Side::Sell, 5, dec!(21005), None),
            (
                OrderType::Limit,
                Side::Sell,
                5,
                dec!(21010),
                Some("jt-b1-tp2".into())
            ),
            (
                OrderType::Limit,
                Side::Sell,
                5,
                dec!(21015),
                Some("jt-b1-tp3".into())
            ),
            (OrderType::Stop, Side::Sell, 15, dec!(20990), None),
        ],
        "the native target resized to the first leg; the other legs tagged"
    );
    // Two legs fill: the stop must not exceed the 5 contracts left.
    price(&sim, &c.name, dec!(21010));
    assert!(
        eventually(Duration::from_secs(5), || async {
            working(&b, &a)
                .await
                .iter()
                .any(|o| o.0 == OrderType::Stop && o.2 == 5)
        })
        .await,
        "the exit guard shrinks the stop: {:?}",
        working(&b, &a).await
    );
    assert_eq!(net(&b, &a, &c).await, 5);
    // The stop takes the rest: flat, never reversed, and the last leg is canceled.
    price(&sim, &c.name, dec!(20990));
    assert!(
        eventually(Duration::from_secs(5), || async {
            working(&b, &a).await.is_empty()
        })
        .await,
        "the leg left over is canceled: {:?}",
        working(&b, &a).await
    );
    assert_eq!(net(&b, &a, &c).await, 0);
    let fills = b.fills(&a).await.unwrap();
    assert!(
        fills
            .iter()
            .any(|f| f.client_order_id.as_deref() == Some("jt-b1"))
    );
}

#[tokio::test]
async fn stop_only_target_only_and_trailing_entries() {
    let (sim, b, a, c) = setup("pxs").await;
    b.place_bracket(
        &a,
        &c,
        &bracket("jt-s1", Side::Buy, 2, vec![], stop(dec!(5))),
    )
    .await
    .unwrap();
    assert_eq!(
        working(&b, &a).await,
        vec![(OrderType::Stop, Side::Sell, 2, dec!(20995), None)]
    );
    b.close_position(&a, &c).await.unwrap();
    assert!(working(&b, &a).await.is_empty());
    b.place_bracket(
        &a,
        &c,
        &bracket("jt-s2", Side::Sell, 1, vec![leg(1, dec!(4))], None),
    )
    .await
    .unwrap();
    assert_eq!(
        working(&b, &a).await,
        vec![(OrderType::Limit, Side::Buy, 1, dec!(20996), None)]
    );
    b.close_position(&a, &c).await.unwrap();
    let trailing = BracketOrder {
        stop: Some(StopSpec {
            distance: dec!(3),
            kind: StopKind::Trailing {
                trigger: dec!(0),
                step: dec!(0),
            },
        }),
        ..bracket("jt-s3", Side::Buy, 1, vec![leg(1, dec!(6))], None)
    };
    b.place_bracket(&a, &c, &trailing).await.unwrap();
    let w = b.working_orders(&a).await.unwrap();
    assert!(
        w.iter()
            .any(|o| o.order_type == Some(OrderType::TrailingStop)
                && o.stop_price == Some(dec!(20997))),
        "{w:?}"
    );
    // What ProjectX cannot carry is refused before anything is sent.
    let with_trigger = BracketOrder {
        stop: Some(StopSpec {
            distance: dec!(3),
            kind: StopKind::Trailing {
                trigger: dec!(2),
                step: dec!(0),
            },
        }),
        ..bracket("jt-s4", Side::Buy, 1, vec![], None)
    };
    assert!(matches!(
        b.place_bracket(&a, &c, &with_trigger).await,
        Err(BrokerError::Unsupported { .. })
    ));
    let limit_entry = BracketOrder {
        entry: OrderKind::Limit {
            price: mnq(dec!(20000)),
        },
        ..bracket("jt-s5", Side::Buy, 1, vec![leg(1, dec!(5))], None)
    };
    assert!(matches!(
        b.place_bracket(&a, &c, &limit_entry).await,
        Err(BrokerError::Unsupported { .. })
    ));
    let off_tick = bracket("jt-s6", Side::Buy, 1, vec![leg(1, dec!(5.1))], None);
    assert!(matches!(
        b.place_bracket(&a, &c, &off_tick).await,
        Err(BrokerError::InvalidRequest { .. })
    ));
    assert_eq!(
        sim.admin()
            .orders(Some("PXS1"))
            .unwrap()
            .iter()
            .filter(|o| o
                .cl_ord_id
                .as_deref()
                .is_some_and(|t| t.starts_with("jt-s4")
                    || t.starts_with("jt-s5")
                    || t.starts_with("jt-s6")))
            .count(),
        0
    );
}

#[tokio::test]
async fn dca_add_replaces_the_take_profit_and_the_stop_for_the_whole_position() {
    let (sim, b, a, c) = setup("pxd").await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-d1",
            Side::Buy,
            2,
            vec![leg(2, dec!(10))],
            stop(dec!(10)),
        ),
    )
    .await
    .unwrap();
    price(&sim, &c.name, dec!(20996));
    b.place_order(&a, &c, &market("jt-d2", Side::Buy, 2))
        .await
        .unwrap();
    let pos = b.position(&a, &c.id).await.unwrap().unwrap();
    assert_eq!((pos.net_qty, pos.avg_price), (4, Some(dec!(20998))));
    let tp = b
        .cancel_take_profits(&a, &c, Direction::Long)
        .await
        .unwrap();
    assert_eq!(tp.canceled.len(), 1);
    b.cancel_exit_orders(&a, &c, Direction::Long, jt_broker::ExitOrders::Stops)
        .await
        .unwrap();
    assert!(working(&b, &a).await.is_empty());
    b.place_order(
        &a,
        &c,
        &OrderRequest {
            client_order_id: "jt-d2-tp".into(),
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
            client_order_id: "jt-d2-sl".into(),
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
                OrderType::Limit,
                Side::Sell,
                4,
                dec!(21008),
                Some("jt-d2-tp".into())
            ),
            (
                OrderType::Stop,
                Side::Sell,
                4,
                dec!(20988),
                Some("jt-d2-sl".into())
            ),
        ]
    );
    // A standalone trailing stop is refused, never guessed.
    let trailing = StopOrder {
        client_order_id: "jt-d2-tsl".into(),
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
        Err(BrokerError::Unsupported { .. })
    ));
    // Off-tick prices are refused before sending.
    let off = OrderRequest {
        client_order_id: "jt-d3".into(),
        side: Side::Sell,
        qty: 1,
        kind: OrderKind::Limit {
            price: Price::on_tick(by_root("6E").unwrap(), dec!(21005.1)),
        },
    };
    assert!(matches!(
        b.place_order(&a, &c, &off).await,
        Err(BrokerError::InvalidRequest { .. })
    ));
}

#[tokio::test]
async fn flip_and_flatten() {
    let (sim, b, a, c) = setup("pxf").await;
    let es = b.resolve_contract("ES").await.unwrap();
    price(&sim, &es.name, dec!(6000));
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-f1",
            Side::Buy,
            2,
            vec![leg(2, dec!(10))],
            stop(dec!(10)),
        ),
    )
    .await
    .unwrap();
    // Flip: close (its working orders first), then enter the other way.
    let closed = b.close_position(&a, &c).await.unwrap();
    assert!(closed.order_id.is_some());
    assert_eq!(net(&b, &a, &c).await, 0);
    assert!(working(&b, &a).await.is_empty());
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-f2",
            Side::Sell,
            1,
            vec![leg(1, dec!(10))],
            stop(dec!(10)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(net(&b, &a, &c).await, -1);
    assert_eq!(
        b.close_position(&a, &es).await.unwrap().order_id,
        None,
        "flat already"
    );
    // Flatten: every position closed, every order canceled.
    b.place_order(&a, &es, &market("jt-f3", Side::Buy, 3))
        .await
        .unwrap();
    b.place_order(
        &a,
        &es,
        &OrderRequest {
            client_order_id: "jt-f4".into(),
            side: Side::Buy,
            qty: 1,
            kind: OrderKind::Limit {
                price: Price::on_tick(by_root("ES").unwrap(), dec!(5900)),
            },
        },
    )
    .await
    .unwrap();
    let report = b.flatten_account(&a).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.closed.len(), 2);
    assert!(
        b.positions(&a)
            .await
            .unwrap()
            .iter()
            .all(|p| p.net_qty == 0)
    );
    assert!(b.working_orders(&a).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_429_backs_off_and_the_budget_is_shared_per_token() {
    let sim = start_sim(SimConfig {
        projectx: SimProjectX {
            limits: ProjectXLimits {
                requests: Some(12),
                ..ProjectXLimits::default()
            },
            ..SimProjectX::default()
        },
        ..SimConfig::default()
    })
    .await;
    let a = px_user(&sim, "pxr", &["PXR1"])[0].clone();
    let b = broker(config(&sim, "pxr"));
    b.login().await.unwrap();
    // An injected 429: RateLimited, calls fail fast during the cool-down, then work again.
    fault(
        &sim,
        FaultKind::TooManyRequests,
        Some("pxr"),
        Some("position/searchopen"),
        Some(1),
    );
    let err = b.positions(&a).await.unwrap_err();
    assert!(matches!(err, BrokerError::RateLimited { .. }), "{err:?}");
    let fast = std::time::Instant::now();
    assert!(matches!(
        b.positions(&a).await,
        Err(BrokerError::RateLimited { .. })
    ));
    assert!(
        fast.elapsed() < Duration::from_millis(100),
        "no request during the cool-down"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(b.positions(&a).await.is_ok());
    // The adapter's own budget, shared by two values of one login, stays below the server's.
    let registry = registry();
    let mut cfg = config(&sim, "pxr");
    cfg.limits = RateLimitConfig {
        requests: 10,
        max_wait: Duration::from_millis(100),
        ..cfg.limits
    };
    let x = ProjectXBroker::with(cfg.clone(), &registry).unwrap();
    let y = ProjectXBroker::with(cfg, &registry).unwrap();
    let mut refused = 0;
    for i in 0..12 {
        let who = if i % 2 == 0 { &x } else { &y };
        match who.positions(&a).await {
            Ok(_) => {}
            Err(BrokerError::RateLimited { .. }) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(refused >= 1, "the shared budget refused locally");
    assert!(x.call_budget().unwrap().used <= 10);
    assert_eq!(x.call_budget(), y.call_budget(), "one budget per token");
}

#[tokio::test]
async fn an_ambiguous_order_is_looked_up_by_its_custom_tag_never_sent_twice() {
    let (sim, b, a, c) = setup("pxm").await;
    let spec = |mode| FaultSpec {
        kind: FaultKind::Ambiguous { mode },
        user: Some("pxm".into()),
        account: None,
        endpoint: Some("order/place".into()),
        count: Some(1),
    };
    sim.admin().add_fault(spec(AmbiguousMode::Drop)).unwrap();
    let ack = b
        .place_order(&a, &c, &market("jt-m1", Side::Buy, 1))
        .await
        .unwrap();
    assert!(
        ack.recovered,
        "found by its customTag after the lost answer"
    );
    let tagged = |tag: &str| {
        sim.admin()
            .orders(Some("PXM1"))
            .unwrap()
            .iter()
            .filter(|o| o.cl_ord_id.as_deref() == Some(tag))
            .count()
    };
    assert_eq!(tagged("jt-m1"), 1, "exactly one order");
    // A timeout: the same, and a bracket entry the same.
    sim.admin().add_fault(spec(AmbiguousMode::Timeout)).unwrap();
    let ack = b
        .place_bracket(
            &a,
            &c,
            &bracket(
                "jt-m2",
                Side::Buy,
                2,
                vec![leg(1, dec!(5)), leg(1, dec!(10))],
                stop(dec!(5)),
            ),
        )
        .await
        .unwrap();
    assert!(ack.recovered);
    assert_eq!(tagged("jt-m2"), 1);
    assert_eq!(
        tagged("jt-m2-tp2"),
        1,
        "its legs are placed once the entry is known"
    );
    // Sending the same client order id again is refused by the broker, not duplicated.
    let again = b
        .place_order(&a, &c, &market("jt-m1", Side::Buy, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, BrokerError::Rejected { code: Some(c), .. } if c == "OrderRejected"),
        "{again:?}"
    );
    assert_eq!(tagged("jt-m1"), 1);
    assert_eq!(
        b.find_order(&a, "jt-m1").await.unwrap().unwrap().status,
        OrderStatus::Filled
    );
}

#[tokio::test]
async fn the_user_hub_delivers_the_bracket_in_order() {
    let (sim, b, a, c) = setup("pxe").await;
    sim.admin().set_matching(&jt_sim::admin::MatchingJson {
        commission_per_contract: Some(dec!(0.37)),
        ..Default::default()
    });
    let mut events = b.subscribe(std::slice::from_ref(&a)).await.unwrap();
    assert!(
        next_event(&mut events, Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connection(ConnectionState::Connected)
        ))
        .await
        .is_some()
    );
    let _ = collect(&mut events, Duration::from_millis(300)).await;
    b.place_bracket(
        &a,
        &c,
        &bracket("jt-e1", Side::Buy, 2, vec![leg(2, dec!(5))], stop(dec!(5))),
    )
    .await
    .unwrap();
    let got = collect(&mut events, Duration::from_millis(800)).await;
    let live: Vec<String> = got
        .iter()
        .filter(|e| e.origin == EventOrigin::Live)
        .map(|e| match &e.event {
            BrokerEvent::Order(o) => format!("order {:?} {:?}", o.order_type.unwrap(), o.status),
            BrokerEvent::Fill(f) => format!("fill {:?}", f.client_order_id),
            BrokerEvent::Position(p) => format!("position {}", p.net_qty),
            BrokerEvent::CashBalance(_) => "cash".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        live,
        vec![
            "order Market Pending".to_string(),
            "fill Some(\"jt-e1\")".into(),
            "order Market Filled".into(),
            "position 2".into(),
            "cash".into(),
            "order Stop Working".into(),
            "order Limit Working".into(),
        ],
        "{got:#?}"
    );
}

#[tokio::test]
async fn a_dropped_hub_reconnects_and_subscribes_again() {
    let (sim, b, a, c) = setup("pxh").await;
    let mut events = b.subscribe(std::slice::from_ref(&a)).await.unwrap();
    let connected =
        |e: &BrokerEvent| matches!(e, BrokerEvent::Connection(ConnectionState::Connected));
    assert!(
        next_event(&mut events, Duration::from_secs(5), connected)
            .await
            .is_some()
    );
    let calls = b.hub().unwrap().stats().subscribe_calls;
    fault(&sim, FaultKind::DropSocket, Some("pxh"), None, None);
    assert!(
        next_event(&mut events, Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connection(ConnectionState::Reconnecting { .. })
        ))
        .await
        .is_some()
    );
    assert!(
        next_event(&mut events, Duration::from_secs(5), connected)
            .await
            .is_some()
    );
    let stats = b.hub().unwrap().stats();
    assert_eq!(stats.connections, 2);
    assert_eq!(
        stats.subscribe_calls,
        calls * 2,
        "every subscription sent again"
    );
    b.place_order(&a, &c, &market("jt-h1", Side::Buy, 1))
        .await
        .unwrap();
    let fill = next_event(&mut events, Duration::from_secs(5), |e| {
        matches!(e, BrokerEvent::Fill(_))
    })
    .await
    .expect("a live fill after the reconnect");
    assert_eq!(fill.origin, EventOrigin::Live);
}

/// The user hub connects straight to the WebSocket (ProjectX's example) or negotiates first
/// (`hub.negotiate`, what SignalR clients do by default), and reconnects either way — also
/// after its token was refused, at the negotiation or at the upgrade.
#[tokio::test]
async fn the_user_hub_connects_with_and_without_negotiation() {
    for negotiate in [false, true] {
        let sim = sim().await;
        let a = px_user(&sim, "pxn", &["PXN1"])[0].clone();
        let mut c = config(&sim, "pxn");
        c.hub.negotiate = negotiate;
        let b = broker(c);
        let contract = b.resolve_contract("MNQ1!").await.unwrap();
        price(&sim, &contract.name, dec!(21000));
        sim.admin().reset_request_counts();
        let mut events = b.subscribe(std::slice::from_ref(&a)).await.unwrap();
        let connected =
            |e: &BrokerEvent| matches!(e, BrokerEvent::Connection(ConnectionState::Connected));
        assert!(
            next_event(&mut events, Duration::from_secs(5), connected)
                .await
                .is_some(),
            "negotiate: {negotiate}"
        );
        let calls = sim.admin().request_counts();
        assert_eq!(calls.get("projectx:hubs/user"), Some(&1), "{calls:?}");
        assert_eq!(
            calls.get("projectx:hubs/user/negotiate"),
            negotiate.then_some(&1),
            "{calls:?}"
        );
        b.place_order(&a, &contract, &market("jt-n1", Side::Buy, 1))
            .await
            .unwrap();
        let fill = next_event(&mut events, Duration::from_secs(5), |e| {
            matches!(e, BrokerEvent::Fill(_))
        })
        .await
        .expect("a fill");
        assert_eq!(fill.origin, EventOrigin::Live, "negotiate: {negotiate}");
        // The socket drops and the next connection is refused with 401 (at its first request:
        // the negotiation, or the upgrade): the hub logs in again and connects.
        fault(
            &sim,
            FaultKind::Error {
                status: 401,
                rate: 1.0,
            },
            Some("pxn"),
            Some("hubs/user"),
            Some(1),
        );
        fault(&sim, FaultKind::DropSocket, Some("pxn"), None, None);
        assert!(
            next_event(&mut events, Duration::from_secs(10), connected)
                .await
                .is_some(),
            "negotiate: {negotiate}"
        );
        let stats = b.hub().unwrap().stats();
        assert!(
            stats.ends.contains(&EndReason::ConnectFailed),
            "a refused connection first: {stats:?}"
        );
        let calls = sim.admin().request_counts();
        assert_eq!(
            calls.get("projectx:auth/loginkey"),
            Some(&1),
            "the 401 logged in again: {calls:?}"
        );
        let negotiations = calls
            .get("projectx:hubs/user/negotiate")
            .copied()
            .unwrap_or(0);
        if negotiate {
            assert!(negotiations >= 3, "{calls:?}");
        } else {
            assert_eq!(negotiations, 0, "{calls:?}");
        }
        b.place_order(&a, &contract, &market("jt-n2", Side::Sell, 1))
            .await
            .unwrap();
        let fill = next_event(
            &mut events,
            Duration::from_secs(5),
            |e| matches!(e, BrokerEvent::Fill(f) if f.client_order_id.as_deref() == Some("jt-n2")),
        )
        .await
        .expect("a fill after the reconnect");
        assert_eq!(fill.origin, EventOrigin::Live, "negotiate: {negotiate}");
        b.hub().unwrap().shutdown().await;
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn while_the_hub_is_down_rest_polling_delivers_the_changes() {
    let (sim, b, a, c) = setup("pxq").await;
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::Error {
                status: 503,
                rate: 1.0,
            },
            user: Some("pxq".into()),
            account: None,
            endpoint: Some("hubs/user".into()),
            count: None,
        })
        .unwrap();
    let mut events = b.subscribe(std::slice::from_ref(&a)).await.unwrap();
    assert!(
        next_event(&mut events, Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connection(ConnectionState::Reconnecting { .. })
        ))
        .await
        .is_some()
    );
    b.place_order(&a, &c, &market("jt-q1", Side::Sell, 2))
        .await
        .unwrap();
    let fill = next_event(&mut events, Duration::from_secs(3), |e| {
        matches!(e, BrokerEvent::Fill(_))
    })
    .await
    .expect("a fill from the poll");
    assert_eq!(fill.origin, EventOrigin::Snapshot);
    let BrokerEvent::Fill(f) = &fill.event else {
        unreachable!()
    };
    assert_eq!(
        (f.qty, f.side, f.client_order_id.as_deref()),
        (2, Side::Sell, Some("jt-q1"))
    );
    assert!(
        next_event(
            &mut events,
            Duration::from_secs(3),
            |e| matches!(e, BrokerEvent::Position(p) if p.net_qty == -2)
        )
        .await
        .is_some()
    );
    assert!(b.hub().unwrap().stats().polls >= 1);
    // The hub comes back: connected, and the fill is not delivered twice.
    sim.admin().clear_faults();
    assert!(
        next_event(&mut events, Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connection(ConnectionState::Connected)
        ))
        .await
        .is_some()
    );
    let after = collect(&mut events, Duration::from_millis(500)).await;
    assert!(
        after
            .iter()
            .all(|e| !matches!(e.event, BrokerEvent::Fill(_))),
        "{after:#?}"
    );
}

#[tokio::test]
async fn processes_sharing_a_session_store_adopt_one_token() {
    let sim = sim().await;
    let a = px_user(&sim, "pxz", &["PXZ1"])[0].clone();
    let store: Arc<dyn jt_broker::SessionStore> = Arc::new(jt_broker::MemorySessionStore::new());
    let with_store = || {
        let mut c = config(&sim, "pxz");
        c.session.store = Some(Arc::clone(&store));
        // Separate registries: two processes of one login.
        broker(c)
    };
    let first = with_store();
    assert_eq!(
        first.login().await.unwrap().outcome,
        SessionOutcome::LoggedIn
    );
    let second = with_store();
    assert_eq!(
        second.login().await.unwrap().outcome,
        SessionOutcome::Reused,
        "the stored live token is adopted, not a second login"
    );
    assert!(second.positions(&a).await.unwrap().is_empty());
    assert_eq!(
        sessions(&sim, "pxz").await,
        1,
        "one session at the broker for both processes"
    );
    // A renewal by one is adopted by the other.
    let renewed = first.renew().await.unwrap();
    assert_eq!(renewed.outcome, SessionOutcome::Renewed);
    assert!(second.positions(&a).await.is_ok());
}

/// The number of live ProjectX sessions of a user, from the admin API.
async fn sessions(sim: &Sim, name: &str) -> usize {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let users: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/sim/users", sim.base_url()))
        .send()
        .await
        .expect("the admin API answers")
        .json()
        .await
        .expect("users as JSON");
    users
        .as_array()
        .expect("a list")
        .iter()
        .find(|u| u["name"] == name)
        .and_then(|u| u["sessions"].as_array())
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn children_missing_at_the_broker_are_placed_by_the_adapter() {
    let (sim, b, a, c) = setup("pxc").await;
    // The account's "Auto OCO Brackets" is off: the server ignores the bracket fields.
    sim.admin()
        .set_projectx_auto_brackets("PXC1", false)
        .unwrap();
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-c1",
            Side::Sell,
            3,
            vec![leg(1, dec!(5)), leg(2, dec!(10))],
            stop(dec!(4)),
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
                2,
                dec!(20990),
                Some("jt-c1-tp2".into())
            ),
            (
                OrderType::Limit,
                Side::Buy,
                1,
                dec!(20995),
                Some("jt-c1-tp1".into())
            ),
            (
                OrderType::Stop,
                Side::Buy,
                3,
                dec!(21004),
                Some("jt-c1-sl".into())
            ),
        ],
        "never unprotected: the stop and the first target placed as standalone orders"
    );
}

#[tokio::test]
async fn account_pnl_is_the_days_realized_and_the_open_at_the_last_price() {
    let (sim, b, a, c) = setup("pxl").await;
    sim.admin().set_matching(&jt_sim::admin::MatchingJson {
        commission_per_contract: Some(dec!(0.5)),
        ..Default::default()
    });
    b.place_order(&a, &c, &market("jt-l1", Side::Buy, 3))
        .await
        .unwrap();
    price(&sim, &c.name, dec!(21010));
    b.place_order(&a, &c, &market("jt-l2", Side::Sell, 1))
        .await
        .unwrap();
    price(&sim, &c.name, dec!(21004));
    let pnl = b.account_pnl(&a).await.unwrap();
    // Realized: 10 points × 1 × $2 = 20, less 4 × 0.50 fees; open: 4 points × 2 × $2.
    assert_eq!(pnl.realized, dec!(18));
    assert_eq!(pnl.open, dec!(16));
    assert_eq!(pnl.cash, Some(dec!(50018)));
    assert_eq!(pnl.net_liq, Some(dec!(50034)));
    // A read that fails is an error, never zero.
    fault(&sim, FaultKind::Positions401, Some("pxl"), None, None);
    assert!(b.account_pnl(&a).await.is_err());
}

#[tokio::test]
async fn a_snapshot_reads_positions_and_open_orders_in_two_calls() {
    let (sim, b, a, c) = setup("pxs").await;
    b.place_bracket(
        &a,
        &c,
        &bracket(
            "jt-s1",
            Side::Sell,
            3,
            vec![leg(3, dec!(10))],
            stop(dec!(8)),
        ),
    )
    .await
    .unwrap();
    sim.admin().reset_request_counts();
    let snap = b.snapshot(&a).await.unwrap();
    let calls = sim.admin().request_counts();
    assert_eq!(calls.values().sum::<u64>(), 2, "{calls:#?}");
    assert_eq!(
        calls.get("projectx:position/searchopen"),
        Some(&1),
        "{calls:#?}"
    );
    assert_eq!(
        calls.get("projectx:order/searchopen"),
        Some(&1),
        "{calls:#?}"
    );
    assert_eq!(snap.account, a);
    assert_eq!(snap.position(&c.id).map(|p| p.net_qty), Some(-3));
    let mut working: Vec<_> = snap
        .working_on(&c.id)
        .map(|o| (o.order_type, o.side, o.qty))
        .collect();
    working.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        working,
        vec![
            (Some(OrderType::Limit), Side::Buy, Some(3)),
            (Some(OrderType::Stop), Side::Buy, Some(3)),
        ]
    );
    // P&L costs trades, bars and balances at ProjectX: not read with a snapshot.
    assert_eq!(snap.pnl, None);
}

// ------------------------------------------------------------------------------ market hub

const QUOTE_WAIT: Duration = Duration::from_secs(5);

/// The next quote of `contract` whose last trade is `last`, skipping anything else.
async fn quote_at(feed: &mut QuoteFeed, contract: &str, last: Decimal) -> Quote {
    tokio::time::timeout(QUOTE_WAIT, async {
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
    .unwrap_or_else(|_| panic!("no quote of {contract} at {last} within {QUOTE_WAIT:?}"))
}

/// Waits for a feed state, skipping quotes.
async fn feed_state(feed: &mut QuoteFeed, wanted: fn(&ConnectionState) -> bool) {
    tokio::time::timeout(QUOTE_WAIT, async {
        loop {
            match feed.recv().await {
                Some(QuoteEvent::State(s)) if wanted(&s) => return,
                Some(_) => {}
                None => panic!("the feed stopped"),
            }
        }
    })
    .await
    .expect("the state within the timeout");
}

fn keys(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn market_hub_quotes_of_watched_contracts_arrive_exactly_and_follow_the_watched_set() {
    let sim = sim().await;
    px_user(&sim, "pxq", &["PXQ1"]);
    let b = broker(config(&sim, "pxq"));
    assert!(b.capabilities().market_data);
    let mnq = b.resolve_contract("MNQ").await.unwrap();
    let es = b.resolve_contract("ES").await.unwrap();
    price(&sim, &mnq.name, dec!(21000));
    price(&sim, &es.name, dec!(6000));

    let mut feed = b.quote_feed().await.unwrap();
    feed.watch(keys(&[&mnq.name]));
    feed_state(&mut feed, |s| *s == ConnectionState::Connected).await;
    let first = quote_at(&mut feed, &mnq.name, dec!(21000)).await;
    assert!(first.bid.is_some() && first.ask.is_some(), "{first:?}");
    // Later quotes carry only what changed: each one is still whole.
    price(&sim, &mnq.name, dec!(21001.25));
    let moved = quote_at(&mut feed, &mnq.name, dec!(21001.25)).await;
    assert_eq!(moved.last.unwrap().to_string(), "21001.25");
    assert!(moved.bid.is_some() && moved.ask.is_some(), "{moved:?}");
    assert!(
        eventually(QUOTE_WAIT, || async {
            feed.subscribed() == keys(&[&mnq.name])
        })
        .await
    );

    // By id too (how the store keys a position whose name was not known), a second contract
    // and an unknown one on the live connection; then MNQ is no longer watched.
    feed.watch(keys(&[&mnq.name, mnq.id.as_str(), &es.name, "NOPEZ9"]));
    quote_at(&mut feed, &es.name, dec!(6000)).await;
    price(&sim, &mnq.name, dec!(21001.5));
    // One quote of the contract, reported under both keys watching it (in either order).
    let mut seen = BTreeSet::new();
    tokio::time::timeout(QUOTE_WAIT, async {
        while seen.len() < 2 {
            match feed.recv().await {
                Some(QuoteEvent::Quote(q)) if q.last == Some(dec!(21001.5)) => {
                    seen.insert(q.contract);
                }
                Some(_) => {}
                None => panic!("the feed stopped"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the quote under both keys; seen {seen:?}"));
    assert_eq!(seen, keys(&[&mnq.name, mnq.id.as_str()]));
    feed.watch(keys(&[&es.name]));
    assert!(
        eventually(QUOTE_WAIT, || async {
            feed.subscribed() == keys(&[&es.name])
        })
        .await,
        "{:?}",
        feed.subscribed()
    );
    price(&sim, &mnq.name, dec!(21002));
    price(&sim, &es.name, dec!(6001));
    let mut later = Vec::new();
    tokio::time::timeout(QUOTE_WAIT, async {
        while let Some(e) = feed.recv().await {
            let done = matches!(&e, QuoteEvent::Quote(q) if q.contract == es.name && q.last == Some(dec!(6001)));
            later.push(e);
            if done {
                break;
            }
        }
    })
    .await
    .expect("ES's move arrives");
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(400), feed.recv()).await {
        later.push(e);
    }
    assert!(
        !later.iter().any(
            |e| matches!(e, QuoteEvent::Quote(q) if q.contract == mnq.name || q.contract == mnq.id.as_str())
        ),
        "{later:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_dropped_market_hub_reconnects_and_subscribes_again() {
    let sim = sim().await;
    px_user(&sim, "pxm", &["PXM1"]);
    let b = broker(config(&sim, "pxm"));
    let mnq = b.resolve_contract("MNQ").await.unwrap().name;
    price(&sim, &mnq, dec!(21000));
    let mut feed = b.quote_feed().await.unwrap();
    feed.watch(keys(&[&mnq]));
    quote_at(&mut feed, &mnq, dec!(21000)).await;

    fault(&sim, FaultKind::DropSocket, Some("pxm"), None, None);
    feed_state(&mut feed, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    feed_state(&mut feed, |s| *s == ConnectionState::Connected).await;
    price(&sim, &mnq, dec!(21003.5));
    quote_at(&mut feed, &mnq, dec!(21003.5)).await;
    assert!(eventually(QUOTE_WAIT, || async { feed.subscribed() == keys(&[&mnq]) }).await);
    sim.shutdown().await;
}
