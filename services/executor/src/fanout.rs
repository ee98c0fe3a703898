//! The fan-out: one accepted signal (SIGNALS) → the recorder's paper record and one order
//! intent per enabled trader (ORDERS), DOMAIN.md §5.1 and §6.
//!
//! Runs serially per recorder across every replica (the bus's serial consumer), so one
//! recorder's signals are handled in order and its intents reach ORDERS in signal order. Every
//! write is idempotent, so a redelivered signal changes nothing: the signal row is keyed by the
//! signal id, the paper position remembers the last signal applied, intents are published with
//! ids derived from signal and trader (JetStream drops the repeat; the store's idempotency key
//! absorbs the rest). The message is acknowledged only after all of that is durable.
//!
//! Being serial per recorder is also what lets the signal's row catch a copy: the ingest
//! publishes an alert once, with a message id per second of its receipt, so the same body
//! received again less than 1 s later but in the next second arrives here as a second
//! signal. Its row is written by one conditional insert that records it as `duplicate` instead
//! (`Signals::record`), and nothing else is done for it.
//!
//! What the fan-out decides: who receives the signal (enabled traders), each trader's view of
//! it (`inverse_strategy`, `custom_ticker`, resolved settings), `simulation_mode` (recorded,
//! never sent), and the control alerts (flatten; kill and resume are recorded on the kill
//! switch, which the risk service carries out). What it leaves to the
//! execution, which sees the broker's real position: entry vs add vs flip, filters, sizing.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use jt_bus::{Bus, Envelope, Incoming, MessageId, Outcome, PublishError};
use jt_domain::freshness::{AgeFrom, Freshness, check_freshness};
use jt_domain::paper::{self, PaperContext};
use jt_domain::{Price, SignalAction, instrument};
use jt_messages::{ControlCause, ControlIntent, IntentMessage, SignalIntent, SignalMessage};
use jt_store::repo::paper::PaperApplied;
use jt_store::repo::risk::KillEngagement;
use jt_store::repo::signals::NewSignal;
use jt_store::repo::traders::ExecutionTarget;
use jt_store::{RecorderId, SignalId, SignalOutcome, Store, StoreError, SubAccountId, UserId};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tracing::{Instrument, info, warn};

use crate::metrics as m;
use crate::record::new_intent;

/// The fan-out span's trace context, for the intents it publishes: each execution becomes the
/// fan-out's child (`caused_by` alone would hang it on the ingest's span, beside the fan-out).
fn current_trace() -> jt_bus::TraceContext {
    jt_bus::TraceContext::from_pairs(&jt_runtime::telemetry::inject_context())
}

/// Intents one fan-out publishes (or records as skipped) at once.
const PUBLISHES_AT_ONCE: usize = 64;

/// Why a fan-out did not finish.
#[derive(Debug, thiserror::Error)]
enum FanoutError {
    /// Try again later (database or bus unavailable).
    #[error("{0}")]
    Retry(String),
}

impl From<StoreError> for FanoutError {
    fn from(e: StoreError) -> Self {
        FanoutError::Retry(format!("store: {e}"))
    }
}

impl From<PublishError> for FanoutError {
    fn from(e: PublishError) -> Self {
        FanoutError::Retry(format!("bus: {e}"))
    }
}

/// What fanning a signal out came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FannedOut {
    /// Its row recorded, its intents queued (how many).
    Intents(usize),
    /// Recorded as a copy of a signal received less than 1 s apart; nothing else done.
    Duplicate,
}

/// The signal's row, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// With the outcome the fan-out decided: go on.
    Kept,
    /// As a duplicate: stop.
    Duplicate,
}

/// How many times a signal is applied to a paper record that price marks keep moving before
/// the fan-out is retried as a whole (marks come at most about once a second per instrument).
const PAPER_ATTEMPTS: usize = 5;

/// The fan-out handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Fanout {
    store: Store,
    bus: Bus,
}

impl Fanout {
    /// A fan-out over `store` and `bus`.
    #[must_use]
    pub fn new(store: Store, bus: Bus) -> Self {
        Self { store, bus }
    }

