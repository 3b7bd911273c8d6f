//! Talking to the server under test: tokens, WebSocket connections, rooms.

use crate::BenchError;
use confab_protocol::ServerFrame;
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long set-up steps (connect, REST calls) may take before the run fails.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The server under test: where it is and how to act on it.
#[derive(Clone)]
pub struct Target {
    http: String,
    ws: String,
    api_key: String,
    jwt: jsonwebtoken::EncodingKey,
    client: reqwest::Client,
}

impl Target {
    /// `url` is the server's base (`http://127.0.0.1:8080`); the server key
    /// creates rooms, the JWT secret signs one token per simulated user.
    pub fn new(url: &str, api_key: &str, jwt_secret: &str) -> Result<Self, BenchError> {
        let http = url.trim_end_matches('/').to_owned();
        let ws = if let Some(rest) = http.strip_prefix("http://") {
            format!("ws://{rest}/ws")
        } else if let Some(rest) = http.strip_prefix("https://") {
            format!("wss://{rest}/ws")
        } else {
            return Err(BenchError::Setup(format!(
                "--url must start with http:// or https://, got {url:?}"
            )));
        };
        let client = reqwest::Client::builder()
            .timeout(SETUP_TIMEOUT)
            .build()
            .map_err(|e| BenchError::Setup(format!("http client: {e}")))?;
        Ok(Target {
            http,
            ws,
            api_key: api_key.to_owned(),
            jwt: jsonwebtoken::EncodingKey::from_secret(jwt_secret.as_bytes()),
            client,
        })
    }

    /// A one-hour HS256 token for `user`.
    pub fn token(&self, user: &str) -> Result<String, BenchError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({"sub": user, "exp": now + 3600, "iat": now});
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.jwt)
            .map_err(|e| BenchError::Setup(format!("cannot sign a token: {e}")))
    }

    /// Opens an authenticated WebSocket for `user` and waits for
    /// `connection_established`.
    pub async fn connect(&self, user: &str) -> Result<Ws, BenchError> {
        let token = self.token(user)?;
        let mut request = self
            .ws
            .as_str()
            .into_client_request()
            .map_err(|e| BenchError::Setup(format!("bad url {}: {e}", self.ws)))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| BenchError::Setup(format!("bad token header: {e}")))?;
        request.headers_mut().insert("authorization", bearer);
        let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (mut ws, _) = tokio::time::timeout(SETUP_TIMEOUT, connect)
            .await
            .map_err(|_| BenchError::Connect("handshake timed out".into()))?
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        loop {
            let next = tokio::time::timeout(SETUP_TIMEOUT, ws.next())
                .await
                .map_err(|_| BenchError::Connect("no connection_established".into()))?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(ServerFrame::ConnectionEstablished { .. }) => Ok(ws),
                        _ => Err(BenchError::Connect(format!("refused: {text}"))),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(BenchError::Connect(format!("closed: {frame:?}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(BenchError::Connect(e.to_string())),
                None => return Err(BenchError::Connect("closed before hello".into())),
            }
        }
    }

    /// Opens a WebSocket for `user` on a room-scoped endpoint (`chat` or
    /// `sessions`: `/ws/{dialect}/{room}/?token=`), which sends no greeting.
    pub async fn connect_scoped(
        &self,
        user: &str,
        dialect: &str,
        room: &str,
    ) -> Result<Ws, BenchError> {
        let token = self.token(user)?;
        let url = format!("{}/{dialect}/{room}/?token={token}", self.ws);
        let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true);
        let (ws, _) = tokio::time::timeout(SETUP_TIMEOUT, connect)
            .await
            .map_err(|_| BenchError::Connect("handshake timed out".into()))?
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        Ok(ws)
    }

    /// Creates a group room with these members (server key).
    pub async fn create_room(&self, id: &str, members: &[String]) -> Result<(), BenchError> {
        let body =
            serde_json::json!({"id": id, "name": id, "room_type": "group", "members": members});
        let response = self
            .client
            .post(format!("{}/api/v1/rooms", self.http))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("POST /api/v1/rooms: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(BenchError::Setup(format!(
                "POST /api/v1/rooms {id}: {status} {text}"
            )));
        }
        Ok(())
    }

    /// The room's newest seq as the server reports it (`GET /api/v1/rooms/{id}`
    /// acting as `user`, a member).
    pub async fn last_seq(&self, room: &str, user: &str) -> Result<i64, BenchError> {
        #[derive(Deserialize)]
        struct Room {
            last_seq: i64,
        }
        let response = self
            .client
            .get(format!("{}/api/v1/rooms/{room}", self.http))
            .bearer_auth(&self.api_key)
            .header("x-confab-user", user)
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("GET room {room}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(BenchError::Setup(format!("GET room {room}: {status}")));
        }
        let room: Room = response
            .json()
            .await
            .map_err(|e| BenchError::Setup(format!("GET room {room}: {e}")))?;
        Ok(room.last_seq)
    }
}

