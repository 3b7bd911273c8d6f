//! The unified WebSocket endpoint, `/ws` and `/ws/chat/` (spec §2).
//!
//! A connection is two tasks: the session (this module's reader loop), which
//! decodes one frame at a time into a [`ClientFrame`] and calls core, and a
//! writer, which drains the connection's bounded [`Outbox`] into the socket,
//! batching whatever is queued into one flush. Replies and fanned-out frames
//! share the outbox, so a client sees them in the order they were queued.

use crate::app::AppState;
use crate::auth::{AuthError, bearer};
use crate::core::live::Admission;
use crate::core::{Caller, ChatError, ChatResult};
use crate::hub::{ConnId, Outbound, Outbox, OutboxReceiver, outbox};
use crate::limits::ConnSlot;
use axum::extract::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_protocol::{
    ClientFrame, CloseCode, DecodeError, ErrorCode, Limits, PROTOCOL_VERSION, ReqId, ServerFrame,
    Timestamp, decode_client_frame_limited,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::error::{ApiError, ErrorBody};
use super::extract::acting_user;
use super::heartbeat::Liveness;
use crate::metrics::Metrics;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;

/// The subprotocol browsers offer: `Sec-WebSocket-Protocol: confab.v1, bearer.T`.
const SUBPROTOCOL: &str = "confab.v1";
/// Frames written per flush at most, so one busy connection cannot hog its writer.
const WRITE_BATCH: usize = 64;
/// Bytes read from the socket at a time. tungstenite allocates this per
/// connection up front (its default, 128 KiB, was most of an idle
/// connection's memory); chat frames are a few hundred bytes, and 2 KiB
/// measured as fast as 4 KiB under load (docs/performance.md). Larger
/// frames are still read whole, in several reads.
const READ_BUFFER: usize = 2 * 1024;
/// Bytes gathered before a write reaches the socket; a batch is flushed as
/// a whole anyway (see `write_batch`).
const WRITE_BUFFER: usize = 8 * 1024;
/// The close sent to a peer that missed two pongs. 4008 because the client
/// is not reading its socket (a reading client answers pings by itself) and
/// the remedy is the slow consumer's: reconnect and resume with `since_seq`.
const HEARTBEAT_CLOSE: (u16, &str) = (4008, "no pong: heartbeat missed");
/// Sends one connection may have queued on the store and not yet seen
/// committed. The session reads on while they commit, so a client that
/// streams messages gets them stored together (group commit) instead of one
/// commit per round trip; past this many it stops reading until one is done.
const MAX_SENDS_IN_FLIGHT: usize = 64;
/// A token expiry further away than this is treated as this far.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Query parameters of the upgrade request.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// The JWT, for clients that can set neither a header nor a subprotocol
    /// (least preferred: URLs end up in logs).
    token: Option<String>,
}

/// `GET /ws`: the unified WebSocket session (spec §2).
///
/// Checks the origin (403 unless `server.allowed_origins` allows it),
/// upgrades, applies the per-address handshake rate and connection cap
/// (close 4029), then authenticates (handshake token, or an `auth` first
/// frame within 5 s) and runs the session. The frames spoken after the `101` are
/// described in docs/protocol.md, not here. A token may come as
/// `Authorization: Bearer T`, as the subprotocol `bearer.T` next to
/// `confab.v1`, in the first frame, or as `?token=T`; a refused credential
/// closes the socket with 4001/4002/4003 after the upgrade.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the session runs; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    upgrade_at("/ws", state, peer, headers, query, ws).await
}

