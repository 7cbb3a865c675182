//! Mail as providers need it, against a real SMTP server (aiosmtpd, in
//! tests/mail/smtp_server.py) with certificates from a test CA made here:
//! STARTTLS and implicit TLS deliver (logged in, over TLS); a certificate
//! from another CA is refused, naming the step and the reason; a password
//! is never sent over a connection that is not encrypted. The mail itself
//! has a plain and an HTML part and names the real format, size and length.
//! And one mail per job when a broker connection drops while a node is in
//! the middle of a slow DATA: the other node waits for its claim.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Names, Node, NodeOptions, free_port, media, proxy::Proxy};

const USER: &str = "mailer";
const PASSWORD: &str = "s3cret-smtp-password";

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl.
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    fn make() -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        for ca in ["ca", "other-ca"] {
            openssl(
                dir.path(),
                &format!(
                    "req -x509 {EC} -days 2 -subj /CN=vidaud-test-{ca} \
                     -addext basicConstraints=critical,CA:TRUE \
                     -addext keyUsage=critical,keyCertSign,cRLSign \
                     -keyout {ca}.key -out {ca}.pem"
                ),
            );
        }
        openssl(
            dir.path(),
            &format!("req {EC} -subj /CN=127.0.0.1 -keyout server.key -out server.csr"),
        );
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions");
        openssl(
            dir.path(),
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile server.ext -out server.pem",
        );
        TestCa { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs openssl in `dir` with `args` (split at whitespace).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How a test SMTP server is secured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Security {
    Plain,
    StartTls,
    Implicit,
}

/// One aiosmtpd server with its own Maildir and DATA log.
struct SmtpServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    fn start(ca: Option<&TestCa>, security: Security, auth: bool, data_delay: f64) -> SmtpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mail/smtp_server.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--maildir")
            .arg(dir.path().join("maildir"))
            .arg("--log")
            .arg(dir.path().join("data.log"))
            .args(["--data-delay", &data_delay.to_string()]);
        if security != Security::Plain {
            let ca = ca.expect("a CA for TLS");
            command
                .args([
                    "--tls",
                    if security == Security::StartTls {
                        "starttls"
                    } else {
                        "implicit"
                    },
                ])
                .arg("--cert")
                .arg(ca.path("server.pem"))
                .arg("--key")
                .arg(ca.path("server.key"));
        }
        if auth {
            command.args(["--auth", &format!("{USER}:{PASSWORD}")]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr"))
            .spawn()
            .expect("python3 smtp_server.py");
        let server = SmtpServer { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "SMTP server: {}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// The mails it took, raw.
    fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("maildir/new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    async fn wait_mails(&self, at_least: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let mails = self.mails();
            if mails.len() >= at_least || Instant::now() > deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its DATA log: one line per DATA begun.
    fn data_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data.log")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node mailing to `server` with these `notifier` settings.
async fn node_mailing_to(
    backend: Backend,
    server: &SmtpServer,
    settings: &[(&'static str, String)],
) -> Node {
    let mut options = NodeOptions::default()
        .on(backend)
        .with("VIDAUD_NOTIFIER__SMTP_PORT", server.port)
        .with("VIDAUD_NOTIFIER__SMTP_TIMEOUT_SECS", 10);
    for (key, value) in settings {
        options = options.with(key, value);
    }
    Node::start(options).await
}

/// Uploads a clip as a new user and waits for its job to end.
async fn convert_one(node: &Node) -> serde_json::Value {
    let (_, token) = node.new_user().await;
    let ids = node.upload_all(&token, &[media::clip("mp4")]).await;
    node.wait_final(&token, &ids[0]).await
}

/// Waits until the node's log says `what`.
async fn wait_logged(node: &Node, what: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = node.log_tail();
        if log.contains(what) || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ca_file(ca: &TestCa, name: &str) -> String {
    ca.path(name).display().to_string()
}

both_backends!(
    starttls_and_implicit_tls_deliver_a_foreign_ca_and_a_password_in_clear_are_refused,
    |backend: Backend| async move {
        let ca = TestCa::make();
        let login = [
            ("VIDAUD_NOTIFIER__SMTP_USERNAME", USER.to_owned()),
            ("VIDAUD_NOTIFIER__SMTP_PASSWORD", PASSWORD.to_owned()),
        ];

        // STARTTLS, required, logged in; the server's certificate checked
        // against the test CA.
        let server = SmtpServer::start(Some(&ca), Security::StartTls, true, 0.0);
        let mut settings = vec![
            ("VIDAUD_NOTIFIER__SMTP_TLS", "starttls".to_owned()),
            ("VIDAUD_NOTIFIER__SMTP_CA_FILE", ca_file(&ca, "ca.pem")),
        ];
        settings.extend(login.clone());
        let node = node_mailing_to(backend, &server, &settings).await;
        let job = convert_one(&node).await;
        assert_eq!(job["state"], "done", "{job}");
        let mails = server.wait_mails(1, Duration::from_secs(30)).await;
        assert_eq!(mails.len(), 1, "STARTTLS delivers: {}", node.log_tail());
        assert!(
            server.data_log().contains("tls=True auth=True"),
            "{}",
            server.data_log()
        );
        let mail = &mails[0];
        assert!(mail.contains("multipart/alternative"), "{mail}");
        assert!(
            mail.contains("text/plain") && mail.contains("text/html"),
            "{mail}"
        );
        assert!(mail.contains("Subject: Your MP3 of"), "{mail}");
        let audio = &job["audio"];
        assert!(audio["bytes"].as_u64().unwrap_or(0) > 0, "{job}");
        assert!(audio["duration_ms"].as_u64().unwrap_or(0) > 0, "{job}");
        assert!(
            !node.log_text().contains(PASSWORD),
            "no password in the log"
        );
        drop(node);

        // Implicit TLS (port 465 style), another format named in the mail.
        let server = SmtpServer::start(Some(&ca), Security::Implicit, true, 0.0);
        let mut settings = vec![
            ("VIDAUD_NOTIFIER__SMTP_TLS", "tls".to_owned()),
            ("VIDAUD_NOTIFIER__SMTP_CA_FILE", ca_file(&ca, "ca.pem")),
        ];
        settings.extend(login.clone());
        let node = node_mailing_to(backend, &server, &settings).await;
        let (_, token) = node.new_user().await;
        let clip = media::clip("mp4");
        let (status, job) = node
            .upload_with(&token, &clip, "format=opus", &[], &[])
            .await;
        assert_eq!(status, 202, "{job}");
        let job = node
            .wait_final(&token, job["job_id"].as_str().expect("job id"))
            .await;
        assert_eq!(job["state"], "done", "{job}");
        let mails = server.wait_mails(1, Duration::from_secs(30)).await;
        assert_eq!(mails.len(), 1, "implicit TLS delivers: {}", node.log_tail());
        assert!(
            server.data_log().contains("tls=True auth=True"),
            "{}",
            server.data_log()
        );
        assert!(mails[0].contains("Subject: Your Opus of"), "{}", mails[0]);
        drop(node);

        // The server's certificate is from a CA the node does not trust.
        let server = SmtpServer::start(Some(&ca), Security::StartTls, true, 0.0);
        let mut settings = vec![
            ("VIDAUD_NOTIFIER__SMTP_TLS", "starttls".to_owned()),
            (
                "VIDAUD_NOTIFIER__SMTP_CA_FILE",
                ca_file(&ca, "other-ca.pem"),
            ),
        ];
        settings.extend(login.clone());
        let node = node_mailing_to(backend, &server, &settings).await;
        assert_eq!(convert_one(&node).await["state"], "done");
        let log = wait_logged(&node, "e-mail not sent", Duration::from_secs(30)).await;
        let line = log
            .lines()
            .find(|l| l.contains("e-mail not sent"))
            .unwrap_or_default();
        assert!(
            line.contains("STARTTLS with the SMTP server") && line.contains("UnknownIssuer"),
            "the error names the step and the reason: {line}"
        );
        assert!(server.mails().is_empty() && server.data_log().is_empty());
        drop(node);

        // A server without STARTTLS that would take a password in clear:
        // the node does not send it (opportunistic TLS finds none) ...
        let server = SmtpServer::start(None, Security::Plain, true, 0.0);
        let mut settings = vec![("VIDAUD_NOTIFIER__SMTP_TLS", "opportunistic".to_owned())];
        settings.extend(login.clone());
        let node = node_mailing_to(backend, &server, &settings).await;
        assert_eq!(convert_one(&node).await["state"], "done");
        let log = wait_logged(&node, "e-mail not sent", Duration::from_secs(30)).await;
        assert!(
            log.contains("not sending the SMTP password to 127.0.0.1"),
            "{log}"
        );
        assert!(server.mails().is_empty());
        drop(node);
        // ... nor, with STARTTLS required, anything at all ...
        let mut settings = vec![("VIDAUD_NOTIFIER__SMTP_TLS", "starttls".to_owned())];
        settings.extend(login.clone());
        let node = node_mailing_to(backend, &server, &settings).await;
        assert_eq!(convert_one(&node).await["state"], "done");
        let log = wait_logged(&node, "e-mail not sent", Duration::from_secs(30)).await;
        assert!(log.contains("does not offer STARTTLS"), "{log}");
        assert!(server.mails().is_empty());
        drop(node);
        // ... unless the operator allows it.
        let mut settings = vec![
            ("VIDAUD_NOTIFIER__SMTP_TLS", "opportunistic".to_owned()),
            ("VIDAUD_NOTIFIER__SMTP_ALLOW_PLAIN_AUTH", "true".to_owned()),
        ];
        settings.extend(login);
        let node = node_mailing_to(backend, &server, &settings).await;
        assert_eq!(convert_one(&node).await["state"], "done");
        let mails = server.wait_mails(1, Duration::from_secs(30)).await;
        assert_eq!(mails.len(), 1, "{}", node.log_tail());
        assert!(
            server.data_log().contains("tls=False auth=True"),
            "{}",
            server.data_log()
        );
    }
);

/// `smtp_tls = "none"` with a username is refused at start-up, saying why.
#[test]
fn a_password_over_plain_smtp_is_refused_at_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_vidaud"))
        .args(["serve", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .env("VIDAUD_BACKEND__KIND", "embedded")
        .env(
            "VIDAUD_BACKEND__DATA_DIR",
            tempfile::tempdir().expect("tmp").path(),
        )
        .env("VIDAUD_HTTP__LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "VIDAUD_AUTH__JWT_SECRET",
            "a-test-secret-a-test-secret-a-test-secret",
        )
        .env("VIDAUD_ADMIN__SOCKET", "")
        .env("VIDAUD_NOTIFIER__SMTP_HOST", "127.0.0.1")
        .env("VIDAUD_NOTIFIER__SMTP_TLS", "none")
        .env("VIDAUD_NOTIFIER__SMTP_USERNAME", USER)
        .env("VIDAUD_NOTIFIER__SMTP_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("vidaud serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("would send the password in clear"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

/// Two nodes share the queues; B mails to its own (equally slow) server,
/// so a DATA seen on A's server is A's. A's broker connections go through
/// a proxy that is cut while A is in DATA: the broker hands A's unacked
/// `mp3` message to B, which must wait for A's claim instead of sending.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_cut_while_a_node_is_in_data_sends_one_mail_per_job() {
    const JOBS: usize = 3;
    let broker = Proxy::start(5672).await;
    let slow_a = SmtpServer::start(None, Security::Plain, false, 4.0);
    let slow_b = SmtpServer::start(None, Security::Plain, false, 4.0);
    let names = Names::fresh();
    let options = |server: &SmtpServer| {
        NodeOptions::default()
            .with("VIDAUD_NOTIFIER__SMTP_PORT", server.port)
            .with("VIDAUD_NOTIFIER__SMTP_TIMEOUT_SECS", 20)
    };
    let a = Node::start_named(
        names.clone(),
        options(&slow_a).with(
            "VIDAUD_QUEUE__AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port),
        ),
        true,
    )
    .await;
    // B only takes deliveries (and A's cut-off one); it is never asked.
    let _b = Node::start_named(names.clone(), options(&slow_b), false).await;
    let (email, token) = a.new_user().await;

    let mut targeted = 0;
    let mut ids = Vec::new();
    // Jobs one at a time, until A's server has seen JOBS of them begin DATA
    // (the others went to B first, and count as jobs all the same).
    for _ in 0..4 * JOBS {
        if targeted == JOBS {
            break;
        }
        let before = slow_a.data_log().lines().count() + slow_b.data_log().lines().count();
        let id = a.upload_all(&token, &[media::clip("mp4")]).await.remove(0);
        ids.push(id.clone());
        assert_eq!(a.wait_final(&token, &id).await["state"], "done");
        let deadline = Instant::now() + Duration::from_secs(60);
        let on_a = loop {
            let (on_a, on_b) = (slow_a.data_log(), slow_b.data_log());
            if on_a.lines().count() + on_b.lines().count() > before {
                break on_a.contains(&id);
            }
            assert!(Instant::now() < deadline, "no DATA for job {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if on_a {
            // A is in its 4 s DATA for this job: cut its broker connections.
            broker.cut_now();
            targeted += 1;
        }
        // Let this mail settle before the next job.
        let settled = Instant::now() + Duration::from_secs(60);
        while slow_a.mails().len() + slow_b.mails().len() < ids.len() && Instant::now() < settled {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(targeted, JOBS, "A's server saw too few of the mails");
    // Time for any second copy to arrive (it would within a DATA or two).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut per_job = std::collections::HashMap::<String, usize>::new();
    for mail in slow_a.mails().iter().chain(&slow_b.mails()) {
        let id = common::message_id(mail).expect("Message-ID");
        *per_job.entry(id).or_default() += 1;
    }
    assert_eq!(per_job.len(), ids.len(), "every job mailed: {per_job:?}");
    assert!(
        per_job.values().all(|&n| n == 1),
        "one mail per job: {per_job:?}\nA: {}\nB: {}",
        slow_a.data_log(),
        slow_b.data_log()
    );
    println!(
        "one mail per job: {} jobs, {targeted} with A's broker connections cut mid-DATA \
         (user {email})",
        ids.len()
    );
}
