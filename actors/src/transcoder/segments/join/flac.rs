//! FLAC segments into one FLAC stream: the first segment's metadata (its
//! seek table, which would point into that segment alone, left out), then
//! every segment's frames, renumbered as one stream (a frame's header
//! carries its number, guarded by a CRC-8, and the frame by a CRC-16: both
//! made again), and STREAMINFO rewritten with the whole stream's length,
//! frame sizes and the MD5 of its samples (decoded once more to hash them:
//! a digest cannot be made from the segments' digests).
//!
//! A FLAC frame's length is not in its header: a frame ends where the
//! next valid header begins and the CRC-16 of the bytes before it checks.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{JoinError, Joined, Piece, read_error};
use crate::transcoder::crc;
use crate::transcoder::segments::plan::SplitPlan;

mod samples_md5;

const STREAMINFO: u8 = 0;
const SEEKTABLE: u8 = 3;

pub(super) fn join(
    plan: &SplitPlan,
    segments: &[Piece],
    output: &Path,
) -> Result<Joined, JoinError> {
    let file = File::create(output).map_err(JoinError::Write)?;
    let mut out = BufWriter::new(file);
    let mut info: Option<StreamInfo> = None;
    let mut sizes = (u32::MAX, 0u32);
    let mut samples = 0u64;
    let mut written = 0u64;
    for (index, (part, path)) in plan.parts.iter().zip(segments).enumerate() {
        let mismatch = |what: String| JoinError::Mismatch { index, what };
        let input = path.open().map_err(read_error(index, path))?;
        let mut input = BufReader::new(input);
        let blocks = read_metadata(&mut input).map_err(read_error(index, path))?;
        let own = blocks
            .iter()
            .find(|b| b.kind == STREAMINFO)
            .and_then(|b| StreamInfo::parse(&b.body))
            .ok_or_else(|| mismatch("no STREAMINFO".into()))?;
        match &info {
            None => {
                written += write_metadata(&mut out, &blocks).map_err(JoinError::Write)?;
                info = Some(own.clone());
            }
            Some(first) if !first.same_stream(&own) => {
                return Err(mismatch(format!(
                    "its stream ({own:?}) is not the first's ({first:?})"
                )));
            }
            Some(_) => {}
        }
        let block = u64::from(own.max_block);
        if part.encoded_from % block != 0 || own.min_block != own.max_block {
            return Err(mismatch(format!("blocks of {block} do not meet its start")));
        }
        let mut frames = Frames::new(input);
        let mut local = 0u64;
        while let Some(frame) = frames.next_frame().map_err(read_error(index, path))? {
            let header = Header::parse(&frame).ok_or_else(|| mismatch("a bad frame".into()))?;
            let start = part.encoded_from + local;
            let number = if header.variable {
                start
            } else {
                start / block
            };
            let renumbered = header.renumbered(&frame, number);
            out.write_all(&renumbered).map_err(JoinError::Write)?;
            let size = renumbered.len() as u32;
            sizes = (sizes.0.min(size), sizes.1.max(size));
            written += u64::from(size);
            local += header.block;
        }
        if part
            .keep_to
            .is_some_and(|to| part.encoded_from + local != to)
        {
            return Err(mismatch(format!(
                "it holds {local} samples, not the {} planned",
                part.keep_to.unwrap_or_default() - part.encoded_from
            )));
        }
        samples = part.encoded_from + local;
    }
    let mut info = info.ok_or(JoinError::Mismatch {
        index: 0,
        what: "no segments".into(),
    })?;
    let mut file = out
        .into_inner()
        .map_err(|e| JoinError::Write(e.into_error()))?;
    file.flush().map_err(JoinError::Write)?;
    info.min_frame = sizes.0.min(sizes.1);
    info.max_frame = sizes.1;
    info.total = samples;
    // The decoder believes STREAMINFO's length: it is written before the
    // samples are decoded for their digest.
    info.md5 = [0; 16];
    rewrite_streaminfo(&mut file, &info)?;
    info.md5 = samples_md5::of(output).map_err(JoinError::Check)?;
    rewrite_streaminfo(&mut file, &info)?;
    file.sync_data().map_err(JoinError::Write)?;
    Ok(Joined {
        rate: plan.output_rate,
        samples,
        bytes: written,
    })
}

/// Writes `info` over the file's STREAMINFO, the first block (after
/// "fLaC" and the block's header).
fn rewrite_streaminfo(file: &mut File, info: &StreamInfo) -> Result<(), JoinError> {
    file.seek(SeekFrom::Start(8)).map_err(JoinError::Write)?;
    file.write_all(&info.bytes()).map_err(JoinError::Write)?;
    file.flush().map_err(JoinError::Write)
}

/// A metadata block: its type and body.
struct Block {
    kind: u8,
    body: Vec<u8>,
}

