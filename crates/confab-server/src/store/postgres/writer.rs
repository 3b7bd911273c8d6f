//! The PostgreSQL writer task: group commit, room locks in id order, bounded
//! retries. See the parent module's docs for why it is shaped this way.

use super::batch_append::{self, AppendJob};
use super::rows::unreachable;
use crate::store::writer::{Counters, Hook, JobQueue, MAX_BATCH, WriteStats, run_caught};
use crate::store::{AppendOutcome, EventSet, NewMessage, StoreError, StoreResult};
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Executor, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Tries of one batch when it meets a deadlock, a serialization failure or a
/// lost connection before its commit; then every job gets the error.
const MAX_ATTEMPTS: u32 = 5;

/// The first pause before a retry; it doubles with each try (plus jitter, so
/// that two nodes that collided do not collide again in step).
const RETRY_BASE: Duration = Duration::from_millis(10);

/// A job's work: run again from scratch on every try of its batch.
pub(super) type Work<T> = crate::store::backend::Work<PgConnection, T>;

/// Writer tasks per node (fewer when `max_connections` leaves no room for
/// them and a reader), each with its own queue and connection; a room's
/// writes all go to one of them. While one waits for its commit to be
/// flushed, another writes: a lone writer spent most of its time waiting on
/// the database, round trip by round trip (docs/performance.md). Lanes
/// write the same rows as several nodes do, under the same room locks and
/// retries, so seqs stay gap-free and a room's writes stay in queue order.
pub(super) const LANES: usize = 2;

/// The handle store methods use to queue writes; owns the writer tasks.
pub(super) struct Writer {
    /// One per lane; never empty.
    lanes: Vec<Lane>,
    /// What the lanes have done, together.
    counters: Arc<Counters>,
}

/// One writer task and its queue.
struct Lane {
    /// The lane's queue, closed by [`Writer::close`].
    jobs: JobQueue<Box<dyn WriteJob>>,
    /// The writer task, awaited by [`Writer::close`].
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts `lanes` writer tasks (at least one) on `pool`, each taking a
    /// connection of its own from it.
    pub(super) fn start(pool: PgPool, lanes: usize) -> Writer {
        let counters = Arc::new(Counters::default());
        let lanes = (0..lanes.max(1))
            .map(|_| {
                let (jobs, receiver) = JobQueue::new();
                let task = tokio::spawn(run_writer(pool.clone(), receiver, counters.clone()));
                Lane {
                    jobs,
                    task: tokio::sync::Mutex::new(Some(task)),
                }
            })
            .collect();
        Writer { lanes, counters }
    }

    /// The lane of a job that writes `room`'s rows (every job of one room
    /// goes to the same lane, in queue order); jobs of no room go to the
    /// first.
    fn lane(&self, room: Option<&str>) -> &JobQueue<Box<dyn WriteJob>> {
        // In range: the lanes are never empty.
        &self.lanes[self.lane_index(room)].jobs
    }

