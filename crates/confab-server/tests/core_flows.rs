//! The walking skeleton's promises, end to end: ordering under concurrent
//! senders, ack before echo, bad input, auth placements and close codes,
//! both unified paths, REST fan-out, resume.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

fn seq_of(frame: &Value) -> i64 {
    frame["message"]["seq"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_senders_get_consecutive_seqs_delivered_in_order() {
    let server = TestServer::start().await;
    let users: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let room = server.room("watcher", &names).await;
    let mut watcher = server.ws("watcher").await;
    watcher.subscribe(&room).await;

    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (url, token, room) = (server.ws_url("/ws"), server.token(user), room.clone());
            tokio::spawn(async move {
                let mut ws = common::connect_with_token(&url, &token).await;
                let mut seqs = Vec::new();
                for n in 0..25 {
                    let ack = ws.send_message(&room, &format!("m{n}")).await;
                    seqs.push(ack["seq"].as_i64().unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=200).collect::<Vec<_>>());

    let mut delivered = Vec::new();
    while delivered.len() < 200 {
        delivered.push(seq_of(&watcher.recv_type("new_message").await));
    }
    assert_eq!(
        delivered,
        (1..=200).collect::<Vec<_>>(),
        "live order is seq order"
    );
    let (_, page) = server
        .api("watcher")
        .get(&format!(
            "/api/v1/rooms/{room}/messages?after_seq=100&limit=100"
        ))
        .await;
    let seqs: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (101..=200).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);
}

#[tokio::test]
async fn ack_comes_before_echo_and_every_connection_of_the_room_gets_it() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    for ws in [&mut phone, &mut laptop, &mut bob] {
        ws.subscribe(&room).await;
    }
    phone
        .send(
            json!({"type": "send_message", "room_id": room, "content": "hi",
                     "client_msg_id": "c-1", "req_id": 9}),
        )
        .await;
    let first = phone.recv_json().await;
    assert_eq!(first["type"], "message_ack", "{first}");
    assert_eq!(first["req_id"], 9);
    assert_eq!(first["client_msg_id"], "c-1");
    assert_eq!(first["duplicate"], false);
    let echo = phone.recv_json().await;
    assert_eq!(echo["type"], "new_message");
    assert_eq!(echo["message"]["id"], first["message_id"]);
    for ws in [&mut laptop, &mut bob] {
        let got = ws.recv_type("new_message").await;
        assert_eq!(got["message"]["content"], "hi");
        assert_eq!(got["message"]["seq"], 1);
    }

    // The same client_msg_id again: the original ack, flagged, nothing new.
    let again = phone
        .request(json!({"type": "send_message", "room_id": room, "content": "hi", "client_msg_id": "c-1"}))
        .await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], first["message_id"]);
    assert_eq!(again["seq"], 1);
    bob.expect_silence(Duration::from_millis(200)).await;
    let (_, room_now) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(room_now["last_seq"], 1);
}

