//! One test per rule of DOMAIN.md §2's alert parsing, named after the rule.

use jt_domain::settings::{PriceUnits, StopType};
use jt_domain::signal::SignalAction;
use rstest::rstest;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::signal::{ExitLevel, StopOverride};

fn parse(body: &str) -> Result<Signal, AlertError> {
    parse_alert(body.as_bytes(), &AlertContext::default())
}

fn parse_with(body: &str, ctx: AlertContext<'_>) -> Result<Signal, AlertError> {
    parse_alert(body.as_bytes(), &ctx)
}

fn action_of(body: &str) -> SignalAction {
    match parse(body) {
        Ok(signal) => signal.action,
        Err(e) => panic!("{body} was refused: {e}"),
    }
}

fn refused(body: &str) -> AlertError {
    match parse(body) {
        Ok(signal) => panic!("{body} was accepted as {signal:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_common_tradingview_template_gives_a_long_entry() {
    let signal = parse(
        r#"{"action": "buy", "ticker": "MNQ1!", "contracts": 2, "price": 21433.25,
            "position": "long", "time": "2026-01-05T14:30:00Z"}"#,
    )
    .unwrap();
    assert_eq!(signal.action, SignalAction::Long);
    assert_eq!(signal.ticker.as_deref(), Some("MNQ1!"));
    assert_eq!(signal.symbol.as_deref(), Some("MNQ1!"));
    assert_eq!(signal.instrument.map(|i| i.root), Some("MNQ"));
    assert_eq!(signal.quantity, Some(dec!(2)));
    assert_eq!(signal.price, Some(dec!(21433.25)));
    assert_eq!(signal.time, "2026-01-05T14:30:00Z".parse().ok());
    assert_eq!(signal.position, Some(MarketPosition::Long));
    assert!(!signal.inverted);
}

#[rstest]
#[case::leading_and_trailing_whitespace("\n\t {\"action\":\"buy\",\"ticker\":\"MNQ1!\"} \r\n")]
#[case::utf8_byte_order_mark("\u{feff}{\"action\":\"buy\",\"ticker\":\"MNQ1!\"}")]
fn json_is_read_from_the_bytes_whatever_the_content_type(#[case] body: &str) {
    assert_eq!(action_of(body), SignalAction::Long);
}

#[rstest]
#[case("buy", SignalAction::Long)]
#[case("BUY", SignalAction::Long)]
#[case("Buy", SignalAction::Long)]
#[case("long", SignalAction::Long)]
#[case("LONG", SignalAction::Long)]
#[case("enter_long", SignalAction::Long)]
#[case(" buy ", SignalAction::Long)]
#[case("sell", SignalAction::Short)]
#[case("SELL", SignalAction::Short)]
#[case("short", SignalAction::Short)]
#[case("Short", SignalAction::Short)]
#[case("enter_short", SignalAction::Short)]
#[case("close", SignalAction::Close)]
#[case("CLOSE", SignalAction::Close)]
#[case("exit", SignalAction::Close)]
#[case("Exit", SignalAction::Close)]
#[case("flatten", SignalAction::Close)]
#[case("FLATTEN", SignalAction::Close)]
#[case("close_long", SignalAction::CloseLong)]
#[case("Close Long", SignalAction::CloseLong)]
#[case("close-long", SignalAction::CloseLong)]
#[case("exit_long", SignalAction::CloseLong)]
#[case("close_short", SignalAction::CloseShort)]
#[case("CLOSE_SHORT", SignalAction::CloseShort)]
#[case("exit_short", SignalAction::CloseShort)]
#[case("cancel", SignalAction::Cancel)]
#[case("Cancel", SignalAction::Cancel)]
fn action_synonyms_are_accepted_in_any_case(#[case] word: &str, #[case] want: SignalAction) {
    let body = format!(r#"{{"action": "{word}", "ticker": "MNQ1!"}}"#);
    assert_eq!(action_of(&body), want);
}

#[test]
fn an_empty_action_is_skipped_for_the_next_synonym_and_alone_is_missing() {
    // The replaced platform reads the first non-empty of its action fields.
    assert_eq!(
        action_of(r#"{"action": "", "side": "SELL", "ticker": "MNQ1!"}"#),
        SignalAction::Short
    );
    let e = refused(r#"{"action": "", "ticker": "MNQ1!"}"#);
    assert_eq!(e, AlertError::MissingAction);
    assert_eq!(e.http_status(), 422);
}

#[rstest]
#[case("hold")]
#[case("buy_to_cover")]
#[case("123")]
fn unknown_action_is_refused_with_422(#[case] word: &str) {
    let e = refused(&format!(r#"{{"action": "{word}", "ticker": "MNQ1!"}}"#));
    assert!(matches!(e, AlertError::UnknownAction { .. }), "{e:?}");
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("use buy, sell"), "{e}");
}

#[test]
fn missing_action_is_refused_with_422() {
    let e = refused(r#"{"ticker": "MNQ1!", "contracts": 1}"#);
    assert_eq!(e, AlertError::MissingAction);
    assert_eq!(e.http_status(), 422);
}

#[test]
fn a_number_as_action_is_an_unknown_action() {
    assert!(matches!(
        refused(r#"{"action": 1, "ticker": "MNQ1!"}"#),
        AlertError::UnknownAction { .. }
    ));
    assert!(matches!(
        refused(r#"{"action": {"x": 1}, "ticker": "MNQ1!"}"#),
        AlertError::InvalidField { .. }
    ));
}

#[rstest]
#[case::buy_with_position_long_goes_long("buy", "long", Ok(SignalAction::Long))]
#[case::sell_with_position_short_goes_short("sell", "short", Ok(SignalAction::Short))]
#[case::sell_with_position_flat_closes_the_long("sell", "flat", Ok(SignalAction::CloseLong))]
#[case::buy_with_position_flat_closes_the_short("buy", "flat", Ok(SignalAction::CloseShort))]
#[case::close_closes_whatever_is_open("close", "flat", Ok(SignalAction::Close))]
#[case::exit_closes_whatever_is_open("exit", "long", Ok(SignalAction::Close))]
#[case::flatten_closes_whatever_is_open("flatten", "short", Ok(SignalAction::Close))]
#[case::position_in_any_case("BUY", "LONG", Ok(SignalAction::Long))]
#[case::bullish_is_long("buy", "bullish", Ok(SignalAction::Long))]
#[case::bearish_is_short("sell", "bearish", Ok(SignalAction::Short))]
#[case::explicit_close_long_ignores_position("close_long", "flat", Ok(SignalAction::CloseLong))]
#[case::cancel_ignores_position("cancel", "long", Ok(SignalAction::Cancel))]
#[case::traderspost_add_long("add", "long", Ok(SignalAction::Long))]
#[case::traderspost_add_short("add", "short", Ok(SignalAction::Short))]
#[case::traderspost_add_flat_is_refused("add", "flat", Err("add_without_direction"))]
#[case::buy_staying_short_is_a_partial_exit("buy", "short", Err("partial_exit"))]
#[case::sell_staying_long_is_a_partial_exit("sell", "long", Err("partial_exit"))]
#[case::unknown_position_is_refused("buy", "sideways", Err("unknown_position"))]
#[case::empty_position_is_refused("sell", "", Err("unknown_position"))]
fn position_maps_the_action(
    #[case] action: &str,
    #[case] position: &str,
    #[case] want: Result<SignalAction, &str>,
) {
    let body = format!(r#"{{"action": "{action}", "ticker": "MNQ1!", "position": "{position}"}}"#);
    match (parse(&body), want) {
        (Ok(signal), Ok(want)) => assert_eq!(signal.action, want),
        (Err(e), Err(kind)) => {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.http_status(), 422);
        }
        (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
    }
}

#[rstest]
#[case::buy_means_long("buy", SignalAction::Long)]
#[case::sell_means_short("sell", SignalAction::Short)]
#[case::long_means_long("long", SignalAction::Long)]
#[case::short_means_short("short", SignalAction::Short)]
fn without_a_position_field_buy_means_long_and_sell_means_short(
    #[case] action: &str,
    #[case] want: SignalAction,
) {
    let body = format!(r#"{{"action": "{action}", "ticker": "MNQ1!"}}"#);
    assert_eq!(action_of(&body), want);
}

#[test]
fn add_without_any_direction_is_refused() {
    assert_eq!(
        refused(r#"{"action": "add", "ticker": "MNQ1!"}"#),
        AlertError::AddWithoutDirection
    );
}

#[rstest]
#[case::position(r#""position": "flat""#)]
#[case::market_position(r#""market_position": "flat""#)]
#[case::traderspost_sentiment(r#""sentiment": "flat""#)]
#[case::three_commas_strategy_info(r#""strategy_info": {"market_position": "flat"}"#)]
#[case::field_name_in_any_case(r#""Market_Position": "FLAT""#)]
fn position_synonyms_are_accepted(#[case] field: &str) {
    let body = format!(r#"{{"action": "sell", "ticker": "MNQ1!", {field}}}"#);
    let signal = parse(&body).unwrap();
    assert_eq!(signal.action, SignalAction::CloseLong);
    assert_eq!(signal.position, Some(MarketPosition::Flat));
}

#[test]
fn position_synonyms_are_taken_in_order_position_first() {
    let signal =
        parse(r#"{"action": "buy", "ticker": "MNQ1!", "sentiment": "flat", "position": "long"}"#)
            .unwrap();
    assert_eq!(signal.action, SignalAction::Long);
}

#[rstest]
#[case::prev_position(r#""prev_position": "short""#)]
#[case::prev_market_position(r#""prev_market_position": "short""#)]
#[case::three_commas(r#""strategy_info": {"prev_market_position": "short"}"#)]
fn prev_position_synonyms_are_accepted(#[case] field: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", "position": "long", {field}}}"#);
    let signal = parse(&body).unwrap();
    assert_eq!(signal.prev_position, Some(MarketPosition::Short));
}

#[test]
fn bad_prev_position_is_refused() {
    let e = refused(r#"{"action": "buy", "ticker": "MNQ1!", "prev_position": "up"}"#);
    assert!(matches!(e, AlertError::UnknownPosition { ref field, .. } if field == "prev_position"));
}

#[rstest]
#[case::contracts_number(r#""contracts": 3"#, dec!(3))]
#[case::contracts_numeric_string(r#""contracts": "3""#, dec!(3))]
#[case::quantity(r#""quantity": 3"#, dec!(3))]
#[case::quantity_string_with_spaces(r#""quantity": " 3 ""#, dec!(3))]
#[case::qty(r#""qty": "3""#, dec!(3))]
#[case::three_commas_order_amount(r#""order": {"amount": "3", "currency_type": "base"}"#, dec!(3))]
#[case::fractional_kept_exactly(r#""contracts": 0.001"#, dec!(0.001))]
#[case::exponent_form(r#""contracts": 3e0"#, dec!(3))]
#[case::zero(r#""contracts": 0"#, dec!(0))]
fn quantity_synonyms_as_number_or_numeric_string(#[case] field: &str, #[case] want: Decimal) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    assert_eq!(parse(&body).unwrap().quantity, Some(want));
}

#[rstest]
#[case::negative(r#""contracts": -1"#)]
#[case::text(r#""contracts": "two""#)]
#[case::empty(r#""contracts": """#)]
#[case::boolean(r#""contracts": true"#)]
#[case::too_many_digits(r#""contracts": 123456789012345678901234567890123"#)]
#[case::thousands_separator(r#""qty": "1,000""#)]
fn bad_quantity_is_refused_naming_the_field(#[case] field: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    let e = refused(&body);
    assert!(matches!(e, AlertError::InvalidField { .. }), "{e:?}");
    assert_eq!(e.http_status(), 422);
}

#[test]
fn quantity_synonyms_are_taken_in_order_contracts_first() {
    let signal =
        parse(r#"{"action": "buy", "ticker": "MNQ1!", "qty": 9, "contracts": 2}"#).unwrap();
    assert_eq!(signal.quantity, Some(dec!(2)));
}

#[test]
fn no_quantity_is_none() {
    assert_eq!(
        parse(r#"{"action": "buy", "ticker": "MNQ1!"}"#)
            .unwrap()
            .quantity,
        None
    );
}

#[rstest]
#[case::price(r#""price": 21433.25"#, dec!(21433.25))]
#[case::price_string(r#""price": "21433.25""#, dec!(21433.25))]
#[case::traderspost_signal_price(r#""signalPrice": 21433.25"#, dec!(21433.25))]
#[case::three_commas_trigger_price(r#""trigger_price": "21433.25""#, dec!(21433.25))]
#[case::digits_a_float_would_lose(r#""price": 2345.123456789012345678"#, dec!(2345.123456789012345678))]
fn price_synonyms_are_read_exactly(#[case] field: &str, #[case] want: Decimal) {
    let body = format!(r#"{{"action": "buy", "ticker": "GC1!", {field}}}"#);
    assert_eq!(parse(&body).unwrap().price, Some(want));
}

#[test]
fn price_keeps_the_digits_as_sent() {
    let signal = parse(r#"{"action": "buy", "ticker": "MNQ1!", "price": 21433.250}"#).unwrap();
    assert_eq!(
        signal.price.map(|p| p.to_string()).as_deref(),
        Some("21433.250")
    );
}

#[rstest]
#[case::zero(r#""price": 0"#)]
#[case::negative(r#""price": -5"#)]
#[case::text(r#""price": "market""#)]
fn non_positive_or_non_numeric_price_is_refused(#[case] field: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    assert!(matches!(refused(&body), AlertError::InvalidField { .. }));
}

#[rstest]
#[case::time_utc(r#""time": "2026-01-05T14:30:00Z""#, "2026-01-05T14:30:00Z")]
#[case::timenow(r#""timenow": "2026-01-05T14:30:00Z""#, "2026-01-05T14:30:00Z")]
#[case::three_commas_timestamp(r#""timestamp": "2026-01-05T14:30:00Z""#, "2026-01-05T14:30:00Z")]
#[case::pickmytrade_date(r#""date": "2026-01-05T14:30:00Z""#, "2026-01-05T14:30:00Z")]
#[case::fractional_seconds(r#""time": "2026-01-05T14:30:00.123Z""#, "2026-01-05T14:30:00.123Z")]
#[case::offset(r#""time": "2026-01-05T09:30:00-05:00""#, "2026-01-05T14:30:00Z")]
#[case::offset_without_colon(r#""time": "2026-01-05T15:30:00+0100""#, "2026-01-05T14:30:00Z")]
#[case::no_zone_is_utc(r#""time": "2026-01-05T14:30:00""#, "2026-01-05T14:30:00Z")]
#[case::space_separator(r#""time": "2026-01-05 14:30:00""#, "2026-01-05T14:30:00Z")]
#[case::lower_case_z(r#""time": "2026-01-05t14:30:00z""#, "2026-01-05T14:30:00Z")]
#[case::unix_seconds(r#""timestamp": 1767623400"#, "2026-01-05T14:30:00Z")]
#[case::unix_milliseconds(r#""timestamp": "1767623400123""#, "2026-01-05T14:30:00.123Z")]
fn time_synonyms_are_iso_8601_utc(#[case] field: &str, #[case] want: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    assert_eq!(parse(&body).unwrap().time, want.parse().ok());
}

#[rstest]
#[case::words(r#""time": "yesterday""#)]
#[case::date_only(r#""time": "2026-01-05""#)]
#[case::impossible_date(r#""time": "2026-02-30T10:00:00Z""#)]
#[case::empty(r#""time": """#)]
#[case::huge_number(r#""time": 99999999999999999999"#)]
fn unreadable_time_is_refused(#[case] field: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    let e = refused(&body);
    assert!(matches!(e, AlertError::InvalidField { .. }), "{e:?}");
    assert!(e.to_string().contains("ISO-8601"), "{e}");
}

#[test]
fn no_time_field_is_none() {
    assert_eq!(
        parse(r#"{"action": "buy", "ticker": "MNQ1!"}"#)
            .unwrap()
            .time,
        None
    );
}

#[rstest]
#[case::text(r#""comment": "Long entry #3""#, "Long entry #3")]
#[case::number(r#""comment": 42"#, "42")]
fn comment_is_kept(#[case] field: &str, #[case] want: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    assert_eq!(parse(&body).unwrap().comment.as_deref(), Some(want));
}

#[rstest]
#[case::zero(r#""delay": 0"#, Ok(0))]
#[case::seconds(r#""delay": 5"#, Ok(5))]
#[case::string(r#""delay": "30""#, Ok(30))]
#[case::sixty_is_the_maximum(r#""delay": 60"#, Ok(60))]
#[case::over_sixty_is_refused(r#""delay": 61"#, Err(()))]
#[case::negative_is_refused(r#""delay": -1"#, Err(()))]
#[case::fraction_is_refused(r#""delay": 1.5"#, Err(()))]
fn per_alert_delay_is_at_most_60_seconds(#[case] field: &str, #[case] want: Result<u32, ()>) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    match (parse(&body), want) {
        (Ok(signal), Ok(secs)) => assert_eq!(signal.delay_secs, secs),
        (Err(e), Err(())) => {
            assert!(matches!(e, AlertError::InvalidField { .. }), "{e:?}");
            assert!(e.to_string().contains("0 to 60"), "{e}");
        }
        (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
    }
}

#[rstest]
#[case::number(r#""max_lag": 300"#, Ok(300))]
#[case::three_commas_string(r#""max_lag": "300""#, Ok(300))]
#[case::zero_is_refused(r#""max_lag": 0"#, Err(()))]
#[case::over_a_day_is_refused(r#""max_lag": 86401"#, Err(()))]
fn max_lag_overrides_the_staleness_limit(#[case] field: &str, #[case] want: Result<u32, ()>) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    match (parse(&body), want) {
        (Ok(signal), Ok(secs)) => assert_eq!(signal.max_lag_secs, Some(secs)),
        (Err(e), Err(())) => assert!(matches!(e, AlertError::InvalidField { .. }), "{e:?}"),
        (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
    }
}

fn distance(value: Decimal, units: Option<PriceUnits>) -> ExitLevel {
    ExitLevel::Distance { value, units }
}

#[rstest]
#[case::number_in_configured_units(r#""tp": 20"#, Some(distance(dec!(20), None)))]
#[case::numeric_string(r#""tp": "20""#, Some(distance(dec!(20), None)))]
#[case::zero_means_not_set(r#""tp": 0"#, None)]
#[case::ticks(r#""tp": {"ticks": 40}"#, Some(distance(dec!(40), Some(PriceUnits::Ticks))))]
#[case::points(r#""tp": {"points": 10.5}"#, Some(distance(dec!(10.5), Some(PriceUnits::Points))))]
#[case::percent(r#""tp": {"percent": "0.5"}"#, Some(distance(dec!(0.5), Some(PriceUnits::Percent))))]
#[case::value_and_units(r#""tp": {"value": 8, "units": "Points"}"#, Some(distance(dec!(8), Some(PriceUnits::Points))))]
#[case::value_without_units(r#""tp": {"value": 8}"#, Some(distance(dec!(8), None)))]
#[case::price(r#""tp": {"price": 21500.25}"#, Some(ExitLevel::Price { price: dec!(21500.25) }))]
#[case::traderspost_limit_price(r#""takeProfit": {"limitPrice": 21500}"#, Some(ExitLevel::Price { price: dec!(21500) }))]
#[case::traderspost_amount_is_points(r#""takeProfit": {"amount": 10}"#, Some(distance(dec!(10), Some(PriceUnits::Points))))]
#[case::traderspost_percent(r#""takeProfit": {"percent": 1}"#, Some(distance(dec!(1), Some(PriceUnits::Percent))))]
#[case::snake_case_name(r#""take_profit": {"ticks": 4}"#, Some(distance(dec!(4), Some(PriceUnits::Ticks))))]
fn per_alert_take_profit_overrides(#[case] field: &str, #[case] want: Option<ExitLevel>) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    assert_eq!(parse(&body).unwrap().take_profit, want);
}

#[rstest]
#[case::number(r#""sl": 20"#, Some((distance(dec!(20), None), None)))]
#[case::ticks_trailing(r#""sl": {"ticks": 30, "type": "trailing"}"#, Some((distance(dec!(30), Some(PriceUnits::Ticks)), Some(StopType::Trailing))))]
#[case::fixed(r#""sl": {"points": 5, "type": "Fixed"}"#, Some((distance(dec!(5), Some(PriceUnits::Points)), Some(StopType::Fixed))))]
#[case::zero_means_not_set(r#""sl": "0""#, None)]
#[case::traderspost_stop_price(r#""stopLoss": {"type": "stop", "stopPrice": 21400}"#, Some((ExitLevel::Price { price: dec!(21400) }, Some(StopType::Fixed))))]
#[case::traderspost_amount(r#""stopLoss": {"type": "stop", "amount": 10}"#, Some((distance(dec!(10), Some(PriceUnits::Points)), Some(StopType::Fixed))))]
#[case::traderspost_percent(r#""stopLoss": {"percent": 5}"#, Some((distance(dec!(5), Some(PriceUnits::Percent)), None)))]
#[case::traderspost_stop_limit_is_a_stop(r#""stopLoss": {"type": "stop_limit", "stopPrice": 21400, "limitPrice": 21390}"#, Some((ExitLevel::Price { price: dec!(21400) }, Some(StopType::Fixed))))]
#[case::traderspost_trail_amount(r#""stopLoss": {"type": "trailing_stop", "trailAmount": 12}"#, Some((distance(dec!(12), Some(PriceUnits::Points)), Some(StopType::Trailing))))]
#[case::traderspost_trail_percent(r#""stopLoss": {"trailPercent": 1.5}"#, Some((distance(dec!(1.5), Some(PriceUnits::Percent)), Some(StopType::Trailing))))]
fn per_alert_stop_overrides(
    #[case] field: &str,
    #[case] want: Option<(ExitLevel, Option<StopType>)>,
) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    let want = want.map(|(level, stop_type)| StopOverride { level, stop_type });
    assert_eq!(parse(&body).unwrap().stop_loss, want);
}

#[rstest]
#[case::negative(r#""tp": -5"#)]
#[case::empty_object(r#""tp": {}"#)]
#[case::two_levels(r#""takeProfit": {"amount": 10, "percent": 1}"#)]
#[case::pnl_amount_is_not_supported(r#""takeProfit": {"pnlAmount": 100}"#)]
#[case::unknown_units(r#""tp": {"value": 3, "units": "dollars"}"#)]
#[case::unknown_stop_type(r#""sl": {"ticks": 3, "type": "guaranteed"}"#)]
#[case::stop_without_level(r#""stopLoss": {"type": "stop"}"#)]
#[case::text(r#""sl": "wide""#)]
fn an_unusable_tp_or_sl_is_refused_never_dropped(#[case] field: &str) {
    let body = format!(r#"{{"action": "buy", "ticker": "MNQ1!", {field}}}"#);
    let e = refused(&body);
    assert!(matches!(e, AlertError::InvalidField { .. }), "{e:?}");
    assert_eq!(e.http_status(), 422);
}

#[rstest]
#[case::flatten(r#"{"command": "flatten"}"#, SignalAction::Flatten)]
#[case::kill(r#"{"command": "kill"}"#, SignalAction::Kill)]
#[case::resume(r#"{"command": "resume"}"#, SignalAction::Resume)]
#[case::any_case(r#"{"COMMAND": "Kill"}"#, SignalAction::Kill)]
#[case::with_time(
    r#"{"command": "flatten", "time": "2026-01-05T14:30:00Z"}"#,
    SignalAction::Flatten
)]
fn control_alerts_need_no_ticker(#[case] body: &str, #[case] want: SignalAction) {
    let signal = parse(body).unwrap();
    assert_eq!(signal.action, want);
    assert!(signal.action.is_control());
    assert_eq!(signal.symbol, None);
    assert_eq!(signal.instrument, None);
}

#[test]
fn control_alerts_are_not_inverted() {
    let ctx = AlertContext {
        inverse: true,
        ..AlertContext::default()
    };
    let signal = parse_with(r#"{"command": "kill"}"#, ctx).unwrap();
    assert_eq!(signal.action, SignalAction::Kill);
    assert!(!signal.inverted);
}

#[rstest]
#[case::unknown_word(r#"{"command": "stop"}"#, "unknown_command")]
#[case::placeholder(r#"{"command": "{{strategy.order.alert_message}}"}"#, "placeholder")]
fn bad_control_alerts_are_refused(#[case] body: &str, #[case] kind: &str) {
    let e = refused(body);
    assert_eq!(e.kind(), kind);
    assert_eq!(e.http_status(), 422);
}

#[rstest]
#[case::buy_becomes_short(r#""action": "buy""#, SignalAction::Short)]
#[case::sell_becomes_long(r#""action": "sell""#, SignalAction::Long)]
#[case::buy_long_becomes_short(r#""action": "buy", "position": "long""#, SignalAction::Short)]
#[case::sell_short_becomes_long(r#""action": "sell", "position": "short""#, SignalAction::Long)]
#[case::sell_flat_closes_the_short(
    r#""action": "sell", "position": "flat""#,
    SignalAction::CloseShort
)]
#[case::buy_flat_closes_the_long(r#""action": "buy", "position": "flat""#, SignalAction::CloseLong)]
#[case::close_long_becomes_close_short(r#""action": "close_long""#, SignalAction::CloseShort)]
#[case::close_stays_close(r#""action": "close""#, SignalAction::Close)]
#[case::cancel_stays_cancel(r#""action": "cancel""#, SignalAction::Cancel)]
fn inverse_swaps_buy_and_sell_and_long_and_short(#[case] fields: &str, #[case] want: SignalAction) {
    let ctx = AlertContext {
        inverse: true,
        ..AlertContext::default()
    };
    let body = format!(r#"{{"ticker": "MNQ1!", {fields}}}"#);
    let signal = parse_with(&body, ctx).unwrap();
    assert_eq!(signal.action, want);
    assert!(signal.inverted);
    let plain = parse(&body).unwrap();
    assert_eq!(
        plain.action.inverted(),
        want,
        "inverse = the mapping, then swapped"
    );
}

#[test]
fn inverse_swaps_the_reported_positions_too() {
    let ctx = AlertContext {
        inverse: true,
        ..AlertContext::default()
    };
    let signal = parse_with(
        r#"{"action": "buy", "ticker": "MNQ1!", "position": "long", "prev_position": "flat"}"#,
        ctx,
    )
    .unwrap();
    assert_eq!(signal.position, Some(MarketPosition::Short));
    assert_eq!(signal.prev_position, Some(MarketPosition::Flat));
}

#[rstest]
#[case::action(
    r#"{"action": "{{strategy.order.action}}", "ticker": "MNQ1!"}"#,
    "action"
)]
#[case::pickmytrade_data(r#"{"data": "{{strategy.order.action}}", "symbol": "MNQ1!"}"#, "data")]
#[case::ticker(r#"{"action": "buy", "ticker": "{{tickr}}"}"#, "ticker")]
#[case::position(
    r#"{"action": "buy", "ticker": "MNQ1!", "position": "{{strategy.market_position}}"}"#,
    "position"
)]
#[case::quoted_quantity(
    r#"{"action": "buy", "ticker": "MNQ1!", "contracts": "{{strategy.order.contracts}}"}"#,
    "contracts"
)]
#[case::unquoted_quantity_breaks_the_json(
    r#"{"action": "buy", "ticker": "MNQ1!", "contracts": {{strategy.order.contracts}}}"#,
    "contracts"
)]
#[case::unquoted_price_breaks_the_json(
    r#"{"action": "buy", "ticker": "MNQ1!", "price": {{strategy.order.price}}, "time": "x"}"#,
    "price"
)]
#[case::time(
    r#"{"action": "buy", "ticker": "MNQ1!", "time": "{{timenow}}"}"#,
    "time"
)]
#[case::comment(
    r#"{"action": "buy", "ticker": "MNQ1!", "comment": "{{strategy.order.comment}}"}"#,
    "comment"
)]
#[case::inside_other_text(
    r#"{"action": "buy", "ticker": "MNQ1!", "comment": "entry {{plot_0}}"}"#,
    "comment"
)]
#[case::nested(r#"{"action": "buy", "ticker": "MNQ1!", "strategy_info": {"market_position": "{{strategy.market_position}}"}}"#, "strategy_info.market_position")]
#[case::take_profit(
    r#"{"action": "buy", "ticker": "MNQ1!", "takeProfit": {"percent": "{{x}}"}}"#,
    "takeProfit.percent"
)]
#[case::whole_body(r#"{{strategy.order.alert_message}}"#, "body")]
fn unfilled_placeholder_in_a_used_field_is_refused_with_422(
    #[case] body: &str,
    #[case] field: &str,
) {
    let e = refused(body);
    match &e {
        AlertError::Placeholder {
            field: got,
            placeholder,
        } => {
            assert_eq!(got, field);
            assert!(placeholder.starts_with("{{"), "{placeholder}");
        }
        other => panic!("{body}: {other:?}"),
    }
    assert_eq!(e.http_status(), 422);
    assert!(
        e.to_string()
            .contains("the alert is not on a strategy, or the placeholder is misspelled")
    );
}

