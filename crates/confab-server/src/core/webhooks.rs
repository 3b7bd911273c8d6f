//! Webhooks (protocol.md §8.1): delivering the events the store wrote to
//! its outbox, signed, at least once, to `webhook.url`.
//!
//! Every node runs [`run`]: it claims due events from the outbox (a claim
//! takes an event for one attempt, on one node, until the attempt's
//! deadline), renders each one's payload from what is stored now, POSTs it
//! and records the outcome: delivered events are deleted, failed attempts
//! are tried again after 1 s, 2 s, 4 s … (at most 5 min apart) until
//! `webhook.max_attempts`, then kept as failed for the REST view to show and
//! retry. At most `webhook.max_in_flight` attempts run at once, and nothing
//! here is on the path of a chat write, so a slow or dead receiver costs
//! chat nothing. Every few seconds the loop also counts the outbox for
//! `/metrics` and trims it to `webhook.max_pending` events and
//! `webhook.max_age_s`.

use super::{Caller, Chat, ChatError, ChatResult, wire};
use crate::config::WebhookConfig;
use crate::identity::{ASSISTANT_USER, SYSTEM_USER};
use crate::metrics::WebhookMetrics;
use crate::signing::Signer;
use crate::store::{Attempt, EventKind, OutboxEvent, RoomRole};
use crate::tasks::Background;
use confab_protocol::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often the loop looks for due events when it found none: what a new
/// event waits at most before its first attempt.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// How often the outbox is counted and trimmed.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long past an attempt's timeout its claim lasts, before another node
/// (or this one, restarted) may take the event again.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// The most of a receiver's answer kept as the error of a failed attempt.
const MAX_ERROR_CHARS: usize = 200;

/// The wait before attempt `attempts + 1`, after `attempts` failed ones:
/// 1 s, 2 s, 4 s … at most 5 min.
pub fn backoff(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_BACKOFF)
}

