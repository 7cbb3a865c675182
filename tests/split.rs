//! Split conversions (`vidaud convert --jobs N`): a 30-minute lecture
//! converted in segments by child processes and joined, against the same
//! conversion in one pass, both decoded by ffmpeg.
//!
//! FLAC must come out identical, sample for sample, with STREAMINFO's MD5
//! that of its samples. Opus and MP3 must have exactly a single pass's
//! samples, and no join may stand out.
//!
//! Opus: at each join, the difference from the single pass (relative to
//! the signal, in the 20 ms windows either side of it) over the same
//! difference in the 3 s that follow, at most 1.5 times that very
//! statistic's worst at 30 places with no join; and no step of the
//! difference there larger than any in the 3 s that follow. Why not
//! against the median over the whole file: a segment's encoder starts
//! afresh and converges on the single pass's state over minutes, so far
//! from the joins the two files are nearly the same bits and close after
//! a join they are two encodings of the same audio; a place just after a
//! join, not the file's median, is the codec's own noise to compare with.
//!
//! MP3: LAME converges within a second, after which the split file's
//! frames are the single pass's, bit for bit; so the yardstick is the
//! codec's own noise itself, each file's error against the source. Over
//! the windows where a join may be made, the split file's error is at most
//! 1.5 times the single pass's there, and the two files differ by less
//! than that noise.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::media;
use vidaud_actors::output::{Format, OutputDefaults, OutputOptions};
use vidaud_actors::transcoder::pipeline::AudioShape;
use vidaud_actors::transcoder::segments::{SplitPlan, SplitSettings, plan};

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
    let samples = media::pcm_md5(&single, "pcm_s24le");
    assert_eq!(
        media::pcm_md5(&split, "pcm_s24le"),
        samples,
        "the same samples"
    );
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
    assert_eq!(
        media::pcm_md5(&split, "pcm_s24le"),
        media::pcm_md5(&single, "pcm_s24le")
    );
}

