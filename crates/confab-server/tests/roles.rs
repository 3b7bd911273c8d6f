//! Custom global roles (protocol.md §1, §8.2 "Roles"): a token's `role`
//! may be any name of 1–32 characters of `a-z 0-9 _ -` (`analyst`); such a
//! user has a member's rights, and the name is stored and shown (`/me`,
//! `/status`) and may be set by the back-end with the server key. Other
//! names are refused: 4003 on WebSocket, 401 on REST, 422 on
//! `PUT /api/v1/users/{id}`. Before custom roles every such token was
//! refused, so each test here fails without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer, now_s, unlimited};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A one-hour token for `user` with the `role` claim as given.
fn token(server: &TestServer, user: &str, role: &str) -> String {
    server.token_from_claims(&json!({"sub": user, "role": role, "exp": now_s() + 3600}))
}

/// `GET /api/v1/me` with `token`.
async fn me(server: &TestServer, token: &str) -> (StatusCode, Value) {
    server.api_with_token(token).get("/api/v1/me").await
}

async fn server() -> TestServer {
    TestServer::start_with(unlimited).await
}

/// A token with the role `analyst` opens a WebSocket, sends, and
/// authenticates REST, which shows the role.
#[tokio::test]
async fn a_token_with_a_custom_role_connects_sends_and_is_shown_its_role() {
    let server = server().await;
    let room = server.room("alice", &["ann"]).await;
    let analyst = token(&server, "ann", "analyst");
    let mut ann = server.ws_with_token(&analyst).await;
    ann.send_message(&room, "Numbers are in").await;
    let stored = server.all_messages("alice", &room).await;
    assert_eq!(stored[0]["sender"]["id"], "ann");
    assert_eq!(stored[0]["content"], "Numbers are in");

    let (status, body) = me(&server, &analyst).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "ann");
    assert_eq!(body["role"], "analyst", "{body}");
}

/// The custom role is stored: a later token without a `role` claim keeps
/// it, `/status` shows it, and a token naming `user` makes the user a
/// `member` again.
#[tokio::test]
async fn a_custom_role_is_stored_and_shown_until_another_token_changes_it() {
    let server = server().await;
    let room = server.room("alice", &["ann"]).await;
    let (status, _) = me(&server, &token(&server, "ann", "analyst")).await;
    assert_eq!(status, StatusCode::OK);

    let (_, body) = server.api("ann").get("/api/v1/me").await;
    assert_eq!(body["role"], "analyst", "kept without a role claim: {body}");
    let (status, result) = server
        .api("ann")
        .post(
            &format!("/api/v1/rooms/{room}/commands"),
            json!({"text": "/status"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["data"]["user"]["role"], "analyst", "{result}");
    let mut ws = server.ws("ann").await;
    let reply = ws
        .request(json!({"type": "send_message", "room_id": room, "content": "/status"}))
        .await;
    assert_eq!(reply["type"], "command_result", "{reply}");
    assert_eq!(reply["data"]["user"]["role"], "analyst", "{reply}");
    let (_, listed) = server
        .api("alice")
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    let global_roles: Vec<(&str, &str)> = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap(),
                m["global_role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        global_roles,
        [("alice", "member"), ("ann", "analyst")],
        "{listed}"
    );

    let (_, body) = me(&server, &token(&server, "ann", "user")).await;
    assert_eq!(body["role"], "member", "{body}");
}

/// A custom role has a member's rights, no more: it may create rooms and
/// send, but not read the admin stats or rooms it is not in.
#[tokio::test]
async fn a_custom_role_has_a_members_rights_and_no_more() {
    let server = server().await;
    let others = server.room("alice", &[]).await;
    let analyst = server.api_with_token(&token(&server, "ann", "analyst"));
    let (status, room) = analyst
        .post("/api/v1/rooms", json!({"name": "reports"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let room_id = room["id"].as_str().unwrap();
    let (status, body) = analyst
        .post(
            &format!("/api/v1/rooms/{room_id}/messages"),
            json!({"content": "Q3"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = analyst.get("/api/v1/stats").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = analyst.get(&format!("/api/v1/rooms/{others}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

/// Names at the rule's bounds are accepted: one character, 32 characters,
/// digits, `_` and `-`.
#[tokio::test]
async fn role_names_at_the_bounds_of_the_rule_are_accepted() {
    let server = server().await;
    let longest = "r".repeat(32);
    for (n, role) in ["a", longest.as_str(), "data_team-2"].iter().enumerate() {
        let user = format!("user-{n}");
        let t = token(&server, &user, role);
        let (status, body) = me(&server, &t).await;
        assert_eq!(status, StatusCode::OK, "{role}: {body}");
        assert_eq!(body["role"], *role, "{body}");
        server.ws_with_token(&t).await.assert_alive().await;
    }
}

/// A token whose role breaks the rule is refused: 4003 on `/ws` and on a
/// room-scoped endpoint, 401 on REST.
#[tokio::test]
async fn tokens_with_malformed_role_names_are_refused() {
    let server = server().await;
    let room = server.room_with_id("alice", "job-1", &["ann"]).await;
    let too_long = "r".repeat(33);
    for role in ["Analyst!", "Analyst", too_long.as_str(), "", "data team"] {
        let t = token(&server, "ann", role);
        let (status, body) = me(&server, &t).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{role:?}: {body}");
        let mut ws = server
            .ws_raw("/ws", &[("authorization", format!("Bearer {t}"))])
            .await;
        assert_eq!(ws.ended().await, Ended::Closed(4003), "{role:?} on /ws");
        let mut scoped = server
            .ws_raw(&format!("/ws/chat/{room}/?token={t}"), &[])
            .await;
        assert_eq!(
            scoped.ended().await,
            Ended::Closed(4003),
            "{role:?} on chat"
        );
    }
}

/// The server key sets a custom role with `PUT /api/v1/users/{id}`, which
/// the user's tokens then carry; malformed names are 422 and change
/// nothing.
#[tokio::test]
async fn the_server_key_sets_custom_roles_and_refuses_malformed_ones() {
    let server = server().await;
    let (status, user) = server
        .server_api()
        .put(
            "/api/v1/users/ann",
            json!({"name": "Ann", "role": "analyst"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["role"], "analyst", "{user}");
    let (_, body) = server.api("ann").get("/api/v1/me").await;
    assert_eq!(body["role"], "analyst", "{body}");

    let too_long = "r".repeat(33);
    for role in ["Analyst!", too_long.as_str(), ""] {
        let (status, body) = server
            .server_api()
            .put("/api/v1/users/ann", json!({"role": role}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{role:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    }
    let (_, body) = server.api("ann").get("/api/v1/me").await;
    assert_eq!(body["role"], "analyst", "unchanged: {body}");
}
