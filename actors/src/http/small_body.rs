//! Request bodies that are not uploads — JSON of a few fields, a form, or
//! nothing at all — are read whole before their handler runs, within
//! `http.request_body_secs` in all and at most `http.max_request_body_bytes`.
//! A client that trickles a byte every few seconds into `/register` is
//! answered 408 once the deadline passes and its connection closed; one
//! that sends too much, 413. So no handler (and no auth ticket, no task
//! waiting on the auth actor) is ever held by a client that does not send.
//!
//! Uploads (`POST /upload`, tus) stream instead and are guarded where they
//! are read (`body.rs`: an idle timeout and a minimum rate).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::error::{ApiError, ProblemKind};
use crate::settings::HttpSettings;

/// The bounds on a small body, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct BodyBounds {
    deadline: Duration,
    max_bytes: usize,
}

impl BodyBounds {
    pub fn new(settings: &HttpSettings) -> Self {
        Self {
            deadline: Duration::from_secs(settings.request_body_secs.max(1)),
            max_bytes: settings.max_request_body_bytes,
        }
    }
}

/// Why a small body was not read.
#[derive(Debug, thiserror::Error)]
enum Unread {
    #[error("the request body did not arrive within {0:?}")]
    Late(Duration),
    #[error("the request body is over {0} bytes, the most this endpoint takes")]
    TooLarge(usize),
    #[error("reading the request body failed: {0}")]
    Broken(#[source] axum::Error),
}

impl From<Unread> for ApiError {
    fn from(e: Unread) -> Self {
        let kind = match e {
            Unread::Late(_) => ProblemKind::RequestTimeout,
            Unread::TooLarge(_) => ProblemKind::BodyTooLarge,
            Unread::Broken(_) => ProblemKind::BadRequest,
        };
        ApiError::of_kind(kind, e.to_string())
    }
}

/// Middleware: the body, read in full under the bounds, handed on as bytes.
pub async fn bounded(State(bounds): State<BodyBounds>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read = match declared {
        Some(len) if len > bounds.max_bytes as u64 => Err(Unread::TooLarge(bounds.max_bytes)),
        Some(0) => Ok(Vec::new()),
        _ => tokio::time::timeout(bounds.deadline, read_all(body, bounds.max_bytes))
            .await
            .unwrap_or(Err(Unread::Late(bounds.deadline))),
    };
    match read {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(unread) => {
            // The rest of the body is not read: the connection is closed.
            let mut response = ApiError::from(unread).into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn read_all(body: Body, max_bytes: usize) -> Result<Vec<u8>, Unread> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Unread::Broken)?;
        if bytes.len() + chunk.len() > max_bytes {
            return Err(Unread::TooLarge(max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A small body as the JSON a handler expects; a 422 that shows `shape`
/// (what was expected) and says what is wrong otherwise.
pub fn json<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("expected JSON {shape}: {e}")))
}
