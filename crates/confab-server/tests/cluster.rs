//! Several nodes acting as one: two servers sharing one database and one
//! broker (Redis, then NATS: every test runs on both), clients on different
//! nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BROKERS, Scrape, TestServer, WsClient, cluster, cluster_node};
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
        let before = [a.scrape().await, b.scrape().await];
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
        // Each node published its own 40 messages once and received the
        // other node's 40, with no broker error.
        for (node, before) in [&a, &b].into_iter().zip(&before) {
            let moved = |s: &Scrape, series: &str| s.get(series) - before.get(series);
            let after = node
                .scrape_until(|s| {
                    moved(s, PUBLISHED) >= EACH as f64 && moved(s, RECEIVED) >= EACH as f64
                })
                .await;
            assert_eq!(moved(&after, PUBLISHED), EACH as f64, "{broker}");
            assert_eq!(moved(&after, RECEIVED), EACH as f64, "{broker}");
            for op in ["publish", "receive", "subscribe"] {
                let errors = format!("confab_broker_errors_total{{op=\"{op}\"}}");
                assert_eq!(after.get(&errors), 0.0, "{broker}: {op}");
            }
        }
        a.stop().await;
        b.stop().await;
    }
}

const PUBLISHED: &str = "confab_broker_events_total{direction=\"publish\"}";
const RECEIVED: &str = "confab_broker_events_total{direction=\"receive\"}";

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

/// User-targeted frames cross nodes too: a change made on node A reaches the
/// user's connection on node B (`room_added`, `room_updated` after a read,
/// `room_removed`), and disabling the user on A closes B's socket with 4002.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_targeted_frames_and_the_4002_close_cross_nodes() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let mut bob = b.ws("bob").await;
        let room = a.room("alice", &["bob"]).await;
        let added = bob.recv_type("room_added").await;
        assert_eq!(added["room"]["id"], room.as_str(), "{broker}: {added}");

        let ack = a.ws("alice").await.send_message(&room, "hi").await;
        assert_eq!(ack["type"], "message_ack", "{broker}");
        // Bob reads on node A (REST); his own connection on B hears about it.
        let (status, body) = a
            .api("bob")
            .post(&format!("/api/v1/rooms/{room}/read"), json!({}))
            .await;
        assert!(status.is_success(), "{broker}: {status} {body}");
        let updated = bob.recv_type("room_updated").await;
        assert_eq!(updated["room_id"], room.as_str(), "{broker}: {updated}");
        assert_eq!(updated["updates"]["unread_count"], 0, "{broker}: {updated}");

        let (status, body) = a
            .api("alice")
            .delete(&format!("/api/v1/rooms/{room}/members/bob"))
            .await;
        assert!(status.is_success(), "{broker}: {status} {body}");
        let removed = bob.recv_type("room_removed").await;
        assert_eq!(removed["room_id"], room.as_str(), "{broker}: {removed}");

        let (status, body) = a
            .server_api()
            .put("/api/v1/users/bob", json!({"disabled": true}))
            .await;
        assert!(status.is_success(), "{broker}: {status} {body}");
        assert_eq!(bob.ended().await, common::Ended::Closed(4002), "{broker}");
        a.stop().await;
        b.stop().await;
    }
}

/// What a member may do is remembered per node between sends, and forgotten
/// on every node when it changes: bob sends on node B (B remembers he may),
/// then his standing changes on node A; by the time B has heard the change
/// (the frames that announce it travel behind the invalidation on the same
/// topic), B refuses his next send — long before the remembered standing
/// would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_membership_change_on_one_node_is_enforced_on_the_other_at_once() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let removed_from = a.room("alice", &["bob"]).await;
        let closed = a.room("alice", &["bob"]).await;
        let mut bob = b.ws("bob").await;
        for room in [&removed_from, &closed] {
            let ack = bob.send_message(room, "remembered").await;
            assert_eq!(ack["seq"], 1, "{broker}: {ack}");
        }

        let (status, body) = a
            .api("alice")
            .delete(&format!("/api/v1/rooms/{removed_from}/members/bob"))
            .await;
        assert!(status.is_success(), "{broker}: {status} {body}");
        let removed = bob.recv_type("room_removed").await;
        assert_eq!(removed["room_id"], removed_from.as_str(), "{broker}");
        let refused = bob
            .request(json!({"type": "send_message", "room_id": removed_from, "content": "x"}))
            .await;
        assert_eq!(refused["code"], "forbidden", "{broker}: {refused}");

        let (status, body) = a
            .api("alice")
            .delete(&format!("/api/v1/rooms/{closed}"))
            .await;
        assert!(status.is_success(), "{broker}: {status} {body}");
        let update = bob.recv_type("room_updated").await;
        assert_eq!(update["updates"]["closed"], true, "{broker}: {update}");
        let refused = bob
            .request(json!({"type": "send_message", "room_id": closed, "content": "x"}))
            .await;
        assert_eq!(refused["code"], "forbidden", "{broker}: {refused}");

        assert_eq!(a.last_seq("alice", &removed_from).await, 1, "{broker}");
        assert_eq!(a.last_seq("alice", &closed).await, 1, "{broker}");
        a.stop().await;
        b.stop().await;
    }
}

