//! `JobStore` and `claim`: every transition of the job state machine and
//! the guard that keeps it from happening twice or out of turn.

use std::time::Duration;

use vidaud_actors::backends::{Claim, JobQuery, JobStore, claim};
use vidaud_actors::domain::{FileId, JobRecord, JobState, Owner, Timestamp};
use vidaud_actors::output::ResolvedOutput;

use crate::conformance;
use crate::harness::{Stores, someone};

const LEASE: Duration = Duration::from_secs(30);

/// A queued job of `owner`, recorded.
pub async fn queued(jobs: &dyn JobStore, owner: &Owner) -> JobRecord {
    let record = JobRecord::new(
        owner.clone(),
        "someone@example.com",
        "clip.mp4",
        FileId::new(),
        ResolvedOutput::default(),
    );
    jobs.insert(&record).await.expect("insert");
    record
}

async fn state(jobs: &dyn JobStore, job: &JobRecord) -> JobRecord {
    jobs.get(job.id).await.expect("get").expect("the job")
}

conformance!(a_job_moves_only_by_the_rules, |stores: Stores| async move {
    let jobs = stores.jobs.as_ref();
    let job = queued(jobs, &someone()).await;

    // queued → converting (attempt 1); a second claim while the lease
    // is live is Busy, not a second attempt.
    let Claim::Run(first) = claim(jobs, job.id, "n1", 5, LEASE).await.unwrap() else {
        panic!("not claimed");
    };
    assert_eq!((first.state, first.attempts), (JobState::Converting, 1));
    assert_eq!(first.node.as_deref(), Some("n1"));
    assert!(first.lease_until.is_some());
    assert!(matches!(
        claim(jobs, job.id, "n2", 5, LEASE).await.unwrap(),
        Claim::Busy(_)
    ));
    // Renewal and finish are guarded by the attempt number.
    assert!(
        jobs.renew_lease(job.id, 1, LEASE, Some(42.0))
            .await
            .unwrap()
    );
    assert!(!jobs.renew_lease(job.id, 2, LEASE, None).await.unwrap());
    assert_eq!(state(jobs, &job).await.progress, Some(42.0));
    assert!(
        jobs.finish(job.id, 2, JobState::Done, None, None)
            .await
            .unwrap()
            .is_none(),
        "finished by an attempt that does not own it"
    );
    assert!(!jobs.requeue(job.id, 2, "not mine").await.unwrap());
    // Handed back, then taken again: attempt 2, the error kept until then.
    assert!(jobs.requeue(job.id, 1, "broker away").await.unwrap());
    let back = state(jobs, &job).await;
    assert_eq!((back.state, back.lease_until), (JobState::Queued, None));
    assert!(!jobs.requeue(job.id, 1, "twice").await.unwrap());
    let Claim::Run(second) = claim(jobs, job.id, "n1", 5, LEASE).await.unwrap() else {
        panic!("not claimed again");
    };
    assert_eq!(
        (second.attempts, second.error.as_deref()),
        (2, Some("broker away"))
    );
    let done = jobs
        .finish(job.id, 2, JobState::Done, None, None)
        .await
        .unwrap()
        .expect("finished by its attempt");
    assert_eq!(
        (done.state, done.progress, done.notified, done.lease_until),
        (JobState::Done, Some(100.0), false, None)
    );
    // A final job is not converted, finished or retried again.
    assert!(matches!(
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap(),
        Claim::Final(_)
    ));
    assert!(
        jobs.finish(job.id, 2, JobState::Failed, Some("late"), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(jobs.retry(job.id).await.unwrap().is_none());
    assert!(!jobs.renew_lease(job.id, 2, LEASE, None).await.unwrap());
    assert!(matches!(
        claim(jobs, vidaud_actors::domain::JobId::new(), "n1", 5, LEASE)
            .await
            .unwrap(),
        Claim::Missing
    ));
});

conformance!(
    two_claimants_racing_for_one_job_make_one_attempt,
    |stores: Stores| async move {
        let job = queued(stores.jobs.as_ref(), &someone()).await;
        // Eight claimants at once (two nodes' worth on the cluster).
        let second = stores.second_node().await;
        let mut racing = Vec::new();
        for n in 0..8 {
            let jobs = match (&second, n % 2) {
                (Some(other), 1) => other.jobs.clone(),
                _ => stores.jobs.clone(),
            };
            racing.push(tokio::spawn(async move {
                claim(jobs.as_ref(), job.id, &format!("n{n}"), 5, LEASE).await
            }));
        }
        let mut runs = 0;
        for claimant in racing {
            match claimant.await.unwrap().unwrap() {
                Claim::Run(_) => runs += 1,
                Claim::Busy(_) => {}
                other => panic!("a racing claim got {other:?}"),
            }
        }
        assert_eq!(runs, 1, "exactly one claimant runs the job");
        assert_eq!(state(stores.jobs.as_ref(), &job).await.attempts, 1);
    }
);

conformance!(
    an_expired_lease_is_taken_over_and_attempts_are_bounded,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        // A lease of zero is expired at once: the node "died".
        for attempt in 1..=2 {
            let Claim::Run(taken) = claim(jobs, job.id, "n1", 2, Duration::ZERO).await.unwrap()
            else {
                panic!("lease not taken over");
            };
            assert_eq!(taken.attempts, attempt);
        }
        // The attempt whose lease was taken over no longer owns the job.
        assert!(!jobs.renew_lease(job.id, 1, LEASE, None).await.unwrap());
        let Claim::Exhausted(failed) = claim(jobs, job.id, "n1", 2, LEASE).await.unwrap() else {
            panic!("not given up");
        };
        assert_eq!(failed.state, JobState::Failed);
        assert!(
            failed
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("gave up after 2 attempts")),
            "{:?}",
            failed.error
        );
        // A live lease is renewed from now, and is not taken over.
        let other = queued(jobs, &someone()).await;
        claim(jobs, other.id, "n1", 2, Duration::ZERO)
            .await
            .unwrap();
        assert!(jobs.renew_lease(other.id, 1, LEASE, None).await.unwrap());
        assert!(matches!(
            claim(jobs, other.id, "n2", 2, LEASE).await.unwrap(),
            Claim::Busy(_)
        ));
    }
);