#[tokio::test]
async fn bad_frames_get_their_codes_store_nothing_and_keep_the_connection() {
    let server = TestServer::start_with(|c| c.limits.max_message_length = 5).await;
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    let cases = [
        ("{not json", "invalid_json"),
        ("[1]", "invalid_json"),
        (r#"{"type":"teleport","req_id":1}"#, "unknown_type"),
        (r#"{"room_id":"x","req_id":1}"#, "invalid_field"),
        (
            r#"{"type":"send_message","content":"x","req_id":1}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"send_message","room_id":"ROOM","content":7,"req_id":1}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"send_message","room_id":"ROOM","content":"   ","req_id":1}"#,
            "empty_message",
        ),
        (
            r#"{"type":"send_message","room_id":"ROOM","content":"toolong","req_id":1}"#,
            "message_too_long",
        ),
        (
            r#"{"type":"send_message","room_id":"nope","content":"x","req_id":1}"#,
            "not_found",
        ),
        (
            r#"{"type":"send_message","room_id":"ROOM","content":"x","message_type":"system","req_id":1}"#,
            "forbidden",
        ),
        (
            r#"{"type":"send_message","room_id":"ROOM","content":"","message_type":"location","location":{"lat":91,"lng":0},"req_id":1}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"send_message","room_id":"ROOM","content":"x","reply_to":"ghost","req_id":1}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"get_history","room_id":"ROOM","limit":"ten","req_id":1}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"typing","room_id":"ROOM","req_id":1}"#,
            "not_subscribed",
        ),
        (
            r#"{"type":"unsubscribe_room","room_id":"ROOM","req_id":1}"#,
            "not_subscribed",
        ),
    ];
    for (text, code) in cases {
        ws.send_text(&text.replace("ROOM", &room)).await;
        let reply = ws.recv_json().await;
        assert_eq!(reply["type"], "error", "{text} → {reply}");
        assert_eq!(reply["code"], code, "{text} → {reply}");
        if text.contains("req_id") {
            assert_eq!(reply["req_id"], 1, "{text} → {reply}");
        }
        let pong = ws.request(json!({"type": "ping"})).await;
        assert_eq!(pong["type"], "pong", "connection still usable after {text}");
    }
    // Exactly the limit, in multibyte characters, is accepted.
    let ack = ws.send_message(&room, "héllö").await;
    assert_eq!(ack["seq"], 1, "nothing before it was stored");
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = TestServer::start_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut ws = server.ws("alice").await;
    ws.send_text(&format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(4096)
    ))
    .await;
    assert_eq!(ws.ended().await, Ended::Closed(1009));
}

#[tokio::test]
async fn tokens_work_in_every_placement_and_refusals_close_with_contract_codes() {
    let server = TestServer::start_with(|c| c.auth.auth_timeout_s = 1).await;
    let token = server.token("alice");
    let expect_established = |frame: Value| {
        assert_eq!(frame["type"], "connection_established", "{frame}");
        assert_eq!(frame["user_id"], "alice");
        assert_eq!(frame["protocol"], 1);
    };
    let mut via_query = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
    expect_established(via_query.recv_json().await);
    let mut via_protocol = server
        .ws_raw(
            "/ws",
            &[(
                "sec-websocket-protocol",
                format!("confab.v1, bearer.{token}"),
            )],
        )
        .await;
    expect_established(via_protocol.recv_json().await);
    let mut via_frame = server.ws_raw("/ws", &[]).await;
    via_frame
        .send(json!({"type": "auth", "token": token}))
        .await;
    expect_established(via_frame.recv_json().await);

    let mut none = server.ws_raw("/ws", &[]).await;
    assert_eq!(none.ended().await, Ended::Closed(4001));
    let mut not_auth_first = server.ws_raw("/ws", &[]).await;
    not_auth_first.send(json!({"type": "ping"})).await;
    assert_eq!(not_auth_first.ended().await, Ended::Closed(4001));
    let mut garbage = server.ws_raw("/ws?token=not.a.jwt", &[]).await;
    assert_eq!(garbage.ended().await, Ended::Closed(4003));
    let expired = server.token_from_claims(&json!({"sub": "alice", "exp": 1_000_000_000}));
    let mut old = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {expired}"))])
        .await;
    assert_eq!(old.ended().await, Ended::Closed(4003));

    // Disabling a user closes their live connection with 4002 and refuses new ones.
    let (status, _) = server
        .server_api()
        .put("/api/v1/users/alice", json!({"disabled": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(via_query.ended().await, Ended::Closed(4002));
    let mut refused = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
    assert_eq!(refused.ended().await, Ended::Closed(4002));
}

#[tokio::test]
async fn viewers_read_but_cannot_send() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["val"]).await;
    let viewer_token = server.token_with(
        "val",
        None,
        Some(confab_server::store::GlobalRole::Viewer),
        Duration::from_secs(60),
    );
    let mut ws = server
        .ws_raw(&format!("/ws?token={viewer_token}"), &[])
        .await;
    ws.recv_type("connection_established").await;
    ws.subscribe(&room).await;
    let refused = ws
        .request(json!({"type": "send_message", "room_id": room, "content": "hi"}))
        .await;
    assert_eq!(refused["code"], "forbidden");
    let history = ws
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(history["type"], "history");
}

#[tokio::test]
async fn ws_and_ws_chat_and_rest_meet_in_one_room() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws_at("/ws", "alice").await;
    let mut bob = server.ws_at("/ws/chat/", "bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;
    alice.send_message(&room, "from /ws").await;
    assert_eq!(
        bob.recv_type("new_message").await["message"]["content"],
        "from /ws"
    );
    bob.send_message(&room, "from /ws/chat/").await;
    assert_eq!(
        bob.recv_type("new_message").await["message"]["content"],
        "from /ws/chat/"
    );
    assert_eq!(
        alice.recv_type("new_message").await["message"]["content"],
        "from /ws"
    );
    assert_eq!(
        alice.recv_type("new_message").await["message"]["content"],
        "from /ws/chat/"
    );
    let (status, body) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "Job accepted. Chat is now active.", "message_type": "SYSTEM"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["duplicate"], false);
    for ws in [&mut alice, &mut bob] {
        let got = ws.recv_type("new_message").await;
        assert_eq!(got["message"]["message_type"], "system");
        assert_eq!(got["message"]["seq"], 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_since_seq_replays_then_goes_live_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    for n in 1..=30 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    // Keep sending while bob resumes from seq 10.
    let sender = {
        let (url, token, room) = (server.ws_url("/ws"), server.token("alice"), room.clone());
        tokio::spawn(async move {
            let mut ws = common::connect_with_token(&url, &token).await;
            for n in 31..=60 {
                ws.send_message(&room, &format!("m{n}")).await;
            }
        })
    };
    let mut bob = server.ws("bob").await;
    let subscribed = bob
        .request(json!({"type": "subscribe_room", "room_id": room, "since_seq": 10}))
        .await;
    assert_eq!(subscribed["type"], "subscribed");
    assert!(subscribed["last_seq"].as_i64().unwrap() >= 30);
    let mut seen = Vec::new();
    while seen.last() != Some(&60) {
        seen.push(seq_of(&bob.recv_type("new_message").await));
    }
    sender.await.unwrap();
    assert_eq!(seen, (11..=60).collect::<Vec<_>>());
    bob.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn typing_reaches_the_others_only_and_stops() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut alice2 = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    for ws in [&mut alice, &mut alice2, &mut bob] {
        ws.subscribe(&room).await;
    }
    alice.send(json!({"type": "typing", "room_id": room})).await;
    let typing = bob.recv_type("typing").await;
    assert_eq!(typing["user_id"], "alice");
    assert_eq!(typing["is_typing"], true);
    alice
        .send(json!({"type": "typing", "room_id": room, "is_typing": false}))
        .await;
    assert_eq!(bob.recv_type("typing").await["is_typing"], false);
    alice.expect_silence(Duration::from_millis(150)).await;
    alice2.expect_silence(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn the_server_key_acts_for_a_user_and_unknown_users_can_be_refused() {
    let server = TestServer::start_with(|c| c.auth.require_existing_users = true).await;
    let mut stranger = server
        .ws_raw(&format!("/ws?token={}", server.token("zoe")), &[])
        .await;
    assert_eq!(stranger.ended().await, Ended::Closed(4002));

    let backend = server.server_api();
    let (status, user) = backend
        .put(
            "/api/v1/users/zoe",
            json!({"name": "Zoe", "role": "member"}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["name"], "Zoe");
    let (status, me) = backend.clone().acting_as("zoe").get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "zoe");
    let (status, room) = backend
        .clone()
        .acting_as("zoe")
        .post("/api/v1/rooms", json!({"name": "zoe's"}))
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["role"], "owner");
    let (status, body) = backend
        .post("/api/v1/rooms", json!({"members": ["nobody"]}))
        .await;
    assert_eq!(status, 404, "{body}");
    let mut zoe = server.ws("zoe").await;
    zoe.subscribe(room["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn subscribe_unknown_room_presence_and_refresh_token() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob", "carol"]).await;
    let mut alice = server.ws("alice").await;
    let _bob = server.ws("bob").await;
    let missing = alice
        .request(json!({"type": "subscribe_room", "room_id": "no-such-room"}))
        .await;
    assert_eq!(missing["code"], "not_found");
    assert_eq!(missing["room_id"], "no-such-room");

    let presence = alice
        .request(json!({"type": "get_presence", "room_id": room}))
        .await;
    assert_eq!(presence["type"], "presence");
    assert_eq!(presence["online"], json!(["alice", "bob"]));

    let fresh = server.token("alice");
    let ack = alice
        .request(json!({"type": "refresh_token", "token": fresh}))
        .await;
    assert_eq!(ack["type"], "ack");
    let other = server.token("bob");
    let refused = alice
        .request(json!({"type": "refresh_token", "token": other}))
        .await;
    assert_eq!(refused["code"], "unauthorized");
}

#[tokio::test]
async fn an_expired_token_closes_the_connection_with_4003() {
    let server = TestServer::start_with(|c| c.auth.leeway_s = 0).await;
    let token = server.token_with("alice", None, None, Duration::from_secs(1));
    let mut ws = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
    assert_eq!(ws.recv_json().await["type"], "connection_established");
    assert_eq!(ws.ended().await, Ended::Closed(4003));
}

#[tokio::test]
async fn typing_lapses_after_six_seconds_without_refresh() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;
    alice.send(json!({"type": "typing", "room_id": room})).await;
    assert_eq!(bob.recv_type("typing").await["is_typing"], true);
    let started = tokio::time::Instant::now();
    let lapsed = bob.recv_type("typing").await;
    assert_eq!(lapsed["is_typing"], false);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "not before the 6 s expiry"
    );
}
