//! Chapters in MP4 files, in the Nero `chpl` box (`moov/udta/chpl`), which
//! ffmpeg, mp4v2 (HandBrake) and most taggers write and read: read from an
//! input (GStreamer's MP4 demuxer reports no chapters), and added to an
//! M4A we wrote (mp4mux writes none), with any iTunes freeform tags
//! (`----`, `com.apple.iTunes`: ReplayGain's) beside them in a `meta`.
//!
//! Reading is done on an untrusted file, in the conversion child: only box
//! headers are read on the way down, every size is checked against its
//! parent, and the box itself is read only if it is small (it holds at
//! most 255 titles of 255 bytes). Where there is no `chpl`, the QuickTime
//! chapter track is read (`quicktime.rs`): a text track that another
//! track's `tref/chap` points at, as Apple's tools write chapters.
//!
//! Writing needs the media to lie before the `moov` box (mp4mux puts it
//! after the media unless told to start fast): a new `udta` holding the
//! `chpl` is added at the end of `moov` and its size grown, so no media
//! offset moves; what follows `moov` (mp4mux's XMP `uuid` box, small) is
//! moved along after it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::boxes::{BoxHeader, boxed, child, children, descend, header, small_body};
use crate::{Chapter, Source};

/// `chpl` times are in units of 100 ns.
const UNITS_PER_NS: u64 = 100;
/// A `chpl` larger than this is not ours to read (255 × (9 + 255) + 9).
const MAX_CHPL: u64 = 70_000;
/// The most that may follow `moov` in a file we add chapters to.
const MAX_TAIL: u64 = 1 << 20;

/// The chapters of the MP4 at `path`: its `moov/udta/chpl`, else its
/// QuickTime chapter track; none when it is not an MP4 (its first box is
/// not `ftyp`) or has neither; none that begins where its sound ends
/// ([`sound_length`]) or after. Errors only on I/O.
pub fn read(path: &Path) -> io::Result<Vec<Chapter>> {
    read_from(&mut File::open(path)?)
}

/// The chapters of the MP4 `source` holds, as [`read`] finds them.
pub fn read_from(source: &mut dyn Source) -> io::Result<Vec<Chapter>> {
    let Some(moov) = file_moov(source)? else {
        return Ok(Vec::new());
    };
    let chapters = marks(source, moov)?;
    if chapters.is_empty() {
        return Ok(chapters);
    }
    Ok(match sound_length(source, moov)? {
        Some(length) => chapters
            .into_iter()
            .filter(|c| c.start_ns < length)
            .collect(),
        None => chapters,
    })
}

/// The `moov` box of an MP4 (a file whose first box is `ftyp`).
fn file_moov(file: &mut dyn Source) -> io::Result<Option<BoxHeader>> {
    let length = file.seek(SeekFrom::End(0))?;
    match header(file, 0, length)? {
        Some(first) if &first.kind == b"ftyp" => child(file, 0, length, b"moov"),
        _ => Ok(None),
    }
}

/// How long the file's longest sound track plays (ns): its edit list's
/// segments, in the movie's time scale (what a player presents: the
/// encoder's priming and padding left out), else its media header
/// (`mdia/mdhd`). Not the movie's duration: a chapter track, which may
/// list marks long past the sound, counts in that.
fn sound_length(file: &mut dyn Source, moov: BoxHeader) -> io::Result<Option<u64>> {
    let movie_scale = match descend(file, moov, &[b"mvhd"])? {
        Some(mvhd) => small_body(file, mvhd, 1024)?.and_then(|body| {
            let at = if body.first() == Some(&1) { 20 } else { 12 };
            be(&body, at, 4)
        }),
        None => None,
    };
    let mut longest = None;
    let traks = children(file, moov.body, moov.end, 4096)?;
    for trak in traks.into_iter().filter(|b| &b.kind == b"trak").take(64) {
        let handler = match descend(file, trak, &[b"mdia", b"hdlr"])? {
            Some(hdlr) => small_body(file, hdlr, 1024)?,
            None => None,
        };
        // Version and flags, pre_defined, then the handler type.
        if handler.as_ref().and_then(|h| h.get(8..12)) != Some(b"soun") {
            continue;
        }
        let Some(mdhd) = descend(file, trak, &[b"mdia", b"mdhd"])? else {
            continue;
        };
        let Some(mdhd) = small_body(file, mdhd, 1024)? else {
            continue;
        };
        // Version 1: 64-bit creation and modification times and duration.
        let (scale_at, wide) = if mdhd.first() == Some(&1) {
            (20, true)
        } else {
            (12, false)
        };
        let media = be(&mdhd, scale_at, 4).zip(be(&mdhd, scale_at + 4, if wide { 8 } else { 4 }));
        let edited = match (movie_scale, descend(file, trak, &[b"edts", b"elst"])?) {
            (Some(scale), Some(elst)) => small_body(file, elst, MAX_CHPL)?
                .and_then(|body| edited_duration(&body))
                .filter(|d| *d > 0)
                .map(|d| (scale, d)),
            _ => None,
        };
        let Some((scale, duration)) = edited.or(media).filter(|(scale, _)| *scale > 0) else {
            continue;
        };
        let ns = u128::from(duration) * 1_000_000_000 / u128::from(scale);
        let ns = u64::try_from(ns).unwrap_or(u64::MAX);
        longest = Some(longest.map_or(ns, |l: u64| l.max(ns)));
    }
    Ok(longest)
}

