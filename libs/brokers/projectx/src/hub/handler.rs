//! Joins what the user hub pushes and what the REST poll reads into one stream of neutral
//! events, each change once: fills are kept by id per account for the trading day (a fill
//! seen live is not delivered again by a poll, and the other way round), orders and positions
//! are compared with the last state delivered, and fills get the `customTag` of their order.
//! It also notes the positions that shrank, for the exit guard.
//!
//! **Session boundaries.** At each CME trading day's start (17:00 America/Chicago) the
//! dispatcher forgets what only past sessions needed ([`Dispatcher::roll_session`]): the fill
//! ids of the day that ended (the poll reads trades from the new day's start only), and finished
//! orders last heard of before yesterday with their custom tags. Working orders are kept
//! whatever their age, so their later fills still carry their tag.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::common::models::{HalfTrade, OrderModel, PositionModel, TradingAccount};
use jt_broker::clock::SessionMemory;
use jt_broker::events::{BrokerEvent, EventEnvelope, EventOrigin};
use jt_broker::model::{AccountId, ContractId};

use super::messages::{self, GatewayEvent};

/// What the stream last said about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderSeen {
    status: i32,
    size: i64,
    fill_volume: i64,
    limit: Option<Decimal>,
    stop: Option<Decimal>,
}

impl OrderSeen {
    fn of(o: &OrderModel) -> Self {
        Self {
            status: o.status,
            size: o.size,
            fill_volume: o.fill_volume,
            limit: o.limit_price,
            stop: o.stop_price,
        }
    }
}

/// What one REST poll read of one account.
#[derive(Debug, Clone, Copy)]
pub struct Polled<'a> {
    /// Open positions.
    pub positions: &'a [PositionModel],
    /// Open orders.
    pub open_orders: &'a [OrderModel],
    /// Orders of the trading day (closed ones included).
    pub recent_orders: &'a [OrderModel],
    /// Trades of the trading day.
    pub trades: &'a [HalfTrade],
    /// The account's balance, when read.
    pub balance: Option<&'a TradingAccount>,
}

/// A position that shrank or went flat: the exit guard checks its exit orders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shrunk {
    /// Account.
    pub account: i64,
    /// Contract id.
    pub contract: String,
}

/// The state behind the stream of one login.
#[derive(Debug, Default)]
pub struct Dispatcher {
    /// The session, and when each remembered order was last heard of.
    memory: SessionMemory,
    fills: HashSet<(i64, i64)>,
    tags: HashMap<i64, Option<String>>,
    orders: HashMap<i64, OrderSeen>,
    positions: HashMap<(i64, String), i64>,
    balances: HashMap<i64, Decimal>,
    names: HashMap<String, String>,
}

fn live(origin: EventOrigin, event: BrokerEvent) -> EventEnvelope {
    EventEnvelope::now(origin, event)
}

impl Dispatcher {
    /// A dispatcher with no history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what only past sessions needed once `now` is past the next trading day's start
    /// (see the module's docs); one comparison otherwise, so it runs on every message. Returns
    /// whether a new session began.
    pub fn roll_session(&mut self, now: DateTime<Utc>) -> bool {
        let finished = self
            .orders
            .iter()
            .filter(|(_, seen)| !crate::common::enums::status(seen.status).is_open())
            .map(|(id, _)| *id);
        let Some(forgotten) = self.memory.roll(now, finished, "projectx") else {
            return false;
        };
        self.fills.clear();
        for id in &forgotten {
            self.orders.remove(id);
            self.tags.remove(id);
        }
        true
    }

    /// Orders remembered (working ones, and finished ones of this and the previous session).
    #[must_use]
    pub fn orders_remembered(&self) -> usize {
        self.orders.len()
    }

    fn order(&mut self, o: &OrderModel, origin: EventOrigin) -> Option<EventEnvelope> {
        self.memory.heard_of(o.id);
        self.tags.insert(o.id, o.custom_tag.clone());
        let seen = OrderSeen::of(o);
        if self.orders.get(&o.id) == Some(&seen) {
            return None;
        }
        self.orders.insert(o.id, seen);
        messages::order_event(o, self.names.get(&o.contract_id).cloned()).map(|e| live(origin, e))
    }

    fn position(
        &mut self,
        p: &PositionModel,
        origin: EventOrigin,
        shrunk: &mut Vec<Shrunk>,
    ) -> Option<EventEnvelope> {
        if let Some(name) = &p.contract_display_name {
            self.names.insert(p.contract_id.clone(), name.clone());
        }
        let report = match messages::position_report(p, self.names.get(&p.contract_id).cloned()) {
            Ok(r) => r,
            Err(e) => {
                return Some(live(
                    EventOrigin::Adapter,
                    BrokerEvent::Resync {
                        reason: format!("a position could not be read: {e}"),
                    },
                ));
            }
        };
        let key = (p.account_id, p.contract_id.clone());
        let before = self.positions.insert(key, report.net_qty);
        if before == Some(report.net_qty) && origin != EventOrigin::Live {
            return None;
        }
        if before.is_some_and(|b| {
            report.net_qty.abs() < b.abs() || report.net_qty.signum() != b.signum()
        }) {
            shrunk.push(Shrunk {
                account: p.account_id,
                contract: p.contract_id.clone(),
            });
        }
        Some(live(origin, BrokerEvent::Position(report)))
    }

