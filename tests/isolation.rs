//! Conversions run in sandboxed child processes (issue: untrusted media
//! never touches the process that holds the secrets). Against a real node:
//! the child's confinement read from /proc while it converts, a crash and
//! a runaway allocation injected into children, and cancellation.

mod common;

use std::time::{Duration, Instant};

use common::media;
use common::{Backend, Node, NodeOptions};

/// The node's conversion children now (pids).
fn children_of(node: u32) -> Vec<u32> {
    // Children of every thread: the one that forked may be any worker thread.
    let mut pids: Vec<u32> = std::fs::read_dir(format!("/proc/{node}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
                .flat_map(|text| {
                    text.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("transcode-child"))
    });
    pids
}

/// The child converting now: the one that has confined itself (the others
/// were started ahead and wait for a job).
async fn a_converting_child_of(node: &Node) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let converting = children_of(node.pid())
            .into_iter()
            .find(|&pid| status_field(pid, "Seccomp").as_deref() == Some("2"));
        if let Some(pid) = converting {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no conversion child confined itself\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the node holds `n` children, all waiting unconfined for a
/// job (started ahead, one per idle worker).
async fn standing_by(node: &Node, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let children = children_of(node.pid());
        let waiting = children
            .iter()
            .filter(|&&pid| status_field(pid, "Seccomp").as_deref() == Some("0"))
            .count();
        if children.len() == n && waiting == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} children ({waiting} waiting), not {n} started ahead\n{}",
            children.len(),
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a child's last words show it got out.
type Escaped = fn(&str) -> bool;

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

both_backends!(
    the_child_holds_no_secret_runs_confined_and_dies_with_its_job,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__CHILD_MEMORY_MIB", 900),
        )
        .await;
        // Each idle worker holds a child started ahead.
        let workers = NodeOptions::default().workers;
        standing_by(&node, workers).await;
        let (_, token) = node.new_user().await;
        let (status, body) = node.upload(&token, &media::clip("long")).await;
        assert_eq!(status, 202, "{body}");
        let job_id = body["job_id"].as_str().expect("job_id").to_owned();

        let child = a_converting_child_of(&node).await;
        assert_eq!(status_field(child, "NoNewPrivs").as_deref(), Some("1"));
        // Its system-call filter: one, the allow-list.
        assert_eq!(status_field(child, "Seccomp_filters").as_deref(), Some("1"));
        // Its own process group (it leads it), not the node's.
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).expect("stat");
        let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
        let pgrp: u32 = after_name
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .expect("pgrp");
        assert_eq!(pgrp, child, "{stat}");
        // No secret and no setting reaches it: its environment is empty.
        let environ = std::fs::read(format!("/proc/{child}/environ")).expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains("VIDAUD") && !environ.contains(common::JWT_SECRET),
            "{environ}"
        );
        let limits = std::fs::read_to_string(format!("/proc/{child}/limits")).expect("limits");
        let limit = |name: &str| {
            limits
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert!(
            limit("Max address space").contains(&(900u64 << 20).to_string()),
            "{limits}"
        );
        assert!(limit("Max open files").contains("64 64"), "{limits}");
        assert!(limit("Max core file size").contains("0 0"), "{limits}");
        assert!(!limit("Max cpu time").contains("unlimited"), "{limits}");
        assert!(!limit("Max file size").contains("unlimited"), "{limits}");

        // Deleting the job mid-conversion ends the child (and reaps it).
        assert_eq!(node.delete_job(&token, &job_id).await, 204);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::path::Path::new(&format!("/proc/{child}")).exists() {
            assert!(
                Instant::now() < deadline,
                "the child of a deleted job lives on ({:?})\n{}",
                status_field(child, "State"),
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What is left are children waiting for jobs: one per idle worker.
        standing_by(&node, workers).await;
    }
);

/// Two jobs on a node whose next child is to fail: exactly one fails, with
/// a reason containing each of `reason`, after one attempt; the other is
/// done after one; everything is settled (files, mails, dead letters).
async fn one_of_two_fails_alone(node: &Node, clips: [&str; 2], reason: &[&str]) {
    let (email, token) = node.new_user().await;
    let ids = node.upload_all(&token, &clips.map(media::clip)).await;
    let jobs = node.wait_all_final(&token, &ids).await;
    let failed: Vec<_> = jobs.iter().filter(|j| j["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{jobs:?}");
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(reason.iter().all(|r| error.contains(r)), "{error}");
    for job in &jobs {
        // The failure took one attempt of one job, and nothing of the other.
        assert_eq!(job["attempts"], 1, "{job}");
    }
    let failed_name = failed[0]["filename"].as_str().expect("filename");
    node.assert_settled(&email, &jobs, &[failed_name]).await;
}

both_backends!(
    a_child_crashing_on_an_input_fails_that_job_alone_as_poison,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__INJECT_CHILD_CRASHES", 1),
        )
        .await;
        one_of_two_fails_alone(&node, ["mp4", "mkv"], &["crashed (SIGSEGV)", "twice"]).await;
        // The node itself never went down, and still takes work.
        let metrics = node.metrics_text().await;
        assert!(
            metrics.contains("converter_crashes_total 2"),
            "{}",
            metrics
                .lines()
                .filter(|l| l.contains("crash"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(metrics.contains("actor_restarts_total{actor=\"worker\"} 0"));
        let (_, token) = node.new_user().await;
        let again = node.upload_all(&token, &[media::clip("webm")]).await;
        assert_eq!(node.wait_final(&token, &again[0]).await["state"], "done");
    }
);

both_backends!(
    a_runaway_allocation_ends_that_attempt_at_the_memory_limit,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__INJECT_CHILD_RUNAWAY", 1)
                .with("VIDAUD_TRANSCODER__CHILD_MEMORY_MIB", 768),
        )
        .await;
        one_of_two_fails_alone(&node, ["mp4", "mov"], &["limit of 768 MiB"]).await;
        let memory = common::memory_kib(node.pid(), "VmHWM:");
        assert!(
            memory < 400 * 1024,
            "the node's own memory grew to {memory} KiB"
        );
    }
);

both_backends!(
    a_taken_over_child_opens_no_socket_starts_no_process_and_signals_no_one,
    |backend: Backend| async move {
        // The injected child tries a socket, a fork, a signal to the node
        // and reading /etc/passwd, and aborts if any of them works: a done
        // job means all were denied.
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_TRANSCODER__INJECT_CHILD_ESCAPES", 1),
        )
        .await;
        let (_, token) = node.new_user().await;
        let ids = node.upload_all(&token, &[media::clip("mp4")]).await;
        let job = node.wait_final(&token, &ids[0]).await;
        assert_eq!(job["state"], "done", "{job}\n{}", node.log_tail());
        let log = std::fs::read_to_string(&node.log).expect("node log");
        let kernel = vidaud_actors::transcoder::isolation::kernel::Support::probe();
        assert!(
            log.contains(&format!("conversion children in a sandbox: {kernel}")),
            "the start-up report is missing"
        );
        assert!(
            kernel.landlock_abi.is_some(),
            "this test needs Landlock in the kernel: {kernel}"
        );
        // Without the system-call filter, or without Landlock, the same
        // child gets out (a socket; /etc/passwd), and says so.
        // Each setting, and how the child's last words show what it got.
        let cases: [(&str, Escaped); 2] = [
            ("VIDAUD_TRANSCODER__CHILD_SECCOMP", |said| {
                !said.contains("socket -1")
            }),
            ("VIDAUD_TRANSCODER__CHILD_LANDLOCK", |said| {
                said.contains("/etc/passwd opened: true")
            }),
        ];
        for (setting, escaped) in cases {
            let open = Node::start(
                NodeOptions::default()
                    .on(backend)
                    .with("VIDAUD_TRANSCODER__INJECT_CHILD_ESCAPES", 1)
                    .with(setting, false),
            )
            .await;
            let (_, token) = open.new_user().await;
            let ids = open.upload_all(&token, &[media::clip("mp4")]).await;
            let job = open.wait_final(&token, &ids[0]).await;
            assert_eq!(job["state"], "failed", "{setting}: {job}");
            assert!(
                job["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("SIGABRT"),
                "{job}"
            );
            // The child's last words, in the node's log.
            let log = std::fs::read_to_string(&open.log).expect("node log");
            let said = log
                .lines()
                .find(|l| l.contains("escaped: socket"))
                .unwrap_or_default();
            assert!(escaped(said), "{setting}: {said:?}\n{}", open.log_tail());
        }
    }
);