/// A big-endian number of `width` bytes at `at`, if the body holds it.
fn be(body: &[u8], at: usize, width: usize) -> Option<u64> {
    body.get(at..at + width)
        .map(|b| b.iter().fold(0u64, |n, byte| n << 8 | u64::from(*byte)))
}

/// The sum of an edit list's segment durations (movie time scale): how
/// long the track plays, delays included.
fn edited_duration(elst: &[u8]) -> Option<u64> {
    let wide = elst.first() == Some(&1);
    let count = be(elst, 4, 4)?;
    let entry = if wide { 20 } else { 12 };
    (0..usize::try_from(count).ok()?.min(4096))
        .map(|i| be(elst, 8 + i * entry, if wide { 8 } else { 4 }))
        .try_fold(0u64, |sum, d| Some(sum.saturating_add(d?)))
}

/// The chapter marks `moov` lists.
fn marks(file: &mut dyn Source, moov: BoxHeader) -> io::Result<Vec<Chapter>> {
    let chpl = match descend(file, moov, &[b"udta", b"chpl"])? {
        Some(chpl) => small_body(file, chpl, MAX_CHPL)?
            .map(|body| parse_chpl(&body))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if !chpl.is_empty() {
        return Ok(chpl);
    }
    crate::quicktime::read(file, moov)
}

/// A `chpl` body: version, flags, (version 1: four reserved bytes), a
/// count, then per chapter its start (u64, 100 ns), its title's length (a
/// byte) and its title.
/// What is cut short ends the list.
fn parse_chpl(body: &[u8]) -> Vec<Chapter> {
    let Some(&version) = body.first() else {
        return Vec::new();
    };
    let mut at = if version == 0 { 4 } else { 8 };
    let Some(&count) = body.get(at) else {
        return Vec::new();
    };
    at += 1;
    let mut chapters = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let Some(start) = body.get(at..at + 8) else {
            break;
        };
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(start);
        let start_ns = u64::from_be_bytes(bytes).saturating_mul(UNITS_PER_NS);
        let Some(&len) = body.get(at + 8) else {
            break;
        };
        let Some(title) = body.get(at + 9..at + 9 + usize::from(len)) else {
            break;
        };
        chapters.push(Chapter {
            start_ns,
            title: String::from_utf8_lossy(title).into_owned(),
        });
        at += 9 + usize::from(len);
    }
    chapters
}

/// The `----` atoms (iTunes freeform, `com.apple.iTunes`) of `freeform`.
fn freeform_atoms(freeform: &[(&str, String)]) -> Vec<u8> {
    let mut atoms = Vec::new();
    for (name, value) in freeform {
        let full = |text: &[u8]| [&[0u8; 4][..], text].concat();
        let mut atom = boxed(b"mean", &full(b"com.apple.iTunes"));
        atom.extend(boxed(b"name", &full(name.as_bytes())));
        // Type 1 (UTF-8), locale 0, the text.
        atom.extend(boxed(
            b"data",
            &[&[0, 0, 0, 1, 0, 0, 0, 0][..], value.as_bytes()].concat(),
        ));
        atoms.extend(boxed(b"----", &atom));
    }
    atoms
}

/// A `meta` (iTunes metadata handler) whose `ilst` holds `items`.
fn meta(items: &[u8]) -> Vec<u8> {
    // Full box: version and flags, then a handler and the list.
    let mut hdlr = vec![0u8; 8];
    hdlr.extend_from_slice(b"mdirappl");
    hdlr.extend_from_slice(&[0u8; 9]);
    let mut body = vec![0u8; 4];
    body.extend(boxed(b"hdlr", &hdlr));
    body.extend(boxed(b"ilst", items));
    boxed(b"meta", &body)
}

fn chpl(chapters: &[Chapter]) -> Vec<u8> {
    let mut chpl = vec![1, 0, 0, 0, 0, 0, 0, 0, chapters.len().min(255) as u8];
    for chapter in chapters.iter().take(255) {
        let mut cut = chapter.title.len().min(255);
        while !chapter.title.is_char_boundary(cut) {
            cut -= 1;
        }
        chpl.extend_from_slice(&(chapter.start_ns / UNITS_PER_NS).to_be_bytes());
        chpl.push(cut as u8);
        chpl.extend_from_slice(&chapter.title.as_bytes()[..cut]);
    }
    boxed(b"chpl", &chpl)
}

