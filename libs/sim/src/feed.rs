//! Price sources per contract: a fixed price, a scripted path, or a seeded random walk. Each
//! moving source is a task; setting a price by hand stops the contract's task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use crate::core::Exchange;

/// Where a contract's price comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// One price until changed.
    Fixed(Decimal),
    /// These prices one after the other, `interval` apart (then again if `repeat`).
    Path {
        /// Prices.
        prices: Vec<Decimal>,
        /// Time between steps.
        interval: Duration,
        /// Start over at the end.
        repeat: bool,
    },
    /// A random walk: every `interval`, up to `max_step_ticks` ticks up or down.
    RandomWalk {
        /// Seed (the same seed gives the same path).
        seed: u64,
        /// Time between steps.
        interval: Duration,
        /// Largest step in ticks.
        max_step_ticks: u32,
    },
}

/// A source for one symbol (a contract name or a root, which means all its listed months).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceFeed {
    /// Contract name or root.
    pub symbol: String,
    /// Source.
    pub source: PriceSource,
}

/// The running feeds.
#[derive(Debug, Default)]
pub struct Feeds {
    tasks: Mutex<HashMap<usize, CancellationToken>>,
}

impl Feeds {
    /// Stops the feed of a contract, if any.
    pub fn stop(&self, contract_index: usize) {
        if let Some(t) = self.tasks.lock().remove(&contract_index) {
            t.cancel();
        }
    }

    /// Stops every feed.
    pub fn stop_all(&self) {
        for (_, t) in self.tasks.lock().drain() {
            t.cancel();
        }
    }

    /// Applies a source to a contract (replacing its feed).
    pub fn apply(
        &self,
        ex: &Arc<Exchange>,
        contract_index: usize,
        source: &PriceSource,
        parent: &CancellationToken,
    ) {
        self.stop(contract_index);
        match source {
            PriceSource::Fixed(p) => {
                ex.set_price(contract_index, *p);
            }
            PriceSource::Path {
                prices,
                interval,
                repeat,
            } => {
                let token = parent.child_token();
                self.tasks.lock().insert(contract_index, token.clone());
                let ex = ex.clone();
                let prices = prices.clone();
                let interval = *interval;
                let repeat = *repeat;
                tokio::spawn(async move {
                    loop {
                        for p in &prices {
                            ex.set_price(contract_index, *p);
                            tokio::select! {
                                () = tokio::time::sleep(interval) => {}
                                () = token.cancelled() => return,
                            }
                        }
                        if !repeat {
                            return;
                        }
                    }
                });
            }
            PriceSource::RandomWalk {
                seed,
                interval,
                max_step_ticks,
            } => {
                let token = parent.child_token();
                self.tasks.lock().insert(contract_index, token.clone());
                let ex = ex.clone();
                let interval = *interval;
                let max = i64::from((*max_step_ticks).max(1));
                let mut rng = StdRng::seed_from_u64(*seed);
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(interval) => {}
                            () = token.cancelled() => return,
                        }
                        let market = ex.market(contract_index);
                        let tick = market.tick_size;
                        let step = rng.random_range(-max..=max);
                        let next = (market.price() + Decimal::from(step) * tick).max(tick);
                        ex.set_price(contract_index, next);
                    }
                });
            }
        }
    }
}
