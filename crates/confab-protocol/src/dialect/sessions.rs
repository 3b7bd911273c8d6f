//! The climbing-partner sessions dialect of `/ws/sessions/{room_id}/`
//! (protocol.md §3).
//!
//! The client sends `{"type": "message", "content"}` and `{"type":
//! "typing", "is_typing"}`; it reads `{"type": "message", "message_id",
//! "content", "sender_id", "sender_name", "created_at"}` for every message
//! of the room and the others' typing.

use super::{ScopedEnvelope, ScopedFrame, TextFields, TextName, control_frame, unknown};
use crate::client::{DecodeError, parse_frame};
use crate::error::ErrorCode;
use crate::model::{Message, MessageType};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The `type`s this dialect knows, for the `unknown_type` message.
const EXPECTED: &str = "message, typing, stop_typing, mark_read or ping";

/// Decodes one client frame of the dialect. Never panics.
pub fn decode(text: &str, max_depth: usize) -> Result<ScopedEnvelope, DecodeError> {
    let frame = parse_frame(text, max_depth)?;
    let Some(kind) = frame.kind()?.map(str::to_ascii_lowercase) else {
        return Err(frame.fail(ErrorCode::InvalidField, "missing field `type`".into()));
    };
    let decoded = if kind == "message" {
        let fields = TextFields::deserialize(&frame.value)
            .map_err(|e| frame.fail(ErrorCode::InvalidField, format!("message: {e}")))?;
        ScopedFrame::Send(fields.into_send(MessageType::Text, TextName::Content))
    } else {
        control_frame(&frame, &kind).unwrap_or_else(|| Err(unknown(&frame, &kind, EXPECTED)))?
    };
    Ok(ScopedEnvelope {
        req_id: frame.req_id,
        frame: decoded,
    })
}

/// `{"type": "message", …}`: a message of the session, as the app reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageFrame<'a> {
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The message id.
    pub message_id: &'a str,
    /// Its position in the room (for `?since_seq=` on reconnect).
    pub seq: i64,
    /// The text.
    pub content: &'a str,
    /// Who sent it.
    pub sender_id: &'a str,
    /// Their display name (their handle when they have none).
    pub sender_name: &'a str,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl<'a> From<&'a Message> for MessageFrame<'a> {
    fn from(message: &'a Message) -> Self {
        MessageFrame {
            kind: "message",
            message_id: &message.id,
            seq: message.seq,
            content: &message.content,
            sender_id: &message.sender.id,
            sender_name: message
                .sender
                .name
                .as_deref()
                .unwrap_or(&message.sender.username),
            created_at: message.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_typing_decode_and_anything_else_is_refused_with_its_code() {
        let frame = |text| decode(text, 32).map(|e| e.frame);
        match frame(r#"{"type": "message", "content": "on belay"}"#) {
            Ok(ScopedFrame::Send(send)) => {
                assert_eq!(send.content.as_deref(), Some("on belay"));
                assert_eq!(send.message_type, Some(MessageType::Text));
            }
            other => panic!("not a send: {other:?}"),
        }
        assert_eq!(
            frame(r#"{"type": "typing", "is_typing": true}"#),
            Ok(ScopedFrame::Typing { is_typing: true })
        );
        let code = |text| decode(text, 32).unwrap_err().code;
        assert_eq!(code(r#"{"content": "no type"}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type": "LOCATION"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type": "message", "content": 1}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type": "typing", "is_typing": "yes"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code("{"), ErrorCode::InvalidJson);
    }
}