#[test]
fn placeholder_in_an_unused_field_is_ignored() {
    let signal = parse(
        r#"{"action": "buy", "ticker": "MNQ1!", "interval": "{{interval}}", "symbol": "{{x}}"}"#,
    )
    .unwrap();
    assert_eq!(signal.action, SignalAction::Long);
}

#[rstest]
#[case::pickmytrade_symbol(r#"{"data": "buy", "symbol": "MNQ1!"}"#)]
#[case::three_commas_tv_instrument(r#"{"action": "buy", "tv_instrument": "MNQ1!"}"#)]
#[case::field_name_in_any_case(r#"{"Action": "buy", "TICKER": "MNQ1!"}"#)]
fn ticker_synonyms_are_accepted(#[case] body: &str) {
    let signal = parse(body).unwrap();
    assert_eq!(signal.ticker.as_deref(), Some("MNQ1!"));
    assert_eq!(signal.instrument.map(|i| i.root), Some("MNQ"));
}

#[rstest]
#[case::absent(r#"{"action": "buy"}"#)]
#[case::empty(r#"{"action": "buy", "ticker": ""}"#)]
#[case::blank(r#"{"action": "buy", "ticker": "  "}"#)]
#[case::null(r#"{"action": "buy", "ticker": null}"#)]
fn missing_ticker_without_a_recorder_symbol_is_refused(#[case] body: &str) {
    let e = refused(body);
    assert_eq!(e, AlertError::MissingTicker);
    assert_eq!(e.http_status(), 422);
}

