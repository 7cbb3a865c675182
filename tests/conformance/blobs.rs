//! `BlobStore`: files appear whole or not at all, are read back exactly
//! (ranges across the backend's pieces too), resume from any offset on any
//! node, count toward their owner's usage, and are never swept while they
//! are finished or still being uploaded.

use futures::StreamExt;
use vidaud_actors::backends::{BlobStore, Bucket, ByteStream, FileMeta, StoreError, Upload};
use vidaud_actors::domain::{FileId, Owner, Timestamp};

use crate::conformance;
use crate::harness::{Stores, someone};

pub fn meta(owner: &Owner) -> FileMeta {
    FileMeta {
        filename: "clip.mp4".into(),
        owner: owner.clone(),
        content_type: Some("video/mp4".into()),
        job_id: None,
    }
}

/// Bytes no two offsets of which look alike for long.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn read_all(mut stream: ByteStream) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.expect("a piece"));
    }
    all
}

pub async fn stored(
    blobs: &dyn BlobStore,
    bucket: Bucket,
    id: FileId,
    owner: &Owner,
    bytes: &[u8],
) {
    let mut upload = Upload::open(blobs, bucket, id, meta(owner), u64::MAX)
        .await
        .unwrap();
    for piece in bytes.chunks(64 * 1024) {
        upload.write(piece).await.unwrap();
    }
    upload.finish().await.unwrap();
}

conformance!(
    files_appear_whole_or_not_at_all,
    |stores: Stores| async move {
        let blobs = stores.blobs.as_ref();
        let owner = someone();
        let id = FileId::new();
        let mut upload = Upload::open(blobs, Bucket::Videos, id, meta(&owner), 10)
            .await
            .unwrap();
        upload.write(b"0123456789").await.unwrap();
        assert!(matches!(
            upload.write(b"x").await,
            Err(StoreError::TooLarge { limit: 10 })
        ));
        upload.abort().await.unwrap();
        assert!(blobs.info(Bucket::Videos, id).await.unwrap().is_none());

        let mut upload = Upload::open(blobs, Bucket::Videos, id, meta(&owner), 100)
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
            (
                info.id,
                info.length,
                info.filename.as_str(),
                info.owner.as_ref(),
                info.content_type.as_deref()
            ),
            (id, 10, "clip.mp4", Some(&owner), Some("video/mp4"))
        );
        assert!(
            blobs.info(Bucket::Audio, id).await.unwrap().is_none(),
            "buckets are apart"
        );
        // Usage counts finished files in every bucket.
        stored(blobs, Bucket::Audio, FileId::new(), &owner, b"abc").await;
        assert_eq!(blobs.usage(&owner).await.unwrap(), 13);
        // A deleted file is gone, for a reader that found it before too.
        blobs.delete(Bucket::Videos, id).await.unwrap();
        assert!(matches!(
            blobs.read(Bucket::Videos, &info, None).await,
            Err(StoreError::Gone { .. })
        ));
        assert!(blobs.info(Bucket::Videos, id).await.unwrap().is_none());
        assert_eq!(blobs.usage(&owner).await.unwrap(), 3);
        blobs.delete(Bucket::Videos, id).await.unwrap();
        blobs.delete(Bucket::Videos, FileId::new()).await.unwrap();
        // A file from before user ids keeps its e-mail owner.
        let unclaimed = Owner::Unclaimed(format!("{}@example.com", crate::common::unique("old")));
        let old = FileId::new();
        stored(blobs, Bucket::Audio, old, &unclaimed, b"abcd").await;
        let info = blobs
            .info(Bucket::Audio, old)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(info.owner, Some(unclaimed.clone()));
        assert_eq!(blobs.usage(&unclaimed).await.unwrap(), 4);
    }
);

