//! Prop-firm rules before an entry (DOMAIN.md §14, `jt_domain::propfirm`): an entry, add or
//! flip on an account with a rule set is refused — recorded as skipped with the rule and the
//! numbers — when it would break a rule or land inside its safety buffer. Accounts without
//! rules pay nothing (one indexed read); accounts with rules pay two broker reads (positions
//! and the account's P&L) so the money rules are judged on the broker's figures, not a copy.
//! Exits are never refused: a position can always be closed.
//!
//! An entry (or a flip's new side) placed with its stop counts what it would lose there:
//! the stop's distance × the entry's quantity × the contract's point value
//! ([`risk_to_stop`]), so an entry whose stop would land inside a money rule's buffer is
//! refused before it is sent, naming the rule and the numbers. An add brings no stop of its
//! own (the position's stop is grown to cover it) and a market entry without a stop has no
//! known risk: both are judged on the account as it is.
//!
//! An account whose rule the risk service found reached while positions were open (a
//! `prop_firm_rule` breach of the trading day) is locked until the next trading day: every
//! entry is refused with the rule and the risk service's numbers — checked even when the
//! account's rules have since been removed, as the max daily loss lock is.

use chrono::{Duration, Utc};
use jt_domain::instrument::resolve_ticker;
use jt_domain::propfirm::{AccountState, EntryCheck};
use jt_domain::session;
use jt_domain::{EntryOrder, Side};
use jt_messages::IntentAction;
use jt_store::IntentKind;
use jt_store::repo::rules::EntryRules;
use jt_trading::{Choreography, Step};
use rust_decimal::Decimal;

use super::{Choice, Inputs, Plan, Refusal};

/// `choice`, or a skip when the account's rules refuse the entry it plans.
pub(crate) async fn check(inputs: &Inputs<'_>, choice: Choice) -> Result<Choice, Refusal> {
    let Choice::Plan(plan) = choice else {
        return Ok(choice);
    };
    if !matches!(
        plan.kind,
        IntentKind::Entry | IntentKind::Add | IntentKind::Flip
    ) {
        return Ok(Choice::Plan(plan));
    }
    let day = session::trading_day(inputs.msg.received_at);
    let EntryRules {
        rules: stored,
        prop_firm_breach,
    } = inputs
        .store
        .rules()
        .for_entry(inputs.msg.owner_id, inputs.sub.id, day)
        .await?;
    if let Some(details) = prop_firm_breach {
        let rule = details
            .split_once(':')
            .map_or("prop_firm_rule", |(rule, _)| rule);
        return Ok(Choice::Skip(format!(
            "prop-firm rule {rule} was reached while positions were open: the account is locked for this trading day ({details})"
        )));
    }
    let Some(stored) = stored else {
        return Ok(Choice::Plan(plan));
    };
    match refusal(inputs, &plan, &stored).await? {
        Some(reason) => Ok(Choice::Skip(reason)),
        None => Ok(Choice::Plan(plan)),
    }
}

async fn refusal(
    inputs: &Inputs<'_>,
    plan: &Plan,
    stored: &jt_store::repo::rules::AccountRules,
) -> Result<Option<String>, Refusal> {
    let now = Utc::now();
    let (positions, pnl, news) = tokio::try_join!(
        async {
            inputs
                .broker
                .positions(inputs.account)
                .await
                .map_err(Refusal::from)
        },
        async {
            inputs
                .broker
                .account_pnl(inputs.account)
                .await
                .map_err(Refusal::from)
        },
        async {
            inputs
                .store
                .rules()
                .news_between(now - Duration::hours(6), now + Duration::hours(6))
                .await
                .map_err(Refusal::from)
        },
    )?;
    let contract = plan.contract.as_deref().unwrap_or_default();
    let position_before: i64 = positions
        .iter()
        .filter(|p| {
            jt_broker::contract_key(p.symbol.as_deref(), p.contract.as_str()) == contract
                || p.contract.as_str() == contract
        })
        .map(|p| p.net_qty)
        .sum();
    let micro = resolve_ticker(contract)
        .ok()
        .and_then(|i| i.partner)
        .is_some_and(|p| !p.partner_is_micro);
    let balance = pnl
        .cash
        .unwrap_or_else(|| pnl.net_liq.unwrap_or_default() - pnl.open);
    let state = AccountState {
        balance,
        open_pnl: pnl.open,
        day_pnl: pnl.realized + pnl.open,
        high_water_mark: stored.high_water_mark,
        now,
    };
    let entry = EntryCheck {
        micro,
        quantity: plan.quantity,
        position_before,
        buy: plan.side == Some(Side::Buy),
        risk_to_stop: plan
            .stored
            .choreography(inputs.msg)
            .ok()
            .and_then(|c| risk_to_stop(&c, contract)),
        automated: matches!(
            inputs.msg.action,
            IntentAction::Signal(_) | IntentAction::Copy(_)
        ),
    };
    let news: Vec<_> = news.into_iter().map(|n| n.event).collect();
    Ok(stored
        .rules
        .check_entry(&state, &entry, &news)
        .err()
        .map(|r| format!("prop-firm rule {}: {}", r.rule.name(), r.reason)))
}

/// What the entry of `choreography` would lose at its stop, in dollars: the stop's distance
/// (points from the fill, as the bracket places it) × the entry's quantity × the point value
/// of `contract`. `None` when the entry has no stop (a plain order, an add) or the contract is
/// unknown.
pub(crate) fn risk_to_stop(choreography: &Choreography, contract: &str) -> Option<Decimal> {
    let instrument = resolve_ticker(contract).ok()?;
    choreography.steps.iter().find_map(|step| match step {
        Step::Enter {
            entry: EntryOrder::Bracket(b),
            ..
        } => b
            .stop
            .as_ref()
            .map(|stop| stop.distance * Decimal::from(b.qty) * instrument.point_value()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jt_domain::bracket::build_bracket;
    use jt_domain::{Direction, Settings};
    use rust_decimal_macros::dec;

    use super::*;

    fn entry(settings: &Settings, qty: u32) -> Choreography {
        let instrument = resolve_ticker("MNQZ6").unwrap();
        let bracket =
            build_bracket(settings, instrument, Direction::Long, qty, None, "jt1").unwrap();
        Choreography {
            contract: None,
            steps: vec![Step::Enter {
                entry: EntryOrder::Bracket(bracket),
                time_in_force: None,
            }],
            main: Some("jt1".into()),
        }
    }

    #[test]
    fn an_entrys_risk_is_its_stop_distance_times_quantity_times_point_value() {
        // 40 ticks on MNQ = 10 points × 3 contracts × $2 = $60.
        let stopped = Settings {
            sl_enabled: true,
            sl_amount: dec!(40),
            ..Settings::default()
        };
        assert_eq!(risk_to_stop(&entry(&stopped, 3), "MNQZ6"), Some(dec!(60)));
        assert_eq!(
            risk_to_stop(&entry(&Settings::default(), 3), "MNQZ6"),
            None,
            "no stop: no known risk"
        );
        assert_eq!(risk_to_stop(&entry(&stopped, 3), "NOPE"), None);
    }
}
