//! `/register`, `/login`, `/validate`: the reference's auth endpoints.

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ractor::rpc::CallResult;
use serde::Deserialize;

use crate::auth::{AuthError, AuthMsg, Claims};
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::{BasicCredentials, Caller};
use crate::http::{AppState, ClientAddr};
use crate::mailbox::Ticket;

pub(super) const AUTH_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Registration {
    #[schema(format = Email, example = "someone@example.com")]
    email: String,
    /// At least 8 characters, no control characters, not the e-mail address.
    #[schema(
        min_length = 8,
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
        example = "correct horse battery"
    )]
    password: String,
}

/// Creates an account (unless registration is closed).
#[utoipa::path(
    post, path = "/register", tag = "account",
    request_body = Registration,
    responses(
        (status = 201, description = "Account created", body = inline(Object), example = json!({"email": "a@example.com"})),
        (status = 403, description = "Registration is closed", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail is taken", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Result<Json<Registration>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !app.registration_open {
        return Err(ApiError::of_kind(
            ProblemKind::RegistrationClosed,
            "registration is closed on this service; ask an administrator for an account",
        ));
    }
    app.limits.check_ip(client)?;
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

/// Logs in with HTTP Basic (e-mail and password); the body is the token.
#[utoipa::path(
    post, path = "/login", tag = "account",
    responses(
        (status = 200, description = "The JWT, as the whole body", body = String, content_type = "text/plain"),
    ),
    security(("basic" = []))
)]
pub async fn login(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    credentials: BasicCredentials,
) -> Result<String, ApiError> {
    log_in(&app, client, credentials.username, credentials.password).await
}

/// Checks the rate limits and the password; a new token. Shared by
/// `/login` and the web app's `POST /session`.
pub async fn log_in(
    app: &AppState,
    client: IpAddr,
    email: String,
    password: String,
) -> Result<String, ApiError> {
    app.limits.check_ip(client)?;
    app.limits.check_account(&email)?;
    let ticket = auth_ticket(app)?;
    let result = app
        .auth
        .call(
            |reply| AuthMsg::Login {
                email,
                password,
                ticket,
                reply,
            },
            Some(AUTH_TIMEOUT),
        )
        .await;
    Ok(unwrap_call(result)??)
}

/// The claims of the presented token, if it is valid.
#[utoipa::path(
    post, path = "/validate", tag = "account",
    responses((status = 200, description = "The token's claims", body = Claims)),
    security(("bearer" = []))
)]
pub async fn validate(caller: Caller) -> Json<Claims> {
    Json(caller.claims)
}

/// A place in the auth actor's mailbox; the actor keeps it until it has
/// answered, so the bound holds even when the client goes away.
pub(super) fn auth_ticket(app: &AppState) -> Result<Ticket, ApiError> {
    app.mailboxes.auth.try_take().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logins and registrations in progress; try again shortly",
        )
    })
}

pub(super) fn unwrap_call<T>(
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
