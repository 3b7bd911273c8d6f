//! The one shared test helper: a real confab server on a free port with a
//! temporary data dir, and real WebSocket and HTTP clients to drive it.
//!
//! The storage backend comes from `CONFAB_TEST_DATABASE`: `sqlite` (the
//! default: a file in the temp data dir) or `postgres` (a fresh database per
//! server on `CONFAB_TEST_POSTGRES_URL`, see [`postgres`]), so that every
//! end-to-end test runs unchanged on both.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod postgres;
pub mod provider;
pub mod receiver;

use confab_protocol::ServerFrame;
use confab_server::auth::{Authenticator, TokenRequest};
use confab_server::store::GlobalRole;
use confab_server::{App, Config};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

/// The server key every test server accepts.
pub const API_KEY: &str = "test-server-key";
/// How long a test waits for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which storage backend the end-to-end tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A SQLite file in the server's data dir.
    Sqlite,
    /// A fresh PostgreSQL database per server (kept across restarts).
    Postgres,
}

impl TestBackend {
    /// The backend named by `CONFAB_TEST_DATABASE` (`sqlite` when unset);
    /// any other value fails the test rather than quietly testing SQLite.
    pub fn from_env() -> TestBackend {
        match std::env::var("CONFAB_TEST_DATABASE").as_deref() {
            Err(_) | Ok("" | "sqlite") => TestBackend::Sqlite,
            Ok("postgres" | "postgresql") => TestBackend::Postgres,
            Ok(other) => panic!("CONFAB_TEST_DATABASE={other:?}: expected sqlite or postgres"),
        }
    }
}

/// The file in a PostgreSQL test server's data dir that names its database,
/// so that a restart on the same data dir finds the same data.
const DATABASE_URL_FILE: &str = "test-database-url";

/// A data dir (and, on PostgreSQL, its database) that outlives the server
/// that used it, for restart tests.
pub struct KeptData {
    dir: tempfile::TempDir,
    _database: Option<postgres::TestDatabase>,
}

impl KeptData {
    /// The data dir, to pass to [`TestServer::start_in`].
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A running server. Dropping it without [`TestServer::stop`] aborts it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://addr`.
    pub base: String,
    /// The data dir (kept for restarts when the test owns it).
    pub data_dir: PathBuf,
    /// The configuration it was started with.
    pub config: Config,
    secret: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
    _database: Option<postgres::TestDatabase>,
    http: reqwest::Client,
}

