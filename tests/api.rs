//! The HTTP API's contract: authentication, ownership, limits and errors.

mod common;

use common::media;
use common::{Backend, Files, JWT_SECRET, Node, NodeOptions};

fn forge(secret: &str, username: &str, exp_offset: i64) -> String {
    common::forge_token(secret, username, exp_offset, true)
}

both_backends!(
    tokens_and_passwords_are_checked,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token) = node.new_user().await;

        let validate = |auth: Option<String>| {
            let mut request = node.http.post(node.url("/validate"));
            if let Some(value) = auth {
                request = request.header("Authorization", value);
            }
            request.send()
        };
        let ok = validate(Some(format!("Bearer {token}")))
            .await
            .expect("validate");
        assert_eq!(ok.status(), 200);
        let claims: serde_json::Value = ok.json().await.expect("claims");
        assert_eq!(claims["username"], email.as_str());
        assert_eq!(claims["admin"], false, "ordinary users are not admins");
        assert!(claims["exp"].as_u64() > claims["iat"].as_u64());

        let expired = forge(JWT_SECRET, &email, -3600);
        let wrong_key = forge("another-secret-that-is-long-enough-000000", &email, 3600);
        for (what, auth) in [
            ("missing", None),
            ("garbage", Some("Bearer not-a-token".to_owned())),
            ("expired", Some(format!("Bearer {expired}"))),
            ("wrong signature", Some(format!("Bearer {wrong_key}"))),
            ("basic instead of bearer", Some("Basic dTpw".to_owned())),
        ] {
            let r = validate(auth).await.expect("validate");
            assert_eq!(r.status(), 401, "{what}");
            let body: serde_json::Value = r.json().await.expect("json error");
            assert!(body["error"].is_string(), "{what}: {body}");
        }
        // Uploads and downloads check tokens the same way.
        let r = node
            .http
            .post(node.url("/upload"))
            .bearer_auth(&expired)
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status(), 401);

        assert_eq!(node.login(&email, "wrong password").await, Err(401));
        assert_eq!(
            node.login("nobody@example.com", "correct horse").await,
            Err(401)
        );
        let r = node
            .http
            .post(node.url("/login"))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 401, "login without credentials");

        let register =
            |body: serde_json::Value| node.http.post(node.url("/register")).json(&body).send();
        let dup = register(serde_json::json!({ "email": email, "password": "another one" }))
            .await
            .expect("register");
        assert_eq!(dup.status(), 409);
        let bad =
            register(serde_json::json!({ "email": "not-an-address", "password": "long enough" }))
                .await
                .expect("register");
        assert_eq!(bad.status(), 422);
        let short = register(serde_json::json!({ "email": "x@example.com", "password": "short" }))
            .await
            .expect("register");
        assert_eq!(short.status(), 422);
        assert!(
            short
                .text()
                .await
                .unwrap_or_default()
                .contains("at least 8")
        );
    }
);

both_backends!(
    users_see_only_their_own_jobs_and_files,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, alice) = node.new_user().await;
        let (_, bob) = node.new_user().await;

        let (status, body) = node.upload(&alice, &media::clip("mp4")).await;
        assert_eq!(status, 202, "{body}");
        let job_id = body["job_id"].as_str().expect("job_id");
        let job = node.wait_final(&alice, job_id).await;
        let fid = job["mp3_fid"].as_str().expect("done");

        assert_eq!(node.job(&bob, job_id).await.0, 404);
        assert_eq!(node.download(&bob, fid).await.status(), 404);
        // Ids of the wrong kind or shape are just as unknown.
        assert_eq!(node.download(&alice, job_id).await.status(), 404);
        assert_eq!(node.download(&alice, "not-an-id").await.status(), 404);
        assert_eq!(node.job(&alice, "000000000000000000000000").await.0, 404);
        assert_eq!(node.download(&alice, fid).await.status(), 200);
    }
);

