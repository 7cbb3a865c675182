//! Tokens that can be revoked: a new password, "log out everywhere" and a
//! disabled account refuse every token issued before, on the node that did
//! it at once and on another node within `auth::REVOCATION_REFRESH` (2 s);
//! while the user directory (MySQL) is away, valid tokens still pass and
//! revoked ones still fail. The web app's session cookie is held to the
//! same (`GET /session` included), and "Log out" ends that one session
//! on every node while the user's others stay.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{Backend, Names, Node, NodeOptions};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

/// `GET /me` with `token`: its status and answer.
async fn me(node: &Node, token: &str) -> (u16, Value) {
    let r = node
        .http
        .get(node.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /me");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(node: &Node, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = node.http.post(node.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect(path);
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn assert_revoked((status, body): (u16, Value)) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "urn:vidaud:problem:token-revoked", "{body}");
}

both_backends!(
    a_new_password_logout_all_and_disabling_revoke_earlier_tokens,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, first) = node.new_user().await;
        let second = node.login(&email, PASSWORD).await.expect("login");
        let (status, account) = me(&node, &first).await;
        assert_eq!(status, 200, "{account}");
        assert_eq!(account["email"], email.as_str());
        assert_eq!(account["usage"]["stored_bytes"], 0);

        // A new password: both earlier tokens go, the answer's works.
        let (status, wrong) = post(
            &node,
            "/me/password",
            &first,
            Some(json!({"current": "not it at all", "new": "battery staple"})),
        )
        .await;
        assert_eq!(status, 401, "{wrong}");
        let (status, fresh) = post(
            &node,
            "/me/password",
            &first,
            Some(json!({"current": PASSWORD, "new": "battery staple"})),
        )
        .await;
        assert_eq!(status, 200, "{fresh}");
        let fresh = fresh["token"].as_str().expect("token").to_owned();
        assert_revoked(me(&node, &first).await);
        assert_revoked(me(&node, &second).await);
        assert_eq!(me(&node, &fresh).await.0, 200);
        assert_eq!(node.login(&email, PASSWORD).await, Err(401));
        let latest = node.login(&email, "battery staple").await.expect("login");

        // Log out everywhere: every token, the caller's too.
        assert_eq!(post(&node, "/me/logout-all", &fresh, None).await.0, 204);
        assert_revoked(me(&node, &fresh).await);
        assert_revoked(me(&node, &latest).await);

        // Disabled by an administrator: no login, no token; enabled again,
        // the tokens from before stay revoked.
        let admin_email = format!("admin-{email}");
        assert_eq!(node.add_user(&admin_email, PASSWORD, true).0, 0);
        let admin = node
            .login(&admin_email, PASSWORD)
            .await
            .expect("admin login");
        let before = node.login(&email, "battery staple").await.expect("login");
        let (status, _) = post(&node, &format!("/users/{email}/disable"), &before, None).await;
        assert_eq!(status, 403, "not an admin");
        let disable = format!("/users/{email}/disable");
        assert_eq!(post(&node, &disable, &admin, None).await.0, 204);
        assert_revoked(me(&node, &before).await);
        assert_eq!(node.login(&email, "battery staple").await, Err(403));
        let enable = format!("/users/{email}/enable");
        assert_eq!(post(&node, &enable, &admin, None).await.0, 204);
        let after = node.login(&email, "battery staple").await.expect("login");
        assert_eq!(me(&node, &after).await.0, 200);
        assert_revoked(me(&node, &before).await);
        let missing = "/users/nobody-here@example.com/disable";
        assert_eq!(post(&node, missing, &admin, None).await.0, 404);

        // The administrator's list shows the account and whether it is
        // disabled; nobody else may list.
        let list = |token: String, cursor: String| {
            let node = &node;
            async move {
                let r = node
                    .http
                    .get(node.url(&format!("/users?limit=500&cursor={cursor}")))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("GET /users");
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        assert_eq!(post(&node, &disable, &admin, None).await.0, 204);
        // The directory may hold other tests' users too: page until found.
        let mut cursor = String::new();
        let listed = loop {
            let (status, page) = list(admin.clone(), cursor.clone()).await;
            assert_eq!(status, 200, "{page}");
            let users = page["users"].as_array().expect("users");
            if let Some(user) = users.iter().find(|u| u["email"] == email.as_str()) {
                break user.clone();
            }
            cursor = page["next_cursor"]
                .as_str()
                .expect("the account is listed before the last page")
                .to_owned();
        };
        assert_eq!(listed["disabled"], true, "{listed}");
        assert_eq!(listed["admin"], false, "{listed}");
        let other = node.new_user().await.1;
        assert_eq!(list(other, String::new()).await.0, 403);
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_on_one_node_is_refused_on_another_within_the_bound() {
    let options = NodeOptions::default().on(Backend::Cluster);
    let names = Names::fresh();
    let a = Node::start_named(names.clone(), options.clone(), true).await;
    let b = Node::start_named(names, options, false).await;
    let mut delays = Vec::new();
    for _ in 0..5 {
        let (_, token) = a.new_user().await;
        // b knows the user (and the token's generation) first.
        assert_eq!(me(&b, &token).await.0, 200);
        assert_eq!(post(&a, "/me/logout-all", &token, None).await.0, 204);
        delays.push(b.until_refused(&token, Duration::from_secs(60)).await);
    }
    delays.sort();
    println!("revocation seen on a second node after {delays:?}");
    // The bound is the refresh (2 s) and a query; allow for a slow machine.
    assert!(
        delays.iter().all(|d| *d < Duration::from_secs(30)),
        "{delays:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_mysql_away_valid_tokens_pass_and_revoked_ones_fail() {
    let mysql = Proxy::start(3306).await;
    let node = Node::start(NodeOptions::default().on(Backend::Cluster).with(
        "VIDAUD_AUTH__MYSQL_URL",
        format!("mysql://root@127.0.0.1:{}/vidaud_test", mysql.port),
    ))
    .await;
    let (_, kept) = node.new_user().await;
    let (_, revoked) = node.new_user().await;
    assert_eq!(post(&node, "/me/logout-all", &revoked, None).await.0, 204);
    assert_revoked(me(&node, &revoked).await);
    assert_eq!(me(&node, &kept).await.0, 200);
    // Long enough for refreshes to fail, and past the window they read.
    mysql.close();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(me(&node, &kept).await.0, 200, "a valid token still passes");
    assert_revoked(me(&node, &revoked).await);
    mysql.open();
}

/// Logs in on the web app's way: the session cookie (`name=value`).
async fn session(node: &Node, email: &str) -> String {
    let (set, _) = node.log_in_session(email, PASSWORD).await;
    set.split(';').next().unwrap_or_default().to_owned()
}

/// `method path` with the session cookie (and its CSRF token, which a
/// change needs): the status and answer.
async fn with_cookie(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> (u16, Value) {
    let csrf = node
        .http
        .get(node.url("/session"))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("GET /session")
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["csrf_token"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let r = node
        .http
        .request(method, node.url(path))
        .header("Cookie", cookie)
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .expect(path);
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Whether the session cookie is refused everywhere it is checked: who is
/// logged in (`GET /session`), and the API routes.
async fn assert_session_refused(node: &Node, cookie: &str, why: &str) {
    for path in ["/session", "/jobs", "/me"] {
        let (status, body) = with_cookie(node, reqwest::Method::GET, path, cookie).await;
        assert_eq!(status, 401, "{why}: GET {path} still answers {body}");
    }
}

async fn assert_session_stands(node: &Node, cookie: &str, why: &str) {
    for path in ["/session", "/jobs", "/me"] {
        let (status, body) = with_cookie(node, reqwest::Method::GET, path, cookie).await;
        assert_eq!(status, 200, "{why}: GET {path}: {body}");
    }
}

both_backends!(
    a_revoked_session_is_logged_out_and_log_out_ends_only_that_session,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let admin_email = format!("{}@example.com", common::unique("admin"));
        assert_eq!(node.add_user(&admin_email, PASSWORD, true).0, 0);
        let admin = node.login(&admin_email, PASSWORD).await.expect("login");

        // Each way an account's tokens are revoked ends its sessions too.
        let (email, token) = node.new_user().await;
        let cookie = session(&node, &email).await;
        assert_session_stands(&node, &cookie, "logged in").await;
        assert_eq!(post(&node, "/me/logout-all", &token, None).await.0, 204);
        assert_session_refused(&node, &cookie, "after logout-all").await;

        let (email, token) = node.new_user().await;
        let cookie = session(&node, &email).await;
        let body = json!({"current": PASSWORD, "new": "another horse"});
        assert_eq!(post(&node, "/me/password", &token, Some(body)).await.0, 200);
        assert_session_refused(&node, &cookie, "after a new password").await;

        let (email, _) = node.new_user().await;
        let cookie = session(&node, &email).await;
        let disable = format!("/users/{email}/disable");
        assert_eq!(post(&node, &disable, &admin, None).await.0, 204);
        assert_session_refused(&node, &cookie, "after a disable").await;

        let (email, _) = node.new_user().await;
        let cookie = session(&node, &email).await;
        let r = node
            .http
            .delete(node.url(&format!("/users/{email}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("DELETE /users");
        assert_eq!(r.status(), 204);
        assert_session_refused(&node, &cookie, "after a delete").await;

        // Log out: that session ends, the user's other session and API
        // token stay.
        let (email, token) = node.new_user().await;
        let leaving = session(&node, &email).await;
        let staying = session(&node, &email).await;
        let (status, _) = with_cookie(&node, reqwest::Method::DELETE, "/session", &leaving).await;
        assert_eq!(status, 204);
        assert_session_refused(&node, &leaving, "after Log out").await;
        assert_session_stands(&node, &staying, "another session of the user").await;
        assert_eq!(me(&node, &token).await.0, 200, "the user's API token");
    }
);

#[tokio::test(flavor = "multi_thread")]
async fn a_logged_out_session_is_refused_on_another_node_within_the_bound() {
    let options = NodeOptions::default().on(Backend::Cluster);
    let names = Names::fresh();
    let a = Node::start_named(names.clone(), options.clone(), true).await;
    let b = Node::start_named(names, options, false).await;
    let (email, _) = a.new_user().await;
    let leaving = session(&a, &email).await;
    let staying = session(&a, &email).await;
    assert_session_stands(&b, &leaving, "known on b").await;
    let (status, _) = with_cookie(&a, reqwest::Method::DELETE, "/session", &leaving).await;
    assert_eq!(status, 204);
    let started = std::time::Instant::now();
    while with_cookie(&b, reqwest::Method::GET, "/session", &leaving)
        .await
        .0
        != 401
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "b never refused it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "a Log out seen on a second node after {:?}",
        started.elapsed()
    );
    assert_session_refused(&b, &leaving, "on b").await;
    assert_session_stands(&b, &staying, "the other session, on b").await;
}

both_backends!(
    the_cli_disables_and_sets_passwords_and_nodes_follow,
    |backend: Backend| async move {
        // Changed by `vidaud user` behind the node's back: the node learns
        // it from the directory at its next refresh, not from a note.
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let (email, token) = node.new_user().await;
        assert_eq!(me(&node, &token).await.0, 200);
        let (code, out, err) = node.user_cli(&["disable", &email], None);
        assert_eq!(code, 0, "{out}{err}");
        let delay = node.until_refused(&token, Duration::from_secs(60)).await;
        println!("{backend:?}: disabled by the CLI, refused after {delay:?}");
        assert_eq!(node.login(&email, PASSWORD).await, Err(403));
        let (code, out, _) = node.user_cli(&["list"], None);
        assert_eq!(code, 0);
        assert!(out.contains(&format!("{email}\tuser\tdisabled")), "{out}");
        assert_eq!(node.user_cli(&["enable", &email], None).0, 0);
        let (code, _, err) = node.user_cli(&["passwd", &email], Some("a whole new one"));
        assert_eq!(code, 0, "{err}");
        let fresh = node.login(&email, "a whole new one").await.expect("login");
        assert_eq!(me(&node, &fresh).await.0, 200);
        assert_eq!(node.user_cli(&["disable", "nobody@example.com"], None).0, 4);
    }
);
