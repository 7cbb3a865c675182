//! The daemon as a systemd service: the unit file verifies, and the
//! daemon speaks sd_notify (READY, WATCHDOG pings, STOPPING) to the socket
//! systemd gives it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, NodeOptions};

/// Datagrams received on `socket` within `window`.
fn receive(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let deadline = Instant::now() + window;
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread")]
async fn speaks_sd_notify_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let options = NodeOptions::default()
        .with("NOTIFY_SOCKET", path.display())
        .with("WATCHDOG_USEC", 1_000_000);
    let mut node = Node::start(options).await;

    let running = receive(&socket, Duration::from_secs(3)).join("\n");
    assert!(running.contains("READY=1"), "no READY=1 in {running:?}");
    assert!(
        running.contains("STATUS="),
        "no STATUS= line in {running:?}"
    );
    let pings = running.matches("WATCHDOG=1").count();
    assert!(
        pings >= 3,
        "{pings} watchdog pings in 3 s with a 1 s watchdog"
    );

    let _ = Command::new("kill").arg(node.pid().to_string()).status();
    let stopping = receive(&socket, Duration::from_secs(2)).join("\n");
    assert!(
        stopping.contains("STOPPING=1"),
        "no STOPPING=1 in {stopping:?}"
    );
    assert_eq!(node.terminate(Duration::from_secs(20)), Some(0));
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/vidaud.service"
    ))
    .expect("systemd/vidaud.service");
    // Verify checks that ExecStart exists: point it at the binary just built.
    let unit = unit.replace("/usr/local/bin/vidaud", env!("CARGO_BIN_EXE_vidaud"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vidaud.service");
    std::fs::write(&path, unit).expect("unit copy");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/test installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_us: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("vidaud.service"))
        .collect();
    assert!(
        out.status.success() && about_us.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_the_pool_size_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vidaud.toml");
    let original = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .expect("config");
    std::fs::write(&config, &original).expect("config copy");
    let node = Node::start(NodeOptions {
        config: Some(config.clone()),
        ..NodeOptions::default()
    })
    .await;
    assert_eq!(node.ctl(&["status"]).1["pool"]["size"], 2);

    let edited = original
        .replace("workers = 2", "workers = 3")
        .replace("transcoder = 2", "transcoder = 3")
        .replace("notifier = 4", "notifier = 2")
        .replace("bitrate_kbps = 192", "bitrate_kbps = 128");
    assert_ne!(edited, original);
    std::fs::write(&config, edited).expect("edit config");
    let _ = Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status();

    let deadline = Instant::now() + Duration::from_secs(20);
    while node.ctl(&["status"]).1["pool"]["size"] != 3 {
        assert!(
            Instant::now() < deadline,
            "pool not resized by SIGHUP\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        node.ctl(&["status"]).1["queue"]["prefetch"],
        6,
        "prefetch follows the pool size and the transcoder mailbox"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::broker_prefetch(&node.names.mp3_queue) != [2] {
        assert!(Instant::now() < deadline, "{}", node.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, status) = node.ctl(&["status"]);
    assert_eq!(
        status["restarts"]["notifier"], 0,
        "a planned swap, not a failure"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&node.log).expect("log");
    assert!(
        log.contains("transcoder pool resized"),
        "{}",
        node.log_tail()
    );
    let restart_line = log
        .lines()
        .find(|l| l.contains("only after a restart"))
        .unwrap_or_default();
    assert!(
        restart_line.contains("transcoder.bitrate_kbps"),
        "{}",
        node.log_tail()
    );
    assert!(
        !restart_line.contains("transcoder.workers"),
        "{restart_line}"
    );
}
