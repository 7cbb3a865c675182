//! The Xing/LAME frame of a joined MP3: the first segment's, with what
//! describes the whole file written over what described that segment —
//! the frame count and byte length, the seek table, the padding (the last
//! segment's), the music's length and CRC, and the header's own CRC.
//!
//! Layout (LAME 3.100, as `lame_get_lametag_frame` writes it), from the
//! Xing tag at `at`: "Xing"/"Info", flags (all four: frames, bytes, TOC,
//! scale), frames, bytes, a 100-entry TOC, the VBR scale; then LAME's
//! extension: its version (9 bytes), …, at `at + 141` the delay and the
//! padding (12 bits each), at `at + 148` the music's length, at `at + 152`
//! its CRC-16 and at `at + 154` the CRC-16 of the frame's bytes before it.

use super::frames::Frame;
use crate::transcoder::crc::LAME;

const FLAGS_ALL: u32 = 0x0f;
const FRAMES: usize = 8;
const BYTES: usize = 12;
const TOC: usize = 16;
const ENCODER: usize = 120;
const DELAYS: usize = 141;
const MUSIC_LENGTH: usize = 148;
const MUSIC_CRC: usize = 152;
const TAG_CRC: usize = 154;

/// A segment's Xing/LAME frame, read.
pub(super) struct InfoFrame {
    frame: Frame,
    /// Where the Xing tag starts in the frame.
    at: usize,
}

/// What the joined file's header says of it.
pub(super) struct Whole {
    /// Audio frames, the header's frame not counted.
    pub(super) frames: u32,
    /// Bytes of the MP3 stream: the header's frame and the audio frames.
    pub(super) bytes: u32,
    pub(super) toc: [u8; 100],
    pub(super) padding: u16,
    pub(super) music_crc: u16,
}

impl InfoFrame {
    /// The Xing/LAME header of a segment LAME wrote, or what it lacks.
    pub(super) fn read(frame: Frame) -> Result<Self, &'static str> {
        let at = frame.header.xing_at();
        let bytes = &frame.bytes;
        let tag = bytes
            .get(at..at + 4)
            .ok_or("its first frame is too short")?;
        if tag != b"Xing" && tag != b"Info" {
            return Err("no Xing header");
        }
        if word(bytes, at + 4) != Some(FLAGS_ALL) {
            return Err("a Xing header without LAME's four fields");
        }
        if bytes.get(at + ENCODER..at + ENCODER + 4) != Some(b"LAME") || bytes.len() < at + 156 {
            return Err("no LAME header");
        }
        Ok(Self { frame, at })
    }

    /// The header's frame (its rate, channels, MPEG version).
    pub(super) fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The encoder's delay and the padding at the end, in samples.
    pub(super) fn delay(&self) -> u64 {
        let d = &self.frame.bytes[self.at + DELAYS..self.at + DELAYS + 3];
        (u64::from(d[0]) << 4) | (u64::from(d[1]) >> 4)
    }

    pub(super) fn padding(&self) -> u64 {
        let d = &self.frame.bytes[self.at + DELAYS..self.at + DELAYS + 3];
        (u64::from(d[1] & 0x0f) << 8) | u64::from(d[2])
    }

    /// The frame's bytes, describing `whole`.
    pub(super) fn describing(mut self, whole: &Whole) -> Vec<u8> {
        let at = self.at;
        let bytes = &mut self.frame.bytes;
        bytes[at + FRAMES..at + FRAMES + 4].copy_from_slice(&whole.frames.to_be_bytes());
        bytes[at + BYTES..at + BYTES + 4].copy_from_slice(&whole.bytes.to_be_bytes());
        bytes[at + TOC..at + TOC + 100].copy_from_slice(&whole.toc);
        let padding = whole.padding.min(0x0fff);
        bytes[at + DELAYS + 1] = (bytes[at + DELAYS + 1] & 0xf0) | (padding >> 8) as u8;
        bytes[at + DELAYS + 2] = padding as u8;
        bytes[at + MUSIC_LENGTH..at + MUSIC_LENGTH + 4].copy_from_slice(&whole.bytes.to_be_bytes());
        bytes[at + MUSIC_CRC..at + MUSIC_CRC + 2].copy_from_slice(&whole.music_crc.to_be_bytes());
        let crc = LAME.update(0, &bytes[..at + TAG_CRC]);
        bytes[at + TAG_CRC..at + TAG_CRC + 2].copy_from_slice(&crc.to_be_bytes());
        self.frame.bytes
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
