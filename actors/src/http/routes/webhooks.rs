//! Webhook endpoints (`POST/GET/DELETE /webhooks`), their deliveries and
//! re-sending one. The secret is shown once, when the endpoint is made;
//! every other view leaves it out. Someone else's endpoint is 404, as if it
//! did not exist (an admin sees only their own: endpoints are personal).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::jobs::{owned_job, parse_id};
use crate::domain::{
    Attempt, Callback, Delivery, DeliveryId, DeliveryState, Endpoint, EndpointId, JobEventType,
    Timestamp,
};
use crate::http::AppState;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::Caller;
use crate::http::small_body::json;
use crate::jobs::access;
use crate::webhooks::sign;

/// Deliveries one listing shows at most.
const DELIVERIES_SHOWN: u32 = 100;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where events are POSTed: http or https; loopback, private and other
    /// special addresses are refused unless `webhooks.allowed_networks`
    /// allows them (checked again after DNS at each delivery).
    url: String,
    /// The events wanted: `job.done`, `job.failed`, `job.deleted`; all
    /// when absent or empty.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    events: Vec<JobEventType>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    #[schema(value_type = String)]
    id: EndpointId,
    url: String,
    #[schema(value_type = Vec<String>)]
    events: Vec<JobEventType>,
    created_at: String,
    /// Only in the answer to its creation: the Standard Webhooks secret
    /// (`whsec_…`) a receiver verifies `webhook-signature` with.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointView {
    fn of(endpoint: Endpoint, with_secret: bool) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            events: endpoint.events,
            created_at: endpoint.created_at.to_rfc3339(),
            secret: with_secret.then_some(endpoint.secret),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = String)]
    id: DeliveryId,
    /// The `webhook-id` the receiver saw (the same on every attempt).
    message_id: String,
    #[schema(value_type = String)]
    event: JobEventType,
    job_id: String,
    state: DeliveryState,
    attempts: u32,
    /// When the next attempt is due (pending only).
    next_attempt_at: Option<String>,
    created_at: String,
    /// The latest attempts, oldest first.
    history: Vec<Attempt>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            message_id: d.message_id(),
            id: d.id,
            event: d.event,
            job_id: d.job_id.to_hex(),
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_at.map(Timestamp::to_rfc3339),
            created_at: d.created_at.to_rfc3339(),
            history: d.history,
        }
    }
}

/// The caller's endpoint `raw_id`, else 404.
async fn owned_endpoint(
    app: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<Endpoint, ApiError> {
    let id: EndpointId = parse_id(raw_id)?;
    let store = app.webhooks.intake.store();
    access::endpoint(store.as_ref(), caller.viewer(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Registers an endpoint; the answer is the only one with its secret.
#[utoipa::path(
    post, path = "/webhooks", tag = "webhooks",
    request_body(content = NewEndpoint, content_type = "application/json"),
    responses(
        (status = 201, description = "The endpoint, with its secret", body = EndpointView),
        (status = 409, description = "Too many endpoints", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The URL cannot receive webhooks", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    let request: NewEndpoint = json(&body, r#"{"url": "https://…", "events": ["job.done", …]}"#)?;
    let url = request.url.trim().to_owned();
    app.webhooks
        .check_url(&url)
        .map_err(|why| ApiError::invalid(format!("{url}: {why}")))?;
    let store = app.webhooks.intake.store();
    let owner = caller.owner().clone();
    let existing = store.endpoints(&owner).await?;
    if existing.len() >= app.webhooks.max_endpoints as usize {
        return Err(ApiError::of_kind(
            ProblemKind::Conflict,
            format!(
                "you have {} webhooks, the most allowed (webhooks.max_endpoints_per_user)",
                existing.len()
            ),
        ));
    }
    let mut events = request.events;
    events.sort_by_key(|e| e.as_str());
    events.dedup();
    let endpoint = Endpoint {
        id: EndpointId::new(),
        owner,
        url,
        secret: sign::new_secret(),
        events,
        created_at: Timestamp::now(),
    };
    store.add_endpoint(&endpoint).await?;
    Ok((StatusCode::CREATED, Json(EndpointView::of(endpoint, true))))
}

/// Your endpoints (without their secrets).
#[utoipa::path(
    get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, description = "Your endpoints, oldest first", body = Vec<EndpointView>)),
    security(("bearer" = []))
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    let endpoints = app
        .webhooks
        .intake
        .store()
        .endpoints(caller.owner())
        .await?;
    Ok(Json(
        endpoints
            .into_iter()
            .map(|e| EndpointView::of(e, false))
            .collect(),
    ))
}

/// One endpoint (without its secret).
#[utoipa::path(
    get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The endpoint", body = EndpointView)),
    security(("bearer" = []))
)]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = owned_endpoint(&app, &caller, &id).await?;
    Ok(Json(EndpointView::of(endpoint, false)))
}

