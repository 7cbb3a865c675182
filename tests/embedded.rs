//! What only the embedded backend has to prove: a full disk refuses an
//! upload cleanly and a conversion waits for room without losing anything
//! stored or spending its attempts (while `/ready` says the storage is
//! full), and without an SMTP server mail lands in the data directory's
//! Maildir. (A cluster's MongoDB on a full disk stops: mongod shuts down,
//! SecantusDB's storage engine panics; that is a dependency down, which
//! faults.rs covers.) (Kill -9 mid-upload and mid-conversion, restarts and the rest
//! run on both backends in faults.rs.)

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::media::clip;
use common::{Backend, Files, Node, NodeOptions};

fn embedded() -> NodeOptions {
    NodeOptions::default()
        .on(Backend::Embedded)
        .with("VIDAUD_TRANSCODER__LEASE_SECS", 3)
}

fn partials(node: &Node) -> usize {
    std::fs::read_dir(node.names.data_dir.join("files/partial"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A small tmpfs as the data directory, so the disk can be filled.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, megabytes: u32) -> Option<Self> {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self {
            path: path.to_owned(),
        })
    }

    /// Fills the disk but for `leave` bytes; the filler file's path.
    fn fill(&self, leave: u64) -> std::path::PathBuf {
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

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_uploads_with_507_and_conversions_wait_for_room() {
    let names = common::Names::fresh();
    let Some(disk) = SmallDisk::mount(&names.data_dir, 64) else {
        panic!("cannot mount a tmpfs (the suite runs as root)");
    };
    // Two attempts: a full disk that spent them would fail the job within
    // seconds. Short pauses while full (1 s, then 2, 4, 8 ...).
    let node = Node::start_named(
        names,
        embedded()
            .with("VIDAUD_TRANSCODER__MAX_ATTEMPTS", 2)
            .with("VIDAUD_TRANSCODER__ROOM_WAIT_SECS", 1),
        true,
    )
    .await;
    let (_, token) = node.new_user().await;

    // A first job done: what is stored must survive what follows.
    let (status, first) = node.upload(&token, &clip("mp4")).await;
    assert_eq!(status, 202, "{first}");
    let first = node
        .wait_final(&token, first["job_id"].as_str().unwrap())
        .await;
    let fid = first["mp3_fid"].as_str().expect("done").to_owned();
    let before = node
        .download(&token, &fid)
        .await
        .bytes()
        .await
        .expect("audio");

    // Drained, a second upload is stored; then the disk fills up.
    assert_eq!(node.ctl(&["drain"]).0, 0);
    let (status, second) = node.upload(&token, &clip("long")).await;
    assert_eq!(status, 202, "{second}");
    let second_id = second["job_id"].as_str().unwrap().to_owned();
    // Room for the database's writes, not for the long clip's audio.
    let filler = disk.fill(2 << 20);

    // An upload now: a clear 507, and nothing of it kept.
    let (status, refused) = node.upload(&token, &clip("long")).await;
    assert_eq!(status, 507, "{refused}");
    assert_eq!(refused["type"], "urn:vidaud:problem:insufficient-storage");
    assert_eq!(partials(&node), 0);
    assert_eq!(node.count_files(Files::Videos).await, 2);

    // The conversion cannot store its audio: the job is handed back with
    // its attempt, not failed, and waits, and /ready says why; with room
    // again it finishes, on its first attempt.
    assert_eq!(node.ctl(&["resume"]).0, 0);
    let ready = || async {
        let r = node
            .http
            .get(node.url("/ready"))
            .send()
            .await
            .expect("ready");
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let (status, body) = ready().await;
        if status == 503 && body["storage"]["full"] == true {
            break body;
        }
        assert!(Instant::now() < deadline, "/ready never said: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(said["dependencies"]["storage"], "down", "{said}");
    println!("/ready while the disk is full: {said}");
    // Full for 20 s: tries at 1, 2, 4 and 8 s, none spending an attempt.
    let full_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < full_until {
        let records = node.job_records().await;
        let job = records
            .iter()
            .find(|j| j["_id"] == second_id.as_str())
            .expect("job");
        assert!(
            job["state"] == "queued" || job["state"] == "converting",
            "{job}"
        );
        assert!(job["attempts"].as_u64() <= Some(1), "attempts spent: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_file(&filler).expect("free the disk");
    let second = node.wait_final(&token, &second_id).await;
    assert_eq!(second["state"], "done", "{second}");
    assert_eq!(second["attempts"], 1, "no attempt spent on the full disk");
    assert_eq!(ready().await.0, 200, "ready again once the audio is stored");
    let after = node
        .download(&token, &fid)
        .await
        .bytes()
        .await
        .expect("audio");
    assert!(after == before, "the first job's audio is intact");
    assert_eq!(partials(&node), 0);
    drop(node);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_smtp_server_mail_lands_in_the_data_directory() {
    let node = Node::start(embedded().with("VIDAUD_NOTIFIER__SMTP_HOST", "\"\"")).await;
    let (email, token) = node.new_user().await;
    let (status, body) = node.upload(&token, &clip("mp4")).await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(node.wait_final(&token, &job_id).await["state"], "done");
    let new = node.names.data_dir.join("maildir/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mail = loop {
        let found = std::fs::read_dir(&new)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&job_id));
        if let Some(entry) = found {
            break std::fs::read_to_string(entry.path()).expect("mail");
        }
        assert!(Instant::now() < deadline, "no mail in {}", new.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        mail.contains(&email) && common::download_link_in(&mail).is_some(),
        "{mail}"
    );
    let log = std::fs::read_to_string(&node.log).expect("log");
    assert!(
        log.contains("mails are written to a local Maildir"),
        "start-up says where mail goes"
    );
}
