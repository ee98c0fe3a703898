//! Risk breaches per account and trading day, and kill switches (global, per user, per
//! account).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde::Serialize;
use uuid::Uuid;

use super::accounts::SubAccount;
use super::admin::{Admin, AuditRecord, write_audit};
use super::{ReadScope, at, now};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{BreachKind, KillScope, kill_switches, risk_breaches};
use crate::error::{StoreError, StoreResult};
use crate::ids::{BreachId, SubAccountId, UserId};

/// A breach to record.
#[derive(Debug, Clone)]
pub struct NewBreach {
    /// The account.
    pub sub_account: SubAccountId,
    /// The trading day (starting 17:00 America/Chicago).
    pub trading_day: NaiveDate,
    /// Which limit.
    pub kind: BreachKind,
    /// The limit, in dollars.
    pub loss_limit: Decimal,
    /// Realized P&L since the session start.
    pub realized_pnl: Decimal,
    /// Open P&L at the breach.
    pub unrealized_pnl: Decimal,
    /// When it was detected.
    pub breached_at: DateTime<Utc>,
    /// Details.
    pub details: Option<String>,
}

/// A recorded breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breach {
    /// Id.
    pub id: BreachId,
    /// The account.
    pub sub_account: SubAccountId,
    /// Trading day.
    pub trading_day: NaiveDate,
    /// Which limit.
    pub kind: BreachKind,
    /// The limit.
    pub loss_limit: Decimal,
    /// Realized P&L.
    pub realized_pnl: Decimal,
    /// Open P&L.
    pub unrealized_pnl: Decimal,
    /// Detected at.
    pub breached_at: DateTime<Utc>,
    /// When the account was flattened.
    pub flattened_at: Option<DateTime<Utc>>,
    /// Details.
    pub details: Option<String>,
}

impl From<risk_breaches::Model> for Breach {
    fn from(m: risk_breaches::Model) -> Self {
        Self {
            id: BreachId(m.id),
            sub_account: SubAccountId(m.sub_account_id),
            trading_day: m.trading_day,
            kind: m.kind,
            loss_limit: m.loss_limit.0,
            realized_pnl: m.realized_pnl.0,
            unrealized_pnl: m.unrealized_pnl.0,
            breached_at: m.breached_at,
            flattened_at: m.flattened_at,
            details: m.details,
        }
    }
}

/// Whether a breach was new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreachRecorded {
    /// First breach of this kind on this account and day: flatten and alert.
    New(Breach),
    /// Already breached this session: do not flatten again.
    AlreadyBreached(Breach),
}

/// The kill switches that apply to one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KillState {
    /// Platform-wide switch (admin).
    pub global: Option<KillSwitch>,
    /// The owner's switch.
    pub user: Option<KillSwitch>,
    /// The account's switch.
    pub account: Option<KillSwitch>,
}

impl KillState {
    /// Whether new entries are refused.
    #[must_use]
    pub fn engaged(&self) -> bool {
        [&self.global, &self.user, &self.account]
            .into_iter()
            .flatten()
            .any(|k| k.engaged)
    }
}

/// Adds [`Risk::exposure_gates`]' two `EXISTS` to `statement` (a statement of scalar
/// columns, which other reads on the executor's path share:
/// [`crate::repo::intents::Intents::signal_filters`]).
pub(crate) fn exposure_gate_columns(
    statement: &mut SelectStatement,
    sub: &SubAccount,
    day: NaiveDate,
) {
    let keys = [
        scope_key(KillScope::Global, None, None),
        scope_key(KillScope::User, Some(sub.owner), None),
        scope_key(KillScope::Account, None, Some(sub.id)),
    ];
    let kill = kill_switches::Entity::find()
        .select_only()
        .expr(Expr::val(1))
        .filter(kill_switches::Column::ScopeKey.is_in(keys))
        .filter(kill_switches::Column::Engaged.eq(true))
        .into_query();
    let breach = risk_breaches::Entity::find()
        .select_only()
        .expr(Expr::val(1))
        .filter(risk_breaches::Column::UserId.eq(sub.owner.0))
        .filter(risk_breaches::Column::SubAccountId.eq(sub.id.0))
        .filter(risk_breaches::Column::TradingDay.eq(day))
        .filter(risk_breaches::Column::Kind.eq(BreachKind::MaxDailyLoss))
        .into_query();
    statement
        .expr_as(Expr::exists(kill), Alias::new("kill_switch"))
        .expr_as(Expr::exists(breach), Alias::new("daily_loss_breached"));
}

