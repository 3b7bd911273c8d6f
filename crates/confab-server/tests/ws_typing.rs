//! Typing indicators (protocol.md §2.3, §2.4, §7): the others see them, the typist's
//! own connections never do, `stop_typing` and `is_typing: false` end them,
//! a subscription is needed, and an indicator lapses by itself after 6 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, assert_timestamp};
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

#[tokio::test]
async fn typing_reaches_the_others_only_and_stops_both_ways() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob", "carol", "dave"]).await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let mut carol = server.ws("carol").await;
    let mut dave = server.ws("dave").await; // a member, not subscribed
    for ws in [&mut phone, &mut laptop, &mut bob, &mut carol] {
        ws.subscribe(&room).await;
    }

    // No direct reply to typing, even with a req_id.
    phone
        .send(json!({"type": "typing", "room_id": room, "req_id": 1}))
        .await;
    for ws in [&mut bob, &mut carol] {
        let typing = ws.recv_json().await;
        assert_eq!(typing["type"], "typing", "{typing}");
        assert_eq!(typing["room_id"], room.as_str());
        assert_eq!(typing["user_id"], "alice");
        assert_eq!(typing["username"], "alice");
        assert_eq!(typing["is_typing"], true);
        assert_timestamp(&typing["timestamp"]);
    }

    phone
        .send(json!({"type": "stop_typing", "room_id": room}))
        .await;
    for ws in [&mut bob, &mut carol] {
        let stopped = ws.recv_json().await;
        assert_eq!(stopped["type"], "typing", "{stopped}");
        assert_eq!(stopped["user_id"], "alice");
        assert_eq!(stopped["is_typing"], false);
    }

    laptop
        .send(json!({"type": "typing", "room_id": room, "is_typing": true}))
        .await;
    assert_eq!(bob.recv_json().await["is_typing"], true);
    laptop
        .send(json!({"type": "typing", "room_id": room, "is_typing": false}))
        .await;
    let stopped = bob.recv_json().await;
    assert_eq!(stopped["type"], "typing", "{stopped}");
    assert_eq!(stopped["is_typing"], false);
    assert_eq!(carol.recv_json().await["is_typing"], true);
    assert_eq!(carol.recv_json().await["is_typing"], false);

    // Bob types: Alice's connections see it, Bob's does not.
    bob.send(json!({"type": "typing", "room_id": room})).await;
    for ws in [&mut phone, &mut laptop] {
        let typing = ws.recv_type("typing").await;
        assert_eq!(typing["user_id"], "bob");
        assert_eq!(typing["is_typing"], true);
    }
    for ws in [&mut phone, &mut laptop, &mut bob, &mut dave] {
        ws.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn typing_needs_a_subscription_of_this_connection() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    laptop.subscribe(&room).await;
    for kind in ["typing", "stop_typing"] {
        let refused = phone
            .expect_error(json!({"type": kind, "room_id": room}), "not_subscribed")
            .await;
        assert_eq!(refused["room_id"], room.as_str(), "{kind}");
    }
    // Not a member at all: still not subscribed.
    let mut mallory = server.ws("mallory").await;
    mallory
        .expect_error(json!({"type": "typing", "room_id": room}), "not_subscribed")
        .await;
    bob.expect_silence(QUIET).await;
    // After unsubscribing, typing is refused again.
    laptop
        .request(json!({"type": "unsubscribe_room", "room_id": room}))
        .await;
    laptop
        .expect_error(json!({"type": "typing", "room_id": room}), "not_subscribed")
        .await;
    bob.expect_silence(QUIET).await;
}

/// The one slow test of the suite: waits for the 6 s expiry.
#[tokio::test]
async fn typing_lapses_after_six_seconds_without_refresh() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut alice2 = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    for ws in [&mut alice, &mut alice2, &mut bob] {
        ws.subscribe(&room).await;
    }
    alice.send(json!({"type": "typing", "room_id": room})).await;
    assert_eq!(bob.recv_json().await["is_typing"], true);
    let started = tokio::time::Instant::now();
    let lapsed = bob.recv_json().await;
    let waited = started.elapsed();
    assert_eq!(lapsed["type"], "typing", "{lapsed}");
    assert_eq!(lapsed["user_id"], "alice");
    assert_eq!(lapsed["is_typing"], false);
    assert!(
        waited >= Duration::from_millis(5500),
        "not before the 6 s expiry: {waited:?}"
    );
    assert!(waited < Duration::from_secs(9), "about 6 s: {waited:?}");
    // The typist's own connections heard nothing, neither start nor lapse.
    alice.expect_silence(Duration::from_millis(50)).await;
    alice2.expect_silence(Duration::from_millis(50)).await;
    bob.expect_silence(Duration::from_millis(50)).await;
}
