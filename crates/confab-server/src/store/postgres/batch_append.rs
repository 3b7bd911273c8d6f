//! Appending a run of messages in one or two statements.
//!
//! Appending one message at a time costs four round trips to PostgreSQL
//! (savepoint, `client_msg_id` look-up, the insert, release), and a batch of
//! sixty sends waited on two hundred and forty of them: the writer, not the
//! database, bounded the store (docs/performance.md). So the writer hands
//! the appends that sit next to each other in a batch to [`append_run`],
//! which writes them whatever their number with
//!
//! - one look-up of the `client_msg_id`s already stored (only when the run
//!   has keyed sends), and
//! - one statement that moves every room's `last_seq` by its count of new
//!   messages, inserts them all with their seqs, writes their webhook events
//!   and returns each sender's display fields, the rows passed as arrays
//!   (`UNNEST`), so its text never changes and it is prepared once per
//!   connection.
//!
//! The batch already holds its rooms' row locks (see the writer), so no
//! other writer, on any node, can move a `last_seq` or store a key between
//! the look-up and the insert. The answers are exactly those of appending
//! the messages one by one in queue order: seqs follow the queue, a repeated
//! `client_msg_id` is a duplicate of the first, an unknown room stores
//! nothing of its messages ([`StoreError::NotFound`]). What the plan cannot
//! foresee (an unknown sender, a taken message id) fails the statement, and
//! the writer then rolls the run back and appends its messages one by one,
//! so that only the offender fails.

use super::jobs;
use super::rows::{json_object, message_select};
use super::writer::{Answer, Outcome, WriteJob};
use crate::store::append_plan::{Key, Slot, asked_key, outcomes, repeats};
use crate::store::outbox::{NewEvent, append_events, event_id};
use crate::store::rows::message_from_row;
use crate::store::writer::run_caught;
use crate::store::{AppendOutcome, EventSet, MessageRecord, NewMessage, StoreError};
use confab_protocol::Timestamp;
use futures_util::future::BoxFuture;
use sqlx::Row;
use sqlx::postgres::PgConnection;
use std::collections::HashMap;

/// A queued append, which the writer can see the message of.
pub(super) struct AppendJob {
    /// The message to store.
    pub(super) message: NewMessage,
    /// The webhook events the store wrote when this was queued.
    pub(super) events: EventSet,
    /// Its result, where it goes, and the hook to run after the commit.
    pub(super) answer: Answer<AppendOutcome>,
}

impl WriteJob for AppendJob {
    fn rooms(&self) -> &[String] {
        std::slice::from_ref(&self.message.room_id)
    }

    fn reset(&mut self) {
        self.answer.result = None;
    }

    /// Appends this message alone: how a run that failed is retried.
    fn run<'a>(&'a mut self, conn: &'a mut PgConnection) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let work = jobs::append_message(conn, self.message.clone(), self.events);
            self.answer.result = Some(run_caught(work, "PostgreSQL").await);
        })
    }

    fn outcome(&self) -> Outcome {
        self.answer.outcome()
    }

    fn settle(self: Box<Self>, batch: Option<&sqlx::Error>) {
        self.answer.settle(batch);
    }

    fn is_append(&self) -> bool {
        true
    }

    fn as_append(&mut self) -> Option<&mut AppendJob> {
        Some(self)
    }
}

/// Messages already stored under any of the keys given as three arrays
/// (senders, rooms, `client_msg_id`s): a probe of the unique index per key,
/// as the writer's connection plans each statement for its arguments (see
/// the writer's `Link`).
const ORIGINALS: &str = concat!(
    message_select!(),
    "WHERE m.client_msg_id IS NOT NULL \
       AND (m.sender_id, m.room_id, m.client_msg_id) IN \
           (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]))"
);

