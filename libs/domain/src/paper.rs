//! Paper record arithmetic (DOMAIN.md §6): a recorder's simulated position, driven by its
//! signals ([`apply_signal`]) and by market prices ([`apply_price`]), both updating an
//! `Option<PaperPosition>` in place and returning the trades they closed.
//!
//! - Same-side signals stack into one position: each entry is a *lot* (a paper trade) at its
//!   own on-tick price, and the position's average entry is their exact weighted average
//!   (2 @ 21400 + 1 @ 21500 → 3 @ 21433.333…). The average is never rounded for P&L; it is
//!   rounded to tick only where a price is placed from it (the take-profit and stop after a
//!   stack), exactly like a live DCA add.
//! - An opposite signal closes every lot at the signal's price and opens the new direction;
//!   close / flatten / kill close everything; close_long / close_short close only their side.
//! - Protective levels come from the same rules as live orders: a new position gets the
//!   bracket of [`crate::bracket::build_bracket`] (TP legs, stop, trailing, break-even) priced
//!   from its fill; a stacked position gets one take-profit and one stop for the whole
//!   position at the new average ([`crate::bracket::dca_protection`]), without break-even.
//!   Paper is the recorder's own record, so trims are not scaled by a trader multiplier.
//! - With market prices: the stop is checked first (long: price ≤ stop; short: price ≥ stop)
//!   and fills at the observed price, never better than the stop; take-profits (long: price
//!   ≥ TP; short: price ≤ TP) fill at their limit price, never better, oldest lots first. Then
//!   break-even and trailing move the stop, only ever toward profit.
//! - Per trade (lot): maximum favourable and adverse excursion in points; per position: the
//!   current, best and worst unrealized P&L in dollars.
//! - Realized P&L per trade in ticks (per contract) and dollars (ticks × tick value × qty),
//!   exact because both fills are on tick; commission is per contract *per side*, charged
//!   in full (entry and exit) on the closed trade.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::bracket::{self, BracketBuildError};
use crate::instrument::Instrument;
use crate::order::{BreakEven, OrderKind, StopKind};
use crate::prices::{self, PriceError};
use crate::settings::Settings;
use crate::signal::SignalAction;
use crate::types::{Contracts, Direction, Price};

/// The largest position the paper record holds, in contracts (keeps every sum exact).
pub const MAX_PAPER_CONTRACTS: Contracts = 1_000_000;

fn max_price() -> Decimal {
    Decimal::new(1_000_000_000_000, 0)
}

/// Why a paper update was refused. The position is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum PaperError {
    /// The position belongs to another instrument.
    #[error("paper position is {position_root} but the price is for {instrument_root}")]
    WrongInstrument {
        /// The position's root.
        position_root: String,
        /// The instrument given.
        instrument_root: String,
    },
    /// A price that is not positive, not on the instrument's tick, or beyond 10¹².
    #[error("price {price} is not a valid {root} price (positive, on tick)")]
    InvalidPrice {
        /// The price given.
        price: Decimal,
        /// The instrument's root.
        root: String,
    },
    /// An entry of 0 contracts, or a position beyond [`MAX_PAPER_CONTRACTS`].
    #[error("paper quantity {qty} is out of range (1 to {MAX_PAPER_CONTRACTS} contracts)")]
    InvalidQuantity {
        /// The quantity the position would have.
        qty: u64,
    },
    /// The recorder's settings cannot produce protective levels.
    #[error("paper protective orders: {0}")]
    Orders(#[from] BracketBuildError),
    /// A protective level cannot be priced.
    #[error("paper protective orders: {0}")]
    Price(#[from] PriceError),
}

/// Everything a paper update needs besides the position.
#[derive(Debug, Clone, Copy)]
pub struct PaperContext<'a> {
    /// The position's instrument.
    pub instrument: &'a Instrument,
    /// The recorder's settings.
    pub settings: &'a Settings,
    /// Commission per contract per side, in dollars (0 = none).
    pub commission_per_contract: Decimal,
}

/// One entry of a paper position: a paper trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperLot {
    /// Contracts still open in this lot.
    pub qty: Contracts,
    /// Fill price.
    pub entry_price: Price,
    /// Fill instant.
    pub opened_at: DateTime<Utc>,
    /// Highest price seen since the fill.
    pub high: Price,
    /// Lowest price seen since the fill.
    pub low: Price,
}

/// A resting paper take-profit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperTarget {
    /// Limit price.
    pub price: Price,
    /// Contracts it closes.
    pub qty: Contracts,
}

/// The paper stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperStop {
    /// Current stop price.
    pub price: Price,
    /// Distance from the average (a trailing stop trails the best price by it).
    pub distance: Decimal,
    /// Fixed or trailing.
    pub kind: StopKind,
}

/// Unrealized P&L of a position in dollars: now, and its extremes since the position opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnrealizedPnl {
    /// At the last price.
    pub current: Decimal,
    /// Highest seen.
    pub best: Decimal,
    /// Lowest seen.
    pub worst: Decimal,
}

/// A recorder's paper position on one instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperPosition {
    /// Instrument root.
    pub root: String,
    /// Long or short.
    pub direction: Direction,
    /// When the first lot filled.
    pub opened_at: DateTime<Utc>,
    /// Open lots, oldest first.
    pub lots: Vec<PaperLot>,
    /// Resting take-profits, nearest first.
    pub targets: Vec<PaperTarget>,
    /// The stop, if any.
    pub stop: Option<PaperStop>,
    /// A break-even move not yet made.
    pub break_even: Option<BreakEven>,
    /// Most favourable price since the position opened (what a trailing stop follows).
    pub best_price: Price,
    /// Unrealized P&L.
    pub unrealized: UnrealizedPnl,
}

