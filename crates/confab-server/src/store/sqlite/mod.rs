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

use super::{
    AttachmentRecord, CommitHook, CreateOutcome, GlobalRole, HistoryPage, MemberRecord,
    MemberWithUser, MessageRecord, NewMessage, NewRoom, PendingAppend, ReactionChange,
    RoomListEntry, RoomRecord, RoomRole, Store, StoreError, StoreResult, UserRecord, UserUpsert,
};
use async_trait::async_trait;
use confab_protocol::{Location, MessageType, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::error::ErrorKind;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Executor, Row, SqliteExecutor};
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The schema, embedded in the binary so that it needs no files beside it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Most jobs run in one transaction; more wait for the next one.
const MAX_BATCH: usize = 256;

/// Jobs that may wait for the writer; a full queue makes callers wait (backpressure).
const QUEUE_CAPACITY: usize = 1024;

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

/// Pause after each background checkpoint: one every this often at most,
/// so each copies many commits' pages at once.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// The SQLite implementation of [`Store`].
///
/// Open it with [`SqliteStore::open`], apply the schema with
/// [`SqliteStore::migrate`], share it as a [`super::DynStore`], and call
/// [`Store::close`] on shutdown so that queued writes are committed.
pub struct SqliteStore {
    /// The writer's queue; `None` once [`Store::close`] started.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Fires (or is dropped, if a thread panicked) when the writer and the
    /// settler are done and every answer is out; awaited by [`Store::close`].
    writer: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    /// Read-only (`query_only`) connections.
    readers: SqlitePool,
    /// The checkpointer (see `run_checkpointer`), awaited by [`Store::close`]
    /// so that its connection is closed before the last one is.
    checkpointer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Counters the writer keeps, for tests and diagnostics.
    stats: Arc<WriterStats>,
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

        let stats = Arc::new(WriterStats::default());
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
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
            jobs: Mutex::new(Some(sender)),
            writer: tokio::sync::Mutex::new(Some(writer)),
            readers,
            checkpointer: tokio::sync::Mutex::new(Some(checkpointer)),
            stats,
        })
    }

    /// Applies the embedded migrations that are not applied yet (idempotent).
    /// Runs on the writer's connection, between batches.
    pub async fn migrate(&self) -> StoreResult<()> {
        self.submit(Mode::Alone, |conn| Box::pin(migrate_job(conn)))
            .await
    }

    /// What the writer has done so far, to see group commit at work
    /// (`jobs / commits` is the mean batch size).
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            jobs: self.stats.committed_jobs.load(Ordering::Relaxed),
        }
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
        let sender = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)?;
        sender.send(job).await.map_err(|_| StoreError::Closed)
    }
}

/// Counters of the writer, from [`SqliteStore::write_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Transactions committed since the store opened.
    pub commits: u64,
    /// Write jobs (successful or rolled back to their savepoint) in those
    /// transactions.
    pub jobs: u64,
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

// ---------------------------------------------------------------------------
// The writer task
// ---------------------------------------------------------------------------

/// Whether a job may share a transaction with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Runs in the batch's transaction, in its own savepoint.
    Batched,
    /// Runs alone, outside any transaction (migrations manage their own).
    Alone,
}

/// One queued unit of work.
enum Job {
    /// Runs in the batch's transaction.
    InBatch(BatchJob),
    /// Runs alone, outside any transaction (migrations manage their own).
    Alone(Box<dyn WriteJob>),
}

/// A job that shares the batch's transaction.
enum BatchJob {
    /// Any write, in a savepoint of its own.
    Generic(Box<dyn WriteJob>),
    /// A message append: consecutive ones are written together by a few
    /// multi-row statements (see [`batch_append`]).
    Append(Box<AppendJob>),
}

/// A job with its type erased, so that jobs of every result type share a queue.
trait WriteJob: Send {
    /// Runs the work; the result waits in the returned [`Settle`] for the commit.
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Box<dyn Settle>>;

    /// Answers with `error` without running (the transaction could not start).
    fn fail(self: Box<Self>, error: StoreError);
}

/// A job that ran and whose answer waits for the batch's fate.
trait Settle: Send {
    /// Whether the work succeeded (its savepoint is kept, not rolled back).
    fn succeeded(&self) -> bool;

    /// Sends the answer: the work's own result if the commit succeeded or the
    /// work failed anyway, else the commit's error.
    fn settle(self: Box<Self>, commit: Result<(), &sqlx::Error>);
}

/// Work to run on the settler after a job's commit (see [`SqliteStore::queue`]).
type Hook<T> = Box<dyn FnOnce(&T) + Send>;

/// A job before it runs.
struct PendingJob<T, F> {
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
    hook: Option<Hook<T>>,
}

/// Type-erases a job (the bound on `work` is what lets its closure borrow
/// the connection).
fn boxed_job<T, F>(
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
    hook: Option<Hook<T>>,
) -> Box<dyn WriteJob>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    Box::new(PendingJob { work, reply, hook })
}

/// A job after it ran.
struct Finished<T> {
    result: StoreResult<T>,
    reply: oneshot::Sender<StoreResult<T>>,
    hook: Option<Hook<T>>,
}

impl<T, F> WriteJob for PendingJob<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Box<dyn Settle>> {
        let PendingJob { work, reply, hook } = *self;
        Box::pin(async move {
            // A panicking job fails alone (its savepoint is rolled back)
            // instead of taking the writer, and every later write, with it.
            let result = match AssertUnwindSafe(work(conn)).catch_unwind().await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!("a SQLite write job panicked");
                    Err(StoreError::Database(sqlx::Error::Protocol(
                        "the write job panicked".to_owned(),
                    )))
                }
            };
            Box::new(Finished {
                result,
                reply,
                hook,
            }) as Box<dyn Settle>
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        // The caller may have given up waiting; nothing to do then.
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send> Settle for Finished<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn settle(self: Box<Self>, commit: Result<(), &sqlx::Error>) {
        let answer = match (self.result, commit) {
            (Ok(value), Ok(())) => {
                if let Some(hook) = self.hook {
                    hook(&value);
                }
                Ok(value)
            }
            (Ok(_), Err(e)) => Err(batch_error(e)),
            (Err(e), _) => Err(e),
        };
        let _ = self.reply.send(answer);
    }
}

/// Counters the writer keeps.
#[derive(Debug, Default)]
struct WriterStats {
    /// Batch latency and size, exported by `/metrics`.
    histograms: crate::metrics::StoreHistograms,
    /// Transactions committed.
    commits: AtomicU64,
    /// Batched jobs that were part of a committed transaction.
    committed_jobs: AtomicU64,
}

impl WriterStats {
    /// Counts one committed transaction of `jobs` jobs begun at `started`.
    fn committed(&self, jobs: usize, started: std::time::Instant) {
        self.histograms.observe(jobs, started.elapsed());
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_jobs
            .fetch_add(jobs as u64, Ordering::Relaxed);
    }
}

