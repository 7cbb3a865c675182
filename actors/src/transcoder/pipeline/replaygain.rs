//! ReplayGain 2.0 tags (`replaygain`): the audio is left as it is and
//! tagged with the gain that would bring it to -18 LUFS and its peak, for
//! players to apply. One pass: the loudness stage meters the audio on its
//! way to the encoder, and the tags, which every format keeps ahead of the
//! audio, are written first with placeholders of fixed width and filled in
//! once the audio has been measured, in place:
//!
//! - MP3: TXXX `REPLAYGAIN_TRACK_GAIN` / `REPLAYGAIN_TRACK_PEAK` in our
//!   ID3v2 tag (`mp3/output.rs` fills them in);
//! - FLAC: the same two as Vorbis comments, in its VORBIS_COMMENT block;
//! - Opus: `R128_TRACK_GAIN` (RFC 7845: Q7.8 dB to -23 LUFS; an Opus file
//!   carries no REPLAYGAIN_* tags), in its OpusTags page, whose checksum is
//!   then made again;
//! - M4A: iTunes freeform atoms `replaygain_track_gain` /
//!   `replaygain_track_peak`, added with the chapters after the fact
//!   (`vidaud_mp4::append_chapters`).
//!
//! The gain is the reference less the integrated loudness (ITU-R BS.1770);
//! the peak is the true peak as a linear amplitude.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::domain::ReplayGainReport;
use crate::output::Format;

/// The tags' names.
pub const TRACK_GAIN: &str = "REPLAYGAIN_TRACK_GAIN";
pub const TRACK_PEAK: &str = "REPLAYGAIN_TRACK_PEAK";
const R128_TRACK_GAIN: &str = "R128_TRACK_GAIN";

/// Opus's reference loudness (RFC 7845), LUFS.
const R128_REFERENCE_LUFS: f64 = -23.0;

/// How far into a file its tags are looked for.
const HEADER_BYTES: u64 = 1 << 20;

/// `+02.01 dB`: nine characters whatever the gain (clamped to ±99.99 dB).
pub fn gain_text(db: f64) -> String {
    format!("{:+06.2} dB", db.clamp(-99.99, 99.99))
}

/// `0.223872`: eight characters (clamped under 10).
pub fn peak_text(peak: f64) -> String {
    format!("{:.6}", peak.clamp(0.0, 9.999_999))
}

/// `-00512`: R128_TRACK_GAIN in Q7.8, six characters.
fn r128_text(report: &ReplayGainReport) -> String {
    let gain = report
        .measured
        .integrated_lufs
        .map_or(0.0, |lufs| R128_REFERENCE_LUFS - lufs);
    format!(
        "{:+06}",
        (gain * 256.0).round().clamp(-32768.0, 32767.0) as i32
    )
}

/// The tags a format carries as Vorbis comments, as `NAME=value`.
fn comments(format: Format, report: &ReplayGainReport) -> Vec<String> {
    match format {
        Format::Flac => vec![
            format!("{TRACK_GAIN}={}", gain_text(report.track_gain_db)),
            format!("{TRACK_PEAK}={}", peak_text(report.track_peak)),
        ],
        Format::Opus => vec![format!("{R128_TRACK_GAIN}={}", r128_text(report))],
        Format::Mp3 | Format::Aac => Vec::new(),
    }
}

/// The same comments with placeholders, for the encoder to write.
pub fn placeholder_comments(format: Format) -> Vec<String> {
    comments(format, &placeholder())
}

/// A report whose texts are the placeholders (0 dB, 0.0): the same widths.
fn placeholder() -> ReplayGainReport {
    ReplayGainReport {
        measured: crate::domain::Loudness {
            integrated_lufs: None,
            range_lu: None,
            true_peak_dbtp: None,
        },
        track_gain_db: 0.0,
        track_peak: 0.0,
    }
}

/// The M4A's freeform atoms, by name.
pub fn freeform(report: &ReplayGainReport) -> Vec<(&'static str, String)> {
    vec![
        ("replaygain_track_gain", gain_text(report.track_gain_db)),
        ("replaygain_track_peak", peak_text(report.track_peak)),
    ]
}

