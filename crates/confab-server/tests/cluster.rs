//! Several nodes acting as one: two servers sharing one database and one
//! broker (Redis, then NATS: every test runs on both), clients on different
//! nodes.

mod common;

use common::{BROKERS, TestServer, WsClient, cluster};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Reads `n` `new_message` frames (skipping everything else) and returns
/// their messages.
async fn new_messages(client: &mut WsClient, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let frame = client.recv_type("new_message").await;
        out.push(frame["message"].clone());
    }
    out
}

async fn sender(server: &TestServer, user: &str, room: String, count: usize) -> Vec<String> {
    let mut ws = server.ws(user).await;
    let mut ids = Vec::new();
    for i in 0..count {
        let ack = ws.send_message(&room, &format!("{user} {i}")).await;
        ids.push(ack["message_id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_cross_nodes_exactly_once_in_seq_order_under_concurrent_senders() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let room = a.room("alice", &["bob"]).await;
        let mut alice = a.ws("alice").await;
        let mut bob = b.ws("bob").await;
        alice.subscribe(&room).await;
        bob.subscribe(&room).await;
        const EACH: usize = 40;
        let (from_a, from_b) = tokio::join!(
            sender(&a, "alice", room.clone(), EACH),
            sender(&b, "bob", room.clone(), EACH)
        );
        let acked: HashSet<String> = from_a.into_iter().chain(from_b).collect();
        assert_eq!(acked.len(), 2 * EACH, "{broker}");
        for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
            let got = new_messages(client, 2 * EACH).await;
            let seqs: Vec<i64> = got.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
            assert_eq!(
                seqs,
                (1..=(2 * EACH) as i64).collect::<Vec<_>>(),
                "{broker}: {who} gets every seq once, in order"
            );
            let ids: HashSet<String> = got
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(
                ids, acked,
                "{broker}: {who} gets exactly the acked messages"
            );
            client
                .expect_silence(std::time::Duration::from_millis(300))
                .await;
        }
        a.stop().await;
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_reactions_and_typing_cross_nodes() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let room = a.room("alice", &["bob"]).await;
        let mut alice = a.ws("alice").await;
        let mut bob = b.ws("bob").await;
        alice.subscribe(&room).await;
        bob.subscribe(&room).await;
        let ack = alice.send_message(&room, "hello").await;
        let id = ack["message_id"].as_str().unwrap().to_owned();
        assert_eq!(bob.recv_type("new_message").await["message"]["id"], id);
        bob.send(json!({"type": "typing", "room_id": room, "is_typing": true}))
            .await;
        let typing = alice.recv_type("typing").await;
        assert_eq!(typing["user_id"], "bob", "{broker}");
        assert_eq!(typing["is_typing"], true, "{broker}");
        let (status, _) = a
            .api("alice")
            .patch(
                &format!("/api/v1/rooms/{room}/messages/{id}"),
                json!({"content": "hello, edited"}),
            )
            .await;
        assert!(status.is_success(), "{broker}: edit {status}");
        let updated = bob.recv_type("message_updated").await;
        assert_eq!(updated["message"]["content"], "hello, edited", "{broker}");
        a.stop().await;
        b.stop().await;
    }
}

/// A node whose topic subscriptions end with its last subscriber stops
/// receiving the room (nothing is delivered to nobody, and a new
/// subscription later starts from the store's snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_listens_to_a_room_only_while_it_has_subscribers() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let room = a.room("alice", &["bob"]).await;
        let mut alice = a.ws("alice").await;
        alice.subscribe(&room).await;
        {
            let mut bob = b.ws("bob").await;
            bob.subscribe(&room).await;
            alice.send_message(&room, "one").await;
            assert_eq!(bob.recv_type("new_message").await["message"]["seq"], 1);
            bob.close().await;
        }
        alice.send_message(&room, "two").await;
        // Bob comes back on node B and resumes: exactly what he missed.
        let mut bob = b.ws("bob").await;
        let reply = bob
            .request(json!({"type": "subscribe_room", "room_id": room, "since_seq": 1}))
            .await;
        assert_eq!(reply["type"], "subscribed", "{broker}");
        assert_eq!(bob.recv_type("new_message").await["message"]["seq"], 2);
        alice.send_message(&room, "three").await;
        assert_eq!(bob.recv_type("new_message").await["message"]["seq"], 3);
        bob.expect_silence(std::time::Duration::from_millis(300))
            .await;
        a.stop().await;
        b.stop().await;
    }
}
