//! The one error type handlers return, sent as RFC 9457 problem details
//! (`application/problem+json`): `type` (stable per kind of error, see
//! [`ProblemKind`]), `title`, `status`, `detail`, plus `field` when one request
//! field is at fault and `error` (= `detail`) for clients of the first
//! versions. Errors axum produces itself (unknown route, wrong method,
//! unparsable path) are rewritten into the same shape by [`problems_only`].

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::auth::AuthError;
use crate::backends::{QueueError, StoreError, chain};
use crate::output::OptionError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Declares [`ProblemKind`] from one table: variant, stable `type` suffix,
/// status, title. The `type` is `urn:vidaud:problem:<suffix>`.
macro_rules! problem_kinds {
    ($($variant:ident = ($slug:literal, $status:literal, $title:literal),)+) => {
        /// Every kind of error the API reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemKind {
            $($variant,)+
        }

        impl ProblemKind {
            pub const ALL: &[ProblemKind] = &[$(ProblemKind::$variant,)+];

            /// The stable suffix of the problem's `type`.
            pub fn slug(self) -> &'static str {
                match self {
                    $(ProblemKind::$variant => $slug,)+
                }
            }

            pub fn status(self) -> StatusCode {
                let code = match self {
                    $(ProblemKind::$variant => $status,)+
                };
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(ProblemKind::$variant => $title,)+
                }
            }
        }
    };
}

problem_kinds! {
    BadRequest = ("bad-request", 400, "Bad request"),
    Unauthorized = ("unauthorized", 401, "Authentication required"),
    TokenRevoked = ("token-revoked", 401, "Token revoked"),
    Forbidden = ("forbidden", 403, "Not allowed"),
    RegistrationClosed = ("registration-closed", 403, "Registration closed"),
    AccountDisabled = ("account-disabled", 403, "Account disabled"),
    CsrfRejected = ("csrf-rejected", 403, "Cross-site request refused"),
    LinkInvalid = ("link-invalid", 403, "Download link not valid"),
    NotFound = ("not-found", 404, "Not found"),
    MethodNotAllowed = ("method-not-allowed", 405, "Method not allowed"),
    RequestTimeout = ("request-timeout", 408, "Request too slow"),
    Conflict = ("conflict", 409, "Conflict"),
    OffsetMismatch = ("offset-mismatch", 409, "Upload offset mismatch"),
    PayloadTooLarge = ("payload-too-large", 413, "Upload too large"),
    TusVersion = ("tus-version", 412, "Unsupported tus version"),
    QuotaExceeded = ("quota-exceeded", 413, "Storage quota exceeded"),
    BodyTooLarge = ("body-too-large", 413, "Request body too large"),
    UnsupportedMediaType = ("unsupported-media-type", 415, "Unsupported media type"),
    RangeNotSatisfiable = ("range-not-satisfiable", 416, "Range not satisfiable"),
    InvalidInput = ("invalid-input", 422, "Invalid input"),
    InvalidOption = ("invalid-option", 422, "Invalid output option"),
    RateLimited = ("rate-limited", 429, "Too many requests"),
    TooManyJobs = ("too-many-jobs", 429, "Too many jobs in progress"),
    TooManyConnections = ("too-many-connections", 429, "Too many connections from your address"),
    UploadLocked = ("upload-locked", 423, "Upload in use by another request"),
    HeadersTooLarge = ("headers-too-large", 431, "Request headers too large"),
    ChecksumMismatch = ("checksum-mismatch", 460, "Checksum mismatch"),
    Internal = ("internal", 500, "Internal error"),
    Unavailable = ("unavailable", 503, "Service unavailable"),
    InsufficientStorage = ("insufficient-storage", 507, "Insufficient storage"),
}

impl ProblemKind {
    /// The general kind of a status (the first kind listed with it).
    pub fn for_status(status: StatusCode) -> ProblemKind {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.status() == status)
            .unwrap_or(if status.is_server_error() {
                ProblemKind::Internal
            } else {
                ProblemKind::BadRequest
            })
    }

    /// The kinds answered with `status`.
    pub fn with_status(status: u16) -> impl Iterator<Item = ProblemKind> {
        Self::ALL
            .iter()
            .copied()
            .filter(move |kind| kind.status().as_u16() == status)
    }
}

const TYPE_PREFIX: &str = "urn:vidaud:problem:";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ProblemKind,
    pub message: String,
    /// The request field at fault, for refused options.
    pub field: Option<String>,
    /// Seconds the client should wait before trying again (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: ProblemKind::for_status(status),
            message: message.into(),
            field: None,
            retry_after: match status {
                StatusCode::SERVICE_UNAVAILABLE => Some(5),
                _ => None,
            },
        }
    }

    /// An error of `kind`, with that kind's status.
    pub fn of_kind(kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            ..Self::new(kind.status(), message)
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no such {what}"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::of_kind(ProblemKind::InvalidInput, message)
    }

    /// Invalid input in the named field (of a form, a query, tus metadata).
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::invalid(message)
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        warn!("internal error: {cause}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        warn!("{what} unavailable: {cause}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} is unavailable right now; try again shortly"),
        )
    }
}

