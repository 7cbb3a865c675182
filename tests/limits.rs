//! Input limits at the HTTP edge: slow or stalled bodies and heads are cut
//! off, oversized heads get 431, a form has exactly one file, and hostile
//! file names are tamed everywhere the name is used (job record, GridFS,
//! Content-Disposition, e-mail subject), format characters (bidirectional
//! overrides, zero-width joiners) included. Every other body has a total
//! deadline and a size cap, and connections per client address are capped.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::media::clip;
use common::{Backend, Files, Node, NodeOptions};
use serde_json::Value;

fn limited() -> NodeOptions {
    NodeOptions::default()
        .with("VIDAUD_HTTP__BODY_IDLE_SECS", 2)
        .with("VIDAUD_HTTP__MIN_UPLOAD_BYTES_PER_SEC", 10_000)
        .with("VIDAUD_HTTP__HEADER_TIMEOUT_SECS", 2)
        .with("VIDAUD_HTTP__MAX_HEADER_BYTES", 8192)
}

fn address(node: &Node) -> String {
    node.base.trim_start_matches("http://").to_owned()
}

fn upload_head(node: &Node, token: &str, length: usize) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {length}\r\n\r\n\
         --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n\r\n",
        address(node)
    )
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_answer(stream: &mut TcpStream, limit: Duration) -> String {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

both_backends!(slow_clients_are_cut_off, |backend: Backend| async move {
    let node = Node::start(limited().on(backend)).await;
    let (_, token) = node.new_user().await;

    // A body that stops arriving: 408 after the idle limit.
    let started = Instant::now();
    let stalled = {
        let (head, addr) = (upload_head(&node, &token, 1_000_000), address(&node));
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(head.as_bytes()).expect("head");
            stream.write_all(b"some bytes").expect("body");
            read_answer(&mut stream, Duration::from_secs(20))
        })
    };
    let answer = stalled.await.expect("stalled client");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // A trickle: a byte every 100 ms never goes idle, but is far too slow.
    let trickle = {
        let (head, addr) = (upload_head(&node, &token, 1_000_000), address(&node));
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(head.as_bytes()).expect("head");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if stream.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                stream
                    .set_read_timeout(Some(Duration::from_millis(1)))
                    .expect("timeout");
                let mut peek = [0u8; 1];
                if matches!(stream.peek(&mut peek), Ok(1)) {
                    break;
                }
            }
            read_answer(&mut stream, Duration::from_secs(5))
        })
    };
    let answer = trickle.await.expect("trickling client");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("bytes/s"), "{answer}");

    // A head that never ends: the connection is closed.
    let addr = address(&node);
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .expect("partial head");
        let started = Instant::now();
        let answer = read_answer(&mut stream, Duration::from_secs(20));
        (answer, started.elapsed())
    })
    .await
    .expect("slow head");
    assert!(
        answer.1 < Duration::from_secs(10),
        "held for {:?}",
        answer.1
    );
    assert!(!answer.0.contains("200 OK"), "{}", answer.0);

    // Oversized heads: 431.
    let r = node
        .http
        .get(node.url("/health"))
        .header("X-Big", "y".repeat(20_000))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 431);

    // And the node still serves everyone else.
    let (status, body) = node.upload(&token, &clip("mp4")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        node.count_files(Files::Videos).await,
        1,
        "nothing of the cut-off uploads is kept"
    );
});