/// Presence is cluster-wide: a user connected on node B is online for node
/// A's clients (`user_online`, `get_presence`), stays online while any node
/// has a connection, and goes offline once, when the last one anywhere ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_spans_nodes_until_the_last_connection_anywhere_ends() {
    let quiet = std::time::Duration::from_millis(400);
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let room = a.room("alice", &["bob"]).await;
        let mut alice = a.ws("alice").await;
        alice.subscribe(&room).await;
        let bob_on_b = b.ws("bob").await;
        let online = alice.recv_type("user_online").await;
        assert_eq!(online["user_id"], "bob", "{broker}: {online}");
        let presence = alice
            .request(json!({"type": "get_presence", "room_id": room}))
            .await;
        let ids: HashSet<&str> = presence["online"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(ids.contains("bob"), "{broker}: {presence}");
        let (_, listed) = a
            .api("alice")
            .get(&format!("/api/v1/rooms/{room}/members"))
            .await;
        let bob = listed["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == "bob")
            .cloned()
            .unwrap_or_else(|| panic!("{broker}: no bob in {listed}"));
        assert_eq!(bob["online"], true, "{broker}: {listed}");

        // A second connection on the other node is no news; neither is the
        // first one ending while the second lives.
        let bob_on_a = a.ws("bob").await;
        alice.expect_silence(quiet).await;
        bob_on_b.close().await;
        alice.expect_silence(quiet).await;
        bob_on_a.close().await;
        let offline = alice.recv_type("user_offline").await;
        assert_eq!(offline["user_id"], "bob", "{broker}: {offline}");
        alice.expect_silence(quiet).await;
        a.stop().await;
        b.stop().await;
    }
}

/// The app's notifications reach a user's `/ws` connections on every node
/// (and nobody else's); the answer counts the answering node's connections
/// and says whether the user is online anywhere (presence).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_reach_a_users_connections_on_every_node() {
    let quiet = std::time::Duration::from_millis(300);
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let room = a.room("alice", &["bob", "carol"]).await;
        let mut alice = a.ws("alice").await;
        alice.subscribe(&room).await;
        let mut bob_on_a = a.ws("bob").await;
        let mut bob_on_b = b.ws("bob").await;
        let mut bob_on_b2 = b.ws_at("/ws/chat/", "bob").await;
        assert_eq!(alice.recv_type("user_online").await["user_id"], "bob");
        let notify = |node: &TestServer, user: &str, event: &str| {
            let api = node.server_api();
            let (path, body) = (
                format!("/api/v1/users/{user}/notify"),
                json!({"event": event, "data": {"n": 1}}),
            );
            async move { api.post(&path, body).await }
        };

        let (status, answer) = notify(&a, "bob", "from-a").await;
        assert!(status.is_success(), "{broker}: {status} {answer}");
        assert_eq!(
            answer,
            json!({"connections": 1, "online": true}),
            "{broker}"
        );
        for ws in [&mut bob_on_a, &mut bob_on_b, &mut bob_on_b2] {
            let frame = ws.recv_type("notification").await;
            assert_eq!(frame["event"], "from-a", "{broker}: {frame}");
            assert_eq!(frame["data"], json!({"n": 1}), "{broker}: {frame}");
        }
        let (status, answer) = notify(&b, "bob", "from-b").await;
        assert!(status.is_success(), "{broker}: {status} {answer}");
        assert_eq!(answer["connections"], 2, "{broker}: B's two");
        for ws in [&mut bob_on_a, &mut bob_on_b, &mut bob_on_b2] {
            assert_eq!(ws.recv_type("notification").await["event"], "from-b");
        }

        // Carol is connected on B only: A reaches her, counts nothing of
        // its own, and knows from presence that she is online.
        let mut carol = b.ws("carol").await;
        assert_eq!(alice.recv_type("user_online").await["user_id"], "carol");
        let (status, answer) = notify(&a, "carol", "for-carol").await;
        assert!(status.is_success(), "{broker}: {status} {answer}");
        assert_eq!(
            answer,
            json!({"connections": 0, "online": true}),
            "{broker}"
        );
        assert_eq!(carol.recv_type("notification").await["event"], "for-carol");
        // Nobody else heard any of it.
        alice.expect_silence_but_presence(quiet).await;
        for ws in [&mut bob_on_a, &mut bob_on_b, &mut bob_on_b2] {
            ws.expect_silence_but_presence(quiet).await;
        }
        // Dave exists and is connected nowhere.
        let (status, _) = b.server_api().put("/api/v1/users/dave", json!({})).await;
        assert!(status.is_success(), "{broker}");
        let (status, answer) = notify(&a, "dave", "nobody-home").await;
        assert!(status.is_success(), "{broker}: {status} {answer}");
        assert_eq!(
            answer,
            json!({"connections": 0, "online": false}),
            "{broker}"
        );
        a.stop().await;
        b.stop().await;
    }
}

