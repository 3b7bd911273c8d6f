//! Configuration: one immutable, typed struct built once at start-up.
//!
//! Layers, weakest first (protocol.md §0): built-in defaults, a TOML file, `CONFAB_*`
//! environment variables (`section.key` = `CONFAB_SECTION__KEY`), then
//! command-line flags. Every field is documented here and in
//! `docs/configuration.md`; a test checks the two agree. Duration keys
//! (`_ms`, `_s`) take a number in that unit or a string like `"30s"`
//! (see `config/duration.rs`).

mod commands;
mod dev_login;
mod duration;
mod routes;

pub use commands::{CommandConfig, WebhookConfig};
pub use dev_login::DevLogin;
use dev_login::listens_on_loopback;
pub use routes::{DialectName, RouteConfig};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on; port 0 picks a free one (printed on stdout).
    #[serde(deserialize_with = "scalar_string")]
    pub listen: String,
    /// Folder for the SQLite file, uploads and the generated JWT secret.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; empty means `sqlite://DATA_DIR/confab.db`.
    #[serde(deserialize_with = "scalar_string")]
    pub database_url: String,
    /// Connection pool of the PostgreSQL backend.
    pub database: DatabaseConfig,
    /// `memory`, `redis://…` or `nats://…`.
    #[serde(deserialize_with = "scalar_string")]
    pub broker_url: String,
    /// Prefix of every broker channel or subject: nodes of one cluster share
    /// it; clusters (or tests) sharing a Redis or NATS differ.
    #[serde(deserialize_with = "scalar_string")]
    pub broker_prefix: String,
    /// Milliseconds a node's word that a user is online lasts on the other
    /// nodes; it is repeated every third of this, so a node that dies has its
    /// users go offline elsewhere within this time.
    #[serde(deserialize_with = "duration::millis")]
    pub broker_presence_ttl_ms: u64,
    /// HS256 secret; empty means generated once and kept in `DATA_DIR/jwt_secret`.
    #[serde(deserialize_with = "scalar_string")]
    pub jwt_secret: String,
    /// Server key for trusted back-ends; empty means server-key calls are refused.
    #[serde(deserialize_with = "scalar_string")]
    pub api_key: String,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Per-user rate limits.
    pub rate_limit: RateLimitConfig,
    /// Size limits.
    pub limits: LimitsConfig,
    /// Connection handling.
    pub server: ServerConfig,
    /// The assistant bot of `assistant` rooms.
    pub assistant: AssistantConfig,
    /// `[webhook]`: signing of what confab sends to the app.
    pub webhook: WebhookConfig,
    /// `[[commands]]`: the app's own slash commands.
    pub commands: Vec<CommandConfig>,
}

/// `[database]`: the PostgreSQL connection pool (SQLite ignores it: it has
/// one writing connection and a few readers of its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Most connections one node opens; the writer uses one at a time, reads the rest.
    pub max_connections: u32,
    /// Seconds a request waits for a free connection before failing (`internal`, 503).
    #[serde(deserialize_with = "duration::secs")]
    pub acquire_timeout_s: u64,
}

/// `[auth]`: how connections prove who they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse (close 4002) tokens of users not created ahead of time with the server key.
    pub require_existing_users: bool,
    /// Seconds of clock skew tolerated on `exp` (the contract allows at most 30).
    #[serde(deserialize_with = "duration::secs")]
    pub leeway_s: u64,
    /// Seconds a connection without a handshake token has to send its `auth` frame.
    #[serde(deserialize_with = "duration::secs")]
    pub auth_timeout_s: u64,
    /// Let WebSocket connections without a token in as anonymous visitors
    /// (`anon-…` ids) who may use only `assistant` rooms they own (protocol.md §1).
    pub allow_anonymous: bool,
    /// The app's connect proxy (protocol.md §8.3): a WebSocket handshake
    /// with no token but a cookie is signed in by the app's answer to the
    /// forwarded cookie. Empty: off.
    pub proxy_url: String,
    /// How long the connect proxy has to answer (later: close 1011).
    #[serde(deserialize_with = "duration::secs")]
    pub proxy_timeout_s: u64,
    /// How long the proxy's answer for one cookie is reused (0: asked on
    /// every handshake).
    #[serde(deserialize_with = "duration::secs")]
    pub proxy_cache_s: u64,
    /// The browser client's "pick a name" sign-in (`POST /api/v1/dev/login`),
    /// which hands anyone a token: for trying confab out, never for
    /// production. `auto` turns it on only while confab generated its own
    /// JWT secret and listens on a loopback address.
    pub dev_login: DevLogin,
}