/// `t` plus `d`.
fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp(
        t.millis()
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// What one node needs to deliver events.
struct Deliverer {
    chat: Arc<Chat>,
    config: WebhookConfig,
    signer: Signer,
    client: reqwest::Client,
    metrics: WebhookMetrics,
}

/// Delivers the outbox's events until the server stops; returns at once
/// when `webhook.url` is not set.
pub async fn run(chat: Arc<Chat>, tasks: Background) {
    let config = chat.config().webhook.clone();
    if config.url.is_empty() {
        return;
    }
    // Both were checked when the configuration was validated.
    let signer = match Signer::from_secret(&config.secret) {
        Ok(signer) => signer,
        Err(why) => {
            tracing::error!(%why, "webhooks are off: webhook.secret is unusable");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_s))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhooks are off: no HTTP client");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let deliverer = Arc::new(Deliverer {
        metrics: chat.metrics().webhooks.clone(),
        chat,
        config,
        signer,
        client,
    });
    let stop = tasks.stopping();
    let mut upkeep_due = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= upkeep_due {
            deliverer.upkeep().await;
            upkeep_due = tokio::time::Instant::now() + UPKEEP_EVERY;
        }
        let free = slots.available_permits();
        let claimed = match free {
            0 => 0,
            _ => deliverer.claim_and_send(&slots, free, &tasks).await,
        };
        // A full claim means more may be due: claim again at once.
        if claimed == 0 || claimed < free {
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

impl Deliverer {
    /// Claims up to `free` due events and starts an attempt for each;
    /// returns how many it claimed.
    async fn claim_and_send(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        free: usize,
        tasks: &Background,
    ) -> usize {
        let now = Timestamp::now();
        let deadline = Duration::from_secs(self.config.timeout_s) + CLAIM_MARGIN;
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let events = match self
            .chat
            .store
            .claim_events(now, later(now, deadline), limit)
            .await
        {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "webhooks: could not claim events");
                return 0;
            }
        };
        let claimed = events.len();
        for event in events {
            // There are `free` permits and no other taker: this does not wait.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return claimed;
            };
            tasks.spawn(self.clone().attempt(event, permit));
        }
        claimed
    }

    /// One attempt at `event`, its outcome recorded.
    async fn attempt(self: Arc<Self>, event: OutboxEvent, _permit: OwnedSemaphorePermit) {
        let outcome = match self.chat.webhook_body(&event).await {
            Ok(Some(body)) => self.post(&event.id, body).await,
            Ok(None) => Err("what the event reports is no longer stored".to_owned()),
            Err(error) => Err(format!("the event could not be read: {error}")),
        };
        let attempt = match outcome {
            Ok(()) => {
                self.metrics.delivered.inc();
                Attempt::Delivered
            }
            Err(error) if event.attempts >= i64::from(self.config.max_attempts) => {
                self.metrics.failed.inc();
                tracing::warn!(event = %event.id, kind = event.kind.as_str(), attempts = event.attempts, %error, "webhook event failed for good");
                Attempt::Failed { error }
            }
            Err(error) => {
                self.metrics.retried.inc();
                tracing::debug!(event = %event.id, attempts = event.attempts, %error, "webhook attempt failed");
                Attempt::Retry {
                    at: later(Timestamp::now(), backoff(event.attempts)),
                    error,
                }
            }
        };
        if let Err(error) = self.chat.store.finish_event(&event.id, attempt).await {
            // The claim runs out and the event is tried again: at least once.
            tracing::warn!(event = %event.id, %error, "webhooks: outcome not recorded");
        }
    }

    /// POSTs `body` as the event `id`; why it failed, if it did.
    async fn post(&self, id: &str, body: Vec<u8>) -> Result<(), String> {
        let sent = self
            .signer
            .post_as(&self.client, &self.config.url, id, body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return Err(format!("no answer within {} s", self.config.timeout_s));
            }
            Err(error) => return Err(format!("not delivered: {error}")),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(MAX_ERROR_CHARS).collect();
        Err(format!("HTTP {}: {excerpt}", status.as_u16()))
    }

    /// Counts the outbox for `/metrics` and trims it.
    async fn upkeep(&self) {
        let now = Timestamp::now();
        let max_age = Duration::from_secs(self.config.max_age_s);
        let before = Timestamp(
            now.millis()
                .saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX)),
        );
        let keep = i64::try_from(self.config.max_pending).unwrap_or(i64::MAX);
        match self.chat.store.trim_outbox(before, keep).await {
            Ok(trimmed) => {
                if trimmed.by_age > 0 {
                    self.metrics.dropped_age.inc_by(trimmed.by_age);
                    tracing::warn!(
                        dropped = trimmed.by_age,
                        max_age_s = self.config.max_age_s,
                        "webhook events dropped: older than webhook.max_age_s"
                    );
                }
                if trimmed.by_cap > 0 {
                    self.metrics.dropped_cap.inc_by(trimmed.by_cap);
                    tracing::warn!(
                        dropped = trimmed.by_cap,
                        max_pending = self.config.max_pending,
                        "webhook events dropped: the outbox is over webhook.max_pending"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "webhooks: the outbox could not be trimmed"),
        }
        match self.chat.store.outbox_state().await {
            Ok(state) => {
                self.metrics.pending.set(state.pending);
                let age_ms = state
                    .oldest
                    .map_or(0, |t| now.millis().saturating_sub(t.millis()));
                self.metrics
                    .oldest_seconds
                    .set(age_ms.max(0) as f64 / 1000.0);
            }
            Err(error) => tracing::warn!(%error, "webhooks: the outbox could not be counted"),
        }
    }
}

impl Chat {
    /// The body of `event` as sent: `{"type", "timestamp", "data"}`, its
    /// data read from what is stored now; `None` if what it reports is gone.
    pub async fn webhook_body(&self, event: &OutboxEvent) -> ChatResult<Option<Vec<u8>>> {
        let Some(data) = self.webhook_data(event).await? else {
            return Ok(None);
        };
        let body = json!({
            "type": event.kind.as_str(),
            "timestamp": event.created_at,
            "data": data,
        });
        // A `Value` always serializes.
        Ok(Some(body.to_string().into_bytes()))
    }

