//! What a broker told us, on BROKER_EVENTS (`jt.broker.<sub-account>.<entity>`): published by
//! the connection manager, read by positions, risk and the copier.
//!
//! One message per normalised event (order, fill, position, cash balance; the stream's own
//! state as `connection` and `resync`). The message id derives from the broker's own identity of
//! the event — the fill id for a fill, the reported state for an order, a position or a balance
//! — so the same event seen again (a reconnect's snapshot, another replica after a take-over) has
//! the same id: JetStream drops the repeat inside its window and a consumer recognises it after.
//!
//! Reading is tolerant: fields this build does not know are ignored, and an event of a kind it
//! does not know (a newer connection manager) decodes as [`ReportedEvent::Unknown`] instead of
//! failing the message.

use chrono::{DateTime, Utc};
use jt_broker::{AccountId, BrokerEvent, BrokerKind, ConnectionState, EventOrigin};
use jt_bus::{Message, SubjectError, Subjects};
use jt_ids::{BrokerAccountId, SubAccountId, UserId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::derived_id;

/// An event as carried on the bus: one this build knows, or the kind of one it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per message, moved, never kept in bulk
pub enum ReportedEvent {
    /// A known event.
    Known(BrokerEvent),
    /// An event of a kind this build cannot read (its `type`); skip it.
    Unknown {
        /// The event's `type`.
        kind: String,
    },
}

impl Serialize for ReportedEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(event) => event.serialize(serializer),
            Self::Unknown { kind } => serde_json::json!({ "type": kind }).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ReportedEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match serde_json::from_value::<BrokerEvent>(value.clone()) {
            Ok(event) => Ok(Self::Known(event)),
            Err(_) => Ok(Self::Unknown {
                kind: value
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned(),
            }),
        }
    }
}

/// One broker event of one sub-account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEventMessage {
    /// The owner of the account.
    pub owner_id: UserId,
    /// The login (broker account) whose connection carried it.
    pub broker_account_id: BrokerAccountId,
    /// The platform's sub-account it is about.
    pub sub_account_id: SubAccountId,
    /// The broker's id of that sub-account.
    pub account: AccountId,
    /// The broker.
    pub broker: BrokerKind,
    /// Snapshot (a connection's synchronisation), live change, or the adapter's own notice.
    pub origin: EventOrigin,
    /// When the connection manager received it.
    pub received_at: DateTime<Utc>,
    /// The event.
    pub event: ReportedEvent,
}

impl BrokerEventMessage {
    /// The subject's entity token: `fill`, `order`, `position`, `cash`, `connection`, `resync`
    /// (and the `type` of an unknown event).
    #[must_use]
    pub fn entity(&self) -> &str {
        match &self.event {
            ReportedEvent::Known(event) => entity_of(event),
            ReportedEvent::Unknown { kind } => kind,
        }
    }

    /// The bus message id, from the broker's own identity of the event: the fill id for a fill;
    /// the reported state for an order (id, status, quantities, prices), a position (contract,
    /// quantity, average, time) and a cash balance (amount, P&L, time), so a state seen again
    /// is the same message and a new state a new one. Connection notices carry the time they
    /// were received: each is its own message.
    #[must_use]
    pub fn message_id(&self) -> String {
        let sub = self.sub_account_id.to_string();
        let account = self.account.to_string();
        let parts: Vec<String> = match &self.event {
            ReportedEvent::Known(BrokerEvent::Fill(f)) => vec![f.id.to_string()],
            ReportedEvent::Known(BrokerEvent::Order(o)) => vec![
                o.id.to_string(),
                json(&o.status),
                json(&o.qty),
                json(&o.filled_qty),
                json(&o.avg_fill_price),
                json(&o.price),
                json(&o.stop_price),
            ],
            ReportedEvent::Known(BrokerEvent::Position(p)) => vec![
                p.contract.to_string(),
                p.net_qty.to_string(),
                json(&p.avg_price),
                json(&p.timestamp),
            ],
            ReportedEvent::Known(BrokerEvent::CashBalance(c)) => vec![
                c.amount.to_string(),
                json(&c.realized_pnl),
                json(&c.week_realized_pnl),
                json(&c.timestamp),
            ],
            ReportedEvent::Known(BrokerEvent::Connection(_) | BrokerEvent::Resync { .. })
            | ReportedEvent::Unknown { .. } => vec![
                json(&self.event),
                self.received_at
                    .timestamp_nanos_opt()
                    .unwrap_or_default()
                    .to_string(),
            ],
        };
        let mut all: Vec<&str> = vec![&sub, &account];
        all.extend(parts.iter().map(String::as_str));
        format!(
            "broker-{}-{}",
            self.entity(),
            derived_id("broker-event", &all).simple()
        )
    }

