//! The choreography against the exchange simulator (`jt-sim`, in process on loopback) through
//! the real Tradovate adapter: every operation, and resuming after a crash — the main order
//! found by its client order id means the steps before it are never repeated, and the steps
//! after it place nothing twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use jt_broker::{AccountId, Broker, Contract, OrderReport, OrderType};
use jt_domain::bracket::{EntryOrder, StopOrder};
use jt_domain::instrument::by_root;
use jt_domain::order::{
    BracketOrder, OrderKind, OrderRequest, StopKind, StopSpec, TakeProfitLeg, TimeInForce,
};
use jt_domain::settings::{StopType, TpTarget};
use jt_domain::{Direction, Price, Settings, Side};
use jt_net::gate::{ConnectGate, GateConfig};
use jt_net::registry::Plumbing;
use jt_sim::admin::{NewUser, OrderRecord};
use jt_sim::{Sim, SimConfig};
use jt_trading::{Choreography, Desk, Repaired, Step, StepError, Timing, run};
use jt_tradovate::config::{HttpConfig, RateLimitConfig};
use jt_tradovate::{
    Brand, Credentials, Environment, LoginRegistry, TradovateBroker, TradovateConfig,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;

/// A simulator with one login and one account, MNQ at 21000, and the adapter on it.
struct Venue {
    sim: Sim,
    broker: Arc<TradovateBroker>,
    account: AccountId,
    name: String,
    contract: Contract,
    timing: Timing,
}

async fn venue(name: &str) -> Venue {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::default())
        .await
        .expect("the simulator (jt-sim) must start on loopback for these tests");
    let account_name = format!("{}1", name.to_uppercase());
    let user = sim
        .admin()
        .create_user(&NewUser {
            name: name.into(),
            password: format!("{name}-pw"),
            accounts: vec![account_name.clone()],
            ..NewUser::default()
        })
        .unwrap();
    sim.admin().set_price("MNQ", dec!(21000)).unwrap();
    let mut config = TradovateConfig::new(
        Brand::Tradovate,
        Environment::Demo,
        Credentials {
            name: name.into(),
            password: format!("{name}-pw"),
            app_id: Some("jt-tests".into()),
            app_version: Some("1".into()),
            ..Credentials::default()
        },
    )
    .with_base_url(&sim.base_url())
    .unwrap();
    config.http = HttpConfig {
        auth_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(2),
        read_retry_backoff: Duration::from_millis(20),
        lookup_interval: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    config.limits = RateLimitConfig {
        too_many_requests_backoff: Duration::from_millis(400),
        ..RateLimitConfig::default()
    };
    let registry = LoginRegistry::new(Plumbing::process_wide().with_gate(ConnectGate::new(
        &GateConfig {
            max_in_flight: 2,
            spacing: Duration::from_millis(5),
        },
    )));
    let broker = Arc::new(TradovateBroker::with(config, &registry).unwrap());
    let contract = broker.resolve_contract("MNQ").await.unwrap();
    Venue {
        sim,
        broker,
        account: AccountId::from(user.accounts[0].id),
        name: account_name,
        contract,
        timing: Timing {
            fill_price_waits: vec![Duration::from_millis(50), Duration::from_millis(100)],
            flat_wait: Duration::from_secs(3),
            flat_poll: Duration::from_millis(20),
        },
    }
}

impl Venue {
    fn desk(&self) -> Desk<'_> {
        Desk::new(self.broker.as_ref(), &self.account, &self.timing)
    }

    fn choreography(&self, steps: Vec<Step>, main: Option<&str>) -> Choreography {
        Choreography {
            contract: Some(self.contract.clone()),
            steps,
            main: main.map(str::to_string),
        }
    }

    /// Every order the simulator received for the account.
    fn orders(&self) -> Vec<OrderRecord> {
        self.sim.admin().orders(Some(&self.name)).unwrap()
    }

    async fn net(&self) -> i64 {
        self.desk().held(&self.contract).await.unwrap().0
    }

    async fn working(&self) -> Vec<OrderReport> {
        self.broker
            .working_orders(&self.account)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.status.is_open())
            .collect()
    }
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

