//! The seam between the session engine and a WebSocket dialect.
//!
//! Every WebSocket endpoint runs the same engine ([`super::session`]): the
//! handshake, sign-in, connection caps, heartbeats, the bounded outbox, the
//! writer, token expiry, sends in flight. A dialect supplies only what
//! differs between endpoints: the label its connections carry, the check
//! before a connection goes live, the greeting, how a text frame turns into
//! core calls, and how the frames core queues (the unified protocol's
//! `ServerFrame` JSON, shared with every recipient of a fan-out) look to its
//! clients. A dialect never stores, fans out or checks permissions itself:
//! it calls core, which does.
//!
//! The unified protocol of `/ws` is the first dialect
//! ([`super::unified::Unified`]); its [`Render`] is the identity, so its
//! clients get the shared bytes exactly as queued.

use super::session::Session;
use crate::config::Config;
use crate::core::{Caller, Chat, ChatError, ChatResult};
use crate::hub::ConnId;
use axum::extract::ws::Utf8Bytes;
use confab_protocol::{CloseCode, ReqId, ServerFrame, Timestamp};
use std::future::Future;
use std::net::IpAddr;

/// What becomes of one queued frame on a dialect's connection.
#[derive(Debug)]
pub enum Rendered {
    /// Write this text frame.
    Send(Utf8Bytes),
    /// Nothing for this client (an event its protocol has no frame for).
    Skip,
    /// Close the connection with this code (a room-scoped connection whose
    /// member was removed from the room).
    Close(CloseCode),
}

/// Turns a frame from the outbox (unified-protocol JSON, serialized once for
/// every recipient) into what the dialect's client reads. Runs on the
/// connection's writer, so a dialect client costs its own rendering and
/// nobody else's (docs/architecture.md: why bytes are translated there).
pub trait Render: Send + 'static {
    /// The frame as this connection's client reads it.
    fn render(&mut self, frame: Utf8Bytes) -> Rendered;
}

/// Frames go out as queued (the unified protocol).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsQueued;

impl Render for AsQueued {
    #[inline]
    fn render(&mut self, frame: Utf8Bytes) -> Rendered {
        Rendered::Send(frame)
    }
}

/// What a connection whose handshake carried no token gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutToken {
    /// In at once as a fresh anonymous visitor (`auth.allow_anonymous`).
    Anonymous,
    /// A first frame carrying a token, within `auth.auth_timeout_s`.
    AwaitFirstFrame,
    /// Closed at once with 4001.
    Refuse,
}

/// What one WebSocket endpoint speaks. One value per connection: it may
/// keep per-connection state (the room of a room-scoped endpoint).
pub trait Dialect: Send + Sync + 'static {
    /// How the dialect's frames are rendered on the writer.
    type Render: Render;

    /// The endpoint's path, labelling the connection in `/metrics` and logs.
    fn endpoint(&self) -> &'static str;

    /// Whether the dialect shows the app's `notification` frames
    /// (protocol.md §8.4). Only the unified protocol has a frame for them;
    /// connections of other dialects are neither sent them nor counted in
    /// the `connections` a notify answers.
    fn shows_notifications(&self) -> bool {
        false
    }

    /// What a connection whose handshake carried no token gets.
    fn without_token(&self, config: &Config) -> WithoutToken;

    /// Signs in a connection whose handshake carried `token`: by default a
    /// user token or the server key (with `act_as`). A dialect may know
    /// credentials of its own (`/ws/assistant/`'s visitor tokens).
    fn sign_in(
        &mut self,
        chat: &Chat,
        token: &str,
        act_as: Option<&str>,
        _peer: IpAddr,
    ) -> impl Future<Output = ChatResult<(Caller, Option<Vec<String>>)>> + Send {
        chat.sign_in(token, act_as)
    }

    /// A token carried by the first frame, for connections whose handshake
    /// had none; `None` when the text is not such a frame (the connection
    /// is then refused with 4001).
    fn first_frame_token(&self, _text: &str, _config: &Config) -> Option<String> {
        None
    }

    /// The check after sign-in and before the connection goes live (a
    /// room-scoped endpoint's membership): a refusal closes the socket with
    /// the error's close code before any frame is sent.
    fn admit(&self, _chat: &Chat, _caller: &Caller) -> impl Future<Output = ChatResult<()>> + Send {
        async { Ok(()) }
    }

    /// The connection's first frame, queued before any event can reach it
    /// (`None`: the dialect greets nobody).
    fn greeting(&self, config: &Config, caller: &Caller, conn: ConnId) -> Option<Utf8Bytes>;

    /// Runs once the connection is live, before its first frame is read (a
    /// room-scoped endpoint joins its room here). A refusal closes the
    /// connection with the error's close code.
    fn opened(&mut self, _session: &mut Session) -> impl Future<Output = ChatResult<()>> + Send {
        async { Ok(()) }
    }

    /// Handles one text frame from the client: decodes it and calls core
    /// through the session. A bad frame is answered, never a disconnect.
    fn on_text(&mut self, session: &mut Session, text: &str) -> impl Future<Output = ()> + Send;

    /// Handles a binary frame (no dialect speaks binary: an error answer).
    fn on_binary(&mut self, session: &mut Session);

    /// The renderer the connection's writer applies to every queued frame.
    fn render(&self) -> Self::Render;
}

/// The `error` frame answering a refused or failed request (logged here),
/// in the unified protocol's shape, which every dialect's clients read.
pub fn error_frame(
    error: &ChatError,
    req_id: Option<ReqId>,
    room_id: Option<String>,
) -> ServerFrame {
    if error.is_internal() {
        tracing::error!(error = ?error, "request failed");
    } else {
        tracing::debug!(%error, "request refused");
    }
    ServerFrame::Error {
        code: error.code(),
        message: error.public_message(),
        timestamp: Timestamp::now(),
        room_id,
        req_id,
        retry_after_ms: error.retry_after_ms(),
    }
}
