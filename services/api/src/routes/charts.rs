//! Chart data for the dashboard: each recorder's cumulative paper P&L over a window (one point
//! per closed paper trade, exact decimals) and the alert → broker latency of the caller's
//! signal intents as a histogram with fixed buckets.
//!
//! Broker P&L per recorder is not here: the store keeps broker fills (price, side, quantity per
//! sub-account) and each position's broker-reported realised P&L, but no realised P&L per
//! trade, and a sub-account's position is shared by every trader and manual order on it, so a
//! closing fill cannot be charged to one recorder without a per-trade ledger
//! (`docs/api.md`, "Charts").

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use jt_store::RecorderId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::routes::paging::bad_query;
use crate::routes::views::dec;
use crate::state::ApiState;

/// The most rows one chart reads; more are left out and `truncated` says so.
const MAX_ROWS: u64 = 10_000;

/// The widest window.
const MAX_DAYS: i64 = 92;

/// The latency histogram's upper bucket bounds, milliseconds (a last bucket holds the rest).
pub const LATENCY_BUCKETS_MS: [i64; 10] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// A chart's window.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PnlFilter {
    /// Start (RFC 3339), default 30 days before `until`.
    pub since: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339), default now.
    pub until: Option<DateTime<Utc>>,
    /// Only this recorder.
    pub recorder_id: Option<Uuid>,
}

/// The latency chart's window.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatencyFilter {
    /// Start (RFC 3339), default 24 hours before `until`.
    pub since: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339), default now.
    pub until: Option<DateTime<Utc>>,
}

fn window(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    default: Duration,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let until = until.unwrap_or_else(Utc::now);
    let since = since.unwrap_or(until - default);
    if since >= until {
        return Err(bad_query("since", "must be before until"));
    }
    if until - since > Duration::days(MAX_DAYS) {
        return Err(bad_query(
            "since",
            format!("the window is at most {MAX_DAYS} days"),
        ));
    }
    Ok((since, until))
}

/// One closed trade on a P&L curve.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PnlPoint {
    /// When the trade closed.
    pub at: DateTime<Utc>,
    /// The trade's realised P&L, dollars (after commission).
    pub pnl: String,
    /// The sum of the window's trades up to this one.
    pub cumulative: String,
}

/// A recorder's paper P&L curve.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecorderPnl {
    /// The recorder.
    pub recorder_id: Uuid,
    /// Its name.
    pub name: String,
    /// Paper trades closed in the window, oldest first.
    pub paper: Vec<PnlPoint>,
    /// The window's paper P&L.
    pub paper_total: String,
}

/// Cumulative P&L per recorder.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PnlChart {
    /// Window start.
    pub since: DateTime<Utc>,
    /// Window end (exclusive).
    pub until: DateTime<Utc>,
    /// Every recorder of the caller (or the one asked for), with its curve (empty when it
    /// closed nothing in the window).
    pub recorders: Vec<RecorderPnl>,
    /// More trades closed in the window than one chart reads (10,000): the curves stop early.
    pub truncated: bool,
}

/// Each recorder's cumulative paper P&L over a window: a point per closed paper trade.
#[utoipa::path(
    get,
    path = "/charts/pnl",
    tag = "charts",
    params(PnlFilter),
    responses(
        (status = 200, description = "P&L curves", body = PnlChart),
        (status = 400, description = "A bad window", body = ErrorBody),
        (status = 404, description = "No such recorder", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn pnl(
    State(state): State<ApiState>,
    caller: Caller,
    Query(f): Query<PnlFilter>,
) -> ApiResult<Json<PnlChart>> {
    let (since, until) = window(f.since, f.until, Duration::days(30))?;
    let recorders = match f.recorder_id {
        Some(id) => vec![
            state
                .store
                .recorders()
                .get(caller.owner(), RecorderId(id))
                .await?,
        ],
        None => state.store.recorders().list(caller.owner()).await?,
    };
    let trades = state
        .store
        .dashboard()
        .closed_paper_trades(
            caller.owner(),
            f.recorder_id.map(RecorderId),
            since,
            until,
            MAX_ROWS,
        )
        .await?;
    let truncated = trades.len() as u64 >= MAX_ROWS;
    let mut out: Vec<RecorderPnl> = recorders
        .into_iter()
        .map(|r| RecorderPnl {
            recorder_id: r.id.0,
            name: r.name,
            paper: Vec::new(),
            paper_total: "0".into(),
        })
        .collect();
    let mut totals = vec![Decimal::ZERO; out.len()];
    for t in trades {
        let (Some(at), Some(pnl)) = (t.exit_time, t.realized_pnl) else {
            continue;
        };
        let Some(i) = out.iter().position(|r| r.recorder_id == t.recorder.0) else {
            continue;
        };
        totals[i] += pnl;
        out[i].paper.push(PnlPoint {
            at,
            pnl: dec(pnl),
            cumulative: dec(totals[i]),
        });
    }
    for (r, total) in out.iter_mut().zip(totals) {
        r.paper_total = dec(total);
    }
    Ok(Json(PnlChart {
        since,
        until,
        recorders: out,
        truncated,
    }))
}

/// One bucket of the latency histogram.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LatencyBucket {
    /// Latencies at or above this (ms).
    pub from_ms: i64,
    /// … and below this (ms); `null` for the last bucket.
    pub to_ms: Option<i64>,
    /// How many.
    pub count: u64,
}

/// The alert → broker latency of signal intents.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LatencyChart {
    /// Window start.
    pub since: DateTime<Utc>,
    /// Window end (exclusive).
    pub until: DateTime<Utc>,
    /// Intents with a broker answer in the window.
    pub count: u64,
    /// Fixed buckets: 0–10, 10–25, 25–50, 50–100, 100–250, 250–500, 500–1,000, 1,000–2,500,
    /// 2,500–5,000, 5,000–10,000 ms and 10,000 ms or more.
    pub buckets: Vec<LatencyBucket>,
    /// Median (ms), `null` without data.
    pub p50_ms: Option<i64>,
    /// 95th percentile (ms).
    pub p95_ms: Option<i64>,
    /// 99th percentile (ms).
    pub p99_ms: Option<i64>,
    /// Slowest (ms).
    pub max_ms: Option<i64>,
    /// More intents in the window than one chart reads (10,000, the oldest first).
    pub truncated: bool,
}