both_backends!(
    oversized_uploads_get_413_and_leave_nothing_stored,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions {
            max_upload_bytes: 1_000_000,
            ..NodeOptions::default().on(backend)
        })
        .await;
        let (_, token) = node.new_user().await;
        let payload = vec![7u8; 3_000_000];

        // Announced size: refused before the body is read. Spoken over a raw
        // socket: an HTTP client pushing the rest of a body the server already
        // refused may hit a broken pipe before it reads the answer.
        let address = node.base.trim_start_matches("http://").to_owned();
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n\
         --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\r\n",
            payload.len() + 200
        );
        let response = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(&address).expect("connect");
            stream.write_all(head.as_bytes()).expect("send head");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            response
        })
        .await
        .expect("raw request");
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert!(response.contains("limit"), "{response}");

        // Unannounced size (chunked): refused while streaming, partial file removed.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = payload
            .chunks(64 * 1024)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(
            futures::stream::iter(chunks),
        ))
        .file_name("big.mp4");
        let form = reqwest::multipart::Form::new().part("file", part);
        match node
            .http
            .post(node.url("/upload"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
        {
            Ok(r) => assert_eq!(r.status(), 413),
            // The server may close the connection before the client finished
            // sending; what matters is below: nothing was kept.
            Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        node.assert_no_files(Files::Videos, "refused upload").await;
        assert_eq!(node.count_jobs().await, 0, "no job for a refused upload");
    }
);

/// Sends a whole upload of `body_bytes` to `path` over a raw connection
/// before reading anything, as simple clients do, then reads the answer:
/// it, or the error that stood in its way.
fn send_all_then_read(address: String, path: &str, token: &str, body_bytes: usize) -> String {
    use std::io::{Read, Write};
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {body_bytes}\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream.write_all(head.as_bytes()).expect("send head");
    let chunk = vec![7u8; 64 * 1024];
    let mut left = body_bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        if let Err(e) = stream.write_all(&chunk[..n]) {
            return format!("sending the body failed with {left} bytes left: {e}");
        }
        left -= n;
    }
    let mut response = String::new();
    match stream.read_to_string(&mut response) {
        Ok(_) => response,
        Err(e) if !response.is_empty() => format!("{response}\n(then {e})"),
        Err(e) => format!("reading the answer failed: {e}"),
    }
}

both_backends!(
    a_refused_upload_is_answered_to_a_client_that_sends_it_whole_first,
    |backend: Backend| async move {
        // Refused before a byte of its body is read; the body (24 MiB,
        // more than the sockets' buffers hold) is read on and thrown away
        // after the answer, so the client finishes sending and reads the
        // reason instead of "connection reset".
        let node = Node::start(NodeOptions {
            max_upload_bytes: 8_000_000,
            ..NodeOptions::default().on(backend)
        })
        .await;
        let (_, token) = node.new_user().await;
        let address = node.base.trim_start_matches("http://").to_owned();
        for (path, token, status, says) in [
            ("/upload?format=wav", token.clone(), "422", "format"),
            ("/upload", "not-a-token".to_owned(), "401", "token"),
            ("/upload", token.clone(), "413", "limit"),
        ] {
            let address = address.clone();
            let response = tokio::task::spawn_blocking(move || {
                send_all_then_read(address, path, &token, 24 << 20)
            })
            .await
            .expect("raw request");
            assert!(
                response.starts_with(&format!("HTTP/1.1 {status}")),
                "{path}: {response}"
            );
            assert!(response.contains(says), "{path}: {response}");
        }
        node.assert_no_files(Files::Videos, "refused uploads").await;
    }
);

both_backends!(
    malformed_uploads_get_clear_errors,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (_, token) = node.new_user().await;
        let post = || node.http.post(node.url("/upload")).bearer_auth(&token);

        let r = post()
            .body("just bytes")
            .header("content-type", "video/mp4")
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status(), 415);

        let form = reqwest::multipart::Form::new().text("format", "mp3");
        let r = post().multipart(form).send().await.expect("upload");
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap_or_default().contains("`file`"));

        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(Vec::new()).file_name("empty.mp4"),
        );
        let r = post().multipart(form).send().await.expect("upload");
        assert_eq!(r.status(), 422, "a 0-byte upload is refused");
        assert!(r.text().await.unwrap_or_default().contains("empty"));

        let r = post()
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body(
                "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc",
            )
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status(), 400, "truncated multipart");

        node.assert_no_files(Files::Videos, "malformed uploads")
            .await;
    }
);

