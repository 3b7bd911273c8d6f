//! The webhook outbox (protocol.md §8.1): events written in the same
//! transaction as the change they report, and what the delivery loop
//! (`core::webhooks`) does with them.
//!
//! An event row holds references (the room, the message, the user) and the
//! few facts a later read could not find (the role of a removed member, the
//! seq of a deleted message); the payload is read when the event is sent.
//! Which events are written is the store's setting ([`Store::record_events`]):
//! none until webhooks are configured, so a server without them writes
//! nothing extra.
//!
//! [`Store::record_events`]: crate::store::Store::record_events

use crate::store::queries::{JobSql, Sql};
use crate::store::rows::{Statement, StoreRow, statement};
use crate::store::{NewMessage, StoreResult};
use confab_protocol::Timestamp;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use std::sync::atomic::{AtomicU16, Ordering};

/// The kinds of event of protocol.md §8.1's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A message was stored (user, system and assistant messages alike).
    MessageCreated,
    /// A member had no open connection anywhere when a message was stored.
    MessageMissed,
    /// A message was edited.
    MessageUpdated,
    /// A message was deleted.
    MessageDeleted,
    /// A room was created.
    RoomCreated,
    /// A room was renamed or its metadata replaced.
    RoomUpdated,
    /// A room was closed.
    RoomClosed,
    /// A user became a member, or a member's role changed.
    MemberAdded,
    /// A member left or was removed.
    MemberRemoved,
    /// An assistant session ended.
    SessionClosed,
}

impl EventKind {
    /// Every kind, in the table's order.
    pub const ALL: [EventKind; 10] = [
        EventKind::MessageCreated,
        EventKind::MessageMissed,
        EventKind::MessageUpdated,
        EventKind::MessageDeleted,
        EventKind::RoomCreated,
        EventKind::RoomUpdated,
        EventKind::RoomClosed,
        EventKind::MemberAdded,
        EventKind::MemberRemoved,
        EventKind::SessionClosed,
    ];

    /// The event's `type`, as sent, configured and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageCreated => "message.created",
            EventKind::MessageMissed => "message.missed",
            EventKind::MessageUpdated => "message.updated",
            EventKind::MessageDeleted => "message.deleted",
            EventKind::RoomCreated => "room.created",
            EventKind::RoomUpdated => "room.updated",
            EventKind::RoomClosed => "room.closed",
            EventKind::MemberAdded => "member.added",
            EventKind::MemberRemoved => "member.removed",
            EventKind::SessionClosed => "session.closed",
        }
    }

    /// The kind named `name`, if there is one.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of event kinds: the ones the store writes (`webhook.events`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSet(u16);

impl EventSet {
    /// No event: what a server without webhooks writes.
    pub const NONE: EventSet = EventSet(0);

    /// Every kind.
    pub fn all() -> EventSet {
        EventSet::of(EventKind::ALL)
    }

    /// These kinds.
    pub fn of(kinds: impl IntoIterator<Item = EventKind>) -> EventSet {
        EventSet(kinds.into_iter().fold(0, |bits, kind| bits | kind.bit()))
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether the set is empty (then no job looks for events at all).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The events of `events` whose kind is in the set.
    pub(crate) fn keep(self, events: impl IntoIterator<Item = NewEvent>) -> Vec<NewEvent> {
        events
            .into_iter()
            .filter(|event| self.contains(event.kind))
            .collect()
    }
}

/// The [`EventSet`] a store writes, changed at start-up once the
/// configuration is known (the store is opened before).
#[derive(Debug, Default)]
pub(crate) struct RecordedEvents(AtomicU16);

impl RecordedEvents {
    /// What the store writes now.
    pub(crate) fn get(&self) -> EventSet {
        EventSet(self.0.load(Ordering::Relaxed))
    }

    /// From now on, write `events`.
    pub(crate) fn set(&self, events: EventSet) {
        self.0.store(events.0, Ordering::Relaxed);
    }
}

/// An event to write, with its references.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    /// What happened.
    pub(crate) kind: EventKind,
    /// Where.
    pub(crate) room_id: String,
    /// The message, for `message.*`.
    pub(crate) message_id: Option<String>,
    /// The user, for `member.*` and `message.missed`.
    pub(crate) user_id: Option<String>,
    /// The member's room role, for `member.*` (a removed one's is gone).
    pub(crate) role: Option<String>,
    /// The message's seq, for `message.deleted`.
    pub(crate) seq: Option<i64>,
}

