//! Per-user limits that hold under concurrency: many uploads of one user at
//! once, on one node or two, never together go over the storage quota or
//! the active-job limit (each upload reserves its room before its body is
//! read), and a conversion's audio counts against the quota as it is
//! written (an audio that would not fit fails its job, keeping nothing).
//! Retries are held to the same limit: many at once, on one node or two,
//! admit exactly as many jobs as the limit has room for.

mod common;

use common::{Backend, Files, Names, Node, NodeOptions, media};
use serde_json::Value;

/// The size of one multipart body of `clip` as `Node::upload` sends it
/// (the file and a little framing), and of the file alone.
fn sizes() -> (u64, u64) {
    let file = std::fs::metadata(media::clip("mp4")).expect("clip").len();
    (file + 400, file)
}

/// A node that takes uploads but converts nothing (drained), so stored
/// videos stay what they are and jobs stay queued.
async fn drained(options: NodeOptions) -> Node {
    let node = Node::start(options.with("VIDAUD_MAILBOXES__HTTP", 64)).await;
    let (code, answer) = node.ctl(&["drain"]);
    assert_eq!(code, 0, "{answer}");
    node
}

/// `n` uploads of one clip by `token` at once, spread over `nodes`: each
/// sends the first half of its body, all wait until every one has begun,
/// then each sends the rest. The statuses and the answers (0: no answer).
async fn at_once(nodes: &[&Node], token: &str, n: usize) -> Vec<(u16, Value)> {
    let (content_type, body) = common::multipart_file(&media::clip("mp4"));
    let (go, ready) = tokio::sync::watch::channel(false);
    let mut uploads = Vec::new();
    for i in 0..n {
        let node = nodes[i % nodes.len()];
        let (first, second) = body.split_at(body.len() / 2);
        let halves = [first.to_vec(), second.to_vec()];
        let waiting = ready.clone();
        let stream = futures::stream::unfold((0, halves), move |(part, halves)| {
            let mut ready = waiting.clone();
            async move {
                if part == 2 {
                    return None;
                }
                if part == 1 {
                    let _ = ready.wait_for(|go| *go).await;
                }
                let chunk = halves[part].clone();
                Some((Ok::<_, std::io::Error>(chunk), (part + 1, halves)))
            }
        });
        let request = node
            .http
            .post(node.url("/upload"))
            .bearer_auth(token)
            .header("content-type", content_type.clone())
            .header("content-length", body.len())
            .body(reqwest::Body::wrap_stream(stream))
            .send();
        uploads.push(tokio::spawn(async move {
            match request.await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json().await.unwrap_or(Value::Null))
                }
                Err(_) => (0, Value::Null),
            }
        }));
    }
    // Every upload has begun (and those refused have their answer).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    go.send_replace(true);
    let mut answers = Vec::new();
    for upload in uploads {
        answers.push(upload.await.expect("upload task"));
    }
    answers
}

fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// Exactly `accepted` of `answers` are 202, and the others `refused`
/// with the problem `kind`.
fn assert_admitted(answers: &[(u16, Value)], accepted: usize, refused: u16, kind: &str) {
    assert_eq!(count(answers, 202), accepted, "{answers:?}");
    assert_eq!(
        count(answers, refused),
        answers.len() - accepted,
        "{answers:?}"
    );
    let kinds: Vec<&str> = answers
        .iter()
        .filter(|(s, _)| *s != 202)
        .map(|(_, body)| body["type"].as_str().unwrap_or("?"))
        .collect();
    let wanted = format!("urn:vidaud:problem:{kind}");
    assert!(kinds.iter().all(|k| *k == wanted), "{kinds:?}");
}

both_backends!(
    concurrent_uploads_never_exceed_the_quota,
    |backend: Backend| async move {
        let (body, file) = sizes();
        // Room for three bodies and half of a fourth.
        let quota = 3 * body + body / 2;
        let node = drained(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_STORAGE__QUOTA_BYTES_PER_USER", quota),
        )
        .await;
        let (_, token) = node.new_user().await;
        let answers = at_once(&[&node], &token, 16).await;
        assert_admitted(&answers, 3, 413, "quota-exceeded");
        // What is stored is what was accepted (3 × the clip's bytes), and
        // nothing of the refused.
        assert_eq!(node.count_files(Files::Videos).await, 3);
        assert_eq!(node.count_jobs().await, 3);
        let me = node.me(&token).await;
        assert_eq!(
            me["usage"]["stored_bytes"],
            3 * file,
            "usage is what is stored: {me}"
        );
        println!(
            "{backend:?}: 16 concurrent uploads, quota {quota} B for 3 of {file} B: \
             3 stored, 13 refused (413)"
        );
    }
);

