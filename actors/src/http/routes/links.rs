//! Signed download links (`auth::LinkKeys`): `POST /jobs/{id}/link` gives
//! the owner of a done job a fresh one; `GET /download` opens the file of a
//! valid one without a login (files.rs).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::jobs::{owned_job, require_done};
use crate::auth::LinkProof;
use crate::domain::Timestamp;
use crate::http::AppState;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::Caller;
use crate::http::small_body::json;

/// The longest a link asked for may work: 30 days.
const MAX_EXPIRES_IN_SECS: u64 = 30 * 86_400;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Seconds the link works (1 to 2592000; default `auth.link_ttl_secs`).
    #[schema(minimum = 1, maximum = 2592000)]
    expires_in: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedLink {
    /// The absolute link: opens the audio with no login until it expires.
    url: String,
    /// RFC 3339.
    expires_at: String,
}

/// A fresh signed link to the audio of a done job.
#[utoipa::path(
    post, path = "/jobs/{id}/link", tag = "files",
    params(("id" = String, Path, description = "Job id")),
    request_body(content = Option<LinkRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The link", body = SignedLink),
        (status = 409, description = "The job is not done", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_link(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SignedLink>, ApiError> {
    let request: LinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LinkRequest::default()
    } else {
        json(&body, r#"{"expires_in": seconds}"#)?
    };
    let expires_in = request.expires_in.unwrap_or(app.links.ttl_secs);
    if !(1..=MAX_EXPIRES_IN_SECS).contains(&expires_in) {
        return Err(ApiError::invalid(format!(
            "expires_in must be 1 to {MAX_EXPIRES_IN_SECS} seconds, got {expires_in}"
        )));
    }
    let job = owned_job(&app, &caller, &id).await?;
    require_done(&job, "a link")?;
    let expires = jsonwebtoken::get_current_timestamp() + expires_in;
    let expires_ms = i64::try_from(expires).unwrap_or(i64::MAX / 1000) * 1000;
    Ok(Json(SignedLink {
        url: app
            .links
            .url(&app.settings.public_url, &job.mp3_fid.to_hex(), expires),
        expires_at: Timestamp::from_millis(expires_ms).to_rfc3339(),
    }))
}

/// Whether the link's proof opens file `fid` now; a problem saying why not.
pub fn check(app: &AppState, fid: &str, proof: &LinkProof) -> Result<(), ApiError> {
    app.links
        .verify(fid, proof, jsonwebtoken::get_current_timestamp())
        .map_err(|e| ApiError::of_kind(ProblemKind::LinkInvalid, e.to_string()))
}
