//! Sending and reading messages (protocol.md §2.2, §2.3, §5.1, §5.4, §7):
//! `message_ack` before the sender's own `new_message`, fan-out to every
//! subscribed connection, message types, locations, replies, idempotent
//! sends, closed rooms, and `get_history` / REST history paging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, assert_timestamp, seqs, unlimited};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

#[tokio::test]
async fn ack_comes_before_the_senders_own_new_message_and_every_connection_gets_it() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let mut carol = server.ws("carol").await; // a member, not subscribed
    for ws in [&mut phone, &mut laptop, &mut bob] {
        ws.subscribe(&room).await;
    }
    phone
        .send(
            json!({"type": "send_message", "room_id": room, "content": "hi",
                     "client_msg_id": "c-1", "req_id": 9}),
        )
        .await;
    let ack = phone.recv_json().await;
    assert_eq!(ack["type"], "message_ack", "the ack comes first: {ack}");
    assert_eq!(ack["req_id"], 9);
    assert_eq!(ack["room_id"], room.as_str());
    assert_eq!(ack["client_msg_id"], "c-1");
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["duplicate"], false);
    assert!(ack["message_id"].is_string());
    assert_timestamp(&ack["timestamp"]);
    let own = phone.recv_json().await;
    assert_eq!(own["type"], "new_message", "then its own echo: {own}");
    assert!(own.get("req_id").is_none(), "room events carry no req_id");
    assert_eq!(own["message"]["id"], ack["message_id"]);

    for ws in [&mut laptop, &mut bob] {
        let got = ws.recv_json().await;
        assert_eq!(got["type"], "new_message", "{got}");
        assert_eq!(got["room_id"], room.as_str());
        assert_timestamp(&got["timestamp"]);
        let message = &got["message"];
        assert_eq!(message["id"], ack["message_id"]);
        assert_eq!(message["room_id"], room.as_str());
        assert_eq!(message["seq"], 1);
        assert_eq!(message["content"], "hi");
        assert_eq!(message["message_type"], "text");
        assert_eq!(message["sender"]["id"], "alice");
        assert_eq!(message["sender"]["username"], "alice");
        assert!(message["reply_to"].is_null());
        assert_eq!(message["metadata"], json!({}));
        assert!(message["attachment"].is_null());
        assert!(message["location"].is_null());
        assert_eq!(message["reactions"], json!({}));
        assert_eq!(message["timestamp"], ack["timestamp"]);
        assert_timestamp(&message["timestamp"]);
        assert!(message["edited_at"].is_null());
        assert_eq!(message["deleted"], false);
        let keys: BTreeSet<&str> = message
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "id",
            "room_id",
            "seq",
            "sender",
            "content",
            "message_type",
            "reply_to",
            "metadata",
            "attachment",
            "location",
            "reactions",
            "timestamp",
            "edited_at",
            "deleted",
        ] {
            assert!(keys.contains(key), "message object lacks {key}: {message}");
        }
    }
    // A member without a subscription gets nothing live, but history has it.
    carol.expect_silence(QUIET).await;
    let history = carol
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(history["messages"][0]["id"], ack["message_id"]);
    assert_eq!(history["messages"][0]["content"], "hi");
    for ws in [&mut phone, &mut laptop, &mut bob] {
        ws.expect_silence(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn members_send_without_subscribing_and_non_members_cannot() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    let ack = bob.send_message(&room, "no subscription needed").await;
    assert_eq!(ack["seq"], 1);
    let mut mallory = server.ws("mallory").await;
    let refused = mallory
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "let me in"}),
            "forbidden",
        )
        .await;
    assert_eq!(refused["room_id"], room.as_str());
    let missing = mallory
        .expect_error(
            json!({"type": "send_message", "room_id": "nowhere", "content": "x"}),
            "not_found",
        )
        .await;
    assert_eq!(missing["room_id"], "nowhere");
    mallory
        .expect_error(json!({"type": "get_history", "room_id": room}), "forbidden")
        .await;
    assert_eq!(server.last_seq("alice", &room).await, 1);
}

