//! MP3 segments into one MP3: the first segment's tag and Xing/LAME
//! frame, then each segment's frames from its join to the next, with one
//! header describing the whole.
//!
//! Two things make MP3 frames unlike packets that can be cut anywhere. The
//! MDCT overlaps each frame with the one before, so every segment is
//! encoded from well before its bound to well after the next (`plan.rs`:
//! 400 ms each side), and its frames fall on a single pass's frame grid
//! (a segment starts encoding at a whole frame of the output). And the bit
//! reservoir: a frame's main data may start up to 511 bytes (255 below
//! 32 kHz) before the frame, in the payload of the frames before it
//! (`main_data_begin`). At the join, segment B's first kept frame `J`
//! draws on B's own frames before `J`, which the joined file does not
//! have. So the join is made at a frame `J` near the bound where B's
//! frame draws no more on the frames before it than A's frame `J` does
//! (those bytes of A's are then free: A's frames before `J` ended their
//! main data before them), and the bytes it draws on are copied from B's
//! frames into the end of A's. Every frame after `J` is B's own, byte for
//! byte; every frame before is A's; the decoder finds each frame's main
//! data where that frame's encoder put it.
//!
//! A `J` is sought within half the lead either side of the bound, the
//! bound first, then later frames (B has settled longer), then earlier
//! ones. Read and written a frame at a time: what is held is the frames
//! of one join's window and the last 511 bytes of payload written.

mod frames;
mod info;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use self::frames::{Frame, SegmentFile};
use self::info::{InfoFrame, Whole};
use super::{JoinError, Joined, Piece, read_error};
use crate::transcoder::crc::LAME;
use crate::transcoder::pipeline::mp3::frame::FrameHeader;
use crate::transcoder::pipeline::mp3::id3;
use crate::transcoder::segments::plan::SplitPlan;

pub(super) fn join(
    plan: &SplitPlan,
    segments: &[Piece],
    output: &Path,
) -> Result<Joined, JoinError> {
    let open = |index: usize| {
        let path = &segments[index];
        SegmentFile::open(path).map_err(read_error(index, path))
    };
    let mismatch = |index: usize, what: &str| JoinError::Mismatch {
        index,
        what: what.to_owned(),
    };
    let (mut current, info) = open(0)?;
    let first = info.header;
    let spf = first.samples;
    let info = InfoFrame::read(info).map_err(|what| mismatch(0, what))?;
    let mut out = Writer::create(output, &current.tag, info.frame()).map_err(JoinError::Write)?;
    let mut padding = info.padding();
    // The segment being read, and the global index (on a single pass's
    // frame grid) of the frame it reads next. Every frame read from it is
    // kept: a segment's lead-in was read with the join before it.
    let mut index = 0;
    let mut next_frame = plan.parts[0].encoded_from / spf;
    loop {
        let path = &segments[index];
        let Some(next) = plan.parts.get(index + 1) else {
            // The last segment: every frame to its end.
            while let Some(frame) = current.next().map_err(read_error(index, path))? {
                out.push(frame).map_err(JoinError::Write)?;
            }
            break;
        };
        // The join's window, on the global frame grid.
        let bound = next.keep_from / spf;
        let half = (next.keep_from - next.encoded_from) / spf / 2;
        let (low, high) = (bound - half, bound + half);
        // This segment's frames up to the window are written; those in
        // it are held until the join is chosen.
        let mut held: Vec<Frame> = Vec::new();
        while let Some(frame) = current.next().map_err(read_error(index, path))? {
            let at = next_frame;
            next_frame += 1;
            if at < low {
                out.push(frame).map_err(JoinError::Write)?;
            } else if at <= high {
                held.push(frame);
            } else {
                break;
            }
        }
        if held.len() as u64 != high - low + 1 {
            return Err(mismatch(index, "it ends before the join's window"));
        }
        // The next segment's frames up to the window's end.
        let (mut following, following_info) = open(index + 1)?;
        let following_info =
            InfoFrame::read(following_info).map_err(|what| mismatch(index + 1, what))?;
        if !alike(following_info.frame().header, first) {
            return Err(mismatch(
                index + 1,
                "its encoder was set up unlike the first's",
            ));
        }
        let start = next.encoded_from / spf;
        let mut head: Vec<Frame> = Vec::new();
        for _ in start..=high {
            let frame = following
                .next()
                .map_err(read_error(index + 1, &segments[index + 1]))?
                .ok_or_else(|| mismatch(index + 1, "it ends before the join's window"))?;
            head.push(frame);
        }
        let cut = choose_cut(&held, low, &head, start, bound, high).ok_or_else(|| {
            mismatch(
                index + 1,
                "no frame near its bound where its bit reservoir fits the previous segment's",
            )
        })?;
        // This segment's frames before the cut, then the bytes the next
        // one's frame at the cut draws on, then the next one's frames.
        for frame in held.drain(..(cut - low) as usize) {
            out.push(frame).map_err(JoinError::Write)?;
        }
        let first_kept = (cut - start) as usize;
        let draws = head[first_kept].main_data_begin();
        let reservoir = tail_of_payloads(&head[..first_kept], draws)
            .ok_or_else(|| mismatch(index + 1, "its first frames hold less than it draws on"))?;
        out.patch_tail(&reservoir).map_err(JoinError::Write)?;
        for frame in head.drain(first_kept..) {
            out.push(frame).map_err(JoinError::Write)?;
        }
        padding = following_info.padding();
        current = following;
        index += 1;
        next_frame = high + 1;
    }
    let (samples, bytes) = out.finish(info, padding).map_err(JoinError::Write)?;
    if samples == 0 {
        return Err(mismatch(index, "fewer samples than its delay and padding"));
    }
    Ok(Joined {
        samples,
        rate: first.rate,
        bytes,
    })
}

