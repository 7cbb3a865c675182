//! One attempt at a delivery: a signed POST to the destination, to a
//! checked address only (see `guard.rs`), no redirect followed, under a
//! deadline, reading at most a bounded part of the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::guard::{CidrError, Guard, GuardedResolver, Refused};
use super::sign;
use crate::backends::chain;
use crate::domain::{Attempt, Delivery, Timestamp};
use crate::settings::WebhookSettings;

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("webhooks.allowed_networks")]
    Networks(#[from] CidrError),
    #[error("building the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// What an attempt came to.
pub struct Tried {
    pub attempt: Attempt,
    /// The destination was refused by the guard (nothing was sent).
    pub refused: bool,
}

pub struct Sender {
    client: reqwest::Client,
    guard: Arc<Guard>,
    max_response_bytes: u64,
}

impl Sender {
    pub fn new(settings: &WebhookSettings) -> Result<Self, SenderError> {
        let guard = Arc::new(Guard::new(&settings.allowed_networks)?);
        let timeout = Duration::from_secs(settings.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .user_agent(concat!("vidaud-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SenderError::Client)?;
        Ok(Self {
            client,
            guard,
            max_response_bytes: settings.max_response_bytes,
        })
    }

    pub async fn attempt(&self, delivery: &Delivery) -> Tried {
        let at = Timestamp::now();
        let started = Instant::now();
        let failed = |error: String, refused: bool, status: Option<u16>| Tried {
            attempt: Attempt {
                at,
                status,
                latency_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
                error: Some(error),
            },
            refused,
        };
        let url = match self.guard.check_url(&delivery.url) {
            Ok(url) => url,
            Err(why) => return failed(format!("refused: {why}"), true, None),
        };
        let timestamp = u64::try_from(at.millis() / 1000).unwrap_or(0);
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(delivery.payload.clone());
        for (name, value) in sign::headers(
            &delivery.secret,
            &delivery.message_id(),
            timestamp,
            &delivery.payload,
        ) {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let refused = is_refusal(&e);
                let why = if e.is_timeout() {
                    format!("no answer within the timeout ({})", chain(&e))
                } else {
                    chain(&e)
                };
                return failed(why, refused, None);
            }
        };
        let status = response.status();
        let latency_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("nowhere");
            Some(format!("redirect ({status}) to {to} not followed"))
        } else {
            Some(format!("answered {status}"))
        };
        self.drain(response).await;
        Tried {
            attempt: Attempt {
                at,
                status: Some(status.as_u16()),
                latency_ms,
                error,
            },
            refused: false,
        }
    }

    /// Reads (and drops) at most `max_response_bytes` of an answer.
    async fn drain(&self, response: reqwest::Response) {
        let mut read = 0u64;
        let mut body = response.bytes_stream();
        while read < self.max_response_bytes {
            match body.next().await {
                Some(Ok(chunk)) => read += chunk.len() as u64,
                _ => break,
            }
        }
    }
}

/// Whether a request failed because the guard refused every address.
fn is_refusal(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<Refused>() {
            return true;
        }
        cause = e.source();
    }
    false
}
