//! `SegmentStore`, `claim_segment` and a split job's steps in `JobStore`:
//! a segment is a unit of work with the job's rules (one attempt at a
//! time, leases, bounded attempts), and a split job waits for its
//! segments without a lease of its own.

use std::time::Duration;

use vidaud_actors::backends::{
    Bucket, Claim, JobStore, SegmentClaim, claim, claim_segment, job_files, segment_files,
};
use vidaud_actors::domain::{JobId, JobState, SegmentRecord, SegmentState, Segments};

use crate::blobs::stored;
use crate::conformance;
use crate::harness::{Stores, someone};
use crate::jobs::queued;

const LEASE: Duration = Duration::from_secs(30);

fn plan(job: JobId, count: u32) -> Vec<SegmentRecord> {
    (0..count)
        .map(|index| SegmentRecord::new(job, index, format!("{{\"part\":{index}}}")))
        .collect()
}

conformance!(
    a_split_job_waits_for_its_segments_unleased,
    |stores: Stores| async move {
        let jobs: &dyn JobStore = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        let Claim::Run(planning) = claim(jobs, job.id, "n1", 5, LEASE).await.unwrap() else {
            panic!("not claimed");
        };
        // Only the attempt that owns the job splits it.
        assert!(jobs.split(job.id, 2, 3).await.unwrap().is_none());
        let split = jobs
            .split(job.id, planning.attempts, 3)
            .await
            .unwrap()
            .expect("split");
        assert_eq!(split.state, JobState::Converting);
        assert_eq!(split.segments, Some(Segments { total: 3, done: 0 }));
        assert_eq!((split.lease_until, split.node.as_deref()), (None, None));
        // Progress is the segments' to record.
        assert!(jobs.note_segments(job.id, 2, 66.7).await.unwrap());
        let noted = jobs.get(job.id).await.unwrap().expect("job");
        assert_eq!(noted.segments, Some(Segments { total: 3, done: 2 }));
        assert_eq!(noted.progress, Some(66.7));
        // Unleased, the job is taken by whoever joins it (or sees to its
        // segments), as one attempt at a time.
        let Claim::Run(joining) = claim(jobs, job.id, "n2", 5, LEASE).await.unwrap() else {
            panic!("the join cannot take the split job");
        };
        assert_eq!(joining.attempts, planning.attempts + 1);
        assert_eq!(joining.segments, Some(Segments { total: 3, done: 2 }));
        assert!(matches!(
            claim(jobs, job.id, "n3", 5, LEASE).await.unwrap(),
            Claim::Busy(_)
        ));
        // An attempt that took it lets go again, the tally kept.
        let released = jobs
            .split(job.id, joining.attempts, 3)
            .await
            .unwrap()
            .expect("let go");
        assert_eq!(released.segments, Some(Segments { total: 3, done: 2 }));
        assert_eq!(
            (released.lease_until, released.progress),
            (None, Some(66.7))
        );
        let Claim::Run(joining) = claim(jobs, job.id, "n2", 5, LEASE).await.unwrap() else {
            panic!("the join cannot take the split job again");
        };
        // A job converted in one pass is no split job.
        let whole = queued(jobs, &someone()).await;
        assert!(!jobs.note_segments(whole.id, 1, 50.0).await.unwrap());
        // Failed, and retried by its owner: planned afresh.
        let failed = jobs
            .finish(job.id, joining.attempts, JobState::Failed, Some("x"), None)
            .await
            .unwrap()
            .expect("failed");
        assert_eq!(failed.segments, Some(Segments { total: 3, done: 2 }));
        let retried = jobs.retry(job.id).await.unwrap().expect("retried");
        assert_eq!(retried.segments, None);
    }
);

