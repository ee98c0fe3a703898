//! Realistic alert bodies from `test_data/` (TradingView templates and the peers' formats that
//! DOMAIN.md §2 accepts), parsed end to end.

use std::path::PathBuf;

use jt_alerts::{
    AlertContext, AlertError, BreakEvenOverride, EntryKind, EntryOrderSpec, ExitLevel,
    MarketPosition, PositionChange, RiskSizing, Signal, TrailOverride, parse_alert,
};
use jt_domain::order::TimeInForce;
use jt_domain::settings::{PriceUnits, StopType};
use jt_domain::signal::SignalAction;
use jt_domain::types::Direction;
use rstest::rstest;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse(name: &str) -> Result<Signal, AlertError> {
    parse_alert(&fixture(name), &AlertContext::default())
}

struct Want {
    action: SignalAction,
    root: Option<&'static str>,
    quantity: Option<Decimal>,
    price: Option<Decimal>,
    time: Option<&'static str>,
    position: Option<MarketPosition>,
}

#[rstest]
#[case::tradingview_strategy_long_entry("tradingview_strategy_long_entry.json", Want {
    action: SignalAction::Long, root: Some("MNQ"), quantity: Some(dec!(2)),
    price: Some(dec!(21433.25)), time: Some("2026-01-05T14:30:00Z"),
    position: Some(MarketPosition::Long),
})]
#[case::tradingview_strategy_close_long("tradingview_strategy_close_long.json", Want {
    action: SignalAction::CloseLong, root: Some("MNQ"), quantity: Some(dec!(2)),
    price: Some(dec!(21441.75)), time: Some("2026-01-05T14:47:00Z"),
    position: Some(MarketPosition::Flat),
})]
#[case::tradingview_dca_add_without_time("tradingview_dca_add_without_time.json", Want {
    action: SignalAction::Long, root: Some("MGC"), quantity: Some(dec!(1)), price: None,
    time: None, position: Some(MarketPosition::Long),
})]
#[case::traderspost_entry_with_exits("traderspost_entry_with_exits.json", Want {
    action: SignalAction::Short, root: Some("NQ"), quantity: Some(dec!(3)),
    price: Some(dec!(21433.5)), time: Some("2026-01-05T14:30:00Z"),
    position: Some(MarketPosition::Short),
})]
#[case::traderspost_exit("traderspost_exit.json", Want {
    action: SignalAction::Close, root: Some("ES"), quantity: None,
    price: Some(dec!(5901.25)), time: None, position: Some(MarketPosition::Flat),
})]
#[case::three_commas_strategy("three_commas_strategy.json", Want {
    action: SignalAction::CloseLong, root: Some("GC"), quantity: Some(dec!(2)),
    price: Some(dec!(2650.4)), time: Some("2026-01-05T14:30:00Z"),
    position: Some(MarketPosition::Flat),
})]
#[case::pickmytrade_strategy("pickmytrade_strategy.json", Want {
    action: SignalAction::Long, root: Some("MNQ"), quantity: Some(dec!(1)),
    price: Some(dec!(21433.25)), time: Some("2026-01-05T14:30:00Z"), position: None,
})]
#[case::pickmytrade_close("pickmytrade_close.json", Want {
    action: SignalAction::Close, root: Some("CL"), quantity: Some(dec!(0)),
    price: Some(dec!(71.05)), time: Some("2026-01-05T14:30:00Z"), position: None,
})]
#[case::replaced_platform_entry("replaced_platform_entry.json", Want {
    action: SignalAction::Long, root: Some("ES"), quantity: None,
    price: Some(dec!(5012.25)), time: None, position: None,
})]
#[case::replaced_platform_partial_exit("replaced_platform_partial_exit.json", Want {
    action: SignalAction::ReduceLong, root: Some("MNQ"), quantity: None, price: None,
    time: Some("2026-01-05T15:02:00Z"), position: None,
})]
#[case::replaced_platform_risk("replaced_platform_risk.json", Want {
    action: SignalAction::Long, root: Some("MNQ"), quantity: Some(dec!(2)),
    price: Some(dec!(21000.50)), time: None, position: None,
})]
#[case::traderspost_limit_entry("traderspost_limit_entry.json", Want {
    action: SignalAction::Long, root: Some("MNQ"), quantity: Some(dec!(2)), price: None,
    time: None, position: None,
})]
#[case::pickmytrade_risk_sized("pickmytrade_risk_sized.json", Want {
    action: SignalAction::Short, root: Some("MNQ"), quantity: Some(dec!(0)),
    price: Some(dec!(21433.25)), time: Some("2026-01-05T14:30:00Z"), position: None,
})]
#[case::tradingview_strategy_partial_exit("tradingview_strategy_partial_exit.json", Want {
    action: SignalAction::ReduceLong, root: Some("MNQ"), quantity: Some(dec!(1)),
    price: Some(dec!(21441.75)), time: Some("2026-01-05T14:52:00Z"),
    position: Some(MarketPosition::Long),
})]
#[case::control_flatten("control_flatten.json", Want {
    action: SignalAction::Flatten, root: None, quantity: None, price: None, time: None,
    position: None,
})]
#[case::control_kill("control_kill.json", Want {
    action: SignalAction::Kill, root: None, quantity: None, price: None, time: None,
    position: None,
})]
#[case::control_resume("control_resume.json", Want {
    action: SignalAction::Resume, root: None, quantity: None, price: None, time: None,
    position: None,
})]
fn realistic_bodies_parse_to_the_expected_signal(#[case] name: &str, #[case] want: Want) {
    let signal = parse(name).unwrap_or_else(|e| panic!("{name} refused: {e}"));
    assert_eq!(signal.action, want.action, "{name}");
    assert_eq!(signal.instrument.map(|i| i.root), want.root, "{name}");
    assert_eq!(signal.quantity, want.quantity, "{name}");
    assert_eq!(signal.price, want.price, "{name}");
    assert_eq!(signal.time, want.time.map(|t| t.parse().unwrap()), "{name}");
    assert_eq!(signal.position, want.position, "{name}");
}

