//! `/register`, `/login`, `/validate`: the reference's auth endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use ractor::rpc::CallResult;
use serde::Deserialize;

use crate::auth::{AuthError, AuthMsg, Claims};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{BasicCredentials, Caller};
use crate::mailbox::Ticket;

const AUTH_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct Registration {
    email: String,
    password: String,
}

pub async fn register(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<Registration>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !app.registration_open {
        return Err(ApiError::of_kind(
            "registration-closed",
            "registration is closed on this service; ask an administrator for an account",
        ));
    }
    app.limits.check_ip(peer.ip())?;
    let Json(form) = body.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "expected JSON {{\"email\": ..., \"password\": ...}}: {}",
                e.body_text()
            ),
        )
    })?;
    let email = form.email.trim().to_owned();
    let ticket = auth_ticket(&app)?;
    let result = app
        .auth
        .call(
            |reply| AuthMsg::Register {
                email: email.clone(),
                password: form.password,
                ticket,
                reply,
            },
            Some(AUTH_TIMEOUT),
        )
        .await;
    unwrap_call(result)??;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "email": email })),
    ))
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    credentials: BasicCredentials,
) -> Result<String, ApiError> {
    app.limits.check_ip(peer.ip())?;
    app.limits.check_account(&credentials.username)?;
    let ticket = auth_ticket(&app)?;
    let result = app
        .auth
        .call(
            |reply| AuthMsg::Login {
                email: credentials.username,
                password: credentials.password,
                ticket,
                reply,
            },
            Some(AUTH_TIMEOUT),
        )
        .await;
    Ok(unwrap_call(result)??)
}

pub async fn validate(caller: Caller) -> Json<Claims> {
    Json(caller.0)
}

/// A place in the auth actor's mailbox; the actor keeps it until it has
/// answered, so the bound holds even when the client goes away.
fn auth_ticket(app: &AppState) -> Result<Ticket, ApiError> {
    app.mailboxes.auth.try_take().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logins and registrations in progress; try again shortly",
        )
    })
}

fn unwrap_call<T>(
    result: Result<CallResult<Result<T, AuthError>>, ractor::MessagingErr<AuthMsg>>,
) -> Result<Result<T, AuthError>, ApiError> {
    match result {
        Ok(CallResult::Success(r)) => Ok(r),
        Ok(CallResult::Timeout) => Err(ApiError::unavailable("the auth service", "timed out")),
        Ok(CallResult::SenderError) | Err(_) => {
            Err(ApiError::unavailable("the auth service", "not running"))
        }
    }
}
