//! Authentication (protocol.md §1, §2.1, §7): the four token placements and their
//! order of preference, the refusal close codes (4001, 4002, 4003), disabled
//! and unknown users, SimpleJWT tokens, the server key on REST, REST 401s,
//! token expiry and refresh, and the read-only global role `viewer`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{API_KEY, Ended, TestServer, assert_timestamp, now_s, token_signed_with, unstamped};
use confab_server::store::GlobalRole;
use serde_json::{Value, json};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn subprotocol(token: &str) -> (&'static str, String) {
    (
        "sec-websocket-protocol",
        format!("confab.v1, bearer.{token}"),
    )
}

/// Asserts a `connection_established` frame for `user` with the contract's fields.
fn assert_established(frame: &Value, user: &str) {
    assert_eq!(frame["type"], "connection_established", "{frame}");
    assert_eq!(frame["user_id"], user, "{frame}");
    assert!(frame["username"].is_string(), "{frame}");
    assert!(frame["connection_id"].is_string(), "{frame}");
    assert_eq!(frame["protocol"], 1, "{frame}");
    assert!(frame["heartbeat_ms"].is_u64(), "{frame}");
    assert_timestamp(&frame["timestamp"]);
}

#[tokio::test]
async fn bearer_header_gives_connection_established_with_limits() {
    let server = TestServer::start_with(|c| {
        c.limits.max_message_length = 300;
        c.limits.max_frame_bytes = 4096;
        c.rate_limit.messages_per_minute = 42;
    })
    .await;
    let token = server.token_with("alice", Some("Alice"), None, HOUR);
    let mut ws = server.ws_raw("/ws", &[bearer(&token)]).await;
    let hello = ws.recv_json().await;
    assert_established(&hello, "alice");
    assert_eq!(hello["username"], "alice", "the handle defaults to the id");
    assert_eq!(
        hello["limits"],
        json!({"max_message_length": 300, "messages_per_minute": 42, "max_frame_bytes": 4096})
    );
    ws.assert_alive().await;
    // The same token authenticates REST, and the name claim was kept.
    let (status, me) = server.api("alice").get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "alice");
    assert_eq!(me["name"], "Alice");
}

#[tokio::test]
async fn subprotocol_token_is_accepted_and_confab_v1_is_answered() {
    let server = TestServer::start().await;
    let token = server.token("alice");
    let (mut ws, headers) = server.ws_handshake("/ws", &[subprotocol(&token)]).await;
    assert_eq!(
        headers
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("confab.v1"),
        "the server must select the confab.v1 subprotocol (never echo the token)"
    );
    assert_established(&ws.recv_json().await, "alice");
    ws.assert_alive().await;
}

#[tokio::test]
async fn first_frame_auth_is_accepted_and_a_second_auth_is_refused() {
    let server = TestServer::start().await;
    let mut ws = server.ws_raw("/ws", &[]).await;
    ws.send(json!({"type": "auth", "token": server.token("alice")}))
        .await;
    assert_established(&ws.recv_json().await, "alice");
    ws.assert_alive().await;
    let again = ws
        .expect_error(
            json!({"type": "auth", "token": server.token("alice")}),
            "invalid_field",
        )
        .await;
    assert!(again["req_id"].is_string());
    ws.assert_alive().await;
}

#[tokio::test]
async fn query_token_is_accepted() {
    let server = TestServer::start().await;
    let token = server.token("alice");
    let mut ws = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
    assert_established(&ws.recv_json().await, "alice");
    ws.assert_alive().await;
}

#[tokio::test]
async fn placements_are_preferred_header_then_subprotocol_then_query() {
    let server = TestServer::start().await;
    let (alice, bob, carol) = (
        server.token("alice"),
        server.token("bob"),
        server.token("carol"),
    );
    // Header beats subprotocol and query.
    let mut ws = server
        .ws_raw(
            &format!("/ws?token={carol}"),
            &[bearer(&alice), subprotocol(&bob)],
        )
        .await;
    assert_established(&ws.recv_json().await, "alice");
    // Subprotocol beats query.
    let mut ws = server
        .ws_raw(&format!("/ws?token={carol}"), &[subprotocol(&bob)])
        .await;
    assert_established(&ws.recv_json().await, "bob");
    // A valid header wins even when the query token is garbage…
    let mut ws = server.ws_raw("/ws?token=garbage", &[bearer(&alice)]).await;
    assert_established(&ws.recv_json().await, "alice");
    // …and a bad header is not rescued by a good query token.
    let mut ws = server
        .ws_raw(&format!("/ws?token={carol}"), &[bearer("garbage")])
        .await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
}

#[tokio::test]
async fn no_token_closes_4001_after_the_auth_timeout() {
    let server = TestServer::start_with(|c| c.auth.auth_timeout_s = 1).await;
    let mut silent = server.ws_raw("/ws", &[]).await;
    let started = tokio::time::Instant::now();
    assert_eq!(silent.ended().await, Ended::Closed(4001));
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "a silent client gets its auth timeout before 4001"
    );
}

