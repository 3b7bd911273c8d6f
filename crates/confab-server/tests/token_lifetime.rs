//! Token lifetime (protocol.md §1, §7; issue 5, item 5): a connection is closed with
//! 4003 when its token expires, unless `refresh_token` brought a valid token
//! of the same user with a later `exp`. A refused refresh answers
//! `unauthorized` and changes nothing: it neither extends nor shortens.
//!
//! No timing assertions: a *witness* connection whose token expires a second
//! after the one under test is closed with 4003 first, which proves the first
//! token's expiry has passed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Ended, TestServer, now_s, token_signed_with};
use serde_json::json;
use std::time::Duration;

async fn server() -> TestServer {
    TestServer::start_with(|c| c.auth.leeway_s = 0).await
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_refresh_with_a_later_exp_keeps_the_connection_past_the_first_exp() {
    let server = server().await;
    let mut alice = server
        .ws_with_token(&server.token_with("alice", None, None, secs(2)))
        .await;
    let ack = alice
        .request(json!({"type": "refresh_token", "token": server.token("alice")}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");

    let mut witness = server
        .ws_with_token(&server.token_with("alice", None, None, secs(3)))
        .await;
    assert_eq!(witness.ended().await, Ended::Closed(4003));
    alice.assert_alive().await;
}

#[tokio::test]
async fn refused_refreshes_answer_unauthorized_and_do_not_extend() {
    let server = server().await;
    let mut alice = server
        .ws_with_token(&server.token_with("alice", None, None, secs(2)))
        .await;
    let later = now_s() + 3600;
    let refused = [
        ("another user", server.token("bob")),
        (
            "another secret",
            token_signed_with("not-the-secret", &json!({"sub": "alice", "exp": later})),
        ),
        ("garbage", "not.a.token".to_owned()),
        (
            "expired",
            server.token_from_claims(&json!({"sub": "alice", "exp": now_s() - 60})),
        ),
    ];
    for (what, token) in refused {
        let error = alice
            .expect_error(
                json!({"type": "refresh_token", "token": token}),
                "unauthorized",
            )
            .await;
        assert!(error["req_id"].is_string(), "{what}: {error}");
    }
    assert_eq!(alice.ended().await, Ended::Closed(4003));
}

#[tokio::test]
async fn a_token_expiring_earlier_is_refused_and_does_not_shorten() {
    let server = server().await;
    let mut alice = server.ws("alice").await; // one hour
    let sooner = server.token_with("alice", None, None, secs(2));
    alice
        .expect_error(
            json!({"type": "refresh_token", "token": sooner}),
            "unauthorized",
        )
        .await;
    let mut witness = server
        .ws_with_token(&server.token_with("alice", None, None, secs(3)))
        .await;
    assert_eq!(witness.ended().await, Ended::Closed(4003));
    alice.assert_alive().await;
}

#[tokio::test]
async fn an_absurd_exp_neither_crashes_nor_expires() {
    let server = server().await;
    let token = server.token_from_claims(&json!({"sub": "alice", "exp": u64::MAX}));
    let mut alice = server.ws_with_token(&token).await;
    alice.assert_alive().await;
    let ack = alice
        .request(json!({"type": "refresh_token", "token": token}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    alice.assert_alive().await;
}
