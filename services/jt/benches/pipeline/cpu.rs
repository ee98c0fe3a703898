//! CPU time by process, read from `/proc`: the services this benchmark started and the servers
//! under them (every process named `nats-server` or `postgres` on the machine — idle ones add
//! nothing). A scenario's CPU per alert shows where the work goes and, set against the cores,
//! how far latency is bound by CPU.

use std::collections::BTreeMap;
use std::process::Command;

use crate::procs::Service;

/// Servers counted by process name.
const SERVERS: [&str; 2] = ["nats-server", "postgres"];

/// CPU seconds (user + system) by process name.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes(BTreeMap<String, f64>);

impl CpuTimes {
    /// Now, for `services` and the servers.
    pub fn read(services: &[&Service]) -> Self {
        let tick = clock_ticks();
        let mut times = BTreeMap::new();
        for s in services {
            if let Some(t) = cpu_ticks(s.pid()) {
                *times.entry(s.name.to_string()).or_default() += t as f64 / tick;
            }
        }
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if let Some(name) = SERVERS.iter().find(|n| comm.trim() == **n)
                && let Some(t) = cpu_ticks(pid)
            {
                *times.entry((*name).to_string()).or_default() += t as f64 / tick;
            }
        }
        Self(times)
    }

    /// What was used since `before`, by process name (processes that exited in between — a
    /// database connection closed — are missing from both sides or counted from zero).
    pub fn since(&self, before: &CpuTimes) -> CpuTimes {
        Self(
            self.0
                .iter()
                .map(|(name, now)| {
                    let then = before.0.get(name).copied().unwrap_or(0.0);
                    (name.clone(), (now - then).max(0.0))
                })
                .collect(),
        )
    }

    /// Seconds used by `name` (0 when not seen).
    pub fn of(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// Seconds used by every process.
    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }
}

/// `utime + stime` of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: the fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is at index 0, so utime (field 14) is at 11 and stime (15) at 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when it cannot be asked).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
