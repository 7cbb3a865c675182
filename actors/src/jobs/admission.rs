//! Admission: whether an owner has room for one more job, and holding it.
//!
//! A job counts against its owner's active-job limit from the moment it is
//! admitted (queued, converting, or still uploading), and an upload's bytes
//! against their storage quota. Both are checked and reserved before any
//! byte is read (an upload) or any state changes (a retry): the owner's
//! reservations (with their version) are read first, then their usage;
//! the reservation is added only if that version still holds (see
//! `backends::reservations` for why this order is safe across nodes), and
//! held until the job counts for itself. Unfinished resumable uploads count
//! with the size they declared.

use std::time::{Duration, Instant};

use crate::backends::{Backends, Reserved, StoreError, UserLimits};
use crate::domain::{Owner, Reservation, ReservationId, Timestamp};
use crate::settings::{HttpSettings, StorageSettings};

/// Why there is no room.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "you have {active} jobs queued, converting or uploading, the most allowed; \
         try again when one is done"
    )]
    TooManyJobs { active: u64 },
    #[error("storing it would exceed your storage quota of {quota} bytes")]
    QuotaExceeded { quota: u64 },
    /// So many of the owner's requests reserve at once that this one did
    /// not get a turn; another try soon will.
    #[error("too many of your uploads are starting at once; try again shortly")]
    Busy,
    #[error("reading the owner's usage")]
    Store(#[from] StoreError),
}

/// The rules admission applies: the node's defaults and the upload limits.
pub struct Rules<'a> {
    pub storage: &'a StorageSettings,
    pub http: &'a HttpSettings,
}

/// Room for one job: how many bytes its upload may hold, and the
/// reservation that holds its place until the job counts for itself.
pub struct Room {
    pub limit: u64,
    /// The owner's storage quota, when it (not the upload limit) is the bound.
    pub quota: Option<u64>,
    reserved: Option<Reserved>,
}

impl Room {
    /// Gives the room back (the job and its file now count, or it is
    /// abandoned); dropping the room does the same in the background.
    pub async fn release(mut self) {
        if let Some(reserved) = self.reserved.take() {
            reserved.release().await;
        }
    }
}

/// Compare-and-reserve rounds before a busy owner is told to try again.
const RESERVE_TRIES: u32 = 50;

/// How long a refusal waits for the owner's other admissions in flight to
/// settle (each finishes or fails) before it stands.
const SETTLE_WITHIN: Duration = Duration::from_secs(3);

/// Admits one job of `owner` (whose own limits are `limits`): `wanted`
/// bytes if its upload declared a size (a retry: none, `Some(0)`), else all
/// that is left. Over the active-job limit or the quota it is refused; else
/// the room is reserved.
pub async fn admit(
    backends: &Backends,
    rules: &Rules<'_>,
    owner: &Owner,
    limits: UserLimits,
    wanted: Option<u64>,
) -> Result<Room, Refused> {
    let max_upload = rules.http.max_upload_bytes;
    let quota = limits.quota_bytes_or(rules.storage.quota_bytes_per_user);
    let max_jobs = limits.max_active_jobs_or(rules.storage.max_active_jobs_per_user);
    if quota == 0 && max_jobs == 0 {
        return Ok(Room {
            limit: max_upload,
            quota: None,
            reserved: None,
        });
    }
    let store = backends.reservations.clone();
    let settle_by = Instant::now() + SETTLE_WITHIN;
    let mut tries = 0;
    while tries < RESERVE_TRIES {
        let now = Timestamp::now();
        // The reservations (and their version) first, then the usage they
        // are added to: see backends::reservations.
        let held = store.held(owner, now).await?;
        // Reading in that order, an admission finishing in between counts
        // twice (its reservation and its job or file): a refusal while
        // others are in flight waits for them to settle, and reads again.
        let in_flight = held.jobs > 0 && Instant::now() < settle_by;
        if max_jobs > 0 {
            let active = backends.jobs.active_jobs(owner).await?;
            let active = active.saturating_add(u64::from(held.jobs));
            if active >= max_jobs && in_flight {
                settle().await;
                continue;
            }
            if active >= max_jobs {
                return Err(Refused::TooManyJobs { active });
            }
        }
        let (limit, bound) = if quota == 0 {
            (max_upload, None)
        } else {
            let stored = backends.blobs.usage(owner).await?;
            let unfinished = backends.uploads.reserved(owner).await?;
            let used = stored.saturating_add(unfinished).saturating_add(held.bytes);
            let left = quota.saturating_sub(used);
            if left == 0 && in_flight {
                settle().await;
                continue;
            }
            if left == 0 {
                return Err(Refused::QuotaExceeded { quota });
            }
            (max_upload.min(left), (left < max_upload).then_some(quota))
        };
        // What the upload may send: what it declared, within the room.
        let expected = wanted.map_or(limit, |w| w.min(limit));
        let bytes = if quota == 0 { 0 } else { expected };
        let reservation = Reservation {
            id: ReservationId::new(),
            owner: owner.to_owned(),
            bytes,
            jobs: 1,
            until: now.plus(longest_upload(rules.http, expected)),
        };
        if store
            .add_if_unchanged(&reservation, held.version, now)
            .await?
        {
            return Ok(Room {
                limit: if quota == 0 { limit } else { bytes },
                quota: bound,
                reserved: Some(Reserved::new(store, reservation)),
            });
        }
        // Another admission of this owner reserved meanwhile: read again.
        tries += 1;
        tokio::time::sleep(Duration::from_millis(
            1 + u64::from(rand::random::<u8>() % 8),
        ))
        .await;
    }
    Err(Refused::Busy)
}

/// A pause before reading an owner's usage and reservations again.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(
        20 + u64::from(rand::random::<u8>() % 20),
    ))
    .await;
}

/// The longest an upload of `bytes` may take before it is cut off as too
/// slow (`http.min_upload_bytes_per_sec` after the first idle period), and
/// a minute: how long its reservation counts if nobody releases it.
fn longest_upload(settings: &HttpSettings, bytes: u64) -> Duration {
    let idle = settings.body_idle_secs.max(1);
    let transfer = match settings.min_upload_bytes_per_sec {
        0 => 24 * 3600,
        rate => bytes / rate,
    };
    Duration::from_secs(idle + transfer + 60)
}
