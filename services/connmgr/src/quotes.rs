//! Prices: the contracts the platform holds or trades, subscribed through one market-data feed
//! per venue for the whole fleet, republished as [`QuoteMessage`]s on `jt.quotes.<contract>`
//! (core NATS: not stored, a missed quote only costs freshness).
//!
//! Market data is the same for every login of a venue, so the fleet opens one md connection per
//! venue, not one per login: the replica holding the `quotes` lease (in the same bucket and with
//! the same renewal as the login leases) runs every feed; when it dies the lease expires and
//! another replica takes the feeds over within the TTL. Each venue's feed goes through one of
//! its logins — the oldest active one whose adapter has [`Feature::MarketData`]; a login whose
//! feed stops for good (it needs re-authentication) is passed over for
//! [`PASS_OVER`] and the next one is used.
//!
//! The wanted set is re-read every [`crate::ConnmgrConfig::quotes_every`]: the contracts of
//! non-flat stored positions and open orders (through the venue of their login), and the open
//! paper positions' roots, resolved to their front month through the first venue that has a
//! feed (Tradovate, NinjaTrader, then the simulator). A contract no longer wanted is
//! unsubscribed at that re-read; a venue left with none has its connection closed.
//!
//! What it must not do: publish anything but what a feed reported, or open a feed per login.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jt_broker::{ConnectionState, Feature, QuoteEvent};
use jt_messages::QuoteMessage;
use jt_store::repo::accounts::BrokerAccount;
use jt_store::{BrokerAccountId, BrokerKind};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Shared, metrics};

/// The lease key of the fleet's quote feeds.
pub const QUOTES_LEASE: &str = "quotes";

/// How long a login whose feed stopped for good is passed over.
pub const PASS_OVER: Duration = Duration::from_secs(300);

/// The venues whose feed may resolve the paper record's roots, in order of preference.
const PAPER_VENUES: [BrokerKind; 3] = [
    BrokerKind::Tradovate,
    BrokerKind::NinjaTrader,
    BrokerKind::Sim,
];

