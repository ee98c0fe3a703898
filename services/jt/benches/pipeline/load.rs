//! Load patterns: open loop at a set rate (requests leave on a fixed schedule, whatever the
//! answers do) and closed loop (every connection sends its next request as soon as the last
//! one is answered).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::Connection;

/// Builds request `n`: its path and body.
pub type Requests = Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync>;

/// What one load run saw.
pub struct LoadResult {
    /// Answer latency, from writing the request to reading the whole answer, µs.
    pub latency: Histogram<u64>,
    /// Open loop: how late each request left against its schedule, µs (the generator's own
    /// health: large values mean the machine could not keep the schedule).
    pub lateness: Histogram<u64>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection errors).
    pub failed: u64,
    /// Answers counted in the measurement window.
    pub answered: u64,
    /// Length of the measurement window.
    pub window: Duration,
}

impl LoadResult {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: histogram()?,
            lateness: histogram()?,
            statuses: BTreeMap::new(),
            failed: 0,
            answered: 0,
            window: Duration::ZERO,
        })
    }

    fn merge(&mut self, other: &LoadResult) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.lateness.add(&other.lateness)?;
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.failed += other.failed;
        self.answered += other.answered;
        Ok(())
    }

    /// Answers per second in the window.
    pub fn per_second(&self) -> f64 {
        self.answered as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Answers that were not 200.
    pub fn not_ok(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.failed
    }
}

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Sends `rate` requests per second for `duration`, spread over `connections` connections
/// (request `n` on connection `n % connections`, due at `start + n / rate`).
pub async fn open_loop(
    addr: SocketAddr,
    connections: usize,
    rate: f64,
    duration: Duration,
    requests: Requests,
) -> anyhow::Result<LoadResult> {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let connections = connections.max(1) as u64;
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(Connection::open(addr).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let requests = requests.clone();
        tasks.spawn(async move {
            let mut result = LoadResult::new()?;
            let mut n = c as u64;
            while n < total {
                let due = start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let (path, body) = requests(n);
                let sent = Instant::now();
                result.lateness.record(micros(sent - due))?;
                match conn.send("POST", &path, &body, false).await {
                    Ok(answer) => {
                        result.latency.record(micros(sent.elapsed()))?;
                        *result.statuses.entry(answer.status).or_default() += 1;
                        result.answered += 1;
                    }
                    Err(_) => {
                        result.failed += 1;
                        conn = Connection::open(addr).await?;
                    }
                }
                n += connections;
            }
            anyhow::Ok(result)
        });
    }
    let mut all = LoadResult::new()?;
    while let Some(done) = tasks.join_next().await {
        all.merge(&done??)?;
    }
    all.window = start.elapsed().max(duration);
    Ok(all)
}

/// Every connection sends back to back for `warmup + duration`; answers during `duration`
/// (after the warm-up) are counted.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    requests: Requests,
) -> anyhow::Result<LoadResult> {
    let mut conns = Vec::new();
    for _ in 0..connections.max(1) {
        conns.push(Connection::open(addr).await?);
    }
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + duration);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (requests, counter) = (requests.clone(), counter.clone());
        tasks.spawn(async move {
            let mut result = LoadResult::new()?;
            loop {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (path, body) = requests(n);
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let answer = conn.send("POST", &path, &body, false).await;
                let done = Instant::now();
                let counted = sent >= from && done <= until;
                match answer {
                    Ok(answer) if counted => {
                        result.latency.record(micros(done - sent))?;
                        *result.statuses.entry(answer.status).or_default() += 1;
                        result.answered += 1;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        result.failed += 1;
                        conn = Connection::open(addr).await?;
                    }
                }
            }
            anyhow::Ok(result)
        });
    }
    let mut all = LoadResult::new()?;
    while let Some(done) = tasks.join_next().await {
        all.merge(&done??)?;
    }
    all.window = duration;
    Ok(all)
}
