//! `vidaud migrate`: an embedded node's users (a reference bcrypt row
//! among them), done, failed and queued jobs and their files move into a
//! cluster; a cluster node then serves the same ids, byte-identical
//! downloads, logs the same users in, and converts what was still queued.
//! A run killed part-way and run again ends the same; a further run copies
//! nothing.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::media::clip;
use common::{Backend, Files, JWT_SECRET, Names, Node, NodeOptions, mongo_port, unique};

/// A row as the reference's auth service wrote it (Python bcrypt, "password").
const REFERENCE_HASH: &str = "$2b$04$4HKnQ1QcyN4My/jy8gu/su/1MA3ZmJu/4FIUUDIuTFxaoeanwTm2e";

/// The cluster's configuration, as an operator would write it.
fn cluster_config(dir: &Path, names: &Names) -> std::path::PathBuf {
    let path = dir.join("cluster.toml");
    let text = format!(
        "[backend]\nkind = \"cluster\"\n\
         [storage]\nmongodb_uri = \"mongodb://127.0.0.1:{mongo}\"\nvideos_db = \"{videos}\"\n\
         mp3s_db = \"{mp3s}\"\nwaveforms_db = \"{waveforms}\"\njobs_db = \"{jobs}\"\n\
         [queue]\nvideo_queue = \"{video}\"\nmp3_queue = \"{mp3}\"\ndead_letter_queue = \"{dead}\"\n\
         [auth]\nmysql_url = \"mysql://root@127.0.0.1:3306/vidaud_test\"\n",
        mongo = mongo_port(),
        videos = names.videos_db,
        mp3s = names.mp3s_db,
        waveforms = names.waveforms_db,
        jobs = names.jobs_db,
        video = names.video_queue,
        mp3 = names.mp3_queue,
        dead = names.dead_letter_queue,
    );
    std::fs::write(&path, text).expect("cluster config");
    path
}

fn migrate_command(names: &Names, to: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vidaud"));
    command
        .args([
            "migrate",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .arg("--to")
        .arg(to)
        .env("VIDAUD_BACKEND__DATA_DIR", &names.data_dir)
        .env_remove("RUST_LOG");
    command
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_node_moves_into_a_cluster_keeping_every_id() {
    let names = Names::fresh();
    let mut embedded = Node::start_named(
        names.clone(),
        NodeOptions::default().on(Backend::Embedded),
        false,
    )
    .await;
    let (email, token) = embedded.new_user().await;
    let legacy = format!("{}@example.com", unique("legacy"));
    embedded
        .sqlite()
        .execute(
            "INSERT INTO users (email, password, is_admin, created_at, updated_at) \
             VALUES (?1, ?2, 0, 0, 0)",
            [&legacy, REFERENCE_HASH],
        )
        .expect("a reference bcrypt row");

    let (_, done) = embedded.upload(&token, &clip("mp4")).await;
    let (_, failed) = embedded.upload(&token, &clip("noaudio")).await;
    let done = embedded
        .wait_final(&token, done["job_id"].as_str().unwrap())
        .await;
    let failed = embedded
        .wait_final(&token, failed["job_id"].as_str().unwrap())
        .await;
    assert_eq!(
        (done["state"].as_str(), failed["state"].as_str()),
        (Some("done"), Some("failed"))
    );
    assert_eq!(embedded.ctl(&["drain"]).0, 0);
    let (_, queued) = embedded.upload(&token, &clip("mp4")).await;
    let queued_id = queued["job_id"].as_str().expect("queued").to_owned();
    let fid = done["mp3_fid"].as_str().unwrap().to_owned();
    let audio = embedded
        .download(&token, &fid)
        .await
        .bytes()
        .await
        .expect("audio");
    let done_id = done["job_id"].as_str().unwrap().to_owned();
    let waveform = embedded
        .waveform(&token, &done_id)
        .await
        .bytes()
        .await
        .expect("waveform");
    assert!(waveform.starts_with(b"{\"version\":2"), "a waveform");
    assert_eq!(embedded.terminate(Duration::from_secs(30)), Some(0));

    let dir = tempfile::tempdir().expect("tempdir");
    let to = cluster_config(dir.path(), &names);
    // Stopped halfway (one job of three), killed soon after it starts
    // again, then run to the end.
    let half = migrate_command(&names, &to)
        .args(["--max-jobs", "1"])
        .output()
        .expect("migrate");
    assert!(half.status.success(), "{}", text(&half));
    assert!(text(&half).contains("jobs 1 copied"), "{}", text(&half));
    let mut killed = migrate_command(&names, &to).spawn().expect("migrate");
    std::thread::sleep(Duration::from_millis(300));
    let _ = killed.kill();
    let _ = killed.wait();
    let out = migrate_command(&names, &to).output().expect("migrate");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("verified: the cluster holds all"),
        "{}",
        text(&out)
    );
    println!("MIGRATION {}", text(&out).trim());
    // Once more: nothing left to copy.
    let again = migrate_command(&names, &to).output().expect("migrate");
    assert!(again.status.success(), "{}", text(&again));
    let again = text(&again);
    assert!(
        again.contains("jobs 0 copied") && again.contains("files 0 copied"),
        "{again}"
    );

    // A cluster node on what was migrated.
    let cluster = Node::start_named(names.clone(), NodeOptions::default(), true).await;
    for job in [&done, &failed] {
        let id = job["job_id"].as_str().unwrap();
        let (status, there) = cluster.job(&token, id).await;
        assert_eq!(status, 200, "the old token and job id still work: {there}");
        assert_eq!(there["state"], job["state"]);
        assert_eq!(there["created_at"], job["created_at"]);
    }
    let moved = cluster
        .download(&token, &fid)
        .await
        .bytes()
        .await
        .expect("audio");
    assert!(moved == audio, "byte-identical download");
    let moved = cluster
        .waveform(&token, &done_id)
        .await
        .bytes()
        .await
        .expect("waveform");
    assert!(moved == waveform, "the waveform came along, byte-identical");
    assert!(
        cluster
            .has_file(Files::Videos, done["video_fid"].as_str().unwrap())
            .await
    );
    let converted = cluster.wait_final(&token, &queued_id).await;
    assert_eq!(
        converted["state"], "done",
        "the queued job converts in the cluster"
    );
    assert_eq!(converted["attempts"], 1, "once");
    cluster
        .login(&email, "correct horse")
        .await
        .expect("the user logs in");
    cluster
        .login(&legacy, "password")
        .await
        .expect("the bcrypt row logs in");
    assert!(!JWT_SECRET.is_empty());
}
