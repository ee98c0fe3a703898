//! Turns what one socket receives into broker-neutral events: joins the entities Tradovate
//! sends separately (an order's price lives on its version, a fill's account on its order),
//! publishes the sync snapshot's state, and filters replayed fills (DOMAIN §8: fill ids kept
//! per account for the trading day; fills older than the connection are not delivered).
//!
//! **Session boundaries.** What a login's event side learns lives as long as the process holds
//! the login, across reconnects. At each CME trading day's start (17:00 America/Chicago) it
//! forgets what only past sessions needed ([`Dispatcher::roll_session`]): fill ids of days
//! before yesterday, and finished orders (filled, cancelled, rejected, expired) last seen before
//! yesterday, with their versions, client order ids and rejection reasons. Working orders are
//! kept whatever their age (a resting GTC order's later fills still need their owner and client
//! id), so a login's memory is about two sessions of orders, not everything since the start.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::common::entities as wire;
use crate::common::enums;
use jt_broker::clock::{SessionMemory, trading_day};
use jt_broker::events::{BrokerEvent, EventEnvelope, EventOrigin};
use jt_broker::model::{AccountId, BrokerKind};

use super::messages::{Entity, PropsEvent, PropsEventType, SyncSnapshot};
use super::parse;

/// Why a fill was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its id was already delivered (or seen in a snapshot) for that account and day.
    Duplicate,
    /// It happened before this connection started (a session-end replay).
    OlderThanConnection,
    /// Its account is not served by this socket.
    NotServed,
}

impl Dropped {
    fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::OlderThanConnection => "older_than_connection",
            Self::NotServed => "not_served",
        }
    }
}

/// Fill ids seen, per account and trading day.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    seen: HashMap<(i64, NaiveDate), HashSet<i64>>,
}

impl ReplayFilter {
    /// Records `fill` as seen; `false` when it already was.
    pub fn insert(&mut self, account: i64, day: NaiveDate, fill: i64) -> bool {
        self.seen.entry((account, day)).or_default().insert(fill)
    }

    /// Forgets trading days before `today`'s previous one.
    pub fn prune(&mut self, today: NaiveDate) {
        let keep_from = today.pred_opt().unwrap_or(today);
        self.seen.retain(|(_, day), _| *day >= keep_from);
    }

    /// Ids remembered (for tests and status).
    #[must_use]
    pub fn len(&self) -> usize {
        self.seen.values().map(HashSet::len).sum()
    }

    /// Whether nothing is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a socket knows across its reconnects.
#[derive(Debug)]
pub struct Dispatcher {
    kind: BrokerKind,
    orders: HashMap<i64, wire::Order>,
    versions: HashMap<i64, wire::OrderVersion>,
    cl_ord_ids: HashMap<i64, String>,
    contract_names: HashMap<i64, String>,
    reject_reasons: HashMap<i64, String>,
    replay: ReplayFilter,
    served: HashSet<i64>,
    connection_start: DateTime<Utc>,
    skew: chrono::Duration,
    /// The session, and when each remembered order was last heard of.
    memory: SessionMemory,
}

fn day_of(f: &wire::Fill) -> NaiveDate {
    f.trade_date
        .and_then(wire::TradeDate::to_date)
        .unwrap_or_else(|| trading_day(f.timestamp))
}

impl Dispatcher {
    /// A dispatcher that accepts fills up to `skew` older than a connection's start.
    #[must_use]
    pub fn new(kind: BrokerKind, skew: std::time::Duration) -> Self {
        let now = Utc::now();
        Self {
            kind,
            orders: HashMap::new(),
            versions: HashMap::new(),
            cl_ord_ids: HashMap::new(),
            contract_names: HashMap::new(),
            reject_reasons: HashMap::new(),
            replay: ReplayFilter::default(),
            served: HashSet::new(),
            connection_start: now,
            skew: chrono::Duration::from_std(skew).unwrap_or_default(),
            memory: SessionMemory::new(now),
        }
    }

    /// A new connection serving `accounts` started at `start`.
    pub fn begin_connection(&mut self, accounts: HashSet<i64>, start: DateTime<Utc>) {
        self.served = accounts;
        self.connection_start = start;
        self.roll_session(start);
    }

