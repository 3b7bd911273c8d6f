//! This node's live state: connections, room subscriptions, typing.
//!
//! The hub never touches storage or sockets. It maps rooms and users to the
//! [`Outbox`]es of local connections and pushes already-serialized bytes into
//! them, so a fan-out serializes a frame once however many recipients it has.
//! Pushing never blocks: a full outbox closes that one connection (4008).
//!
//! A subscription with `since_seq` starts *pending*: live room events are held
//! in a small buffer while the session replays stored messages, then
//! [`Hub::activate`] releases the buffered events whose `seq` the replay did
//! not already deliver. That stitch is what makes resume gap- and duplicate-free
//! (protocol.md §5.2).

mod outbox;

pub use outbox::{Outbound, Outbox, OutboxReceiver, outbox};

use axum::extract::ws::Utf8Bytes;
use confab_protocol::CloseCode;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::time::Instant;

/// A connection's id, unique within this process.
pub type ConnId = u64;

/// A room event ready to fan out.
#[derive(Debug, Clone)]
pub struct RoomEvent {
    /// The message seq this event is about, for events that stitch onto a
    /// replay (`new_message`); `None` for events that are never replayed.
    pub seq: Option<i64>,
    /// The serialized frame.
    pub bytes: Utf8Bytes,
    /// A user whose connections must not get it (the typist, for `typing`).
    pub except_user: Option<Arc<str>>,
}

struct Conn {
    user_id: Arc<str>,
    outbox: Outbox,
    /// The connection's dialect shows `notification` frames (`/ws`); the
    /// others would skip them, so they are neither sent one nor counted.
    notifications: bool,
}

struct Sub {
    user_id: Arc<str>,
    outbox: Outbox,
    /// `Some` while the session replays stored messages.
    pending: Option<Vec<(Option<i64>, Utf8Bytes)>>,
    /// The highest message seq this connection has been given for the room.
    /// A message committed just before a replay read it may be fanned out
    /// (its commit hook) only after the replay: it is dropped here, not sent
    /// twice. Fan-out runs in seq order, so this never skips a new message.
    high_seq: i64,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<String, HashMap<ConnId, Sub>>,
    users: HashMap<Arc<str>, Vec<ConnId>>,
    /// (room, user) → when their typing indicator lapses.
    typing: HashMap<(String, Arc<str>), Instant>,
}

/// What [`Hub::unregister`] found when a connection left.
#[derive(Debug, Default)]
pub struct Departure {
    /// Rooms the connection was subscribed to.
    pub rooms: Vec<String>,
    /// The user has no other connection on this node.
    pub user_gone: bool,
}

/// This node's live state. One per process, shared by every session.
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
    pending_limit: usize,
    /// Frames queued by fan-out, for `/metrics`: added once per fan-out.
    deliveries: Counter,
}

