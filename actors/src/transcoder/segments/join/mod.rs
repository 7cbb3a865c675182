//! Joining a split conversion's segments into one ordinary file of its
//! format, a file per format: each reads the segments' frames or packets
//! in order, keeps those its plan keeps, renumbers them as one stream and
//! writes the headers the whole file needs. Streamed: a frame or page at a
//! time, whatever the files' sizes.

mod flac;
mod mp3;
mod opus;
mod waveform;

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use super::plan::SplitPlan;
use crate::output::Format;

pub use waveform::join_waveforms;

/// What a join wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Where a segment's bytes are: a file of its own, or a stretch of a file
/// that holds several (a conversion child is handed all of a job's
/// segments as one input).
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    pub path: &'a Path,
    /// Where it starts in the file, and how long it is (`None`: to the end).
    pub at: u64,
    pub len: Option<u64>,
}

impl<'a> Piece<'a> {
    /// All of the file at `path`.
    pub fn whole(path: &'a Path) -> Self {
        Self {
            path,
            at: 0,
            len: None,
        }
    }

    /// Its bytes, read from the start.
    fn open(&self) -> io::Result<io::Take<File>> {
        let mut file = File::open(self.path)?;
        file.seek(io::SeekFrom::Start(self.at))?;
        Ok(file.take(self.len.unwrap_or(u64::MAX)))
    }
}

/// Joins `segments` (one piece per part of `plan`, in order) into `output`
/// (created or truncated).
pub fn join(plan: &SplitPlan, segments: &[Piece], output: &Path) -> Result<Joined, JoinError> {
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
fn read_error<'a>(index: usize, piece: &'a Piece<'a>) -> impl FnOnce(io::Error) -> JoinError + 'a {
    move |source| JoinError::Read {
        index,
        path: piece.path.to_owned(),
        source,
    }
}
