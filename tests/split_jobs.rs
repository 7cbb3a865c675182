//! Long jobs on a node: converted in segments that the pool's workers take
//! from the job queue one by one, each with its own lease and attempts,
//! then joined by the worker that finishes the last one; on both backends,
//! by the same code.
//!
//! What a split job must come to is a single pass's output: FLAC the same
//! samples and the same waveform, MP3 the same number of samples
//! (`tests/split.rs` holds the joins themselves to a single pass's, on a
//! 30-minute lecture). And nothing of the segments may stay behind: not
//! their files, not their records, not when the job is deleted mid-way.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::media::{self, TALK_SECONDS, pcm_md5};
use common::{Backend, Files, Node, NodeOptions};

/// A node that splits audio longer than 30 s into segments of about
/// `segment_secs`, with `workers` workers.
fn splitting(backend: Backend, segment_secs: u32, workers: u32) -> NodeOptions {
    NodeOptions::default()
        .on(backend)
        .with("VIDAUD_TRANSCODER__SPLIT_ABOVE_SECS", 30)
        .with("VIDAUD_TRANSCODER__SEGMENT_SECS", segment_secs)
        .with("VIDAUD_TRANSCODER__WORKERS", workers)
}

/// `vidaud convert` of `input` into `output` in one pass, with its
/// waveform; the waveform's text.
fn single_pass(input: &Path, output: &Path, options: &[&str]) -> String {
    let waveform = output.with_extension("json");
    let out = Command::new(env!("CARGO_BIN_EXE_vidaud"))
        .arg("convert")
        .arg(input)
        .arg(output)
        .arg("--waveform")
        .arg(&waveform)
        .args(options)
        .output()
        .expect("vidaud convert");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(waveform).expect("the single pass's waveform")
}

/// Samples (per channel) ffmpeg decodes from `path`.
fn samples(path: &Path) -> u64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-f", "s16le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    out.stdout.len() as u64 / 2
}

/// Uploads `input` to be converted to `format`; the job's id.
async fn upload(node: &Node, token: &str, input: &Path, format: &str) -> String {
    let query = format!("format={format}");
    let (status, body) = node.upload_with(token, input, &query, &[], &[]).await;
    assert_eq!(status, 202, "{body}");
    body["job_id"].as_str().expect("id").to_owned()
}

/// The done FLAC `job` has the samples of a single pass over `input`.
async fn assert_single_pass_flac(node: &Node, token: &str, job: &serde_json::Value, input: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let flac = node.save_audio(token, job, dir.path()).await;
    let single = dir.path().join("single.flac");
    single_pass(input, &single, &[]);
    assert_eq!(
        pcm_md5(&flac, "pcm_s24le"),
        pcm_md5(&single, "pcm_s24le"),
        "the split job's samples are a single pass's"
    );
}

/// No segment of any job is left: files, pieces or records.
async fn assert_no_segments_left(node: &Node, why: &str) {
    node.assert_no_files(Files::Segments, why).await;
    node.assert_no_files(Files::SegmentWaveforms, why).await;
    assert_eq!(
        node.count_segment_records().await,
        0,
        "{why}: segment records left"
    );
}

both_backends!(
    a_long_job_is_converted_in_segments_by_the_pool_and_joined_as_one_pass,
    |backend: Backend| async move {
        let node = Node::start(splitting(backend, 20, 2)).await;
        let (_, token) = node.new_user().await;
        let talk = media::clip("talk");
        let dir = tempfile::tempdir().expect("tempdir");

        let mut jobs = Vec::new();
        for format in ["flac", "mp3"] {
            jobs.push(upload(&node, &token, &talk, format).await);
        }
        let done = node.wait_all_final(&token, &jobs).await;
        for job in &done {
            assert_eq!(job["state"], "done", "{job}");
            let total = job["segments"]["total"].as_u64().expect("split: {job}");
            // 100 s in segments of about 20 s.
            assert_eq!(total, u64::from(TALK_SECONDS / 20), "{job}");
            assert_eq!(job["segments"]["done"], total, "{job}");
            assert_eq!(job["progress"], 100.0, "{job}");
        }

        // FLAC: a single pass's samples and waveform.
        let flac = node.save_audio(&token, &done[0], dir.path()).await;
        let single = dir.path().join("single.flac");
        let single_peaks = single_pass(&talk, &single, &[]);
        assert_eq!(
            pcm_md5(&flac, "pcm_s24le"),
            pcm_md5(&single, "pcm_s24le"),
            "the split job's samples are a single pass's"
        );
        let peaks = node.waveform(&token, jobs[0].as_str()).await;
        assert_eq!(peaks.status(), 200);
        assert!(
            peaks.text().await.expect("waveform") == single_peaks,
            "the joined waveform is a single pass's"
        );
        assert_eq!(
            done[0]["audio"]["bytes"].as_u64(),
            Some(std::fs::metadata(&flac).expect("audio").len())
        );

        // MP3: a single pass's length, to the sample.
        let mp3 = node.save_audio(&token, &done[1], dir.path()).await;
        let single = dir.path().join("single.mp3");
        single_pass(&talk, &single, &[]);
        assert_eq!(samples(&mp3), samples(&single), "a single pass's samples");

        // Every segment was a unit of work of its own; none is left.
        let converted = node.log_text().matches("converting a segment").count();
        assert!(converted >= 2 * 5, "{converted} segment conversions");
        assert_no_segments_left(&node, "after the joins").await;
    }
);

