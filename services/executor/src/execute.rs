//! The execution: one order intent (ORDERS) → broker calls, serial per sub-account across every
//! replica (DOMAIN.md §5, §7).
//!
//! The intent's life in the store is the recovery log:
//!
//! 1. `pending` — recorded on first delivery (idempotency key: signal + trader). Staleness,
//!    delay, account state, kill switch and filters are checked; the broker's real position is
//!    read; the domain decides; the concrete orders (client order ids derived from the intent
//!    id) are built.
//! 2. `sent` — the decision and its orders are stored *before* the first broker call.
//! 3. `accepted` / `filled` / `rejected` / `failed` / `skipped` — the outcome, with an execution
//!    row per attempt and an EXECUTIONS message; only then is the message acknowledged.
//!
//! A redelivered intent in `sent` or `unknown` (crash, lost answer) is *resumed*, never decided
//! again: the main order is looked up by its client order id first; if the broker has it, the
//! steps before it are not repeated (a flip's close is never sent again after its new entry);
//! if not, the steps run again, each of them safe to repeat. An ambiguous outcome moves the
//! intent to `unknown` and hands the message back: the serial consumer runs nothing else for
//! that sub-account until it is resolved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jt_alerts::{EntryKind, EntryOrderSpec, RiskSizing};
use jt_broker::{AccountId, Broker, BrokerError, Contract, ExitOrders};
use jt_bus::{Bus, Envelope, Incoming, MessageId, Outcome};
use jt_domain::bracket::{self, EntryOrder, StopOrder};
use jt_domain::decision::{
    AlertSize, BrokerPosition, Decision, DecisionInput, IntentPlan, PlanStep,
};
use jt_domain::filters::FilterState;
use jt_domain::order::{OrderKind, OrderRequest, StopKind, TimeInForce};
use jt_domain::{Direction, Instrument, Price, SignalAction, instrument, quantity, session};
use jt_messages::{ExecutionMessage, ExecutionStatus, IntentMessage};
use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::repo::intents::{Decided, Intent, IntentUpdate, NewExecution, NewIntent};
use jt_store::{
    BreachKind, ExecutionId, ExecutionOutcome, IntentId, IntentKind, IntentSource, IntentStatus,
    SignalId, SignalOutcome, Store, StoreError, SubAccountId, TraderId, UserId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use tracing::{error, info, warn};

use crate::brokers::BrokerRegistry;
use crate::fanout::{ages, kind_of, stale_at};
use crate::metrics as m;
use crate::overrides;
use crate::protection;
use crate::throttle::Throttles;

/// Timings of the execution.
#[derive(Debug, Clone)]
pub struct ExecuteConfig {
    /// Waits between reads of a fill price the broker has not reported yet (DOMAIN.md §5.5:
    /// 0.5 s, 1 s, 1.5 s).
    pub fill_price_waits: Vec<Duration>,
    /// How long a close may take to show as flat before a flip's new entry is sent.
    pub flat_wait: Duration,
    /// When an ambiguous outcome is looked at again.
    pub unknown_retry: Duration,
}

impl Default for ExecuteConfig {
    fn default() -> Self {
        Self {
            fill_price_waits: vec![
                Duration::from_millis(500),
                Duration::from_millis(1000),
                Duration::from_millis(1500),
            ],
            flat_wait: Duration::from_secs(3),
            unknown_retry: Duration::from_secs(2),
        }
    }
}

/// What is stored with an intent when it is sent: the plan and the exact orders.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPlan {
    plan: IntentPlan,
    contract: Contract,
    /// The entry of an entry, fresh entry or flip.
    entry: Option<EntryOrder>,
    /// The market order of a DCA add.
    add: Option<OrderRequest>,
    /// The settings the orders were built with (after the alert's own exits); read
    /// tolerantly (a plan written by a newer executor resumes here).
    #[serde(deserialize_with = "jt_domain::tolerant::deserialize")]
    settings: jt_domain::Settings,
    /// The market order of a partial exit.
    #[serde(default)]
    reduce: Option<OrderRequest>,
    /// A resting entry's time in force (`None`: the entry is a market order).
    #[serde(default)]
    time_in_force: Option<TimeInForce>,
    /// The client order id of the trader's previous resting entry, cancelled first when it
    /// still works (the next signal on the contract replaces it).
    #[serde(default)]
    cancel_resting: Option<String>,
}

/// The end of one attempt.
enum Finish {
    /// A final state: record it, publish it, acknowledge.
    Done {
        status: IntentStatus,
        summary: String,
        orders: Vec<String>,
        fill: Option<Decimal>,
    },
    /// Try again later; the intent keeps its state.
    Retry {
        reason: String,
        after: Option<Duration>,
        unknown: bool,
    },
    /// Not attempted: come back after `after` (a broker's limit on the login, the alert's own
    /// delay). Not an attempt: the message may wait any number of times.
    Wait { reason: String, after: Duration },
    /// The broker refused to take calls on the login for `wait` (rate limit, penalty,
    /// lock-out): the attempt decides whether the intent waits or gives up.
    Throttled { reason: String, wait: Duration },
}

impl Finish {
    fn failed(summary: impl Into<String>) -> Self {
        Finish::Done {
            status: IntentStatus::Failed,
            summary: summary.into(),
            orders: Vec::new(),
            fill: None,
        }
    }
    fn skipped(summary: impl Into<String>) -> Self {
        Finish::Done {
            status: IntentStatus::Skipped,
            summary: summary.into(),
            orders: Vec::new(),
            fill: None,
        }
    }
    fn retry(reason: impl Into<String>) -> Self {
        Finish::Retry {
            reason: reason.into(),
            after: None,
            unknown: false,
        }
    }
}

/// The execution handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Execute {
    store: Store,
    bus: Bus,
    brokers: Arc<BrokerRegistry>,
    config: ExecuteConfig,
    throttles: Arc<Throttles>,
}

/// Everything one attempt works with.
struct Ctx<'a> {
    msg: &'a IntentMessage,
    store: &'a Store,
    broker_account: jt_store::BrokerAccountId,
    owner: UserId,
    intent_id: IntentId,
    account: AccountId,
    broker: Arc<dyn Broker>,
    lock_lost: &'a tokio_util::sync::CancellationToken,
    orders: Vec<String>,
}

impl Execute {
    /// An execution over `store`, `bus` and `brokers`.
    #[must_use]
    pub fn new(
        store: Store,
        bus: Bus,
        brokers: Arc<BrokerRegistry>,
        config: ExecuteConfig,
    ) -> Self {
        Self {
            store,
            bus,
            brokers,
            config,
            throttles: Arc::new(Throttles::new()),
        }
    }

    /// Handles one message of the `execute` consumer.
    pub async fn handle(&self, message: Incoming<IntentMessage>) -> Outcome {
        let started = Instant::now();
        let msg = &message.envelope.payload;
        let span = tracing::info_span!(
            "execute",
            intent = %msg.intent_id,
            signal = %msg.signal_id,
            sub_account = %msg.sub_account_id,
            action = msg.action.as_str(),
            attempt = message.attempt,
        );
        jt_runtime::telemetry::extract_context(&span, &message.envelope.trace.to_pairs());
        // `instrument`, not `enter`: a guard held across `.await` would leave the span entered
        // on whichever thread polls next, mislabelling other tasks' logs.
        self.handle_in_span(&message, started)
            .instrument(span)
            .await
    }