/// The frame at which to join: the first of the bound, then the frames
/// after it, then those before, where the next segment's frame draws on
/// no more bytes before it than this segment's frame there does. `held`
/// are this segment's frames from `low`, `head` the next's from `start`.
fn choose_cut(
    held: &[Frame],
    low: u64,
    head: &[Frame],
    start: u64,
    bound: u64,
    high: u64,
) -> Option<u64> {
    let later = bound..=high;
    let earlier = (low..bound).rev();
    later.chain(earlier).find(|&cut| {
        let ours = &held[(cut - low) as usize];
        cut > start
            && head
                .get((cut - start) as usize)
                .is_some_and(|theirs| theirs.main_data_begin() <= ours.main_data_begin())
    })
}

/// The last `count` bytes of the frames' payloads, in order.
fn tail_of_payloads(frames: &[Frame], count: usize) -> Option<Vec<u8>> {
    let mut tail = VecDeque::with_capacity(count);
    for frame in frames.iter().rev() {
        for &byte in frame.payload().iter().rev() {
            if tail.len() == count {
                return Some(tail.into());
            }
            tail.push_front(byte);
        }
    }
    (tail.len() == count).then(|| tail.into())
}

/// Whether a segment's frames are like the first's (rate, channels, MPEG
/// version): LAME set up alike.
fn alike(theirs: FrameHeader, first: FrameHeader) -> bool {
    (theirs.rate, theirs.mono, theirs.mpeg1) == (first.rate, first.mono, first.mpeg1)
}

/// The joined file as it is written: frames go out once the reservoir
/// can no longer reach back into them, so the bytes a join draws on can
/// still be written over; the music's CRC, its length and a sparse table
/// of frame offsets (for the seek table) are kept as they go.
struct Writer {
    file: BufWriter<File>,
    /// Where the header's frame starts (after the ID3 tag).
    info_at: u64,
    info_len: u64,
    /// Where the tag's last chapter end is, and that chapter's start.
    chapter_end: Option<(usize, u32)>,
    pending: VecDeque<Frame>,
    pending_payload: usize,
    frames: u64,
    music_bytes: u64,
    music_crc: u16,
    offsets: Offsets,
}

/// The most a frame draws on the frames before it (MPEG-1's 9 bits).
const MAX_RESERVOIR: usize = 511;

impl Writer {
    fn create(path: &Path, tag: &[u8], info: &Frame) -> io::Result<Self> {
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(tag)?;
        // A placeholder: written over once the whole is known.
        file.write_all(&info.bytes)?;
        Ok(Self {
            file,
            info_at: tag.len() as u64,
            info_len: info.bytes.len() as u64,
            chapter_end: id3::last_chapter_end(tag),
            pending: VecDeque::new(),
            pending_payload: 0,
            frames: 0,
            music_bytes: 0,
            music_crc: 0,
            offsets: Offsets::default(),
        })
    }

    fn push(&mut self, frame: Frame) -> io::Result<()> {
        self.pending_payload += frame.payload().len();
        self.pending.push_back(frame);
        while let Some(front) = self.pending.front()
            && self.pending_payload - front.payload().len() >= MAX_RESERVOIR
        {
            let front = self.pending.pop_front().expect("a front frame");
            self.pending_payload -= front.payload().len();
            self.write(&front)?;
        }
        Ok(())
    }

