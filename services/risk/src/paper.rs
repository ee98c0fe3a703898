//! Paper accounts' daily loss (DOMAIN.md §9 "paper from prices"): a recorder's paper record —
//! the paper engine's positions, nothing at a broker — judged like an account: the net P&L of
//! the paper trades it closed in the trading day plus its open paper positions marked to the
//! same quotes the monitor marks accounts with. At or past −`max_daily_loss` (the recorder's
//! own setting: paper is the strategy's record, without a trader's overrides) it is breached
//! for the day: a `paper_breaches` row, then every open paper position closed at the mark
//! **through the paper engine** (the close a flatten signal would make, written only over the
//! version read, as the positions service's marks), then `closed_at`. The fan-out refuses the
//! recorder's paper entries for the rest of the day, naming the breach.
//!
//! Crash-safe as the account breaches: a row without `closed_at` is closed by the next
//! monitor's survey; a position already closed is no longer open, so nothing is closed twice,
//! and a breached recorder is not judged again that day.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use jt_domain::SignalAction;
use jt_domain::filters::is_daily_loss_breached;
use jt_domain::instrument::resolve_ticker;
use jt_domain::paper::{self as engine, PaperContext, UnrealizedPnl};
use jt_domain::session::session_start;
use jt_domain::types::Price;
use jt_store::repo::paper::{OpenPaper, PaperMarked};
use jt_store::repo::paper_risk::{NewPaperBreach, PaperBook, PaperBreach, PaperBreachRecorded};
use jt_store::repo::recorders::Recorder;
use jt_store::{RecorderId, Store};
use rust_decimal::Decimal;

use crate::book::Mark;

/// How many times a close is tried again when a price mark or a signal moved the record
/// between the read and the write (each try reads it afresh).
const CLOSE_ATTEMPTS: usize = 5;

/// The paper records the monitor judges.
#[derive(Default)]
pub(crate) struct Papers {
    entries: HashMap<RecorderId, Entry>,
    /// The newest quote per instrument root (paper positions are kept per root).
    marks: HashMap<&'static str, Mark>,
}

/// One paper record as a survey read it.
pub(crate) struct PaperRead {
    book: PaperBook,
    /// Its breach of the trading day, if any.
    breach: Option<PaperBreach>,
}

struct Entry {
    book: PaperBook,
    /// The trading day it is breached for.
    breached: Option<NaiveDate>,
}

/// A paper record's P&L of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaperPnl {
    /// The paper trades closed in the trading day, net of commission.
    pub realized: Decimal,
    /// The open paper positions at the mark.
    pub open: Decimal,
}

/// The open P&L of one paper position at the newest fresh quote of its root, else at the
/// positions service's last mark (`current_price`; the same feed); `None` when neither is known
/// (a position never marked, or a state this build cannot read): an unknown P&L is not judged.
/// Returns the price too (the close's price).
#[must_use]
pub fn marked(
    open: &OpenPaper,
    fresh: &dyn Fn(&str) -> Option<Decimal>,
) -> Option<(Decimal, Price)> {
    let instrument = resolve_ticker(&open.position.symbol).ok()?;
    let position = open.engine()?;
    let raw = fresh(instrument.root).or(open.position.current_price)?;
    let price = Price::on_tick(instrument, raw);
    Some((position.unrealized_at(instrument, price), price))
}

/// The record's P&L of the day, `None` while any open position's P&L is unknown.
#[must_use]
pub fn pnl(book: &PaperBook, fresh: &dyn Fn(&str) -> Option<Decimal>) -> Option<PaperPnl> {
    let mut open = Decimal::ZERO;
    for o in &book.open {
        open += marked(o, fresh)?.0;
    }
    Some(PaperPnl {
        realized: book.realized,
        open,
    })
}

