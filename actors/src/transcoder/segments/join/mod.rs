//! Joining a split conversion's segments into one ordinary file of its
//! format, a file per format: each reads the segments' frames or packets
//! in order, keeps those its plan keeps, renumbers them as one stream and
//! writes the headers the whole file needs. Streamed: a frame or page at a
//! time, whatever the files' sizes.

mod flac;
mod mp3;
mod opus;
mod waveform;

use std::io;
use std::path::{Path, PathBuf};

use super::plan::SplitPlan;
use crate::output::Format;

pub use waveform::join_waveforms;

/// What a join wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// Samples (per channel) in the joined file, and their rate.
    pub samples: u64,
    pub rate: u32,
    /// The file's size.
    pub bytes: u64,
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("reading segment {index} ({}): {source}", .path.display())]
    Read {
        index: usize,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the joined file: {0}")]
    Write(#[source] io::Error),
    #[error("segment {index} cannot be joined: {what}")]
    Mismatch { index: usize, what: String },
    #[error("{0} segments cannot be joined")]
    Format(&'static str),
    #[error("checking the joined file: {0}")]
    Check(String),
    #[error("{expected} segments planned, {given} given")]
    Count { expected: usize, given: usize },
}

/// Joins `segments` (one file per part of `plan`, in order) into `output`
/// (created or truncated).
pub fn join(plan: &SplitPlan, segments: &[&Path], output: &Path) -> Result<Joined, JoinError> {
    if segments.len() != plan.parts.len() {
        return Err(JoinError::Count {
            expected: plan.parts.len(),
            given: segments.len(),
        });
    }
    match plan.format {
        Format::Flac => flac::join(plan, segments, output),
        Format::Opus => opus::join(plan, segments, output),
        Format::Mp3 => mp3::join(plan, segments, output),
        other => Err(JoinError::Format(other.label())),
    }
}

/// The error of reading segment `index`.
fn read_error(index: usize, path: &Path) -> impl FnOnce(io::Error) -> JoinError + '_ {
    move |source| JoinError::Read {
        index,
        path: path.to_owned(),
        source,
    }
}