fn read_metadata(input: &mut impl Read) -> io::Result<Vec<Block>> {
    let mut magic = [0u8; 4];
    input.read_exact(&mut magic)?;
    if &magic != b"fLaC" {
        return Err(invalid("not a FLAC stream"));
    }
    let mut blocks = Vec::new();
    loop {
        let mut header = [0u8; 4];
        input.read_exact(&mut header)?;
        let length = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let mut body = vec![0u8; length];
        input.read_exact(&mut body)?;
        blocks.push(Block {
            kind: header[0] & 0x7f,
            body,
        });
        if header[0] & 0x80 != 0 {
            return Ok(blocks);
        }
    }
}

/// Writes "fLaC" and the blocks but the seek table; returns the bytes.
fn write_metadata(out: &mut impl Write, blocks: &[Block]) -> io::Result<u64> {
    let kept: Vec<&Block> = blocks.iter().filter(|b| b.kind != SEEKTABLE).collect();
    out.write_all(b"fLaC")?;
    let mut bytes = 4;
    for (i, block) in kept.iter().enumerate() {
        let last = if i + 1 == kept.len() { 0x80 } else { 0 };
        let length = (block.body.len() as u32).to_be_bytes();
        out.write_all(&[block.kind | last, length[1], length[2], length[3]])?;
        out.write_all(&block.body)?;
        bytes += 4 + block.body.len() as u64;
    }
    Ok(bytes)
}

/// STREAMINFO's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamInfo {
    min_block: u16,
    max_block: u16,
    min_frame: u32,
    max_frame: u32,
    rate: u32,
    channels: u8,
    bits: u8,
    total: u64,
    md5: [u8; 16],
}

impl StreamInfo {
    fn parse(body: &[u8]) -> Option<Self> {
        let body: &[u8; 34] = body.get(..34)?.try_into().ok()?;
        let u24 = |at: usize| u32::from_be_bytes([0, body[at], body[at + 1], body[at + 2]]);
        let packed = u64::from_be_bytes(body[10..18].try_into().ok()?);
        Some(Self {
            min_block: u16::from_be_bytes([body[0], body[1]]),
            max_block: u16::from_be_bytes([body[2], body[3]]),
            min_frame: u24(4),
            max_frame: u24(7),
            rate: (packed >> 44) as u32,
            channels: ((packed >> 41) & 0x7) as u8 + 1,
            bits: ((packed >> 36) & 0x1f) as u8 + 1,
            total: packed & 0xf_ffff_ffff,
            md5: body[18..34].try_into().ok()?,
        })
    }

    /// Whether `other` encodes the same kind of stream.
    fn same_stream(&self, other: &Self) -> bool {
        (self.max_block, self.rate, self.channels, self.bits)
            == (other.max_block, other.rate, other.channels, other.bits)
    }

    fn bytes(&self) -> [u8; 34] {
        let mut body = [0u8; 34];
        body[0..2].copy_from_slice(&self.min_block.to_be_bytes());
        body[2..4].copy_from_slice(&self.max_block.to_be_bytes());
        body[4..7].copy_from_slice(&self.min_frame.to_be_bytes()[1..]);
        body[7..10].copy_from_slice(&self.max_frame.to_be_bytes()[1..]);
        let packed = (u64::from(self.rate) << 44)
            | (u64::from(self.channels - 1) << 41)
            | (u64::from(self.bits - 1) << 36)
            | (self.total & 0xf_ffff_ffff);
        body[10..18].copy_from_slice(&packed.to_be_bytes());
        body[18..34].copy_from_slice(&self.md5);
        body
    }
}

/// A frame header's parts that renumbering needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// The header's length, CRC-8 included.
    length: usize,
    /// Numbered by sample (variable block size) rather than by frame.
    variable: bool,
    /// Where its coded number ends (the optional size and rate follow).
    number_end: usize,
    number: u64,
    block: u64,
}

impl Header {
    /// The header at the start of `bytes`, if one is there and its CRC-8
    /// checks.
    fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 6 || bytes[0] != 0xff || bytes[1] & 0xfe != 0xf8 {
            return None;
        }
        let size_code = bytes[2] >> 4;
        let rate_code = bytes[2] & 0x0f;
        if size_code == 0 || rate_code == 15 || bytes[3] & 0x01 != 0 {
            return None;
        }
        let (number, coded) = utf8_number(&bytes[4..])?;
        let number_end = 4 + coded;
        let size_bytes = match size_code {
            6 => 1,
            7 => 2,
            _ => 0,
        };
        let rate_bytes = match rate_code {
            12 => 1,
            13 | 14 => 2,
            _ => 0,
        };
        let crc_at = number_end + size_bytes + rate_bytes;
        if *bytes.get(crc_at)? != crc8(&bytes[..crc_at]) {
            return None;
        }
        let extra = &bytes[number_end..number_end + size_bytes];
        let block = match size_code {
            1 => 192,
            2..=5 => 576 << (size_code - 2),
            6 => u64::from(extra[0]) + 1,
            7 => u64::from(u16::from_be_bytes([extra[0], extra[1]])) + 1,
            _ => 256 << (size_code - 8),
        };
        Some(Self {
            length: crc_at + 1,
            variable: bytes[1] & 0x01 != 0,
            number_end,
            number,
            block,
        })
    }

    /// `frame` (which starts with this header) numbered `number`, its
    /// CRC-8 and CRC-16 made again.
    fn renumbered(&self, frame: &[u8], number: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(frame.len() + 6);
        out.extend_from_slice(&frame[..4]);
        out.extend_from_slice(&utf8_coded(number));
        out.extend_from_slice(&frame[self.number_end..self.length - 1]);
        out.push(crc8(&out));
        out.extend_from_slice(&frame[self.length..frame.len() - 2]);
        out.extend_from_slice(&crc16(0, &out).to_be_bytes());
        out
    }
}

