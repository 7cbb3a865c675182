//! Resumable uploads over tus 1.0.0 at `/uploads` and `/uploads/{id}`:
//! the core protocol (OPTIONS, HEAD, PATCH) and the extensions clients use:
//! creation, creation-with-upload, termination, expiration and checksum
//! (sha1, sha256). Authenticated by the same Bearer token as the rest of
//! the API; an upload is its creator's alone (404 for anyone else, admins
//! included: an upload in progress is not a job yet).
//!
//! An upload's id is its video's file id. Creation checks everything the
//! job will need (size limit, quota with unfinished uploads counted, active
//! jobs, output options in `Upload-Metadata`) before a byte is sent; the
//! bytes go to the blob store as a resumable write (receive.rs); when the
//! last one is in, the job is recorded and queued exactly once
//! (`jobs::submit::complete`) and its id answered in `Job-Id`, on that
//! request and on every later HEAD.

mod protocol;
mod receive;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use std::time::Duration;
use tracing::info;

use self::protocol::{
    CALLBACK_SECRET, Expected, JOB_ID, RESUMABLE, VERSION, check_version, http_date, number,
};
use self::receive::{Received, hold_for, receive};
use super::jobs::parse_id;
use super::upload::{self, room_for};
use crate::backends::StoreError;
use crate::domain::{FileId, JobId, Timestamp, UploadRecord};
use crate::http::AppState;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::Caller;
use crate::jobs::access;
use crate::jobs::submit::complete as complete_upload;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/uploads", post(create).options(capabilities))
        .route(
            "/uploads/{id}",
            head(status)
                .patch(patch)
                .delete(terminate)
                .options(capabilities),
        )
        .layer(middleware::map_response(protocol_headers))
        .layer(middleware::from_fn(close_after_refusal))
}

/// A refused creation or PATCH may leave its body unread: the connection is
/// closed after the answer, so the client does not reuse a connection that
/// still holds that body's bytes (its next request would fail).
async fn close_after_refusal(request: axum::extract::Request, next: middleware::Next) -> Response {
    let sends_body = matches!(*request.method(), Method::POST | Method::PATCH);
    let mut response = next.run(request).await;
    let status = response.status();
    if sends_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Every answer says the protocol version; a refused version says which
/// one the server speaks.
async fn protocol_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(RESUMABLE, HeaderValue::from_static(VERSION));
    if response.status() == StatusCode::PRECONDITION_FAILED {
        response
            .headers_mut()
            .insert("Tus-Version", HeaderValue::from_static(VERSION));
    }
    response
}

/// What this server speaks and allows (no authentication needed).
async fn capabilities(State(app): State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("Tus-Version", HeaderValue::from_static(VERSION));
    headers.insert(
        "Tus-Extension",
        HeaderValue::from_static(protocol::EXTENSIONS),
    );
    headers.insert(
        "Tus-Max-Size",
        HeaderValue::from(app.settings.max_upload_bytes),
    );
    headers.insert(
        "Tus-Checksum-Algorithm",
        HeaderValue::from_static(protocol::CHECKSUM_ALGORITHMS),
    );
    response
}

