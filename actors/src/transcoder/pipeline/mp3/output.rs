//! The end of the MP3 branch: decoded float audio in, an MP3 file out.
//!
//! The pipeline's last element for MP3 is a fakesink; a pad probe on it
//! hands every buffer (and the caps and tag events) to `Mp3Output` on the
//! streaming thread, which feeds LAME (`lame.rs`) and writes the bytes. The
//! file is: our ID3v2 tag (`id3.rs`, with the chapters), the placeholder
//! frame LAME puts first, the audio. `finish` encodes what LAME still holds
//! and writes the Xing/LAME header over the placeholder (and into the tag
//! the last chapter's end and the ReplayGain values), so the file needs no
//! second pass.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_audio as gst_audio;

use super::id3;
use super::lame::{Lame, LameError, Target};
use crate::domain::ReplayGainReport;
use crate::output::{Encoding, ResolvedOutput};
use crate::transcoder::pipeline::ChapterMarks;
use crate::transcoder::pipeline::replaygain::{TRACK_GAIN, TRACK_PEAK, gain_text, peak_text};

/// Why the MP3 branch stopped: the file (worth another attempt) or the
/// audio (not).
#[derive(Debug, thiserror::Error)]
pub enum Mp3Error {
    #[error("writing the MP3: {0}")]
    Write(#[from] io::Error),
    #[error("{0}")]
    Audio(String),
    #[error(transparent)]
    Encoder(#[from] LameError),
}

pub struct Mp3Output {
    file: BufWriter<File>,
    target: Target,
    title: Option<String>,
    tags: Option<gst::TagList>,
    info: Option<gst_audio::AudioInfo>,
    encoder: Option<Lame>,
    /// Where LAME's first frame, the header's placeholder, starts.
    audio_start: u64,
    /// The input's chapters, settled before the first audio arrives here.
    chapters: Arc<ChapterMarks>,
    /// Where the tag's last chapter end time is, to fill in at the end.
    last_chapter_end_at: Option<u64>,
    /// Whether the tag carries ReplayGain, and where its two values are.
    replaygain: bool,
    replaygain_at: Vec<u64>,
    /// Audio frames encoded.
    frames: u64,
}

/// Buffered writes: LAME hands out a frame or two per call.
const WRITE_BUFFER: usize = 64 * 1024;

impl Mp3Output {
    /// Creates (or truncates) the file at `path`, encoded as `options`
    /// were resolved (nothing is defaulted here).
    pub fn create(
        path: &Path,
        options: &ResolvedOutput,
        chapters: Arc<ChapterMarks>,
    ) -> io::Result<Self> {
        let target = match options.encoding() {
            Encoding::Quality(quality) => Target::Quality(quality as f32),
            Encoding::Bitrate(kbps) => Target::Bitrate { kbps },
            Encoding::Lossless => {
                return Err(io::Error::other(
                    "MP3 is not lossless: no bitrate or quality",
                ));
            }
        };
        Ok(Self {
            file: BufWriter::with_capacity(WRITE_BUFFER, File::create(path)?),
            target,
            title: options.title.clone(),
            tags: None,
            info: None,
            encoder: None,
            audio_start: 0,
            chapters,
            last_chapter_end_at: None,
            replaygain: options.replaygain,
            replaygain_at: Vec::new(),
            frames: 0,
        })
    }

    /// Takes note of the audio format and the input's tags.
    pub fn on_event(&mut self, event: &gst::EventRef) -> Result<(), Mp3Error> {
        match event.view() {
            gst::EventView::Caps(caps) => {
                let info = gst_audio::AudioInfo::from_caps(caps.caps())
                    .map_err(|e| Mp3Error::Audio(format!("unusable audio caps: {e}")))?;
                if let Some(old) = &self.info
                    && self.encoder.is_some()
                    && (old.rate(), old.channels()) != (info.rate(), info.channels())
                {
                    return Err(Mp3Error::Audio(format!(
                        "the audio changed from {} Hz × {} to {} Hz × {} mid-stream",
                        old.rate(),
                        old.channels(),
                        info.rate(),
                        info.channels()
                    )));
                }
                self.info = Some(info);
            }
            gst::EventView::Tag(tag) if self.encoder.is_none() => {
                let incoming = tag.tag_owned();
                self.tags = Some(match self.tags.take() {
                    Some(old) => old.merge(&incoming, gst::TagMergeMode::Replace),
                    None => incoming,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Encodes one buffer of F32 audio.
    pub fn on_buffer(&mut self, buffer: &gst::BufferRef) -> Result<(), Mp3Error> {
        let unreadable = |e: glib::BoolError| Mp3Error::Audio(format!("unreadable audio: {e}"));
        let Some(info) = &self.info else {
            return Err(Mp3Error::Audio("audio arrived before its format".into()));
        };
        if self.encoder.is_none() {
            let (rate, channels) = (info.rate(), info.channels());
            self.start(rate, channels)?;
        }
        let Self {
            file,
            encoder: Some(lame),
            info: Some(info),
            frames: encoded,
            ..
        } = self
        else {
            return Err(Mp3Error::Audio("no encoder".into()));
        };
        let audio = gst_audio::AudioBufferRef::from_buffer_ref_readable(buffer, info)
            .map_err(unreadable)?;
        let frames = audio.n_samples();
        *encoded += frames as u64;
        let bytes =
            if info.layout() == gst_audio::AudioLayout::NonInterleaved && info.channels() == 2 {
                let left = floats(audio.plane_data(0).map_err(unreadable)?);
                let right = floats(audio.plane_data(1).map_err(unreadable)?);
                lame.encode_planar(&left[..frames], &right[..frames])?
            } else {
                let pcm = floats(audio.plane_data(0).map_err(unreadable)?);
                lame.encode_interleaved(&pcm[..frames * info.channels() as usize])?
            };
        file.write_all(bytes)?;
        Ok(())
    }

    /// Writes the tag and starts the encoder, at the first audio.
    fn start(&mut self, rate: u32, channels: u32) -> Result<(), Mp3Error> {
        let frames = id3::frames(self.title.as_deref(), self.tags.as_ref());
        let replaygain = match self.replaygain {
            true => vec![(TRACK_GAIN, gain_text(0.0)), (TRACK_PEAK, peak_text(0.0))],
            false => Vec::new(),
        };
        let tag = id3::tag(&frames, &replaygain, self.chapters.settled());
        self.file.write_all(&tag.bytes)?;
        self.audio_start = tag.bytes.len() as u64;
        self.last_chapter_end_at = tag.last_chapter_end_at.map(|at| at as u64);
        self.replaygain_at = tag.user_text_at.iter().map(|&at| at as u64).collect();
        self.encoder = Some(Lame::new(rate, channels, self.target)?);
        Ok(())
    }

    /// Completes the file: the last frames, then the Xing/LAME header, then
    /// what the tag could not know before (`replaygain`: the measured
    /// values, when they were asked for).
    pub fn finish(mut self, replaygain: Option<&ReplayGainReport>) -> io::Result<()> {
        let Some(mut lame) = self.encoder.take() else {
            return Ok(()); // no audio: the caller says so
        };
        let tail = lame.flush().map_err(io::Error::other)?;
        self.file.write_all(tail)?;
        let header = lame.lametag();
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        if !header.is_empty() {
            file.seek(SeekFrom::Start(self.audio_start))?;
            file.write_all(&header)?;
        }
        if let (Some(at), Some(info)) = (self.last_chapter_end_at, &self.info) {
            let length_ms = self.frames * 1000 / u64::from(info.rate().max(1));
            let last_start_ms = self.chapters.settled().last().map_or(0, |c| {
                u32::try_from(c.start_ns / 1_000_000).unwrap_or(u32::MAX)
            });
            file.seek(SeekFrom::Start(at))?;
            file.write_all(&id3::end_last_chapter(last_start_ms, length_ms))?;
        }
        if let Some(report) = replaygain {
            let values = [
                gain_text(report.track_gain_db),
                peak_text(report.track_peak),
            ];
            for (&at, value) in self.replaygain_at.iter().zip(values) {
                file.seek(SeekFrom::Start(at))?;
                file.write_all(value.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// The bytes of an F32 plane as floats; copied only if GStreamer's memory
/// is not aligned for them (it always is in practice).
fn floats(bytes: &[u8]) -> Cow<'_, [f32]> {
    // SAFETY: every bit pattern is a valid f32; align_to keeps the middle
    // part aligned.
    match unsafe { bytes.align_to::<f32>() } {
        ([], floats, []) => Cow::Borrowed(floats),
        _ => Cow::Owned(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_from_any_alignment() {
        let values = [0.5f32, -0.25, 1.0];
        let mut bytes = vec![0u8];
        for v in values {
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(&*floats(&bytes[1..]), &values);
    }
}
