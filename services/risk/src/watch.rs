//! Which accounts the risk monitor watches, and with which limits.
//!
//! An account is watched when it is active (its login enabled, with credentials, not waiting
//! for re-authentication; the sub-account active) and either at least one **enabled** trader on
//! it has a `max_daily_loss` above zero, or it has prop-firm rules (DOMAIN.md §14) — a rule
//! set binds the account whoever trades it, a strategy or a person. Several traders on one account (several strategies) may set
//! different limits: the account's limit is the **smallest** of them — the strictest promise any
//! of its strategies made holds for the whole account, because a loss is the account's, not a
//! strategy's.
//!
//! An account is watched too when it follows a leader with a **daily loss limit** of its own
//! (the follower's copy risk limit, `followers.daily_loss_limit`): reached, the follower is
//! locked out and its account flattened for the trading day ([`FollowerLimit`]), or with a
//! **max drawdown** (`followers.max_drawdown`): measured from the follower's own equity peak
//! (`follower_peaks`, started here when the follower is first watched), reached, the follower
//! is locked out until its owner unlocks it and the account flattened.

use std::collections::HashMap;

use jt_broker::BrokerKind;
use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::repo::follower_peaks::FollowerPeak;
use jt_store::repo::rules::AccountRules;
use jt_store::{FollowerId, Store, StoreError, SubAccountId};
use rust_decimal::Decimal;

/// One watched account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The login it is reached through.
    pub login: BrokerAccount,
    /// The sub-account.
    pub sub: SubAccount,
    /// The daily loss limit in dollars (> 0), when a trader sets one.
    pub limit: Option<Decimal>,
    /// The account's prop-firm rules, with the stored trailing mark, when it has any.
    pub rules: Option<AccountRules>,
    /// The followers on this account with a daily loss limit or a max drawdown of their own.
    pub followers: Vec<FollowerLimit>,
}

/// A follower (copy trading) with copy risk limits: a daily loss limit, a max drawdown, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerLimit {
    /// The follower.
    pub id: FollowerId,
    /// Its daily loss limit in dollars (> 0), if any.
    pub limit: Option<Decimal>,
    /// Its max drawdown in dollars (> 0), if any.
    pub max_drawdown: Option<Decimal>,
    /// Its equity peak tracking (with a max drawdown).
    pub peak: Option<FollowerPeak>,
    /// Why it is locked out, when it is (by this service's limit or anything else).
    pub lockout: Option<String>,
}

/// How a lock this service sets begins: a lock of another origin is never lifted here.
pub const FOLLOWER_LOCK: &str = "daily loss limit reached";

/// How a max drawdown lock begins (lifted only by the owner, through the API).
pub const DRAWDOWN_LOCK: &str = "max drawdown reached";

/// Whether a follower's lock (its `reason`) is lifted at the first survey of a trading day
/// without a daily loss breach: only a daily loss lock this service set. A max drawdown lock
/// stays until the owner unlocks the follower; a lock of any other origin is left alone.
#[must_use]
pub fn lifted_at_next_day(reason: &str) -> bool {
    reason.starts_with(FOLLOWER_LOCK)
}

impl Watched {
    /// The strictest daily loss limit of the followers not locked out on this account.
    #[must_use]
    pub fn follower_limit(&self) -> Option<Decimal> {
        strictest(
            self.followers
                .iter()
                .filter(|f| f.lockout.is_none())
                .filter_map(|f| f.limit),
        )
    }

    /// Whether the venue pushes the account's realised P&L (cash balance events), so it need
    /// not be polled often: the Tradovate family (the built-in simulator speaks it).
    #[must_use]
    pub fn pushes_cash(&self) -> bool {
        matches!(
            self.login.broker,
            BrokerKind::Tradovate | BrokerKind::NinjaTrader | BrokerKind::Sim
        )
    }
}

/// The strictest positive limit among `limits`; `None` when every one is off (zero).
#[must_use]
pub fn strictest(limits: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
    limits.into_iter().filter(|l| *l > Decimal::ZERO).min()
}

