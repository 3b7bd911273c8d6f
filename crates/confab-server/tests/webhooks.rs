//! Webhooks (protocol.md §8.1, issue 19 item 1): every event type reaches
//! a real receiver on 127.0.0.1, signed the Standard Webhooks way, with the
//! data of the table; `message.missed` goes to members with no connection
//! only; a failing receiver gets the same `webhook-id` again after 1 s,
//! 2 s …; an event committed before a stop is sent after the restart; a
//! receiver down for a while gets everything once it is back; two nodes
//! send each event once; the outbox is capped and aged, what is dropped
//! counted; failed events are listed and retried by the server key only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::receiver::{Received, Receiver, Reply, secret};
use common::{TestServer, assert_timestamp};
use confab_server::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Longer than the usual wait: retries come 1 s, 2 s, 4 s apart.
const PATIENCE: Duration = Duration::from_secs(30);

/// Sends the server's events to `url`, signed with the receivers' secret.
fn webhooks_to(url: String) -> impl FnOnce(&mut Config) {
    move |config| {
        config.webhook.url = url;
        config.webhook.secret = secret();
        config.webhook.timeout_s = 2;
    }
}

/// An address where nothing listens yet (a receiver may start there later).
async fn free_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The events received so far (every request is one), by arrival.
fn events(receiver: &Receiver) -> Vec<Received> {
    receiver.requests()
}

