//! Behind a reverse proxy (issue 19 item 4): with the proxy's address in
//! `server.trusted_proxies`, the clients it forwards (`X-Forwarded-For`, or
//! `Forwarded` when so configured) each get their own per-address limits:
//! handshake burst, connection cap, anonymous visitors' cap and message
//! rate. Without that trust, or in the header the proxy does not set, a
//! forged address changes nothing; unreadable headers count as the proxy.
//! The test client connects from 127.0.0.1, which plays the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::receiver::{self, Receiver, Reply};
use common::{TestServer, WsClient};
use confab_server::Config;
use confab_server::config::ForwardedHeader;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The proxy (the test client's own address) is trusted.
fn behind_proxy(config: &mut Config) {
    config.server.trusted_proxies = vec!["127.0.0.1".into()];
}

/// A handshake as `user` (`None`: anonymous), through the proxy with
/// `forwarded` headers.
async fn dial(server: &TestServer, user: Option<&str>, forwarded: &[(&str, &str)]) -> WsClient {
    let mut headers: Vec<(&str, String)> = forwarded
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    if let Some(user) = user {
        headers.push(("authorization", format!("Bearer {}", server.token(user))));
    }
    server.ws_raw("/ws", &headers).await
}

/// Whether the connection was let in (`connection_established`) rather than
/// closed with 4029; returns the greeting when it was.
async fn admitted(ws: &mut WsClient) -> Option<Value> {
    loop {
        let next = tokio::time::timeout(common::WAIT, ws.stream.next())
            .await
            .expect("no answer in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                let hello: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(hello["type"], "connection_established", "{hello}");
                return Some(hello);
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4029, "{frame:?}");
                return None;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a greeting or 4029, got {other:?}"),
        }
    }
}

const XFF: &str = "x-forwarded-for";

