//! Assistant sessions (protocol.md §3.4): what `/ws/assistant/` calls a
//! session is a room of type `assistant` that its visitor owns, its id the
//! session id.
//!
//! A connection is in one session at a time: the one a visitor token or
//! `session_init` names if it is the caller's and open, else the caller's
//! newest open one, else a new one. A new session is stored only with its
//! first message (the welcome first, then the visitor's), so visitors who
//! only look leave no rows behind. A session ends when its visitor closes
//! it (`session_close`, `/clear`), when the app closes the room, or after
//! `assistant.session_ttl` without a message: [`sweep`] closes those, on
//! one node at a time, and every connection in the session gets
//! `session_closed` (the room's `room_updated` with `closed: true`).

use super::caller::ASSISTANT_ROOM;
use super::rooms::CreateRoom;
use super::{Caller, Chat, ChatError, ChatResult};
use crate::auth::AuthError;
use crate::identity::ASSISTANT_USER;
use crate::store::{NewMessage, RoomRecord, RoomRole, StoreError};
use crate::tasks::Background;
use confab_protocol::{MessageType, ServerFrame, Timestamp};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The lease that keeps the sweep on one node at a time.
const SWEEP_LEASE: &str = "assistant-session-sweep";

/// Idle sessions closed per sweep round; the rest wait for the next round.
const SWEEP_BATCH: u32 = 500;

/// Which session a connection is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChoice {
    /// A stored, open session of the caller's, resumed with its history.
    Resume(String),
    /// A new session under this id, stored with its first message.
    Start(String),
}

impl SessionChoice {
    /// The session id.
    pub fn id(&self) -> &str {
        match self {
            SessionChoice::Resume(id) | SessionChoice::Start(id) => id,
        }
    }
}

/// The welcome a new session showed before it was stored: stored as its
/// first message with the same id and time, so the visitor's screen and
/// the history agree.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// The message id shown.
    pub id: String,
    /// The time shown.
    pub at: Timestamp,
    /// The text (`assistant.welcome`).
    pub content: String,
}

impl Welcome {
    /// The welcome of a session starting now, if `assistant.welcome` is set.
    pub fn now(chat: &Chat) -> Option<Welcome> {
        let content = chat.config.assistant.welcome.trim();
        (!content.is_empty()).then(|| Welcome {
            id: uuid::Uuid::now_v7().to_string(),
            at: Timestamp::now(),
            content: content.to_owned(),
        })
    }

    /// The metadata the welcome is stored with.
    pub fn metadata() -> serde_json::Value {
        json!({"welcome": true})
    }
}

/// Who a `/ws/assistant/` connection is, and the session its credential
/// names.
#[derive(Debug)]
pub struct SignedIn {
    /// The caller.
    pub caller: Caller,
    /// The ids of the caller's rooms, when read with the user (see
    /// [`Chat::sign_in`]).
    pub rooms: Option<Vec<String>>,
    /// The session a visitor token named.
    pub session: Option<String>,
}

impl Chat {
    /// Signs in a `/ws/assistant/` connection. With `auth.allow_anonymous`,
    /// a visitor token makes it that visitor again, resuming its session;
    /// a visitor token whose session has ended, or which has run out, makes
    /// it a fresh visitor (the token has stopped working, as an expired
    /// session cookie would). Anything else is a user token or the server key.
    pub async fn assistant_sign_in(
        &self,
        token: &str,
        act_as: Option<&str>,
        peer: IpAddr,
    ) -> ChatResult<SignedIn> {
        if self.config.auth.allow_anonymous
            && let Some(signed_in) = self.visitor_sign_in(token, peer).await?
        {
            return Ok(signed_in);
        }
        let (caller, rooms) = self.sign_in(token, act_as).await?;
        Ok(SignedIn {
            caller,
            rooms,
            session: None,
        })
    }

