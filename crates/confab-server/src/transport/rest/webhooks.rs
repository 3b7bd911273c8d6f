//! The webhook outbox's failures: `GET /api/v1/webhooks/failed` and
//! `POST /api/v1/webhooks/failed/retry` (server key).

use crate::core::Caller;
use crate::core::webhooks::FailedEvent;
use crate::transport::error::{ApiError, ApiResult};
use crate::transport::extract::{Body, Params};
use crate::transport::openapi::{BadJsonBody, InvalidField, Refusals};
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/webhooks/failed`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FailedQuery {
    /// How many, newest first (default 50, max 100).
    limit: Option<u32>,
}

/// Answer of `GET /api/v1/webhooks/failed`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedList {
    /// Events that ran out of attempts, the newest first.
    pub events: Vec<FailedEvent>,
}

/// `GET /api/v1/webhooks/failed` (server key): the events that ran out of
/// attempts (`webhook.max_attempts`), with the last attempt's error.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/failed",
    tag = "webhooks",
    params(FailedQuery),
    responses(
        (status = 200, description = "Failed events, newest first", body = FailedList),
        Refusals, InvalidField,
    ),
    security(("server_key" = [])),
)]
pub async fn failed_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<FailedQuery>,
) -> ApiResult<Json<FailedList>> {
    let events = state.chat.failed_webhooks(&caller, query.limit).await?;
    Ok(Json(FailedList { events }))
}

/// Body of `POST /api/v1/webhooks/failed/retry`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// The failed events to retry (at most 100); absent: every failed event.
    #[serde(default)]
    ids: Option<Vec<String>>,
}

/// Answer of `POST /api/v1/webhooks/failed/retry`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    /// Failed events put back in line (ids that are not failed events are
    /// not counted).
    pub retried: u64,
}

/// `POST /api/v1/webhooks/failed/retry` (server key): puts failed events
/// back in line, due now, with a fresh `webhook.max_attempts`; each keeps
/// its id, so a receiver that saw an earlier attempt recognises it.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/failed/retry",
    tag = "webhooks",
    request_body(content = RetryBody, description = "Which events; `{}`: all"),
    responses(
        (status = 200, description = "How many were put back in line", body = Retried),
        Refusals, InvalidField, BadJsonBody,
    ),
    security(("server_key" = [])),
)]
pub async fn retry_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<RetryBody>, ApiError>,
) -> ApiResult<Json<Retried>> {
    // Who may ask comes before what was asked.
    state.chat.may_manage_webhooks(&caller)?;
    let Body(body) = body?;
    let retried = state.chat.retry_webhooks(&caller, body.ids).await?;
    Ok(Json(Retried { retried }))
}
