//! Settings persistence is total: every setting of `jt_domain::Settings` is stored under its
//! domain name and comes back unchanged, for recorders, trader overrides and intents; the
//! executor's targets carry the resolved settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::TestStore;
use jt_domain::settings::{
    ClockTime, DirectionFilter, PriceUnits, StopType, TimeWindow, TpTarget, TrimUnits,
};
use jt_domain::{Settings, SettingsOverrides, Side};
use jt_store::repo::intents::NewIntent;
use jt_store::repo::recorders::NewRecorder;
use jt_store::repo::traders::NewTrader;
use jt_store::{IntentId, IntentKind, IntentSource, StoreError};
use rust_decimal_macros::dec;

/// A value different from the default for every setting. Written without `..Default`, so a
/// setting added to the domain breaks this test until it is given a value here too.
fn every_setting_non_default() -> Settings {
    Settings {
        multiplier: dec!(2.5),
        max_contracts: 7,
        initial_position_size: 2,
        add_position_size: 3,
        tp_targets: vec![
            TpTarget {
                value: dec!(10),
                trim: dec!(40),
            },
            TpTarget {
                value: dec!(20.5),
                trim: dec!(60),
            },
        ],
        tp_units: PriceUnits::Points,
        trim_units: TrimUnits::Percent,
        sl_enabled: true,
        sl_amount: dec!(12.5),
        sl_units: PriceUnits::Percent,
        sl_type: StopType::Trailing,
        trail_trigger: dec!(4),
        trail_freq: dec!(2),
        break_even_enabled: true,
        break_even_ticks: dec!(8),
        break_even_offset: dec!(1),
        dca_enabled: true,
        add_delay: 5,
        signal_cooldown: 10,
        max_signals_per_session: 3,
        max_daily_loss: dec!(500.25),
        time_filter_1: TimeWindow {
            enabled: true,
            start: ClockTime::hm(9, 30).unwrap(),
            stop: ClockTime::hm(16, 0).unwrap(),
        },
        time_filter_2: TimeWindow {
            enabled: true,
            start: ClockTime::hm(18, 0).unwrap(),
            stop: ClockTime::hm(2, 0).unwrap(),
        },
        time_zone: "Europe/London".parse().unwrap(),
        auto_flat_after_cutoff: true,
        custom_ticker: Some("MES1!".into()),
        inverse_strategy: true,
        recording_enabled: false,
        simulation_mode: true,
        stale_after_secs: 45,
        direction_filter: DirectionFilter::LongOnly,
        max_contracts_per_trade: 4,
        same_direction_ignore: true,
    }
}

/// Every setting of the fixture differs from its default, by name.
#[test]
fn the_fixture_changes_every_setting() {
    let custom = serde_json::to_value(every_setting_non_default()).unwrap();
    let default = serde_json::to_value(Settings::default()).unwrap();
    for name in Settings::NAMES {
        assert!(
            custom.get(name).is_some(),
            "{name} missing from the fixture"
        );
        assert_ne!(
            custom[name], default[name],
            "{name} has its default value in the fixture"
        );
    }
    assert_eq!(custom.as_object().unwrap().len(), Settings::NAMES.len());
    every_setting_non_default().validate().unwrap();
}

