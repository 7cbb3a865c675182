//! Lingering on a refused body: a request answered before its body was
//! read (a refused option, 401, 413, 503...) has the rest of its body read
//! and thrown away for a while after the answer, as nginx does
//! (`lingering_close`), before the connection closes.
//!
//! Why: closing a socket with unread data makes the kernel reset the
//! connection, and a reset throws away what the client had not read yet,
//! the answer included. A client that sends its whole body before reading
//! (Python's http.client, many scripts) would see "connection reset"
//! instead of the reason. Reading on for up to [`LINGER_FOR`] (and while
//! the client keeps sending, at most [`IDLE_FOR`] apart) lets it finish
//! sending and read the answer; memory stays at one chunk, and a node that
//! is stopping stops lingering at once.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// The longest a refused body is read on.
pub const LINGER_FOR: Duration = Duration::from_secs(30);
/// The longest the client may send nothing while it is.
pub const IDLE_FOR: Duration = Duration::from_secs(5);

/// Middleware: every request's body, read or not, is either finished by
/// its handler or lingered on once dropped. `closing` is the node's.
pub async fn linger(
    State(closing): State<CancellationToken>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let body = Body::from_stream(Lingering {
        inner: Some(body.into_data_stream()),
        ended: false,
        closing,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A body that, dropped unfinished, is read to its end (or the limits) by
/// a task of its own.
struct Lingering {
    inner: Option<BodyDataStream>,
    ended: bool,
    closing: CancellationToken,
}

impl Stream for Lingering {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = inner.poll_next_unpin(cx);
        // A body that broke (the client went away) has nothing to linger on.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if self.ended || inner.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(inner, self.closing.clone()));
        }
    }
}

/// Reads `body` and throws it away until it ends, the client pauses for
/// [`IDLE_FOR`], [`LINGER_FOR`] has passed, or the node stops.
async fn drain(mut body: BodyDataStream, closing: CancellationToken) {
    let reading =
        async { while let Ok(Some(Ok(_))) = tokio::time::timeout(IDLE_FOR, body.next()).await {} };
    tokio::select! {
        _ = tokio::time::timeout(LINGER_FOR, reading) => {}
        _ = closing.cancelled() => {}
    }
}
