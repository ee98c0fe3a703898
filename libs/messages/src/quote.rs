//! A contract's newest quote, published by the connection manager on a core subject
//! (`jt.quotes.<contract>`, not stored: a missed quote only costs freshness) and read by the
//! positions service (paper record, open P&L), risk and the dashboard.
//!
//! Contracts are named as the store names them: the broker's contract name (`MNQZ6`), the same
//! for every venue of one exchange contract, so one quote serves every account holding it.

use chrono::{DateTime, Utc};
use jt_bus::{Bus, BusError, CoreSubscription};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteMessage {
    /// The contract (`MNQZ6`).
    pub contract: String,
    /// Which venue's feed reported it (`tradovate`, `projectx`, `simulator`…).
    pub source: String,
    /// Best bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<Decimal>,
    /// Best ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<Decimal>,
    /// Last trade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Decimal>,
    /// The exchange's (or feed's) time of the quote.
    pub at: DateTime<Utc>,
}

impl QuoteMessage {
    /// The price positions are marked at: the last trade, else the middle of bid and ask, else
    /// whichever side there is.
    #[must_use]
    pub fn mark(&self) -> Option<Decimal> {
        self.last.or(match (self.bid, self.ask) {
            (Some(b), Some(a)) => Some((b + a) / Decimal::TWO),
            (b, a) => b.or(a),
        })
    }

    /// Publishes it on `jt.quotes.<contract>` (fire and forget).
    ///
    /// # Errors
    /// [`BusError`] when the contract cannot be a subject token or the connection refuses.
    pub async fn publish(&self, bus: &Bus) -> Result<(), BusError> {
        let subject = bus
            .subjects()
            .quote(&self.contract)
            .map_err(|e| BusError::InvalidDefinition(e.to_string()))?;
        let payload =
            serde_json::to_vec(self).map_err(|e| BusError::InvalidDefinition(e.to_string()))?;
        bus.publish_core(subject, payload.into()).await
    }

    /// Reads one from a core message's bytes; `None` when it is not a quote this build reads.
    #[must_use]
    pub fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

/// Subscribes to every contract's quotes (`jt.quotes.*`).
///
/// # Errors
/// [`BusError::Unavailable`].
pub async fn subscribe_quotes(bus: &Bus) -> Result<CoreSubscription, BusError> {
    bus.subscribe_core(bus.subjects().one_level("quotes")).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::StreamExt;
    use jt_bus::Namespace;
    use rust_decimal_macros::dec;

    use super::*;

    fn quote(bid: Option<Decimal>, ask: Option<Decimal>, last: Option<Decimal>) -> QuoteMessage {
        QuoteMessage {
            contract: "MNQZ6".into(),
            source: "simulator".into(),
            bid,
            ask,
            last,
            at: Utc::now(),
        }
    }

    #[test]
    fn the_mark_is_the_last_trade_else_the_middle_else_one_side() {
        assert_eq!(
            quote(Some(dec!(1)), Some(dec!(2)), Some(dec!(1.75))).mark(),
            Some(dec!(1.75))
        );
        assert_eq!(
            quote(Some(dec!(100)), Some(dec!(100.5)), None).mark(),
            Some(dec!(100.25))
        );
        assert_eq!(
            quote(None, Some(dec!(100.5)), None).mark(),
            Some(dec!(100.5))
        );
        assert_eq!(quote(None, None, None).mark(), None);
    }

    #[tokio::test]
    async fn a_published_quote_reaches_a_subscriber_exactly() {
        let bus = Bus::embedded(Namespace::unique());
        let mut sub = subscribe_quotes(&bus).await.unwrap();
        let q = quote(
            Some(dec!(21000.25)),
            Some(dec!(21000.50)),
            Some(dec!(21000.25)),
        );
        q.publish(&bus).await.unwrap();
        let m = sub.next().await.unwrap();
        assert_eq!(m.subject, bus.subjects().quote("MNQZ6").unwrap());
        assert_eq!(QuoteMessage::decode(&m.payload), Some(q));
    }
}