/// A long bracket: legs of 1 at +5 and 2 at +10 points, a fixed stop 8 points away.
fn bracket(cid: &str, side: Side, qty: u32) -> EntryOrder {
    EntryOrder::Bracket(BracketOrder {
        client_order_id: cid.into(),
        side,
        qty,
        entry: OrderKind::Market,
        take_profits: if qty >= 3 {
            vec![
                TakeProfitLeg {
                    qty: 1,
                    distance: dec!(5),
                },
                TakeProfitLeg {
                    qty: qty - 1,
                    distance: dec!(10),
                },
            ]
        } else {
            vec![TakeProfitLeg {
                qty,
                distance: dec!(10),
            }]
        },
        stop: Some(StopSpec {
            distance: dec!(8),
            kind: StopKind::Fixed,
        }),
        break_even: None,
    })
}

/// The simulator's request counts since the last reset.
fn calls(v: &Venue) -> std::collections::BTreeMap<String, u64> {
    v.sim.admin().request_counts()
}

/// `(endpoint, count)` pairs as [`calls`] reports them.
fn tradovate(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(e, n)| (format!("tradovate:{e}"), *n))
        .collect()
}

/// A resting buy far under the market: it works until cancelled.
fn resting_buy(cid: &str) -> EntryOrder {
    EntryOrder::Market(OrderRequest {
        client_order_id: cid.into(),
        side: Side::Buy,
        qty: 1,
        kind: OrderKind::Limit {
            price: mnq(dec!(20900)),
        },
    })
}

/// The position is flat and a resting entry works on the contract, though the decision read a
/// long a moment ago: a long of 1 closed by hand, then the entry placed.
async fn gone_flat_with_a_resting_entry(v: &Venue, cid: &str) {
    v.desk()
        .place(&v.contract, &market(&format!("{cid}-in"), Side::Buy, 1))
        .await
        .unwrap();
    v.desk()
        .place(&v.contract, &market(&format!("{cid}-out"), Side::Sell, 1))
        .await
        .unwrap();
    v.desk()
        .enter(&v.contract, &resting_buy(cid), Some(TimeInForce::Gtc))
        .await
        .unwrap();
    assert_eq!(v.net().await, 0);
    assert_eq!(v.working().await.len(), 1);
}

fn refuse_liquidations(v: &Venue) {
    let fault: jt_sim::faults::FaultSpec = serde_json::from_value(serde_json::json!({
        "kind": "error", "status": 400, "endpoint": "order/liquidateposition", "count": 1
    }))
    .unwrap();
    v.sim.admin().add_fault(fault).unwrap();
}

fn never() -> CancellationToken {
    CancellationToken::new()
}

fn kinds(working: &[OrderReport]) -> Vec<(Option<OrderType>, Side, Option<u32>)> {
    let mut k: Vec<_> = working
        .iter()
        .map(|o| {
            (
                o.order_type,
                o.side,
                o.qty.map(|q| q - o.filled_qty.unwrap_or(0)),
            )
        })
        .collect();
    k.sort_by_key(|x| format!("{x:?}"));
    k
}

#[tokio::test]
async fn an_entry_with_its_bracket_is_placed_once_and_resumed_without_a_second_order() {
    let v = venue("entry").await;
    let plan = v.choreography(
        vec![Step::Enter {
            entry: bracket("jt-entry-1", Side::Buy, 3),
            time_in_force: None,
        }],
        Some("jt-entry-1"),
    );
    let done = run(&v.desk(), &plan, false, &never()).await.unwrap();
    assert_eq!(done.done, vec!["entry placed"]);
    assert!(done.main_at.is_some() && !done.main_found);
    assert_eq!(v.net().await, 3);
    assert_eq!(
        v.working().await.len(),
        4,
        "two targets, each with its one-cancels-other stop"
    );
    let sent = v.orders().len();
    // A redelivered intent resumes: the entry is found by its client order id, nothing is sent.
    let again = run(&v.desk(), &plan, true, &never()).await.unwrap();
    assert!(again.main_found);
    assert!(again.done.is_empty(), "{:?}", again.done);
    assert_eq!(again.orders.len(), 1, "the entry found");
    assert_eq!(v.orders().len(), sent);
    assert_eq!(v.net().await, 3);
}

