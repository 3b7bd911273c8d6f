//! What `GET /metrics` reports, in the Prometheus (OpenMetrics) text format.
//!
//! One [`Metrics`] per [`crate::App`], with its own registry: several servers
//! in one process (the tests start many) never mix their numbers, and there
//! is no global recorder to install. Every series is created here, at start,
//! and the parts of the server that update them hold clones of the handles
//! (a counter or gauge is an `Arc` around an atomic): the hot paths do one
//! atomic add, take no lock and allocate nothing. A fan-out adds its
//! deliveries at once (`inc_by`), not one per recipient. Histograms take a
//! short uncontended lock per observation, so they are observed once per
//! fan-out and once per store batch, never per recipient.
//!
//! The series, their labels and meanings are listed in docs/metrics.md.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label pair per series: the label sets here are fixed at start.
type Labels = Vec<(&'static str, &'static str)>;

/// The WebSocket paths, as the `endpoint` label of open connections.
pub const WS_ENDPOINTS: [&str; 6] = [
    "/ws",
    "/ws/chat",
    "/ws/chat/",
    "/ws/chat/{room_id}/",
    "/ws/sessions/{room_id}/",
    "/ws/assistant/",
];

/// The kinds of rate-limit refusal, as the `kind` label.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    /// `send_message` over the per-user rate (`rate_limited`).
    pub message: Counter,
    /// Reactions over the per-user rate (`rate_limited`).
    pub reaction: Counter,
    /// `typing` over the per-user rate: coalesced, not answered with an error.
    pub typing: Counter,
    /// WebSocket handshakes over the per-address rate (close 4029).
    pub handshake: Counter,
    /// A user's connections over `limits.max_connections_per_user` (4029).
    pub user_connections: Counter,
    /// An address's connections over `limits.max_connections_per_address` (4029).
    pub address_connections: Counter,
    /// Anonymous sends over their per-user rate (`rate_limited`).
    pub anonymous_message: Counter,
    /// Anonymous connections over their per-address cap (4029).
    pub anonymous_connections: Counter,
}

/// Broker traffic of this node, counted by the cluster and the broker clients.
#[derive(Clone, Debug, Default)]
pub struct BrokerCounters {
    /// Room events handed to the broker client for the other nodes.
    pub published: Counter,
    /// Room events received from other nodes (own echoes excluded).
    pub received: Counter,
    /// Publishes dropped (queue full, broker refused or unreachable).
    pub publish_errors: Counter,
    /// Received payloads that could not be decoded.
    pub receive_errors: Counter,
    /// Room topics that could not be subscribed when first wanted.
    pub subscribe_errors: Counter,
}

/// The assistant bot's requests to its provider (protocol.md §6).
#[derive(Clone, Debug, Default)]
pub struct AssistantCounters {
    /// Replies the provider streamed to the end.
    pub ok: Counter,
    /// Requests that failed: refused, unreachable, an unreadable or empty answer.
    pub error: Counter,
    /// Requests cut off by `assistant.timeout_s`.
    pub timeout: Counter,
    /// Replies stored as the fallback text (`metadata.fallback: true`),
    /// including those for which no provider is configured.
    pub fallbacks: Counter,
    /// Questions this node answered because they were left unanswered past
    /// `assistant.recovery_grace_s` (their node stopped, or is far behind).
    pub recovered: Counter,
}

/// Calls of app commands to the app's back-end (protocol.md §8.2).
#[derive(Clone, Debug, Default)]
pub struct AppCommandCounters {
    /// The app answered 2xx with a readable answer.
    pub ok: Counter,
    /// The app answered an error status or bad JSON, or could not be reached.
    pub error: Counter,
    /// The app did not answer within the command's `timeout_s`.
    pub timeout: Counter,
    /// Refused at once: `limits.max_app_commands_in_flight` calls were waiting.
    pub busy: Counter,
}

/// Webhook deliveries and the outbox they come from (protocol.md §8.1).
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    /// Attempts the receiver answered 2xx.
    pub delivered: Counter,
    /// Attempts that failed and will be tried again.
    pub retried: Counter,
    /// Attempts that failed for the last time (`webhook.max_attempts`).
    pub failed: Counter,
    /// Events dropped for being older than `webhook.max_age_s`.
    pub dropped_age: Counter,
    /// Events dropped beyond `webhook.max_pending`.
    pub dropped_cap: Counter,
    /// Events waiting to be delivered, as last counted.
    pub pending: Gauge,
    /// Age of the oldest of them, in seconds, as last counted.
    pub oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// Creates and registers the webhook series.
