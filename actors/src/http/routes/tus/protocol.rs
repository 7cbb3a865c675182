//! The tus 1.0.0 protocol's headers: what the server advertises, and the
//! parsing of what a client sends (`Upload-Length`, `Upload-Offset`,
//! `Upload-Metadata`, `Upload-Checksum`), each refusal a problem answer
//! that names the header.

use axum::http::HeaderMap;
use sha1::Digest as _;
use vidaud_upload::Algorithm;

use crate::domain::Timestamp;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::routes::upload::{CALLBACK_FIELD, sanitize_filename};
use crate::output::OutputOptions;

pub const RESUMABLE: &str = "Tus-Resumable";
pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// The only body type a PATCH (or a creation with upload) may have.
pub const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// The header saying which job a completed upload became.
pub const JOB_ID: &str = "Job-Id";
/// The header that gives, once, the secret of the job's `callback_url`.
pub const CALLBACK_SECRET: &str = "Callback-Secret";

/// Every request but OPTIONS names the protocol version it speaks.
pub fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(VERSION) => Ok(()),
        Some(other) => Err(ApiError::of_kind(
            ProblemKind::TusVersion,
            format!("tus version {other:?} is not supported; this server speaks {VERSION}"),
        )),
        None => Err(ApiError::of_kind(
            ProblemKind::TusVersion,
            format!("send the header {RESUMABLE}: {VERSION}"),
        )),
    }
}

/// A non-negative integer header; `None` when absent.
pub fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("the header {name} must be a non-negative integer"),
            )
        })
}

/// Whether the request's body is an upload's bytes.
pub fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == OFFSET_STREAM)
}

/// What `Upload-Metadata` says about the upload.
#[derive(Debug, Default)]
pub struct Metadata {
    pub filename: String,
    pub content_type: Option<String>,
    pub output: OutputOptions,
    /// Where the job's events go (`callback_url`), not yet checked.
    pub callback_url: Option<String>,
    /// The header as sent, echoed on HEAD.
    pub raw: String,
}

/// Parses `Upload-Metadata` (`vidaud_upload::metadata_pairs`):
/// `filename` (or `name`) and `filetype` (or `type`) describe the file;
/// `callback_url` asks for the job's events to be POSTed there;
/// every other key must be an output option of `POST /upload`, checked
/// here, so a bad option is refused before any byte is sent.
pub fn metadata(headers: &HeaderMap) -> Result<Metadata, ApiError> {
    let raw = match headers.get("Upload-Metadata") {
        None => "",
        Some(value) => value
            .to_str()
            .map_err(|_| ApiError::invalid("Upload-Metadata must be ASCII"))?,
    };
    let pairs = vidaud_upload::metadata_pairs(raw).map_err(|e| match e.key() {
        Some(key) => ApiError::invalid_field(key, e.to_string()),
        None => ApiError::invalid(e.to_string()),
    })?;
    let mut meta = Metadata {
        raw: raw.to_owned(),
        ..Metadata::default()
    };
    for (key, value) in pairs {
        let key = key.as_str();
        match key {
            "filename" | "name" => meta.filename = sanitize_filename(&value),
            "filetype" | "type" => {
                meta.content_type = Some(value).filter(|v| !v.is_empty() && v.len() <= 255)
            }
            CALLBACK_FIELD => meta.callback_url = Some(value),
            option => meta.output.set(option, &value)?,
        }
    }
    meta.output.validate()?;
    if meta.filename.is_empty() {
        meta.filename = sanitize_filename("");
    }
    Ok(meta)
}

/// What `Upload-Checksum` says a request's body must hash to.
pub struct Expected {
    algorithm: Algorithm,
    digest: Vec<u8>,
}

/// A request body's running hash, for [`Expected`].
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Expected {
    /// `Upload-Checksum: <algorithm> <base64 digest>`, if given.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get("Upload-Checksum") else {
            return Ok(None);
        };
        let bad = |message: String| ApiError::new(axum::http::StatusCode::BAD_REQUEST, message);
        let text = value
            .to_str()
            .map_err(|_| bad("Upload-Checksum must be ASCII".to_owned()))?;
        let (algorithm, digest) = vidaud_upload::checksum(text).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Self { algorithm, digest }))
    }

    pub fn hasher(&self) -> Hasher {
        match self.algorithm {
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn matches(&self, hasher: Hasher) -> bool {
        let digest = match hasher {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        digest == self.digest
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }
}

/// A time as an HTTP date (`Upload-Expires`).
pub fn http_date(time: Timestamp) -> String {
    let millis = u64::try_from(time.millis()).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    #[test]
    fn metadata_names_files_and_options() {
        let raw = format!(
            "filename {},filetype {},format {}",
            STANDARD.encode("../clip.mp4"),
            STANDARD.encode("video/mp4"),
            STANDARD.encode("opus")
        );
        let meta = metadata(&with("Upload-Metadata", &raw)).unwrap();
        assert_eq!(meta.filename, "clip.mp4");
        assert_eq!(meta.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(meta.output.format.name(), "opus");
        assert_eq!(meta.raw, raw);
    }

    #[test]
    fn a_bad_option_is_named() {
        let raw = format!("bitrate {}", STANDARD.encode("7"));
        let error = metadata(&with("Upload-Metadata", &raw)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("bitrate"));
        let error = metadata(&with("Upload-Metadata", "colour eWVz")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("colour"));
        let error = metadata(&with("Upload-Metadata", "filename !!")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("filename"));
    }

    #[test]
    fn checksums() {
        let digest = STANDARD.encode(sha1::Sha1::digest(b"hello"));
        let expected = Expected::from_headers(&with("Upload-Checksum", &format!("sha1 {digest}")))
            .unwrap()
            .unwrap();
        let mut hasher = expected.hasher();
        hasher.update(b"hel");
        hasher.update(b"lo");
        assert!(expected.matches(hasher));
        let mut wrong = expected.hasher();
        wrong.update(b"hello!");
        assert!(!expected.matches(wrong));
        assert!(Expected::from_headers(&with("Upload-Checksum", "md5 AAAA")).is_err());
        assert!(Expected::from_headers(&with("Upload-Checksum", "sha1 AAAA")).is_err());
    }
}
