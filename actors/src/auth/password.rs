//! Password hashing (bcrypt, as the reference stores them) and the rules a
//! new password must meet. Hashing is deliberately slow, so it runs on the
//! blocking pool, never on an async worker thread.

use super::AuthError;

/// bcrypt only reads the first 72 bytes; longer passwords would silently
/// collide, so they are refused.
const MAX_PASSWORD_BYTES: usize = 72;
const MIN_PASSWORD_CHARS: usize = 8;

pub fn check_rules(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::BadInput(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::BadInput(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

pub fn check_email(email: &str) -> Result<(), AuthError> {
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    if valid {
        Ok(())
    } else {
        Err(AuthError::BadInput(
            "email must be an address like name@example.com".into(),
        ))
    }
}

pub async fn hash(password: String, cost: u32) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?
        .map_err(|e| AuthError::Internal(e.to_string()))
}

/// Verifies against a stored hash; a malformed hash counts as a mismatch.
pub async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &stored).unwrap_or(false))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check_rules("short").is_err());
        assert!(check_rules("long enough").is_ok());
        assert!(check_rules(&"x".repeat(73)).is_err());
        assert!(check_email("a@b.example").is_ok());
        for bad in ["", "nobody", "@x", "a@", "a b@c", "a@b\r\nBcc: x@y"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn reference_bcrypt_rows_verify() {
        // Written by Python's bcrypt (as the reference does) for "password".
        let stored = "$2b$04$4HKnQ1QcyN4My/jy8gu/su/1MA3ZmJu/4FIUUDIuTFxaoeanwTm2e".to_owned();
        assert!(verify("password".into(), stored.clone()).await);
        assert!(!verify("wrong".into(), stored).await);
        let own = hash("password".into(), 4).await.unwrap();
        assert!(verify("password".into(), own).await);
        assert!(!verify("password".into(), "not-a-hash".into()).await);
    }
}
