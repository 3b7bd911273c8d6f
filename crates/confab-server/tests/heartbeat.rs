//! Heartbeats (issue 5, item 4): the server pings every `server.heartbeat_ms`;
//! a peer that leaves two pings unanswered is closed with 4008 and leaves like
//! any other departure (typing stops, `user_offline`); a client that keeps
//! reading answers every ping by itself and stays connected. The silent peer
//! is a real client whose writes are dropped (common's `Mutable` stream), so
//! its pongs never arrive while it still reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer};
use serde_json::json;

/// Long enough that a test's own pauses between reads (a few milliseconds,
/// more on a loaded machine) never look like a dead peer: a peer is closed
/// only after two whole intervals without a pong.
const HEARTBEAT_MS: u64 = 500;

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed_and_its_typing_and_presence_cleared() {
    let server = TestServer::start_with(|c| c.server.heartbeat_ms = HEARTBEAT_MS).await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    alice.send(json!({"type": "typing", "room_id": room})).await;
    let typing = bob.recv_type("typing").await;
    assert_eq!(
        (&typing["user_id"], &typing["is_typing"]),
        (&json!("alice"), &json!(true))
    );

    // From here on nothing Alice's client sends reaches the server, pongs
    // included, though it keeps reading. The disconnect clears her typing
    // first, then announces her departure; a typing indicator that merely
    // lapsed would come after `user_offline`.
    alice.mute();
    let stopped = bob.recv_json().await;
    assert_eq!(stopped["type"], "typing", "{stopped}");
    assert_eq!(
        (&stopped["user_id"], &stopped["is_typing"]),
        (&json!("alice"), &json!(false))
    );
    let offline = bob.recv_json().await;
    assert_eq!(offline["type"], "user_offline", "{offline}");
    assert_eq!(offline["user_id"], "alice");

    // She saw the pings she could not answer, then the close.
    assert_eq!(alice.ended().await, Ended::Closed(4008));
    bob.assert_alive().await;
    let presence = bob
        .request(json!({"type": "get_presence", "room_id": room}))
        .await;
    assert_eq!(presence["online"], json!(["bob"]), "{presence}");
}

#[tokio::test]
async fn a_client_that_keeps_reading_answers_pings_and_stays_connected() {
    let server = TestServer::start_with(|c| c.server.heartbeat_ms = 200).await;
    let mut alice = server.ws("alice").await;
    // Three times the two pings a silent peer is allowed to miss.
    alice.read_pings(6).await;
    alice.assert_alive().await;
}

#[tokio::test]
async fn the_heartbeat_is_announced() {
    let server = TestServer::start_with(|c| c.server.heartbeat_ms = 1234).await;
    let token = server.token("alice");
    let mut ws = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    let hello = ws.recv_json().await;
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(hello["heartbeat_ms"], 1234);
}
