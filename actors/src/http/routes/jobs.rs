//! `GET /jobs/{id}` and `GET /download?fid=`. Both answer 404 for anything
//! the caller does not own, so ids of other users' jobs do not leak.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Caller;
use crate::job::{JobRecord, JobState};
use crate::output::OutputOptions;

#[derive(Serialize)]
pub struct JobView {
    job_id: String,
    state: JobState,
    filename: String,
    video_fid: String,
    mp3_fid: Option<String>,
    error: Option<String>,
    attempts: u32,
    /// Percent converted (while converting; 100 when done).
    progress: Option<f64>,
    /// The output options in force (format, bitrate, trim...).
    output: OutputOptions,
    created_at: String,
    updated_at: String,
}

impl From<JobRecord> for JobView {
    fn from(job: JobRecord) -> Self {
        Self {
            job_id: job.id.to_hex(),
            mp3_fid: (job.state == JobState::Done).then(|| job.mp3_fid.to_hex()),
            state: job.state,
            filename: job.filename,
            video_fid: job.video_fid.to_hex(),
            error: job.error.filter(|_| job.state == JobState::Failed),
            attempts: job.attempts,
            progress: match job.state {
                JobState::Queued => None,
                JobState::Converting => job.progress.or(Some(0.0)),
                JobState::Done => Some(100.0),
                JobState::Failed => job.progress,
            },
            output: job.output,
            created_at: job.created_at.try_to_rfc3339_string().unwrap_or_default(),
            updated_at: job.updated_at.try_to_rfc3339_string().unwrap_or_default(),
        }
    }
}

fn parse_id(raw: &str, what: &str) -> Result<ObjectId, ApiError> {
    ObjectId::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id, "job")?;
    match app.store.job(id).await? {
        Some(job) if caller.may_access(&job.owner) => Ok(Json(job.into())),
        _ => Err(ApiError::not_found("job")),
    }
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    fid: Option<String>,
}

pub async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let fid = query.fid.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give the file id as ?fid=",
        )
    })?;
    let id = parse_id(&fid, "file")?;
    let info = match app.store.mp3_info(id).await? {
        Some(info) if info.owner.as_deref().is_some_and(|o| caller.may_access(o)) => info,
        _ => return Err(ApiError::not_found("file")),
    };
    let body = app.store.download_mp3(id).await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            info.content_type.as_deref().unwrap_or("audio/mpeg"),
        )
        .header(header::CONTENT_LENGTH, info.length)
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(&info.filename),
        )
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// An `attachment` disposition with an ASCII fallback name and the exact
/// name percent-encoded (RFC 6266 / 8187).
pub fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn disposition_is_header_safe() {
        let value = content_disposition("my \"song\"\r\n.mp3");
        assert!(!value.contains('\r') && !value.contains('\n'));
        assert!(value.starts_with("attachment; filename=\"my _song___.mp3\""));
        assert!(content_disposition("é.mp3").ends_with("UTF-8''%C3%A9.mp3"));
    }
}
