//! Waveform data for players (peaks.js, wavesurfer): the min/max peaks of
//! the audio the encoder is given, a block of [`SAMPLES_PER_PIXEL`] frames
//! each, written as BBC audiowaveform's JSON (version 2, one channel,
//! 8 bits) while the conversion runs, so no second decode is needed.
//!
//! It is computed where the encoder's input is counted (after trims,
//! resampling, the downmix and loudness), so it shows the output, not the
//! input. Channels are averaged into one, and each value is
//! `floor(127 × mean)` clamped to −128..127, as `waveform-data` (the library
//! peaks.js reads waveforms with) computes its own from decoded audio; the
//! last block may be shorter. `length`, known only at the end, is the
//! object's last member. It is written through a buffered file a block at a
//! time: memory stays fixed whatever the length, and nothing is allocated
//! per buffer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use gstreamer as gst;
use gstreamer_audio as gst_audio;
use gstreamer_audio::AudioFormat;

/// Audio frames summarised by one pair of values: audiowaveform's default
/// zoom, finer than any zoom level peaks.js starts with (it resamples up).
pub const SAMPLES_PER_PIXEL: u32 = 256;

/// GStreamer's largest channel count.
const MAX_CHANNELS: usize = 64;

/// Why no waveform could be written.
#[derive(Debug, thiserror::Error)]
pub enum WaveformError {
    #[error("writing the waveform: {0}")]
    Write(#[source] std::io::Error),
    #[error("the waveform cannot read {0} audio")]
    Format(String),
    #[error("the waveform got unreadable audio: {0}")]
    Audio(String),
}

/// Crosses the child's protocol as text, as every conversion error does.
impl From<WaveformError> for super::TranscodeError {
    fn from(e: WaveformError) -> Self {
        match e {
            WaveformError::Write(_) => Self::Output(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// The waveform of one conversion, written as its audio arrives.
pub struct Waveform {
    out: BufWriter<File>,
    info: Option<gst_audio::AudioInfo>,
    /// Whether the JSON's head (and the `data` array's opening) is out.
    started: bool,
    block: Block,
    pixels: u64,
    /// The first failure; the rest of the audio is ignored after it.
    failed: Option<WaveformError>,
}

/// The block of frames being summarised: the extremes of the channels'
/// mean (turned into values only when the block closes: `value` keeps
/// order, so the value of the extreme is the extreme of the values).
#[derive(Debug, Clone, Copy)]
struct Block {
    min: f32,
    max: f32,
    frames: u32,
}

impl Block {
    const EMPTY: Self = Self {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        frames: 0,
    };
}

impl Waveform {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(64 * 1024, File::create(path)?),
            info: None,
            started: false,
            block: Block::EMPTY,
            pixels: 0,
            failed: None,
        })
    }

    /// A waveform at `sample_rate` whose pixels are given whole (`push`),
    /// not summarised from audio: the joined waveform of a split
    /// conversion, written as any other.
    pub(crate) fn of_pixels(path: &Path, sample_rate: u32) -> std::io::Result<Self> {
        let mut waveform = Self::create(path)?;
        waveform.start(sample_rate)?;
        Ok(waveform)
    }

    /// Adds one pixel, its min and max as written.
    pub(crate) fn push(&mut self, min: i64, max: i64) -> std::io::Result<()> {
        let comma = if self.pixels > 0 { "," } else { "" };
        write!(self.out, "{comma}{min},{max}")?;
        self.pixels += 1;
        Ok(())
    }

    /// Takes note of the audio's format (a caps event).
    pub fn on_caps(&mut self, caps: &gst::CapsRef) {
        match gst_audio::AudioInfo::from_caps(caps) {
            Ok(info) => self.info = Some(info),
            Err(e) => self.fail(WaveformError::Audio(format!("unusable caps: {e}"))),
        }
    }

    /// Adds one buffer of the encoder's input.
    pub fn on_buffer(&mut self, buffer: &gst::BufferRef) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.add(buffer) {
            self.fail(e);
        }
    }

