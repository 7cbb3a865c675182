//! `Upload-Checksum: <algorithm> <base64 digest>` (tus's checksum extension).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The checksum algorithms the server takes (`Tus-Checksum-Algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha1, Algorithm::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("Upload-Checksum must be `<algorithm> <base64 digest>`")]
    Shape,
    #[error("the checksum algorithm {0:?} is not supported (Tus-Checksum-Algorithm: sha1,sha256)")]
    Algorithm(String),
    #[error("the {} digest in Upload-Checksum is malformed", .0.name())]
    Digest(Algorithm),
}

/// The algorithm and digest the header names.
pub fn checksum(text: &str) -> Result<(Algorithm, Vec<u8>), ChecksumError> {
    let (name, encoded) = text.trim().split_once(' ').ok_or(ChecksumError::Shape)?;
    let algorithm = Algorithm::ALL
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or_else(|| ChecksumError::Algorithm(name.to_owned()))?;
    let digest = STANDARD
        .decode(encoded.trim())
        .ok()
        .filter(|d| d.len() == algorithm.digest_len())
        .ok_or(ChecksumError::Digest(algorithm))?;
    Ok((algorithm, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_and_digest() {
        let digest = [7u8; 20];
        let text = format!("sha1 {}", STANDARD.encode(digest));
        assert_eq!(checksum(&text).unwrap(), (Algorithm::Sha1, digest.to_vec()));
        assert_eq!(
            checksum("md5 AAAA").unwrap_err(),
            ChecksumError::Algorithm("md5".into())
        );
        assert_eq!(
            checksum("sha1 AAAA").unwrap_err(),
            ChecksumError::Digest(Algorithm::Sha1)
        );
        assert_eq!(checksum("sha1").unwrap_err(), ChecksumError::Shape);
    }
}