#[tokio::test]
async fn message_type_is_case_insensitive() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    ws.subscribe(&room).await;
    for (given, stored) in [("TEXT", "text"), ("Text", "text"), ("text", "text")] {
        ws.request(
            json!({"type": "send_message", "room_id": room, "content": "x", "message_type": given}),
        )
        .await;
        let got = ws.recv_type("new_message").await;
        assert_eq!(got["message"]["message_type"], stored, "{given}");
    }
    ws.expect_error(
        json!({"type": "send_message", "room_id": room, "content": "x", "message_type": "shout"}),
        "invalid_field",
    )
    .await;
    assert_eq!(server.last_seq("alice", &room).await, 3);
}

#[tokio::test]
async fn system_messages_need_the_server_key() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    for kind in ["system", "SYSTEM"] {
        let refused = alice
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": "I am the server", "message_type": kind}),
                "forbidden",
            )
            .await;
        assert_eq!(refused["room_id"], room.as_str());
    }
    let (status, body) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "me too", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    bob.expect_silence(QUIET).await;
    assert_eq!(server.last_seq("alice", &room).await, 0);

    let (status, body) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "Job accepted.", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"]["message_type"], "system");
    assert_eq!(body["message"]["seq"], 1);
    let got = bob.recv_type("new_message").await;
    assert_eq!(got["message"]["message_type"], "system");
    assert_eq!(got["message"]["content"], "Job accepted.");
}

#[tokio::test]
async fn locations_are_validated() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    ws.subscribe(&room).await;
    let ack = ws
        .request(json!({"type": "send_message", "room_id": room, "content": "",
                        "message_type": "LOCATION", "location": {"lat": -33.8688, "lng": 151.2093}}))
        .await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    let got = ws.recv_type("new_message").await;
    assert_eq!(got["message"]["message_type"], "location");
    assert_eq!(
        got["message"]["location"],
        json!({"lat": -33.8688, "lng": 151.2093})
    );
    // A location needs no text: `content` may be left out.
    let ack = ws
        .request(json!({"type": "send_message", "room_id": room,
                        "message_type": "location", "location": {"lat": 1.5, "lng": 2.5}}))
        .await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ws.recv_type("new_message").await["message"]["content"], "");
    for edge in [
        json!({"lat": 90, "lng": 180}),
        json!({"lat": -90, "lng": -180}),
    ] {
        let ack = ws
            .request(
                json!({"type": "send_message", "room_id": room, "content": "edge",
                            "message_type": "location", "location": edge}),
            )
            .await;
        assert_eq!(ack["type"], "message_ack", "{edge} is in range: {ack}");
    }
    for bad in [
        json!({"lat": 90.0001, "lng": 0}),
        json!({"lat": -91, "lng": 0}),
        json!({"lat": 0, "lng": 180.5}),
        json!({"lat": 0, "lng": -181}),
        json!({"lat": "north", "lng": 0}),
        json!({"lat": 1}),
        json!("here"),
    ] {
        let refused = ws
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": "",
                       "message_type": "location", "location": bad}),
                "invalid_field",
            )
            .await;
        assert_eq!(refused["room_id"], room.as_str(), "{bad}");
    }
    ws.expect_error(
        json!({"type": "send_message", "room_id": room, "content": "where?", "message_type": "location"}),
        "invalid_field",
    )
    .await;
    assert_eq!(
        server.last_seq("alice", &room).await,
        4,
        "only the valid ones"
    );
}

#[tokio::test]
async fn reply_to_must_name_a_message_of_the_same_room() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let other = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    let elsewhere = alice.send_message(&other, "in the other room").await;
    let first = alice.send_message(&room, "question?").await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let answer = bob
        .request(
            json!({"type": "send_message", "room_id": room, "content": "answer",
                        "reply_to": first["message_id"]}),
        )
        .await;
    assert_eq!(answer["type"], "message_ack", "{answer}");
    let got = bob.recv_type("new_message").await;
    assert_eq!(got["message"]["reply_to"], first["message_id"]);
    for bad in [elsewhere["message_id"].clone(), json!("no-such-message")] {
        let refused = bob
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": "x", "reply_to": bad}),
                "invalid_field",
            )
            .await;
        assert_eq!(refused["room_id"], room.as_str());
    }
    assert_eq!(server.last_seq("bob", &room).await, 2);
}

