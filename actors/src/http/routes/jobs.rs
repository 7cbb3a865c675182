//! `GET /jobs/{id}` and `GET /download?fid=`. Both answer 404 for anything
//! the caller does not own, so ids of other users' jobs do not leak.
//! Downloads answer HEAD, single byte ranges (206, 416) and conditional
//! requests (ETag, If-None-Match → 304), so a large file can be resumed.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
    headers: HeaderMap,
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
    // A file id always names the same bytes once its job is done.
    let etag = format!("\"{}-{}\"", info.id.to_hex(), info.length);
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            info.content_type.as_deref().unwrap_or("audio/mpeg"),
        )
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(&info.filename),
        );
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header_str(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return finish(builder.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    let range = match header_str(header::RANGE).map(|r| parse_range(r, info.length)) {
        None | Some(RangeAsk::Whole) => None,
        Some(RangeAsk::Part(first, last)) => Some((first, last)),
        Some(RangeAsk::Unsatisfiable) => {
            return finish(
                builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", info.length)),
                Body::empty(),
            );
        }
    };
    let body = Body::from_stream(app.store.download_mp3(&info, range).await?);
    let builder = match range {
        Some((first, last)) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{}", info.length),
            )
            .header(header::CONTENT_LENGTH, last + 1 - first),
        None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, info.length),
    };
    finish(builder, body)
}

fn finish(builder: axum::http::response::Builder, body: Body) -> Result<Response, ApiError> {
    builder
        .body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// What a `Range` header asks of a file of `length` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// No usable single byte range (other units, several ranges, bad
    /// syntax): the whole file, as RFC 9110 allows.
    Whole,
    /// Bytes `first..=last`.
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(header: &str, length: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((from, to)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (from, to) = (from.trim(), to.trim());
    let parsed = match (from.parse::<u64>(), to.parse::<u64>()) {
        (Ok(first), Ok(last)) if first <= last => Some((first, last.min(length.saturating_sub(1)))),
        (Ok(first), Err(_)) if to.is_empty() => Some((first, length.saturating_sub(1))),
        (Err(_), Ok(suffix)) if from.is_empty() => {
            if suffix == 0 {
                return RangeAsk::Unsatisfiable;
            }
            Some((length.saturating_sub(suffix), length.saturating_sub(1)))
        }
        _ => return RangeAsk::Whole,
    };
    match parsed {
        Some((first, last)) if first < length && first <= last => RangeAsk::Part(first, last),
        _ => RangeAsk::Unsatisfiable,
    }
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
    fn ranges() {
        use super::{RangeAsk, parse_range};
        assert_eq!(parse_range("bytes=0-99", 1000), RangeAsk::Part(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), RangeAsk::Part(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), RangeAsk::Part(900, 999));
        assert_eq!(
            parse_range("bytes=990-2000", 1000),
            RangeAsk::Part(990, 999)
        );
        assert_eq!(parse_range("bytes=1000-", 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 1000), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-2", 1000), RangeAsk::Whole);
    }

    #[test]
    fn disposition_is_header_safe() {
        let value = content_disposition("my \"song\"\r\n.mp3");
        assert!(!value.contains('\r') && !value.contains('\n'));
        assert!(value.starts_with("attachment; filename=\"my _song___.mp3\""));
        assert!(content_disposition("é.mp3").ends_with("UTF-8''%C3%A9.mp3"));
    }
}
