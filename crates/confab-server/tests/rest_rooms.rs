//! REST core (spec §4, §7): rooms, members, messages, read state, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn errors_have_the_contract_body_and_status() {
    let server = TestServer::start().await;
    let (status, body) = server.anonymous_api().get("/api/v1/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = server.api("alice").get("/api/v1/rooms/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = server.api("alice").get("/api/v1/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = server
        .api("alice")
        .call_raw(
            reqwest::Method::POST,
            "/api/v1/rooms",
            "application/json",
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, body) = server
        .api("alice")
        .post("/api/v1/rooms", json!({"members": "bob"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid_field");
    let (status, body) = server
        .api("alice")
        .put("/api/v1/users/bob", json!({"name": "B"}))
        .await;
    assert_eq!(status, 403, "only the server key manages users: {body}");
    assert_eq!(server.anonymous_api().get("/healthz").await.0, 200);
    assert_eq!(server.anonymous_api().get("/readyz").await.0, 200);
}

#[tokio::test]
async fn rooms_create_get_patch_close_with_permissions() {
    let server = TestServer::start().await;
    let alice = server.api("alice");
    let (status, room) = alice
        .post(
            "/api/v1/rooms",
            json!({"id": "job-45", "name": "Deep clean", "room_type": "job", "members": ["bob"], "metadata": {"job": 45}}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["id"], "job-45");
    assert_eq!(room["role"], "owner");
    assert_eq!(room["room_type"], "job");
    let (status, body) = alice.post("/api/v1/rooms", json!({"id": "job-45"})).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "invalid_field");

    let (status, _) = server.api("mallory").get("/api/v1/rooms/job-45").await;
    assert_eq!(status, 403);
    let (status, _) = server
        .api("bob")
        .patch("/api/v1/rooms/job-45", json!({"name": "x"}))
        .await;
    assert_eq!(status, 403, "members cannot rename");

    let mut bob_ws = server.ws("bob").await;
    let (status, renamed) = alice
        .patch("/api/v1/rooms/job-45", json!({"name": "Window clean"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["name"], "Window clean");
    let update = bob_ws.recv_type("room_updated").await;
    assert_eq!(update["updates"]["name"], "Window clean");

    let (status, closed) = alice.delete("/api/v1/rooms/job-45").await;
    assert_eq!(status, 200);
    assert_eq!(closed["closed"], true);
    let (status, body) = server
        .api("bob")
        .post("/api/v1/rooms/job-45/messages", json!({"content": "late"}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, page) = server.api("bob").get("/api/v1/rooms/job-45/messages").await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_rooms_are_not_duplicated_even_when_created_concurrently() {
    let server = TestServer::start().await;
    let create = |user: &str, other: &str| {
        let api = server.api(user);
        let body = json!({"room_type": "direct", "members": [other]});
        async move { api.post("/api/v1/rooms", body).await }
    };
    let (a, b) = tokio::join!(create("alice", "bob"), create("bob", "alice"));
    assert_eq!(a.1["id"], b.1["id"], "{a:?} {b:?}");
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201]);
    let (status, _) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"room_type": "direct", "members": ["bob", "carol"]}),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn members_added_and_removed_see_it_live() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let mut carol = server.ws("carol").await;
    let (status, member) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "carol", "role": "member"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let added = carol.recv_type("room_added").await;
    assert_eq!(added["room_id"], room.as_str());
    assert_eq!(added["room"]["id"], room.as_str());

    let (_, list) = server
        .api("carol")
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    let ids: Vec<&str> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "carol"]);
    assert_eq!(list["members"][1]["online"], true);

    let (status, _) = server
        .api("carol")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "dave"}),
        )
        .await;
    assert_eq!(status, 403, "members cannot add members");

    carol.subscribe(&room).await;
    let (status, _) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}/members/carol"))
        .await;
    assert_eq!(status, 204);
    carol.recv_type("room_removed").await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "after carol left").await;
    carol.expect_silence(Duration::from_millis(200)).await;
    let refused = carol
        .request(json!({"type": "subscribe_room", "room_id": room}))
        .await;
    assert_eq!(refused["code"], "forbidden");
    assert_eq!(refused["room_id"], room.as_str());
}

