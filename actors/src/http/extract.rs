//! Request extractors: the authenticated caller (Bearer JWT or the web
//! app's session cookie, verified in-process, not revoked) and HTTP Basic credentials
//! for `/login`.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;

use super::AppState;
use super::error::ApiError;
use super::web::session;
use crate::auth::{Account, Claims};
use crate::domain::Owner;
use crate::jobs::Viewer;

/// The caller: from a valid `Authorization: Bearer <jwt>`, or, without that
/// header, from the web app's session cookie (see [`super::web::session`]),
/// which on any request that can change something must come with its CSRF
/// token in `X-CSRF-Token`. It carries the token's claims and the account
/// the token stands for, whose id owns jobs, files, uploads and webhooks.
pub struct Caller {
    pub claims: Claims,
    pub account: Account,
    /// The account as the owner of what it makes, and what it may see.
    viewer: Viewer,
}

impl Caller {
    /// The owner of what the caller makes: its account.
    pub fn owner(&self) -> &Owner {
        &self.viewer.owner
    }

    /// Who asks, for the application layer's ownership rule
    /// ([`crate::jobs::access`]).
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = match parts.headers.get(AUTHORIZATION) {
            Some(header) => bearer(header)?,
            None => session::from_cookie(parts)?,
        };
        Caller::of_token(
            state,
            &token,
            "the token is invalid or expired; log in again",
        )
        .await
    }
}

impl Caller {
    /// Who `token` stands for: a valid signature (else 401 saying
    /// `invalid`), and not revoked since (a map lookup; see
    /// auth::Standings). The one check every way of calling goes through.
    pub async fn of_token(state: &AppState, token: &str, invalid: &str) -> Result<Self, ApiError> {
        let claims = state
            .keys
            .verify(token)
            .map_err(|_| ApiError::unauthorized(invalid))?;
        let account = state.standings.check(&claims).await?;
        Ok(Caller {
            viewer: Viewer {
                owner: account.id.into(),
                admin: claims.admin,
            },
            claims,
            account,
        })
    }
}

/// The caller if the request says who it is (a bearer token or the session
/// cookie), which must then be valid; `None` if it says nothing.
impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) || session::present(parts) {
            <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(header: &HeaderValue) -> Result<String, ApiError> {
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// `Authorization: Basic base64(email:password)`.
pub struct BasicCredentials {
    pub username: String,
    pub password: String,
}

impl<S: Send + Sync> FromRequestParts<S> for BasicCredentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let missing = || ApiError::unauthorized("log in with HTTP Basic auth: -u email:password");
        let encoded = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .ok_or_else(missing)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(missing)?;
        let (username, password) = decoded.split_once(':').ok_or_else(missing)?;
        Ok(Self {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}
