//! The assistant bot (protocol.md §6): in a room of type `assistant` each user
//! message goes, with the room's recent history, to an OpenAI-compatible
//! provider (here a real HTTP server on 127.0.0.1 that speaks its protocol),
//! comes back as `assistant_delta` frames while the bot shows typing, and is
//! stored as the bot's message; a provider that fails, hangs or is missing
//! gets the configured fallback, marked `metadata.fallback: true`. A
//! question whose node stops before its reply is stored is answered after a
//! restart, or by another node, and once only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::provider::{Behaviour, FakeProvider};
use common::{BROKERS, Ended, TestServer, WAIT, WsClient, cluster_with};
use confab_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FALLBACK: &str = "The assistant is away; a human will answer soon.";

/// A server whose assistant asks `provider` (when given).
async fn server_with(provider: Option<&FakeProvider>, timeout_s: u64) -> TestServer {
    let base_url = provider.map(|p| p.base_url.clone()).unwrap_or_default();
    TestServer::start_with(move |c| {
        common::unlimited(c);
        c.assistant.base_url = base_url;
        c.assistant.api_key = "sk-test".into();
        c.assistant.model = "test-model".into();
        c.assistant.system_prompt = "Be brief.".into();
        c.assistant.max_history_messages = 2;
        c.assistant.timeout_s = timeout_s;
        c.assistant.fallback_reply = FALLBACK.into();
    })
    .await
}

/// An `assistant` room owned by `owner`, with `owner` subscribed on a socket.
async fn assistant_room(server: &TestServer, owner: &str) -> (String, WsClient) {
    let (status, body) = server
        .api(owner)
        .post(
            "/api/v1/rooms",
            json!({"name": "help", "room_type": "assistant"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let room_id = body["id"].as_str().unwrap().to_owned();
    let mut ws = server.ws(owner).await;
    ws.subscribe(&room_id).await;
    (room_id, ws)
}

/// What the bot did for one question, as the asker's socket saw it.
#[derive(Debug)]
struct Answer {
    /// `assistant_delta` frames, in order.
    deltas: Vec<Value>,
    /// The bot's `new_message` frame's message.
    reply: Value,
    /// Frame types from the bot typing to it stopping, in order.
    order: Vec<String>,
}

/// Sends `content` and reads until the bot stopped typing.
async fn ask(ws: &mut WsClient, room_id: &str, content: &str) -> (String, Answer) {
    let ack = ws.send_message(room_id, content).await;
    let question = ack["message_id"].as_str().unwrap().to_owned();
    let (mut deltas, mut reply, mut order) = (Vec::new(), Value::Null, Vec::new());
    let mut typing = false;
    loop {
        let frame = ws.recv_json().await;
        let kind = frame["type"].as_str().unwrap().to_owned();
        let from_bot = frame["user_id"] == "assistant"
            || frame["message"]["sender"]["id"] == "assistant"
            || kind == "assistant_delta";
        if !from_bot {
            continue;
        }
        order.push(kind.clone());
        match kind.as_str() {
            "typing" if frame["is_typing"] == true => typing = true,
            "typing" => {
                assert!(typing, "typing stopped before it started");
                return (
                    question,
                    Answer {
                        deltas,
                        reply,
                        order,
                    },
                );
            }
            "assistant_delta" => deltas.push(frame),
            "new_message" => reply = frame["message"].clone(),
            other => panic!("unexpected frame from the bot: {other}"),
        }
    }
}

#[tokio::test]
async fn a_question_is_streamed_back_and_stored_as_the_bots_reply() {
    let provider = FakeProvider::start(Behaviour::Stream(vec!["Hel", "lo, ", "Jane!"])).await;
    let server = server_with(Some(&provider), 30).await;
    let (room_id, mut ws) = assistant_room(&server, "jane").await;

    // The bot is a member of every assistant room.
    let (status, members) = server
        .api("jane")
        .get(&format!("/api/v1/rooms/{room_id}/members"))
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let ids: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap_or_default())
        .collect();
    assert!(
        ids.contains(&"assistant") && ids.contains(&"jane"),
        "{members}"
    );

    let (question, answer) = ask(&mut ws, &room_id, "Hi, who are you?").await;
    assert_eq!(answer.order.first().map(String::as_str), Some("typing"));
    let pieces: Vec<&str> = answer
        .deltas
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["Hel", "lo, ", "Jane!"]);
    let reply_id = answer.reply["id"].as_str().unwrap();
    for delta in &answer.deltas {
        assert_eq!(delta["room_id"], room_id.as_str());
        assert_eq!(delta["reply_id"], reply_id, "deltas name the stored reply");
    }
    assert_eq!(answer.reply["content"], "Hello, Jane!");
    assert_eq!(answer.reply["sender"]["id"], "assistant");
    assert_eq!(answer.reply["reply_to"], question.as_str());
    // A real reply carries only its processing time, no fallback marks.
    let metadata = answer.reply["metadata"].as_object().unwrap();
    assert_eq!(metadata.keys().collect::<Vec<_>>(), ["processing_time_ms"]);
    assert!(metadata["processing_time_ms"].is_u64());
    assert_eq!(
        answer.order.last().map(String::as_str),
        Some("typing"),
        "typing stops after the reply: {:?}",
        answer.order
    );

    // What the provider was asked: model, key, streaming, the system
    // prompt, then the room's messages with their roles.
    let requests = provider.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(requests[0].body["model"], "test-model");
    assert_eq!(requests[0].body["stream"], true);
    assert_eq!(
        requests[0].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi, who are you?"},
        ])
    );

    // Two more questions: the third carries at most two earlier messages
    // (max_history_messages), the bot's own replies as `assistant`.
    ask(&mut ws, &room_id, "second").await;
    ask(&mut ws, &room_id, "third").await;
    let requests = provider.requests();
    assert_eq!(requests.len(), 3, "the bot's replies ask nothing");
    assert_eq!(
        requests[2].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "Hello, Jane!"},
            {"role": "user", "content": "third"},
        ])
    );

    // Stored like any message: history has the three questions and answers.
    let history = server.all_messages("jane", &room_id).await;
    let senders: Vec<&str> = history
        .iter()
        .map(|m| m["sender"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        senders,
        [
            "jane",
            "assistant",
            "jane",
            "assistant",
            "jane",
            "assistant"
        ]
    );
    let scrape = server.scrape().await;
    assert_eq!(
        scrape.get("confab_assistant_requests_total{outcome=\"ok\"}"),
        3.0
    );
    assert_eq!(scrape.get("confab_assistant_fallbacks_total"), 0.0);
    server.stop().await;
}

