//! `POST /upload`: the multipart body streams into the blob store, then
//! `jobs::submit` makes it a job (recorded and durably queued, or nothing
//! kept and the client gets 503), with the room `jobs::admission` held for
//! it until it counts for itself.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::{info, warn};

use crate::backends::{Bucket, FileMeta, StoreError, Upload};
use crate::domain::{Callback, FileId, JobId, JobRecord, Owner};
use crate::http::AppState;
use crate::http::body::SlowBody;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::Caller;
use crate::jobs::admission::{self, Room};
use crate::output::OutputOptions;
use crate::webhooks::Front;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    #[schema(value_type = String)]
    job_id: JobId,
    #[schema(value_type = String)]
    video_fid: FileId,
    /// With a `callback_url` only, and only here: the Standard Webhooks
    /// secret (`whsec_…`) the job's callbacks are signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_secret: Option<String>,
}

/// The form field (or query parameter, or tus metadata key) that asks for
/// a job's events to be POSTed to a URL.
pub const CALLBACK_FIELD: &str = "callback_url";

/// The output options and the callback an upload asks for, as its fields
/// and query parameters come.
#[derive(Default)]
struct Asked {
    options: OutputOptions,
    callback: Option<Callback>,
}

impl Asked {
    /// Takes one named value: the callback's URL (checked at once, so a
    /// refused one stops the upload before more is read) or an option.
    fn set(&mut self, front: &Front, name: &str, value: &str) -> Result<(), ApiError> {
        if name == CALLBACK_FIELD {
            self.callback = Some(callback(front, value)?);
            return Ok(());
        }
        Ok(self.options.set(name, value)?)
    }
}

/// The callback to `url` with a fresh secret, or a 422 naming the field.
pub fn callback(front: &Front, url: &str) -> Result<Callback, ApiError> {
    front
        .callback(url)
        .map_err(|why| ApiError::invalid_field(CALLBACK_FIELD, format!("{CALLBACK_FIELD}: {why}")))
}

/// Uploads a video (multipart field `file`) and queues its conversion.
/// Output options may also be given as query parameters of the same names.
#[utoipa::path(
    post, path = "/upload", tag = "jobs",
    params(crate::http::openapi::OptionQuery),
    request_body(content = crate::http::openapi::UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored and queued", body = Accepted),
        (status = 408, description = "The body came too slowly", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the upload limit or the user's quota", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "An option or the callback_url is refused, or no file", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    state: State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(state, caller, query, headers, body).await {
        Ok(accepted) => accepted.into_response(),
        Err(error) => {
            // A refused upload's body may be partly unread, so the server
            // closes the connection; saying so keeps clients from reusing it.
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn accept(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    // Options in the query are checked before a byte of the body is read.
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut asked = Asked::default();
    for (name, value) in &query {
        asked.set(&app.webhooks, name, value)?;
    }
    // Backpressure before a byte of the body is read: a node at its limit
    // of uploads in progress says so, and the client retries.
    let _ticket = app.mailboxes.http.try_take().map_err(|_| {
        app.metrics.uploads_refused.inc();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has its limit of uploads in progress; try again shortly",
        )
    })?;
    let owner = caller.owner();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let room = room_for(&app, &caller, declared).await?;
    let limit = room.limit;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "upload as multipart/form-data with the video in the field `file`",
        )
    })?;
    // Refuse an announced oversize body before reading any of it (the
    // multipart framing adds a little, hence the slack).
    if declared.is_some_and(|len| len > limit.saturating_add(64 * 1024)) {
        return Err(refusal(&room, StoreError::TooLarge { limit }.into()));
    }

    let body = crate::http::body::guarded(body, &app.settings, app.metrics.upload_bytes.clone());
    let mut multipart = multer::Multipart::new(body, boundary);
    // Option fields may come before the file; they are checked as they come.
    let field = loop {
        match multipart.next_field().await.map_err(malformed)? {
            Some(field) if field.name() == Some("file") => break field,
            Some(field) => set_field(&app, &mut asked, field).await?,
            None => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the form has no field `file`",
                ));
            }
        }
    };
    let filename = sanitize_filename(field.file_name().unwrap_or(""));
    let meta = FileMeta {
        filename: filename.clone(),
        owner: owner.to_owned(),
        content_type: field.content_type().map(|m| m.to_string()),
        job_id: None,
    };
    let blobs = app.backends.blobs.as_ref();
    let mut upload = Upload::open(blobs, Bucket::Videos, FileId::new(), meta, limit).await?;

    let streamed: Result<(), ApiError> = async {
        let mut field = field;
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            upload.write(&chunk).await?;
        }
        // multer reads the next part only once this one is gone.
        drop(field);
        // Option fields may also follow the file; a second file may not.
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            if field.name() == Some("file") || field.file_name().is_some() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "send exactly one file per upload (field `file`)",
                ));
            }
            set_field(&app, &mut asked, field).await?;
        }
        asked.options.validate()?;
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        if let Err(cleanup) = upload.abort().await {
            warn!(
                "could not remove a refused upload's pieces: {}",
                crate::backends::chain(&cleanup)
            );
        }
        return Err(refusal(&room, e));
    }
    if upload.written() == 0 {
        let _ = upload.abort().await;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the uploaded file is empty",
        ));
    }
    // The account may have been deleted (or disabled) while the body
    // arrived: then no job is made for it.
    if let Err(revoked) = app.standings.check(&caller.claims).await {
        let _ = upload.abort().await;
        return Err(revoked.into());
    }
    // From here on the work must not be cut short by the client going away
    // (hyper drops a handler whose connection closed): a finished video
    // without its job and message would break the invariant. A task of
    // its own runs to the end either way.
    let options = asked.options.resolve(&app.output_defaults);
    let job = JobRecord {
        callback: asked.callback,
        ..JobRecord::new(
            owner.clone(),
            &caller.claims.username,
            &filename,
            upload.id(),
            options,
        )
    };
    let size = upload.written();
    let job_copy = job.clone();
    // The room is given back only after the file and job count (or were
    // undone), in the same task: see backends::reservations.
    tokio::spawn(async move {
        let submitted = crate::jobs::submit::submit(&app.backends, upload, &job_copy).await;
        room.release().await;
        submitted
    })
    .await
    .map_err(ApiError::internal)??;
    info!(job_id = %job.id, bytes = size, "upload accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            job_id: job.id,
            video_fid: job.video_fid,
            callback_secret: job.callback.map(|c| c.secret),
        }),
    ))
}