#[tokio::test]
async fn a_repeated_client_msg_id_answers_the_original_ack_and_stores_nothing() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let other_room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let first = alice
        .request(
            json!({"type": "send_message", "room_id": room, "content": "pay 5",
                        "client_msg_id": "once"}),
        )
        .await;
    assert_eq!(first["duplicate"], false);
    bob.recv_type("new_message").await;

    let again = alice
        .request(
            json!({"type": "send_message", "room_id": room, "content": "pay 5 (retry)",
                        "client_msg_id": "once"}),
        )
        .await;
    assert_eq!(again["type"], "message_ack", "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], first["message_id"]);
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(again["client_msg_id"], "once");
    assert_eq!(again["timestamp"], first["timestamp"]);
    bob.expect_silence(QUIET).await;
    let stored = server.all_messages("bob", &room).await;
    assert_eq!(stored.len(), 1, "nothing new stored");
    assert_eq!(stored[0]["content"], "pay 5", "the original is kept");

    // The same key from another sender, or in another room, is a new message.
    let bobs = bob
        .request(
            json!({"type": "send_message", "room_id": room, "content": "mine",
                        "client_msg_id": "once"}),
        )
        .await;
    assert_eq!(bobs["duplicate"], false);
    assert_eq!(bobs["seq"], 2);
    let elsewhere = alice
        .request(
            json!({"type": "send_message", "room_id": other_room, "content": "pay 5",
                        "client_msg_id": "once"}),
        )
        .await;
    assert_eq!(elsewhere["duplicate"], false);
    assert_eq!(elsewhere["seq"], 1);

    // REST shares the key space: the retry answers the stored message.
    let (status, body) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "pay 5", "client_msg_id": "once"}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["duplicate"], true);
    assert_eq!(body["message"]["id"], first["message_id"]);
    assert_eq!(body["message"]["seq"], 1);
    assert_eq!(server.all_messages("bob", &room).await.len(), 2);
}

#[tokio::test]
async fn a_closed_room_refuses_sends_but_keeps_its_history() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.send_message(&room, "before closing").await;
    let (status, closed) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["closed"], true);
    let update = bob.recv_type("room_updated").await;
    assert_eq!(update["room_id"], room.as_str());
    assert_eq!(update["updates"]["closed"], true);

    let refused = bob
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "too late"}),
            "forbidden",
        )
        .await;
    assert_eq!(refused["room_id"], room.as_str());
    let (status, body) = server
        .api("bob")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "too late"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    let history = bob
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(seqs(&history["messages"]), [1]);
    assert_eq!(history["messages"][0]["content"], "before closing");
    let room_now = server.room_as("bob", &room).await;
    assert_eq!(room_now["closed"], true);
    assert_eq!(room_now["last_seq"], 1);
}

#[tokio::test]
async fn metadata_is_kept_and_must_be_an_object() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    ws.subscribe(&room).await;
    ws.request(
        json!({"type": "send_message", "room_id": room, "content": "quote",
                      "metadata": {"job": 45, "tags": ["a"]}}),
    )
    .await;
    let got = ws.recv_type("new_message").await;
    assert_eq!(
        got["message"]["metadata"],
        json!({"job": 45, "tags": ["a"]})
    );
    ws.expect_error(
        json!({"type": "send_message", "room_id": room, "content": "x", "metadata": [1]}),
        "invalid_field",
    )
    .await;
    assert_eq!(server.last_seq("alice", &room).await, 1);
}

/// 120 messages in one room, for the paging tests.
async fn room_with_120(server: &TestServer) -> (String, common::WsClient) {
    let room = server.room("alice", &["bob"]).await;
    let mut ws = server.ws("alice").await;
    for n in 1..=120 {
        ws.send_message(&room, &format!("m{n}")).await;
    }
    (room, ws)
}

