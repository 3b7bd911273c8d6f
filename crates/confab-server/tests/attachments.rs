//! Uploads and image/file messages (issue 4 item 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::TestServer;
use serde_json::json;

/// The 67 bytes of a 1×1 transparent PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

#[tokio::test]
async fn an_uploaded_image_is_sent_and_served_to_members_only() {
    let server = TestServer::start().await;
    let room = server.room("alice", &["bob"]).await;
    let (status, att) = server
        .api("alice")
        .upload("../../dot.png", "image/png", PNG)
        .await;
    assert_eq!(status, 201, "{att}");
    assert_eq!(att["content_type"], "image/png");
    assert_eq!(att["size"], PNG.len());
    assert_eq!(att["name"], "dot.png", "path parts are stripped");
    let id = att["id"].as_str().unwrap();

    // Before it is shared, only the uploader may fetch it.
    let path = format!("/api/v1/attachments/{id}");
    assert_eq!(server.api("bob").get(&path).await.0, 403);

    let mut bob = server.ws("bob").await;
    bob.subscribe(&room).await;
    let mut alice = server.ws("alice").await;
    let ack = alice
        .request(
            json!({"type": "send_message", "room_id": room, "content": "",
                        "message_type": "image", "attachment_id": id}),
        )
        .await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    let got = bob.recv_type("new_message").await;
    assert_eq!(got["message"]["attachment"]["id"], id);
    assert_eq!(got["message"]["attachment"]["url"], path.as_str());
    let history = bob
        .request(json!({"type": "get_history", "room_id": room}))
        .await;
    assert_eq!(
        history["messages"][0]["attachment"]["content_type"],
        "image/png"
    );

    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(server.token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(&response.bytes().await.unwrap()[..], PNG);
    let (status, body) = server.api("mallory").get(&path).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        server.api("bob").get("/api/v1/attachments/nope").await.0,
        404
    );
}

#[tokio::test]
async fn bad_uploads_and_bad_references_are_refused() {
    let server = TestServer::start_with(|c| c.limits.max_upload_bytes = 1024).await;
    let alice = server.api("alice");
    let (status, body) = alice
        .upload("fake.png", "image/png", b"just some text")
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_field");
    let (status, body) = alice
        .upload("big.bin", "application/octet-stream", &[7u8; 4096])
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "invalid_field");
    let (status, body) = alice
        .call_raw(
            reqwest::Method::POST,
            "/api/v1/attachments",
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_field");

    let (status, doc) = alice.upload("notes.txt", "text/plain", b"hello").await;
    assert_eq!(status, 201, "{doc}");
    let room = server.room("alice", &["bob"]).await;
    let mut bob = server.ws("bob").await;
    let send = |kind: &str, attachment: Option<&str>| {
        let mut frame =
            json!({"type": "send_message", "room_id": room, "content": "", "message_type": kind});
        if let Some(id) = attachment {
            frame["attachment_id"] = json!(id);
        }
        frame
    };
    let doc_id = doc["id"].as_str().unwrap();
    assert_eq!(
        bob.request(send("file", None)).await["code"],
        "invalid_field"
    );
    assert_eq!(
        bob.request(send("file", Some("nope"))).await["code"],
        "not_found"
    );
    assert_eq!(
        bob.request(send("file", Some(doc_id))).await["code"],
        "forbidden",
        "only the uploader sends an upload"
    );
    let mut alice_ws = server.ws("alice").await;
    assert_eq!(
        alice_ws.request(send("image", Some(doc_id))).await["code"],
        "invalid_field",
        "a text file is not an image"
    );
    assert_eq!(
        alice_ws.request(send("file", Some(doc_id))).await["type"],
        "message_ack"
    );
}
