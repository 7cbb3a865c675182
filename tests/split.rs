//! Split conversions (`vidaud convert --jobs N`): a 30-minute lecture
//! converted in segments by child processes and joined, against the same
//! conversion in one pass, both decoded by ffmpeg.
//!
//! FLAC must come out identical, sample for sample, with STREAMINFO's MD5
//! that of its samples. Opus must have exactly a single pass's samples, and
//! no join may stand out: at each join, the difference from the single
//! pass (relative to the signal, in the 20 ms windows either side of it)
//! over the same difference in the 3 s that follow, at most 1.5 times that
//! very statistic's worst at 30 places with no join; and no step of the
//! difference there larger than any in the 3 s that follow. Why not against the median
//! over the whole file: a segment's encoder starts afresh and converges on
//! the single pass's state over minutes, so far from the joins the two
//! files are nearly the same bits and close after a join they are two
//! encodings of the same audio; a place just after a join, not the file's
//! median, is the codec's own noise to compare with.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::media;
use vidaud_actors::output::{Format, OutputDefaults, OutputOptions};
use vidaud_actors::transcoder::pipeline::AudioShape;
use vidaud_actors::transcoder::segments::{SplitSettings, plan};

/// Converts `input` into `output` with `vidaud convert` and `flags`;
/// returns its stderr.
fn convert(input: &Path, output: &Path, flags: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vidaud"))
        .arg("convert")
        .arg(input)
        .arg(output)
        .args(flags)
        .output()
        .expect("vidaud convert");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "vidaud convert {flags:?} failed: {said}"
    );
    said
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir")
}

/// ffmpeg's MD5 of the samples of `path`, as `codec` PCM.
fn pcm_md5(path: &Path, codec: &str) -> String {
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

/// STREAMINFO's MD5 of a FLAC file, as ffmpeg's md5 muxer writes one.
fn streaminfo_md5(path: &Path) -> String {
    let mut head = [0u8; 42];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("a FLAC header");
    assert_eq!(&head[..4], b"fLaC");
    let hex: String = head[26..42].iter().map(|b| format!("{b:02x}")).collect();
    format!("MD5={hex}")
}

#[test]
fn a_split_flac_is_the_single_pass_sample_for_sample() {
    let input = media::clip("lecture");
    let dir = scratch();
    let single = dir.path().join("single.flac");
    let split = dir.path().join("split.flac");
    let single_peaks = dir.path().join("single.json");
    let split_peaks = dir.path().join("split.json");
    let text = |path: &Path| path.to_str().expect("a UTF-8 path").to_owned();
    convert(&input, &single, &["--waveform", &text(&single_peaks)]);
    let (segments, peaks) = ("300".to_owned(), text(&split_peaks));
    let flags = [
        "--jobs",
        "2",
        "--segment-secs",
        &segments,
        "--waveform",
        &peaks,
    ];
    let said = convert(&input, &split, &flags);
    assert!(said.contains("6 segments, 2 at once"), "{said}");
    let samples = pcm_md5(&single, "pcm_s24le");
    assert_eq!(pcm_md5(&split, "pcm_s24le"), samples, "the same samples");
    assert_eq!(
        streaminfo_md5(&split),
        samples,
        "STREAMINFO's MD5 is its samples'"
    );
    let duration = |path: &Path| media::probe(path).duration;
    assert_eq!(duration(&split), duration(&single));
    let read = |path: &Path| std::fs::read_to_string(path).expect("a waveform");
    assert!(
        read(&split_peaks) == read(&single_peaks),
        "the joined waveform is the single pass's"
    );
    let made = [&single, &split, &single_peaks, &split_peaks];
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !made.contains(&p))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no segment left behind: {leftovers:?}"
    );
}

#[test]
fn a_trim_across_segments_cuts_where_a_single_pass_does() {
    let input = media::clip("lecture");
    let dir = scratch();
    let single = dir.path().join("single.flac");
    let split = dir.path().join("split.flac");
    let trim = ["--start", "95.3", "--duration", "1000"];
    convert(&input, &single, &trim);
    let flags: Vec<&str> = trim.iter().copied().chain(["--jobs", "3"]).collect();
    let said = convert(&input, &split, &flags);
    assert!(said.contains("3 segments, 3 at once"), "{said}");
    assert_eq!(pcm_md5(&split, "pcm_s24le"), pcm_md5(&single, "pcm_s24le"));
}

