//! The raw webhook log, written off the hot path (DOMAIN.md §2: every request is logged).
//!
//! Handlers hand each entry to [`WebhookLog::record`], which never waits: the entry goes into a
//! bounded queue that one writer task drains in batches (up to `batch_size` rows or every
//! `flush_every`). A slow or unreachable database therefore never delays a webhook answer: the
//! writer retries its batch with back-off while the queue absorbs new entries.
//!
//! One bad row never blocks the rows behind it. A batch the database *refuses* (as opposed to
//! one it cannot take now) is written again row by row; a row refused on its own is repaired
//! (control characters removed, body shortened) and tried once more, and if that is refused too
//! it is dropped — counted (`jt_ingest_log_rejected_total`) and logged with the database's
//! reason. Only a database that cannot be reached makes the writer wait and retry.
//!
//! Memory is bounded twice: by entries (`queue`) and by bytes (`queue_bytes`; a body is kept only
//! up to what the log stores, [`LOGGED_BODY_BYTES`]). When either bound is reached (the
//! database has been down for minutes at full load) new entries are dropped, each drop counted
//! (`jt_ingest_log_dropped_total`) and logged. On shutdown the writer drains the queue and
//! flushes it before the process exits. [`WebhookLog::health`] tells readiness when writes have
//! been failing for a while (the ingest stays ready: signals matter more than their log).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use jt_store::Store;
use jt_store::repo::webhooks::{LOGGED_BODY_BYTES, NewWebhookLog};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// The database cannot take it now (unreachable, overloaded): retry the same rows later.
    Unavailable(String),
    /// The database refused the rows themselves: retrying them unchanged cannot succeed.
    Rejected(String),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            SinkError::Rejected(e) => write!(f, "refused by the database: {e}"),
        }
    }
}

/// Where log batches go (the store in production).
#[async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// Writes a batch; on `Err` nothing can be assumed written (rows carry their own ids, so
    /// writing them again never duplicates).
    async fn write(&self, batch: &[NewWebhookLog]) -> Result<(), SinkError>;
}

