//! `jt dead-letters list|retry`: the messages a consumer gave up on, for operators.
//!
//! Dead letters live on JetStream (the `DEAD_LETTERS` stream, kept 30 days) with the reason,
//! the attempts and the original message; `list` shows them (oldest first, filtered by stream
//! and consumer), `retry` puts messages back where they came from once the cause is fixed (a
//! handler reads a retried message like any other: the payload's own ids keep it idempotent).
//! `NATS_URL` (and `JT_BUS_NAMESPACE`, if the platform uses one) say which bus.
//!
//! The embedded bus of `jt dev` keeps its dead letters inside its own process: another process
//! cannot reach them. There they are the `message dead-lettered` lines of `jt dev`'s log (with
//! the reason), and they are gone when it stops; this command says so instead of connecting.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use jt_bus::{DeadLetter, DeadLetterQuery, Definitions};
use jt_runtime::config::{Env, ProcessEnv};
use jt_runtime::telemetry::{LogFormat, TelemetryConfig};

use super::serve::{self, Embedded};

/// Options of `jt dead-letters`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List dead letters, oldest first.
    List(ListArgs),
    /// Put dead letters back on their original stream (by sequence, or every one that matches
    /// the filters with --all) and remove them from the dead letters.
    Retry(RetryArgs),
}

#[derive(Debug, clap::Args)]
struct Filter {
    /// Only those from this stream (SIGNALS, ORDERS, COMMANDS, …).
    #[arg(long)]
    stream: Option<String>,
    /// Only those from this consumer (fanout, execute, …).
    #[arg(long)]
    consumer: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    filter: Filter,
    /// Only those after this dead-letter sequence (the last one of the previous page).
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object per line (with the original body) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RetryArgs {
    /// Dead-letter sequences (the first column of `list`).
    sequences: Vec<u64>,
    /// Every dead letter matching the filters instead.
    #[arg(long, conflicts_with = "sequences")]
    all: bool,
    #[command(flatten)]
    filter: Filter,
}

/// Runs `jt dead-letters …`.
///
/// # Errors
/// No JetStream to read (with what to do instead), or the bus failed.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let _telemetry = jt_runtime::telemetry::init(&TelemetryConfig {
        service_name: "jt-dead-letters".into(),
        format: LogFormat::Pretty,
        default_filter: "warn".into(),
        otlp_endpoint: None,
    })?;
    anyhow::ensure!(
        ProcessEnv.get("NATS_URL").is_some(),
        "NATS_URL is not set: dead letters are kept on NATS JetStream (the DEAD_LETTERS stream, \
         30 days). The embedded bus of `jt dev` keeps them inside its own process: they are \
         the `message dead-lettered` lines of its log, and are gone when it stops"
    );
    serve::runtime()?.block_on(async {
        let bus = serve::bus(Embedded::Refused).await?;
        let defs = Definitions::new(bus.namespace());
        let mut out = std::io::stdout().lock();
        match &args.command {
            Command::List(list) => {
                let letters = bus
                    .dead_letters(
                        &defs.dead_letters,
                        &DeadLetterQuery {
                            stream: stream_name(&defs, list.filter.stream.as_deref()),
                            consumer: list.filter.consumer.clone(),
                            after: list.after,
                            limit: list.limit,
                        },
                    )
                    .await
                    .context("reading the dead letters")?;
                if list.json {
                    for dl in &letters {
                        writeln!(out, "{}", as_json(dl))?;
                    }
                } else {
                    print_table(&mut out, &letters)?;
                }
            }
            Command::Retry(retry) => {
                let sequences = if retry.all {
                    every_sequence(&bus, &defs, &retry.filter).await?
                } else {
                    retry.sequences.clone()
                };
                anyhow::ensure!(
                    !sequences.is_empty(),
                    "nothing to retry: name dead-letter sequences, or --all"
                );
                let mut failed = 0;
                for seq in sequences {
                    match bus.retry_dead_letter(&defs.dead_letters, seq).await {
                        Ok(id) => writeln!(out, "{seq}: back on its stream as {id}")?,
                        Err(e) => {
                            failed += 1;
                            writeln!(out, "{seq}: not retried: {e}")?;
                        }
                    }
                }
                if failed > 0 {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The namespaced stream name for a base name given by the operator (`orders` → `ORDERS`).
fn stream_name(defs: &Definitions, given: Option<&str>) -> Option<String> {
    given.map(|s| defs.namespace.stream_name(&s.trim().to_ascii_uppercase()))
}

async fn every_sequence(
    bus: &jt_bus::Bus,
    defs: &Definitions,
    filter: &Filter,
) -> anyhow::Result<Vec<u64>> {
    let mut sequences = Vec::new();
    let mut after = 0;
    loop {
        let page = bus
            .dead_letters(
                &defs.dead_letters,
                &DeadLetterQuery {
                    stream: stream_name(defs, filter.stream.as_deref()),
                    consumer: filter.consumer.clone(),
                    after,
                    limit: 500,
                },
            )
            .await
            .context("reading the dead letters")?;
        let Some(last) = page.last() else {
            return Ok(sequences);
        };
        after = last.sequence;
        sequences.extend(page.iter().map(|d| d.sequence));
    }
}

fn as_json(dl: &DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "sequence": dl.sequence,
        "dead_at": dl.dead_at,
        "stream": dl.stream,
        "consumer": dl.consumer,
        "attempts": dl.attempts,
        "reason": dl.reason,
        "original_sequence": dl.original_sequence,
        "subject": dl.original.subject,
        "message_id": dl.original.message_id(),
        "type": dl.original.headers.get(jt_bus::envelope::HEADER_TYPE),
        "body": String::from_utf8_lossy(&dl.original.payload),
    })
}

fn print_table(out: &mut impl std::io::Write, letters: &[DeadLetter]) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:>8}  {:<24}  {:<22}  {:>8}  {:<40}  reason",
        "seq", "dead at", "stream/consumer", "attempts", "message id"
    )?;
    for dl in letters {
        writeln!(
            out,
            "{:>8}  {:<24}  {:<22}  {:>8}  {:<40}  {}",
            dl.sequence,
            dl.dead_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            format!("{}/{}", dl.stream, dl.consumer),
            dl.attempts,
            dl.original.message_id().unwrap_or_default(),
            dl.reason
        )?;
    }
    Ok(())
}