impl Papers {
    /// Reads the paper records to judge and today's breaches (off the monitor's loop; the
    /// result is taken in by [`Papers::apply`]); `None` when the records are unreadable.
    pub(crate) async fn read(store: &Store, day: NaiveDate) -> Option<Vec<PaperRead>> {
        let books = match store.risk().paper_books(session_start(day)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "paper records unreadable: paper survey skipped");
                return None;
            }
        };
        let mut read = Vec::with_capacity(books.len());
        for book in books {
            let id = book.recorder.id;
            match store
                .risk()
                .paper_breach(book.recorder.owner, id, day)
                .await
            {
                Ok(breach) => read.push(PaperRead { book, breach }),
                // Left out of this survey (and so not judged until the next one): judged
                // without its breach, a record already breached could be breached again.
                Err(e) => tracing::warn!(recorder = %id, error = %e, "paper breach unreadable"),
            }
        }
        Some(read)
    }

    /// Takes in a survey's read of the paper records; returns the breaches whose close is
    /// still to do (a monitor died between the row and the close).
    pub(crate) fn apply(
        &mut self,
        read: Vec<PaperRead>,
        day: NaiveDate,
    ) -> Vec<(Recorder, PaperBreach)> {
        let mut to_close = Vec::new();
        let mut seen = Vec::with_capacity(read.len());
        for PaperRead { book, breach } in read {
            let id = book.recorder.id;
            seen.push(id);
            if let Some(b) = &breach
                && b.closed_at.is_none()
            {
                to_close.push((book.recorder.clone(), b.clone()));
            }
            let entry = self.entries.entry(id).or_insert(Entry {
                book: book.clone(),
                breached: None,
            });
            entry.book = book;
            // Only ever raised here: a breach this monitor recorded after the read stands.
            if breach.is_some() {
                entry.breached = Some(day);
            }
        }
        self.entries.retain(|id, _| seen.contains(id));
        to_close
    }

    /// Takes a quote; the recorders holding its root (to judge now).
    pub(crate) fn quote(
        &mut self,
        contract: &str,
        price: Decimal,
        at: DateTime<Utc>,
    ) -> Vec<RecorderId> {
        let Ok(instrument) = resolve_ticker(contract) else {
            return Vec::new();
        };
        self.marks.insert(instrument.root, Mark { price, at });
        self.entries
            .iter()
            .filter(|(_, e)| {
                e.book
                    .open
                    .iter()
                    .any(|o| o.position.symbol == instrument.root)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every recorder judged at a survey.
    pub(crate) fn recorders(&self) -> Vec<RecorderId> {
        self.entries.keys().copied().collect()
    }

    /// Judges one paper record now: the breach to record, if it is past its max daily loss
    /// (it is then breached in memory at once: judged once).
    pub(crate) fn judge(
        &mut self,
        id: RecorderId,
        now: DateTime<Utc>,
        day: NaiveDate,
        max_age: chrono::Duration,
    ) -> Option<(Recorder, NewPaperBreach)> {
        let marks = &self.marks;
        let e = self.entries.get_mut(&id)?;
        if e.breached == Some(day) {
            return None;
        }
        let limit = e.book.recorder.settings.max_daily_loss;
        let fresh = |root: &str| {
            marks
                .get(root)
                .filter(|m| now - m.at <= max_age)
                .map(|m| m.price)
        };
        let pnl = pnl(&e.book, &fresh)?;
        if !is_daily_loss_breached(limit, pnl.realized, pnl.open) {
            return None;
        }
        e.breached = Some(day);
        tracing::warn!(
            recorder = %id, %limit, realized = %pnl.realized, open = %pnl.open,
            "a paper record's max daily loss reached: closing its paper positions"
        );
        Some((
            e.book.recorder.clone(),
            NewPaperBreach {
                recorder: id,
                trading_day: day,
                loss_limit: limit,
                realized_pnl: pnl.realized,
                unrealized_pnl: pnl.open,
                breached_at: now,
                details: Some(format!(
                    "paper realized {} + open {} = {} ≤ −{}",
                    pnl.realized.normalize(),
                    pnl.open.normalize(),
                    (pnl.realized + pnl.open).normalize(),
                    limit.normalize()
                )),
            },
        ))
    }

    /// A breach that could not be recorded: judged again at the next quote or survey.
    pub(crate) fn unbreach(&mut self, id: RecorderId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.breached = None;
        }
    }

    /// The fresh marks now, per root (what a close is made at).
    pub(crate) fn fresh_marks(
        &self,
        now: DateTime<Utc>,
        max_age: chrono::Duration,
    ) -> HashMap<&'static str, Decimal> {
        self.marks
            .iter()
            .filter(|(_, m)| now - m.at <= max_age)
            .map(|(r, m)| (*r, m.price))
            .collect()
    }
}

