//! Property (protocol.md §5.2, issue 5 item 9): whatever the interleaving of sends,
//! reads and reconnect-with-`since_seq` across several clients, each client
//! ends up with every message of each of its rooms exactly once, in seq order.
//!
//! Each case starts a real server; clients are real WebSocket connections.
//! A reconnect drops the socket with whatever it had not read yet (lost
//! frames are exactly what resume must restore) and subscribes again with
//! `since_seq` = the highest seq the client holds for that room.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient, unlimited};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const CLIENTS: usize = 3;
/// Room 0 has every client, room 1 clients 0 and 1.
const ROOMS: [&[usize]; 2] = [&[0, 1, 2], &[0, 1]];

#[derive(Debug, Clone)]
enum Op {
    /// Client sends to a room it belongs to and waits for the ack.
    Send { client: usize, room: usize },
    /// Client reads what has arrived within a moment.
    Read { client: usize },
    /// Client drops its socket and resumes every room with `since_seq`.
    Reconnect { client: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CLIENTS, 0..ROOMS.len()).prop_map(|(client, room)| Op::Send { client, room }),
        2 => (0..CLIENTS).prop_map(|client| Op::Read { client }),
        1 => (0..CLIENTS).prop_map(|client| Op::Reconnect { client }),
    ]
}

struct Client {
    user: String,
    ws: WsClient,
    /// Every seq received per room, in arrival order, across connections.
    got: BTreeMap<usize, Vec<i64>>,
}

impl Client {
    fn rooms(&self, index: usize) -> impl Iterator<Item = usize> {
        (0..ROOMS.len()).filter(move |r| ROOMS[*r].contains(&index))
    }

    fn record(&mut self, frame: &Value, room_ids: &[String]) {
        if frame["type"] == "new_message" {
            let room = room_ids
                .iter()
                .position(|r| frame["room_id"] == r.as_str())
                .unwrap();
            self.got
                .entry(room)
                .or_default()
                .push(frame["message"]["seq"].as_i64().unwrap());
        }
    }

    async fn subscribe_all(&mut self, index: usize, room_ids: &[String]) {
        for room in self.rooms(index).collect::<Vec<_>>() {
            let since = self
                .got
                .get(&room)
                .and_then(|s| s.last().copied())
                .unwrap_or(0);
            let req_id = format!("sub-{room}-{since}");
            self.ws
                .send(json!({"type": "subscribe_room", "room_id": room_ids[room],
                             "since_seq": since, "req_id": req_id}))
                .await;
            loop {
                let frame = self.ws.recv_json().await;
                self.record(&frame, room_ids);
                if frame["req_id"] == req_id.as_str() {
                    assert_eq!(frame["type"], "subscribed", "{frame}");
                    break;
                }
            }
        }
    }

    /// Reads frames until none arrives for `quiet`.
    async fn read_for(&mut self, quiet: Duration, room_ids: &[String]) {
        use futures_util::StreamExt;
        while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, self.ws.stream.next()).await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap();
                self.record(&frame, room_ids);
            }
        }
    }
}

async fn run(ops: Vec<Op>) {
    let server = TestServer::start_with(unlimited).await;
    let users: Vec<String> = (0..CLIENTS).map(|c| format!("u{c}")).collect();
    let mut room_ids = Vec::new();
    for members in ROOMS {
        let names: Vec<&str> = members[1..].iter().map(|m| users[*m].as_str()).collect();
        room_ids.push(server.room(&users[members[0]], &names).await);
    }
    let mut clients = Vec::new();
    for (index, user) in users.iter().enumerate() {
        let mut client = Client {
            user: user.clone(),
            ws: server.ws(user).await,
            got: BTreeMap::new(),
        };
        client.subscribe_all(index, &room_ids).await;
        clients.push(client);
    }
    let mut sent = [0i64; ROOMS.len()];
    for op in ops {
        match op {
            Op::Send { client, room } => {
                if !ROOMS[room].contains(&client) {
                    continue;
                }
                let c = &mut clients[client];
                let req_id = format!("send-{room}-{}", sent[room]);
                c.ws.send(json!({"type": "send_message", "room_id": room_ids[room],
                                 "content": "m", "req_id": req_id}))
                    .await;
                loop {
                    let frame = c.ws.recv_json().await;
                    c.record(&frame, &room_ids);
                    if frame["req_id"] == req_id.as_str() {
                        assert_eq!(frame["type"], "message_ack", "{frame}");
                        break;
                    }
                }
                sent[room] += 1;
            }
            Op::Read { client } => {
                clients[client]
                    .read_for(Duration::from_millis(5), &room_ids)
                    .await;
            }
            Op::Reconnect { client } => {
                let c = &mut clients[client];
                c.ws = server.ws(&c.user).await; // the old socket is dropped unread
                c.subscribe_all(client, &room_ids).await;
            }
        }
    }
    // Everyone catches up with what is still on the wire, then checks.
    for (index, client) in clients.iter_mut().enumerate() {
        for room in client.rooms(index).collect::<Vec<_>>() {
            while client.got.get(&room).map_or(0, Vec::len) < sent[room] as usize {
                let frame = client.ws.recv_json().await;
                client.record(&frame, &room_ids);
            }
            let expected: Vec<i64> = (1..=sent[room]).collect();
            assert_eq!(
                client.got.get(&room).cloned().unwrap_or_default(),
                expected,
                "{} in room {room}",
                client.user
            );
        }
        client.read_for(Duration::from_millis(20), &room_ids).await;
        for room in client.rooms(index).collect::<Vec<_>>() {
            assert_eq!(
                client.got.get(&room).map_or(0, Vec::len),
                sent[room] as usize,
                "a late duplicate"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_client_gets_each_message_of_its_rooms_once_in_order(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}
