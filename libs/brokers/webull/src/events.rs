//! The login's event side, polled: Webull pushes order status over gRPC, which the platform
//! does not speak (a decision, docs/brokers.md "Webull"), so the events the other venues push
//! are derived here from REST reads, and the one-cancels-other guard ([`crate::oco`]) runs on
//! the same reads.
//!
//! Started by the first [`jt_broker::BrokerEvents::subscribe`] of a login (the connection
//! manager: broker access opens no event side anywhere else) and stopped when its last
//! subscriber is gone. Every `events.poll_interval` (2 s), per subscribed account:
//!
//! 1. `orders/list-open`, then `account/positions` (in that order: the guard's race rule);
//! 2. `orders/history` (all pages) when either answer changed since the last pass, on the first
//!    pass, or while an order the poller knew working is in neither list (a history that lags);
//! 3. the differences become events: an **order** whose status, quantities or prices changed;
//!    a **fill** for every increase of an order's filled quantity, its id
//!    `<Webull order id>-<filled quantity after it>`, its quantity the increase, its price the
//!    increase's share of the average fill price; a **position** per contract whose net or
//!    average changed (flat included); the **connection** `Connected` after the first pass that
//!    read everything, `Reconnecting` while reads fail;
//! 4. the guard's rules on the open orders and positions of step 1.
//!
//! The first pass of an account is its **baseline**: working orders and open positions are
//! delivered as `Snapshot` events and no fill is derived (what filled before the poller started
//! is older than the connection, as the sockets' replay filters treat it). A fill id therefore
//! names one increase only once: a re-poll sees no change; a restarted poller starts from what
//! is filled now and names the next increase by its new total, which no earlier poller could
//! have seen (the lease keeps two from polling one login at once). Fills between two holders
//! are not replayed, as on the other venues; positions' reconciliation covers them.
//!
//! Budget: two calls per account per interval, three (or more pages) when something changed:
//! 60–90 per account per minute at 2 s, from the login's 600.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Weak};

use chrono::Utc;
use jt_broker::events::{ConnectionState, EventHub, EventOrigin};
use jt_broker::{
    AccountId, BrokerError, BrokerEvent, ContractId, EventEnvelope, EventSubscription, FillId,
    FillReport, OrderId, PositionReport,
};
use parking_lot::Mutex;
use rust_decimal::Decimal;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::broker::Login;
use crate::common::convert::{self, contracts};
use crate::http::models::{WbOrder, WbPosition, WbStatus};
use crate::oco;

/// The polled event side of one login.
pub(crate) struct Poller {
    hub: Arc<EventHub>,
    inner: Mutex<Inner>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Poller")
            .field("accounts", &inner.wanted)
            .field("running", &inner.running)
            .field("state", &inner.state)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    wanted: BTreeSet<AccountId>,
    running: bool,
    /// The last connection state delivered.
    state: Option<ConnectionState>,
    accounts: HashMap<AccountId, Memory>,
}

/// What the poller saw of one account.
#[derive(Default)]
struct Memory {
    baselined: bool,
    /// Webull order id → its last delivered state.
    orders: HashMap<String, Seen>,
    /// Contract → (net, average) last delivered.
    positions: BTreeMap<String, (Decimal, Option<Decimal>)>,
    /// The last open orders and positions read, to tell whether the history must be read.
    print: Option<Print>,
    /// Client order id → when this poller first saw the exit order working (the guard's age).
    exits_seen: HashMap<String, Instant>,
}

type Print = (
    Vec<(String, WbStatus, Decimal, Decimal)>,
    Vec<(String, Decimal, Option<Decimal>)>,
);

fn print(open: &[WbOrder], positions: &[WbPosition]) -> Print {
    let mut o: Vec<_> = open
        .iter()
        .map(|o| (o.order_id.clone(), o.status, o.quantity, o.filled_quantity))
        .collect();
    o.sort_by(|a, b| a.0.cmp(&b.0));
    let mut p: Vec<_> = positions
        .iter()
        .map(|p| (p.symbol.clone(), p.net(), p.cost_price))
        .collect();
    p.sort();
    (o, p)
}