/// `[rate_limit]`: how fast one user (or one address) may act. Every limit
/// is counted per node; cross-node counters come with the shared broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained messages per minute per user, over WebSocket and REST together.
    pub messages_per_minute: u32,
    /// Messages a user may send at once before the sustained rate applies.
    pub burst: u32,
    /// Sustained reaction changes per minute per user.
    pub reactions_per_minute: u32,
    /// Reaction changes a user may make at once.
    pub reaction_burst: u32,
    /// Sustained `typing` broadcasts per minute per user; the rest are coalesced.
    pub typing_per_minute: u32,
    /// `typing` broadcasts a user may cause at once.
    pub typing_burst: u32,
    /// Sustained WebSocket handshakes per minute per client address.
    pub handshakes_per_minute: u32,
    /// WebSocket handshakes an address may make at once.
    pub handshake_burst: u32,
    /// Sustained messages per minute from anonymous visitors, per client
    /// address (every anonymous connection gets a fresh id, so an address is
    /// the only stable key).
    pub anonymous_messages_per_minute: u32,
    /// Messages the anonymous visitors of one address may send at once.
    pub anonymous_burst: u32,
}

/// `[limits]`: sizes of what clients send and receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Characters per message.
    pub max_message_length: usize,
    /// Largest accepted WebSocket frame in bytes (larger closes with 1009).
    pub max_frame_bytes: usize,
    /// Largest `metadata` object in bytes (as JSON).
    pub max_metadata_bytes: usize,
    /// Largest upload in bytes (larger answers 413).
    pub max_upload_bytes: usize,
    /// Largest `since_seq` replay sent after `subscribe_room`; the rest is paged.
    pub max_catch_up: u32,
    /// Deepest nesting of arrays and objects in a client frame (deeper → `invalid_json`).
    pub max_json_depth: usize,
    /// Open WebSockets per user on this node (one more closes with 4029).
    pub max_connections_per_user: usize,
    /// Open WebSockets per client address on this node (one more closes with 4029).
    pub max_connections_per_address: usize,
    /// Open anonymous WebSockets per client address on this node, within
    /// `max_connections_per_address` (one more closes with 4029).
    pub max_anonymous_connections_per_address: usize,
    /// App commands waiting for the app's answer on this node; more are
    /// refused at once (`upstream_error`), so a slow app cannot pile up work.
    pub max_app_commands_in_flight: usize,
}

