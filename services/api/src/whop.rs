//! Whop, the payment provider of the replaced platform: its signed webhooks turn memberships
//! into subscriptions of our plans (DOMAIN §11).
//!
//! **Signature.** Whop's v1 webhooks follow the Standard Webhooks specification: headers
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (one or more
//! space-separated `v1,<base64>`), the signature being HMAC-SHA256 over
//! `<id>.<timestamp>.<raw body>` with the endpoint's secret (`whsec_` + base64 of the key, as
//! the dashboard shows it). A missing header, a timestamp more than five minutes from our clock,
//! or no matching signature is refused with 401 before the body is read as JSON.
//!
//! **Replays and order.** A delivery inside the five minutes is verified again and applied
//! again: harmless, because a subscription is keyed by Whop's membership id and an event
//! older than the stored state never overwrites it (the store's `apply_subscription`, ordered
//! by the event's own time). Outside the five minutes a replay is refused by its timestamp.
//!
//! **Events.** `membership.activated` / `membership.went_valid` make the membership's plan
//! current (`trialing` when Whop says so); `membership.deactivated` / `membership.went_invalid`
//! end it (`canceled`, or `expired` when Whop says so). A membership of a product that is not
//! one of ours (`JT_WHOP_PRODUCTS`) and other event types are acknowledged and ignored, so
//! Whop stops retrying. A buyer without an account gets one (approved, random password) and a
//! mail to choose a password — the replaced platform's activation mail.
//!
//! **Periodic sync** (the safety net for a delivery Whop gave up on after its retries): with
//! `JT_WHOP_API_KEY`, every `JT_WHOP_SYNC_SECS` (600) each API replica pages through Whop's
//! memberships (`GET /api/v2/memberships?page=N&per=50`, bearer key; `JT_WHOP_API_URL` for
//! another host) and applies each one's current state exactly as a webhook would, dated at
//! the read (so it wins over any event older than the read, and loses to a later one). The
//! provider is behind [`MembershipSource`]; tests serve it from a local fake.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use jt_runtime::config::{ConfigError, Env, optional};
use jt_store::repo::auth::NewUser;
use jt_store::repo::plans::ProviderSubscription;
use jt_store::{Role, StoreError, SubscriptionStatus, UserId};
use serde_json::Value;
use sha2::Sha256;

use crate::error::{ApiError, ApiResult};
use crate::mailer::Mail;
use crate::state::ApiState;

/// How far a webhook's timestamp may be from our clock.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The Whop settings.
#[derive(Clone)]
pub struct WhopConfig {
    /// The webhook HMAC key (the secret without `whsec_`, base64-decoded); `None`: the webhook
    /// route answers 404.
    pub key: Option<Vec<u8>>,
    /// Whop product id → our plan code.
    pub products: BTreeMap<String, String>,
    /// The API key of the periodic sync (`JT_WHOP_API_KEY`); `None`: no sync.
    pub api_key: Option<jt_store::Secret>,
    /// Whop's API base (`JT_WHOP_API_URL`, default `https://api.whop.com`).
    pub api_url: String,
    /// How often the sync runs (`JT_WHOP_SYNC_SECS`, default 600).
    pub sync_every: Duration,
}

impl std::fmt::Debug for WhopConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhopConfig")
            .field("products", &self.products)
            .finish_non_exhaustive()
    }
}

impl WhopConfig {
    /// Settings for a webhook key and products only (no sync), as tests and simple installs
    /// use them.
    #[must_use]
    pub fn webhooks(key: Vec<u8>, products: BTreeMap<String, String>) -> Self {
        Self {
            key: Some(key),
            products,
            api_key: None,
            api_url: "https://api.whop.com".into(),
            sync_every: Duration::from_secs(600),
        }
    }