#[tokio::test]
async fn get_history_pages_both_ways_ascending_with_has_more() {
    let server = TestServer::start_with(unlimited).await;
    let (room, mut ws) = room_with_120(&server).await;
    let page = |frame: Value| {
        let mut frame = frame;
        frame["type"] = json!("get_history");
        frame["room_id"] = json!(room);
        frame
    };
    let latest = ws.send_and_reply(page(json!({"req_id": 4}))).await;
    assert_eq!(latest["type"], "history", "{latest}");
    assert_eq!(latest["req_id"], 4);
    assert_eq!(latest["room_id"], room.as_str());
    assert_eq!(
        seqs(&latest["messages"]),
        (71..=120).collect::<Vec<_>>(),
        "default: the newest 50"
    );
    assert_eq!(latest["has_more"], true);
    assert_eq!(latest["messages"][0]["content"], "m71");

    let cases: [(Value, Vec<i64>, bool); 9] = [
        (json!({"before_seq": 71}), (21..=70).collect(), true),
        (
            json!({"before_seq": 51, "limit": 50}),
            (1..=50).collect(),
            false,
        ),
        (
            json!({"before_seq": 11, "limit": 500}),
            (1..=10).collect(),
            false,
        ),
        (json!({"before_seq": 1}), vec![], false),
        (
            json!({"after_seq": 0, "limit": 1000}),
            (1..=100).collect(),
            true,
        ),
        (
            json!({"after_seq": 100, "limit": 100}),
            (101..=120).collect(),
            false,
        ),
        (
            json!({"after_seq": 69, "limit": 50}),
            (70..=119).collect(),
            true,
        ),
        (
            json!({"after_seq": 70, "limit": 50}),
            (71..=120).collect(),
            false,
        ),
        (json!({"after_seq": 120}), vec![], false),
    ];
    for (bounds, expected, more) in cases {
        let reply = ws.request(page(bounds.clone())).await;
        assert_eq!(reply["type"], "history", "{bounds}: {reply}");
        assert_eq!(seqs(&reply["messages"]), expected, "{bounds}");
        assert_eq!(reply["has_more"], more, "{bounds}");
    }
    let capped = ws.request(page(json!({"limit": 101}))).await;
    assert_eq!(
        seqs(&capped["messages"]),
        (21..=120).collect::<Vec<_>>(),
        "max 100"
    );
    for bad in [
        json!({"limit": 0}),
        json!({"limit": -1}),
        json!({"before_seq": 5, "after_seq": 1}),
        json!({"before_seq": "5"}),
    ] {
        ws.expect_error(page(bad), "invalid_field").await;
    }
}

#[tokio::test]
async fn rest_history_pages_the_same_way() {
    let server = TestServer::start_with(unlimited).await;
    let (room, _ws) = room_with_120(&server).await;
    let bob = server.api("bob");
    let get = |query: &str| {
        let (bob, path) = (bob.clone(), format!("/api/v1/rooms/{room}/messages{query}"));
        async move { bob.get(&path).await }
    };
    let (status, latest) = get("").await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["room_id"], room.as_str());
    assert_eq!(seqs(&latest["messages"]), (71..=120).collect::<Vec<_>>());
    assert_eq!(latest["has_more"], true);
    let (_, older) = get("?before_seq=71&limit=70").await;
    assert_eq!(seqs(&older["messages"]), (1..=70).collect::<Vec<_>>());
    assert_eq!(older["has_more"], false);
    let (_, capped) = get("?after_seq=0&limit=1000").await;
    assert_eq!(seqs(&capped["messages"]), (1..=100).collect::<Vec<_>>());
    assert_eq!(capped["has_more"], true);
    let (_, rest) = get("?after_seq=100").await;
    assert_eq!(seqs(&rest["messages"]), (101..=120).collect::<Vec<_>>());
    assert_eq!(rest["has_more"], false);
    let all = server.all_messages("bob", &room).await;
    assert_eq!(seqs(&json!(all)), (1..=120).collect::<Vec<_>>());
    for bad in ["?limit=0", "?limit=ten", "?before_seq=3&after_seq=1"] {
        let (status, body) = get(bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{bad}");
    }
    let (status, body) = server
        .api("mallory")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
}
