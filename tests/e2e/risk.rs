//! The risk service (issue #23) on JetStream, PostgreSQL and the simulator, beside the ingest,
//! the executor and the connection manager of the harness: an account losing past its
//! `max_daily_loss` at the simulator is flattened once, locked for the trading day (a new entry
//! is refused with the reason) and its owner's channel gets one queued `max_loss` notification;
//! a quote crossing the limit is acted on within a second, even while a survey waits on the
//! store; a risk service restarted after the
//! breach neither flattens again nor forgets the lock; a replacement replica finishes a breach
//! whose flatten a dead one never published. Prop-firm rules: an entry that would break one is
//! refused; an intraday trailing drawdown flattens and locks at its buffer, before the firm's
//! floor, once; a flat-by window that began flattens an open position once. Kill switches
//! engaged through the API (account, user, platform) are carried out by the risk service —
//! cancelled and flat, entries refused until released — and a restarted risk service does not
//! flatten again. A follower (copy trading) past its own daily loss limit is locked out and
//! its account flattened once, the leader left alone.
//!
//! Needs `NATS_URL` (JetStream 2.10+) and `DATABASE_URL` (PostgreSQL): `make test` sets both.
//! Without them the harness fails loudly; nothing here is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use jt_domain::session::trading_day;
use jt_domain::{Settings, SettingsOverrides};
use jt_e2e::{ConnectionManager, Options, Platform, alert, eventually};
use jt_messages::QuoteMessage;
use jt_risk::RiskConfig;
use jt_store::entity::{BreachKind, ChannelKind};
use jt_store::repo::notifications::NewChannel;
use jt_store::repo::risk::NewBreach;
use jt_store::{IntentKind, IntentSource, IntentStatus, Secret};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// The connection manager and the positions service (the store kept in step with the
/// simulator's events), with a risk service on their context, stopped and restarted alone.
struct Services {
    connmgr: ConnectionManager,
    positions: jt_service::Running,
    risk: Option<(CancellationToken, jt_service::Running)>,
    /// Where the notifier sends e-mail.
    smtp_url: Option<String>,
}

impl Services {
    async fn start(p: &Platform) -> Self {
        Self::start_with_mail(p, None).await
    }

    async fn start_with_mail(p: &Platform, smtp_url: Option<String>) -> Self {
        let connmgr = ConnectionManager::start(p).await;
        let positions = jt_positions::start(
            jt_positions::PositionsConfig {
                reconcile_every: Duration::from_secs(3600),
                ..jt_positions::PositionsConfig::default()
            },
            &connmgr.ctx,
        )
        .await
        .unwrap();
        let mut s = Self {
            connmgr,
            positions,
            risk: None,
            smtp_url,
        };
        s.start_risk().await;
        s
    }

    async fn start_risk(&mut self) {
        let stop = self.connmgr.stop.child_token();
        let ctx = self.connmgr.ctx.clone().with_shutdown(stop.clone());
        let config = RiskConfig {
            poll_every: Duration::from_secs(1),
            resync_every: Duration::from_secs(1),
            survey_every: Duration::from_secs(1),
            notify: jt_notify::NotifyConfig {
                poll_every: Duration::from_millis(200),
                smtp_url: self.smtp_url.clone().map(Secret::new),
                // The test's HTTP receiver listens on loopback.
                allow_private_targets: true,
                ..jt_notify::NotifyConfig::default()
            },
            ..RiskConfig::default()
        };
        let running = jt_risk::start(config, &ctx).await.unwrap();
        self.risk = Some((stop, running));
    }

    async fn stop_risk(&mut self) {
        let (stop, running) = self.risk.take().unwrap();
        stop.cancel();
        running.wait().await.unwrap();
    }

    async fn stop(mut self) {
        if self.risk.is_some() {
            self.stop_risk().await;
        }
        let Self {
            connmgr, positions, ..
        } = self;
        connmgr.stop.cancel();
        positions.wait().await.unwrap();
        connmgr.stop().await;
    }
}

fn limited(limit: Decimal) -> Settings {
    Settings {
        max_daily_loss: limit,
        ..Settings::default()
    }
}

async fn flattens(p: &Platform) -> Vec<jt_store::repo::intents::Intent> {
    p.store
        .intents()
        .for_sub_account(p.user, p.subs[0].id, 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.source == IntentSource::Control && i.kind == IntentKind::Flatten)
        .collect()
}

/// A local HTTP receiver of webhook notifications: every request's headers and body.
struct Receiver {
    url: String,
    seen: std::sync::Arc<parking_lot::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let seen: std::sync::Arc<parking_lot::Mutex<Vec<(axum::http::HeaderMap, String)>>> =
            std::sync::Arc::default();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let seen = seen.clone();
                move |headers: axum::http::HeaderMap, body: String| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().push((headers, body));
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, seen }
    }
}

/// The owner's channels for `max_loss`: a signed webhook to `hook` and an e-mail address.
/// Returns the webhook's signing secret.
async fn channels(p: &Platform, hook: &Receiver) -> String {
    let (_, secret) = p
        .store
        .notifications()
        .create_channel_with_secret(
            p.user,
            NewChannel {
                kind: ChannelKind::Webhook,
                label: "desk".into(),
                target: Secret::new(hook.url.clone()),
                events: vec!["max_loss".into()],
            },
        )
        .await
        .unwrap();
    p.store
        .notifications()
        .create_channel(
            p.user,
            NewChannel {
                kind: ChannelKind::Email,
                label: "phone".into(),
                target: Secret::new("trader@example.com"),
                events: vec!["max_loss".into()],
            },
        )
        .await
        .unwrap();
    secret.unwrap().expose().to_string()
}

