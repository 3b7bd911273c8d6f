//! Hostile and careless clients: the server's own identities cannot be
//! claimed, every id a token or URL carries follows one rule, `nbf` is
//! enforced, refusals reach clients that are still sending, broken
//! WebSocket frames get their RFC close codes, uploads cannot run script on
//! our origin, and odd `req_id`s come back to the letter. Each test here
//! failed before the fix it guards (docs/guarantees.md, "Hostile input").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{API_KEY, Ended, TestServer, now_s, raw_frame};
use reqwest::Method;
use serde_json::{Value, json};

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// A WebSocket handshake with `token` in the header must be closed with
/// `code` before any frame.
async fn ws_closed_with(server: &TestServer, token: &str, code: u16) {
    let mut ws = server.ws_raw("/ws", &[bearer(token)]).await;
    assert_eq!(ws.ended().await, Ended::Closed(code), "token {token}");
}

/// A REST call with a raw bearer credential: status and body.
async fn rest_with(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, answer) = server.api_with_token(token).call(method, path, body).await;
    (status.as_u16(), answer)
}

#[tokio::test]
async fn tokens_for_the_servers_own_identities_are_refused_on_every_route() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    // The server key posts, which makes the built-in `system` user exist.
    let (status, posted) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "Job accepted", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, 201, "{posted}");
    let message_id = posted["message"]["id"].as_str().unwrap().to_owned();

    let claimed = [
        json!({"sub": "system", "name": "Mallory", "role": "viewer", "exp": now_s() + 600}),
        json!({"sub": "System", "exp": now_s() + 600}),
        json!({"sub": "SYSTEM", "role": "admin", "exp": now_s() + 600}),
        json!({"sub": "assistant", "exp": now_s() + 600}),
        json!({"sub": "anon-0193a6e2", "exp": now_s() + 600}),
        // SimpleJWT's claim, with no `sub`.
        json!({"user_id": "system", "exp": now_s() + 600}),
    ];
    for claims in &claimed {
        let token = server.token_from_claims(claims);
        // WebSocket: header, subprotocol, query and first frame alike.
        ws_closed_with(&server, &token, 4003).await;
        let mut ws = server
            .ws_raw(
                "/ws",
                &[(
                    "sec-websocket-protocol",
                    format!("confab.v1, bearer.{token}"),
                )],
            )
            .await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{claims}");
        let mut ws = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{claims}");
        let mut ws = server.ws_raw("/ws", &[]).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{claims}");
        // REST: every kind of route a token reaches.
        let routes = [
            (Method::GET, "/api/v1/me".to_owned(), None),
            (Method::GET, "/api/v1/stats".to_owned(), None),
            (Method::GET, format!("/api/v1/rooms/{room}/messages"), None),
            (
                Method::POST,
                format!("/api/v1/rooms/{room}/messages"),
                Some(json!({"content": "I am the server"})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/rooms/{room}/messages/{message_id}"),
                Some(json!({"content": "rewritten"})),
            ),
            (Method::DELETE, format!("/api/v1/rooms/{room}"), None),
        ];
        for (method, path, body) in routes {
            let (status, answer) = rest_with(&server, &token, method.clone(), &path, body).await;
            assert_eq!(status, 401, "{method} {path} with {claims}: {answer}");
            assert_eq!(answer["error"]["code"], "unauthorized", "{answer}");
        }
    }
    // A live connection cannot switch to a built-in identity either.
    let mut alice = server.ws("alice").await;
    let system = server.token_from_claims(&claimed[0]);
    alice
        .expect_error(
            json!({"type": "refresh_token", "token": system}),
            "unauthorized",
        )
        .await;

    // Nothing was rewritten: the room is open, the system message is the
    // server's, shown with the built-in name.
    let history = server.all_messages("alice", &room).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["content"], "Job accepted");
    assert_eq!(history[0]["sender"]["id"], "system");
    assert_eq!(history[0]["sender"]["name"], "System");
    assert_eq!(server.room_as("alice", &room).await["closed"], false);
    // And the server key cannot turn the built-in users into anything else.
    for built_in in ["system", "assistant"] {
        let (status, answer) = server
            .server_api()
            .put(
                &format!("/api/v1/users/{built_in}"),
                json!({"name": "Mallory", "role": "viewer", "disabled": true}),
            )
            .await;
        assert_eq!(status, 403, "{built_in}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }
}

#[tokio::test]
async fn a_member_list_naming_system_first_creates_the_built_in_user() {
    let server = TestServer::start().await;
    // Before the server key was ever used, a user lists `system` as a member.
    let room = server.room("alice", &["system"]).await;
    let (status, posted) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hello from the server", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["message"]["sender"]["name"], "System", "{posted}");
}

#[tokio::test]
async fn global_admins_and_the_server_key_may_subscribe_to_any_room() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "before").await;
    let admin =
        server.token_from_claims(&json!({"sub": "root", "role": "admin", "exp": now_s() + 600}));
    let mut root = common::connect_with_token(&server.ws_url("/ws"), &admin).await;
    let mut key = common::connect_with_token(&server.ws_url("/ws"), API_KEY).await;
    for watcher in [&mut root, &mut key] {
        let subscribed = watcher
            .request(json!({"type": "subscribe_room", "room_id": room, "since_seq": 0}))
            .await;
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        assert_eq!(subscribed["last_seq"], 1);
        // Not a member: nothing counts as unread for them.
        assert_eq!(subscribed["unread_count"], 0);
        let replayed = watcher.recv_new_messages(1).await;
        assert_eq!(replayed[0]["message"]["content"], "before");
    }
    alice.send_message(&room, "live").await;
    for watcher in [&mut root, &mut key] {
        let live = watcher.recv_new_messages(1).await;
        assert_eq!(live[0]["message"]["content"], "live");
    }
    // A plain user still may not.
    let mut carol = server.ws("carol").await;
    carol
        .expect_error(
            json!({"type": "subscribe_room", "room_id": room}),
            "forbidden",
        )
        .await;
}

