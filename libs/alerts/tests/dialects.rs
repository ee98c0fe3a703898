//! Table tests of alert bodies per dialect (issue 17): the replaced platform's field names, the
//! peers' (TradersPost, PickMyTrade, 3Commas) and TradingView's position placeholders — what
//! each body becomes, and what is refused with a 422 a person can act on.

// A test binary: a failed `expect` is a failed test, with its message.
#![allow(clippy::expect_used)]

use jt_alerts::{
    AlertContext, AlertError, EntryKind, ExitLevel, PositionChange, RiskSizing, Signal, parse_alert,
};
use jt_domain::order::TimeInForce;
use jt_domain::settings::{PriceUnits, StopType};
use jt_domain::signal::SignalAction;
use jt_domain::types::Direction;
use rstest::rstest;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn parse(body: &str) -> Result<Signal, AlertError> {
    parse_alert(body.as_bytes(), &AlertContext::default())
}

fn ok(body: &str) -> Signal {
    parse(body).unwrap_or_else(|e| panic!("{body} refused: {e}"))
}

fn refused(body: &str) -> AlertError {
    match parse(body) {
        Ok(s) => panic!("{body} accepted as {s:?}"),
        Err(e) => {
            assert_eq!(e.http_status(), 422, "{e}");
            e
        }
    }
}

/// What the webhook answered 422 "no action" to before, in the replaced platform's dialect.
#[rstest]
#[case::side_symbol_close(r#"{"side":"BUY","symbol":"ES1!","close":5012.25}"#, SignalAction::Long, "ES", None, Some(dec!(5012.25)))]
#[case::signal_instrument_last_qty(r#"{"signal":"Sell","instrument":"MES1!","last":5011.50,"qty":3}"#, SignalAction::Short, "MES", Some(dec!(3)), Some(dec!(5011.50)))]
#[case::order_action(r#"{"order_action":"sell","ticker":"MNQ1!","contracts":2}"#, SignalAction::Short, "MNQ", Some(dec!(2)), None)]
#[case::direction(r#"{"direction":"long","ticker":"NQ1!","size":1}"#, SignalAction::Long, "NQ", Some(dec!(1)), None)]
#[case::order_type_holding_the_action(
    r#"{"order_type":"buy","ticker":"MNQ1!"}"#,
    SignalAction::Long,
    "MNQ",
    None,
    None
)]
#[case::type_holding_the_action(
    r#"{"type":"SELL","ticker":"MNQ1!"}"#,
    SignalAction::Short,
    "MNQ",
    None,
    None
)]
#[case::first_non_empty_action(
    r#"{"action":"","side":"sell","ticker":"MNQ1!"}"#,
    SignalAction::Short,
    "MNQ",
    None,
    None
)]
#[case::market_position_flat_closes(
    r#"{"market_position":"flat","ticker":"MNQ1!"}"#,
    SignalAction::Close,
    "MNQ",
    None,
    None
)]
#[case::position_size_zero_closes(
    r#"{"ticker":"MNQ1!","position_size":0}"#,
    SignalAction::Close,
    "MNQ",
    None,
    None
)]
#[case::sizes_alone_enter(
    r#"{"ticker":"MNQ1!","position_size":-2,"prev_position_size":0}"#,
    SignalAction::Short,
    "MNQ",
    None,
    None
)]
#[case::sizes_alone_exit_the_long(
    r#"{"ticker":"MNQ1!","position_size":0,"prev_position_size":3}"#,
    SignalAction::CloseLong,
    "MNQ",
    None,
    None
)]
#[case::sell_2_to_1_is_a_partial_exit(
    r#"{"action":"sell","ticker":"MNQ1!","position_size":1,"prev_position_size":2}"#,
    SignalAction::ReduceLong,
    "MNQ",
    None,
    None
)]
#[case::buy_back_part_of_a_short(
    r#"{"action":"buy","ticker":"MNQ1!","position_size":-1,"prev_position_size":-3}"#,
    SignalAction::ReduceShort,
    "MNQ",
    None,
    None
)]
#[case::flip_by_sizes(
    r#"{"action":"sell","ticker":"MNQ1!","position_size":-1,"prev_position_size":2}"#,
    SignalAction::Short,
    "MNQ",
    None,
    None
)]
#[case::add_by_sizes(
    r#"{"action":"buy","ticker":"MNQ1!","position_size":3,"prev_position_size":1}"#,
    SignalAction::Long,
    "MNQ",
    None,
    None
)]
#[case::three_commas_sizes(r#"{"action":"sell","tv_instrument":"GC1!","strategy_info":{"market_position":"long","market_position_size":"1","prev_market_position":"long","prev_market_position_size":"4"}}"#, SignalAction::ReduceLong, "GC", None, None)]
#[case::tradingview_market_position_size(r#"{"action":"sell","ticker":"MNQ1!","market_position":"long","market_position_size":3,"contracts":1}"#, SignalAction::ReduceLong, "MNQ", Some(dec!(1)), None)]
fn each_dialect_gives_the_signal(
    #[case] body: &str,
    #[case] action: SignalAction,
    #[case] root: &str,
    #[case] quantity: Option<Decimal>,
    #[case] price: Option<Decimal>,
) {
    let s = ok(body);
    assert_eq!(s.action, action, "{body}");
    assert_eq!(s.instrument.map(|i| i.root), Some(root), "{body}");
    assert_eq!(s.quantity, quantity, "{body}");
    assert_eq!(s.price, price, "{body}");
}

