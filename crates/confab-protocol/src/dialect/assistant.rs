//! The AI help-desk dialect of `/ws/assistant/` (protocol.md §3.4).
//!
//! A visitor, signed in or anonymous, talks to the assistant in a
//! *session* (a room of type `assistant` whose id is the session id). The
//! client sends `session_init`, `message`, `typing` and `session_close`;
//! it reads `session_started`, every message of its session as
//! `{"type": "message", "message": {…, "sender_type"}}`, the bot's typing,
//! `assistant_delta` (as on `/ws`), `session_closed`, and errors whose
//! `retry_after` is in seconds.

use super::{ScopedFrame, TextFields, TextName, control_frame, unknown};
use crate::client::{DecodeError, parse_frame};
use crate::error::ErrorCode;
use crate::ids::{ReqId, de_opt_id};
use crate::model::{Message, MessageType};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The `type`s this dialect knows, for the `unknown_type` message.
const EXPECTED: &str = "session_init, message, typing, stop_typing, session_close or ping";

/// What a client of `/ws/assistant/` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AssistantFrame {
    /// Resume a session (the one named, if it is the caller's and open;
    /// else the caller's newest open one) or start one.
    Init {
        /// The session to resume.
        session_id: Option<String>,
        /// A visitor token from an earlier `session_started`: the
        /// connection becomes that visitor and resumes its session.
        visitor_token: Option<String>,
    },
    /// End the session, with an optional rating.
    Close {
        /// 1–5 (checked by the server).
        rating: Option<i64>,
        /// Free text beside the rating.
        feedback: Option<String>,
    },
    /// A frame every room-scoped dialect shares: `message` (a send in the
    /// session), `typing`, `stop_typing`, `mark_read`, `ping`.
    Room(ScopedFrame),
}

/// A decoded frame with the `req_id` it carried, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantEnvelope {
    /// Echoed on an `error` answering the frame.
    pub req_id: Option<ReqId>,
    /// The frame itself.
    pub frame: AssistantFrame,
}

/// The fields of `session_init`.
#[derive(Debug, Default, Deserialize)]
struct InitFields {
    #[serde(default, deserialize_with = "de_opt_id")]
    session_id: Option<String>,
    #[serde(default)]
    visitor_token: Option<String>,
}

/// The fields of `session_close`.
#[derive(Debug, Default, Deserialize)]
struct CloseFields {
    #[serde(default)]
    rating: Option<i64>,
    #[serde(default)]
    feedback: Option<String>,
}

/// Decodes one client frame of the dialect. Never panics.
pub fn decode(text: &str, max_depth: usize) -> Result<AssistantEnvelope, DecodeError> {
    let frame = parse_frame(text, max_depth)?;
    let Some(kind) = frame.kind()?.map(str::to_ascii_lowercase) else {
        return Err(frame.fail(ErrorCode::InvalidField, "missing field `type`".into()));
    };
    let invalid =
        |e: serde_json::Error| frame.fail(ErrorCode::InvalidField, format!("{kind}: {e}"));
    let decoded = match kind.as_str() {
        "session_init" => {
            let fields = InitFields::deserialize(&frame.value).map_err(invalid)?;
            AssistantFrame::Init {
                session_id: fields.session_id.filter(|id| !id.is_empty()),
                visitor_token: fields.visitor_token.filter(|token| !token.is_empty()),
            }
        }
        "session_close" => {
            let fields = CloseFields::deserialize(&frame.value).map_err(invalid)?;
            AssistantFrame::Close {
                rating: fields.rating,
                feedback: fields.feedback,
            }
        }
        "message" => {
            let fields = TextFields::deserialize(&frame.value).map_err(invalid)?;
            AssistantFrame::Room(ScopedFrame::Send(
                fields.into_send(MessageType::Text, TextName::Content),
            ))
        }
        _ => AssistantFrame::Room(
            control_frame(&frame, &kind)
                .unwrap_or_else(|| Err(unknown(&frame, &kind, EXPECTED)))?,
        ),
    };
    Ok(AssistantEnvelope {
        req_id: frame.req_id,
        frame: decoded,
    })
}

/// Who wrote a message, as the help-desk front-end tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderType {
    /// The visitor (or any other person in the session).
    User,
    /// The assistant bot.
    Assistant,
    /// The server or the app's back-end.
    System,
}

/// `{"type": "session_started", "session_id", "room_id", "visitor_token"?}`:
/// the session this connection is in (on connect, and after each
/// `session_init`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStarted<'a> {
    /// Always `session_started`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The session.
    pub session_id: &'a str,
    /// The room that holds it (the same id).
    pub room_id: &'a str,
    /// For anonymous visitors: present it on a later connection to come back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_token: Option<&'a str>,
    /// Whether the session was resumed (its history follows) or is new.
    pub resumed: bool,
    /// When the server sent it.
    pub timestamp: Timestamp,
}

/// One message of a session, as the help-desk front-end reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionMessage<'a> {
    /// The message id.
    pub id: &'a str,
    /// The session (room) it belongs to.
    pub session_id: &'a str,
    /// Who wrote it.
    pub sender_type: SenderType,
    /// Their user id (tells a human agent from the visitor, and the
    /// visitor's own messages from others').
    pub sender_id: &'a str,
    /// The text.
    pub content: &'a str,
    /// The message it answers: the question, for the assistant's replies.
    pub reply_to: Option<&'a str>,
    /// The message's metadata (`processing_time_ms`, `fallback`, …).
    pub metadata: &'a serde_json::Value,
    /// When it was stored.
    pub timestamp: Timestamp,
}

