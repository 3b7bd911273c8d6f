//! Live state of a connection: subscriptions with gap-free replay, typing,
//! presence, and the clean-up when a connection leaves.

use super::cluster::Cluster;
use super::receipts::{ReadRule, Receipts};
use super::{Caller, Chat, ChatError, ChatResult, encode, wire};
use crate::hub::{ConnId, Outbox, RoomEvent, TypingCheck};
use crate::limits::ConnSlot;
use crate::store::HistoryPage;
use confab_protocol::{ReqId, ServerFrame, Timestamp};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a `typing` lasts without a refresh (protocol.md §2.4).
pub const TYPING_TTL: Duration = Duration::from_secs(6);

/// Rows read per query while replaying a backlog.
const REPLAY_PAGE: u32 = 200;

/// The connection-cap slots one live connection holds; dropping it gives
/// them back.
#[derive(Default)]
pub struct Admission {
    _user: Option<ConnSlot<String>>,
    _anonymous: Option<ConnSlot<IpAddr>>,
}

/// What a subscription replays before live events (protocol.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Nothing: live events from now on.
    Nothing,
    /// Every stored message with a `seq` above this (`since_seq`).
    Since(i64),
    /// The newest this many messages (a room-scoped dialect's `?history=N`).
    Latest(u32),
}

impl From<Option<i64>> for Replay {
    fn from(since_seq: Option<i64>) -> Self {
        since_seq.map_or(Replay::Nothing, Replay::Since)
    }
}

/// How a connection joins a room.
#[derive(Debug, Clone)]
pub struct Join {
    /// What to replay first.
    pub replay: Replay,
    /// Whose view the replayed messages' `is_read` takes.
    pub reads: ReadRule,
    /// Echoed in `subscribed`.
    pub req_id: Option<ReqId>,
}