/// The histogram of `ms` in [`LATENCY_BUCKETS_MS`] with percentiles (nearest rank).
#[must_use]
pub fn histogram(mut ms: Vec<i64>) -> (Vec<LatencyBucket>, [Option<i64>; 4]) {
    let mut buckets: Vec<LatencyBucket> = Vec::with_capacity(LATENCY_BUCKETS_MS.len() + 1);
    let mut from = 0;
    for to in LATENCY_BUCKETS_MS {
        buckets.push(LatencyBucket {
            from_ms: from,
            to_ms: Some(to),
            count: 0,
        });
        from = to;
    }
    buckets.push(LatencyBucket {
        from_ms: from,
        to_ms: None,
        count: 0,
    });
    for m in &ms {
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|to| m < to)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        buckets[i].count += 1;
    }
    ms.sort_unstable();
    // Nearest rank in integers: the ⌈n·q⌉-th smallest, q in thousandths.
    let rank = |per_mille: usize| -> Option<i64> {
        let n = ms.len();
        let i = (n * per_mille).div_ceil(1000).clamp(1, n.max(1)) - 1;
        ms.get(i).copied()
    };
    let stats = [rank(500), rank(950), rank(990), ms.last().copied()];
    (buckets, stats)
}

/// The alert → broker latency of the caller's signal intents over a window: from the alert's
/// arrival to the broker's answer of the first attempt, in fixed buckets.
#[utoipa::path(
    get,
    path = "/charts/latency",
    tag = "charts",
    params(LatencyFilter),
    responses(
        (status = 200, description = "Latency histogram", body = LatencyChart),
        (status = 400, description = "A bad window", body = ErrorBody),
    ),
    security(("session" = []), ("bearer" = []))
)]
pub async fn latency(
    State(state): State<ApiState>,
    caller: Caller,
    Query(f): Query<LatencyFilter>,
) -> ApiResult<Json<LatencyChart>> {
    let (since, until) = window(f.since, f.until, Duration::hours(24))?;
    let rows = state
        .store
        .dashboard()
        .signal_latencies(caller.owner(), since, until, MAX_ROWS)
        .await?;
    let truncated = rows.len() as u64 >= MAX_ROWS;
    let count = rows.len() as u64;
    let (buckets, [p50, p95, p99, max]) = histogram(rows.into_iter().map(|l| l.ms).collect());
    Ok(Json(LatencyChart {
        since,
        until,
        count,
        buckets,
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        max_ms: max,
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_fixed_buckets_with_nearest_rank_percentiles() {
        let (b, [p50, p95, p99, max]) = histogram(vec![3, 9, 10, 24, 120, 120, 999, 20_000]);
        let counts: Vec<u64> = b.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![2, 2, 0, 0, 2, 0, 1, 0, 0, 0, 1]);
        assert_eq!((b[0].from_ms, b[0].to_ms), (0, Some(10)));
        assert_eq!((b[10].from_ms, b[10].to_ms), (10_000, None));
        assert_eq!(p50, Some(24), "4th of 8");
        assert_eq!(p95, Some(20_000));
        assert_eq!(p99, Some(20_000));
        assert_eq!(max, Some(20_000));
        let (b, stats) = histogram(Vec::new());
        assert_eq!(b.len(), 11);
        assert!(b.iter().all(|b| b.count == 0));
        assert_eq!(stats, [None; 4]);
    }

    #[test]
    fn a_window_must_be_ordered_and_bounded() {
        let now = Utc::now();
        assert!(window(Some(now), Some(now), Duration::hours(1)).is_err());
        assert!(
            window(
                Some(now - Duration::days(93)),
                Some(now),
                Duration::hours(1)
            )
            .is_err()
        );
        let (s, u) = window(None, Some(now), Duration::hours(24)).unwrap_or((now, now));
        assert_eq!(u - s, Duration::hours(24));
    }
}