/// The few fields of a server frame the generator looks at: decoding only
/// these keeps the load generator from becoming the bottleneck.
#[derive(Deserialize)]
pub struct Lite {
    /// The frame's `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `message_ack.seq`.
    #[serde(default)]
    pub seq: Option<i64>,
    /// `subscribed.last_seq`.
    #[serde(default)]
    pub last_seq: Option<i64>,
    /// `req_id` echo (the generator sends numbers).
    #[serde(default)]
    pub req_id: Option<serde_json::Value>,
    /// `new_message.message`.
    #[serde(default)]
    pub message: Option<LiteMessage>,
    /// `error.code`.
    #[serde(default)]
    pub code: Option<String>,
    /// The text of a `/ws/sessions/{id}/` message frame.
    #[serde(default)]
    pub content: Option<String>,
}

/// The part of a message object the generator reads.
#[derive(Deserialize)]
pub struct LiteMessage {
    /// Per-room sequence number.
    pub seq: i64,
    /// Carries the send instant (`bench:<micros>`).
    #[serde(default)]
    pub content: String,
    /// The same, in a `/ws/chat/{id}/` message frame.
    #[serde(default)]
    pub message_text: String,
}

impl Lite {
    /// Decodes a text frame; `None` when it is not a JSON object we know.
    pub fn parse(text: &str) -> Option<Lite> {
        serde_json::from_str(text).ok()
    }
}

/// The send instant a bench message carries in its content.
pub fn sent_at(content: &str) -> Option<u64> {
    content.strip_prefix("bench:")?.parse().ok()
}

/// What each bench send carries besides its content. By default what real
/// clients send: a `client_msg_id` with every message (the contract's way
/// to retry without doubles) and a small metadata object; a figure without
/// them flatters the server (it skips the idempotency look-up and the JSON).
#[derive(clap::Args, Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendShape {
    /// Send without `client_msg_id` (a plain send).
    #[arg(long)]
    pub no_client_msg_id: bool,
    /// Send without the metadata object.
    #[arg(long)]
    pub no_metadata: bool,
}

/// The metadata object of a bench send: one key, as many apps send.
pub const BENCH_METADATA: &str = r#"{"source":"bench"}"#;

/// A `send_message` frame whose content carries the send instant and whose
/// `req_id` is the same instant (so an ack's latency needs no lookup table);
/// `n` (the sender's count of sends, unique per sender and room) makes its
/// `client_msg_id` unless `shape` leaves it out.
pub fn send_frame(room: &str, micros: u64, shape: SendShape, n: u64) -> String {
    let room = serde_json::Value::String(room.to_owned());
    let key = match shape.no_client_msg_id {
        true => String::new(),
        false => format!(r#","client_msg_id":"k{n}""#),
    };
    let metadata = match shape.no_metadata {
        true => String::new(),
        false => format!(r#","metadata":{BENCH_METADATA}"#),
    };
    format!(
        r#"{{"type":"send_message","room_id":{room},"content":"bench:{micros}"{key}{metadata},"req_id":{micros}}}"#
    )
}

/// A `subscribe_room` frame.
pub fn subscribe_frame(room: &str, since_seq: Option<i64>) -> String {
    let room = serde_json::Value::String(room.to_owned());
    match since_seq {
        Some(seq) => format!(
            r#"{{"type":"subscribe_room","room_id":{room},"since_seq":{seq},"req_id":"sub"}}"#
        ),
        None => format!(r#"{{"type":"subscribe_room","room_id":{room},"req_id":"sub"}}"#),
    }
}
