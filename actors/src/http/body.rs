//! Request bodies read with a deadline: a body that sends nothing for
//! `body_idle_secs`, or an upload that after that long averages less than
//! `min_upload_bytes_per_sec`, ends with [`SlowBody`] (answered 408), so a
//! slow or stalled client cannot hold an upload slot forever.

use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;

use crate::settings::HttpSettings;

#[derive(Debug, thiserror::Error)]
pub enum SlowBody {
    #[error("the request body sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the request body is arriving at {rate} bytes/s, under the minimum of {min} bytes/s")]
    TooSlow { rate: u64, min: u64 },
    #[error("reading the request body failed: {0}")]
    Read(String),
}

struct Reading<S> {
    body: S,
    started: Instant,
    bytes: u64,
    done: bool,
}

/// `body` as a stream of chunks that fails once the client is too slow.
/// Bytes received are counted on `received`.
pub fn guarded(
    body: Body,
    settings: &HttpSettings,
    received: Counter,
) -> impl Stream<Item = Result<Bytes, SlowBody>> + Send + 'static {
    let idle = Duration::from_secs(settings.body_idle_secs.max(1));
    let min = settings.min_upload_bytes_per_sec;
    let reading = Reading {
        body: body.into_data_stream(),
        started: Instant::now(),
        bytes: 0,
        done: false,
    };
    futures::stream::unfold(reading, move |mut r| {
        let received = received.clone();
        async move {
            if r.done {
                return None;
            }
            let next = tokio::time::timeout(idle, r.body.next()).await;
            let item = match next {
                Err(_) => Err(SlowBody::Idle(idle)),
                Ok(None) => return None,
                Ok(Some(Err(e))) => Err(SlowBody::Read(e.to_string())),
                Ok(Some(Ok(chunk))) => {
                    r.bytes += chunk.len() as u64;
                    received.inc_by(chunk.len() as u64);
                    let elapsed = r.started.elapsed();
                    let rate = (r.bytes as f64 / elapsed.as_secs_f64().max(1e-3)) as u64;
                    if elapsed > idle && rate < min {
                        Err(SlowBody::TooSlow { rate, min })
                    } else {
                        Ok(chunk)
                    }
                }
            };
            r.done = item.is_err();
            Some((item, r))
        }
    })
}
