//! The AI back-end's context endpoint and the admin stats (issue 4 items 9, 10).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn context_lists_recent_live_messages_with_roles() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let backend = server.server_api();
    backend
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "Session started", "message_type": "system"}),
        )
        .await;
    let mut alice = server.ws("alice").await;
    let doomed = alice.send_message(&room, "oops").await;
    alice
        .request(
            json!({"type": "delete_message", "room_id": room, "message_id": doomed["message_id"]}),
        )
        .await;
    for n in 1..=3 {
        alice.send_message(&room, &format!("question {n}")).await;
    }
    let (status, body) = server
        .api("alice")
        .get(&format!("/api/v1/rooms/{room}/context?max_messages=3"))
        .await;
    assert_eq!(status, 200, "{body}");
    let contents: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["question 1", "question 2", "question 3"]);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["messages"][0]["name"], "alice");

    let (_, all) = server
        .api("alice")
        .get(&format!("/api/v1/rooms/{room}/context"))
        .await;
    let roles: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "user", "user"],
        "the deleted message is left out"
    );
    let (status, _) = server
        .api("mallory")
        .get(&format!("/api/v1/rooms/{room}/context"))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn stats_count_connections_rooms_and_recent_messages_for_admins_only() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    server.room("bob", &[]).await;
    let mut alice = server.ws("alice").await;
    let _alice_again = server.ws("alice").await;
    let _bob = server.ws("bob").await;
    for n in 0..4 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    let (status, stats) = server.server_api().get("/api/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["connections"], 3);
    assert_eq!(stats["users_online"], 2);
    assert_eq!(stats["rooms"], 2);
    assert_eq!(stats["messages_stored"], 4);
    assert_eq!(stats["messages_last_minute"], 4);
    let (status, body) = server.api("alice").get("/api/v1/stats").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
}
