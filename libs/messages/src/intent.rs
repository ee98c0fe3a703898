//! One order intent, whatever asked for it, as it is queued on ORDERS (`jt.orders.<sub-account>`:
//! one subject per sub-account, executed serially per sub-account across every executor
//! replica).
//!
//! Every source — a recorder's signal, copy trading, a manual trade through the API, a control
//! (flatten, cancel, close one symbol; from a signal, an API request or a risk breach), a
//! protection repair — sends the same [`IntentMessage`]: the typed ids of the intent and of the
//! account it acts on, when it was made and when its cause reached the platform, and an
//! [`IntentAction`] whose variant holds the source's own data. The executor runs every source
//! through one lifecycle (pending → sent → outcome, resumed after a crash).
//!
//! Ids are derived from the cause (never drawn at random), so a repeated request, a redelivery
//! or a second replica produces the same intent id, the same store idempotency key and the same
//! client order ids at the broker. For signals and their controls they are exactly what they
//! were before this message had sources (`the_keys_of_existing_sources_are_unchanged`): an
//! intent queued before a deploy resumes after it and is recognised at the broker.
//!
//! Reading is tolerant: fields this build does not know are ignored (a rolling deploy), the
//! settings inside drop what they do not know (`jt_domain::tolerant`), and schema version 1 —
//! the signal-shaped message written before sources existed — is still read
//! ([`IntentMessage::decode`]).

use chrono::{DateTime, Utc};
use jt_bus::envelope::DecodeError;
use jt_bus::{Message, SubjectError, Subjects};
use jt_domain::{
    AlertRisk, Contracts, CopyAction, Direction, EntryOrderSpec, ExitLevel, Settings, SignalAction,
    StopOverride,
};
use jt_ids::{
    BreachId, BrokerAccountId, FollowerId, IntentId, RecorderId, SignalId, SubAccountId, TraderId,
    UserId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::derived_id;

/// What one sub-account must do at its broker, with everything the execution needs: an intent
/// never reads settings or positions its source already decided (the resolved settings travel
/// with a signal's intent, and are stored with it), so a change after the intent was made never
/// alters an intent already queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentMessage {
    /// Derived from the cause (see each constructor); the broker's client order ids derive
    /// from it ([`IntentMessage::client_order_id`]).
    pub intent_id: IntentId,
    /// The owner of the account (and of the recorder, trader, leader or request behind it).
    pub owner_id: UserId,
    /// The sub-account to act on (the serial-execution key).
    pub sub_account_id: SubAccountId,
    /// The broker login the sub-account belongs to.
    pub broker_account_id: BrokerAccountId,
    /// When the intent was made (the fan-out, the API, the copier, the reconciler).
    pub created_at: DateTime<Utc>,
    /// When its cause reached the platform — the webhook's receipt, the API request, the
    /// leader's change seen — : latency and staleness run from it.
    pub received_at: DateTime<Utc>,
    /// What to do, with the data of the source that asked for it.
    pub action: IntentAction,
}

/// What to do, by source. Each variant holds what its source decided and the execution needs.
///
/// Externally tagged in JSON (`{"signal": {…}}`): an internally tagged enum buffers its
/// content, and the exact decimal reader of the per-alert levels cannot read from that buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// One per message, built once and moved a few times: a box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum IntentAction {
    /// One trader's share of a recorder's signal: entry, add, flip, close, partial exit or
    /// cancel, decided at execution against the broker's real position.
    Signal(SignalIntent),
    /// One follower's step after its leader's position changed (explicit quantities).
    Copy(CopyIntent),
    /// A trade a user placed by hand through the API.
    Manual(ManualIntent),
    /// Flatten, cancel working orders or close one symbol, on the whole sub-account or one
    /// symbol of it.
    Control(ControlIntent),
    /// Place the take-profit and/or stop an existing position is missing.
    Repair(RepairIntent),
}