/// The upgrade behind every WebSocket path; `endpoint` (the path) labels
/// the session in `/metrics`.
async fn upgrade_at(
    endpoint: &'static str,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| state.origins.allows(origin, host));
        if !allowed {
            tracing::debug!(?origin, "websocket refused: origin not allowed");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this origin may not open a WebSocket here (server.allowed_origins)",
            )
            .into_response();
        }
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidField,
                rejection.body_text(),
            )
            .into_response();
        }
    };
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    // Preference order of spec §1: header, subprotocol, (first frame), query.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_owned)
        .or_else(|| {
            offered
                .iter()
                .find_map(|p| p.strip_prefix("bearer."))
                .map(str::to_owned)
        })
        .or_else(|| {
            query
                .ok()
                .and_then(|Query(q)| q.token)
                .filter(|t| !t.is_empty())
        });
    let act_as = acting_user(&headers).map(str::to_owned);
    let max = state.chat.config.limits.max_frame_bytes;
    let mut ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    if offered.iter().any(|p| p == SUBPROTOCOL) {
        ws = ws.protocols([SUBPROTOCOL]);
    }
    // Refused after the upgrade, with a close code, because browsers see
    // close codes but not HTTP statuses (spec §7). Checked before any token
    // work, so a flood costs no signature checks and no storage reads.
    let addr_slot = admit_address(&state, peer.ip());
    let shutdown = state.shutdown.clone();
    let tracker = state.tracker.clone();
    ws.on_upgrade(move |mut socket| {
        tracker.track_future(async move {
            let refusal = if shutdown.is_cancelled() {
                Some(CloseCode::Restarting)
            } else if addr_slot.is_none() {
                Some(CloseCode::TooManyConnections)
            } else {
                None
            };
            if let Some(code) = refusal {
                let _ = socket.send(close_message(code.code(), code.reason())).await;
                return;
            }
            run(state, socket, token, act_as, peer.ip(), addr_slot, endpoint).await;
        })
    })
}

/// `GET /ws/chat`: the same session as `/ws` under the chat consumers' path.
///
/// Everything about `/ws` holds here; the frames are described in
/// docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/chat",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the `/ws` session; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_chat(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    upgrade_at("/ws/chat", state, peer, headers, query, ws).await
}

/// `GET /ws/chat/`: the same session as `/ws`, with the trailing slash that
/// per-room chat front-ends use (spec §2).
///
/// Everything about `/ws` holds here; the frames are described in
/// docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/chat/",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the `/ws` session; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_chat_slash(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    upgrade_at("/ws/chat/", state, peer, headers, query, ws).await
}

/// Takes a handshake from the address's rate and a slot under its connection
/// cap; `None` when either is exhausted.
fn admit_address(state: &AppState, ip: IpAddr) -> Option<ConnSlot<IpAddr>> {
    let limits = &state.chat.limits;
    if let Err(wait) = limits.handshakes.check(&ip) {
        tracing::debug!(%ip, ?wait, "websocket refused: handshake rate");
        return None;
    }
    let slot = limits.addr_conns.try_acquire(ip);
    if slot.is_none() {
        tracing::debug!(%ip, "websocket refused: too many connections from this address");
    }
    slot
}

