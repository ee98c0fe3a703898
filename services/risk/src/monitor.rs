//! The max-daily-loss and prop-firm rules monitor (DOMAIN.md §9, §14): every watched account's
//! P&L of the trading day and equity, re-judged on every quote of a contract it holds, every
//! position or cash event and every broker read; at or past −limit, or when a prop-firm rule
//! reaches its safety buffer (the flat-by window, a flattening news window), the account is
//! breached, flattened through ORDERS and its owner notified — once per trading day. The
//! trailing drawdown's mark is raised as equity makes new highs (intraday) or at the close
//! (end of day), and a limit close to its buffer warns once a day.
//!
//! It runs on one replica at a time (the holder of [`crate::MONITOR_LEASE`]), so one place
//! holds each account's book and decides. Its state is rebuilt from the store and the brokers
//! whenever it starts (a take-over, a restart), and everything it does is idempotent: the
//! breach row is unique per account, day and rule; the flatten's intent id derives from the
//! breach; the notification's de-duplication key is the breach id. A monitor that dies between
//! two of these steps leaves a breach whose `flattened_at` is empty, and the next holder finishes
//! the job from there — never a second flatten of the same breach, never a missed one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use futures_util::StreamExt;
use jt_broker::{AccountId, BrokerEvent, contract_key};
use jt_bus::{Bus, Definitions, Envelope, Incoming, MessageId, Outcome};
use jt_connect::BrokerAccess;
use jt_domain::filters::is_daily_loss_breached;
use jt_domain::propfirm::{AccountState, Distance, NewsEvent, Rule, TrailingMode};
use jt_domain::session::trading_day;
use jt_messages::risk_status::{self, RiskSnapshot};
use jt_messages::{
    BrokerEventMessage, ControlCause, ControlIntent, IntentMessage, QuoteMessage, ReportedEvent,
    subscribe_quotes,
};
use jt_store::entity::BreachKind;
use jt_store::repo::broker::BrokerPosition;
use jt_store::repo::risk::{Breach, BreachRecorded, NewBreach};
use jt_store::{FollowerId, RecorderId, Store, SubAccountId, UserId};
use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::RiskConfig;
use crate::book::{Book, BrokerFigure, Mark, OpenSource, Pnl};
use crate::drawdown;
use crate::metrics;
use crate::paper;
use crate::prop::{self, Trail};
use crate::watch::{self, Watched};

/// How long a broker P&L read may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The event kind of a max-loss notification.
pub const MAX_LOSS_EVENT: &str = "max_loss";

/// The event kind of a prop-firm rule breach (flattened and locked).
pub const RULE_BREACH_EVENT: &str = "rule_breach";

/// The event kind of a prop-firm limit close to its safety buffer.
pub const RULE_WARNING_EVENT: &str = "rule_warning";

/// The trailing mark is written to the store at most this often per account.
const MARK_WRITE_EVERY: Duration = Duration::from_secs(1);

/// An account's changed figures are shared (`jt_risk_status`) at most this often.
const SHARE_EVERY: Duration = Duration::from_secs(1);

/// Unchanged figures are shared again this often, so their `as_of` stays fresh.
#[allow(clippy::cast_sign_loss)]
const SHARE_REFRESH: Duration = Duration::from_secs(risk_status::REFRESH_SECS as u64);

/// A survey's store reads are given up after three survey periods, and never sooner than this.
const SURVEY_TIMEOUT_FLOOR: Duration = Duration::from_secs(30);

/// How far around now the news calendar is read at each survey.
const NEWS_HORIZON_HOURS: i64 = 24;

/// One watched account as `GET /risk/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    /// The sub-account.
    pub sub_account_id: SubAccountId,
    /// Its name at the broker.
    pub account: String,
    /// The daily loss limit, when a trader sets one.
    pub limit: Option<Decimal>,
    /// The day's P&L, when known.
    pub pnl: Option<Pnl>,
    /// How far the account is from its limit (`total + limit`; ≤ 0 is a breach); `None`
    /// while the open P&L is unknown ([`limit_distance`]).
    pub distance: Option<Decimal>,
    /// The prop-firm preset the account's rules started from, when it has rules.
    pub rules_preset: Option<String>,
    /// The cash balance, when the broker reported it.
    pub balance: Option<Decimal>,
    /// The trailing drawdown's high-water mark the account is judged with.
    pub high_water_mark: Option<Decimal>,
    /// The distance to every prop-firm limit (`jt_domain::propfirm::RuleSet::distances`),
    /// when the account has rules and its figures are known.
    pub rules: Vec<Distance>,
    /// Breached (max daily loss or a prop-firm rule) for the trading day.
    pub breached: bool,
}

/// What the monitor shows (`GET /risk/status`): on the lease holder, every watched account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorStatus {
    /// Whether this replica is the monitor now.
    pub active: bool,
    /// The trading day judged.
    pub trading_day: Option<NaiveDate>,
    /// The watched accounts.
    pub accounts: Vec<AccountStatus>,
}

struct Entry {
    watched: Watched,
    book: Book,
    /// The trading day this account is breached for (nothing more is done that day).
    breached: Option<NaiveDate>,
    /// The trading day its followers' daily loss limit was reached (copies to it stop that
    /// day; its own limits are still judged).
    follower_breached: Option<NaiveDate>,
    /// A broker read is in flight.
    polling: bool,
    /// When the broker was last read (or asked to be).
    last_poll: Option<Instant>,
    /// A fill or a cash change since the last read: read again now.
    poll_now: bool,
    /// Bumped by every position, fill or cash event: a broker read started before one is
    /// out of date when it returns, and is dropped.
    generation: u64,
    /// The trailing drawdown's mark.
    trail: Trail,
    /// The (day, rule) warnings already queued.
    warned: Vec<(NaiveDate, Rule)>,
    /// The equity peaks of its followers with a max drawdown.
    peaks: HashMap<FollowerId, drawdown::Peak>,
}

/// What the helpers send back to the monitor's loop.
enum Note {
    Event(Box<BrokerEventMessage>),
    Figure(SubAccountId, u64, Result<BrokerFigure, String>),
    /// A mark write failed: the previous stored value, to write again.
    MarkFailed(SubAccountId, Option<Decimal>),
    /// A follower's peak write (of that tracking) failed: the previous stored value.
    PeakFailed(SubAccountId, FollowerId, uuid::Uuid, Option<Decimal>),
    /// A survey's read of the store (`None`: the watched accounts were unreadable).
    Surveyed(Option<Box<Surveyed>>),
}