    /// Handles one message of the `fanout` consumer.
    pub async fn handle(&self, message: Incoming<SignalMessage>) -> Outcome {
        let started = std::time::Instant::now();
        let envelope = message.envelope;
        let span = tracing::info_span!(
            "fanout",
            otel.kind = "consumer",
            signal = %envelope.payload.signal_id,
            recorder = %envelope.payload.recorder_id,
            action = envelope.payload.signal.action.as_str(),
        );
        jt_runtime::telemetry::extract_context(&span, &envelope.trace.to_pairs());
        // `instrument`, not `enter`: a guard held across `.await` would leave the span entered
        // on whichever thread polls next, mislabelling other tasks' logs.
        let result = self.fan_out(&envelope).instrument(span.clone()).await;
        let _entered = span.enter();
        m::fanout_done(
            match &result {
                Ok(FannedOut::Intents(_)) => "ok",
                Ok(FannedOut::Duplicate) => "duplicate",
                Err(_) => "retry",
            },
            started.elapsed(),
        );
        match result {
            Ok(FannedOut::Intents(intents)) => {
                info!(intents, "signal fanned out");
                Outcome::Ack
            }
            Ok(FannedOut::Duplicate) => {
                info!(
                    "the same alert body arrived less than 1 s apart: recorded as a duplicate, nothing fanned out"
                );
                Outcome::Ack
            }
            Err(FanoutError::Retry(reason)) => {
                warn!(%reason, attempt = message.attempt, "fan-out will be retried");
                Outcome::retry(reason)
            }
        }
    }

    async fn fan_out(&self, envelope: &Envelope<SignalMessage>) -> Result<FannedOut, FanoutError> {
        let msg = &envelope.payload;
        let owner = UserId(msg.owner_id);
        let recorder_id = RecorderId(msg.recorder_id);
        let signal = &msg.signal;

        let recorder = match self.store.recorders().get(owner, recorder_id).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => {
                // Deleted since the webhook arrived: nothing left to act for (and no recorder
                // for the signal's row to belong to).
                warn!("recorder no longer exists; signal dropped");
                return Ok(FannedOut::Intents(0));
            }
            Err(e) => return Err(e.into()),
        };

        match signal.action {
            SignalAction::Kill => {
                if self.record(msg, SignalOutcome::Accepted, None).await? == Recorded::Duplicate {
                    return Ok(FannedOut::Duplicate);
                }
                // Recorded, not carried out here: the risk service cancels and flattens the
                // owner's accounts (`docs/risk.md`, "Kill switches"). The engagement is the
                // signal: redelivered, it is the same one and is carried out once; its
                // flattens keep the ids a kill alert's flattens always had.
                let cause = ControlCause::Signal {
                    signal_id: SignalId(msg.signal_id),
                    recorder_id: RecorderId(msg.recorder_id),
                    command: SignalAction::Kill,
                };
                let engagement = KillEngagement {
                    id: msg.signal_id,
                    cause: serde_json::to_value(&cause)
                        .map_err(|e| FanoutError::Retry(format!("kill cause: {e}")))?,
                };
                self.store
                    .risk()
                    .engage_user_kill(owner, Some("kill alert"), &engagement)
                    .await?;
                return Ok(FannedOut::Intents(0));
            }
            SignalAction::Resume => {
                if self
                    .record(msg, SignalOutcome::Accepted, Some("kill switch lifted"))
                    .await?
                    == Recorded::Duplicate
                {
                    return Ok(FannedOut::Duplicate);
                }
                self.store
                    .risk()
                    .set_user_kill(owner, false, Some("resume alert"))
                    .await?;
                return Ok(FannedOut::Intents(0));
            }
            _ => {}
        }

        // A paper record past its max daily loss today takes no paper entry (the risk service
        // closed it at the mark: docs/risk.md, "Paper accounts"); exits still apply. The
        // reason goes on the signal's row.
        let paper_refused = self.paper_refusal(&recorder, signal.action).await?;

