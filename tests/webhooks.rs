//! Webhooks on both backends, received by tests/webhooks/receiver.py, which
//! verifies every signature with the `standardwebhooks` library from PyPI:
//! deliveries verify; a receiver failing three times gets the event once
//! more after the retries (counted by `webhook-id`), every attempt listed;
//! a re-send arrives with the same id; a deleted job is announced; a
//! pending delivery survives kill -9; loopback destinations are refused by
//! default (by address at registration, by name after DNS at delivery);
//! so is every IPv6 form of an internal IPv4 address, at each entry point;
//! a redirect is not followed; a `callback_url` given at upload (form,
//! query or tus metadata) gets its job's events, signed with a secret of
//! its own, and a refused one stops the upload; one endpoint never has two
//! deliveries in flight.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Node, NodeOptions, free_port, media};
use serde_json::{Value, json};

/// A receiver listening on `port`, verifying with `secret`.
struct Receiver {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Receiver {
    fn new() -> Receiver {
        Receiver {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        }
    }

    fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/hook", self.port)
    }

    fn start(&mut self, secret: &str, extra: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &self.port.to_string(), "--secret", secret])
            .arg("--log")
            .arg(self.dir.path().join("log"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("stderr")).expect("stderr"))
            .spawn()
            .expect("python3 receiver.py");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "receiver: {}",
                std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every request it got, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `done` holds of the requests (panics after `limit`).
    async fn wait(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(Instant::now() < deadline, "{what}: {requests:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fast retries, loopback allowed (the receiver is on it).
fn options(backend: Backend) -> NodeOptions {
    NodeOptions::default()
        .on(backend)
        .with("VIDAUD_WEBHOOKS__RETRY_SCHEDULE_SECS", "[1, 1, 1, 1, 1]")
        .with("VIDAUD_WEBHOOKS__ALLOWED_NETWORKS", r#"["127.0.0.0/8"]"#)
        .with("VIDAUD_WEBHOOKS__TIMEOUT_SECS", 3)
}

/// The defaults (loopback and private networks refused), no retries.
fn refusing(backend: Backend) -> NodeOptions {
    NodeOptions::default()
        .on(backend)
        .with("VIDAUD_WEBHOOKS__RETRY_SCHEDULE_SECS", "[]")
}

async fn register(node: &Node, token: &str, body: Value) -> (u16, Value) {
    let answer = node
        .http
        .post(node.url("/webhooks"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST /webhooks");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// `method path` with the token; the answer's status.
async fn answer_status(node: &Node, method: reqwest::Method, path: &str, token: &str) -> u16 {
    node.http
        .request(method, node.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect(path)
        .status()
        .as_u16()
}

async fn get(node: &Node, token: &str, path: &str) -> Value {
    let answer = node
        .http
        .get(node.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 200, "{path}");
    answer.json().await.expect("json")
}

/// Uploads a clip and waits for its job to be done; its id.
async fn done_job(node: &Node, token: &str) -> String {
    let id = node
        .upload_all(token, &[media::clip("mp4")])
        .await
        .remove(0);
    assert_eq!(node.wait_final(token, &id).await["state"], "done");
    id
}

both_backends!(
    deliveries_verify_retry_until_accepted_resend_and_announce_deletion,
    |backend: Backend| async move {
        let node = Node::start(options(backend)).await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        let (status, endpoint) =
            register(&node, &token, json!({"url": receiver.url("127.0.0.1")})).await;
        assert_eq!(status, 201, "{endpoint}");
        let secret = endpoint["secret"]
            .as_str()
            .expect("the secret, once")
            .to_owned();
        assert!(secret.starts_with("whsec_"));
        let id = endpoint["id"].as_str().expect("id").to_owned();
        let listed = get(&node, &token, "/webhooks").await;
        assert_eq!(listed[0]["id"], id.as_str());
        assert!(
            listed[0].get("secret").is_none(),
            "the secret is shown once: {listed}"
        );
        receiver.start(&secret, &["--fail-first", "3"]);

        let job = done_job(&node, &token).await;
        let requests = receiver
            .wait("job.done accepted", Duration::from_secs(60), |r| {
                r.iter().any(|q| q["status"] == 204)
            })
            .await;
        // Nothing more comes once it is accepted.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let requests_after = receiver.requests();
        assert_eq!(requests_after.len(), requests.len(), "{requests_after:#?}");
        assert_eq!(
            requests.len(),
            4,
            "three failures, then once more: {requests:#?}"
        );
        let message_id = requests[0]["webhook_id"]
            .as_str()
            .expect("webhook-id")
            .to_owned();
        for request in &requests {
            assert_eq!(request["verified"], true, "{request}");
            assert_eq!(
                request["webhook_id"],
                message_id.as_str(),
                "the same id on every retry"
            );
            assert_eq!(request["type"], "job.done");
            assert_eq!(request["job_id"], job.as_str());
        }
        // The payload's download link works with no login.
        let link = requests[3]["download_url"].as_str().expect("download_url");
        assert_eq!(reqwest::get(link).await.expect("link").status(), 200);

        let deliveries = get(&node, &token, &format!("/webhooks/{id}/deliveries")).await;
        let delivery = &deliveries[0];
        assert_eq!(delivery["state"], "delivered", "{deliveries}");
        assert_eq!(delivery["attempts"], 4);
        assert_eq!(delivery["message_id"], message_id.as_str());
        let statuses: Vec<Value> = delivery["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|a| a["status"].clone())
            .collect();
        assert_eq!(statuses, [json!(500), json!(500), json!(500), json!(204)]);

        // Re-sent: the same message again.
        let delivery_id = delivery["id"].as_str().expect("delivery id");
        assert_eq!(
            answer_status(
                &node,
                reqwest::Method::POST,
                &format!("/webhooks/{id}/deliveries/{delivery_id}/resend"),
                &token
            )
            .await,
            202
        );
        receiver
            .wait("the re-send", Duration::from_secs(30), |r| r.len() == 5)
            .await;
        assert_eq!(receiver.requests()[4]["webhook_id"], message_id.as_str());

        // Deleting the job announces it.
        assert_eq!(
            answer_status(
                &node,
                reqwest::Method::DELETE,
                &format!("/jobs/{job}"),
                &token
            )
            .await,
            204
        );
        let requests = receiver
            .wait("job.deleted", Duration::from_secs(30), |r| {
                r.iter().any(|q| q["type"] == "job.deleted")
            })
            .await;
        assert!(requests.iter().all(|q| q["verified"] == true));

        // Someone else sees nothing of it.
        let (_, other) = node.new_user().await;
        assert_eq!(
            answer_status(
                &node,
                reqwest::Method::GET,
                &format!("/webhooks/{id}/deliveries"),
                &other
            )
            .await,
            404
        );
        assert_eq!(
            answer_status(
                &node,
                reqwest::Method::DELETE,
                &format!("/webhooks/{id}"),
                &token
            )
            .await,
            204
        );
        assert_eq!(get(&node, &token, "/webhooks").await, json!([]));
    }
);

both_backends!(
    a_pending_delivery_survives_kill_9,
    |backend: Backend| async move {
        let mut node = Node::start(options(backend).with(
            "VIDAUD_WEBHOOKS__RETRY_SCHEDULE_SECS",
            "[2, 2, 2, 2, 2, 2, 2, 2]",
        ))
        .await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        let (_, endpoint) =
            register(&node, &token, json!({"url": receiver.url("127.0.0.1")})).await;
        let id = endpoint["id"].as_str().expect("id").to_owned();
        // Nobody listens yet: the first attempt fails, the delivery waits.
        let job = done_job(&node, &token).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let deliveries = get(&node, &token, &format!("/webhooks/{id}/deliveries")).await;
            if deliveries[0]["attempts"].as_u64().unwrap_or(0) >= 1 {
                assert_eq!(deliveries[0]["state"], "pending", "{deliveries}");
                break;
            }
            assert!(Instant::now() < deadline, "no attempt: {deliveries}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node.kill9();
        receiver.start(endpoint["secret"].as_str().expect("secret"), &[]);
        node.restart().await;
        let requests = receiver
            .wait(
                "the delivery after the restart",
                Duration::from_secs(60),
                |r| r.iter().any(|q| q["status"] == 204),
            )
            .await;
        assert_eq!(requests.len(), 1, "{requests:#?}");
        assert_eq!(requests[0]["verified"], true);
        assert_eq!(requests[0]["job_id"], job.as_str());
    }
);

both_backends!(
    loopback_is_refused_by_default_and_redirects_are_not_followed,
    |backend: Backend| async move {
        // Without allowed networks: an address is refused at registration,
        // a name that resolves to loopback at delivery, after DNS.
        let node = Node::start(refusing(backend)).await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        for refused in [
            receiver.url("127.0.0.1"),
            receiver.url("[::1]"),
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "http://10.0.0.1/hook".to_owned(),
            "ftp://example.com/hook".to_owned(),
        ] {
            let (status, problem) = register(&node, &token, json!({"url": refused})).await;
            assert_eq!(status, 422, "{refused}: {problem}");
        }
        // A job's callback_url is held to the same rules.
        let (status, problem) = node
            .upload_with(
                &token,
                &media::clip("mp4"),
                "",
                &[("callback_url", &receiver.url("127.0.0.1"))],
                &[],
            )
            .await;
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("loopback"),
            "{problem}"
        );
        let (status, endpoint) =
            register(&node, &token, json!({"url": receiver.url("localhost")})).await;
        assert_eq!(status, 201, "{endpoint}");
        receiver.start(endpoint["secret"].as_str().expect("secret"), &[]);
        let id = endpoint["id"].as_str().expect("id").to_owned();
        done_job(&node, &token).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let attempt = loop {
            let deliveries = get(&node, &token, &format!("/webhooks/{id}/deliveries")).await;
            if deliveries[0]["state"] == "failed" {
                break deliveries[0]["history"][0].clone();
            }
            assert!(Instant::now() < deadline, "{deliveries}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(error.contains("loopback"), "{attempt}");
        assert!(receiver.requests().is_empty(), "nothing reached it");
        let metrics = node.metrics_text().await;
        assert!(
            metrics.contains("webhook_deliveries_total{result=\"refused\"} 1"),
            "{}",
            metrics
                .lines()
                .filter(|l| l.contains("webhook"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        drop(node);

        // Allowed, but the receiver redirects: not followed.
        let node =
            Node::start(options(backend).with("VIDAUD_WEBHOOKS__RETRY_SCHEDULE_SECS", "[]")).await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        let (_, endpoint) =
            register(&node, &token, json!({"url": receiver.url("127.0.0.1")})).await;
        receiver.start(
            endpoint["secret"].as_str().expect("secret"),
            &["--redirect"],
        );
        done_job(&node, &token).await;
        let requests = receiver
            .wait("the redirected attempt", Duration::from_secs(30), |r| {
                !r.is_empty()
            })
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let requests_after = receiver.requests();
        assert_eq!(requests_after.len(), 1, "{requests_after:#?}");
        assert_eq!(requests[0]["status"], 302);
        assert!(
            requests_after.iter().all(|r| r["path"] == "/hook"),
            "not followed"
        );
        let id = endpoint["id"].as_str().expect("id");
        let deliveries = get(&node, &token, &format!("/webhooks/{id}/deliveries")).await;
        let error = deliveries[0]["history"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("not followed"), "{deliveries}");
    }
);

/// A TCP listener on 127.0.0.1 that counts the connections it is offered.
struct Tripwire {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Tripwire {
    fn start() -> Tripwire {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("address").port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Tripwire { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

both_backends!(
    ipv6_forms_of_internal_ipv4_addresses_are_refused_at_every_entry_point,
    |backend: Backend| async move {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;

        let node = Node::start(refusing(backend)).await;
        let (_, token) = node.new_user().await;
        let tripwire = Tripwire::start();
        let port = tripwire.port;
        // Each form of 127.0.0.1 (the tripwire) or 169.254.169.254 (cloud
        // metadata) that an IPv6 address can carry.
        let urls = [
            format!("http://[::127.0.0.1]:{port}/hook"),
            format!("http://[::7f00:1]:{port}/hook"),
            "http://[::169.254.169.254]/latest/meta-data/".to_owned(),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            format!("http://[64:ff9b::127.0.0.1]:{port}/hook"),
            format!("http://[64:ff9b:1::7f00:1]:{port}/hook"),
            format!("http://[2002:7f00:1::1]:{port}/hook"),
            "http://[2002:a9fe:a9fe::1]/latest/meta-data/".to_owned(),
            format!("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/hook"),
        ];
        let clip = media::clip("mp4");
        let bytes = std::fs::read(&clip).expect("clip");
        for url in &urls {
            let (status, problem) = register(&node, &token, json!({ "url": url })).await;
            assert_eq!(status, 422, "POST /webhooks {url}: {problem}");
            let (status, problem) = node
                .upload_with(&token, &clip, "", &[("callback_url", url)], &[])
                .await;
            assert_eq!(status, 422, "POST /upload callback_url {url}: {problem}");
            assert_eq!(problem["field"], "callback_url", "{problem}");
            let created = node
                .http
                .post(node.url("/uploads"))
                .bearer_auth(&token)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", bytes.len().to_string())
                .header(
                    "Upload-Metadata",
                    format!("callback_url {}", STANDARD.encode(url)),
                )
                .header("Content-Type", "application/offset+octet-stream")
                .body(bytes.clone())
                .send()
                .await
                .expect("tus POST");
            assert_eq!(created.status(), 422, "tus Upload-Metadata {url}");
        }
        assert_eq!(node.upload_records().await, 0, "nothing was stored");
        // A job runs, so a delivery would have been attempted by now.
        done_job(&node, &token).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(tripwire.hits(), 0, "the node connected to loopback");
    }
);

both_backends!(
    a_callback_url_given_at_upload_gets_its_jobs_events,
    |backend: Backend| async move {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;

        let node = Node::start(options(backend)).await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        let hook = receiver.url("127.0.0.1");

        // A refused destination stops the upload, naming the field, in the
        // query, the form (before or after the file) and tus metadata.
        let clip = media::clip("mp4");
        for (query, before, after) in [
            ("callback_url=http://10.0.0.1/hook", vec![], vec![]),
            (
                "",
                vec![("callback_url", "http://169.254.169.254/")],
                vec![],
            ),
            ("", vec![], vec![("callback_url", "gopher://example.com/")]),
        ] {
            let (status, problem) = node
                .upload_with(&token, &clip, query, &before, &after)
                .await;
            assert_eq!(status, 422, "{problem}");
            assert_eq!(problem["field"], "callback_url", "{problem}");
        }
        let tus_create = |metadata: String, body: Vec<u8>| {
            node.http
                .post(node.url("/uploads"))
                .bearer_auth(&token)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", body.len().to_string())
                .header("Upload-Metadata", metadata)
                .header("Content-Type", "application/offset+octet-stream")
                .body(body)
                .send()
        };
        let bytes = std::fs::read(&clip).expect("clip");
        let refused = tus_create(
            format!("callback_url {}", STANDARD.encode("http://[::1]/hook")),
            bytes.clone(),
        )
        .await
        .expect("tus POST");
        assert_eq!(refused.status(), 422);
        assert_eq!(node.upload_records().await, 0, "nothing was stored");

        // Given in the form: the answer holds the secret, once.
        let (status, accepted) = node
            .upload_with(&token, &clip, "", &[("callback_url", &hook)], &[])
            .await;
        assert_eq!(status, 202, "{accepted}");
        let form_job = accepted["job_id"].as_str().expect("job_id").to_owned();
        let form_secret = accepted["callback_secret"]
            .as_str()
            .expect("callback_secret")
            .to_owned();
        // Given in tus metadata: the creation's answer holds it.
        let created = tus_create(
            format!(
                "filename {},callback_url {}",
                STANDARD.encode("tus.mp4"),
                STANDARD.encode(&hook)
            ),
            bytes,
        )
        .await
        .expect("tus POST");
        assert_eq!(created.status(), 201);
        let header = |name: &str| {
            created
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{name} in {:?}", created.headers()))
                .to_owned()
        };
        let tus_job = header("Job-Id");
        let tus_secret = header("Callback-Secret");
        assert_ne!(tus_secret, form_secret, "a secret per job");
        let view = get(&node, &token, &format!("/jobs/{tus_job}")).await;
        assert_eq!(view["callback_url"], hook.as_str(), "{view}");
        assert!(!view.to_string().contains(&tus_secret), "{view}");

        // Each job's done event reaches its callback, signed with its own
        // secret (the receiver starts late: the first attempts retry).
        receiver.start(&form_secret, &["--secret", &tus_secret]);
        let requests = receiver
            .wait("both jobs' job.done", Duration::from_secs(90), |r| {
                [&form_job, &tus_job].iter().all(|job| {
                    r.iter()
                        .any(|q| q["type"] == "job.done" && q["job_id"] == job.as_str())
                })
            })
            .await;
        assert!(
            requests.iter().all(|q| q["verified"] == true),
            "{requests:#?}"
        );
        // The receiver answers before the node records the attempt.
        let path = format!("/jobs/{form_job}/deliveries");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let deliveries = loop {
            let deliveries = get(&node, &token, &path).await;
            if deliveries[0]["state"] == "delivered" || std::time::Instant::now() > deadline {
                break deliveries;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(deliveries[0]["state"], "delivered", "{deliveries}");
        assert_eq!(deliveries[0]["event"], "job.done");
        let (_, other) = node.new_user().await;
        let path = format!("/jobs/{form_job}/deliveries");
        assert_eq!(
            answer_status(&node, reqwest::Method::GET, &path, &other).await,
            404
        );

        // Re-sent on request; deleting the job announces it there too.
        let delivery_id = deliveries[0]["id"].as_str().expect("delivery id");
        let resend = format!("/jobs/{form_job}/deliveries/{delivery_id}/resend");
        assert_eq!(
            answer_status(&node, reqwest::Method::POST, &resend, &token).await,
            202
        );
        let job_path = format!("/jobs/{form_job}");
        assert_eq!(
            answer_status(&node, reqwest::Method::DELETE, &job_path, &token).await,
            204
        );
        let requests = receiver
            .wait(
                "the re-send and job.deleted",
                Duration::from_secs(30),
                |r| {
                    let of_job = |kind: &str| {
                        r.iter()
                            .filter(|q| q["type"] == kind && q["job_id"] == form_job.as_str())
                            .count()
                    };
                    of_job("job.done") == 2 && of_job("job.deleted") == 1
                },
            )
            .await;
        assert!(requests.iter().all(|q| q["verified"] == true));
        // Only the jobs' own events: the tus job's deletion was not asked.
        assert_eq!(requests.len(), 4, "{requests:#?}");
    }
);

both_backends!(
    one_delivery_at_a_time_per_endpoint,
    |backend: Backend| async move {
        // Three jobs end together; a slow receiver never has two of one
        // endpoint's deliveries in flight, and gets each once.
        let node = Node::start(options(backend)).await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        let (_, endpoint) =
            register(&node, &token, json!({"url": receiver.url("127.0.0.1")})).await;
        receiver.start(
            endpoint["secret"].as_str().expect("secret"),
            &["--delay", "0.7"],
        );
        let clips = vec![media::clip("mp4"); 3];
        let jobs = node.upload_all(&token, &clips).await;
        for job in &jobs {
            assert_eq!(node.wait_final(&token, job).await["state"], "done");
        }
        let requests = receiver
            .wait("three job.done", Duration::from_secs(60), |r| r.len() >= 3)
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let requests_after = receiver.requests();
        assert_eq!(requests_after.len(), 3, "{requests_after:#?}");
        assert!(
            requests
                .iter()
                .all(|q| q["in_flight"] == 1 && q["status"] == 204),
            "{requests:#?}"
        );
        let mut got: Vec<&str> = requests
            .iter()
            .filter_map(|q| q["job_id"].as_str())
            .collect();
        got.sort_unstable();
        let mut want: Vec<&str> = jobs.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }
);

both_backends!(
    finished_deliveries_are_pruned_after_their_keeping_time,
    |backend: Backend| async move {
        // A sweep every second; deliveries kept the default 30 days.
        let node = Node::start(options(backend).with("VIDAUD_STORAGE__SWEEP_EVERY_SECS", 1)).await;
        let (_, token) = node.new_user().await;
        let mut receiver = Receiver::new();
        let (status, endpoint) =
            register(&node, &token, json!({"url": receiver.url("127.0.0.1")})).await;
        assert_eq!(status, 201, "{endpoint}");
        receiver.start(endpoint["secret"].as_str().expect("secret"), &[]);
        let id = endpoint["id"].as_str().expect("id").to_owned();
        let path = format!("/webhooks/{id}/deliveries");
        done_job(&node, &token).await;
        receiver
            .wait("job.done accepted", Duration::from_secs(60), |r| {
                r.iter().any(|q| q["status"] == 204)
            })
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&node, &token, &path).await[0]["state"] != "delivered" {
            assert!(Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Kept while young (a few sweeps pass) ...
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            get(&node, &token, &path).await.as_array().map(Vec::len),
            Some(1)
        );
        // ... gone once older than 30 days.
        let shift = 31 * 86_400_000_i64;
        match backend {
            Backend::Embedded => {
                node.sqlite()
                    .execute(
                        "UPDATE webhook_deliveries SET created_at = created_at - ?1",
                        [shift],
                    )
                    .expect("age the deliveries");
            }
            Backend::Cluster => {
                let old = mongodb::bson::DateTime::from_millis(
                    mongodb::bson::DateTime::now().timestamp_millis() - shift,
                );
                node.mongo()
                    .await
                    .database(&node.names.jobs_db)
                    .collection::<mongodb::bson::Document>("webhook_deliveries")
                    .update_many(
                        mongodb::bson::doc! {},
                        mongodb::bson::doc! { "$set": { "created_at": old } },
                    )
                    .await
                    .expect("age the deliveries");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&node, &token, &path).await != json!([]) {
            assert!(Instant::now() < deadline, "never pruned");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
);
