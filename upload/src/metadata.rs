//! `Upload-Metadata`: comma-separated `key base64(value)` pairs (tus 1.0.0;
//! a key alone has an empty value).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest `Upload-Metadata` kept (the file name and a few options).
pub const MAX_METADATA_BYTES: usize = 4096;

/// Why `Upload-Metadata` was refused; names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes")]
    TooLong,
    #[error("the metadata value of `{0}` is not base64")]
    NotBase64(String),
    #[error("the metadata value of `{0}` is not UTF-8 text")]
    NotText(String),
}

impl MetadataError {
    /// The key at fault, if one is.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::TooLong => None,
            Self::NotBase64(key) | Self::NotText(key) => Some(key),
        }
    }
}

/// The header's pairs, decoded, in order.
pub fn metadata_pairs(raw: &str) -> Result<Vec<(String, String)>, MetadataError> {
    if raw.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLong);
    }
    raw.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| MetadataError::NotBase64(key.to_owned()))?;
            let value =
                String::from_utf8(bytes).map_err(|_| MetadataError::NotText(key.to_owned()))?;
            Ok((key.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_in_order_and_refusals_name_the_key() {
        let raw = format!(
            "filename {},empty, format {}",
            STANDARD.encode("a.mp4"),
            STANDARD.encode("opus")
        );
        assert_eq!(
            metadata_pairs(&raw).unwrap(),
            [
                ("filename".to_owned(), "a.mp4".to_owned()),
                ("empty".to_owned(), String::new()),
                ("format".to_owned(), "opus".to_owned()),
            ]
        );
        assert_eq!(
            metadata_pairs("filename !!").unwrap_err().key(),
            Some("filename")
        );
        let not_text = format!("title {}", STANDARD.encode([0xff, 0xfe]));
        assert_eq!(
            metadata_pairs(&not_text).unwrap_err(),
            MetadataError::NotText("title".into())
        );
        assert_eq!(
            metadata_pairs(&"a".repeat(5000)).unwrap_err(),
            MetadataError::TooLong
        );
    }
}