impl NewEvent {
    /// An event about a room alone.
    pub(crate) fn room(kind: EventKind, room_id: &str) -> NewEvent {
        NewEvent {
            kind,
            room_id: room_id.to_owned(),
            message_id: None,
            user_id: None,
            role: None,
            seq: None,
        }
    }

    /// An event about a message.
    pub(crate) fn message(kind: EventKind, room_id: &str, message_id: &str) -> NewEvent {
        NewEvent {
            message_id: Some(message_id.to_owned()),
            ..NewEvent::room(kind, room_id)
        }
    }

    /// An event about a member and its room role.
    pub(crate) fn member(kind: EventKind, room_id: &str, user_id: &str, role: &str) -> NewEvent {
        NewEvent {
            user_id: Some(user_id.to_owned()),
            role: Some(role.to_owned()),
            ..NewEvent::room(kind, room_id)
        }
    }

    /// `message.missed` for one member.
    pub(crate) fn missed(room_id: &str, message_id: &str, user_id: &str) -> NewEvent {
        NewEvent {
            user_id: Some(user_id.to_owned()),
            ..NewEvent::message(EventKind::MessageMissed, room_id, message_id)
        }
    }
}

/// A new event's id: `evt_` + a UUIDv7, so ids sort in creation order.
pub(crate) fn event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// What storing `message` reports (before [`EventSet::keep`] picks):
/// `message.created`, and `message.missed` for each of `missed_by`.
pub(crate) fn append_events(message: &NewMessage) -> Vec<NewEvent> {
    let (room, id) = (&message.room_id, &message.id);
    std::iter::once(NewEvent::message(EventKind::MessageCreated, room, id))
        .chain(
            message
                .missed_by
                .iter()
                .map(|user| NewEvent::missed(room, id, user)),
        )
        .collect()
}

/// An event in the outbox, as the delivery loop and the failed list see it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// `evt_` + a UUIDv7: the `webhook-id` of every attempt.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// Where.
    pub room_id: String,
    /// The message, for `message.*`.
    pub message_id: Option<String>,
    /// The user, for `member.*` and `message.missed`.
    pub user_id: Option<String>,
    /// The member's room role, for `member.*`.
    pub role: Option<String>,
    /// The message's seq, for `message.deleted`.
    pub seq: Option<i64>,
    /// When the change was stored: the payload's `timestamp`.
    pub created_at: Timestamp,
    /// Attempts begun so far (a claim begins one).
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Set once the event ran out of attempts.
    pub failed_at: Option<Timestamp>,
}

/// How an attempt to deliver an event ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The receiver answered 2xx: the event is done (and deleted).
    Delivered,
    /// It failed; try again at this time.
    Retry {
        /// When the next attempt is due.
        at: Timestamp,
        /// Why this one failed.
        error: String,
    },
    /// It failed and was the last attempt: kept as failed.
    Failed {
        /// Why it failed.
        error: String,
    },
}

/// The outbox at a glance, for `/metrics` and the delivery loop's sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxState {
    /// Events waiting to be delivered (not failed).
    pub pending: i64,
    /// When the oldest of them was stored.
    pub oldest: Option<Timestamp>,
    /// When the next of them falls due.
    pub next_due: Option<Timestamp>,
}

/// What [`crate::store::Store::trim_outbox`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trimmed {
    /// Events older than the age limit.
    pub by_age: u64,
    /// The oldest events beyond the cap.
    pub by_cap: u64,
}

/// The columns [`event_from_row`] reads.
macro_rules! event_columns {
    () => {
        "id, kind, room_id, message_id, user_id, role, seq, created_at, attempts, last_error, failed_at"
    };
}

/// Writes one event: `(id, kind, room, message, user, role, seq, created_at)`,
/// due at once.
const INSERT_EVENT: Statement = statement!(
    "INSERT INTO webhook_events \
         (id, kind, room_id, message_id, user_id, role, seq, created_at, attempts, next_attempt_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?8)"
);

