//! Output options through the service: chosen at upload (query parameters
//! or form fields), refused with 422 naming the field, honoured by the
//! worker, visible on the job with its progress, and delivered with the
//! right type and name.

mod common;

use std::time::{Duration, Instant};

use common::media::{clip, decoded_seconds, probe};
use common::{Backend, Files, Node, NodeOptions};

async fn download_to(
    node: &Node,
    token: &str,
    job: &serde_json::Value,
    dir: &std::path::Path,
) -> (reqwest::header::HeaderMap, std::path::PathBuf) {
    let fid = job["mp3_fid"].as_str().expect("a done job has its audio");
    let response = node.download(token, fid).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let path = dir.join(format!("{fid}.audio"));
    std::fs::write(&path, response.bytes().await.expect("body")).expect("write");
    (headers, path)
}

/// Uploads with options and waits until the job is done.
async fn converted(
    node: &Node,
    token: &str,
    query: &str,
    before: &[(&str, &str)],
    after: &[(&str, &str)],
) -> serde_json::Value {
    let (status, body) = node
        .upload_with(token, &clip("mp4"), query, before, after)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = node
        .wait_final(token, body["job_id"].as_str().expect("id"))
        .await;
    assert_eq!(job["state"], "done", "{job}");
    job
}

both_backends!(
    formats_chosen_at_upload_are_converted_and_served_as_such,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");

        // Query parameters.
        let job = converted(&node, &token, "format=opus&bitrate=64&title=Talk", &[], &[]).await;
        assert_eq!(job["progress"], 100.0, "{job}");
        assert_eq!(job["output"]["format"], "opus", "{job}");
        assert_eq!(job["output"]["bitrate_kbps"], 64, "{job}");
        let (headers, audio) = download_to(&node, &token, &job, dir.path()).await;
        assert_eq!(headers["content-type"], "audio/ogg");
        let disposition = headers["content-disposition"].to_str().expect("ascii");
        assert!(
            disposition.contains("filename=\"mp4.opus\""),
            "{disposition}"
        );
        let p = probe(&audio);
        assert_eq!(
            (p.codec.as_str(), p.title.as_deref()),
            ("opus", Some("Talk"))
        );

        // Form fields, before and after the file.
        let after = [("start", "1"), ("duration", "2"), ("channels", "mono")];
        let job = converted(&node, &token, "", &[("format", "flac")], &after).await;
        let (headers, audio) = download_to(&node, &token, &job, dir.path()).await;
        assert_eq!(headers["content-type"], "audio/flac");
        let p = probe(&audio);
        assert_eq!((p.codec.as_str(), p.channels), ("flac", 1));
        assert!((decoded_seconds(&audio) - 2.0).abs() < 0.03);

        // The default stays the reference's: MP3 at the configured bitrate.
        let job = converted(&node, &token, "", &[], &[]).await;
        let (headers, audio) = download_to(&node, &token, &job, dir.path()).await;
        assert_eq!(headers["content-type"], "audio/mpeg");
        assert_eq!(probe(&audio).bit_rate, 192_000);
    }
);

/// (query, fields before the file, fields after it, the field at fault)
type Refusal = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
    &'static str,
);

both_backends!(
    the_configured_bitrate_is_resolved_into_the_job_when_it_is_made,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__BITRATE_KBPS", 96),
        )
        .await;
        let (_, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        // No bitrate asked: MP3 at the node's setting, stored with the job
        // (answered at once, before any conversion) and encoded as stored.
        let (status, body) = node.upload_with(&token, &clip("mp4"), "", &[], &[]).await;
        assert_eq!(status, 202, "{body}");
        let id = body["job_id"].as_str().expect("id");
        let (_, queued) = node.job(&token, id).await;
        assert_eq!(queued["output"]["bitrate_kbps"], 96, "{queued}");
        let job = node.wait_final(&token, id).await;
        let (_, audio) = download_to(&node, &token, &job, dir.path()).await;
        assert_eq!(probe(&audio).bit_rate, 96_000);
        // Another format's default is its own, resolved the same way.
        let opus = converted(&node, &token, "format=opus", &[], &[]).await;
        assert_eq!(opus["output"]["bitrate_kbps"], 128, "{opus}");
    }
);

