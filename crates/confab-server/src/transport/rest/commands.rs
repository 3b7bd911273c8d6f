//! Commands over REST: a REST-only client, or the app's own tests, run a
//! slash command as a user and read its `command_result`.

use crate::core::Caller;
use crate::core::ChatError;
use crate::core::commands::{CommandCall, Line, Place, parse};
use crate::transport::error::ApiResult;
use crate::transport::extract::{Body, Ids};
use crate::transport::openapi::{BadJsonBody, NotFound, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use confab_protocol::CommandResult;
use serde::Deserialize;
use utoipa::ToSchema;

/// Body of `POST /api/v1/rooms/{id}/commands`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommandBody {
    /// The line as a user would type it: `/help`, `/reload 7`, `/me waves`.
    text: String,
}

/// `POST /api/v1/rooms/{id}/commands`: runs a slash command in the room as
/// the caller, exactly as typed on a WebSocket (protocol.md §6.1, §8.2),
/// and answers its result, `ok: false` included, with 200. `/me` stores
/// its message and answers it in `data.message`.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/commands",
    tag = "messages",
    params(("id" = String, Path, description = "The room id")),
    request_body = CommandBody,
    responses(
        (status = 200, description = "What the command answered (`ok` says whether it did it)", body = CommandResult),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn run_command(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Body(body): Body<CommandBody>,
) -> ApiResult<Json<CommandResult>> {
    let Line::Command { word, args } = parse(&body.text) else {
        return Err(ChatError::InvalidField(
            "text must be a command: a slash and a command word (`/help`)".into(),
        )
        .into());
    };
    let call = CommandCall {
        room_id,
        args: args.to_owned(),
        text: body.text.clone(),
        word,
        req_id: None,
    };
    let result = state
        .chat
        .run_command(&caller, &call, &Place::default())
        .await?;
    Ok(Json(result))
}