/// Admits one upload of the caller (`jobs::admission`): before its body is
/// read, a user at their limit of active jobs (429) or storage (413) is
/// told at once; otherwise its room is reserved.
pub(super) async fn room_for(
    app: &AppState,
    caller: &Caller,
    wanted: Option<u64>,
) -> Result<Room, ApiError> {
    room_of(app, caller.owner(), caller.account.limits, wanted).await
}

/// Admits one job of `owner`, whose limits are `limits`.
pub(super) async fn room_of(
    app: &AppState,
    owner: &Owner,
    limits: crate::backends::UserLimits,
    wanted: Option<u64>,
) -> Result<Room, ApiError> {
    let rules = app.admission_rules();
    Ok(admission::admit(&app.backends, &rules, owner, limits, wanted).await?)
}

/// An upload that outgrew its room: over the quota when that was the bound.
pub(super) fn refusal(room: &Room, error: ApiError) -> ApiError {
    match room.quota {
        Some(quota) if error.kind == ProblemKind::PayloadTooLarge => {
            StoreError::QuotaExceeded { quota }.into()
        }
        _ => error,
    }
}

/// Text fields are short (an option, a URL): a larger one is refused, not
/// buffered.
const OPTION_FIELD_BYTES: usize = 4096;

/// Reads a text field of the form and sets what it names.
async fn set_field(
    app: &AppState,
    asked: &mut Asked,
    field: multer::Field<'_>,
) -> Result<(), ApiError> {
    let name = field.name().unwrap_or("").to_owned();
    if field.file_name().is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unexpected file in field `{name}`; the video goes in the field `file`"),
        ));
    }
    let mut value = Vec::new();
    let mut field = field;
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        value.extend_from_slice(&chunk);
        if value.len() > OPTION_FIELD_BYTES {
            return Err(ApiError::invalid(format!(
                "the field `{name}` is longer than {OPTION_FIELD_BYTES} bytes"
            )));
        }
    }
    let value = String::from_utf8(value)
        .map_err(|_| ApiError::invalid(format!("the field `{name}` is not UTF-8 text")))?;
    asked.set(&app.webhooks, &name, &value)
}

fn malformed(e: multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(cause) = &e
        && let Some(slow) = cause.downcast_ref::<SlowBody>()
    {
        return match slow {
            SlowBody::Read(_) => ApiError::new(StatusCode::BAD_REQUEST, slow.to_string()),
            _ => ApiError::of_kind(ProblemKind::RequestTimeout, slow.to_string()),
        };
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("malformed multipart body: {e}"),
    )
}

pub use vidaud_upload::sanitize_filename;
