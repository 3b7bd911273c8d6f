//! Ids as clients may send them.
//!
//! The contract lets a client send a number where an id is expected
//! (`"room_id": 45` means `"45"`); server frames always carry strings. The
//! helpers here accept both on input and keep a `String` inside.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReqId {
    /// A numeric request id, kept exactly as the client wrote it: `7`,
    /// `1.5`, `1e2`, `18446744073709551616` come back as those characters,
    /// not as what a 64-bit number makes of them.
    Number(JsonNumber),
    /// A string request id.
    Text(String),
}

/// A JSON number as written, for echoing it to the letter.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct JsonNumber(Box<RawValue>);

impl JsonNumber {
    /// The number's JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for JsonNumber {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonNumber {}

impl From<serde_json::Number> for JsonNumber {
    fn from(number: serde_json::Number) -> Self {
        // A number's display is valid JSON, so this cannot fail; the
        // fallback keeps the signature total all the same.
        let raw = RawValue::from_string(number.to_string())
            .unwrap_or_else(|_| Box::<RawValue>::default());
        JsonNumber(raw)
    }
}

impl From<u64> for ReqId {
    fn from(number: u64) -> Self {
        ReqId::Number(serde_json::Number::from(number).into())
    }
}

impl<'de> Deserialize<'de> for ReqId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        ReqId::from_json(&value)
            .ok_or_else(|| serde::de::Error::custom("req_id must be a string or a number"))
    }
}

impl ReqId {
    /// Reads a `req_id` out of a raw JSON value, if it is a string or a number.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(s) => Some(ReqId::Text(s.clone())),
            serde_json::Value::Number(n) => Some(ReqId::Number(n.clone().into())),
            _ => None,
        }
    }

    /// Reads the `req_id` of a frame: `value` is the frame parsed from
    /// `text`. A number the parse may have changed (a fraction, an exponent,
    /// an integer beyond 64 bits, `-0`) is taken from the text as written.
    pub fn from_frame(value: &serde_json::Value, text: &str) -> Option<Self> {
        let parsed = value.get("req_id")?;
        if let serde_json::Value::Number(n) = parsed
            && (n.is_f64() || n.as_u64() == Some(0))
        {
            #[derive(Deserialize)]
            struct Written<'a> {
                #[serde(borrow)]
                req_id: Option<&'a RawValue>,
            }
            if let Ok(Written { req_id: Some(raw) }) = serde_json::from_str::<Written<'_>>(text)
                && let Ok(number) = RawValue::from_string(raw.get().to_owned())
            {
                return Some(ReqId::Number(JsonNumber(number)));
            }
        }
        ReqId::from_json(parsed)
    }
}
