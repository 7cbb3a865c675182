//! MP3, both ways: the output branch's end (`output.rs`: LAME called
//! directly from a probe on the last element, `lame.rs`; our ID3v2.4 tag
//! with chapters and ReplayGain, `id3.rs`) and what an MP3 *input* needs
//! that GStreamer leaves out (its encoder delay and padding from the
//! Xing/LAME header, `gapless.rs`). The frame header (`frame.rs`) and the
//! tag's reading are shared with the split join (`segments::join::mp3`).
//!
//! Architecture Invariant: this folder is a room of the pipeline: it
//! imports from the pipeline (chapters, ReplayGain's tag names) and the
//! output options, never from the transcoder's actors, the backends or the
//! settings (it runs in the conversion child).

pub(crate) mod frame;
mod gapless;
pub(crate) mod id3;
mod lame;
mod output;

pub(super) use gapless::{InputGapless, read_input_gapless};
pub(super) use output::{Mp3Error, Mp3Output};
