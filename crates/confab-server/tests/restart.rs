//! Restart and shutdown (protocol.md §0, §2.1, §5.1): stored messages, seqs, read
//! markers, idempotency keys and the generated JWT secret survive a restart
//! on the same data dir; stopping closes every open WebSocket with 1012.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer, seqs};
use serde_json::json;

#[tokio::test]
async fn a_restart_keeps_messages_markers_and_keys_and_seq_continues() {
    let mut server = TestServer::start().await;
    let dir = server.keep_data_dir().unwrap();
    let room = server.room_with_id("alice", "job-9", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let first = alice
        .request(
            json!({"type": "send_message", "room_id": room, "content": "one",
                        "client_msg_id": "k-1"}),
        )
        .await;
    alice.send_message(&room, "two").await;
    alice.send_message(&room, "three").await;
    server
        .api("bob")
        .post(
            &format!("/api/v1/rooms/{room}/read"),
            json!({"up_to_seq": 1}),
        )
        .await;
    let before = server.all_messages("bob", &room).await;
    let old_token = server.token("bob");
    server.stop().await;
    assert_eq!(alice.ended().await, Ended::Closed(1012));

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    // The generated secret was kept: a token from before still works.
    let mut bob = server.ws_with_token(&old_token).await;
    let subscribed = bob.subscribe(&room).await;
    assert_eq!(subscribed["last_seq"], 3);
    assert_eq!(subscribed["unread_count"], 2, "bob's marker survived");
    assert_eq!(server.all_messages("bob", &room).await, before);

    let mut alice = server.ws("alice").await;
    let retry = alice
        .request(
            json!({"type": "send_message", "room_id": room, "content": "one",
                        "client_msg_id": "k-1"}),
        )
        .await;
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["message_id"], first["message_id"]);
    assert_eq!(retry["seq"], 1);
    let four = alice.send_message(&room, "four").await;
    assert_eq!(four["seq"], 4, "seq continues where it was");
    assert_eq!(bob.recv_type("new_message").await["message"]["seq"], 4);
    let after = server.all_messages("bob", &room).await;
    assert_eq!(seqs(&json!(after)), [1, 2, 3, 4]);
    assert_eq!(after[..3], before[..]);
    assert_eq!(server.room_as("bob", &room).await["name"], "job-9");
    server.stop().await;
}

#[tokio::test]
async fn stopping_closes_every_open_websocket_with_1012() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut subscribed = server.ws("alice").await;
    subscribed.subscribe(&room).await;
    let mut idle = server.ws("bob").await;
    let mut chat = server.ws_at("/ws/chat/", "bob").await;
    let acked = subscribed.send_message(&room, "last words").await;
    server.stop().await;
    for (name, ws) in [
        ("subscribed", &mut subscribed),
        ("idle", &mut idle),
        ("/ws/chat/", &mut chat),
    ] {
        assert_eq!(ws.ended().await, Ended::Closed(1012), "{name}");
    }
    assert_eq!(acked["seq"], 1);
}

#[tokio::test]
async fn a_connection_still_waiting_for_its_auth_frame_also_gets_1012() {
    let server = TestServer::start_with(|c| c.auth.auth_timeout_s = 30).await;
    let mut waiting = server.ws_raw("/ws", &[]).await;
    server.stop().await;
    // Not the auth timeout's 4001 thirty seconds later: 1012 now.
    assert_eq!(waiting.ended().await, Ended::Closed(1012));
}
