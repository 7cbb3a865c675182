//! What the user asked the audio to be: format, quality, rate, channels,
//! trim, title, which audio track to take, and how loud it should be.
//!
//! The same options come from upload query parameters, multipart fields and
//! `vidaud convert` flags, all as `name = text` pairs, so one parser and one
//! validator serve all three and every refusal names the field at fault.
//! The defaults the node decides ([`OutputDefaults`]: the configured MP3
//! bitrate) are resolved into the job when it is made ([`ResolvedOutput`]),
//! so a job converts the same on any node.
//!
//! A crate of its own, with no dependency on the node: these parse what
//! users send, so they are fuzzed (`fuzz/`), and the table is the one
//! source the API, its OpenAPI description, the web app and `vidaud
//! convert` derive their options from.

use serde::{Deserialize, Serialize};

/// Output container and codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MPEG-1 Layer III with ID3v2 tags and a Xing/LAME header.
    #[default]
    Mp3,
    /// Opus in Ogg.
    Opus,
    /// AAC-LC in an MP4 (M4A) file.
    Aac,
    /// FLAC, lossless.
    Flac,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Mp3, Format::Opus, Format::Aac, Format::Flac];

    pub fn name(self) -> &'static str {
        match self {
            Format::Mp3 => "mp3",
            Format::Opus => "opus",
            Format::Aac => "aac",
            Format::Flac => "flac",
        }
    }

    /// The format as people name it (a mail says "Your Opus of …").
    pub fn label(self) -> &'static str {
        match self {
            Format::Mp3 => "MP3",
            Format::Opus => "Opus",
            Format::Aac => "AAC",
            Format::Flac => "FLAC",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Mp3 => "mp3",
            Format::Opus => "opus",
            Format::Aac => "m4a",
            Format::Flac => "flac",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Mp3 => "audio/mpeg",
            Format::Opus => "audio/ogg",
            Format::Aac => "audio/mp4",
            Format::Flac => "audio/flac",
        }
    }

    /// The bitrates a user may pick, kb/s; empty for lossless. MP3 takes
    /// only the [`MP3_BITRATES_KBPS`] among them.
    pub fn bitrates(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Format::Mp3 => 32..=320,
            Format::Opus => 6..=510,
            Format::Aac => 16..=320,
            #[allow(clippy::reversed_empty_ranges)]
            Format::Flac => 1..=0,
        }
    }

    /// Whether a variable bitrate quality ([`QUALITIES`]) may replace the
    /// bitrate.
    pub fn takes_quality(self) -> bool {
        self == Format::Mp3
    }

    pub fn sample_rates(self) -> &'static [u32] {
        match self {
            Format::Mp3 => &MP3_SAMPLE_RATES,
            Format::Opus => &[8000, 12000, 16000, 24000, 48000],
            Format::Aac => &[
                8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000,
            ],
            Format::Flac => &[
                8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400,
                192000,
            ],
        }
    }

    /// The rate an input at `rate` Hz comes out at when the user names
    /// none: its own if the format's players take it, else the nearest
    /// one they do (the higher of two as near). The same rule as for a
    /// rate asked for: only [`Format::sample_rates`].
    pub fn nearest_sample_rate(self, rate: u32) -> u32 {
        self.sample_rates()
            .iter()
            .copied()
            .min_by_key(|r| (r.abs_diff(rate), u32::MAX - r))
            .unwrap_or(48_000)
    }
}

/// What the node decides for an option the user left out: the one source
/// of every such default. A job's options are resolved against it once,
/// when the job is created ([`OutputOptions::resolve`]); what is stored is
/// final, and nothing after (the pipeline least of all) defaults again.
/// The rate and channels are not among them: left out, they follow the
/// input, which only decoding tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputDefaults {
    /// `transcoder.bitrate_kbps`.
    pub mp3_kbps: u32,
}

impl Default for OutputDefaults {
    fn default() -> Self {
        Self {
            mp3_kbps: DEFAULT_MP3_KBPS,
        }
    }
}