    /// From `JT_WHOP_WEBHOOK_SECRET`, `JT_WHOP_API_KEY`, `JT_WHOP_PRODUCTS`,
    /// `JT_WHOP_API_URL` and `JT_WHOP_SYNC_SECS`; `None` when neither the secret nor the API
    /// key is set.
    ///
    /// # Errors
    /// A secret that is not `whsec_<base64>` (or plain base64), a product list that is not
    /// `id=plan,…`, a malformed number.
    pub fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        let secret = optional::<String>(env, "JT_WHOP_WEBHOOK_SECRET")?;
        let api_key = optional::<String>(env, "JT_WHOP_API_KEY")?
            .filter(|k| !k.trim().is_empty())
            .map(jt_store::Secret::new);
        if secret.is_none() && api_key.is_none() {
            return Ok(None);
        }
        let invalid = |name: &str, value: &str, reason: &str| ConfigError::Invalid {
            name: name.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let key = secret
            .map(|s| {
                Self::key_of(&s).ok_or_else(|| {
                    invalid(
                        "JT_WHOP_WEBHOOK_SECRET",
                        "(hidden)",
                        "must be the webhook secret as Whop shows it: whsec_ followed by base64",
                    )
                })
            })
            .transpose()?;
        let list = optional::<String>(env, "JT_WHOP_PRODUCTS")?.unwrap_or_default();
        let mut products = BTreeMap::new();
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (product, plan) = pair
                .split_once('=')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "JT_WHOP_PRODUCTS",
                        &list,
                        "must be whop product id = plan code pairs: prod_abc=pro,prod_def=basic",
                    )
                })?;
            products.insert(product.to_string(), plan.to_string());
        }
        let api_url = jt_runtime::config::or_default(
            env,
            "JT_WHOP_API_URL",
            "https://api.whop.com".to_string(),
        )?
        .trim_end_matches('/')
        .to_string();
        let sync_every = Duration::from_secs(
            jt_runtime::config::or_default::<u64>(env, "JT_WHOP_SYNC_SECS", 600)?.max(30),
        );
        Ok(Some(Self {
            key,
            products,
            api_key,
            api_url,
            sync_every,
        }))
    }

    /// The HMAC key of a secret as Whop shows it.
    #[must_use]
    pub fn key_of(secret: &str) -> Option<Vec<u8>> {
        let b64 = secret
            .trim()
            .strip_prefix("whsec_")
            .unwrap_or(secret.trim());
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .filter(|k| !k.is_empty())
    }
}

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A Standard Webhooks header is missing or unreadable.
    MissingHeader(&'static str),
    /// The timestamp is outside the tolerance (a replay, or a badly wrong clock).
    Stale,
    /// No signature matches.
    BadSignature,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingHeader(h) => write!(f, "the {h} header is missing or unreadable"),
            Self::Stale => write!(f, "the webhook-timestamp is more than 5 minutes from now"),
            Self::BadSignature => write!(f, "no webhook-signature matches the body"),
        }
    }
}