/// What a survey read from the store, off the monitor's loop ([`gather`]).
struct Surveyed {
    now: chrono::DateTime<Utc>,
    day: NaiveDate,
    accounts: Vec<SurveyedAccount>,
    /// Each known account's event generation when the read began.
    generations: HashMap<SubAccountId, u64>,
    /// The news calendar around now; `None` when unreadable.
    news: Option<Vec<NewsEvent>>,
    /// The paper records; `None` when unreadable.
    papers: Option<Vec<paper::PaperRead>>,
}

/// One watched account as a survey read it.
struct SurveyedAccount {
    watched: Watched,
    /// Its stored positions; `None` when unreadable (the book is left as it is).
    positions: Option<Vec<BrokerPosition>>,
    /// Its breaches of the trading day; `None` when unreadable (left as they are).
    breaches: Option<Vec<Breach>>,
}

/// The monitor's state while this replica holds the lease.
pub(crate) struct Monitor {
    store: Store,
    bus: Bus,
    brokers: Arc<BrokerAccess>,
    config: RiskConfig,
    entries: HashMap<SubAccountId, Entry>,
    marks: HashMap<String, Mark>,
    /// The listed news around now (re-read at each survey).
    news: Vec<NewsEvent>,
    status: Arc<Mutex<MonitorStatus>>,
    notes: mpsc::Sender<Note>,
    /// What was last written to the `jt_risk_status` bucket per account, and when.
    written: HashMap<SubAccountId, (RiskSnapshot, Instant)>,
    /// The paper records with a max daily loss.
    papers: paper::Papers,
    /// A survey's read is in flight.
    surveying: bool,
}

