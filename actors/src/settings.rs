//! The daemon's settings, one section per component.
//!
//! Defaults here are the documented defaults of `config.toml`; loading (file,
//! environment overrides, secret files) is the daemon's job. Secrets have no
//! default at all: they must come from the environment or a file.

use crate::transcoder::segments::SplitSettings;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub node: NodeSettings,
    pub backend: BackendSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub queue: QueueSettings,
    pub transcoder: TranscoderSettings,
    pub notifier: NotifierSettings,
    pub webhooks: WebhookSettings,
    pub admin: AdminSettings,
    pub mailboxes: MailboxSettings,
    pub log: LogSettings,
}

impl Settings {
    /// How long after an upload began what it left unfinished may be
    /// removed: `storage.abandoned_upload_grace_secs`, else the longest an
    /// upload can take (the size limit at the minimum rate, after the
    /// first idle window) plus an hour.
    pub fn upload_grace(&self) -> std::time::Duration {
        let given = self.storage.abandoned_upload_grace_secs;
        let longest = (self.http.max_upload_bytes / self.http.min_upload_bytes_per_sec.max(1))
            .saturating_add(self.http.body_idle_secs)
            .saturating_add(3600);
        std::time::Duration::from_secs(if given > 0 { given } else { longest })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// The admin socket (JSON lines; `vidaud ctl` talks to it). Created
    /// 0600; empty disables it.
    pub socket: String,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            socket: "/run/vidaud/admin.sock".into(),
        }
    }
}

/// How much unfinished work each actor may hold (see `mailbox.rs`); all
/// change live on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxSettings {
    /// Uploads streaming at once; one more gets 503 with Retry-After before
    /// its body is read. Bounds the memory uploads take.
    pub http: usize,
    /// Register/login requests being checked (hashing is slow on purpose);
    /// one more gets 503 with Retry-After.
    pub auth: usize,
    /// Deliveries waiting for a free worker: `video` prefetch = workers + this.
    pub transcoder: usize,
    /// `mp3` deliveries the notifier holds (the `mp3` prefetch); it mails
    /// them one at a time.
    pub notifier: usize,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        Self {
            http: 16,
            auth: 64,
            transcoder: 2,
            notifier: 4,
        }
    }
}

