//! A small file system of the test's own (a tmpfs, mounted as root, which
//! the suite runs as), so that a disk can be filled and freed at will.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Node;

pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    /// A tmpfs of `megabytes` at `path`; panics if it cannot be mounted.
    pub fn mount(path: &Path, megabytes: u32) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "cannot mount a tmpfs (the suite runs as root)");
        Self {
            path: path.to_owned(),
        }
    }

    /// Fills the disk but for `leave` bytes; the filler file's path.
    pub fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 1 << 16];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        let len = file.metadata().expect("len").len();
        file.set_len(len.saturating_sub(leave)).expect("shrink");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// `job_id`'s conversion on `node` finds no room (the disk of `filler` is
/// full): checks that `/ready` says so (503, `storage.full`), that for
/// `hold` (tries at 1, 2, 4 ... s) the job waits, queued or converting,
/// with no attempt spent, then removes `filler` and checks that the job
/// ends done on its first attempt and `/ready` is 200 again. What `/ready`
/// said, for the log.
pub async fn assert_waits_for_room(
    node: &Node,
    token: &str,
    job_id: &str,
    filler: &Path,
    hold: Duration,
) -> Value {
    let ready = || async {
        let r = node
            .http
            .get(node.url("/ready"))
            .send()
            .await
            .expect("ready");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.expect("json"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let (status, body) = ready().await;
        if status == 503 && body["storage"]["full"] == true {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/ready never said: {body}\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(said["dependencies"]["storage"], "down", "{said}");
    let full_until = Instant::now() + hold;
    while Instant::now() < full_until {
        let records = node.job_records().await;
        let job = records
            .iter()
            .find(|j| j["_id"] == job_id)
            .expect("the job's record");
        assert!(
            job["state"] == "queued" || job["state"] == "converting",
            "{job}"
        );
        assert!(job["attempts"].as_u64() <= Some(1), "attempts spent: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_file(filler).expect("free the disk");
    let job = node.wait_final(token, job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 1, "no attempt spent on the full disk");
    assert_eq!(ready().await.0, 200, "ready again once the audio is stored");
    said
}