impl Monitor {
    /// Runs until `stop` (shutdown, or the lease lost).
    pub(crate) async fn run(
        store: Store,
        bus: Bus,
        brokers: Arc<BrokerAccess>,
        config: RiskConfig,
        status: Arc<Mutex<MonitorStatus>>,
        stop: CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::channel::<Note>(4096);
        let mut quotes = match subscribe_quotes(&bus).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to quotes: the monitor waits for its next turn");
                return;
            }
        };
        // The broker events of every watched account (the durable `risk` consumer, read only
        // by the monitor): positions and realised P&L between broker reads.
        let consumer = {
            let (bus, stop, tx) = (bus.clone(), stop.clone(), tx.clone());
            let options = config.consume.clone();
            tokio::spawn(async move {
                let defs = Definitions::new(bus.namespace());
                let r = bus
                    .consume(
                        &defs.risk,
                        options,
                        stop,
                        move |msg: Incoming<BrokerEventMessage>| {
                            let tx = tx.clone();
                            async move {
                                // The monitor's state is rebuilt from the store and the brokers
                                // when it starts: an event acknowledged here and lost with a dying
                                // replica costs nothing the next holder does not read again.
                                match tx.send(Note::Event(Box::new(msg.envelope.payload))).await {
                                    Ok(()) => Outcome::Ack,
                                    Err(_) => Outcome::retry("the monitor is stopping"),
                                }
                            }
                        },
                    )
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "the risk consumer stopped");
                }
            })
        };
        let mut monitor = Self {
            store,
            bus,
            brokers,
            config,
            entries: HashMap::new(),
            marks: HashMap::new(),
            news: Vec::new(),
            status,
            notes: tx,
            written: HashMap::new(),
            papers: paper::Papers::default(),
            surveying: false,
        };
        monitor.status.lock().active = true;
        let mut survey = tokio::time::interval(monitor.config.survey_every);
        survey.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polls = tokio::time::interval(Duration::from_millis(500));
        polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = survey.tick() => monitor.start_survey(),
                _ = polls.tick() => {
                    monitor.poll_due();
                    monitor.write_marks();
                    monitor.publish_status(trading_day(Utc::now()));
                }
                quote = quotes.next() => match quote {
                    Some(m) => {
                        if let Some(q) = QuoteMessage::decode(&m.payload) {
                            monitor.quote(&q).await;
                        }
                    }
                    None => {
                        tracing::warn!("the quote subscription ended: the monitor restarts");
                        break;
                    }
                },
                note = rx.recv() => match note {
                    Some(Note::Event(e)) => monitor.event(&e).await,
                    Some(Note::Figure(sub, generation, r)) => monitor.figure(sub, generation, r).await,
                    Some(Note::MarkFailed(sub, previous)) => {
                        if let Some(e) = monitor.entries.get_mut(&sub) {
                            e.trail.write_failed(previous);
                        }
                    }
                    Some(Note::PeakFailed(sub, follower, tracking, previous)) => {
                        if let Some(p) = monitor
                            .entries
                            .get_mut(&sub)
                            .and_then(|e| e.peaks.get_mut(&follower))
                            .filter(|p| p.tracking == tracking)
                        {
                            p.trail.write_failed(previous);
                        }
                    }
                    Some(Note::Surveyed(surveyed)) => {
                        monitor.surveying = false;
                        if let Some(s) = surveyed {
                            monitor.apply_survey(*s).await;
                        }
                    }
                    None => break,
                },
            }
        }
        monitor.status.lock().active = false;
        consumer.abort();
    }

    /// Starts a survey: the store is read off the loop ([`gather`]) and the result taken in
    /// by [`Monitor::apply_survey`] when it arrives, so quotes and events are judged while the
    /// store is read (a survey of many accounts takes seconds). One survey at a time.
    fn start_survey(&mut self) {
        if self.surveying {
            return;
        }
        self.surveying = true;
        let generations = self
            .entries
            .iter()
            .map(|(sub, e)| (*sub, e.generation))
            .collect();
        let (store, tx) = (self.store.clone(), self.notes.clone());
        // A read stuck on the store (a lock, a connection that never answers) is given up,
        // so the next survey can start: never a monitor that stops re-reading for good.
        let limit = (self.config.survey_every * 3).max(SURVEY_TIMEOUT_FLOOR);
        tokio::spawn(async move {
            let surveyed = match tokio::time::timeout(limit, gather(&store, generations)).await {
                Ok(s) => s.map(Box::new),
                Err(_) => {
                    tracing::warn!(
                        ?limit,
                        "the survey's store reads took too long: given up, the next survey reads again"
                    );
                    None
                }
            };
            let _ = tx.send(Note::Surveyed(surveyed)).await;
        });
    }

    /// Takes in what a survey read: which accounts are watched, their limits and rules, stored
    /// positions and breaches, and the news calendar; takes an end-of-day mark whose close has
    /// passed; judges the paper records.
    async fn apply_survey(&mut self, surveyed: Surveyed) {
        let Surveyed {
            now,
            day,
            accounts,
            generations,
            news,
            papers,
        } = surveyed;
        // An unreadable calendar leaves the last read in force: a blackout is not lifted by
        // a blip.
        if let Some(news) = news {
            self.news = news;
        }
        let mut seen = Vec::with_capacity(accounts.len());
        for SurveyedAccount {
            watched: w,
            positions,
            breaches,
        } in accounts
        {
            let sub = w.sub.id;
            seen.push(sub);
            let entry = self.entries.entry(sub).or_insert_with(|| Entry {
                watched: w.clone(),
                book: Book::default(),
                breached: None,
                follower_breached: None,
                polling: false,
                last_poll: None,
                poll_now: true,
                generation: 0,
                trail: Trail::default(),
                warned: Vec::new(),
                peaks: HashMap::new(),
            });
            entry.watched = w;
            for f in &entry.watched.followers {
                if let Some(stored) = &f.peak {
                    entry.peaks.entry(f.id).or_default().merge(stored);
                }
            }
            let tracked: Vec<FollowerId> = entry
                .watched
                .followers
                .iter()
                .filter(|f| f.peak.is_some())
                .map(|f| f.id)
                .collect();
            entry.peaks.retain(|f, _| tracked.contains(f));
            if let Some(r) = &entry.watched.rules {
                entry.trail.merge_stored(r.high_water_mark, r.mark_day);
            }
            // The store is the positions service's record (events and reconciliation): it
            // corrects whatever the book missed — unless a position, fill or cash event came
            // since the read began: the book is then newer than the read (the next survey
            // corrects it).
            let unchanged = generations.get(&sub).is_none_or(|g| *g == entry.generation);
            if let Some(positions) = positions.filter(|_| unchanged) {
                entry.book.positions.clear();
                for p in positions {
                    entry
                        .book
                        .set_position(&p.contract, p.net_quantity, p.average_price);
                }
            }
            if let Some(breaches) = breaches {
                self.take_breaches(sub, day, &breaches);
            }
            self.close_day(sub, now);
        }
        self.entries.retain(|sub, _| seen.contains(sub));
        metrics::watched(self.entries.len());
        // Paper records: a breach whose close a dead monitor left undone is closed now; every
        // record is judged (its realised P&L and positions were just read).
        if let Some(read) = papers {
            let max_age = self.max_age();
            for (recorder, breach) in self.papers.apply(read, day) {
                let marks = self.papers.fresh_marks(now, max_age);
                tokio::spawn(paper::close(self.store.clone(), recorder, breach, marks));
            }
        }
        for id in self.papers.recorders() {
            self.judge_paper(id).await;
        }
        self.publish_status(day);
    }

    /// Takes in an account's stored breaches of the trading day at a survey: a breach a
    /// monitor recorded and died before flattening is finished here (same intent id: never a
    /// second flatten); a follower lock it missed is made; a daily loss lock this service set
    /// on an earlier trading day is lifted. The store writes run off the loop.
    fn take_breaches(&mut self, sub: SubAccountId, day: NaiveDate, breaches: &[Breach]) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let of = |kind: BreachKind| breaches.iter().find(|b| b.kind == kind).cloned();
        let w = e.watched.clone();
        if e.breached != Some(day) {
            // Only ever raised from a read: a breach this monitor recorded after the read
            // began is already `Some(day)` here and stands.
            let account = [BreachKind::MaxDailyLoss, BreachKind::PropFirmRule]
                .into_iter()
                .filter_map(of)
                .collect::<Vec<_>>();
            e.breached = (!account.is_empty()).then_some(day);
            for b in account.into_iter().filter(|b| b.flattened_at.is_none()) {
                self.finish(w.clone(), b, false);
            }
        }
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let follower_breach = of(BreachKind::FollowerDailyLoss);
        if follower_breach.is_some() {
            e.follower_breached = Some(day);
        }
        if !w.followers.is_empty() {
            match follower_breach {
                Some(b) if b.flattened_at.is_none() => self.finish(w.clone(), b, false),
                Some(b) => {
                    let (store, w) = (self.store.clone(), w.clone());
                    tokio::spawn(async move { lock_followers(&store, &w, &b).await });
                }
                None => {
                    let store = self.store.clone();
                    let w = w.clone();
                    tokio::spawn(async move { lift_past_locks(&store, &w).await });
                }
            }
        }
        if w.followers.iter().any(|f| f.max_drawdown.is_some()) {
            match of(BreachKind::FollowerMaxDrawdown) {
                Some(b) if b.flattened_at.is_none() => self.finish(w, b, false),
                Some(b) => {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        let details = b.details.clone().unwrap_or_default();
                        lock_drawdown(&store, &w, &details, day, b.breached_at, false).await;
                    });
                }
                None => {}
            }
        }
    }

    /// An end-of-day trailing mark takes the balance of the trading day that closed, once,
    /// when the account is flat and was read after the close.
    fn close_day(&mut self, sub: SubAccountId, now: chrono::DateTime<Utc>) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        let Some(rules) = &e.watched.rules else {
            return;
        };
        if rules
            .rules
            .trailing_drawdown
            .as_ref()
            .is_none_or(|t| t.mode != TrailingMode::EndOfDay)
        {
            return;
        }
        let Some(figure) = e.book.broker else {
            return;
        };
        let Some(cash) = figure.cash else {
            return;
        };
        let flat = e.book.positions.is_empty() && figure.open.is_none_or(|o| o.is_zero());
        let Some(closed) = prop::close_due(e.trail.mark_day, now, figure.at, flat) else {
            return;
        };
        let state = AccountState {
            balance: cash,
            open_pnl: Decimal::ZERO,
            day_pnl: Decimal::ZERO,
            high_water_mark: e.trail.mark,
            now,
        };
        let mark = rules.rules.next_mark(&state, true);
        e.trail.observe(mark);
        e.trail.mark_day = Some(closed);
        let store = self.store.clone();
        tracing::info!(sub_account = %sub, %cash, day = %closed, ?mark, "end-of-day trailing mark");
        tokio::spawn(async move {
            // A failed write is taken again by the next monitor (mark_day stays behind).
            if let Err(e) = store.rules().close_day(sub, cash, closed).await {
                tracing::warn!(sub_account = %sub, error = %e, "the end-of-day mark could not be stored");
            }
        });
    }

    /// Writes the intraday marks and followers' equity peaks that rose (at most once a second
    /// per account and per follower).
    fn write_marks(&mut self) {
        let now = Instant::now();
        for (sub, e) in &mut self.entries {
            for (follower, p) in &mut e.peaks {
                let previous = p.trail.stored;
                let Some(peak) = p.trail.due(now, MARK_WRITE_EVERY) else {
                    continue;
                };
                let (store, tx, sub, follower, tracking) = (
                    self.store.clone(),
                    self.notes.clone(),
                    *sub,
                    *follower,
                    p.tracking,
                );
                tokio::spawn(async move {
                    if let Err(e) = store
                        .risk()
                        .raise_follower_peak(tracking, peak, Utc::now())
                        .await
                    {
                        tracing::warn!(%follower, error = %e, "the follower's equity peak could not be stored: retried");
                        let _ = tx
                            .send(Note::PeakFailed(sub, follower, tracking, previous))
                            .await;
                    }
                });
            }
            let previous = e.trail.stored;
            let Some(mark) = e.trail.due(now, MARK_WRITE_EVERY) else {
                continue;
            };
            let (store, tx, sub) = (self.store.clone(), self.notes.clone(), *sub);
            tokio::spawn(async move {
                if let Err(e) = store.rules().raise_mark(sub, mark, None).await {
                    tracing::warn!(sub_account = %sub, error = %e, "the trailing mark could not be stored: retried");
                    let _ = tx.send(Note::MarkFailed(sub, previous)).await;
                }
            });
        }
    }

    /// Starts the broker reads that are due: now when asked (a fill, a new account), every
    /// `poll_every` for venues that push no cash balance or for held contracts without a fresh
    /// quote, every `resync_every` otherwise.
    fn poll_due(&mut self) {
        let now = Instant::now();
        let at = Utc::now();
        let max_age = chrono::Duration::from_std(self.config.quote_max_age)
            .unwrap_or(chrono::Duration::seconds(10));
        for (sub, e) in &mut self.entries {
            if e.polling || e.breached == Some(trading_day(at)) {
                continue;
            }
            let quoted = e
                .book
                .positions
                .keys()
                .all(|c| self.marks.get(c).is_some_and(|m| at - m.at <= max_age));
            let every = if e.watched.pushes_cash() && quoted {
                self.config.resync_every
            } else {
                self.config.poll_every
            };
            let due = e.poll_now || e.last_poll.is_none_or(|t| now.duration_since(t) >= every);
            if !due {
                continue;
            }
            e.polling = true;
            e.poll_now = false;
            e.last_poll = Some(now);
            let (brokers, tx, w, sub, generation) = (
                self.brokers.clone(),
                self.notes.clone(),
                e.watched.clone(),
                *sub,
                e.generation,
            );
            tokio::spawn(async move {
                // A read that hangs must not stop the account from being read again.
                let r = tokio::time::timeout(READ_TIMEOUT, read_figure(&brokers, &w))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {READ_TIMEOUT:?}")));
                metrics::poll(if r.is_ok() { "ok" } else { "failed" });
                let _ = tx.send(Note::Figure(sub, generation, r)).await;
            });
        }
    }

    async fn figure(
        &mut self,
        sub: SubAccountId,
        generation: u64,
        r: Result<BrokerFigure, String>,
    ) {
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        e.polling = false;
        if generation != e.generation {
            // Read across a position, fill or cash change: the next read (already due) counts.
            e.poll_now = true;
            return;
        }
        match r {
            Ok(f) => {
                e.book.broker = Some(f);
                self.judge(sub).await;
            }
            Err(reason) => {
                tracing::warn!(sub_account = %sub, %reason, "the account's P&L could not be read: judged on what is known");
            }
        }
    }

    async fn quote(&mut self, q: &QuoteMessage) {
        let Some(price) = q.mark() else {
            return;
        };
        metrics::quote();
        self.marks.insert(
            q.contract.clone(),
            Mark {
                price,
                at: Utc::now(),
            },
        );
        let holders: Vec<SubAccountId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.book.holds(&q.contract))
            .map(|(s, _)| *s)
            .collect();
        for sub in holders {
            self.judge(sub).await;
        }
        for id in self.papers.quote(&q.contract, price, Utc::now()) {
            self.judge_paper(id).await;
        }
    }

    fn max_age(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.quote_max_age)
            .unwrap_or(chrono::Duration::seconds(10))
    }

    /// Judges one paper record now; past its max daily loss, the breach is recorded here and
    /// its paper positions closed at the mark off the loop ([`paper::close`]).
    async fn judge_paper(&mut self, id: RecorderId) {
        let now = Utc::now();
        let max_age = self.max_age();
        let Some((recorder, breach)) = self.papers.judge(id, now, trading_day(now), max_age) else {
            return;
        };
        match paper::record(&self.store, &recorder, breach).await {
            Ok(Some(b)) => {
                metrics::breach("new");
                let marks = self.papers.fresh_marks(now, max_age);
                tokio::spawn(paper::close(self.store.clone(), recorder, b, marks));
            }
            Ok(None) => metrics::breach("already"),
            Err(e) => {
                metrics::breach("failed");
                self.papers.unbreach(id);
                tracing::error!(recorder = %id, error = %e, "the paper breach could not be recorded: retried at the next change");
            }
        }
    }

    async fn event(&mut self, m: &BrokerEventMessage) {
        let Some(e) = self.entries.get_mut(&m.sub_account_id) else {
            return;
        };
        let ReportedEvent::Known(event) = &m.event else {
            return;
        };
        // The broker's open figure was read for the positions of its time: after a position,
        // fill or cash change it would count a closed loss twice (once realised, once open).
        // It is dropped, and read again now.
        let stale_open = |book: &mut Book| {
            if let Some(f) = book.broker.as_mut() {
                f.open = None;
            }
        };
        if !matches!(
            event,
            BrokerEvent::Order(_) | BrokerEvent::Connection(_) | BrokerEvent::Resync { .. }
        ) {
            e.generation += 1;
        }
        match event {
            BrokerEvent::Position(p) => {
                let contract = contract_key(p.symbol.as_deref(), p.contract.as_str());
                e.book.set_position(&contract, p.net_qty, p.avg_price);
                stale_open(&mut e.book);
                e.poll_now = true;
            }
            BrokerEvent::CashBalance(c) => {
                if let Some(realized) = c.realized_pnl {
                    e.book.broker = Some(BrokerFigure {
                        realized,
                        open: None,
                        cash: Some(c.amount),
                        at: Utc::now(),
                    });
                } else if let Some(f) = e.book.broker.as_mut() {
                    f.cash = Some(c.amount);
                }
                e.poll_now = true;
            }
            BrokerEvent::Fill(_) => {
                stale_open(&mut e.book);
                e.poll_now = true;
            }
            BrokerEvent::Order(_) | BrokerEvent::Connection(_) | BrokerEvent::Resync { .. } => {
                return;
            }
        }
        self.judge(m.sub_account_id).await;
    }

    /// Judges one account now: breached when its day's P&L is at or past −limit, or when one
    /// of its prop-firm rules says to flatten; a rising trailing mark is kept, and a limit close
    /// to its buffer warns.
    async fn judge(&mut self, sub: SubAccountId) {
        let now = Utc::now();
        let day = trading_day(now);
        let max_age = chrono::Duration::from_std(self.config.quote_max_age)
            .unwrap_or(chrono::Duration::seconds(10));
        let Some(e) = self.entries.get_mut(&sub) else {
            return;
        };
        if e.breached == Some(day) {
            return;
        }
        // A figure read in another trading day is that day's: read again.
        if e.book.broker.is_some_and(|f| trading_day(f.at) != day) {
            e.book.broker = None;
            e.poll_now = true;
            return;
        }
        let marks = &self.marks;
        let Some(pnl) = e.book.pnl(&|c| marks.get(c).copied(), now, max_age) else {
            return;
        };
        tracing::trace!(sub_account = %sub, ?pnl, limit = ?e.watched.limit, "judged");
        if let Some(limit) = e.watched.limit
            && pnl.source != OpenSource::Unknown
            && is_daily_loss_breached(limit, pnl.realized, pnl.open)
        {
            e.breached = Some(day);
            let w = e.watched.clone();
            tracing::warn!(
                sub_account = %sub, %limit, realized = %pnl.realized, open = %pnl.open,
                source = ?pnl.source, "max daily loss reached: flattening the account"
            );
            let breach = NewBreach {
                sub_account: sub,
                trading_day: day,
                kind: BreachKind::MaxDailyLoss,
                loss_limit: limit,
                realized_pnl: pnl.realized,
                unrealized_pnl: pnl.open,
                breached_at: now,
                details: Some(format!(
                    "realized {} + open {} = {} ≤ −{} (open P&L from {})",
                    pnl.realized.normalize(),
                    pnl.open.normalize(),
                    pnl.total().normalize(),
                    limit.normalize(),
                    source_name(pnl.source)
                )),
            };
            self.record(w, breach).await;
            return;
        }
        if e.follower_breached != Some(day)
            && pnl.source != OpenSource::Unknown
            && let Some(limit) = e.watched.follower_limit()
            && is_daily_loss_breached(limit, pnl.realized, pnl.open)
        {
            e.follower_breached = Some(day);
            let w = e.watched.clone();
            tracing::warn!(
                sub_account = %sub, %limit, realized = %pnl.realized, open = %pnl.open,
                "a follower's daily loss limit reached: locking its copies and flattening"
            );
            let breach = NewBreach {
                sub_account: sub,
                trading_day: day,
                kind: BreachKind::FollowerDailyLoss,
                loss_limit: limit,
                realized_pnl: pnl.realized,
                unrealized_pnl: pnl.open,
                breached_at: now,
                details: Some(format!(
                    "realized {} + open {} = {} ≤ −{} (open P&L from {})",
                    pnl.realized.normalize(),
                    pnl.open.normalize(),
                    pnl.total().normalize(),
                    limit.normalize(),
                    source_name(pnl.source)
                )),
            };
            self.record(w, breach).await;
            return;
        }
        let known = pnl.source != OpenSource::Unknown;
        let cash = e.book.broker.and_then(|f| f.cash);
        if known && let Some(balance) = cash {
            // Followers' max drawdown: the equity against each follower's own peak. A new
            // high raises the peak before it is judged (written at most once a second).
            let equity = balance + pnl.open;
            let mut reached = Vec::new();
            let mut strictest: Option<Decimal> = None;
            for f in e
                .watched
                .followers
                .iter_mut()
                .filter(|f| f.lockout.is_none())
            {
                let (Some(max), Some(peak)) = (f.max_drawdown, e.peaks.get_mut(&f.id)) else {
                    continue;
                };
                peak.trail.observe(Some(equity));
                let Some(top) = peak.trail.mark else {
                    continue;
                };
                if drawdown::reached(top, equity, max) {
                    let segment = drawdown::segment(f.id, top, equity, max);
                    // Locked here at once (the store's lock follows in `finish`): judged once.
                    f.lockout = Some(drawdown::lock_reason(day, &segment));
                    reached.push(segment);
                    strictest = Some(strictest.map_or(max, |s| s.min(max)));
                }
            }
            if let Some(limit) = strictest {
                let w = e.watched.clone();
                tracing::warn!(
                    sub_account = %sub, %equity, followers = reached.len(),
                    "a follower's max drawdown reached: locking its copies and flattening"
                );
                let breach = NewBreach {
                    sub_account: sub,
                    trading_day: day,
                    kind: BreachKind::FollowerMaxDrawdown,
                    loss_limit: limit,
                    realized_pnl: pnl.realized,
                    unrealized_pnl: pnl.open,
                    breached_at: now,
                    details: Some(reached.join("; ")),
                };
                self.record(w, breach).await;
                return;
            }
        }
        let Some(rules) = e.watched.rules.clone() else {
            return;
        };
        let holding = !e.book.positions.is_empty() || !pnl.open.is_zero();
        let mut state = AccountState {
            balance: cash.unwrap_or_default(),
            open_pnl: pnl.open,
            day_pnl: pnl.total(),
            high_water_mark: e.trail.mark,
            now,
        };
        // The money rules need the equity: figures known, the cash balance read.
        let money = known && cash.is_some();
        if money {
            // A new high raises the floor before it is judged (intraday marks; an end-of-day
            // mark moves only at the close, in the survey).
            e.trail.observe(rules.rules.next_mark(&state, false));
            state.high_water_mark = e.trail.mark;
        }
        let findings = rules.rules.check_open(&state, holding, &self.news);
        let finding = findings
            .into_iter()
            .find(|f| money || matches!(f.rule, Rule::FlatBy | Rule::NewsBlackout));
        if let Some(f) = finding {
            e.breached = Some(day);
            let w = e.watched.clone();
            let acts_at = rules
                .rules
                .distances(&state)
                .into_iter()
                .find(|d| d.rule == f.rule)
                .map_or(Decimal::ZERO, |d| d.acts_at);
            tracing::warn!(
                sub_account = %sub, rule = f.rule.name(), reason = %f.reason,
                "prop-firm rule reached: flattening and locking the account"
            );
            let breach = NewBreach {
                sub_account: sub,
                trading_day: day,
                kind: BreachKind::PropFirmRule,
                loss_limit: acts_at,
                realized_pnl: pnl.realized,
                unrealized_pnl: pnl.open,
                breached_at: now,
                details: Some(format!(
                    "{}: {} (balance {}, open {} from {}, mark {})",
                    f.rule.name(),
                    f.reason,
                    cash.map_or_else(|| "unknown".into(), |c| c.normalize().to_string()),
                    pnl.open.normalize(),
                    source_name(pnl.source),
                    state
                        .high_water_mark
                        .map_or_else(|| "none".into(), |m| m.normalize().to_string()),
                )),
            };
            self.record(w, breach).await;
            return;
        }
        if money {
            let share = self.config.warn_buffers;
            let distances = rules.rules.distances(&state);
            for d in prop::warnings(&distances, share) {
                if e.warned.contains(&(day, d.rule)) {
                    continue;
                }
                e.warned.push((day, d.rule));
                e.warned.retain(|(d, _)| *d == day);
                let (store, w, d) = (self.store.clone(), e.watched.clone(), d.clone());
                tokio::spawn(async move { crate::notify::warning(&store, &w, day, &d).await });
            }
        }
    }

    /// Records a breach and acts on it (a new one: flatten and notify; one recorded by another
    /// monitor and not yet flattened: flatten).
    async fn record(&mut self, w: Watched, breach: NewBreach) {
        let sub = breach.sub_account;
        let kind = breach.kind;
        let details = breach.details.clone().unwrap_or_default();
        let breached_at = breach.breached_at;
        match self.store.risk().record_breach(w.sub.owner, breach).await {
            Ok(BreachRecorded::New(b)) => {
                metrics::breach("new");
                self.finish(w, b, true);
            }
            Ok(BreachRecorded::AlreadyBreached(b)) => {
                metrics::breach("already");
                if b.flattened_at.is_none() {
                    self.finish(w, b, false);
                } else if kind == BreachKind::FollowerMaxDrawdown {
                    // A follower unlocked earlier today reached its drawdown again: it is
                    // locked again, but the account's drawdown flatten was today's (one breach
                    // per account, day and kind: docs/risk.md, "Left").
                    tracing::warn!(sub_account = %sub, %details, "a follower's max drawdown reached again today: locked, not flattened again");
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        lock_drawdown(&store, &w, &details, b.trading_day, breached_at, true).await;
                    });
                }
            }
            Err(e) => {
                // Not recorded: judge again at the next quote or read.
                metrics::breach("failed");
                if let Some(entry) = self.entries.get_mut(&sub) {
                    if kind == BreachKind::FollowerDailyLoss {
                        entry.follower_breached = None;
                    } else {
                        entry.breached = None;
                    }
                }
                tracing::error!(sub_account = %sub, error = %e, "the breach could not be recorded: retried at the next change");
            }
        }
    }

    /// Flattens the breached account through ORDERS, records it, and notifies the owner (the
    /// first time only), off the monitor's loop.
    fn finish(&self, w: Watched, breach: Breach, first: bool) {
        let (store, bus) = (self.store.clone(), self.bus.clone());
        // The breach starts the flatten's trace: the intent carries it to the execution and
        // its broker calls. (What tipped the account over — a quote, a fill, a broker read —
        // reaches the monitor through its own queue and is not linked yet.)
        let span = tracing::info_span!(
            parent: None,
            "risk_flatten",
            breach = %breach.id,
            sub_account = %w.sub.id,
            first,
        );
        tokio::spawn(async move {
            if breach.kind == BreachKind::FollowerDailyLoss {
                // Locked before the flatten: a copy arriving meanwhile is skipped rather than
                // opening what the flatten is about to close.
                lock_followers(&store, &w, &breach).await;
            }
            if breach.kind == BreachKind::FollowerMaxDrawdown {
                // The followers the breach names, locked before the flatten (as above).
                lock_drawdown(
                    &store,
                    &w,
                    breach.details.as_deref().unwrap_or_default(),
                    breach.trading_day,
                    breach.breached_at,
                    true,
                )
                .await;
            }
            let intent = IntentMessage::control(
                w.sub.owner,
                w.sub.id,
                w.login.id,
                breach.breached_at,
                ControlIntent::flatten_account(ControlCause::RiskBreach {
                    breach_id: breach.id,
                    rule: breach_rule(&breach),
                }),
            );
            // Retried until it is on the stream: an account past its limit must not keep its
            // positions because the bus blinked.
            let mut wait = Duration::from_millis(200);
            loop {
                match publish(&bus, intent.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        metrics::flatten("retry");
                        tracing::error!(sub_account = %w.sub.id, error = %e, "the breach's flatten could not be published: retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
            metrics::flatten("published");
            if let Err(e) = store
                .risk()
                .mark_flattened(w.sub.owner, breach.id, Utc::now())
                .await
            {
                // The next survey finds it unmarked and publishes the same intent (same id:
                // executed once).
                tracing::warn!(breach = %breach.id, error = %e, "flatten published but not marked");
            }
            if first {
                crate::notify::breach(&store, &w, &breach).await;
            }
        }
        .instrument(span));
    }

    fn publish_status(&mut self, day: NaiveDate) {
        let now = Utc::now();
        let max_age = chrono::Duration::from_std(self.config.quote_max_age)
            .unwrap_or(chrono::Duration::seconds(10));
        let mut accounts: Vec<AccountStatus> = self
            .entries
            .iter()
            .map(|(sub, e)| {
                let pnl = e.book.pnl(&|c| self.marks.get(c).copied(), now, max_age);
                let cash = e.book.broker.and_then(|f| f.cash);
                let rules = match (&e.watched.rules, pnl, cash) {
                    (Some(r), Some(pnl), Some(balance)) if pnl.source != OpenSource::Unknown => {
                        r.rules.distances(&AccountState {
                            balance,
                            open_pnl: pnl.open,
                            day_pnl: pnl.total(),
                            high_water_mark: e.trail.mark,
                            now,
                        })
                    }
                    _ => Vec::new(),
                };
                AccountStatus {
                    sub_account_id: *sub,
                    account: e.watched.sub.name.clone(),
                    limit: e.watched.limit,
                    distance: limit_distance(pnl, e.watched.limit),
                    pnl,
                    rules_preset: e
                        .watched
                        .rules
                        .as_ref()
                        .and_then(|r| r.rules.preset.clone()),
                    balance: cash,
                    high_water_mark: e.trail.mark,
                    rules,
                    breached: e.breached == Some(day),
                }
            })
            .collect();
        accounts.sort_by_key(|a| a.sub_account_id);
        self.share(&accounts, day, now);
        let mut s = self.status.lock();
        s.trading_day = Some(day);
        s.accounts = accounts;
    }

    /// Writes each account's figures to the `jt_risk_status` bucket for the API: a change at
    /// most once a second per account, an unchanged value every [`risk_status::REFRESH_SECS`]
    /// (so its `as_of` shows it is live); an account no longer watched is removed. The writes
    /// run off the monitor's loop; a failed one is logged and made again at the next refresh.
    fn share(&mut self, accounts: &[AccountStatus], day: NaiveDate, now: chrono::DateTime<Utc>) {
        let at = Instant::now();
        let mut due = Vec::new();
        for a in accounts {
            let Some(e) = self.entries.get(&a.sub_account_id) else {
                continue;
            };
            let mut next = snapshot(a, e.watched.sub.owner, day, now);
            let write = match self.written.get(&a.sub_account_id) {
                Some((last, when)) => {
                    let since = at.duration_since(*when);
                    if last.same_figures(&next) {
                        next.changed_at = last.changed_at;
                        since >= SHARE_REFRESH
                    } else {
                        since >= SHARE_EVERY
                    }
                }
                None => true,
            };
            if write {
                self.written.insert(a.sub_account_id, (next.clone(), at));
                due.push(next);
            }
        }
        let gone: Vec<SubAccountId> = self
            .written
            .keys()
            .filter(|s| !self.entries.contains_key(s))
            .copied()
            .collect();
        for s in &gone {
            self.written.remove(s);
        }
        if due.is_empty() && gone.is_empty() {
            return;
        }
        let bus = self.bus.clone();
        tokio::spawn(async move {
            for s in due {
                if let Err(e) = risk_status::write(&bus, &s).await {
                    tracing::warn!(sub_account = %s.sub_account_id, error = %e, "risk figures not shared");
                }
            }
            for s in gone {
                if let Err(e) = risk_status::remove(&bus, s).await {
                    tracing::debug!(sub_account = %s, error = %e, "risk figures not removed");
                }
            }
        });
    }
}

/// Reads what a survey takes in ([`Monitor::apply_survey`]): every watched account with its
/// stored positions and breaches of the trading day, the news calendar around now and the
/// paper records. `None` when the watched accounts are unreadable (the survey is skipped).
async fn gather(store: &Store, generations: HashMap<SubAccountId, u64>) -> Option<Surveyed> {
    let watched = match watch::survey(store).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the watched accounts: survey skipped");
            return None;
        }
    };
    let now = Utc::now();
    let day = trading_day(now);
    let horizon = chrono::Duration::hours(NEWS_HORIZON_HOURS);
    let news = match store
        .rules()
        .news_between(now - horizon, now + horizon)
        .await
    {
        Ok(news) => Some(news.into_iter().map(|n| n.event).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "the news calendar is unreadable");
            None
        }
    };
    // The day's breaches are read once per owner, not once per account and kind.
    let mut breaches: HashMap<UserId, Option<Vec<Breach>>> = HashMap::new();
    let owners: std::collections::HashSet<UserId> = watched.iter().map(|w| w.sub.owner).collect();
    for owner in owners {
        let read = match store.risk().breaches_on(owner, day).await {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(%owner, error = %e, "breaches unreadable");
                None
            }
        };
        breaches.insert(owner, read);
    }
    let mut accounts = Vec::with_capacity(watched.len());
    for w in watched {
        let (owner, sub) = (w.sub.owner, w.sub.id);
        let positions = match store.broker().positions(owner, sub).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(sub_account = %sub, error = %e, "stored positions unreadable");
                None
            }
        };
        let breaches = breaches.get(&owner).cloned().flatten().map(|all| {
            all.into_iter()
                .filter(|b| b.sub_account == sub)
                .collect::<Vec<_>>()
        });
        accounts.push(SurveyedAccount {
            watched: w,
            positions,
            breaches,
        });
    }
    let papers = paper::Papers::read(store, day).await;
    Some(Surveyed {
        now,
        day,
        accounts,
        generations,
        news,
        papers,
    })
}

