//! Request extractors that answer with our error body, never the framework's.

use super::error::ApiError;
use crate::app::AppState;
use crate::auth::{AuthError, bearer};
use crate::core::{Caller, ChatError};
use axum::extract::{FromRequest, FromRequestParts, Path, Query};
use axum::http::request::Parts;

/// A JSON body; a bad one answers `invalid_json` (400) or `invalid_field` (422).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

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
        let act_as = parts
            .headers
            .get(ACT_AS_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        Ok(state.chat.authenticate(token, act_as).await?)
    }
}
