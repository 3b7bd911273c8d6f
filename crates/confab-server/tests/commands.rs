//! Slash commands (protocol.md §6.1, §8.2), end to end on a real server:
//! what makes a text a command (and what stays a message: `//` escapes,
//! `/path/x`, leading blanks), the `command_result` frame answering only the
//! caller, every built-in with its permission rule allowed and refused
//! (`/help`, `/status`, `/rooms` and `/sessions`, `/stats`, `/topic`,
//! `/invite`, `/kick`, `/clear`, `/me`), the checks a command shares with a
//! send (room, membership, rate), the room-scoped dialects and
//! `/ws/assistant/`, the REST route `POST /api/v1/rooms/{id}/commands`, and
//! app commands against a stand-in for the app's back-end that verifies the
//! Standard Webhooks signature itself: the body sent, `post`, roles, errors,
//! timeouts, aliases and the bound on calls in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::provider::{Behaviour, FakeProvider};
use common::receiver::{self, Receiver, Reply};
use common::{TestServer, WsClient, assert_timestamp, now_s, unlimited};
use confab_server::config::{CommandConfig, Config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);
const CHAT: &str = "/ws/chat";
const SESSIONS: &str = "/ws/sessions";

// ---------------------------------------------------------------------------
// Set-up and reading helpers.

/// A one-hour token for `user` with a display `name` and a raw `role`
/// claim (any name: the custom ones are the point).
fn token(server: &TestServer, user: &str, name: Option<&str>, role: Option<&str>) -> String {
    let mut claims = json!({"sub": user, "exp": now_s() + 3600});
    if let Some(name) = name {
        claims["name"] = json!(name);
    }
    if let Some(role) = role {
        claims["role"] = json!(role);
    }
    server.token_from_claims(&claims)
}

