use super::*;
use jt_alerts::{AlertContext, parse_alert};
use jt_domain::Side;
use jt_domain::alert::EntryKind;
use jt_domain::order::TimeInForce;
use jt_domain::settings::{PriceUnits, StopType};
use rust_decimal_macros::dec;

/// A payload as version 1 wrote it on ORDERS (captured from the build before sources existed,
/// `test_data/intent_v1_*.json`).
fn captured(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/test_data/intent_v1_{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

const SIGNAL: &str = "0195a3c4-1a2b-7c3d-8e4f-5a6b7c8d9e0f";
const TRADER: &str = "0195a3c4-1a2b-7c3d-8e4f-00000000000a";
const SUB: &str = "0195a3c4-1a2b-7c3d-8e4f-00000000000b";
const OWNER: &str = "0195a3c4-1a2b-7c3d-8e4f-00000000000c";
const RECORDER: &str = "0195a3c4-1a2b-7c3d-8e4f-00000000000d";
const LOGIN: &str = "0195a3c4-1a2b-7c3d-8e4f-00000000000e";

fn signal_intent(action: SignalAction) -> SignalIntent {
    SignalIntent {
        signal_id: SignalId(uuid(SIGNAL)),
        recorder_id: RecorderId(uuid(RECORDER)),
        trader_id: TraderId(uuid(TRADER)),
        action,
        symbol: "MNQ1!".into(),
        price: None,
        alert_time: None,
        delay_secs: 0,
        max_lag_secs: None,
        take_profit: None,
        stop_loss: None,
        exit_fraction: None,
        entry_order: None,
        risk: AlertRisk::default(),
        settings: Settings::default(),
    }
}

fn at() -> DateTime<Utc> {
    "2026-03-02T14:30:00.250Z".parse().unwrap()
}

fn message(action: IntentAction) -> IntentMessage {
    IntentMessage {
        intent_id: IntentId(Uuid::now_v7()),
        owner_id: UserId(uuid(OWNER)),
        sub_account_id: SubAccountId(uuid(SUB)),
        broker_account_id: BrokerAccountId(uuid(LOGIN)),
        created_at: at(),
        received_at: at(),
        action,
    }
}

fn round_trip(m: &IntentMessage) -> IntentMessage {
    let json = serde_json::to_vec(m).unwrap();
    IntentMessage::decode(IntentMessage::SCHEMA_VERSION, &json).unwrap()
}

#[test]
fn the_keys_of_existing_sources_are_unchanged() {
    // What version 1 queued, with the ids, keys and client order ids it had: an intent queued
    // before the deploy resumes after it and finds its orders at the broker.
    let entry = IntentMessage::decode(1, &captured("signal_entry")).unwrap();
    assert_eq!(
        entry.intent_id.to_string(),
        "ed045436-c7a9-8a04-b9af-39b48cab7211"
    );
    assert_eq!(
        entry.idempotency_key(),
        format!("signal:{SIGNAL}:trader:{TRADER}")
    );
    assert_eq!(
        entry.client_order_id(),
        "jted045436c7a98a04b9af39b48cab7211"
    );
    assert_eq!(entry.message_id(), "ed045436c7a98a04b9af39b48cab7211");
    let control = IntentMessage::decode(1, &captured("control_flatten")).unwrap();
    assert_eq!(
        control.intent_id.to_string(),
        "4623e7ba-7b15-835b-bbbe-496e63676f92"
    );
    assert_eq!(
        control.idempotency_key(),
        format!("signal:{SIGNAL}:account:{SUB}")
    );
    assert_eq!(
        control.client_order_id(),
        "jt4623e7ba7b15835bbbbe496e63676f92"
    );

    // The same intents made in the new shape today derive the same ids and keys.
    let made = IntentMessage::signal(
        UserId(uuid(OWNER)),
        SubAccountId(uuid(SUB)),
        BrokerAccountId(uuid(LOGIN)),
        at(),
        signal_intent(SignalAction::Long),
    );
    assert_eq!(made.intent_id, entry.intent_id);
    assert_eq!(made.idempotency_key(), entry.idempotency_key());
    assert_eq!(made.client_order_id(), entry.client_order_id());
    let flatten = IntentMessage::control(
        UserId(uuid(OWNER)),
        SubAccountId(uuid(SUB)),
        BrokerAccountId(uuid(LOGIN)),
        at(),
        ControlIntent::flatten_account(ControlCause::Signal {
            signal_id: SignalId(uuid(SIGNAL)),
            recorder_id: RecorderId(uuid(RECORDER)),
            command: SignalAction::Kill,
        }),
    );
    assert_eq!(flatten.intent_id, control.intent_id);
    assert_eq!(flatten.idempotency_key(), control.idempotency_key());
    assert_eq!(flatten.client_order_id(), control.client_order_id());
}

#[test]
fn an_intent_queued_before_sources_existed_is_read_from_its_captured_payload() {
    let entry = IntentMessage::decode(1, &captured("signal_entry")).unwrap();
    assert_eq!(entry.owner_id, UserId(uuid(OWNER)));
    assert_eq!(entry.broker_account_id, BrokerAccountId(uuid(LOGIN)));
    assert_eq!(entry.received_at, at());
    let IntentAction::Signal(s) = &entry.action else {
        panic!("a trader's intent is a signal's share: {entry:?}");
    };
    assert_eq!(s.trader_id, TraderId(uuid(TRADER)));
    assert_eq!(s.recorder_id, RecorderId(uuid(RECORDER)));
    assert_eq!(s.action, SignalAction::Long);
    assert_eq!(s.symbol, "MNQ1!");
    assert_eq!(s.price, Some(dec!(21001.5)));
    assert_eq!(s.alert_time, "2026-03-02T14:30:00Z".parse().ok());
    assert_eq!((s.delay_secs, s.max_lag_secs), (2, Some(45)));
    assert_eq!(
        s.take_profit,
        Some(ExitLevel::Distance {
            value: dec!(40),
            units: Some(PriceUnits::Ticks)
        })
    );
    assert_eq!(
        s.stop_loss,
        Some(StopOverride {
            level: ExitLevel::Dollars { amount: dec!(30) },
            stop_type: Some(StopType::Trailing),
        })
    );
    let order = s.entry_order.unwrap();
    assert_eq!(
        (order.kind, order.limit_price, order.time_in_force),
        (EntryKind::Limit, Some(dec!(21000.25)), TimeInForce::Day)
    );
    assert_eq!(
        s.risk.sizing,
        Some(jt_domain::RiskSizing::Percent { percent: dec!(1.5) })
    );
    assert_eq!(s.risk.trail.and_then(|t| t.trigger_ticks), Some(dec!(8)));
    assert_eq!(s.settings.initial_position_size, 2);
    assert!(s.settings.sl_enabled && s.settings.dca_enabled);
    // Staleness and priority as before: an entry, judged from its time with its max_lag.
    assert!(entry.may_add_exposure());
    assert_eq!(
        entry.staleness(),
        Some(Staleness {
            alert_time: s.alert_time,
            delay_secs: 2,
            limit_secs: 45
        })
    );

    let partial = IntentMessage::decode(1, &captured("signal_partial_exit")).unwrap();
    let IntentAction::Signal(p) = &partial.action else {
        panic!("{partial:?}");
    };
    assert_eq!(p.action, SignalAction::ReduceLong);
    assert_eq!(
        p.exit_fraction.map(|f| f.to_string()),
        Some("0.6666666666666666666666666667".into()),
        "every digit kept"
    );
    assert!(!partial.may_add_exposure());
    assert_eq!(partial.staleness(), None, "an exit is never stale");

    let control = IntentMessage::decode(1, &captured("control_flatten")).unwrap();
    assert_eq!(
        control.action,
        IntentAction::Control(ControlIntent {
            action: ControlAction::Flatten,
            scope: ControlScope::Account,
            cause: ControlCause::Signal {
                signal_id: SignalId(uuid(SIGNAL)),
                recorder_id: RecorderId(uuid(RECORDER)),
                command: SignalAction::Flatten,
            },
        })
    );
    assert_eq!(control.signal_id(), Some(SignalId(uuid(SIGNAL))));
    assert_eq!((control.trader_id(), control.symbol()), (None, None));

    // A version-1 intent queued before #17's fields existed still reads.
    let mut old: serde_json::Value = serde_json::from_slice(&captured("signal_entry")).unwrap();
    for key in ["exit_fraction", "entry_order", "risk"] {
        old.as_object_mut().unwrap().remove(key);
    }
    let read = IntentMessage::decode(1, old.to_string().as_bytes()).unwrap();
    let IntentAction::Signal(s) = read.action else {
        panic!()
    };
    assert_eq!((s.entry_order, s.risk), (None, AlertRisk::default()));
    // A version this build does not know is refused with the versions it reads.
    assert!(matches!(
        IntentMessage::decode(3, b"{}"),
        Err(DecodeError::UnknownSchemaVersion { found: 3, .. })
    ));
}

#[test]
fn an_intent_carries_the_alerts_partial_exit_order_type_and_risk_exactly() {
    let signal = parse_alert(
        br#"{"action":"buy","ticker":"MNQ1!","orderType":"limit","limitPrice":21000.25,
             "dollar_sl":30,"trail":1,"trail_trigger":8,"risk_percentage":1.5}"#,
        &AlertContext::default(),
    )
    .unwrap();
    let partial = parse_alert(
        br#"{"action":"sell","ticker":"MNQ1!","position_size":1,"prev_position_size":3}"#,
        &AlertContext::default(),
    )
    .unwrap();
    let intent = message(IntentAction::Signal(SignalIntent {
        action: partial.action,
        stop_loss: signal.stop_loss,
        exit_fraction: partial.exit_fraction,
        entry_order: signal.entry_order,
        risk: signal.risk,
        ..signal_intent(SignalAction::Long)
    }));
    let back = round_trip(&intent);
    assert_eq!(back, intent);
    let IntentAction::Signal(s) = &back.action else {
        panic!()
    };
    assert_eq!(
        s.exit_fraction.map(|f| f.round_dp(4).to_string()),
        Some("0.6667".into())
    );
    // An intent written before these fields existed still reads.
    let mut old = serde_json::to_value(&intent).unwrap();
    for key in ["exit_fraction", "entry_order", "risk"] {
        old["action"]["signal"].as_object_mut().unwrap().remove(key);
    }
    let back = IntentMessage::decode(2, old.to_string().as_bytes()).unwrap();
    let IntentAction::Signal(s) = back.action else {
        panic!()
    };
    assert_eq!(s.entry_order, None);
}

#[test]
fn an_intent_with_a_setting_or_field_this_build_does_not_know_is_read_not_refused() {
    // Written by a newer build during a rolling deploy: one more setting, one more field in
    // the source's data, one more field on the message.
    let intent = message(IntentAction::Signal(SignalIntent {
        settings: Settings {
            initial_position_size: 4,
            ..Settings::default()
        },
        ..signal_intent(SignalAction::Long)
    }));
    let mut json = serde_json::to_value(&intent).unwrap();
    json["action"]["signal"]["settings"]["a_setting_added_later"] = serde_json::json!(1.5);
    json["action"]["signal"]["a_field_added_later"] = serde_json::json!([1, 2]);
    json["a_field_added_later"] = serde_json::json!("x");
    let read = IntentMessage::decode(2, json.to_string().as_bytes()).unwrap();
    assert_eq!(read, intent);
    // Version 1 too.
    let mut old: serde_json::Value = serde_json::from_slice(&captured("signal_entry")).unwrap();
    old["settings"]["a_setting_added_later"] = serde_json::json!(true);
    old["a_field_added_later"] = serde_json::json!({"x": 1});
    assert!(IntentMessage::decode(1, old.to_string().as_bytes()).is_ok());
}

#[test]
fn every_source_round_trips_through_json_exactly() {
    let copy = message(IntentAction::Copy(CopyIntent {
        leader_sub_account_id: SubAccountId(Uuid::now_v7()),
        leader_event_id: "fill-88123".into(),
        follower_id: FollowerId(Uuid::now_v7()),
        symbol: "MNQ1!".into(),
        leader: LeaderChange {
            symbol: "NQ1!".into(),
            prev_net: 1,
            new_net: -2,
            price: Some(dec!(21000.25)),
        },
        step: CopyAction::Reverse {
            close_direction: Direction::Long,
            expected_close_qty: 10,
            entry_side: Side::Sell,
            entry_qty: 20,
            take_profit: true,
            stop: true,
        },
        take_profit: Some(dec!(20950.50)),
        stop_loss: Some(dec!(21040.75)),
        max_lag_secs: Some(5),
        protection: None,
    }));
    let manual = message(IntentAction::Manual(ManualIntent {
        idempotency_key: "req-7f3".into(),
        requested_by: UserId(uuid(OWNER)),
        symbol: "MES1!".into(),
        trade: ManualTrade::Entry {
            direction: Direction::Short,
            qty: 3,
            order: Some(EntryOrderSpec {
                kind: EntryKind::Limit,
                limit_price: Some(dec!(6001.25)),
                stop_price: None,
                time_in_force: TimeInForce::Gtc,
            }),
            reference_price: None,
            take_profit: Some(ExitLevel::Distance {
                value: dec!(12.5),
                units: Some(PriceUnits::Points),
            }),
            stop_loss: Some(StopOverride {
                level: ExitLevel::Price {
                    price: dec!(6010.00),
                },
                stop_type: None,
            }),
        },
        max_lag_secs: None,
    }));
    let exit = message(IntentAction::Manual(ManualIntent {
        idempotency_key: "req-7f4".into(),
        requested_by: UserId(uuid(OWNER)),
        symbol: "MES1!".into(),
        trade: ManualTrade::Exit { qty: Some(1) },
        max_lag_secs: None,
    }));
    let control = message(IntentAction::Control(ControlIntent::close_symbol(
        "MNQ1!",
        ControlCause::RiskBreach {
            breach_id: BreachId(Uuid::now_v7()),
            rule: "max_daily_loss".into(),
        },
    )));
    let repair = message(IntentAction::Repair(RepairIntent {
        cause_id: Uuid::now_v7(),
        symbol: "MNQ1!".into(),
        direction: Direction::Long,
        take_profit: true,
        stop: false,
        trader_id: Some(TraderId(Uuid::now_v7())),
        settings: Settings {
            tp_targets: vec![jt_domain::settings::TpTarget {
                value: dec!(20),
                trim: dec!(1),
            }],
            ..Settings::default()
        },
    }));
    let protect = message(IntentAction::Copy(CopyIntent {
        leader_event_id: "protect:8812:0".into(),
        step: CopyAction::Nothing,
        take_profit: None,
        stop_loss: None,
        protection: Some(crate::CopyProtection {
            direction: Direction::Long,
            kind: crate::ProtectionKind::Stop,
            price: dec!(20990.25),
        }),
        ..match &copy.action {
            IntentAction::Copy(c) => c.clone(),
            _ => unreachable!(),
        }
    }));
    // A protection copy only protects: never judged stale, never refused as new exposure.
    assert!(!protect.may_add_exposure() && protect.staleness().is_none());
    assert_eq!(protect.action_name(), "copy protection");
    for m in [&copy, &manual, &exit, &control, &repair, &protect] {
        assert_eq!(&round_trip(m), m);
    }
    // Decimals travel as numbers with every digit, never through a float.
    let text = serde_json::to_string(&manual).unwrap();
    assert!(text.contains(r#""limit_price":6001.25"#), "{text}");
    assert!(text.contains(r#""price":6010.00"#), "{text}");
    // What each source means for the lifecycle.
    assert!(copy.may_add_exposure() && manual.may_add_exposure());
    assert!(!exit.may_add_exposure() && !control.may_add_exposure());
    assert!(!repair.may_add_exposure());
    assert_eq!(copy.staleness().map(|s| s.limit_secs), Some(5));
    assert_eq!(
        manual.staleness().map(|s| s.limit_secs),
        Some(DEFAULT_MANUAL_MAX_LAG_SECS)
    );
    assert_eq!(control.symbol(), Some("MNQ1!"));
    assert_eq!(repair.trader_id(), repair_trader(&repair));
    assert_eq!(
        [&copy, &manual, &control, &repair].map(|m| m.source().as_str()),
        ["copy", "manual", "control", "repair"]
    );
}

fn repair_trader(m: &IntentMessage) -> Option<TraderId> {
    match &m.action {
        IntentAction::Repair(r) => r.trader_id,
        _ => None,
    }
}

#[test]
fn the_ids_of_new_sources_follow_their_cause() {
    let (owner, sub, login) = (
        UserId(uuid(OWNER)),
        SubAccountId(uuid(SUB)),
        BrokerAccountId(uuid(LOGIN)),
    );
    let manual = |key: &str, sub: SubAccountId, owner: UserId| {
        IntentMessage::manual(
            owner,
            sub,
            login,
            at(),
            ManualIntent {
                idempotency_key: key.into(),
                requested_by: owner,
                symbol: "MNQ1!".into(),
                trade: ManualTrade::Exit { qty: None },
                max_lag_secs: None,
            },
        )
    };
    // The same request sent twice is one intent: one id, one key, one client order id.
    let a = manual("k1", sub, owner);
    let b = manual("k1", sub, owner);
    assert_eq!(
        (a.intent_id, a.idempotency_key(), a.client_order_id()),
        (b.intent_id, b.idempotency_key(), b.client_order_id())
    );
    assert_eq!(
        a.idempotency_key(),
        format!("manual:{owner}:k1:account:{sub}")
    );
    // Another key, another account, another owner: another intent.
    let other_sub = SubAccountId(Uuid::now_v7());
    let other_owner = UserId(Uuid::now_v7());
    assert_ne!(a.intent_id, manual("k2", sub, owner).intent_id);
    assert_ne!(a.intent_id, manual("k1", other_sub, owner).intent_id);
    assert_ne!(a.intent_id, manual("k1", sub, other_owner).intent_id);
    assert_ne!(
        a.idempotency_key(),
        manual("k1", sub, other_owner).idempotency_key()
    );

    let request = Uuid::now_v7();
    let flatten = |cause: ControlCause| {
        IntentMessage::control(
            owner,
            sub,
            login,
            at(),
            ControlIntent::flatten_account(cause),
        )
    };
    let api = flatten(ControlCause::api(request, owner, Some("end of day".into())));
    assert_eq!(
        api.intent_id,
        flatten(ControlCause::api(request, owner, None)).intent_id
    );
    assert_eq!(
        api.idempotency_key(),
        format!("control:{request}:account:{sub}")
    );
    // A request id that happens to equal a signal id is still another intent.
    let same_as_signal = flatten(ControlCause::Signal {
        signal_id: SignalId(request),
        recorder_id: RecorderId(uuid(RECORDER)),
        command: SignalAction::Flatten,
    });
    assert_ne!(api.intent_id, same_as_signal.intent_id);

    let copy = |event: &str, follower: FollowerId| {
        IntentMessage::copy(
            owner,
            sub,
            login,
            at(),
            CopyIntent {
                leader_sub_account_id: SubAccountId(Uuid::nil()),
                leader_event_id: event.into(),
                follower_id: follower,
                symbol: "MNQ1!".into(),
                leader: LeaderChange {
                    symbol: "MNQ1!".into(),
                    prev_net: 0,
                    new_net: 1,
                    price: None,
                },
                step: CopyAction::Nothing,
                take_profit: None,
                stop_loss: None,
                max_lag_secs: None,
                protection: None,
            },
        )
    };
    let f = FollowerId(Uuid::now_v7());
    assert_eq!(copy("fill-1", f).intent_id, copy("fill-1", f).intent_id);
    assert_ne!(copy("fill-1", f).intent_id, copy("fill-2", f).intent_id);
    assert_eq!(
        copy("fill-1", f).idempotency_key(),
        format!("copy:fill-1:follower:{f}")
    );
    // Every client order id is ours (the `jt` prefix) and fits every broker's field.
    for m in [a, api, copy("fill-1", f)] {
        let id = m.client_order_id();
        assert!(id.starts_with("jt") && id.len() == 34, "{id}");
    }
}