/// Which backend keeps users, jobs, files and the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// One node, no servers: SQLite and files under `data_dir`.
    #[default]
    Embedded,
    /// Many nodes sharing RabbitMQ (`[queue]`), MongoDB (`[storage]`) and
    /// MySQL (`[auth]`).
    Cluster,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSettings {
    pub kind: BackendKind,
    /// The embedded backend's data directory (database, files, lock, and
    /// the mail folder when no SMTP server is set); relative to the working
    /// directory.
    pub data_dir: String,
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            kind: BackendKind::Embedded,
            data_dir: "data".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Name of this node in logs and job records; empty means `hostname:pid`.
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
    /// Base URL users reach this service at; used for links in e-mails.
    pub public_url: String,
    /// Largest accepted upload, enforced while streaming.
    pub max_upload_bytes: u64,
    /// Seconds between keep-alive comments on an idle event stream.
    pub sse_heartbeat_secs: u64,
    /// A second address serving only `/metrics` (e.g. on an internal
    /// interface for Prometheus); empty: none. `/metrics` stays on `listen`.
    pub metrics_listen: String,
    /// A request head (line and headers) must arrive within this many
    /// seconds and fit in `max_header_bytes` (else 431).
    pub header_timeout_secs: u64,
    pub max_header_bytes: usize,
    /// A request body that sends nothing for this long is cut off (408).
    pub body_idle_secs: u64,
    /// After the first `body_idle_secs`, an upload slower than this on
    /// average is cut off (408): a trickle cannot hold a slot for hours.
    pub min_upload_bytes_per_sec: u64,
    /// Any other request body (JSON, a small form, none) must have arrived
    /// whole within this many seconds (else 408) and be at most
    /// `max_request_body_bytes` (else 413).
    pub request_body_secs: u64,
    pub max_request_body_bytes: usize,
    /// Connections one client address may hold open at once; more are
    /// answered 429 and closed. 0: no cap. Addresses in `trusted_proxies`
    /// are not capped (their connections are many clients').
    pub max_connections_per_client: u32,
    /// Reverse proxies (addresses or CIDRs) whose `Forwarded` /
    /// `X-Forwarded-For` name the client; anyone else's are ignored.
    pub trusted_proxies: Vec<String>,
    /// A resumable (tus) upload not finished within this many seconds of
    /// its creation expires and is swept with its data.
    pub resumable_expire_secs: u64,
    /// Web origins (`https://app.example.com`) whose pages may call the API
    /// from a browser (CORS); empty: none but the node's own page.
    pub cors_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            sse_heartbeat_secs: 15,
            metrics_listen: String::new(),
            header_timeout_secs: 10,
            max_header_bytes: 16 * 1024,
            body_idle_secs: 30,
            min_upload_bytes_per_sec: 4096,
            request_body_secs: 10,
            max_request_body_bytes: 64 * 1024,
            max_connections_per_client: 256,
            trusted_proxies: Vec::new(),
            resumable_expire_secs: 24 * 3600,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub mysql_url: String,
    /// HMAC secret for HS256 tokens (at least 32 bytes). Secret: set it with
    /// `VIDAUD_AUTH__JWT_SECRET` or point `jwt_secret_file` at a file.
    pub jwt_secret: String,
    pub jwt_secret_file: String,
    /// When `jwt_secret_file` does not exist, `serve` makes it (random,
    /// mode 0600) instead of refusing to start: a container's first start
    /// on an empty volume. Never replaces a file that exists.
    pub jwt_secret_create: bool,
    pub token_ttl_secs: u64,
    /// Put in issued tokens as `iss` and required of presented ones, when
    /// not empty.
    pub jwt_issuer: String,
    /// Likewise for `aud`.
    pub jwt_audience: String,
    /// Whether anyone may `POST /register`; when false, an operator adds
    /// users with `vidaud user add`.
    pub registration_open: bool,
    /// argon2id cost of new password hashes (OWASP: 19 MiB, 2 passes).
    /// Stored hashes of a lower cost (and bcrypt rows) are re-hashed at
    /// their owner's next login.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Login and register attempts allowed per client IP per minute (a
    /// burst of as many), then 429 with Retry-After.
    pub attempts_per_ip_per_minute: u32,
    /// Login attempts allowed per account per minute, from anywhere.
    pub attempts_per_account_per_minute: u32,
    /// Keys of signed download links, `id:secret` (secret at least 32
    /// bytes): the first signs new links, every one verifies. Secret: set
    /// with `VIDAUD_AUTH__LINK_KEYS='["k2:...", "k1:..."]'`. Empty: one key
    /// derived from the JWT secret.
    pub link_keys: Vec<String>,
    /// How long the link in a "ready" mail works, seconds.
    pub link_ttl_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mysql_url: "mysql://root@127.0.0.1:3306/vidaud".into(),
            jwt_secret: String::new(),
            jwt_secret_file: String::new(),
            jwt_secret_create: false,
            token_ttl_secs: 24 * 3600,
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            registration_open: true,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            attempts_per_ip_per_minute: 30,
            attempts_per_account_per_minute: 10,
            link_keys: Vec::new(),
            link_ttl_secs: 7 * 86_400,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    pub mongodb_uri: String,
    /// GridFS database holding uploaded videos (default bucket `fs`).
    pub videos_db: String,
    /// GridFS database holding converted audio (default bucket `fs`).
    pub mp3s_db: String,
    /// GridFS database holding the audio's waveform data (default bucket
    /// `fs`), each under its audio's id.
    pub waveforms_db: String,
    /// Database holding the `jobs` collection.
    pub jobs_db: String,
    /// Bytes of uploads, audio and waveforms one user may keep (0: no limit); an
    /// upload that would go over gets 413.
    pub quota_bytes_per_user: u64,
    /// Jobs one user may have queued or converting at once (0: no limit);
    /// one more upload gets 429.
    pub max_active_jobs_per_user: u64,
    /// Jobs (and their files) older than this many days are deleted by a
    /// periodic sweep (0: kept forever).
    pub retention_days: u64,
    /// Seconds between sweeps (retention, and abandoned uploads).
    pub sweep_every_secs: u64,
    /// What an upload cut off by a killed node left in storage is removed
    /// once the upload began this many seconds ago; 0: derived, the longest
    /// an upload can take (`max_upload_bytes` at `min_upload_bytes_per_sec`)
    /// plus an hour.
    pub abandoned_upload_grace_secs: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            mongodb_uri: "mongodb://127.0.0.1:27017".into(),
            videos_db: "videos".into(),
            mp3s_db: "mp3s".into(),
            waveforms_db: "waveforms".into(),
            jobs_db: "vidaud".into(),
            quota_bytes_per_user: 10 * 1024 * 1024 * 1024,
            max_active_jobs_per_user: 20,
            retention_days: 30,
            sweep_every_secs: 3600,
            abandoned_upload_grace_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    pub amqp_url: String,
    pub video_queue: String,
    pub mp3_queue: String,
    /// Where messages of jobs that failed for good are parked.
    pub dead_letter_queue: String,
    /// AMQP heartbeat; a dead broker connection is noticed within two of these.
    pub heartbeat_secs: u16,
    /// Fanout exchange where job events (state changes, progress) are
    /// published for whoever listens (live progress to clients).
    pub events_exchange: String,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            video_queue: "video".into(),
            mp3_queue: "mp3".into(),
            dead_letter_queue: "video.dead".into(),
            heartbeat_secs: 30,
            events_exchange: "vidaud.events".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscoderSettings {
    /// Concurrent conversions on this node.
    pub workers: usize,
    /// MP3 bitrate (CBR, kb/s) when an upload names no bitrate or quality.
    pub bitrate_kbps: u32,
    /// Attempts before a job that keeps failing transiently is given up.
    pub max_attempts: u32,
    /// While storage is full, the first pause (seconds) before a
    /// conversion tries to store again; it doubles at each failure since,
    /// up to 20 times this. No attempt is spent meanwhile.
    pub room_wait_secs: u64,
    /// Where inputs are spooled for random access; empty means the system
    /// temp dir. Spool files are unlinked at creation, so a crash leaks none.
    pub spool_dir: String,
    /// On shutdown, how long conversions in progress may take to finish
    /// before they are abandoned (their deliveries then return to the queue).
    pub shutdown_grace_secs: u64,
    /// A converting attempt owns its job for this long and renews it twice a
    /// second; a job whose lease ran out is taken over by a redelivery.
    pub lease_secs: u64,
    /// A conversion whose position does not move for this long is stopped
    /// and counts as a failed attempt.
    pub stall_secs: u64,
    /// Longest a conversion may run; then the job fails. Keep it below
    /// RabbitMQ's consumer_timeout (30 min by default).
    pub max_job_secs: u64,
    /// Inputs longer than this (audio duration) fail at once with the reason.
    pub max_input_secs: u64,
    /// Audio longer than this (seconds) is converted in segments that any
    /// worker on any node takes, then joined (formats that can be joined,
    /// without loudness or ReplayGain); 0: never split.
    pub split_above_secs: u64,
    /// About how long each segment is, seconds.
    pub segment_secs: u64,
    /// Failure injection for tests: the next N jobs make their worker panic
    /// mid-conversion. 0 (off) in any real deployment.
    pub inject_panics: u32,
    /// Convert in a sandboxed child process (vidaud's own binary), so that
    /// untrusted media is never parsed in the node. `false` converts inside
    /// the node: for debugging only.
    pub isolate: bool,
    /// The binary started for conversions; empty: this one.
    pub child_binary: String,
    /// A conversion child's address-space limit, MiB (0: none).
    pub child_memory_mib: u64,
    /// Its CPU-time limit, seconds; 0: derived, 2 x max_job_secs + 60.
    pub child_cpu_secs: u64,
    /// Its open-files limit (0: none).
    pub child_open_files: u64,
    /// Largest file it may write, MiB; 0: derived from max_input_secs
    /// (192 kHz stereo 32-bit PCM for that long).
    pub child_output_mib: u64,
    /// Install the child's system-call filter (where the kernel has
    /// seccomp filters). `false` for debugging only.
    pub child_seccomp: bool,
    /// Confine the child's file access to its input and output (and the
    /// system's libraries) with Landlock, where the kernel has it. `false`
    /// for debugging only.
    pub child_landlock: bool,
    /// Failure injection for tests: the next N jobs' conversion children
    /// die by SIGSEGV (every run of the job). 0 in any real deployment.
    pub inject_child_crashes: u32,
    /// Failure injection for tests: the next N jobs' conversion children
    /// allocate without bound. 0 in any real deployment.
    pub inject_child_runaway: u32,
    /// Failure injection for tests: the next N jobs' conversion children
    /// try to open a socket, fork, signal the node and read /etc/passwd,
    /// and abort if any of it works. 0 in any real deployment.
    pub inject_child_escapes: u32,
    /// Failure injection for tests: a split job's join waits this long
    /// (ms) once it holds the job, so a test can kill the node mid-join.
    /// 0 in any real deployment.
    pub inject_join_pause_ms: u64,
}

impl TranscoderSettings {
    /// When and how finely jobs are split.
    pub fn split(&self) -> SplitSettings {
        SplitSettings {
            above: std::time::Duration::from_secs(self.split_above_secs),
            segment: std::time::Duration::from_secs(self.segment_secs),
            count: None,
        }
    }

    /// The defaults of a job's output options this node decides.
    pub fn output_defaults(&self) -> crate::output::OutputDefaults {
        crate::output::OutputDefaults {
            mp3_kbps: self.bitrate_kbps,
        }
    }
}

impl Default for TranscoderSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            bitrate_kbps: crate::output::DEFAULT_MP3_KBPS,
            max_attempts: 5,
            room_wait_secs: 15,
            spool_dir: String::new(),
            shutdown_grace_secs: 60,
            lease_secs: 30,
            stall_secs: 60,
            max_job_secs: 25 * 60,
            max_input_secs: 6 * 3600,
            split_above_secs: SplitSettings::default().above.as_secs(),
            segment_secs: SplitSettings::default().segment.as_secs(),
            inject_panics: 0,
            isolate: true,
            child_binary: String::new(),
            child_memory_mib: 1024,
            child_cpu_secs: 0,
            child_open_files: 64,
            child_output_mib: 0,
            inject_child_crashes: 0,
            inject_child_runaway: 0,
            child_seccomp: true,
            child_landlock: true,
            inject_child_escapes: 0,
            inject_join_pause_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSettings {
    pub enabled: bool,
    /// Empty: no SMTP server; mails go to `maildir`.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_username: String,
    /// Secret: `VIDAUD_NOTIFIER__SMTP_PASSWORD` or `smtp_password_file`.
    pub smtp_password: String,
    pub smtp_password_file: String,
    /// How the connection to the SMTP server is secured.
    pub smtp_tls: SmtpTls,
    /// A PEM file of CA certificates the server's certificate is checked
    /// against instead of the system's roots; empty: the system's roots.
    pub smtp_ca_file: String,
    /// Send the password even over a connection that is not encrypted.
    pub smtp_allow_plain_auth: bool,
    /// Longest wait for each step of an SMTP exchange (connect, TLS, AUTH,
    /// each command, the data).
    pub smtp_timeout_secs: u64,
    pub from: String,
    /// Where mails are written when `smtp_host` is empty; empty: the data
    /// directory's `maildir`.
    pub maildir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Deliver webhooks (endpoints can be registered either way; an
    /// upload's `callback_url` is refused when off, not ignored).
    pub enabled: bool,
    /// The pauses between a delivery's attempts, seconds: after the last,
    /// it has failed (it can be re-sent).
    pub retry_schedule_secs: Vec<u64>,
    /// Longest wait for a receiver's answer (connect included).
    pub timeout_secs: u64,
    /// The most of a receiver's answer body read (the rest is dropped).
    pub max_response_bytes: u64,
    /// Networks (CIDR) a destination may be in although they are refused
    /// by default: loopback, private, link-local, CGNAT, metadata...
    pub allowed_networks: Vec<String>,
    /// Endpoints one user may register.
    pub max_endpoints_per_user: u32,
    /// Targets a node delivers to at once (each one delivery at a time).
    pub concurrency: u32,
    /// Days finished deliveries are kept (0: forever).
    pub keep_deliveries_days: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            retry_schedule_secs: vec![5, 60, 300, 1800, 7200, 21600, 43200],
            timeout_secs: 15,
            max_response_bytes: 64 * 1024,
            allowed_networks: Vec::new(),
            max_endpoints_per_user: 10,
            concurrency: 8,
            keep_deliveries_days: 30,
        }
    }
}