/// Connects to `/ws` with `token`; returns the client and its
/// `connection_established`.
async fn connect(server: &TestServer, token: &str) -> (WsClient, Value) {
    let mut ws = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    let hello = ws.recv_json().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

/// `user` on `/ws` with the global role `role`.
async fn ws_as(server: &TestServer, user: &str, role: &str) -> WsClient {
    connect(server, &token(server, user, None, Some(role)))
        .await
        .0
}

/// A fresh `req_id`.
fn req_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("cmd-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Sends `frame` (which must carry a `req_id`); returns the frame answering
/// it and every frame that came before it (events a command may cause
/// can arrive before its result, and must not be lost).
async fn exchange(ws: &mut WsClient, frame: Value) -> (Value, Vec<Value>) {
    let id = frame["req_id"].clone();
    assert!(!id.is_null(), "{frame}");
    ws.send(frame).await;
    let mut before = Vec::new();
    loop {
        let reply = ws.recv_json().await;
        if reply["req_id"] == id {
            return (reply, before);
        }
        before.push(reply);
    }
}

/// Sends `text` to `room` as a plain `send_message` with a `req_id`;
/// returns the answer and the frames before it.
async fn send_text(ws: &mut WsClient, room: &str, text: &str) -> (Value, Vec<Value>) {
    exchange(
        ws,
        json!({"type": "send_message", "room_id": room, "content": text, "req_id": req_id()}),
    )
    .await
}

/// Asserts the contract's `command_result` frame shape for `room`.
fn assert_result_frame(frame: &Value, room: &str) {
    assert_eq!(frame["type"], "command_result", "{frame}");
    assert_eq!(frame["room_id"], room, "{frame}");
    assert_timestamp(&frame["timestamp"]);
    assert_result_body(frame);
}

/// The fields a result has on every transport: `command`, `ok`, `text`,
/// `data` (object or null), and `code` exactly when `ok` is false.
fn assert_result_body(result: &Value) {
    assert!(result["command"].is_string(), "{result}");
    assert!(result["ok"].is_boolean(), "{result}");
    assert!(result["text"].is_string(), "{result}");
    assert!(
        result
            .get("data")
            .is_some_and(|d| d.is_object() || d.is_null()),
        "{result}"
    );
    if result["ok"] == true {
        assert!(
            result.get("code").is_none_or(Value::is_null),
            "no code on success: {result}"
        );
    } else {
        assert!(result.get("code").is_none_or(Value::is_string), "{result}");
    }
}

/// Runs `text` in `room` and returns its `command_result` (checked for
/// shape, room and `req_id`).
async fn command(ws: &mut WsClient, room: &str, text: &str) -> Value {
    command_seeing(ws, room, text).await.0
}

/// [`command`], also returning the frames that came before the result.
async fn command_seeing(ws: &mut WsClient, room: &str, text: &str) -> (Value, Vec<Value>) {
    let (result, before) = send_text(ws, room, text).await;
    assert_result_frame(&result, room);
    (result, before)
}

/// Asserts that `frames` hold nothing but presence (other users coming
/// online while a test runs).
fn assert_only_presence(frames: &[Value]) {
    for frame in frames {
        let presence = frame["type"] == "user_online" || frame["type"] == "user_offline";
        assert!(presence, "unexpected frame: {frame}");
    }
}

/// A server with no rate limit in the way.
async fn server() -> TestServer {
    TestServer::start_with(unlimited).await
}

/// Asserts a successful result of `name`.
fn assert_ok(result: &Value, name: &str) {
    assert_eq!(result["command"], name, "{result}");
    assert_eq!(result["ok"], true, "{result}");
}

/// Asserts a failed result of `name` with `code`.
fn assert_refused(result: &Value, name: &str, code: &str) {
    assert_eq!(result["command"], name, "{result}");
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["code"], code, "{result}");
}

/// The first frame of type `kind`, from `seen` (frames already read) or
/// else the next ones.
async fn event(ws: &mut WsClient, seen: &mut Vec<Value>, kind: &str) -> Value {
    match seen.iter().position(|f| f["type"] == kind) {
        Some(i) => seen.remove(i),
        None => ws.recv_type(kind).await,
    }
}

/// The contents of every message stored in `room`, read by `user`.
async fn contents(server: &TestServer, user: &str, room: &str) -> Vec<String> {
    server
        .all_messages(user, room)
        .await
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

/// The command names a `/help` result lists.
fn listed(help: &Value) -> Vec<String> {
    help["data"]["commands"]
        .as_array()
        .unwrap_or_else(|| panic!("no commands list: {help}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `/help` entry named `name`.
fn entry<'a>(help: &'a Value, name: &str) -> &'a Value {
    help["data"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {help}"))
}

/// Asserts `names` are all listed and `absent` none.
fn assert_lists(help: &Value, names: &[&str], absent: &[&str]) {
    let got = listed(help);
    for name in names {
        assert!(got.iter().any(|g| g == name), "{name} missing: {got:?}");
    }
    for name in absent {
        assert!(!got.iter().any(|g| g == name), "{name} listed: {got:?}");
    }
}

/// The number of members in a `/status` room: a count, or a list's length.
fn member_count(members: &Value) -> usize {
    match members {
        Value::Number(n) => usize::try_from(n.as_u64().unwrap()).unwrap(),
        Value::Array(list) => list.len(),
        other => panic!("members is neither a count nor a list: {other}"),
    }
}

/// The user ids in a room's member list, over REST as `user`.
async fn member_ids(server: &TestServer, user: &str, room: &str) -> Vec<String> {
    let (status, list) = server
        .api(user)
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates a room over REST as `owner` with `body`; returns its id.
async fn create_room(server: &TestServer, owner: &str, body: Value) -> String {
    let (status, room) = server.api(owner).post("/api/v1/rooms", body).await;
    assert!(status.is_success(), "{status} {room}");
    room["id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// What a command is.

/// `/help` is answered with `command_result` to the calling connection only
/// (not to the room, not to the caller's other connections), echoing the
/// `req_id`, listing built-ins with descriptions one per line, and nothing
/// is stored.
#[tokio::test]
async fn help_answers_the_calling_connection_only_and_stores_nothing() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    let mut alice_again = server.ws("alice").await;
    alice_again.subscribe(&room).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;

    let (help, before) = command_seeing(&mut alice, &room, "/help").await;
    assert_only_presence(&before);
    assert_ok(&help, "help");
    let commands = help["data"]["commands"].as_array().unwrap();
    assert!(!commands.is_empty(), "{help}");
    let text = help["text"].as_str().unwrap();
    for c in commands {
        let (name, description) = (c["name"].as_str().unwrap(), c["description"].as_str());
        let description = description.unwrap_or_else(|| panic!("no description: {c}"));
        assert_eq!(c["source"], "builtin", "no app commands here: {c}");
        let line = format!("/{name} — {description}");
        assert!(text.lines().any(|l| l == line), "{line:?} not in {text:?}");
    }
    assert_lists(
        &help,
        &["help", "status", "rooms", "topic", "invite", "me"],
        &[],
    );

    bob.expect_silence_but_presence(QUIET).await;
    alice_again.expect_silence_but_presence(QUIET).await;
    alice.expect_silence_but_presence(QUIET).await;
    assert_eq!(server.last_seq("alice", &room).await, 0, "nothing stored");
}

/// Only `/` + a word of 1–32 letters, digits, `_`, `-` followed by the end
/// or a blank is a command, matched case-insensitively and reported
/// lower-cased; everything else is an ordinary message, and `//` escapes
/// one slash.
#[tokio::test]
async fn only_a_slash_and_a_command_word_make_a_command_and_double_slash_escapes() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;

    let help = command(&mut alice, &room, "/HeLp").await;
    assert_ok(&help, "help");
    let status = command(&mut alice, &room, "/Status\tof things").await;
    assert_ok(&status, "status");

    let word33 = format!("/{}", "a".repeat(33));
    let plain = [
        "/path/to x",
        "/",
        "/ hi",
        " /help",
        "/help!",
        "/hé",
        word33.as_str(),
    ];
    for text in plain {
        let (ack, _) = send_text(&mut alice, &room, text).await;
        assert_eq!(ack["type"], "message_ack", "{text:?} is a message: {ack}");
    }
    let (ack, _) = send_text(&mut alice, &room, "//help me").await;
    assert_eq!(ack["type"], "message_ack", "{ack}");

    let mut want: Vec<String> = plain.iter().map(|t| (*t).to_owned()).collect();
    want.push("/help me".to_owned());
    assert_eq!(contents(&server, "bob", &room).await, want);
}

/// An unknown `/word` runs as a command that fails with `not_found`,
/// naming the word as typed (lower-cased); nothing is stored.
#[tokio::test]
async fn an_unknown_command_fails_with_not_found_and_stores_nothing() {
    let server = server().await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    let result = command(&mut alice, &room, "/frobnicate the widgets").await;
    assert_refused(&result, "frobnicate", "not_found");
    let result = command(&mut alice, &room, "/Frob").await;
    assert_refused(&result, "frob", "not_found");
    assert_eq!(server.last_seq("alice", &room).await, 0);
}

/// A command is checked like a send before it runs: no room, an unknown
/// room, a room the caller is not in and a line longer than a message may
/// be are `error` frames, not results.
#[tokio::test]
async fn a_command_to_a_bad_room_is_an_error_frame() {
    let server = server().await;
    let room = server.room("alice", &[]).await;
    let mut mallory = server.ws("mallory").await;
    mallory
        .expect_error(
            json!({"type": "send_message", "content": "/help"}),
            "invalid_field",
        )
        .await;
    mallory
        .expect_error(
            json!({"type": "send_message", "room_id": "ghost", "content": "/help"}),
            "not_found",
        )
        .await;
    let refused = mallory
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "/help"}),
            "forbidden",
        )
        .await;
    assert_eq!(refused["room_id"], room.as_str());
    // A line longer than a message may be is refused before it runs, as a
    // send would be.
    let mut alice = server.ws("alice").await;
    let long = format!(
        "/help {}",
        "x".repeat(server.config.limits.max_message_length)
    );
    alice
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": long}),
            "message_too_long",
        )
        .await;
}

/// Commands count against the per-user message rate with sends: past the
/// burst both are refused with `error` `rate_limited`.
#[tokio::test]
async fn commands_use_up_the_message_rate() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.messages_per_minute = 1;
        c.rate_limit.burst = 2;
    })
    .await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "one").await;
    assert_ok(&command(&mut alice, &room, "/help").await, "help");
    for text in ["/help", "/status", "two"] {
        let refused = alice
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": text}),
                "rate_limited",
            )
            .await;
        assert!(refused["retry_after_ms"].is_u64(), "{refused}");
    }
    assert_eq!(contents(&server, "alice", &room).await, ["one"]);
}

