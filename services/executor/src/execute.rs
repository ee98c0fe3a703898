//! The execution: one order intent (ORDERS) → broker calls, serial per sub-account across every
//! replica (DOMAIN.md §5, §7). Every source — signal, copy, manual, control, repair — goes
//! through this one lifecycle; what an intent comes to at the broker is decided by its source
//! ([`crate::plan`]) and carried out by the order choreography (`jt-trading`).
//!
//! The intent's life in the store is the recovery log:
//!
//! 1. Deciding — the first delivery finds no row (the intent's id and idempotency key derive
//!    from its cause: signal + trader, request + account, …). Staleness, delay, account state
//!    and throttling are checked; the source's decision reads the broker's real position; the
//!    concrete orders (client order ids derived from the intent id) are built. Nothing is
//!    written while it is decided: an intent that waits (the alert's delay, the login's turn) or whose
//!    attempt fails before it is decided is recorded as `pending`, so it shows and its attempt
//!    row has a parent.
//! 2. `sent` — the plan and its orders are stored *before* the first broker call, in one
//!    insert (one update from `pending`). Only the delivery whose write stored it may send.
//! 3. `accepted` / `filled` / `rejected` / `failed` / `skipped` — the outcome, with an execution
//!    row per attempt and an EXECUTIONS message; only then is the message acknowledged.
//!
//! A redelivered intent in `sent` or `unknown` (crash, lost answer) is *resumed*, never decided
//! again: the stored plan is performed again, and its main order is looked up by its client
//! order id first — if the broker has it, the steps before it are not repeated (a flip's close
//! is never sent again after its new entry); if not, the steps run again, each of them safe to
//! repeat. An ambiguous outcome moves the intent to `unknown` and hands the message back: the
//! serial consumer runs nothing else for that sub-account until it is resolved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jt_broker::{AccountId, Broker, BrokerError};
use jt_bus::{Bus, Envelope, Incoming, MessageId, Outcome};
use jt_messages::{ExecutionMessage, ExecutionStatus, IntentMessage};
use jt_store::repo::accounts::BrokerAccount;
use jt_store::repo::intents::{Advanced, Decided, IntentUpdate, NewExecution};
use jt_store::{
    ExecutionId, ExecutionOutcome, IntentStatus, SignalOutcome, Store, StoreError, UserId,
};
use jt_trading::{Desk, StepError, Timing};
use rust_decimal::Decimal;
use tracing::Instrument as _;
use tracing::{error, info, warn};

use crate::fanout::stale_at;
use crate::metrics as m;
use crate::plan::{self, Choice, Inputs, Plan, Refusal, Stored};
use crate::record::new_intent;
use crate::throttle::Throttles;
use jt_connect::BrokerAccess;

/// How long a delivery that lost the race to store an intent's plan waits before it looks again:
/// longer than the broker write timeout (10 s), so that the winner's order has reached the
/// broker, or failed, by the time this one resumes by look-up.
const ANOTHER_DELIVERY_SENDING: Duration = Duration::from_secs(15);

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
        let timing = Timing::default();
        Self {
            fill_price_waits: timing.fill_price_waits,
            flat_wait: timing.flat_wait,
            unknown_retry: Duration::from_secs(2),
        }
    }
}

impl ExecuteConfig {
    fn timing(&self) -> Timing {
        Timing {
            fill_price_waits: self.fill_price_waits.clone(),
            flat_wait: self.flat_wait,
            ..Timing::default()
        }
    }
}

/// The intent's row as an attempt knows it. Its replica owns the account's partition, so no
/// one else moves it: what the attempt wrote or read stays true until it concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Not known (a write may have landed without its answer): read it when concluding.
    Unsure,
    /// Not in the store: no delivery has recorded or decided it yet.
    Absent,
    /// In the store, in this state.
    At(IntentStatus),
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
    fn store(e: &StoreError) -> Self {
        if e.is_transient() {
            Finish::retry(format!("store: {e}"))
        } else {
            Finish::failed(format!("store: {e}"))
        }
    }
}

/// The execution handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Execute {
    store: Store,
    bus: Bus,
    brokers: Arc<BrokerAccess>,
    timing: Arc<Timing>,
    throttles: Arc<Throttles>,
}

