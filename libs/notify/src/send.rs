//! One attempt to hand a notification to its channel: the request each kind of channel gets,
//! and what the answer means — delivered, try again (maybe not before a time the receiver
//! named), or never (the receiver refuses this request as it is).
//!
//! - **webhook**: `POST` of `{id, event, created_at, payload}` as JSON, signed ([`crate::sign`]),
//!   with `X-JT-Event` and `X-JT-Delivery` headers.
//! - **Discord**: `POST` of `{content, embeds, allowed_mentions}` to the webhook URL; mentions
//!   are switched off so a payload's text can never ping `@everyone`.
//! - **e-mail**: a plain-text mail through the [`Mailer`].
//!
//! Redirects are not followed (a notification goes to the URL the user gave, nowhere else), a
//! target that resolves to a private address is refused unless the operator allows it
//! ([`crate::target`]), and errors never carry the URL: Discord and many webhook URLs hold their
//! own secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jt_mail::{Mail, Mailer};
use jt_store::ChannelKind;
use jt_store::repo::notifications::{DueDelivery, OpenChannel};
use serde_json::{Value, json};

use crate::{sign, target};

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth another attempt; `after`: not before this (a 429's `retry_after`).
    Retry {
        /// What went wrong.
        reason: String,
        /// The receiver's own wait.
        after: Option<Duration>,
    },
    /// The receiver refuses this request as it is: no more attempts.
    Permanent(String),
}

impl SendError {
    fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// The error's text (what the delivery log shows).
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Retry { reason, .. } | Self::Permanent(reason) => reason,
        }
    }
}

/// A notification's title: the payload's `title`, or one made from the event kind.
#[must_use]
pub fn title(event: &str, payload: &Value) -> String {
    payload.get("title").and_then(Value::as_str).map_or_else(
        || format!("Notification: {}", event.replace('_', " ")),
        str::to_string,
    )
}

/// The payload's fields as `name: value` lines (title and event left out: shown elsewhere).
fn lines(payload: &Value) -> Vec<(String, String)> {
    let Some(map) = payload.as_object() else {
        return vec![("payload".into(), payload.to_string())];
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "title" | "event"))
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => "—".into(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The webhook body: what is signed and sent.
#[must_use]
pub fn webhook_body(d: &DueDelivery) -> Vec<u8> {
    json!({
        "id": d.id,
        "event": d.event_kind,
        "created_at": d.created_at,
        "payload": d.payload,
    })
    .to_string()
    .into_bytes()
}

/// The Discord message (content ≤ 2,000 characters, an embed description ≤ 4,096: Discord's
/// limits).
#[must_use]
pub fn discord_body(d: &DueDelivery) -> Value {
    let description = lines(&d.payload)
        .iter()
        .map(|(k, v)| format!("**{k}**: {v}"))
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "content": truncate(&title(&d.event_kind, &d.payload), 2000),
        "embeds": [{
            "title": truncate(&d.event_kind, 256),
            "description": truncate(&description, 4096),
            "timestamp": d.created_at,
        }],
        "allowed_mentions": {"parse": []},
    })
}

/// The e-mail of a notification.
#[must_use]
pub fn mail(to: &str, d: &DueDelivery) -> Mail {
    let title = title(&d.event_kind, &d.payload);
    let mut body = format!("{title}\n\n");
    for (k, v) in lines(&d.payload) {
        body.push_str(&format!("{k}: {v}\n"));
    }
    body.push_str(&format!(
        "\nEvent: {}\nQueued: {}\nDelivery: {}\n",
        d.event_kind,
        d.created_at.to_rfc3339(),
        d.id
    ));
    Mail {
        to: to.to_string(),
        subject: format!("[Just Trades] {title}"),
        body,
    }
}