impl OutputDefaults {
    /// The bitrate a format gets when the user names neither a bitrate
    /// nor a quality; none for lossless.
    pub fn bitrate(&self, format: Format) -> Option<u32> {
        match format {
            Format::Mp3 => Some(self.mp3_kbps),
            Format::Opus => Some(128),
            Format::Aac => Some(160),
            Format::Flac => None,
        }
    }
}

/// Options with the node's defaults applied ([`OutputOptions::resolve`]):
/// what a job is stored with and converted by. Reads as the options it
/// holds; says how to encode without deciding anything ([`Self::encoding`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ResolvedOutput(OutputOptions);

/// How the audio is encoded, as resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Constant (MP3) or target (Opus, AAC) bitrate, kb/s.
    Bitrate(u32),
    /// MP3's variable bitrate quality, 0 (best) to 9.
    Quality(u32),
    /// No bitrate at all (FLAC).
    Lossless,
}

impl ResolvedOutput {
    pub fn encoding(&self) -> Encoding {
        match (self.0.quality, self.0.bitrate_kbps) {
            (Some(quality), _) => Encoding::Quality(quality),
            (None, Some(kbps)) => Encoding::Bitrate(kbps),
            (None, None) => Encoding::Lossless,
        }
    }

    /// The same options with the tag's title set (the worker names it
    /// after the file when the user gave none).
    pub fn titled(mut self, title: String) -> Self {
        self.0.title = Some(title);
        self
    }

    pub fn options(&self) -> &OutputOptions {
        &self.0
    }

    pub fn into_options(self) -> OutputOptions {
        self.0
    }
}

/// What a stored record with no options at all reads as (one from before
/// options existed): MP3 at the built-in bitrate.
impl Default for ResolvedOutput {
    fn default() -> Self {
        OutputOptions::default().resolve(&OutputDefaults::default())
    }
}

impl std::ops::Deref for ResolvedOutput {
    type Target = OutputOptions;
    fn deref(&self) -> &OutputOptions {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ResolvedOutput {
    /// Options are stored resolved. A record written before they were (a
    /// lossy format with neither a bitrate nor a quality) is resolved as
    /// the pipeline of its time did: with the built-in defaults.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        OutputOptions::deserialize(deserializer).map(|o| o.resolve(&OutputDefaults::default()))
    }
}

impl utoipa::PartialSchema for ResolvedOutput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        OutputOptions::schema()
    }
}

impl utoipa::ToSchema for ResolvedOutput {
    fn name() -> std::borrow::Cow<'static, str> {
        OutputOptions::name()
    }
}

/// The sample rates an MP3 can have (MPEG-1, 2 and 2.5 Layer III).
pub const MP3_SAMPLE_RATES: [u32; 9] =
    [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

impl std::str::FromStr for Format {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, OptionError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mp3" => Ok(Format::Mp3),
            "opus" | "ogg" => Ok(Format::Opus),
            "aac" | "m4a" => Ok(Format::Aac),
            "flac" => Ok(Format::Flac),
            other => Err(OptionError::new(
                "format",
                format!("unknown format `{other}`; choose mp3, opus, aac or flac"),
            )),
        }
    }
}

/// MP3 bitrates LAME encodes at constant bitrate.
pub const MP3_BITRATES_KBPS: [u32; 14] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];

/// Longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// MP3 variable bitrate qualities, best first.
pub const QUALITIES: std::ops::RangeInclusive<u32> = 0..=9;

/// Mono or stereo.
pub const CHANNELS: std::ops::RangeInclusive<u32> = 1..=2;

/// Highest audio track index taken.
pub const MAX_AUDIO_TRACK: u32 = 63;

/// A refused option: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionError {
    pub field: String,
    pub message: String,
}