/// The boxes laid end to end in `bytes`: (type, the whole box), in order;
/// what does not parse ends the list.
fn boxes_in(bytes: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut found = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let kind = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
        let size = match size {
            0 => bytes.len() - at,
            1 => match bytes.get(at + 8..at + 16) {
                Some(large) => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(large);
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX)
                }
                None => break,
            },
            n => n as usize,
        };
        let Some(whole) = at.checked_add(size).and_then(|end| bytes.get(at..end)) else {
            break;
        };
        if size < 8 {
            break;
        }
        found.push((kind, whole));
        at += size;
    }
    found
}

/// A box's body: what follows its header (8 bytes, or 16 with a 64-bit size).
fn body_of(whole: &[u8]) -> &[u8] {
    let header = if whole.get(..4) == Some(&[0, 0, 0, 1]) {
        16
    } else {
        8
    };
    &whole[header.min(whole.len())..]
}

/// `container`'s children, the first of `kind` replaced by `edit` of it
/// (or `edit(None)` added at the end when there is none): the new body.
fn edit_child(
    container: &[u8],
    kind: &[u8; 4],
    edit: impl FnOnce(Option<&[u8]>) -> Vec<u8>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(container.len() + 1024);
    let mut edit = Some(edit);
    for (child, whole) in boxes_in(container) {
        if &child == kind
            && let Some(edit) = edit.take()
        {
            body.extend(edit(Some(whole)));
        } else {
            body.extend_from_slice(whole);
        }
    }
    if let Some(edit) = edit {
        body.extend(edit(None));
    }
    body
}

/// `moov`'s body with the chapters and freeform tags in its `udta`: the
/// `chpl` added to the one `udta` there is (made when there is none), and
/// the freeform atoms to its `meta`'s `ilst`, so that a reader that looks
/// at the first `udta` only (mutagen, iTunes) finds them with the title.
fn tagged_moov(moov: &[u8], chapters: &[Chapter], freeform: &[(&str, String)]) -> Vec<u8> {
    edit_child(moov, b"udta", |udta| {
        let mut body = udta.map(body_of).unwrap_or_default().to_vec();
        if !freeform.is_empty() {
            let atoms = freeform_atoms(freeform);
            body = edit_child(&body, b"meta", |found| match found {
                Some(found) => {
                    let meta = body_of(found);
                    // A full box: version and flags before its children.
                    let (flags, children) = meta.split_at(4.min(meta.len()));
                    let children = edit_child(children, b"ilst", |ilst| {
                        let mut items = ilst.map(body_of).unwrap_or_default().to_vec();
                        items.extend_from_slice(&atoms);
                        boxed(b"ilst", &items)
                    });
                    boxed(b"meta", &[flags, &children].concat())
                }
                None => meta(&atoms),
            });
        }
        if !chapters.is_empty() {
            body.extend(chpl(chapters));
        }
        boxed(b"udta", &body)
    })
}

/// The most of a `moov` box read to add to it: its sample tables for six
/// hours of audio are a few MB.
const MAX_MOOV: u64 = 32 << 20;