#[tokio::test]
async fn a_flip_closes_waits_for_flat_and_enters_and_a_resume_never_closes_again() {
    let v = venue("flip").await;
    v.desk()
        .enter(&v.contract, &bracket("jt-first", Side::Buy, 2), None)
        .await
        .unwrap();
    let flip = v.choreography(
        vec![
            Step::CancelWorkingOrders,
            Step::Close {
                wait_flat: true,
                seen_open: true,
            },
            Step::Enter {
                entry: bracket("jt-flip", Side::Sell, 1),
                time_in_force: None,
            },
        ],
        Some("jt-flip"),
    );
    let done = run(&v.desk(), &flip, false, &never()).await.unwrap();
    assert_eq!(
        done.done,
        vec![
            "working orders cancelled",
            "position closed",
            "entry placed"
        ]
    );
    assert_eq!(v.net().await, -1);
    // The old long's exits are gone; the short's bracket works.
    let working = v.working().await;
    assert!(
        working.iter().all(|o| o.side == Side::Buy),
        "only the short's exits: {working:#?}"
    );
    let sent = v.orders().len();
    // Resumed after the new entry exists: the close is never sent again (it would close the
    // new short).
    let again = run(&v.desk(), &flip, true, &never()).await.unwrap();
    assert!(again.main_found && again.done.is_empty());
    assert_eq!(v.orders().len(), sent);
    assert_eq!(v.net().await, -1);
}

#[tokio::test]
async fn a_flip_interrupted_after_its_close_resumes_with_the_entry_only() {
    let v = venue("half").await;
    v.desk()
        .enter(&v.contract, &bracket("jt-long", Side::Buy, 1), None)
        .await
        .unwrap();
    // The crash came after the close: cancelled and closed, no entry yet.
    v.desk().cancel_working(&v.contract).await.unwrap();
    v.desk().close(&v.contract, true, true).await.unwrap();
    assert_eq!(v.net().await, 0);
    let before = v.orders().len();
    let flip = v.choreography(
        vec![
            Step::CancelWorkingOrders,
            // The plan's reading (open) is stale on resume: the close reads again.
            Step::Close {
                wait_flat: true,
                seen_open: true,
            },
            Step::Enter {
                entry: bracket("jt-short", Side::Sell, 1),
                time_in_force: None,
            },
        ],
        Some("jt-short"),
    );
    v.sim.admin().reset_request_counts();
    let done = run(&v.desk(), &flip, true, &never()).await.unwrap();
    assert!(!done.main_found, "the entry was never sent");
    assert_eq!(
        calls(&v).get("tradovate:order/liquidateposition"),
        None,
        "a resumed close reads the position and finds nothing to liquidate"
    );
    assert_eq!(v.net().await, -1, "one short, not a second close");
    // Closing an account already flat sends nothing: the short's entry is the only new sell.
    let sells = v.orders()[before..]
        .iter()
        .filter(|o| o.action == "Sell")
        .count();
    assert_eq!(sells, 1);
}

