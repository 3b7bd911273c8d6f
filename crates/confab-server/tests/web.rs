//! The browser client's server side (issue 20): `GET /` and `/app/*` serve
//! the embedded page and every file of `confab-js` exactly as they are in the
//! repository, each with the strict Content-Security-Policy; the dev sign-in
//! exists only while it is on, and refuses what a sloppy or hostile client
//! sends it. The page itself is tested in Chromium (`tests/browser/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;
use confab_server::config::DevLogin;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `GET path` on the server, anonymous: status, headers, body.
async fn get(server: &TestServer, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(format!("{}{path}", server.base))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn the_page_and_every_library_file_are_served_with_a_strict_csp() {
    let server = TestServer::start().await;
    let (status, headers, body) = get(&server, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(body.contains("app/app.js"), "{body}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp} lacks {rule}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // Every file of the library and the page, byte for byte, as JavaScript.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for (dir, prefix) in [
        ("clients/js/src", "confab/"),
        ("crates/confab-server/web", ""),
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                files.push((format!("/app/{prefix}{name}"), path));
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    for (url, path) in files {
        let (status, headers, body) = get(&server, &url).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{url} is not served: add it to web.rs"
        );
        assert_eq!(body, std::fs::read_to_string(&path).unwrap(), "{url}");
        assert!(headers.contains_key("content-security-policy"), "{url}");
        if url.ends_with(".js") {
            assert_eq!(
                headers["content-type"], "text/javascript; charset=utf-8",
                "{url}"
            );
        }
    }
    // Nothing else: no other path, no way out of the embedded set.
    for path in [
        "/app/",
        "/app/missing.js",
        "/app/../Cargo.toml",
        "/app/%2e%2e/Cargo.toml",
        "/app/confab/../../../../etc/passwd",
        "/app//etc/passwd",
        "/index.html",
    ] {
        let (status, _, body) = get(&server, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_dev_sign_in_gives_a_token_for_a_name() {
    // A test server generated its secret and listens on loopback: on.
    let server = TestServer::start().await;
    let (status, body) = server.anonymous_api().get("/api/v1/dev/login").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"dev_login": true}));
    let (status, body) = server
        .anonymous_api()
        .post("/api/v1/dev/login", json!({"name": "  Jean-Luc Picard "}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "jean-luc-picard");
    assert_eq!(body["expires_in"], 86400);
    let token = body["token"].as_str().unwrap();
    let (status, me) = server.api_with_token(token).get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], "jean-luc-picard");
    assert_eq!(me["name"], "Jean-Luc Picard");
    assert_eq!(me["role"], "member", "no role claim: never an admin");
    // An explicit id, and the token works on the socket.
    let (_, body) = server
        .anonymous_api()
        .post(
            "/api/v1/dev/login",
            json!({"name": "Bob", "user_id": "bob-2"}),
        )
        .await;
    let mut ws = server.ws_with_token(body["token"].as_str().unwrap()).await;
    ws.send(json!({"type": "ping", "req_id": "p"})).await;
    assert_eq!(ws.recv_json().await["type"], "pong");
}

/// `POST /api/v1/dev/login` with `body`, anonymous; asserts it was refused
/// as `invalid_field`, and returns the message.
async fn refused_sign_in(server: &TestServer, body: &Value) -> String {
    let (status, answer) = server
        .anonymous_api()
        .post("/api/v1/dev/login", body.clone())
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{body} → {answer}"
    );
    assert_eq!(answer["error"]["code"], "invalid_field", "{answer}");
    answer["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_dev_sign_in_refuses_reserved_ids_and_bad_names() {
    let server = TestServer::start().await;
    let refused: [(Value, &str); 11] = [
        (json!({"name": "System"}), "reserved"),
        (json!({"name": "Assistant"}), "reserved"),
        (json!({"name": "anon-1234"}), "reserved"),
        (json!({"name": "x", "user_id": "ANON-9"}), "reserved"),
        (json!({"name": "x", "user_id": "a/b"}), "user_id"),
        (json!({"name": "x", "user_id": ""}), "user_id"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "tab\there"}), "name"),
        (json!({"name": "🙂🙂"}), "letters or digits"),
        (json!({"name": "a".repeat(65)}), "name"),
    ];
    for (body, why) in refused {
        let message = refused_sign_in(&server, &body).await;
        assert!(message.contains(why), "{body}: {message}");
    }
    for body in [json!({"name": "x", "role": "admin"}), json!({}), json!([1])] {
        refused_sign_in(&server, &body).await;
    }
}

#[tokio::test]
async fn the_dev_sign_in_does_not_exist_unless_it_is_on() {
    // A configured secret: auto is off.
    let server = TestServer::start_with(|config| config.jwt_secret = "configured".into()).await;
    for (status, body) in [
        server.anonymous_api().get("/api/v1/dev/login").await,
        server
            .anonymous_api()
            .post("/api/v1/dev/login", json!({"name": "Mallory"}))
            .await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (_, doc) = server.anonymous_api().get("/api/v1/openapi.json").await;
    assert!(doc["paths"].get("/api/v1/dev/login").is_none());
    // The page is still there, for a pasted token.
    assert_eq!(get(&server, "/").await.0, StatusCode::OK);

    // Off by choice, even on loopback with a generated secret.
    let server = TestServer::start_with(|config| config.auth.dev_login = DevLogin::Off).await;
    let (status, _) = server.anonymous_api().get("/api/v1/dev/login").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // On by choice, whatever the secret.
    let server = TestServer::start_with(|config| {
        config.jwt_secret = "configured".into();
        config.auth.dev_login = DevLogin::On;
    })
    .await;
    let (status, _) = server.anonymous_api().get("/api/v1/dev/login").await;
    assert_eq!(status, StatusCode::OK);
}
