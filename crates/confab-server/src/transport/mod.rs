//! HTTP and WebSocket: the routes, and nothing about what chat means.
//!
//! # Layout
//! - [`ws`]: the unified WebSocket session (`/ws`, `/ws/chat/`).
//! - [`rest`]: REST handlers under `/api/v1`, health checks.
//! - [`extract`]: extractors whose rejections use our error body.
//! - [`error`]: [`error::ApiError`], the one mapping to HTTP statuses.

pub mod error;
pub mod extract;
pub mod rest;
pub mod ws;

use crate::app::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use confab_protocol::ErrorCode;

/// Every route the server serves.
pub fn router(state: AppState) -> Router {
    // Room for the multipart framing around the largest accepted file.
    let upload_limit = state.chat.config.limits.max_upload_bytes + 64 * 1024;
    let api = Router::new()
        .route(
            "/attachments",
            post(rest::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/attachments/{id}", get(rest::download))
        .route("/me", get(rest::me))
        .route("/stats", get(rest::stats))
        .route("/users/{id}", put(rest::put_user))
        .route("/rooms", get(rest::list_rooms).post(rest::create_room))
        .route(
            "/rooms/{id}",
            get(rest::get_room)
                .patch(rest::patch_room)
                .delete(rest::close_room),
        )
        .route(
            "/rooms/{id}/members",
            get(rest::list_members).post(rest::add_member),
        )
        .route("/rooms/{id}/members/{user_id}", delete(rest::remove_member))
        .route(
            "/rooms/{id}/messages",
            get(rest::list_messages).post(rest::send_message),
        )
        .route(
            "/rooms/{id}/messages/{message_id}",
            patch(rest::edit_message).delete(rest::delete_message),
        )
        .route("/rooms/{id}/read", post(rest::mark_read))
        .route("/rooms/{id}/context", get(rest::context));
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/ws/chat", get(ws::upgrade))
        .route("/ws/chat/", get(ws::upgrade))
        .route("/healthz", get(rest::healthz))
        .route("/readyz", get(rest::readyz))
        .nest("/api/v1", api)
        .fallback(rest::not_found)
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidField,
                "method not allowed on this route",
            )
        })
        .with_state(state)
}
