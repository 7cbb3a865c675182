//! Chapter marks are kept: an MKV and an MP4 with three chapters each (and
//! a MOV whose chapters are a QuickTime chapter track alone) come out of
//! the service with the same titles and times, as ffprobe reads them
//! (`-show_chapters`), in every output format (ID3v2 CHAP/CTOC in
//! MP3, Vorbis comments in Opus and FLAC, `chpl` in M4A), and a trim moves
//! them (the one playing at the trim's start begins at 0, those after its
//! end are gone). Crafted marks (past the audio's end, reversed,
//! overlapping, 200 of them) come out as valid chapters only, as ffprobe
//! and mutagen read them. The same on
//! both backends.

mod common;

use common::media::{
    CHAPTERS, ProbedChapter, chaptered, chaptered_as, chapters_of, decoded_seconds, probe,
};
use common::{Backend, Node, NodeOptions};

/// How far a chapter's start may be from the input's, s: the formats keep
/// milliseconds (M4A: 100 ns).
const WITHIN_SECS: f64 = 0.0015;

/// Checks `got` against the expected `(start s, title)`s: same titles in
/// order, starts within [`WITHIN_SECS`], each chapter ending where the next
/// begins and the last where the file ends (`length`, as ffprobe reads it).
fn assert_chapters(got: &[ProbedChapter], expected: &[(f64, &str)], length: f64, what: &str) {
    let titles: Vec<&str> = got.iter().map(|c| c.title.as_str()).collect();
    let wanted: Vec<&str> = expected.iter().map(|(_, t)| *t).collect();
    assert_eq!(titles, wanted, "{what}: {got:?}");
    for (i, (chapter, (start, _))) in got.iter().zip(expected).enumerate() {
        assert!(
            (chapter.start - start).abs() <= WITHIN_SECS,
            "{what}: chapter {i} starts at {} not {start}: {got:?}",
            chapter.start
        );
        let end = expected.get(i + 1).map_or(length, |next| next.0);
        assert!(
            (chapter.end - end).abs() <= 0.1,
            "{what}: chapter {i} ends at {} not {end}: {got:?}",
            chapter.end
        );
    }
}

both_backends!(
    chapters_of_mkv_and_mp4_inputs_are_kept_in_every_format_and_moved_by_a_trim,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let whole: Vec<(f64, &str)> = CHAPTERS
            .iter()
            .map(|(ms, title)| (*ms as f64 / 1000.0, *title))
            .collect();
        // From 2 s for 6 s: "Intro" plays at the start, then the others
        // 2 s earlier; the output is 6 s long.
        let trimmed = [
            (0.0, "Intro"),
            (1.0, "Middle part"),
            (5.0, "Ende – Schluss"),
        ];
        let mut cases = Vec::new();
        for container in ["mkv", "mp4"] {
            let input = chaptered(container, dir.path());
            for format in ["mp3", "opus", "aac", "flac"] {
                cases.push((input.clone(), format!("format={format}"), &whole[..], 10.0));
            }
            // A trim that drops none and moves all, and one that drops the last.
            cases.push((
                input.clone(),
                format!(
                    "format={}&start=2&duration=6",
                    if container == "mkv" { "mp3" } else { "aac" }
                ),
                &trimmed[..],
                6.0,
            ));
        }
        let early = [(0.0, "Intro"), (3.0, "Middle part")];
        let mp4 = dir.path().join("chaptered.mp4");
        cases.push((
            mp4.clone(),
            "format=flac&duration=5".to_owned(),
            &early[..],
            5.0,
        ));
        let mov = chaptered("mov", dir.path());
        cases.push((mov.clone(), "format=mp3".to_owned(), &whole[..], 10.0));
        cases.push((
            mov,
            "format=aac&start=2&duration=6".to_owned(),
            &trimmed[..],
            6.0,
        ));
        cases.push((
            mp4,
            "format=opus&start=3.5".to_owned(),
            &[(0.0, "Middle part"), (3.5, "Ende – Schluss")][..],
            6.5,
        ));

        let mut ids = Vec::new();
        for (input, query, _, _) in &cases {
            let (status, body) = node.upload_with(&token, input, query, &[], &[]).await;
            assert_eq!(status, 202, "{query}: {body}");
            ids.push(body["job_id"].as_str().expect("job id").to_owned());
        }
        for ((input, query, expected, length), id) in cases.iter().zip(&ids) {
            let job = node.wait_final(&token, id).await;
            assert_eq!(job["state"], "done", "{query}: {job}");
            let audio = node.save_audio(&token, &job, dir.path()).await;
            let what = format!(
                "{} {query}",
                input.extension().and_then(|e| e.to_str()).unwrap_or("")
            );
            let got = chapters_of(&audio);
            // The audio's length, decoded whole (ffprobe's container
            // duration, which ends the last chapter, is an estimate).
            let decoded = decoded_seconds(&audio);
            let probed = probe(&audio).duration;
            println!("CHAPTERS {what:<40} {decoded:.3} s (ffprobe {probed:.3}) {got:?}");
            assert!(
                (decoded - length).abs() <= 0.1,
                "{what}: {decoded} s of audio"
            );
            assert_chapters(&got, expected, probed, &what);
        }
    }
);