conformance!(
    ranged_reads_return_exactly_the_bytes_asked,
    |stores: Stores| async move {
        let blobs = stores.blobs.as_ref();
        // Over two of GridFS's 255 KiB pieces, and not a whole number of them.
        let bytes = pattern(700 * 1024 + 13);
        let id = FileId::new();
        stored(blobs, Bucket::Audio, id, &someone(), &bytes).await;
        let info = blobs.info(Bucket::Audio, id).await.unwrap().unwrap();
        assert_eq!(info.length, bytes.len() as u64);
        let whole = read_all(blobs.read(Bucket::Audio, &info, None).await.unwrap()).await;
        assert!(whole == bytes, "the whole file");
        let last = bytes.len() as u64 - 1;
        let piece = 255 * 1024;
        for (first, end) in [
            (0, 0),
            (0, 9),
            (piece - 1, piece),
            (piece - 3, 2 * piece + 3),
            (piece, 2 * piece - 1),
            (last - 1, last),
            (last, last),
            (12_345, last),
        ] {
            let got = read_all(
                blobs
                    .read(Bucket::Audio, &info, Some((first, end)))
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                got == bytes[first as usize..=end as usize],
                "bytes {first}-{end}: {} bytes back",
                got.len()
            );
        }
    }
);

conformance!(
    a_resumable_write_continues_from_its_offset_after_a_restart,
    |mut stores: Stores| async move {
        let bytes = pattern(600 * 1024);
        let id = FileId::new();
        {
            let mut write = stores
                .blobs
                .resume(Bucket::Videos, id, meta(&someone()), 0)
                .await
                .unwrap();
            write.write(&bytes[..400 * 1024]).await.unwrap();
            write.checkpoint().await.unwrap();
        }
        assert!(
            stores
                .blobs
                .info(Bucket::Videos, id)
                .await
                .unwrap()
                .is_none(),
            "not before finish"
        );
        stores.restart().await;
        // Only the first 300 KiB were acknowledged to the client: what is
        // stored past them is dropped, and the rest comes again.
        let from = 300 * 1024;
        let mut write = stores
            .blobs
            .resume(Bucket::Videos, id, meta(&someone()), from as u64)
            .await
            .unwrap();
        write.write(&bytes[from..]).await.unwrap();
        write.finish().await.unwrap();
        let info = stores
            .blobs
            .info(Bucket::Videos, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.length, bytes.len() as u64);
        let back = read_all(
            stores
                .blobs
                .read(Bucket::Videos, &info, None)
                .await
                .unwrap(),
        )
        .await;
        assert!(back == bytes, "{} bytes back", back.len());
    }
);

conformance!(
    the_abandoned_upload_sweep_keeps_what_is_finished_or_under_way,
    |stores: Stores| async move {
        let blobs = stores.blobs.as_ref();
        let finished = FileId::new();
        stored(blobs, Bucket::Videos, finished, &someone(), b"finished").await;
        let under_way = FileId::new();
        let mut write = blobs
            .resume(Bucket::Videos, under_way, meta(&someone()), 0)
            .await
            .unwrap();
        write.write(b"half of it").await.unwrap();
        write.checkpoint().await.unwrap();
        drop(write);
        // The upload's record, as tus keeps it while it is under way.
        let record = crate::uploads::record(under_way, &someone(), 20);
        stores.uploads.create(&record).await.unwrap();

        let later = Timestamp::now().plus(std::time::Duration::from_secs(60));
        blobs.remove_abandoned_uploads(later).await.unwrap();
        assert!(
            blobs
                .info(Bucket::Videos, finished)
                .await
                .unwrap()
                .is_some()
        );
        let mut write = blobs
            .resume(Bucket::Videos, under_way, meta(&someone()), 10)
            .await
            .unwrap();
        write.write(b", the rest").await.unwrap();
        write.finish().await.unwrap();
        let info = blobs
            .info(Bucket::Videos, under_way)
            .await
            .unwrap()
            .unwrap();
        let back = read_all(blobs.read(Bucket::Videos, &info, None).await.unwrap()).await;
        assert_eq!(back, b"half of it, the rest");
    }
);
