//! The transcoder on every input kind and output option, through
//! `vidaud convert` (the same pipeline the workers run), each result checked
//! by an independent decoder (ffprobe/ffmpeg): format, codec, duration,
//! sample rate, channels, bitrate, title, pitch.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::media::{
    INPUTS, assert_decodes, clip, decode_mono, decoded_seconds, dominant_frequency, probe,
};

/// Runs `vidaud convert IN OUT ARGS`; returns the exit code and stderr.
fn convert(input: &Path, output: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vidaud"))
        .arg("convert")
        .arg(input)
        .arg(output)
        .args(args)
        .output()
        .expect("vidaud convert");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn converted(input: &Path, output: PathBuf, args: &[&str]) -> PathBuf {
    converted_saying(input, output, args).0
}

/// As `converted`, with what vidaud printed.
fn converted_saying(input: &Path, output: PathBuf, args: &[&str]) -> (PathBuf, String) {
    let (code, stderr) = convert(input, &output, args);
    assert_eq!(code, 0, "{} {args:?}: {stderr}", input.display());
    assert_decodes(&output);
    let mode = std::fs::metadata(&output).expect("output").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o666 & !umask(),
        "the output is made as any new file is"
    );
    (output, stderr)
}

/// This process's umask, as Linux reports it.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        .expect("Umask line")
}

/// One MP3 frame at the output rate: the accuracy promised.
fn frame_seconds(rate: u32) -> f64 {
    1152.0 / f64::from(rate)
}

#[test]
fn every_input_kind_becomes_an_mp3_of_the_same_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut report = Vec::new();
    for (kind, rate, channels) in INPUTS {
        let input = clip(kind);
        let output = converted(&input, dir.path().join(format!("{kind}.mp3")), &[]);
        let p = probe(&output);
        assert_eq!(p.codec, "mp3", "{kind}");
        // LAME takes 8 to 48 kHz; higher rates are resampled to 48 kHz.
        assert_eq!(p.sample_rate, rate.min(48000), "{kind}: sample rate");
        assert_eq!(p.channels, channels.min(2), "{kind}: channels");
        if p.sample_rate >= 32000 {
            assert_eq!(p.bit_rate, 192_000, "{kind}: the default bitrate");
        } else {
            // MPEG-2/2.5 Layer III (below 32 kHz) tops out lower: LAME
            // takes the highest it can.
            assert!(
                (8_000..=160_000).contains(&p.bit_rate),
                "{kind}: {}",
                p.bit_rate
            );
        }
        assert_eq!(
            p.title.as_deref(),
            Some(kind),
            "{kind}: title from the name"
        );
        let (want, got) = (decoded_seconds(&input), decoded_seconds(&output));
        assert!(
            (want - got).abs() <= frame_seconds(p.sample_rate),
            "{kind}: {got} s of audio from {want} s"
        );
        report.push(format!("{kind} {want:.3}s→{got:.3}s"));
    }
    println!("INPUTS: {}", report.join(", "));

    // Our MP3s carry their delay and padding: converting one again loses
    // and adds nothing.
    let once = dir.path().join("mp4.mp3");
    let twice = converted(&once, dir.path().join("twice.mp3"), &[]);
    assert_eq!(decoded_seconds(&once), decoded_seconds(&twice));
}

/// (output name, flags, container, codec, rate, channels, bitrate or 0)
type Case = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    u32,
    u32,
    u64,
);