/// Creates an upload (`Upload-Length`, `Upload-Metadata`); with a body of
/// type `application/offset+octet-stream` its first bytes come along.
async fn create(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    if headers.contains_key("Upload-Defer-Length") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "declare the size in Upload-Length (deferred lengths are not supported)",
        ));
    }
    let length = number(&headers, "Upload-Length")?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the header Upload-Length is required",
        )
    })?;
    if length == 0 {
        return Err(ApiError::invalid("the file is empty"));
    }
    let limit = app.settings.max_upload_bytes;
    if length > limit {
        return Err(StoreError::TooLarge { limit }.into());
    }
    let meta = protocol::metadata(&headers)?;
    let callback = match &meta.callback_url {
        Some(url) => Some(upload::callback(&app.webhooks, url)?),
        None => None,
    };
    let owner = caller.owner().clone();
    let room = room_for(&app, &caller, Some(length)).await?;
    if length > room.limit {
        return Err(upload::refusal(
            &room,
            StoreError::TooLarge { limit: room.limit }.into(),
        ));
    }
    let now = Timestamp::now();
    let upload = UploadRecord {
        id: FileId::new(),
        owner,
        username: caller.claims.username.clone(),
        length,
        offset: 0,
        filename: meta.filename,
        content_type: meta.content_type,
        metadata: meta.raw,
        output: meta.output.resolve(&app.output_defaults),
        callback,
        job_id: JobId::new(),
        mp3_fid: FileId::new(),
        queued: false,
        created_at: now,
        expires_at: now.plus(Duration::from_secs(
            app.settings.resumable_expire_secs.max(1),
        )),
    };
    // The header and the ticket are checked before anything is stored.
    let first_bytes = if protocol::is_offset_stream(&headers) {
        Some((Expected::from_headers(&headers)?, ticket(&app)?))
    } else {
        None
    };
    let created = app.backends.uploads.create(&upload).await;
    // The record now holds the room (unfinished uploads count with their
    // declared size): the reservation is given back after it is written.
    room.release().await;
    created?;
    info!(upload = %upload.id, bytes = length, "resumable upload created");
    let location = format!("/uploads/{}", upload.id);
    let mut response = match first_bytes {
        None => Ok(progress(StatusCode::CREATED, &upload, None)),
        Some((expected, ticket)) => match hold(&app, upload.id).await? {
            None => Err(locked()),
            Some((holder, held)) => {
                let received = spawn_receive(&app, held, holder, body, expected, ticket).await;
                received.map(|r| progress(StatusCode::CREATED, &r.upload, r.job.map(|j| j.id)))
            }
        },
    }
    .unwrap_or_else(IntoResponse::into_response);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Some(secret) = &upload.callback.as_ref().map(|c| c.secret.as_str())
        && let Ok(value) = HeaderValue::from_str(secret)
    {
        response.headers_mut().insert(CALLBACK_SECRET, value);
    }
    Ok(response)
}

/// Where an upload is: `Upload-Offset`, and `Job-Id` once it is a job.
async fn status(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let upload = ensure_queued(&app, owned_upload(&app, &caller, &id).await?).await?;
    let job = upload.queued.then_some(upload.job_id);
    let mut response = progress(StatusCode::OK, &upload, job);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("Upload-Length", HeaderValue::from(upload.length));
    if !upload.metadata.is_empty()
        && let Ok(value) = HeaderValue::from_str(&upload.metadata)
    {
        headers.insert("Upload-Metadata", value);
    }
    Ok(response)
}

/// An upload whose bytes are all in but whose job was not queued (its
/// request was cut short by a crash) is completed now, unless a request
/// holds it (that one completes it).
async fn ensure_queued(app: &AppState, mut upload: UploadRecord) -> Result<UploadRecord, ApiError> {
    if !upload.is_complete() || upload.queued {
        return Ok(upload);
    }
    if let Some((holder, held)) = hold(app, upload.id).await? {
        let completed = complete_upload(&app.backends, &held).await;
        app.backends
            .uploads
            .advance(held.id, holder, held.offset, None)
            .await?;
        completed.map_err(|e| ApiError::unavailable("storage", crate::backends::chain(&e)))?;
        upload.queued = true;
    }
    Ok(upload)
}

/// Appends the body's bytes at `Upload-Offset`.
async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    if !protocol::is_offset_stream(&headers) {
        return Err(ApiError::of_kind(
            ProblemKind::UnsupportedMediaType,
            format!("send the bytes as {}", protocol::OFFSET_STREAM),
        ));
    }
    let offset = number(&headers, "Upload-Offset")?.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the header Upload-Offset is required",
        )
    })?;
    let expected = Expected::from_headers(&headers)?;
    let upload = owned_upload(&app, &caller, &id).await?;
    check_offset(&upload, offset)?;
    if let Some(declared) = number(&headers, header::CONTENT_LENGTH.as_str())?
        && offset.saturating_add(declared) > upload.length
    {
        return Err(too_much(&upload));
    }
    if upload.is_complete() {
        // A final request retried: the answer it missed.
        let upload = ensure_queued(&app, upload).await?;
        let job = upload.queued.then_some(upload.job_id);
        return Ok(progress(StatusCode::NO_CONTENT, &upload, job));
    }
    let ticket = ticket(&app)?;
    let Some((holder, held)) = hold(&app, upload.id).await? else {
        return Err(locked());
    };
    if let Err(e) = check_offset(&held, offset) {
        app.backends
            .uploads
            .advance(held.id, holder, held.offset, None)
            .await?;
        return Err(e);
    }
    let received = spawn_receive(&app, held, holder, body, expected, ticket).await?;
    let job = received
        .job
        .map(|j| j.id)
        .or(received.upload.queued.then_some(received.upload.job_id));
    Ok(progress(StatusCode::NO_CONTENT, &received.upload, job))
}