// ---------------------------------------------------------------------------
// Built-ins.

/// `/help` lists what the caller may run here: `kick` for the room's owner
/// and admins and global admins, `stats` for global admins only, `clear`
/// only in assistant rooms.
#[tokio::test]
async fn help_lists_only_what_the_caller_may_run_in_this_room() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let mut root = ws_as(&server, "root", "admin").await;

    let owner = command(&mut alice, &room, "/help").await;
    assert_lists(
        &owner,
        &["help", "status", "kick", "invite"],
        &["stats", "clear"],
    );
    let member = command(&mut bob, &room, "/help").await;
    assert_lists(
        &member,
        &["help", "status", "invite", "me"],
        &["kick", "stats", "clear"],
    );
    let admin = command(&mut root, &room, "/help").await;
    assert_lists(&admin, &["help", "kick", "stats"], &["clear"]);
    assert_eq!(entry(&admin, "stats")["source"], "builtin");

    let help_desk = create_room(
        &server,
        "alice",
        json!({"name": "help", "room_type": "assistant"}),
    )
    .await;
    let there = command(&mut alice, &help_desk, "/help").await;
    assert_lists(&there, &["clear"], &[]);
}

/// `/status` describes the caller (global role), this connection and the
/// room as the caller sees it (room role, seq, unread, members).
#[tokio::test]
async fn status_describes_the_caller_the_connection_and_the_room() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    server.ws("bob").await.send_message(&room, "hi").await;
    let (mut alice, hello) = connect(&server, &token(&server, "alice", Some("Alice"), None)).await;

    let status = command(&mut alice, &room, "/status").await;
    assert_ok(&status, "status");
    let data = &status["data"];
    assert_eq!(
        data["user"],
        json!({"id": "alice", "name": "Alice", "role": "member"}),
        "{status}"
    );
    assert_eq!(data["connection"]["id"], hello["connection_id"], "{status}");
    assert_eq!(data["connection"]["endpoint"], "/ws", "{status}");
    let r = &data["room"];
    assert_eq!(r["id"], room.as_str(), "{status}");
    assert_eq!(r["name"], "test room");
    assert_eq!(r["type"], "group");
    assert_eq!(r["role"], "owner");
    assert_eq!(r["last_seq"], 1);
    assert_eq!(r["unread_count"], 1);
    assert_eq!(r["closed"], false);
    assert_eq!(member_count(&r["members"]), 2, "{status}");

    // A global admin may look at a room it is not in: no room role.
    let mut root = ws_as(&server, "root", "admin").await;
    let status = command(&mut root, &room, "/status").await;
    assert_ok(&status, "status");
    assert_eq!(status["data"]["user"]["role"], "admin");
    assert!(status["data"]["room"]["role"].is_null(), "{status}");
}

/// `/rooms` lists the caller's rooms as `GET /api/v1/rooms` does, newest
/// activity first; `/sessions` is the same under its own name.
#[tokio::test]
async fn rooms_lists_the_callers_rooms_newest_first_and_sessions_is_its_alias() {
    let server = server().await;
    let first = server.room("alice", &[]).await;
    let second = server.room("alice", &[]).await;
    server.room("bob", &[]).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&first, "bump").await;

    let (_, listed_rest) = server.api("alice").get("/api/v1/rooms").await;
    let rest_ids: Vec<Value> = listed_rest["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(rest_ids, [json!(first), json!(second)]);
    for (text, name) in [("/rooms", "rooms"), ("/sessions", "sessions")] {
        let result = command(&mut alice, &second, text).await;
        assert_ok(&result, name);
        let rooms = result["data"]["rooms"].as_array().unwrap();
        let ids: Vec<Value> = rooms.iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, rest_ids, "{result}");
        assert_eq!(rooms[0]["last_seq"], 1, "{result}");
        assert_eq!(rooms[0]["last_message_content"], "bump", "{result}");
    }
}

/// `/stats` is for global admins, who get `GET /api/v1/stats`'s object;
/// anyone else gets `forbidden`.
#[tokio::test]
async fn stats_is_for_global_admins_only() {
    let server = server().await;
    let room = server.room("alice", &["root"]).await;
    let mut alice = server.ws("alice").await;
    alice.send_message(&room, "one").await;
    let refused = command(&mut alice, &room, "/stats").await;
    assert_refused(&refused, "stats", "forbidden");

    let mut root = ws_as(&server, "root", "admin").await;
    let stats = command(&mut root, &room, "/stats").await;
    assert_ok(&stats, "stats");
    let (_, rest) = server.server_api().get("/api/v1/stats").await;
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&stats["data"]), keys(&rest), "{stats}");
    assert_eq!(stats["data"]["messages_stored"], 1, "{stats}");
    assert_eq!(stats["data"]["rooms"], 1, "{stats}");
}

