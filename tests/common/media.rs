//! Test media, generated with ffmpeg on first use and kept under the
//! target directory, plus independent checks of the audio we produce
//! (ffprobe/ffmpeg, not our own decoder).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds of every generated clip.
pub const CLIP_SECONDS: f64 = 4.0;

/// Seconds of the `hour` clip.
pub const HOUR_SECONDS: u32 = 3600;

/// Seconds of the `lecture` clip.
pub const LECTURE_SECONDS: u32 = 1800;

/// Seconds of the `talk` clip: the lecture's recipe, short enough to be
/// split into a few segments on a node in seconds.
pub const TALK_SECONDS: u32 = 100;

/// Seconds of the `long` clip.
pub const LONG_SECONDS: u32 = 480;

/// Copies `kind`'s clip under a new name (uploads are told apart by name).
pub fn named_copy(kind: &str, name: &str, dir: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(clip(kind), &path).expect("copy clip");
    path
}

/// The containers and codecs the core pipeline must handle.
pub const CONTAINERS: [&str; 5] = ["mp4", "mkv", "webm", "mov", "avi"];

/// Every input kind the transcoder promises, with the audio it holds:
/// (kind, sample rate, channels). See [`clip`] for how each is made.
pub const INPUTS: [(&str, u32, u32); 17] = [
    ("mp4", 44100, 1),
    ("mkv", 48000, 1),
    ("webm", 44100, 1),
    ("mov", 44100, 1),
    ("avi", 44100, 1),
    ("flv", 44100, 1),
    ("ts", 48000, 1),
    ("fmp4", 44100, 1),
    ("3gp", 8000, 1),
    ("tracks", 48000, 2),
    ("surround", 48000, 6),
    ("wav", 44100, 2),
    ("flac", 96000, 2),
    ("m4a", 22050, 1),
    ("mp3", 48000, 2),
    ("ogg", 32000, 2),
    ("tone", 44100, 1),
];

/// ffmpeg's output arguments for the quickest H.264 video.
const H264: [&str; 6] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
];

/// ffmpeg input arguments for a sine of `freq` Hz at `rate`.
fn sine(freq: u32, rate: u32) -> Vec<String> {
    ["-f", "lavfi", "-i"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("sine=frequency={freq}:sample_rate={rate}")])
        .collect()
}

/// The ffmpeg arguments (inputs, maps, codecs) of the kinds made from a
/// recipe, or `None`.
fn recipe(kind: &str) -> Option<Vec<String>> {
    let video = |size: &str| -> Vec<String> {
        ["-f", "lavfi", "-i"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("testsrc=size={size}:rate=25")])
            .collect()
    };
    let words = |w: &[&str]| -> Vec<String> { w.iter().map(|s| s.to_string()).collect() };
    let h264 = words(&H264);
    let mut args = Vec::new();
    match kind {
        "flv" => {
            args.extend(video("160x120"));
            args.extend(sine(440, 44100));
            args.extend(words(&[
                "-c:v",
                "flv",
                "-c:a",
                "libmp3lame",
                "-ar",
                "44100",
            ]));
        }
        "ts" => {
            args.extend(video("160x120"));
            args.extend(sine(440, 48000));
            args.extend(h264);
            args.extend(words(&["-c:a", "mp2", "-f", "mpegts"]));
        }
        "fmp4" => {
            args.extend(video("160x120"));
            args.extend(sine(440, 44100));
            args.extend(h264);
            args.extend(words(&[
                "-c:a",
                "aac",
                "-movflags",
                "frag_keyframe+empty_moov",
            ]));
        }
        "tracks" | "default-second" => {
            // Two stereo audio tracks: 440 Hz first, 1000 Hz second; in
            // "default-second" the second is the one marked default.
            args.extend(video("160x120"));
            args.extend(sine(440, 48000));
            args.extend(sine(1000, 48000));
            args.extend(words(&[
                "-map", "0:v", "-map", "1:a", "-map", "2:a", "-ac", "2",
            ]));
            args.extend(words(&[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ]));
            args.extend(words(&["-c:a", "libopus", "-f", "matroska"]));
            if kind == "default-second" {
                args.extend(words(&[
                    "-disposition:a:0",
                    "0",
                    "-disposition:a:1",
                    "default",
                ]));
            }
        }
        _ => {
            let (_, freq, rate, output) = AUDIO_ONLY.iter().find(|(k, ..)| *k == kind)?;
            args.extend(sine(*freq, *rate));
            args.extend(words(output));
        }
    }
    Some(args)
}

