//! Several nodes acting as one: every room event goes to this node's hub and,
//! through the broker, to the hubs of the other nodes with subscribers.
//!
//! A node subscribes to a room's topic only while it has local subscribers
//! ([`Cluster::watch`] / [`Cluster::release`], counted per subscription).
//!
//! # Ordering across nodes
//! The hub delivers `new_message` in seq order per subscription and drops a
//! seq at or below the last one given (that is how a replay stitches onto live
//! events). On one node the store's commit hook already runs in seq order;
//! across nodes seq N+1 (committed on B) may arrive before seq N (committed on
//! A). So with a broker every seq-carrying event, local or remote, passes a
//! per-room reorder stage: it is delivered when it is the next seq; a later
//! one is held; if the gap has not filled after [`GAP_WAIT`], the missing
//! seqs are read from the store (they are committed: a later seq exists only
//! after the earlier committed) and delivered, then the held ones. A seq at or
//! below the delivered one is a duplicate and dropped. The same repair covers
//! a broker message lost while the broker was down.

use super::access::AccessCache;
use super::presence::RemotePresence;
use super::{encode, wire};
use crate::broker::{DynBroker, Envelope, Inbound};
use crate::hub::{Hub, RoomEvent};
use crate::metrics::BrokerCounters;
use crate::store::{DynStore, HistoryPage};
use crate::tasks::Background;
use axum::extract::ws::Utf8Bytes;
use confab_protocol::{CloseCode, ServerFrame, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long an out-of-order event waits for the seqs before it to arrive
/// through the broker before they are read from the store.
pub const GAP_WAIT: Duration = Duration::from_millis(150);

/// Rows read per store query while filling a gap.
const REPAIR_PAGE: u32 = 200;

/// The reorder state of one watched room.
struct RoomOrder {
    /// Local subscriptions relying on this room's topic.
    watchers: usize,
    /// Tells a new incarnation of the same room's entry from an old one.
    generation: u64,
    /// `None` until the starting snapshot is read: events are buffered.
    next: Option<i64>,
    /// Events that arrived before `next` was known.
    starting: Vec<RoomEvent>,
    /// Events with a seq above `next`, waiting for the gap to fill.
    held: BTreeMap<i64, RoomEvent>,
    /// A repair task is running for this room.
    repairing: bool,
    /// Flips to true once `next` is known; later watchers wait on it.
    ready: tokio::sync::watch::Sender<bool>,
}

/// Local hub + broker: what core publishes to.
pub struct Cluster {
    /// This node's id, in every envelope it publishes.
    pub node_id: String,
    /// This node's connections.
    pub hub: Arc<Hub>,
    store: DynStore,
    broker: Option<DynBroker>,
    rooms: Mutex<HashMap<String, RoomOrder>>,
    generations: AtomicU64,
    /// Serializes broker subscribe/unsubscribe so they apply in order.
    topics: tokio::sync::Mutex<()>,
    /// Users online on other nodes, as last heard on the broker.
    remote: RemotePresence,
    /// How long a node's word that a user is online lasts.
    presence_ttl: Duration,
    /// Broker traffic, for `/metrics`.
    counters: BrokerCounters,
    /// Who may send where, as last read; see [`Cluster::forget_access`].
    pub access: AccessCache,
    /// Where this cluster's tasks run (stopped on shutdown).
    tasks: Background,
}

/// What one envelope on [`USERS_TOPIC`] tells the other nodes about users.
enum UserNote<'a> {
    /// A frame for every connection of theirs.
    Frame(&'a str),
    /// The app's notification, for their connections that show it.
    Notification(&'a str),
    /// Close their connections with this code.
    Close(u16),
    /// They are online on the origin node (`true`), or left it.
    Presence(bool),
}

/// The one topic every node listens to for user-targeted events
/// (`room_added`, `room_removed`, `room_updated`, a disabled user's 4002).
/// They are rare next to room events, so every node reading them all costs
/// less than a broker round-trip to subscribe per connecting user.
pub const USERS_TOPIC: &str = "users";

/// The broker topic of a room. Ids are escaped so that NATS wildcards and
/// token separators in an id cannot widen a subscription.
pub fn room_topic(room_id: &str) -> String {
    format!("room.{}", escape(room_id))
}

fn escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Cluster {
    /// A cluster view over `hub`; `broker` is `None` for `memory` (one node).
    /// `presence_ttl` bounds how long a dead node's users stay online.
    /// `counters` count the broker traffic.
    pub fn new(
        hub: Arc<Hub>,
        store: DynStore,
        broker: Option<DynBroker>,
        presence_ttl: Duration,
        counters: BrokerCounters,
        tasks: Background,
    ) -> Arc<Cluster> {
        Arc::new(Cluster {
            remote: RemotePresence::new(presence_ttl),
            presence_ttl,
            node_id: uuid::Uuid::now_v7().to_string(),
            hub,
            store,
            broker,
            rooms: Mutex::default(),
            generations: AtomicU64::new(1),
            topics: tokio::sync::Mutex::new(()),
            counters,
            access: AccessCache::default(),
            tasks,
        })
    }

    /// Where the cluster's tasks, and core's timers beside them, are spawned.
    pub fn tasks(&self) -> &Background {
        &self.tasks
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, RoomOrder>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether fan-out crosses nodes right now: no broker (one node) counts
    /// as ready; a broker must be connected.
    pub fn broker_ready(&self) -> Option<bool> {
        self.broker.as_ref().map(|b| b.is_ready())
    }

    /// Reads what the broker delivers until the node stops.
    pub fn spawn_inbound(self: &Arc<Self>, mut inbound: mpsc::Receiver<Inbound>) {
        let cluster = Arc::downgrade(self);
        self.tasks.spawn(async move {
            while let Some(item) = inbound.recv().await {
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                cluster.receive(&item);
            }
        });
    }

    fn receive(self: &Arc<Self>, item: &Inbound) {
        let Some(envelope) = Envelope::from_bytes(&item.payload) else {
            self.counters.receive_errors.inc();
            tracing::warn!(topic = item.topic, "broker: undecodable message dropped");
            return;
        };
        if envelope.origin == self.node_id {
            return; // our own echo: delivered locally already
        }
        if envelope.access_changed {
            if let Some(room_id) = &envelope.room_id {
                self.access.forget_room(room_id);
            }
            return;
        }
        if let Some(users) = envelope.users {
            match envelope.online {
                // Presence notes are bookkeeping, not events for clients:
                // not counted in `confab_broker_events_total`.
                Some(online) => self.receive_presence(&envelope.origin, users, online),
                None if envelope.notification => {
                    self.counters.received.inc();
                    let bytes = Utf8Bytes::from(envelope.frame);
                    for user in &users {
                        self.hub.notify_user(user, &bytes);
                    }
                }
                None => {
                    self.counters.received.inc();
                    self.receive_for_users(&users, envelope.close, envelope.frame);
                }
            }
            return;
        }
        self.counters.received.inc();
        let Some(room_id) = envelope.room_id.as_deref() else {
            return;
        };
        let event = RoomEvent {
            seq: envelope.seq,
            bytes: envelope.frame.into(),
            except_user: envelope.except_user.map(Arc::from),
        };
        self.deliver(room_id, event);
    }

    /// Starts listening to [`USERS_TOPIC`]. A broker that is down now
    /// subscribes when it reconnects.
    pub async fn listen_for_users(&self) {
        if let Some(broker) = &self.broker
            && let Err(error) = broker.subscribe(USERS_TOPIC).await
        {
            tracing::warn!(%error, "broker: users topic not subscribed yet");
        }
    }

    /// Sends a frame to every connection of each listed user, on every node.
    pub fn notify_users(&self, users: Vec<String>, bytes: Utf8Bytes) {
        for user in &users {
            self.hub.send_to_user(user, &bytes);
        }
        self.publish_to_users(users, UserNote::Frame(bytes.as_str()));
    }

    /// Sends the app's notification to every connection of a user that
    /// shows it ([`Hub::notify_user`]), on every node; returns how many of
    /// this node's took it. The broker reports no deliveries back, so the
    /// other nodes' connections are reached but not counted.
    pub fn notify_user(&self, user: &str, bytes: Utf8Bytes) -> usize {
        let here = self.hub.notify_user(user, &bytes);
        self.publish_to_users(
            vec![user.to_owned()],
            UserNote::Notification(bytes.as_str()),
        );
        here
    }

    /// Forgets, on every node, who may send in the room: call after changing
    /// its membership or state.
    pub fn forget_access(&self, room_id: &str) {
        self.access.forget_room(room_id);
        let Some(broker) = &self.broker else {
            return;
        };
        let envelope = Envelope {
            origin: self.node_id.clone(),
            room_id: Some(room_id.to_owned()),
            seq: None,
            except_user: None,
            users: None,
            close: None,
            online: None,
            access_changed: true,
            notification: false,
            frame: String::new(),
        };
        broker.publish(USERS_TOPIC, envelope.to_bytes());
    }

    /// Closes every connection of a user, on every node, with `code`.
    pub fn close_user(&self, user_id: &str, code: CloseCode) {
        self.hub.close_user(user_id, code);
        self.publish_to_users(vec![user_id.to_owned()], UserNote::Close(code.code()));
    }

    /// Puts one envelope about `users` on [`USERS_TOPIC`] (nothing without a
    /// broker). Presence notes are bookkeeping and not counted as broker
    /// events.
    fn publish_to_users(&self, users: Vec<String>, note: UserNote<'_>) {
        let Some(broker) = &self.broker else {
            return;
        };
        let (close, online, notification, frame) = match note {
            UserNote::Frame(frame) => (None, None, false, frame),
            UserNote::Notification(frame) => (None, None, true, frame),
            UserNote::Close(code) => (Some(code), None, false, ""),
            UserNote::Presence(online) => (None, Some(online), false, ""),
        };
        let envelope = Envelope {
            origin: self.node_id.clone(),
            room_id: None,
            seq: None,
            except_user: None,
            users: Some(users),
            close,
            online,
            access_changed: false,
            notification,
            frame: frame.to_owned(),
        };
        broker.publish(USERS_TOPIC, envelope.to_bytes());
        if online.is_none() {
            self.counters.published.inc();
        }
    }

    /// Whether a user has a connection on any node (this one, or another as
    /// last heard within the presence TTL).
    pub fn is_online(&self, user_id: &str) -> bool {
        self.hub.is_online(user_id) || self.remote.is_online(user_id, Instant::now())
    }

    /// A user's first connection on this node arrived (`true`) or its last
    /// one left (`false`): tells the other nodes, and says whether this
    /// node's subscribers should hear of it (not when another node still,
    /// or already, has the user online).
    pub fn local_presence(&self, user_id: &str, online: bool) -> bool {
        self.publish_presence(vec![user_id.to_owned()], online);
        !self.remote.is_online(user_id, Instant::now())
    }

    fn publish_presence(&self, users: Vec<String>, online: bool) {
        self.publish_to_users(users, UserNote::Presence(online));
    }

    fn receive_presence(self: &Arc<Self>, origin: &str, users: Vec<String>, online: bool) {
        let now = Instant::now();
        let changed = if online {
            self.remote.seen(origin, &users, now)
        } else {
            self.remote.gone(origin, &users, now)
        };
        self.announce_remote(changed, online);
    }

    /// Announces users whose cluster-wide state changed elsewhere, unless
    /// they have a connection here (then nothing changed for our clients).
    fn announce_remote(self: &Arc<Self>, users: Vec<String>, online: bool) {
        let users: Vec<String> = users
            .into_iter()
            .filter(|u| !self.hub.is_online(u))
            .collect();
        if users.is_empty() {
            return;
        }
        let cluster = self.clone();
        self.tasks.spawn(async move {
            for user in users {
                cluster.announce_presence(&user, online).await;
            }
        });
    }

    /// Tells the subscribers of a user's rooms on this node that the user
    /// came online or went offline (once per connection, not per room).
    pub async fn announce_presence(&self, user_id: &str, online: bool) {
        let rooms = match self.store.user_room_ids(user_id).await {
            Ok(rooms) => rooms,
            Err(error) => {
                tracing::warn!(%error, "presence not announced: rooms unavailable");
                return;
            }
        };
        self.announce_presence_in(&rooms, user_id, online);
    }

    /// [`Cluster::announce_presence`] with the user's rooms already known.
    pub fn announce_presence_in(&self, rooms: &[String], user_id: &str, online: bool) {
        if rooms.is_empty() {
            return;
        }
        let (id, last_seen) = (user_id.to_owned(), Timestamp::now());
        let frame = if online {
            ServerFrame::UserOnline {
                timestamp: Timestamp::now(),
                user_id: id,
                last_seen,
            }
        } else {
            ServerFrame::UserOffline {
                timestamp: Timestamp::now(),
                user_id: id,
                last_seen,
            }
        };
        self.hub.publish_to_rooms(rooms, &encode(&frame), user_id);
    }

    /// Every third of the presence TTL: repeats this node's online users to
    /// the others, and lapses the users of nodes that stopped repeating.
    pub fn spawn_presence(self: &Arc<Self>) {
        if self.broker.is_none() {
            return;
        }
        let cluster = Arc::downgrade(self);
        let every = (self.presence_ttl / 3).max(Duration::from_millis(100));
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                let local = cluster.hub.online_user_ids();
                if !local.is_empty() {
                    cluster.publish_presence(local, true);
                }
                let lapsed = cluster.remote.sweep(Instant::now());
                cluster.announce_remote(lapsed, false);
            }
        });
    }

    fn receive_for_users(&self, users: &[String], close: Option<u16>, frame: String) {
        match close {
            None => {
                let bytes = Utf8Bytes::from(frame);
                for user in users {
                    self.hub.send_to_user(user, &bytes);
                }
            }
            Some(code) if code == CloseCode::UserRefused.code() => {
                for user in users {
                    self.hub.close_user(user, CloseCode::UserRefused);
                }
            }
            Some(code) => tracing::warn!(code, "broker: unknown close code for users dropped"),
        }
    }

    /// Fans a room event out: to this node's subscribers now (in seq order,
    /// [`Hub::deliver`]) and once to the room's broker topic for the other
    /// nodes.
    pub fn fan_out(self: &Arc<Self>, room_id: &str, event: RoomEvent) {
        let Some(broker) = &self.broker else {
            self.hub.deliver(room_id, &event);
            return;
        };
        let envelope = Envelope {
            origin: self.node_id.clone(),
            room_id: Some(room_id.to_owned()),
            seq: event.seq,
            except_user: event.except_user.as_deref().map(str::to_owned),
            users: None,
            close: None,
            online: None,
            access_changed: false,
            notification: false,
            frame: event.bytes.as_str().to_owned(),
        };
        broker.publish(&room_topic(room_id), envelope.to_bytes());
        self.counters.published.inc();
        self.deliver(room_id, event);
    }

    /// Hands an event to the hub, through the room's reorder stage.
    fn deliver(self: &Arc<Self>, room_id: &str, event: RoomEvent) {
        let mut rooms = self.lock();
        // No entry: no local subscriber relies on this room.
        let Some(order) = rooms.get_mut(room_id) else {
            return;
        };
        let Some(next) = order.next else {
            order.starting.push(event);
            return;
        };
        let Some(seq) = event.seq else {
            self.hub.deliver(room_id, &event);
            return;
        };
        if seq < next {
            return; // duplicate
        }
        order.held.insert(seq, event);
        self.drain(room_id, order);
        if !order.held.is_empty() && !order.repairing {
            order.repairing = true;
            self.spawn_repair(room_id.to_owned(), order.generation);
        }
    }

    /// Delivers held events while they are the next seq.
    fn drain(&self, room_id: &str, order: &mut RoomOrder) {
        let Some(mut next) = order.next else {
            return;
        };
        while let Some(event) = order.held.remove(&next) {
            self.hub.deliver(room_id, &event);
            next += 1;
        }
        order.next = Some(next);
    }

    /// Waits [`GAP_WAIT`], then reads from the store what is still missing
    /// before the held events, until nothing is held.
    fn spawn_repair(self: &Arc<Self>, room_id: String, generation: u64) {
        let cluster = Arc::downgrade(self);
        self.tasks.spawn(async move {
            loop {
                tokio::time::sleep(GAP_WAIT).await;
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                let wanted = {
                    let mut rooms = cluster.lock();
                    let Some(order) = rooms.get_mut(&room_id) else {
                        return;
                    };
                    if order.generation != generation {
                        return;
                    }
                    match (order.next, order.held.keys().next()) {
                        (Some(next), Some(&first)) => (next, first),
                        _ => {
                            order.repairing = false;
                            return;
                        }
                    }
                };
                let (from, below) = wanted;
                let limit = u32::try_from(below - from)
                    .unwrap_or(REPAIR_PAGE)
                    .clamp(1, REPAIR_PAGE);
                let records = match cluster
                    .store
                    .history(&room_id, HistoryPage::After(from - 1), limit)
                    .await
                {
                    Ok((records, _)) => records,
                    Err(error) => {
                        tracing::warn!(%error, room_id, "reorder: missing seqs unreadable; retrying");
                        continue;
                    }
                };
                let mut rooms = cluster.lock();
                let Some(order) = rooms.get_mut(&room_id) else {
                    return;
                };
                if order.generation != generation {
                    return;
                }
                for record in records {
                    if order.next != Some(record.seq) {
                        continue;
                    }
                    let frame = ServerFrame::NewMessage {
                        room_id: room_id.clone(),
                        message: wire::message(record),
                        timestamp: Timestamp::now(),
                    };
                    let seq = order.next.unwrap_or_default();
                    // A copy that arrives late through the broker is now a
                    // duplicate and dropped.
                    order.held.remove(&seq);
                    cluster.hub.deliver(
                        &room_id,
                        &RoomEvent {
                            seq: Some(seq),
                            bytes: encode(&frame),
                            except_user: None,
                        },
                    );
                    order.next = Some(seq + 1);
                    cluster.drain(&room_id, order);
                }
                if order.held.is_empty() {
                    order.repairing = false;
                    return;
                }
            }
        });
    }

    /// Called before a local subscription to a room starts: makes sure this
    /// node receives the room's topic and knows the seq to deliver next, so
    /// that the subscription's snapshot (read after this returns) is not
    /// older than what the reorder stage lets through.
    pub async fn watch(self: &Arc<Self>, room_id: &str) {
        let Some(broker) = &self.broker else {
            return;
        };
        let (first, generation, mut ready) = {
            let mut rooms = self.lock();
            match rooms.get_mut(room_id) {
                Some(order) => {
                    order.watchers += 1;
                    (false, order.generation, order.ready.subscribe())
                }
                None => {
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                    let (ready, rx) = tokio::sync::watch::channel(false);
                    rooms.insert(
                        room_id.to_owned(),
                        RoomOrder {
                            watchers: 1,
                            generation,
                            next: None,
                            starting: Vec::new(),
                            held: BTreeMap::new(),
                            repairing: false,
                            ready,
                        },
                    );
                    (true, generation, rx)
                }
            }
        };
        if !first {
            let _ = ready.wait_for(|r| *r).await;
            return;
        }
        {
            let _topics = self.topics.lock().await;
            if let Err(error) = broker.subscribe(&room_topic(room_id)).await {
                self.counters.subscribe_errors.inc();
                // Kept wanted: the broker subscribes again once it reconnects.
                tracing::warn!(%error, room_id, "room topic not subscribed now");
            }
        }
        // Read after the topic is subscribed: every seq above it either
        // arrives through the broker or is repaired from the store.
        let last_seq = match self.store.get_room(room_id).await {
            Ok(Some(room)) => Some(room.last_seq),
            Ok(None) => Some(0),
            Err(error) => {
                tracing::warn!(%error, room_id, "reorder: start seq unknown; taking the first event's");
                None
            }
        };
        let mut rooms = self.lock();
        let Some(order) = rooms.get_mut(room_id) else {
            return;
        };
        if order.generation != generation {
            return;
        }
        let starting = std::mem::take(&mut order.starting);
        order.next = last_seq.map(|s| s + 1);
        let _ = order.ready.send(true);
        drop(rooms);
        for event in starting {
            if last_seq.is_none() {
                let mut rooms = self.lock();
                if let (Some(order), Some(seq)) = (rooms.get_mut(room_id), event.seq) {
                    order.next.get_or_insert(seq);
                }
            }
            self.deliver(room_id, event);
        }
    }

    /// Called once for every local room subscription that ended: the last
    /// one unsubscribes this node from the room's topic.
    pub fn release(self: &Arc<Self>, room_id: &str) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        {
            let mut rooms = self.lock();
            let Some(order) = rooms.get_mut(room_id) else {
                return;
            };
            order.watchers = order.watchers.saturating_sub(1);
            if order.watchers > 0 {
                return;
            }
            rooms.remove(room_id);
        }
        let cluster = self.clone();
        let room_id = room_id.to_owned();
        self.tasks.spawn(async move {
            let _topics = cluster.topics.lock().await;
            // Watched again meanwhile: keep the topic.
            if cluster.lock().contains_key(&room_id) {
                return;
            }
            if let Err(error) = broker.unsubscribe(&room_topic(&room_id)).await {
                tracing::warn!(%error, room_id, "room topic not unsubscribed");
            }
        });
    }

    /// Whether this node receives the room's topic (tests).
    pub fn is_watching(&self, room_id: &str) -> bool {
        self.lock().contains_key(room_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_widen_a_topic() {
        assert_eq!(room_topic("job-45_a"), "room.job-45_a");
        assert_eq!(room_topic("a.*>"), "room.a%2E%2A%3E");
    }
}