both_backends!(
    one_file_per_form_and_hostile_names_are_tamed,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token) = node.new_user().await;
        let bytes = std::fs::read(clip("tone")).expect("clip");

        let two = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name("a.mp4"),
            )
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name("b.mp4"),
            );
        let r = node.upload_form(&token, two).await;
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.expect("problem");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("exactly one"))
        );
        node.assert_no_files(Files::Videos, "two files").await;

        // CR/LF cannot be part of a multipart header: the form is malformed.
        let crlf = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("evil\r\nBcc: victim@example.com.wav"),
        );
        let r = node.upload_form(&token, crlf).await;
        assert_eq!(r.status(), 400, "CR/LF in a part header");
        node.assert_no_files(Files::Videos, "a CR/LF name").await;

        let long = format!("{}.wav", "ü".repeat(400));
        for (raw, stored) in [
            ("../../etc/passwd", "passwd"),
            ("tab\there.wav", "tabhere.wav"),
            ("..\\..\\windows\\clip.wav", "clip.wav"),
            ("日本語 🎵.wav", "日本語 🎵.wav"),
            // Format characters would make it display as another name
            // ("…exe.mpg"): they go, the visible characters stay.
            ("nBcc: a@b\u{202e}gpm.exe", "nBcc: a@bgpm.exe"),
            ("a\u{200d}b\u{200b}c\u{2066}d\u{2069}.wav", "abcd.wav"),
            (long.as_str(), ""),
        ] {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(raw.to_owned()),
            );
            let r = node.upload_form(&token, form).await;
            assert_eq!(r.status(), 202, "{raw:?}");
            let accepted: Value = r.json().await.expect("json");
            let id = accepted["job_id"].as_str().expect("job_id");
            let job = node.wait_final(&token, id).await;
            assert_eq!(job["state"], "done", "{raw:?}: {job}");
            let name = job["filename"].as_str().expect("filename");
            if stored.is_empty() {
                assert_eq!(name.chars().count(), 200, "long names are cut");
            } else {
                assert_eq!(name, stored);
            }
            assert!(!name.contains(['/', '\\', '\r', '\n']), "{name:?}");
            let download = node
                .download(&token, job["mp3_fid"].as_str().expect("fid"))
                .await;
            let disposition = download.headers()["content-disposition"]
                .to_str()
                .expect("ASCII header")
                .to_owned();
            assert!(
                disposition.starts_with("attachment; filename=\""),
                "{disposition}"
            );
            assert!(!disposition.contains(['\r', '\n']), "{disposition}");
            for format_char in ["%E2%80%AE", "%E2%80%8D", "%E2%80%8B", "%E2%81%A6"] {
                assert!(!disposition.contains(format_char), "{disposition}");
            }
        }
        // Each mail names the file in its one Subject header, and adds none.
        for mail in common::mails_to(&email, 7).await {
            let headers = mail.split("\r\n\r\n").next().unwrap_or(&mail);
            let subject = decoded_words(headers);
            assert!(
                !subject.contains(['\u{202e}', '\u{200d}', '\u{200b}', '\u{2066}']),
                "{subject:?}"
            );
            let names: Vec<String> = headers
                .lines()
                .filter(|l| !l.starts_with([' ', '\t']))
                .filter_map(|l| l.split(':').next())
                .map(str::to_ascii_lowercase)
                .collect();
            assert_eq!(
                names.iter().filter(|n| *n == "subject").count(),
                1,
                "{headers}"
            );
            assert!(!names.iter().any(|n| n == "bcc"), "{headers}");
        }
    }
);

/// `text` with its RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`)
/// decoded, as a mail reader shows a header.
fn decoded_words(text: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let Some(end) = parts.get(2).and_then(|p| p.find("?=")) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let data = &parts[2][..end];
        let bytes = if parts[1].eq_ignore_ascii_case("b") {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default()
        } else {
            let mut bytes = Vec::new();
            let mut chars = data.bytes();
            while let Some(c) = chars.next() {
                match c {
                    b'_' => bytes.push(b' '),
                    b'=' => {
                        let hex: Vec<u8> = chars.by_ref().take(2).collect();
                        let hex = String::from_utf8_lossy(&hex).into_owned();
                        bytes.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?'));
                    }
                    c => bytes.push(c),
                }
            }
            bytes
        };
        out.push_str(&String::from_utf8_lossy(&bytes));
        let consumed = 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
        rest = &rest[start + consumed..];
    }
    out.push_str(rest);
    out
}

