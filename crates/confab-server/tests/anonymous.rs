//! Anonymous visitors (protocol.md §1, issue 5 item 6): with `auth.allow_anonymous`
//! a WebSocket without a token gets a fresh `anon-…` id, may use only the
//! `assistant` rooms it owns, and lives under its own, stricter limits: a
//! message rate per client address and a connection cap per address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Ended, TestServer, WsClient};
use confab_server::Config;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn visitors_welcome(config: &mut Config) {
    common::unlimited(config);
    config.auth.allow_anonymous = true;
}

/// Opens a tokenless `/ws` and returns it with its `connection_established`.
async fn visitor(server: &TestServer) -> (WsClient, Value) {
    let mut ws = server.ws_raw("/ws", &[]).await;
    let hello = ws.recv_json().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

/// What a help-desk back-end does for a visitor: opens an `assistant` room
/// acting as the visitor's id with the server key, so the visitor owns it,
/// with a human `agent` who can read along.
async fn assistant_room_for(server: &TestServer, visitor_id: &str) -> String {
    let (status, body) = server
        .server_api()
        .acting_as(visitor_id)
        .post(
            "/api/v1/rooms",
            json!({"name": "help", "room_type": "assistant", "members": ["agent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Messages of `room` sent by `sender` (as the room's human `agent` reads them).
async fn sent_by(server: &TestServer, room: &str, sender: &str) -> usize {
    let messages = server.all_messages("agent", room).await;
    messages
        .iter()
        .filter(|m| m["sender"]["id"] == sender)
        .count()
}

#[tokio::test]
async fn tokenless_connections_get_fresh_anonymous_ids_and_the_visitor_rate() {
    let server = TestServer::start_with(|c| {
        visitors_welcome(c);
        c.rate_limit.anonymous_messages_per_minute = 7;
    })
    .await;
    let (_a, first) = visitor(&server).await;
    let (_b, second) = visitor(&server).await;
    let (a, b) = (
        first["user_id"].as_str().unwrap(),
        second["user_id"].as_str().unwrap(),
    );
    assert!(a.starts_with("anon-") && b.starts_with("anon-"), "{a} {b}");
    assert_ne!(a, b, "every anonymous connection is a new visitor");
    assert_eq!(first["limits"]["messages_per_minute"], 7, "{first}");
    // A user's connection still announces the user's own rate.
    let mut alice = server
        .ws_raw(
            "/ws",
            &[("authorization", format!("Bearer {}", server.token("alice")))],
        )
        .await;
    let hello = alice.recv_json().await;
    assert_eq!(hello["user_id"], "alice");
    assert_ne!(hello["limits"]["messages_per_minute"], 7, "{hello}");
    server.stop().await;
}

#[tokio::test]
async fn visitors_use_only_assistant_rooms_they_own() {
    let server = TestServer::start_with(visitors_welcome).await;
    let (mut ws, hello) = visitor(&server).await;
    let me = hello["user_id"].as_str().unwrap().to_owned();

    // Rooms a back-end put the visitor in, but that are not its own
    // assistant rooms: a group room, and an assistant room alice owns.
    let group = server.room("alice", &[me.as_str()]).await;
    let (status, body) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"room_type": "assistant", "members": [me]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alices_assistant = body["id"].as_str().unwrap().to_owned();
    let own = assistant_room_for(&server, &me).await;
    let before = server.all_messages("alice", &group).await.len();

    for room in [&group, &alices_assistant] {
        for frame in [
            json!({"type": "subscribe_room", "room_id": room}),
            json!({"type": "send_message", "room_id": room, "content": "hi"}),
            json!({"type": "get_history", "room_id": room}),
            json!({"type": "get_presence", "room_id": room}),
            json!({"type": "mark_read", "room_id": room}),
        ] {
            ws.expect_error(frame, "forbidden").await;
        }
    }
    assert_eq!(server.all_messages("alice", &group).await.len(), before);
    assert_eq!(server.last_seq("alice", &alices_assistant).await, 0);

    let list = ws.request(json!({"type": "get_room_list"})).await;
    let ids: Vec<&str> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own.as_str()], "{list}");

    let subscribed = ws.subscribe(&own).await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    let ack = ws.send_message(&own, "where is my order?").await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    // The visitor's message is stored (the assistant bot may have answered
    // it already: that is the bot's, not the visitor's).
    assert_eq!(sent_by(&server, &own, &me).await, 1);
    ws.assert_alive().await;

    // Visitors prove nothing, so REST stays closed to them.
    let (status, _) = server.anonymous_api().get("/api/v1/rooms").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn the_visitor_message_rate_is_per_address_and_stores_nothing_over_it() {
    let server = TestServer::start_with(|c| {
        visitors_welcome(c);
        c.rate_limit.anonymous_messages_per_minute = 1;
        c.rate_limit.anonymous_burst = 3;
    })
    .await;
    let (mut first, hello) = visitor(&server).await;
    let first_id = hello["user_id"].as_str().unwrap().to_owned();
    let first_room = assistant_room_for(&server, &first_id).await;
    let (mut second, hello) = visitor(&server).await;
    let second_id = hello["user_id"].as_str().unwrap().to_owned();
    let second_room = assistant_room_for(&server, &second_id).await;

    for i in 0..2 {
        let ack = first.send_message(&first_room, &format!("m{i}")).await;
        assert_eq!(ack["type"], "message_ack", "{ack}");
    }
    let ack = second.send_message(&second_room, "m2").await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    // The address's burst of 3 is spent, whichever visitor spent it.
    for (ws, room) in [(&mut first, &first_room), (&mut second, &second_room)] {
        let refused = ws
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": "more",
                       "client_msg_id": "over"}),
                "rate_limited",
            )
            .await;
        assert!(refused["retry_after_ms"].as_u64().unwrap() > 0, "{refused}");
    }
    assert_eq!(sent_by(&server, &first_room, &first_id).await, 2);
    assert_eq!(sent_by(&server, &second_room, &second_id).await, 1);

    // Users on the same address keep their own allowance.
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    for i in 0..5 {
        let ack = alice.send_message(&room, &format!("a{i}")).await;
        assert_eq!(ack["type"], "message_ack", "{ack}");
    }
    server.stop().await;
}

#[tokio::test]
async fn anonymous_connections_per_address_are_capped_with_4029() {
    let server = TestServer::start_with(|c| {
        visitors_welcome(c);
        c.limits.max_anonymous_connections_per_address = 2;
    })
    .await;
    let (_one, _) = visitor(&server).await;
    let (two, _) = visitor(&server).await;
    let mut third = server.ws_raw("/ws", &[]).await;
    assert_eq!(third.ended().await, Ended::Closed(4029));
    // Users from the same address are not visitors and are not capped so.
    let mut alice = server.ws("alice").await;
    alice.assert_alive().await;
    // A visitor leaving frees its slot (once the server has seen it go).
    two.close().await;
    let mut again = None;
    for _ in 0..100 {
        let mut ws = server.ws_raw("/ws", &[]).await;
        if let Some(Ok(Message::Text(text))) = ws.stream.next().await {
            let hello: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(hello["type"], "connection_established", "{hello}");
            again = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    again.expect("a slot came back").assert_alive().await;
    server.stop().await;
}

#[tokio::test]
async fn an_auth_first_frame_turns_a_visitor_into_the_user() {
    let server = TestServer::start_with(visitors_welcome).await;
    let room = server.room("alice", &[]).await;
    let (mut ws, hello) = visitor(&server).await;
    assert!(hello["user_id"].as_str().unwrap().starts_with("anon-"));
    let token = server.token("alice");
    ws.send(json!({"type": "auth", "token": token})).await;
    let hello = ws.recv_json().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    assert_eq!(hello["user_id"], "alice");
    assert_eq!(ws.subscribe(&room).await["type"], "subscribed");
    let ack = ws.send_message(&room, "it's me").await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    // Only the first frame may identify the connection.
    ws.expect_error(json!({"type": "auth", "token": token}), "invalid_field")
        .await;

    // A visitor whose auth frame carries a bad token is refused like any
    // connection that sent one.
    let (mut ws, _) = visitor(&server).await;
    ws.send(json!({"type": "auth", "token": "not-a-jwt"})).await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
    server.stop().await;
}

#[tokio::test]
async fn tokens_may_not_claim_anonymous_ids() {
    let server = TestServer::start_with(visitors_welcome).await;
    let token = server.token("anon-0190aaaa");
    let mut ws = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
    let (status, body) = server.api("anon-0190aaaa").get("/api/v1/rooms").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    server.stop().await;
}
