//! Split conversions: a long input converted in segments, each a
//! conversion of its own that any worker can make, joined into one file
//! that cannot be told from a single pass's (the same samples, and no
//! join to hear).
//!
//! `plan.rs` decides whether to split and where to cut (bounds on frames
//! of the output and samples of the input); the pipeline converts one
//! segment (`pipeline::transcode_segment`: the tap keeps its input samples,
//! after a seek to near them where the container's times are exact);
//! `join/` makes the one file, a module per format. Architecture
//! Invariant: segments know nothing of jobs, queues or processes; who runs
//! the segments (`vidaud convert --jobs N`'s children) only hands files in
//! and out.

mod join;
mod plan;

pub use join::{JoinError, Joined, Piece, join, join_waveforms};
pub use plan::{
    FLAC_BLOCK, Part, SplitPlan, SplitSettings, Whole, joinable, mp3_frame_samples, plan,
};