/// The Standard Webhooks signature of a delivery: `v1,<base64 HMAC-SHA256>`.
#[must_use]
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this cannot fail.
        unreachable!("HMAC accepts any key length")
    });
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Checks a delivery: headers present, timestamp within [`TOLERANCE`] of `now`, one of the
/// signatures matching (compared in constant time).
///
/// # Errors
/// [`Refused`] with the reason.
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<i64, Refused> {
    let id = id
        .filter(|v| !v.is_empty())
        .ok_or(Refused::MissingHeader("webhook-id"))?;
    let ts: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(Refused::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures
        .filter(|v| !v.is_empty())
        .ok_or(Refused::MissingHeader("webhook-signature"))?;
    let tolerance = i64::try_from(TOLERANCE.as_secs()).unwrap_or(300);
    if (now.timestamp() - ts).abs() > tolerance {
        return Err(Refused::Stale);
    }
    let expected = sign(key, id, ts, body);
    let expected = expected.as_bytes();
    let matched = signatures.split_whitespace().any(|candidate| {
        let c = candidate.as_bytes();
        c.len() == expected.len()
            && c.iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matched {
        Ok(ts)
    } else {
        Err(Refused::BadSignature)
    }
}

/// What a membership event says, read tolerantly from Whop's v1 (`type`, `data`) and legacy
/// (`action`, `data` or `body`) shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipEvent {
    /// Whop's membership id (`mem_…`): our subscription's provider id.
    pub membership_id: String,
    /// The buyer's e-mail.
    pub email: Option<String>,
    /// Whop's product id.
    pub product_id: String,
    /// The state it puts the subscription in.
    pub status: SubscriptionStatus,
    /// The end of the paid period, when Whop gives it.
    pub period_end: Option<DateTime<Utc>>,
}

/// Reads a membership event; `None` for any other event (acknowledged, ignored).
#[must_use]
pub fn membership_event(body: &Value) -> Option<MembershipEvent> {
    let kind = body
        .get("type")
        .or_else(|| body.get("action"))
        .and_then(Value::as_str)?;
    let data = body.get("data").or_else(|| body.get("body"))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let whop_status = text(data.get("status")).unwrap_or_default();
    let status = match kind {
        "membership.activated" | "membership.went_valid" | "membership_went_valid" => {
            if whop_status == "trialing" {
                SubscriptionStatus::Trialing
            } else if whop_status == "past_due" {
                SubscriptionStatus::PastDue
            } else {
                SubscriptionStatus::Active
            }
        }
        "membership.deactivated" | "membership.went_invalid" | "membership_went_invalid" => {
            if whop_status == "expired" {
                SubscriptionStatus::Expired
            } else {
                SubscriptionStatus::Canceled
            }
        }
        _ => return None,
    };
    let membership_id = text(data.get("id")).filter(|s| !s.is_empty())?;
    let product_id = text(data.get("product").and_then(|p| p.get("id")))
        .or_else(|| text(data.get("product_id")))
        .or_else(|| text(data.get("access_pass").and_then(|p| p.get("id"))))?;
    let email = text(data.get("user").and_then(|u| u.get("email")))
        .or_else(|| text(data.get("email")))
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty());
    let period_end = data.get("renewal_period_end").and_then(time_of);
    Some(MembershipEvent {
        membership_id,
        email,
        product_id,
        status,
        period_end,
    })
}

/// A time as Whop writes it: RFC 3339 (v1) or Unix seconds (legacy).
fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => n.as_i64().and_then(|s| Utc.timestamp_opt(s, 0).single()),
        _ => None,
    }
}

/// What a Whop delivery (or a synced membership) did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WhopAnswer {
    /// `applied`, `stale` (older than the stored state), or `ignored` with the reason.
    pub result: String,
    /// Why it was ignored.
    pub reason: Option<String>,
}

impl WhopAnswer {
    /// Acknowledged and ignored, with the reason.
    #[must_use]
    pub fn ignored(reason: impl Into<String>) -> Self {
        Self {
            result: "ignored".into(),
            reason: Some(reason.into()),
        }
    }
}

/// Applies a membership's state, as of `at`, to the subscription of its buyer (made when a
/// buyer without an account activates).
///
/// # Errors
/// 503 when the product's plan is not defined yet (Whop retries; the sync catches up);
/// database errors.
pub async fn apply(
    state: &ApiState,
    config: &WhopConfig,
    event: MembershipEvent,
    at: DateTime<Utc>,
) -> ApiResult<WhopAnswer> {
    let Some(plan_code) = config.products.get(&event.product_id) else {
        tracing::debug!(product = %event.product_id, "Whop membership of a product that is no plan of ours");
        return Ok(WhopAnswer::ignored(format!(
            "product {} is not mapped to a plan (JT_WHOP_PRODUCTS)",
            event.product_id
        )));
    };
    let Some(email) = event.email.clone() else {
        return Ok(WhopAnswer::ignored("the membership carries no e-mail"));
    };
    let activates = matches!(
        event.status,
        SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
    );
    let user = match state.store.system().user_by_email(&email).await? {
        Some(u) => u.id,
        None if activates => activate(state, &email).await?,
        None => return Ok(WhopAnswer::ignored("no account with this e-mail")),
    };
    let applied = state
        .store
        .plans()
        .apply_subscription(ProviderSubscription {
            user,
            plan_code: plan_code.clone(),
            provider: "whop".into(),
            provider_subscription_id: event.membership_id,
            status: event.status,
            current_period_end: event.period_end,
            provider_updated_at: at,
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => {
                tracing::error!(plan = %plan_code, "JT_WHOP_PRODUCTS names a plan that does not exist");
                ApiError::unavailable("the plan of this product is not defined yet; retry later")
            }
            other => other.into(),
        })?;
    Ok(WhopAnswer {
        result: if applied { "applied" } else { "stale" }.into(),
        reason: None,
    })
}