#[tokio::test]
async fn a_dca_add_replaces_the_protection_for_the_whole_position_once() {
    let v = venue("dca").await;
    v.desk()
        .enter(&v.contract, &bracket("jt-dca-1", Side::Buy, 1), None)
        .await
        .unwrap();
    // Above the bracket's stop (20992): the add fills at 20995.
    v.sim.admin().set_price("MNQ", dec!(20995)).unwrap();
    let settings = Settings {
        tp_targets: vec![TpTarget {
            value: dec!(40),
            trim: dec!(1),
        }],
        sl_enabled: true,
        sl_amount: dec!(32),
        ..Settings::default()
    };
    let add = v.choreography(
        vec![
            Step::Add {
                order: market("jt-dca-2", Side::Buy, 1),
            },
            Step::ReplaceProtection {
                direction: Direction::Long,
                settings: settings.clone(),
                client_order_id: "jt-dca-2".into(),
            },
        ],
        Some("jt-dca-2"),
    );
    v.sim.admin().reset_request_counts();
    let done = run(&v.desk(), &add, false, &never()).await.unwrap();
    assert_eq!(done.done, vec!["add placed", "protection replaced"]);
    // A first attempt cannot have placed replacements: no look-up by client order id
    // (`command/list`), only the add, the average, the exits listed and cancelled, two places.
    let calls: Vec<(String, u64)> = v.sim.admin().request_counts().into_iter().collect();
    assert_eq!(
        calls,
        [
            ("order/cancelorder", 2),
            ("order/deps", 1),
            ("order/placeorder", 3),
            ("orderversion/ldeps", 1),
            ("position/deps", 1),
        ]
        .map(|(e, n)| (format!("tradovate:{e}"), n))
        .to_vec()
    );
    // The average of 21000 and 20995; one target and one stop for the whole position.
    assert_eq!(done.fill, Some(dec!(20997.5)));
    assert_eq!(v.net().await, 2);
    let working = v.working().await;
    assert_eq!(
        kinds(&working),
        vec![
            (Some(OrderType::Limit), Side::Sell, Some(2)),
            (Some(OrderType::Stop), Side::Sell, Some(2)),
        ],
        "{working:#?}"
    );
    let tp = working
        .iter()
        .find(|o| o.order_type == Some(OrderType::Limit))
        .unwrap();
    // 40 ticks of 0.25 above the average, on tick.
    assert_eq!(tp.price, Some(dec!(21007.5)));
    let sent = v.orders().len();
    // Resumed: the add is found, the replacement runs again and finds its orders.
    let again = run(&v.desk(), &add, true, &never()).await.unwrap();
    assert!(again.main_found);
    assert_eq!(again.done, vec!["protection replaced"]);
    assert_eq!(v.orders().len(), sent, "nothing placed twice");
    assert_eq!(v.working().await.len(), 2);
}

#[tokio::test]
async fn a_position_whose_average_never_comes_is_reported_unprotected_not_guessed() {
    let v = venue("unprot").await;
    // No long at the broker: the average of a long never comes.
    let err = v
        .desk()
        .replace_protection(
            &v.contract,
            Direction::Long,
            &Settings {
                sl_enabled: true,
                sl_amount: dec!(20),
                ..Settings::default()
            },
            "jt-unprot",
            false,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StepError::Unprotected(m) if m.contains("position unprotected")),
        "{err:?}"
    );
    assert!(v.orders().is_empty(), "nothing cancelled or placed");
}

#[tokio::test]
async fn a_trailing_stop_the_broker_cannot_trail_after_a_trigger_is_placed_fixed_and_said() {
    let v = venue("trail").await;
    v.desk()
        .place(&v.contract, &market("jt-trail-0", Side::Buy, 1))
        .await
        .unwrap();
    let stop = StopOrder {
        client_order_id: "jt-trail-sl".into(),
        side: Side::Sell,
        qty: 1,
        stop: mnq(dec!(20990)),
        distance: dec!(10),
        kind: StopKind::Trailing {
            trigger: dec!(4),
            step: dec!(0),
        },
    };
    let (id, note) = v.desk().place_stop_once(&v.contract, &stop).await.unwrap();
    assert!(note.unwrap().contains("placed fixed"));
    let placed = v.working().await;
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].id.0, id);
    assert_eq!(placed[0].order_type, Some(OrderType::Stop));
    assert_eq!(placed[0].stop_price, Some(dec!(20990)));
    // Once: a second call finds it.
    let (again, _) = v.desk().place_stop_once(&v.contract, &stop).await.unwrap();
    assert_eq!(again, id);
    assert_eq!(v.working().await.len(), 1);
    // Through a DCA replacement with a trailing stop that has a trigger, the same.
    let settings = Settings {
        sl_enabled: true,
        sl_amount: dec!(40),
        sl_type: StopType::Trailing,
        trail_trigger: dec!(8),
        ..Settings::default()
    };
    let p = v
        .desk()
        .replace_protection(&v.contract, Direction::Long, &settings, "jt-trail-2", false)
        .await
        .unwrap();
    assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
}

