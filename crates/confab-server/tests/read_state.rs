//! Read markers and unread counts (protocol.md §2.3, §2.4, §4, §7): `unread_count`
//! in `subscribed`, `room_list` and the REST room answers for every member
//! (own messages never unread), and `mark_read` by `up_to_seq`, by
//! `message_ids`, or everything, over WebSocket and REST, with `message_read`
//! to the room and `room_updated` to every connection of the reader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient, assert_timestamp, unstamped};
use serde_json::{Value, json};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

/// A room of alice, bob and carol with five messages: alice sends seqs 1, 3
/// and 5, bob 2 and 4. Returns the room and the message ids by seq (index 0
/// is seq 1).
async fn five_messages(server: &TestServer) -> (String, Vec<String>) {
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        let sender = if n % 2 == 1 { &mut alice } else { &mut bob };
        let ack = sender.send_message(&room, &format!("m{n}")).await;
        assert_eq!(ack["seq"], n);
        ids.push(ack["message_id"].as_str().unwrap().to_owned());
    }
    (room, ids)
}

async fn unread_everywhere(server: &TestServer, user: &str, room: &str) -> [i64; 4] {
    let mut ws = server.ws(user).await;
    let subscribed = ws.subscribe(room).await["unread_count"].as_i64().unwrap();
    let list = ws.request(json!({"type": "get_room_list"})).await;
    let listed = list["rooms"][0]["unread_count"].as_i64().unwrap();
    let (_, rooms) = server.api(user).get("/api/v1/rooms").await;
    let rest_list = rooms["rooms"][0]["unread_count"].as_i64().unwrap();
    let rest_room = server.room_as(user, room).await["unread_count"]
        .as_i64()
        .unwrap();
    [subscribed, listed, rest_list, rest_room]
}

#[tokio::test]
async fn unread_counts_are_per_member_and_never_count_own_messages() {
    let server = TestServer::start().await;
    let (room, _) = five_messages(&server).await;
    assert_eq!(unread_everywhere(&server, "alice", &room).await, [2; 4]);
    assert_eq!(unread_everywhere(&server, "bob", &room).await, [3; 4]);
    assert_eq!(unread_everywhere(&server, "carol", &room).await, [5; 4]);
}

/// Reads the next frame and asserts it is a `room_updated` with `unread_count`.
async fn expect_unread_update(ws: &mut WsClient, room: &str, unread: i64) {
    let update = ws.recv_type("room_updated").await;
    assert_eq!(update["room_id"], room, "{update}");
    assert_eq!(update["updates"]["unread_count"], unread, "{update}");
}

async fn expect_read(ws: &mut WsClient, room: &str, user: &str, up_to: i64) -> Value {
    let read = ws.recv_type("message_read").await;
    assert_eq!(read["room_id"], room, "{read}");
    assert_eq!(read["user_id"], user, "{read}");
    assert_eq!(read["up_to_seq"], up_to, "{read}");
    assert_timestamp(&read["timestamp"]);
    read
}

