//! The room-scoped dialects (protocol.md §3, §7): `/ws/chat/{room_id}/`
//! (job conversations) and `/ws/sessions/{room_id}/` (climbing-partner
//! sessions), driven by clients that speak only their dialect: round trips,
//! cross-talk with `/ws`, the refusal close codes 4001–4004 before and
//! during a connection, typing to the others only, limits, bad input that
//! stores nothing and keeps the socket, catch-up on reconnect, configured
//! legacy routes, metrics, and two nodes on Redis and NATS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{BROKERS, Ended, TestServer, WsClient, assert_timestamp, cluster, now_s, unlimited};
use confab_server::config::{DialectName, RouteConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const CHAT: &str = "/ws/chat";
const SESSIONS: &str = "/ws/sessions";
const QUIET: Duration = Duration::from_millis(300);

/// Connects to `{base}/{room}/?token=T{extra}` as a browser would: the
/// token in the URL, no greeting expected.
async fn dial(server: &TestServer, base: &str, room: &str, token: &str, extra: &str) -> WsClient {
    server
        .ws_raw(&format!("{base}/{room}/?token={token}{extra}"), &[])
        .await
}

/// Waits until `client` has joined its room: a `ping` is read only once the
/// join is done, so its `pong` proves it (frames replayed by the join come
/// first and are returned).
async fn joined(client: &mut WsClient) -> Vec<Value> {
    client
        .send(json!({"type": "ping", "req_id": "joined"}))
        .await;
    let mut before = Vec::new();
    loop {
        let frame = client.recv_json().await;
        if frame["type"] == "pong" {
            assert_eq!(frame["req_id"], "joined", "{frame}");
            assert_timestamp(&frame["timestamp"]);
            return before;
        }
        before.push(frame);
    }
}

/// [`dial`] with a fresh one-hour token for `user`, once joined.
async fn join(server: &TestServer, base: &str, room: &str, user: &str) -> WsClient {
    let mut client = dial(server, base, room, &server.token(user), "").await;
    assert_eq!(joined(&mut client).await, Vec::<Value>::new());
    client
}

/// The first thing the server sends must be a close frame; returns its code.
async fn first_close(client: &mut WsClient) -> u16 {
    let next = tokio::time::timeout(common::WAIT, client.stream.next())
        .await
        .expect("no close in time");
    match next {
        Some(Ok(Message::Close(Some(frame)))) => frame.code.into(),
        other => panic!("expected a close frame first, got {other:?}"),
    }
}

/// Reads the next frame, which must be a dialect message; returns it.
async fn recv_message(client: &mut WsClient) -> Value {
    let frame = client.recv_json().await;
    assert_eq!(frame["type"], "message", "{frame}");
    frame
}

#[tokio::test]
async fn chat_dialect_round_trip_and_cross_talk_with_ws_both_ways() {
    let server = TestServer::start().await;
    // The job app creates users with names, and the conversation, with the server key.
    for (id, name) in [("emp-1", "Erin"), ("wrk-2", "Walt")] {
        let (status, body) = server
            .server_api()
            .put(&format!("/api/v1/users/{id}"), json!({"name": name}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let room = server.room_with_id("emp-1", "job-45", &["wrk-2"]).await;
    let mut erin = join(&server, CHAT, &room, "emp-1").await;
    let mut walt = server.ws("wrk-2").await;
    walt.subscribe(&room).await;

    // Dialect → dialect (own echo) and → /ws.
    erin.send(json!({"message": "Can you start Monday?", "type": "TEXT"}))
        .await;
    let own = recv_message(&mut erin).await;
    let m = &own["message"];
    assert_eq!(m["conversation_id"], "job-45", "{own}");
    assert_eq!(m["sender_id"], "emp-1");
    assert_eq!(m["sender_name"], "Erin");
    assert_eq!(m["message_text"], "Can you start Monday?");
    assert_eq!(m["message_type"], "TEXT");
    assert_eq!(m["is_read"], false);
    assert_eq!(m["seq"], 1);
    assert!(m["id"].is_string());
    assert_timestamp(&m["timestamp"]);
    let seen = walt.recv_type("new_message").await;
    assert_eq!(seen["message"]["id"], m["id"]);
    assert_eq!(seen["message"]["content"], "Can you start Monday?");
    assert_eq!(seen["message"]["sender"]["first_name"], "Erin");

    // /ws → dialect.
    walt.send_message(&room, "Yes, 8am").await;
    let reply = recv_message(&mut erin).await;
    assert_eq!(reply["message"]["sender_id"], "wrk-2");
    assert_eq!(reply["message"]["sender_name"], "Walt");
    assert_eq!(reply["message"]["message_text"], "Yes, 8am");
    assert_eq!(reply["message"]["seq"], 2);

    // Walt's unread count counts Erin's message until the dialect client
    // marks it read… no: until Walt reads it. Erin marks Walt's as read
    // from the dialect, and /ws sees the receipt.
    let (_, rooms) = server.api("wrk-2").get("/api/v1/rooms").await;
    assert_eq!(rooms["rooms"][0]["unread_count"], 1, "{rooms}");
    erin.send(json!({"type": "mark_read"})).await;
    let receipt = walt.recv_type("message_read").await;
    assert_eq!(receipt["user_id"], "emp-1");
    assert_eq!(receipt["up_to_seq"], 2);
    // Receipts are not part of the dialect: Erin sees nothing of her own.
    erin.expect_silence(QUIET).await;
    let (_, rooms) = server.api("emp-1").get("/api/v1/rooms").await;
    assert_eq!(rooms["rooms"][0]["unread_count"], 0, "{rooms}");

    // Walt reads and writes once more while Erin is away; reconnecting, she
    // asks for the newest three: hers read by Walt, Walt's first read by
    // her, his last by nobody but him.
    walt.request(json!({"type": "mark_read", "room_id": room}))
        .await;
    drop(erin);
    walt.send_message(&room, "See you").await;
    let mut erin = dial(&server, CHAT, &room, &server.token("emp-1"), "&history=3").await;
    let replayed = [
        recv_message(&mut erin).await,
        recv_message(&mut erin).await,
        recv_message(&mut erin).await,
    ];
    let read: Vec<(i64, bool)> = replayed
        .iter()
        .map(|f| {
            (
                f["message"]["seq"].as_i64().unwrap(),
                f["message"]["is_read"] == true,
            )
        })
        .collect();
    assert_eq!(read, [(1, true), (2, true), (3, false)], "{replayed:?}");
    erin.expect_silence(QUIET).await;

    // since_seq replays exactly what came after.
    drop(erin);
    let mut erin = dial(&server, CHAT, &room, &server.token("emp-1"), "&since_seq=1").await;
    assert_eq!(recv_message(&mut erin).await["message"]["seq"], 2);
    assert_eq!(recv_message(&mut erin).await["message"]["seq"], 3);
    erin.expect_silence(QUIET).await;
}

#[tokio::test]
async fn chat_dialect_location_image_and_system_messages_as_the_app_sends_them() {
    let server = TestServer::start().await;
    let room = server.room_with_id("emp", "job-7", &["wrk"]).await;
    let mut erin = join(&server, CHAT, &room, "emp").await;

    erin.send(
        json!({"type": "LOCATION", "message": "Site", "latitude": 52.52, "longitude": 13.405}),
    )
    .await;
    let located = recv_message(&mut erin).await;
    assert_eq!(located["message"]["message_type"], "LOCATION");
    assert_eq!(
        located["message"]["location"],
        json!({"lat": 52.52, "lng": 13.405})
    );

    let (status, upload) = server
        .api("emp")
        .upload("site.png", "image/png", b"\x89PNG\r\n\x1a\n0000")
        .await;
    assert_eq!(status, 201, "{upload}");
    erin.send(json!({"type": "IMAGE", "message": "", "attachment_id": upload["id"]}))
        .await;
    let image = recv_message(&mut erin).await;
    assert_eq!(image["message"]["message_type"], "IMAGE");
    assert_eq!(image["message"]["attachment"]["id"], upload["id"]);

    // A user may not send SYSTEM messages; the socket stays and nothing is stored.
    erin.send(json!({"type": "SYSTEM", "message": "Job accepted"}))
        .await;
    let refused = erin.recv_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "forbidden");
    // The app's back-end sends them with the server key; the dialect shows them.
    let (status, _) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "Job accepted", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, 201);
    let system = recv_message(&mut erin).await;
    assert_eq!(system["message"]["message_type"], "SYSTEM");
    assert_eq!(system["message"]["message_text"], "Job accepted");
    assert_eq!(server.last_seq("emp", &room).await, 3);
}

#[tokio::test]
async fn sessions_dialect_round_trip_typing_to_others_only_and_last_message_time() {
    let server = TestServer::start().await;
    let room = server.room_with_id("ann", "session-9", &["ben"]).await;
    let ann_token = server.token_with("ann", Some("Ann"), None, Duration::from_secs(3600));
    let mut ann = dial(&server, SESSIONS, &room, &ann_token, "").await;
    joined(&mut ann).await;
    let mut ben = join(&server, SESSIONS, &room, "ben").await;
    let mut ws = server.ws("ben").await;
    ws.subscribe(&room).await;

    ann.send(json!({"type": "typing", "is_typing": true})).await;
    let typing = ben.recv_json().await;
    assert_eq!(
        typing,
        json!({"type": "typing", "sender_id": "ann", "sender_name": "Ann", "is_typing": true})
    );
    let typing = ws.recv_type("typing").await;
    assert_eq!(typing["user_id"], "ann");
    assert_eq!(typing["name"], "Ann");
    ann.expect_silence(QUIET).await;

    ann.send(json!({"type": "message", "content": "On belay?"}))
        .await;
    for client in [&mut ann, &mut ben] {
        let message = recv_message(client).await;
        assert_eq!(message["content"], "On belay?", "{message}");
        assert_eq!(message["sender_id"], "ann");
        assert_eq!(message["sender_name"], "Ann");
        assert!(message["message_id"].is_string());
        assert_timestamp(&message["created_at"]);
    }
    // Sending ends the typing indicator, which ben sees as typing false.
    let stopped = ben.recv_json().await;
    assert_eq!(stopped["type"], "typing", "{stopped}");
    assert_eq!(stopped["is_typing"], false);
    let from_ws = ws.recv_type("new_message").await;
    assert_eq!(from_ws["message"]["content"], "On belay?");

    ws.send_message(&room, "Belay on").await;
    let message = recv_message(&mut ann).await;
    assert_eq!(message["content"], "Belay on");
    assert_eq!(message["sender_id"], "ben");
    assert_eq!(message["sender_name"], "ben", "no name: the handle");

    // The room's last message time follows (the app's `last_message_at`).
    let summary = server.room_as("ann", &room).await;
    assert_eq!(summary["last_message_content"], "Belay on");
    assert_eq!(summary["last_seq"], 2);
    assert_timestamp(&summary["last_message_time"]);
}

/// A message frame with `text` in the dialect of `base`.
fn message_frame(base: &str, text: &str) -> Value {
    if base == CHAT {
        json!({"message": text, "type": "TEXT"})
    } else {
        json!({"type": "message", "content": text})
    }
}

#[tokio::test]
async fn bad_input_is_answered_stores_nothing_and_keeps_the_socket() {
    let server = TestServer::start().await;
    for (base, room) in [(CHAT, "job-5"), (SESSIONS, "session-5")] {
        let room = server.room_with_id("ann", room, &["ben"]).await;
        let mut client = join(&server, base, &room, "ann").await;
        let cases = [
            ("{not json".to_owned(), "invalid_json"),
            ("[1, 2]".to_owned(), "invalid_json"),
            (
                format!("{{\"metadata\": {}{}}}", "[".repeat(64), "]".repeat(64)),
                "invalid_json",
            ),
            (
                json!({"type": "VIDEO", "message": "x"}).to_string(),
                "unknown_type",
            ),
            (
                json!({"type": "typing", "is_typing": "yes"}).to_string(),
                "invalid_field",
            ),
            (message_frame(base, "   ").to_string(), "empty_message"),
            (
                message_frame(base, &"x".repeat(2001)).to_string(),
                "message_too_long",
            ),
            (message_frame(base, "a\u{0}b").to_string(), "invalid_field"),
        ];
        for (text, code) in cases {
            client.send_text(&text).await;
            let error = client.recv_json().await;
            assert_eq!(error["type"], "error", "{base} {text}: {error}");
            assert_eq!(error["code"], code, "{base} {text}: {error}");
            assert_eq!(error["room_id"], room.as_str());
        }
        client.send_binary(vec![1, 2, 3]).await;
        assert_eq!(client.recv_json().await["code"], "invalid_json");
        // A refusal echoes the frame's req_id.
        let mut empty = message_frame(base, "");
        empty["req_id"] = json!(17);
        client.send(empty).await;
        let refused = client.recv_json().await;
        assert_eq!(
            (refused["code"].as_str(), refused["req_id"].as_i64()),
            (Some("empty_message"), Some(17))
        );
        assert_eq!(
            server.last_seq("ann", &room).await,
            0,
            "{base}: nothing stored"
        );
        // Still open, still working: exactly 2,000 characters pass.
        client.send(message_frame(base, &"y".repeat(2000))).await;
        recv_message(&mut client).await;
        assert_eq!(server.last_seq("ann", &room).await, 1);
    }
}

#[tokio::test]
async fn refusals_close_with_4001_to_4004_before_any_frame() {
    let server = TestServer::start().await;
    let room = server.room_with_id("ann", "job-1", &["ben"]).await;
    server.room_with_id("cat", "job-2", &["dan"]).await;
    let (status, _) = server
        .server_api()
        .put("/api/v1/users/eve", json!({"disabled": true}))
        .await;
    assert_eq!(status, 200);
    let expired = server.token_from_claims(&json!({"sub": "ann", "exp": now_s() - 300}));
    for base in [CHAT, SESSIONS] {
        let cases: Vec<(String, u16)> = vec![
            (format!("{base}/{room}/"), 4001),
            (format!("{base}/{room}/?token="), 4001),
            (
                format!("{base}/{room}/?token={}", server.token("eve")),
                4002,
            ),
            (format!("{base}/{room}/?token=not.a.jwt"), 4003),
            (format!("{base}/{room}/?token={expired}"), 4003),
            (
                format!("{base}/{room}/?token={}", server.token("system")),
                4003,
            ),
            (format!("{base}/job-2/?token={}", server.token("ann")), 4004),
            (
                format!("{base}/no-such-room/?token={}", server.token("ann")),
                4004,
            ),
            (
                format!("{base}/%2e%2e/?token={}", server.token("ann")),
                4004,
            ),
            (format!("{base}/%ZZ/?token={}", server.token("ann")), 4004),
            (
                format!("{base}/{}/?token={}", "r".repeat(300), server.token("ann")),
                4004,
            ),
        ];
        for (path, code) in cases {
            let mut client = server.ws_raw(&path, &[]).await;
            assert_eq!(first_close(&mut client).await, code, "{path}");
        }
        // A bad query is the developer's mistake: an HTTP 400 they can read.
        let (status, body) = server
            .ws_refused(&format!("{base}/{room}/?token=t&history=-1"), &[])
            .await;
        assert_eq!(status, 400, "{body}");
        let (status, _) = server
            .ws_refused(&format!("{base}/{room}/?history=1&since_seq=1"), &[])
            .await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn a_token_that_expires_a_disabled_user_and_a_removed_member_are_closed_mid_connection() {
    let server = TestServer::start_with(|c| c.auth.leeway_s = 0).await;
    let room = server.room_with_id("ann", "job-3", &["ben", "cat"]).await;
    for base in [CHAT, SESSIONS] {
        let short = server.token_with("ann", None, None, Duration::from_secs(2));
        let mut expiring = dial(&server, base, &room, &short, "").await;
        let mut disabled = join(&server, base, &room, "ben").await;
        let mut removed = join(&server, base, &room, "cat").await;
        expiring.send(message_frame(base, "hi")).await;
        recv_message(&mut expiring).await;
        assert_eq!(expiring.ended().await, Ended::Closed(4003), "{base}");

        let (status, _) = server
            .server_api()
            .put("/api/v1/users/ben", json!({"disabled": true}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(disabled.ended().await, Ended::Closed(4002), "{base}");
        server
            .server_api()
            .put("/api/v1/users/ben", json!({"disabled": false}))
            .await;

        let (status, _) = server
            .api("ann")
            .delete(&format!("/api/v1/rooms/{room}/members/cat"))
            .await;
        assert_eq!(status, 204);
        assert_eq!(removed.ended().await, Ended::Closed(4004), "{base}");
        let (status, _) = server
            .api("ann")
            .post(
                &format!("/api/v1/rooms/{room}/members"),
                json!({"user_id": "cat"}),
            )
            .await;
        assert_eq!(status, 201);
    }
}

#[tokio::test]
async fn sends_are_rate_limited_like_on_ws() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.messages_per_minute = 1;
        c.rate_limit.burst = 2;
    })
    .await;
    let room = server.room_with_id("ann", "session-2", &["ben"]).await;
    let mut ann = join(&server, SESSIONS, &room, "ann").await;
    for n in 0..3 {
        ann.send(json!({"type": "message", "content": format!("m{n}"), "req_id": n}))
            .await;
    }
    // The refusal is answered at once; the two accepted sends come back
    // from the room once stored, in whatever order relative to it.
    let mut frames = vec![
        ann.recv_json().await,
        ann.recv_json().await,
        ann.recv_json().await,
    ];
    frames.sort_by_key(|frame| frame["type"] == "error");
    assert_eq!(frames[0]["type"], "message", "{frames:?}");
    assert_eq!(frames[1]["type"], "message", "{frames:?}");
    let limited = &frames[2];
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert_eq!(limited["req_id"], 2);
    assert!(limited["retry_after_ms"].as_u64().unwrap() > 0);
    ann.send(json!({"type": "typing"})).await;
    assert_eq!(server.last_seq("ann", &room).await, 2);
}

#[tokio::test]
async fn configured_legacy_routes_speak_their_dialect_and_metrics_count_each_endpoint() {
    let server = TestServer::start_with(|c| {
        c.server.routes = vec![
            RouteConfig {
                path: "/ws/job_chat/{room_id}/".into(),
                dialect: DialectName::Chat,
            },
            RouteConfig {
                path: "/ws/notifications/".into(),
                dialect: DialectName::Unified,
            },
        ];
    })
    .await;
    let room = server.room_with_id("ann", "job-9", &["ben"]).await;
    let mut legacy = join(&server, "/ws/job_chat", &room, "ann").await;
    let mut scoped = join(&server, CHAT, &room, "ben").await;
    let mut sessions = join(&server, SESSIONS, &room, "ben").await;
    let mut unified = server.ws_at("/ws/notifications/", "ben").await;
    unified.subscribe(&room).await;
    legacy.send(json!({"message": "via the old URL"})).await;
    assert_eq!(
        recv_message(&mut legacy).await["message"]["message_text"],
        "via the old URL"
    );
    assert_eq!(
        recv_message(&mut scoped).await["message"]["message_text"],
        "via the old URL"
    );
    assert_eq!(
        recv_message(&mut sessions).await["content"],
        "via the old URL"
    );
    assert_eq!(
        unified.recv_type("new_message").await["message"]["content"],
        "via the old URL"
    );
    let scrape = server
        .scrape_until(|s| {
            s.get(r#"confab_ws_connections{endpoint="/ws/job_chat/{room_id}/"}"#) == 1.0
        })
        .await;
    assert_eq!(
        scrape.get(r#"confab_ws_connections{endpoint="/ws/chat/{room_id}/"}"#),
        1.0
    );
    assert_eq!(
        scrape.get(r#"confab_ws_connections{endpoint="/ws/sessions/{room_id}/"}"#),
        1.0
    );
    assert_eq!(
        scrape.get(r#"confab_ws_connections{endpoint="/ws/notifications/"}"#),
        1.0
    );
}

#[tokio::test]
async fn two_nodes_carry_dialect_messages_and_typing_on_redis_and_nats() {
    for broker in BROKERS {
        let (a, b) = cluster(broker).await;
        let room = a.room_with_id("ann", "job-77", &["ben"]).await;
        let mut ann = join(&a, CHAT, &room, "ann").await;
        let mut ben = join(&b, SESSIONS, &room, "ben").await;
        let mut watcher = b.ws("ben").await;
        watcher.subscribe(&room).await;

        ben.send(json!({"type": "typing", "is_typing": true})).await;
        let typing = ann.recv_json().await;
        assert_eq!(typing["type"], "typing", "{broker}: {typing}");
        assert_eq!(typing["sender_id"], "ben");

        ann.send(json!({"message": "across nodes", "type": "TEXT"}))
            .await;
        assert_eq!(
            recv_message(&mut ann).await["message"]["message_text"],
            "across nodes"
        );
        assert_eq!(
            recv_message(&mut ben).await["content"],
            "across nodes",
            "{broker}"
        );
        assert_eq!(
            watcher.recv_type("new_message").await["message"]["content"],
            "across nodes"
        );
        ben.send(json!({"type": "message", "content": "back"}))
            .await;
        let back = loop {
            let frame = ann.recv_json().await;
            if frame["type"] == "message" {
                break frame;
            }
        };
        assert_eq!(back["message"]["message_text"], "back", "{broker}");
        a.stop().await;
        b.stop().await;
    }
}

#[tokio::test]
async fn every_unified_frame_carries_a_timestamp_and_messages_carry_first_name_and_is_read() {
    let server = TestServer::start_with(unlimited).await;
    server
        .server_api()
        .put("/api/v1/users/ann", json!({"name": "Ann"}))
        .await;
    let room = server.room("ann", &["ben"]).await;
    let mut ann = server.ws("ann").await;
    let mut ben = server.ws("ben").await;
    let subscribed = ann.subscribe(&room).await;
    assert_timestamp(&subscribed["timestamp"]);
    ben.subscribe(&room).await;
    let ack = ann.send_message(&room, "hello").await;
    assert_timestamp(&ack["timestamp"]);
    let new = ben.recv_type("new_message").await;
    assert_timestamp(&new["timestamp"]);
    assert_eq!(new["message"]["sender"]["first_name"], "Ann");
    assert_eq!(new["message"]["is_read"], false);
    ben.request(json!({"type": "mark_read", "room_id": room}))
        .await;
    for frame in [
        json!({"type": "ping"}),
        json!({"type": "get_room_list"}),
        json!({"type": "get_presence", "room_id": room}),
        json!({"type": "get_history", "room_id": room}),
        json!({"type": "typing", "room_id": "not-subscribed"}),
        json!({"type": "edit_message", "room_id": room, "message_id": ack["message_id"], "content": "hello!"}),
        json!({"type": "unsubscribe_room", "room_id": room}),
    ] {
        let reply = ann.request(frame.clone()).await;
        assert_timestamp(&reply["timestamp"]);
        if frame["type"] == "get_history" {
            // Ann's own message, read by Ben.
            assert_eq!(reply["messages"][0]["is_read"], true, "{reply}");
        }
    }
    let updated = ben.recv_type("message_updated").await;
    assert_timestamp(&updated["timestamp"]);
    assert_eq!(
        updated["message"]["is_read"], true,
        "read by Ben: {updated}"
    );
    // Ben's view of the same message: read by himself.
    let history = ben
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(history["messages"][0]["is_read"], true, "{history}");
    let (_, page) = server
        .api("ann")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(page["messages"][0]["is_read"], true, "{page}");
    assert_eq!(page["messages"][0]["sender"]["first_name"], "Ann");
}