/// Lifts the daily loss locks this service set on an earlier trading day on the followers
/// of `w` (at the first survey of a day without a follower breach). A failed lift is logged;
/// the next survey lifts it.
async fn lift_past_locks(store: &Store, w: &Watched) {
    for f in &w.followers {
        if f.lockout.as_deref().is_some_and(watch::lifted_at_next_day)
            && let Err(e) = store.copying().set_lockout(w.sub.owner, f.id, None).await
        {
            tracing::warn!(follower = %f.id, error = %e, "a past day's lock could not be lifted: retried at the next survey");
        }
    }
}

/// Locks out the followers a max drawdown breach of `day` (recorded at `breached_at`) names in
/// its `details` — every one (`all`: overwriting a lock this monitor set in memory) or only
/// those the store shows unlocked (a survey) — but not one its owner unlocked since: its
/// peak tracking started after the breach. A failed lock is logged; the next survey locks it.
async fn lock_drawdown(
    store: &Store,
    w: &Watched,
    details: &str,
    day: NaiveDate,
    breached_at: chrono::DateTime<Utc>,
    all: bool,
) {
    for f in &w.followers {
        if !all && f.lockout.is_some() {
            continue;
        }
        let Some(segment) = drawdown::segment_of(details, f.id) else {
            continue;
        };
        if !drawdown::still_to_lock(f.peak.as_ref().map(|p| p.started_at), breached_at) {
            continue;
        }
        let reason = drawdown::lock_reason(day, segment);
        if let Err(e) = store
            .copying()
            .set_lockout(w.sub.owner, f.id, Some(&reason))
            .await
        {
            tracing::warn!(follower = %f.id, error = %e, "the follower could not be locked out: retried at the next survey");
        }
    }
}