    /// The visitor a visitor token names (see [`Chat::assistant_sign_in`]);
    /// `None` when the token is no visitor token at all.
    pub async fn visitor_sign_in(&self, token: &str, peer: IpAddr) -> ChatResult<Option<SignedIn>> {
        let fresh = || SignedIn {
            caller: Caller::anonymous(peer),
            rooms: Some(Vec::new()),
            session: None,
        };
        let visitor = match self.auth.verify_visitor(token) {
            Ok(visitor) => visitor,
            Err(AuthError::Expired) => return Ok(Some(fresh())),
            Err(_) => return Ok(None),
        };
        let ended = self
            .store
            .get_room(&visitor.session_id)
            .await?
            .is_some_and(|room| room.closed);
        if ended {
            return Ok(Some(fresh()));
        }
        Ok(Some(SignedIn {
            caller: Caller::visitor(visitor.visitor_id, peer, true),
            rooms: Some(Vec::new()),
            session: Some(visitor.session_id),
        }))
    }

    /// The token a visitor presents to come back to `session_id`, valid for
    /// `assistant.session_ttl`; `None` for everyone else.
    pub fn visitor_token(&self, caller: &Caller, session_id: &str) -> Option<String> {
        caller.anonymous?;
        self.auth
            .mint_visitor(caller.id(), session_id, self.config.assistant.session_ttl)
            .inspect_err(|error| tracing::error!(%error, "visitor token not minted"))
            .ok()
    }

    /// The session a connection of `caller` is in: `named` if it is the
    /// caller's and open, else the caller's newest open session, else a
    /// new one. A named session that was never stored (a new session shown
    /// but not yet used) keeps its id when the caller is the visitor its
    /// token was minted for (`trusted`).
    pub async fn choose_session(
        &self,
        caller: &Caller,
        named: Option<&str>,
        trusted: bool,
    ) -> ChatResult<SessionChoice> {
        if let Some(id) = named {
            match self.store.get_room(id).await? {
                Some(room) if self.owns_open_session(caller, &room).await? => {
                    return Ok(SessionChoice::Resume(room.id));
                }
                None if trusted => return Ok(SessionChoice::Start(id.to_owned())),
                _ => {}
            }
        }
        if let Some(room) = self.store.open_session(caller.id()).await? {
            return Ok(SessionChoice::Resume(room.id));
        }
        Ok(SessionChoice::Start(uuid::Uuid::now_v7().to_string()))
    }

    /// Whether `room` is an open session that `caller` owns.
    async fn owns_open_session(&self, caller: &Caller, room: &RoomRecord) -> ChatResult<bool> {
        if room.room_type != ASSISTANT_ROOM || room.closed {
            return Ok(false);
        }
        let member = self.store.get_member(&room.id, caller.id()).await?;
        Ok(member.is_some_and(|m| m.role == RoomRole::Owner))
    }

    /// Stores the new session `id` for `caller` (an `assistant` room it
    /// owns, the bot a member), with `welcome` as its first message.
    /// Returns the session's last `seq` (what the caller has seen). A taken
    /// id is [`ChatError::AlreadyExists`].
    pub async fn start_session(
        &self,
        caller: &Caller,
        id: &str,
        welcome: Option<&Welcome>,
    ) -> ChatResult<i64> {
        self.create_room(
            caller,
            CreateRoom {
                id: Some(id.to_owned()),
                name: None,
                room_type: Some(ASSISTANT_ROOM.to_owned()),
                members: Vec::new(),
                metadata: None,
                owner: None,
            },
        )
        .await?;
        let Some(welcome) = welcome else {
            return Ok(0);
        };
        let message = NewMessage {
            id: welcome.id.clone(),
            room_id: id.to_owned(),
            sender_id: ASSISTANT_USER.to_owned(),
            content: welcome.content.clone(),
            message_type: MessageType::Text,
            reply_to: None,
            metadata: Welcome::metadata(),
            attachment: None,
            location: None,
            client_msg_id: None,
            created_at: welcome.at,
            missed_by: Vec::new(),
        };
        let sent = self
            .queue_checked(message, super::assistant::bot(), |_| {}, None)
            .await?
            .sent()
            .await?;
        Ok(sent.message.seq)
    }

