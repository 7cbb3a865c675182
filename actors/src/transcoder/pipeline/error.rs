//! Why a conversion failed, and which failures are facts about the input.

use std::time::Duration;

use gstreamer::glib;

/// Why a conversion did not produce audio. `is_permanent` errors are facts
/// about the input: trying again gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscodeError {
    #[error("the file is not a recognised audio or video format")]
    NotMedia,
    #[error("the file has no audio track")]
    NoAudio,
    #[error("the file has {found} audio track(s); audio_track {asked} does not exist")]
    NoSuchTrack { asked: u32, found: u32 },
    #[error("the input is {0:?} long; the limit is {1:?}")]
    TooLong(Duration, Duration),
    #[error("nothing to convert: the trim starts at or after the end of the audio")]
    EmptyTrim,
    #[error("no decoder for this file's audio: {0}")]
    Unsupported(String),
    #[error("the file could not be decoded: {0}")]
    Decode(String),
    #[error("the input file could not be read: {0}")]
    Input(String),
    #[error("the output could not be written: {0}")]
    Output(String),
    #[error("no progress for {0:?}: the conversion stalled")]
    Stalled(Duration),
    #[error("the conversion took longer than the limit of {0:?}")]
    TimedOut(Duration),
    #[error("the conversion was cancelled")]
    Cancelled,
    #[error("internal transcoder error: {0}")]
    Internal(String),
    /// A split conversion's segments did not join (see `segments::join`).
    #[error("the segments could not be joined: {0}")]
    Join(String),
    /// The conversion child died by a signal (named).
    #[error("the converter crashed ({0}) on this input")]
    Crashed(String),
    #[error("the conversion used more than its limit of {0} MiB of memory")]
    MemoryLimit(u64),
    #[error("the conversion used more than its limit of {0} s of CPU time")]
    CpuLimit(u64),
    #[error("the audio grew past the output limit of {0} MiB")]
    OutputLimit(u64),
    /// The child ended without an outcome, or said something malformed.
    #[error("the converter broke off: {0}")]
    Protocol(String),
    /// A crash (as above) on two runs of the same input.
    #[error("{0}, twice: the input is refused")]
    Poison(Box<TranscodeError>),
}

impl TranscodeError {
    /// The conversion child died or misbehaved: a fact about the input if
    /// it happens again (see `attempt.rs`), a fluke if it does not.
    pub fn is_crash(&self) -> bool {
        matches!(
            self,
            TranscodeError::Crashed(_)
                | TranscodeError::MemoryLimit(_)
                | TranscodeError::CpuLimit(_)
                | TranscodeError::OutputLimit(_)
                | TranscodeError::Protocol(_)
        )
    }

    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TranscodeError::NotMedia
                | TranscodeError::NoAudio
                | TranscodeError::NoSuchTrack { .. }
                | TranscodeError::TooLong(..)
                | TranscodeError::EmptyTrim
                | TranscodeError::Unsupported(_)
                | TranscodeError::Decode(_)
                | TranscodeError::TimedOut(_)
                | TranscodeError::Join(_)
                | TranscodeError::Poison(_)
        )
    }
}

impl From<glib::Error> for TranscodeError {
    fn from(e: glib::Error) -> Self {
        TranscodeError::Internal(e.to_string())
    }
}

impl From<glib::BoolError> for TranscodeError {
    fn from(e: glib::BoolError) -> Self {
        TranscodeError::Internal(e.to_string())
    }
}
