//! The ID3v2.4 tag at the front of our MP3s: text frames only, UTF-8.
//!
//! Written by us because the encoder is called directly (see `lame.rs`):
//! LAME's own tag writer knows Latin-1 and UTF-16 only, and we want the
//! title from any file name and the input's own tags carried over.

use gstreamer as gst;

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

/// The whole tag: header and frames. Empty when there are no frames.
pub fn tag(frames: &[(&str, String)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (id, text) in frames {
        // Encoding byte 3 = UTF-8; ID3v2.4 sizes are "synchsafe" (7 bits a byte).
        let size = 1 + text.len();
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(&synchsafe(size));
        body.extend_from_slice(&[0, 0, 3]);
        body.extend_from_slice(text.as_bytes());
    }
    if body.is_empty() {
        return body;
    }
    let mut tag = Vec::with_capacity(10 + body.len());
    tag.extend_from_slice(b"ID3\x04\x00\x00");
    tag.extend_from_slice(&synchsafe(body.len()));
    tag.extend_from_slice(&body);
    tag
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
        let tag = tag(&[("TIT2", "Ünïcode ✓".to_owned())]);
        assert_eq!(&tag[..6], b"ID3\x04\x00\x00");
        let body = tag.len() - 10;
        assert_eq!(tag[6..10], synchsafe(body));
        assert_eq!(&tag[10..14], b"TIT2");
        assert_eq!(tag[20], 3, "UTF-8");
        assert_eq!(&tag[21..], "Ünïcode ✓".as_bytes());
        assert_eq!(synchsafe(200), [0, 0, 1, 0x48]);
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
        assert!(tag(&super::frames(None, None)).is_empty());
    }
}
