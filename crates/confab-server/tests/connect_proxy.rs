//! The connect proxy (protocol.md §8.3), end to end: a WebSocket handshake
//! with no token but a session cookie is signed in by the app's answer,
//! from a stand-in for the app on 127.0.0.1 that verifies confab's
//! signature itself. Good, forged and absent cookies; the app's 403; a
//! dead, failing, slow or garbled proxy; answers naming the server's own
//! identities; the cache per cookie.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::receiver::{self, Receiver, Reply};
use common::{Ended, TestServer, WsClient};
use confab_server::config::Config;
use serde_json::{Value, json};
use std::time::Duration;

/// The app's sessions: `sessionid=good-ann` is Ann the analyst (her id an
/// integer, as Django's are), `sessionid=banned` is refused, the hostile
/// ones answer the server's own identities or a bad role, anything else
/// is nobody.
fn sessions(request: &Value) -> (u16, Value) {
    let cookie = request["headers"]["cookie"].as_str().unwrap_or_default();
    let session = cookie
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("sessionid="))
        .unwrap_or_default();
    match session {
        "good-ann" => (
            200,
            json!({"user_id": 42, "name": "Ann", "role": "analyst"}),
        ),
        "good-bob" => (200, json!({"user_id": "bob"})),
        "banned" => (403, json!({"error": "banned"})),
        "system" => (200, json!({"user_id": "system"})),
        "anon" => (200, json!({"user_id": "anon-123"})),
        "slashed" => (200, json!({"user_id": "a/b"})),
        "bad-role" => (200, json!({"user_id": "carl", "role": "Boss!"})),
        "no-id" => (200, json!({"name": "Nobody"})),
        "broken" => (500, json!({"error": "down"})),
        _ => (401, json!({"error": "no such session"})),
    }
}

/// A server whose connect proxy is `url`, signing with the receiver's secret.
async fn server_with(url: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let url = url.to_owned();
    TestServer::start_with(move |c| {
        c.webhook.secret = receiver::secret();
        c.auth.proxy_url = url;
        c.auth.proxy_timeout_s = 1;
        tweak(c);
    })
    .await
}

/// Opens `path` with `cookie` (and a browser's origin and user agent).
async fn with_cookie(server: &TestServer, path: &str, cookie: &str) -> WsClient {
    server
        .ws_raw(
            path,
            &[
                ("cookie", cookie.to_owned()),
                ("origin", format!("http://{}", server.addr)),
                ("user-agent", "Mozilla/5.0 (test)".to_owned()),
            ],
        )
        .await
}

/// The close code a handshake with `cookie` on `path` ends with.
async fn closed_with(server: &TestServer, path: &str, cookie: &str) -> Ended {
    with_cookie(server, path, cookie).await.ended().await
}

/// A good cookie signs the connection in as the app's user, created from
/// the answer (integer id, name, custom role); the app got one signed call
/// with the cookie, origin, user agent, path and address.
#[tokio::test]
async fn a_good_cookie_signs_the_connection_in_as_the_apps_user() {
    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |_| {}).await;
    let mut ann = with_cookie(&server, "/ws", "csrftoken=x; sessionid=good-ann").await;
    let hello = ann.recv_json().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    assert_eq!(hello["user_id"], "42");
    let room = server.room("42", &[]).await;
    let status = ann
        .request(json!({"type": "send_message", "room_id": room, "content": "/status"}))
        .await;
    assert_eq!(
        status["data"]["user"],
        json!({"id": "42", "name": "Ann", "role": "analyst"}),
        "{status}"
    );

    let calls = app.requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert!(call.signature_valid, "{call:?}");
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.body,
        json!({
            "headers": {
                "cookie": "csrftoken=x; sessionid=good-ann",
                "origin": format!("http://{}", server.addr),
                "user-agent": "Mozilla/5.0 (test)",
            },
            "path": "/ws",
            "remote_addr": "127.0.0.1",
        })
    );
    // The room-scoped dialects take the cookie too.
    let mut scoped = with_cookie(&server, &format!("/ws/chat/{room}/"), "sessionid=good-ann").await;
    scoped.send(json!({"type": "ping"})).await;
    assert_eq!(scoped.recv_json().await["type"], "pong");
}

