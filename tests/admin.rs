//! The admin socket and `vidaud ctl`: status, live pool resize under load,
//! drain and resume, and a socket only the service user can use.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::media::named_copy;
use common::{Node, NodeOptions};

fn fast() -> NodeOptions {
    NodeOptions::default()
        .with("VIDAUD_TRANSCODER__LEASE_SECS", 3)
        // Stalled uploads hold their places for the whole test.
        .with("VIDAUD_HTTP__BODY_IDLE_SECS", 600)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_over_a_private_socket_and_bad_commands_are_refused_harmlessly() {
    let node = Node::start(fast()).await;
    let mode = std::fs::metadata(node.admin_socket())
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let (code, status) = node.ctl(&["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["ok"], true);
    assert_eq!(status["node"], node.node_id().as_str());
    assert_eq!(status["pool"]["size"], 2);
    assert_eq!(
        status["queue"]["prefetch"], 4,
        "prefetch = workers + the transcoder mailbox"
    );
    assert_eq!(
        status["mailboxes"]["transcoder"],
        serde_json::json!({ "depth": 0, "capacity": 2 }),
        "{status}"
    );
    assert_eq!(status["mailboxes"]["http"]["capacity"], 16, "{status}");
    assert_eq!(status["dependencies"]["mongodb"], "up", "{status}");
    // Every child of the root is listed, the background loops (revocation
    // refresh, retention sweep, eraser) among them.
    for child in [
        "auth",
        "revocations",
        "webhooks",
        "notifier",
        "transcoder",
        "bridge",
        "retention",
        "eraser",
        "http",
    ] {
        assert_eq!(status["restarts"][child], 0, "{child}: {status}");
    }

    // Malformed commands: a clear error, the connection and node unharmed.
    let mut stream = UnixStream::connect(node.admin_socket()).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for bad in [
        "status",
        "{\"command\":\"reboot\"}",
        "{\"command\":\"resize\",\"workers\":0}",
    ] {
        writeln!(stream, "{bad}").expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        let answer: serde_json::Value = serde_json::from_str(&line).expect("json answer");
        assert_eq!(answer["ok"], false, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    writeln!(stream, "{{\"command\":\"status\"}}").expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    assert!(line.contains("\"ok\":true"), "{line}");
    let human = std::process::Command::new(env!("CARGO_BIN_EXE_vidaud"))
        .args(["ctl", "--socket"])
        .arg(node.admin_socket())
        .arg("status")
        .output()
        .expect("ctl");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("pool: 2 workers") && text.contains("mongodb up"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_under_load_changes_concurrency_and_loses_nothing() {
    let node = Node::start(NodeOptions {
        workers: 1,
        ..fast()
    })
    .await;
    let (email, token) = node.new_user().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = (0..8)
        .map(|i| named_copy("long", &format!("long{i}.mp4"), dir.path()))
        .collect();
    let ids = node.upload_all(&token, &files).await;

    let busy = |node: &Node| {
        node.ctl(&["status"]).1["pool"]["busy"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut max_busy = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        max_busy = max_busy.max(busy(&node));
    }
    assert_eq!(max_busy, 1, "one worker converts one job at a time");

    let (code, answer) = node.ctl(&["resize", "2"]);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["pool"]["size"], 2);
    assert_eq!(answer["queue"]["prefetch"], 4, "prefetch follows the pool");
    let resized = Instant::now();
    let deadline = resized + Duration::from_secs(30);
    while busy(&node) < 2 {
        assert!(
            Instant::now() < deadline,
            "two conversions never ran at once"
        );
    }
    println!(
        "RESIZE 1→2: two concurrent conversions {:.2}s after resize",
        resized.elapsed().as_secs_f64()
    );

    let (code, answer) = node.ctl(&["resize", "1"]);
    assert_eq!(code, 0, "{answer}");
    let resized = Instant::now();
    let deadline = resized + Duration::from_secs(30);
    while busy(&node) > 1 {
        assert!(
            Instant::now() < deadline,
            "the retired worker never finished"
        );
    }
    println!(
        "RESIZE 2→1: back to one conversion {:.2}s after resize",
        resized.elapsed().as_secs_f64()
    );

    let jobs = node.wait_all_final(&token, &ids).await;
    let settled = node.assert_settled(&email, &jobs, &[]).await;
    assert_eq!(settled, (8, 0), "no job lost while resizing");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_stops_taking_jobs_and_resume_takes_them_again() {
    let node = Node::start(fast()).await;
    let (_, token) = node.new_user().await;
    let (code, answer) = node.ctl(&["drain"]);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["draining"], true);
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = (0..2)
        .map(|i| named_copy("mp4", &format!("d{i}.mp4"), dir.path()))
        .collect();
    let ids = node.upload_all(&token, &files).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ids {
        assert_eq!(
            node.job(&token, id).await.1["state"],
            "queued",
            "a drained node takes no job"
        );
    }
    let (code, answer) = node.ctl(&["resume"]);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["draining"], false);
    for id in &ids {
        assert_eq!(node.wait_final(&token, id).await["state"], "done");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_start_on_a_symlinked_or_foreign_socket_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let symlink = dir.path().join("link.sock");
    std::os::unix::fs::symlink("/tmp/elsewhere.sock", &symlink).expect("symlink");
    let foreign = dir.path().join("foreign.sock");
    std::fs::write(&foreign, b"").expect("file");
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534))
        .expect("chown (tests run as root)");

    for (path, expect) in [(&symlink, "symlink"), (&foreign, "belongs to uid 65534")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vidaud"))
            .args([
                "serve",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
            ])
            .env("VIDAUD_ADMIN__SOCKET", path)
            .env("VIDAUD_AUTH__JWT_SECRET", common::JWT_SECRET)
            .env(
                "VIDAUD_HTTP__LISTEN",
                format!("127.0.0.1:{}", common::free_port()),
            )
            .output()
            .expect("vidaud serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started on {}", path.display());
        assert!(stderr.contains(expect), "{stderr}");
    }
    assert!(
        std::fs::symlink_metadata(&symlink).is_ok_and(|m| m.file_type().is_symlink()),
        "left alone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_beyond_the_limit_get_503_before_their_body_is_read() {
    let node = Node::start(fast().with("VIDAUD_MAILBOXES__HTTP", 1)).await;
    let (_, token) = node.new_user().await;
    // One upload that starts and then stalls, holding the only place.
    let slow = stalled_upload(&node, &token);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let clip = common::media::clip("mp4");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&clip).expect("clip")).file_name("a.mp4"),
    );
    let refused = node
        .http
        .post(node.url("/upload"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await;
    let refused = refused.expect("a 503 answer, not a dropped connection");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let metrics = node.metrics_text().await;
    assert!(
        metrics.contains("http_uploads_refused_busy_total 1"),
        "{metrics}"
    );

    drop(slow);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = node.upload(&token, &clip).await;
    assert_eq!(status, 202, "accepted once the place is free: {body}");
}

/// Starts an upload that sends its headers and a little of the body, then
/// stalls, holding one of the node's upload places while it lives.
fn stalled_upload(node: &Node, token: &str) -> std::net::TcpStream {
    node.start_raw_upload(token, 100_000, 4)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_gets_503s_not_unbounded_memory_and_the_backlog_drains() {
    let options = NodeOptions {
        workers: 1,
        ..fast()
    }
    .with("VIDAUD_MAILBOXES__HTTP", 2)
    .with("VIDAUD_MAILBOXES__TRANSCODER", 1)
    .with("VIDAUD_MAILBOXES__AUTH", 1)
    // Slow enough hashing that logins overlap.
    .with("VIDAUD_AUTH__ARGON2_MEMORY_KIB", 19456)
    .with("VIDAUD_AUTH__ARGON2_ITERATIONS", 2);
    let node = Node::start(options).await;
    let (email, token) = node.new_user().await;
    assert_eq!(
        common::broker_prefetch(&node.names.video_queue),
        [2],
        "prefetch = 1 worker + 1"
    );
    let idle = common::memory_kib(node.pid(), "VmRSS:");

    // Both upload places taken: a burst is pushed back, none of it read.
    let held = [stalled_upload(&node, &token), stalled_upload(&node, &token)];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clip = common::media::clip("mp4");
    let burst = (0..12).map(|_| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&clip).expect("clip"))
                .file_name("burst.mp4"),
        );
        node.http
            .post(node.url("/upload"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    });
    for response in futures::future::join_all(burst).await {
        let response = response.expect("an answer");
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
    let (_, status) = node.ctl(&["status"]);
    assert_eq!(
        status["mailboxes"]["http"],
        serde_json::json!({ "depth": 2, "capacity": 2 }),
        "{status}"
    );
    let metrics = node.metrics_text().await;
    assert!(
        metrics.contains("actor_mailbox_depth{actor=\"http\"} 2"),
        "{metrics}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Logins beyond the auth mailbox are pushed back the same way.
    let logins = (0..12).map(|_| node.login(&email, "correct horse"));
    let answers = futures::future::join_all(logins).await;
    let busy = answers.iter().filter(|a| **a == Err(503)).count();
    let served = answers.iter().filter(|a| a.is_ok()).count();
    assert!(busy > 0 && busy + served == 12, "{answers:?}");

    // A backlog larger than the prefetch: the node holds at most 2.
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = (0..6)
        .map(|i| named_copy("long", &format!("b{i}.mp4"), dir.path()))
        .collect();
    let ids = node.upload_all(&token, &files).await;
    let (_, status) = node.ctl(&["status"]);
    assert!(
        status["unacked"].as_u64().is_some_and(|n| n <= 2),
        "held deliveries ≤ prefetch: {status}"
    );
    let jobs = node.wait_all_final(&token, &ids).await;
    let peak = common::memory_kib(node.pid(), "VmHWM:");
    println!(
        "BACKPRESSURE: 12 refused with 503 while 2 uploads were in progress; RSS idle {} MiB, peak {} MiB",
        idle / 1024,
        peak / 1024
    );
    let settled = node.assert_settled(&email, &jobs, &[]).await;
    assert_eq!(settled, (6, 0), "the backlog drains");
}
