//! Core NATS: one subject per topic. The client reconnects and re-subscribes
//! by itself; one task per subscribed topic forwards its messages.

use super::{Broker, BrokerError, Inbound, OUTBOUND_QUEUE, full_topic};
use crate::tasks::Background;
use bytes::Bytes;
use futures_util::StreamExt;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A NATS-backed [`Broker`].
pub struct NatsBroker {
    client: async_nats::Client,
    prefix: String,
    outbound: mpsc::Sender<(String, Bytes)>,
    inbound: mpsc::Sender<Inbound>,
    /// Publishes dropped, for `/metrics`.
    errors: Counter,
    /// One forwarding task per subscribed topic.
    subs: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Where those tasks run.
    tasks: Background,
}

impl NatsBroker {
    /// Connects (failing if NATS does not answer now) and starts the
    /// publishing task. The client retries for ever after a lost connection.
    pub async fn connect(
        url: &str,
        prefix: &str,
        inbound: mpsc::Sender<Inbound>,
        errors: Counter,
        tasks: &Background,
    ) -> Result<NatsBroker, BrokerError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(url)
            .await
            .map_err(|e| BrokerError::Io(e.to_string()))?;
        // retry_on_initial_connect returns at once: wait for the first
        // connection so that a wrong URL fails start-up rather than later.
        tokio::time::timeout(std::time::Duration::from_secs(10), client.flush())
            .await
            .map_err(|_| BrokerError::Io(format!("nats at {url} did not answer")))?
            .map_err(|e| BrokerError::Io(e.to_string()))?;
        let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tasks.spawn(publish_loop(client.clone(), rx, errors.clone()));
        Ok(NatsBroker {
            tasks: tasks.clone(),
            errors,
            client,
            prefix: prefix.to_owned(),
            outbound,
            inbound,
            subs: Mutex::default(),
        })
    }
}

#[async_trait::async_trait]
impl Broker for NatsBroker {
    fn publish(&self, topic: &str, payload: Bytes) {
        if self
            .outbound
            .try_send((full_topic(&self.prefix, topic), payload))
            .is_err()
        {
            self.errors.inc();
            tracing::warn!(topic, "broker publish queue full: event dropped");
        }
    }

    async fn subscribe(&self, topic: &str) -> Result<(), BrokerError> {
        let io = |e: &dyn std::fmt::Display| BrokerError::Io(e.to_string());
        let mut subscriber = self
            .client
            .subscribe(full_topic(&self.prefix, topic))
            .await
            .map_err(|e| io(&e))?;
        let inbound = self.inbound.clone();
        let name = topic.to_owned();
        let task = self.tasks.spawn(async move {
            while let Some(msg) = subscriber.next().await {
                let item = Inbound {
                    topic: name.clone(),
                    payload: msg.payload,
                };
                if inbound.send(item).await.is_err() {
                    return;
                }
            }
        });
        if let Some(old) = self
            .subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), task)
        {
            old.abort();
        }
        // The server has the subscription once it answered a flush.
        self.client.flush().await.map_err(|e| io(&e))
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), BrokerError> {
        // Dropping the subscriber (with its task) unsubscribes.
        if let Some(task) = self
            .subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic)
        {
            task.abort();
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

async fn publish_loop(
    client: async_nats::Client,
    mut rx: mpsc::Receiver<(String, Bytes)>,
    errors: Counter,
) {
    while let Some((subject, payload)) = rx.recv().await {
        if let Err(error) = client.publish(subject.clone(), payload).await {
            errors.inc();
            tracing::warn!(%error, subject, "nats publish failed: event dropped");
        }
    }
}
