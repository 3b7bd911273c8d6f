//! Frames a client sends (protocol.md §2.3) and the one way to decode them.

use crate::error::ErrorCode;
use crate::ids::{ReqId, de_id, de_id_list, de_opt_id};
use crate::model::{Location, MessageType};
use serde::{Deserialize, Serialize};

/// Every frame a client may send on the unified endpoint, tagged by `type`.
///
/// Ids accept strings or numbers; unknown extra fields are ignored so that
/// newer clients keep working against this server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authenticate a connection that gave no token at the handshake.
    Auth {
        /// The JWT.
        token: String,
    },
    /// Replace the connection's token with a later one before it expires.
    RefreshToken {
        /// The new JWT (same user).
        token: String,
    },
    /// Start receiving a room's live events, optionally replaying missed messages.
    SubscribeRoom {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// Replay every stored message with a greater `seq` first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_seq: Option<i64>,
    },
    /// Stop receiving a room's live events.
    UnsubscribeRoom {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
    },
    /// Store a message in a room and fan it out.
    SendMessage(SendMessage),
    /// Replace a message's content (its sender or a room admin).
    EditMessage {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// The message.
        #[serde(deserialize_with = "de_id")]
        message_id: String,
        /// The new text.
        content: String,
    },
    /// Delete a message (its sender or a room admin); its seq stays.
    DeleteMessage {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// The message.
        #[serde(deserialize_with = "de_id")]
        message_id: String,
    },
    /// React to a message with an emoji (idempotent).
    AddReaction {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// The message.
        #[serde(deserialize_with = "de_id")]
        message_id: String,
        /// The emoji.
        emoji: String,
    },
    /// Take back a reaction (idempotent).
    RemoveReaction {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// The message.
        #[serde(deserialize_with = "de_id")]
        message_id: String,
        /// The emoji.
        emoji: String,
    },
    /// Move the caller's read marker forward.
    MarkRead {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// Everything up to and including this `seq` is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        up_to_seq: Option<i64>,
        /// These messages are read (the marker moves to the highest of them).
        #[serde(
            default,
            deserialize_with = "de_id_list",
            skip_serializing_if = "Option::is_none"
        )]
        message_ids: Option<Vec<String>>,
    },
    /// The caller is typing (or, with `is_typing: false`, stopped).
    Typing {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// `false` means the same as `stop_typing`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_typing: Option<bool>,
    },
    /// The caller stopped typing.
    StopTyping {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
    },
    /// List the caller's rooms, newest activity first.
    GetRoomList {
        /// Page size (default 50, max 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// `next_cursor` of the previous page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    /// Read a page of a room's stored messages.
    GetHistory {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
        /// Only messages with a smaller `seq` (the newest `limit` of them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before_seq: Option<i64>,
        /// Only messages with a greater `seq` (the oldest `limit` of them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_seq: Option<i64>,
        /// Page size (default 50, max 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Who in the room is online.
    GetPresence {
        /// The room.
        #[serde(deserialize_with = "de_id")]
        room_id: String,
    },
    /// Liveness check at the application level.
    Ping {},
}

impl ClientFrame {
    /// The room the frame names, if any (echoed on `error` replies).
    pub fn room_id(&self) -> Option<&str> {
        match self {
            ClientFrame::SubscribeRoom { room_id, .. }
            | ClientFrame::UnsubscribeRoom { room_id }
            | ClientFrame::EditMessage { room_id, .. }
            | ClientFrame::DeleteMessage { room_id, .. }
            | ClientFrame::AddReaction { room_id, .. }
            | ClientFrame::RemoveReaction { room_id, .. }
            | ClientFrame::MarkRead { room_id, .. }
            | ClientFrame::Typing { room_id, .. }
            | ClientFrame::StopTyping { room_id }
            | ClientFrame::GetHistory { room_id, .. }
            | ClientFrame::GetPresence { room_id } => Some(room_id),
            ClientFrame::SendMessage(send) => Some(&send.room_id),
            ClientFrame::Auth { .. }
            | ClientFrame::RefreshToken { .. }
            | ClientFrame::GetRoomList { .. }
            | ClientFrame::Ping {} => None,
        }
    }
}

/// The fields of `send_message`, shared with `POST /rooms/{id}/messages`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SendMessage {
    /// The room (taken from the path on REST).
    #[serde(default, deserialize_with = "de_id")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub room_id: String,
    /// The text. Required (and not blank) for `text` and `system` messages;
    /// `location`, `image` and `file` messages may leave it out or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Defaults to `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    /// A message of the same room this one answers.
    #[serde(
        default,
        deserialize_with = "de_opt_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub reply_to: Option<String>,
    /// The client's own id for this send, making retries idempotent (protocol.md §5.4).
    #[serde(
        default,
        deserialize_with = "de_opt_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_msg_id: Option<String>,
    /// Free-form JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// An upload for `image`/`file` messages.
    #[serde(
        default,
        deserialize_with = "de_opt_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub attachment_id: Option<String>,
    /// The point for `location` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// A decoded client frame with the `req_id` it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Echoed on every direct reply.
    pub req_id: Option<ReqId>,
    /// The frame itself.
    pub frame: ClientFrame,
}

