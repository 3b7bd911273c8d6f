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
mod writer;

pub use crate::store::writer::WriteStats;

use super::{
    AttachmentRecord, CommitHook, CreateOutcome, HistoryPage, MemberRecord, MemberWithUser,
    MessageRecord, NewMessage, NewRoom, PendingAppend, ReactionChange, RoomListEntry, RoomRecord,
    RoomRole, Store, StoreError, StoreResult, UserRecord, UserUpsert,
};
use crate::store::queries::Sql;
use crate::store::rows::{Dialect, user_columns, user_from_row};
use crate::store::writer::{Counters, Hook, JobQueue};
use async_trait::async_trait;
use batch_append::AppendJob;
use confab_protocol::Timestamp;
use futures_util::future::BoxFuture;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use std::collections::BTreeMap;
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

/// The SQLite implementation of [`Store`].
///
/// Open it with [`SqliteStore::open`], apply the schema with
/// [`SqliteStore::migrate`], share it as a [`super::DynStore`], and call
/// [`Store::close`] on shutdown so that queued writes are committed.
pub struct SqliteStore {
    /// The writer's queue, closed by [`Store::close`].
    jobs: JobQueue<Job>,
    /// Fires (or is dropped, if a thread panicked) when the writer and the
    /// settler are done and every answer is out; awaited by [`Store::close`].
    writer: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    /// Read-only (`query_only`) connections.
    readers: SqlitePool,
    /// The checkpointer (see `run_checkpointer`), awaited by [`Store::close`]
    /// so that its connection is closed before the last one is.
    checkpointer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Counters the writer keeps, for tests and diagnostics.
    stats: Arc<Counters>,
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

    /// Sends `work` to the writer and waits for its answer, which comes only
    /// after the transaction it ran in committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        self.submit(Mode::Batched, work).await
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

#[async_trait]
impl Store for SqliteStore {
    // ---- users ----

    async fn put_user(&self, user: UserUpsert) -> StoreResult<UserRecord> {
        self.write(move |conn| Box::pin(Sql::<Sqlite>::upsert_user(conn, user)))
            .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        Sql::<Sqlite>::fetch_user(&self.readers, id)
            .await
            .map_err(Sqlite::read_error)
    }

    async fn user_with_rooms(&self, id: &str) -> StoreResult<Option<(UserRecord, Vec<String>)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", \
                 (SELECT json_group_array(room_id) FROM \
                     (SELECT room_id FROM members WHERE user_id = ?1 ORDER BY room_id)) AS rooms \
             FROM users WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.readers)
        .await
        .map_err(Sqlite::read_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let rooms: String = row.try_get("rooms")?;
        let rooms = serde_json::from_str(&rooms)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
        Ok(Some((user_from_row(&row)?, rooms)))
    }

    // ---- rooms ----

    async fn create_room(&self, room: NewRoom) -> StoreResult<CreateOutcome> {
        self.write(move |conn| Box::pin(jobs::create_room(conn, room)))
            .await
    }

    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        Sql::<Sqlite>::fetch_room(&self.readers, id)
            .await
            .map_err(Sqlite::read_error)
    }

    async fn update_room(
        &self,
        id: &str,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        self.write(move |conn| Box::pin(Sql::<Sqlite>::update_room(conn, id, name, metadata)))
            .await
    }

    async fn close_room(&self, id: &str) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        self.write(move |conn| Box::pin(Sql::<Sqlite>::close_room(conn, id)))
            .await
    }

    async fn list_user_rooms(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(Timestamp, String)>,
    ) -> StoreResult<Vec<RoomListEntry>> {
        Sql::<Sqlite>::list_user_rooms(&self.readers, user_id, limit, after).await
    }

    // ---- members ----

    async fn get_member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        Sql::<Sqlite>::fetch_member(&self.readers, room_id, user_id)
            .await
            .map_err(Sqlite::read_error)
    }

    async fn user_room_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Sql::<Sqlite>::user_room_ids(&self.readers, user_id).await
    }

    async fn list_members(&self, room_id: &str) -> StoreResult<Vec<MemberWithUser>> {
        Sql::<Sqlite>::list_members(&self.readers, room_id).await
    }

    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: RoomRole,
    ) -> StoreResult<MemberRecord> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |conn| Box::pin(Sql::<Sqlite>::add_member(conn, room_id, user_id, role)))
            .await
    }

    async fn remove_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |conn| Box::pin(Sql::<Sqlite>::remove_member(conn, room_id, user_id)))
            .await
    }

    // ---- messages ----

    async fn queue_append(
        &self,
        message: NewMessage,
        on_commit: CommitHook,
    ) -> StoreResult<PendingAppend> {
        let (reply, answer) = oneshot::channel();
        self.send_job(Job::InBatch(BatchJob::Append(Box::new(AppendJob {
            message,
            reply,
            hook: on_commit,
        }))))
        .await?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::Closed)?
        }))
    }

    async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: String,
        edited_at: Timestamp,
    ) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        self.write(move |conn| {
            Box::pin(Sql::<Sqlite>::edit_message(
                conn, room_id, message_id, content, edited_at,
            ))
        })
        .await
    }

    async fn delete_message(&self, room_id: &str, message_id: &str) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        self.write(move |conn| Box::pin(Sql::<Sqlite>::delete_message(conn, room_id, message_id)))
            .await
    }

    async fn set_reaction(
        &self,
        change: ReactionChange,
    ) -> StoreResult<BTreeMap<String, Vec<String>>> {
        self.write(move |conn| Box::pin(Sql::<Sqlite>::set_reaction(conn, change)))
            .await
    }

    async fn get_message(
        &self,
        room_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<MessageRecord>> {
        Sql::<Sqlite>::fetch_message(&self.readers, room_id, message_id)
            .await
            .map_err(Sqlite::read_error)
    }

    async fn history(
        &self,
        room_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> StoreResult<(Vec<MessageRecord>, bool)> {
        Sql::<Sqlite>::history(&self.readers, room_id, page, limit).await
    }

    // ---- read state ----

    async fn mark_read(&self, room_id: &str, user_id: &str, up_to_seq: i64) -> StoreResult<i64> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |conn| {
            Box::pin(Sql::<Sqlite>::mark_read(conn, room_id, user_id, up_to_seq))
        })
        .await
    }

    /// [`StoreError::NotFound`] if the user is not a member.
    async fn unread_count(&self, room_id: &str, user_id: &str) -> StoreResult<i64> {
        Sql::<Sqlite>::unread_count(&self.readers, room_id, user_id).await
    }

    // ---- health ----

    async fn create_attachment(&self, attachment: AttachmentRecord) -> StoreResult<()> {
        self.write(move |conn| Box::pin(Sql::<Sqlite>::create_attachment(conn, attachment)))
            .await
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        Sql::<Sqlite>::get_attachment(&self.readers, id).await
    }

    async fn attachment_shared_with(&self, id: &str, user_id: &str) -> StoreResult<bool> {
        Sql::<Sqlite>::attachment_shared_with(&self.readers, id, user_id).await
    }

    async fn counts(&self) -> StoreResult<(i64, i64)> {
        Sql::<Sqlite>::counts(&self.readers).await
    }

    async fn ping(&self) -> StoreResult<()> {
        if !self.jobs.is_open() {
            return Err(StoreError::Closed);
        }
        Sql::<Sqlite>::ping(&self.readers).await
    }

    fn commit_histograms(&self) -> crate::metrics::StoreHistograms {
        self.stats.histograms.clone()
    }

    async fn close(&self) {
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
