//! The contract's error codes (protocol.md §2.4) and WebSocket close codes (protocol.md §2.1).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The machine-readable `code` of an `error` frame or REST error body.
///
/// Clients branch on this, never on the message text, so the set is closed:
/// exactly the codes of protocol.md §2.4.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body is not valid JSON (or not a JSON object).
    InvalidJson,
    /// The frame's `type` is not one the server knows.
    UnknownType,
    /// A field is missing, of the wrong type, or out of range.
    InvalidField,
    /// The message content is empty (or only whitespace).
    EmptyMessage,
    /// The message content is longer than `limits.max_message_length`.
    MessageTooLong,
    /// The room, message or user does not exist.
    NotFound,
    /// The caller may not do this (not a member, read-only role, closed room).
    Forbidden,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The connection is not subscribed to the room it names.
    NotSubscribed,
    /// No valid credentials.
    Unauthorized,
    /// Something failed inside the server; nothing was stored.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses (protocol.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// Normal closure.
    Normal = 1000,
    /// The peer broke the WebSocket protocol (unmasked frame, reserved
    /// opcode or bits, an over-long or fragmented control frame).
    ProtocolError = 1002,
    /// A text frame that is not UTF-8.
    InvalidPayload = 1007,
    /// Frame larger than the frame limit.
    TooBig = 1009,
    /// The server failed (storage unreachable while signing in); retry later.
    Internal = 1011,
    /// Server restarting or shutting down.
    Restarting = 1012,
    /// No token given and anonymous access is off.
    NoToken = 4001,
    /// The user is disabled, or unknown where users must pre-exist.
    UserRefused = 4002,
    /// The token is invalid or expired.
    BadToken = 4003,
    /// Not a member of the room (room-scoped endpoints).
    NotMember = 4004,
    /// Slow consumer: the outgoing queue overflowed.
    SlowConsumer = 4008,
    /// Too many connections for this user or address.
    TooManyConnections = 4029,
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The close code with this number, if the server uses it.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::ProtocolError,
            CloseCode::InvalidPayload,
            CloseCode::TooBig,
            CloseCode::Internal,
            CloseCode::Restarting,
            CloseCode::NoToken,
            CloseCode::UserRefused,
            CloseCode::BadToken,
            CloseCode::NotMember,
            CloseCode::SlowConsumer,
            CloseCode::TooManyConnections,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// A short reason text for the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::ProtocolError => "websocket protocol error",
            CloseCode::InvalidPayload => "text frame is not UTF-8",
            CloseCode::TooBig => "frame too large",
            CloseCode::Internal => "internal error",
            CloseCode::Restarting => "server restarting",
            CloseCode::NoToken => "no token",
            CloseCode::UserRefused => "user disabled or unknown",
            CloseCode::BadToken => "invalid or expired token",
            CloseCode::NotMember => "not a member",
            CloseCode::SlowConsumer => "slow consumer",
            CloseCode::TooManyConnections => "too many connections",
        }
    }
}