impl ApiError {
    /// The problem document (RFC 9457) of this error.
    pub fn problem_json(&self) -> String {
        let mut body = serde_json::json!({
            "type": format!("{TYPE_PREFIX}{}", self.kind.slug()),
            "title": self.kind.title(),
            "status": self.status.as_u16(),
            "detail": self.message,
            "error": self.message,
        });
        if let Some(field) = &self.field {
            body["field"] = field.clone().into();
        }
        body.to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.problem_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Middleware: an error response with a text body or none (one axum or a
/// layer made: 404 for an unknown route, 405, a rejected path, an empty
/// 416) becomes problem details, its text kept as the detail. JSON bodies
/// are left alone: problem details already, or a report such as `/ready`'s.
pub async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Such bodies are short texts; anything longer is cut, not buffered.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut problem = ApiError::new(status, detail).into_response();
    for (name, value) in &parts.headers {
        let body_header = [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_DISPOSITION,
        ]
        .contains(name);
        if !body_header {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// A fallback for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Builds a response, turning a builder error into a 500 problem.
pub fn finish(builder: axum::http::response::Builder, body: Body) -> Result<Response, ApiError> {
    builder.body(body).map_err(ApiError::internal)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { limit } => Self::of_kind(
                ProblemKind::PayloadTooLarge,
                format!("the upload is larger than the limit of {limit} bytes"),
            ),
            StoreError::QuotaExceeded { quota } => Self::of_kind(
                ProblemKind::QuotaExceeded,
                format!("the upload would exceed your storage quota of {quota} bytes"),
            ),
            StoreError::Gone { .. } => Self::not_found("file"),
            StoreError::Full(_) => {
                warn!("storage full: {}", chain(&e));
                Self::of_kind(
                    ProblemKind::InsufficientStorage,
                    "the server's storage is full; nothing of this upload was kept",
                )
                .retry_after(60)
            }
            other => Self::unavailable("storage", chain(&other)),
        }
    }
}

impl From<OptionError> for ApiError {
    fn from(e: OptionError) -> Self {
        Self {
            field: Some(e.field.clone()),
            ..Self::of_kind(ProblemKind::InvalidOption, e.to_string())
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        Self::unavailable("the job queue", chain(&e))
    }
}

/// No room for a job: 429 `too-many-jobs`, 413 over the quota, 503 when
/// too many of the owner's admissions race.
impl From<crate::jobs::admission::Refused> for ApiError {
    fn from(refused: crate::jobs::admission::Refused) -> Self {
        use crate::jobs::admission::Refused;
        match refused {
            Refused::TooManyJobs { .. } => {
                Self::of_kind(ProblemKind::TooManyJobs, refused.to_string()).retry_after(30)
            }
            Refused::QuotaExceeded { quota } => StoreError::QuotaExceeded { quota }.into(),
            Refused::Busy => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, refused.to_string()).retry_after(1)
            }
            Refused::Store(e) => e.into(),
        }
    }
}

impl From<crate::jobs::submit::SubmitError> for ApiError {
    fn from(e: crate::jobs::submit::SubmitError) -> Self {
        use crate::jobs::submit::SubmitError;
        match e {
            SubmitError::Store(store) => store.into(),
            SubmitError::Queue(queue) => queue.into(),
        }
    }
}

/// A retry not made: 409 for the job's own reasons, else as admission or
/// the dependency says.
impl From<crate::jobs::RetryError> for ApiError {
    fn from(e: crate::jobs::RetryError) -> Self {
        use crate::jobs::RetryError;
        match e {
            RetryError::NotFound => Self::not_found("job"),
            RetryError::NotFailed(_) | RetryError::VideoGone | RetryError::Moved => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            RetryError::Refused(refused) => refused.into(),
            RetryError::Users(users) => Self::unavailable("the user directory", chain(&users)),
            RetryError::Store(store) => store.into(),
            RetryError::Queue(queue) => queue.into(),
        }
    }
}

/// A token that does not stand: 401 `token-revoked`; 503 when that cannot
/// be told (the directory is away and the account unknown here).
impl From<crate::auth::Revoked> for ApiError {
    fn from(revoked: crate::auth::Revoked) -> Self {
        match revoked {
            crate::auth::Revoked::Unknown => {
                Self::unavailable("the user directory", revoked.to_string())
            }
            _ => Self::of_kind(ProblemKind::TokenRevoked, revoked.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadInput(m) => Self::invalid(m),
            AuthError::InvalidCredentials => Self::unauthorized(e.to_string()),
            AuthError::EmailTaken => Self::new(StatusCode::CONFLICT, e.to_string()),
            AuthError::Disabled => Self::of_kind(ProblemKind::AccountDisabled, e.to_string()),
            AuthError::Unavailable(cause) => Self::unavailable("the user database", chain(&cause)),
            AuthError::Internal(cause) => Self::internal(format!("auth: {cause}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_map_from_statuses() {
        let mut seen = std::collections::HashSet::new();
        for kind in ProblemKind::ALL {
            assert!(seen.insert(kind.slug()), "{kind:?} twice");
            assert!(!kind.title().is_empty());
        }
        assert_eq!(
            ProblemKind::for_status(StatusCode::NOT_FOUND),
            ProblemKind::NotFound
        );
        assert_eq!(
            ApiError::of_kind(ProblemKind::QuotaExceeded, "x").status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
