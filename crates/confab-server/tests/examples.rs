//! The examples of `examples/` run against a live confab: each is the
//! socket code one app keeps in its front-end, run with Node.js's
//! `WebSocket` (the browser's API), and must see its own message come back
//! from the room while a `/ws` client in the same room sees it too. The
//! help desk's asks the assistant (a provider stand-in), closes and rates
//! its session, and comes back to an open one with its visitor token. The
//! log-analysis one runs slash commands by role against its own stand-in
//! for the app's back-end (`examples/log-analysis-backend.js`), which
//! verifies confab's signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::provider::{Behaviour, FakeProvider};
use common::{TestServer, WsClient};
use confab_server::config::CommandConfig;
use confab_server::signing::Signer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

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

/// Asserts `stdout` has each of `lines` as a whole line, in this order
/// (other lines may come between).
fn assert_lines_in_order(stdout: &str, lines: &[&str]) {
    let mut rest = stdout.lines();
    for line in lines {
        assert!(
            rest.any(|printed| printed == *line),
            "{line:?} missing or out of order in:\n{stdout}"
        );
    }
}

/// The value of the last `{key}: …` line of `stdout`.
fn printed<'a>(stdout: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{stdout}"))
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

/// The help desk's welcome and its provider's streamed answer.
const WELCOME: &str = "Hi, I'm Sophie. How can I help?";
const ANSWER: &str = "Use the link in the e-mail.";

/// A session's room and its stored messages' `(sender, content)`, read over
/// REST with the server key.
async fn session_room(server: &TestServer, session_id: &str) -> (Value, Vec<(String, String)>) {
    let api = server.server_api();
    let (status, room) = api.get(&format!("/api/v1/rooms/{session_id}")).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["room_type"], "assistant", "{room}");
    let (status, page) = api
        .get(&format!(
            "/api/v1/rooms/{session_id}/messages?after_seq=0&limit=100"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let messages = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let sender = m["sender"]["id"].as_str().unwrap();
            // Visitors are `anon-<uuid>`: shown as `anon`.
            let sender = if sender.starts_with("anon-") {
                "anon"
            } else {
                sender
            };
            (sender.to_owned(), m["content"].as_str().unwrap().to_owned())
        })
        .collect();
    (room, messages)
}

/// `(sender, content)` pairs, for comparing with [`session_room`].
fn said(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(who, what)| ((*who).to_owned(), (*what).to_owned()))
        .collect()
}

/// Runs `examples/help-desk.js` with `env`, asking `questions`; it must
/// exit 0. Returns what it printed.
async fn help_desk(server: &TestServer, env: &[(&str, &str)], questions: &[&str]) -> String {
    succeeded(&run_example(server, "help-desk.js", env, questions).await)
}

