//! Fan-out between nodes: a publish/subscribe bus that carries already
//! serialized room events from the node that produced them to every other
//! node with local subscribers.
//!
//! The broker is only a bus: it never decides who gets what (that is the
//! hub, on each node) and it is never the truth (that is the store). A lost
//! broker message is repaired by the receiving node's reorder stage, which
//! fetches a missing seq from the store, or by the client's `since_seq`.
//!
//! - [`memory`]: one node, no network (no broker at all).
//! - [`redis`]: Redis pub/sub, one channel per topic.
//! - [`nats`]: core NATS subjects, one subject per topic.
//!
//! Topics are per room (`room.<id>`) plus one for user-targeted events
//! (`users`, which every node reads), under a
//! prefix (`broker_prefix`) so that several clusters, or parallel tests, can
//! share one Redis or NATS.

pub mod envelope;
pub mod memory;
pub mod nats;
pub mod redis;

pub use envelope::Envelope;

use crate::tasks::Background;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Inbound messages queued from the broker to the node, before they are
/// dropped (the reorder stage or `since_seq` repairs what is dropped).
pub const INBOUND_QUEUE: usize = 65_536;
/// Outbound publishes queued to the broker client.
pub const OUTBOUND_QUEUE: usize = 65_536;
/// Longest wait between reconnect attempts.
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// One message received from the broker: the topic (without prefix) and
/// the payload as published.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The topic, e.g. `room.lobby`.
    pub topic: String,
    /// The published bytes (an [`Envelope`]).
    pub payload: Bytes,
}

/// Why a broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The URL names no broker this build knows.
    #[error("broker_url {0:?}: expected memory, redis://… or nats://…")]
    UnknownScheme(String),
    /// Connecting or talking to the broker failed.
    #[error("broker: {0}")]
    Io(String),
}

/// A publish/subscribe bus between nodes. Publishing never blocks (it
/// queues); subscribing waits until the broker confirmed, so that a caller
/// knows events published afterwards will reach it.
#[async_trait::async_trait]
pub trait Broker: Send + Sync {
    /// Queues `payload` for every node subscribed to `topic`. Never blocks: on
    /// a full queue or a broken connection the message is dropped (logged).
    fn publish(&self, topic: &str, payload: Bytes);
    /// Starts receiving `topic`. Kept across reconnects until
    /// [`Broker::unsubscribe`].
    async fn subscribe(&self, topic: &str) -> Result<(), BrokerError>;
    /// Stops receiving `topic`.
    async fn unsubscribe(&self, topic: &str) -> Result<(), BrokerError>;
    /// Whether the broker is connected right now (`/readyz`).
    fn is_ready(&self) -> bool;
}

/// The broker handle a node holds; `None` for `memory`.
pub type DynBroker = Arc<dyn Broker>;

/// Connects to the broker named by `url` (`memory` → `None`), delivering
/// what it receives into `inbound`. `prefix` namespaces every topic;
/// `publish_errors` counts the publishes dropped (for `/metrics`); the
/// client's loops run as `tasks`.
pub async fn connect(
    url: &str,
    prefix: &str,
    inbound: mpsc::Sender<Inbound>,
    publish_errors: prometheus_client::metrics::counter::Counter,
    tasks: &Background,
) -> Result<Option<DynBroker>, BrokerError> {
    if url == "memory" {
        Ok(None)
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Some(Arc::new(
            redis::RedisBroker::connect(url, prefix, inbound, publish_errors, tasks).await?,
        )))
    } else if url.starts_with("nats://") || url.starts_with("tls://") {
        Ok(Some(Arc::new(
            nats::NatsBroker::connect(url, prefix, inbound, publish_errors, tasks).await?,
        )))
    } else {
        Err(BrokerError::UnknownScheme(url.to_owned()))
    }
}

/// The full channel or subject name of a topic.
fn full_topic(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{topic}")
}

/// The topic of a full name, if it carries our prefix.
fn strip_topic<'a>(prefix: &str, full: &'a str) -> Option<&'a str> {
    full.strip_prefix(prefix)?.strip_prefix('.')
}

/// The next reconnect delay: doubling, capped at [`MAX_BACKOFF`].
fn next_backoff(current: std::time::Duration) -> std::time::Duration {
    (current * 2).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_the_prefix() {
        let full = full_topic("t1", "room.a.b");
        assert_eq!(full, "t1.room.a.b");
        assert_eq!(strip_topic("t1", &full), Some("room.a.b"));
        assert_eq!(strip_topic("t2", &full), None);
    }
}
