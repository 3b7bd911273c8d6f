//! What travels on the broker: the serialized frame plus what the receiving
//! hub needs to deliver it like the producing one did.

use serde::{Deserialize, Serialize};

/// One event on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The producing node, so it can ignore its own echo.
    pub origin: String,
    /// The room a room event is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    /// The message seq for seq-ordered events (`new_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// A user whose connections must not get it (the typist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except_user: Option<String>,
    /// For user-targeted events (on the users topic): whose connections get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// With `users`: close their connections with this code instead of
    /// sending `frame` (4002, a disabled user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<u16>,
    /// With `users`: a presence note instead of a frame — these users are
    /// online on the origin node (`true`: arrived, or still there), or left
    /// it (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// With `room_id`, on the users topic: the room's membership or state
    /// changed, so every node forgets what it remembered of who may send
    /// there (`core::access`). Carries no frame.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub access_changed: bool,
    /// With `users`: `frame` is the app's notification (protocol.md §8.4),
    /// for those of their connections whose dialect shows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notification: bool,
    /// The frame exactly as clients receive it.
    pub frame: String,
}

impl Envelope {
    /// The bytes to publish.
    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serializing strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// Decodes a received payload; `None` for anything that is not one.
    pub fn from_bytes(payload: &[u8]) -> Option<Envelope> {
        serde_json::from_slice(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_garbage_is_refused() {
        let e = Envelope {
            origin: "n1".into(),
            room_id: Some("r".into()),
            seq: Some(7),
            except_user: None,
            users: None,
            close: None,
            online: None,
            access_changed: false,
            notification: false,
            frame: r#"{"type":"x"}"#.into(),
        };
        assert_eq!(Envelope::from_bytes(&e.to_bytes()), Some(e));
        assert_eq!(Envelope::from_bytes(b"not json"), None);
    }
}
