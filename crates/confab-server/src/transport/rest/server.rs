//! The server itself: stats, health, readiness, metrics, and the answers to unknown routes and methods.

use crate::core::Caller;
use crate::core::stats::Stats;
use crate::transport::error::{ApiError, ApiResult};
use crate::transport::openapi::Refusals;
use crate::transport::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use confab_protocol::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /api/v1/stats`: server counters, for global admins and the server key.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "server",
    responses((status = 200, description = "Counters", body = Stats), Refusals),
    security(("bearer_jwt" = []), ("server_key" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Stats>> {
    Ok(Json(state.chat.stats(&caller).await?))
}

/// Answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    responses((status = 200, description = "The process is up", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /metrics`: this node's counters, gauges and histograms in the
/// Prometheus text format (OpenMetrics flavour), for a Prometheus scraper.
///
/// Unauthenticated, like `/healthz`: it carries no user data, only counts.
/// Restrict it at the proxy if they must stay private. The series are listed
/// in docs/metrics.md.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses((
        status = 200,
        description = "Every series of this node, ending with `# EOF`",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body = String,
    )),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.chat.metrics().encode(),
    )
        .into_response()
}

/// Answer of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// `ok` or `down`.
    #[schema(value_type = String, example = "ok")]
    pub storage: &'static str,
    /// `ok`, `down`, or `none` with `broker_url = "memory"` (one node).
    #[schema(value_type = String, example = "ok")]
    pub broker: &'static str,
}

/// `GET /readyz`: storage answers and, with a broker, the broker is
/// connected (a node that cannot fan out to the others should not get new
/// connections; its sends would still be stored and acked).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "server",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Storage or broker does not answer", body = Readiness),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let found = state.chat.readiness().await;
    let storage = if found.storage { "ok" } else { "down" };
    let broker = match found.broker {
        None => "none",
        Some(true) => "ok",
        Some(false) => "down",
    };
    let ready = storage == "ok" && broker != "down";
    let (code, status) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Json(Readiness {
            status,
            storage,
            broker,
        }),
    )
}

/// The message of the route-miss answer, distinct from every handler's own
/// `not_found` (so a client, and the OpenAPI test, can tell "no such route"
/// from "no such room").
pub const NO_SUCH_ROUTE: &str = "no such route";

/// The message of the wrong-method answer.
pub const METHOD_NOT_ALLOWED: &str = "method not allowed on this route";

/// Any other path: our error body, not an empty 404.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, NO_SUCH_ROUTE)
}

/// A served path with another method: our error body, 405.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidField,
        METHOD_NOT_ALLOWED,
    )
}