/// Audio-only kinds: (kind, tone in Hz, sample rate, ffmpeg output arguments).
type AudioOnly = (&'static str, u32, u32, &'static [&'static str]);
const AUDIO_ONLY: [AudioOnly; 7] = [
    (
        "surround",
        440,
        48000,
        &[
            "-af",
            "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
            "-c:a",
            "ac3",
            "-f",
            "matroska",
        ],
    ),
    ("wav", 440, 44100, &["-ac", "2", "-c:a", "pcm_s16le"]),
    ("flac", 440, 96000, &["-ac", "2", "-c:a", "flac"]),
    ("m4a", 440, 22050, &["-c:a", "aac", "-f", "ipod"]),
    ("mp3", 440, 48000, &["-ac", "2", "-c:a", "libmp3lame"]),
    ("ogg", 440, 32000, &["-ac", "2", "-c:a", "libvorbis"]),
    // A pure 1 kHz tone, for pitch checks.
    ("tone", 1000, 44100, &["-c:a", "pcm_s16le", "-f", "wav"]),
];

/// The file extension of `kind`'s clip.
fn extension(kind: &str) -> &str {
    match kind {
        "noaudio" | "random" | "truncated" | "long" | "fmp4" => "mp4",
        "tracks" | "default-second" | "surround" => "mkv",
        "tone" => "wav",
        "hour" => "ogg",
        "noise" => "flac",
        "lecture" | "talk" => "mp4",
        other => other,
    }
}

/// Runs ffmpeg quietly with `args`, writing `output`; panics naming `what`.
fn ffmpeg<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>, output: &Path, what: &str) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(output)
        .status()
        .expect("ffmpeg (install it: scripts/test does)");
    assert!(status.success(), "ffmpeg could not make {what}");
}

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("media");
    std::fs::create_dir_all(&dir).expect("media dir");
    dir
}

