//! QuickTime chapter tracks, as Apple's tools (and ffmpeg, beside `chpl`)
//! write chapters: a text track that another track's `tref/chap` names,
//! one sample per chapter, each sample a 16-bit length and the title (UTF-8,
//! or UTF-16 after a byte-order mark), at the time the track's sample table
//! gives it.
//!
//! The input is untrusted and read in the conversion child: only the
//! chapter track's small tables are read whole (each at most
//! [`MAX_TABLE`] bytes), at most [`MAX_SAMPLES`] samples are followed, and
//! every count and offset is checked before it is used.

use std::io::{self, SeekFrom};

use crate::boxes::{BoxHeader, child, children, descend, small_body};
use crate::{Chapter, Source};

/// Chapters followed at most (the most any output carries).
const MAX_SAMPLES: usize = 255;
/// A sample table larger than this is not a chapter track's.
const MAX_TABLE: u64 = 64 * 1024;
/// Tracks looked at at most.
const MAX_TRACKS: usize = 64;

/// The chapters of the first chapter track `moov` names; none without one.
pub(crate) fn read(file: &mut dyn Source, moov: BoxHeader) -> io::Result<Vec<Chapter>> {
    let traks: Vec<BoxHeader> = children(file, moov.body, moov.end, 4096)?
        .into_iter()
        .filter(|b| &b.kind == b"trak")
        .take(MAX_TRACKS)
        .collect();
    let mut named = Vec::new();
    for trak in &traks {
        if let Some(chap) = descend(file, *trak, &[b"tref", b"chap"])?
            && let Some(body) = small_body(file, chap, 1024)?
        {
            named.extend(body.chunks_exact(4).map(|id| be32(id, 0)));
        }
    }
    for trak in &traks {
        let Some(tkhd) = child(file, trak.body, trak.end, b"tkhd")? else {
            continue;
        };
        let Some(tkhd) = small_body(file, tkhd, 1024)? else {
            continue;
        };
        // Version 1 has 64-bit times before the track id.
        let id_at = if tkhd.first() == Some(&1) { 20 } else { 12 };
        if tkhd.len() >= id_at + 4 && named.contains(&be32(&tkhd, id_at)) {
            return track(file, *trak);
        }
    }
    Ok(Vec::new())
}

/// One chapter track's samples as chapters; none where it is not readable.
fn track(file: &mut dyn Source, trak: BoxHeader) -> io::Result<Vec<Chapter>> {
    let table = |file: &mut dyn Source, kind: &[u8; 4]| -> io::Result<Option<Vec<u8>>> {
        match descend(file, trak, &[b"mdia", b"minf", b"stbl", kind])? {
            Some(found) => small_body(file, found, MAX_TABLE),
            None => Ok(None),
        }
    };
    let Some(mdhd) = descend(file, trak, &[b"mdia", b"mdhd"])? else {
        return Ok(Vec::new());
    };
    let Some(mdhd) = small_body(file, mdhd, 1024)? else {
        return Ok(Vec::new());
    };
    let timescale_at = if mdhd.first() == Some(&1) { 20 } else { 12 };
    let timescale = match mdhd.get(timescale_at..timescale_at + 4) {
        Some(bytes) if be32(bytes, 0) > 0 => u64::from(be32(bytes, 0)),
        _ => return Ok(Vec::new()),
    };
    let (Some(stts), Some(stsz), Some(stsc)) = (
        table(file, b"stts")?,
        table(file, b"stsz")?,
        table(file, b"stsc")?,
    ) else {
        return Ok(Vec::new());
    };
    let offsets: Vec<u64> = match (table(file, b"stco")?, table(file, b"co64")?) {
        (Some(stco), _) => entries(&stco, 4).map(|e| u64::from(be32(e, 0))).collect(),
        (None, Some(co64)) => entries(&co64, 8).map(|e| be64(e, 0)).collect(),
        (None, None) => return Ok(Vec::new()),
    };
    let starts = sample_starts(&stts);
    let sizes = sample_sizes(&stsz);
    let places = sample_offsets(&stsc, &offsets, &sizes);
    let mut chapters = Vec::new();
    for ((start, size), offset) in starts.into_iter().zip(sizes).zip(places) {
        chapters.push(Chapter {
            start_ns: u64::try_from(u128::from(start) * 1_000_000_000 / u128::from(timescale))
                .unwrap_or(u64::MAX),
            title: title(file, offset, size)?,
        });
    }
    Ok(chapters)
}

/// A full box's table: its entries of `width` bytes after version, flags
/// and a count (no more than the body holds, at most [`MAX_SAMPLES`] ×
/// 16 of them).
fn entries(body: &[u8], width: usize) -> impl Iterator<Item = &[u8]> {
    let count = body.get(4..8).map_or(0, |c| be32(c, 0) as usize);
    body.get(8..)
        .unwrap_or_default()
        .chunks_exact(width)
        .take(count.min(MAX_SAMPLES * 16))
}