    async fn handle_in_span(&self, message: &Incoming<IntentMessage>, started: Instant) -> Outcome {
        let msg = &message.envelope.payload;
        let attempt_started = Utc::now();
        // The intent's state as this attempt left it, when it knows (under the account's lock
        // no one else moves it): `conclude` then need not read it back.
        let mut state = None;
        let finish = match self.attempt(msg, &message.lock_lost, &mut state).await {
            Ok(f) => f,
            Err(e) => {
                // A write may have landed without its answer: read the state when concluding.
                state = None;
                if e.is_transient() {
                    Finish::retry(format!("store: {e}"))
                } else {
                    Finish::failed(format!("store: {e}"))
                }
            }
        };
        match finish {
            Finish::Done {
                status,
                summary,
                orders,
                fill,
            } => {
                if let Err(e) = self
                    .conclude(
                        msg,
                        message.attempt,
                        attempt_started,
                        status,
                        state,
                        &summary,
                        orders,
                        fill,
                    )
                    .await
                {
                    warn!(error = %e, "outcome not recorded yet; retrying");
                    return Outcome::retry(format!("recording the outcome: {e}"));
                }
                self.throttles.done(msg.broker_account_id, msg.intent_id);
                m::intent_done(status.as_str(), started.elapsed());
                info!(status = status.as_str(), %summary, "intent done");
                Outcome::Ack
            }
            Finish::Wait { reason, after } => {
                info!(%reason, wait_ms = after.as_millis() as u64, "intent waits its turn");
                Outcome::wait(reason, after)
            }
            // Turned into a wait or a final state by `attempt`; never reaches here.
            Finish::Throttled { reason, wait } => Outcome::wait(reason, wait),
            Finish::Retry {
                reason,
                after,
                unknown,
            } => {
                let _ = self
                    .store
                    .intents()
                    .record_execution(execution_row(
                        msg,
                        message.attempt,
                        attempt_started,
                        if unknown {
                            ExecutionOutcome::Unknown
                        } else {
                            ExecutionOutcome::Failed
                        },
                        &[],
                        None,
                        Some(&reason),
                    ))
                    .await;
                if message.is_last_attempt() {
                    error!(%reason, "intent gives up after its last attempt; it goes to dead letter");
                    if !unknown {
                        let _ = self
                            .conclude(
                                msg,
                                message.attempt,
                                attempt_started,
                                IntentStatus::Failed,
                                state,
                                &format!("gave up after {} attempts: {reason}", message.attempt),
                                Vec::new(),
                                None,
                            )
                            .await;
                    }
                } else {
                    warn!(%reason, "intent will be retried");
                }
                match after {
                    Some(d) => Outcome::retry_after(reason, d),
                    None => Outcome::retry(reason),
                }
            }
        }
    }

    /// One attempt; `Err` only for store errors around it. `state` follows the intent's state
    /// in the store as far as this attempt knows it (`None`: not known).
    async fn attempt(
        &self,
        msg: &IntentMessage,
        lock_lost: &tokio_util::sync::CancellationToken,
        state: &mut Option<IntentStatus>,
    ) -> Result<Finish, StoreError> {
        let owner = UserId(msg.owner_id);
        // Independent: the intent's row and the account it goes to, read at once.
        let accounts = self.store.accounts();
        let (intent, target) = tokio::join!(
            self.record_pending(msg),
            accounts.sub_account_with_account(owner, SubAccountId(msg.sub_account_id)),
        );
        let intent = intent?;
        *state = Some(intent.status);
        if intent.status.is_terminal() || intent.status == IntentStatus::Accepted {
            // Already concluded by an earlier delivery: say so again (idempotent) and stop.
            return Ok(Finish::Done {
                status: intent.status,
                summary: intent
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "already done".into()),
                orders: Vec::new(),
                fill: intent.average_fill_price,
            });
        }
        let (sub, account) = match target {
            Ok(x) => x,
            Err(StoreError::NotFound { .. }) => {
                return Ok(Finish::failed("the sub-account no longer exists"));
            }
            Err(e) => return Err(e),
        };
        let resuming = matches!(intent.status, IntentStatus::Sent | IntentStatus::Unknown);

        if !resuming {
            let now = Utc::now();
            let not_before = msg.received_at + chrono::Duration::seconds(i64::from(msg.delay_secs));
            if now < not_before {
                let wait = (not_before - now).to_std().unwrap_or_default();
                return Ok(Finish::Wait {
                    reason: format!("delayed by the alert for {wait:?}"),
                    after: wait,
                });
            }
            if let Some(stale) = stale_at(msg, now) {
                let _ = self
                    .store
                    .signals()
                    .set_outcome(
                        owner,
                        SignalId(msg.signal_id),
                        SignalOutcome::Stale,
                        Some("stale at execution"),
                        Some(stale.age_secs * 1000),
                    )
                    .await;
                m::gave_up("stale");
                return Ok(Finish::skipped(
                    stale.reason("when it was about to execute"),
                ));
            }
            // A login locked out (captcha) is a wait like any other for an exit.
            if let Some(until) = account.locked_until.filter(|u| *u > now)
                && !ages(msg.action)
                && account.enabled
                && !account.needs_reauth
            {
                let wait = (until - now).to_std().unwrap_or_default();
                return Ok(self.after_throttle(
                    msg,
                    state,
                    false,
                    format!("the broker login is locked out until {until} (captcha demanded)"),
                    wait,
                ));
            }
            if let Some(reason) = account_unusable(&account, now) {
                return Ok(Finish::failed(reason));
            }
        }

        // The login is throttled (a limit met by this or another intent), or an exit of the
        // login is waiting: exits go first.
        if let Some(wait) =
            self.throttles
                .wait_for(msg.broker_account_id, msg.intent_id, !ages(msg.action))
        {
            return Ok(self.after_throttle(
                msg,
                state,
                resuming,
                "the broker's limit on this login".to_string(),
                wait,
            ));
        }

        let broker = match self.brokers.broker(&account).await {
            Ok(b) => b,
            Err(e) if e.is_transient() => return Ok(Finish::retry(e.to_string())),
            Err(e) => return Ok(Finish::failed(e.to_string())),
        };
        let mut ctx = Ctx {
            msg,
            store: &self.store,
            broker_account: account.id,
            owner,
            intent_id: intent.id,
            account: AccountId(sub.broker_sub_account_id.clone()),
            broker,
            lock_lost,
            orders: Vec::new(),
        };

        if msg.action == SignalAction::Flatten {
            let finish = self.flatten(&mut ctx, &intent, state).await?;
            return Ok(self.settle_throttle(msg, state, resuming, finish));
        }

