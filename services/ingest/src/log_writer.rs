//! The raw webhook log, written off the hot path (DOMAIN.md §2: every request is logged).
//!
//! Handlers hand each entry to [`WebhookLog::record`], which never waits: the entry goes into a
//! bounded queue that one writer task drains in batches (up to `batch_size` rows or every
//! `flush_every`). A slow or unreachable database therefore never delays a webhook answer: the
//! writer retries its batch with back-off while the queue absorbs new entries. Only when the
//! queue is full (the database has been down for minutes at full load) are entries dropped, and
//! each drop is counted (`jt_ingest_log_dropped_total`) and logged. On shutdown the writer
//! drains the queue and flushes it before the process exits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jt_store::Store;
use jt_store::repo::webhooks::NewWebhookLog;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where log batches go (the store in production).
#[async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// Writes a batch; `Err` means nothing can be assumed written (the batch is retried, and
    /// rows carry their own ids so a retry never duplicates).
    async fn write(&self, batch: &[NewWebhookLog]) -> Result<(), String>;
}

#[async_trait]
impl LogSink for Store {
    async fn write(&self, batch: &[NewWebhookLog]) -> Result<(), String> {
        self.webhooks()
            .log_batch(batch)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct LogWriterConfig {
    /// Entries the queue holds while the database is slow.
    pub queue: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest an entry waits before its batch is written.
    pub flush_every: Duration,
    /// How long the final flush may take at shutdown.
    pub shutdown_deadline: Duration,
}

impl Default for LogWriterConfig {
    fn default() -> Self {
        Self {
            queue: 100_000,
            batch_size: 500,
            flush_every: Duration::from_millis(200),
            shutdown_deadline: Duration::from_secs(10),
        }
    }
}

/// The handle handlers log through; cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookLog {
    tx: mpsc::Sender<NewWebhookLog>,
}

impl WebhookLog {
    /// Queues one entry without waiting.
    pub fn record(&self, entry: NewWebhookLog) {
        match self.tx.try_send(entry) {
            Ok(()) => metrics::gauge!("jt_ingest_log_queued").increment(1.0),
            Err(mpsc::error::TrySendError::Full(lost)) => {
                metrics::counter!("jt_ingest_log_dropped_total").increment(1);
                tracing::error!(
                    result = %lost.result,
                    "webhook log queue full (database unreachable for long): entry dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!("jt_ingest_log_dropped_total").increment(1);
                tracing::error!("webhook log writer stopped: entry dropped");
            }
        }
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
    let task = tokio::spawn(run(sink, config, rx, shutdown));
    (WebhookLog { tx }, task)
}

async fn run(
    sink: Arc<dyn LogSink>,
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
                        flush(&*sink, &mut batch, &shutdown, None).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    flush(&*sink, &mut batch, &shutdown, None).await;
                }
            }
        }
    }
    // Shutdown: take everything still queued (handlers stop first, so the queue is final once
    // the server has drained) and write it before the deadline.
    let deadline = Instant::now() + config.shutdown_deadline;
    rx.close();
    while let Ok(entry) = rx.try_recv() {
        batch.push(entry);
        if batch.len() >= config.batch_size {
            flush(&*sink, &mut batch, &shutdown, Some(deadline)).await;
        }
    }
    if !batch.is_empty() {
        flush(&*sink, &mut batch, &shutdown, Some(deadline)).await;
    }
}

/// Writes `batch`, retrying with back-off until it succeeds — or, during shutdown, until the
/// deadline (what is left then is counted as dropped).
async fn flush(
    sink: &dyn LogSink,
    batch: &mut Vec<NewWebhookLog>,
    shutdown: &CancellationToken,
    deadline: Option<Instant>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match sink.write(batch).await {
            Ok(()) => {
                #[allow(clippy::cast_precision_loss)] // a batch is at most a few hundred rows
                metrics::gauge!("jt_ingest_log_queued").decrement(batch.len() as f64);
                metrics::counter!("jt_ingest_log_written_total").increment(batch.len() as u64);
                batch.clear();
                return;
            }
            Err(err) => {
                metrics::counter!("jt_ingest_log_write_errors_total").increment(1);
                tracing::warn!(%err, rows = batch.len(), retry_in = ?backoff, "webhook log write failed");
                if let Some(deadline) = deadline
                    && Instant::now() + backoff > deadline
                {
                    metrics::counter!("jt_ingest_log_dropped_total").increment(batch.len() as u64);
                    tracing::error!(
                        rows = batch.len(),
                        "webhook log not written before shutdown deadline"
                    );
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use jt_store::WebhookLogId;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Memory {
        rows: Mutex<Vec<NewWebhookLog>>,
        down: AtomicBool,
        writes: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl LogSink for Memory {
        async fn write(&self, batch: &[NewWebhookLog]) -> Result<(), String> {
            if self.down.load(Ordering::SeqCst) {
                return Err("connection refused".into());
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
    async fn shutdown_flushes_what_is_queued() {
        let sink = Arc::new(Memory::default());
        let stop = CancellationToken::new();
        let config = LogWriterConfig {
            flush_every: Duration::from_secs(3600),
            ..LogWriterConfig::default()
        };
        let (log, task) = spawn(sink.clone(), config, stop.clone());
        for i in 0..7 {
            log.record(entry(i));
        }
        // Let the writer take them into its batch, then stop before any timed flush.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(sink.rows.lock().len(), 7);
    }
}
