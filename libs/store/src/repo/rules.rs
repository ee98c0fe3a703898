//! Prop-firm rule sets per sub-account (`jt_domain::propfirm::RuleSet`, stored as JSON) with
//! the trailing drawdown's mark, and the operator's news calendar.

use chrono::{DateTime, NaiveDate, Utc};
use jt_domain::propfirm::{NewsEvent, RuleSet};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, IdenStatic, IntoActiveModel, JoinType,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde::Serialize;
use uuid::Uuid;

use super::{ReadScope, at, from_json, now, required_text, to_json};
use crate::Store;
use crate::decimal::DbDecimal;
use crate::entity::{BreachKind, account_rules, news_events, risk_breaches};
use crate::error::{StoreError, StoreResult};
use crate::ids::{SubAccountId, UserId};

/// One sub-account's rules as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRules {
    /// The sub-account.
    pub sub_account: SubAccountId,
    /// The owner.
    pub owner: UserId,
    /// The rules.
    pub rules: RuleSet,
    /// The trailing drawdown's mark, once observed.
    pub high_water_mark: Option<Decimal>,
    /// The trading day whose close last moved an end-of-day mark.
    pub mark_day: Option<NaiveDate>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What an entry is checked against ([`Rules::for_entry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRules {
    /// The sub-account's rules, if it has any.
    pub rules: Option<AccountRules>,
    /// A prop-firm rule breached on the trading day: its details (`rule: …`), empty when it
    /// recorded none.
    pub prop_firm_breach: Option<String>,
}

impl TryFrom<account_rules::Model> for AccountRules {
    type Error = StoreError;
    fn try_from(m: account_rules::Model) -> StoreResult<Self> {
        Ok(Self {
            rules: from_json("account rules", m.id, m.rules)?,
            sub_account: SubAccountId(m.sub_account_id),
            owner: UserId(m.user_id),
            high_water_mark: m.high_water_mark.map(|d| d.0),
            mark_day: m.mark_day,
            updated_at: m.updated_at,
        })
    }
}

/// A listed news event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredNews {
    /// Id.
    pub id: Uuid,
    /// The event.
    #[serde(flatten)]
    pub event: NewsEvent,
}

/// Rule sets and the news calendar.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub(crate) store: &'a Store,
}

impl Rules<'_> {
    /// Sets (replaces) the rules of one of the owner's sub-accounts. The mark is kept: changing
    /// a value does not forget how high the account has been.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for a sub-account that is not the owner's.
    pub async fn set(
        &self,
        owner: UserId,
        sub_account: SubAccountId,
        rules: &RuleSet,
    ) -> StoreResult<AccountRules> {
        self.store
            .accounts()
            .sub_account(owner, sub_account)
            .await?;
        let m = account_rules::Model {
            id: Uuid::now_v7(),
            user_id: owner.0,
            sub_account_id: sub_account.0,
            rules: to_json("rules", rules)?,
            high_water_mark: None,
            mark_day: None,
            updated_at: at(now()),
        };
        account_rules::Entity::insert(m.into_active_model())
            .on_conflict(
                OnConflict::column(account_rules::Column::SubAccountId)
                    .update_columns([
                        account_rules::Column::Rules,
                        account_rules::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("account rules", e))?;
        self.get(owner, sub_account)
            .await?
            .ok_or_else(|| StoreError::not_found("account rules", sub_account))
    }

    /// Removes the rules of a sub-account (no prop-firm rules any more).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it had none.
    pub async fn clear(&self, owner: UserId, sub_account: SubAccountId) -> StoreResult<()> {
        let r = account_rules::Entity::delete_many()
            .filter(account_rules::Column::UserId.eq(owner.0))
            .filter(account_rules::Column::SubAccountId.eq(sub_account.0))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("account rules", e))?;
        if r.rows_affected == 0 {
            return Err(StoreError::not_found("account rules", sub_account));
        }
        Ok(())
    }

    /// The rules of a sub-account, if it has any.
    ///
    /// # Errors
    /// Database errors; a stored rule set this build cannot read.
    pub async fn get(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
    ) -> StoreResult<Option<AccountRules>> {
        account_rules::Entity::find()
            .filter(account_rules::Column::UserId.eq(scope.owner().0))
            .filter(account_rules::Column::SubAccountId.eq(sub_account.0))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("account rules", e))?
            .map(AccountRules::try_from)
            .transpose()
    }

    /// What an entry on `sub_account` is checked against: its rules, if it has any, and the
    /// details of a prop-firm rule breach recorded for trading day `day` (`Some("")` for a
    /// breach without details) — one statement, where [`Rules::get`] and
    /// [`crate::repo::risk::Risk::breach`] would be two:
    /// `SELECT r.*, (<breach>) FROM (SELECT 1) LEFT JOIN account_rules r ON <the owner's row>`.
    ///
    /// # Errors
    /// Database errors; a stored rule set this build cannot read.
    pub async fn for_entry(
        &self,
        scope: impl ReadScope,
        sub_account: SubAccountId,
        day: NaiveDate,
    ) -> StoreResult<EntryRules> {
        let owner = scope.owner().0;
        let breach = risk_breaches::Entity::find()
            .select_only()
            .expr(Func::coalesce([
                Expr::col(risk_breaches::Column::Details),
                Expr::val(""),
            ]))
            .filter(risk_breaches::Column::UserId.eq(owner))
            .filter(risk_breaches::Column::SubAccountId.eq(sub_account.0))
            .filter(risk_breaches::Column::TradingDay.eq(day))
            .filter(risk_breaches::Column::Kind.eq(BreachKind::PropFirmRule))
            .into_query();
        let one = Alias::new("one");
        let mut statement = Query::select();
        statement
            .column((account_rules::Entity, Asterisk))
            .expr_as(
                Expr::SubQuery(None, Box::new(breach.into())),
                Alias::new("prop_firm_breach"),
            )
            .from_subquery(Query::select().expr(Expr::val(1)).to_owned(), one)
            .join(
                JoinType::LeftJoin,
                account_rules::Entity,
                Condition::all()
                    .add(
                        Expr::col((account_rules::Entity, account_rules::Column::UserId)).eq(owner),
                    )
                    .add(
                        Expr::col((account_rules::Entity, account_rules::Column::SubAccountId))
                            .eq(sub_account.0),
                    ),
            );
        let row = super::one_row(self.store, &statement, "account rules", sub_account).await?;
        let read = |e: sea_orm::DbErr| StoreError::db("account rules", e);
        let found: Option<Uuid> = row
            .try_get("", account_rules::Column::Id.as_str())
            .map_err(read)?;
        let rules = match found {
            Some(_) => Some(
                account_rules::Model::from_query_result(&row, "")
                    .map_err(read)?
                    .try_into()?,
            ),
            None => None,
        };
        Ok(EntryRules {
            rules,
            prop_firm_breach: row.try_get("", "prop_firm_breach").map_err(read)?,
        })
    }

    /// Every sub-account's rules (the risk service's work list).
    ///
    /// # Errors
    /// Database errors; a stored rule set this build cannot read.
    pub async fn all(&self) -> StoreResult<Vec<AccountRules>> {
        account_rules::Entity::find()
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("account rules", e))?
            .into_iter()
            .map(AccountRules::try_from)
            .collect()
    }

    /// Records the trailing mark (only ever raised: a lower value is ignored, so two writers
    /// cannot lower it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn raise_mark(
        &self,
        sub_account: SubAccountId,
        mark: Decimal,
        day: Option<NaiveDate>,
    ) -> StoreResult<()> {
        use account_rules::Column as C;
        let mut q = account_rules::Entity::update_many()
            .col_expr(C::HighWaterMark, Expr::value(Some(DbDecimal(mark))))
            .filter(C::SubAccountId.eq(sub_account.0))
            .filter(
                C::HighWaterMark
                    .is_null()
                    .or(C::HighWaterMark.lt(DbDecimal(mark))),
            );
        if let Some(day) = day {
            q = q.col_expr(C::MarkDay, Expr::value(Some(day)));
        }
        q.exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("account rules", e))?;
        Ok(())
    }

    /// Records an end-of-day mark: the balance at trading day `day`'s close raises the mark
    /// (when higher) and `mark_day` becomes `day` either way, so the close is taken once.
    /// Idempotent, and a later day already recorded is never moved back.
    ///
    /// # Errors
    /// Database errors.
    pub async fn close_day(
        &self,
        sub_account: SubAccountId,
        balance: Decimal,
        day: NaiveDate,
    ) -> StoreResult<()> {
        use account_rules::Column as C;
        self.raise_mark(sub_account, balance, None).await?;
        account_rules::Entity::update_many()
            .col_expr(C::MarkDay, Expr::value(Some(day)))
            .filter(C::SubAccountId.eq(sub_account.0))
            .filter(C::MarkDay.is_null().or(C::MarkDay.lt(day)))
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("account rules", e))?;
        Ok(())
    }

    /// Adds a listed news event.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty title.
    pub async fn add_news(&self, event: NewsEvent) -> StoreResult<StoredNews> {
        let m = news_events::Model {
            id: Uuid::now_v7(),
            at: at(event.at),
            title: required_text("title", &event.title)?,
            created_at: at(now()),
        };
        news_events::Entity::insert(m.clone().into_active_model())
            .exec_without_returning(self.store.db())
            .await
            .map_err(|e| StoreError::db("news event", e))?;
        Ok(StoredNews {
            id: m.id,
            event: NewsEvent {
                at: m.at,
                title: m.title,
            },
        })
    }

    /// Removes a listed news event.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn remove_news(&self, id: Uuid) -> StoreResult<()> {
        let r = news_events::Entity::delete_by_id(id)
            .exec(self.store.db())
            .await
            .map_err(|e| StoreError::db("news event", e))?;
        if r.rows_affected == 0 {
            return Err(StoreError::not_found("news event", id));
        }
        Ok(())
    }

    /// The listed events released between `from` and `to`, in time order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn news_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<StoredNews>> {
        Ok(news_events::Entity::find()
            .filter(news_events::Column::At.gte(at(from)))
            .filter(news_events::Column::At.lte(at(to)))
            .order_by_asc(news_events::Column::At)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("news event", e))?
            .into_iter()
            .map(|m| StoredNews {
                id: m.id,
                event: NewsEvent {
                    at: m.at,
                    title: m.title,
                },
            })
            .collect())
    }
}

impl Store {
    /// Prop-firm rule sets and the news calendar.
    #[must_use]
    pub fn rules(&self) -> Rules<'_> {
        Rules { store: self }
    }
}