/// Locks out every follower with a daily loss limit on the breached account that is not
/// locked yet (the account is flattened for the trading day under the strictest of their
/// limits). A failed lock is logged; the next survey locks it.
async fn lock_followers(store: &Store, w: &Watched, breach: &Breach) {
    for f in w.followers.iter().filter(|f| f.lockout.is_none()) {
        let Some(limit) = f.limit else {
            continue;
        };
        let reason = format!(
            "{} on {}: the account's P&L {} reached the follower's daily loss limit of {} \
             (the strictest on the account: {}); copies stop until the next trading day",
            watch::FOLLOWER_LOCK,
            breach.trading_day,
            (breach.realized_pnl + breach.unrealized_pnl).normalize(),
            limit.normalize(),
            breach.loss_limit.normalize(),
        );
        if let Err(e) = store
            .copying()
            .set_lockout(w.sub.owner, f.id, Some(&reason))
            .await
        {
            tracing::warn!(follower = %f.id, error = %e, "the follower could not be locked out: retried at the next survey");
        }
    }
}

/// How far `pnl` is from the max daily loss `limit` (`total + limit`; ≤ 0 is a breach). `None`
/// without a limit, before the first read, and while positions are open with neither a fresh
/// quote nor the broker's open figure: the open P&L is then unknown, and a distance counting it
/// as 0 would show an account that may be past its limit as safe. The breach decision makes
/// the same choice (nothing is judged on an unknown open P&L, and the broker is read at once).
#[must_use]
pub fn limit_distance(pnl: Option<Pnl>, limit: Option<Decimal>) -> Option<Decimal> {
    pnl.filter(|p| p.source != OpenSource::Unknown)
        .zip(limit)
        .map(|(p, l)| p.total() + l)
}