/// The state of an order that matters to its subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: WbStatus,
    quantity: Decimal,
    filled: Decimal,
    filled_price: Option<Decimal>,
    limit_price: Option<Decimal>,
    stop_price: Option<Decimal>,
}

impl Seen {
    fn of(o: &WbOrder) -> Self {
        Self {
            status: o.status,
            quantity: o.quantity,
            filled: o.filled_quantity,
            filled_price: o.filled_price,
            limit_price: o.limit_price,
            stop_price: o.stop_price,
        }
    }
}

impl Poller {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            hub: Arc::new(EventHub::new(capacity)),
            inner: Mutex::new(Inner::default()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The accounts polled now.
    pub(crate) fn accounts(&self) -> Vec<AccountId> {
        self.inner.lock().wanted.iter().cloned().collect()
    }
}

/// Subscribes to the events of `accounts` (each must be an account of the login) and has the
/// login's poller serve them, starting it when it does not run.
///
/// # Errors
/// `UnknownAccount` for an account the key pair does not list; the account list's errors.
pub(crate) async fn subscribe(
    login: &Arc<Login>,
    accounts: &[AccountId],
) -> Result<EventSubscription, BrokerError> {
    let listed: HashSet<String> = login
        .http
        .accounts()
        .await?
        .into_iter()
        .map(|a| a.account_id)
        .collect();
    if let Some(a) = accounts.iter().find(|a| !listed.contains(a.as_str())) {
        return Err(BrokerError::UnknownAccount {
            account: a.to_string(),
        });
    }
    let poller = &login.events;
    let subscription = poller
        .hub
        .subscribe(Some(accounts.iter().cloned().collect()));
    let start = {
        let mut inner = poller.inner.lock();
        inner.wanted.extend(accounts.iter().cloned());
        // A later subscriber learns the connection is up (the others hear it again: a state,
        // harmless to repeat).
        if let Some(state @ ConnectionState::Connected) = &inner.state {
            poller.hub.publish(Arc::new(EventEnvelope::now(
                EventOrigin::Adapter,
                BrokerEvent::Connection(state.clone()),
            )));
        }
        !std::mem::replace(&mut inner.running, true)
    };
    if start {
        tokio::spawn(run(Arc::downgrade(login)));
    } else {
        // New accounts get their baseline now rather than at the next interval.
        poller.wake.notify_one();
    }
    Ok(subscription)
}

fn envelope(origin: EventOrigin, event: BrokerEvent) -> Arc<EventEnvelope> {
    Arc::new(EventEnvelope::now(origin, event))
}

/// The poller's loop: one pass over every account, then the interval; ends with the login or
/// its last subscriber.
async fn run(login: Weak<Login>) {
    let mut attempt = 0u32;
    loop {
        let Some(l) = login.upgrade() else { return };
        let poller = &l.events;
        let accounts: Vec<AccountId> = {
            let mut inner = poller.inner.lock();
            if poller.hub.subscriber_count() == 0 {
                // Nobody listens (the connection manager let the login go): stop, forget, and
                // start from a fresh baseline when someone subscribes again.
                *inner = Inner::default();
                return;
            }
            inner.wanted.iter().cloned().collect()
        };
        let mut failure = None;
        for account in &accounts {
            if let Err(e) = pass(&l, account).await {
                tracing::warn!(broker = "webull", %account, error = %e, "the event poll failed");
                failure = Some(format!("the poll of account {account} failed: {e}"));
            }
        }
        let interval = l.config.events.poll_interval;
        let next = match failure {
            None => {
                attempt = 0;
                ConnectionState::Connected
            }
            Some(reason) => {
                attempt += 1;
                ConnectionState::Reconnecting {
                    reason,
                    attempt,
                    retry_in_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
                }
            }
        };
        {
            let mut inner = poller.inner.lock();
            // Told on a change of kind only: a failing poll is not news every interval.
            let news = inner
                .state
                .as_ref()
                .is_none_or(|s| std::mem::discriminant(s) != std::mem::discriminant(&next));
            if news {
                inner.state = Some(next.clone());
                poller.hub.publish(envelope(
                    EventOrigin::Adapter,
                    BrokerEvent::Connection(next),
                ));
            }
        }
        // Only the wake-up is kept while waiting: the login may go meanwhile.
        let wake = Arc::clone(&l.events.wake);
        drop(l);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = wake.notified() => {}
        }
    }
}

