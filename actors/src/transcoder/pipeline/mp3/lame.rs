//! libmp3lame, called directly rather than through GStreamer's lamemp3enc.
//!
//! Two reasons. lamemp3enc takes only 16-bit integers, so every decoded
//! float sample was converted to S16 and back to float inside LAME; LAME
//! takes floats (planar or interleaved) as they come from the decoder, as
//! ffmpeg hands them. And LAME writes its own Xing/LAME header (frame count,
//! seek table, encoder delay and padding for gapless playback) when asked,
//! from its own counts; lamemp3enc turns that off because it cannot seek.
//!
//! The library is the system's (Debian's libmp3lame, the one ffmpeg and
//! lamemp3enc use), so vidaud and the yardstick run the same encoder.

use std::ffi::{c_float, c_int, c_uchar};
use std::ptr::NonNull;

use crate::output::MP3_SAMPLE_RATES;

#[repr(C)]
struct LameGlobalFlags {
    _private: [u8; 0],
}

/// `MPEG_mode` and `vbr_mode` of lame.h.
const JOINT_STEREO: c_int = 1;
const MONO: c_int = 3;
const VBR_OFF: c_int = 0;
const VBR_DEFAULT: c_int = 4; // vbr_mtrh

#[link(name = "mp3lame")]
unsafe extern "C" {
    fn lame_init() -> *mut LameGlobalFlags;
    fn lame_close(gfp: *mut LameGlobalFlags) -> c_int;
    fn lame_set_in_samplerate(gfp: *mut LameGlobalFlags, rate: c_int) -> c_int;
    fn lame_set_out_samplerate(gfp: *mut LameGlobalFlags, rate: c_int) -> c_int;
    fn lame_set_num_channels(gfp: *mut LameGlobalFlags, channels: c_int) -> c_int;
    fn lame_set_mode(gfp: *mut LameGlobalFlags, mode: c_int) -> c_int;
    fn lame_set_brate(gfp: *mut LameGlobalFlags, kbps: c_int) -> c_int;
    fn lame_set_VBR(gfp: *mut LameGlobalFlags, mode: c_int) -> c_int;
    fn lame_set_VBR_quality(gfp: *mut LameGlobalFlags, quality: c_float) -> c_int;
    fn lame_set_bWriteVbrTag(gfp: *mut LameGlobalFlags, write: c_int) -> c_int;
    fn lame_set_write_id3tag_automatic(gfp: *mut LameGlobalFlags, write: c_int);
    fn lame_init_params(gfp: *mut LameGlobalFlags) -> c_int;
    fn lame_encode_buffer_ieee_float(
        gfp: *mut LameGlobalFlags,
        left: *const c_float,
        right: *const c_float,
        samples: c_int,
        mp3: *mut c_uchar,
        mp3_size: c_int,
    ) -> c_int;
    fn lame_encode_buffer_interleaved_ieee_float(
        gfp: *mut LameGlobalFlags,
        pcm: *const c_float,
        samples: c_int,
        mp3: *mut c_uchar,
        mp3_size: c_int,
    ) -> c_int;
    fn lame_encode_flush(gfp: *mut LameGlobalFlags, mp3: *mut c_uchar, size: c_int) -> c_int;
    fn lame_get_lametag_frame(
        gfp: *const LameGlobalFlags,
        buffer: *mut c_uchar,
        size: usize,
    ) -> usize;
}

/// What LAME is asked for: a constant bitrate or a VBR quality (0 best, 9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Bitrate { kbps: u32 },
    Quality(f32),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LameError {
    #[error("libmp3lame could not allocate an encoder")]
    Alloc,
    #[error("libmp3lame refused the settings ({rate} Hz, {channels} channel(s), {target:?})")]
    Settings {
        rate: u32,
        channels: u32,
        target: Target,
    },
    #[error("libmp3lame failed to encode (code {0})")]
    Encode(i32),
    #[error("an audio buffer of {0} samples is more than libmp3lame takes at once")]
    TooLarge(usize),
}