/// A trader's share of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalIntent {
    /// The signal.
    pub signal_id: SignalId,
    /// The recorder of the signal.
    pub recorder_id: RecorderId,
    /// The trader.
    pub trader_id: TraderId,
    /// The action after this trader's `inverse_strategy`.
    pub action: SignalAction,
    /// The symbol to trade after this trader's `custom_ticker`.
    pub symbol: String,
    /// The alert's price, if any (reference for percent distances and per-alert price levels).
    pub price: Option<Decimal>,
    /// The alert's own time, if any (staleness).
    pub alert_time: Option<DateTime<Utc>>,
    /// Seconds to wait after receipt before executing.
    pub delay_secs: u32,
    /// This alert's staleness limit, replacing `stale_after_secs`.
    pub max_lag_secs: Option<u32>,
    /// Per-alert take-profit.
    pub take_profit: Option<ExitLevel>,
    /// Per-alert stop.
    pub stop_loss: Option<StopOverride>,
    /// For a partial exit (`reduce_long` / `reduce_short`): the fraction of its position the
    /// strategy sold; each trader reduces its own position by the same fraction.
    #[serde(default)]
    pub exit_fraction: Option<Decimal>,
    /// The alert's resting entry (limit, stop, stop-limit); `None` = market.
    #[serde(default)]
    pub entry_order: Option<EntryOrderSpec>,
    /// The alert's trailing, break-even, sizing and `same_direction_ignore` instructions.
    #[serde(default)]
    pub risk: AlertRisk,
    /// The trader's resolved settings. Read tolerantly: a setting a newer executor added is
    /// dropped, not a reason to refuse the intent (`jt_domain::tolerant`).
    #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
    pub settings: Settings,
}

/// How a leader's position changed, in the leader's contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderChange {
    /// The leader's symbol (before any contract mapping).
    pub symbol: String,
    /// Signed net position before.
    pub prev_net: i64,
    /// Signed net position after.
    pub new_net: i64,
    /// The leader's fill price of the change, when known (the reference of copied levels).
    pub price: Option<Decimal>,
}

/// One follower's step after its leader's position changed (DOMAIN.md §10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyIntent {
    /// The leader sub-account whose position changed.
    pub leader_sub_account_id: SubAccountId,
    /// What the leader did: its broker fill id, or the intent id of the manual trade on it.
    /// With the follower, the identity of this intent: a replayed fill is never copied twice.
    pub leader_event_id: String,
    /// The follower.
    pub follower_id: FollowerId,
    /// The symbol the follower trades (after its contract mapping, NQ → MNQ).
    pub symbol: String,
    /// The leader's change that caused the step.
    pub leader: LeaderChange,
    /// The follower's step with explicit quantities in its own contracts
    /// (`jt_domain::copy::copy_delta`).
    pub step: CopyAction,
    /// The leader's take-profit price (on the follower's instrument), placed with an entry
    /// whose step copies it.
    pub take_profit: Option<Decimal>,
    /// The leader's stop price (on the follower's instrument), placed with an entry whose step
    /// copies it.
    pub stop_loss: Option<Decimal>,
    /// Seconds after `received_at` past which a copied *entry* is not sent (a follower entering
    /// minutes after its leader trades another market); `None`: never too late. Exits are
    /// always executed.
    #[serde(default)]
    pub max_lag_secs: Option<u32>,
    /// A protection copy instead of a position step (`step` is then `Nothing`): the leader
    /// placed, moved or re-placed its take-profit or stop, and the follower's moves to the
    /// mapped price (issue #22). `None` for a position step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<CopyProtection>,
}

/// Which protective order of a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionKind {
    /// The take-profit: an exit-side limit order.
    TakeProfit,
    /// The stop: an exit-side stop, stop-limit or trailing stop.
    Stop,
}

impl ProtectionKind {
    /// `take-profit` or `stop`, for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TakeProfit => "take-profit",
            Self::Stop => "stop",
        }
    }
}

/// A follower's take-profit or stop set to its leader's (mapped, on the follower's tick): its
/// working one of that kind is moved in place, or one is placed for the whole position when it
/// has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProtection {
    /// The follower position it protects (the leader's direction).
    pub direction: Direction,
    /// Take-profit or stop.
    pub kind: ProtectionKind,
    /// The price, on the follower's instrument and tick.
    pub price: Decimal,
}

/// A manual trade (DOMAIN.md §10: a manual trade through the API, on a leader or any account).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualIntent {
    /// The API client's idempotency key: the same key from the same owner for the same
    /// sub-account is the same trade, however often it is sent.
    pub idempotency_key: String,
    /// Who asked (the owner, or an admin acting for them).
    pub requested_by: UserId,
    /// The symbol to trade (`MNQ1!`, `MNQZ5`).
    pub symbol: String,
    /// The trade.
    pub trade: ManualTrade,
    /// Seconds after `received_at` past which an *entry* is not sent (a market order clicked a
    /// minute ago is another trade now); `None`: the default of 30 s. Exits are always executed.
    #[serde(default)]
    pub max_lag_secs: Option<u32>,
}