#[tokio::test]
async fn a_plain_completion_is_one_delta_and_the_reply() {
    let provider = FakeProvider::start(Behaviour::Plain("Plain answer.")).await;
    let server = server_with(Some(&provider), 30).await;
    let (room_id, mut ws) = assistant_room(&server, "jane").await;
    let (_, answer) = ask(&mut ws, &room_id, "Hello?").await;
    assert_eq!(answer.deltas.len(), 1);
    assert_eq!(answer.deltas[0]["delta"], "Plain answer.");
    assert_eq!(answer.reply["content"], "Plain answer.");
    assert_eq!(answer.reply["id"], answer.deltas[0]["reply_id"]);
    server.stop().await;
}

/// The fallback reply for one question, with the provider's behaviour.
async fn fallback_for(provider: Option<&FakeProvider>, timeout_s: u64) -> (Value, TestServer) {
    let server = server_with(provider, timeout_s).await;
    let (room_id, mut ws) = assistant_room(&server, "jane").await;
    let (question, answer) = ask(&mut ws, &room_id, "Anyone there?").await;
    assert_eq!(answer.reply["content"], FALLBACK);
    assert_eq!(answer.reply["sender"]["id"], "assistant");
    assert_eq!(answer.reply["reply_to"], question.as_str());
    assert_eq!(answer.reply["metadata"]["fallback"], true);
    (answer.reply, server)
}