both_backends!(
    concurrent_uploads_never_exceed_the_active_job_limit,
    |backend: Backend| async move {
        let node = drained(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_STORAGE__MAX_ACTIVE_JOBS_PER_USER", 4),
        )
        .await;
        let (_, token) = node.new_user().await;
        let answers = at_once(&[&node], &token, 16).await;
        assert_admitted(&answers, 4, 429, "too-many-jobs");
        assert_eq!(node.count_jobs().await, 4);
        assert_eq!(node.count_files(Files::Videos).await, 4);
    }
);

/// Two cluster nodes of one group, both drained.
async fn two_nodes(options: NodeOptions) -> (Node, Node) {
    let options = options
        .on(Backend::Cluster)
        .with("VIDAUD_MAILBOXES__HTTP", 64);
    let names = Names::fresh();
    let a = Node::start_named(names.clone(), options.clone(), true).await;
    let b = Node::start_named(names, options, false).await;
    for node in [&a, &b] {
        let (code, answer) = node.ctl(&["drain"]);
        assert_eq!(code, 0, "{answer}");
    }
    (a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_at_once_hold_one_quota() {
    let (body, _) = sizes();
    let options =
        NodeOptions::default().with("VIDAUD_STORAGE__QUOTA_BYTES_PER_USER", 3 * body + body / 2);
    let (a, b) = two_nodes(options).await;
    let (_, token) = a.new_user().await;
    let answers = at_once(&[&a, &b], &token, 16).await;
    assert_admitted(&answers, 3, 413, "quota-exceeded");
    assert_eq!(a.count_files(Files::Videos).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_at_once_hold_one_active_job_limit() {
    let options = NodeOptions::default().with("VIDAUD_STORAGE__MAX_ACTIVE_JOBS_PER_USER", 5);
    let (a, b) = two_nodes(options).await;
    let (_, token) = a.new_user().await;
    let answers = at_once(&[&a, &b], &token, 16).await;
    assert_admitted(&answers, 5, 429, "too-many-jobs");
    assert_eq!(a.count_jobs().await, 5);
}

/// `n` failed jobs of a fresh user (not media: each fails at once), made on
/// `node` one at a time: the token and the jobs' ids.
async fn failed_jobs(node: &Node, n: usize) -> (String, Vec<String>) {
    let (_, token) = node.new_user().await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = node
            .upload_all(&token, &[media::clip("random")])
            .await
            .remove(0);
        assert_eq!(node.wait_final(&token, &id).await["state"], "failed");
        ids.push(id);
    }
    (token, ids)
}

/// `POST /jobs/{id}/retry` of every job at once, spread over `nodes`.
async fn retry_at_once(nodes: &[&Node], token: &str, ids: &[String]) -> Vec<(u16, Value)> {
    let mut retries = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let node = nodes[i % nodes.len()];
        let request = node
            .http
            .post(node.url(&format!("/jobs/{id}/retry")))
            .bearer_auth(token)
            .send();
        retries.push(tokio::spawn(async move {
            let r = request.await.expect("retry");
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }));
    }
    let mut answers = Vec::new();
    for retry in retries {
        answers.push(retry.await.expect("retry task"));
    }
    answers
}

both_backends!(
    concurrent_retries_never_exceed_the_active_job_limit,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_STORAGE__MAX_ACTIVE_JOBS_PER_USER", 4),
        )
        .await;
        let (token, ids) = failed_jobs(&node, 12).await;
        // Retried jobs stay queued: none ends and makes room meanwhile.
        assert_eq!(node.ctl(&["drain"]).0, 0);
        let answers = retry_at_once(&[&node], &token, &ids).await;
        assert_admitted(&answers, 4, 429, "too-many-jobs");
        let queued = node
            .job_records()
            .await
            .iter()
            .filter(|j| j["state"] == "queued")
            .count();
        assert_eq!(queued, 4, "active after the retries");
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_at_once_hold_one_active_job_limit_for_retries() {
    let options = NodeOptions::default()
        .on(Backend::Cluster)
        .with("VIDAUD_STORAGE__MAX_ACTIVE_JOBS_PER_USER", 5);
    let names = Names::fresh();
    let a = Node::start_named(names.clone(), options.clone(), true).await;
    let b = Node::start_named(names, options, false).await;
    let (token, ids) = failed_jobs(&a, 12).await;
    for node in [&a, &b] {
        assert_eq!(node.ctl(&["drain"]).0, 0);
    }
    let answers = retry_at_once(&[&a, &b], &token, &ids).await;
    assert_admitted(&answers, 5, 429, "too-many-jobs");
}

both_backends!(
    audio_that_would_exceed_the_quota_fails_its_job_and_keeps_nothing,
    |backend: Backend| async move {
        // Room for the video and a kilobyte: not for its audio.
        let (_, file) = sizes();
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_STORAGE__QUOTA_BYTES_PER_USER", file + 1000),
        )
        .await;
        let (_, token) = node.new_user().await;
        let id = node
            .upload_all(&token, &[media::clip("mp4")])
            .await
            .remove(0);
        let job = node.wait_final(&token, &id).await;
        assert_eq!(job["state"], "failed", "{job}");
        assert_eq!(job["attempts"], 1, "not retried: {job}");
        let error = job["error"].as_str().unwrap_or_default();
        assert!(error.contains("storage quota"), "{job}");
        node.assert_no_files(Files::Audio, "the audio over the quota")
            .await;
    }
);

/// `PUT /users/{id}/limits` with `admin`; the status and answer.
async fn put_limits(node: &Node, admin: &str, user: &str, limits: Value) -> (u16, Value) {
    let r = node
        .http
        .put(node.url(&format!("/users/{user}/limits")))
        .bearer_auth(admin)
        .json(&limits)
        .send()
        .await
        .expect("PUT limits");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

both_backends!(
    an_administrator_sets_one_users_limits,
    |backend: Backend| async move {
        // The node's default: 6 active jobs; this user gets 2, another keeps 6.
        let node = drained(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_STORAGE__MAX_ACTIVE_JOBS_PER_USER", 6),
        )
        .await;
        let (email, token) = node.new_user().await;
        let id = node.user_id(&token).await;
        let (_, other) = node.new_user().await;
        let admin_email = format!("admin-{email}");
        assert_eq!(node.add_user(&admin_email, "correct horse", true).0, 0);
        let admin = node
            .login(&admin_email, "correct horse")
            .await
            .expect("admin login");

        let limits = serde_json::json!({"quota_bytes": null, "max_active_jobs": 2});
        let (status, _) = put_limits(&node, &token, &id, limits.clone()).await;
        assert_eq!(status, 403, "not an administrator");
        let (status, _) = put_limits(&node, &admin, "nobody@example.com", limits.clone()).await;
        assert_eq!(status, 404);
        let (status, bad) = put_limits(&node, &admin, &id, serde_json::json!({"quota": 1})).await;
        assert_eq!(status, 422, "{bad}");
        let (status, set) = put_limits(&node, &admin, &id, limits.clone()).await;
        assert_eq!((status, set), (200, limits));

        assert_eq!(node.me(&token).await["limits"]["max_active_jobs"], 2);
        let answers = at_once(&[&node], &token, 8).await;
        assert_admitted(&answers, 2, 429, "too-many-jobs");
        let answers = at_once(&[&node], &other, 8).await;
        assert_eq!(
            count(&answers, 202),
            6,
            "the default holds for others: {answers:?}"
        );

        // Back to the default, by e-mail this time (and through the CLI).
        let (code, out, err) =
            node.user_cli(&["limits", &email, "--max-active-jobs", "default"], None);
        assert_eq!(code, 0, "{out}{err}");
        // The node takes the change in at its next revocation refresh.
        let started = std::time::Instant::now();
        while node.me(&token).await["limits"]["max_active_jobs"] != 6 {
            assert!(
                started.elapsed().as_secs() < 30,
                "the CLI's change never arrived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let answers = at_once(&[&node], &token, 8).await;
        assert_eq!(
            count(&answers, 202),
            4,
            "up to the default of 6: {answers:?}"
        );
    }
);