#[test]
fn the_fraction_of_a_partial_exit_follows_the_sizes() {
    let s = ok(
        r#"{"action":"sell","tv_instrument":"GC1!","strategy_info":{"market_position":"long","market_position_size":"1","prev_market_position":"long","prev_market_position_size":"4"}}"#,
    );
    assert_eq!(s.exit_fraction, Some(dec!(0.75)));
    let s = ok(
        r#"{"action":"sell","ticker":"MNQ1!","market_position":"long","market_position_size":3,"contracts":1}"#,
    );
    assert_eq!(
        s.exit_fraction,
        Some(dec!(0.25)),
        "3 left after selling 1 of 4"
    );
    assert_eq!(s.prev_position_size, Some(dec!(4)));
}

#[test]
fn inverse_turns_a_partial_exit_of_the_long_into_one_of_the_short() {
    let ctx = AlertContext {
        inverse: true,
        ..AlertContext::default()
    };
    let s = parse_alert(
        br#"{"action":"sell","ticker":"MNQ1!","position_size":1,"prev_position_size":2}"#,
        &ctx,
    )
    .unwrap();
    assert_eq!(s.action, SignalAction::ReduceShort);
    assert_eq!(s.exit_fraction, Some(dec!(0.5)));
    assert_eq!(
        s.change,
        Some(PositionChange::PartialExit {
            direction: Direction::Short,
            fraction: dec!(0.5)
        })
    );
    assert_eq!(s.position_size, Some(dec!(-1)));
}

#[rstest]
#[case::buy_while_the_long_shrinks(
    r#"{"action":"buy","ticker":"MNQ1!","position_size":1,"prev_position_size":2}"#,
    "the alert says buy but its position fields say partial exit of 50% of the long (long 2 → long 1)"
)]
#[case::sell_into_a_new_long(
    r#"{"action":"sell","ticker":"MNQ1!","position_size":2,"prev_position_size":0}"#,
    "the alert says sell but its position fields say entry long (flat → long 2)"
)]
#[case::word_against_size(
    r#"{"action":"buy","ticker":"MNQ1!","market_position":"short","position_size":2}"#,
    "`market_position` says short but `position_size` is 2 (long 2)"
)]
#[case::sizes_that_did_not_move(
    r#"{"action":"buy","ticker":"MNQ1!","position_size":2,"prev_position_size":2}"#,
    "nothing changed"
)]
fn a_contradiction_is_a_422_that_says_what_disagrees(#[case] body: &str, #[case] says: &str) {
    let e = refused(body);
    assert_eq!(e.kind(), "position_contradiction", "{e}");
    let text = e.to_string();
    assert!(text.contains(says), "{text}");
    assert!(text.contains("{{strategy.position_size}}"), "{text}");
}