/// Ends an upload: its bytes are removed (a completed upload's video is
/// its job's now and stays; only the upload's record goes).
async fn terminate(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let upload = owned_upload(&app, &caller, &id).await?;
    let Some((_, held)) = hold(&app, upload.id).await? else {
        return Err(locked());
    };
    app.backends.discard_upload(&held).await?;
    info!(upload = %held.id, "resumable upload terminated");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The upload `raw_id` if the caller created it and it has not expired.
async fn owned_upload(
    app: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<UploadRecord, ApiError> {
    let id: FileId = parse_id(raw_id).map_err(|_| ApiError::not_found("upload"))?;
    access::upload(&app.backends, caller.viewer(), id, Timestamp::now())
        .await?
        .ok_or_else(|| ApiError::not_found("upload"))
}

fn check_offset(upload: &UploadRecord, offset: u64) -> Result<(), ApiError> {
    if offset == upload.offset {
        return Ok(());
    }
    Err(ApiError::of_kind(
        ProblemKind::OffsetMismatch,
        format!(
            "the upload has {} bytes, so the next request starts at Upload-Offset {}, not {offset}",
            upload.offset, upload.offset
        ),
    ))
}

fn too_much(upload: &UploadRecord) -> ApiError {
    ApiError::of_kind(
        ProblemKind::PayloadTooLarge,
        format!(
            "the request would take the upload past the {} bytes it declared",
            upload.length
        ),
    )
}

/// Takes upload `id` for this request: the holder's number and the
/// record, or `None` when another request holds it.
async fn hold(app: &AppState, id: FileId) -> Result<Option<(u64, UploadRecord)>, StoreError> {
    let holder = rand::random::<u64>();
    let now = Timestamp::now();
    let until = now.plus(hold_for(app));
    let held = app.backends.uploads.hold(id, holder, now, until).await?;
    Ok(held.map(|record| (holder, record)))
}

fn locked() -> ApiError {
    ApiError::of_kind(
        ProblemKind::UploadLocked,
        "another request is writing this upload; try again in a moment",
    )
    .retry_after(1)
}

/// Backpressure as for `POST /upload`: a node at its limit of uploads in
/// progress says so before a byte is read.
fn ticket(app: &AppState) -> Result<crate::mailbox::Ticket, ApiError> {
    app.mailboxes.http.try_take().map_err(|_| {
        app.metrics.uploads_refused.inc();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has its limit of uploads in progress; try again shortly",
        )
    })
}

/// Runs [`receive`] in a task of its own: hyper drops a handler whose
/// client hung up, and what that client sent must still be recorded.
async fn spawn_receive(
    app: &AppState,
    upload: UploadRecord,
    holder: u64,
    body: Body,
    expected: Option<Expected>,
    ticket: crate::mailbox::Ticket,
) -> Result<Received, ApiError> {
    let app = app.clone();
    tokio::spawn(async move {
        let _ticket = ticket;
        receive(app, upload, holder, body, expected).await
    })
    .await
    .map_err(ApiError::internal)?
}

/// An answer with the upload's offset, expiry and (once queued) job.
fn progress(status: StatusCode, upload: &UploadRecord, job: Option<JobId>) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert("Upload-Offset", HeaderValue::from(upload.offset));
    if !upload.queued
        && let Ok(value) = HeaderValue::from_str(&http_date(upload.expires_at))
    {
        headers.insert("Upload-Expires", value);
    }
    if let Some(job) = job
        && let Ok(value) = HeaderValue::from_str(&job.to_hex())
    {
        headers.insert(HeaderName::from_static("job-id"), value);
    }
    let _ = JOB_ID;
    response
}
