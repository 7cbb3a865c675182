//! What only the embedded backend has: one process per data directory,
//! and what a dead process left in it (messages it held, a file half
//! written) taken back by the next. The rules every backend keeps are the
//! conformance suite's (`tests/conformance/`), run on this backend too.

use super::open;
use crate::backends::{Backends, Bucket, FileMeta, Queue, Upload};
use crate::domain::{FileId, Owner, UserId};
use crate::settings::{BackendKind, Settings};

fn settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.backend.kind = BackendKind::Embedded;
    settings.backend.data_dir = dir.display().to_string();
    settings
}

fn backends(dir: &std::path::Path) -> Backends {
    open(&settings(dir), "test-node").expect("open the data directory")
}

#[tokio::test]
async fn what_a_dead_process_held_is_delivered_again_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = backends(dir.path());
        for n in 0..3u8 {
            b.queue.publish(Queue::Jobs, &[n]).await.unwrap();
        }
        let mut consumer = b.queue.consume(Queue::Jobs, 2, "t").await.unwrap();
        for _ in 0..2 {
            // The process "dies" holding two messages: nothing is settled
            // and nothing lets them go.
            std::mem::forget(consumer.next().await.unwrap().unwrap());
        }
    }
    // A new process on the same data directory gets them back.
    let b = backends(dir.path());
    let mut consumer = b.queue.consume(Queue::Jobs, 10, "t").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = consumer.next().await.unwrap().unwrap();
        seen.push((d.payload[0], d.redelivered));
        d.settle.ack().await.unwrap();
    }
    assert_eq!(seen, [(0, true), (1, true), (2, false)]);
}

#[tokio::test]
async fn a_file_half_written_by_a_dead_process_is_swept_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let meta = FileMeta {
        filename: "clip.mp4".into(),
        owner: Owner::from(UserId::new()),
        content_type: Some("video/mp4".into()),
        job_id: None,
    };
    {
        let b = backends(dir.path());
        let mut crashed = Upload::open(b.blobs.as_ref(), Bucket::Audio, FileId::new(), meta, 100)
            .await
            .unwrap();
        crashed.write(b"half").await.unwrap();
        // The process "dies" mid-write: nothing aborts it.
        std::mem::forget(crashed);
    }
    let _b = backends(dir.path());
    let partial = std::fs::read_dir(dir.path().join("files/partial"))
        .unwrap()
        .count();
    assert_eq!(partial, 0, "the partial write was swept at start-up");
}

#[tokio::test]
async fn one_process_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = backends(dir.path());
    let second = open(&settings(dir.path()), "other");
    assert!(matches!(second, Err(super::DataDirError::InUse { .. })));
}
