//! Appending a run of messages in two round trips.
//!
//! sqlx runs every SQLite statement on its own worker thread and hands each
//! one over and back through a channel: a thread wake-up each way. Appending
//! one message at a time costs five such round trips (savepoint, sender
//! look-up, seq bump, insert, release), and those hand-offs, not SQLite or
//! the disk, bounded the store (docs/performance.md). So the writer takes the
//! appends that sit next to each other in a batch and writes them together,
//! in two multi-statement queries whatever the number of messages: one opens
//! the run's savepoint and looks up the senders, the rooms' `last_seq` and
//! any `client_msg_id` already stored; the other inserts every message with
//! one multi-row `INSERT`, moves the rooms with one `UPDATE … FROM (VALUES
//! …)` and releases the savepoint. A batch of nothing but appends also
//! begins its transaction with the first and commits with the second.
//!
//! The answers are exactly those of appending the messages one by one in
//! queue order: seqs follow the queue, a repeated `client_msg_id` (stored
//! before, or earlier in the same run) is a duplicate of the first, an unknown
//! sender or room is [`StoreError::NotFound`] and stores nothing. Anything
//! the plan cannot foresee (a constraint, such as a taken message id) rolls
//! the run's savepoint back, and each message is then tried as a run of its
//! own, so only the offender fails.

use super::rows::{json_text, message_select};
use super::writer::{Finished, Settle};
use crate::store::append_plan::{Key, Slot, asked_key, outcomes, repeats};
use crate::store::outbox::{NewEvent, append_events, event_id};
use crate::store::rows::{message_from_row, on_constraint};
use crate::store::writer::Hook;
use crate::store::{
    AppendOutcome, CommitHook, EventSet, MessageRecord, NewMessage, StoreError, StoreResult,
};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Executor, QueryBuilder, Row, Sqlite};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// A queued append, kept apart from other jobs so that the writer can see
/// what it writes.
pub(super) struct AppendJob {
    /// The message to store.
    pub(super) message: NewMessage,
    /// Where the outcome goes, after commit.
    pub(super) reply: oneshot::Sender<StoreResult<AppendOutcome>>,
    /// Runs on the settler right after the commit (see `Store::append_message`).
    pub(super) hook: CommitHook,
    /// The webhook events the store wrote when this was queued.
    pub(super) events: EventSet,
}

impl AppendJob {
    /// Answers with `error` without running.
    pub(super) fn fail(self, error: StoreError) {
        // The caller may have given up waiting; nothing to do then.
        let _ = self.reply.send(Err(error));
    }
}

/// A run that lost its transaction (SQLite rolled it back: disk full, I/O
/// error): nothing of it is stored.
pub(super) struct Broken {
    /// What broke the transaction.
    pub(super) error: sqlx::Error,
    /// Appends that ran before the break; their answers must say it.
    pub(super) ran: Vec<Box<dyn Settle>>,
    /// Appends that did not run.
    pub(super) unrun: Vec<AppendJob>,
}

/// A whole batch of appends as its own transaction, begun with the look-ups
/// and committed with the writes: two round trips in all, which is what a
/// busy room's commit costs. Returns the answers waiting to be sent, or,
/// when anything failed (everything is rolled back then), the run for the
/// ordinary path, which finds out what failed.
pub(super) async fn append_transaction(
    conn: &mut SqliteConnection,
    run: Vec<AppendJob>,
) -> Result<Vec<Box<dyn Settle>>, Vec<AppendJob>> {
    let messages: Vec<&NewMessage> = run.iter().map(|job| &job.message).collect();
    let events: Vec<EventSet> = run.iter().map(|job| job.events).collect();
    let planned = plan_and_write(conn, &messages, &events, Framing::OwnTransaction).await;
    drop(messages);
    match planned {
        Ok(slots) => Ok(finish(run, slots)),
        Err(e) => {
            tracing::debug!(error = %e, appends = run.len(), "batched append transaction failed; trying again step by step");
            // Nothing to undo if not even BEGIN ran: the error is ignored.
            let _ = conn.execute("ROLLBACK").await;
            Err(run)
        }
    }
}