#[test]
fn traderspost_exits_become_per_alert_overrides() {
    let signal = parse("traderspost_entry_with_exits.json").unwrap();
    assert_eq!(
        signal.take_profit,
        Some(ExitLevel::Distance {
            value: dec!(25),
            units: Some(PriceUnits::Points)
        })
    );
    let stop = signal.stop_loss.unwrap();
    assert_eq!(
        stop.level,
        ExitLevel::Price {
            price: dec!(21450.25)
        }
    );
    assert_eq!(stop.stop_type, Some(StopType::Fixed));
}

#[test]
fn three_commas_max_lag_and_prev_position_are_read() {
    let signal = parse("three_commas_strategy.json").unwrap();
    assert_eq!(signal.max_lag_secs, Some(300));
    assert_eq!(signal.prev_position, Some(MarketPosition::Long));
    assert_eq!(signal.ticker.as_deref(), Some("GC1!"));
}

#[test]
fn pickmytrade_zero_tp_and_sl_leave_the_trader_settings_in_force() {
    let signal = parse("pickmytrade_strategy.json").unwrap();
    assert_eq!(signal.take_profit, None);
    assert_eq!(signal.stop_loss, None);
}

#[test]
fn an_indicator_alert_with_strategy_placeholders_is_refused_with_the_reason() {
    let e = parse("tradingview_indicator_not_on_strategy.json").unwrap_err();
    assert_eq!(e.http_status(), 422);
    // The unquoted `{{strategy.order.contracts}}` makes the body invalid JSON; the answer
    // still names the real cause, not "invalid JSON".
    assert!(matches!(e, AlertError::Placeholder { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("the alert is not on a strategy, or the placeholder is misspelled"),
        "{e}"
    );
}

#[test]
fn position_sizes_make_a_partial_exit_with_the_fraction_sold() {
    // 2 → 1: half of the long.
    let signal = parse("replaced_platform_partial_exit.json").unwrap();
    assert_eq!(signal.exit_fraction, Some(dec!(0.5)));
    assert_eq!(
        (signal.prev_position_size, signal.position_size),
        (Some(dec!(2)), Some(dec!(1)))
    );
    assert_eq!(
        signal.change,
        Some(PositionChange::PartialExit {
            direction: Direction::Long,
            fraction: dec!(0.5)
        })
    );
    // TradingView's template: sold 1, 2 left → a third of 3.
    let signal = parse("tradingview_strategy_partial_exit.json").unwrap();
    assert_eq!(signal.prev_position_size, Some(dec!(3)));
    assert_eq!(signal.exit_fraction, Some(dec!(1) / dec!(3)));
    assert_eq!(
        signal.describe_intent(),
        "partial exit of 33.33% of the long"
    );
}

#[test]
fn the_replaced_platforms_risk_fields_are_read_not_dropped() {
    let signal = parse("replaced_platform_risk.json").unwrap();
    assert_eq!(
        signal.take_profit,
        Some(ExitLevel::Dollars { amount: dec!(60) })
    );
    let stop = signal.stop_loss.unwrap();
    assert_eq!(stop.level, ExitLevel::Dollars { amount: dec!(30) });
    assert_eq!(stop.stop_type, Some(StopType::Trailing), "trail: 1");
    assert_eq!(
        signal.risk.trail,
        Some(TrailOverride {
            trigger_ticks: Some(dec!(8)),
            step_ticks: Some(dec!(2))
        })
    );
    assert_eq!(
        signal.risk.sizing,
        Some(RiskSizing::Percent { percent: dec!(1.5) })
    );
    assert_eq!(signal.risk.same_direction_ignore, Some(true));
}

#[test]
fn a_traderspost_limit_entry_rests_with_its_exits_and_break_even_offset() {
    let signal = parse("traderspost_limit_entry.json").unwrap();
    assert_eq!(
        signal.entry_order,
        Some(EntryOrderSpec {
            kind: EntryKind::Limit,
            limit_price: Some(dec!(21000)),
            stop_price: None,
            time_in_force: TimeInForce::Gtc,
        })
    );
    assert_eq!(
        signal.take_profit,
        Some(ExitLevel::Distance {
            value: dec!(10),
            units: Some(PriceUnits::Points)
        })
    );
    assert_eq!(
        signal.risk.break_even,
        Some(BreakEvenOverride {
            trigger_ticks: None,
            offset_ticks: Some(dec!(2))
        })
    );
}

#[test]
fn pickmytrade_risk_percentage_dollar_stop_and_break_even_are_read() {
    let signal = parse("pickmytrade_risk_sized.json").unwrap();
    assert_eq!(
        signal.risk.sizing,
        Some(RiskSizing::Percent { percent: dec!(2) })
    );
    assert_eq!(
        signal.stop_loss.map(|s| s.level),
        Some(ExitLevel::Dollars { amount: dec!(40) })
    );
    assert_eq!(
        signal.take_profit,
        Some(ExitLevel::Distance {
            value: dec!(0.5),
            units: Some(PriceUnits::Percent)
        })
    );
    assert_eq!(
        signal.risk.break_even.and_then(|b| b.trigger_ticks),
        Some(dec!(16))
    );
    assert_eq!(signal.entry_order, None, "MKT is a market entry");
}

#[test]
fn every_fixture_is_covered_by_a_test() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let this_file = include_str!("fixtures.rs");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            this_file.contains(&format!("\"{name}\"")),
            "test_data/{name} is not used by any test"
        );
    }
}
