//! Gapless AAC: an M4A of ours presents exactly the input's samples, where
//! they were, as ffmpeg's own M4A files do.
//!
//! voaacenc encodes frames of [`FRAME`] samples, and what it encodes comes
//! out [`ENCODER_DELAY`] samples late (its priming). It also encodes no
//! last partial frame and never flushes the samples still in its delay
//! line, so on its own it loses the last 1600 + (n mod 1024) samples (33
//! to 55 ms at 48 kHz) and players start with 35 ms of silence. So:
//!
//! - the graph gives the encoder [`padding`] samples of silence after the
//!   audio (not counted as audio, not in the waveform), enough for every
//!   real sample to come out;
//! - once mp4mux has written the file, [`present_exactly`] sets its edit
//!   list to skip the priming and end with the last real sample
//!   (`media_time` = the delay, `segment_duration` = the samples, rounded
//!   up to the movie's timescale), which ffmpeg, browsers and Apple's
//!   players honour; the track's and the movie's durations follow.
//!
//! Only fixed-width fields are overwritten: no box grows or moves.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use vidaud_mp4::boxes::{BoxHeader, child, descend, small_body};

/// Samples in one AAC frame.
pub const FRAME: u64 = 1024;

/// How late voaacenc's output is: measured (any rate, channels and bitrate;
/// `tests/transcoder.rs` checks it against ffmpeg's decode of every format).
pub const ENCODER_DELAY: u64 = 1600;

/// Silence to give the encoder after `samples` real ones: the fewest that
/// make whole frames and push the last real sample out of the delay line.
pub fn padding(samples: u64) -> u64 {
    (samples + ENCODER_DELAY).div_ceil(FRAME) * FRAME - samples
}

/// The largest `mvhd`, `tkhd`, `mdhd` or `elst` we read (an `elst` of a
/// few entries; ours has one or two).
const MAX_BOX: u64 = 4096;

/// Sets the edit list of the M4A at `path` (mp4mux's, one track) to
/// present `samples` samples at `rate` after the encoder's delay. A file
/// without an edit list is left as it is (mp4mux 1.22 always writes one).
pub fn present_exactly(path: &Path, samples: u64, rate: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let length = file.metadata()?.len();
    let malformed = |what: &str| io::Error::other(format!("our M4A's {what} is not as written"));
    let moov = child(&mut file, 0, length, b"moov")?.ok_or_else(|| malformed("moov"))?;
    let trak = child(&mut file, moov.body, moov.end, b"trak")?.ok_or_else(|| malformed("trak"))?;
    let Some(mut edits) = Full::read(&mut file, trak, &[b"edts", b"elst"])? else {
        return Ok(());
    };
    let mut mvhd = Full::read(&mut file, moov, &[b"mvhd"])?.ok_or_else(|| malformed("mvhd"))?;
    let mut tkhd = Full::read(&mut file, trak, &[b"tkhd"])?.ok_or_else(|| malformed("tkhd"))?;
    let mdhd =
        Full::read(&mut file, trak, &[b"mdia", b"mdhd"])?.ok_or_else(|| malformed("mdhd"))?;

    // mvhd and mdhd: version and flags, two times, then the timescale (a
    // 32-bit field in both versions) and the duration.
    let movie_scale = mvhd.uint_at(mvhd.by_version(12, 20), 4)?;
    let media_scale = mdhd.uint_at(mdhd.by_version(12, 20), 4)?;
    if movie_scale == 0 || media_scale == 0 || rate == 0 {
        return Err(malformed("timescale"));
    }
    let duration = (u128::from(samples) * u128::from(movie_scale)).div_ceil(u128::from(rate));
    let duration = u64::try_from(duration).map_err(|_| malformed("duration"))?;
    let delay = ENCODER_DELAY * media_scale / u64::from(rate);

    // elst: version and flags, the entry count, then per entry the
    // segment's duration, its media time (-1: an empty edit) and rate.
    let width = edits.time_width();
    let count = edits.uint_at(4, 4)? as usize;
    let mut total = 0u64;
    let mut real = Vec::new();
    for index in 0..count {
        let at = 8 + index * (2 * width + 4);
        let media_time = edits.int_at(at + width, width)?;
        if media_time == -1 {
            total += edits.uint_at(at, width)?;
        } else {
            real.push((at, media_time));
        }
    }
    let [(at, media_time)] = real[..] else {
        return Err(malformed("edit list"));
    };
    total += duration;
    edits.set(at, width, duration)?;
    edits.set(
        at + width,
        width,
        u64::try_from(media_time).unwrap_or(0) + delay,
    )?;
    edits.write(&file)?;

    // The track's duration (after two times, its id and a reserved word)
    // and the movie's (after two times and the timescale), both in the
    // movie's timescale.
    for (header, v0, v1) in [(&mut tkhd, 20, 28), (&mut mvhd, 16, 24)] {
        header.set(header.by_version(v0, v1), header.time_width(), total)?;
        header.write(&file)?;
    }
    file.sync_data()
}