/// The columns [`exposure_gate_columns`] added, read from `row`.
pub(crate) fn read_exposure_gates(row: &sea_orm::QueryResult) -> StoreResult<ExposureGates> {
    let read = |e: sea_orm::DbErr| StoreError::db("risk gates", e);
    Ok(ExposureGates {
        kill_switch: row.try_get("", "kill_switch").map_err(read)?,
        daily_loss_breached: row.try_get("", "daily_loss_breached").map_err(read)?,
    })
}

/// What refuses new exposure on a sub-account ([`Risk::exposure_gates`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExposureGates {
    /// A kill switch over it (global, its owner's, its own) is engaged.
    pub kill_switch: bool,
    /// Its max daily loss is breached for the trading day asked about.
    pub daily_loss_breached: bool,
}

/// One kill switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillSwitch {
    /// Reach.
    pub scope: KillScope,
    /// Engaged (refuse entries) or released.
    pub engaged: bool,
    /// Why.
    pub reason: Option<String>,
    /// Who changed it last (detached if deleted).
    pub changed_by: Option<UserId>,
    /// When.
    pub changed_at: DateTime<Utc>,
}

impl From<kill_switches::Model> for KillSwitch {
    fn from(m: kill_switches::Model) -> Self {
        Self {
            scope: m.scope,
            engaged: m.engaged,
            reason: m.reason,
            changed_by: m.changed_by.map(UserId),
            changed_at: m.changed_at,
        }
    }
}

/// An engagement of a kill switch, for the risk service to carry out: cancel the working
/// orders and flatten every account the switch covers, once.
#[derive(Debug, Clone, PartialEq)]
pub struct KillEngagement {
    /// Its identity: the API request's id, or the kill alert's signal id. Written again with
    /// the same id (a redelivered alert), it is the same engagement and is not carried out
    /// again.
    pub id: Uuid,
    /// What the flatten intents name as their cause (a `jt_messages::ControlCause`, opaque
    /// to the store): their ids derive from it.
    pub cause: serde_json::Value,
}

/// An engagement the risk service has not carried out yet
/// ([`Risk::pending_kills`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingKill {
    /// Reach.
    pub scope: KillScope,
    /// The user of a `user` switch.
    pub user: Option<UserId>,
    /// The sub-account of an `account` switch.
    pub sub_account: Option<SubAccountId>,
    /// Whether the switch is still engaged (an engagement released before it was carried
    /// out is still carried out: the flatten was asked for).
    pub engaged: bool,
    /// The engagement.
    pub engagement: KillEngagement,
    /// When the switch last changed.
    pub changed_at: DateTime<Utc>,
}

fn scope_key(scope: KillScope, user: Option<UserId>, account: Option<SubAccountId>) -> String {
    match (scope, user, account) {
        (KillScope::Account, _, Some(a)) => format!("account:{a}"),
        (KillScope::User, Some(u), _) => format!("user:{u}"),
        _ => "global".to_string(),
    }
}

/// Risk breaches and kill switches.
#[derive(Debug, Clone, Copy)]
pub struct Risk<'a> {
    pub(crate) store: &'a Store,
}

