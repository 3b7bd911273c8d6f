//! The PostgreSQL backend: one pool, two writer lanes per node, reads
//! through the pool. Several confab nodes may share one database.
//!
//! # How writes work
//! As in the SQLite backend, every write is a job queued to a writer task:
//! here one of two lanes per node, each with its connection, a room's jobs
//! always on the same lane (`writer::LANES`: rooms are written side by side
//! while a lane waits for its commit; lanes write as two nodes would, under
//! the same room locks). A lane takes the first job and whatever else is already
//! queued (up to 256) and runs them in one transaction on the connection it
//! keeps, commits once, and only after the commit answers each job and runs
//! its commit hook, in queue order. So a burst costs one commit (group
//! commit), an ack never precedes durability, and commit hooks — where core
//! acks and fans out — run in commit order per room on this node.
//!
//! Appends next to each other in the queue are written together
//! ([`batch_append`]): one look-up of earlier `client_msg_id`s and one
//! statement that moves the rooms' seqs and inserts every message, whatever
//! their number. Every other job runs in a `SAVEPOINT` of its own, and so
//! does a run of appends in a batch that has other jobs too: one job's
//! failure (a missing room, a constraint) is rolled back alone. A batch of
//! nothing but appends has no savepoint at all (two round trips fewer, and
//! no subtransaction); if its run fails on one append, the writer rolls it
//! back and tries the batch again with savepoints, appending one by one, so
//! that only the offender fails.
//!
//! # Seqs across nodes
//! Seqs are assigned by moving the room's `last_seq` (`UPDATE rooms SET
//! last_seq = last_seq + n … RETURNING`): the row lock serialises writers
//! of a room on every node until their commit, and a rollback gives the
//! seqs back, so a room's seqs stay 1, 2, 3 … with no gap
//! and no repeat however many nodes write. `client_msg_id` dedupe looks
//! before inserting under that same lock; `direct_key` dedupe relies on the
//! unique index with `ON CONFLICT DO NOTHING` and a second look.
//!
//! # Lock ordering and retries
//! A batch holds its row locks until it commits, and two nodes' batches may
//! name the same rooms in a different order. So each batch first locks every
//! room its jobs write, in id order (`SELECT … ORDER BY id FOR NO KEY
//! UPDATE`), before any job runs: batches over common rooms queue behind one
//! another instead of deadlocking, and every lock a job takes later on a
//! room's rows (seq bump, members, messages, reactions) is behind the room's.
//! What the ordering cannot cover (users upserted in opposite orders, two
//! direct rooms created crosswise) can still deadlock; PostgreSQL then aborts
//! one side (40P01). A deadlock, a serialization failure (40001) or a
//! connection lost before `COMMIT` makes the writer roll the batch back and
//! run it again from scratch (jobs are re-runnable), at most 5 times with a
//! growing, jittered pause. Nothing is answered and no hook runs before the
//! final commit, so a retry is invisible to callers. A connection lost
//! *during* `COMMIT` is not retried: whether it committed is unknown, so the
//! jobs fail (`internal`) rather than risk storing twice; a client's
//! `client_msg_id` retry then finds the original if it did commit.
//!
//! # How reads work
//! Reads run on the pool in autocommit (READ COMMITTED), so they see what
//! committed before they started, from any node. The pool is bounded
//! (`[database] max_connections`); a caller waits at most `acquire_timeout_s`
//! for a connection and then fails (`internal`, `/readyz` 503).

mod batch_append;
mod jobs;
mod rows;
#[cfg(test)]
mod tests;
mod users;
mod writer;

pub use crate::store::writer::WriteStats;

use super::backend::StoreBackend;
use super::{
    CommitHook, CreateOutcome, NewMessage, NewRoom, PendingAppend, StoreError, StoreResult,
    UserRecord, UserUpsert,
};
use crate::store::outbox::RecordedEvents;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use std::str::FromStr;
use std::time::Duration;
use writer::{LANES, Work, Writer};