/// Why a text could not be decoded into a [`ClientFrame`].
///
/// Carries what the `error` reply needs: the code, a human message, and the
/// `req_id` / `room_id` when they could still be read from the text.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// `invalid_json`, `unknown_type` or `invalid_field`.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: String,
    /// The frame's `req_id`, if it had a readable one.
    pub req_id: Option<ReqId>,
    /// The frame's `room_id`, if it had a readable one.
    pub room_id: Option<String>,
}

/// Every `type` a client may send, for telling `unknown_type` from `invalid_field`.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "auth",
    "refresh_token",
    "subscribe_room",
    "unsubscribe_room",
    "send_message",
    "edit_message",
    "delete_message",
    "add_reaction",
    "remove_reaction",
    "mark_read",
    "typing",
    "stop_typing",
    "get_room_list",
    "get_history",
    "get_presence",
    "ping",
];

/// Whether any string (or object key) in `value` holds U+0000. Such text is
/// refused everywhere: PostgreSQL cannot store it in `text` or `jsonb`, and a
/// chat has no use for it.
pub fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        _ => false,
    }
}

/// A client frame parsed as far as every dialect needs it: a JSON object
/// with no U+0000 anywhere, and what an `error` reply echoes from it.
#[derive(Debug)]
pub struct RawFrame {
    /// The parsed frame (always an object).
    pub value: serde_json::Value,
    /// The frame's `req_id`, if it had a readable one.
    pub req_id: Option<ReqId>,
    /// The frame's `room_id`, if it had a readable one.
    pub room_id: Option<String>,
}

impl RawFrame {
    /// A [`DecodeError`] carrying this frame's `req_id` and `room_id`.
    pub fn fail(&self, code: ErrorCode, message: String) -> DecodeError {
        DecodeError {
            code,
            message,
            req_id: self.req_id.clone(),
            room_id: self.room_id.clone(),
        }
    }

    /// One field of the frame.
    pub fn field(&self, name: &str) -> Option<&serde_json::Value> {
        self.value.get(name)
    }

    /// The frame's `type` when it is a string; `Ok(None)` when absent.
    pub fn kind(&self) -> Result<Option<&str>, DecodeError> {
        match self.field("type") {
            Some(serde_json::Value::String(kind)) => Ok(Some(kind.as_str())),
            Some(_) => Err(self.fail(ErrorCode::InvalidField, "`type` must be a string".into())),
            None => Ok(None),
        }
    }
}