#[tokio::test]
async fn the_help_desk_example_asks_rates_and_comes_back_with_its_visitor_token() {
    let provider = FakeProvider::start(Behaviour::Stream(vec![
        "Use ",
        "the link ",
        "in the e-mail.",
    ]))
    .await;
    let base_url = provider.base_url.clone();
    let server = TestServer::start_with(move |c| {
        common::unlimited(c);
        c.auth.allow_anonymous = true;
        c.assistant.base_url = base_url;
        c.assistant.welcome = WELCOME.into();
        // The help desk allows 10 a minute; here one at a time and 20 a
        // minute, so that a second question right after an answer is
        // refused with a retry_after of at most 3 s (what the example
        // waits before asking again).
        c.rate_limit.anonymous_messages_per_minute = 20;
        c.rate_limit.anonymous_burst = 1;
    })
    .await;
    // A new visitor asks twice (the second time it is told to wait), then
    // rates and closes its session.
    let first = help_desk(&server, &[], &["How do I reset my password?", "Thanks!"]).await;
    let session = printed(&first, "session");
    assert!(!session.contains("resumed"), "{first}");
    printed(&first, "visitor_token");
    assert_lines_in_order(
        &first,
        &[
            &format!("welcome: {WELCOME}"),
            "you: How do I reset my password?",
            "Sophie is typing…",
            "… Use ",
            "… Use the link ",
            &format!("… {ANSWER}"),
            &format!("assistant: {ANSWER}"),
            "you: Thanks!",
            &format!("assistant: {ANSWER}"),
            &format!("closed: {session}"),
        ],
    );
    // Told once, in seconds, and the retry waited that long.
    let wait = printed(&first, "rate limited").trim_start_matches("retrying in ");
    assert!(["1 s", "2 s", "3 s"].contains(&wait), "seconds: {first}");
    assert_eq!(first.matches("rate limited").count(), 1, "{first}");
    let (room, messages) = session_room(&server, session).await;
    assert_eq!(room["closed"], true, "{room}");
    assert_eq!(
        messages,
        said(&[
            ("assistant", WELCOME),
            ("anon", "How do I reset my password?"),
            ("assistant", ANSWER),
            ("anon", "Thanks!"),
            ("assistant", ANSWER),
        ])
    );

    // Another visitor (told to wait too, perhaps: same address) leaves
    // without closing its session: it closes the tab…
    let left = help_desk(
        &server,
        &[("CONFAB_KEEP_OPEN", "1")],
        &["Can I move my booking?"],
    )
    .await;
    let open = printed(&left, "session").to_owned();
    let token = printed(&left, "visitor_token").to_owned();
    assert_lines_in_order(
        &left,
        &[
            &format!("welcome: {WELCOME}"),
            &format!("assistant: {ANSWER}"),
            &format!("left: {open}"),
        ],
    );
    let (room, _) = session_room(&server, &open).await;
    assert_eq!(room["closed"], false, "{room}");

    // …and comes back with the token it kept: the same session, its
    // history first, then a question more, a rating and the close.
    let back = help_desk(
        &server,
        &[("CONFAB_VISITOR_TOKEN", &token)],
        &["And cancel it?"],
    )
    .await;
    assert_lines_in_order(
        &back,
        &[
            &format!("session: {open} (resumed)"),
            &format!("history: assistant: {WELCOME}"),
            "history: user: Can I move my booking?",
            &format!("history: assistant: {ANSWER}"),
            "you: And cancel it?",
            &format!("assistant: {ANSWER}"),
            &format!("closed: {open}"),
        ],
    );
    printed(&back, "visitor_token"); // a fresh one, kept again
    let (room, messages) = session_room(&server, &open).await;
    assert_eq!(room["closed"], true, "{room}");
    assert_eq!(
        messages,
        said(&[
            ("assistant", WELCOME),
            ("anon", "Can I move my booking?"),
            ("assistant", ANSWER),
            ("anon", "And cancel it?"),
            ("assistant", ANSWER),
        ])
    );

    // The token of a closed session resumes nothing: a new session.
    let stale = help_desk(
        &server,
        &[("CONFAB_VISITOR_TOKEN", &token), ("CONFAB_KEEP_OPEN", "1")],
        &[],
    )
    .await;
    let fresh = printed(&stale, "session");
    assert!(fresh != open && !fresh.contains("resumed"), "{stale}");
    assert!(stale.contains(&format!("welcome: {WELCOME}")), "{stale}");
    // One this server did not sign is refused (4003): the page forgets it
    // and comes in as a new visitor.
    let foreign = common::token_signed_with(
        "another-secret",
        &serde_json::json!({
            "sub": "anon-x", "sid": open, "typ": "confab-visitor", "exp": common::now_s() + 60,
        }),
    );
    let refused = help_desk(
        &server,
        &[
            ("CONFAB_VISITOR_TOKEN", &foreign),
            ("CONFAB_KEEP_OPEN", "1"),
        ],
        &[],
    )
    .await;
    assert_lines_in_order(
        &refused,
        &[
            "visitor token refused: starting over",
            &format!("welcome: {WELCOME}"),
        ],
    );
    assert_ne!(printed(&refused, "session"), open, "{refused}");
}

/// `webhook.secret` of the log-analysis test: `whsec_` + base64 of 32 key bytes.
const WEBHOOK_SECRET: &str = "whsec_bG9nLWFuYWx5c2lzIGV4YW1wbGUgd2ViaG9vayBrZXk=";

/// `examples/log-analysis-backend.js` running under node: the app's
/// back-end stand-in, answering app commands at `url`.
struct LogBackend {
    url: String,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl LogBackend {
    /// Starts it on a free port, verifying with `secret`, and reads the
    /// `listening: <url>` line it prints once ready.
    async fn start(secret: &str) -> LogBackend {
        let mut child = tokio::process::Command::new("node")
            .arg(examples_dir().join("log-analysis-backend.js"))
            .env("CONFAB_WEBHOOK_SECRET", secret)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "node could not be started: the test command installs Node.js (scripts/test.sh)",
            );
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
            .await
            .expect("the back-end did not start")
            .unwrap()
            .unwrap_or_default();
        let url = first
            .strip_prefix("listening: ")
            .unwrap_or_else(|| panic!("not a listening line: {first:?}"))
            .to_owned();
        LogBackend { url, child, stdout }
    }

    /// Stops it; returns every line it printed after `listening`, sorted
    /// (calls made at once arrive in any order).
    async fn stop(mut self) -> Vec<String> {
        self.child.kill().await.unwrap();
        let mut printed = Vec::new();
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            printed.push(line);
        }
        printed.sort();
        printed
    }
}