    /// Which lane [`Writer::lane`] picks.
    pub(super) fn lane_index(&self, room: Option<&str>) -> usize {
        use std::hash::{Hash, Hasher};
        room.map_or(0, |room| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            room.hash(&mut hasher);
            (hasher.finish() % self.lanes.len() as u64) as usize
        })
    }

    /// Queues `work`, which writes the rows of `rooms` (locked in id order at
    /// the start of its batch), and waits for its answer, which comes only
    /// after the transaction it ran in committed. `hook` runs on the writer
    /// right after that commit, before the next batch.
    pub(super) async fn submit<T: Send + 'static>(
        &self,
        rooms: Vec<String>,
        work: Work<T>,
        hook: Option<Hook<T>>,
    ) -> StoreResult<T> {
        self.queue(rooms, work, hook).await?.await
    }

    /// Like [`Writer::submit`], but returns once the job is queued, with the
    /// future of its answer: jobs queued in turn run in turn.
    pub(super) async fn queue<T: Send + 'static>(
        &self,
        rooms: Vec<String>,
        work: Work<T>,
        hook: Option<Hook<T>>,
    ) -> StoreResult<impl Future<Output = StoreResult<T>> + Send + 'static + use<T>> {
        let (reply, answer) = oneshot::channel();
        let lane = self.lane(rooms.first().map(String::as_str));
        let job: Box<dyn WriteJob> = Box::new(PendingJob {
            rooms,
            work,
            answer: Answer::new(reply, hook),
        });
        lane.send(job).await?;
        Ok(async move { answer.await.map_err(|_| StoreError::Closed)? })
    }

    /// Queues an append, which the writer may write together with the
    /// appends next to it (see [`batch_append`]), and returns the future of
    /// its answer, as [`Writer::queue`] does.
    pub(super) async fn queue_append(
        &self,
        message: NewMessage,
        events: EventSet,
        hook: Hook<AppendOutcome>,
    ) -> StoreResult<impl Future<Output = StoreResult<AppendOutcome>> + Send + 'static> {
        let (reply, answer) = oneshot::channel();
        let lane = self.lane(Some(&message.room_id));
        let job: Box<dyn WriteJob> = Box::new(AppendJob {
            message,
            events,
            answer: Answer::new(reply, Some(hook)),
        });
        lane.send(job).await?;
        Ok(async move { answer.await.map_err(|_| StoreError::Closed)? })
    }

    /// Whether every lane still takes jobs.
    pub(super) fn is_open(&self) -> bool {
        self.lanes.iter().all(|lane| lane.jobs.is_open())
    }

    /// Jobs waiting in the queues (tests use it to form batches).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.lanes.iter().map(|lane| lane.jobs.queued()).sum()
    }

    /// The writer's histograms, shared with the server's metrics registry.
    pub(super) fn histograms(&self) -> crate::metrics::StoreHistograms {
        self.counters.histograms.clone()
    }

    /// What the writer has done so far.
    pub(super) fn stats(&self) -> WriteStats {
        self.counters.stats()
    }

    /// Refuses new jobs, lets the queued ones finish and waits for the tasks.
    pub(super) async fn close(&self) {
        for lane in &self.lanes {
            lane.jobs.close();
        }
        for lane in &self.lanes {
            if let Some(task) = lane.task.lock().await.take()
                && let Err(e) = task.await
            {
                tracing::error!(error = %e, "a PostgreSQL writer task failed");
            }
        }
    }
}

/// A job with its result type erased, so that jobs of every type share a queue.
pub(super) trait WriteJob: Send {
    /// The rooms whose rows the job writes.
    fn rooms(&self) -> &[String];

    /// Forgets the result of an earlier try.
    fn reset(&mut self);

    /// Runs (or runs again) the work, keeping its result for [`WriteJob::settle`].
    fn run<'a>(&'a mut self, conn: &'a mut PgConnection) -> BoxFuture<'a, ()>;

    /// How the last run went.
    fn outcome(&self) -> Outcome;

    /// Sends the answer: the work's own result if the commit succeeded or the
    /// work failed anyway, else `batch` (the transaction's error). Runs the
    /// hook when the work's success was committed.
    fn settle(self: Box<Self>, batch: Option<&sqlx::Error>);

    /// Whether the job is an append, which the writer writes together with
    /// the appends next to it.
    fn is_append(&self) -> bool {
        false
    }

    /// The append this job is (see [`WriteJob::is_append`]).
    fn as_append(&mut self) -> Option<&mut AppendJob> {
        None
    }
}

/// How a job's run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Keep its savepoint.
    Succeeded,
    /// Roll its savepoint back; the rest of the batch goes on.
    Failed,
    /// The whole transaction is doomed (deadlock, serialization failure,
    /// lost connection): try the batch again.
    Retry,
}

/// A job's result, where it goes, and what runs once it is committed.
pub(super) struct Answer<T> {
    /// The last try's result; `None` before the job ran in it.
    pub(super) result: Option<StoreResult<T>>,
    /// Where the answer goes.
    reply: oneshot::Sender<StoreResult<T>>,
    /// Runs after the commit, before the next batch.
    hook: Option<Hook<T>>,
}

impl<T> Answer<T> {
    /// An answer still to be worked out.
    fn new(reply: oneshot::Sender<StoreResult<T>>, hook: Option<Hook<T>>) -> Answer<T> {
        Answer {
            result: None,
            reply,
            hook,
        }
    }

    /// How the last run went.
    pub(super) fn outcome(&self) -> Outcome {
        match &self.result {
            Some(Ok(_)) => Outcome::Succeeded,
            Some(Err(StoreError::Database(e))) if retryable(e) => Outcome::Retry,
            _ => Outcome::Failed,
        }
    }

