//! Request extractors that answer with our error body, never the framework's.

use super::error::ApiError;
use crate::auth::{AuthError, bearer};
use crate::core::{Caller, ChatError};
use crate::transport::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use confab_protocol::ErrorCode;
use serde::de::DeserializeOwned;

/// A JSON body; a bad one answers `invalid_json` (400) or `invalid_field`
/// (422), as does text holding U+0000 anywhere (see
/// [`confab_protocol::contains_nul`]) and a body that is not a JSON object
/// (serde would otherwise read `["x", 1]` as a struct's fields in order).
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ChatError::InvalidField("the body must be a JSON object".into()).into());
        }
        if confab_protocol::contains_nul(&value) {
            return Err(ChatError::InvalidField("text may not contain U+0000".into()).into());
        }
        serde_json::from_value(value).map(Body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidField,
                format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        })
    }
}

/// Query parameters; bad ones answer `invalid_field`.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct Params<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct Ids<T>(pub T);

/// The header a back-end uses with the server key to act for a user.
pub const ACT_AS_HEADER: &str = "x-confab-user";

/// The `X-Confab-User` header, for REST and WebSocket alike. A header that
/// is present but empty or not text is malformed and stays so (the id rule
/// refuses it), instead of reading as "no header" and acting as `system`.
pub fn acting_user(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(ACT_AS_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or(ChatError::Auth(AuthError::Missing))?;
        let act_as = acting_user(&parts.headers);
        Ok(state.chat.authenticate(token, act_as).await?)
    }
}
