//! Processes: a test node (a real `vidaud serve`) started on its own
//! queues and databases, its admin socket and CLI, killed, restarted and
//! stopped, and the watchdog that ends a test binary whose node outlives
//! any test's need.

use super::*;

#[derive(Clone)]
pub struct NodeOptions {
    pub backend: Backend,
    pub workers: usize,
    pub max_upload_bytes: u64,
    /// MongoDB port; the suite's SecantusDB when `None`.
    pub mongo_port: Option<u16>,
    /// Further `VIDAUD_*` settings.
    pub env: Vec<(&'static str, String)>,
    /// A configuration file of the test's own; then `workers` comes from it.
    pub config: Option<PathBuf>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Cluster,
            workers: 2,
            max_upload_bytes: 512 * 1024 * 1024,
            mongo_port: None,
            env: Vec::new(),
            config: None,
        }
    }
}

impl NodeOptions {
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.env.push((key, value.to_string()));
        self
    }

    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
}

/// Names of a node group's queues and databases.
#[derive(Clone)]
pub struct Names {
    /// The embedded backend's data directory (nodes of a group share it
    /// only one after the other: one node per data directory).
    pub data_dir: PathBuf,
    pub video_queue: String,
    pub mp3_queue: String,
    pub dead_letter_queue: String,
    pub videos_db: String,
    pub mp3s_db: String,
    pub waveforms_db: String,
    pub jobs_db: String,
}

impl Names {
    pub fn fresh() -> Names {
        let id = unique("t");
        Names {
            data_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("data-{id}")),
            video_queue: format!("video-{id}"),
            mp3_queue: format!("mp3-{id}"),
            dead_letter_queue: format!("video.dead-{id}"),
            videos_db: format!("videos_{id}"),
            mp3s_db: format!("mp3s_{id}"),
            waveforms_db: format!("waveforms_{id}"),
            jobs_db: format!("vidaud_{id}"),
        }
    }
}

pub struct Node {
    child: Child,
    /// Its HTTP API (`Node` derefs to it: `node.login(..)`, `node.base`).
    api: Api,
    pub names: Names,
    pub log: PathBuf,
    pub options: NodeOptions,
    port: u16,
    /// Whether dropping the node deletes the group's queues (one node of a
    /// group does).
    owns_queues: bool,
    /// Ends the whole test binary, with what the node logged, when the
    /// node outlives any test's need: a hang fails here, not at CI's limit.
    watchdog: Watchdog,
}

