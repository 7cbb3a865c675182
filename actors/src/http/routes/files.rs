//! File downloads: `GET /download?fid=` (the reference's),
//! `GET /jobs/{id}/audio` and `GET /jobs/{id}/waveform` (the audio's peaks,
//! for players). Each answers 404 for anything the caller does not own,
//! HEAD, single byte ranges (206, 416) and conditional requests (ETag,
//! If-None-Match → 304), so a large file can be resumed.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::TryStreamExt;
use serde::Deserialize;

use super::jobs::{owned_job, parse_id, require_done};
use super::links;
use crate::auth::LinkProof;
use crate::backends::{Bucket, FileInfo};
use crate::domain::FileId;
use crate::http::AppState;
use crate::http::error::{ApiError, finish};
use crate::http::extract::Caller;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The audio file id (`mp3_fid` of a done job).
    #[param(required = true)]
    fid: Option<String>,
    /// Signed links: when the link lapses (Unix seconds).
    exp: Option<u64>,
    /// Signed links: the key that signed it.
    kid: Option<String>,
    /// Signed links: the signature; with it, no login is needed.
    sig: Option<String>,
}

/// A converted audio file by id (the reference's download), for its owner,
/// or for anyone with a signed link (`exp`, `kid`, `sig`: from the mail or
/// `POST /jobs/{id}/link`). Supports HEAD, `Range` and `If-None-Match`.
#[utoipa::path(
    get, path = "/download", tag = "files",
    params(DownloadQuery),
    responses(
        (status = 200, description = "The whole file", body = Vec<u8>, content_type = "audio/mpeg"),
        (status = 206, description = "The byte range asked for", body = Vec<u8>, content_type = "audio/mpeg"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 416, description = "The range is outside the file", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The signed link is altered, expired or signed with a retired key", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ())
)]
pub async fn download(
    State(app): State<AppState>,
    caller: Option<Caller>,
    headers: HeaderMap,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let fid = query
        .fid
        .ok_or_else(|| ApiError::invalid("give the file id as ?fid="))?;
    let id: FileId = parse_id(&fid)?;
    let may_see: Box<dyn Fn(&FileInfo) -> bool + Send> = match (query.sig, caller) {
        (Some(signature), _) => {
            let proof = LinkProof {
                expires: query.exp.unwrap_or(0),
                key_id: query.kid.unwrap_or_default(),
                signature,
            };
            links::check(&app, &id.to_hex(), &proof)?;
            Box::new(|_| true)
        }
        (None, Some(caller)) => Box::new(move |info: &FileInfo| caller.viewer().may_see_file(info)),
        (None, None) => {
            return Err(ApiError::unauthorized(
                "missing Authorization: Bearer token (or use a signed link, with exp, kid and sig)",
            ));
        }
    };
    match app.backends.blobs.info(Bucket::Audio, id).await? {
        Some(info) if may_see(&info) => serve(&app, &headers, Bucket::Audio, info).await,
        // A valid link whose file is gone: its job was deleted.
        _ => Err(ApiError::not_found("file")),
    }
}

/// The job's audio once it is done. Supports HEAD, `Range` and
/// `If-None-Match`.
#[utoipa::path(
    get, path = "/jobs/{id}/audio", tag = "files",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The whole file", body = Vec<u8>, content_type = "audio/mpeg"),
        (status = 206, description = "The byte range asked for", body = Vec<u8>, content_type = "audio/mpeg"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 416, description = "The range is outside the file", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not done", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn job_audio(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    job_file(&app, &caller, &headers, &id, Bucket::Audio).await
}

/// The waveform data of the job's audio once it is done, for players
/// (peaks.js, wavesurfer): BBC audiowaveform's JSON (version 2), one
/// channel (the channels' mean), 8 bits, `samples_per_pixel` frames of the
/// audio per min/max pair. Supports HEAD, `Range` and `If-None-Match`.
#[utoipa::path(
    get, path = "/jobs/{id}/waveform", tag = "files",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "audiowaveform JSON: {version: 2, channels: 1, sample_rate, samples_per_pixel, bits: 8, data: [min, max, …], length}", body = crate::http::openapi::Waveform, content_type = "application/json"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such job of yours, or a job converted before waveforms were kept", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not done", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn job_waveform(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    job_file(&app, &caller, &headers, &id, Bucket::Waveforms).await
}

/// One of a done job's outputs (kept under its audio id), for its owner.
async fn job_file(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    bucket: Bucket,
) -> Result<Response, ApiError> {
    let job = owned_job(app, caller, id).await?;
    require_done(&job, &format!("its {}", bucket.name()))?;
    match app.backends.blobs.info(bucket, job.mp3_fid).await? {
        Some(info) => serve(app, headers, bucket, info).await,
        None => Err(ApiError::not_found("file")),
    }
}

/// Sends a stored file, whole or the one range asked for: audio as an
/// attachment, a waveform inline (a player reads it).
async fn serve(
    app: &AppState,
    headers: &HeaderMap,
    bucket: Bucket,
    info: FileInfo,
) -> Result<Response, ApiError> {
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
            content_disposition(
                if bucket == Bucket::Audio {
                    "attachment"
                } else {
                    "inline"
                },
                &info.filename,
            ),
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
    let sent = app.metrics.download_bytes.clone();
    let stream = app.backends.blobs.read(bucket, &info, range).await?;
    let body = Body::from_stream(stream.inspect_ok(move |chunk| {
        sent.inc_by(chunk.len() as u64);
    }));
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

/// A disposition (`attachment`, `inline`) with an ASCII fallback name and
/// the exact name percent-encoded (RFC 6266 / 8187).
pub fn content_disposition(kind: &str, filename: &str) -> String {
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
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
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
        let value = content_disposition("attachment", "my \"song\"\r\n.mp3");
        assert!(!value.contains('\r') && !value.contains('\n'));
        assert!(value.starts_with("attachment; filename=\"my _song___.mp3\""));
        assert!(content_disposition("inline", "é.mp3").ends_with("UTF-8''%C3%A9.mp3"));
    }
}
