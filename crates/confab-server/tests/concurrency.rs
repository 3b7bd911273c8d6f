//! Ordering under concurrent senders (protocol.md §2.2, §5.1, §7): eight users send
//! 25 messages each into one room at once; every ack is distinct, the seqs
//! are exactly 1..=200, history agrees with the acks, and every subscriber —
//! the senders' own connections and two watchers — receives all 200
//! `new_message` frames in strictly increasing seq order, none twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient, unlimited};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

const SENDERS: usize = 8;
const PER_SENDER: usize = 25;
const TOTAL: usize = SENDERS * PER_SENDER;

/// One acknowledged send: (seq, message_id, sender, content).
type Acked = (i64, String, String, String);

/// Sends `PER_SENDER` messages one after another, keeping every
/// `new_message` that arrives meanwhile; then reads until `TOTAL` arrived.
async fn sender(mut ws: WsClient, user: String, room: String) -> (Vec<Acked>, Vec<Value>) {
    let mut acked = Vec::new();
    let mut delivered = Vec::new();
    for n in 0..PER_SENDER {
        let content = format!("{user}:{n}");
        let req_id = format!("{user}-{n}");
        ws.send(
            json!({"type": "send_message", "room_id": room, "content": content,
                       "client_msg_id": req_id, "req_id": req_id}),
        )
        .await;
        loop {
            let frame = ws.recv_json().await;
            match frame["type"].as_str() {
                Some("new_message") => delivered.push(frame),
                // Other senders connecting: not the subject here.
                Some("user_online" | "user_offline") => {}
                Some("message_ack") if frame["req_id"] == req_id.as_str() => {
                    assert_eq!(frame["duplicate"], false, "{frame}");
                    assert_eq!(frame["client_msg_id"], req_id.as_str());
                    acked.push((
                        frame["seq"].as_i64().unwrap(),
                        frame["message_id"].as_str().unwrap().to_owned(),
                        user.clone(),
                        content.clone(),
                    ));
                    break;
                }
                _ => panic!("{user}: unexpected frame {frame}"),
            }
        }
    }
    while delivered.len() < TOTAL {
        delivered.push(ws.recv_type("new_message").await);
    }
    ws.expect_silence_but_presence(Duration::from_millis(100))
        .await;
    (acked, delivered)
}

fn delivered_seqs(frames: &[Value]) -> Vec<i64> {
    frames
        .iter()
        .map(|f| f["message"]["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_senders_get_distinct_gapless_seqs_delivered_in_order() {
    let server = TestServer::start_with(unlimited).await;
    let users: Vec<String> = (0..SENDERS).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let room = server.room("owner", &names).await;
    let mut watchers = [server.ws("owner").await, server.ws("owner").await];
    for w in &mut watchers {
        w.subscribe(&room).await;
    }

    // Everyone subscribes first, then all start sending at once.
    let start = Arc::new(Barrier::new(SENDERS));
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (url, token) = (server.ws_url("/ws"), server.token(user));
            let (user, room, start) = (user.clone(), room.clone(), start.clone());
            tokio::spawn(async move {
                let mut ws = common::connect_with_token(&url, &token).await;
                ws.subscribe(&room).await;
                start.wait().await;
                sender(ws, user, room).await
            })
        })
        .collect();
    let mut acked: Vec<Acked> = Vec::new();
    let mut streams = Vec::new();
    for task in tasks {
        let (mine, delivered) = task.await.unwrap();
        let own_seqs: Vec<i64> = mine.iter().map(|a| a.0).collect();
        assert!(
            own_seqs.windows(2).all(|w| w[0] < w[1]),
            "one sender's sequential sends get increasing seqs: {own_seqs:?}"
        );
        acked.extend(mine);
        streams.push(delivered);
    }
    for w in &mut watchers {
        streams.push(w.recv_new_messages(TOTAL).await);
        w.expect_silence_but_presence(Duration::from_millis(100))
            .await;
    }

    // Acks: distinct ids, seqs exactly 1..=200.
    assert_eq!(acked.len(), TOTAL);
    let ids: BTreeSet<&str> = acked.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(ids.len(), TOTAL, "every ack names a distinct message");
    let by_seq: BTreeMap<i64, &Acked> = acked.iter().map(|a| (a.0, a)).collect();
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=TOTAL as i64).collect::<Vec<_>>(),
        "seqs are exactly 1..=200"
    );

    // Every subscriber: all 200, strictly increasing, each the acked message.
    let all: Vec<i64> = (1..=TOTAL as i64).collect();
    for (i, stream) in streams.iter().enumerate() {
        assert_eq!(delivered_seqs(stream), all, "subscriber {i}");
        for frame in stream {
            let seq = frame["message"]["seq"].as_i64().unwrap();
            let (_, id, sender, content) = by_seq[&seq];
            assert_eq!(frame["message"]["id"], id.as_str(), "subscriber {i}");
            assert_eq!(frame["message"]["sender"]["id"], sender.as_str());
            assert_eq!(frame["message"]["content"], content.as_str());
        }
    }

    // History agrees with the acks.
    let history = server.all_messages("owner", &room).await;
    assert_eq!(history.len(), TOTAL);
    for (n, message) in history.iter().enumerate() {
        let seq = n as i64 + 1;
        let (_, id, sender, content) = by_seq[&seq];
        assert_eq!(message["seq"], seq);
        assert_eq!(message["id"], id.as_str());
        assert_eq!(message["sender"]["id"], sender.as_str());
        assert_eq!(message["content"], content.as_str());
    }
    assert_eq!(server.last_seq("owner", &room).await, TOTAL as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_client_msg_id_store_it_once() {
    let server = TestServer::start_with(unlimited).await;
    let room = server.room("alice", &[]).await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (url, token, room) = (server.ws_url("/ws"), server.token("alice"), room.clone());
            tokio::spawn(async move {
                let mut ws = common::connect_with_token(&url, &token).await;
                ws.request(json!({"type": "send_message", "room_id": room,
                                  "content": "transfer", "client_msg_id": "pay-1"}))
                    .await
            })
        })
        .collect();
    let mut acks = Vec::new();
    for task in tasks {
        acks.push(task.await.unwrap());
    }
    let fresh = acks.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(fresh, 1, "exactly one send stored it: {acks:?}");
    for ack in &acks {
        assert_eq!(ack["type"], "message_ack", "{ack}");
        assert_eq!(ack["seq"], 1);
        assert_eq!(ack["message_id"], acks[0]["message_id"]);
    }
    assert_eq!(server.all_messages("alice", &room).await.len(), 1);
}
