//! Notification channels and their delivery log (DOMAIN §12): where a user's alerts go — a
//! webhook (signed with the channel's secret), a Discord webhook or an e-mail address — which
//! events each channel gets, a test event, and every delivery with its attempts and last error.
//! The notifier (`jt-notify`, run by the risk service) sends; this module only keeps the
//! records.
//!
//! Rules enforced here, each answered with the field and the rule:
//! - a webhook URL is `https`, or `http` only to a loopback host (`localhost`, `127.0.0.0/8`,
//!   `::1`): a notification crossing a network in clear would show account names and P&L to
//!   anyone on the path, and the signature proves origin but hides nothing; a receiver on the
//!   same machine (development, a local relay) has no path to spy on;
//! - a Discord URL is `https://discord.com/api/webhooks/…` (or `discordapp.com`, and their
//!   `ptb.`/`canary.` hosts);
//! - an e-mail address is one plausible address (`name@domain.tld`, no spaces or brackets);
//! - events come from [`EVENTS`], at least one, each once.
//!
//! The target is sealed in the store and never shown again (a webhook URL often holds its own
//! token); a webhook channel's signing secret is shown once, in the answer that creates it.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jt_store::repo::notifications::{Channel, ChannelPatch, Delivery, DeliveryQuery, NewChannel};
use jt_store::{ChannelId, ChannelKind, DeliveryId, DeliveryStatus, Secret};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::routes::paging;
use crate::routes::views::{Page, word};
use crate::state::ApiState;

/// Every event kind a channel can get.
pub const EVENTS: &[&str] = &[
    "execution_failed",
    "unprotected_position",
    "protection_repaired",
    "max_loss",
    "rule_breach",
    "rule_warning",
    "needs_reauth",
    "kill_switch",
    "dead_letter",
    "test",
];

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKindInput {
    /// A URL that gets each event as signed JSON.
    Webhook,
    /// A Discord webhook URL.
    Discord,
    /// An e-mail address.
    Email,
}

impl From<ChannelKindInput> for ChannelKind {
    fn from(k: ChannelKindInput) -> Self {
        match k {
            ChannelKindInput::Webhook => ChannelKind::Webhook,
            ChannelKindInput::Discord => ChannelKind::Discord,
            ChannelKindInput::Email => ChannelKind::Email,
        }
    }
}

/// A notification channel (its target is not shown: it is sealed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: Uuid,
    /// `webhook`, `discord` or `email`.
    pub kind: String,
    /// Name.
    pub label: String,
    /// The event kinds it gets.
    pub events: Vec<String>,
    /// On or off.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        Self {
            id: c.id.0,
            kind: word(&c.kind),
            label: c.label,
            events: c.events,
            enabled: c.enabled,
            created_at: c.created_at,
        }
    }
}

/// A new channel, with its signing secret (webhooks): shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedChannel {
    /// The channel.
    #[serde(flatten)]
    pub channel: ChannelView,
    /// A webhook channel's signing secret (`whsec_…`): the key of `X-JT-Signature`
    /// (`docs/notifications.md`). Shown only here; absent for Discord and e-mail.
    pub signing_secret: Option<String>,
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "webhook",
    "label": "Ops hook",
    "target": "https://hooks.example.com/jt",
    "events": ["max_loss", "execution_failed"]
}))]
pub struct NewChannelRequest {
    /// `webhook`, `discord` or `email`.
    pub kind: ChannelKindInput,
    /// Name (1 to 100 characters).
    pub label: String,
    /// The webhook URL, Discord webhook URL or e-mail address.
    pub target: String,
    /// Event kinds to get (see the list in `docs/notifications.md`).
    pub events: Vec<String>,
}

/// Changes to a channel: absent fields keep their value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct ChannelPatchRequest {
    /// Name.
    #[serde(default)]
    pub label: Option<String>,
    /// A new URL or address (same rules as on create, for the channel's kind).
    #[serde(default)]
    pub target: Option<String>,
    /// Event kinds (replaces the list).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// On or off.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// A host the notifier would refuse without `JT_NOTIFY_ALLOW_PRIVATE_TARGETS`, known without a
/// lookup: a private IP literal or `localhost`. (A name resolving to a private address is
/// refused by the notifier at send time, where the lookup that counts happens.)
fn private_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => jt_notify::target::is_private(IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => jt_notify::target::is_private(IpAddr::V6(*ip)),
    }
}