/// Waits until `ready` holds for the events received; returns them.
async fn wait_until(receiver: &Receiver, ready: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let received = events(receiver);
        if ready(&received) {
            return received;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the receiver never got what the test waits for; it got:\n{:#?}",
            received.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids of the messages the events are about, sorted.
fn message_ids(received: &[Received]) -> Vec<String> {
    let mut ids: Vec<String> = received
        .iter()
        .map(|r| r.body["data"]["message"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The bodies of type `kind`.
fn of_type<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Value> {
    received
        .iter()
        .map(|r| &r.body)
        .filter(|body| body["type"] == kind)
        .collect()
}

/// Waits until an event of type `kind` came whose data `matches`; returns its data.
async fn wait_for_event(
    receiver: &Receiver,
    kind: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let received = wait_until(receiver, |received| {
        of_type(received, kind).iter().any(|b| matches(&b["data"]))
    })
    .await;
    of_type(&received, kind)
        .into_iter()
        .find(|b| matches(&b["data"]))
        .unwrap()["data"]
        .clone()
}

/// Sends `content` over REST as `user`; the stored message.
async fn send(server: &TestServer, user: &str, room: &str, content: &str) -> Value {
    let (status, body) = server
        .api(user)
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": content, "client_msg_id": format!("k-{content}")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["message"].clone()
}

#[tokio::test]
async fn every_event_type_arrives_signed_with_the_data_of_the_table() {
    let receiver = Receiver::start(Reply::Ok(json!({}))).await;
    let server = TestServer::start_with(webhooks_to(receiver.webhook_url())).await;
    let room = server.room("alice", &["bob"]).await;
    server.api("carol").get("/api/v1/me").await;

    let created = wait_for_event(&receiver, "room.created", |d| d["room"]["id"] == room).await;
    assert_eq!(created["room"]["room_type"], "group");
    assert_eq!(created["room"]["closed"], false);
    let members = created["room"]["participants"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{created}");
    for (user, role) in [("alice", "owner"), ("bob", "member")] {
        let added = wait_for_event(&receiver, "member.added", |d| {
            d["room_id"] == room && d["user_id"] == user
        })
        .await;
        assert_eq!(
            added,
            json!({"room_id": room, "user_id": user, "role": role})
        );
    }

    // Alice is connected; bob is not.
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    let message = alice.send_message(&room, "hello").await;
    let id = message["message_id"].as_str().unwrap().to_owned();
    let stored = wait_for_event(&receiver, "message.created", |d| d["message"]["id"] == id).await;
    assert_eq!(stored["room_id"], room);
    assert_eq!(stored["message"]["content"], "hello");
    assert_eq!(stored["message"]["sender"]["id"], "alice");
    assert_eq!(stored["message"]["seq"], 1);
    let missed = wait_for_event(&receiver, "message.missed", |d| d["message"]["id"] == id).await;
    assert_eq!(missed["user_id"], "bob");
    assert_eq!(missed["room_id"], room);
    assert_eq!(missed["message"]["content"], "hello");

    let path = format!("/api/v1/rooms/{room}/messages/{id}");
    let (status, body) = server
        .api("alice")
        .patch(&path, json!({"content": "hello, edited"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated = wait_for_event(&receiver, "message.updated", |d| d["message"]["id"] == id).await;
    assert_eq!(updated["message"]["content"], "hello, edited");
    assert!(updated["message"]["edited_at"].is_string(), "{updated}");
    let (status, body) = server.api("alice").delete(&path).await;
    assert!(status.is_success(), "{body}");
    let deleted = wait_for_event(&receiver, "message.deleted", |d| d["message_id"] == id).await;
    assert_eq!(
        deleted,
        json!({"room_id": room, "message_id": id, "seq": 1})
    );

    let (status, body) = server
        .api("alice")
        .patch(&format!("/api/v1/rooms/{room}"), json!({"name": "Renamed"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let renamed = wait_for_event(&receiver, "room.updated", |d| d["room"]["id"] == room).await;
    assert_eq!(renamed["room"]["name"], "Renamed");

    let members_path = format!("/api/v1/rooms/{room}/members");
    let (status, body) = server
        .api("alice")
        .post(&members_path, json!({"user_id": "carol", "role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let added = wait_for_event(&receiver, "member.added", |d| d["user_id"] == "carol").await;
    assert_eq!(
        added,
        json!({"room_id": room, "user_id": "carol", "role": "admin"})
    );
    let (status, body) = server
        .api("alice")
        .delete(&format!("{members_path}/carol"))
        .await;
    assert!(status.is_success(), "{body}");
    let removed = wait_for_event(&receiver, "member.removed", |d| d["user_id"] == "carol").await;
    assert_eq!(
        removed,
        json!({"room_id": room, "user_id": "carol", "role": "admin"}),
        "the role the member had"
    );

    let (status, body) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}"))
        .await;
    assert!(status.is_success(), "{body}");
    let closed = wait_for_event(&receiver, "room.closed", |d| d["room"]["id"] == room).await;
    assert_eq!(closed["room"]["closed"], true);

    // An assistant session, rated, then ended.
    let (status, session) = server
        .api("dana")
        .post("/api/v1/rooms", json!({"room_type": "assistant"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let session = session["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .api("dana")
        .post(
            &format!("/api/v1/rooms/{session}/rating"),
            json!({"rating": 5, "feedback": "spot on"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .api("dana")
        .delete(&format!("/api/v1/rooms/{session}"))
        .await;
    assert!(status.is_success(), "{body}");
    let ended = wait_for_event(&receiver, "session.closed", |d| d["session_id"] == session).await;
    assert_eq!(
        ended,
        json!({"room_id": session, "session_id": session, "user_id": "dana",
               "rating": 5, "feedback": "spot on"})
    );

    // Every request: a signed POST of {type, timestamp, data} with an evt_ id.
    let received = events(&receiver);
    let mut ids = HashSet::new();
    for request in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/webhooks");
        assert!(request.signature_valid, "{:?}", request.headers);
        assert_eq!(request.header("content-type"), Some("application/json"));
        let id = request.header("webhook-id").unwrap();
        assert!(id.starts_with("evt_"), "{id}");
        assert!(
            ids.insert(id.to_owned()),
            "{id} sent twice to a receiver that answered 200"
        );
        let timestamp: u64 = request
            .header("webhook-timestamp")
            .unwrap()
            .parse()
            .unwrap();
        assert!(timestamp.abs_diff(common::now_s()) < 60, "{timestamp}");
        let body = request.body.as_object().unwrap();
        assert_eq!(body.len(), 3, "{:?}", request.body);
        assert_timestamp(&request.body["timestamp"]);
    }
    // Closing a closed room again, or deleting a deleted message, is no event.
    server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}"))
        .await;
    server.api("alice").delete(&path).await;
    let (status, _) = server
        .api("alice")
        .get(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let received = events(&receiver);
    let closed = of_type(&received, "room.closed")
        .iter()
        .filter(|b| b["data"]["room"]["id"] == room)
        .count();
    let deleted = of_type(&received, "message.deleted")
        .iter()
        .filter(|b| b["data"]["message_id"] == id)
        .count();
    assert_eq!(
        (closed, deleted),
        (1, 1),
        "no event for a change that changed nothing"
    );
}

#[tokio::test]
async fn message_missed_goes_only_to_members_with_no_connection_anywhere() {
    let receiver = Receiver::start(Reply::Ok(json!({}))).await;
    let server = TestServer::start_with(webhooks_to(receiver.webhook_url())).await;
    let room = server.room("alice", &["bob", "carol", "dave"]).await;
    // Bob on the multiplexed socket, carol on a room-scoped one; dave offline.
    let mut bob = server.ws("bob").await;
    let token = server.token("carol");
    let mut carol = server
        .ws_raw(&format!("/ws/chat/{room}/?token={token}"), &[])
        .await;
    bob.subscribe(&room).await;
    // Carol's session is registered once it answers.
    carol.send(json!({"type": "ping", "req_id": "up"})).await;
    loop {
        if carol.recv_json().await["type"] == "pong" {
            break;
        }
    }
    // Alice sends over REST (no socket of hers is open): she is the sender,
    // never "missed".
    let message = send(&server, "alice", &room, "who is here").await;
    let id = message["id"].as_str().unwrap().to_owned();
    wait_for_event(&receiver, "message.created", |d| d["message"]["id"] == id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let missed: Vec<Value> = of_type(&events(&receiver), "message.missed")
        .into_iter()
        .map(|b| b["data"]["user_id"].clone())
        .collect();
    assert_eq!(missed, [json!("dave")], "only dave had no connection");

    // Once everyone is gone, a system message is missed by all three
    // members and the sender alike (the system user is no member).
    drop(bob);
    carol.close().await;
    let (status, body) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "closing soon", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["message"]["id"].as_str().unwrap().to_owned();
    let received = wait_until(&receiver, |received| {
        of_type(received, "message.missed")
            .iter()
            .filter(|b| b["data"]["message"]["id"] == id)
            .count()
            >= 4
    })
    .await;
    let mut users: Vec<String> = of_type(&received, "message.missed")
        .into_iter()
        .filter(|b| b["data"]["message"]["id"] == id)
        .map(|b| b["data"]["user_id"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol", "dave"]);
}

#[tokio::test]
async fn only_the_configured_event_types_are_sent() {
    let receiver = Receiver::start(Reply::Ok(json!({}))).await;
    let server = TestServer::start_with(|config| {
        webhooks_to(receiver.webhook_url())(config);
        config.webhook.events = vec!["message.missed".into()];
    })
    .await;
    let room = server.room("alice", &["bob"]).await;
    send(&server, "alice", &room, "one").await;
    send(&server, "alice", &room, "two").await;
    let received = wait_until(&receiver, |r| r.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = if events(&receiver).len() > received.len() {
        events(&receiver)
    } else {
        received
    };
    let kinds: HashSet<&str> = received
        .iter()
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, HashSet::from(["message.missed"]), "{kinds:?}");
    assert_eq!(received.len(), 2);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_again_after_one_then_two_seconds() {
    let receiver = Receiver::start(Reply::FailFirst(2)).await;
    let server = TestServer::start_with(|config| {
        webhooks_to(receiver.webhook_url())(config);
        config.webhook.events = vec!["room.created".into()];
    })
    .await;
    let room = server.room("alice", &[]).await;
    let received = wait_until(&receiver, |r| r.len() >= 3).await;
    let ids: HashSet<&str> = received
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one event, three attempts: {ids:?}");
    for attempt in &received {
        assert!(attempt.signature_valid);
        assert_eq!(attempt.body["data"]["room"]["id"], room);
        assert_eq!(attempt.body, received[0].body, "the same body every time");
    }
    let scrape = server
        .scrape_until(|s| s.get("confab_webhook_deliveries_total{outcome=\"delivered\"}") == 1.0)
        .await;
    assert_eq!(
        scrape.get("confab_webhook_deliveries_total{outcome=\"retried\"}"),
        2.0
    );
    assert_eq!(
        scrape.get("confab_webhook_deliveries_total{outcome=\"failed\"}"),
        0.0
    );
    // Backoff: the second attempt came at least 1 s after the first, the
    // third at least 2 s after the second (a lower bound: it is the rule,
    // not a speed).
    let stamps: Vec<u64> = received
        .iter()
        .map(|r| r.header("webhook-timestamp").unwrap().parse().unwrap())
        .collect();
    assert!(
        stamps[1] > stamps[0] && stamps[2] >= stamps[1] + 2,
        "{stamps:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events(&receiver).len(), 3, "nothing after the 2xx");
}

#[tokio::test]
async fn an_event_out_of_attempts_is_listed_as_failed_and_retried_by_the_server_key() {
    // Two failures use up two attempts; the retry's attempt succeeds.
    let receiver = Receiver::start(Reply::FailFirst(2)).await;
    let server = TestServer::start_with(|config| {
        webhooks_to(receiver.webhook_url())(config);
        config.webhook.events = vec!["room.created".into()];
        config.webhook.max_attempts = 2;
    })
    .await;
    let room = server.room("alice", &[]).await;
    server
        .scrape_until(|s| s.get("confab_webhook_deliveries_total{outcome=\"failed\"}") == 1.0)
        .await;
    let (status, body) = server.server_api().get("/api/v1/webhooks/failed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let failed = body["events"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{body}");
    let event = &failed[0];
    let id = event["id"].as_str().unwrap().to_owned();
    assert_eq!(event["type"], "room.created");
    assert_eq!(event["room_id"], room);
    assert_eq!(event["attempts"], 2);
    assert!(
        event["last_error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 503"),
        "{event}"
    );
    assert_timestamp(&event["timestamp"]);
    assert_timestamp(&event["failed_at"]);
    let sent: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(sent, [id.clone(), id.clone()]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "a failed event is not tried again by itself"
    );

    // Users, the room's owner included, neither see nor retry failed events.
    for user in ["alice"] {
        let (status, body) = server.api(user).get("/api/v1/webhooks/failed").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, body) = server
            .api(user)
            .post("/api/v1/webhooks/failed/retry", json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    // Malformed retries are refused and retry nothing.
    let too_many: Vec<String> = (0..101).map(|i| format!("evt_{i}")).collect();
    for bad in [
        json!({"ids": too_many}),
        json!({"ids": "all"}),
        json!({"ids": [""]}),
        json!({"every": true}),
    ] {
        let (status, body) = server
            .server_api()
            .post("/api/v1/webhooks/failed/retry", bad.clone())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    }
    let (status, body) = server
        .server_api()
        .get("/api/v1/webhooks/failed?limit=0")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // An id that is no failed event retries nothing.
    let (status, body) = server
        .server_api()
        .post(
            "/api/v1/webhooks/failed/retry",
            json!({"ids": ["evt_nothing"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"retried": 0}));
    assert_eq!(receiver.requests().len(), 2);

    let (status, body) = server
        .server_api()
        .post("/api/v1/webhooks/failed/retry", json!({"ids": [id]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"retried": 1}));
    let received = wait_until(&receiver, |r| r.len() >= 3).await;
    assert_eq!(
        received[2].header("webhook-id"),
        Some(id.as_str()),
        "the same id again"
    );
    server
        .scrape_until(|s| s.get("confab_webhook_deliveries_total{outcome=\"delivered\"}") == 1.0)
        .await;
    let (_, body) = server.server_api().get("/api/v1/webhooks/failed").await;
    assert_eq!(body, json!({"events": []}));
}

#[tokio::test]
async fn events_committed_before_a_stop_are_sent_after_the_restart() {
    let address = free_address().await;
    let url = format!("http://{address}/webhooks");
    let mut server = TestServer::start_with(webhooks_to(url.clone())).await;
    let dir = server.keep_data_dir().unwrap();
    let room = server.room("alice", &["bob"]).await;
    let mut sent = HashSet::new();
    for text in ["one", "two", "three"] {
        let message = send(&server, "alice", &room, text).await;
        sent.insert(message["id"].as_str().unwrap().to_owned());
    }
    server.stop().await;

    // The receiver comes up only now, and so does the server again.
    let receiver = Receiver::start_at(&address, &secret(), Reply::Ok(json!({}))).await;
    let server = TestServer::start_in(dir.path(), webhooks_to(url)).await;
    let received = wait_until(&receiver, |r| of_type(r, "message.created").len() >= 3).await;
    let created: HashSet<String> = of_type(&received, "message.created")
        .iter()
        .map(|b| b["data"]["message"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created, sent);
    wait_until(&receiver, |r| of_type(r, "message.missed").len() >= 3).await;
    wait_until(&receiver, |r| !of_type(r, "room.created").is_empty()).await;
    server.stop().await;
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_once_it_is_back() {
    let address = free_address().await;
    let server = TestServer::start_with(|config| {
        webhooks_to(format!("http://{address}/webhooks"))(config);
        config.webhook.events = vec!["message.created".into()];
    })
    .await;
    let room = server.room("alice", &[]).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let message = send(&server, "alice", &room, &format!("m{i}")).await;
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    // Every event failed at least once while nobody listened; chat went on.
    server
        .scrape_until(|s| s.get("confab_webhook_deliveries_total{outcome=\"retried\"}") >= 5.0)
        .await;
    let more = send(&server, "alice", &room, "while down").await;
    sent.push(more["id"].as_str().unwrap().to_owned());

    let receiver = Receiver::start_at(&address, &secret(), Reply::Ok(json!({}))).await;
    wait_until(&receiver, |r| r.len() >= sent.len()).await;
    // Anything sent twice would come within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sent.sort();
    assert_eq!(message_ids(&events(&receiver)), sent, "each event once");
    let scrape = server
        .scrape_until(|s| s.get("confab_webhook_outbox_pending") == 0.0)
        .await;
    assert_eq!(scrape.get("confab_webhook_outbox_oldest_seconds"), 0.0);
}

#[tokio::test]
async fn two_nodes_send_each_event_once() {
    let receiver = Receiver::start(Reply::Ok(json!({}))).await;
    let tweak = |config: &mut Config| {
        webhooks_to(receiver.webhook_url())(config);
        config.webhook.events = vec!["message.created".into()];
    };
    let (a, b) = common::cluster_with(common::BROKERS[0], tweak, tweak).await;
    let room = a.room("alice", &["bob"]).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let message = send(node, "alice", &room, &format!("m{i}")).await;
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    wait_until(&receiver, |r| r.len() >= sent.len()).await;
    // Both nodes keep polling; give them time to send anything twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = events(&receiver);
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for request in &received {
        *per_id
            .entry(request.header("webhook-id").unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    sent.sort();
    assert_eq!(message_ids(&received), sent);
}

#[tokio::test]
async fn the_outbox_is_capped_and_aged_and_what_it_drops_is_counted() {
    let address = free_address().await;
    let server = TestServer::start_with(|config| {
        webhooks_to(format!("http://{address}/webhooks"))(config);
        config.webhook.events = vec!["message.created".into()];
        config.webhook.max_pending = 3;
    })
    .await;
    let room = server.room("alice", &[]).await;
    let mut sent = Vec::new();
    for i in 0..10 {
        let message = send(&server, "alice", &room, &format!("m{i}")).await;
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    let scrape = server
        .scrape_until(|s| s.get("confab_webhook_dropped_total{reason=\"cap\"}") >= 7.0)
        .await;
    assert_eq!(
        scrape.get("confab_webhook_dropped_total{reason=\"cap\"}"),
        7.0
    );
    assert_eq!(
        scrape.get("confab_webhook_dropped_total{reason=\"age\"}"),
        0.0
    );
    let scrape = server
        .scrape_until(|s| s.get("confab_webhook_outbox_pending") > 0.0)
        .await;
    assert_eq!(scrape.get("confab_webhook_outbox_pending"), 3.0);
    assert!(scrape.get("confab_webhook_outbox_oldest_seconds") > 0.0);
    // Chat was not held up: every message is stored.
    assert_eq!(server.last_seq("alice", &room).await, 10);
    // What is left are the newest three.
    let receiver = Receiver::start_at(&address, &secret(), Reply::Ok(json!({}))).await;
    wait_until(&receiver, |r| r.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut newest = sent[7..].to_vec();
    newest.sort();
    assert_eq!(message_ids(&events(&receiver)), newest);

    // Events older than max_age_s are dropped too.
    let address = free_address().await;
    let server = TestServer::start_with(|config| {
        webhooks_to(format!("http://{address}/webhooks"))(config);
        config.webhook.max_age_s = 1;
    })
    .await;
    server.room("alice", &["bob"]).await;
    let scrape = server
        .scrape_until(|s| s.get("confab_webhook_dropped_total{reason=\"age\"}") >= 3.0)
        .await;
    assert_eq!(
        scrape.get("confab_webhook_dropped_total{reason=\"age\"}"),
        3.0,
        "room.created and two member.added"
    );
}

#[tokio::test]
async fn a_slow_receiver_holds_at_most_max_in_flight_requests_and_chat_goes_on() {
    // Each answer takes 1.5 s: while the first two wait, no third may start.
    let receiver = Receiver::start(Reply::Slow(Duration::from_millis(1500))).await;
    let server = TestServer::start_with(|config| {
        webhooks_to(receiver.webhook_url())(config);
        config.webhook.events = vec!["message.created".into()];
        config.webhook.max_in_flight = 2;
    })
    .await;
    let room = server.room("alice", &[]).await;
    for i in 0..6 {
        send(&server, "alice", &room, &format!("m{i}")).await;
    }
    // Chat was not slowed: all six are stored while the receiver dawdles.
    assert_eq!(server.last_seq("alice", &room).await, 6);
    let received = wait_until(&receiver, |r| r.len() >= 6).await;
    // Every request is answered 1.5 s after it arrived: those that arrived
    // within 1.5 s before one were all still under way when it came.
    let window = Duration::from_millis(1450);
    for request in &received {
        let under_way = received
            .iter()
            .filter(|other| other.at <= request.at && request.at - other.at < window)
            .count();
        assert!(
            under_way <= 2,
            "{under_way} requests under way at once, max_in_flight is 2"
        );
    }
    let ids: HashSet<&str> = received
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
}