/// Appends `run` (in queue order) inside the open transaction. If the run
/// cannot be written whole (a constraint the plan could not foresee, such
/// as a taken message id), its savepoint is rolled back and each append is
/// tried as a run of its own, so only the offender fails.
pub(super) async fn append_run(
    conn: &mut SqliteConnection,
    run: Vec<AppendJob>,
) -> Result<Vec<Box<dyn Settle>>, Broken> {
    let error = match try_run(conn, &run).await {
        Ok(slots) => return Ok(finish(run, slots)),
        Err(Undone::Broken(error)) => {
            return Err(Broken {
                error,
                ran: Vec::new(),
                unrun: run,
            });
        }
        Err(Undone::RolledBack(error)) => error,
    };
    if run.len() == 1 {
        // A run of one is its own offender.
        return Ok(match run.into_iter().next() {
            Some(job) => vec![refused(job, on_constraint(error))],
            None => Vec::new(),
        });
    }
    tracing::debug!(error = %error, appends = run.len(), "batched append refused; appending one by one");
    let mut ran = Vec::with_capacity(run.len());
    let mut jobs = run.into_iter();
    while let Some(job) = jobs.next() {
        let one = vec![job];
        match try_run(conn, &one).await {
            Ok(slots) => ran.extend(finish(one, slots)),
            Err(Undone::RolledBack(error)) => {
                if let Some(job) = one.into_iter().next() {
                    ran.push(refused(job, on_constraint(error)));
                }
            }
            Err(Undone::Broken(error)) => {
                let mut unrun = one;
                unrun.extend(jobs);
                return Err(Broken { error, ran, unrun });
            }
        }
    }
    Ok(ran)
}

/// Why [`try_run`] wrote nothing.
enum Undone {
    /// The run failed and its savepoint was rolled back: the transaction
    /// goes on.
    RolledBack(sqlx::Error),
    /// The transaction itself is lost.
    Broken(sqlx::Error),
}

/// One attempt at writing `run` whole in its savepoint.
async fn try_run(conn: &mut SqliteConnection, run: &[AppendJob]) -> Result<Vec<Slot>, Undone> {
    // The messages alone: the hooks are `Send` but not `Sync`, so the jobs
    // cannot be borrowed across the awaits.
    let messages: Vec<&NewMessage> = run.iter().map(|job| &job.message).collect();
    let events: Vec<EventSet> = run.iter().map(|job| job.events).collect();
    let planned = plan_and_write(conn, &messages, &events, Framing::InTransaction).await;
    drop(messages);
    match planned {
        Ok(slots) => Ok(slots),
        Err(error) => match conn.execute("ROLLBACK TO SAVEPOINT run").await {
            Ok(_) => match conn.execute("RELEASE SAVEPOINT run").await {
                Ok(_) => Err(Undone::RolledBack(error)),
                Err(e) => Err(Undone::Broken(e)),
            },
            Err(e) => Err(Undone::Broken(e)),
        },
    }
}

/// The answer of an append refused by the database.
fn refused(job: AppendJob, error: StoreError) -> Box<dyn Settle> {
    let hook: Hook<AppendOutcome> = job.hook;
    Box::new(Finished {
        result: Err(error),
        reply: job.reply,
        hook: Some(hook),
    })
}

/// Looks up what the run needs, decides each append's fate and writes the
/// stored ones: two round trips to sqlx's thread, each several statements
/// (sqlx binds a multi-statement query's `?`s in order across them).
async fn plan_and_write(
    conn: &mut SqliteConnection,
    run: &[&NewMessage],
    events: &[EventSet],
    framing: Framing,
) -> sqlx::Result<Vec<Slot>> {
    let LookedUp {
        originals,
        senders,
        mut last_seqs,
    } = look_up(conn, run, framing).await?;

    let mut slots = Vec::with_capacity(run.len());
    for (m, repeat) in run.iter().zip(repeats(run, &originals)) {
        if let Some(repeat) = repeat {
            slots.push(repeat);
            continue;
        }
        let Some((username, name)) = senders.get(m.sender_id.as_str()) else {
            slots.push(Slot::Failed(StoreError::NotFound));
            continue;
        };
        let Some(last_seq) = last_seqs.get_mut(m.room_id.as_str()) else {
            slots.push(Slot::Failed(StoreError::NotFound));
            continue;
        };
        *last_seq += 1;
        slots.push(Slot::Stored(*last_seq, username.clone(), name.clone()));
    }

    let stored: Vec<(&NewMessage, i64)> = run
        .iter()
        .zip(&slots)
        .filter_map(|(m, slot)| match slot {
            Slot::Stored(seq, ..) => Some((*m, *seq)),
            _ => None,
        })
        .collect();
    let new_events: Vec<NewEvent> = run
        .iter()
        .zip(events)
        .zip(&slots)
        .filter(|(_, slot)| matches!(slot, Slot::Stored(..)))
        .flat_map(|((m, set), _)| set.keep(append_events(m)))
        .collect();
    write(conn, &stored, &new_events, framing).await?;
    Ok(slots)
}