impl TestServer {
    /// A server with default settings in a fresh temp dir.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server in a fresh temp dir, with `tweak` applied to the config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(TestBackend::from_env(), tweak).await
    }

    /// A server on this backend whatever `CONFAB_TEST_DATABASE` says (for
    /// tests of one backend's behaviour), in a fresh temp dir.
    pub async fn start_on(backend: TestBackend, tweak: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Self::start_in_on(backend, tmp.path(), tweak).await;
        server._tmp = Some(tmp);
        server
    }

    /// The PostgreSQL database this server owns (`None` on SQLite, or when
    /// an earlier server on the same data dir owns it).
    pub fn database(&self) -> Option<&postgres::TestDatabase> {
        self._database.as_ref()
    }

    /// A server on an existing data dir (to test restarts): on PostgreSQL,
    /// on the database an earlier server on this data dir used, else a fresh one.
    pub async fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_in_on(TestBackend::from_env(), data_dir, tweak).await
    }

    /// [`TestServer::start_in`] on a given backend.
    pub async fn start_in_on(
        backend: TestBackend,
        data_dir: &Path,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let (database_url, database) = match backend {
            TestBackend::Sqlite => (String::new(), None),
            TestBackend::Postgres => {
                let file = data_dir.join(DATABASE_URL_FILE);
                match std::fs::read_to_string(&file) {
                    Ok(url) => (url, None),
                    Err(_) => {
                        let database = postgres::TestDatabase::create().await;
                        std::fs::write(&file, database.url()).unwrap();
                        (database.url().to_owned(), Some(database))
                    }
                }
            }
        };
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: data_dir.to_path_buf(),
            database_url,
            api_key: API_KEY.into(),
            ..Config::default()
        };
        config.server.shutdown_grace_s = 3;
        tweak(&mut config);
        let secret = config.resolve_jwt_secret().unwrap();
        let app = App::build(config.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            addr,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            config,
            secret,
            shutdown: Some(tx),
            task: Some(task),
            _tmp: None,
            _database: database,
            http: reqwest::Client::new(),
        }
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server did not stop in time")
                .unwrap();
        }
    }

    /// Takes the temp dir (and database) out, so that they outlive this
    /// server (restart tests).
    pub fn keep_data_dir(&mut self) -> Option<KeptData> {
        Some(KeptData {
            dir: self._tmp.take()?,
            _database: self._database.take(),
        })
    }

    /// A one-hour token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, None, None, Duration::from_secs(3600))
    }

    /// A token with a name, role and lifetime.
    pub fn token_with(
        &self,
        user: &str,
        name: Option<&str>,
        role: Option<GlobalRole>,
        ttl: Duration,
    ) -> String {
        Authenticator::new(&self.secret, "", 0)
            .mint(&TokenRequest {
                user_id: user.into(),
                name: name.map(Into::into),
                role,
                ttl,
            })
            .unwrap()
    }

    /// A token signed with raw claims (for expired or malformed tokens).
    pub fn token_from_claims(&self, claims: &Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .unwrap()
    }

    /// The WebSocket URL of `path` (e.g. `/ws`).
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Connects to `/ws` as `user` (bearer header) and reads `connection_established`.
    pub async fn ws(&self, user: &str) -> WsClient {
        self.ws_at("/ws", user).await
    }

    /// Connects to `path` as `user` and reads `connection_established`.
    pub async fn ws_at(&self, path: &str, user: &str) -> WsClient {
        let mut client = self
            .ws_raw(
                path,
                &[("authorization", format!("Bearer {}", self.token(user)))],
            )
            .await;
        match client.recv().await {
            ServerFrame::ConnectionEstablished { user_id, .. } => assert_eq!(user_id, user),
            other => panic!("expected connection_established, got {other:?}"),
        }
        client
    }

    /// Connects to `path` with the given headers and reads nothing.
    pub async fn ws_raw(&self, path: &str, headers: &[(&str, String)]) -> WsClient {
        let mut request = self.ws_url(path).into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (stream, _response) = connect(request).await.unwrap();
        WsClient { stream }
    }

    /// A REST client acting as `user` (with a JWT).
    pub fn api(&self, user: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: Some(self.token(user)),
            act_as: None,
        }
    }

    /// A REST client presenting `token` as it is (a hand-made or hostile
    /// credential).
    pub fn api_with_token(&self, token: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: Some(token.to_owned()),
            act_as: None,
        }
    }

    /// A REST client with the server key (acting as itself).
    pub fn server_api(&self) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: Some(API_KEY.into()),
            act_as: None,
        }
    }

    /// A REST client with no credentials.
    pub fn anonymous_api(&self) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: None,
            act_as: None,
        }
    }

    /// Creates a room over REST as `owner` with `members`; returns its id.
    pub async fn room(&self, owner: &str, members: &[&str]) -> String {
        let (status, body) = self
            .api(owner)
            .post(
                "/api/v1/rooms",
                json!({"name": "test room", "members": members}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

impl TestServer {
    /// A WebSocket handshake to `path` that the server must refuse over
    /// HTTP; returns the status and the JSON error body.
    pub async fn ws_refused(&self, path: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self.ws_url(path).into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        match connect(request).await {
            Ok(_) => panic!("the handshake to {path} was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                let json = serde_json::from_slice(body).unwrap_or(Value::Null);
                (response.status().as_u16(), json)
            }
            Err(other) => panic!("expected an HTTP refusal, got {other}"),
        }
    }

    /// Connects to `path` with the given headers and reads nothing; also
    /// returns the handshake response's headers (to check the subprotocol).
    pub async fn ws_handshake(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> (WsClient, tokio_tungstenite::tungstenite::http::HeaderMap) {
        let mut request = self.ws_url(path).into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (stream, response) = connect(request).await.unwrap();
        (WsClient { stream }, response.headers().clone())
    }

    /// Connects to `/ws` with `token` in the bearer header and reads
    /// `connection_established`.
    pub async fn ws_with_token(&self, token: &str) -> WsClient {
        connect_with_token(&self.ws_url("/ws"), token).await
    }

    /// Creates a room over REST as `owner` with an app-chosen `id`.
    pub async fn room_with_id(&self, owner: &str, id: &str, members: &[&str]) -> String {
        let (status, body) = self
            .api(owner)
            .post(
                "/api/v1/rooms",
                json!({"id": id, "name": id, "members": members}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["id"], id);
        id.to_owned()
    }

    /// `GET /api/v1/rooms/{id}` as `user`, which must answer 200.
    pub async fn room_as(&self, user: &str, room_id: &str) -> Value {
        let (status, body) = self
            .api(user)
            .get(&format!("/api/v1/rooms/{room_id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The room's `last_seq` as `user` sees it over REST.
    pub async fn last_seq(&self, user: &str, room_id: &str) -> i64 {
        self.room_as(user, room_id).await["last_seq"]
            .as_i64()
            .unwrap()
    }

    /// Every stored message of a room over REST, paging forward with
    /// `after_seq` until `has_more` is false.
    pub async fn all_messages(&self, user: &str, room_id: &str) -> Vec<Value> {
        let api = self.api(user);
        let mut all: Vec<Value> = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = api
                .get(&format!(
                    "/api/v1/rooms/{room_id}/messages?after_seq={after}&limit=100"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let messages = page["messages"].as_array().unwrap().clone();
            if let Some(last) = messages.last() {
                after = last["seq"].as_i64().unwrap();
            }
            all.extend(messages);
            if page["has_more"] != true {
                return all;
            }
        }
    }
}

/// The brokers the cluster tests run on: the machine's Redis and NATS.
pub const BROKERS: [&str; 2] = ["redis://127.0.0.1:6379", "nats://127.0.0.1:4222"];

/// Two nodes acting as one: servers sharing one database, one JWT secret and
/// one broker under a prefix of their own (so parallel tests do not meet).
pub async fn cluster(broker_url: &str) -> (TestServer, TestServer) {
    cluster_with(broker_url, |_| {}, |_| {}).await
}

/// [`cluster`] with a tweak of each node's configuration (applied after
/// the cluster's own settings).
pub async fn cluster_with(
    broker_url: &str,
    tweak_a: impl FnOnce(&mut Config),
    tweak_b: impl FnOnce(&mut Config),
) -> (TestServer, TestServer) {
    let prefix = format!("test{}x{}", std::process::id(), rand_id());
    let secret = format!("cluster-secret-{}", rand_id());
    let a = TestServer::start_with(|config| {
        unlimited(config);
        config.broker_url = broker_url.into();
        config.broker_prefix = prefix.clone();
        config.jwt_secret = secret;
        tweak_a(config);
    })
    .await;
    let b = cluster_node_with(&a, &prefix, tweak_b).await;
    (a, b)
}

/// Another node of `first`'s cluster (same database, secret and broker),
/// on the broker under `prefix` (a different prefix: a node whose events
/// the others never receive).
pub async fn cluster_node(first: &TestServer, prefix: &str) -> TestServer {
    cluster_node_with(first, prefix, |_| {}).await
}

/// [`cluster_node`] with a tweak of its configuration (applied after the
/// cluster's own settings).
pub async fn cluster_node_with(
    first: &TestServer,
    prefix: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestServer {
    let database_url = match first.database() {
        Some(database) => database.url().to_owned(),
        None => first.config.database_url(),
    };
    let (broker_url, secret) = (
        first.config.broker_url.clone(),
        first.config.jwt_secret.clone(),
    );
    TestServer::start_with(|config| {
        unlimited(config);
        config.broker_url = broker_url;
        config.broker_prefix = prefix.into();
        config.jwt_secret = secret;
        config.database_url = database_url;
        tweak(config);
    })
    .await
}

/// A config tweak for tests that send many messages or open many
/// connections quickly: lifts every rate limit and connection cap so that
/// none can interfere.
pub fn unlimited(config: &mut Config) {
    let rates = &mut config.rate_limit;
    for (rate, burst) in [
        (&mut rates.messages_per_minute, &mut rates.burst),
        (&mut rates.reactions_per_minute, &mut rates.reaction_burst),
        (&mut rates.typing_per_minute, &mut rates.typing_burst),
        (&mut rates.handshakes_per_minute, &mut rates.handshake_burst),
    ] {
        *rate = 1_000_000;
        *burst = 1_000_000;
    }
    config.limits.max_connections_per_user = 1_000_000;
    config.limits.max_connections_per_address = 1_000_000;
}

/// A token for `claims` signed with another secret (a bad signature).
pub fn token_signed_with(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Seconds since the epoch (for hand-made `exp` claims).
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `seq`s of a list of message objects (a `history` frame's or a REST
/// page's `messages`, or a slice of them).
pub fn seqs(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {messages}"))
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

/// Asserts the contract's time format: RFC 3339 UTC with milliseconds,
/// `2026-11-22T10:30:00.123Z`.
pub fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {value}"));
    let ok = text.len() == 24
        && text.ends_with('Z')
        && text.as_bytes()[10] == b'T'
        && text.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(text).is_ok();
    assert!(ok, "not an RFC 3339 UTC millisecond time: {text}");
}

/// A server frame without its top-level `timestamp`, which every frame
/// carries (protocol.md §7) and which is checked here: for comparing the
/// rest of a frame exactly.
pub fn unstamped(frame: &Value) -> Value {
    let mut frame = frame.clone();
    let stamp = frame
        .as_object_mut()
        .and_then(|fields| fields.remove("timestamp"))
        .unwrap_or_else(|| panic!("no timestamp in {frame}"));
    assert_timestamp(&stamp);
    frame
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A REST client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
    act_as: Option<String>,
}

impl Api {
    /// The same client, acting for `user` (server key only).
    pub fn acting_as(mut self, user: &str) -> Self {
        self.act_as = Some(user.into());
        self
    }

    /// Sends a request; returns the status and the JSON body (`null` if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.auth {
            request = request.bearer_auth(token);
        }
        if let Some(user) = &self.act_as {
            request = request.header("x-confab-user", user);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, json)
    }

    /// Sends a raw body with a content type.
    pub async fn call_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = &self.auth {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Posts a multipart form with one `file` field to `/api/v1/attachments`.
    pub async fn upload(&self, name: &str, content_type: &str, bytes: &[u8]) -> (u16, Value) {
        let boundary = "confab-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let (status, json) = self
            .call_raw(
                reqwest::Method::POST,
                "/api/v1/attachments",
                &format!("multipart/form-data; boundary={boundary}"),
                body,
            )
            .await;
        (status.as_u16(), json)
    }

    /// Like [`Api::call`], also returning the response headers.
    pub async fn call_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.auth {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

impl Api {
    /// Sends a request with an optional JSON body and returns the raw
    /// response (for answers that are not JSON, or to read headers).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.auth {
            request = request.bearer_auth(token);
        }
        if let Some(user) = &self.act_as {
            request = request.header("x-confab-user", user);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }
}

/// A WebSocket client speaking the unified protocol.
pub struct WsClient {
    /// The raw stream, for tests that need it.
    pub stream: WebSocketStream<Mutable>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code.
    Closed(u16),
    /// The stream ended without a close frame.
    Dropped,
}

impl WsClient {
    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// The next frame as JSON; panics after [`WAIT`] or on close.
    pub async fn recv_json(&mut self) -> Value {
        serde_json::from_str(&self.stream_next_text().await).unwrap()
    }

    /// The next text frame as it came, unparsed (to check exact bytes);
    /// pings and pongs are skipped, anything else panics, as does a wait
    /// past [`WAIT`].
    pub async fn stream_next_text(&mut self) -> String {
        // One deadline for the whole wait: heartbeat pings arriving more often
        // than WAIT must not keep a missing frame waited for forever.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection ended")
                .expect("read failed");
            match message {
                Message::Text(text) => return text.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, typed.
    pub async fn recv(&mut self) -> ServerFrame {
        let value = self.recv_json().await;
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("bad server frame {value}: {e}"))
    }

    /// Skips frames until one of type `kind` arrives; returns it as JSON.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Sends `frame` with `req_id` and returns the first frame echoing it.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let req_id = format!("r{}", rand_id());
        frame["req_id"] = json!(req_id);
        self.send(frame).await;
        loop {
            let reply = self.recv_json().await;
            if reply["req_id"] == json!(req_id) {
                return reply;
            }
        }
    }

    /// Subscribes to a room and returns the `subscribed` frame.
    pub async fn subscribe(&mut self, room_id: &str) -> Value {
        let reply = self
            .request(json!({"type": "subscribe_room", "room_id": room_id}))
            .await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        reply
    }

    /// Sends a text message and returns its `message_ack`.
    pub async fn send_message(&mut self, room_id: &str, content: &str) -> Value {
        let reply = self
            .request(json!({"type": "send_message", "room_id": room_id, "content": content}))
            .await;
        assert_eq!(reply["type"], "message_ack", "{reply}");
        reply
    }

    /// Asserts that no frame (other than pings) arrives within `duration`.
    pub async fn expect_silence(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the connection ends; returns how.
    pub async fn ended(&mut self) -> Ended {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("connection did not end in time");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => return Ended::Closed(frame.code.into()),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Ended::Dropped,
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl WsClient {
    /// Sends `frame` with a `req_id`, and asserts the reply is an `error`
    /// with `code` echoing that `req_id`; returns the error frame.
    pub async fn expect_error(&mut self, frame: Value, code: &str) -> Value {
        let reply = self.request(frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame} → {reply}");
        assert_eq!(reply["code"], code, "{frame} → {reply}");
        assert!(reply["message"].is_string(), "{reply}");
        reply
    }

    /// Sends `frame` unchanged and returns the very next frame.
    pub async fn send_and_reply(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.recv_json().await
    }

    /// Asserts the connection still answers `ping` with `pong`.
    pub async fn assert_alive(&mut self) {
        let pong = self.request(json!({"type": "ping"})).await;
        assert_eq!(pong["type"], "pong", "{pong}");
    }

    /// The next `n` `new_message` frames, skipping other frames.
    pub async fn recv_new_messages(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.recv_type("new_message").await);
        }
        out
    }

    /// Like [`WsClient::expect_silence`], but lets presence frames
    /// (`user_online` / `user_offline`) through: for tests where other
    /// users come and go on their own schedule.
    pub async fn expect_silence_but_presence(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    let presence =
                        frame["type"] == "user_online" || frame["type"] == "user_offline";
                    assert!(presence, "expected silence, got {frame}");
                }
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until `n` WebSocket pings have arrived, skipping other frames;
    /// panics if the connection ends first. Reading is what makes the client
    /// answer each ping with a pong.
    pub async fn read_pings(&mut self, n: usize) {
        let mut pings = 0;
        while pings < n {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a ping")
                .expect("connection ended")
                .expect("read failed");
            match message {
                Message::Ping(_) => pings += 1,
                Message::Close(frame) => panic!("closed after {pings} pings: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream.send(Message::binary(bytes)).await.unwrap();
    }

    /// Closes the connection from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// A client's TCP stream that can stop sending: once muted, everything the
/// client writes is dropped while reading goes on. A muted client is a peer
/// whose packets no longer arrive (a phone that lost its uplink): in
/// particular it still reads the server's pings but its pongs never arrive.
pub struct Mutable {
    inner: TcpStream,
    muted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Mutable {
    fn is_muted(&self) -> bool {
        self.muted.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl tokio::io::AsyncRead for Mutable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Mutable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.is_muted() {
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.is_muted() {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens a WebSocket over a [`Mutable`] TCP stream (plain `ws://` only: the
/// test servers speak no TLS).
async fn connect(
    request: Request,
) -> Result<(WebSocketStream<Mutable>, Response), tokio_tungstenite::tungstenite::Error> {
    let uri = request.uri();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap_or(80));
    let inner = TcpStream::connect(addr).await.unwrap();
    let stream = Mutable {
        inner,
        muted: std::sync::Arc::default(),
    };
    tokio_tungstenite::client_async(request, stream).await
}

impl WsClient {
    /// From now on nothing this client writes reaches the server: no frame,
    /// no pong, no close. Reading still works.
    pub fn mute(&self) {
        self.stream
            .get_ref()
            .muted
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Connects to a WebSocket URL with a bearer token and reads
/// `connection_established` (for clients living in their own task).
pub async fn connect_with_token(url: &str, token: &str) -> WsClient {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (stream, _) = connect(request).await.unwrap();
    let mut client = WsClient { stream };
    let hello = client.recv_json().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    client
}

impl TestServer {
    /// Connects to `/ws` as `user` over a socket with a tiny receive buffer
    /// and reads `connection_established`: once the test stops reading it, the
    /// server's writes back up after a few kilobytes instead of megabytes of
    /// kernel buffering (for slow-consumer tests).
    pub async fn ws_small_window(&self, user: &str) -> WsClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(self.addr).await.unwrap();
        let mut request = self.ws_url("/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.token(user))).unwrap(),
        );
        let tcp = Mutable {
            inner: tcp,
            muted: std::sync::Arc::default(),
        };
        let (stream, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
        let mut client = WsClient { stream };
        let hello = client.recv_json().await;
        assert_eq!(hello["type"], "connection_established", "{hello}");
        client
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One scrape of `GET /metrics`, parsed: every sample by its series name
/// with labels as written (`confab_ws_connections{endpoint="/ws"}`), and
/// every `# TYPE` declaration.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// Sample values by `name{labels}` (no braces when unlabelled).
    pub samples: std::collections::HashMap<String, f64>,
    /// Metric family types by family name (`counter`, `gauge`, `histogram`).
    pub types: std::collections::HashMap<String, String>,
    /// The raw text.
    pub text: String,
}

impl Scrape {
    /// Parses the text format; panics on a line that is not a comment, a
    /// sample or `# EOF`.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = std::collections::HashMap::new();
        let mut types = std::collections::HashMap::new();
        for line in text.lines() {
            if line.is_empty() || line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# ") {
                continue;
            }
            // Label values here never contain spaces: the value follows
            // the last space.
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad sample value in {line:?}"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "series {series} twice"
            );
        }
        Scrape {
            samples,
            types,
            text: text.to_owned(),
        }
    }

    /// The value of a series; panics if it is missing.
    pub fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in\n{}", self.text))
    }
}

impl TestServer {
    /// Scrapes `GET /metrics` (unauthenticated) and parses it.
    pub async fn scrape(&self) -> Scrape {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        Scrape::parse(&response.text().await.unwrap())
    }

    /// Scrapes until `ready` holds (counters are added right after the
    /// frames they count are queued, so a client may see a frame a moment
    /// before its count); panics after [`WAIT`]. Returns that scrape.
    pub async fn scrape_until(&self, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let scrape = self.scrape().await;
            if ready(&scrape) {
                return scrape;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "metrics never got there:\n{}",
                scrape.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl WsClient {
    /// The client's local port (to find its socket in the kernel's tables).
    pub fn local_port(&self) -> u16 {
        self.stream.get_ref().inner.local_addr().unwrap().port()
    }

    /// Writes raw bytes on the socket, bypassing the WebSocket encoder (for
    /// frames no well-behaved client sends).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let tcp = &mut self.stream.get_mut().inner;
        tcp.write_all(bytes).await.unwrap();
        tcp.flush().await.unwrap();
    }
}

/// A client-to-server WebSocket frame as bytes: FIN set, `first` holding the
/// opcode (and whatever RSV bits a test wants), the payload masked unless
/// `masked` is false.
pub fn raw_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// The kernel's TCP state (`/proc/net/tcp` and `tcp6`, hex: `01` is
/// ESTABLISHED) of the server's side of a connection: the socket whose local
/// port is `server_port` and whose peer port is `client_port`. `None` when
/// the kernel has no such socket any more.
pub fn server_side_tcp_state(server_port: u16, client_port: u16) -> Option<u8> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |address: &str| {
                address
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if fields.len() > 3
                && port(fields[1]) == Some(server_port)
                && port(fields[2]) == Some(client_port)
            {
                return u8::from_str_radix(fields[3], 16).ok();
            }
        }
    }
    None
}

/// TCP state ESTABLISHED in the kernel's tables.
pub const TCP_ESTABLISHED: u8 = 1;

impl TestServer {
    /// POSTs `total` bytes to `path` over a raw HTTP/1.1 connection the way
    /// a browser's `fetch` with a form or an async client does: the head,
    /// then the body streamed in chunks (chunked encoding unless
    /// `content_length`), and only then reads the answer. Returns the
    /// status and the JSON body. Panics if the connection drops before an
    /// answer arrives, which is what a refusal sent too early looks like.
    pub async fn post_streamed(
        &self,
        path: &str,
        headers: &[(&str, String)],
        total: usize,
        content_length: bool,
    ) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const CHUNK: usize = 64 * 1024;
        let mut tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if content_length {
            head.push_str(&format!("Content-Length: {total}\r\n"));
        } else {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; CHUNK];
        let mut sent = 0;
        while sent < total {
            let n = CHUNK.min(total - sent);
            if content_length {
                tcp.write_all(&chunk[..n]).await
            } else {
                let mut framed = format!("{n:x}\r\n").into_bytes();
                framed.extend_from_slice(&chunk[..n]);
                framed.extend_from_slice(b"\r\n");
                tcp.write_all(&framed).await
            }
            .unwrap_or_else(|e| panic!("the server dropped the upload after {sent} bytes: {e}"));
            sent += n;
        }
        if !content_length {
            tcp.write_all(b"0\r\n\r\n").await.unwrap();
        }
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
            .await
            .expect("no answer in time")
            .unwrap_or_else(|e| panic!("the connection dropped before the answer: {e}"));
        let text = String::from_utf8_lossy(&answer);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}
