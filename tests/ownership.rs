//! Ownership by a stable user id, not by the e-mail text: data from
//! before ids (owned by e-mail) is carried over to its user's id at
//! start-up; a user removed from the users table by hand loses its tokens,
//! and an account registered later on the same e-mail is a new id that sees
//! nothing of the old one.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Files, Node, NodeOptions, media};
use mongodb::bson::doc;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

async fn get(node: &Node, path: &str, token: &str) -> (u16, Value) {
    let r = node
        .http
        .get(node.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect(path);
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A user with one done job: (email, token, job id).
async fn user_with_a_job(node: &Node) -> (String, String, String) {
    let (email, token) = node.new_user().await;
    let (status, accepted) = node.upload(&token, &media::clip("mp4")).await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().expect("job id").to_owned();
    assert_eq!(node.wait_final(&token, &job_id).await["state"], "done");
    (email, token, job_id)
}

/// Makes `owner`'s data owned by `email` again, and the user id-less, as a
/// database from before user ids holds them (the node is stopped).
async fn as_before_ids(node: &Node, email: &str, owner: &str) {
    match node.options.backend {
        Backend::Embedded => {
            node.sqlite()
                .execute_batch(&format!(
                    "UPDATE jobs SET owner = '{email}', username = '' WHERE owner = '{owner}';
                     UPDATE files SET owner = '{email}' WHERE owner = '{owner}';"
                ))
                .expect("rewrite owners");
        }
        Backend::Cluster => {
            let client = node.mongo().await;
            client
                .database(&node.names.jobs_db)
                .collection::<mongodb::bson::Document>("jobs")
                .update_many(
                    doc! { "owner": owner },
                    doc! { "$set": { "owner": email }, "$unset": { "username": "" } },
                )
                .await
                .expect("rewrite job owners");
            for db in [
                &node.names.videos_db,
                &node.names.mp3s_db,
                &node.names.waveforms_db,
            ] {
                client
                    .database(db)
                    .collection::<mongodb::bson::Document>("fs.files")
                    .update_many(
                        doc! { "metadata.owner": owner },
                        doc! { "$set": { "metadata.owner": email } },
                    )
                    .await
                    .expect("rewrite file owners");
            }
        }
    }
    node.users_sql(&format!(
        "UPDATE users SET user_id = NULL WHERE email = '{email}'"
    ));
}

both_backends!(
    data_owned_by_email_is_carried_over_to_the_user_id_at_start_up,
    |backend: Backend| async move {
        let mut node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token, job_id) = user_with_a_job(&node).await;
        let owner = node.user_id(&token).await;
        let (_, me) = get(&node, "/me", &token).await;
        let stored = me["usage"]["stored_bytes"].as_u64().expect("usage");
        assert!(stored > 0, "{me}");
        node.terminate(Duration::from_secs(20));
        as_before_ids(&node, &email, &owner).await;
        node.restart().await;
        // The user has a new id now; a token naming the old one is refused.
        let (status, _) = get(&node, "/me", &token).await;
        assert_eq!(status, 401, "a token of the old id");
        let fresh = node.login(&email, PASSWORD).await.expect("login");
        let new_owner = node.user_id(&fresh).await;
        assert_ne!(new_owner, owner);
        // The carry-over may still be running (the cluster's waits for MySQL).
        let started = Instant::now();
        loop {
            let (_, jobs) = get(&node, "/jobs", &fresh).await;
            if jobs["jobs"].as_array().is_some_and(|j| j.len() == 1) {
                assert_eq!(jobs["jobs"][0]["job_id"], job_id.as_str());
                assert_eq!(jobs["jobs"][0]["owner"], email.as_str());
                assert_eq!(jobs["jobs"][0]["owner_id"], new_owner.as_str());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not carried over: {jobs}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, me) = get(&node, "/me", &fresh).await;
        assert_eq!(me["usage"]["stored_bytes"], stored, "{me}");
        let audio = node
            .http
            .get(node.url(&format!("/jobs/{job_id}/audio")))
            .bearer_auth(&fresh)
            .send()
            .await
            .expect("audio");
        assert_eq!(audio.status(), 200);
        assert!(
            node.has_file(Files::Audio, &me_audio(&node, &fresh, &job_id).await)
                .await
        );
    }
);

/// The audio file id of a done job.
async fn me_audio(node: &Node, token: &str, job_id: &str) -> String {
    let (_, job) = node.job(token, job_id).await;
    job["mp3_fid"].as_str().expect("mp3_fid").to_owned()
}

both_backends!(
    a_user_removed_by_hand_loses_its_tokens_and_its_email_starts_afresh,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token, job_id) = user_with_a_job(&node).await;
        node.users_sql(&format!("DELETE FROM users WHERE email = '{email}'"));

        // Refused within the full reload of the revocation cache (60 s).
        let took = node.until_refused(&token, Duration::from_secs(90)).await;
        eprintln!("a user removed by hand was refused after {took:?}");

        node.register(&email, PASSWORD).await;
        let fresh = node.login(&email, PASSWORD).await.expect("login");
        let (_, jobs) = get(&node, "/jobs", &fresh).await;
        assert_eq!(jobs["jobs"], json!([]), "{jobs}");
        let (status, _) = get(&node, &format!("/jobs/{job_id}"), &fresh).await;
        assert_eq!(status, 404);
        let (_, me) = get(&node, "/me", &fresh).await;
        assert_eq!(me["usage"], json!({"stored_bytes": 0, "active_jobs": 0}));
        let (status, _) = get(&node, "/me", &token).await;
        assert_eq!(status, 401, "the old token reaches the new account");
    }
);
