//! The core pipeline end to end, over HTTP, against real servers:
//! upload → RabbitMQ → GStreamer → GridFS → e-mail → download.

mod common;

use common::media::{self, CLIP_SECONDS, CONTAINERS};
use common::{Backend, Files, Node, NodeOptions, mails_to};

both_backends!(
    every_container_converts_downloads_and_mails_a_link,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token) = node.new_user().await;

        let mut jobs = Vec::new();
        for kind in CONTAINERS {
            let (status, body) = node.upload(&token, &media::clip(kind)).await;
            assert_eq!(status, 202, "{kind}: {body}");
            let job_id = body["job_id"].as_str().expect("job_id").to_owned();
            assert!(body["video_fid"].is_string(), "{body}");
            jobs.push((kind, job_id));
        }

        let out = tempfile::tempdir().expect("tempdir");
        let mut mp3_fids = Vec::new();
        for (kind, job_id) in &jobs {
            let job = node.wait_final(&token, job_id).await;
            assert_eq!(job["state"], "done", "{kind}: {job}");
            assert_eq!(job["attempts"], 1, "{kind}: {job}");
            let fid = job["mp3_fid"].as_str().expect("mp3_fid").to_owned();

            let response = node.download(&token, &fid).await;
            assert_eq!(response.status(), 200, "{kind}");
            assert_eq!(response.headers()["content-type"], "audio/mpeg");
            let declared: u64 = response.headers()["content-length"]
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            let bytes = response.bytes().await.expect("body");
            assert_eq!(bytes.len() as u64, declared, "{kind}");

            let path = out.path().join(format!("{kind}.mp3"));
            std::fs::write(&path, &bytes).expect("write mp3");
            media::assert_decodes(&path);
            let probe = media::probe(&path);
            assert_eq!(probe.codec, "mp3", "{kind}: {probe:?}");
            let input = media::probe(&media::clip(kind));
            assert!(
                (probe.duration - input.duration).abs() <= 0.1,
                "{kind}: output {:.3}s vs input audio {:.3}s",
                probe.duration,
                input.duration
            );
            assert!(
                (input.duration - CLIP_SECONDS).abs() < 0.2,
                "{kind} input {input:?}"
            );
            assert_eq!(
                probe.title.as_deref(),
                Some(*kind),
                "ID3 title from the file name"
            );
            mp3_fids.push(fid);
        }

        let mails = mails_to(&email, jobs.len()).await;
        assert_eq!(mails.len(), jobs.len(), "one mail per job");
        let links: Vec<String> = mails
            .iter()
            .filter_map(|m| common::download_link_in(m))
            .collect();
        for fid in &mp3_fids {
            let link = format!("{}/download?fid={fid}&", node.base);
            assert!(
                links.iter().any(|l| l.starts_with(&link)),
                "no mail links {link}: {links:?}"
            );
        }
    }
);

both_backends!(
    inputs_without_audio_fail_once_with_a_reason,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token) = node.new_user().await;

        let cases = [
            ("noaudio", "no audio track"),
            ("random", "not a recognised audio or video format"),
        ];
        let mut jobs = Vec::new();
        for (kind, reason) in cases {
            let (status, body) = node.upload(&token, &media::clip(kind)).await;
            assert_eq!(status, 202, "{kind}: {body}");
            jobs.push((
                kind,
                reason,
                body["job_id"].as_str().expect("job_id").to_owned(),
            ));
        }
        for (kind, reason, job_id) in &jobs {
            let job = node.wait_final(&token, job_id).await;
            assert_eq!(job["state"], "failed", "{kind}: {job}");
            let error = job["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(reason),
                "{kind}: error {error:?} should say {reason:?}"
            );
            assert!(job["mp3_fid"].is_null(), "{kind}: {job}");
        }
        // Not retried: a while later each job still had exactly one attempt.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        for (kind, _, job_id) in &jobs {
            let (_, job) = node.job(&token, job_id).await;
            assert_eq!(job["attempts"], 1, "{kind} was retried: {job}");
        }
        node.assert_no_files(Files::Audio, "failed conversions")
            .await;

        let mails = mails_to(&email, jobs.len()).await;
        assert_eq!(mails.len(), jobs.len(), "the user hears about each failure");
        assert!(
            mails
                .iter()
                .all(|m| m.contains("failed") && m.contains("Reason:"))
        );
    }
);
