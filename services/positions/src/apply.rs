//! One BROKER_EVENTS message applied to the store, idempotently.
//!
//! Orders and positions are upserted by the broker's own keys behind the store's time guard (an
//! older state never overwrites a newer one); a state equal to the stored one is recognised and
//! not written again (`duplicate`). Fills are recorded once per broker fill id. So the same
//! event applied twice — a redelivery, a reconnect's snapshot after the bus's duplicate window —
//! changes nothing.
//!
//! A new fill is also applied to its contract's live trade record in the same transaction as
//! its recording (`jt_store::repo::trades`): opened, added to, reduced, closed (the exit reason
//! is the type of the fill's stored order) or flipped — once per fill, ever. A fill older than
//! one already applied has the records it lands among rebuilt in the broker's order.

use jt_broker::{BrokerEvent, FillReport, OrderReport, OrderStatus, OrderType, PositionReport};
use jt_bus::{Incoming, Outcome};
use jt_domain::Direction;
use jt_domain::instrument::resolve_ticker;
use jt_messages::{BrokerEventMessage, ReportedEvent};
use jt_store::entity::{BrokerOrderStatus, BrokerOrderType, TradeExitReason, TradeStatus};
use jt_store::repo::broker::{Applied, BrokerOrder, BrokerPosition, Fill, FillRecorded};
use jt_store::repo::trades::{FillApplied, FillContext};
use jt_store::{Store, StoreError};

use crate::metrics;

/// What applying one event did (also the `outcome` label of `jt_positions_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The store changed.
    Applied,
    /// The store already had exactly this.
    Duplicate,
    /// The store has a newer state: ignored.
    Stale,
    /// Nothing of it is kept here (cash, connection notices, an order in an unknown state).
    Ignored,
    /// A kind this build cannot read: acknowledged and counted.
    Unknown,
}

impl Effect {
    fn label(self) -> &'static str {
        match self {
            Effect::Applied => "applied",
            Effect::Duplicate => "duplicate",
            Effect::Stale => "stale",
            Effect::Ignored => "ignored",
            Effect::Unknown => "unknown",
        }
    }
}

/// The consumer's handler: applies the message and settles it.
pub(crate) async fn handle(store: Store, msg: Incoming<BrokerEventMessage>) -> Outcome {
    let event = &msg.envelope.payload;
    let entity = event.entity().to_owned();
    match apply(&store, event).await {
        Ok(effect) => {
            metrics::event(&entity, effect.label());
            tracing::debug!(entity = %entity, sub_account = %event.sub_account_id, effect = effect.label(), "broker event");
            Outcome::Ack
        }
        Err(e) if e.is_transient() => {
            metrics::event(&entity, "failed");
            Outcome::retry(format!("the store is unavailable: {e}"))
        }
        Err(StoreError::NotFound { entity: what, id }) => {
            // The sub-account was deleted meanwhile: nothing to keep in step.
            metrics::event(&entity, "failed");
            tracing::info!(entity = %entity, sub_account = %event.sub_account_id, "broker event for a {what} that is gone ({id}): dropped");
            Outcome::Ack
        }
        Err(e @ (StoreError::Invalid { .. } | StoreError::Corrupt { .. })) => {
            metrics::event(&entity, "failed");
            Outcome::reject(format!("the event cannot be stored: {e}"))
        }
        Err(e) => {
            metrics::event(&entity, "failed");
            Outcome::retry(format!("storing the event failed: {e}"))
        }
    }
}

/// Applies one event to the store.
///
/// # Errors
/// The store's.
pub async fn apply(store: &Store, event: &BrokerEventMessage) -> Result<Effect, StoreError> {
    match &event.event {
        ReportedEvent::Unknown { kind } => {
            tracing::debug!(kind = %kind, "a broker event of a kind this build does not know");
            Ok(Effect::Unknown)
        }
        ReportedEvent::Known(BrokerEvent::Fill(f)) => fill(store, event, f).await,
        ReportedEvent::Known(BrokerEvent::Order(o)) => order(store, event, o).await,
        ReportedEvent::Known(BrokerEvent::Position(p)) => position(store, event, p).await,
        ReportedEvent::Known(
            BrokerEvent::CashBalance(_) | BrokerEvent::Connection(_) | BrokerEvent::Resync { .. },
        ) => Ok(Effect::Ignored),
    }
}