        let finish = if resuming {
            match serde_json::from_value::<StoredPlan>(intent.plan.clone()) {
                Ok(plan) => self.run(&mut ctx, &plan, true).await,
                Err(e) => Finish::failed(format!(
                    "the stored plan cannot be read ({e}); reconcile by hand"
                )),
            }
        } else {
            match self.decide(&mut ctx, &sub, &account).await {
                Ok(Choice::Skip(reason)) => Finish::skipped(reason),
                Ok(Choice::Plan(plan)) => {
                    self.mark_sent(&ctx, &plan).await?;
                    *state = Some(IntentStatus::Sent);
                    self.run(&mut ctx, &plan, false).await
                }
                Err(f) => f,
            }
        };
        let finish = self.settle_throttle(msg, state, resuming, finish);
        if let Finish::Retry {
            unknown: true,
            ref reason,
            ..
        } = finish
        {
            let marked = self
                .store
                .intents()
                .advance(
                    owner,
                    intent.id,
                    IntentStatus::Unknown,
                    IntentUpdate {
                        reason: Some(reason.clone()),
                        ..Default::default()
                    },
                )
                .await;
            *state = marked.ok().map(|_| IntentStatus::Unknown);
        }
        Ok(finish)
    }

    /// A [`Finish::Throttled`] from the broker: the login's wait is noted (so the login's
    /// other intents wait without calling, exits first) and the intent waits or gives up.
    fn settle_throttle(
        &self,
        msg: &IntentMessage,
        state: &mut Option<IntentStatus>,
        resuming: bool,
        finish: Finish,
    ) -> Finish {
        match finish {
            Finish::Throttled { reason, wait } => {
                m::broker_throttled();
                self.throttles.throttled(
                    msg.broker_account_id,
                    msg.intent_id,
                    !ages(msg.action),
                    wait,
                );
                self.after_throttle(msg, state, resuming, reason, wait)
            }
            other => other,
        }
    }

    /// Whether an intent that must wait `wait` for its login waits or gives up (see
    /// [`crate::throttle`]): exits always wait; an entry gives up only when the wait would make
    /// it stale and nothing of it can have reached the broker yet (`resuming`: an earlier
    /// attempt sent it, or may have).
    fn after_throttle(
        &self,
        msg: &IntentMessage,
        state: &mut Option<IntentStatus>,
        resuming: bool,
        reason: String,
        wait: Duration,
    ) -> Finish {
        // One hand-back waits at most this long, then looks again (a lock-out of an hour is
        // waited in steps; a lifted one is noticed).
        const MAX_WAIT_STEP: Duration = Duration::from_secs(300);
        let exit = !ages(msg.action);
        if let Some(stale) = gives_up(msg, resuming, wait, Utc::now()) {
            self.throttles.done(msg.broker_account_id, msg.intent_id);
            m::gave_up("throttled_stale");
            warn!(%reason, wait_s = wait.as_secs(), "entry given up: it would be stale when the broker takes calls again");
            let summary = format!(
                "not sent: {reason} lasts {} s more, and by then the alert would be {} s old \
                 (since {}), over its limit of {} s",
                wait.as_secs().max(1),
                stale.age_secs,
                stale.since(),
                stale.limit_secs
            );
            // Nothing was sent: a skip from `pending`, a failure once marked `sent`.
            let status = if *state == Some(IntentStatus::Sent) {
                IntentStatus::Failed
            } else {
                IntentStatus::Skipped
            };
            return Finish::Done {
                status,
                summary: format!("stale: {summary}"),
                orders: Vec::new(),
                fill: None,
            };
        }
        m::throttle_wait(exit);
        Finish::Wait {
            reason: format!(
                "{reason}: waiting {} s for its turn{}",
                wait.as_secs(),
                if exit { " (exits first)" } else { "" }
            ),
            after: wait.clamp(Duration::from_millis(100), MAX_WAIT_STEP),
        }
    }

    /// Records the intent as pending (or finds it from an earlier delivery).
    async fn record_pending(&self, msg: &IntentMessage) -> Result<Intent, StoreError> {
        let created = self
            .store
            .intents()
            .create(NewIntent {
                id: IntentId(msg.intent_id),
                owner: UserId(msg.owner_id),
                sub_account: SubAccountId(msg.sub_account_id),
                trader: msg.trader_id.map(TraderId),
                signal: Some(SignalId(msg.signal_id)),
                source: if msg.trader_id.is_some() {
                    IntentSource::Signal
                } else {
                    IntentSource::Control
                },
                idempotency_key: msg.idempotency_key(),
                kind: kind_of(msg.action),
                symbol: msg.symbol.clone().unwrap_or_else(|| "*".into()),
                contract: None,
                side: None,
                quantity: 0,
                settings: msg.settings.clone(),
                plan: serde_json::Value::Null,
                skip_reason: None,
            })
            .await?;
        Ok(created.intent().clone())
    }

    /// Reads the broker and decides; `Err` carries a finish for refusals and broker errors.
    async fn decide(
        &self,
        ctx: &mut Ctx<'_>,
        sub: &SubAccount,
        account: &BrokerAccount,
    ) -> Result<Choice, Finish> {
        let msg = ctx.msg;
        let symbol = msg.symbol.clone().unwrap_or_default();
        let instrument =
            instrument::resolve_ticker(&symbol).map_err(|e| Finish::failed(format!("{e}")))?;
        let contract = call(
            ctx,
            ctx.broker
                .resolve_contract(&broker_symbol(&symbol, instrument))
                .await,
        )?;
        let decided_at = msg.received_at + chrono::Duration::seconds(i64::from(msg.delay_secs));
        // The broker's position and the store's filter state do not depend on each other.
        let (position, filters) = tokio::join!(
            ctx.broker.position(&ctx.account, &contract.id),
            self.filter_state(ctx.owner, msg, sub, decided_at),
        );
        let position = call(ctx, position)?;
        let position = BrokerPosition {
            net_qty: position.as_ref().map_or(0, |p| p.net_qty),
            average_price: position.as_ref().and_then(|p| p.avg_price),
        };
        let filters = filters.map_err(|e| {
            if e.is_transient() {
                Finish::retry(format!("store: {e}"))
            } else {
                Finish::failed(format!("store: {e}"))
            }
        })?;
        let (filters, resting) = filters;
        let reference = msg.price.or(position.average_price);
        // The alert's own risk instructions replace the trader's for this signal (entries only).
        let settings = match msg.action.entry_direction() {
            Some(direction) => overrides::apply_all(
                &msg.settings,
                direction,
                Some(instrument),
                msg.price,
                msg.take_profit.as_ref(),
                msg.stop_loss.as_ref(),
                &msg.risk,
            )
            .map_err(|e| Finish::failed(format!("{e}")))?,
            None => msg.settings.clone(),
        };
        let alert_size = match (msg.action.entry_direction(), msg.risk.sizing) {
            (Some(_), Some(sizing)) => Some(
                self.risk_size(ctx, &settings, instrument, reference, sizing)
                    .await?,
            ),
            _ => None,
        };
        let decision = jt_domain::decision::decide(&DecisionInput {
            action: msg.action,
            position,
            settings: &settings,
            filters,
            now: decided_at,
            exit_fraction: msg.exit_fraction,
            alert_size,
        })
        .map_err(|e| Finish::failed(format!("{e}")))?;
        let plan = match decision {
            Decision::Skip { reason } => {
                return Ok(Choice::Skip(format!("{} ({})", reason, reason.rule())));
            }
            Decision::Execute { plan } => plan,
        };
        let client_order_id = msg.client_order_id();
        let mut entry = None;
        let mut add = None;
        let mut reduce = None;
        let mut time_in_force = None;
        let steps = plan.steps();
        for &step in &steps {
            match step {
                PlanStep::PlaceEntry { side, qty } => {
                    let mut built = bracket::build_entry(
                        &settings,
                        instrument,
                        side.opens(),
                        qty,
                        reference,
                        client_order_id.clone(),
                    )
                    .map_err(|e| Finish::failed(format!("{e}")))?;
                    if let Some(spec) = &msg.entry_order {
                        let kind = resting_kind(spec, instrument, msg.settings.inverse_strategy)
                            .map_err(Finish::failed)?;
                        match &mut built {
                            EntryOrder::Bracket(b) => b.entry = kind,
                            EntryOrder::Market(o) => o.kind = kind,
                        }
                        if spec.time_in_force == TimeInForce::Day
                            && !ctx.broker.capabilities().day_orders
                        {
                            return Err(Finish::failed(
                                "the broker cannot expire a resting entry at the end of the \
                                 trading day: send timeInForce gtc (it then works until the \
                                 next signal) or a market entry"
                                    .to_string(),
                            ));
                        }
                        time_in_force = Some(spec.time_in_force);
                    }
                    if let Err(reason) =
                        bracket::check_required_protection(&built, account.require_brackets)
                    {
                        return Ok(Choice::Skip(format!("{reason} ({})", reason.rule())));
                    }
                    if let EntryOrder::Bracket(b) = &built {
                        let missing = ctx.broker.capabilities().missing_for(b);
                        if !missing.is_empty() {
                            // Refused, never sent without the protection the trader asked for.
                            return Err(Finish::failed(format!(
                                "the broker cannot place this bracket as configured (missing: {missing:?})"
                            )));
                        }
                    }
                    entry = Some(built);
                }
                PlanStep::MarketAdd { side, qty } => {
                    if msg.entry_order.is_some() {
                        // Never converted to market: refused with the reason.
                        return Err(Finish::failed(
                            "the alert asks for a limit or stop order, but this signal is a DCA \
                             add, which is always a market order: send the add as a market \
                             order, or turn DCA off for a resting fresh entry"
                                .to_string(),
                        ));
                    }
                    add = Some(OrderRequest {
                        client_order_id: client_order_id.clone(),
                        side,
                        qty,
                        kind: OrderKind::Market,
                    });
                }
                PlanStep::ReducePosition { side, qty } => {
                    reduce = Some(OrderRequest {
                        client_order_id: client_order_id.clone(),
                        side,
                        qty,
                        kind: OrderKind::Market,
                    });
                }
                _ => {}
            }
        }
        // The previous resting entry is cancelled first, unless the plan cancels every working
        // order of the contract anyway.
        let cancel_resting = resting
            .filter(|_| !steps.contains(&PlanStep::CancelWorkingOrders))
            .map(|id| jt_messages::client_order_id(id.0));
        Ok(Choice::Plan(Box::new(StoredPlan {
            plan,
            contract,
            entry,
            add,
            settings,
            reduce,
            time_in_force,
            cancel_resting,
        })))
    }

    /// The entry size of an alert that sizes by risk: its dollars (or its percentage of the
    /// balance the broker reports) × the multiplier, over what one contract loses at the stop.
    async fn risk_size(
        &self,
        ctx: &Ctx<'_>,
        settings: &jt_domain::Settings,
        instrument: &Instrument,
        reference: Option<Decimal>,
        sizing: RiskSizing,
    ) -> Result<AlertSize, Finish> {
        let stop = bracket::stop_distance(settings, instrument, reference)
            .map_err(|e| Finish::failed(format!("{e}")))?
            .unwrap_or(Decimal::ZERO);
        let dollars = match sizing {
            RiskSizing::Dollars { amount } => amount,
            RiskSizing::Percent { percent } => {
                let balance = call(ctx, ctx.broker.balance(&ctx.account).await)?;
                if balance <= Decimal::ZERO {
                    return Err(Finish::failed(format!(
                        "the alert risks {percent}% of the account's balance, and the broker \
                         reports a balance of {balance}"
                    )));
                }
                balance
                    .checked_mul(percent)
                    .map(|d| d / Decimal::ONE_HUNDRED)
                    .ok_or_else(|| {
                        Finish::failed("the balance × risk percentage is out of range")
                    })?
            }
        };
        let risk = dollars
            .checked_mul(settings.multiplier)
            .ok_or_else(|| Finish::failed("the risk × multiplier is out of range"))?;
        let (qty, per_contract) = quantity::risk_sized(risk, stop, instrument)
            .map_err(|e| Finish::failed(e.to_string()))?;
        Ok(AlertSize {
            qty,
            risk: risk.round_dp(2).normalize(),
            per_contract,
        })
    }

    async fn filter_state(
        &self,
        owner: UserId,
        msg: &IntentMessage,
        sub: &SubAccount,
        now: DateTime<Utc>,
    ) -> Result<(FilterState, Option<IntentId>), StoreError> {
        let day = session::trading_day(now);
        let activity = async {
            match msg.trader_id {
                Some(t) => self
                    .store
                    .intents()
                    .trader_activity(owner, TraderId(t), session::session_start(day))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        // Three independent reads on the way to the broker: at once.
        let risk = self.store.risk();
        let (activity, kill, breach) = tokio::try_join!(
            activity,
            risk.kill_state_of(sub),
            risk.breach(owner, sub.id, day, BreachKind::MaxDailyLoss),
        )?;
        let kill = kill.engaged();
        let breached = breach.is_some();
        Ok((
            FilterState {
                last_signal_at: activity.as_ref().and_then(|a| a.last_executed_at),
                signals_this_session: activity.as_ref().map_or(0, |a| a.executed_since),
                last_add_at: activity.as_ref().and_then(|a| a.last_add_at),
                daily_loss_breached: breached,
                kill_switch: kill,
            },
            activity.and_then(|a| a.resting_entry),
        ))
    }

    async fn mark_sent(&self, ctx: &Ctx<'_>, plan: &StoredPlan) -> Result<(), StoreError> {
        let (kind, side, quantity) = describe(&plan.plan);
        // Serialising plain data types cannot fail; `Null` would only lose the resume data.
        let stored = serde_json::to_value(plan).unwrap_or(serde_json::Value::Null);
        self.store
            .intents()
            .advance(
                ctx.owner,
                ctx.intent_id,
                IntentStatus::Sent,
                IntentUpdate {
                    decided: Some(Decided {
                        kind,
                        contract: Some(plan.contract.name.clone()),
                        side,
                        quantity,
                        plan: stored,
                        resting_entry: plan.time_in_force.is_some() && plan.entry.is_some(),
                    }),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// Runs the plan's steps. `resuming`: an earlier attempt may have done some of them.
    async fn run(&self, ctx: &mut Ctx<'_>, plan: &StoredPlan, resuming: bool) -> Finish {
        let main = ctx.msg.client_order_id();
        let steps = plan.plan.steps();
        // On resume, the main order found at the broker means every step before it was done:
        // never close again after a flip's new entry exists.
        let mut main_done = false;
        if resuming && (plan.entry.is_some() || plan.add.is_some() || plan.reduce.is_some()) {
            match call(ctx, ctx.broker.find_order(&ctx.account, &main).await) {
                Ok(Some(found)) => {
                    ctx.orders.push(found.id.0.clone());
                    main_done = true;
                }
                Ok(None) => {}
                Err(f) => return f,
            }
        }
        let mut fill = None;
        let mut done: Vec<&'static str> = Vec::new();
        if !main_done && let Some(previous) = &plan.cancel_resting {
            if let Err(finish) = self.cancel_resting(ctx, previous).await {
                return finish;
            }
            done.push("the previous resting entry cancelled");
        }
        for step in steps {
            if ctx.lock_lost.is_cancelled() {
                return Finish::retry(
                    "the account's execution lock was lost; another replica may run it",
                );
            }
            let is_main = matches!(
                step,
                PlanStep::PlaceEntry { .. }
                    | PlanStep::MarketAdd { .. }
                    | PlanStep::ReducePosition { .. }
            );
            if main_done && !matches!(step, PlanStep::ReplaceProtection { .. }) {
                continue;
            }
            let result = match step {
                PlanStep::CancelWorkingOrders => self.cancel_working(ctx, &plan.contract).await,
                PlanStep::ClosePosition { .. } => {
                    self.close(ctx, &plan.contract, plan.entry.is_some()).await
                }
                PlanStep::PlaceEntry { .. } => match (&plan.entry, plan.time_in_force) {
                    (Some(entry), None) => self.place_entry(ctx, &plan.contract, entry).await,
                    (Some(entry), Some(tif)) => {
                        self.place_resting(ctx, &plan.contract, entry, tif).await
                    }
                    (None, _) => Err(Finish::failed("the plan has no entry order")),
                },
                PlanStep::ResizeProtection { position_qty } => match plan.plan {
                    IntentPlan::Reduce { direction, .. } => {
                        self.resize_protection(ctx, &plan.contract, direction, position_qty)
                            .await
                    }
                    _ => Err(Finish::failed("protection resized outside a partial exit")),
                },
                PlanStep::ReducePosition { .. } => match &plan.reduce {
                    Some(order) => match self.place(ctx, &plan.contract, order).await {
                        Err(Finish::Done {
                            status,
                            summary,
                            orders,
                            fill,
                        }) => {
                            // Refused: the protection was already resized; it covers the
                            // position the broker still holds again.
                            let restored = self.restore_protection(ctx, plan).await;
                            Err(Finish::Done {
                                status,
                                summary: format!("{summary}; {restored}"),
                                orders,
                                fill,
                            })
                        }
                        other => other,
                    },
                    None => Err(Finish::failed("the plan has no reduce order")),
                },
                PlanStep::MarketAdd { .. } => match &plan.add {
                    Some(order) => self.place(ctx, &plan.contract, order).await,
                    None => Err(Finish::failed("the plan has no add order")),
                },
                PlanStep::ReplaceProtection { .. } => {
                    match self.replace_protection(ctx, plan).await {
                        Ok(avg) => {
                            fill = avg;
                            Ok(())
                        }
                        Err(f) => Err(f),
                    }
                }
            };
            if let Err(finish) = result {
                return with_progress(finish, &done);
            }
            done.push(step_name(step));
            if is_main {
                m::alert_to_order(
                    (Utc::now() - ctx.msg.received_at)
                        .to_std()
                        .unwrap_or_default(),
                );
            }
        }
        let mut summary = summary_of(&plan.plan);
        if let (Some(tif), Some(entry)) = (plan.time_in_force, &plan.entry) {
            summary.push_str(&format!(
                "; the entry rests as a {} until {}",
                resting_words(entry),
                match tif {
                    TimeInForce::Day => "it fills, the end of the trading day or the next signal",
                    TimeInForce::Gtc => "it fills or the next signal",
                }
            ));
        }
        if plan.cancel_resting.is_some() && !main_done {
            summary.push_str("; the previous resting entry was cancelled first");
        }
        Finish::Done {
            status: if fill.is_some() {
                IntentStatus::Filled
            } else {
                IntentStatus::Accepted
            },
            summary,
            orders: std::mem::take(&mut ctx.orders),
            fill,
        }
    }

    /// Cancels the trader's previous resting entry when it still works (its bracket's legs,
    /// suspended until a fill, go with it). Already filled, cancelled or expired: nothing to do.
    async fn cancel_resting(&self, ctx: &mut Ctx<'_>, client_order_id: &str) -> Result<(), Finish> {
        let Some(order) = call(
            ctx,
            ctx.broker.find_order(&ctx.account, client_order_id).await,
        )?
        else {
            return Ok(());
        };
        if !order.status.is_open() {
            return Ok(());
        }
        match ctx.broker.cancel_order(&ctx.account, &order.id).await {
            Ok(()) | Err(BrokerError::Rejected { .. }) => Ok(()),
            Err(e) => Err(broker_finish(ctx, e)),
        }
    }

    /// Places a resting entry (limit, stop, stop-limit) with its time in force; its protection,
    /// when it has any, attaches at the broker when it fills.
    async fn place_resting(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        entry: &EntryOrder,
        time_in_force: TimeInForce,
    ) -> Result<(), Finish> {
        let ack = call(
            ctx,
            ctx.broker
                .place_resting_entry(&ctx.account, contract, entry, time_in_force)
                .await,
        )?;
        if let Some(id) = ack.entry_order_id.map(|o| o.0).or(ack.bracket_id) {
            ctx.orders.push(id);
        }
        Ok(())
    }

    /// A partial exit's first step: the position's working exit orders resized to what will
    /// remain (take-profit legs trimmed from the farthest, stops to the remaining quantity),
    /// with the broker's own calls (modify the quantity, or cancel at 0). Safe to repeat.
    async fn resize_protection(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        direction: Direction,
        target: u32,
    ) -> Result<(), Finish> {
        let working = call(ctx, ctx.broker.working_orders(&ctx.account).await)?;
        for change in protection::resize_plan(&working, &contract.id, direction, target) {
            let result = if change.to == 0 {
                ctx.broker
                    .cancel_order(&ctx.account, &change.order.id)
                    .await
            } else {
                ctx.broker
                    .modify_order_qty(&ctx.account, &change.order, change.total())
                    .await
            };
            match result {
                Ok(()) => {}
                // Gone meanwhile (filled, or cancelled with its partner): nothing left to trim.
                Err(BrokerError::Rejected { .. }) if change.to < change.from => {
                    warn!(order = %change.order.id, "exit order already gone while resizing");
                }
                Err(e) => return Err(broker_finish(ctx, e)),
            }
        }
        Ok(())
    }

    /// After a refused reduction: the stops cover the position the broker still holds again
    /// (the take-profits stay trimmed). Returns what happened, for the intent's summary.
    async fn restore_protection(&self, ctx: &mut Ctx<'_>, plan: &StoredPlan) -> String {
        let IntentPlan::Reduce { direction, .. } = plan.plan else {
            return String::new();
        };
        let held = match ctx.broker.position(&ctx.account, &plan.contract.id).await {
            Ok(p) => p.map_or(0, |p| u32::try_from(p.net_qty.unsigned_abs()).unwrap_or(0)),
            Err(e) => {
                m::unprotected();
                return format!(
                    "POSITION MAY BE UNDER-PROTECTED: its stop was resized for the partial \
                     exit and the position could not be read back ({e}); check it by hand"
                );
            }
        };
        match self
            .resize_protection(ctx, &plan.contract, direction, held)
            .await
        {
            Ok(()) => format!("the stop covers the {held} contracts still held again"),
            Err(_) => {
                m::unprotected();
                error!(
                    "POSITION UNDER-PROTECTED: the stop could not be restored after a refused partial exit"
                );
                format!(
                    "POSITION UNDER-PROTECTED: the stop was resized for the partial exit and \
                     could not be restored to the {held} contracts still held; protect them by \
                     hand"
                )
            }
        }
    }

    async fn cancel_working(&self, ctx: &mut Ctx<'_>, contract: &Contract) -> Result<(), Finish> {
        let report = call(
            ctx,
            ctx.broker
                .cancel_working_orders(&ctx.account, contract)
                .await,
        )?;
        // Already filled or cancelled (a refusal): nothing left to cancel.
        match report
            .failures
            .into_iter()
            .find(|f| !matches!(f.error, BrokerError::Rejected { .. }))
        {
            Some(failure) => Err(broker_finish(ctx, failure.error)),
            None => Ok(()),
        }
    }

    /// Closes the position; when an entry follows (flip), waits until the broker shows flat so
    /// the entry opens the new direction instead of netting against the old one.
    async fn close(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        entry_follows: bool,
    ) -> Result<(), Finish> {
        let outcome = call(ctx, ctx.broker.close_position(&ctx.account, contract).await)?;
        if let Some(id) = outcome.order_id {
            ctx.orders.push(id.0);
        }
        if !entry_follows {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.flat_wait;
        loop {
            let p = call(ctx, ctx.broker.position(&ctx.account, &contract.id).await)?;
            if p.is_none_or(|p| p.net_qty == 0) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Finish::retry(
                    "the close has not shown as flat yet; the new entry waits",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn place_entry(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        entry: &EntryOrder,
    ) -> Result<(), Finish> {
        match entry {
            EntryOrder::Bracket(b) => {
                let ack = call(
                    ctx,
                    ctx.broker.place_bracket(&ctx.account, contract, b).await,
                )?;
                if let Some(id) = ack.entry_order_id.map(|o| o.0).or(ack.bracket_id) {
                    ctx.orders.push(id);
                }
                Ok(())
            }
            EntryOrder::Market(o) => self.place(ctx, contract, o).await,
        }
    }

    async fn place(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<(), Finish> {
        let ack = call(
            ctx,
            ctx.broker.place_order(&ctx.account, contract, order).await,
        )?;
        ctx.orders.push(ack.order_id.0);
        Ok(())
    }

    /// After a DCA add: the new average from the broker, every working take-profit (and stop,
    /// when the trader has one) cancelled, one of each placed for the whole position. Returns
    /// the average. A stop is never computed from an unknown fill price.
    async fn replace_protection(
        &self,
        ctx: &mut Ctx<'_>,
        plan: &StoredPlan,
    ) -> Result<Option<Decimal>, Finish> {
        let IntentPlan::Add { direction, .. } = plan.plan else {
            return Err(Finish::failed("protection replacement outside a DCA add"));
        };
        let instrument: &Instrument =
            instrument::by_root(&plan.contract.root).map_err(|e| Finish::failed(e.to_string()))?;
        let mut waits = self.config.fill_price_waits.iter();
        let (qty, average) = loop {
            let p = call(
                ctx,
                ctx.broker.position(&ctx.account, &plan.contract.id).await,
            )?;
            if let Some(p) = p.filter(|p| Direction::of_net(p.net_qty) == Some(direction))
                && let Some(avg) = p.avg_price.filter(|a| *a > Decimal::ZERO)
            {
                break (
                    u32::try_from(p.net_qty.unsigned_abs()).unwrap_or(u32::MAX),
                    avg,
                );
            }
            match waits.next() {
                Some(w) => tokio::time::sleep(*w).await,
                None => {
                    m::unprotected();
                    error!(
                        "POSITION UNPROTECTED: the add's fill price is unknown; no take-profit or stop was placed"
                    );
                    return Err(Finish::failed(
                        "position unprotected: the broker did not report the position's average price after the add; \
                         no take-profit or stop was placed — protect it by hand",
                    ));
                }
            }
        };
        let main = ctx.msg.client_order_id();
        let protection = bracket::dca_protection(
            &plan.settings,
            instrument,
            direction,
            qty,
            Some(average),
            &main,
        )
        .map_err(|e| Finish::failed(format!("{e}")))?;
        let which = if protection.stop.is_some() {
            ExitOrders::All
        } else {
            ExitOrders::TakeProfits
        };
        if protection.take_profit.is_some() || protection.stop.is_some() {
            let report = call(
                ctx,
                ctx.broker
                    .cancel_exit_orders(&ctx.account, &plan.contract, direction, which)
                    .await,
            )?;
            if !report.failures.is_empty() {
                warn!(failures = ?report.failures, "some exit orders could not be cancelled");
            }
        }
        if let Some(tp) = &protection.take_profit {
            self.place_once(ctx, &plan.contract, tp).await?;
        }
        if let Some(stop) = &protection.stop {
            self.place_stop_once(ctx, &plan.contract, stop).await?;
        }
        Ok(Some(average))
    }

    /// Places `order` unless an order with its client id already exists (a resumed attempt).
    async fn place_once(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        order: &OrderRequest,
    ) -> Result<(), Finish> {
        if let Some(found) = call(
            ctx,
            ctx.broker
                .find_order(&ctx.account, &order.client_order_id)
                .await,
        )? {
            ctx.orders.push(found.id.0);
            return Ok(());
        }
        self.place(ctx, contract, order).await
    }

    async fn place_stop_once(
        &self,
        ctx: &mut Ctx<'_>,
        contract: &Contract,
        stop: &StopOrder,
    ) -> Result<(), Finish> {
        if let Some(found) = call(
            ctx,
            ctx.broker
                .find_order(&ctx.account, &stop.client_order_id)
                .await,
        )? {
            ctx.orders.push(found.id.0);
            return Ok(());
        }
        match ctx.broker.place_stop(&ctx.account, contract, stop).await {
            Ok(ack) => {
                ctx.orders.push(ack.order_id.0);
                Ok(())
            }
            Err(BrokerError::Unsupported { feature }) if !matches!(stop.kind, StopKind::Fixed) => {
                // The broker cannot trail after a trigger on a standalone order: a fixed stop at
                // the same distance protects the position; the trailing part is reported.
                warn!(
                    ?feature,
                    "trailing stop placed as a fixed stop at the same distance"
                );
                let fixed = StopOrder {
                    kind: StopKind::Fixed,
                    ..stop.clone()
                };
                let ack = call(
                    ctx,
                    ctx.broker.place_stop(&ctx.account, contract, &fixed).await,
                )?;
                ctx.orders.push(ack.order_id.0);
                Ok(())
            }
            Err(e) => Err(broker_finish(ctx, e)),
        }
    }

    async fn flatten(
        &self,
        ctx: &mut Ctx<'_>,
        intent: &Intent,
        state: &mut Option<IntentStatus>,
    ) -> Result<Finish, StoreError> {
        if intent.status == IntentStatus::Pending {
            self.store
                .intents()
                .advance(
                    ctx.owner,
                    ctx.intent_id,
                    IntentStatus::Sent,
                    IntentUpdate {
                        decided: Some(Decided {
                            kind: IntentKind::Flatten,
                            contract: None,
                            side: None,
                            quantity: 0,
                            plan: serde_json::json!({"kind": "flatten_account"}),
                            resting_entry: false,
                        }),
                        ..Default::default()
                    },
                )
                .await?;
            *state = Some(IntentStatus::Sent);
        }
        // Flattening is safe to repeat: it cancels what is working and closes what is open.
        Ok(match ctx.broker.flatten_account(&ctx.account).await {
            Ok(report) if report.failures.is_empty() => Finish::Done {
                status: IntentStatus::Accepted,
                summary: "account flattened: working orders cancelled, positions closed".into(),
                orders: Vec::new(),
                fill: None,
            },
            Ok(report) => Finish::retry(format!("flatten incomplete: {:?}", report.failures)),
            Err(e) => broker_finish(ctx, e),
        })
    }

    /// Records the final state, the execution row and the EXECUTIONS message.
    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        &self,
        msg: &IntentMessage,
        attempt: u32,
        started: DateTime<Utc>,
        status: IntentStatus,
        known: Option<IntentStatus>,
        summary: &str,
        orders: Vec<String>,
        fill: Option<Decimal>,
    ) -> Result<(), String> {
        let owner = UserId(msg.owner_id);
        let intents = self.store.intents();
        let current = match known {
            Some(state) => state,
            None => intents
                .status(owner, IntentId(msg.intent_id))
                .await
                .map_err(|e| e.to_string())?,
        };
        // A refusal before anything was sent (a read refused) is a failure, not a rejection.
        let status = if status == IntentStatus::Rejected && current == IntentStatus::Pending {
            IntentStatus::Failed
        } else {
            status
        };
        let outcome = match status {
            IntentStatus::Filled => ExecutionOutcome::Filled,
            IntentStatus::Accepted => ExecutionOutcome::Accepted,
            IntentStatus::Rejected => ExecutionOutcome::Rejected,
            _ => ExecutionOutcome::Failed,
        };
        // The intent's final state and the attempt's row: one write (one statement on
        // PostgreSQL). `skipped` and `failed` may come straight from `pending`; the others
        // follow `sent`. A skip sent nothing, so it has no attempt row.
        let update = IntentUpdate {
            reason: Some(summary.to_string()),
            average_fill_price: fill,
            ..Default::default()
        };
        let execution = (status != IntentStatus::Skipped).then(|| {
            execution_row(
                msg,
                attempt,
                started,
                outcome,
                &orders,
                fill,
                (!matches!(status, IntentStatus::Filled | IntentStatus::Accepted))
                    .then_some(summary),
            )
        });
        intents
            .settle(
                owner,
                IntentId(msg.intent_id),
                (current != status).then_some((status, update)),
                execution,
            )
            .await
            .map_err(|e| e.to_string())?;
        let report = ExecutionMessage {
            intent_id: msg.intent_id,
            signal_id: Some(msg.signal_id),
            owner_id: msg.owner_id,
            trader_id: msg.trader_id,
            sub_account_id: msg.sub_account_id,
            status: match status {
                IntentStatus::Filled | IntentStatus::Accepted => ExecutionStatus::Done,
                IntentStatus::Skipped => ExecutionStatus::Skipped,
                IntentStatus::Rejected => ExecutionStatus::Rejected,
                _ => ExecutionStatus::Failed,
            },
            summary: summary.to_string(),
            symbol: msg.symbol.clone().unwrap_or_else(|| "*".into()),
            broker_order_ids: orders,
            fill_price: fill,
            latency_ms: (Utc::now() - msg.received_at).num_milliseconds(),
            at: Utc::now(),
        };
        let id = MessageId::new(report.message_id()).map_err(|e| e.to_string())?;
        self.bus
            .publish(&Envelope::new(id, report))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The row of one execution attempt, finished now; its id derives from intent and attempt.
fn execution_row(
    msg: &IntentMessage,
    attempt: u32,
    started: DateTime<Utc>,
    outcome: ExecutionOutcome,
    orders: &[String],
    fill: Option<Decimal>,
    failure: Option<&str>,
) -> NewExecution {
    NewExecution {
        id: ExecutionId(jt_messages::derived_id(
            "execution",
            &[&msg.intent_id.to_string(), &attempt.to_string()],
        )),
        owner: UserId(msg.owner_id),
        intent: IntentId(msg.intent_id),
        attempt,
        started_at: started,
        finished_at: Some(Utc::now()),
        outcome,
        broker_order_ids: orders.to_vec(),
        fill_price: fill,
        filled_quantity: None,
        error_kind: failure.map(|_| outcome.as_str().to_string()),
        failure_reason: failure.map(str::to_string),
    }
}

fn step_name(step: PlanStep) -> &'static str {
    match step {
        PlanStep::CancelWorkingOrders => "working orders cancelled",
        PlanStep::ClosePosition { .. } => "position closed",
        PlanStep::PlaceEntry { .. } => "entry placed",
        PlanStep::MarketAdd { .. } => "add placed",
        PlanStep::ReplaceProtection { .. } => "protection replaced",
        PlanStep::ResizeProtection { .. } => "protection resized",
        PlanStep::ReducePosition { .. } => "position reduced",
    }
}

/// Says which steps were done before a final failure (a flip whose entry was rejected has
/// closed the old position: the trader must know).
fn with_progress(finish: Finish, done: &[&str]) -> Finish {
    match finish {
        Finish::Throttled { reason, wait } if !done.is_empty() => Finish::Throttled {
            reason: format!("{reason} (already done: {})", done.join(", ")),
            wait,
        },
        Finish::Done {
            status,
            summary,
            orders,
            fill,
        } if !done.is_empty() => Finish::Done {
            status,
            summary: format!("{summary} (already done: {})", done.join(", ")),
            orders,
            fill,
        },
        other => other,
    }
}

/// Whether an intent that must wait `wait` (from `now`) for its login gives up instead, and
/// why: only an entry that nothing of can be at the broker yet (not `resuming`) and that the
/// wait would make stale. Exits never give up for a wait, however long.
fn gives_up(
    msg: &IntentMessage,
    resuming: bool,
    wait: Duration,
    now: DateTime<Utc>,
) -> Option<crate::fanout::Stale> {
    if !ages(msg.action) || resuming {
        return None;
    }
    let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
    stale_at(msg, at)
}

/// What the decision came to before anything is sent.
enum Choice {
    Skip(String),
    Plan(Box<StoredPlan>),
}

/// Why an account cannot be used now, if it cannot.
fn account_unusable(account: &BrokerAccount, now: DateTime<Utc>) -> Option<String> {
    if !account.enabled {
        return Some("the broker account is disabled".into());
    }
    if account.needs_reauth {
        return Some(format!(
            "the broker account needs re-authentication ({}): enter its credentials again",
            account.reauth_reason.as_deref().unwrap_or("login refused")
        ));
    }
    if let Some(until) = account.locked_until
        && until > now
    {
        return Some(format!(
            "the broker login is locked out until {until} (captcha demanded)"
        ));
    }
    None
}

/// The symbol to resolve at the broker: the root for a continuous ticker (`MNQ1!` → front
/// month), the contract itself for a dated one (`MNQZ5`).
fn broker_symbol(symbol: &str, instrument: &Instrument) -> String {
    let s = symbol.trim().to_ascii_uppercase();
    let s = s.rsplit(':').next().unwrap_or(&s).to_string();
    if s.ends_with('!') || s == instrument.root {
        instrument.root.to_string()
    } else {
        s
    }
}

fn describe(plan: &IntentPlan) -> (IntentKind, Option<jt_domain::Side>, u32) {
    match plan {
        IntentPlan::Entry { direction, size }
        | IntentPlan::FreshEntry {
            direction, size, ..
        } => (IntentKind::Entry, Some(direction.entry_side()), size.qty),
        IntentPlan::Add {
            direction, size, ..
        } => (IntentKind::Add, Some(direction.entry_side()), size.qty),
        IntentPlan::Flip {
            direction, size, ..
        } => (IntentKind::Flip, Some(direction.entry_side()), size.qty),
        IntentPlan::Close { direction, qty, .. } => {
            (IntentKind::Close, Some(direction.exit_side()), *qty)
        }
        IntentPlan::Reduce { direction, qty, .. } => {
            (IntentKind::Reduce, Some(direction.exit_side()), *qty)
        }
        IntentPlan::CancelOrders => (IntentKind::Cancel, None, 0),
    }
}

fn summary_of(plan: &IntentPlan) -> String {
    match plan {
        IntentPlan::Entry { direction, size } => format!("entry {direction} {}", size.qty),
        IntentPlan::FreshEntry {
            direction,
            size,
            existing,
        } => {
            format!(
                "fresh entry {direction} {} (DCA off; {existing} already open)",
                size.qty
            )
        }
        IntentPlan::Add {
            direction, size, ..
        } => format!("DCA add {direction} {}, take-profit replaced", size.qty),
        IntentPlan::Flip {
            from,
            close_qty,
            direction,
            size,
        } => {
            format!(
                "flip: closed {from} {close_qty}, entry {direction} {}",
                size.qty
            )
        }
        IntentPlan::Close {
            direction,
            qty,
            entry_refused,
        } => match entry_refused {
            Some(r) => format!("closed {direction} {qty}; the new entry was refused: {r}"),
            None => format!("closed {direction} {qty}"),
        },
        IntentPlan::Reduce {
            direction,
            qty,
            remaining,
            fraction,
        } => format!(
            "partial exit of the {direction}: {qty} off ({}% sold by the strategy), {remaining} \
             remain; protection resized to {remaining}",
            (fraction * Decimal::ONE_HUNDRED).round_dp(2).normalize()
        ),
        IntentPlan::CancelOrders => "working orders cancelled".into(),
    }
}

/// The order kind of an alert's resting entry, prices rounded to tick. For an
/// `inverse_strategy` trader the mirror of the order: a limit becomes a stop at the same price
/// and a stop a limit, so the mirrored entry triggers when the original would fill (a
/// stop-limit has no mirror and is refused).
fn resting_kind(
    spec: &EntryOrderSpec,
    instrument: &Instrument,
    inverse: bool,
) -> Result<OrderKind, String> {
    let tick = |p: Option<Decimal>| p.map(|p| Price::on_tick(instrument, p));
    let missing = || "the resting entry has no price".to_string();
    Ok(match (spec.kind, inverse) {
        (EntryKind::Limit, false) => OrderKind::Limit {
            price: tick(spec.limit_price).ok_or_else(missing)?,
        },
        (EntryKind::Stop, false) => OrderKind::Stop {
            stop: tick(spec.stop_price).ok_or_else(missing)?,
        },
        (EntryKind::StopLimit, false) => OrderKind::StopLimit {
            stop: tick(spec.stop_price).ok_or_else(missing)?,
            price: tick(spec.limit_price).ok_or_else(missing)?,
        },
        (EntryKind::Limit, true) => OrderKind::Stop {
            stop: tick(spec.limit_price).ok_or_else(missing)?,
        },
        (EntryKind::Stop, true) => OrderKind::Limit {
            price: tick(spec.stop_price).ok_or_else(missing)?,
        },
        (EntryKind::StopLimit, true) => {
            return Err(
                "a stop-limit entry has no mirror for an inverse_strategy trader: send \
                        a limit or stop entry, or turn inverse_strategy off"
                    .into(),
            );
        }
    })
}

/// `limit at 21000`, `stop at 21010`, `stop-limit 21010/21012`.
fn resting_words(entry: &EntryOrder) -> String {
    let kind = match entry {
        EntryOrder::Bracket(b) => b.entry,
        EntryOrder::Market(o) => o.kind,
    };
    match kind {
        OrderKind::Market => "market order".into(),
        OrderKind::Limit { price } => format!("limit at {price}"),
        OrderKind::Stop { stop } => format!("stop at {stop}"),
        OrderKind::StopLimit { stop, price } => format!("stop-limit {stop}/{price}"),
    }
}

/// Maps a broker result; errors become the attempt's finish.
fn call<T>(ctx: &Ctx<'_>, r: Result<T, BrokerError>) -> Result<T, Finish> {
    r.map_err(|e| broker_finish(ctx, e))
}

/// What a broker error means for the intent (the table in `jt_broker::error`). Errors about
/// the login itself are also written on the broker account, where the API and the metrics
/// show them (needs re-authentication, locked out, last error).
fn broker_finish(ctx: &Ctx<'_>, e: BrokerError) -> Finish {
    m::broker_error(e.kind().as_str());
    let (store, owner, account, text) = (
        ctx.store.clone(),
        ctx.owner,
        ctx.broker_account,
        e.to_string(),
    );
    let account_update = match &e {
        BrokerError::NeedsReauth { reason } => {
            let reason = reason.clone();
            Some(tokio::spawn(async move {
                store
                    .accounts()
                    .mark_needs_reauth(owner, account, &reason)
                    .await
            }))
        }
        BrokerError::LockedOut { until } => {
            let until = *until;
            Some(tokio::spawn(async move {
                store
                    .accounts()
                    .lock_until(owner, account, until, &text)
                    .await
            }))
        }
        BrokerError::AuthExpired { .. } | BrokerError::Transport { .. } => {
            Some(tokio::spawn(async move {
                store.accounts().record_error(owner, account, &text).await
            }))
        }
        _ => None,
    };
    drop(account_update); // best effort: the intent's own outcome carries the reason

    match e {
        BrokerError::UnknownOutcome { .. } => Finish::Retry {
            reason: e.to_string(),
            after: Some(Duration::from_secs(2)),
            unknown: true,
        },
        // The login may not call for a while: the attempt decides who waits (exits always;
        // entries while they stay fresh) and who gives up (`Execute::after_throttle`).
        BrokerError::RateLimited { .. } | BrokerError::Penalty { .. } => Finish::Throttled {
            wait: e.retry_after().unwrap_or(Duration::from_secs(1)),
            reason: e.to_string(),
        },
        BrokerError::LockedOut { .. } if !ages(ctx.msg.action) => Finish::Throttled {
            wait: e.retry_after().unwrap_or(Duration::from_secs(60)),
            reason: e.to_string(),
        },
        BrokerError::AuthExpired { .. } | BrokerError::Transport { .. } => {
            Finish::retry(e.to_string())
        }
        BrokerError::Rejected { .. } => Finish::Done {
            status: IntentStatus::Rejected,
            summary: e.to_string(),
            orders: Vec::new(),
            fill: None,
        },
        BrokerError::NeedsReauth { .. }
        | BrokerError::LockedOut { .. }
        | BrokerError::UnknownContract { .. }
        | BrokerError::UnknownAccount { .. }
        | BrokerError::InvalidRequest { .. }
        | BrokerError::Unsupported { .. } => Finish::failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn intent(action: SignalAction, max_lag_secs: Option<u32>) -> IntentMessage {
        IntentMessage {
            intent_id: Uuid::nil(),
            signal_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            recorder_id: Uuid::nil(),
            trader_id: None,
            sub_account_id: Uuid::nil(),
            broker_account_id: Uuid::nil(),
            action,
            symbol: Some("MNQ1!".into()),
            price: None,
            alert_time: None,
            received_at: DateTime::from_timestamp(1_767_623_400, 0).unwrap(),
            delay_secs: 0,
            max_lag_secs,
            take_profit: None,
            stop_loss: None,
            settings: jt_domain::Settings::default(),
            exit_fraction: None,
            entry_order: None,
            risk: jt_alerts::AlertRisk::default(),
        }
    }

    #[test]
    fn an_exit_never_gives_up_for_a_broker_wait_however_long() {
        let now = DateTime::from_timestamp(1_767_623_402, 0).unwrap();
        for action in [
            SignalAction::Close,
            SignalAction::CloseLong,
            SignalAction::CloseShort,
            SignalAction::Flatten,
            SignalAction::Kill,
            SignalAction::Cancel,
        ] {
            for wait in [60, 600, 3600] {
                assert!(
                    gives_up(&intent(action, None), false, Duration::from_secs(wait), now)
                        .is_none(),
                    "{action:?} after {wait} s"
                );
            }
        }
    }

    #[test]
    fn an_entry_gives_up_only_when_the_wait_would_make_it_stale() {
        let now = DateTime::from_timestamp(1_767_623_402, 0).unwrap();
        let entry = intent(SignalAction::Long, None);
        // Received 2 s ago, limit 30 s: a 20 s wait leaves it fresh, a 60 s one does not.
        assert!(gives_up(&entry, false, Duration::from_secs(20), now).is_none());
        let stale = gives_up(&entry, false, Duration::from_secs(60), now).unwrap();
        assert_eq!((stale.age_secs, stale.limit_secs), (62, 30));
        // Its own max_lag decides.
        let patient = intent(SignalAction::Short, Some(300));
        assert!(gives_up(&patient, false, Duration::from_secs(60), now).is_none());
        // An entry an earlier attempt may have sent waits, to be looked up.
        assert!(gives_up(&entry, true, Duration::from_secs(3600), now).is_none());
    }
}