/// The shared form of one account's status.
fn snapshot(
    a: &AccountStatus,
    owner: jt_store::UserId,
    day: NaiveDate,
    now: chrono::DateTime<Utc>,
) -> RiskSnapshot {
    RiskSnapshot {
        sub_account_id: a.sub_account_id,
        owner,
        trading_day: day,
        realized_pnl: a.pnl.map(|p| p.realized),
        open_pnl: a
            .pnl
            .filter(|p| p.source != OpenSource::Unknown)
            .map(|p| p.open),
        open_source: a.pnl.map(|p| {
            match p.source {
                OpenSource::Quotes => "quotes",
                OpenSource::Broker => "broker",
                OpenSource::Flat => "flat",
                OpenSource::Unknown => "unknown",
            }
            .to_owned()
        }),
        max_daily_loss: a.limit,
        max_daily_loss_distance: a.distance,
        balance: a.balance,
        high_water_mark: a.high_water_mark,
        rules_preset: a.rules_preset.clone(),
        rules: a.rules.clone(),
        breached: a.breached,
        changed_at: now,
        as_of: now,
    }
}

/// The rule a breach is named by: `max_daily_loss`, or the prop-firm rule leading its details.
#[must_use]
pub fn breach_rule(b: &Breach) -> String {
    rule_of(b.kind, b.details.as_deref())
}

