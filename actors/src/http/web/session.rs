//! The web app's session: the same JWT the API issues, kept in a cookie
//! the page's scripts cannot read (`HttpOnly`), that no other site's page
//! can make the browser send (`SameSite=Strict`), and that changes nothing
//! without a CSRF token only the page knows.
//!
//! Why a cookie and not a token in page memory: downloads and the event
//! stream are then plain links and an `EventSource` (no token in a URL, no
//! whole file fetched into script memory to save it), and a reload keeps
//! the session, so an upload resumes after it without logging in again.
//! Why a CSRF token on top of `SameSite=Strict`: a sibling subdomain is the
//! same site; only the page, which read the token from `GET /session`
//! (a same-origin read), can send it.
//!
//! `POST /session` logs in (JSON e-mail and password, the same checks and
//! rate limits as `/login`) with a token of its own session (a `sid`),
//! `GET /session` says who is logged in (and the CSRF token) if the token
//! still stands, as every route checks it, and `DELETE /session` logs out:
//! that session ends on every node (see `auth::Standings`), the user's
//! other sessions and tokens stay.

use axum::Json;
use axum::extract::State;
use axum::http::header::{COOKIE, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::auth::Claims;
use crate::domain::Timestamp;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::Caller;
use crate::http::routes::account::log_in;
use crate::http::{AppState, ClientAddr};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "vidaud_session";

/// The header a cookie-authenticated request that changes something must
/// carry, with the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session's token, from the cookie of a request without an
/// `Authorization` header; a request that can change something must carry
/// the session's CSRF token too.
pub fn from_cookie(parts: &Parts) -> Result<String, ApiError> {
    let token = cookie(&parts.headers).ok_or_else(|| {
        ApiError::unauthorized("missing Authorization: Bearer token (or log in on the web page)")
    })?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(sent.as_bytes(), csrf_token(&token).as_bytes()) {
            return Err(ApiError::of_kind(
                ProblemKind::CsrfRejected,
                "this request came with the session cookie but without the page's \
                 CSRF token (X-CSRF-Token); reload the page",
            ));
        }
    }
    Ok(token)
}

/// Whether the request carries a session cookie.
pub fn present(parts: &Parts) -> bool {
    cookie(&parts.headers).is_some()
}

/// The value of the session cookie, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The CSRF token of a session: a digest of its token, which only the
/// holder of the (unreadable) cookie can have been told.
fn csrf_token(token: &str) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(b"vidaud csrf\0")
        .chain_update(token.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    #[schema(format = Email, example = "someone@example.com")]
    email: String,
    password: String,
}

/// Who is logged in, and the token the page sends back as `X-CSRF-Token`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    username: String,
    admin: bool,
    csrf_token: String,
    /// When the session ends (RFC 3339); log in again after.
    expires_at: String,
}

impl SessionView {
    fn new(claims: &Claims, token: &str) -> Self {
        let exp = i64::try_from(claims.exp).unwrap_or(i64::MAX);
        let expires_at = Timestamp::from_millis(exp.saturating_mul(1000)).to_rfc3339();
        Self {
            username: claims.username.clone(),
            admin: claims.admin,
            csrf_token: csrf_token(token),
            expires_at,
        }
    }
}

/// Logs in for the web app: sets the session cookie.
#[utoipa::path(
    post, path = "/session", tag = "account",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionView),
        (status = 401, description = "Wrong e-mail or password", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Result<Json<Credentials>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(form) = body.map_err(|e| {
        ApiError::invalid(format!(
            "expected JSON {{\"email\": ..., \"password\": ...}}: {}",
            e.body_text()
        ))
    })?;
    let token = log_in(&app, client, form.email.trim().to_owned(), form.password).await?;
    let claims = app.keys.verify(&token).map_err(ApiError::internal)?;
    let (token, claims) = app.keys.with_session(&claims).map_err(ApiError::internal)?;
    let max_age = claims
        .exp
        .saturating_sub(jsonwebtoken::get_current_timestamp());
    // `Secure` when the page was reached over HTTPS (directly or through
    // a proxy that says so): a plain-HTTP node on a LAN still works.
    let secure = headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = set_cookie(&token, max_age, secure)?;
    let view = SessionView::new(&claims, &token);
    Ok(([(SET_COOKIE, cookie)], Json(view)).into_response())
}

/// The session cookie's token and who it stands for, if it still stands:
/// the check every route makes of a caller (`Caller::of_token`: a valid
/// signature, and not revoked since — a new password, logged out
/// everywhere or here, a disabled or deleted account).
async fn standing(app: &AppState, headers: &HeaderMap) -> Result<(String, Caller), ApiError> {
    let token = cookie(headers).ok_or_else(|| ApiError::unauthorized("not logged in"))?;
    let caller = Caller::of_token(app, &token, "the session has ended; log in again").await?;
    Ok((token, caller))
}

/// Who the session cookie belongs to, with its CSRF token.
#[utoipa::path(
    get, path = "/session", tag = "account",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "Not logged in, or the session has ended (expired, logged out, revoked)", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let (token, caller) = standing(&app, &headers).await?;
    Ok(Json(SessionView::new(&caller.claims, &token)))
}

/// Logs out: this session ends on every node (its token is refused
/// everywhere within the revocation refresh), the cookie is cleared; the
/// user's other sessions and tokens stay.
#[utoipa::path(
    delete, path = "/session", tag = "account",
    responses(
        (status = 204, description = "Logged out"),
        (status = 503, description = "The user directory is away: the session could not be ended (the cookie is kept; try again)", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    // A session that no longer stands has nothing left to end.
    if let Ok((_, caller)) = standing(&app, &headers).await {
        app.standings
            .end_session(&caller.claims, caller.account.id)
            .await
            .map_err(crate::auth::AuthError::from)?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, set_cookie("", 0, false)?)],
    )
        .into_response())
}

fn set_cookie(token: &str, max_age: u64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_per_session_and_compared_whole() {
        let (a, b) = (csrf_token("one.token"), csrf_token("another.token"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(a.as_bytes(), a.as_bytes()));
        assert!(!same(a.as_bytes(), b.as_bytes()));
        assert!(!same(&a.as_bytes()[..31], a.as_bytes()));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; vidaud_session=abc.def ; x=1"),
        );
        assert_eq!(cookie(&headers).as_deref(), Some("abc.def"));
        headers.insert(COOKIE, HeaderValue::from_static("vidaud_session="));
        assert_eq!(cookie(&headers), None);
    }
}
