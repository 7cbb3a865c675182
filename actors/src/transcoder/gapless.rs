//! The Xing/LAME header of an MP3: frame count, byte count and seek table
//! (so players know the duration and can seek in VBR files), and the
//! encoder delay and padding (so players cut exactly the samples the
//! encoder added: gapless playback, exact duration).
//!
//! GStreamer's lamemp3enc writes no such header, and xingmux writes no
//! delay/padding, so we write the whole header frame ourselves once the
//! MP3 is complete: scan its frames, build the "Info" (CBR) or "Xing"
//! (VBR) frame, and insert it after the ID3v2 tag. The insertion shifts the
//! audio on disk a chunk at a time; nothing is held in memory but one chunk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// LAME's encoder delay at the sample rates it uses (`lame_get_encoder_delay`).
const ENCODER_DELAY: u64 = 576;
const TOC_ENTRIES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    /// The header's 4 bytes.
    raw: u32,
    len: usize,
    samples: u64,
    bitrate_kbps: u32,
    mpeg1: bool,
    mono: bool,
}

/// (version bits) → kb/s by bitrate index, Layer III.
const BITRATES_V1: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const BITRATES_V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

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
    let padding = (raw >> 9) & 1;
    let mode = (raw >> 6) & 3;
    if layer != 1 || bitrate_index == 0 || bitrate_index == 15 {
        return None;
    }
    let rate = sample_rate(version, rate_index)?;
    let mpeg1 = version == 3;
    let bitrate_kbps = if mpeg1 {
        BITRATES_V1[bitrate_index as usize]
    } else {
        BITRATES_V2[bitrate_index as usize]
    };
    let (coefficient, samples) = if mpeg1 { (144, 1152) } else { (72, 576) };
    let len = (coefficient * bitrate_kbps * 1000 / rate + padding) as usize;
    Some(FrameHeader {
        raw,
        len,
        samples,
        bitrate_kbps,
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

/// What a scan of the audio frames found.
struct Scan {
    first: FrameHeader,
    frames: u64,
    bytes: u64,
    vbr: bool,
    /// Byte offset (from the first audio frame) of every frame, thinned to
    /// what the seek table needs.
    offsets: Vec<u64>,
    /// CRC-16 of the audio frames.
    crc: u16,
}

fn scan(file: &mut File, start: u64) -> io::Result<Option<Scan>> {
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::with_capacity(64 * 1024, &mut *file);
    let mut first = None;
    let (mut frames, mut bytes, mut vbr, mut crc) = (0u64, 0u64, false, 0u16);
    let mut offsets = Vec::new();
    let mut frame = vec![0u8; 4096];
    loop {
        let mut head = [0u8; 4];
        match reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let Some(header) = parse_header(u32::from_be_bytes(head)) else {
            break; // trailing bytes that are not a frame (none from lame)
        };
        let first = *first.get_or_insert(header);
        vbr |= header.bitrate_kbps != first.bitrate_kbps;
        frame.resize(header.len, 0);
        frame[..4].copy_from_slice(&head);
        if reader.read_exact(&mut frame[4..header.len]).is_err() {
            break; // a truncated last frame is not counted
        }
        crc = crc16(crc, &frame[..header.len]);
        offsets.push(bytes);
        frames += 1;
        bytes += header.len as u64;
    }
    Ok(first.map(|first| Scan {
        first,
        frames,
        bytes,
        vbr,
        offsets,
        crc,
    }))
}

/// CRC-16/ARC (LAME's), continued from `crc`.
fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Builds the Xing/Info + LAME frame for `scan`, `samples` being the
/// samples per channel the encoder was given.
fn info_frame(scan: &Scan, samples: u64) -> Vec<u8> {
    let first = scan.first;
    let side_info = first.side_info_len();
    // Room for the Xing and LAME fields, and at least the 190 bytes the
    // tag's CRC covers plus the CRC itself.
    let needed = (4 + side_info + 120 + 36).max(192);
    // The smallest bitrate whose frame holds the header; same version,
    // rate and channel mode as the audio, no padding, no CRC.
    let template = (first.raw & 0xfffe_0cc0) | 0x0001_0000;
    let header = (1..15)
        .filter_map(|index| parse_header(template | (index << 12)))
        .find(|h| h.len >= needed)
        .unwrap_or_else(|| {
            parse_header(template | (14 << 12)).unwrap_or(FrameHeader {
                len: needed,
                ..first
            })
        });
    let mut frame = vec![0u8; header.len];
    frame[..4].copy_from_slice(&header.raw.to_be_bytes());
    let mut at = 4 + side_info;
    let mut put = |frame: &mut Vec<u8>, bytes: &[u8]| {
        frame[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let total_bytes = scan.bytes + header.len as u64;
    put(&mut frame, if scan.vbr { b"Xing" } else { b"Info" });
    put(&mut frame, &0x0000_000fu32.to_be_bytes());
    put(&mut frame, &(scan.frames as u32).to_be_bytes());
    put(&mut frame, &(total_bytes as u32).to_be_bytes());
    let mut toc = [0u8; TOC_ENTRIES];
    for (i, entry) in toc.iter_mut().enumerate() {
        let index = (i as u64 * scan.frames / TOC_ENTRIES as u64) as usize;
        let offset = scan.offsets.get(index).copied().unwrap_or(0) + header.len as u64;
        *entry = (offset * 256 / total_bytes.max(1)).min(255) as u8;
    }
    put(&mut frame, &toc);
    put(&mut frame, &0u32.to_be_bytes()); // quality indicator: not recorded
    // The LAME extension.
    put(&mut frame, b"LAME3.100");
    put(&mut frame, &[if scan.vbr { 0x04 } else { 0x01 }]); // revision 0, method
    put(&mut frame, &[0]); // lowpass: not recorded
    put(&mut frame, &[0; 4]); // peak amplitude: not recorded
    put(&mut frame, &[0; 4]); // radio and audiophile replay gain: none
    put(&mut frame, &[0]); // flags, ATH type
    put(&mut frame, &[first.bitrate_kbps.min(255) as u8]);
    let coded = scan.frames * first.samples;
    let padding = coded.saturating_sub(ENCODER_DELAY + samples);
    let (delay, padding) = if samples > 0 && padding < 4096 {
        (ENCODER_DELAY, padding)
    } else {
        (0, 0) // counts that do not add up: better no claim than a wrong one
    };
    let delays = ((delay as u32) << 12) | padding as u32;
    put(&mut frame, &delays.to_be_bytes()[1..]);
    put(&mut frame, &[0]); // misc
    put(&mut frame, &[0]); // MP3 gain
    put(&mut frame, &[0; 2]); // preset, surround
    put(&mut frame, &(total_bytes as u32).to_be_bytes());
    put(&mut frame, &scan.crc.to_be_bytes());
    let tag_crc = crc16(0, &frame[..190]);
    put(&mut frame, &tag_crc.to_be_bytes());
    frame
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
    let rate = sample_rate((header.raw >> 19) & 3, (header.raw >> 10) & 3)?;
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
        rate,
        skip: delay + 529,
        keep,
    })
}

/// Inserts the Xing/LAME header frame into the MP3 at `path`, after its
/// ID3v2 tag. `samples` is what the encoder was given, per channel.
pub fn write_lame_tag(path: &Path, samples: u64) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let start = id3v2_len(&mut file)?;
    let Some(scan) = scan(&mut file, start)? else {
        return Ok(()); // no frames: nothing to describe
    };
    let frame = info_frame(&scan, samples);
    insert(&mut file, start, &frame)
}

/// Inserts `bytes` at `at`, moving what follows towards the end one chunk
/// at a time (from the end, so nothing is overwritten before it is moved).
fn insert(file: &mut File, at: u64, bytes: &[u8]) -> io::Result<()> {
    let len = file.seek(SeekFrom::End(0))?;
    let shift = bytes.len() as u64;
    file.set_len(len + shift)?;
    let mut chunk = vec![0u8; 256 * 1024];
    let mut end = len;
    while end > at {
        let n = (end - at).min(chunk.len() as u64) as usize;
        let from = end - n as u64;
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk[..n])?;
        file.seek(SeekFrom::Start(from + shift))?;
        file.write_all(&chunk[..n])?;
        end = from;
    }
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths() {
        // MPEG-1 Layer III, 128 kb/s, 44.1 kHz, stereo, no padding.
        let h = parse_header(0xfffb_9064).expect("frame");
        assert_eq!((h.len, h.samples, h.bitrate_kbps), (417, 1152, 128));
        assert!(h.mpeg1 && !h.mono);
        assert!(parse_header(0x4944_3303).is_none(), "ID3 is not a frame");
    }

    #[test]
    fn our_header_reads_back() {
        let mut file = tempfile::NamedTempFile::new().expect("temp");
        // Ten silent-ish frames of MPEG-1 128 kb/s 44.1 kHz stereo.
        let mut frame = vec![0u8; 417];
        frame[..4].copy_from_slice(&0xfffb_9064u32.to_be_bytes());
        for _ in 0..10 {
            file.write_all(&frame).expect("frame");
        }
        write_lame_tag(file.path(), 10 * 1152 - 576 - 100).expect("tag");
        assert_eq!(
            read_input_gapless(file.path()),
            None,
            "GStreamer applies ours"
        );
        // The same header as FFmpeg signs it is applied by us.
        let mut bytes = std::fs::read(file.path()).expect("read");
        let at = bytes.windows(4).position(|w| w == b"LAME").expect("LAME");
        bytes[at..at + 4].copy_from_slice(b"Lavc");
        std::fs::write(file.path(), bytes).expect("write");
        let gapless = read_input_gapless(file.path()).expect("header");
        assert_eq!(
            gapless,
            InputGapless {
                rate: 44100,
                skip: 576 + 529,
                keep: 10 * 1152 - 576 - 100
            }
        );
    }

    #[test]
    fn crc16_arc() {
        assert_eq!(crc16(0, b"123456789"), 0xbb3d);
    }

    #[test]
    fn insert_shifts_the_rest() {
        let mut file = tempfile::tempfile().expect("temp");
        let body: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&body).expect("write");
        insert(&mut file, 10, b"HEADER").expect("insert");
        let mut out = Vec::new();
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.read_to_end(&mut out).expect("read");
        assert_eq!(&out[..10], &body[..10]);
        assert_eq!(&out[10..16], b"HEADER");
        assert_eq!(&out[16..], &body[10..]);
    }
}