    fn trade(&mut self, t: &HalfTrade, origin: EventOrigin) -> Option<EventEnvelope> {
        if !self.fills.insert((t.account_id, t.id)) {
            metrics::counter!("jt_broker_replayed_fills_dropped_total", "broker" => "projectx", "reason" => "seen")
                .increment(1);
            return None;
        }
        let tag = self.tags.get(&t.order_id).cloned().flatten();
        messages::fill_report(t, self.names.get(&t.contract_id).cloned(), tag)
            .map(|f| live(origin, BrokerEvent::Fill(f)))
    }

    fn account(&mut self, a: &TradingAccount, origin: EventOrigin) -> Option<EventEnvelope> {
        if self.balances.insert(a.id, a.balance) == Some(a.balance) {
            return None;
        }
        Some(live(
            origin,
            BrokerEvent::CashBalance(messages::cash_report(a)),
        ))
    }

    /// A hub event: its neutral events (none when nothing changed) and shrunk positions.
    pub fn on_hub(&mut self, event: &GatewayEvent, shrunk: &mut Vec<Shrunk>) -> Vec<EventEnvelope> {
        self.roll_session(Utc::now());
        let origin = EventOrigin::Live;
        let e = match event {
            GatewayEvent::Order(_, o) => {
                metrics::counter!("jt_broker_events_total", "broker" => "projectx", "entity" => "order").increment(1);
                self.order(o, origin)
            }
            GatewayEvent::Position(_, p) => {
                metrics::counter!("jt_broker_events_total", "broker" => "projectx", "entity" => "position").increment(1);
                self.position(p, origin, shrunk)
            }
            GatewayEvent::Trade(_, t) => {
                metrics::counter!("jt_broker_events_total", "broker" => "projectx", "entity" => "trade").increment(1);
                self.trade(t, origin)
            }
            GatewayEvent::Account(_, a) => {
                metrics::counter!("jt_broker_events_total", "broker" => "projectx", "entity" => "account").increment(1);
                self.account(a, origin)
            }
            GatewayEvent::Logout => None,
        };
        e.into_iter().collect()
    }

    /// What a REST poll of one account read: the changes since the last state delivered
    /// (live or polled), as `Snapshot` events. Positions absent from the poll are flat.
    pub fn on_poll(
        &mut self,
        account: &AccountId,
        polled: &Polled<'_>,
        shrunk: &mut Vec<Shrunk>,
    ) -> Vec<EventEnvelope> {
        let Polled {
            positions,
            open_orders,
            recent_orders,
            trades,
            balance,
        } = *polled;
        self.roll_session(Utc::now());
        let origin = EventOrigin::Snapshot;
        let id: i64 = account.as_str().parse().unwrap_or_default();
        let mut out = Vec::new();
        // Orders first (fills look their tags up), then fills, positions, cash.
        let open_ids: HashSet<i64> = open_orders.iter().map(|o| o.id).collect();
        for o in recent_orders
            .iter()
            .filter(|o| !open_ids.contains(&o.id))
            .chain(open_orders)
        {
            out.extend(self.order(o, origin));
        }
        let mut trades: Vec<&HalfTrade> = trades.iter().collect();
        trades.sort_by_key(|t| t.id);
        for t in trades {
            out.extend(self.trade(t, origin));
        }
        let open: HashSet<&str> = positions.iter().map(|p| p.contract_id.as_str()).collect();
        for p in positions {
            out.extend(self.position(p, origin, shrunk));
        }
        let gone: Vec<String> = self
            .positions
            .iter()
            .filter(|((a, c), net)| *a == id && **net != 0 && !open.contains(c.as_str()))
            .map(|((_, c), _)| c.clone())
            .collect();
        for contract in gone {
            self.positions.insert((id, contract.clone()), 0);
            shrunk.push(Shrunk {
                account: id,
                contract: contract.clone(),
            });
            out.push(live(
                origin,
                BrokerEvent::Position(jt_broker::model::PositionReport {
                    account: account.clone(),
                    symbol: self.names.get(&contract).cloned(),
                    contract: ContractId::from(contract),
                    net_qty: 0,
                    avg_price: None,
                    timestamp: None,
                }),
            ));
        }
        if let Some(a) = balance {
            out.extend(self.account(a, origin));
        }
        out
    }

