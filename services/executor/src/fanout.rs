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
//! What the fan-out decides: who receives the signal (enabled traders), each trader's view of
//! it (`inverse_strategy`, `custom_ticker`, resolved settings), `simulation_mode` (recorded,
//! never sent), and the control alerts (kill switch, resume, flatten). What it leaves to the
//! execution, which sees the broker's real position: entry vs add vs flip, filters, sizing.

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::StreamExt;
use jt_alerts::{AgeFrom, Freshness, check_freshness};
use jt_bus::{Bus, Envelope, Incoming, MessageId, Outcome, PublishError};
use jt_domain::paper::{self, PaperContext};
use jt_domain::{Price, SignalAction, instrument};
use jt_messages::{IntentMessage, SignalMessage};
use jt_store::repo::intents::NewIntent;
use jt_store::repo::paper::{PaperEntry, PaperPosition as StoredPaperPosition, PaperTrade};
use jt_store::repo::signals::NewSignal;
use jt_store::repo::traders::ExecutionTarget;
use jt_store::{
    IntentKind, IntentSource, PaperPositionId, PaperStatus, PaperTradeId, RecorderId, SignalId,
    SignalOutcome, Store, StoreError, SubAccountId, TraderId, UserId,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tracing::{Instrument, info, warn};
use uuid::Uuid;

use crate::metrics as m;

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
            signal = %envelope.payload.signal_id,
            recorder = %envelope.payload.recorder_id,
            action = envelope.payload.signal.action.as_str(),
        );
        jt_runtime::telemetry::extract_context(&span, &envelope.trace.to_pairs());
        // `instrument`, not `enter`: a guard held across `.await` would leave the span entered
        // on whichever thread polls next, mislabelling other tasks' logs.
        let result = self.fan_out(&envelope).instrument(span.clone()).await;
        let _entered = span.enter();
        m::fanout_done(result.is_ok(), started.elapsed());
        match result {
            Ok(intents) => {
                info!(intents, "signal fanned out");
                Outcome::Ack
            }
            Err(FanoutError::Retry(reason)) => {
                warn!(%reason, attempt = message.attempt, "fan-out will be retried");
                Outcome::retry(reason)
            }
        }
    }

    async fn fan_out(&self, envelope: &Envelope<SignalMessage>) -> Result<usize, FanoutError> {
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
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };

        match signal.action {
            SignalAction::Kill => {
                self.record(msg, SignalOutcome::Accepted, None).await?;
                self.store
                    .risk()
                    .set_user_kill(owner, true, Some("kill alert"))
                    .await?;
                return self.flatten_accounts(envelope, None).await;
            }
            SignalAction::Resume => {
                self.record(msg, SignalOutcome::Accepted, Some("kill switch lifted"))
                    .await?;
                self.store
                    .risk()
                    .set_user_kill(owner, false, Some("resume alert"))
                    .await?;
                return Ok(0);
            }
            _ => {}
        }

        // The signal's row is written once, with its outcome: the traders are read first.
        let targets = self.store.traders().execution_targets_of(&recorder).await?;
        if targets.is_empty() {
            self.record(
                msg,
                SignalOutcome::Filtered,
                Some("no enabled trader is linked to this recorder"),
            )
            .await?;
        } else {
            self.record(msg, SignalOutcome::Accepted, None).await?;
        }

        // The paper record is not on the way to the broker: it is written beside the intents'
        // publishes (after the signal's row, which its trades refer to). The message is
        // acknowledged only when both are done.
        let paper = async {
            if recorder.settings.recording_enabled {
                self.paper(msg, &recorder.settings, recorder.commission_per_contract)
                    .await
            } else {
                Ok(())
            }
        };
        let (paper, intents) = tokio::join!(paper, self.intents(envelope, &targets));
        paper?;
        intents
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
            return self.flatten_accounts(envelope, Some(subs)).await;
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

    /// Records the signal's row, with its outcome (once: a redelivery keeps the first).
    async fn record(
        &self,
        msg: &SignalMessage,
        outcome: SignalOutcome,
        reason: Option<&str>,
    ) -> Result<(), FanoutError> {
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
        };
        self.store.signals().record(row).await?;
        Ok(())
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
        let intent = IntentMessage {
            intent_id: IntentMessage::id_for(msg.signal_id, target.trader.id.0),
            signal_id: msg.signal_id,
            owner_id: msg.owner_id,
            recorder_id: msg.recorder_id,
            trader_id: Some(target.trader.id.0),
            sub_account_id: target.sub_account.id.0,
            broker_account_id: target.account.id.0,
            action,
            symbol: Some(symbol.clone()),
            price: msg.signal.price,
            alert_time: msg.signal.time,
            received_at: msg.received_at,
            delay_secs: msg.signal.delay_secs,
            max_lag_secs: msg.signal.max_lag_secs,
            take_profit: msg.signal.take_profit,
            stop_loss: msg.signal.stop_loss,
            settings: settings.clone(),
            exit_fraction: msg.signal.exit_fraction,
            entry_order: msg.signal.entry_order,
            risk: msg.signal.risk,
        };

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
            self.record_skip(&intent, target, &reason).await?;
            m::intent_skipped_at_fanout();
            return Ok(false);
        }
        let envelope_out = Envelope::new(
            MessageId::new(intent.intent_id.simple().to_string())
                .map_err(|e| FanoutError::Retry(format!("message id: {e}")))?,
            intent,
        )
        .caused_by(envelope);
        self.bus.publish(&envelope_out).await?;
        Ok(true)
    }

    async fn record_skip(
        &self,
        intent: &IntentMessage,
        target: &ExecutionTarget,
        reason: &str,
    ) -> Result<(), FanoutError> {
        self.store
            .intents()
            .create(NewIntent {
                id: jt_store::IntentId(intent.intent_id),
                owner: UserId(intent.owner_id),
                sub_account: target.sub_account.id,
                trader: Some(TraderId(target.trader.id.0)),
                signal: Some(SignalId(intent.signal_id)),
                source: IntentSource::Signal,
                idempotency_key: intent.idempotency_key(),
                kind: kind_of(intent.action),
                symbol: intent.symbol.clone().unwrap_or_default(),
                contract: None,
                side: None,
                quantity: 0,
                settings: intent.settings.clone(),
                plan: serde_json::Value::Null,
                skip_reason: Some(reason.to_string()),
            })
            .await?;
        Ok(())
    }

    /// Kill switch or flatten alert: one flatten intent per sub-account (every sub-account of
    /// the owner for a kill; the recorder's traders' sub-accounts for a flatten).
    async fn flatten_accounts(
        &self,
        envelope: &Envelope<SignalMessage>,
        only: Option<Vec<SubAccountId>>,
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
                if only.as_ref().is_none_or(|o| o.contains(&sub.id)) {
                    subs.push((account.id, sub.id));
                }
            }
        }
        for (account, sub) in &subs {
            let intent = IntentMessage {
                intent_id: IntentMessage::control_id_for(msg.signal_id, sub.0),
                signal_id: msg.signal_id,
                owner_id: msg.owner_id,
                recorder_id: msg.recorder_id,
                trader_id: None,
                sub_account_id: sub.0,
                broker_account_id: account.0,
                action: SignalAction::Flatten,
                symbol: None,
                price: None,
                alert_time: None,
                received_at: msg.received_at,
                delay_secs: 0,
                max_lag_secs: None,
                take_profit: None,
                stop_loss: None,
                settings: jt_domain::Settings::default(),
                exit_fraction: None,
                entry_order: None,
                risk: jt_alerts::AlertRisk::default(),
            };
            let out = Envelope::new(
                MessageId::new(intent.intent_id.simple().to_string())
                    .map_err(|e| FanoutError::Retry(format!("message id: {e}")))?,
                intent,
            )
            .caused_by(envelope);
            self.bus.publish(&out).await?;
        }
        Ok(subs.len())
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
        // One read: the symbol's latest position is the open one (if any) and carries the last
        // signal applied to this symbol, so a redelivered signal finds itself there.
        let latest = paper
            .latest_position(owner, recorder, instrument.root)
            .await?;
        if latest
            .as_ref()
            .is_some_and(|l| l.last_signal == Some(signal_id))
        {
            return Ok(());
        }
        let latest_opened = latest.as_ref().map(|l| l.opened_at);
        let stored = latest.filter(|l| l.status == PaperStatus::Open);
        let mut position = match &stored {
            Some(p) => match p
                .engine_state
                .clone()
                .map(serde_json::from_value::<paper::PaperPosition>)
            {
                Some(Ok(state)) => Some(state),
                _ => {
                    warn!("paper position has no readable engine state; starting afresh");
                    None
                }
            },
            None => None,
        };
        let ctx = PaperContext {
            instrument,
            settings,
            commission_per_contract: commission,
        };
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
        let price = Price::on_tick(instrument, raw_price);
        let at = paper_time(msg.received_at, latest_opened);
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

        // Trades first (ids derived from the signal: a retry rewrites the same rows), the
        // positions last, in one write: their `last_signal` marks the signal as applied.
        for (i, trade) in closed.iter().enumerate() {
            let id = PaperTradeId(jt_messages::derived_id(
                "paper-trade",
                &[&msg.signal_id.to_string(), &i.to_string()],
            ));
            paper
                .save_trade(
                    owner,
                    &closed_trade_row(id, owner, recorder, stored.as_ref(), trade),
                )
                .await?;
        }
        let old_id = stored.as_ref().map(|p| p.id);
        // Compared at the store's precision: rows written before the engine worked in whole
        // microseconds carry nanoseconds in their engine state only.
        let continues = position
            .as_ref()
            .zip(stored.as_ref())
            .is_some_and(|(p, s)| {
                p.direction == s.direction
                    && p.opened_at.trunc_subsecs(6) == s.opened_at.trunc_subsecs(6)
            });
        let mut rows = Vec::with_capacity(2);
        if let Some(old) = &stored
            && !continues
        {
            let mut closed_row = old.clone();
            closed_row.status = PaperStatus::Closed;
            closed_row.quantity = 0;
            closed_row.exit_price = Some(price.value());
            closed_row.closed_at = Some(at);
            closed_row.realized_pnl =
                old.realized_pnl + closed.iter().map(|t| t.net_pnl).sum::<Decimal>();
            closed_row.last_signal = Some(signal_id);
            rows.push(closed_row);
        }
        if let Some(p) = &position {
            let id = if continues {
                old_id.unwrap_or_else(|| PaperPositionId(paper_position_id(msg.signal_id)))
            } else {
                PaperPositionId(paper_position_id(msg.signal_id))
            };
            let row = open_row(
                id,
                owner,
                recorder,
                p,
                stored.as_ref().filter(|_| continues),
                signal_id,
            )?;
            rows.push(row);
        }
        paper
            .save_positions(owner, &rows.iter().collect::<Vec<_>>())
            .await?;
        Ok(())
    }
}

