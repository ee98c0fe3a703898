//! What the brokers report, applied idempotently: orders and positions are upserted by the
//! broker's own ids with a time guard (an older event never overwrites a newer state, and the
//! same event applied twice leaves the same row); fills are inserted once per broker fill id.

use chrono::{DateTime, NaiveDate, Utc};
use jt_domain::Side;
use rust_decimal::Decimal;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use super::{ReadScope, at, now, required_text, to_u32};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{
    BrokerOrderStatus, BrokerOrderType, OrderRole, broker_orders, broker_positions, fills,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::{IntentId, SubAccountId, UserId};

/// An order as a broker reports it: the event written by `upsert_order`, and the stored state
/// read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerOrder {
    /// The sub-account.
    pub sub_account: SubAccountId,
    /// The broker's order id.
    pub broker_order_id: String,
    /// Our client order id, if the order is ours.
    pub client_order_id: Option<String>,
    /// The intent it belongs to, if known.
    pub intent: Option<IntentId>,
    /// Broker contract (`MNQZ5`).
    pub contract: String,
    /// Side.
    pub side: Side,
    /// Type.
    pub order_type: BrokerOrderType,
    /// Role in the position's management.
    pub role: Option<OrderRole>,
    /// Quantity.
    pub quantity: u32,
    /// Filled so far.
    pub filled_quantity: u32,
    /// Limit price.
    pub limit_price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// Average fill price.
    pub average_fill_price: Option<Decimal>,
    /// State.
    pub status: BrokerOrderStatus,
    /// Rejection or cancellation text.
    pub status_reason: Option<String>,
    /// The broker's time of this state.
    pub broker_updated_at: DateTime<Utc>,
}

impl TryFrom<broker_orders::Model> for BrokerOrder {
    type Error = StoreError;
    fn try_from(m: broker_orders::Model) -> StoreResult<Self> {
        Ok(Self {
            quantity: to_u32("broker order", m.id, m.quantity)?,
            filled_quantity: to_u32("broker order", m.id, m.filled_quantity)?,
            sub_account: SubAccountId(m.sub_account_id),
            broker_order_id: m.broker_order_id,
            client_order_id: m.client_order_id,
            intent: m.intent_id.map(IntentId),
            contract: m.contract,
            side: m.side.into(),
            order_type: m.order_type,
            role: m.role,
            limit_price: m.limit_price.map(|d| d.0),
            stop_price: m.stop_price.map(|d| d.0),
            average_fill_price: m.average_fill_price.map(|d| d.0),
            status: m.status,
            status_reason: m.status_reason,
            broker_updated_at: m.broker_updated_at,
        })
    }
}

/// A fill as a broker reports it (written once, read back unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fill {
    /// The sub-account.
    pub sub_account: SubAccountId,
    /// The broker's fill id.
    pub broker_fill_id: String,
    /// The broker's order id.
    pub broker_order_id: String,
    /// Our client order id, if the order is ours (copy loop prevention).
    pub client_order_id: Option<String>,
    /// Contract.
    pub contract: String,
    /// Side.
    pub side: Side,
    /// Contracts filled.
    pub quantity: u32,
    /// Fill price.
    pub price: Decimal,
    /// Broker's fill time.
    pub filled_at: DateTime<Utc>,
    /// The CME trading day it belongs to (starting 17:00 America/Chicago).
    pub trading_day: NaiveDate,
}

impl TryFrom<fills::Model> for Fill {
    type Error = StoreError;
    fn try_from(m: fills::Model) -> StoreResult<Self> {
        Ok(Self {
            quantity: to_u32("fill", m.id, m.quantity)?,
            sub_account: SubAccountId(m.sub_account_id),
            broker_fill_id: m.broker_fill_id,
            broker_order_id: m.broker_order_id,
            client_order_id: m.client_order_id,
            contract: m.contract,
            side: m.side.into(),
            price: m.price.0,
            filled_at: m.filled_at,
            trading_day: m.trading_day,
        })
    }
}

/// A position as a broker reports it (the broker is the truth): the event written by
/// `upsert_position`, and the stored state read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerPosition {
    /// The sub-account.
    pub sub_account: SubAccountId,
    /// Contract.
    pub contract: String,
    /// Signed net quantity: > 0 long, < 0 short, 0 flat.
    pub net_quantity: i64,
    /// Average price of the open position.
    pub average_price: Option<Decimal>,
    /// Realized P&L the broker reports for the day, if any.
    pub realized_pnl: Option<Decimal>,
    /// The broker's time of this state.
    pub broker_updated_at: DateTime<Utc>,
}

impl From<broker_positions::Model> for BrokerPosition {
    fn from(m: broker_positions::Model) -> Self {
        Self {
            sub_account: SubAccountId(m.sub_account_id),
            contract: m.contract,
            net_quantity: m.net_quantity,
            average_price: m.average_price.map(|d| d.0),
            realized_pnl: m.realized_pnl.map(|d| d.0),
            broker_updated_at: m.broker_updated_at,
        }
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event was stored (new row, or newer than — or as new as — the stored state).
    Stored,
    /// The stored state is newer: the event was ignored.
    Stale,
}

/// What recording a fill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillRecorded {
    /// A fill not seen before.
    New,
    /// Already recorded (a replay at session end, a redelivery): ignore it.
    AlreadySeen,
}

