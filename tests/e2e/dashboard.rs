//! The dashboard in a real browser: the platform on JetStream, PostgreSQL and the simulator,
//! the API (which serves the dashboard at `/`) on a free port, and one Playwright spec per page
//! group (`tests/browser/<spec>.mjs`, run by `scripts/browser-test` in Debian's headless
//! Chromium). Each test asserts the spec's exit status and prints its output when it fails;
//! a missing Chromium, node or npm fails the test with how to install them.
//!
//! Screenshots go to `$CARGO_TARGET_DIR/dashboard-screenshots` (or `target/…`): test
//! artifacts, not committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use jt_e2e::{Options, Platform, USER_PASSWORD};
use jt_store::repo::auth::NewUser;
use jt_store::{Role, Secret};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace().join(t)
            }
        })
        .unwrap_or_else(|| workspace().join("target"))
        .join("dashboard-screenshots")
}

/// Runs `tests/browser/<spec>.mjs` against the dashboard at `base` as the platform's user,
/// with `extra` environment, and fails the test with the spec's output unless it passes.
async fn browser(spec: &str, p: &Platform, base: &str, extra: &[(&str, String)]) {
    let mut cmd = Command::new(workspace().join("scripts/browser-test"));
    cmd.arg(spec)
        .current_dir(workspace())
        .env("JT_BASE_URL", base)
        .env("JT_EMAIL", p.email())
        .env("JT_PASSWORD", USER_PASSWORD)
        .env("JT_SCREENSHOT_DIR", screenshot_dir());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    // The browser drives the API served by this test's runtime: wait for it off the runtime.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("scripts/browser-test runs (python3 is needed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser spec {spec} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!(
        "{stdout}browser spec {spec}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Sign-in (and a wrong password), the frame's nav, deep links, sign-out, security headers
/// and the phone layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_the_frame_in_chromium_on_jetstream_and_postgres() {
    let p = Platform::start(Options::default()).await;
    let base = jt_e2e::api::serve_api(&p).await;
    browser("signin", &p, &base, &[]).await;
    p.stop().await;
}

/// The connection manager, the positions service and, as asked, the risk service and the
/// copier, on the platform's store and bus: what keeps the accounts pages' data live.
struct Live {
    connmgr: jt_e2e::ConnectionManager,
    running: Vec<jt_service::Running>,
}

impl Live {
    async fn start(p: &Platform, risk: bool, copier: bool) -> Self {
        let connmgr = jt_e2e::ConnectionManager::start(p).await;
        let mut running = vec![
            jt_positions::start(
                jt_positions::PositionsConfig {
                    reconcile_every: std::time::Duration::from_secs(3600),
                    ..jt_positions::PositionsConfig::default()
                },
                &connmgr.ctx,
            )
            .await
            .unwrap(),
        ];
        if risk {
            let config = jt_risk::RiskConfig {
                poll_every: std::time::Duration::from_secs(1),
                resync_every: std::time::Duration::from_secs(1),
                survey_every: std::time::Duration::from_secs(1),
                ..jt_risk::RiskConfig::default()
            };
            running.push(jt_risk::start(config, &connmgr.ctx).await.unwrap());
        }
        if copier {
            running.push(
                jt_copier::start(jt_copier::CopierConfig::default(), &connmgr.ctx)
                    .await
                    .unwrap(),
            );
        }
        Self { connmgr, running }
    }

    async fn stop(self) {
        self.connmgr.stop.cancel();
        for r in self.running {
            r.wait().await.unwrap();
        }
        self.connmgr.stop().await;
    }
}

/// Accounts, live: the page open while an alert arrives shows both accounts' positions
/// without a reload — one protected by its stop, one unprotected in red — with the day's P&L
/// and the distance to the max daily loss; one account is flattened after a confirmation and
/// shows flat; a closing alert then puts the paper trade on the Charts page with the latency
/// histogram. The store and the simulator must then hold exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_live_positions_protection_and_flatten_in_chromium_on_jetstream_and_postgres() {
    use jt_domain::{Settings, SettingsOverrides};
    use jt_store::{IntentKind, IntentSource};
    use rust_decimal::Decimal;

    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let base = jt_e2e::api::serve_api(&p).await;
    let live = Live::start(&p, true, false).await;
    let settings = Settings {
        max_daily_loss: Decimal::from(1000),
        sl_enabled: true,
        sl_amount: Decimal::from(40),
        ..Settings::default()
    };
    let bare = SettingsOverrides {
        sl_enabled: Some(false),
        ..SettingsOverrides::default()
    };
    let (_, token) = p
        .recorder(settings, &[(0, SettingsOverrides::default()), (1, bare)])
        .await;
    browser(
        "accounts",
        &p,
        &base,
        &[
            (
                "JT_ACCOUNTS",
                format!("{},{}", p.subs[0].name, p.subs[1].name),
            ),
            ("JT_WEBHOOK", format!("{}/webhook/{token}", p.ingest_url)),
        ],
    )
    .await;
    // At the broker: the account flattened from the page was flattened by control intents
    // (the page's), the other closed by the spec's closing alert — both flat now.
    let flattens = async |i: usize| {
        p.store
            .intents()
            .for_sub_account(p.user, p.subs[i].id, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|x| x.source == IntentSource::Control && x.kind == IntentKind::Flatten)
            .count()
    };
    // The kill switch's flatten is published by the risk service (it carries switches out),
    // a moment after the page engaged it.
    jt_e2e::eventually(
        "the kill switch's flatten recorded",
        std::time::Duration::from_secs(20),
        async || (flattens(1).await >= 2).then_some(()),
    )
    .await;
    assert_eq!(
        flattens(1).await,
        2,
        "two flattens: the page's confirmed Flatten, then the kill switch it engaged (which \
         flattens first); the cancelled confirmation sent none"
    );
    assert_eq!(flattens(0).await, 0, "the other account was not flattened");
    jt_e2e::eventually(
        "both accounts flat at the broker",
        std::time::Duration::from_secs(20),
        async || (p.net_position(0) == 0 && p.net_position(1) == 0).then_some(()),
    )
    .await;
    live.stop().await;
    p.stop().await;
}

