//! Each watched account's risk figures as the risk monitor last computed them — the day's P&L,
//! the max daily loss and the distance to it, the prop-firm rule distances, the breach state —
//! in the `jt_risk_status` KV bucket (key `risk.<sub-account id>`). Written by `jt-risk` (the
//! lease holder, when a value changes, at most once a second per account, and again every
//! [`REFRESH_SECS`] while it watches), read by the API's status page.
//!
//! Why a bucket and not the monitor's HTTP status: the API has no line to the monitor's memory
//! (another process, another replica), and computing the figures itself would cost a broker
//! read per request and could disagree with the numbers the monitor acts on. A value carries
//! `as_of` (when the monitor last confirmed it), so a reader sees a stale value as stale.

use chrono::{DateTime, NaiveDate, Utc};
use jt_bus::{Bus, Definitions, KvError};
use jt_domain::propfirm::Distance;
use jt_ids::{SubAccountId, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The monitor rewrites an unchanged value this often, so `as_of` keeps telling the reader the
/// figures are live.
pub const REFRESH_SECS: i64 = 10;

/// A value whose `as_of` is older than this is stale (the monitor stopped, lost its lease or
/// cannot reach the bucket): three refreshes missed.
pub const STALE_AFTER_SECS: i64 = 3 * REFRESH_SECS;

/// The key of a sub-account's figures.
#[must_use]
pub fn key(sub: SubAccountId) -> String {
    format!("risk.{}", sub.0)
}

/// One account's risk figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskSnapshot {
    /// The sub-account.
    pub sub_account_id: SubAccountId,
    /// Its owner (a reader checks it against the caller as well as the key).
    pub owner: UserId,
    /// The trading day the figures belong to.
    pub trading_day: NaiveDate,
    /// Realised P&L of the trading day, when known.
    pub realized_pnl: Option<Decimal>,
    /// Open P&L, when known.
    pub open_pnl: Option<Decimal>,
    /// Where the open P&L came from: `quotes`, `broker`, `flat`, `unknown`.
    pub open_source: Option<String>,
    /// The max daily loss (the smallest of the account's enabled traders), when one is set.
    pub max_daily_loss: Option<Decimal>,
    /// `realised + open + limit`: what is left before the max daily loss (≤ 0: breached).
    pub max_daily_loss_distance: Option<Decimal>,
    /// The cash balance, when the broker reported it.
    pub balance: Option<Decimal>,
    /// The trailing drawdown's high-water mark the account is judged with.
    pub high_water_mark: Option<Decimal>,
    /// The prop-firm preset its rules started from.
    pub rules_preset: Option<String>,
    /// The distance to every prop-firm limit (empty without rules or figures).
    pub rules: Vec<Distance>,
    /// Breached (max daily loss or a prop-firm rule) for the trading day: new entries refused.
    pub breached: bool,
    /// When the figures last changed.
    pub changed_at: DateTime<Utc>,
    /// When the monitor last confirmed them.
    pub as_of: DateTime<Utc>,
}

impl RiskSnapshot {
    /// Whether the figures are older than [`STALE_AFTER_SECS`] at `now`.
    #[must_use]
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        (now - self.as_of).num_seconds() > STALE_AFTER_SECS
    }

    /// Whether the figures (not their times) equal `other`'s.
    #[must_use]
    pub fn same_figures(&self, other: &Self) -> bool {
        Self {
            changed_at: other.changed_at,
            as_of: other.as_of,
            ..self.clone()
        } == *other
    }
}

/// The figures of `sub`, if the monitor wrote any (and the day has not expired them).
///
/// # Errors
/// The bucket cannot be reached.
pub async fn read(bus: &Bus, sub: SubAccountId) -> Result<Option<RiskSnapshot>, KvError> {
    let kv = bus
        .kv(&Definitions::new(bus.namespace()).risk_status)
        .await?;
    Ok(match kv.get(&key(sub)).await? {
        // A value this build cannot read (a newer monitor) is "none", not an error that would
        // hide the rest of the page.
        Some(entry) => serde_json::from_slice(&entry.value).ok(),
        None => None,
    })
}

/// Writes `snapshot` under its sub-account's key.
///
/// # Errors
/// The bucket cannot be reached.
pub async fn write(bus: &Bus, snapshot: &RiskSnapshot) -> Result<(), KvError> {
    let kv = bus
        .kv(&Definitions::new(bus.namespace()).risk_status)
        .await?;
    let value = serde_json::to_vec(snapshot).unwrap_or_default();
    kv.put(&key(snapshot.sub_account_id), value.into()).await?;
    Ok(())
}

/// Removes the figures of an account no longer watched.
///
/// # Errors
/// The bucket cannot be reached.
pub async fn remove(bus: &Bus, sub: SubAccountId) -> Result<(), KvError> {
    let kv = bus
        .kv(&Definitions::new(bus.namespace()).risk_status)
        .await?;
    kv.delete(&key(sub), None).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn snapshot() -> RiskSnapshot {
        RiskSnapshot {
            sub_account_id: SubAccountId(uuid::Uuid::nil()),
            owner: UserId(uuid::Uuid::nil()),
            trading_day: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            realized_pnl: Some(Decimal::new(-12525, 2)),
            open_pnl: Some(Decimal::new(50, 0)),
            open_source: Some("quotes".into()),
            max_daily_loss: Some(Decimal::new(500, 0)),
            max_daily_loss_distance: Some(Decimal::new(42475, 2)),
            balance: None,
            high_water_mark: None,
            rules_preset: None,
            rules: Vec::new(),
            breached: false,
            changed_at: DateTime::from_timestamp(1_000, 0).unwrap(),
            as_of: DateTime::from_timestamp(1_000, 0).unwrap(),
        }
    }

    #[test]
    fn figures_compare_without_their_times_and_travel_as_exact_decimals() {
        let a = snapshot();
        let mut b = a.clone();
        b.as_of = DateTime::from_timestamp(2_000, 0).unwrap();
        assert!(a.same_figures(&b), "only the times differ");
        b.open_pnl = Some(Decimal::new(51, 0));
        assert!(!a.same_figures(&b));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["realized_pnl"], "-125.25");
        let back: RiskSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_value_is_stale_after_three_missed_refreshes() {
        let a = snapshot();
        assert!(!a.is_stale(a.as_of + chrono::Duration::seconds(STALE_AFTER_SECS)));
        assert!(a.is_stale(a.as_of + chrono::Duration::seconds(STALE_AFTER_SECS + 1)));
    }
}
