//! The app's notifications to a user (protocol.md §8.4, issue 19 item 3):
//! `POST /api/v1/users/{id}/notify` with the server key reaches every open
//! `/ws` connection of that user and nobody else's, stores nothing, and
//! answers how many of this node's connections took it; everyone but the
//! server key, and every malformed request, is refused. Across two nodes:
//! `tests/cluster.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient, assert_timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `POST /api/v1/users/{user}/notify` with the server key.
async fn notify(server: &TestServer, user: &str, body: Value) -> (StatusCode, Value) {
    server
        .server_api()
        .post(&format!("/api/v1/users/{user}/notify"), body)
        .await
}

/// The next frames up to the `pong` answering a `ping` sent now (what was
/// queued for the connection before it), whatever its dialect.
async fn queued(ws: &mut WsClient) -> Vec<Value> {
    ws.send(json!({"type": "ping", "req_id": "barrier"})).await;
    let mut before = Vec::new();
    loop {
        let frame = ws.recv_json().await;
        if frame["type"] == "pong" {
            return before;
        }
        before.push(frame);
    }
}

#[tokio::test]
async fn a_notification_reaches_every_ws_connection_of_the_user_and_nobody_else() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut phone = server.ws("alice").await;
    let mut laptop = server.ws_at("/ws/chat/", "alice").await;
    let mut bob = server.ws("bob").await;
    // Alice's dialect connections have no frame for it: not sent, not counted.
    let token = server.token("alice");
    let mut job = server
        .ws_raw(&format!("/ws/chat/{room}/?token={token}"), &[])
        .await;
    assert!(queued(&mut job).await.is_empty());
    let mut help = server
        .ws_raw(
            "/ws/assistant/",
            &[("authorization", format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(help.recv_json().await["type"], "session_started");
    // Bob is online before the notification (his user_online has passed).
    assert!(
        queued(&mut phone)
            .await
            .iter()
            .all(|f| f["type"] == "user_online")
    );

    let data = json!({"order": 7, "items": [{"sku": "a-1", "qty": 2}], "note": "héllo"});
    let (status, answer) = notify(
        &server,
        "alice",
        json!({"event": "order.shipped", "data": data}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"connections": 2, "online": true}));
    for ws in [&mut phone, &mut laptop] {
        let frames = queued(ws).await;
        assert_eq!(frames.len(), 1, "{frames:?}");
        let frame = &frames[0];
        assert_eq!(frame["type"], "notification", "{frame}");
        assert_eq!(frame["event"], "order.shipped");
        assert_eq!(frame["data"], data, "the data as the app sent it");
        assert_timestamp(&frame["timestamp"]);
        assert_eq!(frame.as_object().unwrap().len(), 4, "{frame}");
    }
    for ws in [&mut bob, &mut job, &mut help] {
        assert!(queued(ws).await.is_empty(), "not for them");
    }

    // `data` may be any JSON, or absent (then `null`).
    for (body, data) in [
        (json!({"event": "ping"}), Value::Null),
        (json!({"event": "n", "data": null}), Value::Null),
        (json!({"event": "n", "data": 5}), json!(5)),
        (
            json!({"event": "n", "data": ["a", true]}),
            json!(["a", true]),
        ),
        (json!({"event": "n", "data": "text"}), json!("text")),
    ] {
        let (status, answer) = notify(&server, "alice", body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} → {answer}");
        let frame = phone.recv_type("notification").await;
        assert_eq!(frame["data"], data, "{body}");
        assert_eq!(laptop.recv_type("notification").await["data"], data);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_notification_is_stored_nowhere_and_offline_users_are_no_error() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let (status, answer) = notify(&server, "bob", json!({"event": "invoice.paid"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"connections": 0, "online": false}));
    // Bob connects later: nothing waits for him, and the room has nothing new.
    let mut bob = server.ws("bob").await;
    let sub = bob.subscribe(&room).await;
    assert_eq!(sub["last_seq"], 0, "{sub}");
    assert!(queued(&mut bob).await.is_empty());
    // A disabled user has no connection: 200 with nothing reached.
    let (status, _) = server
        .server_api()
        .put("/api/v1/users/bob", json!({"disabled": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = notify(&server, "bob", json!({"event": "x"})).await;
    assert_eq!(
        (status, answer["connections"].clone()),
        (StatusCode::OK, json!(0))
    );
    server.stop().await;
}

#[tokio::test]
async fn only_the_server_key_may_notify() {
    let server = TestServer::start().await;
    let mut alice = server.ws("alice").await;
    let body = json!({"event": "x", "data": {"a": 1}});
    let path = "/api/v1/users/alice/notify";
    let (status, answer) = server.anonymous_api().post(path, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthorized");
    for user in ["alice", "bob"] {
        let (status, answer) = server.api(user).post(path, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        // Refused for who asks, before what was asked.
        let (status, _) = server.api(user).post(path, json!({"nope": 1})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user}");
    }
    let admin = server.token_with(
        "root",
        None,
        Some(confab_server::store::GlobalRole::Admin),
        std::time::Duration::from_secs(60),
    );
    let (status, _) = server.api_with_token(&admin).post(path, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a global admin is a user");
    let (status, _) = server
        .api_with_token("wrong-key")
        .post(path, body.clone())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(queued(&mut alice).await.is_empty(), "nothing was sent");
    // The server key acting for a user is still the server key.
    let (status, answer) = server.server_api().acting_as("bob").post(path, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(alice.recv_type("notification").await["event"], "x");
    server.stop().await;
}

#[tokio::test]
async fn malformed_notifications_are_refused_and_send_nothing() {
    let server = TestServer::start_with(|c| c.limits.max_metadata_bytes = 64).await;
    let mut alice = server.ws("alice").await;
    let long_event = "e".repeat(65);
    let big = json!({"x": "y".repeat(60)});
    for (body, why) in [
        (json!({}), "no event"),
        (json!({"data": 1}), "no event"),
        (json!({"event": 5}), "event not a string"),
        (json!({"event": null}), "event null"),
        (json!({"event": ""}), "empty event"),
        (json!({"event": "   "}), "blank event"),
        (json!({"event": long_event}), "65 characters"),
        (json!({"event": "a\nb"}), "control character"),
        (json!({"event": "a\u{0}b"}), "U+0000"),
        (
            json!({"event": "x", "data": big}),
            "data over limits.max_metadata_bytes",
        ),
        (json!(["event", "x"]), "not an object"),
    ] {
        let (status, answer) = notify(&server, "alice", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {body} → {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_field", "{why}: {answer}");
    }
    // At the limits exactly: accepted.
    let exact = json!({"x": "y".repeat(56)});
    assert_eq!(serde_json::to_vec(&exact).unwrap().len(), 64);
    let (status, answer) = notify(
        &server,
        "alice",
        json!({"event": "é".repeat(64), "data": exact}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(alice.recv_type("notification").await["data"], exact);

    // Not JSON, not said to be JSON, nested past the parser's depth.
    let api = server.server_api();
    let path = "/api/v1/users/alice/notify";
    let (status, answer) = api
        .call_raw(
            Method::POST,
            path,
            "application/json",
            b"{\"event\":".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_json");
    let (status, _) = api
        .call_raw(
            Method::POST,
            path,
            "text/plain",
            br#"{"event":"x"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let deep = format!(
        r#"{{"event":"x","data":{}{}}}"#,
        "[".repeat(500),
        "]".repeat(500)
    );
    let (status, answer) = api
        .call_raw(Method::POST, path, "application/json", deep.into_bytes())
        .await;
    assert!(status.is_client_error(), "{status} {answer}");
    let (status, answer) = api
        .call_raw(
            Method::POST,
            path,
            "application/json",
            format!(r#"{{"event":"x","data":"{}"}}"#, "z".repeat(3 << 20)).into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(queued(&mut alice).await.is_empty(), "nothing was sent");

    // Ids by the id rule, and users that were never created.
    for (user, expected) in [
        ("a%20b", StatusCode::UNPROCESSABLE_ENTITY),
        ("a%2Fb", StatusCode::UNPROCESSABLE_ENTITY),
        ("a%00b", StatusCode::UNPROCESSABLE_ENTITY),
        ("%25", StatusCode::UNPROCESSABLE_ENTITY),
        (&"u".repeat(129), StatusCode::UNPROCESSABLE_ENTITY),
        ("nobody", StatusCode::NOT_FOUND),
        ("anon-0193a6e2", StatusCode::NOT_FOUND),
    ] {
        let (status, answer) = notify(&server, user, json!({"event": "x"})).await;
        assert_eq!(status, expected, "{user}: {answer}");
        if expected == StatusCode::NOT_FOUND {
            assert_eq!(answer["error"]["code"], "not_found", "{answer}");
        }
    }
    alice.assert_alive().await;
    server.stop().await;
}
