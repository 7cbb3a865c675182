//! Auth hardening against a real MySQL: argon2id storage and the bcrypt
//! migration, pinned algorithm and issuer/audience checks, rate limits,
//! closed registration with `vidaud user add`, and password rules.

mod common;

use common::{Backend, JWT_SECRET, Node, NodeOptions, unique};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

const TEST_DB: &str = "mysql://root@127.0.0.1:3306/vidaud_test";

async fn stored_hash(email: &str) -> String {
    let pool = mysql_async::Pool::new(TEST_DB);
    let mut conn = pool.get_conn().await.expect("mysql");
    let hash: Option<String> = conn
        .exec_first("SELECT password FROM users WHERE email = ?", (email,))
        .await
        .expect("select");
    drop(conn);
    pool.disconnect().await.expect("disconnect");
    hash.expect("a row")
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_bcrypt_rows_log_in_and_become_argon2id() {
    let node = Node::start(NodeOptions::default()).await;
    let email = format!("{}@example.com", unique("legacy"));
    // A row as the reference's auth service wrote it (Python bcrypt, "password").
    let hash = "$2b$04$4HKnQ1QcyN4My/jy8gu/su/1MA3ZmJu/4FIUUDIuTFxaoeanwTm2e";
    let pool = mysql_async::Pool::new(TEST_DB);
    let mut conn = pool.get_conn().await.expect("mysql");
    conn.exec_drop(
        "INSERT INTO users (email, password) VALUES (?, ?)",
        (&email, hash),
    )
    .await
    .expect("insert reference row");
    drop(conn);
    pool.disconnect().await.expect("disconnect");

    assert_eq!(node.login(&email, "Password").await, Err(401));
    let token = node
        .login(&email, "password")
        .await
        .expect("reference user logs in");
    assert_eq!(token.split('.').count(), 3, "a JWT as the body");
    let rehashed = stored_hash(&email).await;
    assert!(rehashed.starts_with("$argon2id$"), "{rehashed}");
    node.login(&email, "password")
        .await
        .expect("logs in with the new hash");

    // New accounts are argon2id from the start.
    let (fresh, _) = node.new_user().await;
    assert!(stored_hash(&fresh).await.starts_with("$argon2id$"));
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn sign(alg: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

both_backends!(
    only_hs256_tokens_of_this_issuer_and_audience_pass,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_AUTH__JWT_ISSUER", "vidaud-test")
                .with("VIDAUD_AUTH__JWT_AUDIENCE", "vidaud-api"),
        )
        .await;
        let (email, token) = node.new_user().await;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = |extra: Value| {
            let mut c = json!({
                "username": email, "iat": now, "exp": now + 600, "admin": true,
                "iss": "vidaud-test", "aud": "vidaud-api",
            });
            for (k, v) in extra.as_object().expect("object") {
                c[k] = v.clone();
            }
            c
        };
        let hs256 = Algorithm::HS256;
        let status = |t: String| {
            let node = &node;
            async move {
                let r = node
                    .http
                    .post(node.url("/validate"))
                    .bearer_auth(t)
                    .send()
                    .await
                    .expect("validate");
                let code = r.status().as_u16();
                let problem = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/problem+json");
                (code, problem)
            }
        };
        assert_eq!(status(token).await, (200, false), "the node's own token");
        assert_eq!(
            status(sign(hs256, &claims(json!({})), JWT_SECRET)).await.0,
            200,
            "a correct forged-by-the-test token passes (same secret)"
        );
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims(json!({})))
        );
        for (what, bad) in [
            ("alg none", none),
            (
                "alg HS512",
                sign(Algorithm::HS512, &claims(json!({})), JWT_SECRET),
            ),
            (
                "wrong signature",
                sign(
                    hs256,
                    &claims(json!({})),
                    "another-secret-that-is-long-enough-000000",
                ),
            ),
            (
                "expired",
                sign(
                    hs256,
                    &claims(json!({"iat": now - 7200, "exp": now - 3600})),
                    JWT_SECRET,
                ),
            ),
            (
                "not yet valid",
                sign(hs256, &claims(json!({"nbf": now + 3600})), JWT_SECRET),
            ),
            (
                "wrong audience",
                sign(hs256, &claims(json!({"aud": "other-app"})), JWT_SECRET),
            ),
            (
                "wrong issuer",
                sign(hs256, &claims(json!({"iss": "elsewhere"})), JWT_SECRET),
            ),
            (
                "no audience",
                sign(
                    hs256,
                    &json!({"username": email, "iat": now, "exp": now + 600, "admin": true, "iss": "vidaud-test"}),
                    JWT_SECRET,
                ),
            ),
        ] {
            assert_eq!(status(bad).await, (401, true), "{what}");
        }
    }
);