    /// See [`WriteJob::settle`].
    pub(super) fn settle(self, batch: Option<&sqlx::Error>) {
        let answer = match (self.result, batch) {
            (Some(Ok(value)), None) => {
                if let Some(hook) = self.hook {
                    hook(&value);
                }
                Ok(value)
            }
            (Some(Err(StoreError::Database(e))), _) if unreachable(&e) => {
                Err(StoreError::Unavailable(e.to_string()))
            }
            (Some(Err(e)), _) => Err(e),
            (_, Some(e)) => Err(batch_error(e)),
            (None, None) => Err(StoreError::Database(sqlx::Error::Protocol(
                "the write job never ran".to_owned(),
            ))),
        };
        // The caller may have given up waiting; nothing to do then.
        let _ = self.reply.send(answer);
    }
}

/// A queued job.
struct PendingJob<T> {
    rooms: Vec<String>,
    work: Work<T>,
    answer: Answer<T>,
}

impl<T: Send + 'static> WriteJob for PendingJob<T> {
    fn rooms(&self) -> &[String] {
        &self.rooms
    }

    fn reset(&mut self) {
        self.answer.result = None;
    }

    fn run<'a>(&'a mut self, conn: &'a mut PgConnection) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let result = run_caught((self.work)(conn), "PostgreSQL").await;
            self.answer.result = Some(result);
        })
    }

    fn outcome(&self) -> Outcome {
        self.answer.outcome()
    }

    fn settle(self: Box<Self>, batch: Option<&sqlx::Error>) {
        self.answer.settle(batch);
    }
}

/// Whether a failure dooms the transaction but not a fresh try of it:
/// deadlock (40P01), serialization failure (40001), the server closing the
/// connection (class 08, 57P01–57P03) or the socket breaking.
pub(super) fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(&*code, "40P01" | "40001" | "57P01" | "57P02" | "57P03")
                || code.starts_with("08")
        }),
        sqlx::Error::Io(_) => true,
        _ => false,
    }
}

/// The error each job of a failed transaction gets (`sqlx::Error` is not `Clone`).
fn batch_error(e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed => StoreError::Closed,
        e if unreachable(e) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Database(sqlx::Error::Protocol(format!(
            "the write transaction failed: {other}"
        ))),
    }
}

/// The writer: takes whatever is queued (up to [`MAX_BATCH`]) and runs it as
/// one batch, until the queue closes.
async fn run_writer(
    pool: PgPool,
    mut receiver: mpsc::Receiver<Box<dyn WriteJob>>,
    counters: Arc<Counters>,
) {
    let mut link = Link { pool, held: None };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Returns 0 only once every sender is gone and the queue is empty.
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        run_batch(&mut link, std::mem::take(&mut batch), &counters).await;
    }
    link.close().await;
}

/// The writer's own connection, kept from batch to batch: taking one from
/// the pool for each batch cost a round trip (the pool pings a connection
/// before handing it out). It is taken from the pool once and detached from
/// it (the pool opens another for readers), set up for the writer's
/// statements, and closed after any try that failed, so that a broken one
/// is replaced.
///
/// The set-up: every statement of the writer finds its rows by key (ids,
/// `(sender, room, client_msg_id)`), so the right plan is always an index
/// probe per key, whatever the tables hold. A generic plan made while the
/// tables were small had instead joined a batch's keys to a scan of the
/// whole messages table, whose cost grew with every message stored; planning
/// each execution afresh (`force_custom_plan`) cured that but cost 40% of
/// the database's CPU for the writer (docs/performance.md). So the
/// connection plans each statement once (`force_generic_plan`) with scans,
/// hash joins and merge joins priced out (`enable_seqscan`,
/// `enable_hashjoin`, `enable_mergejoin` off): the one plan made is the
/// index-driven one, on an empty database as on a full one. A statement
/// with no index to use still runs (the settings price plans, they forbid
/// nothing).
struct Link {
    /// Where connections come from.
    pool: PgPool,
    /// The connection of the last successful batch.
    held: Option<PgConnection>,
}