both_backends!(
    health_and_reference_metrics,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let r = node
            .http
            .get(node.url("/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(r.status(), 200);
        let (_, token) = node.new_user().await;
        assert_eq!(node.job(&token, "000000000000000000000000").await.0, 404);

        let text = node.metrics_text().await;
        for needle in [
            r#"http_requests_total{method="GET",path="/health",status="200"} "#,
            r#"http_requests_total{method="GET",path="/jobs/{id}",status="404"} 1"#,
            "# TYPE http_request_duration_seconds histogram",
            "# TYPE converter_job_duration_seconds histogram",
            r#"converter_jobs_total{result="success"} 0"#,
            r#"converter_jobs_total{result="error"} 0"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
);

both_backends!(
    downloads_resume_by_range_and_revalidate_by_etag,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        // The node made the indexes its queries need before any file exists.
        if node.options.backend == Backend::Cluster {
            let mongo = node.mongo().await;
            for (db, collection, index) in [
                (&node.names.mp3s_db, "fs.chunks", "files_id_1_n_1"),
                (&node.names.videos_db, "fs.files", "metadata.owner_1"),
                (&node.names.jobs_db, "jobs", "owner_1__id_-1"),
            ] {
                let names = mongo
                    .database(db)
                    .collection::<mongodb::bson::Document>(collection)
                    .list_index_names()
                    .await
                    .expect("indexes");
                assert!(names.iter().any(|n| n == index), "{collection}: {names:?}");
            }
        }
        let (_, token) = node.new_user().await;
        let (status, body) = node.upload(&token, &media::clip("long")).await;
        assert_eq!(status, 202, "{body}");
        let job = node
            .wait_final(&token, body["job_id"].as_str().expect("job_id"))
            .await;
        let fid = job["mp3_fid"].as_str().expect("done");
        let whole = node.download(&token, fid).await;
        assert_eq!(whole.headers()["accept-ranges"], "bytes");
        let etag = whole.headers()["etag"].clone();
        let whole = whole.bytes().await.expect("body");
        let len = whole.len();
        assert!(len > 1_000_000, "several GridFS chunks: {len}");

        let url = node.url(&format!("/download?fid={fid}"));
        let get = |range: String| {
            node.http
                .get(&url)
                .bearer_auth(&token)
                .header("range", range)
                .send()
        };
        // Three resumptions that cross chunk boundaries reassemble the file.
        let cuts = [0, 300_000, len / 2 + 7, len];
        let mut joined = Vec::new();
        for pair in cuts.windows(2) {
            let r = get(format!("bytes={}-{}", pair[0], pair[1] - 1))
                .await
                .expect("range");
            assert_eq!(r.status(), 206);
            assert_eq!(
                r.headers()["content-range"],
                format!("bytes {}-{}/{len}", pair[0], pair[1] - 1).as_str()
            );
            joined.extend_from_slice(&r.bytes().await.expect("part"));
        }
        assert!(joined == whole, "byte-exact");
        let tail = get("bytes=-10".into()).await.expect("suffix");
        assert_eq!(tail.bytes().await.expect("tail"), whole[len - 10..]);
        let past = get(format!("bytes={len}-")).await.expect("past the end");
        assert_eq!(past.status(), 416);
        assert_eq!(
            past.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );

        let head = node
            .http
            .head(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("head");
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], len.to_string().as_str());
        let cached = node
            .http
            .get(&url)
            .bearer_auth(&token)
            .header("if-none-match", etag)
            .send()
            .await
            .expect("conditional");
        assert_eq!(cached.status(), 304);

        // The node keeps what it read of the file's document; the file deleted
        // behind its back (as another node's DELETE would) is a clean 404 all
        // the same, for a whole download and a range, not a cut-off body.
        node.remove_file_behind_its_back(Files::Audio, fid).await;
        assert_eq!(node.download(&token, fid).await.status(), 404);
        let gone = get("bytes=300000-".into())
            .await
            .expect("range of a gone file");
        assert_eq!(gone.status(), 404);
        assert_eq!(gone.headers()["content-type"], "application/problem+json");
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn logs_not_written_to_a_terminal_carry_no_colour_codes() {
    // journald (and any log file) shows escape codes raw.
    let node = Node::start(NodeOptions::default().on(Backend::Embedded)).await;
    let _ = node.new_user().await;
    let log = std::fs::read_to_string(&node.log).expect("node log");
    assert!(log.contains("HTTP front listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log}");
}
