//! The session engine: one WebSocket connection from sign-in to close, for
//! any [`Dialect`].
//!
//! A connection is two tasks: the session (this module's reader loop),
//! which hands each text frame to its dialect, and a writer
//! (`writer.rs`), which drains the connection's bounded [`Outbox`]
//! into the socket. Replies and fanned-out frames share the outbox, so a
//! client sees them in the order they were queued.

use super::dialect::{Dialect, WithoutToken, error_frame};
use super::writer::{self, Sink, WriterContext, WriterTimes, close_message};
use crate::auth::AuthError;
use crate::core::commands::{CommandCall, Place};
use crate::core::connect_proxy::Knock;
use crate::core::live::Admission;
use crate::core::{Caller, Chat, ChatError, ChatResult};
use crate::hub::{ConnId, Outbox, outbox};
use crate::limits::ConnSlot;
use crate::transport::heartbeat::Liveness;
use crate::transport::state::AppState;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use confab_protocol::{CloseCode, ServerFrame, Timestamp};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prometheus_client::metrics::gauge::Gauge;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::Instrument;

/// Sends one connection may have queued on the store and not yet seen
/// committed. The session reads on while they commit, so a client that
/// streams messages gets them stored together (group commit) instead of one
/// commit per round trip; past this many it stops reading until one is done.
const MAX_SENDS_IN_FLIGHT: usize = 64;

/// A token expiry further away than this is treated as this far.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// An operation queued on core whose outcome comes later (a send waiting for
/// its commit): resolves to the frame to answer with, if any.
pub type InFlight = BoxFuture<'static, Option<Utf8Bytes>>;

/// What a connection brings from its handshake.
pub(super) struct Handshake {
    /// The credential from the header, subprotocol or query, if any.
    pub token: Option<String>,
    /// `X-Confab-User`, honoured with the server key.
    pub act_as: Option<String>,
    /// With no token and a connect proxy configured: the cookie to show it.
    pub cookie: Option<super::Cookie>,
    /// The client's address (limits, anonymous visitors, the connect
    /// proxy's `remote_addr`, the connection's log span): the peer's, or
    /// what a trusted proxy says it is.
    pub client: IpAddr,
    /// The address's slot under its connection cap, held for the connection's
    /// life; `None` when the address is at its cap (the socket is refused).
    pub addr_slot: Option<ConnSlot<IpAddr>>,
}

/// Runs one connection from authentication to close.
///
/// In two phases, so that an idle connection's task stays small: signing
/// in, admission and registration ([`open`]) await token checks and storage
/// reads whose futures are several KiB, so they run boxed and are freed once
/// the connection is open; what stays for the connection's life is the
/// reader loop's state (issue 21: memory per connection).
pub(super) fn run<D: Dialect>(
    state: AppState,
    socket: WebSocket,
    dialect: D,
    handshake: Handshake,
) -> impl Future<Output = ()> + Send + 'static {
    let opening = Box::pin(open(state, socket, dialect, handshake));
    async move {
        // Bound once and used in place: moving it into another future
        // would keep a copy of it in each.
        let Some(mut opened) = opening.await else {
            return;
        };
        opened.serve().await;
        let grace = Duration::from_secs(opened.session.state.chat.config().server.shutdown_grace_s);
        // Dropping the session drops its handle on the outbox: the writer
        // ends once the queue is drained.
        drop(opened.session);
        // The writer's every write is bounded, so this wait is too; the
        // abort is the backstop that keeps a writer from outliving its
        // session (a dropped JoinHandle would leave it running, holding the
        // socket).
        if tokio::time::timeout(grace, &mut opened.writer)
            .await
            .is_err()
        {
            opened.writer.abort();
        }
    }
}

/// A connection signed in, admitted and registered: what its reader loop
/// needs, and nothing of the handshake.
struct Opened<D> {
    /// Who is connected, where their frames go, and the engine's services.
    session: Session,
    dialect: D,
    stream: SplitStream<WebSocket>,
    /// The writer task.
    writer: tokio::task::JoinHandle<()>,
    span: tracing::Span,
    /// Held for the connection's life (given back before it is announced
    /// gone).
    addr_slot: Option<ConnSlot<IpAddr>>,
    /// Counts the connection in its endpoint's gauge while it lives.
    _open: OpenSession,
}

