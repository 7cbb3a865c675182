//! The job state machine, the durable queue and the file store against a
//! real embedded backend on a temporary data directory: fast, no daemon.

use std::time::Duration;

use super::open;
use crate::backends::{
    Backends, Bucket, Claim, FileMeta, JobQuery, Queue, StoreError, Upload, claim,
};
use crate::domain::{FileId, JobRecord, JobState, Timestamp};
use crate::output::OutputOptions;
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

fn job(owner: &str) -> JobRecord {
    JobRecord::new(
        owner,
        owner,
        "clip.mp4",
        FileId::new(),
        OutputOptions::default(),
    )
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_job_moves_only_by_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let b = backends(dir.path());
    let jobs = b.jobs.as_ref();
    let record = job("a@example.com");
    jobs.insert(&record).await.unwrap();

    // queued → converting (attempt 1); a second claim while the lease is
    // live is Busy, not a second attempt.
    let Claim::Run(first) = claim(jobs, record.id, "n1", 5, LEASE).await.unwrap() else {
        panic!("not claimed");
    };
    assert_eq!((first.state, first.attempts), (JobState::Converting, 1));
    assert!(matches!(
        claim(jobs, record.id, "n2", 5, LEASE).await.unwrap(),
        Claim::Busy(_)
    ));
    // Renewal and finish are guarded by the attempt number.
    assert!(
        jobs.renew_lease(record.id, 1, LEASE, Some(42.0))
            .await
            .unwrap()
    );
    assert!(!jobs.renew_lease(record.id, 2, LEASE, None).await.unwrap());
    assert_eq!(
        jobs.get(record.id).await.unwrap().unwrap().progress,
        Some(42.0)
    );
    assert!(
        jobs.finish(record.id, 2, JobState::Done, None, None)
            .await
            .unwrap()
            .is_none()
    );
    // Handed back, then taken again: attempt 2, the error kept until then.
    assert!(jobs.requeue(record.id, 1, "broker away").await.unwrap());
    let Claim::Run(second) = claim(jobs, record.id, "n1", 5, LEASE).await.unwrap() else {
        panic!("not claimed again");
    };
    assert_eq!(
        (second.attempts, second.error.as_deref()),
        (2, Some("broker away"))
    );
    let done = jobs
        .finish(record.id, 2, JobState::Done, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.state, done.progress, done.notified),
        (JobState::Done, Some(100.0), false)
    );
    // A final job is not converted again.
    assert!(matches!(
        claim(jobs, record.id, "n1", 5, LEASE).await.unwrap(),
        Claim::Final(_)
    ));
    // Only a failed job can be retried.
    assert!(jobs.retry(record.id).await.unwrap().is_none());
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_attempts_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let b = backends(dir.path());
    let jobs = b.jobs.as_ref();
    let record = job("a@example.com");
    jobs.insert(&record).await.unwrap();
    // A lease of zero is expired at once: the node "died".
    for attempt in 1..=2 {
        let Claim::Run(taken) = claim(jobs, record.id, "n1", 2, Duration::ZERO)
            .await
            .unwrap()
        else {
            panic!("lease not taken over");
        };
        assert_eq!(taken.attempts, attempt);
    }
    let Claim::Exhausted(failed) = claim(jobs, record.id, "n1", 2, LEASE).await.unwrap() else {
        panic!("not given up");
    };
    assert_eq!(failed.state, JobState::Failed);
    assert!(
        failed
            .error
            .unwrap()
            .starts_with("gave up after 2 attempts")
    );

    // The owner retries: fresh attempts; undoing a retry fails it again.
    let queued = jobs.retry(record.id).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.attempts, queued.retries),
        (JobState::Queued, 0, 1)
    );
    jobs.undo_retry(record.id, 1, "queue away").await.unwrap();
    let again = jobs.get(record.id).await.unwrap().unwrap();
    assert_eq!(
        (again.state, again.error.as_deref()),
        (JobState::Failed, Some("queue away"))
    );
}

#[tokio::test]
async fn a_crashed_attempt_is_released_only_by_its_own_node() {
    let dir = tempfile::tempdir().unwrap();
    let b = backends(dir.path());
    let jobs = b.jobs.as_ref();
    let record = job("a@example.com");
    jobs.insert(&record).await.unwrap();
    claim(jobs, record.id, "n1", 5, LEASE).await.unwrap();
    jobs.release_crashed(record.id, "n2", "not mine")
        .await
        .unwrap();
    assert_eq!(
        jobs.get(record.id).await.unwrap().unwrap().state,
        JobState::Converting
    );
    jobs.release_crashed(record.id, "n1", "worker crashed")
        .await
        .unwrap();
    let released = jobs.get(record.id).await.unwrap().unwrap();
    assert_eq!(
        (released.state, released.lease_until),
        (JobState::Queued, None)
    );
}

