//! The paper record marked by market prices (DOMAIN.md §6): every quote on `jt.quotes.*` (the
//! connection manager's feed) moves the open paper positions of its instrument through the
//! paper engine's own price rule ([`jt_domain::paper::apply_price`], the same arithmetic, tick
//! values and commission as the signals' path): current price, unrealized P&L with its best and
//! worst, each lot's high and low (its MFE/MAE), break-even and trailing moves, and — when the
//! price reaches them — the stop or take-profits filled, closing trades with exit reason
//! `stop_loss` / `take_profit` at the level (the stop at the observed price, never better).
//!
//! Quotes name contracts (`MNQZ6`); paper positions are kept per instrument root (`MNQ`): a
//! quote marks the positions of its contract's root. (During a roll, quotes of both months
//! would mark them; the connection manager subscribes the front month for the paper record.)
//!
//! Every replica marks; the store's write is conditional on the version it read
//! ([`jt_store::repo::paper::Paper::mark`]), so two replicas, or a signal landing at the same
//! time, never apply one price twice: the loser writes nothing and the next quote marks the new
//! state. Quotes waiting when a batch starts are coalesced to the newest per root, and a price
//! equal to the last one marked within [`SAME_PRICE_QUIET`] is skipped: a burst of quotes
//! costs one write per position, not one per quote.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::{FutureExt, StreamExt};
use jt_bus::Bus;
use jt_domain::instrument::{Instrument, resolve_ticker};
use jt_domain::paper::{self as engine, PaperContext, UnrealizedPnl};
use jt_domain::types::Price;
use jt_messages::QuoteMessage;
use jt_messages::quote::subscribe_quotes;
use jt_store::repo::paper::{OpenPaper, PaperMarked};
use jt_store::{RecorderId, Store, StoreError};
use rust_decimal::Decimal;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// A price equal to the last one marked on a root is skipped for this long.
pub const SAME_PRICE_QUIET: Duration = Duration::from_secs(1);

/// Marks the paper record with every quote until `stop`.
pub(crate) async fn run(store: Store, bus: Bus, stop: CancellationToken) {
    let mut last: HashMap<&'static str, (Decimal, Instant)> = HashMap::new();
    loop {
        let mut sub = match subscribe_quotes(&bus).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "paper record: quotes not subscribed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let first = tokio::select! {
                () = stop.cancelled() => return,
                m = sub.next() => m,
            };
            let Some(first) = first else { break };
            // The newest quote per root among those already waiting.
            let mut newest: HashMap<&'static str, (&'static Instrument, QuoteMessage)> =
                HashMap::new();
            let mut take = |payload: &[u8]| {
                let Some(q) = QuoteMessage::decode(payload) else {
                    return;
                };
                // A contract keyed by the broker's id names no instrument: not a paper quote.
                let Ok(instrument) = resolve_ticker(&q.contract) else {
                    return;
                };
                newest.insert(instrument.root, (instrument, q));
            };
            take(&first.payload);
            while let Some(Some(m)) = sub.next().now_or_never() {
                take(&m.payload);
            }
            for (root, (instrument, q)) in newest {
                let Some(raw) = q.mark() else { continue };
                let price = Price::on_tick(instrument, raw);
                if last
                    .get(root)
                    .is_some_and(|(p, at)| *p == price.value() && at.elapsed() < SAME_PRICE_QUIET)
                {
                    continue;
                }
                match mark_root(&store, instrument, price, q.at).await {
                    Ok(()) => {
                        last.insert(root, (price.value(), Instant::now()));
                    }
                    Err(e) => {
                        metrics::paper_mark("failed");
                        tracing::warn!(%root, error = %e, "paper record not marked");
                    }
                }
            }
        }
        tracing::warn!("paper record: the quote subscription ended; subscribing again");
    }
}

/// Marks every open paper position of `instrument` with `price`.
///
/// # Errors
/// The store's.
pub async fn mark_root(
    store: &Store,
    instrument: &'static Instrument,
    price: Price,
    quoted_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if price.value() <= Decimal::ZERO {
        return Ok(());
    }
    let opens = store.paper().open_on(instrument.root).await?;
    let mut recorders = HashMap::new();
    for open in opens {
        let p = &open.position;
        let recorder = match recorders.entry(p.recorder) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(store.recorders().get(p.owner, p.recorder).await?)
            }
        };
        let ctx = PaperContext {
            instrument,
            settings: &recorder.settings,
            commission_per_contract: recorder.commission_per_contract,
        };
        mark_one(store, &open, &ctx, price, quoted_at, p.recorder).await?;
    }
    Ok(())
}

async fn mark_one(
    store: &Store,
    open: &OpenPaper,
    ctx: &PaperContext<'_>,
    price: Price,
    quoted_at: DateTime<Utc>,
    recorder: RecorderId,
) -> Result<(), StoreError> {
    let Some(before) = open.engine() else {
        // Written before the engine state was kept: nothing to continue from.
        metrics::paper_mark("no_state");
        return Ok(());
    };
    // The store keeps microseconds; a trade never closes before its position opened.
    let at = quoted_at.trunc_subsecs(6).max(before.opened_at);
    let mut position = Some(before.clone());
    let closed = match engine::apply_price(&mut position, ctx, price, at) {
        Ok(c) => c,
        Err(e) => {
            metrics::paper_mark("refused");
            tracing::warn!(%recorder, error = %e, "paper engine refused the price");
            return Ok(());
        }
    };
    if closed.is_empty()
        && position.as_ref() == Some(&before)
        && open.position.current_price == Some(price.value())
    {
        return Ok(());
    }
    let unrealized = match &position {
        Some(p) => p.unrealized,
        // Closed by this price: its last unrealized P&L, at the price, before the fill.
        None => {
            let current = before.unrealized_at(ctx.instrument, price);
            UnrealizedPnl {
                current,
                best: before.unrealized.best.max(current),
                worst: before.unrealized.worst.min(current),
            }
        }
    };
    let written = store
        .paper()
        .mark(PaperMarked {
            open,
            position: position.as_ref(),
            closed: &closed,
            unrealized,
            price,
            at,
        })
        .await?;
    if !written {
        metrics::paper_mark("conflict");
        return Ok(());
    }
    metrics::paper_mark("marked");
    for t in &closed {
        metrics::paper_closed(match t.exit_reason {
            engine::ExitReason::TakeProfit => "take_profit",
            engine::ExitReason::StopLoss => "stop_loss",
            engine::ExitReason::Signal | engine::ExitReason::Flip => "signal",
        });
        tracing::info!(%recorder, root = %t.root, exit = ?t.exit_reason, price = %t.exit_price.value(), net = %t.net_pnl, "paper trade closed by the price");
    }
    Ok(())
}