impl Hub {
    /// `pending_limit` bounds the events held per pending subscription; past it
    /// the connection is a slow consumer. `deliveries` counts the frames
    /// fan-out queues.
    pub fn new(pending_limit: usize, deliveries: Counter) -> Self {
        Hub {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            pending_limit,
            deliveries,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters more than losing the whole node: keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a connection of `user_id` that shows notifications. Returns its
    /// id and whether it is the user's first connection on this node (they
    /// just came online).
    pub fn register(&self, user_id: &str, outbox: Outbox) -> (ConnId, bool) {
        let id = self.reserve_id();
        (id, self.register_as(id, user_id, outbox, true))
    }

    /// A fresh connection id, not yet registered: a connection queues its
    /// greeting (which names the id) before anything can be fanned out to it.
    pub fn reserve_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a connection under an id from [`Hub::reserve_id`];
    /// `notifications` says whether its dialect shows `notification` frames
    /// ([`Hub::notify_user`]). Returns whether it is the user's first
    /// connection on this node.
    pub fn register_as(
        &self,
        id: ConnId,
        user_id: &str,
        outbox: Outbox,
        notifications: bool,
    ) -> bool {
        let mut state = self.lock();
        let user_id: Arc<str> = match state.users.get_key_value(user_id) {
            Some((key, _)) => key.clone(),
            None => Arc::from(user_id),
        };
        let conns = state.users.entry(user_id.clone()).or_default();
        conns.push(id);
        let first = conns.len() == 1;
        state.conns.insert(
            id,
            Conn {
                user_id,
                outbox,
                notifications,
            },
        );
        first
    }

    /// Pushes bytes once to every connection subscribed to any of `rooms`,
    /// except those of `except_user` (presence: one frame per connection
    /// however many rooms it shares with the user).
    pub fn publish_to_rooms(&self, rooms: &[String], bytes: &Utf8Bytes, except_user: &str) {
        let state = self.lock();
        let mut sent = std::collections::HashSet::new();
        let mut queued = 0;
        for room in rooms {
            for (conn, sub) in state.rooms.get(room).into_iter().flatten() {
                if &*sub.user_id != except_user
                    && sent.insert(*conn)
                    && sub.outbox.push(bytes.clone())
                {
                    queued += 1;
                }
            }
        }
        self.deliveries.inc_by(queued);
    }

    /// Removes a connection and all its subscriptions.
    pub fn unregister(&self, conn: ConnId) -> Departure {
        let mut state = self.lock();
        let Some(gone) = state.conns.remove(&conn) else {
            return Departure::default();
        };
        let mut rooms = Vec::new();
        state.rooms.retain(|room, subs| {
            if subs.remove(&conn).is_some() {
                rooms.push(room.clone());
            }
            !subs.is_empty()
        });
        let user_gone = match state.users.get_mut(&gone.user_id) {
            Some(list) => {
                list.retain(|c| *c != conn);
                list.is_empty()
            }
            None => true,
        };
        if user_gone {
            state.users.remove(&gone.user_id);
        }
        Departure { rooms, user_gone }
    }

    /// Subscribes a connection to a room. With `pending`, live events are held
    /// until [`Hub::activate`]. Returns false if the connection is unknown.
    pub fn subscribe(&self, conn: ConnId, room_id: &str, pending: bool) -> bool {
        let mut state = self.lock();
        let Some(c) = state.conns.get(&conn) else {
            return false;
        };
        let sub = Sub {
            user_id: c.user_id.clone(),
            outbox: c.outbox.clone(),
            pending: pending.then(Vec::new),
            high_seq: 0,
        };
        state
            .rooms
            .entry(room_id.to_owned())
            .or_default()
            .insert(conn, sub);
        true
    }

    /// Ends the pending phase: queues the held events not already delivered by
    /// the replay (those with `seq > delivered_up_to`, and every event without
    /// a seq), then delivers live.
    pub fn activate(&self, conn: ConnId, room_id: &str, delivered_up_to: i64) {
        let mut state = self.lock();
        let Some(sub) = state.rooms.get_mut(room_id).and_then(|s| s.get_mut(&conn)) else {
            return;
        };
        sub.high_seq = sub.high_seq.max(delivered_up_to);
        let mut queued = 0;
        for (seq, bytes) in sub.pending.take().unwrap_or_default() {
            if seq.is_some_and(|s| s <= sub.high_seq) {
                continue;
            }
            if let Some(s) = seq {
                sub.high_seq = s;
            }
            if !sub.outbox.push(bytes) {
                break;
            }
            queued += 1;
        }
        self.deliveries.inc_by(queued);
    }

    /// Removes one subscription. Returns whether it existed.
    pub fn unsubscribe(&self, conn: ConnId, room_id: &str) -> bool {
        let mut state = self.lock();
        let Entry::Occupied(mut subs) = state.rooms.entry(room_id.to_owned()) else {
            return false;
        };
        let existed = subs.get_mut().remove(&conn).is_some();
        if subs.get().is_empty() {
            subs.remove();
        }
        existed
    }

    /// Whether the connection is subscribed to the room.
    pub fn is_subscribed(&self, conn: ConnId, room_id: &str) -> bool {
        self.lock()
            .rooms
            .get(room_id)
            .is_some_and(|subs| subs.contains_key(&conn))
    }

    /// Drops every subscription of `user_id`'s connections to a room (the user
    /// left or was removed). Returns how many there were.
    pub fn drop_user_from_room(&self, user_id: &str, room_id: &str) -> usize {
        let mut state = self.lock();
        let Some(subs) = state.rooms.get_mut(room_id) else {
            return 0;
        };
        let before = subs.len();
        subs.retain(|_, sub| &*sub.user_id != user_id);
        let dropped = before - subs.len();
        if subs.is_empty() {
            state.rooms.remove(room_id);
        }
        dropped
    }

    /// Delivers an event to every subscriber of the room on this node (the
    /// last step of a fan-out; `Broker::publish` is the step between nodes).
    pub fn deliver(&self, room_id: &str, event: &RoomEvent) {
        let mut state = self.lock();
        let Some(subs) = state.rooms.get_mut(room_id) else {
            return;
        };
        let mut queued = 0;
        for sub in subs.values_mut() {
            if event.except_user.as_deref() == Some(&*sub.user_id) {
                continue;
            }
            match &mut sub.pending {
                Some(held) if held.len() < self.pending_limit => {
                    held.push((event.seq, event.bytes.clone()))
                }
                Some(_) => sub.outbox.kill_with(CloseCode::SlowConsumer),
                None => match event.seq {
                    Some(seq) if seq <= sub.high_seq => {}
                    Some(seq) => {
                        sub.high_seq = seq;
                        queued += u64::from(sub.outbox.push(event.bytes.clone()));
                    }
                    None => {
                        queued += u64::from(sub.outbox.push(event.bytes.clone()));
                    }
                },
            }
        }
        self.deliveries.inc_by(queued);
    }

    /// Pushes bytes to every local connection of a user.
    pub fn send_to_user(&self, user_id: &str, bytes: &Utf8Bytes) {
        let state = self.lock();
        let mut queued = 0;
        for conn in state.users.get(user_id).into_iter().flatten() {
            if let Some(c) = state.conns.get(conn) {
                queued += u64::from(c.outbox.push(bytes.clone()));
            }
        }
        self.deliveries.inc_by(queued);
    }

    /// Pushes a notification to every local connection of a user whose
    /// dialect shows it; returns how many took it (a connection whose
    /// queue is full is closed as a slow consumer and not counted).
    pub fn notify_user(&self, user_id: &str, bytes: &Utf8Bytes) -> usize {
        let state = self.lock();
        let mut queued = 0;
        for conn in state.users.get(user_id).into_iter().flatten() {
            if let Some(c) = state.conns.get(conn)
                && c.notifications
                && c.outbox.push(bytes.clone())
            {
                queued += 1;
            }
        }
        self.deliveries.inc_by(queued as u64);
        queued
    }

    /// Closes every local connection of a user at once with `code`.
    pub fn close_user(&self, user_id: &str, code: CloseCode) {
        let state = self.lock();
        for conn in state.users.get(user_id).into_iter().flatten() {
            if let Some(c) = state.conns.get(conn) {
                c.outbox.kill_with(code);
            }
        }
    }

    /// Whether the user has a connection on this node.
    pub fn is_online(&self, user_id: &str) -> bool {
        self.lock().users.contains_key(user_id)
    }

    /// The ids of the users with a connection on this node.
    pub fn online_user_ids(&self) -> Vec<String> {
        self.lock().users.keys().map(|u| u.to_string()).collect()
    }

    /// Users with a connection on this node.
    pub fn users_online(&self) -> usize {
        self.lock().users.len()
    }

    /// Open connections on this node.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Marks `user_id` typing in a room until `until`. Returns true if they were
    /// not typing before (the caller then starts the expiry timer).
    pub fn set_typing(&self, room_id: &str, user_id: &str, until: Instant) -> bool {
        let mut state = self.lock();
        let user: Arc<str> = Arc::from(user_id);
        state
            .typing
            .insert((room_id.to_owned(), user), until)
            .is_none()
    }

    /// Moves the deadline of an indicator that is already set (a coalesced
    /// refresh); sets nothing when there is none.
    pub fn extend_typing(&self, room_id: &str, user_id: &str, until: Instant) {
        let mut state = self.lock();
        if let Some(deadline) = state
            .typing
            .get_mut(&(room_id.to_owned(), Arc::from(user_id)))
        {
            *deadline = until;
        }
    }

    /// Clears a typing indicator. Returns whether there was one.
    pub fn clear_typing(&self, room_id: &str, user_id: &str) -> bool {
        self.lock()
            .typing
            .remove(&(room_id.to_owned(), Arc::from(user_id)))
            .is_some()
    }

    /// For the expiry timer: the indicator's deadline if it is still set and in
    /// the future (sleep again), or `None` after clearing a lapsed one or finding
    /// none. `lapsed` tells which: true when this call cleared it.
    pub fn typing_deadline(&self, room_id: &str, user_id: &str, now: Instant) -> TypingCheck {
        let mut state = self.lock();
        let key = (room_id.to_owned(), Arc::from(user_id));
        match state.typing.get(&key) {
            Some(until) if *until > now => TypingCheck::Until(*until),
            Some(_) => {
                state.typing.remove(&key);
                TypingCheck::Lapsed
            }
            None => TypingCheck::Cleared,
        }
    }

    /// Queues a close with `code` on every connection (shutdown).
    pub fn close_all(&self, code: CloseCode) {
        for conn in self.lock().conns.values() {
            conn.outbox.close(code);
        }
    }
}

/// What the typing expiry timer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypingCheck {
    /// Refreshed: sleep until this deadline and check again.
    Until(Instant),
    /// Lapsed just now and cleared: announce `is_typing: false`.
    Lapsed,
    /// Already cleared by a stop, a send or a disconnect: nothing to do.
    Cleared,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut OutboxReceiver) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Outbound::Frame(b)) = rx.try_recv() {
            out.push(b.to_string());
        }
        out
    }

    fn event(seq: Option<i64>, text: &str) -> RoomEvent {
        RoomEvent {
            seq,
            bytes: text.into(),
            except_user: None,
        }
    }

    #[test]
    fn pending_subscriptions_stitch_without_duplicates() {
        let hub = Hub::new(16, Counter::default());
        let (out, mut rx) = outbox(16, 1 << 20);
        let (conn, first) = hub.register("a", out);
        assert!(first);
        hub.subscribe(conn, "r", true);
        hub.deliver("r", &event(Some(5), "m5"));
        hub.deliver("r", &event(None, "typing"));
        hub.deliver("r", &event(Some(6), "m6"));
        assert!(drain(&mut rx).is_empty(), "nothing leaks before activate");
        hub.activate(conn, "r", 5);
        assert_eq!(drain(&mut rx), ["typing", "m6"]);
        hub.deliver("r", &event(Some(7), "m7"));
        assert_eq!(drain(&mut rx), ["m7"]);
        // A late fan-out of a message the replay already gave is dropped.
        hub.deliver("r", &event(Some(6), "m6 again"));
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn a_late_fan_out_after_activate_is_not_a_duplicate() {
        let hub = Hub::new(16, Counter::default());
        let (out, mut rx) = outbox(16, 1 << 20);
        let (conn, _) = hub.register("a", out);
        hub.subscribe(conn, "r", true);
        // The replay delivered up to seq 9; seq 9's commit hook runs only now.
        hub.activate(conn, "r", 9);
        hub.deliver("r", &event(Some(9), "m9"));
        hub.deliver("r", &event(Some(10), "m10"));
        assert_eq!(drain(&mut rx), ["m10"]);
    }

    #[test]
    fn notifications_reach_and_count_only_connections_that_show_them() {
        let hub = Hub::new(16, Counter::default());
        let (shows, mut rs) = outbox(4, 1 << 20);
        let (scoped, mut rc) = outbox(4, 1 << 20);
        let (other, mut ro) = outbox(4, 1 << 20);
        hub.register_as(hub.reserve_id(), "a", shows, true);
        hub.register_as(hub.reserve_id(), "a", scoped, false);
        hub.register_as(hub.reserve_id(), "b", other, true);
        assert_eq!(hub.notify_user("a", &"n".into()), 1);
        assert_eq!(drain(&mut rs), ["n"]);
        assert!(drain(&mut rc).is_empty(), "its dialect has no such frame");
        assert!(drain(&mut ro).is_empty(), "another user's");
        assert_eq!(hub.notify_user("nobody", &"n".into()), 0);
    }

    #[test]
    fn except_user_and_departure() {
        let hub = Hub::new(16, Counter::default());
        let (a1, mut ra1) = outbox(4, 1 << 20);
        let (a2, _ra2) = outbox(4, 1 << 20);
        let (b, mut rb) = outbox(4, 1 << 20);
        let (c1, _) = hub.register("a", a1);
        let (c2, first) = hub.register("a", a2);
        assert!(!first, "a second connection is no transition");
        let (c3, _) = hub.register("b", b);
        for c in [c1, c3] {
            hub.subscribe(c, "r", false);
        }
        hub.deliver(
            "r",
            &RoomEvent {
                seq: None,
                bytes: "t".into(),
                except_user: Some(Arc::from("a")),
            },
        );
        assert!(drain(&mut ra1).is_empty());
        assert_eq!(drain(&mut rb), ["t"]);
        let d = hub.unregister(c1);
        assert_eq!(d.rooms, ["r"]);
        assert!(!d.user_gone);
        assert!(hub.unregister(c2).user_gone);
        assert!(!hub.is_online("a"));
        assert!(hub.is_online("b"));
    }
}
