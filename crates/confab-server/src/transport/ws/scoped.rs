//! The room-scoped dialects (protocol.md §3): `/ws/chat/{room_id}/` (job
//! conversations) and `/ws/sessions/{room_id}/` (climbing-partner
//! sessions), and any configured route speaking them.
//!
//! A connection joins the one room its URL names. Membership is checked
//! before the socket goes live (4004 otherwise), the room is joined before
//! the first frame is read, and from then on everything goes through core
//! exactly as on `/ws`: stored, numbered, rate-limited, fanned out across
//! nodes. The two dialects differ only in their frames' shapes
//! ([`Shape`], written in `confab_protocol::dialect`).
//!
//! What the client reads is rendered on its writer from the unified frames
//! every fan-out is serialized as once: messages and typing in the
//! dialect's shape, errors and pongs as they are, a removal from the room as a 4004
//! close, anything else (read receipts, presence, edits) not at all.

use super::dialect::{Dialect, Render, Rendered, WithoutToken, error_frame};
use super::session::Session;
use crate::config::Config;
use crate::core::commands::Prepared;
use crate::core::live::{Join, Replay};
use crate::core::receipts::ReadRule;
use crate::core::{Caller, Chat, ChatError, ChatResult, encode};
use crate::hub::ConnId;
use axum::extract::ws::Utf8Bytes;
use confab_protocol::dialect::events::{
    NewMessageEvent, RoomRemovedEvent, TypingEvent, frame_type,
};
use confab_protocol::dialect::{ScopedEnvelope, ScopedFrame, TypingFrame, chat, sessions};
use confab_protocol::{CloseCode, DecodeError, ErrorCode, Message, ReqId, ServerFrame, Timestamp};
use serde::Serialize;
use std::marker::PhantomData;

/// What one room-scoped dialect looks like on the wire.
pub trait Shape: Send + Sync + 'static {
    /// Whose point of view a message's read state takes, where the shape
    /// shows one.
    const READS: ReadRule;

    /// Decodes a client frame (never panics).
    fn decode(text: &str, max_depth: usize) -> Result<ScopedEnvelope, DecodeError>;

    /// A stored message as the dialect's client reads it.
    fn message(message: &Message) -> Utf8Bytes;
}

/// The job-conversations dialect (`/ws/chat/{room_id}/`).
#[derive(Debug)]
pub struct ChatShape;

impl Shape for ChatShape {
    const READS: ReadRule = ReadRule::AnyoneButSender;

    fn decode(text: &str, max_depth: usize) -> Result<ScopedEnvelope, DecodeError> {
        chat::decode(text, max_depth)
    }

    fn message(message: &Message) -> Utf8Bytes {
        to_text(&chat::MessageFrame::from(message))
    }
}

/// The climbing-partner sessions dialect (`/ws/sessions/{room_id}/`).
#[derive(Debug)]
pub struct SessionsShape;

impl Shape for SessionsShape {
    // The shape shows no read state; the catch-up computes it all the same.
    const READS: ReadRule = ReadRule::Viewer;

    fn decode(text: &str, max_depth: usize) -> Result<ScopedEnvelope, DecodeError> {
        sessions::decode(text, max_depth)
    }

    fn message(message: &Message) -> Utf8Bytes {
        to_text(&sessions::MessageFrame::from(message))
    }
}

/// Serializes a frame the server built itself (it cannot fail: string keys,
/// infallible fields; an empty object would be the fallback).
fn to_text(frame: &impl Serialize) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_else(|_| "{}".into()))
}

/// A connection of a room-scoped dialect.
#[derive(Debug)]
pub struct RoomScoped<S> {
    /// The route it connected to, for `/metrics`.
    endpoint: &'static str,
    /// The room its URL names.
    room_id: String,
    /// What it asked to be replayed on joining (`?history=` or `?since_seq=`).
    replay: Replay,
    shape: PhantomData<S>,
}

impl<S: Shape> RoomScoped<S> {
    /// A connection on `endpoint` for `room_id`.
    pub fn new(endpoint: &'static str, room_id: String, replay: Replay) -> Self {
        RoomScoped {
            endpoint,
            room_id,
            replay,
            shape: PhantomData,
        }
    }

    /// Answers a refused or failed frame; the connection stays open.
    fn refuse(&self, session: &Session, error: &ChatError, req_id: Option<ReqId>) {
        session
            .outbox()
            .send(&error_frame(error, req_id, Some(self.room_id.clone())));
    }