/// Moves each room's `last_seq` by its number of new messages, inserts them
/// (`nth` = the message's place among its room's new ones, from 1) and
/// their webhook events, and returns what the answers need. A message of a
/// room that does not exist is not inserted and returns no row.
const WRITE_RUN: &str = "\
    WITH v AS ( \
        SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
                             $6::TEXT[], $7::TEXT[], $8::JSONB[], $9::TEXT[], \
                             $10::FLOAT8[], $11::FLOAT8[], $12::TEXT[], $13::BIGINT[]) \
            AS v(id, room_id, nth, sender_id, content, message_type, reply_to, metadata, \
                 attachment_id, lat, lng, client_msg_id, created_at)), \
    bumped AS ( \
        UPDATE rooms r SET last_seq = r.last_seq + c.n, \
                           last_activity = GREATEST(r.last_activity, c.at) \
        FROM (SELECT room_id, COUNT(*) AS n, MAX(created_at) AS at FROM v GROUP BY room_id) c \
        WHERE r.id = c.room_id \
        RETURNING r.id, r.last_seq - c.n AS base), \
    inserted AS ( \
        INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, reply_to, \
            metadata, attachment_id, lat, lng, client_msg_id, created_at, edited_at, deleted) \
        SELECT v.id, v.room_id, b.base + v.nth, v.sender_id, v.content, v.message_type, \
               v.reply_to, v.metadata, v.attachment_id, v.lat, v.lng, v.client_msg_id, \
               v.created_at, NULL, FALSE \
        FROM v JOIN bumped b ON b.id = v.room_id \
        RETURNING id, seq, sender_id), \
    events AS ( \
        INSERT INTO webhook_events (id, kind, room_id, message_id, user_id, role, seq, \
            created_at, attempts, next_attempt_at) \
        SELECT e.id, e.kind, e.room_id, e.message_id, e.user_id, e.role, e.seq, $21, 0, $21 \
        FROM UNNEST($14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::TEXT[], \
                    $19::TEXT[], $20::BIGINT[]) \
            AS e(id, kind, room_id, message_id, user_id, role, seq) \
        WHERE e.message_id IN (SELECT id FROM inserted)) \
    SELECT i.id, i.seq, u.username, u.name FROM inserted i JOIN users u ON u.id = i.sender_id";

/// Appends `run` (in queue order) in the open transaction, which holds the
/// rooms' locks, and stores each job's result. On `Err` the transaction
/// (or the run's savepoint) must be rolled back: the results are unset.
pub(super) async fn append_run(
    conn: &mut PgConnection,
    run: &mut [&mut AppendJob],
) -> sqlx::Result<()> {
    let slots = {
        let messages: Vec<&NewMessage> = run.iter().map(|job| &job.message).collect();
        let events: Vec<EventSet> = run.iter().map(|job| job.events).collect();
        plan_and_write(conn, &messages, &events).await?
    };
    let messages = run.iter().map(|job| job.message.clone());
    let answers = outcomes(messages.collect::<Vec<_>>(), slots);
    for (job, answer) in run.iter_mut().zip(answers) {
        job.answer.result = Some(answer);
    }
    Ok(())
}

/// Looks up the run's keys, decides each append's fate and writes the new
/// messages: two round trips, one when no send is keyed.
async fn plan_and_write(
    conn: &mut PgConnection,
    run: &[&NewMessage],
    events: &[EventSet],
) -> sqlx::Result<Vec<Slot>> {
    let originals = look_up(conn, run).await?;
    let mut slots = repeats(run, &originals);

    let fresh: Vec<(usize, &NewMessage)> = run
        .iter()
        .enumerate()
        .filter(|(i, _)| slots[*i].is_none())
        .map(|(i, m)| (i, *m))
        .collect();
    let new_events: Vec<NewEvent> = fresh
        .iter()
        .flat_map(|(i, m)| events[*i].keep(append_events(m)))
        .collect();
    let mut stored = write(conn, &fresh, &new_events).await?;

    for (i, m) in fresh {
        slots[i] = Some(match stored.remove(m.id.as_str()) {
            Some((seq, username, name)) => Slot::Stored(seq, username, name),
            // Its room does not exist.
            None => Slot::Failed(StoreError::NotFound),
        });
    }
    Ok(slots
        .into_iter()
        .map(|slot| slot.unwrap_or(Slot::Failed(StoreError::NotFound)))
        .collect())
}