/// The writer: owns the only writing connection until the queue closes.
async fn run_writer(
    mut conn: SqliteConnection,
    mut receiver: mpsc::Receiver<Job>,
    stats: Arc<WriterStats>,
    settled: std::sync::mpsc::Sender<Committed>,
    commits: mpsc::Sender<()>,
) {
    let mut incoming = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Returns 0 only once every sender is gone and the queue is empty.
    while receiver.recv_many(&mut incoming, MAX_BATCH).await > 0 {
        for job in incoming.drain(..) {
            match job {
                Job::InBatch(job) => batch.push(job),
                Job::Alone(job) => {
                    // Keep the queue's order: what came before runs first.
                    if !batch.is_empty() {
                        run_batch(&mut conn, std::mem::take(&mut batch), &stats, &settled).await;
                    }
                    let finished = job.run(&mut conn).await;
                    answer_committed(&settled, vec![finished]);
                }
            }
        }
        if !batch.is_empty() {
            run_batch(&mut conn, std::mem::take(&mut batch), &stats, &settled).await;
        }
        // Full means a wake-up is already pending.
        let _ = commits.try_send(());
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
}

/// The checkpointer: after commits, copies the WAL's pages back into the
/// database file (`PRAGMA wal_checkpoint(PASSIVE)`: it never blocks the
/// writer or the readers) on a connection of its own, so that this copy
/// and the file's sync are off the writer's path. Ends when the writer does.
async fn run_checkpointer(mut conn: SqliteConnection, mut commits: mpsc::Receiver<()>) {
    while commits.recv().await.is_some() {
        if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::warn!(error = %e, "SQLite background checkpoint failed");
        }
        tokio::time::sleep(CHECKPOINT_PAUSE).await;
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite checkpointer connection failed");
    }
}

/// Jobs whose transaction committed, to be answered (and their hooks run)
/// in this order.
type Committed = Vec<Box<dyn Settle>>;

/// Hands committed jobs to the settler thread, or answers them here if it
/// is gone.
fn answer_committed(settled: &std::sync::mpsc::Sender<Committed>, committed: Committed) {
    if let Err(std::sync::mpsc::SendError(committed)) = settled.send(committed) {
        for finished in committed {
            finished.settle(Ok(()));
        }
    }
}

/// The settler: answers committed jobs and runs their hooks (the fan-out),
/// batch after batch in commit order, while the writer already runs the
/// next batch — SQLite's work and the fan-out overlap on two cores.
fn run_settler(committed: std::sync::mpsc::Receiver<Committed>) {
    while let Ok(batch) = committed.recv() {
        for finished in batch {
            finished.settle(Ok(()));
        }
    }
}

/// Runs jobs in as few transactions as possible (one unless something breaks
/// the transaction itself), each in a savepoint, and answers after commit.
async fn run_batch(
    conn: &mut SqliteConnection,
    jobs: Vec<BatchJob>,
    stats: &WriterStats,
    settled: &std::sync::mpsc::Sender<Committed>,
) {
    // Under load most batches are nothing but appends: they take two round
    // trips instead of a transaction of steps.
    let jobs = if jobs.iter().all(|job| matches!(job, BatchJob::Append(_))) {
        let started = std::time::Instant::now();
        let run = jobs
            .into_iter()
            .filter_map(|job| match job {
                BatchJob::Append(job) => Some(*job),
                BatchJob::Generic(_) => None,
            })
            .collect();
        match batch_append::append_transaction(conn, run).await {
            Ok(finished) => {
                stats.committed(finished.len(), started);
                answer_committed(settled, finished);
                return;
            }
            Err(run) => run
                .into_iter()
                .map(|job| BatchJob::Append(Box::new(job)))
                .collect(),
        }
    } else {
        jobs
    };
    let mut queue: VecDeque<BatchJob> = jobs.into();
    while !queue.is_empty() {
        let started = std::time::Instant::now();
        if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, jobs = queue.len(), "SQLite writer could not begin a transaction");
            for job in queue.drain(..) {
                match job {
                    BatchJob::Generic(job) => job.fail(batch_error(&e)),
                    BatchJob::Append(job) => job.fail(batch_error(&e)),
                }
            }
            return;
        }

        let mut ran: Vec<Box<dyn Settle>> = Vec::with_capacity(queue.len());
        let mut broken = None;
        while let Some(job) = queue.pop_front() {
            let job = match job {
                BatchJob::Generic(job) => job,
                BatchJob::Append(first) => {
                    let mut run = vec![*first];
                    while let Some(BatchJob::Append(_)) = queue.front() {
                        if let Some(BatchJob::Append(next)) = queue.pop_front() {
                            run.push(*next);
                        }
                    }
                    match batch_append::append_run(conn, run).await {
                        Ok(finished) => {
                            ran.extend(finished);
                            continue;
                        }
                        // The transaction is lost: like a job that broke
                        // it, the run fails with what ran before it.
                        Err(batch_append::Broken {
                            error,
                            ran: run_ran,
                            unrun,
                        }) => {
                            ran.extend(run_ran);
                            for job in unrun {
                                job.fail(batch_error(&error));
                            }
                            broken = Some(error);
                            break;
                        }
                    }
                }
            };
            if let Err(e) = conn.execute("SAVEPOINT job").await {
                job.fail(batch_error(&e));
                broken = Some(e);
                break;
            }
            let finished = job.run(conn).await;
            let closed = if finished.succeeded() {
                conn.execute("RELEASE SAVEPOINT job").await.map(|_| ())
            } else {
                match conn.execute("ROLLBACK TO SAVEPOINT job").await {
                    Ok(_) => conn.execute("RELEASE SAVEPOINT job").await.map(|_| ()),
                    Err(e) => Err(e),
                }
            };
            ran.push(finished);
            if let Err(e) = closed {
                // SQLite rolled the whole transaction back (disk full, I/O
                // error…): what ran in it is lost; the rest gets a new one.
                broken = Some(e);
                break;
            }
        }

        if let Some(e) = broken {
            tracing::error!(error = %e, "SQLite writer lost a transaction");
            let _ = conn.execute("ROLLBACK").await;
            for finished in ran {
                finished.settle(Err(&e));
            }
            continue;
        }

        match conn.execute("COMMIT").await {
            Ok(_) => {
                stats.committed(ran.len(), started);
                answer_committed(settled, ran);
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = ran.len(), "SQLite writer could not commit");
                let _ = conn.execute("ROLLBACK").await;
                for finished in ran {
                    finished.settle(Err(&e));
                }
            }
        }
    }
}

/// The error each job of a failed transaction gets (`sqlx::Error` is not `Clone`).
fn batch_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(match e {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(format!("the write transaction failed: {other}")),
    })
}

// ---------------------------------------------------------------------------
// Errors and row decoding
// ---------------------------------------------------------------------------

/// Maps a read's error: a closed pool means the store is shutting down.
fn read_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed => StoreError::Closed,
        other => StoreError::Database(other),
    }
}

/// Translates constraint violations where they happen: a missing referenced
/// row is `NotFound`, a taken unique key is `AlreadyExists`.
fn on_constraint(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            ErrorKind::UniqueViolation => return StoreError::AlreadyExists,
            _ => {}
        }
    }
    StoreError::Database(e)
}

/// JSON as stored: `null` becomes `{}`.
fn json_text(value: &serde_json::Value) -> String {
    if value.is_null() {
        "{}".to_owned()
    } else {
        value.to_string()
    }
}

/// JSON as read: missing or unreadable becomes `{}`.
fn json_value(text: Option<String>) -> serde_json::Value {
    let empty = || serde_json::Value::Object(serde_json::Map::new());
    match text {
        Some(text) if !text.is_empty() => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable JSON in the database; using {{}}");
            empty()
        }),
        _ => empty(),
    }
}

/// The columns [`user_from_row`] reads.
const USER_COLUMNS: &str = "id, username, name, role, disabled, created_at";

fn user_from_row(row: &SqliteRow) -> sqlx::Result<UserRecord> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        name: row.try_get("name")?,
        role: GlobalRole::parse(&role).unwrap_or_default(),
        disabled: row.try_get("disabled")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// The columns [`room_from_row`] reads.
const ROOM_COLUMNS: &str =
    "id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key";