/// `kind`: one of [`CONTAINERS`] or [`INPUTS`], `noaudio` (H.264 video only), `noise`
/// (3.3 s of pink noise, FLAC), `random`
/// (bytes that are not media), `truncated` (the first half of an MP4), or
/// `long` ([`LONG_SECONDS`] of stereo audio with a tiny video, slow enough
/// to convert that faults land mid-conversion and progress shows several
/// readings, twice a second, even on a fast machine).
pub fn clip(kind: &str) -> PathBuf {
    let ext = extension(kind);
    // A changed length must not reuse a clip made before.
    let name = match kind {
        "long" => format!("long-{LONG_SECONDS}s"),
        "lecture" => format!("lecture-{LECTURE_SECONDS}s"),
        "talk" => format!("talk-{TALK_SECONDS}s"),
        other => other.to_owned(),
    };
    let path = dir().join(format!("{name}.{ext}"));
    if path.exists() {
        return path;
    }
    // Tests of one binary may make the same clip at once: each writes its
    // own partial file, and whichever renames last wins (same content).
    let partial = dir().join(format!("{kind}.{}.partial.{ext}", super::unique("m")));
    if let Some(mut args) = recipe(kind) {
        args.extend(["-t".to_owned(), CLIP_SECONDS.to_string()]);
        ffmpeg(&args, &partial, kind);
    } else if kind == "hour" {
        // An hour of mono Opus (about 4 MB), made fast: the transcoder's
        // memory must not grow with the input's length.
        let mut args = sine(440, 24000);
        let length = HOUR_SECONDS.to_string();
        args.extend(["-t", &length, "-ac", "1", "-c:a", "libopus"].map(String::from));
        args.extend(["-b:a", "12k", "-compression_level", "0"].map(String::from));
        ffmpeg(&args, &partial, "the hour-long clip");
    } else if kind == "lecture" {
        ffmpeg(lecture_recipe(LECTURE_SECONDS), &partial, "the lecture");
    } else if kind == "talk" {
        ffmpeg(lecture_recipe(TALK_SECONDS), &partial, "the talk");
    } else if kind == "noise" {
        // Pink noise, 48 kHz stereo, of a length no codec's frame divides:
        // where a sample lands can be told by correlation (a tone's period
        // would alias).
        let args = [
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=color=pink:sample_rate=48000:amplitude=0.3:seed=7",
            "-ac",
            "2",
            "-t",
            "3.3",
            "-c:a",
            "flac",
        ];
        ffmpeg(args, &partial, "the noise clip");
    } else if kind == "3gp" {
        // ffmpeg has no AMR encoder here; GStreamer's comes with the plugins.
        let buffers = (CLIP_SECONDS * 8000.0 / 160.0) as u32;
        let status = Command::new("gst-launch-1.0")
            .args(["-q", "audiotestsrc", &format!("num-buffers={buffers}")])
            .args(["samplesperbuffer=160", "freq=440", "!"])
            .args([
                "audio/x-raw,rate=8000,channels=1",
                "!",
                "amrnbenc",
                "!",
                "3gppmux",
                "!",
            ])
            .arg("filesink")
            .arg(format!("location={}", partial.display()))
            .status()
            .expect("gst-launch-1.0 (scripts/test installs gstreamer1.0-tools)");
        assert!(status.success(), "gst-launch could not make the 3GP clip");
    } else if kind == "truncated" {
        let whole = std::fs::read(clip("mp4")).expect("mp4 clip");
        std::fs::write(&partial, &whole[..whole.len() / 2]).expect("truncated clip");
    } else if kind == "long" {
        let duration = LONG_SECONDS.to_string();
        let args = [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=5",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=550:sample_rate=48000",
            "-filter_complex",
            "[1:a][2:a]amerge=inputs=2[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-t",
            &duration,
        ];
        // A low bitrate keeps the file small: converting takes as long.
        let codecs = H264.iter().chain(&["-c:a", "aac", "-b:a", "32k"]);
        ffmpeg(args.iter().chain(codecs), &partial, "the long clip");
    } else if kind == "random" {
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&partial, bytes).expect("random bytes");
    } else {
        let duration = CLIP_SECONDS.to_string();
        let mut args: Vec<&str> = vec!["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"];
        if kind != "noaudio" {
            args.extend(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
        }
        args.extend(["-t", &duration]);
        let codecs: &[&str] = match kind {
            "mp4" | "mov" => &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
            "mkv" => &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-c:a",
                "libopus",
            ],
            "webm" => &[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-c:a",
                "libvorbis",
            ],
            "avi" => &["-c:v", "mpeg4", "-c:a", "libmp3lame"],
            "noaudio" => &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-an"],
            other => panic!("no recipe for {other}"),
        };
        args.extend(codecs);
        ffmpeg(&args, &partial, kind);
    }
    std::fs::rename(&partial, &path).expect("media rename");
    path
}

/// ffmpeg's arguments for `seconds` of a lecture: synthesised speech
/// (flite, looped) over music (two gliding tones and a decaying drum whose
/// period no segment bound shares, so joins land anywhere in it), 44.1 kHz
/// mono AAC beside a tiny H.264 video (one frame a second) in an MP4.
pub fn lecture_recipe(seconds: u32) -> Vec<String> {
    let speech = "flite=text='The quick brown fox jumps over the lazy dog. A lecture on the \
                  history of sound recording begins with the phonograph, and continues \
                  through magnetic tape to the digital formats of today. Every join must be \
                  inaudible.':voice=slt,aresample=44100,aloop=loop=-1:size=2e9";
    let music = "aevalsrc='0.12*sin(2*PI*220*t+3*sin(2*PI*0.37*t))\
                 +0.08*sin(2*PI*331*t+5*sin(2*PI*0.23*t))\
                 +0.2*exp(-25*mod(t\\,0.6173))*sin(2*PI*95*t)':s=44100";
    let length = seconds.to_string();
    let inputs = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=1",
        "-f",
        "lavfi",
        "-i",
        speech,
        "-f",
        "lavfi",
        "-i",
        music,
        "-filter_complex",
        "[1:a][2:a]amix=inputs=2:normalize=0[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-t",
        &length,
    ];
    let codecs = H264.iter().chain(&["-c:a", "aac", "-b:a", "96k"]);
    inputs.iter().chain(codecs).map(|s| s.to_string()).collect()
}