/// `[server]`: connection handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// How often the server pings each WebSocket, announced in `connection_established`.
    #[serde(deserialize_with = "duration::millis")]
    pub heartbeat_ms: u64,
    /// Frames queued for one connection before it counts as a slow consumer (4008).
    pub outbound_queue_frames: usize,
    /// Bytes queued for one connection before it counts as a slow consumer
    /// (4008): bounds what a stalled reader holds up in memory.
    pub outbound_queue_bytes: usize,
    /// Seconds to wait for connections to drain on shutdown.
    #[serde(deserialize_with = "duration::secs")]
    pub shutdown_grace_s: u64,
    /// How long one write to a WebSocket may block before the peer counts as
    /// a slow consumer (4008), and how long its close frame may take: after
    /// that the socket is shut down whether or not the peer reads.
    #[serde(deserialize_with = "duration::millis")]
    pub write_timeout_ms: u64,
    /// Browser origins allowed to open a WebSocket besides the server's own
    /// host; empty means localhost only, `*` means any.
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
    /// Extra WebSocket paths, each served by one dialect: an app's old
    /// URLs kept working during a migration (`[[server.routes]]`).
    pub routes: Vec<RouteConfig>,
    /// Reverse proxies (addresses or CIDR ranges, IPv4 and IPv6) whose
    /// forwarding header names the client: behind one, every client would
    /// otherwise share the proxy's address in limits and logs. Empty:
    /// trust nobody, use the TCP peer's address.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// Which header the trusted proxies set: the one read, the other
    /// ignored (a proxy passes on whatever a client put in the header it
    /// does not set, so reading both would let clients name themselves).
    pub forwarded_header: ForwardedHeader,
}

/// The header that carries the client's address through trusted proxies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, most load
    /// balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// `[assistant]`: the bot that answers in rooms of type `assistant` through
