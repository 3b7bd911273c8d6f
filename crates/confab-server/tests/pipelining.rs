//! Sends in flight: a WebSocket session reads on while its sends commit
//! (they share the store's commits), yet a client sees exactly what it would
//! see sending one at a time — acks and seqs in send order, each refusal with
//! its own `req_id`, and any other frame answered only after every send
//! before it is stored. Also: what a member may do is remembered between
//! sends, and forgotten the moment it changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, seqs, unlimited};
use serde_json::{Value, json};

/// Sends `frames` back to back without reading anything in between.
async fn burst(client: &mut common::WsClient, frames: impl IntoIterator<Item = Value>) {
    for frame in frames {
        client.send(frame).await;
    }
}

#[tokio::test]
async fn a_burst_of_sends_is_acked_and_numbered_in_send_order() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;

    let n = 300;
    burst(
        &mut alice,
        (0..n).map(|i| json!({"type": "send_message", "room_id": room, "content": format!("m{i}"), "req_id": i})),
    )
    .await;

    // The sender: ack i before its own new_message, seq i + 1, in order.
    let mut acked = 0;
    let mut echoed = 0;
    while echoed < n {
        let frame = alice.recv_json().await;
        match frame["type"].as_str() {
            Some("message_ack") => {
                assert_eq!(frame["req_id"], acked, "{frame}");
                assert_eq!(frame["seq"], acked + 1, "{frame}");
                acked += 1;
            }
            Some("new_message") => {
                assert!(echoed < acked, "new_message before its ack: {frame}");
                assert_eq!(frame["message"]["seq"], echoed + 1, "{frame}");
                assert_eq!(frame["message"]["content"], format!("m{echoed}"));
                echoed += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(acked, n);
    // Another member: every message once, in order.
    for i in 0..n {
        let frame = bob.recv_type("new_message").await;
        assert_eq!(frame["message"]["seq"], i + 1, "{frame}");
    }
    assert_eq!(server.last_seq("alice", &room).await, n);
}

#[tokio::test]
async fn refusals_in_a_burst_keep_their_req_id_and_store_nothing() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob"]).await;
    let elsewhere = server.room("carol", &[]).await;
    let mut alice = server.ws("alice").await;

    let send = |req: i64, room: &str, extra: Value| {
        let mut frame = json!({"type": "send_message", "room_id": room, "content": format!("m{req}"), "req_id": req});
        if let (Some(frame), Some(extra)) = (frame.as_object_mut(), extra.as_object()) {
            frame.extend(extra.clone());
        }
        frame
    };
    burst(
        &mut alice,
        [
            send(1, &room, json!({"client_msg_id": "k"})),
            send(2, &elsewhere, json!({})), // not a member
            send(3, &room, json!({"client_msg_id": "k"})), // a repeat
            send(4, &room, json!({"content": " "})), // empty
            send(5, "no-such-room", json!({})), // unknown
            send(6, &room, json!({})),
        ],
    )
    .await;

    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 6 {
        let frame = alice.recv_json().await;
        let req = frame["req_id"]
            .as_i64()
            .expect("every answer has its req_id");
        assert!(answers.insert(req, frame).is_none(), "answered twice");
    }
    assert_eq!(answers[&1]["type"], "message_ack");
    assert_eq!(answers[&1]["seq"], 1);
    assert_eq!(answers[&2]["code"], "forbidden", "{}", answers[&2]);
    assert_eq!(answers[&2]["room_id"], elsewhere.as_str());
    assert_eq!(answers[&3]["type"], "message_ack");
    assert_eq!(answers[&3]["duplicate"], true);
    assert_eq!(answers[&3]["seq"], 1);
    assert_eq!(answers[&4]["code"], "empty_message", "{}", answers[&4]);
    assert_eq!(answers[&5]["code"], "not_found", "{}", answers[&5]);
    assert_eq!(answers[&6]["type"], "message_ack");
    assert_eq!(answers[&6]["seq"], 2, "refusals used no seq");
    assert_eq!(
        seqs(&Value::Array(server.all_messages("alice", &room).await)),
        [1, 2]
    );
    assert_eq!(server.last_seq("carol", &elsewhere).await, 0);
}

#[tokio::test]
async fn any_other_frame_waits_for_the_sends_before_it() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let n = 100;
    let mut frames: Vec<Value> = (0..n)
        .map(|i| json!({"type": "send_message", "room_id": room, "content": format!("m{i}")}))
        .collect();
    frames.push(json!({"type": "get_history", "room_id": room, "limit": 100, "req_id": "h"}));
    burst(&mut alice, frames).await;
    let history = alice.recv_type("history").await;
    assert_eq!(history["req_id"], "h");
    let got = seqs(&history["messages"]);
    assert_eq!(
        got,
        (1..=n).collect::<Vec<i64>>(),
        "history sees every earlier send"
    );

    // The same for the room list asked right behind a burst.
    let mut frames: Vec<Value> = (0..20)
        .map(|i| json!({"type": "send_message", "room_id": room, "content": format!("x{i}")}))
        .collect();
    frames.push(json!({"type": "get_room_list", "req_id": "l"}));
    burst(&mut alice, frames).await;
    let list = alice.recv_type("room_list").await;
    let entry = list["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["id"] == room.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("room listed: {list}"));
    assert_eq!(entry["last_seq"], n + 20, "{entry}");
    assert_eq!(entry["last_message_content"], "x19", "{entry}");
}

/// Sends one message and returns the answer (ack or error).
async fn try_send(client: &mut common::WsClient, room: &str, content: &str) -> Value {
    client
        .request(json!({"type": "send_message", "room_id": room, "content": content}))
        .await
}

#[tokio::test]
async fn a_member_removed_demoted_or_in_a_closed_room_is_refused_at_once() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut bob = server.ws("bob").await;
    let mut carol = server.ws("carol").await;
    // Each has sent before: what they may do is remembered.
    assert_eq!(
        try_send(&mut bob, &room, "one").await["type"],
        "message_ack"
    );
    assert_eq!(
        try_send(&mut carol, &room, "one").await["type"],
        "message_ack"
    );

    let alice = server.api("alice");
    let (status, body) = alice
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "bob", "role": "viewer"}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let refused = try_send(&mut bob, &room, "as a viewer").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    let (status, body) = alice
        .delete(&format!("/api/v1/rooms/{room}/members/carol"))
        .await;
    assert!(status.is_success(), "{status} {body}");
    let refused = try_send(&mut carol, &room, "removed").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // Promoted back, bob may send again at once.
    let (status, body) = alice
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "bob", "role": "member"}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(
        try_send(&mut bob, &room, "two").await["type"],
        "message_ack"
    );
    assert_eq!(server.last_seq("alice", &room).await, 3);
}