/// A cookie the app does not know (401) is no credential: 4001 where a
/// token is required; where visitors are let in (`auth.allow_anonymous`),
/// an anonymous visitor. The app's 403 is 4003.
#[tokio::test]
async fn forged_and_refused_cookies_are_closed_with_their_codes() {
    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |_| {}).await;
    let room = server.room("bob", &[]).await;
    assert_eq!(
        closed_with(&server, "/ws", "sessionid=forged").await,
        Ended::Closed(4001)
    );
    assert_eq!(
        closed_with(&server, &format!("/ws/chat/{room}/"), "sessionid=forged").await,
        Ended::Closed(4001)
    );
    assert_eq!(
        closed_with(&server, "/ws", "sessionid=banned").await,
        Ended::Closed(4003)
    );
    let server = server_with(&app.url(), |c| c.auth.allow_anonymous = true).await;
    let mut visitor = with_cookie(&server, "/ws/assistant/", "sessionid=forged").await;
    visitor.send(json!({"type": "session_init"})).await;
    let started = visitor.recv_type("session_started").await;
    assert!(
        started["visitor_token"].is_string(),
        "an anonymous visitor: {started}"
    );
    let mut bob = with_cookie(&server, "/ws/assistant/", "sessionid=good-bob").await;
    bob.send(json!({"type": "session_init"})).await;
    let started = bob.recv_type("session_started").await;
    assert!(
        started.get("visitor_token").is_none(),
        "bob is signed in: {started}"
    );
    assert!(app.requests().iter().all(|r| r.signature_valid));
}

/// No cookie: the proxy is not asked and the endpoint behaves as without
/// it (`/ws` waits for an `auth` frame). A token wins over a cookie.
#[tokio::test]
async fn without_a_cookie_or_with_a_token_the_app_is_not_asked() {
    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |_| {}).await;
    let mut plain = server.ws_raw("/ws", &[]).await;
    plain
        .send(json!({"type": "auth", "token": server.token("carol")}))
        .await;
    assert_eq!(plain.recv_json().await["user_id"], "carol");
    let mut with_token = server
        .ws_raw(
            "/ws",
            &[
                ("authorization", format!("Bearer {}", server.token("dave"))),
                ("cookie", "sessionid=good-ann".to_owned()),
            ],
        )
        .await;
    assert_eq!(with_token.recv_json().await["user_id"], "dave");
    assert!(app.requests().is_empty(), "{:?}", app.requests());
}

/// What the app answers is checked like a token: the server's own
/// identities, an id breaking the id rule and a malformed role are refused
/// (4003); a disabled user is 4002.
#[tokio::test]
async fn the_apps_answer_cannot_name_the_servers_identities() {
    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |_| {}).await;
    for session in ["system", "anon", "slashed", "bad-role"] {
        assert_eq!(
            closed_with(&server, "/ws", &format!("sessionid={session}")).await,
            Ended::Closed(4003),
            "{session}"
        );
    }
    let (status, _) = server
        .server_api()
        .put("/api/v1/users/bob", json!({"disabled": true}))
        .await;
    assert!(status.is_success());
    assert_eq!(
        closed_with(&server, "/ws", "sessionid=good-bob").await,
        Ended::Closed(4002)
    );
}

/// A proxy that answers 500, nonsense, nothing in time, or is not there
/// closes the connection with 1011 (retry later), never lets it in.
#[tokio::test]
async fn a_failing_proxy_closes_with_1011() {
    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |_| {}).await;
    assert_eq!(
        closed_with(&server, "/ws", "sessionid=broken").await,
        Ended::Closed(1011)
    );
    assert_eq!(
        closed_with(&server, "/ws", "sessionid=no-id").await,
        Ended::Closed(1011)
    );
    for reply in [Reply::NotJson, Reply::Slow(Duration::from_secs(3))] {
        let app = Receiver::start(reply).await;
        let server = server_with(&app.url(), |_| {}).await;
        assert_eq!(
            closed_with(&server, "/ws", "sessionid=good-ann").await,
            Ended::Closed(1011)
        );
        assert_eq!(app.requests().len(), 1);
    }
    let server = server_with(&receiver::unreachable_url().await, |_| {}).await;
    assert_eq!(
        closed_with(&server, "/ws", "sessionid=good-ann").await,
        Ended::Closed(1011)
    );
}

/// With `auth.proxy_cache_s`, one cookie is asked about once while the
/// answer is kept (refusals included); another cookie is asked on its own.
/// Without it, every handshake asks.
#[tokio::test]
async fn answers_are_kept_per_cookie_when_configured() {
    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |c| c.auth.proxy_cache_s = 60).await;
    for _ in 0..3 {
        let mut ann = with_cookie(&server, "/ws", "sessionid=good-ann").await;
        assert_eq!(ann.recv_json().await["user_id"], "42");
        assert_eq!(
            closed_with(&server, "/ws", "sessionid=forged").await,
            Ended::Closed(4001)
        );
    }
    let mut bob = with_cookie(&server, "/ws", "sessionid=good-bob").await;
    assert_eq!(bob.recv_json().await["user_id"], "bob");
    assert_eq!(app.requests().len(), 3, "one per cookie");

    let app = Receiver::start(Reply::Computed(sessions)).await;
    let server = server_with(&app.url(), |_| {}).await;
    for _ in 0..2 {
        let mut ann = with_cookie(&server, "/ws", "sessionid=good-ann").await;
        assert_eq!(ann.recv_json().await["user_id"], "42");
    }
    assert_eq!(app.requests().len(), 2, "not kept without proxy_cache_s");
}
