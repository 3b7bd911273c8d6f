//! `/ws/assistant/` (protocol.md §3.4): the help-desk front-end's socket.
//! Visitors (anonymous or signed in) get a session with a welcome, the
//! assistant's answers (through a real HTTP provider stand-in), come back
//! to their session with a visitor token, close and rate it, and are
//! closed out after `assistant.session_ttl` without a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::provider::{Behaviour, FakeProvider};
use common::{Ended, TestServer, WsClient};
use confab_server::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const PATH: &str = "/ws/assistant/";
const WELCOME: &str = "Hi, I'm Sophie. How can I help?";

/// The help-desk set-up: anonymous visitors, a welcome, `provider`.
fn help_desk(provider: &FakeProvider) -> impl Fn(&mut Config) + Clone {
    let base_url = provider.base_url.clone();
    move |c: &mut Config| {
        common::unlimited(c);
        c.auth.allow_anonymous = true;
        c.assistant.base_url = base_url.clone();
        c.assistant.welcome = WELCOME.into();
        c.assistant.timeout_s = 10;
    }
}

async fn server(provider: &FakeProvider) -> TestServer {
    TestServer::start_with(help_desk(provider)).await
}

/// Connects to `/ws/assistant/` with `headers` (or `?query`) and reads
/// `session_started`.
async fn connect(
    server: &TestServer,
    query: &str,
    headers: &[(&str, String)],
) -> (WsClient, Value) {
    let mut ws = server.ws_raw(&format!("{PATH}{query}"), headers).await;
    let started = ws.recv_json().await;
    assert_eq!(started["type"], "session_started", "{started}");
    assert_eq!(started["session_id"], started["room_id"], "{started}");
    (ws, started)
}

/// A fresh anonymous visitor.
async fn visitor(server: &TestServer) -> (WsClient, Value) {
    connect(server, "", &[]).await
}

/// Reads `message` frames until one from `sender_type` arrives.
async fn message_from(ws: &mut WsClient, sender_type: &str) -> Value {
    loop {
        let frame = ws.recv_type("message").await;
        if frame["message"]["sender_type"] == sender_type {
            return frame["message"].clone();
        }
    }
}

/// Asks a question and reads everything from its echo up to the
/// assistant's answer: the frame types in order, and the answer.
async fn ask(ws: &mut WsClient, question: &str) -> (Vec<String>, Value) {
    ws.send(json!({"type": "message", "content": question}))
        .await;
    // What came before the question (a welcome) is not its answer.
    loop {
        let frame = ws.recv_type("message").await;
        if frame["message"]["content"] == question {
            break;
        }
    }
    let mut kinds = vec!["message:user".to_owned()];
    loop {
        let frame = ws.recv_json().await;
        let kind = frame["type"].as_str().unwrap().to_owned();
        let described = match kind.as_str() {
            "message" => format!(
                "message:{}",
                frame["message"]["sender_type"].as_str().unwrap()
            ),
            "typing" => format!(
                "typing:{}:{}",
                frame["sender_type"].as_str().unwrap(),
                frame["is_typing"]
            ),
            other => other.to_owned(),
        };
        kinds.push(described);
        if kind == "message" && frame["message"]["sender_type"] == "assistant" {
            return (kinds, frame["message"].clone());
        }
    }
}

