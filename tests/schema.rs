//! The OpenAPI description against the running daemon: Schemathesis (from
//! PyPI; `scripts/test` installs it) generates requests for every operation
//! from `/openapi.json`, a bounded number per operation, and checks that no
//! answer is a 5xx, that every status, content type, header and body
//! conforms to the schema, that invalid data is refused, that endpoints
//! needing auth refuse without it, and that deleted resources are gone.
//! Also: `/docs` is served from the binary and names no other host.

mod common;

use std::process::Command;

use common::{Backend, Node, NodeOptions};

/// Examples per operation and phase: enough to cover every operation's
/// parameters, bounded so the suite stays quick.
const EXAMPLES: &str = "25";

both_backends!(
    schemathesis_finds_no_server_error_and_no_schema_violation,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        // A done job, so that ids and downloads have something real behind them.
        let ids = node
            .upload_all(&token, &[common::media::clip("tone")])
            .await;
        node.wait_final(&token, &ids[0]).await;

        let report = tempfile::tempdir().expect("tempdir");
        let json = report.path().join("report.json");
        let output = Command::new("schemathesis")
            .args(["run", &node.url("/openapi.json")])
            // Every check but positive_data_acceptance: some rules depend on
            // values the schema cannot relate (an MP3 bitrate must be one of
            // LAME's, an Opus one in a range), so schema-valid can still be 422.
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            // `/events` streams for as long as the client stays;
            // `/me/logout-all` revokes the very token the run uses.
            .args(["--exclude-path", "/events"])
            .args(["--exclude-path", "/me/logout-all"])
            .args(["--max-examples", EXAMPLES, "--seed", "1", "--workers", "2"])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--generation-database", "none", "--no-color"])
            .args(["--suppress-health-check", "all"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--report", "json", "--report-json-path"])
            .arg(&json)
            .output()
            .expect("schemathesis (pip install schemathesis; scripts/test does)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        println!("{stdout}");
        assert!(
            output.status.success(),
            "schemathesis found problems:\n{stdout}\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            node.log_tail()
        );
        // The node came through it serving (the job itself may be deleted:
        // the stateful phase follows DELETE links too).
        let jobs = node
            .http
            .get(node.url("/jobs"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("jobs");
        assert_eq!(jobs.status(), 200);
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn docs_are_served_from_the_binary() {
    let node = Node::start(NodeOptions::default()).await;
    let spec: serde_json::Value = node
        .http
        .get(node.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    for path in [
        "/upload",
        "/jobs",
        "/jobs/{id}/events",
        "/download",
        "/login",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} undocumented");
    }
    let page = node
        .http
        .get(node.url("/docs/"))
        .send()
        .await
        .expect("docs");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"] {
        let r = node.http.get(node.url(asset)).send().await.expect("asset");
        assert_eq!(r.status(), 200, "{asset}");
        let text = r.text().await.expect("text");
        if asset.ends_with("initializer.js") {
            assert!(text.contains("/openapi.json"), "{text}");
            assert!(!text.contains("https://"), "no other host: {text}");
        }
    }
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "the page loads nothing from another host"
    );
}