pub use jt_broker::contract_key;

async fn fill(
    store: &Store,
    event: &BrokerEventMessage,
    f: &FillReport,
) -> Result<Effect, StoreError> {
    let fill = Fill {
        sub_account: event.sub_account_id,
        broker_fill_id: f.id.to_string(),
        broker_order_id: f.order_id.to_string(),
        client_order_id: f.client_order_id.clone(),
        contract: contract_key(f.symbol.as_deref(), f.contract.as_str()),
        side: f.side,
        quantity: f.qty,
        price: f.price,
        filled_at: f.timestamp,
        trading_day: f
            .trade_date
            .unwrap_or_else(|| jt_domain::session::trading_day(f.timestamp)),
    };
    let ctx = FillContext {
        exit_reason: exit_reason(store, event, &fill.broker_order_id).await?,
        // A contract keyed by a broker id names no instrument: its records get no P&L.
        point_value: resolve_ticker(&fill.contract).ok().map(|i| i.point_value()),
    };
    let applied = store.trades().apply_fill(event.owner_id, fill, ctx).await?;
    if applied.recorded == FillRecorded::AlreadySeen {
        return Ok(Effect::Duplicate);
    }
    if ctx.exit_reason == TradeExitReason::Unknown
        && let Some(closed) = applied.closed()
        && let Some(order_id) = closed.exit_order_id.as_deref()
    {
        // The order's event may have been stored while this fill was applied (and found no
        // record to resolve then): looked at once more after the commit, so one of the two
        // always sees the other.
        let reason = exit_reason(store, event, order_id).await?;
        if reason != TradeExitReason::Unknown {
            store
                .trades()
                .resolve_exit_reason(event.owner_id, event.sub_account_id, order_id, reason)
                .await?;
        }
    }
    note_trades(event, &applied);
    Ok(Effect::Applied)
}

/// The exit reason a fill of `broker_order_id` gives if it closes a record: its stored order's
/// type, `unknown` when the order is not stored (yet: its event may come after the fill's, and
/// then [`order`] resolves it).
async fn exit_reason(
    store: &Store,
    event: &BrokerEventMessage,
    broker_order_id: &str,
) -> Result<TradeExitReason, StoreError> {
    match store
        .broker()
        .order(event.owner_id, event.sub_account_id, broker_order_id)
        .await
    {
        Ok(o) => Ok(TradeExitReason::of_order(o.order_type)),
        Err(StoreError::NotFound { .. }) => Ok(TradeExitReason::Unknown),
        Err(e) => Err(e),
    }
}

fn note_trades(event: &BrokerEventMessage, applied: &FillApplied) {
    if applied.absorbed {
        metrics::trade_fill_out_of_order("absorbed");
        tracing::warn!(sub_account = %event.sub_account_id, "a fill older than a reconciled close of its contract's trade records: recorded, no record changed (docs/positions.md, \"Ordering\")");
    } else if applied.out_of_order {
        metrics::trade_fill_out_of_order("rebuilt");
        tracing::warn!(sub_account = %event.sub_account_id, rewritten = applied.records.len(), "a fill older than one already applied to its contract's trade records: the records it lands among were rebuilt in the broker's order (docs/positions.md, \"Ordering\")");
    }
    for r in &applied.records {
        if r.fills == 1 {
            metrics::trade_opened();
        }
        if r.status == TradeStatus::Closed {
            let reason = r.exit_reason.unwrap_or(TradeExitReason::Unknown);
            metrics::trade_closed(reason.as_str());
            tracing::info!(sub_account = %event.sub_account_id, contract = %r.contract, reason = reason.as_str(), pnl = ?r.realized_pnl, "trade record closed");
        }
    }
}

fn order_status(s: OrderStatus) -> Option<BrokerOrderStatus> {
    Some(match s {
        OrderStatus::Pending => BrokerOrderStatus::Pending,
        OrderStatus::Working | OrderStatus::Suspended | OrderStatus::PendingChange => {
            BrokerOrderStatus::Working
        }
        OrderStatus::Filled => BrokerOrderStatus::Filled,
        OrderStatus::Canceled => BrokerOrderStatus::Cancelled,
        OrderStatus::Rejected => BrokerOrderStatus::Rejected,
        OrderStatus::Expired => BrokerOrderStatus::Expired,
        OrderStatus::Unknown => return None,
    })
}