/// Runs one connection from authentication to close. The address slot is
/// held for the connection's life.
async fn run(
    state: AppState,
    socket: WebSocket,
    token: Option<String>,
    act_as: Option<String>,
    peer: IpAddr,
    addr_slot: Option<ConnSlot<IpAddr>>,
    endpoint: &'static str,
) {
    let (mut sink, mut stream) = socket.split();
    let auth_timeout = Duration::from_secs(state.chat.config.auth.auth_timeout_s);
    let signed_in = match token {
        Some(token) => state.chat.sign_in(&token, act_as.as_deref()).await,
        // No token and visitors welcome: in at once as `anon-…` (a fresh id,
        // in no room yet); an `auth` first frame can still identify the
        // connection (Session::identify).
        None if state.chat.config.auth.allow_anonymous => {
            Ok((Caller::anonymous(peer), Some(Vec::new())))
        }
        // A shutdown does not wait for the auth timeout: this socket gets its
        // 1012 like every other (spec §0).
        None => tokio::select! {
            signed_in = first_frame_auth(&state, &mut stream, auth_timeout) => signed_in,
            () = state.shutdown.cancelled() => {
                let restarting = CloseCode::Restarting;
                let _ = sink
                    .send(close_message(restarting.code(), restarting.reason()))
                    .await;
                return;
            }
        },
    };
    let admitted = signed_in.and_then(|(caller, rooms)| {
        let admission = state.chat.admit(&caller)?;
        Ok((caller, rooms, admission))
    });
    let (caller, rooms, admission) = match admitted {
        Ok(admitted) => admitted,
        Err(error) => {
            tracing::debug!(%error, "websocket refused");
            let _ = sink
                .send(close_message(
                    error.close_code().code(),
                    error.close_code().reason(),
                ))
                .await;
            return;
        }
    };
    let config = &state.chat.config;
    let (outbox, receiver) = outbox(
        config.server.outbound_queue_frames,
        config.server.outbound_queue_bytes,
    );
    let conn = state
        .chat
        .connect(&caller, rooms, outbox.clone(), |conn| {
            outbox.send(&established(config, &caller, conn));
        })
        .await;
    let _open = OpenSession::new(state.chat.metrics.connections(endpoint));
    let span = tracing::info_span!("conn", conn, user = %caller.id());
    span.in_scope(|| tracing::debug!(endpoint, "session opened"));
    let times = WriterTimes {
        heartbeat: Duration::from_millis(config.server.heartbeat_ms),
        write_timeout: Duration::from_millis(config.server.write_timeout_ms),
    };
    let liveness = Liveness::default();
    let mut writer = tokio::spawn(
        write_loop(
            sink,
            receiver,
            state.shutdown.clone(),
            times,
            liveness.clone(),
            state.chat.metrics.clone(),
        )
        .instrument(span.clone()),
    );
    let mut session = Session {
        state: &state,
        caller,
        conn,
        outbox,
        expires: Instant::now(),
        liveness,
        admission,
        fresh: true,
        in_flight: FuturesOrdered::new(),
    };
    session.expires = session.expiry_deadline();
    session
        .read_loop(&mut stream)
        .instrument(span.clone())
        .await;
    span.in_scope(|| tracing::debug!("session closed"));
    // The slots go back before the departure is announced, so whoever sees
    // `user_offline` can connect again at once.
    drop(std::mem::take(&mut session.admission));
    drop(addr_slot);
    state.chat.disconnect(&session.caller, session.conn).await;
    // Closing our own handle ends the writer once the queue is drained; a
    // writer stuck on a dead socket is given the shutdown grace at most. On
    // shutdown the close must say 1012, whichever task notices first.
    let code = if state.shutdown.is_cancelled() {
        CloseCode::Restarting
    } else {
        CloseCode::Normal
    };
    session.outbox.close(code);
    drop(session);
    // The writer's every write is bounded, so this wait is too; the abort
    // is the backstop that keeps a writer from outliving its session (a
    // dropped JoinHandle would leave it running, holding the socket).
    let grace = Duration::from_secs(state.chat.config.server.shutdown_grace_s);
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// The first frame of every session: who the connection is and the limits
/// it lives under.
fn established(config: &crate::config::Config, caller: &Caller, conn: ConnId) -> ServerFrame {
    ServerFrame::ConnectionEstablished {
        user_id: caller.user.id.clone(),
        username: caller.user.username.clone(),
        connection_id: conn.to_string(),
        protocol: PROTOCOL_VERSION,
        heartbeat_ms: config.server.heartbeat_ms,
        limits: Limits {
            max_message_length: config.limits.max_message_length,
            messages_per_minute: if caller.anonymous.is_some() {
                config.rate_limit.anonymous_messages_per_minute
            } else {
                config.rate_limit.messages_per_minute
            },
            max_frame_bytes: config.limits.max_frame_bytes,
        },
        timestamp: Timestamp::now(),
    }
}

/// Counts a session in its endpoint's gauge of open connections while it
/// lives (a drop guard, so no early return can leave it counted).
struct OpenSession(Gauge);

impl OpenSession {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        OpenSession(gauge)
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Waits for an `auth` frame when the handshake carried no token.
async fn first_frame_auth(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
    timeout: Duration,
) -> Result<(Caller, Option<Vec<String>>), ChatError> {
    let first = tokio::time::timeout(timeout, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let Ok(Some(text)) = first else {
        return Err(AuthError::Missing.into());
    };
    match decode_client_frame_limited(&text, state.chat.config.limits.max_json_depth) {
        Ok(envelope) => match envelope.frame {
            ClientFrame::Auth { token } => state.chat.sign_in(&token, None).await,
            _ => Err(AuthError::Missing.into()),
        },
        Err(_) => Err(AuthError::Missing.into()),
    }
}

/// One authenticated connection's request handling.
struct Session<'a> {
    state: &'a AppState,
    caller: Caller,
    conn: ConnId,
    outbox: Outbox,
    /// When the connection's token stops being valid; moved by `refresh_token`.
    expires: Instant,
    /// Pongs seen, for the writer's heartbeat.
    liveness: Liveness,
    /// The connection-cap slots, swapped when an anonymous visitor identifies.
    admission: Admission,
    /// No frame handled yet: an anonymous connection may still send `auth`.
    fresh: bool,
    /// Sends queued on the store and not yet committed, oldest first. Their
    /// acks come from the commit; only a failure is answered from here.
    in_flight: FuturesOrdered<InFlightSend>,
}

/// A queued send's outcome with what its `error` reply needs.
type InFlightSend = BoxFuture<'static, (ChatResult<()>, Option<ReqId>, String)>;

impl Session<'_> {
    /// Reads frames until the client leaves, the token expires, the connection
    /// is killed, or the server shuts down.
    async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) {
        let kill = self.outbox_kill();
        let shutdown = self.state.shutdown.clone();
        let mut expiry = Box::pin(tokio::time::sleep_until(self.expires));
        loop {
            tokio::select! {
                Some((result, req_id, room_id)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    if let Err(error) = result {
                        self.refuse(&error, req_id, Some(room_id));
                    }
                }
                message = stream.next(), if self.in_flight.len() < MAX_SENDS_IN_FLIGHT => match message {
                    Some(Ok(Message::Text(text))) => self.handle_text(&text).await,
                    Some(Ok(Message::Binary(_))) => self.reply_error(
                        ErrorCode::InvalidJson,
                        "binary frames are not supported; send JSON text".into(),
                        None,
                        None,
                        None,
                    ),
                    Some(Ok(Message::Pong(_))) => self.liveness.pong(),
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        // A client that sent and then closed still gets its
                        // acks (or refusals) before the close.
                        self.settle_in_flight().await;
                        return;
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket read failed");
                        if let Some(code) = read_error_close(&error) {
                            self.outbox.kill_with(code);
                        }
                        return;
                    }
                },
                () = &mut expiry => {
                    tracing::debug!("token expired");
                    self.outbox.kill_with(CloseCode::BadToken);
                    return;
                }
                () = kill.cancelled() => return,
                () = shutdown.cancelled() => return,
            }
            if expiry.deadline() != self.expires {
                expiry.as_mut().reset(self.expires);
            }
        }
    }

    /// Waits for every queued send and answers the failed ones, unless the
    /// connection is killed or the server shuts down first.
    async fn settle_in_flight(&mut self) {
        let kill = self.outbox_kill();
        let shutdown = self.state.shutdown.clone();
        while !self.in_flight.is_empty() {
            tokio::select! {
                Some((result, req_id, room_id)) = self.in_flight.next() => {
                    if let Err(error) = result {
                        self.refuse(&error, req_id, Some(room_id));
                    }
                }
                () = kill.cancelled() => return,
                () = shutdown.cancelled() => return,
            }
        }
    }

    fn outbox_kill(&self) -> CancellationToken {
        self.outbox.kill_token()
    }

    /// When the connection's token stops being valid (far future for the
    /// server key), to the millisecond: `exp` plus the leeway. A far-away or
    /// absurd `exp` cannot overflow the clock.
    fn expiry_deadline(&self) -> Instant {
        let left = match self.caller.exp {
            None => FAR_FUTURE,
            Some(exp) => {
                let leeway = self.state.chat.config.auth.leeway_s;
                match UNIX_EPOCH.checked_add(Duration::from_secs(exp.saturating_add(leeway))) {
                    // Beyond what the clock can represent: as good as never.
                    None => FAR_FUTURE,
                    Some(end) => end
                        .duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                        .min(FAR_FUTURE),
                }
            }
        };
        Instant::now() + left
    }

    async fn handle_text(&mut self, text: &str) {
        let max_depth = self.state.chat.config.limits.max_json_depth;
        let decoded = decode_client_frame_limited(text, max_depth);
        if let Ok(envelope) = &decoded
            && let ClientFrame::Auth { token } = &envelope.frame
            && self.fresh
            && self.caller.anonymous.is_some()
        {
            self.fresh = false;
            self.identify(token).await;
            return;
        }
        self.fresh = false;
        match decoded {
            Err(DecodeError {
                code,
                message,
                req_id,
                room_id,
            }) => {
                tracing::debug!(%code, %message, "bad frame");
                self.reply_error(code, message, req_id, room_id, None);
            }
            Ok(envelope) => {
                // Sends may overtake nothing but sends: anything else sees
                // every earlier send of this connection committed first.
                if !matches!(envelope.frame, ClientFrame::SendMessage(_)) {
                    self.settle_in_flight().await;
                }
                let room_id = envelope.frame.room_id().map(str::to_owned);
                let req_id = envelope.req_id;
                if let Err(error) = self.dispatch(envelope.frame, req_id.clone()).await {
                    self.refuse(&error, req_id, room_id);
                }
            }
        }
    }

    /// Answers a refused or failed request with its `error` frame.
    fn refuse(&self, error: &ChatError, req_id: Option<ReqId>, room_id: Option<String>) {
        if error.is_internal() {
            tracing::error!(error = ?error, "request failed");
        } else {
            tracing::debug!(%error, "request refused");
        }
        self.reply_error(
            error.code(),
            error.public_message(),
            req_id,
            room_id,
            error.retry_after_ms(),
        );
    }

    /// An anonymous connection whose first frame is `auth` becomes that
    /// user's, exactly as if the token had come with the handshake: a new
    /// `connection_established`, the user's caps instead of the visitor's.
    /// A refused token closes the connection with its code, as it would have
    /// without anonymous access.
    async fn identify(&mut self, token: &str) {
        let chat = &self.state.chat;
        let identified = match chat.sign_in(token, None).await {
            Ok((caller, rooms)) => chat
                .admit(&caller)
                .map(|admission| (caller, rooms, admission)),
            Err(error) => Err(error),
        };
        let (caller, rooms, admission) = match identified {
            Ok(identified) => identified,
            Err(error) => {
                tracing::debug!(%error, "anonymous connection refused its auth frame");
                self.outbox.kill_with(error.close_code());
                return;
            }
        };
        chat.disconnect(&self.caller, self.conn).await;
        let outbox = &self.outbox;
        let conn = chat
            .connect(&caller, rooms, outbox.clone(), |conn| {
                outbox.send(&established(&chat.config, &caller, conn));
            })
            .await;
        tracing::debug!(conn, user = %caller.id(), "anonymous connection identified");
        self.caller = caller;
        self.conn = conn;
        self.admission = admission;
        self.expires = self.expiry_deadline();
    }

    /// Requests whose answer goes to the whole room get an `ack` of their own
    /// only when they carried a `req_id` to match it with.
    fn ack_if_asked(&self, req_id: Option<ReqId>) -> Result<(), ChatError> {
        if req_id.is_some() {
            self.outbox.send(&ServerFrame::Ack { req_id });
        }
        Ok(())
    }

    fn reply_error(
        &self,
        code: ErrorCode,
        message: String,
        req_id: Option<ReqId>,
        room_id: Option<String>,
        retry_after_ms: Option<u64>,
    ) {
        self.outbox.send(&ServerFrame::Error {
            code,
            message,
            room_id,
            req_id,
            retry_after_ms,
        });
    }

    /// One request → one core call → its direct answer.
    async fn dispatch(
        &mut self,
        frame: ClientFrame,
        req_id: Option<ReqId>,
    ) -> Result<(), ChatError> {
        let chat = &self.state.chat;
        let caller = &self.caller;
        let reply = match frame {
            ClientFrame::Auth { .. } => {
                return Err(ChatError::InvalidField(
                    "already authenticated; use refresh_token to replace the token".into(),
                ));
            }
            ClientFrame::RefreshToken { token } => {
                let exp = chat.refresh(caller, &token)?;
                self.caller.exp = Some(exp);
                self.expires = self.expiry_deadline();
                ServerFrame::Ack { req_id }
            }
            ClientFrame::SubscribeRoom { room_id, since_seq } => {
                return chat
                    .subscribe(caller, self.conn, &self.outbox, &room_id, since_seq, req_id)
                    .await;
            }
            ClientFrame::UnsubscribeRoom { room_id } => {
                chat.unsubscribe(caller, self.conn, &room_id)?;
                ServerFrame::Unsubscribed { room_id, req_id }
            }
            ClientFrame::SendMessage(request) => {
                let outbox = self.outbox.clone();
                let room_id = request.room_id.clone();
                let ack_req_id = req_id.clone();
                let pending = chat
                    .queue_message(caller, request, move |sent| {
                        outbox.send(&ServerFrame::MessageAck {
                            room_id: sent.message.room_id.clone(),
                            client_msg_id: sent.client_msg_id.clone(),
                            message_id: sent.message.id.clone(),
                            seq: sent.message.seq,
                            timestamp: sent.message.timestamp,
                            duplicate: sent.duplicate,
                            req_id: ack_req_id,
                        });
                    })
                    .await?;
                self.in_flight.push_back(Box::pin(async move {
                    (pending.stored().await, req_id, room_id)
                }));
                return Ok(());
            }
            ClientFrame::EditMessage {
                room_id,
                message_id,
                content,
            } => {
                chat.edit_message(caller, &room_id, &message_id, content)
                    .await?;
                return self.ack_if_asked(req_id);
            }
            ClientFrame::DeleteMessage {
                room_id,
                message_id,
            } => {
                chat.delete_message(caller, &room_id, &message_id).await?;
                return self.ack_if_asked(req_id);
            }
            ClientFrame::AddReaction {
                room_id,
                message_id,
                emoji,
            } => {
                chat.react(caller, &room_id, &message_id, emoji, true)
                    .await?;
                return self.ack_if_asked(req_id);
            }
            ClientFrame::RemoveReaction {
                room_id,
                message_id,
                emoji,
            } => {
                chat.react(caller, &room_id, &message_id, emoji, false)
                    .await?;
                return self.ack_if_asked(req_id);
            }
            ClientFrame::MarkRead {
                room_id,
                up_to_seq,
                message_ids,
            } => {
                chat.mark_read(caller, &room_id, up_to_seq, message_ids)
                    .await?;
                return self.ack_if_asked(req_id);
            }
            ClientFrame::Typing { room_id, is_typing } => {
                return chat.typing(caller, self.conn, &room_id, is_typing.unwrap_or(true));
            }
            ClientFrame::StopTyping { room_id } => {
                return chat.typing(caller, self.conn, &room_id, false);
            }
            ClientFrame::GetRoomList { limit, cursor } => {
                let (rooms, next_cursor) = chat.room_list(caller, limit, cursor.as_deref()).await?;
                ServerFrame::RoomList {
                    rooms,
                    next_cursor,
                    req_id,
                }
            }
            ClientFrame::GetHistory {
                room_id,
                before_seq,
                after_seq,
                limit,
            } => {
                let (messages, has_more) = chat
                    .history(caller, &room_id, before_seq, after_seq, limit)
                    .await?;
                ServerFrame::History {
                    room_id,
                    messages,
                    has_more,
                    req_id,
                }
            }
            ClientFrame::GetPresence { room_id } => {
                let online = chat.presence(caller, &room_id).await?;
                ServerFrame::Presence {
                    room_id,
                    online,
                    req_id,
                }
            }
            ClientFrame::Ping {} => ServerFrame::Pong {
                timestamp: Timestamp::now(),
                req_id,
            },
        };
        self.outbox.send(&reply);
        Ok(())
    }
}

