//! Objects that frames and REST bodies carry: messages, rooms, members.

use crate::time::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// The kind of a message (protocol.md §2.2). Case-insensitive on input.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// Plain text from a user.
    #[default]
    Text,
    /// A notice from the server or a trusted back-end ("Job accepted").
    System,
    /// A point on the map, in `location`.
    Location,
    /// An uploaded image, in `attachment`.
    Image,
    /// An uploaded file, in `attachment`.
    File,
}

impl MessageType {
    /// The type as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::System => "system",
            MessageType::Location => "location",
            MessageType::Image => "image",
            MessageType::File => "file",
        }
    }

    /// The type in upper case, as front-ends written for Django's
    /// `TextChoices` spell it (`TEXT`).
    pub fn upper(self) -> &'static str {
        match self {
            MessageType::Text => "TEXT",
            MessageType::System => "SYSTEM",
            MessageType::Location => "LOCATION",
            MessageType::Image => "IMAGE",
            MessageType::File => "FILE",
        }
    }

    /// Parses a type name, ignoring ASCII case (`TEXT` is `text`).
    pub fn parse(name: &str) -> Option<Self> {
        [
            MessageType::Text,
            MessageType::System,
            MessageType::Location,
            MessageType::Image,
            MessageType::File,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        MessageType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown message_type {name:?} (expected text, system, location, image or file)"
            ))
        })
    }
}

/// Who sent a message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    /// The user id.
    pub id: String,
    /// The user's handle (the id unless the token named one).
    pub username: String,
    /// The display name, if known.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
    /// The display name again, under the name front-ends written for
    /// Django's user model read (protocol.md §7).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    #[serde(default)]
    pub first_name: Option<String>,
}

/// A point on the map carried by a `location` message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lng: f64,
}

/// An uploaded file referenced by an `image` or `file` message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The upload's id.
    pub id: String,
    /// Where members download it.
    pub url: String,
    /// The MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The original file name.
    pub name: String,
}

/// A stored message, exactly as every frame and REST answer shows it (protocol.md §2.2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Globally unique message id.
    pub id: String,
    /// The room it belongs to.
    pub room_id: String,
    /// Its position in the room: 1, 2, 3 … with no gaps.
    pub seq: i64,
    /// Who sent it.
    pub sender: Sender,
    /// The text (empty once deleted).
    pub content: String,
    /// What kind of message it is.
    pub message_type: MessageType,
    /// The id of the message this one answers, in the same room.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reply_to: Option<String>,
    /// Free-form JSON object the sender attached.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Value,
    /// The upload an `image`/`file` message refers to.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub attachment: Option<Attachment>,
    /// The point a `location` message refers to.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub location: Option<Location>,
    /// Emoji → ids of the users who reacted with it.
    pub reactions: BTreeMap<String, Vec<String>>,
    /// When it was stored.
    pub timestamp: Timestamp,
    /// When it was last edited.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub edited_at: Option<Timestamp>,
    /// Whether it was deleted (its `seq` slot stays).
    pub deleted: bool,
    /// Whether it has been read, as the recipient of the frame sees it: for
    /// someone else's message, whether their own read marker covers it; for
    /// their own, whether any other member's does. In events fanned out to
    /// a whole room (one serialization for every recipient) it is the
    /// sender's view: false in `new_message` (nobody has read a message
    /// just stored).
    #[serde(default)]
    pub is_read: bool,
}

/// A member of a room as listed in `room_list` participants.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// The user id.
    pub id: String,
    /// The display name, if known.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
    /// Whether the user has a live connection.
    pub online: bool,
}

/// A room as the caller sees it: in `room_list`, `room_added`, and REST answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room id (an app's own id, or one the server generated).
    pub id: String,
    /// The display name.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
    /// `direct`, `group`, `assistant`, or any app word such as `job`.
    pub room_type: String,
    /// Free-form JSON object the app attached.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Value,
    /// Closed rooms keep their history and accept no messages.
    pub closed: bool,
    /// The `seq` of the newest message (0 when empty).
    pub last_seq: i64,
    /// The newest message's content, if any.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_message_content: Option<String>,
    /// When the newest message was stored.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_message_time: Option<Timestamp>,
    /// Messages above the caller's read marker not sent by the caller.
    pub unread_count: i64,
    /// The caller's room role (`owner`, `admin`, `member`, `viewer`), if a member.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub role: Option<String>,
    /// When the room was created.
    pub created_at: Timestamp,
    /// The room's members.
    pub participants: Vec<Participant>,
}

/// A member as `GET /rooms/{id}/members` lists it (protocol.md §7).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The user id.
    pub user_id: String,
    /// The display name, if known.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
    /// The room role.
    pub role: String,
    /// The user's global role (`admin`, `member`, `viewer`, or an app's
    /// own name such as `analyst`).
    pub global_role: String,
    /// Whether the user has a live connection.
    pub online: bool,
    /// The member's read marker.
    pub last_read_seq: i64,
}

/// Limits announced in `connection_established` so clients can check before sending.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Characters per message.
    pub max_message_length: usize,
    /// Sustained send rate per user.
    pub messages_per_minute: u32,
    /// Largest accepted WebSocket frame in bytes.
    pub max_frame_bytes: usize,
}

/// A user as `GET /api/v1/me` and `PUT /api/v1/users/{id}` show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user id (the JWT `sub`).
    pub id: String,
    /// The handle.
    pub username: String,
    /// The display name, if known.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
    /// Global role: `admin`, `member` or `viewer`.
    pub role: String,
    /// Disabled users cannot connect.
    pub disabled: bool,
    /// When the user was first seen.
    pub created_at: Timestamp,
}