fn order_type(t: Option<OrderType>) -> BrokerOrderType {
    match t {
        Some(OrderType::Limit) => BrokerOrderType::Limit,
        Some(OrderType::Stop) => BrokerOrderType::Stop,
        Some(OrderType::StopLimit) => BrokerOrderType::StopLimit,
        Some(OrderType::TrailingStop | OrderType::TrailingStopLimit) => {
            BrokerOrderType::TrailingStop
        }
        // The store has no "other": an unknown type is never counted as protection.
        Some(OrderType::Market | OrderType::Other) | None => BrokerOrderType::Market,
    }
}

/// Whether an order of this type protects a position (a take-profit or a stop).
fn protective(t: BrokerOrderType) -> bool {
    !matches!(t, BrokerOrderType::Market)
}

async fn order(
    store: &Store,
    event: &BrokerEventMessage,
    o: &OrderReport,
) -> Result<Effect, StoreError> {
    let Some(status) = order_status(o.status) else {
        return Ok(Effect::Ignored);
    };
    let Some(contract) = o
        .symbol
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| o.contract.as_ref().map(ToString::to_string))
    else {
        // Without a contract the row cannot be keyed; the reconciler reads working orders
        // from the broker anyway.
        return Ok(Effect::Ignored);
    };
    let incoming = BrokerOrder {
        sub_account: event.sub_account_id,
        broker_order_id: o.id.to_string(),
        client_order_id: o.client_order_id.clone(),
        intent: None,
        contract,
        side: o.side,
        order_type: order_type(o.order_type),
        role: None,
        quantity: o.qty.or(o.filled_qty).unwrap_or(0),
        filled_quantity: o.filled_qty.unwrap_or(0),
        limit_price: o.price,
        stop_price: o.stop_price,
        average_fill_price: o.avg_fill_price,
        status,
        status_reason: o.reject_reason.clone(),
        // The report's own time is its creation: the connection manager's receipt orders the
        // states of one order (one socket per login delivers them in order).
        broker_updated_at: event.received_at,
    };
    let broker = store.broker();
    let stored = match broker
        .order(
            event.owner_id,
            event.sub_account_id,
            &incoming.broker_order_id,
        )
        .await
    {
        Ok(stored) => Some(stored),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(stored) = &stored
        && same_order(stored, &incoming)
    {
        return Ok(Effect::Duplicate);
    }
    let was_open = stored.as_ref().is_none_or(|s| s.status.is_open());
    let effect = match broker
        .upsert_order(event.owner_id, incoming.clone())
        .await?
    {
        Applied::Stored => Effect::Applied,
        Applied::Stale => Effect::Stale,
    };
    if effect == Effect::Applied
        && (incoming.filled_quantity > 0 || incoming.status == BrokerOrderStatus::Filled)
    {
        // A fill of this order may have closed a record before the order itself was stored.
        let resolved = store
            .trades()
            .resolve_exit_reason(
                event.owner_id,
                event.sub_account_id,
                &incoming.broker_order_id,
                TradeExitReason::of_order(incoming.order_type),
            )
            .await?;
        if resolved > 0 {
            tracing::debug!(sub_account = %event.sub_account_id, order = %incoming.broker_order_id, resolved, "exit reason of trade records resolved by their order");
        }
    }
    if effect == Effect::Applied
        && was_open
        && incoming.status == BrokerOrderStatus::Cancelled
        && protective(incoming.order_type)
    {
        note_cancelled_protection(store, event, &incoming).await?;
    }
    Ok(effect)
}

/// Everything but the times and the intent link (a later event may not carry it).
fn same_order(stored: &BrokerOrder, new: &BrokerOrder) -> bool {
    let mut a = stored.clone();
    a.intent = None;
    a.broker_updated_at = new.broker_updated_at;
    a == *new
}