impl Link {
    /// The held connection, or a fresh one. No retry when none comes: the
    /// pool already waited its `acquire_timeout`, and the callers should
    /// hear about it.
    async fn connection(&mut self) -> Result<&mut PgConnection, TryError> {
        if self.held.is_none() {
            let mut fresh = self
                .pool
                .acquire()
                .await
                .map_err(|e| match e {
                    sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => TryError::Fatal(e),
                    other => try_error(other),
                })?
                .detach();
            fresh
                .execute(
                    "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
                     SET enable_hashjoin = off; SET enable_mergejoin = off",
                )
                .await
                .map_err(try_error)?;
            self.held = Some(fresh);
        }
        self.held
            .as_mut()
            .ok_or_else(|| TryError::Fatal(sqlx::Error::PoolClosed))
    }

    /// Closes the held connection, if any (after a failed try, and when the
    /// writer stops).
    async fn close(&mut self) {
        if let Some(conn) = self.held.take()
            && let Err(e) = conn.close().await
        {
            tracing::debug!(error = %e, "closing the writer's PostgreSQL connection");
        }
    }
}

/// Why one try of a batch did not commit.
enum TryError {
    /// Try again with a fresh transaction (and connection).
    Retry(sqlx::Error),
    /// A batch of nothing but appends, written as one run with no savepoint,
    /// failed on one of them: try again at once with savepoints, so that
    /// only the offender fails.
    Unbatch(sqlx::Error),
    /// Give up: every job that has no answer of its own gets this.
    Fatal(sqlx::Error),
}

/// How a try lays out its savepoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The batch is one run of appends, written with no savepoint at all:
    /// a failure rolls the transaction back (and the batch is tried again
    /// [`Framing::Savepoints`]). Two round trips fewer, and no
    /// subtransaction.
    OneRun,
    /// Each run of appends, and each other job, in a savepoint of its own.
    Savepoints,
}

/// Classifies a failure of the transaction itself.
fn try_error(e: sqlx::Error) -> TryError {
    if retryable(&e) {
        TryError::Retry(e)
    } else {
        TryError::Fatal(e)
    }
}

/// Runs the jobs in one transaction, each in its own savepoint, commits once,
/// and only then answers them and runs their hooks, in queue order. Tries
/// again (bounded) when the transaction as a whole failed for a reason a
/// fresh try may not meet.
async fn run_batch(link: &mut Link, mut jobs: Vec<Box<dyn WriteJob>>, counters: &Counters) {
    let mut attempt = 1;
    let mut framing = if jobs.iter().all(|job| job.is_append()) {
        Framing::OneRun
    } else {
        Framing::Savepoints
    };
    let failure = loop {
        let started = std::time::Instant::now();
        let tried = try_batch(link, &mut jobs, framing).await;
        if tried.is_err() {
            link.close().await;
        }
        match tried {
            Ok(()) => {
                counters.committed(jobs.len(), started);
                for job in jobs {
                    job.settle(None);
                }
                return;
            }
            Err(TryError::Retry(e)) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, jobs = jobs.len(), "PostgreSQL write batch will be tried again");
                counters.retried();
                let base = RETRY_BASE * 2u32.pow(attempt - 1);
                let jitter = rand::random_range(0..=base.as_millis() as u64);
                tokio::time::sleep(base + Duration::from_millis(jitter)).await;
                attempt += 1;
            }
            Err(TryError::Unbatch(e)) if framing == Framing::OneRun => {
                tracing::debug!(error = %e, jobs = jobs.len(), "a run of appends failed; trying again one by one");
                framing = Framing::Savepoints;
            }
            Err(TryError::Retry(e) | TryError::Unbatch(e) | TryError::Fatal(e)) => break e,
        }
    };
    tracing::error!(error = %failure, jobs = jobs.len(), "PostgreSQL write batch failed");
    for job in jobs {
        // Jobs that failed in the last try keep their own error; the others
        // (succeeded there, or never ran) get the batch's.
        job.settle(Some(&failure));
    }
}

/// One try of a batch. On `Ok` the transaction committed and every job holds
/// its result; on `Err` nothing of it is stored.
async fn try_batch(
    link: &mut Link,
    jobs: &mut [Box<dyn WriteJob>],
    framing: Framing,
) -> Result<(), TryError> {
    for job in jobs.iter_mut() {
        job.reset();
    }
    let mut tx: Transaction<'_, Postgres> =
        link.connection().await?.begin().await.map_err(try_error)?;
    if let Err(e) = run_jobs(&mut tx, jobs, framing).await {
        // Roll back now, not when the connection is next used: locks taken
        // in released savepoints belong to the transaction and would block
        // the next try (a broken connection has lost them already).
        if let Err(rollback) = tx.rollback().await {
            tracing::debug!(error = %rollback, "rolling back a failed write batch");
        }
        return Err(e);
    }
    // A failure of COMMIT itself: a database error (a serialization failure
    // found at commit) means nothing was stored and a retry is safe; a broken
    // connection leaves it unknown whether the commit happened, so the jobs
    // fail rather than risk storing twice (a client retries with its
    // `client_msg_id`).
    tx.commit().await.map_err(|e| match e {
        sqlx::Error::Database(_) => try_error(e),
        other => TryError::Fatal(other),
    })
}