/// What ffprobe says about an audio file.
#[derive(Debug)]
pub struct Probe {
    pub format: String,
    pub codec: String,
    pub duration: f64,
    pub title: Option<String>,
    pub sample_rate: u32,
    pub channels: u32,
    /// Bits per second, as ffprobe reports it for the stream (0 if none).
    pub bit_rate: u64,
}

/// What ffprobe says of `path` with `show` (`-show_format`, …), as JSON.
fn ffprobe(path: &Path, show: &[&str]) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json"])
        .args(show)
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

pub fn probe(path: &Path) -> Probe {
    let json = ffprobe(path, &["-show_format", "-show_streams"]);
    let audio = json["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "audio"))
        .cloned()
        .unwrap_or_default();
    let duration = audio["duration"]
        .as_str()
        .or_else(|| json["format"]["duration"].as_str())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    Probe {
        format: json["format"]["format_name"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        codec: audio["codec_name"].as_str().unwrap_or("").to_owned(),
        duration,
        title: json["format"]["tags"]["title"]
            .as_str()
            .or_else(|| json["format"]["tags"]["TITLE"].as_str())
            .or_else(|| audio["tags"]["title"].as_str())
            .or_else(|| audio["tags"]["TITLE"].as_str())
            .map(str::to_owned),
        sample_rate: audio["sample_rate"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        channels: audio["channels"].as_u64().unwrap_or(0) as u32,
        bit_rate: audio["bit_rate"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
    }
}

/// Decodes the whole file with ffmpeg; panics on any decoder complaint.
pub fn assert_decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{} does not decode cleanly: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffmpeg decoding the audio of `path` to mono samples at `rate`, in
/// `sample_format` (`s16le`, `f32le`), on its stdout.
pub fn decoder(path: &Path, rate: u32, sample_format: &str) -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-i"]).arg(path).args([
        "-vn",
        "-ac",
        "1",
        "-ar",
        &rate.to_string(),
        "-f",
        sample_format,
        "-",
    ]);
    command
}

/// The audio of `path` decoded by ffmpeg to mono 16-bit samples at `rate`.
pub fn decode_mono(path: &Path, rate: u32) -> Vec<i16> {
    let out = decoder(path, rate, "s16le").output().expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}",
        path.display()
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Seconds of audio in `path`, counted in samples an independent decoder
/// (ffmpeg) produces: exact where container durations are estimates.
pub fn decoded_seconds(path: &Path) -> f64 {
    decode_mono(path, 48000).len() as f64 / 48000.0
}

/// The frequency of a pure tone, from its zero crossings.
pub fn dominant_frequency(path: &Path) -> f64 {
    let rate = 44100;
    let samples = decode_mono(path, rate);
    // Skip the edges, where encoders fade in and out.
    let body = &samples[samples.len() / 10..samples.len() * 9 / 10];
    let crossings = body.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (body.len() as f64 / rate as f64)
}

/// A video of at least `bytes` (720p H.264 + AAC), made by repeating a
/// 2-minute clip without re-encoding.
pub fn big_video(bytes: u64) -> PathBuf {
    let path = dir().join(format!("big-{bytes}.mp4"));
    if path.exists() {
        return path;
    }
    // Several tests ask for it at once: one makes it while the others wait
    // (a test must never read a file still being written), and it appears
    // under its name only when whole.
    let lock = std::fs::File::create(dir().join("big.lock")).expect("lock file");
    lock.lock().expect("lock");
    if path.exists() {
        return path;
    }
    let part = dir().join("big-part.mp4");
    if !part.exists() {
        let mut args = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"]
            .map(String::from)
            .to_vec();
        args.extend(sine(440, 44100));
        args.extend(
            [
                "-t",
                "120",
                "-ac",
                "2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ]
            .map(String::from),
        );
        args.extend(["-pix_fmt", "yuv420p", "-c:a", "aac"].map(String::from));
        let partial = dir().join("big-part.partial.mp4");
        ffmpeg(&args, &partial, "the big video's part");
        std::fs::rename(&partial, &part).expect("rename the big video's part");
    }
    let size = std::fs::metadata(&part).expect("part").len();
    let copies = bytes.div_ceil(size);
    let list = dir().join("big-list.txt");
    let line = format!("file '{}'\n", part.display());
    std::fs::write(&list, line.repeat(copies as usize)).expect("list");
    let list = list.to_string_lossy().into_owned();
    let args = ["-f", "concat", "-safe", "0", "-i", &list, "-c", "copy"];
    let partial = dir().join(format!("big-{bytes}.partial.mp4"));
    ffmpeg(args, &partial, "the big video");
    std::fs::rename(&partial, &path).expect("rename the big video");
    path
}

/// Loudness as an independent meter (ffmpeg's `ebur128` filter) reads it.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub integrated_lufs: f64,
    pub range_lu: f64,
    pub true_peak_dbtp: f64,
}

/// Measures `path` with ffmpeg's EBU R128 meter (true peak on).
pub fn loudness_of(path: &Path) -> Measured {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-vn", "-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not measure {}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap_or_default();
    let value = |label: &str| -> f64 {
        summary
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in ffmpeg's summary:\n{summary}"))
    };
    Measured {
        integrated_lufs: value("I:"),
        range_lu: value("LRA:"),
        true_peak_dbtp: value("Peak:"),
    }
}

/// A test signal for loudness: `speech` (mono 48 kHz band-limited noise
/// in syllables and pauses) or `music` (a stereo 44.1 kHz chord with
/// moving voices and some noise), ten seconds, brought to about `lufs`
/// (the louder ones held under 0 dBFS by a limiter, as a master is).
/// Written as 32-bit float WAV under `dir`.
pub fn loudness_signal(kind: &str, lufs: f64, dir: &Path) -> PathBuf {
    let source = match kind {
        "speech" => "anoisesrc=c=pink:a=0.5:d=10:r=48000:s=7,highpass=f=150,lowpass=f=3500,\
             volume='if(lt(mod(t,2.3),1.6),0.55+0.45*sin(2*PI*4.3*t),0.01)':eval=frame"
            .to_owned(),
        "music" => "aevalsrc='0.22*sin(2*PI*220*t)+0.16*sin(2*PI*261.63*t)*(0.6+0.4*sin(2*PI*0.5*t))\
             +0.12*sin(2*PI*329.63*t)+0.05*sin(2*PI*1760*t)*(0.5+0.5*sin(2*PI*3*t))\
             |0.2*sin(2*PI*220*t+1)+0.15*sin(2*PI*329.63*t)+0.1*sin(2*PI*440*t)*(0.5+0.5*sin(2*PI*2*t))\
             +0.04*sin(2*PI*2637*t)':s=44100:d=10"
            .to_owned(),
        other => panic!("no loudness signal {other}"),
    };
    let path = dir.join(format!("{kind}{lufs}.wav"));
    if path.exists() {
        return path;
    }
    let raw = dir.join(format!("{kind}-raw.wav"));
    ffmpeg(
        ["-f", "lavfi", "-i", &source, "-c:a", "pcm_f32le"],
        &raw,
        kind,
    );
    let delta = lufs - loudness_of(&raw).integrated_lufs;
    ffmpeg(
        [
            "-i".to_owned(),
            raw.display().to_string(),
            "-af".to_owned(),
            format!("volume={delta}dB,alimiter=limit=0.95:level=false:attack=2:release=50"),
            "-c:a".to_owned(),
            "pcm_f32le".to_owned(),
        ],
        &path,
        kind,
    );
    path
}

/// The chapters of [`chaptered`] inputs: start (ms) and title.
pub const CHAPTERS: [(u64, &str); 3] = [
    (0, "Intro"),
    (3000, "Middle part"),
    (7000, "Ende – Schluss"),
];

/// A ten-second video with a tone and the three [`CHAPTERS`], under `dir`:
/// `mkv`; `mp4` (ffmpeg writes MP4 chapters as a `chpl` box and a QuickTime
/// chapter track); `mov`, with the QuickTime chapter track alone, as
/// Apple's tools write them.
pub fn chaptered(container: &str, dir: &Path) -> PathBuf {
    let marks: Vec<(u64, u64, String)> = CHAPTERS
        .iter()
        .enumerate()
        .map(|(i, (start, title))| {
            let end = CHAPTERS.get(i + 1).map_or(10_000, |next| next.0);
            (*start, end, (*title).to_owned())
        })
        .collect();
    chaptered_as(container, dir, "chaptered", 10, &marks)
}

/// A video of `seconds` with a tone and the chapter marks `marks` (start
/// and end in ms, title) as ffmpeg writes them, in the order given (a
/// crafted file's may be reversed, overlap or lie past the end), under
/// `dir` as `<name>.<container>`.
pub fn chaptered_as(
    container: &str,
    dir: &Path,
    name: &str,
    seconds: u32,
    marks: &[(u64, u64, String)],
) -> PathBuf {
    let metadata = dir.join(format!("{name}.txt"));
    let mut text = String::from(";FFMETADATA1\n");
    for (start, end, title) in marks {
        text.push_str(&format!(
            "[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={end}\ntitle={title}\n"
        ));
    }
    std::fs::write(&metadata, text).expect("chapter metadata");
    let path = dir.join(format!("{name}.{container}"));
    let metadata = metadata.display().to_string();
    let tone = format!("sine=f=440:d={seconds}:r=48000");
    let picture = format!("testsrc=s=160x120:d={seconds}:r=10");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &tone,
        "-f",
        "lavfi",
        "-i",
        &picture,
        "-i",
        &metadata,
        "-map",
        "0",
        "-map",
        "1",
        "-map_chapters",
        "2",
        "-c:a",
        "aac",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
    ];
    if container == "mov" {
        args.extend(["-movflags", "+disable_chpl"]);
    }
    ffmpeg(args, &path, "a chaptered video");
    path
}

