//! Whose a job, file, resumable upload, webhook endpoint or reservation is.
//!
//! An account's stable id owns everything made since user ids. The one
//! other owner is the e-mail that owned data from before user ids when no
//! account took it over at start-up (`carry_over`): such data is nobody's,
//! the node's default limits bind it, and retention removes it in time.
//! When an account is erased, the tombstones of its deleted jobs forget
//! whose they were. All three are stored as text (an id as its 24 hex
//! digits; an e-mail always has an `@`, which no id has; a forgotten owner
//! as the empty text), so an owner is parsed once, where a record or
//! message is read or a caller is known, and text that is none of these is
//! refused there, never guessed at.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::UserId;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// An account.
    User(UserId),
    /// The e-mail of data from before user ids that no account took over.
    Unclaimed(String),
    /// Nobody any more: a deleted job's tombstone once its account was
    /// erased (`JobStore::forget_owner`).
    Forgotten,
}

/// Stored text that names no owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an owner (a user id of 24 hex digits, or an e-mail from before user ids): {text:?}")]
pub struct OwnerError {
    pub text: String,
}

impl Owner {
    /// The owner `stored` names: a user id, an e-mail (it has an `@`), or
    /// nobody (the empty text).
    pub fn parse(stored: &str) -> Result<Self, OwnerError> {
        if stored.is_empty() {
            return Ok(Self::Forgotten);
        }
        if let Ok(id) = UserId::parse(stored) {
            return Ok(Self::User(id));
        }
        let (local, domain) = stored.split_once('@').ok_or_else(|| OwnerError {
            text: stored.chars().take(64).collect(),
        })?;
        if local.is_empty() || domain.is_empty() {
            return Err(OwnerError {
                text: stored.chars().take(64).collect(),
            });
        }
        Ok(Self::Unclaimed(stored.to_owned()))
    }

    /// The account, if an account owns it.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            Self::Unclaimed(_) | Self::Forgotten => None,
        }
    }

    /// As it is stored and shown: the id's hex digits, the e-mail, or
    /// nothing.
    pub fn stored(&self) -> String {
        self.to_string()
    }
}

impl From<UserId> for Owner {
    fn from(id: UserId) -> Self {
        Self::User(id)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => fmt::Display::fmt(id, f),
            Self::Unclaimed(email) => f.write_str(email),
            Self::Forgotten => Ok(()),
        }
    }
}

impl std::str::FromStr for Owner {
    type Err = OwnerError;
    fn from_str(text: &str) -> Result<Self, OwnerError> {
        Self::parse(text)
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::text::parsed(deserializer, Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_an_email_or_nobody_and_nothing_else() {
        let id = UserId::new();
        assert_eq!(Owner::parse(&id.to_hex()), Ok(Owner::User(id)));
        assert_eq!(
            Owner::parse("old@example.com"),
            Ok(Owner::Unclaimed("old@example.com".to_owned()))
        );
        assert_eq!(Owner::parse(""), Ok(Owner::Forgotten));
        for bad in [
            " ",
            "nobody",
            "@example.com",
            "old@",
            "656f0a0b0c0d0e0f1011121",
        ] {
            assert!(Owner::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_as_it_was_read() {
        for text in [
            UserId::new().to_hex(),
            "old@example.com".to_owned(),
            String::new(),
        ] {
            let owner = Owner::parse(&text).expect("owner");
            assert_eq!(owner.stored(), text);
            let json = serde_json::to_string(&owner).expect("json");
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<Owner>(&json).expect("back"), owner);
        }
        assert!(serde_json::from_str::<Owner>("\"nobody\"").is_err());
    }

    #[test]
    fn only_an_account_is_a_user() {
        let id = UserId::new();
        assert_eq!(Owner::from(id).user(), Some(id));
        assert_eq!(Owner::parse("old@example.com").expect("owner").user(), None);
        assert_eq!(Owner::Forgotten.user(), None);
    }
}