conformance!(
    retry_and_its_undo_move_only_a_failed_job,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        assert!(jobs.retry(job.id).await.unwrap().is_none(), "queued");
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap();
        assert!(jobs.retry(job.id).await.unwrap().is_none(), "converting");
        jobs.renew_lease(job.id, 1, LEASE, Some(50.0))
            .await
            .unwrap();
        jobs.finish(job.id, 1, JobState::Failed, Some("bad input"), None)
            .await
            .unwrap()
            .expect("failed");
        jobs.mark_notified(job.id).await.unwrap();
        jobs.mark_mailed(job.id).await.unwrap();

        let queued_again = jobs.retry(job.id).await.unwrap().expect("retried");
        assert_eq!(
            (
                queued_again.state,
                queued_again.attempts,
                queued_again.retries,
                queued_again.error.as_deref(),
                queued_again.progress,
                queued_again.node.as_deref(),
                queued_again.notified,
                queued_again.mailed,
            ),
            (JobState::Queued, 0, 1, None, None, None, false, false)
        );
        assert!(jobs.retry(job.id).await.unwrap().is_none(), "retried once");
        // An undo for another retry, or after the job moved on, does nothing.
        jobs.undo_retry(job.id, 2, "not this retry").await.unwrap();
        assert_eq!(state(jobs, &job).await.state, JobState::Queued);
        jobs.undo_retry(job.id, 1, "queue away").await.unwrap();
        let undone = state(jobs, &job).await;
        assert_eq!(
            (
                undone.state,
                undone.error.as_deref(),
                undone.notified,
                undone.mailed
            ),
            (JobState::Failed, Some("queue away"), true, true)
        );
        // Once a retried job is taken, its undo comes too late.
        jobs.retry(job.id).await.unwrap().expect("retried again");
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap();
        jobs.undo_retry(job.id, 2, "too late").await.unwrap();
        assert_eq!(state(jobs, &job).await.state, JobState::Converting);
    }
);

