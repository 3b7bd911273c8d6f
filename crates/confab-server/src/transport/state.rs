//! What every handler and WebSocket session shares. It lives in transport,
//! below [`crate::app`] (which builds it) so that the two do not import each
//! other.

use crate::core::Chat;
use crate::transport::client_addr::TrustedProxies;
use crate::transport::origin::OriginPolicy;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every handler shares: the chat service and the shutdown machinery.
#[derive(Clone)]
pub struct AppState {
    /// The chat service.
    pub chat: Arc<Chat>,
    /// Cancelled when the server stops; every connection selects on it.
    pub shutdown: CancellationToken,
    /// Every WebSocket session, awaited on shutdown (axum's graceful shutdown
    /// does not wait for upgraded connections).
    pub tracker: TaskTracker,
    /// Which browser origins may open a WebSocket.
    pub origins: OriginPolicy,
    /// Which peers may name the client's address (`server.trusted_proxies`).
    pub proxies: Arc<TrustedProxies>,
}