#[tokio::test]
async fn listing_pages_newest_first_and_hides_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let b = backends(dir.path());
    let jobs = b.jobs.as_ref();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let record = job("a@example.com");
        jobs.insert(&record).await.unwrap();
        ids.push(record.id);
    }
    jobs.insert(&job("b@example.com")).await.unwrap();
    let deleted = jobs.mark_deleted(ids[4]).await.unwrap().unwrap();
    assert_eq!(deleted.state, JobState::Queued, "answered as it was");
    let page = |before| JobQuery {
        owner: Some("a@example.com".into()),
        state: None,
        before,
        limit: 2,
    };
    let first = jobs.list(&page(None)).await.unwrap();
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[3], ids[2]]
    );
    let second = jobs.list(&page(Some(ids[2]))).await.unwrap();
    assert_eq!(
        second.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    assert_eq!(jobs.active_jobs("a@example.com").await.unwrap(), 4);
    let counts = jobs.count_by_state().await.unwrap();
    assert!(counts.contains(&(JobState::Queued, 5)), "{counts:?}");
    // Tombstones older than a cutoff are purged.
    assert_eq!(
        jobs.purge_deleted(Timestamp::now().plus(LEASE))
            .await
            .unwrap(),
        1
    );
    let old = jobs
        .created_before(Timestamp::now().plus(LEASE), 10)
        .await
        .unwrap();
    assert_eq!(old.len(), 5);
}

#[tokio::test]
async fn the_queue_bounds_what_a_consumer_holds_and_redelivers_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = backends(dir.path());
        for n in 0..3u8 {
            b.queue.publish(Queue::Jobs, &[n]).await.unwrap();
        }
        let mut consumer = b.queue.consume(Queue::Jobs, 2, "t").await.unwrap();
        let one = consumer.next().await.unwrap().unwrap();
        let two = consumer.next().await.unwrap().unwrap();
        assert_eq!(
            (one.payload.as_slice(), two.payload.as_slice()),
            (&[0u8][..], &[1u8][..])
        );
        // At its prefetch, the consumer waits; a settle frees a place.
        let third = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
        assert!(third.is_err(), "took more than its prefetch");
        one.settle.ack().await.unwrap();
        two.settle.requeue().await.unwrap();
        let next = consumer.next().await.unwrap().unwrap();
        assert_eq!(next.payload, [1], "a requeued message comes first, again");
        assert!(next.redelivered);
        let depths = b.queue.depths().await.unwrap();
        assert!(depths.contains(&("video".to_owned(), 1)), "{depths:?}");
        // The process "dies" holding two messages: nothing is settled.
        std::mem::forget(next);
        drop(consumer);
    }
    // A new process on the same data directory gets them back.
    let b = backends(dir.path());
    let mut consumer = b.queue.consume(Queue::Jobs, 10, "t").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let d = consumer.next().await.unwrap().unwrap();
        seen.push((d.payload[0], d.redelivered));
        d.settle.ack().await.unwrap();
    }
    assert_eq!(seen, [(1, true), (2, false)]);
    consumer.cancel().await;
    assert!(consumer.next().await.is_none());
}

#[tokio::test]
async fn files_appear_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let id = FileId::new();
    let meta = FileMeta {
        filename: "clip.mp4".into(),
        owner: "a@example.com".into(),
        content_type: Some("video/mp4".into()),
        job_id: None,
    };
    {
        let b = backends(dir.path());
        let blobs = b.blobs.as_ref();
        let mut upload = Upload::open(blobs, Bucket::Videos, id, meta.clone(), 10)
            .await
            .unwrap();
        upload.write(b"0123456789").await.unwrap();
        assert!(matches!(
            upload.write(b"x").await,
            Err(StoreError::TooLarge { limit: 10 })
        ));
        upload.abort().await.unwrap();
        assert!(blobs.info(Bucket::Videos, id).await.unwrap().is_none());

        let mut upload = Upload::open(blobs, Bucket::Videos, id, meta.clone(), 100)
            .await
            .unwrap();
        upload.write(b"0123456789").await.unwrap();
        assert!(
            blobs.info(Bucket::Videos, id).await.unwrap().is_none(),
            "not before finish"
        );
        upload.finish().await.unwrap();
        let info = blobs.info(Bucket::Videos, id).await.unwrap().unwrap();
        assert_eq!(
            (info.length, info.owner.as_deref()),
            (10, Some("a@example.com"))
        );
        let part = read_all(
            blobs
                .read(Bucket::Videos, &info, Some((3, 6)))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(part, b"3456");
        assert_eq!(blobs.usage("a@example.com").await.unwrap(), 10);
        // A crash mid-write leaves a partial file the next start removes.
        let mut crashed = Upload::open(blobs, Bucket::Audio, FileId::new(), meta, 100)
            .await
            .unwrap();
        crashed.write(b"half").await.unwrap();
        std::mem::forget(crashed);
    }
    let b = backends(dir.path());
    let partial = std::fs::read_dir(dir.path().join("files/partial"))
        .unwrap()
        .count();
    assert_eq!(partial, 0, "the partial write was swept at start-up");
    let info = b.blobs.info(Bucket::Videos, id).await.unwrap().unwrap();
    b.blobs.delete(Bucket::Videos, id).await.unwrap();
    assert!(matches!(
        b.blobs.read(Bucket::Videos, &info, None).await,
        Err(StoreError::Gone { .. })
    ));
    assert_eq!(b.blobs.usage("a@example.com").await.unwrap(), 0);
}

#[tokio::test]
async fn one_process_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = backends(dir.path());
    let second = open(&settings(dir.path()), "other");
    assert!(matches!(second, Err(super::DataDirError::InUse { .. })));
}

async fn read_all(mut stream: crate::backends::ByteStream) -> Vec<u8> {
    use futures::StreamExt;
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    all
}
