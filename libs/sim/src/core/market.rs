//! Per-contract market state: the current price (held in ticks, so it is on the grid by
//! construction), session statistics, minute bars, the accounts whose orders watch the price,
//! and the market-data listeners.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::model::Id;

/// How many minute bars a contract keeps.
const MAX_BARS: usize = 10_000;

/// One minute bar (`timestamp_us` is the start of the minute).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Start of the minute.
    pub timestamp_us: i64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Volume traded on up-ticks.
    pub up_volume: u64,
    /// Volume traded on down-ticks (and unchanged).
    pub down_volume: u64,
    /// Up-tick count.
    pub up_ticks: u64,
    /// Down-tick count.
    pub down_ticks: u64,
}

/// A quote: what the market-data socket publishes.
#[derive(Debug, Clone)]
pub struct Quote {
    /// Contract.
    pub contract_id: Id,
    /// Time of the last change.
    pub timestamp_us: i64,
    /// Last trade.
    pub trade: Decimal,
    /// Best bid.
    pub bid: Decimal,
    /// Best offer.
    pub offer: Decimal,
    /// Session open.
    pub open: Decimal,
    /// Session high.
    pub high: Decimal,
    /// Session low.
    pub low: Decimal,
    /// Volume of the session.
    pub volume: u64,
    /// Size shown at the bid and offer.
    pub size: u64,
}

/// A change of one contract's market, offered to market-data listeners.
#[derive(Debug, Clone)]
pub struct MarketUpdate {
    /// Quote after the change.
    pub quote: Quote,
    /// The bar the change went into.
    pub bar: Bar,
    /// Tick size (for DOM levels).
    pub tick_size: Decimal,
}

/// Receives market updates of the contracts it subscribed to.
pub trait MarketSink: Send + Sync {
    /// Offers an update; `false` means the listener is gone and must be dropped. Never blocks:
    /// a listener that cannot keep up skips updates (quotes supersede each other).
    fn offer(&self, update: &Arc<MarketUpdate>) -> bool;
    /// Identity, for unsubscribing.
    fn sink_id(&self) -> u64;
}

struct Stats {
    open: Decimal,
    high: Decimal,
    low: Decimal,
    volume: u64,
    last_change_us: i64,
    bars: VecDeque<Bar>,
}

/// One contract's market.
pub struct Market {
    /// Contract id.
    pub contract_id: Id,
    /// Tick size.
    pub tick_size: Decimal,
    price_ticks: AtomicI64,
    pub(crate) watchers: Mutex<BTreeSet<Id>>,
    sinks: Mutex<Vec<Arc<dyn MarketSink>>>,
    stats: Mutex<Stats>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("contract_id", &self.contract_id)
            .field("price", &self.price())
            .finish_non_exhaustive()
    }
}

fn to_ticks(price: Decimal, tick: Decimal) -> i64 {
    (price / tick)
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .unwrap_or(0)
}

