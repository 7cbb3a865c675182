//! Deleting an account: `DELETE /me` (the password asked for) and an
//! administrator's `DELETE /users/{email}` leave nothing of it — no job
//! record that names it, no file or chunk, no resumable upload, no webhook
//! or pending delivery, no queue message — revoke its tokens on every node,
//! mail a confirmation, and a new account on the same e-mail sees nothing
//! of the old one and is not reachable with the old tokens. `vidaud user
//! delete` does the same through the running node.

mod common;

use std::time::{Duration, Instant};

use common::media;
use common::{Backend, Files, Names, Node, NodeOptions, mails_to};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

fn options(backend: Backend) -> NodeOptions {
    NodeOptions::default()
        .on(backend)
        .with("VIDAUD_WEBHOOKS__ALLOWED_NETWORKS", r#"["127.0.0.0/8"]"#)
}

async fn call(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = node.http.request(method, node.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect(path);
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Gives `email` one of everything: a done job, a job with a callback,
/// an unfinished resumable upload, a webhook endpoint.
async fn fill_account(node: &Node, token: &str) {
    let clip = media::clip("mp4");
    let (status, done) = node.upload(token, &clip).await;
    assert_eq!(status, 202, "{done}");
    let done_id = done["job_id"].as_str().expect("job id").to_owned();
    let (status, called) = node
        .upload_with(
            token,
            &clip,
            "callback_url=http://127.0.0.1:9/hook",
            &[],
            &[],
        )
        .await;
    assert_eq!(status, 202, "{called}");
    let called_id = called["job_id"].as_str().expect("job id").to_owned();
    node.wait_all_final(token, &[done_id, called_id]).await;
    let (status, endpoint) = call(
        node,
        reqwest::Method::POST,
        "/webhooks",
        token,
        Some(json!({"url": "http://127.0.0.1:9/endpoint"})),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let created = node
        .http
        .post(node.url("/uploads"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", 1000)
        .header("Upload-Metadata", "filename Y2xpcC5tcDQ=")
        .send()
        .await
        .expect("tus create");
    assert_eq!(created.status(), 201);
    let location = created.headers()["Location"]
        .to_str()
        .expect("location")
        .to_owned();
    let patched = node
        .http
        .patch(node.url(&location))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", 0)
        .body(vec![1u8; 400])
        .send()
        .await
        .expect("tus patch");
    assert_eq!(patched.status(), 204);
    assert_eq!(node.upload_records().await, 1);
}

/// Polls until nothing of `email` (account `owner`) is left in the
/// node's stores.
async fn assert_erased(node: &Node, email: &str, owner: &str) {
    let started = Instant::now();
    loop {
        let named = node
            .job_records()
            .await
            .into_iter()
            .filter(|j| j["owner"] == email || j["owner"] == owner)
            .count();
        let uploads = node.upload_records().await;
        let (videos, video_pieces) = node.file_ids(Files::Videos).await;
        let (audio, audio_pieces) = node.file_ids(Files::Audio).await;
        let (waveforms, waveform_pieces) = node.file_ids(Files::Waveforms).await;
        let webhooks = webhook_rows(node).await;
        let queued = node.queue_depth(&node.names.video_queue).await;
        let left = (
            named,
            uploads,
            videos.len() + video_pieces.len(),
            audio.len() + audio_pieces.len() + waveforms.len() + waveform_pieces.len(),
            webhooks,
            queued,
        );
        if left == (0, 0, 0, 0, 0, 0) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "left of {email} (jobs naming it, uploads, video files, audio files, \
             webhook rows, queued messages): {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Webhook endpoints and deliveries kept, whichever backend.
async fn webhook_rows(node: &Node) -> u64 {
    match node.options.backend {
        Backend::Cluster => {
            node.count(&node.names.jobs_db, "webhook_endpoints").await
                + node.count(&node.names.jobs_db, "webhook_deliveries").await
        }
        Backend::Embedded => node.sql_scalar(
            "SELECT (SELECT COUNT(*) FROM webhook_endpoints) \
             + (SELECT COUNT(*) FROM webhook_deliveries)",
        ) as u64,
    }
}

both_backends!(
    a_deleted_account_leaves_nothing_and_its_email_starts_afresh,
    |backend: Backend| async move {
        let node = Node::start(options(backend)).await;
        let (email, token) = node.new_user().await;
        let owner = node.user_id(&token).await;
        let other = node.login(&email, PASSWORD).await.expect("login");
        fill_account(&node, &token).await;
        // One more, still queued or converting when the account goes.
        let (status, pending) = node.upload(&token, &media::clip("mp4")).await;
        assert_eq!(status, 202, "{pending}");

        // The password is asked for.
        let delete = |password: &'static str| {
            call(
                &node,
                reqwest::Method::DELETE,
                "/me",
                &token,
                Some(json!({ "password": password })),
            )
        };
        let (status, wrong) = delete("not the password").await;
        assert_eq!(status, 401, "{wrong}");
        let (status, body) = delete(PASSWORD).await;
        assert_eq!(status, 204, "{body}");

        // Every token is gone, so is the login; a confirmation is mailed.
        for t in [&token, &other] {
            let (status, body) = call(&node, reqwest::Method::GET, "/me", t, None).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["type"], "urn:vidaud:problem:token-revoked", "{body}");
        }
        assert_eq!(node.login(&email, PASSWORD).await, Err(401));
        let mails = mails_to(&email, 3).await;
        assert!(
            mails
                .iter()
                .any(|m| m.contains("Subject: Your vidaud account was deleted")),
            "no confirmation among {} mails",
            mails.len()
        );
        assert_erased(&node, &email, &owner).await;

        // The same e-mail again: a new account, empty, and the old tokens
        // do not reach it.
        node.register(&email, PASSWORD).await;
        let fresh = node.login(&email, PASSWORD).await.expect("login");
        let (status, me) = call(&node, reqwest::Method::GET, "/me", &fresh, None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["usage"], json!({"stored_bytes": 0, "active_jobs": 0}));
        let (_, jobs) = call(&node, reqwest::Method::GET, "/jobs", &fresh, None).await;
        assert_eq!(jobs["jobs"], json!([]), "{jobs}");
        let (_, hooks) = call(&node, reqwest::Method::GET, "/webhooks", &fresh, None).await;
        assert_eq!(hooks, json!([]));
        let (status, _) = call(&node, reqwest::Method::GET, "/me", &token, None).await;
        assert_eq!(status, 401, "an old token reaches the new account");
    }
);

both_backends!(
    an_administrator_deletes_an_account,
    |backend: Backend| async move {
        let node = Node::start(options(backend)).await;
        let (email, token) = node.new_user().await;
        let owner = node.user_id(&token).await;
        fill_account(&node, &token).await;
        let admin_email = format!("admin-{email}");
        assert_eq!(node.add_user(&admin_email, PASSWORD, true).0, 0);
        let admin = node.login(&admin_email, PASSWORD).await.expect("login");

        let path = format!("/users/{email}");
        let (status, _) = call(&node, reqwest::Method::DELETE, &path, &token, None).await;
        assert_eq!(status, 403, "not an administrator");
        let (status, body) = call(&node, reqwest::Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, 204, "{body}");
        let (status, _) = call(&node, reqwest::Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, 404, "deleted already");
        let (status, _) = call(&node, reqwest::Method::GET, "/me", &token, None).await;
        assert_eq!(status, 401);
        assert_erased(&node, &email, &owner).await;
        let (_, users) = call(&node, reqwest::Method::GET, "/users", &admin, None).await;
        let listed: Vec<&str> = users["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["email"].as_str())
            .collect();
        // (The cluster's MySQL is shared by every test: others are listed too.)
        assert!(listed.contains(&admin_email.as_str()), "{users}");
        assert!(!listed.contains(&email.as_str()), "{users}");
    }
);

/// Two nodes share one cluster (the embedded backend is one node per data
/// directory): a deletion on one is refused on the other within the
/// revocation refresh.
#[tokio::test]
async fn a_deletion_on_one_node_revokes_the_tokens_on_another() {
    let names = Names::fresh();
    let first = Node::start_named(names.clone(), options(Backend::Cluster), true).await;
    let second = Node::start_named(names, options(Backend::Cluster), false).await;
    let (_, token) = first.new_user().await;
    let (status, _) = call(&second, reqwest::Method::GET, "/me", &token, None).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &first,
        reqwest::Method::DELETE,
        "/me",
        &token,
        Some(json!({ "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let took = second.until_refused(&token, Duration::from_secs(30)).await;
    eprintln!("deletion refused on the second node after {took:?}");
}

both_backends!(
    the_cli_deletes_an_account_and_the_running_node_erases_it,
    |backend: Backend| async move {
        let node = Node::start(options(backend)).await;
        let (email, token) = node.new_user().await;
        let owner = node.user_id(&token).await;
        fill_account(&node, &token).await;
        let (code, out, err) = node.user_cli(&["delete", &email], None);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("deleted"), "{out}");
        let (code, _, err) = node.user_cli(&["delete", &email], None);
        assert_eq!(code, 4, "deleted already: {err}");
        assert_erased(&node, &email, &owner).await;
        let (status, _) = call(&node, reqwest::Method::GET, "/me", &token, None).await;
        assert_eq!(status, 401);
        let (_, listed, _) = node.user_cli(&["list"], None);
        assert!(!listed.contains(&email), "{listed}");
    }
);