/// The settings a test node of `names`' group runs with, as `VIDAUD_*`
/// variables, for a node that reaches the suite's servers at `host` (this
/// machine's loopback, or the address a container reaches it by). Its own
/// address, id and admin socket are the caller's.
pub fn node_env(names: &Names, options: &NodeOptions, host: &str) -> Vec<(String, String)> {
    let mongo = options.mongo_port.unwrap_or_else(mongo_port);
    let mut env: Vec<(&str, String)> = vec![
        ("VIDAUD_BACKEND__KIND", options.backend.name().into()),
        (
            "VIDAUD_BACKEND__DATA_DIR",
            names.data_dir.display().to_string(),
        ),
        (
            "VIDAUD_HTTP__MAX_UPLOAD_BYTES",
            options.max_upload_bytes.to_string(),
        ),
        (
            "VIDAUD_AUTH__MYSQL_URL",
            format!("mysql://root@{host}:3306/vidaud_test"),
        ),
        ("VIDAUD_AUTH__JWT_SECRET", JWT_SECRET.into()),
        ("VIDAUD_AUTH__ARGON2_MEMORY_KIB", "256".into()),
        ("VIDAUD_AUTH__ARGON2_ITERATIONS", "1".into()),
        ("VIDAUD_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "100000".into()),
        (
            "VIDAUD_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE",
            "100000".into(),
        ),
        // SecantusDB names itself a one-member replica set at 127.0.0.1,
        // which is not where a container finds it: from elsewhere, connect
        // to it as addressed instead of to the member it names.
        (
            "VIDAUD_STORAGE__MONGODB_URI",
            if host == "127.0.0.1" {
                format!("mongodb://{host}:{mongo}")
            } else {
                format!("mongodb://{host}:{mongo}/?directConnection=true")
            },
        ),
        ("VIDAUD_STORAGE__VIDEOS_DB", names.videos_db.clone()),
        ("VIDAUD_STORAGE__MP3S_DB", names.mp3s_db.clone()),
        ("VIDAUD_STORAGE__WAVEFORMS_DB", names.waveforms_db.clone()),
        ("VIDAUD_STORAGE__JOBS_DB", names.jobs_db.clone()),
        (
            "VIDAUD_QUEUE__AMQP_URL",
            AMQP_URL.replace("127.0.0.1", host),
        ),
        ("VIDAUD_QUEUE__VIDEO_QUEUE", names.video_queue.clone()),
        ("VIDAUD_QUEUE__MP3_QUEUE", names.mp3_queue.clone()),
        (
            "VIDAUD_QUEUE__DEAD_LETTER_QUEUE",
            names.dead_letter_queue.clone(),
        ),
        ("VIDAUD_NOTIFIER__SMTP_HOST", host.into()),
        ("VIDAUD_NOTIFIER__SMTP_PORT", smtp_port().to_string()),
        // The suite's sink speaks plain SMTP (tests/mail.rs has TLS).
        ("VIDAUD_NOTIFIER__SMTP_TLS", "none".into()),
        ("VIDAUD_LOG__LEVEL", "info,vidaud_actors=debug".into()),
    ];
    if options.config.is_none() {
        env.push(("VIDAUD_TRANSCODER__WORKERS", options.workers.to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl std::ops::Deref for Node {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The last 40 lines of a log file.
pub fn tail_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Node {
    pub async fn start(options: NodeOptions) -> Node {
        Self::start_named(Names::fresh(), options, true).await
    }

    /// A node on `names`' queues and databases, e.g. a second node of a group.
    pub async fn start_named(names: Names, options: NodeOptions, owns_queues: bool) -> Node {
        let port = free_port();
        let log = Self::log_path(port);
        let mut node = Node {
            watchdog: Watchdog::start(log.clone(), node_lifetime_limit()),
            child: Self::spawn(&names, &options, port),
            api: Api::new(format!("http://127.0.0.1:{port}"), {
                let log = log.clone();
                Arc::new(move || tail_of(&log))
            }),
            log,
            names,
            options,
            port,
            owns_queues,
        };
        node.watchdog.watch(&node.child);
        node.wait_healthy().await;
        node
    }

    fn socket_path(port: u16) -> PathBuf {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("admin-{port}.sock"))
    }

    /// This node's admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        Self::socket_path(self.port)
    }

    /// Runs `vidaud ctl --json --socket <ours> ARGS`: exit code and answer.
    pub fn ctl(&self, args: &[&str]) -> (i32, Value) {
        let out = Command::new(env!("CARGO_BIN_EXE_vidaud"))
            .args(["ctl", "--json", "--socket"])
            .arg(self.admin_socket())
            .args(args)
            .output()
            .expect("vidaud ctl");
        let answer = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), answer)
    }

    fn log_path(port: u16) -> PathBuf {
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        logs.join(format!("{}-{port}.log", std::process::id()))
    }

    fn spawn(names: &Names, options: &NodeOptions, port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::log_path(port))
            .expect("log file");
        let config = options
            .config
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_vidaud"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .envs(node_env(names, options, "127.0.0.1"))
            .env("VIDAUD_NODE__ID", format!("n{port}"))
            .env("VIDAUD_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "VIDAUD_HTTP__PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            )
            .env("VIDAUD_ADMIN__SOCKET", Self::socket_path(port))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (key, value) in &options.env {
            command.env(key, value);
        }
        command.spawn().expect("spawning vidaud")
    }

    async fn wait_healthy(&mut self) {
        let child = &mut self.child;
        self.api
            .wait_healthy(Duration::from_secs(60), || match child.try_wait() {
                Ok(Some(status)) => Err(format!("vidaud exited during start-up ({status})")),
                _ => Ok(()),
            })
            .await;
    }

    /// Everything the node has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The node id it runs with (`node` on the job records it converts).
    pub fn node_id(&self) -> String {
        format!("n{}", self.port)
    }

    /// Waits until some job of this group is converting (on `node`, when
    /// given) and returns its id.
    pub async fn wait_converting(&self, node: Option<&str>) -> String {
        match self.converting_within(node, Duration::from_secs(60)).await {
            Some(id) => id,
            None => panic!("no job started converting\n{}", self.log_tail()),
        }
    }

    /// A job converting now (on `node`, when given), waiting up to `limit`;
    /// `None` when none did (e.g. all are finished).
    pub async fn converting_within(&self, node: Option<&str>, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let jobs = self.job_records().await;
            let busy = jobs
                .iter()
                .find(|j| j["state"] == "converting" && node.is_none_or(|n| j["node"] == n));
            if let Some(job) = busy {
                return job["_id"].as_str().map(str::to_owned);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// kill -9: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `limit` for the exit: the exit code, or
    /// `None` when it did not exit in time (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        terminate_child(&mut self.child, limit)
    }

    /// Starts the process again with the same port, names and settings.
    pub async fn restart(&mut self) {
        if self.is_running() {
            self.kill9();
        }
        self.child = Self::spawn(&self.names, &self.options, self.port);
        self.watchdog.watch(&self.child);
        self.wait_healthy().await;
    }

    /// `vidaud user add` against this node's user store: its exit code and
    /// stderr.
    pub fn add_user(&self, email: &str, password: &str, admin: bool) -> (i32, String) {
        let mut args = vec!["add", email];
        if admin {
            args.push("--admin");
        }
        let (code, _, stderr) = self.user_cli(&args, Some(password));
        (code, stderr)
    }

    /// `vidaud user ARGS` against this node's user store, `stdin` (a
    /// password) on its first line: exit code, stdout, stderr.
    pub fn user_cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vidaud"));
        command
            .arg("user")
            .args(args)
            .env("VIDAUD_BACKEND__KIND", self.options.backend.name())
            .env("VIDAUD_BACKEND__DATA_DIR", &self.names.data_dir)
            .env(
                "VIDAUD_AUTH__MYSQL_URL",
                "mysql://root@127.0.0.1:3306/vidaud_test",
            )
            .env("VIDAUD_AUTH__ARGON2_MEMORY_KIB", "256")
            .env("VIDAUD_AUTH__ARGON2_ITERATIONS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("vidaud user");
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(line) = stdin {
            input
                .write_all(format!("{line}\n").as_bytes())
                .expect("stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The node's HTTP port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts an upload over a raw connection that announces a body of
    /// `content_length` bytes and sends the part's head and the first
    /// `send` bytes of the file; the caller holds it, cuts it off, or the
    /// node dies.
    pub fn start_raw_upload(
        &self,
        token: &str,
        content_length: u64,
        send: usize,
    ) -> std::net::TcpStream {
        use std::io::Write;
        let address = self.base.trim_start_matches("http://").to_owned();
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {content_length}\r\n\r\n\
             --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.mp4\"\r\n\r\n"
        );
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.write_all(head.as_bytes()).expect("head");
        let chunk = vec![7u8; 1 << 20];
        let mut left = send;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n]).expect("body");
            left -= n;
        }
        stream
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        terminate_child(&mut self.child, Duration::from_secs(20));
        if !self.owns_queues {
            return;
        }
        if self.options.backend == Backend::Embedded {
            let _ = std::fs::remove_dir_all(&self.names.data_dir);
            return;
        }
        // Remove the group's queues so the broker does not collect them.
        remove_queues(vec![
            self.names.video_queue.clone(),
            self.names.mp3_queue.clone(),
            self.names.dead_letter_queue.clone(),
        ]);
    }
}

/// `VmRSS`/`VmHWM` (current and peak resident set) of a process, in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Longer than any test keeps a node (the longest take a few minutes on
/// a loaded 2-core machine): a node still running after this is a hang.
/// `VIDAUD_TEST_NODE_LIMIT_SECS` sets another (to see the watchdog act).
fn node_lifetime_limit() -> Duration {
    let seconds = std::env::var("VIDAUD_TEST_NODE_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20 * 60);
    Duration::from_secs(seconds)
}

/// A thread that, unless dropped within `limit`, prints which test hung
/// and the tail of `log`, kills the node it watches and exits the test
/// binary.
struct Watchdog {
    _cancel: std::sync::mpsc::Sender<()>,
    node_pid: std::sync::Arc<AtomicU32>,
}

impl Watchdog {
    fn start(log: PathBuf, limit: Duration) -> Watchdog {
        let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
        let node_pid = std::sync::Arc::new(AtomicU32::new(0));
        let pid = node_pid.clone();
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                // Straight to the process's stderr: the harness captures
                // what eprintln! writes and would drop it with the exit.
                let _ = writeln!(
                    std::io::stderr(),
                    "{test}: its node ({}) still runs after {limit:?}; the test hangs. \
                     The node's last lines:\n{}",
                    log.display(),
                    lines[lines.len().saturating_sub(60)..].join("\n")
                );
                let pid = pid.load(Ordering::SeqCst);
                if pid != 0 {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                std::process::exit(124);
            }
        });
        Watchdog {
            _cancel: cancel,
            node_pid,
        }
    }

    /// The node process to kill when the watchdog acts.
    fn watch(&self, child: &Child) {
        self.node_pid.store(child.id(), Ordering::SeqCst);
    }
}

/// SIGTERM, then up to `limit` for the exit: the exit code, or `None`
/// when it did not exit in time (it is then killed with SIGKILL). Never
/// waits without a bound: a child stuck in its shutdown must fail its test,
/// not hang the suite.
pub fn terminate_child(child: &mut Child, limit: Duration) -> Option<i32> {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "process {} did not exit within {limit:?} of SIGTERM: killed",
        child.id()
    );
    let _ = child.kill();
    let _ = child.wait();
    None
}
