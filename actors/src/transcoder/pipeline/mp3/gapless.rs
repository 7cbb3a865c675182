//! Reading an MP3 input's Xing/LAME header: where its real audio starts
//! and ends (the encoder's delay and padding), for the inputs whose delays
//! GStreamer's parser leaves in (see `read_input_gapless`). Our own MP3s get
//! their header from LAME itself (`lame.rs`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::frame::FrameHeader;

/// Length of the ID3v2 tag at the start of the file (0 if none).
fn id3v2_len(file: &mut File) -> io::Result<u64> {
    let mut head = [0u8; 10];
    file.seek(SeekFrom::Start(0))?;
    if file.read(&mut head)? < 10 {
        return Ok(0);
    }
    Ok(super::id3::tag_len(&head).unwrap_or(0))
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
    let header = FrameHeader::parse([frame[0], frame[1], frame[2], frame[3]])?;
    let mut at = header.xing_at();
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
