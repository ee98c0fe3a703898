//! No input can panic the parser (DOMAIN.md §2: "Never a 500 for any body"): arbitrary bytes,
//! JSON-ish text and structured alerts built from the accepted vocabulary. Every outcome is a
//! signal or a 4xx error; every accepted signal survives the wire (JSON round trip) and the
//! dedup and staleness functions.

use chrono::{DateTime, Utc};
use jt_alerts::{AlertContext, Signal, parse_alert};
use proptest::prelude::*;

fn check(body: &[u8], ctx: &AlertContext<'_>) -> Result<(), TestCaseError> {
    match parse_alert(body, ctx) {
        Ok(signal) => {
            let json = serde_json::to_string(&signal)
                .map_err(|e| TestCaseError::fail(format!("serialize: {e}")))?;
            let back: Signal = serde_json::from_str(&json)
                .map_err(|e| TestCaseError::fail(format!("deserialize {json}: {e}")))?;
            prop_assert_eq!(&back, &signal);
            prop_assert_eq!(signal.instrument.is_none(), signal.action.is_control());
            let now: DateTime<Utc> = DateTime::from_timestamp(1_767_623_400, 0).unwrap_or_default();
            let key = jt_alerts::DedupKey::for_signal(&signal, "token", body, now);
            prop_assert!(!key.msg_id().is_empty());
            let _ = signal.freshness(30, now, now);
            let _ = jt_alerts::check_alert_time(signal.time, now);
        }
        Err(e) => {
            prop_assert!(matches!(e.http_status(), 400 | 413 | 422), "{:?}", e);
            prop_assert!(!e.to_string().is_empty());
            prop_assert!(!e.kind().is_empty());
        }
    }
    Ok(())
}

fn contexts() -> impl Strategy<Value = AlertContext<'static>> {
    (
        prop::option::of(prop::sample::select(vec!["MNQ1!", "", "ZZZ", "GCJ6"])),
        prop::option::of(prop::sample::select(vec!["MESZ5", "AAPL", " "])),
        any::<bool>(),
    )
        .prop_map(|(recorder_symbol, custom_ticker, inverse)| AlertContext {
            recorder_symbol,
            custom_ticker,
            inverse,
        })
}

const KEYS: &[&str] = &[
    "action",
    "ACTION",
    "data",
    "command",
    "ticker",
    "symbol",
    "tv_instrument",
    "contracts",
    "quantity",
    "qty",
    "order",
    "price",
    "signalPrice",
    "trigger_price",
    "position",
    "market_position",
    "sentiment",
    "strategy_info",
    "prev_position",
    "time",
    "timenow",
    "timestamp",
    "date",
    "comment",
    "delay",
    "max_lag",
    "tp",
    "sl",
    "takeProfit",
    "stopLoss",
    "type",
    "ticks",
    "points",
    "amount",
    "percent",
    "value",
    "units",
    "limitPrice",
    "stopPrice",
    "trailAmount",
    "pnlAmount",
    "market_position",
    "prev_market_position",
    "unknown",
    "order_action",
    "side",
    "signal",
    "direction",
    "instrument",
    "size",
    "close",
    "last",
    "order_type",
    "orderType",
    "limit_price",
    "stop_price",
    "timeInForce",
    "position_size",
    "prev_position_size",
    "market_position_size",
    "prev_market_position_size",
    "dollar_tp",
    "dollar_sl",
    "percentage_tp",
    "sl_percent",
    "tp_ticks",
    "trail",
    "trail_stop",
    "trail_trigger",
    "trail_freq",
    "breakeven",
    "breakeven_offset",
    "risk",
    "risk_dollars",
    "risk_percentage",
    "same_direction_ignore",
    "dollars",
    "takeProfit2",
    "update_tp",
];