    fn add(&mut self, buffer: &gst::BufferRef) -> Result<(), WaveformError> {
        let Some(info) = self.info.clone() else {
            return Err(WaveformError::Audio(
                "audio arrived before its format".into(),
            ));
        };
        if !self.started {
            self.start(info.rate()).map_err(WaveformError::Write)?;
        }
        let audio = gst_audio::AudioBufferRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| WaveformError::Audio(e.to_string()))?;
        let channels = (info.channels() as usize).clamp(1, MAX_CHANNELS);
        let mut planes: [&[u8]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        let interleaved = info.layout() == gst_audio::AudioLayout::Interleaved;
        let plane_count = if interleaved { 1 } else { channels };
        for (index, plane) in planes.iter_mut().enumerate().take(plane_count) {
            *plane = audio
                .plane_data(index as u32)
                .map_err(|e| WaveformError::Audio(e.to_string()))?;
        }
        let (planes, frames) = (&planes[..plane_count], audio.n_samples());
        let (width, sample) = sample_reader(info.format())
            .ok_or_else(|| WaveformError::Format(info.format().to_str().to_string()))?;
        let needed = frames * width * if interleaved { channels } else { 1 };
        if planes.iter().any(|p| p.len() < needed) {
            return Err(WaveformError::Audio("a buffer shorter than it says".into()));
        }
        // Where channel `c` of frame `f` is: its plane, and its index there.
        let at = |f: usize, c: usize| match interleaved {
            true => (0, f * channels + c),
            false => (c, f),
        };
        let scale = 1.0 / channels as f32;
        // Floats (what LAME and the loudness stage take) are read where they
        // lie when aligned; anything else through `sample_reader`.
        let mut floats: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        let aligned = info.format() == AudioFormat::F32le
            && planes
                .iter()
                .zip(floats.iter_mut())
                .all(|(bytes, plane)| floats_of(bytes).map(|f| *plane = f).is_some());
        if aligned {
            // Plain loops: this runs for every sample, in debug builds too.
            return self.fold(frames, |f| {
                let mut sum = 0.0;
                for c in 0..channels {
                    sum += match interleaved {
                        true => floats[0][f * channels + c],
                        false => floats[c][f],
                    };
                }
                sum * scale
            });
        }
        self.fold(frames, |f| {
            let mut sum = 0.0;
            for c in 0..channels {
                let (plane, index) = at(f, c);
                sum += sample(&planes[plane][index * width..]);
            }
            sum * scale
        })
    }

    /// Folds `frames` frames into blocks, `mean(f)` the mean of frame
    /// `f`'s channels.
    fn fold(&mut self, frames: usize, mean: impl Fn(usize) -> f32) -> Result<(), WaveformError> {
        for frame in 0..frames {
            let value = mean(frame);
            let block = &mut self.block;
            if value < block.min {
                block.min = value;
            }
            if value > block.max {
                block.max = value;
            }
            block.frames += 1;
            if block.frames == SAMPLES_PER_PIXEL {
                self.close_block().map_err(WaveformError::Write)?;
            }
        }
        Ok(())
    }

    /// Writes the block's pair and starts the next.
    fn close_block(&mut self) -> std::io::Result<()> {
        let Block { min, max, .. } = std::mem::replace(&mut self.block, Block::EMPTY);
        self.push(value(min).into(), value(max).into())
    }

    fn start(&mut self, sample_rate: u32) -> std::io::Result<()> {
        self.started = true;
        write!(
            self.out,
            "{{\"version\":2,\"channels\":1,\"sample_rate\":{sample_rate},\
             \"samples_per_pixel\":{SAMPLES_PER_PIXEL},\"bits\":8,\"data\":["
        )
    }

    fn fail(&mut self, error: WaveformError) {
        self.failed.get_or_insert(error);
    }

    /// Writes the last (shorter) block and the JSON's end; how many pairs
    /// it holds.
    pub fn finish(mut self) -> Result<u64, WaveformError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let rate = self.info.as_ref().map_or(0, |i| i.rate());
        let mut finish = || {
            if !self.started {
                self.start(rate)?;
            }
            if self.block.frames > 0 {
                self.close_block()?;
            }
            write!(self.out, "],\"length\":{}}}", self.pixels)?;
            self.out.flush()
        };
        finish().map_err(WaveformError::Write)?;
        Ok(self.pixels)
    }
}

/// Little-endian F32 samples as floats, where they are aligned for it
/// (GStreamer's memory always is).
fn floats_of(bytes: &[u8]) -> Option<&[f32]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32; align_to keeps the middle
    // part aligned.
    match unsafe { bytes.align_to::<f32>() } {
        ([], floats, []) => Some(floats),
        _ => None,
    }
}

/// A sample (−1..1 full scale) as an 8-bit waveform value.
fn value(sample: f32) -> i32 {
    ((sample * 127.0).floor() as i32).clamp(-128, 127)
}

/// Reads one sample, from its first byte, as a float in -1..1.
type ReadSample = fn(&[u8]) -> f32;