/// An account for a buyer who has none: approved, with a random password, and a mail with a
/// single-use link to choose one (valid one hour; a password reset renews it).
async fn activate(state: &ApiState, email: &str) -> ApiResult<UserId> {
    let created = state
        .store
        .users()
        .register(NewUser {
            email: email.to_string(),
            display_name: None,
            password: jt_store::auth::random_token(),
            role: Role::User,
            approved: true,
        })
        .await;
    let user = match created {
        Ok(u) => u.id,
        // A concurrent delivery made it first.
        Err(StoreError::Conflict { .. }) => {
            return state
                .store
                .system()
                .user_by_email(email)
                .await?
                .map(|u| u.id)
                .ok_or_else(|| ApiError::unavailable("retry"));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(token) = state.store.users().start_password_reset(email).await? {
        let link = format!(
            "{}/reset-password?token={}",
            state.config.public_url,
            token.expose()
        );
        let mail = Mail {
            to: email.to_string(),
            subject: "Your Just Trades account is ready".into(),
            body: format!(
                "Thank you for your purchase. Your account is ready.\n\n\
                 Open this link within one hour to choose your password:\n{link}\n\n\
                 If it has expired, ask for a new one from the sign-in page (\"forgot \
                 password\").\n"
            ),
        };
        if let Err(e) = state.mailer.send(&mail).await {
            tracing::error!(error = %e, "activation mail not sent");
        }
    }
    Ok(user)
}

/// One page of memberships from the provider.
#[derive(Debug, Clone, Default)]
pub struct MembershipPage {
    /// The memberships of the page, each as its current state.
    pub memberships: Vec<MembershipEvent>,
    /// Whether more pages follow.
    pub more: bool,
}

/// Where the sync reads memberships (Whop's API; a fake in tests).
#[async_trait::async_trait]
pub trait MembershipSource: Send + Sync {
    /// Page `page` (from 1) of the company's memberships.
    ///
    /// # Errors
    /// The provider could not be read (the pass stops; the next one starts over).
    async fn page(&self, page: u32) -> Result<MembershipPage, String>;
}

/// Whop's REST API: `GET {base}/api/v2/memberships?page=N&per=50` with the bearer key.
pub struct WhopHttp {
    client: reqwest::Client,
    base: String,
    key: jt_store::Secret,
}

impl WhopHttp {
    /// A client for `base` with `key`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(base: &str, key: jt_store::Secret) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            key,
        })
    }
}

#[async_trait::async_trait]
impl MembershipSource for WhopHttp {
    async fn page(&self, page: u32) -> Result<MembershipPage, String> {
        let r = self
            .client
            .get(format!(
                "{}/api/v2/memberships?page={page}&per=50",
                self.base
            ))
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(|e| format!("Whop memberships: {e}"))?;
        let status = r.status();
        if !status.is_success() {
            return Err(format!("Whop memberships answered {status}"));
        }
        let body: Value = r
            .json()
            .await
            .map_err(|e| format!("Whop memberships: not JSON: {e}"))?;
        Ok(memberships_page(&body))
    }
}

/// Reads Whop's v2 list answer (`data`, `pagination.current_page`/`total_page`).
#[must_use]
pub fn memberships_page(body: &Value) -> MembershipPage {
    let memberships = body
        .get("data")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(membership_state).collect())
        .unwrap_or_default();
    let current = body
        .pointer("/pagination/current_page")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let total = body
        .pointer("/pagination/total_page")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    MembershipPage {
        memberships,
        more: current < total,
    }
}

/// A listed membership's current state: valid ones active (or trialing / past due as Whop
/// says), the others canceled (or expired).
fn membership_state(m: &Value) -> Option<MembershipEvent> {
    let valid = m.get("valid").and_then(Value::as_bool)?;
    let kind = if valid {
        "membership.went_valid"
    } else {
        "membership.went_invalid"
    };
    membership_event(&serde_json::json!({ "type": kind, "data": m }))
}

/// What one sync pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Memberships applied.
    pub applied: u64,
    /// Older than what is stored (a webhook was later).
    pub stale: u64,
    /// Not ours, without an e-mail, or without an account to end.
    pub ignored: u64,
    /// Failed to apply (logged; the next pass tries again).
    pub failed: u64,
}

