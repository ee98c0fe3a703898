//! The typed event stream: what a broker pushes (fills, positions, orders, cash balances) and
//! the state of the connection carrying it, fanned out to any number of subscribers.
//!
//! Each message is parsed once; every subscriber gets the same `Arc`. A subscriber has its own
//! bounded queue: one that stops reading loses events *itself* (and is told so with a
//! [`BrokerEvent::Resync`] once it reads again) — the publisher never waits for it, so one
//! subscriber's failure never delays or affects another.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::model::{AccountId, CashBalanceReport, FillReport, OrderReport, PositionReport};

/// The state of the connection that carries a login's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// Waiting for a connect slot or connecting.
    Connecting,
    /// Connected, authorized and synchronised: live events flow.
    Connected,
    /// Lost or closed on purpose; the next attempt starts after `retry_in_ms`.
    Reconnecting {
        /// Why the connection ended.
        reason: String,
        /// Consecutive failed attempts so far (0 for a planned reconnect).
        attempt: u32,
        /// Delay before the next attempt, in milliseconds.
        retry_in_ms: u64,
    },
    /// Stopped for good (shut down, or the login needs re-authentication).
    Stopped {
        /// Why.
        reason: String,
    },
}

/// Something a broker told us, or the state of the stream itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum BrokerEvent {
    /// A fill (replays and fills older than the connection are filtered out).
    Fill(FillReport),
    /// A position changed.
    Position(PositionReport),
    /// An order was created or changed.
    Order(OrderReport),
    /// A cash balance changed.
    CashBalance(CashBalanceReport),
    /// The connection changed state. After `Connected` following a loss, events of the gap are
    /// not replayed: consumers reconcile from REST.
    Connection(ConnectionState),
    /// This subscriber may have missed events (it fell behind, or an event could not be
    /// attributed): reconcile from REST.
    Resync {
        /// Why.
        reason: String,
    },
}

impl BrokerEvent {
    /// The account an event is about; `None` for connection-wide events.
    #[must_use]
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Self::Fill(f) => Some(&f.account),
            Self::Position(p) => Some(&p.account),
            Self::Order(o) => Some(&o.account),
            Self::CashBalance(c) => Some(&c.account),
            Self::Connection(_) | Self::Resync { .. } => None,
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOrigin {
    /// The state snapshot sent when a connection (re)synchronises.
    Snapshot,
    /// A live change.
    Live,
    /// Produced by the adapter itself (connection state, resync notices).
    Adapter,
}

/// One delivered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Snapshot, live or adapter.
    pub origin: EventOrigin,
    /// When the adapter received it.
    pub received_at: DateTime<Utc>,
    /// The event.
    pub event: BrokerEvent,
}

impl EventEnvelope {
    /// An envelope received now.
    #[must_use]
    pub fn now(origin: EventOrigin, event: BrokerEvent) -> Self {
        Self {
            origin,
            received_at: Utc::now(),
            event,
        }
    }
}

struct Slot {
    id: u64,
    accounts: Option<HashSet<AccountId>>,
    tx: mpsc::Sender<Arc<EventEnvelope>>,
    missed: u64,
}

/// Fans events out to subscribers, each with its own bounded queue.
pub struct EventHub {
    slots: Mutex<Vec<Slot>>,
    next_id: AtomicU64,
    capacity: usize,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.slots.lock().len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl EventHub {
    /// A hub whose subscribers each buffer up to `capacity` events.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            capacity: capacity.max(1),
        }
    }

    /// Subscribes to the events of `accounts` (all accounts when `None`); connection-wide
    /// events reach every subscriber.
    #[must_use]
    pub fn subscribe(&self, accounts: Option<HashSet<AccountId>>) -> EventSubscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.slots.lock().push(Slot {
            id,
            accounts,
            tx,
            missed: 0,
        });
        EventSubscription { id, rx }
    }

    /// Number of live subscribers.
    #[must_use]
    pub fn subscriber_count(&self) -> usize {
        let mut slots = self.slots.lock();
        slots.retain(|s| !s.tx.is_closed());
        slots.len()
    }

    /// Delivers `envelope` to every interested subscriber without ever waiting: a full queue
    /// counts a missed event for that subscriber only; a dropped subscription is removed.
    pub fn publish(&self, envelope: Arc<EventEnvelope>) {
        let account = envelope.event.account().cloned();
        let mut slots = self.slots.lock();
        slots.retain_mut(|slot| {
            if let (Some(account), Some(wanted)) = (&account, &slot.accounts)
                && !wanted.contains(account)
            {
                return !slot.tx.is_closed();
            }
            if slot.missed > 0 {
                let notice = Arc::new(EventEnvelope::now(
                    EventOrigin::Adapter,
                    BrokerEvent::Resync {
                        reason: format!(
                            "this subscriber fell behind and missed {} event(s)",
                            slot.missed
                        ),
                    },
                ));
                match slot.tx.try_send(notice) {
                    Ok(()) => slot.missed = 0,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.missed += 1;
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            match slot.tx.try_send(Arc::clone(&envelope)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.missed += 1;
                    tracing::warn!(
                        subscriber = slot.id,
                        missed = slot.missed,
                        "broker event subscriber is full; it will be told to resync"
                    );
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

/// A subscriber's end of the stream. Dropping it unsubscribes.
#[derive(Debug)]
pub struct EventSubscription {
    id: u64,
    rx: mpsc::Receiver<Arc<EventEnvelope>>,
}

impl EventSubscription {
    /// The next event; `None` once the source has stopped for good.
    pub async fn recv(&mut self) -> Option<Arc<EventEnvelope>> {
        self.rx.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<EventEnvelope>> {
        self.rx.try_recv().ok()
    }

    /// This subscription's id (for logs).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl futures_util::Stream for EventSubscription {
    type Item = Arc<EventEnvelope>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u32) -> Arc<EventEnvelope> {
        Arc::new(EventEnvelope::now(
            EventOrigin::Adapter,
            BrokerEvent::Connection(ConnectionState::Reconnecting {
                reason: format!("{n}"),
                attempt: n,
                retry_in_ms: 0,
            }),
        ))
    }

    #[tokio::test]
    async fn a_stuck_subscriber_never_affects_another() {
        let hub = EventHub::new(2);
        let mut healthy = hub.subscribe(None);
        let mut stuck = hub.subscribe(None);
        for n in 0..10 {
            hub.publish(conn(n));
            // The healthy subscriber keeps reading; the stuck one never does.
            let got = healthy.recv().await.unwrap();
            assert_eq!(got.event, conn(n).event);
        }
        // The stuck one got the first two, then is told it missed the rest once it reads.
        assert!(stuck.recv().await.is_some());
        assert!(stuck.recv().await.is_some());
        hub.publish(conn(99));
        let notice = stuck.recv().await.unwrap();
        assert!(
            matches!(&notice.event, BrokerEvent::Resync { reason } if reason.contains("missed 8")),
            "{notice:?}"
        );
        assert_eq!(stuck.recv().await.unwrap().event, conn(99).event.clone());
    }

    #[tokio::test]
    async fn dropped_subscribers_are_removed_and_filters_apply() {
        let hub = EventHub::new(8);
        let only_a = hub.subscribe(Some(HashSet::from([AccountId::from("A")])));
        let all = hub.subscribe(None);
        drop(all);
        hub.publish(conn(1));
        assert_eq!(hub.subscriber_count(), 1);
        drop(only_a);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
