//! Behind a real nginx and a real Caddy (Debian's, started here with
//! tests/proxy/nginx.conf and tests/proxy/Caddyfile, the README's
//! examples): with `http.trusted_proxies` naming the proxy, per-IP login
//! limits apply per real client (two clients behind the proxy do not share
//! an allowance), a forged `X-Forwarded-For` changes nothing, and uploads
//! and event streams pass through as they happen. Clients are told apart
//! by the loopback address they connect from (127.0.0.2, .3, ...).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Node, NodeOptions, client_from, free_port, media};
use futures::StreamExt;

/// Which reverse proxy.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Nginx,
    Caddy,
}

const KINDS: [Kind; 2] = [Kind::Nginx, Kind::Caddy];

/// A reverse proxy in front of a node, on a port of its own.
struct Proxy {
    kind: Kind,
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Proxy {
    fn start(kind: Kind, upstream: u16) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let file = match kind {
            Kind::Nginx => "nginx.conf",
            Kind::Caddy => "Caddyfile",
        };
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/proxy")
                .join(file),
        )
        .expect("the proxy's configuration");
        let conf = template
            .replace("{{DIR}}", &dir.path().display().to_string())
            .replace("{{PORT}}", &port.to_string())
            .replace("{{UPSTREAM}}", &upstream.to_string());
        let path = dir.path().join(file);
        std::fs::write(&path, conf).expect("write the proxy's configuration");
        let log = std::fs::File::create(dir.path().join("error.log")).expect("log");
        let mut command = match kind {
            Kind::Nginx => {
                let mut nginx = Command::new("/usr/sbin/nginx");
                nginx.arg("-c").arg(&path).arg("-p").arg(dir.path());
                nginx
            }
            Kind::Caddy => {
                let mut caddy = Command::new("/usr/bin/caddy");
                caddy
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&path)
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path());
                caddy
            }
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the proxy (Debian's package nginx or caddy)");
        let proxy = Proxy {
            kind,
            port,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{}", proxy.errors());
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        format!("{:?}: {log}", self.kind)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(backend: Backend) -> NodeOptions {
    NodeOptions::default()
        .on(backend)
        .with("VIDAUD_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1"]"#)
}

async fn login_status(client: &reqwest::Client, url: &str, forged: Option<&str>) -> u16 {
    let mut request = client
        .post(url)
        .basic_auth("nobody@example.com", Some("wrong password"));
    if let Some(forged) = forged {
        request = request.header("X-Forwarded-For", forged);
    }
    request.send().await.expect("login").status().as_u16()
}

both_backends!(
    limits_apply_per_real_client_behind_a_trusted_proxy,
    |backend: Backend| async move {
        let node = Node::start(
            options(backend)
                .with("VIDAUD_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", 3)
                .with("VIDAUD_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", 1000),
        )
        .await;
        // Each proxy's clients have loopback addresses of their own.
        for (kind, (a, b)) in KINDS
            .into_iter()
            .zip([("127.0.0.2", "127.0.0.3"), ("127.0.0.5", "127.0.0.6")])
        {
            let proxy = Proxy::start(kind, node.port());
            let proxied = proxy.url("/login");
            let (a, b) = (client_from(a), client_from(b));
            for _ in 0..3 {
                assert_eq!(
                    login_status(&a, &proxied, None).await,
                    401,
                    "{}",
                    proxy.errors()
                );
            }
            assert_eq!(
                login_status(&a, &proxied, None).await,
                429,
                "{kind:?}: A's allowance is spent"
            );
            // Forging the header a proxy would write gains A nothing: the
            // proxy appends (nginx) or writes (Caddy) the real address, and
            // that is the hop believed.
            for forged in ["198.51.100.7", "127.0.0.3", "127.0.0.1"] {
                assert_eq!(
                    login_status(&a, &proxied, Some(forged)).await,
                    429,
                    "{kind:?}: {forged}"
                );
            }
            // B behind the same proxy has an allowance of its own.
            assert_eq!(login_status(&b, &proxied, None).await, 401, "{kind:?}");
        }
        let a = client_from("127.0.0.2");
        // Straight to the node, A is no trusted proxy: its header is ignored.
        let direct = node.url("/login");
        assert_eq!(login_status(&a, &direct, Some("203.0.113.9")).await, 429);
        let c = client_from("127.0.0.4");
        assert_eq!(login_status(&c, &direct, Some("127.0.0.2")).await, 401);
    }
);

both_backends!(
    uploads_and_event_streams_pass_through_as_they_happen,
    |backend: Backend| async move {
        let node = Node::start(options(backend)).await;
        let (_, token) = node.new_user().await;
        for kind in KINDS {
            through(&node, &token, kind).await;
        }
    }
);

/// Through a `kind` proxy: the event stream's first event arrives while it
/// stays open, and the first half of an upload reaches the node before the
/// client sends the second.
async fn through(node: &Node, token: &str, kind: Kind) {
    let proxy = Proxy::start(kind, node.port());
    let client = client_from("127.0.0.2");
    let token = token.to_owned();

    // All of the user's events, through the proxy: the first one (a
    // resync) arrives while the stream stays open.
    let events = client
        .get(proxy.url("/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /events");
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an event through the proxy while the stream is open")
        .expect("a chunk")
        .expect("bytes");
    assert!(
        String::from_utf8_lossy(&first).contains("resync"),
        "{first:?}"
    );

    // An upload whose body comes in two halves: the node has the first
    // half before the client sends the second.
    let (content_type, mut body) = common::multipart_file(&media::clip("mp4"));
    let half = body.len() / 2;
    let (second, first_half) = (body.split_off(half), body);
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let length = first_half.len() + second.len();
    let upload = tokio::spawn({
        let client = client.clone();
        let (url, token) = (proxy.url("/upload"), token.clone());
        async move {
            let stream = tokio_stream_of(receive);
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", content_type)
                .header("content-length", length)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
        }
    });
    let received_before = upload_bytes(node).await;
    send.send(Ok(first_half.clone())).await.expect("first half");
    let deadline = Instant::now() + Duration::from_secs(30);
    while upload_bytes(node).await < received_before + first_half.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: the first half never reached the node: the proxy buffered the upload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send.send(Ok(second)).await.expect("second half");
    drop(send);
    let answer = upload.await.expect("task").expect("upload through nginx");
    assert_eq!(
        answer.status(),
        202,
        "{kind:?}: {}",
        answer.text().await.unwrap_or_default()
    );
}

/// A stream of the chunks `receive` gets, until its sender is dropped.
fn tokio_stream_of(
    receive: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|chunk| (chunk, receive))
    })
}

/// Upload bytes the node has received so far (its metric).
async fn upload_bytes(node: &Node) -> u64 {
    node.metrics_text()
        .await
        .lines()
        .find(|l| l.contains("http_upload_bytes") && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