async fn stored_keys(t: &TestStore, sql: &str) -> BTreeSet<String> {
    let raw = t.raw_strings(sql).await;
    let v: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

fn names() -> BTreeSet<String> {
    Settings::NAMES.iter().map(|s| s.to_string()).collect()
}

async fn every_setting_round_trips(t: &TestStore) {
    let owner = t.user("settings@example.com").await;
    let custom = every_setting_non_default();
    let (recorder, _) = t
        .recorders()
        .create(
            owner.id,
            NewRecorder {
                name: "all".into(),
                symbol: None,
                settings: custom.clone(),
                commission_per_contract: dec!(0.62),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        t.recorders()
            .get(owner.id, recorder.id)
            .await
            .unwrap()
            .settings,
        custom
    );

    // Every setting is stored under its domain name (PostgreSQL jsonb, SQLite text).
    let cast = match t.engine {
        common::Engine::Postgres => "settings::text",
        common::Engine::Sqlite => "settings",
    };
    assert_eq!(
        stored_keys(t, &format!("SELECT {cast} FROM recorders")).await,
        names()
    );

    // Back to defaults and again to custom through update.
    let (plain, _) = t.recorder(&owner, "plain").await;
    assert_eq!(
        t.recorders()
            .update_settings(owner.id, plain.id, &custom)
            .await
            .unwrap()
            .settings,
        custom
    );

    // Trader overrides: every setting overridden, each stored and resolved.
    let (_, sub) = t.account(&owner, "over").await;
    let overrides: SettingsOverrides =
        serde_json::from_value(serde_json::to_value(&custom).unwrap()).unwrap();
    assert!(overrides.inherited().is_empty());
    let trader = t
        .traders()
        .create(
            owner.id,
            NewTrader {
                recorder: plain.id,
                sub_account: sub.id,
                enabled: true,
                overrides: overrides.clone(),
            },
        )
        .await
        .unwrap();
    // The recorder is back at defaults so that every resolved value comes from the override.
    t.recorders()
        .update_settings(owner.id, plain.id, &Settings::default())
        .await
        .unwrap();
    assert_eq!(
        t.traders()
            .get(owner.id, trader.id)
            .await
            .unwrap()
            .overrides,
        overrides
    );
    let (_, effective) = t
        .traders()
        .effective_settings(owner.id, trader.id)
        .await
        .unwrap();
    assert_eq!(effective, custom);
    let override_cast = match t.engine {
        common::Engine::Postgres => "overrides::text",
        common::Engine::Sqlite => "overrides",
    };
    assert_eq!(
        stored_keys(t, &format!("SELECT {override_cast} FROM traders")).await,
        names()
    );

    // The resolved settings stored with an intent.
    let intent = t
        .intents()
        .create(NewIntent {
            id: IntentId::new(),
            owner: owner.id,
            sub_account: sub.id,
            trader: Some(trader.id),
            signal: None,
            source: IntentSource::Manual,
            idempotency_key: "settings-intent".into(),
            kind: IntentKind::Entry,
            symbol: "MES".into(),
            contract: None,
            side: Some(Side::Sell),
            quantity: 5,
            settings: custom.clone(),
            plan: serde_json::json!({"entry": "market"}),
            skip_reason: None,
        })
        .await
        .unwrap();
    assert_eq!(
        t.intents()
            .get(owner.id, intent.intent().id)
            .await
            .unwrap()
            .settings,
        custom
    );
}

async fn unset_overrides_inherit_and_targets_resolve(t: &TestStore) {
    let owner = t.user("inherit@example.com").await;
    let recorder_settings = Settings {
        dca_enabled: true,
        max_contracts: 9,
        ..Settings::default()
    };
    let (recorder, _) = t
        .recorders()
        .create(
            owner.id,
            NewRecorder {
                name: "r".into(),
                symbol: None,
                settings: recorder_settings,
                commission_per_contract: dec!(0),
            },
        )
        .await
        .unwrap();
    let (_, sub_a) = t.account(&owner, "first").await;
    let (_, sub_b) = t.account(&owner, "second").await;
    let (_, sub_c) = t.account(&owner, "third").await;
    let five = SettingsOverrides {
        multiplier: Some(dec!(5)),
        ..SettingsOverrides::default()
    };
    let a = t
        .traders()
        .create(
            owner.id,
            NewTrader {
                recorder: recorder.id,
                sub_account: sub_a.id,
                enabled: true,
                overrides: five,
            },
        )
        .await
        .unwrap();
    let b = t.trader(owner.id, recorder.id, sub_b.id).await;
    t.traders()
        .create(
            owner.id,
            NewTrader {
                recorder: recorder.id,
                sub_account: sub_c.id,
                enabled: false,
                overrides: SettingsOverrides::default(),
            },
        )
        .await
        .unwrap();

    let targets = t
        .traders()
        .execution_targets(owner.id, recorder.id)
        .await
        .unwrap();
    assert_eq!(targets.len(), 2, "disabled traders are not targets");
    let ta = targets.iter().find(|x| x.trader.id == a.id).unwrap();
    let tb = targets.iter().find(|x| x.trader.id == b.id).unwrap();
    assert_eq!(ta.settings.multiplier, dec!(5));
    assert!(ta.settings.dca_enabled, "inherited");
    assert_eq!(ta.settings.max_contracts, 9, "inherited");
    assert_eq!(tb.settings.multiplier, dec!(1));
    // Every target carries its account, with the flags the executor checks.
    assert_eq!(ta.sub_account.id, sub_a.id);
    assert_eq!(ta.account.id, sub_a.broker_account);
    assert!(ta.account.has_credentials && ta.account.enabled);
    assert_eq!(tb.sub_account.id, sub_b.id);

    // A change on the recorder reaches every inheriting trader at once.
    let changed = Settings {
        dca_enabled: false,
        max_contracts: 2,
        ..Settings::default()
    };
    t.recorders()
        .update_settings(owner.id, recorder.id, &changed)
        .await
        .unwrap();
    let targets = t
        .traders()
        .execution_targets(owner.id, recorder.id)
        .await
        .unwrap();
    assert!(
        targets
            .iter()
            .all(|x| !x.settings.dca_enabled && x.settings.max_contracts == 2)
    );
}

async fn invalid_settings_are_refused_by_name(t: &TestStore) {
    let owner = t.user("invalid@example.com").await;
    let bad = Settings {
        multiplier: dec!(0),
        ..Settings::default()
    };
    let err = t
        .recorders()
        .create(
            owner.id,
            NewRecorder {
                name: "bad".into(),
                symbol: None,
                settings: bad,
                commission_per_contract: dec!(0),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { .. }) && err.to_string().contains("multiplier"),
        "{err}"
    );

    let (recorder, _) = t.recorder(&owner, "ok").await;
    let (_, sub) = t.account(&owner, "acc").await;
    // sl_enabled without an amount is invalid once resolved.
    let overrides = SettingsOverrides {
        sl_enabled: Some(true),
        ..SettingsOverrides::default()
    };
    let err = t
        .traders()
        .create(
            owner.id,
            NewTrader {
                recorder: recorder.id,
                sub_account: sub.id,
                enabled: true,
                overrides,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sl_amount"), "{err}");
    assert!(t.traders().list(owner.id).await.unwrap().is_empty());
}

/// A settings document with a name the domain does not know is reported, never defaulted.
async fn unknown_stored_setting_is_reported(t: &TestStore) {
    use sea_orm::ConnectionTrait;
    let owner = t.user("corrupt@example.com").await;
    let (recorder, _) = t.recorder(&owner, "c").await;
    t.connection()
        .execute_unprepared(r#"UPDATE recorders SET settings = '{"avg_down_enabled": true}'"#)
        .await
        .unwrap();
    let err = t.recorders().get(owner.id, recorder.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("avg_down_enabled"), "{err}");
}

on_both_engines!(
    every_setting_round_trips,
    unset_overrides_inherit_and_targets_resolve,
    invalid_settings_are_refused_by_name,
    unknown_stored_setting_is_reported,
);
