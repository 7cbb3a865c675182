//! Local spools: the video is copied from the blob store into an anonymous
//! temporary file so that demuxers get random access (an MP4 with its index
//! at the end must seek to the end first), and the audio is written to one
//! so that muxers can go back to the start (MP3 and FLAC headers, the M4A
//! index) before it is streamed to the blob store; the waveform data the
//! conversion makes beside it goes to a third.
//!
//! The file is unlinked from the moment it is created, so it has no name to
//! leak: when the worker finishes, crashes or is killed, the kernel frees it.
//! GStreamer opens it through `/proc/self/fd/N`. Memory stays bounded: the
//! copy moves one chunk at a time.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

pub struct Spool {
    /// Keeps the descriptor (and so the unlinked file) alive: `path` names
    /// it through /proc.
    file: std::fs::File,
    path: PathBuf,
}

/// The spool's descriptor, for handing it to a conversion child.
impl AsRawFd for Spool {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

impl Spool {
    /// Copies `body` into the spool after what it holds (empty until now
    /// for a conversion: a child may already hold it, waiting for its
    /// job; a join's input is its segments one after another); how many
    /// bytes it copied.
    pub async fn fill<S>(&self, body: S) -> std::io::Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let mut writer = tokio::fs::File::from_std(self.file.try_clone()?);
        writer.seek(std::io::SeekFrom::End(0)).await?;
        let mut body = body;
        let mut copied = 0;
        while let Some(chunk) = body.try_next().await? {
            writer.write_all(&chunk).await?;
            copied += chunk.len() as u64;
        }
        writer.flush().await?;
        Ok(copied)
    }

    /// A new empty anonymous file in `dir` (the system temp dir when empty).
    pub fn empty(dir: &str) -> std::io::Result<Self> {
        let file = if dir.is_empty() {
            tempfile::tempfile()?
        } else {
            tempfile::tempfile_in(dir)?
        };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(Self { file, path })
    }

    /// Reads the spooled bytes from the start.
    pub async fn reader(&self) -> std::io::Result<tokio::fs::File> {
        let mut file = tokio::fs::File::from_std(self.file.try_clone()?);
        file.seek(std::io::SeekFrom::Start(0)).await?;
        Ok(file)
    }

    /// A path that opens the spooled bytes while `self` lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A conversion's spools: the video it reads, the audio and the waveform
/// it writes.
pub struct Spools {
    pub input: Spool,
    pub audio: Spool,
    pub waveform: Spool,
}

impl Spools {
    /// Three empty spools in `dir`.
    pub fn new(dir: &str) -> std::io::Result<Self> {
        Ok(Self {
            input: Spool::empty(dir)?,
            audio: Spool::empty(dir)?,
            waveform: Spool::empty(dir)?,
        })
    }
}