conformance!(
    a_handed_back_attempt_is_given_back_only_when_refunded,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap();
        assert!(jobs.requeue_refunded(job.id, 1, "disk full").await.unwrap());
        let back = state(jobs, &job).await;
        assert_eq!(
            (back.state, back.attempts, back.error.as_deref()),
            (JobState::Queued, 0, Some("disk full"))
        );
        assert!(!jobs.requeue_refunded(job.id, 1, "twice").await.unwrap());
        let Claim::Run(again) = claim(jobs, job.id, "n1", 5, LEASE).await.unwrap() else {
            panic!("not claimed again");
        };
        assert_eq!(again.attempts, 1, "the refunded attempt is the next one");
        assert!(jobs.requeue(job.id, 1, "crashed").await.unwrap());
        assert_eq!(state(jobs, &job).await.attempts, 1, "a requeue keeps it");
    }
);

conformance!(
    a_crashed_attempt_is_released_only_by_its_own_node,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap();
        jobs.release_crashed(job.id, "n2", "not mine")
            .await
            .unwrap();
        assert_eq!(state(jobs, &job).await.state, JobState::Converting);
        jobs.release_crashed(job.id, "n1", "worker crashed")
            .await
            .unwrap();
        let released = state(jobs, &job).await;
        assert_eq!(
            (
                released.state,
                released.lease_until,
                released.error.as_deref()
            ),
            (JobState::Queued, None, Some("worker crashed"))
        );
        // A final job is not released.
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap();
        jobs.finish(job.id, 2, JobState::Done, None, None)
            .await
            .unwrap();
        jobs.release_crashed(job.id, "n1", "late").await.unwrap();
        assert_eq!(state(jobs, &job).await.state, JobState::Done);
    }
);

conformance!(
    one_node_at_a_time_claims_a_jobs_mail,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        let now = Timestamp::now();
        let claimed = jobs.claim_mail(job.id, "n1", now, LEASE).await.unwrap();
        assert_eq!(claimed.map(|j| j.id), Some(job.id));
        assert!(
            jobs.claim_mail(job.id, "n2", now, LEASE)
                .await
                .unwrap()
                .is_none(),
            "another node's live claim"
        );
        assert!(
            jobs.claim_mail(job.id, "n1", now, LEASE)
                .await
                .unwrap()
                .is_some(),
            "a node renews its own claim"
        );
        // A claim that ran out is taken over.
        let later = now.plus(LEASE + Duration::from_secs(1));
        assert!(
            jobs.claim_mail(job.id, "n2", later, LEASE)
                .await
                .unwrap()
                .is_some()
        );
        jobs.mark_mailed(job.id).await.unwrap();
        assert!(state(jobs, &job).await.mailed);
        let much_later = later.plus(LEASE * 2);
        assert!(
            jobs.claim_mail(job.id, "n1", much_later, LEASE)
                .await
                .unwrap()
                .is_none(),
            "a mailed job is not mailed again"
        );
        // Nor is a deleted one.
        let deleted = queued(jobs, &someone()).await;
        jobs.mark_deleted(deleted.id).await.unwrap();
        assert!(
            jobs.claim_mail(deleted.id, "n1", now, LEASE)
                .await
                .unwrap()
                .is_none()
        );
    }
);