#[tokio::test]
async fn a_first_frame_that_is_not_auth_closes_4001_without_waiting() {
    // The timeout is far longer than `ended()` waits: the close must come
    // from the frame itself.
    let server = TestServer::start_with(|c| c.auth.auth_timeout_s = 60).await;
    for first in [
        json!({"type": "ping"}).to_string(),
        json!({"type": "subscribe_room", "room_id": "r"}).to_string(),
        "{not json".to_owned(),
        json!({"type": "auth"}).to_string(),
    ] {
        let mut ws = server.ws_raw("/ws", &[]).await;
        ws.send_text(&first).await;
        assert_eq!(ws.ended().await, Ended::Closed(4001), "first frame {first}");
    }
}

#[tokio::test]
async fn bad_signatures_garbage_and_expired_tokens_close_4003_in_every_placement() {
    let server = TestServer::start_with(|c| c.auth.auth_timeout_s = 60).await;
    let forged = token_signed_with(
        "not-the-server-secret",
        &json!({"sub": "alice", "exp": now_s() + 3600}),
    );
    // Expired well beyond the at-most-30 s leeway of protocol.md §7.
    let expired = server.token_from_claims(&json!({"sub": "alice", "exp": now_s() - 60}));
    let no_subject = server.token_from_claims(&json!({"exp": now_s() + 3600}));
    let no_exp = server.token_from_claims(&json!({"sub": "alice"}));
    for (what, token) in [
        ("forged", forged),
        ("expired", expired),
        ("garbage", "not.a.jwt".to_owned()),
        ("no subject", no_subject),
        ("no exp", no_exp),
    ] {
        let mut ws = server.ws_raw("/ws", &[bearer(&token)]).await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{what} in header");
        let mut ws = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{what} in query");
        let mut ws = server.ws_raw("/ws", &[]).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        assert_eq!(
            ws.ended().await,
            Ended::Closed(4003),
            "{what} in auth frame"
        );
    }
    let forged = token_signed_with("other", &json!({"sub": "a", "exp": now_s() + 60}));
    let (mut ws, _) = server.ws_handshake("/ws", &[subprotocol(&forged)]).await;
    assert_eq!(ws.ended().await, Ended::Closed(4003), "forged subprotocol");
}

