//! An MPEG audio Layer III frame header: the frame's rate, samples and
//! length, where its side information ends and where its main data
//! begins. Read for an input's Xing/LAME header (`gapless.rs`) and by the
//! split join (`segments::join::mp3`), which moves main data between
//! frames.

/// Layer III bitrates (kb/s) by index: MPEG-1, then MPEG-2 and 2.5.
const MPEG1_KBPS: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const MPEG2_KBPS: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// What one frame's four header bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) rate: u32,
    /// Samples per channel in one frame.
    pub(crate) samples: u64,
    pub(crate) mpeg1: bool,
    pub(crate) mono: bool,
    kbps: u32,
    padded: bool,
    /// A CRC-16 follows the header.
    protected: bool,
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
    /// The header of a Layer III frame (free format is not one: its length
    /// cannot be told from the header).
    pub(crate) fn parse(bytes: [u8; 4]) -> Option<Self> {
        let raw = u32::from_be_bytes(bytes);
        if raw >> 21 != 0x7ff {
            return None;
        }
        let version = (raw >> 19) & 3;
        let layer = (raw >> 17) & 3;
        let bitrate_index = (raw >> 12) & 0xf;
        let rate_index = (raw >> 10) & 3;
        if layer != 1 || bitrate_index == 0 || bitrate_index == 15 {
            return None;
        }
        let rate = sample_rate(version, rate_index)?;
        let mpeg1 = version == 3;
        let table = if mpeg1 { MPEG1_KBPS } else { MPEG2_KBPS };
        Some(Self {
            rate,
            samples: if mpeg1 { 1152 } else { 576 },
            mpeg1,
            mono: (raw >> 6) & 3 == 3,
            kbps: table[bitrate_index as usize],
            padded: (raw >> 9) & 1 == 1,
            protected: (raw >> 16) & 1 == 0,
        })
    }

    /// The whole frame's length in bytes, header included.
    pub(crate) fn len(&self) -> usize {
        let bytes = self.samples / 8 * u64::from(self.kbps) * 1000 / u64::from(self.rate);
        bytes as usize + usize::from(self.padded)
    }

    /// Bytes of side information after the header (and its CRC).
    pub(crate) fn side_info_len(&self) -> usize {
        match (self.mpeg1, self.mono) {
            (true, false) => 32,
            (true, true) | (false, false) => 17,
            (false, true) => 9,
        }
    }

    /// Where the frame's own bytes of main data (its payload) start: after
    /// the header, its CRC and its side information.
    pub(crate) fn payload_at(&self) -> usize {
        4 + if self.protected { 2 } else { 0 } + self.side_info_len()
    }

    /// Where a Xing/Info tag starts in the frame that carries it: after the
    /// side information, at the same place with or without a CRC (as
    /// LAME and the Xing convention put it).
    pub(crate) fn xing_at(&self) -> usize {
        4 + self.side_info_len()
    }

    /// `main_data_begin` of `frame` (this header's frame): the first 9
    /// (MPEG-1) or 8 bits of its side information.
    pub(crate) fn main_data_begin(&self, frame: &[u8]) -> Option<usize> {
        let at = self.payload_at() - self.side_info_len();
        let (high, low) = (*frame.get(at)?, *frame.get(at + 1)?);
        Some(if self.mpeg1 {
            (usize::from(high) << 1) | usize::from(low >> 7)
        } else {
            usize::from(high)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers() {
        // MPEG-1 Layer III, 128 kb/s, 44.1 kHz, stereo, no padding.
        let h = FrameHeader::parse(0xfffb_9064u32.to_be_bytes()).expect("frame");
        assert_eq!((h.rate, h.samples), (44100, 1152));
        assert!(h.mpeg1 && !h.mono);
        assert_eq!(h.len(), 417);
        assert_eq!(h.payload_at(), 36);
        // The same, padded: one byte more.
        let padded = FrameHeader::parse(0xfffb_9264u32.to_be_bytes()).expect("frame");
        assert_eq!(padded.len(), 418);
        // MPEG-2, 64 kb/s, 22.05 kHz, mono, with a CRC.
        let h = FrameHeader::parse(0xfff2_80c0u32.to_be_bytes()).expect("frame");
        assert_eq!((h.rate, h.samples, h.len()), (22050, 576, 208));
        assert_eq!(h.payload_at(), 4 + 2 + 9);
        assert_eq!(
            h.main_data_begin(&[0; 6].iter().chain(&[0xab, 0]).copied().collect::<Vec<_>>()),
            Some(0xab)
        );
        assert!(
            FrameHeader::parse(*b"ID3\x03").is_none(),
            "ID3 is not a frame"
        );
    }

    #[test]
    fn main_data_begin_is_nine_bits_in_mpeg1() {
        let h = FrameHeader::parse(0xfffb_9064u32.to_be_bytes()).expect("frame");
        let mut frame = vec![0xff, 0xfb, 0x90, 0x64, 0xff, 0x80];
        assert_eq!(h.main_data_begin(&frame), Some(511));
        frame[4] = 0x01;
        frame[5] = 0x00;
        assert_eq!(h.main_data_begin(&frame), Some(2));
    }
}