/// A 429's wait: Discord's JSON `retry_after` (seconds, fractional), else `Retry-After`
/// (seconds).
fn retry_after(headers: &reqwest::header::HeaderMap, body: &str) -> Option<Duration> {
    let from_body = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    let from_header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    from_body
        .or(from_header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        // A receiver's wait is honoured up to an hour; longer is the back-off's business.
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

async fn answer(r: reqwest::Response) -> Result<(), SendError> {
    let status = r.status();
    if status.is_success() {
        return Ok(());
    }
    let headers = r.headers().clone();
    let body = r.text().await.unwrap_or_default();
    let said = truncate(body.trim(), 200);
    let reason = format!("the receiver answered {status}: {said}");
    match status.as_u16() {
        429 => Err(SendError::Retry {
            reason,
            after: retry_after(&headers, &body),
        }),
        300..=399 => Err(SendError::Permanent(format!(
            "the receiver answered {status} (a redirect): redirects are not followed; give the \
             final URL"
        ))),
        408 | 425 => Err(SendError::retry(reason)),
        400..=499 => Err(SendError::Permanent(reason)),
        _ => Err(SendError::retry(reason)),
    }
}

fn transport(e: reqwest::Error) -> SendError {
    // The resolver refused a private address: asking again will not change the answer.
    if let Some(refusal) = target::refused(&e) {
        return SendError::Permanent(refusal.to_string());
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Never the URL: it can hold the channel's own secret.
    let e = e.without_url();
    let mut reason = format!("{what}: {e}");
    if let Some(src) = std::error::Error::source(&e) {
        reason.push_str(&format!(" ({src})"));
    }
    SendError::retry(reason)
}

/// Sends one delivery on its opened channel. `http` must resolve names through
/// [`target::GuardedResolver`] (as the [`crate::Notifier`]'s client does) for private targets
/// to be refused; `allow_private` lets private IP literals through
/// ([`target::ALLOW_PRIVATE_ENV`]).
///
/// # Errors
/// [`SendError`] saying whether to try again.
pub async fn send(
    http: &reqwest::Client,
    mailer: Option<&dyn Mailer>,
    channel: &OpenChannel,
    d: &DueDelivery,
    now: DateTime<Utc>,
    allow_private: bool,
) -> Result<(), SendError> {
    if matches!(channel.kind, ChannelKind::Webhook | ChannelKind::Discord)
        && !allow_private
        && let Some(refusal) = target::literal_refusal(channel.target.expose())
    {
        return Err(SendError::Permanent(refusal.to_string()));
    }
    match channel.kind {
        ChannelKind::Webhook => {
            let body = webhook_body(d);
            let mut req = http
                .post(channel.target.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("x-jt-event", &d.event_kind)
                .header("x-jt-delivery", d.id.to_string());
            if let Some(secret) = &channel.signing_secret {
                req = req.header(
                    sign::HEADER,
                    sign::signature(secret.expose(), now.timestamp(), &body),
                );
            }
            let r = req.body(body).send().await.map_err(transport)?;
            answer(r).await
        }
        ChannelKind::Discord => {
            let r = http
                .post(channel.target.expose())
                .json(&discord_body(d))
                .send()
                .await
                .map_err(transport)?;
            answer(r).await
        }
        ChannelKind::Email => {
            let Some(mailer) = mailer else {
                return Err(SendError::Permanent(
                    "e-mail is not configured on this platform (JT_SMTP_URL)".into(),
                ));
            };
            mailer
                .send(&mail(channel.target.expose(), d))
                .await
                .map_err(|e| {
                    if e.is_transient() {
                        SendError::retry(e.to_string())
                    } else {
                        SendError::Permanent(e.to_string())
                    }
                })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jt_store::{ChannelId, DeliveryId, UserId};

    fn due(payload: Value) -> DueDelivery {
        DueDelivery {
            id: DeliveryId::new(),
            owner: UserId::new(),
            channel: ChannelId::new(),
            event_kind: "max_loss".into(),
            dedup_key: "k".into(),
            payload,
            attempts: 0,
            next_attempt_at: Utc::now(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn discord_messages_use_the_title_fit_discords_limits_and_mention_nobody() {
        let d = due(
            json!({"title": "Max loss @everyone", "account": "DEMO1", "note": "x".repeat(5000)}),
        );
        let b = discord_body(&d);
        assert_eq!(b["content"], "Max loss @everyone");
        assert_eq!(b["allowed_mentions"]["parse"], json!([]));
        let desc = b["embeds"][0]["description"].as_str().unwrap();
        assert!(desc.chars().count() <= 4096);
        assert!(desc.starts_with("**account**: DEMO1"), "{desc}");
    }

    #[test]
    fn a_mail_has_the_title_as_subject_and_every_field_in_its_body() {
        let d = due(json!({"account": "DEMO1", "limit": "500"}));
        let m = mail("a@b.test", &d);
        assert_eq!(m.subject, "[Just Trades] Notification: max loss");
        assert!(
            m.body.contains("account: DEMO1\nlimit: 500\n"),
            "{}",
            m.body
        );
        assert!(m.body.contains(&d.id.to_string()));
    }

    #[test]
    fn a_429_wait_comes_from_discords_body_or_the_header() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(
            retry_after(&h, r#"{"retry_after": 0.25, "global": false}"#),
            Some(Duration::from_millis(250))
        );
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h, ""), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&reqwest::header::HeaderMap::new(), "nope"),
            None
        );
    }
}