/// `/topic` alone reads the topic (anyone); `/topic TEXT` sets
/// `metadata.topic` keeping the other keys, for the room's owners and
/// admins and global admins only, and every member hears `room_updated`.
#[tokio::test]
async fn topic_is_read_by_members_and_set_by_room_admins_with_room_updated() {
    let server = server().await;
    let room = create_room(
        &server,
        "alice",
        json!({"name": "job", "members": ["bob", "carol"], "metadata": {"stage": 2}}),
    )
    .await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;

    let read = command(&mut bob, &room, "/topic").await;
    assert_ok(&read, "topic");
    assert_eq!(read["data"], json!({"topic": null}), "{read}");
    let refused = command(&mut bob, &room, "/topic Mine now").await;
    assert_refused(&refused, "topic", "forbidden");
    assert_eq!(
        server.room_as("alice", &room).await["metadata"],
        json!({"stage": 2})
    );

    let (set, mut seen) = command_seeing(&mut alice, &room, "/topic Deep clean, Monday").await;
    assert_ok(&set, "topic");
    assert_eq!(set["data"], json!({"topic": "Deep clean, Monday"}), "{set}");
    let mut nothing_yet = Vec::new();
    for (ws, seen) in [(&mut alice, &mut seen), (&mut bob, &mut nothing_yet)] {
        let updated = event(ws, seen, "room_updated").await;
        assert_eq!(updated["room_id"], room.as_str(), "{updated}");
        assert_eq!(
            updated["updates"]["metadata"]["topic"],
            "Deep clean, Monday"
        );
        assert_eq!(updated["updates"]["metadata"]["stage"], 2, "{updated}");
    }
    assert_eq!(
        server.room_as("bob", &room).await["metadata"],
        json!({"stage": 2, "topic": "Deep clean, Monday"})
    );
    let read = command(&mut bob, &room, "/topic").await;
    assert_eq!(
        read["data"],
        json!({"topic": "Deep clean, Monday"}),
        "{read}"
    );

    // A room admin and a global admin (not in the room) may set it too.
    let (status, _) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "carol", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut carol = server.ws("carol").await;
    assert_ok(&command(&mut carol, &room, "/topic Tuesday").await, "topic");
    let mut root = ws_as(&server, "root", "admin").await;
    assert_ok(
        &command(&mut root, &room, "/topic Wednesday").await,
        "topic",
    );
    assert_eq!(
        server.room_as("bob", &room).await["metadata"]["topic"],
        "Wednesday"
    );
}

/// `/invite USER` lets a member who may write add USER, who hears
/// `room_added`; viewers, direct rooms, reserved ids and a missing USER are
/// refused and add nobody.
#[tokio::test]
async fn invite_adds_a_member_and_is_refused_to_viewers_in_direct_rooms_and_for_reserved_ids() {
    let server = server().await;
    let room = server.room("alice", &["bob", "gwen"]).await;
    let (status, _) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "vic", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut bob = server.ws("bob").await;
    let mut carol = server.ws("carol").await;

    let invited = command(&mut bob, &room, "/invite carol").await;
    assert_ok(&invited, "invite");
    assert_eq!(invited["data"]["member"]["user_id"], "carol", "{invited}");
    assert_eq!(invited["data"]["member"]["role"], "member", "{invited}");
    let added = carol.recv_type("room_added").await;
    assert_eq!(added["room_id"], room.as_str(), "{added}");
    assert!(
        member_ids(&server, "alice", &room)
            .await
            .contains(&"carol".to_owned())
    );

    for text in [
        "/invite",
        "/invite   ",
        "/invite system",
        "/invite assistant",
    ] {
        let refused = command(&mut bob, &room, text).await;
        assert_refused(&refused, "invite", "invalid_field");
    }
    let mut vic = server.ws("vic").await;
    let refused = command(&mut vic, &room, "/invite dora").await;
    assert_refused(&refused, "invite", "forbidden");
    let mut gwen = ws_as(&server, "gwen", "viewer").await;
    let refused = command(&mut gwen, &room, "/invite dora").await;
    assert_refused(&refused, "invite", "forbidden");

    let direct = create_room(
        &server,
        "alice",
        json!({"room_type": "direct", "members": ["bob"]}),
    )
    .await;
    let refused = command(&mut bob, &direct, "/invite carol").await;
    assert_refused(&refused, "invite", "forbidden");

    let members = member_ids(&server, "alice", &room).await;
    for nobody in ["dora", "system", "assistant"] {
        assert!(!members.contains(&nobody.to_owned()), "{members:?}");
    }
    assert_eq!(member_ids(&server, "alice", &direct).await.len(), 2);
    assert_eq!(server.last_seq("alice", &room).await, 0, "nothing stored");
}