#[test]
fn what_cannot_be_split_yet_is_converted_in_one_pass_and_says_why() {
    let input = media::clip("lecture");
    let dir = scratch();
    let said = convert(&input, &dir.path().join("one.mp3"), &["--jobs", "2"]);
    assert!(
        said.contains("converting in one pass: MP3 segments cannot be joined yet"),
        "{said}"
    );
    let said = convert(
        &input,
        &dir.path().join("short.opus"),
        &["--jobs", "2", "--duration", "60"],
    );
    assert!(said.contains("not long enough to split"), "{said}");
}

#[test]
fn chapters_keep_their_times_across_the_joins() {
    // The lecture with three chapters, two of them starting past a bound.
    let dir = scratch();
    let chaptered = dir.path().join("chaptered.mp4");
    let metadata = dir.path().join("chapters.txt");
    let chapter = |start: u32, end: u32, title: &str| {
        format!("[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={end}\ntitle={title}\n")
    };
    let text = [
        ";FFMETADATA1\n".to_owned(),
        chapter(0, 400_000, "Opening"),
        chapter(400_000, 1_250_500, "Middle"),
        chapter(1_250_500, media::LECTURE_SECONDS * 1000, "Close"),
    ]
    .concat();
    std::fs::write(&metadata, text).expect("metadata");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(media::clip("lecture"))
        .arg("-i")
        .arg(&metadata)
        .args(["-map", "0", "-map_chapters", "1", "-c", "copy"])
        .arg(&chaptered)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    for format in ["opus", "flac"] {
        let single = dir.path().join(format!("single.{format}"));
        let split = dir.path().join(format!("split.{format}"));
        convert(&chaptered, &single, &[]);
        convert(&chaptered, &split, &["--jobs", "2"]);
        let chapters = media::chapters_of(&split);
        let titles: Vec<&str> = chapters.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["Opening", "Middle", "Close"], "{format}");
        assert_eq!(chapters, media::chapters_of(&single), "{format}");
    }
}

/// Per 20 ms window of two decodings: the difference's RMS, the first
/// one's RMS, and the largest step of the difference from one sample to
/// the next.
struct Windows {
    diff: Vec<f64>,
    signal: Vec<f64>,
    step: Vec<f64>,
    samples: (u64, u64),
}