#[test]
fn a_partial_exit_without_sizes_asks_for_them() {
    let e = refused(r#"{"action":"sell","ticker":"MNQ1!","position":"long","contracts":1}"#);
    assert_eq!(e.kind(), "partial_exit");
    assert!(
        e.to_string()
            .contains("\"position_size\": {{strategy.position_size}}"),
        "{e}"
    );
}

fn stop(s: &Signal) -> (ExitLevel, Option<StopType>) {
    let stop = s.stop_loss.expect("a stop");
    (stop.level, stop.stop_type)
}

#[rstest]
#[case::dollar_tp(r#""dollar_tp": 50"#, ExitLevel::Dollars { amount: dec!(50) })]
#[case::tp_dollar(r#""tp_dollar": "25.5""#, ExitLevel::Dollars { amount: dec!(25.5) })]
#[case::percentage_tp(r#""percentage_tp": 0.4"#, ExitLevel::Distance { value: dec!(0.4), units: Some(PriceUnits::Percent) })]
#[case::tp_percent(r#""tp_percent": 1"#, ExitLevel::Distance { value: dec!(1), units: Some(PriceUnits::Percent) })]
#[case::tp_ticks(r#""tp_ticks": 40"#, ExitLevel::Distance { value: dec!(40), units: Some(PriceUnits::Ticks) })]
#[case::our_dollars_object(r#""tp": {"dollars": 80}"#, ExitLevel::Dollars { amount: dec!(80) })]
fn take_profits_in_every_unit(#[case] field: &str, #[case] want: ExitLevel) {
    let s = ok(&format!(
        r#"{{"action":"buy","ticker":"MNQ1!",{field},"sl":0}}"#
    ));
    assert_eq!(s.take_profit, Some(want));
}

#[rstest]
#[case::dollar_sl(r#""dollar_sl": 30"#, ExitLevel::Dollars { amount: dec!(30) }, None)]
#[case::sl_dollar(r#""sl_dollar": 30"#, ExitLevel::Dollars { amount: dec!(30) }, None)]
#[case::percentage_sl(r#""percentage_sl": 0.2"#, ExitLevel::Distance { value: dec!(0.2), units: Some(PriceUnits::Percent) }, None)]
#[case::sl_percent(r#""sl_percent": 0.2"#, ExitLevel::Distance { value: dec!(0.2), units: Some(PriceUnits::Percent) }, None)]
#[case::sl_ticks(r#""sl_ticks": 16"#, ExitLevel::Distance { value: dec!(16), units: Some(PriceUnits::Ticks) }, None)]
#[case::pickmytrade_trail_stop(r#""trail_stop": 24"#, ExitLevel::Distance { value: dec!(24), units: Some(PriceUnits::Ticks) }, Some(StopType::Trailing))]
#[case::trail_makes_the_stop_trail(r#""sl": 20, "trail": 1"#, ExitLevel::Distance { value: dec!(20), units: None }, Some(StopType::Trailing))]
#[case::trail_trigger_too(r#""dollar_sl": 10, "trail_trigger": 8, "trail_freq": 2"#, ExitLevel::Dollars { amount: dec!(10) }, Some(StopType::Trailing))]
fn stops_in_every_unit(
    #[case] field: &str,
    #[case] level: ExitLevel,
    #[case] kind: Option<StopType>,
) {
    let s = ok(&format!(r#"{{"action":"buy","ticker":"MNQ1!",{field}}}"#));
    assert_eq!(stop(&s), (level, kind));
}

#[test]
fn trail_trigger_freq_breakeven_and_sizing_are_carried() {
    let s = ok(
        r#"{"data":"buy","symbol":"MNQ1!","trail":"1","trail_trigger":"8","trail_freq":"2",
            "breakeven":12,"breakeven_offset":"2","risk_dollars":250,"same_direction_ignore":"false"}"#,
    );
    let trail = s.risk.trail.unwrap();
    assert_eq!(
        (trail.trigger_ticks, trail.step_ticks),
        (Some(dec!(8)), Some(dec!(2)))
    );
    let be = s.risk.break_even.unwrap();
    assert_eq!(
        (be.trigger_ticks, be.offset_ticks),
        (Some(dec!(12)), Some(dec!(2)))
    );
    assert_eq!(
        s.risk.sizing,
        Some(RiskSizing::Dollars { amount: dec!(250) })
    );
    assert_eq!(s.risk.same_direction_ignore, Some(false));
    assert!(
        s.describe_overrides()
            .iter()
            .any(|o| o.contains("starts after 8 ticks")),
        "{:?}",
        s.describe_overrides()
    );
    // TradersPost's spelling of the offset.
    let s = ok(r#"{"action":"buy","ticker":"MNQ1!","breakevenOffset":3}"#);
    assert_eq!(s.risk.break_even.unwrap().offset_ticks, Some(dec!(3)));
    // risk / risk_amount.
    let s = ok(r#"{"action":"buy","ticker":"MNQ1!","risk":1}"#);
    assert_eq!(
        s.risk.sizing,
        Some(RiskSizing::Percent { percent: dec!(1) })
    );
    let s = ok(r#"{"action":"buy","ticker":"MNQ1!","risk_amount":"100"}"#);
    assert_eq!(
        s.risk.sizing,
        Some(RiskSizing::Dollars { amount: dec!(100) })
    );
}

#[test]
fn zeros_are_not_set_so_a_full_peer_template_trades_on_the_traders_settings() {
    let s = ok(
        r#"{"data":"buy","symbol":"MNQ1!","tp":0,"dollar_tp":0,"percentage_tp":0,"sl":0,
            "dollar_sl":"0","percentage_sl":0,"trail":0,"trail_stop":0,"trail_trigger":0,
            "trail_freq":0,"breakeven":0,"risk_percentage":0,"update_tp":false,"update_sl":"false",
            "order_type":"MKT"}"#,
    );
    assert_eq!(s.take_profit, None);
    assert_eq!(s.stop_loss, None);
    assert!(s.risk.is_empty(), "{:?}", s.risk);
    assert_eq!(s.entry_order, None);
}

#[rstest]
#[case::traderspost_limit(r#""orderType":"limit","limitPrice":21000"#, EntryKind::Limit, Some(dec!(21000)), None)]
#[case::limit_price_alone(r#""limit_price":"20990.5""#, EntryKind::Limit, Some(dec!(20990.5)), None)]
#[case::stop_entry(r#""orderType":"stop","stopPrice":21010"#, EntryKind::Stop, None, Some(dec!(21010)))]
#[case::stop_limit(r#""order_type":"stop_limit","stop_price":21010,"limit_price":21012"#, EntryKind::StopLimit, Some(dec!(21012)), Some(dec!(21010)))]
#[case::prices_alone_make_a_stop_limit(r#""stopPrice":21010,"limitPrice":21012"#, EntryKind::StopLimit, Some(dec!(21012)), Some(dec!(21010)))]
#[case::lmt(r#""order_type":"LMT","limitPrice":21000"#, EntryKind::Limit, Some(dec!(21000)), None)]
fn resting_entries_are_placed_as_asked(
    #[case] fields: &str,
    #[case] kind: EntryKind,
    #[case] limit: Option<Decimal>,
    #[case] stop: Option<Decimal>,
) {
    let s = ok(&format!(r#"{{"action":"buy","ticker":"MNQ1!",{fields}}}"#));
    let o = s.entry_order.expect("a resting entry, never market");
    assert_eq!((o.kind, o.limit_price, o.stop_price), (kind, limit, stop));
    assert_eq!(o.time_in_force, TimeInForce::Day, "the default time limit");
}

#[rstest]
#[case::limit_without_price(r#""action":"buy","orderType":"limit""#, "limitPrice")]
#[case::stop_without_price(r#""action":"buy","orderType":"stop","limitPrice":1"#, "stopPrice")]
#[case::market_with_a_price(
    r#""action":"buy","orderType":"market","limitPrice":21000"#,
    "limitPrice"
)]
#[case::unknown_order_type(r#""action":"buy","orderType":"iceberg""#, "orderType")]
#[case::ioc(
    r#""action":"buy","orderType":"limit","limitPrice":1,"timeInForce":"ioc""#,
    "timeInForce"
)]
#[case::limit_exit(
    r#""action":"close","orderType":"limit","limitPrice":21000"#,
    "orderType"
)]
#[case::two_take_profits(r#""action":"buy","tp":20,"dollar_tp":50"#, "tp, dollar_tp")]
#[case::two_stops(r#""action":"buy","sl":20,"percentage_sl":1"#, "sl, percentage_sl")]
#[case::two_risk_sizes(
    r#""action":"buy","risk_dollars":100,"risk_percentage":1"#,
    "risk_dollars, risk_percentage"
)]
#[case::risk_over_100_percent(r#""action":"buy","risk_percentage":150"#, "risk_percentage")]
#[case::trail_is_a_switch(r#""action":"buy","trail":25"#, "trail")]
#[case::fractional_ticks(r#""action":"buy","trail_trigger":2.5"#, "trail_trigger")]
#[case::breakeven_needs_ticks(r#""action":"buy","breakeven":true"#, "breakeven")]
#[case::unknown_key_inside_a_take_profit(
    r#""action":"buy","takeProfit":{"ticks":20,"trail":1}"#,
    "takeProfit.trail"
)]
fn unusable_instructions_are_refused_naming_the_field(#[case] fields: &str, #[case] field: &str) {
    let e = refused(&format!(r#"{{"ticker":"MNQ1!",{fields}}}"#));
    match &e {
        AlertError::InvalidField { field: f, .. } => assert_eq!(f, field, "{e}"),
        other => panic!("{other:?}"),
    }
}

#[rstest]
#[case::a_second_take_profit("takeProfit2", "40", "tp_targets")]
#[case::numbered_tp("tp1", "20", "tp_targets")]
#[case::move_the_stop("update_sl", "true", "does not move an open position")]
#[case::trailing_stop("trailing_stop", "\"yes\"", "trail_trigger")]
#[case::max_loss("max_loss", "500", "risk_dollars")]
fn an_unknown_risk_field_is_refused_never_dropped(
    #[case] name: &str,
    #[case] value: &str,
    #[case] advice: &str,
) {
    let e = refused(&format!(
        r#"{{"action":"buy","ticker":"MNQ1!","{name}":{value}}}"#
    ));
    assert_eq!(e.kind(), "unsupported_risk_field");
    let text = e.to_string();
    assert!(text.contains(&format!("`{name}`")), "{text}");
    assert!(text.contains(advice), "{text}");
    // The same field unset is ignored, like any unknown field.
    ok(&format!(
        r#"{{"action":"buy","ticker":"MNQ1!","{name}":0}}"#
    ));
}

#[test]
fn exits_ignore_entry_instructions_of_a_shared_template() {
    // One TradingView alert message serves every order of a strategy: the exit keeps its stop
    // field, which applies to entries only.
    let s = ok(r#"{"action":"sell","ticker":"MNQ1!","position":"flat","sl":40,"risk":1}"#);
    assert_eq!(s.action, SignalAction::CloseLong);
    assert_eq!(s.describe_intent(), "full exit of the long");
}