#[async_trait]
impl LogSink for Store {
    async fn write(&self, batch: &[NewWebhookLog]) -> Result<(), SinkError> {
        self.webhooks()
            .log_batch(batch)
            .await
            .map(|_| ())
            .map_err(|e| {
                if e.is_transient() {
                    SinkError::Unavailable(e.to_string())
                } else {
                    SinkError::Rejected(e.to_string())
                }
            })
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct LogWriterConfig {
    /// Entries the queue holds while the database is slow.
    pub queue: usize,
    /// Bytes (bodies, reasons and a fixed overhead per entry) the queue holds.
    pub queue_bytes: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest an entry waits before its batch is written.
    pub flush_every: Duration,
    /// How long the final flush may take at shutdown.
    pub shutdown_deadline: Duration,
    /// Writes failing for longer than this show in readiness (as degraded).
    pub stuck_after: Duration,
}

impl Default for LogWriterConfig {
    fn default() -> Self {
        Self {
            queue: 100_000,
            queue_bytes: 64 * 1024 * 1024,
            batch_size: 500,
            flush_every: Duration::from_millis(200),
            shutdown_deadline: Duration::from_secs(10),
            stuck_after: Duration::from_secs(30),
        }
    }
}

/// What an entry costs in the queue beyond its texts (ids, times, the channel slot).
const ENTRY_OVERHEAD: usize = 256;

fn cost(e: &NewWebhookLog) -> usize {
    ENTRY_OVERHEAD
        + e.body.len()
        + e.result.len()
        + e.reason.as_ref().map_or(0, String::len)
        + e.source_ip.as_ref().map_or(0, String::len)
}

/// The writer's state, shared with the handles (readiness, the byte bound).
#[derive(Debug)]
struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// Milliseconds since `epoch` when writes started failing; 0 while they succeed.
    failing_since_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    epoch: Instant,
    stuck_after: Duration,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        // At least 1: 0 means "not failing".
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn failed(&self, err: &SinkError) {
        let _ = self.failing_since_ms.compare_exchange(
            0,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        *self.last_error.lock() = Some(err.to_string());
    }

    fn succeeded(&self) {
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    fn release(&self, rows: &[NewWebhookLog]) {
        let bytes: usize = rows.iter().map(cost).sum();
        self.queued_bytes.fetch_sub(
            bytes.min(self.queued_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        #[allow(clippy::cast_precision_loss)] // a batch is at most a few hundred rows
        metrics::gauge!("jt_ingest_log_queued").decrement(rows.len() as f64);
    }
}

/// The handle handlers log through; cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookLog {
    tx: mpsc::Sender<NewWebhookLog>,
    shared: Arc<Shared>,
}

impl WebhookLog {
    /// Queues one entry without waiting. A body longer than the log keeps is cut first (the
    /// store still sees that it was longer and marks it truncated).
    pub fn record(&self, mut entry: NewWebhookLog) {
        cut_body(&mut entry.body);
        let size = cost(&entry);
        let queued = self.shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued + size > self.shared.max_bytes {
            self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            metrics::counter!("jt_ingest_log_dropped_total", "reason" => "queue_full").increment(1);
            tracing::error!(
                result = %entry.result,
                queued_bytes = queued,
                "webhook log queue full (database unreachable for long): entry dropped"
            );
            return;
        }
        match self.tx.try_send(entry) {
            Ok(()) => metrics::gauge!("jt_ingest_log_queued").increment(1.0),
            Err(mpsc::error::TrySendError::Full(lost)) => {
                self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                metrics::counter!("jt_ingest_log_dropped_total", "reason" => "queue_full")
                    .increment(1);
                tracing::error!(
                    result = %lost.result,
                    "webhook log queue full (database unreachable for long): entry dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                metrics::counter!("jt_ingest_log_dropped_total", "reason" => "stopped")
                    .increment(1);
                tracing::error!("webhook log writer stopped: entry dropped");
            }
        }
    }

    /// Bytes waiting in the queue.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }

    /// Readiness: `Err` with the reason when writes have been failing for longer than
    /// `stuck_after` (rows are waiting, and will be dropped once the queue is full).
    ///
    /// # Errors
    /// The reason, for `/readyz`.
    pub fn health(&self) -> Result<(), String> {
        let since = self.shared.failing_since_ms.load(Ordering::Relaxed);
        if since == 0 {
            return Ok(());
        }
        let failing_for = Duration::from_millis(self.shared.now_ms().saturating_sub(since));
        if failing_for < self.shared.stuck_after {
            return Ok(());
        }
        Err(format!(
            "webhook log writes failing for {} s ({} KiB queued of {} KiB): {}",
            failing_for.as_secs(),
            self.queued_bytes() / 1024,
            self.shared.max_bytes / 1024,
            self.shared
                .last_error
                .lock()
                .clone()
                .unwrap_or_else(|| "unknown error".into())
        ))
    }
}

/// Cuts `body` to just over what the log keeps, on a character boundary: the store keeps
/// [`LOGGED_BODY_BYTES`] and, seeing more, marks the row truncated.
fn cut_body(body: &mut String) {
    let keep = LOGGED_BODY_BYTES + 1;
    if body.len() > keep + 3 {
        let mut end = keep;
        while !body.is_char_boundary(end) {
            end += 1;
        }
        body.truncate(end);
    }
}

/// Starts the writer; it stops (after flushing) when `shutdown` is cancelled and every
/// [`WebhookLog`] handle is dropped or the deadline passes.
pub fn spawn(
    sink: Arc<dyn LogSink>,
    config: LogWriterConfig,
    shutdown: CancellationToken,
) -> (WebhookLog, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes: config
            .queue_bytes
            .max(ENTRY_OVERHEAD + LOGGED_BODY_BYTES * 2),
        failing_since_ms: AtomicU64::new(0),
        last_error: Mutex::new(None),
        epoch: Instant::now(),
        stuck_after: config.stuck_after,
    });
    let writer = Writer {
        sink,
        shared: shared.clone(),
    };
    let task = tokio::spawn(writer.run(config, rx, shutdown));
    (WebhookLog { tx, shared }, task)
}

struct Writer {
    sink: Arc<dyn LogSink>,
    shared: Arc<Shared>,
}

impl Writer {
    async fn run(
        self,
        config: LogWriterConfig,
        mut rx: mpsc::Receiver<NewWebhookLog>,
        shutdown: CancellationToken,
    ) {
        let mut batch: Vec<NewWebhookLog> = Vec::with_capacity(config.batch_size);
        let mut tick = tokio::time::interval(config.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                received = rx.recv() => match received {
                    Some(entry) => {
                        batch.push(entry);
                        if batch.len() >= config.batch_size {
                            self.flush(&mut batch, &shutdown, None).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.flush(&mut batch, &shutdown, None).await;
                    }
                }
            }
        }
        // Shutdown: take everything still queued (handlers stop first, so the queue is final
        // once the server has drained) and write it before the deadline.
        let deadline = Instant::now() + config.shutdown_deadline;
        rx.close();
        while let Ok(entry) = rx.try_recv() {
            batch.push(entry);
            if batch.len() >= config.batch_size {
                self.flush(&mut batch, &shutdown, Some(deadline)).await;
            }
        }
        if !batch.is_empty() {
            self.flush(&mut batch, &shutdown, Some(deadline)).await;
        }
    }

    /// Writes `batch`, retrying with back-off while the database is unavailable — or, during
    /// shutdown, until the deadline (what is left then is counted as dropped). Rows the
    /// database refuses are written one by one, so only the bad one is lost.
    async fn flush(
        &self,
        batch: &mut Vec<NewWebhookLog>,
        shutdown: &CancellationToken,
        deadline: Option<Instant>,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let err = match self.sink.write(batch).await {
                Ok(()) => {
                    self.written(batch.len());
                    self.shared.release(batch);
                    batch.clear();
                    return;
                }
                Err(SinkError::Rejected(reason)) => {
                    metrics::counter!("jt_ingest_log_write_errors_total", "kind" => "rejected")
                        .increment(1);
                    tracing::warn!(%reason, rows = batch.len(), "webhook log batch refused; writing its rows one by one");
                    match self.one_by_one(batch).await {
                        Ok(()) => return,
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            metrics::counter!("jt_ingest_log_write_errors_total", "kind" => "unavailable")
                .increment(1);
            self.shared.failed(&err);
            tracing::warn!(%err, rows = batch.len(), retry_in = ?backoff, "webhook log write failed");
            if let Some(deadline) = deadline
                && Instant::now() + backoff > deadline
            {
                metrics::counter!("jt_ingest_log_dropped_total", "reason" => "shutdown")
                    .increment(batch.len() as u64);
                tracing::error!(
                    rows = batch.len(),
                    "webhook log not written before shutdown deadline"
                );
                self.shared.release(batch);
                batch.clear();
                return;
            }
            // While running, a shutdown request cuts the wait short; the final flush retries.
            if deadline.is_none() {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
            } else {
                tokio::time::sleep(backoff).await;
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Writes the rows of a refused batch one at a time. A refused row is repaired and tried
    /// once more, then dropped (counted, logged). Stops at the first "unavailable" and leaves
    /// the unwritten rows in `batch` for the caller's retry.
    async fn one_by_one(&self, batch: &mut Vec<NewWebhookLog>) -> Result<(), SinkError> {
        let rows = std::mem::take(batch);
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            let outcome = match self.sink.write(std::slice::from_ref(&row)).await {
                Ok(()) => Ok(()),
                Err(SinkError::Rejected(first)) => {
                    let repaired = repair(&row);
                    match self.sink.write(std::slice::from_ref(&repaired)).await {
                        Ok(()) => {
                            metrics::counter!("jt_ingest_log_repaired_total").increment(1);
                            tracing::warn!(id = %row.id.0, reason = %first, "webhook log row refused; written without its control characters");
                            Ok(())
                        }
                        Err(SinkError::Rejected(second)) => {
                            metrics::counter!("jt_ingest_log_rejected_total").increment(1);
                            tracing::error!(id = %row.id.0, result = %row.result, reason = %second, "webhook log row refused by the database even repaired: dropped");
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    self.written(1);
                    self.shared.release(std::slice::from_ref(&row));
                }
                Err(e) => {
                    batch.push(row);
                    batch.extend(rows);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn written(&self, rows: usize) {
        self.shared.succeeded();
        metrics::counter!("jt_ingest_log_written_total").increment(rows as u64);
    }
}

/// A row with every control character (other than tab and line breaks) removed from its texts
/// and its body shortened to 1 KiB: what is left of a row the database refused.
fn repair(row: &NewWebhookLog) -> NewWebhookLog {
    fn clean(s: &str, max: usize) -> String {
        let mut out: String = s
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .collect();
        if out.len() > max {
            let mut end = max;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
        }
        out
    }
    NewWebhookLog {
        body: clean(&row.body, 1024),
        result: clean(&row.result, 64),
        reason: row
            .reason
            .as_deref()
            .map(|r| format!("{} (log row repaired)", clean(r, 512))),
        source_ip: row.source_ip.as_deref().map(|s| clean(s, 64)),
        ..row.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use jt_store::WebhookLogId;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Memory {
        rows: Mutex<Vec<NewWebhookLog>>,
        down: AtomicBool,
        writes: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl LogSink for Memory {
        async fn write(&self, batch: &[NewWebhookLog]) -> Result<(), SinkError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(SinkError::Unavailable("connection refused".into()));
            }
            // Like PostgreSQL: one row with a raw control character `\u{1}` fails the batch.
            if batch.iter().any(|r| r.body.contains('\u{1}')) {
                return Err(SinkError::Rejected("invalid byte sequence".into()));
            }
            // A row no repair can save.
            if batch.iter().any(|r| r.result == "doomed") {
                return Err(SinkError::Rejected("check constraint".into()));
            }
            self.writes.lock().push(batch.len());
            self.rows.lock().extend_from_slice(batch);
            Ok(())
        }
    }

    fn entry(i: usize) -> NewWebhookLog {
        NewWebhookLog {
            id: WebhookLogId::new(),
            received_at: Utc::now(),
            recorder: None,
            source_ip: None,
            body: format!("{{\"n\":{i}}}"),
            status_code: 200,
            result: "queued".into(),
            reason: None,
            signal: None,
        }
    }

    #[tokio::test]
    async fn entries_are_written_in_batches() {
        let sink = Arc::new(Memory::default());
        let stop = CancellationToken::new();
        let config = LogWriterConfig {
            batch_size: 10,
            ..LogWriterConfig::default()
        };
        let (log, task) = spawn(sink.clone(), config, stop.clone());
        for i in 0..25 {
            log.record(entry(i));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(sink.rows.lock().len(), 25);
        assert!(sink.writes.lock().iter().all(|n| *n <= 10));
        assert_eq!(log.queued_bytes(), 0, "every byte released");
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_database_outage_loses_nothing_and_never_blocks_the_caller() {
        let sink = Arc::new(Memory::default());
        sink.down.store(true, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let (log, task) = spawn(sink.clone(), LogWriterConfig::default(), stop.clone());
        let started = std::time::Instant::now();
        for i in 0..1000 {
            log.record(entry(i));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "record never waits"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(sink.rows.lock().is_empty());
        sink.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sink.rows.lock().len(), 1000);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn one_bad_row_never_blocks_the_rows_behind_it() {
        let sink = Arc::new(Memory::default());
        let stop = CancellationToken::new();
        let config = LogWriterConfig {
            flush_every: Duration::from_millis(20),
            ..LogWriterConfig::default()
        };
        let (log, task) = spawn(sink.clone(), config, stop.clone());
        log.record(entry(0));
        log.record(NewWebhookLog {
            body: "{\"action\":\"buy\u{1}\"}".into(),
            ..entry(1)
        });
        log.record(NewWebhookLog {
            result: "doomed".into(),
            ..entry(2)
        });
        for i in 3..10 {
            log.record(entry(i));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        {
            let rows = sink.rows.lock();
            // Everything but the row no repair could save; the poisoned body kept, cleaned.
            assert_eq!(rows.len(), 9, "{rows:?}");
            assert!(rows.iter().any(|r| r.body == "{\"action\":\"buy\"}"));
            assert!(rows.iter().all(|r| r.result != "doomed"));
        }
        // And later rows still flow, in whole batches again.
        for i in 10..15 {
            log.record(entry(i));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sink.rows.lock().len(), 14);
        assert_eq!(log.queued_bytes(), 0);
        assert_eq!(log.health(), Ok(()));
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_flushes_what_is_queued_even_behind_a_bad_row() {
        let sink = Arc::new(Memory::default());
        let stop = CancellationToken::new();
        let config = LogWriterConfig {
            flush_every: Duration::from_secs(3600),
            ..LogWriterConfig::default()
        };
        let (log, task) = spawn(sink.clone(), config, stop.clone());
        log.record(NewWebhookLog {
            body: "\u{1}".into(),
            ..entry(0)
        });
        for i in 1..7 {
            log.record(entry(i));
        }
        // Let the writer take them into its batch, then stop before any timed flush.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(sink.rows.lock().len(), 7);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_bytes_and_bodies_are_cut_to_what_the_log_keeps() {
        let sink = Arc::new(Memory::default());
        sink.down.store(true, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let config = LogWriterConfig {
            queue_bytes: 1024 * 1024,
            ..LogWriterConfig::default()
        };
        let (log, task) = spawn(sink.clone(), config, stop.clone());
        // 1,000 bodies of 1 MiB: without cutting, a GiB; cut, ~8 KiB each, and the bound holds.
        let huge = "x".repeat(1024 * 1024);
        for i in 0..1000 {
            log.record(NewWebhookLog {
                body: huge.clone(),
                ..entry(i)
            });
            assert!(log.queued_bytes() <= 1024 * 1024);
        }
        assert!(log.queued_bytes() > 1024 * 1024 - 2 * (LOGGED_BODY_BYTES + ENTRY_OVERHEAD));
        sink.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let rows = sink.rows.lock().clone();
        assert!(!rows.is_empty() && rows.len() < 1000, "{}", rows.len());
        assert!(rows.iter().all(|r| r.body.len() == LOGGED_BODY_BYTES + 1));
        assert_eq!(log.queued_bytes(), 0);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_reports_writes_failing_for_long() {
        let sink = Arc::new(Memory::default());
        sink.down.store(true, Ordering::SeqCst);
        let stop = CancellationToken::new();
        let config = LogWriterConfig {
            flush_every: Duration::from_millis(10),
            stuck_after: Duration::from_secs(5),
            ..LogWriterConfig::default()
        };
        let (log, task) = spawn(sink.clone(), config, stop.clone());
        log.record(entry(0));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(log.health(), Ok(()), "a short outage is not reported");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let err = log.health().unwrap_err();
        assert!(
            err.contains("failing for") && err.contains("connection refused"),
            "{err}"
        );
        sink.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(log.health(), Ok(()));
        assert_eq!(sink.rows.lock().len(), 1);
        stop.cancel();
        task.await.unwrap();
    }
}