/// Every watched account now.
///
/// # Errors
/// Database errors.
pub async fn survey(store: &Store) -> Result<Vec<Watched>, StoreError> {
    let mut watched = Vec::new();
    let mut by_owner: HashMap<_, Vec<BrokerAccount>> = HashMap::new();
    for account in store.system().active_accounts().await? {
        if !account.needs_reauth {
            by_owner.entry(account.owner).or_default().push(account);
        }
    }
    let mut rules: HashMap<SubAccountId, AccountRules> = store
        .rules()
        .all()
        .await?
        .into_iter()
        .map(|r| (r.sub_account, r))
        .collect();
    for (owner, logins) in by_owner {
        let mut followers: HashMap<SubAccountId, Vec<FollowerLimit>> = HashMap::new();
        for leader in store.copying().leaders(owner).await? {
            for f in store.copying().followers(owner, leader.id).await? {
                let limit = f.daily_loss_limit.filter(|l| *l > Decimal::ZERO);
                let max_drawdown = f.max_drawdown.filter(|l| *l > Decimal::ZERO);
                if limit.is_none() && max_drawdown.is_none() {
                    continue;
                }
                // The peak is measured from the first survey that watches the drawdown.
                let peak = match max_drawdown {
                    Some(_) => Some(store.risk().follower_peak(owner, f.id).await?),
                    None => None,
                };
                followers
                    .entry(f.sub_account)
                    .or_default()
                    .push(FollowerLimit {
                        id: f.id,
                        limit,
                        max_drawdown,
                        peak,
                        lockout: f.locked_out.then(|| f.lockout_reason.unwrap_or_default()),
                    });
            }
        }
        let traders = store.traders().list(owner).await?;
        let mut limits: HashMap<SubAccountId, Vec<Decimal>> = HashMap::new();
        if traders.iter().any(|t| t.enabled) {
            let recorders: HashMap<_, _> = store
                .recorders()
                .list(owner)
                .await?
                .into_iter()
                .map(|r| (r.id, r.settings))
                .collect();
            for t in traders.iter().filter(|t| t.enabled) {
                if let Some(settings) = recorders.get(&t.recorder) {
                    limits
                        .entry(t.sub_account)
                        .or_default()
                        .push(settings.resolve(&t.overrides).max_daily_loss);
                }
            }
        }
        for login in logins {
            for sub in store
                .accounts()
                .sub_accounts(owner, login.id)
                .await?
                .into_iter()
                .filter(|s| s.active)
            {
                let limit = limits
                    .get(&sub.id)
                    .and_then(|l| strictest(l.iter().copied()));
                // Rules are keyed by sub-account; the owner check keeps another user's row
                // (impossible by the foreign key, cheap to be sure of) off this account.
                let rules = rules.remove(&sub.id).filter(|r| r.owner == owner);
                let followers = followers.remove(&sub.id).unwrap_or_default();
                if limit.is_some() || rules.is_some() || !followers.is_empty() {
                    watched.push(Watched {
                        login: login.clone(),
                        sub,
                        limit,
                        rules,
                        followers,
                    });
                }
            }
        }
    }
    Ok(watched)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn only_a_daily_loss_lock_is_lifted_at_the_next_trading_day() {
        assert!(lifted_at_next_day(
            "daily loss limit reached on 2026-12-07: the account's P&L -120 …"
        ));
        assert!(!lifted_at_next_day(
            "max drawdown reached on 2026-12-07: follower …: equity 49840 is 160 below its peak 50000"
        ));
        assert!(!lifted_at_next_day("locked by support"));
    }

    #[test]
    fn the_strictest_positive_limit_holds_and_zero_means_off() {
        assert_eq!(strictest([dec!(500), dec!(0), dec!(300)]), Some(dec!(300)));
        assert_eq!(strictest([dec!(0), dec!(0)]), None);
        assert_eq!(strictest([]), None);
    }
}