    /// Forgets what only past sessions needed once `now` is past the next trading day's start
    /// (see the module's docs); cheap otherwise (one comparison), so it runs on every message.
    /// Returns whether a new session began.
    pub fn roll_session(&mut self, now: DateTime<Utc>) -> bool {
        let finished = self
            .orders
            .iter()
            .filter(|(_, o)| !enums::order_status(&o.ord_status).is_open())
            .map(|(id, _)| *id);
        let Some(forgotten) = self.memory.roll(now, finished, self.kind.as_str()) else {
            return false;
        };
        self.replay.prune(self.memory.session());
        for id in &forgotten {
            self.orders.remove(id);
            self.versions.remove(id);
            self.cl_ord_ids.remove(id);
            self.reject_reasons.remove(id);
        }
        true
    }

    /// Orders remembered (working ones, and finished ones of this and the previous session).
    #[must_use]
    pub fn orders_remembered(&self) -> usize {
        self.orders.len()
    }

    fn remember_order(&mut self, order: wire::Order) {
        self.memory.heard_of(order.id);
        self.orders.insert(order.id, order);
    }

    /// Contract names learnt from the socket.
    #[must_use]
    pub fn contract_names(&self) -> &HashMap<i64, String> {
        &self.contract_names
    }

    /// The replay filter.
    #[must_use]
    pub fn replay(&self) -> &ReplayFilter {
        &self.replay
    }

    fn order_event(&self, order_id: i64) -> Option<BrokerEvent> {
        let o = self.orders.get(&order_id)?;
        let mut report = parse::order(
            o,
            self.versions.get(&order_id),
            o.contract_id
                .and_then(|c| self.contract_names.get(&c).cloned()),
            self.cl_ord_ids.get(&order_id).cloned(),
        )?;
        report.reject_reason = self.reject_reasons.get(&order_id).cloned();
        Some(BrokerEvent::Order(report))
    }

