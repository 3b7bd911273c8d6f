//! Ids as clients may send them.
//!
//! The contract lets a client send a number where an id is expected
//! (`"room_id": 45` means `"45"`); server frames always carry strings. The
//! helpers here accept both on input and keep a `String` inside.

use serde::{Deserialize, Deserializer, Serialize};

/// Deserializes an id given as a JSON string or integer into its string form.
pub fn de_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        U(u64),
    }
    match Raw::deserialize(deserializer) {
        Ok(Raw::S(s)) => Ok(s),
        Ok(Raw::I(i)) => Ok(i.to_string()),
        Ok(Raw::U(u)) => Ok(u.to_string()),
        Err(_) => Err(serde::de::Error::custom("expected a string or integer id")),
    }
}

/// Like [`de_id`], for an optional field (`null` or absent is `None`).
pub fn de_opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_id")] String);
    Ok(Option::<Wrap>::deserialize(deserializer)?.map(|w| w.0))
}

/// Like [`de_id`], for a list of ids.
pub fn de_id_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_id")] String);
    Ok(Option::<Vec<Wrap>>::deserialize(deserializer)?
        .map(|list| list.into_iter().map(|w| w.0).collect()))
}

/// The `req_id` a client may put on any frame, echoed unchanged on every direct
/// reply so the client can match answers to requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReqId {
    /// A numeric request id: any JSON number (`7`, `1.5`, `18446744073709551615`),
    /// kept as sent.
    Number(serde_json::Number),
    /// A string request id.
    Text(String),
}

impl ReqId {
    /// Reads a `req_id` out of a raw JSON value, if it is a string or a number.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(s) => Some(ReqId::Text(s.clone())),
            serde_json::Value::Number(n) => Some(ReqId::Number(n.clone())),
            _ => None,
        }
    }
}
