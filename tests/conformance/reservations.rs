//! `ReservationStore`, and admission on top of it: a reservation is added
//! only at the version it was checked at, counts until released or run
//! out, and concurrent admissions of one owner — on one node or two —
//! never together go over the owner's limit.

use std::sync::Arc;
use std::time::Duration;

use vidaud_actors::backends::{Backends, UserLimits};
use vidaud_actors::domain::{Owner, Reservation, ReservationId, Timestamp};
use vidaud_actors::jobs::admission::{Refused, Room, Rules, admit};
use vidaud_actors::settings::Settings;

use crate::conformance;
use crate::harness::{Stores, someone};

fn reservation(owner: &Owner, bytes: u64, until: Timestamp) -> Reservation {
    Reservation {
        id: ReservationId::new(),
        owner: owner.clone(),
        bytes,
        jobs: 1,
        until,
    }
}

conformance!(
    a_reservation_is_added_only_at_the_version_it_was_checked_at,
    |stores: Stores| async move {
        let store = stores.reservations.as_ref();
        let owner = someone();
        let now = Timestamp::now();
        let soon = now.plus(Duration::from_secs(60));
        let empty = store.held(&owner, now).await.unwrap();
        assert_eq!((empty.bytes, empty.jobs), (0, 0));

        let first = reservation(&owner, 100, soon);
        assert!(
            store
                .add_if_unchanged(&first, empty.version, now)
                .await
                .unwrap()
        );
        // A check made before that addition is stale now.
        let stale = reservation(&owner, 50, soon);
        assert!(
            !store
                .add_if_unchanged(&stale, empty.version, now)
                .await
                .unwrap()
        );
        let held = store.held(&owner, now).await.unwrap();
        assert_eq!((held.bytes, held.jobs), (100, 1));
        assert_ne!(held.version, empty.version);
        assert!(
            store
                .add_if_unchanged(&stale, held.version, now)
                .await
                .unwrap()
        );
        assert_eq!(store.held(&owner, now).await.unwrap().bytes, 150);
        assert_eq!(
            store.held(&someone(), now).await.unwrap().bytes,
            0,
            "owners are apart"
        );

        // Released, it counts no more; released twice is no error.
        store.release(&owner, first.id).await.unwrap();
        store.release(&owner, first.id).await.unwrap();
        let after = store.held(&owner, now).await.unwrap();
        assert_eq!((after.bytes, after.jobs), (50, 1));
        assert_ne!(after.version, held.version, "a release moves the version");
        // Run out, it counts no more either.
        let later = soon.plus(Duration::from_secs(1));
        assert_eq!(store.held(&owner, later).await.unwrap().jobs, 0);
        // A removed account's reservations go with it.
        let v = store.held(&owner, now).await.unwrap().version;
        store
            .add_if_unchanged(&reservation(&owner, 7, soon), v, now)
            .await
            .unwrap();
        store.forget(&owner).await.unwrap();
        assert_eq!(store.held(&owner, now).await.unwrap().bytes, 0);
    }
);

/// Twelve admissions of one owner at once, spread over `nodes`, with room
/// for `limit` jobs: the ones admitted (holding their room) and refused.
async fn admit_at_once(nodes: &[Backends], settings: &Settings, limit: u64) -> (Vec<Room>, usize) {
    let owner = Arc::new(someone());
    let settings = Arc::new(settings.clone());
    let mut racing = Vec::new();
    for n in 0..12 {
        let backends = nodes[n % nodes.len()].clone();
        let (owner, settings) = (owner.clone(), settings.clone());
        racing.push(tokio::spawn(async move {
            let rules = Rules {
                storage: &settings.storage,
                http: &settings.http,
            };
            let limits = UserLimits {
                quota_bytes: Some(0),
                max_active_jobs: Some(limit),
            };
            admit(&backends, &rules, &owner, limits, Some(0)).await
        }));
    }
    let (mut admitted, mut refused) = (Vec::new(), 0);
    for admission in racing {
        match admission.await.unwrap() {
            Ok(room) => admitted.push(room),
            Err(Refused::TooManyJobs { .. } | Refused::Busy) => refused += 1,
            Err(other) => panic!("admission failed: {other}"),
        }
    }
    (admitted, refused)
}

conformance!(
    concurrent_admissions_never_together_exceed_the_active_job_limit,
    |stores: Stores| async move {
        let mut nodes = vec![(*stores).clone()];
        nodes.extend(stores.second_node().await);
        let (admitted, refused) = admit_at_once(&nodes, &stores.settings, 4).await;
        assert_eq!((admitted.len(), refused), (4, 8));
        // Their room given back, the next ones are admitted.
        for room in admitted {
            room.release().await;
        }
        let (admitted, _) = admit_at_once(&nodes, &stores.settings, 4).await;
        assert_eq!(admitted.len(), 4);
    }
);