/// The close code a read error calls for (spec §2.1, RFC 6455 §7.4.1): a
/// frame over the size limit 1009, a text frame that is not UTF-8 1007, any
/// other breach of the WebSocket protocol (unmasked frame, reserved opcode or
/// bits, an over-long control frame) 1002. `None` when the peer is simply
/// gone (an I/O error): there is nobody to tell.
fn read_error_close(error: &axum::Error) -> Option<CloseCode> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<tungstenite::Error>() {
            return match e {
                tungstenite::Error::Capacity(_) => Some(CloseCode::TooBig),
                tungstenite::Error::Utf8(_) => Some(CloseCode::InvalidPayload),
                tungstenite::Error::Protocol(_) | tungstenite::Error::AttackAttempt => {
                    Some(CloseCode::ProtocolError)
                }
                _ => None,
            };
        }
        source = e.source();
    }
    None
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// How the writer's socket is kept from blocking forever.
#[derive(Debug, Clone, Copy)]
struct WriterTimes {
    /// Between heartbeat pings.
    heartbeat: Duration,
    /// How long one write (a batch, a ping, the close frame) may block.
    write_timeout: Duration,
}

/// What became of one blocking write.
enum Written {
    /// Written and flushed; a queued close was reached if `Some`.
    Done(Option<u16>),
    /// The socket failed: the peer is gone.
    Failed,
    /// The connection was killed while the write was blocked.
    Killed,
    /// The write blocked past the write timeout.
    TimedOut,
}