/// One poll of `account`: reads, events, guard.
async fn pass(login: &Login, account: &AccountId) -> Result<(), BrokerError> {
    let http = &login.http;
    // Open orders first, positions second: see `crate::oco` (the race rule).
    let open = http.open_orders(account.as_str()).await?;
    let positions = http.positions(account.as_str()).await?;
    let now_print = print(&open, &positions);
    let need_history = {
        let inner = login.events.inner.lock();
        inner.accounts.get(account).is_none_or(|m| {
            !m.baselined
                || m.print.as_ref() != Some(&now_print)
                || m.orders
                    .iter()
                    .any(|(id, s)| s.status.is_working() && !open.iter().any(|o| &o.order_id == id))
        })
    };
    let history = if need_history {
        Some(http.order_history(account.as_str()).await?)
    } else {
        None
    };
    for o in &open {
        if let Some(id) = &o.client_order_id {
            login.remember(account, &o.order_id, id);
        }
    }
    let now = Instant::now();
    let (events, actions) = {
        let mut inner = login.events.inner.lock();
        let memory = inner.accounts.entry(account.clone()).or_default();
        let events = memory.update(account, &open, &positions, history.as_deref());
        memory.print = Some(now_print);
        // The guard's age of each working exit order: kept while it works.
        memory.exits_seen.retain(|id, _| {
            open.iter()
                .any(|o| oco::is_working_exit(o) && o.client_order_id.as_deref() == Some(id))
        });
        for o in open.iter().filter(|o| oco::is_working_exit(o)) {
            if let Some(id) = &o.client_order_id {
                memory.exits_seen.entry(id.clone()).or_insert(now);
            }
        }
        let actions = if login.config.oco.enabled {
            oco::plan(
                &open,
                &positions,
                &memory.exits_seen,
                now,
                login.config.oco.grace,
            )
        } else {
            Vec::new()
        };
        (events, actions)
    };
    for e in events {
        login.events.hub.publish(e);
    }
    oco::apply(http, account, actions).await;
    Ok(())
}