        // The signal's row is written once, with its outcome: the traders are read first.
        let targets = self.store.traders().execution_targets_of(&recorder).await?;
        let recorded = if targets.is_empty() {
            let reason = match &paper_refused {
                Some(r) => format!("no enabled trader is linked to this recorder; {r}"),
                None => "no enabled trader is linked to this recorder".to_owned(),
            };
            self.record(msg, SignalOutcome::Filtered, Some(&reason))
                .await?
        } else {
            self.record(msg, SignalOutcome::Accepted, paper_refused.as_deref())
                .await?
        };
        // A copy of a signal received less than 1 s apart (across a second boundary, which the
        // ingest's message id cannot catch): its row says so, and nothing else happens —
        // no paper record, no intent.
        if recorded == Recorded::Duplicate {
            return Ok(FannedOut::Duplicate);
        }

        // The paper record is not on the way to the broker: it is written beside the intents'
        // publishes (after the signal's row, which its trades refer to). The message is
        // acknowledged only when both are done.
        let paper = async {
            if paper_refused.is_some() {
                m::paper_skipped("max_daily_loss");
                Ok(())
            } else if recorder.settings.recording_enabled {
                self.paper(msg, &recorder.settings, recorder.commission_per_contract)
                    .await
            } else {
                Ok(())
            }
        };
        let (paper, intents) = tokio::join!(paper, self.intents(envelope, &targets));
        paper?;
        intents.map(FannedOut::Intents)
    }

    /// Queues one intent per target (a flatten alert: one flatten per target's sub-account);
    /// the number queued.
    async fn intents(
        &self,
        envelope: &Envelope<SignalMessage>,
        targets: &[ExecutionTarget],
    ) -> Result<usize, FanoutError> {
        if targets.is_empty() {
            return Ok(0);
        }
        if envelope.payload.signal.action == SignalAction::Flatten {
            let subs: Vec<SubAccountId> = targets.iter().map(|t| t.sub_account.id).collect();
            return self.flatten_accounts(envelope, subs).await;
        }

        // Every trader's intent goes to its own account's subject, so their publishes need no
        // order among themselves (per-account order comes from signals being fanned out one
        // at a time per recorder). One after another, 500 acknowledged publishes alone took
        // longer than the whole alert-to-order target; a bounded number run at once.
        let each: Vec<_> = targets
            .iter()
            .map(|target| self.one_trader(envelope, target))
            .collect();
        let mut outcomes = futures_util::stream::iter(each).buffer_unordered(PUBLISHES_AT_ONCE);
        let mut published = 0;
        let mut first_error = None;
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(true) => published += 1,
                Ok(false) => {}
                // Let the others finish (their work is idempotent), then retry the signal.
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Records the signal's row, with its outcome (once: a redelivery keeps the first), in
    /// one statement that makes it a duplicate instead when the recorder has a signal with
    /// the same body received less than 1 s apart (`Signals::record`).
    async fn record(
        &self,
        msg: &SignalMessage,
        outcome: SignalOutcome,
        reason: Option<&str>,
    ) -> Result<Recorded, FanoutError> {
        let signal = &msg.signal;
        let row = NewSignal {
            id: SignalId(msg.signal_id),
            owner: UserId(msg.owner_id),
            recorder: RecorderId(msg.recorder_id),
            received_at: msg.received_at,
            alert_time: signal.time,
            action: signal.action,
            ticker: signal.ticker.clone(),
            quantity: signal.quantity,
            price: signal.price,
            market_position: signal.position.map(position_name),
            prev_market_position: signal.prev_position.map(position_name),
            payload: serde_json::to_value(signal)
                .map_err(|e| FanoutError::Retry(format!("signal payload: {e}")))?,
            outcome,
            outcome_reason: reason.map(str::to_owned),
            age_ms: Some((Utc::now() - msg.received_at).num_milliseconds()),
            body_digest: msg.body_digest.clone(),
        };
        let stored = self.store.signals().record(row).await?;
        // The caller's outcome is never `duplicate`: a stored one is the check's, now or at
        // the first delivery of this message (a redelivered duplicate stays one).
        Ok(if stored == SignalOutcome::Duplicate {
            Recorded::Duplicate
        } else {
            Recorded::Kept
        })
    }

    /// Queues (or records as skipped) one trader's intent; `true` when queued.
    async fn one_trader(
        &self,
        envelope: &Envelope<SignalMessage>,
        target: &ExecutionTarget,
    ) -> Result<bool, FanoutError> {
        let msg = &envelope.payload;
        let settings = &target.settings;
        let action = if settings.inverse_strategy {
            msg.signal.action.inverted()
        } else {
            msg.signal.action
        };
        let symbol = settings
            .custom_ticker
            .clone()
            .or_else(|| msg.signal.symbol.clone())
            .unwrap_or_default();
        let intent = IntentMessage::signal(
            UserId(msg.owner_id),
            target.sub_account.id,
            target.account.id,
            msg.received_at,
            SignalIntent {
                signal_id: SignalId(msg.signal_id),
                recorder_id: RecorderId(msg.recorder_id),
                trader_id: target.trader.id,
                action,
                symbol: symbol.clone(),
                price: msg.signal.price,
                alert_time: msg.signal.time,
                delay_secs: msg.signal.delay_secs,
                max_lag_secs: msg.signal.max_lag_secs,
                take_profit: msg.signal.take_profit,
                stop_loss: msg.signal.stop_loss,
                exit_fraction: msg.signal.exit_fraction,
                entry_order: msg.signal.entry_order,
                risk: msg.signal.risk,
                settings: settings.clone(),
            },
        );

        // Reasons to record the intent without queuing it.
        let skip = if settings.simulation_mode {
            Some("simulation mode: paper only, never sent to a broker".to_string())
        } else if instrument::resolve_ticker(&symbol).is_err() {
            Some(format!(
                "unknown instrument {symbol:?} (custom_ticker or alert ticker)"
            ))
        } else {
            stale_at(&intent, Utc::now()).map(|stale| {
                m::gave_up("stale");
                stale.reason("at fan-out")
            })
        };
        if let Some(reason) = skip {
            self.store
                .intents()
                .create(new_intent(&intent, Some(reason)))
                .await?;
            m::intent_skipped_at_fanout();
            return Ok(false);
        }
        let envelope_out = Envelope::new(
            MessageId::new(intent.message_id())
                .map_err(|e| FanoutError::Retry(format!("message id: {e}")))?,
            intent,
        )
        .with_trace(current_trace())
        .caused_by(envelope);
        self.bus.publish(&envelope_out).await?;
        Ok(true)
    }

    /// Flatten alert: one flatten intent per sub-account of the recorder's traders.
    async fn flatten_accounts(
        &self,
        envelope: &Envelope<SignalMessage>,
        only: Vec<SubAccountId>,
    ) -> Result<usize, FanoutError> {
        let msg = &envelope.payload;
        let owner = UserId(msg.owner_id);
        let mut subs = Vec::new();
        for account in self.store.accounts().list(owner).await? {
            for sub in self
                .store
                .accounts()
                .sub_accounts(owner, account.id)
                .await?
            {
                if only.contains(&sub.id) {
                    subs.push((account.id, sub.id));
                }
            }
        }
        for (account, sub) in &subs {
            let intent = IntentMessage::control(
                owner,
                *sub,
                *account,
                msg.received_at,
                ControlIntent::flatten_account(ControlCause::Signal {
                    signal_id: SignalId(msg.signal_id),
                    recorder_id: RecorderId(msg.recorder_id),
                    command: msg.signal.action,
                }),
            );
            let out = Envelope::new(
                MessageId::new(intent.message_id())
                    .map_err(|e| FanoutError::Retry(format!("message id: {e}")))?,
                intent,
            )
            .with_trace(current_trace())
            .caused_by(envelope);
            self.bus.publish(&out).await?;
        }
        Ok(subs.len())
    }

    /// Why the recorder's paper record refuses this signal, if it does: an entry (long or
    /// short) on a trading day its paper record breached its max daily loss.
    async fn paper_refusal(
        &self,
        recorder: &jt_store::repo::recorders::Recorder,
        action: SignalAction,
    ) -> Result<Option<String>, FanoutError> {
        if !recorder.settings.recording_enabled
            || recorder.settings.max_daily_loss <= Decimal::ZERO
            || !matches!(action, SignalAction::Long | SignalAction::Short)
        {
            return Ok(None);
        }
        let day = jt_domain::session::trading_day(Utc::now());
        let breach = self
            .store
            .risk()
            .paper_breach(recorder.owner, recorder.id, day)
            .await?;
        Ok(breach.map(|b| {
            format!(
                "paper record: max daily loss of {} reached on {} ({}): no paper entries until the next trading day",
                b.loss_limit.normalize(),
                b.trading_day,
                b.details.unwrap_or_default(),
            )
        }))
    }

    /// Applies the signal to the recorder's paper record (DOMAIN.md §6), once.
    async fn paper(
        &self,
        msg: &SignalMessage,
        settings: &jt_domain::Settings,
        commission: Decimal,
    ) -> Result<(), FanoutError> {
        let owner = UserId(msg.owner_id);
        let recorder = RecorderId(msg.recorder_id);
        let signal_id = SignalId(msg.signal_id);
        let Some(instrument) = msg.signal.instrument else {
            return Ok(());
        };
        let Some(raw_price) = msg.signal.price else {
            // No price on the alert and no market feed here: the paper record cannot fill it.
            m::paper_skipped("no_price");
            return Ok(());
        };
        let paper = self.store.paper();
        let ctx = PaperContext {
            instrument,
            settings,
            commission_per_contract: commission,
        };
        let price = Price::on_tick(instrument, raw_price);
        // The positions service marks open paper positions with prices meanwhile; a write that
        // finds the record moved since it was read is refused, and the signal is applied again
        // to what the record has become (a stop hit in the same instant included).
        for _ in 0..PAPER_ATTEMPTS {
            // One read: the symbol's latest position is the open one (if any) and carries the
            // last signal applied to this symbol, so a redelivered signal finds itself there.
            let start = paper.start(owner, recorder, instrument.root).await?;
            if start.applied(signal_id) {
                return Ok(());
            }
            let mut position = start.engine();
            // The alert's whole-contract quantity, else the recorder's entry size; for a partial
            // exit, the same fraction of the paper position as the strategy sold.
            let qty = match (msg.signal.action.reduced_direction(), &position) {
                (Some(_), Some(p)) => jt_domain::quantity::reduce_by_fraction(
                    p.qty(),
                    msg.signal.exit_fraction.unwrap_or(Decimal::ONE),
                ),
                _ => msg
                    .signal
                    .quantity
                    .filter(|q| q.fract().is_zero())
                    .and_then(|q| q.to_u32())
                    .filter(|q| *q > 0)
                    .unwrap_or(settings.initial_position_size),
            };
            let at = start.time_for(msg.received_at);
            let closed =
                match paper::apply_signal(&mut position, &ctx, msg.signal.action, qty, price, at) {
                    Ok(c) => c,
                    Err(e) => {
                        // A paper-record problem never blocks live trading; it is counted and logged.
                        m::paper_skipped("engine_refused");
                        warn!(error = %e, "paper record refused the signal");
                        return Ok(());
                    }
                };
            let written = paper
                .apply(PaperApplied {
                    owner,
                    recorder,
                    signal: signal_id,
                    start: &start,
                    position: position.as_ref(),
                    closed: &closed,
                    price,
                    at,
                })
                .await?;
            if written {
                return Ok(());
            }
            tracing::debug!(%recorder, %signal_id, "the paper record moved under a price mark: the signal is applied again");
        }
        // Not given up on: the signal is handled again later (a redelivery), as for a store
        // outage.
        Err(FanoutError::Retry(format!(
            "the paper record of recorder {recorder} moved {PAPER_ATTEMPTS} times while the signal was applied"
        )))
    }
}