/// Why a paper trade closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// A close signal.
    Signal,
    /// An opposite signal closed it before the flip.
    Flip,
    /// A take-profit filled.
    TakeProfit,
    /// The stop filled.
    StopLoss,
}

/// A closed paper trade (one lot, or the part of it a take-profit closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedTrade {
    /// Instrument root.
    pub root: String,
    /// Long or short.
    pub direction: Direction,
    /// Contracts.
    pub qty: Contracts,
    /// Entry fill.
    pub entry_price: Price,
    /// Exit fill.
    pub exit_price: Price,
    /// Entry instant.
    pub opened_at: DateTime<Utc>,
    /// Exit instant.
    pub closed_at: DateTime<Utc>,
    /// Why it closed.
    pub exit_reason: ExitReason,
    /// Result per contract in ticks (signed; whole ticks, since both fills are on tick).
    pub ticks: Decimal,
    /// `ticks × tick value × qty`, in dollars.
    pub gross_pnl: Decimal,
    /// Commission for both sides: `2 × commission per contract × qty`.
    pub commission: Decimal,
    /// `gross_pnl − commission`.
    pub net_pnl: Decimal,
    /// Maximum favourable excursion per contract, in points (≥ 0).
    pub mfe_points: Decimal,
    /// Maximum adverse excursion per contract, in points (≥ 0).
    pub mae_points: Decimal,
}

/// Signed result per contract in ticks for a move from `entry` to `exit`.
#[must_use]
pub fn ticks_between(
    instrument: &Instrument,
    direction: Direction,
    entry: Price,
    exit: Price,
) -> Decimal {
    (exit.value() - entry.value()) * direction.sign() / instrument.tick_size
}

/// Dollars for `ticks` per contract on `qty` contracts.
#[must_use]
pub fn ticks_to_dollars(instrument: &Instrument, ticks: Decimal, qty: Contracts) -> Decimal {
    ticks * instrument.tick_value * Decimal::from(qty)
}

impl PaperPosition {
    /// Open contracts.
    #[must_use]
    pub fn qty(&self) -> Contracts {
        self.lots.iter().map(|l| l.qty).sum()
    }

    /// Exact weighted average entry price (not rounded; see the module docs).
    #[must_use]
    pub fn average_entry(&self) -> Decimal {
        let qty = self.qty();
        if qty == 0 {
            return Decimal::ZERO;
        }
        let notional: Decimal = self
            .lots
            .iter()
            .map(|l| l.entry_price.value() * Decimal::from(l.qty))
            .sum();
        notional / Decimal::from(qty)
    }

    /// Unrealized P&L in dollars at `price` (the sum over lots, so exact).
    #[must_use]
    pub fn unrealized_at(&self, instrument: &Instrument, price: Price) -> Decimal {
        self.lots
            .iter()
            .map(|l| {
                ticks_to_dollars(
                    instrument,
                    ticks_between(instrument, self.direction, l.entry_price, price),
                    l.qty,
                )
            })
            .sum()
    }

    /// Records a market price: lot highs/lows, the best price, unrealized P&L and extremes.
    fn observe(&mut self, instrument: &Instrument, price: Price) {
        for lot in &mut self.lots {
            lot.high = lot.high.max(price);
            lot.low = lot.low.min(price);
        }
        if (price.value() - self.best_price.value()) * self.direction.sign() > Decimal::ZERO {
            self.best_price = price;
        }
        let current = self.unrealized_at(instrument, price);
        self.unrealized = UnrealizedPnl {
            current,
            best: self.unrealized.best.max(current),
            worst: self.unrealized.worst.min(current),
        };
    }
}

fn validate_price(instrument: &Instrument, price: Price) -> Result<(), PaperError> {
    let v = price.value();
    if v <= Decimal::ZERO || v > max_price() || !instrument.is_on_tick(v) {
        return Err(PaperError::InvalidPrice {
            price: v,
            root: instrument.root.to_string(),
        });
    }
    Ok(())
}

