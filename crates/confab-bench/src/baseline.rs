//! `confab bench baseline-server`: the WebSocket limit on this machine.
//!
//! A broadcast server with no storage, no membership checks and no auth
//! beyond "a bearer token is present", speaking the frames the bench uses
//! (`subscribe_room`, `send_message` → `message_ack` + `new_message`) on the
//! same stack as confab (axum's WebSocket). Whatever confab does on top, this
//! does not: the difference between the two is the cost of being a chat
//! server rather than a pipe.

use crate::BenchError;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use confab_protocol::Timestamp;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Frames queued for one connection before it is dropped as a slow consumer
/// (confab's default bound).
const QUEUE: usize = 1024;

#[derive(Default)]
struct Room {
    seq: i64,
    subscribers: Vec<(u64, mpsc::Sender<Utf8Bytes>)>,
}

#[derive(Default)]
struct Shared {
    rooms: Mutex<HashMap<String, Room>>,
    next_conn: AtomicU64,
    read_buffer_bytes: Option<usize>,
}

type AppState = Arc<Shared>;

/// Serves until the process is stopped; prints `listening on http://ADDR`
/// first, like `confab serve`.
///
/// `read_buffer_bytes`: the WebSocket read buffer per connection; `None`
/// keeps axum's default (128 KiB, what confab runs with), a small value shows
/// what that buffer costs in resident memory per idle connection.
pub async fn serve(listen: &str, read_buffer_bytes: Option<usize>) -> Result<(), BenchError> {
    let state = Arc::new(Shared {
        read_buffer_bytes,
        ..Shared::default()
    });
    let app = Router::new()
        .route("/ws", get(upgrade))
        .route("/api/v1/rooms", post(create_room))
        .route("/api/v1/rooms/{id}", get(get_room))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BenchError::Setup(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}").map_err(|e| BenchError::Setup(e.to_string()))?;
    stdout
        .flush()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    drop(stdout);
    // Like `confab serve`: no Nagle delay on small frames.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))
}

#[derive(Deserialize)]
struct NewRoom {
    id: String,
}

async fn create_room(State(state): State<AppState>, Json(room): Json<NewRoom>) -> Response {
    if let Ok(mut rooms) = state.rooms.lock() {
        rooms.entry(room.id.clone()).or_default();
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"id": room.id, "last_seq": 0})),
    )
        .into_response()
}

async fn get_room(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let seq = state
        .rooms
        .lock()
        .ok()
        .and_then(|rooms| rooms.get(&id).map(|r| r.seq));
    match seq {
        Some(seq) => Json(serde_json::json!({"id": id, "last_seq": seq})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !headers.contains_key("authorization") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = state.next_conn.fetch_add(1, Relaxed);
    let ws = match state.read_buffer_bytes {
        Some(bytes) => ws.read_buffer_size(bytes).write_buffer_size(bytes),
        None => ws,
    };
    ws.on_upgrade(move |socket| connection(state, id, socket))
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    room_id: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    req_id: Option<serde_json::Value>,
    /// Echoed in the ack, as a real server does (it keeps none).
    #[serde(default)]
    client_msg_id: Option<String>,
    /// Passed on in the message, as a real server does.
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

fn text(value: &serde_json::Value) -> Utf8Bytes {
    Utf8Bytes::from(value.to_string())
}

async fn connection(state: AppState, id: u64, socket: WebSocket) {
    let user = format!("user-{id}");
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    let hello = serde_json::json!({
        "type": "connection_established", "connection_id": id.to_string(),
        "user_id": user, "username": user, "protocol": 1, "heartbeat_ms": 25000,
        "limits": {"max_frame_bytes": 65536, "max_message_length": 2000, "messages_per_minute": 0},
        "timestamp": Timestamp::now(),
    });
    let _ = tx.try_send(text(&hello));
    // Writer: every frame queued is written, then one flush per batch.
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(raw) = message else {
            continue;
        };
        let Ok(mut frame) = serde_json::from_str::<Incoming>(raw.as_str()) else {
            continue;
        };
        let req_id = frame.req_id.unwrap_or(serde_json::Value::Null);
        let now = Timestamp::now();
        match frame.kind.as_str() {
            "subscribe_room" => {
                let last_seq = match state.rooms.lock() {
                    Ok(mut rooms) => {
                        let room = rooms.entry(frame.room_id.clone()).or_default();
                        room.subscribers.push((id, tx.clone()));
                        room.seq
                    }
                    Err(_) => break,
                };
                joined.push(frame.room_id.clone());
                let reply = serde_json::json!({"type": "subscribed", "room_id": frame.room_id,
                    "last_seq": last_seq, "unread_count": 0, "timestamp": now, "req_id": req_id});
                if tx.try_send(text(&reply)).is_err() {
                    break;
                }
            }
            "send_message" => {
                let Ok(mut rooms) = state.rooms.lock() else {
                    break;
                };
                let room = rooms.entry(frame.room_id.clone()).or_default();
                room.seq += 1;
                let seq = room.seq;
                let message_id = format!("{}-{seq}", frame.room_id);
                let ack = serde_json::json!({"type": "message_ack", "req_id": req_id,
                    "room_id": frame.room_id, "message_id": message_id, "seq": seq,
                    "client_msg_id": frame.client_msg_id, "duplicate": false, "timestamp": now});
                if tx.try_send(text(&ack)).is_err() {
                    break;
                }
                // Serialized once, shared by every recipient.
                let event = text(&serde_json::json!({
                    "type": "new_message", "room_id": frame.room_id,
                    "message": {"id": message_id, "room_id": frame.room_id, "seq": seq,
                        "sender": {"id": user, "username": user, "name": null},
                        "content": frame.content, "message_type": "text",
                        "metadata": frame.metadata.take().unwrap_or_else(|| serde_json::json!({})),
                        "reply_to": null, "attachment": null, "location": null,
                        "reactions": {}, "edited_at": null, "deleted": false, "timestamp": now},
                    "timestamp": now,
                }));
                // A full queue is a slow consumer: it is dropped, as confab does.
                room.subscribers
                    .retain(|(_, peer)| peer.try_send(event.clone()).is_ok());
            }
            "ping" => {
                let pong = serde_json::json!({"type": "pong", "req_id": req_id, "timestamp": now});
                if tx.try_send(text(&pong)).is_err() {
                    break;
                }
            }
            _ => {
                let ack = serde_json::json!({"type": "ack", "req_id": req_id});
                if tx.try_send(text(&ack)).is_err() {
                    break;
                }
            }
        }
    }
    if let Ok(mut rooms) = state.rooms.lock() {
        for room in joined {
            if let Some(room) = rooms.get_mut(&room) {
                room.subscribers.retain(|(peer, _)| *peer != id);
            }
        }
    }
    drop(tx);
    writer.abort();
}
