//! HTTP and WebSocket: the routes, and nothing about what chat means.
//!
//! # Layout
//! - [`ws`]: the WebSocket endpoints: the handshake, the session engine
//!   every dialect runs on, the writer, and the unified protocol (`/ws`).
//! - [`rest`]: REST handlers under `/api/v1`, health checks.
//! - [`openapi`]: the OpenAPI document generated from the handlers, served
//!   at `/api/v1/openapi.json`.
//! - [`extract`]: extractors whose rejections use our error body.
//! - [`client_addr`]: the client's address, through trusted proxies.
//! - [`drain`]: reads what a refused request left of its body, so that
//!   the refusal reaches a client still sending it.
//! - [`error`]: [`error::ApiError`], the one mapping to HTTP statuses.
//! - [`origin`]: which browser origins may open a WebSocket.
//! - [`state`]: [`state::AppState`], what every handler shares.
//! - [`heartbeat`]: ping/pong bookkeeping that closes dead peers.
//! - [`web`]: the browser client at `/`, embedded in the binary.

pub mod client_addr;
pub mod drain;
pub mod error;
pub mod extract;
pub mod heartbeat;
pub mod openapi;
pub mod origin;
pub mod rest;
pub mod state;
pub mod web;
pub mod ws;

use crate::transport::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use openapi::{ApiDoc, OpenApiJson};
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// Why the routes could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The OpenAPI document could not be serialized.
    #[error("openapi document: {0}")]
    OpenApi(#[from] serde_json::Error),
    /// A configured route clashes with a built-in one or another route.
    #[error("server.routes: {0}")]
    Route(String),
}

/// Every route the server serves, and the OpenAPI document describing them.
///
/// Each handler is registered with `routes!`, which adds the route and its
/// `#[utoipa::path]` operation together: a route missing from the document
/// cannot be added here. The document is serialized once, now, and handed
/// to its handler as an extension. The configured `server.routes` follow.
/// Fails if the document cannot be serialized or a configured route
/// clashes with another.
pub fn router(state: AppState) -> Result<Router, RouterError> {
    // Room for the multipart framing around the largest accepted file.
    let upload_limit = state.chat.config().limits.max_upload_bytes + 64 * 1024;
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(rest::upload).layer(DefaultBodyLimit::max(upload_limit)))
        .routes(routes!(rest::download))
        .routes(routes!(rest::me))
        .routes(routes!(rest::stats))
        .routes(routes!(rest::put_user))
        .routes(routes!(rest::notify_user))
        .routes(routes!(rest::failed_webhooks))
        .routes(routes!(rest::retry_webhooks))
        .routes(routes!(rest::list_rooms, rest::create_room))
        .routes(routes!(rest::get_room, rest::patch_room, rest::close_room))
        .routes(routes!(rest::list_members, rest::add_member))
        .routes(routes!(rest::remove_member))
        .routes(routes!(rest::get_rating, rest::rate_session))
        .routes(routes!(rest::list_messages, rest::send_message))
        .routes(routes!(rest::edit_message, rest::delete_message))
        .routes(routes!(rest::mark_read))
        .routes(routes!(rest::run_command))
        .routes(routes!(rest::context))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(ws::upgrade))
        .routes(routes!(ws::upgrade_chat))
        .routes(routes!(ws::upgrade_chat_slash))
        .routes(routes!(ws::upgrade_chat_room))
        .routes(routes!(ws::upgrade_session))
        .routes(routes!(ws::upgrade_assistant))
        .routes(routes!(rest::healthz))
        .routes(routes!(rest::readyz))
        .routes(routes!(rest::metrics));
    // The dev sign-in exists only while it is on, in the document too.
    let api = match state.chat.config().dev_login_enabled() {
        true => api.routes(routes!(rest::dev_login_info, rest::dev_login)),
        false => api,
    };
    let (router, doc) = api.split_for_parts();
    let router = router
        .route("/", axum::routing::get(web::index))
        .route("/app/{*path}", axum::routing::get(web::asset));
    let doc = OpenApiJson::new(&doc)?;
    // Routes from the configuration: aliases of the endpoints above, kept
    // out of the document. Checked for clashes first: axum would panic.
    let extra = &state.chat.config().server.routes;
    ws::check_routes(extra).map_err(RouterError::Route)?;
    let router = extra.iter().fold(router, |router, route| {
        router.route(&route.path, ws::configured(route))
    });
    // A refused upload may be followed by up to a few times its limit before
    // the connection is given up.
    let drain_bytes = upload_limit.saturating_mul(4);
    Ok(router
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(Extension(doc))
        .layer(axum::middleware::from_fn(move |request, next| {
            drain::drain_unread_body(request, next, drain_bytes)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_addr::in_span,
        ))
        .with_state(state))
}
