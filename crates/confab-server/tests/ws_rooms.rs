//! Rooms on the unified endpoint (protocol.md §2.3, §2.4, §7): subscribing and
//! unsubscribing, numeric room ids, the room list with cursor paging,
//! presence, ping, and `/ws` meeting `/ws/chat/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, assert_timestamp, unstamped};
use serde_json::{Value, json};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

#[tokio::test]
async fn subscribe_answers_subscribed_with_last_seq_and_unread_count() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "one").await;
    alice.send_message(&room, "two").await;
    let mut bob = server.ws("bob").await;
    let subscribed = bob
        .send_and_reply(json!({"type": "subscribe_room", "room_id": room, "req_id": 7}))
        .await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["req_id"], 7);
    assert_eq!(subscribed["room_id"], room.as_str());
    assert_eq!(subscribed["last_seq"], 2);
    assert_eq!(subscribed["unread_count"], 2);
    assert_timestamp(&subscribed["timestamp"]);
    // Without since_seq nothing is replayed.
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscribe_refusals_name_the_request_and_the_room() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut mallory = server.ws("mallory").await;
    let refused = mallory
        .send_and_reply(json!({"type": "subscribe_room", "room_id": room, "req_id": "s-1"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "forbidden");
    assert_eq!(refused["req_id"], "s-1");
    assert_eq!(refused["room_id"], room.as_str());

    let missing = mallory
        .send_and_reply(json!({"type": "subscribe_room", "room_id": "no-such-room", "req_id": 8}))
        .await;
    assert_eq!(missing["type"], "error", "{missing}");
    assert_eq!(missing["code"], "not_found");
    assert_eq!(missing["req_id"], 8);
    assert_eq!(missing["room_id"], "no-such-room");

    // A refused subscription delivers nothing from the room.
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "private").await;
    mallory.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unsubscribe_stops_live_messages_and_twice_is_not_subscribed() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let never = bob
        .send_and_reply(json!({"type": "unsubscribe_room", "room_id": room, "req_id": 1}))
        .await;
    assert_eq!(never["type"], "error", "{never}");
    assert_eq!(never["code"], "not_subscribed");
    assert_eq!(never["req_id"], 1);
    assert_eq!(never["room_id"], room.as_str());

    bob.subscribe(&room).await;
    alice.send_message(&room, "while subscribed").await;
    assert_eq!(
        bob.recv_type("new_message").await["message"]["content"],
        "while subscribed"
    );
    let done = bob
        .send_and_reply(json!({"type": "unsubscribe_room", "room_id": room, "req_id": 2}))
        .await;
    assert_eq!(
        unstamped(&done),
        json!({"type": "unsubscribed", "room_id": room, "req_id": 2})
    );
    alice.send_message(&room, "after unsubscribe").await;
    bob.expect_silence(QUIET).await;
    bob.expect_error(
        json!({"type": "unsubscribe_room", "room_id": room}),
        "not_subscribed",
    )
    .await;
    // Still a member: history has it.
    let history = bob
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(history["messages"][1]["content"], "after unsubscribe");
}

#[tokio::test]
async fn subscribing_twice_still_delivers_each_message_once() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    bob.subscribe(&room).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "once").await;
    assert_eq!(bob.recv_type("new_message").await["message"]["seq"], 1);
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn numeric_room_ids_mean_their_decimal_string() {
    let server = TestServer::start().await;
    server.room_with_id("alice", "45", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let subscribed = bob
        .send_and_reply(json!({"type": "subscribe_room", "room_id": 45, "req_id": 1}))
        .await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["room_id"], "45");

    let ack = alice
        .request(json!({"type": "send_message", "room_id": 45, "content": "by number"}))
        .await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["room_id"], "45");
    let got = bob.recv_type("new_message").await;
    assert_eq!(got["room_id"], "45");
    assert_eq!(got["message"]["room_id"], "45");
    let history = bob
        .request(json!({"type": "get_history", "room_id": 45}))
        .await;
    assert_eq!(history["room_id"], "45");
    assert_eq!(history["messages"][0]["content"], "by number");
    let typing_elsewhere = bob
        .expect_error(json!({"type": "typing", "room_id": 46}), "not_subscribed")
        .await;
    assert_eq!(typing_elsewhere["room_id"], "46");
    let missing = bob
        .expect_error(
            json!({"type": "subscribe_room", "room_id": 999}),
            "not_found",
        )
        .await;
    assert_eq!(missing["room_id"], "999");
    let unsubscribed = bob
        .request(json!({"type": "unsubscribe_room", "room_id": 45}))
        .await;
    assert_eq!(unsubscribed["type"], "unsubscribed");
    assert_eq!(unsubscribed["room_id"], "45");
}