fn room_from_row(row: &SqliteRow) -> sqlx::Result<RoomRecord> {
    Ok(RoomRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        room_type: row.try_get("room_type")?,
        metadata: json_value(row.try_get("metadata")?),
        closed: row.try_get("closed")?,
        last_seq: row.try_get("last_seq")?,
        last_activity: Timestamp(row.try_get("last_activity")?),
        created_at: Timestamp(row.try_get("created_at")?),
        direct_key: row.try_get("direct_key")?,
    })
}

/// The columns [`member_from_row`] reads.
const MEMBER_COLUMNS: &str = "room_id, user_id, role, last_read_seq, joined_at";

fn member_from_row(row: &SqliteRow) -> sqlx::Result<MemberRecord> {
    let role: String = row.try_get("role")?;
    Ok(MemberRecord {
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        role: RoomRole::parse(&role).unwrap_or_default(),
        last_read_seq: row.try_get("last_read_seq")?,
        joined_at: Timestamp(row.try_get("joined_at")?),
    })
}

/// `SELECT` of a message with its sender's display fields, as [`message_from_row`]
/// reads it (columns without prefix).
macro_rules! message_select {
    () => {
        "SELECT m.id, m.room_id, m.seq, m.sender_id, \
                COALESCE(u.username, m.sender_id) AS sender_username, u.name AS sender_name, \
                m.content, m.message_type, m.reply_to, m.metadata, m.attachment_id, \
                m.lat, m.lng, m.client_msg_id, m.created_at, m.edited_at, m.deleted, \
                (SELECT json_group_object(emoji, json(users)) FROM \
                    (SELECT emoji, json_group_array(user_id) AS users FROM \
                        (SELECT emoji, user_id FROM reactions r WHERE r.message_id = m.id \
                         ORDER BY emoji, created_at, user_id) \
                     GROUP BY emoji)) AS reactions, \
                a.uploader_id AS a_uploader_id, a.sha256 AS a_sha256, \
                a.content_type AS a_content_type, a.size AS a_size, a.name AS a_name, \
                a.created_at AS a_created_at \
         FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
         LEFT JOIN attachments a ON a.id = m.attachment_id "
    };
}

// After `message_select!`, which it uses.
mod batch_append;
use batch_append::AppendJob;

/// Reads a message whose columns carry `prefix` (`""` or `"lm_"`).
fn message_from_row(row: &SqliteRow, prefix: &str) -> sqlx::Result<MessageRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let message_type: String = row.try_get(&*col("message_type"))?;
    let lat: Option<f64> = row.try_get(&*col("lat"))?;
    let lng: Option<f64> = row.try_get(&*col("lng"))?;
    let edited_at: Option<i64> = row.try_get(&*col("edited_at"))?;
    Ok(MessageRecord {
        id: row.try_get(&*col("id"))?,
        room_id: row.try_get(&*col("room_id"))?,
        seq: row.try_get(&*col("seq"))?,
        sender_id: row.try_get(&*col("sender_id"))?,
        sender_username: row.try_get(&*col("sender_username"))?,
        sender_name: row.try_get(&*col("sender_name"))?,
        content: row.try_get(&*col("content"))?,
        message_type: MessageType::parse(&message_type).unwrap_or_default(),
        reply_to: row.try_get(&*col("reply_to"))?,
        metadata: json_value(row.try_get(&*col("metadata"))?),
        attachment: attachment_from_row(row, row.try_get(&*col("attachment_id"))?)?,
        location: lat.zip(lng).map(|(lat, lng)| Location { lat, lng }),
        client_msg_id: row.try_get(&*col("client_msg_id"))?,
        created_at: Timestamp(row.try_get(&*col("created_at"))?),
        edited_at: edited_at.map(Timestamp),
        deleted: row.try_get(&*col("deleted"))?,
        reactions: match row.try_get::<Option<String>, _>(&*col("reactions")) {
            Ok(text) => reactions_from_json(text.as_deref()),
            // Queries that do not select reactions (a room list's last message).
            Err(sqlx::Error::ColumnNotFound(_)) => BTreeMap::new(),
            Err(e) => return Err(e),
        },
    })
}

/// The upload a message references, from the `a_` columns of
/// [`message_select`] (`None` in queries that do not join uploads: a room
/// list's last message).
fn attachment_from_row(
    row: &SqliteRow,
    id: Option<String>,
) -> sqlx::Result<Option<AttachmentRecord>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let uploader_id: Option<String> = match row.try_get("a_uploader_id") {
        Ok(v) => v,
        Err(sqlx::Error::ColumnNotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(uploader_id) = uploader_id else {
        return Ok(None);
    };
    Ok(Some(AttachmentRecord {
        id,
        uploader_id,
        sha256: row.try_get("a_sha256")?,
        content_type: row.try_get("a_content_type")?,
        size: row.try_get("a_size")?,
        name: row.try_get("a_name")?,
        created_at: Timestamp(row.try_get("a_created_at")?),
    }))
}

fn attachment_record(row: &SqliteRow) -> sqlx::Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        id: row.try_get("id")?,
        uploader_id: row.try_get("uploader_id")?,
        sha256: row.try_get("sha256")?,
        content_type: row.try_get("content_type")?,
        size: row.try_get("size")?,
        name: row.try_get("name")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// Parses the `{"emoji": ["user", …]}` object the reactions subquery builds.
fn reactions_from_json(text: Option<&str>) -> BTreeMap<String, Vec<String>> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The reaction map of one message, in the same order history shows it.
async fn fetch_reactions<'e>(
    ex: impl SqliteExecutor<'e>,
    message_id: &str,
) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT json_group_object(emoji, json(users)) FROM \
            (SELECT emoji, json_group_array(user_id) AS users FROM \
                (SELECT emoji, user_id FROM reactions WHERE message_id = ?1 \
                 ORDER BY emoji, created_at, user_id) \
             GROUP BY emoji)",
    )
    .bind(message_id)
    .fetch_one(ex)
    .await?;
    Ok(reactions_from_json(text.as_deref()))
}

// ---------------------------------------------------------------------------
// Queries shared by the writer and the readers
// ---------------------------------------------------------------------------

async fn fetch_user<'e>(ex: impl SqliteExecutor<'e>, id: &str) -> sqlx::Result<Option<UserRecord>> {
    sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

async fn fetch_room<'e>(ex: impl SqliteExecutor<'e>, id: &str) -> sqlx::Result<Option<RoomRecord>> {
    sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(room_from_row)
        .transpose()
}

async fn fetch_member<'e>(
    ex: impl SqliteExecutor<'e>,
    room_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<MemberRecord>> {
    sqlx::query(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members WHERE room_id = ?1 AND user_id = ?2"
    ))
    .bind(room_id)
    .bind(user_id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(member_from_row)
    .transpose()
}