/// Where a run's statements sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// In the batch's open transaction, in a savepoint of its own.
    InTransaction,
    /// The run is the batch: it begins and commits the transaction too. No
    /// savepoint: a failure rolls the whole transaction back, and a
    /// savepoint would journal every page the run touches (a copy each).
    OwnTransaction,
}

impl Framing {
    /// What the writes end with.
    fn closing(self) -> &'static str {
        match self {
            Framing::InTransaction => "RELEASE SAVEPOINT run",
            Framing::OwnTransaction => "COMMIT",
        }
    }
}

/// [`look_up`]'s statements: after `$opening`, the run's senders and rooms
/// (each bound as a JSON array of ids), then `$originals`.
macro_rules! look_up_sql {
    ($opening:expr, $originals:expr) => {
        concat!(
            $opening,
            "SELECT 'u' AS kind, id, username, name FROM users \
             WHERE id IN (SELECT value FROM json_each(?)); \
             SELECT 'r' AS kind, id, last_seq FROM rooms \
             WHERE id IN (SELECT value FROM json_each(?))",
            $originals
        )
    };
}

/// The messages already stored under the run's keys, bound as one JSON
/// array of `[sender, room, client_msg_id]`: a probe of the unique index per
/// key.
macro_rules! originals_sql {
    () => {
        concat!(
            "; SELECT 'o' AS kind, o.* FROM (",
            message_select!(),
            "WHERE m.client_msg_id IS NOT NULL \
               AND (m.sender_id, m.room_id, m.client_msg_id) IN \
                   (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
                           json_extract(value, '$[2]') FROM json_each(?))) AS o"
        )
    };
}

/// What [`look_up`] found, keyed by the run's own strings.
struct LookedUp<'r> {
    /// Messages already stored under a `client_msg_id` of the run.
    originals: HashMap<Key<'r>, MessageRecord>,
    /// The run's senders that exist: id → (username, display name).
    senders: HashMap<&'r str, (String, Option<String>)>,
    /// The run's rooms that exist: id → `last_seq`.
    last_seqs: HashMap<&'r str, i64>,
}

/// Opens the run's savepoint (and the transaction, for a run that is its
/// own) and reads the senders, the rooms' `last_seq`
/// and the messages already stored under the run's `client_msg_id`s, in one
/// round trip. Each row says which question it answers (`kind`).
async fn look_up<'r>(
    conn: &mut SqliteConnection,
    run: &[&'r NewMessage],
    framing: Framing,
) -> sqlx::Result<LookedUp<'r>> {
    let sender_ids = distinct(run.iter().map(|m| m.sender_id.as_str()));
    let room_ids = distinct(run.iter().map(|m| m.room_id.as_str()));
    let keyed: Vec<&'r NewMessage> = run
        .iter()
        .copied()
        .filter(|m| m.client_msg_id.is_some())
        .collect();

    // Fixed text whatever the run (the lists go in as JSON arrays), so
    // each of the four variants is compiled once and cached: compiling a
    // statement whose `IN` lists changed length was paid on every batch
    // (docs/performance.md).
    let sql = match (framing, keyed.is_empty()) {
        (Framing::InTransaction, true) => look_up_sql!("SAVEPOINT run; ", ""),
        (Framing::OwnTransaction, true) => look_up_sql!("BEGIN IMMEDIATE; ", ""),
        (Framing::InTransaction, false) => look_up_sql!("SAVEPOINT run; ", originals_sql!()),
        (Framing::OwnTransaction, false) => look_up_sql!("BEGIN IMMEDIATE; ", originals_sql!()),
    };
    let json = |values: &[&str]| serde_json::to_string(values).unwrap_or_default();
    let mut query = sqlx::query(sql)
        .bind(json(&sender_ids))
        .bind(json(&room_ids));
    if !keyed.is_empty() {
        let keys: Vec<[&str; 3]> = keyed
            .iter()
            .filter_map(|m| {
                let key = m.client_msg_id.as_deref()?;
                Some([m.sender_id.as_str(), m.room_id.as_str(), key])
            })
            .collect();
        query = query.bind(serde_json::to_string(&keys).unwrap_or_default());
    }
    let rows = query.fetch_all(&mut *conn).await?;

    let mut found = LookedUp {
        originals: HashMap::new(),
        senders: HashMap::with_capacity(sender_ids.len()),
        last_seqs: HashMap::with_capacity(room_ids.len()),
    };
    for row in rows {
        let kind: String = row.try_get("kind")?;
        match kind.as_str() {
            "u" => {
                let id: String = row.try_get("id")?;
                if let Some(id) = sender_ids.iter().find(|known| **known == id) {
                    let display = (row.try_get("username")?, row.try_get("name")?);
                    found.senders.insert(*id, display);
                }
            }
            "r" => {
                let id: String = row.try_get("id")?;
                if let Some(id) = room_ids.iter().find(|known| **known == id) {
                    found.last_seqs.insert(*id, row.try_get("last_seq")?);
                }
            }
            _ => {
                let original = message_from_row(&row, "")?;
                if let Some(key) = asked_key(&keyed, &original) {
                    found.originals.insert(key, original);
                }
            }
        }
    }
    Ok(found)
}