/// an OpenAI-compatible Chat Completions endpoint (protocol.md §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssistantConfig {
    /// The API's base URL, up to and without `/chat/completions` (e.g.
    /// `https://api.openai.com/v1`); empty means no provider: every reply is
    /// the fallback.
    #[serde(deserialize_with = "scalar_string")]
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when not empty.
    #[serde(deserialize_with = "scalar_string")]
    pub api_key: String,
    /// The `model` of each request.
    #[serde(deserialize_with = "scalar_string")]
    pub model: String,
    /// Sent first, as the `system` message, when not empty.
    #[serde(deserialize_with = "scalar_string")]
    pub system_prompt: String,
    /// Earlier messages of the room sent with each user message (at most 99).
    pub max_history_messages: u32,
    /// Seconds a whole reply may take before the fallback is stored instead.
    #[serde(deserialize_with = "duration::secs")]
    pub timeout_s: u64,
    /// What the bot answers when the provider fails, times out or is not configured.
    #[serde(deserialize_with = "scalar_string")]
    pub fallback_reply: String,
    /// Provider requests in flight at once on this node; more questions
    /// wait their turn (none is dropped).
    pub max_concurrent: usize,
    /// Seconds an assistant session may go without a message before it is
    /// closed (and its visitor token stops resuming it); also how long a
    /// visitor token lasts.
    #[serde(deserialize_with = "duration::secs")]
    pub session_ttl: u64,
    /// The bot's first message in every new session on `/ws/assistant/`
    /// (empty: none).
    #[serde(deserialize_with = "scalar_string")]
    pub welcome: String,
    /// Seconds a question may stay unanswered before any node answers it in
    /// place of the node that stored it (which stopped, or is far behind):
    /// longer than `timeout_s` and the longest wait for a free slot, or two
    /// nodes answer the same question (it is stored once).
    #[serde(deserialize_with = "duration::secs")]
    pub recovery_grace_s: u64,
    /// Seconds between two looks for questions left unanswered (the first is
    /// at start-up).
    #[serde(deserialize_with = "duration::secs")]
    pub recovery_interval_s: u64,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        AssistantConfig {
            base_url: String::new(),
            api_key: String::new(),
            model: "gpt-4o-mini".into(),
            system_prompt: String::new(),
            max_history_messages: 50,
            timeout_s: 30,
            fallback_reply: "Sorry, I cannot answer right now. Please try again in a moment."
                .into(),
            max_concurrent: 8,
            session_ttl: 24 * 3600,
            welcome: String::new(),
            recovery_grace_s: 120,
            recovery_interval_s: 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("confab-data"),
            database_url: String::new(),
            database: DatabaseConfig::default(),
            broker_url: "memory".into(),
            broker_prefix: "confab".into(),
            broker_presence_ttl_ms: 15_000,
            jwt_secret: String::new(),
            api_key: String::new(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            server: ServerConfig::default(),
            assistant: AssistantConfig::default(),
            webhook: WebhookConfig::default(),
            commands: Vec::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 10,
            acquire_timeout_s: 5,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            require_existing_users: false,
            leeway_s: 30,
            auth_timeout_s: 5,
            allow_anonymous: false,
            proxy_url: String::new(),
            proxy_timeout_s: 5,
            proxy_cache_s: 0,
            dev_login: DevLogin::Auto,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            messages_per_minute: 60,
            burst: 10,
            reactions_per_minute: 120,
            reaction_burst: 20,
            typing_per_minute: 60,
            typing_burst: 10,
            handshakes_per_minute: 120,
            handshake_burst: 60,
            anonymous_messages_per_minute: 20,
            anonymous_burst: 5,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_length: 2000,
            max_frame_bytes: 64 * 1024,
            max_metadata_bytes: 8 * 1024,
            max_upload_bytes: 10 * 1024 * 1024,
            max_catch_up: 1000,
            max_json_depth: 32,
            max_connections_per_user: 20,
            max_connections_per_address: 200,
            max_anonymous_connections_per_address: 5,
            max_app_commands_in_flight: 64,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            heartbeat_ms: 25_000,
            outbound_queue_frames: 1024,
            outbound_queue_bytes: 4 << 20,
            shutdown_grace_s: 10,
            write_timeout_ms: 10_000,
            allowed_origins: Vec::new(),
            routes: Vec::new(),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
        }
    }
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer had a bad key or value.
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value parsed but makes no sense.
    #[error("configuration: {0}")]
    Value(String),
    /// The data dir or the secret file could not be used.
    #[error("data dir {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Builds the configuration from every layer: defaults, the TOML file
    /// (`file`, else `./confab.toml` if present), `CONFAB_*` env, then `flags`.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("confab.toml").exists() => {
                figment = figment.merge(Toml::file_exact("confab.toml"))
            }
            None => {}
        }
        let config: Config = figment
            // `CONFAB_TEST_*` belong to the test suite (which backend, which
            // PostgreSQL), not to the server: a `confab` a test starts must
            // not refuse them as unknown keys.
            .merge(
                Env::prefixed("CONFAB_")
                    .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
                    .split("__"),
            )
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Value(format!("listen {:?}: {e}", self.listen)))?;
        if self.limits.max_message_length == 0 {
            return Err(ConfigError::Value(
                "limits.max_message_length must be > 0".into(),
            ));
        }
        if self.server.outbound_queue_frames == 0 {
            return Err(ConfigError::Value(
                "server.outbound_queue_frames must be > 0".into(),
            ));
        }
        if self.assistant.max_history_messages > 99 {
            return Err(ConfigError::Value(
                "assistant.max_history_messages must be at most 99".into(),
            ));
        }
        if self.assistant.session_ttl == 0 {
            return Err(ConfigError::Value(
                "assistant.session_ttl must be > 0".into(),
            ));
        }
        if self.assistant.max_concurrent == 0 {
            return Err(ConfigError::Value(
                "assistant.max_concurrent must be > 0".into(),
            ));
        }
        if self.assistant.timeout_s == 0 {
            return Err(ConfigError::Value("assistant.timeout_s must be > 0".into()));
        }
        let assistant = &self.assistant;
        if assistant.recovery_grace_s <= assistant.timeout_s {
            return Err(ConfigError::Value(format!(
                "assistant.recovery_grace_s ({}) must be longer than assistant.timeout_s ({}): \
                 other nodes must not answer a question its own node may still be answering",
                assistant.recovery_grace_s, assistant.timeout_s
            )));
        }
        if assistant.recovery_grace_s >= assistant.session_ttl {
            return Err(ConfigError::Value(format!(
                "assistant.recovery_grace_s ({}) must be shorter than assistant.session_ttl ({})",
                assistant.recovery_grace_s, assistant.session_ttl
            )));
        }
        if self.assistant.recovery_interval_s == 0 {
            return Err(ConfigError::Value(
                "assistant.recovery_interval_s must be > 0".into(),
            ));
        }
        if self.assistant.fallback_reply.trim().is_empty() {
            return Err(ConfigError::Value(
                "assistant.fallback_reply must not be empty".into(),
            ));
        }
        if self.server.heartbeat_ms < 100 {
            return Err(ConfigError::Value(
                "server.heartbeat_ms must be at least 100".into(),
            ));
        }
        if self.server.write_timeout_ms < 100 {
            return Err(ConfigError::Value(
                "server.write_timeout_ms must be at least 100".into(),
            ));
        }
        for route in &self.server.routes {
            route.validate()?;
        }
        self.trusted_proxy_nets()?;
        commands::validate_commands(&self.commands, &self.webhook)?;
        let proxy = &self.auth.proxy_url;
        if !proxy.is_empty() {
            if !(proxy.starts_with("http://") || proxy.starts_with("https://")) {
                return Err(ConfigError::Value(format!(
                    "auth.proxy_url {proxy:?} must be http:// or https://"
                )));
            }
            if self.webhook.secret.is_empty() {
                return Err(ConfigError::Value(
                    "auth.proxy_url needs webhook.secret: calls to the app are signed with it"
                        .into(),
                ));
            }
            if self.auth.proxy_timeout_s == 0 {
                return Err(ConfigError::Value(
                    "auth.proxy_timeout_s must be > 0".into(),
                ));
            }
        }
        if self.limits.max_app_commands_in_flight == 0 {
            return Err(ConfigError::Value(
                "limits.max_app_commands_in_flight must be > 0".into(),
            ));
        }
        let rates = &self.rate_limit;
        for (key, value) in [
            ("messages_per_minute", rates.messages_per_minute),
            ("burst", rates.burst),
            ("reactions_per_minute", rates.reactions_per_minute),
            ("reaction_burst", rates.reaction_burst),
            ("typing_per_minute", rates.typing_per_minute),
            ("typing_burst", rates.typing_burst),
            ("handshakes_per_minute", rates.handshakes_per_minute),
            ("handshake_burst", rates.handshake_burst),
            (
                "anonymous_messages_per_minute",
                rates.anonymous_messages_per_minute,
            ),
            ("anonymous_burst", rates.anonymous_burst),
        ] {
            if value == 0 {
                return Err(ConfigError::Value(format!("rate_limit.{key} must be > 0")));
            }
        }
        let limits = &self.limits;
        if limits.max_json_depth == 0
            || limits.max_connections_per_user == 0
            || limits.max_connections_per_address == 0
            || limits.max_anonymous_connections_per_address == 0
        {
            return Err(ConfigError::Value(
                "limits.max_json_depth and limits.max_connections_per_* must be > 0".into(),
            ));
        }
        if self.auth.leeway_s > 30 {
            return Err(ConfigError::Value(
                "auth.leeway_s must be at most 30".into(),
            ));
        }
        if self.database.max_connections < 2 {
            return Err(ConfigError::Value(
                "database.max_connections must be at least 2 (the writer and a reader)".into(),
            ));
        }
        if self.database.acquire_timeout_s == 0 {
            return Err(ConfigError::Value(
                "database.acquire_timeout_s must be > 0".into(),
            ));
        }
        let broker_known = self.broker_url == "memory"
            || ["redis://", "rediss://", "nats://", "tls://"]
                .iter()
                .any(|scheme| self.broker_url.starts_with(scheme));
        if !broker_known {
            return Err(ConfigError::Value(format!(
                "broker_url {:?}: expected memory, redis://… or nats://…",
                self.broker_url
            )));
        }
        let prefix_ok = !self.broker_prefix.is_empty()
            && self.broker_prefix.len() <= 64
            && self
                .broker_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !prefix_ok {
            return Err(ConfigError::Value(
                "broker_prefix must be 1–64 characters of A–Z, a–z, 0–9, '-' or '_'".into(),
            ));
        }
        if self.broker_presence_ttl_ms < 300 {
            return Err(ConfigError::Value(
                "broker_presence_ttl_ms must be at least 300".into(),
            ));
        }
        Ok(())
    }

    /// The database URL, defaulting to the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("confab.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// The database URL with any password replaced by `***`, for messages
    /// and logs (`postgres://confab:***@db/confab`).
    pub fn database_url_redacted(&self) -> String {
        let url = self.database_url();
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url;
        };
        let authority_end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |i| scheme_end + i);
        let authority = &url[scheme_end..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &authority[..colon],
                &url[scheme_end + at..]
            ),
            _ => url,
        }
    }

    /// Whether the dev sign-in is served: `on`, or `auto` with a generated
    /// JWT secret and a loopback listen address (`127.0.0.1:8080`,
    /// `[::1]:8080`, `localhost:8080`).
    pub fn dev_login_enabled(&self) -> bool {
        match self.auth.dev_login {
            DevLogin::On => true,
            DevLogin::Off => false,
            DevLogin::Auto => self.jwt_secret.is_empty() && listens_on_loopback(&self.listen),
        }
    }

    /// The JWT secret: the configured one, else the one kept in the data dir,
    /// generated (random, 256 bits) and written there on first use so that
    /// `confab token` and `confab serve` on the same data dir agree.
    pub fn resolve_jwt_secret(&self) -> Result<String, ConfigError> {
        if !self.jwt_secret.is_empty() {
            return Ok(self.jwt_secret.clone());
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ConfigError::Io { path, source }
        };
        std::fs::create_dir_all(&self.data_dir).map_err(io(&self.data_dir))?;
        let path = self.data_dir.join("jwt_secret");
        match std::fs::read_to_string(&path) {
            Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        let bytes: [u8; 32] = rand::random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &secret).map_err(io(&path))?;
        Ok(secret)
    }
}