both_backends!(
    slow_small_bodies_are_cut_off_while_others_are_served,
    |backend: Backend| async move {
        // 200 clients trickle a byte a second into bodies of 100 bytes on
        // /register, /login and /jobs/{id}/retry: each is answered 408 once
        // `http.request_body_secs` passes, while someone else registers,
        // logs in and uploads as usual.
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_HTTP__REQUEST_BODY_SECS", 3),
        )
        .await;
        let addr = address(&node);
        let paths = [
            "/register",
            "/login",
            "/jobs/0123456789abcdef01234567/retry",
        ];
        let mut slow = Vec::new();
        for i in 0..200 {
            let (addr, path) = (addr.clone(), paths[i % paths.len()]);
            slow.push(tokio::task::spawn_blocking(move || {
                let mut stream = TcpStream::connect(&addr).expect("connect");
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                     Authorization: Basic eDp5\r\nContent-Length: 100\r\n\r\n{{"
                );
                stream.write_all(head.as_bytes()).expect("head");
                let started = Instant::now();
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .expect("timeout");
                let mut answer = Vec::new();
                let mut buf = [0u8; 4096];
                while started.elapsed() < Duration::from_secs(90) {
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(_) => {
                            // Nothing yet: another byte, as a trickle does.
                            if stream.write_all(b" ").is_err() {
                                break;
                            }
                        }
                    }
                }
                (
                    String::from_utf8_lossy(&answer).into_owned(),
                    started.elapsed(),
                )
            }));
        }
        // Meanwhile, a client that sends its requests whole is served.
        let (_, token) = node.new_user().await;
        let (status, body) = node.upload(&token, &clip("mp4")).await;
        assert_eq!(status, 202, "{body}");
        let mut longest = Duration::ZERO;
        for client in slow {
            let (answer, held) = client.await.expect("slow client");
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
            assert!(answer.contains("did not arrive within"), "{answer}");
            longest = longest.max(held);
        }
        // Far less than the 100 s the bodies would take to arrive.
        assert!(longest < Duration::from_secs(60), "held for {longest:?}");
        println!("200 slow bodies, request_body_secs = 3: the last cut off after {longest:?}");

        // A small body over max_request_body_bytes: 413 before it is read.
        let r = node
            .http
            .post(node.url("/register"))
            .header("content-type", "application/json")
            .body(vec![b' '; 100_000])
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 413);
        let problem: Value = r.json().await.expect("problem");
        assert_eq!(
            problem["type"], "urn:vidaud:problem:body-too-large",
            "{problem}"
        );
    }
);

both_backends!(
    connections_per_client_address_are_capped,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_HTTP__MAX_CONNECTIONS_PER_CLIENT", 5),
        )
        .await;
        let addr = address(&node);
        let connect_from = |local: &str| {
            let socket = std::net::SocketAddr::new(local.parse().expect("ip"), 0);
            let socket2 = tokio::net::TcpSocket::new_v4().expect("socket");
            socket2.bind(socket).expect("bind");
            let addr = addr.parse::<std::net::SocketAddr>().expect("node address");
            async move { socket2.connect(addr).await.expect("connect") }
        };
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(connect_from("127.0.0.2").await);
        }
        // The sixth from that address is answered 429 and closed.
        let mut sixth = connect_from("127.0.0.2").await;
        let mut answer = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncReadExt::read_to_string(&mut sixth, &mut answer),
        )
        .await
        .expect("an answer")
        .expect("read");
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            answer.contains("urn:vidaud:problem:too-many-connections"),
            "{answer}"
        );
        // Another address is not affected, nor is the node's own traffic.
        let other = common::client_from("127.0.0.3");
        let r = other.get(node.url("/health")).send().await.expect("health");
        assert_eq!(r.status(), 200);
        // One closed: room for one more.
        held.pop();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = common::client_from("127.0.0.2");
        loop {
            match client.get(node.url("/health")).send().await {
                Ok(r) if r.status() == 200 => break,
                _ => {
                    assert!(Instant::now() < deadline, "no room after a close");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
);
