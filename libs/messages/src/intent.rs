//! One trader's share of one signal, as the fan-out queues it on ORDERS
//! (`jt.orders.<sub-account>`: one subject per sub-account, executed serially per
//! sub-account across every executor replica).

use chrono::{DateTime, Utc};
use jt_alerts::{AlertRisk, EntryOrderSpec, ExitLevel, StopOverride};
use jt_bus::{Message, SubjectError, Subjects};
use jt_domain::{Settings, SignalAction};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What one trader must do because of one signal, with everything the execution needs: the
/// resolved settings travel with the intent (and are stored with it), so a settings change
/// after the signal never alters an intent already queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentMessage {
    /// Derived from the signal and the trader ([`IntentMessage::id_for`]); the broker's client
    /// order ids derive from it.
    pub intent_id: Uuid,
    /// The signal.
    pub signal_id: Uuid,
    /// The owner of recorder, trader and account.
    pub owner_id: Uuid,
    /// The recorder of the signal.
    pub recorder_id: Uuid,
    /// The trader; `None` for a control intent (kill switch, flatten) on a whole sub-account.
    pub trader_id: Option<Uuid>,
    /// The sub-account to trade (the serial-execution key).
    pub sub_account_id: Uuid,
    /// The broker login the sub-account belongs to.
    pub broker_account_id: Uuid,
    /// The action after this trader's `inverse_strategy`.
    pub action: SignalAction,
    /// The symbol to trade after this trader's `custom_ticker`; `None` for a control intent
    /// that acts on the whole sub-account (flatten: every position, every working order).
    pub symbol: Option<String>,
    /// The alert's price, if any (reference for percent distances and per-alert price levels).
    pub price: Option<Decimal>,
    /// The alert's own time, if any (staleness).
    pub alert_time: Option<DateTime<Utc>>,
    /// When the ingest received the alert.
    pub received_at: DateTime<Utc>,
    /// Seconds to wait after receipt before executing.
    pub delay_secs: u32,
    /// This alert's staleness limit, replacing `stale_after_secs`.
    pub max_lag_secs: Option<u32>,
    /// Per-alert take-profit.
    pub take_profit: Option<ExitLevel>,
    /// Per-alert stop.
    pub stop_loss: Option<StopOverride>,
    /// The trader's resolved settings. Read tolerantly: a setting a newer executor added is
    /// dropped, not a reason to refuse the intent (`jt_domain::tolerant`).
    #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
    pub settings: Settings,
    /// For a partial exit (`reduce_long` / `reduce_short`): the fraction of its position the
    /// strategy sold; each trader reduces its own position by the same fraction.
    #[serde(default)]
    pub exit_fraction: Option<Decimal>,
    /// The alert's resting entry (limit, stop, stop-limit); `None` = market.
    #[serde(default)]
    pub entry_order: Option<EntryOrderSpec>,
    /// The alert's trailing, break-even, sizing and `same_direction_ignore` instructions.
    #[serde(default)]
    pub risk: AlertRisk,
}

impl IntentMessage {
    /// The intent id of `trader`'s share of `signal`: stable across redeliveries.
    #[must_use]
    pub fn id_for(signal: Uuid, trader: Uuid) -> Uuid {
        crate::derived_id("intent", &[&signal.to_string(), &trader.to_string()])
    }

    /// The intent id of a control action caused by `signal` on one sub-account.
    #[must_use]
    pub fn control_id_for(signal: Uuid, sub_account: Uuid) -> Uuid {
        crate::derived_id(
            "control-intent",
            &[&signal.to_string(), &sub_account.to_string()],
        )
    }

    /// The store's idempotency key of the intent.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        match self.trader_id {
            Some(trader) => format!("signal:{}:trader:{trader}", self.signal_id),
            None => format!("signal:{}:account:{}", self.signal_id, self.sub_account_id),
        }
    }

    /// The client order id of the intent's main order: short (brokers cap it at 64
    /// characters, and suffixes are added for the protective legs) and recognisable as ours
    /// (`jt` prefix: copy trading never copies our own orders).
    #[must_use]
    pub fn client_order_id(&self) -> String {
        client_order_id(self.intent_id)
    }
}

/// The client order id for an intent: `jt` + the intent id's 32 hex digits.
#[must_use]
pub fn client_order_id(intent: Uuid) -> String {
    format!("jt{}", intent.simple())
}

impl Message for IntentMessage {
    const TYPE: &'static str = "order-intent";
    const SCHEMA_VERSION: u32 = 1;

    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.order(&self.sub_account_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_alerts::{AlertContext, parse_alert};

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
        let intent = IntentMessage {
            intent_id: Uuid::now_v7(),
            signal_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            recorder_id: Uuid::now_v7(),
            trader_id: Some(Uuid::now_v7()),
            sub_account_id: Uuid::now_v7(),
            broker_account_id: Uuid::now_v7(),
            action: partial.action,
            symbol: Some("MNQ1!".into()),
            price: None,
            alert_time: None,
            received_at: Utc::now(),
            delay_secs: 0,
            max_lag_secs: None,
            take_profit: None,
            stop_loss: signal.stop_loss,
            settings: Settings::default(),
            exit_fraction: partial.exit_fraction,
            entry_order: signal.entry_order,
            risk: signal.risk,
        };
        let json = serde_json::to_vec(&intent).unwrap();
        let back = IntentMessage::decode(1, &json).unwrap();
        assert_eq!(back, intent);
        assert_eq!(
            back.exit_fraction.map(|f| f.round_dp(4).to_string()),
            Some("0.6667".into())
        );
        // An intent queued before these fields existed still reads.
        let mut old: serde_json::Value = serde_json::from_slice(&json).unwrap();
        for key in ["exit_fraction", "entry_order", "risk"] {
            old.as_object_mut().unwrap().remove(key);
        }
        let back = IntentMessage::decode(1, old.to_string().as_bytes()).unwrap();
        assert_eq!(back.entry_order, None);
    }

    #[test]
    fn an_intent_with_a_setting_this_build_does_not_know_is_read_not_refused() {
        // Written by a newer executor during a rolling deploy: one more setting.
        let intent = IntentMessage {
            intent_id: Uuid::nil(),
            signal_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            recorder_id: Uuid::nil(),
            trader_id: None,
            sub_account_id: Uuid::nil(),
            broker_account_id: Uuid::nil(),
            action: SignalAction::Long,
            symbol: Some("MNQ1!".into()),
            price: None,
            alert_time: None,
            received_at: DateTime::from_timestamp(1_767_623_400, 0).unwrap_or_default(),
            delay_secs: 0,
            max_lag_secs: None,
            take_profit: None,
            stop_loss: None,
            settings: Settings {
                initial_position_size: 4,
                ..Settings::default()
            },
            exit_fraction: None,
            entry_order: None,
            risk: AlertRisk::default(),
        };
        let mut json = serde_json::to_value(&intent).unwrap_or_default();
        json["settings"]["a_setting_added_later"] = serde_json::json!(1.5);
        json["a_field_added_later"] = serde_json::json!("x");
        let read: IntentMessage = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, intent);
    }
}