/// Reads a string key whatever scalar the environment layer made of it:
/// `CONFAB_API_KEY=true` or `CONFAB_JWT_SECRET=12345` are strings to us.
fn scalar_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Bool(bool),
        Int(i64),
        Uint(u64),
        Float(f64),
    }
    Ok(match Scalar::deserialize(deserializer)? {
        Scalar::Text(s) => s,
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Uint(u) => u.to_string(),
        Scalar::Float(f) => f.to_string(),
    })
}

impl Config {
    /// `server.trusted_proxies` as address ranges: `10.0.0.0/8`,
    /// `2001:db8::/32`, or one address (`127.0.0.1`, `::1`, `[::1]`) for
    /// itself alone. An entry that is neither is refused at start-up,
    /// named: a typo must not silently trust nobody, or the wrong hosts.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.server
            .trusted_proxies
            .iter()
            .map(|entry| {
                let text = entry.trim();
                let bare = text
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .unwrap_or(text);
                bare.parse::<ipnet::IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| bare.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Value(format!(
                            "server.trusted_proxies: {entry:?} is neither an IP address nor a \
                             CIDR range (10.0.0.0/8, 2001:db8::/32)"
                        ))
                    })
            })
            .collect()
    }
}

/// Reads a list of strings from a TOML array or from one comma-separated
/// string (`CONFAB_SERVER__ALLOWED_ORIGINS=https://a.example,https://b.example`).
fn string_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(deserializer)? {
        List::One(text) => text.split(',').map(str::to_owned).collect(),
        List::Many(items) => items,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// Writes a file readable only by its owner (where the OS has such modes).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => file.write_all(contents.as_bytes()),
        // Another process (say `confab token` beside `confab serve`) won the race:
        // its secret is the one to keep.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