#[tokio::test]
async fn an_account_losing_past_its_limit_is_flattened_once_locked_for_the_day_and_notified() {
    let p = Platform::start(Options::default()).await;
    let hook = Receiver::start().await;
    let smtp = jt_testkit::smtp::SmtpServer::start(jt_testkit::smtp::Behaviour::Accept).await;
    let secret = channels(&p, &hook).await;
    let (_, token) = p
        .recorder(limited(dec!(100)), &[(0, SettingsOverrides::default())])
        .await;
    let mut services = Services::start_with_mail(&p, Some(smtp.url())).await;

    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    // A loss inside the limit changes nothing: −$40 on one MNQ ($2 a point).
    p.price("MNQ", "20980.00");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.net_position(0), 1, "inside the limit: still open");
    assert!(flattens(&p).await.is_empty());

    // −$200: past the $100 limit. The broker's figure (read every second here) shows it.
    p.price("MNQ", "20900.00");
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    let day = trading_day(Utc::now());
    let breach = eventually("the breach marked flattened", WAIT, async || {
        p.store
            .risk()
            .breach(p.user, p.subs[0].id, day, BreachKind::MaxDailyLoss)
            .await
            .unwrap()
            .filter(|b| b.flattened_at.is_some())
    })
    .await;
    assert_eq!(breach.loss_limit, dec!(100));
    assert!(
        breach.realized_pnl + breach.unrealized_pnl <= dec!(-100),
        "{breach:?}"
    );
    let done = flattens(&p).await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(
        done[0].idempotency_key,
        format!("breach:{}:account:{}", breach.id, p.subs[0].id)
    );

    // Delivered once to each channel: a signed webhook to the local receiver, an e-mail to the
    // local SMTP server.
    let (headers, body) = eventually("the webhook notification", WAIT, async || {
        hook.seen.lock().first().cloned()
    })
    .await;
    let signature = headers
        .get("x-jt-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap();
    assert!(
        jt_notify::sign::verify(
            &secret,
            signature,
            body.as_bytes(),
            Utc::now().timestamp(),
            300
        ),
        "the signature verifies with the channel's secret"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["event"], "max_loss", "{json}");
    assert_eq!(json["payload"]["limit"], serde_json::json!("100"), "{json}");
    let mails = smtp.wait_for_mails(1, WAIT).await;
    assert!(mails[0].contains("trader@example.com"), "{}", mails[0]);

    // Locked for the trading day: a new entry is refused with the reason.
    p.price("MNQ", "21000.00");
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let refused = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(refused[0].status, IntentStatus::Skipped, "{refused:#?}");
    assert!(
        refused[0]
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("max_daily_loss") || r.contains("daily loss")),
        "{:?}",
        refused[0].status_reason
    );
    assert_eq!(p.net_position(0), 0);

    // A restarted risk service flattens nothing again and queues nothing again.
    services.stop_risk().await;
    services.start_risk().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(flattens(&p).await.len(), 1);
    assert_eq!(hook.seen.lock().len(), 1, "notified once");
    assert_eq!(smtp.mails().len(), 1, "mailed once");

    services.stop().await;
    p.stop().await;
}

/// An account long one MNQ (an alert's entry) whose trader's max daily loss is $100, with the
/// connection manager, the positions service and a risk service running; returns them and the
/// contract as the store (and the quotes) name it, once the position is stored.
async fn long_one_with_a_100_dollar_limit() -> (Platform, Services, String) {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(limited(dec!(100)), &[(0, SettingsOverrides::default())])
        .await;
    let services = Services::start(&p).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;
    // The position reaches the monitor's book (a broker event through the connection manager).
    let contract = eventually("the position in the store", WAIT, async || {
        p.store
            .broker()
            .positions(p.user, p.subs[0].id)
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.net_quantity == 1)
            .map(|h| h.contract)
    })
    .await;
    (p, services, contract)
}

/// The market falls to −$200 on that long (past its $100 limit) at the simulator, and its quote
/// reaches the bus as the connection manager's feed publishes it.
async fn fall_past_the_limit(p: &Platform, contract: &str) {
    p.price("MNQ", "20900.00");
    QuoteMessage {
        contract: contract.to_owned(),
        source: "e2e".into(),
        bid: Some(dec!(20899.75)),
        ask: Some(dec!(20900.00)),
        last: Some(dec!(20900.00)),
        at: Utc::now(),
    }
    .publish(&p.bus)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_quote_crossing_the_limit_is_acted_on_within_a_second() {
    let (p, services, contract) = long_one_with_a_100_dollar_limit().await;
    assert_eq!(
        jt_domain::instrument::resolve_ticker(&contract).map(|i| i.root),
        Ok("MNQ"),
        "the store names the contract as quotes do, not by the broker's id: {contract}"
    );
    // Let the monitor see the position and read the broker once (nothing breached yet).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.net_position(0), 1);

    // The market falls to −$200 and its quote reaches the bus (as the connection manager's
    // feed publishes it): the flatten order reaches the simulator within a second.
    let crossed = Instant::now();
    fall_past_the_limit(&p, &contract).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    let took = crossed.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "flattened {took:?} after the crossing quote"
    );
    let breach = p
        .store
        .risk()
        .breach(
            p.user,
            p.subs[0].id,
            trading_day(Utc::now()),
            BreachKind::MaxDailyLoss,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        breach
            .details
            .as_deref()
            .is_some_and(|d| d.contains("quotes")),
        "{breach:?}"
    );
    services.stop().await;
    p.stop().await;
}

