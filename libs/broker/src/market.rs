//! Market data, broker-neutral: a login's quote feed for a set of contracts, opened through
//! [`crate::BrokerEvents::quote_feed`] by the connection manager (which republishes quotes on
//! the bus) and by nobody else.
//!
//! A [`QuoteFeed`] is the reading end: the contracts it should carry are set (and changed) with
//! [`QuoteFeed::watch`], quotes and the state of the connection carrying them are read with
//! [`QuoteFeed::recv`], and dropping it closes the venue's market-data connection. Contracts are
//! named as the store names them: the broker's contract name (`MNQZ6`).
//!
//! The queue between the venue and the reader is bounded and never blocks the venue: a reader
//! that falls behind loses quotes (a later quote supersedes them anyway).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::events::ConnectionState;

/// How many quotes wait for a slow reader before newer ones are dropped.
pub const QUOTE_QUEUE: usize = 4096;

/// One quote of one contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The broker's contract name (`MNQZ6`).
    pub contract: String,
    /// Best bid.
    pub bid: Option<Decimal>,
    /// Best ask (Tradovate's `Offer`).
    pub ask: Option<Decimal>,
    /// Last trade.
    pub last: Option<Decimal>,
    /// The venue's time of the quote.
    pub at: DateTime<Utc>,
}

/// What a quote feed delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteEvent {
    /// A quote.
    Quote(Quote),
    /// The market-data connection changed state (after `Connected` the watched contracts are
    /// subscribed again).
    State(ConnectionState),
}

/// The venue's side of a feed: what [`QuoteFeed`] asks of it.
pub trait QuoteControl: Send + Sync {
    /// The contracts to carry from now on (added ones are subscribed, removed ones
    /// unsubscribed, on the live connection).
    fn watch(&self, contracts: BTreeSet<String>);
    /// The contracts the live connection has subscribed now (empty while disconnected).
    fn subscribed(&self) -> BTreeSet<String>;
    /// Closes the connection for good.
    fn stop(&self);
}

/// A quote feed over one login's market-data connection; dropping it closes the connection.
pub struct QuoteFeed {
    control: Arc<dyn QuoteControl>,
    events: mpsc::Receiver<QuoteEvent>,
}

impl std::fmt::Debug for QuoteFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuoteFeed")
            .field("subscribed", &self.control.subscribed())
            .finish_non_exhaustive()
    }
}

impl QuoteFeed {
    /// A feed reading `events`, controlled through `control` (for venue adapters; the sending
    /// side comes from [`quote_channel`]).
    #[must_use]
    pub fn new(control: Arc<dyn QuoteControl>, events: mpsc::Receiver<QuoteEvent>) -> Self {
        Self { control, events }
    }

    /// Carries `contracts` from now on (and no others).
    pub fn watch(&self, contracts: BTreeSet<String>) {
        self.control.watch(contracts);
    }

    /// The contracts the live connection has subscribed now.
    #[must_use]
    pub fn subscribed(&self) -> BTreeSet<String> {
        self.control.subscribed()
    }

    /// The next quote or state change; `None` once the feed stopped for good.
    pub async fn recv(&mut self) -> Option<QuoteEvent> {
        self.events.recv().await
    }
}

impl Drop for QuoteFeed {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// The venue's sending end of a feed's queue.
#[derive(Debug, Clone)]
pub struct QuoteSender(mpsc::Sender<QuoteEvent>);

impl QuoteSender {
    /// Hands `event` to the reader without waiting: `false` when the reader is behind (the
    /// event is dropped) or gone.
    pub fn send(&self, event: QuoteEvent) -> bool {
        self.0.try_send(event).is_ok()
    }

    /// Whether the reader dropped its feed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A feed's queue: the venue's sender and the receiver for [`QuoteFeed::new`].
#[must_use]
pub fn quote_channel() -> (QuoteSender, mpsc::Receiver<QuoteEvent>) {
    let (tx, rx) = mpsc::channel(QUOTE_QUEUE);
    (QuoteSender(tx), rx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use parking_lot::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorded {
        watched: Mutex<BTreeSet<String>>,
        stopped: Mutex<bool>,
    }

    impl QuoteControl for Recorded {
        fn watch(&self, contracts: BTreeSet<String>) {
            *self.watched.lock() = contracts;
        }
        fn subscribed(&self) -> BTreeSet<String> {
            self.watched.lock().clone()
        }
        fn stop(&self) {
            *self.stopped.lock() = true;
        }
    }

    #[tokio::test]
    async fn a_feed_passes_its_contracts_on_reads_quotes_and_stops_when_dropped() {
        let control = Arc::new(Recorded::default());
        let (tx, rx) = quote_channel();
        let mut feed = QuoteFeed::new(control.clone(), rx);
        feed.watch(["MNQZ6".to_string()].into());
        assert_eq!(feed.subscribed(), ["MNQZ6".to_string()].into());
        let q = Quote {
            contract: "MNQZ6".into(),
            bid: None,
            ask: None,
            last: Some(Decimal::new(2100025, 2)),
            at: Utc::now(),
        };
        assert!(tx.send(QuoteEvent::Quote(q.clone())));
        assert_eq!(feed.recv().await, Some(QuoteEvent::Quote(q)));
        drop(feed);
        assert!(*control.stopped.lock());
        assert!(tx.is_closed());
    }
}
