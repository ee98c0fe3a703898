//! Core (unstored) publish/subscribe: for data whose newest value is all that matters and
//! whose loss costs nothing but freshness — market quotes. Nothing is stored, acknowledged or
//! de-duplicated; a subscriber that is slow or absent simply misses messages. Never use it for
//! anything an account's money depends on arriving (intents, fills, executions: those go
//! through streams).
//!
//! On JetStream this is plain NATS publish/subscribe on the same connection; on the embedded
//! bus a bounded broadcast channel (a subscriber that falls behind skips to the newest).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;

use crate::error::BusError;
use crate::subject::subject_matches;

/// How many messages the embedded bus keeps for a slow subscriber before it skips ahead.
const EMBEDDED_CAPACITY: usize = 4096;

/// One core message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Its bytes.
    pub payload: Bytes,
}

/// A live subscription; ends when the bus goes away. Dropping it unsubscribes.
pub struct CoreSubscription {
    inner: Pin<Box<dyn Stream<Item = CoreMessage> + Send>>,
}

impl std::fmt::Debug for CoreSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreSubscription").finish_non_exhaustive()
    }
}

impl Stream for CoreSubscription {
    type Item = CoreMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The embedded side: one broadcast channel for every core subject.
#[derive(Debug, Clone)]
pub(crate) struct EmbeddedCore {
    tx: broadcast::Sender<CoreMessage>,
}

impl Default for EmbeddedCore {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(EMBEDDED_CAPACITY);
        Self { tx }
    }
}

impl EmbeddedCore {
    pub(crate) fn publish(&self, message: CoreMessage) {
        // No subscriber is not an error: nothing is stored on core subjects.
        let _ = self.tx.send(message);
    }

    pub(crate) fn subscribe(&self, filter: String) -> CoreSubscription {
        let rx = self.tx.subscribe();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(m) => return Some((m, rx)),
                    // Fell behind: the skipped messages are stale anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |m| std::future::ready(subject_matches(&filter, &m.subject)));
        CoreSubscription {
            inner: Box::pin(stream),
        }
    }
}

pub(crate) async fn nats_publish(
    client: &async_nats::Client,
    message: CoreMessage,
) -> Result<(), BusError> {
    client
        .publish(message.subject, message.payload)
        .await
        .map_err(|e| BusError::unavailable("core publish", e))
}

pub(crate) async fn nats_subscribe(
    client: &async_nats::Client,
    filter: String,
) -> Result<CoreSubscription, BusError> {
    let sub = client
        .subscribe(filter)
        .await
        .map_err(|e| BusError::unavailable("core subscribe", e))?;
    let stream = sub.map(|m| CoreMessage {
        subject: m.subject.to_string(),
        payload: m.payload,
    });
    Ok(CoreSubscription {
        inner: Box::pin(stream),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn an_embedded_subscriber_sees_only_its_subjects_and_nothing_is_kept() {
        let core = EmbeddedCore::default();
        core.publish(CoreMessage {
            subject: "jt.quotes.MNQZ6".into(),
            payload: Bytes::from_static(b"before"),
        });
        let mut sub = core.subscribe("jt.quotes.*".into());
        core.publish(CoreMessage {
            subject: "jt.other.x".into(),
            payload: Bytes::from_static(b"other"),
        });
        core.publish(CoreMessage {
            subject: "jt.quotes.NQZ6".into(),
            payload: Bytes::from_static(b"after"),
        });
        let m = sub.next().await.unwrap();
        assert_eq!(m.subject, "jt.quotes.NQZ6");
        assert_eq!(&m.payload[..], b"after");
    }
}