/// Direct-room creation is race-free across nodes: the two members asking
/// for their direct room at the same moment on different nodes get one room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_room_created_on_two_nodes_at_once_is_one_room() {
    let (a, b) = cluster(BROKERS[0]).await;
    for round in 0..8 {
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        let (api_a, api_b) = (a.api(&x), b.api(&y));
        let (on_a, on_b) = tokio::join!(
            api_a.post(
                "/api/v1/rooms",
                json!({"room_type": "direct", "members": [y]})
            ),
            api_b.post(
                "/api/v1/rooms",
                json!({"room_type": "direct", "members": [x]})
            ),
        );
        assert!(
            on_a.0.is_success() && on_b.0.is_success(),
            "{on_a:?} {on_b:?}"
        );
        assert_eq!(on_a.1["id"], on_b.1["id"], "round {round}: one room");
    }
    a.stop().await;
    b.stop().await;
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

/// Events lost on the way (here: a node publishing under another prefix,
/// as if the broker dropped them) leave a gap that the next event reveals;
/// the reorder stage reads the missing seqs from the store and delivers
/// them first, in order, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_broker_events_are_read_from_the_store_in_seq_order() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let lost = cluster_node(&a, &format!("lost{}", std::process::id())).await;
        let room = a.room("alice", &["bob"]).await;
        let mut bob = b.ws("bob").await;
        bob.subscribe(&room).await;
        let mut silent = lost.ws("alice").await;
        silent.send_message(&room, "one").await;
        silent.send_message(&room, "two").await;
        let mut alice = a.ws("alice").await;
        alice.send_message(&room, "three").await;
        let got = new_messages(&mut bob, 3).await;
        let contents: Vec<&str> = got.iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["one", "two", "three"], "{broker}");
        alice.send_message(&room, "four").await;
        assert_eq!(
            bob.recv_type("new_message").await["message"]["content"],
            "four",
            "{broker}"
        );
        bob.expect_silence(std::time::Duration::from_millis(300))
            .await;
        lost.stop().await;
        a.stop().await;
        b.stop().await;
    }
}

/// Cross-node delivery latency, send → receipt on another connection, for
/// one node (in-process hub) and two nodes over Redis and NATS. Prints
/// p50/p99; asserts only that everything arrived (no timed assertion).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_node_latency_report() {
    const N: usize = 200;
    let mut report = Vec::new();
    for broker in ["memory"].into_iter().chain(BROKERS) {
        let (a, b) = if broker == "memory" {
            (TestServer::start_with(common::unlimited).await, None)
        } else {
            let (a, b) = cluster(broker).await;
            (a, Some(b))
        };
        let room = a.room("alice", &["bob"]).await;
        let mut bob = match &b {
            Some(b) => b.ws("bob").await,
            None => a.ws("bob").await,
        };
        bob.subscribe(&room).await;
        let mut alice = a.ws("alice").await;
        let mut samples = Vec::with_capacity(N);
        for i in 0..N {
            let start = std::time::Instant::now();
            alice
                .send(json!({"type": "send_message", "room_id": room, "content": format!("m{i}")}))
                .await;
            let got = bob.recv_type("new_message").await;
            samples.push(start.elapsed());
            assert_eq!(got["message"]["seq"], (i + 1) as i64, "{broker}");
        }
        samples.sort();
        let p = |q: f64| samples[((N as f64 * q) as usize).min(N - 1)];
        report.push(format!(
            "{broker:>24}: p50 {:?}  p99 {:?}",
            p(0.50),
            p(0.99)
        ));
        a.stop().await;
        if let Some(b) = b {
            b.stop().await;
        }
    }
    println!("send → other connection's new_message, {N} sequential sends:");
    for line in report {
        println!("{line}");
    }
}