/// Runs one write against the kill token and the write timeout, so that a
/// peer which stops reading can hold the writer for a bounded time only.
async fn bounded<T>(
    kill: &CancellationToken,
    write_timeout: Duration,
    write: impl Future<Output = Result<T, ()>>,
    done: impl FnOnce(T) -> Written,
) -> Written {
    tokio::select! {
        biased;
        () = kill.cancelled() => Written::Killed,
        written = tokio::time::timeout(write_timeout, write) => match written {
            Ok(Ok(value)) => done(value),
            Ok(Err(())) => Written::Failed,
            Err(_) => Written::TimedOut,
        },
    }
}

/// Drains the outbox into the socket: everything queued is written, then
/// flushed once. Sends heartbeat pings and closes a peer that missed two
/// pongs; on shutdown writes what is queued and closes with 1012.
///
/// No write may block for longer than the write timeout: a peer that stops
/// reading is a slow consumer (4008) even while its queue has room, and a
/// kill interrupts a blocked write. The close frame gets the same bound, and
/// then the writer returns whether or not it was written, which lets the
/// session drop the socket: a client that never reads cannot keep it open.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: OutboxReceiver,
    shutdown: CancellationToken,
    times: WriterTimes,
    liveness: Liveness,
    metrics: Arc<Metrics>,
) {
    let WriterTimes {
        heartbeat,
        write_timeout,
    } = times;
    let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let kill = outbox.kill.clone();
    let mut heartbeat_missed = false;
    let close = loop {
        let written = tokio::select! {
            biased;
            () = kill.cancelled() => Written::Killed,
            item = outbox.recv() => match item {
                Some(Outbound::Frame(bytes)) => {
                    let batch = write_batch(&mut sink, &mut outbox, bytes);
                    bounded(&kill, write_timeout, batch, Written::Done).await
                }
                Some(Outbound::Close(code)) => Written::Done(Some(code.code())),
                None => Written::Done(Some(CloseCode::Normal.code())),
            },
            () = shutdown.cancelled() => {
                let drain = async {
                    while let Some(Outbound::Frame(bytes)) = outbox.try_recv() {
                        sink.feed(Message::Text(bytes)).await.map_err(drop)?;
                    }
                    sink.flush().await.map_err(drop)
                };
                // Whatever became of the queued frames, the close says 1012.
                let _ = tokio::time::timeout(write_timeout, drain).await;
                Written::Done(Some(CloseCode::Restarting.code()))
            }
            _ = ping.tick() => {
                if !liveness.ping_due() {
                    tracing::debug!("two pings unanswered: closing");
                    // Ends the session's reader too, which then cleans up
                    // presence and typing like any other departure.
                    outbox.kill_with(CloseCode::SlowConsumer);
                    heartbeat_missed = true;
                    Written::Done(Some(HEARTBEAT_CLOSE.0))
                } else {
                    let ping = sink.send(Message::Ping(Default::default()));
                    bounded(&kill, write_timeout, async { ping.await.map_err(drop) }, |()| {
                        Written::Done(None)
                    })
                    .await
                }
            }
        };
        match written {
            Written::Done(None) => {}
            Written::Done(Some(code)) => break Some(code),
            Written::Failed => break None,
            Written::Killed => break Some(outbox.close_code()),
            Written::TimedOut => {
                tracing::debug!("a write blocked past the write timeout: slow consumer");
                outbox.kill_with(CloseCode::SlowConsumer);
                break Some(outbox.close_code());
            }
        }
    };
    if close == Some(CloseCode::SlowConsumer.code()) {
        if heartbeat_missed {
            metrics.heartbeat_closes.inc();
        } else {
            metrics.slow_consumer_closes.inc();
        }
    }
    let goodbye = async {
        if let Some(code) = close {
            let reason = match CloseCode::from_code(code) {
                Some(CloseCode::SlowConsumer) if heartbeat_missed => HEARTBEAT_CLOSE.1,
                Some(known) => known.reason(),
                None => CloseCode::Normal.reason(),
            };
            let _ = sink.send(close_message(code, reason)).await;
        }
        let _ = sink.close().await;
    };
    if tokio::time::timeout(write_timeout, goodbye).await.is_err() {
        tracing::debug!("the close frame could not be written in time: dropping the socket");
    }
}

/// Writes `first` and whatever else is queued (up to [`WRITE_BATCH`]), then
/// flushes once. Returns a close code if a queued close was reached.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    outbox: &mut OutboxReceiver,
    first: Utf8Bytes,
) -> Result<Option<u16>, ()> {
    sink.feed(Message::Text(first)).await.map_err(drop)?;
    let mut close = None;
    for _ in 1..WRITE_BATCH {
        match outbox.try_recv() {
            Some(Outbound::Frame(bytes)) => sink.feed(Message::Text(bytes)).await.map_err(drop)?,
            Some(Outbound::Close(code)) => {
                close = Some(code.code());
                break;
            }
            None => break,
        }
    }
    sink.flush().await.map_err(drop)?;
    Ok(close)
}