#[test]
fn every_output_format_and_option_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = clip("mp4");
    let want = decoded_seconds(&input);
    // (output name, flags, container, codec, rate, channels, bitrate or 0)
    let cases: [Case; 7] = [
        (
            "cbr.mp3",
            &["--bitrate", "128"],
            "mp3",
            "mp3",
            44100,
            1,
            128_000,
        ),
        (
            "vbr.mp3",
            &["--quality", "2", "--sample-rate", "22050"],
            "mp3",
            "mp3",
            22050,
            1,
            0,
        ),
        (
            "stereo.mp3",
            &["--channels", "2", "--sample-rate", "48000"],
            "mp3",
            "mp3",
            48000,
            2,
            0,
        ),
        (
            "speech.opus",
            &["--bitrate", "48"],
            "ogg",
            "opus",
            48000,
            1,
            0,
        ),
        (
            "music.m4a",
            &["--bitrate", "128", "--channels", "stereo"],
            "mov,mp4,m4a,3gp,3g2,mj2",
            "aac",
            44100,
            2,
            0,
        ),
        (
            "lossless.flac",
            &["--sample-rate", "32000"],
            "flac",
            "flac",
            32000,
            1,
            0,
        ),
        (
            "named.out",
            &["--format", "flac", "--title", "Über Title"],
            "flac",
            "flac",
            44100,
            1,
            0,
        ),
    ];
    for (name, flags, container, codec, rate, channels, bitrate) in cases {
        let output = converted(&input, dir.path().join(name), flags);
        let p = probe(&output);
        assert_eq!(p.format, container, "{name}");
        assert_eq!(p.codec, codec, "{name}");
        assert_eq!(p.sample_rate, rate, "{name}");
        assert_eq!(p.channels, channels, "{name}");
        if bitrate > 0 {
            assert_eq!(p.bit_rate, bitrate, "{name}");
        }
        let title = if name == "named.out" {
            "Über Title"
        } else {
            "mp4"
        };
        assert_eq!(p.title.as_deref(), Some(title), "{name}");
        let got = decoded_seconds(&output);
        assert!(
            (want - got).abs() <= frame_seconds(rate),
            "{name}: {got} s of audio from {want} s"
        );
    }
}

#[test]
fn a_pure_tone_keeps_its_pitch_through_every_format_and_resampling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tone = clip("tone");
    assert!((dominant_frequency(&tone) - 1000.0).abs() < 5.0);
    for (name, flags) in [
        ("tone.mp3", &[][..]),
        ("tone22.mp3", &["--sample-rate", "22050"][..]),
        ("tone.opus", &[][..]),
        ("tone.m4a", &["--sample-rate", "48000"][..]),
        ("tone.flac", &["--sample-rate", "8000"][..]),
    ] {
        let output = converted(&tone, dir.path().join(name), flags);
        let f = dominant_frequency(&output);
        assert!((f - 1000.0).abs() < 5.0, "{name}: {f} Hz");
    }
}

/// Where `output`'s audio lies against `input`'s: the lag (in samples)
/// at which a window of them correlates best, within ±`most`.
fn lag(input: &[i16], output: &[i16], most: usize) -> i64 {
    let (from, window) = (most, 8192);
    let score = |lag: i64| -> i64 {
        (0..window)
            .map(|i| {
                let at = (from + i) as i64;
                let theirs = output.get((at + lag) as usize).copied().unwrap_or(0);
                i64::from(input[at as usize]) * i64::from(theirs)
            })
            .sum()
    };
    (-(most as i64)..=most as i64)
        .max_by_key(|&lag| score(lag))
        .unwrap_or(0)
}

/// Pearson correlation of two equal runs of samples.
fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let dot = |x: &[i16], y: &[i16]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

#[test]
fn every_format_keeps_every_sample_where_it_was() {
    // Each encoder delays its output (priming) and pads its last frame;
    // each format says by how much (LAME's header, Opus's pre-skip and
    // granule, the M4A's edit list), and ffmpeg honours it. Every sample
    // of the input must come out, at its place: none lost at the end,
    // no silence added at the start.
    let dir = tempfile::tempdir().expect("tempdir");
    let noise = clip("noise");
    let input = decode_mono(&noise, 48000);
    assert_eq!(input.len(), 158_400);
    for name in ["noise.mp3", "noise.opus", "noise.m4a", "noise.flac"] {
        let output = converted(&noise, dir.path().join(name), &[]);
        let audio = decode_mono(&output, 48000);
        assert_eq!(lag(&input, &audio, 2048), 0, "{name}: shifted");
        // ffmpeg decodes an M4A's last frame whole, as it does its own
        // (the edit list's end is for players): up to a frame more.
        let extra = if name.ends_with(".m4a") { 1024 } else { 0 };
        assert!(
            audio.len() >= input.len() && audio.len() <= input.len() + extra,
            "{name}: {} samples from {}",
            audio.len(),
            input.len()
        );
        let tail = input.len() - 4096..input.len();
        let similar = correlation(&input[tail.clone()], &audio[tail]);
        assert!(
            similar > 0.9,
            "{name}: the last samples are not the input's ({similar})"
        );
        println!(
            "{name}: lag 0, {} samples for {}, tail r = {similar:.3}",
            audio.len(),
            input.len()
        );
    }
}

