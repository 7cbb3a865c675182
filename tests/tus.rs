//! Resumable uploads (tus 1.0.0) at `/uploads`, on both backends, with
//! clients nobody here wrote: tus-js-client (npm, run by Node) and tuspy
//! (PyPI). A 200 MB upload is cut off twice on its way (every connection
//! dropped by a proxy, then the node killed with -9 and restarted); the
//! client resumes by itself from HEAD's offset and the job's stored input
//! is byte-identical to the file. The protocol's answers (409, 412, 415,
//! 422, 460, 404 for another user, termination, expiration, a raced final
//! request) are checked request by request.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::proxy::Proxy;
use common::{Backend, Files, Node, NodeOptions, file_sha256, media};
use serde_json::Value;
use sha1::Digest;

/// Holds of a request cut off by a killed node lapse after
/// `body_idle_secs` + 5 s: keep that short so clients resume soon.
fn options(backend: Backend) -> NodeOptions {
    NodeOptions::default()
        .on(backend)
        .with("VIDAUD_HTTP__BODY_IDLE_SECS", 5)
}

fn tus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus")
}

/// Runs a client script to its end; its one JSON line.
async fn run_client(program: &str, script: &str, args: Vec<String>) -> Value {
    let run = tokio::process::Command::new(program)
        .arg(tus_dir().join(script))
        .args(&args)
        .current_dir(tus_dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 180 s"))
        .unwrap_or_else(|e| panic!("run {program} {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the client's JSON line")
}

/// One tus request to the node (`Tus-Resumable` set).
fn tus(node: &Node, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    node.http
        .request(method, node.url(path))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Cuts a big upload twice (a dropped connection, then a node killed and
/// restarted) while `client` runs, and checks the job it ends in.
async fn cut_twice(
    backend: Backend,
    client: impl FnOnce(String, String, PathBuf) -> tokio::task::JoinHandle<Value>,
) {
    let mut node = Node::start(options(backend)).await;
    let (_, token) = node.new_user().await;
    let input = media::big_video(200_000_000);
    let size = std::fs::metadata(&input).expect("input").len();
    let proxy = Proxy::start(node.port()).await;
    proxy.cut_after(size / 3);
    let started = Instant::now();
    let upload = client(proxy.url("/uploads"), token.clone(), input.clone());
    proxy
        .wait_sent(size * 2 / 3, Duration::from_secs(120))
        .await;
    let before_kill = proxy.sent();
    node.kill9();
    node.restart().await;
    let outcome = upload.await.expect("client task");
    let elapsed = started.elapsed();
    let job_id = outcome["job_id"]
        .as_str()
        .expect("Job-Id on the final PATCH")
        .to_owned();
    // Every later HEAD says the same job.
    let url = outcome["url"].as_str().expect("upload url");
    let path = &url[url.find("/uploads/").expect("upload path")..];
    let head = tus(&node, reqwest::Method::HEAD, path, &token)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "Job-Id"), job_id);
    assert_eq!(header(&head, "Upload-Offset"), size.to_string());
    let job = node.wait_final(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    let video = job["video_fid"].as_str().expect("video_fid");
    assert_eq!(
        node.stored_sha256(Files::Videos, video).await,
        file_sha256(&input),
        "the stored input differs from the file"
    );
    let resent = proxy.sent().saturating_sub(size);
    println!(
        "{backend:?}: {size} bytes in {elapsed:.1?} through a dropped connection at {} and a \
         kill -9 at {before_kill}: {resent} bytes sent beyond the file (re-sent data and \
         request heads)",
        size / 3,
    );
    assert!(resent < 24 * 1024 * 1024, "{resent} bytes re-sent");
    node.drop_databases().await;
}

both_backends!(
    tus_js_client_resumes_a_200_mb_upload_in_5_mb_chunks,
    |backend: Backend| async move {
        cut_twice(backend, |endpoint, token, input| {
            tokio::spawn(async move {
                let metadata =
                    r#"{"filename": "big.mp4", "filetype": "video/mp4", "format": "mp3"}"#;
                run_client(
                    "node",
                    "tus_js_upload.mjs",
                    vec![
                        endpoint,
                        token,
                        input.display().to_string(),
                        (5 * 1024 * 1024).to_string(),
                        metadata.to_owned(),
                    ],
                )
                .await
            })
        })
        .await;
    }
);

both_backends!(
    tuspy_resumes_a_200_mb_upload_sent_in_one_request,
    |backend: Backend| async move {
        cut_twice(backend, |endpoint, token, input| {
            tokio::spawn(async move {
                run_client(
                    "python3",
                    "tuspy_upload.py",
                    vec![
                        endpoint,
                        token,
                        input.display().to_string(),
                        "0".to_owned(),
                        r#"{"filename": "big.mp4"}"#.to_owned(),
                        "0".to_owned(),
                    ],
                )
                .await
            })
        })
        .await;
    }
);

/// `key base64(value)` pairs, as `Upload-Metadata` carries them.
fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn sha1_header(bytes: &[u8]) -> String {
    format!("sha1 {}", STANDARD.encode(sha1::Sha1::digest(bytes)))
}

/// Creates an upload of `length` bytes; its path.
async fn create(node: &Node, token: &str, length: usize, meta: &str) -> String {
    let response = tus(node, reqwest::Method::POST, "/uploads", token)
        .header("Upload-Length", length)
        .header("Upload-Metadata", meta)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let location = header(&response, "Location").to_owned();
    assert!(location.starts_with("/uploads/"), "{location}");
    assert!(!header(&response, "Upload-Expires").is_empty());
    location
}

async fn patch(
    node: &Node,
    token: &str,
    path: &str,
    offset: usize,
    bytes: Vec<u8>,
) -> reqwest::Response {
    tus(node, reqwest::Method::PATCH, path, token)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset)
        .body(bytes)
        .send()
        .await
        .expect("patch")
}

async fn offset_of(node: &Node, token: &str, path: &str) -> (u16, String) {
    let head = tus(node, reqwest::Method::HEAD, path, token)
        .send()
        .await
        .expect("HEAD");
    (
        head.status().as_u16(),
        header(&head, "Upload-Offset").to_owned(),
    )
}

both_backends!(tus_protocol_answers, |backend: Backend| async move {
    let node = Node::start(options(backend)).await;
    let (_, token) = node.new_user().await;
    let (_, stranger) = node.new_user().await;
    let clip = std::fs::read(media::clip("mp4")).expect("clip");
    let half = clip.len() / 2;

    // Discovery, and the version every other request must name.
    let options = node
        .http
        .request(reqwest::Method::OPTIONS, node.url("/uploads"))
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(options.status(), 204);
    assert_eq!(header(&options, "Tus-Version"), "1.0.0");
    for extension in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(
            header(&options, "Tus-Extension")
                .split(',')
                .any(|e| e == extension)
        );
    }
    assert_eq!(
        header(&options, "Tus-Max-Size"),
        (512u64 * 1024 * 1024).to_string()
    );
    assert!(header(&options, "Tus-Checksum-Algorithm").contains("sha1"));
    let unversioned = node
        .http
        .post(node.url("/uploads"))
        .bearer_auth(&token)
        .header("Upload-Length", 10)
        .send()
        .await
        .expect("POST");
    assert_eq!(unversioned.status(), 412);
    assert_eq!(header(&unversioned, "Tus-Version"), "1.0.0");

    // An option error at creation: 422 naming the field, nothing created.
    let records = node.upload_records().await;
    let refused = tus(&node, reqwest::Method::POST, "/uploads", &token)
        .header("Upload-Length", clip.len())
        .header(
            "Upload-Metadata",
            metadata(&[("filename", "a.mp4"), ("bitrate", "7")]),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["field"], "bitrate", "{problem}");
    assert_eq!(node.upload_records().await, records);

    let path = create(
        &node,
        &token,
        clip.len(),
        &metadata(&[("filename", "clip.mp4"), ("format", "opus")]),
    )
    .await;
    // Someone else's upload does not exist for them.
    assert_eq!(offset_of(&node, &stranger, &path).await.0, 404);
    assert_eq!(
        patch(&node, &stranger, &path, 0, clip[..10].to_vec())
            .await
            .status(),
        404
    );
    // A wrong offset, a wrong body type, a bad checksum: refused, nothing kept.
    assert_eq!(
        patch(&node, &token, &path, 10, clip[..10].to_vec())
            .await
            .status(),
        409
    );
    let typeless = tus(&node, reqwest::Method::PATCH, &path, &token)
        .header("Upload-Offset", 0)
        .body(clip[..10].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(typeless.status(), 415);
    let bad_sum = tus(&node, reqwest::Method::PATCH, &path, &token)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", 0)
        .header("Upload-Checksum", sha1_header(b"other bytes"))
        .body(clip[..half].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(bad_sum.status(), 460);
    assert_eq!(offset_of(&node, &token, &path).await, (200, "0".to_owned()));
    // The first half with the right checksum.
    let first = tus(&node, reqwest::Method::PATCH, &path, &token)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", 0)
        .header("Upload-Checksum", sha1_header(&clip[..half]))
        .body(clip[..half].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(first.status(), 204);
    assert_eq!(header(&first, "Upload-Offset"), half.to_string());
    assert!(header(&first, "Job-Id").is_empty());
    // Past the declared length: refused on the head alone (the body is
    // never sent here; the answer must come without it).
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: {half}\r\nContent-Length: {}\r\n\r\n",
        clip.len()
    );
    let address = node.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.write_all(head.as_bytes()).expect("head");
        let mut status = [0u8; 12];
        stream.read_exact(&mut status).expect("status line");
        String::from_utf8_lossy(&status).into_owned()
    })
    .await
    .expect("raw request");
    assert_eq!(answer, "HTTP/1.1 413");

    // Two racing final requests: one job, whichever wins; a retried final
    // request and every HEAD say the same job.
    let rest = clip[half..].to_vec();
    let (a, b) = tokio::join!(
        patch(&node, &token, &path, half, rest.clone()),
        patch(&node, &token, &path, half, rest.clone())
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&204), "{statuses:?}");
    let winner = if a.status() == 204 { &a } else { &b };
    let job_id = header(winner, "Job-Id").to_owned();
    assert_eq!(job_id.len(), 24, "Job-Id: {job_id:?}");
    let loser = statuses.iter().find(|s| **s != 204);
    assert!(loser.is_none_or(|s| [409, 423].contains(s)), "{statuses:?}");
    let retried = patch(&node, &token, &path, clip.len(), Vec::new()).await;
    assert_eq!(retried.status(), 204);
    assert_eq!(header(&retried, "Job-Id"), job_id);
    let head = tus(&node, reqwest::Method::HEAD, &path, &token)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(header(&head, "Job-Id"), job_id);
    let job = node.wait_final(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["output"]["format"], "opus");
    assert_eq!(job["filename"], "clip.mp4");
    let jobs: Value = node
        .http
        .get(node.url("/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("jobs")
        .json()
        .await
        .expect("jobs json");
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");

    // Termination removes an unfinished upload's data at once.
    let doomed = create(
        &node,
        &token,
        clip.len(),
        &metadata(&[("filename", "b.mp4")]),
    )
    .await;
    assert_eq!(
        patch(&node, &token, &doomed, 0, clip[..half].to_vec())
            .await
            .status(),
        204
    );
    let id = doomed.trim_start_matches("/uploads/").to_owned();
    assert!(
        node.file_ids(Files::Videos)
            .await
            .1
            .iter()
            .any(|p| p.contains(&id))
    );
    let deleted = tus(&node, reqwest::Method::DELETE, &doomed, &token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), 204);
    assert!(
        !node
            .file_ids(Files::Videos)
            .await
            .1
            .iter()
            .any(|p| p.contains(&id))
    );
    assert_eq!(offset_of(&node, &token, &doomed).await.0, 404);

    // Creation with upload, with tuspy's checksum on every request.
    let small = tempfile::tempdir().expect("dir");
    let file = media::named_copy("mkv", "small.mkv", small.path());
    let outcome = run_client(
        "python3",
        "tuspy_upload.py",
        vec![
            node.url("/uploads"),
            token.clone(),
            file.display().to_string(),
            "20000".to_owned(),
            r#"{"filename": "small.mkv", "format": "flac"}"#.to_owned(),
            "1".to_owned(),
        ],
    )
    .await;
    let job_id = outcome["job_id"].as_str().expect("Job-Id").to_owned();
    let job = node.wait_final(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["output"]["format"], "flac");
    let with_body = tus(&node, reqwest::Method::POST, "/uploads", &token)
        .header("Upload-Length", clip.len())
        .header("Content-Type", "application/offset+octet-stream")
        .body(clip.clone())
        .send()
        .await
        .expect("creation with upload");
    assert_eq!(with_body.status(), 201);
    assert_eq!(header(&with_body, "Upload-Offset"), clip.len().to_string());
    let job_id = header(&with_body, "Job-Id").to_owned();
    assert_eq!(node.wait_final(&token, &job_id).await["state"], "done");
});

both_backends!(
    an_abandoned_resumable_upload_expires_with_its_data,
    |backend: Backend| async move {
        let node = Node::start(
            options(backend)
                .with("VIDAUD_HTTP__RESUMABLE_EXPIRE_SECS", 2)
                .with("VIDAUD_STORAGE__SWEEP_EVERY_SECS", 1),
        )
        .await;
        let (_, token) = node.new_user().await;
        let clip = std::fs::read(media::clip("mp4")).expect("clip");
        let path = create(&node, &token, clip.len(), "").await;
        assert_eq!(
            patch(&node, &token, &path, 0, clip[..1000].to_vec())
                .await
                .status(),
            204
        );
        let id = path.trim_start_matches("/uploads/").to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pieces = node.file_ids(Files::Videos).await.1;
            if node.upload_records().await == 0 && !pieces.iter().any(|p| p.contains(&id)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the expired upload is still kept: {pieces:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(offset_of(&node, &token, &path).await.0, 404);
    }
);