impl OptionError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The options of one job. Stored in its record; absent fields of records
/// written before an option existed take its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct OutputOptions {
    pub format: Format,
    /// Constant bitrate (MP3) or target bitrate (Opus, AAC), kb/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    /// MP3 variable bitrate quality, 0 (best) to 9; instead of a bitrate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u32>,
    /// Output sample rate, Hz; if absent, the input's if the format takes it, else the nearest it takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// 1 (mono) or 2 (stereo); the input's (at most 2 for MP3/AAC) if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// Trim: where the output starts in the input, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_secs: Option<f64>,
    /// Trim: how much to keep from `start_secs`, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// Title tag; the original file name without extension if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Which audio track (0 = first) of a file with several; absent: the
    /// one the container marks as default, else the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_track: Option<u32>,
    /// Loudness normalisation: the integrated loudness the output is
    /// brought to, LUFS (a named target resolved); absent: as the input is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness_lufs: Option<f64>,
    /// The true-peak ceiling of a normalised output, dBTP; absent:
    /// [`DEFAULT_TRUE_PEAK_DBTP`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_peak_dbtp: Option<f64>,
    /// Tag the audio with its ReplayGain 2.0 track gain and peak (measured
    /// as it is converted) instead of changing it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replaygain: bool,
}

/// A loudness target people name instead of a number.
#[derive(Debug, Clone, Copy)]
pub struct LoudnessTarget {
    pub name: &'static str,
    pub lufs: f64,
    /// Whose target it is.
    pub source: &'static str,
}

/// The named loudness targets: the one table `loudness` values, their help
/// text and the tests come from.
pub const LOUDNESS_TARGETS: [LoudnessTarget; 4] = [
    LoudnessTarget {
        name: "podcast",
        lufs: -16.0,
        source: "podcast platforms",
    },
    LoudnessTarget {
        name: "streaming",
        lufs: -14.0,
        source: "music streaming services",
    },
    LoudnessTarget {
        name: "ebu",
        lufs: -23.0,
        source: "EBU R128 broadcast",
    },
    LoudnessTarget {
        name: "atsc",
        lufs: -24.0,
        source: "ATSC A/85 broadcast",
    },
];

/// The loudness targets a user may give as a number, LUFS.
pub const LOUDNESS_LUFS: std::ops::RangeInclusive<f64> = -70.0..=-5.0;

/// The true-peak ceilings a user may give, dBTP.
pub const TRUE_PEAK_DBTP: std::ops::RangeInclusive<f64> = -9.0..=0.0;

/// The true-peak ceiling of a normalised output when the user gives none.
pub const DEFAULT_TRUE_PEAK_DBTP: f64 = -1.0;

/// One output option as clients spell it: the query parameter, the
/// multipart field and (with `-` for `_`) the `vidaud convert` flag.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub name: &'static str,
    /// What it takes, for the OpenAPI description and `--help`.
    pub help: &'static str,
    /// An accepted value.
    pub example: &'static str,
}

/// Every output option: the one table the upload's query parameters and
/// form fields, the OpenAPI description and the `convert` flags come from.
pub const OPTIONS: [OptionSpec; 12] = [
    OptionSpec {
        name: "format",
        help: "mp3 (default), opus, aac (M4A) or flac",
        example: "mp3",
    },
    OptionSpec {
        name: "bitrate",
        help: "kb/s: constant for MP3, target for Opus and AAC",
        example: "192",
    },
    OptionSpec {
        name: "quality",
        help: "MP3 variable bitrate quality, 0 (best) to 9, instead of a bitrate",
        example: "2",
    },
    OptionSpec {
        name: "sample_rate",
        help: "output sample rate, Hz (default: the input's if the format takes it, else the nearest it takes)",
        example: "44100",
    },
    OptionSpec {
        name: "channels",
        help: "1/mono or 2/stereo (default: the input's, at most stereo)",
        example: "2",
    },
    OptionSpec {
        name: "start",
        help: "trim: start at this position, seconds or [hh:]mm:ss[.fff]",
        example: "1:30",
    },
    OptionSpec {
        name: "duration",
        help: "trim: keep this much, seconds or [hh:]mm:ss[.fff]",
        example: "60",
    },
    OptionSpec {
        name: "title",
        help: "title tag (default: the file's name without extension)",
        example: "Talk",
    },
    OptionSpec {
        name: "audio_track",
        help: "audio track, 0 = first (default: the one the file marks as default, else the first)",
        example: "0",
    },
    OptionSpec {
        name: "loudness",
        help: "normalise to this integrated loudness: LUFS or a named target (default: as the input is)",
        example: "podcast",
    },
    OptionSpec {
        name: "true_peak",
        help: "true-peak ceiling of a normalised output, dBTP",
        example: "-1.5",
    },
    OptionSpec {
        name: "replaygain",
        help: "true: tag the output with its ReplayGain 2.0 track gain (to -18 LUFS) and peak, leaving the audio as it is (R128_TRACK_GAIN for Opus); not with loudness",
        example: "true",
    },
];