/// Fills the placeholders of a FLAC or Opus file's comments in with
/// `report`'s values; an Opus page's checksum is made again. Only the
/// bytes that change are written.
pub fn fill_in(path: &Path, format: Format, report: &ReplayGainReport) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut head = Vec::new();
    (&mut file).take(HEADER_BYTES).read_to_end(&mut head)?;
    let mut changed = Vec::new();
    for (blank, filled) in placeholder_comments(format)
        .into_iter()
        .zip(comments(format, report))
    {
        let at = find(&head, blank.as_bytes())
            .ok_or_else(|| io::Error::other(format!("no {blank} placeholder in the file")))?;
        head[at..at + filled.len()].copy_from_slice(filled.as_bytes());
        changed.push(at..at + filled.len());
        if format == Format::Opus {
            changed.push(reseal_ogg_page(&mut head, at)?);
        }
    }
    // Written once all are filled in: a page holding two placeholders
    // gets the checksum of both.
    for range in changed {
        file.write_all_at(&head[range.clone()], range.start as u64)?;
    }
    file.sync_data()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Makes again the checksum of the Ogg page of `head` that holds byte
/// `at`: where the checksum is.
fn reseal_ogg_page(head: &mut [u8], at: usize) -> io::Result<std::ops::Range<usize>> {
    let mut page = 0;
    while page + 27 <= head.len() && &head[page..page + 4] == b"OggS" {
        let segments = usize::from(head[page + 26]);
        let table = head
            .get(page + 27..page + 27 + segments)
            .ok_or_else(|| io::Error::other("an Ogg page cut short"))?;
        let end = page + 27 + segments + table.iter().map(|&s| usize::from(s)).sum::<usize>();
        if end > head.len() {
            break;
        }
        if (page..end).contains(&at) {
            head[page + 22..page + 26].fill(0);
            let crc = crate::transcoder::ogg::crc(&head[page..end]);
            head[page + 22..page + 26].copy_from_slice(&crc.to_le_bytes());
            return Ok(page + 22..page + 26);
        }
        page = end;
    }
    Err(io::Error::other("the tags are not in an Ogg page"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Loudness;

    fn report(lufs: f64, dbtp: f64) -> ReplayGainReport {
        ReplayGainReport::from_measured(Loudness {
            integrated_lufs: Some(lufs),
            range_lu: Some(3.0),
            true_peak_dbtp: Some(dbtp),
        })
    }

    #[test]
    fn texts_keep_their_width() {
        let quiet = report(-30.0, -12.0);
        assert_eq!(gain_text(quiet.track_gain_db), "+12.00 dB");
        assert_eq!(gain_text(-2.5), "-02.50 dB");
        assert_eq!(peak_text(quiet.track_peak), "0.251189");
        assert_eq!(r128_text(&quiet), "+01792");
        assert_eq!(r128_text(&report(-10.0, 0.0)), "-03328");
        for (blank, filled) in placeholder_comments(Format::Flac)
            .into_iter()
            .chain(placeholder_comments(Format::Opus))
            .zip(
                comments(Format::Flac, &quiet)
                    .into_iter()
                    .chain(comments(Format::Opus, &quiet)),
            )
        {
            assert_eq!(blank.len(), filled.len(), "{blank} / {filled}");
        }
    }

    #[test]
    fn a_resealed_page_carries_its_checksum() {
        // A page's checksum covers the page with its checksum field zeroed.
        let mut page =
            b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x07\x07\x07\x07\x01\x03abc".to_vec();
        reseal_ogg_page(&mut page, 28).expect("a page");
        let mut zeroed = page.clone();
        zeroed[22..26].fill(0);
        assert_eq!(
            page[22..26],
            crate::transcoder::ogg::crc(&zeroed).to_le_bytes()
        );
        assert!(reseal_ogg_page(&mut page, 40).is_err(), "past the pages");
    }
}