impl Memory {
    /// The events between what was delivered and these reads; remembers them as delivered.
    fn update(
        &mut self,
        account: &AccountId,
        open: &[WbOrder],
        positions: &[WbPosition],
        history: Option<&[WbOrder]>,
    ) -> Vec<Arc<EventEnvelope>> {
        let baseline = !self.baselined;
        let origin = if baseline {
            EventOrigin::Snapshot
        } else {
            EventOrigin::Live
        };
        let mut out = Vec::new();
        // The open list is real time; Webull's history may lag it: the open list wins.
        let mut view: BTreeMap<&str, &WbOrder> = BTreeMap::new();
        for o in history.unwrap_or_default().iter().chain(open) {
            view.insert(o.order_id.as_str(), o);
        }
        for (id, o) in &view {
            let now = Seen::of(o);
            let before = self.orders.get(*id);
            if before == Some(&now) {
                continue;
            }
            // The baseline delivers what works now; history is not news.
            if !baseline || now.status.is_working() {
                match convert::order_report(account, o) {
                    Ok(r) => out.push(envelope(origin, BrokerEvent::Order(r))),
                    Err(e) => tracing::warn!(
                        broker = "webull", %account, order = %id, error = %e,
                        "an order the poll read cannot be reported"
                    ),
                }
            }
            if !baseline && let Some(fill) = fill(account, o, before) {
                out.push(envelope(EventOrigin::Live, BrokerEvent::Fill(fill)));
            }
            self.orders.insert((*id).to_string(), now);
        }
        if history.is_some() {
            // Webull's history is the whole memory: what it no longer lists is forgotten.
            self.orders.retain(|id, _| view.contains_key(id.as_str()));
        }
        let mut held: BTreeMap<String, (Decimal, Option<Decimal>)> = BTreeMap::new();
        for p in positions {
            let e = held
                .entry(p.symbol.clone())
                .or_insert((Decimal::ZERO, None));
            e.0 += p.net();
            e.1 = p.cost_price.or(e.1);
        }
        let symbols: BTreeSet<String> = held.keys().chain(self.positions.keys()).cloned().collect();
        let observed = Utc::now();
        for symbol in symbols {
            let now = held.get(&symbol).copied().unwrap_or((Decimal::ZERO, None));
            let before = self.positions.get(&symbol).copied();
            if before == Some(now) || (before.is_none() && now.0.is_zero()) {
                continue;
            }
            let net = contracts(now.0.abs()).map(|n| {
                if now.0 < Decimal::ZERO {
                    -i64::from(n)
                } else {
                    i64::from(n)
                }
            });
            match net {
                Ok(net_qty) => out.push(envelope(
                    origin,
                    BrokerEvent::Position(PositionReport {
                        account: account.clone(),
                        contract: ContractId(symbol.clone()),
                        symbol: Some(symbol.clone()),
                        net_qty,
                        avg_price: if net_qty == 0 { None } else { now.1 },
                        // When the poll saw it: a position that returns to an earlier state
                        // is news again (its message id includes this).
                        timestamp: Some(observed),
                    }),
                )),
                Err(e) => tracing::warn!(
                    broker = "webull", %account, contract = %symbol, error = %e,
                    "a position the poll read cannot be reported"
                ),
            }
            if now.0.is_zero() {
                self.positions.remove(&symbol);
            } else {
                self.positions.insert(symbol, now);
            }
        }
        self.baselined = true;
        out
    }
}