/// The seconds a manual entry may wait before it is given up, when the request sets none.
pub const DEFAULT_MANUAL_MAX_LAG_SECS: u32 = 30;

/// What a manual trade does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualTrade {
    /// Open (or add to) a `direction` position: `qty` contracts at market or resting, with
    /// its own take-profit and stop when given (one bracket where the broker has one). An
    /// entry against an open position of the other direction is refused: exit it first.
    Entry {
        /// Long or short.
        direction: Direction,
        /// Contracts (≥ 1).
        qty: Contracts,
        /// A resting entry (limit, stop, stop-limit); `None` = market.
        #[serde(default)]
        order: Option<EntryOrderSpec>,
        /// The price the user saw, for take-profit and stop levels given as prices or
        /// percentages of a market entry (a resting entry's own price is its reference).
        #[serde(default)]
        reference_price: Option<Decimal>,
        /// Take-profit: a distance (ticks, points, percent), a price or dollars per contract.
        #[serde(default)]
        take_profit: Option<ExitLevel>,
        /// Stop: as the take-profit, fixed or trailing.
        #[serde(default)]
        stop_loss: Option<StopOverride>,
    },
    /// Take contracts off the open position at market: `qty` of them (its protection resized
    /// to what remains), or all of it (`None`: working orders of the contract cancelled, the
    /// position closed). Never past flat.
    Exit {
        /// Contracts to take off; `None` = the whole position.
        #[serde(default)]
        qty: Option<Contracts>,
    },
}

/// A control: flatten, cancel or close one symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlIntent {
    /// What to do.
    pub action: ControlAction,
    /// Where.
    pub scope: ControlScope,
    /// Why.
    pub cause: ControlCause,
}

/// What a control does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// Cancel every working order of the scope and close every position of it.
    Flatten,
    /// Cancel every working order of the scope; positions stay.
    CancelOrders,
}

/// Where a control acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlScope {
    /// Everything on the sub-account.
    Account,
    /// One symbol of the sub-account (`MNQ1!`: its front month; `MNQZ5`: that contract).
    Symbol {
        /// The symbol.
        symbol: String,
    },
}

/// Why a control was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlCause {
    /// A recorder's control alert (`flatten`, `kill`).
    Signal {
        /// The signal.
        signal_id: SignalId,
        /// Its recorder.
        recorder_id: RecorderId,
        /// The alert's command.
        command: SignalAction,
    },
    /// An API request (a button in the dashboard, an operator's call).
    Api {
        /// The request's id: with the sub-account, the identity of the intent (a request
        /// sent twice flattens once).
        request_id: Uuid,
        /// Who asked.
        requested_by: UserId,
        /// Their words, if any (`kill switch`, `end of day`).
        #[serde(default)]
        reason: Option<String>,
    },
    /// A risk rule's breach (max daily loss, a prop-firm rule).
    RiskBreach {
        /// The breach.
        breach_id: BreachId,
        /// The rule (`max_daily_loss`, `trailing_drawdown`).
        rule: String,
    },
}

/// A protection repair: what an existing position is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairIntent {
    /// What noticed the gap (a reconciliation pass, an exit-guard event): with the sub-account
    /// and the symbol, the identity of the intent.
    pub cause_id: Uuid,
    /// The symbol of the position.
    pub symbol: String,
    /// The position as it was seen (the broker's reading at execution wins: a position that
    /// changed direction or went flat meanwhile is not repaired).
    pub direction: Direction,
    /// Place the take-profit.
    pub take_profit: bool,
    /// Place the stop.
    pub stop: bool,
    /// The trader whose settings give the distances, when the position follows one.
    #[serde(default)]
    pub trader_id: Option<TraderId>,
    /// The settings the distances come from (`tp_targets`' first target, `sl_*`). Read
    /// tolerantly.
    #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
    pub settings: Settings,
}

/// Where an intent came from, in the store's words (`signal`, `copy`, `manual`, `control`,
/// `reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A signal.
    Signal,
    /// Copy trading.
    Copy,
    /// A manual trade.
    Manual,
    /// A control.
    Control,
    /// A protection repair (the reconciler's work).
    Repair,
}

