//! Alert → orders latency for one recorder with T traders: alerts go to the ingest one at a
//! time (an entry with a bracket, then a close, alternating), and the simulator's order list
//! tells when each trader's order arrived (`receivedUs`, taken by the simulator's HTTP handler
//! when the request arrives).
//!
//! Matching an order to its alert (only orders placed by a request count: bracket legs the
//! exchange creates at the fill do not): an order whose client order id is the one the
//! execution derives for (alert's signal, trader) — `jt` + the intent id — belongs to that
//! alert; otherwise, when the account received exactly one order per alert, the k-th order
//! belongs to the k-th alert (one account's intents run serially, in alert order); otherwise
//! it belongs to the last alert sent before it arrived. Per alert and account the earliest
//! order is that trader's order; "first" is the earliest over the traders, "last" the latest
//! — the moment every trader's order had reached the broker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use jt_messages::IntentMessage;
use serde::Deserialize;
use uuid::Uuid;

use crate::http::{self, Connection};
use crate::load::histogram;
use crate::seed::Recorder;

/// Whether an alert opens (bracket entry) or closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `buy`, position `long`: a market entry with take-profit and stop.
    Entry,
    /// `close`: cancel the exits, close the position.
    Close,
}

struct Sent {
    kind: Kind,
    at_us: i64,
    signal: Uuid,
}

/// What one T run saw.
pub struct OrdersResult {
    /// Traders of the recorder.
    pub traders: usize,
    /// Ingest answer latency of the alerts, µs.
    pub ingest: Histogram<u64>,
    /// Alert → first trader's order, µs, by kind.
    pub first: HashMap<Kind, Histogram<u64>>,
    /// Alert → last trader's order, µs, by kind.
    pub last: HashMap<Kind, Histogram<u64>>,
    /// Alerts sent.
    pub alerts: usize,
    /// (alert, trader) pairs without an order at the simulator after the drain wait.
    pub missing: usize,
    /// Alerts whose last order arrived after the next alert was sent (the spacing was too
    /// short for T: those latencies include waiting behind the previous alert).
    pub overlapped: usize,
    /// Orders matched through their client order id.
    pub by_client_id: usize,
    /// Orders matched by their place in the account's order sequence.
    pub by_sequence: usize,
    /// Orders matched by account and time.
    pub by_window: usize,
}

