//! The HTTP/1.1 server loop: hyper with limits axum's `serve` does not
//! expose. A client must send its request head within
//! `http.header_timeout_secs` and keep it under `http.max_header_bytes`
//! (else hyper answers 431), so slow or bloated heads cannot pin a
//! connection; bodies are guarded where they are read (`body.rs`).
//!
//! Shutdown stops accepting at once, tells long-lived responses (event
//! streams) to end, and lets requests in flight finish.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::settings::HttpSettings;

/// hyper's floor for its read buffer, which bounds the request head.
const MIN_HEADER_BYTES: usize = 8192;

/// Serves `app` on `listener` until `closing` is cancelled, then waits for
/// the connections in flight (at most `drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    closing: CancellationToken,
    drain: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(settings.header_timeout_secs.max(1)))
        .max_buf_size(settings.max_header_bytes.max(MIN_HEADER_BYTES));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = closing.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, not spin.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Responses are written whole by hyper: Nagle would only hold a
        // short body back behind its headers for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("requests still in flight after {drain:?}; closing them");
    }
}
