//! Test media, generated with ffmpeg on first use and kept under the
//! target directory, plus independent checks of the audio we produce
//! (ffprobe/ffmpeg, not our own decoder).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds of every generated clip.
pub const CLIP_SECONDS: f64 = 4.0;

/// Seconds of the `long` clip.
pub const LONG_SECONDS: u32 = 150;

/// Copies `kind`'s clip under a new name (uploads are told apart by name).
pub fn named_copy(kind: &str, name: &str, dir: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(clip(kind), &path).expect("copy clip");
    path
}

/// The containers and codecs the core pipeline must handle.
pub const CONTAINERS: [&str; 5] = ["mp4", "mkv", "webm", "mov", "avi"];

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("media");
    std::fs::create_dir_all(&dir).expect("media dir");
    dir
}

/// `kind`: one of [`CONTAINERS`], `noaudio` (H.264 video only), `random`
/// (bytes that are not media), `truncated` (the first half of an MP4), or
/// `long` ([`LONG_SECONDS`] of stereo audio with a tiny video, slow enough
/// to convert that faults land mid-conversion).
pub fn clip(kind: &str) -> PathBuf {
    let ext = match kind {
        "noaudio" | "random" | "truncated" | "long" => "mp4",
        other => other,
    };
    let path = dir().join(format!("{kind}.{ext}"));
    if path.exists() {
        return path;
    }
    // Tests of one binary may make the same clip at once: each writes its
    // own partial file, and whichever renames last wins (same content).
    let partial = dir().join(format!("{kind}.{}.partial.{ext}", super::unique("m")));
    if kind == "truncated" {
        let whole = std::fs::read(clip("mp4")).expect("mp4 clip");
        std::fs::write(&partial, &whole[..whole.len() / 2]).expect("truncated clip");
    } else if kind == "long" {
        let duration = LONG_SECONDS.to_string();
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=5",
            ])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-f", "lavfi", "-i", "sine=frequency=550:sample_rate=48000"])
            .args([
                "-filter_complex",
                "[1:a][2:a]amerge=inputs=2[a]",
                "-map",
                "0:v",
                "-map",
                "[a]",
            ])
            .args([
                "-t",
                &duration,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-b:a", "128k"])
            .arg(&partial)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not make the long clip");
    } else if kind == "random" {
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&partial, bytes).expect("random bytes");
    } else {
        let duration = CLIP_SECONDS.to_string();
        let mut args: Vec<&str> = vec![
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ];
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
        let partial_str = partial.to_string_lossy().into_owned();
        args.push(&partial_str);
        let status = Command::new("ffmpeg")
            .args(&args)
            .status()
            .expect("ffmpeg (install it: scripts/test does)");
        assert!(status.success(), "ffmpeg could not make {kind}");
    }
    std::fs::rename(&partial, &path).expect("media rename");
    path
}

/// What ffprobe says about an audio file.
#[derive(Debug)]
pub struct Probe {
    pub format: String,
    pub codec: String,
    pub duration: f64,
    pub title: Option<String>,
}

pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
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
        title: json["format"]["tags"]["title"].as_str().map(str::to_owned),
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
