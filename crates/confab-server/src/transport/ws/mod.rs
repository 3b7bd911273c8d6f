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
//! - [`scoped`]: the room-scoped dialects of `/ws/chat/{room_id}/` and
//!   `/ws/sessions/{room_id}/` (protocol.md §3).
//! - [`assistant`]: the help-desk dialect of `/ws/assistant/` (protocol.md §3.4).

pub mod assistant;
pub mod dialect;
pub mod scoped;
pub mod session;
pub mod unified;
mod writer;

use crate::auth::bearer;
use crate::config::{DialectName, RouteConfig};
use crate::core::live::Replay;
use crate::transport::state::AppState;
use assistant::AssistantSession;
use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use confab_protocol::ErrorCode;
use dialect::Dialect;
use scoped::{ChatShape, RoomScoped, SessionsShape, Shape};
use serde::Deserialize;
use session::Handshake;
use std::net::IpAddr;
use unified::Unified;

use super::client_addr::ClientAddr;
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

/// What every WebSocket upgrade takes from its request, whatever its
/// path: the shared state, the client's address ([`ClientAddr`]: the peer's,
/// or a trusted proxy's word for it), the headers (origin, credentials) and
/// the upgrade itself (a request that is not one is answered 400 by
/// [`Upgrade::run`]).
pub struct Upgrade {
    state: AppState,
    client: IpAddr,
    path: String,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
}

impl FromRequestParts<AppState> for Upgrade {
    /// Only the peer address can be missing, and only if the server was
    /// started without connect info: a bug, answered 500.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, state).await?;
        let ws = WebSocketUpgrade::from_request_parts(parts, state).await;
        Ok(Upgrade {
            state: state.clone(),
            client,
            path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            ws,
        })
    }
}

/// A handshake's cookie and what goes with it to the connect proxy
/// (protocol.md §8.3).
#[derive(Debug, Clone)]
pub(super) struct Cookie {
    /// Every `Cookie` header, joined as one.
    pub cookie: String,
    /// `Origin`, if any.
    pub origin: Option<String>,
    /// `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// The path the socket was opened on.
    pub path: String,
}

impl Cookie {
    /// The handshake's cookie, if it has one (a handshake without a cookie
    /// has nothing for the app to recognise).
    fn of(headers: &HeaderMap, path: String) -> Option<Cookie> {
        let cookies: Vec<&str> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
            .collect();
        if cookies.is_empty() {
            return None;
        }
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Some(Cookie {
            cookie: cookies.join("; "),
            origin: text(header::ORIGIN),
            user_agent: text(header::USER_AGENT),
            path,
        })
    }
}

/// `GET /ws`: the unified WebSocket session (protocol.md §2).
///
/// Checks the origin (403 unless `server.allowed_origins` allows it),
/// upgrades, applies the per-address handshake rate and connection cap
/// (close 4029), then authenticates (handshake token, or an `auth` first
/// frame within 5 s) and runs the session. The frames spoken after the `101` are
/// described in docs/protocol.md, not here. A token may come as
/// `Authorization: Bearer T`, as the subprotocol `bearer.T` next to
/// `confab.v1`, in the first frame, or as `?token=T`; with
/// `auth.proxy_url`, a handshake with no token but the app's session cookie
/// is signed in by the app (docs/protocol.md §8.3). A refused credential
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
pub async fn upgrade(request: Upgrade, query: Result<Query<WsQuery>, QueryRejection>) -> Response {
    request.run(Unified::new("/ws"), query_token(query)).await
}

/// The `?token=` of a unified upgrade (a malformed query carries none).
fn query_token(query: Result<Query<WsQuery>, QueryRejection>) -> Option<String> {
    query.ok().and_then(|Query(q)| q.token)
}

