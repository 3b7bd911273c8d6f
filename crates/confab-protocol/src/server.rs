//! Frames the server sends (protocol.md §2.4).

use crate::command::CommandResult;
use crate::error::ErrorCode;
use crate::ids::ReqId;
use crate::model::{Limits, Message, RoomSummary};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every frame the server sends, tagged by `type`.
///
/// Frames that answer a request carry its `req_id` (omitted when the request had
/// none); frames pushed to a room or a user never do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The connection is authenticated and ready.
    ConnectionEstablished {
        /// Who the connection is.
        user_id: String,
        /// The user's handle.
        username: String,
        /// This connection's id (for logs and support).
        connection_id: String,
        /// Always [`crate::PROTOCOL_VERSION`].
        protocol: u32,
        /// How often the server pings.
        heartbeat_ms: u64,
        /// Limits to respect when sending.
        limits: Limits,
        /// Server time.
        timestamp: Timestamp,
    },
    /// The connection now receives the room's events.
    Subscribed {
        /// The room.
        room_id: String,
        /// The room's newest `seq` (replayed messages, if any, follow).
        last_seq: i64,
        /// The caller's unread messages in the room.
        unread_count: i64,
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// The connection no longer receives the room's events.
    Unsubscribed {
        /// The room.
        room_id: String,
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// A message was stored in a room (live, or replayed after `since_seq`).
    NewMessage {
        /// The room.
        room_id: String,
        /// The stored message.
        message: Message,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A message's content was edited.
    MessageUpdated {
        /// The room.
        room_id: String,
        /// The message as it is now.
        message: Message,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A message was deleted (content emptied, seq kept).
    MessageDeleted {
        /// The room.
        room_id: String,
        /// The message as it is now (`deleted: true`).
        message: Message,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A message's reactions changed.
    ReactionUpdated {
        /// The room.
        room_id: String,
        /// The message.
        message_id: String,
        /// The whole reaction map after the change.
        reactions: BTreeMap<String, Vec<String>>,
        /// Server time.
        timestamp: Timestamp,
    },
    /// The sender's message is stored (sent before any `new_message` for it).
    MessageAck {
        /// The room.
        room_id: String,
        /// The sender's own id for the send, if it gave one.
        client_msg_id: Option<String>,
        /// The stored message's id.
        message_id: String,
        /// The stored message's `seq`.
        seq: i64,
        /// When it was stored.
        timestamp: Timestamp,
        /// True when this `client_msg_id` was already stored: nothing new was.
        duplicate: bool,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// A member moved their read marker.
    MessageRead {
        /// The room.
        room_id: String,
        /// Who read.
        user_id: String,
        /// Everything up to this `seq` is read by them.
        up_to_seq: i64,
        /// The ids the reader named, when they named ids.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_ids: Option<Vec<String>>,
        /// Server time.
        timestamp: Timestamp,
    },
    /// Someone in the room started or stopped typing.
    Typing {
        /// The room.
        room_id: String,
        /// Who.
        user_id: String,
        /// Their handle.
        username: String,
        /// Their display name, if known.
        name: Option<String>,
        /// Started (`true`) or stopped (`false`).
        is_typing: bool,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A piece of the assistant bot's reply while it is being written
    /// (protocol.md §6); the whole reply follows as a `new_message` whose id is
    /// `reply_id`.
    AssistantDelta {
        /// The assistant room.
        room_id: String,
        /// The id the stored reply will have.
        reply_id: String,
        /// The next piece of text.
        delta: String,
        /// Server time.
        timestamp: Timestamp,
    },
    /// The caller's rooms, newest activity first.
    RoomList {
        /// One page of rooms.
        rooms: Vec<RoomSummary>,
        /// Pass as `cursor` for the next page; absent on the last page.
        next_cursor: Option<String>,
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// Something about a room changed for this user (name, unread count, …).
    RoomUpdated {
        /// The room.
        room_id: String,
        /// Only the fields that changed.
        updates: serde_json::Value,
        /// Server time.
        timestamp: Timestamp,
    },
    /// The user was added to a room (by a back-end, an admin, or at creation).
    RoomAdded {
        /// The room.
        room_id: String,
        /// The room as the user sees it.
        room: RoomSummary,
        /// Server time.
        timestamp: Timestamp,
    },
    /// The user left or was removed from a room; its live events stop.
    RoomRemoved {
        /// The room.
        room_id: String,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A member of one of your rooms came online (their first connection).
    UserOnline {
        /// Who.
        user_id: String,
        /// When.
        last_seen: Timestamp,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A member of one of your rooms went offline (their last connection closed).
    UserOffline {
        /// Who.
        user_id: String,
        /// When they were last connected.
        last_seen: Timestamp,
        /// Server time.
        timestamp: Timestamp,
    },
    /// Who in a room is online.
    Presence {
        /// The room.
        room_id: String,
        /// Ids of the members with a live connection.
        online: Vec<String>,
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// A page of stored messages.
    History {
        /// The room.
        room_id: String,
        /// Ascending `seq`.
        messages: Vec<Message>,
        /// More messages exist beyond this page in the direction asked.
        has_more: bool,
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// Answer to `ping`.
    Pong {
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// A request with no other answer succeeded.
    Ack {
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// The answer to a slash command, to its caller only (protocol.md
    /// §6.1); a command that changes the room also sends the usual events.
    CommandResult {
        /// The room the command ran in.
        room_id: String,
        /// What the command answered.
        #[serde(flatten)]
        result: CommandResult,
        /// Server time.
        timestamp: Timestamp,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
    },
    /// Something the app's back-end tells this user, sent to every open
    /// `/ws` connection of the user on every node and stored nowhere
    /// (protocol.md §8.4): `POST /api/v1/users/{id}/notify`. The app names
    /// the `event` and shapes `data`; confab only carries them.
    Notification {
        /// The app's name for what happened (`order.shipped`).
        event: String,
        /// Whatever the app sent with it (any JSON, `null` when it sent none).
        data: serde_json::Value,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A request failed; the connection stays open.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
        /// Server time.
        timestamp: Timestamp,
        /// The room the request named, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_id: Option<String>,
        /// Echo of the request's `req_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req_id: Option<ReqId>,
        /// For `rate_limited`: when to try again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    /// Encodes the frame as the JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string and no
        // field has a fallible `Serialize`. Fall back to an `internal` error
        // frame rather than panicking if that ever changes.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","code":"internal","message":"encode failed: {}"}}"#,
                e.to_string().replace('"', "'")
            )
        })
    }

    /// The `type` tag of this frame, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::ConnectionEstablished { .. } => "connection_established",
            ServerFrame::Subscribed { .. } => "subscribed",
            ServerFrame::Unsubscribed { .. } => "unsubscribed",
            ServerFrame::NewMessage { .. } => "new_message",
            ServerFrame::MessageAck { .. } => "message_ack",
            ServerFrame::MessageUpdated { .. } => "message_updated",
            ServerFrame::MessageDeleted { .. } => "message_deleted",
            ServerFrame::ReactionUpdated { .. } => "reaction_updated",
            ServerFrame::MessageRead { .. } => "message_read",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::AssistantDelta { .. } => "assistant_delta",
            ServerFrame::RoomList { .. } => "room_list",
            ServerFrame::RoomUpdated { .. } => "room_updated",
            ServerFrame::RoomAdded { .. } => "room_added",
            ServerFrame::RoomRemoved { .. } => "room_removed",
            ServerFrame::UserOnline { .. } => "user_online",
            ServerFrame::UserOffline { .. } => "user_offline",
            ServerFrame::Presence { .. } => "presence",
            ServerFrame::History { .. } => "history",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::CommandResult { .. } => "command_result",
            ServerFrame::Notification { .. } => "notification",
            ServerFrame::Error { .. } => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_omits_absent_optionals_and_round_trips() {
        let frame = ServerFrame::Error {
            code: ErrorCode::NotFound,
            message: "no such room".into(),
            timestamp: Timestamp(1_764_000_000_123),
            room_id: None,
            req_id: Some(ReqId::from(3)),
            retry_after_ms: None,
        };
        let json = frame.to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"not_found","message":"no such room","timestamp":"2025-11-24T16:00:00.123Z","req_id":3}"#
        );
        let back: ServerFrame = serde_json::from_str(&json).unwrap();
        assert_eq!(back, frame);
        assert_eq!(back.kind(), "error");
    }

    #[test]
    fn notifications_carry_any_json_and_round_trip() {
        let frame = ServerFrame::Notification {
            event: "order.shipped".into(),
            data: serde_json::json!({"items": [1, 2], "order": 7}),
            timestamp: Timestamp(1_764_000_000_123),
        };
        let json = frame.to_json();
        assert_eq!(
            json,
            r#"{"type":"notification","event":"order.shipped","data":{"items":[1,2],"order":7},"timestamp":"2025-11-24T16:00:00.123Z"}"#
        );
        let back: ServerFrame = serde_json::from_str(&json).unwrap();
        assert_eq!(back, frame);
        assert_eq!(back.kind(), "notification");
    }
}
