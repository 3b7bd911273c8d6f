//! Bad input on the unified endpoint (protocol.md §2, §2.1, §2.4): every malformed
//! frame gets an `error` with its contract code, the connection stays usable,
//! and nothing is stored; only an oversized frame closes (1009).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer, WsClient};
use serde_json::{Value, json};

/// Sends raw `text` and asserts an `error` with `code` (echoing `req_id` 1
/// when the text carried it), then that the connection still answers ping.
async fn assert_refused(ws: &mut WsClient, text: &str, code: &str) -> Value {
    ws.send_text(text).await;
    let reply = ws.recv_json().await;
    assert_eq!(reply["type"], "error", "{text} → {reply}");
    assert_eq!(reply["code"], code, "{text} → {reply}");
    assert!(reply["message"].is_string(), "{text} → {reply}");
    if text.contains(r#""req_id":1"#) {
        assert_eq!(reply["req_id"], 1, "{text} → {reply}");
    }
    ws.assert_alive().await;
    reply
}

#[tokio::test]
async fn text_that_is_not_a_json_object_is_invalid_json() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    for text in [
        "{not json",
        "",
        "   ",
        "[1]",
        "42",
        r#""send_message""#,
        "null",
        r#"{"type":"send_message","room_id":"R","content":"x""#,
    ] {
        assert_refused(&mut ws, text, "invalid_json").await;
    }
    assert_eq!(server.last_seq("alice", &room).await, 0);
}

#[tokio::test]
async fn a_binary_frame_is_refused_with_an_error_and_stores_nothing() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    let frame = json!({"type": "send_message", "room_id": room, "content": "in binary"});
    ws.send_binary(frame.to_string().into_bytes()).await;
    let reply = ws.recv_json().await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "invalid_json", "{reply}");
    ws.assert_alive().await;
    assert_eq!(server.last_seq("alice", &room).await, 0);
}

#[tokio::test]
async fn unknown_and_missing_types() {
    let server = TestServer::start().await;
    let mut ws = server.ws("alice").await;
    for text in [
        r#"{"type":"teleport","req_id":1}"#,
        r#"{"type":"","req_id":1}"#,
        r#"{"type":"send_messages","room_id":"r","content":"x","req_id":1}"#,
    ] {
        assert_refused(&mut ws, text, "unknown_type").await;
    }
    for text in [
        r#"{"room_id":"x","req_id":1}"#,
        r#"{"type":7,"req_id":1}"#,
        r#"{"type":null,"req_id":1}"#,
        r#"{"type":["ping"],"req_id":1}"#,
    ] {
        assert_refused(&mut ws, text, "invalid_field").await;
    }
}

#[tokio::test]
async fn missing_and_wrongly_typed_fields_are_invalid_field() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    ws.subscribe(&room).await;
    let cases = [
        // Missing required fields.
        r#"{"type":"subscribe_room","req_id":1}"#,
        r#"{"type":"unsubscribe_room","req_id":1}"#,
        r#"{"type":"send_message","content":"x","req_id":1}"#,
        // `content` is a required field of send_message (protocol.md §2.3).
        r#"{"type":"send_message","room_id":"ROOM","req_id":1}"#,
        r#"{"type":"get_history","req_id":1}"#,
        r#"{"type":"get_presence","req_id":1}"#,
        r#"{"type":"typing","req_id":1}"#,
        r#"{"type":"mark_read","req_id":1}"#,
        r#"{"type":"refresh_token","req_id":1}"#,
        r#"{"type":"edit_message","room_id":"ROOM","content":"x","req_id":1}"#,
        // Wrongly typed fields.
        r#"{"type":"subscribe_room","room_id":{"id":1},"req_id":1}"#,
        r#"{"type":"subscribe_room","room_id":true,"req_id":1}"#,
        r#"{"type":"subscribe_room","room_id":4.5,"req_id":1}"#,
        r#"{"type":"subscribe_room","room_id":"ROOM","since_seq":"3","req_id":1}"#,
        r#"{"type":"subscribe_room","room_id":"ROOM","since_seq":-1,"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":7,"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":null,"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":["x"],"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":"x","message_type":5,"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":"x","client_msg_id":{},"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":"x","client_msg_id":"","req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":"x","reply_to":[1],"req_id":1}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":"x","metadata":"meta","req_id":1}"#,
        r#"{"type":"get_history","room_id":"ROOM","limit":"ten","req_id":1}"#,
        r#"{"type":"get_history","room_id":"ROOM","before_seq":-5,"req_id":1}"#,
        r#"{"type":"mark_read","room_id":"ROOM","up_to_seq":"all","req_id":1}"#,
        r#"{"type":"typing","room_id":"ROOM","is_typing":"yes","req_id":1}"#,
        r#"{"type":"get_room_list","limit":-2,"req_id":1}"#,
    ];
    for text in cases {
        let text = text.replace("ROOM", &room);
        let reply = assert_refused(&mut ws, &text, "invalid_field").await;
        if text.contains(&format!(r#""room_id":"{room}""#)) {
            assert_eq!(reply["room_id"], room.as_str(), "{text} → {reply}");
        }
    }
    assert_eq!(
        server.last_seq("alice", &room).await,
        0,
        "nothing was stored"
    );
}