/// A chapter as ffprobe reads it: start and end (s) and title.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedChapter {
    pub start: f64,
    pub end: f64,
    pub title: String,
}

/// The chapters ffprobe finds in `path`.
pub fn chapters_of(path: &Path) -> Vec<ProbedChapter> {
    let json = ffprobe(path, &["-show_chapters"]);
    let time = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    json["chapters"]
        .as_array()
        .map(|chapters| {
            chapters
                .iter()
                .map(|c| ProbedChapter {
                    start: time(&c["start_time"]),
                    end: time(&c["end_time"]),
                    title: c["tags"]["title"].as_str().unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The tags ffprobe finds in `path`, the container's and the audio
/// stream's, by upper-case name.
pub fn tags_of(path: &Path) -> std::collections::HashMap<String, String> {
    let json = ffprobe(path, &["-show_entries", "format_tags:stream_tags"]);
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    std::iter::once(&json["format"])
        .chain(streams.iter())
        .filter_map(|holder| holder["tags"].as_object())
        .flatten()
        .filter_map(|(name, value)| Some((name.to_uppercase(), value.as_str()?.to_owned())))
        .collect()
}

/// ffmpeg's MD5 of the samples of `path`, as `codec` PCM.
pub fn pcm_md5(path: &Path, codec: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-c:a", codec, "-f", "md5", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