    /// The `data` of protocol.md §8.1's table for `event`.
    async fn webhook_data(&self, event: &OutboxEvent) -> ChatResult<Option<Value>> {
        let room_id = &event.room_id;
        let data = match event.kind {
            EventKind::MessageCreated | EventKind::MessageUpdated | EventKind::MessageMissed => {
                let Some(id) = &event.message_id else {
                    return Ok(None);
                };
                let Some(record) = self.store.get_message(room_id, id).await? else {
                    return Ok(None);
                };
                let message = wire::message(record);
                match event.kind {
                    EventKind::MessageMissed => {
                        json!({"room_id": room_id, "user_id": event.user_id, "message": message})
                    }
                    _ => json!({"room_id": room_id, "message": message}),
                }
            }
            EventKind::MessageDeleted => {
                json!({"room_id": room_id, "message_id": event.message_id, "seq": event.seq})
            }
            EventKind::RoomCreated | EventKind::RoomUpdated | EventKind::RoomClosed => {
                let Some(room) = self.store.get_room(room_id).await? else {
                    return Ok(None);
                };
                json!({"room": self.summary_for(&room, SYSTEM_USER).await?})
            }
            EventKind::MemberAdded | EventKind::MemberRemoved => {
                json!({"room_id": room_id, "user_id": event.user_id, "role": event.role})
            }
            EventKind::SessionClosed => {
                let owner = self
                    .store
                    .list_members(room_id)
                    .await?
                    .into_iter()
                    .find(|m| m.member.role == RoomRole::Owner)
                    .map(|m| m.member.user_id);
                let rating = self.store.get_rating(room_id).await?;
                json!({
                    "room_id": room_id,
                    "session_id": room_id,
                    "user_id": owner,
                    "rating": rating.as_ref().map(|r| r.rating),
                    "feedback": rating.and_then(|r| r.feedback),
                })
            }
        };
        Ok(Some(data))
    }

    /// Who of the room's members gets `message.missed` for a message
    /// `sender` sends now: every member but the sender and the bots with
    /// no connection open on any node. Read only when the store writes
    /// `message.missed`.
    pub(super) async fn missed_by(&self, room_id: &str, sender: &str) -> ChatResult<Vec<String>> {
        if !self.webhook_events.contains(EventKind::MessageMissed) {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .list_members(room_id)
            .await?
            .into_iter()
            .map(|m| m.member.user_id)
            .filter(|user| {
                user != sender
                    && user != ASSISTANT_USER
                    && user != SYSTEM_USER
                    && !self.cluster.is_online(user)
            })
            .collect())
    }
}

/// The most failed events listed, or named in one retry.
pub const MAX_FAILED_PAGE: u32 = 100;

/// An event that ran out of attempts, as `GET /api/v1/webhooks/failed`
/// shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FailedEvent {
    /// The event's id: its `webhook-id`.
    pub id: String,
    /// Its type (`message.created`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The room it is about.
    pub room_id: String,
    /// When the change was stored (the payload's `timestamp`).
    pub timestamp: Timestamp,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last one failed.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When it was given up.
    #[schema(required = true)]
    pub failed_at: Option<Timestamp>,
}

impl Chat {
    /// Only the server key manages webhooks.
    pub fn may_manage_webhooks(&self, caller: &Caller) -> ChatResult<()> {
        if caller.server_key {
            return Ok(());
        }
        Err(ChatError::Forbidden(
            "only the server key may manage webhooks".into(),
        ))
    }

    /// The newest failed events (`limit`: default 50, at most 100).
    pub async fn failed_webhooks(
        &self,
        caller: &Caller,
        limit: Option<u32>,
    ) -> ChatResult<Vec<FailedEvent>> {
        self.may_manage_webhooks(caller)?;
        let limit = super::messages::page_limit(limit)?;
        let events = self.store.failed_events(limit).await?;
        Ok(events
            .into_iter()
            .map(|event| FailedEvent {
                id: event.id,
                kind: event.kind.as_str().to_owned(),
                room_id: event.room_id,
                timestamp: event.created_at,
                attempts: event.attempts,
                last_error: event.last_error,
                failed_at: event.failed_at,
            })
            .collect())
    }

    /// Puts failed events (`ids`, or all) back in line; how many.
    pub async fn retry_webhooks(
        &self,
        caller: &Caller,
        ids: Option<Vec<String>>,
    ) -> ChatResult<u64> {
        self.may_manage_webhooks(caller)?;
        if let Some(ids) = &ids {
            if ids.len() > MAX_FAILED_PAGE as usize {
                return Err(ChatError::InvalidField(format!(
                    "at most {MAX_FAILED_PAGE} ids at once (leave `ids` out to retry every failed event)"
                )));
            }
            if let Some(id) = ids.iter().find(|id| id.is_empty() || id.len() > 64) {
                return Err(ChatError::InvalidField(format!(
                    "{id:?} is not an event id"
                )));
            }
        }
        Ok(self
            .store
            .retry_failed_events(ids, Timestamp::now())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(i64::MAX), Duration::from_secs(300));
    }
}
