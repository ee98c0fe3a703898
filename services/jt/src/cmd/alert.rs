//! `jt alert parse`: test an alert template the way the webhook reads it.
//!
//! The body comes on stdin; the parsed signal goes to stdout as one JSON object (exit 0) with
//! two more keys — `intent` (entry, add, partial exit of N %, full exit, flip, in words) and
//! `overrides` (every per-alert override, in words) — or
//! the webhook's refusal goes to stderr as `{"status": <HTTP status>, "error": "<message>"}`
//! (exit 2).

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use jt_alerts::{AlertContext, AlertError, parse_alert};

/// Options of `jt alert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AlertCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AlertCommand {
    /// Parse an alert body from stdin and print the signal the webhook would queue.
    ///
    /// Exit 0 with the signal as JSON on stdout, or exit 2 with
    /// {"status": <HTTP status>, "error": "<message>"} on stderr for a body the webhook would
    /// refuse.
    Parse(ParseArgs),
}

/// Options of `jt alert parse`: the recorder settings that change how a body is read.
#[derive(Debug, clap::Args)]
struct ParseArgs {
    /// The recorder's symbol, used when the alert has no ticker.
    #[arg(long, value_name = "SYMBOL")]
    recorder_symbol: Option<String>,
    /// The recorder's custom_ticker, traded instead of the alert's ticker.
    #[arg(long, value_name = "SYMBOL")]
    custom_ticker: Option<String>,
    /// The recorder's inverse_strategy: swap buy ↔ sell and long ↔ short.
    #[arg(long)]
    inverse: bool,
}

/// The exit code for a body the webhook would refuse.
const REFUSED: u8 = 2;

/// Runs `jt alert …`.
///
/// # Errors
/// Reading stdin or writing the output failed.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        AlertCommand::Parse(parse) => run_parse(parse),
    }
}

fn run_parse(args: &ParseArgs) -> anyhow::Result<ExitCode> {
    let mut body = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut body)
        .context("reading the alert body from stdin")?;
    let ctx = AlertContext {
        recorder_symbol: args.recorder_symbol.as_deref(),
        custom_ticker: args.custom_ticker.as_deref(),
        inverse: args.inverse,
    };
    // A `time` far in the future is refused against this machine's clock, as the webhook
    // refuses it against the ingest's.
    let parsed = parse_alert(&body, &ctx)
        .and_then(|s| jt_alerts::check_alert_time(s.time, chrono::Utc::now()).map(|()| s));
    match parsed {
        Ok(signal) => {
            // The signal as queued, plus what it asks in words: the derived intent and every
            // per-alert override, so a template can be checked before it trades. Appended to
            // the signal's own text: a `Value` round trip would print its exact decimals
            // through `f64`.
            let mut json = serde_json::to_string(&signal).context("writing the signal as JSON")?;
            let intent = serde_json::to_string(&signal.describe_intent())
                .context("writing the intent as JSON")?;
            let overrides = serde_json::to_string(&signal.describe_overrides())
                .context("writing the overrides as JSON")?;
            if json.ends_with('}') {
                json.pop();
                json.push_str(&format!(r#","intent":{intent},"overrides":{overrides}}}"#));
            }
            writeln!(std::io::stdout().lock(), "{json}").context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            refuse(&error)?;
            Ok(ExitCode::from(REFUSED))
        }
    }
}

fn refuse(error: &AlertError) -> anyhow::Result<()> {
    writeln!(std::io::stderr().lock(), "{}", error.response_json()).context("writing to stderr")
}