both_backends!(
    password_guessing_is_rate_limited_per_ip_and_per_account,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", 8)
                .with("VIDAUD_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", 3),
        )
        .await;
        let (email, _) = node.new_user().await; // 2 attempts from this IP
        // Per account: 3 wrong guesses, then 429 even for the right password.
        for _ in 0..2 {
            assert_eq!(node.login(&email, "wrong guess").await, Err(401));
        }
        let r = node
            .http
            .post(node.url("/login"))
            .basic_auth(&email, Some("correct horse"))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 429);
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["type"], "urn:vidaud:problem:rate-limited", "{body}");
        // Per IP: other accounts from the same address run out too.
        let mut codes = Vec::new();
        for i in 0..6 {
            let other = format!("nobody{i}-{}@example.com", unique("x"));
            codes.push(node.login(&other, "whatever1").await.err().unwrap_or(200));
        }
        assert!(codes.contains(&401) && codes.ends_with(&[429]), "{codes:?}");
        // Token-authenticated requests are not limited.
        let r = node
            .http
            .post(node.url("/register"))
            .json(&json!({"email": "late@example.com", "password": "long enough"}))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 429, "register shares the per-IP allowance");
    }
);

both_backends!(
    closed_registration_and_user_add,
    |backend: Backend| async move {
        let node = Node::start(
            NodeOptions::default()
                .on(backend)
                .with("VIDAUD_AUTH__REGISTRATION_OPEN", false),
        )
        .await;
        let r = node
            .http
            .post(node.url("/register"))
            .json(&json!({"email": "someone@example.com", "password": "long enough"}))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 403);
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["type"], "urn:vidaud:problem:registration-closed");

        let add = |email: &str, password: &str, admin: bool| node.add_user(email, password, admin);
        let admin = format!("{}@example.com", unique("admin"));
        assert_eq!(add(&admin, "a good passphrase", true).0, 0);
        let (code, stderr) = add(&admin, "a good passphrase", false);
        assert_eq!(code, 3, "exists already: {stderr}");
        let (code, stderr) = add("weak@example.com", "short", false);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("at least 8"), "{stderr}");

        let token = node
            .login(&admin, "a good passphrase")
            .await
            .expect("the added user logs in");
        let claims: Value = node
            .http
            .post(node.url("/validate"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("validate")
            .json()
            .await
            .expect("claims");
        assert_eq!(claims["admin"], true);
    }
);

both_backends!(
    weak_passwords_are_refused_with_the_rule,
    |backend: Backend| async move {
        let node = Node::start(NodeOptions::default().on(backend)).await;
        let email = format!("{}@example.com", unique("rules"));
        for (password, says) in [
            ("short", "at least 8"),
            ("tab\there1234", "control characters"),
            (email.as_str(), "e-mail"),
        ] {
            let r = node
                .http
                .post(node.url("/register"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .expect("register");
            assert_eq!(r.status(), 422, "{password}");
            let body: Value = r.json().await.expect("problem");
            assert!(
                body["detail"].as_str().is_some_and(|d| d.contains(says)),
                "{password}: {body}"
            );
        }
    }
);