both_backends!(
    bad_options_get_422_naming_the_field_and_store_nothing,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let input = clip("mp4");
        let files_before = node.count_files(Files::Videos).await;
        let cases: [Refusal; 7] = [
            ("bitrate=100", &[], &[], "bitrate"),
            ("format=wma", &[], &[], "format"),
            ("start=-1", &[], &[], "start"),
            ("volume=11", &[], &[], "volume"),
            ("", &[("quality", "12")], &[], "quality"),
            ("", &[], &[("sample_rate", "44000")], "sample_rate"),
            ("format=flac", &[], &[("bitrate", "128")], "bitrate"),
        ];
        for (query, before, after, field) in cases {
            let (status, body) = node.upload_with(&token, &input, query, before, after).await;
            assert_eq!(status, 422, "{query} {before:?} {after:?}: {body}");
            assert_eq!(body["field"], field, "{body}");
            assert!(
                body["error"].as_str().is_some_and(|e| e.contains(field)),
                "{body}"
            );
        }
        assert_eq!(
            node.count_files(Files::Videos).await,
            files_before,
            "refused uploads leave no file"
        );
        assert_eq!(node.job_records().await.len(), 0, "nor a job");
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_readable_while_a_job_converts() {
    let node = Node::start(NodeOptions {
        workers: 1,
        ..NodeOptions::default()
    })
    .await;
    let (_, token) = node.new_user().await;
    let mut events = common::EventTap::bind("vidaud.events").await;
    // The slowest encoding of the long clip: progress has time to show.
    let (status, body) = node
        .upload_with(
            &token,
            &clip("long"),
            "quality=0&sample_rate=48000&channels=2",
            &[],
            &[],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().expect("id").to_owned();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, job) = node.job(&token, &job_id).await;
        if job["state"] == "converting"
            && let Some(p) = job["progress"].as_f64()
        {
            seen.push(p);
        }
        if job["state"] == "done" {
            assert_eq!(job["progress"], 100.0);
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 100.0),
        "progress while converting: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {seen:?}"
    );
    // The same, pushed as events for live listeners.
    let events = events.job_events(&job_id, Duration::from_secs(10)).await;
    let states: Vec<&str> = events.iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states.first(), Some(&"converting"), "{events:?}");
    assert_eq!(states.last(), Some(&"done"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["progress"].as_f64().is_some_and(|p| p > 0.0 && p < 100.0)),
        "progress events: {events:?}"
    );
    println!(
        "PROGRESS: {} readings while converting, {:?}",
        seen.len(),
        seen.iter().map(|p| *p as u32).collect::<Vec<_>>()
    );
}

/// Peak RSS growth allowed while converting an hour of audio: the pipeline's
/// queues, one GridFS chunk, the encoder's state. Nothing proportional to
/// the input or the output.
const HOUR_GROWTH_LIMIT_MIB: u64 = 48;

/// The conversion child's address-space limit in this test, MiB: an hour
/// converts well within it.
const HOUR_CHILD_LIMIT_MIB: u64 = 512;

#[tokio::test(flavor = "multi_thread")]
async fn an_hour_of_audio_converts_in_bounded_memory() {
    // In one pass: what one child spends on an hour (a split job's
    // children each convert a part of it).
    let node = Node::start(
        NodeOptions {
            workers: 1,
            ..NodeOptions::default()
        }
        .with("VIDAUD_TRANSCODER__CHILD_MEMORY_MIB", HOUR_CHILD_LIMIT_MIB)
        .with("VIDAUD_TRANSCODER__SPLIT_ABOVE_SECS", 0),
    )
    .await;
    let (_, token) = node.new_user().await;
    // Warm up: GStreamer's plugins and the clients are loaded by a first job.
    converted(&node, &token, "", &[], &[]).await;
    let input = clip("hour");
    let child_peaks_before = child_peak_sum(&node).await;
    let pid = node.pid();
    let before = common::memory_kib(pid, "VmRSS:");
    // Reset the peak, so it covers this job only.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");

    let (status, body) = node
        .upload_with(&token, &input, "bitrate=64&channels=mono", &[], &[])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = node
        .wait_final_within(
            &token,
            body["job_id"].as_str().expect("id"),
            Duration::from_secs(600),
        )
        .await;
    assert_eq!(job["state"], "done", "{job}");
    let peak = common::memory_kib(pid, "VmHWM:");
    let growth_mib = peak.saturating_sub(before) / 1024;
    // The child that converted it: its own peak, as it reported it.
    let child_peak_mib = (child_peak_sum(&node).await - child_peaks_before) / f64::from(1 << 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, audio) = download_to(&node, &token, &job, dir.path()).await;
    let seconds = probe(&audio).duration;
    println!(
        "MEMORY: {} s of audio ({} MB in, {} MB out): node RSS {} MiB before, peak {} MiB, growth {growth_mib} MiB (limit {HOUR_GROWTH_LIMIT_MIB}); conversion child peak RSS {child_peak_mib:.1} MiB (limit {HOUR_CHILD_LIMIT_MIB} MiB of address space)",
        common::media::HOUR_SECONDS,
        std::fs::metadata(&input)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0),
        std::fs::metadata(&audio)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0),
        before / 1024,
        peak / 1024
    );
    assert!((seconds - f64::from(common::media::HOUR_SECONDS)).abs() < 0.1);
    assert!(
        growth_mib <= HOUR_GROWTH_LIMIT_MIB,
        "peak RSS grew by {growth_mib} MiB converting an hour"
    );
    assert!(
        child_peak_mib > 1.0 && child_peak_mib < HOUR_CHILD_LIMIT_MIB as f64,
        "the child's peak was {child_peak_mib} MiB"
    );
}