/// Adds `chapters` and `freeform` tags to the M4A at `path` (see the
/// module docs); nothing for none.
pub fn append(path: &Path, chapters: &[Chapter], freeform: &[(&str, String)]) -> io::Result<()> {
    if chapters.is_empty() && freeform.is_empty() {
        return Ok(());
    }
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let length = file.metadata()?.len();
    let mut at = 0;
    let mut moov = None;
    let mut media_after_moov = false;
    while let Some(found) = header(&mut file, at, length)? {
        match &found.kind {
            b"moov" => moov = Some((at, found)),
            b"mdat" | b"moof" if moov.is_some() => media_after_moov = true,
            _ => {}
        }
        at = found.end;
    }
    let Some((moov_at, moov)) = moov else {
        return Err(io::Error::other("the file has no moov box"));
    };
    if media_after_moov || length - moov.end > MAX_TAIL {
        return Err(io::Error::other("media follows the moov box"));
    }
    if moov.end - moov.body > MAX_MOOV {
        return Err(io::Error::other("the moov box is too large to add tags to"));
    }
    let mut old = Vec::new();
    file.seek(SeekFrom::Start(moov.body))?;
    (&mut file)
        .take(moov.end - moov.body)
        .read_to_end(&mut old)?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let new = boxed(b"moov", &tagged_moov(&old, chapters, freeform));
    file.seek(SeekFrom::Start(moov_at))?;
    file.write_all(&new)?;
    file.write_all(&tail)?;
    // The new moov is as long or longer: nothing of the old is left over.
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chapter(ms: u64, title: &str) -> Chapter {
        Chapter {
            start_ns: ms * 1_000_000,
            title: title.to_owned(),
        }
    }

    #[test]
    fn chapters_written_read_back() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        let mut bytes = boxed(b"ftyp", b"M4A \0\0\0\0");
        bytes.extend(boxed(b"mdat", &[0u8; 100]));
        bytes.extend(boxed(b"moov", &boxed(b"mvhd", &[0u8; 20])));
        std::fs::write(file.path(), &bytes).expect("write");
        let chapters = [chapter(0, "Intro"), chapter(3_000, "Ende – Schluss")];
        append(file.path(), &chapters, &[]).expect("append");
        assert_eq!(read(file.path()).expect("read"), chapters);
        // Not an MP4, or cut short: no chapters, no error.
        std::fs::write(file.path(), b"RIFF....WAVE").expect("write");
        assert!(read(file.path()).expect("read").is_empty());
        assert!(parse_chpl(&[1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]).is_empty());
    }

    #[test]
    fn tags_join_the_udta_and_ilst_that_are_there() {
        // As mp4mux writes an M4A: a udta with the title in meta/ilst.
        let file = tempfile::NamedTempFile::new().expect("temp");
        let title = boxed(b"\xa9nam", &boxed(b"data", b"\0\0\0\x01\0\0\0\0clip"));
        let mut bytes = boxed(b"ftyp", b"M4A \0\0\0\0");
        bytes.extend(boxed(b"mdat", &[0u8; 100]));
        let udta = boxed(b"udta", &meta(&title));
        bytes.extend(boxed(b"moov", &[boxed(b"mvhd", &[0u8; 20]), udta].concat()));
        std::fs::write(file.path(), &bytes).expect("write");
        append(
            file.path(),
            &[chapter(0, "a")],
            &[("replaygain_track_gain", "+1.00 dB".into())],
        )
        .expect("append");
        assert_eq!(read(file.path()).expect("read"), [chapter(0, "a")]);
        let written = std::fs::read(file.path()).expect("read");
        let top = boxes_in(&written);
        let moov = top.iter().find(|(k, _)| k == b"moov").expect("moov").1;
        let udtas: Vec<_> = boxes_in(body_of(moov))
            .into_iter()
            .filter(|(k, _)| k == b"udta")
            .collect();
        assert_eq!(udtas.len(), 1, "one udta");
        let udta = boxes_in(body_of(udtas[0].1));
        let kinds: Vec<[u8; 4]> = udta.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [*b"meta", *b"chpl"]);
        let ilst = boxes_in(&body_of(udta[0].1)[4..])
            .into_iter()
            .find(|(k, _)| k == b"ilst")
            .expect("ilst")
            .1;
        let items: Vec<[u8; 4]> = boxes_in(body_of(ilst)).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            items,
            [*b"\xa9nam", *b"----"],
            "the title kept, the tag beside it"
        );
    }

    #[test]
    fn what_follows_moov_moves_along_and_media_after_it_is_left_alone() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        let mut bytes = boxed(b"ftyp", b"M4A \0\0\0\0");
        bytes.extend(boxed(b"mdat", &[0u8; 100]));
        bytes.extend(boxed(b"moov", &boxed(b"mvhd", &[0u8; 20])));
        let xmp = boxed(b"uuid", &[7u8; 40]);
        bytes.extend(&xmp);
        std::fs::write(file.path(), &bytes).expect("write");
        append(file.path(), &[chapter(0, "a")], &[("x", "y".into())]).expect("append");
        assert_eq!(read(file.path()).expect("read"), [chapter(0, "a")]);
        assert!(std::fs::read(file.path()).expect("read").ends_with(&xmp));

        let mut bytes = boxed(b"ftyp", b"M4A \0\0\0\0");
        bytes.extend(boxed(b"moov", &boxed(b"mvhd", &[0u8; 20])));
        bytes.extend(boxed(b"mdat", &[0u8; 100]));
        std::fs::write(file.path(), &bytes).expect("write");
        assert!(append(file.path(), &[chapter(0, "a")], &[]).is_err());
        assert_eq!(std::fs::read(file.path()).expect("read"), bytes);
    }

    /// The fuzz targets' seeds are what they claim: ffmpeg's MP4 with a
    /// `chpl` and its MOV with the QuickTime chapter track alone.
    #[test]
    fn the_fuzz_seeds_hold_chapters_both_ways() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/mp4");
        for seed in ["chpl.m4a", "quicktime.mov"] {
            let bytes = std::fs::read(seeds.join(seed)).expect("seed");
            let chapters = read_from(&mut io::Cursor::new(&bytes[..])).expect("read");
            assert_eq!(
                chapters,
                [chapter(0, "Intro"), chapter(100, "Ende – Schluss")],
                "{seed}"
            );
        }
    }
}