/// The survey (the store re-read of every watched account, every `JT_RISK_SURVEY_SECS`) runs
/// off the monitor's loop: a survey stuck on the store — here on a table lock, in production
/// on a survey of many accounts taking seconds — does not hold up the judging of quotes.
#[tokio::test]
async fn a_quote_is_judged_while_a_survey_waits_on_the_store() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let (p, services, contract) = long_one_with_a_100_dollar_limit().await;
    // Let the monitor see the position (a survey and a broker read; nothing breached yet).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Every survey from now on waits on the news calendar, which the test holds locked; two
    // survey periods pass, so one is waiting when the quote comes.
    let db = p.store.connection();
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE news_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    fall_past_the_limit(&p, &contract).await;
    // The flatten (which reads no news: the account has no prop-firm rules) reaches the
    // simulator while the survey still waits.
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    let breach = p
        .store
        .risk()
        .breach(
            p.user,
            p.subs[0].id,
            trading_day(Utc::now()),
            BreachKind::MaxDailyLoss,
        )
        .await
        .unwrap();
    assert!(breach.is_some(), "the breach is recorded during the survey");
    assert_eq!(flattens(&p).await.len(), 1);

    // Released, the waiting survey completes and finds the breach: nothing is flattened again.
    lock.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(flattens(&p).await.len(), 1);
    assert_eq!(p.net_position(0), 0);
    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_breach_recorded_by_a_monitor_that_died_before_flattening_is_flattened_by_the_next() {
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(limited(dec!(100)), &[(0, SettingsOverrides::default())])
        .await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;
    // What a monitor killed between recording the breach and publishing its flatten leaves.
    let day = trading_day(Utc::now());
    p.store
        .risk()
        .record_breach(
            p.user,
            NewBreach {
                sub_account: p.subs[0].id,
                trading_day: day,
                kind: BreachKind::MaxDailyLoss,
                loss_limit: dec!(100),
                realized_pnl: dec!(-150),
                unrealized_pnl: Decimal::ZERO,
                breached_at: Utc::now(),
                details: None,
            },
        )
        .await
        .unwrap();
    let services = Services::start(&p).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    eventually("the breach marked flattened", WAIT, async || {
        p.store
            .risk()
            .breach(p.user, p.subs[0].id, day, BreachKind::MaxDailyLoss)
            .await
            .unwrap()
            .filter(|b| b.flattened_at.is_some())
    })
    .await;
    assert_eq!(flattens(&p).await.len(), 1);
    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn prop_firm_rules_refuse_an_entry_that_would_break_them_with_the_rule_and_the_numbers() {
    use jt_domain::propfirm::{MaxContracts, NewsBlackout, NewsEvent, RuleSet};
    let p = Platform::start(Options::default()).await;
    let sized = |n| SettingsOverrides {
        initial_position_size: Some(n),
        ..SettingsOverrides::default()
    };
    let (_, too_big) = p.recorder(Settings::default(), &[(0, sized(21))]).await;
    // Two MNQ at most, micros counted as the firm counts them (ten to a contract): 20 micros.
    let mut rules = RuleSet {
        max_contracts: Some(MaxContracts {
            per_position: 2,
            per_order: None,
            micros_per_contract: 10,
        }),
        ..RuleSet::default()
    };
    p.store
        .rules()
        .set(p.user, p.subs[0].id, &rules)
        .await
        .unwrap();
    let s = p.queued(&too_big, &alert("buy", "long", "")).await;
    let refused = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(refused[0].status, IntentStatus::Skipped, "{refused:#?}");
    let reason = refused[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("max_contracts_per_position") && reason.contains("2.1 contracts"),
        "{reason}"
    );
    assert_eq!(p.net_position(0), 0, "nothing sent");
    let (_, token) = p.recorder(Settings::default(), &[(0, sized(20))]).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let entered = p.settled_intents(s, 1, WAIT).await;
    assert!(
        matches!(
            entered[0].status,
            IntentStatus::Accepted | IntentStatus::Filled
        ),
        "{entered:#?}"
    );
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 20).await;
    // Closing is never refused by a rule.
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;

    // A listed news event in a minute: entries inside its window are refused, naming it.
    rules.news_blackout = Some(NewsBlackout {
        minutes_before: 2,
        minutes_after: 2,
        flatten: false,
    });
    p.store
        .rules()
        .set(p.user, p.subs[0].id, &rules)
        .await
        .unwrap();
    let cpi = p
        .store
        .rules()
        .add_news(NewsEvent {
            at: Utc::now() + chrono::Duration::minutes(1),
            title: format!("CPI {}", p.subs[0].id),
        })
        .await
        .unwrap();
    let s = p
        .queued(
            &token,
            &alert("buy", "long", r#","comment":"after the close""#),
        )
        .await;
    let refused = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(refused[0].status, IntentStatus::Skipped, "{refused:#?}");
    let reason = refused[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("news_blackout") && reason.contains("CPI"),
        "{reason}"
    );
    p.store.rules().remove_news(cpi.id).await.unwrap();

    // The entry's risk to its stop counts: a $1000 daily loss limit acting $100 before it.
    // Four MNQ with a stop 500 ticks away (125 points × 4 × $2 = $1000 at the stop) would land
    // the day past −$900: refused, naming the rule and the numbers; 400 ticks ($800) goes.
    rules.news_blackout = None;
    rules.daily_loss = Some(jt_domain::propfirm::DailyLoss {
        amount: dec!(1000),
        buffer: dec!(100),
    });
    p.store
        .rules()
        .set(p.user, p.subs[0].id, &rules)
        .await
        .unwrap();
    let stopped = |ticks| Settings {
        initial_position_size: 4,
        sl_enabled: true,
        sl_amount: ticks,
        ..Settings::default()
    };
    let (_, wide) = p
        .recorder(stopped(dec!(500)), &[(0, SettingsOverrides::default())])
        .await;
    let s = p.queued(&wide, &alert("buy", "long", "")).await;
    let refused = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(refused[0].status, IntentStatus::Skipped, "{refused:#?}");
    let reason = refused[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("daily_loss")
            && reason.contains("−$1000 at the order's stop")
            && reason.contains("the platform acts at −$900"),
        "{reason}"
    );
    assert_eq!(p.net_position(0), 0, "nothing sent");
    let (_, narrow) = p
        .recorder(stopped(dec!(400)), &[(0, SettingsOverrides::default())])
        .await;
    let s = p.queued(&narrow, &alert("buy", "long", "")).await;
    let entered = p.settled_intents(s, 1, WAIT).await;
    assert!(
        matches!(
            entered[0].status,
            IntentStatus::Accepted | IntentStatus::Filled
        ),
        "{entered:#?}"
    );
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 4).await;
    p.stop().await;
}

