//! What chat means: callers, permissions, validation, rooms, messages, read
//! state, typing. Shared by every transport (the unified WebSocket, the
//! room-scoped dialects, REST), so a rule is written once.
//!
//! Core talks to storage through [`crate::store::Store`] and to live
//! connections through the [`Hub`]; it never sees a socket.
//!
//! # Layout
//! - [`access`]: who may send where, remembered between sends.
//! - [`assistant`]: the bot that answers in `assistant` rooms.
//! - [`attachments`]: uploads for image and file messages.
//! - [`error`]: [`ChatError`] and its mapping to contract codes.
//! - [`caller`]: who is asking, from a token or the server key.
//! - [`commands`]: slash commands, built in and the app's.
//! - [`connect_proxy`]: signing connections in with the app's session cookie.
//! - [`cluster`]: fan-out across nodes through the broker, in seq order.
//! - [`dev_login`]: the browser client's "pick a name" sign-in.
//! - [`messages`]: sending (validation, storage, fan-out) and history.
//! - [`notifications`]: the app's notifications to a user's connections.
//! - [`presence`]: who is online on the other nodes (TTL bookkeeping).
//! - [`ratings`]: satisfaction ratings of assistant sessions.
//! - [`receipts`]: who has read what (`is_read`).
//! - [`rooms`]: rooms, members, room lists, read markers.
//! - [`sessions`]: assistant sessions: choosing, starting, ending, expiring.
//! - [`live`]: subscriptions with gap-free replay, typing, presence.
//! - [`stats`]: counters for `GET /api/v1/stats`.
//! - [`webhooks`]: delivering the outbox's events to the app.
//! - [`wire`]: stored records → wire objects.

pub mod access;
pub mod assistant;
pub mod attachments;
pub mod caller;
pub mod cluster;
pub mod commands;
pub mod connect_proxy;
pub mod dev_login;
pub mod error;
pub mod live;
pub mod messages;
pub mod notifications;
pub mod presence;
pub mod ratings;
pub mod receipts;
pub mod rooms;
pub mod sessions;
mod sign_ins;
pub mod stats;
pub mod webhooks;
pub mod wire;

pub use caller::Caller;
pub use error::{ChatError, ChatResult};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::{Hub, RoomEvent};
use crate::limits::{KeyedRate, Limits};
use crate::store::{DynStore, MemberRecord, RoomRecord, RoomRole};
use axum::extract::ws::Utf8Bytes;
use confab_protocol::ServerFrame;
use std::sync::Arc;

/// The chat service: everything a transport needs, shared by all connections.
/// Its parts are private: transports call its methods, which say what they
/// do, and never reach the store, the hub or the limits themselves.
pub struct Chat {
    /// The room log.
    store: DynStore,
    /// This node's live connections.
    hub: Arc<Hub>,
    /// The hub plus the broker: where room events are fanned out.
    cluster: Arc<cluster::Cluster>,
    /// Token verification.
    auth: Authenticator,
    /// The configuration, fixed at start-up.
    config: Arc<Config>,
    /// Messages stored per second over the last minute.
    sent_rate: Arc<stats::RateWindow>,
    /// Rate limits and connection caps of this node.
    limits: Limits,
    /// This server's `/metrics` series.
    metrics: Arc<crate::metrics::Metrics>,
    /// Where stored questions to the assistant bot go (see [`assistant::run`]).
    assistant: assistant::Asker,
    /// App commands' calls to the app's back-end.
    app_calls: commands::app::AppCalls,
    /// The app's connect proxy, when `auth.proxy_url` is set.
    proxy: Option<connect_proxy::ConnectProxy>,
    /// Sign-ins' user reads and writes, batched across handshakes.
    sign_ins: sign_ins::SignIns,
    /// The webhook events written (`webhook.url` and `webhook.events`),
    /// resolved once: a send asks whether `message.missed` is among them.
    webhook_events: crate::store::EventSet,
}

impl Chat {
    /// Assembles the service from its parts (built by [`crate::app`]); the
    /// limits are made here, from the configuration. Starts tasks: call it
    /// in the Tokio runtime.
    pub fn new(
        store: DynStore,
        cluster: Arc<cluster::Cluster>,
        auth: Authenticator,
        config: Config,
        metrics: Arc<crate::metrics::Metrics>,
        assistant: assistant::Asker,
    ) -> Chat {
        Chat {
            limits: Limits::new(&config, &metrics.refusals),
            app_calls: commands::app::AppCalls::new(&config, metrics.app_commands.clone()),
            proxy: connect_proxy::ConnectProxy::new(&config),
            webhook_events: config.webhook.event_set(),
            hub: cluster.hub.clone(),
            sign_ins: sign_ins::SignIns::start(&store),
            store,
            cluster,
            auth,
            config: Arc::new(config),
            sent_rate: Arc::default(),
            metrics,
            assistant,
        }
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This server's `/metrics` series.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Closes every connection on this node with `code` (shutdown: 1012).
    pub fn close_all_connections(&self, code: confab_protocol::CloseCode) {
        self.hub.close_all(code);
    }

    /// Lets storage finish what it holds and close (the last step of a
    /// shutdown).
    pub async fn close_storage(&self) {
        self.store.close().await;
    }

    /// Drops rate-limit entries that are back to a fresh state, so the
    /// limiters hold only recently active users and addresses.
    pub fn collect_limiter_garbage(&self) {
        self.limits.gc();
    }
}

/// What [`Chat::send_access`] found.
#[derive(Debug, Clone, Copy)]
pub struct SendAccess {
    /// The room is closed: nobody may send.
    pub closed: bool,
    /// The room is an `assistant` room: the bot answers (protocol.md §6).
    pub assistant: bool,
    /// The caller's role; `None` for an admin who is not a member.
    pub role: Option<RoomRole>,
}

/// Serializes a frame once, for fan-out to any number of connections.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(frame.to_json())
}