impl SourceKind {
    /// The name used in logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Signal => "signal",
            SourceKind::Copy => "copy",
            SourceKind::Manual => "manual",
            SourceKind::Control => "control",
            SourceKind::Repair => "repair",
        }
    }
}

/// The staleness rule of an intent: how long after its cause an entry may still be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    /// The alert's own time, when it has one (the age runs from it).
    pub alert_time: Option<DateTime<Utc>>,
    /// The intended wait before executing (added to the limit).
    pub delay_secs: u32,
    /// The limit in seconds.
    pub limit_secs: u32,
}

impl ManualIntent {
    /// A manual `trade` on `symbol` requested by `requested_by` under the API client's
    /// `idempotency_key`, with the default staleness limit for an entry
    /// ([`DEFAULT_MANUAL_MAX_LAG_SECS`]).
    #[must_use]
    pub fn new(
        idempotency_key: impl Into<String>,
        requested_by: UserId,
        symbol: impl Into<String>,
        trade: ManualTrade,
    ) -> Self {
        Self {
            idempotency_key: idempotency_key.into(),
            requested_by,
            symbol: symbol.into(),
            trade,
            max_lag_secs: None,
        }
    }
}

impl ManualTrade {
    /// A market entry of `qty` contracts without take-profit or stop.
    #[must_use]
    pub fn market_entry(direction: Direction, qty: Contracts) -> Self {
        ManualTrade::Entry {
            direction,
            qty,
            order: None,
            reference_price: None,
            take_profit: None,
            stop_loss: None,
        }
    }

    /// The same entry with a take-profit and/or a stop (one bracket where the broker has one).
    /// A level given as a price is measured from `reference_price` for a market entry (set it
    /// to the price the user saw), from its own price for a resting one.
    #[must_use]
    pub fn with_exits(
        self,
        take_profit: Option<ExitLevel>,
        stop_loss: Option<StopOverride>,
        reference_price: Option<Decimal>,
    ) -> Self {
        match self {
            ManualTrade::Entry {
                direction,
                qty,
                order,
                ..
            } => ManualTrade::Entry {
                direction,
                qty,
                order,
                reference_price,
                take_profit,
                stop_loss,
            },
            exit => exit,
        }
    }

    /// Close the whole position at market (its working orders on the contract cancelled).
    #[must_use]
    pub fn exit_all() -> Self {
        ManualTrade::Exit { qty: None }
    }

    /// Take `qty` contracts off the position at market (all of it when `qty` is as large).
    #[must_use]
    pub fn exit(qty: Contracts) -> Self {
        ManualTrade::Exit { qty: Some(qty) }
    }
}

impl ControlIntent {
    /// Flatten the whole sub-account: every working order cancelled, every position closed.
    #[must_use]
    pub fn flatten_account(cause: ControlCause) -> Self {
        Self {
            action: ControlAction::Flatten,
            scope: ControlScope::Account,
            cause,
        }
    }

    /// Close one symbol: its working orders cancelled, its position closed.
    #[must_use]
    pub fn close_symbol(symbol: impl Into<String>, cause: ControlCause) -> Self {
        Self {
            action: ControlAction::Flatten,
            scope: ControlScope::Symbol {
                symbol: symbol.into(),
            },
            cause,
        }
    }

    /// Cancel every working order of the sub-account (`None`) or of one symbol; positions
    /// stay.
    #[must_use]
    pub fn cancel_orders(symbol: Option<String>, cause: ControlCause) -> Self {
        Self {
            action: ControlAction::CancelOrders,
            scope: match symbol {
                Some(symbol) => ControlScope::Symbol { symbol },
                None => ControlScope::Account,
            },
            cause,
        }
    }
}

impl ControlCause {
    /// An API request `request_id` by `requested_by`, with their reason.
    #[must_use]
    pub fn api(request_id: Uuid, requested_by: UserId, reason: Option<String>) -> Self {
        ControlCause::Api {
            request_id,
            requested_by,
            reason,
        }
    }

    /// In words, for the intent's summary (`flatten alert`, `API request by …`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            ControlCause::Signal { command, .. } => format!("{} alert", command.as_str()),
            ControlCause::Api { reason, .. } => match reason {
                Some(r) => format!("API request ({r})"),
                None => "API request".into(),
            },
            ControlCause::RiskBreach { rule, .. } => format!("risk breach: {rule}"),
        }
    }
}