fn position_name(p: jt_alerts::MarketPosition) -> String {
    match p {
        jt_alerts::MarketPosition::Long => "long",
        jt_alerts::MarketPosition::Short => "short",
        jt_alerts::MarketPosition::Flat => "flat",
    }
    .to_string()
}

/// The time the paper engine applies a signal at. The store keeps times to the microsecond,
/// so the engine works at that precision too: the position read back next time is the one
/// computed now (`continues` compares the stored `opened_at` with the engine's). And a new
/// position must open after the symbol's latest one (`opened_at` orders them, which is how the
/// next signal finds it): ingest replicas' clocks may disagree by a little.
fn paper_time(received_at: DateTime<Utc>, latest_opened: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let at = received_at.trunc_subsecs(6);
    match latest_opened {
        Some(latest) if at <= latest => latest.trunc_subsecs(6) + chrono::Duration::microseconds(1),
        _ => at,
    }
}

fn paper_position_id(signal: Uuid) -> Uuid {
    jt_messages::derived_id("paper-position", &[&signal.to_string()])
}

fn open_row(
    id: PaperPositionId,
    owner: UserId,
    recorder: RecorderId,
    p: &paper::PaperPosition,
    previous: Option<&StoredPaperPosition>,
    signal: SignalId,
) -> Result<StoredPaperPosition, FanoutError> {
    Ok(StoredPaperPosition {
        id,
        owner,
        recorder,
        symbol: p.root.clone(),
        direction: p.direction,
        quantity: p.qty(),
        average_entry: p.average_entry(),
        entries: p
            .lots
            .iter()
            .map(|l| PaperEntry {
                price: l.entry_price.value(),
                qty: l.qty,
                time: l.opened_at,
            })
            .collect(),
        current_price: previous.and_then(|s| s.current_price),
        unrealized_pnl: p.unrealized.current,
        worst_unrealized_pnl: p.unrealized.worst,
        best_unrealized_pnl: p.unrealized.best,
        realized_pnl: previous.map_or(Decimal::ZERO, |s| s.realized_pnl),
        exit_price: None,
        status: PaperStatus::Open,
        opened_at: p.opened_at,
        closed_at: None,
        last_signal: Some(signal),
        engine_state: Some(
            serde_json::to_value(p).map_err(|e| FanoutError::Retry(format!("paper state: {e}")))?,
        ),
    })
}

