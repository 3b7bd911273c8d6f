//! Access-control audit (issue 5 item 10): a signed-in user who is not a
//! member of a room can do nothing with it by any route, and hostile strings
//! are stored verbatim or refused, never executed, never crashing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer, WsClient};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// alice (owner) and bob in "private", with alice's message at seq 1 and bob's
/// file message at seq 2. Returns (alice's message id, bob's upload id).
async fn private_room(server: &TestServer) -> (String, String) {
    server.room_with_id("alice", "private", &["bob"]).await;
    let (_, sent) = server
        .api("alice")
        .post(
            "/api/v1/rooms/private/messages",
            json!({"content": "the door code is 4711"}),
        )
        .await;
    let (status, upload) = server
        .api("bob")
        .upload("plan.txt", "text/plain", b"floor plan")
        .await;
    assert_eq!(status, 201, "{upload}");
    let upload_id = upload["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .api("bob")
        .post(
            "/api/v1/rooms/private/messages",
            json!({"content": "plan", "message_type": "file", "attachment_id": upload_id}),
        )
        .await;
    assert_eq!(status, 201);
    (
        sent["message"]["id"].as_str().unwrap().to_owned(),
        upload_id,
    )
}

/// What alice sees of the room: everything an outsider might try to change.
async fn owner_view(server: &TestServer) -> Value {
    let api = server.api("alice");
    let room = server.room_as("alice", "private").await;
    let (_, members) = api.get("/api/v1/rooms/private/members").await;
    let messages = server.all_messages("alice", "private").await;
    json!({"name": room["name"], "closed": room["closed"], "last_seq": room["last_seq"],
           "unread": room["unread_count"], "members": members, "messages": messages})
}

async fn expect_code(ws: &mut WsClient, frame: Value, code: &str) {
    ws.expect_error(frame, code).await;
}

#[tokio::test]
async fn a_non_member_can_do_nothing_with_a_room_over_websocket() {
    let server = TestServer::start().await;
    let (message_id, _) = private_room(&server).await;
    let before = owner_view(&server).await;
    let mut mallory = server.ws("mallory").await;
    let room = "private";
    for frame in [
        json!({"type": "subscribe_room", "room_id": room}),
        json!({"type": "subscribe_room", "room_id": room, "since_seq": 0}),
        json!({"type": "get_history", "room_id": room}),
        json!({"type": "send_message", "room_id": room, "content": "hi"}),
        json!({"type": "mark_read", "room_id": room}),
        json!({"type": "add_reaction", "room_id": room, "message_id": message_id, "emoji": "😈"}),
        json!({"type": "remove_reaction", "room_id": room, "message_id": message_id, "emoji": "😈"}),
        json!({"type": "edit_message", "room_id": room, "message_id": message_id, "content": "owned"}),
        json!({"type": "delete_message", "room_id": room, "message_id": message_id}),
        json!({"type": "get_presence", "room_id": room}),
    ] {
        expect_code(&mut mallory, frame, "forbidden").await;
    }
    for frame in [
        json!({"type": "typing", "room_id": room}),
        json!({"type": "stop_typing", "room_id": room}),
        json!({"type": "unsubscribe_room", "room_id": room}),
    ] {
        expect_code(&mut mallory, frame, "not_subscribed").await;
    }
    let list = mallory.request(json!({"type": "get_room_list"})).await;
    assert_eq!(list["rooms"], json!([]));

    // Nothing changed, and nothing of the room reaches her afterwards.
    assert_eq!(owner_view(&server).await, before);
    let mut alice = server.ws("alice").await;
    alice.send_message(room, "still private").await;
    mallory.expect_silence(Duration::from_millis(200)).await;
    mallory.assert_alive().await;
}

#[tokio::test]
async fn a_non_member_can_do_nothing_with_a_room_over_rest() {
    let server = TestServer::start().await;
    let (message_id, upload_id) = private_room(&server).await;
    let before = owner_view(&server).await;
    let mallory = server.api("mallory");
    let base = "/api/v1/rooms/private";
    let message = format!("{base}/messages/{message_id}");
    let tries: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, base.into(), None),
        (
            reqwest::Method::PATCH,
            base.into(),
            Some(json!({"name": "mine"})),
        ),
        (reqwest::Method::DELETE, base.into(), None),
        (reqwest::Method::GET, format!("{base}/members"), None),
        (
            reqwest::Method::POST,
            format!("{base}/members"),
            Some(json!({"user_id": "mallory"})),
        ),
        (reqwest::Method::DELETE, format!("{base}/members/bob"), None),
        (reqwest::Method::GET, format!("{base}/messages"), None),
        (
            reqwest::Method::POST,
            format!("{base}/messages"),
            Some(json!({"content": "hi"})),
        ),
        (
            reqwest::Method::PATCH,
            message.clone(),
            Some(json!({"content": "owned"})),
        ),
        (reqwest::Method::DELETE, message, None),
        (
            reqwest::Method::POST,
            format!("{base}/read"),
            Some(json!({})),
        ),
        (reqwest::Method::GET, format!("{base}/context"), None),
        (
            reqwest::Method::GET,
            format!("/api/v1/attachments/{upload_id}"),
            None,
        ),
    ];
    for (method, path, body) in tries {
        let (status, answer) = mallory.call(method.clone(), &path, body).await;
        assert_eq!(status, 403, "{method} {path} → {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{method} {path}");
    }
    let (_, rooms) = mallory.get("/api/v1/rooms").await;
    assert_eq!(rooms["rooms"], json!([]));
    assert_eq!(owner_view(&server).await, before);
}

