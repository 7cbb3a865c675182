//! Why a conversion failed, and which failures are facts about the input.

use std::time::Duration;

use gstreamer::glib;

/// Why a conversion did not produce audio. `is_permanent` errors are facts
/// about the input: trying again gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

impl TranscodeError {
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