#[tokio::test]
async fn disabling_a_user_closes_every_connection_4002_and_refuses_new_ones() {
    let server = TestServer::start().await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws("alice").await;
    let mut bob = server.ws("bob").await;

    // Only the server key manages users.
    let (status, body) = server
        .api("bob")
        .put("/api/v1/users/alice", json!({"disabled": true}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    phone.assert_alive().await;

    let (status, user) = server
        .server_api()
        .put("/api/v1/users/alice", json!({"disabled": true}))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["id"], "alice");
    assert_eq!(user["disabled"], true);
    assert_eq!(phone.ended().await, Ended::Closed(4002));
    assert_eq!(laptop.ended().await, Ended::Closed(4002));
    bob.assert_alive().await;

    let mut refused = server
        .ws_raw("/ws", &[bearer(&server.token("alice"))])
        .await;
    assert_eq!(refused.ended().await, Ended::Closed(4002));
    let mut refused = server.ws_raw("/ws", &[]).await;
    refused
        .send(json!({"type": "auth", "token": server.token("alice")}))
        .await;
    assert_eq!(refused.ended().await, Ended::Closed(4002));
    let (status, body) = server.api("alice").get("/api/v1/me").await;
    assert_eq!(
        status, 403,
        "a disabled user is refused on REST too: {body}"
    );
    assert_eq!(body["error"]["code"], "forbidden");

    let (status, _) = server
        .server_api()
        .put("/api/v1/users/alice", json!({"disabled": false}))
        .await;
    assert_eq!(status, 200);
    let mut back = server.ws("alice").await;
    back.assert_alive().await;
}

#[tokio::test]
async fn unknown_users_get_4002_when_users_must_pre_exist() {
    let server = TestServer::start_with(|c| c.auth.require_existing_users = true).await;
    let mut stranger = server.ws_raw("/ws", &[bearer(&server.token("zoe"))]).await;
    assert_eq!(stranger.ended().await, Ended::Closed(4002));

    let (status, user) = server
        .server_api()
        .put(
            "/api/v1/users/zoe",
            json!({"name": "Zoe", "role": "member"}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["name"], "Zoe");
    assert_eq!(user["role"], "member");
    let mut zoe = server.ws("zoe").await;
    zoe.assert_alive().await;
    // Members named by a back-end must pre-exist too.
    let (status, body) = server
        .server_api()
        .post("/api/v1/rooms", json!({"members": ["nobody"]}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn simplejwt_user_id_claim_names_the_user() {
    let server = TestServer::start().await;
    let token = server.token_from_claims(&json!({
        "token_type": "access", "user_id": 42, "jti": "abc", "exp": now_s() + 3600
    }));
    let mut ws = server.ws_raw("/ws", &[bearer(&token)]).await;
    assert_established(&ws.recv_json().await, "42");
    let string_id = server.token_from_claims(&json!({"user_id": "u-7", "exp": now_s() + 3600}));
    let mut ws = server.ws_raw(&format!("/ws?token={string_id}"), &[]).await;
    assert_established(&ws.recv_json().await, "u-7");
}

#[tokio::test]
async fn the_server_key_acts_for_the_user_named_in_x_confab_user() {
    let server = TestServer::start().await;
    let backend = server.server_api();
    let (status, me) = backend.clone().acting_as("zoe").get("/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], "zoe");
    let (status, room) = backend
        .clone()
        .acting_as("zoe")
        .post(
            "/api/v1/rooms",
            json!({"name": "zoe's", "members": ["yan"]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["role"], "owner", "the acted-for user owns the room");
    let room_id = room["id"].as_str().unwrap();
    let (status, sent) = backend
        .clone()
        .acting_as("zoe")
        .post(
            &format!("/api/v1/rooms/{room_id}/messages"),
            json!({"content": "hi from zoe's back-end"}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["message"]["sender"]["id"], "zoe");
    // The header means nothing without the server key.
    let (status, me) = server.api("yan").acting_as("zoe").get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "yan");
}

#[tokio::test]
async fn rest_without_or_with_a_bad_token_is_401_unauthorized() {
    let server = TestServer::start().await;
    let expired = server.token_from_claims(&json!({"sub": "alice", "exp": now_s() - 60}));
    let forged = token_signed_with("nope", &json!({"sub": "alice", "exp": now_s() + 60}));
    let http = reqwest::Client::new();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("garbage", Some("Bearer garbage".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("forged", Some(format!("Bearer {forged}"))),
        ("wrong server key", Some(format!("Bearer {API_KEY}x"))),
        ("not bearer", Some(format!("Basic {API_KEY}"))),
    ];
    for path in ["/api/v1/me", "/api/v1/rooms"] {
        for (what, header) in &cases {
            let mut request = http.get(format!("{}{path}", server.base));
            if let Some(h) = header {
                request = request.header("authorization", h);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{what} on {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
            assert!(body["error"]["message"].is_string(), "{body}");
        }
    }
}

#[tokio::test]
async fn viewers_read_but_cannot_send() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["val"]).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "hello viewer").await;

    let viewer = server.token_with("val", None, Some(GlobalRole::Viewer), HOUR);
    let mut ws = server.ws_with_token(&viewer).await;
    let subscribed = ws.subscribe(&room).await;
    assert_eq!(subscribed["last_seq"], 1);
    let refused = ws
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "hi"}),
            "forbidden",
        )
        .await;
    assert_eq!(refused["room_id"], room.as_str());
    let history = ws
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(history["type"], "history");
    assert_eq!(history["messages"][0]["content"], "hello viewer");

    let (status, body) = server
        .api("val")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, page) = server
        .api("val")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["content"], "hello viewer");
    let (status, _) = server
        .api("val")
        .post("/api/v1/rooms", json!({"name": "mine"}))
        .await;
    assert_eq!(status, 403, "viewers are read-only everywhere");
    assert_eq!(server.last_seq("alice", &room).await, 1, "nothing stored");
}

#[tokio::test]
async fn an_expired_connection_is_closed_4003() {
    let server = TestServer::start_with(|c| c.auth.leeway_s = 0).await;
    let token = server.token_with("alice", None, None, Duration::from_secs(1));
    let mut ws = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
    assert_eq!(ws.recv_json().await["type"], "connection_established");
    assert_eq!(ws.ended().await, Ended::Closed(4003));
}

#[tokio::test]
async fn refresh_token_acks_and_refuses_another_users_token() {
    let server = TestServer::start().await;
    let mut alice = server.ws("alice").await;
    let ack = alice
        .send_and_reply(
            json!({"type": "refresh_token", "token": server.token("alice"), "req_id": 5}),
        )
        .await;
    assert_eq!(unstamped(&ack), json!({"type": "ack", "req_id": 5}));
    let refused = alice
        .expect_error(
            json!({"type": "refresh_token", "token": server.token("bob")}),
            "unauthorized",
        )
        .await;
    assert!(refused["req_id"].is_string());
    let expired = server.token_from_claims(&json!({"sub": "alice", "exp": now_s() - 60}));
    alice
        .expect_error(
            json!({"type": "refresh_token", "token": expired}),
            "unauthorized",
        )
        .await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn without_a_configured_server_key_server_key_calls_are_refused() {
    let server = TestServer::start_with(|c| c.api_key = String::new()).await;
    let (status, body) = server.server_api().get("/api/v1/me").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = server
        .server_api()
        .put("/api/v1/users/zoe", json!({"disabled": true}))
        .await;
    assert_eq!(status, 401, "{body}");
    let mut ws = server.ws_raw("/ws", &[bearer(API_KEY)]).await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
}