fn https_url(target: &str, allow_private: bool) -> ApiResult<url::Url> {
    let u = url::Url::parse(target.trim())
        .map_err(|_| ApiError::invalid("target", "must be an absolute URL (https://…)"))?;
    let host = u
        .host()
        .ok_or_else(|| ApiError::invalid("target", "must name a host"))?;
    if !allow_private && private_host(&host) {
        return Err(ApiError::invalid(
            "target",
            "must not be a private, loopback or link-local address: notifications are not sent \
             into the platform's own network (an operator can allow it with \
             JT_NOTIFY_ALLOW_PRIVATE_TARGETS)",
        ));
    }
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback(&host) => Ok(u),
        "http" => Err(ApiError::invalid(
            "target",
            "must be https (http only to a loopback host such as 127.0.0.1)",
        )),
        _ => Err(ApiError::invalid("target", "must be an https URL")),
    }
}

fn plausible_email(target: &str) -> bool {
    let t = target.trim();
    let Some((local, domain)) = t.split_once('@') else {
        return false;
    };
    t.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && t.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\"\\".contains(c))
}

/// The target, checked for the channel's kind; `allow_private`: the operator's
/// `JT_NOTIFY_ALLOW_PRIVATE_TARGETS`.
fn target(kind: ChannelKind, target: &str, allow_private: bool) -> ApiResult<Secret> {
    match kind {
        ChannelKind::Webhook => {
            https_url(target, allow_private)?;
        }
        ChannelKind::Discord => {
            let u = url::Url::parse(target.trim()).map_err(|_| {
                ApiError::invalid(
                    "target",
                    "must be a Discord webhook URL (https://discord.com/api/webhooks/…)",
                )
            })?;
            let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
            let discord = ["discord.com", "discordapp.com"]
                .iter()
                .any(|d| host == *d || host == format!("ptb.{d}") || host == format!("canary.{d}"));
            if u.scheme() != "https" || !discord || !u.path().starts_with("/api/webhooks/") {
                return Err(ApiError::invalid(
                    "target",
                    "must be a Discord webhook URL (https://discord.com/api/webhooks/…)",
                ));
            }
        }
        ChannelKind::Email => {
            if !plausible_email(target) {
                return Err(ApiError::invalid(
                    "target",
                    "must be one e-mail address (name@example.com)",
                ));
            }
        }
    }
    Ok(Secret::new(target.trim()))
}

fn label(l: &str) -> ApiResult<String> {
    let t = l.trim();
    if t.is_empty() || t.chars().count() > 100 {
        return Err(ApiError::invalid("label", "must be 1 to 100 characters"));
    }
    Ok(t.to_string())
}

fn events(list: &[String]) -> ApiResult<Vec<String>> {
    if list.is_empty() {
        return Err(ApiError::invalid("events", "must name at least one event"));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let e = e.trim();
        if !EVENTS.contains(&e) {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!("must be one of {}", EVENTS.join(", ")),
            ));
        }
        if out.iter().any(|o| o == e) {
            return Err(ApiError::invalid(format!("events[{i}]"), "each event once"));
        }
        out.push(e.to_string());
    }
    Ok(out)
}

/// The caller's notification channels.
#[utoipa::path(
    get,
    path = "/notification-channels",
    tag = "notifications",
    responses((status = 200, description = "Channels", body = Vec<ChannelView>)),
    security(("session" = []), ("bearer" = []))
)]
pub async fn list_channels(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let list = state.store.notifications().channels(caller.owner()).await?;
    Ok(Json(list.into_iter().map(ChannelView::from).collect()))
}

/// Adds a channel. A webhook channel's answer holds its signing secret, shown only here.
#[utoipa::path(
    post,
    path = "/notification-channels",
    tag = "notifications",
    request_body = NewChannelRequest,
    responses(
        (status = 201, description = "Created", body = CreatedChannel),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn create_channel(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<NewChannelRequest>,
) -> ApiResult<(StatusCode, Json<CreatedChannel>)> {
    let kind = ChannelKind::from(req.kind);
    let new = NewChannel {
        kind,
        label: label(&req.label)?,
        target: target(kind, &req.target, state.config.allow_private_notify_targets)?,
        events: events(&req.events)?,
    };
    let (channel, secret) = state
        .store
        .notifications()
        .create_channel_with_secret(caller.owner(), new)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannel {
            channel: channel.into(),
            signing_secret: secret.map(|s| s.expose().to_string()),
        }),
    ))
}