/// The fill between `before` and `o`, when its filled quantity grew: the increase, priced as
/// its share of the average fill price, named by the order and its new filled quantity.
fn fill(account: &AccountId, o: &WbOrder, before: Option<&Seen>) -> Option<FillReport> {
    let (was, was_price) = before.map_or((Decimal::ZERO, None), |b| (b.filled, b.filled_price));
    let delta = o.filled_quantity - was;
    if delta <= Decimal::ZERO {
        return None;
    }
    let Some(avg) = o.filled_price else {
        tracing::warn!(
            broker = "webull", %account, order = %o.order_id,
            "an order's filled quantity grew without an average price: no fill derived"
        );
        return None;
    };
    let price = match was_price {
        // avg·filled = was_avg·was + price·delta. Rounded far below any tick: an average over
        // several prices need not divide evenly.
        Some(p) if was > Decimal::ZERO => ((avg * o.filled_quantity - p * was) / delta)
            .round_dp(9)
            .normalize(),
        _ => avg,
    };
    let (side, qty) = match (convert::side(&o.side), contracts(delta)) {
        (Ok(s), Ok(q)) => (s, q),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(
                broker = "webull", %account, order = %o.order_id, error = %e,
                "a fill the poll derived cannot be reported"
            );
            return None;
        }
    };
    Some(FillReport {
        id: FillId(format!("{}-{}", o.order_id, o.filled_quantity.normalize())),
        order_id: OrderId(o.order_id.clone()),
        account: account.clone(),
        contract: ContractId(o.symbol.clone()),
        symbol: Some(o.symbol.clone()),
        side,
        qty,
        price,
        // Webull's order views carry no fill time: when the poll saw it.
        timestamp: Utc::now(),
        trade_date: None,
        client_order_id: o.client_order_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn order(
        id: &str,
        status: WbStatus,
        qty: Decimal,
        filled: Decimal,
        avg: Option<Decimal>,
    ) -> WbOrder {
        WbOrder {
            client_order_id: Some(format!("c-{id}")),
            order_id: id.into(),
            symbol: "MNQZ6".into(),
            side: "BUY".into(),
            order_type: "LIMIT".into(),
            quantity: qty,
            filled_quantity: filled,
            limit_price: Some(dec!(21000)),
            stop_price: None,
            filled_price: avg,
            status,
        }
    }

    fn fills(events: &[Arc<EventEnvelope>]) -> Vec<(String, u32, Decimal)> {
        events
            .iter()
            .filter_map(|e| match &e.event {
                BrokerEvent::Fill(f) => Some((f.id.to_string(), f.qty, f.price)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_increase_is_one_fill_named_by_its_new_total_and_a_repoll_adds_nothing() {
        let a = AccountId::from("A");
        let mut m = Memory::default();
        // Baseline: an order working with 1 of 3 filled: delivered, no fill derived.
        let o1 = order(
            "9",
            WbStatus::PartialFilled,
            dec!(3),
            dec!(1),
            Some(dec!(21000)),
        );
        let first = m.update(&a, std::slice::from_ref(&o1), &[], Some(&[]));
        assert!(fills(&first).is_empty());
        assert!(matches!(first[0].event, BrokerEvent::Order(_)));
        assert_eq!(first[0].origin, EventOrigin::Snapshot);
        // One more at 21003: a fill of 1 at 21003, named 9-2.
        let o2 = order(
            "9",
            WbStatus::PartialFilled,
            dec!(3),
            dec!(2),
            Some(dec!(21001.5)),
        );
        let next = m.update(&a, std::slice::from_ref(&o2), &[], None);
        assert_eq!(fills(&next), vec![("9-2".into(), 1, dec!(21003))]);
        // The same read again: nothing.
        assert!(
            m.update(&a, std::slice::from_ref(&o2), &[], None)
                .is_empty()
        );
        // The rest filled and the order left the open list: the history tells.
        let o3 = order("9", WbStatus::Filled, dec!(3), dec!(3), Some(dec!(21001)));
        let last = m.update(&a, &[], &[], Some(std::slice::from_ref(&o3)));
        assert_eq!(fills(&last), vec![("9-3".into(), 1, dec!(21000))]);
        // An order never seen open (a market order filled between two polls) is one fill.
        let market = order("10", WbStatus::Filled, dec!(2), dec!(2), Some(dec!(21002)));
        let seen = m.update(&a, &[], &[], Some(&[o3, market]));
        assert_eq!(fills(&seen), vec![("10-2".into(), 2, dec!(21002))]);
    }

    #[test]
    fn positions_are_delivered_when_they_change_flat_included() {
        let a = AccountId::from("A");
        let mut m = Memory::default();
        let long = WbPosition {
            symbol: "MNQZ6".into(),
            position_side: "LONG".into(),
            quantity: dec!(2),
            cost_price: Some(dec!(21000)),
        };
        let nets = |events: &[Arc<EventEnvelope>]| -> Vec<i64> {
            events
                .iter()
                .filter_map(|e| match &e.event {
                    BrokerEvent::Position(p) => Some(p.net_qty),
                    _ => None,
                })
                .collect()
        };
        assert!(
            m.update(&a, &[], &[], Some(&[])).is_empty(),
            "flat at baseline: nothing"
        );
        assert_eq!(
            nets(&m.update(&a, &[], std::slice::from_ref(&long), None)),
            vec![2]
        );
        assert!(
            m.update(&a, &[], std::slice::from_ref(&long), None)
                .is_empty()
        );
        assert_eq!(nets(&m.update(&a, &[], &[], None)), vec![0]);
        assert!(m.update(&a, &[], &[], None).is_empty());
    }
}
