//! The daemon as a systemd service: the unit file verifies, and the
//! daemon speaks sd_notify (READY, WATCHDOG pings, STOPPING) to the socket
//! systemd gives it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
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
    let unit = unit.replace("/usr/bin/vidaud", env!("CARGO_BIN_EXE_vidaud"));
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

/// Each of systemd's system-call groups (`@name`) and what it lists
/// (calls, and other groups), as `systemd-analyze syscall-filter` prints them.
fn syscall_groups() -> BTreeMap<String, Vec<String>> {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("systemd-analyze (scripts/test installs systemd)");
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line.strip_prefix('@') {
            current = Some(format!("@{}", name.trim()));
        } else if let (Some(group), Some(item)) = (&current, line.strip_prefix("    ")) {
            let item = item.trim();
            if !item.is_empty() && !item.starts_with('#') {
                groups
                    .entry(group.clone())
                    .or_default()
                    .push(item.to_owned());
            }
        }
    }
    groups
}

fn expand(item: &str, groups: &BTreeMap<String, Vec<String>>, into: &mut BTreeSet<String>) {
    match groups.get(item) {
        Some(members) => members.iter().for_each(|m| expand(m, groups, into)),
        None => {
            into.insert(item.to_owned());
        }
    }
}

/// The unit's own system-call filter is wider than what the conversion
/// children allow themselves, and lets them install theirs: every call of
/// their allow-list (read from its source), and seccomp and Landlock's.
#[test]
fn the_units_system_call_filter_lets_conversion_children_confine_themselves() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/vidaud.service"
    ))
    .expect("unit");
    let groups = syscall_groups();
    assert!(groups.contains_key("@system-service"), "{groups:?}");
    let (mut allowed, mut denied) = (BTreeSet::new(), BTreeSet::new());
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (into, items) = match value.strip_prefix('~') {
            Some(items) => (&mut denied, items),
            None => (&mut allowed, value),
        };
        for item in items.split_whitespace() {
            expand(item, &groups, into);
        }
    }
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/actors/src/transcoder/isolation/seccomp.rs"
    ))
    .expect("seccomp.rs");
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut needed: BTreeSet<String> = code
        .split("libc::SYS_")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect();
    assert!(needed.len() > 40, "{needed:?}");
    needed.extend(
        [
            "seccomp",
            "landlock_create_ruleset",
            "landlock_add_rule",
            "landlock_restrict_self",
        ]
        .map(String::from),
    );
    let refused: Vec<&String> = needed
        .iter()
        .filter(|call| !allowed.contains(*call) || denied.contains(*call))
        .collect();
    assert!(
        refused.is_empty(),
        "the unit refuses what conversion children need: {refused:?}"
    );
}
