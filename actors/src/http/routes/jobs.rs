//! The jobs API: list (`GET /jobs`), read (`GET /jobs/{id}`), delete
//! (`DELETE /jobs/{id}`) and retry (`POST /jobs/{id}/retry`).
//!
//! Everything answers 404 for a job the caller may not see (another user's,
//! or deleted), so ids of other users' jobs do not leak; admins (the
//! `admin` claim) see and act on everyone's.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::backends::JobQuery;
use crate::domain::{
    AudioSummary, FileId, Id, IdKind, JobId, JobRecord, JobState, Owner, Segments,
};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Caller;
use crate::jobs::access;
use crate::output::OutputOptions;

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[schema(value_type = String)]
    job_id: JobId,
    /// Who uploaded it (their e-mail then).
    owner: String,
    /// Their account's stable id.
    owner_id: String,
    state: JobState,
    filename: String,
    #[schema(value_type = String)]
    video_fid: FileId,
    #[schema(value_type = Option<String>)]
    mp3_fid: Option<FileId>,
    error: Option<String>,
    attempts: u32,
    /// Times the owner asked for a retry.
    retries: u32,
    /// Percent converted (while converting; 100 when done).
    progress: Option<f64>,
    /// The output options in force (format, bitrate, trim...).
    output: OutputOptions,
    /// The node converting it, or that converted it last.
    node: Option<String>,
    /// The audio's size and length, once done.
    audio: Option<AudioSummary>,
    /// A long input converted in segments by many workers, then joined:
    /// how many, how many converted (`null`: converted in one pass).
    segments: Option<Segments>,
    /// Where this job's events are POSTed, if a `callback_url` was given.
    callback_url: Option<String>,
    created_at: String,
    updated_at: String,
    /// Where the job is in its life: only grows (the same number as its
    /// events' ids), so of two views of a job the larger is the newer.
    sequence: u64,
}

impl From<JobRecord> for JobView {
    fn from(job: JobRecord) -> Self {
        let event = job.event("");
        let sequence = event.sequence();
        Self {
            sequence,
            job_id: job.id,
            owner: job.username,
            owner_id: job.owner.stored(),
            mp3_fid: (job.state == JobState::Done).then_some(job.mp3_fid),
            state: job.state,
            filename: job.filename,
            video_fid: job.video_fid,
            error: event.error,
            attempts: job.attempts,
            retries: job.retries,
            progress: match job.state {
                JobState::Failed => job.progress,
                _ => event.progress,
            },
            output: job.output.into_options(),
            node: job.node,
            audio: job.audio.filter(|_| job.state == JobState::Done),
            segments: job.segments,
            callback_url: job.callback.map(|c| c.url),
            created_at: job.created_at.to_rfc3339(),
            updated_at: job.updated_at.to_rfc3339(),
        }
    }
}

/// An id from a path or query: one that is not an id names nothing (404).
pub fn parse_id<K: IdKind>(raw: &str) -> Result<Id<K>, ApiError> {
    Id::parse(raw).map_err(|_| ApiError::not_found(K::WHAT))
}

/// The job `raw_id` if the caller may see it, else 404.
pub async fn owned_job(
    app: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<JobRecord, ApiError> {
    let id: JobId = parse_id(raw_id)?;
    access::job(&app.backends, caller.viewer(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))
}

/// 409 unless the job is done: `what` (its audio, a link) exists only then.
pub fn require_done(job: &JobRecord, what: &str) -> Result<(), ApiError> {
    if job.state == JobState::Done {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "the job is {}; {what} exists once it is done",
            job.state.as_str()
        ),
    ))
}

/// One job.
#[utoipa::path(
    get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobView)),
    security(("bearer" = []))
)]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(owned_job(&app, &caller, &id).await?.into()))
}

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state.
    #[param(pattern = "^(|queued|converting|done|failed)$")]
    state: Option<String>,
    /// Jobs per page (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([0-9a-fA-F]{24})?$")]
    cursor: Option<String>,
    /// Admins only: one user's jobs (default: everyone's).
    owner: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobPage {
    jobs: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// The caller's jobs (an admin's: everyone's), newest first.
#[utoipa::path(
    get, path = "/jobs", tag = "jobs",
    params(ListQuery),
    responses((status = 200, description = "A page of jobs", body = JobPage)),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let state = match query.state.as_deref() {
        None | Some("") => None,
        Some(name) => Some(JobState::parse(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "state must be one of queued, converting, done, failed (not {name:?})"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            JobId::parse(raw)
                .map_err(|_| ApiError::invalid("cursor is not one this API gave out"))?,
        ),
    };
    // Only an administrator's `owner` is read; a user's list is their own.
    let owner = match query.owner.as_deref().filter(|o| !o.is_empty()) {
        Some(wanted) if caller.claims.admin => Some(owner_named(&app, wanted).await?),
        _ => None,
    };
    let query = JobQuery {
        owner,
        state,
        before,
        limit,
    };
    let jobs = access::jobs(&app.backends, caller.viewer(), query).await?;
    let next_cursor = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id.to_hex()))
        .flatten();
    Ok(Json(JobPage {
        jobs: jobs.into_iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

/// Stops the job if it is queued or converting and deletes its files.
/// Deleting a deleted job again is a success too.
#[utoipa::path(
    delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
pub async fn delete_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: JobId = parse_id(&raw_id)?;
    let job = access::job_or_tombstone(&app.backends, caller.viewer(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if crate::jobs::delete(&app.backends, &app.webhooks.intake, &app.node_id, &job).await? {
        info!(job_id = %id, was = job.state.as_str(), "job deleted");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The owner an administrator's `?owner=` means: a user id as it is, an
/// e-mail as its account's id (an e-mail no account has as itself: what
/// only data from before user ids, unclaimed, can be owned by). Anything
/// else is refused: it could own nothing.
async fn owner_named(app: &AppState, wanted: &str) -> Result<Owner, ApiError> {
    let owner = Owner::parse(wanted)
        .map_err(|_| ApiError::invalid("owner must be a user id (24 hex digits) or an e-mail"))?;
    let Owner::Unclaimed(email) = &owner else {
        return Ok(owner);
    };
    let user = app
        .backends
        .users
        .find(email)
        .await
        .map_err(crate::auth::AuthError::from)?;
    Ok(user.map_or(owner, |u| u.id.into()))
}

/// A failed job gets a fresh set of attempts.
#[utoipa::path(
    post, path = "/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued again", body = JobView),
        (status = 409, description = "Not failed, or its video is gone", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The owner has as many active jobs as allowed (`too-many-jobs`)", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn retry_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let id: JobId = parse_id(&raw_id)?;
    let rules = app.admission_rules();
    let queued = crate::jobs::retry(
        &app.backends,
        &rules,
        &app.node_id,
        caller.viewer(),
        caller.account.limits,
        id,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(queued.into())))
}
