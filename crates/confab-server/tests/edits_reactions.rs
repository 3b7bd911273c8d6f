//! Edits, deletes and reactions (protocol.md §2.3, §2.4; issue 4 items 2 and 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn senders_and_room_admins_edit_and_delete_others_cannot() {
    let server = TestServer::start().await;
    let room = server.room("owner", &["alice", "bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;
    let ack = alice.send_message(&room, "helo").await;
    let id = ack["message_id"].as_str().unwrap().to_owned();
    bob.recv_type("new_message").await;

    let refused = bob
        .request(
            json!({"type": "edit_message", "room_id": room, "message_id": id, "content": "hacked"}),
        )
        .await;
    assert_eq!(refused["code"], "forbidden");
    let empty = alice
        .request(json!({"type": "edit_message", "room_id": room, "message_id": id, "content": " "}))
        .await;
    assert_eq!(empty["code"], "empty_message");
    let missing = alice
        .request(
            json!({"type": "edit_message", "room_id": room, "message_id": "nope", "content": "x"}),
        )
        .await;
    assert_eq!(missing["code"], "not_found");

    let ok = alice
        .request(
            json!({"type": "edit_message", "room_id": room, "message_id": id, "content": "hello"}),
        )
        .await;
    assert_eq!(ok["type"], "ack");
    let updated = bob.recv_type("message_updated").await;
    assert_eq!(updated["message"]["content"], "hello");
    assert_eq!(updated["message"]["seq"], 1);
    assert!(updated["message"]["edited_at"].is_string());

    // The room owner moderates: may edit and delete another's message.
    let (status, body) = server
        .api("owner")
        .patch(
            &format!("/api/v1/rooms/{room}/messages/{id}"),
            json!({"content": "[edited by owner]"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["content"], "[edited by owner]");
    let (status, _) = server
        .api("bob")
        .delete(&format!("/api/v1/rooms/{room}/messages/{id}"))
        .await;
    assert_eq!(status, 403);
    let deleted = alice
        .request(json!({"type": "delete_message", "room_id": room, "message_id": id}))
        .await;
    assert_eq!(deleted["type"], "ack");
    let gone = bob.recv_type("message_deleted").await;
    assert_eq!(gone["message"]["deleted"], true);
    assert_eq!(gone["message"]["content"], "");

    let again = alice
        .request(
            json!({"type": "edit_message", "room_id": room, "message_id": id, "content": "back"}),
        )
        .await;
    assert_eq!(
        again["code"], "not_found",
        "a deleted message cannot be edited"
    );
    let history = bob
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(history["messages"][0]["seq"], 1, "the seq slot stays");
    assert_eq!(history["messages"][0]["deleted"], true);
    assert_eq!(history["messages"][0]["content"], "");
}

#[tokio::test]
async fn deleted_messages_no_longer_count_as_unread() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let first = alice.send_message(&room, "one").await;
    alice.send_message(&room, "two").await;
    let (_, before) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(before["unread_count"], 2);
    alice
        .request(
            json!({"type": "delete_message", "room_id": room, "message_id": first["message_id"]}),
        )
        .await;
    let (_, after) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(after["unread_count"], 1);
}

#[tokio::test]
async fn reactions_are_idempotent_per_user_and_emoji_and_show_in_history() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let mut carol = server.ws("carol").await;
    alice.subscribe(&room).await;
    let id = alice.send_message(&room, "party?").await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let react = |kind: &str, emoji: &str| json!({"type": kind, "room_id": room, "message_id": id, "emoji": emoji});
    for _ in 0..2 {
        assert_eq!(
            bob.request(react("add_reaction", "🎉")).await["type"],
            "ack"
        );
    }
    carol.request(react("add_reaction", "🎉")).await;
    carol.request(react("add_reaction", "👍")).await;
    let mut last = json!(null);
    for _ in 0..4 {
        last = alice.recv_type("reaction_updated").await;
    }
    assert_eq!(last["message_id"], id.as_str());
    assert_eq!(
        last["reactions"],
        json!({"🎉": ["bob", "carol"], "👍": ["carol"]})
    );
    alice.expect_silence(Duration::from_millis(100)).await;

    bob.request(react("remove_reaction", "🎉")).await;
    bob.request(react("remove_reaction", "🎉")).await;
    let history = alice
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(
        history["messages"][0]["reactions"],
        json!({"🎉": ["carol"], "👍": ["carol"]})
    );

    let missing = bob
        .request(
            json!({"type": "add_reaction", "room_id": room, "message_id": "nope", "emoji": "x"}),
        )
        .await;
    assert_eq!(missing["code"], "not_found");
    let bad = bob.request(react("add_reaction", "two words")).await;
    assert_eq!(bad["code"], "invalid_field");
    let mut mallory = server.ws("mallory").await;
    let outsider = mallory.request(react("add_reaction", "👎")).await;
    assert_eq!(outsider["code"], "forbidden");
}
