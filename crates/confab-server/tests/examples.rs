//! The examples of `examples/` run against a live confab: each is the
//! socket code one app keeps in its front-end, run with Node.js's
//! `WebSocket` (the browser's API), and must see its own message come back
//! from the room while a `/ws` client in the same room sees it too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// The repository's `examples/` folder.
fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Runs `node examples/{file} {args…}` against `server` (`CONFAB_URL`)
/// with `env` set: the token and room, or whatever else the example reads.
async fn run_example(
    server: &TestServer,
    file: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut command = tokio::process::Command::new("node");
    // Node.js 20 has the browser's WebSocket behind a flag; 22 and later by default.
    if node_major().await < 22 {
        command.arg("--experimental-websocket");
    }
    let run = command
        .arg(examples_dir().join(file))
        .args(args)
        .env("CONFAB_URL", format!("ws://{}", server.addr))
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the example did not finish")
        .expect("node could not be started: the test command installs Node.js (scripts/test.sh)")
}

/// The major version of the `node` on PATH.
async fn node_major() -> u32 {
    let output = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await
        .expect("node is not installed: the test command installs it (scripts/test.sh)");
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("unreadable node version {version:?}"))
}

/// A token and a room, as the room examples read them.
fn in_room<'a>(token: &'a str, room: &'a str) -> [(&'static str, &'a str); 2] {
    [("CONFAB_TOKEN", token), ("CONFAB_ROOM", room)]
}

/// Asserts the example exited 0, and returns what it printed.
fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout.into_owned()
}

/// Asserts the example exited 0 and printed `expected`; `watcher`, a `/ws`
/// client subscribed to the room, must have seen `text` stored.
async fn check(output: &Output, expected: &str, watcher: &mut WsClient, text: &str) {
    let stdout = succeeded(output);
    assert!(
        stdout.contains(expected),
        "{expected:?} not in:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen = watcher.recv_type("new_message").await;
    assert_eq!(seen["message"]["content"], text);
}

#[tokio::test]
async fn the_job_conversations_example_talks_to_ws_clients() {
    let server = TestServer::start().await;
    let room = server.room_with_id("emp-1", "job-45", &["wrk-2"]).await;
    let mut watcher = server.ws("wrk-2").await;
    watcher.subscribe(&room).await;
    let token = server.token_with("emp-1", Some("Erin"), None, Duration::from_secs(600));
    let output = run_example(
        &server,
        "job-conversations.js",
        &in_room(&token, &room),
        &["Start Monday?"],
    )
    .await;
    check(
        &output,
        "sent as #1 in job-45 by Erin",
        &mut watcher,
        "Start Monday?",
    )
    .await;
    // A second run sees the first message in its history (`?history=20`).
    let output = run_example(
        &server,
        "job-conversations.js",
        &in_room(&token, &room),
        &["8am"],
    )
    .await;
    check(&output, "sent as #2 in job-45 by Erin", &mut watcher, "8am").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(r#""message_text":"Start Monday?""#),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_send_buddy_example_talks_to_ws_clients_with_a_simplejwt_token() {
    let server = TestServer::start().await;
    // Send Buddy's own users are numbered; its tokens are SimpleJWT access
    // tokens signed with the shared key, naming the user as `user_id`.
    let room = server.room_with_id("41", "session-7", &["42"]).await;
    let mut watcher = server.ws("41").await;
    watcher.subscribe(&room).await;
    let exp = common::now_s() + 600;
    let token = server.token_from_claims(&serde_json::json!({
        "token_type": "access", "exp": exp, "iat": exp - 600, "jti": "a1b2", "user_id": 42
    }));
    let output = run_example(
        &server,
        "send-buddy.js",
        &in_room(&token, &room),
        &["On belay?"],
    )
    .await;
    check(&output, "by 42", &mut watcher, "On belay?").await;
}

#[tokio::test]
async fn the_multiplexed_example_subscribes_sends_and_lists_rooms() {
    let server = TestServer::start().await;
    let room = server.room_with_id("alice", "clean-3", &["bob"]).await;
    let mut watcher = server.ws("bob").await;
    watcher.subscribe(&room).await;
    let token = server.token("alice");
    let output = run_example(
        &server,
        "multiplexed.js",
        &in_room(&token, &room),
        &["On my way"],
    )
    .await;
    check(&output, "stored as #1", &mut watcher, "On my way").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("clean-3: 0 unread, last: On my way"),
        "{stdout}"
    );
}
