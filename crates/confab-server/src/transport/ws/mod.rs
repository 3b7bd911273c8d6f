//! WebSocket endpoints: the upgrade, and the session engine every dialect
//! runs on.
//!
//! # Layout
//! - this module: the routes and the handshake (origin check, token
//!   placement, per-address rate and cap), common to every endpoint.
//! - [`dialect`]: the seam: what an endpoint's protocol supplies.
//! - [`session`]: the engine: sign-in, admission, the read loop, token
//!   expiry, sends in flight.
//! - `writer`: the one task that writes a connection's socket.
//! - [`unified`]: the unified protocol of `/ws` (protocol.md §2), the first dialect.

pub mod dialect;
pub mod session;
pub mod unified;
mod writer;

use crate::auth::bearer;
use crate::transport::state::AppState;
use axum::extract::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_protocol::{CloseCode, ErrorCode};
use dialect::Dialect;
use serde::Deserialize;
use session::Handshake;
use std::net::SocketAddr;
use unified::Unified;
use writer::close_message;

use super::error::{ApiError, ErrorBody};
use super::extract::acting_user;

/// The subprotocol browsers offer: `Sec-WebSocket-Protocol: confab.v1, bearer.T`.
const SUBPROTOCOL: &str = "confab.v1";
/// Bytes read from the socket at a time. tungstenite allocates this per
/// connection up front (its default, 128 KiB, was most of an idle
/// connection's memory); chat frames are a few hundred bytes, and 2 KiB
/// measured as fast as 4 KiB under load (docs/performance.md). Larger
/// frames are still read whole, in several reads.
const READ_BUFFER: usize = 2 * 1024;
/// Bytes gathered before a write reaches the socket; a batch is flushed as
/// a whole anyway (see `writer::write_batch`).
const WRITE_BUFFER: usize = 8 * 1024;

/// Query parameters of the upgrade request.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// The JWT, for clients that can set neither a header nor a subprotocol
    /// (least preferred: URLs end up in logs).
    token: Option<String>,
}

/// `GET /ws`: the unified WebSocket session (protocol.md §2).
///
/// Checks the origin (403 unless `server.allowed_origins` allows it),
/// upgrades, applies the per-address handshake rate and connection cap
/// (close 4029), then authenticates (handshake token, or an `auth` first
/// frame within 5 s) and runs the session. The frames spoken after the `101` are
/// described in docs/protocol.md, not here. A token may come as
/// `Authorization: Bearer T`, as the subprotocol `bearer.T` next to
/// `confab.v1`, in the first frame, or as `?token=T`; a refused credential
/// closes the socket with 4001/4002/4003 after the upgrade.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the session runs; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    upgrade_at(Unified::new("/ws"), state, peer, headers, query, ws).await
}

/// The upgrade behind every WebSocket path, whatever its dialect: the origin
/// check, the token's placement, the per-address rate and cap; then the
/// session engine runs the dialect.
async fn upgrade_at<D: Dialect>(
    dialect: D,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| state.origins.allows(origin, host));
        if !allowed {
            tracing::debug!(?origin, "websocket refused: origin not allowed");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this origin may not open a WebSocket here (server.allowed_origins)",
            )
            .into_response();
        }
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidField,
                rejection.body_text(),
            )
            .into_response();
        }
    };
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    // Preference order of protocol.md §1: header, subprotocol, (first frame), query.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_owned)
        .or_else(|| {
            offered
                .iter()
                .find_map(|p| p.strip_prefix("bearer."))
                .map(str::to_owned)
        })
        .or_else(|| {
            query
                .ok()
                .and_then(|Query(q)| q.token)
                .filter(|t| !t.is_empty())
        });
    let act_as = acting_user(&headers).map(str::to_owned);
    let max = state.chat.config().limits.max_frame_bytes;
    let mut ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    if offered.iter().any(|p| p == SUBPROTOCOL) {
        ws = ws.protocols([SUBPROTOCOL]);
    }
    // Refused after the upgrade, with a close code, because browsers see
    // close codes but not HTTP statuses (protocol.md §7). Checked before any token
    // work, so a flood costs no signature checks and no storage reads.
    let addr_slot = state.chat.admit_address(peer.ip());
    let shutdown = state.shutdown.clone();
    let tracker = state.tracker.clone();
    ws.on_upgrade(move |mut socket| {
        tracker.track_future(async move {
            let refusal = match addr_slot {
                _ if shutdown.is_cancelled() => Err(CloseCode::Restarting),
                None => Err(CloseCode::TooManyConnections),
                Some(addr_slot) => Ok(addr_slot),
            };
            let addr_slot = match refusal {
                Ok(addr_slot) => addr_slot,
                Err(code) => {
                    let _ = socket.send(close_message(code.code(), code.reason())).await;
                    return;
                }
            };
            let handshake = Handshake {
                token,
                act_as,
                peer: peer.ip(),
                addr_slot,
            };
            session::run(state, socket, dialect, handshake).await;
        })
    })
}

/// `GET /ws/chat`: the same session as `/ws` under the chat consumers' path.
///
/// Everything about `/ws` holds here; the frames are described in
/// docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/chat",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the `/ws` session; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_chat(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    upgrade_at(Unified::new("/ws/chat"), state, peer, headers, query, ws).await
}

/// `GET /ws/chat/`: the same session as `/ws`, with the trailing slash that
/// per-room chat front-ends use (protocol.md §2).
///
/// Everything about `/ws` holds here; the frames are described in
/// docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/chat/",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the `/ws` session; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_chat_slash(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    upgrade_at(Unified::new("/ws/chat/"), state, peer, headers, query, ws).await
}
