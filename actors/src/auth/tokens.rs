//! JWT issue and verification (HS256), in-process: verifying a token costs a
//! hash, not a network round trip. Claims are the reference's: `username`,
//! `exp`, `iat`, `admin`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Shortest secret accepted for HS256 signing.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub username: String,
    pub exp: u64,
    pub iat: u64,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the JWT secret is {0} bytes; it must be at least {MIN_SECRET_LEN}")]
    SecretTooShort(usize),
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::SecretTooShort(secret.len()));
        }
        // Only HS256 is accepted: a token naming another algorithm (or
        // `none`) fails validation instead of being checked another way.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        })
    }

    pub fn issue(&self, username: &str, admin: bool) -> Result<String, TokenError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            username: username.to_owned(),
            exp: iat + self.ttl_secs,
            iat,
            admin,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_token_verifies_with_reference_claims() {
        let keys = TokenKeys::new(SECRET, 60).unwrap();
        let token = keys.issue("a@example.com", false).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.username, "a@example.com");
        assert!(!claims.admin);
        assert_eq!(claims.exp, claims.iat + 60);
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(matches!(
            TokenKeys::new(b"short", 60),
            Err(TokenError::SecretTooShort(5))
        ));
    }

    #[test]
    fn wrong_key_expired_and_other_algorithms_are_rejected() {
        let keys = TokenKeys::new(SECRET, 60).unwrap();
        let other = TokenKeys::new(b"another-secret-another-secret-xx", 60).unwrap();
        assert!(keys.verify(&other.issue("u", true).unwrap()).is_err());

        let now = jsonwebtoken::get_current_timestamp();
        let expired = Claims {
            username: "u".into(),
            exp: now - 3600,
            iat: now - 7200,
            admin: false,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(keys.verify(&token).is_err());

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                exp: now + 60,
                iat: now,
                ..expired
            },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(keys.verify(&hs512).is_err());
        assert!(keys.verify("not.a.token").is_err());
    }
}