/// Decodes `a` and `b` with ffmpeg to mono floats at `rate`, a window at
/// a time (two 30-minute files would be 700 MB in memory).
fn windows(a: &Path, b: &Path, rate: u32) -> Windows {
    let decode = |path: &Path| {
        media::decoder(path, rate, "f32le")
            .stdout(Stdio::piped())
            .spawn()
            .expect("ffmpeg")
    };
    let (mut first, mut second) = (decode(a), decode(b));
    let (mut left, mut right) = (
        std::io::BufReader::new(first.stdout.take().expect("stdout")),
        std::io::BufReader::new(second.stdout.take().expect("stdout")),
    );
    let window = (rate / 50) as usize;
    let mut result = Windows {
        diff: Vec::new(),
        signal: Vec::new(),
        step: Vec::new(),
        samples: (0, 0),
    };
    let read = |reader: &mut dyn Read, into: &mut Vec<f32>| -> usize {
        let mut bytes = vec![0u8; window * 4];
        let mut got = 0;
        while got < bytes.len() {
            match reader.read(&mut bytes[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        into.clear();
        into.extend(
            bytes[..got - got % 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        into.len()
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut last_diff = 0.0f64;
    loop {
        let (n, m) = (read(&mut left, &mut x), read(&mut right, &mut y));
        result.samples.0 += n as u64;
        result.samples.1 += m as u64;
        if n < window || m < window {
            break;
        }
        let (mut diff, mut signal, mut step) = (0.0, 0.0, 0.0f64);
        for (&p, &q) in x.iter().zip(&y) {
            let d = f64::from(p) - f64::from(q);
            diff += d * d;
            signal += f64::from(p) * f64::from(p);
            step = step.max((d - last_diff).abs());
            last_diff = d;
        }
        result.diff.push((diff / window as f64).sqrt());
        result.signal.push((signal / window as f64).sqrt());
        result.step.push(step);
    }
    // Whatever is left is counted, not compared.
    for (reader, count) in [
        (&mut left, &mut result.samples.0),
        (&mut right, &mut result.samples.1),
    ] {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("decoded");
        *count += rest.len() as u64 / 4;
    }
    assert!(first.wait().expect("ffmpeg").success());
    assert!(second.wait().expect("ffmpeg").success());
    result
}

impl Windows {
    fn relative(&self, k: usize) -> f64 {
        self.diff[k] / self.signal[k].max(1e-6)
    }

    /// At window `k` (the first after a cut), against the 3 s that follow
    /// (from 100 ms on): the relative difference in the windows either
    /// side over its median there, and the largest step of the difference
    /// in those two windows over the largest there.
    fn at(&self, k: usize) -> Option<(f64, f64)> {
        let after = k + 5..(k + 150).min(self.diff.len());
        let mut relative: Vec<f64> = after.clone().map(|i| self.relative(i)).collect();
        relative.sort_by(f64::total_cmp);
        let median = *relative.get(relative.len() / 2)?;
        let steepest = after.map(|i| self.step[i]).fold(0.0, f64::max);
        let here = self.relative(k - 1).max(self.relative(k));
        let step = self.step[k - 1].max(self.step[k]);
        (median > 0.0).then(|| (here / median, step / steepest))
    }
}

#[test]
fn split_opus_joins_stand_out_no_more_than_places_without_one() {
    let input = media::clip("lecture");
    let dir = scratch();
    let single = dir.path().join("single.opus");
    let split = dir.path().join("split.opus");
    convert(&input, &single, &[]);
    let said = convert(&input, &split, &["--jobs", "2", "--segment-secs", "300"]);
    assert!(said.contains("6 segments"), "{said}");
    media::assert_decodes(&split);

    // Where the joins are: the plan the command made, made again.
    let options = OutputOptions {
        format: Format::Opus,
        ..OutputOptions::default()
    }
    .resolve(&OutputDefaults::default());
    let shape = AudioShape {
        rate: 44100,
        duration: Some(Duration::from_secs(u64::from(media::LECTURE_SECONDS))),
        start: Duration::ZERO,
    };
    let plan = plan(&options, shape, SplitSettings::default()).expect("a split plan");
    let joins: Vec<u64> = plan.parts.iter().skip(1).map(|p| p.keep_from).collect();
    assert_eq!(joins.len(), 5);

    let windows = windows(&single, &split, 48000);
    assert_eq!(
        windows.samples.0, windows.samples.1,
        "a single pass's samples exactly"
    );
    let window = 960;
    let controls: Vec<(f64, f64)> = joins
        .iter()
        .flat_map(|&j| [7.31, 13.7, 21.13, 33.3, 47.9, 61.1].map(|s| j + (s * 48000.0) as u64))
        .filter_map(|at| windows.at((at / window) as usize))
        .collect();
    assert!(controls.len() >= 25, "enough places without a join");
    let worst = controls.iter().map(|c| c.0).fold(0.0, f64::max);
    eprintln!("join (s)   difference at / after   step at / after");
    for &join in &joins {
        let (ratio, step) = windows
            .at((join / window) as usize)
            .expect("a join's windows");
        eprintln!("{:8.2}   {ratio:20.2}   {step:14.2}", join as f64 / 48000.0);
        assert!(
            ratio <= 1.5 * worst,
            "the join at {join} stands out ({ratio:.2}; at most {worst:.2} elsewhere)"
        );
        assert!(
            step <= 1.0,
            "a step at the join at {join} larger than the codec's own noise after it ({step:.2})"
        );
    }
    let steepest = controls.iter().map(|c| c.1).fold(0.0, f64::max);
    eprintln!("places without a join: difference at most {worst:.2}, step at most {steepest:.2}");
}

/// The processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[test]
fn a_killed_split_leaves_nothing_converting_and_its_segments_are_swept() {
    let input = media::clip("lecture");
    let dir = scratch();
    let output = dir.path().join("killed.opus");
    let mut killed = Command::new(env!("CARGO_BIN_EXE_vidaud"))
        .arg("convert")
        .arg(&input)
        .arg(&output)
        .args(["--jobs", "2"])
        .stderr(Stdio::null())
        .spawn()
        .expect("vidaud convert");
    // Wait for its segments' folder and a child converting into it.
    let folder = loop {
        let found = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains(".vidaud-segments-"));
        if let Some(folder) = found
            && !processes_mentioning(&folder.to_string_lossy()).is_empty()
        {
            break folder;
        }
        assert!(killed.try_wait().expect("wait").is_none(), "it ended first");
        std::thread::sleep(Duration::from_millis(20));
    };
    killed.kill().expect("kill -9");
    killed.wait().expect("reaped");
    // Its children die with it (a parent-death signal): wait for them.
    while !processes_mentioning(&folder.to_string_lossy()).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!output.exists(), "no output from a killed conversion");
    assert!(folder.exists(), "kill -9 leaves the folder");
    // The next split conversion in that folder removes it.
    let next = dir.path().join("next.opus");
    let said = convert(&input, &next, &["--jobs", "2", "--duration", "5"]);
    assert!(
        said.contains("left by a conversion that was killed"),
        "{said}"
    );
    assert!(!folder.exists(), "swept");
}
