//! How figures are printed: each next to its target with a verdict, and the
//! machine they were measured on, so a pasted run says what it proves.

use std::sync::atomic::{AtomicUsize, Ordering};

static MET: AtomicUsize = AtomicUsize::new(0);
static MISSED: AtomicUsize = AtomicUsize::new(0);

/// A figure and the bound it should keep.
pub struct Target {
    name: String,
    value: f64,
    bound: f64,
    at_least: bool,
}

impl Target {
    pub fn at_least(name: &str, value: f64, bound: f64) -> Self {
        Self {
            name: name.into(),
            value,
            bound,
            at_least: true,
        }
    }

    pub fn at_most(name: &str, value: f64, bound: f64) -> Self {
        Self {
            name: name.into(),
            value,
            bound,
            at_least: false,
        }
    }

    pub fn print(self) {
        let met = if self.at_least {
            self.value >= self.bound
        } else {
            self.value <= self.bound
        };
        let counter = if met { &MET } else { &MISSED };
        counter.fetch_add(1, Ordering::Relaxed);
        println!(
            "{}: {:.2} (target {} {}): {}",
            self.name,
            self.value,
            if self.at_least { "≥" } else { "≤" },
            self.bound,
            if met { "met" } else { "MISSED" }
        );
    }
}

/// Targets met and missed so far.
pub fn tally() -> (usize, usize) {
    (MET.load(Ordering::Relaxed), MISSED.load(Ordering::Relaxed))
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Cores, CPU model, memory and kernel of this machine (the client's; the
/// same as the service's when it runs here).
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(String::new, |kib| {
            format!(", {:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({model}){memory}, Linux {}", kernel.trim())
}