    /// Remembers a contract's name.
    pub fn learn_name(&mut self, contract: &str, name: &str) {
        self.names.insert(contract.to_string(), name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn empty() -> Polled<'static> {
        Polled {
            positions: &[],
            open_orders: &[],
            recent_orders: &[],
            trades: &[],
            balance: None,
        }
    }

    fn trade(id: i64) -> HalfTrade {
        HalfTrade {
            id,
            account_id: 7,
            contract_id: "C".into(),
            creation_timestamp: Some(chrono::Utc::now()),
            price: dec!(100),
            profit_and_loss: None,
            fees: None,
            side: 0,
            size: 1,
            voided: false,
            order_id: 3,
        }
    }

    fn position(size: i64) -> PositionModel {
        PositionModel {
            id: 1,
            account_id: 7,
            contract_id: "C".into(),
            contract_display_name: None,
            creation_timestamp: None,
            position_type: 1,
            size,
            average_price: Some(dec!(100)),
        }
    }

    fn order(id: i64, status: i32, tag: &str) -> OrderModel {
        OrderModel {
            id,
            account_id: 7,
            contract_id: "C".into(),
            symbol_id: None,
            creation_timestamp: Some(chrono::Utc::now()),
            update_timestamp: None,
            status,
            order_type: 2,
            side: 0,
            size: 1,
            limit_price: None,
            stop_price: None,
            fill_volume: 0,
            filled_price: None,
            custom_tag: Some(tag.into()),
        }
    }

    #[test]
    fn finished_orders_and_fill_ids_of_past_sessions_are_forgotten_at_the_trading_day_start() {
        let mut d = Dispatcher::new();
        let mut shrunk = Vec::new();
        let working = order(3, crate::common::enums::order_status::OPEN, "jt-working");
        let filled = order(4, crate::common::enums::order_status::FILLED, "jt-filled");
        d.on_hub(&GatewayEvent::Order(0, working), &mut shrunk);
        d.on_hub(&GatewayEvent::Order(0, filled), &mut shrunk);
        assert_eq!(
            d.on_hub(&GatewayEvent::Trade(0, trade(5)), &mut shrunk)
                .len(),
            1
        );
        assert_eq!(d.orders_remembered(), 2);

        // The next trading day: the day's fill ids go (the poll reads from the new day's start
        // only); yesterday's finished order is still known.
        let now = chrono::Utc::now();
        let next = jt_domain::session::next_session_start(now) + chrono::Duration::minutes(1);
        assert!(d.roll_session(next));
        assert!(!d.roll_session(next), "once per session");
        assert!(d.fills.is_empty());
        assert_eq!(d.orders_remembered(), 2);

        // The day after: the finished order and its tag are forgotten, the working one kept;
        // its fills still carry its tag.
        let after = jt_domain::session::next_session_start(next) + chrono::Duration::minutes(1);
        assert!(d.roll_session(after));
        assert_eq!(d.orders_remembered(), 1);
        assert_eq!(d.tags.len(), 1);
        let out = d.on_hub(&GatewayEvent::Trade(0, trade(6)), &mut shrunk);
        let BrokerEvent::Fill(f) = &out[0].event else {
            panic!("{out:?}")
        };
        assert_eq!(f.client_order_id.as_deref(), Some("jt-working"));
    }

    #[test]
    fn a_fill_seen_live_is_not_delivered_again_by_a_poll() {
        let mut d = Dispatcher::new();
        let mut shrunk = Vec::new();
        let live = d.on_hub(&GatewayEvent::Trade(0, trade(5)), &mut shrunk);
        assert_eq!(live.len(), 1);
        let trades = [trade(5), trade(6)];
        let polled = d.on_poll(
            &"7".into(),
            &Polled {
                trades: &trades,
                ..empty()
            },
            &mut shrunk,
        );
        let fills: Vec<_> = polled
            .iter()
            .filter_map(|e| match &e.event {
                BrokerEvent::Fill(f) => Some(f.id.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(fills, vec!["6"]);
        assert_eq!(polled[0].origin, EventOrigin::Snapshot);
    }

    #[test]
    fn shrinking_and_vanished_positions_are_noted() {
        let mut d = Dispatcher::new();
        let mut shrunk = Vec::new();
        d.on_hub(&GatewayEvent::Position(1, position(15)), &mut shrunk);
        assert!(shrunk.is_empty());
        d.on_hub(&GatewayEvent::Position(1, position(10)), &mut shrunk);
        assert_eq!(shrunk.len(), 1);
        let out = d.on_poll(&"7".into(), &empty(), &mut shrunk);
        assert_eq!(shrunk.len(), 2, "gone from the poll: flat");
        assert!(matches!(&out[0].event, BrokerEvent::Position(p) if p.net_qty == 0));
        // The same state polled again says nothing.
        assert!(d.on_poll(&"7".into(), &empty(), &mut shrunk).is_empty());
    }
}