/// The chapters mutagen reads in `path` (tests/chapters/read_chapters.py).
fn mutagen_chapters(path: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/chapters/read_chapters.py"
        ))
        .arg(path)
        .output()
        .expect("python3 (scripts/test installs mutagen)");
    assert!(
        out.status.success(),
        "mutagen could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

both_backends!(
    crafted_chapter_marks_become_valid_chapters_in_every_format,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mark = |start: u64, end: u64, title: &str| (start, end, title.to_owned());
        // 200 marks 0.5 s apart on 20 s of audio: 40 begin within it. (Of
        // an MP4 that ffmpeg writes with more, GStreamer 1.22's demuxer
        // finds no stream at all: the job fails as undecodable.)
        let many: Vec<_> = (0..200u64)
            .map(|i| mark(i * 500, i * 500 + 500, &format!("Part {i}")))
            .collect();
        // Reversed, overlapping, and beyond the end of 10 s of audio.
        let odd = vec![
            mark(30_000, 40_000, "After the end"),
            mark(6_000, 9_000, "Late"),
            mark(2_000, 8_000, "Overlapping"),
            mark(10_500, 12_000, "Just after the end"),
            mark(0, 3_000, "Start"),
        ];
        let inputs = [
            (chaptered_as("mp4", dir.path(), "many", 20, &many), 20.0, 40),
            (chaptered_as("mkv", dir.path(), "odd", 10, &odd), 10.0, 3),
            (chaptered_as("mp4", dir.path(), "odd", 10, &odd), 10.0, 3),
        ];
        let mut jobs = Vec::new();
        for (input, length, count) in &inputs {
            for format in ["mp3", "opus", "aac", "flac"] {
                let query = format!("format={format}");
                let (status, body) = node.upload_with(&token, input, &query, &[], &[]).await;
                assert_eq!(status, 202, "{query}: {body}");
                let id = body["job_id"].as_str().expect("job id").to_owned();
                jobs.push((input.clone(), format, *length, *count, id));
            }
        }
        for (input, format, length, count, id) in jobs {
            let job = node.wait_final(&token, &id).await;
            assert_eq!(job["state"], "done", "{format}: {job}");
            let audio = node.save_audio(&token, &job, dir.path()).await;
            let what = format!("{} as {format}", input.display());
            let got = chapters_of(&audio);
            println!(
                "CRAFTED {what}: {} chapters, last {:?}",
                got.len(),
                got.last()
            );
            assert_eq!(got.len(), count, "{what}: {got:?}");
            // The output's own length (the input's, give or take an AAC
            // input's priming where its container does not say it).
            let length = decoded_seconds(&audio).max(length);
            for (i, chapter) in got.iter().enumerate() {
                assert!(
                    chapter.start < length,
                    "{what}: chapter {i} starts past the end: {chapter:?}"
                );
                assert!(
                    chapter.end >= chapter.start,
                    "{what}: chapter {i} ends before it starts: {chapter:?}"
                );
                assert!(
                    chapter.end <= length + 0.1,
                    "{what}: chapter {i} ends past the end: {chapter:?}"
                );
                if let Some(next) = got.get(i + 1) {
                    assert!(chapter.start < next.start, "{what}: out of order: {got:?}");
                }
            }
            // And as mutagen, a tag library nobody here wrote, reads them.
            let read = mutagen_chapters(&audio);
            let chapters = read["chapters"].as_array().expect("chapters");
            assert_eq!(chapters.len(), count, "{what}, mutagen: {read}");
            for chapter in chapters {
                let start = chapter["start"].as_f64().expect("start");
                assert!(start < length, "{what}, mutagen: past the end: {chapter}");
                if let Some(end) = chapter["end"].as_f64() {
                    assert!(
                        end >= start,
                        "{what}, mutagen: ends before it starts: {chapter}"
                    );
                }
            }
        }
    }
);