impl Upgrade {
    /// The upgrade behind every WebSocket path, whatever its dialect: the
    /// origin check, the token's placement, the per-address rate and cap;
    /// then the session engine runs the dialect.
    async fn run<D: Dialect>(self, dialect: D, query_token: Option<String>) -> Response {
        let Upgrade {
            state,
            client,
            path,
            headers,
            ws,
        } = self;
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
            .or_else(|| query_token.filter(|t| !t.is_empty()));
        let act_as = acting_user(&headers).map(str::to_owned);
        // What the app's connect proxy is shown of a handshake with no token.
        let cookie = (token.is_none() && state.chat.has_connect_proxy())
            .then(|| Cookie::of(&headers, path))
            .flatten();
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
        let addr_slot = state.chat.admit_address(client);
        let tracker = state.tracker.clone();
        ws.on_upgrade(move |socket| {
            let handshake = Handshake {
                token,
                act_as,
                cookie,
                client,
                addr_slot,
            };
            tracker.track_future(session::run(state, socket, dialect, handshake))
        })
    }
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
    request: Upgrade,
    query: Result<Query<WsQuery>, QueryRejection>,
) -> Response {
    request
        .run(Unified::new("/ws/chat"), query_token(query))
        .await
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
    request: Upgrade,
    query: Result<Query<WsQuery>, QueryRejection>,
) -> Response {
    request
        .run(Unified::new("/ws/chat/"), query_token(query))
        .await
}

/// The WebSocket paths built in, against which configured routes are
/// checked for clashes.
const BUILT_IN_PATHS: [&str; 6] = [
    "/ws",
    "/ws/chat",
    "/ws/chat/",
    CHAT_ROOM_PATH,
    SESSION_PATH,
    assistant::PATH,
];
/// The job-conversations endpoint.
const CHAT_ROOM_PATH: &str = "/ws/chat/{room_id}/";
/// The sessions endpoint.
const SESSION_PATH: &str = "/ws/sessions/{room_id}/";

/// Query parameters of a room-scoped upgrade.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopedQuery {
    /// The JWT (these front-ends put it in the URL).
    token: Option<String>,
    /// Replay the newest this many messages on connect (at most
    /// `limits.max_catch_up`), as ordinary message frames, oldest first.
    history: Option<u32>,
    /// Replay every message after this `seq` on connect (the `seq` of the
    /// last message the client saw), as on `/ws`.
    since_seq: Option<i64>,
}

/// The upgrade of a room-scoped dialect: its query read, then as any other.
async fn upgrade_scoped<S: Shape>(
    endpoint: &'static str,
    request: Upgrade,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<ScopedQuery>, QueryRejection>,
) -> Response {
    let bad = |message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message).into_response()
    };
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad(rejection.body_text()),
    };
    let replay = match (query.history, query.since_seq) {
        (None, None) => Replay::Nothing,
        (Some(n), None) => Replay::Latest(n),
        (None, Some(seq)) if seq >= 0 => Replay::Since(seq),
        (None, Some(_)) => return bad("since_seq must be ≥ 0".into()),
        (Some(_), Some(_)) => return bad("give history or since_seq, not both".into()),
    };
    // A room id that cannot be read (bad percent-encoding) names no room,
    // which is refused with 4004 like any unknown room.
    let room_id = room.map(|Path(room_id)| room_id).unwrap_or_default();
    let dialect = RoomScoped::<S>::new(endpoint, room_id, replay);
    request.run(dialect, query.token).await
}

