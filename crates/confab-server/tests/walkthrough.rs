//! Two users, each on a phone and a laptop, through one conversation that
//! uses every event of the protocol (issue 4): after each step, what each of
//! the four connections received is checked frame by frame, so a frame sent to
//! the wrong device, twice, or not at all fails here.
//!
//! The frames captured on the way are also the ground truth for
//! `docs/examples.md`: every server frame type has an example there, and each
//! example must have the exact shape (keys and value kinds, recursively) of a
//! frame the real server sent in this walkthrough. Every client frame example
//! there must decode with the server's own decoder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{TestServer, WsClient};
use confab_protocol::client::CLIENT_FRAME_TYPES;
use confab_protocol::decode_client_frame;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every frame type the server sends (protocol.md §2.2–2.4).
const SERVER_FRAME_TYPES: &[&str] = &[
    "connection_established",
    "subscribed",
    "unsubscribed",
    "new_message",
    "message_ack",
    "message_updated",
    "message_deleted",
    "reaction_updated",
    "message_read",
    "typing",
    "room_list",
    "room_updated",
    "room_added",
    "room_removed",
    "user_online",
    "user_offline",
    "presence",
    "history",
    "pong",
    "ack",
    "command_result",
    "notification",
    "error",
];

const ROOM: &str = "job-45";

/// One device: its connection and every frame it received, by type.
struct Device {
    name: &'static str,
    ws: WsClient,
    barriers: u32,
}

/// Every frame any device received, for the docs check.
#[derive(Default)]
struct Seen(BTreeMap<String, Vec<Value>>);

impl Seen {
    fn add(&mut self, frame: &Value) {
        let kind = frame["type"].as_str().unwrap().to_owned();
        self.0.entry(kind).or_default().push(frame.clone());
    }
}

impl Device {
    async fn connect(server: &TestServer, user: &str, name: &'static str, seen: &mut Seen) -> Self {
        let mut ws = server
            .ws_raw(
                "/ws",
                &[("authorization", format!("Bearer {}", server.token(user)))],
            )
            .await;
        let hello = ws.recv_json().await;
        assert_eq!(hello["type"], "connection_established", "{hello}");
        seen.add(&hello);
        Device {
            name,
            ws,
            barriers: 0,
        }
    }

    /// Everything queued for this device so far: a `ping` goes behind it and
    /// the frames before its `pong` are returned (events of a step are queued
    /// before the step's reply reaches the actor, so nothing can straggle).
    async fn drain(&mut self, seen: &mut Seen) -> Vec<Value> {
        self.barriers += 1;
        let req_id = format!("barrier-{}-{}", self.name, self.barriers);
        self.ws
            .send(json!({"type": "ping", "req_id": req_id}))
            .await;
        let mut frames = Vec::new();
        loop {
            let frame = self.ws.recv_json().await;
            seen.add(&frame);
            if frame["type"] == "pong" && frame["req_id"] == req_id.as_str() {
                return frames;
            }
            frames.push(frame);
        }
    }

    /// Drains and asserts the frame types received, in order.
    async fn expect(&mut self, seen: &mut Seen, types: &[&str]) -> Vec<Value> {
        let frames = self.drain(seen).await;
        let got: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(got, types, "{}: {frames:#?}", self.name);
        frames
    }