/// Records the breach; the breach whose close is to do (`None`: already closed, or not
/// recorded — then `Err`).
///
/// # Errors
/// The store's, as text.
pub(crate) async fn record(
    store: &Store,
    recorder: &Recorder,
    breach: NewPaperBreach,
) -> Result<Option<PaperBreach>, String> {
    match store
        .risk()
        .record_paper_breach(recorder.owner, breach)
        .await
        .map_err(|e| e.to_string())?
    {
        PaperBreachRecorded::New(b) => Ok(Some(b)),
        PaperBreachRecorded::Already(b) => Ok(b.closed_at.is_none().then_some(b)),
    }
}

/// Closes every open paper position of the breached recorder at the mark (`marks`: the fresh
/// quotes per root; a root without one closes at its last stored mark) through the paper
/// engine, each write conditional on the version read (a mark or a signal that moved the record
/// meanwhile: read again and closed again); then records `closed_at`. A failure leaves
/// `closed_at` empty for the next survey.
pub(crate) async fn close(
    store: Store,
    recorder: Recorder,
    breach: PaperBreach,
    marks: HashMap<&'static str, Decimal>,
) {
    for _ in 0..CLOSE_ATTEMPTS {
        let opens = match store.risk().open_papers(recorder.owner, recorder.id).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(recorder = %recorder.id, error = %e, "paper positions unreadable: closed at the next survey");
                return;
            }
        };
        let mut pending = false;
        for open in &opens {
            match close_one(&store, &recorder, open, &marks).await {
                Ok(true) => {}
                Ok(false) => pending = true,
                Err(reason) => {
                    tracing::warn!(recorder = %recorder.id, symbol = %open.position.symbol, %reason, "paper position not closed: tried again at the next survey");
                    return;
                }
            }
        }
        if !pending {
            if let Err(e) = store
                .risk()
                .mark_paper_closed(recorder.owner, breach.id, Utc::now())
                .await
            {
                tracing::warn!(recorder = %recorder.id, error = %e, "paper closed but not marked: the next survey finds nothing open");
            }
            tracing::info!(recorder = %recorder.id, closed = opens.len(), "paper record closed at the mark for its max daily loss");
            return;
        }
    }
    tracing::warn!(recorder = %recorder.id, "the paper record kept moving while it was closed: tried again at the next survey");
}