/// Changes a channel (absent fields keep their value).
#[utoipa::path(
    patch,
    path = "/notification-channels/{channel_id}",
    tag = "notifications",
    params(("channel_id" = uuid::Uuid, Path, description = "The channel")),
    request_body = ChannelPatchRequest,
    responses(
        (status = 200, description = "The channel", body = ChannelView),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn update_channel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(channel_id): Path<ChannelId>,
    Json(req): Json<ChannelPatchRequest>,
) -> ApiResult<Json<ChannelView>> {
    let notifications = state.store.notifications();
    let current = notifications.channel(caller.owner(), channel_id).await?;
    let patch = ChannelPatch {
        label: req.label.as_deref().map(label).transpose()?,
        target: req
            .target
            .as_deref()
            .map(|t| target(current.kind, t, state.config.allow_private_notify_targets))
            .transpose()?,
        events: req.events.as_deref().map(events).transpose()?,
        enabled: req.enabled,
    };
    let c = notifications
        .update_channel(caller.owner(), channel_id, patch)
        .await?;
    Ok(Json(c.into()))
}

/// Removes a channel with its delivery log.
#[utoipa::path(
    delete,
    path = "/notification-channels/{channel_id}",
    tag = "notifications",
    params(("channel_id" = uuid::Uuid, Path, description = "The channel")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such channel", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn delete_channel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(channel_id): Path<ChannelId>,
) -> ApiResult<StatusCode> {
    state
        .store
        .notifications()
        .delete_channel(caller.owner(), channel_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook channel's new signing secret: shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"signing_secret": "whsec_Rk9P…"}))]
pub struct RotatedSecret {
    /// The new signing secret (`whsec_…`): every delivery from now on is signed with it, the
    /// old one signs nothing more.
    pub signing_secret: String,
}

/// Replaces a webhook channel's signing secret and shows the new one, once. The old secret
/// stops signing at once (no grace period with two signatures): a receiver that must not miss
/// a delivery accepts both while it switches (a delivery it refuses with a 4xx is not retried).
#[utoipa::path(
    post,
    path = "/notification-channels/{channel_id}/rotate-secret",
    tag = "notifications",
    params(("channel_id" = uuid::Uuid, Path, description = "The channel")),
    responses(
        (status = 200, description = "The new secret", body = RotatedSecret),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 409, description = "Not a webhook channel: it has no signing secret", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path(channel_id): Path<ChannelId>,
) -> ApiResult<Json<RotatedSecret>> {
    let secret = state
        .store
        .notifications()
        .rotate_signing_secret(caller.owner(), channel_id)
        .await?;
    Ok(Json(RotatedSecret {
        signing_secret: secret.expose().to_string(),
    }))
}

/// A queued test event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestQueued {
    /// The test event's key: find its delivery in `/notification-deliveries`.
    pub dedup_key: String,
}

/// Queues a `test` event on one channel (whatever events it gets), to check it end to end.
#[utoipa::path(
    post,
    path = "/notification-channels/{channel_id}/test",
    tag = "notifications",
    params(("channel_id" = uuid::Uuid, Path, description = "The channel")),
    responses(
        (status = 202, description = "Queued", body = TestQueued),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 409, description = "The channel is disabled", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn test_channel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(channel_id): Path<ChannelId>,
) -> ApiResult<(StatusCode, Json<TestQueued>)> {
    let notifications = state.store.notifications();
    let channel = notifications.channel(caller.owner(), channel_id).await?;
    if !channel.enabled {
        return Err(ApiError::conflict(
            "the channel is disabled: enable it to test it",
        ));
    }
    let key = format!("test:{}", Uuid::now_v7());
    let payload = serde_json::json!({
        "title": format!("Test notification for \"{}\"", channel.label),
        "channel": channel.label,
        "requested_at": Utc::now(),
    });
    notifications
        .enqueue_to(caller.owner(), channel_id, "test", &key, &payload)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { dedup_key: key })))
}

/// One delivery: an event on one channel, with its attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Id (the webhook body's `id` and `X-JT-Delivery`).
    pub id: Uuid,
    /// The channel.
    pub channel_id: Uuid,
    /// Event kind.
    pub event: String,
    /// The event's de-duplication key.
    pub dedup_key: String,
    /// What was (or is to be) sent.
    pub payload: serde_json::Value,
    /// `pending`, `sent` or `failed` (given up).
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// Pending: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Delivered.
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.0,
            channel_id: d.channel.0,
            event: d.event_kind,
            dedup_key: d.dedup_key,
            payload: d.payload,
            status: word(&d.status),
            attempts: d.attempts,
            last_error: d.last_error,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
            created_at: d.created_at,
            sent_at: d.sent_at,
        }
    }
}

