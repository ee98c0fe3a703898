//! The venue-neutral shell of a market-data connection behind [`jt_broker::QuoteFeed`]: the
//! contracts wanted (a [`Feed`] keyed by the store's contract keys), the keys the live
//! connection has subscribed, the queue to the reader, and the task that passes the
//! connection's states to the reader in order with the quotes. A venue's market-data socket
//! (Tradovate's md socket, ProjectX's market hub) keeps only its own wire: what it subscribes
//! and how it decodes quotes.

use std::collections::BTreeSet;
use std::sync::Arc;

use jt_broker::events::{BrokerEvent, EventHub};
use jt_broker::market::{Quote, QuoteControl, QuoteEvent, QuoteFeed, QuoteSender, quote_channel};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::socket::Feed;

/// What a venue's market-data connection shares with its [`QuoteFeed`].
pub struct QuoteShell {
    /// The contracts wanted (the feed's keys: names, or the broker's ids) and the connection's
    /// state.
    pub feed: Feed<String>,
    subscribed: Mutex<BTreeSet<String>>,
    quotes: QuoteSender,
    venue: &'static str,
}

impl QuoteShell {
    /// The keys the live connection has subscribed from now on.
    pub fn set_subscribed(&self, keys: BTreeSet<String>) {
        *self.subscribed.lock() = keys;
    }

    /// Hands a quote to the reader without waiting: a reader that is behind loses it (counted
    /// in `jt_broker_quotes_dropped_total{broker}`).
    pub fn send(&self, quote: Quote) {
        if !self.quotes.send(QuoteEvent::Quote(quote)) {
            metrics::counter!("jt_broker_quotes_dropped_total", "broker" => self.venue)
                .increment(1);
        }
    }
}

struct Control {
    shell: Arc<QuoteShell>,
    cancel: CancellationToken,
}

impl QuoteControl for Control {
    fn watch(&self, contracts: BTreeSet<String>) {
        self.shell.feed.set_wanted(contracts);
    }

    fn subscribed(&self) -> BTreeSet<String> {
        self.shell.subscribed.lock().clone()
    }

    fn stop(&self) {
        self.cancel.cancel();
    }
}

/// A shell for `venue` (a metric label) whose state hub holds `capacity` events, with the
/// task forwarding its states started: the shell, the token that stops the connection (the
/// feed's drop cancels it) and the reader's [`QuoteFeed`].
#[must_use]
pub fn start(
    venue: &'static str,
    capacity: usize,
) -> (Arc<QuoteShell>, CancellationToken, QuoteFeed) {
    let (quotes, rx) = quote_channel();
    let shell = Arc::new(QuoteShell {
        feed: Feed::new(Arc::new(EventHub::new(capacity))),
        subscribed: Mutex::new(BTreeSet::new()),
        quotes,
        venue,
    });
    let cancel = CancellationToken::new();
    // The connection's states (from keep_alive: connecting, reconnecting with its delay,
    // stopped) reach the reader in order with the quotes.
    let mut states = shell.feed.subscribe(None);
    let forward = Arc::clone(&shell);
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                next = states.recv() => match next {
                    Some(e) => {
                        if let BrokerEvent::Connection(state) = &e.event {
                            forward.quotes.send(QuoteEvent::State(state.clone()));
                        }
                    }
                    None => return,
                },
            }
        }
    });
    let feed = QuoteFeed::new(
        Arc::new(Control {
            shell: Arc::clone(&shell),
            cancel: cancel.clone(),
        }),
        rx,
    );
    (shell, cancel, feed)
}