#[tokio::test]
async fn mark_read_by_seq_by_ids_and_all_tells_the_room_and_the_readers_connections() {
    let server = TestServer::start().await;
    let (room, ids) = five_messages(&server).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    let mut carol_phone = server.ws("carol").await;
    carol_phone.subscribe(&room).await;
    let mut carol_laptop = server.ws("carol").await; // not subscribed
    let mut bob = server.ws("bob").await; // a member, not subscribed

    carol_phone
        .send(json!({"type": "mark_read", "room_id": room, "up_to_seq": 3}))
        .await;
    let read = expect_read(&mut alice, &room, "carol", 3).await;
    assert!(
        read.get("message_ids").is_none_or(Value::is_null),
        "no ids were named: {read}"
    );
    expect_read(&mut carol_phone, &room, "carol", 3).await;
    expect_unread_update(&mut carol_phone, &room, 2).await;
    expect_unread_update(&mut carol_laptop, &room, 2).await;
    alice.expect_silence(QUIET).await; // no room_updated for others
    bob.expect_silence(Duration::from_millis(10)).await;

    carol_laptop
        .send(json!({"type": "mark_read", "room_id": room, "message_ids": [ids[3], ids[1]]}))
        .await;
    let read = expect_read(&mut alice, &room, "carol", 4).await;
    assert_eq!(read["message_ids"], json!([ids[3], ids[1]]));
    expect_unread_update(&mut carol_phone, &room, 1).await;
    expect_unread_update(&mut carol_laptop, &room, 1).await;

    // With a req_id the reader also gets an ack (the order against its own
    // room_updated is not part of the contract).
    carol_laptop
        .send(json!({"type": "mark_read", "room_id": room, "req_id": "all"}))
        .await;
    let mut got = [
        carol_laptop.recv_json().await,
        carol_laptop.recv_json().await,
    ];
    got.sort_by_key(|f| f["type"].as_str().unwrap().to_owned());
    assert_eq!(unstamped(&got[0]), json!({"type": "ack", "req_id": "all"}));
    assert_eq!(got[1]["type"], "room_updated");
    assert_eq!(got[1]["updates"]["unread_count"], 0);
    expect_read(&mut alice, &room, "carol", 5).await;
    expect_unread_update(&mut carol_phone, &room, 0).await;
    assert_eq!(server.room_as("carol", &room).await["unread_count"], 0);
    assert_eq!(
        server.room_as("alice", &room).await["unread_count"],
        2,
        "alice's marker is her own"
    );
    bob.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn rest_read_moves_the_marker_and_tells_the_room() {
    let server = TestServer::start().await;
    let (room, ids) = five_messages(&server).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    let mut bob = server.ws("bob").await;

    let (status, body) = server
        .api("bob")
        .post(
            &format!("/api/v1/rooms/{room}/read"),
            json!({"up_to_seq": 3}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    assert_eq!(body["last_read_seq"], 3);
    assert_eq!(body["unread_count"], 1, "only alice's seq 5 is left");
    expect_read(&mut alice, &room, "bob", 3).await;
    expect_unread_update(&mut bob, &room, 1).await;

    let (status, body) = server
        .api("carol")
        .post(
            &format!("/api/v1/rooms/{room}/read"),
            json!({"message_ids": [ids[1]]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_read_seq"], 2);
    assert_eq!(body["unread_count"], 3);
    expect_read(&mut alice, &room, "carol", 2).await;

    // No body at all: everything.
    let (status, body) = server
        .api("carol")
        .call_raw(
            reqwest::Method::POST,
            &format!("/api/v1/rooms/{room}/read"),
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_read_seq"], 5);
    assert_eq!(body["unread_count"], 0);
    expect_read(&mut alice, &room, "carol", 5).await;

    let (status, body) = server
        .api("mallory")
        .post(&format!("/api/v1/rooms/{room}/read"), json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = server
        .api("bob")
        .post("/api/v1/rooms/nowhere/read", json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn markers_never_move_back_nor_past_the_last_message() {
    let server = TestServer::start().await;
    let (room, _) = five_messages(&server).await;
    let mut carol = server.ws("carol").await;
    carol.subscribe(&room).await;
    // Beyond the end: everything now is read, later messages are not.
    carol
        .request(json!({"type": "mark_read", "room_id": room, "up_to_seq": 999}))
        .await;
    assert_eq!(server.room_as("carol", &room).await["unread_count"], 0);
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "m6").await;
    assert_eq!(
        server.room_as("carol", &room).await["unread_count"],
        1,
        "a marker past the end must not swallow later messages"
    );
    // Backward: nothing becomes unread again.
    carol
        .request(json!({"type": "mark_read", "room_id": room, "up_to_seq": 6}))
        .await;
    let ack = carol
        .request(json!({"type": "mark_read", "room_id": room, "up_to_seq": 1}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(server.room_as("carol", &room).await["unread_count"], 0);
    let sub = carol.subscribe(&room).await;
    assert_eq!(sub["unread_count"], 0);
}

#[tokio::test]
async fn mark_read_refusals() {
    let server = TestServer::start().await;
    let (room, _) = five_messages(&server).await;
    let mut mallory = server.ws("mallory").await;
    let refused = mallory
        .expect_error(json!({"type": "mark_read", "room_id": room}), "forbidden")
        .await;
    assert_eq!(refused["room_id"], room.as_str());
    mallory
        .expect_error(
            json!({"type": "mark_read", "room_id": "nowhere"}),
            "not_found",
        )
        .await;
    let mut carol = server.ws("carol").await;
    carol
        .expect_error(
            json!({"type": "mark_read", "room_id": room, "message_ids": ["no-such-id"]}),
            "not_found",
        )
        .await;
    carol
        .expect_error(
            json!({"type": "mark_read", "room_id": room, "up_to_seq": -1}),
            "invalid_field",
        )
        .await;
    assert_eq!(server.room_as("carol", &room).await["unread_count"], 5);
}