#[test]
fn trims_and_tracks_select_what_is_converted() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Without a choice: the track the file marks as default, else the first.
    for (kind, name, flags, hz) in [
        ("tracks", "first.mp3", &[][..], 440.0),
        ("tracks", "second.mp3", &["--audio-track", "1"][..], 1000.0),
        ("default-second", "default.mp3", &[][..], 1000.0),
        (
            "default-second",
            "asked.mp3",
            &["--audio-track", "0"][..],
            440.0,
        ),
    ] {
        let output = converted(&clip(kind), dir.path().join(name), flags);
        let got = dominant_frequency(&output);
        assert!((got - hz).abs() < 5.0, "{kind} {flags:?}: {got} Hz");
    }
    let tracks = clip("tracks");
    let (code, stderr) = convert(&tracks, &dir.path().join("x.mp3"), &["--audio-track", "2"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("2 audio track"), "{stderr}");

    for (name, flags, seconds) in [
        ("middle.mp3", &["--start", "1", "--duration", "2"][..], 2.0),
        ("tail.opus", &["--start", "0:02.5"][..], 1.5),
        ("head.flac", &["--duration", "0.5"][..], 0.5),
    ] {
        let (output, stderr) = converted_saying(&clip("mp4"), dir.path().join(name), flags);
        let got = decoded_seconds(&output);
        assert!((got - seconds).abs() <= 0.03, "{name}: {got} s");
        // What vidaud reports (and a job records) is what was encoded;
        // it prints hundredths.
        let reported: f64 = stderr
            .lines()
            .find_map(|line| {
                let (_, rest) = line.rsplit_once(": ")?;
                rest.split_once(" s of ")?.0.parse().ok()
            })
            .unwrap_or_else(|| panic!("{name}: no duration in {stderr}"));
        assert!(
            (reported - got).abs() <= 0.006,
            "{name}: {reported} vs {got}"
        );
    }
    let (code, stderr) = convert(&clip("mp4"), &dir.path().join("x.mp3"), &["--start", "60"]);
    assert_eq!(code, 2, "a trim past the end is bad usage: {stderr}");
}

#[test]
fn exit_codes_tell_what_went_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.mp3");
    for (input, flags, code, says) in [
        (clip("mp4"), &["--bitrate", "100"][..], 2, "--bitrate"),
        (clip("mp4"), &["--format", "wma"][..], 2, "--format"),
        (clip("mp4"), &["--start", "-3"][..], 2, "--start"),
        (dir.path().join("missing.mp4"), &[][..], 3, "missing.mp4"),
        (clip("random"), &[][..], 3, "not a recognised"),
        (clip("noaudio"), &[][..], 4, "no audio"),
    ] {
        let (got, stderr) = convert(&input, &out, flags);
        assert_eq!(got, code, "{} {flags:?}: {stderr}", input.display());
        assert!(stderr.contains(says), "{stderr}");
        assert!(!out.exists(), "no partial output is left behind");
    }
}

/// An input at a rate the format's players do not take comes out at the
/// nearest one they do, as a rate asked for must be one of them: a 384 kHz
/// FLAC and a 655.35 kHz WAV (FLAC's highest) do not stay what they are.
#[test]
fn inherited_rates_are_ones_the_format_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let make = |name: &str, rate: u32| {
        let path = dir.path().join(name);
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate={rate}"))
            .args(["-t", "1"])
            .arg(&path)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "{name}");
        path
    };
    let hi_res = make("hi-res.flac", 384_000);
    let extreme = make("extreme.wav", 655_350);
    let cases: &[(&Path, &str, u32)] = &[
        (&hi_res, "flac", 192_000),
        (&hi_res, "mp3", 48_000),
        (&hi_res, "opus", 48_000),
        (&hi_res, "aac", 96_000),
        (&extreme, "flac", 192_000),
    ];
    for (input, format, rate) in cases {
        let output = converted(
            input,
            dir.path().join(format!("out-{format}-{rate}.{format}")),
            &["--format", format],
        );
        let p = probe(&output);
        assert_eq!(p.sample_rate, *rate, "{input:?} as {format}");
        assert_decodes(&output);
    }
    // The input's own rate when the format takes it.
    let cd = make("cd.flac", 44_100);
    let output = converted(&cd, dir.path().join("cd-out.flac"), &["--format", "flac"]);
    assert_eq!(probe(&output).sample_rate, 44_100);
}