/// Which broker a private server is.
#[derive(Debug, Clone, Copy)]
enum BrokerKind {
    Redis,
    Nats,
}

/// A private `redis-server` or `nats-server` on a free port, killed and
/// restarted by the test (never the machine's shared one).
struct PrivateBroker {
    kind: BrokerKind,
    port: u16,
    child: std::process::Child,
}

impl PrivateBroker {
    fn start_on(kind: BrokerKind, port: u16) -> PrivateBroker {
        let port_arg = port.to_string();
        let mut command = match kind {
            BrokerKind::Redis => {
                let mut c = std::process::Command::new("redis-server");
                c.args(["--port", &port_arg, "--save", "", "--appendonly", "no"]);
                c
            }
            BrokerKind::Nats => {
                let mut c = std::process::Command::new("nats-server");
                c.args(["-a", "127.0.0.1", "-p", &port_arg]);
                c
            }
        };
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{kind:?} server must be installed (scripts/test.sh installs it): {e}")
            });
        PrivateBroker { kind, port, child }
    }

    fn start(kind: BrokerKind) -> PrivateBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        PrivateBroker::start_on(kind, port)
    }

    fn url(&self) -> String {
        match self.kind {
            BrokerKind::Redis => format!("redis://127.0.0.1:{}", self.port),
            BrokerKind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    async fn wait_up(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{:?} server did not start", self.kind);
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn readyz(server: &TestServer) -> (u16, Value) {
    let response = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits (bounded) until `/readyz` answers `code`.
async fn wait_ready(server: &TestServer, code: u16) -> Value {
    // Up to 30 s: a broker client's reconnect backoff grows to seconds.
    for _ in 0..1200 {
        let (status, body) = readyz(server).await;
        if status == code {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("/readyz never answered {code}");
}

/// The broker goes away: `/readyz` fails, sends are still stored and acked,
/// the node reconnects by itself, fan-out resumes (the gap filled from the
/// store, in order) and a client that missed events recovers by `since_seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_keeps_sends_and_fan_out_resumes_after_reconnect() {
    broker_outage(BrokerKind::Redis).await;
}

/// The same with a NATS server killed and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_outage_keeps_sends_and_fan_out_resumes_after_reconnect() {
    broker_outage(BrokerKind::Nats).await;
}

async fn broker_outage(kind: BrokerKind) {
    let mut broker = PrivateBroker::start(kind);
    broker.wait_up().await;
    let (a, b) = cluster(&broker.url()).await;
    let room = a.room("alice", &["bob"]).await;
    let mut bob = b.ws("bob").await;
    bob.subscribe(&room).await;
    let mut alice = a.ws("alice").await;
    alice.send_message(&room, "before").await;
    assert_eq!(bob.recv_type("new_message").await["message"]["seq"], 1);
    assert_eq!(readyz(&a).await.1["broker"], "ok");

    broker.kill();
    let body = wait_ready(&a, 503).await;
    assert_eq!(body["broker"], "down", "{body}");
    assert_eq!(body["storage"], "ok", "{body}");
    let ack = alice.send_message(&room, "during").await;
    assert_eq!(ack["seq"], 2, "stored and acked without the broker");

    let mut broker = PrivateBroker::start_on(kind, broker.port);
    broker.wait_up().await;
    wait_ready(&a, 200).await;
    wait_ready(&b, 200).await;
    alice.send_message(&room, "after").await;
    let got = new_messages(&mut bob, 2).await;
    let seqs: Vec<i64> = got.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [2, 3], "the gap is filled, in order");

    let mut late = b.ws("bob").await;
    late.request(json!({"type": "subscribe_room", "room_id": room, "since_seq": 0}))
        .await;
    let replayed = new_messages(&mut late, 3).await;
    assert_eq!(replayed[1]["content"], "during");
    broker.kill();
    a.stop().await;
    b.stop().await;
}
