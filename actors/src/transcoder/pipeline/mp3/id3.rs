//! The ID3v2.4 tag at the front of our MP3s: text frames (UTF-8), user
//! text frames (TXXX: ReplayGain's, written with placeholders and filled
//! in at the end) and the input's chapters (CHAP frames, each titled by a
//! TIT2 sub-frame, and a CTOC listing them in order, as ID3's chapter
//! addendum has them).
//!
//! Written by us because the encoder is called directly (see `lame.rs`):
//! LAME's own tag writer knows Latin-1 and UTF-16 only, and we want the
//! title from any file name and the input's own tags carried over.

use gstreamer as gst;

use crate::transcoder::pipeline::Chapter;

/// Text frames taken from the input's tags, by ID3v2.4 frame id. The title
/// is the job's (from the file name, or the one given) and replaces the
/// input's.
pub fn frames(title: Option<&str>, input: Option<&gst::TagList>) -> Vec<(&'static str, String)> {
    let mut frames = Vec::new();
    let title = title
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| text::<gst::tags::Title>(input));
    if let Some(title) = title {
        frames.push(("TIT2", title));
    }
    let carried = [
        ("TPE1", text::<gst::tags::Artist>(input)),
        ("TPE2", text::<gst::tags::AlbumArtist>(input)),
        ("TALB", text::<gst::tags::Album>(input)),
        ("TCOM", text::<gst::tags::Composer>(input)),
        ("TCON", text::<gst::tags::Genre>(input)),
        ("TRCK", number::<gst::tags::TrackNumber>(input)),
        ("TDRC", year(input)),
    ];
    frames.extend(
        carried
            .into_iter()
            .filter_map(|(id, value)| Some((id, value?)))
            .filter(|(_, value)| !value.is_empty()),
    );
    frames
}

fn text<'a, T: gst::Tag<'a, TagType = &'a str>>(tags: Option<&'a gst::TagList>) -> Option<String> {
    Some(tags?.get::<T>()?.get().to_owned())
}

fn number<'a, T: gst::Tag<'a, TagType = u32>>(tags: Option<&'a gst::TagList>) -> Option<String> {
    Some(tags?.get::<T>()?.get().to_string())
}

fn year(tags: Option<&gst::TagList>) -> Option<String> {
    let date = tags?.get::<gst::tags::DateTime>()?;
    Some(date.get().year().to_string())
}

/// A written tag, and where in it the values known only once the audio is
/// lie: the last chapter's end time (see [`end_last_chapter`]) and each
/// user text's value.
pub struct Tag {
    pub bytes: Vec<u8>,
    pub last_chapter_end_at: Option<usize>,
    pub user_text_at: Vec<usize>,
}

/// The whole tag: header, text frames, user text frames (description,
/// value), chapters. Empty when there is nothing to say.
pub fn tag(frames: &[(&str, String)], user_texts: &[(&str, String)], chapters: &[Chapter]) -> Tag {
    let mut body = Vec::new();
    for (id, text) in frames {
        frame(&mut body, id, &text_body(text));
    }
    let mut user_text_at = Vec::new();
    for (description, value) in user_texts {
        // UTF-8, the description, a null, the value.
        let text = text_body(&format!("{description}\0{value}"));
        user_text_at.push(10 + body.len() + 10 + text.len() - value.len());
        frame(&mut body, "TXXX", &text);
    }
    let mut last_chapter_end_at = None;
    for (index, chapter) in chapters.iter().enumerate() {
        // Element id, start and end (ms), start and end byte offsets
        // (unused: all ones), then the title as a sub-frame.
        let mut chap = element_id(index);
        chap.extend_from_slice(&millis(chapter.start_ns).to_be_bytes());
        let end_at = chap.len();
        let end = chapters
            .get(index + 1)
            .map_or(0, |next| millis(next.start_ns));
        chap.extend_from_slice(&end.to_be_bytes());
        chap.extend_from_slice(&[0xff; 8]);
        frame(&mut chap, "TIT2", &text_body(&chapter.title));
        // The frame's own header is 10 bytes.
        last_chapter_end_at = Some(10 + body.len() + 10 + end_at);
        frame(&mut body, "CHAP", &chap);
    }
    if !chapters.is_empty() {
        // Top-level and ordered; the chapters' element ids, in order.
        let mut toc = b"toc\0".to_vec();
        toc.extend_from_slice(&[0x03, chapters.len().min(255) as u8]);
        for index in 0..chapters.len().min(255) {
            toc.extend(element_id(index));
        }
        frame(&mut body, "CTOC", &toc);
    }
    if body.is_empty() {
        return Tag {
            bytes: body,
            last_chapter_end_at: None,
            user_text_at,
        };
    }
    let mut bytes = Vec::with_capacity(10 + body.len());
    bytes.extend_from_slice(b"ID3\x04\x00\x00");
    bytes.extend_from_slice(&synchsafe(body.len()));
    bytes.extend_from_slice(&body);
    Tag {
        bytes,
        last_chapter_end_at,
        user_text_at,
    }
}

/// The last chapter's end time field's bytes for audio `length_ms` long:
/// never before the chapter's start (`start_ms`), so a file that claimed
/// more audio than it held ends its last chapter where it begins.
pub fn end_last_chapter(start_ms: u32, length_ms: u64) -> [u8; 4] {
    u32::try_from(length_ms)
        .unwrap_or(u32::MAX)
        .max(start_ms)
        .to_be_bytes()
}

