//! Signed download links: a link to one audio file that carries its own
//! proof, so a person can click it in a mail without logging in.
//!
//! A link is `/download?fid=<id>&exp=<unix seconds>&kid=<key id>&sig=<mac>`
//! where the MAC is HMAC-SHA256, keyed by the named link key, over the file
//! id, the expiry and the key id (base64url, unpadded). Link keys are their
//! own secrets (`auth.link_keys`, `id:secret`, the first signs, all
//! verify), so they rotate without logging anyone out: add a new key in
//! front, keep the old one while its links should still work, then drop it.
//! With none configured, one key is derived from the JWT secret by HMAC
//! (never the secret itself); every node with the same secret derives the
//! same key. Verification compares in constant time (`hmac`'s `verify`).
//!
//! A crate of its own, with no dependency on the node: a link's parameters
//! come from anyone who has (or guesses) a URL, so it is fuzzed (`fuzz/`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest secret taken: a link key's, and the JWT secret's (the
/// node's token keys take this one).
pub const MIN_SECRET_LEN: usize = 32;

type Signer = Hmac<Sha256>;

/// The id of the key derived from the JWT secret.
pub const DERIVED_KEY_ID: &str = "j0";

/// Why a link does not open its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this download link expired; ask for a new one (POST /jobs/{{id}}/link)")]
    Expired,
    #[error("this download link was signed with a key no longer in use; ask for a new one")]
    UnknownKey,
    #[error("this download link has been altered or is incomplete")]
    BadSignature,
}

/// A configured link key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LinkKeyError {
    #[error("auth.link_keys entry {0}: expected `id:secret`")]
    Malformed(usize),
    #[error(
        "auth.link_keys key `{id}`: the secret is {len} bytes; it must be at least {MIN_SECRET_LEN}"
    )]
    TooShort { id: String, len: usize },
    #[error("auth.link_keys key id `{0}` is used twice")]
    Duplicate(String),
    #[error("auth.link_keys key id `{0}`: use letters, digits, `-` and `_` only")]
    BadId(String),
}

/// What a signed link adds to the file id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkProof {
    pub expires: u64,
    pub key_id: String,
    pub signature: String,
}

impl LinkProof {
    /// The query string of a link to `fid`.
    pub fn query(&self, fid: &str) -> String {
        format!(
            "fid={fid}&exp={}&kid={}&sig={}",
            self.expires, self.key_id, self.signature
        )
    }
}

pub struct LinkKeys {
    /// The first signs; every one verifies.
    keys: Vec<(String, Vec<u8>)>,
    /// How long a mailed link works, seconds.
    pub ttl_secs: u64,
}