/// `excluded.<col>` (the row an upsert proposed), the same spelling on both engines.
fn excluded(col: impl sea_orm::sea_query::IntoIden) -> Expr {
    Expr::col((Alias::new("excluded"), col))
}

/// The row of a fill (shared with the trade records, which insert it in their transaction).
pub(crate) fn fill_row(owner: UserId, e: &Fill) -> StoreResult<fills::Model> {
    Ok(fills::Model {
        id: Uuid::now_v7(),
        user_id: owner.0,
        sub_account_id: e.sub_account.0,
        broker_fill_id: required_text("broker fill id", &e.broker_fill_id)?,
        broker_order_id: e.broker_order_id.clone(),
        client_order_id: e.client_order_id.clone(),
        contract: required_text("contract", &e.contract)?,
        side: e.side.into(),
        quantity: i64::from(e.quantity),
        price: DbDecimal(e.price),
        filled_at: at(e.filled_at),
        trading_day: e.trading_day,
        recorded_at: now(),
    })
}

/// Broker-reported state.
#[derive(Debug, Clone, Copy)]
pub struct BrokerState<'a> {
    pub(crate) store: &'a Store,
}

impl BrokerState<'_> {
    /// Applies an order event. Keyed by (sub-account, broker order id); a stored state with a
    /// later broker time wins, so out-of-order delivery cannot regress an order.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the sub-account is not the owner's.
    pub async fn upsert_order(&self, owner: UserId, e: BrokerOrder) -> StoreResult<Applied> {
        use broker_orders::Column as C;
        let model = broker_orders::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            sub_account_id: e.sub_account.0,
            broker_order_id: required_text("broker order id", &e.broker_order_id)?,
            client_order_id: e.client_order_id,
            intent_id: e.intent.map(|i| i.0),
            contract: required_text("contract", &e.contract)?,
            side: e.side.into(),
            order_type: e.order_type,
            role: e.role,
            quantity: i64::from(e.quantity),
            filled_quantity: i64::from(e.filled_quantity),
            limit_price: e.limit_price.map(DbDecimal),
            stop_price: e.stop_price.map(DbDecimal),
            average_fill_price: e.average_fill_price.map(DbDecimal),
            status: e.status,
            status_reason: e.status_reason,
            broker_updated_at: at(e.broker_updated_at),
            recorded_at: now(),
        };
        let mut on_conflict = OnConflict::columns([C::SubAccountId, C::BrokerOrderId]);
        on_conflict
            .update_columns([
                C::ClientOrderId,
                C::Contract,
                C::Side,
                C::OrderType,
                C::Role,
                C::Quantity,
                C::FilledQuantity,
                C::LimitPrice,
                C::StopPrice,
                C::AverageFillPrice,
                C::Status,
                C::StatusReason,
                C::BrokerUpdatedAt,
            ])
            // Keep a known intent link when a later event does not carry it.
            .value(
                C::IntentId,
                Expr::cust("COALESCE(excluded.intent_id, broker_orders.intent_id)"),
            )
            .action_and_where(
                Expr::col((broker_orders::Entity, C::BrokerUpdatedAt))
                    .lte(excluded(C::BrokerUpdatedAt))
                    .and(Expr::col((broker_orders::Entity, C::UserId)).eq(excluded(C::UserId))),
            );
        let n = broker_orders::Entity::insert(model.into_active_model())
            .on_conflict(on_conflict)
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker order", e))?;
        Ok(if n == 1 {
            Applied::Stored
        } else {
            Applied::Stale
        })
    }

    /// Records a fill once per (sub-account, broker fill id).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the sub-account is not the owner's.
    pub async fn record_fill(&self, owner: UserId, e: Fill) -> StoreResult<FillRecorded> {
        let model = fill_row(owner, &e)?;
        let n = fills::Entity::insert(model.into_active_model())
            .on_conflict(
                OnConflict::columns([fills::Column::SubAccountId, fills::Column::BrokerFillId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("fill", e))?;
        Ok(if n == 1 {
            FillRecorded::New
        } else {
            FillRecorded::AlreadySeen
        })
    }

    /// Applies a position event, keyed by (sub-account, contract), with the same time guard
    /// as orders. A flat position is stored as 0, not deleted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the sub-account is not the owner's.
    pub async fn upsert_position(&self, owner: UserId, e: BrokerPosition) -> StoreResult<Applied> {
        use broker_positions::Column as C;
        let model = broker_positions::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            sub_account_id: e.sub_account.0,
            contract: required_text("contract", &e.contract)?,
            net_quantity: e.net_quantity,
            average_price: e.average_price.map(DbDecimal),
            realized_pnl: e.realized_pnl.map(DbDecimal),
            broker_updated_at: at(e.broker_updated_at),
            recorded_at: now(),
        };
        let mut on_conflict = OnConflict::columns([C::SubAccountId, C::Contract]);
        on_conflict
            .update_columns([
                C::NetQuantity,
                C::AveragePrice,
                C::RealizedPnl,
                C::BrokerUpdatedAt,
            ])
            .action_and_where(
                Expr::col((broker_positions::Entity, C::BrokerUpdatedAt))
                    .lte(excluded(C::BrokerUpdatedAt))
                    .and(Expr::col((broker_positions::Entity, C::UserId)).eq(excluded(C::UserId))),
            );
        let n = broker_positions::Entity::insert(model.into_active_model())
            .on_conflict(on_conflict)
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker position", e))?;
        Ok(if n == 1 {
            Applied::Stored
        } else {
            Applied::Stale
        })
    }

    /// One order by its broker id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn order(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        broker_order_id: &str,
    ) -> StoreResult<BrokerOrder> {
        broker_orders::Entity::find()
            .filter(broker_orders::Column::UserId.eq(scope.owner().0))
            .filter(broker_orders::Column::SubAccountId.eq(sub_account.0))
            .filter(broker_orders::Column::BrokerOrderId.eq(broker_order_id))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker order", e))?
            .ok_or_else(|| StoreError::not_found("broker order", broker_order_id))?
            .try_into()
    }

    /// Orders of a sub-account by client order id (what a retried intent looks up).
    ///
    /// # Errors
    /// Database errors.
    pub async fn orders_by_client_id(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        client_order_id: &str,
    ) -> StoreResult<Vec<BrokerOrder>> {
        broker_orders::Entity::find()
            .filter(broker_orders::Column::UserId.eq(owner.0))
            .filter(broker_orders::Column::SubAccountId.eq(sub_account.0))
            .filter(broker_orders::Column::ClientOrderId.eq(client_order_id))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker order", e))?
            .into_iter()
            .map(BrokerOrder::try_from)
            .collect()
    }

    /// Open (pending or working) orders of a sub-account, optionally of one contract, as last
    /// reported. The executor still asks the broker before cancelling (DOMAIN.md §5.7).
    ///
    /// # Errors
    /// Database errors.
    pub async fn open_orders(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        contract: Option<&str>,
    ) -> StoreResult<Vec<BrokerOrder>> {
        let mut q = broker_orders::Entity::find()
            .filter(broker_orders::Column::UserId.eq(scope.owner().0))
            .filter(broker_orders::Column::SubAccountId.eq(sub_account.0))
            .filter(
                broker_orders::Column::Status
                    .is_in([BrokerOrderStatus::Pending, BrokerOrderStatus::Working]),
            );
        if let Some(c) = contract {
            q = q.filter(broker_orders::Column::Contract.eq(c));
        }
        q.order_by_asc(broker_orders::Column::BrokerUpdatedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker order", e))?
            .into_iter()
            .map(BrokerOrder::try_from)
            .collect()
    }

    /// When an order event of `contract` on the sub-account was last recorded (any status):
    /// the reconciler leaves a position alone while its orders are moving (a DCA add replacing
    /// its take-profit), `None` when no order of it was ever recorded.
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_order_activity(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        contract: &str,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(broker_orders::Entity::find()
            .filter(broker_orders::Column::UserId.eq(scope.owner().0))
            .filter(broker_orders::Column::SubAccountId.eq(sub_account.0))
            .filter(broker_orders::Column::Contract.eq(contract))
            .order_by_desc(broker_orders::Column::RecordedAt)
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker order", e))?
            .map(|m| m.recorded_at))
    }

    /// The positions of a sub-account (flat ones included, as 0).
    ///
    /// # Errors
    /// Database errors.
    pub async fn positions(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
    ) -> StoreResult<Vec<BrokerPosition>> {
        Ok(broker_positions::Entity::find()
            .filter(broker_positions::Column::UserId.eq(scope.owner().0))
            .filter(broker_positions::Column::SubAccountId.eq(sub_account.0))
            .order_by_asc(broker_positions::Column::Contract)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("broker position", e))?
            .into_iter()
            .map(BrokerPosition::from)
            .collect())
    }

    /// The fills of a sub-account on one trading day, in time order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn fills_of_day(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        day: NaiveDate,
    ) -> StoreResult<Vec<Fill>> {
        fills::Entity::find()
            .filter(fills::Column::UserId.eq(scope.owner().0))
            .filter(fills::Column::SubAccountId.eq(sub_account.0))
            .filter(fills::Column::TradingDay.eq(day))
            .order_by_asc(fills::Column::FilledAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("fill", e))?
            .into_iter()
            .map(Fill::try_from)
            .collect()
    }
}

impl Store {
    /// Broker-reported orders, fills and positions.
    #[must_use]
    pub fn broker(&self) -> BrokerState<'_> {
        BrokerState { store: self }
    }
}