/// LAME's worst case of MP3 bytes for `samples` samples per channel (and
/// for a flush, with none).
fn worst_case(samples: usize) -> usize {
    samples * 5 / 4 + 7200
}

/// One MP3 encoder. It writes a placeholder frame first; after `flush`,
/// `lametag` returns the frame to put in its place.
pub struct Lame {
    gfp: NonNull<LameGlobalFlags>,
    channels: u32,
    out: Vec<u8>,
}

// SAFETY: the encoder's state is plain heap memory owned by this value and
// used through `&mut self` only; LAME keeps no thread-local state.
unsafe impl Send for Lame {}

impl Lame {
    pub fn new(rate: u32, channels: u32, target: Target) -> Result<Self, LameError> {
        let refused = LameError::Settings {
            rate,
            channels,
            target,
        };
        if !(1..=2).contains(&channels) || !MP3_SAMPLE_RATES.contains(&rate) {
            return Err(refused);
        }
        // SAFETY: lame_init returns a fresh handle or null.
        let gfp = NonNull::new(unsafe { lame_init() }).ok_or(LameError::Alloc)?;
        let lame = Self {
            gfp,
            channels,
            out: vec![0; worst_case(0)],
        };
        let p = lame.gfp.as_ptr();
        // SAFETY: `p` is a live handle; the setters only store values.
        let status = unsafe {
            lame_set_in_samplerate(p, rate as c_int);
            // The same rate out: LAME would otherwise pick a lower one for
            // low bitrates; resampling is the pipeline's, when asked.
            lame_set_out_samplerate(p, rate as c_int);
            lame_set_num_channels(p, channels as c_int);
            lame_set_mode(p, if channels == 1 { MONO } else { JOINT_STEREO });
            match target {
                Target::Bitrate { kbps } => {
                    lame_set_VBR(p, VBR_OFF);
                    lame_set_brate(p, kbps as c_int);
                }
                Target::Quality(quality) => {
                    lame_set_VBR(p, VBR_DEFAULT);
                    lame_set_VBR_quality(p, quality);
                }
            }
            lame_set_bWriteVbrTag(p, 1);
            // Tags are written by the caller (UTF-8; LAME's are Latin-1).
            lame_set_write_id3tag_automatic(p, 0);
            lame_init_params(p)
        };
        if status < 0 {
            return Err(refused);
        }
        Ok(lame)
    }

    /// Encodes planar samples (`right` is ignored for mono), full scale
    /// ±1.0. Returns the MP3 bytes ready so far (often none).
    pub fn encode_planar(&mut self, left: &[f32], right: &[f32]) -> Result<&[u8], LameError> {
        let right = if self.channels == 1 { left } else { right };
        let samples = left.len().min(right.len());
        let samples = self.prepare(samples)?;
        // SAFETY: both inputs hold `samples` floats; `out` holds the worst
        // case LAME documents for that many samples.
        let written = unsafe {
            lame_encode_buffer_ieee_float(
                self.gfp.as_ptr(),
                left.as_ptr(),
                right.as_ptr(),
                samples,
                self.out.as_mut_ptr(),
                self.out.len() as c_int,
            )
        };
        self.output(written)
    }

    /// Encodes interleaved stereo samples (L R L R ...), full scale ±1.0.
    pub fn encode_interleaved(&mut self, pcm: &[f32]) -> Result<&[u8], LameError> {
        if self.channels == 1 {
            return self.encode_planar(pcm, pcm);
        }
        let samples = pcm.len() / 2;
        let samples = self.prepare(samples)?;
        // SAFETY: `pcm` holds 2 × `samples` floats; `out` as above.
        let written = unsafe {
            lame_encode_buffer_interleaved_ieee_float(
                self.gfp.as_ptr(),
                pcm.as_ptr(),
                samples,
                self.out.as_mut_ptr(),
                self.out.len() as c_int,
            )
        };
        self.output(written)
    }

    /// Encodes what LAME still holds (the last frame padded with silence).
    pub fn flush(&mut self) -> Result<&[u8], LameError> {
        // SAFETY: `out` holds at least the 7200 bytes LAME asks for here.
        let written = unsafe {
            lame_encode_flush(
                self.gfp.as_ptr(),
                self.out.as_mut_ptr(),
                self.out.len() as c_int,
            )
        };
        self.output(written)
    }