/// Signs the connection in, admits and registers it, and starts its
/// writer; `None` once it was refused (the close code is sent).
async fn open<D: Dialect>(
    state: AppState,
    mut socket: WebSocket,
    mut dialect: D,
    handshake: Handshake,
) -> Option<Opened<D>> {
    // Refused after the upgrade, with a close code, because browsers see
    // close codes but not HTTP statuses (protocol.md §7).
    let refusal = if state.shutdown.is_cancelled() {
        Some(CloseCode::Restarting)
    } else if handshake.addr_slot.is_none() {
        Some(CloseCode::TooManyConnections)
    } else {
        None
    };
    if let Some(code) = refusal {
        let _ = socket.send(close_message(code.code(), code.reason())).await;
        return None;
    }
    let (mut sink, mut stream) = socket.split();
    let Handshake {
        token,
        act_as,
        cookie,
        client,
        addr_slot,
    } = handshake;
    let addr_slot = addr_slot?;
    let without_token = dialect.without_token(state.chat.config());
    let signed_in = match (token, cookie) {
        (Some(token), _) => {
            dialect
                .sign_in(&state.chat, &token, act_as.as_deref(), client)
                .await
        }
        // The app knows the cookie's user; a cookie it does not know is no
        // credential at all, which an endpoint open to visitors takes as one.
        (None, Some(cookie)) => {
            let knock = Knock {
                cookie: &cookie.cookie,
                origin: cookie.origin.as_deref(),
                user_agent: cookie.user_agent.as_deref(),
                path: &cookie.path,
                remote_addr: client,
            };
            match state.chat.proxy_sign_in(knock).await {
                Err(ChatError::Auth(AuthError::Missing))
                    if without_token == WithoutToken::Anonymous =>
                {
                    Ok((Caller::anonymous(client), Some(Vec::new())))
                }
                signed_in => signed_in,
            }
        }
        (None, None) => match without_token {
            // In at once as `anon-…` (a fresh id, in no room yet); a dialect
            // may still identify the connection later (the unified
            // protocol's `auth` first frame: Session::identify).
            WithoutToken::Anonymous => Ok((Caller::anonymous(client), Some(Vec::new()))),
            WithoutToken::Refuse => Err(AuthError::Missing.into()),
            // A shutdown does not wait for the auth timeout: this socket gets
            // its 1012 like every other (protocol.md §0).
            WithoutToken::AwaitFirstFrame => tokio::select! {
                signed_in = first_frame_auth(&state, &dialect, &mut stream) => signed_in,
                () = state.shutdown.cancelled() => {
                    refuse(&mut sink, CloseCode::Restarting).await;
                    return None;
                }
            },
        },
    };
    let admitted = match signed_in {
        Ok((caller, rooms)) => match dialect.admit(&state.chat, &caller).await {
            Ok(()) => state
                .chat
                .admit(&caller)
                .map(|admission| (caller, rooms, admission)),
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let (caller, rooms, admission) = match admitted {
        Ok(admitted) => admitted,
        Err(error) => {
            tracing::debug!(%error, endpoint = dialect.endpoint(), %client, "websocket refused");
            refuse(&mut sink, error.close_code()).await;
            return None;
        }
    };
    let config = &state.chat.config();
    let (outbox, receiver) = outbox(
        config.server.outbound_queue_frames,
        config.server.outbound_queue_bytes,
    );
    let notifications = dialect.shows_notifications();
    let conn = state
        .chat
        .connect(&caller, rooms, outbox.clone(), notifications, |conn| {
            if let Some(greeting) = dialect.greeting(config, &caller, conn) {
                outbox.push(greeting);
            }
        })
        .await;
    let endpoint = dialect.endpoint();
    let open_guard = OpenSession::new(state.chat.metrics().connections(endpoint));
    let span = tracing::info_span!("conn", conn, user = %caller.id(), %client);
    span.in_scope(|| tracing::debug!(endpoint, "session opened"));
    let liveness = Liveness::default();
    let context = WriterContext {
        shutdown: state.shutdown.clone(),
        times: WriterTimes {
            heartbeat: Duration::from_millis(config.server.heartbeat_ms),
            write_timeout: Duration::from_millis(config.server.write_timeout_ms),
        },
        liveness: liveness.clone(),
        metrics: state.chat.metrics().clone(),
    };
    let writer = state.tracker.spawn(
        writer::write_loop(sink, receiver, dialect.render(), context).instrument(span.clone()),
    );
    let mut session = Session {
        state,
        caller,
        conn,
        outbox,
        expires: Instant::now(),
        liveness,
        admission,
        in_flight: FuturesOrdered::new(),
        notifications,
    };
    session.expires = session.expiry_deadline();
    Some(Opened {
        session,
        dialect,
        stream,
        writer,
        span,
        addr_slot: Some(addr_slot),
        _open: open_guard,
    })
}

impl<D: Dialect> Opened<D> {
    /// Reads the connection until it ends, then unregisters it and queues
    /// its close.
    async fn serve(&mut self) {
        let Opened {
            session,
            dialect,
            stream,
            span,
            addr_slot,
            ..
        } = self;
        let endpoint = dialect.endpoint();
        match Box::pin(dialect.opened(session).instrument(span.clone())).await {
            Ok(()) => {
                session
                    .read_loop(dialect, stream)
                    .instrument(span.clone())
                    .await;
            }
            Err(error) => {
                span.in_scope(|| tracing::debug!(%error, endpoint, "websocket closed on opening"));
                session.outbox.kill_with(error.close_code());
            }
        }
        span.in_scope(|| tracing::debug!("session closed"));
        // The slots go back before the departure is announced, so whoever
        // sees `user_offline` can connect again at once.
        drop(std::mem::take(&mut session.admission));
        drop(addr_slot.take());
        Box::pin(session.state.chat.disconnect(&session.caller, session.conn)).await;
        // Closing our own handle ends the writer once the queue is drained.
        // On shutdown the close must say 1012, whichever task notices first.
        let code = if session.state.shutdown.is_cancelled() {
            CloseCode::Restarting
        } else {
            CloseCode::Normal
        };
        session.outbox.close(code);
    }
}

/// Closes a socket refused before its session started.
async fn refuse(sink: &mut Sink, code: CloseCode) {
    let _ = sink.send(close_message(code.code(), code.reason())).await;
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

/// Waits (`auth.auth_timeout_s`) for a first frame carrying a token, when
/// the handshake carried none.
async fn first_frame_auth<D: Dialect>(
    state: &AppState,
    dialect: &D,
    stream: &mut SplitStream<WebSocket>,
) -> ChatResult<(Caller, Option<Vec<String>>)> {
    let timeout = Duration::from_secs(state.chat.config().auth.auth_timeout_s);
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
    let token = match first {
        Ok(Some(text)) => dialect.first_frame_token(&text, state.chat.config()),
        _ => None,
    };
    match token {
        Some(token) => state.chat.sign_in(&token, None).await,
        None => Err(AuthError::Missing.into()),
    }
}

/// The close code a read error calls for (protocol.md §2.1, RFC 6455 §7.4.1): a
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

/// One live connection, as its dialect sees it while handling a frame: who
/// is connected, where its frames go, and the engine's services (sends in
/// flight, token refresh, late identification).
pub struct Session {
    state: AppState,
    caller: Caller,
    conn: ConnId,
    outbox: Outbox,
    /// When the connection's token stops being valid; moved by a refresh.
    expires: Instant,
    /// Pongs seen, for the writer's heartbeat.
    liveness: Liveness,
    /// The connection-cap slots, swapped when an anonymous visitor identifies.
    admission: Admission,
    /// Operations queued on core and not yet settled, oldest first.
    in_flight: FuturesOrdered<InFlight>,
    /// The dialect shows notifications ([`Dialect::shows_notifications`]),
    /// kept for a re-registration in [`Session::switch_to`].
    notifications: bool,
}

impl Session {
    /// The chat service.
    pub fn chat(&self) -> &Chat {
        &self.state.chat
    }

    /// Who is connected.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// This connection's id in the hub.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Where this connection's frames are queued.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Keeps an operation in flight while the session reads on; its answer,
    /// if any, is queued when it settles (in the order queued).
    pub fn keep_in_flight(&mut self, operation: InFlight) {
        self.in_flight.push_back(operation);
    }

    /// Runs a slash command in flight (an app command may wait seconds for
    /// the app): the session reads on, and the `command_result` (or the
    /// error refusing the command) is queued in its turn among the answers
    /// of earlier sends, whose commits it waits for first (a command sees
    /// what the connection sent before it). `endpoint` is the dialect's,
    /// for `/status`.
    pub async fn run_command(&mut self, call: CommandCall, endpoint: &'static str) {
        self.settle_in_flight().await;
        let chat = self.state.chat.clone();
        let caller = self.caller.clone();
        let place = Place {
            connection: Some((self.conn.to_string(), endpoint)),
        };
        self.keep_in_flight(Box::pin(async move {
            let frame = match chat.run_command(&caller, &call, &place).await {
                Ok(result) => ServerFrame::CommandResult {
                    room_id: call.room_id,
                    result,
                    timestamp: Timestamp::now(),
                    req_id: call.req_id,
                },
                Err(error) => error_frame(&error, call.req_id, Some(call.room_id)),
            };
            Some(crate::core::encode(&frame))
        }));
    }

    /// Reads frames until the client leaves, the token expires, the connection
    /// is killed, or the server shuts down.
    async fn read_loop<D: Dialect>(
        &mut self,
        dialect: &mut D,
        stream: &mut SplitStream<WebSocket>,
    ) {
        let kill = self.outbox.kill_token();
        let shutdown = self.state.shutdown.clone();
        let mut expiry = Box::pin(tokio::time::sleep_until(self.expires));
        loop {
            tokio::select! {
                Some(answer) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    if let Some(answer) = answer {
                        self.outbox.push(answer);
                    }
                }
                message = stream.next(), if self.in_flight.len() < MAX_SENDS_IN_FLIGHT => match message {
                    // Boxed: what a frame sets off (any core call) is far
                    // larger than an idle connection's state, and would
                    // otherwise be part of every connection's task.
                    Some(Ok(Message::Text(text))) => Box::pin(dialect.on_text(self, &text)).await,
                    Some(Ok(Message::Binary(_))) => dialect.on_binary(self),
                    Some(Ok(Message::Pong(_))) => self.liveness.pong(),
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        // A client that sent and then closed still gets its
                        // acks (or refusals) before the close.
                        Box::pin(self.settle_in_flight()).await;
                        return;
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket read failed");
                        if let Some(code) = read_error_close(&error) {
                            self.outbox.kill_with(code);
                        } else if writer::stalled(&error) {
                            // The kernel timed the peer out (TCP_USER_TIMEOUT):
                            // it stopped taking our data, whoever sees it first.
                            self.outbox.kill_with(CloseCode::SlowConsumer);
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

    /// Waits for every operation in flight and queues their answers, unless
    /// the connection is killed or the server shuts down first. A dialect
    /// calls it before any request that must see earlier sends stored.
    pub async fn settle_in_flight(&mut self) {
        let kill = self.outbox.kill_token();
        let shutdown = self.state.shutdown.clone();
        while !self.in_flight.is_empty() {
            tokio::select! {
                Some(answer) = self.in_flight.next() => {
                    if let Some(answer) = answer {
                        self.outbox.push(answer);
                    }
                }
                () = kill.cancelled() => return,
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// When the connection's token stops being valid (far future for the
    /// server key), to the millisecond: `exp` plus the leeway. A far-away or
    /// absurd `exp` cannot overflow the clock.
    fn expiry_deadline(&self) -> Instant {
        let left = match self.caller.exp {
            None => FAR_FUTURE,
            Some(exp) => {
                let leeway = self.state.chat.config().auth.leeway_s;
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

    /// Replaces the connection's token with a later one for the same user
    /// (see [`Chat::refresh`]); on refusal nothing changes.
    pub fn refresh(&mut self, token: &str) -> ChatResult<()> {
        let exp = self.state.chat.refresh(&self.caller, token)?;
        self.caller.exp = Some(exp);
        self.expires = self.expiry_deadline();
        Ok(())
    }

    /// An anonymous connection identified by a token after the fact becomes
    /// that user's, exactly as if the token had come with the handshake: a
    /// new `greeting`, the user's caps instead of the visitor's. A refused
    /// token closes the connection with its code, as it would have without
    /// anonymous access.
    pub async fn identify(
        &mut self,
        token: &str,
        greeting: impl FnOnce(&crate::config::Config, &Caller, ConnId) -> Utf8Bytes,
    ) {
        let switched = match self.state.chat.sign_in(token, None).await {
            Ok((caller, rooms)) => {
                self.switch_to(caller, rooms, |config, caller, conn| {
                    Some(greeting(config, caller, conn))
                })
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = switched {
            tracing::debug!(%error, "anonymous connection refused its token");
            self.outbox.kill_with(error.close_code());
        }
    }

    /// Makes the connection `caller`'s from now on, as if it had signed in
    /// as them: their connection caps instead of the current caller's, a
    /// new id in the hub (the current one's subscriptions end), and their
    /// `greeting`, if any, queued first. Refused (and nothing changed) when
    /// `caller` is at a connection cap.
    pub async fn switch_to(
        &mut self,
        caller: Caller,
        rooms: Option<Vec<String>>,
        greeting: impl FnOnce(&crate::config::Config, &Caller, ConnId) -> Option<Utf8Bytes>,
    ) -> ChatResult<()> {
        let chat = &self.state.chat;
        let admission = chat.admit(&caller)?;
        chat.disconnect(&self.caller, self.conn).await;
        let outbox = &self.outbox;
        let conn = chat
            .connect(&caller, rooms, outbox.clone(), self.notifications, |conn| {
                if let Some(greeting) = greeting(chat.config(), &caller, conn) {
                    outbox.push(greeting);
                }
            })
            .await;
        tracing::debug!(conn, user = %caller.id(), "connection identified");
        self.caller = caller;
        self.conn = conn;
        self.admission = admission;
        self.expires = self.expiry_deadline();
        Ok(())
    }
}
