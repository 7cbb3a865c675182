//! Signed download links, on both backends: the link in a real delivered
//! mail (read from the SMTP sink) downloads the audio with plain curl and
//! no token, HEAD and Range included; every alteration, an expired link and
//! one signed with a retired key are refused with a problem, never the
//! file; keys rotate (a new key signs, the old one still verifies until
//! dropped); the link dies with its job; no link reaches the log.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Backend, Node, NodeOptions, download_link_in, mails_to, media};
use serde_json::{Value, json};

const K1: &str = "k1:one-link-key-one-link-key-one-link-key";
const K2: &str = "k2:two-link-key-two-link-key-two-link-key";

fn keys(keys: &[&str]) -> String {
    serde_json::to_string(keys).expect("json")
}

/// curl with no credentials at all: status code and body.
fn curl(args: &[&str], link: &str) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(link)
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("status");
    (code, std::fs::read(&body).unwrap_or_default())
}

/// A fresh link from `POST /jobs/{id}/link`: `{url, expires_at}`.
async fn fresh(node: &Node, token: &str, job: &str, expires_in: Option<u64>) -> Value {
    let request = node
        .http
        .post(node.url(&format!("/jobs/{job}/link")))
        .bearer_auth(token);
    let request = match expires_in {
        Some(secs) => request.json(&json!({"expires_in": secs})),
        None => request,
    };
    let answer = request.send().await.expect("link");
    assert_eq!(answer.status(), 200);
    answer.json().await.expect("link json")
}

fn problem(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("problem details")
}

both_backends!(
    a_mailed_link_downloads_without_a_token_until_altered_expired_retired_or_deleted,
    |backend: Backend| async move {
        let mut node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_AUTH__LINK_KEYS", keys(&[K1])),
        )
        .await;
        let (email, token) = node.new_user().await;
        let ids = node.upload_all(&token, &[media::clip("mp4")]).await;
        let job = node.wait_final(&token, &ids[0]).await;
        assert_eq!(job["state"], "done", "{job}");
        let fid = job["mp3_fid"].as_str().expect("fid").to_owned();
        let expected = node
            .download(&token, &fid)
            .await
            .bytes()
            .await
            .expect("audio");

        let mails = mails_to(&email, 1).await;
        assert_eq!(mails.len(), 1, "one mail");
        let link = download_link_in(&mails[0]).expect("a download link in the mail");
        assert!(link.starts_with(&node.url("/download?fid=")), "{link}");
        assert!(link.contains("&kid=k1&"), "{link}");

        // Plain curl, no token: the file; HEAD and a range too.
        let (code, body) = curl(&[], &link);
        assert_eq!(code, 200);
        assert_eq!(body, expected.as_ref());
        let (code, _) = curl(&["-I"], &link);
        assert_eq!(code, 200);
        let (code, body) = curl(&["-H", "Range: bytes=0-9"], &link);
        assert_eq!((code, body.len()), (206, 10));
        assert_eq!(body, expected[..10]);

        // Every alteration is refused, with a problem and not the file.
        let altered = |from: &str, to: &str| {
            assert!(link.contains(from), "{link} has {from}");
            link.replacen(from, to, 1)
        };
        let sig = link.split("&sig=").nth(1).expect("sig").to_owned();
        let flipped = format!(
            "{}{}",
            if sig.starts_with('A') { "B" } else { "A" },
            &sig[1..]
        );
        let other_fid = format!(
            "{}{}",
            &fid[..23],
            if fid.ends_with('0') { "1" } else { "0" }
        );
        let exp = link
            .split("&exp=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("exp");
        for tampered in [
            altered(&sig, &flipped),
            altered(&fid, &other_fid),
            altered(
                &format!("exp={exp}"),
                &format!("exp={}", exp.parse::<u64>().expect("n") + 86_400),
            ),
            altered("kid=k1", "kid=k2"),
            altered(&format!("&sig={sig}"), "&sig="),
        ] {
            let (code, body) = curl(&[], &tampered);
            assert_eq!(code, 403, "{tampered}");
            assert_eq!(problem(&body)["type"], "urn:vidaud:problem:link-invalid");
        }
        let (code, _) = curl(&[], &altered(&format!("&exp={exp}&kid=k1&sig={sig}"), ""));
        assert_eq!(code, 401, "without a proof the link is a plain download");

        // A fresh link for the owner, absolute; one asked to lapse soon does.
        let week = fresh(&node, &token, &ids[0], None).await;
        assert!(
            week["expires_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{week}"
        );
        let short = fresh(&node, &token, &ids[0], Some(1)).await;
        let short = short["url"].as_str().expect("url").to_owned();
        assert_eq!(curl(&[], &short).0, 200);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (code, body) = curl(&[], &short);
        assert_eq!(code, 403);
        assert!(
            problem(&body)["detail"]
                .as_str()
                .is_some_and(|d| d.contains("expired"))
        );
        let refused = node
            .http
            .post(node.url(&format!("/jobs/{}/link", ids[0])))
            .bearer_auth(&token)
            .json(&json!({"expires_in": 0}))
            .send()
            .await
            .expect("link");
        assert_eq!(refused.status(), 422);

        // Rotation: k2 signs, k1 still verifies; then k1 is dropped.
        node.options = node
            .options
            .clone()
            .with("VIDAUD_AUTH__LINK_KEYS", keys(&[K2, K1]));
        node.restart().await;
        assert_eq!(curl(&[], &link).0, 200, "the old key still verifies");
        let rotated = fresh(&node, &token, &ids[0], None).await;
        let rotated = rotated["url"].as_str().expect("url").to_owned();
        assert!(rotated.contains("&kid=k2&"), "{rotated}");
        node.options = node
            .options
            .clone()
            .with("VIDAUD_AUTH__LINK_KEYS", keys(&[K2]));
        node.restart().await;
        let (code, body) = curl(&[], &link);
        assert_eq!(code, 403);
        assert!(
            problem(&body)["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no longer in use")),
            "a retired key's link says so"
        );
        assert_eq!(curl(&[], &rotated).0, 200);

        // The link dies with its job.
        assert_eq!(node.delete_job(&token, &ids[0]).await, 204);
        let (code, body) = curl(&[], &rotated);
        assert_eq!(code, 404);
        assert_eq!(problem(&body)["type"], "urn:vidaud:problem:not-found");

        let log = std::fs::read_to_string(&node.log).expect("log");
        let rotated_sig = rotated.split("&sig=").nth(1).expect("sig");
        assert!(
            !log.contains(&sig) && !log.contains(rotated_sig),
            "a link in the log"
        );
    }
);
