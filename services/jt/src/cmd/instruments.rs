//! `jt instruments`: the instrument table, as a text table or JSON.

use std::process::ExitCode;

use jt_domain::instrument::instruments;

/// Options of `jt instruments`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the table.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut rows: Vec<_> = instruments().iter().collect();
    rows.sort_by_key(|i| i.root);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<5} {:<28} {:<6} {:>11} {:>9} {:>10}  partner",
        "root", "name", "exch", "tick size", "tick $", "point $"
    );
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
        println!(
            "{:<5} {:<28} {:<6} {:>11} {:>9} {:>10}  {}",
            i.root,
            i.name,
            i.exchange.to_string(),
            i.tick_size,
            i.tick_value,
            i.point_value().normalize(),
            partner
        );
    }
    Ok(ExitCode::SUCCESS)
}