async fn fetch_message<'e>(
    ex: impl SqliteExecutor<'e>,
    room_id: &str,
    message_id: &str,
) -> sqlx::Result<Option<MessageRecord>> {
    sqlx::query(concat!(
        message_select!(),
        "WHERE m.id = ?1 AND m.room_id = ?2"
    ))
    .bind(message_id)
    .bind(room_id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(|row| message_from_row(row, ""))
    .transpose()
}

// ---------------------------------------------------------------------------
// Write jobs (run on the writer's connection, inside a savepoint)
// ---------------------------------------------------------------------------

async fn migrate_job(conn: &mut SqliteConnection) -> StoreResult<()> {
    // `run` takes an `Acquire`, whose lifetime cannot be proven general enough
    // inside the writer's higher-ranked job closure; `run_direct` is the same
    // code on a plain connection, public (though hidden) for exactly this.
    MIGRATOR.run_direct(conn).await?;
    Ok(())
}

async fn upsert_user_job(conn: &mut SqliteConnection, user: UserUpsert) -> StoreResult<UserRecord> {
    let row = sqlx::query(&format!(
        "INSERT INTO users (id, username, name, role, disabled, created_at) \
         VALUES (?1, COALESCE(?2, ?1), ?3, COALESCE(?4, 'member'), COALESCE(?5, 0), ?6) \
         ON CONFLICT (id) DO UPDATE SET \
             username = COALESCE(?2, username), \
             name = COALESCE(?3, name), \
             role = COALESCE(?4, role), \
             disabled = COALESCE(?5, disabled) \
         RETURNING {USER_COLUMNS}"
    ))
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.name)
    .bind(user.role.map(GlobalRole::as_str))
    .bind(user.disabled)
    .bind(Timestamp::now().millis())
    .fetch_one(&mut *conn)
    .await
    .map_err(on_constraint)?;
    Ok(user_from_row(&row)?)
}