#[tokio::test]
async fn ping_answers_pong_with_the_req_id() {
    let server = TestServer::start().await;
    let mut ws = server.ws("alice").await;
    // Any string or number (protocol.md §2), echoed exactly as sent.
    for req_id in [
        json!(1),
        json!("abc"),
        json!(-3),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
    ] {
        let pong = ws
            .send_and_reply(json!({"type": "ping", "req_id": req_id}))
            .await;
        assert_eq!(pong["type"], "pong", "{pong}");
        assert_eq!(pong["req_id"], req_id);
        assert_timestamp(&pong["timestamp"]);
    }
    for req_id in [json!(2.25), json!(u64::MAX)] {
        let error = ws
            .send_and_reply(json!({"type": "no_such_type", "req_id": req_id}))
            .await;
        assert_eq!(error["code"], "unknown_type", "{error}");
        assert_eq!(error["req_id"], req_id, "errors echo it too");
    }
    let bare = ws.send_and_reply(json!({"type": "ping"})).await;
    assert_eq!(bare["type"], "pong");
    assert!(bare.get("req_id").is_none_or(Value::is_null), "{bare}");
}

#[tokio::test]
async fn presence_lists_the_members_with_a_connection() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut alice = server.ws("alice").await;
    let bob = server.ws("bob").await;
    let _dave = server.ws("dave").await;
    let presence = alice
        .send_and_reply(json!({"type": "get_presence", "room_id": room, "req_id": 3}))
        .await;
    assert_eq!(
        unstamped(&presence),
        json!({"type": "presence", "room_id": room, "online": ["alice", "bob"], "req_id": 3})
    );
    // Wait for the departure to be seen, then ask again.
    alice.subscribe(&room).await;
    bob.close().await;
    let offline = alice.recv_type("user_offline").await;
    assert_eq!(offline["user_id"], "bob");
    let presence = alice
        .request(json!({"type": "get_presence", "room_id": room}))
        .await;
    assert_eq!(presence["online"], json!(["alice"]));
    let mut carol = server.ws("carol").await;
    let presence = carol
        .request(json!({"type": "get_presence", "room_id": room}))
        .await;
    assert_eq!(presence["online"], json!(["alice", "carol"]));
    let mut mallory = server.ws("mallory").await;
    mallory
        .expect_error(
            json!({"type": "get_presence", "room_id": room}),
            "forbidden",
        )
        .await;
}