fn register_webhooks(registry: &mut Registry) -> WebhookMetrics {
    let deliveries = Family::<Labels, Counter>::default();
    let outcome = |o: &'static str| deliveries.get_or_create_owned(&vec![("outcome", o)]);
    let dropped = Family::<Labels, Counter>::default();
    let reason = |r: &'static str| dropped.get_or_create_owned(&vec![("reason", r)]);
    let metrics = WebhookMetrics {
        delivered: outcome("delivered"),
        retried: outcome("retried"),
        failed: outcome("failed"),
        dropped_age: reason("age"),
        dropped_cap: reason("cap"),
        ..WebhookMetrics::default()
    };
    registry.register(
        "webhook_deliveries",
        "Attempts to deliver webhook events, by outcome (delivered, retried, failed)",
        deliveries,
    );
    registry.register(
        "webhook_dropped",
        "Webhook events dropped from the outbox, by reason (age, cap)",
        dropped,
    );
    registry.register(
        "webhook_outbox_pending",
        "Webhook events waiting to be delivered",
        metrics.pending.clone(),
    );
    registry.register_with_unit(
        "webhook_outbox_oldest",
        "Age of the oldest webhook event waiting to be delivered",
        Unit::Seconds,
        metrics.oldest_seconds.clone(),
    );
    metrics
}

/// The store's writer: one observation per committed batch.
#[derive(Clone, Debug)]
pub struct StoreHistograms {
    /// From the batch's first statement to its commit, in seconds.
    pub commit_seconds: Histogram,
    /// Write jobs committed together (group commit at work).
    pub batch_size: Histogram,
}

impl StoreHistograms {
    /// Records one committed batch of `jobs` jobs that took `elapsed`.
    pub fn observe(&self, jobs: usize, elapsed: Duration) {
        self.commit_seconds.observe(elapsed.as_secs_f64());
        self.batch_size.observe(jobs as f64);
    }
}

impl Default for StoreHistograms {
    fn default() -> Self {
        StoreHistograms {
            // 100 µs … ~1.6 s
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            // 1 … 512
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        }
    }
}

/// Every series of one server.
pub struct Metrics {
    registry: Registry,
    connections: Family<Labels, Gauge>,
    /// Messages stored (duplicates of a `client_msg_id` excluded).
    pub messages_stored: Counter,
    /// Frames queued to connections by fan-out (room events, presence,
    /// per-user notices); a session's own replies are not counted.
    pub deliveries: Counter,
    /// From a message's commit hook starting (right after its commit) to its
    /// `new_message` being queued to every local recipient and the broker.
    pub fanout_seconds: Histogram,
    /// Connections closed with 4008 because their outbox overflowed.
    pub slow_consumer_closes: Counter,
    /// Connections closed with 4008 because two pings went unanswered.
    pub heartbeat_closes: Counter,
    /// Rate-limit and connection-cap refusals, by kind.
    pub refusals: Refusals,
    /// Broker traffic.
    pub broker: BrokerCounters,
    /// The store writer's batches.
    pub store: StoreHistograms,
    /// The assistant bot's provider requests and fallbacks.
    pub assistant: AssistantCounters,
    /// App commands' calls to the app, by outcome.
    pub app_commands: AppCommandCounters,
    /// Webhook deliveries and the outbox.
    pub webhooks: WebhookMetrics,
}