    /// Writes `bytes` over the last of the payloads not yet written.
    fn patch_tail(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > self.pending_payload {
            return Err(io::Error::other(
                "a join draws on more bytes than the frames before it hold",
            ));
        }
        let mut left = bytes;
        for frame in self.pending.iter_mut().rev() {
            if left.is_empty() {
                break;
            }
            let payload = frame.payload_mut();
            let n = payload.len().min(left.len());
            let (rest, last) = left.split_at(left.len() - n);
            let len = payload.len();
            payload[len - n..].copy_from_slice(last);
            left = rest;
        }
        Ok(())
    }

    fn write(&mut self, frame: &Frame) -> io::Result<()> {
        self.offsets
            .note(self.frames, self.info_len + self.music_bytes);
        self.file.write_all(&frame.bytes)?;
        self.music_crc = LAME.update(self.music_crc, &frame.bytes);
        self.music_bytes += frame.bytes.len() as u64;
        self.frames += 1;
        Ok(())
    }

    /// Writes what is pending, then the header and the last chapter's end
    /// over their placeholders; the samples the file holds (its frames'
    /// but for the encoder's delay, the first segment's, and the last
    /// one's `padding`) and the file's size.
    fn finish(mut self, info: InfoFrame, padding: u64) -> io::Result<(u64, u64)> {
        while let Some(frame) = self.pending.pop_front() {
            self.write(&frame)?;
        }
        let header = info.frame().header;
        let samples = (self.frames * header.samples).saturating_sub(info.delay() + padding);
        let length_ms = samples * 1000 / u64::from(header.rate.max(1));
        let stream = self.info_len + self.music_bytes;
        let whole = Whole {
            frames: u32::try_from(self.frames).unwrap_or(u32::MAX),
            bytes: u32::try_from(stream).unwrap_or(u32::MAX),
            toc: self.offsets.toc(self.frames, stream),
            padding: u16::try_from(padding).unwrap_or(u16::MAX),
            music_crc: self.music_crc,
        };
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(self.info_at))?;
        file.write_all(&info.describing(&whole))?;
        if let Some((at, start_ms)) = self.chapter_end {
            file.seek(SeekFrom::Start(at as u64))?;
            file.write_all(&id3::end_last_chapter(start_ms, length_ms))?;
        }
        file.flush()?;
        Ok((samples, self.info_at + stream))
    }
}

/// Byte offsets of every `stride`th frame, at most `LIMIT` of them (the
/// stride doubles when full): enough for a 100-entry seek table of any
/// length of file.
struct Offsets {
    stride: u64,
    offsets: Vec<u64>,
}

const LIMIT: usize = 1024;

impl Default for Offsets {
    fn default() -> Self {
        Self {
            stride: 1,
            offsets: Vec::new(),
        }
    }
}

impl Offsets {
    fn note(&mut self, frame: u64, offset: u64) {
        if !frame.is_multiple_of(self.stride) {
            return;
        }
        if self.offsets.len() == LIMIT {
            let kept: Vec<u64> = self.offsets.iter().copied().step_by(2).collect();
            self.offsets = kept;
            self.stride *= 2;
            if !frame.is_multiple_of(self.stride) {
                return;
            }
        }
        self.offsets.push(offset);
    }

    /// The Xing seek table: for each percent of the frames, where that
    /// frame starts in 256ths of the stream.
    fn toc(&self, frames: u64, stream: u64) -> [u8; 100] {
        let mut toc = [0u8; 100];
        for (percent, entry) in toc.iter_mut().enumerate() {
            let frame = frames * percent as u64 / 100;
            let index = ((frame / self.stride) as usize).min(self.offsets.len().saturating_sub(1));
            let offset = self.offsets.get(index).copied().unwrap_or(0);
            *entry = (offset * 256 / stream.max(1)).min(255) as u8;
        }
        toc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_bounded_and_make_a_rising_table() {
        let mut offsets = Offsets::default();
        for frame in 0..100_000u64 {
            offsets.note(frame, 100 + frame * 418);
        }
        assert!(offsets.offsets.len() <= LIMIT);
        let toc = offsets.toc(100_000, 100 + 100_000 * 418);
        assert_eq!(toc[0], 0);
        assert!(toc.windows(2).all(|w| w[0] <= w[1]));
        assert!((127..=129).contains(&toc[50]), "{}", toc[50]);
    }
}