/// A small "full box" (version and flags first) read whole, to be changed
/// in place and written back where it was.
struct Full {
    at: u64,
    body: Vec<u8>,
}

impl Full {
    /// The box at the end of `path` under `scope`, if there is one.
    fn read(
        file: &mut std::fs::File,
        scope: BoxHeader,
        path: &[&[u8; 4]],
    ) -> io::Result<Option<Self>> {
        let Some(found) = descend(file, scope, path)? else {
            return Ok(None);
        };
        let body = small_body(file, found, MAX_BOX)?
            .ok_or_else(|| io::Error::other("a header box larger than any we write"))?;
        Ok(Some(Self {
            at: found.body,
            body,
        }))
    }

    fn version(&self) -> u8 {
        self.body.first().copied().unwrap_or(0)
    }

    /// Where a field lies: at `v0` in a version 0 box, at `v1` in a
    /// version 1 box (whose times are 64-bit).
    fn by_version(&self, v0: usize, v1: usize) -> usize {
        if self.version() == 1 { v1 } else { v0 }
    }

    /// The bytes of a time or duration: 8 in version 1, else 4.
    fn time_width(&self) -> usize {
        self.by_version(4, 8)
    }

    fn field(&self, at: usize, width: usize) -> io::Result<&[u8]> {
        self.body
            .get(at..at + width)
            .ok_or_else(|| io::Error::other("a box shorter than its fields"))
    }

    fn uint_at(&self, at: usize, width: usize) -> io::Result<u64> {
        Ok(self
            .field(at, width)?
            .iter()
            .fold(0u64, |value, &byte| value << 8 | u64::from(byte)))
    }

    /// A signed field of `width` bytes (4 or 8).
    fn int_at(&self, at: usize, width: usize) -> io::Result<i64> {
        let value = self.uint_at(at, width)?;
        Ok(if width == 4 {
            i64::from(value as u32 as i32)
        } else {
            value as i64
        })
    }

    fn set(&mut self, at: usize, width: usize, value: u64) -> io::Result<()> {
        if width == 4 && value > u64::from(u32::MAX) {
            return Err(io::Error::other("a duration too long for its field"));
        }
        let bytes = value.to_be_bytes();
        self.body
            .get_mut(at..at + width)
            .ok_or_else(|| io::Error::other("a box shorter than its fields"))?
            .copy_from_slice(&bytes[8 - width..]);
        Ok(())
    }

    fn write(&self, file: &std::fs::File) -> io::Result<()> {
        file.write_all_at(&self.body, self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidaud_mp4::boxes::boxed;

    #[test]
    fn padding_pushes_every_sample_out_in_whole_frames() {
        for samples in [0, 1, 1024, 158_400, 240_000, 1 << 30] {
            let total = samples + padding(samples);
            assert_eq!(total % FRAME, 0, "{samples}");
            assert!(total >= samples + ENCODER_DELAY, "{samples}");
            assert!(total < samples + ENCODER_DELAY + FRAME, "{samples}");
        }
    }

    /// A full box of `kind`: version, no flags, then `fields`.
    fn full(kind: &[u8; 4], version: u8, fields: &[u8]) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 0];
        body.extend_from_slice(fields);
        boxed(kind, &body)
    }