/// One pass over every page of memberships.
///
/// # Errors
/// The provider could not be read (what was applied before stays applied).
pub async fn sync_once(
    state: &ApiState,
    config: &WhopConfig,
    source: &dyn MembershipSource,
) -> Result<SyncReport, String> {
    let mut report = SyncReport::default();
    // A bound, so a provider that always says "more" cannot keep a pass going forever.
    for page in 1..=1000u32 {
        let at = Utc::now();
        let p = source.page(page).await?;
        for m in p.memberships {
            match apply(state, config, m, at).await {
                Ok(a) if a.result == "applied" => report.applied += 1,
                Ok(a) if a.result == "stale" => report.stale += 1,
                Ok(_) => report.ignored += 1,
                Err(e) => {
                    tracing::warn!(error = %e.body().error.message, "a Whop membership was not applied");
                    report.failed += 1;
                }
            }
        }
        if !p.more {
            break;
        }
    }
    Ok(report)
}

/// Runs the sync every `config.sync_every` until `stop`.
pub async fn run_sync(
    state: ApiState,
    config: WhopConfig,
    source: Box<dyn MembershipSource>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.sync_every) => {}
        }
        match sync_once(&state, &config, source.as_ref()).await {
            Ok(r) => tracing::info!(
                applied = r.applied,
                stale = r.stale,
                ignored = r.ignored,
                failed = r.failed,
                "Whop sync"
            ),
            Err(e) => tracing::warn!(error = %e, "Whop sync failed; the next pass starts over"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The Standard Webhooks specification's published test vector.
    #[test]
    fn the_standard_webhooks_vector_verifies() {
        let key = WhopConfig::key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1_614_265_330;
        assert_eq!(
            sign(&key, id, ts, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let now = Utc.timestamp_opt(ts + 10, 0).single().unwrap();
        let sig = format!("v1,bm90IGl0 {}", sign(&key, id, ts, body));
        assert_eq!(
            verify(&key, Some(id), Some("1614265330"), Some(&sig), body, now),
            Ok(ts)
        );
        // Tampered body, wrong id, stale, missing headers.
        assert_eq!(
            verify(&key, Some(id), Some("1614265330"), Some(&sig), b"{}", now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(
                &key,
                Some("msg_x"),
                Some("1614265330"),
                Some(&sig),
                body,
                now
            ),
            Err(Refused::BadSignature)
        );
        let late = Utc.timestamp_opt(ts + 301, 0).single().unwrap();
        assert_eq!(
            verify(&key, Some(id), Some("1614265330"), Some(&sig), body, late),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify(&key, None, Some("1614265330"), Some(&sig), body, now),
            Err(Refused::MissingHeader("webhook-id"))
        );
        assert_eq!(
            verify(&key, Some(id), Some("soon"), Some(&sig), body, now),
            Err(Refused::MissingHeader("webhook-timestamp"))
        );
    }

    #[test]
    fn membership_events_of_both_shapes_are_read() {
        let v1 = serde_json::json!({
            "type": "membership.activated", "api_version": "v1",
            "data": {"id": "mem_1", "status": "trialing", "product": {"id": "prod_a"},
                     "user": {"email": "Buyer@Example.com"},
                     "renewal_period_end": "2027-01-01T00:00:00Z"}
        });
        let e = membership_event(&v1).unwrap();
        assert_eq!(e.status, SubscriptionStatus::Trialing);
        assert_eq!(e.email.as_deref(), Some("buyer@example.com"));
        assert_eq!(e.product_id, "prod_a");
        assert!(e.period_end.is_some());
        let legacy = serde_json::json!({
            "action": "membership.went_invalid",
            "data": {"id": "mem_2", "status": "expired", "product": {"id": "pass_b"},
                     "email": "x@example.com", "renewal_period_end": 1_700_000_000}
        });
        let e = membership_event(&legacy).unwrap();
        assert_eq!(e.status, SubscriptionStatus::Expired);
        assert_eq!(e.membership_id, "mem_2");
        assert!(
            membership_event(&serde_json::json!({"type": "payment.succeeded", "data": {}}))
                .is_none()
        );
        assert!(
            membership_event(
                &serde_json::json!({"type": "membership.activated", "data": {"id": "mem_3"}})
            )
            .is_none()
        );
    }
}