/// POSTs a `/reload 7` call to `url` as confab would, signed with `secret`
/// at `timestamp`; returns the status.
async fn post_signed(url: &str, secret: &str, timestamp: u64) -> StatusCode {
    let body = serde_json::to_vec(&json!({
        "command": "reload", "args": "7", "text": "/reload 7",
        "user": {"id": "mallory", "name": null, "role": "admin"},
        "room_id": "logs", "req_id": null,
    }))
    .unwrap();
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in
        Signer::from_secret(secret)
            .unwrap()
            .headers("cmd_replayed", timestamp, &body)
    {
        request = request.header(name, value);
    }
    request.body(body).send().await.unwrap().status()
}

/// Asserts `stdout` has each of `lines` as a whole line, in any order.
fn assert_lines(stdout: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            stdout.lines().any(|printed| printed == *line),
            "{line:?} missing in:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn the_log_analysis_example_runs_commands_by_role_against_its_signed_backend() {
    let backend = LogBackend::start(WEBHOOK_SECRET).await;
    let url = backend.url.clone();
    let server = TestServer::start_with(move |c| {
        common::unlimited(c);
        c.webhook.secret = WEBHOOK_SECRET.into();
        c.commands = vec![
            CommandConfig {
                name: "reload".into(),
                description: "/reload [days] re-reads the logs".into(),
                roles: vec!["admin".into(), "analyst".into()],
                url: Some(url),
                ..CommandConfig::default()
            },
            CommandConfig {
                name: "stat".into(),
                alias: Some("stats".into()),
                ..CommandConfig::default()
            },
        ];
    })
    .await;
    let room = server.room_with_id("lead", "logs", &["ana", "vic"]).await;
    let token = |user: &str, name: &str, role: &str| {
        server.token_from_claims(&json!({
            "sub": user, "name": name, "role": role, "exp": common::now_s() + 600,
        }))
    };

    // An analyst: the built-ins, the app's /reload (run, announced to the
    // room; a bad argument refused by the app), and /stat, the alias of the
    // admins' /stats.
    let analyst = token("ana", "Ana", "analyst");
    let ran = succeeded(
        &run_example(
            &server,
            "log-analysis.js",
            &in_room(&analyst, &room),
            &["/help", "/status", "/reload 7", "/reload soon", "/stat"],
        )
        .await,
    );
    assert_lines(
        &ran,
        &[
            "/reload — /reload [days] re-reads the logs",
            "result /reload ok: Reloaded 7 days of logs",
            "system: Ana reloaded the last 7 days of logs",
            "result /reload failed: usage: /reload [days], days from 1 to 90",
            "result /stat forbidden: stats are for admins",
        ],
    );
    assert!(
        ran.lines()
            .any(|line| line.starts_with("result /status ok: you are ana (analyst)")),
        "{ran}"
    );
    // /help lists only what the caller may run: not /stat for an analyst.
    assert!(
        ran.lines()
            .any(|line| line.starts_with("result /help ok: /help — ")),
        "{ran}"
    );
    assert!(
        !ran.lines().any(|line| line.starts_with("/stat —")),
        "{ran}"
    );
    assert_eq!(ran.matches("system: ").count(), 1, "{ran}");
    // Commands are not stored; the app's post is, as a system message.
    let stored = server.all_messages("lead", &room).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["content"], "Ana reloaded the last 7 days of logs");
    assert_eq!(stored[0]["message_type"], "system");
    assert_eq!(stored[0]["sender"]["id"], "system");

    // A viewer may not reload (nor sees /reload in /help): confab refuses
    // it without calling the app.
    let viewer = token("vic", "Vic", "viewer");
    let refused = succeeded(
        &run_example(
            &server,
            "log-analysis.js",
            &in_room(&viewer, &room),
            &["/help", "/reload 7"],
        )
        .await,
    );
    assert_lines(
        &refused,
        &["result /reload forbidden: your role may not run /reload"],
    );
    assert!(!refused.contains("/reload —"), "{refused}");
    assert!(!refused.contains("system: "), "{refused}");

    // The back-end takes only fresh calls signed with the secret.
    let now = common::now_s();
    let stale = post_signed(&backend.url, WEBHOOK_SECRET, now - 10 * 60).await;
    assert_eq!(stale, StatusCode::UNAUTHORIZED);
    let forged = post_signed(&backend.url, "whsec_c29tZW9uZSBlbHNlJ3Mga2V5", now).await;
    assert_eq!(forged, StatusCode::UNAUTHORIZED);
    assert_eq!(
        backend.stop().await,
        [
            "call: /reload 7 by ana (analyst)",
            "call: /reload soon by ana (analyst)",
            "refused: bad signature",
            "refused: stale timestamp",
        ]
    );
}