fn closed_trade_row(
    id: PaperTradeId,
    owner: UserId,
    recorder: RecorderId,
    position: Option<&StoredPaperPosition>,
    t: &paper::ClosedTrade,
) -> PaperTrade {
    PaperTrade {
        id,
        owner,
        recorder,
        position: position.map(|p| p.id),
        signal: None,
        symbol: t.root.clone(),
        direction: t.direction,
        quantity: t.qty,
        entry_price: t.entry_price.value(),
        entry_time: t.opened_at,
        exit_price: Some(t.exit_price.value()),
        exit_time: Some(t.closed_at),
        exit_reason: Some(stored_exit_reason(t.exit_reason)),
        tp_price: None,
        sl_price: None,
        max_favorable_excursion: t.mfe_points,
        max_adverse_excursion: t.mae_points,
        realized_pnl: Some(t.net_pnl),
        realized_ticks: Some(t.ticks),
        commission: t.commission,
        status: PaperStatus::Closed,
    }
}

fn stored_exit_reason(r: paper::ExitReason) -> jt_store::ExitReason {
    use jt_store::ExitReason as S;
    match r {
        paper::ExitReason::TakeProfit => S::TakeProfit,
        paper::ExitReason::StopLoss => S::StopLoss,
        paper::ExitReason::Signal => S::Signal,
        paper::ExitReason::Flip => S::Flip,
    }
}