fn position_name(p: jt_domain::MarketPosition) -> String {
    p.as_str().to_string()
}

/// Why an intent is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stale {
    /// How old the alert is, in whole seconds.
    pub age_secs: i64,
    /// Its limit (with its `delay`), in seconds.
    pub limit_secs: i64,
    /// What the age is measured from.
    pub from: AgeFrom,
}

impl Stale {
    /// What the age is measured from, in words.
    pub(crate) fn since(&self) -> &'static str {
        match self.from {
            AgeFrom::AlertTime => "its time",
            AgeFrom::Receipt => "its receipt at the webhook",
        }
    }

    /// The reason recorded on the intent.
    pub(crate) fn reason(&self, when: &str) -> String {
        format!(
            "stale: the alert was {} s old (since {}) {when}, over its limit of {} s",
            self.age_secs,
            self.since(),
            self.limit_secs
        )
    }
}

/// The staleness of this intent at `now`, `None` when fresh (or never stale: exits,
/// controls, repairs). Only what may add exposure ages (`IntentMessage::staleness`): leaving
/// a position the strategy has left late is better than staying in it (docs/pipeline.md). A
/// signal's age runs from the alert's `time`, or from its receipt at the webhook when it has
/// none; other sources' from their receipt.
pub(crate) fn stale_at(intent: &IntentMessage, now: DateTime<Utc>) -> Option<Stale> {
    let rule = intent.staleness()?;
    match check_freshness(
        rule.alert_time,
        intent.received_at,
        rule.delay_secs,
        Some(rule.limit_secs),
        rule.limit_secs,
        now,
    ) {
        Freshness::Stale { age, allowed, from } => Some(Stale {
            age_secs: age.num_seconds(),
            limit_secs: allowed.num_seconds(),
            from,
        }),
        Freshness::Fresh { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn t(micros: i64, nanos_extra: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(1_795_000_000_000_000 + micros)
            .unwrap()
            + chrono::Duration::nanoseconds(nanos_extra)
    }

    fn intent(action: SignalAction, alert_time: Option<DateTime<Utc>>) -> IntentMessage {
        use jt_store::{BrokerAccountId, IntentId, TraderId};
        IntentMessage {
            intent_id: IntentId(Uuid::nil()),
            owner_id: UserId(Uuid::nil()),
            sub_account_id: SubAccountId(Uuid::nil()),
            broker_account_id: BrokerAccountId(Uuid::nil()),
            created_at: t(0, 0),
            received_at: t(0, 0),
            action: jt_messages::IntentAction::Signal(SignalIntent {
                signal_id: SignalId(Uuid::nil()),
                recorder_id: RecorderId(Uuid::nil()),
                trader_id: TraderId(Uuid::nil()),
                action,
                symbol: "MNQ1!".into(),
                price: None,
                alert_time,
                delay_secs: 0,
                max_lag_secs: None,
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
    fn an_entry_without_time_is_stale_once_it_waited_longer_than_its_limit() {
        let entry = intent(SignalAction::Long, None);
        assert_eq!(stale_at(&entry, t(30_000_000, 0)), None, "at the limit");
        let stale = stale_at(&entry, t(145_000_000, 0)).expect("stale after 145 s");
        assert_eq!((stale.age_secs, stale.limit_secs), (145, 30));
        assert_eq!(stale.from, AgeFrom::Receipt);
        assert!(stale.reason("x").contains("since its receipt"), "{stale:?}");
        // With a time, the age runs from it.
        let timed = intent(SignalAction::Short, Some(t(-20_000_000, 0)));
        assert_eq!(
            stale_at(&timed, t(11_000_000, 0)).map(|s| s.age_secs),
            Some(31)
        );
    }

    #[test]
    fn exits_are_never_stale() {
        for action in [
            SignalAction::Close,
            SignalAction::CloseLong,
            SignalAction::CloseShort,
            SignalAction::Cancel,
            SignalAction::Flatten,
            SignalAction::Kill,
        ] {
            assert_eq!(
                stale_at(&intent(action, Some(t(-600_000_000, 0))), t(600_000_000, 0)),
                None,
                "{action:?}"
            );
        }
    }
}