/// A frame or sample number in FLAC's extended UTF-8 coding: the number
/// and the bytes it took.
fn utf8_number(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let count = first.leading_ones() as usize;
    let (mut number, length) = match count {
        0 => return Some((u64::from(first), 1)),
        2..=7 => (u64::from(first & (0x7f >> count)), count),
        _ => return None,
    };
    for &byte in bytes.get(1..length)? {
        if byte & 0xc0 != 0x80 {
            return None;
        }
        number = (number << 6) | u64::from(byte & 0x3f);
    }
    Some((number, length))
}

fn utf8_coded(number: u64) -> Vec<u8> {
    if number < 0x80 {
        return vec![number as u8];
    }
    // Bytes needed: each continuation carries 6 bits, the first 6 - n + 1.
    let length = (2..=7).find(|&n| number < 1u64 << (5 * n + 1)).unwrap_or(7);
    let mut out = vec![0u8; length];
    let mut rest = number;
    for byte in out[1..].iter_mut().rev() {
        *byte = 0x80 | (rest & 0x3f) as u8;
        rest >>= 6;
    }
    out[0] = (0xff00u16 >> length) as u8 | rest as u8;
    out
}

/// The frames of a FLAC stream after its metadata, one at a time.
struct Frames<R> {
    input: R,
    buffer: Vec<u8>,
    ended: bool,
}

impl<R: Read> Frames<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::new(),
            ended: false,
        }
    }

    /// Reads more; false at the end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let mut chunk = [0u8; 64 * 1024];
        let read = self.input.read(&mut chunk)?;
        self.buffer.extend_from_slice(&chunk[..read]);
        self.ended = read == 0;
        Ok(read > 0)
    }

    fn next_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        while self.buffer.len() < 16 && self.fill()? {}
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let first =
            Header::parse(&self.buffer).ok_or_else(|| invalid("no FLAC frame where one begins"))?;
        // The CRC-16 of the bytes before a candidate next header is zero
        // when they are a whole frame (its own CRC-16 at its end).
        let mut crc = crc16(0, &self.buffer[..first.length]);
        let mut at = first.length;
        loop {
            while self.buffer.len() < at + 16 && self.fill()? {}
            // The next place a header could begin: a sync code (rare in
            // coded audio); the CRC-16 runs over the bytes up to it at once.
            let sync = self.buffer[at..]
                .windows(2)
                .position(|w| w[0] == 0xff && w[1] & 0xfe == 0xf8)
                .map(|i| at + i);
            let Some(sync) = sync else {
                if self.ended {
                    let end = self.buffer.len();
                    if crc16(crc, &self.buffer[at..end]) != 0 {
                        return Err(invalid("the last FLAC frame's CRC-16 does not check"));
                    }
                    return Ok(Some(std::mem::take(&mut self.buffer)));
                }
                // Keep the last byte: it may begin a sync code.
                let end = self.buffer.len() - 1;
                crc = crc16(crc, &self.buffer[at..end]);
                at = end;
                self.fill()?;
                continue;
            };
            crc = crc16(crc, &self.buffer[at..sync]);
            at = sync;
            while self.buffer.len() < at + 16 && self.fill()? {}
            if crc == 0 && Header::parse(&self.buffer[at..]).is_some() {
                let rest = self.buffer.split_off(at);
                return Ok(Some(std::mem::replace(&mut self.buffer, rest)));
            }
            crc = crc16(crc, &self.buffer[at..at + 1]);
            at += 1;
        }
    }
}

fn crc8(bytes: &[u8]) -> u8 {
    crc::FLAC_HEADER.update(0, bytes) as u8
}

fn crc16(crc: u16, bytes: &[u8]) -> u16 {
    crc::FLAC_FRAME.update(u32::from(crc), bytes) as u16
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_code_both_ways() {
        for number in [
            0u64,
            1,
            0x7f,
            0x80,
            0x7ff,
            0x800,
            0xffff,
            0x1_0000,
            1 << 30,
            (1 << 36) - 1,
        ] {
            let coded = utf8_coded(number);
            assert_eq!(
                utf8_number(&coded),
                Some((number, coded.len())),
                "{number:#x}"
            );
        }
        assert_eq!(utf8_coded(0x80), vec![0xc2, 0x80]);
    }

    #[test]
    fn streaminfo_round_trips() {
        let info = StreamInfo {
            min_block: 4608,
            max_block: 4608,
            min_frame: 14,
            max_frame: 9000,
            rate: 44100,
            channels: 2,
            bits: 16,
            total: 79_380_000,
            md5: [7; 16],
        };
        assert_eq!(StreamInfo::parse(&info.bytes()), Some(info));
    }
}
