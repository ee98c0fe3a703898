//! Readable numbers and a plain-text table.

use hdrhistogram::Histogram;

/// Microseconds as `850 µs`, `1.23 ms` or `2.5 s`.
pub fn us(v: u64) -> String {
    if v < 1_000 {
        format!("{v} µs")
    } else if v < 1_000_000 {
        format!("{:.2} ms", v as f64 / 1_000.0)
    } else {
        format!("{:.2} s", v as f64 / 1_000_000.0)
    }
}

/// `p` percentile of `h`, readable; `-` when empty.
pub fn pct(h: &Histogram<u64>, p: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        us(h.value_at_quantile(p / 100.0))
    }
}

/// Maximum of `h`, readable.
pub fn max(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        us(h.max())
    }
}

/// KiB as MiB.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// A table printed with aligned columns (and as Markdown when `markdown`).
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| (*s).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints it aligned, then as Markdown (for docs/benchmarks.md).
    pub fn print(&self, title: &str) {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        println!("\n{title}");
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = width[i]))
                .collect();
            println!("  {}", line.join("  "));
        }
        println!();
        println!("| {} |", self.header.join(" | "));
        println!("|{}|", vec!["---"; cols].join("|"));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}
