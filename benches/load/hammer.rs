//! A fixed number of requests at a fixed concurrency, each timed: the
//! throughput and latency percentiles of one kind of request. Workers take
//! the next request number from a shared counter, so a slow answer holds
//! up only its own worker, as with independent clients.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

/// What a run of requests measured.
pub struct Summary {
    pub requests: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Where the CPU time went, when measured.
    pub cpu: Option<String>,
    /// Latencies of the successful requests, sorted.
    latencies: Vec<Duration>,
}

impl Summary {
    pub fn per_sec(&self) -> f64 {
        (self.requests - self.failed) as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency below which `share` of the requests finished, in ms.
    pub fn percentile_ms(&self, share: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank =
            ((self.latencies.len() as f64 * share).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1].as_secs_f64() * 1000.0
    }

    pub fn describe(&self) -> String {
        let mut line = format!(
            "{} requests in {:.2} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.per_sec(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0),
            self.failed,
        );
        if let Some(error) = &self.first_error {
            line.push_str(&format!(" (first: {error})"));
        }
        if let Some(cpu) = &self.cpu {
            line.push_str(&format!("\n  {cpu}"));
        }
        line
    }
}

/// Makes `total` requests, `concurrency` at a time; `request(n)` makes the
/// n-th and fails if its answer is not the expected one.
pub async fn hammer<F, Fut>(total: usize, concurrency: usize, request: F) -> Summary
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let began = Instant::now();
                    match request(n).await {
                        Ok(()) => latencies.push(began.elapsed()),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for worker in workers {
        match worker.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors.extend(e);
            }
            Err(e) => errors.push(format!("worker: {e}")),
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Summary {
        requests: total,
        failed: total - latencies.len(),
        first_error: errors.into_iter().next(),
        elapsed,
        cpu: None,
        latencies,
    }
}