const SCALARS: &[&str] = &[
    "\"buy\"",
    "\"SELL\"",
    "\"close\"",
    "\"add\"",
    "\"flatten\"",
    "\"kill\"",
    "\"long\"",
    "\"short\"",
    "\"flat\"",
    "\"bullish\"",
    "\"MNQ1!\"",
    "\"CME_MINI:NQ1!\"",
    "\"GCJ2026\"",
    "\"\"",
    "\"{{strategy.order.action}}\"",
    "\"{{\"",
    "\"trailing\"",
    "\"limit\"",
    "\"stop_limit\"",
    "\"MKT\"",
    "\"gtc\"",
    "true",
    "false",
    "-2",
    "0.5",
    "\"ticks\"",
    "\"2026-01-05T14:30:00Z\"",
    "\"2026-02-30T10:00:00\"",
    "\"1767623400123\"",
    "1767623400",
    "\"2\"",
    "\" 2.50 \"",
    "2",
    "0",
    "-0",
    "-1",
    "0.000000000000000000000000001",
    "1e28",
    "1e29",
    "1E-28",
    "123456789012345678901234567890",
    "99999999999999999999999999999999999999999999",
    "1.5",
    "60",
    "61",
    "86401",
    "true",
    "null",
    "[]",
    "[1,\"a\",{}]",
    "{}",
    "\"\\u0000\\ud83d\\ude00\"",
];

fn json_value(depth: u32) -> BoxedStrategy<String> {
    let scalar = prop::sample::select(SCALARS).prop_map(str::to_string);
    if depth == 0 {
        return scalar.boxed();
    }
    prop_oneof![
        4 => scalar,
        1 => json_object(depth - 1),
    ]
    .boxed()
}

fn json_object(depth: u32) -> BoxedStrategy<String> {
    prop::collection::vec((prop::sample::select(KEYS), json_value(depth)), 0..8)
        .prop_map(|fields| {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            format!("{{{}}}", inner.join(", "))
        })
        .boxed()
}

const ACTIONS: &[&str] = &[
    "buy",
    "sell",
    "Long",
    "SHORT",
    "close",
    "exit",
    "flatten",
    "close_long",
    "close short",
    "exit-short",
    "cancel",
    "add",
    "hold",
];
const TICKERS: &[&str] = &[
    "MNQ1!",
    "CME_MINI:NQ1!",
    "GCJ6",
    "MGCZ2025",
    "cl1!",
    "AAPL",
    "",
];

/// Mostly-valid alerts: an action and a ticker, plus random fields from the vocabulary, so
/// that the accepted path (serialization, dedup, staleness) is exercised too.
fn mostly_valid_alert() -> impl Strategy<Value = String> {
    (
        prop::sample::select(ACTIONS),
        prop::sample::select(TICKERS),
        prop::collection::vec((prop::sample::select(KEYS), json_value(1)), 0..3),
    )
        .prop_map(|(action, ticker, extra)| {
            let mut fields = vec![
                format!("\"action\": \"{action}\""),
                format!("\"ticker\": \"{ticker}\""),
            ];
            fields.extend(
                extra
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("action") && *k != "ticker")
                    .map(|(k, v)| format!("\"{k}\": {v}")),
            );
            format!("{{{}}}", fields.join(", "))
        })
}

/// A valid alert with some bytes replaced by arbitrary ones.
fn mutated_alert() -> impl Strategy<Value = Vec<u8>> {
    (
        mostly_valid_alert(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(body, mutations)| {
            let mut bytes = body.into_bytes();
            for (index, byte) in mutations {
                let i = index.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..1024),
        ctx in contexts(),
    ) {
        check(&body, &ctx)?;
    }

    #[test]
    fn json_ish_text_never_panics(
        body in "[{}\\[\\]\":,0-9a-zA-Z_.!+ eE\\-\\\\]{0,200}",
        ctx in contexts(),
    ) {
        check(body.as_bytes(), &ctx)?;
    }

    #[test]
    fn alerts_built_from_the_vocabulary_never_panic(
        body in json_object(2),
        ctx in contexts(),
    ) {
        check(body.as_bytes(), &ctx)?;
    }

    #[test]
    fn mostly_valid_alerts_never_panic(
        body in mostly_valid_alert(),
        ctx in contexts(),
    ) {
        check(body.as_bytes(), &ctx)?;
    }

    #[test]
    fn mutated_alerts_never_panic(
        body in mutated_alert(),
        ctx in contexts(),
    ) {
        check(&body, &ctx)?;
    }
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let body = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let e = parse_alert(body.as_bytes(), &AlertContext::default()).unwrap_err();
    assert_eq!(e.http_status(), 400);
    let body = format!(
        "{{\"action\": \"buy\", \"ticker\": \"MNQ1!\", \"x\": {}{}}}",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let e = parse_alert(body.as_bytes(), &AlertContext::default()).unwrap_err();
    assert_eq!(e.http_status(), 400);
}
