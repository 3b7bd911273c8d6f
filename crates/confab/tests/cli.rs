//! The binary as an operator runs it: a real `confab` process, its stdout,
//! its data dir, signals and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const KEY: &str = "cli-test-key";

/// Fresh PostgreSQL databases: the same helper the server's tests use.
#[path = "../../confab-server/tests/common/postgres.rs"]
mod postgres;

/// A `confab serve` child process.
struct Served {
    child: Child,
    base: String,
}

impl Served {
    /// Starts `confab serve` in `cwd` with the given env, and waits for the
    /// first stdout line, which must be `listening on http://HOST:PORT`.
    fn start(cwd: &Path, env: &[(&str, &str)]) -> Served {
        let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
        command
            .arg("serve")
            .current_dir(cwd)
            .env_remove("RUST_LOG")
            .env("CONFAB_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Served { child, base }
    }

    fn ws_url(&self) -> String {
        self.base.replace("http://", "ws://") + "/ws"
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("confab did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn confab(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "confab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn call(
    method: reqwest::Method,
    url: String,
    auth: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(auth);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn no_config_serves_with_a_data_dir_and_token_works() {
    let cwd = tempfile::tempdir().unwrap();
    let served = Served::start(cwd.path(), &[]);
    assert!(cwd.path().join("confab-data/confab.db").exists());
    assert!(cwd.path().join("confab-data/jwt_secret").exists());
    let token = confab(cwd.path(), &["token", "--user", "alice", "--name", "Alice"]);
    let (status, me) = call(
        reqwest::Method::GET,
        format!("{}/api/v1/me", served.base),
        token.trim(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], "alice");
    assert_eq!(me["name"], "Alice");
    assert!(served.terminate().success());
}

#[tokio::test]
async fn migrate_creates_the_database() {
    let cwd = tempfile::tempdir().unwrap();
    confab(cwd.path(), &["migrate", "--data-dir", "elsewhere"]);
    assert!(cwd.path().join("elsewhere/confab.db").exists());
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1012_exits_0_and_history_survives_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let env = [("CONFAB_API_KEY", KEY)];
    let served = Served::start(cwd.path(), &env);
    let (status, room) = call(
        reqwest::Method::POST,
        format!("{}/api/v1/rooms", served.base),
        KEY,
        Some(json!({"id": "job-45", "name": "Deep clean", "room_type": "job", "members": ["u1"]})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    for text in ["first", "second"] {
        let (status, sent) = call(
            reqwest::Method::POST,
            format!("{}/api/v1/rooms/job-45/messages", served.base),
            KEY,
            Some(json!({"content": text, "message_type": "system"})),
        )
        .await;
        assert_eq!(status, 201, "{sent}");
    }

    let token = confab(cwd.path(), &["token", "--user", "u1"]);
    let mut request = served.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token.trim())).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("connection_established"));

    let status = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut close_code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
    {
        if let Message::Close(frame) = message {
            close_code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(close_code, Some(1012));

    let served = Served::start(cwd.path(), &env);
    let (status, page) = call(
        reqwest::Method::GET,
        format!("{}/api/v1/rooms/job-45/messages", served.base),
        token.trim(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let contents: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "second"]);
    assert_eq!(page["messages"][1]["seq"], 2);
    assert!(served.terminate().success());
}

/// Sends messages with `client_msg_id`s over one WebSocket, one at a time,
/// until the connection dies or `max` were sent; returns (client_msg_id,
/// acked seq or None if the server died before answering).
async fn send_until_dead(
    url: String,
    token: String,
    room: &str,
    who: usize,
    max: usize,
) -> Vec<(String, Option<i64>)> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut sent = Vec::new();
    for n in 0..max {
        let id = format!("s{who}-{n}");
        let frame = json!({"type": "send_message", "room_id": room, "content": format!("message {id}"),
                           "client_msg_id": id, "req_id": n});
        if futures_util::SinkExt::send(&mut ws, Message::text(frame.to_string()))
            .await
            .is_err()
        {
            return sent;
        }
        let seq = loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let reply: Value = serde_json::from_str(&text).unwrap();
                    if reply["req_id"] == n {
                        assert_eq!(reply["type"], "message_ack", "{reply}");
                        break reply["seq"].as_i64();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        };
        sent.push((id, seq));
        if seq.is_none() {
            return sent;
        }
    }
    sent
}

/// protocol.md §5.1 and issue 5: every acked message survives `kill -9` mid-stream,
/// nothing unacked leaves a hole in the seqs, and retrying the unanswered
/// sends after the restart stores each exactly once.
#[tokio::test]
async fn kill_9_mid_stream_loses_no_acked_message_and_leaves_no_hole() {
    const SENDERS: usize = 4;
    let cwd = tempfile::tempdir().unwrap();
    let env = [
        ("CONFAB_API_KEY", KEY),
        ("CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE", "1000000"),
        ("CONFAB_RATE_LIMIT__BURST", "1000000"),
    ];
    let mut served = Served::start(cwd.path(), &env);
    let users: Vec<String> = (0..SENDERS).map(|n| format!("u{n}")).collect();
    let (status, room) = call(
        reqwest::Method::POST,
        format!("{}/api/v1/rooms", served.base),
        KEY,
        Some(json!({"id": "busy", "members": users})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let tokens: Vec<String> = users
        .iter()
        .map(|u| {
            confab(cwd.path(), &["token", "--user", u])
                .trim()
                .to_owned()
        })
        .collect();
    let senders: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(who, token)| {
            tokio::spawn(send_until_dead(
                served.ws_url(),
                token.clone(),
                "busy",
                who,
                usize::MAX,
            ))
        })
        .collect();

    // Let some hundreds of messages commit, then kill the process outright.
    wait_for_seq(&served.base, 300).await;
    served.child.kill().unwrap(); // SIGKILL
    served.child.wait().unwrap();
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.unwrap());
    }
    let in_flight = sent.iter().filter(|(_, seq)| seq.is_none()).count();
    eprintln!(
        "{} sends, {in_flight} unanswered when the process died",
        sent.len()
    );
    let acked: Vec<_> = sent
        .iter()
        .filter_map(|(id, seq)| seq.map(|s| (id.clone(), s)))
        .collect();
    assert!(
        acked.len() >= 300,
        "only {} acks before the kill",
        acked.len()
    );

    let served = Served::start(cwd.path(), &env);
    let stored = all_messages(&served.base, "busy").await;
    let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "seqs have a hole"
    );
    let by_id: std::collections::HashMap<&str, i64> = stored
        .iter()
        .map(|m| {
            (
                m["content"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("message "),
                m["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_id.len(), stored.len(), "a message was stored twice");
    for (id, seq) in &acked {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(seq),
            "acked {id} at seq {seq} is missing"
        );
    }

    // The sends left unanswered are retried with the same client_msg_id:
    // each ends up stored exactly once, whether or not it made it before.
    for (id, seq) in sent.iter().filter(|(_, seq)| seq.is_none()) {
        assert!(seq.is_none());
        let user = &users[id[1..].split('-').next().unwrap().parse::<usize>().unwrap()];
        let (status, reply) = call_as(
            &served.base,
            user,
            json!({"content": format!("message {id}"), "client_msg_id": id}),
        )
        .await;
        assert!(status == 201, "{reply}");
        assert_eq!(
            reply["duplicate"],
            by_id.contains_key(id.as_str()),
            "{id}: {reply}"
        );
    }
    let after = all_messages(&served.base, "busy").await;
    let seqs: Vec<i64> = after.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let mut contents: Vec<&str> = after
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    contents.sort_unstable();
    contents.dedup();
    assert_eq!(
        contents.len(),
        after.len(),
        "a retried send was stored twice"
    );
    assert_eq!(
        after.len(),
        stored.len()
            + sent
                .iter()
                .filter(|(id, seq)| seq.is_none() && !by_id.contains_key(id.as_str()))
                .count()
    );
    assert!(served.terminate().success());
}

/// Waits until room `busy` holds at least `seq` messages.
async fn wait_for_seq(base: &str, seq: i64) {
    loop {
        let (_, room) = call(
            reqwest::Method::GET,
            format!("{base}/api/v1/rooms/busy"),
            KEY,
            None,
        )
        .await;
        if room["last_seq"].as_i64().unwrap_or(0) >= seq {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /rooms/busy/messages` with the server key acting as `user`.
async fn call_as(base: &str, user: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/rooms/busy/messages"))
        .bearer_auth(KEY)
        .header("x-confab-user", user)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every message of a room, paged forward with the server key.
async fn all_messages(base: &str, room: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = call(
            reqwest::Method::GET,
            format!("{base}/api/v1/rooms/{room}/messages?after_seq={after}&limit=100"),
            KEY,
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap().clone();
        if let Some(last) = messages.last() {
            after = last["seq"].as_i64().unwrap();
        }
        all.extend(messages);
        if page["has_more"] != true {
            return all;
        }
    }
}

/// The binary on PostgreSQL: `migrate` creates the schema in the named
/// database, `serve` stores there (no SQLite file appears) and reports ready.
#[tokio::test]
async fn migrate_and_serve_on_postgres() {
    let db = postgres::TestDatabase::create().await;
    let cwd = tempfile::tempdir().unwrap();
    confab(cwd.path(), &["migrate", "--database-url", db.url()]);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(applied >= 1);

    let env = [("CONFAB_API_KEY", KEY), ("CONFAB_DATABASE_URL", db.url())];
    let served = Served::start(cwd.path(), &env);
    let (status, room) = call(
        reqwest::Method::POST,
        format!("{}/api/v1/rooms", served.base),
        KEY,
        Some(json!({"id": "job-7", "name": "Windows", "members": ["u1"]})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let (status, sent) = call(
        reqwest::Method::POST,
        format!("{}/api/v1/rooms/job-7/messages", served.base),
        KEY,
        Some(json!({"content": "hello", "message_type": "system"})),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let (status, _) = call(
        reqwest::Method::GET,
        format!("{}/readyz", served.base),
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(served.terminate().success());

    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM messages WHERE room_id = 'job-7'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(seqs, [1]);
    assert!(!cwd.path().join("confab-data/confab.db").exists());
}

/// Issue 6: two `confab serve` processes sharing one PostgreSQL database and
/// one broker. A reader on node A sees node B's senders live; node A is
/// killed with SIGKILL mid-stream; the reader reconnects to node B with
/// `since_seq` and ends up with every message exactly once, in seq order,
/// including every message that either node acked.
async fn node_killed_mid_stream_loses_nothing(broker_url: &str) {
    const SENDERS: usize = 4;
    let db = postgres::TestDatabase::create().await;
    let prefix = format!("cli{}x{}", std::process::id(), broker_url.len());
    let secret = "cluster-cli-secret";
    let env = [
        ("CONFAB_API_KEY", KEY),
        ("CONFAB_JWT_SECRET", secret),
        ("CONFAB_DATABASE_URL", db.url()),
        ("CONFAB_BROKER_URL", broker_url),
        ("CONFAB_BROKER_PREFIX", prefix.as_str()),
        ("CONFAB_BROKER_PRESENCE_TTL_MS", "1500"),
        ("CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE", "1000000"),
        ("CONFAB_RATE_LIMIT__BURST", "1000000"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut node_a = Served::start(dir_a.path(), &env);
    let node_b = Served::start(dir_b.path(), &env);
    let mut members: Vec<String> = (0..SENDERS).map(|n| format!("u{n}")).collect();
    members.push("reader".into());
    members.push("watcher".into());
    let (status, room) = call(
        reqwest::Method::POST,
        format!("{}/api/v1/rooms", node_a.base),
        KEY,
        Some(json!({"id": "busy", "members": members})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let token = |user: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["token", "--user", user])
            .current_dir(dir_a.path())
            .env("CONFAB_JWT_SECRET", secret)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };

    // A watcher on node B sees the reader on node A come online, and, once
    // node A is dead, go offline within the presence TTL.
    let mut watcher = subscribed_to_busy(&node_b.ws_url(), &token("watcher")).await;
    let watching = tokio::spawn(async move {
        let mut presence = Vec::new();
        // One deadline for the whole watch: pings must not extend it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, watcher.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["user_id"] == "reader" {
                    presence.push(frame["type"].as_str().unwrap().to_owned());
                    if frame["type"] == "user_offline" {
                        break;
                    }
                }
            }
        }
        presence
    });

    // The reader on node A, recording every new_message seq it receives.
    // Live from here on: the senders start only once the reader is subscribed.
    let mut reader = subscribed_to_busy(&node_a.ws_url(), &token("reader")).await;
    let reading = tokio::spawn(async move {
        let mut seen: Vec<(i64, String)> = Vec::new();
        while let Some(Ok(message)) = reader.next().await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "new_message" {
                    let m = &frame["message"];
                    seen.push((
                        m["seq"].as_i64().unwrap(),
                        m["content"].as_str().unwrap().into(),
                    ));
                }
            }
        }
        seen
    });

    // Two senders on each node; node B's stop after a bounded number.
    let senders: Vec<_> = (0..SENDERS)
        .map(|who| {
            let (url, max) = if who % 2 == 0 {
                (node_a.ws_url(), usize::MAX)
            } else {
                (node_b.ws_url(), 400)
            };
            tokio::spawn(send_until_dead(
                url,
                token(&format!("u{who}")),
                "busy",
                who,
                max,
            ))
        })
        .collect();
    let base_b = node_b.base.clone();
    wait_for_seq(&base_b, 200).await;
    node_a.child.kill().unwrap(); // SIGKILL
    node_a.child.wait().unwrap();
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(
            sender
                .await
                .unwrap()
                .into_iter()
                .filter_map(|(id, seq)| seq.map(|seq| (id, seq))),
        );
    }
    let before_kill = reading.await.unwrap();
    assert_eq!(
        watching.await.unwrap(),
        ["user_online", "user_offline"],
        "the reader on the killed node went offline on the other"
    );
    assert!(
        before_kill
            .iter()
            .any(|(_, c)| c.starts_with("message s1-")),
        "node B's messages reached the reader on node A live"
    );

    // The reader reconnects to node B and resumes after what it saw.
    let (_, room) = call(
        reqwest::Method::GET,
        format!("{base_b}/api/v1/rooms/busy"),
        KEY,
        None,
    )
    .await;
    let last_seq = room["last_seq"].as_i64().unwrap();
    let since = before_kill.last().map_or(0, |(seq, _)| *seq);
    let mut reader = ws_as(&node_b.ws_url(), &token("reader")).await;
    reader
        .send(Message::text(
            json!({"type": "subscribe_room", "room_id": "busy", "since_seq": since}).to_string(),
        ))
        .await
        .unwrap();
    let mut seen = before_kill;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.last().map_or(0, |(seq, _)| *seq) < last_seq {
        let next = tokio::time::timeout_at(deadline, reader.next())
            .await
            .expect("the resumed reader stalled")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = next {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "new_message" {
                let m = &frame["message"];
                seen.push((
                    m["seq"].as_i64().unwrap(),
                    m["content"].as_str().unwrap().into(),
                ));
            }
        }
    }
    let seqs: Vec<i64> = seen.iter().map(|(seq, _)| *seq).collect();
    let first_wrong = seqs.iter().zip(1..).position(|(seq, want)| *seq != want);
    assert!(
        first_wrong.is_none() && seqs.len() as i64 == last_seq,
        "every message exactly once, in seq order: {} of {last_seq} delivered, \
         first out of place at index {first_wrong:?}",
        seqs.len()
    );
    let by_content: std::collections::HashMap<&str, i64> =
        seen.iter().map(|(seq, c)| (c.as_str(), *seq)).collect();
    for (id, seq) in &acked {
        assert_eq!(
            by_content.get(format!("message {id}").as_str()),
            Some(seq),
            "acked {id} at seq {seq} was not delivered"
        );
    }
    eprintln!(
        "{broker_url}: {} acked, {last_seq} delivered, {since} before the kill",
        acked.len()
    );
}

/// A WebSocket to `url` subscribed to room `busy`: live events from here on.
async fn subscribed_to_busy(
    url: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut ws = ws_as(url, token).await;
    ws.send(Message::text(
        json!({"type": "subscribe_room", "room_id": "busy"}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("the connection ended before `subscribed`");
        };
        if text.contains("\"subscribed\"") {
            return ws;
        }
    }
}

/// A WebSocket to `url` with a bearer token, past `connection_established`.
async fn ws_as(
    url: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let Some(Ok(Message::Text(hello))) = ws.next().await else {
        panic!("no connection_established");
    };
    assert!(hello.contains("connection_established"), "{hello}");
    ws
}

// The machine's Redis and NATS, as in confab-server's cluster tests
// (scripts/test.sh makes sure both run).
#[tokio::test]
async fn a_node_killed_mid_stream_loses_nothing_with_redis() {
    node_killed_mid_stream_loses_nothing("redis://127.0.0.1:6379").await;
}

#[tokio::test]
async fn a_node_killed_mid_stream_loses_nothing_with_nats() {
    node_killed_mid_stream_loses_nothing("nats://127.0.0.1:4222").await;
}