    /// The connection state, for a `connection` event.
    #[must_use]
    pub fn connection(&self) -> Option<&ConnectionState> {
        match &self.event {
            ReportedEvent::Known(BrokerEvent::Connection(state)) => Some(state),
            _ => None,
        }
    }
}

fn entity_of(event: &BrokerEvent) -> &'static str {
    match event {
        BrokerEvent::Fill(_) => "fill",
        BrokerEvent::Order(_) => "order",
        BrokerEvent::Position(_) => "position",
        BrokerEvent::CashBalance(_) => "cash",
        BrokerEvent::Connection(_) => "connection",
        BrokerEvent::Resync { .. } => "resync",
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Message for BrokerEventMessage {
    const TYPE: &'static str = "broker-event";
    const SCHEMA_VERSION: u32 = 1;

    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.broker_event(&self.sub_account_id.to_string(), self.entity())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use jt_broker::{FillReport, OrderReport, OrderStatus};
    use jt_domain::types::Side;
    use rust_decimal_macros::dec;

    fn fill(id: &str) -> BrokerEvent {
        BrokerEvent::Fill(FillReport {
            id: id.into(),
            order_id: "9".into(),
            account: "7".into(),
            contract: "MNQZ6".into(),
            symbol: Some("MNQZ6".into()),
            side: Side::Buy,
            qty: 2,
            price: dec!(21000.25),
            timestamp: Utc.with_ymd_and_hms(2026, 12, 4, 15, 0, 0).unwrap(),
            trade_date: None,
            client_order_id: Some("jtabc".into()),
        })
    }

    fn message(event: BrokerEvent, received_at: DateTime<Utc>) -> BrokerEventMessage {
        BrokerEventMessage {
            owner_id: UserId(uuid::Uuid::nil()),
            broker_account_id: BrokerAccountId(uuid::Uuid::nil()),
            sub_account_id: SubAccountId(uuid::Uuid::from_u128(5)),
            account: "7".into(),
            broker: BrokerKind::Sim,
            origin: EventOrigin::Live,
            received_at,
            event: ReportedEvent::Known(event),
        }
    }

    #[test]
    fn the_same_fill_received_twice_has_one_message_id() {
        let first = message(fill("100"), Utc::now());
        let again = message(fill("100"), Utc::now() + chrono::Duration::seconds(30));
        assert_eq!(first.message_id(), again.message_id());
        assert_ne!(
            first.message_id(),
            message(fill("101"), Utc::now()).message_id()
        );
        assert!(first.message_id().starts_with("broker-fill-"));
        let subject = first
            .subject(&jt_bus::Namespace::production().subjects())
            .unwrap();
        assert_eq!(
            subject,
            "jt.broker.00000000-0000-0000-0000-000000000005.fill"
        );
    }

    #[test]
    fn an_order_gets_a_new_id_per_state() {
        let order = |status| {
            BrokerEvent::Order(OrderReport {
                id: "9".into(),
                client_order_id: None,
                account: "7".into(),
                contract: None,
                symbol: None,
                side: Side::Buy,
                order_type: None,
                qty: Some(1),
                price: None,
                stop_price: None,
                status,
                filled_qty: None,
                avg_fill_price: None,
                parent: None,
                linked: None,
                reject_reason: None,
                timestamp: None,
            })
        };
        let working = message(order(OrderStatus::Working), Utc::now());
        let filled = message(order(OrderStatus::Filled), Utc::now());
        assert_ne!(working.message_id(), filled.message_id());
        assert_eq!(
            working.message_id(),
            message(order(OrderStatus::Working), Utc::now()).message_id()
        );
    }

    #[test]
    fn round_trips_and_reads_unknown_kinds_and_fields_tolerantly() {
        let m = message(fill("100"), Utc::now());
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            serde_json::from_str::<BrokerEventMessage>(&text).unwrap(),
            m
        );

        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["event"] = serde_json::json!({ "type": "margin_call", "data": { "level": 3 } });
        value["added_later"] = serde_json::json!(true);
        let read: BrokerEventMessage = serde_json::from_value(value).unwrap();
        assert_eq!(
            read.event,
            ReportedEvent::Unknown {
                kind: "margin_call".into()
            }
        );
        assert_eq!(read.entity(), "margin_call");
    }
}
