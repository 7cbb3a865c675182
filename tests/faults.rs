//! Durable jobs under faults: nodes killed, brokers and databases stopped,
//! poison inputs, duplicate deliveries. Each scenario submits a batch,
//! injects the fault, waits for quiescence and checks (`assert_settled`):
//! every job done or, for poison inputs, failed; one MP3 per done job; one
//! mail per job; no orphan files; work queues empty; the dead-letter queue
//! holding exactly the poison jobs.
//!
//! The scenarios stop shared servers (RabbitMQ, MariaDB), so they run one
//! at a time.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::media::{self, named_copy};
use common::{
    Backend, Files, Names, Node, NodeOptions, free_port, publish_raw, queue_depth, terminate_child,
};
use mongodb::bson::{DateTime, doc, oid::ObjectId};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Fast leases and grace periods so faults resolve in seconds.
fn fault_options() -> NodeOptions {
    NodeOptions::default()
        .with("VIDAUD_TRANSCODER__LEASE_SECS", 3)
        .with("VIDAUD_TRANSCODER__SHUTDOWN_GRACE_SECS", 20)
}

fn batch(dir: &tempfile::TempDir, kind: &str, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| named_copy(kind, &format!("{kind}{i}.mp4"), dir.path()))
        .collect()
}

both_backends!(
    a_kill_9_mid_upload_leaves_nothing_behind_for_good,
    |backend: Backend| async move {
        // Abandoned uploads may be removed 2 s after they began (by default
        // only once no upload begun then could still be running).
        let mut node = Node::start(
            fault_options()
                .on(backend)
                .with("VIDAUD_STORAGE__ABANDONED_UPLOAD_GRACE_SECS", 2)
                .with("VIDAUD_STORAGE__SWEEP_EVERY_SECS", 1),
        )
        .await;
        let (email, token) = node.new_user().await;
        let stream = node.start_raw_upload(&token, 50_000_000, 4 << 20);
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.file_ids(Files::Videos).await.1.is_empty() {
            assert!(
                Instant::now() < deadline,
                "no piece of the upload was stored"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node.kill9();
        drop(stream);
        node.restart().await;
        // Embedded: swept at start-up; cluster: by the next sweep after
        // the grace (GridFS chunks without a file document).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (files, pieces) = node.file_ids(Files::Videos).await;
            assert!(files.is_empty(), "a cut upload became a file: {files:?}");
            if pieces.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pieces of the cut upload left: {pieces:?}\n{}",
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(node.count_jobs().await, 0);
        // And the node serves on, its finished files untouched by sweeps.
        let ids = node.upload_all(&token, &[media::clip("mp4")]).await;
        let job = node.wait_final(&token, &ids[0]).await;
        assert_eq!(job["state"], "done");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let settled = node.assert_settled(&email, &[job], &[]).await;
        assert_eq!(settled, (1, 0));
    }
);

/// One line per scenario for the closing note. `refused` uploads got 503
/// during an outage and were never accepted; duplicated and lost are 0 by
/// the time this runs, or `assert_settled` would have failed.
fn report(scenario: &str, submitted: usize, refused: usize, (done, failed): (usize, usize)) {
    report_resent(scenario, submitted, refused, (done, failed, 0));
}

/// `resent`: mails sent a second time (same Message-ID) by a node killed
/// between the SMTP accept and the `mailed` mark.
fn report_resent(
    scenario: &str,
    submitted: usize,
    refused: usize,
    (done, failed, resent): (usize, usize, usize),
) {
    println!(
        "SCENARIO {scenario}: submitted {submitted}, refused {refused}, done {done}, failed {failed}, \
         duplicated 0, lost 0, mails re-sent {resent}"
    );
}

both_backends!(
    poison_inputs_fail_once_and_are_dead_lettered,
    |backend: Backend| async move {
        let _serial = SERIAL.lock().await;
        let node = Node::start(fault_options().on(backend)).await;
        let (email, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = batch(&dir, "mp4", 3);
        for kind in ["random", "truncated", "noaudio"] {
            files.push(named_copy(kind, &format!("{kind}.mp4"), dir.path()));
        }
        let ids = node.upload_all(&token, &files).await;
        let jobs = node.wait_all_final(&token, &ids).await;
        for job in jobs.iter().filter(|j| j["state"] == "failed") {
            assert_eq!(
                job["attempts"], 1,
                "permanent failures are not retried: {job}"
            );
            assert!(
                job["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{job}"
            );
        }
        let settled = node
            .assert_settled(&email, &jobs, &["random", "truncated", "noaudio"])
            .await;
        assert_eq!(settled, (3, 3));
        report("6 poison inputs", ids.len(), 0, settled);
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_twice_gives_one_mp3_and_one_mail() {
    let _serial = SERIAL.lock().await;
    let node = Node::start(fault_options()).await;
    let (email, token) = node.new_user().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = node.upload_all(&token, &batch(&dir, "long", 1)).await;
    let record = node.job_records().await.pop().expect("job record");
    let message = serde_json::json!({
        "job_id": ids[0],
        "video_fid": record["video_fid"].as_str().expect("video_fid"),
        "mp3_fid": record["mp3_fid"].as_str().expect("mp3_fid"),
        "username": email,
    });
    let payload = serde_json::to_vec(&message).expect("json");
    // Once while the first delivery is being converted, once after it is done.
    publish_raw(&node.names.video_queue, &payload).await;
    let jobs = node.wait_all_final(&token, &ids).await;
    publish_raw(&node.names.video_queue, &payload).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, job) = node.job(&token, &ids[0]).await;
    assert_eq!(
        job["attempts"], 1,
        "the duplicate did not convert again: {job}"
    );
    let settled = node.assert_settled(&email, &jobs, &[]).await;
    report("7 duplicate delivery", 1, 0, settled);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_without_a_video_or_job_are_dead_lettered_without_a_crash_loop() {
    let _serial = SERIAL.lock().await;
    let node = Node::start(fault_options()).await;
    let (email, token) = node.new_user().await;

    // A job whose video is not in GridFS (deleted, or a foreign producer).
    let owner = node.user_id(&token).await;
    let job_id = ObjectId::new();
    let now = DateTime::now();
    node.mongo()
        .await
        .database(&node.names.jobs_db)
        .collection("jobs")
        .insert_one(doc! {
            "_id": job_id, "owner": &owner, "username": &email, "filename": "ghost.mp4",
            "video_fid": ObjectId::new(), "mp3_fid": ObjectId::new(), "state": "queued",
            "attempts": 0, "bitrate_kbps": 192, "created_at": now, "updated_at": now,
        })
        .await
        .expect("insert job");
    let ghost = serde_json::json!({
        "job_id": job_id.to_hex(), "video_fid": ObjectId::new().to_hex(),
        "mp3_fid": ObjectId::new().to_hex(), "username": email,
    });
    publish_raw(&node.names.video_queue, ghost.to_string().as_bytes()).await;
    // No job record at all, and the reference's own message shape.
    let orphan = serde_json::json!({
        "job_id": ObjectId::new().to_hex(), "video_fid": "x", "mp3_fid": "y", "username": email,
    });
    publish_raw(&node.names.video_queue, orphan.to_string().as_bytes()).await;
    let reference = serde_json::json!({ "video_fid": "656f", "mp3_fid": null, "username": email });
    publish_raw(&node.names.video_queue, reference.to_string().as_bytes()).await;

    let job = node.wait_final(&token, &job_id.to_hex()).await;
    assert_eq!(job["state"], "failed");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{job}"
    );
    assert_eq!(job["attempts"], 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while queue_depth(&node.names.dead_letter_queue).await < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(queue_depth(&node.names.dead_letter_queue).await, 3);
    assert_eq!(
        queue_depth(&node.names.video_queue).await,
        0,
        "nothing loops"
    );

    // The node is unharmed: a normal job still converts.
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = node.upload_all(&token, &batch(&dir, "mp4", 1)).await;
    assert_eq!(node.wait_final(&token, &ids[0]).await["state"], "done");
    report("9 missing video / no job / foreign message", 4, 0, (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_longer_than_two_heartbeats_then_a_batch_flows() {
    let _serial = SERIAL.lock().await;
    let node = Node::start(fault_options().with("VIDAUD_QUEUE__HEARTBEAT_SECS", 1)).await;
    let (email, token) = node.new_user().await;
    let pid = node.pid();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = node.upload_all(&token, &batch(&dir, "mp4", 3)).await;
    let jobs = node.wait_all_final(&token, &ids).await;
    assert_eq!(node.pid(), pid, "no restart");
    let settled = node.assert_settled(&email, &jobs, &[]).await;
    report("9 idle > 2 heartbeats", ids.len(), 0, settled);
}

both_backends!(
    eight_concurrent_uploads_on_one_node,
    |backend: Backend| async move {
        let _serial = SERIAL.lock().await;
        let node = Node::start(fault_options().on(backend)).await;
        let (email, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let files = batch(&dir, "mp4", 8);
        let uploads = files.iter().map(|f| node.upload(&token, f));
        let results = futures::future::join_all(uploads).await;
        let ids: Vec<String> = results
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 202, "{body}");
                body["job_id"].as_str().expect("job_id").to_owned()
            })
            .collect();
        let jobs = node.wait_all_final(&token, &ids).await;
        let settled = node.assert_settled(&email, &jobs, &[]).await;
        assert_eq!(settled, (8, 0));
        report("9 eight concurrent uploads", 8, 0, settled);
    }
);

both_backends!(
    sigterm_mid_batch_exits_zero_and_a_restart_finishes_it,
    |backend: Backend| async move {
        let _serial = SERIAL.lock().await;
        let mut node = Node::start(fault_options().on(backend)).await;
        let (email, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = node.upload_all(&token, &batch(&dir, "long", 6)).await;
        node.wait_converting(None).await;
        let started = Instant::now();
        let code = node.terminate(Duration::from_secs(40));
        assert_eq!(code, Some(0), "graceful exit\n{}", node.log_tail());
        println!("SIGTERM to exit: {:.1}s", started.elapsed().as_secs_f64());
        node.restart().await;
        let jobs = node.wait_all_final(&token, &ids).await;
        let settled = node.assert_settled(&email, &jobs, &[]).await;
        assert_eq!(settled, (6, 0));
        report("8 SIGTERM mid-batch", ids.len(), 0, settled);
    }
);

both_backends!(
    kill_9_mid_transcode_repeatedly_then_restart,
    |backend: Backend| async move {
        let _serial = SERIAL.lock().await;
        let mut node = Node::start(fault_options().on(backend)).await;
        let (email, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = node.upload_all(&token, &batch(&dir, "long", 8)).await;
        let mut kills = 0;
        for round in 0..3u64 {
            let Some(_) = node.converting_within(None, Duration::from_secs(30)).await else {
                break;
            };
            // Somewhere inside the conversion, not always at its start.
            tokio::time::sleep(Duration::from_millis(150 * round + 100)).await;
            node.kill9();
            kills += 1;
            node.restart().await;
        }
        assert!(
            kills >= 2,
            "the batch finished before the node could be killed twice"
        );
        let jobs = node.wait_all_final(&token, &ids).await;
        let settled = node
            .assert_settled_despite_kills(&email, &jobs, &[], kills)
            .await;
        assert_eq!((settled.0, settled.1), (8, 0));
        report_resent(
            &format!("1 kill -9 x{kills} mid-transcode"),
            ids.len(),
            0,
            settled,
        );
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_one_killed_the_others_finish() {
    let _serial = SERIAL.lock().await;
    let names = Names::fresh();
    let a = Node::start_named(names.clone(), fault_options(), true).await;
    let mut b = Node::start_named(names.clone(), fault_options(), false).await;
    let c = Node::start_named(names.clone(), fault_options(), false).await;
    let (email, token) = a.new_user().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = a.upload_all(&token, &batch(&dir, "long", 8)).await;
    a.wait_converting(Some(&b.node_id())).await;
    b.kill9();
    // Uploaded on A, downloaded from C.
    let jobs = c.wait_all_final(&token, &ids).await;
    for job in &jobs {
        let fid = job["mp3_fid"].as_str().expect("done");
        assert_eq!(c.download(&token, fid).await.status(), 200);
    }
    let settled = a.assert_settled_despite_kills(&email, &jobs, &[], 1).await;
    assert_eq!((settled.0, settled.1), (8, 0));
    report_resent("2 three nodes, one killed", ids.len(), 0, settled);
}

/// Runs an administration command, for at most two minutes (`timeout`
/// ends it); panics with its output on failure: a service that does not
/// answer fails the test, never hangs it.
fn run(command: &str, args: &[&str]) {
    let out = Command::new("timeout")
        .args(["120", command])
        .args(args)
        .output()
        .expect(command);
    assert!(
        out.status.success(),
        "{command} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_port(port: u16, open: bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let is_open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if is_open == open {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "port {port} did not become {}",
        if open { "open" } else { "closed" }
    );
}

/// Starts RabbitMQ's app again even when the test fails.
struct RabbitGuard;
impl Drop for RabbitGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_stopped_and_started_mid_run() {
    let _serial = SERIAL.lock().await;
    let mut node = Node::start(fault_options()).await;
    let (email, token) = node.new_user().await;
    let pid = node.pid();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ids = node.upload_all(&token, &batch(&dir, "long", 4)).await;
    node.wait_converting(None).await;
    let _guard = RabbitGuard;
    run("rabbitmqctl", &["stop_app"]);
    let (status, _) = node.upload(&token, &media::clip("mp4")).await;
    assert_eq!(status, 503, "uploads are refused while the broker is away");
    run("rabbitmqctl", &["start_app"]);
    wait_port(5672, true, Duration::from_secs(60));
    // Accepted again once the broker is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = node.upload(&token, &media::clip("mp4")).await;
        if status == 202 {
            ids.push(body["job_id"].as_str().expect("job_id").to_owned());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uploads not accepted after the broker came back"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let jobs = node.wait_all_final(&token, &ids).await;
    assert!(
        node.is_running() && node.pid() == pid,
        "vidaud was not restarted"
    );
    let settled = node.assert_settled(&email, &jobs, &[]).await;
    report("3 RabbitMQ stop_app/start_app", ids.len() + 1, 1, settled);
}

/// A SecantusDB of the test's own, on disk, so it can be stopped and
/// started again with its data.
struct OwnMongo {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnMongo {
    fn start() -> OwnMongo {
        let mut mongo = OwnMongo {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        mongo.up();
        mongo
    }

    fn up(&mut self) {
        let child = Command::new("secantusd-py")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--storage-path",
            ])
            .arg(self.dir.path())
            .args(["--oplog-max-entries", "1000", "--log-level", "WARNING"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("secantusd-py");
        self.child = Some(child);
        wait_port(self.port, true, Duration::from_secs(60));
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate_child(&mut child, Duration::from_secs(30));
        }
        wait_port(self.port, false, Duration::from_secs(30));
    }
}

impl Drop for OwnMongo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mongodb_stopped_and_started_mid_run() {
    let _serial = SERIAL.lock().await;
    let mut mongo = OwnMongo::start();
    let options = NodeOptions {
        mongo_port: Some(mongo.port),
        ..fault_options()
    };
    let node = Node::start(options).await;
    let (email, token) = node.new_user().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = node.upload_all(&token, &batch(&dir, "long", 4)).await;
    node.wait_converting(None).await;
    mongo.down();
    let (status, _) = node.upload(&token, &media::clip("mp4")).await;
    assert_eq!(status, 503, "uploads are refused while storage is away");
    let ready = node
        .http
        .get(node.url("/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["dependencies"]["mongodb"], "down", "{body}");
    assert_eq!(
        node.http
            .get(node.url("/health"))
            .send()
            .await
            .expect("health")
            .status(),
        200
    );
    mongo.up();
    let jobs = node.wait_all_final(&token, &ids).await;
    let settled = node.assert_settled(&email, &jobs, &[]).await;
    assert_eq!(settled, (4, 0));
    report("4 MongoDB stopped and started", ids.len() + 1, 1, settled);
}

/// Starts MariaDB again even when the test fails.
struct MariaGuard;
impl Drop for MariaGuard {
    fn drop(&mut self) {
        let _ = Command::new("start-stop-daemon")
            .args([
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
            ])
            .status();
        wait_port(3306, true, Duration::from_secs(60));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_down_login_503_but_tokens_still_work() {
    let _serial = SERIAL.lock().await;
    let node = Node::start(fault_options()).await;
    let (email, token) = node.new_user().await;
    {
        let _guard = MariaGuard;
        // mysqladmin waits for the server's pid file to go, by default
        // for an hour: a shutdown that hangs must fail this test instead.
        run(
            "mysqladmin",
            &["-uroot", "--shutdown-timeout=60", "shutdown"],
        );
        wait_port(3306, false, Duration::from_secs(30));

        assert_eq!(node.login(&email, "correct horse").await, Err(503));
        let r = node
            .http
            .post(node.url("/register"))
            .json(&serde_json::json!({ "email": "new@example.com", "password": "long enough" }))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        let ready: serde_json::Value = node
            .http
            .get(node.url("/ready"))
            .send()
            .await
            .expect("ready")
            .json()
            .await
            .expect("json");
        assert_eq!(ready["dependencies"]["mysql"], "down", "{ready}");
        assert_eq!(ready["serving"]["upload"], true, "{ready}");

        let dir = tempfile::tempdir().expect("tempdir");
        let ids = node.upload_all(&token, &batch(&dir, "mp4", 2)).await;
        let jobs = node.wait_all_final(&token, &ids).await;
        let settled = node.assert_settled(&email, &jobs, &[]).await;
        assert_eq!(settled, (2, 0));
        report("5 MySQL down", ids.len(), 0, settled);
    }
    // MariaDB is back: logins work again without restarting vidaud.
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.login(&email, "correct horse").await.is_err() {
        assert!(Instant::now() < deadline, "login did not recover");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

both_backends!(
    a_worker_panic_mid_job_is_contained_and_the_job_retried,
    |backend: Backend| async move {
        let _serial = SERIAL.lock().await;
        let node = Node::start(
            fault_options()
                .on(backend)
                .with("VIDAUD_TRANSCODER__INJECT_PANICS", 1),
        )
        .await;
        let (email, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = node.upload_all(&token, &batch(&dir, "mp4", 3)).await;
        let jobs = node.wait_all_final(&token, &ids).await;
        let retried: Vec<_> = jobs.iter().filter(|j| j["attempts"] == 2).collect();
        assert_eq!(
            retried.len(),
            1,
            "exactly the panicked job took a second attempt: {jobs:?}"
        );
        let (_, status) = node.ctl(&["status"]);
        assert_eq!(
            status["pool"]["worker_restarts"], 1,
            "the restart is visible to operators: {status}"
        );
        let metrics = node.metrics_text().await;
        assert!(
            metrics.contains(r#"actor_restarts_total{actor="worker"} 1"#),
            "{metrics}"
        );
        let health = node
            .http
            .get(node.url("/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200, "the daemon kept serving");
        let settled = node.assert_settled(&email, &jobs, &[]).await;
        assert_eq!(settled, (3, 0));
        report("worker panic mid-job", ids.len(), 0, settled);
    }
);

both_backends!(
    attempts_used_up_fail_the_job_into_the_dead_letter_queue,
    |backend: Backend| async move {
        let options = fault_options()
            .on(backend)
            .with("VIDAUD_TRANSCODER__INJECT_PANICS", 100)
            .with("VIDAUD_TRANSCODER__MAX_ATTEMPTS", 2);
        let _serial = SERIAL.lock().await;
        let node = Node::start(options).await;
        let (email, token) = node.new_user().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = node.upload_all(&token, &batch(&dir, "mp4", 1)).await;
        let jobs = node.wait_all_final(&token, &ids).await;
        let error = jobs[0]["error"].as_str().unwrap_or_default();
        assert_eq!(jobs[0]["state"], "failed");
        assert!(
            error.contains("gave up after 2 attempts") && error.contains("crashed"),
            "{error}"
        );
        let settled = node.assert_settled(&email, &jobs, &["mp4"]).await;
        assert_eq!(settled, (0, 1));
        let mail = common::mails_to(&email, 1).await.pop().unwrap_or_default();
        assert!(
            mail.contains("gave up after 2 attempts"),
            "the user is told why: {mail}"
        );
        report("transient failures exhaust attempts", ids.len(), 0, settled);
    }
);
