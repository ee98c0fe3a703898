//! Reads for the dashboard: what changed for one user since an instant (the API's live event
//! feed polls it once a second per user), and the raw points of its charts — closed paper
//! trades in time order, and the alert → broker answer latency of signal intents.
//!
//! Every read is the owner's and is bounded by an index, because the feed runs it every second
//! for every user with a page open:
//! - signals and signal intents are found through `(user_id, received_at)` /
//!   `(user_id, created_at)` over the last [`RECENT_HOURS`] — a decision changes within
//!   minutes of its alert, and an index on `updated_at` would cost every intent update its HOT
//!   path (`docs/store.md`, the fill-factor migration);
//! - positions are one row per sub-account and contract;
//! - working orders are found through `(sub_account_id, contract, status)` on the user's
//!   sub-accounts.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::paper::PaperTrade;
use super::{ReadScope, at};
use crate::Store;
use crate::entity::{
    BrokerOrderStatus, IntentSource, PaperStatus, broker_orders, broker_positions, executions,
    order_intents, paper_positions, paper_trades, signals, sub_accounts,
};
use crate::error::{StoreError, StoreResult};
use crate::ids::{RecorderId, SignalId, SubAccountId};

/// How far back the change feed looks for signals and decisions that changed.
pub const RECENT_HOURS: i64 = 6;

/// What changed for a user after an instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Signals recorded or whose outcome or a decision changed: each id with the newest change
    /// time seen.
    pub signals: Vec<(SignalId, DateTime<Utc>)>,
    /// Sub-accounts whose stored positions changed.
    pub positions: Vec<(SubAccountId, DateTime<Utc>)>,
    /// The user's working orders now (id, sub-account, last recorded): the caller compares
    /// two reads — an order placed, changed or no longer working changes protection.
    pub working_orders: Vec<(Uuid, SubAccountId, DateTime<Utc>)>,
    /// Recorders whose paper positions changed (P&L, prices, fills).
    pub paper: Vec<(RecorderId, DateTime<Utc>)>,
    /// The user's sub-accounts (for the reader's own bookkeeping, e.g. risk figures).
    pub sub_accounts: Vec<SubAccountId>,
}

/// A signal intent's latency: from the alert's arrival to the broker's answer of its first
/// attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// The signal's arrival.
    pub received_at: DateTime<Utc>,
    /// Milliseconds to the first attempt's answer.
    pub ms: i64,
}

/// The dashboard's reads.
#[derive(Debug, Clone, Copy)]
pub struct Dashboard<'a> {
    store: &'a Store,
}

fn db(what: &'static str) -> impl Fn(sea_orm::DbErr) -> StoreError {
    move |e| StoreError::db(what, e)
}

