//! The HTTP/1.1 server loop: hyper with limits axum's `serve` does not
//! expose. A client must send its request head within
//! `http.header_timeout_secs` and keep it under `http.max_header_bytes`
//! (else hyper answers 431), so slow or bloated heads cannot pin a
//! connection; bodies are guarded where they are read (`body.rs`,
//! `small_body.rs`). One client address holds at most
//! `http.max_connections_per_client` connections at once (trusted proxies
//! excepted): a further one is answered 429 and closed before hyper sees
//! it. Each request carries its [`ClientAddr`] (see `client_addr.rs`).
//!
//! Shutdown stops accepting at once, tells long-lived responses (event
//! streams) to end, and lets requests in flight finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::client_addr::{ClientAddr, client_of};
use super::error::{ApiError, ProblemKind};
use crate::cidr::{Cidr, CidrError, any_contains, parse_all};
use crate::settings::HttpSettings;

/// The connections open per client address, and the cap on them.
pub struct Peers {
    trusted: Vec<Cidr>,
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One admitted connection: its count is given back when it is dropped.
struct Admitted {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    pub fn new(settings: &HttpSettings) -> Result<Arc<Self>, CidrError> {
        Ok(Arc::new(Self {
            trusted: parse_all(&settings.trusted_proxies)?,
            max: settings.max_connections_per_client,
            open: Mutex::new(HashMap::new()),
        }))
    }

    /// A connection from `ip`, unless it already holds its cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        if self.max > 0 && !any_contains(&self.trusted, ip) {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let count = open.entry(ip).or_insert(0);
            if *count >= self.max {
                return None;
            }
            *count += 1;
        }
        Some(Admitted {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over the cap with a 429 problem and closes it.
async fn refuse(mut stream: TcpStream, max: u32) {
    let problem = ApiError::of_kind(
        ProblemKind::TooManyConnections,
        format!("your address has {max} connections open, the most allowed; close one"),
    )
    .problem_json();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: {}\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{problem}",
        super::error::PROBLEM_JSON,
        problem.len(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// hyper's floor for its read buffer, which bounds the request head.
const MIN_HEADER_BYTES: usize = 8192;

/// Serves `app` on `listener` until `closing` is cancelled, then waits for
/// the connections in flight (at most `drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    peers: Arc<Peers>,
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
        let Some(admitted) = peers.admit(peer.ip()) else {
            debug!(%peer, "connection refused: its address holds the most allowed");
            tokio::spawn(refuse(stream, peers.max));
            continue;
        };
        let app = app.clone();
        let trusted = peers.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let client = client_of(peer.ip(), request.headers(), &trusted.trusted);
            let extensions = request.extensions_mut();
            extensions.insert(ConnectInfo::<SocketAddr>(peer));
            extensions.insert(ClientAddr(client));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _admitted = admitted;
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
