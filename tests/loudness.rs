//! Loudness normalisation through the service, checked by an independent
//! meter (ffmpeg's `ebur128` filter): every named target on speech-like
//! and music-like input, a quiet input that needs +20 dB and a loud one
//! that needs -15 dB, every format with a trim, a downmix and a rate, and
//! the figures the job reports. The same on both backends.

mod common;

use std::path::Path;

use common::media::{Measured, decoded_seconds, loudness_of, loudness_signal, probe, tags_of};
use common::{Backend, Node, NodeOptions};

/// How near the target the output's integrated loudness must be, LU.
const WITHIN_LU: f64 = 0.5;
/// How far over the ceiling its true peak may read, dB.
const OVER_CEILING_DB: f64 = 0.1;
/// How near ffmpeg's reading of the input the reported one must be, LU.
const INPUT_WITHIN_LU: f64 = 0.3;

struct Case {
    input: &'static str,
    level: f64,
    query: String,
    target: f64,
    ceiling: f64,
}

fn case(input: &'static str, level: f64, query: &str, target: f64) -> Case {
    Case {
        input,
        level,
        query: query.to_owned(),
        target,
        ceiling: -1.0,
    }
}

/// Uploads every case at once, then checks each done job's audio.
async fn check(node: &Node, cases: &[Case], dir: &Path) -> Vec<String> {
    let (_, token) = node.new_user().await;
    let mut jobs = Vec::new();
    for c in cases {
        let input = loudness_signal(c.input, c.level, dir);
        let (status, body) = node.upload_with(&token, &input, &c.query, &[], &[]).await;
        assert_eq!(status, 202, "{}: {body}", c.query);
        jobs.push((input, body["job_id"].as_str().expect("id").to_owned()));
    }
    let mut rows = Vec::new();
    for (c, (input, id)) in cases.iter().zip(jobs) {
        let job = node.wait_final(&token, &id).await;
        assert_eq!(job["state"], "done", "{}: {job}", c.query);
        let report = &job["audio"]["loudness"];
        let audio = node.save_audio(&token, &job, dir).await;

        let before: Measured = loudness_of(&input);
        let after = loudness_of(&audio);
        let row = format!(
            "LOUDNESS {:<40} input {:>6.1} LUFS {:>5.1} dBTP | reported {:>6.2} | output {:>6.1} LUFS \
             LRA {:>4.1} {:>5.1} dBTP | gain {:+.2} dB limited {}",
            format!("{} {}", c.input, c.query),
            before.integrated_lufs,
            before.true_peak_dbtp,
            report["input"]["integrated_lufs"]
                .as_f64()
                .unwrap_or(f64::NAN),
            after.integrated_lufs,
            after.range_lu,
            after.true_peak_dbtp,
            report["gain_db"].as_f64().unwrap_or(f64::NAN),
            report["limited"],
        );
        println!("{row}");
        assert!(
            (after.integrated_lufs - c.target).abs() <= WITHIN_LU,
            "off target: {row}"
        );
        assert!(
            after.true_peak_dbtp <= c.ceiling + OVER_CEILING_DB,
            "over the ceiling: {row}"
        );
        let reported = report["input"]["integrated_lufs"]
            .as_f64()
            .unwrap_or_else(|| panic!("no input loudness reported: {job}"));
        assert!(
            (reported - before.integrated_lufs).abs() <= INPUT_WITHIN_LU,
            "input misread: {row}"
        );
        assert_eq!(report["target_lufs"].as_f64(), Some(c.target), "{job}");
        assert_eq!(report["ceiling_dbtp"].as_f64(), Some(c.ceiling), "{job}");
        let output = report["output"]["integrated_lufs"]
            .as_f64()
            .expect("output");
        assert!((output - c.target).abs() <= 0.2, "{job}");
        assert!(
            report["output"]["true_peak_dbtp"].as_f64().is_some(),
            "{job}"
        );
        assert!(report["input"]["range_lu"].as_f64().is_some(), "{job}");
        rows.push(audio.display().to_string());
    }
    rows
}

both_backends!(
    every_named_target_lands_within_half_a_lu_under_the_ceiling,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let targets = [
            ("podcast", -16.0),
            ("streaming", -14.0),
            ("ebu", -23.0),
            ("atsc", -24.0),
        ];
        let mut cases = Vec::new();
        for (name, lufs) in targets {
            cases.push(case("speech", -30.0, &format!("loudness={name}"), lufs));
            cases.push(case("music", -20.0, &format!("loudness={name}"), lufs));
        }
        // A quiet input that needs +20 dB, a loud one that needs -15 dB.
        cases.push(case("speech", -36.0, "loudness=podcast", -16.0));
        cases.push(case("music", -8.0, "loudness=ebu", -23.0));
        // A ceiling of the user's, with a number for the target.
        cases.push(Case {
            ceiling: -3.0,
            ..case("music", -26.0, "loudness=-12&true_peak=-3", -12.0)
        });
        check(&node, &cases, dir.path()).await;
    }
);