impl Market {
    /// A market at `price` (rounded to the tick grid).
    #[must_use]
    pub fn new(contract_id: Id, tick_size: Decimal, price: Decimal, now_us: i64) -> Self {
        let ticks = to_ticks(price, tick_size);
        let p = Decimal::from(ticks) * tick_size;
        Market {
            contract_id,
            tick_size,
            price_ticks: AtomicI64::new(ticks),
            watchers: Mutex::new(BTreeSet::new()),
            sinks: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats {
                open: p,
                high: p,
                low: p,
                volume: 0,
                last_change_us: now_us,
                bars: VecDeque::new(),
            }),
        }
    }

    /// The current price.
    #[must_use]
    pub fn price(&self) -> Decimal {
        (Decimal::from(self.price_ticks.load(Ordering::SeqCst)) * self.tick_size).normalize()
    }

    /// Rounds a price to this market's grid.
    #[must_use]
    pub fn on_tick(&self, price: Decimal) -> Decimal {
        (Decimal::from(to_ticks(price, self.tick_size)) * self.tick_size).normalize()
    }

    /// Whether a price lies on the grid.
    #[must_use]
    pub fn is_on_tick(&self, price: Decimal) -> bool {
        (price % self.tick_size).is_zero()
    }

    /// Sets the price (rounded to tick); records a one-lot trade in the statistics and bars
    /// and returns the update to publish.
    pub fn set_price(&self, price: Decimal, now_us: i64) -> Arc<MarketUpdate> {
        let ticks = to_ticks(price, self.tick_size);
        let old = self.price_ticks.swap(ticks, Ordering::SeqCst);
        let p = (Decimal::from(ticks) * self.tick_size).normalize();
        let prev = (Decimal::from(old) * self.tick_size).normalize();
        self.record_trade(p, prev, 1, ticks > old, now_us)
    }

    /// Records simulated fills as traded volume (the price does not move).
    pub fn record_volume(&self, qty: u64, now_us: i64) {
        let p = self.price();
        let mut s = self.stats.lock();
        s.volume += qty;
        s.last_change_us = now_us;
        let bar = current_bar(&mut s.bars, p, now_us);
        bar.down_volume += qty;
    }

    fn record_trade(
        &self,
        p: Decimal,
        prev: Decimal,
        qty: u64,
        up: bool,
        now_us: i64,
    ) -> Arc<MarketUpdate> {
        let mut s = self.stats.lock();
        s.high = s.high.max(p);
        s.low = s.low.min(p);
        s.volume += qty;
        s.last_change_us = now_us;
        let bar = current_bar(&mut s.bars, prev, now_us);
        bar.high = bar.high.max(p);
        bar.low = bar.low.min(p);
        bar.close = p;
        if up {
            bar.up_volume += qty;
            bar.up_ticks += 1;
        } else {
            bar.down_volume += qty;
            bar.down_ticks += 1;
        }
        let bar = bar.clone();
        let quote = self.quote_locked(&s, p);
        Arc::new(MarketUpdate {
            quote,
            bar,
            tick_size: self.tick_size,
        })
    }

    fn quote_locked(&self, s: &Stats, p: Decimal) -> Quote {
        Quote {
            contract_id: self.contract_id,
            timestamp_us: s.last_change_us,
            trade: p,
            bid: p,
            offer: p,
            open: s.open,
            high: s.high,
            low: s.low,
            volume: s.volume,
            size: 10,
        }
    }

    /// The current market as an update (for a new subscriber).
    #[must_use]
    pub fn snapshot(&self, now_us: i64) -> Arc<MarketUpdate> {
        let p = self.price();
        let mut s = self.stats.lock();
        let bar = current_bar(&mut s.bars, p, now_us).clone();
        let quote = self.quote_locked(&s, p);
        Arc::new(MarketUpdate {
            quote,
            bar,
            tick_size: self.tick_size,
        })
    }

    /// Minute bars from `from_us` on, oldest first, at most `limit`.
    #[must_use]
    pub fn bars(&self, from_us: Option<i64>, limit: usize) -> Vec<Bar> {
        let s = self.stats.lock();
        let from = from_us.unwrap_or(i64::MIN);
        let matching: Vec<Bar> = s
            .bars
            .iter()
            .filter(|b| b.timestamp_us >= from)
            .cloned()
            .collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).collect()
    }

    /// Adds a market-data listener.
    pub fn subscribe(&self, sink: Arc<dyn MarketSink>) {
        let mut sinks = self.sinks.lock();
        let id = sink.sink_id();
        sinks.retain(|s| s.sink_id() != id);
        sinks.push(sink);
    }

    /// Removes a market-data listener.
    pub fn unsubscribe(&self, sink_id: u64) {
        self.sinks.lock().retain(|s| s.sink_id() != sink_id);
    }

    /// Offers an update to every listener, dropping the ones that are gone.
    pub fn publish(&self, update: &Arc<MarketUpdate>) {
        let sinks: Vec<Arc<dyn MarketSink>> = self.sinks.lock().clone();
        let mut dead = Vec::new();
        for s in &sinks {
            if !s.offer(update) {
                dead.push(s.sink_id());
            }
        }
        if !dead.is_empty() {
            self.sinks.lock().retain(|s| !dead.contains(&s.sink_id()));
        }
    }

    /// Accounts whose live orders watch this market.
    #[must_use]
    pub fn watchers(&self) -> Vec<Id> {
        self.watchers.lock().iter().copied().collect()
    }
}

/// The bar of the current minute, opened at the last close (or at `prev`, the price before
/// the change being recorded, when there is no bar yet).
fn current_bar(bars: &mut VecDeque<Bar>, prev: Decimal, now_us: i64) -> &mut Bar {
    let minute = now_us - now_us.rem_euclid(60_000_000);
    let fresh = bars.back().is_none_or(|b| b.timestamp_us != minute);
    if fresh {
        let open = bars.back().map_or(prev, |b| b.close);
        bars.push_back(Bar {
            timestamp_us: minute,
            open,
            high: open,
            low: open,
            close: open,
            up_volume: 0,
            down_volume: 0,
            up_ticks: 0,
            down_ticks: 0,
        });
        if bars.len() > MAX_BARS {
            bars.pop_front();
        }
    }
    // The branch above guarantees a bar.
    let idx = bars.len() - 1;
    &mut bars[idx]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn prices_snap_to_the_grid() {
        let m = Market::new(1, dec!(0.25), dec!(100.1), 0);
        assert_eq!(m.price(), dec!(100));
        m.set_price(dec!(100.38), 1);
        assert_eq!(m.price(), dec!(100.5));
        let m = Market::new(1, dec!(0.0078125), dec!(106.015625), 0);
        assert_eq!(m.price(), dec!(106.015625));
    }

    #[test]
    fn bars_roll_per_minute() {
        let m = Market::new(1, dec!(1), dec!(100), 0);
        m.set_price(dec!(101), 1_000_000);
        m.set_price(dec!(99), 2_000_000);
        m.set_price(dec!(105), 61_000_000);
        let bars = m.bars(None, 10);
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (bars[0].open, bars[0].high, bars[0].low, bars[0].close),
            (dec!(100), dec!(101), dec!(99), dec!(99))
        );
        assert_eq!((bars[1].open, bars[1].close), (dec!(99), dec!(105)));
        assert_eq!(m.bars(Some(60_000_000), 10).len(), 1);
    }
}