#[tokio::test]
async fn empty_and_whitespace_content_is_empty_message() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    for content in ["", " ", "   \n\t ", "\u{3000}"] {
        let frame =
            json!({"type": "send_message", "room_id": room, "content": content, "req_id": 1});
        let reply = assert_refused(&mut ws, &frame.to_string(), "empty_message").await;
        assert_eq!(reply["room_id"], room.as_str());
    }
    assert_eq!(server.last_seq("alice", &room).await, 0);
}

#[tokio::test]
async fn content_is_limited_in_characters_not_bytes() {
    let server = TestServer::start_with(|c| c.limits.max_message_length = 5).await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    for content in [
        "toolong",
        "héllöx",
        "日本語ですね",
        "👍👍👍👍👍👍",
        "abcdef",
    ] {
        let frame =
            json!({"type": "send_message", "room_id": room, "content": content, "req_id": 1});
        let reply = assert_refused(&mut ws, &frame.to_string(), "message_too_long").await;
        assert_eq!(reply["room_id"], room.as_str(), "{content}");
    }
    assert_eq!(server.last_seq("alice", &room).await, 0, "none stored");
    // Exactly the limit is accepted, however many bytes it takes.
    ws.subscribe(&room).await;
    for (n, content) in ["abcde", "héllö", "日本語です", "👍👍👍👍👍"]
        .iter()
        .enumerate()
    {
        let ack = ws.send_message(&room, content).await;
        assert_eq!(ack["seq"], n as i64 + 1, "{content}");
        let got = ws.recv_type("new_message").await;
        assert_eq!(got["message"]["content"], *content);
    }
    // The same rule on REST.
    let (status, body) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "👍👍👍👍👍👍"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "message_too_long");
    assert_eq!(server.last_seq("alice", &room).await, 4);
}

#[tokio::test]
async fn errors_leave_the_connection_and_its_subscriptions_working() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    for text in [
        "{oops",
        r#"{"type":"fly"}"#,
        r#"{"type":"send_message","room_id":"ROOM","content":"  "}"#,
    ] {
        bob.send_text(&text.replace("ROOM", &room)).await;
        assert_eq!(bob.recv_json().await["type"], "error");
    }
    alice.send_message(&room, "still here?").await;
    let got = bob.recv_type("new_message").await;
    assert_eq!(got["message"]["seq"], 1, "the failed sends used no seq");
    assert_eq!(got["message"]["content"], "still here?");
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_1009_and_exactly_the_limit_is_accepted() {
    let server = TestServer::start_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut ws = server.ws("alice").await;
    let padded = |size: usize| {
        let empty = r#"{"type":"ping","req_id":1,"pad":""}"#;
        format!(
            r#"{{"type":"ping","req_id":1,"pad":"{}"}}"#,
            "x".repeat(size - empty.len())
        )
    };
    let exact = padded(1024);
    assert_eq!(exact.len(), 1024);
    ws.send_text(&exact).await;
    let pong = ws.recv_json().await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(pong["req_id"], 1);
    ws.send_text(&padded(1025)).await;
    assert_eq!(ws.ended().await, Ended::Closed(1009));
    let mut big = server.ws("alice").await;
    big.send_text(&padded(64 * 1024)).await;
    assert_eq!(big.ended().await, Ended::Closed(1009));
}