/// The simulator account's cash balance and open P&L as the broker reports them.
async fn broker_pnl(p: &Platform, services: &Services) -> jt_broker::AccountPnl {
    let login = p
        .store
        .system()
        .active_accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == p.subs[0].broker_account)
        .unwrap();
    let broker = services
        .connmgr
        .ctx
        .brokers
        .for_account(&login)
        .await
        .unwrap();
    broker
        .account_pnl(&jt_broker::AccountId::from(
            p.subs[0].broker_sub_account_id.as_str(),
        ))
        .await
        .unwrap()
}

async fn rule_breach(p: &Platform) -> Option<jt_store::repo::risk::Breach> {
    p.store
        .risk()
        .breach(
            p.user,
            p.subs[0].id,
            trading_day(Utc::now()),
            BreachKind::PropFirmRule,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_intraday_trailing_drawdown_flattens_at_its_buffer_before_the_firms_floor_once() {
    use jt_domain::propfirm::{RuleSet, TrailingDrawdown, TrailingMode};
    let p = Platform::start(Options::default()).await;
    p.store
        .notifications()
        .create_channel(
            p.user,
            NewChannel {
                kind: ChannelKind::Webhook,
                label: "desk".into(),
                target: Secret::new("http://127.0.0.1:9/hook"),
                events: vec!["rule_breach".into(), "rule_warning".into()],
            },
        )
        .await
        .unwrap();
    // No max daily loss: the account is watched for its rules alone.
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let mut services = Services::start(&p).await;
    p.price("MNQ", "21000.00");
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    // The firm's account starts at the simulator's balance; $100 of trailing drawdown, acted
    // on $20 before it (one MNQ: $2 a point).
    let start = broker_pnl(&p, &services).await.cash.unwrap();
    let rules = RuleSet {
        starting_balance: Some(start),
        trailing_drawdown: Some(TrailingDrawdown {
            amount: dec!(100),
            mode: TrailingMode::Intraday,
            stops_at_offset: None,
            buffer: dec!(20),
        }),
        ..RuleSet::default()
    };
    p.store
        .rules()
        .set(p.user, p.subs[0].id, &rules)
        .await
        .unwrap();

    // A new high: +50 points = +$100 of equity. The mark follows and is stored.
    p.price("MNQ", "21050.00");
    let mark = eventually("the mark raised to the new high", WAIT, async || {
        p.store
            .rules()
            .get(p.user, p.subs[0].id)
            .await
            .unwrap()
            .and_then(|r| r.high_water_mark)
            .filter(|m| *m >= start + dec!(100))
    })
    .await;
    let floor = mark - dec!(100);
    // Down to +$40: above the buffer (floor + $20), still open.
    p.price("MNQ", "21020.00");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.net_position(0), 1, "above the buffer: still open");
    assert!(rule_breach(&p).await.is_none());

    // Down to +$10: inside the buffer, $10 above the firm's floor — flattened there.
    p.price("MNQ", "21005.00");
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    let breach = eventually("the rule breach marked flattened", WAIT, async || {
        rule_breach(&p).await.filter(|b| b.flattened_at.is_some())
    })
    .await;
    let details = breach.details.clone().unwrap_or_default();
    assert!(details.starts_with("trailing_drawdown:"), "{details}");
    assert_eq!(
        breach.loss_limit,
        floor + dec!(20),
        "acts at floor + buffer"
    );
    let after = broker_pnl(&p, &services).await.cash.unwrap();
    assert!(
        after > floor,
        "flattened before the firm's floor: balance {after}, floor {floor}"
    );
    let done = flattens(&p).await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(
        done[0].idempotency_key,
        format!("breach:{}:account:{}", breach.id, p.subs[0].id)
    );

    // Warned once on the way (within twice the buffer), then the breach notified once. The
    // delivery log, not the due list: the notifier may already have tried (and rescheduled)
    // the warning against the closed port.
    let log = p
        .store
        .notifications()
        .deliveries(
            p.user,
            &jt_store::repo::notifications::DeliveryQuery {
                channel: None,
                status: None,
                after: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = log.iter().map(|d| d.event_kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "rule_breach").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "rule_warning").count(),
        1,
        "{kinds:?}"
    );

    // Locked for the trading day: a new entry is refused naming the rule.
    p.price("MNQ", "21100.00");
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    let refused = p.settled_intents(s, 1, WAIT).await;
    assert_eq!(refused[0].status, IntentStatus::Skipped, "{refused:#?}");
    let reason = refused[0].status_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("trailing_drawdown") && reason.contains("locked for this trading day"),
        "{reason}"
    );
    assert_eq!(p.net_position(0), 0);

    // A restarted risk service does not flatten again.
    services.stop_risk().await;
    services.start_risk().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(flattens(&p).await.len(), 1);
    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_flat_by_window_that_began_flattens_an_open_position_once() {
    use jt_domain::propfirm::{FlatBy, RuleSet};
    use jt_domain::settings::{ClockTime, TimeZone};
    let p = Platform::start(Options::default()).await;
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let services = Services::start(&p).await;
    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    // The firm's flat-by time is two minutes ahead; the platform flattens five minutes before
    // it: the window began three minutes ago. In UTC, or in Tokyo when UTC is near midnight (a
    // deadline past midnight would be read as today's, a day ago). Within three minutes after
    // 17:00 Chicago a window cannot have begun in the new session: this test fails then.
    let now = Utc::now();
    let zone = if (now + chrono::Duration::minutes(10)).date_naive() == now.date_naive() {
        chrono_tz::UTC
    } else {
        chrono_tz::Asia::Tokyo
    };
    let deadline = (now + chrono::Duration::minutes(2))
        .with_timezone(&zone)
        .time();
    let rules = RuleSet {
        flat_by: Some(FlatBy {
            time: ClockTime(deadline),
            time_zone: TimeZone(zone),
            minutes_before: 5,
        }),
        ..RuleSet::default()
    };
    p.store
        .rules()
        .set(p.user, p.subs[0].id, &rules)
        .await
        .unwrap();
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    let breach = eventually("the flat-by breach marked flattened", WAIT, async || {
        rule_breach(&p).await.filter(|b| b.flattened_at.is_some())
    })
    .await;
    assert!(
        breach
            .details
            .as_deref()
            .is_some_and(|d| d.starts_with("flat_by:")),
        "{breach:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(flattens(&p).await.len(), 1, "once");
    services.stop().await;
    p.stop().await;
}

/// Waits until intent `id` is recorded and no longer pending at `GET /intents/{id}`; its
/// decision and reason.
async fn decided(c: &jt_e2e::api::Client, id: &str) -> serde_json::Value {
    eventually(&format!("intent {id} decided"), WAIT, async || {
        let (status, v) = c
            .call(reqwest::Method::GET, &format!("/intents/{id}"), None, &[])
            .await;
        (status == 200 && v["decision"] != "pending").then_some(v)
    })
    .await
}

/// A kill switch change through the API: the ids of the flattens it announces.
async fn kill(c: &jt_e2e::api::Client, path: &str, engaged: bool) -> Vec<String> {
    let (status, answer) = c
        .call(
            reqwest::Method::PUT,
            path,
            Some(serde_json::json!({"engaged": engaged, "reason": "e2e"})),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{path}: {answer}");
    assert_eq!(answer["engaged"], engaged, "{answer}");
    answer["flatten"]["intent_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Flatten intents recorded on sub-account `index`.
async fn flattens_on(p: &Platform, index: usize) -> usize {
    p.store
        .intents()
        .for_sub_account(p.user, p.subs[index].id, 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.source == IntentSource::Control && i.kind == IntentKind::Flatten)
        .count()
}

#[tokio::test]
async fn kill_switches_from_the_api_are_carried_out_by_the_risk_service_once_each() {
    use jt_store::Role;
    use jt_store::repo::auth::NewUser;

    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let base = jt_e2e::api::serve_api(&p).await;
    let user = jt_e2e::api::Client::login(&base, &p.email(), jt_e2e::USER_PASSWORD).await;
    let admin_email = format!("ops-{}@e2e.test", uuid::Uuid::new_v4().simple());
    p.store
        .users()
        .register(NewUser {
            email: admin_email.clone(),
            display_name: None,
            password: Secret::new(jt_e2e::USER_PASSWORD),
            role: Role::Admin,
            approved: true,
        })
        .await
        .unwrap();
    let admin = jt_e2e::api::Client::login(&base, &admin_email, jt_e2e::USER_PASSWORD).await;
    let mut risk = Some(jt_e2e::RiskService::start(&p).await);

    // Both accounts long 2 with a take-profit and a stop working.
    let bracketed = Settings {
        initial_position_size: 2,
        tp_targets: vec![jt_domain::settings::TpTarget {
            value: dec!(40),
            trim: dec!(0),
        }],
        tp_units: jt_domain::settings::PriceUnits::Ticks,
        trim_units: jt_domain::settings::TrimUnits::Contracts,
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    };
    let (_, token) = p
        .recorder(
            bracketed,
            &[
                (0, SettingsOverrides::default()),
                (1, SettingsOverrides::default()),
            ],
        )
        .await;
    let enter = async |n: u32| {
        let s = p
            .queued(
                &token,
                &alert("buy", "long", &format!(r#","comment":"entry {n}""#)),
            )
            .await;
        p.settled_intents(s, 2, WAIT).await;
        for i in 0..2 {
            p.wait_orders(i, WAIT, |o| {
                p.net_position(i) == 2 && o.iter().filter(|o| jt_e2e::is_working(o)).count() == 2
            })
            .await;
        }
    };
    let flat = async |i: usize| {
        p.wait_orders(i, WAIT, |o| {
            p.net_position(i) == 0 && !o.iter().any(jt_e2e::is_working)
        })
        .await;
    };
    // A manual entry on account `i`: its decision and reason.
    let manual = async |i: usize, key: &str| {
        let (status, q) = user
            .call(
                reqwest::Method::POST,
                &format!("/sub-accounts/{}/orders", p.subs[i].id),
                Some(serde_json::json!({"symbol": "MNQ1!", "action": "entry",
                                        "direction": "long", "qty": 1})),
                &[("idempotency-key", key)],
            )
            .await;
        assert_eq!(status, 202, "{q}");
        decided(&user, q["intent_ids"][0].as_str().unwrap()).await
    };
    let refused = |v: &serde_json::Value| {
        ["skipped", "rejected", "failed"].contains(&v["decision"].as_str().unwrap_or_default())
            && v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("kill switch"))
    };
    enter(1).await;

    // The account's switch: that account cancelled and flat (the announced intent is the one
    // executed), the other untouched; an entry there refused with the reason.
    let ids = kill(&user, &format!("/sub-accounts/{}/kill", p.subs[0].id), true).await;
    assert_eq!(ids.len(), 1);
    decided(&user, &ids[0]).await;
    flat(0).await;
    assert_eq!(p.net_position(1), 2, "the other account keeps its position");
    let v = manual(0, "under-account-kill").await;
    assert!(refused(&v), "{v}");
    assert_eq!(p.net_position(0), 0);

    // Restarted while engaged: nothing flattened again.
    let orders_before = p.orders(0).len();
    risk.take().unwrap().stop().await;
    risk = Some(jt_e2e::RiskService::start(&p).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(flattens_on(&p, 0).await, 1, "carried out once");
    assert_eq!(
        p.orders(0).len(),
        orders_before,
        "nothing new at the broker"
    );

    // Resumed: entries go again.
    assert!(
        kill(
            &user,
            &format!("/sub-accounts/{}/kill", p.subs[0].id),
            false
        )
        .await
        .is_empty()
    );
    let v = manual(0, "after-account-resume").await;
    assert_ne!(v["decision"], "skipped", "{v}");
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 1).await;

    // The user's switch: every account of theirs.
    let ids = kill(&user, "/kill", true).await;
    assert_eq!(ids.len(), 2);
    for id in &ids {
        decided(&user, id).await;
    }
    flat(0).await;
    flat(1).await;
    let v = manual(1, "under-user-kill").await;
    assert!(refused(&v), "{v}");
    assert!(kill(&user, "/kill", false).await.is_empty());

    // The platform's switch (an admin's): every account, entries refused until released.
    enter(2).await;
    let ids = kill(&admin, "/admin/kill", true).await;
    assert_eq!(ids.len(), 2, "every active account of every user");
    for id in &ids {
        decided(&user, id).await;
    }
    flat(0).await;
    flat(1).await;
    let v = manual(0, "under-global-kill").await;
    assert!(refused(&v), "{v}");

    // Restarted while the global switch is engaged: nothing again.
    let counts = (flattens_on(&p, 0).await, flattens_on(&p, 1).await);
    assert_eq!(counts, (3, 2), "account + user + global; user + global");
    risk.take().unwrap().stop().await;
    risk = Some(jt_e2e::RiskService::start(&p).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (flattens_on(&p, 0).await, flattens_on(&p, 1).await),
        counts,
        "not flattened twice"
    );

    assert!(kill(&admin, "/admin/kill", false).await.is_empty());
    let v = manual(1, "after-global-resume").await;
    assert_ne!(v["decision"], "skipped", "{v}");
    p.wait_orders(1, WAIT, |_| p.net_position(1) == 1).await;

    risk.take().unwrap().stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_follower_past_its_daily_loss_limit_is_locked_out_and_flattened_once() {
    use jt_store::CopyStatus;
    use jt_store::repo::copy::{CopyLogQuery, FollowerSettings};

    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    // The leader's strategy on account 0 (no limit of its own); account 1 follows it with a
    // $100 daily loss limit.
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("leader"), true)
        .await
        .unwrap();
    let follower = copying
        .add_follower(
            p.user,
            leader.id,
            p.subs[1].id,
            FollowerSettings {
                label: None,
                multiplier: dec!(1),
                max_position_size: None,
                enabled: true,
                copy_tp: false,
                copy_sl: false,
                daily_loss_limit: Some(dec!(100)),
                max_drawdown: None,
                closed_by_hand_stays_flat: false,
            },
        )
        .await
        .unwrap();
    let mut services = Services::start(&p).await;
    let copier_stop = services.connmgr.stop.child_token();
    let copier = jt_copier::start(
        jt_copier::CopierConfig::default(),
        &services
            .connmgr
            .ctx
            .clone()
            .with_shutdown(copier_stop.clone()),
    )
    .await
    .unwrap();

    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(1, WAIT, |_| {
        p.net_position(0) == 1 && p.net_position(1) == 1
    })
    .await;

    // −$200 on each account: past the follower's $100. The follower is locked out and its
    // account flattened; the leader keeps its position (the limit is the follower's).
    p.price("MNQ", "20900.00");
    p.wait_orders(1, WAIT, |_| p.net_position(1) == 0).await;
    let locked = eventually("the follower locked out", WAIT, async || {
        let f = copying.follower(p.user, follower.id).await.unwrap();
        f.locked_out.then_some(f)
    })
    .await;
    let reason = locked.lockout_reason.unwrap_or_default();
    assert!(
        reason.starts_with("daily loss limit reached") && reason.contains("100"),
        "{reason}"
    );
    assert_eq!(p.net_position(0), 1, "the leader is not flattened");
    let day = trading_day(Utc::now());
    let breach = eventually("the follower breach marked flattened", WAIT, async || {
        p.store
            .risk()
            .breach(p.user, p.subs[1].id, day, BreachKind::FollowerDailyLoss)
            .await
            .unwrap()
            .filter(|b| b.flattened_at.is_some())
    })
    .await;
    assert_eq!(breach.loss_limit, dec!(100));
    let follower_flattens = async || {
        p.store
            .intents()
            .for_sub_account(p.user, p.subs[1].id, 200)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.source == IntentSource::Control && i.kind == IntentKind::Flatten)
            .count()
    };
    assert_eq!(follower_flattens().await, 1);

    // The leader closes: the locked follower is skipped, with the reason in the copy log.
    let s = p
        .queued(&token, &alert("sell", "flat", r#","comment":"close""#))
        .await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(0, WAIT, |_| p.net_position(0) == 0).await;
    let skipped = eventually(
        "the close skipped for the locked follower",
        WAIT,
        async || {
            copying
                .copy_log(
                    p.user,
                    &CopyLogQuery {
                        leader: None,
                        follower: Some(follower.id),
                        status: Some(CopyStatus::Skipped),
                        after: None,
                        limit: 10,
                    },
                )
                .await
                .unwrap()
                .into_iter()
                .next()
        },
    )
    .await;
    assert!(
        skipped
            .error
            .as_deref()
            .is_some_and(|e| e.contains("locked out")),
        "{skipped:?}"
    );

    // A restarted risk service neither flattens again nor unlocks (today's breach stands).
    services.stop_risk().await;
    services.start_risk().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(follower_flattens().await, 1, "flattened once");
    assert!(
        copying
            .follower(p.user, follower.id)
            .await
            .unwrap()
            .locked_out
    );

    copier_stop.cancel();
    copier.wait().await.unwrap();
    services.stop().await;
    p.stop().await;
}

#[tokio::test]
async fn a_follower_past_its_max_drawdown_is_locked_out_until_unlocked_and_flattened_once() {
    use jt_store::repo::copy::FollowerSettings;

    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let base = jt_e2e::api::serve_api(&p).await;
    let client = jt_e2e::api::Client::login(&base, &p.email(), jt_e2e::USER_PASSWORD).await;
    // The leader's strategy on account 0; account 1 follows it with a $150 max drawdown and no
    // daily loss limit: only the drawdown from its own equity peak can act.
    let (_, token) = p
        .recorder(Settings::default(), &[(0, SettingsOverrides::default())])
        .await;
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("leader"), true)
        .await
        .unwrap();
    let follower = copying
        .add_follower(
            p.user,
            leader.id,
            p.subs[1].id,
            FollowerSettings {
                copy_tp: false,
                copy_sl: false,
                max_drawdown: Some(dec!(150)),
                ..FollowerSettings::default()
            },
        )
        .await
        .unwrap();
    let mut services = Services::start(&p).await;
    let copier_stop = services.connmgr.stop.child_token();
    let copier = jt_copier::start(
        jt_copier::CopierConfig::default(),
        &services
            .connmgr
            .ctx
            .clone()
            .with_shutdown(copier_stop.clone()),
    )
    .await
    .unwrap();
    let peak = async || {
        p.store
            .risk()
            .follower_peak(p.user, follower.id)
            .await
            .unwrap()
    };
    let follower_flattens = async || {
        p.store
            .intents()
            .for_sub_account(p.user, p.subs[1].id, 200)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.source == IntentSource::Control && i.kind == IntentKind::Flatten)
            .count()
    };

    let s = p.queued(&token, &alert("buy", "long", "")).await;
    p.settled_intents(s, 1, WAIT).await;
    p.wait_orders(1, WAIT, |_| {
        p.net_position(0) == 1 && p.net_position(1) == 1
    })
    .await;
    let start = eventually("the follower's first equity peak", WAIT, async || {
        peak().await.peak
    })
    .await;

    // +50 points (+$100): a new peak, written to the store.
    p.price("MNQ", "21050.00");
    let high = eventually("the peak raised by the rally", WAIT, async || {
        peak().await.peak.filter(|h| *h >= start + dec!(100))
    })
    .await;
    assert_eq!(high, start + dec!(100), "exactly the open gain");

    // Back to the entry: $100 below the peak, inside the $150. Nothing happens.
    p.price("MNQ", "21000.00");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !copying
            .follower(p.user, follower.id)
            .await
            .unwrap()
            .locked_out
    );
    assert_eq!(p.net_position(1), 1);
    assert_eq!(follower_flattens().await, 0);

    // 20970: $160 below the peak (the day's P&L only −$60): locked and flattened.
    p.price("MNQ", "20970.00");
    p.wait_orders(1, WAIT, |_| p.net_position(1) == 0).await;
    let locked = eventually("the follower locked out", WAIT, async || {
        let f = copying.follower(p.user, follower.id).await.unwrap();
        f.locked_out.then_some(f)
    })
    .await;
    let reason = locked.lockout_reason.unwrap_or_default();
    assert!(
        reason.starts_with("max drawdown reached") && reason.contains("max drawdown 150"),
        "{reason}"
    );
    assert!(reason.contains("is 160 below its peak"), "{reason}");
    assert_eq!(p.net_position(0), 1, "the leader is not flattened");
    let day = trading_day(Utc::now());
    let breach = eventually("the drawdown breach marked flattened", WAIT, async || {
        p.store
            .risk()
            .breach(p.user, p.subs[1].id, day, BreachKind::FollowerMaxDrawdown)
            .await
            .unwrap()
            .filter(|b| b.flattened_at.is_some())
    })
    .await;
    assert_eq!(breach.loss_limit, dec!(150));
    assert_eq!(follower_flattens().await, 1);

    // A restarted risk service neither flattens again nor unlocks.
    services.stop_risk().await;
    services.start_risk().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(follower_flattens().await, 1, "flattened once");
    assert!(
        copying
            .follower(p.user, follower.id)
            .await
            .unwrap()
            .locked_out
    );

    // The owner unlocks it through the API: the lock is lifted and the peak starts afresh
    // from the equity now (after the loss), so the follower is not locked again at once.
    let old = peak().await;
    let (status, view) = client
        .post(
            &format!("/followers/{}/unlock", follower.id),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["locked_out"], false, "{view}");
    let fresh = eventually("a new peak from the equity now", WAIT, async || {
        let now = peak().await;
        (now.tracking != old.tracking).then_some(now.peak).flatten()
    })
    .await;
    assert_eq!(fresh, high - dec!(160), "the balance after the loss");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !copying
            .follower(p.user, follower.id)
            .await
            .unwrap()
            .locked_out
    );
    assert_eq!(follower_flattens().await, 1);

    copier_stop.cancel();
    copier.wait().await.unwrap();
    services.stop().await;
    p.stop().await;
}

/// The recorder's newest paper position, once `ready` says it is where the test wants it.
async fn paper_position(
    p: &Platform,
    recorder: jt_store::RecorderId,
    what: &str,
    ready: impl Fn(&jt_store::repo::paper::PaperPosition) -> bool,
) -> jt_store::repo::paper::PaperPosition {
    eventually(what, WAIT, async || {
        p.store
            .paper()
            .positions(p.user, recorder, 10)
            .await
            .unwrap()
            .into_iter()
            .next()
            .filter(|x| ready(x))
    })
    .await
}

#[tokio::test]
async fn a_paper_record_past_its_max_daily_loss_is_closed_at_the_mark_once_and_takes_no_entry_that_day()
 {
    use jt_store::entity::{ExitReason, PaperStatus};

    let p = Platform::start(Options::default()).await;
    let mut services = Services::start(&p).await;
    // Paper only (no trader, nothing at a broker), with a $100 max daily loss.
    let (recorder, token) = p.recorder(limited(dec!(100)), &[]).await;
    p.queued(&token, &alert("buy", "long", r#","price":21000.00"#))
        .await;
    let opened = paper_position(&p, recorder, "the paper position", |x| {
        x.status == PaperStatus::Open
    })
    .await;
    assert_eq!(opened.average_entry, dec!(21000));
    let day = trading_day(Utc::now());
    let breach = async || {
        p.store
            .risk()
            .paper_breach(p.user, recorder, day)
            .await
            .unwrap()
    };

    // −$60 (30 points of MNQ at $2): inside the limit, nothing happens.
    p.price("MNQ", "20970.00");
    paper_position(&p, recorder, "the loss marked", |x| {
        x.current_price == Some(dec!(20970))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(breach().await, None);

    // −$120: past it. The risk service closes the paper position at the mark.
    p.price("MNQ", "20940.00");
    let closed = paper_position(&p, recorder, "the paper position closed", |x| {
        x.status == PaperStatus::Closed
    })
    .await;
    assert_eq!(closed.exit_price, Some(dec!(20940)));
    assert_eq!(closed.realized_pnl, dec!(-120));
    let recorded = eventually("the paper breach marked closed", WAIT, async || {
        breach().await.filter(|b| b.closed_at.is_some())
    })
    .await;
    assert_eq!(recorded.loss_limit, dec!(100));
    assert_eq!(
        (recorded.realized_pnl, recorded.unrealized_pnl),
        (dec!(0), dec!(-120))
    );
    let trades = p.store.paper().trades(p.user, recorder, 10).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:#?}");
    assert_eq!(trades[0].exit_price, Some(dec!(20940)));
    assert_eq!(trades[0].exit_reason, Some(ExitReason::Signal));

    // A new paper entry that day is refused, the reason on the signal's row.
    let s = p
        .queued(&token, &alert("buy", "long", r#","price":20940.00"#))
        .await;
    let signal = eventually("the refused entry's signal", WAIT, async || {
        p.store
            .signals()
            .get(p.user, jt_store::SignalId(s))
            .await
            .ok()
    })
    .await;
    let reason = signal.outcome_reason.unwrap_or_default();
    assert!(
        reason.contains("paper record: max daily loss of 100 reached"),
        "{reason}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let positions = p
        .store
        .paper()
        .positions(p.user, recorder, 10)
        .await
        .unwrap();
    assert!(
        positions.iter().all(|x| x.status == PaperStatus::Closed),
        "{positions:#?}"
    );

    // A restarted risk service closes nothing again.
    services.stop_risk().await;
    services.start_risk().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        p.store
            .paper()
            .trades(p.user, recorder, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(breach().await.unwrap().id, recorded.id);

    services.stop().await;
    p.stop().await;
}
