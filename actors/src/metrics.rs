//! Prometheus metrics of a node, with the reference system's names so its
//! Grafana panels keep working.
//!
//! One `Metrics` value is created at start-up and shared (`Arc`) by every
//! actor; the metric handles are cheap atomics, so recording never blocks.
//! Labels are bounded: route templates, methods, status codes and results,
//! never user or file ids.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub dependency: &'static str,
    pub operation: &'static str,
}

/// Latency of calls to MongoDB, GridFS, MySQL and RabbitMQ (cluster) or SQLite
/// (embedded), by operation.
/// Process-wide, so the adapters time their calls without carrying the
/// node's `Metrics`; `Metrics::new` registers it.
static OPERATIONS: LazyLock<Family<OperationLabels, Histogram>> = LazyLock::new(|| {
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0002, 2.0, 16)))
});

/// Messages parked in the dead-letter queue (process-wide, like [`OPERATIONS`]).
static DEAD_LETTERED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Runs `call`, recording how long it took under `dependency`/`operation`.
pub async fn timed<T>(
    dependency: &'static str,
    operation: &'static str,
    call: impl Future<Output = T>,
) -> T {
    let started = Instant::now();
    let result = call.await;
    OPERATIONS
        .get_or_create(&OperationLabels {
            dependency,
            operation,
        })
        .observe(started.elapsed().as_secs_f64());
    result
}

