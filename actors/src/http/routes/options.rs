//! `GET /options`: the output options as data, so a client (the web app's
//! form) offers exactly what an upload accepts. Everything comes from the
//! options table and the format facts in `output`; nothing is restated.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::http::AppState;
use crate::output::{
    CHANNELS, Format, LOUDNESS_TARGETS, MAX_AUDIO_TRACK, MAX_TITLE_CHARS, MP3_BITRATES_KBPS,
    OPTIONS, QUALITIES, TRUE_PEAK_DBTP,
};

/// What an upload may ask the audio to be.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OptionCatalogue {
    /// Every option an upload takes (query parameter, form field or
    /// `Upload-Metadata` key), in the table's order.
    options: Vec<OptionView>,
    /// Each format's values; the first is the default format.
    formats: Vec<FormatView>,
    /// Variable bitrate qualities (formats with `takes_quality`), best first.
    qualities: [u32; 2],
    channels: [u32; 2],
    max_audio_track: u32,
    max_title_chars: usize,
    /// The named `loudness` targets.
    loudness_targets: Vec<TargetView>,
    /// The true-peak ceilings `true_peak` takes, dBTP: `[min, max]`.
    true_peak_dbtp: [f64; 2],
    /// The largest upload this node takes, bytes.
    max_upload_bytes: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OptionView {
    name: &'static str,
    /// What it takes, in a few words.
    help: &'static str,
    /// The same with each format's values spelled out.
    description: String,
    example: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TargetView {
    name: &'static str,
    lufs: f64,
    /// Whose target it is.
    source: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FormatView {
    name: &'static str,
    /// The downloaded file's extension.
    extension: &'static str,
    /// The bitrates it takes, kb/s: a list (MP3) or `[min, max]`; absent
    /// for lossless.
    bitrates: Option<Vec<u32>>,
    /// Whether `bitrates` is a list of every choice, not a range.
    bitrate_choices: bool,
    /// The bitrate used when none (and no quality) is given.
    default_bitrate: Option<u32>,
    takes_quality: bool,
    sample_rates: &'static [u32],
}

/// The output options an upload takes and each format's values.
#[utoipa::path(
    get, path = "/options", tag = "jobs",
    responses((status = 200, description = "The option catalogue", body = OptionCatalogue))
)]
pub async fn catalogue(State(app): State<AppState>) -> Json<OptionCatalogue> {
    let formats = Format::ALL
        .iter()
        .map(|&format| {
            let range = format.bitrates();
            let choices = format == Format::Mp3;
            let bitrates = match (range.is_empty(), choices) {
                (true, _) => None,
                (false, true) => Some(MP3_BITRATES_KBPS.to_vec()),
                (false, false) => Some(vec![*range.start(), *range.end()]),
            };
            FormatView {
                name: format.name(),
                extension: format.extension(),
                bitrates,
                bitrate_choices: choices,
                default_bitrate: app.output_defaults.bitrate(format),
                takes_quality: format.takes_quality(),
                sample_rates: format.sample_rates(),
            }
        })
        .collect();
    Json(OptionCatalogue {
        options: OPTIONS
            .iter()
            .map(|option| OptionView {
                name: option.name,
                help: option.help,
                description: option.description(),
                example: option.example,
            })
            .collect(),
        formats,
        qualities: [*QUALITIES.start(), *QUALITIES.end()],
        channels: [*CHANNELS.start(), *CHANNELS.end()],
        max_audio_track: MAX_AUDIO_TRACK,
        max_title_chars: MAX_TITLE_CHARS,
        loudness_targets: LOUDNESS_TARGETS
            .iter()
            .map(|t| TargetView {
                name: t.name,
                lufs: t.lufs,
                source: t.source,
            })
            .collect(),
        true_peak_dbtp: [*TRUE_PEAK_DBTP.start(), *TRUE_PEAK_DBTP.end()],
        max_upload_bytes: app.settings.max_upload_bytes,
    })
}