    /// The contracts `props` names by id only, whose names this connection has not learned
    /// (a contract first traded after the sync): resolved before the events are built, so
    /// positions, orders and fills carry the contract's name (`MNQZ6`) — the name the store
    /// keys positions by and quotes are published under.
    #[must_use]
    pub fn unknown_contracts(&self, props: &PropsEvent) -> Vec<i64> {
        let mut ids: Vec<i64> = props
            .entities
            .iter()
            .filter_map(|e| match e {
                Entity::Position(p) => Some(p.contract_id),
                Entity::Fill(f) => Some(f.contract_id),
                Entity::Order(o) => o.contract_id,
                _ => None,
            })
            .filter(|id| !self.contract_names.contains_key(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Learns contract names resolved elsewhere (REST `contract/item`).
    pub fn learn_contract_names(&mut self, names: impl IntoIterator<Item = (i64, String)>) {
        self.contract_names.extend(names);
    }

    fn learn(&mut self, entity: &Entity) {
        match entity {
            Entity::Order(o) => self.remember_order(o.clone()),
            Entity::OrderVersion(v) => {
                let newer = self
                    .versions
                    .get(&v.order_id)
                    .is_none_or(|cur| v.id >= cur.id);
                if newer {
                    self.versions.insert(v.order_id, v.clone());
                }
            }
            Entity::Command(c) => {
                if let Some(id) = c.cl_ord_id.as_ref().filter(|s| !s.is_empty())
                    && c.command_type.as_deref().is_none_or(|t| t == "New")
                {
                    self.cl_ord_ids
                        .entry(c.order_id)
                        .or_insert_with(|| id.clone());
                }
            }
            Entity::Contract(c) => {
                self.contract_names.insert(c.id, c.name.clone());
            }
            Entity::ExecutionReport(r) if r.exec_type == "Rejected" => {
                let why = r
                    .text
                    .clone()
                    .or_else(|| r.reject_reason.clone())
                    .unwrap_or_else(|| "rejected".into());
                self.reject_reasons.insert(r.order_id, why);
            }
            _ => {}
        }
    }

    /// Takes in a sync snapshot: learns its entities, remembers its fills as seen (they are
    /// history, not news), and returns the state to publish (positions, working orders, cash
    /// balances of the served accounts).
    pub fn on_sync(&mut self, snap: &SyncSnapshot) -> Vec<EventEnvelope> {
        for c in &snap.contracts {
            self.contract_names.insert(c.id, c.name.clone());
        }
        for o in &snap.orders {
            self.remember_order(o.clone());
        }
        for v in &snap.order_versions {
            self.learn(&Entity::OrderVersion(v.clone()));
        }
        for c in &snap.commands {
            self.learn(&Entity::Command(c.clone()));
        }
        for f in &snap.fills {
            if let Some(acct) = self.orders.get(&f.order_id).map(|o| o.account_id) {
                self.replay.insert(acct, day_of(f), f.id);
            }
        }
        let mut out = Vec::new();
        for p in snap
            .positions
            .iter()
            .filter(|p| self.served.contains(&p.account_id))
        {
            out.push(EventEnvelope::now(
                EventOrigin::Snapshot,
                BrokerEvent::Position(parse::position(
                    p,
                    self.contract_names.get(&p.contract_id).cloned(),
                )),
            ));
        }
        for o in snap
            .orders
            .iter()
            .filter(|o| self.served.contains(&o.account_id))
            .filter(|o| enums::order_status(&o.ord_status).is_open())
        {
            if let Some(e) = self.order_event(o.id) {
                out.push(EventEnvelope::now(EventOrigin::Snapshot, e));
            }
        }
        for c in snap
            .cash_balances
            .iter()
            .filter(|c| self.served.contains(&c.account_id))
        {
            out.push(EventEnvelope::now(
                EventOrigin::Snapshot,
                BrokerEvent::CashBalance(parse::cash_balance(c)),
            ));
        }
        out
    }

    /// Takes in a `props` event; returns the events to publish and the fills whose order is
    /// unknown (the caller looks their owner up and calls [`Dispatcher::on_fill`]).
    pub fn on_props(&mut self, props: &PropsEvent) -> (Vec<EventEnvelope>, Vec<wire::Fill>) {
        self.roll_session(Utc::now());
        let mut out = Vec::new();
        let mut unattributed = Vec::new();
        for entity in &props.entities {
            metrics::counter!("jt_broker_events_total", "broker" => self.kind.as_str(), "entity" => entity_label(entity))
                .increment(1);
            self.learn(entity);
            match entity {
                Entity::Position(p) if self.served.contains(&p.account_id) => {
                    let mut report =
                        parse::position(p, self.contract_names.get(&p.contract_id).cloned());
                    if props.event_type == PropsEventType::Deleted {
                        report.net_qty = 0;
                    }
                    out.push(EventEnvelope::now(
                        EventOrigin::Live,
                        BrokerEvent::Position(report),
                    ));
                }
                Entity::Order(o) if self.served.contains(&o.account_id) => {
                    if let Some(e) = self.order_event(o.id) {
                        out.push(EventEnvelope::now(EventOrigin::Live, e));
                    }
                }
                Entity::OrderVersion(v) => {
                    let served = self
                        .orders
                        .get(&v.order_id)
                        .is_some_and(|o| self.served.contains(&o.account_id));
                    if served && let Some(e) = self.order_event(v.order_id) {
                        out.push(EventEnvelope::now(EventOrigin::Live, e));
                    }
                }
                Entity::CashBalance(c) if self.served.contains(&c.account_id) => {
                    out.push(EventEnvelope::now(
                        EventOrigin::Live,
                        BrokerEvent::CashBalance(parse::cash_balance(c)),
                    ));
                }
                Entity::Fill(f) if props.event_type != PropsEventType::Deleted => {
                    match self.orders.get(&f.order_id).map(|o| o.account_id) {
                        Some(account) => out.extend(self.on_fill(f, account)),
                        None => unattributed.push(f.clone()),
                    }
                }
                _ => {}
            }
        }
        (out, unattributed)
    }

    /// Records the owner of an order learnt elsewhere (REST), so later fills are attributed.
    pub fn learn_order(&mut self, order: wire::Order) {
        self.remember_order(order);
    }

    /// Delivers a fill of `account` unless it is a replay; see [`Dropped`].
    pub fn on_fill(&mut self, f: &wire::Fill, account: i64) -> Option<EventEnvelope> {
        match self.admit_fill(f, account) {
            Ok(()) => {
                let report = parse::fill(
                    f,
                    AccountId::from(account),
                    self.contract_names.get(&f.contract_id).cloned(),
                    self.cl_ord_ids.get(&f.order_id).cloned(),
                )?;
                Some(EventEnvelope::now(
                    EventOrigin::Live,
                    BrokerEvent::Fill(report),
                ))
            }
            Err(why) => {
                metrics::counter!("jt_broker_replayed_fills_dropped_total", "broker" => self.kind.as_str(), "reason" => why.as_str())
                    .increment(1);
                tracing::debug!(
                    fill = f.id,
                    account,
                    reason = why.as_str(),
                    "fill not delivered"
                );
                None
            }
        }
    }

    fn admit_fill(&mut self, f: &wire::Fill, account: i64) -> Result<(), Dropped> {
        if !self.served.contains(&account) {
            return Err(Dropped::NotServed);
        }
        let first_time = self.replay.insert(account, day_of(f), f.id);
        if !first_time {
            return Err(Dropped::Duplicate);
        }
        if f.timestamp < self.connection_start - self.skew {
            return Err(Dropped::OlderThanConnection);
        }
        Ok(())
    }
}

fn entity_label(e: &Entity) -> &'static str {
    match e {
        Entity::Account(_) => "account",
        Entity::Position(_) => "position",
        Entity::Order(_) => "order",
        Entity::OrderVersion(_) => "order_version",
        Entity::Command(_) => "command",
        Entity::Fill(_) => "fill",
        Entity::CashBalance(_) => "cash_balance",
        Entity::Contract(_) => "contract",
        Entity::ExecutionReport(_) => "execution_report",
        Entity::OrderStrategy(_) => "order_strategy",
        Entity::OrderStrategyLink(_) => "order_strategy_link",
        Entity::Other { .. } => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::messages::decode_props;
    use serde_json::value::RawValue;

    fn props(json: &str) -> PropsEvent {
        decode_props(&RawValue::from_string(json.to_string()).unwrap()).unwrap()
    }

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn dispatcher(start: &str) -> Dispatcher {
        let mut d = Dispatcher::new(BrokerKind::Tradovate, std::time::Duration::from_secs(2));
        d.begin_connection(HashSet::from([33]), ts(start));
        d
    }

    const ORDER: &str = r#"{"entityType":"order","eventType":"Created","entity":{"id":210,"accountId":33,"contractId":65543,"timestamp":"2025-12-08T15:30:00Z","action":"Buy","ordStatus":"Working","admin":false}}"#;
    const COMMAND: &str = r#"{"entityType":"command","eventType":"Created","entity":{"id":5,"orderId":210,"clOrdId":"jt-1","commandType":"New","commandStatus":"RiskPassed"}}"#;

    fn fill(id: i64, at: &str) -> String {
        format!(
            r#"{{"entityType":"fill","eventType":"Created","entity":{{"id":{id},"orderId":210,"contractId":65543,"timestamp":"{at}","action":"Buy","qty":1,"price":21500.25,"active":true}}}}"#
        )
    }

    #[test]
    fn fills_are_attributed_through_their_order_and_carry_the_client_id() {
        let mut d = dispatcher("2025-12-08T15:00:00Z");
        d.on_props(&props(ORDER));
        d.on_props(&props(COMMAND));
        let (events, unattributed) = d.on_props(&props(&fill(901, "2025-12-08T15:30:01Z")));
        assert!(unattributed.is_empty());
        let BrokerEvent::Fill(f) = &events[0].event else {
            panic!("{events:?}")
        };
        assert_eq!(f.account, AccountId::from(33));
        assert_eq!(f.client_order_id.as_deref(), Some("jt-1"));
    }

    #[test]
    fn a_replayed_fill_is_delivered_once() {
        let mut d = dispatcher("2025-12-08T15:00:00Z");
        d.on_props(&props(ORDER));
        let f = fill(901, "2025-12-08T15:30:01Z");
        assert_eq!(d.on_props(&props(&f)).0.len(), 1);
        // Same connection, replayed.
        assert_eq!(d.on_props(&props(&f)).0.len(), 0);
        // A new connection later the same day: the session-end replay is dropped twice over
        // (seen, and older than the connection).
        d.begin_connection(HashSet::from([33]), ts("2025-12-08T22:00:00Z"));
        assert_eq!(d.on_props(&props(&f)).0.len(), 0);
    }

    #[test]
    fn fills_older_than_the_connection_are_not_delivered() {
        let mut d = dispatcher("2025-12-08T16:00:00Z");
        d.on_props(&props(ORDER));
        assert!(
            d.on_props(&props(&fill(902, "2025-12-08T15:00:00Z")))
                .0
                .is_empty()
        );
        // Within the clock-skew allowance it is delivered.
        assert_eq!(
            d.on_props(&props(&fill(903, "2025-12-08T15:59:59Z")))
                .0
                .len(),
            1
        );
    }

    #[test]
    fn a_fill_of_an_unknown_order_is_handed_back() {
        let mut d = dispatcher("2025-12-08T15:00:00Z");
        let (events, unattributed) = d.on_props(&props(&fill(904, "2025-12-08T15:30:00Z")));
        assert!(events.is_empty());
        assert_eq!(unattributed.len(), 1);
        assert!(d.on_fill(&unattributed[0], 33).is_some());
        assert!(d.on_fill(&unattributed[0], 33).is_none());
        assert!(d.on_fill(&unattributed[0], 44).is_none(), "not served");
    }

    #[test]
    fn order_versions_complete_order_events() {
        let mut d = dispatcher("2025-12-08T15:00:00Z");
        d.on_props(&props(ORDER));
        let (events, _) = d.on_props(&props(r#"{"entityType":"orderVersion","eventType":"Created","entity":{"id":7,"orderId":210,"orderQty":2,"orderType":"Limit","price":21510.5}}"#));
        let BrokerEvent::Order(o) = &events[0].event else {
            panic!()
        };
        assert_eq!(o.qty, Some(2));
        assert_eq!(o.price, Some(rust_decimal_macros::dec!(21510.5)));
    }

    #[test]
    fn finished_orders_of_past_sessions_are_forgotten_at_the_trading_day_start_and_working_ones_kept()
     {
        let start = Utc::now();
        let mut d = Dispatcher::new(BrokerKind::Tradovate, std::time::Duration::from_secs(2));
        d.begin_connection(HashSet::from([33]), start);
        d.on_props(&props(ORDER));
        d.on_props(&props(COMMAND));
        d.on_props(&props(r#"{"entityType":"order","eventType":"Created","entity":{"id":211,"accountId":33,"contractId":65543,"timestamp":"2025-12-08T15:31:00Z","action":"Sell","ordStatus":"Filled","admin":false}}"#));
        d.on_props(&props(r#"{"entityType":"command","eventType":"Created","entity":{"id":6,"orderId":211,"clOrdId":"jt-2","commandType":"New","commandStatus":"RiskPassed"}}"#));
        d.on_props(&props(r#"{"entityType":"orderVersion","eventType":"Created","entity":{"id":8,"orderId":211,"orderQty":1,"orderType":"Market"}}"#));
        assert_eq!(d.orders_remembered(), 2);
        assert!(!d.roll_session(start), "no new session yet");

        // The next trading day: yesterday's finished order is still known (a session-end
        // replay of its fills is attributed without a look-up).
        let next = jt_domain::session::next_session_start(start) + chrono::Duration::minutes(1);
        assert!(d.roll_session(next));
        assert!(!d.roll_session(next), "once per session");
        assert_eq!(d.orders_remembered(), 2);

        // The day after: the finished order is forgotten with its client id and version; the
        // working one is kept and still attributes its fills.
        let after = jt_domain::session::next_session_start(next) + chrono::Duration::minutes(1);
        assert!(d.roll_session(after));
        assert_eq!(d.orders_remembered(), 1);
        assert_eq!(d.cl_ord_ids.len(), 1);
        assert_eq!(d.versions.len(), 0);
        let at = Utc::now().to_rfc3339();
        let (events, unattributed) = d.on_props(&props(&fill(905, &at)));
        assert!(unattributed.is_empty());
        let BrokerEvent::Fill(f) = &events[0].event else {
            panic!("{events:?}")
        };
        assert_eq!(f.client_order_id.as_deref(), Some("jt-1"));
        // A fill of the forgotten order is handed back for a look-up, not lost.
        let late = r#"{"entityType":"fill","eventType":"Created","entity":{"id":906,"orderId":211,"contractId":65543,"timestamp":"TS","action":"Sell","qty":1,"price":21500.25,"active":true}}"#
            .replace("TS", &at);
        let (events, unattributed) = d.on_props(&props(&late));
        assert!(events.is_empty());
        assert_eq!(unattributed.len(), 1);
    }

    #[test]
    fn the_replay_filter_forgets_old_days() {
        let mut r = ReplayFilter::default();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(r.insert(1, day("2025-12-05"), 1));
        assert!(r.insert(1, day("2025-12-07"), 2));
        assert!(r.insert(1, day("2025-12-08"), 3));
        r.prune(day("2025-12-08"));
        assert_eq!(r.len(), 2);
    }
}
