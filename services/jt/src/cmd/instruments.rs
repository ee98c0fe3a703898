//! `jt instruments`: the instrument table, as a text table or JSON.

use std::io::Write as _;
use std::process::ExitCode;

use jt_domain::instrument::instruments;

/// Options of `jt instruments`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the table. A reader that stops early (`jt instruments | head`) ends the command
/// quietly, as with any Unix tool.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match print(args) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

fn print(args: &Args) -> anyhow::Result<ExitCode> {
    let mut rows: Vec<_> = instruments().iter().collect();
    rows.sort_by_key(|i| i.root);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<5} {:<28} {:<6} {:>11} {:>9} {:>10}  partner",
        "root", "name", "exch", "tick size", "tick $", "point $"
    )?;
    for i in rows {
        let partner = i
            .partner
            .map(|p| {
                format!(
                    "{} ({}, x{})",
                    p.root,
                    if p.partner_is_micro { "micro" } else { "mini" },
                    p.ratio
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{:<5} {:<28} {:<6} {:>11} {:>9} {:>10}  {}",
            i.root,
            i.name,
            i.exchange.to_string(),
            i.tick_size,
            i.tick_value,
            i.point_value().normalize(),
            partner
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
