//! What only the embedded backend has to prove: a full disk refuses an
//! upload cleanly and a conversion waits for room without losing anything
//! stored or spending its attempts (while `/ready` says the storage is
//! full), and without an SMTP server mail lands in the data directory's
//! Maildir. (A full spool disk, on both backends, is jobs.rs's; a cluster's
//! MongoDB on a full disk stops: mongod shuts down, SecantusDB's storage
//! engine panics, which is a dependency down, as faults.rs covers.) (Kill -9 mid-upload and mid-conversion, restarts and the rest
//! run on both backends in faults.rs.)

mod common;

use std::time::{Duration, Instant};

use common::disk::{SmallDisk, assert_waits_for_room};
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

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_uploads_with_507_and_conversions_wait_for_room() {
    let names = common::Names::fresh();
    let disk = SmallDisk::mount(&names.data_dir, 64);
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
    let said =
        assert_waits_for_room(&node, &token, &second_id, &filler, Duration::from_secs(20)).await;
    println!("/ready while the disk is full: {said}");
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