    /// One decoded frame → one core call.
    async fn dispatch(&self, session: &mut Session, envelope: ScopedEnvelope) {
        let ScopedEnvelope { req_id, frame } = envelope;
        let room_id = &self.room_id;
        let done = match frame {
            ScopedFrame::Send(mut request) => {
                request.room_id.clone_from(room_id);
                let request = match session.chat().prepare_send(request, req_id.as_ref()) {
                    Prepared::Message(request) | Prepared::Me(request) => request,
                    Prepared::Command(call) => {
                        session.run_command(call, self.endpoint).await;
                        return;
                    }
                };
                // The client reads its own message from the room like everyone
                // else's: no ack; only a refusal is answered.
                let queued = session
                    .chat()
                    .queue_message(session.caller(), request, |_| {})
                    .await;
                match queued {
                    Ok(pending) => {
                        let room_id = room_id.clone();
                        session.keep_in_flight(Box::pin(async move {
                            let error = pending.stored().await.err()?;
                            Some(encode(&error_frame(&error, req_id, Some(room_id))))
                        }));
                        return;
                    }
                    Err(error) => Err(error),
                }
            }
            ScopedFrame::Typing { is_typing } => {
                session
                    .chat()
                    .typing(session.caller(), session.conn(), room_id, is_typing)
            }
            ScopedFrame::Ping => {
                session.outbox().send(&ServerFrame::Pong {
                    timestamp: Timestamp::now(),
                    req_id,
                });
                return;
            }
            ScopedFrame::MarkRead { up_to_seq } => {
                // What it marks must include every send before it.
                session.settle_in_flight().await;
                session
                    .chat()
                    .mark_read(session.caller(), room_id, up_to_seq, None)
                    .await
                    .map(drop)
            }
        };
        if let Err(error) = done {
            self.refuse(session, &error, req_id);
        }
    }
}

impl<S: Shape> Dialect for RoomScoped<S> {
    type Render = ScopedRender<S>;

    fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    /// A browser sees close codes, not statuses: no token is 4001 at once.
    fn without_token(&self, _config: &Config) -> WithoutToken {
        WithoutToken::Refuse
    }

    /// Not a member, or no such room: 4004 before anything is sent.
    async fn admit(&self, chat: &Chat, caller: &Caller) -> ChatResult<()> {
        if self.room_id.is_empty() {
            return Err(ChatError::NotFound("room"));
        }
        chat.room_access(caller, &self.room_id).await.map(drop)
    }

    /// These front-ends expect no greeting.
    fn greeting(&self, _config: &Config, _caller: &Caller, _conn: ConnId) -> Option<Utf8Bytes> {
        None
    }

    /// Joins the room, replaying what `?history=` or `?since_seq=` asked for.
    async fn opened(&mut self, session: &mut Session) -> ChatResult<()> {
        let join = Join {
            replay: self.replay,
            reads: S::READS,
            req_id: None,
        };
        session
            .chat()
            .subscribe(
                session.caller(),
                session.conn(),
                session.outbox(),
                &self.room_id,
                join,
            )
            .await
    }

    async fn on_text(&mut self, session: &mut Session, text: &str) {
        let max_depth = session.chat().config().limits.max_json_depth;
        match S::decode(text, max_depth) {
            Err(DecodeError {
                code,
                message,
                req_id,
                ..
            }) => {
                tracing::debug!(%code, %message, "bad frame");
                session.outbox().send(&ServerFrame::Error {
                    code,
                    message,
                    timestamp: Timestamp::now(),
                    room_id: Some(self.room_id.clone()),
                    req_id,
                    retry_after_ms: None,
                });
            }
            Ok(envelope) => {
                // Sends may overtake nothing but sends.
                if !matches!(envelope.frame, ScopedFrame::Send(_)) {
                    session.settle_in_flight().await;
                }
                self.dispatch(session, envelope).await;
            }
        }
    }

    fn on_binary(&mut self, session: &mut Session) {
        session.outbox().send(&ServerFrame::Error {
            code: ErrorCode::InvalidJson,
            message: "binary frames are not supported; send JSON text".into(),
            timestamp: Timestamp::now(),
            room_id: Some(self.room_id.clone()),
            req_id: None,
            retry_after_ms: None,
        });
    }

    fn render(&self) -> ScopedRender<S> {
        ScopedRender {
            room_id: self.room_id.clone(),
            shape: PhantomData,
        }
    }
}

/// Renders the unified frames queued for a room-scoped connection.
#[derive(Debug)]
pub struct ScopedRender<S> {
    room_id: String,
    shape: PhantomData<S>,
}

impl<S: Shape> ScopedRender<S> {
    /// A frame this dialect shows, read back from the shared bytes.
    fn parse<'a, T: serde::Deserialize<'a>>(frame: &'a str) -> Option<T> {
        serde_json::from_str(frame)
            .inspect_err(|error| tracing::warn!(%error, "a queued frame did not parse"))
            .ok()
    }
}

impl<S: Shape> Render for ScopedRender<S> {
    fn render(&mut self, frame: Utf8Bytes) -> Rendered {
        match frame_type(&frame) {
            Some("new_message") => match Self::parse::<NewMessageEvent>(&frame) {
                Some(event) if event.room_id == self.room_id => {
                    Rendered::Send(S::message(&event.message))
                }
                _ => Rendered::Skip,
            },
            Some("typing") => match Self::parse::<TypingEvent>(&frame) {
                Some(event) if event.room_id == self.room_id => {
                    Rendered::Send(to_text(&TypingFrame::from(&event)))
                }
                _ => Rendered::Skip,
            },
            // Errors, pongs and command results answer this connection's
            // own frames: as they are.
            Some("error" | "pong" | "command_result") => Rendered::Send(frame),
            Some("room_removed") => match Self::parse::<RoomRemovedEvent>(&frame) {
                Some(event) if event.room_id == self.room_id => {
                    Rendered::Close(CloseCode::NotMember)
                }
                _ => Rendered::Skip,
            },
            _ => Rendered::Skip,
        }
    }
}