/// Everything one attempt works with.
struct Ctx<'a> {
    msg: &'a IntentMessage,
    store: &'a Store,
    broker_account: jt_store::BrokerAccountId,
    owner: UserId,
    account: AccountId,
    broker: Arc<dyn Broker>,
    lock_lost: &'a tokio_util::sync::CancellationToken,
}

impl Execute {
    /// An execution over `store`, `bus` and `brokers`.
    #[must_use]
    pub fn new(store: Store, bus: Bus, brokers: Arc<BrokerAccess>, config: ExecuteConfig) -> Self {
        Self {
            store,
            bus,
            brokers,
            timing: Arc::new(config.timing()),
            throttles: Arc::new(Throttles::new()),
        }
    }

    /// Handles one message of the `execute` consumer.
    pub async fn handle(&self, message: Incoming<IntentMessage>) -> Outcome {
        let started = Instant::now();
        let msg = &message.envelope.payload;
        let span = tracing::info_span!(
            "execute",
            otel.kind = "consumer",
            intent = %msg.intent_id,
            source = msg.source().as_str(),
            signal = msg.signal_id().map(|s| s.to_string()),
            sub_account = %msg.sub_account_id,
            action = msg.action_name(),
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
        // The intent's row as this attempt left it: `conclude` then need not read it back.
        let mut state = Known::Unsure;
        let finish = match self.attempt(msg, &message.lock_lost, &mut state).await {
            Ok(f) => f,
            Err(e) => {
                // A write may have landed without its answer: read the state when concluding.
                state = Known::Unsure;
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
                self.throttles
                    .done(msg.broker_account_id.0, msg.intent_id.0);
                m::intent_done(status.as_str(), started.elapsed());
                info!(status = status.as_str(), %summary, "intent done");
                Outcome::Ack
            }
            Finish::Wait { reason, after } => {
                // A waiting intent shows as `pending` (an alert's delay, the login's turn).
                if let Err(e) = self.record_pending(msg, &mut state).await {
                    return Outcome::retry(format!("recording the intent: {e}"));
                }
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
                // The attempt's row refers to the intent's.
                let _ = self.record_pending(msg, &mut state).await;
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

    /// One attempt; `Err` only for store errors around it. `state` follows the intent's row
    /// in the store as far as this attempt knows it.
    async fn attempt(
        &self,
        msg: &IntentMessage,
        lock_lost: &tokio_util::sync::CancellationToken,
        state: &mut Known,
    ) -> Result<Finish, StoreError> {
        let owner = msg.owner_id;
        let intents = self.store.intents();
        // One statement: the account the intent goes to and the intent's state (none on a
        // first delivery: an intent is first written when it is decided or concluded).
        let target = self
            .store
            .accounts()
            .sub_account_for_intent(owner, msg.sub_account_id, msg.intent_id)
            .await;
        let (target, recorded) = match target {
            Ok((sub, account, status)) => (Some((sub, account)), status),
            // Gone: the intent's own row still says whether it was concluded.
            Err(StoreError::NotFound { .. }) => (
                None,
                intents.find(owner, msg.intent_id).await?.map(|i| i.status),
            ),
            Err(e) => return Err(e),
        };
        *state = recorded.map_or(Known::Absent, Known::At);
        // The row itself only where it is needed: the outcome of an intent concluded by an
        // earlier delivery, the stored plan of one being resumed.
        let intent = match recorded {
            Some(s) if s != IntentStatus::Pending => intents.find(owner, msg.intent_id).await?,
            _ => None,
        };
        if let Some(intent) = intent
            .as_ref()
            .filter(|i| i.status.is_terminal() || i.status == IntentStatus::Accepted)
        {
            // Already concluded by an earlier delivery: say so again (idempotent) and stop.
            *state = Known::At(intent.status);
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
        let Some((sub, account)) = target else {
            return Ok(Finish::failed("the sub-account no longer exists"));
        };
        let resuming = matches!(
            *state,
            Known::At(IntentStatus::Sent | IntentStatus::Unknown)
        );
        if !sub.enabled && msg.may_add_exposure() && !resuming {
            return Ok(Finish::skipped(
                "the sub-account is disabled: no new entries (exits and flattens still go)",
            ));
        }

        if !resuming {
            let now = Utc::now();
            let not_before =
                msg.received_at + chrono::Duration::seconds(i64::from(msg.delay_secs()));
            if now < not_before {
                let wait = (not_before - now).to_std().unwrap_or_default();
                return Ok(Finish::Wait {
                    reason: format!("delayed by the alert for {wait:?}"),
                    after: wait,
                });
            }
            if let Some(stale) = stale_at(msg, now) {
                if let Some(signal) = msg.signal_id() {
                    let _ = self
                        .store
                        .signals()
                        .set_outcome(
                            owner,
                            signal,
                            SignalOutcome::Stale,
                            Some("stale at execution"),
                            Some(stale.age_secs * 1000),
                        )
                        .await;
                }
                m::gave_up("stale");
                return Ok(Finish::skipped(
                    stale.reason("when it was about to execute"),
                ));
            }
            // A login locked out (captcha) is a wait like any other for an exit.
            if let Some(until) = account.locked_until.filter(|u| *u > now)
                && !msg.may_add_exposure()
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
        if let Some(wait) = self.throttles.wait_for(
            msg.broker_account_id.0,
            msg.intent_id.0,
            !msg.may_add_exposure(),
        ) {
            return Ok(self.after_throttle(
                msg,
                state,
                resuming,
                "the broker's limit on this login".to_string(),
                wait,
            ));
        }

        let broker = match self.brokers.for_account(&account).await {
            Ok(b) => b,
            Err(e) if e.is_transient() => return Ok(Finish::retry(e.to_string())),
            Err(e) => return Ok(Finish::failed(e.to_string())),
        };
        let ctx = Ctx {
            msg,
            store: &self.store,
            broker_account: account.id,
            owner,
            account: AccountId(sub.broker_sub_account_id.clone()),
            broker,
            lock_lost,
        };

        let finish = if let Some(intent) = intent.as_ref().filter(|_| resuming) {
            match Stored::read(msg, &intent.plan) {
                Ok(stored) => self.perform(&ctx, &stored, true).await,
                Err(e) => Finish::failed(format!(
                    "the stored plan cannot be read ({e}); reconcile by hand"
                )),
            }
        } else {
            let inputs = Inputs {
                msg,
                store: &self.store,
                broker: ctx.broker.as_ref(),
                account: &ctx.account,
                sub: &sub,
                login: &account,
            };
            match plan::decide(&inputs).await {
                Ok(Choice::Skip(reason)) => Finish::skipped(reason),
                Ok(Choice::Plan(plan)) => {
                    if self.mark_sent(&ctx, *state, &plan).await? {
                        *state = Known::At(IntentStatus::Sent);
                        self.perform(&ctx, &plan.stored, false).await
                    } else {
                        // Another delivery of this intent stored its plan first (two replicas
                        // both believing they own its partition, for a moment): that one
                        // sends. This one comes back once any call of it has landed, and then
                        // resumes by look-up — never by sending on its own decision.
                        *state = Known::Unsure;
                        warn!("another delivery of this intent decided it first; not sending");
                        Finish::Wait {
                            reason: "another delivery of this intent is sending it".into(),
                            after: ANOTHER_DELIVERY_SENDING,
                        }
                    }
                }
                Err(Refusal::Broker(e)) => broker_finish(&ctx, e),
                Err(Refusal::Store(e)) => Finish::store(&e),
                Err(Refusal::Failed(reason)) => Finish::failed(reason),
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
                    msg.intent_id,
                    IntentStatus::Unknown,
                    IntentUpdate {
                        reason: Some(reason.clone()),
                        ..Default::default()
                    },
                )
                .await;
            *state = match marked {
                Ok(_) => Known::At(IntentStatus::Unknown),
                Err(_) => Known::Unsure,
            };
        }
        Ok(finish)
    }

    /// A [`Finish::Throttled`] from the broker: the login's wait is noted (so the login's
    /// other intents wait without calling, exits first) and the intent waits or gives up.
    fn settle_throttle(
        &self,
        msg: &IntentMessage,
        state: &mut Known,
        resuming: bool,
        finish: Finish,
    ) -> Finish {
        match finish {
            Finish::Throttled { reason, wait } => {
                m::broker_throttled();
                self.throttles.throttled(
                    msg.broker_account_id.0,
                    msg.intent_id.0,
                    !msg.may_add_exposure(),
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
        state: &mut Known,
        resuming: bool,
        reason: String,
        wait: Duration,
    ) -> Finish {
        // One hand-back waits at most this long, then looks again (a lock-out of an hour is
        // waited in steps; a lifted one is noticed).
        const MAX_WAIT_STEP: Duration = Duration::from_secs(300);
        let exit = !msg.may_add_exposure();
        if let Some(stale) = gives_up(msg, resuming, wait, Utc::now()) {
            self.throttles
                .done(msg.broker_account_id.0, msg.intent_id.0);
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
            let status = if *state == Known::At(IntentStatus::Sent) {
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

    /// Records the intent as `pending` when this attempt knows it is not in the store yet (it
    /// waits, or its attempt's row is about to be written); an intent already recorded, or not
    /// known, is left as it is.
    async fn record_pending(
        &self,
        msg: &IntentMessage,
        state: &mut Known,
    ) -> Result<(), StoreError> {
        if *state == Known::Absent {
            let created = self.store.intents().create(new_intent(msg, None)).await?;
            *state = Known::At(created.intent().status);
        }
        Ok(())
    }

    /// Stores the plan (and what it does) with the intent in `sent`, before the first broker
    /// call: one insert for an intent not in the store yet, the move from `pending` for one
    /// recorded while it waited. `false`: this delivery did not store it — another one did
    /// first (or concluded it), and only the one that stored it may send.
    async fn mark_sent(
        &self,
        ctx: &Ctx<'_>,
        state: Known,
        plan: &Plan,
    ) -> Result<bool, StoreError> {
        let decided = Decided {
            kind: plan.kind,
            contract: plan.contract.clone(),
            side: plan.side,
            quantity: plan.quantity,
            plan: plan.stored.to_json(),
            resting_entry: plan.resting_entry,
        };
        let intents = self.store.intents();
        if state == Known::Absent {
            return intents
                .create_sent(&new_intent(ctx.msg, None), decided)
                .await;
        }
        let moved = intents
            .advance(
                ctx.owner,
                ctx.msg.intent_id,
                IntentStatus::Sent,
                IntentUpdate {
                    decided: Some(decided),
                    ..Default::default()
                },
            )
            .await;
        match moved {
            Ok(Advanced::Applied) => Ok(true),
            Ok(Advanced::AlreadyThere) | Err(StoreError::InvalidTransition { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Performs the stored plan's steps at the broker. `resuming`: an earlier attempt may have
    /// done some of them.
    async fn perform(&self, ctx: &Ctx<'_>, stored: &Stored, resuming: bool) -> Finish {
        let choreography = match stored.choreography(ctx.msg) {
            Ok(c) => c,
            Err(e) => return Finish::failed(e),
        };
        let desk = Desk::new(ctx.broker.as_ref(), &ctx.account, &self.timing);
        match jt_trading::run(&desk, &choreography, resuming, ctx.lock_lost).await {
            Ok(done) => {
                if let Some(at) = done.main_at {
                    m::alert_to_order((at - ctx.msg.received_at).to_std().unwrap_or_default());
                }
                Finish::Done {
                    status: if done.fill.is_some() {
                        IntentStatus::Filled
                    } else {
                        IntentStatus::Accepted
                    },
                    summary: stored.summary(&done),
                    orders: done.orders,
                    fill: done.fill,
                }
            }
            Err(failed) => {
                let finish = match &failed.error {
                    StepError::Broker(e) => broker_finish(ctx, e.clone()),
                    StepError::ReduceRefused {
                        error,
                        restored,
                        under_protected,
                    } => {
                        if *under_protected {
                            m::unprotected();
                        }
                        match broker_finish(ctx, error.clone()) {
                            // Refused: the protection resized for it covers what is held again.
                            Finish::Done {
                                status,
                                summary,
                                orders,
                                fill,
                            } => Finish::Done {
                                status,
                                summary: format!("{summary}; {restored}"),
                                orders,
                                fill,
                            },
                            other => other,
                        }
                    }
                    StepError::Unprotected(reason) => {
                        m::unprotected();
                        Finish::failed(reason.clone())
                    }
                    StepError::NotFlat | StepError::Incomplete(_) | StepError::Interrupted => {
                        Finish::retry(failed.error.to_string())
                    }
                    StepError::Invalid(reason) => Finish::failed(reason.clone()),
                };
                with_progress(finish, &failed)
            }
        }
    }

    /// Records the final state, the execution row and the EXECUTIONS message.
    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        &self,
        msg: &IntentMessage,
        attempt: u32,
        started: DateTime<Utc>,
        status: IntentStatus,
        known: Known,
        summary: &str,
        orders: Vec<String>,
        fill: Option<Decimal>,
    ) -> Result<(), String> {
        let owner = msg.owner_id;
        let intents = self.store.intents();
        let known = match known {
            Known::Unsure => match intents.status(owner, msg.intent_id).await {
                Ok(state) => Known::At(state),
                Err(StoreError::NotFound { .. }) => Known::Absent,
                Err(e) => return Err(e.to_string()),
            },
            known => known,
        };
        let current = match known {
            Known::At(state) => state,
            // Not recorded yet: a skip is written as it is, in one insert; anything else is
            // recorded first, then concluded with its attempt's row like any other.
            _ => {
                let skip = (status == IntentStatus::Skipped).then(|| summary.to_string());
                intents
                    .create(new_intent(msg, skip))
                    .await
                    .map_err(|e| e.to_string())?
                    .intent()
                    .status
            }
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
                msg.intent_id,
                (current != status).then_some((status, update)),
                execution,
            )
            .await
            .map_err(|e| e.to_string())?;
        if matches!(status, IntentStatus::Failed | IntentStatus::Rejected) {
            crate::notify::execution_failed(&self.store, msg, status, summary).await;
        }
        let report = ExecutionMessage {
            intent_id: msg.intent_id.0,
            signal_id: msg.signal_id().map(|s| s.0),
            owner_id: msg.owner_id.0,
            trader_id: msg.trader_id().map(|t| t.0),
            sub_account_id: msg.sub_account_id.0,
            status: match status {
                IntentStatus::Filled | IntentStatus::Accepted => ExecutionStatus::Done,
                IntentStatus::Skipped => ExecutionStatus::Skipped,
                IntentStatus::Rejected => ExecutionStatus::Rejected,
                _ => ExecutionStatus::Failed,
            },
            summary: summary.to_string(),
            symbol: msg.symbol().unwrap_or("*").to_string(),
            broker_order_ids: orders,
            fill_price: fill,
            latency_ms: (Utc::now() - msg.received_at).num_milliseconds(),
            at: Utc::now(),
        };
        let id = MessageId::new(report.message_id()).map_err(|e| e.to_string())?;
        self.bus
            // The execution's span continues in whatever reads the report (copier, risk).
            .publish(
                &Envelope::new(id, report).with_trace(jt_bus::TraceContext::from_pairs(
                    &jt_runtime::telemetry::inject_context(),
                )),
            )
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
        owner: msg.owner_id,
        intent: msg.intent_id,
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

/// Says which steps were done before a final failure (a flip whose entry was rejected has
/// closed the old position: the trader must know).
fn with_progress(finish: Finish, failed: &jt_trading::Failed) -> Finish {
    match finish {
        Finish::Throttled { reason, wait } => Finish::Throttled {
            reason: failed.with_progress(reason),
            wait,
        },
        Finish::Done {
            status,
            summary,
            orders,
            fill,
        } => Finish::Done {
            status,
            summary: failed.with_progress(summary),
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
    if !msg.may_add_exposure() || resuming {
        return None;
    }
    let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
    stale_at(msg, at)
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
        BrokerError::LockedOut { .. } if !ctx.msg.may_add_exposure() => Finish::Throttled {
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
    use jt_domain::SignalAction;
    use jt_messages::{IntentAction, SignalIntent};
    use jt_store::{BrokerAccountId, IntentId, RecorderId, SignalId, SubAccountId, TraderId};
    use uuid::Uuid;

    fn intent(action: SignalAction, max_lag_secs: Option<u32>) -> IntentMessage {
        let at = DateTime::from_timestamp(1_767_623_400, 0).unwrap();
        IntentMessage {
            intent_id: IntentId(Uuid::nil()),
            owner_id: UserId(Uuid::nil()),
            sub_account_id: SubAccountId(Uuid::nil()),
            broker_account_id: BrokerAccountId(Uuid::nil()),
            created_at: at,
            received_at: at,
            action: IntentAction::Signal(SignalIntent {
                signal_id: SignalId(Uuid::nil()),
                recorder_id: RecorderId(Uuid::nil()),
                trader_id: TraderId(Uuid::nil()),
                action,
                symbol: "MNQ1!".into(),
                price: None,
                alert_time: None,
                delay_secs: 0,
                max_lag_secs,
                take_profit: None,
                stop_loss: None,
                exit_fraction: None,
                entry_order: None,
                risk: jt_domain::AlertRisk::default(),
                settings: jt_domain::Settings::default(),
            }),
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
