//! Matching: each live order of a contract evaluated against the contract's price (market,
//! limit, stop, stop-limit, trailing), cascading through what the fills trigger, and orders
//! whose time in force has run out expired.

use super::*;

impl Op<'_> {
    /// Matches every live order of a contract against its current price, cascading through
    /// brackets, then moves auto-trailing and break-even stops.
    pub fn match_contract(&mut self, contract_index: usize) {
        let contract_id = self.ex.catalog.contracts[contract_index].id;
        // An order fills at most once per price event, so partial fills spread over events.
        let mut filled: Vec<Id> = Vec::new();
        for _ in 0..MAX_PASSES {
            let price = self.market_price(contract_index);
            let ids: Vec<Id> = self
                .st
                .live_ids
                .iter()
                .filter(|id| {
                    self.st.orders.get(id).is_some_and(|o| {
                        o.order.contract_id == contract_id
                            && o.live.as_ref().is_some_and(|l| l.active)
                    })
                })
                .copied()
                .collect();
            let mut any = false;
            for id in ids {
                if filled.contains(&id) {
                    continue;
                }
                match self.evaluate(id, price, contract_index) {
                    Trigger::Fill(qty, px) => {
                        filled.push(id);
                        self.fill(id, qty, px);
                        any = true;
                    }
                    Trigger::Reject(text) => {
                        self.reject_live(id, &text);
                        any = true;
                    }
                    Trigger::None => {}
                }
            }
            self.expire_immediate(contract_id);
            self.adjust_strategy_stops(contract_index, price);
            if !any {
                break;
            }
        }
    }

    /// The end of the trading day: every working `Day` order expires (execution report
    /// `Expired`, its suspended brackets canceled with it). Returns how many expired.
    pub fn expire_day_orders(&mut self) -> usize {
        let ids: Vec<Id> = self
            .st
            .live_ids
            .iter()
            .filter(|id| {
                self.st.orders.get(id).is_some_and(|o| {
                    o.live.as_ref().is_some_and(|l| l.active)
                        && o.version.time_in_force == Some(TimeInForce::Day)
                })
            })
            .copied()
            .collect();
        for &id in &ids {
            self.cancel_live(
                id,
                None,
                Some("Day order expired at the end of the trading day".into()),
                OrdStatus::Expired,
            );
        }
        ids.len()
    }

    /// Cancels what is left of IOC and FOK orders once they have had their chance.
    pub(super) fn expire_immediate(&mut self, contract_id: Id) {
        let ids: Vec<Id> = self
            .st
            .live_ids
            .iter()
            .filter(|id| {
                self.st.orders.get(id).is_some_and(|o| {
                    o.order.contract_id == contract_id
                        && o.live.as_ref().is_some_and(|l| l.active && l.rested)
                        && matches!(
                            o.version.time_in_force,
                            Some(TimeInForce::Ioc | TimeInForce::Fok)
                        )
                })
            })
            .copied()
            .collect();
        for id in ids {
            self.cancel_live(
                id,
                None,
                Some("IOC/FOK order expired".into()),
                OrdStatus::Expired,
            );
        }
    }

    pub(super) fn evaluate(
        &mut self,
        order_id: Id,
        price: Decimal,
        contract_index: usize,
    ) -> Trigger {
        let slip = Decimal::from(self.m.slippage_ticks) * self.tick(contract_index);
        let chunk = self.m.partial_fill_qty;
        let Some(rec) = self.st.orders.get_mut(&order_id) else {
            return Trigger::None;
        };
        let Some(live) = rec.live.as_mut() else {
            return Trigger::None;
        };
        let remaining = rec.version.order_qty.saturating_sub(rec.cum_qty);
        if remaining == 0 {
            return Trigger::None;
        }
        let qty = chunk.map_or(remaining, |c| c.clamp(1, remaining));
        let action = rec.order.action;
        let dir = Decimal::from(action.sign());
        let first = !live.rested;
        live.rested = true;
        let market_px = price + dir * slip;
        // A limit marketable on arrival fills at the market (price improvement); a resting
        // limit that the market trades through fills at its own price.
        let limit_fill = |limit: Decimal, first: bool| -> Option<Decimal> {
            let crosses = (limit - price) * dir >= Decimal::ZERO;
            crosses.then_some(if first { price } else { limit })
        };
        let stop_hit = |stop: Decimal| (price - stop) * dir >= Decimal::ZERO;
        match rec.version.order_type {
            OrderType::Market => Trigger::Fill(qty, market_px),
            OrderType::Limit => match rec.version.price.and_then(|l| limit_fill(l, first)) {
                Some(px) => Trigger::Fill(qty, px),
                None => Trigger::None,
            },
            OrderType::Stop => {
                let Some(stop) = rec.version.stop_price else {
                    return Trigger::None;
                };
                if stop_hit(stop) {
                    if first && rec.cum_qty == 0 {
                        return Trigger::Reject(wrong_side(action, stop, price));
                    }
                    Trigger::Fill(qty, market_px)
                } else {
                    Trigger::None
                }
            }
            OrderType::StopLimit => {
                let (Some(stop), Some(limit)) = (rec.version.stop_price, rec.version.price) else {
                    return Trigger::None;
                };
                if !live.triggered {
                    if !stop_hit(stop) {
                        return Trigger::None;
                    }
                    if first && rec.cum_qty == 0 {
                        return Trigger::Reject(wrong_side(action, stop, price));
                    }
                    live.triggered = true;
                    // Once triggered it is a new limit order: marketable → market price.
                    return match limit_fill(limit, true) {
                        Some(px) => Trigger::Fill(qty, px),
                        None => Trigger::None,
                    };
                }
                match limit_fill(limit, false) {
                    Some(px) => Trigger::Fill(qty, px),
                    None => Trigger::None,
                }
            }
            OrderType::TrailingStop => {
                let Some(stop) = rec.version.stop_price else {
                    return Trigger::None;
                };
                if stop_hit(stop) {
                    if first && rec.cum_qty == 0 {
                        return Trigger::Reject(wrong_side(action, stop, price));
                    }
                    return Trigger::Fill(qty, market_px);
                }
                // A sell stop trails below the best price, a buy stop above.
                if let Some(d) = live.trail_distance {
                    let candidate = price + dir * d;
                    if (stop - candidate) * dir > Decimal::ZERO {
                        rec.version.stop_price = Some(candidate);
                    }
                }
                Trigger::None
            }
            _ => Trigger::None,
        }
    }

    pub(super) fn init_trail(&mut self, order_id: Id) {
        let Some(rec) = self.st.orders.get(&order_id) else {
            return;
        };
        let ci = self.contract_index(rec.order.contract_id);
        let price = self.market_price(ci);
        let dir = Decimal::from(rec.order.action.sign());
        let distance = match (rec.version.peg_difference, rec.version.stop_price) {
            (Some(p), _) => p.abs(),
            (None, Some(s)) => (price - s).abs(),
            (None, None) => Decimal::ZERO,
        };
        // A buy stop sits above the market, a sell stop below.
        let stop = rec.version.stop_price.unwrap_or(price + dir * distance);
        if let Some(r) = self.st.orders.get_mut(&order_id) {
            if let Some(l) = r.live.as_mut() {
                l.trail_distance = Some(distance);
            }
            r.version.stop_price = Some(stop);
        }
    }
}
