//! `GET /metrics`: a real server does real work over WebSockets, and its
//! scrape, parsed from the text format, moves by exactly that work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, Scrape, TestServer};
use serde_json::json;

const ENDPOINTS: [&str; 3] = ["/ws", "/ws/chat", "/ws/chat/"];
const KINDS: [&str; 8] = [
    "message",
    "reaction",
    "typing",
    "handshake",
    "user_connections",
    "address_connections",
    "anonymous_message",
    "anonymous_connections",
];

fn connections(s: &Scrape, endpoint: &str) -> f64 {
    s.get(&format!("confab_ws_connections{{endpoint=\"{endpoint}\"}}"))
}

fn refusals(s: &Scrape, kind: &str) -> f64 {
    s.get(&format!(
        "confab_rate_limit_refusals_total{{kind=\"{kind}\"}}"
    ))
}

#[tokio::test]
async fn every_series_is_there_from_the_start_with_its_type() {
    let server = TestServer::start().await;
    let s = server.scrape().await;
    assert!(s.text.ends_with("# EOF\n"), "{}", s.text);
    for (family, kind) in [
        ("confab_ws_connections", "gauge"),
        ("confab_messages_stored", "counter"),
        ("confab_deliveries", "counter"),
        ("confab_fanout_seconds", "histogram"),
        ("confab_slow_consumer_closes", "counter"),
        ("confab_heartbeat_closes", "counter"),
        ("confab_rate_limit_refusals", "counter"),
        ("confab_broker_events", "counter"),
        ("confab_broker_errors", "counter"),
        ("confab_store_commit_seconds", "histogram"),
        ("confab_store_batch_size", "histogram"),
        ("confab_assistant_requests", "counter"),
        ("confab_assistant_fallbacks", "counter"),
        ("confab_assistant_recovered", "counter"),
        ("confab_app_command_calls", "counter"),
    ] {
        assert_eq!(
            s.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    for endpoint in ENDPOINTS {
        assert_eq!(connections(&s, endpoint), 0.0);
    }
    for kind in KINDS {
        assert_eq!(refusals(&s, kind), 0.0, "{kind}");
    }
    for series in [
        "confab_messages_stored_total",
        "confab_deliveries_total",
        "confab_fanout_seconds_count",
        "confab_slow_consumer_closes_total",
        "confab_heartbeat_closes_total",
        "confab_broker_events_total{direction=\"publish\"}",
        "confab_broker_events_total{direction=\"receive\"}",
        "confab_broker_errors_total{op=\"publish\"}",
        "confab_broker_errors_total{op=\"receive\"}",
        "confab_broker_errors_total{op=\"subscribe\"}",
        "confab_assistant_requests_total{outcome=\"ok\"}",
        "confab_assistant_requests_total{outcome=\"error\"}",
        "confab_assistant_requests_total{outcome=\"timeout\"}",
        "confab_assistant_fallbacks_total",
        "confab_assistant_recovered_total",
        "confab_app_command_calls_total{outcome=\"ok\"}",
        "confab_app_command_calls_total{outcome=\"error\"}",
        "confab_app_command_calls_total{outcome=\"timeout\"}",
        "confab_app_command_calls_total{outcome=\"busy\"}",
    ] {
        assert_eq!(s.get(series), 0.0, "{series}");
    }
    // Migrations ran on the writer before the server took requests, but
    // not as batched jobs: the histograms exist, whatever their counts.
    s.get("confab_store_commit_seconds_count");
    s.get("confab_store_batch_size_sum");
    server.stop().await;
}

#[tokio::test]
async fn work_moves_the_counters_by_exactly_that_work() {
    let server = TestServer::start_with(|config| {
        config.rate_limit.messages_per_minute = 1;
        config.rate_limit.burst = 3;
        config.limits.max_connections_per_user = 1;
    })
    .await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    let mut bob = server.ws_at("/ws/chat/", "bob").await;
    alice.subscribe(&room).await;
    bob.subscribe(&room).await;

    let before = server.scrape().await;
    assert_eq!(connections(&before, "/ws"), 1.0);
    assert_eq!(connections(&before, "/ws/chat/"), 1.0);
    assert_eq!(connections(&before, "/ws/chat"), 0.0);
    assert_eq!(before.get("confab_messages_stored_total"), 0.0);

    // Three messages, each fanned out to two subscribers.
    for n in 1..=3 {
        alice.send_message(&room, &format!("m{n}")).await;
    }
    bob.recv_new_messages(3).await;
    let deliveries = before.get("confab_deliveries_total") + 6.0;
    let after = server
        .scrape_until(|s| {
            s.get("confab_deliveries_total") >= deliveries
                && s.get("confab_fanout_seconds_count") >= 3.0
        })
        .await;
    assert_eq!(after.get("confab_messages_stored_total"), 3.0);
    assert_eq!(after.get("confab_deliveries_total"), deliveries);
    assert_eq!(after.get("confab_fanout_seconds_count"), 3.0);
    assert_eq!(after.get("confab_fanout_seconds_bucket{le=\"+Inf\"}"), 3.0);
    // Three append jobs committed, in one batch or more.
    let commits = after.get("confab_store_commit_seconds_count")
        - before.get("confab_store_commit_seconds_count");
    let jobs = after.get("confab_store_batch_size_sum") - before.get("confab_store_batch_size_sum");
    assert!(commits >= 1.0, "{}", after.text);
    assert!(jobs >= 3.0 && jobs >= commits, "{}", after.text);
    assert_eq!(
        after.get("confab_store_batch_size_bucket{le=\"+Inf\"}"),
        after.get("confab_store_batch_size_count")
    );

    // The burst is spent: the fourth send is refused, and counted once.
    alice
        .expect_error(
            json!({"type": "send_message", "room_id": room, "content": "m4"}),
            "rate_limited",
        )
        .await;
    // A second connection of alice passes the user cap: closed with 4029.
    let mut again = server
        .ws_raw(
            "/ws",
            &[("authorization", format!("Bearer {}", server.token("alice")))],
        )
        .await;
    assert_eq!(again.ended().await, Ended::Closed(4029));
    let refused = server.scrape().await;
    assert_eq!(refusals(&refused, "message"), 1.0);
    assert_eq!(refusals(&refused, "user_connections"), 1.0);
    for kind in KINDS
        .into_iter()
        .filter(|k| !["message", "user_connections"].contains(k))
    {
        assert_eq!(refusals(&refused, kind), 0.0, "{kind}");
    }
    assert_eq!(refused.get("confab_messages_stored_total"), 3.0);
    assert_eq!(
        connections(&refused, "/ws"),
        1.0,
        "a refused socket is no session"
    );
    // One node, no broker: nothing crossed one.
    assert_eq!(
        refused.get("confab_broker_events_total{direction=\"publish\"}"),
        0.0
    );

    // Bob leaves: his endpoint's gauge goes back down.
    bob.stream.close(None).await.unwrap();
    let gone = server
        .scrape_until(|s| connections(s, "/ws/chat/") == 0.0)
        .await;
    assert_eq!(connections(&gone, "/ws"), 1.0);
    assert_eq!(gone.get("confab_slow_consumer_closes_total"), 0.0);
    server.stop().await;
}

#[tokio::test]
async fn each_server_counts_only_its_own_work() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let room = a.room("alice", &[]).await;
    let mut alice = a.ws("alice").await;
    alice.send_message(&room, "only on a").await;
    a.scrape_until(|s| s.get("confab_messages_stored_total") == 1.0)
        .await;
    assert_eq!(b.scrape().await.get("confab_messages_stored_total"), 0.0);
    a.stop().await;
    b.stop().await;
}