impl OrdersResult {
    /// Both kinds together.
    pub fn all(map: &HashMap<Kind, Histogram<u64>>) -> anyhow::Result<Histogram<u64>> {
        let mut h = histogram()?;
        for v in map.values() {
            h.add(v)?;
        }
        Ok(h)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimOrder {
    id: i64,
    account: String,
    parent_id: Option<i64>,
    cl_ord_id: Option<String>,
    received_us: i64,
}

#[derive(Deserialize)]
struct Queued {
    status: String,
    signal_id: Uuid,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The last traded price of `root`'s front month at the simulator.
pub async fn sim_price(sim: SocketAddr, root: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Price {
        root: String,
        front: bool,
        price: serde_json::Value,
    }
    let prices: Vec<Price> =
        serde_json::from_slice(&http::call_ok(sim, "GET", "/sim/prices", b"").await?)?;
    prices
        .into_iter()
        .find(|p| p.root == root && p.front)
        .map(|p| p.price.to_string().trim_matches('"').to_string())
        .with_context(|| format!("the simulator has no front month of {root}"))
}

/// Sends `alerts` alerts to `recorder`, `spacing` apart, then waits up to `drain` for every
/// trader's order and measures.
pub async fn run(
    ingest: SocketAddr,
    sim: SocketAddr,
    recorder: &Recorder,
    alerts: usize,
    spacing: Duration,
    drain: Duration,
    price: &str,
) -> anyhow::Result<OrdersResult> {
    let path = format!("/webhook/{}", recorder.token);
    let mut conn = Connection::open(ingest).await?;
    let mut ingest_latency = histogram()?;
    let mut sent: Vec<Sent> = Vec::with_capacity(alerts);
    // Distinct bodies across runs on one recorder (the warm-up uses the same recorder): an
    // identical body within the duplicate window would be answered "duplicate".
    let run = Uuid::new_v4().simple().to_string();
    let start = Instant::now();
    for i in 0..alerts {
        let kind = if i % 2 == 0 { Kind::Entry } else { Kind::Close };
        let body = match kind {
            Kind::Entry => format!(
                r#"{{"action":"buy","ticker":"MNQ1!","contracts":1,"price":{price},"position":"long","comment":"bench {run} {i}"}}"#
            ),
            Kind::Close => {
                format!(r#"{{"action":"close","ticker":"MNQ1!","comment":"bench {run} {i}"}}"#)
            }
        };
        tokio::time::sleep_until((start + spacing * u32::try_from(i)?).into()).await;
        let at_us = now_us();
        let began = Instant::now();
        let answer = conn.send("POST", &path, body.as_bytes(), true).await?;
        ingest_latency.record(u64::try_from(began.elapsed().as_micros())?.max(1))?;
        if answer.status != 200 {
            bail!(
                "alert {i} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        let queued: Queued = serde_json::from_slice(&answer.body)?;
        if queued.status != "queued" {
            bail!("alert {i} was not queued: {}", queued.status);
        }
        sent.push(Sent {
            kind,
            at_us,
            signal: queued.signal_id,
        });
    }

    // Expected client order ids of the entries: (alert, trader index).
    let mut expected: HashMap<String, (usize, usize)> = HashMap::new();
    for (a, s) in sent.iter().enumerate() {
        if s.kind == Kind::Entry {
            for (t, (trader, _)) in recorder.traders.iter().enumerate() {
                let intent = IntentMessage::id_for(jt_store::SignalId(s.signal), *trader);
                expected.insert(jt_messages::client_order_id(intent.0), (a, t));
            }
        }
    }
    let account_index: HashMap<&str, usize> = recorder
        .traders
        .iter()
        .enumerate()
        .map(|(i, (_, a))| (a.name.as_str(), i))
        .collect();
    // Poll the simulator until every trader has an order for every alert, or the drain ends.
    let deadline = Instant::now() + drain;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let orders: Vec<SimOrder> =
            serde_json::from_slice(&http::call_ok(sim, "GET", "/sim/orders", b"").await?)
                .context("reading /sim/orders")?;
        let matched = match_orders(&orders, &sent, &expected, &account_index);
        let missing = sent.len() * recorder.traders.len() - matched.earliest.len();
        if missing == 0 || Instant::now() >= deadline {
            return summarise(
                recorder.traders.len(),
                ingest_latency,
                &sent,
                &matched,
                missing,
            );
        }
    }
}

struct Matched {
    /// (alert, trader) → arrival of that trader's order for that alert, µs.
    earliest: HashMap<(usize, usize), i64>,
    by_client_id: usize,
    by_sequence: usize,
    by_window: usize,
}

/// Assigns the orders of the recorder's accounts that arrived during the run to alerts: by
/// client order id where the order carries the one derived for (alert, trader); else, when an
/// account received exactly one order placed by a request (not a bracket leg) per alert, the
/// k-th such order to the k-th alert (orders of one account run serially, in alert order);
/// else by time (the last alert sent before the order arrived).
fn match_orders(
    orders: &[SimOrder],
    sent: &[Sent],
    expected: &HashMap<String, (usize, usize)>,
    account_index: &HashMap<&str, usize>,
) -> Matched {
    let first_sent = sent.first().map_or(0, |s| s.at_us);
    let mut per_account: HashMap<usize, Vec<&SimOrder>> = HashMap::new();
    for o in orders {
        if let Some(&trader) = account_index.get(o.account.as_str())
            && o.received_us >= first_sent
            && o.parent_id.is_none()
        {
            per_account.entry(trader).or_default().push(o);
        }
    }
    let mut m = Matched {
        earliest: HashMap::new(),
        by_client_id: 0,
        by_sequence: 0,
        by_window: 0,
    };
    for (trader, mut list) in per_account {
        list.sort_by_key(|o| o.id);
        let in_sequence = list.len() == sent.len();
        for (k, o) in list.iter().enumerate() {
            let alert = match o.cl_ord_id.as_deref().and_then(|c| expected.get(c)) {
                Some(&(alert, t)) if t == trader => {
                    m.by_client_id += 1;
                    alert
                }
                _ if in_sequence => {
                    m.by_sequence += 1;
                    k
                }
                _ => {
                    m.by_window += 1;
                    sent.partition_point(|s| s.at_us <= o.received_us)
                        .saturating_sub(1)
                }
            };
            let e = m.earliest.entry((alert, trader)).or_insert(o.received_us);
            *e = (*e).min(o.received_us);
        }
    }
    m
}

fn summarise(
    traders: usize,
    ingest: Histogram<u64>,
    sent: &[Sent],
    matched: &Matched,
    missing: usize,
) -> anyhow::Result<OrdersResult> {
    let earliest = &matched.earliest;
    let mut first = HashMap::new();
    let mut last = HashMap::new();
    let mut overlapped = 0;
    for (a, s) in sent.iter().enumerate() {
        let times: Vec<i64> = (0..traders)
            .filter_map(|t| earliest.get(&(a, t)).copied())
            .collect();
        let (Some(min), Some(max)) = (times.iter().min(), times.iter().max()) else {
            continue;
        };
        let us = |t: i64| u64::try_from(t - s.at_us).unwrap_or(0).max(1);
        first
            .entry(s.kind)
            .or_insert(histogram()?)
            .record(us(*min))?;
        last.entry(s.kind)
            .or_insert(histogram()?)
            .record(us(*max))?;
        if sent.get(a + 1).is_some_and(|next| *max > next.at_us) {
            overlapped += 1;
        }
    }
    Ok(OrdersResult {
        traders,
        ingest,
        first,
        last,
        alerts: sent.len(),
        missing,
        overlapped,
        by_client_id: matched.by_client_id,
        by_sequence: matched.by_sequence,
        by_window: matched.by_window,
    })
}