/// `/kick USER` is for the room's owners and admins and global admins: the
/// kicked user hears `room_removed`; a plain member is refused, a
/// non-member is `not_found`, reserved ids and a missing USER
/// `invalid_field`.
#[tokio::test]
async fn kick_removes_a_member_for_room_admins_only() {
    let server = server().await;
    let room = server.room("alice", &["bob", "carol", "dave"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws("bob").await;
    let mut carol = server.ws("carol").await;

    let refused = command(&mut bob, &room, "/kick carol").await;
    assert_refused(&refused, "kick", "forbidden");
    assert!(
        member_ids(&server, "alice", &room)
            .await
            .contains(&"carol".to_owned())
    );
    carol.expect_silence_but_presence(QUIET).await;

    assert_ok(&command(&mut alice, &room, "/kick carol").await, "kick");
    let removed = carol.recv_type("room_removed").await;
    assert_eq!(removed["room_id"], room.as_str(), "{removed}");
    assert!(
        !member_ids(&server, "alice", &room)
            .await
            .contains(&"carol".to_owned())
    );

    let again = command(&mut alice, &room, "/kick carol").await;
    assert_refused(&again, "kick", "not_found");
    for text in ["/kick", "/kick assistant", "/kick system"] {
        let refused = command(&mut alice, &room, text).await;
        assert_refused(&refused, "kick", "invalid_field");
    }

    // A room admin may kick, and so may a global admin from outside.
    let (status, _) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            json!({"user_id": "bob", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ok(&command(&mut bob, &room, "/kick dave").await, "kick");
    let mut root = ws_as(&server, "root", "admin").await;
    assert_ok(&command(&mut root, &room, "/kick bob").await, "kick");
    assert_eq!(member_ids(&server, "alice", &room).await, ["alice"]);
}

/// `/clear` in an assistant room ends the session (closed, with
/// `room_updated {closed: true}`); anywhere else, without an app command of
/// that name, it is `invalid_field` and closes nothing.
#[tokio::test]
async fn clear_ends_an_assistant_session_and_is_invalid_elsewhere() {
    let server = server().await;
    let group = server.room("alice", &[]).await;
    let session = create_room(
        &server,
        "alice",
        json!({"name": "help", "room_type": "assistant"}),
    )
    .await;
    let mut alice = server.ws("alice").await;

    let refused = command(&mut alice, &group, "/clear").await;
    assert_refused(&refused, "clear", "invalid_field");
    assert_eq!(server.room_as("alice", &group).await["closed"], false);

    let (cleared, mut seen) = command_seeing(&mut alice, &session, "/clear").await;
    assert_ok(&cleared, "clear");
    assert_eq!(cleared["data"], json!({"session_id": session}), "{cleared}");
    let updated = event(&mut alice, &mut seen, "room_updated").await;
    assert_eq!(updated["room_id"], session.as_str(), "{updated}");
    assert_eq!(updated["updates"]["closed"], true, "{updated}");
    assert_eq!(server.room_as("alice", &session).await["closed"], true);
    assert_eq!(
        server.last_seq("alice", &session).await,
        0,
        "nothing stored"
    );
}

/// `/me TEXT` is a send: stored as TEXT with `metadata.action` (the send's
/// other metadata kept), answered with `message_ack` and `new_message`, no
/// `command_result`; `/me` with nothing after it is `empty_message`.
#[tokio::test]
async fn me_stores_an_action_message_answered_like_a_send() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;

    let (ack, before) = exchange(
        &mut alice,
        json!({"type": "send_message", "room_id": room, "content": "/me waves",
               "metadata": {"mood": "sunny"}, "client_msg_id": "me-1", "req_id": "me"}),
    )
    .await;
    assert_only_presence(&before);
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["client_msg_id"], "me-1");
    for ws in [&mut alice, &mut bob] {
        let shown = ws.recv_type("new_message").await;
        assert_eq!(shown["message"]["content"], "waves", "{shown}");
        assert_eq!(shown["message"]["message_type"], "text");
        assert_eq!(
            shown["message"]["metadata"],
            json!({"mood": "sunny", "action": true})
        );
    }
    alice.expect_silence_but_presence(QUIET).await;

    for text in ["/me", "/me    "] {
        alice
            .expect_error(
                json!({"type": "send_message", "room_id": room, "content": text}),
                "empty_message",
            )
            .await;
    }
    let stored = server.all_messages("bob", &room).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["content"], "waves");
    assert_eq!(stored[0]["metadata"]["action"], true);
}

// ---------------------------------------------------------------------------
// Other dialects.

/// Joins `{base}/{room}/` as `user` (token in the query) and waits until
/// the join is done (its `pong`).
async fn join(server: &TestServer, base: &str, room: &str, user: &str) -> WsClient {
    let mut client = server
        .ws_raw(&format!("{base}/{room}/?token={}", server.token(user)), &[])
        .await;
    client
        .send(json!({"type": "ping", "req_id": "joined"}))
        .await;
    let pong = client.recv_type("pong").await;
    assert_eq!(pong["req_id"], "joined", "{pong}");
    client
}

/// A dialect's text frame carrying `text` and `req_id`.
fn dialect_frame(base: &str, text: &str, req_id: &str) -> Value {
    if base == CHAT {
        json!({"message": text, "type": "TEXT", "req_id": req_id})
    } else {
        json!({"type": "message", "content": text, "req_id": req_id})
    }
}

/// The room-scoped dialects run the same commands for their room, answered
/// to the caller alone with the unified `command_result`; `/me` there is a
/// send, and `/path/x` stays a message.
#[tokio::test]
async fn the_room_scoped_dialects_run_commands_for_their_room() {
    let server = server().await;
    for (base, id) in [(CHAT, "job-45"), (SESSIONS, "session-9")] {
        let room = server.room_with_id("ann", id, &["ben"]).await;
        let mut ann = join(&server, base, &room, "ann").await;
        let mut ben = join(&server, base, &room, "ben").await;

        ann.send(dialect_frame(base, "/help", "h-1")).await;
        let help = ann.recv_type("command_result").await;
        assert_result_frame(&help, &room);
        assert_ok(&help, "help");
        assert_eq!(help["req_id"], "h-1", "{help}");
        assert_lists(&help, &["help", "status", "kick"], &["stats", "clear"]);

        ann.send(dialect_frame(base, "/topic Belay practice", "t-1"))
            .await;
        let topic = ann.recv_type("command_result").await;
        assert_ok(&topic, "topic");
        assert_eq!(topic["data"], json!({"topic": "Belay practice"}));
        ann.send(dialect_frame(base, "/nope", "n-1")).await;
        let unknown = ann.recv_type("command_result").await;
        assert_refused(&unknown, "nope", "not_found");
        ben.expect_silence(QUIET).await;

        ann.send(dialect_frame(base, "/me ties in", "me-1")).await;
        ann.send(dialect_frame(base, "/path/x", "p-1")).await;
        for client in [&mut ann, &mut ben] {
            for want in ["ties in", "/path/x"] {
                let frame = client.recv_type("message").await;
                let got = if base == CHAT {
                    &frame["message"]["message_text"]
                } else {
                    &frame["content"]
                };
                assert_eq!(got, want, "{base}: {frame}");
            }
        }
        let stored = server.all_messages("ann", &room).await;
        let texts: Vec<&str> = stored
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["ties in", "/path/x"], "{base}");
        assert_eq!(stored[0]["metadata"]["action"], true, "{base}");
        assert_eq!(
            server.room_as("ann", &room).await["metadata"]["topic"],
            "Belay practice"
        );
    }
}

/// On `/ws/assistant/` a signed-in user's `/help` and `/status` answer
/// `command_result` for the session, and `/clear` still answers
/// `session_closed`; none of them is stored.
#[tokio::test]
async fn the_assistant_endpoint_runs_commands_and_clear_still_closes_the_session() {
    let provider = FakeProvider::start(Behaviour::Plain("Hello!")).await;
    let base_url = provider.base_url.clone();
    let server = TestServer::start_with(move |c| {
        unlimited(c);
        c.assistant.base_url = base_url;
    })
    .await;
    let mut ws = server
        .ws_raw(
            "/ws/assistant/",
            &[("authorization", format!("Bearer {}", server.token("alice")))],
        )
        .await;
    let started = ws.recv_type("session_started").await;
    let session = started["session_id"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "message", "content": "Hi"})).await;
    loop {
        let frame = ws.recv_type("message").await;
        if frame["message"]["sender_type"] == "assistant" {
            break;
        }
    }

    ws.send(json!({"type": "message", "content": "/help", "req_id": "h-1"}))
        .await;
    let help = ws.recv_type("command_result").await;
    assert_result_frame(&help, &session);
    assert_ok(&help, "help");
    assert_eq!(help["req_id"], "h-1");
    assert_lists(&help, &["help", "clear"], &["stats"]);
    ws.send(json!({"type": "message", "content": "/status"}))
        .await;
    let status = ws.recv_type("command_result").await;
    assert_ok(&status, "status");
    assert_eq!(status["data"]["room"]["type"], "assistant", "{status}");

    ws.send(json!({"type": "message", "content": "/clear"}))
        .await;
    let closed = ws.recv_type("session_closed").await;
    assert_eq!(closed["session_id"], session.as_str());
    assert_eq!(contents(&server, "alice", &session).await, ["Hi", "Hello!"]);
}