impl Chat {
    /// Loads a room and the caller's membership, refusing unknown rooms
    /// (`not_found`) and non-members (`forbidden`). Admins and the server key
    /// pass without membership.
    pub async fn room_access(
        &self,
        caller: &Caller,
        room_id: &str,
    ) -> ChatResult<(RoomRecord, Option<MemberRecord>)> {
        let room = self
            .store
            .get_room(room_id)
            .await?
            .ok_or(ChatError::NotFound("room"))?;
        let member = self.store.get_member(room_id, caller.id()).await?;
        if member.is_none() && !caller.is_admin() {
            return Err(ChatError::Forbidden("not a member of this room".into()));
        }
        if !caller.may_use(&room, member.as_ref().map(|m| m.role)) {
            return Err(ChatError::Forbidden(
                "anonymous visitors may only use assistant rooms they own".into(),
            ));
        }
        Ok((room, member))
    }

    /// What sending needs of [`Chat::room_access`]. Served from the node's
    /// [`access::AccessCache`] while fresh, so a stream of sends reads
    /// neither the room nor the membership.
    pub async fn send_access(&self, caller: &Caller, room_id: &str) -> ChatResult<SendAccess> {
        if let Some(standing) = self.cluster.access.get(room_id, caller)
            && caller.may_use_kind(standing.assistant, Some(standing.role))
        {
            return Ok(SendAccess {
                closed: standing.closed,
                assistant: standing.assistant,
                role: Some(standing.role),
            });
        }
        let (room, member) = self.room_access(caller, room_id).await?;
        let assistant = room.room_type == caller::ASSISTANT_ROOM;
        if let Some(member) = &member {
            self.cluster.access.put(
                room_id,
                caller,
                access::Standing {
                    closed: room.closed,
                    assistant,
                    role: member.role,
                },
            );
        }
        Ok(SendAccess {
            closed: room.closed,
            assistant,
            role: member.map(|m| m.role),
        })
    }

    /// Like [`Chat::room_access`], and also requires the caller to manage the
    /// room (room owner/admin, global admin, or the server key).
    pub async fn room_admin_access(
        &self,
        caller: &Caller,
        room_id: &str,
    ) -> ChatResult<(RoomRecord, Option<MemberRecord>)> {
        let (room, member) = self.room_access(caller, room_id).await?;
        let manages =
            caller.is_admin() || member.as_ref().is_some_and(|m| m.role >= RoomRole::Admin);
        if !manages {
            return Err(ChatError::Forbidden(
                "only a room owner or admin may do this".into(),
            ));
        }
        Ok((room, member))
    }

    /// Serializes a frame once and sends it to the room's subscribers on
    /// every node ([`cluster::Cluster::fan_out`]).
    pub fn send_to_room(&self, room_id: &str, frame: &ServerFrame, seq: Option<i64>) {
        self.cluster.fan_out(
            room_id,
            RoomEvent {
                seq,
                bytes: encode(frame),
                except_user: None,
            },
        );
    }

    /// Takes one unit of a per-user rate limit, or refuses with
    /// `rate_limited`. The server key is a trusted back-end and is not limited.
    pub fn check_rate(&self, rate: &KeyedRate<String>, caller: &Caller) -> ChatResult<()> {
        if caller.server_key {
            return Ok(());
        }
        rate.check(&caller.user.id)
            .map_err(|retry_after| ChatError::RateLimited { retry_after })
    }

    /// The message rate: per user, and for anonymous visitors also the
    /// stricter visitors' one (checked first, so a refused visitor does not
    /// spend its per-user allowance), keyed by the visitor's own id once it
    /// came back with a visitor token, else by its address (every fresh
    /// visitor gets a new id; its address is what it cannot change at will).
    pub fn check_message_rate(&self, caller: &Caller) -> ChatResult<()> {
        if let Some(visitor) = caller.anonymous {
            let limits = &self.limits;
            let checked = if visitor.returning {
                limits.returning_visitor_messages.check(&caller.user.id)
            } else {
                limits.anonymous_messages.check(&visitor.address)
            };
            checked.map_err(|retry_after| ChatError::RateLimited { retry_after })?;
        }
        self.check_rate(&self.limits.messages, caller)
    }

    /// Sends a frame to every connection of each listed user, on every node.
    pub fn notify_users<'a>(&self, users: impl IntoIterator<Item = &'a str>, frame: &ServerFrame) {
        let users: Vec<String> = users.into_iter().map(str::to_owned).collect();
        self.cluster.notify_users(users, encode(frame));
    }
}

/// Checks an id a client chose against the one id rule
/// ([`crate::identity::check_id`]); `what` names it in the message.
pub fn validate_id(what: &str, id: &str) -> ChatResult<()> {
    crate::identity::check_id(what, id).map_err(|e| ChatError::InvalidField(e.0))
}

/// Checks that metadata is a JSON object within the size limit.
pub fn validate_metadata(value: &serde_json::Value, max_bytes: usize) -> ChatResult<()> {
    if !value.is_object() {
        return Err(ChatError::InvalidField(
            "metadata must be a JSON object".into(),
        ));
    }
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(ChatError::InvalidField(format!(
            "metadata is larger than {max_bytes} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(validate_metadata(&serde_json::json!({"a": 1}), 100).is_ok());
        assert!(validate_metadata(&serde_json::json!([1]), 100).is_err());
        assert!(validate_metadata(&serde_json::json!({"a": "x".repeat(200)}), 100).is_err());
    }
}
