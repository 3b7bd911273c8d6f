//! PostgreSQL going away under a running server (issue 6, failure behaviour):
//! `/readyz` fails, sends answer `internal` (REST: 503) without an ack and
//! store nothing, and when the database is back the server recovers by
//! itself: the same `client_msg_id` then stores once, at the next seq.
//! Always on PostgreSQL, whatever `CONFAB_TEST_DATABASE` says: cutting off a
//! SQLite file under a running process is not a failure operators meet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::postgres::{TestDatabase, admin_url};
use common::{TestBackend, TestServer, WAIT, seqs};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

/// Refuses (`false`) or allows new connections to the database, and cuts
/// the ones it has: what a failover or a database restart looks like to confab.
async fn allow_connections(database: &TestDatabase, allow: bool) {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let name = database.name();
    admin
        .execute(&*format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}"
        ))
        .await
        .unwrap();
    if !allow {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// `/readyz`'s status.
async fn readyz(server: &TestServer) -> StatusCode {
    server.anonymous_api().get("/readyz").await.0
}

#[tokio::test]
async fn an_unavailable_database_fails_readyz_and_sends_then_the_server_recovers() {
    let server = TestServer::start_on(TestBackend::Postgres, |c| {
        c.database.acquire_timeout_s = 1;
    })
    .await;
    let room = server.room("alice", &["bob"]).await;
    let mut alice = server.ws("alice").await;
    alice.subscribe(&room).await;
    assert_eq!(alice.send_message(&room, "before").await["seq"], 1);
    assert_eq!(readyz(&server).await, StatusCode::OK);

    let database = server.database().unwrap();
    allow_connections(database, false).await;
    assert_eq!(readyz(&server).await, StatusCode::SERVICE_UNAVAILABLE);
    let send = json!({"type": "send_message", "room_id": room, "content": "during",
                      "client_msg_id": "k-1"});
    let reply = alice.request(send.clone()).await;
    assert_eq!(
        reply["type"], "error",
        "no ack without the database: {reply}"
    );
    assert_eq!(reply["code"], "internal", "{reply}");
    let (status, body) = server
        .api("bob")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "during, over REST"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "internal", "{body}");

    allow_connections(database, true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while readyz(&server).await != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not get its database back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The retry is a first store, not a duplicate, at the next seq: the
    // failed sends left nothing behind, not even a used seq.
    let ack = alice.request(send).await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["seq"], 2, "{ack}");
    assert_ne!(ack["duplicate"], true, "{ack}");
    let live = alice.recv_type("new_message").await;
    assert_eq!(live["message"]["seq"], 2);
    assert_eq!(live["message"]["content"], "during");
    let all = server.all_messages("bob", &room).await;
    assert_eq!(seqs(&json!(all)), [1, 2]);
    server.stop().await;
}