async fn create_room_job(conn: &mut SqliteConnection, room: NewRoom) -> StoreResult<CreateOutcome> {
    if let Some(key) = &room.direct_key {
        let existing = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = ?1"
        ))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            return Ok(CreateOutcome::ExistingDirect(room_from_row(&row)?));
        }
    }
    if fetch_room(&mut *conn, &room.id).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }

    let now = Timestamp::now().millis();
    let row = sqlx::query(&format!(
        "INSERT INTO rooms (id, name, room_type, metadata, closed, last_seq, last_activity, created_at, direct_key) \
         VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?5, ?6) \
         RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&room.id)
    .bind(&room.name)
    .bind(&room.room_type)
    .bind(json_text(&room.metadata))
    .bind(now)
    .bind(&room.direct_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(on_constraint)?;
    let record = room_from_row(&row)?;

    for (user_id, role) in &room.members {
        // A new room has last_seq 0, so new members start with nothing unread.
        // A user listed twice keeps the last role given.
        sqlx::query(
            "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
             VALUES (?1, ?2, ?3, 0, ?4) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(&room.id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    Ok(CreateOutcome::Created(record))
}

async fn update_room_job(
    conn: &mut SqliteConnection,
    id: String,
    name: Option<String>,
    metadata: Option<serde_json::Value>,
) -> StoreResult<RoomRecord> {
    let row = sqlx::query(&format!(
        "UPDATE rooms SET name = COALESCE(?2, name), metadata = COALESCE(?3, metadata) \
         WHERE id = ?1 RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&id)
    .bind(&name)
    .bind(metadata.as_ref().map(json_text))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(room_from_row(&row)?)
}

async fn close_room_job(conn: &mut SqliteConnection, id: String) -> StoreResult<RoomRecord> {
    let row = sqlx::query(&format!(
        "UPDATE rooms SET closed = 1 WHERE id = ?1 RETURNING {ROOM_COLUMNS}"
    ))
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(room_from_row(&row)?)
}

async fn add_member_job(
    conn: &mut SqliteConnection,
    room_id: String,
    user_id: String,
    role: RoomRole,
) -> StoreResult<MemberRecord> {
    // No row from the SELECT (missing room) inserts nothing and returns
    // nothing; a missing user fails the foreign key.
    let row = sqlx::query(&format!(
        "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
         SELECT id, ?2, ?3, last_seq, ?4 FROM rooms WHERE id = ?1 \
         ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role \
         RETURNING {MEMBER_COLUMNS}"
    ))
    .bind(&room_id)
    .bind(&user_id)
    .bind(role.as_str())
    .bind(Timestamp::now().millis())
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_constraint)?
    .ok_or(StoreError::NotFound)?;
    Ok(member_from_row(&row)?)
}

async fn remove_member_job(
    conn: &mut SqliteConnection,
    room_id: String,
    user_id: String,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM members WHERE room_id = ?1 AND user_id = ?2")
        .bind(&room_id)
        .bind(&user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The record of a message just inserted with `seq`, as a read would return it.
fn stored_record(
    message: NewMessage,
    seq: i64,
    sender_username: String,
    sender_name: Option<String>,
) -> MessageRecord {
    let metadata = if message.metadata.is_null() {
        json_value(None)
    } else {
        message.metadata
    };
    MessageRecord {
        id: message.id,
        room_id: message.room_id,
        seq,
        sender_id: message.sender_id,
        sender_username,
        sender_name,
        content: message.content,
        message_type: message.message_type,
        reply_to: message.reply_to,
        metadata,
        attachment: message.attachment,
        location: message.location,
        client_msg_id: message.client_msg_id,
        created_at: message.created_at,
        edited_at: None,
        deleted: false,
        reactions: BTreeMap::new(),
    }
}

async fn edit_message_job(
    conn: &mut SqliteConnection,
    room_id: String,
    message_id: String,
    content: String,
    edited_at: Timestamp,
) -> StoreResult<MessageRecord> {
    let updated = sqlx::query(
        "UPDATE messages SET content = ?3, edited_at = ?4 \
         WHERE room_id = ?1 AND id = ?2 AND deleted = 0",
    )
    .bind(&room_id)
    .bind(&message_id)
    .bind(&content)
    .bind(edited_at.millis())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    fetch_message(&mut *conn, &room_id, &message_id)
        .await?
        .ok_or(StoreError::NotFound)
}

async fn delete_message_job(
    conn: &mut SqliteConnection,
    room_id: String,
    message_id: String,
) -> StoreResult<MessageRecord> {
    let updated =
        sqlx::query("UPDATE messages SET content = '', deleted = 1 WHERE room_id = ?1 AND id = ?2")
            .bind(&room_id)
            .bind(&message_id)
            .execute(&mut *conn)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM reactions WHERE message_id = ?1")
        .bind(&message_id)
        .execute(&mut *conn)
        .await?;
    fetch_message(&mut *conn, &room_id, &message_id)
        .await?
        .ok_or(StoreError::NotFound)
}

async fn set_reaction_job(
    conn: &mut SqliteConnection,
    change: ReactionChange,
) -> StoreResult<BTreeMap<String, Vec<String>>> {
    let live: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM messages WHERE room_id = ?1 AND id = ?2 AND deleted = 0")
            .bind(&change.room_id)
            .bind(&change.message_id)
            .fetch_optional(&mut *conn)
            .await?;
    if live.is_none() {
        return Err(StoreError::NotFound);
    }
    if change.present {
        sqlx::query(
            "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&change.message_id)
        .bind(&change.user_id)
        .bind(&change.emoji)
        .bind(change.at.millis())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    } else {
        sqlx::query("DELETE FROM reactions WHERE message_id = ?1 AND user_id = ?2 AND emoji = ?3")
            .bind(&change.message_id)
            .bind(&change.user_id)
            .bind(&change.emoji)
            .execute(&mut *conn)
            .await?;
    }
    Ok(fetch_reactions(&mut *conn, &change.message_id).await?)
}

async fn mark_read_job(
    conn: &mut SqliteConnection,
    room_id: String,
    user_id: String,
    up_to_seq: i64,
) -> StoreResult<i64> {
    // Writes only when the marker moves forward; clamped to the room's last seq.
    let moved: Option<i64> = sqlx::query_scalar(
        "UPDATE members SET last_read_seq = \
             MIN(?3, (SELECT last_seq FROM rooms WHERE rooms.id = members.room_id)) \
         WHERE room_id = ?1 AND user_id = ?2 \
           AND last_read_seq < MIN(?3, (SELECT last_seq FROM rooms WHERE rooms.id = members.room_id)) \
         RETURNING last_read_seq",
    )
    .bind(&room_id)
    .bind(&user_id)
    .bind(up_to_seq)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(marker) = moved {
        return Ok(marker);
    }
    let member = fetch_member(&mut *conn, &room_id, &user_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(member.last_read_seq)
}

// ---------------------------------------------------------------------------
// Read queries
// ---------------------------------------------------------------------------

/// The newest `limit` messages, newest first.
const HISTORY_LATEST: &str = concat!(
    message_select!(),
    "WHERE m.room_id = ?1 ORDER BY m.seq DESC LIMIT ?2"
);
/// The newest `limit` messages with `seq < ?3`, newest first.
const HISTORY_BEFORE: &str = concat!(
    message_select!(),
    "WHERE m.room_id = ?1 AND m.seq < ?3 ORDER BY m.seq DESC LIMIT ?2"
);
/// The oldest `limit` messages with `seq > ?3`, oldest first.
const HISTORY_AFTER: &str = concat!(
    message_select!(),
    "WHERE m.room_id = ?1 AND m.seq > ?3 ORDER BY m.seq ASC LIMIT ?2"
);

/// `unread_count` of one member (protocol.md §7): every seq above the marker is a
/// row, so it is the distance to the room's `last_seq` minus the member's own
/// messages above the marker minus others' deleted ones above it. Both
/// subtractions are index ranges (`messages_by_sender`, the partial
/// `messages_deleted`) over rows the reader sent or the room deleted, so a room
/// with 100k messages answers as fast as one with 10. Arguments are SQL
/// expressions for the room id, user id, marker and the room's last seq.
macro_rules! unread_count_sql {
    ($room:literal, $user:literal, $marker:literal, $last_seq:literal) => {
        concat!(
            "(",
            $last_seq,
            " - ",
            $marker,
            " - (SELECT COUNT(*) FROM messages own WHERE own.room_id = ",
            $room,
            " AND own.sender_id = ",
            $user,
            " AND own.seq > ",
            $marker,
            ")",
            " - (SELECT COUNT(*) FROM messages del WHERE del.room_id = ",
            $room,
            " AND del.deleted = 1 AND del.seq > ",
            $marker,
            " AND del.sender_id <> ",
            $user,
            "))"
        )
    };
}

/// One member's unread count; no row if they are not a member.
const UNREAD_COUNT: &str = concat!(
    "SELECT ",
    unread_count_sql!("mb.room_id", "mb.user_id", "mb.last_read_seq", "r.last_seq"),
    " FROM members mb JOIN rooms r ON r.id = mb.room_id \
     WHERE mb.room_id = ?1 AND mb.user_id = ?2"
);

/// A page of a user's rooms. The inner query picks the page first, so the
/// unread count and the last message are looked up for that page only.
const LIST_USER_ROOMS: &str = concat!(
    "WITH page AS ( \
        SELECT r.id, r.name, r.room_type, r.metadata, r.closed, r.last_seq, r.last_activity, \
               r.created_at, r.direct_key, mb.user_id AS mb_user_id, mb.role AS mb_role, \
               mb.last_read_seq AS mb_last_read_seq, mb.joined_at AS mb_joined_at \
        FROM members mb JOIN rooms r ON r.id = mb.room_id \
        WHERE mb.user_id = ?1 \
          AND (?2 IS NULL OR r.last_activity < ?2 OR (r.last_activity = ?2 AND r.id > ?3)) \
        ORDER BY r.last_activity DESC, r.id ASC \
        LIMIT ?4 \
     ) \
     SELECT page.*, ",
    unread_count_sql!(
        "page.id",
        "page.mb_user_id",
        "page.mb_last_read_seq",
        "page.last_seq"
    ),
    " AS unread_count, \
        lm.id AS lm_id, lm.room_id AS lm_room_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id, \
        COALESCE(lu.username, lm.sender_id) AS lm_sender_username, lu.name AS lm_sender_name, \
        lm.content AS lm_content, lm.message_type AS lm_message_type, lm.reply_to AS lm_reply_to, \
        lm.metadata AS lm_metadata, lm.attachment_id AS lm_attachment_id, lm.lat AS lm_lat, \
        lm.lng AS lm_lng, lm.client_msg_id AS lm_client_msg_id, lm.created_at AS lm_created_at, \
        lm.edited_at AS lm_edited_at, lm.deleted AS lm_deleted \
     FROM page \
     LEFT JOIN messages lm ON lm.room_id = page.id AND lm.seq = page.last_seq \
     LEFT JOIN users lu ON lu.id = lm.sender_id \
     ORDER BY page.last_activity DESC, page.id ASC"
);

fn room_list_entry_from_row(row: &SqliteRow) -> sqlx::Result<RoomListEntry> {
    let room = room_from_row(row)?;
    let role: String = row.try_get("mb_role")?;
    let member = MemberRecord {
        room_id: room.id.clone(),
        user_id: row.try_get("mb_user_id")?,
        role: RoomRole::parse(&role).unwrap_or_default(),
        last_read_seq: row.try_get("mb_last_read_seq")?,
        joined_at: Timestamp(row.try_get("mb_joined_at")?),
    };
    let last_id: Option<String> = row.try_get("lm_id")?;
    let last_message = match last_id {
        Some(_) => Some(message_from_row(row, "lm_")?),
        None => None,
    };
    Ok(RoomListEntry {
        room,
        member,
        last_message,
        unread_count: row.try_get("unread_count")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    // ---- users ----

    async fn put_user(&self, user: UserUpsert) -> StoreResult<UserRecord> {
        self.write(move |conn| Box::pin(upsert_user_job(conn, user)))
            .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        fetch_user(&self.readers, id).await.map_err(read_error)
    }

    async fn user_with_rooms(&self, id: &str) -> StoreResult<Option<(UserRecord, Vec<String>)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, \
                 (SELECT json_group_array(room_id) FROM \
                     (SELECT room_id FROM members WHERE user_id = ?1 ORDER BY room_id)) AS rooms \
             FROM users WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.readers)
        .await
        .map_err(read_error)?;
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
        self.write(move |conn| Box::pin(create_room_job(conn, room)))
            .await
    }

    async fn get_room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        fetch_room(&self.readers, id).await.map_err(read_error)
    }

    async fn update_room(
        &self,
        id: &str,
        name: Option<String>,
        metadata: Option<serde_json::Value>,
    ) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        self.write(move |conn| Box::pin(update_room_job(conn, id, name, metadata)))
            .await
    }

    async fn close_room(&self, id: &str) -> StoreResult<RoomRecord> {
        let id = id.to_owned();
        self.write(move |conn| Box::pin(close_room_job(conn, id)))
            .await
    }

    async fn list_user_rooms(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(Timestamp, String)>,
    ) -> StoreResult<Vec<RoomListEntry>> {
        let (after_activity, after_id) = match after {
            Some((activity, id)) => (Some(activity.millis()), Some(id)),
            None => (None, None),
        };
        let rows = sqlx::query(LIST_USER_ROOMS)
            .bind(user_id)
            .bind(after_activity)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(read_error)?;
        Ok(rows
            .iter()
            .map(room_list_entry_from_row)
            .collect::<sqlx::Result<_>>()?)
    }

    // ---- members ----

    async fn get_member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        fetch_member(&self.readers, room_id, user_id)
            .await
            .map_err(read_error)
    }

    async fn user_room_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT room_id FROM members WHERE user_id = ?1 ORDER BY room_id")
            .bind(user_id)
            .fetch_all(&self.readers)
            .await
            .map_err(read_error)
    }

    async fn list_members(&self, room_id: &str) -> StoreResult<Vec<MemberWithUser>> {
        let rows = sqlx::query(
            "SELECT mb.room_id, mb.user_id, mb.role, mb.last_read_seq, mb.joined_at, \
                    COALESCE(u.username, mb.user_id) AS username, u.name \
             FROM members mb LEFT JOIN users u ON u.id = mb.user_id \
             WHERE mb.room_id = ?1 ORDER BY mb.joined_at, mb.user_id",
        )
        .bind(room_id)
        .fetch_all(&self.readers)
        .await
        .map_err(read_error)?;
        let members = rows
            .iter()
            .map(|row| {
                Ok(MemberWithUser {
                    member: member_from_row(row)?,
                    username: row.try_get("username")?,
                    name: row.try_get("name")?,
                })
            })
            .collect::<sqlx::Result<_>>()?;
        Ok(members)
    }

    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: RoomRole,
    ) -> StoreResult<MemberRecord> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |conn| Box::pin(add_member_job(conn, room_id, user_id, role)))
            .await
    }

    async fn remove_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |conn| Box::pin(remove_member_job(conn, room_id, user_id)))
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
            Box::pin(edit_message_job(
                conn, room_id, message_id, content, edited_at,
            ))
        })
        .await
    }

    async fn delete_message(&self, room_id: &str, message_id: &str) -> StoreResult<MessageRecord> {
        let (room_id, message_id) = (room_id.to_owned(), message_id.to_owned());
        self.write(move |conn| Box::pin(delete_message_job(conn, room_id, message_id)))
            .await
    }

    async fn set_reaction(
        &self,
        change: ReactionChange,
    ) -> StoreResult<BTreeMap<String, Vec<String>>> {
        self.write(move |conn| Box::pin(set_reaction_job(conn, change)))
            .await
    }

    async fn get_message(
        &self,
        room_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<MessageRecord>> {
        fetch_message(&self.readers, room_id, message_id)
            .await
            .map_err(read_error)
    }

    async fn history(
        &self,
        room_id: &str,
        page: HistoryPage,
        limit: u32,
    ) -> StoreResult<(Vec<MessageRecord>, bool)> {
        let (sql, bound, newest_first) = match page {
            HistoryPage::Latest => (HISTORY_LATEST, None, true),
            HistoryPage::Before(seq) => (HISTORY_BEFORE, Some(seq), true),
            HistoryPage::After(seq) => (HISTORY_AFTER, Some(seq), false),
        };
        // One more than asked tells whether the page has a next one.
        let mut query = sqlx::query(sql).bind(room_id).bind(i64::from(limit) + 1);
        if let Some(seq) = bound {
            query = query.bind(seq);
        }
        let rows = query.fetch_all(&self.readers).await.map_err(read_error)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        let mut messages = rows
            .iter()
            .take(limit)
            .map(|row| message_from_row(row, ""))
            .collect::<sqlx::Result<Vec<_>>>()?;
        if newest_first {
            messages.reverse();
        }
        Ok((messages, has_more))
    }

    // ---- read state ----

    async fn mark_read(&self, room_id: &str, user_id: &str, up_to_seq: i64) -> StoreResult<i64> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |conn| Box::pin(mark_read_job(conn, room_id, user_id, up_to_seq)))
            .await
    }

    /// [`StoreError::NotFound`] if the user is not a member.
    async fn unread_count(&self, room_id: &str, user_id: &str) -> StoreResult<i64> {
        sqlx::query_scalar(UNREAD_COUNT)
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(read_error)?
            .ok_or(StoreError::NotFound)
    }

    // ---- health ----

    async fn create_attachment(&self, attachment: AttachmentRecord) -> StoreResult<()> {
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO attachments (id, uploader_id, sha256, content_type, size, name, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .bind(&attachment.id)
                .bind(&attachment.uploader_id)
                .bind(&attachment.sha256)
                .bind(&attachment.content_type)
                .bind(attachment.size)
                .bind(&attachment.name)
                .bind(attachment.created_at.millis())
                .execute(&mut *conn)
                .await
                .map_err(on_constraint)?;
                Ok(())
            })
        })
        .await
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        sqlx::query("SELECT * FROM attachments WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.readers)
            .await
            .map_err(read_error)?
            .as_ref()
            .map(attachment_record)
            .transpose()
            .map_err(read_error)
    }

    async fn attachment_shared_with(&self, id: &str, user_id: &str) -> StoreResult<bool> {
        let shared: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM messages m JOIN members mb ON mb.room_id = m.room_id AND mb.user_id = ?2 \
             WHERE m.attachment_id = ?1 LIMIT 1",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.readers)
        .await
        .map_err(read_error)?;
        Ok(shared.is_some())
    }

    async fn counts(&self) -> StoreResult<(i64, i64)> {
        let (rooms, messages): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(last_seq), 0) FROM rooms")
                .fetch_one(&self.readers)
                .await
                .map_err(read_error)?;
        Ok((rooms, messages))
    }

    async fn ping(&self) -> StoreResult<()> {
        let writer_alive = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|sender| !sender.is_closed());
        if !writer_alive {
            return Err(StoreError::Closed);
        }
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(read_error)?;
        Ok(())
    }

    fn commit_histograms(&self) -> crate::metrics::StoreHistograms {
        self.stats.histograms.clone()
    }

    async fn close(&self) {
        // New writes are refused from here; queued ones still run, and the
        // writer stops once the last in-flight sender is dropped.
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AppendOutcome;

    use crate::store::DynStore;
    use crate::store::conformance::{
        Backend, answer_shape, conformance_tests, last_seq, mixed_appends, mixed_appends_setup,
        msg, no_hook, room, send, user,
    };
    use std::collections::BTreeSet;
    use tempfile::TempDir;

    /// A SQLite file in its own temporary folder (removed with it).
    struct SqliteFile {
        dir: TempDir,
    }

    impl SqliteFile {
        fn url(&self) -> String {
            format!("sqlite://{}", self.dir.path().join("confab.db").display())
        }
    }

    #[async_trait]
    impl Backend for SqliteFile {
        async fn fresh() -> (Self, DynStore) {
            let file = SqliteFile {
                dir: tempfile::tempdir().unwrap(),
            };
            let store = file.open_again().await;
            (file, store)
        }

        async fn open_again(&self) -> DynStore {
            let store = SqliteStore::open(&self.url()).await.unwrap();
            store.migrate().await.unwrap();
            Arc::new(store)
        }
    }

    conformance_tests!(SqliteFile);

    #[tokio::test]
    async fn an_upsert_that_changes_nothing_skips_the_writer() {
        let (_dir, store, _) = fresh().await;
        let created = user(&store, "u1").await;
        let before = store.write_stats();
        let same = store
            .upsert_user(UserUpsert {
                id: "u1".into(),
                username: Some("u1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(same, created);
        assert_eq!(store.write_stats(), before);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_commits() {
        let (_dir, store, _) = fresh().await;
        for i in 0..8 {
            user(&store, &format!("u{i}")).await;
        }
        room(&store, "r", &[]).await;
        let store = Arc::new(store);
        let before = store.write_stats();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..25 {
                        send(&*store, "r", &format!("u{i}"), &format!("{i}:{n}")).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let after = store.write_stats();
        assert_eq!(after.jobs - before.jobs, 200);
        assert!(
            after.commits - before.commits < 200,
            "bursts share commits: {before:?} → {after:?}"
        );
        store.close().await;
    }

    /// A store on a fresh file in its own temporary folder (kept alive by the `TempDir`).
    async fn fresh() -> (TempDir, SqliteStore, String) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("confab.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store, url)
    }

    async fn message_count(store: &SqliteStore, room_id: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE room_id = ?1")
            .bind(room_id)
            .fetch_one(&store.readers)
            .await
            .unwrap()
    }

    /// Holds the writer busy until the returned sender fires, so that jobs
    /// queued meanwhile are drained into one batch. Returns once the writer
    /// is held.
    async fn block_writer(
        store: &Arc<SqliteStore>,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = oneshot::channel::<()>();
        let (held, started) = oneshot::channel::<()>();
        let store = store.clone();
        let blocker = tokio::spawn(async move {
            store
                .submit(Mode::Alone, move |_conn| {
                    Box::pin(async move {
                        let _ = held.send(());
                        let _ = wait.await;
                        Ok(())
                    })
                })
                .await
                .unwrap();
        });
        started.await.unwrap();
        (release, blocker)
    }

    /// Waits until `n` jobs sit in the writer's queue.
    async fn queued(store: &SqliteStore, n: usize) {
        let sender = store.jobs.lock().unwrap().clone().unwrap();
        for _ in 0..1000 {
            if QUEUE_CAPACITY - sender.capacity() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("jobs never queued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_of_appends_is_one_commit_with_single_append_answers() {
        let (_dir, store, _) = fresh().await;
        let store = Arc::new(store);
        mixed_appends_setup(&*store).await;
        let (appends, expected) = mixed_appends();
        let count = appends.len();
        let (release, blocker) = block_writer(&store).await;
        let mut pending = Vec::new();
        for message in appends {
            pending.push(store.queue_append(message, no_hook()).await.unwrap());
        }
        queued(&store, count).await;
        let before = store.write_stats();
        release.send(()).unwrap();
        blocker.await.unwrap();
        for (n, (answer, want)) in pending.into_iter().zip(&expected).enumerate() {
            let want = want.map(|(room, seq, dup)| (room.to_owned(), seq, dup));
            assert_eq!(answer_shape(&answer.await), want, "append {n}");
        }
        let after = store.write_stats();
        assert_eq!(after.commits - before.commits, 1, "{before:?} → {after:?}");
        assert_eq!(after.jobs - before.jobs, count as u64);
        assert_eq!(message_count(&store, "r").await, 4);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_that_cannot_be_inserted_whole_is_appended_one_by_one() {
        let (_dir, store, _) = fresh().await;
        let store = Arc::new(store);
        user(&*store, "a").await;
        room(&*store, "r", &["a"]).await;
        let taken = send(&*store, "r", "a", "first").await;
        let mut clash = msg("r", "a", "clash");
        clash.id = taken.id.clone();
        let appends = vec![msg("r", "a", "1"), clash, msg("r", "a", "2")];
        let (release, blocker) = block_writer(&store).await;
        let mut pending = Vec::new();
        for message in appends {
            pending.push(store.queue_append(message, no_hook()).await.unwrap());
        }
        queued(&store, 3).await;
        release.send(()).unwrap();
        blocker.await.unwrap();
        let mut shapes = Vec::new();
        for answer in pending {
            shapes.push(answer_shape(&answer.await));
        }
        // The multi-row insert failed on the taken id; one by one, only the
        // clash fails, and the others keep their queue order without a gap.
        assert_eq!(
            shapes,
            vec![
                Ok(("r".to_owned(), 2, false)),
                Err("AlreadyExists"),
                Ok(("r".to_owned(), 3, false)),
            ]
        );
        assert_eq!(last_seq(&*store, "r").await, 3);
        assert_eq!(message_count(&store, "r").await, 3);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_copies_commits_into_the_file_and_close_folds_the_wal() {
        let (dir, store, _) = fresh().await;
        let file = dir.path().join("confab.db");
        let wal = dir.path().join("confab.db-wal");
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        // Let the checkpoint after the set-up happen, then measure the file.
        tokio::time::sleep(CHECKPOINT_PAUSE * 3).await;
        let before = std::fs::metadata(&file).unwrap().len();
        let mut pending = Vec::new();
        for n in 0..400 {
            let mut message = msg("r", "a", &format!("message {n} {}", "x".repeat(200)));
            message.id = format!("m{n}");
            pending.push(store.queue_append(message, no_hook()).await.unwrap());
        }
        for answer in pending {
            answer.await.unwrap();
        }
        // Far fewer pages than the writer's own autocheckpoint: only the
        // checkpointer can have copied them into the file.
        let mut grown = false;
        for _ in 0..100 {
            if std::fs::metadata(&file).unwrap().len() > before {
                grown = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(grown, "the database file stayed at {before} bytes");
        store.close().await;
        let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(left, 0, "a clean close folds the WAL back");
        let reopened = SqliteStore::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert_eq!(message_count(&reopened, "r").await, 400);
        reopened.close().await;
    }

    #[tokio::test]
    async fn migrations_are_idempotent_and_folders_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/confab.db");
        // Both URL forms name the same file.
        for url in [
            format!("sqlite://{}", path.display()),
            format!("sqlite:{}", path.display()),
        ] {
            let store = SqliteStore::open(&url).await.unwrap();
            store.migrate().await.unwrap();
            store.migrate().await.unwrap();
            store.ping().await.unwrap();
            store.close().await;
        }
        assert!(path.exists());

        let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.readers)
            .await
            .unwrap();
        assert_eq!(applied, MIGRATOR.iter().count() as i64);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.readers)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let write = sqlx::query("DELETE FROM users")
            .execute(&store.readers)
            .await;
        assert!(write.is_err(), "readers are query_only");
        store.close().await;
    }

    #[tokio::test]
    async fn bad_urls_are_refused() {
        for url in [
            "postgres://localhost/confab",
            "sqlite::memory:",
            "sqlite://",
            "sqlite://?mode=memory",
        ] {
            let err = SqliteStore::open(url).await.unwrap_err();
            assert!(
                matches!(err, StoreError::Database(sqlx::Error::Configuration(_))),
                "{url}: {err}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_finishes_queued_writes() {
        let (_dir, store, _) = fresh().await;
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        let store = Arc::new(store);
        let (release, blocker) = block_writer(&store).await;
        let sends: Vec<_> = (0..20)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append_message(msg("r", "a", &format!("{n}")), no_hook())
                        .await
                })
            })
            .collect();
        queued(&store, 20).await;

        let closing = {
            let store = store.clone();
            tokio::spawn(async move { store.close().await })
        };
        // close() refuses new work at once, yet waits for the queue.
        for _ in 0..100 {
            if store.jobs.lock().unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(matches!(
            store.append_message(msg("r", "a", "late"), no_hook()).await,
            Err(StoreError::Closed)
        ));
        release.send(()).unwrap();
        blocker.await.unwrap();
        for send in sends {
            assert!(matches!(send.await.unwrap(), Ok(AppendOutcome::Stored(_))));
        }
        closing.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_does_not_roll_back_its_batch() {
        let (_dir, store, _) = fresh().await;
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        let store = Arc::new(store);

        // Hold the writer, queue 40 appends of which every fourth goes to a
        // missing room, then let go: they are drained into one transaction.
        let (release, blocker) = block_writer(&store).await;
        let before = store.write_stats();
        let mut tasks = Vec::new();
        for n in 0..40 {
            let sender = store.clone();
            let room_id = if n % 4 == 0 { "missing" } else { "r" };
            tasks.push(tokio::spawn(async move {
                sender
                    .append_message(msg(room_id, "a", &format!("{n}")), no_hook())
                    .await
            }));
            // Queue in order, so the failures sit between the successes.
            queued(&store, n + 1).await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap();

        let mut seqs = BTreeSet::new();
        for (n, task) in tasks.into_iter().enumerate() {
            match (n % 4, task.await.unwrap()) {
                (0, Err(StoreError::NotFound)) => {}
                (0, other) => panic!("append {n} to a missing room: {other:?}"),
                (_, Ok(AppendOutcome::Stored(m))) => assert!(seqs.insert(m.seq)),
                (_, other) => panic!("append {n}: {other:?}"),
            }
        }
        assert_eq!(seqs, (1..=30).collect());
        assert_eq!(message_count(&store, "r").await, 30);
        assert_eq!(last_seq(&*store, "r").await, 30);
        let after = store.write_stats();
        assert_eq!(
            after.commits - before.commits,
            1,
            "one transaction for the batch"
        );
        assert_eq!(after.jobs - before.jobs, 40);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_job_of_the_batch() {
        let (_dir, store, _) = fresh().await;
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        let store = Arc::new(store);

        let (release, blocker) = block_writer(&store).await;
        let good = {
            let store = store.clone();
            tokio::spawn(
                async move { store.append_message(msg("r", "a", "lost"), no_hook()).await },
            )
        };
        queued(&store, 1).await;
        // A job that succeeds itself but makes COMMIT fail: a deferred
        // foreign-key violation is only checked at commit.
        let poison = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|conn| {
                        Box::pin(async move {
                            conn.execute("PRAGMA defer_foreign_keys = ON").await?;
                            conn.execute(
                                "INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) \
                                 VALUES ('r', 'ghost', 'member', 0, 0)",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .await
            })
        };
        queued(&store, 2).await;
        release.send(()).unwrap();
        blocker.await.unwrap();

        assert!(matches!(good.await.unwrap(), Err(StoreError::Database(_))));
        assert!(matches!(
            poison.await.unwrap(),
            Err(StoreError::Database(_))
        ));
        assert_eq!(
            last_seq(&*store, "r").await,
            0,
            "nothing of the batch is stored"
        );
        assert_eq!(message_count(&store, "r").await, 0);
        assert_eq!(store.get_member("r", "ghost").await.unwrap(), None);

        // The writer goes on.
        assert_eq!(send(&*store, "r", "a", "after").await.seq, 1);
        store.close().await;
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let (_dir, store, _) = fresh().await;
        user(&store, "a").await;
        room(&store, "r", &["a"]).await;
        let result: StoreResult<()> = store
            .write(|conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE rooms SET last_seq = 99")
                        .execute(&mut *conn)
                        .await?;
                    panic!("job bug");
                })
            })
            .await;
        assert!(matches!(result, Err(StoreError::Database(_))));
        assert_eq!(
            last_seq(&store, "r").await,
            0,
            "its savepoint was rolled back"
        );
        assert_eq!(send(&store, "r", "a", "still writing").await.seq, 1);
        store.ping().await.unwrap();
        store.close().await;
    }

    /// The hot queries are index searches, never scans of `messages`.
    #[tokio::test]
    async fn hot_queries_use_indexes() {
        let (_dir, store, _) = fresh().await;
        let plan = |sql: &'static str, binds: usize| {
            let readers = store.readers.clone();
            async move {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let mut query = sqlx::query(&explain);
                for _ in 0..binds {
                    query = query.bind(1_i64);
                }
                query
                    .fetch_all(&readers)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get::<String, _>("detail"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        for (name, sql, binds) in [
            ("unread", UNREAD_COUNT, 2),
            ("latest", HISTORY_LATEST, 2),
            ("before", HISTORY_BEFORE, 3),
            ("after", HISTORY_AFTER, 3),
            ("room list", LIST_USER_ROOMS, 4),
        ] {
            let plan = plan(sql, binds).await;
            for alias in ["m", "own", "del", "lm"] {
                assert!(
                    !plan.contains(&format!("SCAN {alias} "))
                        && !plan.ends_with(&format!("SCAN {alias}")),
                    "{name} scans messages:\n{plan}"
                );
            }
            assert!(
                !plan.contains("SCAN r") && !plan.contains("SCAN mb"),
                "{name}:\n{plan}"
            );
            eprintln!("{name}:\n{plan}\n");
            match name {
                "room list" => {}
                // The page is read in index order, never sorted whole (the
                // reactions subquery sorts only one message's reactions).
                "latest" => assert!(
                    plan.contains("(room_id=?)") && !plan.contains("USE TEMP B-TREE FOR ORDER BY"),
                    "{name}:\n{plan}"
                ),
                // Only the reader's own messages and the room's deleted ones
                // are visited, by their own indexes.
                "unread" => assert!(
                    plan.contains("SEARCH own USING COVERING INDEX messages_by_sender (room_id=? AND sender_id=? AND seq>?)")
                        && plan.contains("SEARCH del USING INDEX messages_deleted (room_id=? AND seq>?)"),
                    "{name}:\n{plan}"
                ),
                _ => assert!(
                    plan.contains("(room_id=? AND seq"),
                    "{name} reads a seq range:\n{plan}"
                ),
            }
        }
        store.close().await;
    }

    /// Issue 4: the unread count of a 100k-message room is one query that
    /// visits only the reader's own and the deleted messages above the marker
    /// (plan checked above); here its answer is checked at that size, with own,
    /// deleted and read messages mixed in, for one member and in the room list.
    #[tokio::test]
    async fn unread_count_of_a_100k_message_room() {
        const SEEDED: i64 = 100_000;
        let (_dir, store, _) = fresh().await;
        for id in ["a", "b"] {
            user(&store, id).await;
        }
        room(&store, "big", &["a", "b"]).await;
        // 100k messages from a, written the way the writer would: consecutive
        // seqs and the room's last_seq in one transaction.
        store
            .write(|conn| {
                Box::pin(async move {
                    sqlx::query(
                        "WITH RECURSIVE n(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM n WHERE seq < ?1) \
                         INSERT INTO messages (id, room_id, seq, sender_id, content, message_type, created_at) \
                         SELECT 'seed-' || seq, 'big', seq, 'a', 'hello ' || seq, 'text', seq FROM n",
                    )
                    .bind(SEEDED)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("UPDATE rooms SET last_seq = ?1 WHERE id = 'big'")
                        .bind(SEEDED)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
        assert_eq!(store.unread_count("big", "b").await.unwrap(), SEEDED);
        assert_eq!(
            store.unread_count("big", "a").await.unwrap(),
            0,
            "all a's own"
        );

        // Through the real paths: b writes 3, a deletes 2 of theirs, b reads
        // half the room.
        for i in 0..3 {
            send(&store, "big", "b", &format!("b{i}")).await;
        }
        for seq in [10, SEEDED] {
            store
                .delete_message("big", &format!("seed-{seq}"))
                .await
                .unwrap();
        }
        assert_eq!(store.unread_count("big", "b").await.unwrap(), SEEDED - 2);
        assert_eq!(
            store.unread_count("big", "a").await.unwrap(),
            3,
            "b's three"
        );
        store.mark_read("big", "b", SEEDED / 2).await.unwrap();
        let expected_b = SEEDED / 2 - 1; // seq 100000 is deleted
        assert_eq!(store.unread_count("big", "b").await.unwrap(), expected_b);
        let list = store.list_user_rooms("b", 10, None).await.unwrap();
        assert_eq!(list[0].unread_count, expected_b);
        store.close().await;
    }
}
