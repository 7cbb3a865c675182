//! `GET /jobs/{id}/events`: a job's state and progress as server-sent
//! events, as they happen on whichever node converts it; and `GET /events`,
//! all of the caller's jobs' events in one stream (a browser holds only a
//! few connections per host, so a page of jobs cannot hold one each).
//!
//! Every event is a whole snapshot (state, percent, error), and its id is
//! the job's event sequence (`job::event_sequence`), which only grows over
//! the job's life. So resuming is simple and exact: the stream opens with
//! the job as it is now unless the client's `Last-Event-ID` says it has
//! seen that already, then sends only events newer than the last one sent.
//! The stream ends after a final state (done, failed, deleted); a client
//! that reconnects after the end gets 204, which tells an `EventSource` to
//! stop. Heartbeat comments keep an idle stream alive through proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::jobs::owned_job;
use crate::backends::Feed;
use crate::domain::{JobEvent, JobId, JobState, Owner};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Caller;

/// The job's state and progress as server-sent events; each event's data
/// is `{job_id, state, progress, error, attempts, node}`, its id grows over
/// the job's life (send the last as `Last-Event-ID` to resume).
#[utoipa::path(
    get, path = "/jobs/{id}/events", tag = "jobs",
    params(
        ("id" = String, Path, description = "Job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"),
    ),
    responses(
        (status = 200, description = "The event stream; it ends after a final state", body = ServerSentEvent, content_type = "text/event-stream"),
        (status = 204, description = "Nothing newer will come: the job ended and the client saw it"),
    ),
    security(("bearer" = []))
)]
pub async fn job_events(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Subscribe before reading the record, so nothing falls in between.
    let feed = app.backends.events.subscribe();
    let job = owned_job(&app, &caller, &id).await?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let now = job.event(&app.node_id);
    if now.state.is_final() && last_seen.is_some_and(|seen| seen >= now.sequence()) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let heartbeat = Duration::from_secs(app.settings.sse_heartbeat_secs.max(1));
    let watch = Watch {
        _open: OpenStream::count(&app.metrics.event_streams),
        app,
        job_id: job.id,
        owner: job.owner,
        feed,
        last_sent: last_seen,
        first: Some(now),
        finished: false,
    };
    Ok((
        UNBUFFERED,
        Sse::new(watch.into_stream()).keep_alive(KeepAlive::new().interval(heartbeat)),
    )
        .into_response())
}

/// Tells a reverse proxy (nginx reads it; others have their own switch)
/// to pass an event stream on as it comes rather than buffer it.
const UNBUFFERED: [(&str, &str); 1] = [("x-accel-buffering", "no")];

/// One event of the stream, as an SSE client sees it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ServerSentEvent {
    /// The job's event sequence: only grows; send the last one seen as
    /// `Last-Event-ID` to resume.
    id: String,
    /// Always `message` (unnamed events).
    event: Option<String>,
    /// JSON: `{job_id, state, progress, error, attempts, node}`.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// Counts an open stream while it lives.
struct OpenStream(prometheus_client::metrics::gauge::Gauge);

impl OpenStream {
    fn count(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One client's watch over one job.
struct Watch {
    _open: OpenStream,
    app: AppState,
    job_id: JobId,
    owner: Owner,
    feed: broadcast::Receiver<Feed>,
    last_sent: Option<u64>,
    first: Option<JobEvent>,
    finished: bool,
}

impl Watch {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> {
        futures::stream::unfold(self, |mut watch| async move {
            let event = watch.next().await?;
            Some((Ok(event), watch))
        })
    }

    async fn next(&mut self) -> Option<Event> {
        if let Some(first) = self.first.take()
            && let Some(event) = self.offer(first)
        {
            return Some(event);
        }
        while !self.finished {
            let candidate = tokio::select! {
                got = self.feed.recv() => match got {
                    Ok(Feed::Event(event)) if event.job_id == self.job_id => Some(event),
                    Ok(Feed::Event(_)) => None,
                    // Events may have been lost, or this watcher fell behind
                    // the feed: what was missed is in the record. Only then
                    // is the record read: an idle stream costs the store
                    // nothing.
                    Ok(Feed::Gap) | Err(RecvError::Lagged(_)) => self.reread().await,
                    Err(RecvError::Closed) => return None,
                },
                // The node is stopping: the client reconnects elsewhere.
                _ = self.app.closing.cancelled() => return None,
            };
            if let Some(event) = candidate.and_then(|c| self.offer(c)) {
                return Some(event);
            }
        }
        None
    }

    /// The job as its record says now; a job gone altogether is deleted.
    async fn reread(&self) -> Option<JobEvent> {
        match self.app.backends.jobs.get(self.job_id).await {
            Ok(Some(job)) => Some(job.event(&self.app.node_id)),
            Ok(None) => Some(JobEvent {
                job_id: self.job_id,
                owner: self.owner.clone(),
                state: JobState::Deleted,
                progress: None,
                attempts: 0,
                retries: 0,
                error: None,
                node: self.app.node_id.clone(),
            }),
            Err(_) => None,
        }
    }

    /// The SSE event for `event` if it is newer than what was sent.
    fn offer(&mut self, event: JobEvent) -> Option<Event> {
        let sequence = event.sequence();
        if self.last_sent.is_some_and(|sent| sequence <= sent) {
            return None;
        }
        self.last_sent = Some(sequence);
        self.finished = event.state.is_final();
        Some(
            Event::default()
                .id(sequence.to_string())
                .data(event_data(&event)),
        )
    }
}

/// An event's data as both streams send it.
fn event_data(event: &JobEvent) -> String {
    serde_json::json!({
        "job_id": event.job_id,
        "state": event.state,
        "progress": event.progress,
        "error": event.error,
        "attempts": event.attempts,
        "node": event.node,
        "sequence": event.sequence(),
    })
    .to_string()
}

/// Every job event of the caller's jobs (an admin's: everyone's) as
/// server-sent events, for as long as the client stays: what the web app's
/// job list listens to. An event named `resync` (first, and whenever events
/// may have been missed) means: read the list again (`GET /jobs`); the
/// others are unnamed, with the same data as `/jobs/{id}/events`.
#[utoipa::path(
    get, path = "/events", tag = "jobs",
    responses(
        (status = 200, description = "The event stream, until the client or the node goes", body = ServerSentEvent, content_type = "text/event-stream"),
    ),
    security(("bearer" = []))
)]
pub async fn all_events(State(app): State<AppState>, caller: Caller) -> Response {
    let heartbeat = Duration::from_secs(app.settings.sse_heartbeat_secs.max(1));
    let open = OpenStream::count(&app.metrics.event_streams);
    let feed = app.backends.events.subscribe();
    let state = (open, app, caller, feed, true);
    let stream =
        futures::stream::unfold(state, |(open, app, caller, mut feed, first)| async move {
            let resync = || Event::default().event("resync").data("{}");
            if first {
                return Some((
                    Ok::<Event, Infallible>(resync()),
                    (open, app, caller, feed, false),
                ));
            }
            loop {
                let event = tokio::select! {
                    got = feed.recv() => match got {
                        Ok(Feed::Event(event)) if caller.viewer().may_access(&event.owner) => {
                            Event::default().data(event_data(&event))
                        }
                        Ok(Feed::Event(_)) => continue,
                        Ok(Feed::Gap) | Err(RecvError::Lagged(_)) => resync(),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = app.closing.cancelled() => return None,
                };
                return Some((Ok(event), (open, app, caller, feed, false)));
            }
        });
    (
        UNBUFFERED,
        Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)),
    )
        .into_response()
}
