//! `/health`, `/ready` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use crate::backends::Part;
use crate::http::AppState;

/// Liveness: the process answers. Dependency health is not checked here.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = inline(Object), example = json!({"status": "ok"})))
)]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics: OpenMetrics text when the scraper asks for it (as
/// Prometheus does), else the classic text format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The exposition", content(
        (String = "application/openmetrics-text"),
        (String = "text/plain"),
    )))
)]
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if open_metrics {
        ([(header::CONTENT_TYPE, OPEN_METRICS)], app.metrics.encode())
    } else {
        (
            [(header::CONTENT_TYPE, CLASSIC)],
            app.metrics.encode_classic(),
        )
    }
}

/// Readiness: each dependency's health, and which request classes can be
/// served now. 503 while any dependency is down, so a load balancer can
/// steer traffic to a healthy node; the body says what is affected.
#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "All dependencies up", body = inline(Object)),
        (status = 503, description = "A dependency is down; the body says which and what is affected", body = inline(Object)),
    )
)]
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let deps = app.backends.health().await;
    let serves = |parts: &[Part]| parts.iter().all(|part| deps.serves(*part));
    let mut body = serde_json::json!({
        "status": if deps.all_up() { "ready" } else { "degraded" },
        "dependencies": deps.to_json(),
        // What each kind of request needs.
        "serving": {
            "upload": serves(&[Part::Jobs, Part::Files, Part::Queue]),
            "download": serves(&[Part::Files]),
            "jobs": serves(&[Part::Jobs]),
            "login": serves(&[Part::Users]),
            "register": serves(&[Part::Users]),
            "validate": true,
        },
    });
    // Why `storage` is down: what failed for want of room, and since when
    // (conversions wait for room meanwhile; see backends::Space).
    if let Some(shortage) = app.backends.space.shortage() {
        body["storage"] = serde_json::json!({
            "full": true,
            "since": shortage.since.to_rfc3339(),
            "reason": shortage.reason,
            "conversions": "waiting for room (no attempt spent)",
        });
    }
    let status = if deps.all_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