/// A cancelled take-profit or stop on the exit side of an open position: logged and counted
/// (the reconciler repairs it if the position should still be protected).
async fn note_cancelled_protection(
    store: &Store,
    event: &BrokerEventMessage,
    o: &BrokerOrder,
) -> Result<(), StoreError> {
    let positions = store
        .broker()
        .positions(event.owner_id, event.sub_account_id)
        .await?;
    let protected = positions.iter().any(|p| {
        p.contract == o.contract
            && Direction::of_net(p.net_quantity).is_some_and(|d| d.exit_side() == o.side)
    });
    if protected {
        metrics::protection_cancelled();
        tracing::warn!(
            sub_account = %event.sub_account_id,
            contract = %o.contract,
            order = %o.broker_order_id,
            order_type = ?o.order_type,
            "a take-profit or stop of an open position was cancelled"
        );
    }
    Ok(())
}

async fn position(
    store: &Store,
    event: &BrokerEventMessage,
    p: &PositionReport,
) -> Result<Effect, StoreError> {
    let incoming = BrokerPosition {
        sub_account: event.sub_account_id,
        contract: contract_key(p.symbol.as_deref(), p.contract.as_str()),
        net_quantity: p.net_qty,
        average_price: if p.net_qty == 0 { None } else { p.avg_price },
        realized_pnl: None,
        broker_updated_at: p.timestamp.unwrap_or(event.received_at),
    };
    let broker = store.broker();
    let stored = broker
        .positions(event.owner_id, event.sub_account_id)
        .await?
        .into_iter()
        .find(|s| s.contract == incoming.contract);
    if let Some(s) = &stored
        && s.net_quantity == incoming.net_quantity
        && s.average_price == incoming.average_price
    {
        return Ok(Effect::Duplicate);
    }
    Ok(
        match broker.upsert_position(event.owner_id, incoming).await? {
            Applied::Stored => Effect::Applied,
            Applied::Stale => Effect::Stale,
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_contract_is_named_by_the_brokers_name_when_it_has_one() {
        assert_eq!(contract_key(Some("MNQZ6"), "3570918"), "MNQZ6");
        assert_eq!(contract_key(None, "3570918"), "3570918");
        assert_eq!(contract_key(Some(""), "3570918"), "3570918");
    }

    #[test]
    fn broker_states_map_to_the_stores_and_unknown_ones_are_not_stored() {
        assert_eq!(
            order_status(OrderStatus::Suspended),
            Some(BrokerOrderStatus::Working)
        );
        assert_eq!(
            order_status(OrderStatus::PendingChange),
            Some(BrokerOrderStatus::Working)
        );
        assert_eq!(
            order_status(OrderStatus::Canceled),
            Some(BrokerOrderStatus::Cancelled)
        );
        assert_eq!(order_status(OrderStatus::Unknown), None);
        // An unknown order type never counts as protection.
        assert!(!protective(order_type(Some(OrderType::Other))));
        assert!(!protective(order_type(None)));
        assert!(protective(order_type(Some(OrderType::TrailingStopLimit))));
        assert!(protective(order_type(Some(OrderType::Limit))));
    }

    #[test]
    fn the_same_order_state_is_recognised_whatever_its_time_and_intent_link() {
        let order = BrokerOrder {
            sub_account: jt_store::SubAccountId(uuid::Uuid::nil()),
            broker_order_id: "7".into(),
            client_order_id: Some("jtabc-tp".into()),
            intent: None,
            contract: "MNQZ6".into(),
            side: jt_domain::Side::Sell,
            order_type: BrokerOrderType::Limit,
            role: None,
            quantity: 2,
            filled_quantity: 0,
            limit_price: Some(rust_decimal::Decimal::from(21005)),
            stop_price: None,
            average_fill_price: None,
            status: BrokerOrderStatus::Working,
            status_reason: None,
            broker_updated_at: chrono::Utc::now(),
        };
        let mut stored = order.clone();
        stored.intent = Some(jt_store::IntentId(uuid::Uuid::nil()));
        stored.broker_updated_at -= chrono::Duration::seconds(5);
        assert!(same_order(&stored, &order));
        let mut cancelled = order.clone();
        cancelled.status = BrokerOrderStatus::Cancelled;
        assert!(!same_order(&stored, &cancelled));
    }
}
