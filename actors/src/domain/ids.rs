//! Ids of jobs, files and users: 12 bytes, written as 24 lowercase hex digits.
//!
//! The same value in every backend: the cluster stores it as a MongoDB
//! ObjectId, the embedded one as its hex text, so a job or file keeps its id
//! when a node moves from one to the other (and old links stay valid). The
//! layout is an ObjectId's (4 bytes of seconds since the epoch, 5 random
//! bytes per process, a 3-byte counter), so ids sort by creation time: the
//! job list pages by id.
//!
//! Ids are parsed once, where text comes in (routes, queue messages, the
//! CLI); inside the node they are values.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::time::Timestamp;

/// What kind of thing an [`Id`] names; only a marker.
pub trait IdKind: 'static {
    /// In error messages: "job", "file".
    const WHAT: &'static str;
}

#[derive(Debug)]
pub enum JobKind {}
impl IdKind for JobKind {
    const WHAT: &'static str = "job";
}

#[derive(Debug)]
pub enum FileKind {}
impl IdKind for FileKind {
    const WHAT: &'static str = "file";
}

#[derive(Debug)]
pub enum UserKind {}
impl IdKind for UserKind {
    const WHAT: &'static str = "user";
}

/// A 12-byte id of a `K`.
pub struct Id<K> {
    bytes: [u8; 12],
    kind: PhantomData<fn() -> K>,
}

pub type JobId = Id<JobKind>;
pub type FileId = Id<FileKind>;
/// A user's stable id: what owns jobs, files, uploads and webhooks (the
/// e-mail is only an attribute of the account).
pub type UserId = Id<UserKind>;

/// Text that is not 24 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {what} id (24 hex digits): {text:?}")]
pub struct IdError {
    pub what: &'static str,
    pub text: String,
}

impl<K: IdKind> Id<K> {
    /// A fresh id, unique across processes and machines.
    pub fn new() -> Self {
        let mut bytes = [0u8; 12];
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(&process_unique()[..]);
        let count = counter().fetch_add(1, Ordering::Relaxed);
        bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        Self::from_bytes(bytes)
    }

    pub fn parse(text: &str) -> Result<Self, IdError> {
        let error = || IdError {
            what: K::WHAT,
            text: text.chars().take(64).collect(),
        };
        let raw = text.as_bytes();
        if raw.len() != 24 {
            return Err(error());
        }
        let mut bytes = [0u8; 12];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(error)?;
            let low = hex_value(pair[1]).ok_or_else(error)?;
            bytes[i] = high << 4 | low;
        }
        Ok(Self::from_bytes(bytes))
    }
}

impl<K> Id<K> {
    pub const fn from_bytes(bytes: [u8; 12]) -> Self {
        Self {
            bytes,
            kind: PhantomData,
        }
    }

    pub const fn bytes(&self) -> [u8; 12] {
        self.bytes
    }

    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// When the id was minted (its first four bytes, seconds since the epoch).
    pub fn minted(&self) -> Timestamp {
        let secs = u32::from_be_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]]);
        Timestamp::from_millis(i64::from(secs) * 1000)
    }

    /// The smallest id minted at `time` (whole seconds): every id minted
    /// before it sorts below this one.
    pub fn first_minted_at(time: Timestamp) -> Self {
        let secs = u32::try_from(time.millis().div_euclid(1000).max(0)).unwrap_or(u32::MAX);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        Self::from_bytes(bytes)
    }
}

impl<K: IdKind> Default for Id<K> {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Five random bytes chosen once per process.
fn process_unique() -> &'static [u8; 5] {
    static UNIQUE: OnceLock<[u8; 5]> = OnceLock::new();
    UNIQUE.get_or_init(rand::random)
}

fn counter() -> &'static AtomicU32 {
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    COUNTER.get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
}

// Derives would demand the bounds of `K`; an id is plain bytes whatever it names.
impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Id<K> {}
impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<K> Eq for Id<K> {}
impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}
impl<K> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.bytes {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<K: IdKind> FromStr for Id<K> {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        Self::parse(text)
    }
}

impl<K> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de, K: IdKind> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::text::parsed(deserializer, Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_knows_when_it_was_minted() {
        let id = FileId::new();
        let age = Timestamp::now().millis() - id.minted().millis();
        assert!((0..2000).contains(&age), "{age}");
        let floor = FileId::first_minted_at(id.minted());
        assert!(floor.bytes() <= id.bytes());
        assert!(
            FileId::first_minted_at(id.minted().plus(std::time::Duration::from_secs(1))).bytes()
                > id.bytes()
        );
    }

    #[test]
    fn hex_round_trip_and_refusals() {
        let id = JobId::new();
        assert_eq!(JobId::parse(&id.to_hex()), Ok(id));
        assert_eq!(id.to_hex().len(), 24);
        assert_eq!(
            FileId::parse("656F0A0B0C0D0E0F10111213").map(|f| f.to_hex()),
            Ok("656f0a0b0c0d0e0f10111213".to_owned())
        );
        for bad in [
            "",
            "x",
            "656f",
            "zz6f0a0b0c0d0e0f10111213",
            "é56f0a0b0c0d0e0f1011121",
        ] {
            assert!(JobId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fresh_ids_differ_and_sort_by_creation() {
        let ids: Vec<JobId> = (0..1000).map(|_| JobId::new()).collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        // Seconds first: later ids never sort before earlier ones' second.
        assert!(
            ids.windows(2)
                .all(|w| w[0].bytes()[..4] <= w[1].bytes()[..4])
        );
    }

    #[test]
    fn serialised_as_hex_text() {
        let id = FileId::parse("656f0a0b0c0d0e0f10111213").expect("id");
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(json, "\"656f0a0b0c0d0e0f10111213\"");
        assert_eq!(serde_json::from_str::<FileId>(&json).expect("back"), id);
        assert!(serde_json::from_str::<FileId>("\"nope\"").is_err());
    }
}