fn rule_of(kind: BreachKind, details: Option<&str>) -> String {
    match kind {
        BreachKind::PropFirmRule => details
            .and_then(|d| d.split_once(':'))
            .map_or("prop_firm_rule", |(rule, _)| rule)
            .to_owned(),
        kind => kind.to_string(),
    }
}

fn source_name(source: OpenSource) -> &'static str {
    match source {
        OpenSource::Quotes => "quotes",
        OpenSource::Broker => "the broker",
        OpenSource::Flat | OpenSource::Unknown => "nothing open",
    }
}

/// The broker's P&L figure of a watched account.
async fn read_figure(brokers: &BrokerAccess, w: &Watched) -> Result<BrokerFigure, String> {
    let broker = brokers
        .for_account(&w.login)
        .await
        .map_err(|e| e.to_string())?;
    let pnl = broker
        .account_pnl(&AccountId::from(w.sub.broker_sub_account_id.as_str()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(BrokerFigure {
        realized: pnl.realized,
        open: Some(pnl.open),
        // The cash balance; a venue reporting only net liquidation gives it less open P&L.
        cash: pnl.cash.or(pnl.net_liq.map(|n| n - pnl.open)),
        at: Utc::now(),
    })
}

pub(crate) async fn publish(bus: &Bus, intent: IntentMessage) -> Result<(), String> {
    let id = MessageId::new(intent.message_id()).map_err(|e| e.to_string())?;
    bus.publish(
        &Envelope::new(id, intent).with_trace(jt_bus::TraceContext::from_pairs(
            &jt_runtime::telemetry::inject_context(),
        )),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_open_pnl_has_no_distance_rather_than_a_safe_one() {
        let pnl = |open, source| {
            Some(Pnl {
                realized: Decimal::from(-80),
                open: Decimal::from(open),
                source,
            })
        };
        let limit = Some(Decimal::from(100));
        assert_eq!(
            limit_distance(pnl(-10, OpenSource::Quotes), limit),
            Some(Decimal::from(10))
        );
        assert_eq!(
            limit_distance(pnl(0, OpenSource::Flat), limit),
            Some(Decimal::from(20))
        );
        assert_eq!(limit_distance(pnl(0, OpenSource::Unknown), limit), None);
        assert_eq!(limit_distance(None, limit), None);
        assert_eq!(limit_distance(pnl(-10, OpenSource::Quotes), None), None);
    }

    #[test]
    fn a_breach_is_named_by_its_kind_or_the_rule_leading_its_details() {
        assert_eq!(
            rule_of(BreachKind::MaxDailyLoss, Some("realized −50 …")),
            "max_daily_loss"
        );
        assert_eq!(
            rule_of(
                BreachKind::PropFirmRule,
                Some("trailing_drawdown: equity at $48750 reached the safety buffer")
            ),
            "trailing_drawdown"
        );
        assert_eq!(
            rule_of(BreachKind::PropFirmRule, None),
            "prop_firm_rule",
            "a row without details still names its kind"
        );
    }
}