impl IntentMessage {
    /// The intent id of `trader`'s share of `signal`: stable across redeliveries.
    #[must_use]
    pub fn id_for(signal: SignalId, trader: TraderId) -> IntentId {
        IntentId(derived_id(
            "intent",
            &[&signal.to_string(), &trader.to_string()],
        ))
    }

    /// The intent id of a control action caused by `signal` on one sub-account.
    #[must_use]
    pub fn control_id_for(signal: SignalId, sub_account: SubAccountId) -> IntentId {
        IntentId(derived_id(
            "control-intent",
            &[&signal.to_string(), &sub_account.to_string()],
        ))
    }

    /// A trader's share of a signal (the fan-out).
    #[must_use]
    pub fn signal(
        owner: UserId,
        sub_account: SubAccountId,
        broker_account: BrokerAccountId,
        received_at: DateTime<Utc>,
        signal: SignalIntent,
    ) -> Self {
        Self {
            intent_id: Self::id_for(signal.signal_id, signal.trader_id),
            owner_id: owner,
            sub_account_id: sub_account,
            broker_account_id: broker_account,
            created_at: Utc::now(),
            received_at,
            action: IntentAction::Signal(signal),
        }
    }

    /// A control on one sub-account (flatten, cancel, close one symbol). Its id follows its
    /// cause and the sub-account: a signal's control keeps the id it always had; an API request
    /// or a breach sent twice acts once.
    ///
    /// ```
    /// use jt_ids::{BrokerAccountId, SubAccountId, UserId};
    /// use jt_messages::{ControlCause, ControlIntent, IntentMessage};
    ///
    /// let (user, sub, login) = (UserId::new(), SubAccountId::new(), BrokerAccountId::new());
    /// let request = uuid::Uuid::now_v7();
    /// // The kill switch from the API: the store's switch engaged, then one flatten per account.
    /// let flatten = IntentMessage::control(
    ///     user,
    ///     sub,
    ///     login,
    ///     chrono::Utc::now(),
    ///     ControlIntent::flatten_account(ControlCause::api(request, user, Some("kill switch".into()))),
    /// );
    /// assert_eq!(flatten.symbol(), None);
    /// let close = ControlIntent::close_symbol("MNQ1!", ControlCause::api(request, user, None));
    /// # let _ = close;
    /// ```
    #[must_use]
    pub fn control(
        owner: UserId,
        sub_account: SubAccountId,
        broker_account: BrokerAccountId,
        received_at: DateTime<Utc>,
        control: ControlIntent,
    ) -> Self {
        let sub = sub_account.to_string();
        let intent_id = match &control.cause {
            ControlCause::Signal { signal_id, .. } => Self::control_id_for(*signal_id, sub_account),
            ControlCause::Api { request_id, .. } => IntentId(derived_id(
                "api-control-intent",
                &[&request_id.to_string(), &sub],
            )),
            ControlCause::RiskBreach { breach_id, .. } => IntentId(derived_id(
                "risk-control-intent",
                &[&breach_id.to_string(), &sub],
            )),
        };
        Self {
            intent_id,
            owner_id: owner,
            sub_account_id: sub_account,
            broker_account_id: broker_account,
            created_at: Utc::now(),
            received_at,
            action: IntentAction::Control(control),
        }
    }

    /// A manual trade on one sub-account, requested at `received_at`. The same
    /// `manual.idempotency_key` from the same owner for the same sub-account is the same
    /// intent (the same id, the same client order ids): a request sent twice trades once.
    ///
    /// ```
    /// use jt_domain::Direction;
    /// use jt_ids::{BrokerAccountId, SubAccountId, UserId};
    /// use jt_messages::{IntentMessage, ManualIntent, ManualTrade};
    ///
    /// let (user, sub, login) = (UserId::new(), SubAccountId::new(), BrokerAccountId::new());
    /// let buy = IntentMessage::manual(
    ///     user,
    ///     sub,
    ///     login,
    ///     chrono::Utc::now(),
    ///     ManualIntent::new("req-42", user, "MNQ1!", ManualTrade::market_entry(Direction::Long, 2)),
    /// );
    /// // Published as `Envelope::new(MessageId::new(buy.message_id())?, buy)`: sent twice, it
    /// // is one intent with one client order id.
    /// let again = IntentMessage::manual(
    ///     user,
    ///     sub,
    ///     login,
    ///     chrono::Utc::now(),
    ///     ManualIntent::new("req-42", user, "MNQ1!", ManualTrade::market_entry(Direction::Long, 2)),
    /// );
    /// assert_eq!(buy.client_order_id(), again.client_order_id());
    /// ```
    #[must_use]
    pub fn manual(
        owner: UserId,
        sub_account: SubAccountId,
        broker_account: BrokerAccountId,
        received_at: DateTime<Utc>,
        manual: ManualIntent,
    ) -> Self {
        Self {
            intent_id: IntentId(derived_id(
                "manual-intent",
                &[
                    &owner.to_string(),
                    &manual.idempotency_key,
                    &sub_account.to_string(),
                ],
            )),
            owner_id: owner,
            sub_account_id: sub_account,
            broker_account_id: broker_account,
            created_at: Utc::now(),
            received_at,
            action: IntentAction::Manual(manual),
        }
    }

