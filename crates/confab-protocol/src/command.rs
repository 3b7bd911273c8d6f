//! The answer to a slash command (protocol.md §6.1, §8.2): what a
//! `command_result` frame carries, and what `POST /api/v1/rooms/{id}/commands`
//! answers.

use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};

/// Why a command that ran answered `ok: false`: one of the contract's
/// error codes, or `upstream_error` when the app's back-end behind an app
/// command failed (protocol.md §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandCode {
    /// The app answered an error status, bad JSON, or nothing in time.
    UpstreamError,
    /// A contract error code (`not_found` for an unknown command,
    /// `forbidden`, `invalid_field`, …).
    #[serde(untagged)]
    Error(ErrorCode),
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for CommandCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`not_found` (unknown command), `forbidden`, `invalid_field`, \
                 `upstream_error` (the app failed), or another error code",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for CommandCode {}

impl From<ErrorCode> for CommandCode {
    fn from(code: ErrorCode) -> Self {
        CommandCode::Error(code)
    }
}

/// What a command answered, to its caller only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command word as typed, lower-cased, without the slash.
    pub command: String,
    /// Whether it did what was asked.
    pub ok: bool,
    /// The answer, for people.
    pub text: String,
    /// The answer, for programs (`null` when the command has none).
    #[serde(default)]
    pub data: serde_json::Value,
    /// Why it failed (only when `ok` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CommandCode>,
}

impl CommandResult {
    /// A successful answer.
    pub fn ok(
        command: impl Into<String>,
        text: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        CommandResult {
            command: command.into(),
            ok: true,
            text: text.into(),
            data,
            code: None,
        }
    }

    /// A failed one.
    pub fn failed(
        command: impl Into<String>,
        code: impl Into<CommandCode>,
        text: impl Into<String>,
    ) -> Self {
        CommandResult {
            command: command.into(),
            ok: false,
            text: text.into(),
            data: serde_json::Value::Null,
            code: Some(code.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReqId, ServerFrame, Timestamp};

    #[test]
    fn codes_are_the_contract_codes_plus_upstream_error() {
        let json = |code: CommandCode| serde_json::to_string(&code).unwrap();
        assert_eq!(json(CommandCode::UpstreamError), r#""upstream_error""#);
        assert_eq!(json(ErrorCode::Forbidden.into()), r#""forbidden""#);
        let back: CommandCode = serde_json::from_str(r#""not_found""#).unwrap();
        assert_eq!(back, CommandCode::Error(ErrorCode::NotFound));
        let back: CommandCode = serde_json::from_str(r#""upstream_error""#).unwrap();
        assert_eq!(back, CommandCode::UpstreamError);
    }

    #[test]
    fn the_frame_carries_the_result_flat_and_round_trips() {
        let frame = ServerFrame::CommandResult {
            room_id: "r1".into(),
            result: CommandResult::failed("stats", ErrorCode::Forbidden, "admins only"),
            timestamp: Timestamp(1_764_000_000_123),
            req_id: Some(ReqId::from(7)),
        };
        let json = frame.to_json();
        assert_eq!(
            json,
            r#"{"type":"command_result","room_id":"r1","command":"stats","ok":false,"text":"admins only","data":null,"code":"forbidden","timestamp":"2025-11-24T16:00:00.123Z","req_id":7}"#
        );
        let back: ServerFrame = serde_json::from_str(&json).unwrap();
        assert_eq!(back, frame);
        assert_eq!(back.kind(), "command_result");
    }
}