impl Risk<'_> {
    /// Records a breach once per account, trading day and kind.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an account that is not the owner's.
    pub async fn record_breach(&self, owner: UserId, b: NewBreach) -> StoreResult<BreachRecorded> {
        let m = risk_breaches::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            sub_account_id: b.sub_account.0,
            trading_day: b.trading_day,
            kind: b.kind,
            loss_limit: DbDecimal(b.loss_limit),
            realized_pnl: DbDecimal(b.realized_pnl),
            unrealized_pnl: DbDecimal(b.unrealized_pnl),
            breached_at: at(b.breached_at),
            flattened_at: None,
            details: b.details,
        };
        let n = risk_breaches::Entity::insert(m.clone().into_active_model())
            .on_conflict(
                OnConflict::columns([
                    risk_breaches::Column::SubAccountId,
                    risk_breaches::Column::TradingDay,
                    risk_breaches::Column::Kind,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("risk breach", e))?;
        if n == 1 {
            return Ok(BreachRecorded::New(m.into()));
        }
        let existing = self
            .breach(owner, b.sub_account, b.trading_day, b.kind)
            .await?
            .ok_or_else(|| StoreError::not_found("risk breach", b.sub_account))?;
        Ok(BreachRecorded::AlreadyBreached(existing))
    }

    /// Records that the breached account was flattened.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn mark_flattened(
        &self,
        owner: UserId,
        id: BreachId,
        at_time: DateTime<Utc>,
    ) -> StoreResult<()> {
        let q = risk_breaches::Entity::update_many().col_expr(
            risk_breaches::Column::FlattenedAt,
            Expr::value(Some(at(at_time))),
        );
        super::update_owned(self.store, q, id, owner).await
    }

    /// The breach of one kind on an account and day, if any.
    ///
    /// # Errors
    /// Database errors.
    pub async fn breach(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        day: NaiveDate,
        kind: BreachKind,
    ) -> StoreResult<Option<Breach>> {
        Ok(risk_breaches::Entity::find()
            .filter(risk_breaches::Column::UserId.eq(scope.owner().0))
            .filter(risk_breaches::Column::SubAccountId.eq(sub_account.0))
            .filter(risk_breaches::Column::TradingDay.eq(day))
            .filter(risk_breaches::Column::Kind.eq(kind))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("risk breach", e))?
            .map(Breach::from))
    }

    /// The owner's breaches on a trading day.
    ///
    /// # Errors
    /// Database errors.
    pub async fn breaches_on(
        &self,
        scope: impl ReadScope,
        day: NaiveDate,
    ) -> StoreResult<Vec<Breach>> {
        Ok(risk_breaches::Entity::find()
            .filter(risk_breaches::Column::UserId.eq(scope.owner().0))
            .filter(risk_breaches::Column::TradingDay.eq(day))
            .order_by_asc(risk_breaches::Column::BreachedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("risk breach", e))?
            .into_iter()
            .map(Breach::from)
            .collect())
    }

    /// Engages or releases the owner's own kill switch (every account of theirs).
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_user_kill(
        &self,
        owner: UserId,
        engaged: bool,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        self.set_switch(KillScope::User, Some(owner), None, engaged, reason, owner)
            .await
    }

    /// Engages or releases the kill switch of one of the owner's sub-accounts.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a sub-account that is not the owner's.
    pub async fn set_account_kill(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        engaged: bool,
        reason: Option<&str>,
    ) -> StoreResult<()> {
        self.store
            .accounts()
            .sub_account(owner, sub_account)
            .await?;
        self.set_switch(
            KillScope::Account,
            None,
            Some(sub_account),
            engaged,
            reason,
            owner,
        )
        .await
    }

    /// The switches that apply to an account of the owner: global, the owner's, the account's.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a sub-account that is not the owner's.
    pub async fn kill_state(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
    ) -> StoreResult<KillState> {
        let sub = self
            .store
            .accounts()
            .sub_account(scope, sub_account)
            .await?;
        self.kill_state_of(&sub).await
    }

    /// [`Self::kill_state`] for a sub-account already read under its owner's scope (one query
    /// fewer on the execution's path).
    ///
    /// # Errors
    /// Database errors.
    pub async fn kill_state_of(&self, sub: &SubAccount) -> StoreResult<KillState> {
        let keys = [
            scope_key(KillScope::Global, None, None),
            scope_key(KillScope::User, Some(sub.owner), None),
            scope_key(KillScope::Account, None, Some(sub.id)),
        ];
        let rows = kill_switches::Entity::find()
            .filter(kill_switches::Column::ScopeKey.is_in(keys))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("kill switch", e))?;
        let mut state = KillState::default();
        for r in rows {
            let k = KillSwitch::from(r);
            match k.scope {
                KillScope::Global => state.global = Some(k),
                KillScope::User => state.user = Some(k),
                KillScope::Account => state.account = Some(k),
            }
        }
        Ok(state)
    }

    /// What refuses new exposure on `sub` on trading day `day` — a kill switch over it engaged,
    /// its max daily loss breached — in one statement of two `EXISTS`: the executor asks this
    /// for every intent on its way to the broker ([`Risk::kill_state_of`] and
    /// [`Risk::breach`] answer the same with the rows, in two).
    ///
    /// # Errors
    /// Database errors.
    pub async fn exposure_gates(
        &self,
        sub: &SubAccount,
        day: NaiveDate,
    ) -> StoreResult<ExposureGates> {
        let mut statement = Query::select();
        exposure_gate_columns(&mut statement, sub, day);
        let row = super::one_row(self.store, &statement, "risk gates", sub.id).await?;
        read_exposure_gates(&row)
    }

    /// Engages the owner's own kill switch with an engagement for the risk service to carry
    /// out (cancel and flatten every active sub-account of theirs).
    ///
    /// # Errors
    /// Database errors.
    pub async fn engage_user_kill(
        &self,
        owner: UserId,
        reason: Option<&str>,
        engagement: &KillEngagement,
    ) -> StoreResult<()> {
        set_switch(
            self.store.db(),
            Switch {
                scope: KillScope::User,
                user: Some(owner),
                account: None,
                engaged: true,
                reason,
                by: owner,
                engagement: Some(engagement),
            },
        )
        .await
    }

    /// Engages the kill switch of one of the owner's sub-accounts with an engagement for the
    /// risk service to carry out.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a sub-account that is not the owner's.
    pub async fn engage_account_kill(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        reason: Option<&str>,
        engagement: &KillEngagement,
    ) -> StoreResult<()> {
        self.store
            .accounts()
            .sub_account(owner, sub_account)
            .await?;
        set_switch(
            self.store.db(),
            Switch {
                scope: KillScope::Account,
                user: None,
                account: Some(sub_account),
                engaged: true,
                reason,
                by: owner,
                engagement: Some(engagement),
            },
        )
        .await
    }

    /// Every engagement not carried out yet, oldest change first (the risk service's work;
    /// every user's, so only a service calls it).
    ///
    /// # Errors
    /// Database errors; a row whose cause is not JSON cannot happen (the column is `jsonb`).
    pub async fn pending_kills(&self) -> StoreResult<Vec<PendingKill>> {
        use kill_switches::Column as C;
        let rows = kill_switches::Entity::find()
            .filter(C::EngagementId.is_not_null())
            .filter(C::ExecutedAt.is_null())
            .order_by_asc(C::ChangedAt)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("kill switch", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|m| {
                Some(PendingKill {
                    scope: m.scope,
                    user: m.user_id.map(UserId),
                    sub_account: m.sub_account_id.map(SubAccountId),
                    engaged: m.engaged,
                    engagement: KillEngagement {
                        id: m.engagement_id?,
                        cause: m.engagement_cause.unwrap_or(serde_json::Value::Null),
                    },
                    changed_at: m.changed_at,
                })
            })
            .collect())
    }

    /// Records that every flatten of `engagement` was published. A newer engagement of the
    /// same switch written meanwhile stays to do.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mark_kill_executed(
        &self,
        engagement: Uuid,
        at_time: DateTime<Utc>,
    ) -> StoreResult<()> {
        use kill_switches::Column as C;
        kill_switches::Entity::update_many()
            .col_expr(C::ExecutedAt, Expr::value(Some(at(at_time))))
            .filter(C::EngagementId.eq(engagement))
            .filter(C::ExecutedAt.is_null())
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("kill switch", e))?;
        Ok(())
    }

    /// The sub-accounts an engagement flattens: an `account` switch its sub-account; a `user`
    /// switch every active sub-account of the user's logins; the `global` switch every active
    /// sub-account of every enabled login with credentials. The API answers with the intents
    /// of these, and the risk service publishes them: one definition for both.
    ///
    /// # Errors
    /// Database errors; [`StoreError::NotFound`] for an account switch whose sub-account is
    /// gone (its row went with it: cascade).
    pub async fn kill_targets(
        &self,
        scope: KillScope,
        user: Option<UserId>,
        sub_account: Option<SubAccountId>,
    ) -> StoreResult<Vec<SubAccount>> {
        let accounts = self.store.accounts();
        let logins = match (scope, user, sub_account) {
            (KillScope::Account, _, Some(id)) => {
                let m = crate::entity::sub_accounts::Entity::find_by_id(id.0)
                    .one(self.store.db())
                    .await
                    .map_err(|e| StoreError::db("sub-account", e))?
                    .ok_or_else(|| StoreError::not_found("sub-account", id))?;
                return Ok(vec![SubAccount::from(m)]);
            }
            (KillScope::User, Some(owner), _) => accounts.list(owner).await?,
            _ => self.store.system().active_accounts().await?,
        };
        let mut out = Vec::new();
        for login in logins {
            out.extend(
                accounts
                    .sub_accounts(login.owner, login.id)
                    .await?
                    .into_iter()
                    .filter(|s| s.active),
            );
        }
        Ok(out)
    }

    async fn set_switch(
        &self,
        scope: KillScope,
        user: Option<UserId>,
        account: Option<SubAccountId>,
        engaged: bool,
        reason: Option<&str>,
        by: UserId,
    ) -> StoreResult<()> {
        set_switch(
            self.store.db(),
            Switch {
                scope,
                user,
                account,
                engaged,
                reason,
                by,
                engagement: None,
            },
        )
        .await
    }
}

