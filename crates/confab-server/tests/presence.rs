//! Presence (issue 4 item 6): online while at least one connection is open,
//! one event per transition and per watching connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn online_and_offline_once_per_transition_not_per_connection_or_room() {
    let server = TestServer::start().await;
    let first = server.room("bob", &["alice"]).await;
    let second = server.room("bob", &["alice"]).await;
    let lonely = server.room("carol", &[]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&first).await;
    bob.subscribe(&second).await;
    let mut carol = server.ws("carol").await;
    carol.subscribe(&lonely).await;

    let mut phone = server.ws("alice").await;
    let online = bob.recv_type("user_online").await;
    assert_eq!(online["user_id"], "alice");
    assert!(online["last_seen"].is_string());
    let mut laptop = server.ws("alice").await;
    bob.expect_silence(Duration::from_millis(200)).await;
    carol.expect_silence(Duration::from_millis(10)).await;

    let presence = bob
        .request(json!({"type": "get_presence", "room_id": first}))
        .await;
    assert_eq!(presence["online"], json!(["alice", "bob"]));

    phone.stream.close(None).await.unwrap();
    bob.expect_silence(Duration::from_millis(200)).await;
    laptop.stream.close(None).await.unwrap();
    let offline = bob.recv_type("user_offline").await;
    assert_eq!(offline["user_id"], "alice");
    bob.expect_silence(Duration::from_millis(200)).await;
    let presence = bob
        .request(json!({"type": "get_presence", "room_id": first}))
        .await;
    assert_eq!(presence["online"], json!(["bob"]));
    let (_, rooms) = server.api("bob").get("/api/v1/rooms").await;
    let alice = rooms["rooms"][0]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(alice["online"], false);
}
