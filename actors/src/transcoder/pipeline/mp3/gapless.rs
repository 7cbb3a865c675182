//! Reading an MP3 input's Xing/LAME header: where its real audio starts
//! and ends (the encoder's delay and padding), for the inputs whose delays
//! GStreamer's parser leaves in (see `read_input_gapless`). Our own MP3s get
//! their header from LAME itself (`lame.rs`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// What the Xing header's position and the duration depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    rate: u32,
    /// Samples per channel in one frame.
    samples: u64,
    mpeg1: bool,
    mono: bool,
}

fn sample_rate(version: u32, index: u32) -> Option<u32> {
    let base = [44100, 48000, 32000].get(index as usize).copied()?;
    match version {
        3 => Some(base),
        2 => Some(base / 2),
        0 => Some(base / 4),
        _ => None,
    }
}

impl FrameHeader {
    /// Bytes of side information after the header; the Xing tag follows.
    fn side_info_len(&self) -> usize {
        match (self.mpeg1, self.mono) {
            (true, false) => 32,
            (true, true) | (false, false) => 17,
            (false, true) => 9,
        }
    }
}

fn parse_header(raw: u32) -> Option<FrameHeader> {
    if raw >> 21 != 0x7ff {
        return None;
    }
    let version = (raw >> 19) & 3;
    let layer = (raw >> 17) & 3;
    let bitrate_index = (raw >> 12) & 0xf;
    let rate_index = (raw >> 10) & 3;
    let mode = (raw >> 6) & 3;
    if layer != 1 || bitrate_index == 0 || bitrate_index == 15 {
        return None;
    }
    let rate = sample_rate(version, rate_index)?;
    let mpeg1 = version == 3;
    Some(FrameHeader {
        rate,
        samples: if mpeg1 { 1152 } else { 576 },
        mpeg1,
        mono: mode == 3,
    })
}

/// Length of the ID3v2 tag at the start of the file (0 if none).
fn id3v2_len(file: &mut File) -> io::Result<u64> {
    let mut head = [0u8; 10];
    file.seek(SeekFrom::Start(0))?;
    if file.read(&mut head)? < 10 || &head[..3] != b"ID3" {
        return Ok(0);
    }
    let size = head[6..10]
        .iter()
        .fold(0u64, |n, b| (n << 7) | u64::from(b & 0x7f));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    Ok(10 + size + footer)
}

/// What an MP3 input's LAME header says about its padding, in samples, when
/// GStreamer's decoder will not apply it: it then puts `skip` samples of
/// the encoder's and decoder's delay before the audio and padding after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputGapless {
    pub rate: u32,
    /// Samples before the audio (encoder delay + the decoder's 529).
    pub skip: u64,
    /// Samples of real audio after those.
    pub keep: u64,
}

/// Reads the Xing/Info + LAME header of an MP3 file, if it has one.
pub fn read_input_gapless(path: &Path) -> Option<InputGapless> {
    let mut file = File::open(path).ok()?;
    let start = id3v2_len(&mut file).ok()?;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut frame = [0u8; 4 + 32 + 120 + 36];
    file.read_exact(&mut frame).ok()?;
    let header = parse_header(u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))?;
    let mut at = 4 + header.side_info_len();
    let tag = &frame[at..at + 4];
    if tag != b"Xing" && tag != b"Info" {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
    let flags = word(at + 4);
    at += 8;
    if flags & 1 == 0 {
        return None; // no frame count: the length is unknown
    }
    let frames = u64::from(word(at));
    at += 4;
    if flags & 2 != 0 {
        at += 4;
    }
    if flags & 4 != 0 {
        at += 100;
    }
    if flags & 8 != 0 {
        at += 4;
    }
    // GStreamer's mpegaudioparse applies the delays of a "LAME" header
    // itself; those of FFmpeg's (same layout, "Lavc"/"Lavf") it leaves in.
    let encoder = frame.get(at..at + 4)?;
    if !matches!(encoder, b"Lavf" | b"Lavc") {
        return None;
    }
    let delays = frame.get(at + 21..at + 24)?;
    let delay = (u64::from(delays[0]) << 4) | (u64::from(delays[1]) >> 4);
    let padding = (u64::from(delays[1] & 0x0f) << 8) | u64::from(delays[2]);
    let coded = frames * header.samples;
    let keep = coded.checked_sub(delay + padding)?;
    (delay > 0 || padding > 0).then_some(InputGapless {
        rate: header.rate,
        skip: delay + 529,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers() {
        // MPEG-1 Layer III, 128 kb/s, 44.1 kHz, stereo, no padding.
        let h = parse_header(0xfffb_9064).expect("frame");
        assert_eq!((h.rate, h.samples), (44100, 1152));
        assert!(h.mpeg1 && !h.mono);
        assert!(parse_header(0x4944_3303).is_none(), "ID3 is not a frame");
    }

    #[test]
    fn lames_header_is_left_to_gstreamer_ffmpegs_is_read() {
        use super::super::lame::{Lame, Target};
        let mut lame = Lame::new(44100, 2, Target::Bitrate { kbps: 128 }).expect("lame");
        let silence = vec![0.0f32; 1000];
        let mut mp3 = Vec::new();
        for _ in 0..10 {
            mp3.extend_from_slice(lame.encode_planar(&silence, &silence).expect("encode"));
        }
        mp3.extend_from_slice(lame.flush().expect("flush"));
        let header = lame.lametag();
        mp3[..header.len()].copy_from_slice(&header);
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), &mp3).expect("write");
        assert_eq!(
            read_input_gapless(file.path()),
            None,
            "GStreamer applies LAME's"
        );
        // The same header as FFmpeg signs it is applied by us.
        let at = mp3.windows(4).position(|w| w == b"LAME").expect("LAME");
        mp3[at..at + 4].copy_from_slice(b"Lavc");
        std::fs::write(file.path(), &mp3).expect("write");
        let gapless = read_input_gapless(file.path()).expect("header");
        assert_eq!(
            gapless,
            InputGapless {
                rate: 44100,
                skip: 576 + 529,
                keep: 10_000
            }
        );
    }
}
