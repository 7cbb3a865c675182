//! JWT issue and verification (HS256), in-process: verifying a token costs a
//! hash, not a network round trip. Claims are the reference's: `username`,
//! `exp`, `iat`, `admin`; plus `uid` (the user's stable id: a token of an
//! account deleted and made again on the same e-mail is not the new
//! one's), `nbf`, `gen` (the user's token generation, see `standings.rs`),
//! and `iss`/`aud` when configured.
//!
//! The algorithm is pinned: a token whose header names anything but HS256
//! (`none`, RS256 with the secret as a "public key", HS512) is refused
//! before its signature is looked at. The signature is compared in
//! constant time (the `hmac` crate's `verify`). `exp` and `nbf` are checked
//! with a few seconds of leeway for clock skew between nodes.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Shortest secret accepted for HS256 signing: the same as a link key's.
pub use vidaud_links::MIN_SECRET_LEN;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claims {
    pub username: String,
    pub exp: u64,
    pub iat: u64,
    pub admin: bool,
    /// The user's token generation when it was issued (0 in the
    /// reference's tokens): bumping it revokes the token.
    #[serde(default)]
    pub r#gen: u32,
    /// The user's id (none in the reference's tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The session id of a web app log-in (`POST /session`): logging out
    /// ends that session alone. None in API tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// What issued tokens carry and presented ones must.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    pub ttl_secs: u64,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
}

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

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
    rules: TokenRules,
}

impl TokenKeys {
    pub fn new(secret: &[u8], rules: TokenRules) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::SecretTooShort(secret.len()));
        }
        // Only HS256 is accepted: a token naming another algorithm (or
        // `none`) fails validation instead of being checked another way.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "iat"];
        match &rules.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &rules.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            rules,
        })
    }

    /// A token for `username` (user id `uid`).
    pub fn issue(
        &self,
        username: &str,
        uid: &str,
        admin: bool,
        generation: u32,
    ) -> Result<String, TokenError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            username: username.to_owned(),
            exp: iat + self.rules.ttl_secs,
            iat,
            admin,
            r#gen: generation,
            uid: Some(uid.to_owned()),
            nbf: Some(iat),
            iss: self.rules.issuer.clone(),
            aud: self.rules.audience.clone(),
            sid: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// A session's token: `claims` (of a token just issued) with a new
    /// random session id, signed again; and its claims.
    pub fn with_session(&self, claims: &Claims) -> Result<(String, Claims), TokenError> {
        let sid: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let claims = Claims {
            sid: Some(sid),
            ..claims.clone()
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn rules(ttl_secs: u64) -> TokenRules {
        TokenRules {
            ttl_secs,
            ..TokenRules::default()
        }
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    #[test]
    fn issued_token_verifies_with_reference_claims() {
        let keys = TokenKeys::new(SECRET, rules(60)).unwrap();
        let token = keys
            .issue("a@example.com", "656f0a0b0c0d0e0f10111213", false, 0)
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.username, "a@example.com");
        assert!(!claims.admin);
        assert_eq!(claims.exp, claims.iat + 60);
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(matches!(
            TokenKeys::new(b"short", rules(60)),
            Err(TokenError::SecretTooShort(5))
        ));
    }

    #[test]
    fn wrong_key_expired_and_other_algorithms_are_rejected() {
        let keys = TokenKeys::new(SECRET, rules(60)).unwrap();
        let other = TokenKeys::new(b"another-secret-another-secret-xx", rules(60)).unwrap();
        assert!(
            keys.verify(
                &other
                    .issue("u", "656f0a0b0c0d0e0f10111213", true, 0)
                    .unwrap()
            )
            .is_err()
        );

        let now = jsonwebtoken::get_current_timestamp();
        let expired = Claims {
            username: "u".into(),
            exp: now - 3600,
            iat: now - 7200,
            admin: false,
            r#gen: 0,
            uid: None,
            nbf: None,
            iss: None,
            aud: None,
            sid: None,
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

    #[test]
    fn alg_none_not_yet_valid_and_foreign_issuer_or_audience_are_rejected() {
        let keys = TokenKeys::new(SECRET, rules(60)).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let claims =
            serde_json::json!({"username": "u", "iat": now, "exp": now + 60, "admin": true});
        // alg none: header {"alg":"none"}, no signature.
        let b64 = |v: &serde_json::Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        );
        assert!(keys.verify(&none).is_err());
        assert!(keys.verify(&sign(&claims, Algorithm::HS256)).is_ok());
        let later = serde_json::json!({"username": "u", "iat": now, "exp": now + 600, "nbf": now + 300, "admin": false});
        assert!(keys.verify(&sign(&later, Algorithm::HS256)).is_err());

        let strict = TokenKeys::new(
            SECRET,
            TokenRules {
                ttl_secs: 60,
                issuer: Some("vidaud".into()),
                audience: Some("vidaud-api".into()),
            },
        )
        .unwrap();
        let own = strict
            .issue("u", "656f0a0b0c0d0e0f10111213", false, 0)
            .unwrap();
        let claims_back = strict.verify(&own).unwrap();
        assert_eq!(claims_back.aud.as_deref(), Some("vidaud-api"));
        // Without the claims, or with other values: refused.
        assert!(strict.verify(&sign(&claims, Algorithm::HS256)).is_err());
        let foreign = serde_json::json!({"username": "u", "iat": now, "exp": now + 60, "admin": true,
            "iss": "vidaud", "aud": "someone-else"});
        assert!(strict.verify(&sign(&foreign, Algorithm::HS256)).is_err());
        let wrong_iss = serde_json::json!({"username": "u", "iat": now, "exp": now + 60, "admin": true,
            "iss": "evil", "aud": "vidaud-api"});
        assert!(strict.verify(&sign(&wrong_iss, Algorithm::HS256)).is_err());
    }
}
