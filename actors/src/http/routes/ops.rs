//! `/health`, `/ready` and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use ractor::rpc::CallResult;
use tokio::time::timeout;

use crate::auth::AuthMsg;

use crate::http::AppState;

/// Liveness: the process answers. Dependency health is not checked here.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

/// Readiness: each dependency's health, and which request classes can be
/// served now. 503 while any dependency is down, so a load balancer can
/// steer traffic to a healthy node; the body says what is affected.
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    const CHECK: Duration = Duration::from_secs(2);
    let mongodb = async { matches!(timeout(CHECK, app.store.ping()).await, Ok(Ok(()))) };
    let rabbitmq = async { matches!(timeout(CHECK, app.broker.check()).await, Ok(true)) };
    let mysql = async {
        let ping = app
            .auth
            .call(|reply| AuthMsg::Ping { reply }, Some(CHECK))
            .await;
        matches!(ping, Ok(CallResult::Success(true)))
    };
    let (mongodb, rabbitmq, mysql) = tokio::join!(mongodb, rabbitmq, mysql);
    let word = |up: bool| if up { "up" } else { "down" };
    let body = serde_json::json!({
        "status": if mongodb && rabbitmq && mysql { "ready" } else { "degraded" },
        "dependencies": { "mongodb": word(mongodb), "rabbitmq": word(rabbitmq), "mysql": word(mysql) },
        // What each kind of request needs.
        "serving": {
            "upload": mongodb && rabbitmq,
            "download": mongodb,
            "jobs": mongodb,
            "login": mysql,
            "register": mysql,
            "validate": true,
        },
    });
    let status = if mongodb && rabbitmq && mysql {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
