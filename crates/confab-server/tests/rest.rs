//! The REST API (protocol.md §4, §7 shapes): the caller, users, rooms (create with
//! an app id, list, get, patch, close), members with live `room_added` /
//! `room_removed`, direct rooms, messages fanned out live, health, and the
//! error bodies for unknown routes and bad bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, assert_timestamp};
use confab_server::store::GlobalRole;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

fn assert_error(status: reqwest::StatusCode, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn me_is_the_caller() {
    let server = TestServer::start().await;
    let token = server.token_with(
        "alice",
        Some("Alice"),
        Some(GlobalRole::Admin),
        Duration::from_secs(60),
    );
    let http = reqwest::Client::new();
    let me: Value = http
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], "alice");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["role"], "admin");
    let (status, me) = server.api("bob").get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "bob");
    assert_eq!(me["role"], "member", "the default global role");
}

#[tokio::test]
async fn users_are_managed_with_the_server_key_only() {
    let server = TestServer::start().await;
    let (status, user) = server
        .server_api()
        .put(
            "/api/v1/users/u-9",
            json!({"name": "Nine", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["id"], "u-9");
    assert_eq!(user["name"], "Nine");
    assert_eq!(user["role"], "viewer");
    assert_eq!(user["disabled"], false);
    let (status, user) = server
        .server_api()
        .put("/api/v1/users/u-9", json!({"role": "member"}))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["role"], "member");
    assert_eq!(user["name"], "Nine", "fields not given are kept");

    let (status, body) = server
        .api("alice")
        .put("/api/v1/users/alice", json!({"role": "admin"}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .server_api()
        .put("/api/v1/users/u-9", json!({"role": "Emperor!"}))
        .await;
    assert_error(status, &body, 422, "invalid_field");
    let (status, body) = server
        .server_api()
        .put("/api/v1/users/u-9", json!({"disabled": "yes"}))
        .await;
    assert_error(status, &body, 422, "invalid_field");
}

#[tokio::test]
async fn rooms_are_created_with_the_caller_as_owner_and_an_app_id() {
    let server = TestServer::start().await;
    let mut bob = server.ws("bob").await;
    let (status, room) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"id": "job-45", "name": "Deep clean", "room_type": "job",
                   "members": ["bob"], "metadata": {"job": 45}}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["id"], "job-45");
    assert_eq!(room["name"], "Deep clean");
    assert_eq!(room["room_type"], "job");
    assert_eq!(room["metadata"], json!({"job": 45}));
    assert_eq!(room["role"], "owner");
    assert_eq!(room["closed"], false);
    assert_eq!(room["last_seq"], 0);
    assert_eq!(room["unread_count"], 0);
    assert_timestamp(&room["created_at"]);
    let participants: BTreeSet<&str> = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(participants, BTreeSet::from(["alice", "bob"]));

    // Members who are connected hear about it.
    let added = bob.recv_type("room_added").await;
    assert_eq!(added["room_id"], "job-45");
    assert_eq!(added["room"]["id"], "job-45");
    assert_eq!(added["room"]["role"], "member");

    let (status, body) = server
        .api("carol")
        .post("/api/v1/rooms", json!({"id": "job-45", "name": "mine now"}))
        .await;
    assert_error(status, &body, 409, "invalid_field");
    assert_eq!(
        server.room_as("alice", "job-45").await["name"],
        "Deep clean"
    );

    let (status, generated) = server
        .api("alice")
        .post("/api/v1/rooms", json!({"name": "no id"}))
        .await;
    assert_eq!(status, 201, "{generated}");
    assert!(!generated["id"].as_str().unwrap().is_empty());
    assert_eq!(generated["room_type"], "group");
    let (status, numeric) = server
        .api("alice")
        .post("/api/v1/rooms", json!({"id": 77}))
        .await;
    assert_eq!(status, 201, "{numeric}");
    assert_eq!(numeric["id"], "77", "numbers mean their decimal string");
    for bad in ["a/b", "", "has space"] {
        let (status, body) = server
            .api("alice")
            .post("/api/v1/rooms", json!({"id": bad}))
            .await;
        assert_error(status, &body, 422, "invalid_field");
    }
}

#[tokio::test]
async fn list_and_get_rooms_with_permissions() {
    let server = TestServer::start().await;
    let room = server.room_with_id("alice", "kitchen", &["bob"]).await;
    server.room_with_id("carol", "garden", &[]).await;
    let (status, list) = server.api("bob").get("/api/v1/rooms").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["rooms"][0]["id"], "kitchen");
    assert!(list["next_cursor"].is_null());
    let entry = &list["rooms"][0];
    for key in [
        "id",
        "name",
        "room_type",
        "last_seq",
        "last_message_content",
        "last_message_time",
        "unread_count",
        "participants",
    ] {
        assert!(
            entry.get(key).is_some(),
            "room_list entry lacks {key}: {entry}"
        );
    }
    let (status, got) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["id"], "kitchen");
    assert_eq!(got["role"], "member");
    let (status, body) = server.api("mallory").get("/api/v1/rooms/kitchen").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server.api("bob").get("/api/v1/rooms/nope").await;
    assert_error(status, &body, 404, "not_found");
    // The server key sees any room.
    let (status, got) = server.server_api().get("/api/v1/rooms/garden").await;
    assert_eq!(status, 200, "{got}");
}

