//! `jt tradovate decode`: read captured Tradovate WebSocket traffic.
//!
//! Frames come on stdin, one per line. Server frames as received (`o`, `h`, `a[…]`, `c[…]`);
//! client frames as sent (`[]`, or a request in which the two characters `\n` stand for the
//! request's newlines: `authorize\n0\n\n<token>`). Each frame becomes one JSON object on stdout
//! with its `kind` (`open`, `heartbeat`, `close`, `messages`, `request`) and decoded content:
//! typed `props` entities, responses with their status (the sync snapshot typed, errors as
//! text, penalties), request endpoint/id/query/body. A line that cannot be decoded prints
//! `{"error": "…"}` and the command exits 2 after the last line; blank lines are skipped.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use jt_tradovate::websocket::messages::decode_line;

/// Options of `jt tradovate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TradovateCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TradovateCommand {
    /// Decode captured WebSocket frames from stdin, one per line, into JSON lines on stdout.
    ///
    /// A client request's newlines are written as the two characters \n. Exit 0 when every
    /// line decoded, 2 when some printed {"error": "..."}.
    Decode,
}

/// The exit code when some line did not decode.
const UNDECODABLE: u8 = 2;

/// Runs `jt tradovate …`.
///
/// # Errors
/// Reading stdin or writing stdout failed.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match args.command {
        TradovateCommand::Decode => {
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let failures = decode(stdin.lock(), &mut stdout.lock())?;
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(UNDECODABLE)
            })
        }
    }
}

/// Decodes every line of `input` to `output`; returns how many lines failed.
fn decode(input: impl BufRead, output: &mut impl Write) -> anyhow::Result<usize> {
    let mut failures = 0;
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let json = match decode_line(&line) {
            Ok(frame) => {
                serde_json::to_string(&frame).with_context(|| format!("writing line {}", n + 1))?
            }
            Err(e) => {
                failures += 1;
                serde_json::json!({ "error": format!("line {}: {e}", n + 1) }).to_string()
            }
        };
        writeln!(output, "{json}").context("writing stdout")?;
    }
    output.flush().context("writing stdout")?;
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(input: &str) -> (Vec<serde_json::Value>, usize) {
        let mut out = Vec::new();
        let failures = decode(input.as_bytes(), &mut out).unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, failures)
    }

    #[test]
    fn every_frame_kind_is_printed_and_bad_lines_are_reported() {
        let input = concat!(
            "o\n",
            "h\n",
            "\n",
            "a[{\"s\":200,\"i\":0}]\n",
            "a[{\"e\":\"props\",\"d\":{\"entityType\":\"position\",\"eventType\":\"Updated\",\"entity\":{\"accountId\":33,\"contractId\":65543,\"netPos\":-2,\"netPrice\":21500.25}}}]\n",
            "not a frame\n",
            "c[3000,\"Go away!\"]\n",
            "authorize\\n0\\n\\ntoken-123\n",
            "[]\n",
        );
        let (lines, failures) = run_on(input);
        assert_eq!(failures, 1);
        let kinds: Vec<&str> = lines
            .iter()
            .map(|l| l["kind"].as_str().unwrap_or("error"))
            .collect();
        assert_eq!(
            kinds,
            [
                "open",
                "heartbeat",
                "messages",
                "messages",
                "error",
                "close",
                "request",
                "heartbeat"
            ]
        );
        let position = &lines[3]["messages"][0];
        assert_eq!(position["type"], "props");
        assert_eq!(position["entities"][0]["entity_type"], "position");
        assert_eq!(position["entities"][0]["entity"]["netPos"], -2);
        assert!(lines[4]["error"].as_str().unwrap().starts_with("line 6:"));
        assert_eq!(lines[6]["endpoint"], "authorize");
        assert_eq!(lines[6]["body"], "token-123");
        assert_eq!(lines[7]["from"], "client");
    }

    #[test]
    fn clean_input_has_no_failures() {
        let (lines, failures) = run_on("o\nuser/syncrequest\\n1\\n\\n{\"accounts\":[33]}\n");
        assert_eq!(failures, 0);
        assert_eq!(lines[1]["body"]["accounts"][0], 33);
    }
}