/// The length of the ID3v2 tag whose 10-byte header is `head`, footer
/// included; `None` when `head` is not one.
pub(crate) fn tag_len(head: &[u8; 10]) -> Option<u64> {
    if &head[..3] != b"ID3" {
        return None;
    }
    let size = head[6..10]
        .iter()
        .fold(0u64, |n, b| (n << 7) | u64::from(b & 0x7f));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// In a whole tag of ours (`tag`'s bytes), where the last chapter's end
/// time is and that chapter's start, in ms: what a joined file's length
/// fills in (`segments::join::mp3`).
pub(crate) fn last_chapter_end(tag: &[u8]) -> Option<(usize, u32)> {
    let mut at = 10;
    let mut last = None;
    while let Some(header) = tag.get(at..at + 10) {
        if header[0] == 0 {
            break; // padding
        }
        let size = header[4..8]
            .iter()
            .fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
        let body = tag.get(at + 10..at + 10 + size)?;
        if &header[..4] == b"CHAP" {
            // Element id (null-terminated), start, end.
            let id_end = body.iter().position(|&b| b == 0)? + 1;
            let start = body.get(id_end..id_end + 4)?;
            let start = u32::from_be_bytes([start[0], start[1], start[2], start[3]]);
            last = Some((at + 10 + id_end + 4, start));
        }
        at += 10 + size;
    }
    last
}

/// Appends a frame: id, synchsafe size, no flags, body.
fn frame(into: &mut Vec<u8>, id: &str, body: &[u8]) {
    into.extend_from_slice(id.as_bytes());
    into.extend_from_slice(&synchsafe(body.len()));
    into.extend_from_slice(&[0, 0]);
    into.extend_from_slice(body);
}

/// A text frame's body: encoding byte 3 (UTF-8), the text.
fn text_body(text: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + text.len());
    body.push(3);
    body.extend_from_slice(text.as_bytes());
    body
}

/// `chp0`, `chp1`…, null-terminated.
fn element_id(index: usize) -> Vec<u8> {
    format!("chp{index}\0").into_bytes()
}

fn millis(ns: u64) -> u32 {
    u32::try_from(ns / 1_000_000).unwrap_or(u32::MAX)
}

fn synchsafe(size: usize) -> [u8; 4] {
    // A tag of 256 MiB or more cannot be written; titles are far shorter.
    let size = size.min(0x0fff_ffff) as u32;
    [
        (size >> 21) as u8 & 0x7f,
        (size >> 14) as u8 & 0x7f,
        (size >> 7) as u8 & 0x7f,
        size as u8 & 0x7f,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let tag = tag(&[("TIT2", "Ünïcode ✓".to_owned())], &[], &[]).bytes;
        assert_eq!(&tag[..6], b"ID3\x04\x00\x00");
        let body = tag.len() - 10;
        assert_eq!(tag[6..10], synchsafe(body));
        assert_eq!(&tag[10..14], b"TIT2");
        assert_eq!(tag[20], 3, "UTF-8");
        assert_eq!(&tag[21..], "Ünïcode ✓".as_bytes());
        assert_eq!(synchsafe(200), [0, 0, 1, 0x48]);
    }

    #[test]
    fn chapters_are_chap_frames_and_a_ctoc() {
        let chapters = [
            Chapter {
                start_ns: 0,
                title: "Intro".into(),
            },
            Chapter {
                start_ns: 3_000_000_000,
                title: "Zwei".into(),
            },
        ];
        let Tag {
            bytes,
            last_chapter_end_at,
            user_text_at,
        } = tag(
            &[],
            &[("REPLAYGAIN_TRACK_PEAK", "0.000000".into())],
            &chapters,
        );
        let at = user_text_at[0];
        assert_eq!(
            &bytes[at - 22..at + 8],
            b"REPLAYGAIN_TRACK_PEAK\x000.000000"
        );
        assert_eq!(&bytes[at - 33..at - 29], b"TXXX");
        let chap = bytes.windows(4).position(|w| w == b"CHAP").expect("CHAP");
        // chp0: 0 → 3000 ms.
        assert_eq!(&bytes[chap + 10..chap + 15], b"chp0\0");
        assert_eq!(bytes[chap + 15..chap + 23], [0, 0, 0, 0, 0, 0, 0x0b, 0xb8]);
        let at = last_chapter_end_at.expect("an end to fill in");
        assert_eq!(&bytes[at - 9..at - 4], b"chp1\0");
        assert_eq!(bytes[at - 4..at], 3000u32.to_be_bytes());
        assert_eq!(bytes[at..at + 4], [0; 4], "filled in at the end");
        // Found again by reading the tag, as a join does.
        assert_eq!(last_chapter_end(&bytes), Some((at, 3000)));
        let head: [u8; 10] = bytes[..10].try_into().expect("a header");
        assert_eq!(tag_len(&head), Some(bytes.len() as u64));
        let toc = bytes.windows(4).position(|w| w == b"CTOC").expect("CTOC");
        assert_eq!(&bytes[toc + 10..], b"toc\0\x03\x02chp0\0chp1\0");
        assert_eq!(end_last_chapter(7_000, 10_031), 10_031u32.to_be_bytes());
        // Never an end before the start.
        assert_eq!(end_last_chapter(12_000, 10_031), 12_000u32.to_be_bytes());
    }

    #[test]
    fn our_title_wins_and_the_rest_is_carried() {
        gst::init().expect("gstreamer");
        let mut input = gst::TagList::new();
        {
            let input = input.get_mut().expect("fresh");
            input.add::<gst::tags::Title>(&"theirs", gst::TagMergeMode::Append);
            input.add::<gst::tags::Artist>(&"someone", gst::TagMergeMode::Append);
        }
        let frames = frames(Some("ours"), Some(&input));
        assert_eq!(
            frames,
            vec![("TIT2", "ours".to_owned()), ("TPE1", "someone".to_owned())]
        );
        assert_eq!(super::frames(None, Some(&input))[0].1, "theirs");
        assert!(tag(&super::frames(None, None), &[], &[]).bytes.is_empty());
    }
}
