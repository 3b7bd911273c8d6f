//! Users: `GET /api/v1/me`, `PUT /api/v1/users/{id}`.

use crate::core::Caller;
use crate::transport::error::ApiResult;
use crate::transport::extract::{Body, Ids};
use crate::transport::openapi::{BadJsonBody, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use confab_protocol::User;
use serde::Deserialize;
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