/// Each sample's start, in the track's timescale (`stts`).
fn sample_starts(stts: &[u8]) -> Vec<u64> {
    let mut starts = Vec::new();
    let mut time = 0u64;
    for entry in entries(stts, 8) {
        let (count, delta) = (be32(entry, 0), u64::from(be32(entry, 4)));
        for _ in 0..count {
            if starts.len() == MAX_SAMPLES {
                return starts;
            }
            starts.push(time);
            time = time.saturating_add(delta);
        }
    }
    starts
}

/// Each sample's size (`stsz`: one size for all, or a table).
fn sample_sizes(stsz: &[u8]) -> Vec<u32> {
    let (Some(fixed), Some(count)) = (stsz.get(4..8), stsz.get(8..12)) else {
        return Vec::new();
    };
    let (fixed, count) = (be32(fixed, 0), (be32(count, 0) as usize).min(MAX_SAMPLES));
    if fixed > 0 {
        return vec![fixed; count];
    }
    stsz.get(12..)
        .unwrap_or_default()
        .chunks_exact(4)
        .take(count)
        .map(|size| be32(size, 0))
        .collect()
}

/// Each sample's file offset: chunks hold runs of samples (`stsc`: from
/// which chunk on, how many per chunk), each chunk at its offset (`stco`).
fn sample_offsets(stsc: &[u8], chunks: &[u64], sizes: &[u32]) -> Vec<u64> {
    let runs: Vec<(usize, u32)> = entries(stsc, 12)
        .map(|e| ((be32(e, 0) as usize).max(1), be32(e, 4)))
        .collect();
    let mut offsets = Vec::new();
    let mut sample = 0;
    for (index, &chunk_at) in chunks.iter().enumerate() {
        let chunk = index + 1;
        let per_chunk = runs
            .iter()
            .rev()
            .find(|(first, _)| *first <= chunk)
            .map_or(0, |&(_, n)| n);
        let mut at = chunk_at;
        for _ in 0..per_chunk {
            let Some(&size) = sizes.get(sample) else {
                return offsets;
            };
            offsets.push(at);
            at = at.saturating_add(u64::from(size));
            sample += 1;
        }
    }
    offsets
}

/// A text sample's title: a 16-bit length, then UTF-8 (or UTF-16 after a
/// byte-order mark); an unreadable one is untitled.
fn title(file: &mut dyn Source, offset: u64, size: u32) -> io::Result<String> {
    let size = size.min(2 + 1024) as usize;
    if size < 2 || file.seek(SeekFrom::Start(offset)).is_err() {
        return Ok(String::new());
    }
    let mut sample = vec![0u8; size];
    let read = file.read(&mut sample)?;
    sample.truncate(read);
    let length = sample
        .get(..2)
        .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    let text = sample
        .get(2..2 + length.min(read.saturating_sub(2)))
        .unwrap_or_default();
    Ok(match text {
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        _ => String::from_utf8_lossy(text).into_owned(),
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|b| unit([b[0], b[1]])).collect();
    String::from_utf16_lossy(&units)
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn be64(bytes: &[u8], at: usize) -> u64 {
    (u64::from(be32(bytes, at)) << 32) | u64::from(be32(bytes, at + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(entries: &[&[u32]]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for entry in entries {
            for value in *entry {
                body.extend_from_slice(&value.to_be_bytes());
            }
        }
        body
    }

    #[test]
    fn sample_tables() {
        // Two samples of 3000, one of 4000 (timescale units).
        assert_eq!(
            sample_starts(&full(&[&[2, 3000], &[1, 4000]])),
            [0, 3000, 6000]
        );
        // Sizes given one by one.
        let mut stsz = vec![0u8; 4];
        stsz.extend_from_slice(&0u32.to_be_bytes());
        stsz.extend_from_slice(&3u32.to_be_bytes());
        for size in [7u32, 9, 11] {
            stsz.extend_from_slice(&size.to_be_bytes());
        }
        assert_eq!(sample_sizes(&stsz), [7, 9, 11]);
        // Chunk 1 holds two samples, chunk 2 on one each.
        let stsc = full(&[&[1, 2, 1], &[2, 1, 1]]);
        assert_eq!(
            sample_offsets(&stsc, &[100, 500], &[7, 9, 11]),
            [100, 107, 500]
        );
        // A table that claims more than it holds gives what it holds.
        assert_eq!(sample_starts(&full(&[&[u32::MAX, 1]])).len(), MAX_SAMPLES);
        assert!(sample_sizes(&[0, 0]).is_empty());
    }

    #[test]
    fn titles_in_utf8_and_utf16() {
        let mut file = tempfile::tempfile().expect("temp");
        let mut bytes = vec![0, 5];
        bytes.extend_from_slice(b"Intro");
        bytes.extend_from_slice(&[0, 6, 0xfe, 0xff, 0, b'Z', 0, b'w']);
        std::io::Write::write_all(&mut file, &bytes).expect("write");
        assert_eq!(title(&mut file, 0, 7).expect("read"), "Intro");
        assert_eq!(title(&mut file, 7, 8).expect("read"), "Zw");
        assert_eq!(title(&mut file, 100, 8).expect("read"), "", "past the end");
    }
}