pub fn dead_lettered() {
    DEAD_LETTERED.inc();
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub gstreamer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabels {
    pub actor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub converter_jobs: Family<ResultLabels, Counter>,
    pub converter_duration: Histogram,
    /// Conversion children that crashed or broke a limit.
    pub converter_crashes: Counter,
    /// Peak resident memory of conversion children that finished.
    pub converter_child_peak: Histogram,
    pub emails: Family<ResultLabels, Counter>,
    /// Webhook attempts by result (delivered, retry, gave_up, refused).
    pub webhooks: Family<ResultLabels, Counter>,
    /// Webhook attempts, request to answer (or failure).
    pub webhook_duration: Histogram,
    pub restarts: Family<ActorLabels, Counter>,
    pub uploads_refused: Counter,
    mailbox_depth: Family<ActorLabels, Gauge>,
    mailbox_capacity: Family<ActorLabels, Gauge>,
    /// Bytes received in upload bodies and sent in downloads.
    pub upload_bytes: Counter,
    pub download_bytes: Counter,
    /// Sampled every few seconds by the root (see `supervision`).
    pub jobs_by_state: Family<StateLabels, Gauge>,
    pub queue_messages: Family<QueueLabels, Gauge>,
    pub dependency_up: Family<DependencyLabels, Gauge>,
    pub workers: Gauge,
    pub workers_busy: Gauge,
    pub unacked: Gauge,
    pub draining: Gauge,
    /// Server-sent event streams open on this node.
    pub event_streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = registered(
            &mut registry,
            "http_requests",
            "HTTP requests by method, route template and status",
            Family::<HttpLabels, Counter>::default(),
        );
        let http_duration = registered(
            &mut registry,
            "http_request_duration_seconds",
            "HTTP request latency by method and route template",
            Family::<RouteLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        );
        let converter_jobs = registered(
            &mut registry,
            "converter_jobs",
            "Conversion attempts by result (success, error, retry)",
            Family::<ResultLabels, Counter>::default(),
        );
        let converter_duration = registered(
            &mut registry,
            "converter_job_duration_seconds",
            "Wall time of a conversion attempt",
            Histogram::new(exponential_buckets(0.05, 2.0, 14)),
        );
        let converter_crashes = registered(
            &mut registry,
            "converter_crashes",
            "Conversion children that died by a signal, broke a limit or their protocol",
            Counter::default(),
        );
        let converter_child_peak = registered(
            &mut registry,
            "converter_child_peak_bytes",
            "Peak resident memory of a conversion child that reported its outcome",
            Histogram::new(exponential_buckets(8.0 * 1024.0 * 1024.0, 2.0, 10)),
        );
        let emails = registered(
            &mut registry,
            "notifier_emails",
            "E-mails by result (sent, failed)",
            Family::<ResultLabels, Counter>::default(),
        );
        let webhooks = registered(
            &mut registry,
            "webhook_deliveries",
            "Webhook delivery attempts by result (delivered, retry, gave_up, refused)",
            Family::<ResultLabels, Counter>::default(),
        );
        let webhook_duration = registered(
            &mut registry,
            "webhook_delivery_duration_seconds",
            "Webhook delivery attempts, from the request to the answer's head or the failure",
            Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        );
        let restarts = registered(
            &mut registry,
            "actor_restarts",
            "Actors restarted after failing (worker = a transcoder worker)",
            Family::<ActorLabels, Counter>::default(),
        );
        let uploads_refused = registered(
            &mut registry,
            "http_uploads_refused_busy",
            "Uploads answered 503 because the node had its limit of uploads in progress",
            Counter::default(),
        );
        let mailbox_depth = registered(
            &mut registry,
            "actor_mailbox_depth",
            "Work accepted by an actor and not finished (see ARCHITECTURE.md, backpressure)",
            Family::<ActorLabels, Gauge>::default(),
        );
        let mailbox_capacity = registered(
            &mut registry,
            "actor_mailbox_capacity",
            "Capacity of an actor's mailbox; at capacity it pushes back",
            Family::<ActorLabels, Gauge>::default(),
        );
        let upload_bytes = registered(
            &mut registry,
            "http_upload_bytes",
            "Bytes received in upload bodies",
            Counter::default(),
        );
        let download_bytes = registered(
            &mut registry,
            "http_download_bytes",
            "Bytes of audio sent by downloads",
            Counter::default(),
        );
        let jobs_by_state = registered(
            &mut registry,
            "jobs_by_state",
            "Jobs in the job store by state (all nodes; sampled)",
            Family::<StateLabels, Gauge>::default(),
        );
        let queue_messages = registered(
            &mut registry,
            "queue_messages_ready",
            "Messages ready in a job queue (video, mp3, dead letters; sampled)",
            Family::<QueueLabels, Gauge>::default(),
        );
        let dependency_up = registered(
            &mut registry,
            "dependency_up",
            "1 while a dependency (cluster: mongodb, rabbitmq, mysql; embedded: sqlite, data_dir) answers, else 0 (sampled)",
            Family::<DependencyLabels, Gauge>::default(),
        );
        let workers = registered(
            &mut registry,
            "transcoder_workers",
            "Transcoder pool size (workers taking jobs)",
            Gauge::default(),
        );
        let workers_busy = registered(
            &mut registry,
            "transcoder_workers_busy",
            "Transcoder workers converting now",
            Gauge::default(),
        );
        let unacked = registered(
            &mut registry,
            "bridge_unacked_deliveries",
            "video deliveries this node holds unacked (converting or waiting for a worker)",
            Gauge::default(),
        );
        let draining = registered(
            &mut registry,
            "node_draining",
            "1 while the node is drained (takes no new jobs)",
            Gauge::default(),
        );
        let event_streams = registered(
            &mut registry,
            "http_event_streams",
            "Server-sent event streams open on this node",
            Gauge::default(),
        );
        registry.register(
            "dependency_operation_duration_seconds",
            "Latency of calls to the backend (MongoDB, GridFS, MySQL, RabbitMQ; or SQLite) by operation",
            OPERATIONS.clone(),
        );
        registry.register(
            "jobs_dead_lettered",
            "Messages parked in the dead-letter queue (failed jobs and non-jobs)",
            DEAD_LETTERED.clone(),
        );
        let build = registered(
            &mut registry,
            "build_info",
            "Version of vidaud and GStreamer; always 1",
            Family::<BuildLabels, Gauge>::default(),
        );
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                gstreamer: gstreamer_version(),
            })
            .set(1);
        for state in crate::domain::JobState::LIVE {
            let state = state.as_str();
            let _ = jobs_by_state.get_or_create(&StateLabels { state });
        }
        // Known results exist from the start, so rate() panels show 0, not
        // "no data", on a fresh node.
        for result in ["success", "error", "retry"] {
            let _ = converter_jobs.get_or_create(&ResultLabels { result });
        }
        for result in ["sent", "failed"] {
            let _ = emails.get_or_create(&ResultLabels { result });
        }
        for result in ["delivered", "retry", "gave_up", "refused"] {
            let _ = webhooks.get_or_create(&ResultLabels { result });
        }
        for actor in ["auth", "notifier", "transcoder", "bridge", "http", "worker"] {
            let _ = restarts.get_or_create(&ActorLabels { actor });
        }
        Self {
            registry,
            http_requests,
            http_duration,
            converter_jobs,
            converter_duration,
            converter_crashes,
            converter_child_peak,
            emails,
            webhooks,
            webhook_duration,
            restarts,
            uploads_refused,
            mailbox_depth,
            mailbox_capacity,
            upload_bytes,
            download_bytes,
            jobs_by_state,
            queue_messages,
            dependency_up,
            workers,
            workers_busy,
            unacked,
            draining,
            event_streams,
        }
    }

    /// The depth and capacity gauges of one actor's mailbox.
    pub fn mailbox_gauges(&self, actor: &'static str) -> (Gauge, Gauge) {
        let labels = ActorLabels { actor };
        (
            self.mailbox_depth.get_or_create(&labels).clone(),
            self.mailbox_capacity.get_or_create(&labels).clone(),
        )
    }

    pub fn restarted(&self, actor: &'static str) {
        self.restarts.get_or_create(&ActorLabels { actor }).inc();
    }

    pub fn job_result(&self, result: &'static str) {
        self.converter_jobs
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn dependency(&self, dependency: &'static str, up: bool) {
        self.dependency_up
            .get_or_create(&DependencyLabels { dependency })
            .set(i64::from(up));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and tools
    /// that do not speak OpenMetrics (`promtool check metrics`, older
    /// agents): the same samples, with counter families named by their
    /// `_total` samples and no `# EOF`/`# UNIT` lines.
    pub fn encode_classic(&self) -> String {
        classic(&self.encode())
    }
}

/// Registers `metric` under `name` and gives it back.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// OpenMetrics text → classic text format.
fn classic(open_metrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The GStreamer version linked, without initialising GStreamer.
fn gstreamer_version() -> String {
    let (major, minor, micro, _) = gstreamer::version();
    format!("{major}.{minor}.{micro}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_reference_metric_names() {
        let m = Metrics::new();
        m.http_requests
            .get_or_create(&HttpLabels {
                method: "GET".into(),
                path: "/health".into(),
                status: 200,
            })
            .inc();
        m.http_duration
            .get_or_create(&RouteLabels {
                method: "GET".into(),
                path: "/health".into(),
            })
            .observe(0.001);
        m.job_result("success");
        let text = m.encode();
        let classic = m.encode_classic();
        assert!(classic.contains("# TYPE http_requests_total counter\n"));
        assert!(classic.contains("# HELP converter_jobs_total "));
        assert!(!classic.contains("# EOF"));
        for name in [
            "http_requests_total{method=\"GET\",path=\"/health\",status=\"200\"} 1",
            "converter_jobs_total{result=\"success\"} 1",
            "# TYPE http_request_duration_seconds histogram",
            "# TYPE converter_job_duration_seconds histogram",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
