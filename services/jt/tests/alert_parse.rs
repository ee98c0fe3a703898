//! `jt alert parse` run as the built binary: stdin → one JSON object on stdout (exit 0), or
//! `{"status", "error"}` on stderr (exit 2).

// A test binary: a failed `expect` in a helper is a failed test, with its message.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn jt_alert_parse(args: &[&str], body: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt"))
        .args(["alert", "parse"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the jt binary");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(body)
        .expect("writing the body");
    child.wait_with_output().expect("waiting for jt")
}

/// The one JSON object of a stream (and nothing else on it).
fn one_json_object(stream: &[u8]) -> Value {
    let text = std::str::from_utf8(stream).expect("UTF-8 output");
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let value = values
        .next()
        .unwrap_or_else(|| panic!("no JSON in {text:?}"))
        .unwrap_or_else(|e| panic!("not JSON: {e}: {text:?}"));
    assert!(
        values.next().is_none(),
        "more than one JSON value: {text:?}"
    );
    assert!(value.is_object(), "{text}");
    value
}

fn accepted(args: &[&str], body: &str) -> Value {
    let out = jt_alert_parse(args, body.as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    one_json_object(&out.stdout)
}

fn refused(args: &[&str], body: &[u8]) -> Value {
    let out = jt_alert_parse(args, body);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    one_json_object(&out.stderr)
}

#[test]
fn the_issue_example_prints_a_long_entry_of_2_mnq() {
    let signal = accepted(
        &[],
        r#"{"action":"buy","ticker":"MNQ1!","contracts":"2","position":"long"}"#,
    );
    assert_eq!(signal["action"], "long");
    assert_eq!(signal["ticker"], "MNQ1!");
    assert_eq!(signal["root"], "MNQ");
    assert!(signal["quantity"].is_number(), "{signal}");
    assert_eq!(signal["quantity"].to_string(), "2");
    assert_eq!(signal["price"], Value::Null);
    assert_eq!(signal["time"], Value::Null);
}

#[test]
fn numbers_are_json_numbers_with_every_decimal_and_time_is_rfc3339() {
    let out = jt_alert_parse(
        &[],
        br#"{"action":"sell","ticker":"GCJ6","contracts":1,"price":"2650.10","position":"flat","time":"2026-01-05T09:30:00-05:00"}"#,
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    // The exact digits sent, as a number (a float would print 2650.1).
    assert!(text.contains(r#""price":2650.10"#), "{text}");
    let signal = one_json_object(text.as_bytes());
    assert_eq!(signal["action"], "close_long");
    assert_eq!(signal["root"], "GC");
    assert_eq!(signal["time"], "2026-01-05T14:30:00Z");
}

#[test]
fn inverse_swaps_the_direction() {
    let signal = accepted(
        &["--inverse"],
        r#"{"action":"buy","ticker":"MNQ1!","position":"long"}"#,
    );
    assert_eq!(signal["action"], "short");
    assert_eq!(signal["inverted"], true);
}

#[test]
fn recorder_symbol_fills_a_missing_ticker() {
    let signal = accepted(&["--recorder-symbol", "MES1!"], r#"{"action":"sell"}"#);
    assert_eq!(signal["action"], "short");
    assert_eq!(signal["ticker"], Value::Null);
    assert_eq!(signal["root"], "MES");
}

#[test]
fn control_alert_has_no_root() {
    let signal = accepted(&[], r#"{"command":"kill"}"#);
    assert_eq!(signal["action"], "kill");
    assert_eq!(signal["root"], Value::Null);
}

#[test]
fn missing_ticker_exits_2_with_status_422() {
    let error = refused(&[], br#"{"action":"buy"}"#);
    assert_eq!(error["status"], 422);
    assert!(
        error["error"].as_str().unwrap().contains("no ticker"),
        "{error}"
    );
}

#[test]
fn unfilled_placeholder_exits_2_with_status_422() {
    let error = refused(
        &[],
        br#"{"action":"{{strategy.order.action}}","ticker":"MNQ1!","contracts":{{strategy.order.contracts}}}"#,
    );
    assert_eq!(error["status"], 422);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("the alert is not on a strategy, or the placeholder is misspelled"),
        "{error}"
    );
}

#[test]
fn invalid_json_exits_2_with_status_400() {
    let error = refused(&[], b"buy MNQ1! 2");
    assert_eq!(error["status"], 400);
}

#[test]
fn body_over_64_kib_exits_2_with_status_413() {
    let mut body = br#"{"action":"buy","ticker":"MNQ1!"}"#.to_vec();
    body.resize(64 * 1024 + 1, b' ');
    let error = refused(&[], &body);
    assert_eq!(error["status"], 413);
}

#[test]
fn unknown_root_exits_2_naming_the_ticker() {
    let error = refused(&[], br#"{"action":"buy","ticker":"AAPL"}"#);
    assert_eq!(error["status"], 422);
    assert!(error["error"].as_str().unwrap().contains("AAPL"), "{error}");
}

#[test]
fn the_derived_intent_and_every_override_are_shown() {
    let signal = accepted(
        &[],
        r#"{"action":"sell","ticker":"MNQ1!","position_size":1,"prev_position_size":2}"#,
    );
    assert_eq!(signal["action"], "reduce_long");
    assert_eq!(signal["intent"], "partial exit of 50% of the long");
    assert_eq!(signal["exit_fraction"].to_string(), "0.5");
    let signal = accepted(
        &[],
        r#"{"action":"buy","ticker":"MNQ1!","orderType":"limit","limitPrice":21000,"dollar_sl":30,"trail":1,"trail_trigger":8,"breakeven_offset":2,"risk_dollars":200,"same_direction_ignore":true}"#,
    );
    assert_eq!(
        signal["intent"],
        "long: entry, add or flip, decided per trader from the broker's position"
    );
    let overrides: Vec<&str> = signal["overrides"]
        .as_array()
        .expect("a list of overrides")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "stop: $30 per contract, trailing",
        "trailing stop, starts after 8 ticks of profit",
        "break-even: stop to entry + 2 ticks after the trader's trigger of profit",
        "size: risk $200 ÷ (stop ticks × tick value), rounded down",
        "same_direction_ignore: true",
        "limit entry at 21000, working until the end of the trading day or the next signal",
    ] {
        assert!(overrides.contains(&want), "{want:?} not in {overrides:?}");
    }
}

#[test]
fn a_contradiction_exits_2_with_status_422_and_says_why() {
    let error = refused(
        &[],
        br#"{"action":"buy","ticker":"MNQ1!","position_size":1,"prev_position_size":2}"#,
    );
    assert_eq!(error["status"], 422);
    let text = error["error"].as_str().unwrap();
    assert!(
        text.contains("the alert says buy but its position fields say partial exit"),
        "{text}"
    );
}

#[test]
fn a_time_far_in_the_future_exits_2_with_status_422() {
    let error = refused(
        &[],
        br#"{"action":"buy","ticker":"MNQ1!","time":"9999-12-31T23:59:59Z"}"#,
    );
    assert_eq!(error["status"], 422);
    assert!(
        error["error"].as_str().unwrap().contains("ahead"),
        "{error}"
    );
}
