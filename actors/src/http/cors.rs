//! Cross-origin requests (CORS) for the origins in `http.cors_origins`:
//! what a page of theirs may send (the token, tus's headers) and read back
//! (tus's answers, `Job-Id`). Only a request that names an `Origin` goes
//! through the policy, so a plain `OPTIONS` (tus's discovery) still reaches
//! its route instead of being taken for a preflight.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The node's CORS policy; cheap to clone.
#[derive(Clone)]
pub struct Policy(Arc<CorsLayer>);

impl Policy {
    pub fn new(origins: &[String]) -> Self {
        Self(Arc::new(layer(origins)))
    }
}

/// Middleware: requests from a browser page (an `Origin`) are answered as
/// the policy says; the rest pass untouched.
pub async fn cross_origin(State(policy): State<Policy>, request: Request, next: Next) -> Response {
    if !request.headers().contains_key(header::ORIGIN) {
        return next.run(request).await;
    }
    let mut next = Some(next);
    let inner = tower::service_fn(move |request: Request| {
        let next = next.take();
        async move {
            Ok::<_, Infallible>(match next {
                Some(next) => next.run(request).await,
                None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            })
        }
    });
    match policy.0.layer(inner).oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// Cross-origin access for the configured origins only: what a page of
/// theirs may send (the token, tus's headers) and read back.
fn layer(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    let names = |list: &[&'static str]| -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(
            [header::AUTHORIZATION, header::CONTENT_TYPE]
                .into_iter()
                .chain(names(&[
                    "tus-resumable",
                    "upload-length",
                    "upload-metadata",
                    "upload-offset",
                    "upload-checksum",
                    "upload-concat",
                    "upload-defer-length",
                    "x-http-method-override",
                    "x-requested-with",
                    "last-event-id",
                ]))
                .collect::<Vec<_>>(),
        )
        .expose_headers(
            [
                header::LOCATION,
                header::CONTENT_DISPOSITION,
                header::RETRY_AFTER,
            ]
            .into_iter()
            .chain(names(&[
                "upload-offset",
                "upload-length",
                "upload-metadata",
                "upload-expires",
                "tus-resumable",
                "tus-version",
                "tus-extension",
                "tus-max-size",
                "tus-checksum-algorithm",
                "job-id",
                "callback-secret",
            ]))
            .collect::<Vec<_>>(),
        )
        .max_age(std::time::Duration::from_secs(3600))
}