impl<'a> SessionMessage<'a> {
    /// A stored message whose sender is of `sender_type`.
    pub fn new(message: &'a Message, sender_type: SenderType) -> Self {
        SessionMessage {
            id: &message.id,
            session_id: &message.room_id,
            sender_type,
            sender_id: &message.sender.id,
            content: &message.content,
            reply_to: message.reply_to.as_deref(),
            metadata: &message.metadata,
            timestamp: message.timestamp,
        }
    }
}

/// `{"type": "message", "message": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageFrame<'a> {
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The message.
    pub message: SessionMessage<'a>,
}

impl<'a> From<SessionMessage<'a>> for MessageFrame<'a> {
    fn from(message: SessionMessage<'a>) -> Self {
        MessageFrame {
            kind: "message",
            message,
        }
    }
}

/// `{"type": "typing", "sender_type", "is_typing"}`: the assistant (or
/// another person in the session) started or stopped typing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypingFrame {
    /// Always `typing`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Who is typing.
    pub sender_type: SenderType,
    /// Started (`true`) or stopped (`false`).
    pub is_typing: bool,
    /// When the server sent it.
    pub timestamp: Timestamp,
}

/// `{"type": "session_closed", "session_id"}`: the session ended (closed
/// by the visitor, `/clear`, the app, or after `assistant.session_ttl`
/// without activity). New messages are refused until `session_init`
/// starts another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionClosed<'a> {
    /// Always `session_closed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The session that ended.
    pub session_id: &'a str,
    /// When the server sent it.
    pub timestamp: Timestamp,
}

/// `{"type": "error", "code", "message", "retry_after"?}`: a refusal, with
/// the wait in whole seconds when rate limited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorFrame<'a> {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The contract's error code.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: &'a str,
    /// Seconds to wait before sending again (`rate_limited` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The `req_id` of the frame refused, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_id: Option<&'a ReqId>,
    /// When the server sent it.
    pub timestamp: Timestamp,
}

/// Milliseconds to wait as the whole seconds the front-end reads (rounded
/// up, so that a client that waits that long is let through).
pub fn retry_after_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(text: &str) -> AssistantFrame {
        decode(text, 32).expect("decodes").frame
    }

    fn refused(text: &str) -> ErrorCode {
        decode(text, 32).expect_err("refused").code
    }

    #[test]
    fn session_frames_decode() {
        assert_eq!(
            frame(r#"{"type":"session_init"}"#),
            AssistantFrame::Init {
                session_id: None,
                visitor_token: None
            }
        );
        assert_eq!(
            frame(r#"{"type":"session_init","session_id":45,"visitor_token":"t"}"#),
            AssistantFrame::Init {
                session_id: Some("45".into()),
                visitor_token: Some("t".into())
            }
        );
        assert_eq!(
            frame(r#"{"type":"SESSION_CLOSE","rating":4,"feedback":"ok"}"#),
            AssistantFrame::Close {
                rating: Some(4),
                feedback: Some("ok".into())
            }
        );
        assert_eq!(
            frame(r#"{"type":"session_close"}"#),
            AssistantFrame::Close {
                rating: None,
                feedback: None
            }
        );
    }

    #[test]
    fn messages_take_content_or_message() {
        for text in [
            r#"{"type":"message","content":"hi"}"#,
            r#"{"type":"message","message":"hi"}"#,
        ] {
            let AssistantFrame::Room(ScopedFrame::Send(send)) = frame(text) else {
                panic!("{text} is not a send");
            };
            assert_eq!(send.content.as_deref(), Some("hi"));
        }
        assert_eq!(
            frame(r#"{"type":"typing","is_typing":false}"#),
            AssistantFrame::Room(ScopedFrame::Typing { is_typing: false })
        );
    }

    #[test]
    fn bad_frames_are_refused_with_their_code() {
        assert_eq!(refused("{"), ErrorCode::InvalidJson);
        assert_eq!(
            refused(r#"{"type":"subscribe_room"}"#),
            ErrorCode::UnknownType
        );
        assert_eq!(
            refused(r#"{"type":"session_close","rating":"5"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            refused(r#"{"type":"session_close","rating":2.5}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            refused(r#"{"type":"session_init","session_id":{"a":1}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(refused(r#"{"content":"no type"}"#), ErrorCode::InvalidField);
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let at = Timestamp(0);
        let started = SessionStarted {
            kind: "session_started",
            session_id: "s1",
            room_id: "s1",
            visitor_token: None,
            resumed: false,
            timestamp: at,
        };
        let value = serde_json::to_value(&started).expect("serializes");
        assert_eq!(value["session_id"], "s1");
        assert!(value.get("visitor_token").is_none());
        let error = ErrorFrame {
            kind: "error",
            code: ErrorCode::RateLimited,
            message: "slow down",
            retry_after: Some(retry_after_secs(1200)),
            req_id: None,
            timestamp: at,
        };
        let value = serde_json::to_value(&error).expect("serializes");
        assert_eq!(value["retry_after"], json!(2));
        assert_eq!(value["code"], "rate_limited");
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(3000), 3);
    }
}
