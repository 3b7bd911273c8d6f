//! The SQLite backend: one file, one writer thread, a pool of readers.
//!
//! # How writes work
//! SQLite lets one connection write at a time, so every write goes through a
//! single writer that owns the only writing connection. Store methods send it
//! a job (a small async closure over `&mut SqliteConnection`, or an append)
//! on a bounded channel and wait for the answer on a oneshot.
//!
//! The writer takes the first job, then whatever else is already queued (up
//! to 256), and runs them all in one `BEGIN IMMEDIATE` transaction: each
//! job inside its own `SAVEPOINT`, so one job's failure (a missing room, a
//! constraint) is rolled back alone, and appends that sit next to each other
//! together ([`batch_append`]). It then commits once and only after the
//! commit succeeded are the jobs answered: an ack is never sent for
//! something that is not stored, and a burst of messages costs one commit
//! (group commit). If the commit fails, every job of the batch gets the
//! error.
//!
//! The writer is a thread of its own (running in the server's runtime), not
//! a task: each statement is a round trip to sqlx's SQLite thread, and a task
//! woken after each one waited behind the connections' tasks. A second
//! thread, the settler, answers committed jobs and runs their commit hooks
//! (the fan-out), batch after batch in commit order, while the writer already
//! runs the next batch.
//!
//! Because there is one writer, "look, then write" inside a job is race-free:
//! seq assignment, `client_msg_id` dedupe and `direct_key` dedupe need no
//! retry loop.
//!
//! # How reads work
//! Reads use a separate pool. In WAL mode readers see the last committed state
//! and never wait for the writer, and a commit is visible to every read that
//! starts after the writer answered.

mod batch_append;
mod jobs;
mod rows;
#[cfg(test)]
mod tests;
mod users;
mod writer;

pub use crate::store::writer::WriteStats;

use super::backend::{StoreBackend, Work};
use super::{
    CommitHook, CreateOutcome, NewMessage, NewRoom, PendingAppend, StoreError, StoreResult,
    UserRecord, UserUpsert,
};
use crate::store::outbox::RecordedEvents;
use crate::store::writer::{Counters, Hook, JobQueue};
use batch_append::AppendJob;
use futures_util::future::BoxFuture;
use sqlx::Connection;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use writer::{BatchJob, Job, Mode, boxed_job, run_checkpointer, run_settler, run_writer};

/// The schema, embedded in the binary so that it needs no files beside it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Read connections. Each one is a thread in sqlx; the machine is small.
const READERS: u32 = 4;

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages after which the writer checkpoints by itself. SQLite's default
/// (1,000) made the writer copy pages back into the database file, and sync
/// it, several times a second under load, between commits, on the one path
/// every message takes. The checkpointer does that work beside it instead;
/// the writer's own checkpoint stays as the backstop that lets the WAL start
/// over (a checkpoint running beside a busy writer never catches up with
/// its last frame), and is cheap because the pages are mostly copied by then.
const WRITER_AUTOCHECKPOINT_PAGES: &str = "10000";