conformance!(
    a_segment_moves_only_by_the_rules,
    |stores: Stores| async move {
        let segments = stores.segments.as_ref();
        let job = JobId::new();
        segments.replace(job, &plan(job, 3)).await.unwrap();
        let listed = segments.list(job).await.unwrap();
        assert_eq!(listed, plan(job, 3));
        assert_eq!(segments.list(JobId::new()).await.unwrap(), vec![]);

        // queued → converting, once at a time.
        let SegmentClaim::Run(first) = claim_segment(segments, (job, 1), "n1", 3, LEASE)
            .await
            .unwrap()
        else {
            panic!("not claimed");
        };
        assert_eq!((first.state, first.attempts), (SegmentState::Converting, 1));
        assert_eq!(first.node.as_deref(), Some("n1"));
        assert_eq!(first.work, "{\"part\":1}");
        assert!(matches!(
            claim_segment(segments, (job, 1), "n2", 3, LEASE)
                .await
                .unwrap(),
            SegmentClaim::Busy(_)
        ));
        // Renewing and finishing are the attempt's alone.
        assert!(segments.renew(job, 1, 1, LEASE, Some(40.0)).await.unwrap());
        assert!(!segments.renew(job, 1, 2, LEASE, None).await.unwrap());
        assert!(!segments.renew(job, 0, 1, LEASE, None).await.unwrap());
        let renewed = segments.get(job, 1).await.unwrap().expect("segment");
        assert_eq!(renewed.progress, Some(40.0));
        assert!(
            !segments
                .finish(job, 1, 2, SegmentState::Done, None)
                .await
                .unwrap()
        );
        assert!(
            segments
                .finish(job, 1, 1, SegmentState::Done, None)
                .await
                .unwrap()
        );
        let done = segments.get(job, 1).await.unwrap().expect("segment");
        assert_eq!(
            (done.state, done.progress),
            (SegmentState::Done, Some(100.0))
        );
        assert_eq!(done.lease_until, None);
        assert!(matches!(
            claim_segment(segments, (job, 1), "n2", 3, LEASE)
                .await
                .unwrap(),
            SegmentClaim::Final(_)
        ));
        // Handed back, with and without the attempt given back.
        let SegmentClaim::Run(other) = claim_segment(segments, (job, 0), "n1", 3, LEASE)
            .await
            .unwrap()
        else {
            panic!("not claimed");
        };
        assert!(!segments.requeue(job, 0, 2, "x", false).await.unwrap());
        assert!(
            segments
                .requeue(job, 0, other.attempts, "disk full", true)
                .await
                .unwrap()
        );
        let back = segments.get(job, 0).await.unwrap().expect("segment");
        assert_eq!((back.state, back.attempts), (SegmentState::Queued, 0));
        assert_eq!(back.error.as_deref(), Some("disk full"));
        let SegmentClaim::Run(again) = claim_segment(segments, (job, 0), "n1", 3, LEASE)
            .await
            .unwrap()
        else {
            panic!("not claimed again");
        };
        assert!(
            segments
                .requeue(job, 0, again.attempts, "broker", false)
                .await
                .unwrap()
        );
        assert_eq!(
            segments
                .get(job, 0)
                .await
                .unwrap()
                .expect("segment")
                .attempts,
            1
        );
        // A crashed worker's segment is released by its node only.
        let SegmentClaim::Run(_) = claim_segment(segments, (job, 2), "n1", 3, LEASE)
            .await
            .unwrap()
        else {
            panic!("not claimed");
        };
        segments
            .release_crashed(job, 2, "n2", "crash")
            .await
            .unwrap();
        assert_eq!(
            segments.get(job, 2).await.unwrap().expect("segment").state,
            SegmentState::Converting
        );
        segments
            .release_crashed(job, 2, "n1", "crash")
            .await
            .unwrap();
        let released = segments.get(job, 2).await.unwrap().expect("segment");
        assert_eq!(
            (released.state, released.lease_until),
            (SegmentState::Queued, None)
        );

        // Planned again: the new plan alone; removed: nothing left.
        segments.replace(job, &plan(job, 2)).await.unwrap();
        assert_eq!(segments.list(job).await.unwrap(), plan(job, 2));
        segments.remove(job).await.unwrap();
        assert!(segments.list(job).await.unwrap().is_empty());
        assert!(matches!(
            claim_segment(segments, (job, 0), "n1", 3, LEASE)
                .await
                .unwrap(),
            SegmentClaim::Missing
        ));
    }
);