#[rstest]
#[case::absent(r#"{"action": "buy"}"#)]
#[case::empty(r#"{"action": "buy", "ticker": ""}"#)]
fn missing_ticker_with_a_recorder_symbol_uses_the_symbol(#[case] body: &str) {
    let ctx = AlertContext {
        recorder_symbol: Some("MGC1!"),
        ..AlertContext::default()
    };
    let signal = parse_with(body, ctx).unwrap();
    assert_eq!(signal.ticker, None);
    assert_eq!(signal.symbol.as_deref(), Some("MGC1!"));
    assert_eq!(signal.instrument.map(|i| i.root), Some("MGC"));
}

#[test]
fn the_alert_ticker_wins_over_the_recorder_symbol() {
    let ctx = AlertContext {
        recorder_symbol: Some("MGC1!"),
        ..AlertContext::default()
    };
    let signal = parse_with(r#"{"action": "buy", "ticker": "NQH6"}"#, ctx).unwrap();
    assert_eq!(signal.instrument.map(|i| i.root), Some("NQ"));
}

#[test]
fn a_recorder_custom_ticker_replaces_the_alert_symbol() {
    let ctx = AlertContext {
        custom_ticker: Some("MNQZ5"),
        ..AlertContext::default()
    };
    // A CFD chart's symbol is not an instrument; the custom ticker is what is traded.
    let signal = parse_with(r#"{"action": "buy", "ticker": "NAS100USD"}"#, ctx).unwrap();
    assert_eq!(signal.ticker.as_deref(), Some("NAS100USD"));
    assert_eq!(signal.symbol.as_deref(), Some("MNQZ5"));
    assert_eq!(signal.instrument.map(|i| i.root), Some("MNQ"));
}

#[rstest]
#[case("AAPL")]
#[case("NAS100USD")]
#[case("CME_MINI:ZZZ1!")]
#[case("CME:")]
fn unknown_root_is_refused_naming_the_ticker(#[case] ticker: &str) {
    let e = refused(&format!(r#"{{"action": "buy", "ticker": "{ticker}"}}"#));
    assert_eq!(
        e,
        AlertError::UnknownInstrument {
            ticker: ticker.to_string()
        }
    );
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains(ticker), "{e}");
}

#[rstest]
#[case("MNQ1!", "MNQ")]
#[case("CME_MINI:NQ1!", "NQ")]
#[case("MNQZ2025", "MNQ")]
#[case("GCJ6", "GC")]
#[case("MGCJ6", "MGC")]
#[case("cl1!", "CL")]
fn ticker_root_is_resolved_through_the_instrument_table(#[case] ticker: &str, #[case] root: &str) {
    let signal = parse(&format!(r#"{{"action": "buy", "ticker": "{ticker}"}}"#)).unwrap();
    assert_eq!(signal.instrument.map(|i| i.root), Some(root));
    assert_eq!(
        signal.ticker.as_deref(),
        Some(ticker),
        "ticker is kept as sent"
    );
}

fn padded_body(total: usize) -> Vec<u8> {
    let core = br#"{"action": "buy", "ticker": "MNQ1!"}"#;
    let mut body = core.to_vec();
    body.resize(total, b' ');
    body
}

#[test]
fn body_of_exactly_64_kib_is_accepted() {
    let body = padded_body(MAX_BODY_BYTES);
    assert!(parse_alert(&body, &AlertContext::default()).is_ok());
}

#[test]
fn body_over_64_kib_is_refused_with_413() {
    let body = padded_body(MAX_BODY_BYTES + 1);
    let e = parse_alert(&body, &AlertContext::default()).unwrap_err();
    assert_eq!(
        e,
        AlertError::TooLarge {
            size: 65_537,
            limit: 65_536
        }
    );
    assert_eq!(e.http_status(), 413);
}

#[test]
fn unknown_fields_are_ignored() {
    let signal = parse(
        r#"{"action": "buy", "ticker": "MNQ1!", "interval": "5", "secret": "x",
            "bot_uuid": "abc", "nested": {"a": [1, 2, {"b": null}]}, "risk_percentage": 0}"#,
    )
    .unwrap();
    assert_eq!(signal.action, SignalAction::Long);
}

#[rstest]
#[case::not_json("buy MNQ1! 2")]
#[case::empty("")]
#[case::whitespace(" \n ")]
#[case::truncated(r#"{"action": "buy""#)]
#[case::trailing_comma(r#"{"action": "buy",}"#)]
#[case::single_quotes("{'action': 'buy'}")]
fn invalid_json_is_refused_with_400(#[case] body: &str) {
    let e = refused(body);
    assert!(matches!(e, AlertError::InvalidJson { .. }), "{e:?}");
    assert_eq!(e.http_status(), 400);
}

#[rstest]
#[case::array(r#"[{"action": "buy"}]"#, "array")]
#[case::string(r#""buy""#, "string")]
#[case::number("42", "number")]
#[case::null("null", "null")]
#[case::boolean("true", "boolean")]
fn json_that_is_not_an_object_is_refused_with_400(#[case] body: &str, #[case] found: &str) {
    let e = refused(body);
    assert!(
        matches!(e, AlertError::NotAnObject { found: f } if f == found),
        "{e:?}"
    );
    assert_eq!(e.http_status(), 400);
}

#[test]
fn non_utf8_body_is_refused_with_400() {
    let e = parse_alert(b"{\"action\": \"b\xffy\"}", &AlertContext::default()).unwrap_err();
    assert_eq!(e, AlertError::NotUtf8 { offset: 13 });
    assert_eq!(e.http_status(), 400);
}

#[test]
fn a_field_sent_twice_is_refused() {
    let e = refused(r#"{"action": "buy", "ticker": "MNQ1!", "Action": "sell"}"#);
    assert_eq!(
        e,
        AlertError::DuplicateField {
            field: "action".to_string()
        }
    );
    assert_eq!(e.http_status(), 422);
}

#[test]
fn escaped_text_is_unescaped() {
    let signal =
        parse(r#"{"action": "b\u0075y", "ticker": "MNQ1!", "comment": "a \"b\""}"#).unwrap();
    assert_eq!(signal.action, SignalAction::Long);
    assert_eq!(signal.comment.as_deref(), Some("a \"b\""));
}
