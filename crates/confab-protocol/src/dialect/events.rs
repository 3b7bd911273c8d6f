//! Typed views of the unified frames that the room-scoped dialects render.
//!
//! A fan-out is serialized once, as the unified protocol's JSON, for every
//! recipient; a connection of another dialect reads back only the frames
//! its protocol shows ([`frame_type`] tells which without parsing the
//! rest) and renders them in its own shape.

use crate::error::ErrorCode;
use crate::ids::ReqId;
use crate::model::Message;
use serde::Deserialize;

/// The `type` of a serialized server frame, read from its first field
/// (every [`crate::ServerFrame`] is written with `type` first); `None` for
/// text that does not start that way.
pub fn frame_type(json: &str) -> Option<&str> {
    let rest = json.strip_prefix(r#"{"type":""#)?;
    rest.split_once('"').map(|(kind, _)| kind)
}

/// `new_message`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewMessageEvent {
    /// The room.
    pub room_id: String,
    /// The stored message.
    pub message: Message,
}

/// `typing`.
#[derive(Debug, Clone, Deserialize)]
pub struct TypingEvent {
    /// The room.
    pub room_id: String,
    /// Who.
    pub user_id: String,
    /// Their handle.
    pub username: String,
    /// Their display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Started or stopped.
    pub is_typing: bool,
}

/// Any frame about one room (`assistant_delta`, …), read for its room alone.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomEvent {
    /// The room.
    pub room_id: String,
}

/// `room_updated`.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomUpdatedEvent {
    /// The room.
    pub room_id: String,
    /// What changed (`closed: true` when it was closed).
    #[serde(default)]
    pub updates: serde_json::Value,
}

impl RoomUpdatedEvent {
    /// Whether the update closed the room.
    pub fn closed(&self) -> bool {
        self.updates.get("closed") == Some(&serde_json::Value::Bool(true))
    }
}

/// `error`: the answer to one of the connection's own frames.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorEvent {
    /// The contract code.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: String,
    /// The refused frame's `req_id`.
    #[serde(default)]
    pub req_id: Option<ReqId>,
    /// For `rate_limited`: milliseconds to wait.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

/// `room_removed`: the user left the room or was removed from it.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomRemovedEvent {
    /// The room.
    pub room_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReqId, ServerFrame, Timestamp};

    #[test]
    fn the_type_is_read_from_the_first_field_of_every_frame() {
        let frames = [
            ServerFrame::Pong {
                timestamp: Timestamp::now(),
                req_id: Some(ReqId::from(1)),
            },
            ServerFrame::RoomRemoved {
                room_id: "r".into(),
                timestamp: Timestamp::now(),
            },
        ];
        for frame in frames {
            assert_eq!(frame_type(&frame.to_json()), Some(frame.kind()));
        }
        assert_eq!(frame_type(r#"{"code":1}"#), None);
        assert_eq!(frame_type(r#"{"type":"unterminated"#), None);
    }
}
