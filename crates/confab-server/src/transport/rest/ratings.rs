//! Ratings of assistant sessions: rate one, read its rating.

use crate::core::Caller;
use crate::core::ratings::Rating;
use crate::transport::error::ApiResult;
use crate::transport::extract::{Body, Ids};
use crate::transport::openapi::{BadJsonBody, InvalidField, NotFound, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /api/v1/rooms/{id}/rating`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RateBody {
    /// 1 (poor) to 5 (excellent), a whole number.
    #[schema(minimum = 1, maximum = 5)]
    rating: i64,
    /// What the rater wants to say; blank counts as none.
    feedback: Option<String>,
}

/// Answer of `POST /api/v1/rooms/{id}/rating`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatingAnswer {
    /// The rating as stored.
    pub rating: Rating,
}

/// Answer of `GET /api/v1/rooms/{id}/rating`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionRating {
    /// The session's latest rating; `null` until it is rated.
    #[schema(required = true)]
    pub rating: Option<Rating>,
}

/// `POST /api/v1/rooms/{id}/rating`: rate an assistant session (members,
/// admins, the server key); replaces its earlier rating.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/rating",
    tag = "rooms",
    params(("id" = String, Path, description = "The id of an `assistant` room")),
    request_body = RateBody,
    responses(
        (status = 200, description = "The rating as stored (it replaces any earlier one)", body = RatingAnswer),
        Refusals, NotFound, BadJsonBody,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn rate_session(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
    Body(body): Body<RateBody>,
) -> ApiResult<Json<RatingAnswer>> {
    let rating = state
        .chat
        .rate_session(&caller, &room_id, body.rating, body.feedback)
        .await?;
    Ok(Json(RatingAnswer { rating }))
}

/// `GET /api/v1/rooms/{id}/rating`: an assistant session's rating, or `null`.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}/rating",
    tag = "rooms",
    params(("id" = String, Path, description = "The id of an `assistant` room")),
    responses(
        (status = 200, description = "The session's rating, `null` until rated", body = SessionRating),
        Refusals, NotFound, InvalidField,
    ),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn get_rating(
    State(state): State<AppState>,
    caller: Caller,
    Ids(room_id): Ids<String>,
) -> ApiResult<Json<SessionRating>> {
    let rating = state.chat.session_rating(&caller, &room_id).await?;
    Ok(Json(SessionRating { rating }))
}
