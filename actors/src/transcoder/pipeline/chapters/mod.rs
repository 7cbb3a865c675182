//! Chapter marks, kept from the input in the output: where they come from
//! (the demuxer's table of contents — Matroska, WebM — or, for MP4 and
//! QuickTime, whose GStreamer demuxer reads none, the file's Nero `chpl`
//! box or its QuickTime chapter track, read by the `vidaud-mp4` crate), how a trim moves them, and how each format carries
//! them: an MP3 in its ID3v2 tag (CHAP and CTOC frames, `mp3/id3.rs`), Opus
//! and FLAC as Vorbis comments (`CHAPTER000=00:01:02.500`,
//! `CHAPTER000NAME=…`, given to the encoder as tags), M4A as a `chpl` box
//! added to the finished file (`vidaud_mp4::append_chapters`).
//!
//! They are settled once, when the first audio reaches the tap: by then
//! the demuxer has sent its table of contents (it comes before any data),
//! and no encoder has written its header yet (they write it with the first
//! audio). The table of contents itself goes no further: flacenc would
//! make a CUESHEET of it beside our comments.

use std::sync::{Arc, Mutex, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::output::OutputOptions;

/// One chapter: where it starts in the audio and its title.
pub use vidaud_mp4::Chapter;

/// At most this many chapters are kept (the most any of the formats holds:
/// `chpl` counts them in one byte).
const MAX_CHAPTERS: usize = 255;

/// The chapters of one conversion, as they become known.
#[derive(Default)]
pub struct ChapterMarks {
    /// From the input file itself, read before the pipeline starts (MP4).
    from_file: Vec<Chapter>,
    /// From the demuxer's table of contents.
    from_toc: Mutex<Option<Vec<Chapter>>>,
    /// What the output carries, in its time (settled at the first audio).
    settled: OnceLock<Vec<Chapter>>,
}

impl ChapterMarks {
    pub(super) fn new(from_file: Vec<Chapter>) -> Arc<Self> {
        Arc::new(Self {
            from_file,
            ..Self::default()
        })
    }

    /// The output's chapters, once the first audio has passed the tap.
    pub fn settled(&self) -> &[Chapter] {
        self.settled.get().map_or(&[], Vec::as_slice)
    }

    /// Settles the output's chapters (once): the table of contents', else
    /// the file's, moved by the trim; none that begins where the audio has
    /// ended (`length`, the input's duration, when it is known) or after.
    fn settle(&self, trim: (u64, Option<u64>), length: Option<u64>) -> Option<&[Chapter]> {
        if self.settled.get().is_some() {
            return None;
        }
        let toc = self.from_toc.lock().ok().and_then(|mut t| t.take());
        let chapters = toc.unwrap_or_else(|| self.from_file.clone());
        let stop = match (trim.1, length) {
            (Some(stop), Some(length)) => Some(stop.min(length)),
            (stop, length) => stop.or(length),
        };
        let _ = self.settled.set(within(chapters, trim.0, stop));
        Some(self.settled())
    }
}

/// The probe on the tap's pad: takes the table of contents (and stops it
/// there), and at the first audio settles the chapters and hands them to
/// `encoder`, the element that writes Vorbis comments, if there is one.
pub(super) fn watch(
    pad: &gst::Pad,
    info: &gst::PadProbeInfo,
    marks: &ChapterMarks,
    options: &OutputOptions,
    encoder: Option<&gst::TagSetter>,
) -> gst::PadProbeReturn {
    match &info.data {
        Some(gst::PadProbeData::Event(event)) => {
            if let gst::EventView::Toc(toc) = event.view() {
                if let Ok(mut slot) = marks.from_toc.lock() {
                    *slot = Some(from_toc(toc.toc().0));
                }
                return gst::PadProbeReturn::Drop;
            }
        }
        Some(gst::PadProbeData::Buffer(_)) => {
            let start = super::nanos(options.start_secs.unwrap_or(0.0));
            let stop = options.duration_secs.map(|d| start + super::nanos(d));
            // The input's length as its demuxer knows it by now: chapters
            // a file lists past its audio's end are not the output's.
            let length = pad
                .peer_query_duration::<gst::ClockTime>()
                .map(gst::ClockTime::nseconds)
                .filter(|length| *length > 0);
            if marks.settled.get().is_none()
                && let Some(chapters) = marks.settle((start, stop), length)
                && let Some(encoder) = encoder
            {
                for comment in vorbis_comments(chapters) {
                    encoder.add_tag::<gst::tags::ExtendedComment>(
                        &comment.as_str(),
                        gst::TagMergeMode::Append,
                    );
                }
            }
        }
        _ => {}
    }
    gst::PadProbeReturn::Ok
}

/// The chapters of a table of contents: its chapter entries at every
/// depth (Matroska puts them under an edition), by start.
fn from_toc(toc: &gst::TocRef) -> Vec<Chapter> {
    fn collect(entries: &[gst::TocEntry], into: &mut Vec<Chapter>) {
        for entry in entries {
            if entry.entry_type() == gst::TocEntryType::Chapter
                && let Some((start, _)) = entry.start_stop_times()
            {
                let title = entry
                    .tags()
                    .and_then(|tags| tags.get::<gst::tags::Title>().map(|t| t.get().to_owned()))
                    .unwrap_or_default();
                into.push(Chapter {
                    start_ns: u64::try_from(start).unwrap_or(0),
                    title,
                });
            }
            collect(&entry.sub_entries(), into);
        }
    }
    let mut chapters = Vec::new();
    collect(&toc.entries(), &mut chapters);
    chapters
}

/// The chapters as the output sees them, with the input's
/// `start..stop` (ns) kept: sorted, moved back by `start`; those that
/// begin at or after `stop` dropped; of those that begin before `start`,
/// only the last (the one playing there), at 0; at most [`MAX_CHAPTERS`].
pub fn within(mut chapters: Vec<Chapter>, start: u64, stop: Option<u64>) -> Vec<Chapter> {
    chapters.sort_by_key(|c| c.start_ns);
    let first_kept = chapters
        .iter()
        .rposition(|c| c.start_ns <= start)
        .unwrap_or(0);
    let mut kept: Vec<Chapter> = chapters
        .into_iter()
        .skip(first_kept)
        .filter(|c| stop.is_none_or(|stop| c.start_ns < stop))
        .map(|c| Chapter {
            start_ns: c.start_ns.saturating_sub(start),
            ..c
        })
        .collect();
    kept.dedup_by_key(|c| c.start_ns);
    kept.truncate(MAX_CHAPTERS);
    kept
}

/// Vorbis comments for the chapters (the chapter extension ffmpeg and
/// players read): `CHAPTER000=HH:MM:SS.mmm`, `CHAPTER000NAME=title`.
pub fn vorbis_comments(chapters: &[Chapter]) -> Vec<String> {
    chapters
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let ms = c.start_ns / 1_000_000;
            let time = format!(
                "{:02}:{:02}:{:02}.{:03}",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            );
            [
                format!("CHAPTER{i:03}={time}"),
                format!("CHAPTER{i:03}NAME={}", c.title),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, title: &str) -> Chapter {
        Chapter {
            start_ns: secs * 1_000_000_000,
            title: title.to_owned(),
        }
    }

    #[test]
    fn a_trim_moves_and_drops_chapters() {
        let all = vec![at(7, "c"), at(0, "a"), at(3, "b")];
        assert_eq!(
            within(all.clone(), 0, None),
            vec![at(0, "a"), at(3, "b"), at(7, "c")]
        );
        // From 2 s for 5 s: "a" plays at the start, "c" begins after the end.
        assert_eq!(
            within(all.clone(), 2_000_000_000, Some(7_000_000_000)),
            vec![at(0, "a"), at(1, "b")]
        );
        // From exactly a chapter's start.
        assert_eq!(
            within(all.clone(), 3_000_000_000, None),
            vec![at(0, "b"), at(4, "c")]
        );
        assert!(within(Vec::new(), 0, None).is_empty());
    }

    #[test]
    fn marks_past_the_audio_are_dropped_when_settled() {
        // 255 marks 0.5 s apart, 20 s of audio: the 40 within it remain.
        let many = (0..255u64)
            .map(|i| Chapter {
                start_ns: i * 500_000_000,
                title: format!("{i}"),
            })
            .collect();
        let marks = ChapterMarks::new(many);
        let settled = marks
            .settle((0, None), Some(20_000_000_000))
            .expect("settled")
            .to_vec();
        assert_eq!(settled.len(), 40);
        assert!(settled.iter().all(|c| c.start_ns < 20_000_000_000));
        // Settled once: a later call changes nothing.
        assert!(marks.settle((0, None), Some(1)).is_none());
        // A trim shorter than the audio is the bound; so is the audio.
        let odd = ChapterMarks::new(vec![at(30, "after"), at(6, "late"), at(0, "start")]);
        let settled = odd.settle((0, Some(5_000_000_000)), Some(10_000_000_000));
        assert_eq!(settled.map(<[Chapter]>::to_vec), Some(vec![at(0, "start")]));
        let odd = ChapterMarks::new(vec![at(30, "after"), at(6, "late"), at(0, "start")]);
        let settled = odd.settle((0, Some(40_000_000_000)), Some(10_000_000_000));
        assert_eq!(
            settled.map(<[Chapter]>::to_vec),
            Some(vec![at(0, "start"), at(6, "late")])
        );
    }

    #[test]
    fn vorbis_comments_count_from_zero_in_milliseconds() {
        let chapters = [
            at(0, "Intro"),
            Chapter {
                start_ns: 3_723_456_000_000,
                title: "Später".into(),
            },
        ];
        assert_eq!(
            vorbis_comments(&chapters),
            [
                "CHAPTER000=00:00:00.000",
                "CHAPTER000NAME=Intro",
                "CHAPTER001=01:02:03.456",
                "CHAPTER001NAME=Später"
            ]
        );
    }
}
