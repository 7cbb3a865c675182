//! Waveform data for players: every done job has `GET /jobs/{id}/waveform`,
//! BBC audiowaveform's JSON. Checked as a player would use it and against
//! an independent computation: the JSON loads in BBC's `waveform-data`
//! (npm, what peaks.js reads waveforms with, tests/waveform/compare.cjs),
//! and its min/max per block match peaks computed from the job's own audio
//! decoded by ffmpeg: MP3, FLAC, Opus and M4A, a trim, and a normalised,
//! resampled job.
//! Only the owner sees it, and it goes with its job. The same on both
//! backends.

mod common;

use std::path::Path;
use std::process::Command;

use common::media::{loudness_signal, probe};
use common::{Backend, Files, Node, NodeOptions};
use serde_json::Value;

/// How far a block's min or max may be from ffmpeg's decode of the same
/// file, in 8-bit waveform steps (1/127 of full scale). Lossless output:
/// only a sum's rounding at a step's edge (the node adds in 32-bit floats,
/// the reference in 64-bit). Lossy output: the node sees the samples the
/// encoder was given, ffmpeg the decoder's; they differ by the codec's own
/// error, which is largest at a peak, and LAME's output reads a little
/// quieter than its input (measured: MP3 192k max 2, mean 1.05; M4A 160k
/// max 1, mean 0.16; Opus max 4, mean 0.59; FLAC exact).
const LOSSLESS_STEPS: f64 = 1.0;
const LOSSY_STEPS: f64 = 6.0;
/// Mean difference allowed on lossy output: most blocks must agree closely.
const LOSSY_MEAN_STEPS: f64 = 1.5;

struct Case {
    input: &'static str,
    query: &'static str,
    lossless: bool,
    /// Seconds of audio expected (the trim), when not the whole input.
    seconds: Option<f64>,
    /// Pairs ffmpeg's decode may have after ours: an M4A's last frame is
    /// decoded whole (its edit list's end is for players), up to 1023
    /// samples more.
    extra_pairs: u64,
}

/// Decodes `audio` with ffmpeg to interleaved 32-bit floats, its own
/// channels and rate.
fn decode(audio: &Path, pcm: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(audio)
        .args(["-f", "f32le", "-c:a", "pcm_f32le"])
        .arg(pcm)
        .status()
        .expect("ffmpeg");
    assert!(
        status.success(),
        "ffmpeg could not decode {}",
        audio.display()
    );
}

/// What tests/waveform/compare.cjs says of a waveform and its audio.
fn compare(waveform: &Path, pcm: &Path, channels: u32) -> Value {
    let out = Command::new("node")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/waveform"))
        .arg("compare.cjs")
        .arg(waveform)
        .arg(pcm)
        .arg(channels.to_string())
        .output()
        .expect("node (scripts/test installs tests/waveform's packages)");
    assert!(
        out.status.success(),
        "waveform-data refused the waveform: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("compare.cjs prints JSON")
}

both_backends!(
    a_done_jobs_waveform_loads_in_waveform_data_and_matches_the_decoded_audio,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let music = loudness_signal("music", -14.0, dir.path());
        let speech = loudness_signal("speech", -20.0, dir.path());
        let cases = [
            Case {
                input: "music",
                query: "format=mp3",
                lossless: false,
                seconds: None,
                extra_pairs: 0,
            },
            Case {
                input: "music",
                query: "format=flac",
                lossless: true,
                seconds: None,
                extra_pairs: 0,
            },
            Case {
                input: "music",
                query: "format=aac",
                lossless: false,
                seconds: None,
                extra_pairs: 4,
            },
            Case {
                input: "speech",
                query: "format=opus",
                lossless: false,
                seconds: None,
                extra_pairs: 0,
            },
            Case {
                input: "music",
                query: "format=flac&start=2&duration=5",
                lossless: true,
                seconds: Some(5.0),
                extra_pairs: 0,
            },
            Case {
                input: "speech",
                query: "format=flac&loudness=podcast&sample_rate=22050",
                lossless: true,
                seconds: None,
                extra_pairs: 0,
            },
        ];
        let mut ids = Vec::new();
        for case in &cases {
            let input = if case.input == "music" {
                &music
            } else {
                &speech
            };
            let (status, body) = node.upload_with(&token, input, case.query, &[], &[]).await;
            assert_eq!(status, 202, "{}: {body}", case.query);
            ids.push(body["job_id"].as_str().expect("job id").to_owned());
        }
        for (case, id) in cases.iter().zip(&ids) {
            let job = node.wait_final(&token, id).await;
            assert_eq!(job["state"], "done", "{}: {job}", case.query);
            let response = node.waveform(&token, id).await;
            assert_eq!(response.status(), 200, "{}", case.query);
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{}",
                case.query
            );
            let waveform = dir.path().join(format!("{id}.json"));
            std::fs::write(&waveform, response.bytes().await.expect("body")).expect("write");
            let audio = node.save_audio(&token, &job, dir.path()).await;
            let pcm = dir.path().join(format!("{id}.f32le"));
            decode(&audio, &pcm);
            let probed = probe(&audio);
            let seen = compare(&waveform, &pcm, probed.channels);
            let row = format!(
                "WAVEFORM {:<12} {:<46} {:>5} pairs (ffmpeg's decode: {:>5}) at {} Hz | \
                 max diff {} p99 {} mean {:.3} steps, {:.1} % exact",
                probed.codec,
                case.query,
                seen["length"],
                seen["reference_length"],
                seen["sample_rate"],
                seen["max_diff"],
                seen["p99_diff"],
                seen["mean_diff"].as_f64().unwrap_or(f64::NAN),
                seen["exact"].as_f64().unwrap_or(f64::NAN) * 100.0,
            );
            println!("{row}");
            let (ours, theirs) = (
                seen["length"].as_u64().expect("length"),
                seen["reference_length"].as_u64().expect("reference length"),
            );
            assert!(theirs >= ours && theirs - ours <= case.extra_pairs, "{row}");
            assert_eq!(seen["channels"], 1, "{row}");
            assert_eq!(seen["bits"], 8, "{row}");
            assert_eq!(seen["scale"], 256, "{row}");
            assert_eq!(seen["sample_rate"], probed.sample_rate, "{row}");
            if let Some(seconds) = case.seconds {
                let pairs = (seconds * f64::from(probed.sample_rate) / 256.0).ceil();
                assert_eq!(seen["length"].as_f64(), Some(pairs), "the trim: {row}");
            }
            let max = seen["max_diff"].as_f64().expect("max diff");
            if case.lossless {
                assert!(max <= LOSSLESS_STEPS, "{row}");
            } else {
                assert!(max <= LOSSY_STEPS, "{row}");
                let mean = seen["mean_diff"].as_f64().expect("mean diff");
                assert!(mean <= LOSSY_MEAN_STEPS, "{row}");
            }
        }

        // Only its owner sees it, and it goes with its job.
        let (_, stranger) = node.new_user().await;
        assert_eq!(node.waveform(&stranger, &ids[0]).await.status(), 404);
        let fid = node.job(&token, &ids[0]).await.1["mp3_fid"]
            .as_str()
            .expect("audio id")
            .to_owned();
        assert!(node.has_file(Files::Waveforms, &fid).await);
        assert_eq!(node.delete_job(&token, &ids[0]).await, 204);
        assert_eq!(node.waveform(&token, &ids[0]).await.status(), 404);
        assert!(
            !node.has_file(Files::Waveforms, &fid).await,
            "removed with its job"
        );
    }
);
