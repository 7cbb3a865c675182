//! The one error type handlers return: a status and a message a user can
//! act on, sent as JSON `{"error": "...", "status": N}` (plus `"field"` when
//! one request field is at fault).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::auth::AuthError;
use crate::output::OptionError;
use crate::queue::QueueError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, for refused options.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no such {what}"))
    }

    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        warn!("{what} unavailable: {cause}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} is unavailable right now; try again shortly"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message, "status": self.status.as_u16() });
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload is larger than the limit of {limit} bytes"),
            ),
            other => Self::unavailable("storage", other),
        }
    }
}

impl From<OptionError> for ApiError {
    fn from(e: OptionError) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        Self::unavailable("the job queue", e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadInput(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            AuthError::InvalidCredentials => Self::unauthorized(e.to_string()),
            AuthError::EmailTaken => Self::new(StatusCode::CONFLICT, e.to_string()),
            AuthError::Unavailable(cause) => Self::unavailable("the user database", cause),
            AuthError::Internal(cause) => {
                warn!("auth internal error: {cause}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}