both_backends!(
    every_format_rate_layout_and_trim_is_normalised,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            case("music", -20.0, "loudness=streaming&format=opus", -14.0),
            case(
                "music",
                -20.0,
                "loudness=streaming&format=aac&channels=mono",
                -14.0,
            ),
            case(
                "speech",
                -30.0,
                "loudness=podcast&format=flac&sample_rate=22050",
                -16.0,
            ),
            case(
                "music",
                -20.0,
                "loudness=podcast&format=mp3&quality=2&start=2&duration=6",
                -16.0,
            ),
        ];
        let outputs = check(&node, &cases, dir.path()).await;
        // The format's own settings and the trim hold as without loudness.
        let opus = probe(Path::new(&outputs[0]));
        assert_eq!(opus.codec, "opus");
        let aac = probe(Path::new(&outputs[1]));
        assert_eq!((aac.codec.as_str(), aac.channels), ("aac", 1));
        let flac = probe(Path::new(&outputs[2]));
        assert_eq!((flac.codec.as_str(), flac.sample_rate), ("flac", 22050));
        let trimmed = decoded_seconds(Path::new(&outputs[3]));
        assert!((trimmed - 6.0).abs() < 0.03, "{trimmed}");
    }
);

both_backends!(
    a_job_without_loudness_reports_none,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, token) = node.new_user().await;
        let input = loudness_signal("speech", -30.0, dir.path());
        let (status, body) = node.upload_with(&token, &input, "", &[], &[]).await;
        assert_eq!(status, 202, "{body}");
        let job = node
            .wait_final(&token, body["job_id"].as_str().expect("id"))
            .await;
        assert_eq!(job["state"], "done", "{job}");
        assert!(job["audio"].get("loudness").is_none(), "{job}");
        let (status, body) = node
            .upload_with(&token, &refused_body(dir.path()), "loudness=loud", &[], &[])
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains("loudness"), "{body}");
    }
);

/// A small file for uploads whose options are refused: the refusal comes
/// before the body is read, and a client still sending megabytes then may
/// see the connection close instead of the answer.
fn refused_body(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("refused.wav");
    std::fs::write(&path, b"RIFF not read").expect("write");
    path
}

/// How near the reference a ReplayGain-tagged output's gain must bring it,
/// by ffmpeg's reading of the output, dB (the tag describes the audio
/// before the encoder; MP3 at 192 kb/s reads up to 0.4 LU quieter).
const GAIN_WITHIN_DB: f64 = 0.5;

/// A ReplayGain tag's number: `+02.01 dB`, `0.223872`, `-00512`.
fn tag_number(text: &str) -> f64 {
    text.trim_end_matches("dB")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

both_backends!(
    replaygain_tags_the_audio_as_it_is_in_every_format,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let input = loudness_signal("music", -20.0, dir.path());
        let before = loudness_of(&input);
        let (status, body) = node
            .upload_with(
                &token,
                &refused_body(dir.path()),
                "replaygain=true&loudness=podcast",
                &[],
                &[],
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some("replaygain")),
            "{body}"
        );

        let mut ids = Vec::new();
        for format in ["mp3", "opus", "aac", "flac"] {
            let query = format!("format={format}&replaygain=true");
            let (status, body) = node.upload_with(&token, &input, &query, &[], &[]).await;
            assert_eq!(status, 202, "{query}: {body}");
            ids.push((format, body["job_id"].as_str().expect("id").to_owned()));
        }
        for (format, id) in ids {
            let job = node.wait_final(&token, &id).await;
            assert_eq!(job["state"], "done", "{format}: {job}");
            assert!(job["audio"]["loudness"].is_null(), "not normalised: {job}");
            let report = &job["audio"]["replaygain"];
            let audio = node.save_audio(&token, &job, dir.path()).await;
            let after = loudness_of(&audio);
            let tags = tags_of(&audio);
            // Opus carries R128_TRACK_GAIN (Q7.8 dB, to -23 LUFS) alone.
            let (gain, reference) = match format {
                "opus" => (tag_number(&tags["R128_TRACK_GAIN"]) / 256.0, -23.0),
                _ => (tag_number(&tags["REPLAYGAIN_TRACK_GAIN"]), -18.0),
            };
            let row = format!(
                "REPLAYGAIN {format:<5} input {:>6.2} LUFS | output {:>6.2} LUFS {:>6.2} dBTP | \
                 tag gain {gain:+.2} dB (to {reference}) | reported {report}",
                before.integrated_lufs, after.integrated_lufs, after.true_peak_dbtp,
            );
            println!("{row}");
            assert!(
                (after.integrated_lufs - before.integrated_lufs).abs() <= 0.5,
                "the audio was changed: {row}"
            );
            assert!(
                (after.integrated_lufs + gain - reference).abs() <= GAIN_WITHIN_DB,
                "the gain does not bring it to {reference}: {row}"
            );
            let reported = report["track_gain_db"].as_f64().expect("reported gain");
            let measured = report["measured"]["integrated_lufs"]
                .as_f64()
                .expect("measured");
            assert!((reported - (-18.0 - measured)).abs() < 1e-9, "{row}");
            if format != "opus" {
                assert!((gain - reported).abs() <= 0.005, "tag and report: {row}");
                let peak = tag_number(&tags["REPLAYGAIN_TRACK_PEAK"]);
                let peak_db = 20.0 * peak.log10();
                assert!(
                    (peak_db - after.true_peak_dbtp).abs() <= 1.0,
                    "the peak tag is not the true peak: {peak} ({peak_db:.2} dB) {row}"
                );
            }
        }
    }
);