#[tokio::test]
async fn each_forwarded_client_gets_its_own_handshake_burst() {
    let server = TestServer::start_with(|c| {
        behind_proxy(c);
        c.rate_limit.handshakes_per_minute = 1;
        c.rate_limit.handshake_burst = 2;
    })
    .await;
    // One client, through the proxy, seen as itself even behind a trusted
    // inner hop and with a forged address of its own at the left.
    let first = [(XFF, "203.0.113.1")];
    let first_via_inner = [(XFF, "6.6.6.6, 203.0.113.1, 127.0.0.1")];
    for forwarded in [&first[..], &first_via_inner[..]] {
        let mut ws = dial(&server, Some("alice"), forwarded).await;
        assert!(admitted(&mut ws).await.is_some());
    }
    let mut over = dial(&server, Some("alice"), &first).await;
    assert!(admitted(&mut over).await.is_none(), "its burst is spent");
    // Another client behind the same proxy has a burst of its own, IPv6 too,
    // and so has the proxy itself.
    for forwarded in [
        &[(XFF, "203.0.113.2")][..],
        &[(XFF, "203.0.113.2")][..],
        &[(XFF, "[2001:db8::7]:4711")][..],
        &[(XFF, "2001:db8::7")][..],
        &[][..],
        &[][..],
    ] {
        let mut ws = dial(&server, Some("bob"), forwarded).await;
        assert!(admitted(&mut ws).await.is_some(), "{forwarded:?}");
    }
    for forwarded in [
        &[(XFF, "203.0.113.2")][..],
        &[(XFF, "2001:db8::7")][..],
        &[][..],
    ] {
        let mut ws = dial(&server, Some("bob"), forwarded).await;
        assert!(admitted(&mut ws).await.is_none(), "{forwarded:?}");
    }
    // REST is not limited by address, and is served behind the proxy.
    let (status, _) = server.api("alice").get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn each_forwarded_client_gets_its_own_connection_caps() {
    let server = TestServer::start_with(|c| {
        common::unlimited(c);
        behind_proxy(c);
        c.server.forwarded_header = ForwardedHeader::Forwarded;
        c.limits.max_connections_per_address = 1;
        c.auth.allow_anonymous = true;
        c.limits.max_anonymous_connections_per_address = 1;
    })
    .await;
    let fwd = "forwarded";
    let a = [(fwd, "for=192.0.2.10;proto=https")];
    let b = [(fwd, r#"for="[2001:db8::10]:4711", for=127.0.0.1"#)];
    let mut held_a = dial(&server, Some("alice"), &a).await;
    assert!(admitted(&mut held_a).await.is_some());
    let mut second_a = dial(&server, Some("carol"), &a).await;
    assert!(
        admitted(&mut second_a).await.is_none(),
        "A's one slot is taken"
    );
    let mut held_b = dial(&server, Some("bob"), &b).await;
    assert!(
        admitted(&mut held_b).await.is_some(),
        "B has a slot of its own"
    );
    drop((held_a, held_b));
    server.stop().await;

    // Anonymous visitors: one open per client address, told apart the same way.
    let server = TestServer::start_with(|c| {
        common::unlimited(c);
        behind_proxy(c);
        c.auth.allow_anonymous = true;
        c.limits.max_anonymous_connections_per_address = 1;
    })
    .await;
    let mut visitor_a = dial(&server, None, &[(XFF, "192.0.2.10")]).await;
    let hello = admitted(&mut visitor_a).await.unwrap();
    assert!(hello["user_id"].as_str().unwrap().starts_with("anon-"));
    let mut again_a = dial(&server, None, &[(XFF, "192.0.2.10")]).await;
    assert!(admitted(&mut again_a).await.is_none());
    let mut visitor_b = dial(&server, None, &[(XFF, "192.0.2.11")]).await;
    assert!(admitted(&mut visitor_b).await.is_some());
    // Signed-in users from A are not visitors: not capped so.
    let mut alice = dial(&server, Some("alice"), &[(XFF, "192.0.2.10")]).await;
    assert!(admitted(&mut alice).await.is_some());
    server.stop().await;
}

#[tokio::test]
async fn anonymous_message_rates_are_per_forwarded_client() {
    let server = TestServer::start_with(|c| {
        common::unlimited(c);
        behind_proxy(c);
        c.auth.allow_anonymous = true;
        c.rate_limit.anonymous_messages_per_minute = 1;
        c.rate_limit.anonymous_burst = 2;
    })
    .await;
    let mut visitors = Vec::new();
    for address in ["192.0.2.20", "192.0.2.20", "192.0.2.21"] {
        let mut ws = dial(&server, None, &[(XFF, address)]).await;
        let id = admitted(&mut ws).await.unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, room) = server
            .server_api()
            .acting_as(&id)
            .post(
                "/api/v1/rooms",
                json!({"room_type": "assistant", "members": []}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        visitors.push((ws, room["id"].as_str().unwrap().to_owned()));
    }
    // The two visitors of 192.0.2.20 share its burst of 2.
    for (i, (ws, room)) in visitors.iter_mut().take(2).enumerate() {
        send_ok(ws, room, &format!("a{i}")).await;
    }
    for (ws, room) in visitors.iter_mut().take(2) {
        ws.expect_error(
            json!({"type": "send_message", "room_id": room, "content": "more"}),
            "rate_limited",
        )
        .await;
    }
    // 192.0.2.21's visitor has its own.
    let (ws, room) = &mut visitors[2];
    send_ok(ws, room, "b0").await;
    send_ok(ws, room, "b1").await;
    server.stop().await;
}

/// Sends a message and asserts it was acknowledged.
async fn send_ok(ws: &mut WsClient, room: &str, content: &str) {
    let ack = ws.send_message(room, content).await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
}

/// A case of forging: its name, the trust configured, the header forged
/// and three different addresses claimed in it.
type Forgery = (
    &'static str,
    fn(&mut Config),
    &'static str,
    [&'static str; 3],
);

#[tokio::test]
async fn a_forged_address_escapes_no_limit() {
    let limited = |c: &mut Config| {
        c.rate_limit.handshakes_per_minute = 1;
        c.rate_limit.handshake_burst = 2;
    };
    // Nobody trusted (the default); a proxy trusted that is not this peer;
    // the trusted proxy's own header set, the forged one in the other.
    let cases: [Forgery; 3] = [
        (
            "trust nobody",
            |_| {},
            XFF,
            ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        ),
        (
            "another proxy trusted",
            |c| c.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()],
            XFF,
            ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        ),
        (
            "x-forwarded-for read, forwarded forged",
            behind_proxy,
            "forwarded",
            ["for=192.0.2.1", "for=192.0.2.2", "for=192.0.2.3"],
        ),
    ];
    for (case, trust, header, forged) in cases {
        let server = TestServer::start_with(|c| {
            limited(c);
            trust(c);
        })
        .await;
        for (i, value) in forged.iter().enumerate() {
            let mut ws = dial(&server, Some("mallory"), &[(header, value)]).await;
            let let_in = admitted(&mut ws).await.is_some();
            assert_eq!(let_in, i < 2, "{case}: handshake {i} as {value}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn unreadable_forwarding_headers_count_as_the_proxy_and_break_nothing() {
    let server = TestServer::start_with(|c| {
        behind_proxy(c);
        c.rate_limit.handshakes_per_minute = 1;
        c.rate_limit.handshake_burst = 3;
    })
    .await;
    let huge = format!("{}, 127.0.0.1", "9".repeat(16_000));
    let many = vec!["127.0.0.1"; 2_000].join(",");
    let hostile = [
        "garbage",
        "unknown",
        "_hidden",
        "203.0.113.9:99999",
        "[::1",
        huge.as_str(),
        many.as_str(),
    ];
    // REST is served whatever the header says.
    for value in hostile {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/me", server.base))
            .bearer_auth(server.token("alice"))
            .header(XFF, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{value:.40}");
    }
    // Three handshakes with unreadable chains are the proxy's burst of 3,
    // shared with the proxy's own handshakes; a readable client has its own.
    for value in &hostile[..3] {
        let mut ws = dial(&server, Some("alice"), &[(XFF, value)]).await;
        assert!(admitted(&mut ws).await.is_some(), "{value}");
    }
    for value in &hostile[3..] {
        let mut ws = dial(&server, Some("alice"), &[(XFF, value)]).await;
        assert!(admitted(&mut ws).await.is_none(), "{value:.40}");
    }
    let mut proxy_itself = dial(&server, Some("alice"), &[]).await;
    assert!(admitted(&mut proxy_itself).await.is_none());
    let mut client = dial(&server, Some("alice"), &[(XFF, "203.0.113.9")]).await;
    assert!(admitted(&mut client).await.is_some());
    server.stop().await;
}

/// The app's connect proxy (protocol.md §8.3) is told the client's address
/// as the trusted proxy forwards it, not the proxy's.
#[tokio::test]
async fn the_connect_proxy_is_told_the_forwarded_client() {
    let app = Receiver::start(Reply::Computed(|_| (200, json!({"user_id": "ann"})))).await;
    let url = app.url();
    let server = TestServer::start_with(move |c| {
        behind_proxy(c);
        c.webhook.secret = receiver::secret();
        c.auth.proxy_url = url;
    })
    .await;
    let mut ws = server
        .ws_raw(
            "/ws",
            &[
                ("cookie", "sessionid=s".to_owned()),
                (XFF, "198.51.100.7, 127.0.0.1".to_owned()),
            ],
        )
        .await;
    assert_eq!(admitted(&mut ws).await.unwrap()["user_id"], "ann");
    let calls = app.requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].body["remote_addr"], "198.51.100.7");
    server.stop().await;
}