/// Removes an endpoint and its deliveries (pending ones are not sent).
#[utoipa::path(
    delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Removed")),
    security(("bearer" = []))
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = owned_endpoint(&app, &caller, &id).await?;
    app.webhooks
        .intake
        .store()
        .remove_endpoint(endpoint.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, newest first, each with its latest attempts.
#[utoipa::path(
    get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "Its deliveries", body = Vec<DeliveryView>)),
    security(("bearer" = []))
)]
pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let endpoint = owned_endpoint(&app, &caller, &id).await?;
    deliveries_to(&app, &endpoint.target()).await
}

/// Sends a delivery again now (its `webhook-id` stays the same).
#[utoipa::path(
    post, path = "/webhooks/{id}/deliveries/{delivery_id}/resend", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("delivery_id" = String, Path, description = "Delivery id"),
    ),
    responses((status = 202, description = "Queued to go out now", body = DeliveryView)),
    security(("bearer" = []))
)]
pub async fn resend(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let endpoint = owned_endpoint(&app, &caller, &id).await?;
    resend_to(&app, &endpoint.target(), &delivery_id).await
}

/// The deliveries to a job's `callback_url`, newest first.
#[utoipa::path(
    get, path = "/jobs/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "Its callback's deliveries (none without a callback_url)", body = Vec<DeliveryView>)),
    security(("bearer" = []))
)]
pub async fn job_deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let job = owned_job(&app, &caller, &id).await?;
    deliveries_to(&app, &Callback::target(job.id)).await
}

/// Sends a delivery to a job's `callback_url` again now.
#[utoipa::path(
    post, path = "/jobs/{id}/deliveries/{delivery_id}/resend", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Job id"),
        ("delivery_id" = String, Path, description = "Delivery id"),
    ),
    responses((status = 202, description = "Queued to go out now", body = DeliveryView)),
    security(("bearer" = []))
)]
pub async fn job_resend(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let job = owned_job(&app, &caller, &id).await?;
    resend_to(&app, &Callback::target(job.id), &delivery_id).await
}

async fn deliveries_to(app: &AppState, target: &str) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let deliveries = app
        .webhooks
        .intake
        .store()
        .deliveries(target, DELIVERIES_SHOWN)
        .await?;
    Ok(Json(
        deliveries.into_iter().map(DeliveryView::from).collect(),
    ))
}

/// Makes delivery `raw_id` of `target` due now (404 if it is not one).
async fn resend_to(
    app: &AppState,
    target: &str,
    raw_id: &str,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let delivery_id: DeliveryId = parse_id(raw_id)?;
    let store = app.webhooks.intake.store();
    let mut delivery = match store.delivery(delivery_id).await? {
        Some(d) if d.target == target => d,
        _ => return Err(ApiError::not_found("delivery")),
    };
    delivery.state = DeliveryState::Pending;
    delivery.next_at = Some(Timestamp::now());
    if !store.update(&delivery).await? {
        return Err(ApiError::not_found("delivery"));
    }
    app.webhooks.intake.wake().notify_one();
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(delivery))))
}
