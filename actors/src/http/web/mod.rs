//! The web app: a page served by the node itself at `/`, for people
//! without curl. Its files are compiled into the binary (`assets/`), so the
//! page asks no other host for anything and a node needs no files beside
//! its binary; every answer carries a Content-Security-Policy that allows
//! only this origin's own scripts, styles and connections.
//!
//! The page is a client of the public API like any other (it adds nothing
//! the API cannot do), apart from its session (`session.rs`): the same JWT,
//! kept in an `HttpOnly` `SameSite=Strict` cookie with a CSRF token.
//!
//! Architecture Invariant: nothing here knows a backend; the page talks to
//! the API over HTTP only.

pub mod session;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// The body's fingerprint, made at compile time.
    etag: u64,
}

/// An asset from `assets/`, by name and type.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("assets/", $name)),
            etag: fingerprint(include_str!(concat!("assets/", $name))),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("tus.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// Only this origin's own files and connections; no inline script or
/// style, no frames, no plugins, forms post nowhere else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; media-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/app/{name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move {
                serve(&name, &headers)
            }),
        )
        .route(
            "/session",
            get(session::show)
                .post(session::create)
                .delete(session::delete),
        )
}

/// An asset with its security headers; revalidated on every load (`ETag`),
/// so a new binary's page is never mixed with an old one's script.
fn serve(name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found("page file"))?;
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = headers
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    let security = [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    for (name, value) in security {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        ETAG,
        HeaderValue::from_str(&etag).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// FNV-1a: a content fingerprint for the ETag (not a security boundary).
const fn fingerprint(body: &str) -> u64 {
    let bytes = body.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            let named = page.contains(&format!("/app/{}", asset.name))
                || ASSETS
                    .iter()
                    .any(|a| a.body.contains(&format!("./{}", asset.name)));
            assert!(named, "{} is served but never used", asset.name);
        }
    }
}
