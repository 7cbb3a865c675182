//! What the bench reads about a daemon running on this machine, from
//! `/proc`: resident memory, sampled by a thread of its own so short peaks
//! are seen, and CPU time. Pointed at a deployment elsewhere the bench has
//! no pid and reports neither.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// A process of this machine.
#[derive(Clone, Copy)]
pub struct Process {
    pid: u32,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Process {
    pub fn new(pid: u32) -> Result<Self> {
        let process = Self { pid };
        process.rss_bytes()?;
        Ok(process)
    }

    /// Resident set size now.
    pub fn rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("no process {}", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .context("VmRSS missing from /proc/PID/status")
    }

    /// User plus system CPU seconds used so far, all threads.
    pub fn cpu_secs(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("no process {}", self.pid))?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime 14, stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("unreadable /proc/PID/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64> {
            fields
                .get(i - 3)
                .and_then(|f| f.parse().ok())
                .context("unreadable /proc/PID/stat")
        };
        let per_sec = rustix::param::clock_ticks_per_second() as f64;
        Ok((ticks(14)? + ticks(15)?) as f64 / per_sec)
    }

    /// Starts sampling resident memory every few milliseconds.
    pub fn watch(&self) -> Result<RssWatch> {
        let baseline = self.rss_bytes()?;
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (process, peak, stop) = (*self, peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(rss) = process.rss_bytes() {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Ok(RssWatch {
            baseline,
            peak,
            stop,
            thread: Some(thread),
        })
    }
}

/// Resident memory watched from a baseline.
pub struct RssWatch {
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Resident memory over a stretch of time.
#[derive(Clone, Copy)]
pub struct RssSpan {
    pub baseline: u64,
    pub peak: u64,
}

impl RssSpan {
    pub fn growth_mib(&self) -> f64 {
        self.peak.saturating_sub(self.baseline) as f64 / MIB
    }

    pub fn describe(&self) -> String {
        format!(
            "RSS {:.1} MiB before, peak {:.1} MiB: growth {:.1} MiB",
            self.baseline as f64 / MIB,
            self.peak as f64 / MIB,
            self.growth_mib()
        )
    }
}

impl RssWatch {
    pub fn finish(mut self) -> RssSpan {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        RssSpan {
            baseline: self.baseline,
            peak: self.peak.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A process to account CPU time for, by pid or by pidfile (read anew at
/// each start: a server restarted between runs is followed).
#[derive(Clone)]
pub struct Watched {
    pub name: String,
    pid: PidSource,
}

#[derive(Clone)]
enum PidSource {
    Fixed(u32),
    File(std::path::PathBuf),
}

impl Watched {
    pub fn pid(name: &str, pid: u32) -> Self {
        Self {
            name: name.to_owned(),
            pid: PidSource::Fixed(pid),
        }
    }

    /// NAME=PID or NAME=@PIDFILE.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let (name, pid) = text.split_once('=').ok_or("expected NAME=PID")?;
        let pid = match pid.strip_prefix('@') {
            Some(file) => PidSource::File(file.into()),
            None => PidSource::Fixed(pid.parse().map_err(|_| format!("not a pid: {pid}"))?),
        };
        Ok(Self {
            name: name.to_owned(),
            pid,
        })
    }

    /// The process now, if there is one.
    pub fn process(&self) -> Option<Process> {
        let pid = match &self.pid {
            PidSource::Fixed(pid) => *pid,
            PidSource::File(file) => std::fs::read_to_string(file).ok()?.trim().parse().ok()?,
        };
        Process::new(pid).ok()
    }
}

/// CPU time of several processes from a start: where the time went.
pub struct CpuMeter {
    started: Vec<(String, Option<Process>, f64)>,
    began: std::time::Instant,
}

/// CPU seconds each process used over some wall time.
#[derive(Default)]
pub struct CpuUse {
    wall: f64,
    used: Vec<(String, f64)>,
}

impl CpuMeter {
    pub fn start(watched: &[Watched]) -> Self {
        Self {
            started: watched
                .iter()
                .map(|w| {
                    let process = w.process();
                    let before = process.and_then(|p| p.cpu_secs().ok()).unwrap_or(f64::NAN);
                    (w.name.clone(), process, before)
                })
                .collect(),
            began: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) -> CpuUse {
        CpuUse {
            wall: self.began.elapsed().as_secs_f64(),
            used: self
                .started
                .iter()
                .map(|(name, process, before)| {
                    let now = process.and_then(|p| p.cpu_secs().ok()).unwrap_or(f64::NAN);
                    (name.clone(), now - before)
                })
                .collect(),
        }
    }

    pub fn describe(&self) -> String {
        self.finish().describe()
    }
}

impl CpuUse {
    /// Adds another stretch (of the same processes) to this one.
    pub fn add(&mut self, other: CpuUse) {
        self.wall += other.wall;
        if self.used.is_empty() {
            self.used = other.used;
            return;
        }
        for ((_, mine), (_, theirs)) in self.used.iter_mut().zip(other.used) {
            *mine += theirs;
        }
    }

    /// "CPU-s over 1.60 s: vidaud 1.10, secantusdb 0.95, ..."
    pub fn describe(&self) -> String {
        let used: Vec<String> = self
            .used
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.2}"))
            .collect();
        format!("CPU-s over {:.2} s: {}", self.wall, used.join(", "))
    }
}