both_backends!(
    a_split_job_deleted_midway_leaves_no_segment_behind,
    |backend: Backend| async move {
        // One worker, many short segments: the job is caught mid-way.
        let node = Node::start(splitting(backend, 5, 1)).await;
        let (_, token) = node.new_user().await;
        let id = upload(&node, &token, &media::clip("talk"), "flac").await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, job) = node.job(&token, &id).await;
            let done = job["segments"]["done"].as_u64().unwrap_or(0);
            if done >= 1 {
                let total = job["segments"]["total"].as_u64().expect("total");
                assert!(done < total, "caught too late: {job}");
                break;
            }
            assert!(Instant::now() < deadline, "no segment done: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(node.delete_job(&token, &id).await, 204);
        assert_eq!(node.job(&token, &id).await.0, 404);
        // The segment converting at the time stops at its next renewal
        // (or stores and removes what it made); queued ones find nothing.
        let deadline = Instant::now() + Duration::from_secs(30);
        while node.queue_depth(&node.names.video_queue).await > 0
            || node.count_files(Files::Segments).await > 0
        {
            assert!(Instant::now() < deadline, "segments left converting");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_no_segments_left(&node, "after the deletion").await;
        node.assert_no_files(Files::Audio, "after the deletion")
            .await;

        // The node goes on converting.
        let (status, body) = node.upload(&token, &media::clip("mp4")).await;
        assert_eq!(status, 202, "{body}");
        let job = node
            .wait_final(&token, body["job_id"].as_str().expect("id"))
            .await;
        assert_eq!(job["state"], "done", "{job}");
    }
);

both_backends!(
    a_split_job_survives_its_node_killed_midway,
    |backend: Backend| async move {
        // One worker, short segments and leases: the node is killed while
        // a segment converts, and the segments done before it stay done.
        let options = splitting(backend, 5, 1).with("VIDAUD_TRANSCODER__LEASE_SECS", 3);
        let mut node = Node::start(options).await;
        let (_, token) = node.new_user().await;
        let talk = media::clip("talk");
        let id = upload(&node, &token, &talk, "flac").await;
        let deadline = Instant::now() + Duration::from_secs(120);
        let before = loop {
            let (_, job) = node.job(&token, &id).await;
            let done = job["segments"]["done"].as_u64().unwrap_or(0);
            if done >= 2 {
                break done;
            }
            assert!(Instant::now() < deadline, "no segments done: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        node.kill9();
        node.restart().await;
        let job = node.wait_final(&token, &id).await;
        assert_eq!(job["state"], "done", "{job}");
        let total = job["segments"]["total"].as_u64().expect("total");
        // Converted again: at most the segments not done at the kill (and
        // the one whose end was not yet recorded), never the whole job.
        let log = node.log_text();
        let converted = log.matches("converting a segment").count() as u64;
        eprintln!(
            "{converted} segment conversions for {total} segments, {before} done at the kill"
        );
        assert!(
            converted <= total + 2 && converted >= total,
            "{converted} segment conversions for {total} segments, {before} done at the kill"
        );
        assert_single_pass_flac(&node, &token, &job, &talk).await;
        assert_no_segments_left(&node, "after the restart").await;
        assert_eq!(node.count_files(Files::Audio).await, 1, "one audio file");
    }
);

both_backends!(
    a_join_killed_midway_is_made_again_once,
    |backend: Backend| async move {
        // The join pauses once it holds the job: the node is killed there.
        let options = splitting(backend, 20, 2)
            .with("VIDAUD_TRANSCODER__LEASE_SECS", 3)
            .with("VIDAUD_TRANSCODER__INJECT_JOIN_PAUSE_MS", 4000);
        let mut node = Node::start(options).await;
        let (_, token) = node.new_user().await;
        let talk = media::clip("talk");
        let id = upload(&node, &token, &talk, "flac").await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if node.log_text().contains("joining after an injected pause") {
                break;
            }
            assert!(Instant::now() < deadline, "no join began");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, joining) = node.job(&token, &id).await;
        assert_eq!(joining["state"], "converting", "{joining}");
        assert_eq!(
            joining["segments"]["done"], joining["segments"]["total"],
            "{joining}"
        );
        node.kill9();
        node.restart().await;
        let job = node.wait_final(&token, &id).await;
        assert_eq!(job["state"], "done", "{job}");
        let log = node.log_text();
        assert_eq!(
            log.matches("joining after an injected pause").count(),
            2,
            "joined again"
        );
        assert_eq!(log.matches("joined; done").count(), 1, "done once");
        assert_single_pass_flac(&node, &token, &job, &talk).await;
        assert_no_segments_left(&node, "after the join").await;
        assert_eq!(node.count_files(Files::Audio).await, 1, "one audio file");
    }
);