/// Closes one open paper position at its mark; `false` when the record moved meanwhile.
async fn close_one(
    store: &Store,
    recorder: &Recorder,
    open: &OpenPaper,
    marks: &HashMap<&'static str, Decimal>,
) -> Result<bool, String> {
    let instrument = resolve_ticker(&open.position.symbol).map_err(|e| e.to_string())?;
    let before = open
        .engine()
        .ok_or("the position has no engine state to close from")?;
    let (_, price) =
        marked(open, &|root: &str| marks.get(root).copied()).ok_or("no price to close at")?;
    let ctx = PaperContext {
        instrument,
        settings: &recorder.settings,
        commission_per_contract: recorder.commission_per_contract,
    };
    // The store keeps microseconds; a trade never closes before its position opened.
    let at = Utc::now().trunc_subsecs(6).max(before.opened_at);
    let mut position = Some(before.clone());
    let closed = engine::apply_signal(&mut position, &ctx, SignalAction::Flatten, 0, price, at)
        .map_err(|e| e.to_string())?;
    let current = before.unrealized_at(instrument, price);
    store
        .paper()
        .mark(PaperMarked {
            open,
            position: position.as_ref(),
            closed: &closed,
            unrealized: UnrealizedPnl {
                current,
                best: before.unrealized.best.max(current),
                worst: before.unrealized.worst.min(current),
            },
            price,
            at,
        })
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jt_domain::{Direction, Settings};
    use jt_store::repo::paper::PaperPosition;
    use jt_store::{PaperPositionId, PaperStatus, UserId};
    use rust_decimal_macros::dec;

    use super::*;

    /// A recorder's open paper long of `qty` MNQ at `entry`, last marked at `current`.
    fn long(qty: u32, entry: Decimal, current: Option<Decimal>) -> OpenPaper {
        let instrument = resolve_ticker("MNQ").unwrap();
        let settings = Settings::default();
        let ctx = PaperContext {
            instrument,
            settings: &settings,
            commission_per_contract: Decimal::ZERO,
        };
        let mut position = None;
        let now = Utc::now().trunc_subsecs(6);
        engine::apply_signal(
            &mut position,
            &ctx,
            SignalAction::Long,
            qty,
            Price::on_tick(instrument, entry),
            now,
        )
        .unwrap();
        let engine = position.unwrap();
        OpenPaper {
            position: PaperPosition {
                id: PaperPositionId::new(),
                owner: UserId(uuid::Uuid::nil()),
                recorder: RecorderId(uuid::Uuid::nil()),
                symbol: "MNQ".into(),
                direction: Direction::Long,
                quantity: qty,
                average_entry: entry,
                entries: Vec::new(),
                current_price: current,
                unrealized_pnl: Decimal::ZERO,
                worst_unrealized_pnl: Decimal::ZERO,
                best_unrealized_pnl: Decimal::ZERO,
                realized_pnl: Decimal::ZERO,
                exit_price: None,
                status: PaperStatus::Open,
                opened_at: now,
                closed_at: None,
                last_signal: None,
                engine_state: Some(serde_json::to_value(&engine).unwrap()),
            },
            version: now,
        }
    }

    #[test]
    fn an_open_paper_position_is_marked_to_the_fresh_quote_else_its_last_mark_else_unknown() {
        let open = long(2, dec!(21000), Some(dec!(20990)));
        let quoted = |_: &str| Some(dec!(20950.10));
        let (pnl, price) = marked(&open, &quoted).unwrap();
        assert_eq!(price.value(), dec!(20950.00), "on tick");
        assert_eq!(pnl, dec!(-200), "50 points × 2 contracts × $2");
        let none = |_: &str| None;
        assert_eq!(
            marked(&open, &none).unwrap().0,
            dec!(-40),
            "the stored mark"
        );
        assert_eq!(
            marked(&long(1, dec!(21000), None), &none),
            None,
            "never marked"
        );
    }

    #[test]
    fn the_days_paper_pnl_adds_the_closed_trades_and_is_unknown_with_an_unmarked_position() {
        let recorder = Recorder {
            id: RecorderId(uuid::Uuid::nil()),
            owner: UserId(uuid::Uuid::nil()),
            name: "paper".into(),
            symbol: None,
            settings: Settings::default(),
            commission_per_contract: Decimal::ZERO,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let book = |open| PaperBook {
            recorder: recorder.clone(),
            realized: dec!(-30.5),
            open,
        };
        let quoted = |_: &str| Some(dec!(20980));
        assert_eq!(
            pnl(&book(vec![long(1, dec!(21000), None)]), &quoted),
            Some(PaperPnl {
                realized: dec!(-30.5),
                open: dec!(-40)
            })
        );
        assert_eq!(
            pnl(&book(Vec::new()), &quoted),
            Some(PaperPnl {
                realized: dec!(-30.5),
                open: dec!(0)
            })
        );
        let none = |_: &str| None;
        assert_eq!(pnl(&book(vec![long(1, dec!(21000), None)]), &none), None);
    }
}