impl Chat {
    /// Subscribes a connection to a room: queues `subscribed`, then what
    /// `join.replay` asks for as `new_message`, then live events — with no
    /// gap and no duplicate (protocol.md §5.2). A backlog larger than
    /// `limits.max_catch_up` is cut after its oldest part; the client pages the
    /// rest with `get_history` up to `subscribed.last_seq`.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        conn: ConnId,
        outbox: &Outbox,
        room_id: &str,
        join: Join,
    ) -> ChatResult<()> {
        if matches!(join.replay, Replay::Since(s) if s < 0) {
            return Err(ChatError::InvalidField("since_seq must be ≥ 0".into()));
        }
        // Admins and the server key may watch a room they are not members
        // of; they have no read marker there, so nothing is unread for them.
        let (_, member) = self.room_access(caller, room_id).await?;
        // Hold live events from here on, so that nothing published between the
        // snapshot below and the end of the replay is lost or doubled.
        // This node receives the room's events from other nodes from here on.
        let again = self.hub.is_subscribed(conn, room_id);
        self.cluster.watch(room_id).await;
        if !self.hub.subscribe(conn, room_id, true) || again {
            // Connection gone, or a subscription replaced: one watch too many.
            self.cluster.release(room_id);
        }
        let snapshot = async {
            let room = self
                .store
                .get_room(room_id)
                .await?
                .ok_or(ChatError::NotFound("room"))?;
            let unread = match member {
                Some(_) => self.store.unread_count(room_id, caller.id()).await?,
                None => 0,
            };
            Ok::<_, ChatError>((room.last_seq, unread))
        };
        let (last_seq, unread_count) = match snapshot.await {
            Ok(v) => v,
            Err(e) => {
                self.drop_subscription(conn, room_id);
                return Err(e);
            }
        };
        outbox.send(&ServerFrame::Subscribed {
            room_id: room_id.to_owned(),
            last_seq,
            unread_count,
            timestamp: Timestamp::now(),
            req_id: join.req_id,
        });
        let since = match join.replay {
            Replay::Nothing => None,
            Replay::Since(since) => Some(since),
            Replay::Latest(0) => None,
            Replay::Latest(n) => Some(last_seq.saturating_sub(i64::from(n)).max(0)),
        };
        let delivered = match since {
            Some(since) if since < last_seq => {
                let replayed = async {
                    let receipts = self.receipts(room_id, caller.id()).await?;
                    let view = (join.reads, &receipts);
                    self.replay(outbox, room_id, since, last_seq, view).await
                };
                match replayed.await {
                    Ok(delivered) => delivered,
                    Err(e) => {
                        self.drop_subscription(conn, room_id);
                        return Err(e);
                    }
                }
            }
            _ => last_seq,
        };
        self.hub.activate(conn, room_id, delivered);
        Ok(())
    }

    /// Queues stored messages with `since < seq <= last_seq` (at most
    /// `max_catch_up`), their `is_read` as `view` says. Returns the seq up
    /// to which the client now has everything it will get from the replay:
    /// `last_seq`, whether the backlog was replayed whole or cut (the
    /// client then pages the gap).
    ///
    /// The replay never reads past `last_seq`, the snapshot taken after the
    /// subscription started holding live events: a message committed later
    /// may not have been fanned out yet (its commit hook runs after the
    /// commit), so it must come through the held or live path alone, never
    /// also from here — else the client would get it twice.
    async fn replay(
        &self,
        outbox: &Outbox,
        room_id: &str,
        since: i64,
        last_seq: i64,
        (rule, receipts): (ReadRule, &Receipts),
    ) -> ChatResult<i64> {
        let cap = i64::from(self.config.limits.max_catch_up.max(50));
        let mut cursor = since;
        let mut sent = 0i64;
        while cursor < last_seq && sent < cap {
            let wanted = (cap - sent).min(last_seq - cursor);
            let limit = REPLAY_PAGE.min(u32::try_from(wanted).unwrap_or(REPLAY_PAGE));
            let (records, _) = self
                .store
                .history(room_id, HistoryPage::After(cursor), limit)
                .await?;
            if records.is_empty() {
                break;
            }
            for record in records.into_iter().take_while(|r| r.seq <= last_seq) {
                cursor = record.seq;
                sent += 1;
                let mut message = wire::message(record);
                receipts.mark(rule, &mut message);
                let frame = ServerFrame::NewMessage {
                    room_id: room_id.to_owned(),
                    message,
                    timestamp: Timestamp::now(),
                };
                if !outbox.push_paced(frame.to_json().into()).await {
                    return Ok(cursor);
                }
            }
        }
        Ok(last_seq)
    }

    /// Removes one local subscription and its claim on the room's topic.
    fn drop_subscription(&self, conn: ConnId, room_id: &str) -> bool {
        let existed = self.hub.unsubscribe(conn, room_id);
        if existed {
            self.cluster.release(room_id);
        }
        existed
    }

    /// Ends a subscription; `not_subscribed` if there was none.
    pub fn unsubscribe(&self, caller: &Caller, conn: ConnId, room_id: &str) -> ChatResult<()> {
        if !self.drop_subscription(conn, room_id) {
            return Err(ChatError::NotSubscribed);
        }
        self.stop_typing_silently(room_id, caller);
        Ok(())
    }

    /// Starts (or refreshes) or stops the caller's typing indicator in a room
    /// this connection is subscribed to. Others see it; the typist never does.
    /// Past `rate_limit.typing_per_minute` the frames are coalesced silently:
    /// typing is a hint, and an error per keystroke would help nobody.
    pub fn typing(
        &self,
        caller: &Caller,
        conn: ConnId,
        room_id: &str,
        is_typing: bool,
    ) -> ChatResult<()> {
        if !self.hub.is_subscribed(conn, room_id) {
            return Err(ChatError::NotSubscribed);
        }
        if is_typing {
            let until = Instant::now() + TYPING_TTL;
            if self.check_rate(&self.limits.typing, caller).is_err() {
                // Over the typing rate: coalesced, never an error. A refresh
                // still keeps a shown indicator alive; a start is dropped, so
                // a start/stop flood cannot fan out either.
                self.hub.extend_typing(room_id, caller.id(), until);
                return Ok(());
            }
            let started = self.hub.set_typing(room_id, caller.id(), until);
            publish_typing(&self.cluster, room_id, caller, true);
            if started {
                spawn_typing_expiry(self.cluster.clone(), room_id.to_owned(), caller.clone());
            }
        } else if self.hub.clear_typing(room_id, caller.id()) {
            publish_typing(&self.cluster, room_id, caller, false);
        }
        Ok(())
    }

    /// Clears the caller's typing indicator if set, telling the room (used when
    /// they send a message, unsubscribe or disconnect).
    pub fn stop_typing_silently(&self, room_id: &str, caller: &Caller) {
        if self.hub.clear_typing(room_id, caller.id()) {
            publish_typing(&self.cluster, room_id, caller, false);
        }
    }

    /// The members of a room who are online on this node.
    pub async fn presence(&self, caller: &Caller, room_id: &str) -> ChatResult<Vec<String>> {
        self.room_access(caller, room_id).await?;
        let members = self.store.list_members(room_id).await?;
        Ok(members
            .into_iter()
            .map(|m| m.member.user_id)
            .filter(|id| self.cluster.is_online(id))
            .collect())
    }

    /// Takes a handshake from the address's rate and a slot under its
    /// connection cap, before any token work (so a flood costs no signature
    /// checks and no storage reads); `None` when either is exhausted (the
    /// socket is then closed with 4029). The slot is held for the
    /// connection's life.
    pub fn admit_address(&self, ip: IpAddr) -> Option<ConnSlot<IpAddr>> {
        if let Err(wait) = self.limits.handshakes.check(&ip) {
            tracing::debug!(%ip, ?wait, "websocket refused: handshake rate");
            return None;
        }
        let slot = self.limits.addr_conns.try_acquire(ip);
        if slot.is_none() {
            tracing::debug!(%ip, "websocket refused: too many connections from this address");
        }
        slot
    }

    /// Admits one more connection of the caller under
    /// `limits.max_connections_per_user` and, for an anonymous visitor, under
    /// `limits.max_anonymous_connections_per_address`; the connection holds
    /// the slots until it ends. The server key is not capped.
    pub fn admit(&self, caller: &Caller) -> ChatResult<Admission> {
        if caller.server_key {
            return Ok(Admission::default());
        }
        let anonymous = match caller.anonymous {
            Some(visitor) => Some(
                self.limits
                    .anonymous_conns
                    .try_acquire(visitor.address)
                    .ok_or(ChatError::TooManyConnections)?,
            ),
            None => None,
        };
        let user = self
            .limits
            .user_conns
            .try_acquire(caller.user.id.clone())
            .ok_or(ChatError::TooManyConnections)?;
        Ok(Admission {
            _user: Some(user),
            _anonymous: anonymous,
        })
    }

    /// Registers a new connection; on the user's first one, subscribers of
    /// their rooms get `user_online` (once per connection, not per room).
    /// `greet` queues the connection's first frame before it is registered,
    /// so no fanned-out frame (say a `room_added` from another node) can
    /// overtake `connection_established`.
    ///
    /// `rooms` are the user's rooms if the caller read them already
    /// ([`Chat::sign_in`]); `None` reads them here when needed.
    /// `notifications` says whether the connection's dialect shows the app's
    /// notifications ([`Chat::notify`]), which are sent and counted only to
    /// connections that do.
    pub async fn connect(
        &self,
        caller: &Caller,
        rooms: Option<Vec<String>>,
        outbox: Outbox,
        notifications: bool,
        greet: impl FnOnce(ConnId),
    ) -> ConnId {
        let conn = self.hub.reserve_id();
        greet(conn);
        let first = self
            .hub
            .register_as(conn, caller.id(), outbox, notifications);
        if first && self.cluster.local_presence(caller.id(), true) {
            match rooms {
                Some(rooms) => self.cluster.announce_presence_in(&rooms, caller.id(), true),
                None => self.cluster.announce_presence(caller.id(), true).await,
            }
        }
        conn
    }

    /// Forgets a closed connection: its subscriptions, its typing indicators,
    /// and — when it was the user's last connection — tells subscribers of
    /// their rooms `user_offline`.
    pub async fn disconnect(&self, caller: &Caller, conn: ConnId) {
        let departure = self.hub.unregister(conn);
        for room_id in &departure.rooms {
            self.cluster.release(room_id);
            self.stop_typing_silently(room_id, caller);
        }
        if departure.user_gone && self.cluster.local_presence(caller.id(), false) {
            self.cluster.announce_presence(caller.id(), false).await;
        }
    }
}