/// A session's stored messages, read over REST with the server key.
async fn stored(server: &TestServer, session_id: &str) -> Vec<Value> {
    let (status, page) = server
        .server_api()
        .get(&format!(
            "/api/v1/rooms/{session_id}/messages?after_seq=0&limit=100"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_visitor_gets_a_session_the_welcome_and_streamed_answers() {
    let provider = FakeProvider::start(Behaviour::Stream(vec!["Use ", "the link."])).await;
    let server = server(&provider).await;
    let (mut ws, started) = visitor(&server).await;
    let session_id = started["session_id"].as_str().unwrap().to_owned();
    assert_eq!(started["resumed"], false);
    assert!(started["visitor_token"].is_string(), "{started}");
    common::assert_timestamp(&started["timestamp"]);

    let welcome = ws.recv_json().await;
    assert_eq!(welcome["type"], "message", "{welcome}");
    let welcome = &welcome["message"];
    assert_eq!(welcome["sender_type"], "assistant");
    assert_eq!(welcome["content"], WELCOME);
    assert_eq!(welcome["session_id"], session_id.as_str());
    assert_eq!(welcome["metadata"]["welcome"], true);
    for field in [
        "id",
        "session_id",
        "sender_type",
        "content",
        "metadata",
        "timestamp",
    ] {
        assert!(welcome.get(field).is_some(), "{field} missing: {welcome}");
    }
    // Nothing is stored until the visitor writes.
    let (status, _) = server
        .server_api()
        .get(&format!("/api/v1/rooms/{session_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (kinds, answer) = ask(&mut ws, "How do I reset my password?").await;
    assert_eq!(
        kinds,
        [
            "message:user",
            "typing:assistant:true",
            "assistant_delta",
            "assistant_delta",
            "message:assistant"
        ],
        "{kinds:?}"
    );
    assert_eq!(answer["content"], "Use the link.");
    assert!(
        answer["metadata"]["processing_time_ms"].is_u64(),
        "{answer}"
    );
    assert_eq!(answer["sender_id"], "assistant");
    let stopped = ws.recv_json().await;
    assert_eq!(stopped["type"], "typing", "{stopped}");
    assert_eq!(stopped["sender_type"], "assistant");
    assert_eq!(stopped["is_typing"], false);

    // `message` as the field name works too.
    ws.send(json!({"type": "message", "message": "Thanks!"}))
        .await;
    let echoed = message_from(&mut ws, "user").await;
    assert_eq!(echoed["content"], "Thanks!");

    // Stored: the welcome first (the id shown), the question, the answer.
    let messages = stored(&server, &session_id).await;
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        &contents[..3],
        [WELCOME, "How do I reset my password?", "Use the link."]
    );
    assert_eq!(messages[0]["id"], welcome["id"]);
    assert_eq!(answer["reply_to"], messages[1]["id"], "{answer}");
    assert_eq!(echoed["sender_id"], messages[1]["sender"]["id"]);
    assert!(welcome["reply_to"].is_null());
    assert_eq!(messages[0]["sender"]["id"], "assistant");
    // The provider saw the welcome as the assistant's turn.
    let asked = &provider.requests()[0].body["messages"];
    assert_eq!(
        asked[0],
        json!({"role": "assistant", "content": WELCOME}),
        "{asked}"
    );
}

#[tokio::test]
async fn a_visitor_comes_back_to_its_session_with_its_token() {
    let provider = FakeProvider::start(Behaviour::Plain("Sure.")).await;
    let server = server(&provider).await;
    let (mut ws, started) = visitor(&server).await;
    let session_id = started["session_id"].as_str().unwrap().to_owned();
    let token = started["visitor_token"].as_str().unwrap().to_owned();
    ask(&mut ws, "Can I move my booking?").await;
    ws.close().await;

    // As `?token=`: the same session, its history, a fresh token.
    let (mut back, resumed) = connect(&server, &format!("?token={token}"), &[]).await;
    assert_eq!(resumed["session_id"], session_id.as_str(), "{resumed}");
    assert_eq!(resumed["resumed"], true);
    assert!(resumed["visitor_token"].is_string());
    let mut history = Vec::new();
    for _ in 0..3 {
        let frame = back.recv_type("message").await;
        history.push(frame["message"]["content"].as_str().unwrap().to_owned());
    }
    assert_eq!(history, [WELCOME, "Can I move my booking?", "Sure."]);
    let (_, answer) = ask(&mut back, "And cancel it?").await;
    assert_eq!(answer["session_id"], session_id.as_str());
    back.close().await;

    // In `session_init`, on a connection that came in as a new visitor.
    let (mut other, fresh) = visitor(&server).await;
    assert_ne!(fresh["session_id"], session_id.as_str());
    other.recv_type("message").await; // its welcome
    other
        .send(json!({"type": "session_init", "visitor_token": token}))
        .await;
    let resumed = other.recv_type("session_started").await;
    assert_eq!(resumed["session_id"], session_id.as_str(), "{resumed}");
    assert_eq!(resumed["resumed"], true);
    let first = other.recv_type("message").await;
    assert_eq!(first["message"]["content"], WELCOME);
    // The abandoned new session was never stored.
    let (status, _) = server
        .server_api()
        .get(&format!(
            "/api/v1/rooms/{}",
            fresh["session_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_new_session_keeps_its_id_until_its_first_message() {
    let provider = FakeProvider::start(Behaviour::Plain("Yes.")).await;
    let server = server(&provider).await;
    let (ws, started) = visitor(&server).await;
    ws.close().await;
    let token = started["visitor_token"].as_str().unwrap();
    let (mut back, again) = connect(&server, &format!("?token={token}"), &[]).await;
    assert_eq!(again["session_id"], started["session_id"], "{again}");
    assert_eq!(again["resumed"], false, "nothing was stored yet");
    let (_, answer) = ask(&mut back, "Open on Sundays?").await;
    assert_eq!(answer["session_id"], started["session_id"]);
}

#[tokio::test]
async fn signed_in_users_resume_their_own_open_session_only() {
    let provider = FakeProvider::start(Behaviour::Plain("Noted.")).await;
    let server = server(&provider).await;
    let bearer = |user: &str| vec![("authorization", format!("Bearer {}", server.token(user)))];
    let (mut alice, started) = connect(&server, "", &bearer("alice")).await;
    assert!(
        started.get("visitor_token").is_none(),
        "users need no visitor token: {started}"
    );
    let alice_session = started["session_id"].as_str().unwrap().to_owned();
    ask(&mut alice, "Hello").await;
    let (mut bob, bob_started) = connect(&server, "", &bearer("bob")).await;
    let bob_session = bob_started["session_id"].as_str().unwrap().to_owned();
    ask(&mut bob, "Hi").await;

    // A second connection (the token in the query, as browsers do) resumes.
    let (mut again, resumed) =
        connect(&server, &format!("?token={}", server.token("alice")), &[]).await;
    assert_eq!(resumed["session_id"], alice_session.as_str());
    assert_eq!(resumed["resumed"], true);
    // Naming bob's session, or one that does not exist, gives alice her own.
    let long = "x".repeat(300);
    for named in [
        bob_session.as_str(),
        "no-such-session",
        "../etc",
        long.as_str(),
        "",
    ] {
        again
            .send(json!({"type": "session_init", "session_id": named}))
            .await;
        let answered = again.recv_type("session_started").await;
        assert_eq!(
            answered["session_id"],
            alice_session.as_str(),
            "{named}: {answered}"
        );
    }
    // U+0000 is refused like anywhere else, and changes nothing.
    again
        .expect_error(
            json!({"type": "session_init", "session_id": "a\u{0}b"}),
            "invalid_field",
        )
        .await;
    // A visitor token means nothing for a signed-in user.
    let (_, visitor_started) = visitor(&server).await;
    again
        .send(json!({"type": "session_init", "visitor_token": visitor_started["visitor_token"]}))
        .await;
    let answered = again.recv_type("session_started").await;
    assert_eq!(answered["session_id"], alice_session.as_str(), "{answered}");
    again.assert_alive().await;
}

#[tokio::test]
async fn closing_rates_the_session_and_refuses_new_messages() {
    let provider = FakeProvider::start(Behaviour::Plain("Done.")).await;
    let server = server(&provider).await;
    let (mut ws, started) = visitor(&server).await;
    let session_id = started["session_id"].as_str().unwrap().to_owned();
    ask(&mut ws, "Is it fixed?").await;
    ws.recv_type("typing").await;

    // A rating out of range is refused and closes nothing.
    let refused = ws
        .request(json!({"type": "session_close", "rating": 6}))
        .await;
    assert_eq!(refused["code"], "invalid_field", "{refused}");
    let refused = ws
        .request(json!({"type": "session_close", "rating": "5"}))
        .await;
    assert_eq!(refused["code"], "invalid_field", "{refused}");
    let (_, answer) = ask(&mut ws, "Still open?").await;
    assert_eq!(answer["content"], "Done.");
    ws.recv_type("typing").await;

    ws.send(json!({"type": "session_close", "rating": 5, "feedback": "Quick and kind"}))
        .await;
    let closed = ws.recv_type("session_closed").await;
    assert_eq!(closed["session_id"], session_id.as_str(), "{closed}");
    let refused = ws
        .request(json!({"type": "message", "content": "One more thing"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "forbidden");
    assert!(
        refused["message"].as_str().unwrap().contains("ended"),
        "{refused}"
    );
    let (_, room) = server
        .server_api()
        .get(&format!("/api/v1/rooms/{session_id}"))
        .await;
    assert_eq!(room["closed"], true, "{room}");
    // The rating is stored with the session, readable by the app, counted.
    let (status, rated) = server
        .server_api()
        .get(&format!("/api/v1/rooms/{session_id}/rating"))
        .await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["rating"]["rating"], 5, "{rated}");
    assert_eq!(rated["rating"]["feedback"], "Quick and kind");
    let rater = rated["rating"]["user_id"].as_str().unwrap();
    assert!(rater.starts_with("anon-"), "rated by the visitor: {rated}");
    let (_, stats) = server.server_api().get("/api/v1/stats").await;
    assert_eq!(
        stats["ratings"],
        json!({"count": 1, "average": 5.0}),
        "{stats}"
    );
    let stored_contents: Vec<Value> = stored(&server, &session_id)
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert!(!stored_contents.contains(&json!("One more thing")));

    // session_init starts a new session, with the welcome.
    ws.send(json!({"type": "session_init"})).await;
    let next = ws.recv_type("session_started").await;
    assert_ne!(next["session_id"], session_id.as_str(), "{next}");
    assert_eq!(next["resumed"], false);
    let welcome = ws.recv_type("message").await;
    assert_eq!(welcome["message"]["content"], WELCOME);
}

#[tokio::test]
async fn clear_ends_the_session_without_storing_the_command() {
    let provider = FakeProvider::start(Behaviour::Plain("Hello!")).await;
    let server = server(&provider).await;
    let (mut ws, started) = visitor(&server).await;
    let session_id = started["session_id"].as_str().unwrap().to_owned();
    ask(&mut ws, "Hi").await;
    ws.send(json!({"type": "message", "content": "/clear"}))
        .await;
    let closed = ws.recv_type("session_closed").await;
    assert_eq!(closed["session_id"], session_id.as_str());
    let contents: Vec<Value> = stored(&server, &session_id)
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert!(!contents.contains(&json!("/clear")), "{contents:?}");
    // Its visitor token no longer resumes it.
    let token = started["visitor_token"].as_str().unwrap();
    let (_, back) = connect(&server, &format!("?token={token}"), &[]).await;
    assert_ne!(back["session_id"], session_id.as_str(), "{back}");
}

#[tokio::test]
async fn idle_sessions_expire_and_their_visitor_tokens_stop_working() {
    let provider = FakeProvider::start(Behaviour::Plain("Hi.")).await;
    let tweak = help_desk(&provider);
    let server = TestServer::start_with(move |c| {
        tweak(c);
        c.assistant.session_ttl = 2;
    })
    .await;
    let (mut ws, started) = visitor(&server).await;
    let session_id = started["session_id"].as_str().unwrap().to_owned();
    let token = started["visitor_token"].as_str().unwrap().to_owned();
    ask(&mut ws, "Anyone there?").await;
    // Idle for the TTL (2 s) plus at most a sweep round (1 s).
    let closed = ws.recv_type("session_closed").await;
    assert_eq!(closed["session_id"], session_id.as_str());
    let refused = ws
        .request(json!({"type": "message", "content": "Back now"}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    let (_, back) = connect(&server, &format!("?token={token}"), &[]).await;
    assert_ne!(back["session_id"], session_id.as_str(), "{back}");
    assert_eq!(back["resumed"], false);
    let (_, room) = server
        .server_api()
        .get(&format!("/api/v1/rooms/{session_id}"))
        .await;
    assert_eq!(room["closed"], true, "{room}");
}

#[tokio::test]
async fn an_active_session_does_not_expire() {
    let provider = FakeProvider::start(Behaviour::Plain("Ok.")).await;
    let tweak = help_desk(&provider);
    let server = TestServer::start_with(move |c| {
        tweak(c);
        c.assistant.session_ttl = 3;
    })
    .await;
    let (mut ws, started) = visitor(&server).await;
    for question in ["one", "two", "three", "four"] {
        ask(&mut ws, question).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (_, room) = server
        .server_api()
        .get(&format!(
            "/api/v1/rooms/{}",
            started["session_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(room["closed"], false, "{room}");
}

#[tokio::test]
async fn visitors_are_rate_limited_by_their_own_identity_in_seconds() {
    let provider = FakeProvider::start(Behaviour::Plain("Ok.")).await;
    let tweak = help_desk(&provider);
    let server = TestServer::start_with(move |c| {
        tweak(c);
        c.rate_limit.anonymous_messages_per_minute = 1;
        c.rate_limit.anonymous_burst = 1;
    })
    .await;
    // Two visitors from one address; the second only looks, for now.
    let (_, second) = visitor(&server).await;
    let (mut first, _) = visitor(&server).await;
    ask(&mut first, "one").await;
    let refused = first
        .request(json!({"type": "message", "content": "two"}))
        .await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let wait = refused["retry_after"]
        .as_u64()
        .expect("retry_after in seconds");
    assert!((1..=60).contains(&wait), "{refused}");
    assert!(refused.get("retry_after_ms").is_none(), "{refused}");

    // The address's allowance is spent, but a visitor who comes back with
    // its token has its own.
    let token = second["visitor_token"].as_str().unwrap();
    let (mut back, _) = connect(&server, &format!("?token={token}"), &[]).await;
    let (_, answer) = ask(&mut back, "mine").await;
    assert_eq!(answer["content"], "Ok.");
    let refused = back
        .request(json!({"type": "message", "content": "again"}))
        .await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
}

#[tokio::test]
async fn refusals_and_bad_frames() {
    let provider = FakeProvider::start(Behaviour::Plain("Ok.")).await;
    // Anonymous access off: no token is 4001, a visitor token 4003.
    let closed_door = TestServer::start_with(|c| {
        c.assistant.base_url = provider.base_url.clone();
    })
    .await;
    let mut ws = closed_door.ws_raw(PATH, &[]).await;
    assert_eq!(ws.ended().await, Ended::Closed(4001));
    let server = server(&provider).await;
    let (_, started) = visitor(&server).await;
    let token = started["visitor_token"].as_str().unwrap().to_owned();
    let mut ws = closed_door
        .ws_raw(&format!("{PATH}?token={token}"), &[])
        .await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));

    // A forged visitor token (another key) is refused, not a fresh visitor.
    let forged = common::token_signed_with(
        "not-the-secret",
        &json!({"sub": "anon-x", "sid": "s", "typ": "confab-visitor", "exp": common::now_s() + 60, "iat": 0}),
    );
    let mut ws = server.ws_raw(&format!("{PATH}?token={forged}"), &[]).await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
    // A visitor token is no user token elsewhere.
    let mut ws = server.ws_raw(&format!("/ws?token={token}"), &[]).await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
    let (status, _) = server.api_with_token(&token).get("/api/v1/rooms").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad frames are answered; the connection stays.
    let (mut ws, _) = visitor(&server).await;
    ws.recv_type("message").await;
    for (frame, code) in [
        (
            json!({"type": "subscribe_room", "room_id": "r"}),
            "unknown_type",
        ),
        (
            json!({"type": "session_close", "rating": 2.5}),
            "invalid_field",
        ),
        (
            json!({"type": "session_init", "session_id": {"a": 1}}),
            "invalid_field",
        ),
        (
            json!({"type": "session_init", "visitor_token": "garbage"}),
            "invalid_field",
        ),
        (json!({"type": "message"}), "invalid_field"),
        (
            json!({"type": "message", "content": "   "}),
            "empty_message",
        ),
    ] {
        ws.expect_error(frame, code).await;
    }
    ws.send_text("{").await;
    assert_eq!(ws.recv_type("error").await["code"], "invalid_json");
    ws.send_binary(vec![1, 2, 3]).await;
    assert_eq!(ws.recv_type("error").await["code"], "invalid_json");
    ws.assert_alive().await;
}

#[tokio::test]
async fn two_nodes_serve_one_visitor() {
    for broker in common::BROKERS {
        let provider = FakeProvider::start(Behaviour::Plain("From any node.")).await;
        let (a, b) = {
            let tweak = help_desk(&provider);
            common::cluster_with(broker, tweak.clone(), tweak).await
        };
        let (mut on_a, started) = visitor(&a).await;
        let session_id = started["session_id"].as_str().unwrap().to_owned();
        ask(&mut on_a, "first").await;
        // Back on the other node: the same session, and a second tab on
        // the first node sees what is said there.
        let token = started["visitor_token"].as_str().unwrap();
        let (mut on_b, resumed) = connect(&b, &format!("?token={token}"), &[]).await;
        assert_eq!(resumed["session_id"], session_id.as_str(), "{broker}");
        for _ in 0..3 {
            on_b.recv_type("message").await;
        }
        let (_, answer) = ask(&mut on_b, "second").await;
        assert_eq!(answer["content"], "From any node.");
        let seen = message_from(&mut on_a, "assistant").await;
        assert_eq!(seen["id"], answer["id"], "{broker}");
        // Closing on one node closes it on the other.
        on_b.send(json!({"type": "session_close"})).await;
        assert_eq!(
            on_b.recv_type("session_closed").await["session_id"],
            session_id.as_str()
        );
        assert_eq!(
            on_a.recv_type("session_closed").await["session_id"],
            session_id.as_str()
        );
    }
}

#[tokio::test]
async fn every_connection_is_counted_under_its_endpoint() {
    let provider = FakeProvider::start(Behaviour::Plain("Ok.")).await;
    let server = server(&provider).await;
    let (_ws, _) = visitor(&server).await;
    let scrape = server
        .scrape_until(|s| s.get(r#"confab_ws_connections{endpoint="/ws/assistant/"}"#) == 1.0)
        .await;
    assert_eq!(
        scrape.get(r#"confab_ws_connections{endpoint="/ws/assistant/"}"#),
        1.0
    );
}

#[tokio::test]
async fn a_failing_provider_still_answers_the_visitor_with_the_fallback() {
    for (behaviour, reason) in [
        (Behaviour::Fail(500), "http_error"),
        (Behaviour::Fail(429), "rate_limited"),
        (Behaviour::Malformed, "malformed"),
        (Behaviour::Hang, "timeout"),
    ] {
        let provider = FakeProvider::start(behaviour).await;
        let tweak = help_desk(&provider);
        let server = TestServer::start_with(move |c| {
            tweak(c);
            c.assistant.timeout_s = 1;
            c.assistant.fallback_reply = "A human will answer soon.".into();
        })
        .await;
        let (mut ws, _) = visitor(&server).await;
        let (_, answer) = ask(&mut ws, "Hello?").await;
        assert_eq!(answer["content"], "A human will answer soon.", "{reason}");
        assert_eq!(answer["metadata"]["fallback"], true, "{answer}");
        assert_eq!(answer["metadata"]["reason"], reason, "{answer}");
        assert!(
            answer["metadata"]["processing_time_ms"].is_u64(),
            "{answer}"
        );
    }
}
