//! MP4 (ISO BMFF) boxes and the chapters in them: the few places where the
//! node looks inside an MP4 itself, on an untrusted input in the conversion
//! child (its Nero `chpl` chapters, else its QuickTime chapter track) and
//! in the M4A it wrote (chapters and freeform tags added, the AAC edit
//! list corrected).
//!
//! A crate of its own, with no dependency, because these are parsers of
//! bytes from outside: they are fuzzed (`fuzz/`) in seconds of build, and
//! they can know nothing of the node.
//!
//! Architecture Invariant: only headers are read on the way down, every
//! size is checked against its parent, and a body is read whole only when
//! it is small; reading never panics on any input (the fuzz targets say
//! so), it returns what it could make sense of or an I/O error.

pub mod boxes;
mod chapters;
mod quicktime;

use std::io::{Read, Seek};

pub use chapters::{
    append as append_chapters, read as read_chapters, read_from as read_chapters_from,
};

/// What box reading needs of a source: a file, or bytes in memory.
pub trait Source: Read + Seek {}

impl<T: Read + Seek + ?Sized> Source for T {}

/// One chapter: where it starts in the audio and its title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    pub start_ns: u64,
    pub title: String,
}