/// The messages already stored under the run's `client_msg_id`s.
async fn look_up<'r>(
    conn: &mut PgConnection,
    run: &[&'r NewMessage],
) -> sqlx::Result<HashMap<Key<'r>, MessageRecord>> {
    let keyed: Vec<&'r NewMessage> = run
        .iter()
        .copied()
        .filter(|m| m.client_msg_id.is_some())
        .collect();
    if keyed.is_empty() {
        return Ok(HashMap::new());
    }
    let senders: Vec<&str> = keyed.iter().map(|m| m.sender_id.as_str()).collect();
    let rooms: Vec<&str> = keyed.iter().map(|m| m.room_id.as_str()).collect();
    let keys: Vec<&str> = keyed
        .iter()
        .filter_map(|m| m.client_msg_id.as_deref())
        .collect();
    let rows = sqlx::query(ORIGINALS)
        .bind(&senders)
        .bind(&rooms)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
    let mut originals = HashMap::with_capacity(rows.len());
    for row in rows {
        let original = message_from_row(&row, "")?;
        if let Some(key) = asked_key(&keyed, &original) {
            originals.insert(key, original);
        }
    }
    Ok(originals)
}

/// Runs [`WRITE_RUN`] for the new messages; returns, by message id, the
/// seq and the sender's username and display name of each one stored.
async fn write<'r>(
    conn: &mut PgConnection,
    fresh: &[(usize, &'r NewMessage)],
    events: &[NewEvent],
) -> sqlx::Result<HashMap<&'r str, (i64, String, Option<String>)>> {
    if fresh.is_empty() {
        return Ok(HashMap::new());
    }
    let mut nth_in_room: HashMap<&str, i64> = HashMap::new();
    let nth: Vec<i64> = fresh
        .iter()
        .map(|(_, m)| {
            let n = nth_in_room.entry(m.room_id.as_str()).or_insert(0);
            *n += 1;
            *n
        })
        .collect();
    let column = |f: fn(&NewMessage) -> Option<&str>| -> Vec<Option<&str>> {
        fresh.iter().map(|(_, m)| f(m)).collect()
    };
    let rows = sqlx::query(WRITE_RUN)
        .bind(column(|m| Some(&m.id)))
        .bind(column(|m| Some(&m.room_id)))
        .bind(&nth)
        .bind(column(|m| Some(&m.sender_id)))
        .bind(column(|m| Some(&m.content)))
        .bind(column(|m| Some(m.message_type.as_str())))
        .bind(column(|m| m.reply_to.as_deref()))
        .bind(
            fresh
                .iter()
                .map(|(_, m)| json_object(&m.metadata))
                .collect::<Vec<_>>(),
        )
        .bind(column(|m| m.attachment.as_ref().map(|a| a.id.as_str())))
        .bind(
            fresh
                .iter()
                .map(|(_, m)| m.location.map(|l| l.lat))
                .collect::<Vec<_>>(),
        )
        .bind(
            fresh
                .iter()
                .map(|(_, m)| m.location.map(|l| l.lng))
                .collect::<Vec<_>>(),
        )
        .bind(column(|m| m.client_msg_id.as_deref()))
        .bind(
            fresh
                .iter()
                .map(|(_, m)| m.created_at.millis())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|_| event_id()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.room_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.message_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.user_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.role.as_deref()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(Timestamp::now().millis())
        .fetch_all(&mut *conn)
        .await?;

    // The run's ids, borrowed for the answer's keys (the statement
    // inserted only those).
    let ids: HashMap<&str, &'r str> = fresh
        .iter()
        .map(|(_, m)| (m.id.as_str(), m.id.as_str()))
        .collect();
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        if let Some(&id) = ids.get(id.as_str()) {
            let display = (
                row.try_get("seq")?,
                row.try_get("username")?,
                row.try_get("name")?,
            );
            stored.insert(id, display);
        }
    }
    Ok(stored)
}