/// How the mailer secures its SMTP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP, never encrypted (a relay on this host or network).
    None,
    /// STARTTLS when the server offers it, else plain.
    Opportunistic,
    /// STARTTLS, required: no mail (and no password) goes out without it.
    #[default]
    Starttls,
    /// TLS from the first byte (implicit TLS, "SMTPS", port 465).
    Tls,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            smtp_host: String::new(),
            smtp_port: 2525,
            smtp_username: String::new(),
            smtp_password: String::new(),
            smtp_password_file: String::new(),
            smtp_tls: SmtpTls::default(),
            smtp_ca_file: String::new(),
            smtp_allow_plain_auth: false,
            smtp_timeout_secs: 30,
            from: "vidaud <vidaud@localhost>".into(),
            maildir: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter, e.g. `info` or `vidaud=debug,info`.
    pub level: String,
    /// `human` or `json`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "human".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_grace_outlasts_the_slowest_upload() {
        let mut settings = Settings::default();
        // 2 GiB at 4 KiB/s, after a 30 s idle window, plus an hour.
        assert_eq!(
            settings.upload_grace().as_secs(),
            (2u64 << 30) / 4096 + 30 + 3600
        );
        settings.storage.abandoned_upload_grace_secs = 60;
        assert_eq!(settings.upload_grace().as_secs(), 60);
    }
}