/// Holds the `quotes` lease when free and runs the feeds while it holds it, until `stop`.
pub(crate) async fn run(shared: Shared, every: Duration, retry: Duration, stop: CancellationToken) {
    loop {
        match shared.leases.try_acquire(QUOTES_LEASE, &shared.owner).await {
            Ok(Some(mut lease)) => {
                tracing::info!(owner = %shared.owner, "quotes lease claimed: this replica feeds the fleet's prices");
                let lost = CancellationToken::new();
                lease
                    .hold_while(serve(&shared, every, &stop, &lost), &lost)
                    .await;
                metrics::feeds_cleared();
                if lost.is_cancelled() {
                    metrics::lease_lost();
                    tracing::warn!("quotes lease lost: the feeds are closed here");
                } else if let Err(e) = lease.release().await {
                    tracing::debug!(error = %e, "quotes lease not released (it expires on its own)");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "quotes lease not taken"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// One venue's feed: its pump task (which owns the [`jt_broker::QuoteFeed`]: aborting it
/// closes the connection) and what it reports.
struct Venue {
    login: BrokerAccountId,
    updated_at: chrono::DateTime<chrono::Utc>,
    wanted: watch::Sender<BTreeSet<String>>,
    status: Arc<Mutex<FeedStatus>>,
    task: JoinHandle<()>,
}

impl Drop for Venue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Clone)]
struct FeedStatus {
    state: ConnectionState,
    subscribed: usize,
}

async fn serve(
    shared: &Shared,
    every: Duration,
    stop: &CancellationToken,
    lost: &CancellationToken,
) {
    let mut venues: HashMap<BrokerKind, Venue> = HashMap::new();
    let mut passed_over: HashMap<BrokerAccountId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = lost.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = refresh(shared, &mut venues, &mut passed_over).await {
            tracing::warn!(error = %e, "quotes: wanted contracts not re-read; feeds kept as they are");
        }
        for (kind, v) in &venues {
            let s = v.status.lock().clone();
            metrics::feed(kind.as_str(), &s.state, s.subscribed);
        }
    }
}

/// Re-reads what is wanted and brings the feeds in line.
async fn refresh(
    shared: &Shared,
    venues: &mut HashMap<BrokerKind, Venue>,
    passed_over: &mut HashMap<BrokerAccountId, Instant>,
) -> Result<(), String> {
    let system = shared.store.system();
    let accounts: Vec<BrokerAccount> = system
        .active_accounts()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|a| !a.needs_reauth)
        .collect();
    let by_id: HashMap<BrokerAccountId, &BrokerAccount> =
        accounts.iter().map(|a| (a.id, a)).collect();
    let mut wanted: HashMap<BrokerKind, BTreeSet<String>> = HashMap::new();
    for (login, contract) in system.held_contracts().await.map_err(|e| e.to_string())? {
        if let Some(a) = by_id.get(&login) {
            wanted.entry(a.broker).or_default().insert(contract);
        }
    }
    let roots = system
        .open_paper_symbols()
        .await
        .map_err(|e| e.to_string())?;
    passed_over.retain(|_, since| since.elapsed() < PASS_OVER);

    // Feeds that stopped for good, or whose login changed or went away: closed, their login
    // passed over (a stopped one) so the next refresh picks another.
    venues.retain(|_, v| {
        let stopped = matches!(v.status.lock().state, ConnectionState::Stopped { .. });
        if stopped {
            passed_over.insert(v.login, Instant::now());
        }
        let current = by_id
            .get(&v.login)
            .is_some_and(|a| a.updated_at == v.updated_at);
        !stopped && current
    });

    // The paper record's roots go through the first venue that has (or can have) a feed.
    if !roots.is_empty() {
        for kind in PAPER_VENUES {
            let Some(venue) = ensure(shared, venues, kind, &accounts, passed_over).await else {
                continue;
            };
            let login = venue.login;
            let Some(account) = by_id.get(&login) else {
                continue;
            };
            let Ok(broker) = shared.brokers.for_account(account).await else {
                continue;
            };
            let set = wanted.entry(kind).or_default();
            for root in &roots {
                match broker.resolve_contract(root).await {
                    Ok(c) => {
                        set.insert(c.name);
                    }
                    Err(e) => {
                        tracing::debug!(%root, error = %e, "paper root not resolved to a contract")
                    }
                }
            }
            break;
        }
    }

    for (kind, contracts) in &wanted {
        if contracts.is_empty() {
            continue;
        }
        if let Some(v) = ensure(shared, venues, *kind, &accounts, passed_over).await {
            v.wanted.send_if_modified(|w| {
                let changed = w != contracts;
                w.clone_from(contracts);
                changed
            });
        }
    }
    // A venue nothing is wanted from: its connection is closed.
    venues.retain(|kind, _| wanted.get(kind).is_some_and(|c| !c.is_empty()));
    for kind in BrokerKind::ALL {
        if !venues.contains_key(kind) {
            metrics::feed_closed(kind.as_str());
        }
    }
    Ok(())
}

/// The venue's feed, opened through its oldest eligible login when there is none.
async fn ensure<'a>(
    shared: &Shared,
    venues: &'a mut HashMap<BrokerKind, Venue>,
    kind: BrokerKind,
    accounts: &[BrokerAccount],
    passed_over: &HashMap<BrokerAccountId, Instant>,
) -> Option<&'a mut Venue> {
    if !venues.contains_key(&kind) {
        // `active_accounts` lists the oldest first: the choice is stable across refreshes.
        for account in accounts
            .iter()
            .filter(|a| a.broker == kind && !passed_over.contains_key(&a.id))
        {
            match open(shared, kind, account).await {
                Ok(v) => {
                    tracing::info!(venue = kind.as_str(), login = %account.id, "quote feed opened");
                    venues.insert(kind, v);
                    break;
                }
                Err(e) => {
                    tracing::debug!(venue = kind.as_str(), login = %account.id, error = %e, "no quote feed through this login");
                }
            }
        }
    }
    venues.get_mut(&kind)
}

async fn open(shared: &Shared, kind: BrokerKind, account: &BrokerAccount) -> Result<Venue, String> {
    let broker = shared
        .brokers
        .for_account(account)
        .await
        .map_err(|e| e.to_string())?;
    if !broker.capabilities().supports(Feature::MarketData) {
        return Err(format!("{kind} has no market-data feed in this build"));
    }
    let events = shared
        .brokers
        .events_for(account)
        .await
        .map_err(|e| e.to_string())?;
    let mut feed = events.quote_feed().await.map_err(|e| e.to_string())?;
    let (wanted, mut wanted_rx) = watch::channel(BTreeSet::new());
    let status = Arc::new(Mutex::new(FeedStatus {
        state: ConnectionState::Connecting,
        subscribed: 0,
    }));
    let bus = shared.bus.clone();
    let pump_status = Arc::clone(&status);
    let source = kind.as_str();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = wanted_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let contracts = wanted_rx.borrow_and_update().clone();
                    feed.watch(contracts);
                }
                next = feed.recv() => match next {
                    Some(QuoteEvent::Quote(q)) => {
                        let message = QuoteMessage {
                            contract: q.contract,
                            source: source.to_string(),
                            bid: q.bid,
                            ask: q.ask,
                            last: q.last,
                            at: q.at,
                        };
                        match message.publish(&bus).await {
                            Ok(()) => metrics::quote(source, "published"),
                            Err(e) => {
                                metrics::quote(source, "failed");
                                tracing::debug!(error = %e, contract = %message.contract, "quote not published");
                            }
                        }
                        pump_status.lock().subscribed = feed.subscribed().len();
                    }
                    Some(QuoteEvent::State(state)) => {
                        let mut s = pump_status.lock();
                        s.state = state;
                        s.subscribed = feed.subscribed().len();
                    }
                    None => return,
                },
            }
        }
    });
    Ok(Venue {
        login: account.id,
        updated_at: account.updated_at,
        wanted,
        status,
        task,
    })
}