    /// A follower's copy step (the copier). One per leader event and follower.
    #[must_use]
    pub fn copy(
        owner: UserId,
        sub_account: SubAccountId,
        broker_account: BrokerAccountId,
        received_at: DateTime<Utc>,
        copy: CopyIntent,
    ) -> Self {
        Self {
            intent_id: IntentId(derived_id(
                "copy-intent",
                &[&copy.leader_event_id, &copy.follower_id.to_string()],
            )),
            owner_id: owner,
            sub_account_id: sub_account,
            broker_account_id: broker_account,
            created_at: Utc::now(),
            received_at,
            action: IntentAction::Copy(copy),
        }
    }

    /// A protection repair (the reconciler). One per cause, sub-account and symbol.
    #[must_use]
    pub fn repair(
        owner: UserId,
        sub_account: SubAccountId,
        broker_account: BrokerAccountId,
        received_at: DateTime<Utc>,
        repair: RepairIntent,
    ) -> Self {
        Self {
            intent_id: IntentId(derived_id(
                "repair-intent",
                &[
                    &repair.cause_id.to_string(),
                    &sub_account.to_string(),
                    &repair.symbol,
                ],
            )),
            owner_id: owner,
            sub_account_id: sub_account,
            broker_account_id: broker_account,
            created_at: Utc::now(),
            received_at,
            action: IntentAction::Repair(repair),
        }
    }

    /// The bus message id: the intent id's 32 hex digits (JetStream drops a repeat within the
    /// stream's window; the store's idempotency key absorbs the rest).
    #[must_use]
    pub fn message_id(&self) -> String {
        self.intent_id.0.simple().to_string()
    }