// ---------------------------------------------------------------------------
// REST.

/// `POST /api/v1/rooms/{id}/commands` runs a command as the caller and
/// answers 200 with the outcome whatever it is (no `type`, no `req_id`,
/// `connection` null); text that is no command is 422, and the room is
/// checked first (401, 403, 404). Nothing is stored.
#[tokio::test]
async fn commands_over_rest_answer_200_with_the_outcome() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    let path = format!("/api/v1/rooms/{room}/commands");
    let run = |user: &str, text: &str| {
        let api = server.api(user);
        let (path, body) = (path.clone(), json!({"text": text}));
        async move { api.post(&path, body).await }
    };

    let (status, help) = run("alice", "/help").await;
    assert_eq!(status, StatusCode::OK, "{help}");
    assert_result_body(&help);
    assert_ok(&help, "help");
    assert!(
        help.get("type").is_none() && help.get("req_id").is_none(),
        "{help}"
    );
    assert_lists(&help, &["help", "kick"], &["stats"]);

    let (status, result) = run("alice", "/status").await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_ok(&result, "status");
    assert!(result["data"]["connection"].is_null(), "{result}");
    assert_eq!(result["data"]["user"]["id"], "alice");
    assert_eq!(result["data"]["room"]["id"], room.as_str());

    for (text, name, code) in [
        ("/stats", "stats", "forbidden"),
        ("/nope", "nope", "not_found"),
    ] {
        let (status, result) = run("bob", text).await;
        assert_eq!(status, StatusCode::OK, "{text}: {result}");
        assert_result_body(&result);
        assert_refused(&result, name, code);
    }

    for text in ["hello", "//help", " /help"] {
        let (status, body) = run("alice", text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    }
    let (status, _) = server
        .anonymous_api()
        .post(&path, json!({"text": "/help"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = run("mallory", "/help").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = server
        .api("alice")
        .post("/api/v1/rooms/ghost/commands", json!({"text": "/help"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(server.last_seq("alice", &room).await, 0, "nothing stored");

    // A command that changes the room sends the usual events.
    let mut bob = server.ws("bob").await;
    let (status, topic) = run("alice", "/topic Over REST").await;
    assert_eq!(status, StatusCode::OK, "{topic}");
    assert_ok(&topic, "topic");
    let updated = bob.recv_type("room_updated").await;
    assert_eq!(updated["updates"]["metadata"]["topic"], "Over REST");
}

/// `/me` over REST stores the action message, fans it out, and answers
/// `data.message` with the stored message.
#[tokio::test]
async fn me_over_rest_stores_the_message_and_returns_it() {
    let server = server().await;
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let (status, result) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/commands"),
            json!({"text": "/me waves"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_ok(&result, "me");
    let message = &result["data"]["message"];
    assert_eq!(message["content"], "waves", "{result}");
    assert_eq!(message["metadata"]["action"], true, "{result}");
    assert_eq!(message["seq"], 1, "{result}");
    assert_eq!(message["sender"]["id"], "alice", "{result}");
    let shown = bob.recv_type("new_message").await;
    assert_eq!(shown["message"]["id"], message["id"], "{shown}");
    let stored = server.all_messages("bob", &room).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], message["id"]);
}

// ---------------------------------------------------------------------------
// App commands.

/// An app command `name` for `roles`, POSTed to `url` with a 2 s timeout.
fn app_command(name: &str, description: &str, roles: &[&str], url: &str) -> CommandConfig {
    CommandConfig {
        name: name.into(),
        description: description.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        url: Some(url.to_owned()),
        timeout_s: 2,
        ..Default::default()
    }
}

/// A server with `commands`, signing with the receiver's secret, with no
/// rate limits in the way; `tweak` runs last.
async fn app_server(commands: Vec<CommandConfig>, tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(move |c| {
        unlimited(c);
        c.webhook.secret = receiver::secret();
        c.commands.extend(commands);
        tweak(c);
    })
    .await
}

/// A room of alice's with `ann` (the analyst) and `bob`.
async fn team_room(server: &TestServer) -> String {
    server.room("alice", &["ann", "bob"]).await
}

/// `ann`, named Ann, with the custom global role `analyst`.
async fn analyst(server: &TestServer) -> WsClient {
    connect(server, &token(server, "ann", Some("Ann"), Some("analyst")))
        .await
        .0
}

/// An app command is POSTed to its URL as JSON, signed per Standard
/// Webhooks (verified by the receiver), with the command, args, text,
/// caller, room and `req_id`; the app's `ok`, `text` and `data` come back
/// as `command_result`, and nothing is stored.
#[tokio::test]
async fn an_app_command_is_posted_signed_and_its_answer_relayed() {
    let app = Receiver::start(Reply::Ok(
        json!({"text": "Reloaded 7 logs", "data": {"reloaded": 7}}),
    ))
    .await;
    let server = app_server(
        vec![app_command(
            "reload",
            "Reload logs",
            &["admin", "analyst"],
            &app.url(),
        )],
        |_| {},
    )
    .await;
    let room = team_room(&server).await;
    let mut ann = analyst(&server).await;

    let (result, _) = exchange(
        &mut ann,
        json!({"type": "send_message", "room_id": room, "content": "/reload   7", "req_id": "r-7"}),
    )
    .await;
    assert_result_frame(&result, &room);
    assert_ok(&result, "reload");
    assert_eq!(result["text"], "Reloaded 7 logs");
    assert_eq!(result["data"], json!({"reloaded": 7}));

    let requests = app.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let call = &requests[0];
    assert!(call.signature_valid, "bad signature: {call:?}");
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/commands")
    );
    assert!(
        call.header("content-type")
            .unwrap()
            .starts_with("application/json"),
        "{call:?}"
    );
    let sent_at: u64 = call.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(
        now_s().abs_diff(sent_at) <= 60,
        "webhook-timestamp {sent_at}"
    );
    assert!(!call.header("webhook-id").unwrap().is_empty());
    let body = &call.body;
    assert_eq!(body["command"], "reload", "{body}");
    assert_eq!(body["args"], "7", "{body}");
    assert_eq!(body["text"], "/reload   7", "{body}");
    assert_eq!(
        body["user"],
        json!({"id": "ann", "name": "Ann", "role": "analyst"}),
        "{body}"
    );
    assert_eq!(body["room_id"], room.as_str(), "{body}");
    assert_eq!(body["req_id"], "r-7", "{body}");

    // Without a req_id the app gets null; each call has its own id.
    ann.send(json!({"type": "send_message", "room_id": room, "content": "/RELOAD"}))
        .await;
    let result = ann.recv_type("command_result").await;
    assert_ok(&result, "reload");
    let requests = app.requests();
    assert_eq!(requests.len(), 2);
    let second = &requests[1];
    assert!(second.signature_valid, "{second:?}");
    assert!(second.body["req_id"].is_null(), "{}", second.raw);
    assert_eq!(second.body["args"], "", "{}", second.raw);
    assert_ne!(second.header("webhook-id"), call.header("webhook-id"));
    assert_eq!(server.last_seq("alice", &room).await, 0, "nothing stored");
}

/// A secret without `whsec_` signs with its UTF-8 bytes.
#[tokio::test]
async fn a_plain_secret_signs_with_its_own_bytes() {
    let secret = "a plain shared secret";
    let app = Receiver::start_with_secret(secret, Reply::Ok(json!({"text": "fine"}))).await;
    let server = app_server(
        vec![app_command("reload", "Reload", &[], &app.url())],
        |c| {
            c.webhook.secret = secret.into();
        },
    )
    .await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    assert_ok(&command(&mut alice, &room, "/reload").await, "reload");
    let requests = app.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].signature_valid, "{:?}", requests[0]);
}

/// The app's `post` is stored in the room as a `system` message from
/// `system`, and every subscriber gets it as `new_message`.
#[tokio::test]
async fn an_app_answer_may_post_a_system_message_to_the_room() {
    let app = Receiver::start(Reply::Ok(
        json!({"text": "Done", "post": "Logs were reloaded by Ann"}),
    ))
    .await;
    let server = app_server(
        vec![app_command(
            "reload",
            "Reload logs",
            &["analyst"],
            &app.url(),
        )],
        |_| {},
    )
    .await;
    let room = team_room(&server).await;
    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let mut ann = analyst(&server).await;
    let result = command(&mut ann, &room, "/reload").await;
    assert_ok(&result, "reload");
    assert_eq!(result["text"], "Done");

    let posted = bob.recv_type("new_message").await;
    let message = &posted["message"];
    assert_eq!(message["content"], "Logs were reloaded by Ann", "{posted}");
    assert_eq!(message["message_type"], "system");
    assert_eq!(message["sender"]["id"], "system");
    let stored = server.all_messages("bob", &room).await;
    assert_eq!(stored.len(), 1, "only the post: {stored:?}");
    assert_eq!(stored[0]["id"], message["id"]);
}

/// A caller whose global role is not in the command's `roles` is refused
/// with `forbidden` and the app is never called; global admins and the
/// server key always pass.
#[tokio::test]
async fn a_role_not_listed_is_refused_without_calling_the_app() {
    let app = Receiver::start(Reply::Ok(json!({"text": "Reloaded"}))).await;
    let server = app_server(
        vec![app_command(
            "reload",
            "Reload logs",
            &["analyst"],
            &app.url(),
        )],
        |_| {},
    )
    .await;
    let room = team_room(&server).await;
    let mut bob = server.ws("bob").await;
    let refused = command(&mut bob, &room, "/reload").await;
    assert_refused(&refused, "reload", "forbidden");
    let mut viewer = ws_as(&server, "bob", "viewer").await;
    let refused = command(&mut viewer, &room, "/reload").await;
    assert_refused(&refused, "reload", "forbidden");
    assert!(app.requests().is_empty(), "{:?}", app.requests());

    let mut root = ws_as(&server, "root", "admin").await;
    assert_ok(&command(&mut root, &room, "/reload").await, "reload");
    let (status, result) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room}/commands"),
            json!({"text": "/reload"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_ok(&result, "reload");
    let requests = app.requests();
    let callers: Vec<&Value> = requests.iter().map(|r| &r.body["user"]["id"]).collect();
    assert_eq!(callers, [&json!("root"), &json!("system")], "{requests:?}");
    assert_eq!(requests[0].body["user"]["role"], "admin");
}

/// An error status, bad JSON, an answer past `timeout_s` or over 256 KiB,
/// a `post` too long to store and an app that cannot be reached all answer
/// `ok: false`, `upstream_error`, storing nothing; an app's own `ok: false`
/// is relayed with its text and no code; a `post` that is not a string is
/// ignored.
#[tokio::test]
async fn app_failures_answer_upstream_error() {
    let failing = Receiver::start(Reply::Status(500)).await;
    let garbled = Receiver::start(Reply::NotJson).await;
    let sluggish = Receiver::start(Reply::Slow(Duration::from_secs(5))).await;
    let declining = Receiver::start(Reply::Ok(json!({"ok": false, "text": "No such log"}))).await;
    // Over the 256 KiB confab reads of an answer.
    let huge = Receiver::start(Reply::Ok(json!({"text": "x".repeat(300 * 1024)}))).await;
    // A post longer than a message may be is not stored: upstream_error.
    let wordy = Receiver::start(Reply::Ok(json!({"text": "done", "post": "y".repeat(5000)}))).await;
    // A post that is not a string is ignored; the answer stands.
    let odd = Receiver::start(Reply::Ok(json!({"text": "done", "post": {"not": "text"}}))).await;
    let gone = receiver::unreachable_url().await;
    let mut slow = app_command("sluggish", "Too slow", &[], &sluggish.url());
    slow.timeout_s = 1;
    let server = app_server(
        vec![
            app_command("failing", "Fails", &[], &failing.url()),
            app_command("garbled", "Not JSON", &[], &garbled.url()),
            slow,
            app_command("gone", "Nobody there", &[], &gone),
            app_command("declining", "Says no", &[], &declining.url()),
            app_command("huge", "Too much", &[], &huge.url()),
            app_command("wordy", "Posts too much", &[], &wordy.url()),
            app_command("odd", "Posts an object", &[], &odd.url()),
        ],
        |_| {},
    )
    .await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    for name in ["failing", "garbled", "sluggish", "gone", "huge", "wordy"] {
        let result = command(&mut alice, &room, &format!("/{name} now")).await;
        assert_refused(&result, name, "upstream_error");
    }
    for app in [&failing, &garbled, &sluggish] {
        assert_eq!(app.requests().len(), 1, "the app was called once");
    }
    let declined = command(&mut alice, &room, "/declining").await;
    assert_eq!(declined["ok"], false, "{declined}");
    assert_eq!(declined["text"], "No such log", "{declined}");
    assert!(
        declined.get("code").is_none(),
        "the app's own no: {declined}"
    );
    let odd = command(&mut alice, &room, "/odd").await;
    assert_ok(&odd, "odd");
    assert_eq!(server.last_seq("alice", &room).await, 0, "nothing stored");
}

/// An alias runs the built-in it names, under the built-in's rules, and
/// reports the alias as the command; `/help` lists it only to those who
/// may run it, with the built-in's description when it has none.
#[tokio::test]
async fn an_alias_runs_the_builtin_under_its_rules_and_its_own_name() {
    let server = TestServer::start_with(|c| {
        c.commands.push(CommandConfig {
            name: "stat".into(),
            alias: Some("stats".into()),
            ..Default::default()
        });
    })
    .await;
    let room = server.room("alice", &["root"]).await;
    let mut alice = server.ws("alice").await;
    let refused = command(&mut alice, &room, "/stat").await;
    assert_refused(&refused, "stat", "forbidden");
    let mut root = ws_as(&server, "root", "admin").await;
    let stats = command(&mut root, &room, "/stat").await;
    assert_ok(&stats, "stat");
    assert_eq!(stats["data"]["rooms"], 1, "{stats}");
    assert!(stats["data"]["messages_stored"].is_u64(), "{stats}");
    // Listed to those who may run it, described by its built-in.
    let help = command(&mut root, &room, "/help").await;
    let stat = entry(&help, "stat");
    assert_eq!(stat["source"], "app", "{stat}");
    assert_eq!(
        stat["description"],
        entry(&help, "stats")["description"],
        "{help}"
    );
    let help = command(&mut alice, &room, "/help").await;
    assert_lists(&help, &["help"], &["stat", "stats"]);
}

/// `/help` lists the app commands each caller may run, with their
/// descriptions and `source: "app"`: a member, an analyst and an admin
/// each see a different list.
#[tokio::test]
async fn help_lists_app_commands_by_the_callers_role() {
    let app = Receiver::start(Reply::Ok(json!({"text": "ok"}))).await;
    let server = app_server(
        vec![
            app_command("reload", "Reload logs", &["admin", "analyst"], &app.url()),
            app_command("deploy", "Deploy the site", &[], &app.url()),
            app_command("audit", "Audit trail", &["admin"], &app.url()),
        ],
        |_| {},
    )
    .await;
    let room = team_room(&server).await;
    let mut bob = server.ws("bob").await;
    let mut ann = analyst(&server).await;
    let mut root = ws_as(&server, "root", "admin").await;

    let member = command(&mut bob, &room, "/help").await;
    assert_lists(&member, &["help", "deploy"], &["reload", "audit", "stats"]);
    let analyst_help = command(&mut ann, &room, "/help").await;
    assert_lists(&analyst_help, &["reload", "deploy"], &["audit", "stats"]);
    let reload = entry(&analyst_help, "reload");
    assert_eq!(reload["description"], "Reload logs", "{reload}");
    assert_eq!(reload["source"], "app", "{reload}");
    let text = analyst_help["text"].as_str().unwrap();
    assert!(text.lines().any(|l| l == "/reload — Reload logs"), "{text}");
    let admin = command(&mut root, &room, "/help").await;
    assert_lists(&admin, &["reload", "deploy", "audit", "stats"], &[]);
    assert!(app.requests().is_empty(), "/help calls no app");
}

/// Past `limits.max_app_commands_in_flight` calls in flight, another app
/// command fails at once with `upstream_error` without calling the app;
/// the call in flight still completes.
#[tokio::test]
async fn app_calls_in_flight_are_bounded() {
    let app = Receiver::start(Reply::Slow(Duration::from_secs(2))).await;
    let mut reload = app_command("reload", "Reload logs", &[], &app.url());
    reload.timeout_s = 10;
    let server = app_server(vec![reload], |c| c.limits.max_app_commands_in_flight = 1).await;
    let room = server.room("alice", &[]).await;
    let mut first = server.ws("alice").await;
    let mut second = server.ws("alice").await;

    first
        .send(json!({"type": "send_message", "room_id": room, "content": "/reload", "req_id": "first"}))
        .await;
    app.wait_for(1).await;
    let refused = command(&mut second, &room, "/reload").await;
    assert_refused(&refused, "reload", "upstream_error");
    assert_eq!(app.requests().len(), 1, "the app was not called again");
    let done = first.recv_type("command_result").await;
    assert_eq!(done["req_id"], "first");
    assert_ok(&done, "reload");
    assert_eq!(done["text"], "slow answer");
}

/// Outside assistant rooms `/clear` runs an app command of that name.
#[tokio::test]
async fn clear_runs_an_app_command_of_that_name_outside_assistant_rooms() {
    let app = Receiver::start(Reply::Ok(json!({"text": "Cleared the board"}))).await;
    let server = app_server(
        vec![app_command("clear", "Clear the board", &[], &app.url())],
        |_| {},
    )
    .await;
    let room = server.room("alice", &[]).await;
    let mut alice = server.ws("alice").await;
    let result = command(&mut alice, &room, "/clear").await;
    assert_ok(&result, "clear");
    assert_eq!(result["text"], "Cleared the board");
    let requests = app.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["command"], "clear");
    assert_eq!(server.room_as("alice", &room).await["closed"], false);
}