/// Tells the room (other than the typist) that `caller` started or stopped typing.
pub(super) fn publish_typing(
    cluster: &Arc<Cluster>,
    room_id: &str,
    caller: &Caller,
    is_typing: bool,
) {
    let frame = ServerFrame::Typing {
        room_id: room_id.to_owned(),
        user_id: caller.user.id.clone(),
        username: caller.user.username.clone(),
        name: caller.user.name.clone(),
        is_typing,
        timestamp: Timestamp::now(),
    };
    cluster.fan_out(
        room_id,
        RoomEvent {
            seq: None,
            bytes: encode(&frame),
            except_user: Some(Arc::from(caller.id())),
        },
    );
}

/// One timer per (room, typist): sleeps until the indicator's deadline,
/// follows refreshes, and announces `is_typing: false` when it lapses.
fn spawn_typing_expiry(cluster: Arc<Cluster>, room_id: String, caller: Caller) {
    let tasks = cluster.tasks().clone();
    tasks.spawn(async move {
        let mut until = Instant::now() + TYPING_TTL;
        loop {
            tokio::time::sleep_until(until).await;
            match cluster
                .hub
                .typing_deadline(&room_id, caller.id(), Instant::now())
            {
                TypingCheck::Until(next) => until = next,
                TypingCheck::Lapsed => {
                    publish_typing(&cluster, &room_id, &caller, false);
                    return;
                }
                TypingCheck::Cleared => return,
            }
        }
    });
}