fn validate_position(
    instrument: &Instrument,
    position: Option<&PaperPosition>,
) -> Result<(), PaperError> {
    match position {
        Some(p) if p.root != instrument.root => Err(PaperError::WrongInstrument {
            position_root: p.root.clone(),
            instrument_root: instrument.root.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The recorder's settings as the paper record applies them: no trader multiplier.
fn recorder_rules(settings: &Settings) -> Settings {
    Settings {
        multiplier: Decimal::ONE,
        ..settings.clone()
    }
}

/// Sorts targets nearest to the entry first (lowest for a long, highest for a short).
fn sort_targets(direction: Direction, targets: &mut [PaperTarget]) {
    targets.sort_by(|a, b| match direction {
        Direction::Long => a.price.cmp(&b.price),
        Direction::Short => b.price.cmp(&a.price),
    });
}

fn open(
    ctx: &PaperContext<'_>,
    direction: Direction,
    qty: Contracts,
    price: Price,
    at: DateTime<Utc>,
) -> Result<PaperPosition, PaperError> {
    if qty == 0 || qty > MAX_PAPER_CONTRACTS {
        return Err(PaperError::InvalidQuantity {
            qty: u64::from(qty),
        });
    }
    let instrument = ctx.instrument;
    let rules = recorder_rules(ctx.settings);
    let bracket = bracket::build_bracket(
        &rules,
        instrument,
        direction,
        qty,
        Some(price.value()),
        "paper",
    )?;
    let entry = Some(price.value());
    let mut targets = bracket
        .take_profits
        .iter()
        .map(|leg| {
            Ok(PaperTarget {
                price: prices::take_profit_price(instrument, direction, entry, leg.distance)?,
                qty: leg.qty,
            })
        })
        .collect::<Result<Vec<_>, PriceError>>()?;
    sort_targets(direction, &mut targets);
    let stop = match bracket.stop {
        None => None,
        Some(spec) => Some(PaperStop {
            price: prices::stop_price(instrument, direction, entry, spec.distance)?,
            distance: spec.distance,
            kind: spec.kind,
        }),
    };
    Ok(PaperPosition {
        root: instrument.root.to_string(),
        direction,
        opened_at: at,
        lots: vec![PaperLot {
            qty,
            entry_price: price,
            opened_at: at,
            high: price,
            low: price,
        }],
        targets,
        stop,
        break_even: bracket.break_even,
        best_price: price,
        unrealized: UnrealizedPnl::default(),
    })
}

fn stack(
    position: &mut PaperPosition,
    ctx: &PaperContext<'_>,
    qty: Contracts,
    price: Price,
    at: DateTime<Utc>,
) -> Result<(), PaperError> {
    let total = u64::from(position.qty()) + u64::from(qty);
    if qty == 0 || total > u64::from(MAX_PAPER_CONTRACTS) {
        return Err(PaperError::InvalidQuantity { qty: total });
    }
    position.lots.push(PaperLot {
        qty,
        entry_price: price,
        opened_at: at,
        high: price,
        low: price,
    });
    let rules = recorder_rules(ctx.settings);
    let protection = match bracket::dca_protection(
        &rules,
        ctx.instrument,
        position.direction,
        position.qty(),
        Some(position.average_entry()),
        "paper",
    ) {
        Ok(p) => p,
        Err(e) => {
            // Leave the position exactly as it was.
            position.lots.pop();
            return Err(e.into());
        }
    };
    position.targets = protection
        .take_profit
        .and_then(|o| match o.kind {
            OrderKind::Limit { price } => Some(PaperTarget { price, qty: o.qty }),
            _ => None,
        })
        .into_iter()
        .collect();
    position.stop = protection.stop.map(|s| PaperStop {
        price: s.stop,
        distance: s.distance,
        kind: s.kind,
    });
    position.break_even = None;
    position.observe(ctx.instrument, price);
    Ok(())
}

fn closed_trade(
    ctx: &PaperContext<'_>,
    position: &PaperPosition,
    lot: &PaperLot,
    qty: Contracts,
    exit_price: Price,
    at: DateTime<Utc>,
    exit_reason: ExitReason,
) -> ClosedTrade {
    let instrument = ctx.instrument;
    let direction = position.direction;
    let ticks = ticks_between(instrument, direction, lot.entry_price, exit_price);
    let gross_pnl = ticks_to_dollars(instrument, ticks, qty);
    let commission = ctx.commission_per_contract * Decimal::TWO * Decimal::from(qty);
    let (favourable, adverse) = match direction {
        Direction::Long => (lot.high, lot.low),
        Direction::Short => (lot.low, lot.high),
    };
    ClosedTrade {
        root: position.root.clone(),
        direction,
        qty,
        entry_price: lot.entry_price,
        exit_price,
        opened_at: lot.opened_at,
        closed_at: at,
        exit_reason,
        ticks: ticks.normalize(),
        gross_pnl: gross_pnl.normalize(),
        commission: commission.normalize(),
        net_pnl: (gross_pnl - commission).normalize(),
        mfe_points: ((favourable.value() - lot.entry_price.value()) * direction.sign())
            .max(Decimal::ZERO)
            .normalize(),
        mae_points: ((lot.entry_price.value() - adverse.value()) * direction.sign())
            .max(Decimal::ZERO)
            .normalize(),
    }
}

/// Closes `qty` contracts, oldest lots first, at `price`.
fn close_qty(
    position: &mut PaperPosition,
    ctx: &PaperContext<'_>,
    mut qty: Contracts,
    price: Price,
    at: DateTime<Utc>,
    reason: ExitReason,
) -> Vec<ClosedTrade> {
    let mut closed = Vec::new();
    let mut remaining = Vec::with_capacity(position.lots.len());
    for mut lot in std::mem::take(&mut position.lots) {
        if qty == 0 {
            remaining.push(lot);
            continue;
        }
        let part = lot.qty.min(qty);
        closed.push(closed_trade(ctx, position, &lot, part, price, at, reason));
        qty -= part;
        lot.qty -= part;
        if lot.qty > 0 {
            remaining.push(lot);
        }
    }
    position.lots = remaining;
    closed
}

fn close_all(
    mut position: PaperPosition,
    ctx: &PaperContext<'_>,
    price: Price,
    at: DateTime<Utc>,
    reason: ExitReason,
) -> Vec<ClosedTrade> {
    position.observe(ctx.instrument, price);
    let qty = position.qty();
    close_qty(&mut position, ctx, qty, price, at, reason)
}

/// Applies a signal filled at `price` (the alert's price, else the last trade) for `qty`
/// contracts (the signal's quantity, else the recorder's `initial_position_size`; for a partial
/// exit the contracts taken off; ignored for closes), and returns the trades it closed. `cancel` and `resume` change nothing.
///
/// # Errors
/// [`PaperError`] for a price off tick or out of range, a position of another instrument, an
/// entry of 0 contracts, or settings that cannot produce protective levels. On error the
/// position is left exactly as it was (a flip whose new entry fails does not close the old
/// position).
pub fn apply_signal(
    position: &mut Option<PaperPosition>,
    ctx: &PaperContext<'_>,
    action: SignalAction,
    qty: Contracts,
    price: Price,
    at: DateTime<Utc>,
) -> Result<Vec<ClosedTrade>, PaperError> {
    validate_position(ctx.instrument, position.as_ref())?;
    validate_price(ctx.instrument, price)?;
    let held = position.as_ref().map(|p| p.direction);
    let wanted = match action {
        SignalAction::Long => Direction::Long,
        SignalAction::Short => Direction::Short,
        SignalAction::Close | SignalAction::Flatten | SignalAction::Kill => {
            return Ok(take_and_close(position, ctx, price, at));
        }
        SignalAction::CloseLong | SignalAction::CloseShort => {
            let side = if action == SignalAction::CloseLong {
                Direction::Long
            } else {
                Direction::Short
            };
            if held == Some(side) {
                return Ok(take_and_close(position, ctx, price, at));
            }
            return Ok(Vec::new());
        }
        SignalAction::ReduceLong | SignalAction::ReduceShort => {
            return Ok(reduce(position, ctx, action, qty, price, at));
        }
        SignalAction::Cancel | SignalAction::Resume => return Ok(Vec::new()),
    };
    match position {
        Some(p) if p.direction == wanted => {
            stack(p, ctx, qty, price, at)?;
            Ok(Vec::new())
        }
        _ => {
            // Open first, so a refused entry leaves the old position untouched.
            let new = open(ctx, wanted, qty, price, at)?;
            let closed = match position.take() {
                Some(old) => close_all(old, ctx, price, at, ExitReason::Flip),
                None => Vec::new(),
            };
            *position = Some(new);
            Ok(closed)
        }
    }
}

/// A partial exit of `qty` contracts (oldest lots first) at `price`, as the live traders do it:
/// the targets are trimmed from the farthest so they never exceed what remains; all of it (or
/// more) closes the position. Nothing happens on a flat or opposite position.
fn reduce(
    position: &mut Option<PaperPosition>,
    ctx: &PaperContext<'_>,
    action: SignalAction,
    qty: Contracts,
    price: Price,
    at: DateTime<Utc>,
) -> Vec<ClosedTrade> {
    let side = action.reduced_direction();
    let Some(p) = position.as_mut().filter(|p| Some(p.direction) == side) else {
        return Vec::new();
    };
    if qty >= p.qty() {
        return take_and_close(position, ctx, price, at);
    }
    p.observe(ctx.instrument, price);
    let closed = close_qty(p, ctx, qty, price, at, ExitReason::Signal);
    let mut excess = p
        .targets
        .iter()
        .map(|t| t.qty)
        .sum::<Contracts>()
        .saturating_sub(p.qty());
    // Nearest first: trim from the back.
    while excess > 0 {
        let Some(last) = p.targets.last_mut() else {
            break;
        };
        let cut = last.qty.min(excess);
        last.qty -= cut;
        excess -= cut;
        if last.qty == 0 {
            p.targets.pop();
        }
    }
    closed
}

fn take_and_close(
    position: &mut Option<PaperPosition>,
    ctx: &PaperContext<'_>,
    price: Price,
    at: DateTime<Utc>,
) -> Vec<ClosedTrade> {
    match position.take() {
        Some(p) => close_all(p, ctx, price, at, ExitReason::Signal),
        None => Vec::new(),
    }
}

/// Whether `price` reaches `level` in the profit direction (a target) or the loss direction
/// (a stop) of `direction`.
fn reaches(direction: Direction, price: Price, level: Price, toward_profit: bool) -> bool {
    let diff = (price.value() - level.value()) * direction.sign();
    if toward_profit {
        diff >= Decimal::ZERO
    } else {
        diff <= Decimal::ZERO
    }
}

/// Moves the stop toward profit: break-even once, then trailing.
fn adjust_stop(position: &mut PaperPosition, instrument: &Instrument, price: Price) {
    let direction = position.direction;
    let sign = direction.sign();
    let average = Price::on_tick(instrument, position.average_entry());
    let better = |candidate: Price, current: Option<Price>| match current {
        None => true,
        Some(c) => (candidate.value() - c.value()) * sign > Decimal::ZERO,
    };
    if let Some(be) = position.break_even
        && (price.value() - average.value()) * sign >= be.trigger
    {
        let level = Price::on_tick(instrument, average.value() + be.offset * sign);
        let current = position.stop.map(|s| s.price);
        if better(level, current) {
            position.stop = Some(match position.stop {
                Some(s) => PaperStop { price: level, ..s },
                None => PaperStop {
                    price: level,
                    distance: (price.value() - level.value()).abs(),
                    kind: StopKind::Fixed,
                },
            });
        }
        position.break_even = None;
    }
    if let Some(stop) = position.stop
        && let StopKind::Trailing { trigger, step } = stop.kind
        && (position.best_price.value() - average.value()) * sign >= trigger
    {
        let candidate = Price::on_tick(
            instrument,
            position.best_price.value() - stop.distance * sign,
        );
        let gain = (candidate.value() - stop.price.value()) * sign;
        if gain > Decimal::ZERO && gain >= step {
            position.stop = Some(PaperStop {
                price: candidate,
                ..stop
            });
        }
    }
}

/// Applies a market price and returns the trades it closed: updates excursions and
/// unrealized P&L, fills the stop or the take-profits it reaches, then moves the stop
/// (break-even, trailing). A flat position ignores prices.
///
/// # Errors
/// [`PaperError`] for a price off tick or out of range, or a position of another instrument;
/// the position is then unchanged.
pub fn apply_price(
    position: &mut Option<PaperPosition>,
    ctx: &PaperContext<'_>,
    price: Price,
    at: DateTime<Utc>,
) -> Result<Vec<ClosedTrade>, PaperError> {
    validate_position(ctx.instrument, position.as_ref())?;
    validate_price(ctx.instrument, price)?;
    let Some(p) = position.as_mut() else {
        return Ok(Vec::new());
    };
    p.observe(ctx.instrument, price);
    let mut closed = Vec::new();
    if let Some(stop) = p.stop
        && reaches(p.direction, price, stop.price, false)
    {
        // A stop becomes a market order: the fill is the observed price, at or beyond it.
        let qty = p.qty();
        closed = close_qty(p, ctx, qty, price, at, ExitReason::StopLoss);
    } else {
        while let Some(target) = p.targets.first().copied() {
            if !reaches(p.direction, price, target.price, true) {
                break;
            }
            p.targets.remove(0);
            let qty = target.qty.min(p.qty());
            closed.extend(close_qty(
                p,
                ctx,
                qty,
                target.price,
                at,
                ExitReason::TakeProfit,
            ));
        }
    }
    if p.qty() == 0 {
        *position = None;
    } else {
        adjust_stop(p, ctx.instrument, price);
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::by_root;
    use crate::settings::{StopType, TpTarget};
    use chrono::TimeZone;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn mnq() -> &'static Instrument {
        by_root("MNQ").unwrap()
    }

    fn px(v: Decimal) -> Price {
        Price::on_tick(mnq(), v)
    }

    fn t(sec: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 15, 0, 0).unwrap() + chrono::Duration::seconds(sec)
    }

    fn ctx(settings: &Settings) -> PaperContext<'_> {
        PaperContext {
            instrument: mnq(),
            settings,
            commission_per_contract: dec!(0),
        }
    }

    fn signal(
        position: &mut Option<PaperPosition>,
        settings: &Settings,
        action: SignalAction,
        qty: Contracts,
        price: Decimal,
        sec: i64,
    ) -> Vec<ClosedTrade> {
        apply_signal(position, &ctx(settings), action, qty, px(price), t(sec)).unwrap()
    }

    fn tick(
        position: &mut Option<PaperPosition>,
        settings: &Settings,
        price: Decimal,
        sec: i64,
    ) -> Vec<ClosedTrade> {
        apply_price(position, &ctx(settings), px(price), t(sec)).unwrap()
    }

    fn open_position(position: &Option<PaperPosition>) -> &PaperPosition {
        position.as_ref().expect("an open paper position")
    }

    fn target(value: Decimal, trim: Decimal) -> TpTarget {
        TpTarget { value, trim }
    }

    #[test]
    fn same_side_signals_stack_into_a_weighted_average() {
        let s = Settings::default();
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 2, dec!(21400), 0);
        assert!(signal(&mut p, &s, SignalAction::Long, 1, dec!(21500), 1).is_empty());
        let p = open_position(&p);
        assert_eq!((p.qty(), p.lots.len()), (3, 2));
        let avg = p.average_entry();
        assert_eq!(avg.round_dp(2), dec!(21433.33));
        assert!(
            avg > dec!(21433.3333333) && avg < dec!(21433.3333334),
            "kept exact, not rounded: {avg}"
        );
    }

    #[test]
    fn stacking_reprices_protection_from_the_tick_rounded_average() {
        let s = Settings {
            tp_targets: vec![target(dec!(20), dec!(0))],
            sl_enabled: true,
            sl_amount: dec!(40),
            ..Settings::default()
        };
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 2, dec!(21400), 0);
        signal(&mut p, &s, SignalAction::Long, 1, dec!(21500), 1);
        let p = open_position(&p);
        // 21433.333… → 21433.25; TP +5, SL −10, for the whole position.
        assert_eq!(
            p.targets,
            vec![PaperTarget {
                price: px(dec!(21438.25)),
                qty: 3
            }]
        );
        assert_eq!(p.stop.unwrap().price, px(dec!(21423.25)));
    }

    #[test]
    fn opposite_signal_closes_and_flips() {
        let s = Settings::default();
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 2, dec!(21000), 0);
        let closed = signal(&mut p, &s, SignalAction::Short, 1, dec!(21010), 5);
        assert_eq!(closed.len(), 1);
        let c = &closed[0];
        assert_eq!(c.exit_reason, ExitReason::Flip);
        assert_eq!((c.qty, c.ticks, c.gross_pnl), (2, dec!(40), dec!(40)));
        let p = open_position(&p);
        assert_eq!((p.direction, p.qty()), (Direction::Short, 1));
        assert_eq!(p.lots[0].entry_price, px(dec!(21010)));
    }

    #[test]
    fn close_signals_close_their_side_only() {
        let s = Settings::default();
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 1, dec!(21000), 0);
        let before = p.clone();
        assert!(signal(&mut p, &s, SignalAction::CloseShort, 0, dec!(21001), 1).is_empty());
        assert_eq!(p, before, "close_short leaves a long alone");
        let closed = signal(&mut p, &s, SignalAction::CloseLong, 0, dec!(20990), 1);
        assert_eq!(p, None);
        assert_eq!(closed[0].ticks, dec!(-40));
        assert_eq!(closed[0].exit_reason, ExitReason::Signal);
        assert!(signal(&mut p, &s, SignalAction::Close, 0, dec!(21000), 2).is_empty());
        assert_eq!(p, None);
    }

    #[test]
    fn take_profit_hits_close_trades_on_the_right_side() {
        let s = Settings {
            tp_targets: vec![target(dec!(20), dec!(0))],
            ..Settings::default()
        };
        // Long: TP at 21005; 21004.75 does not reach it, 21005.5 does (filled at 21005).
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 1, dec!(21000), 0);
        assert!(tick(&mut p, &s, dec!(21004.75), 1).is_empty());
        let closed = tick(&mut p, &s, dec!(21005.5), 2);
        assert_eq!(p, None);
        assert_eq!(closed[0].exit_price, px(dec!(21005)));
        assert_eq!(closed[0].exit_reason, ExitReason::TakeProfit);
        // Short: TP at 20995, reached at or below.
        signal(&mut p, &s, SignalAction::Short, 1, dec!(21000), 0);
        assert!(
            tick(&mut p, &s, dec!(21005.5), 1).is_empty(),
            "a rise is a loss for a short, not its target"
        );
        let closed = tick(&mut p, &s, dec!(20995), 2);
        assert_eq!(closed[0].ticks, dec!(20));
    }

    #[test]
    fn stop_hits_close_trades_at_the_observed_price() {
        let s = Settings {
            sl_enabled: true,
            sl_amount: dec!(40),
            ..Settings::default()
        };
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 2, dec!(21000), 0);
        assert_eq!(open_position(&p).stop.unwrap().price, px(dec!(20990)));
        assert!(tick(&mut p, &s, dec!(20990.25), 1).is_empty());
        let closed = tick(&mut p, &s, dec!(20988), 2); // gapped through the stop
        assert_eq!(p, None);
        let c = &closed[0];
        assert_eq!(
            (c.exit_reason, c.exit_price),
            (ExitReason::StopLoss, px(dec!(20988)))
        );
        assert_eq!(c.ticks, dec!(-48));
        assert_eq!(c.gross_pnl, dec!(-48)); // 48 ticks × $0.50 × 2
        // Short: the stop sits above.
        signal(&mut p, &s, SignalAction::Short, 1, dec!(21000), 0);
        let closed = tick(&mut p, &s, dec!(21010), 1);
        assert_eq!(closed[0].exit_reason, ExitReason::StopLoss);
    }

    #[test]
    fn a_partial_exit_closes_the_oldest_lots_and_trims_the_farthest_target() {
        let s = Settings {
            tp_targets: vec![target(dec!(20), dec!(2)), target(dec!(40), dec!(2))],
            ..Settings::default()
        };
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 4, dec!(21000), 0);
        let closed = signal(&mut p, &s, SignalAction::ReduceLong, 3, dec!(21004), 1);
        assert_eq!(closed.iter().map(|c| c.qty).sum::<Contracts>(), 3);
        assert_eq!(closed[0].exit_reason, ExitReason::Signal);
        let open = open_position(&p);
        assert_eq!(open.qty(), 1);
        assert_eq!(
            open.targets,
            vec![PaperTarget {
                price: px(dec!(21005)),
                qty: 1
            }],
            "the farthest target went first"
        );
        // The wrong side, or flat, changes nothing.
        assert!(signal(&mut p, &s, SignalAction::ReduceShort, 1, dec!(21004), 2).is_empty());
        assert_eq!(open_position(&p).qty(), 1);
        // All of it closes the position.
        let closed = signal(&mut p, &s, SignalAction::ReduceLong, 5, dec!(21004), 3);
        assert_eq!(closed.len(), 1);
        assert_eq!(p, None);
        assert!(signal(&mut p, &s, SignalAction::ReduceLong, 1, dec!(21004), 4).is_empty());
    }

    #[test]
    fn take_profit_legs_fill_nearest_first() {
        let s = Settings {
            tp_targets: vec![target(dec!(40), dec!(1)), target(dec!(20), dec!(1))],
            ..Settings::default()
        };
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 3, dec!(21000), 0);
        // Legs: 1 @ +10 (first target), the remaining 2 @ +5; sorted nearest first.
        assert_eq!(
            open_position(&p).targets,
            vec![
                PaperTarget {
                    price: px(dec!(21005)),
                    qty: 2
                },
                PaperTarget {
                    price: px(dec!(21010)),
                    qty: 1
                }
            ]
        );
        let closed = tick(&mut p, &s, dec!(21006), 1);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].qty, closed[0].ticks), (2, dec!(20)));
        assert_eq!(open_position(&p).qty(), 1);
        let closed = tick(&mut p, &s, dec!(21012), 2);
        assert_eq!(p, None);
        assert_eq!(closed[0].ticks, dec!(40));
    }

    #[test]
    fn mfe_and_mae_per_trade() {
        let s = Settings::default();
        let mut p = None;
        signal(&mut p, &s, SignalAction::Short, 1, dec!(21000), 0);
        tick(&mut p, &s, dec!(21012), 1); // adverse 12
        tick(&mut p, &s, dec!(20980), 2); // favourable 20
        tick(&mut p, &s, dec!(20995), 3);
        // A second lot sees only what came after it.
        signal(&mut p, &s, SignalAction::Short, 1, dec!(20995), 4);
        tick(&mut p, &s, dec!(20999), 5);
        let closed = signal(&mut p, &s, SignalAction::Close, 0, dec!(20990), 6);
        assert_eq!(
            (closed[0].mfe_points, closed[0].mae_points),
            (dec!(20), dec!(12))
        );
        assert_eq!(closed[0].ticks, dec!(40));
        assert_eq!(
            (closed[1].mfe_points, closed[1].mae_points),
            (dec!(5), dec!(4))
        );
    }

    #[test]
    fn unrealized_current_best_and_worst_per_position() {
        let s = Settings::default();
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 2, dec!(21000), 0);
        tick(&mut p, &s, dec!(21010), 1); // 40 ticks × $0.50 × 2 = +40
        tick(&mut p, &s, dec!(20995), 2); // −20
        tick(&mut p, &s, dec!(21001), 3); // +4
        assert_eq!(
            open_position(&p).unrealized,
            UnrealizedPnl {
                current: dec!(4),
                best: dec!(40),
                worst: dec!(-20)
            }
        );
    }

    #[test]
    fn realized_pnl_in_dollars_and_ticks_with_commission() {
        let s = Settings::default();
        let es = by_root("ES").unwrap();
        let c = PaperContext {
            instrument: es,
            settings: &s,
            commission_per_contract: dec!(2.25),
        };
        let mut p = None;
        apply_signal(
            &mut p,
            &c,
            SignalAction::Short,
            3,
            Price::on_tick(es, dec!(6000)),
            t(0),
        )
        .unwrap();
        let closed = apply_signal(
            &mut p,
            &c,
            SignalAction::Close,
            0,
            Price::on_tick(es, dec!(5990.5)),
            t(9),
        )
        .unwrap();
        let trade = &closed[0];
        assert_eq!(trade.ticks, dec!(38));
        assert_eq!(trade.gross_pnl, dec!(1425)); // 38 × $12.50 × 3
        assert_eq!(trade.commission, dec!(13.5)); // $2.25 × 2 sides × 3
        assert_eq!(trade.net_pnl, dec!(1411.5));
    }

    #[test]
    fn trailing_stop_follows_the_best_price_after_its_trigger() {
        let s = Settings {
            sl_enabled: true,
            sl_amount: dec!(20), // 5 points
            sl_type: StopType::Trailing,
            trail_trigger: dec!(8), // 2 points
            trail_freq: dec!(2),    // 0.5-point steps
            ..Settings::default()
        };
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 1, dec!(21000), 0);
        let stop = |p: &Option<PaperPosition>| open_position(p).stop.unwrap().price;
        assert_eq!(stop(&p), px(dec!(20995)));
        tick(&mut p, &s, dec!(21001), 1);
        assert_eq!(stop(&p), px(dec!(20995)), "trigger not reached");
        tick(&mut p, &s, dec!(21003), 2);
        assert_eq!(stop(&p), px(dec!(20998)));
        tick(&mut p, &s, dec!(21003.25), 3);
        assert_eq!(stop(&p), px(dec!(20998)), "0.25 is below the step");
        tick(&mut p, &s, dec!(21001), 4);
        assert_eq!(stop(&p), px(dec!(20998)), "never moves back");
        let closed = tick(&mut p, &s, dec!(20998), 5);
        assert_eq!(closed[0].exit_reason, ExitReason::StopLoss);
        assert_eq!(closed[0].ticks, dec!(-8));
    }

    #[test]
    fn break_even_moves_the_stop_to_entry_plus_offset_once() {
        let s = Settings {
            sl_enabled: true,
            sl_amount: dec!(40),
            break_even_enabled: true,
            break_even_ticks: dec!(12),
            break_even_offset: dec!(1),
            ..Settings::default()
        };
        let mut p = None;
        signal(&mut p, &s, SignalAction::Short, 1, dec!(21000), 0);
        let stop = |p: &Option<PaperPosition>| open_position(p).stop.unwrap().price;
        assert_eq!(stop(&p), px(dec!(21010)));
        tick(&mut p, &s, dec!(20997.25), 1);
        assert_eq!(stop(&p), px(dec!(21010)), "11 ticks: not yet");
        tick(&mut p, &s, dec!(20997), 2);
        assert_eq!(stop(&p), px(dec!(20999.75)));
        assert_eq!(open_position(&p).break_even, None);
        let closed = tick(&mut p, &s, dec!(21000), 3);
        assert_eq!(closed[0].exit_reason, ExitReason::StopLoss);
        assert_eq!(closed[0].ticks, dec!(0));
    }

    #[test]
    fn bad_inputs_are_errors_and_leave_the_position_unchanged() {
        let s = Settings::default();
        let mut p = None;
        signal(&mut p, &s, SignalAction::Long, 1, dec!(21000), 0);
        let before = p.clone();
        let gc = by_root("GC").unwrap();
        let wrong = PaperContext {
            instrument: gc,
            settings: &s,
            commission_per_contract: dec!(0),
        };
        assert!(matches!(
            apply_signal(
                &mut p,
                &wrong,
                SignalAction::Close,
                0,
                Price::on_tick(gc, dec!(2400)),
                t(1)
            ),
            Err(PaperError::WrongInstrument { .. })
        ));
        // A GC price (0.1 grid) is off the MNQ grid.
        assert!(matches!(
            apply_price(&mut p, &ctx(&s), Price::on_tick(gc, dec!(21000.1)), t(1)),
            Err(PaperError::InvalidPrice { .. })
        ));
        // A flip whose new entry is refused does not close the old position.
        assert!(matches!(
            apply_signal(
                &mut p,
                &ctx(&s),
                SignalAction::Short,
                0,
                px(dec!(21000)),
                t(1)
            ),
            Err(PaperError::InvalidQuantity { .. })
        ));
        assert_eq!(p, before);
        // A stack whose protection cannot be priced is undone.
        let s = Settings {
            sl_enabled: true,
            sl_amount: dec!(0),
            ..Settings::default()
        };
        assert!(
            apply_signal(
                &mut p,
                &ctx(&s),
                SignalAction::Long,
                1,
                px(dec!(21001)),
                t(2)
            )
            .is_err()
        );
        assert_eq!(p, before);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip_pnl_is_ticks_times_tick_value_times_quantity(
            root in prop::sample::select(vec!["MNQ", "ES", "GC", "CL", "ZN", "6E", "SI", "YM"]),
            entry_ticks in 1_000i64..10_000_000,
            move_ticks in -900i64..5_000,
            qty in 1u32..50,
            long in any::<bool>(),
        ) {
            let instrument = by_root(root).unwrap();
            let s = Settings::default();
            let c = PaperContext { instrument, settings: &s, commission_per_contract: dec!(0) };
            let entry = Price::on_tick(instrument, Decimal::from(entry_ticks) * instrument.tick_size);
            let exit = Price::on_tick(
                instrument,
                Decimal::from(entry_ticks + move_ticks) * instrument.tick_size,
            );
            let (action, sign) = if long { (SignalAction::Long, 1) } else { (SignalAction::Short, -1) };
            let mut p = None;
            apply_signal(&mut p, &c, action, qty, entry, t(0)).unwrap();
            let closed = apply_signal(&mut p, &c, SignalAction::Close, 0, exit, t(1)).unwrap();
            prop_assert_eq!(closed.len(), 1);
            let trade = &closed[0];
            let ticks = Decimal::from(move_ticks * sign);
            prop_assert_eq!(trade.ticks, ticks);
            prop_assert_eq!(
                trade.gross_pnl,
                (ticks * instrument.tick_value * Decimal::from(qty)).normalize()
            );
            // The same through the point value, computed independently.
            let by_points = (exit.value() - entry.value()) * Decimal::from(sign)
                * instrument.point_value() * Decimal::from(qty);
            prop_assert_eq!(trade.gross_pnl, by_points.normalize());
        }

        #[test]
        fn stacked_realized_pnl_is_the_sum_over_lots(
            fills in prop::collection::vec((20_000i64..22_000, 1u32..5), 1..6),
            exit in 20_000i64..22_000,
        ) {
            let s = Settings::default();
            let mut p = None;
            for (i, (price, qty)) in fills.iter().enumerate() {
                let sec = i64::try_from(i).unwrap();
                signal(&mut p, &s, SignalAction::Long, *qty, Decimal::from(*price), sec);
            }
            let position = open_position(&p).clone();
            let unrealized = position.unrealized_at(mnq(), px(Decimal::from(exit)));
            let closed = signal(&mut p, &s, SignalAction::Close, 0, Decimal::from(exit), 99);
            prop_assert_eq!(closed.len(), fills.len());
            let realized: Decimal = closed.iter().map(|c| c.gross_pnl).sum();
            prop_assert_eq!(realized, unrealized);
            let qty: u32 = fills.iter().map(|(_, q)| q).sum();
            // Realized equals (exit − exact average) × qty × point value, up to the exact
            // average's last digit.
            let via_average =
                (Decimal::from(exit) - position.average_entry()) * Decimal::from(qty) * dec!(2);
            prop_assert!((realized - via_average).abs() < dec!(0.000001));
        }

        #[test]
        fn a_long_stop_never_moves_down_and_prices_stay_on_tick(
            moves in prop::collection::vec(-40i64..40, 1..40),
        ) {
            let s = Settings {
                sl_enabled: true,
                sl_amount: dec!(30),
                sl_type: StopType::Trailing,
                trail_trigger: dec!(4),
                break_even_enabled: true,
                break_even_ticks: dec!(10),
                break_even_offset: dec!(2),
                ..Settings::default()
            };
            let mut p = None;
            signal(&mut p, &s, SignalAction::Long, 1, dec!(21000), 0);
            let mut last_stop = open_position(&p).stop.unwrap().price;
            let mut price_ticks = 84_000i64;
            for (i, m) in moves.iter().enumerate() {
                price_ticks += m;
                let sec = i64::try_from(i).unwrap() + 1;
                let closed = tick(&mut p, &s, Decimal::from(price_ticks) * dec!(0.25), sec);
                match &p {
                    None => {
                        prop_assert_eq!(closed.len(), 1);
                        prop_assert!(closed[0].exit_price <= last_stop);
                        break;
                    }
                    Some(position) => {
                        let stop = position.stop.unwrap().price;
                        prop_assert!(stop >= last_stop);
                        prop_assert!(mnq().is_on_tick(stop.value()));
                        last_stop = stop;
                    }
                }
            }
        }
    }
}