/// The MP3 bitrate when the user names none and the configuration neither.
pub const DEFAULT_MP3_KBPS: u32 = 192;

impl OptionSpec {
    /// The help text with the facts kept elsewhere in this module (each
    /// format's bitrates, defaults and rates) spelled out.
    pub fn description(&self) -> String {
        let per_format = |fact: &dyn Fn(Format) -> String| {
            Format::ALL
                .iter()
                .map(|f| format!("{} {}", f.name(), fact(*f)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match self.name {
            "bitrate" => format!(
                "{}; by format: {}",
                self.help,
                per_format(&|f| match (f, OutputDefaults::default().bitrate(f)) {
                    (Format::Mp3, Some(default)) => {
                        format!("one of {MP3_BITRATES_KBPS:?}, default {default}")
                    }
                    (_, Some(default)) => {
                        let range = f.bitrates();
                        format!("{}-{}, default {default}", range.start(), range.end())
                    }
                    (_, None) => "none: lossless".to_owned(),
                })
            ),
            "sample_rate" => format!(
                "{}; by format: {}",
                self.help,
                per_format(&|f| format!("{:?}", f.sample_rates()))
            ),
            "title" => format!("{}, at most {MAX_TITLE_CHARS} characters", self.help),
            "loudness" => format!(
                "{}; {} to {} LUFS, or {}",
                self.help,
                LOUDNESS_LUFS.start(),
                LOUDNESS_LUFS.end(),
                LOUDNESS_TARGETS
                    .iter()
                    .map(|t| format!("{} ({} LUFS, {})", t.name, t.lufs, t.source))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "true_peak" => format!(
                "{}, {} to {} (default {DEFAULT_TRUE_PEAK_DBTP}); needs loudness",
                self.help,
                TRUE_PEAK_DBTP.start(),
                TRUE_PEAK_DBTP.end()
            ),
            _ => self.help.to_owned(),
        }
    }
}

fn is_option(name: &str) -> bool {
    OPTIONS.iter().any(|o| o.name == name)
}

impl OutputOptions {
    /// Sets one option from its text form. An empty value leaves the option
    /// unset, as an HTML form sends its blank fields.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), OptionError> {
        let value = value.trim();
        if value.is_empty() && is_option(name) {
            return Ok(());
        }
        match name {
            "format" => self.format = value.parse()?,
            "bitrate" => self.bitrate_kbps = Some(number(name, value.trim_end_matches('k'))?),
            "quality" => self.quality = Some(number(name, value.trim_start_matches(['V', 'v']))?),
            "sample_rate" => self.sample_rate = Some(number(name, value)?),
            "channels" => {
                self.channels = Some(match value {
                    "mono" => 1,
                    "stereo" => 2,
                    _ => number(name, value)?,
                })
            }
            "start" => self.start_secs = Some(seconds(name, value)?),
            "duration" => self.duration_secs = Some(seconds(name, value)?),
            "title" => self.title = Some(value.to_owned()),
            "audio_track" => self.audio_track = Some(number(name, value)?),
            "loudness" => {
                let named = LOUDNESS_TARGETS
                    .iter()
                    .find(|t| t.name.eq_ignore_ascii_case(value));
                self.loudness_lufs = Some(match named {
                    Some(target) => target.lufs,
                    None => decibels(name, value, "LUFS")?,
                })
            }
            "true_peak" => self.true_peak_dbtp = Some(decibels(name, value, "dBTP")?),
            "replaygain" => self.replaygain = yes_or_no(name, value)?,
            // `=value` (a query parameter or form field without a name):
            // refused by what it is, not as an option named "".
            "" => {
                return Err(OptionError::new("option", "a value without an option name"));
            }
            other => {
                return Err(OptionError::new(
                    other,
                    format!(
                        "unknown option; known: {}",
                        OPTIONS.map(|o| o.name).join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Parses and validates `name = value` pairs.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, OptionError> {
        let mut options = Self::default();
        for (name, value) in pairs {
            options.set(name, value)?;
        }
        options.validate()?;
        Ok(options)
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        let format = self.format;
        if let Some(kbps) = self.bitrate_kbps {
            let range = format.bitrates();
            if range.is_empty() {
                return Err(OptionError::new(
                    "bitrate",
                    format!("{} is lossless; it takes no bitrate", format.name()),
                ));
            }
            if format == Format::Mp3 && !MP3_BITRATES_KBPS.contains(&kbps) {
                return Err(OptionError::new(
                    "bitrate",
                    format!("MP3 bitrate must be one of {MP3_BITRATES_KBPS:?} kb/s, got {kbps}"),
                ));
            }
            if !range.contains(&kbps) {
                return Err(OptionError::new(
                    "bitrate",
                    format!(
                        "{} bitrate must be {} to {} kb/s, got {kbps}",
                        format.name(),
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        if let Some(quality) = self.quality {
            if !format.takes_quality() {
                return Err(OptionError::new(
                    "quality",
                    "VBR quality applies to mp3 only; use bitrate",
                ));
            }
            if !QUALITIES.contains(&quality) {
                return Err(OptionError::new(
                    "quality",
                    format!("VBR quality must be 0 (best) to 9, got {quality}"),
                ));
            }
            if self.bitrate_kbps.is_some() {
                return Err(OptionError::new(
                    "quality",
                    "give either bitrate (constant) or quality (variable), not both",
                ));
            }
        }
        if let Some(rate) = self.sample_rate
            && !format.sample_rates().contains(&rate)
        {
            return Err(OptionError::new(
                "sample_rate",
                format!(
                    "{} sample rate must be one of {:?} Hz, got {rate}",
                    format.name(),
                    format.sample_rates()
                ),
            ));
        }
        if let Some(channels) = self.channels
            && !CHANNELS.contains(&channels)
        {
            return Err(OptionError::new(
                "channels",
                format!("channels must be 1 (mono) or 2 (stereo), got {channels}"),
            ));
        }
        if let Some(start) = self.start_secs
            && !(start >= 0.0 && start.is_finite())
        {
            return Err(OptionError::new(
                "start",
                format!("start must be 0 or more seconds, got {start}"),
            ));
        }
        if let Some(duration) = self.duration_secs
            && !(duration > 0.0 && duration.is_finite())
        {
            return Err(OptionError::new(
                "duration",
                format!("duration must be more than 0 seconds, got {duration}"),
            ));
        }
        if let Some(title) = &self.title {
            if title.chars().count() > MAX_TITLE_CHARS {
                return Err(OptionError::new(
                    "title",
                    format!("title must be at most {MAX_TITLE_CHARS} characters"),
                ));
            }
            if title.chars().any(char::is_control) {
                return Err(OptionError::new(
                    "title",
                    "title must not contain control characters",
                ));
            }
        }
        if let Some(track) = self.audio_track
            && track > MAX_AUDIO_TRACK
        {
            return Err(OptionError::new(
                "audio_track",
                format!("audio_track must be 0 to {MAX_AUDIO_TRACK}, got {track}"),
            ));
        }
        if let Some(lufs) = self.loudness_lufs
            && !LOUDNESS_LUFS.contains(&lufs)
        {
            return Err(OptionError::new(
                "loudness",
                format!(
                    "loudness must be {} to {} LUFS or one of {}, got {lufs}",
                    LOUDNESS_LUFS.start(),
                    LOUDNESS_LUFS.end(),
                    LOUDNESS_TARGETS.map(|t| t.name).join(", ")
                ),
            ));
        }
        if let Some(ceiling) = self.true_peak_dbtp {
            if !TRUE_PEAK_DBTP.contains(&ceiling) {
                return Err(OptionError::new(
                    "true_peak",
                    format!(
                        "true_peak must be {} to {} dBTP, got {ceiling}",
                        TRUE_PEAK_DBTP.start(),
                        TRUE_PEAK_DBTP.end()
                    ),
                ));
            }
            if self.loudness_lufs.is_none() {
                return Err(OptionError::new(
                    "true_peak",
                    "true_peak is the ceiling of a normalised output; give loudness too",
                ));
            }
        }
        if self.replaygain && self.loudness_lufs.is_some() {
            return Err(OptionError::new(
                "replaygain",
                "replaygain tags the audio as it is and loudness changes it; give one of them",
            ));
        }
        Ok(())
    }

    /// The true-peak ceiling a normalisation keeps to, dBTP.
    pub fn true_peak_ceiling(&self) -> f64 {
        self.true_peak_dbtp.unwrap_or(DEFAULT_TRUE_PEAK_DBTP)
    }

    /// Applies the node's defaults (the bitrate a lossy format needs when
    /// the user chose neither a bitrate nor a quality): once, when a job
    /// is created.
    pub fn resolve(mut self, defaults: &OutputDefaults) -> ResolvedOutput {
        if self.bitrate_kbps.is_none() && self.quality.is_none() {
            self.bitrate_kbps = defaults.bitrate(self.format);
        }
        ResolvedOutput(self)
    }

    /// `holiday.mov` → `holiday.m4a` for AAC: the original name with the
    /// output's extension.
    pub fn audio_filename(&self, original: &str) -> String {
        format!("{}.{}", stem(original), self.format.extension())
    }

    /// The name of the audio's waveform data: `holiday.waveform.json`.
    pub fn waveform_filename(&self, original: &str) -> String {
        format!("{}.waveform.json", stem(original))
    }

    /// The title tag: the one asked for, or the original file's name.
    pub fn title_for(&self, original: &str) -> String {
        self.title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| stem(original))
    }
}

/// `holiday.mov` → `holiday`.
pub fn stem(filename: &str) -> String {
    std::path::Path::new(filename)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "audio".to_owned())
}

fn number(field: &str, value: &str) -> Result<u32, OptionError> {
    value
        .parse()
        .map_err(|_| OptionError::new(field, format!("expected a whole number, got `{value}`")))
}

/// `true`/`false` (also `yes`/`no`, `1`/`0`, `on`/`off`).
fn yes_or_no(field: &str, value: &str) -> Result<bool, OptionError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(OptionError::new(
            field,
            format!("expected true or false, got `{value}`"),
        )),
    }
}

/// `-16`, `-16.5 LUFS`, `-1dBTP` → decibels (the unit is optional).
fn decibels(field: &str, value: &str, unit: &str) -> Result<f64, OptionError> {
    let number = match value.len().checked_sub(unit.len()) {
        Some(at) if value.is_char_boundary(at) && value[at..].eq_ignore_ascii_case(unit) => {
            value[..at].trim()
        }
        _ => value,
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| {
            OptionError::new(
                field,
                format!("expected a number of {unit} (`-16`), got `{value}`"),
            )
        })
}

/// `90`, `90.5`, `1:30`, `01:01:30.25` → seconds.
fn seconds(field: &str, value: &str) -> Result<f64, OptionError> {
    let bad = || {
        OptionError::new(
            field,
            format!("expected seconds (`90.5`) or [hh:]mm:ss[.fff], got `{value}`"),
        )
    };
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let mut total = 0.0;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let n: f64 = part.parse().map_err(|_| bad())?;
        if !last && (n.fract() != 0.0 || n < 0.0) {
            return Err(bad());
        }
        total = total * 60.0 + n;
    }
    if !total.is_finite() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<OutputOptions, OptionError> {
        OutputOptions::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn an_inherited_rate_is_one_the_format_takes() {
        assert_eq!(Format::Mp3.nearest_sample_rate(44100), 44100);
        assert_eq!(Format::Mp3.nearest_sample_rate(96000), 48000);
        assert_eq!(Format::Mp3.nearest_sample_rate(7000), 8000);
        assert_eq!(Format::Mp3.nearest_sample_rate(11500), 11025);
        assert_eq!(Format::Opus.nearest_sample_rate(44100), 48000);
        assert_eq!(Format::Flac.nearest_sample_rate(655_350), 192_000);
        assert_eq!(Format::Flac.nearest_sample_rate(37_800), 32_000);
        assert_eq!(Format::Aac.nearest_sample_rate(384_000), 96_000);
        // A tie goes up.
        assert_eq!(Format::Opus.nearest_sample_rate(10_000), 12_000);
    }

    #[test]
    fn defaults_are_mp3_at_the_configured_bitrate() {
        let defaults = OutputDefaults::default();
        let options = parse(&[]).expect("empty").resolve(&defaults);
        assert_eq!(options.format, Format::Mp3);
        assert_eq!(options.bitrate_kbps, Some(192));
        let vbr = parse(&[("quality", "V2")]).expect("vbr").resolve(&defaults);
        assert_eq!((vbr.bitrate_kbps, vbr.quality), (None, Some(2)));
        let flac = parse(&[("format", "flac")])
            .expect("flac")
            .resolve(&defaults);
        assert_eq!(flac.bitrate_kbps, None);
        assert_eq!(
            [options.encoding(), vbr.encoding(), flac.encoding()],
            [
                Encoding::Bitrate(192),
                Encoding::Quality(2),
                Encoding::Lossless
            ]
        );
        // The node's setting is the MP3 default; the others are the format's.
        let configured = OutputDefaults { mp3_kbps: 128 };
        let mp3 = parse(&[]).expect("empty").resolve(&configured);
        let opus = parse(&[("format", "opus")])
            .expect("opus")
            .resolve(&configured);
        assert_eq!(
            (mp3.encoding(), opus.encoding()),
            (Encoding::Bitrate(128), Encoding::Bitrate(128))
        );
        // Stored as resolved; a record stored before (no bitrate) reads
        // resolved with the built-in defaults, and one stored after as it is.
        let stored = serde_json::to_value(&mp3).expect("json");
        assert_eq!(stored["bitrate_kbps"], 128);
        let read: ResolvedOutput = serde_json::from_value(stored).expect("read");
        assert_eq!(read.encoding(), Encoding::Bitrate(128));
        let old: ResolvedOutput =
            serde_json::from_value(serde_json::json!({ "format": "aac" })).expect("old");
        assert_eq!(old.encoding(), Encoding::Bitrate(160));
        // Read back exactly, to the last bit of a trim (found by the fuzz
        // target output_options: without float_roundtrip serde_json read
        // 1.5777777777777777 as 1.5777777777777775).
        let trimmed = parse(&[("start", "1.5777777777777777")])
            .expect("trim")
            .resolve(&defaults);
        let stored = serde_json::to_string(&trimmed).expect("json");
        let read: ResolvedOutput = serde_json::from_str(&stored).expect("read");
        assert_eq!(read, trimmed, "{stored}");
    }

    #[test]
    fn every_refusal_names_its_field() {
        for (pairs, field) in [
            (vec![("format", "wma")], "format"),
            (vec![("", "mp3")], "option"),
            (vec![("bitrate", "100")], "bitrate"),
            (vec![("bitrate", "abc")], "bitrate"),
            (vec![("format", "flac"), ("bitrate", "128")], "bitrate"),
            (vec![("format", "opus"), ("bitrate", "600")], "bitrate"),
            (vec![("quality", "10")], "quality"),
            (vec![("format", "aac"), ("quality", "2")], "quality"),
            (vec![("bitrate", "128"), ("quality", "2")], "quality"),
            (vec![("sample_rate", "44000")], "sample_rate"),
            (
                vec![("format", "opus"), ("sample_rate", "44100")],
                "sample_rate",
            ),
            (vec![("channels", "6")], "channels"),
            (vec![("start", "-1")], "start"),
            (vec![("start", "soon")], "start"),
            (vec![("duration", "0")], "duration"),
            (vec![("duration", "1:-5:00")], "duration"),
            (vec![("title", "a\r\nBcc: x")], "title"),
            (vec![("audio_track", "99")], "audio_track"),
            (vec![("volume", "11")], "volume"),
            (vec![("loudness", "loud")], "loudness"),
            (vec![("loudness", "-80")], "loudness"),
            (vec![("loudness", "0")], "loudness"),
            (vec![("loudness", "NaN")], "loudness"),
            (vec![("loudness", "-16"), ("true_peak", "1")], "true_peak"),
            (vec![("true_peak", "-1")], "true_peak"),
        ] {
            let err = parse(&pairs).expect_err(&format!("{pairs:?} must be refused"));
            assert_eq!(err.field, field, "{pairs:?}: {err}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn accepted_forms() {
        let o = parse(&[
            ("format", "M4A"),
            ("bitrate", "128k"),
            ("sample_rate", "48000"),
            ("channels", "mono"),
            ("start", "1:02.5"),
            ("duration", "30"),
            ("title", "Talk"),
            ("audio_track", "1"),
        ])
        .expect("valid");
        assert_eq!(o.format, Format::Aac);
        assert_eq!(o.bitrate_kbps, Some(128));
        assert_eq!(o.channels, Some(1));
        assert_eq!(o.start_secs, Some(62.5));
        assert_eq!(o.duration_secs, Some(30.0));
        assert_eq!(o.audio_filename("talk.final.mkv"), "talk.final.m4a");
        assert_eq!(o.title_for("x.mkv"), "Talk");
        assert_eq!(seconds("start", "01:01:30.25"), Ok(3690.25));
    }

    #[test]
    fn every_option_in_the_table_parses_its_example() {
        let mut options = OutputOptions::default();
        for spec in OPTIONS {
            options
                .set(spec.name, spec.example)
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        }
        let unset = OutputOptions::default();
        assert_ne!(options.sample_rate, unset.sample_rate);
        assert_ne!(options.audio_track, unset.audio_track);
    }

    #[test]
    fn loudness_takes_a_number_or_a_name() {
        for target in LOUDNESS_TARGETS {
            let o = parse(&[("loudness", target.name)]).expect(target.name);
            assert_eq!(o.loudness_lufs, Some(target.lufs));
            assert_eq!(o.true_peak_ceiling(), DEFAULT_TRUE_PEAK_DBTP);
        }
        let o = parse(&[("loudness", "-18.5 LUFS"), ("true_peak", "-2dBTP")]).expect("numbers");
        assert_eq!(
            (o.loudness_lufs, o.true_peak_dbtp),
            (Some(-18.5), Some(-2.0))
        );
        assert_eq!(
            parse(&[("loudness", "EBU")]).expect("ebu").loudness_lufs,
            Some(-23.0)
        );
        assert_eq!(
            parse(&[("loudness", "-20LUFS")])
                .expect("no space")
                .loudness_lufs,
            Some(-20.0)
        );
    }

    #[test]
    fn replaygain_is_yes_or_no_and_not_with_loudness() {
        assert!(parse(&[("replaygain", "true")]).expect("true").replaygain);
        assert!(parse(&[("replaygain", "Yes")]).expect("yes").replaygain);
        assert!(!parse(&[("replaygain", "0")]).expect("0").replaygain);
        for pairs in [
            vec![("replaygain", "maybe")],
            vec![("replaygain", "true"), ("loudness", "podcast")],
        ] {
            assert_eq!(parse(&pairs).expect_err("refused").field, "replaygain");
        }
        // Left out of the record when off, as every unset option is.
        let json = serde_json::to_value(OutputOptions::default()).expect("json");
        assert!(json.get("replaygain").is_none(), "{json}");
    }

    #[test]
    fn names() {
        let mp3 = OutputOptions::default();
        assert_eq!(mp3.title_for("holiday.mov"), "holiday");
        assert_eq!(mp3.audio_filename("a.b.mkv"), "a.b.mp3");
        assert_eq!(mp3.audio_filename(""), "audio.mp3");
        assert_eq!(mp3.audio_filename(".mp4"), ".mp4.mp3");
    }
}