/// Parses one text frame of any dialect: refuses (`invalid_json`) text
/// that is not JSON, not an object, or nested deeper than `max_depth`
/// levels, and (`invalid_field`) text holding U+0000. Never panics.
pub fn parse_frame(text: &str, max_depth: usize) -> Result<RawFrame, DecodeError> {
    let bare = |code, message: String| DecodeError {
        code,
        message,
        req_id: None,
        room_id: None,
    };
    if nesting_exceeds(text, max_depth) {
        return Err(bare(
            ErrorCode::InvalidJson,
            format!("JSON nested deeper than {max_depth} levels"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| bare(ErrorCode::InvalidJson, format!("not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(bare(
            ErrorCode::InvalidJson,
            "a frame must be a JSON object".into(),
        ));
    };
    let req_id = ReqId::from_frame(&value, text);
    let room_id = object.get("room_id").and_then(|v| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let frame = RawFrame {
        value,
        req_id,
        room_id,
    };
    // JSON can carry U+0000 only as the escape `\u0000`: skip the walk
    // unless the text has one.
    if text.contains("\\u0000") && contains_nul(&frame.value) {
        return Err(frame.fail(
            ErrorCode::InvalidField,
            "text may not contain U+0000".into(),
        ));
    }
    Ok(frame)
}

/// Decodes one text frame of the unified protocol. Never panics; every
/// failure is a [`DecodeError`] with the contract code the server answers
/// with.
pub fn decode_client_frame(text: &str) -> Result<Envelope, DecodeError> {
    decode_client_frame_limited(text, usize::MAX)
}

/// Like [`decode_client_frame`], but first refuses (`invalid_json`) a frame
/// whose arrays and objects nest deeper than `max_depth` levels, the frame
/// object itself being level 1. The check is one pass over the bytes without
/// allocating, so a hostile frame costs no more than its length.
pub fn decode_client_frame_limited(text: &str, max_depth: usize) -> Result<Envelope, DecodeError> {
    let frame = parse_frame(text, max_depth)?;
    let fail = |code, message| frame.fail(code, message);
    let value = &frame.value;
    let req_id = frame.req_id.clone();
    let kind = match frame.kind()? {
        Some(kind) => kind,
        None => return Err(fail(ErrorCode::InvalidField, "missing field `type`".into())),
    };
    if !CLIENT_FRAME_TYPES.contains(&kind) {
        return Err(fail(
            ErrorCode::UnknownType,
            format!("unknown frame type {kind:?}"),
        ));
    }
    match ClientFrame::deserialize(value) {
        Ok(frame) => Ok(Envelope { req_id, frame }),
        Err(e) => Err(fail(ErrorCode::InvalidField, format!("{kind}: {e}"))),
    }
}

/// Whether the brackets of `text` (outside strings) nest deeper than `max`.
/// Not a validator: malformed JSON is left to the parser.
pub fn nesting_exceeds(text: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_is_counted_outside_strings_only() {
        use super::{decode_client_frame_limited, nesting_exceeds};
        assert!(!nesting_exceeds(r#"{"a":[{"b":1}]}"#, 3));
        assert!(nesting_exceeds(r#"{"a":[{"b":[1]}]}"#, 3));
        assert!(!nesting_exceeds(r#"{"a":"[[[[{{{{\"[["}"#, 1));
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let frame = format!(r#"{{"type":"ping","req_id":1,"x":{deep}}}"#);
        let refused = decode_client_frame_limited(&frame, 32).unwrap_err();
        assert_eq!(refused.code, crate::ErrorCode::InvalidJson);
        assert!(decode_client_frame_limited(&frame, 41).is_ok());
    }

    use super::*;

    #[test]
    fn numbers_are_ids_and_req_id_is_kept() {
        let env =
            decode_client_frame(r#"{"type":"subscribe_room","room_id":45,"req_id":7}"#).unwrap();
        assert_eq!(env.req_id, Some(ReqId::from(7)));
        assert_eq!(
            env.frame,
            ClientFrame::SubscribeRoom {
                room_id: "45".into(),
                since_seq: None
            }
        );
    }

    #[test]
    fn message_type_is_case_insensitive() {
        let env = decode_client_frame(
            r#"{"type":"send_message","room_id":"r","content":"hi","message_type":"TEXT"}"#,
        )
        .unwrap();
        let ClientFrame::SendMessage(send) = env.frame else {
            panic!("wrong frame")
        };
        assert_eq!(send.message_type, Some(MessageType::Text));
    }

    #[test]
    fn each_failure_has_its_code() {
        let code = |t: &str| decode_client_frame(t).unwrap_err().code;
        assert_eq!(code("{nope"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"fly"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"room_id":"r"}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"subscribe_room"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"subscribe_room","room_id":{"a":1}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"send_message","room_id":"r","content":5}"#),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn errors_keep_req_id_and_room_id() {
        let err =
            decode_client_frame(r#"{"type":"get_history","room_id":9,"limit":"x","req_id":"a"}"#)
                .unwrap_err();
        assert_eq!(err.req_id, Some(ReqId::Text("a".into())));
        assert_eq!(err.room_id.as_deref(), Some("9"));
    }

    #[test]
    fn numeric_req_ids_come_back_as_written() {
        for written in [
            "7",
            "1e2",
            "1.50",
            "-0",
            "18446744073709551616",
            "-9.9e-400",
        ] {
            let text = format!(r#"{{"type":"ping","req_id":{written}}}"#);
            let env = decode_client_frame(&text).unwrap();
            let pong = crate::ServerFrame::Pong {
                timestamp: crate::Timestamp(0),
                req_id: env.req_id,
            };
            assert!(
                pong.to_json().contains(&format!(r#""req_id":{written}"#)),
                "{written}: {}",
                pong.to_json()
            );
        }
        let err = decode_client_frame(r#"{"type":"nope","req_id":1E+2}"#).unwrap_err();
        assert_eq!(
            err.req_id
                .map(|r| serde_json::to_string(&r).unwrap())
                .as_deref(),
            Some("1E+2")
        );
    }

    #[test]
    fn every_listed_type_decodes() {
        for kind in CLIENT_FRAME_TYPES {
            let text = format!(
                r#"{{"type":"{kind}","room_id":"r","token":"t","content":"c","message_id":"m","emoji":"x"}}"#
            );
            assert!(decode_client_frame(&text).is_ok(), "{kind} did not decode");
        }
    }
}
