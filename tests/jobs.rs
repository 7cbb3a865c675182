//! The jobs API: listing with cursors and filters, ownership (404 for
//! anyone else's job on every endpoint), admins, delete (also mid-
//! conversion), retry, the audio endpoint, problem details, the
//! server-sent event stream across nodes with Last-Event-ID resume, and a
//! conversion that finds its node's disk full waiting for room without
//! spending its attempts.

mod common;

use std::time::{Duration, Instant};

use common::media::clip;
use common::{Backend, Files, Names, Node, NodeOptions};
use futures::StreamExt;
use serde_json::Value;

async fn send(node: &Node, method: &str, path: &str, token: &str) -> (u16, String, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let r = node
        .http
        .request(method, node.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

fn assert_problem(what: &str, status: u16, content_type: &str, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert_eq!(body["status"], expected, "{what}: {body}");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "{what}: no {member} in {body}");
    }
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:vidaud:problem:")),
        "{what}: {body}"
    );
}

fn ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_str().expect("job_id").to_owned())
        .collect()
}

both_backends!(
    jobs_are_listed_owned_deleted_and_retried,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (alice, token) = node.new_user().await;
        let (_, other) = node.new_user().await;
        // An administrator: a real account (a token of nobody's is refused).
        let admin_email = format!("admin-{alice}");
        assert_eq!(node.add_user(&admin_email, "correct horse", true).0, 0);
        let admin = node
            .login(&admin_email, "correct horse")
            .await
            .expect("admin login");

        let mut mine = node
            .upload_all(&token, &[clip("tone"), clip("mp4"), clip("random")])
            .await;
        let theirs = node.upload_all(&other, &[clip("wav")]).await;
        let jobs = node.wait_all_final(&token, &mine).await;
        node.wait_all_final(&other, &theirs).await;
        assert_eq!(jobs[2]["state"], "failed", "{}", jobs[2]);
        mine.reverse(); // newest first

        // Listing: newest first, pages by cursor, filter by state.
        let (status, _, page) = send(&node, "GET", "/jobs", &token).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(ids(&page), mine);
        assert!(page["next_cursor"].is_null());
        let (_, _, first) = send(&node, "GET", "/jobs?limit=2", &token).await;
        assert_eq!(ids(&first), mine[..2]);
        let cursor = first["next_cursor"].as_str().expect("a next page");
        let (_, _, second) = send(
            &node,
            "GET",
            &format!("/jobs?limit=2&cursor={cursor}"),
            &token,
        )
        .await;
        assert_eq!(ids(&second), mine[2..]);
        assert!(second["next_cursor"].is_null());
        let (_, _, done) = send(&node, "GET", "/jobs?state=done", &token).await;
        assert_eq!(ids(&done), mine[1..]);
        for bad in [
            "/jobs?state=sleeping",
            "/jobs?limit=0",
            "/jobs?limit=1000",
            "/jobs?cursor=zz",
        ] {
            let (status, content_type, body) = send(&node, "GET", bad, &token).await;
            assert_problem(bad, status, &content_type, &body, 422);
        }

        // Nobody else sees or touches a job: 404 everywhere, as for no job.
        let done_id = &mine[1];
        let fid = jobs[1]["mp3_fid"].as_str().expect("mp3_fid");
        for (method, path) in [
            ("GET", format!("/jobs/{done_id}")),
            ("GET", format!("/jobs/{done_id}/audio")),
            ("GET", format!("/jobs/{done_id}/events")),
            ("POST", format!("/jobs/{}/retry", mine[0])),
            ("DELETE", format!("/jobs/{done_id}")),
            ("GET", format!("/download?fid={fid}")),
        ] {
            let (status, content_type, body) = send(&node, method, &path, &other).await;
            assert_problem(
                &format!("{method} {path}"),
                status,
                &content_type,
                &body,
                404,
            );
        }
        let (_, _, their_page) = send(&node, "GET", "/jobs", &other).await;
        assert_eq!(ids(&their_page), theirs);

        // Admins see everyone's, or one user's.
        let (_, _, all) = send(&node, "GET", "/jobs?limit=100", &admin).await;
        let all = ids(&all);
        assert!(mine.iter().chain(&theirs).all(|id| all.contains(id)));
        let (_, _, alices) = send(&node, "GET", &format!("/jobs?owner={alice}"), &admin).await;
        assert_eq!(ids(&alices), mine);

        // The audio of a job, the same bytes as by file id.
        let audio = node
            .http
            .get(node.url(&format!("/jobs/{done_id}/audio")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("audio");
        assert_eq!(audio.status(), 200);
        assert_eq!(audio.headers()["content-type"], "audio/mpeg");
        let by_job = audio.bytes().await.expect("bytes");
        let by_fid = node
            .download(&token, fid)
            .await
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(by_job, by_fid);
        let (status, content_type, body) =
            send(&node, "GET", &format!("/jobs/{}/audio", mine[0]), &token).await;
        assert_problem("audio of a failed job", status, &content_type, &body, 409);

        // Retry: only a failed job; it runs again (and fails again: same bytes).
        let (status, content_type, body) =
            send(&node, "POST", &format!("/jobs/{done_id}/retry"), &token).await;
        assert_problem("retry of a done job", status, &content_type, &body, 409);
        let (status, _, retried) =
            send(&node, "POST", &format!("/jobs/{}/retry", mine[0]), &token).await;
        assert_eq!(status, 202, "{retried}");
        assert_eq!(retried["state"], "queued");
        assert_eq!(retried["retries"], 1);
        let again = node.wait_final(&token, &mine[0]).await;
        assert_eq!(again["state"], "failed", "{again}");
        assert_eq!(again["retries"], 1);

        // Delete: 204, then gone (404), files removed; deleting again is fine.
        let video_fid = jobs[1]["video_fid"].as_str().expect("video_fid").to_owned();
        for _ in 0..2 {
            let (status, _, body) =
                send(&node, "DELETE", &format!("/jobs/{done_id}"), &token).await;
            assert_eq!(status, 204, "{body}");
        }
        let (status, _, _) = send(&node, "GET", &format!("/jobs/{done_id}"), &token).await;
        assert_eq!(status, 404);
        assert_eq!(node.download(&token, fid).await.status(), 404);
        let (_, _, page) = send(&node, "GET", "/jobs", &token).await;
        assert!(!ids(&page).contains(done_id));
        for (files, id) in [
            (Files::Audio, fid),
            (Files::Waveforms, fid),
            (Files::Videos, &video_fid),
        ] {
            assert!(
                !node.has_file(files, id).await,
                "{files:?} still holds {id}"
            );
        }

        // Errors axum itself makes are problem details too.
        let (status, content_type, body) = send(&node, "GET", "/no/such/route", &token).await;
        assert_problem("unknown route", status, &content_type, &body, 404);
        let (status, content_type, body) = send(&node, "PUT", "/jobs", &token).await;
        assert_problem("wrong method", status, &content_type, &body, 405);
    }
);

both_backends!(
    deleting_a_converting_job_stops_it_and_keeps_nothing,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions {
            workers: 1,
            ..NodeOptions::default().on(backend)
        })
        .await;
        let (_, token) = node.new_user().await;
        let (status, body) = node.upload(&token, &clip("long")).await;
        assert_eq!(status, 202, "{body}");
        let id = body["job_id"].as_str().expect("job_id").to_owned();
        node.wait_converting(None).await;
        let (status, _, _) = send(&node, "DELETE", &format!("/jobs/{id}"), &token).await;
        assert_eq!(status, 204);
        // The worker lets go and takes the next job.
        let next = node.upload_all(&token, &[clip("tone")]).await;
        let job = node.wait_final(&token, &next[0]).await;
        assert_eq!(job["state"], "done", "{job}");
        let deadline = Instant::now() + Duration::from_secs(10);
        for files in [Files::Audio, Files::Waveforms] {
            loop {
                let left = node.count_files(files).await;
                if left == 1 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{left} {files:?} files: the deleted job's stayed"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert_eq!(node.count_files(Files::Videos).await, 1);
        let log = std::fs::read_to_string(&node.log).expect("log");
        assert!(
            log.contains("the job was deleted or taken over by another attempt; stopping"),
            "the attempt should stop and say why"
        );
    }
);

/// Reads server-sent events until the stream ends or `limit` passes.
/// Returns (id, data) pairs and how many heartbeat comments came.
async fn read_events(
    base: &str,
    token: &str,
    job_id: &str,
    last_event_id: Option<&str>,
    limit: Duration,
) -> (u16, Vec<(String, Value)>, usize) {
    let mut request = reqwest::Client::new()
        .get(format!("{base}/jobs/{job_id}/events"))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("events");
    let status = response.status().as_u16();
    if status != 200 {
        return (status, Vec::new(), 0);
    }
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let mut events = Vec::new();
    let mut heartbeats = 0;
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut id = None;
        let mut data = None;
        for line in block.lines() {
            if line.starts_with(':') {
                heartbeats += 1;
            } else if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data = serde_json::from_str::<Value>(v.trim()).ok();
            }
        }
        if let (Some(id), Some(data)) = (id, data) {
            events.push((id, data));
        }
    }
    (status, events, heartbeats)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_a_job_converted_on_another_node_and_resume() {
    let names = Names::fresh();
    let front = Node::start_named(
        names.clone(),
        NodeOptions::default().with("VIDAUD_HTTP__SSE_HEARTBEAT_SECS", 1),
        true,
    )
    .await;
    let (code, answer) = front.ctl(&["drain"]);
    assert_eq!(code, 0, "{answer}");
    let (_, token) = front.new_user().await;
    let (status, body) = front.upload(&token, &clip("long")).await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().expect("job_id").to_owned();

    // Watch on the front node; the job waits there, queued, heartbeats flow.
    let watching = {
        let token = token.clone();
        let id = id.clone();
        let base = front.base.clone();
        tokio::spawn(async move {
            read_events(&base, &token, &id, None, Duration::from_secs(120)).await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Only now a node that converts joins.
    let worker = Node::start_named(names, NodeOptions::default(), false).await;
    let (status, events, heartbeats) = watching.await.expect("watcher");
    assert_eq!(status, 200);
    assert!(heartbeats >= 2, "{heartbeats} heartbeats while queued");
    let states: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states.first(), Some(&"queued"), "{states:?}");
    assert_eq!(states.last(), Some(&"done"), "{states:?}");
    let converting: Vec<&(String, Value)> = events
        .iter()
        .filter(|(_, e)| e["state"] == "converting")
        .collect();
    assert!(converting.len() >= 3, "progress events: {events:?}");
    assert!(
        converting
            .iter()
            .all(|(_, e)| e["node"] == worker.node_id()),
        "converted on the other node: {converting:?}"
    );
    let sequence: Vec<u64> = events
        .iter()
        .map(|(id, _)| id.parse().expect("numeric id"))
        .collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]), "{sequence:?}");
    let percents: Vec<f64> = converting
        .iter()
        .filter_map(|(_, e)| e["progress"].as_f64())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");

    // Resuming from a converting event sends what is newer: only `done`.
    let (mid_id, _) = converting[converting.len() / 2];
    let (status, resumed, _) = read_events(
        &front.base,
        &token,
        &id,
        Some(mid_id),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, 200);
    let resumed: Vec<&str> = resumed
        .iter()
        .map(|(_, e)| e["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(resumed, ["done"]);
    // Resuming after the end: 204, so EventSource stops reconnecting.
    let (last_id, _) = events.last().expect("events");
    let (status, _, _) = read_events(
        &front.base,
        &token,
        &id,
        Some(last_id),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, 204);
}

/// How often the node has read a job record (`find_job`), from its metrics.
async fn job_reads(node: &Node) -> f64 {
    let dependency = match node.options.backend {
        Backend::Cluster => "mongodb",
        Backend::Embedded => "sqlite",
    };
    let wanted = format!(
        "dependency_operation_duration_seconds_count{{dependency=\"{dependency}\",operation=\"find_job\"}}"
    );
    node.metrics_text()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

both_backends!(
    an_idle_event_stream_reads_nothing,
    |backend: Backend| async move {
        // The old streams re-read their job every 5 s; now only the event
        // bus feeds them: a queued job's stream costs no reads at all.
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (code, answer) = node.ctl(&["drain"]);
        assert_eq!(code, 0, "{answer}");
        let (_, token) = node.new_user().await;
        let (status, body) = node.upload(&token, &clip("mp4")).await;
        assert_eq!(status, 202, "{body}");
        let id = body["job_id"].as_str().expect("job_id").to_owned();
        let watching = {
            let (token, id, base) = (token.clone(), id.clone(), node.base.clone());
            tokio::spawn(async move {
                read_events(&base, &token, &id, None, Duration::from_secs(60)).await
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = job_reads(&node).await;
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(
            job_reads(&node).await,
            before,
            "an idle stream read the job"
        );
        let (code, answer) = node.ctl(&["resume"]);
        assert_eq!(code, 0, "{answer}");
        let (status, events, _) = watching.await.expect("watcher");
        assert_eq!(status, 200);
        let states: Vec<&str> = events
            .iter()
            .map(|(_, e)| e["state"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(states.first(), Some(&"queued"), "{states:?}");
        assert_eq!(states.last(), Some(&"done"), "{states:?}");
    }
);

both_backends!(
    per_user_limits_and_retention,
    |backend: Backend| async move {
        let mp4 = clip("mp4");
        let size = std::fs::metadata(&mp4).expect("clip").len();
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_STORAGE__QUOTA_BYTES_PER_USER", size * 3 / 2)
                // Audio small enough to fit beside the video (it counts).
                .with("VIDAUD_TRANSCODER__BITRATE_KBPS", 32)
                .with("VIDAUD_STORAGE__MAX_ACTIVE_JOBS_PER_USER", 1)
                .with("VIDAUD_STORAGE__RETENTION_DAYS", 7)
                .with("VIDAUD_STORAGE__SWEEP_EVERY_SECS", 1),
        )
        .await;
        let (_, token) = node.new_user().await;
        let (code, answer) = node.ctl(&["drain"]);
        assert_eq!(code, 0, "{answer}");

        // One job waits (drained): a second upload is one too many.
        let first = node.upload_all(&token, std::slice::from_ref(&mp4)).await;
        let (status, body) = node.upload(&token, &mp4).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["type"], "urn:vidaud:problem:too-many-jobs", "{body}");
        let (code, _) = node.ctl(&["resume"]);
        assert_eq!(code, 0);
        node.wait_final(&token, &first[0]).await;

        // The first video and its audio use most of the quota: the next upload
        // is refused while streaming, and nothing of it is kept.
        let (status, body) = node.upload(&token, &mp4).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["type"], "urn:vidaud:problem:quota-exceeded", "{body}");
        assert_eq!(node.count_files(Files::Videos).await, 1);

        // Deleting frees the room.
        let (status, _, _) = send(&node, "DELETE", &format!("/jobs/{}", first[0]), &token).await;
        assert_eq!(status, 204);
        let second = node.upload_all(&token, std::slice::from_ref(&mp4)).await;
        let job = node.wait_final(&token, &second[0]).await;
        assert_eq!(job["state"], "done");

        // A job older than the retention goes, with its files, at the next sweep.
        node.age_job(&second[0], 8).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.job(&token, &second[0]).await.0 != 404 {
            assert!(Instant::now() < deadline, "not swept\n{}", node.log_tail());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // The record goes first (a tombstone), its files right after.
        let all = [Files::Videos, Files::Audio, Files::Waveforms];
        loop {
            let mut left = 0;
            for files in all {
                left += node.count_files(files).await;
            }
            if left == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for files in all {
            node.assert_no_files(files, "retention").await;
        }
    }
);

both_backends!(
    a_full_spool_disk_makes_a_conversion_wait_without_spending_attempts,
    |backend: Backend| async move {
        // The spool (where the input is copied for the demuxer) on a small
        // disk of its own: the node's disk, on either backend.
        let spool = common::disk::SmallDisk::mount(
            &std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(common::unique("spool")),
            32,
        );
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__SPOOL_DIR", spool.path.display())
                .with("VIDAUD_TRANSCODER__MAX_ATTEMPTS", 2)
                .with("VIDAUD_TRANSCODER__ROOM_WAIT_SECS", 1),
        )
        .await;
        let (_, token) = node.new_user().await;
        assert_eq!(node.ctl(&["drain"]).0, 0);
        let id = node.upload_all(&token, &[clip("long")]).await.remove(0);
        // Less room than the input needs (4.7 MB).
        let filler = spool.fill(1 << 20);
        assert_eq!(node.ctl(&["resume"]).0, 0);
        let said = common::disk::assert_waits_for_room(
            &node,
            &token,
            &id,
            &filler,
            Duration::from_secs(10),
        )
        .await;
        println!("{backend:?}: /ready while the spool's disk is full: {said}");
        drop(node);
        drop(spool);
    }
);
