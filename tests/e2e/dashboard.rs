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