impl Dashboard<'_> {
    /// What changed for the owner after `since` (exclusive), at most `limit` rows of each kind
    /// (oldest first, so a caller advancing its watermark loses nothing).
    ///
    /// # Errors
    /// Database errors.
    pub async fn changes(
        &self,
        scope: impl ReadScope,
        since: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Changes> {
        let user = scope.owner().0;
        let conn = self.store.db();
        let since = at(since);
        let recent = at(Utc::now() - Duration::hours(RECENT_HOURS));
        let signals: Vec<(Uuid, DateTime<Utc>)> = signals::Entity::find()
            .select_only()
            .column(signals::Column::Id)
            .column(signals::Column::UpdatedAt)
            .filter(signals::Column::UserId.eq(user))
            .filter(signals::Column::ReceivedAt.gte(recent))
            .filter(signals::Column::UpdatedAt.gt(since))
            .order_by_asc(signals::Column::UpdatedAt)
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("signal"))?;
        let decided: Vec<(Option<Uuid>, DateTime<Utc>)> = order_intents::Entity::find()
            .select_only()
            .column(order_intents::Column::SignalId)
            .column(order_intents::Column::UpdatedAt)
            .filter(order_intents::Column::UserId.eq(user))
            .filter(order_intents::Column::CreatedAt.gte(recent))
            .filter(order_intents::Column::SignalId.is_not_null())
            .filter(order_intents::Column::UpdatedAt.gt(since))
            .order_by_asc(order_intents::Column::UpdatedAt)
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("intent"))?;
        let mut by_signal: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        for (id, t) in signals
            .into_iter()
            .chain(decided.into_iter().filter_map(|(s, t)| s.map(|s| (s, t))))
        {
            let e = by_signal.entry(id).or_insert(t);
            *e = (*e).max(t);
        }
        let mut signals: Vec<(SignalId, DateTime<Utc>)> = by_signal
            .into_iter()
            .map(|(id, t)| (SignalId(id), t))
            .collect();
        signals.sort_by_key(|(id, t)| (*t, *id));

        let subs: Vec<Uuid> = sub_accounts::Entity::find()
            .select_only()
            .column(sub_accounts::Column::Id)
            .filter(sub_accounts::Column::UserId.eq(user))
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("sub-account"))?;
        let positions: Vec<(Uuid, DateTime<Utc>)> = broker_positions::Entity::find()
            .select_only()
            .column(broker_positions::Column::SubAccountId)
            .column(broker_positions::Column::RecordedAt)
            .filter(broker_positions::Column::UserId.eq(user))
            .filter(broker_positions::Column::RecordedAt.gt(since))
            .order_by_asc(broker_positions::Column::RecordedAt)
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("broker position"))?;
        let working: Vec<(Uuid, Uuid, DateTime<Utc>)> = if subs.is_empty() {
            Vec::new()
        } else {
            broker_orders::Entity::find()
                .select_only()
                .column(broker_orders::Column::Id)
                .column(broker_orders::Column::SubAccountId)
                .column(broker_orders::Column::RecordedAt)
                .filter(broker_orders::Column::SubAccountId.is_in(subs.clone()))
                .filter(broker_orders::Column::UserId.eq(user))
                .filter(
                    broker_orders::Column::Status
                        .is_in([BrokerOrderStatus::Pending, BrokerOrderStatus::Working]),
                )
                .order_by_asc(broker_orders::Column::Id)
                .limit(limit.saturating_mul(10))
                .into_tuple()
                .all(conn)
                .await
                .map_err(db("broker order"))?
        };
        let paper: Vec<(Uuid, DateTime<Utc>)> = paper_positions::Entity::find()
            .select_only()
            .column(paper_positions::Column::RecorderId)
            .column(paper_positions::Column::UpdatedAt)
            .filter(paper_positions::Column::UserId.eq(user))
            .filter(paper_positions::Column::Status.eq(PaperStatus::Open))
            .filter(paper_positions::Column::UpdatedAt.gt(since))
            .order_by_asc(paper_positions::Column::UpdatedAt)
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("paper position"))?;
        // A paper position that closed is no longer open: its close shows as a trade.
        let closed: Vec<(Uuid, DateTime<Utc>)> = paper_trades::Entity::find()
            .select_only()
            .column(paper_trades::Column::RecorderId)
            .column(paper_trades::Column::UpdatedAt)
            .filter(paper_trades::Column::UserId.eq(user))
            .filter(paper_trades::Column::EntryTime.gte(recent))
            .filter(paper_trades::Column::UpdatedAt.gt(since))
            .order_by_asc(paper_trades::Column::UpdatedAt)
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("paper trade"))?;
        Ok(Changes {
            signals,
            positions: positions
                .into_iter()
                .map(|(s, t)| (SubAccountId(s), t))
                .collect(),
            working_orders: working
                .into_iter()
                .map(|(id, s, t)| (id, SubAccountId(s), t))
                .collect(),
            paper: paper
                .into_iter()
                .chain(closed)
                .map(|(r, t)| (RecorderId(r), t))
                .collect(),
            sub_accounts: subs.into_iter().map(SubAccountId).collect(),
        })
    }

    /// The owner's closed paper trades that exited in `[since, until)`, oldest exit first, of
    /// one recorder or all; at most `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn closed_paper_trades(
        &self,
        scope: impl ReadScope,
        recorder: Option<RecorderId>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<PaperTrade>> {
        let mut q = paper_trades::Entity::find()
            .filter(paper_trades::Column::UserId.eq(scope.owner().0))
            .filter(paper_trades::Column::Status.eq(PaperStatus::Closed))
            .filter(paper_trades::Column::ExitTime.gte(at(since)))
            .filter(paper_trades::Column::ExitTime.lt(at(until)));
        if let Some(r) = recorder {
            q = q.filter(paper_trades::Column::RecorderId.eq(r.0));
        }
        q.order_by_asc(paper_trades::Column::ExitTime)
            .order_by_asc(paper_trades::Column::Id)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(db("paper trade"))?
            .into_iter()
            .map(PaperTrade::try_from)
            .collect()
    }

    /// The latency of the owner's signal intents created in `[since, until)`: from the
    /// signal's arrival to the broker's answer of the intent's first attempt (intents never
    /// sent — skipped, failed before the broker — have none). At most `limit` intents.
    ///
    /// # Errors
    /// Database errors.
    pub async fn signal_latencies(
        &self,
        scope: impl ReadScope,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<Latency>> {
        let user = scope.owner().0;
        let conn = self.store.db();
        let intents: Vec<(Uuid, Option<Uuid>)> = order_intents::Entity::find()
            .select_only()
            .column(order_intents::Column::Id)
            .column(order_intents::Column::SignalId)
            .filter(order_intents::Column::UserId.eq(user))
            .filter(order_intents::Column::Source.eq(IntentSource::Signal))
            .filter(order_intents::Column::CreatedAt.gte(at(since)))
            .filter(order_intents::Column::CreatedAt.lt(at(until)))
            .filter(order_intents::Column::SignalId.is_not_null())
            .order_by_asc(order_intents::Column::CreatedAt)
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db("intent"))?;
        let mut out = Vec::with_capacity(intents.len());
        // IN lists in chunks: SQLite caps a statement's parameters.
        for chunk in intents.chunks(400) {
            let ids: Vec<Uuid> = chunk.iter().map(|(i, _)| *i).collect();
            let answered: HashMap<Uuid, DateTime<Utc>> = executions::Entity::find()
                .select_only()
                .column(executions::Column::IntentId)
                .column(executions::Column::FinishedAt)
                .filter(executions::Column::UserId.eq(user))
                .filter(executions::Column::IntentId.is_in(ids))
                .filter(executions::Column::Attempt.eq(1))
                .filter(executions::Column::FinishedAt.is_not_null())
                .into_tuple::<(Uuid, Option<DateTime<Utc>>)>()
                .all(conn)
                .await
                .map_err(db("execution"))?
                .into_iter()
                .filter_map(|(i, t)| t.map(|t| (i, t)))
                .collect();
            let signal_ids: BTreeSet<Uuid> = chunk
                .iter()
                .filter(|(i, _)| answered.contains_key(i))
                .filter_map(|(_, s)| *s)
                .collect();
            if signal_ids.is_empty() {
                continue;
            }
            let received: HashMap<Uuid, DateTime<Utc>> = signals::Entity::find()
                .select_only()
                .column(signals::Column::Id)
                .column(signals::Column::ReceivedAt)
                .filter(signals::Column::UserId.eq(user))
                .filter(signals::Column::Id.is_in(signal_ids))
                .into_tuple::<(Uuid, DateTime<Utc>)>()
                .all(conn)
                .await
                .map_err(db("signal"))?
                .into_iter()
                .collect();
            for (intent, signal) in chunk {
                let (Some(done), Some(got)) =
                    (answered.get(intent), signal.and_then(|s| received.get(&s)))
                else {
                    continue;
                };
                out.push(Latency {
                    received_at: *got,
                    ms: (*done - *got).num_milliseconds().max(0),
                });
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The dashboard's reads.
    #[must_use]
    pub fn dashboard(&self) -> Dashboard<'_> {
        Dashboard { store: self }
    }
}