impl LinkKeys {
    /// From `id:secret` entries, or, with none, one key derived from the
    /// JWT secret.
    pub fn new(
        configured: &[String],
        jwt_secret: &[u8],
        ttl_secs: u64,
    ) -> Result<Self, LinkKeyError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (n, entry) in configured.iter().enumerate() {
            let (id, secret) = entry.split_once(':').ok_or(LinkKeyError::Malformed(n))?;
            let id = id.trim().to_owned();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(LinkKeyError::BadId(id));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(LinkKeyError::TooShort {
                    id,
                    len: secret.len(),
                });
            }
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(LinkKeyError::Duplicate(id));
            }
            keys.push((id, secret.as_bytes().to_vec()));
        }
        if keys.is_empty() {
            let derived = mac(jwt_secret, b"vidaud download links")
                .finalize()
                .into_bytes();
            keys.push((DERIVED_KEY_ID.to_owned(), derived.to_vec()));
        }
        Ok(Self { keys, ttl_secs })
    }

    /// A proof for `fid` that lapses at `expires` (Unix seconds).
    pub fn sign(&self, fid: &str, expires: u64) -> LinkProof {
        let (key_id, key) = &self.keys[0];
        let tag = message(key, fid, expires, key_id).finalize().into_bytes();
        LinkProof {
            expires,
            key_id: key_id.clone(),
            signature: URL_SAFE_NO_PAD.encode(tag),
        }
    }

    /// The absolute link to `fid` under `public_url`, lapsing at `expires`.
    pub fn url(&self, public_url: &str, fid: &str, expires: u64) -> String {
        let base = public_url.trim_end_matches('/');
        format!("{base}/download?{}", self.sign(fid, expires).query(fid))
    }

    /// Whether `proof` opens `fid` at `now` (Unix seconds).
    pub fn verify(&self, fid: &str, proof: &LinkProof, now: u64) -> Result<(), LinkError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == proof.key_id)
            .ok_or(LinkError::UnknownKey)?;
        let tag = URL_SAFE_NO_PAD
            .decode(proof.signature.as_bytes())
            .map_err(|_| LinkError::BadSignature)?;
        message(key, fid, proof.expires, &proof.key_id)
            .verify_slice(&tag)
            .map_err(|_| LinkError::BadSignature)?;
        // Checked after the signature, so an altered expiry reads as altered.
        if proof.expires <= now {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

fn mac(key: &[u8], data: &[u8]) -> Signer {
    // HMAC takes a key of any length.
    let mut signer = <Signer as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    signer.update(data);
    signer
}

fn message(key: &[u8], fid: &str, expires: u64, key_id: &str) -> Signer {
    let mut signer = mac(key, b"vidaud link v1\0");
    for part in [
        fid.as_bytes(),
        b"\0",
        expires.to_string().as_bytes(),
        b"\0",
        key_id.as_bytes(),
    ] {
        signer.update(part);
    }
    signer
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &[u8] = b"0123456789abcdef0123456789abcdef";
    const FID: &str = "656f0a0b0c0d0e0f10111299";

    fn keys(entries: &[&str]) -> LinkKeys {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        LinkKeys::new(&entries, JWT, 60).unwrap()
    }

    #[test]
    fn a_signed_link_opens_its_file_until_it_expires() {
        let keys = keys(&[]);
        let proof = keys.sign(FID, 1000);
        assert_eq!(proof.key_id, DERIVED_KEY_ID);
        assert_eq!(keys.verify(FID, &proof, 999), Ok(()));
        assert_eq!(keys.verify(FID, &proof, 1000), Err(LinkError::Expired));
    }

    #[test]
    fn every_alteration_is_refused() {
        let keys = keys(&[]);
        let proof = keys.sign(FID, 1000);
        let other = "656f0a0b0c0d0e0f10111298";
        assert_eq!(keys.verify(other, &proof, 1), Err(LinkError::BadSignature));
        let later = LinkProof {
            expires: 5000,
            ..proof.clone()
        };
        assert_eq!(keys.verify(FID, &later, 1), Err(LinkError::BadSignature));
        let mut flipped = proof.clone();
        flipped.signature.replace_range(
            0..1,
            if proof.signature.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        assert_eq!(keys.verify(FID, &flipped, 1), Err(LinkError::BadSignature));
        let unknown = LinkProof {
            key_id: "k9".into(),
            ..proof
        };
        assert_eq!(keys.verify(FID, &unknown, 1), Err(LinkError::UnknownKey));
    }

    #[test]
    fn keys_rotate_the_first_signs_all_verify() {
        let k1 = "k1:11111111111111111111111111111111";
        let k2 = "k2:22222222222222222222222222222222";
        let old = keys(&[k1]).sign(FID, 1000);
        let both = keys(&[k2, k1]);
        assert_eq!(both.verify(FID, &old, 1), Ok(()));
        assert_eq!(both.sign(FID, 1000).key_id, "k2");
        assert_eq!(keys(&[k2]).verify(FID, &old, 1), Err(LinkError::UnknownKey));
        // The derived key is not the JWT secret itself.
        assert_ne!(keys(&[]).keys[0].1, JWT);
    }

    #[test]
    fn bad_configuration_is_named() {
        let bad = |entry: &str| {
            LinkKeys::new(&[entry.to_owned()], JWT, 60)
                .err()
                .map(|e| e.to_string())
        };
        assert!(bad("nocolon").unwrap().contains("id:secret"));
        assert!(bad("k1:short").unwrap().contains("at least 32"));
        assert!(
            bad("k 1:11111111111111111111111111111111")
                .unwrap()
                .contains("letters")
        );
    }
}