/// The intent kind recorded for an action before the broker's position is known (the
/// execution records the real one with its decision).
pub(crate) fn kind_of(action: SignalAction) -> IntentKind {
    match action {
        SignalAction::Long | SignalAction::Short => IntentKind::Entry,
        SignalAction::Close | SignalAction::CloseLong | SignalAction::CloseShort => {
            IntentKind::Close
        }
        SignalAction::ReduceLong | SignalAction::ReduceShort => IntentKind::Reduce,
        SignalAction::Cancel => IntentKind::Cancel,
        SignalAction::Flatten | SignalAction::Kill => IntentKind::Flatten,
        SignalAction::Resume => IntentKind::Cancel,
    }
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

/// Whether staleness applies to `action`: to entries only. An exit (close, flatten, a kill's
/// flatten, cancel) is never given up for being late: leaving a position the strategy has left
/// late is better than staying in it (docs/pipeline.md).
pub(crate) fn ages(action: SignalAction) -> bool {
    action.entry_direction().is_some()
}

/// The staleness of this intent at `now`, `None` when fresh (or an exit). The age runs from
/// the alert's `time`, or from its receipt at the webhook when it has none.
pub(crate) fn stale_at(intent: &IntentMessage, now: DateTime<Utc>) -> Option<Stale> {
    if !ages(intent.action) {
        return None;
    }
    match check_freshness(
        intent.alert_time,
        intent.received_at,
        intent.delay_secs,
        intent.max_lag_secs,
        intent.settings.stale_after_secs,
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

    fn t(micros: i64, nanos_extra: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(1_795_000_000_000_000 + micros)
            .unwrap()
            + chrono::Duration::nanoseconds(nanos_extra)
    }

    fn intent(action: SignalAction, alert_time: Option<DateTime<Utc>>) -> IntentMessage {
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
            alert_time,
            received_at: t(0, 0),
            delay_secs: 0,
            max_lag_secs: None,
            take_profit: None,
            stop_loss: None,
            settings: jt_domain::Settings::default(),
            exit_fraction: None,
            entry_order: None,
            risk: jt_alerts::AlertRisk::default(),
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

    #[test]
    fn paper_times_are_whole_microseconds_and_after_the_latest_position() {
        // Nanoseconds dropped: what the store keeps.
        assert_eq!(paper_time(t(10, 688), None), t(10, 0));
        assert_eq!(paper_time(t(10, 688), Some(t(5, 0))), t(10, 0));
        // A replica whose clock is behind: just after the latest position, never before it.
        assert_eq!(paper_time(t(10, 0), Some(t(10, 0))), t(11, 0));
        assert_eq!(paper_time(t(3, 999), Some(t(10, 0))), t(11, 0));
    }
}