/// Claims up to `limit` due events for one attempt each: `(now, until,
/// limit)`. PostgreSQL skips rows another node is claiming, so each event
/// is claimed by one node; the outer condition is checked again on the row
/// as it is when its lock is taken.
const CLAIM_EVENTS: Statement = Statement {
    sqlite: concat!(
        "UPDATE webhook_events SET next_attempt_at = ?2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM webhook_events \
                      WHERE failed_at IS NULL AND next_attempt_at <= ?1 \
                      ORDER BY next_attempt_at, id LIMIT ?3) \
         RETURNING ",
        event_columns!()
    ),
    postgres: concat!(
        "UPDATE webhook_events SET next_attempt_at = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM webhook_events \
                      WHERE failed_at IS NULL AND next_attempt_at <= $1 \
                      ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
           AND failed_at IS NULL AND next_attempt_at <= $1 \
         RETURNING ",
        event_columns!()
    ),
};

/// Deletes a delivered event: `(id)`.
const DELETE_EVENT: Statement = statement!("DELETE FROM webhook_events WHERE id = ?1");

/// Sets when a failed event is tried next: `(id, at, error)`.
const RETRY_EVENT: Statement =
    statement!("UPDATE webhook_events SET next_attempt_at = ?2, last_error = ?3 WHERE id = ?1");

/// Marks an event failed for good: `(id, now, error)`.
const FAIL_EVENT: Statement =
    statement!("UPDATE webhook_events SET failed_at = ?2, last_error = ?3 WHERE id = ?1");

/// Pending events, the oldest's time and the next due time.
const OUTBOX_STATE: Statement = statement!(
    "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest, MIN(next_attempt_at) AS next_due \
     FROM webhook_events WHERE failed_at IS NULL"
);

/// Every event, failed or not.
const COUNT_EVENTS: Statement = statement!("SELECT COUNT(*) FROM webhook_events");

/// Deletes the events stored before a time: `(before)`.
const DELETE_OLD_EVENTS: Statement = statement!("DELETE FROM webhook_events WHERE created_at < ?1");

/// Deletes the `n` oldest events: `(n)`.
const DELETE_OLDEST_EVENTS: Statement = statement!(
    "DELETE FROM webhook_events WHERE id IN \
         (SELECT id FROM webhook_events ORDER BY id LIMIT ?1)"
);

/// Failed events, the newest first: `(limit)`.
const FAILED_EVENTS: Statement = statement!(concat!(
    "SELECT ",
    event_columns!(),
    " FROM webhook_events WHERE failed_at IS NOT NULL ORDER BY id DESC LIMIT ?1"
));

/// Puts a failed event back in line with fresh attempts: `(id, now)`.
const RETRY_FAILED_EVENT: Statement = statement!(
    "UPDATE webhook_events SET failed_at = NULL, attempts = 0, next_attempt_at = ?2 \
     WHERE id = ?1 AND failed_at IS NOT NULL"
);

/// Puts every failed event back in line: `(now)`.
const RETRY_ALL_FAILED_EVENTS: Statement = statement!(
    "UPDATE webhook_events SET failed_at = NULL, attempts = 0, next_attempt_at = ?1 \
     WHERE failed_at IS NOT NULL"
);

/// An outbox row.
fn event_from_row(row: &impl StoreRow) -> sqlx::Result<OutboxEvent> {
    let kind = row.text("kind")?;
    Ok(OutboxEvent {
        kind: EventKind::parse(&kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown webhook event kind {kind:?}").into())
        })?,
        id: row.text("id")?,
        room_id: row.text("room_id")?,
        message_id: row.text_opt("message_id")?,
        user_id: row.text_opt("user_id")?,
        role: row.text_opt("role")?,
        seq: row.int_opt("seq")?,
        created_at: Timestamp(row.int("created_at")?),
        attempts: row.int("attempts")?,
        last_error: row.text_opt("last_error")?,
        failed_at: row.int_opt("failed_at")?.map(Timestamp),
    })
}

