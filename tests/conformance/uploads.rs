//! `UploadStore`: resumable uploads' records, one request at a time
//! holding an upload, its offset moved only by its holder, and the sweep's
//! view of what ran out.

use std::time::Duration;

use vidaud_actors::domain::{FileId, JobId, Owner, Timestamp, UploadRecord};
use vidaud_actors::output::ResolvedOutput;

use crate::conformance;
use crate::harness::{Stores, someone};

/// An upload of `length` bytes by `owner`, nothing stored yet, running out
/// in an hour.
pub fn record(id: FileId, owner: &Owner, length: u64) -> UploadRecord {
    let now = Timestamp::now();
    UploadRecord {
        id,
        owner: owner.clone(),
        username: format!("{owner}@example.com"),
        length,
        offset: 0,
        filename: "clip.mp4".into(),
        content_type: Some("video/mp4".into()),
        metadata: "filename Y2xpcC5tcDQ=".into(),
        output: ResolvedOutput::default(),
        callback: None,
        job_id: JobId::new(),
        mp3_fid: FileId::new(),
        queued: false,
        created_at: now,
        expires_at: now.plus(Duration::from_secs(3600)),
    }
}

const HOLD: Duration = Duration::from_secs(30);

conformance!(
    one_request_at_a_time_holds_an_upload,
    |stores: Stores| async move {
        let uploads = stores.uploads.as_ref();
        let upload = record(FileId::new(), &someone(), 100);
        uploads.create(&upload).await.unwrap();
        assert_eq!(uploads.get(upload.id).await.unwrap(), Some(upload.clone()));

        let now = Timestamp::now();
        let held = uploads
            .hold(upload.id, 1, now, now.plus(HOLD))
            .await
            .unwrap();
        assert_eq!(held.map(|u| u.offset), Some(0));
        assert!(
            uploads
                .hold(upload.id, 2, now, now.plus(HOLD))
                .await
                .unwrap()
                .is_none(),
            "held by another request"
        );
        assert!(
            uploads
                .advance(upload.id, 1, 40, Some(now.plus(HOLD)))
                .await
                .unwrap()
        );
        assert!(
            !uploads.advance(upload.id, 2, 90, None).await.unwrap(),
            "not its holder"
        );
        assert_eq!(uploads.get(upload.id).await.unwrap().unwrap().offset, 40);
        // A hold that ran out is taken over; the old holder moves nothing.
        let later = now.plus(HOLD + Duration::from_secs(1));
        let taken = uploads
            .hold(upload.id, 2, later, later.plus(HOLD))
            .await
            .unwrap();
        assert_eq!(taken.map(|u| u.offset), Some(40));
        assert!(!uploads.advance(upload.id, 1, 100, None).await.unwrap());
        // Let go, another request holds it at once.
        assert!(uploads.advance(upload.id, 2, 100, None).await.unwrap());
        assert!(
            uploads
                .hold(upload.id, 3, now, now.plus(HOLD))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            uploads
                .hold(FileId::new(), 3, now, now.plus(HOLD))
                .await
                .unwrap()
                .is_none(),
            "no such upload"
        );
    }
);

conformance!(
    racing_requests_hold_an_upload_once,
    |stores: Stores| async move {
        let upload = record(FileId::new(), &someone(), 100);
        stores.uploads.create(&upload).await.unwrap();
        let second = stores.second_node().await;
        let now = Timestamp::now();
        let mut racing = Vec::new();
        for holder in 0..8u64 {
            let uploads = match (&second, holder % 2) {
                (Some(other), 1) => other.uploads.clone(),
                _ => stores.uploads.clone(),
            };
            racing.push(tokio::spawn(async move {
                uploads.hold(upload.id, holder, now, now.plus(HOLD)).await
            }));
        }
        let mut held = 0;
        for request in racing {
            held += usize::from(request.await.unwrap().unwrap().is_some());
        }
        assert_eq!(held, 1);
    }
);

conformance!(
    unfinished_uploads_count_until_queued_and_run_out_on_time,
    |stores: Stores| async move {
        let uploads = stores.uploads.as_ref();
        let owner = someone();
        let first = record(FileId::new(), &owner, 100);
        let mut stale = record(FileId::new(), &owner, 50);
        stale.expires_at = Timestamp::now().minus(Duration::from_secs(1));
        uploads.create(&first).await.unwrap();
        uploads.create(&stale).await.unwrap();
        assert_eq!(uploads.reserved(&owner).await.unwrap(), 150);
        assert_eq!(uploads.owned(&owner, 10).await.unwrap().len(), 2);

        let expired = uploads.expired(Timestamp::now(), 100).await.unwrap();
        let ids: Vec<FileId> = expired.iter().map(|u| u.id).collect();
        assert!(ids.contains(&stale.id), "{ids:?}");
        assert!(!ids.contains(&first.id), "{ids:?}");

        uploads.mark_queued(first.id).await.unwrap();
        assert!(uploads.get(first.id).await.unwrap().unwrap().queued);
        assert_eq!(
            uploads.reserved(&owner).await.unwrap(),
            50,
            "a queued one counts as its job"
        );
        uploads.remove(stale.id).await.unwrap();
        uploads.remove(stale.id).await.unwrap();
        assert!(uploads.get(stale.id).await.unwrap().is_none());
        assert_eq!(uploads.owned(&owner, 10).await.unwrap().len(), 1);
    }
);