/// Text that looks like SQL, markup, control characters or bidi tricks is
/// data: stored and returned byte for byte, in content, names and metadata.
#[tokio::test]
async fn hostile_strings_are_stored_verbatim() {
    let server = TestServer::start().await;
    let hostile = [
        "'; DROP TABLE messages; --",
        "\" OR 1=1 --",
        "Robert'); DELETE FROM members WHERE ('1'='1",
        "<script>alert(1)</script>",
        "\u{202E}gnp.exe",
        "zero\u{200B}width\u{FEFF}",
        "tab\tnewline\ncr\r",
        "👩‍👩‍👧‍👦 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "%s %n {0} ${jndi:ldap://x}",
        "\\u0000 literally",
    ];
    let (status, room) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"name": hostile[0], "members": ["bob"], "metadata": {"note": hostile[2], hostile[1]: hostile[4]}}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();
    let mut alice = server.ws("alice").await;
    for text in hostile {
        let ack = alice.send_message(&room_id, text).await;
        assert_eq!(ack["duplicate"], false);
    }
    let stored = server.all_messages("bob", &room_id).await;
    let contents: Vec<&str> = stored
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, hostile);
    let room = server.room_as("bob", &room_id).await;
    assert_eq!(room["name"], hostile[0]);
    assert_eq!(
        room["metadata"],
        json!({"note": hostile[2], hostile[1]: hostile[4]})
    );
    // The tables are all still there.
    let (status, _) = server.api("bob").get("/api/v1/rooms").await;
    assert_eq!(status, 200);
}

/// U+0000 cannot be stored by every backend (PostgreSQL refuses it in text
/// and JSON), so it is refused everywhere, on both transports, wherever it
/// appears in a request; nothing is stored.
#[tokio::test]
async fn nul_characters_are_refused_with_invalid_field() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    for frame in [
        json!({"type": "send_message", "room_id": room, "content": "a\u{0}b"}),
        json!({"type": "send_message", "room_id": room, "content": "ok", "metadata": {"k": "\u{0}"}}),
        json!({"type": "send_message", "room_id": room, "content": "ok", "client_msg_id": "x\u{0}"}),
    ] {
        alice.expect_error(frame, "invalid_field").await;
    }
    let path = format!("/api/v1/rooms/{room}/messages");
    let (status, body) = server
        .api("alice")
        .post(&path, json!({"content": "a\u{0}b"}))
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (422, &json!("invalid_field"))
    );
    let (status, body) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"name": "\u{0}", "members": ["bob"]}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (422, &json!("invalid_field"))
    );
    assert_eq!(server.last_seq("alice", &room).await, 0);
    alice.assert_alive().await;
}

/// Bodies far over every limit are refused with the error body, and the
/// server goes on serving.
#[tokio::test]
async fn a_10_mb_body_is_refused_and_the_server_stays_up() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let huge = "x".repeat(10 << 20);
    let path = format!("/api/v1/rooms/{room}/messages");
    let (status, body) = server
        .api("alice")
        .post(&path, json!({"content": huge}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json");
    let over_upload_limit = vec![b'x'; (10 << 20) + 1];
    let (status, body) = server
        .api("alice")
        .upload("huge.bin", "application/octet-stream", &over_upload_limit)
        .await;
    assert_eq!(status, 413, "{body}");
    // Over WebSocket the server stops reading at the frame header and closes
    // (1009); a client still writing may see its write reset instead.
    let mut alice = server.ws("alice").await;
    let frame = json!({"type": "send_message", "room_id": room, "content": huge}).to_string();
    let written = futures_util::SinkExt::send(&mut alice.stream, Message::text(frame)).await;
    if written.is_ok() {
        let ended = alice.ended().await;
        assert!(
            matches!(ended, Ended::Closed(1009) | Ended::Dropped),
            "{ended:?}"
        );
    }
    assert_eq!(server.last_seq("alice", &room).await, 0);
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "still here").await;
}