/// One change of a switch.
struct Switch<'a> {
    scope: KillScope,
    user: Option<UserId>,
    account: Option<SubAccountId>,
    engaged: bool,
    reason: Option<&'a str>,
    by: UserId,
    /// With an engagement: the risk service carries it out unless it is the one already
    /// recorded. Without: the engagement columns are left as they are (a release, or a switch
    /// set without flattening).
    engagement: Option<&'a KillEngagement>,
}

async fn set_switch<C: sea_orm::ConnectionTrait>(db: &C, s: Switch<'_>) -> StoreResult<()> {
    use kill_switches::Column as C;
    let m = kill_switches::Model {
        id: Uuid::now_v7(),
        scope_key: scope_key(s.scope, s.user, s.account),
        scope: s.scope,
        user_id: s.user.map(|u| u.0),
        sub_account_id: s.account.map(|a| a.0),
        engaged: s.engaged,
        reason: s.reason.map(str::to_string),
        changed_by: Some(s.by.0),
        changed_at: now(),
        engagement_id: s.engagement.map(|e| e.id),
        engagement_cause: s.engagement.map(|e| e.cause.clone()),
        executed_at: None,
    };
    let mut conflict = OnConflict::column(C::ScopeKey);
    conflict.update_columns([C::Engaged, C::Reason, C::ChangedBy, C::ChangedAt]);
    if s.engagement.is_some() {
        // The same engagement written again (a redelivered alert, a retried request) keeps
        // its `executed_at`: carried out once. A new one is to do. One statement, so two
        // writers of one switch cannot interleave between a read and a write.
        conflict.value(
            C::ExecutedAt,
            Expr::cust(
                "CASE WHEN kill_switches.engagement_id = excluded.engagement_id \
                 THEN kill_switches.executed_at ELSE NULL END",
            ),
        );
        conflict.update_columns([C::EngagementId, C::EngagementCause]);
    }
    kill_switches::Entity::insert(m.into_active_model())
        .on_conflict(conflict.to_owned())
        .exec_without_returning(db)
        .await
        .map_err(|e| StoreError::db("kill switch", e))?;
    Ok(())
}

impl Admin<'_> {
    /// Engages or releases the platform-wide kill switch. Audited. An engagement (with
    /// `engaged`) is for the risk service to carry out: every active sub-account flattened.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_global_kill(
        &self,
        engaged: bool,
        reason: Option<&str>,
        engagement: Option<&KillEngagement>,
    ) -> StoreResult<()> {
        use sea_orm::TransactionTrait;
        let txn = self.store.db().begin().await.map_err(StoreError::from)?;
        set_switch(
            &txn,
            Switch {
                scope: KillScope::Global,
                user: None,
                account: None,
                engaged,
                reason,
                by: self.scope.admin(),
                engagement: engagement.filter(|_| engaged),
            },
        )
        .await?;
        write_audit(
            &txn,
            self.scope,
            AuditRecord {
                action: if engaged {
                    "kill.global.engage"
                } else {
                    "kill.global.release"
                },
                target_type: "platform",
                target_id: None,
                target_user: None,
                details: serde_json::json!({ "reason": reason }),
            },
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)
    }
}

impl Store {
    /// Risk breaches and kill switches.
    #[must_use]
    pub fn risk(&self) -> Risk<'_> {
        Risk { store: self }
    }
}