/// Locks the batch's rooms, then runs its jobs: each run of appends
/// together, each other job in its own savepoint.
async fn run_jobs(
    conn: &mut PgConnection,
    jobs: &mut [Box<dyn WriteJob>],
    framing: Framing,
) -> Result<(), TryError> {
    // Lock ordering: every room the batch writes, in id order, before any
    // job runs. Two nodes' batches over the same rooms then queue behind one
    // another instead of deadlocking; per-room row locks taken later (the
    // seq bump, member and message rows) are already covered.
    let mut rooms: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.rooms().iter().map(String::as_str))
        .collect();
    rooms.sort_unstable();
    rooms.dedup();
    if !rooms.is_empty() {
        sqlx::query("SELECT id FROM rooms WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&rooms)
            .execute(&mut *conn)
            .await
            .map_err(try_error)?;
    }

    let mut rest = jobs;
    while !rest.is_empty() {
        let appends = rest.iter().take_while(|job| job.is_append()).count();
        let (now, later) = rest.split_at_mut(appends.max(1));
        if appends > 0 {
            run_appends(conn, now, framing).await?;
        } else {
            for job in now.iter_mut() {
                run_one(conn, job.as_mut()).await?;
            }
        }
        rest = later;
    }
    Ok(())
}

/// Writes a run of appends with [`batch_append::append_run`]; if that
/// fails on one of them, rolls the run back and appends them one by one.
async fn run_appends(
    conn: &mut PgConnection,
    jobs: &mut [Box<dyn WriteJob>],
    framing: Framing,
) -> Result<(), TryError> {
    let mut run: Vec<&mut AppendJob> = jobs.iter_mut().filter_map(|j| j.as_append()).collect();
    if framing == Framing::OneRun {
        return batch_append::append_run(conn, &mut run)
            .await
            .map_err(|e| match try_error(e) {
                TryError::Fatal(e) => TryError::Unbatch(e),
                retry => retry,
            });
    }
    conn.execute("SAVEPOINT run").await.map_err(try_error)?;
    let error = match batch_append::append_run(conn, &mut run).await {
        Ok(()) => {
            conn.execute("RELEASE SAVEPOINT run")
                .await
                .map_err(try_error)?;
            return Ok(());
        }
        Err(e) if retryable(&e) => return Err(TryError::Retry(e)),
        Err(e) => e,
    };
    tracing::debug!(error = %error, appends = run.len(), "a run of appends failed; appending one by one");
    undo(conn, "ROLLBACK TO SAVEPOINT run; RELEASE SAVEPOINT run").await?;
    for job in run {
        job.reset();
        run_one(conn, job).await?;
    }
    Ok(())
}

/// Runs one job in its own savepoint.
async fn run_one(conn: &mut PgConnection, job: &mut dyn WriteJob) -> Result<(), TryError> {
    conn.execute("SAVEPOINT job").await.map_err(try_error)?;
    job.run(conn).await;
    match job.outcome() {
        Outcome::Succeeded => {
            conn.execute("RELEASE SAVEPOINT job")
                .await
                .map_err(try_error)?;
        }
        Outcome::Failed => {
            undo(conn, "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job").await?;
        }
        Outcome::Retry => {
            return Err(TryError::Retry(sqlx::Error::Protocol(
                "a write job met a deadlock, serialization failure or lost connection".to_owned(),
            )));
        }
    }
    Ok(())
}

/// Rolls a savepoint back and releases it, the transaction going on: both
/// statements in one round trip (a query without arguments goes as one
/// simple-protocol message, which may hold several statements).
async fn undo(conn: &mut PgConnection, rollback_and_release: &str) -> Result<(), TryError> {
    conn.execute(rollback_and_release)
        .await
        .map(drop)
        .map_err(try_error)
}
