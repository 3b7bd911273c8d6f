//! Redis pub/sub: one channel per topic. Publishing goes through a
//! [`ConnectionManager`] (reconnects by itself); receiving through one pub/sub
//! connection owned by a task that reconnects with backoff and subscribes
//! again to every topic still wanted.

use super::{Broker, BrokerError, Inbound, OUTBOUND_QUEUE, full_topic, next_backoff, strip_topic};
use crate::tasks::Background;
use bytes::Bytes;
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, PubSubSink};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// State shared by the handle and the receiving task.
struct Shared {
    prefix: String,
    /// Topics wanted now (re-subscribed after a reconnect).
    topics: Mutex<HashSet<String>>,
    /// The live pub/sub connection's command half, while connected.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    connected: AtomicBool,
}

/// A Redis-backed [`Broker`].
pub struct RedisBroker {
    shared: Arc<Shared>,
    outbound: mpsc::Sender<(String, Bytes)>,
    /// Publishes dropped, for `/metrics`.
    errors: Counter,
}

impl RedisBroker {
    /// Connects (failing if Redis does not answer now, so a bad URL is seen
    /// at start-up) and starts the publishing and receiving tasks.
    pub async fn connect(
        url: &str,
        prefix: &str,
        inbound: mpsc::Sender<Inbound>,
        errors: Counter,
        tasks: &Background,
    ) -> Result<RedisBroker, BrokerError> {
        let io = |e: redis::RedisError| BrokerError::Io(e.to_string());
        let client = redis::Client::open(url).map_err(io)?;
        let manager = ConnectionManager::new(client.clone()).await.map_err(io)?;
        let shared = Arc::new(Shared {
            prefix: prefix.to_owned(),
            topics: Mutex::default(),
            sink: tokio::sync::Mutex::new(None),
            connected: AtomicBool::new(false),
        });
        let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tasks.spawn(publish_loop(manager, rx, errors.clone()));
        tasks.spawn(receive_loop(client, shared.clone(), inbound));
        Ok(RedisBroker {
            shared,
            outbound,
            errors,
        })
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    fn publish(&self, topic: &str, payload: Bytes) {
        if self
            .outbound
            .try_send((full_topic(&self.shared.prefix, topic), payload))
            .is_err()
        {
            self.errors.inc();
            tracing::warn!(topic, "broker publish queue full: event dropped");
        }
    }

    async fn subscribe(&self, topic: &str) -> Result<(), BrokerError> {
        let full = full_topic(&self.shared.prefix, topic);
        self.shared
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(full.clone());
        let mut sink = self.shared.sink.lock().await;
        match sink.as_mut() {
            Some(s) => s
                .subscribe(&full)
                .await
                .map_err(|e| BrokerError::Io(e.to_string())),
            // Disconnected: the receiving task subscribes when it reconnects.
            None => Err(BrokerError::Io("redis is not connected".into())),
        }
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), BrokerError> {
        let full = full_topic(&self.shared.prefix, topic);
        self.shared
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&full);
        let mut sink = self.shared.sink.lock().await;
        match sink.as_mut() {
            Some(s) => s
                .unsubscribe(&full)
                .await
                .map_err(|e| BrokerError::Io(e.to_string())),
            None => Ok(()),
        }
    }

    fn is_ready(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
}

async fn publish_loop(
    mut manager: ConnectionManager,
    mut rx: mpsc::Receiver<(String, Bytes)>,
    errors: Counter,
) {
    while let Some((channel, payload)) = rx.recv().await {
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload.as_ref())
            .query_async(&mut manager)
            .await;
        if let Err(error) = sent {
            errors.inc();
            tracing::warn!(%error, channel, "redis publish failed: event dropped");
        }
    }
}

/// Owns the pub/sub connection: connect, subscribe to every wanted topic,
/// forward messages; when the connection ends, retry with backoff.
async fn receive_loop(client: redis::Client, shared: Arc<Shared>, inbound: mpsc::Sender<Inbound>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let wanted: Vec<String> = shared
                    .topics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .cloned()
                    .collect();
                let mut resubscribed = true;
                {
                    let mut slot = shared.sink.lock().await;
                    for topic in &wanted {
                        if sink.subscribe(topic).await.is_err() {
                            resubscribed = false;
                            break;
                        }
                    }
                    if resubscribed {
                        *slot = Some(sink);
                    }
                }
                if resubscribed {
                    shared.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(50);
                    tracing::info!("redis broker connected");
                    while let Some(msg) = stream.next().await {
                        let Some(topic) = strip_topic(&shared.prefix, msg.get_channel_name())
                        else {
                            continue;
                        };
                        let item = Inbound {
                            topic: topic.to_owned(),
                            payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
                        };
                        if inbound.send(item).await.is_err() {
                            return; // the node is gone
                        }
                    }
                    shared.connected.store(false, Ordering::Relaxed);
                    *shared.sink.lock().await = None;
                    tracing::warn!("redis broker connection lost; reconnecting");
                }
            }
            Err(error) => tracing::warn!(%error, "redis broker unavailable; retrying"),
        }
        if inbound.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
    }
}
