//! Resume with `since_seq` (protocol.md §5.2, §7 "Catch-up frames"): `subscribed`
//! first, then exactly the missed messages as ordinary `new_message` frames in
//! seq order, then live ones — with no gap and no duplicate even while other
//! clients keep sending; a cut backlog delivers at least the 50 oldest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient, seqs, unlimited};
use serde_json::{Value, json};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

fn seq_of(frame: &Value) -> i64 {
    frame["message"]["seq"].as_i64().unwrap()
}

async fn resubscribe(ws: &mut WsClient, room: &str, since: i64) -> Value {
    ws.send(json!({"type": "subscribe_room", "room_id": room, "since_seq": since, "req_id": "re"}))
        .await;
    // Presence of users coming and going may come first; nothing else may.
    let mut subscribed = ws.recv_json().await;
    while subscribed["type"] == "user_online" || subscribed["type"] == "user_offline" {
        subscribed = ws.recv_json().await;
    }
    assert_eq!(
        subscribed["type"], "subscribed",
        "subscribed comes before any replayed message: {subscribed}"
    );
    assert_eq!(subscribed["req_id"], "re");
    subscribed
}

#[tokio::test]
async fn since_seq_replays_exactly_the_missed_messages_after_subscribed() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    for n in 1..=10 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    let history = server.all_messages("bob", &room).await;
    let mut bob = server.ws("bob").await;
    let subscribed = resubscribe(&mut bob, &room, 4).await;
    assert_eq!(subscribed["last_seq"], 10);
    assert_eq!(subscribed["unread_count"], 10);
    for expected in 5..=10 {
        let frame = bob.recv_json().await;
        assert_eq!(frame["type"], "new_message", "{frame}");
        assert_eq!(frame["room_id"], room.as_str());
        assert_eq!(seq_of(&frame), expected);
        assert_eq!(
            frame["message"],
            history[expected as usize - 1],
            "a replayed message is the stored one"
        );
    }
    bob.expect_silence(QUIET).await;
    // Then live.
    alice.send_message(&room, "m11").await;
    let live = bob.recv_json().await;
    assert_eq!(live["type"], "new_message");
    assert_eq!(seq_of(&live), 11);

    // Nothing missed, or asking beyond the end: nothing replayed.
    for since in [11, 500] {
        let mut again = server.ws("bob").await;
        let subscribed = resubscribe(&mut again, &room, since).await;
        assert_eq!(subscribed["last_seq"], 11);
        again.expect_silence(QUIET).await;
    }
    // From zero: everything.
    let mut fresh = server.ws("bob").await;
    resubscribe(&mut fresh, &room, 0).await;
    let replayed: Vec<i64> = fresh
        .recv_new_messages(11)
        .await
        .iter()
        .map(seq_of)
        .collect();
    assert_eq!(replayed, (1..=11).collect::<Vec<_>>());
    fresh.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_while_others_send_sees_every_seq_exactly_once() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob", "carol", "dave"]).await;
    let mut alice = server.ws("alice").await;
    for n in 1..=30 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    // Three senders keep going while bob resumes from seq 10.
    let senders: Vec<_> = ["alice", "carol", "dave"]
        .into_iter()
        .map(|user| {
            let (url, token, room) = (server.ws_url("/ws"), server.token(user), room.clone());
            tokio::spawn(async move {
                let mut ws = common::connect_with_token(&url, &token).await;
                for n in 0..40 {
                    ws.send_message(&room, &format!("{user}-{n}")).await;
                }
                ws
            })
        })
        .collect();
    let total = 30 + 3 * 40;
    let mut bob = server.ws("bob").await;
    let subscribed = resubscribe(&mut bob, &room, 10).await;
    assert!(subscribed["last_seq"].as_i64().unwrap() >= 30);
    let mut seen = Vec::new();
    while seen.last() != Some(&total) {
        seen.push(seq_of(&bob.recv_type("new_message").await));
    }
    let mut open = Vec::new();
    for sender in senders {
        open.push(sender.await.unwrap());
    }
    assert_eq!(seen, (11..=total).collect::<Vec<_>>(), "no gap, no repeat");
    bob.expect_silence_but_presence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_again_and_again_mid_stream_loses_and_repeats_nothing() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &["bob", "carol", "dave"]).await;
    let total: i64 = 3 * 60;
    let senders: Vec<_> = ["alice", "carol", "dave"]
        .into_iter()
        .map(|user| {
            let (url, token, room) = (server.ws_url("/ws"), server.token(user), room.clone());
            tokio::spawn(async move {
                let mut ws = common::connect_with_token(&url, &token).await;
                for n in 0..60 {
                    ws.send_message(&room, &format!("{user}-{n}")).await;
                }
                ws
            })
        })
        .collect();
    // Bob reads a few messages per connection, drops it, and resumes from
    // the highest seq he has, as the docs' client algorithm says.
    let mut seen: Vec<i64> = Vec::new();
    let mut connections = 0;
    while seen.last().copied().unwrap_or(0) < total {
        connections += 1;
        let mut bob = server.ws("bob").await;
        let since = seen.last().copied().unwrap_or(0);
        let subscribed = resubscribe(&mut bob, &room, since).await;
        let last_seq = subscribed["last_seq"].as_i64().unwrap();
        assert!(last_seq >= since, "{subscribed}");
        let mut taken = 0;
        while taken < 5 && seen.last().copied().unwrap_or(0) < total {
            seen.push(seq_of(&bob.recv_type("new_message").await));
            taken += 1;
        }
        bob.close().await;
    }
    let mut open = Vec::new();
    for sender in senders {
        open.push(sender.await.unwrap());
    }
    assert!(connections >= 10, "the stream was resumed many times");
    assert_eq!(seen, (1..=total).collect::<Vec<_>>(), "no gap, no repeat");
}

#[tokio::test]
async fn a_cut_backlog_delivers_at_least_the_fifty_oldest_then_goes_live() {
    // max_catch_up below the contract's floor of 50 still replays 50.
    let server = TestServer::start_with(|c| {
        unlimited(c);
        c.limits.max_catch_up = 10;
    })
    .await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    for n in 1..=80 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    let mut bob = server.ws("bob").await;
    let subscribed = resubscribe(&mut bob, &room, 0).await;
    assert_eq!(subscribed["last_seq"], 80);
    let replayed: Vec<i64> = bob.recv_new_messages(50).await.iter().map(seq_of).collect();
    assert_eq!(
        replayed,
        (1..=50).collect::<Vec<_>>(),
        "the oldest 50 first"
    );
    bob.expect_silence(QUIET).await;
    // The client pages the rest up to subscribed.last_seq…
    let page = bob
        .request(json!({"type": "get_history", "room_id": room, "after_seq": 50, "limit": 100}))
        .await;
    assert_eq!(seqs(&page["messages"]), (51..=80).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);
    // …and live messages continue after it.
    alice.send_message(&room, "m81").await;
    assert_eq!(seq_of(&bob.recv_type("new_message").await), 81);
}
