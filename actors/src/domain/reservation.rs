//! A reservation: room a user's upload in progress holds against their
//! storage quota and active-job limit, from before its first byte is read
//! until its file and job are stored (when they count for themselves).
//!
//! Checking "is there room?" and then writing lets two concurrent uploads
//! both see the same room; a reservation is taken only if the user's
//! reservations did not change since their usage was read (a version,
//! compared and bumped in one atomic step), so concurrent uploads, on one
//! node or many, are admitted one after another. A reservation carries its
//! own expiry (the longest its upload may take), so one left by a crashed
//! node stops counting on its own.

use super::ids::{Id, IdKind};
use super::owner::Owner;
use super::time::Timestamp;

#[derive(Debug)]
pub enum ReservationKind {}
impl IdKind for ReservationKind {
    const WHAT: &'static str = "reservation";
}

pub type ReservationId = Id<ReservationKind>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub owner: Owner,
    /// Bytes held against the quota.
    pub bytes: u64,
    /// Jobs held against the active-job limit (1 for an upload).
    pub jobs: u32,
    /// When it stops counting, released or not.
    pub until: Timestamp,
}

/// What a user's live reservations hold, and the version they were read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    pub version: u64,
    pub bytes: u64,
    pub jobs: u32,
}