/// The copy cockpit: a manual buy and close on the leader placed from the page reach both
/// followers (the page shows it live; the simulator holds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_cockpit_trades_the_leader_and_the_followers_copy_in_chromium() {
    use jt_store::repo::copy::FollowerSettings;

    let p = Platform::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .await;
    let base = jt_e2e::api::serve_api(&p).await;
    let live = Live::start(&p, false, true).await;
    let copying = p.store.copying();
    let leader = copying
        .create_leader(p.user, p.subs[0].id, Some("Main"), true)
        .await
        .unwrap();
    for i in 1..3 {
        copying
            .add_follower(
                p.user,
                leader.id,
                p.subs[i].id,
                FollowerSettings {
                    label: None,
                    multiplier: rust_decimal::Decimal::ONE,
                    max_position_size: None,
                    enabled: true,
                    copy_tp: false,
                    copy_sl: false,
                    daily_loss_limit: None,
                    max_drawdown: None,
                    closed_by_hand_stays_flat: false,
                },
            )
            .await
            .unwrap();
    }
    // The copier reads its groups when it starts and on changes; give it the new group.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    browser(
        "copy",
        &p,
        &base,
        &[
            ("JT_LEADER", "Main".to_string()),
            (
                "JT_FOLLOWERS",
                format!("{},{}", p.subs[1].name, p.subs[2].name),
            ),
        ],
    )
    .await;
    // Bought then closed from the page: the followers took both (two orders each), and are
    // flat at the broker.
    for i in 1..3 {
        assert_eq!(p.net_position(i), 0, "follower {i} closed with the leader");
        let filled: u32 = p.orders(i).iter().map(|o| o.qty).sum();
        assert_eq!(filled, 2, "follower {i}: a buy and a sell of one");
    }
    live.stop().await;
    p.stop().await;
}

/// Administration is for admins: a user sees no Admin link and is refused in words; an admin
/// approves a waiting user (audited) and views the platform as the user, read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_are_for_admins_only_in_chromium() {
    let p = Platform::start(Options::default()).await;
    let base = jt_e2e::api::serve_api(&p).await;
    let admin = format!("admin-{}", p.email());
    let pending = format!("pending-{}", p.email());
    let mut ids = Vec::new();
    for (email, role, approved) in [(&admin, Role::Admin, true), (&pending, Role::User, false)] {
        let u = p
            .store
            .users()
            .register(NewUser {
                email: email.clone(),
                display_name: None,
                password: Secret::new(USER_PASSWORD),
                role,
                approved,
            })
            .await
            .unwrap();
        ids.push(u.id);
    }
    browser(
        "admin",
        &p,
        &base,
        &[
            ("JT_ADMIN_EMAIL", admin),
            ("JT_ADMIN_PASSWORD", USER_PASSWORD.to_string()),
            ("JT_PENDING_EMAIL", pending.clone()),
        ],
    )
    .await;
    let user = p.store.users().get(ids[1]).await.unwrap();
    assert!(user.approved, "the page's approval is stored");
    p.stop().await;
}

/// Recorders and the signal timeline: a recorder created and two traders linked in the
/// browser, an override set and cleared, a refused setting shown on its field, the webhook URL
/// copied from the page and an alert sent to it, the signal with both decisions; another user
/// sees a 404 page in words. The simulator must then hold the orders the page showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorders_and_the_signal_timeline_in_chromium_on_jetstream_and_postgres() {
    let p = Platform::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .await;
    let base = jt_e2e::api::serve_api(&p).await;
    let other = format!("other-{}", p.email());
    p.store
        .users()
        .register(NewUser {
            email: other.clone(),
            display_name: None,
            password: Secret::new(USER_PASSWORD),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    let accounts = format!("{},{}", p.subs[0].name, p.subs[1].name);
    browser(
        "recorders",
        &p,
        &base,
        &[
            ("JT_ACCOUNTS", accounts),
            ("JT_OTHER_EMAIL", other),
            ("JT_OTHER_PASSWORD", USER_PASSWORD.to_string()),
        ],
    )
    .await;
    // What the page showed as executed reached the broker: one entry on each account, twice
    // the size on the account whose multiplier the page set to 2.
    let entries: Vec<u32> = (0..2)
        .map(|i| {
            p.orders(i)
                .iter()
                .filter(|o| o.order_type == "Market")
                .map(|o| o.qty)
                .sum()
        })
        .collect();
    assert_eq!(entries, vec![1, 2], "market order quantities per account");
    p.stop().await;
}

/// API tokens (created once with a copy button, working, revoked after a confirmation) and
/// the password reset from the mailed link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_and_the_password_reset_in_chromium_on_jetstream_and_postgres() {
    let p = Platform::start(Options::default()).await;
    let (base, mail) = jt_e2e::api::serve_api_with_mail(&p).await;
    browser(
        "tokens",
        &p,
        &base,
        &[("JT_MAIL_DIR", mail.to_string_lossy().into_owned())],
    )
    .await;
    p.stop().await;
}