impl<DB> Sql<DB>
where
    DB: JobSql,
    DB::Row: StoreRow,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
{
    /// Writes `events` in the job's transaction, stamped now.
    pub(crate) async fn record_events(
        conn: &mut DB::Connection,
        events: &[NewEvent],
    ) -> StoreResult<()> {
        let now = Timestamp::now().millis();
        for event in events {
            sqlx::query(DB::spell(&INSERT_EVENT))
                .bind(event_id())
                .bind(event.kind.as_str())
                .bind(&event.room_id)
                .bind(&event.message_id)
                .bind(&event.user_id)
                .bind(&event.role)
                .bind(event.seq)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Claims due events (see [`CLAIM_EVENTS`]).
    pub(crate) async fn claim_events(
        conn: &mut DB::Connection,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let rows = sqlx::query(DB::spell(&CLAIM_EVENTS))
            .bind(now.millis())
            .bind(until.millis())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?;
        // RETURNING gives no order: oldest first.
        events.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(events)
    }

    /// Records how an attempt ended.
    pub(crate) async fn finish_event(
        conn: &mut DB::Connection,
        id: String,
        attempt: Attempt,
    ) -> StoreResult<()> {
        let query = match attempt {
            Attempt::Delivered => sqlx::query(DB::spell(&DELETE_EVENT)).bind(id),
            Attempt::Retry { at, error } => sqlx::query(DB::spell(&RETRY_EVENT))
                .bind(id)
                .bind(at.millis())
                .bind(error),
            Attempt::Failed { error } => sqlx::query(DB::spell(&FAIL_EVENT))
                .bind(id)
                .bind(Timestamp::now().millis())
                .bind(error),
        };
        query.execute(&mut *conn).await?;
        Ok(())
    }

    /// The outbox at a glance.
    pub(crate) async fn outbox_state(
        ex: impl Executor<'_, Database = DB>,
    ) -> StoreResult<OutboxState> {
        let row = sqlx::query(DB::spell(&OUTBOX_STATE)).fetch_one(ex).await?;
        Ok(OutboxState {
            pending: row.int("pending")?,
            oldest: row.int_opt("oldest")?.map(Timestamp),
            next_due: row.int_opt("next_due")?.map(Timestamp),
        })
    }

    /// Deletes events stored before `before`, then the oldest beyond `keep`.
    pub(crate) async fn trim_outbox(
        conn: &mut DB::Connection,
        before: Timestamp,
        keep: i64,
    ) -> StoreResult<Trimmed> {
        let old = sqlx::query(DB::spell(&DELETE_OLD_EVENTS))
            .bind(before.millis())
            .execute(&mut *conn)
            .await?;
        let (count,): (i64,) = sqlx::query_as(DB::spell(&COUNT_EVENTS))
            .fetch_one(&mut *conn)
            .await?;
        let excess = count.saturating_sub(keep.max(0));
        let mut trimmed = Trimmed {
            by_age: DB::rows_affected(&old),
            by_cap: 0,
        };
        if excess > 0 {
            let done = sqlx::query(DB::spell(&DELETE_OLDEST_EVENTS))
                .bind(excess)
                .execute(&mut *conn)
                .await?;
            trimmed.by_cap = DB::rows_affected(&done);
        }
        Ok(trimmed)
    }

    /// The newest failed events.
    pub(crate) async fn failed_events(
        ex: impl Executor<'_, Database = DB>,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let rows = sqlx::query(DB::spell(&FAILED_EVENTS))
            .bind(i64::from(limit))
            .fetch_all(ex)
            .await?;
        Ok(rows
            .iter()
            .map(event_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?)
    }

    /// Puts failed events (these, or all) back in line; how many.
    pub(crate) async fn retry_failed_events(
        conn: &mut DB::Connection,
        ids: Option<Vec<String>>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let Some(ids) = ids else {
            let done = sqlx::query(DB::spell(&RETRY_ALL_FAILED_EVENTS))
                .bind(now.millis())
                .execute(&mut *conn)
                .await?;
            return Ok(DB::rows_affected(&done));
        };
        let mut retried = 0;
        for id in ids {
            let done = sqlx::query(DB::spell(&RETRY_FAILED_EVENT))
                .bind(id)
                .bind(now.millis())
                .execute(&mut *conn)
                .await?;
            retried += DB::rows_affected(&done);
        }
        Ok(retried)
    }
}