/// The values in first-seen order, each once.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

/// Inserts the stored messages, moves their rooms' `last_seq` and
/// `last_activity`, and releases the run's savepoint (and commits, for a
/// run that is its own transaction), in one round trip.
async fn write(
    conn: &mut SqliteConnection,
    stored: &[(&NewMessage, i64)],
    events: &[NewEvent],
    framing: Framing,
) -> sqlx::Result<()> {
    if stored.is_empty() {
        return conn.execute(framing.closing()).await.map(drop);
    }
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, reply_to, \
             metadata, attachment_id, lat, lng, client_msg_id, created_at, edited_at, deleted) ",
    );
    query.push_values(stored, |mut row, (m, seq)| {
        row.push_bind(&m.id)
            .push_bind(&m.room_id)
            .push_bind(*seq)
            .push_bind(&m.sender_id)
            .push_bind(&m.content)
            .push_bind(m.message_type.as_str())
            .push_bind(&m.reply_to)
            .push_bind(json_text(&m.metadata))
            .push_bind(m.attachment.as_ref().map(|a| &a.id))
            .push_bind(m.location.map(|l| l.lat))
            .push_bind(m.location.map(|l| l.lng))
            .push_bind(&m.client_msg_id)
            .push_bind(m.created_at.millis())
            .push("NULL, 0");
    });

    // room → (highest seq, latest created_at); seqs rise in run order.
    let mut rooms: Vec<(&str, i64, i64)> = Vec::new();
    for (m, seq) in stored {
        let at = m.created_at.millis();
        match rooms.iter_mut().find(|(id, ..)| *id == m.room_id) {
            Some(room) => {
                room.1 = *seq;
                room.2 = room.2.max(at);
            }
            None => rooms.push((m.room_id.as_str(), *seq, at)),
        }
    }
    query.push(
        "; UPDATE rooms SET last_seq = v.column2, last_activity = MAX(last_activity, v.column3) \
         FROM (",
    );
    query.push_values(&rooms, |mut row, (id, seq, at)| {
        row.push_bind(*id).push_bind(*seq).push_bind(*at);
    });
    query.push(") AS v WHERE rooms.id = v.column1; ");
    if !events.is_empty() {
        let now = confab_protocol::Timestamp::now().millis();
        query.push(
            "INSERT INTO webhook_events (id, kind, room_id, message_id, user_id, role, seq, \
                 created_at, attempts, next_attempt_at) ",
        );
        query.push_values(events, |mut row, event| {
            row.push_bind(event_id())
                .push_bind(event.kind.as_str())
                .push_bind(&event.room_id)
                .push_bind(&event.message_id)
                .push_bind(&event.user_id)
                .push_bind(&event.role)
                .push_bind(event.seq)
                .push_bind(now)
                .push("0")
                .push_bind(now);
        });
        query.push("; ");
    }
    query.push(framing.closing());
    query
        .build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map(drop)
}

/// Turns the run and its slots into answers that wait for the commit.
fn finish(run: Vec<AppendJob>, slots: Vec<Slot>) -> Vec<Box<dyn Settle>> {
    let mut waiting = Vec::with_capacity(run.len());
    let messages: Vec<NewMessage> = run
        .into_iter()
        .map(|job| {
            let AppendJob {
                message,
                reply,
                hook,
                events: _,
            } = job;
            waiting.push((reply, hook));
            message
        })
        .collect();
    outcomes(messages, slots)
        .into_iter()
        .zip(waiting)
        .map(|(result, (reply, hook))| {
            let hook: Hook<AppendOutcome> = hook;
            Box::new(Finished {
                result,
                reply,
                hook: Some(hook),
            }) as Box<dyn Settle>
        })
        .collect()
}
