//! Password hashing and the rules a new password must meet.
//!
//! The rules are NIST SP 800-63B's: a minimum length and no composition
//! rules (any printable character, spaces and emoji included), only not the
//! account's own address.
//!
//! New passwords are stored as argon2id PHC strings (`$argon2id$...`). Rows
//! the reference wrote hold bcrypt hashes (`$2b$...`): they still verify,
//! and [`Verified::Rehash`] tells the caller to store an argon2id hash of the
//! password it just checked, so a database migrates as its users log in.
//! Both verifications compare in constant time (argon2's `Output` and
//! bcrypt's hash comparison). Hashing is deliberately slow, so it runs on
//! the blocking pool, never on an async worker thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::AuthError;

const MIN_PASSWORD_CHARS: usize = 8;
/// Long enough for any passphrase, short enough that hashing one is cheap.
const MAX_PASSWORD_BYTES: usize = 256;

/// argon2id cost. The defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

impl HashCost {
    fn hasher(self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)
            .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

pub fn check_rules(password: &str, email: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AuthError::BadInput(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::BadInput(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(AuthError::BadInput(
            "password must not contain control characters".into(),
        ));
    }
    if password.eq_ignore_ascii_case(email)
        || email
            .split('@')
            .next()
            .is_some_and(|local| password.eq_ignore_ascii_case(local))
    {
        return Err(AuthError::BadInput(
            "password must not be your e-mail address".into(),
        ));
    }
    Ok(())
}

/// An address as RFC 5321 writes a mailbox (`local@domain`, ASCII), and
/// one the notifier's mail builder parses the same way, so a mail to an
/// address accepted here cannot fail on the address.
pub fn check_email(email: &str) -> Result<(), AuthError> {
    let valid = email.len() <= 254
        && email.is_ascii()
        && !email.chars().any(|c| c.is_ascii_control())
        && email.parse::<lettre::Address>().is_ok();
    if valid {
        Ok(())
    } else {
        Err(AuthError::BadInput(
            "email must be an address like name@example.com (ASCII; write an \
             international domain in its xn-- form)"
                .into(),
        ))
    }
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_now(password: &str, cost: HashCost) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(cost
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))?
        .to_string())
}

/// Hashes running at once: one per core. Each takes `memory_kib` (19 MiB
/// by default) and a core for tens of milliseconds, so more at once would
/// only add memory and make every one of them slower; the rest wait here
/// (the auth mailbox bounds how many wait).
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// Runs `work` (a hash) on the blocking pool once a hashing slot is free.
async fn in_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let _slot = hashing_slots()
        .acquire()
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))
}

pub async fn hash(password: String, cost: HashCost) -> Result<String, AuthError> {
    in_slot(move || hash_now(&password, cost)).await?
}

/// What checking a password against a stored hash found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Right password, stored in an older scheme (bcrypt) or at a lower
    /// cost: store a fresh hash.
    Rehash,
}

fn verify_now(password: &str, stored: &str, cost: HashCost) -> Verified {
    if stored.starts_with("$2") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verified::Rehash,
            _ => Verified::No,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified::No;
    };
    // The parameters are read from the PHC string, whatever they were.
    if Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verified::No;
    }
    let weaker = Params::try_from(&parsed)
        .is_ok_and(|p| p.m_cost() < cost.memory_kib || p.t_cost() < cost.iterations);
    if parsed.algorithm.as_str() != "argon2id" || weaker {
        Verified::Rehash
    } else {
        Verified::Yes
    }
}

/// Verifies against a stored hash; a malformed hash counts as a mismatch.
pub async fn verify(password: String, stored: String, cost: HashCost) -> Verified {
    in_slot(move || verify_now(&password, &stored, cost))
        .await
        .unwrap_or(Verified::No)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        memory_kib: 256,
        iterations: 1,
    };

    #[test]
    fn rules() {
        let email = "someone@example.com";
        assert!(check_rules("short", email).is_err());
        assert!(check_rules("long enough", email).is_ok());
        assert!(check_rules(&"x".repeat(300), email).is_err());
        assert!(check_rules("someone@example.com", email).is_err());
        assert!(check_rules("SOMEONE1", "someone1@example.com").is_err());
        assert!(check_rules("tab\there1", email).is_err());
        assert!(check_email("a@b.example").is_ok());
        assert!(check_email("first.last+tag@sub.example.org").is_ok());
        for bad in [
            "",
            "nobody",
            "@x",
            "a@",
            "a b@c",
            "a@b\r\nBcc: x@y",
            "a@@b.example",
            "a..b@c.example",
            "a@-b.example",
            "a@b..example",
            "Name <a@b.example>",
            "a@b.example\u{202e}",
            "\u{e9}@b.example",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn reference_bcrypt_rows_verify_and_ask_for_a_rehash() {
        // Written by Python's bcrypt (as the reference does) for "password".
        let stored = "$2b$04$4HKnQ1QcyN4My/jy8gu/su/1MA3ZmJu/4FIUUDIuTFxaoeanwTm2e".to_owned();
        assert_eq!(
            verify("password".into(), stored.clone(), CHEAP).await,
            Verified::Rehash
        );
        assert_eq!(verify("wrong".into(), stored, CHEAP).await, Verified::No);
    }

    #[tokio::test]
    async fn new_hashes_are_argon2id() {
        let own = hash("password".into(), CHEAP).await.unwrap();
        assert!(own.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{own}");
        assert_eq!(
            verify("password".into(), own.clone(), CHEAP).await,
            Verified::Yes
        );
        assert_eq!(
            verify("Password".into(), own.clone(), CHEAP).await,
            Verified::No
        );
        // Raising the configured cost asks for a rehash of older hashes.
        let stronger = HashCost {
            memory_kib: 512,
            iterations: 1,
        };
        assert_eq!(
            verify("password".into(), own, stronger).await,
            Verified::Rehash
        );
        assert_eq!(
            verify("password".into(), "not-a-hash".into(), CHEAP).await,
            Verified::No
        );
    }
}
