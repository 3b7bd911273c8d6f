//! Satisfaction ratings of assistant sessions (issue 17 item 4,
//! protocol.md §4.3): `POST` and `GET /api/v1/rooms/{id}/rating`, one rating
//! per session (the latest wins), who may rate, what is refused, and the
//! `ratings` of `/api/v1/stats`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, assert_timestamp};
use confab_server::store::GlobalRole;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Creates an assistant session over REST as `owner` with `members`; its id.
async fn session(server: &TestServer, owner: &str, members: &[&str]) -> String {
    let (status, room) = server
        .api(owner)
        .post(
            "/api/v1/rooms",
            json!({"room_type": "assistant", "members": members}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["room_type"], "assistant");
    room["id"].as_str().unwrap().to_owned()
}

/// The rating route of a room.
fn rating_path(room: &str) -> String {
    format!("/api/v1/rooms/{room}/rating")
}

/// Asserts an error answer: its status and contract code.
fn assert_error(status: StatusCode, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn a_member_rates_a_session_and_a_later_rating_replaces_it() {
    let server = TestServer::start().await;
    let room = session(&server, "alice", &["bob"]).await;
    let path = rating_path(&room);

    let (status, body) = server.api("alice").get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"rating": null}), "not rated yet");

    let (status, body) = server
        .api("alice")
        .post(&path, json!({"rating": 4, "feedback": "quick and right"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = &body["rating"];
    assert_eq!(stored["room_id"], room.as_str());
    assert_eq!(stored["user_id"], "alice");
    assert_eq!(stored["rating"], 4);
    assert_eq!(stored["feedback"], "quick and right");
    assert_timestamp(&stored["rated_at"]);

    // Another member reads the same rating.
    let (status, read) = server.api("bob").get(&path).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, body);

    // A later rating, by anyone in the session, replaces it; blank feedback is none.
    let (status, body) = server
        .api("bob")
        .post(&path, json!({"rating": 2, "feedback": "  \n "}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["user_id"], "bob");
    assert_eq!(body["rating"]["rating"], 2);
    assert_eq!(body["rating"]["feedback"], Value::Null);
    let (_, read) = server.api("alice").get(&path).await;
    assert_eq!(read, body, "one rating per session: the latest");
}

#[tokio::test]
async fn a_closed_session_can_still_be_rated() {
    let server = TestServer::start().await;
    let room = session(&server, "alice", &[]).await;
    let (status, closed) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{room}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["closed"], true);

    let (status, body) = server
        .api("alice")
        .post(&rating_path(&room), json!({"rating": 5}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["rating"], 5);
    assert_eq!(body["rating"]["feedback"], Value::Null);
    let (_, read) = server.api("alice").get(&rating_path(&room)).await;
    assert_eq!(read["rating"]["rating"], 5);
}

#[tokio::test]
async fn stats_count_rated_sessions_and_their_average() {
    let server = TestServer::start().await;
    let (status, stats) = server.server_api().get("/api/v1/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["ratings"], json!({"count": 0, "average": null}));

    let first = session(&server, "alice", &[]).await;
    let second = session(&server, "bob", &[]).await;
    session(&server, "carol", &[]).await; // never rated: not counted
    for (user, room, rating) in [
        ("alice", &first, 5),
        ("bob", &second, 2),
        ("alice", &first, 4), // replaces the 5
    ] {
        let (status, body) = server
            .api(user)
            .post(&rating_path(room), json!({"rating": rating}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, stats) = server.server_api().get("/api/v1/stats").await;
    assert_eq!(stats["ratings"], json!({"count": 2, "average": 3.0}));
}

#[tokio::test]
async fn bad_ratings_and_feedback_are_refused_and_store_nothing() {
    let server = TestServer::start().await;
    let room = session(&server, "alice", &[]).await;
    let path = rating_path(&room);
    let alice = server.api("alice");
    let max = server.config.limits.max_message_length;

    for body in [
        json!({"rating": 0}),
        json!({"rating": 6}),
        json!({"rating": -1}),
        json!({"rating": 2.5}),
        json!({"rating": "5"}),
        json!({"rating": null}),
        json!({}),
        json!({"feedback": "no number"}),
        json!({"rating": 3, "feedback": "x".repeat(max + 1)}),
        json!({"rating": 3, "feedback": 5}),
        json!({"rating": 3, "feedback": "nul \u{0} inside"}),
        json!([4]),
    ] {
        let (status, answer) = alice.post(&path, body.clone()).await;
        assert_error(status, &answer, 422, "invalid_field");
        let (_, read) = alice.get(&path).await;
        assert_eq!(read, json!({"rating": null}), "{body} stored something");
    }

    let (status, answer) = alice
        .call_raw(
            reqwest::Method::POST,
            &path,
            "application/json",
            b"{\"rating\": 4".to_vec(),
        )
        .await;
    assert_error(status, &answer, 400, "invalid_json");

    // Feedback is counted in characters: exactly the limit is accepted.
    let longest = "é".repeat(max);
    let (status, answer) = alice
        .post(&path, json!({"rating": 1, "feedback": longest}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["rating"]["feedback"], longest.as_str());
}

#[tokio::test]
async fn only_assistant_sessions_are_rated() {
    let server = TestServer::start().await;
    let group = server.room("alice", &["bob"]).await;
    let path = rating_path(&group);
    let (status, body) = server.api("alice").post(&path, json!({"rating": 4})).await;
    assert_error(status, &body, 422, "invalid_field");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("assistant"),
        "{body}"
    );
    let (status, body) = server.api("alice").get(&path).await;
    assert_error(status, &body, 422, "invalid_field");
}

#[tokio::test]
async fn outsiders_unknown_rooms_and_missing_tokens_are_refused() {
    let server = TestServer::start().await;
    let room = session(&server, "alice", &[]).await;
    let path = rating_path(&room);
    let rating = json!({"rating": 1, "feedback": "from outside"});

    let (status, body) = server.api("mallory").post(&path, rating.clone()).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = server.api("mallory").get(&path).await;
    assert_error(status, &body, 403, "forbidden");

    let unknown = rating_path("no-such-room");
    let (status, body) = server.api("alice").post(&unknown, rating.clone()).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.api("alice").get(&unknown).await;
    assert_error(status, &body, 404, "not_found");

    let (status, body) = server.anonymous_api().post(&path, rating.clone()).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = server.anonymous_api().get(&path).await;
    assert_error(status, &body, 401, "unauthorized");

    let (_, read) = server.api("alice").get(&path).await;
    assert_eq!(read, json!({"rating": null}), "no refusal stored anything");
}

#[tokio::test]
async fn the_server_key_admins_and_read_only_members_may_rate() {
    let server = TestServer::start().await;
    let room = session(&server, "alice", &["vic"]).await;
    let path = rating_path(&room);

    // The bare server key is no member: it rates as `system`.
    let (status, body) = server.server_api().post(&path, json!({"rating": 3})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["user_id"], "system");

    // Acting for a visitor's back-end, it rates as that user.
    let (status, body) = server
        .server_api()
        .acting_as("alice")
        .post(&path, json!({"rating": 4}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["user_id"], "alice");

    // A global admin who is not a member.
    let hour = Duration::from_secs(3600);
    let admin = server.token_with("root", None, Some(GlobalRole::Admin), hour);
    let (status, body) = server
        .api_with_token(&admin)
        .post(&path, json!({"rating": 2}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["user_id"], "root");

    // A global viewer who is in the session: a rating is not a message.
    let viewer = server.token_with("vic", None, Some(GlobalRole::Viewer), hour);
    let (status, body) = server
        .api_with_token(&viewer)
        .post(&path, json!({"rating": 5, "feedback": "thanks"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rating"]["user_id"], "vic");
    let (status, body) = server
        .api_with_token(&viewer)
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "viewers still may not send: {body}"
    );

    let (_, read) = server.server_api().get(&path).await;
    assert_eq!(read["rating"]["user_id"], "vic");
    assert_eq!(read["rating"]["rating"], 5);
}
