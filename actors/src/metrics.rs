//! Prometheus metrics of a node, with the reference system's names so its
//! Grafana panels keep working.
//!
//! One `Metrics` value is created at start-up and shared (`Arc`) by every
//! actor; the metric handles are cheap atomics, so recording never blocks.
//! Labels are bounded: route templates, methods, status codes and results,
//! never user or file ids.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    pub emails: Family<ResultLabels, Counter>,
    pub restarts: Family<ActorLabels, Counter>,
    pub uploads_refused: Counter,
    mailbox_depth: Family<ActorLabels, Gauge>,
    mailbox_capacity: Family<ActorLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template",
            http_duration.clone(),
        );
        let converter_jobs = Family::<ResultLabels, Counter>::default();
        registry.register(
            "converter_jobs",
            "Conversion attempts by result (success, error, retry)",
            converter_jobs.clone(),
        );
        let converter_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "converter_job_duration_seconds",
            "Wall time of a conversion attempt",
            converter_duration.clone(),
        );
        let emails = Family::<ResultLabels, Counter>::default();
        registry.register(
            "notifier_emails",
            "E-mails by result (sent, failed)",
            emails.clone(),
        );
        let restarts = Family::<ActorLabels, Counter>::default();
        registry.register(
            "actor_restarts",
            "Actors restarted after failing (worker = a transcoder worker)",
            restarts.clone(),
        );
        let uploads_refused = Counter::default();
        registry.register(
            "http_uploads_refused_busy",
            "Uploads answered 503 because the node had its limit of uploads in progress",
            uploads_refused.clone(),
        );
        let mailbox_depth = Family::<ActorLabels, Gauge>::default();
        registry.register(
            "actor_mailbox_depth",
            "Work accepted by an actor and not finished (see ARCHITECTURE.md, backpressure)",
            mailbox_depth.clone(),
        );
        let mailbox_capacity = Family::<ActorLabels, Gauge>::default();
        registry.register(
            "actor_mailbox_capacity",
            "Capacity of an actor's mailbox; at capacity it pushes back",
            mailbox_capacity.clone(),
        );
        // Known results exist from the start, so rate() panels show 0, not
        // "no data", on a fresh node.
        for result in ["success", "error", "retry"] {
            let _ = converter_jobs.get_or_create(&ResultLabels { result });
        }
        for result in ["sent", "failed"] {
            let _ = emails.get_or_create(&ResultLabels { result });
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
            emails,
            restarts,
            uploads_refused,
            mailbox_depth,
            mailbox_capacity,
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

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
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
