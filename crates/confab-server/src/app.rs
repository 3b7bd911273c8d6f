//! Building the server from a [`Config`] and serving it on a listener until a
//! shutdown future resolves. No globals: a test binds `127.0.0.1:0`, builds an
//! [`App`] and serves it in a task.

use crate::auth::Authenticator;
use crate::broker::BrokerError;
use crate::config::{Config, ConfigError};
use crate::core::Chat;
use crate::core::cluster::Cluster;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::postgres::{PgPoolSettings, PgStore, is_postgres_url};
use crate::store::sqlite::SqliteStore;
use crate::store::{DynStore, Store, StoreError};
use crate::tasks::Background;
use crate::transport::client_addr::TrustedProxies;
use crate::transport::origin::OriginPolicy;
use crate::transport::state::AppState;
use axum::serve::ListenerExt;
use confab_protocol::CloseCode;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The broker could not be reached.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The routes could not be built (a configured route clashes, or the
    /// OpenAPI document could not be serialized).
    #[error(transparent)]
    Routes(#[from] crate::transport::RouterError),
}

/// A built server, ready to serve.
pub struct App {
    state: AppState,
    /// Broker loops, cluster tasks, timers, the assistant: stopped after
    /// the sessions, before storage closes.
    background: Background,
}

/// Opens (and migrates) the configured storage backend: `sqlite:` URLs (and
/// the default) select SQLite, `postgres://` and `postgresql://` PostgreSQL.
pub async fn open_store(config: &Config) -> Result<DynStore, StartError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(&url).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else if is_postgres_url(&url) {
        let settings = PgPoolSettings {
            max_connections: config.database.max_connections,
            acquire_timeout: Duration::from_secs(config.database.acquire_timeout_s),
        };
        let store = PgStore::open(&url, settings).await?;
        if let Err(e) = store.migrate().await {
            store.close().await;
            return Err(e.into());
        }
        Ok(Arc::new(store))
    } else {
        Err(ConfigError::Value(format!(
            "database_url {:?}: expected sqlite://PATH or postgres://…",
            config.database_url_redacted()
        ))
        .into())
    }
}

impl App {
    /// Opens storage (running migrations), resolves the JWT secret and wires
    /// core, hub and transport together.
    pub async fn build(config: Config) -> Result<App, StartError> {
        let secret = config.resolve_jwt_secret()?;
        let store = open_store(&config).await?;
        store.record_events(config.webhook.event_set());
        let auth = Authenticator::new(&secret, &config.api_key, config.auth.leeway_s);
        let metrics = Arc::new(Metrics::new(store.commit_histograms()));
        let hub = Arc::new(Hub::new(
            config.server.outbound_queue_frames,
            metrics.deliveries.clone(),
        ));
        let background = Background::new();
        let (inbound_tx, inbound) = tokio::sync::mpsc::channel(crate::broker::INBOUND_QUEUE);
        let broker = crate::broker::connect(
            &config.broker_url,
            &config.broker_prefix,
            inbound_tx,
            metrics.broker.publish_errors.clone(),
            &background,
        )
        .await?;
        let presence_ttl = std::time::Duration::from_millis(config.broker_presence_ttl_ms);
        let cluster = Cluster::new(
            hub.clone(),
            store.clone(),
            broker,
            presence_ttl,
            metrics.broker.clone(),
            background.clone(),
        );
        cluster.spawn_inbound(inbound);
        cluster.spawn_presence();
        cluster.listen_for_users().await;
        let (asker, questions) = crate::core::assistant::channel();
        let chat = Arc::new(Chat::new(store, cluster, auth, config, metrics, asker));
        let shutdown = CancellationToken::new();
        background.spawn(crate::core::assistant::run(
            chat.clone(),
            questions,
            background.clone(),
        ));
        background.spawn(crate::core::sessions::sweep(
            chat.clone(),
            background.clone(),
        ));
        background.spawn(crate::core::webhooks::run(chat.clone(), background.clone()));
        let proxies = Arc::new(TrustedProxies::new(chat.config())?);
        Ok(App {
            background,
            state: AppState {
                proxies,
                origins: OriginPolicy::new(&chat.config().server.allowed_origins),
                chat,
                shutdown,
                tracker: TaskTracker::new(),
            },
        })
    }

    /// The shared state (tests use it to reach the hub and store directly).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes every
    /// WebSocket with 1012 after its queued frames, waits for the sessions
    /// (at most `server.shutdown_grace_s`), and closes storage.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let state = self.state.clone();
        let token = state.shutdown.clone();
        let router = crate::transport::router(state.clone())?;
        let signal = {
            let token = token.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = token.cancelled() => {}
                }
                token.cancel();
            }
        };
        self.background
            .spawn(collect_limiter_garbage(state.chat.clone(), token.clone()));
        // Frames are small and every writer already gathers what is queued
        // into one write per flush: Nagle's algorithm would only hold the
        // next flush back until the peer acknowledged the last one.
        //
        // TCP_USER_TIMEOUT bounds how long the kernel keeps a connection
        // whose sent data goes unacknowledged or unsent behind a closed
        // receive window: a client that never reads is dropped by the kernel
        // too, not only by its writer (which shuts it after
        // `server.write_timeout_ms`), so its unsent bytes are not pinned in
        // kernel memory after the socket is closed. Twice the write timeout
        // leaves the writer the first word (its 4008 is counted).
        let user_timeout = Duration::from_millis(
            state
                .chat
                .config()
                .server
                .write_timeout_ms
                .saturating_mul(2),
        );
        let listener = listener.tap_io(move |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
            set_user_timeout(tcp, user_timeout);
        });
        // The peer address feeds the per-address limits (through
        // `transport::client_addr`, which may read a trusted proxy's header).
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        token.cancel();
        state.chat.close_all_connections(CloseCode::Restarting);
        state.tracker.close();
        let grace = Duration::from_secs(state.chat.config().server.shutdown_grace_s);
        if tokio::time::timeout(grace, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within the grace period");
        }
        // The sessions' departures went out through these tasks; now they
        // stop too, so nothing runs on a closed store.
        if !self.background.stop(grace).await {
            tracing::warn!("some background tasks did not stop within the grace period");
        }
        state.chat.close_storage().await;
        served?;
        Ok(())
    }
}

/// Sets TCP_USER_TIMEOUT where the system has it (Linux); elsewhere the
/// writer's own timeout is the only bound.
fn set_user_timeout(tcp: &tokio::net::TcpStream, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(error) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(%error, "TCP_USER_TIMEOUT not set");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, timeout);
}

/// How often rate-limit entries that are back to a fresh state are dropped.
const LIMITER_GC_PERIOD: Duration = Duration::from_secs(60);

/// Keeps the keyed rate limiters as small as the set of recently active
/// users and addresses, until the server stops.
async fn collect_limiter_garbage(chat: Arc<Chat>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(LIMITER_GC_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => chat.collect_limiter_garbage(),
            () = stop.cancelled() => return,
        }
    }
}

/// `confab migrate`: opens storage, applies migrations, closes.
pub async fn migrate(config: &Config) -> Result<(), StartError> {
    let store = open_store(config).await?;
    store.close().await;
    Ok(())
}