    /// Ends a session now (`session_close`, `/clear`): closes its room, and
    /// every connection in it gets `session_closed`. Its owner (or a room
    /// or global admin) may.
    pub async fn end_session(&self, caller: &Caller, id: &str) -> ChatResult<()> {
        let room = self
            .store
            .get_room(id)
            .await?
            .ok_or(ChatError::NotFound("session"))?;
        if room.room_type != ASSISTANT_ROOM {
            return Err(ChatError::InvalidField("not an assistant session".into()));
        }
        if room.closed {
            return Ok(());
        }
        self.close_room(caller, id).await.map(drop)
    }

    /// Closes the sessions idle for `assistant.session_ttl`, announcing
    /// each once; returns how many this call closed.
    pub async fn expire_idle_sessions(&self) -> ChatResult<usize> {
        let ttl_ms = i64::try_from(self.config.assistant.session_ttl.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let idle_before = Timestamp(Timestamp::now().millis().saturating_sub(ttl_ms));
        let mut closed = 0;
        for id in self.store.idle_sessions(idle_before, SWEEP_BATCH).await? {
            // Still idle? (A message may have come since the list was read.)
            let Some(room) = self.store.expire_session(&id, idle_before).await? else {
                continue;
            };
            closed += 1;
            self.cluster.forget_access(&room.id);
            let members = self.store.list_members(&room.id).await?;
            self.notify_users(
                members.iter().map(|m| m.member.user_id.as_str()),
                &ServerFrame::RoomUpdated {
                    timestamp: Timestamp::now(),
                    room_id: room.id.clone(),
                    updates: json!({"closed": true}),
                },
            );
            tracing::debug!(session = %room.id, "assistant session expired");
        }
        Ok(closed)
    }

    /// Takes (or renews) the sweep's lease for this node until `until`.
    async fn take_sweep_turn(&self, until: Timestamp) -> ChatResult<bool> {
        let node = &self.cluster.node_id;
        Ok(self.store.take_lease(SWEEP_LEASE, node, until).await?)
    }
}

/// How often the sweep runs: a quarter of the TTL, between 1 s and 1 min,
/// so that a session ends at most a quarter late (a minute for 24 h).
fn sweep_every(ttl_s: u64) -> Duration {
    Duration::from_millis(ttl_s.saturating_mul(250))
        .clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Closes idle sessions until the server stops: every [`sweep_every`],
/// on the node that holds the sweep's lease (taken for three rounds, so
/// that a node that stops hands it on within three).
pub async fn sweep(chat: Arc<Chat>, tasks: Background) {
    let every = sweep_every(chat.config.assistant.session_ttl);
    let lease_ms = i64::try_from(every.as_millis().saturating_mul(3)).unwrap_or(i64::MAX);
    let stop = tasks.stopping();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let until = Timestamp(Timestamp::now().millis().saturating_add(lease_ms));
        match chat.take_sweep_turn(until).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::warn!(%error, "assistant session sweep: lease not taken");
                continue;
            }
        }
        match chat.expire_idle_sessions().await {
            Ok(0) => {}
            Ok(closed) => tracing::info!(closed, "assistant sessions expired"),
            Err(error) => tracing::warn!(%error, "assistant session sweep failed"),
        }
    }
}

/// Whether a store error is the taken id of a new session.
pub fn is_taken(error: &ChatError) -> bool {
    matches!(
        error,
        ChatError::AlreadyExists(_) | ChatError::Store(StoreError::AlreadyExists)
    )
}

#[cfg(test)]
mod tests {
    use super::sweep_every;
    use std::time::Duration;

    #[test]
    fn the_sweep_runs_a_quarter_ttl_apart_within_bounds() {
        assert_eq!(sweep_every(86_400), Duration::from_secs(60));
        assert_eq!(sweep_every(60), Duration::from_secs(15));
        assert_eq!(sweep_every(2), Duration::from_secs(1));
        assert_eq!(sweep_every(u64::MAX), Duration::from_secs(60));
    }
}