    /// The Xing/LAME header frame, to overwrite the placeholder LAME put
    /// first in its output. Complete only after `flush`.
    pub fn lametag(&self) -> Vec<u8> {
        let mut frame = vec![0u8; 2880];
        // SAFETY: LAME copies at most `frame.len()` bytes, and says how many
        // it needs when that is too few.
        let len =
            unsafe { lame_get_lametag_frame(self.gfp.as_ptr(), frame.as_mut_ptr(), frame.len()) };
        frame.truncate(if len <= frame.len() { len } else { 0 });
        frame
    }

    /// Grows the output buffer to LAME's worst case for `samples`: the
    /// size of the largest buffer the pipeline hands over, not of the file.
    fn prepare(&mut self, samples: usize) -> Result<c_int, LameError> {
        let needed = worst_case(samples);
        let count = c_int::try_from(samples)
            .ok()
            .filter(|_| c_int::try_from(needed).is_ok())
            .ok_or(LameError::TooLarge(samples))?;
        if self.out.len() < needed {
            self.out.resize(needed, 0);
        }
        Ok(count)
    }

    fn output(&self, written: c_int) -> Result<&[u8], LameError> {
        usize::try_from(written)
            .map(|n| &self.out[..n.min(self.out.len())])
            .map_err(|_| LameError::Encode(written))
    }
}

impl Drop for Lame {
    fn drop(&mut self) {
        // SAFETY: the handle is live and not used again.
        unsafe {
            lame_close(self.gfp.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 44100.0).sin() * 0.5)
            .collect()
    }

    #[test]
    fn encodes_and_tags_cbr() {
        let mut lame = Lame::new(44100, 2, Target::Bitrate { kbps: 128 }).expect("lame");
        let left = tone(44100);
        let mut mp3 = Vec::new();
        for block in left.chunks(1024) {
            mp3.extend_from_slice(lame.encode_planar(block, block).expect("encode"));
        }
        mp3.extend_from_slice(lame.flush().expect("flush"));
        let tag = lame.lametag();
        assert_eq!(&mp3[..2], &[0xff, 0xfb], "an MPEG-1 Layer III frame first");
        assert_eq!(tag.len(), 417, "the tag frame as long as the placeholder");
        assert!(tag.windows(4).any(|w| w == b"Info"), "CBR is tagged Info");
        // One second at 128 kb/s, give or take the tag and padding.
        assert!((16_000..18_500).contains(&mp3.len()), "{}", mp3.len());
    }

    #[test]
    fn interleaved_mono_and_vbr() {
        let mut lame = Lame::new(48000, 1, Target::Quality(2.0)).expect("lame");
        let pcm = tone(4800);
        assert!(lame.encode_interleaved(&pcm).is_ok());
        assert!(lame.flush().is_ok_and(|b| !b.is_empty()));
        assert!(lame.lametag().windows(4).any(|w| w == b"Xing"));
    }

    #[test]
    fn takes_every_rate_and_bitrate_a_user_may_pick() {
        // Bitrates over what MPEG-2/2.5 carries are brought down by LAME.
        for rate in MP3_SAMPLE_RATES {
            for kbps in crate::output::MP3_BITRATES_KBPS {
                for channels in [1, 2] {
                    let lame = Lame::new(rate, channels, Target::Bitrate { kbps });
                    assert!(lame.is_ok(), "{rate} Hz, {kbps} kb/s, {channels} ch");
                }
            }
            for quality in 0..=9 {
                assert!(Lame::new(rate, 2, Target::Quality(quality as f32)).is_ok());
            }
        }
    }

    #[test]
    fn refuses_what_mp3_cannot_carry() {
        assert!(Lame::new(44100, 6, Target::Bitrate { kbps: 192 }).is_err());
        assert!(Lame::new(0, 2, Target::Bitrate { kbps: 192 }).is_err());
    }
}