/// The SQLite [`StoreBackend`] of [`super::Store`].
///
/// Open it with [`SqliteStore::open`], apply the schema with
/// [`SqliteStore::migrate`], share it as a [`super::DynStore`], and call
/// [`super::Store::close`] on shutdown so that queued writes are committed.
pub struct SqliteStore {
    /// The writer's queue, closed by [`super::Store::close`].
    jobs: JobQueue<Job>,
    /// Fires (or is dropped, if a thread panicked) when the writer and the
    /// settler are done and every answer is out; awaited by [`super::Store::close`].
    writer: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    /// Read-only (`query_only`) connections.
    readers: SqlitePool,
    /// The checkpointer (see `run_checkpointer`), awaited by [`super::Store::close`]
    /// so that its connection is closed before the last one is.
    checkpointer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Counters the writer keeps, for tests and diagnostics.
    stats: Arc<Counters>,
    /// The webhook events it writes.
    events: RecordedEvents,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.readers)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing, with its folder) the database named by a
    /// `sqlite://PATH` or `sqlite:PATH` URL, in WAL mode with
    /// `synchronous=NORMAL` and foreign keys on, and starts the writer task.
    ///
    /// Must be called inside a tokio runtime. In-memory databases are refused:
    /// the writer and the readers are separate connections and must share a
    /// file.
    pub async fn open(database_url: &str) -> StoreResult<SqliteStore> {
        let options = parse_url(database_url)?;

        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(sqlx::Error::Io)?;
        }

        let writer_options = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Savepoints and statement rollbacks journal the pages they
            // touch; in memory that is a copy, in a temporary file a write
            // system call per page (most of the writer's time in a profile).
            .pragma("temp_store", "memory");
        let checkpointer_options = writer_options.clone().create_if_missing(false);
        let writer_options =
            writer_options.pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES);
        let conn = SqliteConnection::connect_with(&writer_options).await?;
        let checkpointer = match SqliteConnection::connect_with(&checkpointer_options).await {
            Ok(checkpointer) => checkpointer,
            Err(e) => {
                let _ = conn.close().await;
                return Err(e.into());
            }
        };

        // Readers open the file read-write but with `query_only`, so that the
        // last connection to close can still checkpoint and remove the WAL.
        let reader_options = options
            .create_if_missing(false)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("query_only", "ON");
        let readers = match SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .connect_with(reader_options)
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                let _ = conn.close().await;
                let _ = checkpointer.close().await;
                return Err(e.into());
            }
        };

        // One wake-up pending at most: commits while a checkpoint runs are
        // covered by the next one.
        let (commits, committed_pages) = mpsc::channel(1);
        let checkpointer = tokio::spawn(run_checkpointer(checkpointer, committed_pages));

        let stats = Arc::new(Counters::default());
        let (jobs, receiver) = JobQueue::new();
        // The writer runs on a thread of its own, still in the server's
        // runtime (what its commit hooks spawn goes there). As a task among
        // the connections' it waited behind them in the workers' queues after
        // each statement, and every batch is a chain of statements.
        // Committed jobs are answered, and their hooks run, on a second
        // thread (see `run_settler`), which ends after the writer.
        let (finished, writer) = oneshot::channel();
        let (settled, committed) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Handle::current();
        let settler_runtime = runtime.clone();
        std::thread::Builder::new()
            .name("confab-sqlite-settler".into())
            .spawn(move || {
                // What the hooks spawn goes to the server's runtime.
                let _runtime = settler_runtime.enter();
                run_settler(committed);
                let _ = finished.send(());
            })
            .map_err(sqlx::Error::Io)?;
        let writer_stats = stats.clone();
        std::thread::Builder::new()
            .name("confab-sqlite-writer".into())
            .spawn(move || {
                runtime.block_on(run_writer(conn, receiver, writer_stats, settled, commits));
            })
            .map_err(sqlx::Error::Io)?;

        Ok(SqliteStore {
            jobs,
            writer: tokio::sync::Mutex::new(Some(writer)),
            readers,
            checkpointer: tokio::sync::Mutex::new(Some(checkpointer)),
            stats,
            events: RecordedEvents::default(),
        })
    }

    /// Applies the embedded migrations that are not applied yet (idempotent).
    /// Runs on the writer's connection, between batches.
    pub async fn migrate(&self) -> StoreResult<()> {
        self.submit(Mode::Alone, |conn| Box::pin(jobs::migrate(conn)))
            .await
    }

    /// What the writer has done so far, to see group commit at work
    /// (`jobs / commits` is the mean batch size).
    pub fn write_stats(&self) -> WriteStats {
        self.stats.stats()
    }

    /// Queues a job of either mode and waits for its answer.
    async fn submit<T, F>(&self, mode: Mode, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        self.queue(mode, work, None).await?.await
    }

    /// Puts a job on the writer's queue (waiting for room when it is full)
    /// and returns the future of its answer: jobs queued in turn run in turn.
    /// `hook` runs on the settler right after the commit that made the
    /// result durable: hooks run in commit order.
    async fn queue<T, F>(
        &self,
        mode: Mode,
        work: F,
        hook: Option<Hook<T>>,
    ) -> StoreResult<impl Future<Output = StoreResult<T>> + Send + 'static + use<T, F>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = boxed_job(work, reply, hook);
        self.send_job(match mode {
            Mode::Batched => Job::InBatch(BatchJob::Generic(job)),
            Mode::Alone => Job::Alone(job),
        })
        .await?;
        Ok(async move { answer.await.map_err(|_| StoreError::Closed)? })
    }

    /// Puts a job on the writer's queue, waiting for room when it is full.
    async fn send_job(&self, job: Job) -> StoreResult<()> {
        self.jobs.send(job).await
    }
}

/// Checks the scheme and refuses in-memory databases.
fn parse_url(database_url: &str) -> StoreResult<SqliteConnectOptions> {
    let config = |msg: String| StoreError::Database(sqlx::Error::Configuration(msg.into()));
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return Err(config(format!(
            "not a SQLite URL (expected sqlite://PATH): {database_url}"
        )));
    };
    if rest.contains(":memory:")
        || rest.contains("mode=memory")
        || rest.trim_matches('/').is_empty()
    {
        return Err(config(format!(
            "the SQLite store needs a file, not {database_url}"
        )));
    }
    Ok(SqliteConnectOptions::from_str(database_url)?)
}

impl StoreBackend for SqliteStore {
    type Db = Sqlite;

    fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// One writer owns the database: `rooms` need no lock.
    async fn write<T: Send + 'static>(
        &self,
        _rooms: Vec<String>,
        work: Work<SqliteConnection, T>,
    ) -> StoreResult<T> {
        self.submit(Mode::Batched, work).await
    }

    async fn users_with_rooms_read(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(UserRecord, Vec<String>)>> {
        self.read_users_with_rooms(ids).await
    }

    fn put_users_job(
        conn: &mut SqliteConnection,
        users: Vec<UserUpsert>,
        now: i64,
    ) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>> {
        Box::pin(users::upsert_users(conn, users, now))
    }

    fn create_room_job(
        conn: &mut SqliteConnection,
        room: NewRoom,
    ) -> BoxFuture<'_, StoreResult<CreateOutcome>> {
        Box::pin(jobs::create_room(conn, room))
    }

    async fn enqueue_append(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> StoreResult<PendingAppend> {
        let (reply, answer) = oneshot::channel();
        self.send_job(Job::InBatch(BatchJob::Append(Box::new(AppendJob {
            message,
            reply,
            hook: on_commit,
            events: self.events.get(),
        }))))
        .await?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::Closed)?
        }))
    }

    fn recorded_events(&self) -> &RecordedEvents {
        &self.events
    }

    fn writer_open(&self) -> bool {
        self.jobs.is_open()
    }

    fn histograms(&self) -> crate::metrics::StoreHistograms {
        self.stats.histograms.clone()
    }

    async fn shut_down(&self) {
        // New writes are refused from here; queued ones still run, and the
        // writer stops once the last in-flight sender is dropped.
        self.jobs.close();
        if let Some(writer) = self.writer.lock().await.take()
            && writer.await.is_err()
        {
            tracing::error!("the SQLite writer thread failed");
        }
        // It ends once the writer is gone (at most one pause later).
        if let Some(checkpointer) = self.checkpointer.lock().await.take()
            && checkpointer.await.is_err()
        {
            tracing::error!("the SQLite checkpointer task failed");
        }
        self.readers.close().await;
    }
}
