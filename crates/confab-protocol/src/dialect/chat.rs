//! The job-conversations dialect of `/ws/chat/{room_id}/` (protocol.md §3).
//!
//! The client sends `{"message": "…", "type": "TEXT"}` (or `SYSTEM`,
//! `LOCATION`, `IMAGE`, `FILE`, in any case; no `type` is `TEXT`), and
//! `{"type": "typing", "is_typing"}`; it reads every message of the room,
//! its own included, as `{"type": "message", "message": {…}}` with the
//! app's field names.

use super::{ScopedEnvelope, ScopedFrame, TextFields, TextName, control_frame, unknown};
use crate::client::{DecodeError, SendMessage, parse_frame};
use crate::error::ErrorCode;
use crate::ids::de_opt_id;
use crate::model::{Attachment, Location, Message, MessageType};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The `type`s this dialect knows, for the `unknown_type` message.
const EXPECTED: &str =
    "TEXT, SYSTEM, LOCATION, IMAGE, FILE, typing, stop_typing, mark_read or ping";

/// The fields of a message frame, as the app's front-end sends them.
#[derive(Debug, Default, Deserialize)]
struct SendFields {
    /// The text and what every send may carry.
    #[serde(flatten)]
    text: TextFields,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default, alias = "lat")]
    latitude: Option<f64>,
    #[serde(default, alias = "lng")]
    longitude: Option<f64>,
    #[serde(
        default,
        deserialize_with = "de_opt_id",
        alias = "file_id",
        alias = "upload_id"
    )]
    attachment_id: Option<String>,
}

/// Decodes one client frame of the dialect. Never panics.
pub fn decode(text: &str, max_depth: usize) -> Result<ScopedEnvelope, DecodeError> {
    let frame = parse_frame(text, max_depth)?;
    let kind = frame.kind()?.map(str::to_ascii_lowercase);
    let message_type = match kind.as_deref() {
        None => MessageType::Text,
        Some(kind) => match MessageType::parse(kind) {
            Some(message_type) => message_type,
            None => {
                let decoded = control_frame(&frame, kind)
                    .unwrap_or_else(|| Err(unknown(&frame, kind, EXPECTED)))?;
                return Ok(ScopedEnvelope {
                    req_id: frame.req_id,
                    frame: decoded,
                });
            }
        },
    };
    let fields = SendFields::deserialize(&frame.value)
        .map_err(|e| frame.fail(ErrorCode::InvalidField, format!("message: {e}")))?;
    let location = match (fields.location, fields.latitude, fields.longitude) {
        (Some(location), _, _) => Some(location),
        (None, Some(lat), Some(lng)) => Some(Location { lat, lng }),
        (None, None, None) => None,
        _ => {
            return Err(frame.fail(
                ErrorCode::InvalidField,
                "a location needs both latitude and longitude".into(),
            ));
        }
    };
    let send = SendMessage {
        attachment_id: fields.attachment_id,
        location,
        ..fields.text.into_send(message_type, TextName::Message)
    };
    Ok(ScopedEnvelope {
        req_id: frame.req_id,
        frame: ScopedFrame::Send(send),
    })
}

/// `{"type": "message", "message": {…}}`: a message of the room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageFrame<'a> {
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The message, in the app's shape.
    pub message: ChatMessage<'a>,
}

/// A message as the job-conversations front-end reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage<'a> {
    /// The message id.
    pub id: &'a str,
    /// The room (the app's conversation).
    pub conversation_id: &'a str,
    /// Its position in the room (for `?since_seq=` on reconnect).
    pub seq: i64,
    /// Who sent it.
    pub sender_id: &'a str,
    /// Their display name (their handle when they have none).
    pub sender_name: &'a str,
    /// The text.
    pub message_text: &'a str,
    /// `TEXT`, `SYSTEM`, `LOCATION`, `IMAGE` or `FILE`.
    pub message_type: &'static str,
    /// When it was stored.
    pub timestamp: Timestamp,
    /// Whether a member other than its sender has read it.
    pub is_read: bool,
    /// The upload of an `IMAGE`/`FILE` message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<&'a Attachment>,
    /// The point of a `LOCATION` message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The message it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
    /// What the sender attached.
    pub metadata: &'a serde_json::Value,
}

impl<'a> From<&'a Message> for MessageFrame<'a> {
    fn from(message: &'a Message) -> Self {
        MessageFrame {
            kind: "message",
            message: ChatMessage {
                id: &message.id,
                conversation_id: &message.room_id,
                seq: message.seq,
                sender_id: &message.sender.id,
                sender_name: message
                    .sender
                    .name
                    .as_deref()
                    .unwrap_or(&message.sender.username),
                message_text: &message.content,
                message_type: message.message_type.upper(),
                timestamp: message.timestamp,
                is_read: message.is_read,
                attachment: message.attachment.as_ref(),
                location: message.location,
                reply_to: message.reply_to.as_deref(),
                metadata: &message.metadata,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(text: &str) -> SendMessage {
        match decode(text, 32).unwrap().frame {
            ScopedFrame::Send(send) => send,
            other => panic!("not a send: {other:?}"),
        }
    }

    #[test]
    fn the_apps_message_frames_decode_in_any_case_and_without_a_type() {
        let text = send(r#"{"message": "hi", "type": "TEXT"}"#);
        assert_eq!(text.content.as_deref(), Some("hi"));
        assert_eq!(text.message_type, Some(MessageType::Text));
        assert_eq!(
            send(r#"{"message": "hi"}"#).message_type,
            Some(MessageType::Text)
        );
        assert_eq!(
            send(r#"{"message": "done", "type": "system"}"#).message_type,
            Some(MessageType::System)
        );
        let located = send(r#"{"type": "LOCATION", "latitude": 52.5, "longitude": 13.4}"#);
        assert_eq!(
            located.location,
            Some(Location {
                lat: 52.5,
                lng: 13.4
            })
        );
        let located = send(r#"{"type": "location", "location": {"lat": 1, "lng": 2}}"#);
        assert_eq!(located.location, Some(Location { lat: 1.0, lng: 2.0 }));
        let image = send(r#"{"type": "IMAGE", "file_id": 42, "client_msg_id": "c1"}"#);
        assert_eq!(image.attachment_id.as_deref(), Some("42"));
        assert_eq!(image.client_msg_id.as_deref(), Some("c1"));
    }

    #[test]
    fn typing_and_reads_decode_and_anything_else_is_refused_with_its_code() {
        let frame = |text| decode(text, 32).map(|e| e.frame);
        assert_eq!(
            frame(r#"{"type": "typing", "is_typing": false}"#),
            Ok(ScopedFrame::Typing { is_typing: false })
        );
        assert_eq!(
            frame(r#"{"type": "TYPING"}"#),
            Ok(ScopedFrame::Typing { is_typing: true })
        );
        assert_eq!(
            frame(r#"{"type": "mark_read", "up_to_seq": 3}"#),
            Ok(ScopedFrame::MarkRead { up_to_seq: Some(3) })
        );
        let code = |text| decode(text, 32).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type": "VIDEO"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type": 5}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"message": 5}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type": "LOCATION", "latitude": 1}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"message": "a\u0000"}"#), ErrorCode::InvalidField);
        let deep = format!(r#"{{"metadata": {}1{}}}"#, "[".repeat(40), "]".repeat(40));
        assert_eq!(code(&deep), ErrorCode::InvalidJson);
        let refused = decode(r#"{"type": "VIDEO", "req_id": 7}"#, 32).unwrap_err();
        assert_eq!(refused.req_id, Some(crate::ReqId::from(7)));
    }
}
