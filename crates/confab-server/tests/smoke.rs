//! The shortest end-to-end path: REST creates a room, two WebSocket clients
//! subscribe, one sends, both see it.
mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn rest_room_ws_send_and_receive() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;
    let ack = alice.send_message(&room, "hello bob").await;
    assert_eq!(ack["seq"], 1);
    let at_alice = alice.recv_type("new_message").await;
    assert_eq!(at_alice["message"]["id"], ack["message_id"]);
    let at_bob = bob.recv_type("new_message").await;
    assert_eq!(at_bob["message"]["content"], "hello bob");
    assert_eq!(at_bob["message"]["sender"]["id"], "alice");
    let (status, body) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"][0]["content"], json!("hello bob"));
    server.stop().await;
}