#[tokio::test]
async fn a_partial_exit_resizes_the_protection_then_reduces_and_a_refusal_restores_the_stop() {
    let v = venue("part").await;
    v.desk()
        .enter(&v.contract, &bracket("jt-part", Side::Buy, 3), None)
        .await
        .unwrap();
    let exit = |cid: &str, qty: u32| {
        v.choreography(
            vec![
                Step::ResizeProtection {
                    direction: Direction::Long,
                    position_qty: 1,
                },
                Step::Reduce {
                    direction: Direction::Long,
                    order: market(cid, Side::Sell, qty),
                },
            ],
            Some(cid),
        )
    };
    // A reduction the broker refuses (an order it cannot take) after the protection was
    // resized for it: the far leg's target and stop are gone, and the stop left covers the
    // three contracts still held again.
    let failed = run(&v.desk(), &exit("jt-part-0", 0), false, &never())
        .await
        .unwrap_err();
    assert_eq!(failed.done, vec!["protection resized"]);
    match &failed.error {
        StepError::ReduceRefused {
            restored,
            under_protected,
            ..
        } => {
            assert!(!under_protected, "{restored}");
            assert!(
                restored.contains("covers the 3 contracts still held"),
                "{restored}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.net().await, 3);
    assert_eq!(
        kinds(&v.working().await),
        vec![
            (Some(OrderType::Limit), Side::Sell, Some(1)),
            (Some(OrderType::Stop), Side::Sell, Some(3)),
        ]
    );

    let done = run(&v.desk(), &exit("jt-part-2", 2), false, &never())
        .await
        .unwrap();
    assert_eq!(done.done, vec!["protection resized", "position reduced"]);
    assert_eq!(v.net().await, 1);
    let working = v.working().await;
    assert_eq!(
        kinds(&working),
        vec![
            (Some(OrderType::Limit), Side::Sell, Some(1)),
            (Some(OrderType::Stop), Side::Sell, Some(1)),
        ],
        "the nearest target and one stop for what remains: {working:#?}"
    );
    // Resumed: the reduction is found; the protection is not resized again.
    let sent = v.orders().len();
    let again = run(&v.desk(), &exit("jt-part-2", 2), true, &never())
        .await
        .unwrap();
    assert!(again.main_found && again.done.is_empty());
    assert_eq!(v.orders().len(), sent);
    assert_eq!(v.net().await, 1);
}

#[tokio::test]
async fn a_missing_take_profit_and_stop_are_repaired_for_the_position_held_once() {
    let v = venue("repair").await;
    v.desk()
        .place(&v.contract, &market("jt-naked", Side::Buy, 2))
        .await
        .unwrap();
    let settings = Settings {
        tp_targets: vec![TpTarget {
            value: dec!(20),
            trim: dec!(1),
        }],
        sl_enabled: true,
        sl_amount: dec!(16),
        ..Settings::default()
    };
    let repair = v.choreography(
        vec![Step::RepairProtection {
            direction: Direction::Long,
            settings: settings.clone(),
            client_order_id: "jt-repair".into(),
            take_profit: true,
            stop: true,
        }],
        None,
    );
    let done = run(&v.desk(), &repair, false, &never()).await.unwrap();
    assert_eq!(done.orders.len(), 2);
    let working = v.working().await;
    assert_eq!(
        kinds(&working),
        vec![
            (Some(OrderType::Limit), Side::Sell, Some(2)),
            (Some(OrderType::Stop), Side::Sell, Some(2)),
        ]
    );
    let tp = working
        .iter()
        .find(|o| o.order_type == Some(OrderType::Limit))
        .unwrap();
    let sl = working
        .iter()
        .find(|o| o.order_type == Some(OrderType::Stop))
        .unwrap();
    assert_eq!(
        (tp.price, sl.stop_price),
        (Some(dec!(21005)), Some(dec!(20996)))
    );
    // Redelivered (or resumed): found by client order id, nothing placed twice.
    let sent = v.orders().len();
    run(&v.desk(), &repair, true, &never()).await.unwrap();
    run(&v.desk(), &repair, false, &never()).await.unwrap();
    assert_eq!(v.orders().len(), sent);
    // Another repair of the same position (another cause) finds a stop already working and
    // does not stack a second one.
    let other = v
        .desk()
        .repair_protection(
            &v.contract,
            Direction::Long,
            &settings,
            "jt-repair-b",
            false,
            true,
        )
        .await
        .unwrap();
    assert!(
        matches!(&other, Repaired::Placed { notes, orders, .. }
            if orders.is_empty() && notes.iter().any(|n| n.contains("already working"))),
        "{other:?}"
    );
    // A short is not repaired as a long; a flat position needs nothing.
    let wrong = v
        .desk()
        .repair_protection(
            &v.contract,
            Direction::Short,
            &settings,
            "jt-r-c",
            true,
            true,
        )
        .await
        .unwrap();
    assert!(matches!(wrong, Repaired::Nothing { .. }));
    assert_eq!(v.orders().len(), sent);
}

#[tokio::test]
async fn flatten_cancel_all_and_the_previous_resting_entry() {
    let v = venue("flat").await;
    v.desk()
        .enter(&v.contract, &bracket("jt-f1", Side::Buy, 1), None)
        .await
        .unwrap();
    let resting = EntryOrder::Market(OrderRequest {
        client_order_id: "jt-rest".into(),
        side: Side::Buy,
        qty: 1,
        kind: OrderKind::Limit {
            price: mnq(dec!(20900)),
        },
    });
    v.desk()
        .enter(&v.contract, &resting, Some(TimeInForce::Gtc))
        .await
        .unwrap();
    assert_eq!(v.working().await.len(), 3);
    // The resting entry, by its client order id: cancelled once, then nothing to do.
    assert!(v.desk().cancel_resting("jt-rest").await.unwrap());
    assert!(!v.desk().cancel_resting("jt-rest").await.unwrap());
    assert!(!v.desk().cancel_resting("jt-never-sent").await.unwrap());
    assert_eq!(v.working().await.len(), 2);
    // Cancel every working order: the position stays.
    let all = Choreography {
        contract: None,
        steps: vec![Step::CancelAllOrders],
        main: None,
    };
    run(&v.desk(), &all, false, &never()).await.unwrap();
    assert!(v.working().await.is_empty());
    assert_eq!(v.net().await, 1);
    // Flatten: flat, and safe to repeat.
    let flatten = Choreography {
        contract: None,
        steps: vec![Step::FlattenAccount],
        main: None,
    };
    run(&v.desk(), &flatten, false, &never()).await.unwrap();
    run(&v.desk(), &flatten, true, &never()).await.unwrap();
    assert_eq!(v.net().await, 0);
    // A contract step without a contract is refused, not guessed.
    let bad = Choreography {
        contract: None,
        steps: vec![Step::CancelWorkingOrders],
        main: None,
    };
    let failed = run(&v.desk(), &bad, false, &never()).await.unwrap_err();
    assert!(matches!(failed.error, StepError::Invalid(_)));
}

#[tokio::test]
async fn a_lost_lock_stops_before_the_next_step_and_says_what_was_done() {
    let v = venue("stop").await;
    let stop = CancellationToken::new();
    stop.cancel();
    let plan = v.choreography(
        vec![Step::Enter {
            entry: bracket("jt-stop", Side::Buy, 1),
            time_in_force: None,
        }],
        Some("jt-stop"),
    );
    let failed = run(&v.desk(), &plan, false, &stop).await.unwrap_err();
    assert_eq!(failed.error, StepError::Interrupted);
    assert!(failed.done.is_empty());
    assert!(v.orders().is_empty());
    // A copied add: a plain order, then the stop grown to the position the broker holds.
    v.desk()
        .enter(&v.contract, &bracket("jt-cov", Side::Buy, 1), None)
        .await
        .unwrap();
    let add = v.choreography(
        vec![
            Step::Add {
                order: market("jt-cov-2", Side::Buy, 2),
            },
            Step::CoverPosition {
                direction: Direction::Long,
            },
        ],
        Some("jt-cov-2"),
    );
    run(&v.desk(), &add, false, &never()).await.unwrap();
    assert_eq!(v.net().await, 3);
    let stop = v
        .working()
        .await
        .into_iter()
        .find(|o| o.order_type == Some(OrderType::Stop))
        .unwrap();
    assert_eq!(stop.qty, Some(3), "the stop covers the whole position");
}

/// A close of a position the decision has just read open is one broker call (issue 21):
/// `liquidateposition`, which takes no quantity and cancels the contract's working orders
/// itself — no second read of the position. When the position went flat since the reading,
/// the close still ends as a close of a flat position: nothing sent, what works on the contract
/// cancelled.
#[tokio::test]
async fn a_close_read_open_is_one_liquidation_and_one_gone_flat_since_still_clears_the_contract() {
    let v = venue("seen").await;
    v.desk()
        .enter(&v.contract, &bracket("jt-seen-1", Side::Buy, 2), None)
        .await
        .unwrap();
    let close = v.choreography(
        vec![
            Step::CancelWorkingOrders,
            Step::Close {
                wait_flat: false,
                seen_open: true,
            },
        ],
        None,
    );
    v.sim.admin().reset_request_counts();
    let done = run(&v.desk(), &close, false, &never()).await.unwrap();
    assert_eq!(calls(&v), tradovate(&[("order/liquidateposition", 1)]));
    assert_eq!(
        done.done,
        vec!["working orders cancelled", "position closed"]
    );
    assert_eq!(done.orders.len(), 1, "the liquidation's order: {done:?}");
    assert_eq!(v.net().await, 0);
    assert!(v.working().await.is_empty(), "{:#?}", v.working().await);

    // The reading is stale: flat since, a resting entry working. The liquidation finds
    // nothing to close; the close then reads the position and the working orders itself.
    gone_flat_with_a_resting_entry(&v, "jt-seen-rest").await;
    let sent = v.orders().len();
    v.sim.admin().reset_request_counts();
    let done = run(&v.desk(), &close, false, &never()).await.unwrap();
    assert_eq!(
        calls(&v),
        tradovate(&[
            ("order/deps", 1),
            ("order/liquidateposition", 1),
            ("position/deps", 1),
        ])
    );
    assert!(done.orders.is_empty(), "nothing to close: {done:?}");
    assert_eq!(v.orders().len(), sent, "no order sent");
    assert_eq!(v.net().await, 0);
    assert!(v.working().await.is_empty(), "{:#?}", v.working().await);
}

/// A liquidation refused after the decision read the position open: when the position is flat
/// now, the refusal may be the venue's "nothing to liquidate", and the close ends as a close of
/// a flat position (the working orders cancelled one by one); when it is still open, the
/// refusal stands — the liquidation is sent once, never again on its own.
#[tokio::test]
async fn a_refused_liquidation_clears_a_flat_contract_and_stands_for_an_open_position() {
    let v = venue("refused").await;
    let close = v.choreography(
        vec![
            Step::CancelWorkingOrders,
            Step::Close {
                wait_flat: false,
                seen_open: true,
            },
        ],
        None,
    );
    gone_flat_with_a_resting_entry(&v, "jt-refused-rest").await;
    let sent = v.orders().len();
    refuse_liquidations(&v);
    let done = run(&v.desk(), &close, false, &never()).await.unwrap();
    assert!(done.orders.is_empty(), "{done:?}");
    assert_eq!(v.orders().len(), sent, "no order sent");
    assert!(
        v.working().await.is_empty(),
        "the refused liquidation cancelled nothing; the flat close did: {:#?}",
        v.working().await
    );

    v.desk()
        .place(&v.contract, &market("jt-refused-in", Side::Buy, 1))
        .await
        .unwrap();
    refuse_liquidations(&v);
    v.sim.admin().reset_request_counts();
    let failed = run(&v.desk(), &close, false, &never()).await.unwrap_err();
    assert_eq!(
        calls(&v),
        tradovate(&[("order/liquidateposition", 1), ("position/deps", 1)])
    );
    assert!(
        matches!(
            failed.error,
            StepError::Broker(jt_broker::BrokerError::Rejected { .. })
        ),
        "{failed:?}"
    );
    assert!(failed.done.is_empty(), "{:?}", failed.done);
    assert_eq!(v.net().await, 1, "still open: the refusal is reported");
}
