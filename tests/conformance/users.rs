//! `UserDirectory`: accounts by e-mail with a stable id, token generations
//! that only go up (a new password, a revocation, a deletion and a new
//! account on the same e-mail), limits, the change feed every node reads,
//! and sessions ended one at a time.

use std::time::Duration;

use vidaud_actors::backends::{EndedSession, User, UserLimits};
use vidaud_actors::domain::{Timestamp, UserId};

use crate::common;
use crate::conformance;
use crate::harness::Stores;

fn user(email: &str) -> User {
    User {
        id: UserId::new(),
        email: email.into(),
        password_hash: "$argon2id$first".into(),
        ..User::default()
    }
}

conformance!(
    an_account_keeps_its_id_and_its_generation_only_goes_up,
    |stores: Stores| async move {
        let users = stores.users.as_ref();
        let email = format!("{}@example.com", common::unique("u"));
        let first = user(&email);
        assert!(users.create(&first).await.unwrap());
        assert!(
            !users.create(&user(&email)).await.unwrap(),
            "the e-mail is taken"
        );
        let found = users.find(&email).await.unwrap().unwrap();
        assert_eq!(
            (found.id, found.admin, found.disabled),
            (first.id, false, false)
        );
        assert_eq!(
            users.find_by_id(first.id).await.unwrap().unwrap().email,
            email
        );
        let g0 = found.generation;

        // A re-hash keeps tokens; a new password revokes them.
        users
            .set_password(&email, "$argon2id$rehashed")
            .await
            .unwrap();
        let rehashed = users.find(&email).await.unwrap().unwrap();
        assert_eq!(
            (rehashed.password_hash.as_str(), rehashed.generation),
            ("$argon2id$rehashed", g0)
        );
        assert!(
            users
                .change_password(&email, "$argon2id$second")
                .await
                .unwrap()
        );
        let g1 = users.find(&email).await.unwrap().unwrap().generation;
        assert!(g1 > g0);
        // Revoked and disabled, then enabled: up each time.
        assert!(users.revoke(&email, Some(true)).await.unwrap());
        let disabled = users.find(&email).await.unwrap().unwrap();
        assert!(disabled.disabled && disabled.generation > g1);
        assert!(users.revoke(&email, Some(false)).await.unwrap());
        let enabled = users.find(&email).await.unwrap().unwrap();
        assert!(!enabled.disabled && enabled.generation > disabled.generation);
        // Limits are set without revoking anything.
        let limits = UserLimits {
            quota_bytes: Some(1000),
            max_active_jobs: Some(3),
        };
        assert!(users.set_limits(&email, limits).await.unwrap());
        let limited = users.find(&email).await.unwrap().unwrap();
        assert_eq!(
            (limited.limits, limited.generation),
            (limits, enabled.generation)
        );

        // Deleted: a tombstone, found by nobody but the token checks.
        assert!(users.delete(&email).await.unwrap());
        assert!(!users.delete(&email).await.unwrap(), "deleted once");
        assert!(!users.change_password(&email, "x").await.unwrap());
        assert!(!users.set_limits(&email, limits).await.unwrap());
        let tombstone = users.find_by_id(first.id).await.unwrap();
        assert!(
            tombstone
                .as_ref()
                .is_none_or(|t| t.deleted && t.password_hash.is_empty()),
            "{tombstone:?}"
        );
        // A new account on that e-mail is another id, past every old token.
        let second = user(&email);
        assert!(users.create(&second).await.unwrap());
        let again = users.find(&email).await.unwrap().unwrap();
        assert_eq!(again.id, second.id);
        assert_ne!(again.id, first.id);
        assert!(again.generation > enabled.generation);
        assert!(!again.deleted && again.limits == UserLimits::default());

        assert!(!users.revoke("nobody@example.com", None).await.unwrap());
    }
);

conformance!(
    every_change_is_in_the_feed_and_the_pages_are_ordered,
    |stores: Stores| async move {
        let users = stores.users.as_ref();
        let prefix = common::unique("p");
        let emails: Vec<String> = ["c", "a", "b"]
            .iter()
            .map(|n| format!("{prefix}-{n}@example.com"))
            .collect();
        for email in &emails {
            assert!(users.create(&user(email)).await.unwrap());
        }
        users.revoke(&emails[0], None).await.unwrap();
        users
            .change_password(&emails[1], "$argon2id$new")
            .await
            .unwrap();
        users.delete(&emails[2]).await.unwrap();
        let changed = users.changed_within(Duration::from_secs(60)).await.unwrap();
        for email in &emails {
            assert!(
                changed.iter().any(|u| &u.email == email),
                "{email} missing from the feed"
            );
        }
        // Every user by e-mail, tombstones too, a page at a time.
        let first = users.page(Some(&prefix), 2).await.unwrap();
        let names: Vec<&str> = first.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(names, [&emails[1], &emails[2]]);
        assert!(first[1].deleted);
        let next = users.page(Some(&first[1].email), 1).await.unwrap();
        assert_eq!(next[0].email, emails[0]);
    }
);

conformance!(
    a_session_is_ended_alone_and_forgotten_once_expired,
    |stores: Stores| async move {
        let users = stores.users.as_ref();
        let id = UserId::new();
        let session = |name: &str, expires| EndedSession {
            session: format!("{}-{name}", common::unique("s")),
            user: id,
            expires,
        };
        let live = session("live", Timestamp::now().plus(Duration::from_secs(3600)));
        users.end_session(&live).await.unwrap();
        users.end_session(&live).await.unwrap();
        let ended = users.ended_sessions(None).await.unwrap();
        assert_eq!(ended.iter().filter(|e| **e == live).count(), 1, "once");
        let recent = users
            .ended_sessions(Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(recent.contains(&live));
        // One already expired needs no ending: it is not kept.
        let expired = session("expired", Timestamp::now().minus(Duration::from_secs(1)));
        users.end_session(&expired).await.unwrap();
        let ended = users.ended_sessions(None).await.unwrap();
        assert!(!ended.contains(&expired), "an expired session is forgotten");
    }
);