#[tokio::test]
async fn patch_is_for_room_owners_and_admins_and_members_hear_it() {
    let server = TestServer::start().await;
    let room = server
        .room_with_id("alice", "job-1", &["bob", "carol"])
        .await;
    let mut bob = server.ws("bob").await; // not subscribed: a user event
    let (status, body) = server
        .api("bob")
        .patch(&format!("/api/v1/rooms/{room}"), json!({"name": "mine"}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .api("mallory")
        .patch(&format!("/api/v1/rooms/{room}"), json!({"name": "mine"}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .api("alice")
        .patch("/api/v1/rooms/ghost", json!({"name": "x"}))
        .await;
    assert_error(status, &body, 404, "not_found");

    let (status, renamed) = server
        .api("alice")
        .patch(
            &format!("/api/v1/rooms/{room}"),
            json!({"name": "Window clean"}),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Window clean");
    let update = bob.recv_type("room_updated").await;
    assert_eq!(update["room_id"], "job-1");
    assert_eq!(update["updates"], json!({"name": "Window clean"}));

    // A room admin may patch too.
    let (status, _) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "carol", "role": "admin"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .api("carol")
        .patch(
            &format!("/api/v1/rooms/{room}"),
            json!({"metadata": {"stage": 2}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"], json!({"stage": 2}));
    let update = bob.recv_type("room_updated").await;
    assert_eq!(update["updates"]["metadata"], json!({"stage": 2}));
    assert_eq!(server.room_as("bob", &room).await["name"], "Window clean");
}

#[tokio::test]
async fn delete_closes_for_owners_only() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let (status, body) = server
        .api("bob")
        .delete(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(server.room_as("bob", &room).await["closed"], false);
    let mut bob = server.ws("bob").await;
    let (status, closed) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["closed"], true);
    let update = bob.recv_type("room_updated").await;
    assert_eq!(update["updates"]["closed"], true);
    let (status, body) = server
        .api("bob")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "x"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, page) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200, "closed rooms stay readable: {page}");
}

fn members_of(list: &Value) -> Vec<(String, String)> {
    list["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members list: {list}"))
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn members_are_listed_added_and_removed_with_live_events() {
    let server = TestServer::start().await;
    server
        .server_api()
        .put("/api/v1/users/carol", json!({"name": "Carol"}))
        .await;
    let room = server.room("alice", &["bob"]).await;
    let mut carol = server.ws("carol").await;

    let (status, list) = server
        .api("bob")
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        members_of(&list),
        [
            ("alice".into(), "owner".into()),
            ("bob".into(), "member".into())
        ]
    );
    for m in list["members"].as_array().unwrap() {
        for key in ["user_id", "name", "role", "online"] {
            assert!(m.get(key).is_some(), "member lacks {key}: {m}");
        }
        assert_eq!(m["online"], false, "{m}");
    }
    let (status, body) = server
        .api("mallory")
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    assert_error(status, &body, 403, "forbidden");

    // Members cannot add; the owner can.
    let (status, body) = server
        .api("bob")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "carol", "role": "member"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    carol.expect_silence(QUIET).await;
    let (status, member) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "carol", "role": "member"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(member["user_id"], "carol");
    assert_eq!(member["role"], "member");
    assert_eq!(member["name"], "Carol");
    let added = carol.recv_type("room_added").await;
    assert_eq!(added["room_id"], room.as_str());
    assert_eq!(added["room"]["id"], room.as_str());
    let (_, list) = server
        .api("carol")
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    let carol_entry = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "carol")
        .unwrap()
        .clone();
    assert_eq!(
        carol_entry,
        json!({"user_id": "carol", "name": "Carol", "role": "member", "global_role": "member", "online": true,
               "last_read_seq": carol_entry["last_read_seq"]})
    );

    // Removal takes effect at once: no more messages of the room.
    carol.subscribe(&room).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "before").await;
    assert_eq!(
        carol.recv_type("new_message").await["message"]["content"],
        "before"
    );
    let (status, body) = server
        .api("bob")
        .delete(&format!("/api/v1/rooms/{room}/members/carol"))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}/members/carol"))
        .await;
    assert_eq!(status, 204);
    let removed = carol.recv_json().await;
    assert_eq!(removed["type"], "room_removed", "{removed}");
    assert_eq!(removed["room_id"], room.as_str());
    alice.send_message(&room, "after carol left").await;
    carol.expect_silence(QUIET).await;
    let refused = carol
        .expect_error(
            json!({"type": "subscribe_room", "room_id": room}),
            "forbidden",
        )
        .await;
    assert_eq!(refused["room_id"], room.as_str());
    let (status, body) = server
        .api("carol")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (_, carols) = server.api("carol").get("/api/v1/rooms").await;
    assert_eq!(carols["rooms"], json!([]), "the room left carol's list");
    let (status, body) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}/members/carol"))
        .await;
    assert_error(status, &body, 404, "not_found");
    // A member may leave by themself.
    let (status, _) = server
        .api("bob")
        .delete(&format!("/api/v1/rooms/{room}/members/bob"))
        .await;
    assert_eq!(status, 204);
    let (_, list) = server
        .api("alice")
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    assert_eq!(members_of(&list), [("alice".into(), "owner".into())]);
}

