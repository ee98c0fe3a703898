//! The API's live update stream (`GET /api/v1/events`, Server-Sent Events) read event by
//! event, for tests that watch what a page would see ([`crate::api::Client::events`]).

use std::time::Duration;

use serde_json::Value;

/// A live update stream (Server-Sent Events) read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The stream of an answer, once its first event (`ready`) has come.
    ///
    /// # Panics
    /// When `ready` does not come within 10 s.
    pub async fn ready(response: reqwest::Response) -> EventStream {
        let mut e = EventStream {
            response,
            buf: String::new(),
        };
        let first = e.next(Duration::from_secs(10)).await;
        assert_eq!(first.map(|(k, _)| k).as_deref(), Some("ready"));
        e
    }

    /// The next event (name, JSON data) within `wait`; heartbeat comments are skipped.
    ///
    /// # Panics
    /// On a transport error or data that is not JSON.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((name, data)) = jt_api::events::take_event(&mut self.buf) {
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Waits up to `wait` for an event of `kind` whose data satisfies `pred`.
    ///
    /// # Panics
    /// When none comes.
    pub async fn wait_for(
        &mut self,
        kind: &str,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((k, v)) if k == kind && pred(&v) => return v,
                Some(_) => {}
                None => panic!("no `{kind}` event as expected within {wait:?}"),
            }
        }
    }

    /// Every event within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(e) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            out.push(e);
        }
        out
    }
}