#[tokio::test]
async fn unread_counts_follow_read_markers_everywhere() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    for n in 1..=5 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    let mut bob_phone = server.ws("bob").await;
    let mut bob_laptop = server.ws("bob").await;
    let subscribed = bob_phone.subscribe(&room).await;
    assert_eq!(subscribed["unread_count"], 5);
    assert_eq!(subscribed["last_seq"], 5);
    alice.subscribe(&room).await;

    let (_, rooms) = server.api("bob").get("/api/v1/rooms").await;
    assert_eq!(rooms["rooms"][0]["unread_count"], 5);
    assert_eq!(rooms["rooms"][0]["last_message_content"], "m5");
    let (_, rooms) = server.api("alice").get("/api/v1/rooms").await;
    assert_eq!(
        rooms["rooms"][0]["unread_count"], 0,
        "own messages are never unread"
    );

    bob_phone
        .send(json!({"type": "mark_read", "room_id": room, "up_to_seq": 3}))
        .await;
    let read = alice.recv_type("message_read").await;
    assert_eq!(read["user_id"], "bob");
    assert_eq!(read["up_to_seq"], 3);
    for ws in [&mut bob_phone, &mut bob_laptop] {
        let updated = ws.recv_type("room_updated").await;
        assert_eq!(updated["updates"]["unread_count"], 2);
    }
    let list = bob_laptop.request(json!({"type": "get_room_list"})).await;
    assert_eq!(list["rooms"][0]["unread_count"], 2);

    let (status, body) = server
        .api("bob")
        .post(&format!("/api/v1/rooms/{room}/read"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["last_read_seq"], 5);
    assert_eq!(body["unread_count"], 0);
    // Markers never move backward; with a req_id the answer is an ack.
    let ack = bob_phone
        .request(json!({"type": "mark_read", "room_id": room, "up_to_seq": 1}))
        .await;
    assert_eq!(ack["type"], "ack");
    let (_, room_now) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(room_now["unread_count"], 0);
}

#[tokio::test]
async fn history_pages_both_ways_and_room_list_pages_by_cursor() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    for _ in 0..3 {
        server.room("alice", &[]).await;
    }
    let mut ws = server.ws("alice").await;
    for n in 1..=120 {
        ws.send_message(&room, &format!("m{n}")).await;
    }
    let latest = ws
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    let seqs = |page: &serde_json::Value| -> Vec<i64> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&latest), (71..=120).collect::<Vec<_>>());
    assert_eq!(latest["has_more"], true);
    let before = ws
        .request(json!({"type": "get_history", "room_id": room, "before_seq": 11, "limit": 500}))
        .await;
    assert_eq!(seqs(&before), (1..=10).collect::<Vec<_>>());
    assert_eq!(before["has_more"], false);
    let (_, after) = server
        .api("alice")
        .get(&format!(
            "/api/v1/rooms/{room}/messages?after_seq=0&limit=1000"
        ))
        .await;
    assert_eq!(
        seqs(&after),
        (1..=100).collect::<Vec<_>>(),
        "limit is capped at 100"
    );
    assert_eq!(after["has_more"], true);

    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut frame = json!({"type": "get_room_list", "limit": 2});
        if let Some(c) = &cursor {
            frame["cursor"] = json!(c);
        }
        let page = ws.request(frame).await;
        for r in page["rooms"].as_array().unwrap() {
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 4);
    assert_eq!(
        ids[0], room,
        "the room with messages has the newest activity"
    );
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4);
}

#[tokio::test]
async fn restart_keeps_history_and_seq_continues() {
    let mut server = TestServer::start().await;
    let dir = server.keep_data_dir().unwrap();
    let room = server.room("alice", &[]).await;
    let mut ws = server.ws("alice").await;
    ws.send_message(&room, "before").await;
    server.stop().await;
    assert!(matches!(ws.ended().await, common::Ended::Closed(1012)));

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let mut ws = server.ws("alice").await;
    assert_eq!(ws.send_message(&room, "after").await["seq"], 2);
    let (_, page) = server
        .api("alice")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(page["messages"][0]["content"], "before");
    server.stop().await;
}