/// The bytes a sample of `format` takes and how to read one as a float
/// in -1..1, chosen once per buffer: the integer formats our encoders take
/// (flacenc: S8, S16LE, S24LE, S24_32LE; opusenc and voaacenc: S16LE) and
/// floats that do not lie aligned. `None` for any other format.
fn sample_reader(format: AudioFormat) -> Option<(usize, ReadSample)> {
    Some(match format {
        AudioFormat::F32le => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        AudioFormat::S2432le => (4, |b| {
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 8_388_608.0
        }),
        // Sign-extended from the top byte.
        AudioFormat::S24le => (3, |b| {
            (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0
        }),
        AudioFormat::S16le => (2, |b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
        AudioFormat::S8 => (1, |b| f32::from(b[0] as i8) / 128.0),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(format: AudioFormat, channels: u32, layout: gst_audio::AudioLayout) -> gst::Caps {
        gst_audio::AudioInfo::builder(format, 8000, channels)
            .layout(layout)
            .build()
            .expect("info")
            .to_caps()
            .expect("caps")
    }

    fn written(waveform: Waveform, path: &Path) -> serde_json::Value {
        waveform.finish().expect("finish");
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON")
    }

    #[test]
    fn blocks_of_the_channel_mean_with_a_short_last_block() {
        gst::init().expect("gst");
        let file = tempfile::NamedTempFile::new().expect("temp");
        let mut waveform = Waveform::create(file.path()).expect("create");
        waveform.on_caps(&caps(
            AudioFormat::S16le,
            2,
            gst_audio::AudioLayout::Interleaved,
        ));
        // 300 frames: left ramps up to full scale, right stays at -0.5.
        let mut bytes = Vec::new();
        for i in 0..300i32 {
            let left = (i * 32767 / 299) as i16;
            bytes.extend_from_slice(&left.to_le_bytes());
            bytes.extend_from_slice(&(-16384i16).to_le_bytes());
        }
        waveform.on_buffer(gst::Buffer::from_slice(bytes).as_ref());
        let json = written(waveform, file.path());
        assert_eq!(json["version"], 2);
        assert_eq!(json["sample_rate"], 8000);
        assert_eq!(json["samples_per_pixel"], 256);
        assert_eq!(json["bits"], 8);
        assert_eq!(json["length"], 2);
        let data: Vec<i64> = serde_json::from_value(json["data"].clone()).expect("data");
        // Block 1: mean from -0.25 to (255/299 - 0.5)/2; block 2 up to 0.25.
        assert_eq!(data[0], -32);
        let at = |frame: i32| value(((frame * 32767 / 299) as f32 / 32768.0 - 0.5) / 2.0) as i64;
        assert_eq!(data[1], at(255));
        assert_eq!(data[2], at(256));
        assert_eq!(data.len(), 4);
        assert_eq!(data[3], at(299));
    }

    #[test]
    fn planar_floats_clamp_and_no_audio_is_an_empty_waveform() {
        gst::init().expect("gst");
        let file = tempfile::NamedTempFile::new().expect("temp");
        let mut waveform = Waveform::create(file.path()).expect("create");
        waveform.on_caps(&caps(
            AudioFormat::F32le,
            2,
            gst_audio::AudioLayout::NonInterleaved,
        ));
        let frames = 256usize;
        let mut bytes = Vec::new();
        for _ in 0..frames {
            bytes.extend_from_slice(&2.0f32.to_le_bytes());
        }
        for _ in 0..frames {
            bytes.extend_from_slice(&(-3.0f32).to_le_bytes());
        }
        let mut buffer = gst::Buffer::from_slice(bytes);
        gst_audio::AudioMeta::add(
            buffer.get_mut().expect("writable"),
            &gst_audio::AudioInfo::from_caps(&caps(
                AudioFormat::F32le,
                2,
                gst_audio::AudioLayout::NonInterleaved,
            ))
            .expect("info"),
            frames,
            &[],
        )
        .expect("meta");
        waveform.on_buffer(buffer.as_ref());
        let json = written(waveform, file.path());
        assert_eq!(json["length"], 1);
        assert_eq!(json["data"], serde_json::json!([-64, -64]));

        let empty = tempfile::NamedTempFile::new().expect("temp");
        let json = written(
            Waveform::create(empty.path()).expect("create"),
            empty.path(),
        );
        assert_eq!(
            (json["length"].clone(), json["data"].clone()),
            (0.into(), serde_json::json!([]))
        );
    }

    #[test]
    fn values_follow_waveform_data() {
        assert_eq!(value(1.0), 127);
        assert_eq!(value(-1.0), -127);
        assert_eq!(value(-1.5), -128);
        assert_eq!(value(0.0), 0);
        assert_eq!(value(-0.001), -1);
    }
}