    fn m4a(elst: &[u8]) -> Vec<u8> {
        let be = |v: u32| v.to_be_bytes();
        let mut mvhd = [0u8; 96];
        mvhd[8..12].copy_from_slice(&be(1800));
        mvhd[12..16].copy_from_slice(&be(8986));
        let mut tkhd = [0u8; 80];
        tkhd[16..20].copy_from_slice(&be(8986));
        let mut mdhd = [0u8; 20];
        mdhd[8..12].copy_from_slice(&be(48000));
        mdhd[12..16].copy_from_slice(&be(241_664));
        let mdia = boxed(b"mdia", &full(b"mdhd", 0, &mdhd));
        let mut trak = full(b"tkhd", 0, &tkhd);
        trak.extend(boxed(b"edts", elst));
        trak.extend(mdia);
        let mut moov = full(b"mvhd", 0, &mvhd);
        moov.extend(boxed(b"trak", &trak));
        let mut file = boxed(b"ftyp", b"M4A \0\0\0\0");
        file.extend(boxed(b"mdat", &[0u8; 64]));
        file.extend(boxed(b"moov", &moov));
        file
    }

    fn elst_v0(entries: &[(u32, i32)]) -> Vec<u8> {
        let mut fields = (entries.len() as u32).to_be_bytes().to_vec();
        for (duration, media_time) in entries {
            fields.extend(duration.to_be_bytes());
            fields.extend(media_time.to_be_bytes());
            fields.extend([0, 1, 0, 0]);
        }
        full(b"elst", 0, &fields)
    }

    fn find(bytes: &[u8], kind: &[u8; 4]) -> usize {
        bytes.windows(4).position(|w| w == kind).expect("box") + 4
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    #[test]
    fn the_edit_skips_the_priming_and_ends_with_the_last_sample() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), m4a(&elst_v0(&[(8986, 0)]))).expect("write");
        present_exactly(file.path(), 240_000, 48_000).expect("edit");
        let bytes = std::fs::read(file.path()).expect("read");
        let elst = find(&bytes, b"elst");
        // 240000 samples at 48 kHz: 9000 in the movie's 1800 per second.
        assert_eq!(u32_at(&bytes, elst + 8), 9000);
        assert_eq!(u32_at(&bytes, elst + 12), 1600);
        assert_eq!(u32_at(&bytes, find(&bytes, b"tkhd") + 20), 9000);
        assert_eq!(u32_at(&bytes, find(&bytes, b"mvhd") + 16), 9000);
        // Rounded up: never a sample short.
        present_exactly(file.path(), 240_001, 48_000).expect("edit");
        let bytes = std::fs::read(file.path()).expect("read");
        assert_eq!(u32_at(&bytes, elst + 8), 9001);
    }

    #[test]
    fn an_empty_edit_first_is_kept_and_counted() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), m4a(&elst_v0(&[(90, -1), (8986, 0)]))).expect("write");
        present_exactly(file.path(), 240_000, 48_000).expect("edit");
        let bytes = std::fs::read(file.path()).expect("read");
        let elst = find(&bytes, b"elst");
        assert_eq!(u32_at(&bytes, elst + 8), 90);
        assert_eq!(u32_at(&bytes, elst + 20), 9000);
        assert_eq!(u32_at(&bytes, elst + 24), 1600);
        assert_eq!(u32_at(&bytes, find(&bytes, b"mvhd") + 16), 9090);
    }

    #[test]
    fn files_not_as_written_are_refused_or_left_alone() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        let two_real = m4a(&elst_v0(&[(10, 0), (10, 5)]));
        std::fs::write(file.path(), &two_real).expect("write");
        assert!(present_exactly(file.path(), 240_000, 48_000).is_err());
        assert_eq!(std::fs::read(file.path()).expect("read"), two_real);
        let mut no_edits = boxed(b"ftyp", b"M4A \0\0\0\0");
        no_edits.extend(boxed(b"moov", &boxed(b"trak", &[])));
        std::fs::write(file.path(), &no_edits).expect("write");
        present_exactly(file.path(), 240_000, 48_000).expect("left alone");
        assert_eq!(std::fs::read(file.path()).expect("read"), no_edits);
    }
}
