//! The domain vocabulary every part of the node speaks: ids, times, the job
//! record and its states, owners, queue messages, job events, resumable uploads, a split
//! job's segments and loudness figures.
//!
//! Architecture Invariant: nothing here names a driver type (no bson, no
//! lapin, no SQL). Backends translate at their edge; an id or a time keeps
//! its value whichever backend holds it.

mod events;
mod ids;
mod job;
mod loudness;
mod messages;
mod owner;
mod reservation;
mod segment;
mod text;
mod time;
mod upload;
mod webhook;

pub use events::JobEvent;
pub use ids::{FileId, Id, IdError, IdKind, JobId, UserId};
pub use job::{AudioSummary, JobRecord, JobState, MailClaim, event_sequence};
pub use loudness::{Loudness, LoudnessReport, REPLAYGAIN_REFERENCE_LUFS, ReplayGainReport};
pub use messages::{Mp3Message, VideoMessage};
pub use owner::{Owner, OwnerError};
pub use reservation::{Held, Reservation, ReservationId};
pub use segment::{SegmentRecord, SegmentState, Segments, segment_file};
pub use time::Timestamp;
pub use upload::UploadRecord;
pub use webhook::{
    Attempt, Callback, Delivery, DeliveryId, DeliveryState, Endpoint, EndpointId, JobEventType,
    KEPT_ATTEMPTS,
};
