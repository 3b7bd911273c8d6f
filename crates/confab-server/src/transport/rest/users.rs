//! Users: `GET /api/v1/me`, `PUT /api/v1/users/{id}`,
//! `POST /api/v1/users/{id}/notify`.

use crate::core::Caller;
use crate::transport::error::{ApiError, ApiResult};
use crate::transport::extract::{Body, Ids};
use crate::transport::openapi::{BadJsonBody, NotFound, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use confab_protocol::User;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /api/v1/me`: the caller.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "users",
    responses((status = 200, description = "The caller's user record", body = User), Refusals),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn me(caller: Caller) -> Json<User> {
    Json(crate::core::wire::user(caller.user))
}

/// Body of `PUT /api/v1/users/{id}`; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutUser {
    /// The display name.
    name: Option<String>,
    /// Global role: `admin`, `member` or `viewer`.
    role: Option<String>,
    /// `true` refuses the user's connections (open ones are closed with 4002).
    disabled: Option<bool>,
}

/// `PUT /api/v1/users/{id}` (server key): create or update a user.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user id")),
    request_body = PutUser,
    responses(
        (status = 200, description = "The user as stored", body = User),
        Refusals, BadJsonBody,
    ),
    security(("server_key" = [])),
)]
pub async fn put_user(
    State(state): State<AppState>,
    caller: Caller,
    Ids(user_id): Ids<String>,
    Body(body): Body<PutUser>,
) -> ApiResult<Json<User>> {
    let user = state
        .chat
        .put_user(
            &caller,
            &user_id,
            body.name,
            body.role.as_deref(),
            body.disabled,
        )
        .await?;
    Ok(Json(user))
}

/// Body of `POST /api/v1/users/{id}/notify`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NotifyBody {
    /// The app's name for what happened (`order.shipped`): 1–64 characters,
    /// not blank, no control characters.
    #[schema(min_length = 1, max_length = 64)]
    event: String,
    /// Anything the front-end needs with it: any JSON value, at most
    /// `limits.max_metadata_bytes` (8 KiB) as JSON; absent means `null`.
    #[serde(default)]
    data: Value,
}

/// Answer of `POST /api/v1/users/{id}/notify`: what this node can tell of
/// whom the notification reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotifyAnswer {
    /// The user's `/ws` connections on the node that answered which were
    /// handed the frame. Connections on other nodes get it too (through the
    /// broker), but are not counted: the broker reports no deliveries.
    pub connections: usize,
    /// The user has an open WebSocket on any endpoint and any node, as far
    /// as the answering node knows (presence). `false`: nobody saw it.
    pub online: bool,
}

/// `POST /api/v1/users/{id}/notify` (server key): sends `{"type":
/// "notification", "event", "data", "timestamp"}` to every open `/ws`
/// connection of the user on every node; nothing is stored.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/notify",
    tag = "users",
    params(("id" = String, Path, description = "The user to notify")),
    request_body = NotifyBody,
    responses(
        (status = 200, description = "Sent to the user's open `/ws` connections (none is no error)", body = NotifyAnswer),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn notify_user(
    State(state): State<AppState>,
    caller: Caller,
    Ids(user_id): Ids<String>,
    body: Result<Body<NotifyBody>, ApiError>,
) -> ApiResult<Json<NotifyAnswer>> {
    // Who may ask comes before what was asked: a user's token is refused
    // (403) whatever its body.
    state.chat.may_notify(&caller)?;
    let Body(body) = body?;
    let notified = state
        .chat
        .notify(&caller, &user_id, body.event, body.data)
        .await?;
    Ok(Json(NotifyAnswer {
        connections: notified.connections,
        online: notified.online,
    }))
}