fn ids(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn room_list_is_newest_activity_first_with_last_message_and_participants() {
    let server = TestServer::start().await;
    let mut rooms = Vec::new();
    for n in 0..3 {
        rooms.push(
            server
                .room_with_id("alice", &format!("r{n}"), &["bob"])
                .await,
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut alice = server.ws("alice").await;
    let list = alice
        .send_and_reply(json!({"type": "get_room_list", "req_id": 1}))
        .await;
    assert_eq!(list["type"], "room_list", "{list}");
    assert_eq!(list["req_id"], 1);
    assert_eq!(ids(&list), ["r2", "r1", "r0"], "newest created first");
    assert!(list["next_cursor"].is_null(), "one page: {list}");
    let empty = &list["rooms"][0];
    assert!(empty["last_message_content"].is_null(), "{empty}");
    assert!(empty["last_message_time"].is_null(), "{empty}");

    alice.send_message("r0", "bump r0").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut bob = server.ws("bob").await;
    bob.send_message("r1", "bump r1").await;
    let list = alice.request(json!({"type": "get_room_list"})).await;
    assert_eq!(ids(&list), ["r1", "r0", "r2"], "newest activity first");
    let r1 = &list["rooms"][0];
    assert_eq!(r1["name"], "r1");
    assert_eq!(r1["room_type"], "group");
    assert_eq!(r1["last_seq"], 1);
    assert_eq!(r1["last_message_content"], "bump r1");
    assert_timestamp(&r1["last_message_time"]);
    assert_eq!(r1["unread_count"], 1);
    assert_eq!(
        r1["participants"],
        json!([
            {"id": "alice", "name": null, "online": true},
            {"id": "bob", "name": null, "online": true}
        ])
    );
    assert_eq!(list["rooms"][1]["last_message_content"], "bump r0");
    assert_eq!(
        list["rooms"][1]["unread_count"], 0,
        "own messages are not unread"
    );
    // Bob's list is his own: the same rooms, his unread counts.
    let bobs = bob.request(json!({"type": "get_room_list"})).await;
    assert_eq!(ids(&bobs), ["r1", "r0", "r2"]);
    assert_eq!(bobs["rooms"][0]["unread_count"], 0);
    assert_eq!(bobs["rooms"][1]["unread_count"], 1);
    // REST lists the same rooms the same way.
    let (status, rest) = server.api("bob").get("/api/v1/rooms").await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["rooms"], bobs["rooms"]);
    let mut carol = server.ws("carol").await;
    let none = carol.request(json!({"type": "get_room_list"})).await;
    assert_eq!(none["rooms"], json!([]));
}

#[tokio::test]
async fn room_list_pages_by_cursor_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(server.room_with_id("alice", &format!("p{n}"), &[]).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut ws = server.ws("alice").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut frame = json!({"type": "get_room_list", "limit": 2});
        if let Some(c) = &cursor {
            frame["cursor"] = json!(c);
        }
        let page = ws.request(frame).await;
        assert_eq!(page["type"], "room_list", "{page}");
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"]);

    // Four rooms in pages of two: the second page is the last one.
    let (_, first) = server.api("alice").get("/api/v1/rooms?limit=4").await;
    assert_eq!(ids(&first), ["p4", "p3", "p2", "p1"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, last) = server
        .api("alice")
        .get(&format!("/api/v1/rooms?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(ids(&last), ["p0"]);
    assert!(last["next_cursor"].is_null(), "{last}");
    let (_, exact) = server.api("alice").get("/api/v1/rooms?limit=5").await;
    assert_eq!(exact["rooms"].as_array().unwrap().len(), 5);
    assert!(
        exact["next_cursor"].is_null(),
        "no next page when the last one is exactly full: {exact}"
    );
    let bad = ws
        .expect_error(
            json!({"type": "get_room_list", "cursor": "not-a-cursor"}),
            "invalid_field",
        )
        .await;
    assert!(bad["req_id"].is_string());
}

#[tokio::test]
async fn ws_and_ws_chat_and_rest_meet_in_one_room() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws_at("/ws", "alice").await;
    let mut bob = server.ws_at("/ws/chat/", "bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;
    alice.send_message(&room, "from /ws").await;
    let got = bob.recv_type("new_message").await;
    assert_eq!(got["message"]["content"], "from /ws");
    assert_eq!(got["message"]["sender"]["id"], "alice");
    bob.send_message(&room, "from /ws/chat/").await;
    assert_eq!(
        bob.recv_type("new_message").await["message"]["content"],
        "from /ws/chat/"
    );
    let seen: Vec<Value> = alice
        .recv_new_messages(2)
        .await
        .into_iter()
        .map(|f| f["message"]["content"].clone())
        .collect();
    assert_eq!(seen, [json!("from /ws"), json!("from /ws/chat/")]);
    let (status, body) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "Job accepted. Chat is now active.", "message_type": "SYSTEM"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["duplicate"], false);
    for ws in [&mut alice, &mut bob] {
        let got = ws.recv_type("new_message").await;
        assert_eq!(got["message"]["message_type"], "system");
        assert_eq!(got["message"]["seq"], 3);
    }
}
