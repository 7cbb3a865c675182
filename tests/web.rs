//! The web app in a real browser, on both backends: Debian's Chromium,
//! driven by Playwright (`tests/web/app_flow.mjs`, playwright-core from
//! npm; `scripts/test` installs both), walks a person's way through it and
//! saves a screenshot of each screen under
//! `target/screenshots/web-<backend>/` (not committed). What the browser saw
//! is then checked against the server: the downloaded file is audio, the
//! deleted job is gone, the retried one was retried, the uploads cut off by
//! offline mode and a reload resumed instead of starting over.
//!
//! Also, without a browser: the page's security headers, and that the
//! session cookie changes nothing without its CSRF token.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Backend, Node, NodeOptions, media, unique};
use serde_json::{Value, json};

fn chromium() -> &'static str {
    "/usr/bin/chromium"
}

fn screenshots(backend: Backend) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(format!("web-{}", backend.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Runs the browser walk; what it saw (its one JSON line).
async fn walk(config: Value) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    let run = tokio::process::Command::new("node")
        .arg(dir.join("app_flow.mjs"))
        .arg(config.to_string())
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the browser walk did not finish within 600 s")
        .expect("run node (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser walk failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the walk's JSON line")
}

both_backends!(
    a_person_uploads_watches_downloads_deletes_retries_and_resumes_in_a_browser,
    |backend: Backend| async move {
        // Holds of a request cut off mid-body lapse after
        // `body_idle_secs` + 5 s: keep that short so the page resumes soon.
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_HTTP__BODY_IDLE_SECS", 5),
        )
        .await;
        let email = format!("{}@example.com", unique("web"));
        let password = "a browser passphrase";
        let admin_email = format!("{}@example.com", unique("webadmin"));
        let admin_password = "an admin passphrase";
        let account_email = format!("{}@example.com", unique("webaccount"));
        assert_eq!(node.add_user(&admin_email, admin_password, true).0, 0);
        let files = tempfile::tempdir().expect("tempdir");
        let first = media::named_copy("mp4", "holiday clip.mp4", files.path());
        let second = media::named_copy("webm", "talk.webm", files.path());
        let broken = media::named_copy("random", "broken.mp4", files.path());
        let big = media::big_video(200_000_000);
        let downloads = tempfile::tempdir().expect("tempdir");
        let shots = screenshots(backend);

        let seen = walk(json!({
            "url": node.url("/"),
            "chromium": chromium(),
            "email": email,
            "password": password,
            "admin_email": admin_email,
            "admin_password": admin_password,
            "account_email": account_email,
            "account_password": "a first passphrase",
            "new_password": "a second passphrase",
            "files": {"first": first, "second": second, "broken": broken, "big": big},
            "screenshots": shots,
            "downloads": downloads.path(),
        }))
        .await;
        println!("{}", serde_json::to_string_pretty(&seen).expect("json"));
        assert_eq!(
            seen["problems"],
            json!([]),
            "script or CSP errors on the page"
        );

        // The session: a cookie no script can read, sent to this site only.
        let cookie = &seen["cookie"];
        assert_eq!(cookie["httpOnly"], true, "{cookie}");
        assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
        assert_eq!(seen["script_sees_cookie"], false);
        assert_eq!(seen["wrong_password"], "Wrong e-mail or password.");

        // Both jobs reached done with the page never reloaded.
        assert_eq!(seen["reloads_while_waiting"], 0);

        // The download is the chosen format (Opus in Ogg), and decodes.
        assert_eq!(seen["downloaded_magic"], "OggS");
        assert!(
            seen["waveforms_drawn"].as_u64() >= Some(1),
            "done jobs show their waveform: {seen}"
        );
        let downloaded = PathBuf::from(seen["downloaded"].as_str().expect("path"));
        media::assert_decodes(&downloaded);
        assert!(
            downloaded.extension().is_some_and(|e| e == "opus"),
            "{downloaded:?}"
        );

        let token = node.login(&email, password).await.expect("log in");
        let deleted = seen["deleted"].as_str().expect("deleted job");
        assert_eq!(node.job(&token, deleted).await.0, 404);
        let retried = node
            .job(&token, seen["retried"].as_str().expect("retried job"))
            .await
            .1;
        assert_eq!(retried["retries"], 1, "{retried}");
        assert_eq!(retried["state"], "failed", "{retried}");
        assert!(
            !seen["failure_shown"].as_str().unwrap_or("").is_empty(),
            "{seen}"
        );
        assert!(
            seen["option_refused"]
                .as_str()
                .is_some_and(|m| m.contains("start option")),
            "{seen}"
        );

        // Cut off (offline, then a reload), each upload resumed where the
        // server had got to: exactly one request began at offset 0, and at
        // most the chunks in flight at the cut were sent again.
        for cut in ["offline", "reload"] {
            let upload = &seen[cut];
            assert_eq!(upload["from_zero"], 1, "{cut}: {upload}");
            assert!(upload["resumed_at"].as_u64() > Some(0), "{cut}: {upload}");
            assert!(
                upload["chunks_sent_again"].as_u64() <= Some(2),
                "{cut}: {upload}"
            );
        }

        // Keyboard only: reached the file picker, and the focused Download
        // link shows its focus.
        assert_eq!(seen["keyboard"]["input_reached"], "files");
        assert_ne!(seen["keyboard"]["download_focus_outline"], "none");

        assert_eq!(seen["admin"]["title"], "Everyone's jobs");
        assert!(
            seen["admin"]["owners"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o == email.as_str())),
            "{seen}"
        );
        let phone = &seen["phone"];
        assert_eq!(
            phone["layout_width"], 390,
            "laid out at the phone's width: {phone}"
        );
        assert!(
            phone["scroll_width"].as_u64() <= phone["layout_width"].as_u64(),
            "no sideways scrolling at a phone's width: {phone}"
        );
        // The account page: who, a new password (this session goes on, the
        // others end), log out everywhere, delete (with the password).
        let account = &seen["account"];
        assert_eq!(account["email"], account_email.as_str(), "{account}");
        assert_eq!(account["focused"], "account-title", "{account}");
        assert_eq!(
            account["wrong_current"], "That is not your password.",
            "{account}"
        );
        assert_eq!(account["status_after_change"], 200, "{account}");
        assert_eq!(account["status_after_logout_all"], 401, "{account}");
        assert_eq!(
            account["wrong_delete"], "That is not your password.",
            "{account}"
        );
        assert_eq!(account["status_after_delete"], 401, "{account}");
        assert_eq!(account["login_after_delete"], "Wrong e-mail or password.");
        assert_eq!(
            node.login(&account_email, "a second passphrase").await,
            Err(401),
            "the account is gone"
        );
        for shot in seen["screenshots"].as_array().expect("screenshots") {
            let file = shot["file"].as_str().expect("file");
            assert!(Path::new(file).exists(), "{file}");
        }
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn the_page_comes_from_the_binary_with_a_strict_policy() {
    let node = Node::start(NodeOptions::default().on(Backend::Embedded)).await;
    let page = node.http.get(node.url("/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let policy = headers["content-security-policy"].to_str().expect("csp");
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(rule), "{policy}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "another host named"
    );
    let etag = headers["etag"].clone();
    let again = node
        .http
        .get(node.url("/app/app.js"))
        .send()
        .await
        .expect("script");
    assert_eq!(again.status(), 200);
    let cached = node
        .http
        .get(node.url("/"))
        .header("If-None-Match", etag)
        .send()
        .await
        .expect("revalidate");
    assert_eq!(cached.status(), 304);
    assert_eq!(
        node.http
            .get(node.url("/app/nothing.js"))
            .send()
            .await
            .expect("missing")
            .status(),
        404
    );
}

both_backends!(
    the_session_cookie_changes_nothing_without_its_csrf_token,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token) = node.new_user().await;
        let password = "correct horse";
        let ids = node.upload_all(&token, &[media::clip("tone")]).await;
        node.wait_final(&token, &ids[0]).await;

        let (set, view) = node.log_in_session(&email, password).await;
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
        let cookie = set.split(';').next().expect("pair").to_owned();
        let csrf = view["csrf_token"].as_str().expect("csrf").to_owned();
        assert_eq!(view["username"], email.as_str());

        // Reading works with the cookie alone...
        let jobs = node
            .http
            .get(node.url("/jobs"))
            .header("Cookie", &cookie)
            .send()
            .await
            .expect("jobs");
        assert_eq!(jobs.status(), 200);
        // ...changing needs the token too.
        let delete = |csrf: Option<&str>| {
            let mut request = node
                .http
                .delete(node.url(&format!("/jobs/{}", ids[0])))
                .header("Cookie", &cookie);
            if let Some(csrf) = csrf {
                request = request.header("X-CSRF-Token", csrf);
            }
            request.send()
        };
        let refused = delete(None).await.expect("delete");
        assert_eq!(refused.status(), 403);
        let problem: Value = refused.json().await.expect("problem");
        assert_eq!(problem["type"], "urn:vidaud:problem:csrf-rejected");
        assert_eq!(
            delete(Some("0123456789abcdef0123456789abcdef"))
                .await
                .expect("delete")
                .status(),
            403
        );
        assert_eq!(node.job(&token, &ids[0]).await.0, 200, "still there");
        assert_eq!(delete(Some(&csrf)).await.expect("delete").status(), 204);

        // Logging out clears the cookie.
        let out = node
            .http
            .delete(node.url("/session"))
            .header("Cookie", &cookie)
            .send()
            .await
            .expect("log out");
        assert_eq!(out.status(), 204);
        assert!(
            out.headers()["set-cookie"]
                .to_str()
                .expect("cookie")
                .contains("Max-Age=0")
        );
    }
);
