//! One request's bytes into a resumable upload: the write runs in a task
//! of its own, so a client that hangs up mid-way still has what it sent
//! stored and its offset recorded (tus clients resume from `HEAD`'s
//! offset). The request holds the upload while it writes; every
//! [`CHECKPOINT`] bytes the data is made durable and the offset recorded,
//! so a node killed mid-request loses at most that much of it. With an
//! `Upload-Checksum` nothing of the request is kept unless all of it
//! matches.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use futures::StreamExt;
use tracing::{debug, info};

use super::protocol::Expected;
use crate::backends::{Bucket, FileMeta, ResumableWrite};
use crate::domain::{JobRecord, Timestamp, UploadRecord};
use crate::http::AppState;
use crate::http::body::SlowBody;
use crate::http::error::{ApiError, ProblemKind};
use crate::jobs::submit::complete as complete_upload;

/// Bytes between two checkpoints of a request without a checksum.
const CHECKPOINT: u64 = 8 * 1024 * 1024;

/// How long a request's hold lasts past its last sign of life: longer than
/// a body may stay silent before it is cut off, so a live request never
/// loses its hold, and short enough that a node's crash frees it soon.
pub fn hold_for(app: &AppState) -> Duration {
    Duration::from_secs(app.settings.body_idle_secs.max(1) + 5)
}

/// What became of a request's bytes.
pub struct Received {
    /// The upload with its offset as now recorded.
    pub upload: UploadRecord,
    /// The job, once the last byte is in and the job is queued.
    pub job: Option<JobRecord>,
}

/// Writes `body` into `upload` (held by `holder`) from its offset,
/// completes the upload when the last byte is in, and lets go of the hold.
/// Runs to its end even if the client goes away.
pub async fn receive(
    app: AppState,
    mut upload: UploadRecord,
    holder: u64,
    body: Body,
    expected: Option<Expected>,
) -> Result<Received, ApiError> {
    let from = upload.offset;
    let (stored, outcome) = write(&app, &upload, holder, body, expected).await;
    match &outcome {
        Ok(()) => debug!(upload = %upload.id, from, stored, "resumable upload request done"),
        Err(e) => info!(
            upload = %upload.id, from, stored,
            "resumable upload request ended early: {}", e.message
        ),
    }
    upload.offset = stored;
    let outcome = match outcome {
        Ok(()) if upload.is_complete() => complete_upload(&app.backends, &upload)
            .await
            .map(Some)
            .map_err(|e| ApiError::unavailable("storage", crate::backends::chain(&e))),
        Ok(()) => Ok(None),
        Err(e) => Err(e),
    };
    if let Ok(Some(_)) = &outcome {
        upload.queued = true;
    }
    let released = app
        .backends
        .uploads
        .advance(upload.id, holder, stored, None)
        .await;
    match (outcome, released) {
        (Err(e), _) => Err(e),
        (Ok(_), Ok(false)) => Err(lost_hold()),
        (Ok(_), Err(e)) => Err(e.into()),
        (Ok(job), Ok(true)) => Ok(Received { upload, job }),
    }
}

fn lost_hold() -> ApiError {
    ApiError::of_kind(
        ProblemKind::UploadLocked,
        "another request took this upload over; ask HEAD for its offset",
    )
}

/// The bytes stored for good when writing ended, and how it ended.
async fn write(
    app: &AppState,
    upload: &UploadRecord,
    holder: u64,
    body: Body,
    expected: Option<Expected>,
) -> (u64, Result<(), ApiError>) {
    let meta = FileMeta {
        filename: upload.filename.clone(),
        owner: upload.owner.clone(),
        content_type: upload.content_type.clone(),
        job_id: None,
    };
    let blobs = &app.backends.blobs;
    let mut blob = match blobs
        .resume(Bucket::Videos, upload.id, meta, upload.offset)
        .await
    {
        Ok(blob) => blob,
        Err(e) => return (upload.offset, Err(e.into())),
    };
    let hold = hold_for(app);
    let mut stored = upload.offset;
    let mut written = upload.offset;
    let mut renewed = Instant::now();
    let mut hasher = expected.as_ref().map(Expected::hasher);
    let mut body =
        crate::http::body::guarded(body, &app.settings, app.metrics.upload_bytes.clone()).boxed();
    let mut ended = Ok(());
    while let Some(next) = body.next().await {
        let chunk = match next {
            Ok(chunk) => chunk,
            Err(e) => {
                ended = Err(slow(e));
                break;
            }
        };
        if written + chunk.len() as u64 > upload.length {
            ended = Err(ApiError::of_kind(
                ProblemKind::PayloadTooLarge,
                format!(
                    "the request carries more than the {} bytes this upload declared",
                    upload.length
                ),
            ));
            break;
        }
        if let Err(e) = blob.write(&chunk).await {
            return (stored, Err(e.into()));
        }
        written += chunk.len() as u64;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
        let checkpoint = hasher.is_none() && written - stored >= CHECKPOINT;
        if checkpoint || renewed.elapsed() >= hold / 3 {
            let keep = if checkpoint { written } else { stored };
            match save(app, upload, holder, blob.as_mut(), keep, checkpoint, hold).await {
                Ok(()) => stored = keep,
                Err(e) => return (stored, Err(e)),
            }
            renewed = Instant::now();
        }
    }
    let keep = match (&expected, hasher, &ended) {
        // A checksum covers the whole request: all of it, or nothing.
        (Some(expected), Some(hasher), Ok(())) => {
            if !expected.matches(hasher) {
                return (
                    stored,
                    Err(ApiError::of_kind(
                        ProblemKind::ChecksumMismatch,
                        "the request's bytes do not match its Upload-Checksum; nothing of it was kept",
                    )),
                );
            }
            written
        }
        (Some(_), _, _) => stored,
        // Without one, whatever arrived is kept, also from a client that
        // hung up: it resumes from there.
        (None, _, _) => written,
    };
    if keep > stored {
        match save(app, upload, holder, blob.as_mut(), keep, true, hold).await {
            Ok(()) => stored = keep,
            Err(e) => return (stored, Err(e)),
        }
    }
    (stored, ended)
}

/// Records `offset` (made durable first when `checkpoint`) and renews the hold.
async fn save(
    app: &AppState,
    upload: &UploadRecord,
    holder: u64,
    blob: &mut dyn ResumableWrite,
    offset: u64,
    checkpoint: bool,
    hold: Duration,
) -> Result<(), ApiError> {
    if checkpoint {
        blob.checkpoint().await.map_err(ApiError::from)?;
    }
    let until = Timestamp::now().plus(hold);
    match app
        .backends
        .uploads
        .advance(upload.id, holder, offset, Some(until))
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(lost_hold()),
        Err(e) => Err(ApiError::from(e)),
    }
}

fn slow(e: SlowBody) -> ApiError {
    match e {
        SlowBody::Read(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        _ => ApiError::of_kind(ProblemKind::RequestTimeout, e.to_string()),
    }
}