#[tokio::test]
async fn a_failing_provider_gets_the_fallback() {
    let provider = FakeProvider::start(Behaviour::Fail(500)).await;
    let (reply, server) = fallback_for(Some(&provider), 30).await;
    assert_eq!(reply["metadata"]["reason"], "http_error");
    assert_eq!(reply["metadata"]["status"], 500);
    assert!(reply["metadata"]["processing_time_ms"].is_u64(), "{reply}");
    assert_eq!(provider.requests().len(), 1);
    let scrape = server.scrape().await;
    assert_eq!(
        scrape.get("confab_assistant_requests_total{outcome=\"error\"}"),
        1.0
    );
    assert_eq!(scrape.get("confab_assistant_fallbacks_total"), 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_provider_over_the_timeout_gets_the_fallback() {
    let provider = FakeProvider::start(Behaviour::Hang).await;
    let (reply, server) = fallback_for(Some(&provider), 1).await;
    assert_eq!(reply["metadata"]["reason"], "timeout");
    let scrape = server.scrape().await;
    assert_eq!(
        scrape.get("confab_assistant_requests_total{outcome=\"timeout\"}"),
        1.0
    );
    assert_eq!(scrape.get("confab_assistant_fallbacks_total"), 1.0);
    server.stop().await;
}

#[tokio::test]
async fn without_a_provider_every_question_gets_the_fallback() {
    let (reply, server) = fallback_for(None, 30).await;
    assert_eq!(reply["metadata"]["reason"], "not_configured");
    let scrape = server.scrape().await;
    assert_eq!(scrape.get("confab_assistant_fallbacks_total"), 1.0);
    for outcome in ["ok", "error", "timeout"] {
        let series = format!("confab_assistant_requests_total{{outcome=\"{outcome}\"}}");
        assert_eq!(scrape.get(&series), 0.0, "{series}");
    }
    server.stop().await;
}

#[tokio::test]
async fn only_user_text_in_assistant_rooms_asks_the_bot() {
    let provider = FakeProvider::start(Behaviour::Stream(vec!["ok"])).await;
    let server = server_with(Some(&provider), 30).await;
    // A group room: nobody answers.
    let group = server.room("jane", &["bob"]).await;
    let mut ws = server.ws("bob").await;
    ws.subscribe(&group).await;
    ws.send_message(&group, "hello group").await;
    // A system message posted by the back-end into an assistant room: no question.
    let (room_id, mut asker) = assistant_room(&server, "jane").await;
    let (status, body) = server
        .server_api()
        .post(
            &format!("/api/v1/rooms/{room_id}/messages"),
            json!({"content": "Session opened", "message_type": "system"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    asker.recv_type("new_message").await;
    // A user's text does ask, once; the system message is context. Had the
    // group message or the system message (both stored first) asked, the
    // provider would have seen those requests by the end of this answer.
    ask(&mut asker, &room_id, "now a question").await;
    asker.expect_silence(Duration::from_millis(300)).await;
    let requests = provider.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Session opened"},
            {"role": "user", "content": "now a question"},
        ])
    );
    server.stop().await;
}

#[tokio::test]
async fn nobody_can_sign_in_as_the_bot() {
    let server = server_with(None, 30).await;
    let token = server.token("assistant");
    let mut ws = server
        .ws_raw("/ws", &[("authorization", format!("Bearer {token}"))])
        .await;
    assert_eq!(ws.ended().await, Ended::Closed(4003));
    let (status, body) = server.api("assistant").get("/api/v1/rooms").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_rate_limited_or_malformed_provider_gets_the_fallback_with_its_reason() {
    let provider = FakeProvider::start(Behaviour::Fail(429)).await;
    let (reply, server) = fallback_for(Some(&provider), 30).await;
    assert_eq!(reply["metadata"]["reason"], "rate_limited", "{reply}");
    assert_eq!(reply["metadata"]["status"], 429);
    server.stop().await;
    let provider = FakeProvider::start(Behaviour::Malformed).await;
    let (reply, server) = fallback_for(Some(&provider), 30).await;
    assert_eq!(reply["metadata"]["reason"], "malformed", "{reply}");
    assert!(reply["metadata"].get("status").is_none(), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn every_reply_says_how_long_it_took() {
    let provider = FakeProvider::start(Behaviour::Slow(Duration::from_millis(300), "Done.")).await;
    let server = server_with(Some(&provider), 30).await;
    let (room_id, mut ws) = assistant_room(&server, "jane").await;
    let (_, answer) = ask(&mut ws, &room_id, "How long?").await;
    assert_eq!(answer.reply["content"], "Done.");
    let took = answer.reply["metadata"]["processing_time_ms"]
        .as_u64()
        .unwrap();
    assert!(took >= 300, "{took} ms for a provider that waited 300 ms");
    assert!(answer.reply["metadata"].get("fallback").is_none());
    server.stop().await;
}

#[tokio::test]
async fn provider_requests_in_flight_are_capped_and_every_question_is_answered() {
    let provider = FakeProvider::start(Behaviour::Slow(
        Duration::from_millis(400),
        "Queued answer.",
    ))
    .await;
    let base_url = provider.base_url.clone();
    let server = TestServer::start_with(move |c| {
        common::unlimited(c);
        c.assistant.base_url = base_url;
        c.assistant.max_concurrent = 2;
    })
    .await;
    // Five visitors' rooms ask at once: two are answered at a time, the rest wait.
    let mut askers = Vec::new();
    for n in 0..5 {
        let (room_id, ws) = assistant_room(&server, &format!("user-{n}")).await;
        askers.push((room_id, ws));
    }
    for (room_id, ws) in &mut askers {
        ws.send_message(room_id, "Hello?").await;
    }
    for (room_id, ws) in &mut askers {
        let reply = loop {
            let frame = ws.recv_type("new_message").await;
            if frame["message"]["sender"]["id"] == "assistant" {
                break frame;
            }
        };
        assert_eq!(reply["message"]["content"], "Queued answer.", "{room_id}");
    }
    assert_eq!(provider.requests().len(), 5);
    assert_eq!(
        provider.peak_in_flight(),
        2,
        "the cap was passed or never reached"
    );
    server.stop().await;
}

/// Short recovery settings: a question left unanswered for 2 s is answered
/// by the next look, one a second (the timeout must stay below the grace).
fn recovering(config: &mut Config) {
    config.assistant.timeout_s = 1;
    config.assistant.recovery_grace_s = 2;
    config.assistant.recovery_interval_s = 1;
}

/// The bot's messages in a room's history, as `user` reads it over REST.
async fn bot_replies(server: &TestServer, user: &str, room_id: &str) -> Vec<Value> {
    server
        .all_messages(user, room_id)
        .await
        .into_iter()
        .filter(|m| m["sender"]["id"] == "assistant")
        .collect()
}

/// Reads history until the bot has replied (panics after [`WAIT`]); then,
/// two looks of the recovery later, checks that it replied exactly once.
async fn the_one_reply(server: &TestServer, user: &str, room_id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    while bot_replies(server, user, room_id).await.is_empty() {
        assert!(Instant::now() < deadline, "the question was never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let replies = bot_replies(server, user, room_id).await;
    assert_eq!(replies.len(), 1, "one reply, once: {replies:?}");
    replies[0].clone()
}

/// Reads until the bot's answer that is under way has relayed its first
/// piece.
async fn answer_under_way(ws: &mut WsClient) {
    let delta = ws.recv_type("assistant_delta").await;
    assert_eq!(delta["delta"], "Thinking", "{delta}");
}

#[tokio::test]
async fn a_question_cut_off_by_a_restart_is_answered_after_it() {
    // The first server's provider hangs for a minute: the answer is under
    // way when the server stops.
    let hanging = FakeProvider::start(Behaviour::Hang).await;
    let mut first = server_with(Some(&hanging), 30).await;
    let (room_id, mut ws) = assistant_room(&first, "jane").await;
    let ack = ws.send_message(&room_id, "Still there?").await;
    let question = ack["message_id"].as_str().unwrap().to_owned();
    answer_under_way(&mut ws).await;
    let data = first.keep_data_dir().unwrap();
    let stopping = Instant::now();
    first.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "the shutdown waited {:?} for the hanging provider",
        stopping.elapsed()
    );

    // Restarted on the same data, with a provider that answers: the
    // question the first server was answering is answered, once.
    let working = FakeProvider::start(Behaviour::Stream(vec!["Back ", "again."])).await;
    let base_url = working.base_url.clone();
    let second = TestServer::start_in(data.path(), move |c| {
        common::unlimited(c);
        c.assistant.base_url = base_url;
        recovering(c);
    })
    .await;
    let reply = the_one_reply(&second, "jane", &room_id).await;
    assert_eq!(reply["content"], "Back again.", "{reply}");
    assert_eq!(reply["reply_to"], question.as_str());
    assert_eq!(reply["metadata"]["recovered"], true, "{reply}");
    assert!(reply["metadata"].get("fallback").is_none(), "{reply}");
    let requests = working.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].body["messages"],
        json!([{"role": "user", "content": "Still there?"}]),
        "asked with the room's context, as any question"
    );
    let scrape = second.scrape().await;
    assert_eq!(scrape.get("confab_assistant_recovered_total"), 1.0);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_whose_node_stops_is_answered_by_another_node() {
    let hanging = FakeProvider::start(Behaviour::Hang).await;
    let working = FakeProvider::start(Behaviour::Stream(vec!["Node B ", "here."])).await;
    let (hanging_url, working_url) = (hanging.base_url.clone(), working.base_url.clone());
    let (mut a, b) = cluster_with(
        BROKERS[0],
        |c| {
            c.assistant.base_url = hanging_url;
            c.assistant.timeout_s = 30;
        },
        |c| {
            c.assistant.base_url = working_url;
            recovering(c);
        },
    )
    .await;
    // Jane asks on node A and also follows the room on node B.
    let (room_id, mut on_a) = assistant_room(&a, "jane").await;
    let mut on_b = b.ws("jane").await;
    on_b.subscribe(&room_id).await;
    let ack = on_a.send_message(&room_id, "Hello?").await;
    let question = ack["message_id"].as_str().unwrap().to_owned();
    answer_under_way(&mut on_a).await;
    // Node A stops mid-answer (its data stays for node B).
    let _data = a.keep_data_dir();
    a.stop().await;

    // Node B answers, and Jane sees the reply on B.
    let reply = loop {
        let frame = on_b.recv_type("new_message").await;
        if frame["message"]["sender"]["id"] == "assistant" {
            break frame["message"].clone();
        }
    };
    assert_eq!(reply["content"], "Node B here.", "{reply}");
    assert_eq!(reply["reply_to"], question.as_str());
    assert_eq!(reply["metadata"]["recovered"], true, "{reply}");
    let stored = the_one_reply(&b, "jane", &room_id).await;
    assert_eq!(stored["id"], reply["id"]);
    assert_eq!(working.requests().len(), 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_answered_twice_is_stored_once() {
    // Node A takes 5 s to answer; node B's recovery finds the question
    // unanswered after 2 s and answers it first. A's reply, ready later, is
    // the same question's second reply: not stored, not fanned out.
    let slow = FakeProvider::start(Behaviour::Slow(Duration::from_secs(5), "From A.")).await;
    let quick = FakeProvider::start(Behaviour::Plain("From B.")).await;
    let (slow_url, quick_url) = (slow.base_url.clone(), quick.base_url.clone());
    let (a, b) = cluster_with(
        BROKERS[0],
        |c| {
            c.assistant.base_url = slow_url;
            c.assistant.timeout_s = 10;
        },
        |c| {
            c.assistant.base_url = quick_url;
            recovering(c);
        },
    )
    .await;
    let (room_id, mut on_a) = assistant_room(&a, "jane").await;
    let ack = on_a.send_message(&room_id, "Who answers?").await;
    let question = ack["message_id"].as_str().unwrap().to_owned();

    // Jane, on A, sees both answers stream, and one reply: B's.
    let mut replies = Vec::new();
    let mut a_streamed = false;
    loop {
        let frame = on_a.recv_json().await;
        match frame["type"].as_str().unwrap() {
            "new_message" if frame["message"]["sender"]["id"] == "assistant" => {
                replies.push(frame["message"].clone());
            }
            "assistant_delta" if frame["delta"] == "From A." => a_streamed = true,
            // A's answer ends (its reply refused as a duplicate) with the bot
            // no longer typing.
            "typing" if a_streamed && frame["is_typing"] == false => break,
            _ => {}
        }
    }
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["content"], "From B.");
    assert_eq!(replies[0]["reply_to"], question.as_str());
    assert_eq!(replies[0]["metadata"]["recovered"], true);
    on_a.expect_silence(Duration::from_millis(300)).await;
    let stored = bot_replies(&a, "jane", &room_id).await;
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(stored[0]["id"], replies[0]["id"]);
    assert_eq!((slow.requests().len(), quick.requests().len()), (1, 1));
    a.stop().await;
    b.stop().await;
}