conformance!(
    a_deleted_job_is_answered_as_it_was_and_moves_no_more,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let job = queued(jobs, &someone()).await;
        claim(jobs, job.id, "n1", 5, LEASE).await.unwrap();
        let was = jobs.mark_deleted(job.id).await.unwrap().expect("the job");
        assert_eq!(was.state, JobState::Converting, "answered as it was");
        let now = state(jobs, &job).await;
        assert_eq!(
            (now.state, now.lease_until, now.progress),
            (JobState::Deleted, None, None)
        );
        assert!(
            jobs.finish(job.id, 1, JobState::Done, None, None)
                .await
                .unwrap()
                .is_none(),
            "its attempt cannot finish it"
        );
        assert!(!jobs.renew_lease(job.id, 1, LEASE, None).await.unwrap());
        assert!(!jobs.requeue(job.id, 1, "late").await.unwrap());
        assert!(matches!(
            claim(jobs, job.id, "n1", 5, LEASE).await.unwrap(),
            Claim::Final(_)
        ));
        assert!(
            jobs.mark_deleted(vidaud_actors::domain::JobId::new())
                .await
                .unwrap()
                .is_none()
        );
        // Removed outright (an upload whose message was never queued).
        let removed = queued(jobs, &someone()).await;
        jobs.remove(removed.id).await.unwrap();
        assert!(jobs.get(removed.id).await.unwrap().is_none());
    }
);

conformance!(
    listing_pages_newest_first_and_hides_tombstones,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let owner = someone();
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(queued(jobs, &owner).await.id);
        }
        queued(jobs, &someone()).await;
        jobs.mark_deleted(ids[4]).await.unwrap();
        let page = |before| JobQuery {
            owner: Some(owner.clone()),
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
        claim(jobs, ids[0], "n1", 5, LEASE).await.unwrap();
        let converting = jobs
            .list(&JobQuery {
                state: Some(JobState::Converting),
                ..page(None)
            })
            .await
            .unwrap();
        assert_eq!(
            converting.iter().map(|j| j.id).collect::<Vec<_>>(),
            [ids[0]]
        );
        assert_eq!(jobs.active_jobs(&owner).await.unwrap(), 4);
        let counts = jobs.count_by_state().await.unwrap();
        assert!(counts.contains(&(JobState::Queued, 4)), "{counts:?}");
        assert!(counts.contains(&(JobState::Converting, 1)), "{counts:?}");
        assert!(!counts.iter().any(|(s, _)| *s == JobState::Deleted));
        let old = jobs
            .created_before(Timestamp::now().plus(LEASE), 10)
            .await
            .unwrap();
        assert_eq!(old.len(), 5, "the tombstone is not among them");
        assert_eq!(old[0].id, ids[0], "oldest first");
        // Tombstones last touched before a cutoff are purged.
        assert_eq!(
            jobs.purge_deleted(Timestamp::now().plus(LEASE))
                .await
                .unwrap(),
            1
        );
        assert!(jobs.get(ids[4]).await.unwrap().is_none());
    }
);

conformance!(
    a_removed_owners_tombstones_are_cut_loose,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let owner = someone();
        let kept = queued(jobs, &owner).await;
        let gone = queued(jobs, &owner).await;
        jobs.mark_deleted(gone.id).await.unwrap();
        assert_eq!(jobs.forget_owner(&owner).await.unwrap(), 1);
        let tombstone = state(jobs, &gone).await;
        assert!(
            tombstone.owner == Owner::Forgotten && tombstone.filename.is_empty(),
            "{tombstone:?}"
        );
        assert_eq!(state(jobs, &kept).await.owner, owner, "live jobs stay");
    }
);

conformance!(
    every_kind_of_owner_reads_back_as_it_was_stored,
    |stores: Stores| async move {
        let jobs = stores.jobs.as_ref();
        let unclaimed = Owner::Unclaimed(format!("{}@example.com", crate::common::unique("old")));
        for owner in [someone(), unclaimed] {
            let job = queued(jobs, &owner).await;
            assert_eq!(state(jobs, &job).await.owner, owner);
            let listed = jobs
                .list(&JobQuery {
                    owner: Some(owner.clone()),
                    state: None,
                    before: None,
                    limit: 10,
                })
                .await
                .unwrap();
            assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
            assert_eq!(listed[0].owner, owner);
            assert_eq!(jobs.active_jobs(&owner).await.unwrap(), 1);
        }
    }
);
