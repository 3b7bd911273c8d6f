//! Rate limits and quotas (issue 5, item 6), all per node: the per-user
//! message rate across every connection and REST (`rate_limited` with
//! `retry_after_ms`, 429 with `Retry-After`; nothing stored), reaction floods,
//! typing floods (coalesced silently), connection caps per user and per
//! address and the per-address handshake rate (close 4029), and the JSON
//! nesting limit on frames (`invalid_json`).
//!
//! Sustained rates are set to one per minute, so that nothing refills while a
//! test runs and every outcome is decided by the burst alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

fn assert_retry_after(error: &Value) {
    let ms = error["retry_after_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retry_after_ms: {error}"));
    assert!((1..=60_000).contains(&ms), "{error}");
}

#[tokio::test]
async fn the_message_rate_is_per_user_across_connections_and_rest_and_stores_nothing_refused() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.messages_per_minute = 1;
        c.rate_limit.burst = 3;
    })
    .await;
    let room = server.room("alice", &["bob"]).await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws("alice").await;
    phone.send_message(&room, "one").await;
    laptop.send_message(&room, "two").await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let (status, body) = server
        .api("alice")
        .post(&path, json!({"content": "three"}))
        .await;
    assert_eq!(status, 201, "{body}");

    let refused = phone
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "four",
                   "client_msg_id": "c4"}),
            "rate_limited",
        )
        .await;
    assert_retry_after(&refused);
    assert_eq!(refused["room_id"], room.as_str());

    let (status, headers, body) = server
        .api("alice")
        .call_with_headers(Method::POST, &path, Some(json!({"content": "five"})))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_retry_after(&body["error"]);
    let seconds: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");

    // Nothing of the refused sends was stored; the retry with the same
    // client_msg_id is refused too, not half-remembered.
    let contents: Vec<Value> = server
        .all_messages("bob", &room)
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, [json!("one"), json!("two"), json!("three")]);
    phone
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "four",
                   "client_msg_id": "c4"}),
            "rate_limited",
        )
        .await;

    // Another user has an allowance of their own; the limited one stays
    // connected and may still read.
    let mut bob = server.ws("bob").await;
    bob.send_message(&room, "bob's").await;
    let history = phone
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        4,
        "{history}"
    );
}

#[tokio::test]
async fn a_refused_send_for_another_reason_does_not_use_the_allowance() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.messages_per_minute = 1;
        c.rate_limit.burst = 1;
    })
    .await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    for _ in 0..3 {
        alice
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": ""}),
                "empty_message",
            )
            .await;
    }
    alice.send_message(&room, "the one allowed").await;
}

#[tokio::test]
async fn reaction_floods_are_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.reactions_per_minute = 1;
        c.rate_limit.reaction_burst = 3;
    })
    .await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    let ack = alice.send_message(&room, "react to me").await;
    let message_id = ack["message_id"].as_str().unwrap().to_owned();
    let react = |emoji: &str| json!({"type": "add_reaction", "room_id": room, "message_id": message_id, "emoji": emoji});
    for emoji in ["👍", "🎉", "❤️"] {
        let ack = alice.request(react(emoji)).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let refused = alice.expect_error(react("🚀"), "rate_limited").await;
    assert_retry_after(&refused);
    let stored = &server.all_messages("alice", &room).await[0]["reactions"];
    let mut emojis: Vec<&String> = stored.as_object().unwrap().keys().collect();
    emojis.sort();
    assert_eq!(
        emojis.len(),
        3,
        "the refused reaction is not stored: {stored}"
    );
    assert!(!stored.as_object().unwrap().contains_key("🚀"));
}

