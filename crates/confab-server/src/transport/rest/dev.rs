//! The browser client's dev sign-in: `GET` and `POST /api/v1/dev/login`,
//! served only while `auth.dev_login` is on (see
//! [`crate::config::AuthConfig::dev_login`]); otherwise the path does not
//! exist (404).

use crate::core::dev_login::DevToken;
use crate::transport::error::{ApiError, ApiResult};
use crate::transport::extract::Body;
use crate::transport::openapi::{BadJsonBody, InvalidField};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Answer of `GET /api/v1/dev/login`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevLoginInfo {
    /// Always `true`: the route exists only while dev sign-in is on.
    pub dev_login: bool,
}

/// `GET /api/v1/dev/login`: whether the page may offer "pick a name" (it
/// may when this answers at all).
#[utoipa::path(
    get,
    path = "/api/v1/dev/login",
    tag = "dev",
    responses((status = 200, description = "Dev sign-in is on", body = DevLoginInfo)),
)]
pub async fn dev_login_info() -> Json<DevLoginInfo> {
    Json(DevLoginInfo { dev_login: true })
}

/// Body of `POST /api/v1/dev/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevLoginBody {
    /// The display name (1–64 characters).
    name: String,
    /// The user id; default: the name in lower case, letters and digits
    /// kept, the rest made `-`.
    #[serde(default)]
    user_id: Option<String>,
}

/// `POST /api/v1/dev/login`: a token for anyone who picks a name. Only
/// while dev sign-in is on: never in production.
#[utoipa::path(
    post,
    path = "/api/v1/dev/login",
    tag = "dev",
    request_body = DevLoginBody,
    responses(
        (status = 200, description = "A user token", body = DevToken),
        InvalidField, BadJsonBody,
    ),
)]
pub async fn dev_login(
    State(state): State<AppState>,
    body: Result<Body<DevLoginBody>, ApiError>,
) -> ApiResult<Json<DevToken>> {
    let Body(body) = body?;
    Ok(Json(
        state.chat.dev_login(&body.name, body.user_id.as_deref())?,
    ))
}