#[tokio::test]
async fn ids_in_tokens_follow_the_rule_rest_applies() {
    let server = TestServer::start().await;
    let bad = [
        "a/b",
        "a b",
        "a?b",
        "a#b",
        "a\u{0}b",
        "a%2Fb",
        ".",
        "..",
        "%2e%2E",
        "tab\there",
    ];
    for sub in bad {
        let token = server.token_from_claims(&json!({"sub": sub, "exp": now_s() + 600}));
        ws_closed_with(&server, &token, 4003).await;
        let (status, answer) = rest_with(&server, &token, Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, 401, "{sub:?}: {answer}");
        // The same id from a back-end is refused too: one rule everywhere.
        let (status, answer) = server
            .server_api()
            .post("/api/v1/rooms", json!({"name": "r", "members": [sub]}))
            .await;
        assert_eq!(status, 422, "{sub:?}: {answer}");
    }
    // A long id is refused for its length, not for a missing claim.
    let long = server.token_from_claims(&json!({"sub": "x".repeat(200), "exp": now_s() + 600}));
    ws_closed_with(&server, &long, 4003).await;
    let (status, answer) = rest_with(&server, &long, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("1–128"), "{message}");
    assert!(!message.contains("no `sub`"), "{message}");
    // A 128-byte id is fine, as over REST.
    let longest = "y".repeat(128);
    let token = server.token_from_claims(&json!({"sub": longest, "exp": now_s() + 600}));
    let (status, me) = rest_with(&server, &token, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    let (status, _) = server
        .server_api()
        .put(
            &format!("/api/v1/users/{longest}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(
        status, 200,
        "a user a token created can be managed over REST"
    );
}

#[tokio::test]
async fn room_ids_that_no_url_can_carry_are_refused() {
    let server = TestServer::start().await;
    for id in [".", "..", "%2e", "%2E%2e", ".%2e", "a%2Fb", "100%"] {
        let (status, answer) = server
            .api("alice")
            .post("/api/v1/rooms", json!({"id": id, "name": "r"}))
            .await;
        assert_eq!(status, 422, "{id:?}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field");
    }
    // Dots inside an id are fine.
    server.room_with_id("alice", "v1.2...3", &[]).await;
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let server = TestServer::start().await;
    let later = server
        .token_from_claims(&json!({"sub": "alice", "nbf": now_s() + 3600, "exp": now_s() + 7200}));
    ws_closed_with(&server, &later, 4003).await;
    let (status, answer) = rest_with(&server, &later, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("nbf"),
        "{answer}"
    );
    // Within the leeway (default 30 s) and in the past: accepted.
    for nbf in [now_s() + 5, now_s() - 60] {
        let token =
            server.token_from_claims(&json!({"sub": "alice", "nbf": nbf, "exp": now_s() + 600}));
        let mut ws = server.ws_raw("/ws", &[bearer(&token)]).await;
        assert_eq!(ws.recv_json().await["type"], "connection_established");
    }
}

#[tokio::test]
async fn a_malformed_acting_user_is_a_bad_credential_not_a_restart() {
    let server = TestServer::start().await;
    for act_as in [String::new(), "x".repeat(200), "a/b".to_owned()] {
        let mut ws = server
            .ws_raw("/ws", &[bearer(API_KEY), ("x-confab-user", act_as.clone())])
            .await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{act_as:?}");
        let (status, answer) = server
            .server_api()
            .acting_as(&act_as)
            .get("/api/v1/me")
            .await;
        assert_eq!(status, 422, "{act_as:?}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field");
    }
}

#[tokio::test]
async fn upload_refusals_reach_a_client_still_streaming_its_body() {
    let server = TestServer::start_with(|c| c.limits.max_upload_bytes = 1 << 20).await;
    let form = ("content-type", "multipart/form-data; boundary=b".to_owned());
    for content_length in [false, true] {
        // No token: 401, answered while 4 MiB are still on their way.
        let (status, answer) = server
            .post_streamed(
                "/api/v1/attachments",
                std::slice::from_ref(&form),
                4 << 20,
                content_length,
            )
            .await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "unauthorized");
        // Over the limit: 413.
        let auth = bearer(&server.token("alice"));
        let (status, answer) = server
            .post_streamed(
                "/api/v1/attachments",
                &[form.clone(), auth],
                3 << 20,
                content_length,
            )
            .await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_field");
    }
    // Any other refused body is answered the same way.
    let (status, answer) = server
        .post_streamed(
            "/api/v1/rooms",
            &[("content-type", "application/json".into())],
            2 << 20,
            false,
        )
        .await;
    assert_eq!(status, 401, "{answer}");
}

#[tokio::test]
async fn broken_websocket_frames_close_with_their_rfc_codes() {
    let server = TestServer::start().await;
    let cases: [(&str, Vec<u8>, u16); 5] = [
        (
            "text that is not UTF-8",
            raw_frame(0x81, &[0xff, 0xfe, 0x41], true),
            1007,
        ),
        ("an unmasked frame", raw_frame(0x81, b"{}", false), 1002),
        ("a reserved opcode", raw_frame(0x83, b"{}", true), 1002),
        (
            "RSV1 without an extension",
            raw_frame(0xC1, b"{}", true),
            1002,
        ),
        (
            "a ping over 125 bytes",
            raw_frame(0x89, &[0u8; 200], true),
            1002,
        ),
    ];
    for (what, frame, code) in cases {
        let mut ws = server.ws("alice").await;
        ws.send_raw(&frame).await;
        assert_eq!(ws.ended().await, Ended::Closed(code), "{what}");
    }
    // The server is fine, and so is the next connection.
    server.ws("alice").await.assert_alive().await;
}

#[tokio::test]
async fn uploads_that_a_browser_would_run_are_served_as_sandboxed_downloads() {
    let server = TestServer::start().await;
    let api = server.api("alice");
    let png: &[u8] = &[
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R', 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89,
    ];
    let cases: [(&str, &str, &[u8], &str); 4] = [
        (
            "page.html",
            "text/html",
            b"<script>alert(document.cookie)</script>",
            "attachment",
        ),
        (
            "x.js",
            "application/javascript",
            b"fetch('/api/v1/me')",
            "attachment",
        ),
        (
            "doc.svg",
            "text/xml",
            b"<svg onload=\"alert(1)\"/>",
            "attachment",
        ),
        ("dot.png", "image/png", png, "inline"),
    ];
    for (name, content_type, bytes, disposition) in cases {
        let (status, uploaded) = api.upload(name, content_type, bytes).await;
        assert_eq!(status, 201, "{name}: {uploaded}");
        let response = api
            .send(Method::GET, uploaded["url"].as_str().unwrap(), None)
            .await;
        assert_eq!(response.status(), 200);
        let header = |h: &str| {
            response
                .headers()
                .get(h)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(
            header("content-disposition").starts_with(disposition),
            "{name}"
        );
        assert_eq!(header("content-security-policy"), "sandbox", "{name}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
    }
}

#[tokio::test]
async fn numeric_req_ids_come_back_exactly_as_written() {
    let server = TestServer::start().await;
    let mut ws = server.ws("alice").await;
    for written in ["1e2", "18446744073709551616", "1.50", "-0", "7"] {
        // A reply, and an error reply, each echo the token to the letter.
        for frame in [
            format!(r#"{{"type":"ping","req_id":{written}}}"#),
            format!(r#"{{"type":"get_history","room_id":"nowhere","req_id":{written}}}"#),
        ] {
            ws.send_text(&frame).await;
            let reply = loop {
                let message = ws.stream_next_text().await;
                if message.contains("req_id") {
                    break message;
                }
            };
            assert!(
                reply.contains(&format!(r#""req_id":{written}"#)),
                "{frame} → {reply}"
            );
        }
    }
}