    /// Sends a frame with a `req_id` and returns everything up to and
    /// including its reply (events queued before the reply come first).
    async fn request(&mut self, seen: &mut Seen, mut frame: Value) -> Vec<Value> {
        self.barriers += 1;
        let req_id = format!("{}-{}", self.name, self.barriers);
        frame["req_id"] = json!(req_id);
        self.ws.send(frame).await;
        let mut frames = Vec::new();
        loop {
            let frame = self.ws.recv_json().await;
            seen.add(&frame);
            let done = frame["req_id"] == req_id.as_str();
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
}

/// The walkthrough. Returns every frame seen.
async fn walkthrough(server: &TestServer) -> Seen {
    let mut seen = Seen::default();
    let api = server.server_api();
    for (id, name) in [("alice", "Alice"), ("bob", "Bob")] {
        let (status, _) = api
            .put(&format!("/api/v1/users/{id}"), json!({"name": name}))
            .await;
        assert!(status.is_success());
    }

    // Alice's two devices; the job's room appears on both.
    let mut alice_phone = Device::connect(server, "alice", "alice-phone", &mut seen).await;
    let mut alice_laptop = Device::connect(server, "alice", "alice-laptop", &mut seen).await;
    let (status, _) = server
        .api("alice")
        .post(
            "/api/v1/rooms",
            json!({"id": ROOM, "name": "Deep clean", "room_type": "job", "members": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201);
    for device in [&mut alice_phone, &mut alice_laptop] {
        let added = device.expect(&mut seen, &["room_added"]).await;
        assert_eq!(added[0]["room"]["id"], ROOM);
    }
    let subscribed = alice_phone
        .request(
            &mut seen,
            json!({"type": "subscribe_room", "room_id": ROOM}),
        )
        .await;
    assert_eq!(types(&subscribed), ["subscribed"]);

    // Bob's phone comes online: Alice's subscribed phone hears it, once.
    let mut bob_phone = Device::connect(server, "bob", "bob-phone", &mut seen).await;
    let online = alice_phone.expect(&mut seen, &["user_online"]).await;
    assert_eq!(online[0]["user_id"], "bob");
    alice_laptop.expect(&mut seen, &[]).await;
    // His laptop is a second connection: no second user_online.
    let mut bob_laptop = Device::connect(server, "bob", "bob-laptop", &mut seen).await;
    alice_phone.expect(&mut seen, &[]).await;
    for device in [&mut bob_phone, &mut bob_laptop] {
        let subscribed = device
            .request(
                &mut seen,
                json!({"type": "subscribe_room", "room_id": ROOM}),
            )
            .await;
        assert_eq!(types(&subscribed), ["subscribed"]);
        assert_eq!(subscribed[0]["unread_count"], 0);
    }

    // Bob types on his phone: Alice's subscribed phone sees it, Bob's own
    // laptop never does, Alice's unsubscribed laptop neither.
    bob_phone
        .ws
        .send(json!({"type": "typing", "room_id": ROOM}))
        .await;
    bob_phone.expect(&mut seen, &[]).await;
    let typing = alice_phone.expect(&mut seen, &["typing"]).await;
    assert_eq!(typing[0]["is_typing"], true);
    bob_laptop.expect(&mut seen, &[]).await;
    alice_laptop.expect(&mut seen, &[]).await;

    // He sends: ack then his own copy on the phone, the message on every
    // other subscribed device, then the end of his typing (sending ends it).
    let sent = bob_phone
        .request(
            &mut seen,
            json!({"type": "send_message", "room_id": ROOM, "content": "On my way, 10 minutes",
                   "client_msg_id": "b-1"}),
        )
        .await;
    assert_eq!(types(&sent), ["message_ack"]);
    let message_id = sent[0]["message_id"].as_str().unwrap().to_owned();
    bob_phone.expect(&mut seen, &["new_message"]).await;
    let at_alice = alice_phone
        .expect(&mut seen, &["new_message", "typing"])
        .await;
    assert_eq!(at_alice[0]["message"]["id"], message_id.as_str());
    assert_eq!(at_alice[1]["is_typing"], false);
    bob_laptop.expect(&mut seen, &["new_message"]).await;
    alice_laptop.expect(&mut seen, &[]).await;

    // Alice's laptop is not subscribed, but its room list shows the unread.
    let list = alice_laptop
        .request(&mut seen, json!({"type": "get_room_list"}))
        .await;
    assert_eq!(types(&list), ["room_list"]);
    assert_eq!(list[0]["rooms"][0]["unread_count"], 1);
    assert_eq!(
        list[0]["rooms"][0]["participants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Alice reads on her phone: the room hears message_read, both her devices
    // get their new unread count.
    let read = alice_phone
        .request(&mut seen, json!({"type": "mark_read", "room_id": ROOM}))
        .await;
    assert_eq!(types(&read), ["message_read", "room_updated", "ack"]);
    assert_eq!(read[1]["updates"]["unread_count"], 0);
    let updated = alice_laptop.expect(&mut seen, &["room_updated"]).await;
    assert_eq!(updated[0]["updates"]["unread_count"], 0);
    for device in [&mut bob_phone, &mut bob_laptop] {
        let read = device.expect(&mut seen, &["message_read"]).await;
        assert_eq!(read[0]["user_id"], "alice");
        assert_eq!(read[0]["up_to_seq"], 1);
    }

    // A reaction, an edit, its removal and a delete reach every subscribed
    // device; the actor gets the event and then its `ack`.
    let reaction =
        json!({"type": "add_reaction", "room_id": ROOM, "message_id": message_id, "emoji": "👍"});
    let replies = alice_phone.request(&mut seen, reaction).await;
    assert_eq!(types(&replies), ["reaction_updated", "ack"]);
    assert_eq!(replies[0]["reactions"], json!({"👍": ["alice"]}));
    for device in [&mut bob_phone, &mut bob_laptop] {
        device.expect(&mut seen, &["reaction_updated"]).await;
    }
    let edit = json!({"type": "edit_message", "room_id": ROOM, "message_id": message_id,
                      "content": "On my way, 15 minutes"});
    let replies = bob_laptop.request(&mut seen, edit).await;
    assert_eq!(types(&replies), ["message_updated", "ack"]);
    for device in [&mut alice_phone, &mut bob_phone] {
        let edited = device.expect(&mut seen, &["message_updated"]).await;
        assert_eq!(edited[0]["message"]["content"], "On my way, 15 minutes");
    }
    let unreact = json!({"type": "remove_reaction", "room_id": ROOM, "message_id": message_id, "emoji": "👍"});
    let replies = alice_phone.request(&mut seen, unreact).await;
    assert_eq!(types(&replies), ["reaction_updated", "ack"]);
    assert_eq!(replies[0]["reactions"], json!({}));
    for device in [&mut bob_phone, &mut bob_laptop] {
        device.expect(&mut seen, &["reaction_updated"]).await;
    }
    let delete = json!({"type": "delete_message", "room_id": ROOM, "message_id": message_id});
    let replies = bob_phone.request(&mut seen, delete).await;
    assert_eq!(types(&replies), ["message_deleted", "ack"]);
    for device in [&mut alice_phone, &mut bob_laptop] {
        device.expect(&mut seen, &["message_deleted"]).await;
    }
    alice_laptop.expect(&mut seen, &[]).await;

    // Requests with direct replies.
    let history = alice_laptop
        .request(
            &mut seen,
            json!({"type": "get_history", "room_id": ROOM, "limit": 20}),
        )
        .await;
    assert_eq!(types(&history), ["history"]);
    assert_eq!(history[0]["messages"][0]["deleted"], true);
    let presence = alice_laptop
        .request(&mut seen, json!({"type": "get_presence", "room_id": ROOM}))
        .await;
    assert_eq!(types(&presence), ["presence"]);
    assert_eq!(presence[0]["online"], json!(["alice", "bob"]));
    // A command: answered to the device that typed it, nobody else.
    let topic = alice_laptop
        .request(
            &mut seen,
            json!({"type": "send_message", "room_id": ROOM, "content": "/topic"}),
        )
        .await;
    assert_eq!(types(&topic), ["command_result"]);
    assert_eq!(topic[0]["data"], json!({"topic": null}));
    let refused = alice_laptop
        .request(&mut seen, json!({"type": "typing", "room_id": ROOM}))
        .await;
    assert_eq!(types(&refused), ["error"]);
    assert_eq!(refused[0]["code"], "not_subscribed");

    // Alice renames the room over REST: every device of both users hears it.
    let (status, _) = server
        .api("alice")
        .patch(
            &format!("/api/v1/rooms/{ROOM}"),
            json!({"name": "Deep clean, Friday"}),
        )
        .await;
    assert_eq!(status, 200);
    for device in [
        &mut alice_phone,
        &mut alice_laptop,
        &mut bob_phone,
        &mut bob_laptop,
    ] {
        let renamed = device.expect(&mut seen, &["room_updated"]).await;
        assert_eq!(renamed[0]["updates"]["name"], "Deep clean, Friday");
    }

    // The app's back-end notifies Alice: both her devices, nobody else.
    let (status, answer) = server
        .server_api()
        .post(
            "/api/v1/users/alice/notify",
            json!({"event": "job.booked", "data": {"job_id": 45, "when": "Friday 9:00"}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["connections"], 2, "{answer}");
    for device in [&mut alice_phone, &mut alice_laptop] {
        let notified = device.expect(&mut seen, &["notification"]).await;
        assert_eq!(notified[0]["event"], "job.booked");
        assert_eq!(notified[0]["data"]["job_id"], 45);
    }
    for device in [&mut bob_phone, &mut bob_laptop] {
        device.expect(&mut seen, &[]).await;
    }

    // Bob's laptop leaves: still online. His phone leaves: offline, once.
    bob_laptop.ws.close().await;
    bob_phone.ws.close().await;
    let offline = alice_phone.ws.recv_json().await;
    seen.add(&offline);
    assert_eq!(offline["type"], "user_offline", "{offline}");
    assert_eq!(offline["user_id"], "bob");
    alice_phone.expect(&mut seen, &[]).await;

    // Bob comes back on his phone and is removed from the job: his phone
    // loses the room at once; Alice's phone unsubscribes.
    let mut bob_phone = Device::connect(server, "bob", "bob-phone-2", &mut seen).await;
    alice_phone.expect(&mut seen, &["user_online"]).await;
    let (status, _) = server
        .api("alice")
        .delete(&format!("/api/v1/rooms/{ROOM}/members/bob"))
        .await;
    assert_eq!(status, 204);
    let gone = bob_phone.expect(&mut seen, &["room_removed"]).await;
    assert_eq!(gone[0]["room_id"], ROOM);
    let unsubscribed = alice_phone
        .request(
            &mut seen,
            json!({"type": "unsubscribe_room", "room_id": ROOM}),
        )
        .await;
    assert_eq!(types(&unsubscribed), ["unsubscribed"]);
    seen
}

#[tokio::test]
async fn two_users_on_two_devices_see_exactly_their_events() {
    let server = TestServer::start().await;
    let seen = walkthrough(&server).await;
    let missing: Vec<_> = SERVER_FRAME_TYPES
        .iter()
        .filter(|kind| !seen.0.contains_key(**kind))
        .collect();
    assert!(missing.is_empty(), "the walkthrough never saw {missing:?}");
    if std::env::var_os("CONFAB_PRINT_EXAMPLES").is_some() {
        for (kind, frames) in &seen.0 {
            println!(
                "## {kind}\n{}",
                serde_json::to_string_pretty(&frames[0]).unwrap()
            );
        }
    }
    check_docs(&seen);
}

/// `docs/examples.md`, checked against what the server really sent.
fn check_docs(seen: &Seen) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let mut documented_server = Vec::new();
    let mut documented_client = Vec::new();
    for (info, body) in fenced_blocks(&docs) {
        let mut words = info.split_whitespace();
        let (Some("json"), Some(tag)) = (words.next(), words.next()) else {
            continue;
        };
        if let Some(kind) = tag.strip_prefix("server:") {
            let example: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("docs/examples.md {tag}: {e}\n{body}"));
            assert_eq!(example["type"], kind, "{tag}");
            let real = seen.0.get(kind).map(Vec::as_slice).unwrap_or_default();
            assert!(
                real.iter().any(|frame| same_shape(&example, frame)),
                "docs/examples.md {tag} has no real counterpart.\nexample: {example:#}\nreal (first 3 of {}): {:#?}",
                real.len(),
                &real[..real.len().min(3)]
            );
            documented_server.push(kind.to_owned());
        } else if let Some(kind) = tag.strip_prefix("client:") {
            if let Err(e) = decode_client_frame(&body) {
                panic!("docs/examples.md {tag} does not decode: {e:?}");
            }
            let example: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(example["type"], kind, "{tag}");
            documented_client.push(kind.to_owned());
        }
    }
    for kind in SERVER_FRAME_TYPES {
        assert!(
            documented_server.iter().any(|d| d == kind),
            "docs/examples.md has no `json server:{kind}` example"
        );
    }
    for kind in CLIENT_FRAME_TYPES {
        assert!(
            documented_client.iter().any(|d| d == kind),
            "docs/examples.md has no `json client:{kind}` example"
        );
    }
}

/// The REST half of `docs/examples.md`: every `http` block is sent, in order,
/// to one real server, and the answer must have the documented status and the
/// shape of the `response` block that follows it. Ids the server generates
/// (messages, uploads) are learnt from each answer and replace the documented
/// ones in later requests.
#[tokio::test]
async fn rest_examples_are_what_the_server_answers() {
    let server = TestServer::start().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let http = reqwest::Client::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut blocks = fenced_blocks(&docs).into_iter().peekable();
    let mut exchanges = 0;
    while let Some((info, request)) = blocks.next() {
        if info != "http" {
            continue;
        }
        let (response_info, documented) = blocks
            .next()
            .unwrap_or_else(|| panic!("no response block after\n{request}"));
        let mut words = response_info.split_whitespace();
        let (Some(format), Some("response"), Some(status)) =
            (words.next(), words.next(), words.next())
        else {
            panic!("`{response_info}` after\n{request}: expected `json response STATUS`");
        };
        let request = ids
            .iter()
            .fold(request, |text, (doc, real)| text.replace(doc, real));
        let (status_got, body) = send_documented(&server, &http, &request).await;
        if std::env::var_os("CONFAB_PRINT_EXAMPLES").is_some() {
            println!("=== {status_got}\n{body}");
        }
        assert_eq!(status_got.as_str(), status, "{request}\n→ {body}");
        match format {
            "json" => {
                let doc: Value = serde_json::from_str(&documented)
                    .unwrap_or_else(|e| panic!("response of\n{request}: {e}"));
                let real: Value = serde_json::from_str(&body).unwrap();
                let printing = std::env::var_os("CONFAB_PRINT_EXAMPLES").is_some();
                assert!(
                    printing || same_shape(&doc, &real),
                    "{request}\ndocumented: {doc:#}\nreal: {real:#}"
                );
                learn_ids(&doc, &real, &mut ids);
            }
            "text" => assert_eq!(body.trim_end(), documented.trim_end(), "{request}"),
            // An abridged scrape: every documented comment line is in the
            // real one as written, every documented sample names a real
            // series (values are this run's counts and timings).
            "openmetrics" => {
                let real: Vec<&str> = body.lines().collect();
                for line in documented.lines() {
                    let found = if line.starts_with('#') {
                        real.contains(&line)
                    } else {
                        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
                        real.iter()
                            .any(|r| r.rsplit_once(' ').is_some_and(|(s, _)| s == series))
                    };
                    assert!(found, "{request}: documented `{line}` not in\n{body}");
                }
            }
            other => panic!("unknown response format {other}"),
        }
        exchanges += 1;
    }
    assert!(exchanges >= 20, "only {exchanges} REST examples found");

    // Every route of the OpenAPI document has an example here, except the
    // WebSocket upgrades (the first half of this page) and the document itself.
    let (_, openapi) = server.anonymous_api().get("/api/v1/openapi.json").await;
    let examples: Vec<(String, String)> = fenced_blocks(&docs)
        .into_iter()
        .filter(|(info, _)| info == "http")
        .map(|(_, request)| {
            let line = request.lines().next().unwrap().to_owned();
            let (method, target) = line.split_once(' ').unwrap();
            let path = target.split('?').next().unwrap().to_owned();
            (method.to_owned(), path)
        })
        .collect();
    for (template, operations) in openapi["paths"].as_object().unwrap() {
        if template.starts_with("/ws") || template == "/api/v1/openapi.json" {
            continue;
        }
        for method in operations.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            assert!(
                examples
                    .iter()
                    .any(|(m, path)| *m == method && path_matches(template, path)),
                "docs/examples.md has no example of {method} {template}"
            );
        }
    }
}

/// Whether a concrete path fits an OpenAPI path template (`{x}` = one segment).
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// Sends one documented request: a request line, headers, a blank line and
/// an optional body. `<token of USER>` and `<server key>` are filled in.
async fn send_documented(
    server: &TestServer,
    http: &reqwest::Client,
    text: &str,
) -> (reqwest::StatusCode, String) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, target) = request_line.split_once(' ').unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, format!("{}{}", server.base, target.trim()));
    let mut multipart = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        let mut value = value.trim().to_owned();
        if value == "Bearer <server key>" {
            value = format!("Bearer {}", common::API_KEY);
        } else if let Some(user) = value
            .strip_prefix("Bearer <token of ")
            .and_then(|rest| rest.strip_suffix('>'))
        {
            value = format!("Bearer {}", server.token(user));
        }
        multipart |= value.starts_with("multipart/");
        request = request.header(name.trim(), value);
    }
    let body = body.trim_end_matches('\n');
    if !body.is_empty() {
        // Multipart framing is CRLF on the wire; the page shows it as lines.
        let body = if multipart {
            format!("{}\r\n", body.replace('\n', "\r\n"))
        } else {
            body.to_owned()
        };
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// Records documented → real values of server-made ids, so the examples can
/// name a message or upload the server created earlier.
fn learn_ids(doc: &Value, real: &Value, ids: &mut Vec<(String, String)>) {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            for (key, dv) in d {
                let Some(rv) = r.get(key) else { continue };
                match (key.as_str(), dv, rv) {
                    ("id" | "message_id", Value::String(dv), Value::String(rv)) if dv != rv => {
                        ids.push((dv.clone(), rv.clone()));
                    }
                    _ => learn_ids(dv, rv, ids),
                }
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            for (dv, rv) in d.iter().zip(r) {
                learn_ids(dv, rv, ids);
            }
        }
        _ => {}
    }
}

/// The fenced code blocks of a markdown text: (info string, body).
fn fenced_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Whether a documented example has the shape of a real frame: the same keys
/// at every level and the same kind of value (string, number, bool, object,
/// array). A `null` on either side matches anything (optional values); arrays
/// compare their first elements when both have one.
fn same_shape(doc: &Value, real: &Value) -> bool {
    match (doc, real) {
        (Value::Null, _) | (_, Value::Null) => true,
        (Value::Object(d), Value::Object(r)) => {
            d.len() == r.len()
                && d.iter()
                    .all(|(key, dv)| r.get(key).is_some_and(|rv| same_shape(dv, rv)))
        }
        (Value::Array(d), Value::Array(r)) => match (d.first(), r.first()) {
            (Some(dv), Some(rv)) => same_shape(dv, rv),
            _ => true,
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => true,
        _ => false,
    }
}
