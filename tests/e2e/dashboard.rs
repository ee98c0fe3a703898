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