    /// The store's idempotency key of the intent: `signal:<signal>:trader:<trader>` and
    /// `signal:<signal>:account:<sub-account>` exactly as before sources existed; the other
    /// sources' keys name their cause the same way.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        let sub = self.sub_account_id;
        match &self.action {
            IntentAction::Signal(s) => format!("signal:{}:trader:{}", s.signal_id, s.trader_id),
            IntentAction::Control(c) => match &c.cause {
                ControlCause::Signal { signal_id, .. } => {
                    format!("signal:{signal_id}:account:{sub}")
                }
                ControlCause::Api { request_id, .. } => {
                    format!("control:{request_id}:account:{sub}")
                }
                ControlCause::RiskBreach { breach_id, .. } => {
                    format!("breach:{breach_id}:account:{sub}")
                }
            },
            IntentAction::Manual(m) => {
                format!(
                    "manual:{}:{}:account:{sub}",
                    self.owner_id, m.idempotency_key
                )
            }
            IntentAction::Copy(c) => {
                format!("copy:{}:follower:{}", c.leader_event_id, c.follower_id)
            }
            IntentAction::Repair(r) => {
                format!("repair:{}:account:{sub}:{}", r.cause_id, r.symbol)
            }
        }
    }

    /// The client order id of the intent's main order: short (brokers cap it at 64
    /// characters, and suffixes are added for the protective legs) and recognisable as ours
    /// (`jt` prefix: copy trading never copies our own orders).
    #[must_use]
    pub fn client_order_id(&self) -> String {
        client_order_id(self.intent_id.0)
    }

    /// Where it came from.
    #[must_use]
    pub fn source(&self) -> SourceKind {
        match &self.action {
            IntentAction::Signal(_) => SourceKind::Signal,
            IntentAction::Copy(_) => SourceKind::Copy,
            IntentAction::Manual(_) => SourceKind::Manual,
            IntentAction::Control(_) => SourceKind::Control,
            IntentAction::Repair(_) => SourceKind::Repair,
        }
    }

    /// The signal behind it, if any (a signal's share, or a control alert).
    #[must_use]
    pub fn signal_id(&self) -> Option<SignalId> {
        match &self.action {
            IntentAction::Signal(s) => Some(s.signal_id),
            IntentAction::Control(ControlIntent {
                cause: ControlCause::Signal { signal_id, .. },
                ..
            }) => Some(*signal_id),
            _ => None,
        }
    }

    /// The trader it is for, if any.
    #[must_use]
    pub fn trader_id(&self) -> Option<TraderId> {
        match &self.action {
            IntentAction::Signal(s) => Some(s.trader_id),
            IntentAction::Repair(r) => r.trader_id,
            _ => None,
        }
    }

    /// The symbol it trades; `None` for a control on the whole sub-account.
    #[must_use]
    pub fn symbol(&self) -> Option<&str> {
        match &self.action {
            IntentAction::Signal(s) => Some(&s.symbol),
            IntentAction::Copy(c) => Some(&c.symbol),
            IntentAction::Manual(m) => Some(&m.symbol),
            IntentAction::Control(c) => match &c.scope {
                ControlScope::Account => None,
                ControlScope::Symbol { symbol } => Some(symbol),
            },
            IntentAction::Repair(r) => Some(&r.symbol),
        }
    }

    /// Whether it may add exposure (an entry, an add, a flip's new side): entries are judged
    /// for staleness, refused by the kill switch and step aside for exits when a broker login
    /// is throttled. Everything else only reduces or protects, and is executed however late.
    #[must_use]
    pub fn may_add_exposure(&self) -> bool {
        match &self.action {
            IntentAction::Signal(s) => s.action.entry_direction().is_some(),
            IntentAction::Copy(c) => matches!(
                c.step,
                CopyAction::Entry { .. } | CopyAction::Increase { .. } | CopyAction::Reverse { .. }
            ),
            IntentAction::Manual(m) => matches!(m.trade, ManualTrade::Entry { .. }),
            IntentAction::Control(_) | IntentAction::Repair(_) => false,
        }
    }

    /// The staleness rule of an intent that may add exposure; `None` when it is never too
    /// late (exits, controls, repairs, a copy without a limit).
    #[must_use]
    pub fn staleness(&self) -> Option<Staleness> {
        if !self.may_add_exposure() {
            return None;
        }
        match &self.action {
            IntentAction::Signal(s) => Some(Staleness {
                alert_time: s.alert_time,
                delay_secs: s.delay_secs,
                limit_secs: s.max_lag_secs.unwrap_or(s.settings.stale_after_secs),
            }),
            IntentAction::Manual(m) => Some(Staleness {
                alert_time: None,
                delay_secs: 0,
                limit_secs: m.max_lag_secs.unwrap_or(DEFAULT_MANUAL_MAX_LAG_SECS),
            }),
            IntentAction::Copy(c) => c.max_lag_secs.map(|limit_secs| Staleness {
                alert_time: None,
                delay_secs: 0,
                limit_secs,
            }),
            IntentAction::Control(_) | IntentAction::Repair(_) => None,
        }
    }

    /// Seconds to wait after `received_at` before executing (an alert's `delay`).
    #[must_use]
    pub fn delay_secs(&self) -> u32 {
        match &self.action {
            IntentAction::Signal(s) => s.delay_secs,
            _ => 0,
        }
    }

    /// The settings recorded with the intent (a signal's or a repair's; the defaults
    /// otherwise).
    #[must_use]
    pub fn settings(&self) -> Settings {
        match &self.action {
            IntentAction::Signal(s) => s.settings.clone(),
            IntentAction::Repair(r) => r.settings.clone(),
            _ => Settings::default(),
        }
    }

    /// What it asks, in a few words (logs, spans): `long`, `copy entry`, `manual exit`,
    /// `flatten`, `repair`.
    #[must_use]
    pub fn action_name(&self) -> &'static str {
        match &self.action {
            IntentAction::Signal(s) => s.action.as_str(),
            IntentAction::Copy(c) if c.protection.is_some() => "copy protection",
            IntentAction::Copy(c) => match c.step {
                CopyAction::Nothing => "copy nothing",
                CopyAction::Entry { .. } => "copy entry",
                CopyAction::Close { .. } => "copy close",
                CopyAction::Increase { .. } => "copy add",
                CopyAction::Reduce { .. } => "copy trim",
                CopyAction::Reverse { .. } => "copy flip",
            },
            IntentAction::Manual(m) => match m.trade {
                ManualTrade::Entry { .. } => "manual entry",
                ManualTrade::Exit { .. } => "manual exit",
            },
            IntentAction::Control(c) => match c.action {
                ControlAction::Flatten => "flatten",
                ControlAction::CancelOrders => "cancel orders",
            },
            IntentAction::Repair(_) => "repair protection",
        }
    }
}