conformance!(
    a_lapsed_segment_lease_is_taken_over_and_attempts_are_bounded,
    |stores: Stores| async move {
        let segments = stores.segments.as_ref();
        let job = JobId::new();
        segments.replace(job, &plan(job, 1)).await.unwrap();
        // A lease of zero lapses at once: the node "died".
        for attempt in 1..=2 {
            let SegmentClaim::Run(taken) =
                claim_segment(segments, (job, 0), "n1", 2, Duration::ZERO)
                    .await
                    .unwrap()
            else {
                panic!("lease not taken over");
            };
            assert_eq!(taken.attempts, attempt);
        }
        assert!(!segments.renew(job, 0, 1, LEASE, None).await.unwrap());
        let SegmentClaim::Exhausted(failed) = claim_segment(segments, (job, 0), "n1", 2, LEASE)
            .await
            .unwrap()
        else {
            panic!("not given up");
        };
        assert_eq!(failed.state, SegmentState::Failed);
        assert!(
            failed
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("gave up on segment 0 after 2 attempts")),
            "{:?}",
            failed.error
        );
        let stored = segments.get(job, 0).await.unwrap().expect("segment");
        assert_eq!(stored.state, SegmentState::Failed);
    }
);

conformance!(
    claimants_racing_for_one_segment_make_one_attempt,
    |stores: Stores| async move {
        let job = JobId::new();
        stores.segments.replace(job, &plan(job, 2)).await.unwrap();
        let second = stores.second_node().await;
        let mut racing = Vec::new();
        for n in 0..8 {
            let segments = match (&second, n % 2) {
                (Some(other), 1) => other.segments.clone(),
                _ => stores.segments.clone(),
            };
            racing.push(tokio::spawn(async move {
                claim_segment(segments.as_ref(), (job, 1), &format!("n{n}"), 5, LEASE).await
            }));
        }
        let mut runs = 0;
        for claimant in racing {
            match claimant.await.unwrap().unwrap() {
                SegmentClaim::Run(_) => runs += 1,
                SegmentClaim::Busy(_) => {}
                other => panic!("a racing claim got {other:?}"),
            }
        }
        assert_eq!(runs, 1, "exactly one claimant converts the segment");
        let segments = stores.segments.list(job).await.unwrap();
        assert_eq!(segments[1].attempts, 1);
        assert_eq!(segments[0].state, SegmentState::Queued);
    }
);

conformance!(
    segment_files_count_toward_no_quota_and_go_with_their_job,
    |stores: Stores| async move {
        let (jobs, blobs) = (stores.jobs.as_ref(), stores.blobs.as_ref());
        let owner = someone();
        let job = queued(jobs, &owner).await;
        let Claim::Run(planning) = claim(jobs, job.id, "n1", 5, LEASE).await.unwrap() else {
            panic!("not claimed");
        };
        let split = jobs
            .split(job.id, planning.attempts, 2)
            .await
            .unwrap()
            .expect("split");
        let files: Vec<_> = segment_files(&split).collect();
        assert_eq!(files.len(), 4, "two segments, each audio and waveform");
        for (bucket, id) in &files {
            stored(blobs, *bucket, *id, &owner, b"segment").await;
        }
        stored(blobs, Bucket::Videos, job.video_fid, &owner, b"video").await;
        // Work in progress: the owner keeps only the video so far.
        assert_eq!(blobs.usage(&owner).await.unwrap(), 5);
        assert!(
            job_files(&split)
                .iter()
                .all(|f| files.contains(f) || !Bucket::SEGMENT_OUTPUTS.contains(&f.0))
        );
        stores.delete_job_and_files(&split).await.unwrap();
        for (bucket, id) in files {
            assert!(
                blobs.info(bucket, id).await.unwrap().is_none(),
                "{bucket:?} {id}"
            );
        }
    }
);
