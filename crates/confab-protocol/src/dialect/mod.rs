//! The room-scoped dialects (protocol.md §3): what the clients of
//! `/ws/chat/{room_id}/`, `/ws/sessions/{room_id}/` and `/ws/assistant/`
//! send and read.
//!
//! These endpoints exist so that front-ends written for per-room chat
//! consumers connect unchanged. The room is the URL's, so no frame names
//! one. A client frame decodes into a [`ScopedFrame`]; what the server sends
//! is made from the unified protocol's frames (the [`events`] views), so
//! that every dialect shows the same stored messages and the same typing.
//!
//! # Layout
//! - this module: the frames every room-scoped dialect shares, and their
//!   typing frame.
//! - [`chat`]: the job-conversations dialect.
//! - [`sessions`]: the climbing-partner sessions dialect.
//! - [`assistant`]: the AI help-desk dialect (its room is the session).
//! - [`events`]: typed views of the unified frames the dialects render.

pub mod assistant;
pub mod chat;
pub mod events;
pub mod sessions;

use crate::client::{DecodeError, RawFrame, SendMessage};
use crate::error::ErrorCode;
use crate::ids::{ReqId, de_opt_id};
use crate::model::MessageType;
use serde::{Deserialize, Serialize};

/// What a client of a room-scoped dialect asks for; the room is the one
/// its URL names.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopedFrame {
    /// Store a message in the room and fan it out (the room id is left
    /// empty here; the server fills it in).
    Send(SendMessage),
    /// Started or stopped typing.
    Typing {
        /// Started (`true`) or stopped (`false`).
        is_typing: bool,
    },
    /// Answered with `{"type": "pong", "timestamp"}`: a heartbeat a client
    /// can see, and the proof that the connection has joined its room (a
    /// frame is read only once the join is done).
    Ping,
    /// Everything up to `up_to_seq` (or everything) is read.
    MarkRead {
        /// The newest `seq` read; `None` is the whole room.
        up_to_seq: Option<i64>,
    },
}

/// A decoded room-scoped frame with the `req_id` it carried, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedEnvelope {
    /// Echoed on an `error` answering the frame.
    pub req_id: Option<ReqId>,
    /// The frame itself.
    pub frame: ScopedFrame,
}

/// `{"type": "typing", "sender_id", "sender_name", "is_typing"}`: someone
/// else in the room started or stopped typing (both dialects).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypingFrame<'a> {
    /// Always `typing`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Who.
    pub sender_id: &'a str,
    /// Their display name (their handle when they have none).
    pub sender_name: &'a str,
    /// Started (`true`) or stopped (`false`).
    pub is_typing: bool,
}

impl<'a> From<&'a events::TypingEvent> for TypingFrame<'a> {
    fn from(event: &'a events::TypingEvent) -> Self {
        TypingFrame {
            kind: "typing",
            sender_id: &event.user_id,
            sender_name: event.name.as_deref().unwrap_or(&event.username),
            is_typing: event.is_typing,
        }
    }
}

/// The fields of a message frame that both dialects read.
#[derive(Debug, Default, Deserialize)]
struct TextFields {
    /// The text as the job-conversations app names it.
    #[serde(default)]
    message: Option<String>,
    /// The text as the sessions app (and the unified protocol) names it.
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    client_msg_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    reply_to: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Which name of the text wins when a frame gives both.
#[derive(Debug, Clone, Copy)]
enum TextName {
    Message,
    Content,
}

impl TextFields {
    /// A send of `message_type` in the connection's room (filled in by the
    /// server), with no attachment or location yet.
    fn into_send(self, message_type: MessageType, first: TextName) -> SendMessage {
        let content = match first {
            TextName::Message => self.message.or(self.content),
            TextName::Content => self.content.or(self.message),
        };
        SendMessage {
            room_id: String::new(),
            content,
            message_type: Some(message_type),
            reply_to: self.reply_to,
            client_msg_id: self.client_msg_id,
            metadata: self.metadata,
            attachment_id: None,
            location: None,
        }
    }
}

/// The fields a typing or read frame may carry in either dialect.
#[derive(Debug, Default, Deserialize)]
struct ControlFields {
    #[serde(default)]
    is_typing: Option<bool>,
    #[serde(default)]
    up_to_seq: Option<i64>,
}

/// Decodes the frames both dialects share (`typing`, `stop_typing`,
/// `mark_read`, `ping`) given the frame's lower-cased `type`; `None` for any other
/// type.
fn control_frame(frame: &RawFrame, kind: &str) -> Option<Result<ScopedFrame, DecodeError>> {
    let fields = || {
        ControlFields::deserialize(&frame.value)
            .map_err(|e| frame.fail(ErrorCode::InvalidField, format!("{kind}: {e}")))
    };
    Some(match kind {
        "typing" => fields().map(|f| ScopedFrame::Typing {
            is_typing: f.is_typing.unwrap_or(true),
        }),
        "stop_typing" => Ok(ScopedFrame::Typing { is_typing: false }),
        "ping" => Ok(ScopedFrame::Ping),
        "mark_read" | "read" => fields().and_then(|f| match f.up_to_seq {
            Some(seq) if seq < 0 => {
                Err(frame.fail(ErrorCode::InvalidField, "up_to_seq must be ≥ 0".into()))
            }
            up_to_seq => Ok(ScopedFrame::MarkRead { up_to_seq }),
        }),
        _ => return None,
    })
}

/// The `unknown_type` refusal of a room-scoped dialect.
fn unknown(frame: &RawFrame, kind: &str, expected: &str) -> DecodeError {
    frame.fail(
        ErrorCode::UnknownType,
        format!("unknown frame type {kind:?} (expected {expected})"),
    )
}