#[test]
fn what_cannot_be_split_yet_is_converted_in_one_pass_and_says_why() {
    let input = media::clip("lecture");
    let dir = scratch();
    let said = convert(&input, &dir.path().join("one.m4a"), &["--jobs", "2"]);
    assert!(
        said.contains("converting in one pass: AAC segments cannot be joined yet"),
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
    for format in ["opus", "flac", "mp3"] {
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

/// ffmpeg's decodings of files to mono floats at one rate, read in step a
/// 20 ms window at a time (two 30-minute files would be 700 MB in memory).
struct Decodings {
    children: Vec<std::process::Child>,
    readers: Vec<std::io::BufReader<std::process::ChildStdout>>,
    window: usize,
    /// Samples read from each.
    samples: Vec<u64>,
}

impl Decodings {
    fn start(paths: &[&Path], rate: u32) -> Self {
        let mut children = Vec::new();
        let mut readers = Vec::new();
        for path in paths {
            let mut child = media::decoder(path, rate, "f32le")
                .stdout(Stdio::piped())
                .spawn()
                .expect("ffmpeg");
            readers.push(std::io::BufReader::new(
                child.stdout.take().expect("stdout"),
            ));
            children.push(child);
        }
        Self {
            samples: vec![0; paths.len()],
            children,
            readers,
            window: (rate / 50) as usize,
        }
    }

    /// The next window of each into `into`; false once any has ended.
    fn next(&mut self, into: &mut [Vec<f32>]) -> bool {
        let mut whole = true;
        for ((reader, samples), values) in self.readers.iter_mut().zip(&mut self.samples).zip(into)
        {
            let mut bytes = vec![0u8; self.window * 4];
            let mut got = 0;
            while got < bytes.len() {
                match reader.read(&mut bytes[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            values.clear();
            values.extend(
                bytes[..got - got % 4]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            *samples += values.len() as u64;
            whole &= values.len() == self.window;
        }
        whole
    }

    /// Counts what is left unread, waits for ffmpeg; the samples of each.
    fn finish(mut self) -> Vec<u64> {
        for (reader, count) in self.readers.iter_mut().zip(&mut self.samples) {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).expect("decoded");
            *count += rest.len() as u64 / 4;
        }
        for child in &mut self.children {
            assert!(child.wait().expect("ffmpeg").success());
        }
        self.samples
    }
}

fn rms(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(sum, n), v| (sum + v * v, n + 1));
    (sum / n.max(1) as f64).sqrt()
}

/// Decodes `a` and `b` with ffmpeg to mono floats at `rate`, and compares
/// them a window at a time.
fn windows(a: &Path, b: &Path, rate: u32) -> Windows {
    let mut decodings = Decodings::start(&[a, b], rate);
    let mut result = Windows {
        diff: Vec::new(),
        signal: Vec::new(),
        step: Vec::new(),
        samples: (0, 0),
    };
    let mut values = vec![Vec::new(), Vec::new()];
    let mut last_diff = 0.0f64;
    while decodings.next(&mut values) {
        let (x, y) = (&values[0], &values[1]);
        let mut step = 0.0f64;
        for (&p, &q) in x.iter().zip(y) {
            let d = f64::from(p) - f64::from(q);
            step = step.max((d - last_diff).abs());
            last_diff = d;
        }
        let diff = x.iter().zip(y).map(|(&p, &q)| f64::from(p) - f64::from(q));
        result.diff.push(rms(diff));
        result.signal.push(rms(x.iter().map(|&p| f64::from(p))));
        result.step.push(step);
    }
    // Whatever is left is counted, not compared.
    let samples = decodings.finish();
    result.samples = (samples[0], samples[1]);
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

/// The lecture converted into `ext` in one pass and split in 300 s
/// segments: the folder, the input, the single pass, the split one.
fn single_and_split(ext: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let input = media::clip("lecture");
    let dir = scratch();
    let single = dir.path().join(format!("single.{ext}"));
    let split = dir.path().join(format!("split.{ext}"));
    convert(&input, &single, &[]);
    let said = convert(&input, &split, &["--jobs", "2", "--segment-secs", "300"]);
    assert!(said.contains("6 segments"), "{said}");
    media::assert_decodes(&split);
    (dir, input, single, split)
}

/// Where the joins are: the plan `--segment-secs 300` makes for the
/// lecture in `format`, made again.
fn lecture_plan(format: Format) -> SplitPlan {
    let options = OutputOptions {
        format,
        ..OutputOptions::default()
    }
    .resolve(&OutputDefaults::default());
    let shape = AudioShape {
        rate: 44100,
        duration: Some(Duration::from_secs(u64::from(media::LECTURE_SECONDS))),
        start: Duration::ZERO,
    };
    plan(&options, shape, SplitSettings::default()).expect("a split plan")
}

#[test]
fn split_opus_joins_stand_out_no_more_than_places_without_one() {
    let (_dir, _, single, split) = single_and_split("opus");

    let plan = lecture_plan(Format::Opus);
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

#[test]
fn split_mp3_joins_add_nothing_to_the_codecs_own_noise() {
    let (_dir, input, single, split) = single_and_split("mp3");

    // Each join is made at a frame within half a lead of its bound: the
    // windows of that reach (and one either side) are the join's.
    let rate = 44100;
    let window = u64::from(rate / 50);
    let plan = lecture_plan(Format::Mp3);
    assert_eq!(plan.parts.len(), 6);
    let regions: Vec<(usize, usize)> = plan
        .parts
        .iter()
        .skip(1)
        .map(|part| {
            let reach = (part.keep_from - part.encoded_from) / 2;
            (
                ((part.keep_from - reach) / window) as usize - 1,
                ((part.keep_from + reach) / window) as usize + 2,
            )
        })
        .collect();

    // Per 20 ms window of a join's: each output's error against the
    // source (the codec's own noise) and their difference.
    let mut decodings = Decodings::start(&[&input, &single, &split], rate);
    let (mut single_error, mut split_error, mut difference) = (Vec::new(), Vec::new(), Vec::new());
    let mut values = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut at = 0;
    while decodings.next(&mut values) {
        let near = regions.iter().any(|&(from, to)| (from..to).contains(&at));
        at += 1;
        let against = |k: usize, of: usize| {
            rms(values[of]
                .iter()
                .zip(&values[k])
                .map(|(&s, &o)| f64::from(o) - f64::from(s)))
        };
        let (e1, e2, d) = match near {
            true => (against(1, 0), against(2, 0), against(2, 1)),
            false => (0.0, 0.0, 0.0),
        };
        single_error.push(e1);
        split_error.push(e2);
        difference.push(d);
    }
    let samples = decodings.finish();
    assert_eq!(samples[1], samples[2], "a single pass's samples exactly");

    let over = |values: &[f64], from: usize, to: usize| rms(values[from..to].iter().copied());
    eprintln!("join (s)   codec's noise   split's error / it   difference / it");
    for (part, &(from, to)) in plan.parts.iter().skip(1).zip(&regions) {
        let noise = over(&single_error, from, to);
        let error = over(&split_error, from, to) / noise;
        let apart = over(&difference, from, to) / noise;
        eprintln!(
            "{:8.2}   {noise:13.5}   {error:18.3}   {apart:15.3}",
            part.keep_from as f64 / f64::from(rate)
        );
        assert!(
            error <= 1.5,
            "the join at {} adds to the codec's noise ({error:.3} times a single pass's there)",
            part.keep_from
        );
        assert!(
            apart <= 1.0,
            "the join at {} differs from a single pass by more than the codec's noise ({apart:.3})",
            part.keep_from
        );
    }
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
