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
use crate::core::{Caller, Chat, ChatResult};
use crate::hub::ConnId;
use axum::extract::ws::Utf8Bytes;
use std::future::Future;

/// Turns a frame from the outbox (unified-protocol JSON, serialized once for
/// every recipient) into what the dialect's client reads; `None` drops it.
/// Runs on the connection's writer, so a dialect client costs its own
/// rendering and nobody else's.
pub trait Render: Send + 'static {
    /// The frame as this connection's client reads it.
    fn render(&mut self, frame: Utf8Bytes) -> Option<Utf8Bytes>;
}

/// Frames go out as queued (the unified protocol).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsQueued;

impl Render for AsQueued {
    #[inline]
    fn render(&mut self, frame: Utf8Bytes) -> Option<Utf8Bytes> {
        Some(frame)
    }
}

/// What one WebSocket endpoint speaks. One value per connection: it may
/// keep per-connection state (the room of a room-scoped endpoint).
pub trait Dialect: Send + Sync + 'static {
    /// How the dialect's frames are rendered on the writer.
    type Render: Render;

    /// The endpoint's path, labelling the connection in `/metrics` and logs.
    fn endpoint(&self) -> &'static str;

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

    /// The connection's first frame, queued before any event can reach it.
    fn greeting(&self, config: &Config, caller: &Caller, conn: ConnId) -> Utf8Bytes;

    /// Handles one text frame from the client: decodes it and calls core
    /// through the session. A bad frame is answered, never a disconnect.
    fn on_text(&mut self, session: &mut Session<'_>, text: &str)
    -> impl Future<Output = ()> + Send;

    /// Handles a binary frame (no dialect speaks binary: an error answer).
    fn on_binary(&mut self, session: &mut Session<'_>);

    /// The renderer the connection's writer applies to every queued frame.
    fn render(&self) -> Self::Render;
}