impl Metrics {
    /// Creates and registers every series (all start at zero, so a scrape
    /// shows each one before anything happened). `store` are the histograms
    /// the store's writer observes.
    pub fn new(store: StoreHistograms) -> Self {
        let mut registry = Registry::with_prefix("confab");
        let connections = Family::<Labels, Gauge>::default();
        for endpoint in WS_ENDPOINTS {
            let _ = connections.get_or_create(&vec![("endpoint", endpoint)]);
        }
        registry.register(
            "ws_connections",
            "Open authenticated WebSocket sessions, by upgrade path",
            connections.clone(),
        );
        let messages_stored = Counter::default();
        registry.register(
            "messages_stored",
            "Messages stored (client_msg_id duplicates excluded)",
            messages_stored.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Frames queued to connections by fan-out (room events, presence, per-user notices)",
            deliveries.clone(),
        );
        // 10 µs … ~80 ms
        let fanout_seconds = Histogram::new(exponential_buckets(0.00001, 2.0, 14));
        registry.register_with_unit(
            "fanout",
            "From a message's commit to its new_message queued to every local recipient and the broker",
            Unit::Seconds,
            fanout_seconds.clone(),
        );
        let slow_consumer_closes = Counter::default();
        registry.register(
            "slow_consumer_closes",
            "Connections closed with 4008 because their outbound queue overflowed",
            slow_consumer_closes.clone(),
        );
        let heartbeat_closes = Counter::default();
        registry.register(
            "heartbeat_closes",
            "Connections closed with 4008 because two pings went unanswered",
            heartbeat_closes.clone(),
        );

        let by_kind = Family::<Labels, Counter>::default();
        let kind = |k: &'static str| by_kind.get_or_create_owned(&vec![("kind", k)]);
        let refusals = Refusals {
            message: kind("message"),
            reaction: kind("reaction"),
            typing: kind("typing"),
            handshake: kind("handshake"),
            user_connections: kind("user_connections"),
            address_connections: kind("address_connections"),
            anonymous_message: kind("anonymous_message"),
            anonymous_connections: kind("anonymous_connections"),
        };
        registry.register(
            "rate_limit_refusals",
            "Requests refused by a rate limit or connection cap, by kind",
            by_kind,
        );

        let events = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let broker = BrokerCounters {
            published: events.get_or_create_owned(&vec![("direction", "publish")]),
            received: events.get_or_create_owned(&vec![("direction", "receive")]),
            publish_errors: errors.get_or_create_owned(&vec![("op", "publish")]),
            receive_errors: errors.get_or_create_owned(&vec![("op", "receive")]),
            subscribe_errors: errors.get_or_create_owned(&vec![("op", "subscribe")]),
        };
        registry.register(
            "broker_events",
            "Events (room and user-targeted) published to / received from the broker",
            events,
        );
        registry.register(
            "broker_errors",
            "Broker publishes dropped, undecodable payloads, failed subscriptions",
            errors,
        );

        registry.register_with_unit(
            "store_commit",
            "Store writer batches: first statement to commit",
            Unit::Seconds,
            store.commit_seconds.clone(),
        );
        registry.register(
            "store_batch_size",
            "Write jobs committed in one store transaction",
            store.batch_size.clone(),
        );

        let requests = Family::<Labels, Counter>::default();
        let outcome = |o: &'static str| requests.get_or_create_owned(&vec![("outcome", o)]);
        let assistant = AssistantCounters {
            ok: outcome("ok"),
            error: outcome("error"),
            timeout: outcome("timeout"),
            fallbacks: Counter::default(),
            recovered: Counter::default(),
        };
        registry.register(
            "assistant_requests",
            "Requests of the assistant bot to its Chat Completions provider, by outcome",
            requests,
        );
        registry.register(
            "assistant_fallbacks",
            "Assistant replies stored as the configured fallback text",
            assistant.fallbacks.clone(),
        );
        registry.register(
            "assistant_recovered",
            "Questions to the assistant answered after they were left unanswered past the grace",
            assistant.recovered.clone(),
        );

        let calls = Family::<Labels, Counter>::default();
        let outcome = |o: &'static str| calls.get_or_create_owned(&vec![("outcome", o)]);
        let app_commands = AppCommandCounters {
            ok: outcome("ok"),
            error: outcome("error"),
            timeout: outcome("timeout"),
            busy: outcome("busy"),
        };
        registry.register(
            "app_command_calls",
            "Calls of app commands to the app's back-end, by outcome",
            calls,
        );

        let webhooks = register_webhooks(&mut registry);

        Metrics {
            registry,
            connections,
            messages_stored,
            deliveries,
            fanout_seconds,
            slow_consumer_closes,
            heartbeat_closes,
            refusals,
            broker,
            store,
            assistant,
            app_commands,
            webhooks,
        }
    }

    /// The gauge of open sessions on one of [`WS_ENDPOINTS`].
    pub fn connections(&self, endpoint: &'static str) -> Gauge {
        self.connections
            .get_or_create_owned(&vec![("endpoint", endpoint)])
    }

    /// The text exposition of every series, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
