//! Browser safety (issue 5, item 7): a WebSocket handshake whose `Origin` is
//! present and not allowed is refused with 403 and the error body. Allowed by
//! default: the server's own host and localhost (any port); a configured
//! `server.allowed_origins` list replaces localhost; `*` allows all. Clients
//! that are not browsers send no `Origin` and are always let through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;

fn origin(value: &str) -> (&'static str, String) {
    ("origin", value.to_owned())
}

async fn assert_allowed(server: &TestServer, headers: &[(&str, String)]) {
    let mut all = headers.to_vec();
    all.push(("authorization", format!("Bearer {}", server.token("alice"))));
    let mut ws = server.ws_raw("/ws", &all).await;
    let hello = ws.recv_json().await;
    assert_eq!(
        hello["type"], "connection_established",
        "{headers:?}: {hello}"
    );
}

async fn assert_refused(server: &TestServer, headers: &[(&str, String)]) {
    let mut all = headers.to_vec();
    all.push(("authorization", format!("Bearer {}", server.token("alice"))));
    for path in ["/ws", "/ws/chat/"] {
        let (status, body) = server.ws_refused(path, &all).await;
        assert_eq!(status, 403, "{path} {headers:?}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
}

#[tokio::test]
async fn by_default_same_host_and_localhost_are_allowed_and_others_refused() {
    let server = TestServer::start().await;
    assert_allowed(&server, &[]).await;
    assert_allowed(&server, &[origin("http://localhost:3000")]).await;
    assert_allowed(&server, &[origin("https://127.0.0.1:5173")]).await;
    let own = [
        ("host", "chat.example.com".to_owned()),
        origin("https://chat.example.com"),
    ];
    assert_allowed(&server, &own).await;

    assert_refused(&server, &[origin("https://evil.example")]).await;
    let lookalike = [
        ("host", "chat.example.com".to_owned()),
        origin("https://chat.example.com.evil.example"),
    ];
    assert_refused(&server, &lookalike).await;
    assert_refused(&server, &[origin("null")]).await;
}

#[tokio::test]
async fn a_configured_list_replaces_localhost() {
    let server = TestServer::start_with(|c| {
        c.server.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    assert_allowed(&server, &[origin("https://app.example.com")]).await;
    assert_allowed(&server, &[]).await;
    assert_refused(&server, &[origin("http://localhost:3000")]).await;
    assert_refused(&server, &[origin("http://app.example.com")]).await;
}

#[tokio::test]
async fn a_star_allows_every_origin() {
    let server = TestServer::start_with(|c| c.server.allowed_origins = vec!["*".into()]).await;
    assert_allowed(&server, &[origin("https://evil.example")]).await;
    assert_allowed(&server, &[origin("null")]).await;
}
