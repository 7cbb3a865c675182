//! What an operator scrapes: `/metrics` of a node that did some work passes
//! `promtool check metrics`, carries every metric the dashboard and the
//! alert rules use (and the reference's names), keeps its labels bounded
//! (no ids, no e-mail addresses), and the alert rules pass
//! `promtool check rules`.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::clip;
use common::{Node, NodeOptions};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Metric families exposed (`# TYPE` lines), with the sample suffixes.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// Metric names a PromQL text selects: identifiers followed by `{` or `[`.
fn selected(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = promql.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        match (start, ident) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let before = s.checked_sub(1).map(|j| bytes[j]);
                // Not a label (`{path=`) or a `$variable`.
                if (b == b'{' || b == b'[') && before != Some(b'$') && before != Some(b'{') {
                    names.insert(promql[s..i].to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    names.remove("up"); // Prometheus' own
    names
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write");
    }
    drop(input);
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_nodes_metrics_pass_promtool_and_cover_dashboard_and_alerts() {
    let metrics_port = common::free_port();
    let node = Node::start(NodeOptions::default().with(
        "VIDAUD_HTTP__METRICS_LISTEN",
        format!("127.0.0.1:{metrics_port}"),
    ))
    .await;
    let (email, token) = node.new_user().await;
    let ids = node
        .upload_all(&token, &[clip("tone"), clip("random")])
        .await;
    let jobs = node.wait_all_final(&token, &ids).await;
    let fid = jobs[0]["mp3_fid"].as_str().expect("done");
    assert_eq!(node.download(&token, fid).await.status(), 200);

    // The sampled gauges are refreshed every 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = node.metrics_text().await;
        // A sample sets its gauges one after another: wait for the last.
        if text.contains(r#"jobs_by_state{state="done"} 1"#)
            && text.contains(r#"dependency_up{dependency="mysql"} 1"#)
            && text.contains(&format!(
                r#"queue_messages_ready{{queue="{}"}}"#,
                node.names.mp3_queue
            ))
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "sampled metrics never came:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let (ok, report) = promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics:\n{report}\n{text}");
    // The same on the metrics-only address, in OpenMetrics when asked.
    let separate = node
        .http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("metrics address");
    assert!(
        separate.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text"))
    );
    assert!(separate.text().await.expect("text").ends_with("# EOF\n"));
    let only_metrics = node
        .http
        .get(format!("http://127.0.0.1:{metrics_port}/jobs"))
        .send()
        .await
        .expect("other path");
    assert_eq!(only_metrics.status(), 404);

    let names = exposed(&text);
    for reference in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "converter_jobs_total",
        "converter_job_duration_seconds_bucket",
    ] {
        assert!(names.contains(reference), "{reference} missing");
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/deploy/grafana/vidaud.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(selected(target["expr"].as_str().expect("expr")));
        }
    }
    let rules = format!("{ROOT}/deploy/prometheus/alerts.yml");
    let (ok, report) = promtool(&["check", "rules", &rules], None);
    assert!(ok, "promtool check rules:\n{report}");
    for line in std::fs::read_to_string(&rules).expect("rules").lines() {
        if !line.trim_start().starts_with('#') {
            used.extend(selected(line));
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !names.contains(*n)).collect();
    assert!(missing.is_empty(), "used but not exposed: {missing:?}");

    // Bounded labels: no job or file ids, no addresses.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let labels = line.split('}').next().unwrap_or("");
        assert!(!labels.contains(&email), "{line}");
        assert!(!labels.contains(fid) && !labels.contains(&ids[0]), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_have_request_and_job_spans_and_no_secrets() {
    let node = Node::start(
        NodeOptions::default()
            .with("VIDAUD_LOG__FORMAT", "json")
            .with("VIDAUD_LOG__LEVEL", "debug"),
    )
    .await;
    let email = format!("{}@example.com", common::unique("secret"));
    let password = "a-very-secret-passphrase-42";
    let r = node
        .http
        .post(node.url("/register"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let token = node.login(&email, password).await.expect("login");
    assert_eq!(node.login(&email, "wrong-passphrase-99").await, Err(401));
    let ids = node.upload_all(&token, &[clip("tone")]).await;
    let job = node.wait_final(&token, &ids[0]).await;
    let fid = job["mp3_fid"].as_str().expect("done");
    assert_eq!(node.download(&token, fid).await.status(), 200);
    let forged = common::forge_token("not-the-secret-not-the-secret-000", &email, 60, true);
    let r = node
        .http
        .get(node.url("/jobs"))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("forged");
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = std::fs::read_to_string(&node.log).expect("log");
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"))
    };
    let signature = |t: &str| t.rsplit('.').next().unwrap_or("").to_owned();
    for (what, secret) in [
        ("password", password.to_owned()),
        ("wrong password", "wrong-passphrase-99".to_owned()),
        ("token", token.clone()),
        ("token signature", signature(&token)),
        ("forged token", signature(&forged)),
        ("Basic credentials", basic),
        ("JWT secret", common::JWT_SECRET.to_owned()),
    ] {
        assert!(!log.contains(&secret), "the log holds the {what}");
    }
    let mut requests = 0;
    let mut job_lines = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let entry: serde_json::Value =
            serde_json::from_str(line).expect("one JSON object per line");
        let spans = entry["spans"].as_array().cloned().unwrap_or_default();
        if spans
            .iter()
            .any(|s| s["name"] == "request" && s["path"].is_string())
        {
            requests += 1;
        }
        if spans
            .iter()
            .any(|s| s["name"] == "job" && s["job_id"] == ids[0].as_str() && s["node"].is_string())
        {
            job_lines += 1;
        }
    }
    assert!(requests > 0, "no line inside a request span");
    assert!(job_lines >= 2, "the job's lines carry its job_id and node");
}