/// `GET /ws/chat/{room_id}/`: the job-conversations socket (protocol.md §3).
///
/// One room per connection. The token comes as `?token=` (or any other
/// placement of `/ws`); refusals close the socket after the upgrade: 4001
/// no token, 4002 user disabled or unknown, 4003 bad or expired token,
/// 4004 not a member or no such room. The frames are described in
/// docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/chat/{room_id}/",
    tag = "websocket",
    params(
        ("room_id" = String, Path, description = "The room (the app's conversation id)"),
        ScopedQuery,
    ),
    responses(
        (status = 101, description = "Switching Protocols: the job-conversations dialect; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade, or a bad query", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security(("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_chat_room(
    request: Upgrade,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<ScopedQuery>, QueryRejection>,
) -> Response {
    upgrade_scoped::<ChatShape>(CHAT_ROOM_PATH, request, room, query).await
}

/// `GET /ws/sessions/{room_id}/`: the sessions socket (protocol.md §3).
///
/// One room per connection, token as `?token=`; refusals as on
/// `/ws/chat/{room_id}/` (4001–4004). The frames are described in
/// docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/sessions/{room_id}/",
    tag = "websocket",
    params(
        ("room_id" = String, Path, description = "The room (the app's session id)"),
        ScopedQuery,
    ),
    responses(
        (status = 101, description = "Switching Protocols: the sessions dialect; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade, or a bad query", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security(("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_session(
    request: Upgrade,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<ScopedQuery>, QueryRejection>,
) -> Response {
    upgrade_scoped::<SessionsShape>(SESSION_PATH, request, room, query).await
}

/// `GET /ws/assistant/`: the AI help-desk socket (protocol.md §3.4).
///
/// Signed-in users (any token placement) and, with `auth.allow_anonymous`,
/// anonymous visitors, who may come back with the `visitor_token` of an
/// earlier `session_started` (as `?token=`). The connection starts in the
/// caller's session (`session_started`, then its history or the welcome).
/// Refusals close the socket after the upgrade: 4001 no token (anonymous
/// access off), 4002 user disabled, 4003 bad or expired token. The frames
/// are described in docs/protocol.md.
#[utoipa::path(
    get,
    path = "/ws/assistant/",
    tag = "websocket",
    params(
        WsQuery,
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`confab.v1, bearer.T` (browsers)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the help-desk dialect; see docs/protocol.md"),
        (status = 400, description = "`invalid_field`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed (server.allowed_origins)", body = ErrorBody),
    ),
    security((), ("bearer_jwt" = []), ("server_key" = [], "acting_user" = [])),
)]
pub async fn upgrade_assistant(
    request: Upgrade,
    query: Result<Query<WsQuery>, QueryRejection>,
) -> Response {
    request
        .run(AssistantSession::new(), query_token(query))
        .await
}

/// Checks the configured routes against the built-in WebSocket paths and
/// each other, with the router axum uses (which would panic on a clash).
pub fn check_routes(routes: &[RouteConfig]) -> Result<(), String> {
    let mut paths = matchit::Router::new();
    for path in BUILT_IN_PATHS {
        paths
            .insert(path, ())
            .map_err(|e| format!("built-in path {path}: {e}"))?;
    }
    for route in routes {
        paths
            .insert(route.path.as_str(), ())
            .map_err(|e| format!("path {:?}: {e}", route.path))?;
    }
    Ok(())
}

/// The handler of one configured route: its dialect's upgrade, labelled
/// with the route's path in `/metrics`.
pub fn configured(route: &RouteConfig) -> MethodRouter<AppState> {
    // Labels are `'static`; a configured route lives as long as the server.
    let endpoint: &'static str = Box::leak(route.path.clone().into_boxed_str());
    match route.dialect {
        DialectName::Unified => get(
            move |request: Upgrade, query: Result<Query<WsQuery>, QueryRejection>| {
                request.run(Unified::new(endpoint), query_token(query))
            },
        ),
        DialectName::Chat => scoped_route::<ChatShape>(endpoint),
        DialectName::Sessions => scoped_route::<SessionsShape>(endpoint),
    }
}

/// A configured route of a room-scoped dialect.
fn scoped_route<S: Shape>(endpoint: &'static str) -> MethodRouter<AppState> {
    get(
        move |request: Upgrade,
              room: Result<Path<String>, PathRejection>,
              query: Result<Query<ScopedQuery>, QueryRejection>| {
            upgrade_scoped::<S>(endpoint, request, room, query)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> RouteConfig {
        RouteConfig {
            path: path.into(),
            dialect: DialectName::Chat,
        }
    }

    #[test]
    fn configured_routes_may_not_clash_with_built_in_ones_or_each_other() {
        assert!(
            check_routes(&[route("/ws/job_chat/{room_id}/"), route("/ws/x/{room_id}")]).is_ok()
        );
        let clash = check_routes(&[route("/ws/chat/{room_id}/")]).unwrap_err();
        assert!(clash.contains("/ws/chat/{room_id}/"), "{clash}");
        assert!(check_routes(&[route("/ws/a/{room_id}/"), route("/ws/a/{room_id}/")]).is_err());
    }
}
