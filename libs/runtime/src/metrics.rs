//! Prometheus metrics: one recorder per process (shared by every service of `jt dev`), rendered
//! by the `/metrics` route of [`crate::health::router`].
//!
//! Metric names are `jt_<area>_<what>_<unit>`; labels are few and bounded (service, broker,
//! outcome, reason) — never an account id, token or user id, whose cardinality is unbounded.
//!
//! Every family is declared once as a [`Family`] (name, type, help, the series that exist from
//! the start) by the binary that knows which services run; [`register`] describes them (`# HELP`)
//! and creates their start series at zero, so alerts and dashboards see a flat line instead of
//! no data before the first event. Every histogram has fixed buckets (never a summary: quantiles
//! of several replicas cannot be added up, bucket counts can). The process families
//! (`process_*`, read from `/proc` at each scrape) and `jt_build_info` come from here too.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets for latencies in seconds: 100 µs to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Histogram buckets for ratios (`_ratio`, 0 to 1: a budget's share used).
pub const RATIO_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0];

/// Buckets of any other histogram (counts, sizes): powers of two and a bit up to 10 000, so no
/// histogram ever falls back to the exporter's summary.
pub const DEFAULT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 10000.0,
];

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution with fixed buckets.
    Histogram,
}

impl Kind {
    /// The Prometheus `# TYPE` word.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric family: its name, type and help, and the series that exist from the start.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// `jt_<area>_<what>_<unit>`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The `# HELP` text: what one unit of it means.
    pub help: &'static str,
    /// The label sets created at zero by [`register`]; `&[&[]]` for an unlabelled family, `&[]`
    /// for one whose labels are only known at run time (registered by the code that knows them,
    /// e.g. the bus per consumer).
    pub start: &'static [&'static [(&'static str, &'static str)]],
}

/// Installs the Prometheus recorder (once per process) and returns the handle that renders it.
///
/// Histograms whose name ends in `_seconds` get [`LATENCY_BUCKETS`], `_ratio` get
/// [`RATIO_BUCKETS`], every other [`DEFAULT_BUCKETS`]. Call it from a Tokio runtime: it spawns
/// the periodic upkeep that keeps histograms bounded.
///
/// # Errors
/// When a different global `metrics` recorder was installed by someone else.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(DEFAULT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_ratio".into()), RATIO_BUCKETS)?
        .install_recorder()?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The installed handle, if [`install`] has run.
#[must_use]
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}

/// Describes every family of `families` (`# HELP`), whether or not this process emits it: a
/// description costs nothing until a series exists.
pub fn describe(families: &[Family]) {
    for f in families {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.help),
            Kind::Histogram => metrics::describe_histogram!(f.name, f.help),
        }
    }
}

/// Describes `families` and creates their start series ([`Family::start`]) at zero. A series
/// that already has a value keeps it (counters are only ever raised, gauges only created).
pub fn register(families: &[Family]) {
    describe(families);
    for f in families {
        for labels in f.start {
            match f.kind {
                Kind::Counter => metrics::counter!(f.name, *labels).increment(0),
                Kind::Gauge => {
                    // Registering a gauge handle is enough: it renders 0 until set.
                    let _ = metrics::gauge!(f.name, *labels);
                }
                Kind::Histogram => {
                    let _ = metrics::histogram!(f.name, *labels);
                }
            }
        }
    }
}

/// The family of [`build_info`].
pub const BUILD_INFO: Family = Family {
    name: "jt_build_info",
    kind: Kind::Gauge,
    help: "Always 1: the running build's version and git commit (labels), to tell replicas of \
           different releases apart.",
    start: &[],
};

/// Sets `jt_build_info{version, git_sha} 1` (`git_sha` is `unknown` for a build outside git).
pub fn build_info(version: &'static str, git_sha: Option<&'static str>) {
    describe(&[BUILD_INFO]);
    metrics::gauge!(BUILD_INFO.name, "version" => version, "git_sha" => git_sha.unwrap_or("unknown"))
        .set(1.0);
}

/// The process families appended to every scrape (read from `/proc/self`; Linux only).
pub const PROCESS_FAMILIES: &[(&str, Kind, &str)] = &[
    (
        "process_cpu_seconds_total",
        Kind::Counter,
        "User and system CPU time the process has used, in seconds.",
    ),
    (
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident set size of the process, in bytes.",
    ),
    (
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory size of the process, in bytes.",
    ),
    (
        "process_open_fds",
        Kind::Gauge,
        "File descriptors the process has open (sockets included).",
    ),
    (
        "process_max_fds",
        Kind::Gauge,
        "The process's limit on open file descriptors.",
    ),
    (
        "process_start_time_seconds",
        Kind::Gauge,
        "When the process started, in seconds since the Unix epoch.",
    ),
];

/// The kernel's clock ticks per second in `/proc` (`USER_HZ`): 100 on every architecture Linux
/// exposes to user space, whatever the kernel's internal `HZ`.
const USER_HZ: f64 = 100.0;

/// The process families in the Prometheus text format, read now from `/proc/self`; empty where
/// `/proc` is missing (not Linux), so a scrape never fails on them.
#[must_use]
pub fn process_text() -> String {
    let Some(values) = read_process() else {
        return String::new();
    };
    let mut out = String::new();
    for ((name, kind, help), value) in PROCESS_FAMILIES.iter().zip(values) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
        if value.is_infinite() {
            let _ = writeln!(out, "{name} +Inf");
        } else {
            let _ = writeln!(out, "{name} {value}");
        }
    }
    out
}

/// CPU seconds, RSS, virtual size, open fds, max fds, start time: [`PROCESS_FAMILIES`]'s order.
fn read_process() -> Option<[f64; 6]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces and parentheses) start at its last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23.
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    let cpu = (field(14)? + field(15)?) / USER_HZ;
    let vsize = field(23)?;
    let start_ticks = field(22)?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    #[allow(clippy::cast_precision_loss)]
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::INFINITY);
    Some([
        cpu,
        rss_kb * 1024.0,
        vsize,
        open_fds,
        max_fds,
        boot + start_ticks / USER_HZ,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn process_families_are_read_from_proc_with_help_and_type() {
        // Burn some CPU first, so its counter has ticks to show (10 ms each).
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(150) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let text = process_text();
        for (name, kind, _) in PROCESS_FAMILIES {
            assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            assert!(
                text.contains(&format!("# TYPE {name} {}\n", kind.as_str())),
                "{text}"
            );
        }
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            value("process_resident_memory_bytes") > 1_000_000.0,
            "{text}"
        );
        assert!(value("process_open_fds") >= 3.0, "{text}");
        assert!(value("process_cpu_seconds_total") >= 0.05, "{text}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
    }
}