/// The schema, embedded in the binary so that it needs no files beside it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Pool settings (`[database]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgPoolSettings {
    /// Most connections this node opens: one for each writer lane, the
    /// others serve reads.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        PgPoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL [`StoreBackend`] of [`super::Store`].
///
/// Open it with [`PgStore::open`], apply the schema with
/// [`PgStore::migrate`], share it as a [`super::DynStore`], and call
/// [`super::Store::close`] on shutdown so that queued writes are committed.
pub struct PgStore {
    /// The node's writer task.
    writer: Writer,
    /// Every connection, the writer's included.
    pool: PgPool,
    /// The webhook events it writes.
    events: RecordedEvents,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database named by a `postgres://` or `postgresql://`
    /// URL (opening one connection, so a wrong URL fails here) and starts the
    /// writer task. Must be called inside a tokio runtime.
    pub async fn open(database_url: &str, settings: PgPoolSettings) -> StoreResult<PgStore> {
        if !is_postgres_url(database_url) {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("not a PostgreSQL URL (expected postgres://…): {database_url}").into(),
            )));
        }
        let mut options = PgConnectOptions::from_str(database_url)?;
        // Named in pg_stat_activity, unless the URL names it otherwise.
        if options.get_application_name().is_none() {
            options = options.application_name("confab");
        }
        // No JIT compilation, unless the URL's `options` ask for it. Every
        // confab statement is a short indexed read or write, which JIT only
        // slows down: PostgreSQL compiles a statement whose *estimated*
        // cost passes `jit_above_cost`, and an estimate grows with the data
        // (a room list sorts all of a user's rooms) or is inflated where
        // statistics are missing, so past some size a 20 ms room list took
        // 300 ms of compiling, on every call (docs/performance.md, "Scale
        // of data").
        if !options.get_options().is_some_and(|o| o.contains("jit")) {
            options = options.options([("jit", "off")]);
        }
        // Each writer lane takes a connection from the pool and detaches it
        // (see its `Link`): the pool keeps at least one for reads.
        let max = settings.max_connections.max(2);
        let lanes = LANES.min(max as usize - 1);
        let pool = PgPoolOptions::new()
            .max_connections(max - lanes as u32)
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore {
            writer: Writer::start(pool.clone(), lanes),
            pool,
            events: RecordedEvents::default(),
        })
    }

    /// Applies the embedded migrations that are not applied yet (idempotent;
    /// sqlx holds an advisory lock, so nodes starting together migrate once).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// What the writer has done so far, to see group commit and retries at
    /// work (`jobs / commits` is the mean batch size).
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }
}

/// Whether `url` names a PostgreSQL database (what selects this backend).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl StoreBackend for PgStore {
    type Db = Postgres;

    fn readers(&self) -> &PgPool {
        &self.pool
    }

    async fn write<T: Send + 'static>(&self, rooms: Vec<String>, work: Work<T>) -> StoreResult<T> {
        self.writer.submit(rooms, work, None).await
    }

    async fn users_with_rooms_read(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(UserRecord, Vec<String>)>> {
        self.read_users_with_rooms(ids).await
    }

    fn put_users_job(
        conn: &mut PgConnection,
        users: Vec<UserUpsert>,
        now: i64,
    ) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>> {
        Box::pin(users::upsert_users(conn, users, now))
    }

    fn create_room_job(
        conn: &mut PgConnection,
        room: NewRoom,
    ) -> BoxFuture<'_, StoreResult<CreateOutcome>> {
        Box::pin(jobs::create_room(conn, room))
    }

    async fn enqueue_append(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> StoreResult<PendingAppend> {
        let events = self.events.get();
        let answer = self.writer.queue_append(message, events, on_commit).await?;
        Ok(Box::pin(answer))
    }

    fn recorded_events(&self) -> &RecordedEvents {
        &self.events
    }

    fn writer_open(&self) -> bool {
        self.writer.is_open()
    }

    fn histograms(&self) -> crate::metrics::StoreHistograms {
        self.writer.histograms()
    }

    async fn shut_down(&self) {
        // New writes are refused from here; queued ones still run.
        self.writer.close().await;
        self.pool.close().await;
    }
}