/// The summed peaks of the node's conversion children so far, bytes
/// (`converter_child_peak_bytes_sum`; 0 with conversions in the node).
async fn child_peak_sum(node: &Node) -> f64 {
    node.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("converter_child_peak_bytes_sum "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

both_backends!(
    inputs_over_the_duration_limit_fail_with_the_reason,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__MAX_INPUT_SECS", 2),
        )
        .await;
        let (_, token) = node.new_user().await;
        let (status, body) = node.upload(&token, &clip("mp4")).await;
        assert_eq!(status, 202, "{body}");
        let job = node
            .wait_final(&token, body["job_id"].as_str().expect("id"))
            .await;
        assert_eq!(job["state"], "failed", "{job}");
        assert_eq!(job["attempts"], 1, "a fact about the input: no retry");
        assert!(
            job["error"].as_str().is_some_and(|e| e.contains("limit")),
            "{job}"
        );
    }
);

/// Size of the big upload: the in-memory SecantusDB of the tests fails
/// ("internal server error") storing 1 GB or more, so the daemon figure is
/// taken at 455 MB; `vidaud convert` gives the 2 GB one (closing note).
const BIG_BYTES: u64 = 450_000_000;

/// Measured 29 MiB at 455 MB (the hour of audio: 9 MiB): most of it is
/// decodebin's multiqueue, which grows with a big video stream (about
/// +20 MiB in `vidaud convert` too, flat from 700 MB to 2 GB).
const BIG_GROWTH_LIMIT_MIB: u64 = 64;

/// The big-input figure of the closing note; too heavy for every run (it
/// holds the input in the test SecantusDB). Run it with
/// `scripts/test -- --ignored big_video --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn a_big_video_converts_in_bounded_memory() {
    let input = common::media::big_video(BIG_BYTES);
    let node = Node::start(NodeOptions {
        workers: 1,
        max_upload_bytes: 3_000_000_000,
        ..NodeOptions::default()
    })
    .await;
    let (_, token) = node.new_user().await;
    converted(&node, &token, "", &[], &[]).await;
    let pid = node.pid();
    let before = common::memory_kib(pid, "VmRSS:");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
    let started = Instant::now();
    let (status, body) = node.upload(&token, &input).await;
    assert_eq!(status, 202, "{body}");
    let uploaded = started.elapsed();
    let job = node
        .wait_final_within(
            &token,
            body["job_id"].as_str().expect("id"),
            Duration::from_secs(1800),
        )
        .await;
    assert_eq!(job["state"], "done", "{job}");
    let peak = common::memory_kib(pid, "VmHWM:");
    println!(
        "MEMORY-BIG: {} MB in, uploaded in {:.1} s, done after {:.1} s: RSS {} MiB before, peak {} MiB, growth {} MiB",
        std::fs::metadata(&input)
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0),
        uploaded.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    assert!(peak.saturating_sub(before) / 1024 <= BIG_GROWTH_LIMIT_MIB);
}