/// Which deliveries to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only this channel's deliveries.
    pub channel_id: Option<Uuid>,
    /// Only this state: pending, sent, failed.
    pub status: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
}

/// The delivery log, newest first: every event queued for the caller's channels, with its
/// status, attempts and last error.
#[utoipa::path(
    get,
    path = "/notification-deliveries",
    tag = "notifications",
    params(DeliveryFilter),
    responses(
        (status = 200, description = "A page of the delivery log", body = Page<DeliveryView>),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn deliveries(
    State(state): State<ApiState>,
    caller: Caller,
    Query(f): Query<DeliveryFilter>,
) -> ApiResult<Json<Page<DeliveryView>>> {
    let limit = paging::limit(f.limit, 50, 200)?;
    let status =
        paging::one_of::<DeliveryStatus>("status", f.status.as_deref(), "pending, sent, failed")?;
    let notifications = state.store.notifications();
    // Filtering by another user's channel is a 404, as for a missing one.
    if let Some(c) = f.channel_id {
        notifications.channel(caller.owner(), ChannelId(c)).await?;
    }
    let page = notifications
        .deliveries(
            caller.owner(),
            &DeliveryQuery {
                channel: f.channel_id.map(ChannelId),
                status,
                after: f
                    .cursor
                    .as_deref()
                    .map(paging::decode_cursor)
                    .transpose()?
                    .map(|(t, id)| (t, DeliveryId(id))),
                limit,
            },
        )
        .await?;
    let next_cursor = (page.len() as u64 == limit)
        .then(|| {
            page.last()
                .map(|d| paging::encode_cursor(d.created_at, d.id.0))
        })
        .flatten();
    Ok(Json(Page {
        items: page.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn webhook_urls_are_https_or_loopback_http() {
        for ok in [
            "https://hooks.example.com/jt",
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]:9000/x",
            "https://10.0.0.1/hook",
        ] {
            assert!(target(ChannelKind::Webhook, ok, true).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/jt",
            "http://10.0.0.1/hook",
            "ftp://example.com/x",
            "hooks.example.com",
            "",
        ] {
            let e = target(ChannelKind::Webhook, bad, true).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("target"), "{bad}");
        }
    }

    #[test]
    fn private_literal_targets_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]:9000/x",
            "https://10.0.0.1/hook",
            "https://192.168.1.20/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
        ] {
            let e = target(ChannelKind::Webhook, bad, false).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("target"), "{bad}");
            assert!(e.message.contains("private"), "{bad}: {}", e.message);
        }
        for ok in ["https://hooks.example.com/jt", "https://8.8.8.8/hook"] {
            assert!(target(ChannelKind::Webhook, ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn discord_urls_are_discords_webhooks() {
        for ok in [
            "https://discord.com/api/webhooks/1/abc",
            "https://discordapp.com/api/webhooks/1/abc",
            "https://canary.discord.com/api/webhooks/1/abc",
        ] {
            assert!(target(ChannelKind::Discord, ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "https://discord.com.evil.test/api/webhooks/1/abc",
            "http://discord.com/api/webhooks/1/abc",
            "https://discord.com/channels/1",
            "https://evil.test/api/webhooks/1/abc",
        ] {
            assert!(target(ChannelKind::Discord, bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_addresses_are_plausible() {
        assert!(target(ChannelKind::Email, "trader@example.com", false).is_ok());
        assert!(
            target(
                ChannelKind::Email,
                " ops.team+jt@mail.example.co.uk ",
                false
            )
            .is_ok()
        );
        for bad in [
            "trader",
            "trader@localhost",
            "a@b@c.com",
            "a b@example.com",
            "x@example.com\r\nBcc: y@z.com",
            "Trader <t@example.com>",
            "@example.com",
        ] {
            assert!(target(ChannelKind::Email, bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_come_from_the_list_once_each() {
        assert_eq!(
            events(&["max_loss".into(), "test".into()]).unwrap(),
            ["max_loss", "test"]
        );
        assert_eq!(events(&[]).unwrap_err().field.as_deref(), Some("events"));
        assert_eq!(
            events(&["max_loss".into(), "nope".into()])
                .unwrap_err()
                .field
                .as_deref(),
            Some("events[1]")
        );
        assert_eq!(
            events(&["max_loss".into(), "max_loss".into()])
                .unwrap_err()
                .field
                .as_deref(),
            Some("events[1]")
        );
    }
}