#[tokio::test]
async fn typing_floods_are_coalesced_silently() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.typing_per_minute = 1;
        c.rate_limit.typing_burst = 2;
    })
    .await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    assert_eq!(bob.recv_type("user_online").await["user_id"], "alice");

    for _ in 0..5 {
        alice.send(json!({"type": "typing", "room_id": room})).await;
    }
    alice
        .send(json!({"type": "stop_typing", "room_id": room}))
        .await;
    // Once the flood is over the limit, a start is dropped and so is its stop.
    alice.send(json!({"type": "typing", "room_id": room})).await;
    alice
        .send(json!({"type": "stop_typing", "room_id": room}))
        .await;
    // The typist gets no error for any of it: the next frame is the ack.
    let ack = alice
        .send_and_reply(json!({"type": "send_message", "room_id": room,
                               "content": "done typing", "req_id": 1}))
        .await;
    assert_eq!(ack["type"], "message_ack", "{ack}");

    for expected in [true, true, false] {
        let typing = bob.recv_json().await;
        assert_eq!(typing["type"], "typing", "{typing}");
        assert_eq!(typing["is_typing"], expected, "{typing}");
    }
    let next = bob.recv_json().await;
    assert_eq!(
        next["type"], "new_message",
        "nothing more of the flood: {next}"
    );
}

#[tokio::test]
async fn connections_per_user_are_capped_with_4029() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_user = 1).await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let first = server.ws("alice").await;
    assert_eq!(bob.recv_type("user_online").await["user_id"], "alice");

    let token = server.token("alice");
    let mut second = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    assert_eq!(second.ended().await, Ended::Closed(4029));
    // The same token through the first-frame path is capped just the same.
    let mut third = server.ws_raw("/ws", &[]).await;
    third.send(json!({"type": "auth", "token": token})).await;
    assert_eq!(third.ended().await, Ended::Closed(4029));

    // Others are not affected, and a closed connection frees its slot.
    let mut carol = server.ws("carol").await;
    carol.assert_alive().await;
    first.close().await;
    assert_eq!(bob.recv_type("user_offline").await["user_id"], "alice");
    let mut again = server.ws("alice").await;
    again.assert_alive().await;
}

#[tokio::test]
async fn connections_per_address_are_capped_with_4029() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_address = 2).await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    let bob = server.ws("bob").await;
    assert_eq!(alice.recv_type("user_online").await["user_id"], "bob");

    let token = server.token("carol");
    let mut carol = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    assert_eq!(carol.ended().await, Ended::Closed(4029));

    bob.close().await;
    assert_eq!(alice.recv_type("user_offline").await["user_id"], "bob");
    let mut carol = server.ws("carol").await;
    carol.assert_alive().await;
}

#[tokio::test]
async fn the_handshake_rate_per_address_closes_4029_and_spares_rest() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.handshakes_per_minute = 1;
        c.rate_limit.handshake_burst = 3;
    })
    .await;
    for _ in 0..3 {
        server.ws("alice").await.close().await;
    }
    let token = server.token("alice");
    let mut refused = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    assert_eq!(refused.ended().await, Ended::Closed(4029));
    let (status, body) = server.api("alice").get("/api/v1/me").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn frames_nested_deeper_than_the_limit_are_invalid_json_and_store_nothing() {
    let server = TestServer::start_with(|c| c.limits.max_json_depth = 8).await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    let nested = |levels: usize| {
        let mut value = json!(1);
        for _ in 0..levels {
            value = json!({ "k": value });
        }
        value
    };
    // The frame is level 1 and metadata's outer object level 2, so eight
    // nested objects reach level 9.
    let deep = json!({"type": "send_message", "room_id": room, "content": "deep",
                      "metadata": nested(8), "req_id": 1});
    let refused = alice.send_and_reply(deep).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "invalid_json", "{refused}");
    // Deeper than serde's own recursion limit is refused the same way.
    let deeper = format!(
        r#"{{"type":"ping","x":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    alice.send_text(&deeper).await;
    assert_eq!(alice.recv_json().await["code"], "invalid_json");
    assert_eq!(server.last_seq("alice", &room).await, 0, "nothing stored");

    let fits = json!({"type": "send_message", "room_id": room, "content": "fits",
                      "metadata": nested(7)});
    let ack = alice.request(fits).await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
}