#[tokio::test]
async fn room_roles_admin_may_add_and_viewer_may_not_send() {
    let server = TestServer::start().await;
    let room = server.room("alice", &[]).await;
    let api = server.api("alice");
    let path = format!("/api/v1/rooms/{room}/members");
    assert_eq!(
        api.post(&path, json!({"user_id": "adam", "role": "admin"}))
            .await
            .0,
        201
    );
    let (status, member) = server
        .api("adam")
        .post(&path, json!({"user_id": "vic", "role": "viewer"}))
        .await;
    assert_eq!(status, 201, "a room admin adds members: {member}");
    assert_eq!(member["role"], "viewer");
    let (status, body) = api
        .post(&path, json!({"user_id": "x", "role": "king"}))
        .await;
    assert_error(status, &body, 422, "invalid_field");
    let (status, body) = server
        .api("vic")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = server
        .api("vic")
        .get(&format!("/api/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200, "room viewers read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_rooms_between_the_same_two_are_one_room() {
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
    assert_eq!(statuses, [200, 201], "created once, found once");
    let (status, again) = create("alice", "bob").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], a.1["id"]);
    assert_eq!(again["room_type"], "direct");
    let (_, list) = server.api("alice").get("/api/v1/rooms").await;
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1, "{list}");
    // Another pair is another room.
    let (status, other) = create("alice", "carol").await;
    assert_eq!(status, 201);
    assert_ne!(other["id"], a.1["id"]);
    let (status, body) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"room_type": "direct", "members": ["bob", "carol"]}),
        )
        .await;
    assert_error(status, &body, 422, "invalid_field");
}

