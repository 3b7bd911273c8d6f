//! Slow consumers (protocol.md §5.3): a connection that stops reading is closed with
//! 4008 once its bounded queue (frames or bytes) is full, and the room goes on
//! without it: the sender's acks keep coming and every other subscriber gets
//! every message, in order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TCP_ESTABLISHED, TestServer, server_side_tcp_state, unlimited};
use confab_server::Config;
use serde_json::json;

/// Messages of this many characters: a few hundred of them are megabytes,
/// more than the kernel buffers between a stalled reader and the server.
const BIG: usize = 30_000;
const MESSAGES: usize = 250;

async fn stalled_reader_is_dropped(tweak: impl FnOnce(&mut Config)) {
    let server = TestServer::start_with(|config| {
        unlimited(config);
        config.limits.max_message_length = BIG + 100;
        tweak(config);
    })
    .await;
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let mut carol = server.ws_small_window("carol").await;
    carol.subscribe(&room).await;
    // From here on carol reads nothing.

    // Bob reads concurrently, as a live client does.
    let reader = tokio::spawn(async move {
        let frames = bob.recv_new_messages(MESSAGES).await;
        let seqs: Vec<i64> = frames
            .iter()
            .map(|f| f["message"]["seq"].as_i64().unwrap())
            .collect();
        (bob, seqs)
    });
    let content = "x".repeat(BIG);
    for n in 1..=MESSAGES {
        let ack = alice
            .request(json!({"type": "send_message", "room_id": room, "content": content}))
            .await;
        assert_eq!(ack["type"], "message_ack", "message {n}: {ack}");
        assert_eq!(ack["seq"], n as i64);
    }
    let (mut bob, seqs) = reader.await.unwrap();
    assert_eq!(seqs, (1..=MESSAGES as i64).collect::<Vec<_>>());
    bob.assert_alive().await;

    // Carol, reading at last, finds the frames that made it out, then 4008.
    assert_eq!(carol.ended().await, Ended::Closed(4008));
    // Counted before the close frame was written: one slow consumer, no
    // missed heartbeat.
    let scrape = server.scrape().await;
    assert_eq!(scrape.get("confab_slow_consumer_closes_total"), 1.0);
    assert_eq!(scrape.get("confab_heartbeat_closes_total"), 0.0);
    // Everything is stored: she catches up with since_seq on a new connection.
    let mut carol = server.ws("carol").await;
    carol
        .request(json!({"type": "subscribe_room", "room_id": room, "since_seq": 0}))
        .await;
    let caught_up = carol.recv_new_messages(MESSAGES).await;
    assert_eq!(caught_up.len(), MESSAGES);
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_when_its_frame_queue_fills() {
    stalled_reader_is_dropped(|config| {
        config.server.outbound_queue_frames = 32;
    })
    .await;
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_when_its_byte_budget_is_spent() {
    stalled_reader_is_dropped(|config| {
        config.server.outbound_queue_bytes = 256 * 1024;
    })
    .await;
}

/// A client that subscribes and then never reads again, with the kernel's
/// buffers full: its session ends with 4008, and its socket is shut down
/// within the write timeout (checked in the kernel's TCP table), whether the
/// queue overflowed while the writer was blocked or the write alone blocked
/// too long. Each such close is counted.
async fn a_reader_that_never_reads_again_is_shut(tweak: impl FnOnce(&mut Config)) {
    let server = TestServer::start_with(|config| {
        unlimited(config);
        config.limits.max_message_length = BIG + 100;
        config.server.write_timeout_ms = 300;
        tweak(config);
    })
    .await;
    let room = server.room("alice", &["carol"]).await;
    let mut alice = server.ws("alice").await;
    let mut carol = server.ws_small_window("carol").await;
    carol.subscribe(&room).await;
    let carol_port = carol.local_port();
    assert_eq!(
        server_side_tcp_state(server.addr.port(), carol_port),
        Some(TCP_ESTABLISHED)
    );
    // From here on carol reads nothing, ever.
    let content = "x".repeat(BIG);
    for n in 1..=MESSAGES {
        let ack = alice
            .request(json!({"type": "send_message", "room_id": room, "content": content}))
            .await;
        assert_eq!(ack["seq"], n as i64, "{ack}");
    }
    server
        .scrape_until(|s| s.get("confab_slow_consumer_closes_total") == 1.0)
        .await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while server_side_tcp_state(server.addr.port(), carol_port) == Some(TCP_ESTABLISHED) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled reader's socket is still open on the server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let scrape = server.scrape().await;
    assert_eq!(scrape.get("confab_heartbeat_closes_total"), 0.0);
    assert_eq!(scrape.get(r#"confab_ws_connections{endpoint="/ws"}"#), 1.0);
    alice.assert_alive().await;
    drop(carol);
}

#[tokio::test]
async fn a_stalled_reader_whose_queue_overflows_is_shut_at_the_tcp_level() {
    a_reader_that_never_reads_again_is_shut(|config| {
        config.server.outbound_queue_bytes = 256 * 1024;
    })
    .await;
}

#[tokio::test]
async fn a_stalled_reader_whose_writes_block_is_shut_at_the_tcp_level() {
    // The queue would hold everything: the blocked write alone decides.
    a_reader_that_never_reads_again_is_shut(|config| {
        config.server.outbound_queue_bytes = 64 << 20;
        config.server.outbound_queue_frames = 100_000;
    })
    .await;
}
