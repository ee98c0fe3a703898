//! Cost of the rules called on hot paths: `is_market_open` (per broker message, for
//! dead-subscription detection and the simulator), `trading_day`, and the per-trader
//! decision + bracket of the executor. Run with `make bench` (or
//! `cargo bench -p jt-domain`); prints the mean time per call.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jt_domain::bracket::build_entry;
use jt_domain::decision::{BrokerPosition, DecisionInput, decide};
use jt_domain::filters::FilterState;
use jt_domain::instrument::by_root;
use jt_domain::session::{is_market_open, trading_day};
use jt_domain::settings::{Settings, TpTarget};
use jt_domain::{Direction, SignalAction};
use rust_decimal::Decimal;

/// Runs `f` over `inputs` repeatedly for at least `budget`, returning the mean per call.
fn measure<T>(inputs: &[T], budget: Duration, mut f: impl FnMut(&T)) -> Duration {
    let start = Instant::now();
    let mut calls: u32 = 0;
    while start.elapsed() < budget {
        for input in inputs {
            f(input);
        }
        calls += u32::try_from(inputs.len()).unwrap_or(u32::MAX);
    }
    start.elapsed() / calls.max(1)
}

fn main() {
    // Instants spread over 2026 every 7 minutes 13 seconds: weekdays, halts, weekends, holidays.
    let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let instants: Vec<DateTime<Utc>> = (0..72_000)
        .map(|i| start + chrono::Duration::seconds(i * 433))
        .collect();
    let budget = Duration::from_secs(2);

    let open = measure(&instants, budget, |t| {
        black_box(is_market_open(black_box(*t)));
    });
    println!(
        "session::is_market_open      {:>8.1} ns/call",
        open.as_nanos() as f64
    );
    let day = measure(&instants, budget, |t| {
        black_box(trading_day(black_box(*t)));
    });
    println!(
        "session::trading_day         {:>8.1} ns/call",
        day.as_nanos() as f64
    );

    let settings = Settings {
        initial_position_size: 3,
        multiplier: Decimal::new(25, 1),
        tp_targets: vec![
            TpTarget {
                value: Decimal::from(20),
                trim: Decimal::ONE,
            },
            TpTarget {
                value: Decimal::from(40),
                trim: Decimal::ONE,
            },
            TpTarget {
                value: Decimal::from(80),
                trim: Decimal::ONE,
            },
        ],
        sl_enabled: true,
        sl_amount: Decimal::from(50),
        ..Settings::default()
    };
    let Ok(mnq) = by_root("MNQ") else {
        eprintln!("MNQ is missing from the instrument table");
        return;
    };
    let positions: Vec<BrokerPosition> = (-3..=3)
        .map(|net| BrokerPosition {
            net_qty: net,
            average_price: None,
        })
        .collect();
    let decision = measure(&positions, budget, |position| {
        let input = DecisionInput {
            action: SignalAction::Long,
            position: *position,
            settings: &settings,
            filters: FilterState::default(),
            now: start,
            exit_fraction: None,
            alert_size: None,
        };
        let _ = black_box(decide(black_box(&input)));
    });
    println!(
        "decision::decide             {:>8.1} ns/call",
        decision.as_nanos() as f64
    );
    let entry = measure(&positions, budget, |_| {
        let _ = black_box(build_entry(
            &settings,
            mnq,
            Direction::Long,
            8,
            None,
            "jt-bench",
        ));
    });
    println!(
        "bracket::build_entry (3 TP)  {:>8.1} ns/call",
        entry.as_nanos() as f64
    );
}