#[tokio::test]
async fn posted_messages_answer_201_and_reach_websocket_subscribers() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let (status, body) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "from REST", "message_type": "TEXT",
                   "client_msg_id": "rest-1", "metadata": {"via": "rest"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["duplicate"], false);
    let message = &body["message"];
    assert_eq!(message["room_id"], room.as_str());
    assert_eq!(message["seq"], 1);
    assert_eq!(message["content"], "from REST");
    assert_eq!(message["message_type"], "text");
    assert_eq!(message["sender"]["id"], "alice");
    assert_eq!(message["metadata"], json!({"via": "rest"}));
    assert_timestamp(&message["timestamp"]);
    let got = bob.recv_type("new_message").await;
    assert_eq!(&got["message"], message, "the same message object live");

    let (status, body) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": " "}),
        )
        .await;
    assert_error(status, &body, 422, "empty_message");
    let (status, body) = server
        .api("alice")
        .post(&format!("/api/v1/rooms/{room}/messages"), json!({}))
        .await;
    assert_error(status, &body, 422, "invalid_field");
    let (status, body) = server
        .api("mallory")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "x"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server
        .api("alice")
        .post("/api/v1/rooms/nowhere/messages", json!({"content": "x"}))
        .await;
    assert_error(status, &body, 404, "not_found");
    bob.expect_silence(QUIET).await;
    assert_eq!(server.last_seq("alice", &room).await, 1);
}

#[tokio::test]
async fn health_unknown_routes_and_bad_bodies() {
    let server = TestServer::start().await;
    let anon = server.anonymous_api();
    let (status, body) = anon.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = anon.get("/readyz").await;
    assert_eq!(status, 200, "{body}");

    for path in [
        "/api/v1/nowhere",
        "/nothing",
        "/api/v2/rooms",
        "/api/v1/rooms/a/b/c",
    ] {
        let (status, body) = server.api("alice").get(path).await;
        assert_error(status, &body, 404, "not_found");
    }
    let alice = server.api("alice");
    let room = server.room("alice", &[]).await;
    // A known route with the wrong method still answers with the error body.
    for (method, path) in [
        (Method::PUT, "/api/v1/rooms"),
        (Method::DELETE, "/api/v1/me"),
    ] {
        let (status, body) = alice.call(method.clone(), path, Some(json!({}))).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
        assert!(
            body["error"]["message"].is_string(),
            "{method} {path}: {body}"
        );
    }
    for (method, path) in [
        (Method::POST, "/api/v1/rooms".to_owned()),
        (Method::PATCH, format!("/api/v1/rooms/{room}")),
        (Method::POST, format!("/api/v1/rooms/{room}/messages")),
        (Method::POST, format!("/api/v1/rooms/{room}/members")),
        (Method::POST, format!("/api/v1/rooms/{room}/read")),
    ] {
        let (status, body) = alice
            .call_raw(method.clone(), &path, "application/json", b"{oops".to_vec())
            .await;
        assert_error(status, &body, 400, "invalid_json");
    }
    let wrong_types = [
        (
            Method::POST,
            "/api/v1/rooms".to_owned(),
            json!({"members": "bob"}),
        ),
        (Method::POST, "/api/v1/rooms".to_owned(), json!({"name": 5})),
        (
            Method::PATCH,
            format!("/api/v1/rooms/{room}"),
            json!({"name": ["x"]}),
        ),
        (
            Method::POST,
            format!("/api/v1/rooms/{room}/messages"),
            json!({"content": 5}),
        ),
        (
            Method::POST,
            format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": {"id": 1}}),
        ),
        (
            Method::POST,
            format!("/api/v1/rooms/{room}/read"),
            json!({"up_to_seq": "all"}),
        ),
    ];
    for (method, path, body) in wrong_types {
        let (status, reply) = alice.call(method, &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{path} {body}: {reply}");
        assert_eq!(
            reply["error"]["code"], "invalid_field",
            "{path} {body}: {reply}"
        );
    }
    assert_eq!(server.last_seq("alice", &room).await, 0);
}
