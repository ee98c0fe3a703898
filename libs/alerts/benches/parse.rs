//! How long the webhook's CPU work per alert takes: `parse_alert` on realistic bodies and the
//! dedup key (`make bench`; results in `docs/benchmarks.md`). The ingest must answer
//! TradingView within a few milliseconds, so this must stay in the microseconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use jt_alerts::{AlertContext, parse_alert};

const WARMUP: usize = 20_000;
const SAMPLES: usize = 200_000;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn measure(label: &str, mut op: impl FnMut()) {
    for _ in 0..WARMUP {
        op();
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let started = Instant::now();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        op();
        histogram
            .record(
                u64::try_from(t.elapsed().as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .unwrap();
    }
    let total = started.elapsed();
    println!(
        "{label:<46} p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>8} ns  ({:.0} /s on one core)",
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        SAMPLES as f64 / total.as_secs_f64(),
    );
}

fn main() {
    let ctx = AlertContext::default();
    for name in [
        "tradingview_strategy_long_entry.json",
        "traderspost_entry_with_exits.json",
        "three_commas_strategy.json",
        "pickmytrade_strategy.json",
        "replaced_platform_risk.json",
        "tradingview_strategy_partial_exit.json",
        "traderspost_limit_entry.json",
    ] {
        let body = fixture(name);
        measure(&format!("parse_alert {name}"), || {
            black_box(parse_alert(black_box(&body), &ctx).unwrap());
        });
    }
    let body = fixture("tradingview_dca_add_without_time.json");
    let signal = parse_alert(&body, &ctx).unwrap();
    let now: DateTime<Utc> = DateTime::from_timestamp(1_767_623_400, 0).unwrap();
    measure("dedup_key (no time: msg id + body digest)", || {
        black_box(jt_alerts::DedupKey::for_signal(
            &signal,
            black_box("tok_3f9a0c"),
            black_box(&body),
            now,
        ));
    });
    let refused = fixture("tradingview_indicator_not_on_strategy.json");
    measure("parse_alert refused (placeholder, invalid JSON)", || {
        black_box(parse_alert(black_box(&refused), &ctx).unwrap_err());
    });
}
