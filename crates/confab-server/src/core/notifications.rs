//! The app's notifications to a user (protocol.md §8.4): a back-end with
//! the server key hands confab an `event` and its `data`, and every open
//! `/ws` connection of the user, on every node, gets them as one
//! `notification` frame. Nothing is stored: a user with no connection open
//! gets nothing, which the answer says, so the app can fall back to its own
//! channel (e-mail, push).

use super::{Caller, Chat, ChatError, ChatResult, encode};
use confab_protocol::{ServerFrame, Timestamp};
use serde_json::Value;

/// Longest `event` name, in characters: a name, not a payload (the payload
/// is `data`).
pub const MAX_EVENT_CHARS: usize = 64;

/// What one notification reached, as this node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notified {
    /// This node's connections of the user that were handed the frame
    /// (`/ws` ones: the other dialects do not show notifications). The
    /// broker reports no deliveries back, so other nodes' connections are
    /// reached but not counted.
    pub connections: usize,
    /// The user has an open WebSocket, on any endpoint and any node, as far
    /// as this node knows (its own connections, and the other nodes'
    /// presence heard within `broker_presence_ttl_ms`).
    pub online: bool,
}

impl Chat {
    /// Refuses every caller but the server key (acting as itself or for a
    /// user): notifications are the app's back-end speaking, never a user.
    pub fn may_notify(&self, caller: &Caller) -> ChatResult<()> {
        if caller.server_key {
            Ok(())
        } else {
            Err(ChatError::Forbidden(
                "only the server key may notify users".into(),
            ))
        }
    }

    /// Sends `event` and `data` to every open `/ws` connection of `user_id`
    /// on every node; stores nothing. Refused: anyone but the server key
    /// (`forbidden`), an id that breaks the id rule, an `event` that is
    /// blank, longer than [`MAX_EVENT_CHARS`] or holds control characters,
    /// `data` over `limits.max_metadata_bytes` as JSON (`invalid_field`),
    /// and a user never created (`not_found`).
    pub async fn notify(
        &self,
        caller: &Caller,
        user_id: &str,
        event: String,
        data: Value,
    ) -> ChatResult<Notified> {
        self.may_notify(caller)?;
        super::validate_id("user id", user_id)?;
        validate_event(&event)?;
        validate_data(&data, self.config.limits.max_metadata_bytes)?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(ChatError::NotFound("user"));
        }
        let frame = ServerFrame::Notification {
            event,
            data,
            timestamp: Timestamp::now(),
        };
        let connections = self.cluster.notify_user(user_id, encode(&frame));
        Ok(Notified {
            connections,
            online: self.cluster.is_online(user_id),
        })
    }
}

/// An `event` is a name: 1–[`MAX_EVENT_CHARS`] characters, not blank, no
/// control characters (they would garble the logs and clients' switches).
fn validate_event(event: &str) -> ChatResult<()> {
    if event.trim().is_empty() {
        return Err(ChatError::InvalidField("event must not be blank".into()));
    }
    if event.chars().count() > MAX_EVENT_CHARS {
        return Err(ChatError::InvalidField(format!(
            "event is longer than {MAX_EVENT_CHARS} characters"
        )));
    }
    if event.chars().any(char::is_control) {
        return Err(ChatError::InvalidField(
            "event may not contain control characters".into(),
        ));
    }
    Ok(())
}

/// `data` is any JSON value within the size limit of metadata: it goes to
/// every connection of the user, so it is bounded like what rooms and
/// messages carry.
fn validate_data(data: &Value, max_bytes: usize) -> ChatResult<()> {
    let size = serde_json::to_vec(data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(ChatError::InvalidField(format!(
            "data is larger than {max_bytes} bytes as JSON (limits.max_metadata_bytes)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_short_printable_names() {
        assert!(validate_event("order.shipped").is_ok());
        assert!(validate_event(&"é".repeat(MAX_EVENT_CHARS)).is_ok());
        assert!(validate_event(&"é".repeat(MAX_EVENT_CHARS + 1)).is_err());
        for bad in ["", "   ", "a\nb", "tab\there", "\u{7f}"] {
            assert!(validate_event(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_is_any_json_within_the_limit() {
        for ok in [
            json!(null),
            json!(1),
            json!("x"),
            json!([1, 2]),
            json!({"a": 1}),
        ] {
            assert!(validate_data(&ok, 16).is_ok(), "{ok}");
        }
        assert!(validate_data(&json!({"a": "x".repeat(20)}), 16).is_err());
        assert!(
            validate_data(&json!("x".repeat(14)), 16).is_ok(),
            "16 bytes with quotes"
        );
        assert!(validate_data(&json!("x".repeat(15)), 16).is_err());
    }
}