/// The client order id for an intent: `jt` + the intent id's 32 hex digits.
#[must_use]
pub fn client_order_id(intent: Uuid) -> String {
    format!("jt{}", intent.simple())
}

impl Message for IntentMessage {
    const TYPE: &'static str = "order-intent";
    /// 2: the source-neutral shape. 1 (signal-shaped) is still read.
    const SCHEMA_VERSION: u32 = 2;

    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.order(&self.sub_account_id.to_string())
    }

    fn decode(schema_version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        match schema_version {
            2 => serde_json::from_slice(payload).map_err(|e| DecodeError::Payload(e.to_string())),
            1 => serde_json::from_slice::<v1::IntentMessageV1>(payload)
                .map(IntentMessage::from)
                .map_err(|e| DecodeError::Payload(e.to_string())),
            found => Err(DecodeError::UnknownSchemaVersion {
                message_type: Self::TYPE,
                found,
                supported: Self::SCHEMA_VERSION,
            }),
        }
    }
}

/// Schema version 1: the signal-shaped intent every message on ORDERS had before sources
/// existed. Read, never written: an intent queued before the deploy executes after it with the
/// same id, idempotency key and client order ids.
mod v1 {
    use super::*;

    /// The old message, field for field.
    #[derive(Debug, Deserialize)]
    pub(super) struct IntentMessageV1 {
        intent_id: IntentId,
        signal_id: SignalId,
        owner_id: UserId,
        recorder_id: RecorderId,
        /// `None` for a control (flatten of the whole sub-account).
        trader_id: Option<TraderId>,
        sub_account_id: SubAccountId,
        broker_account_id: BrokerAccountId,
        action: SignalAction,
        symbol: Option<String>,
        price: Option<Decimal>,
        alert_time: Option<DateTime<Utc>>,
        received_at: DateTime<Utc>,
        delay_secs: u32,
        max_lag_secs: Option<u32>,
        take_profit: Option<ExitLevel>,
        stop_loss: Option<StopOverride>,
        #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
        settings: Settings,
        #[serde(default)]
        exit_fraction: Option<Decimal>,
        #[serde(default)]
        entry_order: Option<EntryOrderSpec>,
        #[serde(default)]
        risk: AlertRisk,
    }

    impl From<IntentMessageV1> for IntentMessage {
        fn from(m: IntentMessageV1) -> Self {
            let action = match m.trader_id {
                Some(trader_id) => IntentAction::Signal(SignalIntent {
                    signal_id: m.signal_id,
                    recorder_id: m.recorder_id,
                    trader_id,
                    action: m.action,
                    symbol: m.symbol.unwrap_or_default(),
                    price: m.price,
                    alert_time: m.alert_time,
                    delay_secs: m.delay_secs,
                    max_lag_secs: m.max_lag_secs,
                    take_profit: m.take_profit,
                    stop_loss: m.stop_loss,
                    exit_fraction: m.exit_fraction,
                    entry_order: m.entry_order,
                    risk: m.risk,
                    settings: m.settings,
                }),
                // Version 1 wrote one control: a flatten of the whole sub-account, from a
                // flatten or kill alert (both were written as `flatten`).
                None => IntentAction::Control(ControlIntent {
                    action: ControlAction::Flatten,
                    scope: match m.symbol {
                        Some(symbol) => ControlScope::Symbol { symbol },
                        None => ControlScope::Account,
                    },
                    cause: ControlCause::Signal {
                        signal_id: m.signal_id,
                        recorder_id: m.recorder_id,
                        command: m.action,
                    },
                }),
            };
            IntentMessage {
                // The id it was queued with: never derived again (the same value for
                // signals and their controls, whatever the derivation).
                intent_id: m.intent_id,
                owner_id: m.owner_id,
                sub_account_id: m.sub_account_id,
                broker_account_id: m.broker_account_id,
                created_at: m.received_at,
                received_at: m.received_at,
                action,
            }
        }
    }
}

#[cfg(test)]
mod tests;
